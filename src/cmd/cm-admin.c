/* cm-admin.c - the schema, the API users and the write keys: `migrate`
 * applies share/sql/NNN_*.sql in order, `user` adds, lists, re-keys and
 * removes the users cm-httpd authenticates, `key` makes, lists and removes
 * the write keys that may only send events. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apikey.h"
#include "buf.h"
#include "tool.h"
#include "err.h"
#include "out.h"
#include "pg.h"

/* Exit statuses beyond CONTRACT's 0, 1 (the user or key exists or is
 * unknown), 2. */
enum { EXIT_UNREACHABLE = CM_EXIT_UNREACHABLE, EXIT_DBERROR = CM_EXIT_REFUSED };

#define PASSWORD_MAX 1024

static const char usage_text[] =
    "Usage: cm-admin [--db CONNINFO] migrate [--status] [--dir DIR]\n"
    "       cm-admin [--db CONNINFO] user add NAME --role admin|user  (password on stdin)\n"
    "       cm-admin [--db CONNINFO] user passwd NAME                 (password on stdin)\n"
    "       cm-admin [--db CONNINFO] user list\n"
    "       cm-admin [--db CONNINFO] user del NAME\n"
    "       cm-admin [--db CONNINFO] key add NAME   (prints the new write key once)\n"
    "       cm-admin [--db CONNINFO] key list\n"
    "       cm-admin [--db CONNINFO] key del NAME\n"
    "Manage the Campaign Manager database: apply the schema migrations, manage API\n"
    "users and write keys.\n"
    "\n"
    "  -d, --db CONNINFO   PostgreSQL conninfo or URI (default: $CM_DATABASE_URL)\n"
    "      --dir DIR       migration files (default: $CM_SQL_DIR, next to the program,\n"
    "                      or the installed share/campaign-manager/sql)\n"
    "      --status        list each migration as applied (with its time) or pending\n"
    "      --role ROLE     admin or user, for user add\n"
    "  -h, --help          show this help and exit\n"
    "  -V, --version       show the version and exit\n"
    "\n"
    "Exit status: 0 done, 1 the user or key exists (add) or does not (passwd, del),\n"
    "2 usage or configuration error, 3 database unreachable, 4 database error.\n";

struct opts {
	const char *db;
	const char *dir;
	const char *role;
	int status;
};

/* Prints how the migration went; called by the runner after each file. */
static void report_applied(void *ctx, const struct cm_pg_migration *mig, int64_t ms)
{
	(void)ctx;
	printf("applied %s (%lld ms)\n", mig->file, (long long)ms);
	fflush(stdout);
}

/* Exits with the status that says whether the database went away or refused. */
static int db_failure(PGconn *c, const struct cm_err *err)
{
	cm_warn("%s", err->msg);
	return PQstatus(c) == CONNECTION_BAD ? EXIT_UNREACHABLE : EXIT_DBERROR;
}

/* migrate [--status]: applies what is pending, or lists the state. */
static int cmd_migrate(PGconn *c, const struct opts *o)
{
	struct cm_pg_migrations m;
	struct cm_err err;
	char dir[PATH_MAX];
	size_t i;
	int n, rc = EXIT_DBERROR;

	if (cm_pg_sql_dir(o->dir, dir, sizeof(dir), &err) < 0 ||
	    cm_pg_migrations_load(&m, dir, &err) < 0) {
		cm_warn("%s", err.msg);
		return CM_EXIT_USAGE;
	}
	if (o->status) {
		if (cm_pg_migrations_status(c, &m, &err) < 0) {
			rc = db_failure(c, &err);
			goto out;
		}
		for (i = 0; i < m.n; i++) {
			const struct cm_pg_migration *mg = &m.v[i];
			if (!mg->file)
				printf("%s (no file)\tapplied\t%s\n", mg->version, mg->applied_at);
			else if (mg->applied)
				printf("%s\tapplied\t%s%s\n", mg->file, mg->applied_at,
				       mg->changed ? "\tchanged since" : "");
			else
				printf("%s\tpending\n", mg->file);
		}
		rc = CM_EXIT_OK;
		goto out;
	}
	n = cm_pg_migrate(c, &m, report_applied, NULL, &err);
	if (n < 0) {
		rc = db_failure(c, &err);
		goto out;
	}
	for (i = 0; i < m.n; i++)
		if (m.v[i].changed)
			cm_warn("warning: %s/%s changed since it was applied at %s", dir,
			        m.v[i].file, m.v[i].applied_at);
	if (n == 0)
		printf("up to date (%zu migration%s applied)\n", m.n, m.n == 1 ? "" : "s");
	rc = CM_EXIT_OK;
out:
	cm_pg_migrations_release(&m);
	return fflush(stdout) == 0 ? rc : CM_EXIT_USAGE;
}

/* Reads the first line of stdin as a password, so that it never appears in
 * the process list or the shell history. */
static int read_password(char *pw, size_t size)
{
	size_t len = 0;
	ssize_t n;
	char c;

	for (;;) {
		n = read(0, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cm_warn("reading the password from stdin: %s", strerror(errno));
			return -1;
		}
		if (n == 0 || c == '\n')
			break;
		if (len + 1 >= size) {
			cm_warn("the password on stdin is longer than %zu bytes", size - 2);
			return -1;
		}
		pw[len++] = c;
	}
	if (len && pw[len - 1] == '\r')
		len--;
	pw[len] = 0;
	if (len == 0) {
		cm_warn("the password on stdin is empty (give it as the first line of stdin)");
		return -1;
	}
	return 0;
}

/* Reads a password from stdin and hashes it with Argon2id at the
 * interactive limits, which cm-httpd's login can afford to verify. */
static int hash_password(char hash[crypto_pwhash_STRBYTES])
{
	char pw[PASSWORD_MAX + 2];
	int rc = -1;

	if (read_password(pw, sizeof(pw)) < 0)
		goto out;
	if (crypto_pwhash_str(hash, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
		cm_warn("hashing the password: out of memory");
		goto out;
	}
	rc = 0;
out:
	sodium_memzero(pw, sizeof(pw));
	return rc;
}

/* user add / passwd / del: one statement each; a missing or duplicate user
 * is status 1. */
static int cmd_user_change(PGconn *c, const char *verb, const char *name, const char *role)
{
	char hash[crypto_pwhash_STRBYTES];
	const char *params[3] = {name, hash, role};
	const char *sql;
	struct cm_err err;
	PGresult *r;
	int nparams = 3, rc;

	if (!strcmp(verb, "del")) {
		sql = "DELETE FROM users WHERE username = $1";
		nparams = 1;
	} else {
		if (hash_password(hash) < 0)
			return CM_EXIT_USAGE;
		if (!strcmp(verb, "add")) {
			sql = "INSERT INTO users (username, password_hash, role) VALUES ($1, $2, "
			      "$3) ON CONFLICT (username) DO NOTHING";
		} else {
			sql = "UPDATE users SET password_hash = $2 WHERE username = $1";
			nparams = 2;
		}
	}
	r = cm_pg_query(c, sql, nparams, params, &err);
	sodium_memzero(hash, sizeof(hash));
	if (!r)
		return db_failure(c, &err);
	rc = CM_EXIT_OK;
	if (strcmp(PQcmdTuples(r), "1")) {
		cm_warn("user '%s' %s", name,
		        !strcmp(verb, "add") ? "exists already" : "does not exist");
		rc = CM_EXIT_REJECTED;
	}
	PQclear(r);
	return rc;
}

/* key add: stores the hash of a new key and prints the key, which is never
 * shown again; a name in use is status 1. */
static int cmd_key_add(PGconn *c, const char *name)
{
	char key[CM_APIKEY_LEN + 1], hex[2 * CM_APIKEY_HASH_BYTES + 1];
	uint8_t hash[CM_APIKEY_HASH_BYTES];
	const char *params[2] = {name, hex};
	struct cm_err err;
	PGresult *r;
	int rc = CM_EXIT_OK;

	if (cm_apikey_generate(key) < 0) {
		cm_warn("libsodium failed to initialise");
		return CM_EXIT_USAGE;
	}
	cm_apikey_hash(key, strlen(key), hash);
	cm_apikey_hex(hash, hex);
	r = cm_pg_query(c,
	                "INSERT INTO api_keys (name, key_hash) VALUES ($1, decode($2, 'hex')) "
	                "ON CONFLICT (name) DO NOTHING",
	                2, params, &err);
	if (!r) {
		rc = db_failure(c, &err);
		goto out;
	}
	if (strcmp(PQcmdTuples(r), "1")) {
		cm_warn("key '%s' exists already", name);
		rc = CM_EXIT_REJECTED;
	} else {
		printf("%s\n", key);
		if (fflush(stdout) != 0) {
			cm_warn("writing the key to stdout: %s (the key was stored: delete it "
			        "with 'key del')",
			        strerror(errno));
			rc = CM_EXIT_USAGE;
		}
	}
	PQclear(r);
out:
	sodium_memzero(key, sizeof(key));
	return rc;
}

/* key del: removes a key; an unknown name is status 1. */
static int cmd_key_del(PGconn *c, const char *name)
{
	const char *params[1] = {name};
	struct cm_err err;
	PGresult *r;
	int rc = CM_EXIT_OK;

	r = cm_pg_query(c, "DELETE FROM api_keys WHERE name = $1", 1, params, &err);
	if (!r)
		return db_failure(c, &err);
	if (strcmp(PQcmdTuples(r), "1")) {
		cm_warn("key '%s' does not exist", name);
		rc = CM_EXIT_REJECTED;
	}
	PQclear(r);
	return rc;
}

/* Prints the rows of r (text columns, NULL as null) as NDJSON records with
 * the given keys; used by user list and key list. */
static int print_records(PGresult *r, const char *const *keys, int nkeys)
{
	struct cm_buf b = CM_BUF_INIT;
	struct cm_out out;
	int i, k, rc = CM_EXIT_OK, bad;

	cm_out_init(&out, 1);
	for (i = 0; i < PQntuples(r); i++) {
		cm_buf_reset(&b);
		bad = cm_buf_addc(&b, '{');
		for (k = 0; k < nkeys; k++) {
			bad |= cm_buf_addf(&b, "%s\"%s\":", k ? "," : "", keys[k]);
			if (PQgetisnull(r, i, k))
				bad |= cm_buf_adds(&b, "null");
			else
				bad |= cm_buf_add_jstr(&b, PQgetvalue(r, i, k),
				                       (size_t)PQgetlength(r, i, k));
		}
		bad |= cm_buf_addc(&b, '}');
		if (bad) {
			cm_warn("out of memory");
			rc = EXIT_DBERROR;
			break;
		}
		if (cm_out_write(&out, b.data, b.len) < 0 || cm_out_endrec(&out) < 0)
			break;
	}
	if (cm_out_release(&out) < 0 && !out.closed) {
		cm_warn("writing to stdout: %s", strerror(out.error));
		rc = CM_EXIT_USAGE;
	}
	cm_buf_release(&b);
	return rc;
}

/* The SQL of a time column as user list and key list print it. */
#define UTC_TEXT(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* user list / key list: the rows as NDJSON records, never a hash. */
static int cmd_list(PGconn *c, int keys)
{
	static const char *const user_keys[] = {"username", "role", "created_at"};
	static const char *const key_keys[] = {"name", "created_at", "last_used_at"};
	struct cm_err err;
	PGresult *r;
	int rc;

	if (keys)
		r = cm_pg_query(c,
		                "SELECT name, " UTC_TEXT("created_at") ", " UTC_TEXT(
		                    "last_used_at") " FROM api_keys ORDER BY name",
		                0, NULL, &err);
	else
		r = cm_pg_query(c,
		                "SELECT username, role, " UTC_TEXT(
		                    "created_at") " FROM users ORDER BY username",
		                0, NULL, &err);
	if (!r)
		return db_failure(c, &err);
	rc = keys ? print_records(r, key_keys, 3) : print_records(r, user_keys, 3);
	PQclear(r);
	return rc;
}

/* Connects for a subcommand; an unreachable database is status 3. */
static PGconn *connect_db(const struct opts *o, int *rc)
{
	const char *conninfo = cm_pg_conninfo(o->db);
	struct cm_err err;
	PGconn *c;

	if (cm_pg_conninfo_check(conninfo, &err) < 0) {
		cm_warn("%s", err.msg);
		*rc = CM_EXIT_USAGE;
		return NULL;
	}
	c = cm_pg_connect(conninfo, &err);
	if (!c) {
		cm_warn("%s", err.msg);
		*rc = EXIT_UNREACHABLE;
	}
	return c;
}

/* Parses the command line, checks it completely before connecting, and
 * runs one command. */
int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"dir", required_argument, NULL, 'D'},
	    {"status", no_argument, NULL, 'S'},
	    {"role", required_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct opts o = {0};
	const char *cmd, *verb = NULL, *name = NULL;
	PGconn *c;
	int ch, rc = CM_EXIT_OK, nargs;

	cm_cli_init(argv[0]);
	while ((ch = getopt_long(argc, argv, "d:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			o.db = optarg;
			break;
		case 'D':
			o.dir = optarg;
			break;
		case 'S':
			o.status = 1;
			break;
		case 'r':
			o.role = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return fflush(stdout) == 0 ? CM_EXIT_OK : CM_EXIT_USAGE;
		case 'V':
			cm_print_version();
		default:
			cm_usage_error("invalid option");
		}
	}
	nargs = argc - optind;
	if (nargs < 1)
		cm_usage_error("missing command: migrate, user or key");
	cmd = argv[optind];
	if (!strcmp(cmd, "migrate")) {
		if (nargs != 1)
			cm_usage_error("migrate takes no arguments");
		if (o.role)
			cm_usage_error("--role belongs to user add");
	} else if (!strcmp(cmd, "user") || !strcmp(cmd, "key")) {
		int is_key = !strcmp(cmd, "key");

		if (o.status || o.dir)
			cm_usage_error("--status and --dir belong to migrate");
		if (nargs < 2)
			cm_usage_error(is_key ? "missing key command: add, list or del"
			                      : "missing user command: add, passwd, list or del");
		verb = argv[optind + 1];
		if (!strcmp(verb, "list")) {
			if (nargs != 2)
				cm_usage_error("%s list takes no arguments", cmd);
		} else if (!strcmp(verb, "add") || !strcmp(verb, "del") ||
		           (!is_key && !strcmp(verb, "passwd"))) {
			if (nargs != 3)
				cm_usage_error("%s %s takes one %s name", cmd, verb, cmd);
			name = argv[optind + 2];
			if (!cm_apikey_name_ok(name, strlen(name)))
				cm_usage_error("%s name must be 1-%d bytes without control "
				               "characters",
				               cmd, CM_APIKEY_NAME_MAX);
		} else if (is_key) {
			cm_usage_error("unknown key command '%s': add, list or del", verb);
		} else {
			cm_usage_error("unknown user command '%s': add, passwd, list or del", verb);
		}
		if (!is_key && !strcmp(verb, "add")) {
			if (!o.role)
				cm_usage_error("user add needs --role admin or --role user");
			if (strcmp(o.role, "admin") && strcmp(o.role, "user"))
				cm_usage_error("--role must be admin or user, not '%s'", o.role);
		} else if (o.role) {
			cm_usage_error("--role belongs to user add");
		}
	} else {
		cm_usage_error("unknown command '%s': migrate, user or key", cmd);
	}
	if (sodium_init() < 0) {
		cm_warn("libsodium failed to initialise");
		return CM_EXIT_USAGE;
	}
	c = connect_db(&o, &rc);
	if (!c)
		return rc;
	if (!verb)
		rc = cmd_migrate(c, &o);
	else if (!strcmp(verb, "list"))
		rc = cmd_list(c, !strcmp(cmd, "key"));
	else if (!strcmp(cmd, "key"))
		rc = !strcmp(verb, "add") ? cmd_key_add(c, name) : cmd_key_del(c, name);
	else
		rc = cmd_user_change(c, verb, name, o.role);
	PQfinish(c);
	return rc;
}
