/* pg.c - PostgreSQL through libpq: connections, failure classes, COPY
 * escaping and the migrations runner. */
#include "pg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "retry.h"
#include "err.h"
#include "timefmt.h"

#ifndef CM_DATADIR
#define CM_DATADIR "/usr/local/share/campaign-manager"
#endif

/* Largest migration file read (a schema file, not a data dump). */
#define MIG_MAX_BYTES (16u << 20)

/* The advisory lock key that serialises cm-admin migrate runs ("cmmigrat"). */
#define MIG_LOCK_KEY "7164952128838525300"

#define MIG_TABLE_SQL                                                                              \
	"CREATE TABLE IF NOT EXISTS schema_migrations ("                                           \
	"version text PRIMARY KEY, file text NOT NULL, checksum text NOT NULL, "                   \
	"applied_at timestamptz NOT NULL DEFAULT now())"

#define MIG_SELECT_SQL                                                                             \
	"SELECT version, checksum, "                                                               \
	"to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "                \
	"FROM schema_migrations ORDER BY version"

/* Returns the conninfo from the option or the environment, so that every tool
 * resolves --db the same way. */
const char *cm_pg_conninfo(const char *opt)
{
	const char *env;

	if (opt)
		return opt;
	env = getenv("CM_DATABASE_URL");
	return env ? env : "";
}

/* Parses conninfo without connecting, so that a typo is a usage error and
 * not an unreachable server. */
int cm_pg_conninfo_check(const char *conninfo, struct cm_err *err)
{
	PQconninfoOption *opts;
	char *msg = NULL;
	size_t n;

	if (!*conninfo)
		return 0;
	opts = PQconninfoParse(conninfo, &msg);
	if (opts) {
		PQconninfoFree(opts);
		return 0;
	}
	if (!msg)
		return cm_errf(err, "invalid database connection string: out of memory");
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = 0;
	cm_errf(err, "invalid database connection string: %s", msg);
	PQfreemem(msg);
	return -1;
}

/* Drops server notices ("relation exists, skipping"), which libpq would
 * otherwise print on stderr behind the tool's back. */
static void quiet_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Copies a libpq message into dst as one line: newlines and tabs become
 * spaces, trailing blanks go. */
static void one_line(char *dst, size_t size, const char *src)
{
	size_t i = 0;

	for (; src && *src && i + 1 < size; src++) {
		char c = *src == '\n' || *src == '\t' ? ' ' : *src;
		if (c == ' ' && (i == 0 || dst[i - 1] == ' '))
			continue;
		dst[i++] = c;
	}
	while (i && dst[i - 1] == ' ')
		i--;
	dst[i] = 0;
}

/* Connects with defaults that the user's conninfo may override (timeout,
 * application name) and one it may not (UTF8, which is what we send). */
PGconn *cm_pg_connect(const char *conninfo, struct cm_err *err)
{
	return cm_pg_connect_timeout(conninfo, 10, err);
}

/* The connect timeout comes before the conninfo in the keyword list, so a
 * connect_timeout in the conninfo overrides it. */
PGconn *cm_pg_connect_timeout(const char *conninfo, int seconds, struct cm_err *err)
{
	const char *kw[] = {"connect_timeout", "fallback_application_name", "dbname",
	                    "client_encoding", NULL};
	char secs[16];
	const char *val[] = {secs, program_invocation_short_name, conninfo, "UTF8", NULL};
	char msg[400];
	PGconn *c;

	snprintf(secs, sizeof(secs), "%d", seconds);
	c = PQconnectdbParams(kw, val, 1);
	if (!c) {
		cm_errc(err, CM_EXIT_SYSTEM, "cannot connect to PostgreSQL: out of memory");
		return NULL;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		one_line(msg, sizeof(msg), PQerrorMessage(c));
		cm_errc(err, CM_EXIT_UNREACHABLE, "cannot connect to PostgreSQL%s: %s",
		        *conninfo ? "" : " (no --db or CM_DATABASE_URL; libpq defaults)", msg);
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, quiet_notice, NULL);
	return c;
}

/* Connects, retrying for a while, because a worker may start before its
 * database or outlive a restart of it. */
PGconn *cm_pg_connect_retry(const char *conninfo, int64_t budget_ms,
                            const volatile sig_atomic_t *stop, struct cm_err *err)
{
	struct cm_backoff b;
	PGconn *c;

	cm_backoff_start(&b, budget_ms);
	for (;;) {
		c = cm_pg_connect(conninfo, err);
		if (c)
			return c;
		if ((stop && *stop) || cm_backoff_wait(&b, NULL) < 0 || (stop && *stop))
			break;
	}
	cm_err_prefix(err, "gave up after %.1f s: ", (double)budget_ms / 1000);
	return NULL;
}

/* Sorts a failure by what the caller can do about it, using SQLSTATE
 * classes: connection and shutdown errors and deadlocks are worth a retry,
 * data errors point at a row, the rest is fatal. */
enum cm_pg_fail cm_pg_classify(PGconn *c, const PGresult *r)
{
	const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	if (!c || PQstatus(c) == CONNECTION_BAD)
		return CM_PG_RETRY;
	if (!st || strlen(st) != 5)
		return CM_PG_RETRY; /* libpq's own error: the connection */
	if (!strncmp(st, "08", 2) || !strncmp(st, "57P", 3) || !strncmp(st, "53", 2) ||
	    !strncmp(st, "58", 2) || !strcmp(st, "40001") || !strcmp(st, "40P01") ||
	    !strcmp(st, "55P03") || !strcmp(st, "25P03"))
		return CM_PG_RETRY;
	if (!strncmp(st, "22", 2) || !strncmp(st, "23", 2) || !strncmp(st, "54", 2))
		return CM_PG_DATA;
	return CM_PG_FATAL;
}

/* Writes the server's error (or libpq's) as one line with its SQLSTATE. */
static void pg_message(char *dst, size_t size, PGconn *c, const PGresult *r)
{
	const char *sev = NULL, *msg = NULL, *st = NULL;
	char line[400];

	if (r) {
		sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
		msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
		st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	}
	if (msg) {
		one_line(line, sizeof(line), msg);
		snprintf(dst, size, "%s: %s (SQLSTATE %s)", sev ? sev : "ERROR", line,
		         st ? st : "?");
		return;
	}
	if (r && *PQresultErrorMessage(r))
		one_line(line, sizeof(line), PQresultErrorMessage(r));
	else
		one_line(line, sizeof(line), c ? PQerrorMessage(c) : "no connection");
	snprintf(dst, size, "%s", *line ? line : "unexpected result");
}

/* Formats a failure for err, prefixed with what was being done. */
int cm_pg_errf(struct cm_err *err, PGconn *c, const PGresult *r, const char *what)
{
	char msg[450];

	static const int code[] = {
	    [CM_PG_FATAL] = CM_EXIT_REFUSED,
	    [CM_PG_RETRY] = CM_EXIT_UNREACHABLE,
	    [CM_PG_DATA] = CM_EXIT_REJECTED,
	};

	pg_message(msg, sizeof(msg), c, r);
	return cm_errc(err, code[cm_pg_classify(c, r)], "%s: %s", what, msg);
}

/* Runs statements whose results nobody needs (SET, BEGIN, DDL). */
int cm_pg_exec(PGconn *c, const char *sql, struct cm_err *err)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	int rc = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY)
		rc = cm_pg_errf(err, c, r, "PostgreSQL");
	PQclear(r);
	return rc;
}

/* Runs one parameterised statement and hands its result to the caller. */
PGresult *cm_pg_query(PGconn *c, const char *sql, int nparams, const char *const *params,
                      struct cm_err *err)
{
	PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;
	cm_pg_errf(err, c, r, "PostgreSQL");
	PQclear(r);
	return NULL;
}

/* Bytes COPY's text format must escape. */
static const unsigned char copy_special[256] = {
    ['\\'] = '\\', ['\t'] = 't', ['\n'] = 'n', ['\r'] = 'r'};

/* Escapes for COPY text format, copying runs of plain bytes at once because
 * escapes are rare in real data. */
int cm_pg_copy_escape(struct cm_buf *b, const char *s, size_t n)
{
	size_t i, run = 0;
	char *d;

	if (n > SIZE_MAX / 2 || cm_buf_grow(b, 2 * n) < 0)
		return -1;
	d = b->data + b->len;
	for (i = 0; i < n; i++) {
		unsigned char e = copy_special[(unsigned char)s[i]];
		if (!e)
			continue;
		memcpy(d, s + run, i - run);
		d += i - run;
		*d++ = '\\';
		*d++ = (char)e;
		run = i + 1;
	}
	memcpy(d, s + run, n - run);
	d += n - run;
	b->len = (size_t)(d - b->data);
	b->data[b->len] = 0;
	return 0;
}

/* Maps the server's character position in a migration file to a line, so
 * that errors point into the file. */
unsigned long cm_pg_pos_line(const char *text, size_t len, unsigned long pos)
{
	unsigned long line = 1, chars = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		if (((unsigned char)text[i] & 0xC0) != 0x80 && ++chars >= pos)
			break;
		if (text[i] == '\n')
			line++;
	}
	return line;
}

/* True when path is a directory. */
static int is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Finds the migration files for installed binaries, a source tree and an
 * explicit choice alike (the order is documented in cm-admin(1)). */
int cm_pg_sql_dir(const char *opt, char *out, size_t size, struct cm_err *err)
{
	char exe[PATH_MAX], cand[PATH_MAX + 64];
	const char *env = getenv("CM_SQL_DIR");
	ssize_t n;
	char *slash;

	if (opt || (env && *env)) {
		const char *d = opt ? opt : env;
		if (strlen(d) >= size)
			return cm_errf(err, "SQL directory '%s': path too long", d);
		if (!is_dir(d))
			return cm_errf(err, "SQL directory '%s' (from %s): not a directory", d,
			               opt ? "--dir" : "CM_SQL_DIR");
		snprintf(out, size, "%s", d);
		return 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = 0;
			snprintf(cand, sizeof(cand), "%s/../share/campaign-manager/sql", exe);
			if (is_dir(cand) && strlen(cand) < size) {
				snprintf(out, size, "%s", cand);
				return 0;
			}
			snprintf(cand, sizeof(cand), "%s/../share/sql/001_init.sql", exe);
			if (access(cand, R_OK) == 0 && strlen(cand) < size) {
				cand[strlen(cand) - strlen("/001_init.sql")] = 0;
				snprintf(out, size, "%s", cand);
				return 0;
			}
		}
	}
	if (is_dir(CM_DATADIR "/sql") && strlen(CM_DATADIR "/sql") < size) {
		snprintf(out, size, "%s", CM_DATADIR "/sql");
		return 0;
	}
	return cm_errf(err, "no SQL directory found: give --dir or CM_SQL_DIR (looked next to the "
	                    "program and in " CM_DATADIR "/sql)");
}

/* The version of a migration file name: its leading digits when the name is
 * DIGITS_*.sql, else NULL. */
static char *mig_version(const char *name)
{
	size_t d = strspn(name, "0123456789"), n = strlen(name);

	if (d == 0 || d > 18 || name[d] != '_' || n < d + 5 || strcmp(name + n - 4, ".sql"))
		return NULL;
	return strndup(name, d);
}

/* Compares the numbers of two migrations ("001" and "1" are the same). */
static int mig_cmp_version(const struct cm_pg_migration *x, const struct cm_pg_migration *y)
{
	unsigned long long vx = strtoull(x->version, NULL, 10), vy = strtoull(y->version, NULL, 10);

	return vx < vy ? -1 : vx > vy;
}

/* Orders migrations by number, so that 10_x runs after 9_x. */
static int mig_cmp(const void *a, const void *b)
{
	const struct cm_pg_migration *x = a, *y = b;
	int c = mig_cmp_version(x, y);

	if (c)
		return c;
	if (!x->file || !y->file)
		return !x->file - !y->file;
	return strcmp(x->file, y->file);
}

/* Appends an empty entry to m. */
static struct cm_pg_migration *mig_push(struct cm_pg_migrations *m)
{
	struct cm_pg_migration *v = realloc(m->v, (m->n + 1) * sizeof(*v));

	if (!v)
		return NULL;
	m->v = v;
	memset(&v[m->n], 0, sizeof(v[0]));
	return &v[m->n++];
}

/* Reads a whole migration file (bounded) into a new NUL-terminated string. */
static int read_file(const char *path, char **text, size_t *len, struct cm_err *err)
{
	struct cm_buf b;
	char chunk[65536];
	ssize_t n;
	int fd, rc = -1;

	cm_buf_init(&b, MIG_MAX_BYTES);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cm_errf(err, "%s: %s", path, strerror(errno));
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cm_errf(err, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (cm_buf_add(&b, chunk, (size_t)n) < 0) {
			cm_errf(err, "%s: larger than %u bytes", path, MIG_MAX_BYTES);
			goto out;
		}
	}
	if (cm_buf_add(&b, "", 0) < 0) {
		cm_errf(err, "%s: out of memory", path);
		goto out;
	}
	if (strlen(b.data) != b.len) {
		cm_errf(err, "%s: contains a NUL byte", path);
		goto out;
	}
	*text = b.data;
	*len = b.len;
	b.data = NULL;
	rc = 0;
out:
	close(fd);
	cm_buf_release(&b);
	return rc;
}

/* The SHA-256 of text as hex, to notice a file changed after it was applied. */
static void checksum_hex(const char *text, size_t len, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, (const unsigned char *)text, len);
	sodium_bin2hex(out, 65, h, sizeof(h));
}

/* Lists the migration files with their checksums. */
int cm_pg_migrations_load(struct cm_pg_migrations *m, const char *dir, struct cm_err *err)
{
	struct dirent *e;
	DIR *d;
	char path[PATH_MAX];
	size_t i, len;
	char *text;
	int rc = -1;

	memset(m, 0, sizeof(*m));
	if (sodium_init() < 0)
		return cm_errf(err, "libsodium failed to initialise");
	m->dir = strdup(dir);
	if (!m->dir)
		return cm_errf(err, "out of memory");
	d = opendir(dir);
	if (!d) {
		cm_errf(err, "SQL directory '%s': %s", dir, strerror(errno));
		cm_pg_migrations_release(m);
		return -1;
	}
	while ((e = readdir(d))) {
		char *v = mig_version(e->d_name);
		struct cm_pg_migration *mg;
		if (!v)
			continue;
		mg = mig_push(m);
		if (!mg) {
			free(v);
			cm_errf(err, "out of memory");
			goto out;
		}
		mg->version = v;
		mg->file = strdup(e->d_name);
		if (!mg->file) {
			cm_errf(err, "out of memory");
			goto out;
		}
	}
	if (m->n)
		qsort(m->v, m->n, sizeof(m->v[0]), mig_cmp);
	for (i = 0; i < m->n; i++) {
		if (i && !mig_cmp_version(&m->v[i], &m->v[i - 1])) {
			cm_errf(err, "%s: %s and %s have the same version %s", dir,
			        m->v[i - 1].file, m->v[i].file, m->v[i].version);
			goto out;
		}
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, m->v[i].file) >=
		    sizeof(path)) {
			cm_errf(err, "%s/%s: path too long", dir, m->v[i].file);
			goto out;
		}
		if (read_file(path, &text, &len, err) < 0)
			goto out;
		checksum_hex(text, len, m->v[i].checksum);
		free(text);
	}
	rc = 0;
out:
	closedir(d);
	if (rc < 0)
		cm_pg_migrations_release(m);
	return rc;
}

/* Looks up a version among the files. */
static struct cm_pg_migration *mig_find(struct cm_pg_migrations *m, const char *version)
{
	unsigned long long v = strtoull(version, NULL, 10);
	size_t i;

	for (i = 0; i < m->n; i++)
		if (strtoull(m->v[i].version, NULL, 10) == v)
			return &m->v[i];
	return NULL;
}

/* Merges the schema_migrations rows in r into m. */
static int mig_merge(struct cm_pg_migrations *m, PGresult *r, struct cm_err *err)
{
	int i, added = 0;

	for (i = 0; i < PQntuples(r); i++) {
		const char *v = PQgetvalue(r, i, 0);
		struct cm_pg_migration *mg = mig_find(m, v);
		if (!mg) {
			mg = mig_push(m);
			if (!mg || !(mg->version = strdup(v)))
				return cm_errf(err, "out of memory");
			added = 1;
		} else if (strcmp(mg->checksum, PQgetvalue(r, i, 1))) {
			mg->changed = 1;
		}
		mg->applied = 1;
		snprintf(mg->applied_at, sizeof(mg->applied_at), "%s", PQgetvalue(r, i, 2));
	}
	if (added)
		qsort(m->v, m->n, sizeof(m->v[0]), mig_cmp);
	return 0;
}

/* Forgets what the database said, before asking again. */
static void mig_clear_status(struct cm_pg_migrations *m)
{
	size_t i, j = 0;

	for (i = 0; i < m->n; i++) {
		if (!m->v[i].file) {
			free(m->v[i].version);
			continue;
		}
		m->v[i].applied = m->v[i].changed = 0;
		m->v[i].applied_at[0] = 0;
		m->v[j++] = m->v[i];
	}
	m->n = j;
}

/* Reads schema_migrations without creating it, so that --status never
 * changes the database. */
int cm_pg_migrations_status(PGconn *c, struct cm_pg_migrations *m, struct cm_err *err)
{
	PGresult *r;
	int rc = -1;

	mig_clear_status(m);
	r = cm_pg_query(c, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL, err);
	if (!r)
		return -1;
	if (strcmp(PQgetvalue(r, 0, 0), "t")) {
		PQclear(r);
		return 0;
	}
	PQclear(r);
	r = cm_pg_query(c, MIG_SELECT_SQL, 0, NULL, err);
	if (!r)
		return -1;
	rc = mig_merge(m, r, err);
	PQclear(r);
	return rc;
}

/* Applies one file and records it, in one transaction, so that a file is
 * either wholly applied and recorded or not at all. */
static int mig_apply(PGconn *c, const char *dir, struct cm_pg_migration *mg, struct cm_err *err)
{
	const char *params[3] = {mg->version, mg->file, mg->checksum};
	char path[PATH_MAX], msg[450];
	PGresult *r = NULL;
	char *text = NULL;
	size_t len;
	const char *pos;
	int rc = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, mg->file);
	if (read_file(path, &text, &len, err) < 0)
		return -1;
	checksum_hex(text, len, mg->checksum);
	if (cm_pg_exec(c, "BEGIN", err) < 0)
		goto out;
	r = PQexec(c, text);
	if (!r || (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK &&
	           PQresultStatus(r) != PGRES_EMPTY_QUERY)) {
		pos = r ? PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION) : NULL;
		pg_message(msg, sizeof(msg), c, r);
		if (pos)
			cm_errf(err, "%s:%lu: %s", path,
			        cm_pg_pos_line(text, len, strtoul(pos, NULL, 10)), msg);
		else
			cm_errf(err, "%s: %s", path, msg);
		goto rollback;
	}
	PQclear(r);
	r = PQexecParams(c,
	                 "INSERT INTO schema_migrations (version, file, checksum) VALUES ($1, $2, "
	                 "$3) RETURNING to_char(applied_at AT TIME ZONE 'UTC', "
	                 "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
	                 3, NULL, params, NULL, NULL, 0);
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
		cm_pg_errf(err, c, r, path);
		goto rollback;
	}
	snprintf(mg->applied_at, sizeof(mg->applied_at), "%s", PQgetvalue(r, 0, 0));
	if (cm_pg_exec(c, "COMMIT", err) < 0) {
		cm_err_prefix(err, "%s: ", path);
		goto out;
	}
	mg->applied = 1;
	rc = 0;
	goto out;
rollback:
	PQclear(PQexec(c, "ROLLBACK"));
out:
	PQclear(r);
	free(text);
	return rc;
}

/* Applies what is pending under a session advisory lock, re-reading the
 * applied set once the lock is held so that a run that waited for another
 * finds the work done. */
int cm_pg_migrate(PGconn *c, struct cm_pg_migrations *m, cm_pg_migrate_cb cb, void *ctx,
                  struct cm_err *err)
{
	int64_t t0;
	size_t i;
	int applied = 0, rc = -1;
	PGresult *r;

	if (cm_pg_exec(c, "SELECT pg_advisory_lock(" MIG_LOCK_KEY ")", err) < 0)
		return -1;
	if (cm_pg_exec(c, MIG_TABLE_SQL, err) < 0)
		goto out;
	mig_clear_status(m);
	r = cm_pg_query(c, MIG_SELECT_SQL, 0, NULL, err);
	if (!r)
		goto out;
	if (mig_merge(m, r, err) < 0) {
		PQclear(r);
		goto out;
	}
	PQclear(r);
	for (i = 0; i < m->n; i++) {
		struct cm_pg_migration *mg = &m->v[i];
		if (mg->applied || !mg->file)
			continue;
		t0 = cm_time_now();
		if (mig_apply(c, m->dir, mg, err) < 0)
			goto out;
		applied++;
		if (cb)
			cb(ctx, mg, cm_time_now() - t0);
	}
	rc = applied;
out:
	if (PQstatus(c) == CONNECTION_OK)
		PQclear(PQexec(c, "SELECT pg_advisory_unlock(" MIG_LOCK_KEY ")"));
	return rc;
}

/* Frees the list. */
void cm_pg_migrations_release(struct cm_pg_migrations *m)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		free(m->v[i].file);
		free(m->v[i].version);
	}
	free(m->v);
	free(m->dir);
	memset(m, 0, sizeof(*m));
}
