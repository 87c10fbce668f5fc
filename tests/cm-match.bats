#!/usr/bin/env bats
# cm-match: events and campaigns in, annotated events or match lines out.
# Every flag and exit status, messages naming FILE:LINE, the output shapes
# of CONTRACT 1.3/1.4, input edge cases, a closed stdout, and SIGHUP reloads.

load lib/common
bats_require_minimum_version 1.5.0

MF=$FIX/match

# ev ID TYPE USER TIME [PROPS] [EXTRA]: one event line.
ev() {
	printf '{"event_id":"%s","event_type":"%s","user_id":"%s","occurred_at":"%s","properties":%s%s}\n' \
		"$1" "$2" "$3" "$4" "${5:-{\}}" "${6:-}"
}

# wait_for CMD: polls CMD for up to 10 seconds.
wait_for() {
	local i
	for i in $(seq 200); do
		eval "$1" && return 0
		sleep 0.05
	done
	echo "timed out waiting for: $1" >&2
	return 1
}

@test "--help prints the usage on stdout and exits 0" {
	run --separate-stderr cm-match --help
	[ "$status" -eq 0 ]
	[[ "$output" == Usage:\ cm-match* ]]
	for o in campaigns matched-only emit check stats max-line help version; do
		[[ "$output" == *"--$o"* ]]
	done
	[ -z "$stderr" ]
	run cm-match -h
	[ "$status" -eq 0 ]
}

@test "--version prints the name and version" {
	run cm-match --version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^cm-match\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
	run cm-match -V
	[ "$status" -eq 0 ]
}

@test "usage errors exit 2 with a message" {
	run cm-match
	[ "$status" -eq 2 ]
	[[ "$output" == *"missing -c/--campaigns FILE"* ]]
	[[ "$output" == *"--help"* ]]
	run cm-match -c "$MF/campaigns.json" --no-such-option
	[ "$status" -eq 2 ]
	[[ "$output" == *"unknown option '--no-such-option'"* ]]
	run cm-match -c
	[ "$status" -eq 2 ]
	[[ "$output" == *"needs a value"* ]]
	run cm-match -c "$MF/campaigns.json" --emit lines
	[ "$status" -eq 2 ]
	[[ "$output" == *"--emit: expected events or matches, not 'lines'"* ]]
	run cm-match -c "$MF/campaigns.json" --max-line 10Q
	[ "$status" -eq 2 ]
	[[ "$output" == *"--max-line"* ]]
}

@test "a missing campaigns file is a configuration error" {
	run --separate-stderr cm-match -c "$T/nope.json" "$MF/events.ndjson"
	[ "$status" -eq 2 ]
	[ -z "$output" ]
	[[ "$stderr" == *"cm-match: $T/nope.json: cannot open"* ]]
}

@test "an invalid campaigns file exits 2, lists every problem and matches nothing" {
	run --separate-stderr cm-match -c "$MF/bad-campaigns.json" "$MF/events.ndjson"
	[ "$status" -eq 2 ]
	[ -z "$output" ]
	f=$MF/bad-campaigns.json
	[[ "$stderr" == *"cm-match: $f:2: campaign 7: rule.wehre: unknown key (expected event_type, where or jq)"* ]]
	[[ "$stderr" == *"cm-match: $f:3: campaign 8: rule.where.all[1].op: unknown operator \"gte2\" (expected one of eq ne lt lte gt gte in not_in contains starts_with exists not_exists matches)"* ]]
	[[ "$stderr" == *"cm-match: $f:6: campaign #3: id: expected an integer from 1 to 9007199254740992"* ]]
	[[ "$stderr" == *"cm-match: $f:6: campaign #3: name:"* ]]
	[[ "$stderr" == *"cm-match: $f:6: campaign #3: status: \"on\" is not a status"* ]]
	[[ "$stderr" == *"cm-match: $f:6: campaign #3: rule.jq: does not compile: syntax error"* ]]
	[[ "$stderr" == *"cm-match: $f:7: campaign 7: id: duplicate id (also campaign #1, line 2)"* ]]
	[ "$(printf '%s\n' "$stderr" | wc -l)" -eq 7 ]
}

@test "--check validates and reads no events" {
	run --separate-stderr cm-match -c "$MF/campaigns.json" --check /nonexistent
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[[ "$stderr" == *"5 campaigns valid (4 active)"* ]]
	run --separate-stderr cm-match -c "$MF/bad-campaigns.json" --check
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"rule.wehre: unknown key"* ]]
	printf '{"id":1,"name":"a","status":"active","rule":{}}\n\n{"id":2,"name":"b","status":"active","rule":{"jq":"bad("}}\n' >"$T/c.ndjson"
	run --separate-stderr cm-match -c "$T/c.ndjson" --check
	[ "$status" -eq 2 ]
	[ "$stderr" = "cm-match: $T/c.ndjson:3: campaign 2: rule.jq: '(' at byte 4 is never closed" ]
}

@test "every event is written with its matches, in campaign id order" {
	run --separate-stderr cm-match -c "$MF/campaigns.json" "$MF/events.ndjson"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 6 ]
	[[ "${lines[0]}" == '{"event_id":"e-1",'*'"items":3},"matches":[{"campaign_id":7,"outcome":"matched"},{"campaign_id":12,"outcome":"matched"}]}' ]]
	[[ "${lines[1]}" == '{"event_id":"e-2",'*'"matches":[]}' ]]
	[[ "${lines[2]}" == *'"matches":[{"campaign_id":3,"outcome":"matched"},{"campaign_id":12,"outcome":"matched"}]}' ]]
	[[ "${lines[3]}" == *'"matches":[{"campaign_id":5,"outcome":"matched"}]}' ]]
	# Outside the summer window, and after campaign 7's end.
	[[ "${lines[4]}" == *'"matches":[]}' ]]
	[[ "${lines[5]}" == *'"matches":[]}' ]]
	# The event itself is kept byte for byte.
	diff <(sed 's/,"matches":\[[^]]*\]}$/}/' <<<"$output") "$MF/events.ndjson"
}

@test "campaign ids of every size are written exactly, in ascending order" {
	for id in 9007199254740992 1 10 99 100 12345 7; do
		printf '{"id":%s,"name":"c%s","status":"active","rule":{}}\n' "$id" "$id"
	done >"$T/c.ndjson"
	run cm-match -c "$T/c.ndjson" <<<'{"event_id":"e","event_type":"t","user_id":"u","occurred_at":"2026-01-01T00:00:00Z","properties":{}}'
	[ "$status" -eq 0 ]
	[ "$output" = '{"event_id":"e","event_type":"t","user_id":"u","occurred_at":"2026-01-01T00:00:00Z","properties":{},"matches":[{"campaign_id":1,"outcome":"matched"},{"campaign_id":7,"outcome":"matched"},{"campaign_id":10,"outcome":"matched"},{"campaign_id":99,"outcome":"matched"},{"campaign_id":100,"outcome":"matched"},{"campaign_id":12345,"outcome":"matched"},{"campaign_id":9007199254740992,"outcome":"matched"}]}' ]
	run cm-match -c "$T/c.ndjson" --emit matches <<<'{"event_id":"e","event_type":"t","user_id":"u","occurred_at":"2026-01-01T00:00:00Z","properties":{}}'
	[ "${#lines[@]}" -eq 7 ]
	[ "${lines[6]}" = '{"campaign_id":9007199254740992,"outcome":"matched","event_id":"e","user_id":"u","event_type":"t","occurred_at":"2026-01-01T00:00:00Z"}' ]
}

@test "--matched-only writes only events with a match" {
	run cm-match -c "$MF/campaigns.json" --matched-only "$MF/events.ndjson"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 3 ]
	[[ "${lines[0]}" == '{"event_id":"e-1"'* ]]
	[[ "${lines[1]}" == '{"event_id":"e-3"'* ]]
	[[ "${lines[2]}" == '{"event_id":"e-4"'* ]]
}

@test "--emit matches writes one CONTRACT 1.3 line per match" {
	run cm-match -c "$MF/campaigns.json" --emit matches "$MF/events.ndjson"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 5 ]
	[ "${lines[0]}" = '{"campaign_id":7,"outcome":"matched","event_id":"e-1","user_id":"u-42","event_type":"purchase","occurred_at":"2026-11-27T10:15:00Z"}' ]
	[ "${lines[1]}" = '{"campaign_id":12,"outcome":"matched","event_id":"e-1","user_id":"u-42","event_type":"purchase","occurred_at":"2026-11-27T10:15:00Z"}' ]
	[ "${lines[2]}" = '{"campaign_id":3,"outcome":"matched","event_id":"e-3","user_id":"u-40","event_type":"signup","occurred_at":"2026-03-01T08:00:00Z"}' ]
	[ "${lines[4]}" = '{"campaign_id":5,"outcome":"matched","event_id":"e-4","user_id":"u-8","event_type":"page_view","occurred_at":"2026-07-04T12:00:00Z"}' ]
	# --matched-only changes nothing there.
	run cm-match -c "$MF/campaigns.json" --emit matches --matched-only "$MF/events.ndjson"
	[ "${#lines[@]}" -eq 5 ]
}

@test "_ keys pass through in both emit modes" {
	ev e-9 signup u-1 2026-01-01T00:00:00Z '{}' ',"_stream_id":"1700000000000-3","_try":{"n":2}' >"$T/in"
	run cm-match -c "$MF/campaigns.json" "$T/in"
	[ "$status" -eq 0 ]
	[ "$output" = '{"event_id":"e-9","event_type":"signup","user_id":"u-1","occurred_at":"2026-01-01T00:00:00Z","properties":{},"_stream_id":"1700000000000-3","_try":{"n":2},"matches":[{"campaign_id":3,"outcome":"matched"}]}' ]
	run cm-match -c "$MF/campaigns.json" --emit matches "$T/in"
	[ "$status" -eq 0 ]
	[ "$output" = '{"campaign_id":3,"outcome":"matched","event_id":"e-9","user_id":"u-1","event_type":"signup","occurred_at":"2026-01-01T00:00:00Z","_stream_id":"1700000000000-3","_try":{"n":2}}' ]
	# An event that matches nothing still carries its _stream_id on.
	ev e-10 other u-1 2026-01-01T00:00:00Z '{}' ',"_stream_id":"5-0"' >"$T/in"
	run cm-match -c "$MF/campaigns.json" "$T/in"
	[ "$output" = '{"event_id":"e-10","event_type":"other","user_id":"u-1","occurred_at":"2026-01-01T00:00:00Z","properties":{},"_stream_id":"5-0","matches":[]}' ]
}

@test "an existing top-level matches member is replaced" {
	printf '%s\n' '{"event_id":"e-1","matches":[{"campaign_id":99,"outcome":"matched"}],"event_type":"signup","user_id":"u-1","occurred_at":"2026-01-01T00:00:00Z","properties":{"matches":1},"_stream_id":"1-0"}' >"$T/in"
	run cm-match -c "$MF/campaigns.json" "$T/in"
	[ "$status" -eq 0 ]
	[ "$output" = '{"event_id":"e-1","event_type":"signup","user_id":"u-1","occurred_at":"2026-01-01T00:00:00Z","properties":{"matches":1},"_stream_id":"1-0","matches":[{"campaign_id":3,"outcome":"matched"}]}' ]
}

@test "input with insignificant whitespace is kept as is, on one line" {
	printf '%s\n' '  { "event_id" : "e-1", "event_type":"signup" ,"user_id":"u-1","occurred_at":"2026-01-01T00:00:00Z", "properties": { } }  ' >"$T/in"
	run cm-match -c "$MF/campaigns.json" "$T/in"
	[ "$status" -eq 0 ]
	[ "$output" = '{ "event_id" : "e-1", "event_type":"signup" ,"user_id":"u-1","occurred_at":"2026-01-01T00:00:00Z", "properties": { } ,"matches":[{"campaign_id":3,"outcome":"matched"}]}' ]
	printf '%s\n' "$output" | jq -e '.matches == [{"campaign_id":3,"outcome":"matched"}]' >/dev/null
}

@test "rejected lines are reported with FILE:LINE and the run goes on (exit 1)" {
	{
		ev e-1 signup u-1 2026-01-01T00:00:00Z
		echo 'not json'
		echo '[1,2]'
		echo '{"event_id":"e-3","event_type":"signup","user_id":"u-1","properties":{}}'
		echo '{"event_id":"e-4","event_type":"bad type","user_id":"u-1","occurred_at":"2026-01-01T00:00:00Z","properties":{}}'
		echo '{"event_id":"e-5","event_type":"signup","user_id":"u-1","occurred_at":"yesterday","properties":{}}'
		echo '{"event_type":"signup","user_id":"u-1","occurred_at":"2026-01-01T00:00:00Z","properties":{}}'
		ev e-8 signup u-2 2026-01-01T00:00:00Z
	} >"$T/in"
	run --separate-stderr cm-match -c "$MF/campaigns.json" --stats "$T/in"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[0]}" == '{"event_id":"e-1"'* ]]
	[[ "${lines[1]}" == '{"event_id":"e-8"'* ]]
	[[ "$stderr" == *"cm-match: $T/in:2: invalid JSON: byte 1:"* ]]
	[[ "$stderr" == *"cm-match: $T/in:3: expected a JSON object, got an array"* ]]
	[[ "$stderr" == *"cm-match: $T/in:4: field 'occurred_at': missing (required)"* ]]
	[[ "$stderr" == *"cm-match: $T/in:5: field 'event_type': expected 1-64 bytes of [A-Za-z0-9_.:-], got \"bad type\""* ]]
	[[ "$stderr" == *"cm-match: $T/in:6: field 'occurred_at': expected an RFC 3339 time, got \"yesterday\""* ]]
	[[ "$stderr" == *"cm-match: $T/in:7: field 'event_id': missing (required)"* ]]
	[[ "$stderr" == *"cm-match: 2 events, 2 matched, 2 matches, 6 rejected, 0 jq errors"* ]]
}

@test "stdin, -, several files, blank lines, CRLF and a missing last newline" {
	ev e-1 signup u-1 2026-01-01T00:00:00Z >"$T/a"
	printf '\n   \n' >>"$T/a"
	ev e-2 signup u-1 2026-01-01T00:00:00Z | tr -d '\n' >>"$T/a"
	printf '%s\r\n\r\n%s\r\n' "$(ev e-3 signup u-1 2026-01-01T00:00:00Z)" "$(ev e-4 signup u-1 2026-01-01T00:00:00Z)" >"$T/b"
	run --separate-stderr cm-match -c "$MF/campaigns.json" "$T/a" - "$T/b" <"$T/a"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 6 ]
	[[ "${lines[1]}" == '{"event_id":"e-2",'*'"matches":[{"campaign_id":3,"outcome":"matched"}]}' ]]
	[[ "${lines[3]}" == '{"event_id":"e-2",'*'"matches":[{"campaign_id":3,"outcome":"matched"}]}' ]]
	[[ "${lines[4]}" == '{"event_id":"e-3",'*'"properties":{},"matches":[{"campaign_id":3,"outcome":"matched"}]}' ]]
	[[ "${lines[5]}" == '{"event_id":"e-4",'*'"properties":{},"matches":[{"campaign_id":3,"outcome":"matched"}]}' ]]
	run bash -c "grep -c \$'\r' <<<'$output'"
	[ "$output" = 0 ]
	run cm-match -c "$MF/campaigns.json" <"$T/b"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	# Line numbers count per file, blank lines included.
	printf '\n\nbroken\n' >"$T/c"
	run --separate-stderr cm-match -c "$MF/campaigns.json" "$T/a" "$T/c"
	[ "$status" -eq 1 ]
	[[ "$stderr" == "cm-match: $T/c:3: invalid JSON"* ]]
}

@test "empty input gives no output and exit 0" {
	: >"$T/empty"
	run --separate-stderr cm-match -c "$MF/campaigns.json" --stats "$T/empty"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ "$stderr" = "cm-match: 0 events, 0 matched, 0 matches, 0 rejected, 0 jq errors" ]
	run cm-match -c "$MF/campaigns.json" </dev/null
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "an empty campaigns file matches nothing" {
	: >"$T/none.json"
	run cm-match -c "$T/none.json" "$MF/events.ndjson"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 6 ]
	[[ "${lines[0]}" == *'"matches":[]}' ]]
}

@test "campaigns as NDJSON load like an array" {
	jq -c '.[]' "$MF/campaigns.json" >"$T/c.ndjson"
	run cm-match -c "$T/c.ndjson" "$MF/events.ndjson"
	[ "$status" -eq 0 ]
	diff <(printf '%s\n' "$output") <(cm-match -c "$MF/campaigns.json" "$MF/events.ndjson")
}

@test "--max-line rejects a longer line and goes on" {
	{
		ev e-1 signup u-1 2026-01-01T00:00:00Z "{\"pad\":\"$(printf 'x%.0s' $(seq 300))\"}"
		ev e-2 signup u-1 2026-01-01T00:00:00Z
	} >"$T/in"
	run --separate-stderr cm-match -c "$MF/campaigns.json" --max-line 200 "$T/in"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "${lines[0]}" == '{"event_id":"e-2"'* ]]
	[ "$stderr" = "cm-match: $T/in:1: line longer than 200 bytes" ]
	run cm-match -c "$MF/campaigns.json" --max-line 1K "$T/in"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
}

@test "jq runtime errors are false, counted, and reported a few times only" {
	echo '[{"id":1,"name":"j","status":"active","rule":{"jq":".properties.x.y"}}]' >"$T/c.json"
	for i in $(seq 8); do ev "e-$i" t u 2026-01-01T00:00:00Z '{"x":"str"}'; done >"$T/in"
	ev e-9 t u 2026-01-01T00:00:00Z '{"x":{"y":1}}' >>"$T/in"
	run --separate-stderr cm-match -c "$T/c.json" --stats --matched-only "$T/in"
	[ "$status" -eq 0 ]
	[[ "$output" == '{"event_id":"e-9"'* ]]
	[[ "$stderr" == *"cm-match: $T/in:1: campaign 1: jq error: Cannot index string with string \"y\""* ]]
	[[ "$stderr" == *"cm-match: $T/in:5: campaign 1: jq error:"* ]]
	[[ "$stderr" != *"$T/in:6:"* ]]
	[[ "$stderr" == *"further jq errors are only counted (see --stats)"* ]]
	[[ "$stderr" == *"cm-match: 9 events, 1 matched, 1 matches, 0 rejected, 8 jq errors"* ]]
}

@test "a closed stdout ends the run quietly with status 0" {
	awk 'BEGIN { for (i = 0; i < 200000; i++) printf "{\"event_id\":\"e-%d\",\"event_type\":\"signup\",\"user_id\":\"u-1\",\"occurred_at\":\"2026-01-01T00:00:00Z\",\"properties\":{}}\n", i }' >"$T/big"
	run bash -c "cm-match -c '$MF/campaigns.json' '$T/big' 2>'$T/err' | head -1; echo \"status \${PIPESTATUS[0]}\""
	[ "${lines[0]}" = '{"event_id":"e-0","event_type":"signup","user_id":"u-1","occurred_at":"2026-01-01T00:00:00Z","properties":{},"matches":[{"campaign_id":3,"outcome":"matched"}]}' ]
	[ "${lines[1]}" = "status 0" ]
	[ ! -s "$T/err" ]
	run bash -c "cm-match -c '$MF/campaigns.json' --emit matches <'$T/big' 2>'$T/err' | head -3 >/dev/null; echo \"status \${PIPESTATUS[0]}\""
	[ "$output" = "status 0" ]
	[ ! -s "$T/err" ]
}

@test "a write error other than a closed pipe exits 5, a read error 5, a missing input 2" {
	run bash -c "cm-match -c '$MF/campaigns.json' '$MF/events.ndjson' >/dev/full"
	[ "$status" -eq 5 ]
	[[ "$output" == *"cm-match: write error: No space left on device"* ]]
	# a directory opens but cannot be read; the other input is still matched
	run --separate-stderr cm-match -c "$MF/campaigns.json" "$T" "$MF/events.ndjson"
	[ "$status" -eq 5 ]
	[[ "$stderr" == *"cm-match: $T: read error: Is a directory"* ]]
	[ "${#lines[@]}" -eq "$(grep -c . "$MF/events.ndjson")" ]
	run --separate-stderr cm-match -c "$MF/campaigns.json" "$T/none" "$MF/events.ndjson"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"cm-match: $T/none: cannot open: No such file or directory"* ]]
}

@test "SIGHUP reloads the campaigns; a bad file keeps the old set" {
	echo '[{"id":1,"name":"one","status":"active","rule":{}}]' >"$T/c.json"
	mkfifo "$T/fifo"
	cm-match -c "$T/c.json" <"$T/fifo" >"$T/out" 2>"$T/err" 3>&- &
	pid=$!
	exec 8>"$T/fifo"
	ev e-1 t u 2026-01-01T00:00:00Z >&8
	wait_for "[ \$(wc -l <'$T/out') -ge 1 ]"
	echo '[{"id":2,"name":"two","status":"active","rule":{}},{"id":3,"name":"three","status":"active","rule":{}}]' >"$T/c.json"
	kill -HUP "$pid"
	ev e-2 t u 2026-01-01T00:00:00Z >&8
	wait_for "[ \$(wc -l <'$T/out') -ge 2 ]"
	grep -q "cm-match: reloaded 2 campaigns from $T/c.json" "$T/err"
	echo '[{"id":4,"name":"four","status":"active","rule":{"wehre":{}}}]' >"$T/c.json"
	kill -HUP "$pid"
	ev e-3 t u 2026-01-01T00:00:00Z >&8
	exec 8>&-
	wait "$pid"
	run cat "$T/out"
	[ "${#lines[@]}" -eq 3 ]
	[[ "${lines[0]}" == *'"matches":[{"campaign_id":1,"outcome":"matched"}]}' ]]
	[[ "${lines[1]}" == *'"matches":[{"campaign_id":2,"outcome":"matched"},{"campaign_id":3,"outcome":"matched"}]}' ]]
	[[ "${lines[2]}" == *'"matches":[{"campaign_id":2,"outcome":"matched"},{"campaign_id":3,"outcome":"matched"}]}' ]]
	run cat "$T/err"
	[[ "$output" == *"cm-match: $T/c.json:1: campaign 4: rule.wehre: unknown key"* ]]
	[[ "$output" == *"cm-match: $T/c.json: not reloaded, still using the 2 campaigns loaded before"* ]]
}

@test "output is flushed while waiting for more input" {
	echo '[{"id":1,"name":"one","status":"active","rule":{}}]' >"$T/c.json"
	mkfifo "$T/fifo"
	cm-match -c "$T/c.json" <"$T/fifo" >"$T/out" 2>"$T/err" 3>&- &
	pid=$!
	exec 8>"$T/fifo"
	ev e-1 t u 2026-01-01T00:00:00Z >&8
	wait_for "[ -s '$T/out' ]"
	exec 8>&-
	wait "$pid"
	[ "$(wc -l <"$T/out")" -eq 1 ]
}
