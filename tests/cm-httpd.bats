#!/usr/bin/env bats
# cm-httpd against a real Redis and PostgreSQL (tests/lib/redis.bash,
# pg.bash) and the server itself on a free odd port (tests/lib/httpd.bash):
# options, every route and its failures, FastAPI's error bodies, token
# attacks crafted here with Python's hmac (never with the server's code),
# write keys, login throttling, limits, slow and abusive clients, SIGTERM,
# a short fuzz of request bytes, and Segment's Tracking API (/v1) with curl
# and with Segment's own Node SDK (tests/node, npm ci there).

load lib/common
load lib/redis
load lib/pg
load lib/httpd

setup_file() {
	export CM_SQL_DIR=$TOP/share/sql
	redis_start
	pg_start
	cm-admin migrate >/dev/null
	printf 'adm1n-pass\n' | cm-admin user add admin --role admin
	printf 'b0b-pass\n' | cm-admin user add bob --role user
	WRITE_KEY=$(cm-admin key add shop)
	export WRITE_KEY
	httpd_start --timeout 10
	export MAIN_LOG=$HTTPD_LOG MAIN_PID=$HTTPD_PID MAIN_URL=$HTTPD_URL MAIN_PORT=$HTTPD_PORT
	ADMIN_TOKEN=$(login admin adm1n-pass)
	USER_TOKEN=$(login bob b0b-pass)
	export ADMIN_TOKEN USER_TOKEN
}

teardown_file() {
	HTTPD_PID=$MAIN_PID httpd_stop
	redis_cleanup
	pg_stop
}

setup() {
	# Each test talks to the main server unless it starts its own.
	HTTPD_URL=$MAIN_URL
	HTTPD_LOG=$MAIN_LOG
	HTTPD_PORT=$MAIN_PORT
	HTTPD_PID=
}

teardown() {
	# A server a test started is stopped, whatever happened.
	[ -n "${HTTPD_PID:-}" ] && [ "$HTTPD_PID" != "$MAIN_PID" ] && httpd_stop
	[ -n "${bg:-}" ] && kill "$bg" 2>/dev/null
	# Redis must be up for the next test.
	if ! rcli PING >/dev/null 2>&1; then
		redis_restart
	fi
	return 0
}

A() { echo "Authorization: Bearer $ADMIN_TOKEN"; }
U() { echo "Authorization: Bearer $USER_TOKEN"; }

# detail: the "detail" member of the last body.
detail() { jq -r .detail <<<"$BODY"; }

# wait_log PATTERN: waits up to 2 s for a line of the server's log.
wait_log() {
	for _ in $(seq 40); do
		grep -q -- "$1" "$HTTPD_LOG" && return 0
		sleep 0.05
	done
	return 1
}

# event ID [TYPE]: a canonical event line.
event() {
	printf '{"event_id":"%s","event_type":"%s","user_id":"u-1","occurred_at":"2026-11-27T10:15:00Z","properties":{"amount":120.5}}' "$1" "${2:-purchase}"
}

# live_start: a worker's cm-match -c CONNINFO --emit matches in the
# background ($bg), reading the events written to fd 7, its matches in
# $T/out.
live_start() {
	mkfifo "$T/fifo"
	cm-match -c "$CM_DATABASE_URL" --emit matches <"$T/fifo" >"$T/out" 2>"$T/err" &
	bg=$!
	exec 7>"$T/fifo"
}

# live_send ID: sends event ID to live_start's cm-match and waits up to 2 s
# for its match (the whole 2 s for an event that matches nothing).
live_send() {
	event "$1" >&7
	echo >&7
	for _ in $(seq 40); do
		grep -q "\"event_id\":\"$1\"" "$T/out" && break
		sleep 0.05
	done
}

# live_stop: ends live_start's cm-match and shows what it wrote.
live_stop() {
	exec 7>&-
	wait "$bg"
	bg=
	cat "$T/out" "$T/err"
}

@test "cm-httpd: --help, --version and usage errors" {
	run cm-httpd --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"--jwt-secret-file FILE"* ]]
	run cm-httpd --version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^cm-httpd\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
	for bad in "--listen nope" "--listen 127.0.0.1:0" "--listen 127.0.0.1:70000" \
		"--listen [::1]8000" "--threads 0" "--threads 100000" "--token-ttl 5" \
		"--max-body 12" "--timeout 0" "--log-level loud" "--backtest-time 0" "--bogus" "extra"; do
		run cm-httpd --jwt-secret-file "$JWT_SECRET_FILE" $bad
		echo "$bad: $output"
		[ "$status" -eq 2 ]
	done
}

@test "cm-httpd: the JWT secret is required, at least 32 bytes, from a file or the environment" {
	run env -u CM_JWT_SECRET -u CM_JWT_SECRET_FILE cm-httpd --listen 127.0.0.1:1
	[ "$status" -eq 2 ]
	[[ "$output" == *"no JWT secret"* ]]
	printf 'short\n' >"$T/short"
	run cm-httpd --listen 127.0.0.1:1 --jwt-secret-file "$T/short"
	[ "$status" -eq 2 ]
	[[ "$output" == *"at least 32"* ]]
	run env CM_JWT_SECRET=tooshort cm-httpd --listen 127.0.0.1:1
	[ "$status" -eq 2 ]
	run cm-httpd --listen 127.0.0.1:1 --jwt-secret-file "$T/nonexistent"
	[ "$status" -eq 2 ]
	[[ "$output" == *"$T/nonexistent"* ]]
	: >"$T/empty"
	run env CM_JWT_SECRET_FILE="$T/empty" cm-httpd --listen 127.0.0.1:1
	[ "$status" -eq 2 ]
	# every line the server writes is JSON, the errors too
	jq -e . <<<"$output" >/dev/null
}

@test "cm-httpd: a secret from CM_JWT_SECRET or CM_JWT_SECRET_FILE signs the tokens" {
	secret=0123456789abcdef0123456789abcdef-env
	printf '%s\n' "$secret" >"$T/file"
	JWT_SECRET_FILE=none CM_JWT_SECRET=$secret httpd_start
	tok=$(login bob b0b-pass)
	# the trailing newline of a file is not part of the secret
	api GET /auth/users/me -H "Authorization: Bearer $(JWT_SECRET_FILE=$T/file mkjwt '{"alg":"HS256"}' \
		"{\"sub\":\"bob\",\"role\":\"user\",\"exp\":$(($(date +%s) + 60))}")"
	[ "$CODE" = 200 ]
	# the secret is not left in the process environment
	run ! grep -qF "$secret" /proc/$HTTPD_PID/environ
	httpd_stop
	# --jwt-secret-file wins over CM_JWT_SECRET, which is wiped all the same
	JWT_SECRET_FILE=$T/file CM_JWT_SECRET=other-0123456789abcdef0123456789abcdef HTTPD_DIR=$T httpd_start
	run ! grep -qF "other-0123456789" /proc/$HTTPD_PID/environ
	api GET /auth/users/me -H "Authorization: Bearer $tok"
	[ "$CODE" = 200 ]
	httpd_stop
	# a file named by the environment
	JWT_SECRET_FILE=none CM_JWT_SECRET_FILE=$T/file HTTPD_DIR=$T httpd_start
	api GET /auth/users/me -H "Authorization: Bearer $tok"
	[ "$CODE" = 200 ]
}

@test "cm-httpd: an address in use is status 5" {
	run cm-httpd --listen "127.0.0.1:$MAIN_PORT" --jwt-secret-file "$JWT_SECRET_FILE"
	[ "$status" -eq 5 ]
	[[ "$output" == *"cannot listen"* ]]
}

@test "cm-httpd: GET /health checks Redis and PostgreSQL" {
	api GET /health
	[ "$CODE" = 200 ]
	[ "$BODY" = '{"status":"ok","checks":{"redis":"ok","postgres":"ok"}}' ]
	[ "$(header Content-Type)" = application/json ]
}

@test "cm-httpd: GET /health is 503 naming what is down, and its result lasts a second" {
	api GET /health
	[ "$CODE" = 200 ]
	# A stopped Redis (SIGSTOP) answers nothing: the check times out.
	kill -STOP "$(cat "$REDIS_DIR/redis.pid")"
	# still the result of a moment ago
	api GET /health
	kill -CONT "$(cat "$REDIS_DIR/redis.pid")"
	[ "$CODE" = 200 ]
	kill -STOP "$(cat "$REDIS_DIR/redis.pid")"
	sleep 1.1
	api GET /health
	kill -CONT "$(cat "$REDIS_DIR/redis.pid")"
	[ "$CODE" = 503 ]
	[ "$BODY" = '{"status":"unavailable","checks":{"redis":"timeout","postgres":"ok"}}' ]
	wait_log '"health check fails","check":"redis","verdict":"timeout"'
	sleep 1.1
	api GET /health
	[ "$CODE" = 200 ]
	wait_log '"health check passes again","check":"redis"'
}

@test "cm-httpd: PostgreSQL down is 503 in /health and on the database routes; it starts without servers" {
	CM_DATABASE_URL="host=$T port=1 dbname=x" CM_REDIS_URL=redis://127.0.0.1:1 httpd_start
	api GET /health
	[ "$CODE" = 503 ]
	[ "$BODY" = '{"status":"unavailable","checks":{"redis":"unreachable","postgres":"unreachable"}}' ]
	api GET /campaigns -H "$(U)"
	[ "$CODE" = 503 ]
	[ "$(detail)" = "Database unavailable" ]
	[ "$(header Retry-After)" = 1 ]
	api POST /auth/token -d username=bob -d password=b0b-pass
	[ "$CODE" = 503 ]
}

@test "cm-httpd: unknown routes are 404, wrong methods 405 with Allow, FastAPI's bodies" {
	api GET /nope
	[ "$CODE" = 404 ]
	[ "$BODY" = '{"detail":"Not Found"}' ]
	api GET /campaigns/1/nope -H "$(U)"
	[ "$CODE" = 404 ]
	api PUT /campaigns/1 -H "$(A)"
	[ "$CODE" = 405 ]
	[ "$BODY" = '{"detail":"Method Not Allowed"}' ]
	[ "$(header Allow)" = "GET, HEAD, PATCH, DELETE" ]
	api GET /auth/token
	[ "$CODE" = 405 ]
	[ "$(header Allow)" = POST ]
	api DELETE /events
	[ "$CODE" = 405 ]
	# a trailing slash redirects, as Starlette does
	api GET "/campaigns/?limit=2"
	[ "$CODE" = 307 ]
	[ "$(header Location)" = "/campaigns?limit=2" ]
}

@test "cm-httpd: POST /auth/token issues an HS256 token with sub, role, iat and exp" {
	api POST /auth/token -d grant_type=password -d username=admin -d password=adm1n-pass
	[ "$CODE" = 200 ]
	[ "$(jq -r .token_type <<<"$BODY")" = bearer ]
	tok=$(jq -r .access_token <<<"$BODY")
	claims=$(/usr/bin/python3 -c 'import base64,sys,json; p=sys.argv[1].split(".")
h=json.loads(base64.urlsafe_b64decode(p[0]+"=="*2)); c=json.loads(base64.urlsafe_b64decode(p[1]+"=="*2))
print(h["alg"], c["sub"], c["role"], c["exp"]-c["iat"])' "$tok")
	[ "$claims" = "HS256 admin admin 1800" ]
	# multipart/form-data as well
	api POST /auth/token -F username=bob -F password=b0b-pass
	[ "$CODE" = 200 ]
	api GET /auth/users/me -H "Authorization: Bearer $(jq -r .access_token <<<"$BODY")"
	[ "$BODY" = '{"username":"bob","role":"user"}' ]
}

@test "cm-httpd: --token-ttl sets the tokens' lifetime" {
	httpd_start --token-ttl 90
	tok=$(login bob b0b-pass)
	ttl=$(/usr/bin/python3 -c 'import base64,sys,json; c=json.loads(base64.urlsafe_b64decode(sys.argv[1].split(".")[1]+"=="))
print(c["exp"]-c["iat"])' "$tok")
	[ "$ttl" = 90 ]
}

@test "cm-httpd: POST /auth/token's form errors are FastAPI's 422" {
	api POST /auth/token -d username=admin
	[ "$CODE" = 422 ]
	[ "$BODY" = '{"detail":[{"loc":["body","password"],"msg":"field required","type":"value_error.missing"}]}' ]
	api POST /auth/token -H 'Content-Type: application/json' -d '{"username":"admin","password":"x"}'
	[ "$CODE" = 422 ]
	[ "$(jq -c '[.detail[].loc]' <<<"$BODY")" = '[["body","username"],["body","password"]]' ]
	# an empty field counts as missing, as FastAPI's forms
	api POST /auth/token -d username= -d password=x
	[ "$CODE" = 422 ]
	[ "$(jq -c '.detail[0].loc' <<<"$BODY")" = '["body","username"]' ]
	api POST /auth/token -d grant_type=client_credentials -d username=admin -d password=x
	[ "$CODE" = 422 ]
	[ "$(jq -r '.detail[0].type' <<<"$BODY")" = value_error.str.regex ]
}

@test "cm-httpd: a wrong password and an unknown user get the same 401, in about the same time" {
	api POST /auth/token -d username=admin -d password=wrong-1
	[ "$CODE" = 401 ]
	[ "$BODY" = '{"detail":"Incorrect username or password"}' ]
	[ "$(header WWW-Authenticate)" = Bearer ]
	known=$BODY
	api POST /auth/token -d username=nobody-at-all -d password=wrong-2
	[ "$CODE" = 401 ]
	[ "$BODY" = "$known" ]
	[ "$(header WWW-Authenticate)" = Bearer ]
	# the unknown user is checked against a dummy Argon2id hash: no
	# faster answer tells that the name does not exist
	t() {
		curl -s -o /dev/null -w '%{time_total}' "$HTTPD_URL/auth/token" -d "username=$1" -d "password=$2"
	}
	k=$(t bob wrong-3)
	u=$(t nobody-else wrong-4)
	echo "known user: $k s, unknown user: $u s"
	awk -v k="$k" -v u="$u" 'BEGIN { exit !(u > k / 3 && u > 0.005) }'
}

@test "cm-httpd: repeated failed logins of one user are slowed down with 429 and Retry-After" {
	printf 'victim-pass\n' | cm-admin user add victim --role user
	httpd_start
	for i in 1 2 3 4 5; do
		api POST /auth/token -d username=victim -d "password=guess-$i"
		[ "$CODE" = 401 ]
	done
	api POST /auth/token -d username=victim -d password=guess-6
	[ "$CODE" = 429 ]
	[ "$(header Retry-After)" = 1 ]
	[ "$(detail)" = "Too many failed login attempts; try again later" ]
	# even the right password waits: no hint that it was right
	api POST /auth/token -d username=victim -d password=victim-pass
	[ "$CODE" = 429 ]
	# other users are not affected
	api POST /auth/token -d username=bob -d password=b0b-pass
	[ "$CODE" = 200 ]
	sleep 1.1
	api POST /auth/token -d username=victim -d password=guess-7
	[ "$CODE" = 401 ]
	api POST /auth/token -d username=victim -d password=victim-pass
	[ "$CODE" = 429 ]
	[ "$(header Retry-After)" = 2 ]
	sleep 2.1
	api POST /auth/token -d username=victim -d password=victim-pass
	[ "$CODE" = 200 ]
	# a success clears the count
	api POST /auth/token -d username=victim -d password=guess-8
	[ "$CODE" = 401 ]
}

@test "cm-httpd: many failed logins from one address are slowed down whatever the names" {
	httpd_start
	for i in $(seq 20); do
		api POST /auth/token -d "username=spray-$i" -d password=x
		[ "$CODE" = 401 ]
	done
	api POST /auth/token -d username=spray-21 -d password=x
	[ "$CODE" = 429 ]
	api POST /auth/token -d username=bob -d password=b0b-pass
	[ "$CODE" = 429 ]
}

@test "cm-httpd: no token, another scheme, or an empty one is 401 Not authenticated / Could not validate" {
	for p in /auth/users/me /campaigns /campaigns/1 /events/x; do
		api GET "$p"
		[ "$CODE" = 401 ]
		[ "$BODY" = '{"detail":"Not authenticated"}' ]
		[ "$(header WWW-Authenticate)" = Bearer ]
	done
	api POST /events -d "$(event e-noauth)"
	[ "$CODE" = 401 ]
	api GET /campaigns -H "Authorization: Basic YWRtaW46YWRtMW4tcGFzcw=="
	[ "$CODE" = 401 ]
	[ "$(detail)" = "Not authenticated" ]
	api GET /campaigns -H "Authorization: Bearer "
	[ "$CODE" = 401 ]
	[ "$(detail)" = "Could not validate credentials" ]
	# the scheme is case-insensitive, as FastAPI's
	api GET /campaigns -H "Authorization: bearer $USER_TOKEN"
	[ "$CODE" = 200 ]
}

@test "cm-httpd: every forged, altered or expired token is 401 Could not validate credentials" {
	now=$(date +%s)
	good="{\"sub\":\"admin\",\"role\":\"admin\",\"iat\":$now,\"exp\":$((now + 600))}"
	other=$T/other-secret
	printf 'another-secret-another-secret-another-secret\n' >"$other"
	# the premise: a token crafted here with the server's secret works
	api GET /auth/users/me -H "Authorization: Bearer $(mkjwt '{"alg":"HS256","typ":"JWT"}' "$good")"
	[ "$CODE" = 200 ]
	big=$(head -c 6500 /dev/zero | tr '\0' p)
	while IFS='|' read -r what tok; do
		api GET /auth/users/me -H "Authorization: Bearer $tok"
		echo "$what: $CODE $BODY"
		[ "$CODE" = 401 ]
		[ "$BODY" = '{"detail":"Could not validate credentials"}' ]
		[ "$(header WWW-Authenticate)" = Bearer ]
	done <<EOF
malformed|not-a-token
two parts|eyJhbGciOiJIUzI1NiJ9.e30
garbage|!!!.???.***
bad signature|$(mkjwt '{"alg":"HS256"}' "$good" HS256 "$other")
bogus signature|$(mkjwt '{"alg":"HS256"}' "$good" bogus)
alg none|$(mkjwt '{"alg":"none"}' "$good" none)
alg none with a signature|$(mkjwt '{"alg":"none"}' "$good" bogus)
HS384 with the same secret|$(mkjwt '{"alg":"HS384"}' "$good" HS384)
HS512 with the same secret|$(mkjwt '{"alg":"HS512"}' "$good" HS512)
RS256 header|$(mkjwt '{"alg":"RS256"}' "$good")
no exp|$(mkjwt '{"alg":"HS256"}' '{"sub":"admin","role":"admin"}')
exp a string|$(mkjwt '{"alg":"HS256"}' "{\"sub\":\"admin\",\"role\":\"admin\",\"exp\":\"$((now + 600))\"}")
exp a fraction|$(mkjwt '{"alg":"HS256"}' "{\"sub\":\"admin\",\"role\":\"admin\",\"exp\":$((now + 600)).5}")
exp null|$(mkjwt '{"alg":"HS256"}' '{"sub":"admin","role":"admin","exp":null}')
expired|$(mkjwt '{"alg":"HS256"}' "{\"sub\":\"admin\",\"role\":\"admin\",\"exp\":$((now - 1))}")
nbf in the future|$(mkjwt '{"alg":"HS256"}' "{\"sub\":\"admin\",\"role\":\"admin\",\"exp\":$((now + 600)),\"nbf\":$((now + 300))}")
no sub|$(mkjwt '{"alg":"HS256"}' "{\"role\":\"admin\",\"exp\":$((now + 600))}")
over 8 KiB, well signed|$(mkjwt '{"alg":"HS256"}' "{\"sub\":\"admin\",\"role\":\"admin\",\"exp\":$((now + 600)),\"pad\":\"$big\"}")
EOF
	# a multi-megabyte token is refused without harm (the request head limit)
	code=$(/usr/bin/python3 - "$HTTPD_PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
try:
    s.sendall(b"GET /auth/users/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"A" * 3000000 + b"\r\n\r\n")
except OSError:
    pass
print(s.recv(64).split(b" ")[1].decode())
PY
)
	echo "multi-megabyte token: $code"
	[ "$code" = 431 ]
	api GET /health
	[ "$CODE" = 200 ]
}

@test "cm-httpd: a token with role user is 403 on admin routes; the database's role counts there" {
	api POST /campaigns -H "$(U)" -d '{"name":"forbidden","rule":{}}'
	[ "$CODE" = 403 ]
	[ "$BODY" = '{"detail":"Not enough permissions"}' ]
	api PATCH /campaigns/1 -H "$(U)" -d '{}'
	[ "$CODE" = 403 ]
	api DELETE /campaigns/1 -H "$(U)"
	[ "$CODE" = 403 ]
	# a token claiming admin for a user the database knows as a user
	now=$(date +%s)
	api POST /campaigns -d '{"name":"forged-admin","rule":{}}' -H "Authorization: Bearer $(mkjwt \
		'{"alg":"HS256"}' "{\"sub\":\"bob\",\"role\":\"admin\",\"exp\":$((now + 600))}")"
	[ "$CODE" = 403 ]
	[ "$(pg_sql "SELECT count(*) FROM campaigns WHERE name = 'forged-admin'")" -eq 0 ]
	# a deleted user's token no longer works on the database routes
	printf 'gone-pass\n' | cm-admin user add gone --role admin
	tok=$(login gone gone-pass)
	api GET /auth/users/me -H "Authorization: Bearer $tok"
	[ "$CODE" = 200 ]
	cm-admin user del gone
	api GET /auth/users/me -H "Authorization: Bearer $tok"
	[ "$CODE" = 401 ]
	[ "$(detail)" = "Could not validate credentials" ]
}

@test "cm-httpd: GET /auth/users/me" {
	api GET /auth/users/me -H "$(A)"
	[ "$CODE" = 200 ]
	[ "$BODY" = '{"username":"admin","role":"admin"}' ]
	api GET /auth/users/me -H "$(U)"
	[ "$BODY" = '{"username":"bob","role":"user"}' ]
}

@test "cm-httpd: a write key sends events and nothing else" {
	api POST /events -H "Authorization: Bearer $WRITE_KEY" -d "$(event e-key-1)"
	[ "$CODE" = 202 ]
	[ "$BODY" = '{"accepted":1,"event_ids":["e-key-1"]}' ]
	[ -n "$(pg_sql "SELECT last_used_at FROM api_keys WHERE name = 'shop'")" ]
	wait_log '"user":"key:shop"'
	for p in /campaigns /auth/users/me /events/e-key-1; do
		api GET "$p" -H "Authorization: Bearer $WRITE_KEY"
		[ "$CODE" = 401 ]
		[ "$(detail)" = "Could not validate credentials" ]
	done
	api POST /campaigns -H "Authorization: Bearer $WRITE_KEY" -d '{"name":"k","rule":{}}'
	[ "$CODE" = 401 ]
	# an unknown key, and one deleted before its first use
	api POST /events -H "Authorization: Bearer cmk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" -d "$(event e-key-2)"
	[ "$CODE" = 401 ]
	k=$(cm-admin key add doomed)
	cm-admin key del doomed
	api POST /events -H "Authorization: Bearer $k" -d "$(event e-key-3)"
	[ "$CODE" = 401 ]
	api POST /events -H "Authorization: Bearer cmk_short" -d "$(event e-key-4)"
	[ "$CODE" = 401 ]
}

@test "cm-httpd: POST /campaigns stores a valid campaign: 201 with its id and version 1" {
	api POST /campaigns -H "$(A)" -d '{"name":"big-spenders-de","status":"active","starts_at":null,
	  "ends_at":"2026-12-31T23:59:59+01:00","rule":{"event_type":["purchase"],
	  "where":{"all":[{"field":"properties.amount","op":"gte","value":100},
	                  {"field":"properties.country","op":"in","value":["DE","AT"]}]}}}'
	[ "$CODE" = 201 ]
	id=$(jq -r .id <<<"$BODY")
	[ "$id" -gt 0 ]
	[ "$(jq -c '[.name,.status,.starts_at,.ends_at,.version]' <<<"$BODY")" = \
		'["big-spenders-de","active",null,"2026-12-31T22:59:59Z",1]' ]
	[ "$(jq -c .rule.where.all[1].value <<<"$BODY")" = '["DE","AT"]' ]
	[[ "$(jq -r .created_at <<<"$BODY")" =~ ^20[0-9]{2}-.*Z$ ]]
	# status defaults to active
	api POST /campaigns -H "$(A)" -d '{"name":"minimal","rule":{"event_type":"signup"}}'
	[ "$CODE" = 201 ]
	[ "$(jq -r .status <<<"$BODY")" = active ]
	# read-only members of a campaign read back are ignored
	api POST /campaigns -H "$(A)" -d '{"id":999,"version":7,"name":"copied","rule":{}}'
	[ "$CODE" = 201 ]
	[ "$(jq -r .id <<<"$BODY")" != 999 ]
	[ "$(jq -r .version <<<"$BODY")" = 1 ]
	[ "$(pg_sql "SELECT actor || ' ' || action FROM campaign_audit WHERE campaign_id = $id")" = "admin create" ]
}

@test "cm-httpd: an invalid campaign is a 422 saying where, with cm-match's own messages" {
	while IFS= read -r line; do
		body=${line% => *}
		loc=${line##* => }
		api POST /campaigns -H "$(A)" -d "$body"
		echo "$body -> $CODE $BODY"
		[ "$CODE" = 422 ]
		[ "$(jq -c '.detail[0].loc' <<<"$BODY")" = "$loc" ]
		[ -n "$(jq -r '.detail[0].msg' <<<"$BODY")" ]
		[ -n "$(jq -r '.detail[0].type' <<<"$BODY")" ]
	done <<'CASES'
{"name":"x","rule":{"where":{"all":[{"field":"a","op":"eq","value":1},{"field":"a","op":"gte2","value":1}]}}} => ["body","rule","where","all",1,"op"]
{"name":"","rule":{}} => ["body","name"]
{"rule":{}} => ["body","name"]
{"name":"x","status":"running","rule":{}} => ["body","status"]
{"name":"x","rule":{"jq":".a |"}} => ["body","rule","jq"]
{"name":"x"} => ["body","rule"]
{"name":"x","rule":{},"starts_at":"2026-02-01T00:00:00Z","ends_at":"2026-01-01T00:00:00Z"} => ["body","ends_at"]
{"name":"x","rule":{"event_type":[]}} => ["body","rule","event_type"]
{"name":"x","rule":{"where":{"field":"a","op":"matches","value":"(x"}}} => ["body","rule","where","value"]
{"name":"x","rule":{"bogus":1}} => ["body","rule","bogus"]
{"name":"x","rule":{},"colour":"red"} => ["body","colour"]
{"name":"x","rule":{},"ends_at":"tomorrow"} => ["body","ends_at"]
["not","an","object"] => ["body"]
{"name":"x", => ["body",12]
CASES
	api POST /campaigns -H "$(A)" -d ''
	[ "$CODE" = 422 ]
	[ "$(pg_sql "SELECT count(*) FROM campaigns WHERE name = 'x'")" -eq 0 ]
	# nesting beyond the limit is refused, not a crash
	deep=$(printf '{"not":%.0s' $(seq 200))'{"field":"a","op":"exists"}'$(printf '}%.0s' $(seq 200))
	api POST /campaigns -H "$(A)" -d "{\"name\":\"deep\",\"rule\":{\"where\":$deep}}"
	[ "$CODE" = 422 ]
}

@test "cm-httpd: a campaign name in use is 409 on create and on edit" {
	api POST /campaigns -H "$(A)" -d '{"name":"taken","rule":{}}'
	[ "$CODE" = 201 ]
	api POST /campaigns -H "$(A)" -d '{"name":"taken","rule":{}}'
	[ "$CODE" = 409 ]
	[ "$(detail)" = "Campaign name already exists" ]
	api POST /campaigns -H "$(A)" -d '{"name":"free","rule":{}}'
	id=$(jq -r .id <<<"$BODY")
	api PATCH "/campaigns/$id" -H "$(A)" -d '{"name":"taken"}'
	[ "$CODE" = 409 ]
	[ "$(pg_sql "SELECT name FROM campaigns WHERE id = $id")" = free ]
}

@test "cm-httpd: GET /campaigns lists, filters by status and pages with bounded limits" {
	for n in 1 2 3; do
		api POST /campaigns -H "$(A)" -d "{\"name\":\"list-$n\",\"status\":\"paused\",\"rule\":{}}"
		[ "$CODE" = 201 ]
	done
	api GET "/campaigns?status=paused&limit=2" -H "$(U)"
	[ "$CODE" = 200 ]
	[ "$(jq -c 'map(.name)' <<<"$BODY")" = '["list-1","list-2"]' ]
	api GET "/campaigns?status=paused&limit=2&offset=2" -H "$(U)"
	[ "$(jq -c 'map(.name)' <<<"$BODY")" = '["list-3"]' ]
	api GET "/campaigns" -H "$(U)"
	[ "$(jq 'length' <<<"$BODY")" -ge 3 ]
	[ "$(jq -r '.[0] | keys_unsorted | join(",")' <<<"$BODY")" = \
		"id,name,status,starts_at,ends_at,rule,version,created_at,updated_at" ]
	while IFS='|' read -r q loc type; do
		api GET "/campaigns?$q" -H "$(U)"
		echo "$q -> $CODE $BODY"
		[ "$CODE" = 422 ]
		[ "$(jq -c '.detail[0].loc' <<<"$BODY")" = "$loc" ]
		[ "$(jq -r '.detail[0].type' <<<"$BODY")" = "$type" ]
	done <<'CASES'
limit=0|["query","limit"]|value_error.number.not_ge
limit=1001|["query","limit"]|value_error.number.not_le
limit=ten|["query","limit"]|type_error.integer
offset=-1|["query","offset"]|value_error.number.not_ge
status=running|["query","status"]|type_error.enum
CASES
}

@test "cm-httpd: GET /campaigns/{id}: 200, 404, and 422 for an id that is not an integer" {
	api POST /campaigns -H "$(A)" -d '{"name":"get-me","rule":{"event_type":"a"}}'
	id=$(jq -r .id <<<"$BODY")
	created=$BODY
	api GET "/campaigns/$id" -H "$(U)"
	[ "$CODE" = 200 ]
	[ "$BODY" = "$created" ]
	api GET /campaigns/999999 -H "$(U)"
	[ "$CODE" = 404 ]
	[ "$(detail)" = "Campaign not found" ]
	api GET /campaigns/abc -H "$(U)"
	[ "$CODE" = 422 ]
	[ "$(jq -c '.detail[0].loc' <<<"$BODY")" = '["path","id"]' ]
}

@test "cm-httpd: PATCH edits fields, pauses and resumes; every change bumps the version and is audited" {
	api POST /campaigns -H "$(A)" -d '{"name":"edit-me","rule":{"event_type":"a"}}'
	id=$(jq -r .id <<<"$BODY")
	api PATCH "/campaigns/$id" -H "$(A)" -d '{"status":"paused"}'
	[ "$CODE" = 200 ]
	[ "$(jq -c '[.status,.version,.name]' <<<"$BODY")" = '["paused",2,"edit-me"]' ]
	api PATCH "/campaigns/$id" -H "$(A)" -d '{"status":"active","rule":{"event_type":"b"},"ends_at":"2027-01-01T00:00:00Z"}'
	[ "$CODE" = 200 ]
	[ "$(jq -c '[.status,.version,.rule.event_type,.ends_at]' <<<"$BODY")" = '["active",3,"b","2027-01-01T00:00:00Z"]' ]
	# an edit that changes nothing is no new version
	api PATCH "/campaigns/$id" -H "$(A)" -d '{"name":"edit-me"}'
	[ "$(jq -r .version <<<"$BODY")" = 3 ]
	api PATCH "/campaigns/$id" -H "$(A)" -d '{"ends_at":null}'
	[ "$(jq -c '[.ends_at,.version]' <<<"$BODY")" = '[null,4]' ]
	# the version a client read guards against a lost update
	api PATCH "/campaigns/$id" -H "$(A)" -d '{"version":3,"name":"stale"}'
	[ "$CODE" = 409 ]
	[[ "$(detail)" == *"version 4"* ]]
	api PATCH "/campaigns/$id" -H "$(A)" -d '{"version":4,"name":"fresh"}'
	[ "$CODE" = 200 ]
	# invalid edits: the merged campaign is validated
	api PATCH "/campaigns/$id" -H "$(A)" -d '{"rule":{"where":{"field":"a","op":"nope","value":1}}}'
	[ "$CODE" = 422 ]
	[ "$(jq -c '.detail[0].loc' <<<"$BODY")" = '["body","rule","where","op"]' ]
	api PATCH "/campaigns/$id" -H "$(A)" -d '{"name":null}'
	[ "$CODE" = 422 ]
	[ "$(jq -r '.detail[0].type' <<<"$BODY")" = type_error.none.not_allowed ]
	api PATCH "/campaigns/$id" -H "$(A)" -d '{"starts_at":"2027-06-01T00:00:00Z","ends_at":"2027-01-01T00:00:00Z"}'
	[ "$CODE" = 422 ]
	api PATCH /campaigns/999999 -H "$(A)" -d '{"status":"paused"}'
	[ "$CODE" = 404 ]
	[ "$(pg_sql "SELECT version, name FROM campaigns WHERE id = $id")" = "5|fresh" ]
	api GET "/campaigns/$id/audit" -H "$(U)"
	[ "$CODE" = 200 ]
	[ "$(jq -c 'map(.action)' <<<"$BODY")" = '["update","update","resume","pause","create"]' ]
	[ "$(jq -r '.[0].actor' <<<"$BODY")" = admin ]
	[ "$(jq -c '.[0] | [.before.name, .after.name, .after.version]' <<<"$BODY")" = '["edit-me","fresh",5]' ]
	[ "$(jq -c '.[-1].before' <<<"$BODY")" = null ]
	api GET "/campaigns/$id/audit?limit=2&offset=1" -H "$(U)"
	[ "$(jq -c 'map(.action)' <<<"$BODY")" = '["update","resume"]' ]
	api GET /campaigns/999999/audit -H "$(U)"
	[ "$CODE" = 404 ]
}

@test "cm-httpd: POST and PATCH carry limit, holdout and variants: stored, returned when set, audited" {
	api POST /campaigns -H "$(A)" -d '{"name":"controls","rule":{"event_type":"purchase"},
	  "limit":{"per_user":1,"cooldown":"P7D"},"holdout":0.1,"variants":[{"name":"A","weight":1},{"name":"B","weight":2.5}]}'
	echo "$CODE $BODY"
	[ "$CODE" = 201 ]
	id=$(jq -r .id <<<"$BODY")
	# (jsonb keeps an object's keys in its own order)
	[ "$(jq -cS '[.limit,.holdout,.variants]' <<<"$BODY")" = \
		'[{"cooldown":"P7D","per_user":1},0.1,[{"name":"A","weight":1},{"name":"B","weight":2.5}]]' ]
	[ "$(pg_sql "SELECT \"limit\"::text || ' ' || holdout || ' ' || variants::text FROM campaigns WHERE id = $id")" = \
		'{"cooldown": "P7D", "per_user": 1} 0.1 [{"name": "A", "weight": 1}, {"name": "B", "weight": 2.5}]' ]
	api GET "/campaigns/$id" -H "$(U)"
	[ "$(jq -c '[.limit.per_user,.holdout,(.variants | length)]' <<<"$BODY")" = '[1,0.1,2]' ]
	# a campaign without them has none of the keys (as the original service's replies)
	api POST /campaigns -H "$(A)" -d '{"name":"no-controls","rule":{},"limit":null}'
	[ "$CODE" = 201 ]
	plain=$(jq -r .id <<<"$BODY")
	[ "$(jq -c 'keys' <<<"$BODY")" = '["created_at","ends_at","id","name","rule","starts_at","status","updated_at","version"]' ]
	api GET /campaigns -H "$(U)"
	[ "$(jq -c --argjson id "$plain" '.[] | select(.id == $id) | has("limit") or has("holdout") or has("variants")' <<<"$BODY")" = false ]
	# PATCH changes one, keeps the others, and null unsets
	api PATCH "/campaigns/$id" -H "$(A)" -d '{"limit":{"cooldown":"PT12H"}}'
	[ "$CODE" = 200 ]
	[ "$(jq -c '[.limit,.holdout,.version]' <<<"$BODY")" = '[{"cooldown":"PT12H"},0.1,2]' ]
	api PATCH "/campaigns/$id" -H "$(A)" -d '{"holdout":null,"variants":null}'
	[ "$CODE" = 200 ]
	[ "$(jq -c '[has("holdout"),has("variants"),.limit.cooldown]' <<<"$BODY")" = '[false,false,"PT12H"]' ]
	[ "$(pg_sql "SELECT holdout IS NULL AND variants IS NULL FROM campaigns WHERE id = $id")" = t ]
	# invalid controls are 422 at their place, on create and on edit
	while IFS= read -r line; do
		body=${line% => *}
		loc=${line##* => }
		api PATCH "/campaigns/$id" -H "$(A)" -d "$body"
		echo "$body -> $CODE $BODY"
		[ "$CODE" = 422 ]
		[ "$(jq -c '.detail[0].loc' <<<"$BODY")" = "$loc" ]
		api POST /campaigns -H "$(A)" -d "{\"name\":\"bad-controls\",\"rule\":{},${body#\{}"
		[ "$CODE" = 422 ]
		[ "$(jq -c '.detail[0].loc' <<<"$BODY")" = "$loc" ]
	done <<'CASES'
{"limit":{"cooldown":"7 days"}} => ["body","limit","cooldown"]
{"limit":{"per_user":0}} => ["body","limit","per_user"]
{"limit":{}} => ["body","limit"]
{"limit":{"per_user":1,"every":"P1D"}} => ["body","limit","every"]
{"holdout":1} => ["body","holdout"]
{"holdout":"0.1"} => ["body","holdout"]
{"variants":[]} => ["body","variants"]
{"variants":[{"name":"A","weight":1},{"name":"A","weight":1}]} => ["body","variants",1,"name"]
{"variants":[{"name":"A","weight":0}]} => ["body","variants",0,"weight"]
CASES
	[ "$(pg_sql "SELECT count(*) FROM campaigns WHERE name = 'bad-controls'")" -eq 0 ]
	[ "$(pg_sql "SELECT version FROM campaigns WHERE id = $id")" -eq 3 ]
	# the audit trail has them where set, and leaves them out where not
	api GET "/campaigns/$id/audit" -H "$(U)"
	[ "$(jq -c '.[0] | [.before.holdout, .before.limit.cooldown, (.after | has("holdout")), .after.limit]' <<<"$BODY")" = \
		'[0.1,"PT12H",false,{"cooldown":"PT12H"}]' ]
	[ "$(jq -c '.[-1] | [.after.limit, .after.variants[1].weight]' <<<"$BODY")" = '[{"cooldown":"P7D","per_user":1},2.5]' ]
	api GET "/campaigns/$plain/audit" -H "$(U)"
	[ "$(jq -c '.[0].after | has("limit") or has("holdout") or has("variants")' <<<"$BODY")" = false ]
}

@test "cm-httpd: a running cm-match -c CONNINFO picks PATCHed limits and variants up" {
	api POST /campaigns -H "$(A)" -d '{"name":"live-limit","rule":{"event_type":"purchase"}}'
	id=$(jq -r .id <<<"$BODY")
	live_start
	live_send limit-1
	api PATCH "/campaigns/$id" -H "$(A)" -d '{"limit":{"per_user":2},"variants":[{"name":"only","weight":1}]}'
	[ "$CODE" = 200 ]
	sleep 1
	live_send limit-2
	live_stop
	# a worker leaves the limit to cm-store: the match carries it verbatim
	[ "$(jq -c --argjson id "$id" 'select(.campaign_id == $id) | [.event_id, .outcome, .variant, .limit]' "$T/out")" = \
		"$(printf '%s\n' '["limit-1","matched",null,null]' '["limit-2","matched","only",{"per_user":2}]')" ]
}

@test "cm-httpd: DELETE archives: 200 with the archived campaign, its history kept" {
	api POST /campaigns -H "$(A)" -d '{"name":"old","rule":{}}'
	id=$(jq -r .id <<<"$BODY")
	api DELETE "/campaigns/$id" -H "$(A)"
	[ "$CODE" = 200 ]
	[ "$(jq -c '[.id,.status,.version]' <<<"$BODY")" = "[$id,\"archived\",2]" ]
	api GET "/campaigns/$id" -H "$(U)"
	[ "$(jq -r .status <<<"$BODY")" = archived ]
	api GET "/campaigns/$id/audit" -H "$(U)"
	[ "$(jq -r '.[0].action' <<<"$BODY")" = archive ]
	api DELETE /campaigns/999999 -H "$(A)"
	[ "$CODE" = 404 ]
	# with ?version= only the version the client read is archived
	api POST /campaigns -H "$(A)" -d '{"name":"old-2","rule":{}}'
	id=$(jq -r .id <<<"$BODY")
	api DELETE "/campaigns/$id?version=2" -H "$(A)"
	[ "$CODE" = 409 ]
	[ "$(pg_sql "SELECT status FROM campaigns WHERE id = $id")" = active ]
	api DELETE "/campaigns/$id?version=one" -H "$(A)"
	[ "$CODE" = 422 ]
	api DELETE "/campaigns/$id?version=1" -H "$(A)"
	[ "$CODE" = 200 ]
}

@test "cm-httpd: GET /campaigns/{id}/matches pages the campaign's matches newest first" {
	api POST /campaigns -H "$(A)" -d '{"name":"with-matches","rule":{}}'
	id=$(jq -r .id <<<"$BODY")
	for i in 1 2 3 4 5; do
		pg_sql "INSERT INTO matches (campaign_id, event_id, user_id, event_type, occurred_at, matched_at)
		        VALUES ($id, 'm-$i', 'u-$i', 'purchase', '2026-11-27T10:00:0${i}Z', '2026-11-28T00:00:0${i}Z')"
	done
	api GET "/campaigns/$id/matches?limit=2" -H "$(U)"
	[ "$CODE" = 200 ]
	[ "$(jq -c 'map(.event_id)' <<<"$BODY")" = '["m-5","m-4"]' ]
	[ "$(jq -c '.[0]' <<<"$BODY")" = "{\"campaign_id\":$id,\"event_id\":\"m-5\",\"user_id\":\"u-5\",\"event_type\":\"purchase\",\"occurred_at\":\"2026-11-27T10:00:05Z\",\"matched_at\":\"2026-11-28T00:00:05Z\",\"outcome\":\"matched\"}" ]
	api GET "/campaigns/$id/matches?limit=2&offset=4" -H "$(U)"
	[ "$(jq -c 'map(.event_id)' <<<"$BODY")" = '["m-1"]' ]
	api GET /campaigns/999999/matches -H "$(U)"
	[ "$CODE" = 404 ]
	api GET "/campaigns/$id/matches?limit=5000" -H "$(U)"
	[ "$CODE" = 422 ]
}

@test "cm-httpd: matches carry their outcome, variant and capped_by; ?outcome= selects one kind" {
	api POST /campaigns -H "$(A)" -d '{"name":"with-outcomes","rule":{},"limit":{"per_user":1},"holdout":0.2,"variants":[{"name":"A","weight":1}]}'
	id=$(jq -r .id <<<"$BODY")
	pg_sql "INSERT INTO matches (campaign_id, event_id, user_id, event_type, occurred_at, matched_at, outcome, variant, capped_by) VALUES
	        ($id, 'o-1', 'u-1', 'purchase', '2026-11-27T10:00:01Z', '2026-11-28T00:00:01Z', 'matched', 'A', NULL),
	        ($id, 'o-2', 'u-1', 'purchase', '2026-11-27T10:00:02Z', '2026-11-28T00:00:02Z', 'capped', 'A', 'o-1'),
	        ($id, 'o-3', 'u-2', 'purchase', '2026-11-27T10:00:03Z', '2026-11-28T00:00:03Z', 'holdout', NULL, NULL)"
	api GET "/campaigns/$id/matches" -H "$(U)"
	[ "$CODE" = 200 ]
	[ "$(jq -c 'map([.event_id, .outcome, .variant, .capped_by])' <<<"$BODY")" = \
		'[["o-3","holdout",null,null],["o-2","capped","A","o-1"],["o-1","matched","A",null]]' ]
	# keys that are not set are absent, not null
	[ "$(jq -c '.[0] | has("variant") or has("capped_by")' <<<"$BODY")" = false ]
	for o in matched holdout capped; do
		api GET "/campaigns/$id/matches?outcome=$o" -H "$(U)"
		[ "$CODE" = 200 ]
		[ "$(jq -c "map(.outcome) | unique" <<<"$BODY")" = "[\"$o\"]" ]
	done
	api GET "/campaigns/$id/matches?outcome=capped&limit=1&offset=1" -H "$(U)"
	[ "$BODY" = '[]' ]
	api GET "/campaigns/$id/matches?outcome=sent" -H "$(U)"
	[ "$CODE" = 422 ]
	[ "$(jq -c '.detail[0].loc' <<<"$BODY")" = '["query","outcome"]' ]
	# the event's own reply has them too
	pg_sql "INSERT INTO events (event_id, event_type, user_id, occurred_at) VALUES ('o-2', 'purchase', 'u-1', '2026-11-27T10:00:02Z')"
	api GET /events/o-2 -H "$(U)"
	[ "$CODE" = 200 ]
	[ "$(jq -c '.matches | map([.campaign_id, .outcome, .variant, .capped_by])' <<<"$BODY")" = "[[$id,\"capped\",\"A\",\"o-1\"]]" ]
}

@test "cm-httpd: a running cm-match -c CONNINFO sees a PATCHed rule" {
	api POST /campaigns -H "$(A)" -d '{"name":"live","rule":{"event_type":"purchase","where":{"field":"properties.amount","op":"gte","value":1000}}}'
	id=$(jq -r .id <<<"$BODY")
	live_start
	live_send live-1
	api PATCH "/campaigns/$id" -H "$(A)" -d '{"rule":{"event_type":"purchase","where":{"field":"properties.amount","op":"gte","value":100}}}'
	[ "$CODE" = 200 ]
	sleep 1
	live_send live-2
	live_stop
	[ "$(jq -c --argjson id "$id" 'select(.campaign_id == $id) | .event_id' "$T/out")" = '"live-2"' ]
}

@test "cm-httpd: POST /events publishes one event, a JSON array or NDJSON and answers 202 with the ids" {
	rcli DEL cm:events >/dev/null
	api POST /events -H "$(U)" -d '{"event_id":"e-1","event_type":"purchase","user_id":"u-42","occurred_at":"2026-11-27T11:15:00+01:00","properties":{"amount":120.5}}'
	echo "$CODE $BODY"
	[ "$CODE" = 202 ]
	[ "$BODY" = '{"accepted":1,"event_ids":["e-1"]}' ]
	[ "$(rcli XLEN cm:events)" -eq 1 ]
	[ "$(rcli XRANGE cm:events - + | sed -n 3p)" = \
		'{"event_id":"e-1","event_type":"purchase","user_id":"u-42","occurred_at":"2026-11-27T10:15:00Z","properties":{"amount":120.5}}' ]
	api POST /events -H "$(U)" -d "[$(event a-1),{\"event_type\":\"view\",\"user_id\":\"u-7\"}]"
	[ "$CODE" = 202 ]
	[ "$(jq -r .accepted <<<"$BODY")" = 2 ]
	[ "$(jq -r '.event_ids[0]' <<<"$BODY")" = a-1 ]
	[[ "$(jq -r '.event_ids[1]' <<<"$BODY")" =~ ^ev-[0-9a-f]{32}$ ]]
	printf '%s\r\n\n%s\n' "$(event n-1)" '{"type":"track","event":"signed_up","userId":"u-9","messageId":"seg-1"}' >"$T/batch"
	api POST /events -H "$(U)" -H 'Content-Type: application/x-ndjson' --data-binary @"$T/batch"
	[ "$CODE" = 202 ]
	[ "$BODY" = '{"accepted":2,"event_ids":["n-1","seg-1"]}' ]
	[ "$(rcli XLEN cm:events)" -eq 5 ]
	api POST /events -H "$(U)" -d '[]'
	[ "$CODE" = 202 ]
	[ "$BODY" = '{"accepted":0,"event_ids":[]}' ]
	[ "$(rcli XLEN cm:events)" -eq 5 ]
}

@test "cm-httpd: a batch with one bad event is a 422 naming its index and field, and publishes nothing" {
	rcli DEL cm:events >/dev/null
	api POST /events -H "$(U)" -d "[$(event b-0),$(event b-1),$(event b-2),{\"event_type\":\"x\",\"user_id\":\"u\",\"occurred_at\":\"yesterday\"}]"
	[ "$CODE" = 422 ]
	[ "$(jq -c '.detail[0].loc' <<<"$BODY")" = '["body",3,"occurred_at"]' ]
	[[ "$(jq -r '.detail[0].msg' <<<"$BODY")" == *"RFC 3339"* ]]
	[ "$(rcli EXISTS cm:events)" -eq 0 ]
	{ event c-0; echo; event c-1; echo; echo '{"event_type":"bad type","user_id":"u"}'; } >"$T/bad"
	api POST /events -H "$(U)" -H 'Content-Type: application/x-ndjson' --data-binary @"$T/bad"
	[ "$CODE" = 422 ]
	[ "$(jq -c '.detail[0].loc' <<<"$BODY")" = '["body",2,"event_type"]' ]
	api POST /events -H "$(U)" -d '{"event_type":"x","user_id":"u","color":"red"}'
	[ "$CODE" = 422 ]
	[ "$(jq -c '.detail[0].loc' <<<"$BODY")" = '["body","color"]' ]
	api POST /events -H "$(U)" -d '{"user_id":"u"}'
	[ "$(jq -c '.detail[0] | [.loc, .type]' <<<"$BODY")" = '[["body","event_type"],"value_error.missing"]' ]
	api POST /events -H "$(U)" -d '[1]'
	[ "$(jq -c '.detail[0].loc' <<<"$BODY")" = '["body",0]' ]
	api POST /events -H "$(U)" -d '{"event_type":'
	[ "$CODE" = 422 ]
	[ "$(jq -r '.detail[0].type' <<<"$BODY")" = value_error.jsondecode ]
	api POST /events -H "$(U)" -d ''
	[ "$CODE" = 422 ]
	[ "$(rcli EXISTS cm:events)" -eq 0 ]
}

@test "cm-httpd: the events of one request are stored in Redis all together (MULTI/EXEC)" {
	redis-cli -p "$REDIS_PORT" MONITOR >"$T/monitor" &
	bg=$!
	sleep 0.2
	api POST /events -H "$(U)" -d "[$(event t-1),$(event t-2),$(event t-3)]"
	[ "$CODE" = 202 ]
	sleep 0.2
	kill "$bg"
	bg=
	grep -o '"MULTI"\|"EXEC"\|"XADD"' "$T/monitor" | tr '\n' ' ' >"$T/seq"
	cat "$T/seq"
	[ "$(cat "$T/seq")" = '"MULTI" "XADD" "XADD" "XADD" "EXEC" ' ]
}

@test "cm-httpd: bodies over --max-body are 413, from Content-Length before reading, chunked at the end" {
	httpd_start --max-body 4K
	head -c 5000 /dev/zero | tr '\0' ' ' >"$T/big"
	api POST /events -H "$(U)" --data-binary @"$T/big"
	[ "$CODE" = 413 ]
	[ "$BODY" = '{"detail":"Request body too large"}' ]
	api POST /events -H "$(U)" -H 'Transfer-Encoding: chunked' --data-binary @"$T/big"
	[ "$CODE" = 413 ]
	# decided from Content-Length alone: the body is never sent after 100-continue
	code=$(/usr/bin/python3 - "$HTTPD_PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\nExpect: 100-continue\r\n\r\n")
print(s.recv(4096).split(b" ")[1].decode())
PY
)
	[ "$code" = 413 ]
	api POST /events -H "$(U)" -d "$(event small)"
	[ "$CODE" = 202 ]
}

@test "cm-httpd: Redis down is 503 with Retry-After and nothing published" {
	rcli DEL cm:events >/dev/null
	redis_stop
	api POST /events -H "$(U)" -d "[$(event d-1),$(event d-2)]"
	[ "$CODE" = 503 ]
	[ "$BODY" = '{"detail":"Event queue unavailable"}' ]
	[ "$(header Retry-After)" = 1 ]
	# while down, requests fail fast
	start=$(date +%s%N)
	api POST /events -H "$(U)" -d "$(event d-3)"
	[ "$CODE" = 503 ]
	[ $((($(date +%s%N) - start) / 1000000)) -lt 1500 ]
	redis_restart
	[ "$(rcli EXISTS cm:events)" -eq 0 ]
	sleep 0.3
	api POST /events -H "$(U)" -d "$(event d-4)"
	[ "$CODE" = 202 ]
	[ "$(rcli XLEN cm:events)" -eq 1 ]
}

@test "cm-httpd: GET /events/{event_id} returns the stored event and its matches" {
	pg_sql "INSERT INTO events (event_id, event_type, user_id, occurred_at, properties)
	        VALUES ('stored/1', 'purchase', 'u-1', '2026-11-27T10:15:00.5Z', '{\"amount\": 120.5, \"tags\": [\"a\"]}')"
	pg_sql "INSERT INTO matches (campaign_id, event_id, user_id, event_type, occurred_at) VALUES
	        (7, 'stored/1', 'u-1', 'purchase', '2026-11-27T10:15:00.5Z'),
	        (3, 'stored/1', 'u-1', 'purchase', '2026-11-27T10:15:00.5Z'),
	        (3, 'other', 'u-1', 'purchase', '2026-11-27T10:15:00Z')"
	api GET /events/stored%2F1 -H "$(U)"
	echo "$CODE $BODY"
	[ "$CODE" = 200 ]
	[ "$(jq -cS '[.event_id,.event_type,.user_id,.occurred_at,.properties]' <<<"$BODY")" = \
		'["stored/1","purchase","u-1","2026-11-27T10:15:00.500Z",{"amount":120.5,"tags":["a"]}]' ]
	[ "$(jq -c '[.matches[] | [.campaign_id, .outcome]]' <<<"$BODY")" = '[[3,"matched"],[7,"matched"]]' ]
	[[ "$(jq -r '.matches[0].matched_at' <<<"$BODY")" == *Z ]]
	api GET /events/nope -H "$(U)"
	[ "$CODE" = 404 ]
	[ "$(detail)" = "Event not found" ]
	api GET "/events/$(head -c 200 /dev/zero | tr '\0' x)" -H "$(U)"
	[ "$CODE" = 404 ]
	api GET /events/a%00b -H "$(U)"
	[ "$CODE" = 404 ]
	api GET /events/%ff -H "$(U)"
	[ "$CODE" = 404 ]
}

@test "cm-httpd: GET /events/{event_id}/explain: cm-match's explain against the active campaigns, and the stored outcomes with reasons" {
	api POST /campaigns -H "$(A)" -d '{"name":"ex-capped","rule":{"event_type":"ex-buy","where":{"field":"properties.amount","op":"gte","value":100}},
	  "limit":{"per_user":1},"variants":[{"name":"A","weight":1}]}'
	a=$(jq -r .id <<<"$BODY")
	api POST /campaigns -H "$(A)" -d '{"name":"ex-big","rule":{"event_type":"ex-buy","where":{"all":[{"field":"properties.amount","op":"gte","value":1000},{"field":"profile.plan","op":"eq","value":"pro"}]}}}'
	b=$(jq -r .id <<<"$BODY")
	api POST /campaigns -H "$(A)" -d '{"name":"ex-paused","status":"paused","rule":{"event_type":"ex-buy"}}'
	p=$(jq -r .id <<<"$BODY")
	pg_sql "INSERT INTO events (event_id, event_type, user_id, occurred_at, properties) VALUES
	        ('ex-1', 'ex-buy', 'ex-u', '2026-11-27T10:15:00Z', '{\"amount\": 120}'),
	        ('ex-2', 'ex-buy', 'ex-u', '2026-11-28T09:00:00.250Z', '{\"amount\": 150}')" \
		"INSERT INTO matches (campaign_id, event_id, user_id, event_type, occurred_at, outcome, variant, capped_by) VALUES
	        ($a, 'ex-1', 'ex-u', 'ex-buy', '2026-11-27T10:15:00Z', 'matched', 'A', NULL),
	        ($a, 'ex-2', 'ex-u', 'ex-buy', '2026-11-28T09:00:00.250Z', 'capped', 'A', 'ex-1')" \
		"INSERT INTO profiles (user_id, traits) VALUES ('ex-u', '{\"plan\": \"free\"}')"
	api GET /events/ex-2/explain -H "$(U)"
	echo "$CODE $BODY"
	[ "$CODE" = 200 ]
	[ "$(jq -r .event_id <<<"$BODY")" = ex-2 ]
	# the active campaigns of its type (not the paused one), each as cm-match --explain says
	[ "$(jq -c --argjson a "$a" --argjson b "$b" '[.explain[] | select(.campaign_id == $a or .campaign_id == $b) | [.campaign_id, .matched, .outcome, .variant]]' <<<"$BODY")" = \
		"[[$a,true,\"matched\",\"A\"],[$b,false,null,null]]" ]
	[ "$(jq --argjson p "$p" '[.explain[] | select(.campaign_id == $p)] | length' <<<"$BODY")" = 0 ]
	[ "$(jq -c --argjson b "$b" '.explain[] | select(.campaign_id == $b) | .checks[] | select(.check == "where") | [.leaves[] | [.field, .found, .ok]]' <<<"$BODY")" = \
		'[["properties.amount",150,false],["profile.plan","free",false]]' ]
	cm-export --since 2026-11-28T00:00:00Z --until 2026-11-29T00:00:00Z --type ex-buy >"$T/ev"
	cm-match -c "$CM_DATABASE_URL" --profiles "$CM_DATABASE_URL" --explain "$T/ev" >"$T/explain"
	diff <(jq -cS ".explain | sort_by(.campaign_id)" <<<"$BODY") <(jq -cS -s "sort_by(.campaign_id)" "$T/explain")
	# the stored outcome, its reason resolved from capped_by
	[ "$(jq -c '.stored' <<<"$BODY" | jq -c 'map(del(.matched_at))')" = \
		"[{\"campaign_id\":$a,\"outcome\":\"capped\",\"variant\":\"A\",\"capped_by\":\"ex-1\",\"reason\":\"capped: user already matched on 2026-11-27T10:15:00Z by event ex-1\"}]" ]
	api GET /events/ex-1/explain -H "$(U)"
	[ "$(jq -r '.stored[0].reason' <<<"$BODY")" = "matched: variant A" ]
	# a change of the campaigns is seen by the next request
	api PATCH "/campaigns/$b" -H "$(A)" -d '{"rule":{"event_type":"ex-buy","where":{"field":"properties.amount","op":"gte","value":10}}}'
	[ "$CODE" = 200 ]
	api GET /events/ex-2/explain -H "$(U)"
	[ "$(jq -c --argjson b "$b" '.explain[] | select(.campaign_id == $b) | [.matched, .outcome]' <<<"$BODY")" = '[true,"matched"]' ]
	pg_sql "UPDATE campaigns SET status = 'paused' WHERE id = $b"
	api GET /events/ex-2/explain -H "$(U)"
	[ "$(jq --argjson b "$b" '[.explain[] | select(.campaign_id == $b)] | length' <<<"$BODY")" = 0 ]
	# no such event, no token
	api GET /events/nope/explain -H "$(U)"
	[ "$CODE" = 404 ]
	[ "$(detail)" = "Event not found" ]
	api GET /events/a%00b/explain -H "$(U)"
	[ "$CODE" = 404 ]
	api GET /events/ex-2/explain
	[ "$CODE" = 401 ]
}

# bt_events: 60 events of October 2026 (bt-1 .. bt-60, every 2 hours, 5
# users, amount 10 * i), an identify event of bt-u1 at the start, and a
# page of another type, stored once for the backtest tests.
bt_events() {
	[ "$(pg_sql "SELECT count(*) FROM events WHERE event_id LIKE 'bt-%'")" -gt 0 ] && return 0
	pg_sql "INSERT INTO events (event_id, event_type, user_id, occurred_at, properties)
	        SELECT 'bt-' || i, 'bt-buy', 'bt-u' || (i % 5), timestamptz '2026-10-01T00:00:00Z' + i * interval '2 hours',
	               jsonb_build_object('amount', i * 10) FROM generate_series(1, 60) AS i" \
		"INSERT INTO events (event_id, event_type, user_id, occurred_at, properties) VALUES
	        ('bt-id', 'identify', 'bt-u1', '2026-10-01T00:00:00Z', '{\"plan\": \"pro\"}'),
	        ('bt-page', 'bt-page', 'bt-u2', '2026-10-02T00:00:00Z', '{}')"
}

# A campaign to backtest: amount >= 100, two matches per user at most, a
# fifth held out, two variants.
BT_CAMPAIGN='{"id":9001,"name":"bt","rule":{"event_type":"bt-buy","where":{"field":"properties.amount","op":"gte","value":100}},
  "limit":{"per_user":2},"holdout":0.2,"variants":[{"name":"A","weight":1},{"name":"B","weight":1}]}'

@test "cm-httpd: POST /campaigns/backtest counts what cm-export | cm-match --summary counts, per day, with the first matches" {
	bt_events
	api POST /campaigns/backtest -H "$(A)" -d "{\"campaign\":$BT_CAMPAIGN,\"since\":\"2026-10-01T00:00:00Z\",\"until\":\"2026-11-01T00:00:00+00:00\"}"
	echo "$CODE $BODY"
	[ "$CODE" = 200 ]
	[ "$(jq -c '[.complete, .stopped, .events_scanned]' <<<"$BODY")" = '[true,null,62]' ]
	cm-export --since 2026-10-01T00:00:00Z --until 2026-11-01T00:00:00Z >"$T/ev"
	jq -c "[$BT_CAMPAIGN | .status = \"active\"]" <<<'null' >"$T/c.json"
	cm-match -c "$T/c.json" --summary "$T/ev" >"$T/sum"
	cm-match -c "$T/c.json" --emit matches "$T/ev" >"$T/m"
	cat "$T/sum"
	[ "$(jq -c '[.candidates, .outcomes.matched, .outcomes.holdout, .outcomes.capped, .distinct_users]' <<<"$BODY")" = \
		"$(jq -c '[.candidates, .matched, .holdout, .capped, .distinct_users]' "$T/sum")" ]
	[ "$(jq -r .candidates <<<"$BODY")" -eq 51 ]
	[ "$(jq -r .outcomes.capped <<<"$BODY")" -gt 0 ]
	[ "$(jq -r .outcomes.holdout <<<"$BODY")" -gt 0 ]
	# the first 20 candidates are cm-match's match lines, in order
	[ "$(jq -c '.first_matches | map([.campaign_id, .event_id, .user_id, .occurred_at, .outcome, .variant])' <<<"$BODY")" = \
		"$(head -20 "$T/m" | jq -c -s 'map([.campaign_id, .event_id, .user_id, .occurred_at, .outcome, .variant])')" ]
	[ "$(jq -c '[.first_matches[] | select(.outcome == "capped") | has("capped_by")] | unique' <<<"$BODY")" = '[true]' ]
	# per day, in day order, summing up
	[ "$(jq -c '.per_day | map(.day)' <<<"$BODY")" = '["2026-10-01","2026-10-02","2026-10-03","2026-10-04","2026-10-05","2026-10-06"]' ]
	[ "$(jq -c '.per_day' <<<"$BODY")" = "$(jq -c -s 'group_by(.occurred_at[:10]) | map({day: .[0].occurred_at[:10], candidates: length,
		matched: map(select(.outcome == "matched")) | length, holdout: map(select(.outcome == "holdout")) | length,
		capped: map(select(.outcome == "capped")) | length})' "$T/m")" ]
	# nothing was saved
	[ "$(pg_sql "SELECT count(*) FROM campaigns WHERE name = 'bt'")" -eq 0 ]
	# without a range: every stored event; without an id: the next campaign's
	api POST /campaigns/backtest -H "$(A)" -d '{"campaign":{"name":"bt2","rule":{"event_type":"bt-buy"}}}'
	[ "$CODE" = 200 ]
	[ "$(jq -r .candidates <<<"$BODY")" -eq 60 ]
	[ "$(jq -r '.first_matches[0].campaign_id' <<<"$BODY")" -eq "$(($(pg_sql "SELECT coalesce(max(id), 0) FROM campaigns") + 1))" ]
	# a paused campaign is tested as if active; profiles come from the identify events before
	api POST /campaigns/backtest -H "$(A)" -d '{"since":"2026-10-01T00:00:00Z","until":"2026-11-01T00:00:00Z",
	  "campaign":{"name":"bt3","status":"paused","rule":{"event_type":"bt-buy","where":{"field":"profile.plan","op":"eq","value":"pro"}}}}'
	[ "$CODE" = 200 ]
	[ "$(jq -c '[.candidates, .distinct_users, (.first_matches | map(.user_id) | unique)]' <<<"$BODY")" = '[12,1,["bt-u1"]]' ]
}

@test "cm-httpd: a backtest stops at max_events or its time limit, saying so; one at a time (429 with Retry-After)" {
	bt_events
	api POST /campaigns/backtest -H "$(A)" -d "{\"campaign\":$BT_CAMPAIGN,\"since\":\"2026-10-01T00:00:00Z\",\"max_events\":10}"
	[ "$CODE" = 200 ]
	[ "$(jq -c '[.complete, .stopped, .events_scanned]' <<<"$BODY")" = '[false,"event limit",10]' ]
	# exactly the events there are is complete
	api POST /campaigns/backtest -H "$(A)" -d "{\"campaign\":$BT_CAMPAIGN,\"since\":\"2026-10-01T00:00:00Z\",\"until\":\"2026-11-01T00:00:00Z\",\"max_events\":62}"
	[ "$(jq -c '[.complete, .stopped, .events_scanned]' <<<"$BODY")" = '[true,null,62]' ]
	# a table locked for a while: the first backtest waits for it past its
	# time limit, the second is refused meanwhile
	httpd_start --backtest-time 300
	tok=$(login admin adm1n-pass)
	pg_sql "BEGIN" "LOCK TABLE events IN ACCESS EXCLUSIVE MODE" "SELECT pg_sleep(2)" "COMMIT" >/dev/null &
	locker=$!
	for _ in $(seq 40); do
		[ "$(pg_sql "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'events' AND l.mode = 'AccessExclusiveLock' AND l.granted")" -gt 0 ] && break
		sleep 0.05
	done
	curl -s -o "$T/first" --max-time 30 -H "Authorization: Bearer $tok" -d "{\"campaign\":$BT_CAMPAIGN}" "$HTTPD_URL/campaigns/backtest" &
	first=$!
	sleep 0.3
	api POST /campaigns/backtest -H "Authorization: Bearer $tok" -d "{\"campaign\":$BT_CAMPAIGN}"
	[ "$CODE" = 429 ]
	[ "$(header Retry-After)" = 1 ]
	[[ "$(detail)" == *"backtest is running"* ]]
	wait "$first"
	wait "$locker"
	cat "$T/first"
	[ "$(jq -c '[.complete, .stopped, .events_scanned]' "$T/first")" = '[false,"time limit",0]' ]
	# and the next one runs
	api POST /campaigns/backtest -H "Authorization: Bearer $tok" -d "{\"campaign\":$BT_CAMPAIGN,\"max_events\":5}"
	[ "$CODE" = 200 ]
}

@test "cm-httpd: POST /campaigns/backtest: 422 saying where, 403 for a user, 401 without a token" {
	while IFS= read -r line; do
		body=${line% => *}
		loc=${line##* => }
		api POST /campaigns/backtest -H "$(A)" -d "$body"
		echo "$body -> $CODE $BODY"
		[ "$CODE" = 422 ]
		[ "$(jq -c '.detail[0].loc' <<<"$BODY")" = "$loc" ]
	done <<'CASES'
{} => ["body","campaign"]
{"campaign":[]} => ["body","campaign"]
{"campaign":{"rule":{}}} => ["body","campaign","name"]
{"campaign":{"name":"x","rule":{"where":{"field":"a","op":"nope","value":1}}}} => ["body","campaign","rule","where","op"]
{"campaign":{"name":"x","rule":{},"limit":{"cooldown":"7 days"}}} => ["body","campaign","limit","cooldown"]
{"campaign":{"name":"x","rule":{},"variants":[{"name":"A","weight":-1}]}} => ["body","campaign","variants",0,"weight"]
{"campaign":{"name":"x","rule":{},"colour":"red"}} => ["body","campaign","colour"]
{"campaign":{"id":"seven","name":"x","rule":{}}} => ["body","campaign","id"]
{"campaign":{"name":"x","rule":{}},"since":"yesterday"} => ["body","since"]
{"campaign":{"name":"x","rule":{}},"until":5} => ["body","until"]
{"campaign":{"name":"x","rule":{}},"since":"2026-10-02T00:00:00Z","until":"2026-10-01T00:00:00Z"} => ["body","until"]
{"campaign":{"name":"x","rule":{}},"max_events":0} => ["body","max_events"]
{"campaign":{"name":"x","rule":{}},"max_events":10000001} => ["body","max_events"]
{"campaign":{"name":"x","rule":{}},"max_events":1.5} => ["body","max_events"]
{"campaign":{"name":"x","rule":{}},"dry":true} => ["body","dry"]
{"campaign": => ["body",12]
CASES
	api POST /campaigns/backtest -H "$(U)" -d "{\"campaign\":$BT_CAMPAIGN}"
	[ "$CODE" = 403 ]
	api POST /campaigns/backtest -d "{\"campaign\":$BT_CAMPAIGN}"
	[ "$CODE" = 401 ]
	api GET /campaigns/backtest -H "$(U)"
	[ "$CODE" = 422 ]
}

# --- Segment's HTTP Tracking API (/v1) and profiles ---

# B [KEY]: the Authorization header Segment's SDKs send for a write key.
B() { echo "Authorization: Basic $(printf '%s:' "${1:-$WRITE_KEY}" | base64 -w0)"; }
# message: the "message" of the last (Segment) body.
message() { jq -r .message <<<"$BODY"; }
# stream_events: the events in cm:events, one a line, in stream order.
stream_events() { rcli XRANGE cm:events - + | awk 'NR % 3 == 0'; }
# metric NAME{LABELS}: its value in /metrics now (0 when absent).
metric() { curl -s "$HTTPD_URL/metrics" | awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }'; }

@test "cm-httpd: POST /v1/track, identify, page, screen, group and alias are Segment's calls: 200, each an event in the stream" {
	rcli DEL cm:events >/dev/null
	acc=$(metric 'cm_events_accepted_total{source="segment"}')
	t='"timestamp":"2026-11-27T11:15:00+01:00","context":{"ip":"10.0.0.1","library":{"name":"curl"}}'
	api POST /v1/track -H "$(B)" -H 'Content-Type: application/json' \
		-d '{"userId":"u-1","event":"Order Completed","properties":{"total":12.5},"messageId":"s-1",'"$t"'}'
	echo "$CODE $BODY"
	[ "$CODE" = 200 ]
	[ "$BODY" = '{"success":true}' ]
	[ "$(header Content-Type)" = application/json ]
	api POST /v1/identify -H "$(B)" -d '{"userId":"u-1","traits":{"plan":"pro","email":"a@example.org"},"messageId":"s-2",'"$t"'}'
	[ "$CODE" = 200 ]
	api POST /v1/page -H "$(B)" -d '{"userId":"u-1","name":"Home","properties":{"url":"/"},"messageId":"s-3",'"$t"'}'
	[ "$CODE" = 200 ]
	api POST /v1/screen -H "$(B)" -d '{"anonymousId":"a-9","name":"Cart","messageId":"s-4",'"$t"'}'
	[ "$CODE" = 200 ]
	api POST /v1/group -H "$(B)" -d '{"userId":"u-1","groupId":"g-1","traits":{"name":"Acme"},"messageId":"s-5",'"$t"'}'
	[ "$CODE" = 200 ]
	api POST /v1/alias -H "$(B)" -d '{"userId":"u-1","previousId":"a-9","messageId":"s-6",'"$t"'}'
	[ "$CODE" = 200 ]
	wait_log '"route":"/v1/alias","path":"/v1/alias","status":200'
	grep '"route":"/v1/track"' "$HTTPD_LOG" | grep -q '"user":"key:shop"'
	t='"occurred_at":"2026-11-27T10:15:00Z"'
	diff -u - <(stream_events) <<-EOF
		{"event_id":"s-1","event_type":"order_completed","user_id":"u-1",$t,"properties":{"total":12.5}}
		{"event_id":"s-2","event_type":"identify","user_id":"u-1",$t,"properties":{"plan":"pro","email":"a@example.org"}}
		{"event_id":"s-3","event_type":"page_view","user_id":"u-1",$t,"properties":{"name":"Home","url":"/"}}
		{"event_id":"s-4","event_type":"screen_view","user_id":"a-9",$t,"properties":{"name":"Cart"}}
		{"event_id":"s-5","event_type":"group","user_id":"u-1",$t,"properties":{"groupId":"g-1","traits":{"name":"Acme"}}}
		{"event_id":"s-6","event_type":"alias","user_id":"u-1",$t,"properties":{"previousId":"a-9"}}
	EOF
	[ "$(metric 'cm_events_accepted_total{source="segment"}')" -eq $((acc + 6)) ]
	# without messageId the id is derived as cm-ingest derives it: the
	# same track body gets the same id there and here
	body='{"userId":"u-2","event":"Signed Up"}'
	api POST /v1/track -H "$(B)" -d "$body"
	[ "$CODE" = 200 ]
	printf '%s\n' "$body" >"$T/track.jsonl"
	[ "$(stream_events | tail -1 | jq -r .event_id)" = "$(cm-ingest "$T/track.jsonl" | jq -r .event_id)" ]
	# the same body as another call is another event
	api POST /v1/page -H "$(B)" -d "$body"
	[ "$CODE" = 200 ]
	[ "$(stream_events | tail -2 | jq -r .event_id | sort -u | wc -l)" -eq 2 ]
	# GET is not a route of Segment's
	api GET /v1/track -H "$(B)"
	[ "$CODE" = 405 ]
	[ "$(header Allow)" = POST ]
}

@test "cm-httpd: /v1 takes a write key as the HTTP Basic user name or as writeKey in the body; anything else is 401" {
	rcli DEL cm:events >/dev/null
	ev='"userId":"u-1","event":"x"'
	api POST /v1/track -H "Authorization: Basic $(printf '%s' "$WRITE_KEY" | base64 -w0)" -d "{$ev,\"messageId\":\"k-1\"}"
	[ "$CODE" = 200 ]
	api POST /v1/track -d "{$ev,\"messageId\":\"k-2\",\"writeKey\":\"$WRITE_KEY\"}"
	[ "$CODE" = 200 ]
	api POST /v1/batch -d "{\"writeKey\":\"$WRITE_KEY\",\"batch\":[{\"type\":\"track\",$ev,\"messageId\":\"k-3\"}]}"
	[ "$CODE" = 200 ]
	[ "$(stream_events | jq -r .event_id | tr '\n' ' ')" = "k-1 k-2 k-3 " ]
	# no key
	api POST /v1/track -d "{$ev}"
	[ "$CODE" = 401 ]
	[ "$(jq -r .success <<<"$BODY")" = false ]
	[ "$(message)" = 'no write key: send it as the HTTP Basic user name with an empty password, or as "writeKey" in the body' ]
	[ "$(header WWW-Authenticate)" = 'Basic realm="cm-httpd"' ]
	api POST /v1/track -d "{$ev,\"writeKey\":42}"
	[ "$CODE" = 401 ]
	# an unknown key, one deleted before its first use, one not of the shape
	for k in cmk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA "$(cm-admin key add doomed2)" not-a-key; do
		cm-admin key del doomed2 2>/dev/null || true
		api POST /v1/track -H "$(B "$k")" -d "{$ev}"
		[ "$CODE" = 401 ]
		[ "$(message)" = "invalid write key (make one with cm-admin key add)" ]
		api POST /v1/track -d "{$ev,\"writeKey\":\"$k\"}"
		[ "$CODE" = 401 ]
	done
	# a password, credentials that are not base64, a user's token, a key as Bearer
	api POST /v1/track -H "Authorization: Basic $(printf '%s:pw' "$WRITE_KEY" | base64 -w0)" -d "{$ev}"
	[ "$CODE" = 401 ]
	[ "$(message)" = "Authorization: the password must be empty; the write key is the user name" ]
	api POST /v1/track -H "Authorization: Basic ???" -d "{$ev}"
	[ "$CODE" = 401 ]
	[ "$(message)" = 'Authorization: the Basic credentials are not base64 of "WRITE_KEY:"' ]
	for h in "$(U)" "$(A)" "Authorization: Bearer $WRITE_KEY"; do
		api POST /v1/identify -H "$h" -d '{"userId":"u-1","traits":{}}'
		[ "$CODE" = 401 ]
		[[ "$(message)" == "Authorization: expected Basic credentials with the write key as the user name"* ]]
	done
	# the header wins over the body
	api POST /v1/track -H "$(B cmk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA)" -d "{$ev,\"writeKey\":\"$WRITE_KEY\"}"
	[ "$CODE" = 401 ]
	[ "$(rcli XLEN cm:events)" -eq 3 ]
	# and a write key is no user: it reads nothing
	api GET /profiles/u-1 -H "$(B)"
	[ "$CODE" = 401 ]
	[ "$(detail)" = "Not authenticated" ]
}

@test "cm-httpd: a /v1 body that is not JSON, is empty, too large or not a valid call is 400 saying what is wrong, and nothing is published" {
	rcli DEL cm:events >/dev/null
	rej=$(metric 'cm_events_rejected_total{source="segment"}')
	# check BODY MESSAGE [ROUTE]: a 400 with exactly that message
	check() {
		api POST "${3:-/v1/track}" -H "$(B)" -d "$1"
		echo "$CODE $BODY"
		[ "$CODE" = 400 ]
		[ "$(jq -r .success <<<"$BODY")" = false ]
		[ "$(message)" = "$2" ]
	}
	check '{"userId":' "invalid JSON: byte 11: expected a JSON value, found end of input"
	check '' "request body is empty: expected a JSON object"
	check '[{"userId":"u"}]' 'expected a JSON object, got an array (send several calls to /v1/batch as {"batch":[...]})'
	check '"x"' "expected a JSON object"
	check '{"event":"x"}' "field 'userId': missing (a Segment track call needs userId or anonymousId)"
	check '{"userId":"u"}' "field 'event': missing (required)"
	check '{"userId":"u","event":"Order/Done"}' \
		"field 'event': \"Order/Done\" has '/' at byte 6, which an event_type cannot hold ([A-Za-z0-9_.:-]; Segment names are lowercased and spaces become '_')"
	check '{"userId":"u","event":"Identify"}' \
		"field 'event': a track call named \"Identify\" would be an identify event, which sets the user's traits; send an identify call instead"
	check '{"userId":"u","event":"x","timestamp":"yesterday"}' "field 'timestamp': expected an RFC 3339 time, got \"yesterday\""
	check '{"userId":"u","event":"x","properties":{"a":"\u0000"}}' "field 'properties.a': must not contain NUL (\\u0000), got \"\\u0000\""
	check '{"userId":"u","traits":[1]}' "field 'traits': expected an object, got an array" /v1/identify
	check '{"userId":"u","groupId":""}' "field 'groupId': expected a string of 1-128 bytes, got \"\"" /v1/group
	check '{"userId":"u"}' "field 'previousId': missing (a Segment alias call needs previousId)" /v1/alias
	check '{"type":"track","userId":"u","event":"x"}' "field 'type': expected \"page\" (the call sent), got \"track\"" /v1/page
	# 32 KB a call
	big=$(printf '{"userId":"u","event":"x","properties":{"pad":"%s"}}' "$(head -c 40000 /dev/zero | tr '\0' a)")
	printf '%s' "$big" >"$T/big"
	api POST /v1/track -H "$(B)" --data-binary @"$T/big"
	[ "$CODE" = 400 ]
	[ "$(message)" = "request body too large: a call takes at most 32768 bytes (32 KB, Segment's limit); this one is 40050 bytes" ]
	[ "$(rcli EXISTS cm:events)" -eq 0 ]
	[ "$(metric 'cm_events_rejected_total{source="segment"}')" -eq $((rej + 15)) ]
	grep -qx "cm_http_requests_total{route=\"/v1/track\",method=\"POST\",status=\"400\"} [0-9]*" <(curl -s "$HTTPD_URL/metrics")
}

@test "cm-httpd: POST /v1/batch publishes all its calls or none; 500 KB, 32 KB an event, 2500 events" {
	rcli DEL cm:events >/dev/null
	api POST /v1/batch -H "$(B)" -d '{"batch":[
		{"type":"track","userId":"u-1","event":"Product Viewed","messageId":"b-1","timestamp":"2026-11-27T10:15:00Z","properties":{"sku":"x"}},
		{"type":"identify","userId":"u-1","messageId":"b-2","timestamp":"2026-11-27T10:15:01Z","traits":{"plan":"pro"}},
		{"type":"page","anonymousId":"a-1","messageId":"b-3","timestamp":"2026-11-27T10:15:02Z","name":"Pricing"}],
		"context":{"library":{"name":"x"}},"sentAt":"2026-11-27T10:15:03Z"}'
	echo "$CODE $BODY"
	[ "$CODE" = 200 ]
	[ "$BODY" = '{"success":true}' ]
	[ "$(stream_events | jq -c '[.event_id, .event_type, .user_id]' | tr -d '\n')" = \
		'["b-1","product_viewed","u-1"]["b-2","identify","u-1"]["b-3","page_view","a-1"]' ]
	# one bad call refuses the batch, naming it
	rej=$(metric 'cm_events_rejected_total{source="segment"}')
	check() {
		api POST /v1/batch -H "$(B)" --data-binary "$1"
		echo "$CODE $BODY"
		[ "$CODE" = 400 ]
		[ "$(message)" = "$2" ]
	}
	check '{"batch":[{"type":"track","userId":"u","event":"a"},{"type":"track","userId":"u","event":"b"},{"type":"track","userId":"u"}]}' \
		"batch[2]: field 'event': missing (required)"
	check '{"batch":[{"userId":"u","event":"a"}]}' "batch[0]: field 'type': missing (required: track, identify, page, screen, group or alias)"
	check '{"batch":[{"type":"purchase","userId":"u"}]}' "batch[0]: field 'type': expected track, identify, page, screen, group or alias, got \"purchase\""
	check '{"batch":[7]}' "batch[0]: expected a JSON object, got 7"
	check '{"batch":{}}' "field 'batch': expected an array of calls"
	check '{"calls":[]}' "field 'batch': missing (required: an array of calls)"
	[ "$(metric 'cm_events_rejected_total{source="segment"}')" -eq $((rej + 3 + 1 + 1 + 1 + 1 + 1)) ]
	# 32 KB an event, 500 KB a batch, 2500 events
	pad=$(head -c 33000 /dev/zero | tr '\0' a)
	printf '{"batch":[{"type":"track","userId":"u","event":"a"},{"type":"track","userId":"u","event":"b","properties":{"p":"%s"}}]}' "$pad" >"$T/b1"
	api POST /v1/batch -H "$(B)" --data-binary @"$T/b1"
	echo "$BODY"
	[ "$CODE" = 400 ]
	[ "$(message)" = "batch[1]: the event is 33063 bytes; an event takes at most 32768 bytes (32 KB, Segment's limit)" ]
	jq -nc --arg p "${pad:0:30000}" '{batch: [range(18) | {type: "track", userId: "u", event: "a", properties: {p: $p}}]}' >"$T/b2"
	api POST /v1/batch -H "$(B)" --data-binary @"$T/b2"
	[ "$CODE" = 400 ]
	[[ "$(message)" == "request body too large: a batch takes at most 512000 bytes (500 KB, Segment's limit); this one is "*" bytes" ]]
	jq -nc '{batch: [range(2501) | {type: "track", userId: "u", event: "a"}]}' >"$T/b3"
	api POST /v1/batch -H "$(B)" --data-binary @"$T/b3"
	[ "$CODE" = 400 ]
	[ "$(message)" = "field 'batch': 2501 events; a batch takes at most 2500 (Segment's limit)" ]
	jq -nc '{batch: [range(2500) | {type: "track", userId: "u", event: "a", messageId: "m-\(.)"}]}' >"$T/b4"
	api POST /v1/batch -H "$(B)" --data-binary @"$T/b4"
	[ "$CODE" = 200 ]
	[ "$(rcli XLEN cm:events)" -eq 2503 ]
	api POST /v1/batch -H "$(B)" -d '{"batch":[]}'
	[ "$CODE" = 200 ]
	[ "$(rcli XLEN cm:events)" -eq 2503 ]
}

@test "cm-httpd: a /v1 body over --max-body is Segment's 400, not the 413 of the other routes" {
	httpd_start --max-body 8K
	head -c 9000 /dev/zero | tr '\0' ' ' >"$T/big"
	api POST /v1/batch -H "$(B)" --data-binary @"$T/big"
	[ "$CODE" = 400 ]
	[ "$BODY" = '{"success":false,"message":"request body too large: this server takes at most 8192 bytes (cm-httpd --max-body)"}' ]
	api POST /v1/track -H "$(B)" -H 'Transfer-Encoding: chunked' --data-binary @"$T/big"
	[ "$CODE" = 400 ]
	api POST /events -H "$(U)" --data-binary @"$T/big"
	[ "$CODE" = 413 ]
	wait_log '"route":"/v1/track","path":"/v1/track","status":400'
	httpd_stop
	HTTPD_URL=$MAIN_URL
	# over the default --max-body (1M): Segment's limit is named
	head -c 1100000 /dev/zero | tr '\0' ' ' >"$T/big"
	api POST /v1/batch -H "$(B)" --data-binary @"$T/big"
	[ "$CODE" = 400 ]
	[ "$(message)" = "request body too large: a batch takes at most 512000 bytes (500 KB, Segment's limit)" ]
}

@test "cm-httpd: Redis down is 503 with Retry-After on /v1, in Segment's shape, and nothing published" {
	rcli DEL cm:events >/dev/null
	redis_stop
	api POST /v1/batch -H "$(B)" -d '{"batch":[{"type":"track","userId":"u","event":"a"},{"type":"identify","userId":"u"}]}'
	[ "$CODE" = 503 ]
	[ "$BODY" = '{"success":false,"message":"Event queue unavailable"}' ]
	[ "$(header Retry-After)" = 1 ]
	redis_restart
	sleep 0.3
	[ "$(rcli EXISTS cm:events)" -eq 0 ]
	api POST /v1/identify -H "$(B)" -d '{"userId":"u","traits":{"a":1}}'
	[ "$CODE" = 200 ]
	[ "$(rcli XLEN cm:events)" -eq 1 ]
}

@test "cm-httpd: a retried /v1 call (the same messageId) is one event once stored; identify events are stored with their traits" {
	rcli DEL cm:events >/dev/null
	pg_sql "DELETE FROM events WHERE event_id LIKE 'r-%'"
	for _ in 1 2; do
		api POST /v1/track -H "$(B)" -d '{"userId":"u-r","event":"Order Completed","messageId":"r-1","timestamp":"2026-11-27T10:15:00Z"}'
		[ "$CODE" = 200 ]
		api POST /v1/identify -H "$(B)" -d '{"userId":"u-r","traits":{"plan":"pro"},"messageId":"r-2","timestamp":"2026-11-27T10:15:00Z"}'
		[ "$CODE" = 200 ]
	done
	[ "$(rcli XLEN cm:events)" -eq 4 ]
	cm-consume | cm-match -c "$CM_DATABASE_URL" | cm-store --ack
	[ "$(pg_sql "SELECT string_agg(event_id || ' ' || event_type || ' ' || properties::text, ', ' ORDER BY event_id) FROM events WHERE event_id LIKE 'r-%'")" = \
		'r-1 order_completed {}, r-2 identify {"plan": "pro"}' ]
	[ "$(rcli XPENDING cm:events cm-workers | head -1)" = 0 ]
}

@test "cm-httpd: GET /profiles/{user_id}: the user's traits, 404 for a user without a profile, 401 without a token" {
	pg_sql "SELECT cm_merge_profiles('[
		{\"user_id\":\"u-p1\",\"occurred_at\":\"2026-11-27T10:00:00Z\",\"event_id\":\"i-1\",\"traits\":{\"plan\":\"free\",\"country\":\"DE\",\"age\":40}},
		{\"user_id\":\"u-p1\",\"occurred_at\":\"2026-11-27T11:00:00Z\",\"event_id\":\"i-2\",\"traits\":{\"plan\":\"pro\",\"age\":null,\"address\":{\"city\":\"Köln\"}}},
		{\"user_id\":\"a/b c\",\"occurred_at\":\"2026-11-27T10:00:00Z\",\"event_id\":\"i-3\",\"traits\":{\"x\":1}}]')" >/dev/null
	api GET /profiles/u-p1 -H "$(U)"
	echo "$CODE $BODY"
	[ "$CODE" = 200 ]
	[ "$(jq -c 'del(.updated_at)' <<<"$BODY")" = '{"user_id":"u-p1","traits":{"plan":"pro","address":{"city":"Köln"},"country":"DE"}}' ]
	[[ "$(jq -r .updated_at <<<"$BODY")" =~ ^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$ ]]
	[ "$(jq -r .traits.address.city <<<"$BODY")" = Köln ]
	api GET '/profiles/a%2Fb%20c' -H "$(A)"
	[ "$CODE" = 200 ]
	[ "$(jq -c . <<<"$BODY" | jq -c 'del(.updated_at)')" = '{"user_id":"a/b c","traits":{"x":1}}' ]
	for p in nobody a%00b "$(printf 'x%.0s' $(seq 129))" "$(printf '%%41%.0s' $(seq 100))" %ff; do
		api GET "/profiles/$p" -H "$(U)"
		[ "$CODE" = 404 ]
		[ "$BODY" = '{"detail":"Not Found"}' ]
	done
	api GET /profiles/u-p1
	[ "$CODE" = 401 ]
	[ "$(detail)" = "Not authenticated" ]
	api GET /profiles/u-p1 -H "Authorization: Bearer $WRITE_KEY"
	[ "$CODE" = 401 ]
	api DELETE /profiles/u-p1 -H "$(A)"
	[ "$CODE" = 405 ]
}

@test "cm-httpd: Segment's analytics-node SDK sends tracks and identifies; each is in the stream with its messageId, and stored" {
	sdk=$TOP/tests/node/segment-send.js
	[ -d "$TOP/tests/node/node_modules/@segment/analytics-node" ] || {
		echo "no @segment/analytics-node: run 'npm ci' in tests/node" >&2
		return 1
	}
	rcli DEL cm:events >/dev/null
	node "$sdk" "$HTTPD_URL" "$WRITE_KEY" 20 sdk >"$T/sent" 2>"$T/sdk.err"
	cat "$T/sdk.err"
	[ "$(wc -l <"$T/sent")" -eq 41 ]
	# batched by the SDK (flushAt 7), every batch taken
	[ "$(grep -c '^status 200$' "$T/sdk.err")" -ge 6 ]
	[ -z "$(grep -v '^status 200$' "$T/sdk.err")" ]
	# every message the SDK sent is in the stream once, its messageId the event_id
	jq -r '.messageId' "$T/sent" | sort >"$T/want"
	stream_events | jq -r .event_id | sort >"$T/got"
	diff -u "$T/want" "$T/got"
	[ "$(stream_events | jq -r .event_type | sort | uniq -c | awk '{print $2 ":" $1}' | tr '\n' ' ')" = \
		"identify:20 order_completed:20 page_view:1 " ]
	stream_events | jq -c 'select(.event_type == "identify" and .user_id == "sdk-3") | .properties' | grep -qx '{"plan":"pro","seq":3}'
	stream_events | jq -c 'select(.event_type == "order_completed" and .user_id == "sdk-2") | .properties' | grep -qx '{"order":2,"total":21}'
	# stored by a worker's stages: every event once, the identify events with their traits
	pg_sql "DELETE FROM events WHERE user_id LIKE 'sdk-%'"
	cm-consume | cm-match -c "$CM_DATABASE_URL" | cm-store --ack
	[ "$(pg_sql "SELECT count(*) FROM events WHERE user_id LIKE 'sdk-%'")" -eq 41 ]
	[ "$(pg_sql "SELECT properties->>'plan' FROM events WHERE event_type = 'identify' AND user_id = 'sdk-5'")" = pro ]
	# (the profiles the identify events build are cm-store's: asserted where it builds them)
}

@test "cm-httpd: analytics-node retries while Redis is down (503 with Retry-After); every event arrives once" {
	rcli DEL cm:events >/dev/null
	redis_stop
	node "$TOP/tests/node/segment-send.js" "$HTTPD_URL" "$WRITE_KEY" 3 retry >"$T/sent" 2>"$T/sdk.err" &
	bg=$!
	for _ in $(seq 100); do
		grep -q '^status 503$' "$T/sdk.err" && break
		sleep 0.05
	done
	grep -q '^status 503$' "$T/sdk.err"
	redis_restart
	wait "$bg"
	st=$?
	bg=
	cat "$T/sdk.err"
	[ "$st" -eq 0 ]
	tail -1 "$T/sdk.err" | grep -qx 'status 200'
	[ "$(wc -l <"$T/sent")" -eq 7 ]
	diff -u <(jq -r .messageId "$T/sent" | sort) <(stream_events | jq -r .event_id | sort)
}

@test "cm-httpd: GET /metrics: every family, valid for promtool, counting requests, events, the stream and workers" {
	httpd_start
	rcli DEL cm:events cm:events:dead cm:events:workers >/dev/null
	api POST /events -H "$(U)" -d "[$(event m-1),$(event m-2)]"
	[ "$CODE" = 202 ]
	api POST /events -H "$(U)" -d "[$(event m-3),{\"user_id\":\"u\"},$(event m-4)]"
	[ "$CODE" = 422 ]
	api GET /nope
	rcli XGROUP CREATE cm:events cm-workers 0 >/dev/null
	rcli XREADGROUP GROUP cm-workers c1 COUNT 1 STREAMS cm:events '>' >/dev/null
	# a worker's report, as wmetrics.c writes it
	rcli HSET cm:events:worker:w-1 consumed 7 stored 5 campaign:3 4 >/dev/null
	rcli ZADD cm:events:workers "$(date +%s%3N)" w-1 >/dev/null
	rcli ZADD cm:events:workers 1000 w-gone >/dev/null
	api GET /metrics
	[ "$CODE" = 200 ]
	[ "$(header Content-Type)" = "text/plain; version=0.0.4; charset=utf-8" ]
	printf '%s\n' "$BODY" >"$T/metrics"
	run promtool check metrics <"$T/metrics"
	echo "$output"
	[ "$status" -eq 0 ]
	python3 "$TOP/tests/tools/promcheck.py" "$T/metrics"
	for f in "cm_http_requests_total counter" "cm_http_request_duration_seconds histogram" \
		"cm_events_accepted_total counter" "cm_events_rejected_total counter" \
		"cm_stream_length gauge" "cm_stream_pending gauge" "cm_stream_lag gauge" \
		"cm_dead_letter_length gauge" "cm_worker_up gauge" "cm_worker_last_seen_seconds gauge" \
		"cm_worker_consumed_total counter" "cm_worker_stored_total counter" \
		"cm_worker_publish_to_commit_seconds histogram" "cm_campaign_matches_total counter" \
		"cm_build_info gauge"; do
		grep -qx "# TYPE $f" "$T/metrics" || { echo "missing: $f"; return 1; }
	done
	grep -qx 'cm_http_requests_total{route="/events",method="POST",status="202"} 1' "$T/metrics"
	grep -qx 'cm_http_requests_total{route="/events",method="POST",status="422"} 1' "$T/metrics"
	grep -qx 'cm_http_requests_total{route="unmatched",method="GET",status="404"} 1' "$T/metrics"
	grep -q '^cm_http_request_duration_seconds_count{route="/events"} 2$' "$T/metrics"
	grep -qx 'cm_events_accepted_total{source="api"} 2' "$T/metrics"
	grep -qx 'cm_events_rejected_total{source="api"} 3' "$T/metrics"
	grep -qx 'cm_stream_length{stream="cm:events"} 2' "$T/metrics"
	grep -qx 'cm_dead_letter_length{stream="cm:events"} 0' "$T/metrics"
	grep -qx 'cm_stream_pending{stream="cm:events",group="cm-workers"} 1' "$T/metrics"
	grep -qx 'cm_stream_lag{stream="cm:events",group="cm-workers"} 1' "$T/metrics"
	grep -qx 'cm_worker_up{consumer="w-1"} 1' "$T/metrics"
	grep -qx 'cm_worker_consumed_total{consumer="w-1"} 7' "$T/metrics"
	grep -qx 'cm_campaign_matches_total{campaign_id="3"} 4' "$T/metrics"
	grep -qx "cm_build_info{version=\"$(cm-httpd --version | cut -d' ' -f2)\"} 1" "$T/metrics"
	# a worker not heard from within --worker-ttl is gone
	run ! grep -q 'w-gone' "$T/metrics"
	[ "$(rcli ZSCORE cm:events:workers w-gone)" = "" ]
	# Redis down: the families read from it are left out, the rest is served
	redis_stop
	api GET /metrics
	[ "$CODE" = 200 ]
	grep -q '^cm_http_requests_total' <<<"$BODY"
	run ! grep -q '^cm_stream_length' <<<"$BODY"
	wait_log '"metrics left out of the scrape"'
}

@test "cm-httpd: GET /openapi.json and /docs serve the embedded documents" {
	api GET /openapi.json
	[ "$CODE" = 200 ]
	[ "$(header Content-Type)" = application/json ]
	cmp <(printf '%s' "$BODY") <(printf '%s' "$(cat "$TOP/share/openapi.json")")
	etag=$(header ETag)
	api GET /openapi.json -H "If-None-Match: $etag"
	[ "$CODE" = 304 ]
	api GET /docs
	[ "$CODE" = 200 ]
	[[ "$(header Content-Type)" == text/html* ]]
	api GET /docs/docs.js
	[ "$CODE" = 200 ]
	api GET /docs/nope.js
	[ "$CODE" = 404 ]
	# HEAD as for GET, as Starlette does
	api HEAD /health
	[ "$CODE" = 200 ]
	[ "$(header Content-Type)" = application/json ]
	# every route the server has is in the document
	for p in /auth/token /auth/users/me /campaigns "/campaigns/{id}" "/campaigns/{id}/matches" \
		"/campaigns/{id}/audit" /events "/events/{event_id}" /health /metrics /openapi.json /docs; do
		jq -e --arg p "$p" '.paths | has($p)' "$TOP/share/openapi.json" >/dev/null || { echo "$p"; return 1; }
	done
}

@test "cm-httpd: one JSON log line per request, with the trace id from traceparent or X-Request-Id" {
	api GET /health -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
	[ "$(header X-Request-Id)" = 4bf92f3577b34da6a3ce929d0e0e4736 ]
	wait_log '"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"'
	line=$(grep '"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"' "$HTTPD_LOG")
	echo "$line"
	[ "$(jq -r '[.level,.method,.route,.path,.status,.user,.remote] | map(tostring) | join(" ")' <<<"$line")" = \
		"info GET /health /health 200 null 127.0.0.1" ]
	[[ "$(jq -r .time <<<"$line")" =~ ^20[0-9-]+T[0-9:.]+Z$ ]]
	jq -e '.duration_ms >= 0' <<<"$line" >/dev/null
	api GET /campaigns/42/matches -H "$(U)" -H 'X-Request-Id: req-"<42>"'
	[ "$(header X-Request-Id)" = req-42 ]
	wait_log '"trace_id":"req-42"'
	line=$(grep '"trace_id":"req-42"' "$HTTPD_LOG")
	[ "$(jq -r '[.route,.path,.user] | join(" ")' <<<"$line")" = "/campaigns/{id}/matches /campaigns/42/matches bob" ]
	api GET /nope/x%ffy
	id=$(header X-Request-Id)
	[[ "$id" =~ ^[0-9a-f]{32}$ ]]
	wait_log "\"trace_id\":\"$id\""
	grep "\"trace_id\":\"$id\"" "$HTTPD_LOG" | jq -e '.route == "unmatched"' >/dev/null
	# every line of the log is JSON
	jq -e . "$HTTPD_LOG" >/dev/null
}

@test "cm-httpd: --log-level warning leaves out the request lines" {
	httpd_start --log-level warning
	api GET /health
	[ "$CODE" = 200 ]
	sleep 0.1
	run grep -c '"route"' "$HTTPD_LOG"
	[ "$output" = 0 ]
}

@test "cm-httpd: a client sending one byte a second is cut off after --timeout" {
	httpd_start --timeout 2
	took=$(/usr/bin/python3 - "$HTTPD_PORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
t0 = time.time()
try:
    for b in b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 100:
        s.send(bytes([b]))
        time.sleep(0.5)
        s.settimeout(0.01)
        try:
            if s.recv(1) == b"":
                break
        except socket.timeout:
            pass
        s.settimeout(10)
except (BrokenPipeError, ConnectionResetError):
    pass
print(round(time.time() - t0))
PY
)
	echo "cut off after $took s"
	[ "$took" -ge 2 ]
	[ "$took" -le 4 ]
	wait_log "did not arrive in time"
	api GET /health
	[ "$CODE" = 200 ]
	# an idle keep-alive connection is closed too
	took=$(/usr/bin/python3 - "$HTTPD_PORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
t0 = time.time()
s.recv(1)
print(round(time.time() - t0))
PY
)
	[ "$took" -ge 2 ]
	[ "$took" -le 4 ]
}

@test "cm-httpd: connections over --max-connections and --max-per-ip are refused; the server goes on" {
	# one thread: libmicrohttpd divides --max-connections among its threads
	httpd_start --max-connections 20 --max-per-ip 10 --threads 1
	# (httpd_start's probe connection must be gone from the counts)
	sleep 1
	run /usr/bin/python3 - "$HTTPD_PORT" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
def opened(src, n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        socks.append(s)
    return socks
def alive(s):
    s.settimeout(2)
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        return s.recv(12).startswith(b"HTTP/1.1")
    except OSError:
        return False
# per address: 10 from 127.0.0.1 are served, more are closed
a = opened("127.0.0.1", 15)
print("127.0.0.1 served:", sum(alive(s) for s in a))
# other addresses still get in, up to the overall limit
b = opened("127.0.0.2", 10) + opened("127.0.0.3", 10)
print("others served:", sum(alive(s) for s in b))
for s in a + b:
    s.close()
time.sleep(0.5)
c = opened("127.0.0.1", 1)
print("after:", sum(alive(s) for s in c))
PY
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "127.0.0.1 served: 10" ]
	[ "${lines[1]}" = "others served: 10" ]
	[ "${lines[2]}" = "after: 1" ]
}

@test "cm-httpd: malformed HTTP gets 400 (or the connection closed), never a crash" {
	run /usr/bin/python3 - "$HTTPD_PORT" <<'PY'
import socket, sys
port = int(sys.argv[1])
cases = [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
    b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    b"POST /events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n" + b"X-A: " + b"a" * 40000 + b"\r\n\r\n",
    b"\x00\x01\x02\xff\r\n\r\n",
]
for c in cases:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(c)
    try:
        r = s.recv(64)
    except OSError:
        r = b""
    print(r.split(b"\r\n")[0].decode(errors="replace") or "closed")
    s.close()
PY
	echo "$output"
	[ "$status" -eq 0 ]
	for l in "${lines[@]}"; do
		[[ "$l" =~ ^HTTP/1\.[01]\ (400|413|414|431|505)\  ]] || [ "$l" = closed ]
	done
	api GET /health
	[ "$CODE" = 200 ]
}

@test "cm-httpd: SIGTERM finishes the request in flight, then exits 0" {
	httpd_start
	# Redis holds writes for a moment: the request is in flight when
	# SIGTERM arrives.
	rcli CLIENT PAUSE 1500 WRITE >/dev/null
	curl -s -o "$T/resp" -w '%{http_code}' --max-time 20 -H "$(U)" -d "$(event inflight-1)" \
		"$HTTPD_URL/events" >"$T/code" &
	bg=$!
	sleep 0.5
	kill -TERM "$HTTPD_PID"
	sleep 0.2
	# no new connections once stopping
	run curl -s --max-time 2 -o /dev/null "$HTTPD_URL/health"
	[ "$status" -ne 0 ]
	wait "$bg"
	bg=
	[ "$(cat "$T/code")" = 202 ]
	[ "$(jq -r '.event_ids[0]' "$T/resp")" = inflight-1 ]
	httpd_stop
	[ "$HTTPD_STATUS" -eq 0 ]
	grep -q '"msg":"stopped"' "$HTTPD_LOG"
}

@test "cm-httpd: a burst of concurrent requests all get answers" {
	rcli DEL cm:events >/dev/null
	for i in $(seq 200); do
		curl -s -o /dev/null -w '%{http_code}\n' -H "$(U)" -d "$(event burst-$i)" "$HTTPD_URL/events" &
	done >"$T/codes"
	wait
	[ "$(sort "$T/codes" | uniq -c | awk '{print $1 " " $2}')" = "200 202" ]
	[ "$(rcli XLEN cm:events)" -eq 200 ]
}

@test "cm-httpd: IPv6 --listen [::1]:PORT" {
	/usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0))'
	port=$((MAIN_PORT + 2))
	cm-httpd --listen "[::1]:$port" --jwt-secret-file "$JWT_SECRET_FILE" 2>"$T/v6.log" 3>&- &
	bg=$!
	for _ in $(seq 100); do
		curl -s -g -o /dev/null "http://[::1]:$port/health" && break
		sleep 0.05
	done
	[ "$(curl -s -g "http://[::1]:$port/health" | jq -r .status)" = ok ]
	kill -TERM "$bg"
	wait "$bg"
	bg=
}

@test "cm-httpd: random and mutated requests for 20 s: no crash, /health still answers" {
	httpd_start --max-body 64K --timeout 5
	run /usr/bin/python3 - "$HTTPD_PORT" "$USER_TOKEN" "${CM_FUZZ_SECONDS:-20}" <<'PY'
import random, socket, sys, time
port, token, secs = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
rnd = random.Random(7)
seeds = [
    b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() +
    b"\r\nContent-Type: application/json\r\nContent-Length: 61\r\n\r\n"
    b'{"event_id":"f","event_type":"t","user_id":"u","properties":{}}',
    b"POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
    b"Content-Length: 60\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nx\r\n--b--",
    b"PATCH /campaigns/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() +
    b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n0\r\n\r\n",
    b"GET /campaigns?limit=5&offset=%zz&status=a+b HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x.y.z\r\n\r\n",
    b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: 5\r\n\r\n[[[[[",
    b"GET /events/%41%2f%00 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() + b"\r\n\r\n",
]
def mutate(b):
    b = bytearray(b)
    for _ in range(rnd.randint(1, 8)):
        op = rnd.randrange(5)
        i = rnd.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(i, len(b) - 1)] = rnd.randrange(256)
        elif op == 1:
            b[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16)))
        elif op == 2 and b:
            del b[i:i + rnd.randint(1, 16)]
        elif op == 3:
            b[i:i] = rnd.choice([b"\r\n", b":", b"%", b"\x00", b"{", b"9" * 30, b" "])
        else:
            b = b[:i]
    return bytes(b)
n = 0
end = time.time() + secs
while time.time() < end:
    if rnd.random() < 0.9:
        msg = mutate(rnd.choice(seeds))
    else:
        msg = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 300)))
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(msg)
        if rnd.random() < 0.5:
            s.shutdown(socket.SHUT_WR)
        s.settimeout(0.3)
        try:
            s.recv(4096)
        except OSError:
            pass
        s.close()
    except ConnectionRefusedError:
        print("refused: the server is gone")
        sys.exit(1)
    except OSError:
        pass
    n += 1
print(n, "requests")
PY
	echo "$output"
	[ "$status" -eq 0 ]
	kill -0 "$HTTPD_PID"
	api GET /health
	[ "$CODE" = 200 ]
	run grep -c 'AddressSanitizer\|runtime error' "$HTTPD_LOG"
	[ "$output" = 0 ]
	httpd_stop
	[ "$HTTPD_STATUS" -eq 0 ]
}

@test "cm-httpd: secrets, passwords, tokens and write keys never appear in the log" {
	# (runs last: the logs hold every request of this file)
	wait_log '"route"'
	secret=$(cat "$JWT_SECRET_FILE")
	for s in "$secret" adm1n-pass b0b-pass wrong-1 wrong-2 victim-pass gone-pass "$WRITE_KEY" \
		"$ADMIN_TOKEN" "$USER_TOKEN" "${WRITE_KEY#cmk_}" "${ADMIN_TOKEN##*.}" \
		"$(printf '%s:' "$WRITE_KEY" | base64 -w0)"; do
		for f in "$MAIN_LOG" "$BATS_FILE_TMPDIR"/httpd.*.log; do
			[ -f "$f" ] || continue
			if grep -qF -- "$s" "$f"; then
				echo "found '${s:0:12}...' in $f"
				return 1
			fi
		done
	done
	run grep -ci 'authorization\|bearer ' "$MAIN_LOG"
	[ "$output" = 0 ]
}
