#!/usr/bin/env bash
# make fuzz FUZZ_SECONDS=N: builds every tests/fuzz/fuzz_*.c harness with
# clang's libFuzzer and ASan+UBSan (the harness and all of src/lib compiled
# directly, linked as the Makefile links the tools), runs each over its
# corpus tests/fuzz/corpus/fuzz_NAME/ for its share of N seconds, adds the
# inputs that reach new coverage to that corpus (through -merge=1, so it stays
# small for make test's replay), puts crashes in tests/fuzz/findings/ and
# reports.
# Exit status: 0 when nothing was found, 1 when a harness crashed, leaked or
# timed out, 2 when a harness does not build.
#
# Environment: CC_FUZZ (default clang), FUZZ_DIR (default tests/fuzz, for
# trying the runner on other harnesses), O (build dir, as for make).
set -u
cd "$(dirname "$0")/../.." || exit 2
top=$PWD
secs=${1:-${FUZZ_SECONDS:-60}}
cc=${CC_FUZZ:-clang}
dir=${FUZZ_DIR:-tests/fuzz}
o=${O:-.}
case $o in /*) ;; *) o=$top/$o ;; esac
out=$o/build/fuzz-clang
findings=$dir/findings

case $secs in
'' | *[!0-9]*)
	echo "fuzz: FUZZ_SECONDS must be a whole number of seconds, not '$secs'" >&2
	exit 2
	;;
esac

shopt -s nullglob
harnesses=("$dir"/fuzz_*.c)
if [ ${#harnesses[@]} -eq 0 ]; then
	echo "fuzz: no harness $dir/fuzz_*.c to run"
	exit 0
fi
if ! command -v "$cc" >/dev/null; then
	echo "fuzz: $cc not found (libFuzzer needs clang and libclang-rt-dev)" >&2
	exit 2
fi

pkgs=(hiredis libpq libpcre2-8 libmicrohttpd libjwt libsodium)
read -r -a pkg_cflags <<<"$(pkg-config --cflags "${pkgs[@]}" 2>/dev/null)"
read -r -a pkg_libs <<<"$(pkg-config --libs "${pkgs[@]}" 2>/dev/null)"
cppflags=(-Isrc/lib -D_GNU_SOURCE "${pkg_cflags[@]}")
san=(-g -O1 -fno-omit-frame-pointer "-fsanitize=address,undefined" -fno-sanitize-recover=undefined)
libs=("${pkg_libs[@]}" -ljq -lcsv -lm -lpthread)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/tests/lsan.supp:print_suppressions=0}

mkdir -p "$out/lib" "$findings" || exit 2

# The library, instrumented for coverage but without libFuzzer's main; an
# object is rebuilt when its source or any header is newer.
objs=()
for c in src/lib/*.c; do
	obj=$out/lib/$(basename "${c%.c}").o
	stale=0
	for dep in "$c" src/lib/*.h; do
		[ "$obj" -nt "$dep" ] || stale=1
	done
	if [ "$stale" = 1 ]; then
		if ! "$cc" "${cppflags[@]}" "${san[@]}" -fsanitize=fuzzer-no-link -c -o "$obj" "$c"; then
			echo "fuzz: $c does not build with $cc" >&2
			exit 2
		fi
	fi
	objs+=("$obj")
done

# The files cm-httpd serves, embedded as the Makefile embeds them (assets.c
# refers to them, so every link needs them).
assets=(share/openapi.json share/docs/*)
obj=$out/lib/assets_data.o
stale=0
for dep in src/lib/assets.sh src/lib/assets.h "${assets[@]}"; do
	[ "$obj" -nt "$dep" ] || stale=1
done
if [ "$stale" = 1 ]; then
	if ! sh src/lib/assets.sh "${assets[@]}" >"$out/lib/assets_data.c" ||
		! "$cc" "${cppflags[@]}" "${san[@]}" -fsanitize=fuzzer-no-link -c -o "$obj" \
			"$out/lib/assets_data.c"; then
		echo "fuzz: the embedded assets do not build with $cc" >&2
		exit 2
	fi
fi
objs+=("$obj")

per=$((secs / ${#harnesses[@]}))
[ "$per" -lt 1 ] && per=1
echo "fuzz: ${#harnesses[@]} harness(es), ${per}s each, $("$cc" --version | head -1)"

status=0
report=()
for h in "${harnesses[@]}"; do
	name=$(basename "${h%.c}")
	bin=$out/$name
	corpus=$dir/corpus/$name
	log=$out/$name.log
	if ! "$cc" "${cppflags[@]}" "${san[@]}" -fsanitize=fuzzer -o "$bin" "$h" "${objs[@]}" \
		"${libs[@]}"; then
		report+=("$(printf '%-24s BUILD FAILED' "$name")")
		status=2
		continue
	fi
	mkdir -p "$corpus"
	before=$(find "$corpus" -type f | wc -l)
	stamp=$out/$name.stamp
	: >"$stamp"
	dict=()
	[ -f "$dir/$name.dict" ] && dict=(-dict="$dir/$name.dict")
	echo "fuzz: $name for ${per}s (corpus $corpus, $before inputs)"
	# New inputs go to a scratch directory first; -merge=1 then adds to the
	# corpus only those that reach new coverage, and never removes a stored one.
	new=$out/$name.new
	rm -rf "$new"
	mkdir -p "$new"
	"$bin" -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$findings/$name-" "${dict[@]}" "$new" "$corpus" >"$log" 2>&1
	rc=$?
	if [ -n "$(ls -A "$new")" ]; then
		"$bin" -merge=1 -timeout=10 "$corpus" "$new" >>"$log" 2>&1 ||
			echo "fuzz: $name: merging new inputs failed, see $log" >&2
	fi
	rm -rf "$new"
	after=$(find "$corpus" -type f | wc -l)
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
	found=$(find "$findings" -name "$name-*" -newer "$stamp" -type f | wc -l)
	verdict=ok
	if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
		verdict="FOUND A PROBLEM (exit $rc): see $log and $findings/$name-*"
		[ "$status" -eq 0 ] && status=1
		grep -m1 -E '^==[0-9]+==ERROR|runtime error|ERROR: libFuzzer' "$log" | sed 's/^/    /'
	fi
	report+=("$(printf '%-24s %10s runs, %-9s corpus %d -> %d, %d finding(s): %s' "$name" \
		"${runs:-?}" "${cov:-cov: ?}" "$before" "$after" "$found" "$verdict")")
done

echo
echo "fuzz report (${per}s per harness):"
for l in "${report[@]}"; do
	echo "  $l"
done
exit "$status"
