/* err.c - error values. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Formats into err with the given code; the one place that writes a message. */
static void verrc(struct cm_err *err, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void verrc(struct cm_err *err, int code, const char *fmt, va_list ap)
{
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	err->code = code;
}

/* Formats into err; returns -1 so callers can `return cm_errf(...)`. */
int cm_errf(struct cm_err *err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	verrc(err, CM_EXIT_REJECTED, fmt, ap);
	va_end(ap);
	return -1;
}

/* Formats into err with an explicit code; returns -1. */
int cm_errc(struct cm_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	verrc(err, code, fmt, ap);
	va_end(ap);
	return -1;
}

/* Puts a context in front of an existing message, truncating at the end. */
int cm_err_prefix(struct cm_err *err, const char *fmt, ...)
{
	char old[sizeof(err->msg)];
	va_list ap;
	int n;

	if (!err)
		return -1;
	memcpy(old, err->msg, sizeof(old));
	va_start(ap, fmt);
	n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(err->msg))
		snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, "%s", old);
	return -1;
}
