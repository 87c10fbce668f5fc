/* api.h - cm-httpd's application: the routes of CONTRACT section 4 over
 * the HTTP core (http.h), with the threads that do their blocking work.
 *
 *   HTTP pool threads   parse, authenticate (tokens: an HMAC; keys: a cache),
 *                       validate and answer what needs nothing else
 *   publisher (pubq.h)  POST /events: the XADDs, shared by requests that
 *                       arrive together, before the 202
 *   database (workq.h)  a few threads with a connection each: every route
 *                       that reads or changes PostgreSQL, write-key lookups
 *   login (workq.h)     one thread for Argon2id password checks
 *   health (health.h)   the checks behind GET /health
 *
 * The route table (api.c) says who may call each route: anyone, any user,
 * admins, users and write keys (POST /events), or write keys only, sent as
 * Segment's SDKs send them (the /v1 routes of api_segment.c). Routes that read the
 * database also check that the token's user still exists (and, for admin
 * routes, is still an admin), so a deleted or demoted user loses access at
 * once there; POST /events trusts a valid token until it expires.
 *
 * Error bodies are FastAPI's ({"detail": ...}, detail.h), so that the
 * original service's clients keep working. */
#ifndef CM_API_H
#define CM_API_H

#include "http.h"
#include "jwtx.h"
#include "pubq.h"
#include "redisx.h"
#include "route.h"
#include "workq.h"

#include <stddef.h>
#include <stdint.h>

struct cm_err;
struct cm_jdoc;
struct cm_log;

struct cm_api_opts {
	const char *conninfo;
	const struct cm_redis_url *redis;
	const char *stream;
	const void *secret; /* copied */
	size_t secret_len;
	int64_t token_ttl_s;
	int64_t worker_ttl_s;
	int64_t backtest_ms; /* a backtest's time limit; 0: 10 s */
	unsigned db_threads;
	size_t max_body; /* the HTTP core's (--max-body), for messages */
	const struct cm_log *log;
};

struct cm_api {
	char *conninfo, *stream;
	struct cm_redis_url redis;
	int64_t worker_ttl_s;
	size_t max_body;
	const struct cm_log *log;
	struct cm_auth *auth;
	struct cm_throttle *throttle;
	struct cm_workq *db, *login;
	struct cm_workq *backtest; /* its own thread: a long job never holds up the others */
	int64_t backtest_ms;
	_Atomic int backtests; /* taken or running */
	struct cm_pubq *pub;
	struct cm_health *health;
	struct cm_api_metrics *metrics; /* api_metrics.c */
	struct cm_api_explain *explain; /* api_explain.c */
};

/* Starts the threads (none needs Redis or PostgreSQL to be up: GET /health
 * says what is down); NULL with err. */
struct cm_api *cm_api_start(const struct cm_api_opts *o, struct cm_err *err);
/* The HTTP handler (cm_http_opts.handler, with app = the api). */
void cm_api_handle(struct cm_http_req *r);
/* The hook for a body over --max-body (cm_http_opts.too_big): Segment's
 * 400 on the /v1 routes, the 413 elsewhere. */
int cm_api_too_big(struct cm_http_req *r);
/* The completion hook (cm_http_opts.on_done). */
void cm_api_done(void *app, const char *route, const char *method, int status, double seconds);
/* Finishes the work handed to the threads (every suspended request gets
 * its answer) and stops them. */
void cm_api_stop(struct cm_api *a);
void cm_api_free(struct cm_api *a);

/* --- For the route modules (api_campaigns.c, api_events.c). --- */

/* Who may call a route: CM_API_SEGMENT routes take a write key only, in
 * Segment's ways (HTTP Basic or the body's writeKey), and authenticate in
 * the route with cm_api_key once they have read the body. */
enum { CM_API_ANYONE = 0, CM_API_USER, CM_API_ADMIN, CM_API_WRITE, CM_API_SEGMENT };
/* Where events came from, for cm_events_accepted_total{source}. */
enum { CM_API_SRC_API = 0, CM_API_SRC_SEGMENT, CM_API_NSRC };
/* The caller's role. */
enum { CM_ROLE_NONE = 0, CM_ROLE_USER, CM_ROLE_ADMIN, CM_ROLE_KEY };

struct cm_api_call;
/* The blocking part of a route, run on a database thread with its
 * connection; it sets the reply. */
typedef void cm_api_db_fn(struct cm_api_call *c, PGconn *pg);

/* One request's state in the application (r->data). */
struct cm_api_call {
	struct cm_api *api;
	struct cm_http_req *r;
	const struct cm_route *route;
	char who[CM_JWT_SUB_MAX + 1]; /* user name or key name */
	int role;
	int key_state; /* a write key looked up: 1 known, 0 not, -1 database down */
	cm_api_db_fn *db;
	void *state; /* the route's own */
	void (*state_free)(void *state);
	char param[256]; /* the first path parameter, decoded */
	size_t param_len;
	int param_nul; /* it decoded to something with a NUL byte */
	int param_cut; /* it was too long for param: what param holds is a prefix */
};

/* Authenticates the write key key[0..len) for c: 0 when it is a known key
 * (c->role is CM_ROLE_KEY then), 1 when the request was suspended to look
 * it up (the handler runs again with the answer), -1 after answering 401
 * (or 503: the database is down). */
int cm_api_key(struct cm_api_call *c, const char *key, size_t len);
/* Runs fn on a database thread (suspending the request), after checking
 * that the caller still exists (and is an admin where the route needs
 * it); a full queue is a 503. */
void cm_api_db(struct cm_api_call *c, cm_api_db_fn *fn);
/* The same on the threads of q. */
void cm_api_db_on(struct cm_api_call *c, struct cm_workq *q, cm_api_db_fn *fn);
/* Replies status with the JSON body b (taken), or 500 when building it
 * failed (bad: some append returned -1). */
void cm_api_reply_json(struct cm_http_req *r, int status, struct cm_buf *b, int bad);
/* A 422 with one error at loc (the inside of the list, already JSON). */
void cm_api_422(struct cm_http_req *r, const char *loc, const char *msg, const char *type);
/* A 503 with Retry-After: 1. */
void cm_api_unavailable(struct cm_http_req *r, const char *detail);
/* Answers a failed query: 503 when the database went away, 500 (logged)
 * otherwise. */
void cm_api_db_error(struct cm_api_call *c, PGconn *pg, const struct cm_err *err);
/* Parses an integer query parameter within [min, max] (def when absent);
 * -1 after answering 422. */
int cm_api_query_int(struct cm_http_req *r, const char *name, int64_t def, int64_t min, int64_t max,
                     int64_t *out);
/* Parses the path parameter as a campaign id; -1 after answering 422. */
int cm_api_path_id(struct cm_api_call *c, int64_t *id);

/* Appends JSON text that PostgreSQL stored (jsonb output) in compact form. */
int cm_api_add_json(struct cm_buf *b, const char *text, size_t n);
/* The slots of cm_jdoc_thread the handlers use: a request's body, and a
 * stored value re-written in a reply (both may be live at once). */
enum { CM_API_DOC_BODY = 0, CM_API_DOC_STORED = 1 };
/* Appends column col of row as a JSON string, or null. */
int cm_api_add_col(struct cm_buf *b, const PGresult *res, int row, int col);
/* Appends a stored match's outcome from columns col (outcome), col + 1
 * (variant) and col + 2 (capped_by) of row: ,"outcome":"capped" and then
 * ,"variant":... and ,"capped_by":... where they are not null. */
int cm_api_add_outcome(struct cm_buf *b, const PGresult *res, int row, int col);
/* The outcome columns of matches (alias m) for cm_api_add_outcome. */
#define CM_API_OUTCOME_COLS "m.outcome, m.variant, m.capped_by"

/* Parses the request's body into d as a JSON object, or answers FastAPI's
 * 422 and returns -1. */
int cm_api_parse_object(struct cm_http_req *r, struct cm_jdoc *d);
/* A 422 at the location at (the inside of the list, NULL: "body")
 * followed by key[0..klen). */
void cm_api_422_at(struct cm_http_req *r, const char *at, const char *key, size_t klen,
                   const char *msg, const char *type);
/* Reads the campaign object at token obj of d as POST /campaigns reads its
 * body and validates it the same way, with 422 locations under loc (the
 * inside of the list, "\"body\",\"campaign\""); an id is ignored. Appends
 * the campaign as JSON to out, its status made active (what a backtest
 * tests); -1 after answering. */
int cm_api_campaign_read(struct cm_http_req *r, const struct cm_jdoc *d, uint32_t obj,
                         const char *loc, struct cm_buf *out);

/* Routes of api_campaigns.c. */
void cm_api_campaign_create(struct cm_api_call *c);
void cm_api_campaign_list(struct cm_api_call *c);
void cm_api_campaign_get(struct cm_api_call *c);
void cm_api_campaign_patch(struct cm_api_call *c);
void cm_api_campaign_archive(struct cm_api_call *c);
void cm_api_campaign_matches(struct cm_api_call *c);
void cm_api_campaign_audit(struct cm_api_call *c);
/* Routes of api_events.c. */
void cm_api_events_post(struct cm_api_call *c);
void cm_api_event_get(struct cm_api_call *c);
/* Checks that the path parameter can be an event id; -1 after answering
 * 404. */
int cm_api_event_param(struct cm_api_call *c);
/* The matches (alias m) of event $1, columns cols, by campaign: without an
 * index on matches.event_id, a skip scan walks the distinct campaign ids of
 * the primary key, then probes (campaign_id, event_id) for each, so the
 * cost grows with the number of campaigns, not of matches. */
#define CM_API_EVENT_MATCHES_SQL(cols)                                                             \
	"WITH RECURSIVE c AS ("                                                                    \
	" (SELECT campaign_id FROM matches ORDER BY campaign_id LIMIT 1)"                          \
	" UNION ALL"                                                                               \
	" SELECT (SELECT m.campaign_id FROM matches m WHERE m.campaign_id > c.campaign_id"         \
	"         ORDER BY m.campaign_id LIMIT 1)"                                                 \
	" FROM c WHERE c.campaign_id IS NOT NULL)"                                                 \
	"SELECT " cols " FROM c"                                                                   \
	" JOIN matches m ON m.campaign_id = c.campaign_id AND m.event_id = $1"                     \
	" ORDER BY m.campaign_id"

/* Route of api_backtest.c: POST /campaigns/backtest. */
void cm_api_backtest(struct cm_api_call *c);

/* Routes of api_explain.c: GET /events/{event_id}/explain, over one cached
 * set of the active campaigns per server. */
int cm_api_explain_init(struct cm_api *a, struct cm_err *err);
void cm_api_explain_free(struct cm_api *a);
void cm_api_event_explain(struct cm_api_call *c);

/* The events of one request on their way to the stream (POST /events and
 * the /v1 routes): the canonical lines and where their ids are. Owned by
 * the call (c->state), freed with it. */
struct cm_api_post {
	struct cm_pubq_job job;
	struct cm_api_call *c;
	int source; /* CM_API_SRC_*: the metric's label and the error bodies' shape */
	void (*reply)(struct cm_api_post *ps); /* the answer once Redis has them */
	struct cm_buf lines;
	size_t n, cap;
	size_t *off, *len, *idoff, *idlen;
	size_t one[4]; /* the arrays of a single event, without allocating */
};
/* A post for c (its state); NULL when out of memory. */
struct cm_api_post *cm_api_post_new(struct cm_api_call *c, int source,
                                    void (*reply)(struct cm_api_post *ps));
/* Normalises the record at token t of d (raw: its text as sent) into ps:
 * its shape told by its keys (call -1) or as Segment call `call`
 * (cm_event_normalize_segment); -1 with err (code CM_EXIT_SYSTEM: out of
 * memory). */
int cm_api_post_add(struct cm_api_post *ps, const struct cm_jdoc *d, uint32_t t, const char *raw,
                    size_t rawlen, int call, int64_t now, struct cm_err *err);
/* Publishes ps's events all together, suspending the request; the reply is
 * ps->reply once Redis confirmed them (at once when there are none), or a
 * 503 with Retry-After when Redis is down or the queue full. */
void cm_api_post_publish(struct cm_api_post *ps);
/* A parsed document per thread, reused from request to request (on the
 * pool thread running the handler). */
struct cm_jdoc *cm_api_thread_doc(void);

/* Routes of api_segment.c: Segment's HTTP Tracking API. */
void cm_api_segment_track(struct cm_api_call *c);
void cm_api_segment_identify(struct cm_api_call *c);
void cm_api_segment_page(struct cm_api_call *c);
void cm_api_segment_screen(struct cm_api_call *c);
void cm_api_segment_group(struct cm_api_call *c);
void cm_api_segment_alias(struct cm_api_call *c);
void cm_api_segment_batch(struct cm_api_call *c);
/* Segment's error body {"success":false,"message":...} with status. */
void cm_api_segment_error(struct cm_http_req *r, int status, const char *message);
/* Answers a body over --max-body on the /v1 route r->route (returns 1). */
int cm_api_segment_too_big(struct cm_http_req *r);

/* Routes of api_profiles.c. */
void cm_api_profile_get(struct cm_api_call *c);

/* api_metrics.c: the registry, the request and event counters, and the
 * routes that serve metrics and the embedded documents. */
int cm_api_metrics_init(struct cm_api *a, struct cm_err *err);
void cm_api_metrics_free(struct cm_api *a);
/* Counts n events from source (CM_API_SRC_*) published, or refused as
 * invalid. */
void cm_api_events_accepted(struct cm_api *a, int source, uint64_t n);
void cm_api_events_rejected(struct cm_api *a, int source, uint64_t n);
void cm_api_metrics(struct cm_api_call *c);
void cm_api_openapi(struct cm_api_call *c);
void cm_api_docs(struct cm_api_call *c);
void cm_api_docs_file(struct cm_api_call *c);

#endif
