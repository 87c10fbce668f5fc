/* pg.h - PostgreSQL through libpq: connecting from --db / CM_DATABASE_URL,
 * reconnecting with backoff, classifying failures (retry, bad row, fatal),
 * COPY text escaping, and the migrations runner behind cm-admin migrate.
 *
 * Ownership: the caller owns every PGconn (PQfinish) and PGresult (PQclear)
 * these functions return, and a struct cm_pg_migrations from _load until
 * _release. Nothing here prints: libpq's notices are discarded on the
 * connections made here. */
#ifndef CM_PG_H
#define CM_PG_H

#include <libpq-fe.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

struct cm_err;
struct cm_buf;

/* The conninfo to use: opt if set, else $CM_DATABASE_URL, else "" (libpq's
 * own defaults: PGHOST, PGDATABASE, the local socket). */
const char *cm_pg_conninfo(const char *opt);
/* Checks that conninfo is a valid libpq conninfo string or URI (a usage
 * error, unlike a server that does not answer). */
int cm_pg_conninfo_check(const char *conninfo, struct cm_err *err);
/* Connects once (10 s connect timeout unless conninfo sets one, client
 * encoding UTF8, application name the tool's); NULL with err on failure. */
PGconn *cm_pg_connect(const char *conninfo, struct cm_err *err);
/* The same with another connect timeout (libpq counts 2 s at least). */
PGconn *cm_pg_connect_timeout(const char *conninfo, int seconds, struct cm_err *err);

/* Connects, retrying with backoff for budget_ms; gives up early when *stop
 * becomes non-zero (stop may be NULL). */
PGconn *cm_pg_connect_retry(const char *conninfo, int64_t budget_ms,
                            const volatile sig_atomic_t *stop, struct cm_err *err);

/* What a failed command means for its caller. */
enum cm_pg_fail {
	CM_PG_FATAL = 0, /* a statement or schema error: retrying will not help */
	CM_PG_RETRY = 1, /* connection lost, server shutting down, deadlock: retry */
	CM_PG_DATA = 2,  /* a value the server refused (class 22, 23, 54): a bad row */
};
/* Classifies the failure of the last command on c; r is its result (NULL
 * when there was none). */
enum cm_pg_fail cm_pg_classify(PGconn *c, const PGresult *r);
/* Fills err with "WHAT: MESSAGE (SQLSTATE XXXXX)" on one line, from r or,
 * when r is NULL, from the connection; returns -1. */
int cm_pg_errf(struct cm_err *err, PGconn *c, const PGresult *r, const char *what);
/* Runs sql (one or more statements, no parameters) and discards the
 * result; -1 with err when it fails. */
int cm_pg_exec(PGconn *c, const char *sql, struct cm_err *err);
/* Runs one statement with text parameters; the result (tuples or command
 * OK) for the caller to PQclear, or NULL with err. */
PGresult *cm_pg_query(PGconn *c, const char *sql, int nparams, const char *const *params,
                      struct cm_err *err);

/* Appends s[0..n) escaped for COPY's text format (backslash, tab, LF, CR). */
int cm_pg_copy_escape(struct cm_buf *b, const char *s, size_t n);
/* The line (from 1) of text[0..len) holding character pos (from 1, as in
 * PG_DIAG_STATEMENT_POSITION, counting UTF-8 characters). */
unsigned long cm_pg_pos_line(const char *text, size_t len, unsigned long pos);

/* One migration file, NNN_name.sql, and what the database says of it. */
struct cm_pg_migration {
	char *file;        /* "001_init.sql"; NULL for an applied version without a file */
	char *version;     /* "001": the digits before the first '_' */
	char checksum[65]; /* SHA-256 of the file, hex */
	int applied;
	int changed;         /* applied, but the file differs from what was applied */
	char applied_at[32]; /* "2026-11-27T10:15:00Z" when applied */
};

struct cm_pg_migrations {
	char *dir;
	struct cm_pg_migration *v; /* in version order */
	size_t n;
};

/* The directory of migration files: opt, else $CM_SQL_DIR, else
 * BIN/../share/campaign-manager/sql, else BIN/../share/sql when it holds
 * 001_init.sql (a source tree), else DATADIR/sql fixed at build time; BIN is
 * the directory of the running program. */
int cm_pg_sql_dir(const char *opt, char *out, size_t size, struct cm_err *err);
/* Lists dir's NNN_*.sql files in numeric order; other files are ignored, two
 * files with one number are an error. */
int cm_pg_migrations_load(struct cm_pg_migrations *m, const char *dir, struct cm_err *err);
/* Marks what the database has applied (read-only: a database without the
 * schema_migrations table has applied nothing); versions applied without a
 * file are appended with file NULL. */
int cm_pg_migrations_status(PGconn *c, struct cm_pg_migrations *m, struct cm_err *err);
/* Called after each migration applied, with the time it took. */
typedef void (*cm_pg_migrate_cb)(void *ctx, const struct cm_pg_migration *mig, int64_t ms);
/* Applies the pending migrations in order, each in its own transaction with
 * its schema_migrations row, under an advisory lock so that concurrent runs
 * wait for each other; returns the number applied, or -1 with err
 * ("FILE:LINE: ERROR: ..."). A run that finds nothing pending changes
 * nothing. m's status is refreshed under the lock. */
int cm_pg_migrate(PGconn *c, struct cm_pg_migrations *m, cm_pg_migrate_cb cb, void *ctx,
                  struct cm_err *err);
void cm_pg_migrations_release(struct cm_pg_migrations *m);

#endif
