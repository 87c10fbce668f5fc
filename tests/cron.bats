#!/usr/bin/env bats
# examples/cron: the nightly import script against a real Redis (and a real
# PostgreSQL for the double import): records published, rejects kept beside
# the input with status 1, one import at a time (a second one refuses, or
# waits with --wait), and a file imported twice stored once.

load lib/common
load lib/redis
load lib/pg

IMPORT=$TOP/examples/cron/cm-import.sh

setup_file() {
	redis_start
	pg_start
}

teardown_file() {
	redis_cleanup
	pg_stop
}

setup() {
	rcli flushall >/dev/null
	# the settings come from the environment file, as under cron
	unset CM_REDIS_URL
	printf 'CM_REDIS_URL=redis://127.0.0.1:%s\n' "$REDIS_PORT" >"$T/env"
	cat >"$T/orders.csv" <<-'CSV'
		event_type,user_id,occurred_at,amount:number
		purchase,u-1,2026-11-27T10:00:00Z,10
		purchase,u-2,2026-11-27T10:01:00Z,20
		purchase,u-3,2026-11-27T10:02:00+01:00,30
	CSV
}

# import ARGS...: the script with this test's lock and environment file.
import() {
	"$IMPORT" --lock "$T/lock" --env "$T/env" "$@"
}

# stream_ids: the event_id of every entry of cm:events, in stream order.
stream_ids() {
	rcli xrange cm:events - + | grep '^{' | jq -r .event_id
}

@test "a clean file is published in silence, status 0, and no rejects file is left" {
	run import "$T/orders.csv"
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ "$(rcli xlen cm:events)" -eq 3 ]
	[ ! -e "$T/orders.csv.rejects.ndjson" ]
}

@test "rejected records are kept beside the input; the rest is published; status 1" {
	printf 'purchase,u-4,yesterday,40\npurchase,,2026-11-27T11:00:00Z,50\n' >>"$T/orders.csv"
	run import "$T/orders.csv"
	echo "$output"
	[ "$status" -eq 1 ]
	[ "$(rcli xlen cm:events)" -eq 3 ]
	local rej=$T/orders.csv.rejects.ndjson
	[ "$(wc -l <"$rej")" -eq 2 ]
	[ "$(jq -r .line "$rej" | tr '\n' ' ')" = "5 6 " ]
	jq -r 'select(.line == 5) | .error' "$rej" | grep -q "^field 'occurred_at': "
	[ "$(jq -r 'select(.line == 5) | .raw' "$rej")" = "purchase,u-4,yesterday,40" ]
	grep -qF "orders.csv: 2 records rejected, kept in $rej" <<<"$output"
	# cm-ingest named each record on stderr too (cron mails it)
	grep -qF "orders.csv:5: field 'occurred_at'" <<<"$output"
}

@test "a second overlapping import refuses with status 75; with --wait it runs after the first" {
	mkfifo "$T/slow.csv"
	# the first import blocks on its input while it holds the lock
	import "$T/slow.csv" >"$T/first.out" 2>&1 3>&- &
	local first=$! i
	# wait until it holds the lock, looking at /proc/locks (a probe with
	# flock would take the lock itself and could make the import refuse)
	for ((i = 0; i < 600; i++)); do
		[ -e "$T/lock" ] && grep -q "FLOCK .*:$(stat -c %i "$T/lock") " /proc/locks && break
		sleep 0.05
	done
	run flock -n "$T/lock" true
	[ "$status" -ne 0 ]

	run import "$T/orders.csv"
	echo "$output"
	[ "$status" -eq 75 ]
	grep -qF "another import holds $T/lock (waited 0s); not importing $T/orders.csv" <<<"$output"
	[ "$(rcli xlen cm:events)" -eq 0 ]

	import --wait 30 "$T/orders.csv" >"$T/third.out" 2>&1 3>&- &
	local third=$!
	sleep 0.5
	# still waiting for the lock, nothing published yet
	kill -0 "$third"
	[ "$(rcli xlen cm:events)" -eq 0 ]
	printf 'event_type,user_id,occurred_at\nsignup,u-9,2026-11-27T09:00:00Z\n' >"$T/slow.csv"
	wait "$first"
	wait "$third"
	cat "$T/first.out" "$T/third.out"
	[ "$(rcli xlen cm:events)" -eq 4 ]
	# the first import's event went in before the waiting one's
	[ "$(rcli xrange cm:events - + count 1 | grep '^{' | jq -r .user_id)" = u-9 ]
}

@test "the same file imported twice: the same event ids, and a worker stores each event once" {
	run import "$T/orders.csv"
	[ "$status" -eq 0 ]
	stream_ids >"$T/first"
	run import "$T/orders.csv"
	[ "$status" -eq 0 ]
	[ "$(rcli xlen cm:events)" -eq 6 ]
	stream_ids >"$T/both"
	# the file has no event_id column: the ids are derived from the records
	[ "$(wc -l <"$T/first")" -eq 3 ]
	grep -q '^ev-' "$T/first"
	[ "$(sort -u "$T/both")" = "$(sort "$T/first")" ]
	[ "$(sed -n '4,6p' "$T/both")" = "$(cat "$T/first")" ]

	# one worker drains the stream into PostgreSQL
	pg_newdb
	CM_SQL_DIR=$TOP/share/sql cm-admin migrate >/dev/null
	echo '{"id":1,"name":"big","status":"active","rule":{"event_type":"purchase","where":{"field":"properties.amount","op":"gte","value":15}}}' >"$T/c.json"
	export CM_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
	run bash -c "cm-consume | cm-match -c '$T/c.json' | cm-store --ack"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(pg_sql 'SELECT count(*) FROM events')" -eq 3 ]
	[ "$(pg_sql 'SELECT count(*) FROM matches')" -eq 2 ]
	[ "$(pg_sql 'SELECT string_agg(event_id, chr(10) ORDER BY event_id) FROM events')" = "$(sort "$T/first")" ]
	# every entry, the duplicates too, was acknowledged
	[ "$(rcli xpending cm:events cm-workers | head -1)" -eq 0 ]
}

@test "usage errors exit 2: no file, a bad --wait, an unreadable --env" {
	run "$IMPORT"
	[ "$status" -eq 2 ]
	grep -q '^usage: cm-import.sh' <<<"$output"
	run import --wait soon "$T/orders.csv"
	[ "$status" -eq 2 ]
	grep -qF -- "--wait: expected whole seconds, got 'soon'" <<<"$output"
	run "$IMPORT" --lock "$T/lock" --env "$T/missing.env" "$T/orders.csv"
	[ "$status" -eq 2 ]
	grep -qF "$T/missing.env: cannot read the environment file" <<<"$output"
	[ "$(rcli xlen cm:events)" -eq 0 ]
}

@test "the cron entry runs the script as the service user, with --wait, and mails failures" {
	local cron=$TOP/examples/cron/campaign-manager.cron
	grep -qE '^MAILTO=' "$cron"
	# m h dom mon dow user command: the user field, then the script with --wait
	grep -E '^[0-9]' "$cron" | awk '{ exit !($6 == "campaign-manager" && $7 == "cm-import.sh" && $8 == "--wait") }'
	# cron would cut the command at an unescaped %
	[ "$(grep -E '^[0-9]' "$cron" | grep -cE '(^|[^\\])%')" -eq 0 ]
}
