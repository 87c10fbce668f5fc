/* testenv.h - the servers tests/run.sh starts for the unit tests that need a
 * real one (CM_TEST_REDIS_URL, CM_TEST_DATABASE_URL). */
#ifndef CM_TESTENV_H
#define CM_TESTENV_H

#include <stdio.h>
#include <stdlib.h>

/* The value of var, or NULL after a "not ok" line: without the server the
 * tests cannot pass, which is a failure, not a skip. */
static inline const char *test_server(const char *test, const char *var)
{
	const char *v = getenv(var);

	if (v && *v)
		return v;
	fprintf(stderr, "%s: %s is not set (tests/run.sh starts the server and sets it)\n", test,
	        var);
	printf("not ok - %s: %s is not set\n", test, var);
	return NULL;
}

#endif
