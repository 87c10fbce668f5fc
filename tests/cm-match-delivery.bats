#!/usr/bin/env bats
# cm-match and delivery controls (CONTRACT 1.6): every match carries its
# outcome (and variant), a limited campaign's limit travels on its
# candidates, limits are applied offline in input order exactly as
# cm_decide_limits applies them in PostgreSQL, and --matched-only keeps what
# is to be sent.

load lib/common
load lib/pg
bats_require_minimum_version 1.5.0

setup_file() {
	pg_start
}

teardown_file() {
	pg_stop
}

# ev ID USER TIME: a purchase.
ev() {
	printf '{"event_id":"%s","event_type":"purchase","user_id":"%s","occurred_at":"%s","properties":{}}\n' "$1" "$2" "$3"
}

# gen_events N SEED: N purchases of 15 users over 4 days, in no time order
# (Park-Miller, exact in double arithmetic).
gen_events() {
	awk -v n="$1" -v seed="$2" '
	function r(k) { seed = (seed * 16807) % 2147483647; return seed % k }
	BEGIN {
		for (i = 1; i <= n; i++)
			printf "{\"event_id\":\"e-%03d\",\"event_type\":\"purchase\",\"user_id\":\"u-%d\",\"occurred_at\":\"2026-11-%02dT%02d:%02d:00Z\",\"properties\":{}}\n",
				i, r(15), 1 + r(4), r(24), r(4) * 15
	}'
}

setup() {
	cat >"$T/c.json" <<'JSON'
[{"id":1,"name":"plain","status":"active","rule":{"event_type":"purchase"}},
 {"id":2,"name":"twice","status":"active","rule":{"event_type":"purchase"},"limit":{"per_user":2}},
 {"id":3,"name":"spaced","status":"active","rule":{"event_type":"purchase"},"limit":{"cooldown":"PT6H"}},
 {"id":4,"name":"ab","status":"active","rule":{"event_type":"purchase"},"holdout":0.3,
  "variants":[{"name":"A","weight":1},{"name":"B","weight":2}],"limit":{"per_user":3, "cooldown":"P1D"}},
 {"id":5,"name":"split","status":"active","rule":{"event_type":"purchase"},"holdout":0.5}]
JSON
}

@test "every match has an outcome; variants and the limit verbatim where the campaign has them" {
	ev e1 u-1 2026-11-01T00:00:00Z >"$T/in"
	run --separate-stderr cm-match -c "$T/c.json" "$T/in"
	[ "$status" -eq 0 ]
	m=$(jq -c '.matches' <<<"$output")
	[ "$(jq -c '.[0]' <<<"$m")" = '{"campaign_id":1,"outcome":"matched"}' ]
	[ "$(jq -c '.[1]' <<<"$m")" = '{"campaign_id":2,"outcome":"matched","limit":{"per_user":2}}' ]
	[ "$(jq -c '.[2]' <<<"$m")" = '{"campaign_id":3,"outcome":"matched","limit":{"cooldown":"PT6H"}}' ]
	# the limit as written, compact (the space after the comma is gone)
	[[ "$output" == *'"limit":{"per_user":3,"cooldown":"P1D"}}'* ]]
	[ "$(jq -r '.[3] | if .outcome == "holdout" then "h" else .variant end' <<<"$m")" != null ]
	[ "$(jq -r '.[4] | has("variant")' <<<"$m")" = false ]
	# --emit matches carries the same keys after campaign_id
	run --separate-stderr cm-match -c "$T/c.json" --emit matches "$T/in"
	[ "${lines[1]}" = '{"campaign_id":2,"outcome":"matched","limit":{"per_user":2},"event_id":"e1","user_id":"u-1","event_type":"purchase","occurred_at":"2026-11-01T00:00:00Z"}' ]
}

@test "a user always lands in the same group of a campaign, groups split by the weights" {
	for i in $(seq 400); do ev "e$i" "u-$((i % 200))" 2026-11-01T00:00:00Z; done >"$T/in"
	cm-match -c "$T/c.json" --emit matches "$T/in" >"$T/out"
	# one group per (campaign, user)
	[ "$(jq -r 'select(.campaign_id == 5) | "\(.user_id) \(.outcome)"' "$T/out" | sort -u | wc -l)" -eq 200 ]
	[ "$(jq -r 'select(.campaign_id == 4 and .outcome != "capped") | "\(.user_id) \(.outcome) \(.variant)"' "$T/out" | sort -u | wc -l)" -eq 200 ]
	# holdout 0.5 of 200 users, and the rest of campaign 4 split 1:2
	h=$(jq -r 'select(.campaign_id == 5 and .outcome == "holdout") | .user_id' "$T/out" | sort -u | wc -l)
	[ "$h" -gt 70 ] && [ "$h" -lt 130 ]
	a=$(jq -r 'select(.campaign_id == 4 and .variant == "A") | .user_id' "$T/out" | sort -u | wc -l)
	b=$(jq -r 'select(.campaign_id == 4 and .variant == "B") | .user_id' "$T/out" | sort -u | wc -l)
	[ "$b" -gt "$a" ] && [ "$a" -gt 20 ]
	# a holdout has no variant
	[ "$(jq -c 'select(.outcome == "holdout" and has("variant"))' "$T/out" | wc -l)" -eq 0 ]
}

@test "offline, limits hold in input order: per_user and a cooldown on both sides in time" {
	{
		ev a u-1 2026-11-01T10:00:00Z
		ev b u-1 2026-11-01T12:00:00Z
		ev c u-1 2026-11-01T20:00:00Z
		ev d u-1 2026-11-01T15:00:00Z
		ev e u-2 2026-11-01T10:00:00Z
	} >"$T/in"
	run --separate-stderr cm-match -c "$T/c.json" --emit matches "$T/in"
	[ "$status" -eq 0 ]
	[ "$(jq -r 'select(.campaign_id == 2) | "\(.event_id):\(.outcome)"' <<<"$output" | tr '\n' ' ')" = "a:matched b:matched c:capped d:capped e:matched " ]
	# c is 8 h after b, then d is 3 h from b and 5 h from c
	[ "$(jq -r 'select(.campaign_id == 3) | "\(.event_id):\(.outcome)"' <<<"$output" | tr '\n' ' ')" = "a:matched b:capped c:matched d:capped e:matched " ]
}

@test "--matched-only keeps events with at least one matched, and only matched match lines" {
	cat >"$T/one.json" <<'JSON'
[{"id":2,"name":"once","status":"active","rule":{"event_type":"purchase"},"limit":{"per_user":1}}]
JSON
	{ ev a u-1 2026-11-01T10:00:00Z; ev b u-1 2026-11-01T11:00:00Z; ev c u-2 2026-11-01T11:00:00Z; } >"$T/in"
	run --separate-stderr cm-match -c "$T/one.json" --matched-only "$T/in"
	[ "$(jq -r .event_id <<<"$output" | tr '\n' ' ')" = "a c " ]
	run --separate-stderr cm-match -c "$T/c.json" --matched-only --emit matches "$T/in"
	[ "$(jq -r 'select(.outcome != "matched")' <<<"$output" | wc -l)" -eq 0 ]
	[ "$(jq -r 'select(.campaign_id == 2) | .event_id' <<<"$output" | tr '\n' ' ')" = "a b c " ]
	# without it, the capped and holdout lines are there too
	run --separate-stderr cm-match -c "$T/one.json" --emit matches "$T/in"
	[ "$(jq -r '"\(.event_id):\(.outcome)"' <<<"$output" | tr '\n' ' ')" = "a:matched b:capped c:matched " ]
}

@test "a redelivered event keeps the outcome it had" {
	cat >"$T/one.json" <<'JSON'
[{"id":2,"name":"once","status":"active","rule":{"event_type":"purchase"},"limit":{"per_user":1}}]
JSON
	{ ev a u-1 2026-11-01T10:00:00Z; ev b u-1 2026-11-01T11:00:00Z; ev a u-1 2026-11-01T10:00:00Z; ev b u-1 2026-11-01T11:00:00Z; } >"$T/in"
	run --separate-stderr cm-match -c "$T/one.json" --emit matches "$T/in"
	[ "$(jq -r '"\(.event_id):\(.outcome)"' <<<"$output" | tr '\n' ' ')" = "a:matched b:capped a:matched b:capped " ]
}

@test "offline limits decide exactly what cm_decide_limits decides in PostgreSQL" {
	export CM_SQL_DIR=$TOP/share/sql
	pg_newdb
	cm-admin migrate >/dev/null
	gen_events 300 424242 >"$T/in"
	cm-match -c "$T/c.json" --emit matches "$T/in" >"$T/offline"
	[ "$(wc -l <"$T/offline")" -eq 1500 ]
	# every outcome occurs, so that the comparison means something
	for o in matched holdout capped; do
		[ "$(jq -r "select(.outcome == \"$o\")" "$T/offline" | wc -l)" -gt 0 ]
	done
	# The candidates of the limited campaigns, in input order, with their
	# bucket's outcome recomputed by the SQL formula of bucket.h.
	jq -c 'select(.limit) | {campaign_id, event_id, user_id, event_type, occurred_at,
		per_user: .limit.per_user, cooldown: .limit.cooldown, variant}' "$T/offline" |
		jq -s -c . >"$T/cands.json"
	pg_sql "CREATE TABLE c (doc jsonb)"
	psql -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$PG_DB" -v ON_ERROR_STOP=1 \
		-v file="$T/cands.json" <<'SQL'
\set doc `cat :'file'`
INSERT INTO c VALUES (:'doc');
SQL
	pg_sql "CREATE TABLE decided AS
		SELECT d.* FROM c, cm_decide_limits((
			SELECT jsonb_agg(e || jsonb_build_object(
				'outcome', CASE WHEN ('x' || substr(encode(sha256(convert_to((e->>'campaign_id') || ':' || (e->>'user_id'), 'UTF8')), 'hex'), 1, 13))::bit(52)::bigint / 4503599627370496.0
				                     < CASE e->>'campaign_id' WHEN '4' THEN 0.3 ELSE 0 END
				                THEN 'holdout' ELSE 'matched' END,
				'cooldown_ms', CASE e->>'cooldown' WHEN 'PT6H' THEN 21600000 WHEN 'P1D' THEN 86400000 END)
				ORDER BY o)
			FROM jsonb_array_elements(c.doc) WITH ORDINALITY AS a(e, o))) AS d" >/dev/null
	jq -r 'select(.limit) | "\(.campaign_id) \(.event_id) \(.outcome)"' "$T/offline" | sort >"$T/want"
	pg_sql "SELECT campaign_id || ' ' || event_id || ' ' || outcome FROM decided" | sort >"$T/got"
	[ "$(wc -l <"$T/got")" -eq 900 ]
	diff -u "$T/got" "$T/want"
}

@test "the bucket and group --explain gives are those of bucket.h's SQL formula, by PostgreSQL (generated data)" {
	pg_newdb
	GEN=$CM_BUILD/tests/cm-gen
	"$GEN" campaigns 40 --seed 9 --types 4 --controls-percent 100 >"$T/camps.json"
	"$GEN" events 1500 --seed 9 --types 4 >"$T/events"
	cm-match -c "$T/camps.json" --explain "$T/events" >"$T/explain"
	# (campaign, user, bucket, group) of every explain line with a bucket
	jq -r '"\(.event_id)\t\(.user_id)"' "$T/events" >"$T/users"
	jq -r '.campaign_id as $c | .event_id as $e | .checks[] | select(.check == "bucket") |
		"\($e)\t\($c)\t\(.bucket)\t\(if .group == "variant" then .variant else .group end)"' "$T/explain" |
		sort >"$T/buckets"
	join -t "$(printf '\t')" <(sort "$T/users") "$T/buckets" | cut -f2- | sort -u >"$T/got"
	[ "$(wc -l <"$T/got")" -gt 1000 ]
	cut -f4 "$T/got" | grep -qx holdout
	pg_sql "CREATE TABLE got (user_id text, campaign_id bigint, bucket float8, grp text)" \
		"CREATE TABLE camps (doc jsonb)"
	psql -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$PG_DB" -v ON_ERROR_STOP=1 \
		-c "\\copy got from '$T/got'"
	psql -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$PG_DB" -v ON_ERROR_STOP=1 \
		-v file="$T/camps.json" <<'SQL'
\set doc `cat :'file'`
INSERT INTO camps SELECT jsonb_array_elements(:'doc'::jsonb);
SQL
	# The formula of bucket.h, and the group: holdout below the holdout,
	# else the variant whose cumulative weight first exceeds the position
	# (a boundary goes to the later one, the last takes the rest).
	run pg_sql "WITH b AS (
		SELECT g.*, c.doc,
		       ('x' || substr(encode(sha256(convert_to(g.campaign_id::text || ':' || g.user_id, 'UTF8')), 'hex'), 1, 13))::bit(52)::bigint / 4503599627370496.0 AS sql_bucket,
		       coalesce((c.doc->>'holdout')::numeric, 0) AS holdout
		FROM got g JOIN camps c ON (c.doc->>'id')::bigint = g.campaign_id),
	v AS (
		SELECT b.user_id, b.campaign_id, v.name, v.o, v.n,
		       sum((v.w)::numeric) OVER (PARTITION BY b.user_id, b.campaign_id ORDER BY v.o) AS cum,
		       sum((v.w)::numeric) OVER (PARTITION BY b.user_id, b.campaign_id) AS total,
		       (b.sql_bucket - b.holdout) / (1 - b.holdout) AS p01
		FROM b, jsonb_array_elements(b.doc->'variants') WITH ORDINALITY AS e(x, o),
		     LATERAL (SELECT e.x->>'name' AS name, e.x->>'weight' AS w, e.o AS o,
		                     jsonb_array_length(b.doc->'variants') AS n) AS v
		WHERE b.sql_bucket >= b.holdout),
	pick AS (
		SELECT DISTINCT ON (user_id, campaign_id) user_id, campaign_id, name
		FROM v WHERE p01 * total < cum OR o = n ORDER BY user_id, campaign_id, o)
	SELECT count(*) FILTER (WHERE abs(b.bucket - b.sql_bucket) > 1e-12),
	       count(*) FILTER (WHERE b.grp <> CASE WHEN b.sql_bucket < b.holdout THEN 'holdout'
	                                            WHEN b.doc ? 'variants' THEN p.name ELSE 'matched' END),
	       count(*)
	FROM b LEFT JOIN pick p USING (user_id, campaign_id)"
	[ "$status" -eq 0 ]
	echo "bucket differences, group differences, rows: $output"
	[ "$output" = "0|0|$(wc -l <"$T/got")" ]
}
