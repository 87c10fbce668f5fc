/* test_strmap.c - byte strings to dense indexes: insertion order, lookups
 * across growth, embedded NUL bytes, empty keys and clearing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "strmap.h"

static void test_add_find(void **state)
{
	struct cm_strmap m;
	uint32_t i;
	size_t n;
	const char *k;

	(void)state;
	cm_strmap_init(&m);
	assert_int_equal(cm_strmap_find(&m, "a", 1), -1);
	assert_int_equal(cm_strmap_add(&m, "a", 1, &i), 1);
	assert_int_equal(i, 0);
	assert_int_equal(cm_strmap_add(&m, "b", 1, &i), 1);
	assert_int_equal(i, 1);
	assert_int_equal(cm_strmap_add(&m, "a", 1, &i), 0);
	assert_int_equal(i, 0);
	/* keys are bytes: a NUL inside, a prefix and the empty key differ */
	assert_int_equal(cm_strmap_add(&m, "a\0b", 3, &i), 1);
	assert_int_equal(i, 2);
	assert_int_equal(cm_strmap_add(&m, "", 0, &i), 1);
	assert_int_equal(i, 3);
	assert_int_equal(cm_strmap_find(&m, "", 0), 3);
	assert_int_equal(cm_strmap_find(&m, "a\0b", 3), 2);
	assert_int_equal(cm_strmap_find(&m, "a\0c", 3), -1);
	k = cm_strmap_key(&m, 2, &n);
	assert_int_equal(n, 3);
	assert_memory_equal(k, "a\0b", 3);
	assert_int_equal(m.n, 4);
	cm_strmap_clear(&m);
	assert_int_equal(m.n, 0);
	assert_int_equal(cm_strmap_find(&m, "a", 1), -1);
	assert_int_equal(cm_strmap_add(&m, "b", 1, &i), 1);
	assert_int_equal(i, 0);
	cm_strmap_release(&m);
}

/* A hundred thousand keys through many doublings, every one found again
 * with its index, and none that was not added. */
static void test_many(void **state)
{
	struct cm_strmap m;
	char key[32];
	uint32_t i;

	(void)state;
	cm_strmap_init(&m);
	for (uint32_t k = 0; k < 100000; k++) {
		int n = snprintf(key, sizeof(key), "user-%u", k * 7919u);

		assert_int_equal(cm_strmap_add(&m, key, (size_t)n, &i), 1);
		assert_int_equal(i, k);
	}
	for (uint32_t k = 0; k < 100000; k++) {
		int n = snprintf(key, sizeof(key), "user-%u", k * 7919u);

		assert_int_equal(cm_strmap_find(&m, key, (size_t)n), k);
		n = snprintf(key, sizeof(key), "user-%u", k * 7919u + 1);
		assert_int_equal(cm_strmap_find(&m, key, (size_t)n), -1);
	}
	assert_true(m.nslots >= 2 * m.n);
	cm_strmap_release(&m);
}

/* The hash depends on every byte and on the seed. */
static void test_hash(void **state)
{
	uint64_t a = cm_strmap_hash("abcdefghij", 10, 0);

	(void)state;
	assert_true(a != cm_strmap_hash("abcdefghik", 10, 0));
	assert_true(a != cm_strmap_hash("bbcdefghij", 10, 0));
	assert_true(a != cm_strmap_hash("abcdefghij", 10, 1));
	assert_true(a != cm_strmap_hash("abcdefghij", 9, 0));
	assert_true(a == cm_strmap_hash("abcdefghij", 10, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_add_find),
	    cmocka_unit_test(test_many),
	    cmocka_unit_test(test_hash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
