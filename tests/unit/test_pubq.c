/* Tests for pubq.c against a real redis-server: many producer threads, one
 * publisher; every job reported once; atomic jobs all or nothing; a full
 * queue refuses; Redis down fails jobs; stopping publishes what is queued. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "pubq.h"
#include "redis_server.h"
#include "redisx.h"

static struct test_redis srv;
static struct cm_redis_url url;

static atomic_int ndone, nfailed;

static void on_done(struct cm_pubq_job *j)
{
	if (j->failed)
		atomic_fetch_add(&nfailed, 1);
	atomic_fetch_add(&ndone, 1);
}

static struct cm_pubq *start(const char *key, int64_t budget, size_t max_queued)
{
	struct cm_pubq_opts o = {&url, key, budget, 500, 2000, max_queued};
	struct cm_err err;
	struct cm_pubq *q = cm_pubq_start(&o, &err);

	assert_non_null(q);
	atomic_store(&ndone, 0);
	atomic_store(&nfailed, 0);
	return q;
}

/* Waits until n jobs are done (or 10 s). */
static void wait_done(int n)
{
	int i;

	for (i = 0; i < 1000 && atomic_load(&ndone) < n; i++)
		test_sleep_ms(10);
	assert_int_equal(atomic_load(&ndone), n);
}

#define PRODUCERS 4
#define PER       2000

struct producer {
	struct cm_pubq *q;
	struct cm_pubq_job jobs[PER];
	char text[PER][32];
	size_t off[PER], len[PER];
};
static struct producer prods[PRODUCERS];

static void *produce(void *arg)
{
	struct producer *p = arg;
	size_t i;

	for (i = 0; i < PER; i++) {
		struct cm_pubq_job *j = &p->jobs[i];

		snprintf(p->text[i], sizeof(p->text[i]), "{\"p\":%d,\"i\":%zu}", (int)(p - prods),
		         i);
		p->off[i] = 0;
		p->len[i] = strlen(p->text[i]);
		memset(j, 0, sizeof(*j));
		j->text = p->text[i];
		j->off = &p->off[i];
		j->len = &p->len[i];
		j->n = 1;
		j->done = on_done;
		while (cm_pubq_submit(p->q, j) < 0)
			test_sleep_ms(1);
	}
	return NULL;
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

static void test_many_producers(void **state)
{
	struct cm_pubq *q = start("q:many", 1000, 0);
	pthread_t th[PRODUCERS];
	int i;

	for (i = 0; i < PRODUCERS; i++) {
		prods[i].q = q;
		pthread_create(&th[i], NULL, produce, &prods[i]);
	}
	for (i = 0; i < PRODUCERS; i++)
		pthread_join(th[i], NULL);
	wait_done(PRODUCERS * PER);
	assert_int_equal(atomic_load(&nfailed), 0);
	assert_int_equal(test_redis_int(&srv, "XLEN %s", "q:many"), PRODUCERS * PER);
	cm_pubq_stop(q);
}

/* A job of n entries over one text. */
struct bigjob {
	struct cm_pubq_job j;
	char text[4096];
	size_t off[100], len[100];
};

static void make_big(struct bigjob *b, size_t n, int atomic)
{
	size_t i, pos = 0;

	memset(b, 0, sizeof(*b));
	for (i = 0; i < n; i++) {
		b->off[i] = pos;
		pos += (size_t)snprintf(b->text + pos, sizeof(b->text) - pos, "{\"e\":%zu}", i);
		b->len[i] = pos - b->off[i];
	}
	b->j.text = b->text;
	b->j.off = b->off;
	b->j.len = b->len;
	b->j.n = n;
	b->j.atomic = atomic;
	b->j.done = on_done;
}

static void test_atomic_job(void **state)
{
	struct cm_pubq *q = start("q:atomic", 300, 0);
	static struct bigjob a, b;
	redisReply *r;

	make_big(&a, 100, 1);
	assert_int_equal(cm_pubq_submit(q, &a.j), 0);
	wait_done(1);
	assert_false(a.j.failed);
	assert_int_equal(test_redis_int(&srv, "XLEN %s", "q:atomic"), 100);
	/* refused (OOM) for longer than the budget: none of it stored */
	r = test_redis_cmd(&srv, "CONFIG SET maxmemory 1");
	freeReplyObject(r);
	make_big(&b, 50, 1);
	assert_int_equal(cm_pubq_submit(q, &b.j), 0);
	wait_done(2);
	assert_true(b.j.failed);
	assert_non_null(strstr(b.j.error, "OOM"));
	r = test_redis_cmd(&srv, "CONFIG SET maxmemory 0");
	freeReplyObject(r);
	assert_int_equal(test_redis_int(&srv, "XLEN %s", "q:atomic"), 100);
	cm_pubq_stop(q);
}

static void test_full_queue(void **state)
{
	struct cm_pubq *q = start("q:full", 300, 10);
	static struct bigjob a;

	make_big(&a, 11, 0);
	assert_int_equal(cm_pubq_submit(q, &a.j), -1);
	a.j.n = 0;
	assert_int_equal(cm_pubq_submit(q, &a.j), -1);
	make_big(&a, 10, 0);
	assert_int_equal(cm_pubq_submit(q, &a.j), 0);
	wait_done(1);
	assert_false(a.j.failed);
	cm_pubq_stop(q);
}

static void test_down(void **state)
{
	struct cm_pubq *q = start("q:down", 200, 0);
	static struct bigjob a, b;

	test_redis_stop(&srv);
	make_big(&a, 3, 1);
	assert_int_equal(cm_pubq_submit(q, &a.j), 0);
	wait_done(1);
	assert_true(a.j.failed);
	assert_non_null(strstr(a.j.error, srv.url));
	assert_true(cm_pubq_down(q));
	assert_int_equal(test_redis_launch(&srv), 0);
	test_sleep_ms(300);
	make_big(&b, 3, 1);
	assert_int_equal(cm_pubq_submit(q, &b.j), 0);
	wait_done(2);
	assert_false(b.j.failed);
	assert_false(cm_pubq_down(q));
	cm_pubq_stop(q);
}

static void test_stop_publishes_queued(void **state)
{
	struct cm_pubq *q = start("q:stop", 1000, 0);
	static struct bigjob jobs[20];
	int i;

	for (i = 0; i < 20; i++) {
		make_big(&jobs[i], 5, i % 2);
		assert_int_equal(cm_pubq_submit(q, &jobs[i].j), 0);
	}
	cm_pubq_stop(q);
	assert_int_equal(atomic_load(&ndone), 20);
	assert_int_equal(atomic_load(&nfailed), 0);
	assert_int_equal(test_redis_int(&srv, "XLEN %s", "q:stop"), 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_many_producers),
	    cmocka_unit_test(test_atomic_job),
	    cmocka_unit_test(test_full_queue),
	    cmocka_unit_test(test_down),
	    cmocka_unit_test(test_stop_publishes_queued),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
