/* lines.c - a line reader that bounds line length and never stops on a long
 * line: it skips it and says so. */
#include "lines.h"

#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINES_CHUNK (256 * 1024)

/* Opens a file (or stdin for "-" or NULL) for reading lines. */
int cm_lines_open(struct cm_lines *r, const char *path, size_t max, struct cm_err *err)
{
	int fd = 0;

	if (path && strcmp(path, "-") != 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return cm_errf(err, "%s: cannot open: %s", path, strerror(errno));
	}
	cm_lines_init_fd(r, fd, fd ? path : "stdin", max);
	r->own_fd = fd != 0;
	return 0;
}

void cm_lines_init_fd(struct cm_lines *r, int fd, const char *name, size_t max)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->name = name;
	r->max = max ? max : 1024 * 1024;
}

/* Reads more bytes after the unread part, moving it to the front or growing
 * the buffer (up to max + 2) when needed; returns bytes read, 0 at EOF, -1. */
static ssize_t fill(struct cm_lines *r, struct cm_err *err)
{
	ssize_t n;

	if (r->start > 0 && (r->end == r->cap || r->start >= r->cap / 2)) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	if (r->end == r->cap) {
		size_t limit = r->max + 2 > LINES_CHUNK ? r->max + 2 : LINES_CHUNK;
		size_t cap = r->cap ? r->cap * 2 : LINES_CHUNK;
		char *p;

		if (cap > limit)
			cap = limit;
		if (cap <= r->cap) {
			/* Full of one unfinished line that is already too long. */
			r->start = r->end = 0;
			cap = r->cap;
		} else {
			p = realloc(r->buf, cap);
			if (!p)
				return cm_errf(err, "%s: out of memory", r->name);
			r->buf = p;
			r->cap = cap;
		}
	}
	do
		n = read(r->fd, r->buf + r->end, r->cap - r->end);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return cm_errf(err, "%s: read error: %s", r->name, strerror(errno));
	r->end += (size_t)n;
	r->bytes += (unsigned long long)n;
	return n;
}

/* Hands out the next line; a line longer than max is consumed through its
 * newline and reported as CM_LINE_LONG. */
int cm_lines_next(struct cm_lines *r, const char **line, size_t *len, struct cm_err *err)
{
	size_t scanned = 0;
	int toolong = 0;

	if (r->eof)
		return CM_LINE_EOF;
	for (;;) {
		char *b = r->buf + r->start;
		size_t avail = r->end - r->start;
		char *nl = avail > scanned ? memchr(b + scanned, '\n', avail - scanned) : NULL;

		if (nl) {
			size_t n = (size_t)(nl - b);

			r->start += n + 1;
			r->lineno++;
			if (toolong || n > r->max + (n > 0 && b[n - 1] == '\r'))
				return CM_LINE_LONG;
			if (n > 0 && b[n - 1] == '\r')
				n--;
			r->no_newline = 0;
			*line = b;
			*len = n;
			return CM_LINE_OK;
		}
		if (avail > r->max + 1) {
			/* Too long already: drop what we have and keep looking for
			 * the end of this line. */
			toolong = 1;
			r->start = r->end;
			scanned = 0;
		} else {
			scanned = avail;
		}
		ssize_t got = fill(r, err);

		if (got < 0)
			return CM_LINE_ERR;
		if (got == 0) {
			avail = r->end - r->start;
			r->eof = 1;
			if (avail == 0 && !toolong)
				return CM_LINE_EOF;
			r->lineno++;
			r->start = r->end;
			if (toolong || avail > r->max)
				return CM_LINE_LONG;
			b = r->buf + r->end - avail;
			if (avail > 0 && b[avail - 1] == '\r')
				avail--;
			r->no_newline = 1;
			*line = b;
			*len = avail;
			return CM_LINE_OK;
		}
		/* After a compaction the unread part moved; rescanning from
		 * `scanned` stays valid because it is relative to start. */
	}
}

void cm_lines_release(struct cm_lines *r)
{
	if (r->own_fd)
		close(r->fd);
	free(r->buf);
	r->buf = NULL;
	r->fd = -1;
}
