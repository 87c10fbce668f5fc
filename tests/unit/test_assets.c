/* Tests for assets.c and the generated table: lookup by URL path and its
 * aliases, listing, content types, ETags, and that the embedded
 * /openapi.json is a JSON document naming OpenAPI 3.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "assets.h"
#include "err.h"
#include "json.h"

static void test_find(void **state)
{
	const struct cm_asset *a;

	a = cm_asset_find("/openapi.json");
	assert_non_null(a);
	assert_string_equal(a->name, "/openapi.json");
	assert_string_equal(a->content_type, "application/json");
	assert_true(a->len > 1000);
	assert_int_equal(a->data[a->len], 0); /* NUL after the content */

	a = cm_asset_find("/docs");
	assert_non_null(a);
	assert_string_equal(a->content_type, "text/html; charset=utf-8");
	assert_ptr_equal(cm_asset_find("/docs/"), a);
	assert_ptr_equal(cm_asset_find("/docs/index.html"), a);
	assert_non_null(strstr((const char *)a->data, "/docs/docs.js"));

	a = cm_asset_find("/docs/docs.js");
	assert_non_null(a);
	assert_string_equal(a->content_type, "text/javascript; charset=utf-8");
	a = cm_asset_find("/docs/docs.css");
	assert_non_null(a);
	assert_string_equal(a->content_type, "text/css; charset=utf-8");

	/* Exact paths only. */
	assert_null(cm_asset_find("/openapi.json?x=1"));
	assert_null(cm_asset_find("/docs/docs.js/"));
	assert_null(cm_asset_find("/docs//"));
	assert_null(cm_asset_find("openapi.json"));
	assert_null(cm_asset_find("/"));
	assert_null(cm_asset_find(""));
	assert_null(cm_asset_find("/docs/../openapi.json"));
	assert_null(cm_asset_find(NULL));
}

static void test_listing(void **state)
{
	const struct cm_asset *a, *prev = NULL;
	size_t i;

	for (i = 0; (a = cm_asset_at(i)) != NULL; i++) {
		size_t n = strlen(a->etag);

		/* Sorted, each found by its own name, with a quoted ETag. */
		if (prev)
			assert_true(strcmp(prev->name, a->name) < 0);
		assert_ptr_equal(cm_asset_find(a->name), a);
		assert_true(n > 2 && a->etag[0] == '"' && a->etag[n - 1] == '"');
		assert_int_equal(strlen((const char *)a->data), a->len);
		prev = a;
	}
	assert_int_equal(i, 4);
	assert_string_not_equal(cm_asset_find("/docs")->etag, cm_asset_find("/docs/docs.js")->etag);
}

static void test_openapi_document(void **state)
{
	const struct cm_asset *a = cm_asset_find("/openapi.json");
	struct cm_jdoc d;
	struct cm_err err;
	uint32_t info, v;

	cm_jdoc_init(&d, 0);
	assert_int_equal(cm_json_parse(&d, (const char *)a->data, a->len, &err), 0);
	v = cm_json_get(&d, 0, "openapi", 7);
	assert_true(cm_json_str_eq(&d, v, "3.1.0", 5));
	/* (tests/openapi.bats checks that info.version is the program's.) */
	info = cm_json_get(&d, 0, "info", 4);
	assert_int_not_equal(cm_json_get(&d, info, "version", 7), CM_JNONE);
	assert_int_not_equal(cm_json_get(&d, 0, "paths", 5), CM_JNONE);
	cm_jdoc_release(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_find),
	    cmocka_unit_test(test_listing),
	    cmocka_unit_test(test_openapi_document),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
