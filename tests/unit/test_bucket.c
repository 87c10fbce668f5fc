/* Tests for bucket.c: the fixed hash, its uniformity over a million users,
 * and the split into holdout and variants by weight. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "bucket.h"

/* Values computed independently (Python: int(sha256(b"7:u-42").hexdigest()[:13], 16) / 2**52). */
static void test_fixed(void **state)
{
	double b = cm_bucket(7, "u-42", 4);

	assert_true(b == 0.8410370874358921);
	assert_true(cm_bucket(1, "a", 1) == 0.2554167428112488);
	assert_true(cm_bucket(9007199254740992, "\xc3\xbc-\xc3\x9f", 5) == 0.4375283551950522);
	assert_true(b == cm_bucket(7, "u-42", 4));
	assert_true(b != cm_bucket(8, "u-42", 4));
	assert_true(b != cm_bucket(7, "u-43", 4));
	/* exactly k / 2^52 */
	assert_true(b * 4503599627370496.0 == floor(b * 4503599627370496.0));
}

static void test_groups(void **state)
{
	const double w[] = {1, 3};

	assert_int_equal(cm_bucket_group(0.05, 0.1, w, 2), -1);
	assert_int_equal(cm_bucket_group(0.1, 0.1, w, 2), 0);
	assert_int_equal(cm_bucket_group(0.32, 0.1, w, 2), 0);
	/* (0.325 - 0.1) / 0.9 * 4 = 1.0: a boundary goes to the later variant */
	assert_int_equal(cm_bucket_group(0.325, 0.1, w, 2), 1);
	assert_int_equal(cm_bucket_group(0.9999, 0.1, w, 2), 1);
	assert_int_equal(cm_bucket_group(0.5, 0, NULL, 0), 0);
	assert_int_equal(cm_bucket_group(0.0, 0, NULL, 0), 0);
}

/* A million users over holdout 0.1 and weights 1:2:1: each group's share is
 * within 5 standard deviations of its expectation, and the buckets pass a
 * chi-square test over 100 equal bins. */
static void test_uniform(void **state)
{
	enum { N = 1000000, BINS = 100 };
	const double w[] = {1, 2, 1};
	const double want[4] = {0.1, 0.9 * 0.25, 0.9 * 0.5, 0.9 * 0.25};
	static unsigned bins[BINS];
	unsigned groups[4] = {0};
	double chi = 0;
	char user[32];

	for (int i = 0; i < N; i++) {
		int n = snprintf(user, sizeof(user), "user-%d", i);
		double b = cm_bucket(42, user, (size_t)n);

		bins[(int)(b * BINS)]++;
		groups[cm_bucket_group(b, 0.1, w, 3) + 1]++;
	}
	for (int g = 0; g < 4; g++) {
		double mean = N * want[g], sd = sqrt(N * want[g] * (1 - want[g]));

		print_message("group %d: %u users, expected %.0f +- %.0f\n", g - 1, groups[g], mean,
		              sd);
		assert_true(fabs(groups[g] - mean) < 5 * sd);
	}
	for (int i = 0; i < BINS; i++) {
		double e = (double)N / BINS;

		chi += (bins[i] - e) * (bins[i] - e) / e;
	}
	/* 99 degrees of freedom: the 0.999 quantile is about 148 */
	print_message("chi-square over %d bins: %.1f\n", BINS, chi);
	assert_true(chi < 148);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fixed),
	    cmocka_unit_test(test_groups),
	    cmocka_unit_test(test_uniform),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
