# shellcheck shell=bash
# PUB is for the test files that load this one.
# shellcheck disable=SC2034
# Helpers for the tests that run whole workers (bin/cm-worker) under chaos:
# supervised workers, stage kills, campaigns loaded into the database, and
# waiting for a stream to drain. Needs lib/common, lib/redis and lib/pg
# (and lib/httpd, loaded before it, for a test that starts cm-httpd).
#
# It also gives the test file its bats hooks: a Redis and a PostgreSQL for
# the file; for each test a fresh, migrated database (and GEN, the data
# generator), and at its end the workers (and a cm-httpd) stopped.
#
#   chaos_run FILE N         (all of the below, checked)
#   start_worker 1 [CM-WORKER-ARGS...]; start_worker 2; ...
#   kill_stage; pg_restart; redis_restart; ...
#   wait_drained N; stop_workers      (teardown)
#
# Everything is logged under $T: w<ID>.log (each worker's stderr and exits),
# chaos.log (what was killed or restarted).

# start_worker ID [ARGS...]: a supervisor loop that restarts cm-worker ID
# (with ARGS) whenever it ends, until $T/stop exists; the current worker's
# pid is in $T/w$ID.pid.
start_worker() {
	local id=$1
	shift
	(
		while [ ! -e "$T/stop" ] && [ ! -e "$T/stop.$id" ]; do
			CM_WORKER_ID=$id cm-worker --db "$CM_DATABASE_URL" --claim-idle 2000 \
				--max-deliveries 1000 "$@" 2>>"$T/w$id.log" &
			echo $! >"$T/w$id.pid"
			rc=0
			wait $! || rc=$? # (bats runs tests under set -e)
			echo "worker $id exited $rc" >>"$T/w$id.log"
			sleep 0.2
		done
	) &
	echo $! >"$T/s$id.pid"
}

# stop_worker ID: ends worker ID and its supervisor (SIGTERM: a drain),
# waiting for them.
stop_worker() {
	local id=$1 s
	touch "$T/stop.$id"
	[ -f "$T/w$id.pid" ] && kill -TERM "$(cat "$T/w$id.pid")" 2>/dev/null
	[ -f "$T/s$id.pid" ] || return 0
	s=$(cat "$T/s$id.pid")
	for _ in $(seq 100); do kill -0 "$s" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$s" 2>/dev/null || true
	rm -f "$T/s$id.pid"
}

# stop_workers: ends the supervisors and their workers (SIGTERM: a drain).
stop_workers() {
	[ -n "${T:-}" ] || return 0
	touch "$T/stop"
	local id s
	for id in 1 2; do
		[ -f "$T/w$id.pid" ] && kill -TERM "$(cat "$T/w$id.pid")" 2>/dev/null
	done
	for id in 1 2; do
		[ -f "$T/s$id.pid" ] || continue
		s=$(cat "$T/s$id.pid")
		for _ in $(seq 100); do kill -0 "$s" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$s" 2>/dev/null || true
		rm -f "$T/s$id.pid"
	done
	return 0
}

# kill_stage: SIGKILLs one stage (consume, match or store) of a random worker.
kill_stage() {
	local id=$((RANDOM % 2 + 1)) stages=(cm-consume cm-match cm-store) w p
	local stage=${stages[$((RANDOM % 3))]}
	for _ in $(seq 50); do
		w=$(cat "$T/w$id.pid" 2>/dev/null)
		p=$(pgrep -P "$w" -f "$stage" | head -1)
		[ -n "$p" ] && break
		sleep 0.1
	done
	if [ -z "$p" ]; then
		echo "no $stage found in worker $id" >>"$T/chaos.log"
		cat "$T/chaos.log" "$T"/w*.log >&3
		# shellcheck disable=SC2009 # the tree around the workers, not one pid
		ps -ef --forest | grep -v grep | grep -B1 -A4 cm-worker >&3
		return 1
	fi
	kill -KILL "$p"
	echo "killed $stage of worker $id" >>"$T/chaos.log"
}

# chaos: the disturbance every chaos test goes through, about 4 s: six
# stage kills, a PostgreSQL restart and a Redis restart between them.
chaos() {
	kill_stage; sleep 0.4
	kill_stage; sleep 0.4
	pg_restart; echo "restarted postgres" >>"$T/chaos.log"; sleep 0.4
	kill_stage; sleep 0.4
	redis_restart; echo "restarted redis" >>"$T/chaos.log"; sleep 0.4
	kill_stage; sleep 0.4
	kill_stage; sleep 0.4
	kill_stage
}

# publish_slowly FILE CHUNKS: publishes FILE in CHUNKS pieces, a quarter of a
# second apart, in the background, so that the chaos hits work in flight;
# touches $T/published at the end, notes a failed piece in chaos.log, and
# leaves its pid in PUB.
publish_slowly() {
	local file=$1 chunks=$2 lines
	lines=$(wc -l <"$file")
	split -l $(((lines + chunks - 1) / chunks)) "$file" "$T/chunk."
	(
		for f in "$T"/chunk.*; do
			cm-publish --retry-for 60 "$f" || echo "publish $f failed" >>"$T/chaos.log"
			sleep 0.25
		done
		touch "$T/published"
	) &
	PUB=$!
}

# chaos_run FILE N: the chaos test's run: two workers, FILE published
# slowly while chaos strikes, then every one of the N distinct events of
# FILE stored, nothing pending or dead-lettered, every piece published, and
# at least five stages killed.
chaos_run() {
	start_worker 1
	start_worker 2
	publish_slowly "$1" 20
	sleep 0.5
	chaos
	wait "$PUB"
	[ -e "$T/published" ]
	run ! grep -q failed "$T/chaos.log"
	wait_drained "$2"
	[ "$(rcli XLEN cm:events:dead)" = 0 ]
	[ "$(grep -c killed "$T/chaos.log")" -ge 5 ]
}

# wait_drained N: waits (at most 2 minutes) until N events are stored and
# nothing is pending, then says what it saw on fd 3; fails otherwise.
wait_drained() {
	local n=$1 stored pending
	for _ in $(seq 600); do
		stored=$(pg_sql "SELECT count(*) FROM events")
		pending=$(rcli XPENDING cm:events cm-workers | head -1)
		[ "$stored" = "$n" ] && [ "$pending" = 0 ] && break
		sleep 0.2
	done
	cat "$T/chaos.log" >&3 2>/dev/null || true
	echo "stored=$stored pending=$pending" >&3 || true
	[ "$stored" = "$n" ]
	[ "$pending" = 0 ]
}

# load_campaigns FILE: inserts the campaigns of a JSON array into the
# database, with their delivery controls.
load_campaigns() {
	psql -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$PG_DB" -v ON_ERROR_STOP=1 \
		-v doc="$(cat "$1")" <<'SQL'
INSERT INTO campaigns (id, name, status, starts_at, ends_at, rule, "limit", holdout, variants)
SELECT (c->>'id')::bigint, c->>'name', c->>'status', (c->>'starts_at')::timestamptz,
       (c->>'ends_at')::timestamptz, c->'rule', c->'limit', (c->>'holdout')::float8,
       c->'variants'
FROM jsonb_array_elements(:'doc'::jsonb) AS c;
SQL
}

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
	if [ -n "${HTTPD_PID:-}" ] && declare -F httpd_stop >/dev/null; then
		httpd_stop
	fi
	return 0
}
