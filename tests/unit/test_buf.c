/* Tests for buf.c and err.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "buf.h"
#include "err.h"

static void test_append(void **state)
{
	struct cm_buf b;

	cm_buf_init(&b, 0);
	assert_int_equal(cm_buf_adds(&b, "abc"), 0);
	assert_int_equal(cm_buf_addc(&b, '-'), 0);
	assert_int_equal(cm_buf_addf(&b, "%d/%s", 42, "x"), 0);
	assert_int_equal(cm_buf_add_i64(&b, -9223372036854775807LL - 1), 0);
	assert_string_equal(b.data, "abc-42/x-9223372036854775808");
	cm_buf_reset(&b);
	assert_int_equal(b.len, 0);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(cm_buf_addc(&b, 'z'), 0);
	assert_int_equal(b.len, 10000);
	assert_int_equal(b.data[10000], 0);
	cm_buf_release(&b);
	assert_null(b.data);
}

static void test_cap(void **state)
{
	struct cm_buf b;

	cm_buf_init(&b, 8);
	assert_int_equal(cm_buf_adds(&b, "12345678"), 0);
	assert_int_equal(cm_buf_addc(&b, '9'), -1);
	assert_int_equal(cm_buf_adds(&b, "x"), -1);
	assert_int_equal(b.len, 8);
	cm_buf_release(&b);
}

static void test_jstr(void **state)
{
	struct cm_buf b = CM_BUF_INIT;
	const char in[] = "a\"b\\c\n\t\x01\x1f/\xc3\xa9";

	assert_int_equal(cm_buf_add_jstr(&b, in, sizeof(in) - 1), 0);
	assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\t\\u0001\\u001f/\xc3\xa9\"");
	cm_buf_reset(&b);
	assert_int_equal(cm_buf_add_jstr(&b, "", 0), 0);
	assert_string_equal(b.data, "\"\"");
	cm_buf_release(&b);
}

static void test_err(void **state)
{
	struct cm_err err;

	assert_int_equal(cm_errf(&err, "field '%s': bad", "x"), -1);
	assert_int_equal(cm_err_prefix(&err, "line %d: ", 4), -1);
	assert_string_equal(err.msg, "line 4: field 'x': bad");
	assert_int_equal(cm_errf(NULL, "ignored"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_append),
	    cmocka_unit_test(test_cap),
	    cmocka_unit_test(test_jstr),
	    cmocka_unit_test(test_err),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
