/* timefmt.h - RFC 3339 times as milliseconds since the Unix epoch (UTC). */
#ifndef CM_TIMEFMT_H
#define CM_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Longest string cm_time_format writes, with its NUL. */
#define CM_TIME_MAX 32

/* Parses an RFC 3339 date-time ("2026-11-27T10:15:00Z", "...T10:15:00.123+02:00";
 * 't', ' ' and 'z' accepted) into ms since the epoch, sub-millisecond digits
 * truncated. Returns 0, or -1 when s is not such a time or out of range
 * (years 0001-9999). */
int cm_time_parse(const char *s, size_t n, int64_t *ms);
/* Writes ms as "YYYY-MM-DDTHH:MM:SSZ", with ".mmm" when ms % 1000 != 0;
 * returns the length. out must hold CM_TIME_MAX bytes. */
size_t cm_time_format(int64_t ms, char *out);
/* The current time in ms since the epoch. */
int64_t cm_time_now(void);
/* Milliseconds and nanoseconds on a clock that never jumps (CLOCK_MONOTONIC),
 * for timeouts and durations. */
int64_t cm_time_mono_ms(void);
int64_t cm_time_mono_ns(void);

#endif
