# A throwaway PostgreSQL 15 for the tool tests: its own data directory and
# unix socket under a temporary directory, an odd port derived from the
# shell's pid, trust authentication, fsync on (the server's configuration is
# the real one; only initdb skips its own syncs).
#
#   setup_file()    { load lib/pg; pg_start; }
#   teardown_file() { pg_stop; }
#   setup()         { pg_newdb; }      # a fresh, empty database per test
#
# pg_start exports PG_DIR, PG_PORT, PG_HOST (the socket directory) and
# CM_DATABASE_URL ("host=... port=... dbname=cm user=postgres"); PG_DIR is
# made under $PG_TMPDIR (default /tmp: not $TMPDIR, which may be long or
# closed to the postgres user);
# pg_stop_server / pg_start_server stop and start the same server (data kept);
# pg_restart does both; pg_sql runs one statement and prints the rows.
# As root (CI) the server runs as the postgres user through runuser, because
# PostgreSQL refuses to run as root.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

# _pg_as_owner CMD...: runs a server command as the data directory's owner.
_pg_as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# _pg_port_free PORT: true when nothing accepts connections on PORT.
_pg_port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pg_start_server: starts the server of $PG_DIR on $PG_PORT and waits for it
# (after a crash, syncfs instead of an fsync per file keeps recovery fast).
# The server gets none of the shell's other descriptors: a fifo a test writes
# to would never see its end, and bats waits for whoever holds its fd 3.
pg_start_server() {
	_pg_as_owner "$PG_BIN/pg_ctl" start -w -t 30 -s -D "$PG_DIR/data" -l "$PG_DIR/log" \
		-o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=on \
		    -c recovery_init_sync_method=syncfs" \
		</dev/null >/dev/null 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-
}

# pg_stop_server: stops the server at once (as a crash would), keeping its data.
pg_stop_server() {
	[ -n "${PG_DIR:-}" ] && [ -f "$PG_DIR/data/postmaster.pid" ] || return 0
	_pg_as_owner "$PG_BIN/pg_ctl" stop -m immediate -w -s -D "$PG_DIR/data" >/dev/null 2>&1
	return 0
}

# pg_restart: stops the server at once and starts it again on the same port.
pg_restart() {
	pg_stop_server
	pg_start_server
}

# pg_start: creates a data directory, starts the server on a free odd port in
# 20000-29999 and creates the database cm.
pg_start() {
	local base try
	# Short path: the socket path must fit in 107 bytes.
	PG_DIR=$(mktemp -d "${PG_TMPDIR:-/tmp}/cm-pg.XXXXXX") || return 1
	chmod 755 "$PG_DIR"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$PG_DIR"
	if ! _pg_as_owner "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 \
		--locale=C --no-sync --no-instructions >"$PG_DIR/initdb.log" 2>&1; then
		echo "pg_start: initdb failed:" >&2
		cat "$PG_DIR/initdb.log" >&2
		return 1
	fi
	base=$((20000 + ($$ * 13) % 10000))
	for ((try = 0; try < 20; try++)); do
		PG_PORT=$((20000 + (base - 20000 + try * 89) % 10000))
		[ $((PG_PORT % 2)) -eq 1 ] || PG_PORT=$((PG_PORT + 1))
		_pg_port_free "$PG_PORT" || continue
		if pg_start_server; then
			PG_HOST=$PG_DIR
			export PG_DIR PG_PORT PG_HOST
			pg_newdb cm
			return
		fi
	done
	echo "pg_start: could not start PostgreSQL (see $PG_DIR/log):" >&2
	cat "$PG_DIR/log" >&2 2>/dev/null
	return 1
}

# pg_stop: stops the server and removes its directory (teardown_file).
pg_stop() {
	[ -n "${PG_DIR:-}" ] || return 0
	pg_stop_server
	rm -rf "$PG_DIR"
	PG_DIR=
	return 0
}

# pg_newdb [NAME]: creates an empty database (default: a new name each call;
# an existing NAME is dropped first) and points CM_DATABASE_URL at it.
pg_newdb() {
	PG_NDB=$((${PG_NDB:-0} + 1))
	local name=${1:-t${BATS_TEST_NUMBER:-0}_${PG_NDB}_$$}
	psql -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
		-c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $name" \
		-c "CREATE DATABASE $name" >/dev/null || return 1
	PG_DB=$name
	CM_DATABASE_URL="host=$PG_DIR port=$PG_PORT dbname=$name user=postgres"
	export PG_DB CM_DATABASE_URL
}

# pg_sql SQL...: runs statements in the current database and prints the rows
# unaligned, fields separated by '|'.
pg_sql() {
	local a args=()
	for a in "$@"; do
		args+=(-c "$a")
	done
	psql -X -q -A -t -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$PG_DB" -v ON_ERROR_STOP=1 "${args[@]}"
}

# pg_matches_json: every stored match as a JSON array, in key order, in the
# form tests/lib/limits.py checks: {"c","e","u","t" (ms),"o","by"}.
pg_matches_json() {
	pg_sql "SELECT coalesce(json_agg(json_build_object('c', campaign_id, 'e', event_id, 'u', user_id, 't', extract(epoch FROM occurred_at) * 1000, 'o', outcome, 'by', capped_by) ORDER BY campaign_id, event_id), '[]') FROM matches"
}
