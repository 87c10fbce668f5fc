/* test_profiles.c - the in-memory profile store: CONTRACT 1.5's merge rule
 * (latest occurred_at wins per trait, ties to the greater event_id, null
 * removes) in every arrival order, profiles files and their errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "json.h"
#include "profiles.h"
#include "rule.h"

/* Merges the event text ev into p (it must be a valid event). */
static void identify(struct cm_profiles *p, const char *ev)
{
	struct cm_jdoc d;
	struct cm_buf scratch;
	struct cm_rule_event e;
	struct cm_err err;

	cm_jdoc_init(&d, 64);
	cm_buf_init(&scratch, 0);
	if (cm_json_parse(&d, ev, strlen(ev), &err) < 0 ||
	    cm_rule_event_init(&e, &d, &scratch, &err) < 0)
		fail_msg("bad test event %s: %s", ev, err.msg);
	if (cm_profiles_identify(p, &e, &err) < 0)
		fail_msg("identify %s: %s", ev, err.msg);
	cm_jdoc_release(&d);
	cm_buf_release(&scratch);
}

/* The traits text of user u, or "none". */
static const char *traits(struct cm_profiles *p, const char *u)
{
	size_t n;
	const char *t = cm_profiles_get(p, u, strlen(u), &n);

	return t ? t : "none";
}

#define IDENT(id, type, user, time, props)                                                         \
	"{\"event_id\":\"" id "\",\"event_type\":\"" type "\",\"user_id\":\"" user                 \
	"\",\"occurred_at\":\"" time "\",\"properties\":" props "}"

/* Four identify events of one user: whatever order they arrive in, the
 * profile is the same. e3 and e4 share a time: the greater id, e4, wins;
 * e2's null removes country, and e1's older country never comes back. */
static void test_any_order(void **state)
{
	static const char *const evs[4] = {
	    IDENT("e1", "identify", "u", "2026-01-01T00:00:00Z",
	          "{\"plan\":\"free\",\"country\":\"DE\",\"seats\":1}"),
	    IDENT("e2", "identify", "u", "2026-01-02T00:00:00Z", "{\"country\":null}"),
	    IDENT("e3", "identify", "u", "2026-01-03T00:00:00Z",
	          "{\"plan\":\"team\",\"address\":{\"city\":\"Berlin\"}}"),
	    IDENT("e4", "identify", "u", "2026-01-03T00:00:00Z", "{\"plan\":\"pro\"}"),
	};
	static const int perms[24][4] = {
	    {0, 1, 2, 3}, {0, 1, 3, 2}, {0, 2, 1, 3}, {0, 2, 3, 1}, {0, 3, 1, 2}, {0, 3, 2, 1},
	    {1, 0, 2, 3}, {1, 0, 3, 2}, {1, 2, 0, 3}, {1, 2, 3, 0}, {1, 3, 0, 2}, {1, 3, 2, 0},
	    {2, 0, 1, 3}, {2, 0, 3, 1}, {2, 1, 0, 3}, {2, 1, 3, 0}, {2, 3, 0, 1}, {2, 3, 1, 0},
	    {3, 0, 1, 2}, {3, 0, 2, 1}, {3, 1, 0, 2}, {3, 1, 2, 0}, {3, 2, 0, 1}, {3, 2, 1, 0},
	};

	(void)state;
	for (int k = 0; k < 24; k++) {
		struct cm_profiles *p = cm_profiles_new();
		int found = 0;

		assert_non_null(p);
		for (int i = 0; i < 4; i++)
			identify(p, evs[perms[k][i]]);
		/* and redelivered: no change */
		identify(p, evs[perms[k][0]]);
		/* The traits are in the order they were first set; compare as sets. */
		{
			const char *t = traits(p, "u");
			static const char *const parts[] = {"\"plan\":\"pro\"", "\"seats\":1",
			                                    "\"address\":{\"city\":\"Berlin\"}"};

			for (int i = 0; i < 3; i++)
				found += strstr(t, parts[i]) != NULL;
			assert_null(strstr(t, "country"));
			assert_int_equal(strlen(t), strlen("{\"plan\":\"pro\",\"seats\":1,"
			                                   "\"address\":{\"city\":\"Berlin\"}}"));
		}
		assert_int_equal(found, 3);
		assert_int_equal(cm_profiles_count(p), 1);
		cm_profiles_free(p);
	}
}

/* Other events, other users, and a user whose traits are all removed. */
static void test_users(void **state)
{
	struct cm_profiles *p = cm_profiles_new();

	(void)state;
	identify(p, IDENT("e1", "purchase", "u1", "2026-01-01T00:00:00Z", "{\"plan\":\"x\"}"));
	assert_string_equal(traits(p, "u1"), "none");
	assert_int_equal(cm_profiles_count(p), 0);
	identify(p, IDENT("e2", "identify", "u1", "2026-01-01T00:00:00Z", "{\"plan\":\"x\"}"));
	identify(p, IDENT("e3", "identify", "u2", "2026-01-01T00:00:00Z",
	                  "{\"n\":1,\"tags\":[\"a\",\"b\"],\"k\\u00e9y\":\"v\\\"q\"}"));
	assert_string_equal(traits(p, "u1"), "{\"plan\":\"x\"}");
	assert_string_equal(traits(p, "u2"),
	                    "{\"n\":1,\"tags\":[\"a\",\"b\"],\"k\xc3\xa9y\":\"v\\\"q\"}");
	identify(p, IDENT("e4", "identify", "u1", "2026-01-02T00:00:00Z", "{\"plan\":null}"));
	assert_string_equal(traits(p, "u1"), "{}");
	/* an identify without traits changes nothing */
	identify(p, IDENT("e5", "identify", "u3", "2026-01-02T00:00:00Z", "{}"));
	assert_string_equal(traits(p, "u3"), "{}");
	/* a key repeated in one event: the last counts, as in jsonb */
	identify(p, IDENT("e6", "identify", "u4", "2026-01-02T00:00:00Z", "{\"a\":1,\"a\":2}"));
	assert_string_equal(traits(p, "u4"), "{\"a\":2}");
	assert_int_equal(cm_profiles_count(p), 4);
	cm_profiles_free(p);
}

/* A profiles file gives the oldest values: any identify event beats them. */
static void test_file(void **state)
{
	struct cm_profiles *p = cm_profiles_new();
	struct cm_jdoc d;
	struct cm_err err;
	static const struct {
		const char *line, *msg;
	} bad[] = {
	    {"[1]", "expected an object {\"user_id\":...,\"traits\":{...}}"},
	    {"{\"user_id\":\"u\"", "invalid JSON: byte 15: "},
	    {"{\"user_id\":1,\"traits\":{}}", "user_id: expected a string of 1 to 128 bytes"},
	    {"{\"user_id\":\"\",\"traits\":{}}",
	     "user_id: expected a string of 1 to 128 bytes, not 0 bytes"},
	    {"{\"user_id\":\"u\"}", "traits: expected an object"},
	    {"{\"user_id\":\"u\",\"traits\":[]}", "traits: expected an object"},
	    {"{\"user_id\":\"u\",\"traits\":{},\"plan\":1}",
	     "unknown key \"plan\" (expected user_id and traits)"},
	};
	static const char good[] =
	    "{\"user_id\":\"u1\",\"traits\":{\"plan\":\"pro\",\"seats\":3,\"gone\":null},"
	    "\"updated_at\":\"2026-01-01T00:00:00Z\",\"_x\":1}";

	(void)state;
	cm_jdoc_init(&d, 64);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(
		    cm_profiles_load_line(p, &d, bad[i].line, strlen(bad[i].line), &err), -1);
		if (strncmp(err.msg, bad[i].msg, strlen(bad[i].msg)) != 0)
			fail_msg("%s: got \"%s\", expected \"%s\"", bad[i].line, err.msg,
			         bad[i].msg);
	}
	assert_int_equal(cm_profiles_load_line(p, &d, "  \r", 3, &err), 0);
	assert_int_equal(cm_profiles_count(p), 0);
	assert_int_equal(cm_profiles_load_line(p, &d, good, strlen(good), &err), 0);
	assert_string_equal(traits(p, "u1"), "{\"plan\":\"pro\",\"seats\":3}");
	identify(p, IDENT("e1", "identify", "u1", "0001-01-01T00:00:00Z", "{\"plan\":\"free\"}"));
	assert_string_equal(traits(p, "u1"), "{\"plan\":\"free\",\"seats\":3}");
	cm_jdoc_release(&d);
	cm_profiles_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_any_order),
	    cmocka_unit_test(test_users),
	    cmocka_unit_test(test_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
