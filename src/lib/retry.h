/* retry.h - the one backoff every reconnect loop uses, on the monotonic
 * clock (a wall-clock step must neither cut a retry budget short nor stretch
 * it), and monotonic time for timeouts such as a batch's flush deadline. */
#ifndef CM_RETRY_H
#define CM_RETRY_H

#include <signal.h>
#include <stdint.h>

/* Milliseconds on a clock that never jumps (CLOCK_MONOTONIC); only
 * differences mean anything. */
int64_t cm_mono_ms(void);
/* The same in nanoseconds, for durations (request timings). */
int64_t cm_mono_ns(void);

/* Exponential backoff between attempts, 50 ms doubling up to 1 s, within a
 * time budget counted from cm_backoff_start. */
struct cm_backoff {
	int64_t deadline_ms; /* on cm_mono_ms; INT64_MAX: no budget (forever) */
	int64_t delay_ms;    /* the next sleep */
	unsigned attempts;   /* waits so far */
};

#define CM_BACKOFF_FIRST_MS 50
#define CM_BACKOFF_MAX_MS   1000

/* Starts a schedule; budget_ms < 0 retries forever. */
void cm_backoff_start(struct cm_backoff *b, int64_t budget_ms);
/* Milliseconds left of the budget (0 once spent; INT64_MAX for forever). */
int64_t cm_backoff_left(const struct cm_backoff *b);
/* Sleeps the next delay, never past the deadline, and returns 0; returns -1
 * without sleeping once the budget is spent. With mask not NULL the sleep
 * runs with that signal mask (ppoll), so that a signal blocked elsewhere
 * ends it early; the caller then looks at its own stop flag. */
int cm_backoff_wait(struct cm_backoff *b, const sigset_t *mask);

#endif
