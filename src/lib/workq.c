/* workq.c - a bounded job queue served by a few threads, each with its own
 * PostgreSQL connection. */
#include "workq.h"

#include "err.h"
#include "pg.h"
#include "redisx.h"
#include "retry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct job {
	cm_work_fn *fn;
	void *arg;
};

struct cm_workq {
	struct cm_workq_opts o;
	char *conninfo;
	struct cm_redis_url redis;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *ring; /* max_queued slots */
	size_t head, count;
	int stopping;
	struct cm_worker *workers;
	pthread_t *threads;
	unsigned nthreads;
};

/* A worker thread: runs jobs until the pool stops and the queue is empty. */
static void *run(void *arg)
{
	struct cm_worker *w = arg;
	struct cm_workq *q = w->q;
	struct job j;

	for (;;) {
		pthread_mutex_lock(&q->mu);
		while (q->count == 0 && !q->stopping)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->count == 0) {
			pthread_mutex_unlock(&q->mu);
			break;
		}
		j = q->ring[q->head];
		q->head = (q->head + 1) % q->o.max_queued;
		q->count--;
		pthread_mutex_unlock(&q->mu);
		j.fn(w, j.arg);
	}
	if (w->pg)
		PQfinish(w->pg);
	w->pg = NULL;
	if (w->redis)
		redisFree(w->redis);
	w->redis = NULL;
	return NULL;
}

struct cm_workq *cm_workq_start(const struct cm_workq_opts *o, struct cm_err *err)
{
	struct cm_workq *q = calloc(1, sizeof(*q));
	unsigned i;

	if (!q)
		return cm_errf(err, "out of memory"), NULL;
	q->o = *o;
	if (q->o.threads == 0)
		q->o.threads = 1;
	if (q->o.max_queued == 0)
		q->o.max_queued = 1024;
	if (q->o.connect_timeout_s <= 0)
		q->o.connect_timeout_s = 3;
	q->conninfo = strdup(o->conninfo ? o->conninfo : "");
	q->ring = calloc(q->o.max_queued, sizeof(*q->ring));
	q->workers = calloc(q->o.threads, sizeof(*q->workers));
	q->threads = calloc(q->o.threads, sizeof(*q->threads));
	if (!q->conninfo || !q->ring || !q->workers || !q->threads) {
		cm_errf(err, "out of memory");
		goto fail;
	}
	q->o.conninfo = q->conninfo;
	if (o->redis) {
		q->redis = *o->redis;
		q->o.redis = &q->redis;
	}
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	for (i = 0; i < q->o.threads; i++) {
		q->workers[i].q = q;
		q->workers[i].id = i;
		if (pthread_create(&q->threads[i], NULL, run, &q->workers[i]) != 0) {
			cm_errf(err, "cannot start a worker thread");
			q->nthreads = i;
			cm_workq_stop(q);
			return NULL;
		}
	}
	q->nthreads = q->o.threads;
	return q;
fail:
	free(q->conninfo);
	free(q->ring);
	free(q->workers);
	free(q->threads);
	free(q);
	return NULL;
}

int cm_workq_submit(struct cm_workq *q, cm_work_fn *fn, void *arg)
{
	int rc = -1;

	pthread_mutex_lock(&q->mu);
	if (!q->stopping && q->count < q->o.max_queued) {
		q->ring[(q->head + q->count) % q->o.max_queued] = (struct job){fn, arg};
		q->count++;
		pthread_cond_signal(&q->cv);
		rc = 0;
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

size_t cm_workq_queued(struct cm_workq *q)
{
	size_t n;

	pthread_mutex_lock(&q->mu);
	n = q->count;
	pthread_mutex_unlock(&q->mu);
	return n;
}

PGconn *cm_worker_db(struct cm_worker *w, struct cm_err *err)
{
	const struct cm_workq_opts *o = &w->q->o;
	char sql[64];
	int64_t now;

	if (w->pg && PQstatus(w->pg) == CONNECTION_OK)
		return w->pg;
	if (w->pg) {
		PQfinish(w->pg);
		w->pg = NULL;
	}
	now = cm_mono_ms();
	if (now < w->pg_next_try)
		return cm_errf(err, "PostgreSQL unreachable (retrying)"), NULL;
	w->pg = cm_pg_connect_timeout(o->conninfo, o->connect_timeout_s, err);
	if (!w->pg) {
		w->pg_next_try = cm_mono_ms() + 1000;
		return NULL;
	}
	if (o->statement_timeout_ms > 0) {
		snprintf(sql, sizeof(sql), "SET statement_timeout = %d", o->statement_timeout_ms);
		if (cm_pg_exec(w->pg, sql, err) < 0) {
			PQfinish(w->pg);
			w->pg = NULL;
			w->pg_next_try = cm_mono_ms() + 1000;
			return NULL;
		}
	}
	return w->pg;
}

void cm_worker_db_check(struct cm_worker *w)
{
	if (w->pg && PQstatus(w->pg) != CONNECTION_OK) {
		PQfinish(w->pg);
		w->pg = NULL;
	}
}

redisContext *cm_worker_redis(struct cm_worker *w, struct cm_err *err)
{
	const struct cm_workq_opts *o = &w->q->o;

	if (w->redis && !w->redis->err)
		return w->redis;
	if (w->redis) {
		redisFree(w->redis);
		w->redis = NULL;
	}
	if (!o->redis)
		return cm_errf(err, "no Redis configured"), NULL;
	if (cm_mono_ms() < w->redis_next_try)
		return cm_errf(err, "Redis unreachable (retrying)"), NULL;
	w->redis = cm_redis_connect_timed(o->redis, 1000, 2000, err);
	if (!w->redis)
		w->redis_next_try = cm_mono_ms() + 1000;
	return w->redis;
}

void cm_worker_redis_check(struct cm_worker *w)
{
	if (w->redis && w->redis->err) {
		redisFree(w->redis);
		w->redis = NULL;
	}
}

void cm_workq_stop(struct cm_workq *q)
{
	unsigned i;

	if (!q)
		return;
	pthread_mutex_lock(&q->mu);
	q->stopping = 1;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	for (i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q->conninfo);
	free(q->ring);
	free(q->workers);
	free(q->threads);
	free(q);
}
