#!/usr/bin/env bats
# cm-match and profiles (CONTRACT 1.5): profile.TRAIT in rules and .profile
# in jq, from a --profiles file and from the identify events earlier in the
# input (latest occurred_at wins per trait, ties to the greater event_id,
# null removes), and the errors of a bad profiles file.

load lib/common
bats_require_minimum_version 1.5.0

# ev ID TYPE USER TIME [PROPS]: one event line.
ev() {
	printf '{"event_id":"%s","event_type":"%s","user_id":"%s","occurred_at":"%s","properties":%s}\n' \
		"$1" "$2" "$3" "$4" "${5:-{\}}"
}

# pairs: "CAMPAIGN EVENT" of each match line on stdin, space-separated.
pairs() { jq -r '"\(.campaign_id):\(.event_id)"' | tr '\n' ' '; }

setup() {
	cat >"$T/c.json" <<'JSON'
[{"id":1,"name":"pro","status":"active","rule":{"event_type":"purchase","where":{"field":"profile.plan","op":"eq","value":"pro"}}},
 {"id":2,"name":"no-plan","status":"active","rule":{"event_type":"purchase","where":{"field":"profile.plan","op":"not_exists"}}},
 {"id":3,"name":"jq-seats","status":"active","rule":{"event_type":"purchase","jq":".profile.seats > 5"}},
 {"id":4,"name":"city","status":"active","rule":{"where":{"all":[{"field":"profile.address.city","op":"in","value":["Berlin","Wien"]},{"field":"properties.amount","op":"gte","value":10}]}}},
 {"id":5,"name":"identify-pro","status":"active","rule":{"event_type":"identify","where":{"field":"profile.plan","op":"eq","value":"pro"}}}]
JSON
}

@test "--profiles FILE: rules read profile.TRAIT, jq reads .profile, a user without one has none" {
	printf '%s\n' '{"user_id":"u1","traits":{"plan":"pro","seats":9,"address":{"city":"Berlin"}}}' \
		'{"user_id":"u2","traits":{"plan":"free","seats":2}}' >"$T/p.ndjson"
	{
		ev e1 purchase u1 2026-01-01T00:00:00Z '{"amount":20}'
		ev e2 purchase u2 2026-01-01T00:00:00Z '{"amount":20}'
		ev e3 purchase u3 2026-01-01T00:00:00Z '{"amount":20}'
		ev e4 view u1 2026-01-01T00:00:00Z '{"amount":5}'
	} >"$T/in"
	run --separate-stderr cm-match -c "$T/c.json" --profiles "$T/p.ndjson" --emit matches "$T/in"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ "$(pairs <<<"$output")" = "1:e1 3:e1 4:e1 2:e3 " ]
}

@test "identify events earlier in the input update the profile, after being matched themselves" {
	{
		ev e1 purchase u1 2026-01-01T00:00:00Z
		ev i1 identify u1 2026-01-01T00:00:00Z '{"plan":"pro","seats":7}'
		ev e2 purchase u1 2026-01-01T00:00:01Z
		ev i2 identify u1 2026-01-02T00:00:00Z '{"plan":null}'
		ev e3 purchase u1 2026-01-02T00:00:01Z
		ev i3 identify u1 2026-01-03T00:00:00Z '{"plan":"pro"}'
	} >"$T/in"
	# without --profiles the in-memory profiles start empty
	run --separate-stderr cm-match -c "$T/c.json" --emit matches "$T/in"
	[ "$status" -eq 0 ]
	# i1 is matched before its own traits count (5 does not match it), i2
	# before its removal of the plan (5 matches it), i3 without a plan
	[ "$(pairs <<<"$output")" = "2:e1 1:e2 3:e2 5:i2 2:e3 3:e3 " ]
}

@test "identify events in any order: the latest occurred_at wins, a tie goes to the greater event_id" {
	# arrival order differs from time order; b and a share a time
	{
		ev id-b identify u1 2026-01-02T00:00:00Z '{"plan":"pro"}'
		ev id-c identify u1 2026-01-03T00:00:00Z '{"seats":9}'
		ev id-a identify u1 2026-01-02T00:00:00Z '{"plan":"free"}'
		ev id-0 identify u1 2026-01-01T00:00:00Z '{"plan":"team","seats":1}'
		ev e1 purchase u1 2026-01-04T00:00:00Z
	} >"$T/in"
	run --separate-stderr cm-match -c "$T/c.json" --emit matches "$T/in"
	[ "$status" -eq 0 ]
	# id-b is matched with an empty profile; the others see plan "pro"
	# (id-a's tie loses to id-b, id-0 is older than both)
	[ "$(pairs <<<"$output")" = "5:id-c 5:id-a 5:id-0 1:e1 3:e1 " ]
	# and reversed, the same answer for e1
	{ tac <(head -4 "$T/in"); tail -1 "$T/in"; } >"$T/rev"
	run --separate-stderr cm-match -c "$T/c.json" --emit matches "$T/rev"
	[ "$(pairs <<<"$output" | grep -o '[0-9]:e1' | tr '\n' ' ')" = "1:e1 3:e1 " ]
}

@test "an identify event overrides the traits of the --profiles file, whatever its time" {
	printf '%s\n' '{"user_id":"u1","traits":{"plan":"pro","seats":9}}' >"$T/p.ndjson"
	{
		ev e1 purchase u1 2026-01-01T00:00:00Z
		ev i1 identify u1 2000-01-01T00:00:00Z '{"plan":"free"}'
		ev e2 purchase u1 2026-01-01T00:00:01Z
	} >"$T/in"
	run --separate-stderr cm-match -c "$T/c.json" --profiles "$T/p.ndjson" --emit matches "$T/in"
	[ "$status" -eq 0 ]
	[ "$(pairs <<<"$output")" = "1:e1 3:e1 5:i1 3:e2 " ]
}

@test "a bad profiles file exits 2 naming FILE:LINE; a missing one exits 2" {
	printf '%s\n' '{"user_id":"u1","traits":{}}' '' '{"user_id":"u2","traits":[1]}' '{"user":"u3"}' >"$T/p.ndjson"
	ev e1 purchase u1 2026-01-01T00:00:00Z >"$T/in"
	run --separate-stderr cm-match -c "$T/c.json" --profiles "$T/p.ndjson" "$T/in"
	[ "$status" -eq 2 ]
	[ -z "$output" ]
	[[ "$stderr" == *"cm-match: $T/p.ndjson:3: traits: expected an object"* ]]
	[[ "$stderr" == *"cm-match: $T/p.ndjson:4: unknown key \"user\" (expected user_id and traits)"* ]]
	run --separate-stderr cm-match -c "$T/c.json" --profiles "$T/nope" "$T/in"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"cm-match: --profiles: $T/nope: cannot open"* ]]
	run cm-match -c "$T/c.json" --profiles "" "$T/in"
	[ "$status" -eq 2 ]
	[[ "$output" == *"--profiles: empty file name"* ]]
}

@test "\"profile\" alone in a rule is a path error naming the campaign and the path" {
	echo '[{"id":9,"name":"x","status":"active","rule":{"where":{"field":"profile","op":"exists"}}}]' >"$T/bad.json"
	run --separate-stderr cm-match -c "$T/bad.json" --check
	[ "$status" -eq 2 ]
	[ "$stderr" = "cm-match: $T/bad.json:1: campaign 9: rule.where.field: \"profile\" alone is not a trait (expected profile.TRAIT such as profile.plan)" ]
}
