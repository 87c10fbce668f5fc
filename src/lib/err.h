/* err.h - error values: a function that can fail returns 0 or -1 and fills a
 * caller-owned struct cm_err with a message that names the input position and
 * a code saying what kind of failure it was. The codes are the exit statuses
 * of CONTRACT section 2, so that a tool giving up on an error exits with
 * err.code, and every tool means the same by each status. */
#ifndef CM_ERR_H
#define CM_ERR_H

#include <stddef.h>

/* Exit statuses, the same in every tool (CONTRACT section 2). */
enum cm_exit {
	CM_EXIT_OK = 0,          /* all records processed */
	CM_EXIT_REJECTED = 1,    /* the run completed, some records were rejected */
	CM_EXIT_USAGE = 2,       /* usage or configuration error */
	CM_EXIT_UNREACHABLE = 3, /* a server (Redis, PostgreSQL) stayed unreachable */
	CM_EXIT_REFUSED = 4,     /* a server refused a request that retrying cannot fix */
	CM_EXIT_SYSTEM = 5, /* an input or output error of the system (full disk, read error) */
};

struct cm_err {
	char msg[512];
	int code; /* enum cm_exit: what giving up on this error means */
};

/* Formats a message into err (if not NULL) with the code CM_EXIT_REJECTED
 * (a problem with one record, the common case in library code) and returns
 * -1, so that callers can write `return cm_errf(err, "...")`. */
int cm_errf(struct cm_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Same with an explicit code (enum cm_exit). */
int cm_errc(struct cm_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in err with a formatted context ("line 4: ")
 * and returns -1; the code is kept. */
int cm_err_prefix(struct cm_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
