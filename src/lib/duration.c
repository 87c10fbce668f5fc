/* duration.c - ISO 8601 durations in milliseconds. */
#include "duration.h"

/* Reads a run of digits at s[*i..n) into *v (at most 12 digits, so that no
 * part can overflow before the total is checked); -1 when there is none. */
static int number(const char *s, size_t n, size_t *i, int64_t *v)
{
	size_t j = *i;
	int64_t x = 0;

	while (j < n && s[j] >= '0' && s[j] <= '9') {
		if (j - *i >= 12)
			return -1;
		x = x * 10 + (s[j] - '0');
		j++;
	}
	if (j == *i)
		return -1;
	*i = j;
	*v = x;
	return 0;
}

/* Parses the designators in their fixed order, so that "PT1H2M" is valid and
 * "PT2M1H" is not. */
int cm_duration_parse(const char *s, size_t n, int64_t *ms)
{
	static const struct {
		char unit;
		int in_time; /* after the T */
		int64_t ms;
	} parts[] = {
	    {'D', 0, 86400000},
	    {'H', 1, 3600000},
	    {'M', 1, 60000},
	    {'S', 1, 1000},
	};
	size_t i = 1, next = 0;
	int64_t total = 0, v;
	int in_time = 0, any = 0;

	if (n < 3 || s[0] != 'P')
		return -1;
	if (s[n - 1] == 'W') {
		i = 1;
		if (number(s, n, &i, &v) < 0 || i != n - 1 || v > CM_DURATION_MAX_MS / 604800000)
			return -1;
		*ms = v * 604800000;
		return 0;
	}
	while (i < n) {
		int64_t frac = 0;
		size_t k;

		if (s[i] == 'T') {
			if (in_time || i + 1 == n)
				return -1;
			in_time = 1;
			i++;
			continue;
		}
		if (number(s, n, &i, &v) < 0 || i == n)
			return -1;
		if (s[i] == '.' || s[i] == ',') {
			/* a fraction, only of seconds, at most milliseconds */
			size_t f0 = ++i;

			while (i < n && s[i] >= '0' && s[i] <= '9')
				i++;
			if (i == f0 || i - f0 > 3 || i == n || s[i] != 'S')
				return -1;
			for (size_t d = f0; d < f0 + 3; d++)
				frac = frac * 10 + (d < i ? s[d] - '0' : 0);
		}
		for (k = next; k < sizeof(parts) / sizeof(parts[0]); k++)
			if (parts[k].unit == s[i] && parts[k].in_time == in_time)
				break;
		if (k == sizeof(parts) / sizeof(parts[0]))
			return -1; /* Y, M before T, W among others, a unit out of order */
		if (v > CM_DURATION_MAX_MS / parts[k].ms)
			return -1;
		total += v * parts[k].ms + frac;
		if (total > CM_DURATION_MAX_MS)
			return -1;
		next = k + 1;
		any = 1;
		i++;
	}
	if (!any)
		return -1;
	*ms = total;
	return 0;
}
