/* retry.c - backoff on the monotonic clock. */
#include "retry.h"

#include <poll.h>
#include <time.h>

/* Time that only moves forward, for deadlines and intervals. */
int64_t cm_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The same in milliseconds. */
int64_t cm_mono_ms(void)
{
	return cm_mono_ns() / 1000000;
}

/* A fresh schedule: the first retry comes quickly, in case the outage was a
 * blip. */
void cm_backoff_start(struct cm_backoff *b, int64_t budget_ms)
{
	b->deadline_ms = budget_ms < 0 ? INT64_MAX : cm_mono_ms() + budget_ms;
	b->delay_ms = CM_BACKOFF_FIRST_MS;
	b->attempts = 0;
}

/* What remains of the budget. */
int64_t cm_backoff_left(const struct cm_backoff *b)
{
	int64_t now;

	if (b->deadline_ms == INT64_MAX)
		return INT64_MAX;
	now = cm_mono_ms();
	return now >= b->deadline_ms ? 0 : b->deadline_ms - now;
}

/* Sleeps the next delay (never past the deadline), so that a server that
 * comes back is found quickly and one that does not is not hammered. */
int cm_backoff_wait(struct cm_backoff *b, const sigset_t *mask)
{
	int64_t left = cm_backoff_left(b), d = b->delay_ms;
	struct timespec ts;

	if (left == 0)
		return -1;
	if (d > left)
		d = left;
	ts.tv_sec = d / 1000;
	ts.tv_nsec = (d % 1000) * 1000000;
	if (mask)
		ppoll(NULL, 0, &ts, mask);
	else
		nanosleep(&ts, NULL); /* EINTR: the caller looks at its stop flag */
	b->delay_ms = b->delay_ms * 2 > CM_BACKOFF_MAX_MS ? CM_BACKOFF_MAX_MS : b->delay_ms * 2;
	b->attempts++;
	return 0;
}
