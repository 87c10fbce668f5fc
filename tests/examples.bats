#!/usr/bin/env bats
# The README's worked example: each command of it (tests/fixtures/examples/
# NN-name.cmd) run from the top of the tree on examples/ gives the output the
# README shows (NN-name.out), and the README shows exactly that.

load lib/common

EXF=$FIX/examples

# example NAME: runs the command of fixture NAME and compares its output
# (stdout and stderr) with NAME.out.
example() {
	local cmd
	cmd=$(cat "$EXF/$1.cmd")
	cd "$TOP"
	run bash -c "$cmd"
	diff -u "$EXF/$1.out" <(printf '%s\n' "$output")
}

# readme_block CMD: the lines that follow "$ CMD" in README.md, up to the
# next command or the end of the code block.
readme_block() {
	CMD="\$ $1" awk '
		found && (/^```/ || /^\$ /) { exit }
		found { print }
		$0 == ENVIRON["CMD"] { found = 1 }
		END { if (!found) exit 1 }
	' "$TOP/README.md"
}

@test "example 01: cm-ingest writes canonical events from the CSV of orders" {
	example 01-ingest-csv
}

@test "example 02: cm-ingest --raw keeps every cell as a string, as in the file" {
	example 02-raw-csv
}

@test "example 03: Segment and CloudEvents records are normalised" {
	example 03-ingest-shapes
}

@test "example 04: the example campaigns validate" {
	example 04-check
}

@test "example 05: cm-match --emit matches on orders and events" {
	example 05-matches
}

@test "example 06: cm-match annotates every event, also those that match nothing" {
	example 06-annotate
}

@test "example 07: cm-match --matched-only writes only the events that matched" {
	example 07-matched-only
}

@test "example 08: cm-match --stats counts events, matches and errors" {
	example 08-stats
}

@test "example 09: cm-ingest --jq maps a foreign CSV export to events" {
	example 09-jq
}

@test "example 10: a bad record is rejected with its line and exit status 1" {
	example 10-reject
}

@test "example 11: what PostgreSQL could not store is refused at the door" {
	example 11-unstorable
}

@test "example 12: a draft campaign's backtest on the example data, with its limit and holdout" {
	example 12-backtest
}

@test "example 13: --explain says which check failed and what it found" {
	example 13-explain
}

@test "example 14: --explain says which match a capped one yields to" {
	example 14-explain-capped
}

@test "the README shows every example command with its output" {
	local f name bad=""
	for f in "$EXF"/*.cmd; do
		name=$(basename "$f" .cmd)
		[ -f "$EXF/$name.out" ] || bad="$bad $name:no-.out"
		if ! diff -u "$EXF/$name.out" <(readme_block "$(cat "$f")"); then
			bad="$bad $name"
		fi
	done
	echo "README differs for:$bad"
	[ -z "$bad" ]
}

@test "every example has a test" {
	local f name bad=""
	for f in "$EXF"/*.cmd; do
		name=$(basename "$f" .cmd)
		grep -q "^	example $name\$" "$BATS_TEST_FILENAME" || bad="$bad $name"
	done
	[ -z "$bad" ]
}

@test "the example matches are those of the jq equivalents in cm-rules(7)" {
	cd "$TOP"
	cm-ingest examples/orders.csv examples/events.jsonl >"$T/events.jsonl"
	jq -c --slurpfile c examples/campaigns.json -f "$EXF/rules.jq" "$T/events.jsonl" >"$T/want"
	cm-match -c examples/campaigns.json --emit matches "$T/events.jsonl" >"$T/got"
	[ -s "$T/want" ]
	diff -u "$T/want" "$T/got"
}

@test "every active example campaign matches some example event, the paused one none" {
	cd "$TOP"
	cm-ingest examples/orders.csv examples/events.jsonl |
		cm-match -c examples/campaigns.json --emit matches >"$T/got"
	local id status n
	while read -r id status; do
		n=$(jq --argjson id "$id" 'select(.campaign_id == $id)' "$T/got" | grep -c campaign_id || true)
		echo "campaign $id ($status): $n matches"
		if [ "$status" = active ]; then [ "$n" -gt 0 ]; else [ "$n" -eq 0 ]; fi
	done < <(jq -r '.[] | "\(.id) \(.status)"' examples/campaigns.json)
}

@test "the example campaigns use every operator, all, any, not, a window and jq" {
	cd "$TOP"
	run jq -r '[.. | objects | .op? // empty] | unique | join(" ")' examples/campaigns.json
	[ "$output" = "contains eq exists gt gte in lt lte matches ne not_exists not_in starts_with" ]
	run jq '[.. | objects | select(has("all") or has("any") or has("not")) | keys[0]] | unique' -c examples/campaigns.json
	[ "$output" = '["all","any","not"]' ]
	run jq '[.[] | select(.starts_at != null and .ends_at != null)] | length' examples/campaigns.json
	[ "$output" -ge 1 ]
	run jq '[.[] | select(.rule.jq != null)] | length' examples/campaigns.json
	[ "$output" -ge 1 ]
}

@test "every example input record is accepted" {
	cd "$TOP"
	run cm-ingest --stats examples/orders.csv examples/events.jsonl
	echo "$output" | tail -3
	[ "$status" -eq 0 ]
	[ "$(cm-ingest examples/orders.csv examples/events.jsonl | wc -l)" -eq 27 ]
}

@test "the campaigns the README shows validate" {
	awk '/^```json$/ { blk = ""; inb = 1; next }
		inb && /^```$/ { inb = 0; if (blk ~ /"rule"/) print blk; next }
		inb { blk = blk $0 "\n" }' "$TOP/README.md" | jq -c . >"$T/readme.jsonl"
	[ "$(wc -l <"$T/readme.jsonl")" -ge 2 ]
	run cm-match -c "$T/readme.jsonl" --check
	echo "$output"
	[ "$status" -eq 0 ]
}

# readme_recipe FIRST LAST: the indented README lines from the one that
# starts with FIRST to the one that contains LAST, unindented.
readme_recipe() {
	FIRST="    $1" LAST="$2" awk '
		!on && index($0, ENVIRON["FIRST"]) == 1 { on = 1 }
		on { sub(/^    /, ""); print }
		on && index($0, ENVIRON["LAST"]) { exit }
	' "$TOP/README.md"
}

teardown() {
	if [ -n "${REDIS_DIR:-}" ]; then
		redis_cleanup
	fi
}

@test "the README's dead-letter replay recipe republishes exactly the replayable entries and deletes them" {
	load lib/redis
	run readme_recipe 'redis-cli --json XRANGE cm:events:dead' 'XDEL cm:events:dead'
	[ "${#lines[@]}" -ge 4 ]
	printf '%s\n' "$output" >"$T/recipe.sh"
	redis_start
	# redis-cli as the recipe calls it, aimed at the test server
	mkdir "$T/bin"
	printf '#!/bin/sh\nexec /usr/bin/redis-cli -p %s "$@"\n' "$REDIS_PORT" >"$T/bin/redis-cli"
	chmod +x "$T/bin/redis-cli"
	cat >"$T/ev.jsonl" <<'J'
{"event_id":"e-1","event_type":"purchase","user_id":"u-1","occurred_at":"2026-11-27T10:00:00Z","properties":{"note":"a \"quoted\" \\ line\nbreak"},"_source":"web"}
{"event_id":"e-2","event_type":"purchase","user_id":"u-2","occurred_at":"2026-11-27T10:00:01Z","properties":{"x":"{not json"}}
J
	cm-publish "$T/ev.jsonl"
	rcli XADD cm:events '*' data 'not json' >/dev/null
	# dead-letter all three: the bad one at once, the others on their second delivery
	cm-consume --max-deliveries 1 >/dev/null 2>&1
	cm-consume --max-deliveries 1 --claim-idle 1 >/dev/null 2>&1
	sleep 0.1
	cm-consume --max-deliveries 1 --claim-idle 1 >/dev/null 2>&1
	[ "$(rcli XLEN cm:events:dead)" -eq 3 ]
	local len=$(rcli XLEN cm:events)
	cd "$T"
	PATH=$T/bin:$PATH run bash -e "$T/recipe.sh"
	echo "$output"
	[ "$status" -eq 0 ]
	# the entry that is not an event stays; the two events were published again
	[ "$(rcli XLEN cm:events:dead)" -eq 1 ]
	[ "$(rcli XRANGE cm:events:dead - + | sed -n 3p)" = "not json" ]
	[ "$(rcli XLEN cm:events)" -eq $((len + 2)) ]
	cm-consume --ack 2>/dev/null | jq -c 'del(._stream_id)' >"$T/back.jsonl"
	jq -c . "$T/ev.jsonl" | diff -u - "$T/back.jsonl"
}
