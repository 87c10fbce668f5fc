/* workq.h - a few threads that run blocking work for the HTTP pool threads:
 * database queries, password hashing, the Redis reads of a metrics scrape.
 * Each thread keeps its own PostgreSQL and Redis connections, made on first
 * use and made again after they break (at most once a second while the
 * server is unreachable, so that jobs fail fast instead of each waiting out
 * a connect timeout).
 *
 * Jobs run in the order queued; the queue is bounded, and a full queue
 * refuses jobs (the caller answers 503), so that a flood cannot pile up
 * work without end. Ownership: a job's argument belongs to the submitter;
 * the job function is responsible for it once it runs. */
#ifndef CM_WORKQ_H
#define CM_WORKQ_H

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

struct cm_err;
struct cm_redis_url;
struct cm_workq;

struct cm_worker {
	struct cm_workq *q;
	unsigned id;
	PGconn *pg;
	int64_t pg_next_try; /* monotonic ms before which no reconnection is tried */
	redisContext *redis;
	int64_t redis_next_try;
	void *user; /* free for the jobs: per-thread state */
};

typedef void cm_work_fn(struct cm_worker *w, void *arg);

struct cm_workq_opts {
	unsigned threads;
	size_t max_queued;                /* jobs waiting at most */
	const char *conninfo;             /* for cm_worker_db */
	int connect_timeout_s;            /* 0: 3 */
	int statement_timeout_ms;         /* 0: none */
	const struct cm_redis_url *redis; /* for cm_worker_redis (copied); may be NULL */
};

/* Starts the threads; NULL with err when it cannot. */
struct cm_workq *cm_workq_start(const struct cm_workq_opts *o, struct cm_err *err);
/* Queues fn(worker, arg); -1 (nothing queued) when the queue is full or the
 * pool is stopping. */
int cm_workq_submit(struct cm_workq *q, cm_work_fn *fn, void *arg);
/* Jobs waiting. */
size_t cm_workq_queued(struct cm_workq *q);
/* The thread's database connection, connected or reconnected as needed;
 * NULL with err when the database cannot be reached. */
PGconn *cm_worker_db(struct cm_worker *w, struct cm_err *err);
/* Drops the thread's connection if a failed command left it broken. */
void cm_worker_db_check(struct cm_worker *w);
/* The thread's Redis connection (1 s to connect, 2 s per reply), made as
 * needed; NULL with err when Redis cannot be reached. */
redisContext *cm_worker_redis(struct cm_worker *w, struct cm_err *err);
/* Drops the thread's Redis connection if a command left it broken. */
void cm_worker_redis_check(struct cm_worker *w);
/* Runs every job still queued, then stops the threads and frees the pool. */
void cm_workq_stop(struct cm_workq *q);

#endif
