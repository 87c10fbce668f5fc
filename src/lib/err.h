/* err.h - error values: a function that can fail returns 0 or -1 and fills a
 * caller-owned struct cm_err with a message that names the input position. */
#ifndef CM_ERR_H
#define CM_ERR_H

#include <stddef.h>

struct cm_err {
	char msg[512];
};

/* Formats a message into err (if not NULL) and returns -1, so that callers
 * can write `return cm_errf(err, "...")`. */
int cm_errf(struct cm_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the message already in err with a formatted context ("line 4: ")
 * and returns -1. */
int cm_err_prefix(struct cm_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
