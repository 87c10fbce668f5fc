/* jwtx.h - HS256 JSON Web Tokens (RFC 7519) for cm-httpd, over libjwt with
 * the checks that libjwt 1.10 leaves to its caller:
 *
 *   - with a NULL or empty key jwt_decode verifies nothing and accepts any
 *     token: a key shorter than CM_JWT_KEY_MIN is refused here;
 *   - jwt_decode takes the algorithm from the token's own header (so "none",
 *     or HS384 signed with the same secret, would pass): the algorithm is
 *     pinned to HS256 after decoding;
 *   - it never looks at exp or nbf: exp must be present and an integer in
 *     the future, nbf (if present) an integer not in the future, iat (if
 *     present) an integer;
 *   - it decodes on the stack (alloca), so a multi-megabyte token crashes
 *     it: anything longer than CM_JWT_MAX_LEN, or not made of three base64url
 *     segments, is refused before libjwt sees it.
 *
 * Messages say what is wrong with a token, never what it contains. */
#ifndef CM_JWTX_H
#define CM_JWTX_H

#include <stddef.h>
#include <stdint.h>

struct cm_buf;
struct cm_err;

#define CM_JWT_MAX_LEN  8192 /* longest token looked at */
#define CM_JWT_KEY_MIN  32   /* shortest secret accepted (bytes) */
#define CM_JWT_SUB_MAX  128  /* longest subject (a user name) */
#define CM_JWT_ROLE_MAX 16

struct cm_jwt_claims {
	char sub[CM_JWT_SUB_MAX + 1];
	char role[CM_JWT_ROLE_MAX + 1];
	int64_t iat, exp;
};

/* Appends to out a token signed with key[0..keylen) (HS256) carrying sub,
 * role, iat and exp. */
int cm_jwt_sign(const void *key, size_t keylen, const char *sub, const char *role, int64_t iat,
                int64_t exp, struct cm_buf *out, struct cm_err *err);
/* Verifies tok[0..len) against key at time now (seconds since the epoch)
 * and fills c; -1 with err ("expired", "bad signature or malformed", ...)
 * when the token must be refused. */
int cm_jwt_verify(const void *key, size_t keylen, const char *tok, size_t len, int64_t now,
                  struct cm_jwt_claims *c, struct cm_err *err);

#endif
