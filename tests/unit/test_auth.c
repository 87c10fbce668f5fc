/* Tests for auth.c: the Authorization header's forms, the token cache
 * (which must never outlive exp nor accept another secret's tokens), and
 * the key cache. The database functions are tested against a real
 * PostgreSQL in tests/cm-httpd.bats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "auth.h"
#include "buf.h"
#include "err.h"

static const char S1[] = "first-secret-first-secret-first-secret";
static const char S2[] = "other-secret-other-secret-other-secret";

static struct cm_auth *make(const char *secret)
{
	struct cm_auth_opts o = {secret, strlen(secret), 1800, 10000};
	struct cm_err err;
	struct cm_auth *a = cm_auth_new(&o, &err);

	assert_non_null(a);
	return a;
}

static void test_bearer(void **state)
{
	const char *cred;
	size_t n;

	assert_int_equal(cm_auth_bearer(NULL, &cred, &n), CM_AUTH_MISSING);
	assert_int_equal(cm_auth_bearer("", &cred, &n), CM_AUTH_MISSING);
	assert_int_equal(cm_auth_bearer("Basic YWxpY2U6cHc=", &cred, &n), CM_AUTH_MISSING);
	assert_int_equal(cm_auth_bearer("Bearer", &cred, &n), CM_AUTH_MISSING);
	assert_int_equal(cm_auth_bearer("Bearerx abc", &cred, &n), CM_AUTH_MISSING);
	assert_int_equal(cm_auth_bearer("Bearer abc.def.ghi", &cred, &n), CM_AUTH_TOKEN);
	assert_int_equal(n, 11);
	assert_memory_equal(cred, "abc.def.ghi", n);
	assert_int_equal(cm_auth_bearer("bEaReR  abc ", &cred, &n), CM_AUTH_TOKEN);
	assert_int_equal(n, 3);
	assert_int_equal(cm_auth_bearer("Bearer ", &cred, &n), CM_AUTH_TOKEN);
	assert_int_equal(n, 0);
	assert_int_equal(cm_auth_bearer("Bearer cmk_abc", &cred, &n), CM_AUTH_KEY);
	assert_memory_equal(cred, "cmk_abc", n);
}

static void test_token_cache(void **state)
{
	struct cm_auth *a = make(S1), *b = make(S2);
	struct cm_buf tok = CM_BUF_INIT;
	struct cm_jwt_claims c;
	struct cm_err err;

	assert_int_equal(cm_auth_issue(a, "alice", "admin", 1000, &tok, &err), 0);
	assert_int_equal(cm_auth_verify(a, tok.data, tok.len, 1001, &c, &err), 0);
	assert_string_equal(c.sub, "alice");
	assert_int_equal(c.exp, 2800);
	/* again, from the cache */
	memset(&c, 0, sizeof(c));
	assert_int_equal(cm_auth_verify(a, tok.data, tok.len, 1002, &c, &err), 0);
	assert_string_equal(c.role, "admin");
	/* another secret's instance does not take it from this thread's cache */
	assert_int_equal(cm_auth_verify(b, tok.data, tok.len, 1002, &c, &err), -1);
	/* the cache never outlives exp */
	assert_int_equal(cm_auth_verify(a, tok.data, tok.len, 2800, &c, &err), -1);
	assert_non_null(strstr(err.msg, "expired"));
	assert_int_equal(cm_auth_verify(a, tok.data, tok.len, 2000, &c, &err), 0);
	/* a token one byte longer is another token */
	cm_buf_addc(&tok, 'x');
	assert_int_equal(cm_auth_verify(a, tok.data, tok.len, 1002, &c, &err), -1);
	cm_buf_release(&tok);
	cm_auth_free(a);
	cm_auth_free(b);
}

static void test_key_cache(void **state)
{
	struct cm_auth *a = make(S1);
	uint8_t h1[CM_APIKEY_HASH_BYTES], h2[CM_APIKEY_HASH_BYTES];
	char name[CM_APIKEY_NAME_MAX + 1];

	cm_apikey_hash("cmk_one", 7, h1);
	cm_apikey_hash("cmk_two", 7, h2);
	assert_int_equal(cm_auth_key_cached(a, h1, 0, name, sizeof(name)), -1);
	cm_auth_key_remember(a, h1, "shop", 0);
	cm_auth_key_remember(a, h2, NULL, 0);
	assert_int_equal(cm_auth_key_cached(a, h1, 9999, name, sizeof(name)), 1);
	assert_string_equal(name, "shop");
	assert_int_equal(cm_auth_key_cached(a, h2, 9999, name, sizeof(name)), 0);
	/* forgotten after key_ttl_ms */
	assert_int_equal(cm_auth_key_cached(a, h1, 10000, name, sizeof(name)), -1);
	assert_int_equal(cm_auth_key_cached(a, h2, 10000, name, sizeof(name)), -1);
	cm_auth_free(a);
}

static void test_short_secret(void **state)
{
	struct cm_auth_opts o = {"short", 5, 1800, 10000};
	struct cm_err err;

	assert_null(cm_auth_new(&o, &err));
	assert_non_null(strstr(err.msg, "shorter than 32"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bearer),
	    cmocka_unit_test(test_token_cache),
	    cmocka_unit_test(test_key_cache),
	    cmocka_unit_test(test_short_secret),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
