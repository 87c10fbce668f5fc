#!/usr/bin/env bats
# cm-match --explain [--campaign ID]: one line per event and campaign of its
# type saying why it matched or not, each check with what it expected and
# what it found, the bucket and (offline) the limit's decision and reason.

load lib/common
bats_require_minimum_version 1.5.0

# ev ID TYPE USER TIME [PROPS]: one event line.
ev() {
	printf '{"event_id":"%s","event_type":"%s","user_id":"%s","occurred_at":"%s","properties":%s}\n' \
		"$1" "$2" "$3" "$4" "${5:-{\}}"
}

setup() {
	cat >"$T/c.json" <<'JSON'
[{"id":7,"name":"big-spenders-de","status":"active","ends_at":"2026-12-31T23:59:59Z",
  "rule":{"event_type":["purchase"],
          "where":{"all":[{"field":"properties.amount","op":"gte","value":100},
                          {"field":"properties.country","op":"in","value":["DE","AT"]}]},
          "jq":"(.properties.items // 0) >= 2"},
  "limit":{"per_user":1,"cooldown":"P7D"},"holdout":0.1,
  "variants":[{"name":"A","weight":1},{"name":"B","weight":1}]},
 {"id":8,"name":"paused","status":"paused","rule":{"event_type":"purchase"}},
 {"id":9,"name":"views","status":"active","rule":{"event_type":"view"}},
 {"id":10,"name":"pro","status":"active","rule":{"where":{"not":{"field":"profile.plan","op":"eq","value":"pro"}},
  "jq":".properties.x.y"}}]
JSON
}

@test "--explain: a line per campaign of the event's type, each check with what it found" {
	ev e-1 purchase u-42 2026-11-27T10:15:00Z '{"amount":50,"items":3,"x":1}' >"$T/in"
	run --separate-stderr cm-match -c "$T/c.json" --explain "$T/in"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	# campaigns 7, 8 (paused, still explained) and 10 (any type); not 9
	[ "$(jq -r .campaign_id <<<"$output" | tr '\n' ' ')" = "7 8 10 " ]
	l=$(head -1 <<<"$output")
	[ "$(jq -c '[.event_id, .campaign_id, .matched, .outcome]' <<<"$l")" = '["e-1",7,false,null]' ]
	[ "$(jq -c '.checks[0]' <<<"$l")" = '{"check":"status","ok":true,"status":"active"}' ]
	[ "$(jq -c '.checks[1]' <<<"$l")" = '{"check":"event_type","ok":true,"expected":["purchase"],"found":"purchase"}' ]
	[ "$(jq -c '.checks[2]' <<<"$l")" = '{"check":"window","ok":true,"starts_at":null,"ends_at":"2026-12-31T23:59:59Z","occurred_at":"2026-11-27T10:15:00Z"}' ]
	[ "$(jq -c '.checks[3]' <<<"$l")" = '{"check":"where","ok":false,"leaves":[{"path":"rule.where.all[0]","field":"properties.amount","op":"gte","value":100,"found":50,"ok":false},{"path":"rule.where.all[1]","field":"properties.country","op":"in","value":["DE","AT"],"missing":true,"ok":false}]}' ]
	[ "$(jq -c '.checks[4]' <<<"$l")" = '{"check":"jq","ok":true,"result":true}' ]
	# the bucket, also of a user who is no candidate; no limit check then
	jq -e '.checks[5] | .check == "bucket" and .holdout == 0.1 and .bucket >= 0 and .bucket < 1
		and (if .bucket < 0.1 then .group == "holdout" and (has("variant") | not)
		     else .group == "variant" and (.variant == "A" or .variant == "B") end)' <<<"$l"
	[ "$(jq -c '.checks | length' <<<"$l")" -eq 6 ]
	[ "$(sed -n 2p <<<"$output" | jq -c '[.matched, .checks[0]]')" = '[false,{"check":"status","ok":false,"status":"paused"}]' ]
	# a jq runtime error is the jq check's answer, with jq's message
	[ "$(sed -n 3p <<<"$output" | jq -c '.checks[4]')" = '{"check":"jq","ok":false,"error":"Cannot index number with string \"y\""}' ]
}

@test "--explain: the outcome, the group and the limit's decision with its reason" {
	{
		ev e-17 purchase u-1 2026-11-27T10:15:00Z '{"amount":150,"items":2,"country":"DE"}'
		ev e-18 purchase u-1 2026-11-28T10:15:00Z '{"amount":150,"items":2,"country":"AT"}'
	} >"$T/in"
	run --separate-stderr cm-match -c "$T/c.json" --explain --campaign 7 "$T/in"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	first=${lines[0]} second=${lines[1]}
	group=$(jq -r '.checks[] | select(.check == "bucket") | .group' <<<"$first")
	if [ "$group" = holdout ]; then o=holdout; else o=matched; fi
	[ "$(jq -r .outcome <<<"$first")" = "$o" ]
	[ "$(jq -c '.checks[] | select(.check == "limit")' <<<"$first")" = '{"check":"limit","ok":true,"per_user":1,"cooldown":"P7D","before":0,"reason":"within the limit"}' ]
	[ "$(jq -c '[.matched, .outcome]' <<<"$second")" = '[true,"capped"]' ]
	[ "$(jq -c '.checks[] | select(.check == "limit")' <<<"$second")" = '{"check":"limit","ok":false,"per_user":1,"cooldown":"P7D","before":1,"reason":"capped: user already matched 1 time, last on 2026-11-27T10:15:00Z by event e-17","capped_by":"e-17","capped_at":"2026-11-27T10:15:00Z"}' ]
	# the same group on both lines, and the variant on the line when not a holdout
	[ "$(jq -c '.checks[] | select(.check == "bucket")' <<<"$first")" = "$(jq -c '.checks[] | select(.check == "bucket")' <<<"$second")" ]
	if [ "$o" = matched ]; then
		[ "$(jq -r .variant <<<"$first")" = "$(jq -r '.checks[] | select(.check == "bucket") | .variant' <<<"$first")" ]
	fi
}

@test "--explain reads the profile: found in the profile, missing without one" {
	printf '%s\n' '{"user_id":"u-1","traits":{"plan":"pro"}}' >"$T/p"
	{ ev v-1 view u-1 2026-11-27T10:15:00Z '{"x":{"y":1}}'; ev v-2 view u-2 2026-11-27T10:15:00Z '{"x":{"y":1}}'; } >"$T/in"
	run --separate-stderr cm-match -c "$T/c.json" --profiles "$T/p" --explain --campaign 10 "$T/in"
	[ "$status" -eq 0 ]
	[ "$(jq -c '.checks[3].leaves[0] | [.path, .found, .missing, .ok]' <<<"${lines[0]}")" = '["rule.where.not","pro",null,true]' ]
	[ "$(jq -c '[.matched, .checks[3].ok]' <<<"${lines[0]}")" = '[false,false]' ]
	[ "$(jq -c '.checks[3].leaves[0] | [.missing, .ok]' <<<"${lines[1]}")" = '[true,false]' ]
	[ "$(jq -c '[.matched, .outcome]' <<<"${lines[1]}")" = '[true,"matched"]' ]
}

@test "--explain usage: --campaign needs --explain and a known id; no --emit matches" {
	run cm-match -c "$T/c.json" --campaign 7 /dev/null
	[ "$status" -eq 2 ]
	[[ "$output" == *"--campaign goes with --explain"* ]]
	run cm-match -c "$T/c.json" --explain --campaign x /dev/null
	[ "$status" -eq 2 ]
	[[ "$output" == *"--campaign: expected a campaign id from 1 to 9007199254740992, not 'x'"* ]]
	run cm-match -c "$T/c.json" --explain --campaign 99 /dev/null
	[ "$status" -eq 2 ]
	[[ "$output" == *"--campaign 99: no such campaign in $T/c.json"* ]]
	run cm-match -c "$T/c.json" --explain --emit matches /dev/null
	[ "$status" -eq 2 ]
	[[ "$output" == *"--explain writes its own lines: no --emit matches, --matched-only or --summary"* ]]
}
