/* Tests for detail.c: validator paths become FastAPI locations, messages
 * split into path and text, and the 422 body is FastAPI's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "buf.h"
#include "detail.h"

static void loc_is(const char *path, const char *want)
{
	struct cm_buf b = CM_BUF_INIT;

	assert_int_equal(cm_buf_adds(&b, "\"body\""), 0);
	assert_int_equal(cm_detail_path_loc(&b, path, strlen(path)), 0);
	assert_string_equal(b.data, want);
	cm_buf_release(&b);
}

static void test_path_loc(void **state)
{
	loc_is("rule.where.all[1].op", "\"body\",\"rule\",\"where\",\"all\",1,\"op\"");
	loc_is("name", "\"body\",\"name\"");
	loc_is("rule.event_type[0]", "\"body\",\"rule\",\"event_type\",0");
	loc_is("properties.items[2].note", "\"body\",\"properties\",\"items\",2,\"note\"");
	loc_is("rule.where.not.any[10][3]", "\"body\",\"rule\",\"where\",\"not\",\"any\",10,3");
	loc_is("", "\"body\"");
}

static void test_split(void **state)
{
	const char *text, *path;
	size_t n;

	n = cm_detail_split_path("rule.where.all[1].op: unknown operator \"x\"", &text);
	assert_int_equal(n, strlen("rule.where.all[1].op"));
	assert_string_equal(text, "unknown operator \"x\"");
	n = cm_detail_split_path("invalid JSON: byte 3: oops", &text);
	assert_int_equal(n, 0);
	assert_string_equal(text, "invalid JSON: byte 3: oops");
	n = cm_detail_split_path("name: missing", &text);
	assert_int_equal(n, 4);
	n = cm_detail_split_field("field 'occurred_at': expected an RFC 3339 time, got \"x\"",
	                          &path, &text);
	assert_int_equal(n, strlen("occurred_at"));
	assert_memory_equal(path, "occurred_at", n);
	assert_string_equal(text, "expected an RFC 3339 time, got \"x\"");
	n = cm_detail_split_field("unknown key 'foo'", &path, &text);
	assert_int_equal(n, 0);
	assert_null(path);
	assert_string_equal(text, "unknown key 'foo'");
}

static void test_422(void **state)
{
	struct cm_buf b = CM_BUF_INIT;

	assert_int_equal(
	    cm_detail_422(&b, "\"body\",3,\"occurred_at\"", "bad \"time\"", "value_error"), 0);
	assert_string_equal(b.data, "{\"detail\":[{\"loc\":[\"body\",3,\"occurred_at\"],\"msg\":"
	                            "\"bad \\\"time\\\"\",\"type\":\"value_error\"}]}");
	cm_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_path_loc),
	    cmocka_unit_test(test_split),
	    cmocka_unit_test(test_422),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
