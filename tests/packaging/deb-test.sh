#!/usr/bin/env bash
# make deb-test: builds the Debian package, then runs deb.bats, which installs
# it with dpkg -i, tests it from its installed paths and purges it; ends with
# "deb-test: N passed, N failed". It must run as root and fails loudly where
# it cannot; it refuses to run where campaign-manager is already installed
# (it would purge it), and never leaves the package installed.
set -u
cd "$(dirname "$0")/../.." || exit 2

if [ "$(id -u)" -ne 0 ]; then
	echo "deb-test: FAILED: must run as root (it installs and purges the package): sudo make deb-test" >&2
	echo "deb-test: 0 passed, 1 failed"
	exit 1
fi
if dpkg-query -W -f='${db:Status-Status}' campaign-manager 2>/dev/null | grep -qv '^not-installed$'; then
	echo "deb-test: FAILED: campaign-manager is installed on this machine; deb-test would purge it." >&2
	echo "deb-test: remove it first (dpkg --purge campaign-manager) or run deb-test elsewhere" >&2
	echo "deb-test: 0 passed, 1 failed"
	exit 1
fi

log=$(mktemp -d "${TMPDIR:-/tmp}/cm-deb-test.XXXXXX")
# Whatever happens, the package does not stay installed.
cleanup() {
	if dpkg-query -W -f='${db:Status-Status}' campaign-manager 2>/dev/null | grep -qv '^not-installed$'; then
		echo "deb-test: purging the campaign-manager package left installed" >&2
		dpkg --purge campaign-manager >&2
	fi
	rm -rf "$log"
}
trap cleanup EXIT

if ! make deb >"$log/build" 2>&1; then
	tail -40 "$log/build" >&2
	echo "deb-test: FAILED: make deb" >&2
	echo "deb-test: 0 passed, 1 failed"
	exit 1
fi
DEB=$(ls build/deb/campaign-manager_*.deb)
CHANGES=$(ls build/deb/campaign-manager_*.changes)
export DEB CHANGES

bats --tap tests/packaging/deb.bats >"$log/tap" 2>&1
rc=$?
cat "$log/tap"
pass=$(grep -c '^ok ' "$log/tap")
fail=$(grep -c '^not ok ' "$log/tap")
if [ $rc -ne 0 ] && [ "$fail" -eq 0 ]; then
	fail=1
fi
echo "deb-test: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
