# cm-httpd for the tool tests: a free odd port derived from the shell's pid,
# a JWT secret file, its JSON log (stderr) in a file, stopped by its pid.
#
#   load lib/httpd
#   httpd_start [ARGS...]     # starts $CM_BIN/cm-httpd ARGS on a free port
#   httpd_stop                # SIGTERM, waits; its exit status in HTTPD_STATUS
#
# httpd_start exports HTTPD_PORT, HTTPD_URL (http://127.0.0.1:PORT),
# HTTPD_PID, HTTPD_LOG and JWT_SECRET_FILE (a fresh 48-byte secret, unless
# JWT_SECRET_FILE is set already; JWT_SECRET_FILE=none passes no
# --jwt-secret-file, for a server that reads CM_JWT_SECRET or
# CM_JWT_SECRET_FILE). The server uses CM_DATABASE_URL and CM_REDIS_URL from
# the environment, as the other tools do. HTTPD_DIR is where the log and the
# secret go (default: $BATS_FILE_TMPDIR or $T).

# _httpd_port_free PORT: true when nothing accepts connections on PORT.
_httpd_port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# httpd_start [ARGS...]: starts cm-httpd and waits until it accepts
# connections (or fails after about 10 s, showing its log).
httpd_start() {
	local dir=${HTTPD_DIR:-${BATS_FILE_TMPDIR:-$T}} base try i secret=()
	mkdir -p "$dir"
	if [ -z "${JWT_SECRET_FILE:-}" ]; then
		JWT_SECRET_FILE=$dir/jwt-secret
		head -c 48 /dev/urandom | base64 -w0 >"$JWT_SECRET_FILE"
		chmod 600 "$JWT_SECRET_FILE"
	fi
	[ "$JWT_SECRET_FILE" = none ] || secret=(--jwt-secret-file "$JWT_SECRET_FILE")
	base=$((40000 + ($$ * 11) % 10000))
	for ((try = 0; try < 20; try++)); do
		HTTPD_PORT=$((40000 + (base - 40000 + try * 101) % 10000))
		[ $((HTTPD_PORT % 2)) -eq 1 ] || HTTPD_PORT=$((HTTPD_PORT + 1))
		_httpd_port_free "$HTTPD_PORT" || continue
		HTTPD_LOG=$dir/httpd.$HTTPD_PORT.log
		"$CM_BIN/cm-httpd" --listen "127.0.0.1:$HTTPD_PORT" "${secret[@]}" "$@" \
			</dev/null >/dev/null 2>"$HTTPD_LOG" 3>&- &
		HTTPD_PID=$!
		for ((i = 0; i < 200; i++)); do
			if ! kill -0 "$HTTPD_PID" 2>/dev/null; then
				wait "$HTTPD_PID"
				HTTPD_STATUS=$?
				break
			fi
			if ! _httpd_port_free "$HTTPD_PORT"; then
				HTTPD_URL=http://127.0.0.1:$HTTPD_PORT
				export HTTPD_PORT HTTPD_URL HTTPD_PID HTTPD_LOG JWT_SECRET_FILE
				return 0
			fi
			sleep 0.05
		done
		# Lost a race for the port (status 5): try the next one.
		[ "${HTTPD_STATUS:-}" = 5 ] && continue
		break
	done
	echo "httpd_start: cm-httpd did not start (status ${HTTPD_STATUS:-?}):" >&2
	cat "$HTTPD_LOG" >&2 2>/dev/null
	[ -n "${HTTPD_PID:-}" ] && kill "$HTTPD_PID" 2>/dev/null
	HTTPD_PID=
	return 1
}

# httpd_stop [SIGNAL]: signals the server (default TERM), waits for it and
# sets HTTPD_STATUS; a server that has not stopped after 20 s is killed.
httpd_stop() {
	local sig=${1:-TERM} i
	[ -n "${HTTPD_PID:-}" ] || return 0
	kill -"$sig" "$HTTPD_PID" 2>/dev/null || true
	for ((i = 0; i < 400; i++)); do
		kill -0 "$HTTPD_PID" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$HTTPD_PID" 2>/dev/null; then
		kill -KILL "$HTTPD_PID" 2>/dev/null
	fi
	wait "$HTTPD_PID" 2>/dev/null
	HTTPD_STATUS=$?
	HTTPD_PID=
	return 0
}

# api METHOD PATH [CURL ARGS...]: one request to the server; sets CODE (the
# status), BODY and HEADERS (the response head, CRs removed).
api() {
	local m=$1 p=$2 d=${BATS_TEST_TMPDIR:-$T} how
	shift 2
	# (curl waits for a body after -X HEAD: --head says there is none)
	if [ "$m" = HEAD ]; then how=--head; else how="-X$m"; fi
	CODE=$(curl -s -S "$how" -o "$d/.api-body" -D "$d/.api-head" -w '%{http_code}' \
		--max-time 30 "$@" "$HTTPD_URL$p")
	BODY=$(cat "$d/.api-body")
	HEADERS=$(tr -d '\r' <"$d/.api-head")
}

# header NAME: the value of response header NAME of the last api call.
header() {
	awk -v n="$1" 'BEGIN { n = tolower(n) } { i = index($0, ":"); if (tolower(substr($0, 1, i - 1)) == n) { print substr($0, i + 2); exit } }' <<<"$HEADERS"
}

# login USER PASSWORD: prints a token (fails when the login fails).
login() {
	local out
	out=$(curl -s -S --max-time 30 "$HTTPD_URL/auth/token" --data-urlencode "username=$1" \
		--data-urlencode "password=$2") || return 1
	jq -er .access_token <<<"$out"
}

# mkjwt HEADER PAYLOAD [ALG [SECRET_FILE]]: a token crafted independently of
# the server (Python's hmac), signed with ALG (HS256 default, HS384, HS512,
# none: an empty signature, bogus: a fixed one) under the secret file's
# contents (default $JWT_SECRET_FILE).
mkjwt() {
	/usr/bin/python3 - "$1" "$2" "${3:-HS256}" "${4:-$JWT_SECRET_FILE}" <<'PY'
import base64, hashlib, hmac, sys
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
h, p, alg, keyfile = sys.argv[1:5]
key = open(keyfile, "rb").read().rstrip(b"\n")
s = b64(h.encode()) + "." + b64(p.encode())
if alg == "none":
    sig = ""
elif alg == "bogus":
    sig = b64(b"not a signature")
else:
    sig = b64(hmac.new(key, s.encode(), {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]).digest())
print(s + "." + sig)
PY
}
