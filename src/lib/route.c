/* route.c - path templates, percent-decoding and query parameters. */
#include "route.h"

#include "num.h"

#include <stdio.h>
#include <string.h>

/* Matches path[0..len) against template t, filling m's parameters; 1 when
 * it matches. Parameters match one non-empty segment. */
static int match_template(const char *t, const char *path, size_t len, struct cm_route_match *m)
{
	size_t i = 0, np = 0;

	if (len == 0 || path[0] != '/')
		return 0;
	while (*t) {
		if (*t != '/' || i >= len || path[i] != '/')
			return 0;
		t++;
		i++;
		if (*t == '{') {
			size_t start = i;

			while (*t && *t != '}')
				t++;
			if (*t)
				t++;
			while (i < len && path[i] != '/')
				i++;
			if (i == start || np >= CM_ROUTE_MAX_PARAMS)
				return 0;
			m->param[np].p = path + start;
			m->param[np].n = i - start;
			np++;
		} else {
			while (*t && *t != '/') {
				if (i >= len || path[i] != *t)
					return 0;
				t++;
				i++;
			}
			if (i < len && path[i] != '/')
				return 0;
		}
	}
	if (i != len)
		return 0;
	m->nparams = np;
	return 1;
}

/* Appends method to the Allow list unless it is there. */
static void allow_add(char *allow, size_t size, const char *method)
{
	size_t n = strlen(method), len = strlen(allow);
	const char *p = allow;

	while ((p = strstr(p, method)) != NULL) {
		if ((p == allow || p[-1] == ' ') && (p[n] == 0 || p[n] == ','))
			return;
		p += n;
	}
	snprintf(allow + len, size - len, "%s%s", len ? ", " : "", method);
}

void cm_route_find(const struct cm_route *routes, size_t n, const char *method, const char *path,
                   size_t len, struct cm_route_match *m)
{
	struct cm_route_match tmp;
	size_t i;

	/* As Starlette: a GET route answers HEAD too. */
	int head = strcmp(method, "HEAD") == 0;

	memset(m, 0, sizeof(*m));
	m->index = -1;
	m->status = 404;
	for (i = 0; i < n; i++) {
		if (!match_template(routes[i].path, path, len, &tmp))
			continue;
		if (strcmp(routes[i].method, method) == 0 ||
		    (head && strcmp(routes[i].method, "GET") == 0)) {
			*m = tmp;
			m->index = (int)i;
			m->status = 0;
			m->allow[0] = 0;
			return;
		}
		m->status = 405;
		allow_add(m->allow, sizeof(m->allow), routes[i].method);
		if (strcmp(routes[i].method, "GET") == 0)
			allow_add(m->allow, sizeof(m->allow), "HEAD");
	}
	if (m->status == 404 && len > 1 && path[len - 1] == '/')
		for (i = 0; i < n; i++)
			if (match_template(routes[i].path, path, len - 1, &tmp)) {
				m->status = 307;
				return;
			}
}

size_t cm_url_decode(const char *s, size_t n, char *out, int plus_space, int *has_nul)
{
	size_t i, o = 0;
	int hi, lo;

	if (has_nul)
		*has_nul = 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '%' && i + 2 < n && (hi = cm_hexval((unsigned char)s[i + 1])) >= 0 &&
		    (lo = cm_hexval((unsigned char)s[i + 2])) >= 0) {
			c = (char)(hi * 16 + lo);
			i += 2;
			if (c == 0 && has_nul)
				*has_nul = 1;
		} else if (c == '+' && plus_space) {
			c = ' ';
		}
		out[o++] = c;
	}
	out[o] = 0;
	return o;
}

int cm_query_get(const char *q, size_t n, const char *name, char *out, size_t size)
{
	size_t i = 0, nlen = strlen(name);

	while (i < n) {
		size_t start = i, eq, end;

		while (i < n && q[i] != '&')
			i++;
		end = i++;
		eq = start;
		while (eq < end && q[eq] != '=')
			eq++;
		/* Names are compared raw: ours need no escaping. */
		if (eq - start == nlen && memcmp(q + start, name, nlen) == 0) {
			size_t vlen = eq < end ? end - eq - 1 : 0;

			int nul;

			if (vlen + 1 > size)
				return -1;
			cm_url_decode(q + eq + (eq < end), vlen, out, 1, &nul);
			return nul ? -2 : 1;
		}
	}
	return 0;
}
