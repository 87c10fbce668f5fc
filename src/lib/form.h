/* form.h - the fields of an HTML form body, as FastAPI's Form() reads them:
 * application/x-www-form-urlencoded or multipart/form-data (the OAuth2
 * password form of POST /auth/token). */
#ifndef CM_FORM_H
#define CM_FORM_H

#include <stddef.h>

enum {
	CM_FORM_FOUND = 1,
	CM_FORM_ABSENT = 0,
	CM_FORM_TOO_LONG = -1, /* the value does not fit in out */
	CM_FORM_BAD = -2,      /* the body or the value is malformed (a NUL byte) */
};

/* Finds field name in body[0..len) of content type ctype (any other type
 * has no fields) and copies its value, NUL-terminated, into out. */
int cm_form_get(const char *ctype, const char *body, size_t len, const char *name, char *out,
                size_t size);

#endif
