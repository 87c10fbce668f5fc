/* lines.h - the one line reader of the tools' NDJSON input, over a file
 * descriptor.
 *
 * It hands out each line without its LF or CRLF as a pointer into its own
 * buffer, valid until the next call. What every tool means by a line is
 * decided here, once: a UTF-8 byte order mark at the very start is dropped;
 * blank lines (nothing but spaces, tabs and CRs) are skipped, never handed
 * out; line numbers count every physical line, blank or not; a last line
 * without LF is a line. A line longer than max is skipped whole and
 * reported (CM_LINE_LONG), so one huge record never kills the run, and the
 * buffer never grows past max plus one read.
 *
 * Besides the blocking cm_lines_next there are a timed wait
 * (cm_lines_next_wait: a timeout on the monotonic clock, a wake descriptor, a
 * signal mask), a look at whether the next line would wait (cm_lines_ready),
 * and a look at the first bytes for format sniffing (cm_lines_peek) with a
 * hand-over of the buffered bytes to another reader (cm_lines_take).
 *
 * The reader owns its buffer; the descriptor is the caller's unless
 * cm_lines_open opened it. Errors: cannot open is CM_EXIT_USAGE, a read or
 * poll error and out of memory CM_EXIT_SYSTEM (struct cm_err's code). */
#ifndef CM_LINES_H
#define CM_LINES_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

struct cm_lines {
	int fd;
	const char *name; /* for messages: a path or "stdin" */
	char *buf;
	size_t cap, start, end;   /* buf[start..end) is read and not consumed yet */
	size_t scan;              /* bytes after start already searched for an LF */
	size_t lf;                /* just past the last LF in buf[0..end); 0: none */
	size_t max;               /* maximum line length in bytes */
	unsigned long lineno;     /* number of the line last returned, from 1 */
	unsigned long long bytes; /* bytes read from fd so far */
	int eof;
	int began;      /* the byte order mark check is done */
	int skipping;   /* inside a line already known to be too long */
	int no_newline; /* the line last returned had no trailing LF (end of input) */
	int own_fd;     /* opened by cm_lines_open: closed by release */
};

enum {
	CM_LINE_OK = 0,      /* *line, *len set */
	CM_LINE_EOF = 1,     /* no more input */
	CM_LINE_LONG = 2,    /* line lineno was longer than max; it was skipped */
	CM_LINE_TIMEOUT = 3, /* cm_lines_next_wait: no whole line within the timeout */
	CM_LINE_WAKE = 4,    /* cm_lines_next_wait: the wake descriptor is readable */
	CM_LINE_INTR = 5,    /* cm_lines_next_wait: a signal came during the wait */
	CM_LINE_ERR = -1,    /* read error or out of memory; err says why */
};

/* What cm_lines_next_wait waits for besides the input. */
struct cm_lines_wait {
	int64_t timeout_ms;   /* on cm_mono_ms, from the call; < 0: no timeout */
	int wake_fd;          /* readable: stop waiting (CM_LINE_WAKE); < 0: none */
	const sigset_t *mask; /* the signal mask during the wait (ppoll); NULL: as is */
};

/* The most cm_lines_peek looks ahead. */
#define CM_LINES_PEEK_MAX ((size_t)64 * 1024)

struct cm_err;

/* Opens path ("-" or NULL for stdin) and prepares to read lines of at most
 * max bytes (0: 1 MiB); a path that cannot be opened is CM_EXIT_USAGE. */
int cm_lines_open(struct cm_lines *r, const char *path, size_t max, struct cm_err *err);
/* Same for an already open descriptor (not closed by release). */
void cm_lines_init_fd(struct cm_lines *r, int fd, const char *name, size_t max);
/* Returns CM_LINE_OK with the next line that is not blank (CR before LF
 * stripped), or EOF, LONG or ERR; waits for input as long as it takes (a
 * signal does not end the wait). */
int cm_lines_next(struct cm_lines *r, const char **line, size_t *len, struct cm_err *err);
/* Same, but stops waiting for input after w->timeout_ms (CM_LINE_TIMEOUT),
 * when w->wake_fd becomes readable (CM_LINE_WAKE) or when a signal arrives
 * (CM_LINE_INTR), running the wait with w->mask; a line already buffered is
 * returned without waiting. What was read stays buffered for the next call. */
int cm_lines_next_wait(struct cm_lines *r, const char **line, size_t *len,
                       const struct cm_lines_wait *w, struct cm_err *err);
/* 1 when the next cm_lines_next returns without waiting: a whole line that
 * is not blank (or a long line's end) is buffered, or the input has ended;
 * with probe, also when the descriptor has bytes to read now (poll, no
 * wait). 0 when it would wait: the moment for a tool to flush its output. */
int cm_lines_ready(struct cm_lines *r, int probe);
/* Reads until at least min bytes (at most CM_LINES_PEEK_MAX) are buffered
 * after the byte order mark, or the input ends, and sets *p, *n to all that
 * is buffered and not consumed, without consuming it. */
int cm_lines_peek(struct cm_lines *r, size_t min, const char **p, size_t *n, struct cm_err *err);
/* Hands the buffered bytes that are not consumed to another reader of the
 * same descriptor (e.g. cm_csvin_prime): *p, *n are valid until the next
 * call, and count as consumed here; *eof: the input ended after them. */
void cm_lines_take(struct cm_lines *r, const char **p, size_t *n, int *eof);
/* Frees the buffer and closes a descriptor cm_lines_open opened. */
void cm_lines_release(struct cm_lines *r);

#endif
