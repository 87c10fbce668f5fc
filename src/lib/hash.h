/* hash.h - the one hash of short byte strings (keys, types, values, user
 * ids) that the tables of libcm use: fast, 8 bytes at a time, every input
 * bit mixed into the low bits a table uses and the high bits a tag uses.
 * Not for anything an adversary chooses to collide (tables stay correct,
 * only slower). */
#ifndef CM_HASH_H
#define CM_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A 64-bit hash of s[0..n) with seed. */
static inline uint64_t cm_hash_bytes(const char *s, size_t n, uint64_t seed)
{
	uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ULL);

	while (n >= 8) {
		uint64_t w;

		memcpy(&w, s, 8);
		h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
		h ^= h >> 31;
		s += 8;
		n -= 8;
	}
	if (n) {
		uint64_t w = 0;

		memcpy(&w, s, n);
		h = (h ^ w) * 0x94D049BB133111EBULL;
		h ^= h >> 29;
	}
	h *= 0xBF58476D1CE4E5B9ULL;
	return h ^ (h >> 32);
}

#endif
