#!/usr/bin/env bats
# GET /docs and the embedded assets: a real headless Chromium loads the page
# inside a network namespace that has only loopback (so nothing can come
# from outside) and the rendered DOM must show every operation, schema and
# security scheme of /openapi.json. The server comes from DOCS_SERVER (a
# command that serves the assets on DOCS_ADDR): cm-httpd itself, with no
# Redis or PostgreSQL behind it (the test-only assetd serves the same files
# for a test of the page alone: DOCS_SERVER=".../tests/tools/assetd
# --listen ADDR").

load lib/common

DOCS_ADDR=${DOCS_ADDR:-127.0.0.1:18001}
DOCS_SECRET=${BATS_FILE_TMPDIR:-/tmp}/docs-jwt-secret
DOCS_SERVER=${DOCS_SERVER:-"env CM_REDIS_URL=redis://127.0.0.1:1 CM_DATABASE_URL=host=/nonexistent \
	$CM_BIN/cm-httpd --listen $DOCS_ADDR --jwt-secret-file $DOCS_SECRET --log-level warning"}

setup_file() {
	head -c 48 /dev/urandom | base64 -w0 >"$DOCS_SECRET"
}
DOC=$TOP/share/openapi.json
CHROMIUM=${CHROMIUM:-chromium}

# offline SCRIPT: runs the bash SCRIPT as root in a new network namespace
# (loopback only) with the server started and answering on DOCS_ADDR; the
# server is stopped afterwards. stdout and status are the script's.
offline() {
	[ "$(id -u)" -eq 0 ] || {
		echo "the browser test runs in a network namespace: it needs root" >&2
		return 1
	}
	DOCS_SERVER=$DOCS_SERVER DOCS_ADDR=$DOCS_ADDR T=$T unshare -n bash -c '
		set -u
		ip link set lo up || exit 1
		$DOCS_SERVER 2>"$T/server.err" &
		pid=$!
		host=${DOCS_ADDR%:*} port=${DOCS_ADDR##*:}
		for i in $(seq 100); do
			(exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && break
			kill -0 $pid 2>/dev/null || { echo "server died" >&2; cat "$T/server.err" >&2; exit 1; }
			sleep 0.05
		done
		bash -c "$1"
		rc=$?
		kill -TERM $pid
		wait $pid
		exit $rc' offline "$1"
}

# chrome ARGS: headless Chromium with a fresh profile and nothing that
# would reach out (no sync, updates or background fetches).
chrome_cmd() {
	echo "$CHROMIUM --headless=new --no-sandbox --disable-gpu --disable-background-networking \
		--disable-component-update --disable-sync --no-first-run --disable-default-apps \
		--user-data-dir=$T/profile --virtual-time-budget=15000"
}

@test "the docs page renders every route with the network off" {
	offline "ip -o link | grep -v ': lo:' && exit 1
		[ -z \"\$(ip route)\" ] || exit 1
		$(chrome_cmd) --dump-dom http://$DOCS_ADDR/docs >$T/dom.html 2>$T/chrome.err" || {
		tail -20 "$T/chrome.err" "$T/server.err" 2>/dev/null
		return 1
	}
	grep -q 'data-state="ready"' "$T/dom.html"
	n=$(jq '[.paths[][] | objects | select(.responses)] | length' "$DOC")
	[ "$n" -eq 25 ]
	grep -q "data-operations=\"$n\"" "$T/dom.html"
	# Every operation, with its method badge and path.
	jq -r '.paths | to_entries[] | .key as $p | .value | keys[]
		| select(. != "parameters") | ascii_upcase + " " + $p' "$DOC" |
		while read -r m p; do
			grep -qF "data-method=\"$m\" data-path=\"$p\"" "$T/dom.html" || {
				echo "not rendered: $m $p"
				return 1
			}
			grep -qF "<span class=\"method\">$m</span> <span class=\"path\">$p</span>" "$T/dom.html"
		done
	# Every response of every operation, every schema and security scheme.
	[ "$(grep -o 'data-status="[0-9]*"' "$T/dom.html" | wc -l)" -eq \
		"$(jq '[.paths[][] | objects | select(.responses) | .responses | keys[]] | length' "$DOC")" ]
	for s in $(jq -r '.components.schemas | keys[]' "$DOC"); do
		grep -qF "id=\"schema-$s\"" "$T/dom.html" || { echo "no schema $s"; return 1; }
	done
	for s in $(jq -r '.components.securitySchemes | keys[]' "$DOC"); do
		grep -qF "id=\"security-$s\"" "$T/dom.html"
	done
	# Parameters, bodies and descriptions came through as text.
	grep -qF '<code>limit</code>' "$T/dom.html"
	grep -qF '<code>application/x-ndjson</code>' "$T/dom.html"
	grep -qF 'Incorrect username or password' "$T/dom.html"
}

@test "a screenshot of the page shows it rendered, not blank" {
	offline "$(chrome_cmd) --window-size=1200,900 --screenshot=$T/docs.png \
		http://$DOCS_ADDR/docs >/dev/null 2>$T/chrome.err" || {
		tail -20 "$T/chrome.err"
		return 1
	}
	[ -s "$T/docs.png" ]
	# A blank page compresses to a few kilobytes; the rendered one is large.
	[ "$(stat -c %s "$T/docs.png")" -gt 50000 ]
}

@test "the page and its script and style load nothing from elsewhere" {
	run grep -nE '(https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}' "$TOP"/share/docs/*
	echo "$output"
	[ "$status" -eq 1 ]
	grep -q "Content-Security-Policy\" content=\"default-src 'none'; script-src 'self'" "$TOP/share/docs/index.html"
	run grep -nE '<(script|link|img)[^>]+(src|href)="[^/]' "$TOP/share/docs/index.html"
	[ "$status" -eq 1 ]
}

@test "the server answers the embedded files exactly, with their types, ETags and errors" {
	offline "curl -sS -D $T/h1 -o $T/openapi.json http://$DOCS_ADDR/openapi.json &&
		curl -sS -D $T/h2 -o $T/index.html http://$DOCS_ADDR/docs &&
		curl -sS -o $T/slash.html http://$DOCS_ADDR/docs/ &&
		curl -sS -D $T/h3 -o $T/docs.js http://$DOCS_ADDR/docs/docs.js &&
		curl -sS -o $T/docs.css http://$DOCS_ADDR/docs/docs.css &&
		etag=\$(sed -n 's/^ETag: //Ip' $T/h1 | tr -d '\r') &&
		curl -sS -o /dev/null -w '%{http_code}\n' -H \"If-None-Match: \$etag\" http://$DOCS_ADDR/openapi.json >$T/codes &&
		curl -sS -o $T/404 -w '%{http_code}\n' http://$DOCS_ADDR/nope >>$T/codes &&
		curl -sS -D $T/h405 -o $T/405 -w '%{http_code}\n' -X DELETE http://$DOCS_ADDR/docs >>$T/codes"
	cmp "$T/openapi.json" "$DOC"
	cmp "$T/index.html" "$TOP/share/docs/index.html"
	cmp "$T/slash.html" "$TOP/share/docs/index.html"
	cmp "$T/docs.js" "$TOP/share/docs/docs.js"
	cmp "$T/docs.css" "$TOP/share/docs/docs.css"
	grep -qi '^content-type: application/json' "$T/h1"
	grep -qi '^content-type: text/html; charset=utf-8' "$T/h2"
	grep -qi '^content-type: text/javascript; charset=utf-8' "$T/h3"
	[ "$(cat "$T/codes")" = "$(printf '304\n404\n405')" ]
	[ "$(cat "$T/404")" = '{"detail":"Not Found"}' ]
	[ "$(cat "$T/405")" = '{"detail":"Method Not Allowed"}' ]
	grep -qi '^allow: GET, HEAD' "$T/h405"
}
