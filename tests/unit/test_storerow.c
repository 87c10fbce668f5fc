/* Tests for storerow.c: the COPY rows and SQL inputs of events, match lines,
 * limited candidates and identify events, byte for byte, and that a record
 * that does not fit leaves nothing behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "event.h"
#include "json.h"
#include "storerow.h"

struct fix {
	struct cm_jdoc d;
	struct cm_event_view v;
	struct cm_storerow sr;
	struct cm_storerow_out out;
	struct cm_storerow_counts n;
	struct cm_err err;
};

static struct fix fx;

static int setup(void **state)
{
	memset(&fx, 0, sizeof(fx));
	cm_jdoc_init(&fx.d, 0);
	cm_storerow_init(&fx.sr);
	return 0;
}

static int teardown(void **state)
{
	cm_jdoc_release(&fx.d);
	cm_storerow_release(&fx.sr);
	cm_buf_release(&fx.out.ev);
	cm_buf_release(&fx.out.mt);
	cm_buf_release(&fx.out.lim);
	cm_buf_release(&fx.out.pf);
	return 0;
}

/* Validates line as cm-store does and adds its rows; returns add's result. */
static int add(const char *line)
{
	assert_int_equal(cm_record_parse(&fx.d, line, strlen(line), &fx.v, &fx.err), 0);
	return cm_storerow_add(&fx.sr, &fx.d, &fx.v, &fx.out, &fx.n, &fx.err);
}

/* The text of buffer b ("" when it never grew). */
static const char *text(const struct cm_buf *b)
{
	return b->data ? b->data : "";
}

#define EV(type, props, rest)                                                                      \
	"{\"event_id\":\"e-1\",\"event_type\":\"" type "\",\"user_id\":\"u-1\","                   \
	"\"occurred_at\":\"2026-11-27T11:15:00.5+01:00\",\"properties\":" props rest "}"

static void test_event_and_matches(void **state)
{
	assert_int_equal(
	    add(EV("purchase", "{\"a\": \"x\\ty\", \"b\":[1, 2.50]}",
	           ",\"matches\":[{\"campaign_id\":7},{\"outcome\":\"holdout\","
	           "\"campaign_id\":8},{\"campaign_id\":9,\"variant\":\"B\\u0009\\\\\","
	           "\"outcome\":\"capped\"},{\"campaign_id\":10,\"outcome\":"
	           "\"hold\\u006fut\",\"variant\":\"A\"}]")),
	    0);
	/* the properties as written, escaped for COPY (the JSON escape \t
	 * stays two characters: a backslash doubled and a t) */
	assert_string_equal(text(&fx.out.ev), "e-1\tpurchase\tu-1\t2026-11-27T10:15:00.500Z\t"
	                                      "{\"a\": \"x\\\\ty\", \"b\":[1, 2.50]}\n");
	assert_string_equal(text(&fx.out.mt),
	                    "7\te-1\tu-1\tpurchase\t2026-11-27T10:15:00.500Z\tmatched\t\\N\n"
	                    "8\te-1\tu-1\tpurchase\t2026-11-27T10:15:00.500Z\tholdout\t\\N\n"
	                    "9\te-1\tu-1\tpurchase\t2026-11-27T10:15:00.500Z\tcapped\tB\\t\\\\\n"
	                    "10\te-1\tu-1\tpurchase\t2026-11-27T10:15:00.500Z\tholdout\tA\n");
	assert_string_equal(text(&fx.out.lim), "");
	assert_string_equal(text(&fx.out.pf), "");
	assert_int_equal(fx.n.events, 1);
	assert_int_equal(fx.n.matches, 4);
	assert_int_equal(fx.n.limited, 0);
	assert_int_equal(fx.n.identify, 0);

	/* an event without matches; fields with COPY's special bytes */
	assert_int_equal(
	    add("{\"event_id\":\"a\\tb\\\\c\\n\",\"event_type\":\"t\",\"user_id\":"
	        "\"\\u00e9\",\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}"),
	    0);
	{
		static const char want[] = "a\\tb\\\\c\\n\tt\t\xc3\xa9\t2026-11-27T10:15:00Z\t{}\n";

		assert_string_equal(text(&fx.out.ev) + fx.out.ev.len - (sizeof(want) - 1), want);
	}
	assert_int_equal(fx.n.matches, 0);
}

static void test_match_line(void **state)
{
	assert_int_equal(
	    add("{\"campaign_id\":42,\"event_id\":\"e\",\"user_id\":\"u\",\"event_type\":"
	        "\"t\",\"occurred_at\":\"2026-11-27T10:15:00Z\",\"variant\":\"v\","
	        "\"_stream_id\":\"1-1\"}"),
	    0);
	assert_string_equal(text(&fx.out.ev), "");
	assert_string_equal(text(&fx.out.mt), "42\te\tu\tt\t2026-11-27T10:15:00Z\tmatched\tv\n");
	assert_int_equal(fx.n.events, 0);
	assert_int_equal(fx.n.matches, 1);
	/* a limited one is a candidate */
	assert_int_equal(
	    add("{\"campaign_id\":42,\"event_id\":\"e\",\"user_id\":\"u\",\"event_type\":"
	        "\"t\",\"occurred_at\":\"2026-11-27T10:15:00Z\",\"outcome\":\"holdout\","
	        "\"limit\":{\"cooldown\":\"PT12H\"}}"),
	    0);
	assert_string_equal(
	    text(&fx.out.lim),
	    "{\"campaign_id\":42,\"event_id\":\"e\",\"user_id\":\"u\",\"event_type\":"
	    "\"t\",\"occurred_at\":\"2026-11-27T10:15:00Z\",\"outcome\":"
	    "\"holdout\",\"variant\":null,\"per_user\":null,\"cooldown_ms\":43200000},");
	assert_int_equal(fx.n.matches, 1);
	assert_int_equal(fx.n.limited, 1);
}

static void test_limited(void **state)
{
	assert_int_equal(add(EV("p", "{}",
	                        ",\"matches\":[{\"campaign_id\":1,\"limit\":{\"per_user\":3}},"
	                        "{\"campaign_id\":2},{\"campaign_id\":3,\"variant\":\"A\\\"\","
	                        "\"outcome\":\"matched\",\"limit\":{\"per_user\":1,\"cooldown\":"
	                        "\"P7D\"}}]")),
	                 0);
	assert_string_equal(text(&fx.out.mt),
	                    "2\te-1\tu-1\tp\t2026-11-27T10:15:00.500Z\tmatched\t\\N\n");
	/* strings as written (escapes kept: it is JSON) */
	assert_string_equal(
	    text(&fx.out.lim),
	    "{\"campaign_id\":1,\"event_id\":\"e-1\",\"user_id\":\"u-1\",\"event_type\":\"p\","
	    "\"occurred_at\":\"2026-11-27T10:15:00.500Z\",\"outcome\":\"matched\",\"variant\":null,"
	    "\"per_user\":3,\"cooldown_ms\":null},"
	    "{\"campaign_id\":3,\"event_id\":\"e-1\",\"user_id\":\"u-1\",\"event_type\":\"p\","
	    "\"occurred_at\":\"2026-11-27T10:15:00.500Z\",\"outcome\":\"matched\",\"variant\":"
	    "\"A\\\"\",\"per_user\":1,\"cooldown_ms\":604800000},");
	assert_int_equal(fx.n.matches, 3);
	assert_int_equal(fx.n.limited, 2);
}

static void test_identify(void **state)
{
	assert_int_equal(add(EV("identify", "{\"plan\": \"pro\", \"seats\":null}", "")), 0);
	assert_string_equal(
	    text(&fx.out.pf),
	    "{\"user_id\":\"u-1\",\"occurred_at\":\"2026-11-27T10:15:00.500Z\","
	    "\"event_id\":\"e-1\",\"traits\":{\"plan\": \"pro\", \"seats\":null}},");
	assert_int_equal(fx.n.identify, 1);
	assert_int_equal(fx.n.events, 1);
	/* the type decoded, compared whole */
	assert_int_equal(add(EV("identif\\u0079", "{\"a\":1}", "")), 0);
	assert_int_equal(fx.n.identify, 1);
	assert_int_equal(add(EV("identify2", "{\"a\":1}", "")), 0);
	assert_int_equal(fx.n.identify, 0);
	assert_int_equal(add(EV("Identify", "{\"a\":1}", "")), 0);
	assert_int_equal(fx.n.identify, 0);
}

static void test_array(void **state)
{
	struct cm_buf a = CM_BUF_INIT;

	assert_int_equal(cm_storerow_array(&a, "", 0), 0);
	assert_string_equal(a.data, "[]");
	assert_int_equal(cm_storerow_array(&a, "{\"a\":1},{\"b\":2},", 16), 0);
	assert_string_equal(a.data, "[{\"a\":1},{\"b\":2}]");
	assert_int_equal(cm_storerow_array(&a, "{\"a\":1},{\"b\":2},", 8), 0);
	assert_string_equal(a.data, "[{\"a\":1}]");
	cm_buf_release(&a);
}

/* A record whose rows do not all fit leaves no part of itself. */
static void test_rollback(void **state)
{
	static const char line[] = EV("identify", "{\"plan\":\"pro\"}",
	                              ",\"matches\":[{\"campaign_id\":1},{\"campaign_id\":2,"
	                              "\"limit\":{\"per_user\":1}}]");

	assert_int_equal(add(line), 0);
	size_t ev = fx.out.ev.len, mt = fx.out.mt.len, lim = fx.out.lim.len, pf = fx.out.pf.len;
	/* the candidate buffer is full: the event, its profile and the first
	 * match row are taken back */
	fx.out.lim.max = fx.out.lim.len + 10;
	assert_int_equal(add(line), -1);
	assert_string_equal(fx.err.msg, "out of memory");
	assert_int_equal(fx.out.ev.len, ev);
	assert_int_equal(fx.out.mt.len, mt);
	assert_int_equal(fx.out.lim.len, lim);
	assert_int_equal(fx.out.pf.len, pf);
	assert_int_equal(fx.n.events + fx.n.matches + fx.n.limited + fx.n.identify, 0);
	fx.out.lim.max = 0;
	assert_int_equal(add(line), 0);
	assert_int_equal(fx.out.lim.len, 2 * lim);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_event_and_matches, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_match_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_limited, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_identify, setup, teardown),
	    cmocka_unit_test(test_array),
	    cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
