/* Tests for apikey.c: the key's shape, its randomness, the stored hash and
 * name checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "apikey.h"

static void test_generate_shape(void **state)
{
	char a[CM_APIKEY_LEN + 1], b[CM_APIKEY_LEN + 1];

	assert_int_equal(cm_apikey_generate(a), 0);
	assert_int_equal(cm_apikey_generate(b), 0);
	assert_int_equal(strlen(a), CM_APIKEY_LEN);
	assert_memory_equal(a, "cmk_", 4);
	assert_true(cm_apikey_valid(a, strlen(a)));
	assert_true(cm_apikey_valid(b, strlen(b)));
	assert_string_not_equal(a, b);
}

static void test_valid(void **state)
{
	const char *good = "cmk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-";
	char bad[CM_APIKEY_LEN + 1];

	assert_true(cm_apikey_valid(good, strlen(good)));
	assert_false(cm_apikey_valid(good, strlen(good) - 1));
	assert_false(cm_apikey_valid("cmk_", 4));
	assert_false(cm_apikey_valid("", 0));
	memcpy(bad, good, sizeof(bad));
	bad[10] = '+'; /* standard base64, not base64url */
	assert_false(cm_apikey_valid(bad, strlen(bad)));
	memcpy(bad, good, sizeof(bad));
	bad[0] = 'C';
	assert_false(cm_apikey_valid(bad, strlen(bad)));
	memcpy(bad, good, sizeof(bad));
	bad[20] = '=';
	assert_false(cm_apikey_valid(bad, strlen(bad)));
}

static void test_hash(void **state)
{
	uint8_t h[CM_APIKEY_HASH_BYTES];
	char hex[2 * CM_APIKEY_HASH_BYTES + 1];

	/* BLAKE2b-256("abc"), RFC 7693 test vector family. */
	cm_apikey_hash("abc", 3, h);
	cm_apikey_hex(h, hex);
	assert_string_equal(hex,
	                    "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
}

static void test_names(void **state)
{
	char longname[CM_APIKEY_NAME_MAX + 2];

	assert_true(cm_apikey_name_ok("shop", 4));
	assert_true(cm_apikey_name_ok("ünïcode name", strlen("ünïcode name")));
	assert_false(cm_apikey_name_ok("", 0));
	assert_false(cm_apikey_name_ok("a\tb", 3));
	assert_false(cm_apikey_name_ok("a\x7f", 2));
	memset(longname, 'x', sizeof(longname));
	assert_true(cm_apikey_name_ok(longname, CM_APIKEY_NAME_MAX));
	assert_false(cm_apikey_name_ok(longname, CM_APIKEY_NAME_MAX + 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_generate_shape),
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_hash),
	    cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
