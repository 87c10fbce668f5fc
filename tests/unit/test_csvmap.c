/* Tests for csvmap.c: a CSV header's names, types and roles (--types and
 * ":type" suffixes), the checks of typed cells and a record as the --raw
 * object and as the canonical event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "csvin.h"
#include "csvmap.h"
#include "err.h"
#include "event.h"

/* 2026-11-27T10:15:00Z, for events without occurred_at. */
#define NOW 1795774500000LL

/* A header and records read from CSV text, with the map set up on the
 * header; the records are read one at a time by next_rec. */
struct fix {
	struct cm_csvin in;
	struct cm_csvmap map;
	struct cm_csvrec rec;
	struct cm_err err;
};

/* Reads text's first record as the header; returns cm_csvmap_header's rc. */
static int setup(struct fix *f, const char *text, int raw, const char *types)
{
	cm_csvin_init_mem(&f->in, text, strlen(text), "t", ',', 1024);
	cm_csvmap_init(&f->map, raw, 1, 64);
	if (types)
		assert_int_equal(cm_csvmap_types(&f->map, types, &f->err), 0);
	assert_int_equal(cm_csvin_next(&f->in, &f->rec, &f->err), CM_CSV_OK);
	return cm_csvmap_header(&f->map, &f->rec, &f->err);
}

static void next_rec(struct fix *f)
{
	assert_int_equal(cm_csvin_next(&f->in, &f->rec, &f->err), CM_CSV_OK);
	assert_int_equal(f->rec.n, f->map.n);
}

static void done(struct fix *f)
{
	cm_csvmap_release(&f->map);
	cm_csvin_release(&f->in);
}

/* The header's error message for text, which must fail with code 2. */
static void expect_header_error(const char *text, int raw, const char *types, const char *want)
{
	struct fix f;

	assert_int_equal(setup(&f, text, raw, types), -1);
	assert_string_equal(f.err.msg, want);
	assert_int_equal(f.err.code, CM_EXIT_USAGE);
	done(&f);
}

/* Column i is known by want. */
static void expect_name(const struct cm_csvmap *m, size_t i, const char *want)
{
	size_t n;
	const char *name = cm_csvmap_name(m, i, &n);

	assert_int_equal(n, strlen(want));
	assert_memory_equal(name, want, n);
}

static void test_types(void **state)
{
	struct cm_csvmap m;
	struct cm_err err;

	cm_csvmap_init(&m, 0, 1, 64);
	assert_int_equal(cm_csvmap_types(&m, "a=number,b=json", &err), 0);
	assert_int_equal(cm_csvmap_types(&m, "a=integer", &err), 0);
	assert_int_equal(m.ntypes, 3);
	assert_string_equal(m.types[0].col, "a");
	assert_int_equal(m.types[0].type, CM_CSVT_NUMBER);
	assert_int_equal(m.types[1].type, CM_CSVT_JSON);
	assert_int_equal(m.types[2].type, CM_CSVT_INTEGER);
	assert_int_equal(cm_csvmap_types(&m, "amount", &err), -1);
	assert_string_equal(err.msg, "expected COL=TYPE, got 'amount'");
	assert_int_equal(err.code, CM_EXIT_USAGE);
	assert_int_equal(cm_csvmap_types(&m, "=number", &err), -1);
	assert_string_equal(err.msg, "expected COL=TYPE, got '=number'");
	assert_int_equal(cm_csvmap_types(&m, "x=string,a=float", &err), -1);
	assert_string_equal(err.msg, "unknown type 'float' for column 'a' (string, number, "
	                             "integer, boolean, json)");
	assert_int_equal(cm_csvmap_types(&m, "a=", &err), -1);
	cm_csvmap_release(&m);
}

static void test_header(void **state)
{
	struct fix f;

	assert_int_equal(setup(&f,
	                       "event_id,event_type,user_id,occurred_at,amount:number,n,ok,"
	                       "x:nosuchtype,note\n",
	                       0, "n=integer,ok=boolean,missing=json"),
	                 0);
	assert_int_equal(f.map.n, 9);
	assert_int_equal(f.map.col[0].role, CM_CSVR_EVENT_ID);
	assert_int_equal(f.map.col[1].role, CM_CSVR_EVENT_TYPE);
	assert_int_equal(f.map.col[2].role, CM_CSVR_USER_ID);
	assert_int_equal(f.map.col[3].role, CM_CSVR_OCCURRED_AT);
	assert_int_equal(f.map.col[4].role, CM_CSVR_PROP);
	assert_int_equal(f.map.col[4].type, CM_CSVT_NUMBER);
	expect_name(&f.map, 4, "amount");
	assert_int_equal(f.map.col[5].type, CM_CSVT_INTEGER);
	assert_int_equal(f.map.col[6].type, CM_CSVT_BOOLEAN);
	/* an unknown suffix is part of the name */
	assert_int_equal(f.map.col[7].type, CM_CSVT_STRING);
	expect_name(&f.map, 7, "x:nosuchtype");
	assert_int_equal(f.map.types[0].used, 1);
	assert_int_equal(f.map.types[1].used, 1);
	assert_int_equal(f.map.types[2].used, 0);
	done(&f);

	/* --types wins over a suffix; a typed event field as a string is fine */
	assert_int_equal(setup(&f, "event_type,user_id:string,a:number\n", 0, "a=json"), 0);
	assert_int_equal(f.map.col[1].role, CM_CSVR_USER_ID);
	assert_int_equal(f.map.col[2].type, CM_CSVT_JSON);
	done(&f);
}

static void test_header_errors(void **state)
{
	expect_header_error("event_type,,user_id\n", 0, NULL, "header: column 2 has an empty name");
	expect_header_error("event_type,user_id,a\xff\n", 0, NULL,
	                    "header: column 3: the name \"a...\" is not UTF-8");
	expect_header_error("event_type,user_id,amount,amount:number\n", 0, NULL,
	                    "header: duplicate column 'amount' (columns 3 and 4)");
	expect_header_error("b,event_type,a,user_id,b,a\n", 0, NULL,
	                    "header: duplicate column 'b' (columns 1 and 5)");
	expect_header_error("event_type,user_id:number\n", 0, NULL,
	                    "header: column 'user_id' is always a string; it cannot be typed "
	                    "number");
	expect_header_error("event_type,user_id\n", 0, "event_type=boolean",
	                    "header: column 'event_type' is always a string; it cannot be "
	                    "typed boolean");
	expect_header_error("customer,total\n", 0, NULL,
	                    "header: no column 'event_type', which every event needs (map the "
	                    "columns with --jq, or use --raw)");
	expect_header_error("event_type,total\n", 0, NULL,
	                    "header: no column 'user_id', which every event needs (map the "
	                    "columns with --jq, or use --raw)");
	/* raw: names as written, so a suffix makes another name */
	expect_header_error("a,a\n", 1, NULL, "header: duplicate column 'a' (columns 1 and 2)");
}

static void test_header_raw_and_jq(void **state)
{
	struct fix f;

	/* raw: no roles, no types, no required columns */
	assert_int_equal(setup(&f, "customer,total:number,total\n", 1, "customer=number"), 0);
	assert_int_equal(f.map.col[1].type, CM_CSVT_STRING);
	assert_int_equal(f.map.col[1].strip_len, 12);
	assert_int_equal(f.map.col[0].type, CM_CSVT_STRING);
	done(&f);
	/* without need_event (--jq) any names do */
	cm_csvin_init_mem(&f.in, "customer,total\n", 15, "t", ',', 1024);
	cm_csvmap_init(&f.map, 0, 0, 64);
	assert_int_equal(cm_csvin_next(&f.in, &f.rec, &f.err), CM_CSV_OK);
	assert_int_equal(cm_csvmap_header(&f.map, &f.rec, &f.err), 0);
	done(&f);
}

/* Checks one cell against a type through a one-column map. */
static int check(int type, const char *cell, struct cm_err *err)
{
	static const char *const names[] = {"string", "number", "integer", "boolean", "json"};
	char types[32];
	struct fix f;
	int rc;

	snprintf(types, sizeof(types), "c=%s", names[type]);
	cm_csvin_init_mem(&f.in, "c\n", 2, "t", ',', 1024);
	cm_csvmap_init(&f.map, 0, 0, 64);
	assert_int_equal(cm_csvmap_types(&f.map, types, err), 0);
	assert_int_equal(cm_csvin_next(&f.in, &f.rec, err), CM_CSV_OK);
	assert_int_equal(cm_csvmap_header(&f.map, &f.rec, err), 0);
	rc = cm_csvmap_check(&f.map, 0, cell, strlen(cell), err);
	done(&f);
	return rc;
}

static void test_check(void **state)
{
	static const char *const numbers[] = {"0", "-0", "12", "-1.5", "1e5", "1E+5", "2.5e-3"};
	static const char *const not_numbers[] = {"",   "-",   "01",  "1.", ".5",  "+1",
	                                          "1e", "1e+", "0x1", "1 ", "NaN", "1.2.3"};
	struct cm_err err;

	for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++)
		assert_int_equal(check(CM_CSVT_NUMBER, numbers[i], &err), 0);
	for (size_t i = 0; i < sizeof(not_numbers) / sizeof(not_numbers[0]); i++)
		assert_int_equal(check(CM_CSVT_NUMBER, not_numbers[i], &err), -1);
	assert_int_equal(check(CM_CSVT_NUMBER, "12abc", &err), -1);
	assert_string_equal(err.msg, "column 'c': expected a number, got \"12abc\"");

	assert_int_equal(check(CM_CSVT_INTEGER, "9223372036854775807", &err), 0);
	assert_int_equal(check(CM_CSVT_INTEGER, "-9223372036854775808", &err), 0);
	assert_int_equal(check(CM_CSVT_INTEGER, "9223372036854775808", &err), -1);
	assert_string_equal(err.msg,
	                    "column 'c': expected an integer, got \"9223372036854775808\"");
	assert_int_equal(check(CM_CSVT_INTEGER, "-9223372036854775809", &err), -1);
	assert_int_equal(check(CM_CSVT_INTEGER, "10000000000000000000", &err), -1);
	assert_int_equal(check(CM_CSVT_INTEGER, "1.0", &err), -1);
	assert_int_equal(check(CM_CSVT_INTEGER, "-12", &err), 0);

	assert_int_equal(check(CM_CSVT_BOOLEAN, "YES", &err), 0);
	assert_int_equal(check(CM_CSVT_BOOLEAN, "maybe", &err), -1);
	assert_string_equal(err.msg, "column 'c': expected a boolean (true/false, yes/no, 1/0), "
	                             "got \"maybe\"");

	assert_int_equal(check(CM_CSVT_JSON, "{\"a\":[1,2]}", &err), 0);
	assert_int_equal(check(CM_CSVT_JSON, "{\"a\":", &err), -1);
	assert_non_null(strstr(err.msg, "column 'c': expected JSON, got \"{\"a\":\" ("));

	assert_int_equal(check(CM_CSVT_STRING, "caf\xc3\xa9", &err), 0);
	assert_int_equal(check(CM_CSVT_STRING, "caf\xe9\x01", &err), -1);
	assert_string_equal(err.msg, "column 'c': expected UTF-8 text, got \"caf...\"");
	/* a long cell is cut in the message */
	assert_int_equal(
	    check(CM_CSVT_NUMBER, "123456789012345678901234567890123456789012345x", &err), -1);
	assert_string_equal(err.msg, "column 'c': expected a number, got "
	                             "\"1234567890123456789012345678901234567890...\"");
}

static void test_bool(void **state)
{
	assert_int_equal(cm_csvmap_bool("true", 4), 1);
	assert_int_equal(cm_csvmap_bool("True", 4), 1);
	assert_int_equal(cm_csvmap_bool("yes", 3), 1);
	assert_int_equal(cm_csvmap_bool("1", 1), 1);
	assert_int_equal(cm_csvmap_bool("FALSE", 5), 0);
	assert_int_equal(cm_csvmap_bool("no", 2), 0);
	assert_int_equal(cm_csvmap_bool("0", 1), 0);
	assert_int_equal(cm_csvmap_bool("", 0), -1);
	assert_int_equal(cm_csvmap_bool("2", 1), -1);
	assert_int_equal(cm_csvmap_bool("tru", 3), -1);
	assert_int_equal(cm_csvmap_bool("yess", 4), -1);
}

static void test_raw(void **state)
{
	struct fix f;
	struct cm_buf b = CM_BUF_INIT;

	assert_int_equal(setup(&f, "a:number,\"q\"\"t\",c\n1,x\"y,\n\xff,b,c\n", 1, NULL), 0);
	next_rec(&f);
	cm_buf_adds(&b, "<");
	assert_int_equal(cm_csvmap_raw(&f.map, &f.rec, &b, &f.err), 0);
	assert_string_equal(b.data, "<{\"a:number\":\"1\",\"q\\\"t\":\"x\\\"y\",\"c\":\"\"}");
	next_rec(&f);
	assert_int_equal(cm_csvmap_raw(&f.map, &f.rec, &b, &f.err), -1);
	assert_string_equal(f.err.msg, "column 'a:number': expected UTF-8 text");
	/* the output is as it was */
	assert_string_equal(b.data, "<{\"a:number\":\"1\",\"q\\\"t\":\"x\\\"y\",\"c\":\"\"}");
	cm_buf_release(&b);
	done(&f);
}

/* Builds the event of the next record into a fresh buffer; the caller
 * frees it. */
static int event(struct fix *f, struct cm_buf *b)
{
	cm_buf_reset(b);
	next_rec(f);
	return cm_csvmap_event(&f->map, &f->rec, NOW, b, &f->err);
}

static void test_event(void **state)
{
	struct fix f;
	struct cm_buf b = CM_BUF_INIT, raw = CM_BUF_INIT;
	char id[CM_EVENT_DERIVED_LEN + 1];

	assert_int_equal(setup(&f,
	                       "event_id,event_type,user_id,occurred_at,amount:number,n,ok,meta,"
	                       "note\n"
	                       "e-1,buy,u-1,2026-01-02T03:04:05+01:00,1.5,-3,Yes,\"{\"\"k\"\": [1, "
	                       "2]}\",hi\n"
	                       ",buy,u-2,,,,,,\n"
	                       "e-3,buy,u-3,,x1,,,,\n"
	                       "e-4,buy,u-4,,,,maybe,,\n"
	                       "e-5,,u-5,,,,,,\n"
	                       "e-6,buy,u-6,,,,,,\"a\xff\"\n",
	                       0, "n=integer,ok=boolean,meta=json"),
	                 0);
	assert_int_equal(event(&f, &b), 0);
	assert_string_equal(b.data,
	                    "{\"event_id\":\"e-1\",\"event_type\":\"buy\",\"user_id\":\"u-1\","
	                    "\"occurred_at\":\"2026-01-02T02:04:05Z\",\"properties\":{"
	                    "\"amount\":1.5,\"n\":-3,\"ok\":true,\"meta\":{\"k\":[1,2]},"
	                    "\"note\":\"hi\"}}");
	/* empty: the id derived from the raw record, the time now, typed cells
	 * left out, a string cell kept as "" */
	assert_int_equal(event(&f, &b), 0);
	assert_int_equal(cm_csvmap_raw(&f.map, &f.rec, &raw, &f.err), 0);
	cm_event_derive_id(raw.data, raw.len, id);
	assert_non_null(strstr(b.data, id));
	assert_non_null(strstr(b.data, "\"occurred_at\":\"2026-11-27T10:15:00Z\""));
	assert_non_null(strstr(b.data, "\"properties\":{\"note\":\"\"}}"));
	/* a bad typed cell rejects the record, the output is as it was */
	cm_buf_reset(&b);
	cm_buf_adds(&b, "keep");
	next_rec(&f);
	assert_int_equal(cm_csvmap_event(&f.map, &f.rec, NOW, &b, &f.err), -1);
	assert_string_equal(f.err.msg, "column 'amount': expected a number, got \"x1\"");
	assert_string_equal(b.data, "keep");
	assert_int_equal(event(&f, &b), -1);
	assert_string_equal(
	    f.err.msg, "column 'ok': expected a boolean (true/false, yes/no, 1/0), got \"maybe\"");
	/* the validator's own messages */
	assert_int_equal(event(&f, &b), -1);
	assert_non_null(strstr(f.err.msg, "field 'event_type'"));
	assert_int_equal(event(&f, &b), -1);
	assert_string_equal(f.err.msg, "column 'note': expected UTF-8 text, got \"a...\"");
	assert_int_equal(b.len, 0);
	cm_buf_release(&b);
	cm_buf_release(&raw);
	done(&f);
}

static void test_next_header(void **state)
{
	/* a second header replaces the first; --types marks are redone */
	struct fix f;
	struct cm_csvrec rec;
	const char second[] = "x,event_type,user_id\n";
	struct cm_csvin in;

	assert_int_equal(setup(&f, "event_type,user_id,n\n", 0, "n=integer"), 0);
	assert_int_equal(f.map.types[0].used, 1);
	cm_csvin_init_mem(&in, second, sizeof(second) - 1, "t", ',', 1024);
	assert_int_equal(cm_csvin_next(&in, &rec, &f.err), CM_CSV_OK);
	assert_int_equal(cm_csvmap_header(&f.map, &rec, &f.err), 0);
	assert_int_equal(f.map.n, 3);
	assert_int_equal(f.map.col[0].role, CM_CSVR_PROP);
	assert_int_equal(f.map.col[1].role, CM_CSVR_EVENT_TYPE);
	assert_int_equal(f.map.types[0].used, 0);
	cm_csvin_release(&in);
	done(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_types),         cmocka_unit_test(test_header),
	    cmocka_unit_test(test_header_errors), cmocka_unit_test(test_header_raw_and_jq),
	    cmocka_unit_test(test_check),         cmocka_unit_test(test_bool),
	    cmocka_unit_test(test_raw),           cmocka_unit_test(test_event),
	    cmocka_unit_test(test_next_header),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
