/* buf.c - growable byte buffer with a hard cap. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cm_buf_init(struct cm_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void cm_buf_release(struct cm_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* Grows geometrically so that appends are amortised O(1); keeps room for
 * the terminating NUL. */
int cm_buf_grow(struct cm_buf *b, size_t n)
{
	size_t need, cap;
	char *p;

	if (n > SIZE_MAX - b->len - 1)
		return -1;
	if (b->max && b->len + n > b->max)
		return -1;
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	p = realloc(b->data, cap);
	if (!p)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

int cm_buf_add(struct cm_buf *b, const void *p, size_t n)
{
	if (cm_buf_grow(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
	return 0;
}

int cm_buf_addc(struct cm_buf *b, char c)
{
	if ((b->len + 2 > b->cap || b->max) && cm_buf_grow(b, 1) < 0)
		return -1;
	b->data[b->len++] = c;
	b->data[b->len] = 0;
	return 0;
}

int cm_buf_adds(struct cm_buf *b, const char *s)
{
	return cm_buf_add(b, s, strlen(s));
}

int cm_buf_addf(struct cm_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || cm_buf_grow(b, (size_t)n) < 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

/* Escapes only what JSON requires (quote, backslash, control characters),
 * copying runs of plain bytes at once. */
int cm_buf_add_jstr(struct cm_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;

	if (cm_buf_grow(b, n + 2) < 0)
		return -1;
	b->data[b->len++] = '"';
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[6];
		size_t elen = 2;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		if (cm_buf_add(b, s + run, i - run) < 0)
			return -1;
		run = i + 1;
		esc[0] = '\\';
		switch (c) {
		case '"':
			esc[1] = '"';
			break;
		case '\\':
			esc[1] = '\\';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			elen = 6;
		}
		if (cm_buf_add(b, esc, elen) < 0)
			return -1;
	}
	if (cm_buf_add(b, s + run, n - run) < 0)
		return -1;
	return cm_buf_addc(b, '"');
}

/* Doubles until need fits, so that appends are amortised O(1). */
int cm_grow(void **p, uint32_t *cap, uint32_t need, size_t elsize)
{
	uint32_t c = *cap ? *cap : 8;
	void *q;

	if (need <= *cap)
		return 0;
	if (need > UINT32_MAX / 2)
		return -1;
	while (c < need)
		c *= 2;
	q = realloc(*p, (size_t)c * elsize);
	if (!q)
		return -1;
	*p = q;
	*cap = c;
	return 0;
}

int cm_buf_add_i64(struct cm_buf *b, int64_t v)
{
	char tmp[24];
	size_t i = sizeof(tmp);
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do {
		tmp[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		tmp[--i] = '-';
	return cm_buf_add(b, tmp + i, sizeof(tmp) - i);
}
