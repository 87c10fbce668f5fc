/* out.c - buffered record output that notices a closed pipe. */
#include "out.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OUT_CAP (128 * 1024)

void cm_out_init(struct cm_out *o, int fd)
{
	memset(o, 0, sizeof(*o));
	o->fd = fd;
	o->tty = isatty(fd);
}

/* Writes the n pieces of iov with writev, IOV_MAX at a time, retrying
 * short writes and EINTR (iov is used up). */
static int writev_all(struct cm_out *o, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(o->fd, iov, n > IOV_MAX ? IOV_MAX : n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EPIPE)
				o->closed = 1;
			else
				o->error = errno;
			return -1;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Writes everything in p. */
static int write_all(struct cm_out *o, const char *p, size_t n)
{
	struct iovec v = {(void *)p, n};

	return writev_all(o, &v, n ? 1 : 0);
}

int cm_out_flush(struct cm_out *o)
{
	int rc;

	if (o->closed || o->error)
		return -1;
	rc = write_all(o, o->buf, o->len);
	o->len = 0;
	return rc;
}

/* Flushes, then writes the pieces where they are. */
int cm_out_writev(struct cm_out *o, struct iovec *iov, int n)
{
	if (cm_out_flush(o) < 0)
		return -1;
	return writev_all(o, iov, n);
}

int cm_out_write(struct cm_out *o, const void *p, size_t n)
{
	if (o->closed || o->error)
		return -1;
	if (!o->buf) {
		o->buf = malloc(OUT_CAP);
		if (!o->buf) {
			o->error = ENOMEM;
			return -1;
		}
		o->cap = OUT_CAP;
	}
	if (o->len + n > o->cap) {
		if (cm_out_flush(o) < 0)
			return -1;
		if (n > o->cap)
			return write_all(o, p, n);
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
	return 0;
}

int cm_out_endrec(struct cm_out *o)
{
	if (cm_out_write(o, "\n", 1) < 0)
		return -1;
	return o->tty ? cm_out_flush(o) : 0;
}

int cm_out_release(struct cm_out *o)
{
	int rc = 0;

	if (o->len)
		rc = cm_out_flush(o);
	free(o->buf);
	o->buf = NULL;
	o->len = o->cap = 0;
	return rc || o->closed || o->error ? -1 : 0;
}
