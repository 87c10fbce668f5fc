/* out.h - buffered record output to a file descriptor (normally stdout).
 * Flushes after every record when the descriptor is a terminal, otherwise
 * when the buffer fills. A closed pipe (EPIPE) sets `closed` so the tool can
 * end quietly, as after `| head -1`. */
#ifndef CM_OUT_H
#define CM_OUT_H

#include <stddef.h>
#include <sys/uio.h>

struct cm_out {
	int fd;
	int tty;
	int closed; /* EPIPE seen: the reader has gone */
	int error;  /* errno of another write error, 0 if none */
	char *buf;
	size_t len, cap;
};

/* SIGPIPE must be ignored by the program (cm_cli_init does it). */
void cm_out_init(struct cm_out *o, int fd);
/* Appends bytes; returns -1 once the output is closed or failed. */
int cm_out_write(struct cm_out *o, const void *p, size_t n);
/* Ends a record: writes '\n' and flushes when the output is a terminal. */
int cm_out_endrec(struct cm_out *o);
int cm_out_flush(struct cm_out *o);
/* Flushes, then writes the n pieces of iov straight from where they are
 * (for records kept elsewhere, without copying them into the buffer). */
int cm_out_writev(struct cm_out *o, struct iovec *iov, int n);
/* Flushes and frees the buffer. */
int cm_out_release(struct cm_out *o);

#endif
