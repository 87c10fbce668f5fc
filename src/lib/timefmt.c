/* timefmt.c - RFC 3339 parsing and formatting in milliseconds, UTC. */
#include "timefmt.h"

#include <time.h>

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * civil-days algorithm, in integer arithmetic). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + (int64_t)doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Reads exactly n digits at s into *v; -1 if any is not a digit. */
static int digits(const char *s, int n, unsigned *v)
{
	unsigned x = 0;

	for (int i = 0; i < n; i++) {
		unsigned c = (unsigned char)s[i] - '0';

		if (c > 9)
			return -1;
		x = x * 10 + c;
	}
	*v = x;
	return 0;
}

static int leap(unsigned y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int cm_time_parse(const char *s, size_t n, int64_t *ms)
{
	static const unsigned char mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	unsigned y, mo, d, h, mi, se, frac = 0, oh = 0, om = 0;
	size_t i = 19;
	int sign = 0;

	if (n < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
	    digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
	    digits(s + 17, 2, &se))
		return -1;
	if (y < 1 || mo < 1 || mo > 12 || d < 1 ||
	    d > (unsigned)mdays[mo - 1] + (mo == 2 && leap(y)) || h > 23 || mi > 59 || se > 60)
		return -1;
	if (s[i] == '.') {
		size_t start = ++i;

		while (i < n && s[i] >= '0' && s[i] <= '9') {
			if (i - start < 3)
				frac = frac * 10 + (unsigned)(s[i] - '0');
			i++;
		}
		if (i == start)
			return -1;
		for (size_t k = i - start; k < 3; k++)
			frac *= 10;
	}
	if (i >= n)
		return -1;
	if (s[i] == 'Z' || s[i] == 'z') {
		i++;
	} else if (s[i] == '+' || s[i] == '-') {
		sign = s[i] == '-' ? -1 : 1;
		if (n - i < 6 || digits(s + i + 1, 2, &oh) || s[i + 3] != ':' ||
		    digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
			return -1;
		i += 6;
	} else {
		return -1;
	}
	if (i != n)
		return -1;
	int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;

	secs -= sign * (int64_t)(oh * 3600 + om * 60);
	*ms = secs * 1000 + frac;
	return 0;
}

size_t cm_time_format(int64_t ms, char *out)
{
	int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
	unsigned msec = (unsigned)(ms - secs * 1000);
	int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
	unsigned sod = (unsigned)(secs - days * 86400);
	int64_t y;
	unsigned m, d;
	char *p = out;

	civil_from_days(days, &y, &m, &d);
	if (y < 0 || y > 9999)
		y = y < 0 ? 0 : 9999;
	unsigned vals[6] = {(unsigned)y, m, d, sod / 3600, sod / 60 % 60, sod % 60};
	static const char seps[6] = {'-', '-', 'T', ':', ':', 0};

	*p++ = (char)('0' + vals[0] / 1000);
	*p++ = (char)('0' + vals[0] / 100 % 10);
	*p++ = (char)('0' + vals[0] / 10 % 10);
	*p++ = (char)('0' + vals[0] % 10);
	for (int k = 1; k < 6; k++) {
		*p++ = seps[k - 1];
		*p++ = (char)('0' + vals[k] / 10);
		*p++ = (char)('0' + vals[k] % 10);
	}
	if (msec) {
		*p++ = '.';
		*p++ = (char)('0' + msec / 100);
		*p++ = (char)('0' + msec / 10 % 10);
		*p++ = (char)('0' + msec % 10);
	}
	*p++ = 'Z';
	*p = 0;
	return (size_t)(p - out);
}

int64_t cm_time_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cm_time_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t cm_time_mono_ms(void)
{
	return cm_time_mono_ns() / 1000000;
}
