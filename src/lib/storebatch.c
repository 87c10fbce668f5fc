/* storebatch.c - one batch of cm-store's rows in one transaction: COPY,
 * the staging fallback, profiles and limits in SQL, halving to isolate bad
 * rows, retrying on the one backoff. */
#include "storebatch.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "pg.h"
#include "retry.h"

#define COPY_CHUNK (256 * 1024)

#define STAGE_SQL                                                                                  \
	"CREATE TEMP TABLE IF NOT EXISTS cm_stage_events (event_id text COLLATE \"C\", "           \
	"event_type text, user_id text COLLATE \"C\", occurred_at timestamptz, properties jsonb) " \
	"ON COMMIT DELETE ROWS; "                                                                  \
	"CREATE TEMP TABLE IF NOT EXISTS cm_stage_matches (campaign_id bigint, "                   \
	"event_id text COLLATE \"C\", user_id text COLLATE \"C\", event_type text, "               \
	"occurred_at timestamptz, outcome text, variant text) ON COMMIT DELETE ROWS"

#define COPY_EVENTS_SQL  "BEGIN; COPY events " CM_STOREROW_EVENT_COLS " FROM STDIN"
#define COPY_MATCHES_SQL "COPY matches " CM_STOREROW_MATCH_COLS " FROM STDIN"
#define STAGE_EVENTS_SQL "BEGIN; COPY cm_stage_events FROM STDIN"
#define STAGE_MATCH_SQL  "COPY cm_stage_matches FROM STDIN"

/* Moves the staged rows in key order, so that two transactions storing the
 * same rows lock them in the same order. */
#define MOVE_SQL                                                                                   \
	"INSERT INTO events " CM_STOREROW_EVENT_COLS " SELECT * FROM cm_stage_events "             \
	"ORDER BY event_id ON CONFLICT DO NOTHING; "                                               \
	"INSERT INTO matches " CM_STOREROW_MATCH_COLS " SELECT * FROM cm_stage_matches "           \
	"ORDER BY 1, 2 ON CONFLICT DO NOTHING"

#define MERGE_SQL  "SELECT cm_merge_profiles($1::jsonb)"
#define DECIDE_SQL "SELECT outcome, count(*) FROM cm_decide_limits($1::jsonb) GROUP BY 1"

/* What a failed attempt means: cm_pg_fail's classes, and a unique violation
 * or deadlock on the COPY path (some rows are there already). */
enum fail {
	FAIL_FATAL = CM_PG_FATAL,
	FAIL_RETRY = CM_PG_RETRY,
	FAIL_DATA = CM_PG_DATA,
	FAIL_CONFLICT,
};

/* What one attempt committed, added to the stats only after COMMIT. */
struct tally {
	unsigned long long rows[2]; /* events, matches inserted */
	int nrows;
	unsigned long long matched, holdout, capped, profiles;
};

void cm_store_batch_init(struct cm_store_batch *b)
{
	memset(b, 0, sizeof(*b));
	cm_buf_init(&b->out.ev, 0);
	cm_buf_init(&b->out.mt, 0);
	cm_buf_init(&b->out.lim, 0);
	cm_buf_init(&b->out.pf, 0);
}

void cm_store_batch_reset(struct cm_store_batch *b)
{
	b->n = 0;
	cm_buf_reset(&b->out.ev);
	cm_buf_reset(&b->out.mt);
	cm_buf_reset(&b->out.lim);
	cm_buf_reset(&b->out.pf);
}

void cm_store_batch_release(struct cm_store_batch *b)
{
	cm_buf_release(&b->out.ev);
	cm_buf_release(&b->out.mt);
	cm_buf_release(&b->out.lim);
	cm_buf_release(&b->out.pf);
	free(b->rows);
	b->rows = NULL;
	b->n = b->cap = 0;
}

/* Makes room for one more row. */
static struct cm_store_row *new_row(struct cm_store_batch *b, struct cm_err *err)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1024;
		struct cm_store_row *rows = realloc(b->rows, cap * sizeof(*rows));

		if (!rows) {
			cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
			return NULL;
		}
		b->rows = rows;
		b->cap = cap;
	}
	return &b->rows[b->n];
}

/* Marks the current end of every part of the text in r (a row so far empty). */
static void mark_row(const struct cm_store_batch *b, struct cm_store_row *r)
{
	memset(r, 0, sizeof(*r));
	r->ev_off = b->out.ev.len;
	r->mt_off = b->out.mt.len;
	r->lim_off = b->out.lim.len;
	r->pf_off = b->out.pf.len;
}

/* The record's rows go to the end of the text; the row says where. */
int cm_store_batch_add(struct cm_store_batch *b, struct cm_storerow *sr, const struct cm_jdoc *d,
                       const struct cm_event_view *v, struct cm_storerow_counts *n,
                       struct cm_err *err)
{
	struct cm_store_row *r = new_row(b, err);
	size_t ev, mt, lim, pf;

	if (!r)
		return -1;
	mark_row(b, r);
	if (cm_storerow_add(sr, d, v, &b->out, n, err) < 0)
		return -1;
	ev = b->out.ev.len - r->ev_off;
	mt = b->out.mt.len - r->mt_off;
	lim = b->out.lim.len - r->lim_off;
	pf = b->out.pf.len - r->pf_off;
	if (ev > UINT32_MAX || mt > UINT32_MAX || lim > UINT32_MAX || pf > UINT32_MAX) {
		b->out.ev.len = r->ev_off;
		b->out.mt.len = r->mt_off;
		b->out.lim.len = r->lim_off;
		b->out.pf.len = r->pf_off;
		return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
	}
	r->ev_len = (uint32_t)ev;
	r->mt_len = (uint32_t)mt;
	r->lim_len = (uint32_t)lim;
	r->pf_len = (uint32_t)pf;
	b->n++;
	return 0;
}

/* A row with no text, so that the tool's own per-row records line up. */
int cm_store_batch_skip(struct cm_store_batch *b, struct cm_err *err)
{
	struct cm_store_row *r = new_row(b, err);

	if (!r)
		return -1;
	mark_row(b, r);
	r->state = CM_STORE_SKIP;
	b->n++;
	return 0;
}

size_t cm_store_batch_bytes(const struct cm_store_batch *b)
{
	return b->out.ev.len + b->out.mt.len + b->out.lim.len + b->out.pf.len;
}

void cm_store_conn_init(struct cm_store_conn *c, const char *conninfo, int64_t retry_ms,
                        const struct cm_store_hooks *hooks)
{
	memset(c, 0, sizeof(*c));
	c->conninfo = conninfo;
	c->retry_ms = retry_ms;
	if (hooks)
		c->hooks = *hooks;
	cm_buf_init(&c->arr, 0);
}

void cm_store_conn_release(struct cm_store_conn *c)
{
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
	cm_buf_release(&c->arr);
}

/* Prepares a new connection: a commit that waits for the disk (a tool
 * acknowledges what is committed, so it must be durable), the staging
 * tables, and a check that the schema is there (its absence is a
 * configuration error). */
static int pg_setup(struct cm_store_conn *c, struct cm_err *err)
{
	PGresult *r;
	int ok;

	r = cm_pg_query(c->pg,
	                "SELECT to_regclass('events') IS NOT NULL AND to_regclass('matches') IS "
	                "NOT NULL AND to_regclass('profile_traits') IS NOT NULL AND "
	                "to_regclass('match_limits') IS NOT NULL, "
	                "current_setting('synchronous_commit')",
	                0, NULL, err);
	if (!r)
		return -1;
	ok = !strcmp(PQgetvalue(r, 0, 0), "t");
	if (ok && !strcmp(PQgetvalue(r, 0, 1), "off") &&
	    cm_pg_exec(c->pg, "SET synchronous_commit = local", err) < 0) {
		PQclear(r);
		return -1;
	}
	PQclear(r);
	if (!ok)
		return cm_errc(err, CM_EXIT_USAGE,
		               "the database lacks the tables of migrations 001-004 (events, "
		               "matches, profiles, outcomes): run 'cm-admin migrate' first");
	return cm_pg_exec(c->pg, STAGE_SQL, err);
}

/* One attempt at a ready connection. */
static int pg_try_connect(struct cm_store_conn *c, struct cm_err *err)
{
	c->pg = cm_pg_connect(c->conninfo, err);
	if (!c->pg)
		return -1;
	if (pg_setup(c, err) == 0)
		return 0;
	PQfinish(c->pg);
	c->pg = NULL;
	return -1;
}

/* True when the tool wants the retrying to end. */
static int stopping(const struct cm_store_conn *c)
{
	return c->hooks.stop && c->hooks.stop(c->hooks.ctx);
}

/* Waits before the next attempt; -1 when the budget is spent or the tool
 * wants to stop (err then says so, code CM_EXIT_UNREACHABLE). The first
 * failure of an outage is told to the tool. */
static int retry_wait(struct cm_store_conn *c, struct cm_backoff *bo, struct cm_err *err)
{
	int stop, spent = 0;

	if (!c->outage && c->hooks.retrying)
		c->hooks.retrying(c->hooks.ctx, err->msg);
	c->outage = 1;
	stop = stopping(c);
	if (!stop) {
		spent = cm_backoff_wait(bo, c->hooks.mask) < 0;
		stop = !spent && stopping(c);
	}
	if (stop || spent) {
		cm_err_prefix(err, "%s: ", stop ? "interrupted" : "gave up");
		err->code = CM_EXIT_UNREACHABLE;
		return -1;
	}
	c->st.retries++;
	return 0;
}

/* The end of an outage, told once. */
static void outage_over(struct cm_store_conn *c)
{
	if (c->outage && c->hooks.back)
		c->hooks.back(c->hooks.ctx);
	c->outage = 0;
}

int cm_store_open(struct cm_store_conn *c, struct cm_err *err)
{
	struct cm_backoff bo;

	cm_backoff_start(&bo, c->retry_ms);
	while (pg_try_connect(c, err) < 0) {
		if (err->code != CM_EXIT_UNREACHABLE)
			return -1;
		if (retry_wait(c, &bo, err) < 0)
			return -1;
	}
	c->outage = 0; /* the tool says nothing more of a slow start */
	return 0;
}

/* Reads the results of what was sent, up to COPY IN (returns 1) or the
 * end, keeping the first failure and its class; the row counts of INSERT and
 * COPY tags go to t->rows, and with keep the last tuples result is handed
 * over (NULL when there was none). */
static int pg_results(struct cm_store_conn *c, enum fail *fail, struct tally *t, PGresult **keep,
                      struct cm_err *err)
{
	PGresult *r;
	int rc = 0;

	while ((r = PQgetResult(c->pg))) {
		ExecStatusType st = PQresultStatus(r);

		if (st == PGRES_COPY_IN) {
			PQclear(r);
			return rc < 0 ? -1 : 1;
		}
		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
			if (rc == 0) {
				const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);

				*fail = (enum fail)cm_pg_classify(c->pg, r);
				if (code && (!strcmp(code, "23505") || !strcmp(code, "40P01")))
					*fail = FAIL_CONFLICT;
				cm_pg_errf(err, c->pg, r, "PostgreSQL");
			}
			rc = -1;
		} else if (st == PGRES_TUPLES_OK && keep && rc == 0) {
			if (*keep)
				PQclear(*keep);
			*keep = r;
			continue;
		} else if (t && t->nrows < 2 &&
		           (!strncmp(PQcmdStatus(r), "INSERT", 6) ||
		            !strncmp(PQcmdStatus(r), "COPY", 4))) {
			t->rows[t->nrows++] = strtoull(PQcmdTuples(r), NULL, 10);
		}
		PQclear(r);
	}
	if (rc == 0 && PQstatus(c->pg) == CONNECTION_BAD) {
		*fail = FAIL_RETRY;
		cm_pg_errf(err, c->pg, NULL, "PostgreSQL");
		rc = -1;
	}
	return rc;
}

/* Runs a command string that ends in COPY FROM STDIN and sends
 * data[0..len) to it. */
static int pg_copy(struct cm_store_conn *c, const char *sql, const char *data, size_t len,
                   enum fail *fail, struct tally *t, struct cm_err *err)
{
	int rc;

	if (!PQsendQuery(c->pg, sql))
		return cm_pg_errf(err, c->pg, NULL, "PostgreSQL");
	rc = pg_results(c, fail, NULL, NULL, err);
	if (rc < 0)
		return -1;
	if (rc != 1)
		return cm_errc(err, CM_EXIT_REFUSED, "PostgreSQL: COPY did not start");
	while (len > 0) {
		size_t n = len < COPY_CHUNK ? len : COPY_CHUNK;

		if (PQputCopyData(c->pg, data, (int)n) != 1)
			break;
		data += n;
		len -= n;
	}
	if (PQputCopyEnd(c->pg, len ? "client stopped sending" : NULL) != 1)
		return cm_pg_errf(err, c->pg, NULL, "PostgreSQL");
	return pg_results(c, fail, t, NULL, err) < 0 ? -1 : 0;
}

/* Runs sql (several statements when param is NULL, else one with param as
 * $1); with keep, hands over its tuples. */
static int pg_step(struct cm_store_conn *c, const char *sql, const char *param, enum fail *fail,
                   struct tally *t, PGresult **keep, struct cm_err *err)
{
	int ok = param ? PQsendQueryParams(c->pg, sql, 1, NULL, &param, NULL, NULL, 0)
	               : PQsendQuery(c->pg, sql);

	if (!ok)
		return cm_pg_errf(err, c->pg, NULL, "PostgreSQL");
	return pg_results(c, fail, t, keep, err) < 0 ? -1 : 0;
}

/* Merges the identify events of text[0..len) (cm_merge_profiles). */
static int merge_profiles(struct cm_store_conn *c, const char *text, size_t len, enum fail *fail,
                          struct tally *t, struct cm_err *err)
{
	PGresult *r = NULL;

	if (cm_storerow_array(&c->arr, text, len) < 0)
		return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
	if (pg_step(c, MERGE_SQL, c->arr.data, fail, NULL, &r, err) < 0) {
		PQclear(r);
		return -1;
	}
	if (r && PQntuples(r) == 1)
		t->profiles += strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return 0;
}

/* Decides and stores the candidates of text[0..len) (cm_decide_limits),
 * counting their outcomes. */
static int decide_limits(struct cm_store_conn *c, const char *text, size_t len, enum fail *fail,
                         struct tally *t, struct cm_err *err)
{
	PGresult *r = NULL;
	int i;

	if (cm_storerow_array(&c->arr, text, len) < 0)
		return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
	if (pg_step(c, DECIDE_SQL, c->arr.data, fail, NULL, &r, err) < 0) {
		PQclear(r);
		return -1;
	}
	for (i = 0; r && i < PQntuples(r); i++) {
		const char *o = PQgetvalue(r, i, 0);
		unsigned long long k = strtoull(PQgetvalue(r, i, 1), NULL, 10);

		if (!strcmp(o, "matched"))
			t->matched += k;
		else if (!strcmp(o, "holdout"))
			t->holdout += k;
		else if (!strcmp(o, "capped"))
			t->capped += k;
	}
	PQclear(r);
	return 0;
}

/* The span of one part of the text over rows [lo, hi). */
#define SPAN(b, lo, hi, part)                                                                      \
	((b)->rows[(hi)-1].part##_off + (b)->rows[(hi)-1].part##_len - (b)->rows[lo].part##_off)

/* Stores rows [lo, hi) of b in one transaction: straight into the tables
 * with COPY, or through the staging tables when some rows may be there
 * already; then profiles, then limits; 0 when committed, -1 with the
 * failure's class in *fail. */
static int pg_store(struct cm_store_conn *c, const struct cm_store_batch *b, size_t lo, size_t hi,
                    int staged, enum fail *fail, struct cm_err *err)
{
	const struct cm_store_row *a = &b->rows[lo];
	size_t ev_len = SPAN(b, lo, hi, ev), mt_len = SPAN(b, lo, hi, mt);
	size_t lim_len = SPAN(b, lo, hi, lim), pf_len = SPAN(b, lo, hi, pf);
	int sql_parts = lim_len || pf_len;
	struct tally t;

	memset(&t, 0, sizeof(t));
	*fail = FAIL_RETRY;
	if (pg_copy(c, staged ? STAGE_EVENTS_SQL : COPY_EVENTS_SQL, b->out.ev.data + a->ev_off,
	            ev_len, fail, &t, err) < 0)
		goto abort;
	if (mt_len && pg_copy(c, staged ? STAGE_MATCH_SQL : COPY_MATCHES_SQL,
	                      b->out.mt.data + a->mt_off, mt_len, fail, &t, err) < 0)
		goto abort;
	if (staged) {
		t.nrows = 0; /* the INSERTs' counts are the new rows */
		if (pg_step(c, sql_parts ? MOVE_SQL : MOVE_SQL "; COMMIT", NULL, fail, &t, NULL,
		            err) < 0)
			goto abort;
	}
	if (pf_len && merge_profiles(c, b->out.pf.data + a->pf_off, pf_len, fail, &t, err) < 0)
		goto abort;
	if (lim_len && decide_limits(c, b->out.lim.data + a->lim_off, lim_len, fail, &t, err) < 0)
		goto abort;
	if ((!staged || sql_parts) && pg_step(c, "COMMIT", NULL, fail, NULL, NULL, err) < 0)
		goto abort;
	c->st.events_new += t.rows[0];
	c->st.matches_new += t.rows[1];
	c->st.matched += t.matched;
	c->st.holdout += t.holdout;
	c->st.capped += t.capped;
	c->st.profiles += t.profiles;
	return 0;
abort:
	if (c->pg && PQstatus(c->pg) == CONNECTION_OK)
		PQclear(PQexec(c->pg, "ROLLBACK"));
	return -1;
}

/* Stores rows [lo, hi), reconnecting and retrying on the backoff while the
 * failure is worth a retry, and falling back from COPY to the staging tables
 * when rows are there already; -1 with *fail FAIL_DATA when a row is at
 * fault, else with err->code saying why it gave up. */
static int store_range(struct cm_store_conn *c, const struct cm_store_batch *b, size_t lo,
                       size_t hi, struct cm_backoff *bo, enum fail *fail, struct cm_err *err)
{
	for (;;) {
		int staged = c->staged_left > 0;

		if (c->pg || pg_try_connect(c, err) == 0) {
			if (pg_store(c, b, lo, hi, staged, fail, err) == 0) {
				outage_over(c);
				return 0;
			}
			if (!staged && (*fail == FAIL_CONFLICT || *fail == FAIL_DATA)) {
				/* Some rows are stored already (a redelivery) or one is
				 * bad: take the careful path for a while. */
				c->staged_left = CM_STORE_STAGED_BATCHES;
				continue;
			}
			if (*fail == FAIL_DATA)
				return -1;
			if (*fail == FAIL_FATAL) {
				err->code = CM_EXIT_REFUSED;
				return -1;
			}
			if (PQstatus(c->pg) != CONNECTION_OK) {
				PQfinish(c->pg);
				c->pg = NULL;
			}
		} else if (err->code != CM_EXIT_UNREACHABLE) {
			*fail = FAIL_FATAL;
			return -1;
		}
		*fail = FAIL_RETRY;
		if (retry_wait(c, bo, err) < 0)
			return -1;
	}
}

/* Finds the rows the server refuses by halving the range, so that one bad
 * value costs its own row and not the whole batch. */
static int store_bisect(struct cm_store_conn *c, struct cm_store_batch *b, size_t lo, size_t hi,
                        struct cm_backoff *bo, struct cm_err *err)
{
	enum fail fail;
	size_t i, mid;

	for (i = lo; i < hi && b->rows[i].state != CM_STORE_PENDING; i++)
		;
	if (i == hi)
		return 0; /* nothing to store here */
	if (store_range(c, b, lo, hi, bo, &fail, err) == 0) {
		for (i = lo; i < hi; i++)
			if (b->rows[i].state == CM_STORE_PENDING)
				b->rows[i].state = CM_STORE_STORED;
		return 0;
	}
	if (fail != FAIL_DATA)
		return -1;
	if (hi - lo == 1) {
		b->rows[lo].state = CM_STORE_REFUSED;
		c->st.refused++;
		if (c->hooks.refused)
			c->hooks.refused(c->hooks.ctx, lo, err->msg);
		return 0;
	}
	mid = lo + (hi - lo) / 2;
	if (store_bisect(c, b, lo, mid, bo, err) < 0)
		return -1;
	return store_bisect(c, b, mid, hi, bo, err);
}

int cm_store_batch_store(struct cm_store_conn *c, struct cm_store_batch *b, struct cm_err *err)
{
	struct cm_backoff bo;

	if (b->n == 0)
		return 0;
	cm_backoff_start(&bo, c->retry_ms);
	if (store_bisect(c, b, 0, b->n, &bo, err) < 0)
		return -1;
	c->st.batches++;
	if (c->staged_left > 0)
		c->staged_left--;
	return 0;
}
