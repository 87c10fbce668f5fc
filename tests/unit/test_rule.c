/* test_rule.c - the rule language: every operator and its edge cases, every
 * validation rule with its path, windows, event checks, jq predicates, and
 * the indexes against a brute-force evaluator on random campaigns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "json.h"
#include "rule.h"
#include "timefmt.h"

/* ---- helpers ---- */

/* Problems reported by a load, one per line. */
struct probs {
	int n;
	struct cm_buf text;
};

static void collect(void *ctx, const char *msg)
{
	struct probs *p = ctx;

	p->n++;
	cm_buf_adds(&p->text, msg);
	cm_buf_addc(&p->text, '\n');
}

/* Loads and compiles text; returns the set (problems in *p, which the
 * caller releases). */
static struct cm_ruleset *load(const char *text, struct probs *p)
{
	struct cm_ruleset *s = cm_ruleset_new();
	int a, b;

	assert_non_null(s);
	memset(p, 0, sizeof(*p));
	cm_buf_init(&p->text, 0);
	cm_buf_adds(&p->text, "");
	a = cm_ruleset_load(s, text, strlen(text), "c.json", collect, p);
	b = cm_ruleset_compile(s, collect, p);
	assert_true(a >= 0);
	assert_int_equal(b, p->n);
	return s;
}

/* Loads text that must be valid. */
static struct cm_ruleset *load_ok(const char *text)
{
	struct probs p;
	struct cm_ruleset *s = load(text, &p);

	if (p.n)
		fail_msg("unexpected problems:\n%s", p.text.data);
	cm_buf_release(&p.text);
	return s;
}

/* Loads text that must have problems and checks that every expected
 * substring appears in the messages; returns the number of problems. */
static int load_bad(const char *text, const char *const *expect)
{
	struct probs p;
	struct cm_ruleset *s = load(text, &p);
	int n = p.n;

	for (; expect && *expect; expect++)
		if (!strstr(p.text.data, *expect))
			fail_msg("expected \"%s\" in:\n%s", *expect, p.text.data);
	if (n == 0)
		fail_msg("no problem reported for %s", text);
	cm_buf_release(&p.text);
	cm_ruleset_free(s);
	return n;
}

#define BAD(text, ...)                                                                             \
	do {                                                                                       \
		static const char *const e_[] = {__VA_ARGS__, NULL};                               \
		load_bad(text, e_);                                                                \
	} while (0)

/* Matches an event text; fills ids (up to max) and returns their number,
 * or -1 when the event itself is invalid. */
static int match(struct cm_ruleset *s, const char *event, int64_t *ids, size_t max)
{
	struct cm_jdoc d;
	struct cm_buf scratch;
	struct cm_rule_event ev;
	struct cm_err err;
	const int64_t *got;
	size_t n;

	cm_jdoc_init(&d, 64);
	cm_buf_init(&scratch, 0);
	if (cm_json_parse(&d, event, strlen(event), &err) < 0)
		fail_msg("bad test event %s: %s", event, err.msg);
	if (cm_rule_event_init(&ev, &d, &scratch, &err) < 0) {
		cm_jdoc_release(&d);
		cm_buf_release(&scratch);
		return -1;
	}
	n = cm_ruleset_match(s, &ev, &got);
	for (size_t i = 0; i < n && i < max; i++)
		ids[i] = got[i];
	cm_jdoc_release(&d);
	cm_buf_release(&scratch);
	return (int)n;
}

/* match with a profile: prof is the traits object text, or NULL. */
static int match_prof(struct cm_ruleset *s, const char *event, const char *prof, int64_t *ids,
                      size_t max)
{
	struct cm_jdoc d, pd;
	struct cm_buf scratch;
	struct cm_rule_event ev;
	struct cm_err err;
	const int64_t *got;
	size_t n;

	cm_jdoc_init(&d, 64);
	cm_jdoc_init(&pd, 64);
	cm_buf_init(&scratch, 0);
	if (cm_json_parse(&d, event, strlen(event), &err) < 0)
		fail_msg("bad test event %s: %s", event, err.msg);
	if (prof && cm_json_parse(&pd, prof, strlen(prof), &err) < 0)
		fail_msg("bad test profile %s: %s", prof, err.msg);
	assert_int_equal(cm_rule_event_init(&ev, &d, &scratch, &err), 0);
	assert_null(ev.profile);
	ev.profile = prof ? &pd : NULL;
	n = cm_ruleset_match(s, &ev, &got);
	for (size_t i = 0; i < n && i < max; i++)
		ids[i] = got[i];
	cm_jdoc_release(&d);
	cm_jdoc_release(&pd);
	cm_buf_release(&scratch);
	return (int)n;
}

/* Does the single condition where hold on an event whose extra members
 * are members ("properties":{...} and so on; "properties":{} when members
 * has none)? */
static int holds(const char *where, const char *members)
{
	char camp[4096], event[4096];
	struct cm_ruleset *s;
	int64_t ids[4];
	int n;

	snprintf(camp, sizeof(camp),
	         "[{\"id\":1,\"name\":\"t\",\"status\":\"active\",\"rule\":{\"where\":%s}}]",
	         where);
	snprintf(event, sizeof(event),
	         "{\"event_id\":\"e\",\"event_type\":\"t\",\"user_id\":\"u\","
	         "\"occurred_at\":\"2026-01-01T00:00:00Z\",%s}",
	         *members ? members : "\"properties\":{}");
	s = load_ok(camp);
	n = match(s, event, ids, 4);
	cm_ruleset_free(s);
	assert_true(n == 0 || n == 1);
	return n;
}

/* A leaf on properties.x with the given op and value text. */
static int leaf(const char *op, const char *value, const char *x)
{
	char where[1024], members[1024];

	if (value)
		snprintf(where, sizeof(where),
		         "{\"field\":\"properties.x\",\"op\":\"%s\",\"value\":%s}", op, value);
	else
		snprintf(where, sizeof(where), "{\"field\":\"properties.x\",\"op\":\"%s\"}", op);
	if (x)
		snprintf(members, sizeof(members), "\"properties\":{\"x\":%s}", x);
	else
		snprintf(members, sizeof(members), "\"properties\":{}");
	return holds(where, members);
}

#define YES(op, v, x) assert_int_equal(leaf(op, v, x), 1)
#define NO(op, v, x)  assert_int_equal(leaf(op, v, x), 0)

/* ---- operators ---- */

static void test_eq(void **state)
{
	(void)state;
	YES("eq", "100", "100");
	YES("eq", "100", "100.0");
	YES("eq", "100", "1e2");
	YES("eq", "100.0", "100");
	NO("eq", "100", "101");
	NO("eq", "100", "\"100\"");
	NO("eq", "100", NULL);
	NO("eq", "100", "null");
	YES("eq", "0", "-0");
	YES("eq", "-0", "0");
	YES("eq", "1e400", "1e400");
	NO("eq", "1e400", "1e308");
	YES("eq", "\"\\u00e9\"", "\"é\"");
	YES("eq", "\"é\"", "\"\\u00e9\"");
	YES("eq", "\"a\\\"b\"", "\"a\\u0022b\"");
	NO("eq", "\"é\"", "\"e\"");
	YES("eq", "true", "true");
	NO("eq", "true", "false");
	NO("eq", "true", "1");
	YES("eq", "false", "false");
	YES("eq", "[1,\"x\"]", "[1.0,\"x\"]");
	NO("eq", "[1,\"x\"]", "[\"x\",1]");
	YES("eq", "{\"k\":1,\"j\":2}", "{\"j\":2,\"k\":1.0}");
	NO("eq", "{\"k\":1}", "{\"k\":1,\"j\":2}");
	NO("eq", "{\"k\":1}", "[1]");
	YES("eq", "\"\"", "\"\"");
}

static void test_ne(void **state)
{
	(void)state;
	YES("ne", "100", "101");
	NO("ne", "100", "100.0");
	NO("ne", "100", "\"x\"");
	NO("ne", "100", NULL);
	NO("ne", "100", "null");
	YES("ne", "\"a\"", "\"b\"");
	NO("ne", "\"\\u00e9\"", "\"é\"");
	YES("ne", "true", "false");
	YES("ne", "[1]", "[2]");
	NO("ne", "[1]", "{\"a\":1}");
}

static void test_order(void **state)
{
	(void)state;
	YES("gte", "100", "100");
	NO("gte", "100", "99.99");
	YES("gte", "100", "1e400");
	NO("gt", "100", "100");
	YES("gt", "100", "100.5");
	YES("lt", "100", "-0");
	YES("lte", "0", "-0");
	NO("lt", "0", "-0");
	YES("lt", "-1e300", "-1e400");
	NO("lt", "100", "\"5\"");
	NO("gt", "1", "true");
	NO("gt", "1", NULL);
	NO("gt", "1", "null");
	YES("lt", "\"b\"", "\"a\"");
	NO("lt", "\"b\"", "\"b\"");
	YES("lte", "\"b\"", "\"b\"");
	YES("lt", "\"b\"", "\"ab\"");
	YES("gt", "\"a\"", "\"ab\"");
	NO("gt", "\"a\"", "\"a\"");
	YES("gte", "\"a\"", "\"a\"");
	NO("lt", "\"5\"", "4");
	/* Bytewise: 'é' (0xC3 0xA9) sorts after 'z'. */
	YES("gt", "\"z\"", "\"é\"");
	YES("gt", "\"z\"", "\"\\u00e9\"");
}

static void test_in(void **state)
{
	(void)state;
	YES("in", "[\"DE\",\"AT\"]", "\"DE\"");
	YES("in", "[\"DE\",\"AT\"]", "\"AT\"");
	NO("in", "[\"DE\",\"AT\"]", "\"FR\"");
	NO("in", "[\"DE\",\"AT\"]", NULL);
	NO("in", "[\"DE\",\"AT\"]", "null");
	NO("in", "[\"1\"]", "1");
	YES("in", "[1,2]", "1.0");
	YES("in", "[2,1,3,1]", "1");
	NO("in", "[1,2]", "\"1\"");
	NO("in", "[]", "\"x\"");
	NO("in", "[]", NULL);
	YES("in", "[[1],{\"a\":1}]", "[1]");
	YES("in", "[[1],{\"a\":1}]", "{\"a\":1.0}");
	NO("in", "[[1],{\"a\":1}]", "[2]");
	YES("in", "[true]", "true");
	NO("in", "[true]", "false");
	YES("in", "[\"\\u00e9\",\"x\"]", "\"é\"");
	YES("in", "[0]", "-0");
}

static void test_not_in(void **state)
{
	(void)state;
	YES("not_in", "[\"DE\"]", "\"FR\"");
	NO("not_in", "[\"DE\"]", "\"DE\"");
	NO("not_in", "[\"DE\"]", "1");
	NO("not_in", "[\"DE\"]", NULL);
	NO("not_in", "[\"DE\"]", "null");
	YES("not_in", "[]", "\"x\"");
	YES("not_in", "[]", "[1]");
	NO("not_in", "[]", NULL);
	YES("not_in", "[\"DE\",1]", "2");
	NO("not_in", "[\"DE\",1]", "1.0");
	NO("not_in", "[\"DE\",1]", "\"DE\"");
	YES("not_in", "[\"DE\",1]", "\"AT\"");
	NO("not_in", "[\"DE\",1]", "true");
	YES("not_in", "[[1]]", "[2]");
	NO("not_in", "[[1]]", "{\"a\":1}");
	YES("not_in", "[false]", "true");
}

static void test_contains(void **state)
{
	(void)state;
	YES("contains", "\"ell\"", "\"hello\"");
	NO("contains", "\"ell\"", "\"help\"");
	YES("contains", "\"\"", "\"abc\"");
	YES("contains", "\"é\"", "\"caf\\u00e9\"");
	YES("contains", "\"\\u00e9\"", "\"café\"");
	YES("contains", "\"x\"", "[1,\"x\"]");
	YES("contains", "1.0", "[1,\"x\"]");
	NO("contains", "\"y\"", "[1,\"x\"]");
	NO("contains", "\"1\"", "[1]");
	YES("contains", "[1]", "[[1],2]");
	YES("contains", "{\"a\":1}", "[{\"a\":1}]");
	NO("contains", "\"x\"", "{\"x\":1}");
	NO("contains", "\"5\"", "5");
	NO("contains", "5", "\"5\"");
	NO("contains", "\"x\"", NULL);
	NO("contains", "\"x\"", "[]");
}

static void test_starts_with(void **state)
{
	(void)state;
	YES("starts_with", "\"SKU-\"", "\"SKU-1\"");
	YES("starts_with", "\"SKU-\"", "\"SKU-\"");
	NO("starts_with", "\"SKU-\"", "\"SK\"");
	NO("starts_with", "\"SKU-\"", "\"xSKU-1\"");
	NO("starts_with", "\"1\"", "12");
	YES("starts_with", "\"é\"", "\"\\u00e9t\\u00e9\"");
	YES("starts_with", "\"\"", "\"anything\"");
	NO("starts_with", "\"\"", "1");
	YES("starts_with", "\"https://www.facebook.com/\"", "\"https://www.facebook.com/x\"");
	NO("starts_with", "\"https://www.facebook.com/\"", "\"https://www.facebook.co\"");
	NO("starts_with", "\"a\"", NULL);
}

static void test_exists(void **state)
{
	(void)state;
	YES("exists", NULL, "1");
	YES("exists", NULL, "false");
	YES("exists", NULL, "\"\"");
	YES("exists", NULL, "[]");
	NO("exists", NULL, "null");
	NO("exists", NULL, NULL);
	NO("not_exists", NULL, "1");
	NO("not_exists", NULL, "{}");
	YES("not_exists", NULL, "null");
	YES("not_exists", NULL, NULL);
	/* The parent missing or not an object is "missing" too. */
	assert_int_equal(holds("{\"field\":\"properties.a.b\",\"op\":\"not_exists\"}",
	                       "\"properties\":{\"a\":5}"),
	                 1);
	assert_int_equal(holds("{\"field\":\"properties.a.b\",\"op\":\"not_exists\"}", ""), 1);
}

static void test_matches(void **state)
{
	(void)state;
	YES("matches", "\"^u-4\"", "\"u-42\"");
	NO("matches", "\"^u-4\"", "\"u-14\"");
	YES("matches", "\"4\"", "\"u-14\"");
	NO("matches", "\"4\"", "4");
	NO("matches", "\"4\"", NULL);
	YES("matches", "\"^caf.$\"", "\"café\"");
	YES("matches", "\"^caf.$\"", "\"caf\\u00e9\"");
	YES("matches", "\"(?i)^ABC\"", "\"abcdef\"");
	YES("matches", "\"\\\\d{3}\"", "\"a123\"");
	NO("matches", "\"\\\\d{3}\"", "\"a12\"");
}

static void test_trees(void **state)
{
	char where[8192];
	size_t n = 0;

	(void)state;
	assert_int_equal(holds("{\"all\":[]}", ""), 1);
	assert_int_equal(holds("{\"any\":[]}", ""), 0);
	assert_int_equal(holds("{\"not\":{\"all\":[]}}", ""), 0);
	assert_int_equal(holds("{\"not\":{\"any\":[]}}", ""), 1);
	assert_int_equal(holds("{\"not\":{\"field\":\"properties.x\",\"op\":\"eq\",\"value\":1}}",
	                       "\"properties\":{}"),
	                 1);
	assert_int_equal(holds("{\"any\":[{\"field\":\"properties.x\",\"op\":\"eq\",\"value\":1},"
	                       "{\"all\":[{\"field\":\"properties.y\",\"op\":\"gt\",\"value\":2},"
	                       "{\"not\":{\"field\":\"properties.z\",\"op\":\"exists\"}}]}]}",
	                       "\"properties\":{\"x\":2,\"y\":3}"),
	                 1);
	assert_int_equal(holds("{\"any\":[{\"field\":\"properties.x\",\"op\":\"eq\",\"value\":1},"
	                       "{\"all\":[{\"field\":\"properties.y\",\"op\":\"gt\",\"value\":2},"
	                       "{\"not\":{\"field\":\"properties.z\",\"op\":\"exists\"}}]}]}",
	                       "\"properties\":{\"x\":2,\"y\":3,\"z\":0}"),
	                 0);
	/* 64 levels are allowed: 63 nots around a leaf. */
	for (int i = 0; i < 63; i++)
		n += (size_t)snprintf(where + n, sizeof(where) - n, "{\"not\":");
	n += (size_t)snprintf(where + n, sizeof(where) - n,
	                      "{\"field\":\"user_id\",\"op\":\"eq\",\"value\":\"u\"}");
	for (int i = 0; i < 63; i++)
		n += (size_t)snprintf(where + n, sizeof(where) - n, "}");
	assert_int_equal(holds(where, ""), 0);
	/* Paths: top level, nested, array indexes. */
	assert_int_equal(holds("{\"field\":\"user_id\",\"op\":\"eq\",\"value\":\"u\"}", ""), 1);
	assert_int_equal(
	    holds("{\"field\":\"properties.items.1.sku\",\"op\":\"eq\",\"value\":\"b\"}",
	          "\"properties\":{\"items\":[{\"sku\":\"a\"},{\"sku\":\"b\"}]}"),
	    1);
	assert_int_equal(holds("{\"field\":\"properties.items.2.sku\",\"op\":\"exists\"}",
	                       "\"properties\":{\"items\":[{\"sku\":\"a\"},{\"sku\":\"b\"}]}"),
	                 0);
	assert_int_equal(holds("{\"field\":\"properties.m.0\",\"op\":\"eq\",\"value\":7}",
	                       "\"properties\":{\"m\":{\"0\":7}}"),
	                 1);
	assert_int_equal(holds("{\"field\":\"properties.cart.total\",\"op\":\"gte\",\"value\":10}",
	                       "\"properties\":{\"cart\":{\"total\":10}}"),
	                 1);
	/* A repeated key: the last one counts, as in jq. */
	assert_int_equal(holds("{\"field\":\"properties.x\",\"op\":\"eq\",\"value\":2}",
	                       "\"properties\":{\"x\":1,\"x\":2}"),
	                 1);
	/* An escaped member name is the same name. */
	assert_int_equal(holds("{\"field\":\"properties.x\",\"op\":\"eq\",\"value\":1}",
	                       "\"properties\":{\"\\u0078\":1}"),
	                 1);
}

/* ---- validation ---- */

#define CAMP(rest) "[{\"id\":7,\"name\":\"n\",\"status\":\"active\"," rest "}]"

static void test_validation(void **state)
{
	char big[1024];

	(void)state;
	BAD(CAMP("\"rule\":{\"wehre\":{}}"), "c.json:1: campaign 7: rule.wehre: unknown key");
	BAD(CAMP("\"rule\":{\"where\":{\"all\":[{\"field\":\"a\",\"op\":\"eq\",\"value\":1},"
	         "{\"field\":\"b\",\"op\":\"gte2\",\"value\":1}]}}"),
	    "campaign 7: rule.where.all[1].op: unknown operator \"gte2\" (expected one of eq ne lt "
	    "lte gt gte in not_in contains starts_with exists not_exists matches)");
	BAD("[{\"name\":\"n\",\"status\":\"active\",\"rule\":{}}]", "campaign #1: id: missing");
	BAD("[{\"id\":0,\"name\":\"n\",\"status\":\"active\",\"rule\":{}}]",
	    "campaign #1: id: expected an integer from 1 to 9007199254740992");
	BAD("[{\"id\":9007199254740993,\"name\":\"n\",\"status\":\"active\",\"rule\":{}}]",
	    "campaign #1: id:");
	BAD("[{\"id\":1.5,\"name\":\"n\",\"status\":\"active\",\"rule\":{}}]", "campaign #1: id:");
	BAD("[{\"id\":\"7\",\"name\":\"n\",\"status\":\"active\",\"rule\":{}}]",
	    "campaign #1: id:");
	BAD("[{\"id\":-3,\"name\":\"n\",\"status\":\"active\",\"rule\":{}}]", "campaign #1: id:");
	BAD("[{\"id\":7,\"status\":\"active\",\"rule\":{}}]", "campaign 7: name: missing");
	BAD("[{\"id\":7,\"name\":\"\",\"status\":\"active\",\"rule\":{}}]", "campaign 7: name:");
	BAD("[{\"id\":7,\"name\":3,\"status\":\"active\",\"rule\":{}}]", "campaign 7: name:");
	memset(big, 'a', 201);
	big[201] = 0;
	{
		char text[2048];

		snprintf(text, sizeof(text),
		         "[{\"id\":7,\"name\":\"%s\",\"status\":\"active\",\"rule\":{}}]", big);
		BAD(text, "campaign 7: name: expected a string of 1 to 200 bytes, not 201 bytes");
		big[200] = 0;
		snprintf(text, sizeof(text),
		         "[{\"id\":7,\"name\":\"%s\",\"status\":\"active\",\"rule\":{}}]", big);
		cm_ruleset_free(load_ok(text));
	}
	BAD("[{\"id\":7,\"name\":\"n\",\"rule\":{}}]", "campaign 7: status: missing");
	BAD("[{\"id\":7,\"name\":\"n\",\"status\":\"on\",\"rule\":{}}]",
	    "campaign 7: status: \"on\" is not a status");
	BAD(CAMP("\"starts_at\":\"2026-13-01T00:00:00Z\",\"rule\":{}"),
	    "campaign 7: starts_at: \"2026-13-01T00:00:00Z\" is not an RFC 3339 time");
	BAD(CAMP("\"ends_at\":5,\"rule\":{}"), "campaign 7: ends_at: expected null or an RFC 3339");
	BAD(CAMP("\"starts_at\":\"2026-01-02T00:00:00Z\",\"ends_at\":\"2026-01-01T00:00:00Z\","
	         "\"rule\":{}"),
	    "campaign 7: ends_at: must be after starts_at");
	BAD(CAMP("\"starts_at\":\"2026-01-01T00:00:00Z\",\"ends_at\":\"2026-01-01T01:00:00+01:00\","
	         "\"rule\":{}"),
	    "campaign 7: ends_at: must be after starts_at");
	BAD("[{\"id\":7,\"name\":\"n\",\"status\":\"active\"}]", "campaign 7: rule: missing");
	BAD(CAMP("\"rule\":[]"), "campaign 7: rule: expected an object");
	BAD(CAMP("\"rule\":{\"event_type\":[]}"), "campaign 7: rule.event_type: empty array");
	BAD(CAMP("\"rule\":{\"event_type\":[\"ok\",\"bad type\"]}"),
	    "campaign 7: rule.event_type[1]: invalid event type \"bad type\"");
	BAD(CAMP("\"rule\":{\"event_type\":"
	         "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}"),
	    "campaign 7: rule.event_type: invalid event type");
	BAD(CAMP("\"rule\":{\"event_type\":[1]}"),
	    "rule.event_type[0]: expected an event type string");
	BAD(CAMP("\"rule\":{\"event_type\":{}}"), "rule.event_type: expected a string or an array");
	BAD(CAMP("\"rule\":{\"where\":{\"all\":[],\"any\":[]}}"),
	    "campaign 7: rule.where: a condition is exactly one of");
	BAD(CAMP("\"rule\":{\"where\":{\"all\":[],\"field\":\"a\"}}"), "rule.where: a condition");
	BAD(CAMP("\"rule\":{\"where\":{}}"), "rule.where: a condition is exactly one of");
	BAD(CAMP("\"rule\":{\"where\":{\"all\":[],\"nope\":1}}"), "rule.where.nope: unknown key");
	BAD(CAMP("\"rule\":{\"where\":{\"all\":{}}}"), "rule.where.all: expected an array");
	BAD(CAMP("\"rule\":{\"where\":{\"not\":[]}}"),
	    "rule.where.not: expected a condition object");
	BAD(CAMP("\"rule\":{\"where\":[]}"), "rule.where: expected a condition object");
	BAD(CAMP("\"rule\":{\"where\":{\"op\":\"eq\",\"value\":1}}"), "rule.where.field: missing");
	BAD(CAMP("\"rule\":{\"where\":{\"field\":\"a\",\"value\":1}}"), "rule.where.op: missing");
	BAD(CAMP("\"rule\":{\"where\":{\"field\":\"a\",\"op\":1,\"value\":1}}"),
	    "rule.where.op: expected a string");
	BAD(CAMP("\"rule\":{\"where\":{\"field\":5,\"op\":\"eq\",\"value\":1}}"),
	    "rule.where.field: expected a string");
	BAD(CAMP("\"rule\":{\"where\":{\"field\":\"a\",\"op\":\"eq\"}}"),
	    "rule.where.value: missing (operator eq needs a value)");
	BAD(CAMP("\"rule\":{\"where\":{\"field\":\"a\",\"op\":\"eq\",\"value\":null}}"),
	    "rule.where.value: null means missing: use exists/not_exists");
	BAD(CAMP("\"rule\":{\"where\":{\"field\":\"a\",\"op\":\"ne\",\"value\":null}}"),
	    "rule.where.value: null means missing");
	BAD(CAMP("\"rule\":{\"where\":{\"field\":\"a\",\"op\":\"exists\",\"value\":1}}"),
	    "rule.where.value: not allowed with exists");
	BAD(CAMP("\"rule\":{\"where\":{\"field\":\"a\",\"op\":\"not_exists\",\"value\":null}}"),
	    "rule.where.value: not allowed with not_exists");
	BAD(CAMP("\"rule\":{\"where\":{\"field\":\"a\",\"op\":\"in\",\"value\":\"DE\"}}"),
	    "rule.where.value: expected an array for in, not a string");
	BAD(CAMP("\"rule\":{\"where\":{\"field\":\"a\",\"op\":\"not_in\",\"value\":[1,null]}}"),
	    "rule.where.value[1]: null means missing");
	BAD(CAMP("\"rule\":{\"where\":{\"field\":\"a\",\"op\":\"lt\",\"value\":true}}"),
	    "rule.where.value: expected a number or a string for lt, not a boolean");
	BAD(CAMP("\"rule\":{\"where\":{\"field\":\"a\",\"op\":\"gte\",\"value\":[1]}}"),
	    "rule.where.value: expected a number or a string for gte");
	BAD(CAMP("\"rule\":{\"where\":{\"field\":\"a\",\"op\":\"starts_with\",\"value\":5}}"),
	    "rule.where.value: expected a string for starts_with");
	BAD(CAMP("\"rule\":{\"where\":{\"field\":\"a\",\"op\":\"matches\",\"value\":5}}"),
	    "rule.where.value: expected a string for matches");
	BAD(CAMP("\"rule\":{\"where\":{\"field\":\"a\",\"op\":\"matches\",\"value\":\"a(b\"}}"),
	    "rule.where.value: invalid regular expression at offset 3: missing closing "
	    "parenthesis");
	BAD(CAMP("\"rule\":{\"where\":{\"field\":\"a..b\",\"op\":\"exists\"}}"),
	    "rule.where.field: empty segment in path \"a..b\"");
	BAD(CAMP("\"rule\":{\"where\":{\"field\":\".a\",\"op\":\"exists\"}}"),
	    "rule.where.field: empty segment");
	BAD(CAMP("\"rule\":{\"where\":{\"field\":\"a.\",\"op\":\"exists\"}}"),
	    "rule.where.field: empty segment");
	BAD(CAMP("\"rule\":{\"where\":{\"field\":\"\",\"op\":\"exists\"}}"),
	    "rule.where.field: empty path");
	BAD(CAMP("\"rule\":{\"jq\":\".a ~ b\"}"),
	    "campaign 7: rule.jq: does not compile: syntax error");
	BAD(CAMP("\"rule\":{\"jq\":\"nosuch(1)\"}"),
	    "campaign 7: rule.jq: does not compile: nosuch/1 is not defined");
	BAD(CAMP("\"rule\":{\"jq\":\"1)) else ((2\"}"), "campaign 7: rule.jq: unbalanced ')'");
	BAD(CAMP("\"rule\":{\"jq\":5}"), "campaign 7: rule.jq: expected a jq expression string");
	BAD(CAMP("\"rule\":{\"jq\":\"\"}"), "campaign 7: rule.jq: empty jq expression");
	BAD("[5]", "campaign #1: expected a campaign object, not a number");
	/* Texts quoted from the input cannot break a message over lines. */
	BAD(CAMP("\"rule\":{\"where\":{\"field\":\"a\",\"op\":\"\\ne\",\"value\":1}}"),
	    "rule.where.op: unknown operator \"?e\"");
	BAD("{\"id\":1}\n", "c.json:1: campaign 1: name: missing");
	BAD("\"x\"",
	    "c.json:1: expected a JSON array of campaigns or one campaign object per line");
	BAD("[{\"id\":1,\n\"name\":}]", "c.json:2: invalid JSON: byte");
	BAD("{\"id\":1,\"name\":\"a\",\"status\":\"active\",\"rule\":{}}\n\n{bad\n",
	    "c.json:3: invalid JSON");
	/* Nulls stand for absent optional parts. */
	cm_ruleset_free(load_ok(CAMP("\"starts_at\":null,\"ends_at\":null,"
	                             "\"rule\":{\"event_type\":null,\"where\":null,\"jq\":null}")));
	/* Extra top-level keys are allowed. */
	cm_ruleset_free(load_ok(CAMP("\"description\":\"d\",\"created_at\":1,\"rule\":{}")));
	/* An empty file is an empty set. */
	cm_ruleset_free(load_ok(" \n"));
	cm_ruleset_free(load_ok("[]"));
}

static void test_depth(void **state)
{
	struct cm_buf b;

	(void)state;
	cm_buf_init(&b, 0);
	cm_buf_adds(&b, "[{\"id\":7,\"name\":\"n\",\"status\":\"active\",\"rule\":{\"where\":");
	for (int i = 0; i < 64; i++)
		cm_buf_adds(&b, "{\"not\":");
	cm_buf_adds(&b, "{\"field\":\"a\",\"op\":\"exists\"}");
	for (int i = 0; i < 64; i++)
		cm_buf_adds(&b, "}");
	cm_buf_adds(&b, "}}]");
	BAD(b.data, "conditions nested deeper than 64 levels");
	cm_buf_release(&b);
}

/* Every problem of a file is reported, not only the first. */
static void test_all_problems(void **state)
{
	static const char text[] =
	    "[\n"
	    "{\"id\":7,\"name\":\"a\",\"status\":\"active\",\"rule\":{\"wehre\":{}}},\n"
	    "{\"id\":\"x\",\"name\":\"\",\"status\":\"on\",\"rule\":{\"jq\":\".a ~ b\"}},\n"
	    "{\"id\":7,\"name\":\"dup\",\"status\":\"paused\",\"rule\":{}},\n"
	    "{\"id\":8,\"name\":\"c\",\"status\":\"archived\",\"rule\":{\"jq\":\"$x\"}}\n"
	    "]\n";
	static const char *const expect[] = {
	    "c.json:2: campaign 7: rule.wehre: unknown key",
	    "c.json:3: campaign #2: id:",
	    "c.json:3: campaign #2: name:",
	    "c.json:3: campaign #2: status:",
	    "c.json:3: campaign #2: rule.jq: does not compile",
	    "c.json:4: campaign 7: id: duplicate id (also campaign #1, line 2)",
	    "c.json:5: campaign 8: rule.jq: does not compile: $x is not defined",
	    NULL,
	};

	(void)state;
	assert_int_equal(load_bad(text, expect), 7);
}

/* ---- matching ---- */

static void test_window(void **state)
{
	struct cm_ruleset *s;
	int64_t ids[4];

	(void)state;
	s = load_ok("[{\"id\":1,\"name\":\"w\",\"status\":\"active\","
	            "\"starts_at\":\"2026-01-01T00:00:00Z\",\"ends_at\":\"2026-02-01T00:00:00Z\","
	            "\"rule\":{}},"
	            "{\"id\":2,\"name\":\"open\",\"status\":\"active\",\"starts_at\":null,"
	            "\"ends_at\":\"2026-01-01T00:00:00Z\",\"rule\":{}},"
	            "{\"id\":3,\"name\":\"from\",\"status\":\"active\","
	            "\"starts_at\":\"2026-02-01T00:00:00Z\",\"rule\":{}}]");
#define EV(t)                                                                                      \
	"{\"event_id\":\"e\",\"event_type\":\"t\",\"user_id\":\"u\",\"occurred_at\":\"" t          \
	"\",\"properties\":{}}"
	assert_int_equal(match(s, EV("2026-01-01T00:00:00Z"), ids, 4), 1);
	assert_int_equal(ids[0], 1);
	assert_int_equal(match(s, EV("2025-12-31T23:59:59.999Z"), ids, 4), 1);
	assert_int_equal(ids[0], 2);
	assert_int_equal(match(s, EV("2026-01-01T01:00:00+01:00"), ids, 4), 1);
	assert_int_equal(ids[0], 1);
	assert_int_equal(match(s, EV("2026-01-31T23:59:59.999Z"), ids, 4), 1);
	assert_int_equal(ids[0], 1);
	assert_int_equal(match(s, EV("2026-02-01T00:00:00Z"), ids, 4), 1);
	assert_int_equal(ids[0], 3);
	assert_int_equal(match(s, EV("2026-01-31T19:00:00-05:00"), ids, 4), 1);
	assert_int_equal(ids[0], 3);
	assert_int_equal(match(s, EV("1999-01-01T00:00:00Z"), ids, 4), 1);
	assert_int_equal(ids[0], 2);
	cm_ruleset_free(s);
}

static void test_types_status_order(void **state)
{
	struct cm_ruleset *s;
	int64_t ids[8];

	(void)state;
	s = load_ok(
	    "{\"id\":30,\"name\":\"a\",\"status\":\"active\",\"rule\":{}}\n"
	    "{\"id\":10,\"name\":\"b\",\"status\":\"active\",\"rule\":{\"event_type\":\"buy\"}}\n"
	    "{\"id\":20,\"name\":\"c\",\"status\":\"active\","
	    "\"rule\":{\"event_type\":[\"buy\",\"view\",\"buy\"]}}\n"
	    "{\"id\":5,\"name\":\"d\",\"status\":\"paused\",\"rule\":{}}\n"
	    "{\"id\":6,\"name\":\"e\",\"status\":\"archived\",\"rule\":{}}\n");
	assert_int_equal(cm_ruleset_count(s), 5);
	assert_int_equal(cm_ruleset_active(s), 3);
#define TEV(t)                                                                                     \
	"{\"event_id\":\"e\",\"event_type\":\"" t "\",\"user_id\":\"u\","                          \
	"\"occurred_at\":\"2026-01-01T00:00:00Z\",\"properties\":{}}"
	assert_int_equal(match(s, TEV("buy"), ids, 8), 3);
	assert_int_equal(ids[0], 10);
	assert_int_equal(ids[1], 20);
	assert_int_equal(ids[2], 30);
	assert_int_equal(match(s, TEV("view"), ids, 8), 2);
	assert_int_equal(ids[0], 20);
	assert_int_equal(ids[1], 30);
	assert_int_equal(match(s, TEV("other"), ids, 8), 1);
	assert_int_equal(ids[0], 30);
	cm_ruleset_free(s);
}

static void test_event_init(void **state)
{
	/* The messages are cm_event_validate's (the rules are tested in
	 * test_event.c); here, that cm_rule_event_init applies them. */
	static const struct {
		const char *event, *msg;
	} bad[] = {
	    {"[1]", "expected a JSON object, got an array"},
	    {"{\"event_type\":\"t\",\"user_id\":\"u\",\"occurred_at\":\"2026-01-01T00:00:00Z\","
	     "\"properties\":{}}",
	     "field 'event_id': missing (required)"},
	    {"{\"event_id\":1,\"event_type\":\"t\",\"user_id\":\"u\","
	     "\"occurred_at\":\"2026-01-01T00:00:00Z\",\"properties\":{}}",
	     "field 'event_id': expected a string, got 1"},
	    {"{\"event_id\":\"e\",\"event_type\":\"a b\",\"user_id\":\"u\","
	     "\"occurred_at\":\"2026-01-01T00:00:00Z\",\"properties\":{}}",
	     "field 'event_type': expected 1-64 bytes of [A-Za-z0-9_.:-], got \"a b\""},
	    {"{\"event_id\":\"e\",\"event_type\":\"t\",\"user_id\":\"u\",\"occurred_at\":\"soon\","
	     "\"properties\":{}}",
	     "field 'occurred_at': expected an RFC 3339 time, got \"soon\""},
	    /* what cm-match let through before there was one validator */
	    {"{\"event_id\":\"a\",\"event_type\":\"t\",\"user_id\":\"u\","
	     "\"occurred_at\":\"2026-01-01T00:00:00Z\",\"properties\":[1,2],\"extra\":5}",
	     "field 'extra': unknown key (event data belongs under 'properties')"},
	    {"{\"event_id\":\"a\",\"event_type\":\"t\",\"user_id\":\"u\","
	     "\"occurred_at\":\"2026-01-01T00:00:00Z\",\"properties\":[1,2]}",
	     "field 'properties': expected an object, got an array"},
	    {"{\"event_id\":\"a\",\"event_type\":\"t\",\"user_id\":\"u\","
	     "\"occurred_at\":\"2026-01-01T00:00:00Z\"}",
	     "field 'properties': missing (required)"},
	    {"{\"event_id\":\"a\",\"event_type\":\"t\",\"user_id\":\"u\","
	     "\"occurred_at\":\"2026-01-01T00:00:00Z\",\"properties\":{\"x\":\"a\\u0000b\"}}",
	     "field 'properties.x': must not contain NUL (\\u0000), got \"a\\u0000b\""},
	};
	struct cm_jdoc d;
	struct cm_buf scratch;
	struct cm_rule_event ev;
	struct cm_err err;
	static const char good[] =
	    "{\"_stream_id\":\"1-0\",\"\\u0065vent_id\":\"e\",\"event_type\":\"\\u0062uy\","
	    "\"user_id\":\"u\",\"occurred_at\":\"2026-01-01T00:00:01.5Z\",\"properties\":{},"
	    "\"matches\":[]}";

	(void)state;
	cm_jdoc_init(&d, 64);
	cm_buf_init(&scratch, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(cm_json_parse(&d, bad[i].event, strlen(bad[i].event), &err), 0);
		assert_int_equal(cm_rule_event_init(&ev, &d, &scratch, &err), -1);
		assert_string_equal(err.msg, bad[i].msg);
	}
	assert_int_equal(cm_json_parse(&d, good, strlen(good), &err), 0);
	assert_int_equal(cm_rule_event_init(&ev, &d, &scratch, &err), 0);
	assert_int_equal(ev.type_len, 3);
	assert_memory_equal(ev.type, "buy", 3);
	assert_int_equal(ev.time_ms, 1767225601500LL);
	assert_int_equal(ev.has_meta, 1);
	assert_int_not_equal(ev.matches_key, CM_JNONE);
	assert_int_not_equal(ev.id_tok, CM_JNONE);
	cm_jdoc_release(&d);
	cm_buf_release(&scratch);
}

/* Collects jq runtime errors. */
struct jqerrs {
	int n;
	int64_t id;
	char msg[256];
};

static void on_jq_error(void *ctx, int64_t id, const char *msg)
{
	struct jqerrs *e = ctx;

	e->n++;
	e->id = id;
	snprintf(e->msg, sizeof(e->msg), "%s", msg);
}

static void test_jq(void **state)
{
	struct cm_ruleset *s;
	struct jqerrs e = {0, 0, ""};
	int64_t ids[8];

	(void)state;
	s = load_ok(
	    "[{\"id\":1,\"name\":\"a\",\"status\":\"active\","
	    "\"rule\":{\"jq\":\"(.properties.items // 0) >= 2\"}},"
	    "{\"id\":2,\"name\":\"b\",\"status\":\"active\",\"rule\":{\"jq\":\".properties.nope\"}}"
	    ","
	    "{\"id\":3,\"name\":\"c\",\"status\":\"active\",\"rule\":{\"jq\":\".properties.s.x\"}},"
	    "{\"id\":4,\"name\":\"d\",\"status\":\"active\",\"rule\":{\"where\":{\"field\":"
	    "\"properties.items\",\"op\":\"gt\",\"value\":100},\"jq\":\"error(\\\"never\\\")\"}},"
	    "{\"id\":5,\"name\":\"e\",\"status\":\"active\","
	    "\"rule\":{\"jq\":\"(.properties.items // 0) >= 2\"}},"
	    "{\"id\":6,\"name\":\"f\",\"status\":\"active\",\"rule\":{\"jq\":\"empty\"}},"
	    "{\"id\":7,\"name\":\"g\",\"status\":\"active\",\"rule\":{\"jq\":\"._stream_id == "
	    "\\\"9\\\"\"}}]");
	cm_ruleset_on_jq_error(s, on_jq_error, &e);
#define JEV(p)                                                                                     \
	"{\"event_id\":\"e\",\"event_type\":\"t\",\"user_id\":\"u\","                              \
	"\"occurred_at\":\"2026-01-01T00:00:00Z\",\"_stream_id\":\"9\",\"properties\":" p "}"
	assert_int_equal(match(s, JEV("{\"items\":3,\"s\":{\"x\":1}}"), ids, 8), 4);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 3);
	assert_int_equal(ids[2], 5);
	assert_int_equal(ids[3], 7);
	assert_int_equal(e.n, 0);
	/* A runtime error makes the rule false and is counted. */
	assert_int_equal(match(s, JEV("{\"items\":1,\"s\":\"str\"}"), ids, 8), 1);
	assert_int_equal(ids[0], 7);
	assert_int_equal(e.n, 1);
	assert_int_equal(e.id, 3);
	assert_non_null(strstr(e.msg, "Cannot index string"));
	assert_int_equal(cm_ruleset_jq_errors(s), 1);
	/* jq runs only when the rest holds: campaign 4's error never runs. */
	assert_int_equal(match(s, JEV("{\"items\":50}"), ids, 8), 3);
	assert_int_equal(cm_ruleset_jq_errors(s), 1);
	assert_int_equal(match(s, JEV("{\"items\":101}"), ids, 8), 3);
	assert_int_equal(cm_ruleset_jq_errors(s), 2);
	assert_int_equal(e.id, 4);
	assert_string_equal(e.msg, "never");
	cm_ruleset_free(s);
}

/* A campaign of id ID with the rule text RULE, for the profile tests. */
#define PCAMP(id, rule)                                                                            \
	"{\"id\":" #id ",\"name\":\"p" #id "\",\"status\":\"active\",\"rule\":" rule "}"

static void test_profile(void **state)
{
	struct cm_ruleset *s;
	int64_t ids[16];
	static const char ev[] = "{\"event_id\":\"e\",\"event_type\":\"purchase\",\"user_id\":"
	                         "\"u\",\"occurred_at\":\"2026-01-01T00:00:00Z\",\"properties\":"
	                         "{\"plan\":\"free\",\"amount\":5}}";
	static const char view[] =
	    "{\"event_id\":\"v\",\"event_type\":\"view\",\"user_id\":"
	    "\"u\",\"occurred_at\":\"2026-01-01T00:00:00Z\",\"properties\":{}}";

	(void)state;
	/* profile paths through every kind of leaf: eq and in (indexed keys),
	 * thresholds, nested traits, exists / not_exists, and jq. */
	s = load_ok("[" PCAMP(
	    1,
	    "{\"event_type\":\"purchase\",\"where\":{\"field\":\"profile.plan\","
	    "\"op\":\"eq\",\"value\":\"pro\"}}") "," PCAMP(2,
	                                                   "{\"event_type\":"
	                                                   "\"purchase\","
	                                                   "\"where\":{"
	                                                   "\"field\":"
	                                                   "\"profile.plan\","
	                                                   "\"op\":"
	                                                   "\"in\",\"value\":["
	                                                   "\"team\",\"pro\"]}"
	                                                   "}") "," PCAMP(3,
	                                                                  "{\""
	                                                                  "whe"
	                                                                  "re"
	                                                                  "\":"
	                                                                  "{\""
	                                                                  "all"
	                                                                  "\":"
	                                                                  "["
	                                                                  "{\""
	                                                                  "fie"
	                                                                  "ld"
	                                                                  "\":"
	                                                                  "\"p"
	                                                                  "rof"
	                                                                  "ile"
	                                                                  ".se"
	                                                                  "ats"
	                                                                  "\","
	                                                                  "\"o"
	                                                                  "p\""
	                                                                  ":\""
	                                                                  "gte"
	                                                                  "\","
	                                                                  "\"v"
	                                                                  "alu"
	                                                                  "e\""
	                                                                  ":10"
	                                                                  "},"
	                                                                  "{\""
	                                                                  "fie"
	                                                                  "ld"
	                                                                  "\":"
	                                                                  "\"p"
	                                                                  "rop"
	                                                                  "ert"
	                                                                  "ies"
	                                                                  "."
	                                                                  "amo"
	                                                                  "unt"
	                                                                  "\","
	                                                                  "\"o"
	                                                                  "p\""
	                                                                  ":\""
	                                                                  "gt"
	                                                                  "\","
	                                                                  "\"v"
	                                                                  "alu"
	                                                                  "e\""
	                                                                  ":1}"
	                                                                  "]}"
	                                                                  "}") "," PCAMP(4,
	                                                                                 "{\"event_"
	                                                                                 "type\":"
	                                                                                 "\"purchas"
	                                                                                 "e\","
	                                                                                 "\"where\""
	                                                                                 ":{"
	                                                                                 "\"field\""
	                                                                                 ":\"profil"
	                                                                                 "e."
	                                                                                 "address."
	                                                                                 "city\","
	                                                                                 "\"op\":"
	                                                                                 "\"starts_"
	                                                                                 "with\","
	                                                                                 "\"value\""
	                                                                                 ":\"Ber\"}"
	                                                                                 "}") "," PCAMP(5,
	                                                                                                "{\"event_type\":\"purchase\",\"where\":{\"field\":\"profile.plan\",\"op\":"
	                                                                                                "\"not_exists\"}}") "," PCAMP(6,
	                                                                                                                              "{\"event_type\":\"purchase\",\"jq\":\"."
	                                                                                                                              "profile.plan == \\\"pro\\\"\"}") "," PCAMP(7,
	                                                                                                                                                                          "{\"event_type\":\"purchase\",\"jq\":\".profile | keys | length == "
	                                                                                                                                                                          "0\"}") "," PCAMP(8,
	                                                                                                                                                                                            "{\"event_type\":\"purchase\",\"where\":{\"field\":"
	                                                                                                                                                                                            "\"properties.plan\",\"op\":\"eq\",\"value\":"
	                                                                                                                                                                                            "\"free\"}}") "]");
	/* No profile: every profile.* is missing, jq sees "profile":{}. */
	assert_int_equal(match_prof(s, ev, NULL, ids, 16), 3);
	assert_int_equal(ids[0], 5);
	assert_int_equal(ids[1], 7);
	assert_int_equal(ids[2], 8);
	assert_int_equal(match_prof(s, ev, "{}", ids, 16), 3);
	assert_int_equal(match_prof(s, ev,
	                            "{\"plan\":\"pro\",\"seats\":12,\"address\":{\"city\":"
	                            "\"Berlin\"}}",
	                            ids, 16),
	                 6);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 2);
	assert_int_equal(ids[2], 3);
	assert_int_equal(ids[3], 4);
	assert_int_equal(ids[4], 6);
	assert_int_equal(ids[5], 8);
	/* The profile's own types count: "10" is not 10, and the event's
	 * properties.plan is not the profile's plan. */
	assert_int_equal(match_prof(s, ev, "{\"plan\":\"team\",\"seats\":\"10\"}", ids, 16), 2);
	assert_int_equal(ids[0], 2);
	assert_int_equal(ids[1], 8);
	assert_int_equal(match_prof(s, ev, "{\"plan\":null,\"seats\":10}", ids, 16), 3);
	assert_int_equal(ids[0], 3);
	assert_int_equal(ids[1], 5);
	assert_int_equal(ids[2], 8);
	/* Which types need the profile looked up: purchase (1, 2, 4-7) and,
	 * through campaign 3 of any type, every other type too. */
	assert_true(cm_ruleset_reads_profile(s, "purchase", 8));
	assert_true(cm_ruleset_reads_profile(s, "view", 4));
	assert_int_equal(match_prof(s, view, "{\"seats\":99}", ids, 16), 0);
	cm_ruleset_free(s);

	s = load_ok("[" PCAMP(1,
	                      "{\"event_type\":\"purchase\",\"where\":{\"field\":\"profile.plan\","
	                      "\"op\":\"eq\",\"value\":\"pro\"}}") "," PCAMP(2, "{\"event_type\":"
	                                                                        "\"view\"}") "]");
	assert_true(cm_ruleset_reads_profile(s, "purchase", 8));
	assert_false(cm_ruleset_reads_profile(s, "view", 4));
	assert_false(cm_ruleset_reads_profile(s, "other", 5));
	cm_ruleset_free(s);

	/* "profile" alone is a path error with the campaign and the path. */
	BAD("[" PCAMP(9, "{\"where\":{\"all\":[{\"field\":\"profile\",\"op\":\"exists\"}]}}") "]",
	    "c.json:1: campaign 9: rule.where.all[0].field: \"profile\" alone is not a trait "
	    "(expected profile.TRAIT such as profile.plan)");
}

/* An eq index on a profile path finds the same campaigns as testing each
 * one: many campaigns keyed on profile.plan and on a property. */
static void test_profile_index(void **state)
{
	struct cm_buf text;
	struct cm_ruleset *s;
	static const char *const plans[] = {"free", "basic", "pro", "team"};
	int64_t ids[64];
	char ev[256];

	(void)state;
	cm_buf_init(&text, 0);
	cm_buf_adds(&text, "[");
	for (int i = 1; i <= 40; i++)
		cm_buf_addf(
		    &text,
		    "%s{\"id\":%d,\"name\":\"c%d\",\"status\":\"active\",\"rule\":{"
		    "\"event_type\":\"t\",\"where\":{\"all\":[{\"field\":\"%s\",\"op\":\"eq\","
		    "\"value\":\"%s\"},{\"field\":\"properties.n\",\"op\":\"gte\",\"value\":%d}]}}"
		    "}",
		    i > 1 ? "," : "", i, i, i % 2 ? "profile.plan" : "properties.plan",
		    plans[i % 4], i % 5);
	cm_buf_adds(&text, "]");
	s = load_ok(text.data);
	for (int p = 0; p < 4; p++)
		for (int q = 0; q < 4; q++)
			for (int n = 0; n < 6; n++) {
				char prof[64];
				int got, want = 0;

				snprintf(
				    ev, sizeof(ev),
				    "{\"event_id\":\"e\",\"event_type\":\"t\",\"user_id\":\"u\","
				    "\"occurred_at\":\"2026-01-01T00:00:00Z\",\"properties\":{"
				    "\"plan\":\"%s\",\"n\":%d}}",
				    plans[q], n);
				snprintf(prof, sizeof(prof), "{\"plan\":\"%s\"}", plans[p]);
				got = match_prof(s, ev, prof, ids, 64);
				for (int i = 1, k = 0; i <= 40; i++) {
					int plan = i % 2 ? p : q;

					if (i % 4 != plan || n < i % 5)
						continue;
					want++;
					assert_true(k < got);
					assert_int_equal(ids[k], i);
					k++;
				}
				assert_int_equal(got, want);
			}
	cm_ruleset_free(s);
	cm_buf_release(&text);
}

/* A campaign line with the extra members x, for the controls tests. */
#define CCAMP(id, x)                                                                               \
	"{\"id\":" #id ",\"name\":\"c" #id "\",\"status\":\"active\",\"rule\":{\"event_type\":"    \
	"\"t\"}," x "}"

static void test_controls(void **state)
{
	struct cm_ruleset *s;
	const struct cm_rule_controls *c;
	int64_t ids[4];
	static const char ev[] = "{\"event_id\":\"e\",\"event_type\":\"t\",\"user_id\":\"u\","
	                         "\"occurred_at\":\"2026-01-01T00:00:00Z\",\"properties\":{}}";

	(void)state;
	s = load_ok("[" CCAMP(
	    1,
	    "\"limit\":{\"per_user\":3, \"cooldown\":\"PT12H\"},"
	    "\"holdout\":0.1,\"variants\":[{\"name\":\"A\",\"weight\":1},"
	    "{\"name\":\"B \\\"2\\\"\",\"weight\":2.5}]") "," CCAMP(2,
	                                                            "\"limit\":null,\"holdout\":"
	                                                            "null") "," CCAMP(3,
	                                                                              "\"holdout\":"
	                                                                              "0") "," CCAMP(4,
	                                                                                             "\"limit\":{\"cooldown\":\"P1W\"}") "]");
	assert_true(cm_ruleset_has_controls(s));
	c = cm_ruleset_controls(s, 1);
	assert_non_null(c);
	assert_int_equal(c->id, 1);
	assert_true(c->holdout == 0.1);
	assert_int_equal(c->per_user, 3);
	assert_int_equal(c->cooldown_ms, 12LL * 3600000);
	assert_int_equal(c->cooldown_len, 5);
	assert_memory_equal(c->cooldown, "PT12H", 5);
	/* the limit verbatim, compact */
	assert_int_equal(c->limit_len, strlen("{\"per_user\":3,\"cooldown\":\"PT12H\"}"));
	assert_memory_equal(c->limit, "{\"per_user\":3,\"cooldown\":\"PT12H\"}", c->limit_len);
	assert_int_equal(c->nvariants, 2);
	assert_int_equal(c->variants[1].len, 5);
	assert_memory_equal(c->variants[1].name, "B \"2\"", 5);
	assert_int_equal(c->variants[1].json_len, 9);
	assert_memory_equal(c->variants[1].json, "\"B \\\"2\\\"\"", 9);
	assert_true(c->weights[0] == 1 && c->weights[1] == 2.5);
	/* null is absent, a holdout of 0 is none */
	assert_null(cm_ruleset_controls(s, 2));
	assert_null(cm_ruleset_controls(s, 3));
	assert_null(cm_ruleset_controls(s, 99));
	c = cm_ruleset_controls(s, 4);
	assert_non_null(c);
	assert_int_equal(c->per_user, 0);
	assert_int_equal(c->cooldown_ms, 7LL * 86400000);
	assert_int_equal(c->nvariants, 0);
	/* after a match, the controls of each hit, in id order */
	assert_int_equal(match(s, ev, ids, 4), 4);
	assert_ptr_equal(cm_ruleset_hit_controls(s, 0), cm_ruleset_controls(s, 1));
	assert_null(cm_ruleset_hit_controls(s, 1));
	assert_null(cm_ruleset_hit_controls(s, 2));
	assert_ptr_equal(cm_ruleset_hit_controls(s, 3), cm_ruleset_controls(s, 4));
	assert_null(cm_ruleset_hit_controls(s, 4));
	cm_ruleset_free(s);
	s = load_ok("[" CCAMP(1, "\"limit\":null") "]");
	assert_false(cm_ruleset_has_controls(s));
	assert_int_equal(match(s, ev, ids, 4), 1);
	assert_null(cm_ruleset_hit_controls(s, 0));
	cm_ruleset_free(s);

	/* every bad part, with its path */
	BAD("[" CCAMP(7, "\"limit\":{\"cooldown\":\"7 days\"}") "]",
	    "c.json:1: campaign 7: limit.cooldown: expected an ISO 8601 duration such as \"P7D\" "
	    "or "
	    "\"PT12H\", got \"7 days\"");
	BAD("[" CCAMP(7, "\"limit\":{\"cooldown\":\"P1M\"}") "]",
	    "limit.cooldown: expected an ISO 8601 duration such as \"P7D\" or \"PT12H\", got "
	    "\"P1M\"");
	BAD("[" CCAMP(7, "\"limit\":{\"cooldown\":\"P0D\"}") "]",
	    "limit.cooldown: expected a duration longer than zero, got \"P0D\"");
	BAD("[" CCAMP(7, "\"limit\":{\"cooldown\":7}") "]",
	    "limit.cooldown: expected an ISO 8601 duration such as \"P7D\" or \"PT12H\", not a "
	    "number");
	BAD("[" CCAMP(7, "\"limit\":\"1/day\"") "]",
	    "campaign 7: limit: expected an object with per_user and/or cooldown, not a string");
	BAD("[" CCAMP(7, "\"limit\":{}") "]",
	    "campaign 7: limit: expected per_user and/or cooldown (omit limit for none)");
	BAD("[" CCAMP(7, "\"limit\":{\"per_user\":1,\"daily\":2}") "]",
	    "campaign 7: limit.daily: unknown key (expected per_user or cooldown)");
	BAD("[" CCAMP(7, "\"limit\":{\"per_user\":0}") "]",
	    "limit.per_user: expected an integer from 1 to 2147483647, not 0");
	BAD("[" CCAMP(7, "\"limit\":{\"per_user\":1.5}") "]",
	    "limit.per_user: expected an integer from 1 to 2147483647, not 1.5");
	BAD("[" CCAMP(7, "\"limit\":{\"per_user\":2147483648}") "]",
	    "limit.per_user: expected an integer from 1 to 2147483647, not 2147483648");
	BAD("[" CCAMP(7, "\"limit\":{\"per_user\":\"1\"}") "]",
	    "limit.per_user: expected an integer from 1 to 2147483647, not a string");
	BAD("[" CCAMP(7, "\"holdout\":1") "]",
	    "campaign 7: holdout: expected a number from 0 up to (not including) 1, such as 0.1, "
	    "not a number outside it");
	BAD("[" CCAMP(7, "\"holdout\":-0.1") "]", "holdout: expected a number from 0 up to");
	BAD("[" CCAMP(7, "\"holdout\":\"10%\"") "]", "holdout: expected a number from 0 up to (not "
	                                             "including) 1, such as 0.1, not a string");
	BAD("[" CCAMP(7, "\"variants\":[]") "]",
	    "campaign 7: variants: expected 1 to 100 variants, not 0 (omit variants for none)");
	BAD("[" CCAMP(7, "\"variants\":{\"A\":1}") "]",
	    "variants: expected an array of {\"name\",\"weight\"} objects, not an object");
	BAD("[" CCAMP(
	        7,
	        "\"variants\":[{\"name\":\"A\",\"weight\":1},{\"name\":\"A\",\"weight\":1}]") "]",
	    "campaign 7: variants[1].name: duplicate name \"A\" (also variants[0])");
	BAD("[" CCAMP(7, "\"variants\":[{\"name\":\"A\"}]") "]",
	    "variants[0].weight: missing (expected a number greater than 0)");
	BAD("[" CCAMP(7, "\"variants\":[{\"name\":\"A\",\"weight\":0}]") "]",
	    "variants[0].weight: expected a number greater than 0, not 0");
	BAD("[" CCAMP(7, "\"variants\":[{\"name\":\"\",\"weight\":1}]") "]",
	    "variants[0].name: expected a string of 1 to 64 bytes, not 0 bytes");
	BAD("[" CCAMP(7, "\"variants\":[{\"name\":1,\"weight\":1,\"w\":2}]") "]",
	    "variants[0].name: expected a string of 1 to 64 bytes, not a number",
	    "variants[0].w: unknown key (expected name and weight)");
	BAD("[" CCAMP(7, "\"variants\":[3]") "]",
	    "variants[0]: expected an object {\"name\":...,\"weight\":...}, not a number");
	/* and through cm_campaign_validate, which the API uses */
	{
		struct cm_err err = {"", 0};
		static const char one[] = CCAMP(7, "\"limit\":{\"cooldown\":\"7 days\"}");
		static const char good[] = CCAMP(7, "\"limit\":{\"per_user\":1},\"holdout\":0.5");

		assert_int_equal(cm_campaign_validate(one, strlen(one), 0, &err), -1);
		assert_string_equal(err.msg,
		                    "limit.cooldown: expected an ISO 8601 duration such as "
		                    "\"P7D\" or \"PT12H\", got \"7 days\"");
		assert_int_equal(cm_campaign_validate(good, strlen(good), 0, &err), 0);
	}
}

static void test_validate_one(void **state)
{
	struct cm_err err = {"", 0};
	static const char good[] =
	    "{\"name\":\"n\",\"status\":\"active\",\"rule\":{\"where\":{\"field\":\"a\","
	    "\"op\":\"eq\",\"value\":1},\"jq\":\".a\"}}";
	static const char bad_op[] =
	    "{\"id\":3,\"name\":\"n\",\"status\":\"active\",\"rule\":{\"where\":{\"any\":["
	    "{\"field\":\"a\",\"op\":\"eq\",\"value\":1},{\"field\":\"a\",\"op\":\"bad\","
	    "\"value\":1}]}}}";
	static const char bad_jq[] =
	    "{\"id\":3,\"name\":\"n\",\"status\":\"active\",\"rule\":{\"jq\":\"1 +\"}}";

	(void)state;
	assert_int_equal(cm_campaign_validate(good, strlen(good), CM_RULE_ID_OPTIONAL, &err), 0);
	assert_int_equal(cm_campaign_validate(good, strlen(good), 0, &err), -1);
	assert_string_equal(err.msg,
	                    "id: missing (expected an integer from 1 to 9007199254740992)");
	assert_int_equal(cm_campaign_validate(bad_op, strlen(bad_op), 0, &err), -1);
	assert_non_null(strstr(err.msg, "rule.where.any[1].op: unknown operator \"bad\""));
	assert_int_equal(cm_campaign_validate(bad_jq, strlen(bad_jq), 0, &err), -1);
	assert_non_null(strstr(err.msg, "rule.jq: does not compile: syntax error"));
	assert_int_equal(cm_campaign_validate("{", 1, 0, &err), -1);
	assert_non_null(strstr(err.msg, "invalid JSON"));
	assert_int_equal(cm_campaign_validate("[]", 2, 0, &err), -1);
	assert_string_equal(err.msg, "expected a campaign object, not an array");
}

static void test_add_from_doc(void **state)
{
	struct cm_ruleset *s = cm_ruleset_new();
	struct cm_jdoc d;
	struct cm_err err;
	struct probs p;
	int64_t ids[4];
	static const char row[] = "{\"id\":9,\"name\":\"db\",\"status\":\"active\","
	                          "\"rule\":{\"event_type\":\"t\"}}";
	static const char bad[] = "{\"id\":9,\"name\":\"dup\",\"status\":\"active\",\"rule\":{}}";

	(void)state;
	memset(&p, 0, sizeof(p));
	cm_buf_init(&p.text, 0);
	cm_jdoc_init(&d, 64);
	assert_int_equal(cm_json_parse(&d, row, strlen(row), &err), 0);
	assert_int_equal(cm_ruleset_add(s, &d, 0, "db", 0, collect, &p), 0);
	assert_int_equal(cm_json_parse(&d, bad, strlen(bad), &err), 0);
	assert_int_equal(cm_ruleset_add(s, &d, 0, "db", 0, collect, &p), 1);
	assert_non_null(strstr(p.text.data, "db: campaign 9: id: duplicate id"));
	/* A set with problems matches nothing. */
	assert_int_equal(cm_ruleset_compile(s, collect, &p), 1);
	assert_int_equal(match(s, TEV("t"), ids, 4), 0);
	cm_ruleset_free(s);
	cm_jdoc_release(&d);
	cm_buf_release(&p.text);
}

/* ---- the indexes against brute force ---- */

static uint64_t rng_state = 88172645463325252ULL;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

static const char *const fields[] = {"properties.s", "properties.n", "properties.a",
                                     "properties.b", "user_id",      "properties.o"};
static const char *const svals[] = {"\"DE\"", "\"AT\"",  "\"FR\"", "\"\\u00e9\"",
                                    "\"é\"",  "\"DEX\"", "\"\"",   "\"D\""};
static const char *const nvals[] = {"1", "2", "2.0", "-0", "0", "10", "1e400", "-3.5"};
static const char *const ovals[] = {"true", "false", "[1,\"DE\"]", "{\"k\":1}", "[\"DE\"]", "[]"};

/* A random JSON value of any type (never null: rules reject it). */
static void rnd_value(struct cm_buf *b)
{
	switch (rnd(3)) {
	case 0:
		cm_buf_adds(b, svals[rnd(8)]);
		break;
	case 1:
		cm_buf_adds(b, nvals[rnd(8)]);
		break;
	default:
		cm_buf_adds(b, ovals[rnd(6)]);
		break;
	}
}

/* A random scalar of the kind an index can use. */
static void rnd_scalar(struct cm_buf *b)
{
	int k = (int)rnd(5);

	cm_buf_adds(b, k < 2 ? svals[rnd(8)] : k < 4 ? nvals[rnd(8)] : ovals[rnd(2)]);
}

static void rnd_node(struct cm_buf *b, int depth)
{
	static const char *const ops[] = {"eq",       "ne",          "lt",     "lte",
	                                  "gt",       "gte",         "in",     "not_in",
	                                  "contains", "starts_with", "exists", "not_exists"};
	uint32_t k = rnd(depth > 2 ? 10 : 14);

	if (k >= 10) {
		uint32_t n = rnd(4);

		if (k == 13) {
			cm_buf_adds(b, "{\"not\":");
			rnd_node(b, depth + 1);
			cm_buf_adds(b, "}");
			return;
		}
		cm_buf_adds(b, k == 12 ? "{\"any\":[" : "{\"all\":[");
		for (uint32_t i = 0; i < n; i++) {
			if (i)
				cm_buf_addc(b, ',');
			rnd_node(b, depth + 1);
		}
		cm_buf_adds(b, "]}");
		return;
	}
	{
		const char *op = ops[rnd(12)];

		cm_buf_addf(b, "{\"field\":\"%s\",\"op\":\"%s\"", fields[rnd(6)], op);
		if (!strcmp(op, "exists") || !strcmp(op, "not_exists")) {
			cm_buf_adds(b, "}");
			return;
		}
		cm_buf_adds(b, ",\"value\":");
		if (!strcmp(op, "in") || !strcmp(op, "not_in")) {
			uint32_t n = rnd(4);

			cm_buf_addc(b, '[');
			for (uint32_t i = 0; i < n; i++) {
				if (i)
					cm_buf_addc(b, ',');
				if (rnd(4))
					rnd_scalar(b);
				else
					rnd_value(b);
			}
			cm_buf_addc(b, ']');
		} else if (!strcmp(op, "starts_with")) {
			cm_buf_adds(b, rnd(2) ? "\"D\"" : svals[rnd(8)]);
		} else if (op[0] == 'l' || op[0] == 'g') {
			cm_buf_adds(b, rnd(2) ? nvals[rnd(8)] : svals[rnd(8)]);
		} else if (!strcmp(op, "eq") || !strcmp(op, "ne")) {
			if (rnd(4))
				rnd_scalar(b);
			else
				rnd_value(b);
		} else {
			rnd_value(b);
		}
		cm_buf_adds(b, "}");
	}
}

/* The reference: the rule semantics evaluated straight from the JSON
 * documents, with no index and no compiled form. */
struct ref {
	const struct cm_jdoc *c; /* the campaigns */
	const struct cm_jdoc *e; /* the event */
	struct cm_buf s1, s2;
};

static int ref_cls(const struct cm_jdoc *d, uint32_t t)
{
	if (t == CM_JNONE)
		return 0;
	switch (d->tok[t].type) {
	case CM_JNULL:
		return 0;
	case CM_JTRUE:
	case CM_JFALSE:
		return 1;
	default:
		return d->tok[t].type;
	}
}

static int ref_str_cmp(struct ref *r, uint32_t a, uint32_t b)
{
	size_t na, nb;
	const char *pa = cm_json_str(r->e, a, &r->s1, &na);
	const char *pb = cm_json_str(r->c, b, &r->s2, &nb);
	int c = memcmp(pa, pb, na < nb ? na : nb);

	return c ? c : (na < nb ? -1 : na > nb);
}

static int ref_eq(struct ref *r, uint32_t f, uint32_t v)
{
	return ref_cls(r->e, f) == ref_cls(r->c, v) && cm_json_equal(r->e, f, r->c, v);
}

static int ref_leaf(struct ref *r, uint32_t node)
{
	const struct cm_jdoc *c = r->c;
	uint32_t tf = cm_json_get(c, node, "field", 5), to = cm_json_get(c, node, "op", 2);
	uint32_t v = cm_json_get(c, node, "value", 5), f;
	struct cm_jpath path;
	struct cm_err err;
	size_t n;
	const char *p = cm_json_str(c, tf, &r->s1, &n);
	char op[16];
	int fc, vc;

	assert_int_equal(cm_jpath_init(&path, p, n, &err), 0);
	f = cm_json_lookup(r->e, 0, &path);
	cm_jpath_release(&path);
	p = cm_json_str(c, to, &r->s1, &n);
	snprintf(op, sizeof(op), "%.*s", (int)n, p);
	fc = ref_cls(r->e, f);
	if (!strcmp(op, "not_exists"))
		return fc == 0;
	if (fc == 0)
		return 0;
	if (!strcmp(op, "exists"))
		return 1;
	vc = ref_cls(c, v);
	if (!strcmp(op, "eq"))
		return ref_eq(r, f, v);
	if (!strcmp(op, "ne"))
		return fc == vc && !cm_json_equal(r->e, f, c, v);
	if (op[0] == 'l' || op[0] == 'g') {
		int cmp;

		if (fc != vc)
			return 0;
		if (fc == CM_JNUM) {
			double x = cm_json_num(r->e, f), y = cm_json_num(c, v);

			cmp = x < y ? -1 : x > y;
		} else {
			cmp = ref_str_cmp(r, f, v);
		}
		if (!strcmp(op, "lt"))
			return cmp < 0;
		if (!strcmp(op, "lte"))
			return cmp <= 0;
		if (!strcmp(op, "gt"))
			return cmp > 0;
		return cmp >= 0;
	}
	if (!strcmp(op, "in") || !strcmp(op, "not_in")) {
		int same = 0, eq = 0;
		uint32_t e = v + 1;

		for (uint32_t i = 0; i < c->tok[v].count; i++, e = c->tok[e].next) {
			same |= ref_cls(c, e) == fc;
			eq |= ref_eq(r, f, e);
		}
		if (op[0] == 'i')
			return eq;
		return c->tok[v].count == 0 ? 1 : same && !eq;
	}
	if (!strcmp(op, "contains")) {
		if (fc == CM_JSTR) {
			size_t nf, nv;
			const char *pf, *pv;

			if (vc != CM_JSTR)
				return 0;
			pf = cm_json_str(r->e, f, &r->s1, &nf);
			pv = cm_json_str(c, v, &r->s2, &nv);
			return nv == 0 || memmem(pf, nf, pv, nv) != NULL;
		}
		if (fc == CM_JARR) {
			uint32_t e = f + 1;

			for (uint32_t i = 0; i < r->e->tok[f].count; i++, e = r->e->tok[e].next)
				if (ref_cls(r->e, e) == vc && cm_json_equal(r->e, e, c, v))
					return 1;
		}
		return 0;
	}
	if (!strcmp(op, "starts_with")) {
		size_t nf, nv;
		const char *pf, *pv;

		if (fc != CM_JSTR)
			return 0;
		pf = cm_json_str(r->e, f, &r->s1, &nf);
		pv = cm_json_str(c, v, &r->s2, &nv);
		return nf >= nv && memcmp(pf, pv, nv) == 0;
	}
	fail_msg("unknown op %s", op);
	return 0;
}

static int ref_node(struct ref *r, uint32_t node)
{
	const struct cm_jdoc *c = r->c;
	uint32_t t;

	if ((t = cm_json_get(c, node, "all", 3)) != CM_JNONE) {
		uint32_t e = t + 1;

		for (uint32_t i = 0; i < c->tok[t].count; i++, e = c->tok[e].next)
			if (!ref_node(r, e))
				return 0;
		return 1;
	}
	if ((t = cm_json_get(c, node, "any", 3)) != CM_JNONE) {
		uint32_t e = t + 1;

		for (uint32_t i = 0; i < c->tok[t].count; i++, e = c->tok[e].next)
			if (ref_node(r, e))
				return 1;
		return 0;
	}
	if ((t = cm_json_get(c, node, "not", 3)) != CM_JNONE)
		return !ref_node(r, t);
	return ref_leaf(r, node);
}

/* Does campaign token camp match the event (type, window, where)? */
static int ref_campaign(struct ref *r, uint32_t camp, const char *type, int64_t t)
{
	const struct cm_jdoc *c = r->c;
	uint32_t rule = cm_json_get(c, camp, "rule", 4), types, where, w;
	int64_t ms;
	size_t n;
	const char *p;

	if (!cm_json_str_eq(c, cm_json_get(c, camp, "status", 6), "active", 6))
		return 0;
	w = cm_json_get(c, camp, "starts_at", 9);
	if (w != CM_JNONE && c->tok[w].type == CM_JSTR) {
		p = cm_json_str(c, w, &r->s1, &n);
		assert_int_equal(cm_time_parse(p, n, &ms), 0);
		if (t < ms)
			return 0;
	}
	w = cm_json_get(c, camp, "ends_at", 7);
	if (w != CM_JNONE && c->tok[w].type == CM_JSTR) {
		p = cm_json_str(c, w, &r->s1, &n);
		assert_int_equal(cm_time_parse(p, n, &ms), 0);
		if (t >= ms)
			return 0;
	}
	types = cm_json_get(c, rule, "event_type", 10);
	if (types != CM_JNONE) {
		int found = 0;

		if (c->tok[types].type == CM_JSTR) {
			found = cm_json_str_eq(c, types, type, strlen(type));
		} else {
			uint32_t e = types + 1;

			for (uint32_t i = 0; i < c->tok[types].count; i++, e = c->tok[e].next)
				found |= cm_json_str_eq(c, e, type, strlen(type));
		}
		if (!found)
			return 0;
	}
	where = cm_json_get(c, rule, "where", 5);
	return where == CM_JNONE || ref_node(r, where);
}

static void test_index_vs_brute_force(void **state)
{
	static const char *const types[] = {"a", "b", "c"};
	static const char *const times[] = {"2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z",
	                                    "2026-06-01T00:00:00Z"};
	struct cm_buf camps, event;
	struct ref r;
	int checked = 0, matched = 0;

	(void)state;
	cm_buf_init(&camps, 0);
	cm_buf_init(&event, 0);
	cm_buf_init(&r.s1, 0);
	cm_buf_init(&r.s2, 0);
	for (int round = 0; round < 20; round++) {
		struct cm_ruleset *s;
		struct cm_jdoc cd, ed;
		struct cm_err err;
		int ncamp = 20 + (int)rnd(200);

		cm_buf_reset(&camps);
		cm_buf_adds(&camps, "[");
		for (int i = 0; i < ncamp; i++) {
			cm_buf_addf(&camps, "%s{\"id\":%d,\"name\":\"c\",\"status\":\"%s\",",
			            i ? ",\n" : "", 1000 - i * 3, rnd(8) ? "active" : "paused");
			if (rnd(4) == 0)
				cm_buf_addf(&camps, "\"starts_at\":\"%s\",", times[rnd(2)]);
			if (rnd(4) == 0)
				cm_buf_addf(&camps, "\"ends_at\":\"%s\",", times[2]);
			cm_buf_adds(&camps, "\"rule\":{");
			switch (rnd(4)) {
			case 0:
				break;
			case 1:
				cm_buf_addf(&camps, "\"event_type\":\"%s\",", types[rnd(3)]);
				break;
			default:
				cm_buf_addf(&camps, "\"event_type\":[\"%s\",\"%s\"],",
				            types[rnd(3)], types[rnd(3)]);
				break;
			}
			cm_buf_adds(&camps, "\"where\":");
			rnd_node(&camps, 0);
			cm_buf_adds(&camps, "}}");
		}
		cm_buf_adds(&camps, "]");
		s = load_ok(camps.data);
		cm_jdoc_init(&cd, 400);
		assert_int_equal(cm_json_parse(&cd, camps.data, camps.len, &err), 0);
		r.c = &cd;
		for (int k = 0; k < 300; k++) {
			const char *type = types[rnd(3)];
			const char *time = times[rnd(3)];
			int64_t ids[256], t;
			int n, want = 0;
			uint32_t c;

			cm_buf_reset(&event);
			cm_buf_addf(&event,
			            "{\"event_id\":\"e\",\"event_type\":\"%s\",\"user_id\":%s,"
			            "\"occurred_at\":\"%s\",\"properties\":{",
			            type, rnd(2) ? "\"DE\"" : "\"u\"", time);
			for (int f = 0; f < 5; f++) {
				static const char *const names[] = {"s", "n", "a", "b", "o"};

				if (rnd(5) == 0)
					continue;
				cm_buf_addf(&event, "%s\"%s\":",
				            event.data[event.len - 1] == '{' ? "" : ",", names[f]);
				if (rnd(6) == 0)
					cm_buf_adds(&event, "null");
				else if (rnd(3))
					rnd_scalar(&event);
				else
					rnd_value(&event);
			}
			cm_buf_adds(&event, "}}");
			n = match(s, event.data, ids, 256);
			assert_true(n >= 0);
			cm_jdoc_init(&ed, 64);
			assert_int_equal(cm_json_parse(&ed, event.data, event.len, &err), 0);
			r.e = &ed;
			assert_int_equal(cm_time_parse(time, strlen(time), &t), 0);
			/* Campaign ids descend in file order, so walk backwards for
			 * ascending ids. */
			c = 1;
			{
				uint32_t pos[256], np = 0;

				for (uint32_t i = 0; i < cd.tok[0].count; i++, c = cd.tok[c].next)
					pos[np++] = c;
				for (uint32_t i = np; i-- > 0;) {
					if (!ref_campaign(&r, pos[i], type, t))
						continue;
					if (want >= n)
						fail_msg("missing match of campaign #%u for "
						         "%s\ncampaigns: %s",
						         np - i, event.data, camps.data);
					assert_int_equal(ids[want], 1000 - (int64_t)i * 3);
					want++;
				}
			}
			if (want != n)
				fail_msg("extra matches (%d, expected %d) for %s", n, want,
				         event.data);
			checked++;
			matched += n;
			cm_jdoc_release(&ed);
		}
		cm_jdoc_release(&cd);
		cm_ruleset_free(s);
	}
	assert_true(checked == 6000);
	assert_true(matched > 1000);
	cm_buf_release(&camps);
	cm_buf_release(&event);
	cm_buf_release(&r.s1);
	cm_buf_release(&r.s2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_eq),
	    cmocka_unit_test(test_ne),
	    cmocka_unit_test(test_order),
	    cmocka_unit_test(test_in),
	    cmocka_unit_test(test_not_in),
	    cmocka_unit_test(test_contains),
	    cmocka_unit_test(test_starts_with),
	    cmocka_unit_test(test_exists),
	    cmocka_unit_test(test_matches),
	    cmocka_unit_test(test_trees),
	    cmocka_unit_test(test_validation),
	    cmocka_unit_test(test_depth),
	    cmocka_unit_test(test_all_problems),
	    cmocka_unit_test(test_window),
	    cmocka_unit_test(test_types_status_order),
	    cmocka_unit_test(test_event_init),
	    cmocka_unit_test(test_jq),
	    cmocka_unit_test(test_profile),
	    cmocka_unit_test(test_profile_index),
	    cmocka_unit_test(test_controls),
	    cmocka_unit_test(test_validate_one),
	    cmocka_unit_test(test_add_from_doc),
	    cmocka_unit_test(test_index_vs_brute_force),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
