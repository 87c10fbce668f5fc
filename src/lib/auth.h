/* auth.h - who is calling cm-httpd: bearer tokens (HS256 JWTs, jwtx.h) for
 * users, write keys (apikey.h) for services that only send events, and the
 * password check behind POST /auth/token.
 *
 * Tokens: a verified token is remembered per thread (by a BLAKE2b hash of
 * its text, with its claims), so that a client sending the same token on
 * every request costs one hash instead of a full verification; its exp is
 * still checked on every use.
 *
 * Write keys: looked up by hash in api_keys (cm_auth_key_lookup, which also
 * records last_used_at) and remembered for key_ttl_ms, known or unknown, so
 * that a deleted key stops working within that time and a stream of
 * requests costs no query each.
 *
 * Passwords: Argon2id (libsodium's crypto_pwhash_str_verify) against the
 * hash cm-admin stored, or against a dummy hash made at start with the same
 * limits when the user does not exist, so that the answer takes as long
 * either way. This is CPU-heavy: call it from a worker thread, never from
 * an HTTP pool thread.
 *
 * Nothing here logs or keeps a password, a token or a key. */
#ifndef CM_AUTH_H
#define CM_AUTH_H

#include "apikey.h"
#include "jwtx.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

struct cm_buf;
struct cm_err;
struct cm_auth;

struct cm_auth_opts {
	const void *secret; /* copied; at least CM_JWT_KEY_MIN bytes */
	size_t secret_len;
	int64_t token_ttl_s; /* lifetime of the tokens issued */
	int64_t key_ttl_ms;  /* how long a key lookup is remembered */
};

/* Copies the secret and makes the dummy password hash (about as long as
 * one login); NULL with err. */
struct cm_auth *cm_auth_new(const struct cm_auth_opts *o, struct cm_err *err);
void cm_auth_free(struct cm_auth *a);

/* What an Authorization header carries. */
enum cm_auth_kind {
	CM_AUTH_MISSING = 0, /* no header, or not the Bearer scheme */
	CM_AUTH_TOKEN,       /* a Bearer credential that is not a write key */
	CM_AUTH_KEY,         /* a Bearer credential shaped like a write key */
};
/* Classifies header (may be NULL) and points *cred at the credential. */
enum cm_auth_kind cm_auth_bearer(const char *header, const char **cred, size_t *len);

/* Verifies a token at now_s; -1 with err (for the log: never the token). */
int cm_auth_verify(struct cm_auth *a, const char *tok, size_t len, int64_t now_s,
                   struct cm_jwt_claims *c, struct cm_err *err);
/* Appends a new token for sub with role, issued at now_s. */
int cm_auth_issue(struct cm_auth *a, const char *sub, const char *role, int64_t now_s,
                  struct cm_buf *out, struct cm_err *err);
/* The token lifetime (for expires_in). */
int64_t cm_auth_token_ttl(const struct cm_auth *a);

/* A remembered key lookup: 1 with the key's name, 0 when known not to be
 * a key, -1 when not remembered (look it up). */
int cm_auth_key_cached(struct cm_auth *a, const uint8_t hash[CM_APIKEY_HASH_BYTES], int64_t now_ms,
                       char *name, size_t size);
/* Remembers a lookup: name NULL when there is no such key. */
void cm_auth_key_remember(struct cm_auth *a, const uint8_t hash[CM_APIKEY_HASH_BYTES],
                          const char *name, int64_t now_ms);
/* Looks the key up in api_keys and records its use: 1 with its name, 0 when
 * there is none, -1 with err on a database error. */
int cm_auth_key_lookup(PGconn *c, const uint8_t hash[CM_APIKEY_HASH_BYTES], char *name, size_t size,
                       struct cm_err *err);

/* Checks user's password against the users table: 1 with the user's role,
 * 0 when the user does not exist or the password is wrong (the same work
 * either way), -1 with err on a database error. */
int cm_auth_password(struct cm_auth *a, PGconn *c, const char *user, const char *password,
                     char *role, size_t rsize, struct cm_err *err);

#endif
