#!/usr/bin/env bats
# cm-admin against a throwaway PostgreSQL (tests/lib/pg.bash): migrations,
# the schema they build, and API users.

load lib/common
load lib/pg

setup_file() {
	pg_start
}

teardown_file() {
	pg_stop
}

setup() {
	pg_newdb
	export CM_SQL_DIR=$TOP/share/sql
}

# sqlfile DIR NAME SQL: writes one migration file.
sqlfile() {
	mkdir -p "$1"
	printf '%s\n' "$3" >"$1/$2"
}

# nfiles: the number of migration files in share/sql.
nfiles() {
	ls "$TOP"/share/sql/[0-9]*_*.sql | wc -l
}

@test "cm-admin: --help, --version and usage errors" {
	run cm-admin --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"migrate [--status] [--dir DIR]"* ]]
	[[ "$output" == *"user add NAME --role admin|user"* ]]
	run cm-admin --version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^cm-admin\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
	run cm-admin
	[ "$status" -eq 2 ]
	[[ "$output" == *"missing command"* ]]
	run cm-admin frobnicate
	[ "$status" -eq 2 ]
	run cm-admin migrate extra
	[ "$status" -eq 2 ]
	run cm-admin --bogus migrate
	[ "$status" -eq 2 ]
	run cm-admin user add alice
	[ "$status" -eq 2 ]
	[[ "$output" == *"--role"* ]]
	run cm-admin user add alice --role root
	[ "$status" -eq 2 ]
	[[ "$output" == *"admin or user"* ]]
	run cm-admin migrate --role admin
	[ "$status" -eq 2 ]
	run cm-admin user list --status
	[ "$status" -eq 2 ]
}

@test "cm-admin: a bad conninfo is status 2, an unreachable database status 3" {
	run cm-admin --db "nosuchkey=1" migrate
	[ "$status" -eq 2 ]
	[[ "$output" == *"invalid database connection string"* ]]
	run cm-admin --db "host=$T port=1 dbname=x connect_timeout=2" migrate
	[ "$status" -eq 3 ]
	[[ "$output" == *"cannot connect to PostgreSQL"* ]]
	CM_DATABASE_URL="host=$T port=1" run cm-admin user list
	[ "$status" -eq 3 ]
}

@test "cm-admin: migrate applies every file once; a second run is a no-op" {
	run cm-admin migrate
	[ "$status" -eq 0 ]
	[[ "$output" == *"applied 001_init.sql"* ]]
	[ "$(pg_sql "SELECT count(*) FROM schema_migrations")" -eq "$(nfiles)" ]
	for t in campaigns events matches users; do
		[ "$(pg_sql "SELECT to_regclass('$t') IS NOT NULL")" = t ]
	done
	before=$(pg_sql "SELECT version, applied_at FROM schema_migrations ORDER BY 1")
	run cm-admin migrate
	[ "$status" -eq 0 ]
	[[ "$output" == "up to date ($(nfiles) migration"* ]]
	[[ "$output" != *applied\ 0* ]]
	[ "$(pg_sql "SELECT version, applied_at FROM schema_migrations ORDER BY 1")" = "$before" ]
}

@test "cm-admin: migrate --status lists pending and applied files and changes nothing" {
	run cm-admin migrate --status
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "001_init.sql"$'\t'"pending" ]]
	[ "$(pg_sql "SELECT to_regclass('schema_migrations') IS NULL")" = t ]
	cm-admin migrate
	run cm-admin migrate --status
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" =~ ^001_init\.sql$'\t'applied$'\t'[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$ ]]
	[ "${#lines[@]}" -eq "$(nfiles)" ]
}

@test "cm-admin: --status marks a file changed after it was applied, and an applied file that is gone" {
	d=$T/sql
	sqlfile "$d" 001_a.sql "CREATE TABLE a (x int);"
	sqlfile "$d" 002_b.sql "CREATE TABLE b (x int);"
	cm-admin migrate --dir "$d"
	sqlfile "$d" 001_a.sql "CREATE TABLE a (x int); -- edited"
	rm "$d/002_b.sql"
	run cm-admin migrate --dir "$d" --status
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == 001_a.sql*applied*"changed since" ]]
	[[ "${lines[1]}" == "002 (no file)"*applied* ]]
	run cm-admin migrate --dir "$d"
	[ "$status" -eq 0 ]
	[[ "$output" == *"001_a.sql changed since it was applied"* ]]
}

@test "cm-admin: files run in numeric order, each in its own transaction" {
	d=$T/sql
	sqlfile "$d" 9_a.sql "CREATE TABLE a (x int PRIMARY KEY);"
	sqlfile "$d" 10_b.sql "CREATE TABLE b (x int REFERENCES a);"
	sqlfile "$d" 11_c.sql "CREATE TABLE c (x int);
INSERT INTO c VALUES (1);

SELEC oops;"
	sqlfile "$d" README "not a migration"
	run cm-admin migrate --dir "$d"
	[ "$status" -eq 4 ]
	[[ "${lines[0]}" == "applied 9_a.sql"* ]]
	[[ "${lines[1]}" == "applied 10_b.sql"* ]]
	[[ "$output" == *"$d/11_c.sql:4: ERROR: syntax error at or near \"SELEC\""* ]]
	# 11 left nothing behind, and is still pending.
	[ "$(pg_sql "SELECT to_regclass('c') IS NULL")" = t ]
	[ "$(pg_sql "SELECT string_agg(version, ',' ORDER BY version::int) FROM schema_migrations")" = "9,10" ]
	sqlfile "$d" 11_c.sql "CREATE TABLE c (x int);"
	run cm-admin migrate --dir "$d"
	[ "$status" -eq 0 ]
	[ "$output" = "$(grep applied <<<"$output")" ]
	[[ "$output" == "applied 11_c.sql"* ]]
}

@test "cm-admin: two files with one version, or no such directory, are configuration errors" {
	d=$T/sql
	sqlfile "$d" 001_a.sql "SELECT 1;"
	sqlfile "$d" 1_b.sql "SELECT 1;"
	run cm-admin migrate --dir "$d"
	[ "$status" -eq 2 ]
	[[ "$output" == *"same version"* ]]
	run cm-admin migrate --dir "$T/nonexistent"
	[ "$status" -eq 2 ]
	[[ "$output" == *"not a directory"* ]]
	CM_SQL_DIR=$T/nonexistent run cm-admin migrate
	[ "$status" -eq 2 ]
	[[ "$output" == *CM_SQL_DIR* ]]
}

@test "cm-admin: concurrent migrates apply each file exactly once" {
	for i in 1 2 3; do
		cm-admin migrate >"$T/out$i" 2>&1 &
	done
	wait %1 && wait %2 && wait %3
	[ "$(cat "$T"/out* | grep -c '^applied 001_init.sql')" -eq 1 ]
	[ "$(cat "$T"/out* | grep -c '^up to date')" -eq 2 ]
	[ "$(pg_sql "SELECT count(*) FROM schema_migrations")" -eq "$(nfiles)" ]
}

@test "cm-admin: without --dir the files are found next to the program" {
	unset CM_SQL_DIR
	mkdir -p "$T/pfx/bin" "$T/pfx/share/campaign-manager/sql"
	cp "$CM_BIN/cm-admin" "$T/pfx/bin/"
	sqlfile "$T/pfx/share/campaign-manager/sql" 001_here.sql "CREATE TABLE here (x int);"
	run "$T/pfx/bin/cm-admin" migrate
	[ "$status" -eq 0 ]
	[[ "$output" == "applied 001_here.sql"* ]]
	# A source tree: bin/../share/sql holding 001_init.sql.
	pg_newdb
	mkdir -p "$T/src/bin" "$T/src/share/sql"
	cp "$CM_BIN/cm-admin" "$T/src/bin/"
	cp "$TOP/share/sql/001_init.sql" "$T/src/share/sql/"
	run "$T/src/bin/cm-admin" migrate --status
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "001_init.sql"$'\t'"pending" ]]
}

@test "cm-admin: the schema keeps campaigns consistent and announces changes" {
	cm-admin migrate
	run pg_sql "INSERT INTO campaigns (name, rule, starts_at, ends_at) VALUES ('x', '{}', '2026-02-01', '2026-01-01')"
	[ "$status" -ne 0 ]
	[[ "$output" == *campaigns_window_check* ]]
	run pg_sql "INSERT INTO campaigns (name, rule, status) VALUES ('x', '{}', 'running')"
	[ "$status" -ne 0 ]
	run pg_sql "INSERT INTO campaigns (name, rule) VALUES ('x', '[]')"
	[ "$status" -ne 0 ]
	pg_sql "INSERT INTO campaigns (name, rule) VALUES ('x', '{}')"
	run pg_sql "INSERT INTO campaigns (name, rule) VALUES ('x', '{}')"
	[ "$status" -ne 0 ]
	run psql -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$PG_DB" -c "LISTEN cm_campaigns" \
		-c "INSERT INTO campaigns (name, rule) VALUES ('y', '{}')" \
		-c "UPDATE campaigns SET status = 'paused' WHERE name = 'y'" \
		-c "DELETE FROM campaigns WHERE name = 'y'"
	[ "$status" -eq 0 ]
	# One notification per change, with the campaign's id.
	[ "$(grep -c "notification \"cm_campaigns\" with payload \"[0-9]*\"" <<<"$output")" -eq 3 ]
	[ "$(grep -o 'payload "[0-9]*"' <<<"$output" | sort -u | wc -l)" -eq 1 ]
	[ "$(pg_sql "SELECT updated_at > created_at FROM campaigns WHERE name = 'x'" )" = f ]
	pg_sql "UPDATE campaigns SET status = 'archived' WHERE name = 'x'"
	[ "$(pg_sql "SELECT updated_at > created_at FROM campaigns WHERE name = 'x'")" = t ]
}

@test "cm-admin: user add stores an Argon2id hash; a second add of the name is status 1" {
	cm-admin migrate
	run cm-admin user add alice --role admin <<<"s3cret pass"
	[ "$status" -eq 0 ]
	[ "$(pg_sql "SELECT role, password_hash LIKE '\$argon2id\$%' FROM users WHERE username = 'alice'")" = "admin|t" ]
	[ "$(pg_sql "SELECT password_hash FROM users")" != *"s3cret"* ]
	run cm-admin user add alice --role user <<<"other"
	[ "$status" -eq 1 ]
	[[ "$output" == *"user 'alice' exists already"* ]]
	[ "$(pg_sql "SELECT role FROM users WHERE username = 'alice'")" = admin ]
	printf 'pw\r\n' | cm-admin user add bob --role user
	[ "$(pg_sql "SELECT count(*) FROM users")" -eq 2 ]
}

@test "cm-admin: user add refuses an empty or overlong password and a bad name" {
	cm-admin migrate
	run cm-admin user add alice --role user </dev/null
	[ "$status" -eq 2 ]
	[[ "$output" == *"password on stdin is empty"* ]]
	run cm-admin user add alice --role user <<<""
	[ "$status" -eq 2 ]
	run cm-admin user add alice --role user < <(head -c 2000 /dev/zero | tr '\0' x)
	[ "$status" -eq 2 ]
	[[ "$output" == *"longer than 1024 bytes"* ]]
	run cm-admin user add "$(printf 'a\tb')" --role user <<<"pw"
	[ "$status" -eq 2 ]
	[ "$(pg_sql "SELECT count(*) FROM users")" -eq 0 ]
}

@test "cm-admin: user list, passwd and del" {
	cm-admin migrate
	cm-admin user add bob --role user <<<"pw1"
	cm-admin user add alice --role admin <<<"pw2"
	run cm-admin user list
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[0]}" =~ ^\{\"username\":\"alice\",\"role\":\"admin\",\"created_at\":\"[0-9T:-]+Z\"\}$ ]]
	jq -e . <<<"${lines[1]}" >/dev/null
	old=$(pg_sql "SELECT password_hash FROM users WHERE username = 'bob'")
	run cm-admin user passwd bob <<<"new"
	[ "$status" -eq 0 ]
	[ "$(pg_sql "SELECT password_hash FROM users WHERE username = 'bob'")" != "$old" ]
	run cm-admin user passwd carol <<<"x"
	[ "$status" -eq 1 ]
	[[ "$output" == *"user 'carol' does not exist"* ]]
	run cm-admin user del bob
	[ "$status" -eq 0 ]
	run cm-admin user del bob
	[ "$status" -eq 1 ]
	[ "$(pg_sql "SELECT string_agg(username, ',') FROM users")" = alice ]
}

@test "cm-admin: a database error (no schema) is status 4" {
	run cm-admin user list
	[ "$status" -eq 4 ]
	[[ "$output" == *'relation "users" does not exist'* ]]
}

@test "cm-admin: key add prints a new write key once and stores only its BLAKE2b-256 hash" {
	cm-admin migrate
	run cm-admin key add ingest
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" =~ ^cmk_[A-Za-z0-9_-]{43}$ ]]
	key=$output
	want=$(printf '%s' "$key" | /usr/bin/python3 -c 'import hashlib,sys; print(hashlib.blake2b(sys.stdin.buffer.read(), digest_size=32).hexdigest())')
	[ "$(pg_sql "SELECT encode(key_hash, 'hex') FROM api_keys WHERE name = 'ingest'")" = "$want" ]
	# the key itself is nowhere in the database
	run pg_sql "SELECT count(*) FROM api_keys WHERE key_hash::text LIKE '%${key#cmk_}%' OR name LIKE '%${key#cmk_}%'"
	[ "$output" -eq 0 ]
	run cm-admin key add ingest
	[ "$status" -eq 1 ]
	[[ "$output" == *"key 'ingest' exists already"* ]]
	[[ "$output" != *cmk_* ]]
	run cm-admin key add other
	[ "$status" -eq 0 ]
	[ "$output" != "$key" ]
	[ "$(pg_sql "SELECT count(DISTINCT key_hash) FROM api_keys")" -eq 2 ]
}

@test "cm-admin: key list shows names and times, never hashes; key del removes one" {
	cm-admin migrate
	cm-admin key add b-key >/dev/null
	cm-admin key add a-key >/dev/null
	pg_sql "UPDATE api_keys SET last_used_at = '2026-11-27T10:15:00Z' WHERE name = 'b-key'"
	run cm-admin key list
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[0]}" =~ ^\{\"name\":\"a-key\",\"created_at\":\"[0-9T:-]+Z\",\"last_used_at\":null\}$ ]]
	[[ "${lines[1]}" =~ ^\{\"name\":\"b-key\",\"created_at\":\"[0-9T:-]+Z\",\"last_used_at\":\"2026-11-27T10:15:00Z\"\}$ ]]
	[[ "$output" != *hash* ]]
	run cm-admin key del a-key
	[ "$status" -eq 0 ]
	run cm-admin key del a-key
	[ "$status" -eq 1 ]
	[[ "$output" == *"key 'a-key' does not exist"* ]]
	[ "$(pg_sql "SELECT string_agg(name, ',') FROM api_keys")" = b-key ]
}

@test "cm-admin: key usage errors" {
	run cm-admin key
	[ "$status" -eq 2 ]
	[[ "$output" == *"missing key command"* ]]
	run cm-admin key passwd x
	[ "$status" -eq 2 ]
	[[ "$output" == *"unknown key command 'passwd'"* ]]
	run cm-admin key add
	[ "$status" -eq 2 ]
	run cm-admin key add a b
	[ "$status" -eq 2 ]
	run cm-admin key add x --role admin
	[ "$status" -eq 2 ]
	run cm-admin key list extra
	[ "$status" -eq 2 ]
	run cm-admin key add "$(printf 'a\nb')"
	[ "$status" -eq 2 ]
	[[ "$output" == *"key name must be 1-128 bytes"* ]]
	run cm-admin key add ""
	[ "$status" -eq 2 ]
}

@test "cm-admin: campaigns carry a version that every real change bumps" {
	cm-admin migrate
	pg_sql "INSERT INTO campaigns (name, rule) VALUES ('x', '{}')"
	[ "$(pg_sql "SELECT version FROM campaigns")" -eq 1 ]
	pg_sql "UPDATE campaigns SET status = 'paused'"
	[ "$(pg_sql "SELECT version FROM campaigns")" -eq 2 ]
	pg_sql "UPDATE campaigns SET rule = '{\"event_type\":\"a\"}'"
	[ "$(pg_sql "SELECT version FROM campaigns")" -eq 3 ]
	# an update that changes nothing keeps version and updated_at
	before=$(pg_sql "SELECT updated_at FROM campaigns")
	pg_sql "UPDATE campaigns SET name = name"
	[ "$(pg_sql "SELECT version FROM campaigns")" -eq 3 ]
	[ "$(pg_sql "SELECT updated_at FROM campaigns")" = "$before" ]
	# a client cannot set the version by hand
	pg_sql "UPDATE campaigns SET version = 1, name = 'y'"
	[ "$(pg_sql "SELECT version FROM campaigns")" -eq 4 ]
}

@test "cm-admin: every change to a campaign writes an audit row in its transaction" {
	cm-admin migrate
	run psql -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$PG_DB" -v ON_ERROR_STOP=1 \
		-c "BEGIN" -c "SELECT set_config('cm.actor', 'alice', true)" \
		-c "INSERT INTO campaigns (name, rule, ends_at) VALUES ('x', '{}', '2026-12-31T23:59:59.5Z')" \
		-c "COMMIT"
	[ "$status" -eq 0 ]
	pg_sql "UPDATE campaigns SET status = 'paused'"
	pg_sql "UPDATE campaigns SET status = 'active'"
	pg_sql "UPDATE campaigns SET name = 'y'"
	pg_sql "UPDATE campaigns SET name = 'y'"
	pg_sql "UPDATE campaigns SET status = 'archived'"
	pg_sql "DELETE FROM campaigns"
	run pg_sql "SELECT actor, action, before IS NULL, after IS NULL FROM campaign_audit ORDER BY id"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "alice|create|t|f" ]
	[ "${lines[1]}" = "postgres|pause|f|f" ]
	[ "${lines[2]}" = "postgres|resume|f|f" ]
	[ "${lines[3]}" = "postgres|update|f|f" ]
	[ "${lines[4]}" = "postgres|archive|f|f" ]
	[ "${lines[5]}" = "postgres|delete|f|t" ]
	[ "${#lines[@]}" -eq 6 ]
	# the documents are the campaign as the API shows it: UTC times with Z
	run pg_sql "SELECT after->>'ends_at', after->>'version', after->>'name', before->>'name' FROM campaign_audit WHERE action = 'update'"
	[ "$output" = "2026-12-31T23:59:59.500Z|4|y|x" ]
	[[ "$(pg_sql "SELECT after->>'created_at' FROM campaign_audit WHERE action = 'create'")" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$ ]]
	# a failed change leaves no audit row
	run pg_sql "INSERT INTO campaigns (name, rule) VALUES ('', '{}')"
	[ "$status" -ne 0 ]
	[ "$(pg_sql "SELECT count(*) FROM campaign_audit")" -eq 6 ]
}
