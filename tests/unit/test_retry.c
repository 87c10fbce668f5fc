/* Tests for retry.c: the monotonic clock and the one backoff schedule. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>
#include <cmocka.h>

#include "retry.h"

static void test_mono(void **state)
{
	int64_t a = cm_mono_ms(), b = cm_mono_ms();

	assert_true(a > 0);
	assert_true(b >= a);
}

/* The delays double from 50 ms, and the last one is cut to the budget. */
static void test_schedule(void **state)
{
	struct cm_backoff b;
	int64_t t0 = cm_mono_ms();

	cm_backoff_start(&b, 0);
	assert_int_equal(cm_backoff_left(&b), 0);
	assert_int_equal(cm_backoff_wait(&b, NULL), -1);
	assert_int_equal(b.attempts, 0);
	cm_backoff_start(&b, 160);
	assert_int_equal(cm_backoff_wait(&b, NULL), 0); /* 50 ms */
	assert_int_equal(cm_backoff_wait(&b, NULL), 0); /* 100 ms */
	assert_int_equal(cm_backoff_wait(&b, NULL), 0); /* the 10 ms left */
	assert_int_equal(cm_backoff_wait(&b, NULL), -1);
	assert_int_equal(b.attempts, 3);
	assert_true(cm_mono_ms() - t0 >= 160);
	assert_true(cm_mono_ms() - t0 < 2000);
}

/* A negative budget never runs out, and the delay stops growing at 1 s. */
static void test_forever(void **state)
{
	struct cm_backoff b;

	cm_backoff_start(&b, -1);
	assert_int_equal(cm_backoff_left(&b), INT64_MAX);
	b.delay_ms = 1;
	assert_int_equal(cm_backoff_wait(&b, NULL), 0);
	assert_int_equal(b.delay_ms, 2);
	b.delay_ms = 600;
	assert_int_equal(cm_backoff_wait(&b, NULL), 0);
	assert_int_equal(b.delay_ms, CM_BACKOFF_MAX_MS);
}

static volatile sig_atomic_t got;

static void on_alarm(int sig)
{
	(void)sig;
	got = 1;
}

/* With a mask, a signal blocked outside the wait cuts a 1 s sleep short. */
static void test_signal_ends_wait(void **state)
{
	struct sigaction sa;
	struct itimerval it;
	struct cm_backoff b;
	sigset_t block, open;
	int64_t t0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGALRM);
	sigprocmask(SIG_BLOCK, &block, &open);
	sigdelset(&open, SIGALRM);
	memset(&it, 0, sizeof(it));
	it.it_value.tv_usec = 100000;
	setitimer(ITIMER_REAL, &it, NULL);
	cm_backoff_start(&b, 10000);
	b.delay_ms = 1000;
	t0 = cm_mono_ms();
	assert_int_equal(cm_backoff_wait(&b, &open), 0);
	assert_true(got);
	assert_true(cm_mono_ms() - t0 < 900);
	sigprocmask(SIG_UNBLOCK, &block, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mono),
	    cmocka_unit_test(test_schedule),
	    cmocka_unit_test(test_forever),
	    cmocka_unit_test(test_signal_ends_wait),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
