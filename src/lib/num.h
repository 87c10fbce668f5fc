/* num.h - checked parsers for numbers that come from outside (option values,
 * query parameters): the whole string must be a number within a range. */
#ifndef CM_NUM_H
#define CM_NUM_H

#include <stddef.h>
#include <stdint.h>

/* A decimal integer within [min, max]. Returns 0 or -1. */
int cm_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
/* A size with an optional K, M or G suffix (powers of 1024, an optional B
 * after it) within [min, max]. Returns 0 or -1. */
int cm_parse_size(const char *s, size_t min, size_t max, size_t *out);

/* The value of a hex digit, or -1: one for the JSON parser's \u escapes, the
 * percent-decoding of URLs and of Redis URLs. */
static inline int cm_hexval(unsigned char c)
{
	if ((unsigned)(c - '0') < 10)
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

#endif
