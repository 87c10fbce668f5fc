/* api_backtest.c - POST /campaigns/backtest: what a campaign would have
 * matched in the stored events of a time range, without saving it.
 *
 * The campaign is read and validated as POST /campaigns reads its body
 * (cm_api_campaign_read, so a 422 says where, under ["body","campaign"]);
 * its status is taken as active, and without an id its users are bucketed
 * as for the id the next campaign would get. The events of the range are
 * streamed from PostgreSQL with binary COPY (pgcopy.h) in occurred_at
 * order, never loaded whole, and matched in-process against a one-campaign
 * set as a file pipeline does (`cm-export --since --until | cm-match
 * --summary`): identify events earlier in the range make the profiles, the
 * limits are applied in order from an empty state (outcome.c), and the
 * counts are outcome.c's summary.
 *
 * A backtest is bounded: max_events events scanned (default 1,000,000, at
 * most 10,000,000) and --backtest-time of wall time (default 10 s); either
 * stops it early with what it counted so far, saying which. It runs on a
 * thread of its own (never an HTTP or a database thread), and one at a time:
 * another one meanwhile is 429 with Retry-After. */
#include "api.h"

#include "err.h"
#include "evrow.h"
#include "json.h"
#include "logj.h"
#include "num.h"
#include "outcome.h"
#include "pg.h"
#include "pgcopy.h"
#include "profiles.h"
#include "retry.h"
#include "rule.h"
#include "timefmt.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKTEST_MAX   1        /* backtests at once */
#define EVENTS_DEFAULT 1000000  /* max_events when not given */
#define EVENTS_MAX     10000000 /* max_events at most */
#define FIRST_MATCHES  20       /* match lines in the reply */
#define BACKTEST_LOC   "\"body\",\"campaign\""
#define DAY_LEN        10 /* "2026-11-01" */

/* One request: what was asked, checked on the HTTP thread. */
struct backtest {
	struct cm_api *api;
	struct cm_buf campaign; /* the validated campaign as JSON, without its id */
	int64_t id;             /* 0: none given */
	int64_t since_ms, until_ms;
	int has_since, has_until;
	int64_t max_events;
	int admitted; /* holds a backtest slot */
};

static void backtest_free(void *p)
{
	struct backtest *bt = p;

	if (bt->admitted)
		atomic_fetch_sub(&bt->api->backtests, 1);
	cm_buf_release(&bt->campaign);
	free(bt);
}

/* The counts of one day with candidates. */
struct day {
	char day[DAY_LEN + 1];
	uint64_t candidates, n[3]; /* n: by CM_OUTCOME_* */
};

/* A run's state on the backtest thread. */
struct run {
	struct cm_ruleset *set;
	struct cm_outcomes *oc;
	struct cm_summary *sum;
	struct cm_profiles *profiles;
	struct cm_jdoc doc, prof;
	struct cm_buf line, scratch, user, first;
	struct day *days;
	size_t ndays, daycap, nfirst;
	uint64_t scanned, candidates;
	const char *stopped;
};

/* Campaign problems cannot happen (it was validated); the count says. */
static void no_report(void *ctx, const char *msg)
{
	(void)ctx;
	(void)msg;
}

/* Builds the one-campaign set from the campaign text with id; -1 when it
 * does not load (it was validated, so: out of memory). */
static int build_set(struct run *u, const struct backtest *bt, int64_t id)
{
	struct cm_buf text = CM_BUF_INIT;
	int rc = -1;

	u->set = cm_ruleset_new();
	if (u->set && cm_buf_addf(&text, "{\"id\":%lld,", (long long)id) == 0 &&
	    cm_buf_add(&text, bt->campaign.data + 1, bt->campaign.len - 1) == 0 &&
	    cm_ruleset_load(u->set, text.data, text.len, "backtest", no_report, NULL) == 0 &&
	    cm_ruleset_compile(u->set, no_report, NULL) == 0)
		rc = 0;
	cm_buf_release(&text);
	return rc;
}

/* Counts candidate oc of event ev in its day and, among the first, as a
 * match line; -1 when memory runs out. */
static int count_candidate(struct run *u, const struct cm_rule_event *ev,
                           const struct cm_outcome *oc)
{
	char t[CM_TIME_MAX];
	const char *eid, *type, *user;
	size_t en, tn, un;
	struct day *d;
	int rc = 0;

	u->candidates++;
	cm_time_format(ev->time_ms, t);
	if (!u->ndays || memcmp(u->days[u->ndays - 1].day, t, DAY_LEN) != 0) {
		if (u->ndays == u->daycap) {
			size_t cap = u->daycap ? u->daycap * 2 : 64;
			struct day *nd = realloc(u->days, cap * sizeof(*nd));

			if (!nd)
				return -1;
			u->days = nd;
			u->daycap = cap;
		}
		d = &u->days[u->ndays++];
		memset(d, 0, sizeof(*d));
		memcpy(d->day, t, DAY_LEN);
	}
	d = &u->days[u->ndays - 1];
	d->candidates++;
	d->n[oc->outcome]++;
	if (u->nfirst >= FIRST_MATCHES)
		return 0;
	/* the event's strings are in the line as written: copy them raw */
	eid = u->doc.src + u->doc.tok[ev->id_tok].off - 1;
	en = u->doc.tok[ev->id_tok].len + 2;
	type = u->doc.src + u->doc.tok[ev->type_tok].off - 1;
	tn = u->doc.tok[ev->type_tok].len + 2;
	user = u->doc.src + u->doc.tok[ev->user_tok].off - 1;
	un = u->doc.tok[ev->user_tok].len + 2;
	rc |= cm_buf_addf(&u->first, "%s{\"campaign_id\":%lld,\"event_id\":", u->nfirst ? "," : "",
	                  (long long)oc->campaign_id);
	rc |= cm_buf_add(&u->first, eid, en) | cm_buf_adds(&u->first, ",\"user_id\":") |
	      cm_buf_add(&u->first, user, un) | cm_buf_adds(&u->first, ",\"event_type\":") |
	      cm_buf_add(&u->first, type, tn) |
	      cm_buf_addf(&u->first, ",\"occurred_at\":\"%s\",\"outcome\":\"%s\"", t,
	                  cm_outcome_name(oc->outcome));
	if (oc->variant >= 0)
		rc |= cm_buf_adds(&u->first, ",\"variant\":") |
		      cm_buf_add(&u->first, oc->ctl->variants[oc->variant].json,
		                 oc->ctl->variants[oc->variant].json_len);
	if (oc->capped_by)
		rc |= cm_buf_adds(&u->first, ",\"capped_by\":") |
		      cm_buf_add_jstr(&u->first, oc->capped_by, oc->capped_by_len);
	rc |= cm_buf_addc(&u->first, '}');
	u->nfirst++;
	return rc ? -1 : 0;
}

/* Matches the event of the current row, as cm-match does in a file
 * pipeline; -1 with err when memory runs out (an event that is not valid
 * any more, written by other means, is skipped). */
static int one_event(struct run *u, const struct cm_pgcopy *r, struct cm_err *err)
{
	struct cm_rule_event ev;
	struct cm_outcome oc[1];
	struct cm_err bad;
	const int64_t *ids;
	size_t n, len;

	if (cm_evrow_line(r, NULL, &u->line, err) < 0)
		return -1;
	if (cm_buf_addc(&u->line, '}') < 0)
		return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
	if (cm_json_parse(&u->doc, u->line.data, u->line.len, &bad) < 0 ||
	    cm_rule_event_init(&ev, &u->doc, &u->scratch, &bad) < 0)
		return 0;
	if (cm_ruleset_reads_profile(u->set, ev.type, ev.type_len)) {
		const char *user = cm_json_str(&u->doc, ev.user_tok, &u->user, &len), *text;
		size_t tn;

		if (!user)
			return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
		text = cm_profiles_get(u->profiles, user, len, &tn);
		if (text && cm_json_parse(&u->prof, text, tn, NULL) == 0)
			ev.profile = &u->prof;
	}
	/* one campaign: one candidate at most */
	n = cm_ruleset_match(u->set, &ev, &ids) ? 1 : 0;
	if (n) {
		oc[0].campaign_id = ids[0];
		oc[0].ctl = cm_ruleset_hit_controls(u->set, 0);
		if (cm_outcomes_decide(u->oc, &ev, oc, n, err) < 0)
			return -1;
	}
	if (cm_summary_event(u->sum, u->set, &ev, oc, n, err) < 0)
		return -1;
	if (n && count_candidate(u, &ev, &oc[0]) < 0)
		return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
	/* an identify event counts for the events after it */
	if (cm_profiles_is_identify(&ev) && cm_profiles_identify(u->profiles, &ev, err) < 0)
		return -1;
	return 0;
}

/* The query of the range, at most max_events + 1 rows (one more says that
 * the limit stopped it). */
static int build_query(const struct backtest *bt, struct cm_buf *q)
{
	char t[CM_TIME_MAX];
	int rc = cm_buf_adds(q, "SELECT " CM_EVROW_COLS " FROM events e WHERE true");

	if (bt->has_since) {
		cm_time_format(bt->since_ms, t);
		rc |= cm_buf_addf(q, " AND e.occurred_at >= '%s'", t);
	}
	if (bt->has_until) {
		cm_time_format(bt->until_ms, t);
		rc |= cm_buf_addf(q, " AND e.occurred_at < '%s'", t);
	}
	return rc | cm_buf_addf(q, " ORDER BY e.occurred_at, e.event_id LIMIT %lld",
	                        (long long)bt->max_events + 1);
}

/* Appends the reply of a finished run for campaign id. */
static int reply_body(struct run *u, int64_t id, struct cm_buf *b, struct cm_err *err)
{
	const struct cm_summary_row *rows, *row = NULL;
	size_t n;
	int rc;

	if (cm_summary_flush(u->sum, u->set, err) < 0)
		return -1;
	n = cm_summary_rows(u->sum, &rows);
	for (size_t i = 0; i < n; i++)
		if (rows[i].campaign_id == id)
			row = &rows[i];
	rc = cm_buf_addf(b,
	                 "{\"complete\":%s,\"stopped\":%s%s%s,\"events_scanned\":%llu,"
	                 "\"candidates\":%llu,\"outcomes\":{\"matched\":%llu,\"holdout\":%llu,"
	                 "\"capped\":%llu},\"distinct_users\":%llu,\"per_day\":[",
	                 u->stopped ? "false" : "true", u->stopped ? "\"" : "",
	                 u->stopped ? u->stopped : "null", u->stopped ? "\"" : "",
	                 (unsigned long long)u->scanned, (unsigned long long)u->candidates,
	                 (unsigned long long)(row ? row->matched : 0),
	                 (unsigned long long)(row ? row->holdout : 0),
	                 (unsigned long long)(row ? row->capped : 0),
	                 (unsigned long long)(row ? row->users : 0));
	for (size_t i = 0; i < u->ndays; i++) {
		const struct day *d = &u->days[i];

		rc |= cm_buf_addf(b,
		                  "%s{\"day\":\"%s\",\"candidates\":%llu,\"matched\":%llu,"
		                  "\"holdout\":%llu,\"capped\":%llu}",
		                  i ? "," : "", d->day, (unsigned long long)d->candidates,
		                  (unsigned long long)d->n[CM_OUTCOME_MATCHED],
		                  (unsigned long long)d->n[CM_OUTCOME_HOLDOUT],
		                  (unsigned long long)d->n[CM_OUTCOME_CAPPED]);
	}
	rc |= cm_buf_adds(b, "],\"first_matches\":[") |
	      cm_buf_add(b, u->first.data ? u->first.data : "", u->first.len) |
	      cm_buf_adds(b, "]}");
	return rc ? cm_errf(err, "out of memory") : 0;
}

/* The id the next campaign would get, for the buckets of one without. */
static int64_t next_id(PGconn *pg, struct cm_err *err)
{
	PGresult *res =
	    cm_pg_query(pg, "SELECT coalesce(max(id), 0) + 1 FROM campaigns", 0, NULL, err);
	int64_t id = -1;

	if (!res)
		return -1;
	if (cm_parse_i64(PQgetvalue(res, 0, 0), 1, CM_RULE_MAX_ID, &id) < 0)
		id = CM_RULE_MAX_ID;
	PQclear(res);
	return id;
}

static void backtest_db(struct cm_api_call *c, PGconn *pg)
{
	struct backtest *bt = c->state;
	int64_t deadline = cm_mono_ms() + c->api->backtest_ms, id = bt->id;
	struct cm_buf q = CM_BUF_INIT, b = CM_BUF_INIT;
	struct cm_pgcopy r;
	struct cm_err err;
	struct run u;
	char num[24];
	int st, started = 0;

	memset(&u, 0, sizeof(u));
	cm_jdoc_init(&u.doc, 1024);
	cm_jdoc_init(&u.prof, 1024);
	if (!id && (id = next_id(pg, &err)) < 0) {
		cm_api_db_error(c, pg, &err);
		goto out;
	}
	u.oc = cm_outcomes_new(CM_OUTCOMES_LIMITS);
	u.sum = cm_summary_new();
	u.profiles = cm_profiles_new();
	if (!u.oc || !u.sum || !u.profiles || build_set(&u, bt, id) < 0 || build_query(bt, &q) < 0)
		goto oom;
	if (cm_pgcopy_start(&r, pg, q.data, &err) < 0) {
		cm_api_db_error(c, pg, &err);
		goto out;
	}
	started = 1;
	while ((st = cm_pgcopy_next(&r, &err)) > 0) {
		if (u.scanned == (uint64_t)bt->max_events) {
			u.stopped = "event limit";
			break;
		}
		if (cm_mono_ms() > deadline) {
			u.stopped = "time limit";
			break;
		}
		if (one_event(&u, &r, &err) < 0) {
			st = -1;
			break;
		}
		u.scanned++;
	}
	if (st < 0 && !u.stopped) {
		/* the server's statement timeout backs up our clock */
		if (strstr(err.msg, "SQLSTATE 57014") && cm_mono_ms() > deadline) {
			u.stopped = "time limit";
		} else if (err.code == CM_EXIT_SYSTEM) {
			goto oom;
		} else {
			cm_api_db_error(c, pg, &err);
			goto out;
		}
	}
	if (reply_body(&u, id, &b, &err) < 0)
		goto oom;
	snprintf(num, sizeof(num), "%llu", (unsigned long long)u.scanned);
	cm_logkv(c->api->log, CM_LOG_INFO, "backtest", "#events_scanned", num, "stopped",
	         u.stopped ? u.stopped : "no", "trace_id", c->r->trace_id, CM_LOG_END);
	cm_api_reply_json(c->r, 200, &b, 0);
	goto out;
oom:
	cm_http_detail(c->r, 500, "Internal Server Error");
out:
	if (started)
		cm_pgcopy_release(&r);
	cm_ruleset_free(u.set);
	cm_outcomes_free(u.oc);
	cm_summary_free(u.sum);
	cm_profiles_free(u.profiles);
	cm_jdoc_release(&u.doc);
	cm_jdoc_release(&u.prof);
	cm_buf_release(&u.line);
	cm_buf_release(&u.scratch);
	cm_buf_release(&u.user);
	cm_buf_release(&u.first);
	free(u.days);
	cm_buf_release(&q);
	cm_buf_release(&b);
}

/* Reads since or until at value v: a time, or null (no bound). 1 when set,
 * 0 when null, -1 after answering 422. */
static int read_time(struct cm_http_req *r, const struct cm_jdoc *d, uint32_t v, const char *key,
                     int64_t *ms)
{
	struct cm_buf s = CM_BUF_INIT;
	const char *p;
	size_t n;
	int rc = -1;

	if (d->tok[v].type == CM_JNULL)
		return 0;
	p = d->tok[v].type == CM_JSTR ? cm_json_str(d, v, &s, &n) : NULL;
	if (p && cm_time_parse(p, n, ms) == 0)
		rc = 1;
	else
		cm_api_422_at(r, NULL, key, strlen(key), "invalid datetime format",
		              "value_error.datetime");
	cm_buf_release(&s);
	return rc;
}

/* Reads the request into bt; -1 after answering 422. */
static int read_request(struct cm_http_req *r, struct backtest *bt)
{
	struct cm_jdoc *d = cm_jdoc_thread(CM_API_DOC_BODY, CM_RULE_MAX_DEPTH + 9);
	struct cm_buf key = CM_BUF_INIT;
	uint32_t t, i, camp = CM_JNONE;
	const char *k;
	size_t klen;
	int rc = -1, st;

	if (!d) {
		cm_http_detail(r, 500, "Internal Server Error");
		return -1;
	}
	if (cm_api_parse_object(r, d) < 0)
		return -1;
	for (t = 1, i = 0; i < d->tok[0].count; i++, t = d->tok[t + 1].next) {
		k = cm_json_str(d, t, &key, &klen);
		if (!k) {
			cm_http_detail(r, 500, "Internal Server Error");
			goto out;
		}
#define IS(lit) (klen == sizeof(lit) - 1 && memcmp(k, lit, klen) == 0)
		if (IS("campaign")) {
			camp = t + 1;
		} else if (IS("since")) {
			if ((st = read_time(r, d, t + 1, "since", &bt->since_ms)) < 0)
				goto out;
			bt->has_since = st;
		} else if (IS("until")) {
			if ((st = read_time(r, d, t + 1, "until", &bt->until_ms)) < 0)
				goto out;
			bt->has_until = st;
		} else if (IS("max_events")) {
			const struct cm_jtok *v = &d->tok[t + 1];
			char num[24];

			if (v->type != CM_JNUM || v->len >= sizeof(num) ||
			    (memcpy(num, d->src + v->off, v->len), num[v->len] = 0,
			     cm_parse_i64(num, 1, EVENTS_MAX, &bt->max_events) < 0)) {
				cm_api_422_at(r, NULL, k, klen,
				              "ensure this value is an integer from 1 to 10000000",
				              "value_error.number");
				goto out;
			}
		} else {
			cm_api_422_at(r, NULL, k, klen, "extra fields not permitted",
			              "value_error.extra");
			goto out;
		}
#undef IS
	}
	if (camp == CM_JNONE) {
		cm_api_422(r, "\"body\",\"campaign\"", "field required", "value_error.missing");
		goto out;
	}
	if (d->tok[camp].type != CM_JOBJ) {
		cm_api_422(r, "\"body\",\"campaign\"", "value is not a valid dict",
		           "type_error.dict");
		goto out;
	}
	if (bt->has_since && bt->has_until && bt->until_ms <= bt->since_ms) {
		cm_api_422(r, "\"body\",\"until\"", "must be after since", "value_error");
		goto out;
	}
	/* the id of a saved campaign gives its users' groups */
	t = cm_json_get(d, camp, "id", 2);
	if (t != CM_JNONE && d->tok[t].type != CM_JNULL) {
		const struct cm_jtok *v = &d->tok[t];
		char num[24];

		if (v->type != CM_JNUM || v->len >= sizeof(num) ||
		    (memcpy(num, d->src + v->off, v->len), num[v->len] = 0,
		     cm_parse_i64(num, 1, CM_RULE_MAX_ID, &bt->id) < 0)) {
			cm_api_422(r, BACKTEST_LOC ",\"id\"", "value is not a valid campaign id",
			           "type_error.integer");
			goto out;
		}
	}
	rc = cm_api_campaign_read(r, d, camp, BACKTEST_LOC, &bt->campaign);
out:
	cm_buf_release(&key);
	return rc;
}

void cm_api_backtest(struct cm_api_call *c)
{
	struct cm_http_req *r = c->r;
	struct backtest *bt = calloc(1, sizeof(*bt));
	char retry[24];

	if (!bt) {
		cm_http_detail(r, 500, "Internal Server Error");
		return;
	}
	bt->api = c->api;
	bt->max_events = EVENTS_DEFAULT;
	cm_buf_init(&bt->campaign, 0);
	c->state = bt;
	c->state_free = backtest_free;
	if (read_request(r, bt) < 0)
		return;
	if (atomic_fetch_add(&c->api->backtests, 1) >= BACKTEST_MAX) {
		atomic_fetch_sub(&c->api->backtests, 1);
		snprintf(retry, sizeof(retry), "%lld",
		         (long long)((c->api->backtest_ms + 999) / 1000));
		cm_http_detail(r, 429, "A backtest is running; try again later");
		cm_http_add_header(r, "Retry-After", retry);
		return;
	}
	bt->admitted = 1;
	cm_api_db_on(c, c->api->backtest, backtest_db);
}
