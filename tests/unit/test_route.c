/* Tests for route.c: templates, 404/405/307, raw parameters, decoding and
 * query strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "route.h"

static const struct cm_route routes[] = {
    {"POST", "/auth/token", 0, NULL},
    {"GET", "/campaigns", 0, NULL},
    {"POST", "/campaigns", 0, NULL},
    {"GET", "/campaigns/{id}", 0, NULL},
    {"PATCH", "/campaigns/{id}", 0, NULL},
    {"DELETE", "/campaigns/{id}", 0, NULL},
    {"GET", "/campaigns/{id}/matches", 0, NULL},
    {"GET", "/events/{event_id}", 0, NULL},
    {"GET", "/a/{x}/b/{y}", 0, NULL},
    {"GET", "/", 0, NULL},
};
#define N (sizeof(routes) / sizeof(routes[0]))

static struct cm_route_match find(const char *method, const char *path)
{
	struct cm_route_match m;

	cm_route_find(routes, N, method, path, strlen(path), &m);
	return m;
}

static void test_match(void **state)
{
	struct cm_route_match m = find("GET", "/campaigns");

	assert_int_equal(m.status, 0);
	assert_int_equal(m.index, 1);
	assert_int_equal(m.nparams, 0);
	m = find("POST", "/campaigns");
	assert_int_equal(m.index, 2);
	m = find("PATCH", "/campaigns/17");
	assert_int_equal(m.index, 4);
	assert_int_equal(m.nparams, 1);
	assert_int_equal(m.param[0].n, 2);
	assert_memory_equal(m.param[0].p, "17", 2);
	m = find("GET", "/campaigns/17/matches");
	assert_int_equal(m.index, 6);
	m = find("GET", "/a/1/b/22");
	assert_int_equal(m.index, 8);
	assert_int_equal(m.nparams, 2);
	assert_memory_equal(m.param[1].p, "22", 2);
	m = find("GET", "/");
	assert_int_equal(m.index, 9);
	/* an encoded slash stays inside its parameter */
	m = find("GET", "/events/a%2Fb");
	assert_int_equal(m.index, 7);
	assert_int_equal(m.param[0].n, 5);
}

static void test_not_found(void **state)
{
	static const char *const paths[] = {
	    "/nope",     "/campaigns/1/2", "/campaignsx",
	    "/campaign", "//campaigns",    "/campaigns//matches",
	    "",          "campaigns",      "/events/",
	    "/events",   "/a/1/b/",        "http://h/campaigns",
	};
	size_t i;

	for (i = 0; i < sizeof(paths) / sizeof(*paths); i++) {
		struct cm_route_match m = find("GET", paths[i]);

		if (m.status != 404 && !(m.status == 307))
			fail_msg("%s: status %d", paths[i], m.status);
		assert_int_equal(m.index, -1);
	}
}

static void test_method_not_allowed(void **state)
{
	struct cm_route_match m = find("PUT", "/campaigns/5");

	assert_int_equal(m.status, 405);
	assert_int_equal(m.index, -1);
	assert_string_equal(m.allow, "GET, HEAD, PATCH, DELETE");
	m = find("GET", "/auth/token");
	assert_int_equal(m.status, 405);
	assert_string_equal(m.allow, "POST");
	m = find("DELETE", "/campaigns");
	assert_string_equal(m.allow, "GET, HEAD, POST");
	/* HEAD is answered by the GET route */
	m = find("HEAD", "/campaigns");
	assert_int_equal(m.status, 0);
	assert_int_equal(m.index, 1);
	m = find("HEAD", "/auth/token");
	assert_int_equal(m.status, 405);
}

static void test_trailing_slash(void **state)
{
	struct cm_route_match m = find("GET", "/campaigns/");

	assert_int_equal(m.status, 307);
	m = find("POST", "/campaigns/7/");
	assert_int_equal(m.status, 307);
	m = find("GET", "/nope/");
	assert_int_equal(m.status, 404);
}

static void test_decode(void **state)
{
	char out[64];
	int nul;

	assert_int_equal(cm_url_decode("a%2Fb", 5, out, 0, &nul), 3);
	assert_string_equal(out, "a/b");
	assert_false(nul);
	assert_int_equal(cm_url_decode("a+b%20c", 7, out, 1, NULL), 5);
	assert_string_equal(out, "a b c");
	assert_int_equal(cm_url_decode("a+b", 3, out, 0, NULL), 3);
	assert_string_equal(out, "a+b");
	/* invalid and truncated escapes stay */
	assert_int_equal(cm_url_decode("%zz%4", 5, out, 0, NULL), 5);
	assert_string_equal(out, "%zz%4");
	assert_int_equal(cm_url_decode("%", 1, out, 0, NULL), 1);
	assert_int_equal(cm_url_decode("x%00y", 5, out, 0, &nul), 3);
	assert_true(nul);
	assert_int_equal(cm_url_decode("%C3%BC", 6, out, 0, NULL), 2);
	assert_string_equal(out, "\xc3\xbc");
}

static void test_query(void **state)
{
	const char *q = "status=active&limit=10&x&offset=%32%30&s=a+b&status=paused";
	char out[16];

	assert_int_equal(cm_query_get(q, strlen(q), "status", out, sizeof(out)), 1);
	assert_string_equal(out, "active");
	assert_int_equal(cm_query_get(q, strlen(q), "limit", out, sizeof(out)), 1);
	assert_string_equal(out, "10");
	assert_int_equal(cm_query_get(q, strlen(q), "offset", out, sizeof(out)), 1);
	assert_string_equal(out, "20");
	assert_int_equal(cm_query_get(q, strlen(q), "x", out, sizeof(out)), 1);
	assert_string_equal(out, "");
	assert_int_equal(cm_query_get(q, strlen(q), "s", out, sizeof(out)), 1);
	assert_string_equal(out, "a b");
	assert_int_equal(cm_query_get(q, strlen(q), "stat", out, sizeof(out)), 0);
	assert_int_equal(cm_query_get(q, strlen(q), "nope", out, sizeof(out)), 0);
	assert_int_equal(cm_query_get(q, strlen(q), "status", out, 4), -1);
	assert_int_equal(cm_query_get("", 0, "a", out, sizeof(out)), 0);
	assert_int_equal(cm_query_get("a=x%00y", 7, "a", out, sizeof(out)), -2);
	assert_int_equal(cm_query_get("&&=&a=1", 7, "a", out, sizeof(out)), 1);
	assert_string_equal(out, "1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_match),
	    cmocka_unit_test(test_not_found),
	    cmocka_unit_test(test_method_not_allowed),
	    cmocka_unit_test(test_trailing_slash),
	    cmocka_unit_test(test_decode),
	    cmocka_unit_test(test_query),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
