/* form.c - urlencoded and multipart form fields. */
#include "form.h"

#include "route.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* True when ctype's media type is type (parameters and case ignored). */
static int media_is(const char *ctype, const char *type)
{
	size_t n = strlen(type);

	while (*ctype == ' ')
		ctype++;
	return strncasecmp(ctype, type, n) == 0 &&
	       (ctype[n] == 0 || ctype[n] == ';' || ctype[n] == ' ');
}

/* The boundary parameter of a multipart content type, into out. */
static int boundary_of(const char *ctype, char *out, size_t size)
{
	const char *p = ctype;
	size_t n = 0;

	while ((p = strchr(p, ';')) != NULL) {
		p++;
		while (*p == ' ')
			p++;
		if (strncasecmp(p, "boundary=", 9) != 0)
			continue;
		p += 9;
		if (*p == '"') {
			p++;
			while (p[n] && p[n] != '"')
				n++;
		} else {
			while (p[n] && p[n] != ';' && p[n] != ' ')
				n++;
		}
		if (n == 0 || n > 70 || n + 1 > size)
			return -1;
		memcpy(out, p, n);
		out[n] = 0;
		return 0;
	}
	return -1;
}

/* Finds needle[0..nn) in hay[0..hn). */
static const char *find(const char *hay, size_t hn, const char *needle, size_t nn)
{
	return memmem(hay, hn, needle, nn);
}

/* The name="..." of a part's headers h[0..n), into name. */
static int part_name(const char *h, size_t n, char *name, size_t size)
{
	const char *p = h, *end = h + n, *line_end, *q;

	for (; p < end; p = line_end + 2) {
		line_end = find(p, (size_t)(end - p), "\r\n", 2);
		if (!line_end)
			line_end = end;
		if ((size_t)(line_end - p) < 20 || strncasecmp(p, "content-disposition:", 20) != 0)
			continue;
		for (q = p + 20; q + 6 <= line_end; q++) {
			size_t k = 0;

			if (strncasecmp(q, "name=\"", 6) != 0 ||
			    (q > p && q[-1] != ' ' && q[-1] != ';'))
				continue;
			q += 6;
			while (q + k < line_end && q[k] != '"')
				k++;
			if (q + k >= line_end || k + 1 > size)
				return -1;
			memcpy(name, q, k);
			name[k] = 0;
			return 0;
		}
	}
	return -1;
}

/* Walks the parts of a multipart body for name. */
static int multipart_get(const char *ctype, const char *body, size_t len, const char *want,
                         char *out, size_t size)
{
	char bnd[80], delim[84], name[128];
	const char *p, *end = body + len, *next, *hdr_end;
	size_t dlen;

	if (boundary_of(ctype, bnd, sizeof(bnd)) < 0)
		return CM_FORM_BAD;
	dlen = (size_t)snprintf(delim, sizeof(delim), "--%s", bnd);
	p = find(body, len, delim, dlen);
	if (!p)
		return CM_FORM_BAD;
	for (;;) {
		p += dlen;
		if (end - p >= 2 && p[0] == '-' && p[1] == '-')
			return CM_FORM_ABSENT; /* the closing delimiter */
		if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
			return CM_FORM_BAD;
		p += 2;
		hdr_end = find(p, (size_t)(end - p), "\r\n\r\n", 4);
		if (!hdr_end)
			return CM_FORM_BAD;
		next = find(hdr_end + 4, (size_t)(end - hdr_end - 4), delim, dlen);
		if (!next || next - (hdr_end + 4) < 2 || next[-2] != '\r' || next[-1] != '\n')
			return CM_FORM_BAD;
		if (part_name(p, (size_t)(hdr_end - p), name, sizeof(name)) == 0 &&
		    strcmp(name, want) == 0) {
			const char *v = hdr_end + 4;
			size_t vlen = (size_t)(next - 2 - v);

			if (memchr(v, 0, vlen))
				return CM_FORM_BAD;
			if (vlen + 1 > size)
				return CM_FORM_TOO_LONG;
			memcpy(out, v, vlen);
			out[vlen] = 0;
			return CM_FORM_FOUND;
		}
		p = next;
	}
}

int cm_form_get(const char *ctype, const char *body, size_t len, const char *name, char *out,
                size_t size)
{
	int rc;

	if (!ctype)
		return CM_FORM_ABSENT;
	if (media_is(ctype, "application/x-www-form-urlencoded")) {
		rc = cm_query_get(body, len, name, out, size);
		return rc == -2 ? CM_FORM_BAD : rc;
	}
	if (media_is(ctype, "multipart/form-data"))
		return multipart_get(ctype, body, len, name, out, size);
	return CM_FORM_ABSENT;
}
