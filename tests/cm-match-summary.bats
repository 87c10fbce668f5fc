#!/usr/bin/env bats
# cm-match --summary: per-campaign counts at the end instead of the events
# (events checked, candidates, matched, holdout, capped, distinct users,
# first and last match), NDJSON for a program and a table on a terminal;
# and the backtest, cm-export --since X | cm-match -c draft.json --summary,
# against a real PostgreSQL.

load lib/common
load lib/pg
bats_require_minimum_version 1.5.0

setup_file() {
	pg_start
}

teardown_file() {
	pg_stop
}

@test "--summary on the example data: one object per active campaign, by id" {
	cd "$TOP"
	cm-ingest examples/orders.csv examples/events.jsonl >"$T/events"
	run --separate-stderr cm-match -c examples/campaigns.json --summary "$T/events"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 6 ]
	[ "${lines[0]}" = '{"campaign_id":1,"events_checked":12,"candidates":4,"matched":4,"holdout":0,"capped":0,"distinct_users":3,"first_match":"2026-11-27T10:15:00Z","last_match":"2026-11-30T23:59:59Z"}' ]
	# candidates are the matches the events would get, per campaign
	cm-match -c examples/campaigns.json --emit matches "$T/events" |
		jq -r .campaign_id | sort -n | uniq -c | awk '{ print $2, $1 }' >"$T/want"
	jq -r 'select(.candidates > 0) | "\(.campaign_id) \(.candidates)"' <<<"$output" >"$T/got"
	diff -u "$T/want" "$T/got"
	# events checked: the events of the types each campaign admits (3 of any type)
	[ "$(jq -r 'select(.campaign_id == 3) | .events_checked' <<<"$output")" -eq 27 ]
}

@test "--summary counts outcomes, distinct users and the first and last match" {
	cat >"$T/c.json" <<'JSON'
[{"id":4,"name":"once","status":"active","rule":{"event_type":"purchase"},"limit":{"per_user":1}},
 {"id":2,"name":"all","status":"active","rule":{}},
 {"id":3,"name":"off","status":"paused","rule":{}},
 {"id":9,"name":"none","status":"active","rule":{"event_type":"refund"}}]
JSON
	for i in 1 2 3 4 5; do
		printf '{"event_id":"e%d","event_type":"%s","user_id":"u%d","occurred_at":"2026-11-0%dT00:00:00Z","properties":{}}\n' \
			"$i" "$([ "$i" -eq 5 ] && echo view || echo purchase)" $((i % 2)) "$i"
	done >"$T/in"
	run --separate-stderr cm-match -c "$T/c.json" --summary "$T/in"
	[ "$status" -eq 0 ]
	[ "$output" = '{"campaign_id":2,"events_checked":5,"candidates":5,"matched":5,"holdout":0,"capped":0,"distinct_users":2,"first_match":"2026-11-01T00:00:00Z","last_match":"2026-11-05T00:00:00Z"}
{"campaign_id":4,"events_checked":4,"candidates":4,"matched":2,"holdout":0,"capped":2,"distinct_users":2,"first_match":"2026-11-01T00:00:00Z","last_match":"2026-11-02T00:00:00Z"}
{"campaign_id":9,"events_checked":0,"candidates":0,"matched":0,"holdout":0,"capped":0,"distinct_users":0,"first_match":null,"last_match":null}' ]
	# no events at all: still every active campaign
	run --separate-stderr cm-match -c "$T/c.json" --summary /dev/null
	[ "${#lines[@]}" -eq 3 ]
}

@test "--summary on a terminal is an aligned table" {
	cd "$TOP"
	cm-ingest examples/orders.csv examples/events.jsonl >"$T/events"
	script -qec "cm-match -c examples/campaigns.json --summary $T/events" /dev/null >"$T/tty"
	tr -d '\r' <"$T/tty" >"$T/table"
	[ "$(head -1 "$T/table")" = "    campaign    checked candidates    matched    holdout     capped      users  first_match              last_match" ]
	[ "$(sed -n 2p "$T/table")" = "           1         12          4          4          0          0          3  2026-11-27T10:15:00Z     2026-11-30T23:59:59Z" ]
	[ "$(wc -l <"$T/table")" -eq 7 ]
}

@test "--summary usage: not with --emit matches, --matched-only or --explain" {
	run cm-match -c "$TOP/examples/campaigns.json" --summary --emit matches /dev/null
	[ "$status" -eq 2 ]
	[[ "$output" == *"--summary writes only the counts"* ]]
	run cm-match -c "$TOP/examples/campaigns.json" --summary --matched-only /dev/null
	[ "$status" -eq 2 ]
	run cm-match -c "$TOP/examples/campaigns.json" --summary --explain /dev/null
	[ "$status" -eq 2 ]
}

@test "the backtest: cm-export --since X | cm-match -c draft.json --summary, from PostgreSQL" {
	export CM_SQL_DIR=$TOP/share/sql
	pg_newdb
	cm-admin migrate >/dev/null
	cd "$TOP"
	cm-ingest examples/orders.csv examples/events.jsonl | cm-store >/dev/null
	# a draft: a campaign not in the database, limited to one message per user
	cat >"$T/draft.json" <<'JSON'
[{"id":100,"name":"draft-big-orders","status":"active","rule":{"event_type":"purchase",
  "where":{"field":"properties.amount","op":"gte","value":50}},"limit":{"per_user":1},"holdout":0.2}]
JSON
	run --separate-stderr bash -c "cm-export --since 2026-11-28 | cm-match -c '$T/draft.json' --summary"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	# the same as matching the stored events offline, in the order cm-export
	# writes them (occurred_at, then event_id)
	cm-ingest examples/orders.csv examples/events.jsonl |
		jq -c 'select(.occurred_at >= "2026-11-28")' | jq -s -c 'sort_by(.occurred_at, .event_id)[]' |
		cm-match -c "$T/draft.json" --summary >"$T/want"
	[ "$output" = "$(cat "$T/want")" ]
	jq -e '.campaign_id == 100 and .events_checked == 9 and .candidates == 6
		and .capped > 0 and .distinct_users < .candidates' <<<"$output"
}

@test "the README's lift query: conversion of matched users against holdout users" {
	export CM_SQL_DIR=$TOP/share/sql
	pg_newdb
	cm-admin migrate >/dev/null
	# campaign 100 matched u1-u4 (u1, u2 buy within 7 days; u3 buys too late)
	# and held out u5-u8 (u5 buys); u9 was capped and does not count
	pg_sql "INSERT INTO matches (campaign_id, event_id, user_id, event_type, occurred_at, outcome) VALUES
		(100, 'm1', 'u1', 'signup', '2026-11-01', 'matched'), (100, 'm2', 'u2', 'signup', '2026-11-01', 'matched'),
		(100, 'm3', 'u3', 'signup', '2026-11-01', 'matched'), (100, 'm4', 'u4', 'signup', '2026-11-01', 'matched'),
		(100, 'm5', 'u5', 'signup', '2026-11-01', 'holdout'), (100, 'm6', 'u6', 'signup', '2026-11-01', 'holdout'),
		(100, 'm7', 'u7', 'signup', '2026-11-01', 'holdout'), (100, 'm8', 'u8', 'signup', '2026-11-01', 'holdout'),
		(100, 'm9', 'u9', 'signup', '2026-11-01', 'capped'), (7, 'x1', 'u6', 'signup', '2026-11-01', 'matched')" \
		"INSERT INTO events (event_id, event_type, user_id, occurred_at) VALUES
		('p1', 'purchase', 'u1', '2026-11-02'), ('p2', 'purchase', 'u2', '2026-11-07'),
		('p3', 'purchase', 'u3', '2026-11-20'), ('p5', 'purchase', 'u5', '2026-11-03'),
		('p9', 'purchase', 'u9', '2026-11-02'), ('v6', 'page_view', 'u6', '2026-11-02')"
	# the README's sql block that starts with the lift comment
	awk '/^```sql$/ { on = 1; buf = ""; next }
		on && /^```$/ { on = 0; if (buf ~ /^-- lift of campaign/) { printf "%s", buf; exit } next }
		on { buf = buf $0 "\n" }' "$TOP/README.md" >"$T/lift.sql"
	grep -q 'lift of campaign 100' "$T/lift.sql"
	run psql -X -q -A -t -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$PG_DB" -v ON_ERROR_STOP=1 -f "$T/lift.sql"
	[ "$status" -eq 0 ]
	# 2 of 4 matched users converted, 1 of 4 held out: a lift of 100%
	IFS='|' read -r mu hu mc hc lift <<<"$output"
	[ "$mu $hu" = "4 4" ]
	awk -v a="$mc" -v b="$hc" -v l="$lift" 'BEGIN { exit !(a == 0.5 && b == 0.25 && l == 1) }'
}
