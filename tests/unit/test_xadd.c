/* Tests for xadd.c against a real redis-server that the test starts:
 * pipelined batches, a report per entry in order, MULTI/EXEC groups that
 * are stored whole or not at all, transient refusals retried within the
 * budget, permanent ones given up at once, reconnection after a restart,
 * and the fail-fast mode while Redis is down. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "redis_server.h"
#include "redisx.h"
#include "xadd.h"

#define MAXREP 20000

static struct test_redis srv;
static struct cm_redis_url url;

/* What the done callback saw, in order. */
static struct rep {
	uint64_t tag;
	char id[48];
	char error[256];
} reps[MAXREP];
static size_t nreps;

static void on_done(void *ctx, uint64_t tag, const char *id, size_t idlen, const char *error)
{
	struct rep *r;

	(void)ctx;
	assert_true(nreps < MAXREP);
	r = &reps[nreps++];
	r->tag = tag;
	r->id[0] = r->error[0] = 0;
	if (error)
		snprintf(r->error, sizeof(r->error), "%s", error);
	else
		snprintf(r->id, sizeof(r->id), "%.*s", (int)idlen, id);
}

/* What the note callback saw: how many of each, and the last message. */
static int nretrying, nresumed;
static char note_msg[256];

static void on_note(void *ctx, int what, const char *msg, int64_t left_ms)
{
	(void)ctx;
	if (what == CM_XADD_RETRYING) {
		nretrying++;
		assert_true(left_ms > 0);
		snprintf(note_msg, sizeof(note_msg), "%s", msg);
	} else {
		assert_int_equal(what, CM_XADD_RESUMED);
		nresumed++;
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A publisher on stream key with budget ms. */
static struct cm_xadd *publisher(const char *key, int64_t budget)
{
	struct cm_xadd_opts o = {&url, key, budget, 500, 2000, on_note};
	struct cm_xadd *x = cm_xadd_new(&o, on_done, NULL);

	assert_non_null(x);
	nreps = 0;
	nretrying = nresumed = 0;
	return x;
}

static int setup(void **state)
{
	struct cm_err err;

	if (test_redis_start(&srv) < 0)
		return -1;
	return cm_redis_url_parse(srv.url, &url, &err);
}

static int teardown(void **state)
{
	test_redis_cleanup(&srv);
	return 0;
}

/* Brings the server back when a test has stopped it. */
static int ensure_up(void **state)
{
	redisReply *r;

	if (srv.pid <= 0 && test_redis_launch(&srv) < 0)
		return -1;
	r = test_redis_cmd(&srv, "CONFIG SET maxmemory 0");
	if (r)
		freeReplyObject(r);
	return 0;
}

static void test_batches_in_order(void **state)
{
	struct cm_xadd *x = publisher("s:batches", 1000);
	struct cm_err err;
	char data[64];
	size_t i;

	for (i = 0; i < 5000; i++) {
		snprintf(data, sizeof(data), "{\"n\":%zu}", i);
		assert_int_equal(cm_xadd_add(x, data, strlen(data), 1000 + i), 0);
		if (i % 100 == 99) {
			assert_int_equal(cm_xadd_pump(x, 1, &err), 0);
			/* two batches in flight at most: the newest stays out */
			assert_true(cm_xadd_inflight(x) <= 1);
		}
	}
	assert_true(cm_xadd_unconfirmed(x) > 0 || nreps == 5000);
	assert_int_equal(cm_xadd_flush(x, &err), 0);
	assert_int_equal(cm_xadd_unconfirmed(x), 0);
	assert_int_equal(cm_xadd_inflight(x), 0);
	assert_int_equal(nreps, 5000);
	for (i = 0; i < nreps; i++) {
		assert_int_equal(reps[i].tag, 1000 + i);
		assert_string_equal(reps[i].error, "");
		assert_true(strchr(reps[i].id, '-') != NULL);
	}
	assert_int_equal(test_redis_int(&srv, "XLEN %s", "s:batches"), 5000);
	/* The ids are the stream's, in order. */
	{
		redisReply *r = test_redis_cmd(&srv, "XRANGE s:batches - + COUNT 2");

		assert_non_null(r);
		assert_int_equal(r->elements, 2);
		assert_string_equal(r->element[0]->element[0]->str, reps[0].id);
		assert_string_equal(r->element[1]->element[0]->str, reps[1].id);
		assert_string_equal(r->element[1]->element[1]->element[0]->str, "data");
		assert_string_equal(r->element[1]->element[1]->element[1]->str, "{\"n\":1}");
		freeReplyObject(r);
	}
	cm_xadd_free(x);
}

static void test_groups(void **state)
{
	struct cm_xadd *x = publisher("s:groups", 1000);
	struct cm_err err;

	assert_int_equal(cm_xadd_add(x, "{\"a\":0}", 7, 1), 0);
	assert_int_equal(cm_xadd_begin(x), 0);
	assert_int_equal(cm_xadd_begin(x), -1); /* no nesting */
	assert_int_equal(cm_xadd_add(x, "{\"a\":1}", 7, 2), 0);
	assert_int_equal(cm_xadd_add(x, "{\"a\":2}", 7, 3), 0);
	/* an open group is not sent */
	assert_int_equal(cm_xadd_flush(x, &err), 0);
	assert_int_equal(nreps, 1);
	assert_int_equal(cm_xadd_filling(x), 2);
	assert_int_equal(cm_xadd_commit(x), 0);
	assert_int_equal(cm_xadd_add(x, "{\"a\":3}", 7, 4), 0);
	/* an empty group sends nothing */
	assert_int_equal(cm_xadd_begin(x), 0);
	assert_int_equal(cm_xadd_commit(x), 0);
	/* a rolled back group is neither sent nor reported */
	assert_int_equal(cm_xadd_begin(x), 0);
	assert_int_equal(cm_xadd_add(x, "{\"a\":9}", 7, 9), 0);
	cm_xadd_rollback(x);
	assert_int_equal(cm_xadd_flush(x, &err), 0);
	assert_int_equal(nreps, 4);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(reps[i].tag, i + 1);
		assert_string_equal(reps[i].error, "");
	}
	assert_int_equal(test_redis_int(&srv, "XLEN %s", "s:groups"), 4);
	cm_xadd_free(x);
}

static void test_refused_for_good(void **state)
{
	struct cm_xadd *x = publisher("s:wrongtype", 5000);
	struct cm_err err;
	redisReply *r = test_redis_cmd(&srv, "SET s:wrongtype x");
	int64_t t0;

	freeReplyObject(r);
	assert_int_equal(cm_xadd_add(x, "{}", 2, 1), 0);
	assert_int_equal(cm_xadd_begin(x), 0);
	assert_int_equal(cm_xadd_add(x, "{}", 2, 2), 0);
	assert_int_equal(cm_xadd_add(x, "{}", 2, 3), 0);
	assert_int_equal(cm_xadd_commit(x), 0);
	t0 = now_ms();
	assert_int_equal(cm_xadd_flush(x, &err), -1);
	/* given up at once, not after the budget */
	assert_true(now_ms() - t0 < 1000);
	assert_non_null(strstr(err.msg, "WRONGTYPE"));
	assert_int_equal(err.code, CM_EXIT_REFUSED);
	assert_int_equal(nretrying, 0);
	assert_int_equal(nreps, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(reps[i].tag, i + 1);
		assert_non_null(strstr(reps[i].error, "WRONGTYPE"));
	}
	assert_int_equal(cm_xadd_unconfirmed(x), 0);
	/* Redis is not down: the next entry to a good key goes through. */
	assert_false(cm_xadd_down(x));
	cm_xadd_free(x);
}

/* Lifts maxmemory after a pause, from another thread. */
static void *lift_maxmemory(void *arg)
{
	redisReply *r;

	test_sleep_ms(400);
	r = test_redis_cmd(&srv, "CONFIG SET maxmemory 0");
	if (r)
		freeReplyObject(r);
	return arg;
}

static void test_transient_retried(void **state)
{
	struct cm_xadd *x = publisher("s:oom", 5000);
	struct cm_err err;
	redisReply *r = test_redis_cmd(&srv, "CONFIG SET maxmemory 1");
	pthread_t th;

	freeReplyObject(r);
	assert_int_equal(cm_xadd_add(x, "{\"single\":1}", 12, 1), 0);
	assert_int_equal(cm_xadd_begin(x), 0);
	assert_int_equal(cm_xadd_add(x, "{\"g\":1}", 7, 2), 0);
	assert_int_equal(cm_xadd_add(x, "{\"g\":2}", 7, 3), 0);
	assert_int_equal(cm_xadd_commit(x), 0);
	pthread_create(&th, NULL, lift_maxmemory, NULL);
	assert_int_equal(cm_xadd_flush(x, &err), 0);
	pthread_join(th, NULL);
	assert_int_equal(nreps, 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(reps[i].error, "");
	/* each stored exactly once: OOM refusals store nothing */
	assert_int_equal(test_redis_int(&srv, "XLEN %s", "s:oom"), 3);
	cm_xadd_free(x);
}

static void test_transient_budget(void **state)
{
	struct cm_xadd *x = publisher("s:oom2", 300);
	struct cm_err err;
	redisReply *r = test_redis_cmd(&srv, "CONFIG SET maxmemory 1");
	int64_t t0;

	freeReplyObject(r);
	assert_int_equal(cm_xadd_begin(x), 0);
	assert_int_equal(cm_xadd_add(x, "{\"g\":1}", 7, 1), 0);
	assert_int_equal(cm_xadd_add(x, "{\"g\":2}", 7, 2), 0);
	assert_int_equal(cm_xadd_commit(x), 0);
	t0 = now_ms();
	assert_int_equal(cm_xadd_flush(x, &err), -1);
	assert_true(now_ms() - t0 >= 290);
	assert_non_null(strstr(err.msg, "OOM"));
	assert_int_equal(err.code, CM_EXIT_UNREACHABLE);
	assert_int_equal(nretrying, 1);
	assert_non_null(strstr(note_msg, "OOM"));
	assert_int_equal(nresumed, 0);
	assert_int_equal(nreps, 2);
	assert_non_null(strstr(reps[0].error, "OOM"));
	assert_non_null(strstr(reps[1].error, "OOM"));
	r = test_redis_cmd(&srv, "CONFIG SET maxmemory 0");
	freeReplyObject(r);
	/* the group is all or nothing: nothing */
	assert_int_equal(test_redis_int(&srv, "EXISTS %s", "s:oom2"), 0);
	cm_xadd_free(x);
}

/* Restarts the server after a pause, from another thread. */
static void *restart_later(void *arg)
{
	test_sleep_ms(300);
	test_redis_launch(&srv);
	return arg;
}

static void test_reconnect_after_restart(void **state)
{
	struct cm_xadd *x = publisher("s:restart", 10000);
	struct cm_err err;
	pthread_t th;
	char data[32];
	size_t i;

	assert_int_equal(cm_xadd_add(x, "{\"before\":1}", 12, 1), 0);
	assert_int_equal(cm_xadd_flush(x, &err), 0);
	test_redis_stop(&srv);
	pthread_create(&th, NULL, restart_later, NULL);
	for (i = 0; i < 300; i++) {
		snprintf(data, sizeof(data), "{\"after\":%zu}", i);
		assert_int_equal(cm_xadd_add(x, data, strlen(data), 2 + i), 0);
		if (i % 50 == 49)
			assert_int_equal(cm_xadd_pump(x, 1, &err), 0);
	}
	assert_int_equal(cm_xadd_flush(x, &err), 0);
	pthread_join(th, NULL);
	/* said once that it waits, and once that it goes on */
	assert_int_equal(nretrying, 1);
	assert_int_equal(nresumed, 1);
	assert_int_equal(nreps, 301);
	for (i = 0; i < nreps; i++) {
		assert_int_equal(reps[i].tag, i + 1);
		assert_string_equal(reps[i].error, "");
	}
	assert_int_equal(test_redis_int(&srv, "XLEN %s", "s:restart"), 301);
	cm_xadd_free(x);
}

static void test_down_fails_fast(void **state)
{
	struct cm_xadd *x = publisher("s:down", 400);
	struct cm_err err;
	int64_t t0;

	test_redis_stop(&srv);
	assert_int_equal(cm_xadd_add(x, "{}", 2, 1), 0);
	t0 = now_ms();
	assert_int_equal(cm_xadd_flush(x, &err), -1);
	assert_true(now_ms() - t0 >= 390);
	assert_non_null(strstr(err.msg, srv.url));
	assert_int_equal(err.code, CM_EXIT_UNREACHABLE);
	assert_int_equal(nreps, 1);
	assert_true(reps[0].error[0] != 0);
	assert_true(cm_xadd_down(x));
	/* while down, the next batch is given up at once */
	assert_int_equal(cm_xadd_add(x, "{}", 2, 2), 0);
	t0 = now_ms();
	assert_int_equal(cm_xadd_flush(x, &err), -1);
	assert_true(now_ms() - t0 < 200);
	assert_int_equal(err.code, CM_EXIT_UNREACHABLE);
	assert_int_equal(nreps, 2);
	assert_true(reps[1].error[0] != 0);
	/* back up: the next attempt (after 250 ms) reconnects */
	assert_int_equal(test_redis_launch(&srv), 0);
	test_sleep_ms(300);
	assert_int_equal(cm_xadd_add(x, "{}", 2, 3), 0);
	assert_int_equal(cm_xadd_flush(x, &err), 0);
	assert_false(cm_xadd_down(x));
	assert_int_equal(nreps, 3);
	assert_string_equal(reps[2].error, "");
	assert_int_equal(test_redis_int(&srv, "XLEN %s", "s:down"), 1);
	cm_xadd_free(x);
}

static void test_wrong_password_at_once(void **state)
{
	struct cm_redis_url good = url;
	struct cm_xadd *x;
	struct cm_err err;
	char u[256];
	redisReply *r = test_redis_cmd(&srv, "ACL SETUSER xt on >right ~* &* +@all");
	int64_t t0;

	freeReplyObject(r);
	snprintf(u, sizeof(u), "redis://xt:wrong@%s", strstr(srv.url, "//") + 2);
	assert_int_equal(cm_redis_url_parse(u, &url, &err), 0);
	x = publisher("s:auth", 10000);
	assert_int_equal(cm_xadd_add(x, "{}", 2, 1), 0);
	t0 = now_ms();
	assert_int_equal(cm_xadd_flush(x, &err), -1);
	/* refused for good: given up at once, not after the 10 s budget */
	assert_true(now_ms() - t0 < 2000);
	assert_int_equal(err.code, CM_EXIT_REFUSED);
	assert_non_null(strstr(err.msg, "WRONGPASS"));
	assert_null(strstr(err.msg, "wrong@"));
	assert_int_equal(nretrying, 0);
	assert_int_equal(nreps, 1);
	assert_non_null(strstr(reps[0].error, "WRONGPASS"));
	cm_xadd_free(x);
	url = good;
	r = test_redis_cmd(&srv, "ACL DELUSER xt");
	freeReplyObject(r);
}

static void test_nothing_to_do(void **state)
{
	struct cm_xadd *x = publisher("s:none", 100);
	struct cm_err err;

	/* no connection is needed for nothing */
	assert_int_equal(cm_xadd_flush(x, &err), 0);
	assert_int_equal(cm_xadd_pump(x, 1, &err), 0);
	assert_int_equal(nreps, 0);
	cm_xadd_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_batches_in_order, ensure_up),
	    cmocka_unit_test_setup(test_groups, ensure_up),
	    cmocka_unit_test_setup(test_refused_for_good, ensure_up),
	    cmocka_unit_test_setup(test_transient_retried, ensure_up),
	    cmocka_unit_test_setup(test_transient_budget, ensure_up),
	    cmocka_unit_test_setup(test_reconnect_after_restart, ensure_up),
	    cmocka_unit_test_setup(test_down_fails_fast, ensure_up),
	    cmocka_unit_test_setup(test_wrong_password_at_once, ensure_up),
	    cmocka_unit_test_setup(test_nothing_to_do, ensure_up),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
