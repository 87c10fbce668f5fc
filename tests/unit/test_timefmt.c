/* Tests for timefmt.c: RFC 3339 parsing and UTC formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "timefmt.h"

static int64_t parse_ok(const char *s)
{
	int64_t ms = 0;

	assert_int_equal(cm_time_parse(s, strlen(s), &ms), 0);
	return ms;
}

static void assert_bad(const char *s)
{
	int64_t ms;

	if (cm_time_parse(s, strlen(s), &ms) == 0)
		fail_msg("accepted \"%s\"", s);
}

static void test_parse_basic(void **state)
{
	assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
	assert_int_equal(parse_ok("2026-11-27T10:15:00Z"), 1795774500000LL);
	assert_int_equal(parse_ok("2026-11-27t10:15:00z"), 1795774500000LL);
	assert_int_equal(parse_ok("2026-11-27 10:15:00Z"), 1795774500000LL);
	assert_int_equal(parse_ok("1969-12-31T23:59:59Z"), -1000);
	assert_int_equal(parse_ok("0001-01-01T00:00:00Z"), -62135596800000LL);
}

static void test_parse_offsets_fractions(void **state)
{
	assert_int_equal(parse_ok("2026-11-27T12:15:00+02:00"), 1795774500000LL);
	assert_int_equal(parse_ok("2026-11-27T05:45:00-04:30"), 1795774500000LL);
	assert_int_equal(parse_ok("2026-11-27T10:15:00.5Z"), 1795774500500LL);
	assert_int_equal(parse_ok("2026-11-27T10:15:00.123Z"), 1795774500123LL);
	assert_int_equal(parse_ok("2026-11-27T10:15:00.123999999Z"), 1795774500123LL);
	assert_int_equal(parse_ok("2026-11-27T10:15:00.01+00:00"), 1795774500010LL);
	/* A leap second rolls into the next minute. */
	assert_int_equal(parse_ok("2016-12-31T23:59:60Z"), parse_ok("2017-01-01T00:00:00Z"));
}

static void test_parse_rejects(void **state)
{
	assert_bad("");
	assert_bad("yesterday");
	assert_bad("2026-11-27");
	assert_bad("2026-11-27T10:15:00");
	assert_bad("2026-11-27T10:15Z");
	assert_bad("2026-13-01T00:00:00Z");
	assert_bad("2026-02-29T00:00:00Z");
	assert_bad("2026-04-31T00:00:00Z");
	assert_bad("2026-11-27T24:00:00Z");
	assert_bad("2026-11-27T10:60:00Z");
	assert_bad("2026-11-27T10:15:00.Z");
	assert_bad("2026-11-27T10:15:00+0200");
	assert_bad("2026-11-27T10:15:00+24:00");
	assert_bad("2026-11-27T10:15:00Zjunk");
	assert_bad("2026-1a-27T10:15:00Z");
	/* Leap years. */
	parse_ok("2024-02-29T00:00:00Z");
	parse_ok("2000-02-29T00:00:00Z");
	assert_bad("1900-02-29T00:00:00Z");
}

/* Asserts that s is a valid time outside the years 0001-9999 in UTC. */
static void assert_range(const char *s)
{
	int64_t ms = 42;

	assert_int_equal(cm_time_parse(s, strlen(s), &ms), CM_TIME_RANGE);
	assert_int_equal(ms, 42); /* untouched */
}

static void test_parse_range(void **state)
{
	/* the ends of the range, also reached through an offset */
	assert_int_equal(parse_ok("0001-01-01T00:00:00Z"), CM_TIME_MIN_MS);
	assert_int_equal(parse_ok("9999-12-31T23:59:59.999Z"), CM_TIME_MAX_MS);
	assert_int_equal(parse_ok("9999-12-31T23:59:59.9999999Z"), CM_TIME_MAX_MS);
	assert_int_equal(parse_ok("0001-01-01T05:30:00+05:30"), CM_TIME_MIN_MS);
	assert_int_equal(parse_ok("9999-12-31T11:59:59.999-12:00"), CM_TIME_MAX_MS);
	/* the year 0000 UTC is before them, also when 0001 is written */
	assert_range("0000-01-01T00:00:00Z");
	assert_range("0001-01-01T00:00:00+00:01");
	assert_range("0001-01-01T05:29:59.999+05:30");
	/* ... but a year 0000 local time can be 0001 in UTC */
	assert_int_equal(parse_ok("0000-12-31T23:00:00-01:00"), CM_TIME_MIN_MS);
	/* the year 10000 UTC is after them: by offset, and by leap second */
	assert_range("9999-12-31T23:59:59-00:01");
	assert_range("9999-12-31T12:00:00-12:00");
	assert_range("9999-12-31T23:59:60Z");
	/* a range error needs a valid time first */
	assert_int_equal(cm_time_parse("0000-01-01T00:00:00", 19, &(int64_t){0}), CM_TIME_BAD);
}

static void assert_fmt(int64_t ms, const char *want)
{
	char out[CM_TIME_MAX];
	size_t n = cm_time_format(ms, out);

	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
}

static void test_format(void **state)
{
	assert_fmt(0, "1970-01-01T00:00:00Z");
	assert_fmt(1795774500000LL, "2026-11-27T10:15:00Z");
	assert_fmt(1795774500123LL, "2026-11-27T10:15:00.123Z");
	assert_fmt(1795774500007LL, "2026-11-27T10:15:00.007Z");
	assert_fmt(-1, "1969-12-31T23:59:59.999Z");
	assert_fmt(-62135596800000LL, "0001-01-01T00:00:00Z");
	assert_fmt(253402300799999LL, "9999-12-31T23:59:59.999Z");
}

static void test_roundtrip(void **state)
{
	char out[CM_TIME_MAX];

	for (int64_t ms = -5000000000000LL; ms < 5000000000000LL; ms += 7777777777LL) {
		int64_t back;
		size_t n = cm_time_format(ms, out);

		assert_int_equal(cm_time_parse(out, n, &back), 0);
		assert_int_equal(back, ms);
	}
}

static void test_now(void **state)
{
	int64_t now = cm_time_now();

	assert_true(now > 1700000000000LL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_basic),   cmocka_unit_test(test_parse_offsets_fractions),
	    cmocka_unit_test(test_parse_rejects), cmocka_unit_test(test_format),
	    cmocka_unit_test(test_roundtrip),     cmocka_unit_test(test_now),
	    cmocka_unit_test(test_parse_range),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
