#!/usr/bin/env bats
# cm-store against a throwaway PostgreSQL (tests/lib/pg.bash) and, for --ack,
# a throwaway Redis (tests/lib/redis.bash).

load lib/common
load lib/pg
load lib/redis

setup_file() {
	pg_start
	cm-admin migrate --dir "$TOP/share/sql" >/dev/null
	redis_start 3>&-
}

teardown_file() {
	redis_cleanup
	pg_stop
}

setup() {
	# A server stopped by a test is brought back for the next one.
	pg_sql "SELECT 1" >/dev/null 2>&1 || pg_start_server
	pg_sql "TRUNCATE events, matches, match_limits, profiles, profile_traits"
	if [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" != PONG ]; then
		redis_restart 3>&-
	fi
	rcli flushall >/dev/null
}

teardown() {
	# Writers and stores a test left behind (by their pids, never by name).
	local p
	for p in ${BG_PIDS:-}; do
		kill "$p" 2>/dev/null || true
	done
	pg_sql "ALTER TABLE events DROP CONSTRAINT IF EXISTS no_poison" >/dev/null 2>&1 || true
	return 0
}

# poison_rule: a rule of this database that no event check knows about (so
# that the server refuses a valid event): no event_type "poison". teardown
# drops it.
poison_rule() {
	pg_sql "ALTER TABLE events ADD CONSTRAINT no_poison CHECK (event_type <> 'poison')"
}

# gen FROM TO: canonical events e-FROM..e-TO as cm-match writes them: every
# third matches campaign 1, every fifth campaign 2 as well.
gen() {
	awk -v a="$1" -v b="$2" 'BEGIN { for (i = a; i <= b; i++) {
		m = ""
		if (i % 3 == 0) m = "{\"campaign_id\":1}"
		if (i % 5 == 0) m = m (m == "" ? "" : ",") "{\"campaign_id\":2}"
		printf "{\"event_id\":\"e-%d\",\"event_type\":\"purchase\",\"user_id\":\"u-%d\",\"occurred_at\":\"2026-11-27T10:15:00.%03dZ\",\"properties\":{\"amount\":%d.5,\"note\":\"tab\\there \\\\ back\"},\"matches\":[%s]}\n", i, i % 7, i % 1000, i, m } }'
}

# nmatches FROM TO: the number of matches gen FROM TO carries.
nmatches() {
	awk -v a="$1" -v b="$2" 'BEGIN { n = 0; for (i = a; i <= b; i++) n += (i % 3 == 0) + (i % 5 == 0); print n }'
}

# count TABLE: its rows.
count() {
	pg_sql "SELECT count(*) FROM $1"
}

# wait_for CMD...: retries CMD for up to 10 s.
wait_for() {
	local i
	for ((i = 0; i < 200; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}

# has_rows TABLE N: true when TABLE holds N rows.
has_rows() {
	[ "$(count "$1")" -eq "$2" ]
}

@test "cm-store: --help, --version and usage errors" {
	run cm-store --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"--batch N"* ]]
	[[ "$output" == *"--ack"* ]]
	run cm-store --version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^cm-store\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
	for bad in "--batch 0" "--batch x" "--flush-ms -1" "--connections 0" "--retry-for x" \
		"--max-line 1" "--max-line 63" "--redis redis://x" "--bogus" "--db nosuchkey=1" \
		"--ack --redis http://x" "--ack --stream ''" "--group ''" "--batch" "-d"; do
		eval "run cm-store $bad </dev/null"
		echo "$bad: $status $output"
		[ "$status" -eq 2 ]
		[ "${lines[-1]}" = "Try 'cm-store --help' for more information." ]
	done
	# the wording every tool uses
	run cm-store --bogus </dev/null
	[ "${lines[0]}" = "cm-store: unknown option '--bogus'" ]
	run cm-store --batch </dev/null
	[ "${lines[0]}" = "cm-store: option '--batch' needs a value" ]
	run cm-store --max-line 63 </dev/null
	[ "${lines[0]}" = "cm-store: --max-line: expected a size from 64 to 1G, not '63'" ]
	run cm-store --retry-for -1 </dev/null
	[ "${lines[0]}" = "cm-store: --retry-for: expected seconds from 0 to 31536000, not '-1'" ]
	run cm-store --db nosuchkey=1 </dev/null
	[[ "${lines[0]}" == "cm-store: --db: "* ]]
}

@test "cm-store: stores events and their matches, values as given" {
	gen 1 300 >"$T/in"
	run cm-store --stats "$T/in"
	[ "$status" -eq 0 ]
	[[ "$output" == *"300 events (300 new), $(nmatches 1 300) matches ($(nmatches 1 300) new), 0 rejected"* ]]
	[ "$(count events)" -eq 300 ]
	[ "$(count matches)" -eq "$(nmatches 1 300)" ]
	[ "$(pg_sql "SELECT event_type, user_id, occurred_at = '2026-11-27T10:15:00.015Z', properties->>'amount', properties->>'note' FROM events WHERE event_id = 'e-15'")" = $'purchase|u-1|t|15.5|tab\there \\ back' ]
	[ "$(pg_sql "SELECT string_agg(campaign_id::text || ':' || user_id || ':' || event_type, ',' ORDER BY campaign_id) FROM matches WHERE event_id = 'e-15'")" = "1:u-1:purchase,2:u-1:purchase" ]
	[ "$(pg_sql "SELECT count(*) FROM matches m JOIN events e USING (event_id) WHERE m.occurred_at = e.occurred_at")" -eq "$(nmatches 1 300)" ]
}

@test "cm-store: storing the same input twice changes nothing" {
	gen 1 500 >"$T/in"
	cm-store "$T/in"
	before=$(pg_sql "SELECT count(*), sum(length(properties::text)) FROM events" "SELECT count(*) FROM matches")
	run cm-store --stats --batch 64 "$T/in"
	[ "$status" -eq 0 ]
	[[ "$output" == *"500 events (0 new), $(nmatches 1 500) matches (0 new)"* ]]
	[ "$(pg_sql "SELECT count(*), sum(length(properties::text)) FROM events" "SELECT count(*) FROM matches")" = "$before" ]
	# Half old, half new, and a line twice in one batch.
	{ gen 251 750; gen 700 700; } >"$T/in2"
	run cm-store --stats "$T/in2"
	[ "$status" -eq 0 ]
	[[ "$output" == *"501 events (250 new)"* ]]
	[ "$(count events)" -eq 750 ]
	[ "$(count matches)" -eq "$(nmatches 1 750)" ]
}

@test "cm-store: match lines alone are stored, and their event later" {
	cat >"$T/m" <<-'EOF'
	{"campaign_id":7,"event_id":"e-1","user_id":"u-1","event_type":"purchase","occurred_at":"2026-11-27T12:15:00+02:00","_stream_id":"1-1"}
	{"campaign_id":8,"event_id":"e-1","user_id":"u-1","event_type":"purchase","occurred_at":"2026-11-27T10:15:00Z"}
	{"campaign_id":7,"event_id":"e-1","user_id":"u-1","event_type":"purchase","occurred_at":"2026-11-27T10:15:00Z"}
	EOF
	run cm-store "$T/m"
	[ "$status" -eq 0 ]
	[ "$(count matches)" -eq 2 ]
	[ "$(count events)" -eq 0 ]
	[ "$(pg_sql "SELECT occurred_at = '2026-11-27T10:15:00Z' FROM matches WHERE campaign_id = 7")" = t ]
	gen 1 3 | cm-store
	[ "$(count events)" -eq 3 ]
	[ "$(count matches)" -eq 3 ]
}

@test "cm-store: invalid lines are reported with FILE:LINE and skipped, status 1" {
	{
		gen 1 2
		echo 'not json'
		echo '{"event_id":"x","user_id":"u","occurred_at":"2026-11-27T10:15:00Z","properties":{}}'
		echo '{"event_id":"x","event_type":"bad type","user_id":"u","occurred_at":"2026-11-27T10:15:00Z","properties":{}}'
		echo '{"event_id":"x","event_type":"t","user_id":"u","occurred_at":"yesterday","properties":{}}'
		echo '{"event_id":"x","event_type":"t","user_id":"u","occurred_at":"2026-11-27T10:15:00Z","properties":{"a":"\u0000"}}'
		echo '{"event_id":"x","event_type":"t","user_id":"u","occurred_at":"2026-11-27T10:15:00Z","properties":{},"matches":[{"campaign_id":"7"}]}'
		echo '{"campaign_id":-1,"event_id":"x","user_id":"u","event_type":"t","occurred_at":"2026-11-27T10:15:00Z"}'
		echo '{"campaign_id":1,"event_id":"x","user_id":"u","occurred_at":"2026-11-27T10:15:00Z"}'
		echo '[1,2]'
		echo
		gen 3 3
	} >"$T/in"
	run cm-store "$T/in"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "${lines[0]}" == "cm-store: $T/in:3: invalid JSON"* ]]
	[[ "${lines[1]}" == "cm-store: $T/in:4: "*event_type* ]]
	[[ "${lines[2]}" == "cm-store: $T/in:5: "*event_type* ]]
	[[ "${lines[3]}" == "cm-store: $T/in:6: "*occurred_at* ]]
	[[ "${lines[4]}" == "cm-store: $T/in:7: field 'properties.a': must not contain NUL (\\u0000)"* ]]
	[[ "${lines[5]}" == "cm-store: $T/in:8: "*campaign_id* ]]
	[[ "${lines[6]}" == "cm-store: $T/in:9: field 'campaign_id': expected an integer"* ]]
	[[ "${lines[7]}" == "cm-store: $T/in:10: field 'event_type': missing"* ]]
	[[ "${lines[8]}" == "cm-store: $T/in:11: "* ]]
	[ "${#lines[@]}" -eq 9 ]
	[ "$(pg_sql "SELECT string_agg(event_id, ',' ORDER BY event_id) FROM events")" = "e-1,e-2,e-3" ]
	[ "$(count matches)" -eq 1 ]
}

@test "cm-store: a truncated last line is reported, not stored; a whole one without newline is" {
	{ gen 1 2; gen 3 3 | head -c 60; } >"$T/cut"
	run cm-store "$T/cut"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$T/cut:3: truncated last line"* ]]
	[ "$(count events)" -eq 2 ]
	{ gen 4 4; gen 5 5 | tr -d '\n'; } >"$T/whole"
	run cm-store "$T/whole"
	[ "$status" -eq 0 ]
	[ "$(count events)" -eq 4 ]
}

@test "cm-store: what jsonb would refuse is refused by the validator, before the server sees it" {
	{
		gen 1 3
		echo '{"event_id":"s","event_type":"t","user_id":"u","occurred_at":"2026-11-27T10:15:00Z","properties":{"a":"\ud800"}}'
		gen 4 6
		echo '{"event_id":"n","event_type":"t","user_id":"u","occurred_at":"2026-11-27T10:15:00Z","properties":{"a":1e999999}}'
		gen 7 9
	} >"$T/in"
	run cm-store --batch 100 "$T/in"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "${lines[0]}" == "cm-store: $T/in:4: field 'properties.a': unpaired surrogate escape (\\uD800-\\uDFFF), got \"\\ud800\"" ]]
	[[ "${lines[1]}" == "cm-store: $T/in:8: field 'properties.a': number out of the range PostgreSQL can store "* ]]
	[ "${#lines[@]}" -eq 2 ]
	[ "$(count events)" -eq 9 ]
	[ "$(count matches)" -eq "$(nmatches 1 9)" ]
}

@test "cm-store: a value PostgreSQL refuses costs its own line, not the batch" {
	poison_rule
	{
		gen 1 3
		echo '{"event_id":"p1","event_type":"poison","user_id":"u","occurred_at":"2026-11-27T10:15:00Z","properties":{}}'
		gen 4 6
		echo '{"event_id":"p2","event_type":"poison","user_id":"u","occurred_at":"2026-11-27T10:15:00Z","properties":{}}'
		gen 7 9
	} >"$T/in"
	run cm-store --batch 100 "$T/in"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "${lines[0]}" == "cm-store: $T/in:4: PostgreSQL: ERROR: "*"no_poison"*"not stored" ]]
	[[ "${lines[1]}" == "cm-store: $T/in:8: PostgreSQL: ERROR: "*"not stored" ]]
	[ "${#lines[@]}" -eq 2 ]
	[ "$(count events)" -eq 9 ]
	[ "$(count matches)" -eq "$(nmatches 1 9)" ]
}

@test "cm-store: a line longer than --max-line is reported and skipped" {
	{
		gen 1 1
		printf '{"event_id":"big","event_type":"t","user_id":"u","occurred_at":"2026-11-27T10:15:00Z","properties":{"pad":"%s"}}\n' "$(head -c 5000 /dev/zero | tr '\0' x)"
		gen 2 2
	} >"$T/in"
	run cm-store --max-line 4K "$T/in"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$T/in:2: line longer than 4096 bytes"* ]]
	[ "$(count events)" -eq 2 ]
}

@test "cm-store: several files and stdin; an unreadable file is status 2" {
	gen 1 10 >"$T/a"
	gen 11 20 >"$T/b"
	gen 21 30 | cm-store "$T/a" - "$T/b"
	[ "$(count events)" -eq 30 ]
	run cm-store "$T/a" "$T/nonexistent"
	[ "$status" -eq 2 ]
	[[ "$output" == *"$T/nonexistent: cannot open"* ]]
}

@test "cm-store: a read error is status 5; what was read before it is stored" {
	gen 1 5 >"$T/a"
	mkdir "$T/dir"
	run cm-store "$T/a" "$T/dir"
	echo "$output"
	[ "$status" -eq 5 ]
	[[ "$output" == *"$T/dir: read error: Is a directory"* ]]
	[ "$(count events)" -eq 5 ]
}

@test "cm-store: PostgreSQL refusing (no permission) is status 4, at once" {
	pg_sql "DROP ROLE IF EXISTS cm_nobody" "CREATE ROLE cm_nobody LOGIN"
	gen 1 5 >"$T/in"
	SECONDS=0
	run cm-store --db "host=$PG_DIR port=$PG_PORT dbname=$PG_DB user=cm_nobody" "$T/in"
	pg_sql "DROP OWNED BY cm_nobody" "DROP ROLE cm_nobody"
	echo "$output"
	[ "$status" -eq 4 ]
	[[ "$output" == *"permission denied"* ]]
	[[ "$output" != *retrying* ]]
	[ "$SECONDS" -le 5 ]
	[ "$(count events)" -eq 0 ]
}

@test "cm-store: a database without the schema is status 2, an unreachable one status 3" {
	pg_newdb
	run cm-store </dev/null
	[ "$status" -eq 2 ]
	[[ "$output" == *"cm-admin migrate"* ]]
	SECONDS=0
	run cm-store --db "host=$T port=1" --retry-for 1 </dev/null
	[ "$status" -eq 3 ]
	[[ "$output" == *"cannot connect to PostgreSQL"* ]]
	[ "$SECONDS" -le 5 ]
}

@test "cm-store: a trickle is stored within half a second while the writer stays open" {
	mkfifo "$T/fifo"
	cm-store --flush-ms 100 <"$T/fifo" 2>"$T/err" 3>&- &
	store=$!
	BG_PIDS=$store
	exec 5>"$T/fifo"
	gen 1 1 >&5
	start=$(date +%s%N)
	wait_for has_rows events 1
	ms=$((($(date +%s%N) - start) / 1000000))
	echo "stored after $ms ms"
	[ "$ms" -lt 500 ]
	gen 2 2 >&5
	wait_for has_rows events 2
	exec 5>&-
	wait "$store"
}

@test "cm-store: SIGTERM stores the batch in hand and exits 0" {
	mkfifo "$T/fifo"
	cm-store --flush-ms 600000 <"$T/fifo" 2>"$T/err" 3>&- &
	store=$!
	BG_PIDS=$store
	exec 5>"$T/fifo"
	gen 1 20 >&5
	sleep 0.3
	[ "$(count events)" -eq 0 ]
	kill -TERM "$store"
	status=0
	wait "$store" || status=$?
	exec 5>&-
	cat "$T/err"
	[ "$status" -eq 0 ]
	[ "$(count events)" -eq 20 ]
}

@test "cm-store: PostgreSQL restarted mid-stream: every row lands once" {
	mkfifo "$T/fifo"
	cm-store --stats --flush-ms 50 --batch 100 <"$T/fifo" 2>"$T/err" 3>&- &
	store=$!
	BG_PIDS=$store
	exec 5>"$T/fifo"
	gen 1 500 >&5
	wait_for has_rows events 500
	pg_stop_server
	gen 501 1000 >&5
	sleep 0.5
	pg_start_server
	gen 1001 1200 >&5
	exec 5>&-
	status=0
	wait "$store" || status=$?
	cat "$T/err"
	[ "$status" -eq 0 ]
	grep -q "retrying for up to 60 s" "$T/err"
	[ "$(count events)" -eq 1200 ]
	[ "$(count matches)" -eq "$(nmatches 1 1200)" ]
}

@test "cm-store: PostgreSQL gone for longer than --retry-for is status 3" {
	mkfifo "$T/fifo"
	cm-store --retry-for 1 --flush-ms 10 <"$T/fifo" 2>"$T/err" 3>&- &
	store=$!
	BG_PIDS=$store
	exec 5>"$T/fifo"
	gen 1 5 >&5
	wait_for has_rows events 5
	pg_stop_server
	gen 6 10 >&5
	SECONDS=0
	status=0
	wait "$store" || status=$?
	exec 5>&-
	cat "$T/err"
	[ "$status" -eq 3 ]
	[ "$SECONDS" -le 6 ]
	grep -q "gave up" "$T/err"
	grep -q "neither stored nor acknowledged" "$T/err"
}

@test "cm-store: two stores of the same input side by side store it once" {
	gen 1 3000 >"$T/in"
	cm-store --batch 200 "$T/in" 2>"$T/err1" 3>&- &
	a=$!
	cm-store --batch 300 --connections 1 "$T/in" 2>"$T/err2" 3>&- &
	b=$!
	BG_PIDS="$a $b"
	wait "$a"
	wait "$b"
	[ "$(count events)" -eq 3000 ]
	[ "$(count matches)" -eq "$(nmatches 1 3000)" ]
}

# rraw ARGS: redis-cli against the test server, raw output.
rraw() {
	redis-cli -p "$REDIS_PORT" --raw "$@"
}

# xadd_lines N: adds N entries to cm:events (group cm-workers), reads them
# so that they are pending, and prints the events with their _stream_id, as
# cm-consume would.
xadd_lines() {
	rcli xgroup create cm:events cm-workers 0 mkstream >/dev/null
	for ((i = 1; i <= $1; i++)); do
		echo "XADD cm:events * data x"
	done | rraw >"$BATS_TEST_TMPDIR/ids"
	gen 1 "$1" | paste -d ' ' - "$BATS_TEST_TMPDIR/ids" |
		sed -E 's/\} ([0-9]+-[0-9]+)$/,"_stream_id":"\1"}/'
	rcli xreadgroup group cm-workers c1 count 100000 streams cm:events '>' >/dev/null
}

# pending: the number of entries pending in cm-workers.
pending() {
	rraw xpending cm:events cm-workers | head -1
}

# none_pending: true when cm-workers has nothing pending.
none_pending() {
	[ "$(pending)" -eq 0 ]
}

@test "cm-store --ack: acknowledges what it committed" {
	xadd_lines 50 >"$T/in"
	[ "$(pending)" -eq 50 ]
	echo '{"event_id":"bad","_stream_id":"9-9"}' >>"$T/in"
	run cm-store --ack --stats "$T/in"
	[ "$status" -eq 1 ]
	[[ "$output" == *"50 acknowledged"* ]]
	[ "$(pending)" -eq 0 ]
	[ "$(count events)" -eq 50 ]
	# A bad stream id is a bad line; lines without one are stored, not acked.
	{ gen 60 60 | sed 's/}$/,"_stream_id":"x-1"}/'; gen 61 61; } >"$T/in2"
	run cm-store --ack "$T/in2"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$T/in2:1: field '_stream_id'"* ]]
	[ "$(count events)" -eq 51 ]
}

# dead_field ID FIELD: field FIELD of the entry of KEY:dead whose id field is ID.
dead_field() {
	redis-cli -p "$REDIS_PORT" --json xrange cm:events:dead - + |
		jq -r --arg id "$1" --arg f "$2" '.[] | .[1] as $x
			| [range(0; $x | length; 2) | {($x[.]): $x[. + 1]}] | add
			| select(.id == $id) | .[$f]'
}

@test "cm-store --ack: a line it can never store is dead-lettered at once, not left pending" {
	poison_rule
	xadd_lines 20 >"$T/all"
	# line 5 fails the validator, line 12 the database; both keep their ids
	sed -e '5s/"note":/"a":"\\u0000","note":/' -e '12s/"event_type":"purchase"/"event_type":"poison"/' "$T/all" >"$T/in"
	id5=$(sed -n '5s/.*"_stream_id":"\([^"]*\)".*/\1/p' "$T/in")
	id12=$(sed -n '12s/.*"_stream_id":"\([^"]*\)".*/\1/p' "$T/in")
	[ "$(pending)" -eq 20 ]
	run cm-store --ack --batch 100 --stats "$T/in"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"cm-store: $T/in:5: field 'properties.a': must not contain NUL (\\u0000), got \"\\u0000\" (entry $id5 goes to cm:events:dead)"* ]]
	[[ "$output" == *"cm-store: $T/in:12: PostgreSQL: ERROR: "*"no_poison"*": not stored (entry $id12 goes to cm:events:dead)"* ]]
	[[ "$output" == *"2 rejected (2 dead-lettered)"*"18 acknowledged"* ]]
	# nothing is left pending, the rest of the batch is stored
	[ "$(pending)" -eq 0 ]
	[ "$(count events)" -eq 18 ]
	[ "$(pg_sql "SELECT count(*) FROM events WHERE event_id IN ('e-5', 'e-12')")" -eq 0 ]
	[ "$(count matches)" -eq $(($(nmatches 1 20) - $(nmatches 5 5) - $(nmatches 12 12))) ]
	# the two are in KEY:dead with their reason, their line and their group
	[ "$(rraw xlen cm:events:dead)" -eq 2 ]
	[[ "$(dead_field "$id5" reason)" == "not storable: field 'properties.a': must not contain NUL (\\u0000), got \"\\u0000\"" ]]
	[[ "$(dead_field "$id12" reason)" == "not storable: PostgreSQL: ERROR: "*"no_poison"* ]]
	[ "$(dead_field "$id5" data)" = "$(sed -n 5p "$T/in")" ]
	[ "$(dead_field "$id12" data)" = "$(sed -n 12p "$T/in")" ]
	[ "$(dead_field "$id12" group)" = cm-workers ]
	# so they hold back no trimming: every entry of the stream can go
	cm-publish --trim
	[ "$(rraw xlen cm:events)" -eq 0 ]
}

@test "cm-store --ack: never before COMMIT; acknowledged once PostgreSQL is back" {
	xadd_lines 20 >"$T/in"
	mkfifo "$T/fifo"
	cm-store --ack --flush-ms 10 <"$T/fifo" 2>"$T/err" 3>&- &
	store=$!
	BG_PIDS=$store
	exec 5>"$T/fifo"
	pg_stop_server
	cat "$T/in" >&5 || { cat "$T/err"; false; }
	sleep 0.5
	[ "$(pending)" -eq 20 ]
	pg_start_server
	wait_for has_rows events 20
	wait_for none_pending
	exec 5>&-
	status=0
	wait "$store" || status=$?
	cat "$T/err"
	[ "$status" -eq 0 ]
	[ "$(pending)" -eq 0 ]
}

@test "cm-store --ack: Redis refusing is status 4, at once: a wrong password, a key of another type" {
	xadd_lines 5 >"$T/in"
	run_wrong_password cm-store --ack "$T/in"
	[ "$(count events)" -eq 0 ]
	# the stream is not a stream any more: the rows are stored, XACK refused
	rcli del cm:events >/dev/null
	rcli set cm:events x >/dev/null
	SECONDS=0
	run cm-store --ack "$T/in"
	echo "$output"
	[ "$status" -eq 4 ]
	[[ "$output" == *"XACK cm:events cm-workers: WRONGTYPE"* ]]
	[[ "$output" == *"stored but not acknowledged"* ]]
	[ "$SECONDS" -le 3 ]
	[ "$(count events)" -eq 5 ]
}

@test "cm-store --ack: Redis down after COMMIT: acknowledged once it is back" {
	xadd_lines 10 >"$T/in"
	redis_stop
	mkfifo "$T/fifo"
	cm-store --ack --flush-ms 10 <"$T/fifo" 2>"$T/err" 3>&- &
	store=$!
	BG_PIDS=$store
	exec 5>"$T/fifo"
	cat "$T/in" >&5 || { cat "$T/err"; false; }
	wait_for has_rows events 10
	sleep 0.3
	[ "$(count events)" -eq 10 ]
	# (redis-server would keep the fifo's write end open)
	_redis_launch 3>&- 5>&-
	wait_for none_pending
	exec 5>&-
	status=0
	wait "$store" || status=$?
	cat "$T/err"
	[ "$status" -eq 0 ]
	grep -q "the rows are committed" "$T/err"
}

PY=/usr/bin/python3

# two_stores ARGS... -- ARGS...: two cm-store processes at once, with the
# arguments before and after --; both must end with status 0.
two_stores() {
	local a=() pa pb sa=0 sb=0
	while [ "$1" != -- ]; do
		a+=("$1")
		shift
	done
	shift
	cm-store "${a[@]}" 2>"$T/err.a" 3>&- &
	pa=$!
	cm-store "$@" 2>"$T/err.b" 3>&- &
	pb=$!
	BG_PIDS="$pa $pb"
	wait "$pa" || sa=$?
	wait "$pb" || sb=$?
	cat "$T/err.a" "$T/err.b"
	[ "$sa" -eq 0 ] && [ "$sb" -eq 0 ]
}

# profiles_json: every stored profile as one JSON object {user: traits}.
profiles_json() {
	pg_sql "SELECT coalesce(jsonb_object_agg(user_id, traits), '{}') FROM profiles"
}

# same_json A B: true when files A and B hold the same JSON value.
same_json() {
	"$PY" -c 'import json, sys; a, b = (json.load(open(f)) for f in sys.argv[1:]); sys.exit(a != b)' "$1" "$2"
}

@test "cm-store: identify events build the profile, in one batch and across batches" {
	cat >"$T/in" <<-'EOF'
	{"event_id":"i-1","event_type":"identify","user_id":"u-1","occurred_at":"2026-11-01T10:00:00Z","properties":{"plan":"free","country":"DE"}}
	{"event_id":"p-1","event_type":"purchase","user_id":"u-1","occurred_at":"2026-11-01T11:00:00Z","properties":{"plan":"not a trait"}}
	{"event_id":"i-2","event_type":"identify","user_id":"u-1","occurred_at":"2026-11-03T10:00:00+02:00","properties":{"plan":"pro","seats":3}}
	{"event_id":"i-3","event_type":"identify","user_id":"u-1","occurred_at":"2026-11-02T10:00:00Z","properties":{"plan":"team","country":null}}
	{"event_id":"i-4","event_type":"identify","user_id":"u-2","occurred_at":"2026-11-02T10:00:00Z","properties":{"address":{"city":"Berlin"}}}
	{"event_id":"i-5","event_type":"identify","user_id":"u-3","occurred_at":"2026-11-02T10:00:00Z","properties":{"x":1}}
	{"event_id":"i-6","event_type":"identify","user_id":"u-3","occurred_at":"2026-11-02T10:00:00Z","properties":{"x":null}}
	EOF
	want='{"u-1": {"plan": "pro", "seats": 3}, "u-2": {"address": {"city": "Berlin"}}, "u-3": {}}'
	run cm-store --stats "$T/in"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"6 identify events: 3 profiles changed"* ]]
	[ "$(profiles_json)" = "$want" ]
	[ "$(count events)" -eq 7 ]
	# one line per batch, in reverse order: the same profiles
	pg_sql "TRUNCATE events, profiles, profile_traits"
	tac "$T/in" | cm-store --batch 1
	[ "$(profiles_json)" = "$want" ]
	# redelivered: nothing changes
	run cm-store --stats --batch 2 "$T/in"
	[ "$status" -eq 0 ]
	[[ "$output" == *"7 events (0 new)"*"0 profiles changed"* ]]
	[ "$(profiles_json)" = "$want" ]
}

@test "cm-store: identify events through two stores at once, redelivered, equal the offline answer" {
	"$PY" - "$T" <<-'PY'
	import json, random, sys
	from datetime import datetime, timedelta, timezone
	random.seed(5)
	t = sys.argv[1]
	evs = []
	for i in range(4000):
	    u = "u-%d" % random.randrange(40)
	    # few distinct times, written with different offsets, so that ties
	    # on occurred_at are common and the offsets must be understood
	    at = datetime(2026, 11, random.randint(1, 3), random.randint(0, 2), tzinfo=timezone.utc)
	    off = random.choice([0, 60, -90])
	    local = at.astimezone(timezone(timedelta(minutes=off)))
	    ts = local.isoformat().replace("+00:00", "Z")
	    if random.random() < 0.3:
	        evs.append({"event_id": "p-%05d" % i, "event_type": "purchase", "user_id": u,
	                    "occurred_at": ts, "properties": {"plan": "ignored"}})
	        continue
	    traits = {}
	    for k in random.sample(["plan", "country", "seats", "tags", "\u00e9", "a b"], random.randint(1, 3)):
	        traits[k] = random.choice([None, "a", "b", 3, 2.5, [1, 2], {"x": i}, True])
	    evs.append({"event_id": "i-%05d" % random.randrange(100000) + "-%d" % i, "event_type": "identify",
	                "user_id": u, "occurred_at": ts, "properties": traits})
	best = {}
	users = set()
	for e in evs:
	    if e["event_type"] != "identify":
	        continue
	    users.add(e["user_id"])
	    when = datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00"))
	    for k, v in e["properties"].items():
	        key = (e["user_id"], k)
	        cand = (when, e["event_id"].encode())
	        if key not in best or cand > best[key][0]:
	            best[key] = (cand, v)
	prof = {u: {} for u in users}
	for (u, k), (_, v) in best.items():
	    if v is not None:
	        prof[u][k] = v
	json.dump(prof, open(t + "/want.json", "w"))
	for s in ("a", "b"):
	    order = evs[:] + random.sample(evs, 800)   # every event, some twice
	    random.shuffle(order)
	    with open(t + "/in." + s, "w") as f:
	        for e in order:
	            f.write(json.dumps(e, ensure_ascii=False) + "\n")
	PY
	two_stores --batch 37 "$T/in.a" -- --batch 50 --connections 3 "$T/in.b"
	profiles_json >"$T/got.json"
	same_json "$T/want.json" "$T/got.json"
	[ "$(count events)" -eq 4000 ]
	# all of it once more in one batch: the same
	cm-store --batch 100000 "$T/in.a"
	profiles_json >"$T/again.json"
	same_json "$T/want.json" "$T/again.json"
}

@test "cm-store: limited candidates are decided (per_user, cooldown, holdouts count), a redelivery keeps its outcome" {
	cat >"$T/in" <<-'EOF'
	{"event_id":"a","event_type":"p","user_id":"u-1","occurred_at":"2026-11-05T00:00:00Z","properties":{},"matches":[{"campaign_id":7,"outcome":"matched","variant":"A","limit":{"per_user":2,"cooldown":"P1D"}},{"campaign_id":9,"outcome":"holdout"}]}
	{"event_id":"b","event_type":"p","user_id":"u-1","occurred_at":"2026-11-04T12:00:00Z","properties":{},"matches":[{"campaign_id":7,"outcome":"matched","variant":"B","limit":{"per_user":2,"cooldown":"P1D"}}]}
	{"campaign_id":7,"event_id":"c","user_id":"u-1","event_type":"p","occurred_at":"2026-11-01T00:00:00Z","outcome":"holdout","limit":{"per_user":2,"cooldown":"P1D"}}
	{"campaign_id":7,"event_id":"d","user_id":"u-1","event_type":"p","occurred_at":"2026-11-20T00:00:00Z","outcome":"matched","variant":"B","limit":{"per_user":2,"cooldown":"P1D"}}
	{"campaign_id":7,"event_id":"e","user_id":"u-2","event_type":"p","occurred_at":"2026-11-20T00:00:00Z","outcome":"matched","limit":{"per_user":2,"cooldown":"P1D"}}
	{"campaign_id":8,"event_id":"f","user_id":"u-1","event_type":"p","occurred_at":"2026-11-05T00:00:00Z","outcome":"matched","limit":{"cooldown":"PT1S"}}
	{"campaign_id":8,"event_id":"g","user_id":"u-1","event_type":"p","occurred_at":"2026-11-05T00:00:01Z","outcome":"matched","limit":{"cooldown":"PT1S"}}
	EOF
	run cm-store --stats --batch 3 "$T/in"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"7 candidates of limited campaigns: 4 matched, 1 holdout, 2 capped"* ]]
	rows() {
		pg_sql "SELECT campaign_id || ' ' || event_id || ' ' || user_id || ' ' || outcome || ' ' || coalesce(variant, '-') || ' ' || coalesce(capped_by, '-') FROM matches ORDER BY 1"
	}
	run rows
	echo "$output"
	[ "${lines[0]}" = "7 a u-1 matched A -" ]
	[ "${lines[1]}" = "7 b u-1 capped B a" ]
	[ "${lines[2]}" = "7 c u-1 holdout - -" ]
	[ "${lines[3]}" = "7 d u-1 capped B a" ]
	[ "${lines[4]}" = "7 e u-2 matched - -" ]
	# exactly cooldown apart is not closer than cooldown
	[ "${lines[5]}" = "8 f u-1 matched - -" ]
	[ "${lines[6]}" = "8 g u-1 matched - -" ]
	# unlimited: as given, never looked up
	[ "${lines[7]}" = "9 a u-1 holdout - -" ]
	[ "${#lines[@]}" -eq 8 ]
	[ "$(count match_limits)" -eq 5 ]
	before=$(rows)
	# a redelivery, in another order and split: the same outcomes
	tac "$T/in" | cm-store --batch 1
	[ "$(rows)" = "$before" ]
	[ "$(count match_limits)" -eq 5 ]
}

@test "cm-store: limited candidates through two stores at once, redelivered, hold the limits exactly" {
	"$PY" - "$T" <<-'PY'
	import json, random, sys
	random.seed(13)
	t = sys.argv[1]
	camps = {1: {"per_user": 1}, 2: {"per_user": 3, "cooldown": "PT6H"},
	         3: {"cooldown": "P1D"}, 4: {"per_user": 2}, 5: None}
	lines = []
	for i in range(3000):
	    u = "u-%d" % random.randrange(20)
	    ts = "2026-11-%02dT%02d:%02d:00Z" % (random.randint(1, 20), random.randint(0, 23), random.choice([0, 30]))
	    ms = []
	    for c in random.sample(list(camps), random.randint(1, 3)):
	        m = {"campaign_id": c, "outcome": random.choice(["matched", "matched", "holdout"])}
	        if camps[c]:
	            m["limit"] = camps[c]
	        ms.append(m)
	    if random.random() < 0.3:
	        # the worker's --emit matches form: one match line per match
	        for m in ms:
	            lines.append(dict(m, event_id="e-%05d" % i, user_id=u, event_type="p", occurred_at=ts))
	    else:
	        lines.append({"event_id": "e-%05d" % i, "event_type": "p", "user_id": u,
	                      "occurred_at": ts, "properties": {}, "matches": ms})
	ms = {"PT6H": 6 * 3600000, "P1D": 86400000}
	json.dump({str(c): l and {"per_user": l.get("per_user"), "cooldown_ms": ms.get(l.get("cooldown"))}
	           for c, l in camps.items()}, open(t + "/limits.json", "w"))
	for s in ("a", "b"):
	    order = lines[:] + random.sample(lines, 600)
	    random.shuffle(order)
	    with open(t + "/in." + s, "w") as f:
	        for l in order:
	            f.write(json.dumps(l) + "\n")
	# every candidate, for the check
	cands = set()
	for l in lines:
	    for m in l.get("matches", [l] if "campaign_id" in l else []):
	        cands.add((m["campaign_id"], l["event_id"]))
	json.dump(sorted(cands), open(t + "/cands.json", "w"))
	PY
	two_stores --batch 41 "$T/in.a" -- --batch 29 --connections 3 "$T/in.b"
	pg_matches_json >"$T/got.json"
	# a redelivery of everything changes nothing
	cm-store --batch 500 "$T/in.a"
	pg_matches_json >"$T/again.json"
	cmp "$T/got.json" "$T/again.json"
	"$PY" "$TOP/tests/lib/limits.py" "$T/got.json" "$T/limits.json" "$T/cands.json" 100
}
