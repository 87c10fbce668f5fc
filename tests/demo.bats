#!/usr/bin/env bats
# make demo (packaging/demo.sh), run as CI runs it (root; here the packages
# are installed already): its table agrees with the database and with
# cm-match run on the same files, nothing it started is left running when it
# ends, when Ctrl-C stops it midway, or when the stop command that KEEP=1
# prints has run.

load lib/common

# make_demo ARGS...: make demo for the build under test: tests/run.sh's plain
# build (bin/) or another build dir (O=, with SAN=1 for a sanitizer build,
# so that make finds it up to date instead of building it over).
make_demo() {
	local o args=()
	o=$(cd "$CM_BIN/.." && pwd)
	if [ "$o" != "$TOP" ]; then
		args+=(O="$o")
		ldd "$CM_BIN/cm-httpd" | grep -q libasan && args+=(SAN=1)
	fi
	make -C "$TOP" --no-print-directory demo "${args[@]}" "$@"
}

# started FILE: from a demo's output, its directory (DIR), the pids it
# printed (PIDS: Redis, PostgreSQL, cm-httpd, the workers) and the ports
# (PORTS: Redis, PostgreSQL, cm-httpd), and the API's URL (URL).
started() {
	DIR=$(sed -n 's/^demo: everything goes under //p' "$1")
	read -ra PIDS <<<"$(sed -n 's/.*(pid \([0-9]*\)) ([0-9.]*s)$/\1/p
		s/.*, pids \([0-9]*\) \([0-9]*\) ([0-9.]*s)$/\1 \2/p' "$1" | tr '\n' ' ')"
	read -ra PORTS <<<"$(sed -n 's/.* on \(http:\/\/\)\{0,1\}127\.0\.0\.1:\([0-9]*\) (pid .*/\2/p' "$1" |
		tr '\n' ' ')"
	URL=$(sed -n 's/.*cm-httpd on \(http:[^ ]*\) .*/\1/p' "$1")
}

# running PID: true while PID is a live process (a zombie that a slow init
# has not reaped yet is gone).
running() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	case ${s##*) } in Z* | X*) return 1 ;; esac
}

# port_open PORT: true when something accepts connections on PORT.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# all_gone: nothing the demo started is left: its pids, its ports, any process
# naming its directory (the workers' stages name it in their --db), the
# directory itself.
all_gone() {
	local p
	if [ -z "$DIR" ] || [ ${#PIDS[@]} -eq 0 ] || [ ${#PORTS[@]} -eq 0 ]; then
		echo "no directory, pids or ports read from the output" >&2
		return 1
	fi
	for p in "${PIDS[@]}"; do
		if running "$p"; then echo "pid $p still running" >&2; return 1; fi
	done
	for p in "${PORTS[@]}"; do
		if port_open "$p"; then echo "port $p still open" >&2; return 1; fi
	done
	if pgrep -af -- "$DIR" >&2; then echo "processes naming $DIR are left" >&2; return 1; fi
	[ ! -e "$DIR" ]
}

# table FILE: the rows of the printed table as "name matches users".
table() {
	sed -n '/^Matches per campaign/,/^ *total /p' "$1" | awk 'NR > 2 && $1 ~ /^[0-9]+$/ { print $2, $4, $5 }'
}

# expected: "name matches users" for each example campaign, from cm-match
# on the example files (the demo sends the same events, by other roads).
expected() {
	cm-ingest "$EX/orders.csv" "$EX/events.jsonl" | cm-match -c "$EX/campaigns.json" --emit matches |
		jq -rn --slurpfile c "$EX/campaigns.json" '[inputs] as $m | $c[0][] |
			.id as $id | [$m[] | select(.campaign_id == $id)] as $ms |
			"\(.name) \($ms | length) \([$ms[].user_id] | unique | length)"'
}

# shape: a demo's output without what changes from run to run (numbers and
# the room they take, the directory's name, the build dir, the host's name
# in the consumers', a worker's mean latency or "-" when it got nothing).
shape() {
	sed -E 's/cm-demo\.[A-Za-z0-9]{6}/cm-demo.X/g; s/[0-9]+/N/g; s/^\[ *N\.Ns\]/[T]/
		s/built the tools into [^ ]+/built the tools into DIR/
		s/consumers [^ ]+ [^ ]+,/consumers C C,/; s/^  [^ ]+ +N pending,/  C N pending,/
		s/ +/ /g; s/^ [^ ]+(( N){8}) (N\.N ms|-)$/ C\1 L/'
}

# readme_sample: the output of make demo that the README shows.
readme_sample() {
	awk 'index($0, "A line per step says how long it took:") { on = 1; next }
		on && /^```$/ { if (++n == 2) exit; next }
		on && n == 1' "$TOP/README.md"
}

teardown() {
	# A test that failed midway: stop what it left (KEEP=1, or an
	# interrupted make still running).
	if [ -n "${MAKE_PID:-}" ] && kill -0 "$MAKE_PID" 2>/dev/null; then
		kill -INT -- "-$MAKE_PID" 2>/dev/null
		wait "$MAKE_PID" 2>/dev/null || true
	fi
	if [ -n "${DIR:-}" ] && [ -e "$DIR/state" ]; then
		"$TOP/packaging/demo.sh" stop "$DIR" || true
	fi
}

@test "deps.sh: the demo group is in the build and test groups (.ci/run installs those)" {
	run -0 "$TOP/packaging/deps.sh" --list demo
	[ ${#lines[@]} -ge 5 ]
	missing=$(comm -23 <(printf '%s\n' "${lines[@]}") <("$TOP/packaging/deps.sh" --list build test))
	[ -z "$missing" ] || { echo "not in build or test: $missing"; false; }
}

@test "make demo: the table agrees with cm-match on the same files, the README shows its output, it takes under two minutes, and nothing is left running" {
	make_demo >"$T/out" 2>&1 3>&- || { cat "$T/out"; false; }
	# the README shows this output (first, so that a difference is what a
	# failure shows first)
	diff <(readme_sample | shape) <(shape <"$T/out")
	cat "$T/out"
	started "$T/out"
	[ ${#PIDS[@]} -eq 5 ]
	[ ${#PORTS[@]} -eq 3 ]
	# a progress line for each step, each with its time
	[ "$(grep -cE '^\[ *[0-9]+\.[0-9]s\] .* \([0-9]+\.[0-9]s\)$' "$T/out")" -eq 15 ]
	diff <(table "$T/out") <(expected)
	# the totals: 27 events (15 by the API, 12 from the CSV), 17 matches
	grep -qF 'POST /events with the write key: 15 events' "$T/out"
	grep -qF 'cm-publish: 12 events' "$T/out"
	grep -qF 'stored: 27 events and 17 matches in PostgreSQL; 27 stream entries read, 0 pending, 0 dead-lettered' "$T/out"
	grep -qE '^ +total +17 +[0-9]+$' "$T/out"
	# the workers' metrics, or (no cm_worker_* series) the stored counts
	if grep -q '^Workers (GET /metrics, cm_worker_\*):' "$T/out"; then
		[ "$(sed -n '/^Workers (GET/,/^The stream/p' "$T/out" | awk 'NR > 2 && NF > 8 { s += $6 } END { print s }')" -eq 27 ]
	else
		grep -qF 'Workers: GET /metrics has no cm_worker_* series' "$T/out"
		grep -qE '^  both workers together +27 events, 17 matches$' "$T/out"
		[ "$(sed -n '/^and per consumer/,/^The stream/p' "$T/out" | grep -c ' 0 pending, idle ')" -eq 2 ]
	fi
	grep -qxF '  cm_events_accepted_total{source="api"} 15' "$T/out"
	grep -qE '^\[ *[0-9.]+s\] stopped 2 workers, cm-httpd, PostgreSQL, Redis; removed /tmp/cm-demo\.' "$T/out"
	secs=$(sed -n 's/^demo done in \([0-9]*\)\.[0-9] s$/\1/p' "$T/out")
	[ -n "$secs" ]
	[ "$secs" -lt 120 ]
	all_gone
}

@test "make demo: Ctrl-C midway (SIGINT to make's process group) stops what it started" {
	# Job control gives make a process group of its own, with SIGINT not
	# ignored as it is for other background jobs, as in a terminal.
	set -m
	make_demo >"$T/out" 2>&1 3>&- &
	MAKE_PID=$!
	set +m
	for ((i = 0; i < 1200; i++)); do
		grep -q ', pids [0-9]* [0-9]* (' "$T/out" && break
		sleep 0.05
	done
	started "$T/out"
	[ ${#PIDS[@]} -eq 5 ]
	for p in "${PIDS[@]}"; do running "$p"; done
	kill -INT -- "-$MAKE_PID"
	status=0
	wait "$MAKE_PID" || status=$?
	MAKE_PID=
	cat "$T/out"
	[ "$status" -eq 130 ]
	grep -qxF 'demo: interrupted: stopping what it started' "$T/out"
	grep -qE '^\[ *[0-9.]+s\] stopped 2 workers, cm-httpd, PostgreSQL, Redis; removed ' "$T/out"
	run ! grep -q '^Matches per campaign' "$T/out"
	all_gone
}

@test "make demo KEEP=1: left running with the table of its database, and the printed stop command stops all of it" {
	make_demo KEEP=1 >"$T/out" 2>&1 3>&- || { cat "$T/out"; false; }
	cat "$T/out"
	started "$T/out"
	[ ${#PIDS[@]} -eq 5 ]
	[ -d "$DIR" ]
	for p in "${PIDS[@]}"; do running "$p"; done
	# the printed table is what the database has
	db=$(sed -n "s/^  shell      export PATH=[^ ]* CM_DATABASE_URL='\([^']*\)' CM_REDIS_URL=.*/\1/p" "$T/out")
	[ -n "$db" ]
	diff <(table "$T/out") <(psql -X -A -t -F ' ' "$db" -c "SELECT c.name, count(m.event_id),
		count(DISTINCT m.user_id) FROM campaigns c LEFT JOIN matches m ON m.campaign_id = c.id
		GROUP BY c.id ORDER BY c.id")
	[ "$(psql -X -A -t "$db" -c 'SELECT count(*) FROM events')" -eq 27 ]
	# the URLs, the admin login and the write key it printed
	grep -qxF "  docs       $URL/docs" "$T/out"
	grep -qxF "  metrics    $URL/metrics" "$T/out"
	run -0 curl -s -S -o /dev/null -w '%{http_code}' "$URL/docs"
	[ "$output" = 200 ]
	run -0 curl -s -S "$URL/metrics"
	[[ $output == *'cm_events_accepted_total{source="api"} 15'* ]]
	run -0 curl -s -S "$URL/health"
	[ "$output" = '{"status":"ok","checks":{"redis":"ok","postgres":"ok"}}' ]
	pw=$(sed -n 's/^  admin      user admin, password \([^ ]*\)$/\1/p' "$T/out")
	run -0 curl -s -S "$URL/auth/token" -d username=admin --data-urlencode "password=$pw"
	token=$(jq -er .access_token <<<"$output")
	run -0 curl -s -S "$URL/auth/users/me" -H "Authorization: Bearer $token"
	[ "$output" = '{"username":"admin","role":"admin"}' ]
	key=$(sed -n 's/^  write key  \(cmk_[A-Za-z0-9_-]*\)$/\1/p' "$T/out")
	[ ${#key} -eq 47 ]
	run -0 curl -s -S -o /dev/null -w '%{http_code}' "$URL/events" -H "Authorization: Bearer $key" \
		-d '{"event_id":"kept-1","event_type":"signup","user_id":"u-1","occurred_at":"2026-11-27T10:00:00Z"}'
	[ "$output" = 202 ]
	# the printed stop command
	stop=$(sed -n '/^Stop it (only what this demo started) with:$/{n;s/^  //p}' "$T/out")
	[ "$stop" = "$TOP/packaging/demo.sh stop $DIR" ]
	read -ra cmd <<<"$stop"
	run -0 "${cmd[@]}"
	[ "$output" = "stopped 2 workers, cm-httpd, PostgreSQL, Redis; removed $DIR" ]
	all_gone
	# and nothing left to stop (of this build: the other build's demo may
	# run at the same time)
	run -0 "$TOP/packaging/demo.sh" stop --bin "$CM_BIN"
	[ "$output" = "demo: no demo of $TOP is running" ]
}
