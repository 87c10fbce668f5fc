#!/usr/bin/env bats
# cm-match --profiles CONNINFO: the profiles table of PostgreSQL, looked up
# in batches for the users of the events in flight (one query per batch,
# never per event), cached for --profile-ttl; and bin/cm-worker passes it.

load lib/common
load lib/pg
bats_require_minimum_version 1.5.0

setup_file() {
	pg_start
}

teardown_file() {
	pg_stop
}

setup() {
	export CM_SQL_DIR=$TOP/share/sql
	pg_newdb
	cm-admin migrate >/dev/null
	cat >"$T/c.json" <<'JSON'
[{"id":1,"name":"pro","status":"active","rule":{"event_type":"purchase","where":{"field":"profile.plan","op":"eq","value":"pro"}}},
 {"id":2,"name":"seats","status":"active","rule":{"event_type":"purchase","jq":"(.profile.seats // 0) > 5"}},
 {"id":3,"name":"views","status":"active","rule":{"event_type":"view"}}]
JSON
}

teardown() {
	[ -n "${matcher:-}" ] && kill "$matcher" 2>/dev/null
	return 0
}

# ev ID TYPE USER: one event line.
ev() {
	printf '{"event_id":"%s","event_type":"%s","user_id":"%s","occurred_at":"2026-11-01T00:00:00Z","properties":{}}\n' "$1" "$2" "$3"
}

# pairs: "CAMPAIGN:EVENT" of each match line on stdin.
pairs() { jq -r '"\(.campaign_id):\(.event_id)"' | tr '\n' ' '; }

@test "--profiles CONNINFO: rules see the profiles table; a user without a row has none" {
	pg_sql "INSERT INTO profiles (user_id, traits) VALUES ('u1', '{\"plan\":\"pro\",\"seats\":9}'), ('u2', '{\"plan\":\"free\"}'), ('u\"3\\\\', '{\"plan\":\"pro\"}')"
	{ ev e1 purchase u1; ev e2 purchase u2; ev e3 purchase u4; ev e4 purchase 'u\"3\\\\'; ev e5 view u1; } >"$T/in"
	run --separate-stderr cm-match -c "$T/c.json" --profiles "$CM_DATABASE_URL" --emit matches --stats "$T/in"
	[ "$status" -eq 0 ]
	[ "$(pairs <<<"$output")" = "1:e1 2:e1 1:e4 3:e5 " ]
	# one query for the batch: the four purchasers (views need no profile)
	[[ "$stderr" == *"5 events, 3 matched, 4 matches, 0 rejected, 0 jq errors, 3 profiles read in 1 queries"* ]]
}

@test "--profiles CONNINFO: the input's identify events are not applied in memory" {
	{ ev i1 identify u1; printf '%s\n' '{"event_id":"i2","event_type":"identify","user_id":"u1","occurred_at":"2026-11-01T00:00:00Z","properties":{"plan":"pro"}}'; ev e1 purchase u1; } >"$T/in"
	run --separate-stderr cm-match -c "$T/c.json" --profiles "$CM_DATABASE_URL" --emit matches "$T/in"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	# while without --profiles they are
	run --separate-stderr cm-match -c "$T/c.json" --emit matches "$T/in"
	[ "$(pairs <<<"$output")" = "1:e1 " ]
}

@test "--profiles CONNINFO: a changed trait is seen once the TTL has passed" {
	pg_sql "INSERT INTO profiles (user_id, traits) VALUES ('u1', '{\"plan\":\"free\"}')"
	mkfifo "$T/fifo"
	cm-match -c "$T/c.json" --profiles "$CM_DATABASE_URL" --profile-ttl 300 --emit matches \
		<"$T/fifo" >"$T/out" 2>"$T/err" &
	matcher=$!
	exec 7>"$T/fifo"
	ev e1 purchase u1 >&7
	# e1 was matched (nothing) once it was read: wait until the input is taken
	sleep 0.2
	pg_sql "UPDATE profiles SET traits = '{\"plan\":\"pro\"}' WHERE user_id = 'u1'"
	# within the TTL the cached profile is used
	ev e2 purchase u1 >&7
	sleep 0.5
	# after it, the new one
	ev e3 purchase u1 >&7
	exec 7>&-
	wait "$matcher"
	matcher=
	[ "$(pairs <"$T/out")" = "1:e3 " ]
	[ ! -s "$T/err" ]
}

@test "--profiles CONNINFO: thousands of events, one query per batch, the answer of a file of the same profiles" {
	GEN=$CM_BUILD/tests/cm-gen
	"$GEN" events 6000 --seed 3 --types 6 >"$T/events"
	# a profile for every other of the generator's 100,000 users
	awk 'BEGIN { for (u = 1; u <= 100000; u += 2)
		printf "{\"user_id\":\"u-%d\",\"traits\":{\"plan\":\"%s\",\"seats\":%d}}\n",
			u, u % 3 ? "free" : "pro", u % 11 }' >"$T/profiles.ndjson"
	pg_sql "CREATE TABLE p (doc jsonb)"
	psql -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$PG_DB" -v ON_ERROR_STOP=1 \
		-c "\\copy p (doc) from '$T/profiles.ndjson' with (format csv, quote E'\\x01', delimiter E'\\x02')"
	pg_sql "INSERT INTO profiles (user_id, traits) SELECT doc->>'user_id', doc->'traits' FROM p"
	[ "$(pg_sql "SELECT count(*) FROM profiles")" -eq 50000 ]
	run --separate-stderr cm-match -c "$T/c.json" --profiles "$CM_DATABASE_URL" --emit matches --stats "$T/events"
	[ "$status" -eq 0 ]
	printf '%s\n' "$output" >"$T/db"
	# 6000 events fit two batches of 4096: two queries
	[[ "$stderr" == *" in 2 queries"* ]]
	cm-match -c "$T/c.json" --profiles "$T/profiles.ndjson" --emit matches "$T/events" >"$T/file"
	[ "$(wc -l <"$T/file")" -gt 100 ]
	diff -u "$T/file" "$T/db"
}

@test "--profiles CONNINFO: errors: a bad conninfo 2, unreachable 3, no profiles table 4, a bad TTL 2" {
	run cm-match -c "$T/c.json" --profiles "postgresql://[bad" /dev/null
	[ "$status" -eq 2 ]
	[[ "$output" == *"--profiles: invalid database connection string"* ]]
	run cm-match -c "$T/c.json" --profiles "host=/nonexistent port=1 dbname=x connect_timeout=1" /dev/null
	[ "$status" -eq 3 ]
	[[ "$output" == *"cm-match: profiles: "* ]]
	pg_sql "DROP TABLE profiles"
	run cm-match -c "$T/c.json" --profiles "$CM_DATABASE_URL" /dev/null
	[ "$status" -eq 4 ]
	[[ "$output" == *"the profiles table cannot be read (run cm-admin migrate)"* ]]
	run cm-match -c "$T/c.json" --profile-ttl -1 /dev/null
	[ "$status" -eq 2 ]
	[[ "$output" == *"--profile-ttl: expected milliseconds from 0 to 86400000, not '-1'"* ]]
}

@test "bin/cm-worker passes --profiles with its database" {
	grep -q -- '--profiles "\$db"' "$TOP/bin/cm-worker"
}

# with_profiles N: the profiles of users u-1..u-N (every other one) in the
# table and in $T/profiles.ndjson.
with_profiles() {
	awk -v n="$1" 'BEGIN { for (u = 1; u <= n; u += 2)
		printf "{\"user_id\":\"u-%d\",\"traits\":{\"plan\":\"%s\",\"seats\":%d}}\n",
			u, u % 3 ? "free" : "pro", u % 11 }' >"$T/profiles.ndjson"
	pg_sql "CREATE TABLE p (doc jsonb)"
	psql -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$PG_DB" -v ON_ERROR_STOP=1 \
		-c "\\copy p (doc) from '$T/profiles.ndjson' with (format csv, quote E'\\x01', delimiter E'\\x02')"
	pg_sql "INSERT INTO profiles (user_id, traits) SELECT doc->>'user_id', doc->'traits' FROM p"
}

@test "--profiles CONNINFO: limits in input order, explain and jq errors give what a file of the same profiles gives" {
	GEN=$CM_BUILD/tests/cm-gen
	with_profiles 100000
	# 600 users, so that the limit caps; a seventh of them with properties.x
	"$GEN" events 5000 --seed 4 --types 6 |
		jq -c '.user_id = "u-\((.user_id | ltrimstr("u-") | tonumber) % 600 + 1)" |
			if (.user_id | ltrimstr("u-") | tonumber) % 7 == 0 then .properties.x = 1 else . end' >"$T/events"
	cat >"$T/c.json" <<'JSON'
[{"id":1,"name":"pro","status":"active","rule":{"event_type":"purchase","where":{"field":"profile.plan","op":"eq","value":"pro"}},"limit":{"per_user":1}},
 {"id":2,"name":"jq","status":"active","rule":{"jq":".properties.x.y"}},
 {"id":3,"name":"seats","status":"active","rule":{"where":{"field":"profile.seats","op":"gte","value":3},"jq":".profile.seats + .properties.x"},"holdout":0.3}]
JSON
	for mode in "" "--explain"; do
		cm-match -c "$T/c.json" --profiles "$CM_DATABASE_URL" $mode --stats "$T/events" >"$T/db" 2>"$T/db.err"
		cm-match -c "$T/c.json" --profiles "$T/profiles.ndjson" $mode --stats "$T/events" >"$T/file" 2>"$T/file.err"
		[ "$(wc -l <"$T/file")" -gt 1000 ]
		diff -u "$T/file" "$T/db"
		# the same jq errors, reported and counted once each
		diff -u <(grep -v 'profiles read' "$T/file.err") <(sed 's/, [0-9]* profiles read in [0-9]* queries$//' "$T/db.err")
		grep -q 'jq error' "$T/db.err"
		# the limit was applied in input order, capping some
		[ -n "$mode" ] || grep -q '"campaign_id":1,"outcome":"capped"' "$T/db"
	done
}

@test "--profiles CONNINFO: without limits, the events matched at once and those kept come out in input order" {
	GEN=$CM_BUILD/tests/cm-gen
	with_profiles 100000
	"$GEN" events 12000 --seed 8 --types 4 >"$T/events"
	run --separate-stderr cm-match -c "$T/c.json" --profiles "$CM_DATABASE_URL" --stats "$T/events"
	[ "$status" -eq 0 ]
	# every event, in input order
	diff <(jq -r .event_id <<<"$output") <(jq -r .event_id "$T/events")
	[[ "$stderr" == *"12000 events"* ]]
	diff <(printf '%s\n' "$output") <(cm-match -c "$T/c.json" --profiles "$T/profiles.ndjson" "$T/events")
}
