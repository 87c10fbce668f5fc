#!/usr/bin/env bash
# Runs every suite (C unit tests, fuzz corpus replay, tool tests) against the
# normal build and the ASan+UBSan build, and ends with "N passed, N failed".
# TESTS_BUILDS="plain" or "asan" limits the builds; BATS_FILTER limits the
# .bats files (a glob under tests/); O and ASAN_O name other build dirs;
# TESTS_JOBS=1 runs the builds one after the other instead of side by side.
set -u
cd "$(dirname "$0")/.." || exit 2
top=$PWD
builds=${TESTS_BUILDS:-"plain asan"}
pass=0 fail=0
failed=()
log=$(mktemp -d "${TMPDIR:-/tmp}/cm-test.XXXXXX")

# A redis-server and a PostgreSQL for the unit tests of one build that need
# a real server (each build its own, as the builds run side by side); the
# tool tests start their own. They are stopped before the tool tests.
. tests/lib/redis.bash
. tests/lib/pg.bash
trap 'rm -rf "$log"' EXIT
# unit_servers BUILD: starts them and exports CM_TEST_REDIS_URL and
# CM_TEST_DATABASE_URL (an empty database: the tests that need it apply
# share/sql themselves); says on stderr what failed to start.
unit_servers() {
	if redis_start >"$log/$1-redis.err" 2>&1; then
		export CM_TEST_REDIS_URL=$CM_REDIS_URL
	else
		echo "tests/run.sh: no redis-server for the $1 unit tests:" >&2
		cat "$log/$1-redis.err" >&2
	fi
	if pg_start >"$log/$1-pg.err" 2>&1; then
		export CM_TEST_DATABASE_URL=$CM_DATABASE_URL
	else
		echo "tests/run.sh: no PostgreSQL for the $1 unit tests:" >&2
		cat "$log/$1-pg.err" >&2
	fi
	unset CM_REDIS_URL CM_DATABASE_URL
}
# unit_servers_stop: stops them, and takes their exports back so that they
# do not leak into the tool tests.
unit_servers_stop() {
	[ -n "${REDIS_DIR:-}" ] && redis_cleanup
	[ -n "${PG_DIR:-}" ] && pg_stop
	unset CM_TEST_REDIS_URL CM_TEST_DATABASE_URL REDIS_PORT REDIS_SOCK REDIS_DIR REDIS_PID
	unset PG_DIR PG_PORT PG_HOST PG_DB
}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/tests/lsan.supp:print_suppressions=0}

# record BUILD SUITE FILE SECS: notes the TAP results of FILE in BUILD's
# report ("suite<TAB>ok<TAB>not ok<TAB>seconds"), the failures' excerpts in
# a file of their own.
record() {
	local b=$1 suite=$2 file=$3 secs=$4 ok nok
	ok=$(grep -c '^ok ' "$file")
	nok=$(grep -c '^not ok ' "$file")
	printf '%s\t%d\t%d\t%d\n' "$suite" "$ok" "$nok" "$secs" >>"$log/$b.report"
	if [ "$nok" -gt 0 ]; then
		grep -A15 '^not ok ' "$file" | sed 's/^/    /' | head -60 >"$log/$b.fail.$(printf '%s' "$suite" | tr -c 'A-Za-z0-9_.-' _)"
	fi
}

# run_build BUILD: runs every suite of one build, noting each in its report.
run_build() {
	local b=$1 o t name out rc r f start tail
	case $b in
	plain) o=${O:-.} ;;
	asan) o=${ASAN_O:-build/asan} ;;
	esac
	case $o in /*) ;; *) o=$top/$o ;; esac
	export CM_BIN=$o/bin CM_BUILD=$o/build
	: >"$log/$b.report"
	unit_servers "$b"
	trap unit_servers_stop EXIT
	# C unit tests (cmocka, TAP output).
	for t in "$o"/build/tests/test_*; do
		[ -x "$t" ] || continue
		name=$(basename "$t")
		out=$log/$b-$name.tap
		start=$SECONDS
		CMOCKA_MESSAGE_OUTPUT=TAP "$t" >"$out" 2>&1
		rc=$?
		if [ $rc -ne 0 ] && ! grep -q '^not ok ' "$out"; then
			echo "not ok - $name exited with status $rc" >>"$out"
		fi
		record "$b" "$b unit $name" "$out" $((SECONDS - start))
	done
	# Fuzz corpus replay: each harness over its stored corpus is one test.
	out=$log/$b-fuzz.tap
	: >"$out"
	start=$SECONDS
	for r in "$o"/build/fuzz/replay_*; do
		[ -x "$r" ] || continue
		name=${r##*/replay_}
		if "$r" tests/fuzz/corpus/"$name" >"$log/$b-$name.out" 2>&1; then
			echo "ok - $name corpus" >>"$out"
		else
			echo "not ok - $name corpus" >>"$out"
			tail -20 "$log/$b-$name.out" >>"$out"
		fi
	done
	[ -s "$out" ] && record "$b" "$b fuzz replay" "$out" $((SECONDS - start))
	unit_servers_stop
	trap - EXIT
	# Tool tests (bats).
	for f in tests/${BATS_FILTER:-*}.bats; do
		[ -f "$f" ] || continue
		out=$log/$b-$(basename "$f").tap
		start=$SECONDS
		# a build run in the background has SIGINT ignored, which its
		# children could not undo (the demo's Ctrl-C test needs it)
		env --default-signal=INT,QUIT bats --tap "$f" >"$out" 2>&1
		rc=$?
		if [ $rc -ne 0 ] && ! grep -q '^not ok ' "$out"; then
			tail=$(tail -20 "$out" | sed 's/^/# /')
			echo "not ok - $f: bats exited with status $rc" >>"$out"
			echo "$tail" >>"$out"
		fi
		record "$b" "$b $(basename "$f")" "$out" $((SECONDS - start))
	done
}

for b in $builds; do
	case $b in
	plain | asan) ;;
	*) echo "unknown build $b" >&2; exit 2 ;;
	esac
done
# The builds run side by side (TESTS_JOBS, default 2 on a machine with two
# cores or more): most of a suite's time is waiting on servers, not CPU.
jobs=${TESTS_JOBS:-$([ "$(nproc)" -ge 2 ] && echo 2 || echo 1)}
pids=()
for b in $builds; do
	if [ "$jobs" -gt 1 ]; then
		(run_build "$b") &
		pids+=($!)
	else
		(run_build "$b")
	fi
done
for p in "${pids[@]}"; do
	wait "$p"
done
for b in $builds; do
	while IFS=$'\t' read -r suite ok nok secs; do
		pass=$((pass + ok))
		fail=$((fail + nok))
		printf '%-28s %5d passed, %d failed  (%ds)\n' "$suite" "$ok" "$nok" "$secs"
		if [ "$nok" -gt 0 ]; then
			failed+=("$suite")
			cat "$log/$b.fail.$(printf '%s' "$suite" | tr -c 'A-Za-z0-9_.-' _)"
		fi
	done <"$log/$b.report"
done

[ ${#failed[@]} -gt 0 ] && printf 'failed suites: %s\n' "${failed[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
