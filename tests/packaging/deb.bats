#!/usr/bin/env bats
# The Debian package, installed (make deb-test, as root): it builds clean of
# lintian errors, installs with dpkg -i after its dependencies, its tools run
# from their installed paths and find their installed files, its man pages
# render, systemd accepts its units, it starts nothing, and remove and purge
# leave nothing behind. The tests run in order: the third installs the
# package and the last purges it. DEB and CHANGES name the built files
# (tests/packaging/deb-test.sh sets them).

TOP=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
PKG=campaign-manager
EXAMPLES=/usr/share/doc/$PKG/examples

setup_file() {
	if [ -z "${DEB:-}" ] || [ ! -f "$DEB" ]; then
		echo "DEB is not set to the built package: run make deb-test" >&2
		return 1
	fi
	if [ "$(id -u)" -ne 0 ]; then
		echo "deb.bats installs a package: it must run as root" >&2
		return 1
	fi
}

teardown_file() {
	if [ -n "${PG_DIR:-}" ]; then
		pg_stop
	fi
}

# installed: true when dpkg has the package installed (not only its conffiles).
installed() {
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null)" = installed ]
}

@test "the package file is campaign-manager_VERSION_ARCH.deb, of the tools' version" {
	local version arch
	version=$(sed -n 's/^#define CM_VERSION "\(.*\)"/\1/p' "$TOP/src/lib/version.h")
	arch=$(dpkg --print-architecture)
	[ "$(basename "$DEB")" = "${PKG}_${version}_${arch}.deb" ]
	[ "$(dpkg-deb -f "$DEB" Package)" = "$PKG" ]
	[ "$(dpkg-deb -f "$DEB" Version)" = "$version" ]
}

@test "lintian reports no errors, and the README explains every tag it reports" {
	run lintian -EvIL +pedantic --tag-display-limit 0 "$CHANGES"
	echo "$output"
	# lintian exits non-zero for errors (and for its own failures)
	[ "$status" -eq 0 ]
	local report=$output tag bad=""
	[ "$(grep -c '^E: ' <<<"$report")" -eq 0 ]
	while read -r tag; do
		[ -n "$tag" ] || continue
		grep -qF -- "\`$tag\`" "$TOP/README.md" || bad="$bad $tag"
	done < <(grep -E '^[WIPX]: ' <<<"$report" | awk '{ print $3 }' | sort -u)
	echo "tags the README does not explain:$bad"
	[ -z "$bad" ]
}

@test "its dependencies install with apt-get, then dpkg -i installs it" {
	run installed
	[ "$status" -ne 0 ]
	local deps p need=()
	# Depends: "a (>= 1), b | c, d": the first of each alternative.
	deps=$(dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/[[:space:]]//g')
	for p in $deps; do
		[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || need+=("$p")
	done
	echo "to install first: ${need[*]}"
	if [ ${#need[@]} -gt 0 ]; then
		apt-get update -q
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
	fi
	run dpkg -i "$DEB"
	echo "$output"
	[ "$status" -eq 0 ]
	installed
}

@test "it made the system user and group campaign-manager: no login, no home" {
	installed
	local pw
	pw=$(getent passwd "$PKG")
	echo "$pw"
	[ "$(cut -d: -f7 <<<"$pw")" = /usr/sbin/nologin ]
	[ "$(cut -d: -f6 <<<"$pw")" = /nonexistent ]
	[ ! -e /nonexistent ]
	# a system uid, and the user's own group
	[ "$(cut -d: -f3 <<<"$pw")" -lt 1000 ]
	[ "$(id -gn "$PKG")" = "$PKG" ]
}

@test "the example configuration is a conffile, root:campaign-manager 0640; the JWT secret was made" {
	installed
	local env=/etc/campaign-manager/campaign-manager.env
	dpkg-query -W -f='${Conffiles}\n' "$PKG" | grep -q "^ $env "
	[ "$(stat -c '%U:%G %a' "$env")" = "root:$PKG 640" ]
	[ "$(stat -c '%U:%G %a' /etc/campaign-manager/jwt-secret)" = "root:$PKG 640" ]
	# at least 32 bytes without the newline, as cm-httpd requires
	[ "$(tr -d '\n' </etc/campaign-manager/jwt-secret | wc -c)" -ge 32 ]
	# it is the file the services read, the same as the source tree's
	cmp "$env" "$TOP/packaging/campaign-manager.env"
}

@test "installing started and enabled nothing, and its scripts touch no database" {
	installed
	[ ! -e /etc/systemd/system/multi-user.target.wants/cm-httpd.service ]
	[ -z "$(find /etc/systemd/system -name 'cm-*' 2>/dev/null)" ]
	run pgrep -x cm-httpd
	[ "$status" -eq 1 ]
	run pgrep -f /usr/bin/cm-worker
	[ "$status" -eq 1 ]
	local s n=0
	for s in preinst postinst prerm postrm; do
		[ -f "/var/lib/dpkg/info/$PKG.$s" ] || continue
		n=$((n + 1))
		run grep -nE 'cm-admin|psql|redis-cli|systemctl (enable|start)|deb-systemd-invoke (start|restart)' \
			"/var/lib/dpkg/info/$PKG.$s"
		echo "$s: $output"
		[ "$status" -eq 1 ]
	done
	[ "$n" -ge 2 ]
}

@test "every tool in /usr/bin runs from there: --version" {
	installed
	local t n=0
	for t in $(dpkg -L "$PKG" | grep '^/usr/bin/'); do
		run "$t" --version
		echo "$t: $output"
		[ "$status" -eq 0 ]
		[ "$output" = "$(basename "$t") $(dpkg-deb -f "$DEB" Version)" ]
		n=$((n + 1))
	done
	[ "$n" -ge 7 ]
}

@test "cm-ingest | cm-match over the installed examples: 27 events, 17 matches" {
	installed
	[ -f "$EXAMPLES/orders.csv" ]
	run bash -c "cd / && /usr/bin/cm-ingest $EXAMPLES/orders.csv $EXAMPLES/events.jsonl |
		/usr/bin/cm-match -c $EXAMPLES/campaigns.json --stats --emit matches 2>&1 >$BATS_TEST_TMPDIR/m"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "cm-match: 27 events, 15 matched, 17 matches, 0 rejected, 0 jq errors" ]
	[ "$(wc -l <"$BATS_TEST_TMPDIR/m")" -eq 17 ]
}

@test "cm-admin migrate finds its SQL files in /usr/share/campaign-manager/sql" {
	installed
	load ../lib/pg
	pg_start
	local f
	for f in "$TOP"/share/sql/*.sql; do
		[ -f "/usr/share/campaign-manager/sql/$(basename "$f")" ]
	done
	run env -u CM_SQL_DIR /usr/bin/cm-admin migrate
	echo "$output"
	[ "$status" -eq 0 ]
	run env -u CM_SQL_DIR /usr/bin/cm-admin migrate --status
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q '001_init' <<<"$output"
	run grep -ci pending <<<"$output"
	[ "$output" -eq 0 ]
	pg_stop
}

@test "every man page of the package renders with man-db" {
	installed
	local p name sec n=0
	for p in $(dpkg -L "$PKG" | grep '^/usr/share/man/man./.*\.gz$'); do
		name=$(basename "$p" .gz)
		sec=${name##*.}
		name=${name%.*}
		run env MANWIDTH=80 man -P cat "$sec" "$name"
		[ "$status" -eq 0 ] || { echo "man $sec $name: $output"; return 1; }
		grep -q '^NAME' <<<"$output"
		n=$((n + 1))
	done
	run env MANWIDTH=80 man -P cat cm-match
	[ "$status" -eq 0 ]
	grep -q 'cm-match' <<<"$output"
	[ "$n" -ge 8 ]
}

@test "a bash completion for every tool, each loading and completing its options" {
	installed
	local t name
	for t in $(dpkg -L "$PKG" | grep '^/usr/bin/'); do
		name=$(basename "$t")
		[ -f "/usr/share/bash-completion/completions/$name" ] || { echo "no completion: $name"; return 1; }
		run bash -c ". /usr/share/bash-completion/completions/$name
			COMP_WORDS=($name --ver) COMP_CWORD=1
			\$(complete -p $name | sed 's/.*-F \([^ ]*\).*/\1/')
			echo \"\${COMPREPLY[*]}\""
		echo "$name: $output"
		[ "$output" = --version ]
	done
}

@test "systemd-analyze verify accepts the worker unit as installed (instance cm-worker@1)" {
	installed
	run systemd-analyze verify cm-worker@1.service
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

# Needs cm-httpd: its binary and man page must be installed for verify.
@test "systemd-analyze verify accepts cm-httpd.service as installed" {
	installed
	run systemd-analyze verify cm-httpd.service
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "systemd-analyze security rates both installed units OK (exposure at most 1.5)" {
	installed
	local u
	for u in /lib/systemd/system/cm-httpd.service /lib/systemd/system/cm-worker@.service; do
		run systemd-analyze security --offline=true --threshold=15 "$u"
		echo "$output" | tail -1
		[ "$status" -eq 0 ]
	done
}

@test "remove keeps the configuration and the user; purge removes them and leaves nothing" {
	installed
	local files f left=""
	files=$(dpkg -L "$PKG")
	run dpkg --remove "$PKG"
	echo "$output"
	[ "$status" -eq 0 ]
	run installed
	[ "$status" -ne 0 ]
	[ ! -e /usr/bin/cm-match ]
	[ -f /etc/campaign-manager/campaign-manager.env ]
	getent passwd "$PKG"
	run dpkg --purge "$PKG"
	echo "$output"
	[ "$status" -eq 0 ]
	run dpkg-query -W -f='${db:Status-Status}' "$PKG"
	[ "$status" -ne 0 ] || [ "$output" = not-installed ]
	run getent passwd "$PKG"
	[ "$status" -eq 2 ]
	run getent group "$PKG"
	[ "$status" -eq 2 ]
	[ ! -e /etc/campaign-manager ]
	# every file the package had is gone, and its own directories
	while IFS= read -r f; do
		[ -d "$f" ] && continue
		[ -e "$f" ] || [ -L "$f" ] && left="$left $f"
	done <<<"$files"
	for f in /usr/share/campaign-manager /usr/share/doc/$PKG /etc/campaign-manager; do
		[ -e "$f" ] && left="$left $f"
	done
	# nor any state of deb-systemd-helper about its units
	left="$left $(find /var/lib/systemd -name '*cm-httpd*' -o -name '*cm-worker*' 2>/dev/null | tr '\n' ' ')"
	echo "left behind:$left"
	[ -z "${left// /}" ]
}
