/* Tests for pg.c: the parts that need no server (COPY escaping, error
 * positions, conninfo handling, finding and ordering migrations). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "pg.h"
#include "timefmt.h"

static void test_copy_escape(void **state)
{
	struct cm_buf b = CM_BUF_INIT;
	const char in[] = "a\\b\tc\nd\re\x01 \xc3\xa9";

	assert_int_equal(cm_pg_copy_escape(&b, in, sizeof(in) - 1), 0);
	assert_string_equal(b.data, "a\\\\b\\tc\\nd\\re\x01 \xc3\xa9");
	/* Appends; empty input adds nothing; runs at both ends. */
	assert_int_equal(cm_pg_copy_escape(&b, "", 0), 0);
	assert_int_equal(cm_pg_copy_escape(&b, "\\\\", 2), 0);
	assert_int_equal(cm_pg_copy_escape(&b, "plain", 5), 0);
	assert_string_equal(b.data + b.len - 9, "\\\\\\\\plain");
	cm_buf_release(&b);

	/* A cap that the escaped text would pass fails, leaving b as it was. */
	cm_buf_init(&b, 8);
	assert_int_equal(cm_pg_copy_escape(&b, "abcd", 4), 0);
	assert_int_equal(cm_pg_copy_escape(&b, "\t\t\t", 3), -1);
	assert_int_equal(b.len, 4);
	cm_buf_release(&b);
}

static void test_pos_line(void **state)
{
	const char sql[] = "CREATE TABLE a (x int);\n\n-- \xc3\xa9\xc3\xa9\nSELEC 1;\n";
	size_t n = sizeof(sql) - 1;

	assert_int_equal(cm_pg_pos_line(sql, n, 1), 1);
	assert_int_equal(cm_pg_pos_line(sql, n, 23), 1);
	assert_int_equal(cm_pg_pos_line(sql, n, 24), 1); /* the LF itself */
	assert_int_equal(cm_pg_pos_line(sql, n, 25), 2);
	/* Characters, not bytes: "é" is one position. Line 3 is "-- éé". */
	assert_int_equal(cm_pg_pos_line(sql, n, 26), 3);
	assert_int_equal(cm_pg_pos_line(sql, n, 32), 4); /* the S of SELEC */
	assert_int_equal(cm_pg_pos_line(sql, n, 1000), 5);
}

static void test_conninfo(void **state)
{
	struct cm_err err;

	setenv("CM_DATABASE_URL", "dbname=fromenv", 1);
	assert_string_equal(cm_pg_conninfo("dbname=opt"), "dbname=opt");
	assert_string_equal(cm_pg_conninfo(NULL), "dbname=fromenv");
	unsetenv("CM_DATABASE_URL");
	assert_string_equal(cm_pg_conninfo(NULL), "");

	assert_int_equal(cm_pg_conninfo_check("", &err), 0);
	assert_int_equal(cm_pg_conninfo_check("host=/tmp port=5 dbname=cm", &err), 0);
	assert_int_equal(cm_pg_conninfo_check("postgresql://u@h:5/cm?sslmode=disable", &err), 0);
	assert_int_equal(cm_pg_conninfo_check("host=/tmp bogus=1", &err), -1);
	assert_non_null(strstr(err.msg, "invalid connection option \"bogus\""));
	assert_int_equal(cm_pg_conninfo_check("host='unterminated", &err), -1);
	assert_int_equal(cm_pg_conninfo_check("postgresql://h/x?nosuch=1", &err), -1);
}

static void test_unreachable(void **state)
{
	struct cm_err err;
	int64_t t0 = cm_time_now();
	PGconn *c;

	c = cm_pg_connect("host=/nonexistent port=1", &err);
	assert_null(c);
	assert_non_null(strstr(err.msg, "cannot connect to PostgreSQL: "));
	assert_null(strchr(err.msg, '\n'));
	/* A retry budget of 150 ms: a few attempts, then a clear give-up. */
	c = cm_pg_connect_retry("host=/nonexistent port=1", 150, NULL, &err);
	assert_null(c);
	assert_true(cm_time_now() - t0 >= 150);
	assert_true(cm_time_now() - t0 < 3000);
	assert_non_null(strstr(err.msg, "gave up after 0.1 s: cannot connect"));
	assert_int_equal(cm_pg_classify(NULL, NULL), CM_PG_RETRY);
}

/* writef DIR NAME TEXT: writes a file for the migration tests. */
static void writef(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_migrations_load(void **state)
{
	char dir[] = "/tmp/cm-test-pg.XXXXXX";
	struct cm_pg_migrations m;
	struct cm_err err;

	assert_non_null(mkdtemp(dir));
	writef(dir, "10_c.sql", "SELECT 3;");
	writef(dir, "9_b.sql", "SELECT 2;");
	writef(dir, "001_a.sql", "SELECT 1;");
	writef(dir, "README", "not a migration");
	writef(dir, "x_1.sql", "no number");
	writef(dir, "12.sql", "no underscore");
	writef(dir, "13_d.sql.orig", "wrong suffix");
	assert_int_equal(cm_pg_migrations_load(&m, dir, &err), 0);
	assert_int_equal(m.n, 3);
	assert_string_equal(m.v[0].file, "001_a.sql");
	assert_string_equal(m.v[0].version, "001");
	assert_string_equal(m.v[1].file, "9_b.sql");
	assert_string_equal(m.v[2].file, "10_c.sql");
	assert_int_equal(strlen(m.v[0].checksum), 64);
	assert_string_not_equal(m.v[0].checksum, m.v[1].checksum);
	assert_int_equal(m.v[0].applied, 0);
	cm_pg_migrations_release(&m);

	/* One number twice ("1" is "001") is an error, not a silent choice. */
	writef(dir, "1_again.sql", "SELECT 1;");
	assert_int_equal(cm_pg_migrations_load(&m, dir, &err), -1);
	assert_non_null(strstr(err.msg, "same version"));
	assert_int_equal(m.n, 0);
	cm_pg_migrations_release(&m);

	assert_int_equal(cm_pg_migrations_load(&m, "/nonexistent/dir", &err), -1);
	assert_non_null(strstr(err.msg, "/nonexistent/dir"));

	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_sql_dir(void **state)
{
	char out[4096];
	struct cm_err err;

	unsetenv("CM_SQL_DIR");
	assert_int_equal(cm_pg_sql_dir("/tmp", out, sizeof(out), &err), 0);
	assert_string_equal(out, "/tmp");
	assert_int_equal(cm_pg_sql_dir("/nonexistent", out, sizeof(out), &err), -1);
	assert_non_null(strstr(err.msg, "--dir"));
	setenv("CM_SQL_DIR", "/", 1);
	assert_int_equal(cm_pg_sql_dir(NULL, out, sizeof(out), &err), 0);
	assert_string_equal(out, "/");
	/* The option beats the environment. */
	assert_int_equal(cm_pg_sql_dir("/tmp", out, sizeof(out), &err), 0);
	assert_string_equal(out, "/tmp");
	setenv("CM_SQL_DIR", "/nonexistent", 1);
	assert_int_equal(cm_pg_sql_dir(NULL, out, sizeof(out), &err), -1);
	assert_non_null(strstr(err.msg, "CM_SQL_DIR"));
	assert_int_equal(cm_pg_sql_dir("/tmp", out, 3, &err), -1);
	unsetenv("CM_SQL_DIR");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_copy_escape),     cmocka_unit_test(test_pos_line),
	    cmocka_unit_test(test_conninfo),        cmocka_unit_test(test_unreachable),
	    cmocka_unit_test(test_migrations_load), cmocka_unit_test(test_sql_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
