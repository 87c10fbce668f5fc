/* Tests for wmetrics.c against a real redis-server: tests/run.sh starts
 * one and sets CM_TEST_REDIS_URL. The writer's hash fields, ZADD and
 * PEXPIRE, failures kept and retried, the flush thread (and that it takes
 * no signals), and the reader's rendering, TTL and robustness to odd data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "prom.h"
#include "redisx.h"
#include "timefmt.h"
#include "wmetrics.h"
#include "testenv.h"

static const char *url;

/* A connection to the test server with an empty database. */
static redisContext *fresh(void)
{
	struct cm_err err;
	redisContext *c = cm_redis_connect(url, &err);
	redisReply *r;

	if (!c)
		fail_msg("%s", err.msg);
	r = redisCommand(c, "FLUSHDB");
	assert_non_null(r);
	freeReplyObject(r);
	return c;
}

/* HGET key field as a number, -1 when absent. */
static long long hget(redisContext *c, const char *key, const char *field)
{
	redisReply *r = redisCommand(c, "HGET %s %s", key, field);
	long long v = -1;

	assert_non_null(r);
	if (r->type == REDIS_REPLY_STRING)
		v = strtoll(r->str, NULL, 10);
	freeReplyObject(r);
	return v;
}

/* Runs a command and checks that it did not fail. */
static void cmd(redisContext *c, const char *fmt, ...)
{
	va_list ap;
	redisReply *r;

	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
	freeReplyObject(r);
}

static struct cm_wmetrics *writer(const char *stream, const char *consumer, int64_t interval)
{
	struct cm_wmetrics_opts o = {url, stream, consumer, interval, 0, 0};
	struct cm_err err;
	struct cm_wmetrics *m = cm_wmetrics_new(&o, &err);

	if (!m)
		fail_msg("%s", err.msg);
	return m;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static void test_new_checks(void **state)
{
	struct cm_wmetrics_opts o = {url, "s", NULL, -1, 0, 0};
	struct cm_err err;
	char longname[CM_WMETRICS_CONSUMER_MAX + 2];

	assert_null(cm_wmetrics_new(&o, &err));
	assert_non_null(strstr(err.msg, "no consumer name"));
	o.consumer = "";
	assert_null(cm_wmetrics_new(&o, &err));
	memset(longname, 'w', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	o.consumer = longname;
	assert_null(cm_wmetrics_new(&o, &err));
	assert_non_null(strstr(err.msg, "consumer name"));
	o.consumer = "w\xff";
	assert_null(cm_wmetrics_new(&o, &err));
	o.consumer = "w1";
	o.redis_url = "http://x";
	assert_null(cm_wmetrics_new(&o, &err));
	o.redis_url = url;
	o.stream = "";
	assert_null(cm_wmetrics_new(&o, &err));
	/* NULL is harmless everywhere. */
	cm_wmetrics_add(NULL, CM_WM_CONSUMED, 1);
	cm_wmetrics_campaign(NULL, 1, 1);
	cm_wmetrics_latency(NULL, 1);
	assert_int_equal(cm_wmetrics_flush(NULL, &err), 0);
	cm_wmetrics_free(NULL);
}

static void test_flush_fields(void **state)
{
	redisContext *c = fresh();
	struct cm_wmetrics *m = writer("t:s", "w 1", -1);
	struct cm_wmetrics_stats st;
	struct cm_stream_id id;
	struct cm_err err;
	redisReply *r;
	int64_t before = cm_time_now();

	cm_wmetrics_add(m, CM_WM_CONSUMED, 10);
	cm_wmetrics_add(m, CM_WM_MATCHED, 4);
	cm_wmetrics_add(m, CM_WM_MATCHES, 6);
	cm_wmetrics_add(m, CM_WM_STORED, 9);
	cm_wmetrics_add(m, CM_WM_ACKED, 9);
	cm_wmetrics_add(m, CM_WM_DEAD, 1);
	cm_wmetrics_add(m, CM_WM_ERRORS, 2);
	cm_wmetrics_add(m, CM_WM_NCOUNTERS, 5); /* not a counter: ignored */
	cm_wmetrics_campaign(m, 7, 4);
	cm_wmetrics_campaign(m, 9, 2);
	cm_wmetrics_campaign(m, 0, 2); /* not an id: ignored */
	cm_wmetrics_latency(m, 0.003);
	cm_wmetrics_latency(m, 0.005); /* on the bound: that bucket */
	cm_wmetrics_latency(m, 0.2);
	cm_wmetrics_latency(m, 90);
	cm_wmetrics_latency(m, -1); /* clock skew: 0 */
	id.ms = (uint64_t)cm_time_now() - 2000;
	id.seq = 0;
	cm_wmetrics_latency_id(m, &id); /* about 2 s */
	assert_int_equal(cm_wmetrics_flush(m, &err), 0);

	assert_int_equal(hget(c, "t:s:worker:w 1", "consumed"), 10);
	assert_int_equal(hget(c, "t:s:worker:w 1", "matched"), 4);
	assert_int_equal(hget(c, "t:s:worker:w 1", "matches"), 6);
	assert_int_equal(hget(c, "t:s:worker:w 1", "stored"), 9);
	assert_int_equal(hget(c, "t:s:worker:w 1", "acked"), 9);
	assert_int_equal(hget(c, "t:s:worker:w 1", "dead"), 1);
	assert_int_equal(hget(c, "t:s:worker:w 1", "errors"), 2);
	assert_int_equal(hget(c, "t:s:worker:w 1", "campaign:7"), 4);
	assert_int_equal(hget(c, "t:s:worker:w 1", "campaign:9"), 2);
	assert_int_equal(hget(c, "t:s:worker:w 1", "campaign:0"), -1);
	/* Cumulative buckets; lat_count is +Inf. */
	assert_int_equal(hget(c, "t:s:worker:w 1", "lat_le_0.005"), 3);
	assert_int_equal(hget(c, "t:s:worker:w 1", "lat_le_0.25"), 4);
	assert_int_equal(hget(c, "t:s:worker:w 1", "lat_le_1"), 4);
	assert_int_equal(hget(c, "t:s:worker:w 1", "lat_le_2.5"), 5);
	assert_int_equal(hget(c, "t:s:worker:w 1", "lat_le_60"), 5);
	assert_int_equal(hget(c, "t:s:worker:w 1", "lat_count"), 6);
	assert_in_range(hget(c, "t:s:worker:w 1", "lat_sum_us"), 92208000, 92300000);

	r = redisCommand(c, "ZSCORE t:s:workers %s", "w 1");
	assert_int_equal(r->type, REDIS_REPLY_STRING);
	assert_in_range(strtoll(r->str, NULL, 10), before, cm_time_now());
	freeReplyObject(r);
	r = redisCommand(c, "PTTL %s", "t:s:worker:w 1");
	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	assert_in_range(r->integer, CM_WMETRICS_EXPIRE_MS - 5000, CM_WMETRICS_EXPIRE_MS);
	freeReplyObject(r);

	/* Only deltas go out: a second flush adds what came since. An idle
	 * flush still renews the heartbeat. */
	cm_wmetrics_add(m, CM_WM_CONSUMED, 5);
	cm_wmetrics_campaign(m, 7, 1);
	assert_int_equal(cm_wmetrics_flush(m, &err), 0);
	assert_int_equal(cm_wmetrics_flush(m, &err), 0);
	assert_int_equal(hget(c, "t:s:worker:w 1", "consumed"), 15);
	assert_int_equal(hget(c, "t:s:worker:w 1", "campaign:7"), 5);
	assert_int_equal(hget(c, "t:s:worker:w 1", "lat_count"), 6);
	cm_wmetrics_stats(m, &st);
	assert_int_equal(st.flushes, 3);
	assert_int_equal(st.failures, 0);
	assert_string_equal(st.last_error, "");
	cm_wmetrics_free(m);
	redisFree(c);
}

static void test_campaign_cap(void **state)
{
	redisContext *c = fresh();
	struct cm_wmetrics *m = writer("t:cap", "w", -1);
	struct cm_err err;
	redisReply *r;
	int64_t i;

	for (i = 1; i <= CM_WMETRICS_MAX_CAMPAIGNS + 10; i++)
		cm_wmetrics_campaign(m, i, 1);
	cm_wmetrics_campaign(m, 1, 1); /* known ids still count as themselves */
	assert_int_equal(cm_wmetrics_flush(m, &err), 0);
	assert_int_equal(hget(c, "t:cap:worker:w", "campaign:1"), 2);
	assert_int_equal(hget(c, "t:cap:worker:w", "campaign:other"), 10);
	r = redisCommand(c, "HLEN t:cap:worker:w");
	assert_int_equal(r->integer, CM_WMETRICS_MAX_CAMPAIGNS + 1);
	freeReplyObject(r);
	cm_wmetrics_free(m);
	redisFree(c);
}

/* A TCP port on which nothing listens (bound once by the kernel's choice). */
static int closed_port(void)
{
	struct sockaddr_in a = {0};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static void test_failures_kept(void **state)
{
	redisContext *c = fresh();
	struct cm_wmetrics_stats st;
	struct cm_wmetrics_opts o = {NULL, "t:f", "w", -1, 0, 0};
	struct cm_wmetrics *m;
	struct cm_err err;
	char bad[64];
	struct timespec t0, t1;

	/* Unreachable: the flush fails quickly, is counted, never fatal. */
	snprintf(bad, sizeof(bad), "redis://127.0.0.1:%d", closed_port());
	o.redis_url = bad;
	m = cm_wmetrics_new(&o, &err);
	assert_non_null(m);
	cm_wmetrics_add(m, CM_WM_CONSUMED, 3);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(cm_wmetrics_flush(m, &err), -1);
	assert_non_null(strstr(err.msg, bad));
	assert_int_equal(cm_wmetrics_flush(m, &err), -1);
	cm_wmetrics_stats(m, &st);
	assert_int_equal(st.failures, 2);
	assert_int_equal(st.flushes, 0);
	assert_non_null(strstr(st.last_error, bad));
	cm_wmetrics_free(m); /* its last flush fails too, quietly */
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 3);

	/* A connection that dies: that flush fails, the next one reconnects
	 * and sends what the failed one held. */
	m = writer("t:f", "w", -1);
	cm_wmetrics_add(m, CM_WM_CONSUMED, 1);
	assert_int_equal(cm_wmetrics_flush(m, &err), 0);
	cmd(c, "CLIENT KILL TYPE normal SKIPME yes");
	cm_wmetrics_add(m, CM_WM_CONSUMED, 2);
	cm_wmetrics_campaign(m, 3, 2);
	cm_wmetrics_latency(m, 0.01);
	assert_int_equal(cm_wmetrics_flush(m, &err), -1);
	assert_int_equal(hget(c, "t:f:worker:w", "consumed"), 1);
	cm_wmetrics_add(m, CM_WM_CONSUMED, 4);
	assert_int_equal(cm_wmetrics_flush(m, &err), 0);
	assert_int_equal(hget(c, "t:f:worker:w", "consumed"), 7);
	assert_int_equal(hget(c, "t:f:worker:w", "campaign:3"), 2);
	assert_int_equal(hget(c, "t:f:worker:w", "lat_count"), 1);
	cm_wmetrics_stats(m, &st);
	assert_int_equal(st.failures, 1);
	assert_int_equal(st.flushes, 2);

	/* A server error (the key is not a hash): counted, deltas kept. */
	cmd(c, "DEL t:f:worker:w");
	cmd(c, "SET t:f:worker:w x");
	cm_wmetrics_add(m, CM_WM_ERRORS, 1);
	assert_int_equal(cm_wmetrics_flush(m, &err), -1);
	assert_non_null(strstr(err.msg, "WRONGTYPE"));
	cmd(c, "DEL t:f:worker:w");
	assert_int_equal(cm_wmetrics_flush(m, &err), 0);
	assert_int_equal(hget(c, "t:f:worker:w", "errors"), 1);
	cm_wmetrics_free(m);
	redisFree(c);
}

#define THREADS 4
#define ROUNDS  100000

static void *count_away(void *arg)
{
	struct cm_wmetrics *m = arg;
	int i;

	for (i = 0; i < ROUNDS; i++) {
		cm_wmetrics_add(m, CM_WM_CONSUMED, 1);
		cm_wmetrics_campaign(m, 1 + i % 50, 1);
		cm_wmetrics_latency(m, (double)(i % 7) / 100);
	}
	return NULL;
}

static void test_thread_flushes(void **state)
{
	redisContext *c = fresh();
	struct cm_wmetrics *m = writer("t:t", "w", 20);
	struct cm_wmetrics_stats st;
	pthread_t t[THREADS];
	long long sum = 0;
	int i;

	/* Nothing but the thread flushes; the heartbeat comes by itself. */
	cm_wmetrics_add(m, CM_WM_ACKED, 1);
	for (i = 0; i < 100 && hget(c, "t:t:worker:w", "acked") != 1; i++)
		sleep_ms(10);
	assert_int_equal(hget(c, "t:t:worker:w", "acked"), 1);
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, count_away, m), 0);
	for (i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	cm_wmetrics_stats(m, &st);
	assert_true(st.flushes >= 1);
	/* The last counts go out with cm_wmetrics_free. */
	cm_wmetrics_free(m);
	assert_int_equal(hget(c, "t:t:worker:w", "consumed"), THREADS * ROUNDS);
	assert_int_equal(hget(c, "t:t:worker:w", "lat_count"), THREADS * ROUNDS);
	for (i = 1; i <= 50; i++) {
		char f[32];

		snprintf(f, sizeof(f), "campaign:%d", i);
		sum += hget(c, "t:t:worker:w", f);
	}
	assert_int_equal(sum, THREADS * ROUNDS);
	redisFree(c);
}

static volatile sig_atomic_t usr1_seen;

static void on_usr1(int sig)
{
	(void)sig;
	usr1_seen = 1;
}

/* The flush thread takes no signal: one the tool's own thread blocks stays
 * pending until that thread opens its mask (as the tools wait for theirs in
 * ppoll), however the thread was started. */
static void test_thread_takes_no_signals(void **state)
{
	struct sigaction sa;
	struct cm_wmetrics *m;
	sigset_t usr1, pending;
	int i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	usr1_seen = 0;
	/* started while this thread takes SIGUSR1 */
	m = writer("t:s", "w", 20);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	kill(getpid(), SIGUSR1);
	for (i = 0; i < 10; i++)
		sleep_ms(10);
	assert_int_equal(usr1_seen, 0);
	sigpending(&pending);
	assert_true(sigismember(&pending, SIGUSR1));
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
	assert_int_equal(usr1_seen, 1);
	cm_wmetrics_free(m);
	signal(SIGUSR1, SIG_DFL);
}

/* Renders the workers of stream into a string (the caller frees it). */
static char *render(redisContext *c, const char *stream, int64_t ttl, int64_t now, int *rc,
                    struct cm_err *err)
{
	struct cm_buf b = CM_BUF_INIT;
	struct cm_prom_writer w;

	cm_prom_writer_init(&w, &b);
	*rc = cm_wmetrics_render(c, stream, ttl, now, &w, err);
	cm_prom_writer_release(&w);
	return b.data ? b.data : strdup("");
}

static void test_render(void **state)
{
	redisContext *c = fresh();
	struct cm_wmetrics *a = writer("t:r", "alpha", -1), *b = writer("t:r", "b\"\\\n", -1);
	struct cm_err err;
	int64_t now = cm_time_now();
	redisReply *r;
	char *text;
	int rc;

	cm_wmetrics_add(a, CM_WM_CONSUMED, 10);
	cm_wmetrics_add(a, CM_WM_DEAD, 1);
	cm_wmetrics_campaign(a, 7, 3);
	cm_wmetrics_campaign(a, 12, 1);
	cm_wmetrics_latency(a, 0.02);
	cm_wmetrics_latency(a, 0.4);
	cm_wmetrics_add(b, CM_WM_STORED, 5);
	cm_wmetrics_campaign(b, 7, 2);
	assert_int_equal(cm_wmetrics_flush(a, &err), 0);
	assert_int_equal(cm_wmetrics_flush(b, &err), 0);
	/* A worker gone quiet 40 s ago, and members no label can hold. */
	cmd(c, "ZADD t:r:workers %lld gone", (long long)(now - 40000));
	cmd(c, "HSET t:r:worker:gone consumed 99 campaign:7 100");
	cmd(c, "ZADD t:r:workers %lld %b", (long long)now, "bad\xff", (size_t)4);
	cmd(c, "ZADD t:r:workers %lld %b", (long long)now, "", (size_t)0);

	text = render(c, "t:r", 30000, now, &rc, &err);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(text, "# TYPE cm_worker_up gauge\n"
	                             "cm_worker_up{consumer=\"alpha\"} 1\n"
	                             "cm_worker_up{consumer=\"b\\\"\\\\\\n\"} 1\n"
	                             "# HELP cm_worker_last_seen_seconds"));
	assert_non_null(strstr(text, "cm_worker_consumed_total{consumer=\"alpha\"} 10\n"
	                             "cm_worker_consumed_total{consumer=\"b\\\"\\\\\\n\"} 0\n"));
	assert_non_null(strstr(text, "cm_worker_stored_total{consumer=\"b\\\"\\\\\\n\"} 5\n"));
	assert_non_null(strstr(text, "cm_worker_dead_lettered_total{consumer=\"alpha\"} 1\n"));
	assert_non_null(strstr(text, "# TYPE cm_worker_matched_total counter\n"));
	assert_non_null(strstr(text, "# TYPE cm_worker_matches_total counter\n"));
	assert_non_null(strstr(text, "# TYPE cm_worker_acked_total counter\n"));
	assert_non_null(strstr(text, "# TYPE cm_worker_errors_total counter\n"));
	assert_non_null(strstr(
	    text, "cm_worker_publish_to_commit_seconds_bucket{consumer=\"alpha\",le=\"0.01\"} "
	          "0\n"
	          "cm_worker_publish_to_commit_seconds_bucket{consumer=\"alpha\",le=\"0.025\"} "
	          "1\n"));
	assert_non_null(strstr(
	    text, "cm_worker_publish_to_commit_seconds_bucket{consumer=\"alpha\",le=\"+Inf\"} 2\n"
	          "cm_worker_publish_to_commit_seconds_sum{consumer=\"alpha\"} 0.42\n"
	          "cm_worker_publish_to_commit_seconds_count{consumer=\"alpha\"} 2\n"));
	/* Summed over the live workers only, ordered by id. */
	assert_non_null(strstr(text, "# TYPE cm_campaign_matches_total counter\n"
	                             "cm_campaign_matches_total{campaign_id=\"7\"} 5\n"
	                             "cm_campaign_matches_total{campaign_id=\"12\"} 1\n"));
	assert_null(strstr(text, "gone"));
	assert_null(strstr(text, "bad"));
	free(text);
	/* The stale member was dropped from the set. */
	r = redisCommand(c, "ZSCORE t:r:workers gone");
	assert_int_equal(r->type, REDIS_REPLY_NIL);
	freeReplyObject(r);
	cm_wmetrics_free(a);
	cm_wmetrics_free(b);
	redisFree(c);
}

static void test_render_odd_data(void **state)
{
	redisContext *c = fresh();
	struct cm_err err;
	int64_t now = cm_time_now();
	char *text;
	int rc;

	/* No workers: every family still there, with HELP and TYPE. */
	text = render(c, "t:o", 30000, 0, &rc, &err);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(text, "# TYPE cm_worker_up gauge\n# HELP"));
	assert_non_null(strstr(text, "# TYPE cm_worker_publish_to_commit_seconds histogram\n"));
	assert_non_null(strstr(text, "# TYPE cm_campaign_matches_total counter\n"));
	free(text);

	/* A damaged hash: buckets that go down, words and negatives where
	 * numbers belong, a count below its buckets. */
	cmd(c, "ZADD t:o:workers %lld w", (long long)now);
	cmd(c, "HSET t:o:worker:w consumed abc stored -5 lat_le_0.005 4 lat_le_0.01 2 "
	       "lat_count 1 lat_sum_us 1000 campaign:x 3 campaign:-2 1 campaign:other 2 "
	       "campaign:5 99999999999999999999999 campaign:6 1");
	text = render(c, "t:o", 30000, now, &rc, &err);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(text, "cm_worker_consumed_total{consumer=\"w\"} 0\n"));
	assert_non_null(strstr(text, "cm_worker_stored_total{consumer=\"w\"} 0\n"));
	assert_non_null(strstr(
	    text, "cm_worker_publish_to_commit_seconds_bucket{consumer=\"w\",le=\"0.01\"} 4\n"));
	assert_non_null(strstr(
	    text, "cm_worker_publish_to_commit_seconds_bucket{consumer=\"w\",le=\"+Inf\"} 4\n"));
	assert_non_null(
	    strstr(text, "cm_worker_publish_to_commit_seconds_count{consumer=\"w\"} 4\n"));
	assert_non_null(strstr(text, "cm_campaign_matches_total{campaign_id=\"6\"} 1\n"
	                             "cm_campaign_matches_total{campaign_id=\"other\"} 2\n"));
	assert_null(strstr(text, "campaign_id=\"x\""));
	free(text);

	/* The set is not a sorted set: an error naming the key, nothing written. */
	cmd(c, "DEL t:o:workers");
	cmd(c, "SET t:o:workers x");
	text = render(c, "t:o", 30000, now, &rc, &err);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err.msg, "t:o:workers"));
	assert_non_null(strstr(err.msg, "WRONGTYPE"));
	assert_string_equal(text, "");
	free(text);
	redisFree(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_new_checks),      cmocka_unit_test(test_flush_fields),
	    cmocka_unit_test(test_campaign_cap),    cmocka_unit_test(test_failures_kept),
	    cmocka_unit_test(test_thread_flushes),  cmocka_unit_test(test_render),
	    cmocka_unit_test(test_render_odd_data), cmocka_unit_test(test_thread_takes_no_signals),
	};

	url = test_server("test_wmetrics", "CM_TEST_REDIS_URL");
	if (!url)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
