/* campdb.c - active campaigns from PostgreSQL, reloaded on NOTIFY by a
 * background thread and handed to the matcher between two events. */
#include "campdb.h"

#include "buf.h"
#include "err.h"
#include "json.h"
#include "pg.h"
#include "retry.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CAMPDB_CHANNEL "cm_campaigns"
/* How long to let a burst of notifications settle before reloading. */
#define CAMPDB_SETTLE_MS 50
/* How long cm_campdb_open keeps trying. */
#define CAMPDB_OPEN_BUDGET_MS 10000
/* The largest campaigns document read from the database. */
#define CAMPDB_MAX_TOKENS (64u * 1024 * 1024)

/* The delivery controls (CONTRACT 1.6) come along from columns limit,
 * holdout and variants when the table has them (to_jsonb of the row has a
 * key only for a column that exists), so that the query works before and
 * after the migration that adds them. */
static const char load_sql[] =
    "SELECT coalesce(json_agg(jsonb_build_object('id', id, 'name', name, 'status', status,"
    " 'starts_at', starts_at, 'ends_at', ends_at, 'rule', rule)"
    " || jsonb_strip_nulls(jsonb_build_object('limit', to_jsonb(c) -> 'limit',"
    " 'holdout', to_jsonb(c) -> 'holdout', 'variants', to_jsonb(c) -> 'variants'))"
    " ORDER BY id), '[]')::text"
    " FROM campaigns AS c WHERE status = 'active'";

struct cm_campdb {
	char *conninfo;
	cm_rule_reportfn *report;
	void *ctx;
	PGconn *conn; /* the thread's, once started */
	pthread_t thread;
	int started;
	int wake[2]; /* written to stop the thread */
	volatile sig_atomic_t stop;
	_Atomic(struct cm_ruleset *) next; /* built, not yet taken by the matcher */
	struct cm_ruleset *cur;            /* the matcher's */
	unsigned long generation;          /* the matcher's count of sets taken */
	size_t skipped;                    /* campaigns left out of the first load */
};

/* Counts the problems of one campaign while passing them on. */
struct count_ctx {
	cm_rule_reportfn *report;
	void *ctx;
	int n;
};

static void count_report(void *p, const char *msg)
{
	struct count_ctx *c = p;

	c->n++;
	if (c->report)
		c->report(c->ctx, msg);
}

static void discard_report(void *p, const char *msg)
{
	(void)p;
	(void)msg;
}

/* Compiles the campaigns of d not marked in skip into a new set; returns
 * NULL when the set has problems (reported through rep) or memory runs out. */
static struct cm_ruleset *build_set(const struct cm_jdoc *d, const char *source,
                                    const unsigned char *skip, cm_rule_reportfn *rep, void *ctx)
{
	struct cm_ruleset *s = cm_ruleset_new();
	uint32_t i = 1, k = 0;

	if (!s)
		return NULL;
	for (; i < d->tok[0].next; i = d->tok[i].next, k++) {
		if (skip[k])
			continue;
		if (cm_ruleset_add(s, d, i, source, 0, rep, ctx) != 0)
			goto fail;
	}
	if (cm_ruleset_compile(s, rep, ctx) != 0)
		goto fail;
	return s;
fail:
	cm_ruleset_free(s);
	return NULL;
}

struct cm_ruleset *cm_campdb_build(const char *json, size_t len, const char *source,
                                   cm_rule_reportfn *report, void *ctx, size_t *skipped)
{
	struct cm_jdoc d;
	struct cm_err err;
	struct cm_ruleset *s = NULL;
	unsigned char *skip = NULL;
	struct cm_buf one = CM_BUF_INIT;
	uint32_t i, k, n;

	*skipped = 0;
	cm_jdoc_init(&d, 0);
	d.max_tokens = CAMPDB_MAX_TOKENS;
	if (cm_json_parse(&d, json, len, &err) < 0 || d.tok[0].type != CM_JARR) {
		if (report) {
			char msg[600];

			snprintf(msg, sizeof(msg), "%s: not a JSON array of campaigns", source);
			report(ctx, msg);
		}
		cm_jdoc_release(&d);
		return cm_ruleset_new();
	}
	n = d.tok[0].count;
	skip = calloc(n ? n : 1, 1);
	if (!skip)
		goto out;
	/* First each campaign on its own (validation without jq, cheap), so
	 * that one bad campaign cannot take the others down. */
	for (i = 1, k = 0; i < d.tok[0].next; i = d.tok[i].next, k++) {
		struct cm_ruleset *one_set = cm_ruleset_new();
		struct count_ctx c = {report, ctx, 0};

		if (!one_set)
			goto out;
		if (cm_ruleset_add(one_set, &d, i, source, 0, count_report, &c) != 0)
			skip[k] = 1;
		cm_ruleset_free(one_set);
	}
	s = build_set(&d, source, skip, discard_report, NULL);
	if (!s) {
		/* The set failed as a whole: a jq predicate that does not
		 * compile. Find it by compiling each jq campaign on its own. */
		for (i = 1, k = 0; i < d.tok[0].next; i = d.tok[i].next, k++) {
			uint32_t rule;

			if (skip[k] || (rule = cm_json_get(&d, i, "rule", 4)) == CM_JNONE ||
			    d.tok[rule].type != CM_JOBJ ||
			    cm_json_get(&d, rule, "jq", 2) == CM_JNONE)
				continue;
			cm_buf_reset(&one);
			if (cm_json_write(&d, i, &one) < 0)
				goto out;
			if (cm_campaign_validate(one.data, one.len, 0, &err) < 0) {
				uint32_t id = cm_json_get(&d, i, "id", 2);
				char msg[700];

				skip[k] = 1;
				snprintf(msg, sizeof(msg), "%s: campaign %.*s: %s", source,
				         id != CM_JNONE ? (int)d.tok[id].len : 1,
				         id != CM_JNONE ? d.src + d.tok[id].off : "?", err.msg);
				if (report)
					report(ctx, msg);
			}
		}
		s = build_set(&d, source, skip, report, ctx);
	}
out:
	for (k = 0; skip && k < n; k++)
		*skipped += skip[k];
	if (!s && skip) {
		/* Still failing: match nothing rather than something wrong. */
		if (report)
			report(ctx, "the campaigns do not compile together; matching none");
		s = cm_ruleset_new();
		if (s && cm_ruleset_compile(s, discard_report, NULL) != 0) {
			cm_ruleset_free(s);
			s = NULL;
		}
	}
	free(skip);
	cm_buf_release(&one);
	cm_jdoc_release(&d);
	return s;
}

int cm_campdb_load(PGconn *c, cm_rule_reportfn *report, void *ctx, struct cm_ruleset **out,
                   size_t *skipped, struct cm_err *err)
{
	PGresult *r = cm_pg_query(c, load_sql, 0, NULL, err);

	if (!r)
		return -1;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return cm_errf(err, "loading campaigns: unexpected result");
	}
	*out = cm_campdb_build(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), "database",
	                       report, ctx, skipped);
	PQclear(r);
	if (!*out)
		return cm_errf(err, "loading campaigns: out of memory");
	return 0;
}

/* Reads the active campaigns over c and builds a set; -1 with err when the
 * query fails (the connection may be gone). *skipped counts the campaigns
 * left out. */
static int load(struct cm_campdb *db, PGconn *c, struct cm_ruleset **out, size_t *skipped,
                struct cm_err *err)
{
	return cm_campdb_load(c, db->report, db->ctx, out, skipped, err);
}

/* Connects, subscribes, then loads (in that order, so that no change falls
 * between the load and the subscription). */
static PGconn *connect_listen(struct cm_campdb *db, int64_t budget_ms, struct cm_err *err)
{
	PGconn *c = cm_pg_connect_retry(db->conninfo, budget_ms, &db->stop, err);

	if (!c)
		return NULL;
	if (cm_pg_exec(c, "SET TIME ZONE 'UTC'; LISTEN " CAMPDB_CHANNEL, err) < 0) {
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* Hands a new set to the matcher, freeing one it never took. */
static void publish(struct cm_campdb *db, struct cm_ruleset *s)
{
	struct cm_ruleset *old = atomic_exchange(&db->next, s);

	if (old)
		cm_ruleset_free(old);
}

/* True when a notification arrived (after letting a burst settle); -1 when
 * the connection is gone. */
static int drain_notifies(PGconn *c)
{
	PGnotify *n;
	int got = 0;

	if (!PQconsumeInput(c))
		return -1;
	while ((n = PQnotifies(c))) {
		got = 1;
		PQfreemem(n);
	}
	return got;
}

static void warn_report(struct cm_campdb *db, const char *what, const struct cm_err *err)
{
	char msg[700];

	if (!db->report)
		return;
	snprintf(msg, sizeof(msg), "%s: %s", what, err->msg);
	db->report(db->ctx, msg);
}

/* The reload thread: waits for notifications, reconnects when the server
 * goes away, and reloads after either. */
static void *reload_thread(void *arg)
{
	struct cm_campdb *db = arg;
	struct cm_err err;
	PGconn *c = db->conn;
	int need_load = 0;

	while (!db->stop) {
		if (!c) {
			c = connect_listen(db, INT64_MAX / 4, &err);
			if (!c)
				continue; /* only when stopping */
			need_load = 1;
		}
		if (need_load) {
			struct cm_ruleset *s = NULL;
			size_t skipped = 0;

			if (load(db, c, &s, &skipped, &err) < 0) {
				warn_report(db, "reloading campaigns", &err);
				PQfinish(c);
				c = NULL;
				continue;
			}
			/* s stays alive until this thread publishes again. */
			publish(db, s);
			need_load = 0;
			if (db->report) {
				char msg[200];

				snprintf(msg, sizeof(msg),
				         "reloaded %zu active campaigns from the database%s",
				         cm_ruleset_active(s),
				         skipped ? " (some skipped, see above)" : "");
				db->report(db->ctx, msg);
			}
		}
		struct pollfd p[2] = {{PQsocket(c), POLLIN, 0}, {db->wake[0], POLLIN, 0}};

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		int got = drain_notifies(c);

		if (got > 0) {
			/* Let a burst of changes settle into one reload. */
			poll(NULL, 0, CAMPDB_SETTLE_MS);
			got = drain_notifies(c);
			need_load = 1;
		}
		if (got < 0 || PQstatus(c) != CONNECTION_OK) {
			if (db->report)
				db->report(db->ctx, "lost the database connection; reconnecting");
			PQfinish(c);
			c = NULL;
		}
	}
	if (c)
		PQfinish(c);
	db->conn = NULL;
	return NULL;
}

struct cm_campdb *cm_campdb_open(const char *conninfo, cm_rule_reportfn *report, void *ctx,
                                 struct cm_err *err)
{
	struct cm_campdb *db = calloc(1, sizeof(*db));
	struct cm_ruleset *s = NULL;
	struct cm_backoff backoff;

	if (!db) {
		cm_errf(err, "out of memory");
		return NULL;
	}
	db->wake[0] = db->wake[1] = -1;
	db->report = report;
	db->ctx = ctx;
	db->conninfo = strdup(conninfo);
	atomic_init(&db->next, NULL);
	if (!db->conninfo || pipe(db->wake) < 0) {
		cm_errf(err, "cannot start: %s", strerror(errno));
		goto fail;
	}
	/* The server may be restarting as we start: retry within the budget. */
	cm_backoff_start(&backoff, CAMPDB_OPEN_BUDGET_MS);
	for (;;) {
		db->conn = connect_listen(db, CAMPDB_OPEN_BUDGET_MS, err);
		if (db->conn && load(db, db->conn, &s, &db->skipped, err) == 0)
			break;
		if (db->conn)
			PQfinish(db->conn);
		db->conn = NULL;
		if (cm_backoff_wait(&backoff, NULL) < 0)
			goto fail;
	}
	db->cur = s;
	db->generation = 1;
	if (pthread_create(&db->thread, NULL, reload_thread, db) != 0) {
		cm_errf(err, "cannot start the reload thread");
		goto fail;
	}
	db->started = 1;
	return db;
fail:
	cm_campdb_close(db);
	return NULL;
}

struct cm_ruleset *cm_campdb_current(struct cm_campdb *db, unsigned long *generation)
{
	struct cm_ruleset *n = atomic_load_explicit(&db->next, memory_order_relaxed);

	if (n) {
		n = atomic_exchange(&db->next, NULL);
		if (n) {
			cm_ruleset_free(db->cur);
			db->cur = n;
			db->generation++;
		}
	}
	if (generation)
		*generation = db->generation;
	return db->cur;
}

size_t cm_campdb_skipped(const struct cm_campdb *db)
{
	return db->skipped;
}

int cm_campdb_pending(struct cm_campdb *db)
{
	return atomic_load_explicit(&db->next, memory_order_relaxed) != NULL;
}

void cm_campdb_close(struct cm_campdb *db)
{
	if (!db)
		return;
	if (db->started) {
		db->stop = 1;
		if (write(db->wake[1], "x", 1) < 0) {
			/* The thread also sees db->stop at its next wake-up. */
		}
		pthread_join(db->thread, NULL);
	} else if (db->conn) {
		PQfinish(db->conn);
	}
	struct cm_ruleset *n = atomic_exchange(&db->next, NULL);

	if (n)
		cm_ruleset_free(n);
	if (db->cur)
		cm_ruleset_free(db->cur);
	if (db->wake[0] >= 0)
		close(db->wake[0]);
	if (db->wake[1] >= 0)
		close(db->wake[1]);
	free(db->conninfo);
	free(db);
}
