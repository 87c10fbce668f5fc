#!/usr/bin/env bats
# cm-export against a throwaway PostgreSQL (tests/lib/pg.bash): stored events
# come back as canonical NDJSON in occurred_at order, filtered, with their
# matches, streamed in constant memory.

load lib/common
load lib/pg

setup_file() {
	pg_start
	cm-admin migrate --dir "$TOP/share/sql" >/dev/null
}

teardown_file() {
	pg_stop
}

setup() {
	pg_sql "SELECT 1" >/dev/null 2>&1 || pg_start_server
	pg_sql "TRUNCATE events, matches, profiles, profile_traits"
}

# merge JSON: identify events merged into the profiles as cm-store merges
# them (share/sql/003_profiles.sql).
merge() {
	pg_sql "SELECT cm_merge_profiles('$1')" >/dev/null
}

# store: stores the canonical lines on stdin with cm-store.
store() {
	cm-store >/dev/null
}

@test "cm-export: --help, --version, usage errors exit 2" {
	run cm-export --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"--with-matches"* ]]
	run cm-export --version
	[ "$output" = "cm-export $(cm-match --version | cut -d' ' -f2)" ]
	run cm-export --since yesterday
	[ "$status" -eq 2 ]
	[[ "$output" == *"--since: expected an RFC 3339 time or a date YYYY-MM-DD, not 'yesterday'"* ]]
	run cm-export --type 'has space'
	[ "$status" -eq 2 ]
	run cm-export --since 2026-11-02 --until 2026-11-01
	[ "$status" -eq 2 ]
	[[ "$output" == *"is not before --until"* ]]
	run cm-export some-file
	[ "$status" -eq 2 ]
	run cm-export --bogus
	[ "$status" -eq 2 ]
	[[ "$output" == *"unknown option '--bogus'"* ]]
	run cm-export --db 'nosuchkey=1'
	[ "$status" -eq 2 ]
}

@test "cm-export: an unreachable database exits 3" {
	run cm-export --db "host=$PG_DIR port=1"
	[ "$status" -eq 3 ]
	[[ "$output" == *"cannot connect to PostgreSQL"* ]]
}

@test "cm-export: events come back canonical, in occurred_at then event_id order" {
	cat >"$T/in" <<'EOF'
{"event_id":"e-3","event_type":"purchase","user_id":"u-1","occurred_at":"2026-11-02T00:00:00+01:00","properties":{"amount":120.5,"tags":["a","b"],"nested":{"x":null,"y":"tab\there \u00e9 \\ \"q\""}}}
{"event_id":"e-1","event_type":"signup","user_id":"u-2","occurred_at":"2026-11-01T10:00:00.250Z","properties":{}}
{"event_id":"e-2","event_type":"signup","user_id":"u-1","occurred_at":"2026-11-01T10:00:00.250Z","properties":{"big":1e400,"neg":-0}}
EOF
	store <"$T/in"
	run --separate-stderr cm-export
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 3 ]
	[[ "${lines[0]}" == '{"event_id":"e-1","event_type":"signup","user_id":"u-2","occurred_at":"2026-11-01T10:00:00.250Z","properties":{}}' ]]
	[[ "${lines[1]}" == '{"event_id":"e-2",'* ]]
	[[ "${lines[2]}" == '{"event_id":"e-3","event_type":"purchase","user_id":"u-1","occurred_at":"2026-11-01T23:00:00Z","properties":'* ]]
	# every line is an event the other tools accept, and equal as JSON to its input
	echo '[]' >"$T/none.json"
	printf '%s\n' "${lines[@]}" | cm-match -c "$T/none.json" >/dev/null
	printf '%s\n' "${lines[@]}" >"$T/out"
	/usr/bin/python3 - "$T/in" "$T/out" <<'PY'
import json, sys
from decimal import Decimal
load = lambda p: {e["event_id"]: e for e in (json.loads(l, parse_float=Decimal, parse_int=Decimal) for l in open(p))}
a, b = load(sys.argv[1]), load(sys.argv[2])
for k in a:
    a[k].pop("occurred_at"); b[k].pop("occurred_at")
assert a == b, (a, b)
PY
}

@test "cm-export: --since (inclusive), --until (exclusive), --type and --user filter" {
	for i in 1 2 3 4 5 6; do
		printf '{"event_id":"e-%d","event_type":"t%d","user_id":"u-%d","occurred_at":"2026-11-0%dT00:00:00Z","properties":{}}\n' \
			"$i" $((i % 2)) $((i % 3)) "$i"
	done | store
	run cm-export --since 2026-11-02 --until 2026-11-05T00:00:00Z
	[ "$(printf '%s\n' "${lines[@]}" | jq -r .event_id | tr '\n' ' ')" = "e-2 e-3 e-4 " ]
	run cm-export --type t1
	[ "$(printf '%s\n' "${lines[@]}" | jq -r .event_id | tr '\n' ' ')" = "e-1 e-3 e-5 " ]
	run cm-export --type t1 --type t0 --user u-0
	[ "$(printf '%s\n' "${lines[@]}" | jq -r .event_id | tr '\n' ' ')" = "e-3 e-6 " ]
	run cm-export --user "u-1' OR true --"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	run cm-export --since 2027-01-01
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "cm-export --with-matches adds each event's stored matches, ordered by campaign" {
	cat <<'EOF' | store
{"event_id":"e-1","event_type":"purchase","user_id":"u-1","occurred_at":"2026-11-01T00:00:00Z","properties":{},"matches":[{"campaign_id":9},{"campaign_id":2}]}
{"event_id":"e-2","event_type":"purchase","user_id":"u-1","occurred_at":"2026-11-02T00:00:00Z","properties":{},"matches":[]}
{"event_id":"e-3","event_type":"purchase","user_id":"u-2","occurred_at":"2026-11-03T00:00:00Z","properties":{},"matches":[{"campaign_id":2}]}
EOF
	run cm-export --with-matches
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 3 ]
	[ "$(jq -c '[.matches[].campaign_id]' <<<"${lines[0]}")" = "[2,9]" ]
	[ "$(jq -c .matches <<<"${lines[1]}")" = "[]" ]
	[ "$(jq -c '[.matches[].campaign_id]' <<<"${lines[2]}")" = "[2]" ]
	# without the option, no matches key at all
	run cm-export
	[ "$(jq -c 'has("matches")' <<<"${lines[0]}")" = "false" ]
}

@test "cm-export streams: memory stays flat, and a closed output ends it quietly" {
	awk 'BEGIN { for (i = 0; i < 200000; i++)
		printf "{\"event_id\":\"e-%d\",\"event_type\":\"view\",\"user_id\":\"u-%d\",\"occurred_at\":\"2026-11-01T00:00:%02dZ\",\"properties\":{\"pad\":\"%0100d\"}}\n", i, i % 97, i % 60, i }' | store
	# (ASan keeps freed memory in a quarantine: make it small, or RSS
	# would measure the quarantine rather than cm-export)
	ASAN_OPTIONS=${ASAN_OPTIONS:-}:quarantine_size_mb=4 \
		/usr/bin/time -f '%M' -o "$T/rss" cm-export --stats >"$T/all" 2>"$T/err"
	[ "$(wc -l <"$T/all")" -eq 200000 ]
	grep -q '200000 events written, 0 skipped' "$T/err"
	echo "max RSS: $(cat "$T/rss") KiB for $(wc -c <"$T/all") bytes"
	[ "$(cat "$T/rss")" -lt 40000 ]
	run bash -c "cm-export 2>'$T/err2' | head -1 >/dev/null; echo \"status \${PIPESTATUS[0]}\""
	[ "$output" = "status 0" ]
	[ ! -s "$T/err2" ]
	# the server is not left streaming to nobody
	pg_sql "SELECT 1" >/dev/null
}

@test "cm-export: a stored event it cannot write is reported and skipped (exit 1)" {
	printf '{"event_id":"e-1","event_type":"t","user_id":"u","occurred_at":"2026-11-01T00:00:00Z","properties":{}}\n' | store
	deep=$(printf '{"a":%.0s' $(seq 70))1$(printf '}%.0s' $(seq 70))
	pg_sql "INSERT INTO events (event_id, event_type, user_id, occurred_at, properties) VALUES ('e-0', 't', 'u', '2026-10-01', '$deep')" >/dev/null
	run --separate-stderr cm-export
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$stderr" == *"cm-export: event e-0: properties: "* ]]
	[[ "${lines[0]}" == '{"event_id":"e-1"'* ]]
}

@test "cm-export: a write error exits 5" {
	printf '{"event_id":"e-1","event_type":"t","user_id":"u","occurred_at":"2026-11-01T00:00:00Z","properties":{}}\n' | store
	run cm-export -d "$CM_DATABASE_URL" --stats
	[ "$status" -eq 0 ]
	run bash -c "cm-export >/dev/full"
	[ "$status" -eq 5 ]
	[[ "$output" == *"write error"* ]]
}

@test "cm-export --profiles: {\"user_id\",\"traits\"} per user in user_id order (bytewise), --user selects" {
	merge '[{"user_id":"u-b","occurred_at":"2026-11-01T00:00:00Z","event_id":"i-1","traits":{"plan":"pro","country":"DE","cart":{"items":[1,2]}}},
		{"user_id":"u-a","occurred_at":"2026-11-01T00:00:00Z","event_id":"i-2","traits":{"plan":"free"}},
		{"user_id":"U-c","occurred_at":"2026-11-01T00:00:00Z","event_id":"i-3","traits":{"x":"t\u00e9\"q\"","n":1e3}},
		{"user_id":"u-gone","occurred_at":"2026-11-01T00:00:00Z","event_id":"i-4","traits":{"a":1}},
		{"user_id":"u-gone","occurred_at":"2026-11-02T00:00:00Z","event_id":"i-5","traits":{"a":null}}]'
	run --separate-stderr cm-export --profiles --stats
	echo "$output"
	[ "$status" -eq 0 ]
	diff -u - <(printf '%s\n' "$output") <<-'EOF'
		{"user_id":"U-c","traits":{"n":1000,"x":"té\"q\""}}
		{"user_id":"u-a","traits":{"plan":"free"}}
		{"user_id":"u-b","traits":{"cart":{"items":[1,2]},"plan":"pro","country":"DE"}}
		{"user_id":"u-gone","traits":{}}
	EOF
	[ "$stderr" = "cm-export: 4 profiles written, 0 skipped" ]
	run cm-export --profiles --user u-b --user nobody --user U-c
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "$output" | jq -r .user_id | tr '\n' ' ')" = "U-c u-b " ]
	# what it writes is what a profiles file holds: every line a profile
	cm-export --profiles | jq -e 'keys == ["traits","user_id"] and (.traits | type == "object")' >/dev/null
	# a closed output ends it quietly
	run bash -c "cm-export --profiles 2>'$T/err' | head -1 >/dev/null; echo \"status \${PIPESTATUS[0]}\""
	[ "$output" = "status 0" ]
	[ ! -s "$T/err" ]
	# --profiles selects no events
	for o in "--since 2026-11-01" "--until 2026-11-01" "--type purchase" --with-matches; do
		# shellcheck disable=SC2086
		run cm-export --profiles $o
		[ "$status" -eq 2 ]
		[[ "$output" == *"--profiles: --since, --until, --type and --with-matches select events; only --user goes with --profiles"* ]]
	done
}

@test "cm-export --profiles: none stored is no output; traits it cannot write are reported and skipped" {
	run cm-export --profiles
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	deep=$(printf '{"a":%.0s' $(seq 70))1$(printf '}%.0s' $(seq 70))
	pg_sql "INSERT INTO profiles (user_id, traits) VALUES ('u-deep', '$deep'), ('u-ok', '{\"a\": 1}')" >/dev/null
	run --separate-stderr cm-export --profiles
	[ "$status" -eq 1 ]
	[ "$output" = '{"user_id":"u-ok","traits":{"a":1}}' ]
	[[ "$stderr" == *"cm-export: profile u-deep: traits: "* ]]
}
