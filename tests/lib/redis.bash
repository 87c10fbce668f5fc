# A throwaway redis-server for the tool tests: an odd port derived from the
# shell's pid, data and AOF under a temporary directory, stopped by its pid.
#
#   load lib/redis
#   setup_file()    { redis_start; }
#   teardown_file() { redis_cleanup; }   # runs also when tests failed
#
# redis_start exports CM_REDIS_URL (redis://127.0.0.1:PORT), REDIS_PORT,
# REDIS_SOCK (a unix socket, for unix:// URLs) and REDIS_DIR; redis_restart
# stops and starts the same server on the same port and directory (the AOF
# keeps the data); redis_kill kills it hard; rcli runs redis-cli against it.

REDIS_SERVER=${REDIS_SERVER:-/usr/bin/redis-server}
export REDIS_SERVER

# rcli ARGS: redis-cli against the test server, raw (unquoted) output;
# rcli_raw is the same (an older name).
rcli() {
	redis-cli -p "$REDIS_PORT" --raw "$@"
}
rcli_raw() {
	rcli "$@"
}

# _redis_port_free PORT: true when nothing accepts connections on PORT.
_redis_port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# _redis_launch: starts the server on $REDIS_PORT in $REDIS_DIR and waits until
# it answers PING (or fails after about 5 s).
_redis_launch() {
	local i pid
	rm -f "$REDIS_DIR/redis.pid"
	"$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 \
		--unixsocket "$REDIS_SOCK" --unixsocketperm 700 \
		--dir "$REDIS_DIR" --appendonly yes --appendfsync everysec --save "" \
		--daemonize yes --pidfile "$REDIS_DIR/redis.pid" \
		--logfile "$REDIS_DIR/redis.log" --protected-mode no \
		>/dev/null 2>&1 </dev/null 3>&- || return 1
	for ((i = 0; i < 100; i++)); do
		if [ -s "$REDIS_DIR/redis.pid" ]; then
			pid=$(cat "$REDIS_DIR/redis.pid")
			if ! kill -0 "$pid" 2>/dev/null; then
				return 1
			fi
			if [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; then
				REDIS_PID=$pid
				export REDIS_PID
				return 0
			fi
		elif grep -q 'Address already in use\|Could not create server' \
			"$REDIS_DIR/redis.log" 2>/dev/null; then
			return 1
		fi
		sleep 0.05
	done
	return 1
}

# redis_start: picks a free port in 30000-39999 from $$ and starts the server.
redis_start() {
	local base try
	# Short path: a unix socket path must fit in 107 bytes.
	REDIS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cm-redis.XXXXXX")
	REDIS_SOCK=$REDIS_DIR/redis.sock
	base=$((30000 + ($$ * 7) % 10000))
	for ((try = 0; try < 20; try++)); do
		REDIS_PORT=$((30000 + (base - 30000 + try * 97) % 10000))
		# Odd ports only, away from the usual even defaults.
		[ $((REDIS_PORT % 2)) -eq 1 ] || REDIS_PORT=$((REDIS_PORT + 1))
		_redis_port_free "$REDIS_PORT" || continue
		if _redis_launch; then
			CM_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
			export REDIS_DIR REDIS_SOCK REDIS_PORT CM_REDIS_URL
			return 0
		fi
		redis_stop
	done
	echo "redis_start: could not start $REDIS_SERVER (see $REDIS_DIR/redis.log)" >&2
	cat "$REDIS_DIR/redis.log" >&2 2>/dev/null
	return 1
}

# redis_kill [SIGNAL]: signals the server (default KILL) and waits for it to go.
redis_kill() {
	local sig=${1:-KILL} pid i
	# The pid file first: a restart in a background subshell changes the pid.
	pid=$(cat "$REDIS_DIR/redis.pid" 2>/dev/null) || pid=
	pid=${pid:-${REDIS_PID:-}}
	[ -n "$pid" ] || return 0
	kill -"$sig" "$pid" 2>/dev/null || true
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	REDIS_PID=
	rm -f "$REDIS_DIR/redis.pid" "$REDIS_SOCK"
	return 0
}

# redis_stop: stops the server (SIGTERM: it flushes its AOF) and waits.
redis_stop() {
	[ -n "${REDIS_DIR:-}" ] || return 0
	redis_kill TERM
}

# redis_restart: stops the server and starts it again on the same port and
# directory; the AOF brings the data back.
redis_restart() {
	redis_stop
	_redis_launch
}

# redis_cleanup: stops the server and removes its directory (teardown_file).
redis_cleanup() {
	redis_stop
	[ -n "${REDIS_DIR:-}" ] && rm -rf "$REDIS_DIR"
	return 0
}

# run_wrong_password CMD...: runs CMD with bats' run, adding the arguments
# --redis URL of an ACL user whose password is wrong, and checks that it was
# refused at once, with status 4 (not retried as unreachable), saying so
# without the password.
# shellcheck disable=SC2154 # output and status are set by bats' run
run_wrong_password() {
	rcli acl setuser cmtest on '>right' '~*' '&*' '+@all' >/dev/null
	SECONDS=0
	run "$@" --redis "redis://cmtest:wrongpass@127.0.0.1:$REDIS_PORT"
	rcli acl deluser cmtest >/dev/null
	echo "$output"
	[ "$status" -eq 4 ]
	[ "$SECONDS" -le 3 ]
	[[ "$output" == *"redis://cmtest:***@127.0.0.1:$REDIS_PORT"*"AUTH refused: WRONGPASS"* ]]
	[[ "$output" != *wrongpass* ]]
	[[ "$output" != *retrying* ]]
}
