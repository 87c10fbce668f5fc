#!/usr/bin/env bats
# The round trip: awkward but valid events go through every stage with its
# default options, cm-ingest -> cm-publish -> cm-consume | cm-match -c DB |
# cm-store --ack, and come back from PostgreSQL equal, compared exactly by
# tests/lib/roundtrip.py (numbers as decimals: jq would round them to doubles).

load lib/common
load lib/pg
load lib/redis

setup_file() {
	pg_start
	cm-admin migrate --dir "$TOP/share/sql" >/dev/null
	redis_start 3>&-
}

teardown_file() {
	redis_cleanup
	pg_stop
}

RT=/usr/bin/python3
# stored EVENTS|MATCHES: the rows of a table, one JSON object each, times in
# UTC as to_char writes them, each line the hex of its UTF-8 (psql's own
# printing drops some characters, such as U+10FFFF, that the server holds).
stored() {
	local t="to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS')" row
	if [ "$1" = events ]; then
		row="json_build_object('event_id', event_id, 'event_type', event_type,
		     'user_id', user_id, 'occurred_at', $t, 'properties', properties)"
	else
		row="json_build_object('campaign_id', campaign_id, 'event_id', event_id,
		     'user_id', user_id, 'event_type', event_type, 'occurred_at', $t)"
	fi
	pg_sql "SELECT encode(convert_to($row::text, 'UTF8'), 'hex') FROM $1"
}

@test "round trip: awkward events come back from PostgreSQL equal, through every stage's defaults" {
	"$RT" "$TOP/tests/lib/roundtrip.py" gen >"$T/big.ndjson"
	cat "$FIX/roundtrip/awkward.ndjson" "$T/big.ndjson" >"$T/in.ndjson"
	n=$(wc -l <"$T/in.ndjson")
	# the longest line is exactly the default --max-line of cm-ingest
	[ "$(LC_ALL=C awk '{ if (length($0) > m) m = length($0) } END { print m }' "$T/in.ndjson")" -eq 1048576 ]
	cm-ingest "$T/in.ndjson" >"$T/events.ndjson" 2>"$T/err" || { cat "$T/err"; false; }
	[ ! -s "$T/err" ]
	[ "$(wc -l <"$T/events.ndjson")" -eq "$n" ]
	cm-publish "$T/events.ndjson"
	[ "$(rcli xlen cm:events)" -eq "$n" ]
	pg_sql "INSERT INTO campaigns (id, name, status, rule) VALUES (1, 'every event', 'active', '{}')"
	# the worker, stage by stage, each with its default options
	run bash -c 'cm-consume | cm-match -c "$CM_DATABASE_URL" | cm-store --ack; echo "statuses ${PIPESTATUS[*]}"'
	echo "$output"
	[ "${lines[${#lines[@]} - 1]}" = "statuses 0 0 0" ]
	[ "${#lines[@]}" -eq 1 ]
	[ "$(rcli xpending cm:events cm-workers | head -1)" -eq 0 ]
	[ "$(rcli xlen cm:events:dead)" -eq 0 ]
	stored events >"$T/stored"
	stored matches >"$T/matches"
	run "$RT" "$TOP/tests/lib/roundtrip.py" compare "$T/events.ndjson" "$T/stored" "$T/matches" 1
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "$n events, $n stored, $n matches, 0 differences" ]
}

@test "round trip: the comparison finds a difference in a number, a string and a key" {
	printf '%s\n' '{"event_id":"e","event_type":"t","user_id":"u","occurred_at":"2026-11-27T10:15:00Z","properties":{"n":1e400,"s":"\u00e9","k":{"a":1}}}' >"$T/want"
	hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; echo; }
	check() {
		hex "{\"event_id\":\"e\",\"event_type\":\"t\",\"user_id\":\"u\",\"occurred_at\":\"2026-11-27T10:15:00.000\",\"properties\":$1}" >"$T/got"
		hex '{"campaign_id":1,"event_id":"e","user_id":"u","event_type":"t","occurred_at":"2026-11-27T10:15:00.000"}' >"$T/m"
		"$RT" "$TOP/tests/lib/roundtrip.py" compare "$T/want" "$T/got" "$T/m" 1
	}
	run check '{"k":{"a":1.0},"s":"é","n":10e399}'
	[ "$status" -eq 0 ]
	# 1e400 read as a double would be infinite; and 1e400 + 1 is not 1e400
	run check '{"k":{"a":1},"s":"é","n":1'"$(printf '%0400d' 1)"'}'
	[ "$status" -eq 1 ]
	[[ "$output" == *"differs at properties.n"* ]]
	run check '{"k":{"a":1},"s":"e","n":1e400}'
	[ "$status" -eq 1 ]
	[[ "$output" == *"differs at properties.s"* ]]
	run check '{"k":{"b":1},"s":"é","n":1e400}'
	[ "$status" -eq 1 ]
	[[ "$output" == *"differs at properties.k (keys ['a', 'b'])"* ]]
	run check '{"k":{"a":"1"},"s":"é","n":1e400}'
	[ "$status" -eq 1 ]
	[[ "$output" == *"differs at properties.k.a"* ]]
}
