/* Tests for workq.c: jobs run in order on the pool's threads, a full queue
 * refuses, stopping runs what is queued, and an unreachable database fails
 * fast instead of being tried for every job, and so does an unreachable
 * Redis. (Queries against a real
 * PostgreSQL are in tests/cm-httpd.bats.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "redisx.h"
#include "workq.h"

static atomic_int ran;
static int order[64];
static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;

static void job(struct cm_worker *w, void *arg)
{
	int i = atomic_fetch_add(&ran, 1);

	(void)w;
	if (i < 64)
		order[i] = (int)(intptr_t)arg;
}

/* Holds its thread until the gate opens. */
static void blocker(struct cm_worker *w, void *arg)
{
	(void)w;
	(void)arg;
	pthread_mutex_lock(&gate);
	pthread_mutex_unlock(&gate);
}

static void test_order_and_stop(void **state)
{
	struct cm_workq_opts o = {1, 64, "", 0, 0, NULL};
	struct cm_err err;
	struct cm_workq *q = cm_workq_start(&o, &err);
	int i;

	assert_non_null(q);
	atomic_store(&ran, 0);
	pthread_mutex_lock(&gate);
	assert_int_equal(cm_workq_submit(q, blocker, NULL), 0);
	for (i = 0; i < 40; i++)
		assert_int_equal(cm_workq_submit(q, job, (void *)(intptr_t)i), 0);
	pthread_mutex_unlock(&gate);
	/* stopping runs everything queued, in order */
	cm_workq_stop(q);
	assert_int_equal(atomic_load(&ran), 40);
	for (i = 0; i < 40; i++)
		assert_int_equal(order[i], i);
}

static void test_full(void **state)
{
	struct cm_workq_opts o = {1, 4, "", 0, 0, NULL};
	struct cm_err err;
	struct cm_workq *q = cm_workq_start(&o, &err);
	int i, accepted = 0;

	assert_non_null(q);
	atomic_store(&ran, 0);
	pthread_mutex_lock(&gate);
	assert_int_equal(cm_workq_submit(q, blocker, NULL), 0);
	/* wait for the blocker to be taken, so the queue is empty */
	while (cm_workq_queued(q) > 0)
		usleep(1000);
	for (i = 0; i < 10; i++)
		accepted += cm_workq_submit(q, job, NULL) == 0;
	assert_int_equal(accepted, 4);
	pthread_mutex_unlock(&gate);
	cm_workq_stop(q);
	assert_int_equal(atomic_load(&ran), 4);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void db_job(struct cm_worker *w, void *arg)
{
	struct cm_err err;
	int64_t *took = arg, t0;

	t0 = now_ms();
	assert_null(cm_worker_db(w, &err));
	took[0] = now_ms() - t0;
	t0 = now_ms();
	/* within the second, no new attempt */
	assert_null(cm_worker_db(w, &err));
	took[1] = now_ms() - t0;
	assert_non_null(strstr(err.msg, "unreachable"));
}

static void redis_job(struct cm_worker *w, void *arg)
{
	struct cm_err err;
	int64_t *took = arg, t0;

	t0 = now_ms();
	assert_null(cm_worker_redis(w, &err));
	took[0] = now_ms() - t0;
	t0 = now_ms();
	assert_null(cm_worker_redis(w, &err));
	took[1] = now_ms() - t0;
	assert_non_null(strstr(err.msg, "unreachable"));
}

static void test_unreachable_db(void **state)
{
	struct cm_redis_url url;
	struct cm_workq_opts o = {1, 4, "host=/nonexistent-cm-dir port=1 dbname=x", 2, 1000, &url};
	struct cm_err err;
	struct cm_workq *q;
	int64_t took[4] = {-1, -1, -1, -1};

	assert_int_equal(cm_redis_url_parse("redis://127.0.0.1:1", &url, &err), 0);
	q = cm_workq_start(&o, &err);
	assert_non_null(q);
	assert_int_equal(cm_workq_submit(q, db_job, took), 0);
	assert_int_equal(cm_workq_submit(q, redis_job, took + 2), 0);
	cm_workq_stop(q);
	assert_true(took[0] >= 0 && took[0] < 2000);
	assert_true(took[1] >= 0 && took[1] < 50);
	assert_true(took[2] >= 0 && took[2] < 1500);
	assert_true(took[3] >= 0 && took[3] < 50);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order_and_stop),
	    cmocka_unit_test(test_full),
	    cmocka_unit_test(test_unreachable_db),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
