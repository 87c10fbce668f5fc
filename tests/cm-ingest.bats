#!/usr/bin/env bats
# cm-ingest: CSV and JSON lines to canonical events. Every flag and exit
# status, messages naming FILE:LINE, the rejects file and the counts, --raw,
# types, --jq, bounds, derived ids and format detection.

load lib/common
bats_require_minimum_version 1.5.0

IF=$FIX/ingest

# ev TYPE USER [EXTRA]: one canonical input line without event_id.
ev() { printf '{"event_type":"%s","user_id":"%s"%s}\n' "$1" "$2" "${3:-}"; }

@test "--help prints the usage on stdout and exits 0" {
	run --separate-stderr cm-ingest --help
	[ "$status" -eq 0 ]
	[[ "$output" == Usage:\ cm-ingest* ]]
	for o in format raw jq types delimiter rejects stats max-line max-depth help version; do
		[[ "$output" == *"--$o"* ]]
	done
	[ -z "$stderr" ]
	run cm-ingest -h
	[ "$status" -eq 0 ]
}

@test "--version prints the name and version" {
	run cm-ingest --version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^cm-ingest\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
	run cm-ingest -V
	[ "$status" -eq 0 ]
}

@test "usage errors exit 2 with a message" {
	run cm-ingest --no-such-option
	[ "$status" -eq 2 ]
	[[ "$output" == *"--help"* ]]
	run cm-ingest --format xml
	[ "$status" -eq 2 ]
	[[ "$output" == *"--format: expected csv, json or auto, got 'xml'"* ]]
	run cm-ingest -f
	[ "$status" -eq 2 ]
	run cm-ingest --types amount
	[ "$status" -eq 2 ]
	[[ "$output" == *"--types: expected COL=TYPE, got 'amount'"* ]]
	run cm-ingest -t amount=float
	[ "$status" -eq 2 ]
	[[ "$output" == *"unknown type 'float'"* ]]
	run cm-ingest --max-line 10Q
	[ "$status" -eq 2 ]
	[[ "$output" == *"--max-line"* ]]
	run cm-ingest --max-depth 0
	[ "$status" -eq 2 ]
	run cm-ingest --delimiter '"'
	[ "$status" -eq 2 ]
	run cm-ingest --delimiter ab
	[ "$status" -eq 2 ]
	run cm-ingest --raw --jq .
	[ "$status" -eq 2 ]
	run cm-ingest --rejects /nonexistent/dir/rej.ndjson /dev/null
	[ "$status" -eq 2 ]
	[[ "$output" == *"--rejects: /nonexistent/dir/rej.ndjson"* ]]
}

@test "empty input: no output, exit 0" {
	run --separate-stderr cm-ingest </dev/null
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ -z "$stderr" ]
	: >"$T/empty.csv"
	run cm-ingest "$T/empty.csv"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	printf '\n\n  \n' >"$T/blank.jsonl"
	run cm-ingest --stats "$T/blank.jsonl"
	[ "$status" -eq 0 ]
	[ "$output" = "cm-ingest: 0 records, 0 accepted, 0 rejected" ]
	printf 'event_type,user_id\n' >"$T/header-only.csv"
	run cm-ingest "$T/header-only.csv"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "JSON lines: canonical, Segment and CloudEvents records are normalised" {
	run --separate-stderr cm-ingest "$IF/shapes.jsonl"
	[ "$status" -eq 1 ]
	diff -u "$IF/shapes.out" <(printf '%s\n' "$output")
	[[ "$stderr" == *"shapes.jsonl:5: field 'amount': unknown key; event data belongs under 'properties'"* ]]
}

@test "errors name FILE:LINE, the field and what was expected; exit 1" {
	{
		ev purchase u-1
		ev purchase u-2 ',"occurred_at":"yesterday"'
		ev 'Order Completed' u-3
		printf '{"event_type":"a","user_id":42}\n'
		printf '{"event_type":"a","user_id":"u","properties":[1]}\n'
		printf '{"event_type":"a"\n'
		printf '[1]\n'
	} >"$T/in.jsonl"
	run --separate-stderr cm-ingest "$T/in.jsonl"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	grep -qF "in.jsonl:2: field 'occurred_at': expected an RFC 3339 time, got \"yesterday\"" <<<"$stderr"
	grep -qF "in.jsonl:3: field 'event_type': expected 1-64 bytes of [A-Za-z0-9_.:-], got \"Order Completed\"" <<<"$stderr"
	grep -qF "in.jsonl:4: field 'user_id': expected a string, got 42" <<<"$stderr"
	grep -qF "in.jsonl:5: field 'properties': expected an object, got an array" <<<"$stderr"
	grep -qF "in.jsonl:6: invalid JSON:" <<<"$stderr"
	grep -qF "in.jsonl:7: expected a JSON object, got an array" <<<"$stderr"
	grep -qxF "cm-ingest: 7 records, 1 accepted, 6 rejected" <<<"$stderr"
}

@test "Segment calls: track names lowercased with spaces as '_', identify's traits, page, screen, group, alias" {
	cat >"$T/seg.jsonl" <<-'EOF'
		{"type":"track","event":"Order Completed","userId":"u-1","messageId":"m-1","timestamp":"2026-11-27T10:15:00Z"}
		{"type":"identify","userId":"u-1","messageId":"m-2","traits":{"plan":"pro"},"timestamp":"2026-11-27T10:15:00Z"}
		{"type":"page","userId":"u-1","messageId":"m-3","name":"Home","properties":{"url":"/"},"timestamp":"2026-11-27T10:15:00Z"}
		{"type":"screen","anonymousId":"a-1","messageId":"m-4","name":"Cart","timestamp":"2026-11-27T10:15:00Z"}
		{"type":"group","userId":"u-1","messageId":"m-5","groupId":"g-1","traits":{"name":"Acme"},"timestamp":"2026-11-27T10:15:00Z"}
		{"type":"alias","userId":"u-1","messageId":"m-6","previousId":"a-1","timestamp":"2026-11-27T10:15:00Z"}
		{"type":"track","event":"Order/Completed","userId":"u-1"}
		{"type":"track","event":"Identify","userId":"u-1"}
		{"type":"view","userId":"u-1"}
	EOF
	run --separate-stderr cm-ingest "$T/seg.jsonl"
	[ "$status" -eq 1 ]
	t='"occurred_at":"2026-11-27T10:15:00Z"'
	diff -u - <(printf '%s\n' "$output") <<-EOF
		{"event_id":"m-1","event_type":"order_completed","user_id":"u-1",$t,"properties":{}}
		{"event_id":"m-2","event_type":"identify","user_id":"u-1",$t,"properties":{"plan":"pro"}}
		{"event_id":"m-3","event_type":"page_view","user_id":"u-1",$t,"properties":{"name":"Home","url":"/"}}
		{"event_id":"m-4","event_type":"screen_view","user_id":"a-1",$t,"properties":{"name":"Cart"}}
		{"event_id":"m-5","event_type":"group","user_id":"u-1",$t,"properties":{"groupId":"g-1","traits":{"name":"Acme"}}}
		{"event_id":"m-6","event_type":"alias","user_id":"u-1",$t,"properties":{"previousId":"a-1"}}
	EOF
	grep -qF "seg.jsonl:7: field 'event': \"Order/Completed\" has '/' at byte 6, which an event_type cannot hold ([A-Za-z0-9_.:-]; Segment names are lowercased and spaces become '_')" <<<"$stderr"
	grep -qF "seg.jsonl:8: field 'event': a track call named \"Identify\" would be an identify event" <<<"$stderr"
	grep -qF "seg.jsonl:9: field 'type': expected a Segment call (track, identify, page, screen, group or alias), got \"view\"" <<<"$stderr"
}

@test "--rejects keeps every rejected record; accepted + rejected == records read" {
	{
		for i in 1 2 3 4 5 6 7 8 9 10; do
			if [ $((i % 3)) -eq 0 ]; then
				ev "bad type" "u-$i"
			else
				ev purchase "u-$i"
			fi
		done
		printf '{"broken\n'
	} >"$T/in.jsonl"
	run --separate-stderr cm-ingest --rejects "$T/rej.ndjson" "$T/in.jsonl"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 7 ]
	[ "$(wc -l <"$T/rej.ndjson")" -eq 4 ]
	grep -qxF "cm-ingest: 11 records, 7 accepted, 4 rejected" <<<"$stderr"
	# each line is {"source","line","error","raw"} with the record as read
	run jq -c '[.source, .line, (.error | startswith("field")), .raw]' "$T/rej.ndjson"
	[ "${lines[0]}" = "[\"$T/in.jsonl\",3,true,\"{\\\"event_type\\\":\\\"bad type\\\",\\\"user_id\\\":\\\"u-3\\\"}\"]" ]
	[ "${lines[3]}" = "[\"$T/in.jsonl\",11,false,\"{\\\"broken\"]" ]
	jq -e 'keys == ["error","line","raw","source"]' "$T/rej.ndjson" >/dev/null
}

@test "--rejects with CSV: raw is the record text as read, also when not UTF-8" {
	printf 'event_type,user_id,note\npurchase,,"a\nb"\nok,u-1,x\nok,u-2,\xff\xfe\n' >"$T/in.csv"
	run --separate-stderr cm-ingest --rejects "$T/rej.ndjson" "$T/in.csv"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	run jq -c '[.line, .error, .raw]' "$T/rej.ndjson"
	[ "${lines[0]}" = '[2,"field '"'"'user_id'"'"': expected a string of 1-128 bytes, got \"\"","purchase,,\"a\nb\""]' ]
	# the multi-line record took lines 2-3; bytes that are not UTF-8 become U+FFFD
	jq -e 'select(.line == 5) | .raw == "ok,u-2,\ufffd\ufffd" and .error == "column '"'"'note'"'"': expected UTF-8 text, got \"...\""' "$T/rej.ndjson"
}

@test "--stats prints the counts even when nothing was rejected" {
	ev purchase u-1 >"$T/in.jsonl"
	run --separate-stderr cm-ingest "$T/in.jsonl"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	run --separate-stderr cm-ingest --stats "$T/in.jsonl"
	[ "$status" -eq 0 ]
	[ "$stderr" = "cm-ingest: 1 records, 1 accepted, 0 rejected" ]
}

@test "a closed stdout (| head -1) ends quietly with 0" {
	# generated with awk: loops in the test body are slow under bats
	awk 'BEGIN { for (i = 1; i <= 100000; i++) printf "{\"event_type\":\"purchase\",\"user_id\":\"u-%d\"}\n", i }' >"$T/big.jsonl"
	run bash -c "cm-ingest '$T/big.jsonl' 2>'$T/err' | head -1; echo \"\${PIPESTATUS[0]}\""
	[ "${lines[1]}" = 0 ]
	[[ "${lines[0]}" == '{"event_id":"ev-'* ]]
	[ ! -s "$T/err" ]
	# also with CSV from a pipe, and with records rejected before the pipe closed
	{ echo event_type,user_id; echo 'bad type,u'; seq 1 100000 | sed 's/^/purchase,u-/'; } >"$T/big.csv"
	run bash -c "cat '$T/big.csv' | cm-ingest -f csv 2>/dev/null | head -1; echo \"\${PIPESTATUS[1]}\""
	[ "${lines[1]}" = 0 ]
	[[ "${lines[0]}" == *'"user_id":"u-1",'* ]]
}

@test "a file without a trailing newline: the last record counts (JSON and CSV)" {
	printf '%s\n%s' "$(ev a u-1)" "$(ev b u-2)" >"$T/nonl.jsonl"
	run cm-ingest "$T/nonl.jsonl"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[1]}" == *'"event_type":"b","user_id":"u-2"'* ]]
	printf 'event_type,user_id\r\na,u-1\r\nb,u-2' >"$T/nonl.csv"
	run cm-ingest "$T/nonl.csv"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[1]}" == *'"event_type":"b","user_id":"u-2"'* ]]
}

@test "--raw writes CSV rows as header -> string exactly as in the file" {
	run cm-ingest --raw "$IF/raw.csv"
	[ "$status" -eq 0 ]
	diff -u "$IF/raw.out" <(printf '%s\n' "$output")
	# the same through stdin, detected as CSV by content
	run cm-ingest --raw <"$IF/raw.csv"
	diff -u "$IF/raw.out" <(printf '%s\n' "$output")
}

@test "--raw writes JSON objects unchanged (compact), and still rejects non-objects" {
	printf '{"a": 1, "b" : [ true , null ],"c":"x y"}\n{"z":{}}\n[1]\n' >"$T/in.jsonl"
	run --separate-stderr cm-ingest --raw "$T/in.jsonl"
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = '{"a":1,"b":[true,null],"c":"x y"}' ]
	[ "${lines[1]}" = '{"z":{}}' ]
	[[ "$stderr" == *"in.jsonl:3: expected a JSON object, got an array"* ]]
}

@test "--raw still rejects ragged rows" {
	printf 'a,b\n1,2\n3\n4,5,6\n7,8\n' >"$T/r.csv"
	run --separate-stderr cm-ingest --raw "$T/r.csv"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 2 ]
	[ "${lines[1]}" = '{"a":"7","b":"8"}' ]
	[[ "$stderr" == *"r.csv:3: expected 2 fields as in the header, got 1"* ]]
	[[ "$stderr" == *"r.csv:4: expected 2 fields as in the header, got 3"* ]]
}

@test "CSV: a ragged row is rejected with the line where it starts, the rest goes on" {
	printf 'event_type,user_id,note\na,u-1,"two\nlines"\nb,u-2\nc,u-3,ok\n' >"$T/in.csv"
	run --separate-stderr cm-ingest "$T/in.csv"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[0]}" == *'"properties":{"note":"two\nlines"}}' ]]
	[[ "${lines[1]}" == *'"event_type":"c"'* ]]
	[[ "$stderr" == *"in.csv:4: expected 3 fields as in the header, got 2"* ]]
}

@test "CSV: RFC 4180 details (BOM, CRLF, stray quote, text after a quote, open quote)" {
	printf '\xef\xbb\xbfevent_type,user_id,size\r\na,u-1,5" screen\r\nb,u-2,"x"y\r\nc,u-3,"open\r\n' >"$T/in.csv"
	run --separate-stderr cm-ingest "$T/in.csv"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "${lines[0]}" == *'"event_type":"a","user_id":"u-1",'*'"properties":{"size":"5\" screen"}}' ]]
	[[ "$stderr" == *"in.csv:3: field 3: text after the closing quote"* ]]
	[[ "$stderr" == *"in.csv:4: field 3: quoted field not closed before the end of the input"* ]]
}

@test "CSV header problems are configuration errors (exit 2) naming the column" {
	printf 'event_type,,user_id\na,b,c\n' >"$T/e.csv"
	run cm-ingest "$T/e.csv"
	[ "$status" -eq 2 ]
	[[ "$output" == *"e.csv:1: header: column 2 has an empty name"* ]]
	printf 'event_type,user_id,amount,amount:number\na,b,1,2\n' >"$T/d.csv"
	run cm-ingest "$T/d.csv"
	[ "$status" -eq 2 ]
	[[ "$output" == *"d.csv:1: header: duplicate column 'amount' (columns 3 and 4)"* ]]
	printf 'event_type,user_id:number\na,1\n' >"$T/t.csv"
	run cm-ingest "$T/t.csv"
	[ "$status" -eq 2 ]
	[[ "$output" == *"column 'user_id' is always a string; it cannot be typed number"* ]]
	printf 'customer,total\nc,1\n' >"$T/n.csv"
	run cm-ingest "$T/n.csv"
	[ "$status" -eq 2 ]
	[[ "$output" == *"n.csv:1: header: no column 'event_type'"* ]]
	# --raw only needs names that are there and unique
	run cm-ingest --raw "$T/n.csv"
	[ "$status" -eq 0 ]
	[ "$output" = '{"customer":"c","total":"1"}' ]
}

@test "types from the header suffix" {
	run cm-ingest "$IF/typed.csv"
	[ "$status" -eq 0 ]
	diff -u "$IF/typed.out" <(printf '%s\n' "$output")
}

@test "types from --types (repeatable, comma-separated), overriding the header" {
	printf 'event_type,user_id,amount,n,flag,obj,amount2:number\na,u,1.5,7,TRUE,{"x":1},2\n' >"$T/in.csv"
	run cm-ingest -t amount=number,n=integer --types flag=boolean --types obj=json \
		-t amount2=string "$T/in.csv"
	[ "$status" -eq 0 ]
	[[ "$output" == *'"properties":{"amount":1.5,"n":7,"flag":true,"obj":{"x":1},"amount2":"2"}}' ]]
	# a --types column that is not in the header is worth a warning, not an error
	run --separate-stderr cm-ingest -t nosuch=number "$T/in.csv"
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"--types: no column 'nosuch' in the header"* ]]
}

@test "a bad typed value is rejected naming the line, column and type" {
	printf 'event_type,user_id,amount:number,n:integer,b:boolean,j:json\n' >"$T/in.csv"
	printf 'a,u,"1,5",1,yes,1\n' >>"$T/in.csv"
	printf 'a,u,1,1.5,yes,1\n' >>"$T/in.csv"
	printf 'a,u,1,99999999999999999999,yes,1\n' >>"$T/in.csv"
	printf 'a,u,1,1,maybe,1\n' >>"$T/in.csv"
	printf 'a,u,1,1,yes,{x}\n' >>"$T/in.csv"
	printf 'a,u,+1,1,yes,1\n' >>"$T/in.csv"
	printf 'a,u,-0.5e-3,-7,0,"""s"""\n' >>"$T/in.csv"
	run --separate-stderr cm-ingest "$T/in.csv"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "${lines[0]}" == *'"properties":{"amount":-0.5e-3,"n":-7,"b":false,"j":"s"}}' ]]
	grep -qF "in.csv:2: column 'amount': expected a number, got \"1,5\"" <<<"$stderr"
	grep -qF "in.csv:3: column 'n': expected an integer, got \"1.5\"" <<<"$stderr"
	grep -qF "in.csv:4: column 'n': expected an integer, got \"99999999999999999999\"" <<<"$stderr"
	grep -qF "in.csv:5: column 'b': expected a boolean (true/false, yes/no, 1/0), got \"maybe\"" <<<"$stderr"
	grep -qF "in.csv:6: column 'j': expected JSON, got \"{x}\"" <<<"$stderr"
	grep -qF "in.csv:7: column 'amount': expected a number, got \"+1\"" <<<"$stderr"
}

@test "empty cells: typed ones are left out, event_id and occurred_at are defaulted" {
	printf 'event_id,event_type,user_id,occurred_at,amount:number,s\n,a,u,,,\n' >"$T/in.csv"
	run cm-ingest "$T/in.csv"
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^\{\"event_id\":\"ev-[0-9a-f]{32}\",\"event_type\":\"a\",\"user_id\":\"u\",\"occurred_at\":\"[0-9T:.-]+Z\",\"properties\":\{\"s\":\"\"\}\}$ ]]
	printf 'event_type,user_id\n,u\na,\n' >"$T/e.csv"
	run --separate-stderr cm-ingest "$T/e.csv"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"e.csv:2: field 'event_type': expected 1-64 bytes of [A-Za-z0-9_.:-], got \"\""* ]]
	[[ "$stderr" == *"e.csv:3: field 'user_id': expected a string of 1-128 bytes, got \"\""* ]]
}

@test "--jq maps each raw record (the issue's example)" {
	run --separate-stderr cm-ingest --jq '{event_type:"purchase", user_id:.customer, properties:{amount:(.total|tonumber)}}' "$IF/orders.csv"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[0]}" =~ ^\{\"event_id\":\"ev-[0-9a-f]{32}\",\"event_type\":\"purchase\",\"user_id\":\"c-9\",\"occurred_at\":\"[^\"]+\",\"properties\":\{\"amount\":12.5\}\}$ ]]
	[[ "${lines[1]}" == *'"user_id":"c-3",'*'"properties":{"amount":99}}' ]]
	[[ "$stderr" == *"orders.csv:4: --jq: "*"n/a"* ]]
	grep -qxF "cm-ingest: 3 records, 2 accepted, 1 rejected, 0 filtered" <<<"$stderr"
	# with the time mapped too, the output is fully determined
	run cm-ingest --jq '{event_id:.order_id, event_type:"purchase", user_id:.customer, occurred_at:.placed_at}' "$IF/orders.csv"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = '{"event_id":"A-17","event_type":"purchase","user_id":"c-9","occurred_at":"2026-11-27T09:00:00Z","properties":{}}' ]
}

@test "--jq on CSV sees typed columns as numbers" {
	printf 'customer,total:number\nc-1,12.50\n' >"$T/in.csv"
	run cm-ingest --jq '{event_type: (.total | type), user_id: .customer, properties: {t: .total}}' "$T/in.csv"
	[ "$status" -eq 0 ]
	[[ "$output" == *'"event_type":"number","user_id":"c-1",'*'"properties":{"t":12.5}}' ]]
}

@test "--jq: no output filters the record, several outputs give several events" {
	{ ev a u-1; ev b u-2; ev c u-3; } >"$T/in.jsonl"
	run --separate-stderr cm-ingest --stats --jq 'select(.event_type != "b")' "$T/in.jsonl"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	[ "$stderr" = "cm-ingest: 3 records, 2 accepted, 0 rejected, 1 filtered" ]
	run cm-ingest --jq '., .' "$T/in.jsonl"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 6 ]
	# the output index keeps derived ids apart
	[ "$(printf '%s\n' "$output" | jq -r .event_id | sort -u | wc -l)" -eq 6 ]
}

@test "--jq: runtime errors and non-object outputs reject the record" {
	{ ev a u-1; ev b u-2; } >"$T/in.jsonl"
	run --separate-stderr cm-ingest --rejects "$T/rej" --jq 'if .event_type == "a" then error("nope") else 1 end' "$T/in.jsonl"
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[[ "$stderr" == *"in.jsonl:1: --jq: nope"* ]]
	[[ "$stderr" == *"in.jsonl:2: --jq output 0: expected an object, got number"* ]]
	[ "$(wc -l <"$T/rej")" -eq 2 ]
}

@test "--jq: a filter that does not compile is a usage error naming the position" {
	run cm-ingest --jq '{event_type: .a' /dev/null
	[ "$status" -eq 2 ]
	[[ "$output" == *"--jq"* ]]
	[[ "$output" == *"line 1"* ]]
	run cm-ingest --jq 'nosuchfunction(1)' /dev/null
	[ "$status" -eq 2 ]
	[[ "$output" == *"nosuchfunction/1 is not defined"* ]]
}

@test "--max-line rejects a longer record by its line and goes on (JSON and CSV)" {
	{
		ev a u-1
		ev b u-2 ',"properties":{"pad":"'"$(head -c 300 /dev/zero | tr '\0' x)"'"}'
		ev c u-3
	} >"$T/in.jsonl"
	run --separate-stderr cm-ingest --max-line 200 "$T/in.jsonl"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 2 ]
	[[ "$stderr" == *"in.jsonl:2: line longer than 200 bytes (--max-line)"* ]]
	run cm-ingest --max-line 1K "$T/in.jsonl"
	[ "$status" -eq 0 ]
	printf 'event_type,user_id,note\na,u-1,"%s\n%s"\nb,u-2,short\n' "$(head -c 150 /dev/zero | tr '\0' y)" "$(head -c 150 /dev/zero | tr '\0' z)" >"$T/in.csv"
	run --separate-stderr cm-ingest --max-line 250 "$T/in.csv"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "${lines[0]}" == *'"event_type":"b"'* ]]
	[[ "$stderr" == *"in.csv:2: record longer than 250 bytes (--max-line)"* ]]
}

@test "--max-line also bounds the event written, so that no tool after cm-ingest refuses it for length" {
	# 100 control characters are 100 bytes in the file but 600 in JSON
	printf 'event_type,user_id,note\na,u-1,%s\nb,u-2,short\n' "$(head -c 100 /dev/zero | tr '\0' '\001')" >"$T/in.csv"
	run --separate-stderr cm-ingest --max-line 300 "$T/in.csv"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "${lines[0]}" == *'"event_type":"b"'* ]]
	[[ "$stderr" == *"cm-ingest: $T/in.csv:2: the event is 749 bytes long once normalised, longer than 300 bytes (--max-line)"* ]]
	ev a u-1 ',"properties":{"s":"'"$(head -c 220 /dev/zero | tr '\0' s)"'"}' >"$T/in.jsonl"
	run --separate-stderr cm-ingest --max-line 300 "$T/in.jsonl"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"in.jsonl:1: the event is "*" bytes long once normalised, longer than 300 bytes (--max-line)"* ]]
	run cm-ingest --max-line 400 "$T/in.jsonl"
	[ "$status" -eq 0 ]
}

@test "--max-depth bounds JSON nesting" {
	ev a u-1 ',"properties":{"a":{"b":{"c":1}}}' >"$T/in.jsonl"
	run cm-ingest --max-depth 3 "$T/in.jsonl"
	[ "$status" -eq 1 ]
	run cm-ingest --max-depth 4 "$T/in.jsonl"
	[ "$status" -eq 0 ]
	# the default (64) holds against a deeply nested record
	printf '{"event_type":"a","user_id":"u","properties":{"x":%s1%s}}\n' "$(printf '[%.0s' $(seq 100))" "$(printf ']%.0s' $(seq 100))" >"$T/deep.jsonl"
	run cm-ingest "$T/deep.jsonl"
	[ "$status" -eq 1 ]
	[[ "$output" == *"deep.jsonl:1: invalid JSON"* ]]
}

@test "derived ids are stable: ingesting the same file twice gives the same ids" {
	{ ev a u-1; ev b u-2; ev a u-1 ',"properties":{"k":1}}' | tr -d '\n'; echo; } >"$T/in.jsonl"
	cm-ingest "$T/in.jsonl" | jq -r .event_id >"$T/ids1"
	cm-ingest "$T/in.jsonl" | jq -r .event_id >"$T/ids2"
	cmp "$T/ids1" "$T/ids2"
	grep -Eqx 'ev-[0-9a-f]{32}' "$T/ids1"
	printf 'event_type,user_id\na,u-1\nb,u-2\n' >"$T/in.csv"
	run bash -c "cm-ingest '$T/in.csv' | jq -r .event_id"
	first=$output
	run bash -c "cm-ingest '$T/in.csv' | jq -r .event_id"
	[ "$output" = "$first" ]
	[ "$(printf '%s\n' "$output" | sort -u | wc -l)" -eq 2 ]
}

@test "format detection: by file name, else by content" {
	ev a u-1 >"$T/x.json"
	cp "$T/x.json" "$T/x.ndjson"
	cp "$T/x.json" "$T/x.data"
	printf 'event_type,user_id\na,u-1\n' >"$T/y.CSV"
	printf 'event_type\tuser_id\na\tu-1\n' >"$T/y.tsv"
	printf '\xef\xbb\xbf  \n{"event_type":"a","user_id":"u-1"}\n' >"$T/bom.txt"
	for f in x.json x.ndjson x.data y.CSV y.tsv bom.txt; do
		run cm-ingest "$T/$f"
		[ "$status" -eq 0 ]
		[[ "$output" == *'"event_type":"a","user_id":"u-1"'* ]]
	done
	run cm-ingest <"$T/y.CSV"
	[[ "$output" == *'"event_type":"a","user_id":"u-1"'* ]]
	run cm-ingest - <"$T/x.json"
	[[ "$output" == *'"event_type":"a","user_id":"u-1"'* ]]
	# --format overrides the name
	run cm-ingest --format csv "$T/x.json"
	[ "$status" -eq 2 ]
	run cm-ingest -f json "$T/y.CSV"
	[ "$status" -eq 1 ]
}

@test "--delimiter" {
	printf 'event_type;user_id;note\na;u-1;x,y\n' >"$T/in.txt"
	run cm-ingest --delimiter ';' "$T/in.txt"
	[ "$status" -eq 0 ]
	[[ "$output" == *'"properties":{"note":"x,y"}}' ]]
	printf 'event_type\tuser_id\na\tu-1\n' >"$T/in.tab"
	run cm-ingest -f csv --delimiter tab "$T/in.tab"
	[ "$status" -eq 0 ]
	[[ "$output" == *'"user_id":"u-1"'* ]]
}

@test "several files in order; messages name each; one that cannot be opened is exit 2, a read error 5" {
	ev a u-1 >"$T/1.jsonl"
	printf 'event_type,user_id\nbad type,u\nb,u-2\n' >"$T/2.csv"
	run --separate-stderr cm-ingest "$T/1.jsonl" "$T/missing.jsonl" "$T/2.csv" - <<<"$(ev c u-3)"
	[ "$status" -eq 2 ]
	[ "${#lines[@]}" -eq 3 ]
	[[ "${lines[0]}" == *'"event_type":"a"'* ]]
	[[ "${lines[1]}" == *'"event_type":"b"'* ]]
	[[ "${lines[2]}" == *'"event_type":"c"'* ]]
	[[ "$stderr" == *"cm-ingest: $T/missing.jsonl: cannot open: No such file or directory"* ]]
	[[ "$stderr" == *"2.csv:2: field 'event_type'"* ]]
	[[ "$stderr" == *"cm-ingest: 4 records, 3 accepted, 1 rejected"* ]]
	run cm-ingest "$T"
	[ "$status" -eq 5 ]
	[[ "$output" == *"cm-ingest: $T: read error: Is a directory"* ]]
	# a read error says more than a missing file; the other inputs are read
	mkdir "$T/dir.csv" "$T/dir.jsonl"
	run --separate-stderr cm-ingest "$T/missing.jsonl" "$T/dir.csv" "$T/dir.jsonl" "$T/1.jsonl"
	[ "$status" -eq 5 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$stderr" == *"cm-ingest: $T/dir.csv: read error: Is a directory"* ]]
	[[ "$stderr" == *"cm-ingest: $T/dir.jsonl: read error: Is a directory"* ]]
	run cm-ingest "$T/missing.jsonl" "$T/1.jsonl"
	[ "$status" -eq 2 ]
}

@test "stdin is named stdin in messages" {
	run cm-ingest <<<'{"event_type":"a"}'
	[ "$status" -eq 1 ]
	[[ "$output" == *"cm-ingest: stdin:1: field 'user_id': missing (required)"* ]]
}

@test "a write error on stdout or on the rejects file is reported (exit 5)" {
	ev a u-1 >"$T/in.jsonl"
	run bash -c "cm-ingest '$T/in.jsonl' >/dev/full"
	[ "$status" -eq 5 ]
	[[ "$output" == *"cm-ingest: write error: No space left on device"* ]]
	printf '{"event_type":"a"}\n' >"$T/bad.jsonl"
	run --separate-stderr cm-ingest --rejects /dev/full "$T/bad.jsonl"
	[ "$status" -eq 5 ]
	[[ "$stderr" == *"cm-ingest: --rejects: /dev/full: write error"* ]]
	run bash -c "cm-ingest --help >/dev/full"
	[ "$status" -eq 5 ]
}

@test "options: the shared wording for --max-line, unknown options and missing values" {
	run cm-ingest --max-line 10
	[ "$status" -eq 2 ]
	[[ "$output" == *"cm-ingest: --max-line: expected a size from 64 to 1G, not '10'"* ]]
	run cm-ingest --max-line=2G
	[ "$status" -eq 2 ]
	run cm-ingest --no-such-option
	[ "$status" -eq 2 ]
	[[ "$output" == *"cm-ingest: unknown option '--no-such-option'"* ]]
	[[ "$output" == *"Try 'cm-ingest --help' for more information."* ]]
	run cm-ingest -x
	[ "$status" -eq 2 ]
	[[ "$output" == *"unknown option '-x'"* ]]
	run cm-ingest --format
	[ "$status" -eq 2 ]
	[[ "$output" == *"option '--format' needs a value"* ]]
	run cm-ingest -t
	[ "$status" -eq 2 ]
	[[ "$output" == *"option '-t' needs a value"* ]]
	# short options that exist only as long ones are unknown
	run cm-ingest -r /dev/null
	[ "$status" -eq 2 ]
	ev a u-1 >"$T/in.jsonl"
	run cm-ingest --max-line=64 "$T/in.jsonl"
	[ "$status" -eq 1 ]
	[[ "$output" == *"in.jsonl:1: the event is "*" bytes long once normalised, longer than 64 bytes (--max-line)"* ]]
}

@test "format detection waits for the first byte that is not blank on a slow pipe; lines count across" {
	run --separate-stderr bash -c "{ printf '\n\r\n'; sleep 0.3; printf 'event_type,user_id\nbad type,u-1\nb,u-2\n'; } | cm-ingest"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "${lines[0]}" == *'"event_type":"b","user_id":"u-2"'* ]]
	[[ "$stderr" == *"cm-ingest: stdin:4: field 'event_type'"* ]]
	run --separate-stderr bash -c "{ printf '\xef\xbb\xbf  '; sleep 0.3; printf '\t{\"event_type\":\"a\",\"user_id\":\"u-1\"}\r\n\n{\"event_type\":\"a b\"}\n'; } | cm-ingest"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "${lines[0]}" == *'"event_type":"a","user_id":"u-1"'* ]]
	[[ "$stderr" == *"cm-ingest: stdin:3: field 'event_type'"* ]]
}

@test "the output re-parses and every line is a canonical event" {
	cm-ingest "$IF/typed.csv" "$IF/shapes.jsonl" 2>/dev/null >"$T/out" || true
	[ "$(wc -l <"$T/out")" -eq 5 ]
	jq -e -s 'all(.[]; (keys_unsorted[0:5] == ["event_id","event_type","user_id","occurred_at","properties"]) and (.occurred_at | test("Z$")) and (.properties | type == "object"))' "$T/out"
}
