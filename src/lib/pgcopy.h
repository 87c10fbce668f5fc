/* pgcopy.h - the rows of a query as they stream in, through
 * COPY (query) TO STDOUT (FORMAT binary): memory stays constant however
 * many rows there are, and binary fields have no escaping to undo.
 *
 * Fields of the current row point into the reader's buffer and stay valid
 * until the next call. Types as PostgreSQL sends them in binary: text and
 * varchar as their bytes, bigint as 8 bytes big-endian (cm_pg_be64), jsonb
 * as a version byte (1) followed by its text. */
#ifndef CM_PGCOPY_H
#define CM_PGCOPY_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

struct cm_err;

#define CM_PGCOPY_MAX_FIELDS 32

struct cm_pgcopy {
	PGconn *c;
	char *chunk;      /* the CopyData message being read (libpq's) */
	size_t len, pos;  /* its length and the read position */
	int header_done;  /* the binary file header was read */
	int done;         /* the trailer or the end was seen */
	unsigned nfields; /* fields of the current row */
	const char *field[CM_PGCOPY_MAX_FIELDS];
	int32_t flen[CM_PGCOPY_MAX_FIELDS]; /* -1: NULL */
	unsigned long long rows;
};

/* Starts COPY (select) TO STDOUT (FORMAT binary) on c. select must be one
 * SELECT statement without parameters (values in it must be quoted by the
 * caller, e.g. with PQescapeLiteral). Returns 0, or -1 with err. */
int cm_pgcopy_start(struct cm_pgcopy *r, PGconn *c, const char *select, struct cm_err *err);
/* Reads the next row: 1 with r->field and r->flen set, 0 at the end (the
 * command completed), -1 with err (the server failed or the data is not
 * the binary COPY format). After -1 or 0 the connection is ready for the
 * next command. */
int cm_pgcopy_next(struct cm_pgcopy *r, struct cm_err *err);
/* Frees what the reader holds; a COPY still running is cancelled. */
void cm_pgcopy_release(struct cm_pgcopy *r);

/* An 8-byte big-endian integer (a bigint field). */
int64_t cm_pg_be64(const char *p);

#endif
