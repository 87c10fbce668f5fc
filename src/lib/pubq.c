/* pubq.c - the publisher thread: takes every queued job at once, sends
 * their entries as one batch, and reports each job when it is settled. */
#include "pubq.h"

#include "err.h"
#include "xadd.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cm_pubq {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cm_pubq_job *head, *tail; /* queued, not yet taken */
	size_t queued, max_queued;       /* entries in the queue */
	int stopping;
	atomic_int down;
	struct cm_xadd *x;
};

/* One entry settled: counts it for its job, and finishes the job with its
 * last entry. */
static void on_entry(void *ctx, uint64_t tag, const char *id, size_t idlen, const char *error)
{
	struct cm_pubq_job *j = (struct cm_pubq_job *)(uintptr_t)tag;

	(void)ctx;
	(void)id;
	(void)idlen;
	if (error && !j->failed) {
		j->failed = 1;
		snprintf(j->error, sizeof(j->error), "%s", error);
	}
	if (++j->settled == j->n)
		j->done(j);
}

/* Finishes a job that could not be handed to Redis at all. */
static void fail_job(struct cm_pubq_job *j, const char *why)
{
	j->failed = 1;
	snprintf(j->error, sizeof(j->error), "%s", why);
	j->done(j);
}

/* Adds the entries of one job to the filling batch. */
static void add_job(struct cm_pubq *q, struct cm_pubq_job *j)
{
	int group = j->atomic && j->n > 1;
	size_t i;

	if (group && cm_xadd_begin(q->x) < 0) {
		fail_job(j, "out of memory");
		return;
	}
	for (i = 0; i < j->n; i++)
		if (cm_xadd_add(q->x, j->text + j->off[i], j->len[i], (uint64_t)(uintptr_t)j) < 0)
			break;
	if (i < j->n) {
		/* Out of memory: a group is dropped whole; otherwise the
		 * entries added go on and the rest count as failed. */
		if (group) {
			cm_xadd_rollback(q->x);
			fail_job(j, "out of memory");
			return;
		}
		j->failed = 1;
		snprintf(j->error, sizeof(j->error), "out of memory");
		j->settled += j->n - i;
		if (i == 0) {
			j->done(j);
			return;
		}
	}
	if (group && cm_xadd_commit(q->x) < 0) {
		cm_xadd_rollback(q->x);
		fail_job(j, "out of memory");
	}
}

/* The thread: waits for jobs (or for replies still due), sends what was
 * queued meanwhile as one batch, and reads the replies of the batch before. */
static void *run(void *arg)
{
	struct cm_pubq *q = arg;
	struct cm_pubq_job *list, *j, *next;
	struct cm_err err;
	int stopping;

	for (;;) {
		pthread_mutex_lock(&q->mu);
		while (!q->head && !q->stopping && cm_xadd_unconfirmed(q->x) == 0)
			pthread_cond_wait(&q->cv, &q->mu);
		list = q->head;
		q->head = q->tail = NULL;
		q->queued = 0;
		stopping = q->stopping;
		pthread_mutex_unlock(&q->mu);
		for (j = list; j; j = next) {
			next = j->next;
			add_job(q, j);
		}
		cm_xadd_pump(q->x, list ? 1 : 0, &err);
		atomic_store(&q->down, cm_xadd_down(q->x));
		if (stopping && !list && cm_xadd_unconfirmed(q->x) == 0)
			break;
	}
	return NULL;
}

struct cm_pubq *cm_pubq_start(const struct cm_pubq_opts *o, struct cm_err *err)
{
	struct cm_xadd_opts xo = {o->url, o->key, o->retry_ms, o->connect_ms, o->io_ms, NULL};
	struct cm_pubq *q = calloc(1, sizeof(*q));

	if (!q) {
		cm_errf(err, "out of memory");
		return NULL;
	}
	q->max_queued = o->max_queued ? o->max_queued : 1000000;
	q->x = cm_xadd_new(&xo, on_entry, q);
	if (!q->x) {
		free(q);
		cm_errf(err, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	if (pthread_create(&q->thread, NULL, run, q) != 0) {
		cm_xadd_free(q->x);
		pthread_mutex_destroy(&q->mu);
		pthread_cond_destroy(&q->cv);
		free(q);
		cm_errf(err, "cannot start the publisher thread");
		return NULL;
	}
	return q;
}

int cm_pubq_submit(struct cm_pubq *q, struct cm_pubq_job *job)
{
	int rc = -1;

	job->failed = 0;
	job->error[0] = 0;
	job->settled = 0;
	job->next = NULL;
	if (job->n == 0)
		return -1;
	pthread_mutex_lock(&q->mu);
	if (!q->stopping && q->queued + job->n <= q->max_queued) {
		if (q->tail)
			q->tail->next = job;
		else
			q->head = job;
		q->tail = job;
		q->queued += job->n;
		pthread_cond_signal(&q->cv);
		rc = 0;
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int cm_pubq_down(struct cm_pubq *q)
{
	return atomic_load(&q->down);
}

void cm_pubq_stop(struct cm_pubq *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->mu);
	q->stopping = 1;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	pthread_join(q->thread, NULL);
	cm_xadd_free(q->x);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q);
}
