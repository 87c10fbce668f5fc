/* num.c - checked number parsers. */
#include "num.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

/* Rejects leading space and trailing junk, which strtoll would let through. */
int cm_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !*s || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Parses the digits, then the suffix, checking for overflow before multiplying. */
int cm_parse_size(const char *s, size_t min, size_t max, size_t *out)
{
	char *end;
	unsigned long long v, mul = 1;

	if (!s || !*s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (*end) {
	case 'k':
	case 'K':
		mul = 1024ULL;
		end++;
		break;
	case 'm':
	case 'M':
		mul = 1024ULL * 1024;
		end++;
		break;
	case 'g':
	case 'G':
		mul = 1024ULL * 1024 * 1024;
		end++;
		break;
	}
	if ((*end == 'B' || *end == 'b') && mul > 1)
		end++;
	if (*end || v > (unsigned long long)SIZE_MAX / mul)
		return -1;
	v *= mul;
	if (v < min || v > max)
		return -1;
	*out = (size_t)v;
	return 0;
}
