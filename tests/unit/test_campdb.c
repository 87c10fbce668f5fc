/* Tests for campdb.c: building a set from database rows skips each bad
 * campaign and keeps the others. (The LISTEN/NOTIFY reload is tested against
 * a real server in tests/cm-match-db.bats.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "campdb.h"
#include "err.h"
#include "json.h"
#include "rule.h"

static char reported[4096];

static void report(void *ctx, const char *msg)
{
	(void)ctx;
	strncat(reported, msg, sizeof(reported) - strlen(reported) - 2);
	strcat(reported, "\n");
}

/* The ids that the set matches for an event of type t with amount a. */
static size_t match(struct cm_ruleset *s, const char *t, int a, const int64_t **ids)
{
	static char line[256];
	static struct cm_jdoc d;
	static struct cm_buf scratch;
	struct cm_rule_event ev;
	struct cm_err err;

	snprintf(line, sizeof(line),
	         "{\"event_id\":\"e1\",\"event_type\":\"%s\",\"user_id\":\"u1\","
	         "\"occurred_at\":\"2026-11-27T10:00:00Z\",\"properties\":{\"amount\":%d}}",
	         t, a);
	cm_jdoc_release(&d);
	cm_jdoc_init(&d, 0);
	assert_int_equal(cm_json_parse(&d, line, strlen(line), &err), 0);
	cm_buf_release(&scratch);
	assert_int_equal(cm_rule_event_init(&ev, &d, &scratch, &err), 0);
	size_t n = cm_ruleset_match(s, &ev, ids);

	return n;
}

static void release_statics(void)
{
	const int64_t *ids;
	struct cm_ruleset *s = cm_campdb_build("[]", 2, "t", NULL, NULL, &(size_t){0});

	match(s, "x", 0, &ids);
	cm_ruleset_free(s);
}

#define CAMP(id, extra)                                                                            \
	"{\"id\":" #id ",\"name\":\"c" #id "\",\"status\":\"active\",\"starts_at\":null,"          \
	"\"ends_at\":null,\"rule\":{\"event_type\":\"purchase\"" extra "}}"

static void test_all_good(void **state)
{
	const char *json = "[" CAMP(1, "") "," CAMP(
	    2, ",\"where\":{\"field\":\"properties.amount\",\"op\":\"gte\",\"value\":100}") "]";
	size_t skipped = 9;
	const int64_t *ids;
	struct cm_ruleset *s;

	reported[0] = 0;
	s = cm_campdb_build(json, strlen(json), "database", report, NULL, &skipped);
	assert_non_null(s);
	assert_int_equal(skipped, 0);
	assert_string_equal(reported, "");
	assert_int_equal(match(s, "purchase", 150, &ids), 2);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 2);
	assert_int_equal(match(s, "purchase", 50, &ids), 1);
	assert_int_equal(match(s, "refund", 150, &ids), 0);
	cm_ruleset_free(s);
}

static void test_bad_rule_skipped(void **state)
{
	const char *json = "[" CAMP(1, "") "," CAMP(
	    2, ",\"where\":{\"field\":\"properties.amount\",\"op\":\"gte2\",\"value\":1}") "]";
	size_t skipped = 0;
	const int64_t *ids;
	struct cm_ruleset *s;

	reported[0] = 0;
	s = cm_campdb_build(json, strlen(json), "database", report, NULL, &skipped);
	assert_non_null(s);
	assert_int_equal(skipped, 1);
	assert_non_null(strstr(reported, "campaign 2"));
	assert_non_null(strstr(reported, "gte2"));
	assert_int_equal(match(s, "purchase", 150, &ids), 1);
	assert_int_equal(ids[0], 1);
	cm_ruleset_free(s);
}

static void test_bad_jq_skipped(void **state)
{
	const char *json = "[" CAMP(1, ",\"jq\":\".properties.amount > 10\"") "," CAMP(
	    2, ",\"jq\":\".properties.amount >\"") "," CAMP(3, "") "]";
	size_t skipped = 0;
	const int64_t *ids;
	struct cm_ruleset *s;

	reported[0] = 0;
	s = cm_campdb_build(json, strlen(json), "database", report, NULL, &skipped);
	assert_non_null(s);
	assert_int_equal(skipped, 1);
	assert_non_null(strstr(reported, "campaign 2"));
	assert_int_equal(match(s, "purchase", 150, &ids), 2);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 3);
	cm_ruleset_free(s);
}

static void test_not_array(void **state)
{
	size_t skipped = 0;
	const int64_t *ids;
	struct cm_ruleset *s;

	reported[0] = 0;
	s = cm_campdb_build("{}", 2, "database", report, NULL, &skipped);
	assert_non_null(s);
	assert_non_null(strstr(reported, "not a JSON array"));
	assert_int_equal(match(s, "purchase", 150, &ids), 0);
	cm_ruleset_free(s);
	release_statics();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_all_good),
	    cmocka_unit_test(test_bad_rule_skipped),
	    cmocka_unit_test(test_bad_jq_skipped),
	    cmocka_unit_test(test_not_array),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
