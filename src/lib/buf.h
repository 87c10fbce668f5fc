/* buf.h - a growable byte buffer with a hard size cap.
 * The buffer owns data; cm_buf_release frees it. data is always
 * NUL-terminated after a successful append (the NUL is not counted in len). */
#ifndef CM_BUF_H
#define CM_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct cm_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max; /* 0: no cap; otherwise appends past max fail */
};

#define CM_BUF_INIT                                                                                \
	{                                                                                          \
		NULL, 0, 0, 0                                                                      \
	}

void cm_buf_init(struct cm_buf *b, size_t max);
void cm_buf_release(struct cm_buf *b);
static inline void cm_buf_reset(struct cm_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = 0;
}
/* Makes room for n more bytes; -1 if that would pass max or memory is out. */
int cm_buf_grow(struct cm_buf *b, size_t n);
int cm_buf_add(struct cm_buf *b, const void *p, size_t n);
int cm_buf_addc(struct cm_buf *b, char c);
int cm_buf_adds(struct cm_buf *b, const char *s);
int cm_buf_addf(struct cm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) as a JSON string literal, with quotes; s must be UTF-8. */
int cm_buf_add_jstr(struct cm_buf *b, const char *s, size_t n);
int cm_buf_add_i64(struct cm_buf *b, int64_t v);

/* Grows the array *p of elsize-byte elements (capacity *cap, doubling
 * from 8) so that it holds need elements; 0, or -1 when memory is out or
 * the count would pass 2^31. */
int cm_grow(void **p, uint32_t *cap, uint32_t need, size_t elsize);
/* cm_buf_add without a call when the bytes fit, for records built from many
 * small pieces; the NUL after them is left to the next cm_buf_add* call. */
static inline int cm_buf_put(struct cm_buf *b, const void *p, size_t n)
{
	if (b->len + n < b->cap) {
		memcpy(b->data + b->len, p, n);
		b->len += n;
		return 0;
	}
	return cm_buf_add(b, p, n);
}

#endif
