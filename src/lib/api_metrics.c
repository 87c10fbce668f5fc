/* api_metrics.c - GET /metrics (prom.h's registry: the HTTP and event
 * counters cm-httpd keeps, and at scrape time the stream's figures and the
 * workers' counters read from Redis), and the embedded documents
 * GET /openapi.json and GET /docs (assets.h).
 *
 * A scrape reads Redis, so it runs on a database thread (which keeps a Redis
 * connection too), one scrape at a time; Redis being down leaves its
 * families out of the answer, never the whole answer. */
#include "api.h"

#include "assets.h"
#include "num.h"
#include "version.h"
#include "err.h"
#include "logj.h"
#include "prom.h"
#include "wmetrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds of the request duration histogram, in seconds. */
static const double duration_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,    0.25,  0.5,    1,     2.5,  5,     10};

struct cm_api_metrics {
	struct cm_prom *prom;
	struct cm_prom_family *requests, *durations;
	struct cm_prom_series *accepted[CM_API_NSRC], *rejected[CM_API_NSRC];
	pthread_mutex_t scrape; /* one scrape at a time */
	redisContext *redis;    /* the scraping thread's, during a scrape */
	struct cm_api *api;
};

/* Registers a family, or notes the failure in *bad. */
static struct cm_prom_family *family(struct cm_prom *p, enum cm_prom_type type, const char *name,
                                     const char *help, const char *const *labels, int *bad,
                                     struct cm_err *err)
{
	struct cm_prom_desc d;
	struct cm_prom_family *f;

	memset(&d, 0, sizeof(d));
	d.type = type;
	d.name = name;
	d.help = help;
	d.labels = labels;
	if (type == CM_PROM_HISTOGRAM) {
		d.bounds = duration_bounds;
		d.nbounds = sizeof(duration_bounds) / sizeof(duration_bounds[0]);
	}
	f = cm_prom_family(p, &d, err);
	if (!f)
		*bad = 1;
	return f;
}

/* Reads key's XLEN, the dead-letter stream's XLEN and XINFO GROUPS in one
 * pipeline and writes the stream families. */
static int collect_stream(struct cm_prom_writer *w, void *arg, struct cm_err *err)
{
	static const char *const l_stream[] = {"stream", NULL};
	static const char *const l_group[] = {"stream", "group", NULL};
	struct cm_api_metrics *m = arg;
	const char *key = m->api->stream;
	redisContext *c = m->redis;
	redisReply *len = NULL, *dead = NULL, *groups = NULL;
	const char *v1[1] = {key}, *v2[2] = {key, NULL};
	size_t i, k;
	int rc = -1, pass;

	if (!c)
		return cm_errf(err, "Redis unreachable");
	redisAppendCommand(c, "XLEN %s", key);
	redisAppendCommand(c, "XLEN %s" CM_REDIS_DEAD_SUFFIX, key);
	redisAppendCommand(c, "XINFO GROUPS %s", key);
	if (redisGetReply(c, (void **)&len) != REDIS_OK ||
	    redisGetReply(c, (void **)&dead) != REDIS_OK ||
	    redisGetReply(c, (void **)&groups) != REDIS_OK) {
		cm_errf(err, "Redis: %s", c->errstr);
		goto out;
	}
	if (len->type != REDIS_REPLY_INTEGER || dead->type != REDIS_REPLY_INTEGER) {
		cm_errf(err, "Redis: XLEN %s: unexpected reply", key);
		goto out;
	}
	if (cm_prom_write_family(w, CM_PROM_GAUGE, "cm_stream_length",
	                         "Entries in the stream (XLEN).", l_stream, err) < 0 ||
	    cm_prom_write_sample(w, v1, (double)len->integer, err) < 0 ||
	    cm_prom_write_family(w, CM_PROM_GAUGE, "cm_dead_letter_length",
	                         "Entries in the dead-letter stream KEY:dead (XLEN).", l_stream,
	                         err) < 0 ||
	    cm_prom_write_sample(w, v1, (double)dead->integer, err) < 0)
		goto out;
	/* A stream that does not exist has no groups (XINFO answers an error). */
	for (pass = 0; pass < 2; pass++) {
		if (cm_prom_write_family(
		        w, CM_PROM_GAUGE, pass ? "cm_stream_lag" : "cm_stream_pending",
		        pass ? "Entries the group has not been delivered yet."
		             : "Entries delivered to the group and not acknowledged.",
		        l_group, err) < 0)
			goto out;
		for (i = 0; groups->type == REDIS_REPLY_ARRAY && i < groups->elements; i++) {
			const redisReply *g = groups->element[i];
			const redisReply *val = NULL;

			v2[1] = NULL;
			for (k = 0; g->type == REDIS_REPLY_ARRAY && k + 1 < g->elements; k += 2) {
				const char *f = g->element[k]->str;

				if (!f)
					continue;
				if (strcmp(f, "name") == 0)
					v2[1] = g->element[k + 1]->str;
				else if (strcmp(f, pass ? "lag" : "pending") == 0)
					val = g->element[k + 1];
			}
			/* lag is nil when Redis cannot tell (after deletions). */
			if (!v2[1] || !val || val->type != REDIS_REPLY_INTEGER)
				continue;
			if (cm_prom_write_sample(w, v2, (double)val->integer, err) < 0)
				goto out;
		}
	}
	rc = 0;
out:
	if (len)
		freeReplyObject(len);
	if (dead)
		freeReplyObject(dead);
	if (groups)
		freeReplyObject(groups);
	return rc;
}

/* The workers' counters (wmetrics.h's reading side). */
static int collect_workers(struct cm_prom_writer *w, void *arg, struct cm_err *err)
{
	struct cm_api_metrics *m = arg;

	if (!m->redis)
		return cm_errf(err, "Redis unreachable");
	return cm_wmetrics_render(m->redis, m->api->stream, m->api->worker_ttl_s * 1000, 0, w, err);
}

int cm_api_metrics_init(struct cm_api *a, struct cm_err *err)
{
	static const char *const l_req[] = {"route", "method", "status", NULL};
	static const char *const l_route[] = {"route", NULL};
	static const char *const l_source[] = {"source", NULL};
	static const char *const l_version[] = {"version", NULL};
	static const char *const src[CM_API_NSRC][1] = {{"api"}, {"segment"}};
	static const char *const version[] = {CM_VERSION};
	struct cm_api_metrics *m = calloc(1, sizeof(*m));
	struct cm_prom_family *acc, *rej, *build;
	int bad = 0;

	if (!m)
		return cm_errf(err, "out of memory");
	a->metrics = m;
	m->api = a;
	pthread_mutex_init(&m->scrape, NULL);
	m->prom = cm_prom_new();
	if (!m->prom)
		return cm_errf(err, "out of memory");
	m->requests = family(m->prom, CM_PROM_COUNTER, "cm_http_requests_total",
	                     "HTTP requests answered.", l_req, &bad, err);
	if (!bad)
		m->durations =
		    family(m->prom, CM_PROM_HISTOGRAM, "cm_http_request_duration_seconds",
		           "Time from the request line to the answer sent.", l_route, &bad, err);
	if (!bad)
		acc = family(m->prom, CM_PROM_COUNTER, "cm_events_accepted_total",
		             "Events published to the stream.", l_source, &bad, err);
	if (!bad)
		rej = family(m->prom, CM_PROM_COUNTER, "cm_events_rejected_total",
		             "Events refused as invalid (a refused batch counts all its events).",
		             l_source, &bad, err);
	if (!bad)
		build = family(m->prom, CM_PROM_GAUGE, "cm_build_info",
		               "1, labelled with the running version.", l_version, &bad, err);
	if (bad)
		return -1;
	for (int i = 0; i < CM_API_NSRC; i++) {
		m->accepted[i] = cm_prom_series(acc, src[i]);
		m->rejected[i] = cm_prom_series(rej, src[i]);
	}
	cm_prom_set(cm_prom_series(build, version), 1);
	if (cm_prom_collector(m->prom, collect_stream, m, err) < 0 ||
	    cm_prom_collector(m->prom, collect_workers, m, err) < 0)
		return -1;
	return 0;
}

void cm_api_metrics_free(struct cm_api *a)
{
	struct cm_api_metrics *m = a->metrics;

	if (!m)
		return;
	cm_prom_free(m->prom);
	pthread_mutex_destroy(&m->scrape);
	free(m);
	a->metrics = NULL;
}

/* A method as a label: the ones HTTP defines, anything else "other" (a
 * client may send any token). */
static const char *method_label(const char *m)
{
	static const char *const known[] = {"GET",  "POST",    "PUT",   "PATCH",   "DELETE",
	                                    "HEAD", "OPTIONS", "TRACE", "CONNECT", NULL};
	size_t i;

	for (i = 0; known[i]; i++)
		if (strcmp(m, known[i]) == 0)
			return known[i];
	return "other";
}

void cm_api_done(void *app, const char *route, const char *method, int status, double seconds)
{
	struct cm_api *a = app;
	char st[8];
	const char *req[3] = {route, method_label(method), st};
	const char *rt[1] = {route};

	if (!a->metrics)
		return;
	snprintf(st, sizeof(st), "%d", status);
	cm_prom_inc(cm_prom_series(a->metrics->requests, req));
	cm_prom_observe(cm_prom_series(a->metrics->durations, rt), seconds);
}

void cm_api_events_accepted(struct cm_api *a, int source, uint64_t n)
{
	cm_prom_add(a->metrics->accepted[source], n);
}

void cm_api_events_rejected(struct cm_api *a, int source, uint64_t n)
{
	cm_prom_add(a->metrics->rejected[source], n);
}

/* The scrape, on a database thread: the registry, the stream and the
 * workers; a collector that fails is logged and left out. */
static void scrape_job(struct cm_worker *w, void *arg)
{
	struct cm_api_call *c = arg;
	struct cm_api_metrics *m = c->api->metrics;
	struct cm_buf b = CM_BUF_INIT;
	struct cm_err err, rerr;
	int st;

	pthread_mutex_lock(&m->scrape);
	m->redis = cm_worker_redis(w, &rerr);
	st = cm_prom_render(m->prom, &b, &err);
	m->redis = NULL;
	pthread_mutex_unlock(&m->scrape);
	cm_worker_redis_check(w);
	if (st < 0) {
		cm_buf_release(&b);
		cm_http_detail(c->r, 500, "Internal Server Error");
	} else {
		if (st > 0)
			cm_logkv(c->api->log, CM_LOG_WARNING, "metrics left out of the scrape",
			         "error", err.msg, CM_LOG_END);
		cm_http_reply(c->r, 200, CM_PROM_CONTENT_TYPE, &b);
	}
	cm_http_resume(c->r);
}

void cm_api_metrics(struct cm_api_call *c)
{
	cm_http_suspend(c->r);
	if (cm_workq_submit(c->api->db, scrape_job, c) < 0) {
		cm_api_unavailable(c->r, "Server busy");
		cm_http_resume(c->r);
	}
}

/* Serves an embedded asset, or 304 when the client has it already. */
static void serve_asset(struct cm_http_req *r, const struct cm_asset *a)
{
	const char *inm = cm_http_header(r, "If-None-Match");

	if (!a) {
		cm_http_detail(r, 404, "Not Found");
		return;
	}
	if (inm && strcmp(inm, a->etag) == 0) {
		cm_http_reply_text(r, 304, NULL, "", 0);
	} else {
		/* The bytes are static: the reply copies them. */
		cm_http_reply_text(r, 200, a->content_type, (const char *)a->data, a->len);
	}
	cm_http_add_header(r, "ETag", a->etag);
	cm_http_add_header(r, "Cache-Control", "no-cache");
}

void cm_api_openapi(struct cm_api_call *c)
{
	serve_asset(c->r, cm_asset_find("/openapi.json"));
}

void cm_api_docs(struct cm_api_call *c)
{
	serve_asset(c->r, cm_asset_find("/docs"));
}

void cm_api_docs_file(struct cm_api_call *c)
{
	char name[300];

	if (c->param_nul || c->param_len > 200 || strchr(c->param, '/')) {
		cm_http_detail(c->r, 404, "Not Found");
		return;
	}
	snprintf(name, sizeof(name), "/docs/%s", c->param);
	serve_asset(c->r, cm_asset_find(name));
}
