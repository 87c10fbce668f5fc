/* auth.c - bearer tokens with a per-thread cache, write keys with a shared
 * cache, and Argon2id password checks with a dummy hash for unknown users. */
#include "auth.h"

#include "buf.h"
#include "err.h"
#include "pg.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TOKEN_CACHE 32   /* verified tokens remembered per thread */
#define KEY_CACHE   1024 /* key lookups remembered (a power of two) */
#define HASH16      16

struct key_slot {
	uint8_t hash[CM_APIKEY_HASH_BYTES];
	int used, known;
	int64_t until_ms;
	char name[CM_APIKEY_NAME_MAX + 1];
};

struct cm_auth {
	unsigned char *secret;
	size_t secret_len;
	uint64_t generation; /* tells this instance's cached tokens from another's */
	int64_t token_ttl_s, key_ttl_ms;
	char dummy[crypto_pwhash_STRBYTES];
	pthread_mutex_t mu; /* the key cache */
	struct key_slot keys[KEY_CACHE];
};

/* One thread's verified tokens. */
struct token_slot {
	uint64_t generation;
	uint8_t hash[HASH16];
	struct cm_jwt_claims c;
};
static __thread struct token_slot token_cache[TOKEN_CACHE];
static __thread unsigned token_next;

struct cm_auth *cm_auth_new(const struct cm_auth_opts *o, struct cm_err *err)
{
	struct cm_auth *a;
	unsigned char pw[32];
	char hex[65];

	if (o->secret_len < CM_JWT_KEY_MIN)
		return cm_errf(err, "the JWT secret is shorter than %d bytes", CM_JWT_KEY_MIN),
		       NULL;
	if (sodium_init() < 0)
		return cm_errf(err, "libsodium failed to initialise"), NULL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return cm_errf(err, "out of memory"), NULL;
	a->secret = malloc(o->secret_len);
	if (!a->secret) {
		free(a);
		return cm_errf(err, "out of memory"), NULL;
	}
	memcpy(a->secret, o->secret, o->secret_len);
	a->secret_len = o->secret_len;
	a->token_ttl_s = o->token_ttl_s;
	a->key_ttl_ms = o->key_ttl_ms;
	randombytes_buf(&a->generation, sizeof(a->generation));
	a->generation |= 1;
	/* The dummy: a random password hashed with the limits cm-admin uses. */
	randombytes_buf(pw, sizeof(pw));
	sodium_bin2hex(hex, sizeof(hex), pw, sizeof(pw));
	if (crypto_pwhash_str(a->dummy, hex, strlen(hex), crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
		cm_auth_free(a);
		return cm_errf(err, "hashing the dummy password: out of memory"), NULL;
	}
	pthread_mutex_init(&a->mu, NULL);
	return a;
}

void cm_auth_free(struct cm_auth *a)
{
	if (!a)
		return;
	sodium_memzero(a->secret, a->secret_len);
	free(a->secret);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

enum cm_auth_kind cm_auth_bearer(const char *header, const char **cred, size_t *len)
{
	const char *p;

	*cred = "";
	*len = 0;
	if (!header)
		return CM_AUTH_MISSING;
	/* FastAPI's get_authorization_scheme_param: the scheme, a space, the
	 * rest; the scheme compared without case. */
	p = strchr(header, ' ');
	if (!p || (size_t)(p - header) != 6 || strncasecmp(header, "bearer", 6) != 0)
		return CM_AUTH_MISSING;
	while (*p == ' ')
		p++;
	*cred = p;
	*len = strlen(p);
	while (*len && (*cred)[*len - 1] == ' ')
		(*len)--;
	if (*len >= sizeof(CM_APIKEY_PREFIX) - 1 &&
	    memcmp(*cred, CM_APIKEY_PREFIX, sizeof(CM_APIKEY_PREFIX) - 1) == 0)
		return CM_AUTH_KEY;
	return CM_AUTH_TOKEN;
}

int cm_auth_verify(struct cm_auth *a, const char *tok, size_t len, int64_t now_s,
                   struct cm_jwt_claims *c, struct cm_err *err)
{
	uint8_t h[HASH16];
	unsigned i;

	/* Long tokens are refused by jwtx before anything is hashed. */
	if (len > CM_JWT_MAX_LEN)
		return cm_jwt_verify(a->secret, a->secret_len, tok, len, now_s, c, err);
	crypto_generichash(h, sizeof(h), (const unsigned char *)tok, len, a->secret,
	                   a->secret_len > crypto_generichash_KEYBYTES_MAX
	                       ? crypto_generichash_KEYBYTES_MAX
	                       : a->secret_len);
	for (i = 0; i < TOKEN_CACHE; i++) {
		struct token_slot *s = &token_cache[i];

		if (s->generation == a->generation && memcmp(s->hash, h, sizeof(h)) == 0) {
			if (s->c.exp <= now_s) {
				s->generation = 0;
				return cm_errf(err, "expired");
			}
			*c = s->c;
			return 0;
		}
	}
	if (cm_jwt_verify(a->secret, a->secret_len, tok, len, now_s, c, err) < 0)
		return -1;
	i = token_next++ % TOKEN_CACHE;
	token_cache[i].generation = a->generation;
	memcpy(token_cache[i].hash, h, sizeof(h));
	token_cache[i].c = *c;
	return 0;
}

int cm_auth_issue(struct cm_auth *a, const char *sub, const char *role, int64_t now_s,
                  struct cm_buf *out, struct cm_err *err)
{
	return cm_jwt_sign(a->secret, a->secret_len, sub, role, now_s, now_s + a->token_ttl_s, out,
	                   err);
}

int64_t cm_auth_token_ttl(const struct cm_auth *a)
{
	return a->token_ttl_s;
}

/* The cache slot of a key hash (keys are random: the hash's first bytes
 * spread them evenly). */
static struct key_slot *key_slot(struct cm_auth *a, const uint8_t *hash)
{
	uint32_t i;

	memcpy(&i, hash, sizeof(i));
	return &a->keys[i & (KEY_CACHE - 1)];
}

int cm_auth_key_cached(struct cm_auth *a, const uint8_t hash[CM_APIKEY_HASH_BYTES], int64_t now_ms,
                       char *name, size_t size)
{
	struct key_slot *s;
	int rc = -1;

	pthread_mutex_lock(&a->mu);
	s = key_slot(a, hash);
	if (s->used && now_ms < s->until_ms && memcmp(s->hash, hash, CM_APIKEY_HASH_BYTES) == 0) {
		rc = s->known;
		if (rc)
			snprintf(name, size, "%s", s->name);
	}
	pthread_mutex_unlock(&a->mu);
	return rc;
}

void cm_auth_key_remember(struct cm_auth *a, const uint8_t hash[CM_APIKEY_HASH_BYTES],
                          const char *name, int64_t now_ms)
{
	struct key_slot *s;

	pthread_mutex_lock(&a->mu);
	s = key_slot(a, hash);
	memcpy(s->hash, hash, CM_APIKEY_HASH_BYTES);
	s->used = 1;
	s->known = name != NULL;
	s->until_ms = now_ms + a->key_ttl_ms;
	snprintf(s->name, sizeof(s->name), "%s", name ? name : "");
	pthread_mutex_unlock(&a->mu);
}

int cm_auth_key_lookup(PGconn *c, const uint8_t hash[CM_APIKEY_HASH_BYTES], char *name, size_t size,
                       struct cm_err *err)
{
	char hex[2 * CM_APIKEY_HASH_BYTES + 1];
	const char *params[1] = {hex};
	PGresult *r;
	int rc = 0;

	cm_apikey_hex(hash, hex);
	r = cm_pg_query(
	    c,
	    "UPDATE api_keys SET last_used_at = now() WHERE key_hash = decode($1, 'hex') "
	    "RETURNING name",
	    1, params, err);
	if (!r)
		return -1;
	if (PQntuples(r) == 1) {
		snprintf(name, size, "%s", PQgetvalue(r, 0, 0));
		rc = 1;
	}
	PQclear(r);
	return rc;
}

int cm_auth_password(struct cm_auth *a, PGconn *c, const char *user, const char *password,
                     char *role, size_t rsize, struct cm_err *err)
{
	const char *params[1] = {user};
	char stored[crypto_pwhash_STRBYTES];
	PGresult *r;
	int found = 0, ok;

	r = cm_pg_query(c, "SELECT password_hash, role FROM users WHERE username = $1", 1, params,
	                err);
	if (!r)
		return -1;
	if (PQntuples(r) == 1 && (size_t)PQgetlength(r, 0, 0) < sizeof(stored)) {
		snprintf(stored, sizeof(stored), "%s", PQgetvalue(r, 0, 0));
		snprintf(role, rsize, "%s", PQgetvalue(r, 0, 1));
		found = 1;
	}
	PQclear(r);
	ok = crypto_pwhash_str_verify(found ? stored : a->dummy, password, strlen(password)) == 0;
	sodium_memzero(stored, sizeof(stored));
	return found && ok ? 1 : 0;
}
