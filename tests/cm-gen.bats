#!/usr/bin/env bats
# The benchmark data generator (tests/bench/cm-gen.c): the same arguments give
# the same bytes, and the data has the shapes and counts the benches and the
# differential tests rely on.

load lib/common
bats_require_minimum_version 1.5.0

GEN=${CM_BUILD:-$TOP/build}/tests/cm-gen

# jqf FILTER FILE: jq's answer as one compact value (slurps FILE).
jqf() { jq -cs "$1" "$2"; }

@test "events: the same seed gives the same bytes, the default seed is 1" {
	"$GEN" events 3000 --seed 42 >"$T/a"
	"$GEN" events 3000 --seed 42 >"$T/b"
	cmp "$T/a" "$T/b"
	"$GEN" events 500 >"$T/c"
	"$GEN" events 500 --seed 1 >"$T/d"
	cmp "$T/c" "$T/d"
}

@test "events: different seeds give different data" {
	"$GEN" events 200 --seed 1 | sed 's/"event_id":"[^"]*"//' >"$T/a"
	"$GEN" events 200 --seed 2 | sed 's/"event_id":"[^"]*"//' >"$T/b"
	run ! cmp -s "$T/a" "$T/b"
}

@test "events: output is pinned (change the digest only when changing the generator on purpose)" {
	run bash -c "'$GEN' events 2000 --seed 7 --types 60 | sha256sum | cut -c1-16"
	[ "$status" -eq 0 ]
	[ "$output" = "3ece72b9e5f14632" ]
}

@test "events: N lines with ids e-SEED-1 .. e-SEED-N in order" {
	"$GEN" events 1234 --seed 9 >"$T/e"
	[ "$(wc -l <"$T/e")" -eq 1234 ]
	jq -r .event_id "$T/e" >"$T/ids"
	seq 1 1234 | sed 's/^/e-9-/' >"$T/want"
	cmp "$T/ids" "$T/want"
}

@test "events: N=0 writes nothing" {
	run "$GEN" events 0
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "events: every line is a compact JSON object with exactly the five canonical keys" {
	"$GEN" events 5000 --types 60 >"$T/e"
	# Compact: re-printed without spaces, each line comes back byte for byte
	# (Python keeps 63.0 as written, where jq would print 63).
	python3 -c '
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    v = json.loads(line)
    assert json.dumps(v, separators=(",", ":"), ensure_ascii=False) + "\n" == line, line
' "$T/e"
	run jqf '[.[] | keys] | unique' "$T/e"
	[ "$output" = '[["event_id","event_type","occurred_at","properties","user_id"]]' ]
	run jqf '[.[] | select((.event_id|type) != "string" or (.user_id|type) != "string"
		or (.properties|type) != "object"
		or (.event_type|test("^[A-Za-z0-9_.:-]{1,64}$")|not)
		or (.user_id|test("^u-[0-9]+$")|not)
		or (.occurred_at|test("^2026-(0[1-9]|1[0-2])-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{3})?Z$")|not))] | length' "$T/e"
	[ "$output" = 0 ]
}

@test "events: times are real 2026 dates, spread over the year in order" {
	"$GEN" events 3000 >"$T/e"
	run jqf '[.[] | .occurred_at | sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601 | strftime("%Y")] | unique' "$T/e"
	[ "$output" = '["2026"]' ]
	run jqf '[.[] | .occurred_at[5:7]] | unique | length' "$T/e"
	[ "$output" = 12 ]
	run jqf '[.[] | .occurred_at | test("\\.[0-9]{3}Z$")] | map(select(.)) | length' "$T/e"
	[ "$output" -gt 600 ] && [ "$output" -lt 1200 ]
}

@test "events: about 10% are purchases, each with a numeric amount from 0 to 500" {
	"$GEN" events 20000 >"$T/e"
	run jqf '[.[] | select(.event_type == "purchase")] | length' "$T/e"
	[ "$output" -ge 1700 ] && [ "$output" -le 2300 ]
	run jqf '[.[] | select(.event_type == "purchase") | .properties.amount
		| select(type != "number" or . < 0 or . > 500)] | length' "$T/e"
	[ "$output" = 0 ]
	# Amounts are both integers and decimals, on both sides of the bench's 100.
	run jqf '[.[] | .properties.amount // empty | [(. == floor), (. >= 100)]] | unique | length' "$T/e"
	[ "$output" = 4 ]
}

@test "events: --types K uses exactly the K most common types" {
	"$GEN" events 20000 >"$T/e24"
	run jqf '[.[].event_type] | unique | length' "$T/e24"
	[ "$output" = 24 ]
	"$GEN" events 2000 --types 5 >"$T/e5"
	run jqf '[.[].event_type] | unique' "$T/e5"
	[ "$output" = '["add_to_cart","page_view","product_viewed","purchase","search"]' ]
	"$GEN" events 100 --types 1 >"$T/e1"
	run jqf '[.[].event_type] | unique' "$T/e1"
	[ "$output" = '["purchase"]' ]
	"$GEN" events 100000 --types 60 >"$T/e60"
	run jqf '[.[].event_type] | unique | length' "$T/e60"
	[ "$output" = 60 ]
}

@test "events: the property keys of an event type never vary" {
	"$GEN" events 20000 --types 60 >"$T/e"
	run jqf 'group_by(.event_type) | map(map(.properties | keys) | unique | length) | unique' "$T/e"
	[ "$output" = '[1]' ]
}

@test "events: realistic values: nested objects, arrays, Unicode, known keys" {
	"$GEN" events 5000 >"$T/e"
	run jqf '[.[] | .properties.cart | objects | keys] | unique' "$T/e"
	[ "$output" = '[["lines","total"]]' ]
	run jqf '[.[] | .properties.tags | arrays | length] | unique' "$T/e"
	[ "$output" = '[0,1,2,3]' ]
	grep -q 'Zürich' "$T/e"
	grep -q '東京' "$T/e"
	run jqf '[.[] | .properties | keys[]] | unique' "$T/e"
	[ "$output" = '["amount","cart","channel","city","country","currency","items","plan","query","referrer","sku","tags"]' ]
	run jqf '[.[] | .properties.sku // empty | test("^SKU-[0-9]{5}$")] | unique' "$T/e"
	[ "$output" = '[true]' ]
	run jqf '[.[] | .properties.items // empty] | [min, max]' "$T/e"
	[ "$output" = '[1,10]' ]
	run jqf '[.[] | .properties.country // empty] | unique | length' "$T/e"
	[ "$output" = 15 ]
	run jqf '[.[].user_id] | unique | length' "$T/e"
	[ "$output" -gt 4800 ]
}

@test "events: about 200 bytes a line on average" {
	"$GEN" events 20000 >"$T/e"
	bytes=$(wc -c <"$T/e")
	[ $((bytes / 20000)) -ge 170 ] && [ $((bytes / 20000)) -le 240 ]
}

@test "campaigns: a JSON array of active campaigns with ids 1..N and unique names" {
	"$GEN" campaigns 500 >"$T/c"
	run jq -c 'type, length, ([.[].id] == [range(1; 501)]), ([.[].name] | unique | length),
		([.[].status] | unique), ([.[] | keys] | unique)' "$T/c"
	[ "${lines[0]}" = '"array"' ]
	[ "${lines[1]}" = 500 ]
	[ "${lines[2]}" = true ]
	[ "${lines[3]}" = 500 ]
	[ "${lines[4]}" = '["active"]' ]
	[ "${lines[5]}" = '[["ends_at","id","name","rule","starts_at","status"]]' ]
}

@test "campaigns: rules of 1-3 native conditions from the expected operators and fields" {
	"$GEN" campaigns 2000 --types 50 >"$T/c"
	# Leaves of every where tree.
	jq -c '.[] | [.rule.where | .. | objects | select(has("field"))]' "$T/c" >"$T/leaves"
	run jq -s -c 'map(length) | [min, max]' "$T/leaves"
	[ "$output" = '[1,3]' ]
	run jq -s -c '[.[][].op] | unique' "$T/leaves"
	[ "$output" = '["eq","gt","gte","in","lt","lte","starts_with"]' ]
	run jq -s -c '[.[][].field] | unique' "$T/leaves"
	[ "$output" = '["properties.amount","properties.channel","properties.city","properties.country","properties.currency","properties.items","properties.plan","properties.referrer","properties.sku"]' ]
	# Value types follow the operator: in takes 2-5 strings, thresholds numbers.
	run jq -s -c '[.[][] | select(.op == "in") | .value | length] | [min, max]' "$T/leaves"
	[ "$output" = '[2,5]' ]
	run jq -s -c '[.[][] | select(.op | test("^[lg]te?$")) | .value | type] | unique' "$T/leaves"
	[ "$output" = '["number"]' ]
	run jq -s -c '[.[][] | select(.op == "eq" or .op == "starts_with") | .value | type] | unique' "$T/leaves"
	[ "$output" = '["string"]' ]
	# Conditions on city compare non-ASCII strings too.
	grep -qE '"value":"(München|Zürich|東京|Kraków|São Paulo|Malmö)"' "$T/c"
	# Mostly all, sometimes any and not.
	run jq -c '[.[].rule.where | .. | objects | keys[] | select(. == "all" or . == "any" or . == "not")] | group_by(.) | map(.[0])' "$T/c"
	[ "$output" = '["all","any","not"]' ]
}

@test "campaigns: --types K spreads the campaigns over the K most common event types" {
	"$GEN" campaigns 2000 --types 50 >"$T/c"
	run jq -c '[.[].rule.event_type | strings, arrays[]] | unique | length' "$T/c"
	[ "$output" = 50 ]
	"$GEN" events 100000 --types 50 | jq -r .event_type | sort -u >"$T/etypes"
	jq -r '.[].rule.event_type | strings, arrays[]' "$T/c" | sort -u >"$T/ctypes"
	cmp "$T/etypes" "$T/ctypes"
}

@test "campaigns: windows are 2026 times with starts_at before ends_at" {
	"$GEN" campaigns 1000 >"$T/c"
	run jq -c '[.[] | select(.starts_at != null or .ends_at != null)] | length' "$T/c"
	[ "$output" -gt 150 ] && [ "$output" -lt 350 ]
	run jq -c '[.[] | select(.starts_at != null and .ends_at != null and .starts_at >= .ends_at)] | length' "$T/c"
	[ "$output" = 0 ]
	run jq -c '[.[] | .starts_at, .ends_at | strings | test("^2026-[0-9]{2}-[0-9]{2}T00:00:00Z$")] | unique' "$T/c"
	[ "$output" = '[true]' ]
}

@test "campaigns: --jq-percent is honoured" {
	"$GEN" campaigns 1000 --jq-percent 10 >"$T/c10"
	run jq '[.[] | select(.rule.jq)] | length' "$T/c10"
	[ "$output" -ge 80 ] && [ "$output" -le 120 ]
	"$GEN" campaigns 1000 >"$T/c1"
	run jq '[.[] | select(.rule.jq)] | length' "$T/c1"
	[ "$output" -ge 5 ] && [ "$output" -le 15 ]
	"$GEN" campaigns 300 --jq-percent 0 >"$T/c0"
	run jq '[.[] | select(.rule.jq)] | length' "$T/c0"
	[ "$output" = 0 ]
	"$GEN" campaigns 300 --jq-percent 100 >"$T/c100"
	run jq '[.[] | select(.rule.jq | not)] | length' "$T/c100"
	[ "$output" = 0 ]
}

@test "campaigns: every jq predicate compiles and runs without error on generated events" {
	"$GEN" campaigns 1000 --jq-percent 100 --types 60 | jq -r '[.[].rule.jq] | unique[]' >"$T/preds"
	# A few templates with a few parameters: realistic duplication.
	[ "$(wc -l <"$T/preds")" -ge 20 ] && [ "$(wc -l <"$T/preds")" -le 60 ]
	"$GEN" events 500 --types 60 >"$T/e"
	while IFS= read -r p; do
		jq -e -n "[inputs | ($p) | type] | length == 500" "$T/e" >/dev/null
	done <"$T/preds"
}

@test "campaigns: --format ndjson writes the same campaigns one per line" {
	"$GEN" campaigns 300 --jq-percent 5 --seed 3 >"$T/arr"
	"$GEN" campaigns 300 --jq-percent 5 --seed 3 --format ndjson >"$T/nd"
	[ "$(wc -l <"$T/nd")" -eq 300 ]
	jq -c '.[]' "$T/arr" | cmp - "$T/nd"
	"$GEN" campaigns 300 --jq-percent 5 --seed 3 --format array | cmp - "$T/arr"
}

@test "campaigns: N=0 is an empty array" {
	run "$GEN" campaigns 0
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq -c .)" = '[]' ]
}

@test "campaigns: --profile-percent and --controls-percent add conditions and controls, the rest unchanged" {
	"$GEN" campaigns 400 --seed 3 --types 10 >"$T/plain"
	"$GEN" campaigns 400 --seed 3 --types 10 --profile-percent 10 --controls-percent 25 >"$T/more"
	# exactly the percentages, evenly spread
	[ "$(jqf '[.[][] | select([.. | objects | .field? // empty] | any(startswith("profile.")))] | length' "$T/more")" -eq 40 ]
	[ "$(jqf '[.[][] | select(.limit)] | length' "$T/more")" -eq 100 ]
	[ "$(jqf '[.[][] | select(.holdout and .variants)] | length' "$T/more")" -eq 50 ]
	# without them, each campaign is the plain one: the profile condition is
	# the last of the where's top-level all, or of an all made around it
	jq -n --slurpfile m "$T/more" --slurpfile p "$T/plain" -e '
		[range($p[0] | length) as $i | $m[0][$i] as $a | $p[0][$i] as $b |
		 ($a | del(.limit, .holdout, .variants)) as $c |
		 if ($c.rule.where.all[-1].field // "" | startswith("profile.")) then
			($c.rule.where.all[:-1]) as $rest |
			($c | .rule.where = {all: $rest}) == $b or
			(($rest | length) == 1 and ($c | .rule.where = $rest[0]) == $b)
		 else $c == $b end] | all'
	# and the profile conditions go into the top-level all when there is one
	[ "$(jqf '[.[][] | .rule.where.all[]? | select(.all)] | length' "$T/more")" -eq 0 ]
	# and they validate
	run cm-match -c "$T/more" --check
	[ "$status" -eq 0 ]
}

@test "profiles: the traits of u-1..u-N, the same for a user whatever N" {
	"$GEN" profiles 1000 >"$T/p"
	[ "$(wc -l <"$T/p")" -eq 1000 ]
	[ "$(head -1 "$T/p" | jq -r .user_id)" = u-1 ]
	[ "$(jq -c '.traits | keys' "$T/p" | sort -u)" = '["country","plan","tier","vip"]' ]
	cmp <("$GEN" profiles 10) <(head -10 "$T/p")
	[ "$(jq -r .traits.plan "$T/p" | sort -u | wc -l)" -eq 5 ]
	# at most the generator's 100,000 users
	[ "$("$GEN" profiles 200000 | wc -l)" -eq 100000 ]
}

@test "one-campaign: the bench campaign, purchase with properties.amount gte 100" {
	run bash -c "'$GEN' one-campaign | jq -c '.[0] | [.id, .status, .rule.event_type, .rule.where]' "
	[ "$output" = '[1,"active","purchase",{"field":"properties.amount","op":"gte","value":100}]' ]
	run bash -c "'$GEN' one-campaign | jq length"
	[ "$output" = 1 ]
}

@test "csv: the header, N rows of 8 fields, RFC 4180 quoting of notes" {
	"$GEN" csv 3000 --seed 5 >"$T/o.csv"
	[ "$(head -1 "$T/o.csv")" = 'order_id,event_type,user_id,occurred_at,amount:number,country,sku,note' ]
	run python3 -c '
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="", encoding="utf-8")))
body = rows[1:]
print(len(body))
print(sorted({len(r) for r in rows}))
print(sum(1 for r in body if "," in r[7]), sum(1 for r in body if "\"" in r[7]))
print(all(0 <= float(r[4]) <= 500 for r in body))
print(sorted({r[1] for r in body}))
print([r[0] for r in body[:2]])
' "$T/o.csv"
	[ "${lines[0]}" = 3000 ]
	[ "${lines[1]}" = '[8]' ]
	read -r commas quotes <<<"${lines[2]}"
	[ "$commas" -gt 50 ] && [ "$quotes" -gt 50 ]
	[ "${lines[3]}" = True ]
	[ "${lines[4]}" = "['checkout_started', 'purchase', 'refund']" ]
	[ "${lines[5]}" = "['o-5-1', 'o-5-2']" ]
	# Doubled quotes and a line break inside quoted fields, as RFC 4180 writes them.
	grep -q '"said ""ring twice"", thanks"' "$T/o.csv"
	grep -q ',"back door$' "$T/o.csv"
	[ "$(wc -l <"$T/o.csv")" -gt 3001 ]
	# Miller reads the same number of records.
	[ "$(mlr --icsv --ojsonl cat "$T/o.csv" | wc -l)" -eq 3000 ]
}

@test "csv: times are RFC 3339, some with milliseconds or a numeric offset" {
	"$GEN" csv 2000 | mlr --icsv --onidx --ofs tab cut -f occurred_at >"$T/times"
	[ "$(wc -l <"$T/times")" -eq 2000 ]
	run ! grep -vqE '^2026-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3})?(Z|[+-][0-9]{2}:[0-9]{2})$' "$T/times"
	grep -qE '\+[0-9]{2}:[0-9]{2}$' "$T/times"
	grep -qE '\.[0-9]{3}Z$' "$T/times"
}

@test "csv: same seed, same bytes" {
	"$GEN" csv 1000 --seed 11 >"$T/a"
	"$GEN" csv 1000 --seed 11 >"$T/b"
	cmp "$T/a" "$T/b"
	"$GEN" csv 1000 --seed 12 >"$T/c"
	run ! cmp -s "$T/a" "$T/c"
}

@test "usage errors exit 2 with a message on stderr, nothing on stdout" {
	for args in "" "frobnicate 3" "events" "events 12x" "events -1" "events 1 2" \
		"events 10 --types 0" "events 10 --types 61" "events 10 --seed -3" \
		"campaigns 10 --jq-percent 101" "campaigns 10 --format xml" \
		"events 10 --jq-percent 5" "csv 10 --types 3" "one-campaign 3" \
		"events 10 --bogus" "events 10 --seed" "events 99999999999999999999" \
		"campaigns 10 --profile-percent 101" "events 10 --controls-percent 5" \
		"profiles 10 --types 3" "profiles"; do
		# shellcheck disable=SC2086 # word splitting of the cases is the point
		run --separate-stderr "$GEN" $args
		echo "args: $args status: $status stderr: $stderr"
		[ "$status" -eq 2 ]
		[ -z "$output" ]
		[[ "$stderr" == cm-gen:* ]]
	done
}

@test "--help prints the usage on stdout and exits 0; --version names the tool" {
	run --separate-stderr "$GEN" --help
	[ "$status" -eq 0 ]
	[[ "$output" == Usage:\ cm-gen\ events* ]]
	[ -z "$stderr" ]
	run "$GEN" events --help
	[ "$status" -eq 0 ]
	[[ "$output" == *--jq-percent* ]]
	run "$GEN" --version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^cm-gen\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
}

@test "a reader that leaves early ends the generator quietly" {
	run --separate-stderr bash -c "set -o pipefail; '$GEN' events 2000000 | head -1"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[[ "$output" == '{"event_id":"e-1-1",'* ]]
}
