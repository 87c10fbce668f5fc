/* api_events.c - POST /events (one event, a JSON array, or NDJSON) into the
 * Redis stream, GET /events/{event_id} from PostgreSQL, and the publishing
 * of a request's events that POST /events and Segment's /v1 routes share
 * (cm_api_post_*).
 *
 * Every event of a request is normalised and validated by event.h's
 * cm_event_normalize_ref, the code cm-ingest uses, before anything is
 * published: a request with one bad event is a 422 naming its index and
 * field, and publishes nothing. The events of a request go to the publisher
 * thread as one job (in MULTI/EXEC when there are several, so Redis stores
 * all or none), and the 202 is sent once Redis confirmed them. */
#include "api.h"

#include "detail.h"
#include "err.h"
#include "event.h"
#include "json.h"
#include "logj.h"
#include "pg.h"
#include "pubq.h"
#include "timefmt.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Frees a post and what it holds. */
static void post_free(void *p)
{
	struct cm_api_post *ps = p;

	cm_buf_release(&ps->lines);
	if (ps->off != &ps->one[0]) {
		free(ps->off);
		free(ps->len);
		free(ps->idoff);
		free(ps->idlen);
	}
	free(ps);
}

/* Makes room for one more event. */
static int post_grow(struct cm_api_post *ps)
{
	size_t cap, i, *a[4];

	if (ps->n < ps->cap)
		return 0;
	cap = ps->cap * 2;
	for (i = 0; i < 4; i++) {
		a[i] = malloc(cap * sizeof(size_t));
		if (!a[i]) {
			while (i--)
				free(a[i]);
			return -1;
		}
	}
	memcpy(a[0], ps->off, ps->n * sizeof(size_t));
	memcpy(a[1], ps->len, ps->n * sizeof(size_t));
	memcpy(a[2], ps->idoff, ps->n * sizeof(size_t));
	memcpy(a[3], ps->idlen, ps->n * sizeof(size_t));
	if (ps->off != &ps->one[0]) {
		free(ps->off);
		free(ps->len);
		free(ps->idoff);
		free(ps->idlen);
	}
	ps->off = a[0];
	ps->len = a[1];
	ps->idoff = a[2];
	ps->idlen = a[3];
	ps->cap = cap;
	return 0;
}

struct cm_api_post *cm_api_post_new(struct cm_api_call *c, int source,
                                    void (*reply)(struct cm_api_post *ps))
{
	struct cm_api_post *ps = calloc(1, sizeof(*ps));

	if (!ps)
		return NULL;
	c->state = ps;
	c->state_free = post_free;
	ps->c = c;
	ps->source = source;
	ps->reply = reply;
	ps->cap = 1;
	ps->off = &ps->one[0];
	ps->len = &ps->one[1];
	ps->idoff = &ps->one[2];
	ps->idlen = &ps->one[3];
	cm_buf_init(&ps->lines, 0);
	return ps;
}

int cm_api_post_add(struct cm_api_post *ps, const struct cm_jdoc *d, uint32_t t, const char *raw,
                    size_t rawlen, int call, int64_t now, struct cm_err *err)
{
	struct cm_event_ref ref;
	size_t start = ps->lines.len;
	int rc;

	if (post_grow(ps) < 0)
		return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
	if (call < 0)
		rc = cm_event_normalize_ref(d, t, raw, rawlen, now, &ps->lines, &ref, err);
	else
		rc =
		    cm_event_normalize_segment(d, t, call, raw, rawlen, now, &ps->lines, &ref, err);
	if (rc < 0)
		return -1;
	ps->off[ps->n] = start;
	ps->len[ps->n] = ps->lines.len - start;
	ps->idoff[ps->n] = ref.id_off;
	ps->idlen[ps->n] = ref.id_len;
	ps->n++;
	return 0;
}

/* Answers 422 for event idx (-1: the body is the event) from a validator
 * message: "field 'properties.x': ..." points into the event. */
static void reject(struct cm_http_req *r, long idx, const char *msg, const char *type)
{
	struct cm_buf loc = CM_BUF_INIT;
	const char *path, *text, *q;
	size_t plen = cm_detail_split_field(msg, &path, &text);

	cm_buf_adds(&loc, "\"body\"");
	if (idx >= 0)
		cm_buf_addf(&loc, ",%ld", idx);
	if (plen) {
		cm_detail_path_loc(&loc, path, plen);
	} else if (strncmp(msg, "unknown key '", 13) == 0 ||
	           strncmp(msg, "duplicate key '", 15) == 0) {
		/* "unknown key 'bogus': ..." points at the key. */
		const char *k = strchr(msg, '\'') + 1;

		q = strchr(k, '\'');
		if (q) {
			cm_buf_addc(&loc, ',');
			cm_log_add_str(&loc, k, (size_t)(q - k));
		}
	}
	if (!type)
		type = strncmp(text, "missing", 7) == 0 ? "value_error.missing" : "value_error";
	if (loc.data)
		cm_api_422(r, loc.data, text, type);
	else
		cm_http_detail(r, 500, "Internal Server Error");
	cm_buf_release(&loc);
}

/* Normalises the event at token t of d (raw: its text as sent) into ps. */
static int add_event(struct cm_http_req *r, struct cm_api_post *ps, const struct cm_jdoc *d,
                     uint32_t t, const char *raw, size_t rawlen, long idx, int64_t now)
{
	struct cm_err err;

	if (d->tok[t].type != CM_JOBJ) {
		reject(r, idx, "value is not a valid dict", "type_error.dict");
		return -1;
	}
	if (cm_api_post_add(ps, d, t, raw, rawlen, -1, now, &err) < 0) {
		if (err.code == CM_EXIT_SYSTEM)
			cm_http_detail(r, 500, "Internal Server Error");
		else
			reject(r, idx, err.msg, NULL);
		return -1;
	}
	return 0;
}

/* A parsed document per thread, reused from request to request. */
struct cm_jdoc *cm_api_thread_doc(void)
{
	return cm_jdoc_thread(CM_API_DOC_BODY, 64);
}

/* A JSON body: one event or an array of them. */
static int read_json(struct cm_http_req *r, struct cm_api_post *ps, int64_t now)
{
	struct cm_jdoc *d = cm_api_thread_doc();
	struct cm_err err;
	char loc[48];
	uint32_t t, i;

	if (!d) {
		cm_http_detail(r, 500, "Internal Server Error");
		return -1;
	}
	if (cm_json_parse(d, r->body.data, r->body.len, &err) < 0) {
		snprintf(loc, sizeof(loc), "\"body\",%ld", cm_detail_json_pos(err.msg));
		cm_api_422(r, loc, err.msg, "value_error.jsondecode");
		return -1;
	}
	if (d->tok[0].type == CM_JOBJ)
		return add_event(r, ps, d, 0, r->body.data + d->tok[0].off, d->tok[0].len, -1, now);
	if (d->tok[0].type != CM_JARR) {
		reject(r, -1, "value is not a valid list or dict", "type_error");
		return -1;
	}
	for (t = 1, i = 0; i < d->tok[0].count; i++, t = d->tok[t].next)
		if (add_event(r, ps, d, t, r->body.data + d->tok[t].off, d->tok[t].len, (long)i,
		              now) < 0)
			return -1;
	return 0;
}

/* An NDJSON body: one event a line, blank lines skipped (CRLF accepted);
 * the index in errors counts the events. */
static int read_ndjson(struct cm_http_req *r, struct cm_api_post *ps, int64_t now)
{
	struct cm_jdoc *d = cm_api_thread_doc();
	const char *p = r->body.data, *end = p + r->body.len, *nl;
	struct cm_err err;
	char loc[64];
	long idx = 0;
	size_t n, i;

	if (!d) {
		cm_http_detail(r, 500, "Internal Server Error");
		return -1;
	}
	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		n = (size_t)(nl - p);
		if (n && p[n - 1] == '\r')
			n--;
		for (i = 0; i < n && (p[i] == ' ' || p[i] == '\t'); i++)
			;
		if (i == n)
			continue;
		if (cm_json_parse(d, p, n, &err) < 0) {
			snprintf(loc, sizeof(loc), "\"body\",%ld", idx);
			cm_api_422(r, loc, err.msg, "value_error.jsondecode");
			return -1;
		}
		if (add_event(r, ps, d, 0, p, n, idx, now) < 0)
			return -1;
		idx++;
	}
	return 0;
}

/* The 202: how many, and their ids in order. */
static void accepted(struct cm_api_post *ps)
{
	struct cm_http_req *r = ps->c->r;
	struct cm_buf b = CM_BUF_INIT;
	size_t i;
	int bad;

	bad = cm_buf_addf(&b, "{\"accepted\":%zu,\"event_ids\":[", ps->n);
	for (i = 0; i < ps->n; i++)
		bad |= (i ? cm_buf_addc(&b, ',') : 0) |
		       cm_buf_add(&b, ps->lines.data + ps->idoff[i], ps->idlen[i]);
	bad |= cm_buf_adds(&b, "]}");
	cm_api_reply_json(r, 202, &b, bad);
}

/* When the publisher gave up on a request: logged at most every 10 s. */
static atomic_llong last_failure_log;

/* A 503 in the route's shape: the queue is down or full. */
static void unavailable(struct cm_api_post *ps, const char *why)
{
	if (ps->source == CM_API_SRC_SEGMENT)
		cm_api_segment_error(ps->c->r, 503, why);
	else
		cm_http_detail(ps->c->r, 503, why);
	cm_http_add_header(ps->c->r, "Retry-After", "1");
}

/* The publisher's answer, on its thread. */
static void published(struct cm_pubq_job *job)
{
	struct cm_api_post *ps = job->arg;
	struct cm_api_call *c = ps->c;
	long long now = (long long)cm_time_now(), last = atomic_load(&last_failure_log);

	if (job->failed) {
		if (now - last >= 10000 &&
		    atomic_compare_exchange_strong(&last_failure_log, &last, now))
			cm_logkv(c->api->log, CM_LOG_WARNING, "events not published", "error",
			         job->error, CM_LOG_END);
		unavailable(ps, "Event queue unavailable");
	} else {
		cm_api_events_accepted(c->api, ps->source, ps->n);
		ps->reply(ps);
	}
	cm_http_resume(c->r);
}

void cm_api_post_publish(struct cm_api_post *ps)
{
	struct cm_http_req *r = ps->c->r;

	if (ps->n == 0) {
		ps->reply(ps);
		return;
	}
	ps->job.text = ps->lines.data;
	ps->job.off = ps->off;
	ps->job.len = ps->len;
	ps->job.n = ps->n;
	ps->job.atomic = 1;
	ps->job.done = published;
	ps->job.arg = ps;
	cm_http_suspend(r);
	if (cm_pubq_submit(ps->c->api->pub, &ps->job) < 0) {
		unavailable(ps, "Event queue full");
		cm_http_resume(r);
	}
}

/* How many events a refused body held, for cm_events_rejected_total: the
 * elements of an array, the non-blank lines of NDJSON, else one. */
static uint64_t events_in(const struct cm_http_req *r, int ndjson)
{
	struct cm_jdoc *d = cm_api_thread_doc();
	const char *p = r->body.data, *end = p + r->body.len, *nl;
	uint64_t n = 0;
	size_t i;

	if (!d)
		return 1;
	if (!ndjson)
		return cm_json_parse(d, p, r->body.len, NULL) == 0 && d->tok[0].type == CM_JARR
		           ? d->tok[0].count
		           : 1;
	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		for (i = 0; p + i < nl && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'); i++)
			;
		n += p + i < nl;
	}
	return n ? n : 1;
}

/* True when the content type is NDJSON. */
static int is_ndjson(const char *ctype)
{
	size_t n = strlen("application/x-ndjson");

	while (ctype && *ctype == ' ')
		ctype++;
	return ctype && strncasecmp(ctype, "application/x-ndjson", n) == 0 &&
	       (ctype[n] == 0 || ctype[n] == ';' || ctype[n] == ' ');
}

void cm_api_events_post(struct cm_api_call *c)
{
	struct cm_http_req *r = c->r;
	struct cm_api_post *ps = cm_api_post_new(c, CM_API_SRC_API, accepted);
	int64_t now = cm_time_now();
	int rc, nd;

	if (!ps) {
		cm_http_detail(r, 500, "Internal Server Error");
		return;
	}
	if (r->body.len == 0) {
		cm_api_422(r, "\"body\"", "field required", "value_error.missing");
		cm_api_events_rejected(c->api, CM_API_SRC_API, 1);
		return;
	}
	nd = is_ndjson(cm_http_header(r, "Content-Type"));
	rc = nd ? read_ndjson(r, ps, now) : read_json(r, ps, now);
	if (rc < 0) {
		if (r->status == 422)
			cm_api_events_rejected(c->api, CM_API_SRC_API, events_in(r, nd));
		return;
	}
	cm_api_post_publish(ps);
}

/* --- GET /events/{event_id} --- */

static void event_db(struct cm_api_call *c, PGconn *pg)
{
	const char *params[1] = {c->param};
	struct cm_buf b = CM_BUF_INIT;
	struct cm_err err;
	PGresult *ev, *m = NULL;
	int i, bad;

	ev = cm_pg_query(pg,
	                 "SELECT event_id, event_type, user_id, cm_utc(occurred_at), "
	                 "properties::text, cm_utc(stored_at) FROM events WHERE event_id = $1",
	                 1, params, &err);
	if (!ev) {
		cm_api_db_error(c, pg, &err);
		return;
	}
	if (PQntuples(ev) != 1) {
		PQclear(ev);
		cm_http_detail(c->r, 404, "Event not found");
		return;
	}
	m = cm_pg_query(
	    pg,
	    CM_API_EVENT_MATCHES_SQL("m.campaign_id, cm_utc(m.matched_at), " CM_API_OUTCOME_COLS),
	    1, params, &err);
	if (!m) {
		PQclear(ev);
		cm_api_db_error(c, pg, &err);
		return;
	}
	bad = cm_buf_adds(&b, "{\"event_id\":") | cm_api_add_col(&b, ev, 0, 0) |
	      cm_buf_adds(&b, ",\"event_type\":") | cm_api_add_col(&b, ev, 0, 1) |
	      cm_buf_adds(&b, ",\"user_id\":") | cm_api_add_col(&b, ev, 0, 2) |
	      cm_buf_adds(&b, ",\"occurred_at\":") | cm_api_add_col(&b, ev, 0, 3) |
	      cm_buf_adds(&b, ",\"properties\":") |
	      cm_api_add_json(&b, PQgetvalue(ev, 0, 4), (size_t)PQgetlength(ev, 0, 4)) |
	      cm_buf_adds(&b, ",\"stored_at\":") | cm_api_add_col(&b, ev, 0, 5) |
	      cm_buf_adds(&b, ",\"matches\":[");
	for (i = 0; i < PQntuples(m); i++)
		bad |= cm_buf_addf(&b, "%s{\"campaign_id\":%s,\"matched_at\":", i ? "," : "",
		                   PQgetvalue(m, i, 0)) |
		       cm_api_add_col(&b, m, i, 1) | cm_api_add_outcome(&b, m, i, 2) |
		       cm_buf_addc(&b, '}');
	bad |= cm_buf_adds(&b, "]}");
	PQclear(ev);
	PQclear(m);
	cm_api_reply_json(c->r, 200, &b, bad);
}

int cm_api_event_param(struct cm_api_call *c)
{
	/* An id no event can have is not looked up (PostgreSQL would refuse
	 * bytes that are not UTF-8). */
	if (c->param_nul || c->param_cut || c->param_len == 0 || c->param_len > CM_EVENT_ID_MAX ||
	    cm_utf8_valid_prefix(c->param, c->param_len) != c->param_len) {
		cm_http_detail(c->r, 404, "Event not found");
		return -1;
	}
	return 0;
}

void cm_api_event_get(struct cm_api_call *c)
{
	if (cm_api_event_param(c) == 0)
		cm_api_db(c, event_db);
}
