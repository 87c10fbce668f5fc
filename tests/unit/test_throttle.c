/* Tests for throttle.c: free attempts, doubling waits, the cap, per-name and
 * per-address counts, success, forgetting, parallel attempts and bounded
 * tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>

#include "throttle.h"

static struct cm_throttle *make(unsigned fu, unsigned fa)
{
	struct cm_throttle_opts o;
	struct cm_throttle *t;

	cm_throttle_defaults(&o);
	o.free_user = fu;
	o.free_addr = fa;
	o.max_lock_ms = 60000;
	o.forget_ms = 600000;
	o.slots = 64;
	t = cm_throttle_new(&o);
	assert_non_null(t);
	return t;
}

static void test_user_waits_double(void **state)
{
	struct cm_throttle *t = make(3, 100);
	int64_t now = 1000000;
	int i;

	for (i = 0; i < 3; i++)
		assert_int_equal(cm_throttle_begin(t, "alice", "10.0.0.1", now), 0);
	/* the 4th must wait 1 s after the 3rd */
	assert_int_equal(cm_throttle_begin(t, "alice", "10.0.0.1", now), 1000);
	assert_int_equal(cm_throttle_begin(t, "alice", "10.0.0.9", now + 400), 600);
	assert_int_equal(cm_throttle_begin(t, "alice", "10.0.0.1", now + 1000), 0);
	/* then 2 s, 4 s, ... */
	now += 1000;
	assert_int_equal(cm_throttle_begin(t, "alice", "10.0.0.1", now + 1999), 1);
	assert_int_equal(cm_throttle_begin(t, "alice", "10.0.0.1", now + 2000), 0);
	now += 2000;
	assert_int_equal(cm_throttle_begin(t, "alice", "10.0.0.1", now), 4000);
	/* other names are not affected */
	assert_int_equal(cm_throttle_begin(t, "bob", "10.0.0.1", now), 0);
	/* the wait is capped */
	for (i = 0; i < 40; i++) {
		now += 60000;
		assert_int_equal(cm_throttle_begin(t, "alice", "10.0.0.1", now), 0);
	}
	assert_int_equal(cm_throttle_begin(t, "alice", "10.0.0.1", now), 60000);
	cm_throttle_free(t);
}

static void test_success_clears_user(void **state)
{
	struct cm_throttle *t = make(2, 100);
	int64_t now = 5000;

	assert_int_equal(cm_throttle_begin(t, "alice", "a", now), 0);
	assert_int_equal(cm_throttle_begin(t, "alice", "a", now), 0);
	assert_true(cm_throttle_begin(t, "alice", "a", now) > 0);
	/* a lucky guess after the wait: clears the name */
	assert_int_equal(cm_throttle_begin(t, "alice", "a", now + 1000), 0);
	cm_throttle_success(t, "alice", "a");
	assert_int_equal(cm_throttle_begin(t, "alice", "a", now + 1000), 0);
	assert_int_equal(cm_throttle_begin(t, "alice", "a", now + 1000), 0);
	assert_true(cm_throttle_begin(t, "alice", "a", now + 1000) > 0);
	cm_throttle_free(t);
}

static void test_address(void **state)
{
	struct cm_throttle *t = make(100, 4);
	int64_t now = 5000;
	char name[16];
	int i;

	/* an address spraying names is slowed down after 4 */
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		assert_int_equal(cm_throttle_begin(t, name, "10.1.1.1", now), 0);
	}
	assert_int_equal(cm_throttle_begin(t, "user9", "10.1.1.1", now), 1000);
	/* another address is not */
	assert_int_equal(cm_throttle_begin(t, "user9", "10.1.1.2", now), 0);
	/* a success from the address does not reset it beyond its own attempt */
	assert_int_equal(cm_throttle_begin(t, "mine", "10.1.1.3", now), 0);
	cm_throttle_success(t, "mine", "10.1.1.3");
	for (i = 0; i < 4; i++)
		assert_int_equal(cm_throttle_begin(t, "x", "10.1.1.3", now), 0);
	cm_throttle_success(t, "x", "10.1.1.3");
	assert_int_equal(cm_throttle_begin(t, "y", "10.1.1.3", now), 0);
	assert_true(cm_throttle_begin(t, "z", "10.1.1.3", now) > 0);
	cm_throttle_free(t);
}

static void test_forget(void **state)
{
	struct cm_throttle *t = make(1, 100);

	assert_int_equal(cm_throttle_begin(t, "alice", "a", 1000), 0);
	assert_int_equal(cm_throttle_begin(t, "alice", "a", 1000), 1000);
	/* ten quiet minutes and a second later: a fresh start */
	assert_int_equal(cm_throttle_begin(t, "alice", "a", 1000 + 600001), 0);
	assert_true(cm_throttle_begin(t, "alice", "a", 1000 + 600001) > 0);
	cm_throttle_free(t);
}

static void test_bounded(void **state)
{
	struct cm_throttle *t = make(1, 1000000);
	char name[32];
	int i;

	/* many more names than slots: the table keeps working */
	for (i = 0; i < 10000; i++) {
		snprintf(name, sizeof(name), "spray%d", i);
		assert_int_equal(cm_throttle_begin(t, name, "a", 1000 + i), 0);
	}
	/* the most recent one is still remembered */
	assert_true(cm_throttle_begin(t, "spray9999", "a", 1000 + 9999) > 0);
	cm_throttle_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_user_waits_double), cmocka_unit_test(test_success_clears_user),
	    cmocka_unit_test(test_address),           cmocka_unit_test(test_forget),
	    cmocka_unit_test(test_bounded),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
