/* lines.h - a line reader over a file descriptor, for NDJSON and CSV input.
 * It hands out each line (without its LF or CRLF) as a pointer into its own
 * buffer, valid until the next call. Lines longer than max are skipped whole
 * and reported, so one huge record never kills the run. */
#ifndef CM_LINES_H
#define CM_LINES_H

#include <stddef.h>

struct cm_lines {
	int fd;
	const char *name; /* for messages: a path or "stdin" */
	char *buf;
	size_t cap, start, end;
	size_t max;               /* maximum line length in bytes */
	unsigned long lineno;     /* number of the line last returned, from 1 */
	unsigned long long bytes; /* bytes consumed so far */
	int eof;
	int no_newline; /* the line last returned had no trailing LF (end of input) */
	int own_fd;     /* opened by cm_lines_open: closed by release */
};

enum {
	CM_LINE_OK = 0,   /* *line, *len set */
	CM_LINE_EOF = 1,  /* no more input */
	CM_LINE_LONG = 2, /* line lineno was longer than max; it was skipped */
	CM_LINE_ERR = -1, /* read error; err says why */
};

struct cm_err;

/* Opens path ("-" or NULL for stdin) and prepares to read lines of at most
 * max bytes. */
int cm_lines_open(struct cm_lines *r, const char *path, size_t max, struct cm_err *err);
/* Same for an already open descriptor (not closed by release). */
void cm_lines_init_fd(struct cm_lines *r, int fd, const char *name, size_t max);
/* Returns CM_LINE_OK with the next line (CR before LF stripped; blank lines
 * are returned too, callers skip them), or EOF, LONG or ERR. */
int cm_lines_next(struct cm_lines *r, const char **line, size_t *len, struct cm_err *err);
void cm_lines_release(struct cm_lines *r);

#endif
