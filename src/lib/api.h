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
 * admins, or users and write keys (the event routes). Routes that read the
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
#include "redisx.h"
#include "route.h"
#include "workq.h"

#include <stddef.h>
#include <stdint.h>

struct cm_err;
struct cm_log;

struct cm_api_opts {
	const char *conninfo;
	const struct cm_redis_url *redis;
	const char *stream;
	const void *secret; /* copied */
	size_t secret_len;
	int64_t token_ttl_s;
	int64_t worker_ttl_s;
	unsigned db_threads;
	const struct cm_log *log;
};

struct cm_api {
	char *conninfo, *stream;
	struct cm_redis_url redis;
	int64_t worker_ttl_s;
	const struct cm_log *log;
	struct cm_auth *auth;
	struct cm_throttle *throttle;
	struct cm_workq *db, *login;
	struct cm_pubq *pub;
	struct cm_health *health;
	struct cm_api_metrics *metrics; /* api_metrics.c */
};

/* Starts the threads (none needs Redis or PostgreSQL to be up: GET /health
 * says what is down); NULL with err. */
struct cm_api *cm_api_start(const struct cm_api_opts *o, struct cm_err *err);
/* The HTTP handler (cm_http_opts.handler, with app = the api). */
void cm_api_handle(struct cm_http_req *r);
/* The completion hook (cm_http_opts.on_done). */
void cm_api_done(void *app, const char *route, const char *method, int status, double seconds);
/* Finishes the work handed to the threads (every suspended request gets
 * its answer) and stops them. */
void cm_api_stop(struct cm_api *a);
void cm_api_free(struct cm_api *a);

/* --- For the route modules (api_campaigns.c, api_events.c). --- */

/* Who may call a route. */
enum { CM_API_ANYONE = 0, CM_API_USER, CM_API_ADMIN, CM_API_WRITE };
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
};

/* Runs fn on a database thread (suspending the request), after checking
 * that the caller still exists (and is an admin where the route needs
 * it); a full queue is a 503. */
void cm_api_db(struct cm_api_call *c, cm_api_db_fn *fn);
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

/* api_metrics.c: the registry, the request and event counters, and the
 * routes that serve metrics and the embedded documents. */
int cm_api_metrics_init(struct cm_api *a, struct cm_err *err);
void cm_api_metrics_free(struct cm_api *a);
/* Counts n events published, or refused as invalid. */
void cm_api_events_accepted(struct cm_api *a, uint64_t n);
void cm_api_events_rejected(struct cm_api *a, uint64_t n);
void cm_api_metrics(struct cm_api_call *c);
void cm_api_openapi(struct cm_api_call *c);
void cm_api_docs(struct cm_api_call *c);
void cm_api_docs_file(struct cm_api_call *c);

#endif
