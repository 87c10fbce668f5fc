#!/usr/bin/env bats
# The differential test: on a few thousand generated events, cm-match selects
# for each campaign of tests/fixtures/match/diff-campaigns.json exactly the
# events that jq selects with the equivalent expression of diff-jq.tsv
# (written with the rule semantics in mind: a missing field or a type
# mismatch makes a condition false).

load lib/common
bats_require_minimum_version 1.5.0

MF=$FIX/match

# gen_events N SEED: N varied events from a small deterministic generator
# (Park-Miller, exact in double arithmetic, so every awk gives the same file).
gen_events() {
	awk -v n="$1" -v seed="$2" '
	function r(k) { seed = (seed * 16807) % 2147483647; return seed % k }
	function pick(s,   a, m) { m = split(s, a, "|"); return a[r(m) + 1] }
	BEGIN {
		for (i = 1; i <= n; i++) {
			p = ""
			k = r(10)
			if (k < 6) p = p ",\"amount\":" pick("100|100.0|1e2|99.5|150|20|10|10.5|49.99|50|0|-0|250|1e400|12")
			else if (k == 6) p = p ",\"amount\":\"" pick("150|99|abc|200") "\""
			else if (k == 7) p = p ",\"amount\":null"
			k = r(10)
			if (k < 6) p = p ",\"country\":" pick("\"DE\"|\"AT\"|\"FR\"|\"US\"|\"Ö\"|\"\\u00d6\"|\"D\\u0045\"|\"de\"")
			else if (k == 6) p = p ",\"country\":" pick("49|43|true|[\"DE\"]")
			else if (k == 7) p = p ",\"country\":null"
			if (r(3)) p = p ",\"sku\":\"" pick("SKU-|sku-|SKU-") r(300) "\""
			k = r(6)
			if (k < 3) p = p ",\"tags\":[" pick("|\"gift\"|\"sale\"|\"gift\",\"new\"|\"sale\",\"gift\"|\"new\"|\"x\",\"y\",\"z\"|1,\"gift\"") "]"
			else if (k == 3) p = p ",\"tags\":\"" pick("gift|sale new|gifts") "\""
			k = r(5)
			if (k < 3) p = p ",\"vip\":" pick("true|false|\"yes\"|1")
			k = r(4)
			if (k < 2) p = p ",\"query\":" pick("\"red shoes\"|\"shoe\"|\"boots\"|\"caf\\u00e9 shoe\"|\"SHOE\"|[\"shoe\"]")
			k = r(4)
			if (k == 0) p = p ",\"coupon\":\"C" r(9) "\""
			else if (k == 1) p = p ",\"coupon\":null"
			k = r(5)
			if (k < 2) p = p ",\"lines\":[{\"sku\":\"A\"},{\"sku\":\"" pick("B|C|b") "\"}]"
			else if (k == 2) p = p ",\"lines\":[{\"sku\":\"B\"}]"
			printf "{\"event_id\":\"e-%d\",\"event_type\":\"%s\",\"user_id\":\"u-%d\",\"occurred_at\":\"2026-%02d-%02dT%02d:%02d:00Z\",\"properties\":{%s}}\n",
				i, pick("purchase|page_view|signup|refund"), r(300), r(12) + 1, r(28) + 1, r(24), r(60), substr(p, 2)
		}
	}'
}

@test "cm-match selects exactly what jq selects, campaign by campaign" {
	gen_events 4000 20261127 >"$T/events"
	# The generator is deterministic and varied enough to exercise every campaign.
	[ "$(wc -l <"$T/events")" -eq 4000 ]
	jq -e . "$T/events" >/dev/null
	cm-match -c "$MF/diff-campaigns.json" --emit matches --stats "$T/events" >"$T/matches" 2>"$T/err"
	grep -q "4000 events" "$T/err"
	grep -q " 0 jq errors" "$T/err"
	n=0
	while IFS=$'\t' read -r id expr; do
		jq -r --argjson id "$id" 'select(.campaign_id == $id) | .event_id' "$T/matches" | sort >"$T/got"
		jq -r "select($expr) | .event_id" "$T/events" | sort >"$T/want"
		if ! diff "$T/want" "$T/got" >"$T/diff"; then
			echo "campaign $id differs from jq: $expr" >&2
			head -20 "$T/diff" >&2
			return 1
		fi
		# Every campaign but the paused one and the catch-all selects some
		# events and leaves others out, so the comparison means something.
		if [ "$id" != 20 ] && [ "$id" != 21 ]; then
			[ -s "$T/want" ] || { echo "campaign $id selects nothing" >&2; return 1; }
			[ "$(wc -l <"$T/want")" -lt 4000 ]
		fi
		n=$((n + 1))
	done <"$MF/diff-jq.tsv"
	[ "$n" -eq 22 ]
	[ "$(jq length "$MF/diff-campaigns.json")" -eq 22 ]
}

@test "--emit events agrees with --emit matches" {
	gen_events 1000 7 >"$T/events"
	cm-match -c "$MF/diff-campaigns.json" "$T/events" |
		jq -r '.event_id as $e | .matches[] | "\(.campaign_id) \($e)"' >"$T/a"
	cm-match -c "$MF/diff-campaigns.json" --emit matches "$T/events" |
		jq -r '"\(.campaign_id) \(.event_id)"' >"$T/b"
	diff "$T/a" "$T/b"
	[ "$(wc -l <"$T/a")" -gt 1000 ]
}

# explain_pairs FILE: "CAMPAIGN EVENT" of every explain line of FILE that
# says matched, sorted.
explain_pairs() { jq -r 'select(.matched) | "\(.campaign_id) \(.event_id)"' "$1" | sort; }

@test "--explain's verdict is the matcher's for every event and campaign (fixture rules)" {
	gen_events 3000 99 >"$T/events"
	cm-match -c "$MF/diff-campaigns.json" --emit matches "$T/events" |
		jq -r '"\(.campaign_id) \(.event_id)"' | sort >"$T/fast"
	cm-match -c "$MF/diff-campaigns.json" --explain "$T/events" >"$T/explain"
	explain_pairs "$T/explain" >"$T/slow"
	[ "$(wc -l <"$T/fast")" -gt 3000 ]
	diff -u "$T/fast" "$T/slow"
	# and every line explains its verdict: matched exactly when every check holds
	[ "$(jq -c 'select(.matched != ([.checks[].ok] | all))' "$T/explain" | wc -l)" -eq 0 ]
	# one line per event and campaign of its type (the paused one included)
	[ "$(jq -r '.event_id' "$T/explain" | sort -u | wc -l)" -eq 3000 ]
}

@test "--explain's verdict is the matcher's for every event and campaign (generated rules)" {
	GEN=$CM_BUILD/tests/cm-gen
	"$GEN" events 4000 --seed 5 --types 8 >"$T/events"
	"$GEN" campaigns 300 --seed 5 --types 8 --jq-percent 20 >"$T/campaigns.json"
	cm-match -c "$T/campaigns.json" --emit matches "$T/events" |
		jq -r '"\(.campaign_id) \(.event_id)"' | sort >"$T/fast"
	cm-match -c "$T/campaigns.json" --explain "$T/events" >"$T/explain"
	explain_pairs "$T/explain" >"$T/slow"
	[ "$(wc -l <"$T/fast")" -gt 1000 ]
	diff -u "$T/fast" "$T/slow"
	# the same verdicts one campaign at a time
	cm-match -c "$T/campaigns.json" --explain --campaign 7 "$T/events" >"$T/seven"
	[ "$(wc -l <"$T/seven")" -eq 4000 ]
	diff -u <(grep '^7 ' "$T/fast") <(explain_pairs "$T/seven")
}

@test "--explain's verdict is the matcher's with profile conditions and delivery controls (generated rules and profiles)" {
	GEN=$CM_BUILD/tests/cm-gen
	# 500 users, so that limits cap; two thirds of them with a profile
	"$GEN" events 4000 --seed 6 --types 8 |
		jq -c '.user_id = "u-\((.user_id | ltrimstr("u-") | tonumber) % 500 + 1)"' >"$T/events"
	"$GEN" campaigns 300 --seed 6 --types 8 --jq-percent 10 --profile-percent 30 \
		--controls-percent 30 >"$T/campaigns.json"
	"$GEN" profiles 500 | awk 'NR % 3' >"$T/profiles"
	cm-match -c "$T/campaigns.json" --profiles "$T/profiles" --emit matches "$T/events" >"$T/m"
	jq -r '"\(.campaign_id) \(.event_id)"' "$T/m" | sort >"$T/fast"
	cm-match -c "$T/campaigns.json" --profiles "$T/profiles" --explain "$T/events" >"$T/explain"
	explain_pairs "$T/explain" >"$T/slow"
	[ "$(wc -l <"$T/fast")" -gt 1000 ]
	diff -u "$T/fast" "$T/slow"
	# the outcomes too: explain decides its matches as the matcher does
	diff <(jq -r '"\(.campaign_id) \(.event_id) \(.outcome) \(.variant)"' "$T/m" | sort) \
		<(jq -r 'select(.matched) | "\(.campaign_id) \(.event_id) \(.outcome) \(.variant)"' "$T/explain" | sort)
	# profile leaves were found and missed, and every outcome occurred
	jq -e -s '[.[].checks[] | select(.check == "where") | .leaves[] | select(.field | startswith("profile."))] |
		(map(select(.found != null)) | length) > 0 and (map(select(.missing)) | length) > 0' "$T/explain" >/dev/null
	for o in matched holdout capped; do grep -q "\"outcome\":\"$o\"" "$T/m"; done
}
