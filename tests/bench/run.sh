#!/usr/bin/env bash
# make bench: generates its own data with cm-gen, times the tools against jq
# and Miller on the same files and prints records/s, MB/s and the ratio to
# the baseline measured in the same run. Each figure is the best of
# BENCH_RUNS (3) runs. It reports and never fails on timing: the exit status
# is non-zero only when a tool itself errors.
#
# Environment:
#   O=DIR            build output dir, as for make (tools in DIR/bin)
#   BENCH_ONLY=LIST  run only these sections (comma or space separated):
#                    match_one match_many load ingest memory
#   BENCH_DIR=DIR    keep the generated data there (default: a temp dir, removed)
#   BENCH_EVENTS=N   events in the main file (default 1000000)
#   BENCH_RUNS=N     runs per figure, the best is kept (default 3)
#   BENCH_SEED=S     generator seed (default 1)
#   BENCH_BIG=1      memory section streams 10,000,000 events (~2 GB) instead
#                    of 1,000,000 (~200 MB)
#   BENCH_TIME=proc  peak RSS by polling /proc even when GNU time is there
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
SECTIONS=(match_one match_many load ingest memory)
export LC_ALL=C

errors=0
summary=()

if [ -n "${BENCH_DIR:-}" ]; then
	D=$BENCH_DIR
	mkdir -p "$D" || exit 2
else
	D=$(mktemp -d "${TMPDIR:-/tmp}/cm-bench.XXXXXX") || exit 2
	trap 'rm -rf "$D"' EXIT
fi

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

# header: the column titles of a section's table.
header() {
	printf '\n== %s\n' "$1"
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
