#!/usr/bin/env bats
# The worker end to end, against real servers: nothing lost, nothing doubled,
# while stages are killed and Redis and PostgreSQL restart under it.

load lib/common
load lib/redis
load lib/pg

N=${CM_CHAOS_EVENTS:-20000}

setup_file() {
	redis_start
	pg_start
}

teardown_file() {
	redis_cleanup
	pg_stop
}

setup() {
	export CM_SQL_DIR=$TOP/share/sql
	pg_newdb
	cm-admin migrate >/dev/null
	GEN=$CM_BUILD/tests/cm-gen
}

teardown() {
	stop_workers
}

# start_worker ID: a supervisor loop that restarts cm-worker ID whenever it
# ends, until $T/stop exists; the current worker's pid is in $T/w$ID.pid.
start_worker() {
	local id=$1
	(
		while [ ! -e "$T/stop" ]; do
			CM_WORKER_ID=$id cm-worker --db "$CM_DATABASE_URL" --claim-idle 2000 \
				--max-deliveries 1000 2>>"$T/w$id.log" &
			echo $! >"$T/w$id.pid"
			rc=0
			wait $! || rc=$? # (bats runs tests under set -e)
			echo "worker $id exited $rc" >>"$T/w$id.log"
			sleep 0.2
		done
	) &
	echo $! >"$T/s$id.pid"
}

stop_workers() {
	[ -n "${T:-}" ] || return 0
	touch "$T/stop"
	for id in 1 2; do
		[ -f "$T/w$id.pid" ] && kill -TERM "$(cat "$T/w$id.pid")" 2>/dev/null
	done
	for id in 1 2; do
		[ -f "$T/s$id.pid" ] || continue
		local s
		s=$(cat "$T/s$id.pid")
		for _ in $(seq 100); do kill -0 "$s" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$s" 2>/dev/null || true
		rm -f "$T/s$id.pid"
	done
}

# kill_stage: SIGKILLs one stage (consume, match or store) of a random worker.
kill_stage() {
	local id=$((RANDOM % 2 + 1)) stages=(cm-consume cm-match cm-store) w p i
	local stage=${stages[$((RANDOM % 3))]}
	for i in $(seq 50); do
		w=$(cat "$T/w$id.pid" 2>/dev/null)
		p=$(pgrep -P "$w" -f "$stage" | head -1)
		[ -n "$p" ] && break
		sleep 0.1
	done
	if [ -z "$p" ]; then
		echo "no $stage found in worker $id" >>"$T/chaos.log"
		cat "$T/chaos.log" "$T"/w*.log >&3
		ps -ef --forest | grep -v grep | grep -B1 -A4 cm-worker >&3
		return 1
	fi
	kill -KILL "$p"
	echo "killed $stage of worker $id" >>"$T/chaos.log"
}

# load_campaigns FILE: inserts the campaigns of a JSON array into the database.
load_campaigns() {
	psql -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$PG_DB" -v ON_ERROR_STOP=1 \
		-v doc="$(cat "$1")" <<'SQL'
INSERT INTO campaigns (id, name, status, starts_at, ends_at, rule)
SELECT (c->>'id')::bigint, c->>'name', c->>'status', (c->>'starts_at')::timestamptz,
       (c->>'ends_at')::timestamptz, c->'rule'
FROM jsonb_array_elements(:'doc'::jsonb) AS c;
SQL
}

@test "worker: nothing lost, nothing doubled under kills and server restarts" {
	"$GEN" events "$N" --seed 11 >"$T/events.jsonl"
	"$GEN" campaigns 300 --seed 11 --jq-percent 2 >"$T/campaigns.json"
	load_campaigns "$T/campaigns.json"
	cm-match -c "$T/campaigns.json" --emit matches "$T/events.jsonl" |
		jq -r '"\(.campaign_id)|\(.event_id)"' | sort >"$T/expected.matches"
	[ "$(wc -l <"$T/expected.matches")" -gt 1000 ]
	jq -r .event_id "$T/events.jsonl" | sort >"$T/expected.events"

	start_worker 1
	start_worker 2

	# Publish in chunks over a few seconds so that the chaos hits work in flight.
	split -l $((N / 20)) "$T/events.jsonl" "$T/chunk."
	(
		for f in "$T"/chunk.*; do
			cm-publish --retry-for 60 "$f" || echo "publish $f failed" >>"$T/chaos.log"
			sleep 0.25
		done
		touch "$T/published"
	) &
	pub=$!

	sleep 0.5
	kill_stage; sleep 0.4
	kill_stage; sleep 0.4
	pg_restart; echo "restarted postgres" >>"$T/chaos.log"; sleep 0.4
	kill_stage; sleep 0.4
	redis_restart; echo "restarted redis" >>"$T/chaos.log"; sleep 0.4
	kill_stage; sleep 0.4
	kill_stage; sleep 0.4
	kill_stage
	wait "$pub"
	[ -e "$T/published" ]
	run ! grep -q failed "$T/chaos.log"

	# Drain: every event stored and nothing pending, within a bound.
	local stored pending
	for _ in $(seq 600); do
		stored=$(pg_sql "SELECT count(*) FROM events")
		pending=$(rcli_raw XPENDING cm:events cm-workers | head -1)
		[ "$stored" = "$N" ] && [ "$pending" = 0 ] && break
		sleep 0.2
	done
	cat "$T/chaos.log" >&3 || true
	echo "stored=$stored pending=$pending" >&3 || true
	[ "$stored" = "$N" ]
	[ "$pending" = 0 ]

	pg_sql "SELECT event_id FROM events" | sort >"$T/got.events"
	pg_sql "SELECT campaign_id || '|' || event_id FROM matches" | sort >"$T/got.matches"
	diff "$T/expected.events" "$T/got.events"
	diff "$T/expected.matches" "$T/got.matches"
	[ "$(rcli_raw XLEN cm:events:dead)" = 0 ]
	[ "$(grep -c killed "$T/chaos.log")" -ge 5 ]
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
