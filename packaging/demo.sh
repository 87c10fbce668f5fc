#!/usr/bin/env bash
# demo.sh - make demo: the whole system on this machine, from nothing, and
# gone again afterwards. It installs the packages it needs (packaging/deps.sh
# build demo), builds the tools, starts a throwaway Redis and PostgreSQL under
# a temporary directory on free ports (no system service is touched),
# migrates, adds an admin and a write key, starts cm-httpd and two workers,
# creates the example campaigns and sends the example events through the
# REST API and a CSV batch through cm-ingest | cm-publish, waits until all of
# it is stored, prints the matches per campaign and the workers' metrics, and
# stops everything it started, also on Ctrl-C.
#
#   packaging/demo.sh [--keep] [--bin DIR]   make demo, make demo KEEP=1
#   packaging/demo.sh stop [--bin DIR | DIR...]   make demo-stop
#
# --keep leaves it running and prints the URLs, the admin's password, the
# write key and the command that stops it. --bin DIR runs the tools of DIR
# (make demo passes its build's, O=...; default bin/ of the source tree).
# stop DIR stops the demo whose temporary directory is DIR; without DIR,
# every demo of this source tree that this user left running (with --bin
# DIR, only those running DIR's tools: make demo-stop passes its build's). Only the
# processes whose ids a demo wrote into DIR/state are stopped, each checked
# against the start time recorded with it.
set -uo pipefail
export LC_ALL=C

prog=demo
top=$(cd "$(dirname "$0")/.." && pwd)

# The test suites' server helpers: one way to start a throwaway server.
# shellcheck source=../tests/lib/redis.bash
. "$top/tests/lib/redis.bash"
# shellcheck source=../tests/lib/pg.bash
. "$top/tests/lib/pg.bash"
# shellcheck source=../tests/lib/httpd.bash
. "$top/tests/lib/httpd.bash"

stream=cm:events
group=cm-workers
admin='admin'

usage() {
	sed -n '12,21s/^# \{0,1\}//p' "$0"
}

die() {
	echo "$prog: $*" >&2
	exit 1
}

# now_ms: milliseconds since the epoch.
now_ms() {
	local t=${EPOCHREALTIME/[.,]/}
	echo $((t / 1000))
}

# secs MS: MS as seconds with one decimal.
secs() {
	printf '%d.%d' $(($1 / 1000)) $(($1 % 1000 / 100))
}

t_start=$(now_ms)
t_step=$t_start

# step MESSAGE: one progress line: the time since the start, the message, and
# how long the step took.
step() {
	local t
	t=$(now_ms)
	printf '[%6ss] %s (%ss)\n' "$(secs $((t - t_start)))" "$1" "$(secs $((t - t_step)))"
	t_step=$t
}

# start_time PID: the process's start time (clock ticks after boot, field 22
# of /proc/PID/stat), which tells it from a later process with the same id.
start_time() {
	local s rest
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	rest=${s##*) }
	# shellcheck disable=SC2086 # the fields, split on purpose
	set -- $rest
	echo "${20}"
}

# alive PID START: true while PID is the process that started at START (and
# has not ended: a zombie is gone).
alive() {
	local s
	[ -n "$1" ] && [ -n "$2" ] || return 1
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	case ${s##*) } in Z* | X*) return 1 ;; esac
	[ "$(start_time "$1")" = "$2" ]
}

# stop_pid PID START SECONDS: SIGTERM, then SIGKILL after SECONDS for it and
# the children it had then (a worker's stages), if PID is still that process.
stop_pid() {
	local pid=$1 start=$2 i kids
	alive "$pid" "$start" || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < $3 * 20; i++)); do
		alive "$pid" "$start" || return 0
		sleep 0.05
	done
	kids=$(ps -o pid= --ppid "$pid" 2>/dev/null | tr -d ' ')
	# shellcheck disable=SC2086 # one id a word
	kill -KILL "$pid" $kids 2>/dev/null
	echo "$prog: pid $pid did not stop within $3 s: killed" >&2
}

# ---- state: what a demo started, in DIR/state, for stopping it -------------

dir='' state=''
redis_pid='' redis_start='' pg_pid='' pg_start='' httpd_pid='' httpd_start=''
workers=() # "PID START" each

# record KEY VALUE...: appends a line to the state file.
record() {
	[ -n "$state" ] && echo "$*" >>"$state"
}

# load_state DIR: reads what the demo of DIR started (DIR/state, which must be
# this user's and name this source tree).
load_state() {
	local key a b c
	dir=$1 state=$1/state
	if ! [ -f "$state" ] || ! [ -O "$state" ]; then
		echo "$prog: $1: not a demo of this user (no $state)" >&2
		return 1
	fi
	while read -r key a b c; do
		case $key in
		top) [ "$a" = "$top" ] || { echo "$prog: $1: a demo of $a, not of $top" >&2; return 1; } ;;
		redis) REDIS_DIR=$a redis_pid=$b redis_start=$c ;;
		pg) PG_DIR=$a pg_pid=$b pg_start=$c ;;
		httpd) httpd_pid=$a httpd_start=$b ;;
		worker) workers+=("$a $b") ;;
		esac
	done <"$state"
	REDIS_SOCK=${REDIS_DIR:+$REDIS_DIR/redis.sock}
}

# stop_all: stops what is recorded, workers first (they drain: what they
# read is stored and acknowledged), then cm-httpd, PostgreSQL and Redis,
# and removes the directory. It prints what it stopped.
stop_all() {
	local w what=()
	for w in "${workers[@]}"; do
		# shellcheck disable=SC2086 # "PID START"
		alive $w && kill -TERM "${w%% *}" 2>/dev/null
	done
	for w in "${workers[@]}"; do
		# shellcheck disable=SC2086
		stop_pid $w 15
	done
	[ ${#workers[@]} -eq 0 ] || what+=("${#workers[@]} workers")
	if [ -n "$httpd_pid" ]; then
		stop_pid "$httpd_pid" "$httpd_start" 10
		what+=(cm-httpd)
	fi
	if [ -n "${PG_DIR:-}" ]; then
		# pg_ctl stops the server of the data directory by its pid file.
		if [ -z "$pg_pid" ] || alive "$pg_pid" "$pg_start"; then
			pg_stop_server
		fi
		what+=(PostgreSQL)
	fi
	if [ -n "${REDIS_DIR:-}" ]; then
		# By its pid, as redis_start gave it: a recorded pid is checked, and
		# an exited server is gone even while a slow init leaves its zombie.
		if [ -n "$redis_pid" ]; then
			stop_pid "$redis_pid" "$redis_start" 10
		else
			redis_stop
		fi
		what+=(Redis)
	fi
	[ -n "$dir" ] && rm -rf "$dir"
	if [ ${#what[@]} -gt 0 ]; then
		printf -v w '%s, ' "${what[@]}"
		echo "stopped ${w%, }; removed $dir"
	else
		echo "removed $dir"
	fi
}

# stop_cmd [--bin BIN | DIR...]: the stop subcommand; without a DIR, the
# demos of this tree (with --bin, only those running the tools of BIN: make
# demo-stop of one build leaves another build's demo alone).
stop_cmd() {
	local d found=() only=
	if [ "${1:-}" = --bin ]; then
		[ $# -eq 2 ] || die "stop --bin takes one directory"
		only=$(cd "$2" 2>/dev/null && pwd) || only=$2
		shift 2
	fi
	if [ $# -gt 0 ]; then
		found=("$@")
	else
		for d in /tmp/cm-demo.*; do
			{ [ -O "$d/state" ] && grep -qxF "top $top" "$d/state"; } || continue
			[ -z "$only" ] || grep -qxF "bin $only" "$d/state" || continue
			found+=("$d")
		done
		[ ${#found[@]} -gt 0 ] || { echo "$prog: no demo of $top is running"; return 0; }
	fi
	for d in "${found[@]}"; do
		(load_state "${d%/}" && stop_all) || return 1
	done
}

# ---- the run ---------------------------------------------------------------

keep=0 bin=$top/bin
case ${1:-} in
stop)
	shift
	stop_cmd "$@"
	exit
	;;
esac
while [ $# -gt 0 ]; do
	case $1 in
	--keep) keep=1 ;;
	--bin) [ $# -ge 2 ] || die "option '--bin' requires an argument"; bin=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "$prog: unrecognized argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
	shift
done

# A trap runs where the signal finds the script, maybe inside a command whose
# output goes to a log file: cleanup writes to fd 3, a copy of standard
# output that every server this starts is given closed (so that none holds
# the caller's pipe open).
exec 3>&1
interrupted=0 cleaned=0
# cleanup: the traps: stops what this run started (its own children among
# them, should a signal come between a start and its record).
cleanup() {
	local p s
	[ $cleaned -eq 0 ] || return 0
	cleaned=1
	trap '' INT TERM
	[ -n "$dir" ] || return 0
	[ $interrupted -eq 0 ] || echo "$prog: interrupted: stopping what it started"
	if [ -n "${HTTPD_PID:-}" ] && [ -z "$httpd_pid" ]; then
		httpd_pid=$HTTPD_PID httpd_start=$(start_time "$HTTPD_PID")
	fi
	for p in $(jobs -p); do
		[ "$p" = "$httpd_pid" ] && continue
		s=$(start_time "$p") || continue
		case " ${workers[*]} " in *" $p $s "*) continue ;; esac
		workers+=("$p $s")
	done
	step "$(stop_all 2>&1)"
} >&3 2>&3
trap 'interrupted=1; exit 130' INT
trap 'interrupted=1; exit 143' TERM
trap cleanup EXIT

# Under /tmp rather than $TMPDIR: the unix socket paths must stay short, and
# the postgres user (when run as root) must reach its directory.
dir=$(mktemp -d /tmp/cm-demo.XXXXXX) || die "cannot make a temporary directory"
chmod 711 "$dir"
state=$dir/state
(umask 077; : >"$state")
record top "$top"
echo "$prog: everything goes under $dir"

"$top/packaging/deps.sh" build demo 3>&- || die "packaging/deps.sh could not install the packages"
step "packages: all $("$top/packaging/deps.sh" --list build demo | wc -l) of packaging/deps.sh build demo installed"

# Under make demo, MAKEFLAGS brings O= and SAN= along; a -j of its own, since
# the recipe does not hand on make's job server.
if ! make -C "$top" --no-print-directory -j"$(nproc)" all >"$dir/build.log" 2>&1 3>&-; then
	tail -40 "$dir/build.log" >&2
	die "the build failed (the end of its log is above)"
fi
bin=$(cd "$bin" && pwd) || die "no $bin after the build"
record bin "$bin"
export CM_SQL_DIR=$top/share/sql
step "built the tools into ${bin#"$top"/}"

unset JWT_SECRET_FILE CM_JWT_SECRET CM_JWT_SECRET_FILE
TMPDIR=$dir redis_start >"$dir/redis-start.log" 2>&1 || { cat "$dir/redis-start.log" >&2; die "Redis did not start"; }
redis_pid=$REDIS_PID redis_start=$(start_time "$REDIS_PID")
record redis "$REDIS_DIR" "$redis_pid" "$redis_start"
step "Redis $(rcli INFO server | sed -n 's/^redis_version:\(.*\)\r$/\1/p') on 127.0.0.1:$REDIS_PORT (pid $redis_pid)"

PG_TMPDIR=$dir pg_start >"$dir/pg-start.log" 2>&1 || { cat "$dir/pg-start.log" >&2; die "PostgreSQL did not start"; }
pg_pid=$(head -1 "$PG_DIR/data/postmaster.pid") pg_start=$(start_time "$pg_pid")
record pg "$PG_DIR" "$pg_pid" "$pg_start"
version=$(pg_sql 'SHOW server_version')
step "PostgreSQL ${version%% *} on 127.0.0.1:$PG_PORT (pid $pg_pid)"

out=$("$bin/cm-admin" migrate 2>&1) || { echo "$out" >&2; die "cm-admin migrate failed"; }
step "cm-admin migrate: $(pg_sql 'SELECT count(*) FROM schema_migrations') migrations applied"

password=$(head -c 15 /dev/urandom | base64 | tr '+/' 'xy')
printf '%s\n' "$password" | "$bin/cm-admin" user add "$admin" --role admin || die "cm-admin user add failed"
key=$("$bin/cm-admin" key add demo-shop) || die "cm-admin key add failed"
step "cm-admin: user $admin (role admin) and write key demo-shop"

HTTPD_DIR=$dir CM_BIN=$bin httpd_start --db "$CM_DATABASE_URL" --redis "$CM_REDIS_URL" ||
	die "cm-httpd did not start"
httpd_pid=$HTTPD_PID httpd_start=$(start_time "$HTTPD_PID")
record httpd "$httpd_pid" "$httpd_start"
step "cm-httpd on $HTTPD_URL (pid $httpd_pid)"

for id in 1 2; do
	CM_WORKER_ID=$id "$bin/cm-worker" --db "$CM_DATABASE_URL" --redis "$CM_REDIS_URL" \
		</dev/null >/dev/null 2>"$dir/worker-$id.log" 3>&- &
	workers+=("$! $(start_time $!)")
	record worker "${workers[-1]}"
done
# The workers are up once both consumers have joined the group.
for ((i = 0; i < 300; i++)); do
	consumers=$(rcli XINFO CONSUMERS "$stream" "$group" 2>/dev/null | awk 'p == "name" { print } { p = $0 }')
	[ "$(grep -c . <<<"$consumers")" -ge 2 ] && break
	for w in "${workers[@]}"; do
		# shellcheck disable=SC2086
		alive $w || { cat "$dir"/worker-*.log >&2; die "a worker ended"; }
	done
	sleep 0.05
done
[ "$(grep -c . <<<"$consumers")" -ge 2 ] || die "the workers did not join the group $group"
step "2 workers (cm-worker, CM_WORKER_ID 1 and 2): consumers ${consumers//$'\n'/ }, pids ${workers[0]%% *} ${workers[1]%% *}"

token=$(login "$admin" "$password") || die "POST /auth/token failed"
mapfile -t campaigns < <(jq -c '.[]' "$top/examples/campaigns.json")
ids=()
for c in "${campaigns[@]}"; do
	code=$(curl -s -S -o "$dir/reply" -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $token" \
		-H 'Content-Type: application/json' --data-binary "$c" "$HTTPD_URL/campaigns")
	[ "$code" = 201 ] || die "POST /campaigns answered $code: $(cat "$dir/reply")"
	ids+=("$(jq -r .id "$dir/reply")")
done
active=$(jq '[.[] | select(.status == "active")] | length' "$top/examples/campaigns.json")
step "POST /auth/token, then ${#ids[@]} campaigns from examples/campaigns.json by POST /campaigns (ids ${ids[0]}-${ids[-1]}, $active active)"

# A database change reaches running workers by NOTIFY: wait until both have
# the active campaigns, so that no event is matched against an older set.
for ((i = 0; i < 200; i++)); do
	n=$(grep -lE "reloaded $active (active )?campaigns" "$dir"/worker-*.log 2>/dev/null | wc -l)
	[ "$n" -ge 2 ] && break
	sleep 0.05
done
[ "$n" -ge 2 ] || { cat "$dir"/worker-*.log >&2; die "the workers did not reload the $active active campaigns"; }
step "both workers reloaded the $active active campaigns (LISTEN/NOTIFY)"

# xinfo FIELD: a field of XINFO STREAM, or of XINFO GROUPS for our group.
xinfo() {
	case $1 in
	entries-added) rcli XINFO STREAM "$stream" | awk -v f="$1" 'p == f { print; exit } { p = $0 }' ;;
	*) rcli XINFO GROUPS "$stream" | awk -v f="$1" 'p == f { print; exit } { p = $0 }' ;;
	esac
}

code=$(curl -s -S -o "$dir/reply" -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $key" \
	-H 'Content-Type: application/x-ndjson' --data-binary @"$top/examples/events.jsonl" "$HTTPD_URL/events")
[ "$code" = 202 ] || die "POST /events answered $code: $(cat "$dir/reply")"
step "POST /events with the write key: $(jq .accepted "$dir/reply") events of examples/events.jsonl accepted"

before=$(xinfo entries-added)
"$bin/cm-ingest" "$top/examples/orders.csv" | "$bin/cm-publish" || die "cm-ingest examples/orders.csv | cm-publish failed"
added=$(xinfo entries-added)
step "cm-ingest examples/orders.csv | cm-publish: $((added - before)) events"

# Stored once every entry is delivered and none is pending: cm-store
# acknowledges an entry only after its transaction committed.
for ((i = 0; i < 1200; i++)); do
	pending=$(xinfo pending) read=$(xinfo entries-read)
	[ "$pending" = 0 ] && [ "$read" = "$added" ] && break
	sleep 0.05
done
{ [ "$pending" = 0 ] && [ "$read" = "$added" ]; } ||
	die "not stored within 60 s: $read of $added entries read, $pending pending"
events=$(pg_sql 'SELECT count(*) FROM events') matches=$(pg_sql 'SELECT count(*) FROM matches')
dead=$(rcli XLEN "$stream:dead")
step "stored: $events events and $matches matches in PostgreSQL; $added stream entries read, 0 pending, $dead dead-lettered"

# metric NAME: the samples of one family in /metrics, "labels value" a line.
metrics=
metric() {
	awk -v n="$1" '$1 ~ "^" n "({|$)" { l = $1; sub(/^[^{]*/, "", l); print (l == "" ? "-" : l), $2 }' <<<"$metrics"
}
# Workers report through Redis at most once a second: wait for their acks
# to add up (5 s at most), or 2 s for a first report when none came yet.
for ((i = 0; i < 100; i++)); do
	metrics=$(curl -s -S --max-time 10 "$HTTPD_URL/metrics") || die "GET /metrics failed"
	acked=$(metric cm_worker_acked_total | awk '{ s += $2 } END { print s + 0 }')
	[ "$acked" -ge "$added" ] && break
	[ -z "$(metric cm_worker_up)" ] && [ $(($(now_ms) - t_step)) -ge 2000 ] && break
	sleep 0.05
done
if [ -n "$(metric cm_worker_up)" ]; then
	step "GET /metrics: $(metric cm_worker_up | wc -l) workers report, $acked entries acknowledged"
else
	step "GET /metrics: no worker reported in 2 s"
fi

echo
echo "Matches per campaign (PostgreSQL):"
printf '  %4s  %-28s  %-8s  %7s  %5s\n' id name status matches users
pg_sql "SELECT c.id, c.name, c.status, count(m.event_id), count(DISTINCT m.user_id)
	FROM campaigns c LEFT JOIN matches m ON m.campaign_id = c.id
	GROUP BY c.id ORDER BY c.id" |
	awk -F'|' '{ printf "  %4s  %-28s  %-8s  %7s  %5s\n", $1, $2, $3, $4, $5 }'
printf '  %4s  %-28s  %-8s  %7s  %5s\n' '' total '' "$matches" "$(pg_sql 'SELECT count(DISTINCT user_id) FROM matches')"

echo
if [ -n "$(metric cm_worker_up)" ]; then
	echo "Workers (GET /metrics, cm_worker_*):"
	printf '  %-24s  %2s  %8s  %7s  %7s  %6s  %5s  %4s  %6s  %14s\n' consumer up consumed matched \
		matches stored acked dead errors "mean latency"
	for fam in up consumed_total matched_total matches_total stored_total acked_total \
		dead_lettered_total errors_total publish_to_commit_seconds_sum publish_to_commit_seconds_count; do
		metric "cm_worker_$fam" | sed "s/^/$fam /"
	done | awk '{ c = $2; sub(/^.*consumer="/, "", c); sub(/".*$/, "", c); v[c, $1] = $3; if (!(c in seen)) { seen[c] = 1; order[n++] = c } }
		END { for (i = 0; i < n; i++) { c = order[i]
			mean = v[c, "publish_to_commit_seconds_count"] > 0 ? sprintf("%.1f ms", 1000 * v[c, "publish_to_commit_seconds_sum"] / v[c, "publish_to_commit_seconds_count"]) : "-"
			printf "  %-24s  %2s  %8s  %7s  %7s  %6s  %5s  %4s  %6s  %14s\n", c, v[c, "up"], v[c, "consumed_total"],
				v[c, "matched_total"], v[c, "matches_total"], v[c, "stored_total"], v[c, "acked_total"],
				v[c, "dead_lettered_total"], v[c, "errors_total"], mean } }'
else
	echo "Workers: GET /metrics has no cm_worker_* series: these workers do not report"
	echo "metrics. What they stored instead, from PostgreSQL (a row does not say which"
	echo "worker stored it):"
	printf '  %-24s  %s events, %s matches\n' "both workers together" "$events" "$matches"
	echo "and per consumer, from Redis (XINFO CONSUMERS $stream $group):"
	rcli XINFO CONSUMERS "$stream" "$group" |
		awk 'p == "name" { c = $0 } p == "pending" { n = $0 } p == "idle" { printf "  %-24s  %s pending, idle %.1f s\n", c, n, $0 / 1000 } { p = $0 }'
fi
echo "The stream and the API (GET /metrics):"
for fam in cm_events_accepted_total cm_events_rejected_total cm_stream_length cm_stream_pending \
	cm_stream_lag cm_dead_letter_length; do
	metric "$fam" | sed "s/^/  $fam/"
done
echo

if [ $keep -eq 1 ]; then
	trap - INT TERM EXIT
	step "ready: left running (KEEP=1)"
	cat <<EOF
The demo is running (KEEP=1); everything is under $dir.
  API        $HTTPD_URL
  docs       $HTTPD_URL/docs
  metrics    $HTTPD_URL/metrics
  admin      user $admin, password $password
  write key  $key
  shell      export PATH=$bin:\$PATH CM_DATABASE_URL='$CM_DATABASE_URL' CM_REDIS_URL=$CM_REDIS_URL
  logs       $dir/*.log
  a token    curl -s $HTTPD_URL/auth/token -d username=$admin -d password=$password
Stop it (only what this demo started) with:
  $top/packaging/demo.sh stop $dir
or, in $top, make demo-stop
EOF
	exit 0
fi
cleanup
t=$(now_ms)
echo "demo done in $(secs $((t - t_start))) s"
