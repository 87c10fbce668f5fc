/* pgcopy.c - streaming a query's rows with binary COPY. */
#include "pgcopy.h"

#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "pg.h"

/* The binary COPY signature, then a 4-byte flags word and the length of a
 * header extension. */
static const char signature[11] = "PGCOPY\n\377\r\n";

/* Reads a big-endian 16-bit integer. */
static int16_t be16(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (int16_t)((u[0] << 8) | u[1]);
}

/* Reads a big-endian 32-bit integer. */
static int32_t be32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (int32_t)(((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) |
	                 u[3]);
}

/* Reads a big-endian 64-bit integer, as bigint fields are sent. */
int64_t cm_pg_be64(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | u[i];
	return (int64_t)v;
}

/* Starts the COPY; the query text is built by the caller. */
int cm_pgcopy_start(struct cm_pgcopy *r, PGconn *c, const char *select, struct cm_err *err)
{
	struct cm_buf q = CM_BUF_INIT;
	PGresult *res;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	r->c = c;
	if (cm_buf_adds(&q, "COPY (") || cm_buf_adds(&q, select) ||
	    cm_buf_adds(&q, ") TO STDOUT (FORMAT binary)")) {
		cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
		goto out;
	}
	res = PQexec(c, q.data);
	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		cm_pg_errf(err, c, res, "PostgreSQL");
		PQclear(res);
		r->done = 1;
		goto out;
	}
	PQclear(res);
	rc = 0;
out:
	cm_buf_release(&q);
	return rc;
}

/* Takes the next CopyData message; 1, 0 at the end of the data, -1. */
static int next_chunk(struct cm_pgcopy *r, struct cm_err *err)
{
	int n;

	if (r->chunk)
		PQfreemem(r->chunk);
	r->chunk = NULL;
	r->len = r->pos = 0;
	n = PQgetCopyData(r->c, &r->chunk, 0);
	if (n >= 0) {
		r->len = (size_t)n;
		return 1;
	}
	if (n == -2)
		return cm_pg_errf(err, r->c, NULL, "PostgreSQL");
	return 0;
}

/* Collects the command's final result after the data ended. */
static int finish(struct cm_pgcopy *r, struct cm_err *err)
{
	PGresult *res;
	int rc = 0;

	r->done = 1;
	while ((res = PQgetResult(r->c))) {
		if (rc == 0 && PQresultStatus(res) != PGRES_COMMAND_OK)
			rc = cm_pg_errf(err, r->c, res, "PostgreSQL");
		PQclear(res);
	}
	return rc;
}

/* A binary COPY stream that does not have the expected shape. */
static int malformed(struct cm_pgcopy *r, struct cm_err *err, const char *what)
{
	cm_errc(err, CM_EXIT_REFUSED, "PostgreSQL: malformed binary COPY data (%s)", what);
	finish(r, NULL);
	return -1;
}

/* Parses the file header at the start of the first message. */
static int read_header(struct cm_pgcopy *r, struct cm_err *err)
{
	int32_t ext;

	if (r->len - r->pos < 19 || memcmp(r->chunk + r->pos, signature, 11))
		return malformed(r, err, "no header");
	ext = be32(r->chunk + r->pos + 15);
	if (ext < 0 || (size_t)ext > r->len - r->pos - 19)
		return malformed(r, err, "header extension");
	r->pos += 19 + (size_t)ext;
	r->header_done = 1;
	return 0;
}

/* Reads one row from the current message (a message holds whole rows). */
int cm_pgcopy_next(struct cm_pgcopy *r, struct cm_err *err)
{
	int16_t nf;

	if (r->done)
		return 0;
	while (r->pos >= r->len) {
		int got = next_chunk(r, err);

		if (got < 0) {
			finish(r, NULL);
			return -1;
		}
		if (got == 0)
			return finish(r, err) < 0 ? -1 : 0;
	}
	if (!r->header_done && read_header(r, err) < 0)
		return -1;
	if (r->pos >= r->len)
		return cm_pgcopy_next(r, err);
	if (r->len - r->pos < 2)
		return malformed(r, err, "truncated row");
	nf = be16(r->chunk + r->pos);
	r->pos += 2;
	if (nf == -1) {
		/* the trailer: drain to the end of the data */
		while (next_chunk(r, err) > 0)
			;
		return finish(r, err) < 0 ? -1 : 0;
	}
	if (nf < 0 || nf > CM_PGCOPY_MAX_FIELDS)
		return malformed(r, err, "field count");
	r->nfields = (unsigned)nf;
	for (int i = 0; i < nf; i++) {
		int32_t n;

		if (r->len - r->pos < 4)
			return malformed(r, err, "truncated field");
		n = be32(r->chunk + r->pos);
		r->pos += 4;
		if (n < -1 || (n > 0 && (size_t)n > r->len - r->pos))
			return malformed(r, err, "field length");
		r->flen[i] = n;
		r->field[i] = n >= 0 ? r->chunk + r->pos : NULL;
		if (n > 0)
			r->pos += (size_t)n;
	}
	r->rows++;
	return 1;
}

/* Frees the message; a COPY stopped early is cancelled so that the
 * connection does not stream the rest to nobody. */
void cm_pgcopy_release(struct cm_pgcopy *r)
{
	if (r->chunk)
		PQfreemem(r->chunk);
	r->chunk = NULL;
	if (!r->done && r->c) {
		PGcancel *cancel = PQgetCancel(r->c);
		char msg[256];

		if (cancel) {
			PQcancel(cancel, msg, sizeof(msg));
			PQfreeCancel(cancel);
		}
		while (next_chunk(r, NULL) > 0)
			;
		finish(r, NULL);
	}
	if (r->chunk)
		PQfreemem(r->chunk);
	r->chunk = NULL;
}
