/* Tests for event.c: every rule of CONTRACT 1.1 with the field named in the
 * message, the Segment and CloudEvents shapes, time normalisation, derived
 * ids, "_" keys, the validators of events and match lines (and what
 * PostgreSQL cannot store, at its exact boundaries) and the builder for CSV. */
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
 * NOW, its shape told by its keys (call -1) or as Segment call `call`
 * (cm_event_normalize_segment); the line goes to out_text, the message to
 * err_text. */
static int norm_as(const char *json, int call)
{
	struct cm_jdoc d;
	struct cm_buf b = CM_BUF_INIT;
	struct cm_err err;
	int rc;

	out_text[0] = err_text[0] = 0;
	cm_jdoc_init(&d, 64);
	assert_int_equal(cm_json_parse(&d, json, strlen(json), &err), 0);
	if (call < 0)
		rc = cm_event_normalize(&d, 0, json, strlen(json), NOW, &b, &err);
	else
		rc = cm_event_normalize_segment(&d, 0, call, json, strlen(json), NOW, &b, NULL,
		                                &err);
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

/* Normalises json, its shape told by its keys. */
static int norm(const char *json)
{
	return norm_as(json, -1);
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
	/* a leap second is the next minute's first, also when written canonically */
	T("2016-12-31T23:59:60Z", "2017-01-01T00:00:00Z");
	T("2016-12-31T23:59:60.500Z", "2017-01-01T00:00:00.500Z");
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
	bad(E1 "\"amount\":5}",
	    "field 'amount': unknown key; event data belongs under 'properties' "
	    "(or map the record with cm-ingest --jq)");
	bad(E1 "\"event\":\"x\"}", "field 'event': unknown key; event data belongs under "
	                           "'properties' (or map the record with cm-ingest --jq)");
	bad(E1 "\"matches\":[]}",
	    "field 'matches': unknown key; event data belongs under 'properties' (or "
	    "map the record with cm-ingest --jq)");
	bad(E1 "\"user_id\":\"v\"}", "field 'user_id': duplicate key");
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
	/* track names are mapped as Segment's warehouses name tables */
	ok("{\"type\":\"track\",\"messageId\":\"m\",\"event\":\"Order Completed\",\"userId\":"
	   "\"u\"}",
	   "{\"event_id\":\"m\",\"event_type\":\"order_completed\",\"user_id\":\"u\","
	   "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}");
	ok("{\"messageId\":\"m\",\"event\":\" Checkout  Step-2 v1.0:A \",\"userId\":\"u\"}",
	   "{\"event_id\":\"m\",\"event_type\":\"_checkout__step-2_v1.0:a_\",\"user_id\":\"u\","
	   "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}");
	/* an escaped name is mapped once decoded */
	ok("{\"type\":\"track\",\"messageId\":\"m\",\"event\":\"\\u0053ign\\u0020Up\",\"userId\":"
	   "\"u\"}",
	   "{\"event_id\":\"m\",\"event_type\":\"sign_up\",\"user_id\":\"u\","
	   "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}");
	bad("{\"type\":\"track\",\"event\":\"Order/Done\",\"userId\":\"u\"}",
	    "field 'event': \"Order/Done\" has '/' at byte 6, which an event_type cannot hold "
	    "([A-Za-z0-9_.:-]; Segment names are lowercased and spaces become '_')");
	bad("{\"type\":\"track\",\"event\":\"Caf\xc3\xa9\",\"userId\":\"u\"}",
	    "field 'event': \"Caf\xc3\xa9\" has '\xc3\xa9' at byte 4, which an event_type cannot "
	    "hold ([A-Za-z0-9_.:-]; Segment names are lowercased and spaces become '_')");
	bad("{\"type\":\"track\",\"event\":\"a\\tb\",\"userId\":\"u\"}",
	    "field 'event': \"a\\tb\" has U+0009 at byte 2, which an event_type cannot hold "
	    "([A-Za-z0-9_.:-]; Segment names are lowercased and spaces become '_')");
	bad("{\"type\":\"track\",\"event\":\"\",\"userId\":\"u\"}",
	    "field 'event': expected a name of 1-64 bytes, got \"\"");
	bad("{\"type\":\"track\",\"event\":"
	    "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\","
	    "\"userId\":\"u\"}",
	    "field 'event': expected a name of 1-64 bytes, got "
	    "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\" (too long)");
	bad("{\"type\":\"track\",\"event\":7,\"userId\":\"u\"}",
	    "field 'event': expected a string, got 7");
	/* a track named identify would set traits */
	bad("{\"type\":\"track\",\"event\":\"Identify\",\"userId\":\"u\"}",
	    "field 'event': a track call named \"Identify\" would be an identify event, which sets "
	    "the user's traits; send an identify call instead");
	bad("{\"type\":\"track\",\"event\":\"x\"}",
	    "field 'userId': missing (a Segment track call needs userId or anonymousId)");
	bad("{\"type\":\"track\",\"event\":\"x\",\"userId\":5}",
	    "field 'userId': expected a string, got 5");
	bad("{\"type\":\"track\",\"userId\":\"u\"}", "field 'event': missing (required)");
	bad("{\"type\":\"track\",\"event\":\"x\",\"userId\":\"u\",\"timestamp\":\"now\"}",
	    "field 'timestamp': expected an RFC 3339 time, got \"now\"");
	bad("{\"type\":\"track\",\"event\":\"x\",\"userId\":\"u\",\"properties\":[]}",
	    "field 'properties': expected an object, got an array");
	bad("{\"type\":\"view\",\"userId\":\"u\",\"traits\":{}}",
	    "field 'type': expected a Segment call (track, identify, page, screen, group or "
	    "alias), "
	    "got \"view\"");
	bad("{\"type\":7,\"event\":\"x\",\"userId\":\"u\"}",
	    "field 'type': expected a Segment call (track, identify, page, screen, group or "
	    "alias), "
	    "got 7");
}

static void test_segment_calls(void **state)
{
	/* identify: traits are the properties (CONTRACT 1.5) */
	ok("{\"type\":\"identify\",\"messageId\":\"m\",\"userId\":\"u\",\"traits\":{\"plan\":"
	   "\"pro\",\"age\":null},\"properties\":{\"ignored\":1},\"context\":{}}",
	   "{\"event_id\":\"m\",\"event_type\":\"identify\",\"user_id\":\"u\","
	   "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{\"plan\":\"pro\","
	   "\"age\":null}}");
	ok("{\"type\":\"identify\",\"messageId\":\"m\",\"anonymousId\":\"a\"}",
	   "{\"event_id\":\"m\",\"event_type\":\"identify\",\"user_id\":\"a\","
	   "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}");
	bad("{\"type\":\"identify\",\"userId\":\"u\",\"traits\":\"pro\"}",
	    "field 'traits': expected an object, got \"pro\"");
	bad("{\"type\":\"identify\",\"traits\":{}}",
	    "field 'userId': missing (a Segment identify call needs userId or anonymousId)");
	bad("{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"a\":\"\\u0000\"}}",
	    "field 'traits.a': must not contain NUL (\\u0000), got \"\\u0000\"");
	/* page and screen: the call's name and category win over properties' */
	ok("{\"type\":\"page\",\"messageId\":\"m\",\"userId\":\"u\",\"name\":\"Home\","
	   "\"category\":\"Docs\",\"properties\":{\"url\":\"/\",\"name\":\"old\",\"n\": [1, 2]}}",
	   "{\"event_id\":\"m\",\"event_type\":\"page_view\",\"user_id\":\"u\","
	   "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{\"name\":\"Home\","
	   "\"category\":\"Docs\",\"url\":\"/\",\"n\":[1,2]}}");
	ok("{\"type\":\"page\",\"messageId\":\"m\",\"userId\":\"u\",\"name\":null,"
	   "\"properties\":{\"name\":\"kept\"}}",
	   "{\"event_id\":\"m\",\"event_type\":\"page_view\",\"user_id\":\"u\","
	   "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{\"name\":\"kept\"}}");
	ok("{\"type\":\"screen\",\"messageId\":\"m\",\"userId\":\"u\",\"name\":\"Cart\"}",
	   "{\"event_id\":\"m\",\"event_type\":\"screen_view\",\"user_id\":\"u\","
	   "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{\"name\":\"Cart\"}}");
	ok("{\"type\":\"screen\",\"messageId\":\"m\",\"userId\":\"u\"}",
	   "{\"event_id\":\"m\",\"event_type\":\"screen_view\",\"user_id\":\"u\","
	   "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}");
	bad("{\"type\":\"page\",\"userId\":\"u\",\"name\":5}",
	    "field 'name': expected a string, got 5");
	bad("{\"type\":\"screen\",\"userId\":\"u\",\"category\":\"\\uD800\"}",
	    "field 'category': unpaired surrogate escape (\\uD800-\\uDFFF), got \"\\uD800\"");
	/* group and alias: their ids in properties */
	ok("{\"type\":\"group\",\"messageId\":\"m\",\"userId\":\"u\",\"groupId\":\"g-1\","
	   "\"traits\":{\"name\":\"Acme\"}}",
	   "{\"event_id\":\"m\",\"event_type\":\"group\",\"user_id\":\"u\","
	   "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{\"groupId\":\"g-1\","
	   "\"traits\":{\"name\":\"Acme\"}}}");
	ok("{\"type\":\"group\",\"messageId\":\"m\",\"userId\":\"u\",\"groupId\":\"g\"}",
	   "{\"event_id\":\"m\",\"event_type\":\"group\",\"user_id\":\"u\","
	   "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{\"groupId\":\"g\","
	   "\"traits\":{}}}");
	bad("{\"type\":\"group\",\"userId\":\"u\"}",
	    "field 'groupId': missing (a Segment group call needs groupId)");
	bad("{\"type\":\"group\",\"userId\":\"u\",\"groupId\":7}",
	    "field 'groupId': expected a string, got 7");
	ok("{\"type\":\"alias\",\"messageId\":\"m\",\"userId\":\"u-new\",\"previousId\":\"a-old\"}",
	   "{\"event_id\":\"m\",\"event_type\":\"alias\",\"user_id\":\"u-new\","
	   "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{\"previousId\":\"a-old\"}}");
	bad("{\"type\":\"alias\",\"userId\":\"u\"}",
	    "field 'previousId': missing (a Segment alias call needs previousId)");
	bad("{\"type\":\"alias\",\"userId\":\"u\",\"previousId\":\"\"}",
	    "field 'previousId': expected a string of 1-128 bytes, got \"\"");
}

static void test_segment_routes(void **state)
{
	char id1[sizeof(out_text)];

	/* the call is the caller's: no type needed, other shapes' keys ignored; the
	 * derived id is BLAKE2b-128 of "identify" and the body (Python's hashlib) */
	assert_int_equal(norm_as("{\"userId\":\"u\",\"traits\":{\"a\":1},\"event_type\":\"x\","
	                         "\"specversion\":\"1.0\"}",
	                         CM_SEG_IDENTIFY),
	                 0);
	assert_string_equal(out_text,
	                    "{\"event_id\":\"ev-dde83577d6cbbf3ef5cfd07ea3a8cee7\",\"event_type\":"
	                    "\"identify\",\"user_id\":\"u\",\"occurred_at\":"
	                    "\"2026-11-27T10:15:00Z\",\"properties\":{\"a\":1}}");
	/* one body as two calls: two derived ids; a track's is cm-ingest's */
	assert_int_equal(norm_as("{\"userId\":\"u\",\"event\":\"x\"}", CM_SEG_PAGE), 0);
	snprintf(id1, sizeof(id1), "%s", out_text);
	assert_int_equal(norm_as("{\"userId\":\"u\",\"event\":\"x\"}", CM_SEG_TRACK), 0);
	assert_string_not_equal(id1, out_text);
	assert_int_equal(norm("{\"userId\":\"u\",\"event\":\"x\"}"), 0);
	snprintf(id1, sizeof(id1), "%s", out_text);
	assert_int_equal(norm_as("{\"userId\":\"u\",\"event\":\"x\"}", CM_SEG_TRACK), 0);
	assert_string_equal(id1, out_text);
	/* a type that disagrees with the call, or a batch item without one */
	assert_int_equal(norm_as("{\"type\":\"page\",\"userId\":\"u\"}", CM_SEG_TRACK), -1);
	assert_string_equal(err_text,
	                    "field 'type': expected \"track\" (the call sent), got \"page\"");
	assert_int_equal(norm_as("{\"userId\":\"u\"}", CM_SEG_ANY), -1);
	assert_string_equal(err_text, "field 'type': missing (required: track, identify, page, "
	                              "screen, group or alias)");
	assert_int_equal(norm_as("{\"type\":\"Track\",\"userId\":\"u\"}", CM_SEG_ANY), -1);
	assert_string_equal(err_text, "field 'type': expected track, identify, page, screen, group "
	                              "or alias, got \"Track\"");
	assert_int_equal(norm_as("{\"type\":\"screen\",\"userId\":\"u\"}", CM_SEG_ANY), 0);
	assert_non_null(strstr(out_text, "\"event_type\":\"screen_view\""));
	assert_int_equal(norm_as("[1]", CM_SEG_TRACK), -1);
	assert_string_equal(err_text, "expected a JSON object, got an array");
	assert_int_equal(norm_as("{}", 99), -1);
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
	assert_string_equal(err_text,
	                    "field 'x': unknown key (event data belongs under 'properties')");
	assert_int_equal(check(E1 "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{},"
	                          "\"type\":\"track\"}"),
	                 -1);
	assert_string_equal(err_text,
	                    "field 'type': unknown key (event data belongs under 'properties')");
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

/* Runs validator fn (cm_event_validate and the like) on json; returns its
 * result, the message in err_text, the view in *v. */
static int validate_with(int (*fn)(const struct cm_jdoc *, uint32_t, struct cm_event_view *,
                                   struct cm_err *),
                         const char *json, size_t len, struct cm_event_view *v)
{
	struct cm_jdoc d;
	struct cm_err err;
	int rc;

	err_text[0] = 0;
	cm_jdoc_init(&d, 64);
	if (cm_json_parse(&d, json, len, &err) != 0)
		fail_msg("%.200s: %s", json, err.msg);
	rc = fn(&d, 0, v, &err);
	if (rc)
		snprintf(err_text, sizeof(err_text), "%s", err.msg);
	cm_jdoc_release(&d);
	return rc;
}

/* Asserts that cm_event_validate accepts json. */
static void valid(const char *json)
{
	struct cm_event_view v;

	if (validate_with(cm_event_validate, json, strlen(json), &v))
		fail_msg("%.300s: %s", json, err_text);
}

/* Asserts that cm_event_validate refuses json with exactly the message want. */
static void invalid(const char *json, const char *want)
{
	struct cm_event_view v;

	if (validate_with(cm_event_validate, json, strlen(json), &v) == 0)
		fail_msg("%.300s: accepted", json);
	assert_string_equal(err_text, want);
}

#define EV0 "{\"event_id\":\"e\",\"event_type\":\"t\",\"user_id\":\"u\","
#define EVT EV0 "\"occurred_at\":\"2026-11-27T10:15:00Z\","
/* An event whose properties are P, and one with more top-level members M. */
#define WITH_PROPS(p) EVT "\"properties\":" p "}"
#define WITH(m)       EVT "\"properties\":{}," m "}"

static void test_validate_view(void **state)
{
	static const char line[] =
	    "{\"_stream_id\":\"1-2\",\"event_id\":\"e-1\",\"event_type\":\"\\u0062uy\","
	    "\"user_id\":\"u\",\"occurred_at\":\"2026-11-27T11:15:00.5+01:00\",\"properties\":{"
	    "\"a\":1},"
	    "\"matches\":[{\"campaign_id\":7}]}";
	struct cm_event_view v;
	struct cm_jdoc d;
	struct cm_err err;

	cm_jdoc_init(&d, 0);
	assert_int_equal(cm_json_parse(&d, line, strlen(line), &err), 0);
	assert_int_equal(cm_event_validate(&d, 0, &v, &err), 0);
	assert_false(v.is_match);
	assert_true(v.has_meta);
	assert_true(cm_json_str_eq(&d, v.id, "e-1", 3));
	assert_true(cm_json_str_eq(&d, v.id - 1, "event_id", 8));
	assert_true(cm_json_str_eq(&d, v.user, "u", 1));
	assert_true(cm_json_str_eq(&d, v.type - 1, "event_type", 10));
	assert_true(cm_json_str_eq(&d, v.time - 1, "occurred_at", 11));
	assert_int_equal(d.tok[v.props].type, CM_JOBJ);
	assert_true(cm_json_str_eq(&d, v.props - 1, "properties", 10));
	assert_int_equal(d.tok[v.matches].type, CM_JARR);
	assert_true(cm_json_str_eq(&d, v.matches - 1, "matches", 7));
	assert_int_equal(v.campaign, CM_JNONE);
	assert_string_equal(v.type_text, "buy");
	assert_int_equal(v.type_len, 3);
	assert_int_equal(v.occurred_ms, NOW + 500);
	assert_int_equal(v.root, 0);
	/* without matches and "_" keys */
	assert_int_equal(
	    validate_with(cm_event_validate, WITH_PROPS("{}"), strlen(WITH_PROPS("{}")), &v), 0);
	assert_int_equal(v.matches, CM_JNONE);
	assert_false(v.has_meta);
	cm_jdoc_release(&d);
}

static void test_validate_fields(void **state)
{
	invalid("{\"event_type\":\"t\",\"user_id\":\"u\",\"occurred_at\":\"2026-11-27T10:15:00Z\","
	        "\"properties\":{}}",
	        "field 'event_id': missing (required)");
	invalid(EV0 "\"occurred_at\":\"2026-11-27T10:15:00Z\"}",
	        "field 'properties': missing (required)");
	invalid(WITH_PROPS("null"), "field 'properties': expected an object, got null");
	invalid(WITH_PROPS("[1,2]"), "field 'properties': expected an object, got an array");
	invalid("{\"event_id\":null,\"event_type\":\"t\",\"user_id\":\"u\","
	        "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}",
	        "field 'event_id': expected a string, got null");
	invalid(EV0 "\"occurred_at\":null,\"properties\":{}}",
	        "field 'occurred_at': expected an RFC 3339 time, got null");
	invalid(WITH("\"extra\":5"), "field 'extra': unknown key (event data belongs under "
	                             "'properties')");
	invalid(WITH("\"campaign_id\":5"), "field 'campaign_id': unknown key (event data belongs "
	                                   "under 'properties')");
	invalid(WITH("\"messageId\":\"m\""), "field 'messageId': unknown key (event data belongs "
	                                     "under 'properties')");
	invalid(WITH("\"event_id\":\"f\""), "field 'event_id': duplicate key");
	/* "_" keys may be anything */
	valid(WITH("\"_x\":[1,{\"y\":null}],\"_\":1,\"\\u005fz\":\"s\""));
	/* the lengths are those of the decoded text */
	{
		char line[1024], id[400];

		memset(id, 'i', 128);
		id[128] = 0;
		snprintf(line, sizeof(line),
		         "{\"event_id\":\"%s\",\"event_type\":\"t\",\"user_id\":\"%s\","
		         "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}",
		         id, id);
		valid(line);
		/* 64 x "\u00e9" is 384 bytes as written, 128 decoded */
		id[0] = 0;
		for (int i = 0; i < 64; i++)
			strcat(id, "\\u00e9");
		snprintf(line, sizeof(line),
		         "{\"event_id\":\"%s\",\"event_type\":\"t\",\"user_id\":\"u\","
		         "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}",
		         id);
		valid(line);
		strcat(id, "x");
		snprintf(line, sizeof(line),
		         "{\"event_id\":\"%s\",\"event_type\":\"t\",\"user_id\":\"u\","
		         "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}",
		         id);
		invalid(line, "field 'event_id': expected a string of 1-128 bytes, got 129 bytes");
	}
}

static void test_validate_matches(void **state)
{
	valid(WITH("\"matches\":[]"));
	valid(WITH("\"matches\":[{\"campaign_id\":1},{\"campaign_id\":9223372036854775807}]"));
	valid(WITH("\"matches\":[{\"campaign_id\":7,\"outcome\":\"holdout\",\"variant\":\"B\"},"
	           "{\"outcome\":\"capped\",\"campaign_id\":8},{\"campaign_id\":9,\"outcome\":"
	           "\"matched\"}]"));
	invalid(WITH("\"matches\":{}"), "field 'matches': expected an array, got an object");
	invalid(WITH("\"matches\":null"), "field 'matches': expected an array, got null");
	invalid(WITH("\"matches\":[7]"),
	        "field 'matches[0]': expected an object such as {\"campaign_id\":7}, got 7");
	invalid(WITH("\"matches\":[{\"campaign_id\":1},{}]"),
	        "field 'matches[1].campaign_id': missing (required)");
#define CID(v, got)                                                                                \
	invalid(WITH("\"matches\":[{\"campaign_id\":" v "}]"),                                     \
	        "field 'matches[0].campaign_id': expected an integer campaign id from 1 to "       \
	        "9223372036854775807, got " got)
	CID("0", "0");
	CID("-1", "-1");
	CID("1.0", "1.0");
	CID("1e2", "1e2");
	CID("\"7\"", "\"7\"");
	CID("null", "null");
	CID("9223372036854775808", "9223372036854775808");
	CID("10000000000000000000", "10000000000000000000");
#undef CID
	invalid(WITH("\"matches\":[{\"campaign_id\":1,\"outcome\":\"sent\"}]"),
	        "field 'matches[0].outcome': expected \"matched\", \"holdout\" or \"capped\", got "
	        "\"sent\"");
	invalid(WITH("\"matches\":[{\"campaign_id\":1,\"variant\":3}]"),
	        "field 'matches[0].variant': expected a string, got 3");
	invalid(WITH("\"matches\":[{\"campaign_id\":1,\"variant\":\"\"}]"),
	        "field 'matches[0].variant': expected a string of 1-128 bytes, got \"\"");
	invalid(
	    WITH("\"matches\":[{\"campaign_id\":1,\"why\":1}]"),
	    "field 'matches[0].why': unknown key (a match has campaign_id, outcome, variant and "
	    "limit)");
	invalid(WITH("\"matches\":[{\"campaign_id\":1,\"campaign_id\":2}]"),
	        "field 'matches[0].campaign_id': duplicate key");
}

/* A match's limit (CONTRACT 1.6), in a match object and on a match line. */
static void test_validate_limit(void **state)
{
	valid(WITH("\"matches\":[{\"campaign_id\":1,\"outcome\":\"matched\",\"limit\":"
	           "{\"per_user\":1,\"cooldown\":\"P7D\"}},{\"campaign_id\":2,\"limit\":"
	           "{\"cooldown\":\"PT0.001S\"}},{\"limit\":{\"per_user\":2147483647},"
	           "\"campaign_id\":3}]"));
	valid(WITH("\"matches\":[{\"campaign_id\":1,\"limit\":{\"cooldown\":\"P\\u0037D\"}}]"));
#define LIM(v, want)                                                                               \
	invalid(WITH("\"matches\":[{\"campaign_id\":1},{\"campaign_id\":2,\"limit\":" v "}]"),     \
	        "field 'matches[1].limit" want)
	LIM("1", "': expected an object such as {\"per_user\":1,\"cooldown\":\"P7D\"}, got 1");
	LIM("null",
	    "': expected an object such as {\"per_user\":1,\"cooldown\":\"P7D\"}, got null");
	LIM("{}", "': expected per_user, cooldown or both, got {}");
	LIM("{\"per_user\":1,\"max\":2}", ".max': unknown key (a limit has per_user and cooldown)");
	LIM("{\"per_user\":1,\"per_user\":2}", ".per_user': duplicate key");
	LIM("{\"per_user\":0}", ".per_user': expected an integer from 1 to 2147483647, got 0");
	LIM("{\"per_user\":2147483648}",
	    ".per_user': expected an integer from 1 to 2147483647, got 2147483648");
	LIM("{\"per_user\":1.0}", ".per_user': expected an integer from 1 to 2147483647, got 1.0");
	LIM("{\"per_user\":1e1}", ".per_user': expected an integer from 1 to 2147483647, got 1e1");
	LIM("{\"per_user\":\"1\"}",
	    ".per_user': expected an integer from 1 to 2147483647, got \"1\"");
	LIM("{\"per_user\":null}",
	    ".per_user': expected an integer from 1 to 2147483647, got null");
	LIM("{\"cooldown\":\"7 days\"}", ".cooldown': expected an ISO 8601 duration above zero "
	                                 "such as \"P7D\" or \"PT12H\", got \"7 days\"");
	LIM("{\"cooldown\":\"P1M\"}", ".cooldown': expected an ISO 8601 duration above zero such "
	                              "as \"P7D\" or \"PT12H\", got \"P1M\"");
	LIM("{\"cooldown\":\"P0D\"}", ".cooldown': expected an ISO 8601 duration above zero such "
	                              "as \"P7D\" or \"PT12H\", got \"P0D\"");
	LIM("{\"cooldown\":604800000}", ".cooldown': expected an ISO 8601 duration above zero "
	                                "such as \"P7D\" or \"PT12H\", got 604800000");
	LIM("{\"per_user\":1,\"cooldown\":\"P\\u0000D\"}",
	    ".cooldown': expected an ISO 8601 duration above zero such as \"P7D\" or \"PT12H\", "
	    "got \"P\\u0000D\"");
#undef LIM
	/* a top-level limit is no event key */
	invalid(WITH("\"limit\":{\"per_user\":1}"),
	        "field 'limit': unknown key (event data belongs under 'properties')");
}

/* cm_match_limit_read gives the values, 0 where a part is not set. */
static void test_limit_read(void **state)
{
	static const char *const texts[] = {"{\"per_user\":3,\"cooldown\":\"PT1.5S\"}",
	                                    "{\"cooldown\":\"P2W\"}", "{\"per_user\":1}",
	                                    "{\"per_user\":0}"};
	static const int64_t want[][2] = {{3, 1500}, {0, 14LL * 86400000}, {1, 0}};
	struct cm_match_limit lim;
	struct cm_jdoc d;
	struct cm_err err;

	cm_jdoc_init(&d, 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(cm_json_parse(&d, texts[i], strlen(texts[i]), &err), 0);
		if (i == 3) {
			assert_int_equal(cm_match_limit_read(&d, 0, &lim, &err), -1);
			assert_string_equal(err.msg, "field 'limit.per_user': expected an integer "
			                             "from 1 to 2147483647, got 0");
			continue;
		}
		assert_int_equal(cm_match_limit_read(&d, 0, &lim, &err), 0);
		assert_int_equal(lim.per_user, want[i][0]);
		assert_int_equal(lim.cooldown_ms, want[i][1]);
	}
	cm_jdoc_release(&d);
}

static void test_validate_nul(void **state)
{
	/* in every place a string or a key can be */
	invalid(WITH_PROPS("{\"a\":\"x\\u0000\"}"),
	        "field 'properties.a': must not contain NUL (\\u0000), got \"x\\u0000\"");
	invalid(WITH_PROPS("{\"a\":{\"b\":[1,[\"\\u0000\"]]}}"),
	        "field 'properties.a.b[1][0]': must not contain NUL (\\u0000), got \"\\u0000\"");
	invalid(WITH_PROPS("{\"a\\u0000b\":1}"),
	        "field 'properties.a\\u0000b': a key must not contain NUL (\\u0000)");
	invalid(WITH_PROPS("{\"a\":{\"\\u0000\":1}}"),
	        "field 'properties.a.\\u0000': a key must not contain NUL (\\u0000)");
	invalid(WITH("\"_m\":{\"x\":\"\\u0000\"}"),
	        "field '_m.x': must not contain NUL (\\u0000), got \"\\u0000\"");
	invalid(WITH("\"_\\u0000\":1"), "field '_\\u0000': a key must not contain NUL (\\u0000)");
	invalid(WITH("\"matches\":[{\"campaign_id\":1,\"variant\":\"\\u0000\"}]"),
	        "field 'matches[0].variant': must not contain NUL (\\u0000), got \"\\u0000\"");
	invalid("{\"event_id\":\"\\u0000\",\"event_type\":\"t\",\"user_id\":\"u\","
	        "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}",
	        "field 'event_id': must not contain NUL (\\u0000), got \"\\u0000\"");
	invalid("{\"event_id\":\"e\",\"event_type\":\"t\\u0000\",\"user_id\":\"u\","
	        "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}",
	        "field 'event_type': expected 1-64 bytes of [A-Za-z0-9_.:-], got \"t\\u0000\"");
	invalid(
	    EV0 "\"occurred_at\":\"2026-11-27T10:15:00Z\\u0000\",\"properties\":{}}",
	    "field 'occurred_at': expected an RFC 3339 time, got \"2026-11-27T10:15:00Z\\u0000\"");
	/* an escaped backslash before "u0000" is no NUL */
	valid(WITH_PROPS("{\"a\":\"\\\\u0000\"}"));
	/* a long key is cut in the message */
	invalid(WITH_PROPS(
	            "{\"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk\":\"\\u0000\"}"),
	        "field 'properties.kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...': must not contain "
	        "NUL (\\u0000), got \"\\u0000\"");
}

static void test_validate_surrogates(void **state)
{
	valid(WITH_PROPS(
	    "{\"smile\":\"\\ud83d\\ude00\",\"max\":\"\\udbff\\udfff\",\"k\\uD83D\\uDE00\":1}"));
	valid(WITH_PROPS("{\"raw\":\"\xf0\x9f\x98\x80\",\"bmp\":\"\\uffff\\ufffe\"}"));
	invalid(
	    WITH_PROPS("{\"a\":\"\\ud800\"}"),
	    "field 'properties.a': unpaired surrogate escape (\\uD800-\\uDFFF), got \"\\ud800\"");
	invalid(
	    WITH_PROPS("{\"a\":\"\\uDC00x\"}"),
	    "field 'properties.a': unpaired surrogate escape (\\uD800-\\uDFFF), got \"\\uDC00x\"");
	invalid(WITH_PROPS("{\"a\":[\"\\ud800\\u0041\"]}"),
	        "field 'properties.a[0]': unpaired surrogate escape (\\uD800-\\uDFFF), got "
	        "\"\\ud800\\u0041\"");
	invalid(WITH_PROPS("{\"\\udfff\":1}"), "field 'properties.\\udfff': a key must not contain "
	                                       "an unpaired surrogate escape (\\uD800-\\uDFFF)");
	invalid("{\"event_id\":\"e\",\"event_type\":\"t\",\"user_id\":\"\\ud800\","
	        "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{}}",
	        "field 'user_id': unpaired surrogate escape (\\uD800-\\uDFFF), got \"\\ud800\"");
}

/* Asserts that the number text num is accepted (ok) or refused in properties. */
static void number(const char *num, int ok)
{
	size_t n = strlen(num);
	char *line = malloc(n + 200);
	struct cm_event_view v;
	int rc;

	assert_non_null(line);
	n = (size_t)sprintf(line, EVT "\"properties\":{\"n\":%s}}", num);
	rc = validate_with(cm_event_validate, line, n, &v);
	if (ok && rc)
		fail_msg("%.60s (%zu bytes) refused: %s", num, strlen(num), err_text);
	if (!ok && !rc)
		fail_msg("%.60s (%zu bytes) accepted", num, strlen(num));
	if (!ok && strncmp(err_text,
	                   "field 'properties.n': number out of the range PostgreSQL can store (at "
	                   "most 131072 digits before the decimal point and 16383 after it, the "
	                   "exponent applied), got ",
	                   150))
		fail_msg("%s", err_text);
	free(line);
}

/* prefix, n digits (a 1 and zeros; the 1 first when lead, else last), suffix. */
static char *digits(size_t n, int lead, const char *prefix, const char *suffix)
{
	size_t pl = strlen(prefix), sl = strlen(suffix);
	char *s = malloc(pl + n + sl + 1);

	assert_non_null(s);
	memcpy(s, prefix, pl);
	memset(s + pl, '0', n);
	s[lead ? pl : pl + n - 1] = '1';
	memcpy(s + pl + n, suffix, sl + 1);
	return s;
}

static void test_validate_numbers(void **state)
{
	/* the boundaries found against PostgreSQL 15 (see event.h) */
	number("1e400", 1);
	number("-0", 1);
	number("1e131071", 1);
	number("9.999e131071", 1);
	number("1e131072", 0);
	number("10e131071", 0);
	number("0.1e131072", 1);
	number("0.1e131073", 0);
	number("1e-16383", 1);
	number("1e-16384", 0);
	number("1.5e-16383", 0);
	number("0e-16383", 1);
	number("0e-16384", 0);
	number("0.0e131072", 1);
	number("0e1073741822", 1);
	number("0e1073741823", 0);
	number("0e-1073741822", 0); /* its scale is too large */
	number("1e1073741822", 0);
	number("1e99999999999999999999", 0);
	number("1e0000000000000000000005", 1);
	number("1E+00131071", 1);
	/* long digit strings: 131072 digits before the point, 16383 after */
	{
		char *a = digits(131072, 1, "", ""), *b = digits(131073, 1, "", "");
		char *c = digits(16383, 0, "0.", ""), *e = digits(16384, 0, "0.", "");
		char *f = digits(16383, 0, "-1.", "e0"), *g = digits(131073, 1, "", "e-1");

		number(a, 1);
		number(b, 0);
		number(c, 1);
		number(e, 0);
		number(f, 1);
		number(g, 1);
		free(a);
		free(b);
		free(c);
		free(e);
		free(f);
		free(g);
	}
	/* in matches and "_" keys too: one rule for every number of the line */
	invalid(WITH("\"_n\":[1e-99999]"),
	        "field '_n[0]': number out of the range PostgreSQL can "
	        "store (at most 131072 digits before the decimal point "
	        "and 16383 after it, the exponent applied), got 1e-99999");
}

static void test_validate_times(void **state)
{
	valid(EV0 "\"occurred_at\":\"0001-01-01T00:00:00Z\",\"properties\":{}}");
	valid(EV0 "\"occurred_at\":\"9999-12-31T23:59:59.999Z\",\"properties\":{}}");
	valid(EV0 "\"occurred_at\":\"0001-01-01T05:30:00+05:30\",\"properties\":{}}");
	valid(EV0 "\"occurred_at\":\"9999-12-31T11:59:59-12:00\",\"properties\":{}}");
	invalid(EV0 "\"occurred_at\":\"0001-01-01T00:00:00+01:00\",\"properties\":{}}",
	        "field 'occurred_at': \"0001-01-01T00:00:00+01:00\" is outside the years 0001-9999 "
	        "once in UTC (from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z)");
	invalid(EV0 "\"occurred_at\":\"9999-12-31T23:59:60Z\",\"properties\":{}}",
	        "field 'occurred_at': \"9999-12-31T23:59:60Z\" is outside the years 0001-9999 once "
	        "in UTC (from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z)");
	invalid(EV0 "\"occurred_at\":\"0000-06-01T00:00:00Z\",\"properties\":{}}",
	        "field 'occurred_at': \"0000-06-01T00:00:00Z\" is outside the years 0001-9999 once "
	        "in UTC (from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z)");
	invalid(EV0 "\"occurred_at\":\"10000-01-01T00:00:00Z\",\"properties\":{}}",
	        "field 'occurred_at': expected an RFC 3339 time, got \"10000-01-01T00:00:00Z\"");
	/* normalising refuses them under the input's name */
	bad("{\"type\":\"track\",\"event\":\"x\",\"userId\":\"u\","
	    "\"timestamp\":\"9999-12-31T23:00:00-01:00\"}",
	    "field 'timestamp': \"9999-12-31T23:00:00-01:00\" is outside the years 0001-9999 once "
	    "in UTC (from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z)");
	ok(E1 "\"occurred_at\":\"0001-01-01T05:30:00+05:30\"}",
	   E1 "\"occurred_at\":\"0001-01-01T00:00:00Z\",\"properties\":{}}");
	ok(E1 "\"occurred_at\":\"9999-12-31T11:59:59.999-12:00\"}",
	   E1 "\"occurred_at\":\"9999-12-31T23:59:59.999Z\",\"properties\":{}}");
}

static void test_match_lines(void **state)
{
#define ML "{\"campaign_id\":7,\"event_id\":\"e\",\"user_id\":\"u\",\"event_type\":\"t\","
	static const char good[] =
	    ML "\"occurred_at\":\"2026-11-27T11:15:00+01:00\","
	       "\"outcome\":\"matched\",\"variant\":\"A\",\"_stream_id\":\"1-0\"}";
	struct cm_event_view v;

	assert_int_equal(validate_with(cm_match_validate, good, strlen(good), &v), 0);
	assert_true(v.is_match);
	assert_int_equal(v.campaign_id, 7);
	assert_int_equal(v.occurred_ms, NOW);
	assert_true(v.has_meta);
	assert_int_not_equal(v.outcome, CM_JNONE);
	assert_int_not_equal(v.variant, CM_JNONE);
	assert_int_equal(v.props, CM_JNONE);
	/* cm_record_validate tells the two apart */
	assert_int_equal(validate_with(cm_record_validate, good, strlen(good), &v), 0);
	assert_true(v.is_match);
	assert_int_equal(
	    validate_with(cm_record_validate, WITH_PROPS("{}"), strlen(WITH_PROPS("{}")), &v), 0);
	assert_false(v.is_match);
	/* and an event is not a match line, nor the other way round */
	assert_int_equal(
	    validate_with(cm_match_validate, WITH_PROPS("{}"), strlen(WITH_PROPS("{}")), &v), -1);
	assert_string_equal(err_text, "field 'properties': unknown key (a match line has "
	                              "campaign_id, event_id, user_id, event_type, occurred_at, "
	                              "outcome, variant and limit)");
	assert_int_equal(validate_with(cm_event_validate, good, strlen(good), &v), -1);
	assert_string_equal(err_text, "field 'campaign_id': unknown key (event data belongs under "
	                              "'properties')");
#define BADML(line, want)                                                                          \
	do {                                                                                       \
		assert_int_equal(validate_with(cm_record_validate, line, strlen(line), &v), -1);   \
		assert_string_equal(err_text, want);                                               \
	} while (0)
	BADML(ML "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"x\":1}",
	      "field 'x': unknown key (a match line has campaign_id, event_id, user_id, "
	      "event_type, occurred_at, outcome, variant and limit)");
	BADML(ML "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"matches\":[]}",
	      "field 'matches': unknown key (a match line has campaign_id, event_id, user_id, "
	      "event_type, occurred_at, outcome, variant and limit)");
	BADML("{\"campaign_id\":\"7\",\"event_id\":\"e\"}",
	      "field 'campaign_id': expected an integer campaign id from 1 to 9223372036854775807, "
	      "got \"7\"");
	BADML(
	    ML "\"occurred_at\":\"0000-12-31T00:00:00Z\"}",
	    "field 'occurred_at': \"0000-12-31T00:00:00Z\" is outside the years 0001-9999 once in "
	    "UTC (from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z)");
	BADML("{\"campaign_id\":7,\"user_id\":\"u\",\"event_type\":\"t\","
	      "\"occurred_at\":\"2026-11-27T10:15:00Z\"}",
	      "field 'event_id': missing (required)");
	BADML(ML "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"outcome\":\"x\"}",
	      "field 'outcome': expected \"matched\", \"holdout\" or \"capped\", got \"x\"");
	BADML(ML "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"_m\":\"\\u0000\"}",
	      "field '_m': must not contain NUL (\\u0000), got \"\\u0000\"");
	BADML(ML "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"limit\":{\"per_user\":-1}}",
	      "field 'limit.per_user': expected an integer from 1 to 2147483647, got -1");
	{
		static const char lim[] =
		    ML "\"occurred_at\":\"2026-11-27T10:15:00Z\","
		       "\"outcome\":\"holdout\",\"limit\":{\"cooldown\":\"PT12H\"}}";

		assert_int_equal(validate_with(cm_record_validate, lim, strlen(lim), &v), 0);
		assert_true(v.is_match);
		assert_int_not_equal(v.limit, CM_JNONE);
	}
#undef BADML
#undef ML
}

/* The parse-and-validate entries of the tools. */
static void test_parse_entries(void **state)
{
	struct cm_jdoc d;
	struct cm_event_view v;
	struct cm_err err;
	static const char ev[] = WITH_PROPS("{}");

	cm_jdoc_init(&d, 0);
	assert_int_equal(cm_event_parse(&d, ev, strlen(ev), &v, &err), 0);
	assert_int_equal(cm_record_parse(&d, ev, strlen(ev), &v, &err), 0);
	assert_int_equal(cm_event_parse(&d, "{", 1, &v, &err), -1);
	assert_string_equal(err.msg, "invalid JSON: byte 2: expected '\"' to start a member name, "
	                             "found end of input");
	assert_int_equal(cm_record_parse(&d, "7", 1, &v, &err), -1);
	assert_string_equal(err.msg, "expected a JSON object, got 7");
	cm_jdoc_release(&d);
}

/* Normalising checks every part it copies, under the input's names, and
 * ignores what it drops. */
static void test_normalize_storable(void **state)
{
	bad("{\"specversion\":\"1.0\",\"id\":\"c\",\"type\":\"t\",\"subject\":\"s\","
	    "\"data\":{\"x\":[\"\\u0000\"]}}",
	    "field 'data.x[0]': must not contain NUL (\\u0000), got \"\\u0000\"");
	bad("{\"type\":\"track\",\"event\":\"x\",\"userId\":\"u\",\"properties\":{\"n\":1e-20000}}",
	    "field 'properties.n': number out of the range PostgreSQL can store (at most 131072 "
	    "digits before the decimal point and 16383 after it, the exponent applied), got "
	    "1e-20000");
	bad("{\"type\":\"track\",\"event\":\"x\",\"userId\":\"u\\udc00\"}",
	    "field 'userId': unpaired surrogate escape (\\uD800-\\uDFFF), got \"u\\udc00\"");
	bad("{\"type\":\"track\",\"messageId\":\"m\\u0000\",\"event\":\"x\",\"userId\":\"u\"}",
	    "field 'messageId': must not contain NUL (\\u0000), got \"m\\u0000\"");
	bad("{\"event_type\":\"a\",\"user_id\":\"u\",\"_meta\":{\"k\":\"\\ud800\"}}",
	    "field '_meta.k': unpaired surrogate escape (\\uD800-\\uDFFF), got \"\\ud800\"");
	bad("{\"event_type\":\"a\",\"user_id\":\"u\",\"\\u0000\":1}",
	    "field '\\u0000': unknown key; event data belongs under 'properties' (or map the "
	    "record with cm-ingest --jq)");
	/* Segment's and CloudEvents' other keys are not copied, so not checked */
	ok("{\"type\":\"track\",\"messageId\":\"m\",\"event\":\"x\",\"userId\":\"u\","
	   "\"context\":{\"ip\":\"\\u0000\",\"n\":1e999999}}",
	   "{\"event_id\":\"m\",\"event_type\":\"x\",\"user_id\":\"u\",\"occurred_at\":"
	   "\"2026-11-27T10:15:00Z\",\"properties\":{}}");
	/* what it writes, every validator accepts */
	ok("{\"event_type\":\"a\",\"user_id\":\"u\",\"properties\":{\"big\":1e400,\"z\":-0,"
	   "\"s\":\"\\ud83d\\ude00\\\\u0000\"},\"_m\":1e131071}",
	   "{\"event_id\":\"ev-4c461d2f7f1280f2554db030d37da0ac\",\"event_type\":\"a\",\"user_id\":"
	   "\"u\",\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{\"big\":1e400,\"z\":-0,"
	   "\"s\":\"\\ud83d\\ude00\\\\u0000\"},\"_m\":1e131071}");
	valid(out_text);
}

/* The builder gives the line it built the checks every event gets. */
static void test_build_storable(void **state)
{
	struct cm_event_parts p;
	struct cm_jdoc d;

	memset(&p, 0, sizeof(p));
	p.type = "t";
	p.type_len = 1;
	p.user = "u";
	p.user_len = 1;
	p.props = "{\"note\":\"a\\u0000b\"}";
	p.props_len = strlen(p.props);
	assert_int_equal(build(&p, "abc"), -1);
	assert_string_equal(
	    err_text, "field 'properties.note': must not contain NUL (\\u0000), got \"a\\u0000b\"");
	p.props = "{\"n\":1e131072}";
	p.props_len = strlen(p.props);
	assert_int_equal(build(&p, "abc"), -1);
	assert_non_null(strstr(err_text, "field 'properties.n': number out of the range"));
	p.props = "{\"n\":";
	p.props_len = strlen(p.props);
	assert_int_equal(build(&p, "abc"), -1);
	assert_non_null(strstr(err_text, "field 'properties': not valid JSON: byte "));
	/* a text that is not one object cannot add keys to the event */
	p.props = "{},\"_x\":1";
	p.props_len = strlen(p.props);
	assert_int_equal(build(&p, "abc"), -1);
	assert_string_equal(err_text,
	                    "field 'properties': not valid JSON: byte 3: expected the end "
	                    "of input after the JSON value, found ','");
	p.props = NULL;
	p.time = "0001-01-01T00:00:00+00:01";
	p.time_len = strlen(p.time);
	assert_int_equal(build(&p, "abc"), -1);
	assert_string_equal(err_text,
	                    "field 'occurred_at': \"0001-01-01T00:00:00+00:01\" is outside "
	                    "the years 0001-9999 once in UTC (from 0001-01-01T00:00:00Z to "
	                    "9999-12-31T23:59:59.999Z)");
	/* with a document of the caller's */
	cm_jdoc_init(&d, 0);
	p.doc = &d;
	p.time = NULL;
	p.props = "{\"ok\":1e400}";
	p.props_len = strlen(p.props);
	assert_int_equal(build(&p, "abc"), 0);
	valid(out_text);
	cm_jdoc_release(&d);
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
	    cmocka_unit_test(test_segment_calls),
	    cmocka_unit_test(test_segment_routes),
	    cmocka_unit_test(test_cloudevents),
	    cmocka_unit_test(test_out_untouched_on_error),
	    cmocka_unit_test(test_check),
	    cmocka_unit_test(test_normalized_passes_check),
	    cmocka_unit_test(test_build),
	    cmocka_unit_test(test_put_str),
	    cmocka_unit_test(test_put_str_every_byte),
	    cmocka_unit_test(test_type_ok),
	    cmocka_unit_test(test_validate_view),
	    cmocka_unit_test(test_validate_fields),
	    cmocka_unit_test(test_validate_matches),
	    cmocka_unit_test(test_validate_limit),
	    cmocka_unit_test(test_limit_read),
	    cmocka_unit_test(test_validate_nul),
	    cmocka_unit_test(test_validate_surrogates),
	    cmocka_unit_test(test_validate_numbers),
	    cmocka_unit_test(test_validate_times),
	    cmocka_unit_test(test_match_lines),
	    cmocka_unit_test(test_parse_entries),
	    cmocka_unit_test(test_normalize_storable),
	    cmocka_unit_test(test_build_storable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
