/* apikey.h - write keys (CONTRACT section 4): "cmk_" and 43 base64url
 * characters (32 random bytes), made by cm-admin key add and checked by
 * cm-httpd. Only a BLAKE2b-256 hash of a key is ever stored; keys carry 256
 * bits of entropy, so a fast hash is safe and the lookup is by hash. */
#ifndef CM_APIKEY_H
#define CM_APIKEY_H

#include <stddef.h>
#include <stdint.h>

#define CM_APIKEY_PREFIX     "cmk_"
#define CM_APIKEY_LEN        47 /* "cmk_" + 43 base64url characters */
#define CM_APIKEY_HASH_BYTES 32
#define CM_APIKEY_NAME_MAX   128

/* Writes a new random key and its NUL into key; -1 when libsodium is not
 * initialised (sodium_init). */
int cm_apikey_generate(char key[CM_APIKEY_LEN + 1]);
/* True when s[0..n) has the shape of a key (prefix, length, alphabet). */
int cm_apikey_valid(const char *s, size_t n);
/* The hash stored for key s[0..n). */
void cm_apikey_hash(const char *s, size_t n, uint8_t hash[CM_APIKEY_HASH_BYTES]);
/* Writes the hash as 64 lowercase hex digits and a NUL (for SQL's
 * decode(..., 'hex')). */
void cm_apikey_hex(const uint8_t hash[CM_APIKEY_HASH_BYTES],
                   char hex[2 * CM_APIKEY_HASH_BYTES + 1]);
/* True when name is a valid key or user name: 1-128 bytes, no control
 * characters. */
int cm_apikey_name_ok(const char *name, size_t n);

#endif
