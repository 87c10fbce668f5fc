#!/usr/bin/env bats
# cm-publish against a real redis-server on an odd port (tests/lib/redis.bash).

load lib/common
load lib/redis

setup_file() {
	redis_start
}

teardown_file() {
	redis_cleanup
}

setup() {
	# A server killed by a test is brought back for the next one.
	if [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" != PONG ]; then
		redis_restart
	fi
	rcli flushall >/dev/null
}

# gen FROM TO: canonical events with ids e-FROM..e-TO, one per line.
gen() {
	awk -v a="$1" -v b="$2" 'BEGIN { for (i = a; i <= b; i++)
		printf "{\"event_id\":\"e-%d\",\"event_type\":\"purchase\",\"user_id\":\"u-%d\",\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{\"amount\":%d.5,\"country\":\"DE\"}}\n", i, i % 7, i }'
}
# For the tests that script a run in a child shell.
export -f gen redis_kill redis_stop _redis_launch

# ids KEY: the event_ids stored in stream KEY, in stream order.
ids() {
	rcli xrange "$1" - + | grep -o '"event_id":"[^"]*"' | cut -d'"' -f4
}

@test "cm-publish: --help and --version" {
	run cm-publish --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"--retry-for SECONDS"* ]]
	[[ "$output" == *"--trim"* ]]
	run cm-publish --version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^cm-publish\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
}

@test "cm-publish: every event becomes one entry whose data field is the line" {
	gen 1 5 >"$T/in.jsonl"
	run cm-publish "$T/in.jsonl"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ "$(rcli xlen cm:events)" -eq 5 ]
	# Each entry has exactly the fields "data" and the event's compact JSON.
	run rcli xrange cm:events - + count 1
	[ "${lines[1]}" = data ]
	[ "${lines[2]}" = "$(head -1 "$T/in.jsonl")" ]
	[ "${#lines[@]}" -eq 3 ]
	[ "$(ids cm:events | tr '\n' ' ')" = "e-1 e-2 e-3 e-4 e-5 " ]
}

@test "cm-publish: stdin, --stream, and several files in order" {
	gen 1 2 >"$T/a.jsonl"
	gen 3 4 >"$T/b.jsonl"
	gen 5 6 | cm-publish --stream other "$T/a.jsonl" - "$T/b.jsonl"
	[ "$(ids other | tr '\n' ' ')" = "e-1 e-2 e-5 e-6 e-3 e-4 " ]
	[ "$(rcli exists cm:events)" -eq 0 ]
}

@test "cm-publish: pipelined batches of any size lose and reorder nothing" {
	gen 1 1000 >"$T/in.jsonl"
	for b in 1 7 256 999 1000 1001; do
		rcli del s >/dev/null
		run cm-publish --stream s --batch "$b" "$T/in.jsonl"
		[ "$status" -eq 0 ]
		[ "$(rcli xlen s)" -eq 1000 ]
		diff <(ids s) <(seq 1 1000 | sed 's/^/e-/')
	done
	# A batch size that divides the input exactly, and a single event.
	gen 1 512 | cm-publish --stream t --batch 256
	[ "$(rcli xlen t)" -eq 512 ]
	gen 9 9 | cm-publish --stream u
	[ "$(ids u)" = e-9 ]
}

@test "cm-publish: bad lines are rejected with FILE:LINE and not published" {
	{
		gen 1 1
		echo '{"event_id":"e-x","user_id":"u"}'
		echo 'not json'
		echo
		echo '   '
		gen 2 2
		echo '[1,2]'
		printf '%s\r\n' "$(gen 3 3)"
	} >"$T/in.jsonl"
	run cm-publish "$T/in.jsonl"
	[ "$status" -eq 1 ]
	[[ "${lines[0]}" == "cm-publish: $T/in.jsonl:2: "*"event_type"* ]]
	[[ "${lines[1]}" == "cm-publish: $T/in.jsonl:3: "* ]]
	[[ "${lines[2]}" == "cm-publish: $T/in.jsonl:7: "* ]]
	[ "${#lines[@]}" -eq 3 ]
	[ "$(ids cm:events | tr '\n' ' ')" = "e-1 e-2 e-3 " ]
}

@test "cm-publish: a line over --max-line is rejected, the rest published" {
	{
		gen 1 1
		printf '{"event_id":"e-big","event_type":"t","user_id":"u","occurred_at":"2026-11-27T10:15:00Z","properties":{"pad":"%0500d"}}\n' 0
		gen 2 2
	} >"$T/in.jsonl"
	run cm-publish --max-line 300 "$T/in.jsonl"
	[ "$status" -eq 1 ]
	[[ "$output" == *"in.jsonl:2: line longer than 300 bytes"* ]]
	[ "$(ids cm:events | tr '\n' ' ')" = "e-1 e-2 " ]
}

@test "cm-publish: entries are compact; a stale _stream_id is dropped, other _ keys kept" {
	printf '%s\n' '{ "event_id" : "e-1", "event_type":"t", "user_id":"u", "occurred_at":"2026-11-27T10:15:00Z", "properties":{ "a" : [1, 2] }, "_stream_id":"1-0", "_trace":"x" }' |
		cm-publish
	run rcli xrange cm:events - +
	[ "${lines[2]}" = '{"event_id":"e-1","event_type":"t","user_id":"u","occurred_at":"2026-11-27T10:15:00Z","properties":{"a":[1,2]},"_trace":"x"}' ]
}

@test "cm-publish: tabs and CRs between tokens are compacted too" {
	printf '{"event_id":"e-1",\t"event_type":"t","user_id":"u","occurred_at":"2026-11-27T10:15:00Z","properties":{"a":\r1}}\n' |
		cm-publish
	run rcli xrange cm:events - +
	[ "${lines[2]}" = '{"event_id":"e-1","event_type":"t","user_id":"u","occurred_at":"2026-11-27T10:15:00Z","properties":{"a":1}}' ]
}

@test "cm-publish: an unreadable file is a usage error and nothing is published" {
	gen 1 3 >"$T/in.jsonl"
	run cm-publish "$T/in.jsonl" "$T/missing.jsonl"
	[ "$status" -eq 2 ]
	[[ "$output" == *"missing.jsonl: cannot open"* ]]
	[ "$(rcli exists cm:events)" -eq 0 ]
}

@test "cm-publish: bad options and URLs exit 2" {
	run cm-publish --batch 0 </dev/null
	[ "$status" -eq 2 ]
	[[ "$output" == *"--batch"* ]]
	run cm-publish --retry-for -1 </dev/null
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "cm-publish: --retry-for: expected seconds from 0 to 31536000, not '-1'" ]
	run cm-publish --max-line 63 </dev/null
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "cm-publish: --max-line: expected a size from 64 to 1G, not '63'" ]
	run cm-publish --stream= </dev/null
	[ "$status" -eq 2 ]
	run cm-publish --batch </dev/null
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "cm-publish: option '--batch' needs a value" ]
	run cm-publish --redis 'http://x' </dev/null
	[ "$status" -eq 2 ]
	[[ "$output" == *"expected redis://"* ]]
	run cm-publish --redis 'redis://:hunter2@h:0' </dev/null
	[ "$status" -eq 2 ]
	[[ "$output" != *hunter2* ]]
	run cm-publish --trim "$T/x"
	[ "$status" -eq 2 ]
	run cm-publish --nope
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "cm-publish: unknown option '--nope'" ]
	[ "${lines[1]}" = "Try 'cm-publish --help' for more information." ]
}

@test "cm-publish: a read error is status 5; what was read before it is published" {
	gen 1 2 >"$T/a.jsonl"
	mkdir "$T/dir"
	run cm-publish "$T/a.jsonl" "$T/dir"
	echo "$output"
	[ "$status" -eq 5 ]
	[[ "$output" == *"$T/dir"*"Is a directory"* ]]
	[ "$(ids cm:events | tr '\n' ' ')" = "e-1 e-2 " ]
}

@test "cm-publish: CM_REDIS_URL, --redis over it, unix sockets and database numbers" {
	gen 1 2 | CM_REDIS_URL="unix://$REDIS_SOCK?db=3" cm-publish
	[ "$(redis-cli -p "$REDIS_PORT" -n 3 xlen cm:events)" -eq 2 ]
	gen 1 1 | CM_REDIS_URL=redis://127.0.0.1:1 cm-publish --redis "redis://127.0.0.1:$REDIS_PORT/2"
	[ "$(redis-cli -p "$REDIS_PORT" -n 2 xlen cm:events)" -eq 1 ]
	[ "$(rcli exists cm:events)" -eq 0 ]
}

@test "cm-publish: ACL user and password; a wrong password is refused without showing it" {
	rcli acl setuser cmtest on '>s3cr%t@x' '~*' '&*' '+@all' >/dev/null
	gen 1 1 | cm-publish --redis "redis://cmtest:s3cr%25t%40x@127.0.0.1:$REDIS_PORT"
	[ "$(rcli xlen cm:events)" -eq 1 ]
	rcli acl deluser cmtest >/dev/null
	gen 2 2 >"$T/in.jsonl"
	run_wrong_password cm-publish --retry-for 30 "$T/in.jsonl"
	[[ "$output" == *"in.jsonl:1: not confirmed by Redis: "*"AUTH refused: WRONGPASS"* ]]
	[ "$(rcli xlen cm:events)" -eq 1 ]
}

@test "cm-publish: Redis down from the start: exit 3 naming the first line after --retry-for" {
	gen 1 3 >"$T/in.jsonl"
	start=$(date +%s%N)
	run cm-publish --redis redis://127.0.0.1:1 --retry-for 1 "$T/in.jsonl"
	ms=$((($(date +%s%N) - start) / 1000000))
	[ "$status" -eq 3 ]
	[[ "$output" == *"retrying for up to 1 s"* ]]
	[[ "${lines[-1]}" == "cm-publish: $T/in.jsonl:1: not confirmed by Redis: "*"Connection refused (and 2 more lines)" ]]
	[ "$ms" -ge 900 ] && [ "$ms" -lt 5000 ]
}

@test "cm-publish: Redis killed mid-run: retries, then exit 3 with the first unconfirmed line" {
	run bash -c '{ gen 1 5; sleep 0.5; redis_kill KILL; gen 6 9; } |
		cm-publish --retry-for 1 --batch 2'
	[ "$status" -eq 3 ]
	[[ "$output" == *"retrying for up to 1 s"* ]]
	[[ "${lines[-1]}" == "cm-publish: stdin:6: not confirmed by Redis: "* ]]
}

@test "cm-publish: Redis restarted mid-run: the retry succeeds and nothing is lost" {
	run bash -c '{ gen 1 300; sleep 0.3; redis_stop; (sleep 0.7; _redis_launch) & gen 301 600; wait; } |
		cm-publish --retry-for 20 --batch 64'
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == *"retrying for up to 20 s"* ]]
	[[ "${lines[1]}" == *"publishing again"* ]]
	# The AOF kept the first part; duplicates are allowed, gaps are not.
	diff <(ids cm:events | sort -u) <(seq 1 600 | sed 's/^/e-/' | sort)
}

@test "cm-publish: a refused entry (wrong key type) fails at once with status 4" {
	rcli set cm:events notastream >/dev/null
	gen 1 2 >"$T/in.jsonl"
	run cm-publish --retry-for 30 "$T/in.jsonl"
	[ "$status" -eq 4 ]
	[[ "$output" == *"in.jsonl:1: not confirmed by Redis: redis://127.0.0.1:$REDIS_PORT: WRONGTYPE"* ]]
	[[ "$output" != *retrying* ]]
}

@test "cm-publish --trim: acknowledged entries go, pending and undelivered ones stay" {
	gen 1 10 | cm-publish
	# No group at all: nothing may be trimmed.
	run cm-publish --trim
	[ "$status" -eq 0 ]
	[ "$(rcli xlen cm:events)" -eq 10 ]
	rcli xgroup create cm:events g 0 >/dev/null
	rcli xreadgroup group g c count 6 streams cm:events '>' >/dev/null
	mapfile -t all < <(rcli xrange cm:events - + | grep -E '^[0-9]+-[0-9]+$')
	rcli xack cm:events g "${all[0]}" "${all[1]}" "${all[2]}" "${all[4]}" >/dev/null
	# e-4 is pending (e-5 acked after it): the trim stops at e-4.
	cm-publish --trim
	[ "$(ids cm:events | tr '\n' ' ')" = "e-4 e-5 e-6 e-7 e-8 e-9 e-10 " ]
	rcli xack cm:events g "${all[3]}" "${all[5]}" >/dev/null
	# Everything delivered is acked; e-7.. are undelivered and stay.
	cm-publish --trim
	[ "$(ids cm:events | tr '\n' ' ')" = "e-7 e-8 e-9 e-10 " ]
	# A second group that has read nothing holds everything that is left.
	rcli xgroup create cm:events g2 0 >/dev/null
	rcli xreadgroup group g c streams cm:events '>' >/dev/null
	rcli xack cm:events g "${all[6]}" "${all[7]}" "${all[8]}" "${all[9]}" >/dev/null
	cm-publish --trim
	[ "$(rcli xlen cm:events)" -eq 4 ]
	rcli xreadgroup group g2 c streams cm:events '>' >/dev/null
	rcli xack cm:events g2 "${all[6]}" "${all[7]}" "${all[8]}" "${all[9]}" >/dev/null
	cm-publish --trim
	[ "$(rcli xlen cm:events)" -eq 0 ]
	# A missing stream is not an error.
	run cm-publish --trim --stream nosuch
	[ "$status" -eq 0 ]
	# A key of another type is refused (4); no server is unreachable (3).
	rcli set notastream x >/dev/null
	run cm-publish --trim --stream notastream
	[ "$status" -eq 4 ]
	[[ "$output" == *WRONGTYPE* ]]
	SECONDS=0
	run cm-publish --trim --redis redis://127.0.0.1:1 --retry-for 1
	[ "$status" -eq 3 ]
	[[ "$output" == *"Connection refused"* ]]
	[ "$SECONDS" -le 4 ]
}

@test "cm-publish: publishing the same file twice doubles the entries (the sink deduplicates)" {
	gen 1 3 >"$T/in.jsonl"
	cm-publish "$T/in.jsonl"
	cm-publish "$T/in.jsonl"
	[ "$(rcli xlen cm:events)" -eq 6 ]
	[ "$(ids cm:events | sort -u | wc -l)" -eq 3 ]
}

@test "cm-publish: a trickle on a pipe is published without waiting for a full batch" {
	mkfifo "$T/fifo"
	cm-publish --batch 1000 <"$T/fifo" 3>&- &
	pid=$!
	exec 5>"$T/fifo"
	gen 1 2 >&5
	for i in $(seq 50); do
		[ "$(rcli xlen cm:events)" -eq 2 ] && break
		sleep 0.05
	done
	n=$(rcli xlen cm:events)
	exec 5>&-
	wait "$pid"
	[ "$n" -eq 2 ]
}
