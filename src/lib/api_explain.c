/* api_explain.c - GET /events/{event_id}/explain: why each active campaign
 * did or did not match a stored event, and what became of its stored
 * matches.
 *
 * The event is explained against the active campaigns as they are now, by
 * the explain evaluator of cm-match --explain (cm_outcomes_explain over
 * rule_explain.c), never by code of its own. The campaigns are loaded by
 * campdb's code into one compiled set per server, shared by the database
 * threads under a lock; before each use a cheap query compares the
 * campaigns table's fingerprint (rows, sum of versions, greatest id, latest
 * update) with the set's, and a change (through this server or any other
 * client) rebuilds it, so an explain never reads campaigns older than the
 * request. Candidates are decided as a worker decides them (the bucket;
 * limits are cm-store's), and the stored outcomes say what was decided,
 * with the reason of each capped one resolved from its capped_by. */
#include "api.h"

#include "campdb.h"
#include "err.h"
#include "evrow.h"
#include "json.h"
#include "outcome.h"
#include "pg.h"
#include "pgcopy.h"
#include "rule.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FINGERPRINT_SQL                                                                            \
	"SELECT count(*) || ':' || coalesce(sum(version), 0) || ':' || coalesce(max(id), 0) || "   \
	"':' || coalesce(max(updated_at)::text, '') FROM campaigns"

/* The stored matches of the event, with the time of the match a capped one
 * yields to. */
#define STORED_SQL                                                                                 \
	CM_API_EVENT_MATCHES_SQL(                                                                  \
	    "m.campaign_id, cm_utc(m.matched_at), " CM_API_OUTCOME_COLS                            \
	    ", (SELECT cm_utc(y.occurred_at) FROM matches y"                                       \
	    " WHERE y.campaign_id = m.campaign_id AND y.event_id = m.capped_by)")

struct cm_api_explain {
	pthread_mutex_t lock;
	struct cm_ruleset *set; /* NULL until the first explain */
	char fingerprint[128];  /* of the campaigns the set was built from */
};

int cm_api_explain_init(struct cm_api *a, struct cm_err *err)
{
	a->explain = calloc(1, sizeof(*a->explain));
	if (!a->explain)
		return cm_errf(err, "out of memory");
	pthread_mutex_init(&a->explain->lock, NULL);
	return 0;
}

void cm_api_explain_free(struct cm_api *a)
{
	if (!a || !a->explain)
		return;
	cm_ruleset_free(a->explain->set);
	pthread_mutex_destroy(&a->explain->lock);
	free(a->explain);
	a->explain = NULL;
}

/* Campaigns that fail to load are left out of the set; the log has them. */
static void report_skip(void *ctx, const char *msg)
{
	struct cm_api *a = ctx;

	cm_logkv(a->log, CM_LOG_WARNING, "explain: campaign left out", "error", msg, CM_LOG_END);
}

/* Makes x->set current for the campaigns table (the lock held); -1 with
 * err when a query fails. */
static int refresh(struct cm_api *a, PGconn *pg, struct cm_err *err)
{
	struct cm_api_explain *x = a->explain;
	struct cm_ruleset *s = NULL;
	PGresult *res = cm_pg_query(pg, FINGERPRINT_SQL, 0, NULL, err);
	size_t skipped;

	if (!res)
		return -1;
	if (x->set && strcmp(PQgetvalue(res, 0, 0), x->fingerprint) == 0) {
		PQclear(res);
		return 0;
	}
	/* Read after the fingerprint: a change in between only makes the
	 * next request load again. */
	snprintf(x->fingerprint, sizeof(x->fingerprint), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	if (cm_campdb_load(pg, report_skip, a, &s, &skipped, err) < 0) {
		x->fingerprint[0] = 0;
		return -1;
	}
	cm_ruleset_free(x->set);
	x->set = s;
	return 0;
}

/* Reads the stored event c->param into line (a canonical event, closed);
 * 1 when found, 0 when not, -1 with err. */
static int read_event(PGconn *pg, const char *id, struct cm_buf *line, struct cm_err *err)
{
	struct cm_pgcopy r;
	struct cm_buf q = CM_BUF_INIT;
	char *lit = PQescapeLiteral(pg, id, strlen(id));
	int st, found = 0;

	if (!lit)
		return cm_pg_errf(err, pg, NULL, "quoting the event id");
	st = cm_buf_addf(&q, "SELECT " CM_EVROW_COLS " FROM events e WHERE e.event_id = %s", lit);
	PQfreemem(lit);
	if (st < 0)
		return cm_errf(err, "out of memory");
	st = cm_pgcopy_start(&r, pg, q.data, err);
	cm_buf_release(&q);
	if (st < 0)
		return -1;
	while ((st = cm_pgcopy_next(&r, err)) > 0) {
		if (cm_evrow_line(&r, NULL, line, err) < 0 || cm_buf_addc(line, '}') < 0) {
			st = -1;
			break;
		}
		found = 1;
	}
	cm_pgcopy_release(&r);
	return st < 0 ? -1 : found;
}

/* The stored traits of user[0..n) into doc; NULL when the user has none. */
static const struct cm_jdoc *read_profile(PGconn *pg, const char *user, size_t n,
                                          struct cm_jdoc *doc, struct cm_buf *text,
                                          struct cm_err *err, int *failed)
{
	struct cm_buf u = CM_BUF_INIT;
	const char *params[1];
	PGresult *res;
	const struct cm_jdoc *out = NULL;

	*failed = 0;
	if (cm_buf_add(&u, user, n) < 0 || cm_buf_addc(&u, 0) < 0) {
		cm_buf_release(&u);
		*failed = 1;
		cm_errf(err, "out of memory");
		return NULL;
	}
	params[0] = u.data;
	res =
	    cm_pg_query(pg, "SELECT traits::text FROM profiles WHERE user_id = $1", 1, params, err);
	cm_buf_release(&u);
	if (!res) {
		*failed = 1;
		return NULL;
	}
	if (PQntuples(res) == 1 &&
	    cm_buf_add(text, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0)) == 0 &&
	    cm_json_parse(doc, text->data, text->len, NULL) == 0)
		out = doc;
	PQclear(res);
	return out;
}

/* Appends the stored match of row i of res (STORED_SQL) with its reason. */
static int add_stored(struct cm_buf *b, const PGresult *res, int i)
{
	const char *outcome = PQgetvalue(res, i, 2);
	struct cm_buf why = CM_BUF_INIT;
	int rc;

	if (strcmp(outcome, "capped") == 0 && !PQgetisnull(res, i, 4) && !PQgetisnull(res, i, 5))
		rc = cm_buf_addf(&why, "capped: user already matched on %s by event %s",
		                 PQgetvalue(res, i, 5), PQgetvalue(res, i, 4));
	else if (strcmp(outcome, "capped") == 0 && !PQgetisnull(res, i, 4))
		rc = cm_buf_addf(&why, "capped: yields to event %s (no longer stored)",
		                 PQgetvalue(res, i, 4));
	else if (strcmp(outcome, "capped") == 0)
		rc = cm_buf_adds(&why, "capped by the campaign's limit");
	else if (strcmp(outcome, "holdout") == 0)
		rc = cm_buf_adds(&why, "holdout: the user is in the campaign's control group");
	else if (!PQgetisnull(res, i, 3))
		rc = cm_buf_addf(&why, "matched: variant %s", PQgetvalue(res, i, 3));
	else
		rc = cm_buf_adds(&why, "matched");
	rc |= cm_buf_addf(b, "%s{\"campaign_id\":%s", i ? "," : "", PQgetvalue(res, i, 0)) |
	      cm_api_add_outcome(b, res, i, 2) | cm_buf_adds(b, ",\"matched_at\":") |
	      cm_api_add_col(b, res, i, 1) | cm_buf_adds(b, ",\"reason\":") |
	      cm_buf_add_jstr(b, why.data ? why.data : "", why.len) | cm_buf_addc(b, '}');
	cm_buf_release(&why);
	return rc;
}

/* The explain of c->param: 200 {"event_id","explain":[...],"stored":[...]},
 * or 404. */
static void explain_db(struct cm_api_call *c, PGconn *pg)
{
	struct cm_api_explain *x = c->api->explain;
	const char *params[1] = {c->param};
	struct cm_buf line = CM_BUF_INIT, scratch = CM_BUF_INIT, ptext = CM_BUF_INIT;
	struct cm_buf b = CM_BUF_INIT, lines = CM_BUF_INIT;
	struct cm_jdoc doc, prof;
	struct cm_rule_event ev;
	struct cm_outcomes *o = NULL;
	struct cm_err err;
	PGresult *stored = NULL;
	const int64_t *ids;
	const char *user;
	size_t n, nc, ulen;
	int st, bad = 0, failed;

	cm_jdoc_init(&doc, 1024);
	cm_jdoc_init(&prof, 1024);
	st = read_event(pg, c->param, &line, &err);
	if (st <= 0) {
		if (st == 0)
			cm_http_detail(c->r, 404, "Event not found");
		else
			cm_api_db_error(c, pg, &err);
		goto out;
	}
	/* Stored events are valid: one that is not any more (written by
	 * other means) is explained as the error it is. */
	if (cm_json_parse(&doc, line.data, line.len, &err) < 0 ||
	    cm_rule_event_init(&ev, &doc, &scratch, &err) < 0) {
		cm_logkv(c->api->log, CM_LOG_ERROR, "explain: stored event invalid", "error",
		         err.msg, CM_LOG_END);
		cm_http_detail(c->r, 500, "Internal Server Error");
		goto out;
	}
	user = cm_json_str(&doc, ev.user_tok, &b, &ulen);
	ev.profile = user ? read_profile(pg, user, ulen, &prof, &ptext, &err, &failed) : NULL;
	if (!user || failed) {
		cm_api_db_error(c, pg, &err);
		goto out;
	}
	stored = cm_pg_query(pg, STORED_SQL, 1, params, &err);
	if (!stored) {
		cm_api_db_error(c, pg, &err);
		goto out;
	}
	o = cm_outcomes_new(0);
	if (!o)
		goto oom;
	pthread_mutex_lock(&x->lock);
	if (refresh(c->api, pg, &err) < 0) {
		pthread_mutex_unlock(&x->lock);
		cm_api_db_error(c, pg, &err);
		goto out;
	}
	n = cm_ruleset_explain_ids(x->set, ev.type, ev.type_len, &ids);
	st = cm_outcomes_explain(o, x->set, &ev, ids, n, ',', &lines, &nc, &err);
	pthread_mutex_unlock(&x->lock);
	if (st < 0)
		goto oom;
	if (lines.len)
		lines.len--; /* the last separator */
	cm_buf_reset(&b);
	bad |= cm_buf_adds(&b, "{\"event_id\":") |
	       cm_buf_add(&b, doc.src + doc.tok[ev.id_tok].off - 1, doc.tok[ev.id_tok].len + 2) |
	       cm_buf_adds(&b, ",\"explain\":[") | cm_buf_add(&b, lines.data, lines.len) |
	       cm_buf_adds(&b, "],\"stored\":[");
	for (int i = 0; i < PQntuples(stored); i++)
		bad |= add_stored(&b, stored, i);
	bad |= cm_buf_adds(&b, "]}");
	cm_api_reply_json(c->r, 200, &b, bad);
	goto out;
oom:
	cm_http_detail(c->r, 500, "Internal Server Error");
out:
	if (stored)
		PQclear(stored);
	cm_outcomes_free(o);
	cm_jdoc_release(&doc);
	cm_jdoc_release(&prof);
	cm_buf_release(&line);
	cm_buf_release(&scratch);
	cm_buf_release(&ptext);
	cm_buf_release(&b);
	cm_buf_release(&lines);
}

void cm_api_event_explain(struct cm_api_call *c)
{
	if (cm_api_event_param(c) == 0)
		cm_api_db(c, explain_db);
}
