/* Tests for form.c: urlencoded and multipart fields as curl and requests
 * send them, malformed bodies and other content types. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "form.h"

static int get(const char *ctype, const char *body, const char *name, char *out, size_t size)
{
	return cm_form_get(ctype, body, strlen(body), name, out, size);
}

static void test_urlencoded(void **state)
{
	const char *ct = "application/x-www-form-urlencoded";
	char out[64];

	assert_int_equal(get(ct, "grant_type=password&username=alice&password=p%40ss+w", "password",
	                     out, sizeof(out)),
	                 CM_FORM_FOUND);
	assert_string_equal(out, "p@ss w");
	assert_int_equal(get(ct, "username=alice", "password", out, sizeof(out)), CM_FORM_ABSENT);
	assert_int_equal(get("Application/X-WWW-Form-Urlencoded; charset=utf-8", "username=bob",
	                     "username", out, sizeof(out)),
	                 CM_FORM_FOUND);
	assert_string_equal(out, "bob");
	assert_int_equal(get(ct, "password=a%00b", "password", out, sizeof(out)), CM_FORM_BAD);
	assert_int_equal(get(ct, "password=abcdef", "password", out, 4), CM_FORM_TOO_LONG);
}

static void test_multipart(void **state)
{
	const char *ct = "multipart/form-data; boundary=------------------------abc123";
	const char *body = "--------------------------abc123\r\n"
	                   "Content-Disposition: form-data; name=\"username\"\r\n\r\n"
	                   "alice\r\n"
	                   "--------------------------abc123\r\n"
	                   "Content-Disposition: form-data; name=\"password\"\r\n"
	                   "Content-Type: text/plain\r\n\r\n"
	                   "s3cret\r\nwith a line\r\n"
	                   "--------------------------abc123--\r\n";
	char out[64];

	assert_int_equal(get(ct, body, "username", out, sizeof(out)), CM_FORM_FOUND);
	assert_string_equal(out, "alice");
	assert_int_equal(get(ct, body, "password", out, sizeof(out)), CM_FORM_FOUND);
	assert_string_equal(out, "s3cret\r\nwith a line");
	assert_int_equal(get(ct, body, "grant_type", out, sizeof(out)), CM_FORM_ABSENT);
	/* a quoted boundary */
	assert_int_equal(get("multipart/form-data; boundary=\"------------------------abc123\"",
	                     body, "username", out, sizeof(out)),
	                 CM_FORM_FOUND);
	/* no boundary, a missing delimiter, a truncated body */
	assert_int_equal(get("multipart/form-data", body, "username", out, sizeof(out)),
	                 CM_FORM_BAD);
	assert_int_equal(
	    get("multipart/form-data; boundary=zzz", body, "username", out, sizeof(out)),
	    CM_FORM_BAD);
	assert_int_equal(cm_form_get(ct, body, 90, "password", out, sizeof(out)), CM_FORM_BAD);
	/* name= inside another parameter does not count */
	assert_int_equal(get("multipart/form-data; boundary=b",
	                     "--b\r\nContent-Disposition: form-data; filename=\"x\"; "
	                     "xname=\"username\"\r\n\r\nv\r\n--b--",
	                     "username", out, sizeof(out)),
	                 CM_FORM_ABSENT);
}

static void test_other_types(void **state)
{
	char out[64];

	assert_int_equal(
	    get("application/json", "{\"username\":\"a\"}", "username", out, sizeof(out)),
	    CM_FORM_ABSENT);
	assert_int_equal(cm_form_get(NULL, "username=a", 10, "username", out, sizeof(out)),
	                 CM_FORM_ABSENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_urlencoded),
	    cmocka_unit_test(test_multipart),
	    cmocka_unit_test(test_other_types),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
