/* redis_server.h - a throwaway redis-server for unit tests that need a real
 * one: an odd port from the pid, a temporary directory, started and stopped
 * by the test (as tests/lib/redis.bash does for the tool tests). */
#ifndef CM_TEST_REDIS_SERVER_H
#define CM_TEST_REDIS_SERVER_H

#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct test_redis {
	pid_t pid;
	int port;
	char dir[64];
	char url[64];
};

/* Sleeps ms milliseconds. */
static void test_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* True when something answers PING on port. */
static int test_redis_ping(int port)
{
	struct timeval tv = {0, 200000};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *r;
	int ok = 0;

	if (!c)
		return 0;
	if (!c->err) {
		r = redisCommand(c, "PING");
		ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
		if (r)
			freeReplyObject(r);
	}
	redisFree(c);
	return ok;
}

/* Starts the server on t->port in t->dir and waits until it answers. */
static int test_redis_launch(struct test_redis *t)
{
	const char *bin = getenv("REDIS_SERVER") ? getenv("REDIS_SERVER") : "/usr/bin/redis-server";
	char port[16];
	int i;

	snprintf(port, sizeof(port), "%d", t->port);
	t->pid = fork();
	if (t->pid < 0)
		return -1;
	if (t->pid == 0) {
		if (!freopen("/dev/null", "w", stdout))
			_exit(127);
		execl(bin, bin, "--port", port, "--bind", "127.0.0.1", "--dir", t->dir, "--save",
		      "", "--appendonly", "yes", "--appendfsync", "no", "--daemonize", "no",
		      "--protected-mode", "no", "--logfile", "redis.log", (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 100; i++) {
		int st;

		if (test_redis_ping(t->port))
			return 0;
		if (waitpid(t->pid, &st, WNOHANG) == t->pid) {
			t->pid = 0;
			return -1;
		}
		test_sleep_ms(50);
	}
	return -1;
}

/* Stops the server (SIGTERM) and waits for it. */
static void test_redis_stop(struct test_redis *t)
{
	int st;

	if (t->pid <= 0)
		return;
	kill(t->pid, SIGTERM);
	waitpid(t->pid, &st, 0);
	t->pid = 0;
}

/* Picks a free odd port in 30000-39999 and starts a server there. */
static int test_redis_start(struct test_redis *t)
{
	int try;

	memset(t, 0, sizeof(*t));
	snprintf(t->dir, sizeof(t->dir), "/tmp/cm-unit-redis.XXXXXX");
	if (!mkdtemp(t->dir))
		return -1;
	for (try = 0; try < 20; try++) {
		t->port = 30001 + (int)((getpid() * 7 + try * 97) % 5000) * 2;
		if (test_redis_ping(t->port))
			continue;
		if (test_redis_launch(t) == 0) {
			snprintf(t->url, sizeof(t->url), "redis://127.0.0.1:%d", t->port);
			return 0;
		}
	}
	return -1;
}

/* Stops the server and removes its directory. */
static void test_redis_cleanup(struct test_redis *t)
{
	char cmd[128];

	test_redis_stop(t);
	if (t->dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", t->dir);
	}
}

/* Runs one command on the test server and returns its reply (the caller
 * frees it), NULL when the server does not answer. */
static redisReply *test_redis_cmd(const struct test_redis *t, const char *fmt, ...)
{
	redisContext *c = redisConnect("127.0.0.1", t->port);
	redisReply *r = NULL;
	va_list ap;

	if (!c)
		return NULL;
	if (!c->err) {
		va_start(ap, fmt);
		r = redisvCommand(c, fmt, ap);
		va_end(ap);
	}
	redisFree(c);
	return r;
}

/* The integer a command returns, or -1. */
static long long test_redis_int(const struct test_redis *t, const char *fmt, const char *arg)
{
	redisReply *r = test_redis_cmd(t, fmt, arg);
	long long v = -1;

	if (r && r->type == REDIS_REPLY_INTEGER)
		v = r->integer;
	if (r)
		freeReplyObject(r);
	return v;
}

#endif
