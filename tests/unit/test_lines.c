/* Tests for lines.c (the one line reader) and out.c (record output). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "lines.h"
#include "out.h"
#include "retry.h"

/* A file whose read end holds exactly the given bytes, then EOF. */
static int feed(const char *data, size_t n)
{
	char path[] = "/tmp/cm-test-lines.XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	lseek(fd, 0, SEEK_SET);
	return fd;
}

/* One write of a delayed writer: after ms, data (NULL: close the pipe). */
struct step {
	int ms;
	const char *data;
};

/* Forks a writer that plays steps on a new pipe and returns its read end;
 * *pid is the writer, for reap(). */
static int writer(const struct step *steps, size_t n, pid_t *pid)
{
	int p[2];

	assert_int_equal(pipe(p), 0);
	*pid = fork();
	assert_true(*pid >= 0);
	if (*pid == 0) {
		close(p[0]);
		for (size_t i = 0; i < n; i++) {
			usleep((useconds_t)steps[i].ms * 1000);
			if (!steps[i].data)
				break;
			if (write(p[1], steps[i].data, strlen(steps[i].data)) < 0)
				_exit(1);
		}
		_exit(0);
	}
	close(p[1]);
	return p[0];
}

/* Waits for a forked helper and checks that it did its part. */
static void reap(pid_t pid)
{
	int st;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void expect_line(struct cm_lines *r, const char *want, unsigned long lineno)
{
	struct cm_err err;
	const char *line;
	size_t len;

	assert_int_equal(cm_lines_next(r, &line, &len, &err), CM_LINE_OK);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(line, want, len);
	assert_int_equal(r->lineno, lineno);
}

static void expect_eof(struct cm_lines *r)
{
	struct cm_err err;
	const char *line;
	size_t len;

	assert_int_equal(cm_lines_next(r, &line, &len, &err), CM_LINE_EOF);
	assert_int_equal(cm_lines_next(r, &line, &len, &err), CM_LINE_EOF);
}

/* Reads all of in[0..n) with the given max and expects want (the lines
 * joined by '|', "LONG" for a skipped one) and lineno at the end. */
static void expect_all(const char *in, size_t n, size_t max, const char *want, unsigned long lineno)
{
	int fd = feed(in, n);
	struct cm_lines r;
	struct cm_err err;
	const char *line;
	size_t len, k = 0;
	char got[256];
	int rc;

	cm_lines_init_fd(&r, fd, "t", max);
	got[0] = 0;
	while ((rc = cm_lines_next(&r, &line, &len, &err)) != CM_LINE_EOF) {
		const char *s = rc == CM_LINE_LONG ? "LONG" : line;
		size_t l = rc == CM_LINE_LONG ? 4 : len;

		assert_true(rc == CM_LINE_OK || rc == CM_LINE_LONG);
		assert_true(k + l + 2 < sizeof(got));
		if (k)
			got[k++] = '|';
		memcpy(got + k, s, l);
		k += l;
		got[k] = 0;
	}
	assert_string_equal(got, want);
	assert_int_equal(r.lineno, lineno);
	cm_lines_release(&r);
	close(fd);
}

static void test_basic(void **state)
{
	const char in[] = "a\r\n\nbc\nlast";
	int fd = feed(in, sizeof(in) - 1);
	struct cm_lines r;

	cm_lines_init_fd(&r, fd, "t", 100);
	expect_line(&r, "a", 1);
	expect_line(&r, "bc", 3); /* the blank line 2 is skipped, but counted */
	assert_int_equal(r.no_newline, 0);
	expect_line(&r, "last", 4);
	assert_int_equal(r.no_newline, 1);
	expect_eof(&r);
	assert_int_equal(r.bytes, sizeof(in) - 1);
	cm_lines_release(&r);
	close(fd);
}

#define ALL(s, max, want, lineno) expect_all(s, sizeof(s) - 1, max, want, lineno)

static void test_blank_crlf(void **state)
{
	/* blank: spaces, tabs and CRs only; a CR inside a line stays */
	ALL("\n \t\r\n\r\r\nx\r\n\t\n a\r b \r\n", 100, "x| a\r b ", 6);
	/* CRLF, LF and a last line with a CR but no LF */
	ALL("a\r\nb\nc\r", 100, "a|b|c", 3);
	/* blank lines at the end are counted, then EOF */
	ALL("a\n\n  \n\t", 100, "a", 4);
	ALL("\r\n\n\n", 100, "", 3);
	/* a lone CR ends no line */
	ALL("a\rb\n", 100, "a\rb", 1);
}

static void test_nul(void **state)
{
	/* a NUL is data, not a blank, nor the end of a line */
	const char in[] = "\0\n\0\n \0 x";
	int fd = feed(in, sizeof(in) - 1);
	struct cm_lines r;
	struct cm_err err;
	const char *line;
	size_t len;

	cm_lines_init_fd(&r, fd, "t", 100);
	assert_int_equal(cm_lines_ready(&r, 0), 0);
	assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_OK);
	assert_int_equal(len, 1);
	assert_int_equal(line[0], 0);
	assert_int_equal(cm_lines_ready(&r, 0), 1);
	assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_OK);
	assert_int_equal(len, 1);
	assert_int_equal(r.lineno, 2);
	assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_OK);
	assert_int_equal(len, 4);
	assert_memory_equal(line, " \0 x", 4);
	assert_int_equal(r.lineno, 3);
	expect_eof(&r);
	cm_lines_release(&r);
	close(fd);
}

static void test_empty(void **state)
{
	int fd = feed("", 0);
	struct cm_lines r;

	cm_lines_init_fd(&r, fd, "t", 100);
	expect_eof(&r);
	assert_int_equal(r.lineno, 0);
	cm_lines_release(&r);
	close(fd);
}

static void test_bom(void **state)
{
	ALL("\xEF\xBB\xBF{}\n", 100, "{}", 1);
	/* only at the very start: a second one is data */
	ALL("\xEF\xBB\xBF\xEF\xBB\xBF{}\n\xEF\xBB\xBFx\n", 100, "\xEF\xBB\xBF{}|\xEF\xBB\xBFx", 2);
	/* a BOM alone, or on a blank first line */
	ALL("\xEF\xBB\xBF", 100, "", 0);
	ALL("\xEF\xBB\xBF \r\nx", 100, "x", 2);
	/* fewer bytes than a BOM, at the end or before an LF */
	ALL("\xEF\xBB", 100, "\xEF\xBB", 1);
	ALL("\xEF\n\xBB\xBFz", 100, "\xEF|\xBB\xBFz", 2);
	/* the BOM does not count against max */
	ALL("\xEF\xBB\xBF"
	    "0123456789\n",
	    10, "0123456789", 1);
}

static void test_bom_split(void **state)
{
	/* the mark arrives a byte at a time through a pipe */
	const struct step steps[] = {{0, "\xEF"}, {20, "\xBB"}, {20, "\xBF"}, {20, "x\n"}};
	pid_t pid;
	int fd = writer(steps, 4, &pid);
	struct cm_lines r;

	cm_lines_init_fd(&r, fd, "pipe", 100);
	expect_line(&r, "x", 1);
	expect_eof(&r);
	cm_lines_release(&r);
	close(fd);
	reap(pid);
}

static void test_long_lines(void **state)
{
	/* Lines far longer than the internal chunk, around a 300000-byte limit. */
	size_t max = 300000, n = 0;
	char *in = malloc(2000000);
	struct cm_lines r;
	struct cm_err err;
	const char *line;
	size_t len;

	memcpy(in + n, "ok1\n", 4), n += 4;
	memset(in + n, 'x', max), n += max; /* exactly max: accepted */
	in[n++] = '\n';
	memset(in + n, 'y', 700000), n += 700000; /* too long */
	in[n++] = '\n';
	memcpy(in + n, "ok2\n", 4), n += 4;
	memset(in + n, 'w', max), n += max; /* exactly max before CRLF: accepted */
	in[n++] = '\r';
	in[n++] = '\n';
	memset(in + n, 'v', max + 1), n += max + 1; /* max + 1 before CRLF: too long */
	in[n++] = '\r';
	in[n++] = '\n';
	memset(in + n, 'z', max + 1), n += max + 1; /* too long, at EOF */
	int fd = feed(in, n);

	cm_lines_init_fd(&r, fd, "t", max);
	expect_line(&r, "ok1", 1);
	assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_OK);
	assert_int_equal(len, max);
	assert_int_equal(line[0], 'x');
	assert_int_equal(line[max - 1], 'x');
	assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_LONG);
	assert_int_equal(r.lineno, 3);
	expect_line(&r, "ok2", 4);
	assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_OK);
	assert_int_equal(len, max);
	assert_int_equal(line[max - 1], 'w');
	assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_LONG);
	assert_int_equal(r.lineno, 6);
	assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_LONG);
	assert_int_equal(r.lineno, 7);
	expect_eof(&r);
	/* memory stays bounded by max and one read */
	assert_true(r.cap <= max + 2 + 256 * 1024);
	cm_lines_release(&r);
	close(fd);
	free(in);
}

static void test_long_edges(void **state)
{
	/* a small max: exactly max, max with CR, max + 1, at EOF */
	ALL("0123456789\n", 10, "0123456789", 1);
	ALL("0123456789\r\n", 10, "0123456789", 1);
	ALL("0123456789a\nok\n", 10, "LONG|ok", 2);
	ALL("0123456789a\r\nok", 10, "LONG|ok", 2);
	ALL("ok\n0123456789", 10, "ok|0123456789", 2);
	ALL("ok\n0123456789\r", 10, "ok|0123456789", 2);
	ALL("ok\n0123456789a", 10, "ok|LONG", 2);
	/* a long blank line is too long all the same */
	ALL("            \nok\n", 10, "LONG|ok", 2);
}

static void test_chunk_edges(void **state)
{
	/* Lines whose LF falls just before, on and after the internal read
	 * chunk (256 KiB) and its half, each line's content checked. */
	size_t chunk = 256 * 1024, n = 0, count = 0;
	const size_t sizes[] = {chunk - 2,     chunk - 1, chunk,         chunk + 1, chunk / 2 - 1,
	                        chunk / 2,     1,         chunk / 2 + 1, 0,         chunk * 3 + 7,
	                        chunk * 4 - 1, 5};
	size_t nsizes = sizeof(sizes) / sizeof(sizes[0]);
	char *in = malloc(chunk * 16);
	struct cm_lines r;
	struct cm_err err;
	const char *line;
	size_t len;

	for (size_t i = 0; i < nsizes; i++) {
		memset(in + n, 'a' + (int)i, sizes[i]);
		n += sizes[i];
		in[n++] = '\n';
	}
	int fd = feed(in, n);

	cm_lines_init_fd(&r, fd, "t", chunk * 4 - 1);
	for (size_t i = 0; i < nsizes; i++) {
		if (sizes[i] == 0)
			continue; /* blank */
		assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_OK);
		assert_int_equal(len, sizes[i]);
		assert_int_equal(r.lineno, i + 1);
		for (size_t k = 0; k < len; k++)
			if (line[k] != 'a' + (int)i)
				fail_msg("line %zu byte %zu", i + 1, k);
		count++;
	}
	expect_eof(&r);
	assert_int_equal(count, nsizes - 1);
	assert_true(r.cap <= chunk * 5 + 1);
	cm_lines_release(&r);
	close(fd);
	free(in);
}

static void test_many_lines(void **state)
{
	size_t n = 0, count = 200000;
	char *in = malloc(count * 16);
	struct cm_lines r;
	struct cm_err err;
	const char *line;
	size_t len;

	for (size_t i = 0; i < count; i++)
		n += (size_t)snprintf(in + n, 16, "%zu\n", i);
	int fd = feed(in, n);

	cm_lines_init_fd(&r, fd, "t", 64);
	for (size_t i = 0; i < count; i++) {
		char want[16];

		snprintf(want, sizeof(want), "%zu", i);
		assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_OK);
		assert_int_equal(len, strlen(want));
		assert_memory_equal(line, want, len);
	}
	assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_EOF);
	assert_int_equal(r.bytes, n);
	cm_lines_release(&r);
	close(fd);
	free(in);
}

static void test_open_missing(void **state)
{
	struct cm_lines r;
	struct cm_err err;

	assert_int_equal(cm_lines_open(&r, "/nonexistent/x", 10, &err), -1);
	assert_non_null(strstr(err.msg, "/nonexistent/x: cannot open: No such file"));
	assert_int_equal(err.code, CM_EXIT_USAGE);
	assert_int_equal(cm_lines_open(&r, "-", 10, &err), 0);
	assert_string_equal(r.name, "stdin");
	assert_int_equal(r.fd, 0);
	cm_lines_release(&r);
}

static void test_read_error(void **state)
{
	struct cm_lines r;
	struct cm_err err;
	const char *line, *p;
	size_t len, n;

	assert_int_equal(cm_lines_open(&r, "/tmp", 100, &err), 0);
	assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_ERR);
	assert_non_null(strstr(err.msg, "/tmp: read error: Is a directory"));
	assert_int_equal(err.code, CM_EXIT_SYSTEM);
	assert_int_equal(cm_lines_peek(&r, 1, &p, &n, &err), -1);
	assert_int_equal(err.code, CM_EXIT_SYSTEM);
	cm_lines_release(&r);
}

/* Milliseconds since t0 (cm_mono_ms). */
static int64_t since(int64_t t0)
{
	return cm_mono_ms() - t0;
}

static void test_wait_timeout(void **state)
{
	const struct step steps[] = {{150, "ab"}, {100, "c\n"}, {50, NULL}};
	struct cm_lines_wait w = {.timeout_ms = 50, .wake_fd = -1, .mask = NULL};
	pid_t pid;
	int fd = writer(steps, 3, &pid);
	struct cm_lines r;
	struct cm_err err;
	const char *line;
	size_t len;
	int64_t t0 = cm_mono_ms();

	cm_lines_init_fd(&r, fd, "pipe", 100);
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_TIMEOUT);
	assert_in_range(since(t0), 45, 140);
	t0 = cm_mono_ms();
	w.timeout_ms = 0;
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_TIMEOUT);
	assert_in_range(since(t0), 0, 40);
	/* a part of a line that came before the timeout stays buffered */
	w.timeout_ms = 5000;
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_OK);
	assert_int_equal(len, 3);
	assert_memory_equal(line, "abc", 3);
	assert_int_equal(r.lineno, 1);
	assert_in_range(since(t0), 150, 4000);
	w.timeout_ms = -1;
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_EOF);
	cm_lines_release(&r);
	close(fd);
	reap(pid);
}

static void test_wait_trickle(void **state)
{
	/* bytes keep coming but no LF: the deadline still holds */
	struct step steps[12];
	struct cm_lines_wait w = {.timeout_ms = 100, .wake_fd = -1, .mask = NULL};
	pid_t pid;
	int fd;
	struct cm_lines r;
	struct cm_err err;
	const char *line;
	size_t len;
	int64_t t0;

	for (int i = 0; i < 10; i++)
		steps[i] = (struct step){30, "x"};
	steps[10] = (struct step){10, "\n"};
	steps[11] = (struct step){0, NULL};
	fd = writer(steps, 12, &pid);
	cm_lines_init_fd(&r, fd, "pipe", 100);
	t0 = cm_mono_ms();
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_TIMEOUT);
	assert_in_range(since(t0), 95, 200);
	w.timeout_ms = -1;
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_OK);
	assert_int_equal(len, 10);
	assert_memory_equal(line, "xxxxxxxxxx", 10);
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_EOF);
	cm_lines_release(&r);
	close(fd);
	reap(pid);
}

static void test_wait_endless(void **state)
{
	/* input that is always readable and has no LF (/dev/zero): the
	 * deadline still holds, and the line is skipped as too long */
	struct cm_lines_wait w = {.timeout_ms = 100, .wake_fd = -1, .mask = NULL};
	struct cm_lines r;
	struct cm_err err;
	const char *line;
	size_t len;
	int64_t t0 = cm_mono_ms();

	assert_int_equal(cm_lines_open(&r, "/dev/zero", 1000, &err), 0);
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_TIMEOUT);
	assert_in_range(since(t0), 95, 1000);
	assert_int_equal(r.skipping, 1);
	assert_true(r.bytes > 1000);
	assert_true(r.cap <= 1000 + 2 + 256 * 1024);
	cm_lines_release(&r);
}

static void test_wait_buffered(void **state)
{
	/* lines already there come without a wait, even with timeout 0; blank
	 * lines, CRLF, long lines and EOF as for cm_lines_next */
	const char in[] = "a\r\n\n0123456789a\nb";
	int fd = feed(in, sizeof(in) - 1);
	struct cm_lines_wait w = {.timeout_ms = 0, .wake_fd = -1, .mask = NULL};
	struct cm_lines r;
	struct cm_err err;
	const char *line;
	size_t len;

	cm_lines_init_fd(&r, fd, "t", 10);
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_OK);
	assert_int_equal(len, 1);
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_LONG);
	assert_int_equal(r.lineno, 3);
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_OK);
	assert_int_equal(len, 1);
	assert_int_equal(line[0], 'b');
	assert_int_equal(r.no_newline, 1);
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_EOF);
	cm_lines_release(&r);
	close(fd);
}

static void test_wait_wake(void **state)
{
	const struct step in_steps[] = {{300, "late\n"}};
	const struct step wake_steps[] = {{50, "w"}};
	pid_t pin, pwake;
	int fd = writer(in_steps, 1, &pin);
	int wake = writer(wake_steps, 1, &pwake);
	struct cm_lines_wait w = {.timeout_ms = -1, .wake_fd = wake, .mask = NULL};
	struct cm_lines r;
	struct cm_err err;
	const char *line;
	size_t len;
	char c;
	int64_t t0 = cm_mono_ms();

	cm_lines_init_fd(&r, fd, "pipe", 100);
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_WAKE);
	assert_in_range(since(t0), 45, 250);
	/* the wake stays until its reader takes it */
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_WAKE);
	assert_int_equal(read(wake, &c, 1), 1);
	reap(pwake); /* then its end is closed: readable again (EOF) */
	w.wake_fd = -1;
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_OK);
	assert_int_equal(len, 4);
	assert_memory_equal(line, "late", 4);
	cm_lines_release(&r);
	close(fd);
	close(wake);
	reap(pin);
}

static volatile sig_atomic_t usr1;

static void on_usr1(int sig)
{
	(void)sig;
	usr1++;
}

/* Forks a helper that sends SIGUSR1 to this process after ms. */
static pid_t signal_after(int ms)
{
	pid_t parent = getpid(), pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		usleep((useconds_t)ms * 1000);
		kill(parent, SIGUSR1);
		_exit(0);
	}
	return pid;
}

static void test_wait_signal(void **state)
{
	/* as cm-store runs: the signal blocked but while waiting */
	const struct step steps[] = {{400, "x\n"}};
	struct sigaction sa, old_sa;
	sigset_t block, old, open;
	pid_t pid, killer;
	int fd = writer(steps, 1, &pid);
	struct cm_lines_wait w = {.timeout_ms = 3000, .wake_fd = -1, .mask = &open};
	struct cm_lines r;
	struct cm_err err;
	const char *line;
	size_t len;
	int64_t t0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1; /* no SA_RESTART */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, &old_sa);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &old);
	open = old;
	sigdelset(&open, SIGUSR1);
	usr1 = 0;

	cm_lines_init_fd(&r, fd, "pipe", 100);
	t0 = cm_mono_ms();
	killer = signal_after(50);
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_INTR);
	assert_in_range(since(t0), 40, 350);
	assert_int_equal(usr1, 1);
	reap(killer);
	/* a signal that came while blocked ends the next wait at once */
	kill(getpid(), SIGUSR1);
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_INTR);
	assert_int_equal(usr1, 2);
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_OK);
	assert_int_equal(len, 1);
	cm_lines_release(&r);
	close(fd);
	reap(pid);
	sigprocmask(SIG_SETMASK, &old, NULL);
	sigaction(SIGUSR1, &old_sa, NULL);
}

static void test_next_signal(void **state)
{
	/* the blocking read goes on after a signal */
	const struct step steps[] = {{150, "x\n"}};
	struct sigaction sa, old_sa;
	pid_t pid, killer;
	int fd = writer(steps, 1, &pid);
	struct cm_lines r;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1; /* no SA_RESTART: read returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, &old_sa);
	usr1 = 0;
	cm_lines_init_fd(&r, fd, "pipe", 100);
	killer = signal_after(50);
	expect_line(&r, "x", 1);
	assert_int_equal(usr1, 1);
	expect_eof(&r);
	cm_lines_release(&r);
	close(fd);
	reap(killer);
	reap(pid);
	sigaction(SIGUSR1, &old_sa, NULL);
}

/* Writes s to fd (a pipe the test holds both ends of). */
static void put(int fd, const char *s)
{
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

static void test_ready(void **state)
{
	int p[2];
	struct cm_lines r;
	struct cm_lines_wait w = {.timeout_ms = 0, .wake_fd = -1, .mask = NULL};
	struct cm_err err;
	const char *line;
	size_t len;

	assert_int_equal(pipe(p), 0);
	cm_lines_init_fd(&r, p[0], "pipe", 10);
	assert_int_equal(cm_lines_ready(&r, 0), 0);
	assert_int_equal(cm_lines_ready(&r, 1), 0);
	put(p[1], "x\n\n \r\npart");
	assert_int_equal(cm_lines_ready(&r, 0), 0); /* nothing read yet */
	assert_int_equal(cm_lines_ready(&r, 1), 1); /* but a read would not wait */
	expect_line(&r, "x", 1);
	/* blank lines, then part of a line: the next call would wait */
	assert_int_equal(cm_lines_ready(&r, 0), 0);
	assert_int_equal(cm_lines_ready(&r, 1), 0);
	put(p[1], "ial\n");
	assert_int_equal(cm_lines_ready(&r, 0), 0);
	assert_int_equal(cm_lines_ready(&r, 1), 1);
	expect_line(&r, "partial", 4);
	put(p[1], "a\nb\n");
	expect_line(&r, "a", 5);
	assert_int_equal(cm_lines_ready(&r, 0), 1);
	expect_line(&r, "b", 6);
	assert_int_equal(cm_lines_ready(&r, 0), 0);
	/* a long line being skipped: ready once its end is there */
	put(p[1], "0123456789abcdef");
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_TIMEOUT);
	assert_int_equal(r.skipping, 1);
	assert_int_equal(cm_lines_ready(&r, 0), 0);
	put(p[1], "gh");
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_TIMEOUT);
	assert_int_equal(cm_lines_ready(&r, 0), 0);
	put(p[1], "\n");
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_LONG);
	assert_int_equal(r.lineno, 7);
	/* the end of the input: a read does not wait, then EOF is known */
	close(p[1]);
	assert_int_equal(cm_lines_ready(&r, 0), 0);
	assert_int_equal(cm_lines_ready(&r, 1), 1);
	expect_eof(&r);
	assert_int_equal(cm_lines_ready(&r, 0), 1);
	cm_lines_release(&r);
	close(p[0]);
}

static void test_ready_after_compaction(void **state)
{
	/* the last LF's position follows the buffer when the unread part is
	 * moved to its front */
	int p[2];
	char block[60 * 1000 + 1];
	struct cm_lines r;
	struct cm_lines_wait w = {.timeout_ms = 0, .wake_fd = -1, .mask = NULL};
	struct cm_err err;
	const char *line;
	size_t len;
	unsigned long n = 0;

	for (int i = 0; i < 60; i++) {
		memset(block + i * 1000, 'a', 999);
		block[i * 1000 + 999] = '\n';
	}
	block[sizeof(block) - 1] = 0;
	assert_int_equal(pipe(p), 0);
	cm_lines_init_fd(&r, p[0], "pipe", 2000);
	for (int round = 0; round < 3; round++) {
		put(p[1], block);
		for (int i = 0; i < 60; i++) {
			assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_OK);
			assert_int_equal(len, 999);
			assert_int_equal(r.lineno, ++n);
		}
		assert_int_equal(cm_lines_ready(&r, 0), 0);
	}
	put(p[1], "partial");
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_TIMEOUT);
	assert_int_equal(r.end, 7); /* moved to the front for this read */
	assert_int_equal(cm_lines_ready(&r, 0), 0);
	put(p[1], "\n");
	assert_int_equal(cm_lines_next_wait(&r, &line, &len, &w, &err), CM_LINE_OK);
	assert_int_equal(len, 7);
	cm_lines_release(&r);
	close(p[0]);
	close(p[1]);
}

static void test_ready_long_buffered(void **state)
{
	/* a too-long line buffered whole, and a BOM before the first line */
	const char in[] = "\xEF\xBB\xBFok\n0123456789abc\nz";
	int fd = feed(in, sizeof(in) - 1);
	struct cm_lines r;
	struct cm_err err;
	const char *p, *line;
	size_t n, len;

	cm_lines_init_fd(&r, fd, "t", 10);
	assert_int_equal(cm_lines_peek(&r, 3, &p, &n, &err), 0);
	assert_int_equal(cm_lines_ready(&r, 0), 1);
	expect_line(&r, "ok", 1);
	assert_int_equal(cm_lines_ready(&r, 0), 1);
	assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_LONG);
	/* "z" without LF: whole only once the end is read */
	assert_int_equal(cm_lines_ready(&r, 0), 0);
	expect_line(&r, "z", 3);
	cm_lines_release(&r);
	close(fd);
}

static void test_peek_take(void **state)
{
	const char in[] = "\xEF\xBB\xBF \n{\"a\":1}\nx,y\n";
	int fd = feed(in, sizeof(in) - 1);
	struct cm_lines r;
	struct cm_err err;
	const char *p;
	size_t n;
	int eof;

	cm_lines_init_fd(&r, fd, "t", 100);
	assert_int_equal(cm_lines_peek(&r, 1, &p, &n, &err), 0);
	assert_int_equal(n, sizeof(in) - 4); /* all of it but the BOM */
	assert_memory_equal(p, " \n{", 3);
	/* a look consumes nothing */
	assert_int_equal(cm_lines_peek(&r, 2, &p, &n, &err), 0);
	assert_int_equal(n, sizeof(in) - 4);
	expect_line(&r, "{\"a\":1}", 2);
	cm_lines_take(&r, &p, &n, &eof);
	assert_int_equal(n, 4);
	assert_memory_equal(p, "x,y\n", 4);
	assert_int_equal(eof, 0);
	cm_lines_take(&r, &p, &n, &eof);
	assert_int_equal(n, 0);
	expect_eof(&r);
	cm_lines_take(&r, &p, &n, &eof);
	assert_int_equal(n, 0);
	assert_int_equal(eof, 1);
	cm_lines_release(&r);
	close(fd);
}

static void test_peek_small(void **state)
{
	struct cm_lines r;
	struct cm_err err;
	const char *p;
	size_t n;
	int fd = feed("ab", 2), eof;

	/* asking more than there is: all of it, and the end */
	cm_lines_init_fd(&r, fd, "t", 100);
	assert_int_equal(cm_lines_peek(&r, 100, &p, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(r.eof, 1);
	cm_lines_take(&r, &p, &n, &eof);
	assert_int_equal(n, 2);
	assert_memory_equal(p, "ab", 2);
	assert_int_equal(eof, 1);
	expect_eof(&r);
	cm_lines_release(&r);
	close(fd);
	/* empty input */
	fd = feed("", 0);
	cm_lines_init_fd(&r, fd, "t", 100);
	assert_int_equal(cm_lines_peek(&r, 1, &p, &n, &err), 0);
	assert_int_equal(n, 0);
	cm_lines_take(&r, &p, &n, &eof);
	assert_int_equal(n, 0);
	assert_int_equal(eof, 1);
	cm_lines_release(&r);
	close(fd);
}

static void test_peek_pipe_bound(void **state)
{
	/* a sniff over a slow pipe returns what came, a byte order mark
	 * split across writes dropped; a huge min is bounded */
	const struct step steps[] = {{0, "\xEF\xBB"}, {30, "\xBF  "}, {30, "\t{x"}, {30, "\n"}};
	pid_t pid;
	int fd = writer(steps, 4, &pid);
	struct cm_lines r;
	struct cm_err err;
	const char *p;
	size_t n;

	cm_lines_init_fd(&r, fd, "pipe", 100);
	assert_int_equal(cm_lines_peek(&r, 1, &p, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(p, "  ", 2);
	assert_int_equal(cm_lines_peek(&r, n + 1, &p, &n, &err), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(p, "  \t{x", 5);
	expect_line(&r, "  \t{x", 1);
	cm_lines_release(&r);
	close(fd);
	reap(pid);

	size_t big = 3 * CM_LINES_PEEK_MAX;
	char *in = malloc(big);

	memset(in, ' ', big);
	fd = feed(in, big);
	cm_lines_init_fd(&r, fd, "t", 100);
	assert_int_equal(cm_lines_peek(&r, SIZE_MAX, &p, &n, &err), 0);
	assert_true(n >= CM_LINES_PEEK_MAX);
	cm_lines_release(&r);
	close(fd);
	free(in);
}

static void test_out_pipe_closed(void **state)
{
	int p[2];
	struct cm_out o;

	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	cm_out_init(&o, p[1]);
	assert_int_equal(cm_out_write(&o, "abc", 3), 0); /* buffered */
	assert_int_equal(cm_out_flush(&o), -1);
	assert_int_equal(o.closed, 1);
	assert_int_equal(o.error, 0);
	assert_int_equal(cm_out_write(&o, "abc", 3), -1);
	assert_int_equal(cm_out_release(&o), -1);
	close(p[1]);
}

static void test_out_large(void **state)
{
	char path[] = "/tmp/cm-test-out.XXXXXX";
	int fd = mkstemp(path);
	struct cm_out o;
	char *big = malloc(1000000);
	char *back = malloc(1000001);

	unlink(path);
	memset(big, 'q', 1000000);
	cm_out_init(&o, fd);
	assert_int_equal(cm_out_write(&o, "head", 4), 0);
	assert_int_equal(cm_out_write(&o, big, 1000000), 0);
	assert_int_equal(cm_out_endrec(&o), 0);
	assert_int_equal(cm_out_release(&o), 0);
	assert_int_equal(lseek(fd, 0, SEEK_END), 1000005);
	lseek(fd, 4, SEEK_SET);
	assert_int_equal(read(fd, back, 1000001), 1000001);
	assert_memory_equal(back, big, 1000000);
	assert_int_equal(back[1000000], '\n');
	close(fd);
	free(big);
	free(back);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_basic),
	    cmocka_unit_test(test_blank_crlf),
	    cmocka_unit_test(test_nul),
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_bom),
	    cmocka_unit_test(test_bom_split),
	    cmocka_unit_test(test_long_lines),
	    cmocka_unit_test(test_long_edges),
	    cmocka_unit_test(test_chunk_edges),
	    cmocka_unit_test(test_many_lines),
	    cmocka_unit_test(test_open_missing),
	    cmocka_unit_test(test_read_error),
	    cmocka_unit_test(test_wait_timeout),
	    cmocka_unit_test(test_wait_trickle),
	    cmocka_unit_test(test_wait_endless),
	    cmocka_unit_test(test_wait_buffered),
	    cmocka_unit_test(test_wait_wake),
	    cmocka_unit_test(test_wait_signal),
	    cmocka_unit_test(test_next_signal),
	    cmocka_unit_test(test_ready),
	    cmocka_unit_test(test_ready_after_compaction),
	    cmocka_unit_test(test_ready_long_buffered),
	    cmocka_unit_test(test_peek_take),
	    cmocka_unit_test(test_peek_small),
	    cmocka_unit_test(test_peek_pipe_bound),
	    cmocka_unit_test(test_out_pipe_closed),
	    cmocka_unit_test(test_out_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
