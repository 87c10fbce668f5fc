#!/usr/bin/env bats
# Worker metrics end to end: two whole workers (cm-consume | cm-match |
# cm-store --ack) report their stages' counts through Redis under one
# consumer name each, and cm-httpd's /metrics shows them equal to what the
# database holds; a stopped worker leaves /metrics after --worker-ttl. A
# pipeline without Redis reports nothing and says nothing about it.

load lib/common
load lib/redis
load lib/pg
load lib/httpd
load lib/worker

N=${CM_METRICS_EVENTS:-3000}
PY=/usr/bin/python3
HOST=$(hostname)

# metric NAME CONSUMER: the value of sample NAME{consumer="CONSUMER"} in
# $T/metrics, or nothing.
metric() {
	awk -v k="$1{consumer=\"$2\"}" '$1 == k { print $2 }' "$T/metrics"
}

# get_metrics: GET /metrics into $T/metrics.
get_metrics() {
	curl -sf "$HTTPD_URL/metrics" >"$T/metrics"
}

@test "worker-metrics: /metrics shows each worker's stage counts, equal to what the database holds" {
	"$GEN" events "$N" --seed 5 >"$T/events.jsonl"
	"$GEN" campaigns 100 --seed 5 >"$T/campaigns.json"
	load_campaigns "$T/campaigns.json"
	httpd_start --worker-ttl 3
	start_worker 1
	start_worker 2
	publish_slowly "$T/events.jsonl" 20
	wait "$PUB"
	wait_drained "$N"

	# What the database holds.
	local matches matched
	matches=$(pg_sql "SELECT count(*) FROM matches")
	matched=$(pg_sql "SELECT count(DISTINCT event_id) FROM matches")
	[ "$matches" -gt 100 ]
	pg_sql "SELECT campaign_id || ' ' || count(*) FROM matches GROUP BY campaign_id ORDER BY campaign_id" >"$T/want.campaigns"

	# The workers flush once a second: wait for the last counts to arrive.
	local w sum ok=0
	for _ in $(seq 50); do
		get_metrics
		sum=0
		for w in 1 2; do
			sum=$((sum + $(metric cm_worker_acked_total "$HOST-$w" || echo 0) + 0))
		done
		[ "$sum" -eq "$N" ] && [ "$(awk '$1 ~ /^cm_worker_matches_total/ { s += $2 } END { print s + 0 }' "$T/metrics")" -eq "$matches" ] && { ok=1; break; }
		sleep 0.2
	done
	grep '^cm_worker\|^cm_campaign' "$T/metrics" | head -40 >&3
	[ "$ok" -eq 1 ]
	"$PY" "$TOP/tests/tools/promcheck.py" "$T/metrics"

	# Each worker: its three stages under one name, counting the same
	# entries; both took part.
	local total_consumed=0 total_stored=0 total_matched=0 total_matches=0 c
	for w in 1 2; do
		c=$HOST-$w
		[ "$(metric cm_worker_up "$c")" = 1 ]
		[ "$(metric cm_worker_consumed_total "$c")" -gt 0 ]
		[ "$(metric cm_worker_consumed_total "$c")" = "$(metric cm_worker_stored_total "$c")" ]
		[ "$(metric cm_worker_stored_total "$c")" = "$(metric cm_worker_acked_total "$c")" ]
		# one publish-to-commit latency per acknowledged entry
		[ "$(awk -v k="cm_worker_publish_to_commit_seconds_count{consumer=\"$c\"}" '$1 == k { print $2 }' "$T/metrics")" = \
			"$(metric cm_worker_acked_total "$c")" ]
		grep -q "^cm_worker_publish_to_commit_seconds_bucket{consumer=\"$c\",le=\"60\"} $(metric cm_worker_acked_total "$c")\$" "$T/metrics"
		[ "$(metric cm_worker_errors_total "$c")" = 0 ]
		[ "$(metric cm_worker_dead_lettered_total "$c")" = 0 ]
		total_consumed=$((total_consumed + $(metric cm_worker_consumed_total "$c")))
		total_stored=$((total_stored + $(metric cm_worker_stored_total "$c")))
		total_matched=$((total_matched + $(metric cm_worker_matched_total "$c")))
		total_matches=$((total_matches + $(metric cm_worker_matches_total "$c")))
	done
	[ "$total_consumed" -eq "$N" ]
	[ "$total_stored" -eq "$N" ]
	[ "$total_matched" -eq "$matched" ]
	[ "$total_matches" -eq "$matches" ]
	# per campaign, summed over the workers
	sed -nE 's/^cm_campaign_matches_total\{campaign_id="([0-9]+)"\} ([0-9]+)$/\1 \2/p' "$T/metrics" |
		sort -n >"$T/got.campaigns"
	diff "$T/want.campaigns" "$T/got.campaigns"

	# A stopped worker drops out after --worker-ttl; the live one stays up.
	stop_worker 2
	sleep 4
	get_metrics
	[ "$(metric cm_worker_up "$HOST-2")" = "" ]
	[ "$(metric cm_worker_up "$HOST-1")" = 1 ]
	[ "$(metric cm_worker_consumed_total "$HOST-1")" -gt 0 ]
}

@test "worker-metrics: --consumer names the worker's stages; a pipeline without Redis reports nothing and says nothing" {
	"$GEN" events 200 --seed 2 >"$T/events.jsonl"
	"$GEN" campaigns 20 --seed 2 >"$T/campaigns.json"
	load_campaigns "$T/campaigns.json"
	cm-publish "$T/events.jsonl"
	CM_WORKER_ID=7 cm-worker --db "$CM_DATABASE_URL" --consumer night-shift 2>"$T/err" &
	local w=$!
	for _ in $(seq 100); do
		[ "$(pg_sql "SELECT count(*) FROM events")" = 200 ] && break
		sleep 0.1
	done
	kill -TERM "$w"
	wait "$w"
	# the last counts are flushed at exit, all under the one name
	[ "$(rcli HGET cm:events:worker:night-shift consumed)" = 200 ]
	[ "$(rcli HGET cm:events:worker:night-shift stored)" = 200 ]
	[ "$(rcli HGET cm:events:worker:night-shift acked)" = 200 ]
	[ "$(rcli HGET cm:events:worker:night-shift lat_count)" = 200 ]
	[ "$(rcli HGET cm:events:worker:night-shift matches)" = "$(pg_sql "SELECT count(*) FROM matches")" ]
	[ -n "$(rcli ZSCORE cm:events:workers night-shift)" ]
	[ "$(rcli EXISTS "cm:events:worker:$HOST-7")" = 0 ]
	[ ! -s "$T/err" ]

	# Match lines (--emit matches): one latency per entry however many
	# matches it has, and no events stored (the lines hold none).
	"$GEN" campaigns 300 --seed 2 >"$T/many.json"
	cm-publish --stream ml "$T/events.jsonl"
	cm-consume --stream ml --consumer ml |
		cm-match -c "$T/many.json" --emit matches --redis "$CM_REDIS_URL" --stream ml --consumer ml |
		cm-store --ack --stream ml --consumer ml 2>"$T/err"
	[ ! -s "$T/err" ]
	local lines entries
	lines=$(cm-match -c "$T/many.json" --emit matches "$T/events.jsonl" | wc -l)
	entries=$(cm-match -c "$T/many.json" --matched-only "$T/events.jsonl" | wc -l)
	[ "$lines" -gt "$entries" ]
	[ "$(rcli HGET ml:worker:ml acked)" = "$entries" ]
	[ "$(rcli HGET ml:worker:ml lat_count)" = "$entries" ]
	[ "$(rcli HGET ml:worker:ml matches)" = "$lines" ]
	[ "$(rcli HGET ml:worker:ml stored)" = "" ]

	# A file pipeline, Redis unreachable in the environment: no metrics, no
	# warnings, the same output.
	pg_newdb
	cm-admin migrate >/dev/null
	CM_REDIS_URL=redis://127.0.0.1:1 run --separate-stderr sh -c \
		'cm-match -c "$1" "$2" | cm-store --stats >/dev/null 2>&1 && cm-match -c "$1" "$2"' _ \
		"$T/campaigns.json" "$T/events.jsonl"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ "$(pg_sql "SELECT count(*) FROM events")" = 200 ]
	# cm-match reporting to a Redis that is down: the same output, silently
	cm-match -c "$T/campaigns.json" "$T/events.jsonl" >"$T/plain.out"
	run --separate-stderr cm-match -c "$T/campaigns.json" --redis redis://127.0.0.1:1 \
		--consumer x "$T/events.jsonl"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ "$output" = "$(cat "$T/plain.out")" ]
	run cm-match -c "$T/campaigns.json" --consumer x "$T/events.jsonl"
	[ "$status" -eq 2 ]
	[[ "$output" == *"--stream and --consumer go with --redis"* ]]
	run cm-store --consumer x "$T/events.jsonl"
	[ "$status" -eq 2 ]
	[[ "$output" == *"--consumer is only used with --ack"* ]]
}
