/* strmap.h - a map from byte strings to dense indexes: the n keys added get
 * the indexes 0..n-1 in the order they were first added, so that a caller
 * keeps its values in plain arrays beside it (user ids to profiles, a
 * campaign and a user to their limit state). Keys are copied into the map.
 * There is no removal: a map is emptied whole with cm_strmap_clear.
 *
 * Ownership: the map owns its keys; cm_strmap_key's pointer is valid until
 * the next add or clear. */
#ifndef CM_STRMAP_H
#define CM_STRMAP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Most keys a map holds. */
#define CM_STRMAP_MAX (1u << 30)

struct cm_strmap_ent {
	uint64_t hash;
	uint32_t off, len; /* the key, in keys */
};

/* A slot of the table: its entry and what a lookup compares, so that a
 * lookup touches the slot and the key only. */
struct cm_strmap_slot {
	uint32_t ent; /* index + 1 of the entry, 0 when empty */
	uint32_t tag; /* the hash's high bits */
	uint32_t off, len;
};

struct cm_strmap {
	struct cm_strmap_slot *slots;
	uint32_t nslots; /* a power of two, or 0 */
	struct cm_strmap_ent *ents;
	uint32_t n, cap;
	struct cm_buf keys;
};

void cm_strmap_init(struct cm_strmap *m);
void cm_strmap_release(struct cm_strmap *m);
/* Forgets every key (the memory is kept for reuse). */
void cm_strmap_clear(struct cm_strmap *m);

/* The index of key[0..n), or -1 when it was never added. */
int64_t cm_strmap_find(const struct cm_strmap *m, const void *key, size_t n);
/* Adds key[0..n) if it is new; sets *index to its index and returns 1 when
 * it was added, 0 when it was there, -1 when memory is out or the map is
 * full (CM_STRMAP_MAX keys, or keys over 2 GiB). */
int cm_strmap_add(struct cm_strmap *m, const void *key, size_t n, uint32_t *index);
/* The key of index i, and its length. */
const char *cm_strmap_key(const struct cm_strmap *m, uint32_t i, size_t *n);

/* The hash the map uses (64 bits, seeded), for callers that need one. */
uint64_t cm_strmap_hash(const void *key, size_t n, uint64_t seed);

#endif
