/* health.h - GET /health's checks of Redis (PING) and PostgreSQL (SELECT 1),
 * each bounded by a short timeout, on a thread of their own, the result
 * kept for max_age_ms: a request finds a fresh result and answers at once,
 * or waits (suspended) for the next check, which one request starts for
 * all that wait. Nothing is checked while nobody asks. */
#ifndef CM_HEALTH_H
#define CM_HEALTH_H

#include <stddef.h>
#include <stdint.h>

struct cm_err;
struct cm_log;
struct cm_redis_url;
struct cm_health;

/* Each check's verdict: "ok", "unreachable" (cannot connect), "timeout" or
 * "error" (the server answered with an error). */
struct cm_health_result {
	int redis_ok, pg_ok;
	char redis[16], pg[16];
	int64_t at_ms; /* when checked (monotonic); 0: never */
};

/* Someone waiting for the next result; embedded in the waiter's memory. */
struct cm_health_waiter {
	void (*cb)(struct cm_health_waiter *w, const struct cm_health_result *res);
	void *arg;
	struct cm_health_waiter *next;
};

struct cm_health_opts {
	const char *conninfo;
	const struct cm_redis_url *redis;
	int timeout_ms;           /* per check */
	int64_t max_age_ms;       /* how long a result is reused */
	const struct cm_log *log; /* a line when a check changes verdict */
};

struct cm_health *cm_health_start(const struct cm_health_opts *o, struct cm_err *err);
/* 1 with res filled when the last result is fresh, 0 otherwise. */
int cm_health_get(struct cm_health *h, struct cm_health_result *res);
/* Calls w->cb with the next result, on the checker's thread, or at once
 * when a fresh result came in since cm_health_get. */
void cm_health_wait(struct cm_health *h, struct cm_health_waiter *w);
/* Answers the waiters (with the last result), stops the thread, frees. */
void cm_health_stop(struct cm_health *h);

#endif
