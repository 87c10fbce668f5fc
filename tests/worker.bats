#!/usr/bin/env bats
# The worker end to end, against real servers: nothing lost, nothing doubled,
# while stages are killed and Redis and PostgreSQL restart under it.

load lib/common
load lib/redis
load lib/pg
load lib/worker

N=${CM_CHAOS_EVENTS:-20000}

@test "worker: nothing lost, nothing doubled under kills and server restarts" {
	"$GEN" events "$N" --seed 11 >"$T/events.jsonl"
	"$GEN" campaigns 300 --seed 11 --jq-percent 2 >"$T/campaigns.json"
	load_campaigns "$T/campaigns.json"
	cm-match -c "$T/campaigns.json" --emit matches "$T/events.jsonl" |
		jq -r '"\(.campaign_id)|\(.event_id)"' | sort >"$T/expected.matches"
	[ "$(wc -l <"$T/expected.matches")" -gt 1000 ]
	jq -r .event_id "$T/events.jsonl" | sort >"$T/expected.events"

	chaos_run "$T/events.jsonl" "$N"

	pg_sql "SELECT event_id FROM events" | sort >"$T/got.events"
	pg_sql "SELECT campaign_id || '|' || event_id FROM matches" | sort >"$T/got.matches"
	diff "$T/expected.events" "$T/got.events"
	diff "$T/expected.matches" "$T/got.matches"
}

@test "worker: SIGTERM drains and exits 0" {
	"$GEN" events 500 --seed 3 >"$T/events.jsonl"
	"$GEN" one-campaign >"$T/one.json"
	load_campaigns "$T/one.json"
	cm-publish "$T/events.jsonl"
	CM_WORKER_ID=9 cm-worker --db "$CM_DATABASE_URL" 2>"$T/err" &
	local w=$! stored
	for _ in $(seq 100); do
		stored=$(pg_sql "SELECT count(*) FROM events")
		[ "$stored" = 500 ] && break
		sleep 0.1
	done
	kill -TERM "$w"
	local st=0
	wait "$w" || st=$?
	cat "$T/err" >&3
	[ "$st" -eq 0 ]
	[ "$stored" = 500 ]
	[ "$(rcli_raw XPENDING cm:events cm-workers | head -1)" = 0 ]
}

@test "worker: a dead stage ends the worker non-zero" {
	CM_WORKER_ID=8 cm-worker --db "$CM_DATABASE_URL" 2>"$T/err" &
	local w=$! p
	for _ in $(seq 50); do
		p=$(pgrep -P "$w" -f cm-match | head -1)
		[ -n "$p" ] && break
		sleep 0.1
	done
	[ -n "$p" ]
	kill -KILL "$p"
	local st=0
	wait "$w" || st=$?
	[ "$st" -eq 137 ]
	grep -q 'a stage ended' "$T/err"
}

@test "cm-worker: usage" {
	run cm-worker --help
	[ "$status" -eq 0 ]
	[[ $output == *"Usage: cm-worker"* ]]
	run cm-worker --version
	[ "$output" = "cm-worker 0.1.0" ]
	run cm-worker --bogus
	[ "$status" -eq 2 ]
	CM_DATABASE_URL= run cm-worker
	[ "$status" -eq 2 ]
	[[ $output == *"no database"* ]]
}
