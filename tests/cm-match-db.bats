#!/usr/bin/env bats
# cm-match -c CONNINFO: active campaigns from PostgreSQL, reloaded on change
# (LISTEN/NOTIFY) while events keep flowing.

load lib/common
load lib/pg

setup_file() {
	pg_start
}

teardown_file() {
	pg_stop
}

setup() {
	export CM_SQL_DIR=$TOP/share/sql
	pg_newdb
	cm-admin migrate >/dev/null
}

teardown() {
	[ -n "${writer:-}" ] && kill "$writer" 2>/dev/null
	[ -n "${matcher:-}" ] && kill "$matcher" 2>/dev/null
	return 0
}

# campaign ID NAME STATUS MIN: inserts a purchase campaign with amount >= MIN.
campaign() {
	pg_sql "INSERT INTO campaigns (id, name, status, rule) VALUES ($1, '$2', '$3',
	  '{\"event_type\":\"purchase\",\"where\":{\"field\":\"properties.amount\",\"op\":\"gte\",\"value\":$4}}')"
}

event() {
	printf '{"event_id":"e-%s","event_type":"purchase","user_id":"u-1","occurred_at":"2026-11-27T10:00:00Z","properties":{"amount":%s}}\n' "$1" "$2"
}

@test "cm-match -c CONNINFO: only active campaigns of the database match" {
	campaign 1 small active 10
	campaign 2 big active 100
	campaign 3 paused paused 0
	{ event 1 50; event 2 150; } >"$T/in"
	run cm-match -c "$CM_DATABASE_URL" --emit matches "$T/in"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq -r '"\(.campaign_id) \(.event_id)"' | tr '\n' ' ')" = "1 e-1 1 e-2 2 e-2 " ]
}

@test "cm-match -c CONNINFO: a bad campaign is reported and skipped" {
	campaign 1 good active 10
	pg_sql "INSERT INTO campaigns (id, name, status, rule) VALUES (2, 'bad', 'active',
	  '{\"event_type\":\"purchase\",\"where\":{\"field\":\"properties.amount\",\"op\":\"gte2\",\"value\":1}}')"
	pg_sql "INSERT INTO campaigns (id, name, status, rule) VALUES (3, 'badjq', 'active',
	  '{\"event_type\":\"purchase\",\"jq\":\".properties.amount >\"}')"
	event 1 50 >"$T/in"
	cm-match -c "$CM_DATABASE_URL" --emit matches "$T/in" >"$T/out" 2>"$T/err"
	[ "$(jq -r .campaign_id "$T/out")" = 1 ]
	grep -q 'campaign 2: .*gte2' "$T/err"
	grep -q 'campaign 3' "$T/err"
}

@test "cm-match -c CONNINFO: an insert, an update and a pause apply within a second" {
	campaign 1 first active 10
	mkfifo "$T/fifo"
	cm-match -c "$CM_DATABASE_URL" --emit matches <"$T/fifo" >"$T/out" 2>"$T/err" &
	matcher=$!
	exec 7>"$T/fifo"
	# wait_out N: waits up to a second for N lines of output.
	wait_out() {
		for _ in $(seq 20); do
			[ "$(wc -l <"$T/out")" -ge "$1" ] && return 0
			sleep 0.05
		done
		return 1
	}
	event 1 500 >&7
	wait_out 1
	campaign 2 second active 100 # insert
	sleep 1
	event 2 500 >&7
	wait_out 3
	pg_sql "UPDATE campaigns SET rule = jsonb_set(rule, '{where,value}', '1000') WHERE id = 2"
	sleep 1
	event 3 500 >&7
	wait_out 4
	pg_sql "UPDATE campaigns SET status = 'paused' WHERE id = 1"
	sleep 1
	event 4 500 >&7
	event 5 5000 >&7
	wait_out 5
	exec 7>&-
	wait "$matcher"
	matcher=
	run jq -r '"\(.campaign_id) \(.event_id)"' "$T/out"
	[ "${lines[*]}" = "1 e-1 1 e-2 2 e-2 1 e-3 2 e-5" ]
	grep -q 'reloaded' "$T/err"
}

@test "cm-match -c CONNINFO: survives a database restart and reloads after it" {
	campaign 1 first active 10
	mkfifo "$T/fifo"
	cm-match -c "$CM_DATABASE_URL" --emit matches <"$T/fifo" >"$T/out" 2>"$T/err" &
	matcher=$!
	exec 7>"$T/fifo"
	event 1 50 >&7
	for _ in $(seq 50); do
		[ -s "$T/out" ] && break
		sleep 0.1
	done
	pg_restart
	campaign 2 second active 10
	# the reconnect's backoff reaches 1 s between tries: under a loaded
	# machine (the ASan build beside the plain one) give it 30 s
	for _ in $(seq 300); do
		grep -q 'reloaded 2' "$T/err" && break
		sleep 0.1
	done
	grep -q 'reloaded 2' "$T/err"
	event 2 50 >&7
	exec 7>&-
	wait "$matcher"
	matcher=
	run jq -r '"\(.campaign_id) \(.event_id)"' "$T/out"
	[ "${lines[*]}" = "1 e-1 1 e-2 2 e-2" ]
}

@test "cm-match -c CONNINFO: an unreachable database exits 3, a bad conninfo 2" {
	run cm-match -c "host=/nonexistent port=1 dbname=x connect_timeout=1" /dev/null
	[ "$status" -eq 3 ]
	[[ $output == *"cm-match: "* ]]
	run cm-match -c "postgresql://[bad" /dev/null
	[ "$status" -eq 2 ]
}

@test "cm-match -c CONNINFO --check: reports skipped campaigns with status 2" {
	campaign 1 good active 10
	run cm-match -c "$CM_DATABASE_URL" --check
	[ "$status" -eq 0 ]
	pg_sql "INSERT INTO campaigns (id, name, status, rule) VALUES (2, 'bad', 'active', '{\"where\":{}}')"
	run cm-match -c "$CM_DATABASE_URL" --check
	[ "$status" -eq 2 ]
	[[ $output == *"campaign 2"* ]]
}

@test "cm-match -c CONNINFO: delivery controls come from the table's columns; limits are left to cm-store" {
	pg_sql "INSERT INTO campaigns (id, name, status, rule, \"limit\", variants) VALUES (1, 'once', 'active',
	  '{\"event_type\":\"purchase\"}', '{\"per_user\": 1}', '[{\"name\":\"A\",\"weight\":1}]')"
	campaign 2 plain active 0
	{ event 1 50; event 2 60; event 3 70; } >"$T/in"
	run --separate-stderr cm-match -c "$CM_DATABASE_URL" --emit matches "$T/in"
	[ "$status" -eq 0 ]
	# every candidate of campaign 1 keeps its bucket's outcome and carries the limit
	[ "$(jq -c 'select(.campaign_id == 1) | [.outcome, .variant, .limit]' <<<"$output" | sort -u)" = '["matched","A",{"per_user":1}]' ]
	[ "$(jq -c 'select(.campaign_id == 1)' <<<"$output" | wc -l)" -eq 3 ]
	[ "$(jq -c 'select(.campaign_id == 2) | keys' <<<"$output" | sort -u)" = '["campaign_id","event_id","event_type","occurred_at","outcome","user_id"]' ]
	# a bad control in a row (one the table's checks let by) is a bad
	# campaign: reported and skipped
	pg_sql "UPDATE campaigns SET \"limit\" = '{\"per_user\": 0}' WHERE id = 1"
	run --separate-stderr cm-match -c "$CM_DATABASE_URL" --check
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"campaign 1: limit.per_user: "* ]]
}
