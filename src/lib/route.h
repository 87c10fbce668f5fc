/* route.h - matching request paths against route templates, and the URL
 * pieces a router needs (percent-decoding, query parameters).
 *
 * A template is a path of literal segments and parameters in braces:
 * "/campaigns/{id}/matches". Paths are matched raw, before decoding, so that
 * an encoded "/" (%2F) inside a parameter stays inside it; parameters are
 * decoded by the caller with cm_url_decode. HEAD is answered by a GET
 * route (as Starlette does). A path that matches a template with another
 * method is a 405 with the allowed methods; a path that
 * matches nothing but would without its trailing slash is a 307 to that
 * path (as Starlette redirects); anything else is a 404. */
#ifndef CM_ROUTE_H
#define CM_ROUTE_H

#include <stddef.h>

#define CM_ROUTE_MAX_PARAMS 4

struct cm_route {
	const char *method; /* "GET", "POST", ... */
	const char *path;   /* the template */
	int flags;          /* the caller's (who may call it) */
	const void *fn;     /* the caller's (its handler) */
};

struct cm_route_match {
	int index;      /* the route matched, or -1 */
	int status;     /* 0 when matched; otherwise 404, 405 or 307 */
	char allow[96]; /* 405: the methods the path has, "GET, PATCH, DELETE" */
	size_t nparams;
	struct {
		const char *p; /* raw, inside the path */
		size_t n;
	} param[CM_ROUTE_MAX_PARAMS];
};

/* Finds the route for method and path[0..len) among routes[0..n). */
void cm_route_find(const struct cm_route *routes, size_t n, const char *method, const char *path,
                   size_t len, struct cm_route_match *m);

/* Decodes %XX escapes of s[0..n) into out (which holds n + 1 bytes) and
 * NUL-terminates it; with plus_space, '+' is a space (query strings). An
 * invalid escape stays as it is. Returns the decoded length; *has_nul (may
 * be NULL) is set when the result contains a NUL byte. */
size_t cm_url_decode(const char *s, size_t n, char *out, int plus_space, int *has_nul);

/* Looks for name in the query string q[0..n) ("a=1&b=x%20y"): 1 with the
 * decoded value of its first occurrence in out (size bytes, NUL-terminated),
 * 0 when absent, -1 when the value does not fit, -2 when it decodes to
 * something with a NUL byte. A name without '=' has an empty value. */
int cm_query_get(const char *q, size_t n, const char *name, char *out, size_t size);

#endif
