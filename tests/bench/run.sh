#!/usr/bin/env bash
# make bench: generates its own data with cm-gen, times the tools against jq,
# Miller, redis-benchmark and psql \copy on the same data and prints
# records/s, MB/s and the ratio to the baseline measured in the same run.
# Each figure is the best of BENCH_RUNS (3) runs (worker and latency: one).
# It reports and never fails on timing: the exit status is non-zero only
# when a tool itself errors.
#
# Environment:
#   O=DIR            build output dir, as for make (tools in DIR/bin)
#   BENCH_ONLY=LIST  run only these sections (comma or space separated):
#                    match_one match_many load ingest memory (issue 2),
#                    publish store worker latency (issue 3: these start their
#                    own redis-server and PostgreSQL on odd ports), httpd
#                    (issue 7: cm-httpd under wrk, with those servers), limits
#                    (issue 10), profiles (issue 9: PostgreSQL too), backtest
#                    (issue 10: cm-httpd's POST /campaigns/backtest over the
#                    events stored in PostgreSQL)
#   BENCH_DIR=DIR    keep the generated data there (default: a temp dir, removed)
#   BENCH_EVENTS=N   events in the main file (default 1000000)
#   BENCH_RUNS=N     runs per figure, the best is kept (default 3)
#   BENCH_SEED=S     generator seed (default 1)
#   BENCH_BIG=1      memory section streams 10,000,000 events (~2 GB) instead
#                    of 1,000,000 (~200 MB)
#   BENCH_TIME=proc  peak RSS by polling /proc even when GNU time is there
#   BENCH_N=N        events in the issue 3 sections (default 1000000)
#   BENCH_LAT_SECS=S length of the latency run at 1,000 events/s (default 10)
#   BENCH_HTTPD_SECS=S length of each wrk run of the httpd section (default 10)
#   BENCH_WORKER_ROUNDS=N  rounds of section worker_controls (issues 9 and 10
#                    through a whole worker; BENCH_ONLY=worker_controls), default 2
#
# Adding a section: write bench_NAME, append NAME to SECTIONS, and use
# need_* for data, measure/best_of for runs and row for the table.
set -u
cd "$(dirname "$0")/../.." || exit 2
top=$PWD
o=${O:-.}
case $o in /*) ;; *) o=$top/$o ;; esac
BIN=${BIN:-$o/bin}
GEN=${GEN:-$o/build/tests/cm-gen}
SEED=${BENCH_SEED:-1}
EVENTS=${BENCH_EVENTS:-1000000}
RUNS=${BENCH_RUNS:-3}
TYPES=50
SECTIONS=(match_one match_many load ingest memory limits publish store worker latency httpd profiles backtest)
export LC_ALL=C

errors=0
summary=()

if [ -n "${BENCH_DIR:-}" ]; then
	D=$BENCH_DIR
	mkdir -p "$D" || exit 2
else
	D=$(mktemp -d "${TMPDIR:-/tmp}/cm-bench.XXXXXX") || exit 2
	D_TEMP=1
fi
# cleanup (defined below) stops the servers and workers started here and
# removes a temporary data dir, also after a failure or an interrupt.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Peak RSS from GNU time when it is there (BENCH_TIME=proc forces the
# fallback: polling VmHWM in /proc).
GNU_TIME=
if [ "${BENCH_TIME:-}" != proc ] && [ -x /usr/bin/time ] &&
	/usr/bin/time -f '%M' -o /dev/null true 2>/dev/null; then
	GNU_TIME=/usr/bin/time
fi

# say MESSAGE: a line of commentary under the table.
say() { printf '    %s\n' "$*"; }

# loud MESSAGE: something is wrong with a result (not a timing).
loud() {
	printf '    !!!!! %s !!!!!\n' "$*"
	summary+=("!!! $*")
}

# tool_error WHAT RC: a tool failed, so the bench will exit non-zero.
tool_error() {
	printf '    ERROR: %s exited with status %s\n' "$1" "$2"
	[ -s "$D/.stderr" ] && sed 's/^/      /' "$D/.stderr" | head -5
	errors=$((errors + 1))
	summary+=("ERROR: $1 exited with status $2")
}

# have TOOL: true when the project's tool is built; otherwise says the
# section is skipped.
have() {
	if [ -x "$BIN/$1" ]; then
		return 0
	fi
	say "skipped: $BIN/$1 is not built"
	summary+=("skipped: $1 not built")
	return 1
}


# measure OUT IN CMD...: runs CMD <IN >OUT once; sets M_SECS (wall time),
# M_RSS (peak resident KiB) and M_RC. IN may be a FIFO fed by a generator.
measure() {
	local out=$1 in=$2 t0 t1 pid hwm v
	shift 2
	t0=$EPOCHREALTIME
	if [ -n "$GNU_TIME" ]; then
		"$GNU_TIME" -f '%M' -o "$D/.rss" "$@" <"$in" >"$out" 2>"$D/.stderr"
		M_RC=$?
		t1=$EPOCHREALTIME
		M_RSS=$(tail -n 1 "$D/.rss")
	else
		# No GNU time: poll the high-water mark while the process runs.
		"$@" <"$in" >"$out" 2>"$D/.stderr" &
		pid=$!
		hwm=0
		while kill -0 "$pid" 2>/dev/null; do
			v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
			[ -n "$v" ] && [ "$v" -gt "$hwm" ] && hwm=$v
			sleep 0.01
		done
		wait "$pid"
		M_RC=$?
		t1=$EPOCHREALTIME
		M_RSS=$hwm
	fi
	M_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
}

# best_of OUT IN CMD...: measure, BENCH_RUNS times; keeps the fastest run in
# M_SECS and the largest resident size in M_RSS; M_RC is the first failure.
best_of() {
	local best='' rss=0 rc=0 i
	for ((i = 0; i < RUNS; i++)); do
		measure "$@"
		[ "$M_RC" -ne 0 ] && [ "$rc" -eq 0 ] && rc=$M_RC
		if [ -z "$best" ] || awk -v a="$M_SECS" -v b="$best" 'BEGIN { exit !(a < b) }'; then
			best=$M_SECS
		fi
		[ "$M_RSS" -gt "$rss" ] && rss=$M_RSS
	done
	M_SECS=$best M_RSS=$rss M_RC=$rc
}

# header TITLE: a section's title and the column titles of its table.
header() {
	printf '\n== %s\n' "$1"
	columns
}

# columns: the column titles of a section's table.
columns() {
	printf '  %-34s %10s %8s %12s %8s %9s %9s  %s\n' what records "best s" "records/s" "MB/s" "RSS MiB" ratio target
}

# row WHAT RECORDS BYTES BASE_RATE TARGET: prints a table row from M_SECS and
# M_RSS; ratio is against BASE_RATE (empty: this row is the baseline). Sets RATE.
row() {
	local what=$1 recs=$2 bytes=$3 base=$4 target=$5 ratio verdict=
	RATE=$(awk -v n="$recs" -v s="$M_SECS" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
	if [ -z "$base" ]; then
		ratio=baseline
	else
		ratio=$(awk -v r="$RATE" -v b="$base" 'BEGIN { printf "%.2fx", (b > 0 ? r / b : 0) }')
		if [ -n "$target" ]; then
			verdict=$(awk -v r="$RATE" -v b="$base" -v t="${target#>=}" \
				'BEGIN { t += 0; print (b > 0 && r / b >= t) ? "met" : "NOT MET" }')
			summary+=("$(printf '%-34s %9s (target %s: %s)' "$what" "$ratio" "$target" "$verdict")")
		fi
	fi
	printf '  %-34s %10s %8s %12s %8s %9s %9s  %s\n' "$what" "$recs" "$M_SECS" "$RATE" \
		"$(awk -v b="$bytes" -v s="$M_SECS" 'BEGIN { printf "%.1f", (s > 0 ? b / s / 1e6 : 0) }')" \
		"$(awk -v k="$M_RSS" 'BEGIN { printf "%.1f", k / 1024 }')" "$ratio" \
		"${target:+$target $verdict}"
}

# need_events: the main events file ($EVENTS events over $TYPES types).
need_events() {
	EV=$D/events.ndjson
	if ! [ -s "$EV" ] || [ "$(cat "$D/.events-args" 2>/dev/null)" != "$EVENTS $SEED" ]; then
		"$GEN" events "$EVENTS" --seed "$SEED" --types "$TYPES" >"$EV" || exit 2
		echo "$EVENTS $SEED" >"$D/.events-args"
	fi
	EV_BYTES=$(stat -c %s "$EV")
}

# need_campaigns N JQ_PERCENT: sets CAMP to a file of N campaigns.
need_campaigns() {
	CAMP=$D/campaigns-$1-jq$2-seed$SEED.json
	[ -s "$CAMP" ] ||
		"$GEN" campaigns "$1" --seed "$SEED" --types "$TYPES" --jq-percent "$2" >"$CAMP" || exit 2
}

# need_csv: the orders CSV with $EVENTS rows.
need_csv() {
	CSV=$D/orders.csv
	if ! [ -s "$CSV" ] || [ "$(cat "$D/.csv-args" 2>/dev/null)" != "$EVENTS $SEED" ]; then
		"$GEN" csv "$EVENTS" --seed "$SEED" >"$CSV" || exit 2
		echo "$EVENTS $SEED" >"$D/.csv-args"
	fi
	CSV_BYTES=$(stat -c %s "$CSV")
}

JQ_ONE='select(.event_type=="purchase" and .properties.amount>=100)'
JQ_RATE=

# jq_baseline: jq's one-filter rate on the events file, measured once.
jq_baseline() {
	[ -n "$JQ_RATE" ] && return 0
	need_events
	best_of "$D/jq.out" "$EV" jq -c "$JQ_ONE"
	[ "$M_RC" -ne 0 ] && tool_error "jq" "$M_RC"
	row "jq select (baseline)" "$EVENTS" "$EV_BYTES" "" ""
	JQ_RATE=$RATE
}

# ids FILE: the sorted event ids of an NDJSON file.
ids() { grep -o '"event_id":"[^"]*"' "$1" | sort; }

# (a) one campaign (a type and one numeric condition) against jq's select.
bench_match_one() {
	header "(a) cm-match, one campaign, vs jq -c '$JQ_ONE'"
	jq_baseline
	have cm-match || return 0
	"$GEN" one-campaign >"$D/one.json"
	best_of /dev/null "$EV" "$BIN/cm-match" -c "$D/one.json" --matched-only
	[ "$M_RC" -ne 0 ] && tool_error "cm-match -c one.json --matched-only" "$M_RC"
	row "cm-match 1 campaign --matched-only" "$EVENTS" "$EV_BYTES" "$JQ_RATE" ">=10x"
	measure "$D/match.out" "$EV" "$BIN/cm-match" -c "$D/one.json" --matched-only
	local nj nm
	nj=$(wc -l <"$D/jq.out")
	nm=$(wc -l <"$D/match.out")
	if [ "$nj" -ne "$nm" ]; then
		loud "MISMATCH: jq selected $nj events, cm-match $nm"
	elif ! cmp -s <(ids "$D/jq.out") <(ids "$D/match.out"); then
		loud "MISMATCH: jq and cm-match selected $nj events each, but not the same ones"
	else
		say "same selection: both selected the same $nj events"
	fi
}

# (b) 1,000 and 10,000 campaigns over 50 types, 1% with jq, against jq's
# one-filter throughput from (a).
bench_match_many() {
	header "(b) cm-match, many campaigns over $TYPES types (1% jq), vs jq one filter"
	jq_baseline
	have cm-match || return 0
	local n nmatch
	for n in 1000 10000; do
		need_campaigns "$n" 1
		best_of /dev/null "$EV" "$BIN/cm-match" -c "$CAMP" --matched-only
		[ "$M_RC" -ne 0 ] && tool_error "cm-match -c ($n campaigns)" "$M_RC"
		row "cm-match $n campaigns" "$EVENTS" "$EV_BYTES" "$JQ_RATE" ">=3x"
		measure "$D/matches.out" "$EV" "$BIN/cm-match" -c "$CAMP" --emit matches
		nmatch=$(wc -l <"$D/matches.out")
		say "$n campaigns: $nmatch matches, $(awk -v m="$nmatch" -v e="$EVENTS" \
			'BEGIN { printf "%.2f", m / e }') per event"
	done
}

# (c) loading 10,000 campaigns, 1,000 of them with jq: time and resident size.
bench_load() {
	header "(c) loading 10,000 campaigns (1,000 with jq)"
	have cm-match || return 0
	local how
	need_campaigns 10000 10
	if "$BIN/cm-match" --help 2>/dev/null | grep -q -- '--check'; then
		how="cm-match --check -c FILE"
		best_of /dev/null /dev/null "$BIN/cm-match" --check -c "$CAMP"
	else
		how="cm-match -c FILE </dev/null"
		best_of /dev/null /dev/null "$BIN/cm-match" -c "$CAMP"
	fi
	[ "$M_RC" -ne 0 ] && tool_error "$how" "$M_RC"
	row "load 10000 campaigns" 10000 "$(stat -c %s "$CAMP")" "" ""
	local ok
	ok=$(awk -v s="$M_SECS" -v k="$M_RSS" 'BEGIN { print (s < 1 && k < 200 * 1024) ? "met" : "NOT MET" }')
	say "measured as: $how; target: under 1 s and under 200 MB: $ok"
	summary+=("$(printf '%-34s %6ss %6.1f MiB (target <1 s, <200 MB: %s)' "load 10000 campaigns" \
		"$M_SECS" "$(awk -v k="$M_RSS" 'BEGIN { print k / 1024 }')" "$ok")")
}

# (d) cm-ingest: JSON lines against jq -c ., CSV against Miller.
bench_ingest() {
	header "(d) cm-ingest, JSON lines vs jq -c . and CSV vs mlr --icsv --ojsonl cat"
	need_events
	best_of /dev/null "$EV" jq -c .
	[ "$M_RC" -ne 0 ] && tool_error "jq -c ." "$M_RC"
	row "jq -c . (baseline)" "$EVENTS" "$EV_BYTES" "" ""
	local jqc=$RATE mlr_rate='' n
	if have cm-ingest; then
		best_of /dev/null "$EV" "$BIN/cm-ingest" --format json
		[ "$M_RC" -gt 1 ] && tool_error "cm-ingest --format json" "$M_RC"
		row "cm-ingest json" "$EVENTS" "$EV_BYTES" "$jqc" ">=10x"
		measure "$D/ingest.out" "$EV" "$BIN/cm-ingest" --format json
		n=$(wc -l <"$D/ingest.out")
		[ "$n" -ne "$EVENTS" ] && loud "MISMATCH: cm-ingest wrote $n events from $EVENTS lines"
	fi
	need_csv
	if command -v mlr >/dev/null; then
		best_of /dev/null "$CSV" mlr --icsv --ojsonl cat
		[ "$M_RC" -ne 0 ] && tool_error "mlr --icsv --ojsonl cat" "$M_RC"
		row "mlr --icsv --ojsonl cat (baseline)" "$EVENTS" "$CSV_BYTES" "" ""
		mlr_rate=$RATE
	else
		say "mlr (Miller) is not installed: no CSV baseline"
	fi
	if [ -x "$BIN/cm-ingest" ]; then
		best_of /dev/null "$CSV" "$BIN/cm-ingest" --format csv
		[ "$M_RC" -gt 1 ] && tool_error "cm-ingest --format csv" "$M_RC"
		row "cm-ingest csv" "$EVENTS" "$CSV_BYTES" "$mlr_rate" "${mlr_rate:+>=3x}"
		measure "$D/ingest.out" "$CSV" "$BIN/cm-ingest" --format csv
		n=$(wc -l <"$D/ingest.out")
		[ "$n" -ne "$EVENTS" ] && loud "MISMATCH: cm-ingest wrote $n events from $EVENTS CSV rows"
	fi
}

# stream_rss KIND N CMD...: peak RSS of CMD reading N generated records
# through a pipe (nothing stored on disk); sets M_RSS, M_SECS.
stream_rss() {
	local kind=$1 n=$2 gpid
	shift 2
	rm -f "$D/.fifo"
	mkfifo "$D/.fifo" || exit 2
	if [ "$kind" = csv ]; then
		"$GEN" csv "$n" --seed "$SEED" >"$D/.fifo" &
	else
		"$GEN" events "$n" --seed "$SEED" --types "$TYPES" >"$D/.fifo" &
	fi
	gpid=$!
	measure /dev/null "$D/.fifo" "$@"
	wait "$gpid"
	rm -f "$D/.fifo"
}

# (e) resident size does not grow with the input: ~2 MB against ~200 MB
# (or ~2 GB with BENCH_BIG=1), streamed from cm-gen.
bench_memory() {
	local small=10000 big=1000000 label="~200 MB" name kind rss_s rss_b verdict
	local -a cmd
	if [ "${BENCH_BIG:-0}" = 1 ]; then
		big=10000000 label="~2 GB"
	fi
	printf '\n== (e) peak RSS on ~2 MB vs %s of streamed input (%s vs %s records)\n' \
		"$label" "$small" "$big"
	printf '  %-34s %12s    %12s  %-24s  %s\n' what "RSS small" "RSS big" "" verdict
	[ "$big" -lt 10000000 ] && say "big input: $big records ($label); BENCH_BIG=1 streams 10,000,000 (~2 GB)"
	need_campaigns 1000 1
	for name in cm-match "cm-ingest json" "cm-ingest csv"; do
		kind=events
		case $name in
		cm-match) cmd=("$BIN/cm-match" -c "$CAMP") ;;
		"cm-ingest json") cmd=("$BIN/cm-ingest" --format json) ;;
		"cm-ingest csv") cmd=("$BIN/cm-ingest" --format csv) kind=csv ;;
		esac
		if ! [ -x "${cmd[0]}" ]; then
			say "skipped $name: ${cmd[0]} is not built"
			continue
		fi
		stream_rss "$kind" "$small" "${cmd[@]}"
		rss_s=$M_RSS
		[ "$M_RC" -gt 1 ] && tool_error "$name ($small records)" "$M_RC"
		stream_rss "$kind" "$big" "${cmd[@]}"
		rss_b=$M_RSS
		[ "$M_RC" -gt 1 ] && tool_error "$name ($big records)" "$M_RC"
		verdict=$(awk -v a="$rss_s" -v b="$rss_b" \
			'BEGIN { print (b <= a * 1.25 + 4096) ? "flat" : "GROWS" }')
		printf '  %-34s %8.1f MiB -> %8.1f MiB  %-24s  %s\n' "$name" \
			"$(awk -v k="$rss_s" 'BEGIN { print k / 1024 }')" \
			"$(awk -v k="$rss_b" 'BEGIN { print k / 1024 }')" "(big run: ${M_SECS}s)" "$verdict"
		summary+=("$(printf '%-34s RSS %s on %s records vs %s: %s' "$name" "$label" "$big" "$small" "$verdict")")
	done
}

# (k) delivery controls: the same 1,000 campaigns with a limit on 10% of
# them (and a holdout and variants on every other of those), offline, against
# the campaigns without.
bench_limits() {
	header "(k) cm-match offline, 10% of 1,000 campaigns limited, vs none"
	have cm-match || return 0
	need_events
	need_campaigns 1000 1
	local base ctl=$D/campaigns-1000-jq1-ctl10-seed$SEED.json
	[ -s "$ctl" ] || "$GEN" campaigns 1000 --seed "$SEED" --types "$TYPES" --jq-percent 1 \
		--controls-percent 10 >"$ctl" || exit 2
	best_of /dev/null "$EV" "$BIN/cm-match" -c "$CAMP"
	[ "$M_RC" -ne 0 ] && tool_error "cm-match -c (1000 campaigns)" "$M_RC"
	row "cm-match 1000 campaigns (base)" "$EVENTS" "$EV_BYTES" "" ""
	base=$RATE
	best_of /dev/null "$EV" "$BIN/cm-match" -c "$ctl"
	[ "$M_RC" -ne 0 ] && tool_error "cm-match -c (1000 campaigns, 10% limited)" "$M_RC"
	row "cm-match 1000, 10% limited" "$EVENTS" "$EV_BYTES" "$base" ">=0.75x"
	measure "$D/limited.out" "$EV" "$BIN/cm-match" -c "$ctl" --emit matches
	say "limited run: $(grep -c '"outcome":"capped"' "$D/limited.out") capped," \
		"$(grep -c '"outcome":"holdout"' "$D/limited.out") holdout of $(wc -l <"$D/limited.out") matches"
}

# ---- issue 3: the queue and the database (Redis and PostgreSQL started here)

N3=${BENCH_N:-1000000}
LAT_RATE=1000
LAT_SECS=${BENCH_LAT_SECS:-10}
SRV_UP=0
SRV_FAILED=0
STREAM=cm:events
WORKER_PIDS=()
HTTPD_UP=0
HTTPD_SECS=${BENCH_HTTPD_SECS:-10}
WC_ROUNDS=${BENCH_WORKER_ROUNDS:-2}

# have_cmd CMD...: true when each command is installed; otherwise says the
# section is skipped.
have_cmd() {
	local c
	for c in "$@"; do
		if ! command -v "$c" >/dev/null; then
			say "skipped: $c is not installed"
			summary+=("skipped: $c not installed")
			return 1
		fi
	done
}

# servers: starts the benchmark's own Redis (appendonly yes, appendfsync
# everysec) and PostgreSQL 15 (fsync and synchronous_commit on) on odd ports
# once; cleanup stops them, also when the run fails or is interrupted.
servers() {
	[ "$SRV_UP" -eq 1 ] && return 0
	[ "$SRV_FAILED" -eq 1 ] && { say "skipped: the servers did not start"; return 1; }
	have_cmd redis-server redis-cli psql || return 1
	if ! [ -x "${PG_BIN:-/usr/lib/postgresql/15/bin}/pg_ctl" ]; then
		say "skipped: PostgreSQL server binaries are not installed"
		summary+=("skipped: PostgreSQL server not installed")
		return 1
	fi
	# shellcheck source=../lib/redis.bash
	. "$top/tests/lib/redis.bash"
	# shellcheck source=../lib/pg.bash
	. "$top/tests/lib/pg.bash"
	SRV_FAILED=1
	redis_start || { loud "could not start redis-server"; return 1; }
	SRV_UP=1
	pg_start || { loud "could not start PostgreSQL"; return 1; }
	SRV_FAILED=0
	say "servers: $(redis-server --version | cut -d' ' -f3 | cut -d= -f2) on port $REDIS_PORT (appendonly yes," \
		"appendfsync everysec) and PostgreSQL $(pg_sql 'SHOW server_version' | cut -d' ' -f1)" \
		"on port $PG_PORT (fsync on, synchronous_commit $(pg_sql 'SHOW synchronous_commit')):"
	say "both run on this same $(nproc)-core machine as the tools they are measured with"
	say "(each figure starts after a CHECKPOINT and with no AOF rewrite running)"
}

# stop_workers: SIGTERM to each worker started here (its own process group),
# then KILL to whatever is left of the group after 10 s.
stop_workers() {
	local p i
	for p in "${WORKER_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${WORKER_PIDS[@]}"; do
		for ((i = 0; i < 100; i++)); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL -- "-$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	WORKER_PIDS=()
}

# cleanup: on exit, stops the workers and servers started here and removes
# the temporary data.
cleanup() {
	stop_workers
	[ "$HTTPD_UP" -eq 1 ] && httpd_stop TERM
	if [ "$SRV_UP" -eq 1 ]; then
		pg_stop
		redis_cleanup
	fi
	[ -n "${D_TEMP:-}" ] && rm -rf "$D"
}

# need_events3: the events file of issue 3's sections ($N3 events).
need_events3() {
	if [ "$N3" -eq "$EVENTS" ]; then
		need_events
		EV3=$EV
	else
		EV3=$D/events-$N3.ndjson
		if ! [ -s "$EV3" ] || [ "$(cat "$D/.events3-args" 2>/dev/null)" != "$N3 $SEED" ]; then
			"$GEN" events "$N3" --seed "$SEED" --types "$TYPES" >"$EV3" || exit 2
			echo "$N3 $SEED" >"$D/.events3-args"
		fi
	fi
	EV3_BYTES=$(stat -c %s "$EV3")
}

# need_matched: the events of need_events3 with their "matches" (cm-match
# against 1,000 campaigns over $TYPES types) in $MATCHED.
need_matched() {
	need_events3
	need_campaigns 1000 1
	MATCHED=$D/matched-$N3.ndjson
	if ! [ -s "$MATCHED" ] || [ "$(cat "$D/.matched-args" 2>/dev/null)" != "$N3 $SEED" ]; then
		"$BIN/cm-match" -c "$CAMP" "$EV3" >"$MATCHED" || exit 2
		echo "$N3 $SEED" >"$D/.matched-args"
	fi
	MATCHED_BYTES=$(stat -c %s "$MATCHED")
}

# new_db PREFIX: drops the previous benchmark database (so that its autovacuum
# does not run during the next figure) and creates an empty one.
new_db() {
	if [ -n "${PG_DB:-}" ] && [ "$PG_DB" != cm ]; then
		psql -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d postgres \
			-c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null
	fi
	pg_newdb "$1$((${PG_NDB:-0} + 1))_$$"
}

# quiet: a checkpoint, and no AOF rewrite in progress, so that a figure does
# not pay for the previous one's writes.
quiet() {
	local i
	pg_sql CHECKPOINT >/dev/null
	for ((i = 0; i < 100; i++)); do
		rcli INFO persistence | grep -q '^aof_rewrite_in_progress:0' && break
		sleep 0.1
	done
}

# fresh_db: a new empty database with the project's schema (CM_DATABASE_URL).
fresh_db() {
	new_db b &&
		CM_SQL_DIR=$top/share/sql "$BIN/cm-admin" --db "$CM_DATABASE_URL" migrate >/dev/null 2>"$D/.stderr"
}

# load_campaigns FILE: inserts a JSON array of campaigns into the database,
# with their delivery controls (read by psql itself: the file is larger than
# one argument may be).
load_campaigns() {
	psql -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$PG_DB" -v ON_ERROR_STOP=1 \
		-v file="$1" <<'SQL'
\set doc `cat :'file'`
INSERT INTO campaigns (id, name, status, starts_at, ends_at, rule, "limit", holdout, variants)
SELECT (c->>'id')::bigint, c->>'name', c->>'status', (c->>'starts_at')::timestamptz,
       (c->>'ends_at')::timestamptz, c->'rule', c->'limit', (c->>'holdout')::float8,
       c->'variants'
FROM jsonb_array_elements(:'doc'::jsonb) AS c;
SQL
}

# fresh_stream: removes the stream (and with it its consumer group).
fresh_stream() { rcli DEL "$STREAM" >/dev/null; }

# group_field NAME: a field of XINFO GROUPS for the stream's first group
# (entries-read, pending, lag ...), empty when there is no group yet.
group_field() {
	rcli XINFO GROUPS "$STREAM" 2>/dev/null | awk -v k="$1" 'p { print; exit } $0 == k { p = 1 }'
}

# pending: the number of entries delivered to the group and not acknowledged.
pending() { rcli XPENDING "$STREAM" cm-workers 2>/dev/null | head -1; }

# wait_stored N T0 TIMEOUT: polls until the events table holds N rows and
# nothing is pending; Redis is polled first (cheap: every entry read by the
# group and none pending), the table is counted only then, so that polling
# does not load the 2-core machine. Sets M_SECS from T0; false on timeout.
wait_stored() {
	local n=$1 t0=$2 limit=$3 read pend cnt now
	while :; do
		now=$EPOCHREALTIME
		if awk -v a="$t0" -v b="$now" -v l="$limit" 'BEGIN { exit !(b - a > l) }'; then
			M_SECS=$(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.3f", b - a }')
			return 1
		fi
		read=$(group_field entries-read)
		pend=$(pending)
		# (entries-read is nil when Redis cannot tell: then the table decides.)
		if [ "$pend" = 0 ] && { ! [ "$read" -eq "$read" ] 2>/dev/null || [ "$read" -ge "$n" ]; }; then
			cnt=$(pg_sql "SELECT count(*) FROM events")
			if [ "$cnt" -ge "$n" ] && [ "$(pending)" = 0 ]; then
				M_SECS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
				return 0
			fi
		fi
		sleep 0.1
	done
}

# start_worker ID: bin/cm-worker with CM_WORKER_ID=ID in its own process
# group (so that a stuck worker's stages can be killed with it).
start_worker() {
	CM_WORKER_ID=$1 setsid "$BIN/cm-worker" --db "$CM_DATABASE_URL" \
		>/dev/null 2>>"$D/worker$1.log" </dev/null &
	WORKER_PIDS+=($!)
}

# abs_verdict WHAT TARGET_RATE: met / NOT MET for RATE against an absolute
# events/s target, added to the summary.
abs_verdict() {
	local v
	v=$(awk -v r="$RATE" -v t="$2" 'BEGIN { print (r >= t) ? "met" : "NOT MET" }')
	summary+=("$(printf '%-34s %9s/s (target >= %s/s: %s)' "$1" "$RATE" "$2" "$v")")
	say "target: >= $2 events/s: $v"
}

# (f) cm-publish of N3 events into a fresh stream, against redis-benchmark's
# pipelined XADD of the same payload.
bench_publish() {
	printf '\n== %s\n' "(f) cm-publish, $N3 events into a fresh stream, vs redis-benchmark XADD -P 256"
	have cm-publish && servers || return 0
	columns
	need_events3
	local i best='' rss=0 rc=0 n rb=''
	for ((i = 0; i < RUNS; i++)); do
		fresh_stream
		quiet
		measure /dev/null "$EV3" "$BIN/cm-publish" --stream "$STREAM"
		[ "$M_RC" -ne 0 ] && [ "$rc" -eq 0 ] && rc=$M_RC
		if [ -z "$best" ] || awk -v a="$M_SECS" -v b="$best" 'BEGIN { exit !(a < b) }'; then
			best=$M_SECS
		fi
		[ "$M_RSS" -gt "$rss" ] && rss=$M_RSS
	done
	M_SECS=$best M_RSS=$rss
	[ "$rc" -ne 0 ] && tool_error "cm-publish" "$rc"
	n=$(rcli XLEN "$STREAM")
	[ "$n" != "$N3" ] && loud "MISMATCH: the stream holds $n entries after publishing $N3 events"
	fresh_stream
	if command -v redis-benchmark >/dev/null; then
		rb=$(redis-benchmark -p "$REDIS_PORT" -n 200000 -P 256 -c 1 -q \
			XADD rb:bench '*' data "$(head -1 "$EV3")" 2>/dev/null | tr '\r' '\n' |
			sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
		rcli DEL rb:bench >/dev/null
	fi
	local mrss=$M_RSS msecs=$M_SECS
	if [ -n "$rb" ]; then
		M_SECS=$(awk -v r="$rb" 'BEGIN { printf "%.3f", 200000 / r }') M_RSS=0
		row "redis-benchmark XADD -P 256 (base)" 200000 \
			$((200000 * $(head -1 "$EV3" | wc -c))) "" ""
		rb=$RATE
	else
		say "redis-benchmark is not installed: no baseline"
	fi
	M_SECS=$msecs M_RSS=$mrss
	row "cm-publish" "$N3" "$EV3_BYTES" "$rb" ""
	abs_verdict "cm-publish" 200000
}

# (g) cm-store alone: N3 events with their matches into a fresh migrated
# database, synchronous commit on, against psql \copy of as many rows of the
# same size into a plain one-column table.
bench_store() {
	printf '\n== %s\n' "(g) cm-store, $N3 events with matches (1000 campaigns), vs psql \\copy into a plain table"
	have cm-store && have cm-match && have cm-admin && servers || return 0
	columns
	need_matched
	local i best='' rss=0 rc=0 cbest='' ev mt nm
	nm=$(grep -o '"campaign_id":' "$MATCHED" | wc -l)
	say "input: $N3 events, $nm matches ($(awk -v m="$nm" -v e="$N3" 'BEGIN { printf "%.2f", m / e }')" \
		"per event), $((MATCHED_BYTES / N3)) bytes per line"
	# The baseline: PostgreSQL's own COPY of the same lines, one text column
	# (delimiter and quote bytes that never occur in the lines).
	for ((i = 0; i < RUNS; i++)); do
		new_db c || break
		pg_sql "CREATE TABLE plain (line text)"
		quiet
		measure /dev/null /dev/null psql -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres \
			-d "$PG_DB" -v ON_ERROR_STOP=1 -c "\\copy plain (line) from '$MATCHED' \
			with (format csv, delimiter E'\\x01', quote E'\\x02')"
		[ "$M_RC" -ne 0 ] && { tool_error "psql \\copy" "$M_RC"; break; }
		if [ -z "$cbest" ] || awk -v a="$M_SECS" -v b="$cbest" 'BEGIN { exit !(a < b) }'; then
			cbest=$M_SECS
		fi
	done
	local base=''
	if [ -n "$cbest" ]; then
		M_SECS=$cbest M_RSS=0
		row "psql \\copy, plain table (base)" "$N3" "$MATCHED_BYTES" "" ""
		base=$RATE
	fi
	for ((i = 0; i < RUNS; i++)); do
		fresh_db || { tool_error "cm-admin migrate" $?; return 0; }
		quiet
		measure /dev/null /dev/null "$BIN/cm-store" --db "$CM_DATABASE_URL" "$MATCHED"
		[ "$M_RC" -ne 0 ] && [ "$rc" -eq 0 ] && rc=$M_RC
		if [ -z "$best" ] || awk -v a="$M_SECS" -v b="$best" 'BEGIN { exit !(a < b) }'; then
			best=$M_SECS
		fi
		[ "$M_RSS" -gt "$rss" ] && rss=$M_RSS
	done
	M_SECS=$best M_RSS=$rss
	[ "$rc" -ne 0 ] && tool_error "cm-store" "$rc"
	ev=$(pg_sql "SELECT count(*) FROM events")
	mt=$(pg_sql "SELECT count(*) FROM matches")
	row "cm-store" "$N3" "$MATCHED_BYTES" "$base" ""
	[ "$ev" != "$N3" ] && loud "MISMATCH: cm-store stored $ev events of $N3"
	[ "$mt" != "$nm" ] && loud "MISMATCH: cm-store stored $mt matches of $nm"
	abs_verdict "cm-store" 100000
}

# worker_run K [CAMPAIGNS [PROFILES]]: K workers end to end on a fresh stream
# and database holding N3 published events and the campaigns (default the
# 1,000 of $CAMP), with the NDJSON PROFILES in the profiles table when given;
# sets M_SECS (0 when they did not finish in time).
worker_run() {
	local k=$1 camps=${2:-$CAMP} profs=${3:-} i t0 n
	fresh_stream
	"$BIN/cm-publish" --stream "$STREAM" "$EV3" 2>"$D/.stderr" ||
		{ tool_error "cm-publish (setup)" $?; return 1; }
	fresh_db || { tool_error "cm-admin migrate" $?; return 1; }
	load_campaigns "$camps" >/dev/null || { tool_error "loading campaigns" 1; return 1; }
	if [ -n "$profs" ]; then
		load_profiles "$profs" || { tool_error "loading profiles" 1; return 1; }
	fi
	quiet
	t0=$EPOCHREALTIME
	for ((i = 1; i <= k; i++)); do
		start_worker "$i"
	done
	if ! wait_stored "$N3" "$t0" 600; then
		loud "$k worker(s) did not store $N3 events in 600 s (stored $(pg_sql 'SELECT count(*) FROM events'))"
	fi
	stop_workers
	n=$(pg_sql "SELECT count(*) FROM events")
	[ "$n" != "$N3" ] && loud "MISMATCH: $k worker(s) stored $n events of $N3"
	for ((i = 1; i <= k; i++)); do
		[ -s "$D/worker$i.log" ] && { say "worker $i said:"; sed 's/^/      /' "$D/worker$i.log" | head -5; }
		rm -f "$D/worker$i.log"
	done
	return 0
}

# (h) one worker end to end, then two, from N3 events already in the stream
# until all are committed and acknowledged.
bench_worker() {
	printf '\n== %s\n' "(h) cm-worker end to end: $N3 events already in the stream -> committed and acked"
	have cm-worker && have cm-publish && have cm-admin && servers || return 0
	columns
	need_events3
	need_campaigns 1000 1
	say "1000 campaigns in the database; timed from the start of the worker(s) until the"
	say "events table holds every event and XPENDING is 0 (polled every 0.1 s), then SIGTERM"
	worker_run 1 || return 0
	M_RSS=0
	row "1 worker (cm-worker)" "$N3" "$EV3_BYTES" "" ""
	local one=$RATE
	abs_verdict "1 worker" 50000
	worker_run 2 || return 0
	M_RSS=0
	row "2 workers" "$N3" "$EV3_BYTES" "$one" ""
	local v
	v=$(awk -v a="$RATE" -v b="$one" 'BEGIN { print (a > b) ? "met" : "NOT MET" }')
	say "target: two workers faster than one: $v"
	summary+=("$(printf '%-34s %9s (target > 1x: %s)' "2 workers / 1 worker" \
		"$(awk -v a="$RATE" -v b="$one" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }')" "$v")")
}

# (n) one worker end to end (as (h)) on the 1,000 campaigns with a limit on
# 10% of them, and with a profile condition on 10% of them and the 100,000
# users' profiles in the table, against the same worker on the campaigns
# without either: the three taken in turn, twice, the best of each kept.
bench_worker_controls() {
	printf '\n== %s\n' "(n) cm-worker end to end, 10% of 1,000 campaigns limited / on profiles, vs neither"
	have cm-worker && have cm-publish && have cm-admin && servers || return 0
	columns
	need_events3
	need_campaigns 1000 1
	local base ctl=$D/campaigns-1000-jq1-ctl10-seed$SEED.json
	local pc=$D/campaigns-1000-jq1-prof10-seed$SEED.json
	[ -s "$ctl" ] || "$GEN" campaigns 1000 --seed "$SEED" --types "$TYPES" --jq-percent 1 \
		--controls-percent 10 >"$ctl" || exit 2
	[ -s "$pc" ] || "$GEN" campaigns 1000 --seed "$SEED" --types "$TYPES" --jq-percent 1 \
		--profile-percent 10 >"$pc" || exit 2
	[ -s "$D/profiles.ndjson" ] || "$GEN" profiles 100000 >"$D/profiles.ndjson" || exit 2
	say "$N3 events in the stream, timed as (h); one worker each time, the three runs"
	say "taken in turn $WC_ROUNDS times (the machine's load drifts), the best of each kept"
	local r i best=(0 0 0) camps=("$CAMP" "$ctl" "$pc") profs=("" "" "$D/profiles.ndjson")
	local what=("1 worker, 1000 campaigns (base)" "1 worker, 10% limited" "1 worker, 10% on profiles")
	local after=("" "" "")
	for ((r = 0; r < WC_ROUNDS; r++)); do
		for i in 0 1 2; do
			worker_run 1 "${camps[$i]}" "${profs[$i]}" || return 0
			if [ "${best[$i]}" = 0 ] || awk -v a="$M_SECS" -v b="${best[$i]}" 'BEGIN { exit !(a > 0 && a < b) }'; then
				best[i]=$M_SECS
			fi
			after[i]="$(pg_sql "SELECT count(*) FROM matches") matches of $(pg_sql "SELECT count(DISTINCT event_id) FROM matches") events"
			[ "$i" -eq 1 ] && after[i]+="; outcomes: $(pg_sql "SELECT string_agg(outcome || ' ' || n, ', ' ORDER BY outcome) FROM
				(SELECT outcome, count(*) AS n FROM matches GROUP BY outcome) o")"
			[ "$i" -eq 2 ] && after[i]+="; $(pg_sql "SELECT count(*) FROM profiles") profiles in the table"
		done
	done
	M_RSS=0
	M_SECS=${best[0]}
	row "${what[0]}" "$N3" "$EV3_BYTES" "" ""
	base=$RATE
	say "${after[0]}"
	M_SECS=${best[1]}
	row "${what[1]}" "$N3" "$EV3_BYTES" "$base" ">=0.75x"
	say "${after[1]}"
	M_SECS=${best[2]}
	row "${what[2]}" "$N3" "$EV3_BYTES" "$base" ">=0.8x"
	say "${after[2]}"
}
SECTIONS+=(worker_controls)

# lat_writer: LAT_RATE events/s for LAT_SECS s, a tenth of a second's worth
# every 100 ms, each with properties.sent_ms, the time it was written (ms).
lat_writer() {
	local per=$((LAT_RATE / 10)) ticks=$((LAT_SECS * 10)) t k j us ms next now ts
	next=${EPOCHREALTIME/./}
	for ((t = 0; t < ticks; t++)); do
		us=${EPOCHREALTIME/./}
		ms=${us:0:${#us}-3}
		printf -v ts '%(%Y-%m-%dT%H:%M:%SZ)T' "${ms:0:${#ms}-3}"
		for ((j = 0; j < per; j++)); do
			k=$((t * per + j))
			printf '{"event_id":"lat-%d","event_type":"purchase","user_id":"u-%d","occurred_at":"%s","properties":{"sent_ms":%s,"amount":%d,"currency":"USD","country":"US","items":1}}\n' \
				"$k" $((k % 1000)) "$ts" "$ms" $((k % 300))
		done
		next=$((next + 100000))
		now=${EPOCHREALTIME/./}
		if [ "$next" -gt "$now" ]; then
			sleep "$(printf '0.%06d' $((next - now)))"
		fi
	done
}

# (i) latency at a steady LAT_RATE events/s into a running worker: from the
# write into cm-publish's pipe to the row's stored_at.
bench_latency() {
	local n=$((LAT_RATE * LAT_SECS)) t0 stats
	printf '\n== (i) latency, %s events/s for %s s into one running worker\n' "$LAT_RATE" "$LAT_SECS"
	have cm-worker && have cm-publish && have cm-admin && servers || return 0
	need_campaigns 1000 1
	fresh_stream
	fresh_db || { tool_error "cm-admin migrate" $?; return 0; }
	load_campaigns "$CAMP" >/dev/null || { tool_error "loading campaigns" 1; return 0; }
	quiet
	start_worker 1
	# Let the worker create its group and load its campaigns first.
	t0=$EPOCHREALTIME
	while [ -z "$(group_field pending)" ]; do
		awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { exit !(b - a > 10) }' && break
		sleep 0.05
	done
	sleep 0.5
	lat_writer | "$BIN/cm-publish" --stream "$STREAM" 2>"$D/.stderr" ||
		tool_error "cm-publish (latency writer)" $?
	wait_stored "$n" "$t0" 120 || loud "the worker did not store $n events within 120 s"
	stop_workers
	stats=$(pg_sql "SELECT count(*),
		round(percentile_cont(0.5) WITHIN GROUP (ORDER BY l)::numeric, 1),
		round(percentile_cont(0.99) WITHIN GROUP (ORDER BY l)::numeric, 1),
		round(max(l), 1)
		FROM (SELECT extract(epoch FROM stored_at) * 1000 - (properties->>'sent_ms')::numeric AS l
		      FROM events) s")
	[ -s "$D/worker1.log" ] && { say "worker said:"; sed 's/^/      /' "$D/worker1.log" | head -5; }
	rm -f "$D/worker1.log"
	local cnt p50 p99 max v
	IFS='|' read -r cnt p50 p99 max <<<"$stats"
	[ "$cnt" != "$n" ] && loud "MISMATCH: $cnt of $n latency events stored"
	printf '  %-34s %10s %10s %10s %10s\n' what events "p50 ms" "p99 ms" "max ms"
	printf '  %-34s %10s %10s %10s %10s\n' "write -> stored_at, 1 worker" "$cnt" "$p50" "$p99" "$max"
	say "latency: properties.sent_ms (written by the writer as it writes the line into"
	say "cm-publish's stdin, 100 events every 100 ms) to events.stored_at (now() of the"
	say "storing transaction, so the commit itself is not included)"
	v=$(awk -v p="${p99:-1e9}" 'BEGIN { print (p < 250) ? "met" : "NOT MET" }')
	say "target: p99 under 250 ms: $v"
	summary+=("$(printf '%-34s p50 %s ms, p99 %s ms (target p99 < 250 ms: %s)' \
		"latency at $LAT_RATE/s" "$p50" "$p99" "$v")")
}

# --- (j) cm-httpd under wrk ---

# wrk_run NAME SCRIPT CONNS PATH: wrk -t2 for $HTTPD_SECS seconds with a Lua
# script (or none: "") against the server; sets W_RPS (requests/s), W_N
# (requests done), W_BAD (non-2xx answers and socket errors), W_P50 and
# W_P99 (ms), W_WRK_CPU and W_SRV_CPU (% of one core used by wrk and by the
# server during the run).
wrk_run() {
	local name=$1 script=$2 conns=$3 path=$4 out=$D/wrk-$1.out t0 t1 s0 s1 tck
	tck=$(getconf CLK_TCK)
	s0=$(awk '{ print $14 + $15 }' "/proc/$HTTPD_PID/stat")
	t0=$EPOCHREALTIME
	/usr/bin/time -f '%P' -o "$D/.wrkcpu" wrk -t2 -c"$conns" -d"${HTTPD_SECS}s" --latency \
		${script:+-s "$script"} "$HTTPD_URL$path" >"$out" 2>"$D/.stderr" ||
		tool_error "wrk ($name)" $?
	t1=$EPOCHREALTIME
	s1=$(awk '{ print $14 + $15 }' "/proc/$HTTPD_PID/stat")
	W_RPS=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
	W_N=$(awk '/requests in/ { print $1 }' "$out")
	W_BAD=$(awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(",", ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$out")
	# wrk prints latencies as 812.00us, 1.36ms or 1.02s
	ms() { awk -v p="$1" '$1 == p { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
		print (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v }' "$out"; }
	W_P50=$(ms 50%)
	W_P99=$(ms 99%)
	W_WRK_CPU=$(tr -d '%' <"$D/.wrkcpu")
	W_SRV_CPU=$(awk -v a="$s0" -v b="$s1" -v t="$tck" -v x="$t0" -v y="$t1" \
		'BEGIN { printf "%.0f", (b - a) / t / (y - x) * 100 }')
}

# wrk_row WHAT EVENTS_PER_REQUEST: a table row from the last wrk_run.
wrk_row() {
	printf '  %-38s %10s %10s %8s %8s %6s%% %6s%%\n' "$1" "$W_RPS" \
		"$((W_RPS * $2))" "$W_P50" "$W_P99" "$W_WRK_CPU" "$W_SRV_CPU"
}

# (j) cm-httpd: POST /events with one ~200-byte event per request and with
# NDJSON batches of 1,000, and GET /health, under wrk on the same machine.
bench_httpd() {
	printf '\n== (j) cm-httpd under wrk (%s s each, keep-alive, wrk -t2 on the same cores)\n' "$HTTPD_SECS"
	have cm-httpd && have cm-admin && have_cmd wrk && servers || return 0
	fresh_db || { tool_error "cm-admin migrate" $?; return 0; }
	printf 'bench-pass\n' | "$BIN/cm-admin" --db "$CM_DATABASE_URL" user add bench --role user \
		>/dev/null || { tool_error "cm-admin user add" $?; return 0; }
	# shellcheck source=../lib/httpd.bash
	. "$top/tests/lib/httpd.bash"
	CM_BIN=$BIN HTTPD_DIR=$D JWT_SECRET_FILE='' httpd_start --stream "$STREAM" ||
		{ tool_error "cm-httpd" 1; return 0; }
	HTTPD_UP=1
	local tok ev i
	tok=$(login bench bench-pass) || { tool_error "POST /auth/token" 1; return 0; }
	ev=$("$GEN" events 1 --seed "$SEED" --types "$TYPES")
	cat >"$D/one.lua" <<LUA
wrk.method = "POST"
wrk.body = [[$ev]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $tok"
LUA
	"$GEN" events 1000 --seed "$SEED" --types "$TYPES" >"$D/batch.ndjson"
	{
		echo 'wrk.method = "POST"'
		printf 'wrk.body = [['
		cat "$D/batch.ndjson"
		echo ']]'
		echo 'wrk.headers["Content-Type"] = "application/x-ndjson"'
		echo "wrk.headers[\"Authorization\"] = \"Bearer $tok\""
	} >"$D/batch.lua"
	say "server: cm-httpd --threads $(nproc) (the default), logging a line per request to a file;"
	say "every 202 comes after Redis confirmed the XADD (appendonly yes, everysec)"
	say "event: $(printf '%s' "$ev" | wc -c) bytes; batch: 1,000 events, $(wc -c <"$D/batch.ndjson") bytes"
	printf '  %-38s %10s %10s %8s %8s %7s %7s\n' what "req/s" "events/s" "p50 ms" "p99 ms" wrk server
	fresh_stream
	quiet
	wrk_run one "$D/one.lua" 50 /events
	wrk_row "POST /events, 1 event, 50 conns" 1
	[ "$W_BAD" -ne 0 ] && loud "$W_BAD requests of POST /events (1 event) failed"
	i=$(rcli XLEN "$STREAM")
	[ "$i" -ge "$W_N" ] || loud "MISMATCH: $i entries in the stream after $W_N requests"
	summary+=("$(printf '%-34s %9s req/s, p99 %s ms (target >= 40000 req/s, p99 < 10 ms: %s)' \
		"cm-httpd POST /events, 1 event" "$W_RPS" "$W_P99" \
		"$(awk -v r="$W_RPS" -v p="$W_P99" 'BEGIN { print (r >= 40000 && p < 10) ? "met" : "NOT MET" }')")")
	fresh_stream
	quiet
	wrk_run batch "$D/batch.lua" 16 /events
	wrk_row "POST /events, NDJSON x1000, 16 conns" 1000
	[ "$W_BAD" -ne 0 ] && loud "$W_BAD requests of POST /events (1,000 events) failed"
	i=$(rcli XLEN "$STREAM")
	[ "$i" -ge $((W_N * 1000)) ] || loud "MISMATCH: $i entries in the stream after $W_N batches"
	summary+=("$(printf '%-34s %9s events/s (target >= 300000: %s)' "cm-httpd POST /events, NDJSON x1000" \
		"$((W_RPS * 1000))" "$(awk -v r="$((W_RPS * 1000))" 'BEGIN { print (r >= 300000) ? "met" : "NOT MET" }')")")
	fresh_stream
	wrk_run health "" 50 /health
	wrk_row "GET /health, 50 conns" 0
	[ "$W_BAD" -ne 0 ] && loud "$W_BAD requests of GET /health failed"
	summary+=("$(printf '%-34s %9s req/s (target >= 50000: %s)' "cm-httpd GET /health" "$W_RPS" \
		"$(awk -v r="$W_RPS" 'BEGIN { print (r >= 50000) ? "met" : "NOT MET" }')")")
	say "wrk and server: CPU used during the run, in % of one core (the machine has $(nproc));"
	say "for scale, the original FastAPI service: 4,000 req/s, p99 33 ms on POST /events"
	httpd_stop TERM
	HTTPD_UP=0
	[ "$HTTPD_STATUS" -eq 0 ] || tool_error "cm-httpd (at SIGTERM)" "$HTTPD_STATUS"
	rm -f "$D"/httpd.*.log
}

# load_profiles FILE: the NDJSON profiles of FILE into the profiles table.
load_profiles() {
	psql -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$PG_DB" -v ON_ERROR_STOP=1 \
		-c "CREATE TABLE IF NOT EXISTS bench_p (doc jsonb)" \
		-c "\\copy bench_p (doc) from '$1' with (format csv, quote E'\\x01', delimiter E'\\x02')" \
		-c "INSERT INTO profiles (user_id, traits) SELECT doc->>'user_id', doc->'traits' FROM bench_p" \
		-c "DROP TABLE bench_p" -c "VACUUM ANALYZE profiles" >/dev/null
}

# (l) profiles: a worker-like cm-match (campaigns and profiles from the
# database) with profile conditions in 10% of 1,000 campaigns and the 100,000
# users of the events in the profiles table, against the same without
# profiles (campaigns without profile conditions, no --profiles).
bench_profiles() {
	printf '\n== %s\n' "(l) cm-match -c DB --profiles DB, 10% of 1,000 campaigns on profiles, vs no profiles"
	have cm-match && have cm-admin && servers || return 0
	columns
	need_events
	need_campaigns 1000 1
	local base pc=$D/campaigns-1000-jq1-prof10-seed$SEED.json q
	[ -s "$pc" ] || "$GEN" campaigns 1000 --seed "$SEED" --types "$TYPES" --jq-percent 1 \
		--profile-percent 10 >"$pc" || exit 2
	[ -s "$D/profiles.ndjson" ] || "$GEN" profiles 100000 >"$D/profiles.ndjson" || exit 2
	fresh_db || { tool_error "cm-admin migrate" $?; return 0; }
	load_profiles "$D/profiles.ndjson" || { tool_error "loading profiles" 1; return 0; }
	load_campaigns "$CAMP" >/dev/null || { tool_error "loading campaigns" 1; return 0; }
	say "$(pg_sql "SELECT count(*) FROM profiles") profiles in the database; $EVENTS events of" \
		"$(grep -o '"user_id":"[^"]*"' "$EV" | sort -u | wc -l) distinct users"
	quiet
	best_of /dev/null "$EV" "$BIN/cm-match" -c "$CM_DATABASE_URL"
	[ "$M_RC" -ne 0 ] && tool_error "cm-match -c DB" "$M_RC"
	row "cm-match -c DB, no profiles (base)" "$EVENTS" "$EV_BYTES" "" ""
	base=$RATE
	pg_sql "DELETE FROM campaigns" >/dev/null
	load_campaigns "$pc" >/dev/null || { tool_error "loading campaigns" 1; return 0; }
	quiet
	best_of /dev/null "$EV" "$BIN/cm-match" -c "$CM_DATABASE_URL" --profiles "$CM_DATABASE_URL"
	[ "$M_RC" -ne 0 ] && tool_error "cm-match -c DB --profiles DB" "$M_RC"
	row "cm-match -c DB --profiles DB" "$EVENTS" "$EV_BYTES" "$base" ">=0.8x"
	measure /dev/null "$EV" "$BIN/cm-match" -c "$CM_DATABASE_URL" --profiles "$CM_DATABASE_URL" --stats
	q=$(grep -o '[0-9]* profiles read in [0-9]* queries' "$D/.stderr")
	say "one run with --stats: $q (--profile-ttl 1000 ms, batches of up to 4096 events)"
}

# load_events FILE: the NDJSON events of FILE into the events table, with
# psql's COPY into a one-column staging table (no escaping of the lines).
load_events() {
	psql -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$PG_DB" -v ON_ERROR_STOP=1 \
		-c "CREATE UNLOGGED TABLE bench_e (doc jsonb)" \
		-c "\\copy bench_e (doc) from '$1' with (format csv, quote E'\\x01', delimiter E'\\x02')" \
		-c "INSERT INTO events (event_id, event_type, user_id, occurred_at, properties)
		    SELECT doc->>'event_id', doc->>'event_type', doc->>'user_id',
		           (doc->>'occurred_at')::timestamptz, doc->'properties' FROM bench_e" \
		-c "DROP TABLE bench_e" -c "VACUUM ANALYZE events" >/dev/null
}

# (m) backtest: POST /campaigns/backtest over the $EVENTS generated events
# stored in PostgreSQL (COPY, not timed), timed with curl from request to
# reply: a generated campaign of a common type with a limit, a holdout and
# variants; checks that every event was scanned; target < 10 s.
bench_backtest() {
	printf '\n== (m) cm-httpd POST /campaigns/backtest over %s stored events\n' "$EVENTS"
	have cm-httpd && have cm-admin && servers || return 0
	fresh_db || { tool_error "cm-admin migrate" $?; return 0; }
	printf 'bench-pass\n' | "$BIN/cm-admin" --db "$CM_DATABASE_URL" user add bench --role admin \
		>/dev/null || { tool_error "cm-admin user add" $?; return 0; }
	need_events
	need_campaigns 1000 1
	local t0 t1 tok c n
	t0=$EPOCHREALTIME
	load_events "$EV" || { tool_error "loading the events" $?; return 0; }
	t1=$EPOCHREALTIME
	say "stored $(pg_sql 'SELECT count(*) FROM events') events in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s (psql COPY, not timed below)"
	# shellcheck source=../lib/httpd.bash
	. "$top/tests/lib/httpd.bash"
	CM_BIN=$BIN HTTPD_DIR=$D JWT_SECRET_FILE='' httpd_start --backtest-time 120000 ||
		{ tool_error "cm-httpd" 1; return 0; }
	HTTPD_UP=1
	tok=$(login bench bench-pass) || { tool_error "POST /auth/token" 1; return 0; }
	# the first campaign whose rule names one event type, with controls
	c=$(jq -c '[.[] | select(.rule.event_type | type == "string") | select(.rule.jq == null)][0]
		| del(.id) | .limit = {"per_user": 3, "cooldown": "PT1H"} | .holdout = 0.1
		| .variants = [{"name": "A", "weight": 1}, {"name": "B", "weight": 1}]' "$CAMP")
	printf '{"campaign":%s,"max_events":%s}\n' "$c" "$EVENTS" >"$D/backtest.json"
	say "campaign: $(jq -c '.campaign.rule' "$D/backtest.json" | cut -c1-100)"
	best_of "$D/backtest.out" /dev/null curl -s -S --fail-with-body --max-time 300 \
		-H "Authorization: Bearer $tok" -d @"$D/backtest.json" "$HTTPD_URL/campaigns/backtest"
	[ "$M_RC" -eq 0 ] || { tool_error "POST /campaigns/backtest" "$M_RC"; cat "$D/backtest.out" >&2; }
	columns
	row "POST /campaigns/backtest" "$EVENTS" 0 "" ""
	n=$(jq -r .events_scanned "$D/backtest.out")
	[ "$n" = "$EVENTS" ] || loud "MISMATCH: $n events scanned of $EVENTS"
	say "reply: $(jq -c '{complete, stopped, events_scanned, candidates, outcomes, distinct_users, days: (.per_day | length)}' "$D/backtest.out")"
	say "RSS is curl's; the server's after the runs: $(awk '/^VmHWM:/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$HTTPD_PID/status")"
	summary+=("$(printf '%-34s %9s s (target < 10 s: %s)' "cm-httpd backtest, $EVENTS events" "$M_SECS" \
		"$(awk -v s="$M_SECS" 'BEGIN { print (s < 10) ? "met" : "NOT MET" }')")")
	httpd_stop TERM
	HTTPD_UP=0
	[ "$HTTPD_STATUS" -eq 0 ] || tool_error "cm-httpd (at SIGTERM)" "$HTTPD_STATUS"
	rm -f "$D"/httpd.*.log
}

# machine: what the figures were measured on.
machine() {
	echo "Campaign Manager benchmark, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)," \
		"$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)," \
		"load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -sr)"
	echo "peers: $(jq --version 2>&1), $(mlr --version 2>&1 | head -1)"
	if awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v n="$(nproc)" 'BEGIN { exit !(l > n - 0.5) }'; then
		echo "note: the machine is busy (load above its $(nproc) cores): absolute figures" \
			"are low and ratios noisy; rerun when it is idle"
	fi
	echo "tools: $BIN; data: $D (seed $SEED, $EVENTS records, $TYPES event types);" \
		"best of $RUNS runs; RSS from ${GNU_TIME:-/proc VmHWM polling}"
}

# wanted NAME: true when BENCH_ONLY is empty or names this section.
wanted() {
	[ -z "${BENCH_ONLY:-}" ] && return 0
	case " ${BENCH_ONLY//,/ } " in *" $1 "*) return 0 ;; esac
	return 1
}

if [ ! -x "$GEN" ]; then
	echo "bench: $GEN is not built (make gen)" >&2
	exit 2
fi
if ! command -v jq >/dev/null; then
	echo "bench: jq is needed for the baselines" >&2
	exit 2
fi
machine
for s in "${SECTIONS[@]}"; do
	wanted "$s" && "bench_$s"
done
printf '\n== summary\n'
for l in "${summary[@]}"; do
	printf '  %s\n' "$l"
done
[ "$errors" -eq 0 ]
