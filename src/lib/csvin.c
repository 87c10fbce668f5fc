/* csvin.c - CSV records over libcsv, with the start line, the text as read
 * and a bound on the record size.
 *
 * libcsv reports fields and row ends but not where they are. So the input is
 * fed to it in pieces that end at a CR or LF: a row can only end on such a
 * byte, hence when libcsv reports a row end, it is the last byte fed, and the
 * record's text and line numbers follow from the positions of the pieces.
 */
#include "csvin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

#define READ_BLOCK   (256 * 1024)
#define CSV_BLK_SIZE (64 * 1024)
#define ARENA_START  4096

enum { BAD_AFTER_QUOTE = 1, BAD_OPEN_QUOTE = 2 };

/* Spaces belong to the field in RFC 4180, so libcsv must not trim them. */
static int no_space(unsigned char c)
{
	(void)c;
	return 0;
}

/* The common part of the three ways to start a reader. */
static void setup(struct cm_csvin *c, const char *name, char delim, size_t max)
{
	memset(c, 0, sizeof(*c));
	csv_init(&c->p, CSV_STRICT);
	csv_set_delim(&c->p, (unsigned char)delim);
	csv_set_space_func(&c->p, no_space);
	csv_set_blk_size(&c->p, CSV_BLK_SIZE);
	c->fd = -1;
	c->fast = delim != '"' && delim != '\r' && delim != '\n';
	c->name = name;
	c->max = max;
	c->line = 1;
}

/* Reads records from a descriptor the caller owns. */
void cm_csvin_init_fd(struct cm_csvin *c, int fd, const char *name, char delim, size_t max)
{
	setup(c, name, delim, max);
	c->fd = fd;
}

/* Reads records from memory, for tests and the fuzz harness. */
void cm_csvin_init_mem(struct cm_csvin *c, const char *data, size_t len, const char *name,
                       char delim, size_t max)
{
	setup(c, name, delim, max);
	c->mem = 1;
	c->buf = (char *)data; /* never written in memory mode */
	c->end = len;
	c->cap = len;
	c->eof = 1;
}

/* Opens a file (or stdin) so that messages can name it. */
int cm_csvin_open(struct cm_csvin *c, const char *path, char delim, size_t max, struct cm_err *err)
{
	int fd;

	if (!path || !strcmp(path, "-")) {
		cm_csvin_init_fd(c, 0, "stdin", delim, max);
		return 0;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cm_errf(err, "%s: %s", path, strerror(errno));
	cm_csvin_init_fd(c, fd, path, delim, max);
	c->own_fd = 1;
	return 0;
}

/* Makes room for at least READ_BLOCK/2 more bytes after end. */
static int make_room(struct cm_csvin *c, size_t want, struct cm_err *err)
{
	size_t cap = c->cap ? c->cap : READ_BLOCK;
	char *p;

	if (c->cap - c->end >= want)
		return 0;
	while (cap - c->end < want)
		cap *= 2;
	p = realloc(c->buf, cap);
	if (!p)
		return cm_errf(err, "out of memory");
	c->buf = p;
	c->cap = cap;
	return 0;
}

/* Takes back bytes that format sniffing read ahead of the reader. */
int cm_csvin_prime(struct cm_csvin *c, const void *p, size_t n, struct cm_err *err)
{
	if (c->mem)
		return cm_errf(err, "cannot prime a reader over memory");
	if (make_room(c, n + READ_BLOCK, err))
		return -1;
	if (n)
		memcpy(c->buf + c->end, p, n);
	c->end += n;
	return 0;
}

/* Reads more input after end, first dropping the bytes before start:
 * 1 when bytes came, 0 at the end of the input, -1 on error. */
static int fill(struct cm_csvin *c, struct cm_err *err)
{
	ssize_t r;

	if (c->mem || c->eof)
		return 0;
	if (c->start > 0) {
		memmove(c->buf, c->buf + c->start, c->end - c->start);
		c->pos -= c->start;
		c->end -= c->start;
		c->start = 0;
	}
	if (make_room(c, READ_BLOCK / 2, err))
		return -1;
	do
		r = read(c->fd, c->buf + c->end, c->cap - c->end);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return cm_errf(err, "read error: %s", strerror(errno));
	if (r == 0) {
		c->eof = 1;
		return 0;
	}
	c->end += (size_t)r;
	return 1;
}

/* Doubles the room for field offsets, lengths and pointers. */
static int grow_fields(struct cm_csvin *c)
{
	size_t n = c->fcap ? c->fcap * 2 : 32;
	size_t *o = realloc(c->foff, n * sizeof(*o));
	const char **f;

	if (!o)
		return -1;
	c->foff = o;
	o = realloc(c->flen, n * sizeof(*o));
	if (!o)
		return -1;
	c->flen = o;
	f = realloc(c->fptr, n * sizeof(*f));
	if (!f)
		return -1;
	c->fptr = f;
	c->fcap = n;
	return 0;
}

/* libcsv's field callback: keeps the field's bytes in the record arena
 * (libcsv reuses its own buffer for the next field). */
static void on_field(void *s, size_t len, void *data)
{
	struct cm_csvin *c = data;

	if (c->skipping || c->failed)
		return;
	if (c->nf == c->fcap && grow_fields(c)) {
		c->failed = 1;
		return;
	}
	if (len > c->acap - c->alen) {
		size_t n = c->acap ? c->acap : ARENA_START;
		char *a;

		while (n - c->alen < len)
			n *= 2;
		a = realloc(c->arena, n);
		if (!a) {
			c->failed = 1;
			return;
		}
		c->arena = a;
		c->acap = n;
	}
	if (len)
		memcpy(c->arena + c->alen, s, len);
	c->foff[c->nf] = c->alen;
	c->flen[c->nf] = len;
	c->nf++;
	c->alen += len;
}

/* libcsv's row callback: the record is complete. */
static void on_row(int ch, void *data)
{
	(void)ch;
	((struct cm_csvin *)data)->ended = 1;
}

/* Counts the line end ch, consumed right after a CR when after_cr: CRLF,
 * LF and a lone CR each end one line. */
static void count_eol(struct cm_csvin *c, char ch, int after_cr)
{
	if (ch != '\n' || !after_cr)
		c->line++;
	c->prev_cr = ch == '\r';
}

/* The first CR or LF in p[0..n), or NULL. */
static const char *find_eol(const char *p, size_t n)
{
	const char *lf = memchr(p, '\n', n);
	const char *cr = memchr(p, '\r', lf ? (size_t)(lf - p) : n);

	return cr ? cr : lf;
}

/* Skips the line ends before a record; 1 when a record starts at pos, 0 at
 * the end of the input, -1 on error. */
static int skip_blank(struct cm_csvin *c, struct cm_err *err)
{
	for (;;) {
		char ch;

		if (c->pos == c->end) {
			int r;

			c->start = c->pos;
			r = fill(c, err);
			if (r <= 0)
				return r;
		}
		ch = c->buf[c->pos];
		if (ch != '\n' && ch != '\r')
			return 1;
		count_eol(c, ch, c->prev_cr);
		c->pos++;
		c->bytes++;
	}
}

/* Drops the UTF-8 byte order mark at the very start of the input. */
static int skip_bom(struct cm_csvin *c, struct cm_err *err)
{
	int r = 1;

	c->began = 1;
	while (c->end - c->pos < 3 && (r = fill(c, err)) > 0)
		;
	if (r < 0)
		return -1;
	if (c->end - c->pos >= 3 && !memcmp(c->buf + c->pos, "\xEF\xBB\xBF", 3)) {
		c->pos += 3;
		c->bytes += 3;
	}
	return 0;
}

/* Ends the record at the end of the input. An open quoted field there is
 * an error, found by libcsv's strict end check. */
static void finish_at_eof(struct cm_csvin *c)
{
	if (!c->bad) {
		csv_set_opts(&c->p, CSV_STRICT | CSV_STRICT_FINI);
		if (csv_fini(&c->p, on_field, on_row, c) != 0) {
			c->bad = BAD_OPEN_QUOTE;
			c->bad_field = c->nf + 1;
			c->p.status = 0;
			csv_set_opts(&c->p, CSV_STRICT);
			csv_fini(&c->p, NULL, NULL, NULL); /* reset the parser */
		}
		csv_set_opts(&c->p, CSV_STRICT);
	}
	c->ended = 1;
}

/* Feeds p[0..n) to libcsv in strict RFC 4180 mode, except that a quote
 * inside an unquoted field is fed again in non-strict mode, where it is a
 * literal character. Text after a closing quote marks the record bad and
 * resets the parser; the caller then drops the rest of the line. */
static int feed(struct cm_csvin *c, const char *p, size_t n)
{
	size_t done = 0;

	while (done < n) {
		done += csv_parse(&c->p, p + done, n - done, on_field, on_row, c);
		if (done == n)
			break;
		if (csv_error(&c->p) != CSV_EPARSE)
			return -1;
		c->p.status = 0; /* libcsv has no call that clears it alone */
		if (!c->p.quoted) {
			size_t one;

			csv_set_opts(&c->p, 0);
			one = csv_parse(&c->p, p + done, 1, on_field, on_row, c);
			csv_set_opts(&c->p, CSV_STRICT);
			if (one != 1)
				return -1;
			done++;
			continue;
		}
		c->bad = BAD_AFTER_QUOTE;
		c->bad_field = c->nf + 1;
		csv_fini(&c->p, NULL, NULL, NULL); /* reset the parser */
		break;
	}
	return 0;
}

/* Reads a record that is one line without any quote by splitting it at the
 * delimiters, which is what libcsv would make of it, in place and without a
 * call per byte; 1 when done, 0 to leave the record to libcsv (quotes, no
 * line end in the buffer yet, too long), -1 when out of memory. */
static int fast_record(struct cm_csvin *c, size_t *rawend)
{
	const char *p = c->buf + c->pos, *f = p, *e;
	const char *t = find_eol(p, c->end - c->pos);
	size_t len;

	if (t)
		len = (size_t)(t - p);
	else if (c->eof || c->mem)
		len = c->end - c->pos;
	else
		return 0;
	if (len > c->max || memchr(p, '"', len))
		return 0;
	e = p + len;
	for (;;) {
		const char *d = memchr(f, c->p.delim_char, (size_t)(e - f));

		if (c->nf == c->fcap && grow_fields(c))
			return -1;
		c->fptr[c->nf] = f;
		c->flen[c->nf++] = (size_t)((d ? d : e) - f);
		if (!d)
			break;
		f = d + 1;
	}
	*rawend = c->pos + len;
	c->pos += len + (t != NULL);
	c->bytes += len + (t != NULL);
	if (t)
		count_eol(c, *t, 0);
	return 1;
}

/* Feeds libcsv up to each line end until it reports the end of a row. */
int cm_csvin_next(struct cm_csvin *c, struct cm_csvrec *rec, struct cm_err *err)
{
	size_t rawend;
	int r;

	memset(rec, 0, sizeof(*rec));
	c->nf = c->alen = 0;
	c->ended = c->skipping = c->failed = c->bad = 0;
	if (!c->arena) {
		c->arena = malloc(ARENA_START);
		if (!c->arena)
			return cm_errf(err, "out of memory");
		c->acap = ARENA_START;
	}
	if (!c->began && skip_bom(c, err))
		return CM_CSV_ERR;
	r = skip_blank(c, err);
	if (r <= 0)
		return r < 0 ? CM_CSV_ERR : CM_CSV_EOF;
	rec->line = c->line;
	c->start = c->pos;
	if (c->fast) {
		r = fast_record(c, &rawend);
		if (r < 0)
			return cm_errf(err, "out of memory");
		if (r > 0) {
			rec->raw = c->buf + c->start;
			rec->rawlen = rawend - c->start;
			rec->n = c->nf;
			rec->field = c->fptr;
			rec->len = c->flen;
			return CM_CSV_OK;
		}
	}
	for (;;) {
		const char *p, *t;
		size_t n;

		if (c->pos == c->end) {
			if (c->skipping)
				c->start = c->pos;
			r = fill(c, err);
			if (r < 0)
				return CM_CSV_ERR;
			if (r == 0) {
				finish_at_eof(c);
				rawend = c->pos;
				break;
			}
		}
		p = c->buf + c->pos;
		n = c->end - c->pos;
		t = find_eol(p, n);
		if (t)
			n = (size_t)(t - p) + 1;
		if (!c->bad && feed(c, p, n))
			return cm_errf(err, "%s", csv_strerror(csv_error(&c->p)));
		c->pos += n;
		c->bytes += n;
		if (t)
			count_eol(c, *t, n == 1 && c->prev_cr);
		else
			c->prev_cr = 0;
		if (c->failed)
			return cm_errf(err, "out of memory");
		if (c->ended || (c->bad && t)) {
			rawend = c->pos - 1;
			break;
		}
		if (!c->skipping && c->pos - c->start > c->max)
			c->skipping = 1;
		if (c->skipping) {
			/* Keep libcsv's field buffer small while the record is
			 * skipped; one byte stays so that its closing-quote
			 * bookkeeping (entry_pos -= 1) cannot underflow. */
			if (c->p.entry_pos > 1)
				c->p.entry_pos = 1;
			c->start = c->pos;
		}
	}
	if (c->failed)
		return cm_errf(err, "out of memory");
	if (c->skipping || rawend - c->start > c->max) {
		cm_errf(err, "record longer than %zu bytes", c->max);
		return CM_CSV_LONG;
	}
	rec->raw = c->buf + c->start;
	rec->rawlen = rawend - c->start;
	if (c->bad == BAD_OPEN_QUOTE) {
		cm_errf(err, "field %zu: quoted field not closed before the end of the input",
		        c->bad_field);
		return CM_CSV_BAD;
	}
	if (c->bad == BAD_AFTER_QUOTE) {
		cm_errf(err,
		        "field %zu: text after the closing quote (a quote inside a quoted field "
		        "is written twice)",
		        c->bad_field);
		return CM_CSV_BAD;
	}
	for (size_t i = 0; i < c->nf; i++)
		c->fptr[i] = c->arena + c->foff[i];
	rec->n = c->nf;
	rec->field = c->fptr;
	rec->len = c->flen;
	return CM_CSV_OK;
}

/* Frees the buffers and closes a descriptor opened by cm_csvin_open. */
void cm_csvin_release(struct cm_csvin *c)
{
	csv_free(&c->p);
	free(c->arena);
	free(c->foff);
	free(c->flen);
	free(c->fptr);
	if (!c->mem)
		free(c->buf);
	if (c->own_fd && c->fd >= 0)
		close(c->fd);
	c->arena = NULL;
	c->foff = c->flen = NULL;
	c->fptr = NULL;
	c->buf = NULL;
	c->fd = -1;
}
