/* api.c - cm-httpd's routes, who may call them, and the routes that belong
 * to no resource: login, the current user, health. */
#include "api.h"

#include "auth.h"
#include "num.h"
#include "detail.h"
#include "err.h"
#include "form.h"
#include "health.h"
#include "json.h"
#include "logj.h"
#include "pg.h"
#include "pubq.h"
#include "throttle.h"
#include "timefmt.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOGIN_QUEUE  64    /* password checks waiting at most */
#define DB_QUEUE     1024  /* database jobs waiting at most */
#define BACKTEST_Q   4     /* backtests waiting at most (api_backtest.c admits fewer) */
#define KEY_TTL_MS   10000 /* how long a write-key lookup is remembered */
#define PASSWORD_MAX 1024  /* as cm-admin */

typedef void route_fn(struct cm_api_call *c);

static void h_token(struct cm_api_call *c);
static void h_me(struct cm_api_call *c);
static void h_health(struct cm_api_call *c);

/* The routes. A path with a literal segment must come before a template
 * that would also match it. */
static const struct cm_route routes[] = {
    {"POST", "/auth/token", CM_API_ANYONE, h_token},
    {"GET", "/auth/users/me", CM_API_USER, h_me},
    {"POST", "/campaigns", CM_API_ADMIN, cm_api_campaign_create},
    {"POST", "/campaigns/backtest", CM_API_ADMIN, cm_api_backtest},
    {"GET", "/campaigns", CM_API_USER, cm_api_campaign_list},
    {"GET", "/campaigns/{id}", CM_API_USER, cm_api_campaign_get},
    {"PATCH", "/campaigns/{id}", CM_API_ADMIN, cm_api_campaign_patch},
    {"DELETE", "/campaigns/{id}", CM_API_ADMIN, cm_api_campaign_archive},
    {"GET", "/campaigns/{id}/matches", CM_API_USER, cm_api_campaign_matches},
    {"GET", "/campaigns/{id}/audit", CM_API_USER, cm_api_campaign_audit},
    {"POST", "/events", CM_API_WRITE, cm_api_events_post},
    {"GET", "/events/{event_id}", CM_API_USER, cm_api_event_get},
    {"GET", "/events/{event_id}/explain", CM_API_USER, cm_api_event_explain},
    {"GET", "/profiles/{user_id}", CM_API_USER, cm_api_profile_get},
    {"POST", "/v1/track", CM_API_SEGMENT, cm_api_segment_track},
    {"POST", "/v1/identify", CM_API_SEGMENT, cm_api_segment_identify},
    {"POST", "/v1/page", CM_API_SEGMENT, cm_api_segment_page},
    {"POST", "/v1/screen", CM_API_SEGMENT, cm_api_segment_screen},
    {"POST", "/v1/group", CM_API_SEGMENT, cm_api_segment_group},
    {"POST", "/v1/alias", CM_API_SEGMENT, cm_api_segment_alias},
    {"POST", "/v1/batch", CM_API_SEGMENT, cm_api_segment_batch},
    {"GET", "/health", CM_API_ANYONE, h_health},
    {"GET", "/metrics", CM_API_ANYONE, cm_api_metrics},
    {"GET", "/openapi.json", CM_API_ANYONE, cm_api_openapi},
    {"GET", "/docs", CM_API_ANYONE, cm_api_docs},
    {"GET", "/docs/", CM_API_ANYONE, cm_api_docs},
    {"GET", "/docs/{file}", CM_API_ANYONE, cm_api_docs_file},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* Seconds since the epoch. */
static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

struct cm_api *cm_api_start(const struct cm_api_opts *o, struct cm_err *err)
{
	struct cm_api *a = calloc(1, sizeof(*a));
	struct cm_auth_opts ao = {o->secret, o->secret_len, o->token_ttl_s, KEY_TTL_MS};
	struct cm_workq_opts dbo = {
	    o->db_threads ? o->db_threads : 4, DB_QUEUE, o->conninfo, 3, 10000, o->redis};
	struct cm_workq_opts lo = {1, LOGIN_QUEUE, o->conninfo, 3, 10000, NULL};
	/* The statement timeout only backs up the backtest's own clock. */
	struct cm_workq_opts bo = {1,
	                           BACKTEST_Q,
	                           o->conninfo,
	                           3,
	                           (int)((o->backtest_ms ? o->backtest_ms : 10000) + 5000),
	                           NULL};
	struct cm_pubq_opts po;
	struct cm_health_opts ho;
	struct cm_throttle_opts to;

	if (!a)
		return cm_errf(err, "out of memory"), NULL;
	a->conninfo = strdup(o->conninfo ? o->conninfo : "");
	a->stream = strdup(o->stream);
	a->redis = *o->redis;
	a->worker_ttl_s = o->worker_ttl_s;
	a->backtest_ms = o->backtest_ms ? o->backtest_ms : 10000;
	a->max_body = o->max_body;
	a->log = o->log;
	if (!a->conninfo || !a->stream) {
		cm_errf(err, "out of memory");
		goto fail;
	}
	cm_throttle_defaults(&to);
	a->throttle = cm_throttle_new(&to);
	if (!a->throttle) {
		cm_errf(err, "out of memory");
		goto fail;
	}
	a->auth = cm_auth_new(&ao, err);
	if (!a->auth || cm_api_metrics_init(a, err) < 0 || cm_api_explain_init(a, err) < 0)
		goto fail;
	memset(&po, 0, sizeof(po));
	po.url = &a->redis;
	po.key = a->stream;
	po.retry_ms = 1000;
	po.connect_ms = 1000;
	po.io_ms = 5000;
	a->pub = cm_pubq_start(&po, err);
	if (!a->pub)
		goto fail;
	a->db = cm_workq_start(&dbo, err);
	if (!a->db)
		goto fail;
	a->login = cm_workq_start(&lo, err);
	if (!a->login)
		goto fail;
	a->backtest = cm_workq_start(&bo, err);
	if (!a->backtest)
		goto fail;
	memset(&ho, 0, sizeof(ho));
	ho.conninfo = a->conninfo;
	ho.redis = &a->redis;
	ho.timeout_ms = 2000;
	ho.max_age_ms = 1000;
	ho.log = a->log;
	a->health = cm_health_start(&ho, err);
	if (!a->health)
		goto fail;
	return a;
fail:
	cm_api_stop(a);
	cm_api_free(a);
	return NULL;
}

void cm_api_stop(struct cm_api *a)
{
	if (!a)
		return;
	cm_pubq_stop(a->pub);
	cm_workq_stop(a->db);
	cm_workq_stop(a->login);
	cm_workq_stop(a->backtest);
	cm_health_stop(a->health);
	a->pub = NULL;
	a->db = a->login = a->backtest = NULL;
	a->health = NULL;
}

void cm_api_free(struct cm_api *a)
{
	if (!a)
		return;
	cm_auth_free(a->auth);
	cm_throttle_free(a->throttle);
	cm_api_metrics_free(a);
	cm_api_explain_free(a);
	free(a->conninfo);
	free(a->stream);
	free(a);
}

/* --- Replies shared by the routes. --- */

void cm_api_reply_json(struct cm_http_req *r, int status, struct cm_buf *b, int bad)
{
	if (bad) {
		cm_buf_release(b);
		cm_http_detail(r, 500, "Internal Server Error");
		return;
	}
	cm_http_reply(r, status, "application/json", b);
}

void cm_api_422(struct cm_http_req *r, const char *loc, const char *msg, const char *type)
{
	struct cm_buf b = CM_BUF_INIT;

	if (cm_detail_422(&b, loc, msg, type) < 0) {
		cm_buf_release(&b);
		cm_http_detail(r, 500, "Internal Server Error");
		return;
	}
	cm_http_reply(r, 422, "application/json", &b);
}

void cm_api_unavailable(struct cm_http_req *r, const char *detail)
{
	cm_http_detail(r, 503, detail);
	cm_http_add_header(r, "Retry-After", "1");
}

/* 401 with FastAPI's detail and the challenge. */
static void unauthorized(struct cm_http_req *r, const char *detail)
{
	cm_http_detail(r, 401, detail);
	cm_http_add_header(r, "WWW-Authenticate", "Bearer");
}

void cm_api_db_error(struct cm_api_call *c, PGconn *pg, const struct cm_err *err)
{
	/* Gone, shutting down, out of resources, timed out, deadlocked: the
	 * client may try again. */
	if (!pg || PQstatus(pg) != CONNECTION_OK || strstr(err->msg, "(SQLSTATE 08") ||
	    strstr(err->msg, "(SQLSTATE 57") || strstr(err->msg, "(SQLSTATE 53") ||
	    strstr(err->msg, "(SQLSTATE 40")) {
		cm_logkv(c->api->log, CM_LOG_WARNING, "database unavailable", "route",
		         c->route->path, "error", err->msg, CM_LOG_END);
		cm_api_unavailable(c->r, "Database unavailable");
		return;
	}
	cm_logkv(c->api->log, CM_LOG_ERROR, "database error", "route", c->route->path, "error",
	         err->msg, "trace_id", c->r->trace_id, CM_LOG_END);
	cm_http_detail(c->r, 500, "Internal Server Error");
}

int cm_api_query_int(struct cm_http_req *r, const char *name, int64_t def, int64_t min, int64_t max,
                     int64_t *out)
{
	char v[32], loc[64], msg[96];
	int st = r->query ? cm_query_get(r->query, r->query_len, name, v, sizeof(v)) : 0;

	snprintf(loc, sizeof(loc), "\"query\",\"%s\"", name);
	*out = def;
	if (st == 0)
		return 0;
	if (st < 0 || cm_parse_i64(v, INT64_MIN, INT64_MAX, out) < 0) {
		cm_api_422(r, loc, "value is not a valid integer", "type_error.integer");
		return -1;
	}
	if (*out < min) {
		snprintf(msg, sizeof(msg), "ensure this value is greater than or equal to %lld",
		         (long long)min);
		cm_api_422(r, loc, msg, "value_error.number.not_ge");
		return -1;
	}
	if (*out > max) {
		snprintf(msg, sizeof(msg), "ensure this value is less than or equal to %lld",
		         (long long)max);
		cm_api_422(r, loc, msg, "value_error.number.not_le");
		return -1;
	}
	return 0;
}

int cm_api_path_id(struct cm_api_call *c, int64_t *id)
{
	if (c->param_nul || cm_parse_i64(c->param, 1, INT64_MAX, id) < 0) {
		cm_api_422(c->r, "\"path\",\"id\"", "value is not a valid integer",
		           "type_error.integer");
		return -1;
	}
	return 0;
}

int cm_api_add_json(struct cm_buf *b, const char *text, size_t n)
{
	/* Deep: stored properties may nest further than a request may. */
	struct cm_jdoc *d = cm_jdoc_thread(CM_API_DOC_STORED, 1024);

	if (!d || cm_json_parse(d, text, n, NULL) < 0)
		return cm_buf_add(b, text, n);
	return cm_json_write(d, 0, b);
}

int cm_api_add_col(struct cm_buf *b, const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return cm_buf_adds(b, "null");
	return cm_log_add_str(b, PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
}

int cm_api_add_outcome(struct cm_buf *b, const PGresult *res, int row, int col)
{
	int rc = cm_buf_adds(b, ",\"outcome\":") | cm_api_add_col(b, res, row, col);

	if (!PQgetisnull(res, row, col + 1))
		rc |= cm_buf_adds(b, ",\"variant\":") | cm_api_add_col(b, res, row, col + 1);
	if (!PQgetisnull(res, row, col + 2))
		rc |= cm_buf_adds(b, ",\"capped_by\":") | cm_api_add_col(b, res, row, col + 2);
	return rc;
}

/* --- Database jobs. --- */

/* Checks on the database thread that the token's user still exists, and
 * is an admin where the route needs one; 0, or -1 after answering. */
static int check_user(struct cm_api_call *c, PGconn *pg)
{
	const char *params[1] = {c->who};
	struct cm_err err;
	PGresult *res;
	int rc = 0;

	res = cm_pg_query(pg, "SELECT role FROM users WHERE username = $1", 1, params, &err);
	if (!res) {
		cm_api_db_error(c, pg, &err);
		return -1;
	}
	if (PQntuples(res) != 1) {
		unauthorized(c->r, "Could not validate credentials");
		rc = -1;
	} else {
		c->role =
		    strcmp(PQgetvalue(res, 0, 0), "admin") == 0 ? CM_ROLE_ADMIN : CM_ROLE_USER;
		if (c->route->flags == CM_API_ADMIN && c->role != CM_ROLE_ADMIN) {
			cm_http_detail(c->r, 403, "Not enough permissions");
			rc = -1;
		}
	}
	PQclear(res);
	return rc;
}

/* A database job: the connection, the user check, the route's part. */
static void db_job(struct cm_worker *w, void *arg)
{
	struct cm_api_call *c = arg;
	struct cm_err err;
	PGconn *pg = cm_worker_db(w, &err);

	if (!pg) {
		cm_logkv(c->api->log, CM_LOG_WARNING, "database unavailable", "route",
		         c->route->path, "error", err.msg, CM_LOG_END);
		cm_api_unavailable(c->r, "Database unavailable");
	} else if (c->role == CM_ROLE_KEY || check_user(c, pg) == 0) {
		c->db(c, pg);
	}
	cm_worker_db_check(w);
	cm_http_resume(c->r);
}

void cm_api_db(struct cm_api_call *c, cm_api_db_fn *fn)
{
	cm_api_db_on(c, c->api->db, fn);
}

void cm_api_db_on(struct cm_api_call *c, struct cm_workq *q, cm_api_db_fn *fn)
{
	c->db = fn;
	cm_http_suspend(c->r);
	if (cm_workq_submit(q, db_job, c) < 0) {
		/* Nobody else has the request: answer it here. */
		cm_api_unavailable(c->r, "Server busy");
		cm_http_resume(c->r);
	}
}

/* Looks a write key (c->state) up on a database thread, then runs the
 * route again. */
static void key_job(struct cm_worker *w, void *arg)
{
	struct cm_api_call *c = arg;
	uint8_t hash[CM_APIKEY_HASH_BYTES];
	struct cm_err err;
	PGconn *pg = cm_worker_db(w, &err);
	char name[CM_APIKEY_NAME_MAX + 1];
	int st = -1;

	cm_apikey_hash(c->state, strlen(c->state), hash);
	if (pg)
		st = cm_auth_key_lookup(pg, hash, name, sizeof(name), &err);
	if (st < 0) {
		cm_logkv(c->api->log, CM_LOG_WARNING, "write key lookup failed", "error", err.msg,
		         CM_LOG_END);
		c->key_state = -1;
	} else {
		cm_auth_key_remember(c->api->auth, hash, st ? name : NULL, cm_time_now());
		c->key_state = st;
		if (st)
			snprintf(c->who, sizeof(c->who), "%s", name);
	}
	cm_worker_db_check(w);
	sodium_memzero(c->state, strlen(c->state));
	free(c->state);
	c->state = NULL;
	c->state_free = NULL;
	cm_http_rerun(c->r);
}

/* --- Who is calling. --- */

/* The caller of a write route holds a write key found in api_keys. */
static void as_key(struct cm_api_call *c, const char *name)
{
	c->role = CM_ROLE_KEY;
	if (name != c->who)
		snprintf(c->who, sizeof(c->who), "%s", name);
	snprintf(c->r->user, sizeof(c->r->user), "key:%s", c->who);
}

/* A write key that is no key: the route's 401 (Segment's body on /v1). */
static void key_unknown(struct cm_api_call *c)
{
	if (c->route->flags != CM_API_SEGMENT) {
		unauthorized(c->r, "Could not validate credentials");
		return;
	}
	cm_api_segment_error(c->r, 401, "invalid write key (make one with cm-admin key add)");
	cm_http_add_header(c->r, "WWW-Authenticate", "Basic realm=\"cm-httpd\"");
}

/* A write key that could not be looked up, or no database thread free:
 * the route's 503. */
static void key_unavailable(struct cm_api_call *c, const char *why)
{
	if (c->route->flags != CM_API_SEGMENT) {
		cm_api_unavailable(c->r, why);
		return;
	}
	cm_api_segment_error(c->r, 503, why);
	cm_http_add_header(c->r, "Retry-After", "1");
}

int cm_api_key(struct cm_api_call *c, const char *key, size_t len)
{
	struct cm_http_req *r = c->r;
	uint8_t hash[CM_APIKEY_HASH_BYTES];
	char name[CM_APIKEY_NAME_MAX + 1];
	int st;

	if (!cm_apikey_valid(key, len)) {
		key_unknown(c);
		return -1;
	}
	cm_apikey_hash(key, len, hash);
	st = cm_auth_key_cached(c->api->auth, hash, cm_time_now(), name, sizeof(name));
	if (st == 0) {
		key_unknown(c);
		return -1;
	}
	if (st == 1) {
		as_key(c, name);
		return 0;
	}
	/* The key is copied: the database thread cannot read the request. */
	c->state = strndup(key, len);
	if (!c->state) {
		cm_http_detail(r, 500, "Internal Server Error");
		return -1;
	}
	c->state_free = free;
	cm_http_suspend(r);
	if (cm_workq_submit(c->api->db, key_job, c) < 0) {
		key_unavailable(c, "Server busy");
		cm_http_resume(r);
	}
	return 1;
}

/* Authenticates the request for its route; 0 to go on, 1 when suspended
 * (a key lookup), -1 after answering. */
static int authenticate(struct cm_api_call *c)
{
	struct cm_http_req *r = c->r;
	struct cm_jwt_claims cl;
	struct cm_err err;
	const char *hdr, *cred;
	size_t len;
	int need = c->route->flags;

	if (need == CM_API_ANYONE)
		return 0;
	if (c->key_state != -2) {
		/* Back from a key lookup. */
		if (c->key_state < 0) {
			key_unavailable(c, "Database unavailable");
			return -1;
		}
		if (c->key_state == 0) {
			key_unknown(c);
			return -1;
		}
		as_key(c, c->who);
		return 0;
	}
	/* Segment's routes find the key in the header or the body. */
	if (need == CM_API_SEGMENT)
		return 0;
	hdr = cm_http_header(r, "Authorization");
	switch (cm_auth_bearer(hdr, &cred, &len)) {
	case CM_AUTH_MISSING:
		unauthorized(r, "Not authenticated");
		return -1;
	case CM_AUTH_KEY:
		/* A write key may only send events; elsewhere it is just not
		 * a token. */
		if (need != CM_API_WRITE || !cm_apikey_valid(cred, len)) {
			unauthorized(r, "Could not validate credentials");
			return -1;
		}
		return cm_api_key(c, cred, len);
	case CM_AUTH_TOKEN:
		break;
	}
	if (cm_auth_verify(c->api->auth, cred, len, now_s(), &cl, &err) < 0) {
		cm_logkv(c->api->log, CM_LOG_DEBUG, "token refused", "reason", err.msg, "trace_id",
		         r->trace_id, CM_LOG_END);
		unauthorized(r, "Could not validate credentials");
		return -1;
	}
	snprintf(c->who, sizeof(c->who), "%s", cl.sub);
	snprintf(r->user, sizeof(r->user), "%s", cl.sub);
	c->role = strcmp(cl.role, "admin") == 0 ? CM_ROLE_ADMIN : CM_ROLE_USER;
	if (need == CM_API_ADMIN && c->role != CM_ROLE_ADMIN) {
		cm_http_detail(r, 403, "Not enough permissions");
		return -1;
	}
	return 0;
}

/* Frees a call and its route state. */
static void call_free(void *p)
{
	struct cm_api_call *c = p;

	if (c->state_free)
		c->state_free(c->state);
	free(c);
}

/* Answers what the router says when no route takes the request. */
static void no_route(struct cm_http_req *r, const struct cm_route_match *m)
{
	char loc[192];

	if (m->status == 405) {
		cm_http_detail(r, 405, "Method Not Allowed");
		cm_http_add_header(r, "Allow", m->allow);
	} else if (m->status == 307) {
		/* As Starlette: the same path without its trailing slash. */
		snprintf(loc, sizeof(loc), "%.*s%s%.*s", (int)(r->path_len - 1), r->path,
		         r->query ? "?" : "", r->query ? (int)r->query_len : 0,
		         r->query ? r->query : "");
		cm_http_reply_text(r, 307, NULL, "", 0);
		cm_http_add_header(r, "Location", loc);
	} else {
		cm_http_detail(r, 404, "Not Found");
	}
}

int cm_api_too_big(struct cm_http_req *r)
{
	struct cm_route_match m;

	cm_route_find(routes, NROUTES, r->method, r->path, r->path_len, &m);
	if (m.status != 0 || routes[m.index].flags != CM_API_SEGMENT)
		return 0;
	r->route = routes[m.index].path;
	return cm_api_segment_too_big(r);
}

void cm_api_handle(struct cm_http_req *r)
{
	struct cm_api_call *c = r->data;
	struct cm_route_match m;

	cm_route_find(routes, NROUTES, r->method, r->path, r->path_len, &m);
	if (m.status != 0) {
		no_route(r, &m);
		return;
	}
	r->route = routes[m.index].path;
	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c) {
			cm_http_detail(r, 500, "Internal Server Error");
			return;
		}
		c->api = r->app;
		c->r = r;
		c->key_state = -2;
		r->data = c;
		r->data_free = call_free;
	}
	c->route = &routes[m.index];
	if (m.nparams > 0) {
		size_t n = m.param[0].n < sizeof(c->param) ? m.param[0].n : sizeof(c->param) - 1;

		c->param_len = cm_url_decode(m.param[0].p, n, c->param, 0, &c->param_nul);
		c->param_cut = n < m.param[0].n;
	}
	if (authenticate(c) != 0)
		return;
	((route_fn *)(uintptr_t)c->route->fn)(c);
}

/* --- POST /auth/token --- */

/* A login handed to the login thread. */
struct login {
	char user[CM_JWT_SUB_MAX + 1];
	char password[PASSWORD_MAX + 1];
};

static void login_free(void *p)
{
	sodium_memzero(p, sizeof(struct login));
	free(p);
}

/* Replies 200 with a new token for the user of l. */
static void token_reply(struct cm_api_call *c, const struct login *l, const char *role)
{
	struct cm_buf b = CM_BUF_INIT, tok = CM_BUF_INIT;
	struct cm_err err;

	if (cm_auth_issue(c->api->auth, l->user, role, now_s(), &tok, &err) < 0 ||
	    cm_buf_adds(&b, "{\"access_token\":") < 0 ||
	    cm_buf_add_jstr(&b, tok.data, tok.len) < 0 ||
	    cm_buf_adds(&b, ",\"token_type\":\"bearer\"}") < 0) {
		cm_http_detail(c->r, 500, "Internal Server Error");
	} else {
		snprintf(c->r->user, sizeof(c->r->user), "%s", l->user);
		cm_http_reply(c->r, 200, "application/json", &b);
	}
	if (tok.data)
		sodium_memzero(tok.data, tok.len);
	cm_buf_release(&tok);
	cm_buf_release(&b);
}

/* The password check, on the login thread: a token, or FastAPI's 401 for a
 * wrong name or password. */
static void login_job(struct cm_worker *w, void *arg)
{
	struct cm_api_call *c = arg;
	struct login *l = c->state;
	struct cm_err err;
	char role[16];
	PGconn *pg = cm_worker_db(w, &err);
	int st = -1;

	if (pg)
		st = cm_auth_password(c->api->auth, pg, l->user, l->password, role, sizeof(role),
		                      &err);
	sodium_memzero(l->password, sizeof(l->password));
	if (st < 0) {
		cm_api_db_error(c, pg, &err);
	} else if (st == 0) {
		unauthorized(c->r, "Incorrect username or password");
	} else {
		cm_throttle_success(c->api->throttle, l->user, c->r->remote);
		token_reply(c, l, role);
	}
	cm_worker_db_check(w);
	cm_http_resume(c->r);
}

/* Reads one form field into out; appends FastAPI's error to errs when a
 * required one is missing or empty (FastAPI counts an empty form field as
 * missing). 1 when present, -1 when too long. */
static int form_field(struct cm_http_req *r, const char *ctype, const char *name, char *out,
                      size_t size, int required, struct cm_buf *errs)
{
	int st = cm_form_get(ctype, r->body.data ? r->body.data : "", r->body.len, name, out, size);

	if (st == CM_FORM_FOUND && out[0])
		return 1;
	if (st == CM_FORM_TOO_LONG)
		return -1;
	if (required)
		cm_buf_addf(errs,
		            "%s{\"loc\":[\"body\",\"%s\"],\"msg\":\"field required\","
		            "\"type\":\"value_error.missing\"}",
		            errs->len ? "," : "", name);
	return 0;
}

/* Replies 422 with the list of errors in errs. */
static void reply_errors(struct cm_http_req *r, const struct cm_buf *errs)
{
	struct cm_buf b = CM_BUF_INIT;

	if (cm_buf_adds(&b, "{\"detail\":[") == 0 && cm_buf_add(&b, errs->data, errs->len) == 0 &&
	    cm_buf_adds(&b, "]}") == 0)
		cm_http_reply(r, 422, "application/json", &b);
	else
		cm_http_detail(r, 500, "Internal Server Error");
	cm_buf_release(&b);
}

/* POST /auth/token: OAuth2's password form, as FastAPI's
 * OAuth2PasswordRequestForm reads it. Repeated failures are slowed down
 * (throttle.h) before any hashing. */
static void h_token(struct cm_api_call *c)
{
	struct cm_http_req *r = c->r;
	const char *ctype = cm_http_header(r, "Content-Type");
	struct cm_buf errs = CM_BUF_INIT;
	struct login *l = calloc(1, sizeof(*l));
	char grant[32], retry[32];
	int hu, hp, hg;
	int64_t wait;

	if (!l) {
		cm_http_detail(r, 500, "Internal Server Error");
		return;
	}
	c->state = l;
	c->state_free = login_free;
	hu = form_field(r, ctype, "username", l->user, sizeof(l->user), 1, &errs);
	hp = form_field(r, ctype, "password", l->password, sizeof(l->password), 1, &errs);
	hg = form_field(r, ctype, "grant_type", grant, sizeof(grant), 0, &errs);
	if (hg == 1 && strcmp(grant, "password") != 0)
		cm_buf_addf(&errs,
		            "%s{\"loc\":[\"body\",\"grant_type\"],\"msg\":\"string does not match "
		            "regex \\\"password\\\"\",\"type\":\"value_error.str.regex\","
		            "\"ctx\":{\"pattern\":\"password\"}}",
		            errs.len ? "," : "");
	if (errs.len || hg < 0) {
		if (!errs.len)
			cm_buf_adds(
			    &errs, "{\"loc\":[\"body\",\"grant_type\"],\"msg\":\"string does "
			           "not match regex \\\"password\\\"\",\"type\":"
			           "\"value_error.str.regex\",\"ctx\":{\"pattern\":\"password\"}}");
		reply_errors(r, &errs);
		cm_buf_release(&errs);
		return;
	}
	/* An overlong name or password cannot be right. */
	if (hu < 0 || hp < 0) {
		unauthorized(r, "Incorrect username or password");
		return;
	}
	wait = cm_throttle_begin(c->api->throttle, l->user, r->remote, cm_time_now());
	if (wait > 0) {
		snprintf(retry, sizeof(retry), "%lld", (long long)((wait + 999) / 1000));
		cm_http_detail(r, 429, "Too many failed login attempts; try again later");
		cm_http_add_header(r, "Retry-After", retry);
		return;
	}
	cm_http_suspend(r);
	if (cm_workq_submit(c->api->login, login_job, c) < 0) {
		cm_api_unavailable(r, "Too many logins in progress");
		cm_http_resume(r);
	}
}

/* --- GET /auth/users/me --- */

/* The user and the role the database has now (check_user just read it). */
static void me_db(struct cm_api_call *c, PGconn *pg)
{
	struct cm_buf b = CM_BUF_INIT;

	(void)pg;
	if (cm_buf_adds(&b, "{\"username\":") == 0 &&
	    cm_buf_add_jstr(&b, c->who, strlen(c->who)) == 0 &&
	    cm_buf_addf(&b, ",\"role\":\"%s\"}", c->role == CM_ROLE_ADMIN ? "admin" : "user") == 0)
		cm_http_reply(c->r, 200, "application/json", &b);
	else
		cm_http_detail(c->r, 500, "Internal Server Error");
	cm_buf_release(&b);
}

static void h_me(struct cm_api_call *c)
{
	cm_api_db(c, me_db);
}

/* --- GET /health --- */

/* Writes the health reply from res. */
static void health_reply(struct cm_http_req *r, const struct cm_health_result *res)
{
	struct cm_buf b = CM_BUF_INIT;
	int ok = res->at_ms && res->redis_ok && res->pg_ok;

	if (cm_buf_addf(&b, "{\"status\":\"%s\",\"checks\":{\"redis\":\"%s\",\"postgres\":\"%s\"}}",
	                ok ? "ok" : "unavailable", res->at_ms ? res->redis : "unknown",
	                res->at_ms ? res->pg : "unknown") < 0) {
		cm_http_detail(r, 500, "Internal Server Error");
		return;
	}
	cm_http_reply(r, ok ? 200 : 503, "application/json", &b);
}

/* The waiter of a request that found the result stale. */
static void health_ready(struct cm_health_waiter *w, const struct cm_health_result *res)
{
	struct cm_api_call *c = w->arg;

	health_reply(c->r, res);
	cm_http_resume(c->r);
}

/* GET /health: the last result when it is at most a second old, else the
 * next one (the request waits, suspended). */
static void h_health(struct cm_api_call *c)
{
	struct cm_health_result res;
	struct cm_health_waiter *w;

	if (cm_health_get(c->api->health, &res)) {
		health_reply(c->r, &res);
		return;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		cm_http_detail(c->r, 500, "Internal Server Error");
		return;
	}
	c->state = w;
	c->state_free = free;
	w->cb = health_ready;
	w->arg = c;
	cm_http_suspend(c->r);
	cm_health_wait(c->api->health, w);
}
