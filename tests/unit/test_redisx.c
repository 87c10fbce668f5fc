/* Tests for redisx.c: URL parsing, password masking, stream ids, error
 * classes, connection errors that name their step and say what they mean,
 * and, against the redis-server tests/run.sh starts (CM_TEST_REDIS_URL),
 * acknowledging and dead-lettering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "json.h"
#include "redisx.h"
#include "testenv.h"

static void test_url_tcp(void **state)
{
	struct cm_redis_url u;
	struct cm_err err;

	assert_int_equal(cm_redis_url_parse("redis://127.0.0.1:6390", &u, &err), 0);
	assert_false(u.is_unix);
	assert_string_equal(u.host, "127.0.0.1");
	assert_int_equal(u.port, 6390);
	assert_int_equal(u.db, 0);
	assert_string_equal(u.pass, "");
	assert_string_equal(u.safe, "redis://127.0.0.1:6390");

	assert_int_equal(cm_redis_url_parse("redis://cache.example", &u, &err), 0);
	assert_string_equal(u.host, "cache.example");
	assert_int_equal(u.port, 6379);

	assert_int_equal(cm_redis_url_parse("redis://h:1/3", &u, &err), 0);
	assert_int_equal(u.port, 1);
	assert_int_equal(u.db, 3);
	assert_string_equal(u.safe, "redis://h:1/3");

	assert_int_equal(cm_redis_url_parse("redis://h/", &u, &err), 0);
	assert_int_equal(u.db, 0);
	assert_int_equal(cm_redis_url_parse("redis://h?db=5", &u, &err), 0);
	assert_int_equal(u.db, 5);
	assert_int_equal(cm_redis_url_parse("redis://", &u, &err), 0);
	assert_string_equal(u.host, "127.0.0.1");

	assert_int_equal(cm_redis_url_parse("redis://[::1]:7000/2", &u, &err), 0);
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 7000);
	assert_int_equal(u.db, 2);
	assert_string_equal(u.safe, "redis://[::1]:7000/2");
}

static void test_url_auth(void **state)
{
	struct cm_redis_url u;
	struct cm_err err;

	assert_int_equal(cm_redis_url_parse("redis://:s3cret@h:6000/1", &u, &err), 0);
	assert_string_equal(u.user, "");
	assert_string_equal(u.pass, "s3cret");
	assert_string_equal(u.safe, "redis://:***@h:6000/1");
	assert_null(strstr(u.safe, "s3cret"));

	assert_int_equal(cm_redis_url_parse("redis://app:p%40ss%3Aw@h", &u, &err), 0);
	assert_string_equal(u.user, "app");
	assert_string_equal(u.pass, "p@ss:w");
	assert_string_equal(u.safe, "redis://app:***@h:6379");

	/* No colon: the whole user information is the password. */
	assert_int_equal(cm_redis_url_parse("redis://onlypass@h", &u, &err), 0);
	assert_string_equal(u.user, "");
	assert_string_equal(u.pass, "onlypass");

	/* An '@' inside the password must be escaped, but the last '@' of the
	 * authority ends the user information anyway. */
	assert_int_equal(cm_redis_url_parse("redis://:a@b@h:1", &u, &err), 0);
	assert_string_equal(u.pass, "a@b");
	assert_string_equal(u.host, "h");

	assert_int_equal(cm_redis_url_parse("redis://app:@h", &u, &err), -1);
	assert_non_null(strstr(err.msg, "without a password"));
	assert_int_equal(cm_redis_url_parse("redis://:bad%zzpw@h", &u, &err), -1);
	assert_non_null(strstr(err.msg, "password"));
	assert_null(strstr(err.msg, "bad%zzpw"));
	assert_int_equal(cm_redis_url_parse("redis://:pw%4@h", &u, &err), -1);
	assert_int_equal(cm_redis_url_parse("redis://:pw%00x@h", &u, &err), -1);
}

static void test_url_unix(void **state)
{
	struct cm_redis_url u;
	struct cm_err err;

	assert_int_equal(cm_redis_url_parse("unix:///run/redis/redis.sock", &u, &err), 0);
	assert_true(u.is_unix);
	assert_string_equal(u.path, "/run/redis/redis.sock");
	assert_int_equal(u.db, 0);
	assert_string_equal(u.safe, "unix:///run/redis/redis.sock");

	assert_int_equal(cm_redis_url_parse("unix:///tmp/r.sock?db=4", &u, &err), 0);
	assert_string_equal(u.path, "/tmp/r.sock");
	assert_int_equal(u.db, 4);
	assert_string_equal(u.safe, "unix:///tmp/r.sock?db=4");

	assert_int_equal(cm_redis_url_parse("unix://:pw@/tmp/r.sock", &u, &err), 0);
	assert_string_equal(u.pass, "pw");
	assert_string_equal(u.path, "/tmp/r.sock");
	assert_string_equal(u.safe, "unix://:***@/tmp/r.sock");

	assert_int_equal(cm_redis_url_parse("unix://relative.sock", &u, &err), -1);
	assert_non_null(strstr(err.msg, "absolute"));
	assert_int_equal(cm_redis_url_parse("unix:///tmp/r.sock?foo=1", &u, &err), -1);
	assert_non_null(strstr(err.msg, "?db=N"));
}

static void test_url_bad(void **state)
{
	static const char *const bad[] = {
	    "http://h:1",    "rediss://h",     "redis://h:0",           "redis://h:65536",
	    "redis://h:x",   "redis://h:",     "redis://h/x",           "redis://h/1x",
	    "redis://[::1",  "redis://[]:1",   "redis://[::1]x",        "redis://h?db=",
	    "redis://h?x=1", "127.0.0.1:6379", "redis://h:99999999999",
	};
	struct cm_redis_url u;
	struct cm_err err;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err.msg[0] = '\0';
		if (cm_redis_url_parse(bad[i], &u, &err) != -1)
			fail_msg("accepted '%s'", bad[i]);
		assert_non_null(strstr(err.msg, "Redis URL"));
	}
	assert_int_equal(cm_redis_url_parse("redis://h:0", &u, &err), -1);
	assert_non_null(strstr(err.msg, "port"));
	assert_int_equal(cm_redis_url_parse("rediss://h", &u, &err), -1);
	assert_non_null(strstr(err.msg, "TLS"));
}

static void test_url_choice(void **state)
{
	unsetenv("CM_REDIS_URL");
	assert_string_equal(cm_redis_url(NULL), CM_REDIS_DEFAULT_URL);
	setenv("CM_REDIS_URL", "redis://env:1", 1);
	assert_string_equal(cm_redis_url(NULL), "redis://env:1");
	assert_string_equal(cm_redis_url(""), "redis://env:1");
	assert_string_equal(cm_redis_url("redis://opt:2"), "redis://opt:2");
	setenv("CM_REDIS_URL", "", 1);
	assert_string_equal(cm_redis_url(NULL), CM_REDIS_DEFAULT_URL);
	unsetenv("CM_REDIS_URL");
}

/* A refused connection names the step and the masked URL, not the password. */
static void test_connect_refused(void **state)
{
	struct cm_err err;
	redisContext *c;

	/* Port 1 (tcpmux) is not served here. */
	c = cm_redis_connect("redis://:topsecret@127.0.0.1:1/2", &err);
	assert_null(c);
	assert_non_null(strstr(err.msg, "connect"));
	assert_non_null(strstr(err.msg, "redis://:***@127.0.0.1:1/2"));
	assert_null(strstr(err.msg, "topsecret"));

	c = cm_redis_connect("unix:///nonexistent/dir/redis.sock", &err);
	assert_null(c);
	assert_non_null(strstr(err.msg, "unix:///nonexistent/dir/redis.sock: connect:"));

	assert_int_equal(err.code, CM_EXIT_UNREACHABLE);

	c = cm_redis_connect("bogus", &err);
	assert_null(c);
	assert_non_null(strstr(err.msg, "expected redis://"));
	assert_int_equal(err.code, CM_EXIT_USAGE);
}

static void test_event_compact(void **state)
{
	static const char *const in[] = {
	    "{ \"a\" : 1, \"_stream_id\":\"1-1\", \"b\":[1, {\"_stream_id\":2}] }",
	    "{\"_stream_id\":\"1-1\"}", "{\"_stream\\u005fid\":\"1-1\",\"_x\":\"\\t\"}", "{}"};
	static const char *const want[] = {"{\"a\":1,\"b\":[1,{\"_stream_id\":2}]}", "{}",
	                                   "{\"_x\":\"\\t\"}", "{}"};
	struct cm_buf out = CM_BUF_INIT;
	struct cm_jdoc d;
	struct cm_err err;

	cm_jdoc_init(&d, 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(cm_json_parse(&d, in[i], strlen(in[i]), &err), 0);
		cm_buf_reset(&out);
		assert_int_equal(cm_stream_event_compact(&d, &out), 0);
		assert_string_equal(out.data, want[i]);
	}
	cm_jdoc_release(&d);
	cm_buf_release(&out);
}

static const char *url; /* CM_TEST_REDIS_URL */

/* A connection to the test server, on a database of its own. */
static redisContext *test_db(void)
{
	struct cm_redis_url u;
	struct cm_err err;
	redisContext *c;
	redisReply *r;

	assert_int_equal(cm_redis_url_parse(url, &u, &err), 0);
	u.db = 7;
	c = cm_redis_connect_url(&u, &err);
	assert_non_null(c);
	r = redisCommand(c, "FLUSHDB");
	assert_non_null(r);
	freeReplyObject(r);
	return c;
}

/* Runs a command and returns its integer reply. */
static long long integer(redisContext *c, const char *fmt, const char *arg)
{
	redisReply *r = redisCommand(c, fmt, arg);
	long long v;

	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	v = r->integer;
	freeReplyObject(r);
	return v;
}

/* Adds n entries to stream s, reads them in group g so that they are
 * pending, and stores their ids in ids[] (each CM_STREAM_ID_MAX bytes). */
static void pending_entries(redisContext *c, const char *s, size_t n, char (*ids)[CM_STREAM_ID_MAX])
{
	redisReply *r;
	size_t i;

	r = redisCommand(c, "XGROUP CREATE %s g 0 MKSTREAM", s);
	freeReplyObject(r);
	for (i = 0; i < n; i++) {
		r = redisCommand(c, "XADD %s * data x", s);
		assert_int_equal(r->type, REDIS_REPLY_STRING);
		snprintf(ids[i], CM_STREAM_ID_MAX, "%s", r->str);
		freeReplyObject(r);
	}
	r = redisCommand(c, "XREADGROUP GROUP g c STREAMS %s >", s);
	freeReplyObject(r);
}

static void test_xack(void **state)
{
	enum { N = 2 * CM_REDIS_XACK_CHUNK + 5 };
	static char ids[N][CM_STREAM_ID_MAX];
	static const char *p[N];
	redisContext *c = test_db();
	redisReply *refusal;
	struct cm_err err;
	long long acked;
	size_t i;

	pending_entries(c, "s", N, ids);
	for (i = 0; i < N; i++)
		p[i] = ids[i];
	assert_int_equal(integer(c, "XLEN %s", "s"), N);
	/* nothing to do: no command, no reply */
	assert_int_equal(cm_redis_xack(c, "s", "g", p, NULL, 0, NULL, NULL, &acked, &refusal, &err),
	                 0);
	assert_int_equal(acked, 0);
	/* three chunks in one go; ids already acknowledged do not count */
	assert_int_equal(cm_redis_xack(c, "s", "g", p, NULL, 10, NULL, NULL, &acked, NULL, &err),
	                 0);
	assert_int_equal(acked, 10);
	assert_int_equal(cm_redis_xack(c, "s", "g", p, NULL, N, NULL, NULL, &acked, &refusal, &err),
	                 0);
	assert_int_equal(acked, N - 10);
	assert_null(refusal);
	{
		redisReply *r = redisCommand(c, "XPENDING s g");
		assert_int_equal(r->element[0]->integer, 0);
		freeReplyObject(r);
	}
	/* a refusal that waiting does not fix, then the connection still works */
	freeReplyObject(redisCommand(c, "SET notastream x"));
	assert_int_equal(cm_redis_xack(c, "notastream", "g", p, NULL, CM_REDIS_XACK_CHUNK + 1, NULL,
	                               NULL, &acked, &refusal, &err),
	                 CM_REDIS_REFUSED);
	assert_int_equal(err.code, CM_EXIT_REFUSED);
	assert_non_null(strstr(err.msg, "XACK notastream g: WRONGTYPE"));
	assert_non_null(refusal);
	assert_false(cm_redis_error_transient(refusal->str, refusal->len));
	freeReplyObject(refusal);
	assert_int_equal(integer(c, "EXISTS %s", "notastream"), 1);
	redisFree(c);
}

static void test_xack_lost(void **state)
{
	redisContext *c = test_db();
	static const char *const ids[] = {"1-1"};
	redisReply *refusal = (redisReply *)1;
	struct cm_err err;
	long long acked;

	/* the server closes the connection: an I/O failure, worth a retry */
	freeReplyObject(redisCommand(c, "CLIENT KILL SKIPME no TYPE normal"));
	assert_int_equal(
	    cm_redis_xack(c, "s", "g", ids, NULL, 1, NULL, NULL, &acked, &refusal, &err),
	    CM_REDIS_IO);
	assert_int_equal(err.code, CM_EXIT_UNREACHABLE);
	assert_null(refusal);
	redisFree(c);
}

static void test_dead_letter(void **state)
{
	static char ids[1][CM_STREAM_ID_MAX];
	redisContext *c = test_db();
	struct cm_redis_dead e = {.key = "s",
	                          .dead_key = "s:dead",
	                          .group = "g",
	                          .data = "{}",
	                          .data_len = 2,
	                          .reason = "why",
	                          .deliveries = 3};
	redisReply *refusal, *r;
	struct cm_err err;

	pending_entries(c, "s", 1, ids);
	e.id = ids[0];
	assert_int_equal(cm_redis_dead_letter(c, &e, NULL, NULL, &refusal, &err), 0);
	assert_int_equal(integer(c, "XLEN %s", "s:dead"), 1);
	r = redisCommand(c, "XPENDING s g");
	assert_int_equal(r->element[0]->integer, 0);
	freeReplyObject(r);
	/* a dead-letter stream of the wrong type: refused inside EXEC */
	freeReplyObject(redisCommand(c, "SET x:dead x"));
	e.dead_key = "x:dead";
	assert_int_equal(cm_redis_dead_letter(c, &e, NULL, NULL, &refusal, &err), CM_REDIS_REFUSED);
	assert_int_equal(err.code, CM_EXIT_REFUSED);
	assert_non_null(strstr(err.msg, "WRONGTYPE"));
	redisFree(c);
}

static void test_auth_refused(void **state)
{
	struct cm_redis_url u;
	struct cm_err err;
	redisContext *c;

	assert_int_equal(cm_redis_url_parse(url, &u, &err), 0);
	snprintf(u.pass, sizeof(u.pass), "not-the-password");
	c = cm_redis_connect_url(&u, &err);
	assert_null(c);
	assert_non_null(strstr(err.msg, "AUTH refused"));
	assert_int_equal(err.code, CM_EXIT_REFUSED);
}

static void test_ids(void **state)
{
	struct cm_stream_id a, b;
	char s[CM_STREAM_ID_MAX];

	assert_int_equal(cm_stream_id_parse("1700000000000-5", 15, &a), 0);
	assert_true(a.ms == 1700000000000ULL && a.seq == 5);
	assert_int_equal(cm_stream_id_format(&a, s), 15);
	assert_string_equal(s, "1700000000000-5");
	assert_int_equal(cm_stream_id_parse("42", 2, &b), 0);
	assert_true(b.ms == 42 && b.seq == 0);
	assert_int_equal(cm_stream_id_parse("18446744073709551615-18446744073709551615", 41, &b),
	                 0);
	assert_int_equal(cm_stream_id_format(&b, s), 41);
	assert_string_equal(s, "18446744073709551615-18446744073709551615");
	assert_int_equal(cm_stream_id_parse("18446744073709551616-0", 22, &b), -1);
	assert_int_equal(cm_stream_id_parse("", 0, &b), -1);
	assert_int_equal(cm_stream_id_parse("1-", 2, &b), -1);
	assert_int_equal(cm_stream_id_parse("-1", 2, &b), -1);
	assert_int_equal(cm_stream_id_parse("1-2-3", 5, &b), -1);
	assert_int_equal(cm_stream_id_parse("1x-2", 4, &b), -1);

	/* Numeric, not textual, order: 9-0 < 10-0, and 5-9 < 5-10. */
	assert_int_equal(cm_stream_id_parse("9-0", 3, &a), 0);
	assert_int_equal(cm_stream_id_parse("10-0", 4, &b), 0);
	assert_true(cm_stream_id_cmp(&a, &b) < 0);
	assert_true(cm_stream_id_cmp(&b, &a) > 0);
	assert_int_equal(cm_stream_id_parse("5-9", 3, &a), 0);
	assert_int_equal(cm_stream_id_parse("5-10", 4, &b), 0);
	assert_true(cm_stream_id_cmp(&a, &b) < 0);
	assert_int_equal(cm_stream_id_cmp(&a, &a), 0);
}

static void test_transient(void **state)
{
	static const char loading[] = "LOADING Redis is loading the dataset in memory";
	static const char oom[] = "OOM command not allowed when used memory > 'maxmemory'.";
	static const char wrongtype[] = "WRONGTYPE Operation against a key holding the wrong kind";
	static const char busygroup[] = "BUSYGROUP Consumer Group name already exists";

	assert_true(cm_redis_error_transient(loading, strlen(loading)));
	assert_true(cm_redis_error_transient(oom, strlen(oom)));
	assert_true(cm_redis_error_transient("BUSY", 4));
	assert_false(cm_redis_error_transient(wrongtype, strlen(wrongtype)));
	assert_false(cm_redis_error_transient(busygroup, strlen(busygroup)));
	assert_false(cm_redis_error_transient("ERR", 3));
	assert_false(cm_redis_error_transient("", 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_url_tcp),       cmocka_unit_test(test_url_auth),
	    cmocka_unit_test(test_url_unix),      cmocka_unit_test(test_url_bad),
	    cmocka_unit_test(test_url_choice),    cmocka_unit_test(test_connect_refused),
	    cmocka_unit_test(test_ids),           cmocka_unit_test(test_transient),
	    cmocka_unit_test(test_event_compact), cmocka_unit_test(test_xack),
	    cmocka_unit_test(test_xack_lost),     cmocka_unit_test(test_dead_letter),
	    cmocka_unit_test(test_auth_refused),
	};

	url = test_server("test_redisx", "CM_TEST_REDIS_URL");
	if (!url)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
