/* jwtx.c - HS256 tokens over libjwt, with the checks it leaves out. */
#include "jwtx.h"

#include "buf.h"
#include "err.h"
#include "json.h"

#include <errno.h>
#include <jwt.h>
#include <stdlib.h>
#include <string.h>

/* True when tok[0..len) is three non-empty base64url segments joined by
 * dots: the only shape an HS256 token can have. */
static int token_shape_ok(const char *tok, size_t len)
{
	size_t i, seg = 0, dots = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)tok[i];

		if (c == '.') {
			if (seg == 0)
				return 0;
			dots++;
			seg = 0;
		} else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		           (c >= '0' && c <= '9') || c == '-' || c == '_') {
			seg++;
		} else {
			return 0;
		}
	}
	return dots == 2 && seg > 0;
}

/* Reads the integer claim name: 1 with *v set, 0 when absent, -1 when it is
 * there but not an integer (a fraction, a string, a number out of range). */
static int int_claim(jwt_t *j, const char *name, int64_t *v)
{
	char *text = jwt_get_grants_json(j, name);
	struct cm_jdoc d;
	size_t i, n;
	int rc = -1;
	char *end;
	long long x;

	if (!text)
		return 0;
	cm_jdoc_init(&d, 2);
	n = strlen(text);
	if (cm_json_parse(&d, text, n, NULL) < 0 || d.tok[0].type != CM_JNUM)
		goto out;
	for (i = 0; i < n; i++)
		if (text[i] == '.' || text[i] == 'e' || text[i] == 'E')
			goto out;
	errno = 0;
	x = strtoll(text, &end, 10);
	if (errno || *end)
		goto out;
	*v = x;
	rc = 1;
out:
	cm_jdoc_release(&d);
	free(text);
	return rc;
}

/* Copies the string claim name (1 to max bytes) into out. */
static int str_claim(jwt_t *j, const char *name, char *out, size_t max)
{
	const char *s = jwt_get_grant(j, name);
	size_t n;

	if (!s)
		return -1;
	n = strlen(s);
	if (n == 0 || n > max)
		return -1;
	memcpy(out, s, n + 1);
	return 0;
}

int cm_jwt_sign(const void *key, size_t keylen, const char *sub, const char *role, int64_t iat,
                int64_t exp, struct cm_buf *out, struct cm_err *err)
{
	jwt_t *j = NULL;
	char *tok = NULL;
	int rc = -1;

	if (keylen < CM_JWT_KEY_MIN || keylen > INT32_MAX)
		return cm_errf(err, "the signing key is shorter than %d bytes", CM_JWT_KEY_MIN);
	if (jwt_new(&j) != 0 || jwt_add_grant(j, "sub", sub) != 0 ||
	    jwt_add_grant(j, "role", role) != 0 || jwt_add_grant_int(j, "iat", (long)iat) != 0 ||
	    jwt_add_grant_int(j, "exp", (long)exp) != 0 ||
	    jwt_set_alg(j, JWT_ALG_HS256, key, (int)keylen) != 0) {
		cm_errf(err, "building the token: %s", strerror(errno ? errno : ENOMEM));
		goto out;
	}
	tok = jwt_encode_str(j);
	if (!tok) {
		cm_errf(err, "signing the token: out of memory");
		goto out;
	}
	if (cm_buf_adds(out, tok) < 0) {
		cm_errf(err, "out of memory");
		goto out;
	}
	rc = 0;
out:
	free(tok);
	jwt_free(j);
	return rc;
}

int cm_jwt_verify(const void *key, size_t keylen, const char *tok, size_t len, int64_t now,
                  struct cm_jwt_claims *c, struct cm_err *err)
{
	char text[CM_JWT_MAX_LEN + 1];
	jwt_t *j = NULL;
	int64_t v;
	int rc = -1, st;

	/* libjwt verifies nothing without a key: never call it without one. */
	if (keylen < CM_JWT_KEY_MIN || keylen > INT32_MAX)
		return cm_errf(err, "no signing key");
	if (len > CM_JWT_MAX_LEN)
		return cm_errf(err, "token longer than %d bytes", CM_JWT_MAX_LEN);
	if (!token_shape_ok(tok, len))
		return cm_errf(err, "malformed token");
	memcpy(text, tok, len);
	text[len] = 0;
	if (jwt_decode(&j, text, key, (int)keylen) != 0 || !j) {
		cm_errf(err, "bad signature or malformed token");
		goto out;
	}
	if (jwt_get_alg(j) != JWT_ALG_HS256) {
		cm_errf(err, "algorithm %s is not HS256", jwt_alg_str(jwt_get_alg(j)));
		goto out;
	}
	memset(c, 0, sizeof(*c));
	st = int_claim(j, "exp", &c->exp);
	if (st <= 0) {
		cm_errf(err, st == 0 ? "no exp claim" : "exp is not an integer");
		goto out;
	}
	if (c->exp <= now) {
		cm_errf(err, "expired");
		goto out;
	}
	st = int_claim(j, "nbf", &v);
	if (st < 0 || (st > 0 && v > now)) {
		cm_errf(err, st < 0 ? "nbf is not an integer" : "not valid yet (nbf)");
		goto out;
	}
	if (int_claim(j, "iat", &c->iat) < 0) {
		cm_errf(err, "iat is not an integer");
		goto out;
	}
	if (str_claim(j, "sub", c->sub, CM_JWT_SUB_MAX) < 0) {
		cm_errf(err, "no sub claim of 1 to %d bytes", CM_JWT_SUB_MAX);
		goto out;
	}
	if (str_claim(j, "role", c->role, CM_JWT_ROLE_MAX) < 0) {
		cm_errf(err, "no role claim");
		goto out;
	}
	rc = 0;
out:
	jwt_free(j);
	return rc;
}
