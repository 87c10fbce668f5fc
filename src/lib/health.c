/* health.c - the checker thread: Redis PING and PostgreSQL SELECT 1 with
 * timeouts, on demand, the result shared by every request that waited. */
#include "health.h"

#include "err.h"
#include "logj.h"
#include "pg.h"
#include "redisx.h"
#include "retry.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cm_health {
	struct cm_health_opts o;
	struct cm_redis_url url;
	char *conninfo;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cm_health_waiter *waiters;
	struct cm_health_result last;
	int stopping;
	redisContext *rc;
	PGconn *pg;
};

/* PING, reconnecting when there is no connection. */
static const char *ping_redis(struct cm_health *h, struct cm_err *err)
{
	redisReply *r;
	const char *v = "ok";

	if (!h->rc) {
		h->rc = cm_redis_connect_timed(&h->url, h->o.timeout_ms, h->o.timeout_ms, err);
		if (!h->rc)
			return "unreachable";
	}
	r = redisCommand(h->rc, "PING");
	if (!r) {
		v = h->rc->err == REDIS_ERR_IO && strstr(h->rc->errstr, "temporarily")
		        ? "timeout"
		        : "unreachable";
		cm_errf(err, "%s: %s", h->url.safe, h->rc->errstr);
		redisFree(h->rc);
		h->rc = NULL;
		return v;
	}
	if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "PONG") != 0) {
		cm_errf(err, "%s: PING: %.200s", h->url.safe, r->str ? r->str : "unexpected reply");
		v = "error";
	}
	freeReplyObject(r);
	return v;
}

/* SELECT 1 within the timeout, reconnecting when needed. */
static const char *select_pg(struct cm_health *h, struct cm_err *err)
{
	struct pollfd pfd;
	PGresult *r;
	int64_t deadline;
	const char *v = "ok";
	int ok = 0;

	if (!h->pg) {
		h->pg = cm_pg_connect_timeout(h->conninfo, (h->o.timeout_ms + 999) / 1000, err);
		if (!h->pg)
			return "unreachable";
	}
	if (!PQsendQuery(h->pg, "SELECT 1"))
		goto broken;
	deadline = cm_mono_ms() + h->o.timeout_ms;
	while (PQisBusy(h->pg)) {
		int64_t left = deadline - cm_mono_ms();

		pfd.fd = PQsocket(h->pg);
		pfd.events = POLLIN;
		if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
			cm_errf(err, "PostgreSQL: no answer to SELECT 1 within %d ms",
			        h->o.timeout_ms);
			PQfinish(h->pg);
			h->pg = NULL;
			return "timeout";
		}
		if (!PQconsumeInput(h->pg))
			goto broken;
	}
	while ((r = PQgetResult(h->pg)) != NULL) {
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			ok = 1;
		else
			cm_pg_errf(err, h->pg, r, "SELECT 1");
		PQclear(r);
	}
	if (PQstatus(h->pg) != CONNECTION_OK)
		goto broken;
	if (!ok)
		v = "error";
	return v;
broken:
	cm_pg_errf(err, h->pg, NULL, "PostgreSQL");
	PQfinish(h->pg);
	h->pg = NULL;
	return "unreachable";
}

/* A check that failed on a connection made earlier is tried once more on a
 * new one: the server may have restarted since, and be fine. */
static const char *check_redis(struct cm_health *h, struct cm_err *err)
{
	int had = h->rc != NULL;
	const char *v = ping_redis(h, err);

	return strcmp(v, "unreachable") == 0 && had ? ping_redis(h, err) : v;
}

static const char *check_pg(struct cm_health *h, struct cm_err *err)
{
	int had = h->pg != NULL;
	const char *v = select_pg(h, err);

	return strcmp(v, "unreachable") == 0 && had ? select_pg(h, err) : v;
}

/* Logs a check whose verdict changed. */
static void note_change(struct cm_health *h, const char *what, const char *before, const char *now,
                        const struct cm_err *err)
{
	if (strcmp(before, now) == 0)
		return;
	if (strcmp(now, "ok") == 0)
		cm_logkv(h->o.log, CM_LOG_INFO, "health check passes again", "check", what,
		         CM_LOG_END);
	else
		cm_logkv(h->o.log, CM_LOG_WARNING, "health check fails", "check", what, "verdict",
		         now, "error", err->msg, CM_LOG_END);
}

/* The thread: runs the checks when someone waits, then answers them all. */
static void *run(void *arg)
{
	struct cm_health *h = arg;
	struct cm_health_result res;
	struct cm_health_waiter *w, *next;
	struct cm_err err;

	pthread_mutex_lock(&h->mu);
	for (;;) {
		while (!h->waiters && !h->stopping)
			pthread_cond_wait(&h->cv, &h->mu);
		if (h->stopping)
			break;
		res = h->last;
		pthread_mutex_unlock(&h->mu);
		err.msg[0] = 0;
		snprintf(res.redis, sizeof(res.redis), "%s", check_redis(h, &err));
		note_change(h, "redis", h->last.at_ms ? h->last.redis : "ok", res.redis, &err);
		err.msg[0] = 0;
		snprintf(res.pg, sizeof(res.pg), "%s", check_pg(h, &err));
		note_change(h, "postgres", h->last.at_ms ? h->last.pg : "ok", res.pg, &err);
		res.redis_ok = strcmp(res.redis, "ok") == 0;
		res.pg_ok = strcmp(res.pg, "ok") == 0;
		res.at_ms = cm_mono_ms();
		pthread_mutex_lock(&h->mu);
		h->last = res;
		w = h->waiters;
		h->waiters = NULL;
		pthread_mutex_unlock(&h->mu);
		for (; w; w = next) {
			next = w->next;
			w->cb(w, &res);
		}
		pthread_mutex_lock(&h->mu);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

struct cm_health *cm_health_start(const struct cm_health_opts *o, struct cm_err *err)
{
	struct cm_health *h = calloc(1, sizeof(*h));

	if (!h)
		return cm_errf(err, "out of memory"), NULL;
	h->o = *o;
	h->url = *o->redis;
	h->conninfo = strdup(o->conninfo ? o->conninfo : "");
	if (!h->conninfo) {
		free(h);
		return cm_errf(err, "out of memory"), NULL;
	}
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	if (pthread_create(&h->thread, NULL, run, h) != 0) {
		free(h->conninfo);
		free(h);
		return cm_errf(err, "cannot start the health thread"), NULL;
	}
	return h;
}

int cm_health_get(struct cm_health *h, struct cm_health_result *res)
{
	int fresh;

	pthread_mutex_lock(&h->mu);
	fresh = h->last.at_ms && cm_mono_ms() - h->last.at_ms <= h->o.max_age_ms;
	if (fresh)
		*res = h->last;
	pthread_mutex_unlock(&h->mu);
	return fresh;
}

void cm_health_wait(struct cm_health *h, struct cm_health_waiter *w)
{
	struct cm_health_result res;
	int fresh;

	pthread_mutex_lock(&h->mu);
	fresh = h->last.at_ms && cm_mono_ms() - h->last.at_ms <= h->o.max_age_ms;
	if (fresh) {
		res = h->last;
	} else {
		w->next = h->waiters;
		h->waiters = w;
		pthread_cond_signal(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
	if (fresh)
		w->cb(w, &res);
}

void cm_health_stop(struct cm_health *h)
{
	struct cm_health_waiter *w, *next;
	struct cm_health_result res;

	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->stopping = 1;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->thread, NULL);
	res = h->last;
	for (w = h->waiters; w; w = next) {
		next = w->next;
		w->cb(w, &res);
	}
	if (h->rc)
		redisFree(h->rc);
	if (h->pg)
		PQfinish(h->pg);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	free(h->conninfo);
	free(h);
}
