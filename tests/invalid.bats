#!/usr/bin/env bats
# One definition of an event: every invalid line of the corpora in
# tests/fixtures/invalid is refused by whichever tool sees it first, each
# tool naming FILE:LINE and the field, and nothing of it gets through.

load lib/common
load lib/pg
load lib/redis

bats_require_minimum_version 1.5.0

setup_file() {
	pg_start
	cm-admin migrate --dir "$TOP/share/sql" >/dev/null
	redis_start 3>&-
}

teardown_file() {
	redis_cleanup
	pg_stop
}

setup() {
	rcli flushall >/dev/null
	pg_sql "TRUNCATE events, matches"
	printf '%s\n' '{"id":1,"name":"all","status":"active","rule":{}}' >"$T/campaigns.ndjson"
}

# corpus NAME: splits tests/fixtures/invalid/NAME.tsv into $T/in (the lines)
# and $T/fields (the field each names), comments left out.
corpus() {
	grep -v '^#' "$FIX/invalid/$1.tsv" >"$T/tsv"
	cut -f1 "$T/tsv" >"$T/fields"
	cut -f2- "$T/tsv" >"$T/in"
	N=$(wc -l <"$T/in")
	[ "$N" -gt 0 ]
}

# refused_all TOOL OUTPUT: OUTPUT (a tool's stderr) names, for every line of
# $T/in, the line and its field as "cm-TOOL: $T/in:LINE: field 'FIELD".
refused_all() {
	local tool=$1 out=$2 i=0 f missing=0
	while IFS= read -r f; do
		i=$((i + 1))
		if ! grep -qF "$tool: $T/in:$i: field '$f" <<<"$out"; then
			echo "$tool: line $i ($f) not refused as expected: $(sed -n "${i}p" "$T/in")"
			missing=$((missing + 1))
		fi
	done <"$T/fields"
	[ "$i" -eq "$N" ]
	[ "$missing" -eq 0 ]
}

# refused_by_all: every tool that takes events refuses every line of $T/in.
refused_by_all() {
	local with_ingest=$1
	if [ "$with_ingest" = 1 ]; then
		run --separate-stderr cm-ingest "$T/in"
		[ "$status" -eq 1 ]
		[ -z "$output" ]
		refused_all cm-ingest "$stderr"
	fi
	run --separate-stderr cm-publish "$T/in"
	[ "$status" -eq 1 ]
	[ "$(rcli xlen cm:events)" -eq 0 ]
	refused_all cm-publish "$stderr"
	run --separate-stderr cm-match -c "$T/campaigns.ndjson" "$T/in"
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	refused_all cm-match "$stderr"
	run --separate-stderr cm-store "$T/in"
	[ "$status" -eq 1 ]
	[ "$(pg_sql "SELECT count(*) FROM events")" -eq 0 ]
	refused_all cm-store "$stderr"
	# cm-consume, given them as stream entries, dead-letters each naming its field
	while IFS= read -r line; do
		rcli xadd cm:events '*' data "$line" >/dev/null
	done <"$T/in"
	run --separate-stderr cm-consume
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ "$(rcli xlen cm:events:dead)" -eq "$N" ]
	redis-cli -p "$REDIS_PORT" --json xrange cm:events:dead - + |
		jq -r '.[] | .[1] as $x | [range(0; $x | length; 2) | {($x[.]): $x[. + 1]}] | add | .reason' >"$T/reasons"
	paste -d '\t' "$T/fields" "$T/reasons" | while IFS=$'\t' read -r f r; do
		[[ "$r" == "not an event: field '$f"* ]] || { echo "cm-consume: $f: $r"; false; }
	done
}

@test "invalid events: every tool refuses each, cm-ingest first, naming FILE:LINE and the field" {
	corpus events
	refused_by_all 1
}

@test "invalid events: what cm-ingest completes (missing or null parts) every later tool refuses" {
	corpus canonical
	run cm-ingest "$T/in"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq "$N" ]
	refused_by_all 0
}

@test "invalid match lines: cm-store refuses each, naming FILE:LINE and the field" {
	corpus matches
	run --separate-stderr cm-store "$T/in"
	[ "$status" -eq 1 ]
	[ "$(pg_sql "SELECT count(*) FROM matches")" -eq 0 ]
	refused_all cm-store "$stderr"
}

@test "invalid events: a message stays on one line and quotes no control character" {
	corpus events
	run --separate-stderr cm-match -c "$T/campaigns.ndjson" "$T/in"
	[ "$(printf '%s\n' "$stderr" | wc -l)" -eq "$N" ]
	if printf '%s' "$stderr" | LC_ALL=C grep -q '[[:cntrl:]]'; then
		printf '%s' "$stderr" | LC_ALL=C grep -n '[[:cntrl:]]'
		false
	fi
}
