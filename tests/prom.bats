#!/usr/bin/env bats
# The exposition of prom.c and wmetrics.c as a scraper sees it: promtool's
# own check, then tests/tools/promcheck.py for what promtool lets through
# (+Inf buckets equal to _count, cumulative buckets, one TYPE per family, no
# duplicate series). tests/tools/promsample prints every family cm-httpd
# serves, the workers' ones read back from a real Redis.

load lib/common
load lib/redis

setup_file() { redis_start; }
teardown_file() { redis_cleanup; }
setup() { rcli flushall >/dev/null; }

PROMSAMPLE=${CM_BUILD:-$TOP/build}/tests/tools/promsample
PROMCHECK=$TOP/tests/tools/promcheck.py

@test "promtool check metrics accepts the exposition" {
	"$PROMSAMPLE" "$CM_REDIS_URL" >"$T/metrics"
	run promtool check metrics <"$T/metrics"
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "promcheck: +Inf equals _count, cumulative buckets, one TYPE per family, no duplicates" {
	"$PROMSAMPLE" "$CM_REDIS_URL" >"$T/metrics"
	run python3 "$PROMCHECK" "$T/metrics"
	echo "$output"
	[ "$status" -eq 0 ]
	# It did look at histograms: every series has its +Inf bucket.
	[ "$(grep -c '_bucket{.*le="+Inf"}' "$T/metrics")" -eq \
		"$(grep -c '_count' "$T/metrics")" ]
	[ "$(grep -c '_count' "$T/metrics")" -ge 7 ]
}

@test "promcheck finds each kind of problem it checks for" {
	run python3 "$PROMCHECK" "$FIX/prom/broken.prom"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ $output == *"duplicate series a_total{x=\"1\"}"* ]]
	[[ $output == *"bucket le=1.0 below the one before"* ]]
	[[ $output == *"+Inf bucket 6.0 != _count 7.0"* ]]
	[[ $output == *"{'x': 'noinf'}: no +Inf bucket"* ]]
	[[ $output == *"second TYPE for b"* ]]
	[[ $output == *"bad escape \\"* ]]
	[[ $output == *"second HELP for a_total"* ]]
	[[ $output == *"family a_total continued after another"* ]]
}

@test "every family cm-httpd serves is there, with its type" {
	"$PROMSAMPLE" "$CM_REDIS_URL" >"$T/metrics"
	while read -r name type; do
		grep -qx "# TYPE $name $type" "$T/metrics" || {
			echo "missing: $name $type"
			return 1
		}
	done <<-'LIST'
		cm_http_requests_total counter
		cm_http_request_duration_seconds histogram
		cm_events_accepted_total counter
		cm_events_rejected_total counter
		cm_stream_length gauge
		cm_stream_pending gauge
		cm_stream_lag gauge
		cm_dead_letter_length gauge
		cm_worker_up gauge
		cm_worker_last_seen_seconds gauge
		cm_worker_consumed_total counter
		cm_worker_matched_total counter
		cm_worker_matches_total counter
		cm_worker_stored_total counter
		cm_worker_acked_total counter
		cm_worker_dead_lettered_total counter
		cm_worker_errors_total counter
		cm_worker_publish_to_commit_seconds histogram
		cm_campaign_matches_total counter
		cm_build_info gauge
	LIST
	# Workers' counters came through Redis, summed per campaign.
	grep -qx 'cm_worker_consumed_total{consumer="host \\"b\\":2"} 2000' "$T/metrics"
	grep -qx 'cm_campaign_matches_total{campaign_id="5"} 100' "$T/metrics"
	grep -qx 'cm_worker_publish_to_commit_seconds_count{consumer="host-a:1"} 500' "$T/metrics"
	# Past its cap a family folds new label sets into one overflow series.
	grep -qx 'cm_sample_capped_total{id="_overflow"} 3' "$T/metrics"
}

@test "promsample: an unreachable Redis is reported" {
	run "$PROMSAMPLE" redis://127.0.0.1:1
	[ "$status" -eq 3 ]
	[[ $output == *"127.0.0.1:1"* ]]
}
