/* Tests for num.c: checked option numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "num.h"

static void test_i64(void **state)
{
	int64_t v;

	assert_int_equal(cm_parse_i64("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(cm_parse_i64("-5", -10, 10, &v), 0);
	assert_int_equal(v, -5);
	assert_int_equal(cm_parse_i64("101", 0, 100, &v), -1);
	assert_int_equal(cm_parse_i64("4x", 0, 100, &v), -1);
	assert_int_equal(cm_parse_i64("", 0, 100, &v), -1);
	assert_int_equal(cm_parse_i64(" 4", 0, 100, &v), -1);
	assert_int_equal(cm_parse_i64("99999999999999999999", 0, INT64_MAX, &v), -1);
}

static void test_size(void **state)
{
	size_t v;

	assert_int_equal(cm_parse_size("1M", 1, SIZE_MAX, &v), 0);
	assert_int_equal(v, 1048576);
	assert_int_equal(cm_parse_size("64k", 1, SIZE_MAX, &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(cm_parse_size("2GB", 1, SIZE_MAX, &v), 0);
	assert_int_equal(v, 2147483648ULL);
	assert_int_equal(cm_parse_size("100", 1, SIZE_MAX, &v), 0);
	assert_int_equal(v, 100);
	assert_int_equal(cm_parse_size("0", 1, SIZE_MAX, &v), -1);
	assert_int_equal(cm_parse_size("1T", 1, SIZE_MAX, &v), -1);
	assert_int_equal(cm_parse_size("-1", 1, SIZE_MAX, &v), -1);
	assert_int_equal(cm_parse_size("M", 1, SIZE_MAX, &v), -1);
	assert_int_equal(cm_parse_size("2G", 1, 1024, &v), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_i64),
	    cmocka_unit_test(test_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
