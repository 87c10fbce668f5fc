/* timefmt.h - RFC 3339 times as milliseconds since the Unix epoch (UTC). */
#ifndef CM_TIMEFMT_H
#define CM_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Longest string cm_time_format writes, with its NUL. */
#define CM_TIME_MAX 32

/* The range of times: what the canonical form (four-digit years, UTC) can
 * write, 0001-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z, in ms since
 * the epoch. PostgreSQL's timestamptz holds more (4713 BC to 294276 AD). */
#define CM_TIME_MIN_MS INT64_C(-62135596800000)
#define CM_TIME_MAX_MS INT64_C(253402300799999)

/* cm_time_parse's failures. */
#define CM_TIME_BAD   (-1) /* not an RFC 3339 date-time */
#define CM_TIME_RANGE (-2) /* one, but outside CM_TIME_MIN_MS..CM_TIME_MAX_MS in UTC */

/* Parses an RFC 3339 date-time ("2026-11-27T10:15:00Z", "...T10:15:00.123+02:00";
 * 't', ' ' and 'z' accepted; a leap second :60 counts as the next second)
 * into ms since the epoch, sub-millisecond digits truncated. Returns 0,
 * CM_TIME_BAD, or CM_TIME_RANGE when the time in UTC lies outside the years
 * 0001-9999 (also when the offset takes it there: 0001-01-01T00:00:00+01:00
 * is in the year 0000 UTC); *ms is set only on success. */
int cm_time_parse(const char *s, size_t n, int64_t *ms);
/* Writes ms as "YYYY-MM-DDTHH:MM:SSZ", with ".mmm" when ms % 1000 != 0;
 * returns the length. out must hold CM_TIME_MAX bytes. */
size_t cm_time_format(int64_t ms, char *out);
/* The current time in ms since the epoch. */
int64_t cm_time_now(void);

#endif
