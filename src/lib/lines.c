/* lines.c - the one line reader: bounded line length (a long line is
 * skipped and said so), blank lines and a byte order mark dropped here once,
 * and waits that a timeout, a wake descriptor or a signal can end. */
#include "lines.h"

#include "err.h"
#include "retry.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINES_CHUNK (256 * 1024)

static const char bom[3] = {'\xEF', '\xBB', '\xBF'};

/* Opens a file (or stdin for "-" or NULL) for reading lines. */
int cm_lines_open(struct cm_lines *r, const char *path, size_t max, struct cm_err *err)
{
	int fd = 0;

	if (path && strcmp(path, "-") != 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return cm_errc(err, CM_EXIT_USAGE, "%s: cannot open: %s", path,
			               strerror(errno));
	}
	cm_lines_init_fd(r, fd, fd ? path : "stdin", max);
	r->own_fd = fd != 0;
	return 0;
}

/* Prepares to read from a descriptor the caller owns. */
void cm_lines_init_fd(struct cm_lines *r, int fd, const char *name, size_t max)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->name = name;
	r->max = max ? max : 1024 * 1024;
}

/* Makes room for a read after end: moves the unread part to the front when
 * little room is left, and grows the buffer up to max + 2 + a chunk, which
 * holds any line that is not too long (those are dropped before) and a read
 * after it. */
static int room(struct cm_lines *r, struct cm_err *err)
{
	size_t limit = r->max + 2 + LINES_CHUNK, cap;
	char *p;

	if (r->start > 0 && r->cap - r->end < LINES_CHUNK / 2) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->lf = r->lf > r->start ? r->lf - r->start : 0;
		r->end -= r->start;
		r->start = 0;
	}
	if (r->cap - r->end >= LINES_CHUNK / 2 || r->cap >= limit)
		return 0;
	cap = r->cap ? r->cap : LINES_CHUNK;
	while (cap - r->end < LINES_CHUNK / 2 && cap < limit)
		cap *= 2;
	if (cap > limit)
		cap = limit;
	p = realloc(r->buf, cap);
	if (!p)
		return cm_errc(err, CM_EXIT_SYSTEM, "%s: out of memory", r->name);
	r->buf = p;
	r->cap = cap;
	return 0;
}

/* Reads once after end (waiting when fd is blocking); 0 when bytes came or
 * the input ended (eof set), CM_LINE_ERR on error. */
static int fill(struct cm_lines *r, struct cm_err *err)
{
	ssize_t n;

	if (room(r, err) < 0)
		return CM_LINE_ERR;
	for (;;) {
		n = read(r->fd, r->buf + r->end, r->cap - r->end);
		if (n >= 0)
			break;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			/* a non-blocking descriptor: wait here, as a blocking
			 * read would */
			struct pollfd pfd = {.fd = r->fd, .events = POLLIN};

			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				return cm_errc(err, CM_EXIT_SYSTEM, "%s: poll: %s", r->name,
				               strerror(errno));
		} else if (errno != EINTR) {
			return cm_errc(err, CM_EXIT_SYSTEM, "%s: read error: %s", r->name,
			               strerror(errno));
		}
	}
	if (n == 0) {
		r->eof = 1;
		return 0;
	}
	{
		const char *nl = memrchr(r->buf + r->end, '\n', (size_t)n);

		if (nl)
			r->lf = (size_t)(nl - r->buf) + 1;
	}
	r->end += (size_t)n;
	r->bytes += (unsigned long long)n;
	return 0;
}

/* Waits until fd is readable, then reads; or says why it stopped waiting:
 * TIMEOUT once the deadline has passed (after one look at the input when
 * first is set), WAKE, INTR, or ERR. */
static int wait_fill(struct cm_lines *r, const struct cm_lines_wait *w, int64_t deadline, int first,
                     struct cm_err *err)
{
	struct pollfd pfd[2] = {{.fd = r->fd, .events = POLLIN},
	                        {.fd = w->wake_fd, .events = POLLIN}};
	struct timespec ts, *tp = NULL;
	int ready;

	if (deadline != INT64_MAX) {
		int64_t left = deadline - cm_mono_ms();

		if (left <= 0 && !first)
			return CM_LINE_TIMEOUT;
		if (left < 0)
			left = 0;
		ts.tv_sec = (time_t)(left / 1000);
		ts.tv_nsec = (long)(left % 1000) * 1000000L;
		tp = &ts;
	}
	ready = ppoll(pfd, w->wake_fd >= 0 ? 2 : 1, tp, w->mask);
	if (ready == 0)
		return CM_LINE_TIMEOUT;
	if (ready < 0 && errno == EINTR)
		return CM_LINE_INTR;
	if (ready < 0)
		return cm_errc(err, CM_EXIT_SYSTEM, "%s: poll: %s", r->name, strerror(errno));
	if (w->wake_fd >= 0 && pfd[1].revents)
		return CM_LINE_WAKE;
	return fill(r, err);
}

/* True when s[0..n) holds nothing but spaces, tabs and CRs. */
static int blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

/* Drops a byte order mark at the very start, once enough is buffered to
 * tell (three bytes, an LF or the end); 0 when more input is needed. */
static int check_bom(struct cm_lines *r)
{
	size_t avail = r->end - r->start;

	if (avail < 3 && !r->eof && !(avail && memchr(r->buf + r->start, '\n', avail)))
		return 0;
	r->began = 1;
	if (avail >= 3 && !memcmp(r->buf + r->start, bom, 3))
		r->start += 3;
	return 1;
}

/* Ends the line at buf[start..start+n) (its LF, if any, already consumed):
 * OK with the line, LONG, or 1 for a blank line to skip. */
static int hand_out(struct cm_lines *r, char *b, size_t n, const char **line, size_t *len)
{
	r->lineno++;
	if (r->skipping) {
		r->skipping = 0;
		return CM_LINE_LONG;
	}
	if (n > 0 && b[n - 1] == '\r')
		n--;
	if (n > r->max)
		return CM_LINE_LONG;
	if (blank(b, n))
		return 1;
	*line = b;
	*len = n;
	return CM_LINE_OK;
}

/* The reader behind cm_lines_next (w NULL: wait as long as it takes) and
 * cm_lines_next_wait. */
static int next(struct cm_lines *r, const char **line, size_t *len, const struct cm_lines_wait *w,
                struct cm_err *err)
{
	int64_t deadline = INT64_MAX;
	int first = 1, rc;

	if (w && w->timeout_ms >= 0)
		deadline = cm_mono_ms() + w->timeout_ms;
	for (;;) {
		char *b = r->buf + r->start;
		size_t avail = r->end - r->start;

		if (r->began || check_bom(r)) {
			char *nl;

			b = r->buf + r->start;
			avail = r->end - r->start;
			nl = avail > r->scan ? memchr(b + r->scan, '\n', avail - r->scan) : NULL;
			if (nl) {
				r->start += (size_t)(nl - b) + 1;
				r->scan = 0;
				r->no_newline = 0;
				rc = hand_out(r, b, (size_t)(nl - b), line, len);
				if (rc != 1)
					return rc;
				continue;
			}
			if (r->eof) {
				if (avail == 0 && !r->skipping)
					return CM_LINE_EOF;
				r->start = r->end;
				r->scan = 0;
				r->no_newline = 1;
				rc = hand_out(r, b, avail, line, len);
				if (rc != 1)
					return rc;
				continue;
			}
			r->scan = avail;
			if (avail > r->max + 1) {
				/* too long already: drop it and look for its end */
				r->skipping = 1;
				r->start = r->end;
				r->scan = 0;
			}
		}
		rc = w ? wait_fill(r, w, deadline, first, err) : fill(r, err);
		if (rc != 0)
			return rc;
		first = 0;
	}
}

/* Hands out the next line that is not blank, waiting as long as it takes. */
int cm_lines_next(struct cm_lines *r, const char **line, size_t *len, struct cm_err *err)
{
	return next(r, line, len, NULL, err);
}

/* Hands out the next line that is not blank, or why the wait ended. */
int cm_lines_next_wait(struct cm_lines *r, const char **line, size_t *len,
                       const struct cm_lines_wait *w, struct cm_err *err)
{
	return next(r, line, len, w, err);
}

/* Looks for a whole line after the blank ones at start, using the position
 * of the last LF read so that the look costs nothing per line. */
int cm_lines_ready(struct cm_lines *r, int probe)
{
	size_t q = r->start;
	struct pollfd pfd = {.fd = r->fd, .events = POLLIN};

	if (r->eof)
		return 1;
	if (!r->skipping) {
		if (!r->began && r->end - q >= 3 && !memcmp(r->buf + q, bom, 3))
			q += 3;
		while (q < r->end && (r->buf[q] == '\n' || blank(r->buf + q, 1)))
			q++;
	}
	if (q < r->end && r->lf > q)
		return 1;
	return probe && poll(&pfd, 1, 0) > 0;
}

/* Reads ahead for a look at the first bytes; nothing is consumed. */
int cm_lines_peek(struct cm_lines *r, size_t min, const char **p, size_t *n, struct cm_err *err)
{
	if (min > CM_LINES_PEEK_MAX)
		min = CM_LINES_PEEK_MAX;
	for (;;) {
		if (!r->began)
			check_bom(r);
		if (r->eof || (r->began && r->end - r->start >= min))
			break;
		if (fill(r, err) < 0)
			return -1;
	}
	*p = r->buf ? r->buf + r->start : "";
	*n = r->end - r->start;
	return 0;
}

/* Gives away what is buffered; the reader then only counts as at its end
 * of those bytes. */
void cm_lines_take(struct cm_lines *r, const char **p, size_t *n, int *eof)
{
	*p = r->buf ? r->buf + r->start : "";
	*n = r->end - r->start;
	*eof = r->eof;
	r->start = r->end;
	r->scan = 0;
}

/* Frees the buffer and closes what cm_lines_open opened. */
void cm_lines_release(struct cm_lines *r)
{
	if (r->own_fd)
		close(r->fd);
	free(r->buf);
	r->buf = NULL;
	r->fd = -1;
}
