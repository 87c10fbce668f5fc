/* duration.h - ISO 8601 durations of fixed length (campaign cooldowns):
 * PnW, or PnDTnHnMn[.fff]S with any of the parts, in milliseconds. Years and
 * months are refused: they have no fixed length. */
#ifndef CM_DURATION_H
#define CM_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* Longest duration accepted: 100 years of 365 days. */
#define CM_DURATION_MAX_MS (100LL * 365 * 86400 * 1000)

/* Parses s[0..n) ("P7D", "PT12H", "P1DT0.5S", "P2W") into *ms. Returns 0, or
 * -1 when s is not such a duration, has a year or month part, more than three
 * decimals of a second, or is longer than CM_DURATION_MAX_MS. "P0D" is a
 * valid zero; callers that need a positive duration check for it. */
int cm_duration_parse(const char *s, size_t n, int64_t *ms);

#endif
