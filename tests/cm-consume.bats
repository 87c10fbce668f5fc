#!/usr/bin/env bats
# cm-consume against a real redis-server on an odd port (tests/lib/redis.bash).

load lib/common
load lib/redis

setup_file() {
	redis_start
}

teardown_file() {
	redis_cleanup
}

setup() {
	if [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" != PONG ]; then
		redis_restart
	fi
	rcli flushall >/dev/null
	bgpid=
}

teardown() {
	# A consumer left running by a failed test must not outlive it.
	if [ -n "${bgpid:-}" ]; then
		kill -KILL "$bgpid" 2>/dev/null || true
	fi
	# a test that made the server a replica leaves it a primary again
	rcli replicaof no one >/dev/null 2>&1 || true
}

# gen FROM TO: canonical events with ids e-FROM..e-TO, one per line.
gen() {
	awk -v a="$1" -v b="$2" 'BEGIN { for (i = a; i <= b; i++)
		printf "{\"event_id\":\"e-%d\",\"event_type\":\"purchase\",\"user_id\":\"u-%d\",\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{\"amount\":%d.5}}\n", i, i % 7, i }'
}

# evids FILE: the event_ids in FILE, in order, space-separated.
evids() {
	grep -o '"event_id":"[^"]*"' "$1" | cut -d'"' -f4 | tr '\n' ' '
}

# pending [GROUP]: the number of entries pending in the group.
pending() {
	rcli xpending cm:events "${1:-cm-workers}" | head -1
}

# wait_lines FILE N: waits up to 5 s for FILE to hold N lines.
wait_lines() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(wc -l <"$1")" -ge "$2" ] && return 0
		sleep 0.05
	done
	return 1
}

@test "cm-consume: --help and --version" {
	run cm-consume --help
	[ "$status" -eq 0 ]
	for o in redis stream group consumer count block follow claim-idle max-deliveries ack \
		trim-interval retry-for; do
		[[ "$output" == *"--$o"* ]]
	done
	run cm-consume --version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^cm-consume\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
}

@test "cm-consume: round trip: each event exactly as published, with its _stream_id" {
	gen 1 5 >"$T/in.jsonl"
	cm-publish "$T/in.jsonl"
	run cm-consume --consumer c1
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 5 ]
	mapfile -t ids < <(rcli xrange cm:events - + | grep -E '^[0-9]+-[0-9]+$')
	for i in 0 1 2 3 4; do
		line=$(sed -n "$((i + 1))p" "$T/in.jsonl")
		[ "${lines[$i]}" = "${line%\}},\"_stream_id\":\"${ids[$i]}\"}" ]
	done
	# Without --ack every entry stays pending for cm-store to acknowledge.
	[ "$(pending)" -eq 5 ]
}

@test "cm-consume: the group and the stream are created when missing" {
	run cm-consume --stream fresh --group g1
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ "$(rcli type fresh)" = stream ]
	[ "$(rcli xinfo groups fresh | sed -n 2p)" = g1 ]
	# The group starts at 0: entries published before it existed are read.
	gen 1 2 | cm-publish --stream early
	run cm-consume --stream early
	[ "${#lines[@]}" -eq 2 ]
	# An existing group is fine (BUSYGROUP).
	run cm-consume --stream early
	[ "$status" -eq 0 ]
}

@test "cm-consume: --ack acknowledges what it wrote; --count pages through" {
	gen 1 25 | cm-publish
	cm-consume --ack --count 4 >"$T/out"
	[ "$(wc -l <"$T/out")" -eq 25 ]
	[ "$(evids "$T/out")" = "$(seq 1 25 | sed 's/^/e-/' | tr '\n' ' ')" ]
	[ "$(pending)" -eq 0 ]
	# Nothing new: a second run writes nothing.
	run cm-consume --ack
	[ -z "$output" ]
}

@test "cm-consume: a restarted consumer re-reads its own pending entries first" {
	gen 1 6 | cm-publish
	cm-consume --consumer w-1 --count 4 >"$T/first"
	[ "$(wc -l <"$T/first")" -eq 6 ]
	gen 7 8 | cm-publish
	# Same name: the 6 pending ones again, then the 2 new ones.
	cm-consume --consumer w-1 --count 4 >"$T/second"
	[ "$(evids "$T/second")" = "e-1 e-2 e-3 e-4 e-5 e-6 e-7 e-8 " ]
	# Another consumer sees none of them (they are not idle long enough).
	run cm-consume --consumer w-2
	[ -z "$output" ]
	[ "$(pending)" -eq 8 ]
}

@test "cm-consume: killed with --follow, restarted under the same name, it delivers again" {
	gen 1 3 | cm-publish
	cm-consume --follow --consumer w-1 >"$T/out" 3>&- &
	bgpid=$!
	wait_lines "$T/out" 3
	kill -KILL "$bgpid"
	wait "$bgpid" || true
	run cm-consume --consumer w-1
	[ "${#lines[@]}" -eq 3 ]
	[ "$(head -3 "$T/out")" = "$output" ]
}

@test "cm-consume: the default consumer name is HOSTNAME-\$CM_WORKER_ID, else HOSTNAME-1" {
	gen 1 1 | cm-publish
	CM_WORKER_ID=7 cm-consume >/dev/null
	[ "$(rcli xpending cm:events cm-workers - + 10 | sed -n 2p)" = "$(hostname)-7" ]
	gen 2 2 | cm-publish
	cm-consume >/dev/null
	rcli xinfo consumers cm:events cm-workers | grep -qx "$(hostname)-1"
}

@test "cm-consume: entries idle longer than --claim-idle are taken over by another consumer" {
	gen 1 4 | cm-publish
	cm-consume --consumer dead-1 >/dev/null
	sleep 0.3
	run cm-consume --consumer live-2 --claim-idle 200
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 4 ]
	[ "$(rcli xpending cm:events cm-workers - + 10 live-2 | grep -c '^[0-9]*-[0-9]*$')" -eq 4 ]
	[ "$(rcli xpending cm:events cm-workers - + 10 dead-1 | grep -c .)" -eq 0 ]
	# Not idle long enough: no claim.
	run cm-consume --consumer third-3 --claim-idle 60000
	[ -z "$output" ]
}

@test "cm-consume --follow: claims periodically from a consumer that died meanwhile" {
	cm-consume --follow --ack --consumer live-2 --claim-idle 300 --block 100 >"$T/out" 3>&- &
	bgpid=$!
	sleep 0.2
	gen 1 2 | cm-publish
	wait_lines "$T/out" 2
	# Entries taken by a consumer that then dies are claimed after ~300 ms.
	# MULTI/EXEC: they are delivered to dead-1 before live-2 can see them.
	printf "MULTI\nXADD cm:events * data '%s'\nXADD cm:events * data '%s'\n%s\nEXEC\n" \
		"$(gen 3 3)" "$(gen 4 4)" \
		"XREADGROUP GROUP cm-workers dead-1 COUNT 10 STREAMS cm:events >" | rcli >/dev/null
	[ "$(rcli xpending cm:events cm-workers - + 10 dead-1 | grep -c '^[0-9]*-[0-9]*$')" -eq 2 ]
	[ "$(wc -l <"$T/out")" -eq 2 ]
	wait_lines "$T/out" 4
	kill -TERM "$bgpid"
	wait "$bgpid"
	[ "$(evids "$T/out")" = "e-1 e-2 e-3 e-4 " ]
	[ "$(pending)" -eq 0 ]
}

@test "cm-consume: an entry delivered more than --max-deliveries times goes to KEY:dead" {
	gen 1 2 | cm-publish
	id1=$(rcli xrange cm:events - + count 1 | head -1)
	cm-consume --consumer c1 --max-deliveries 2 >/dev/null
	rcli xack cm:events cm-workers "$(rcli xrange cm:events - + | grep -E '^[0-9]+-[0-9]+$' | tail -1)" >/dev/null
	# Second delivery: still written.
	run cm-consume --consumer c1 --max-deliveries 2
	[ "${#lines[@]}" -eq 1 ]
	# Third: dead-lettered instead, and acknowledged.
	run cm-consume --consumer c1 --max-deliveries 2
	[ "$status" -eq 0 ]
	[[ "$output" == *"cm:events $id1: delivered 3 times; moved to cm:events:dead"* ]]
	[[ "$output" != *'"event_id"'* ]]
	[ "$(pending)" -eq 0 ]
	run rcli xrange cm:events:dead - +
	[ "${lines[1]}" = data ]
	[ "${lines[2]}" = "$(gen 1 1)" ]
	[ "${lines[3]}" = reason ]
	[ "${lines[4]}" = "delivered 3 times" ]
	[ "${lines[5]}" = id ]
	[ "${lines[6]}" = "$id1" ]
	[ "${lines[7]}" = group ]
	[ "${lines[8]}" = cm-workers ]
	[ "${lines[9]}" = consumer ]
	[ "${lines[10]}" = c1 ]
}

@test "cm-consume: a claimed entry over --max-deliveries is dead-lettered by the claimer" {
	gen 1 1 | cm-publish
	cm-consume --consumer dead-1 >/dev/null
	sleep 0.25
	run cm-consume --consumer live-2 --claim-idle 200 --max-deliveries 1
	[[ "$output" == *"delivered 2 times; moved to cm:events:dead"* ]]
	[ "$(rcli xlen cm:events:dead)" -eq 1 ]
	[ "$(pending)" -eq 0 ]
}

@test "cm-consume: an entry that is not an event is dead-lettered at once" {
	gen 1 1 | cm-publish
	rcli xadd cm:events '*' data 'not json' >/dev/null
	rcli xadd cm:events '*' data '{"event_id":"x"}' >/dev/null
	rcli xadd cm:events '*' other field >/dev/null
	gen 2 2 | cm-publish
	run cm-consume
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "${lines[@]}" | grep -c '"event_id":"e-')" -eq 2 ]
	[ "$(pending)" -eq 2 ]
	[ "$(rcli xlen cm:events:dead)" -eq 3 ]
	reasons=$(rcli xrange cm:events:dead - + | grep -A1 -x reason | grep -v -x -- 'reason\|--')
	[[ "$reasons" == *"not an event: invalid JSON: byte 1: "* ]]
	[[ "$reasons" == *"not an event: field 'event_type'"* ]]
	[[ "$reasons" == *"not an event: no 'data' field"* ]]
}

@test "cm-consume: entries whose data was trimmed are acknowledged, counted, never written" {
	gen 1 3 | cm-publish
	mapfile -t ids < <(rcli xrange cm:events - + | grep -E '^[0-9]+-[0-9]+$')
	cm-consume --consumer c1 >/dev/null
	# A blind delete of a pending entry, as MAXLEN would do.
	rcli xdel cm:events "${ids[1]}" >/dev/null
	run cm-consume --consumer c1 --ack
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "${lines[@]}" | grep -c '"event_id"')" -eq 2 ]
	[[ "$output" == *"cm:events ${ids[1]}: entry was deleted from the stream; acknowledged"* ]]
	[[ "$output" == *"1 deleted ones acknowledged"* ]]
	[ "$(pending)" -eq 0 ]
}

@test "cm-consume: deleted entries found by XAUTOCLAIM are counted, never written" {
	gen 1 2 | cm-publish
	mapfile -t ids < <(rcli xrange cm:events - + | grep -E '^[0-9]+-[0-9]+$')
	cm-consume --consumer dead-1 >/dev/null
	rcli xdel cm:events "${ids[0]}" >/dev/null
	sleep 0.25
	run cm-consume --consumer live-2 --claim-idle 200
	[ "$(printf '%s\n' "${lines[@]}" | grep -c '"event_id"')" -eq 1 ]
	[[ "$output" == *"${ids[0]}: entry was deleted from the stream; acknowledged"* ]]
	[ "$(pending)" -eq 1 ]
}

@test "cm-consume: a stale _stream_id in the data is replaced by the real one" {
	rcli xadd cm:events '*' data '{"event_id":"e-1","event_type":"t","user_id":"u","occurred_at":"2026-11-27T10:15:00Z","properties":{},"_stream_id":"1-1","_x":1}' >/dev/null
	id=$(rcli xrange cm:events - + | head -1)
	run cm-consume
	[ "$output" = '{"event_id":"e-1","event_type":"t","user_id":"u","occurred_at":"2026-11-27T10:15:00Z","properties":{},"_x":1,"_stream_id":"'"$id"'"}' ]
}

@test "cm-consume --follow: waits for new entries; SIGTERM ends it promptly with status 0" {
	cm-consume --follow --block 10000 >"$T/out" 2>"$T/err" 3>&- &
	bgpid=$!
	sleep 0.3
	gen 1 3 | cm-publish
	wait_lines "$T/out" 3
	start=$(date +%s%N)
	kill -TERM "$bgpid"
	rc=0
	wait "$bgpid" || rc=$?
	ms=$((($(date +%s%N) - start) / 1000000))
	[ "$rc" -eq 0 ]
	[ "$ms" -lt 1000 ]
	[ "$(evids "$T/out")" = "e-1 e-2 e-3 " ]
	[ ! -s "$T/err" ]
}

@test "cm-consume: SIGINT also ends it with status 0" {
	cm-consume --follow --block 5000 >/dev/null 3>&- &
	bgpid=$!
	sleep 0.3
	kill -INT "$bgpid"
	rc=0
	wait "$bgpid" || rc=$?
	[ "$rc" -eq 0 ]
}

@test "cm-consume --follow: survives a Redis restart and goes on reading" {
	gen 1 2 | cm-publish
	cm-consume --follow --block 200 --ack >"$T/out" 2>"$T/err" 3>&- &
	bgpid=$!
	wait_lines "$T/out" 2
	redis_restart
	gen 3 4 | cm-publish
	wait_lines "$T/out" 4
	kill -TERM "$bgpid"
	wait "$bgpid"
	[ "$(evids "$T/out")" = "e-1 e-2 e-3 e-4 " ]
	grep -q reconnecting "$T/err"
	grep -q connected "$T/err"
}

@test "cm-consume --follow: a deleted stream and group are created again" {
	gen 1 1 | cm-publish
	cm-consume --follow --block 100 --ack >"$T/out" 2>"$T/err" 3>&- &
	bgpid=$!
	wait_lines "$T/out" 1
	rcli del cm:events >/dev/null
	sleep 0.3
	gen 2 2 | cm-publish
	wait_lines "$T/out" 2 || { cat "$T/err" "$T/out"; rcli xinfo groups cm:events; false; }
	kill -TERM "$bgpid"
	wait "$bgpid"
	[ "$(evids "$T/out")" = "e-1 e-2 " ]
	grep -q "group vanished" "$T/err"
}

@test "cm-consume: Redis unreachable: exit 3 after --retry-for" {
	SECONDS=0
	run cm-consume --redis redis://127.0.0.1:1 --retry-for 1
	[ "$status" -eq 3 ]
	[[ "$output" == *"Connection refused"* ]]
	[[ "$output" == *"unreachable for 1 s; giving up"* ]]
	[ "$SECONDS" -le 4 ]
	# --retry-for 0: one attempt
	run cm-consume --redis redis://127.0.0.1:1 --retry-for 0
	[ "$status" -eq 3 ]
}

@test "cm-consume: a key of the wrong type is refused with status 4, at once" {
	rcli set cm:events x >/dev/null
	SECONDS=0
	run cm-consume --retry-for 30
	[ "$status" -eq 4 ]
	[[ "$output" == *WRONGTYPE* ]]
	[[ "$output" != *retrying* ]]
	[ "$SECONDS" -le 3 ]
}

@test "cm-consume: a wrong password is refused with status 4, at once, without showing it" {
	run_wrong_password cm-consume --retry-for 30
}

@test "cm-consume: a refusal worth waiting for (a read-only replica) is retried for --retry-for" {
	gen 1 2 | cm-publish
	# A replica of a server that does not exist refuses writes (READONLY)
	# until it is made a primary again.
	rcli replicaof 127.0.0.1 1 >/dev/null
	cm-consume --retry-for 20 >"$T/out" 2>"$T/err" 3>&- &
	bgpid=$!
	sleep 0.5
	rcli replicaof no one >/dev/null
	rc=0
	wait "$bgpid" || rc=$?
	bgpid=
	cat "$T/err"
	[ "$rc" -eq 0 ]
	grep -q "READONLY" "$T/err"
	grep -q "connected" "$T/err"
	[ "$(evids "$T/out")" = "e-1 e-2 " ]
}

@test "cm-consume: a closed output ends it quietly; unwritten entries stay pending" {
	gen 1 2000 | cm-publish
	run bash -c 'set -o pipefail; cm-consume --ack --count 100 | head -1'
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	# Everything not written before the pipe closed can be read again.
	n=$(cm-consume --ack | wc -l)
	[ "$n" -gt 0 ]
	[ "$n" -lt 2000 ]
}

@test "cm-consume: a failing output (disk full) exits 5; nothing is acknowledged" {
	gen 1 3 | cm-publish
	run cm-consume --ack
	[ "$status" -eq 0 ]
	gen 4 6 | cm-publish
	run bash -c 'cm-consume --ack >/dev/full'
	[ "$status" -eq 5 ]
	[[ "$output" == *"standard output: No space left on device"* ]]
	[ "$(pending)" -eq 3 ]
}

@test "cm-consume: safe trim never removes pending entries, only acknowledged ones" {
	gen 1 10 | cm-publish
	cm-consume --consumer c1 --trim-interval 0 >/dev/null
	mapfile -t ids < <(rcli xrange cm:events - + | grep -E '^[0-9]+-[0-9]+$')
	# Acknowledge 1-3 and 5: 4 is the oldest pending, so 1-3 may go.
	rcli xack cm:events cm-workers "${ids[0]}" "${ids[1]}" "${ids[2]}" "${ids[4]}" >/dev/null
	gen 11 12 | cm-publish
	# This run reads 11-12 (leaving them pending) and trims at the end.
	cm-consume --consumer c2 --trim-interval 1 >/dev/null
	[ "$(rcli xlen cm:events)" -eq 9 ]
	[ "$(pending)" -eq 8 ]
	[ "$(rcli xrange cm:events - + count 1 | head -1)" = "${ids[3]}" ]
	# Acknowledging everything lets the next trim empty the stream.
	cm-consume --consumer c1 --ack >/dev/null
	cm-consume --consumer c2 --ack >/dev/null
	[ "$(rcli xlen cm:events)" -eq 0 ]
	[ "$(pending)" -eq 0 ]
}

@test "cm-consume --follow --trim-interval: acknowledged entries are trimmed while running" {
	cm-consume --follow --ack --block 100 --trim-interval 1 >"$T/out" 3>&- &
	bgpid=$!
	gen 1 20 | cm-publish
	wait_lines "$T/out" 20
	for i in $(seq 60); do
		[ "$(rcli xlen cm:events)" -eq 0 ] && break
		sleep 0.05
	done
	n=$(rcli xlen cm:events)
	kill -TERM "$bgpid"
	wait "$bgpid"
	[ "$n" -eq 0 ]
}

@test "cm-consume: another group keeps entries from being trimmed" {
	gen 1 5 | cm-publish
	rcli xgroup create cm:events audit 0 >/dev/null
	cm-consume --ack >/dev/null
	[ "$(rcli xlen cm:events)" -eq 5 ]
	cm-consume --group audit --ack >/dev/null
	[ "$(rcli xlen cm:events)" -eq 0 ]
}

@test "cm-consume: bad options and arguments exit 2" {
	for args in "--count 0" "--max-deliveries 0" "--block x" "--claim-idle -1" \
		"--trim-interval x" "--redis http://x" "--group=" "--stream=" "--retry-for -1" \
		"extra" "--nope" "--count"; do
		run cm-consume $args
		echo "$args: $status $output"
		[ "$status" -eq 2 ]
		[[ "${lines[-1]}" == "Try 'cm-consume --help' for more information." ]]
	done
	run cm-consume --nope
	[ "${lines[0]}" = "cm-consume: unknown option '--nope'" ]
	run cm-consume --count
	[ "${lines[0]}" = "cm-consume: option '--count' needs a value" ]
	run cm-consume --retry-for x
	[ "${lines[0]}" = "cm-consume: --retry-for: expected seconds from 0 to 31536000, not 'x'" ]
}
