#!/usr/bin/env bash
# deps.sh - the Debian packages Campaign Manager needs, in one place, and an
# installer that installs only those that are missing.
#
#   packaging/deps.sh GROUP...          install what GROUPs need and is missing
#   packaging/deps.sh --list GROUP...   print the packages, one a line
#   packaging/deps.sh --check GROUP...  print what is missing; exit 1 if any
#
# Groups: build (compile the tools), unit (the unit tests: cmocka), runtime
# (the shared libraries the tools link, for an image that only runs them),
# test (make test), lint (make lint), pkg (make deb, make deb-test), demo
# (make demo), all.
# .ci/run, make test, make deb-test and make demo call it, so a fresh Debian
# bookworm machine needs nothing but this script. Installing needs root, or
# sudo for a user; apt-get update runs only when something is missing.
set -euo pipefail

prog=deps.sh

build_pkgs=(
	build-essential pkg-config ca-certificates git
	libhiredis-dev libpq-dev libjq-dev libonig-dev libcsv-dev libpcre2-dev
	libmicrohttpd-dev libjwt-dev libsodium-dev
)
unit_pkgs=(libcmocka-dev redis-server postgresql)
runtime_pkgs=(
	libhiredis0.14 libpq5 libjq1 libcsv3 libpcre2-8-0
	libmicrohttpd12 libjwt0 libsodium23 ca-certificates
)
# The tool tests: servers they start themselves, the peers they compare
# with, and the linters and validators of the packaging tests (promtool is in
# the prometheus package; systemd for systemd-analyze; node for tests/node-pkg
# and tests/node; curl and wrk for cm-httpd's tests and bench; chromium in a
# network namespace of iproute2 for the /docs page; man-db to render the man
# pages with groff as lintian does).
test_pkgs=(
	bats jq miller mandoc man-db python3 time
	redis-server postgresql postgresql-contrib
	procps util-linux hostname
	shellcheck prometheus systemd
	curl wrk chromium iproute2
)
lint_pkgs=(cppcheck clang-format mandoc shellcheck)
pkg_pkgs=(debhelper dpkg-dev lintian man-db systemd adduser)
# make demo: the servers it starts, the client tools it talks to them with,
# ps, and runuser (util-linux) to run PostgreSQL as postgres when root.
demo_pkgs=(redis-server postgresql jq curl procps util-linux)

usage() {
	sed -n '2,15s/^# \{0,1\}//p' "$0"
}

# packages GROUP...: the packages of the GROUPs, each once.
packages() {
	local g
	for g in "$@"; do
		case $g in
		build) printf '%s\n' "${build_pkgs[@]}" ;;
		unit) printf '%s\n' "${unit_pkgs[@]}" ;;
		runtime) printf '%s\n' "${runtime_pkgs[@]}" ;;
		test) printf '%s\n' "${unit_pkgs[@]}" "${test_pkgs[@]}" ;;
		lint) printf '%s\n' "${lint_pkgs[@]}" ;;
		pkg) printf '%s\n' "${pkg_pkgs[@]}" ;;
		demo) printf '%s\n' "${demo_pkgs[@]}" ;;
		all) packages build unit runtime test lint pkg demo ;;
		*)
			echo "$prog: unknown group '$g' (build, unit, runtime, test, lint, pkg, demo, all)" >&2
			return 2
			;;
		esac
	done | sort -u
}

# missing PKG...: those of PKG that dpkg does not have fully installed.
missing() {
	local p s
	for p in "$@"; do
		s=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) || s=
		[ "$s" = installed ] || echo "$p"
	done
}

# node_missing GROUP...: Node.js and npm, for the test group, when there are no
# node and npm commands (a machine may have them from elsewhere than Debian,
# and Debian's npm would conflict with such a nodejs).
node_missing() {
	local g
	for g in "$@"; do
		case $g in test | all)
			command -v node >/dev/null && command -v npm >/dev/null || printf 'nodejs\nnpm\n'
			return 0
			;;
		esac
	done
}

mode=install
case ${1:-} in
--list | --check) mode=${1#--}; shift ;;
-h | --help) usage; exit 0 ;;
esac
[ $# -gt 0 ] || { usage >&2; exit 2; }

mapfile -t want < <(packages "$@")
[ ${#want[@]} -gt 0 ] || exit 2
if [ "$mode" = list ]; then
	printf '%s\n' "${want[@]}"
	exit 0
fi

mapfile -t need < <(missing "${want[@]}"; node_missing "$@")
[ ${#need[@]} -gt 0 ] || exit 0
if [ "$mode" = check ]; then
	printf '%s\n' "${need[@]}"
	exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
	as_root=()
elif command -v sudo >/dev/null; then
	as_root=(sudo)
else
	echo "$prog: missing packages: ${need[*]}" >&2
	echo "$prog: installing them needs root or sudo; as root run: $0 $*" >&2
	exit 1
fi

echo "$prog: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A package install cut short earlier leaves dpkg half-configured; finish it
# first (a no-op otherwise).
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive dpkg --configure -a
"${as_root[@]}" apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -q --no-install-recommends "${need[@]}"
# Whatever apt says, check: a package that did not get installed fails here.
mapfile -t still < <(missing "${want[@]}"; node_missing "$@")
if [ ${#still[@]} -gt 0 ]; then
	echo "$prog: still missing after apt-get install: ${still[*]}" >&2
	exit 1
fi
