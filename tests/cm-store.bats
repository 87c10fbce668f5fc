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
	pg_sql "TRUNCATE events, matches"
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
		"--max-line 1" "--redis redis://x" "--bogus" "--db nosuchkey=1" \
		"--ack --redis http://x" "--ack --stream ''"; do
		eval "run cm-store $bad </dev/null"
		echo "$bad: $status $output"
		[ "$status" -eq 2 ]
	done
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
