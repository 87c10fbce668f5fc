/* Tests for duration.c: ISO 8601 durations of fixed length. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "duration.h"

static int64_t ms_of(const char *s)
{
	int64_t ms = -1;

	if (cm_duration_parse(s, strlen(s), &ms) < 0)
		return -1;
	return ms;
}

static void test_valid(void **state)
{
	assert_int_equal(ms_of("P7D"), 7LL * 86400000);
	assert_int_equal(ms_of("PT12H"), 12LL * 3600000);
	assert_int_equal(ms_of("PT30M"), 30LL * 60000);
	assert_int_equal(ms_of("PT45S"), 45000);
	assert_int_equal(ms_of("PT0.5S"), 500);
	assert_int_equal(ms_of("PT1,25S"), 1250);
	assert_int_equal(ms_of("PT0.001S"), 1);
	assert_int_equal(ms_of("P1DT2H3M4.005S"), 86400000 + 2 * 3600000 + 3 * 60000 + 4005);
	assert_int_equal(ms_of("P2W"), 14LL * 86400000);
	assert_int_equal(ms_of("P0D"), 0);
	assert_int_equal(ms_of("P36500D"), CM_DURATION_MAX_MS);
	assert_int_equal(ms_of("PT36H"), 36LL * 3600000);
}

static void test_invalid(void **state)
{
	const char *bad[] = {
	    "",          "P",
	    "PT",        "7D",
	    "p7d",       "P7",
	    "P1Y",       "P1M",
	    "P1Y2D",     "PT1D",
	    "P1H",       "PT2M1H",
	    "P1D1D",     "PT1.5M",
	    "PT.5S",     "PT1.S",
	    "PT1.2345S", "P1W2D",
	    "P1DT",      "P-1D",
	    "P+1D",      "P 1D",
	    "P1D ",      "P36501D",
	    "P5300W",    "P9999999999999D",
	    "PT1S1S",    "P1.5D",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ms;

		if (cm_duration_parse(bad[i], strlen(bad[i]), &ms) == 0)
			fail_msg("accepted \"%s\" as %lld ms", bad[i], (long long)ms);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_invalid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
