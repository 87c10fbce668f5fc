/* assets.h - files served by cm-httpd, embedded into the binary at build
 * time (the Makefile generates their bytes from share/openapi.json and
 * share/docs/), so the server needs no file at run time.
 *
 * Assets are named by the URL path they are served at:
 *
 *     /openapi.json         share/openapi.json
 *     /docs                 share/docs/index.html (also as /docs/ and
 *                           /docs/index.html)
 *     /docs/NAME            share/docs/NAME (docs.js, docs.css)
 *
 * Ownership: everything is static, read-only and lives as long as the
 * program. */
#ifndef CM_ASSETS_H
#define CM_ASSETS_H

#include <stddef.h>

struct cm_asset {
	const char *name;          /* the URL path, "/docs/docs.js" */
	const unsigned char *data; /* len bytes, followed by a NUL not counted in len */
	size_t len;
	const char *content_type; /* "application/json", "text/html; charset=utf-8", ... */
	const char *etag;         /* a strong ETag of the content, quoted: "\"1a2b...\"" */
};

/* The asset served at URL path name (exact match, no query string), or
 * NULL. */
const struct cm_asset *cm_asset_find(const char *name);
/* The i-th asset in name order (i from 0), or NULL past the last: to list
 * them all. Aliases (/docs/, /docs/index.html) are not listed. */
const struct cm_asset *cm_asset_at(size_t i);

#endif
