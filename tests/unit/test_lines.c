/* Tests for lines.c (bounded line reader) and out.c (record output). */
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
#include <unistd.h>

#include "err.h"
#include "lines.h"
#include "out.h"

/* A pipe whose read end holds exactly the given bytes, then EOF. */
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

static void test_basic(void **state)
{
	const char in[] = "a\r\n\nbc\nlast";
	int fd = feed(in, sizeof(in) - 1);
	struct cm_lines r;
	struct cm_err err;
	const char *line;
	size_t len;

	cm_lines_init_fd(&r, fd, "t", 100);
	expect_line(&r, "a", 1);
	expect_line(&r, "", 2);
	expect_line(&r, "bc", 3);
	assert_int_equal(r.no_newline, 0);
	expect_line(&r, "last", 4);
	assert_int_equal(r.no_newline, 1);
	assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_EOF);
	assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_EOF);
	cm_lines_release(&r);
	close(fd);
}

static void test_empty(void **state)
{
	int fd = feed("", 0);
	struct cm_lines r;
	struct cm_err err;
	const char *line;
	size_t len;

	cm_lines_init_fd(&r, fd, "t", 100);
	assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_EOF);
	cm_lines_release(&r);
	close(fd);
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
	memset(in + n, 'z', max + 1), n += max + 1; /* too long, at EOF */
	int fd = feed(in, n);

	cm_lines_init_fd(&r, fd, "t", max);
	expect_line(&r, "ok1", 1);
	assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_OK);
	assert_int_equal(len, max);
	assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_LONG);
	assert_int_equal(r.lineno, 3);
	expect_line(&r, "ok2", 4);
	assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_LONG);
	assert_int_equal(r.lineno, 5);
	assert_int_equal(cm_lines_next(&r, &line, &len, &err), CM_LINE_EOF);
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
	assert_non_null(strstr(err.msg, "/nonexistent/x: cannot open"));
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
	    cmocka_unit_test(test_basic),        cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_long_lines),   cmocka_unit_test(test_many_lines),
	    cmocka_unit_test(test_open_missing), cmocka_unit_test(test_out_pipe_closed),
	    cmocka_unit_test(test_out_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
