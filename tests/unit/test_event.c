/* Tests for event.c: every rule of CONTRACT 1.1 with the field named in the
 * message, the Segment and CloudEvents shapes, time normalisation, derived
 * ids, "_" keys, the check of canonical events and the builder for CSV. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "event.h"
#include "json.h"

/* 2026-11-27T10:15:00Z */
#define NOW 1795774500000LL

static char out_text[4096];
static char err_text[600];

/* Normalises json (hashing json itself for a derived id) with the clock at
 * NOW; the line goes to out_text, the message to err_text. */
static int norm(const char *json)
{
	struct cm_jdoc d;
	struct cm_buf b = CM_BUF_INIT;
	struct cm_err err;
	int rc;

	out_text[0] = err_text[0] = 0;
	cm_jdoc_init(&d, 64);
	assert_int_equal(cm_json_parse(&d, json, strlen(json), &err), 0);
	rc = cm_event_normalize(&d, 0, json, strlen(json), NOW, &b, &err);
	if (rc == 0) {
		assert_non_null(b.data);
		assert_true(b.len < sizeof(out_text));
		memcpy(out_text, b.data, b.len + 1);
	} else {
		assert_true(b.len == 0);
		snprintf(err_text, sizeof(err_text), "%s", err.msg);
	}
	cm_buf_release(&b);
	cm_jdoc_release(&d);
	return rc;
}

/* Asserts that json normalises to want. */
static void ok(const char *json, const char *want)
{
	if (norm(json) != 0)
		fail_msg("%s: unexpected error: %s", json, err_text);
	assert_string_equal(out_text, want);
}

/* Asserts that json is rejected with exactly the message want. */
static void bad(const char *json, const char *want)
{
	if (norm(json) == 0)
		fail_msg("%s: accepted as %s", json, out_text);
	assert_string_equal(err_text, want);
}

/* Runs cm_event_check on json; returns its result, message in err_text. */
static int check(const char *json)
{
	struct cm_jdoc d;
	struct cm_err err;
	int rc;

	err_text[0] = 0;
	cm_jdoc_init(&d, 64);
	assert_int_equal(cm_json_parse(&d, json, strlen(json), &err), 0);
	rc = cm_event_check(&d, 0, &err);
	if (rc)
		snprintf(err_text, sizeof(err_text), "%s", err.msg);
	cm_jdoc_release(&d);
	return rc;
}

#define E1 "{\"event_id\":\"e-1\",\"event_type\":\"purchase\",\"user_id\":\"u-42\","

static void test_canonical(void **state)
{
	ok(E1 "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{\"amount\":120.5}}",
	   E1 "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{\"amount\":120.5}}");
	/* keys in any order come out in the canonical order */
	ok("{\"properties\":{\"a\":[1,{\"b\":null}]},\"occurred_at\":\"2026-11-27T10:15:00Z\","
	   "\"user_id\":\"u-42\",\"event_type\":\"purchase\",\"event_id\":\"e-1\"}",
	   E1 "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{\"a\":[1,{\"b\":null}]}}");
	/* whitespace is removed, also inside properties; numbers stay as written */
	ok(" { \"event_id\" : \"e-1\" , \"event_type\":\"purchase\",\"user_id\":\"u-42\", "
	   "\"properties\" : { \"n\" : 1.50 , \"big\": 1e400, \"s\": \"a b\" } } ",
	   E1 "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{\"n\":1.50,\"big\":1e400,"
	      "\"s\":\"a b\"}}");
}

static void test_defaults(void **state)
{
	/* occurred_at absent: the time of ingestion; properties absent: {} */
	ok(E1 "\"properties\":{}}",
	   E1 "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}");
	ok(E1 "\"occurred_at\":null,\"properties\":null}",
	   E1 "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}");
	ok(E1 "\"occurred_at\":\"2020-01-01T00:00:00Z\"}",
	   E1 "\"occurred_at\":\"2020-01-01T00:00:00Z\",\"properties\":{}}");
}

static void test_clock(void **state)
{
	struct cm_jdoc d;
	struct cm_buf b = CM_BUF_INIT;
	struct cm_err err;
	const char *in = "{\"event_type\":\"a\",\"user_id\":\"u\"}";
	struct cm_event_ref ref;

	cm_jdoc_init(&d, 64);
	assert_int_equal(cm_json_parse(&d, in, strlen(in), &err), 0);
	assert_int_equal(
	    cm_event_normalize_ref(&d, 0, in, strlen(in), CM_EVENT_NOW, &b, &ref, &err), 0);
	/* read from the clock: some time after this test was written */
	assert_true(ref.occurred_ms > NOW - 86400000LL * 365);
	assert_non_null(strstr(b.data, "Z\",\"properties\":{}}"));
	assert_int_equal(ref.id_off, 12);
	assert_int_equal(ref.id_len, CM_EVENT_DERIVED_LEN + 2);
	assert_memory_equal(b.data + ref.id_off, "\"ev-29b6ef4aa83c7b3ae48aef38370bfb1a\"",
	                    ref.id_len);
	cm_buf_release(&b);
	cm_jdoc_release(&d);
}

static void test_time(void **state)
{
#define T(in, want)                                                                                \
	ok(E1 "\"occurred_at\":\"" in "\"}", E1 "\"occurred_at\":\"" want "\",\"properties\":{}}")
	T("2026-11-27T12:15:00+02:00", "2026-11-27T10:15:00Z");
	T("2026-11-27T01:15:00-09:00", "2026-11-27T10:15:00Z");
	T("2026-11-27T10:15:00.5Z", "2026-11-27T10:15:00.500Z");
	T("2026-11-27T10:15:00.123456789Z", "2026-11-27T10:15:00.123Z");
	T("2026-11-27T10:15:00.000Z", "2026-11-27T10:15:00Z");
	T("2026-11-27T10:15:00.999+00:00", "2026-11-27T10:15:00.999Z");
	T("2026-11-27t10:15:00z", "2026-11-27T10:15:00Z");
	T("2024-02-29T23:59:59.001Z", "2024-02-29T23:59:59.001Z");
	T("2026-01-01T00:30:00+01:00", "2025-12-31T23:30:00Z");
#undef T
	bad(E1 "\"occurred_at\":\"yesterday\"}",
	    "field 'occurred_at': expected an RFC 3339 time, got \"yesterday\"");
	bad(E1 "\"occurred_at\":\"2026-02-30T00:00:00Z\"}",
	    "field 'occurred_at': expected an RFC 3339 time, got \"2026-02-30T00:00:00Z\"");
	bad(E1 "\"occurred_at\":\"2026-11-27T10:15:00\"}",
	    "field 'occurred_at': expected an RFC 3339 time, got \"2026-11-27T10:15:00\"");
	bad(E1 "\"occurred_at\":1795774500}",
	    "field 'occurred_at': expected an RFC 3339 time, got 1795774500");
	bad(E1 "\"occurred_at\":\"\"}", "field 'occurred_at': expected an RFC 3339 time, got \"\"");
}

static void test_event_type(void **state)
{
	ok("{\"event_id\":\"e\",\"event_type\":\"a.B:c-d_9\",\"user_id\":\"u\"}",
	   "{\"event_id\":\"e\",\"event_type\":\"a.B:c-d_9\",\"user_id\":\"u\",\"occurred_at\":"
	   "\"2026-11-27T10:15:00Z\",\"properties\":{}}");
	/* escapes are decoded: the output holds the plain name */
	ok("{\"event_id\":\"e\",\"event_type\":\"\\u0070urchase\",\"user_id\":\"u\"}",
	   "{\"event_id\":\"e\",\"event_type\":\"purchase\",\"user_id\":\"u\",\"occurred_at\":"
	   "\"2026-11-27T10:15:00Z\",\"properties\":{}}");
	ok("{\"event_id\":\"e\",\"event_type\":"
	   "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"user_id\":"
	   "\"u\"}",
	   "{\"event_id\":\"e\",\"event_type\":"
	   "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"user_id\":\"u\","
	   "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}");
	bad("{\"event_type\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
	    "\"user_id\":\"u\"}",
	    "field 'event_type': expected 1-64 bytes of [A-Za-z0-9_.:-], got "
	    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\" (65 bytes)");
	bad("{\"event_type\":\"\",\"user_id\":\"u\"}",
	    "field 'event_type': expected 1-64 bytes of [A-Za-z0-9_.:-], got \"\"");
	bad("{\"event_type\":\"order placed\",\"user_id\":\"u\"}",
	    "field 'event_type': expected 1-64 bytes of [A-Za-z0-9_.:-], got \"order placed\"");
	bad("{\"event_type\":\"caf\xc3\xa9\",\"user_id\":\"u\"}",
	    "field 'event_type': expected 1-64 bytes of [A-Za-z0-9_.:-], got \"caf\xc3\xa9\"");
	bad("{\"event_type\":7,\"user_id\":\"u\"}", "field 'event_type': expected a string, got 7");
	bad("{\"event_type\":null,\"user_id\":\"u\"}", "field 'event_type': missing (required)");
	bad("{\"user_id\":\"u\"}", "field 'event_type': missing (required)");
}

static void test_user_id(void **state)
{
	bad("{\"event_type\":\"a\",\"user_id\":42}", "field 'user_id': expected a string, got 42");
	bad("{\"event_type\":\"a\",\"user_id\":[\"u\"]}",
	    "field 'user_id': expected a string, got an array");
	bad("{\"event_type\":\"a\",\"user_id\":\"\"}",
	    "field 'user_id': expected a string of 1-128 bytes, got \"\"");
	bad("{\"event_type\":\"a\"}", "field 'user_id': missing (required)");
	bad("{\"event_type\":\"a\",\"user_id\":\"a\\u0000b\"}",
	    "field 'user_id': must not contain NUL (\\u0000), got \"a\\u0000b\"");
	/* escapes are kept as written, the length is that of the decoded text */
	ok("{\"event_id\":\"e\",\"event_type\":\"a\",\"user_id\":\"\\u00e9\\\"x\"}",
	   "{\"event_id\":\"e\",\"event_type\":\"a\",\"user_id\":\"\\u00e9\\\"x\",\"occurred_at\":"
	   "\"2026-11-27T10:15:00Z\",\"properties\":{}}");

	char in[512], want[600];
	char u128[129], u129[130];

	memset(u128, 'u', 128);
	u128[128] = 0;
	memset(u129, 'u', 129);
	u129[129] = 0;
	snprintf(in, sizeof(in), "{\"event_id\":\"e\",\"event_type\":\"a\",\"user_id\":\"%s\"}",
	         u128);
	snprintf(want, sizeof(want),
	         "{\"event_id\":\"e\",\"event_type\":\"a\",\"user_id\":\"%s\",\"occurred_at\":"
	         "\"2026-11-27T10:15:00Z\",\"properties\":{}}",
	         u128);
	ok(in, want);
	snprintf(in, sizeof(in), "{\"event_type\":\"a\",\"user_id\":\"%s\"}", u129);
	bad(in, "field 'user_id': expected a string of 1-128 bytes, got 129 bytes");
}

static void test_event_id(void **state)
{
	char in[512], id[130];

	bad("{\"event_id\":1001,\"event_type\":\"a\",\"user_id\":\"u\"}",
	    "field 'event_id': expected a string, got 1001");
	bad("{\"event_id\":\"\",\"event_type\":\"a\",\"user_id\":\"u\"}",
	    "field 'event_id': expected a string of 1-128 bytes, got \"\"");
	memset(id, 'i', 129);
	id[129] = 0;
	snprintf(in, sizeof(in), "{\"event_id\":\"%s\",\"event_type\":\"a\",\"user_id\":\"u\"}",
	         id);
	bad(in, "field 'event_id': expected a string of 1-128 bytes, got 129 bytes");
	id[128] = 0;
	snprintf(in, sizeof(in), "{\"event_id\":\"%s\",\"event_type\":\"a\",\"user_id\":\"u\"}",
	         id);
	assert_int_equal(norm(in), 0);
}

static void test_derived_id(void **state)
{
	char id[CM_EVENT_DERIVED_LEN + 1], first[4096];
	const char *in = "{\"event_type\":\"a\",\"user_id\":\"u\"}";

	/* BLAKE2b-128 of the record as read */
	cm_event_derive_id("abc", 3, id);
	assert_string_equal(id, "ev-cf4ab791c62b8d2b2109c90275287816");
	cm_event_derive_id("", 0, id);
	assert_string_equal(id, "ev-cae66941d9efbd404e4d88758ea67670");
	ok(in, "{\"event_id\":\"ev-29b6ef4aa83c7b3ae48aef38370bfb1a\",\"event_type\":\"a\","
	       "\"user_id\":\"u\",\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}");
	/* stable: the same record gives the same id, whatever the clock */
	memcpy(first, out_text, sizeof(first));
	ok(in, first);
	/* a different record (even only in spacing) gives another id */
	assert_int_equal(norm("{\"event_type\":\"a\", \"user_id\":\"u\"}"), 0);
	assert_string_not_equal(out_text, first);
	/* null counts as absent */
	ok("{\"event_id\":null,\"event_type\":\"a\",\"user_id\":\"u\"}",
	   "{\"event_id\":\"ev-151f7cc7ff254f73ea1f556fee7d94b1\",\"event_type\":\"a\",\"user_id\":"
	   "\"u\",\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}");
}

static void test_properties(void **state)
{
	bad(E1 "\"properties\":[1]}", "field 'properties': expected an object, got an array");
	bad(E1 "\"properties\":\"x\"}", "field 'properties': expected an object, got \"x\"");
	bad(E1 "\"properties\":true}", "field 'properties': expected an object, got true");
	ok(E1 "\"properties\":{\"deep\":{\"a\":{\"b\":[[],{}]}},\"u\":\"\\u00e9\"}}", E1
	   "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{\"deep\":{\"a\":{\"b\":[[],{"
	   "}]}},\"u\":\"\\u00e9\"}}");
}

static void test_unknown_and_meta(void **state)
{
	bad(E1 "\"amount\":5}", "unknown key 'amount': event data belongs under 'properties' (or "
	                        "map the record with cm-ingest --jq)");
	bad(E1 "\"event\":\"x\"}", "unknown key 'event': event data belongs under 'properties' (or "
	                           "map the record with cm-ingest --jq)");
	bad(E1 "\"matches\":[]}",
	    "unknown key 'matches': event data belongs under 'properties' (or "
	    "map the record with cm-ingest --jq)");
	bad(E1 "\"user_id\":\"v\"}", "duplicate key 'user_id'");
	bad("[1,2]", "expected a JSON object, got an array");
	bad("\"x\"", "expected a JSON object, got \"x\"");
	/* "_" keys are kept verbatim, in order, after the canonical ones */
	ok("{\"_stream_id\":\"1-0\",\"event_id\":\"e-1\",\"event_type\":\"purchase\","
	   "\"user_id\":\"u-42\",\"_meta\": {\"a\" : 1},\"\\u005fx\":null}",
	   E1 "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{},\"_stream_id\":\"1-0\","
	      "\"_meta\":{\"a\":1},\"\\u005fx\":null}");
	/* an escaped canonical key is recognised */
	ok("{\"event_id\":\"e\",\"\\u0065vent_type\":\"a\",\"user_id\":\"u\"}",
	   "{\"event_id\":\"e\",\"event_type\":\"a\",\"user_id\":\"u\",\"occurred_at\":"
	   "\"2026-11-27T10:15:00Z\",\"properties\":{}}");
}

static void test_segment(void **state)
{
	ok("{\"type\":\"track\",\"messageId\":\"m-1\",\"event\":\"order_completed\",\"userId\":"
	   "\"u-1\",\"anonymousId\":\"a-1\",\"timestamp\":\"2026-11-27T11:15:00.250+01:00\","
	   "\"properties\":{\"revenue\":9.5},\"context\":{\"ip\":\"1.2.3.4\"},\"integrations\":{},"
	   "\"sentAt\":\"x\",\"receivedAt\":\"y\",\"originalTimestamp\":\"z\",\"channel\":"
	   "\"server\","
	   "\"version\":2,\"writeKey\":\"k\",\"_src\":1}",
	   "{\"event_id\":\"m-1\",\"event_type\":\"order_completed\",\"user_id\":\"u-1\","
	   "\"occurred_at\":\"2026-11-27T10:15:00.250Z\",\"properties\":{\"revenue\":9.5},"
	   "\"_src\":1}");
	/* anonymousId when userId is absent or null; no "type" needed */
	ok("{\"messageId\":\"m\",\"event\":\"x\",\"userId\":null,\"anonymousId\":\"a-9\"}",
	   "{\"event_id\":\"m\",\"event_type\":\"x\",\"user_id\":\"a-9\",\"occurred_at\":"
	   "\"2026-11-27T10:15:00Z\",\"properties\":{}}");
	ok("{\"event\":\"x\",\"anonymousId\":\"a\"}",
	   "{\"event_id\":\"ev-41f69294e503a0de2eb1ce7dfdea8218\",\"event_type\":\"x\",\"user_id\":"
	   "\"a\",\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}");
	bad("{\"type\":\"track\",\"event\":\"Order Completed\",\"userId\":\"u\"}",
	    "field 'event': expected 1-64 bytes of [A-Za-z0-9_.:-] for event_type, got \"Order "
	    "Completed\"; rename it, e.g. cm-ingest --jq '.event |= gsub(\" \"; \"_\")'");
	bad("{\"type\":\"track\",\"event\":\"x\"}",
	    "field 'userId': missing (a Segment track call needs userId or anonymousId)");
	bad("{\"type\":\"track\",\"event\":\"x\",\"userId\":5}",
	    "field 'userId': expected a string, got 5");
	bad("{\"type\":\"track\",\"userId\":\"u\"}", "field 'event': missing (required)");
	bad("{\"type\":\"track\",\"event\":\"x\",\"userId\":\"u\",\"timestamp\":\"now\"}",
	    "field 'timestamp': expected an RFC 3339 time, got \"now\"");
	bad("{\"type\":\"track\",\"event\":\"x\",\"userId\":\"u\",\"properties\":[]}",
	    "field 'properties': expected an object, got an array");
	bad("{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{}}",
	    "field 'type': a Segment \"identify\" call is not an event; only \"track\" calls are "
	    "accepted");
}

static void test_cloudevents(void **state)
{
	ok("{\"specversion\":\"1.0\",\"id\":\"ce-1\",\"source\":\"/"
	   "shop\",\"type\":\"com.shop.order\","
	   "\"subject\":\"u-7\",\"time\":\"2026-11-27T10:15:00.1Z\",\"datacontenttype\":"
	   "\"application/json\",\"data\":{\"total\":3},\"_k\":[1]}",
	   "{\"event_id\":\"ce-1\",\"event_type\":\"com.shop.order\",\"user_id\":\"u-7\","
	   "\"occurred_at\":\"2026-11-27T10:15:00.100Z\",\"properties\":{\"total\":3},\"_k\":[1]}");
	ok("{\"specversion\":\"1.0\",\"id\":\"c\",\"type\":\"t\",\"subject\":\"s\"}",
	   "{\"event_id\":\"c\",\"event_type\":\"t\",\"user_id\":\"s\",\"occurred_at\":"
	   "\"2026-11-27T10:15:00Z\",\"properties\":{}}");
	bad("{\"specversion\":\"0.3\",\"id\":\"c\",\"type\":\"t\",\"subject\":\"s\"}",
	    "field 'specversion': expected \"1.0\", got \"0.3\"");
	bad("{\"specversion\":1,\"id\":\"c\",\"type\":\"t\",\"subject\":\"s\"}",
	    "field 'specversion': expected \"1.0\", got 1");
	bad("{\"specversion\":\"1.0\",\"id\":\"c\",\"type\":\"t\",\"subject\":\"s\",\"data\":"
	    "\"x\"}",
	    "field 'data': expected an object, got \"x\"");
	bad("{\"specversion\":\"1.0\",\"id\":\"c\",\"type\":\"t\"}",
	    "field 'subject': missing (required)");
	bad("{\"specversion\":\"1.0\",\"id\":7,\"type\":\"t\",\"subject\":\"s\"}",
	    "field 'id': expected a string, got 7");
	bad("{\"specversion\":\"1.0\",\"id\":\"c\",\"type\":\"t\",\"subject\":\"s\",\"time\":"
	    "\"x\"}",
	    "field 'time': expected an RFC 3339 time, got \"x\"");
}

static void test_out_untouched_on_error(void **state)
{
	struct cm_jdoc d;
	struct cm_buf b = CM_BUF_INIT;
	struct cm_err err;
	const char *in = "{\"event_type\":\"a\",\"user_id\":\"u\",\"properties\":7}";

	cm_buf_adds(&b, "kept\n");
	cm_jdoc_init(&d, 64);
	assert_int_equal(cm_json_parse(&d, in, strlen(in), &err), 0);
	assert_int_equal(cm_event_normalize(&d, 0, in, strlen(in), NOW, &b, &err), -1);
	assert_string_equal(b.data, "kept\n");
	assert_int_equal(b.len, 5);
	cm_buf_release(&b);
	cm_jdoc_release(&d);
}

static void test_check(void **state)
{
	struct cm_jdoc d;
	struct cm_err err;
	struct cm_event_ref ref;
	const char *good = E1 "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}";

	assert_int_equal(check(good), 0);
	assert_int_equal(check(E1 "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{},"
	                          "\"matches\":[{\"campaign_id\":7}],\"_stream_id\":\"1-1\"}"),
	                 0);
	assert_int_equal(
	    check(E1 "\"occurred_at\":\"2026-11-27T11:15:00+01:00\",\"properties\":{}}"), 0);
	assert_int_equal(check(E1 "\"properties\":{}}"), -1);
	assert_string_equal(err_text, "field 'occurred_at': missing (required)");
	assert_int_equal(check(E1 "\"occurred_at\":\"2026-11-27T10:15:00Z\"}"), -1);
	assert_string_equal(err_text, "field 'properties': missing (required)");
	assert_int_equal(check("{\"event_type\":\"a\",\"user_id\":\"u\",\"occurred_at\":"
	                       "\"2026-11-27T10:15:00Z\",\"properties\":{}}"),
	                 -1);
	assert_string_equal(err_text, "field 'event_id': missing (required)");
	assert_int_equal(check(E1 "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{},"
	                          "\"x\":1}"),
	                 -1);
	assert_string_equal(err_text, "unknown key 'x'");
	assert_int_equal(check(E1 "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{},"
	                          "\"type\":\"track\"}"),
	                 -1);
	assert_string_equal(err_text, "unknown key 'type'");
	assert_int_equal(check(E1 "\"occurred_at\":\"2026-11-27\",\"properties\":{}}"), -1);
	assert_string_equal(err_text,
	                    "field 'occurred_at': expected an RFC 3339 time, got \"2026-11-27\"");
	assert_int_equal(check(E1 "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{},"
	                          "\"matches\":{}}"),
	                 -1);
	assert_string_equal(err_text, "field 'matches': expected an array, got an object");
	assert_int_equal(check("{\"event_id\":\"e\",\"event_type\":\"a b\",\"user_id\":\"u\","
	                       "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}"),
	                 -1);
	assert_string_equal(
	    err_text, "field 'event_type': expected 1-64 bytes of [A-Za-z0-9_.:-], got \"a b\"");
	assert_int_equal(check("{\"event_id\":\"e\",\"event_type\":\"a\",\"user_id\":3,"
	                       "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}"),
	                 -1);
	assert_string_equal(err_text, "field 'user_id': expected a string, got 3");
	assert_int_equal(check("7"), -1);
	assert_string_equal(err_text, "expected a JSON object, got 7");

	cm_jdoc_init(&d, 64);
	assert_int_equal(cm_json_parse(&d, good, strlen(good), &err), 0);
	assert_int_equal(cm_event_check_ref(&d, 0, &ref, &err), 0);
	assert_int_equal(ref.occurred_ms, NOW);
	assert_memory_equal(good + ref.id_off, "\"e-1\"", ref.id_len);
	cm_jdoc_release(&d);
}

/* Normalised output always passes the check (what cm-publish relies on). */
static void test_normalized_passes_check(void **state)
{
	static const char *const in[] = {
	    "{\"event_type\":\"a\",\"user_id\":\"u\",\"_x\":{\"y\":[1]}}",
	    "{\"type\":\"track\",\"event\":\"x\",\"anonymousId\":\"a\",\"properties\":{\"p\":1}}",
	    "{\"specversion\":\"1.0\",\"id\":\"c\",\"type\":\"t\",\"subject\":\"s\",\"data\":{}}",
	};

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		assert_int_equal(norm(in[i]), 0);
		if (check(out_text))
			fail_msg("%s: %s", out_text, err_text);
	}
}

/* Builds from CSV-like parts; returns the result, text in out/err_text. */
static int build(const struct cm_event_parts *p, const char *raw)
{
	struct cm_buf b = CM_BUF_INIT;
	struct cm_err err;
	int rc = cm_event_build(p, raw, strlen(raw), NOW, &b, &err);

	out_text[0] = err_text[0] = 0;
	if (rc == 0)
		snprintf(out_text, sizeof(out_text), "%s", b.data);
	else
		snprintf(err_text, sizeof(err_text), "%s", err.msg);
	cm_buf_release(&b);
	return rc;
}

static void test_build(void **state)
{
	struct cm_event_parts p;

	memset(&p, 0, sizeof(p));
	p.type = "purchase";
	p.type_len = 8;
	p.user = "u\"42";
	p.user_len = 4;
	p.time = "2026-11-27T11:15:00+01:00";
	p.time_len = strlen(p.time);
	p.props = "{\"amount\":120.5}";
	p.props_len = strlen(p.props);
	assert_int_equal(build(&p, "abc"), 0);
	assert_string_equal(out_text, "{\"event_id\":\"ev-cf4ab791c62b8d2b2109c90275287816\","
	                              "\"event_type\":\"purchase\",\"user_id\":\"u\\\"42\","
	                              "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{"
	                              "\"amount\":120.5}}");
	p.id = "e-1";
	p.id_len = 3;
	p.time = NULL;
	p.props = NULL;
	assert_int_equal(build(&p, "abc"), 0);
	assert_string_equal(out_text,
	                    "{\"event_id\":\"e-1\",\"event_type\":\"purchase\",\"user_id\":"
	                    "\"u\\\"42\",\"occurred_at\":\"2026-11-27T10:15:00Z\","
	                    "\"properties\":{}}");
	p.user = "\xff";
	p.user_len = 1;
	assert_int_equal(build(&p, "abc"), -1);
	assert_string_equal(err_text, "field 'user_id': expected UTF-8 text, got \"...\"");
	p.user = "a\0b";
	p.user_len = 3;
	assert_int_equal(build(&p, "abc"), -1);
	assert_string_equal(err_text,
	                    "field 'user_id': must not contain NUL (\\u0000), got \"a?b\"");
	p.user = "";
	p.user_len = 0;
	assert_int_equal(build(&p, "abc"), -1);
	assert_string_equal(err_text,
	                    "field 'user_id': expected a string of 1-128 bytes, got \"\"");
	p.user = "u";
	p.user_len = 1;
	p.type = "";
	p.type_len = 0;
	assert_int_equal(build(&p, "abc"), -1);
	assert_string_equal(err_text, "field 'event_type': expected 1-64 bytes of [A-Za-z0-9_.:-], "
	                              "got \"\"");
	p.type = "x";
	p.type_len = 1;
	p.time = "27/11/2026";
	p.time_len = strlen(p.time);
	assert_int_equal(build(&p, "abc"), -1);
	assert_string_equal(err_text,
	                    "field 'occurred_at': expected an RFC 3339 time, got \"27/11/2026\"");
	p.time = NULL;
	p.type = NULL;
	assert_int_equal(build(&p, "abc"), -1);
	assert_string_equal(err_text, "field 'event_type': missing (required)");
}

static void test_put_str(void **state)
{
	struct cm_buf b = CM_BUF_INIT;

	assert_int_equal(cm_event_put_str(&b, "plain", 5), 0);
	assert_string_equal(b.data, "\"plain\"");
	cm_buf_reset(&b);
	assert_int_equal(cm_event_put_str(&b, "a\"b\\c\n\r\t\x01\x7f/\xc3\xa9\xf0\x9f\x98\x80", 17),
	                 0);
	assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\r\\t\\u0001\x7f/\xc3\xa9\xf0\x9f\x98\x80\"");
	cm_buf_reset(&b);
	assert_int_equal(cm_event_put_str(&b, "", 0), 0);
	assert_string_equal(b.data, "\"\"");
	/* not UTF-8: a lone continuation byte, an overlong form, a surrogate */
	assert_int_equal(cm_event_put_str(&b, "a\x80", 2), -1);
	assert_int_equal(cm_event_put_str(&b, "\xc0\xaf", 2), -1);
	assert_int_equal(cm_event_put_str(&b, "\xed\xa0\x80", 3), -1);
	assert_int_equal(cm_event_put_str(&b, "\xf4\x90\x80\x80", 4), -1);
	assert_int_equal(cm_event_put_str(&b, "\xe2\x82", 2), -1);
	cm_buf_release(&b);

	assert_int_equal(cm_utf8_valid_prefix("ab\xc3\xa9z", 5), 5);
	assert_int_equal(cm_utf8_valid_prefix("ab\xc3", 3), 2);
	assert_int_equal(cm_utf8_valid_prefix("\xff", 1), 0);
}

/* Every byte value at every position of a 16-byte string is escaped (or
 * refused) exactly as one byte alone would be: the word-at-a-time scan must
 * not skip any. */
static void test_put_str_every_byte(void **state)
{
	struct cm_buf b = CM_BUF_INIT;

	for (int c = 0; c < 256; c++) {
		for (int pos = 0; pos < 16; pos++) {
			char in[16], want[40];
			size_t w = 0;

			memset(in, 'a', sizeof(in));
			in[pos] = (char)c;
			cm_buf_reset(&b);
			if (c >= 0x80) {
				assert_int_equal(cm_event_put_str(&b, in, sizeof(in)), -1);
				continue;
			}
			want[w++] = '"';
			for (int i = 0; i < 16; i++) {
				unsigned char x = (unsigned char)in[i];

				if (x == '"' || x == '\\') {
					want[w++] = '\\';
					want[w++] = (char)x;
				} else if (x == '\n') {
					memcpy(want + w, "\\n", 2);
					w += 2;
				} else if (x == '\r') {
					memcpy(want + w, "\\r", 2);
					w += 2;
				} else if (x == '\t') {
					memcpy(want + w, "\\t", 2);
					w += 2;
				} else if (x < 0x20) {
					w += (size_t)snprintf(want + w, 7, "\\u%04x", x);
				} else {
					want[w++] = (char)x;
				}
			}
			want[w++] = '"';
			assert_int_equal(cm_event_put_str(&b, in, sizeof(in)), 0);
			assert_int_equal(b.len, w);
			assert_memory_equal(b.data, want, w);
		}
	}
	cm_buf_release(&b);
}

static void test_type_ok(void **state)
{
	assert_true(cm_event_type_ok("purchase", 8));
	assert_true(cm_event_type_ok("a.b:c-d_E9", 10));
	assert_false(cm_event_type_ok("", 0));
	assert_false(cm_event_type_ok("a b", 3));
	assert_false(cm_event_type_ok("a/b", 3));
	assert_false(cm_event_type_ok("a\0", 2));
	assert_true(cm_event_type_ok(
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 64));
	assert_false(cm_event_type_ok(
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 65));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_canonical),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_clock),
	    cmocka_unit_test(test_time),
	    cmocka_unit_test(test_event_type),
	    cmocka_unit_test(test_user_id),
	    cmocka_unit_test(test_event_id),
	    cmocka_unit_test(test_derived_id),
	    cmocka_unit_test(test_properties),
	    cmocka_unit_test(test_unknown_and_meta),
	    cmocka_unit_test(test_segment),
	    cmocka_unit_test(test_cloudevents),
	    cmocka_unit_test(test_out_untouched_on_error),
	    cmocka_unit_test(test_check),
	    cmocka_unit_test(test_normalized_passes_check),
	    cmocka_unit_test(test_build),
	    cmocka_unit_test(test_put_str),
	    cmocka_unit_test(test_put_str_every_byte),
	    cmocka_unit_test(test_type_ok),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
