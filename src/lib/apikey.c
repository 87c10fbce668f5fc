/* apikey.c - write keys: generation, shape check and the stored hash. */
#include "apikey.h"

#include <sodium.h>
#include <string.h>

#define RAW_BYTES 32

/* 32 bytes from libsodium's CSPRNG, base64url without padding (43 chars). */
int cm_apikey_generate(char key[CM_APIKEY_LEN + 1])
{
	unsigned char raw[RAW_BYTES];
	size_t plen = sizeof(CM_APIKEY_PREFIX) - 1;

	if (sodium_init() < 0)
		return -1;
	randombytes_buf(raw, sizeof(raw));
	memcpy(key, CM_APIKEY_PREFIX, plen);
	sodium_bin2base64(key + plen, CM_APIKEY_LEN + 1 - plen, raw, sizeof(raw),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
	return 0;
}

int cm_apikey_valid(const char *s, size_t n)
{
	size_t i, plen = sizeof(CM_APIKEY_PREFIX) - 1;

	if (n != CM_APIKEY_LEN || memcmp(s, CM_APIKEY_PREFIX, plen) != 0)
		return 0;
	for (i = plen; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

void cm_apikey_hash(const char *s, size_t n, uint8_t hash[CM_APIKEY_HASH_BYTES])
{
	crypto_generichash(hash, CM_APIKEY_HASH_BYTES, (const unsigned char *)s, n, NULL, 0);
}

void cm_apikey_hex(const uint8_t hash[CM_APIKEY_HASH_BYTES], char hex[2 * CM_APIKEY_HASH_BYTES + 1])
{
	sodium_bin2hex(hex, 2 * CM_APIKEY_HASH_BYTES + 1, hash, CM_APIKEY_HASH_BYTES);
}

int cm_apikey_name_ok(const char *name, size_t n)
{
	size_t i;

	if (n == 0 || n > CM_APIKEY_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return 0;
	return 1;
}
