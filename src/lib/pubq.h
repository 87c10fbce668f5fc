/* pubq.h - one publisher thread serving many producers: jobs (each one or
 * more stream entries) are queued from any thread, and the thread sends
 * everything queued since its last round trip as one pipelined batch
 * (xadd.h), so that requests arriving together share a round trip.
 *
 * A job of more than one entry is atomic when asked: its entries go inside
 * one MULTI/EXEC, so Redis stores all or none of them. When every entry of
 * a job is settled, its done callback runs on the publisher thread with
 * job->failed and job->error set; it must be quick (hand the result back to
 * the job's owner) and may free the job.
 *
 * Ownership: the job and the texts it points to belong to the submitter
 * and must stay valid until done is called. */
#ifndef CM_PUBQ_H
#define CM_PUBQ_H

#include <stddef.h>
#include <stdint.h>

struct cm_err;
struct cm_redis_url;
struct cm_pubq;

struct cm_pubq_job {
	/* Set by the submitter. */
	const char *text; /* the entries' data, entry i at off[i], len[i] */
	const size_t *off, *len;
	size_t n;
	int atomic; /* all or nothing (MULTI/EXEC) when n > 1 */
	void (*done)(struct cm_pubq_job *job);
	void *arg;
	/* Set by the publisher before done. */
	int failed;      /* some entry was not stored (none, if atomic) */
	char error[256]; /* why */
	/* Private. */
	size_t settled;
	struct cm_pubq_job *next;
};

struct cm_pubq_opts {
	const struct cm_redis_url *url;
	const char *key;
	int64_t retry_ms; /* how long an unreachable Redis is retried */
	int connect_ms, io_ms;
	size_t max_queued; /* entries waiting at most (0: 1,000,000) */
};

/* Starts the thread; NULL with err when it cannot. */
struct cm_pubq *cm_pubq_start(const struct cm_pubq_opts *o, struct cm_err *err);
/* Queues a job; -1 (nothing queued, done never called) when the queue is
 * full or stopping. */
int cm_pubq_submit(struct cm_pubq *q, struct cm_pubq_job *job);
/* True while the publisher counts Redis as down. */
int cm_pubq_down(struct cm_pubq *q);
/* Stops taking jobs, publishes (or fails) every job queued, joins the
 * thread and frees the queue. */
void cm_pubq_stop(struct cm_pubq *q);

#endif
