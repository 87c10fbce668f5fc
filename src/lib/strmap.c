/* strmap.c - byte strings to dense indexes, open addressing with linear
 * probing over a table of entry numbers. */
#include "strmap.h"

#include "hash.h"

#include <stdlib.h>
#include <string.h>

/* The hash of libcm's tables (hash.h). */
uint64_t cm_strmap_hash(const void *key, size_t n, uint64_t seed)
{
	return cm_hash_bytes(key, n, seed);
}

/* Sets up an empty map. */
void cm_strmap_init(struct cm_strmap *m)
{
	memset(m, 0, sizeof(*m));
	cm_buf_init(&m->keys, 0);
}

/* Frees the table, the entries and the keys. */
void cm_strmap_release(struct cm_strmap *m)
{
	free(m->slots);
	free(m->ents);
	cm_buf_release(&m->keys);
	memset(m, 0, sizeof(*m));
}

/* Empties the map, keeping its memory. */
void cm_strmap_clear(struct cm_strmap *m)
{
	if (m->slots)
		memset(m->slots, 0, (size_t)m->nslots * sizeof(*m->slots));
	m->n = 0;
	cm_buf_reset(&m->keys);
}

/* Doubles the table (or makes the first one) and puts every entry back. */
static int grow_slots(struct cm_strmap *m)
{
	uint32_t cap = m->nslots ? m->nslots * 2 : 64;
	struct cm_strmap_slot *t;

	if (cap > (uint32_t)1 << 31)
		return -1;
	t = calloc(cap, sizeof(*t));
	if (!t)
		return -1;
	for (uint32_t e = 0; e < m->n; e++) {
		uint32_t i = (uint32_t)m->ents[e].hash & (cap - 1);

		while (t[i].ent)
			i = (i + 1) & (cap - 1);
		t[i].ent = e + 1;
		t[i].tag = (uint32_t)(m->ents[e].hash >> 32);
		t[i].off = m->ents[e].off;
		t[i].len = m->ents[e].len;
	}
	free(m->slots);
	m->slots = t;
	m->nslots = cap;
	return 0;
}

/* The slot that holds key (hash h), or the empty slot where it would go. */
static uint32_t probe(const struct cm_strmap *m, uint64_t h, const void *key, size_t n)
{
	uint32_t i = (uint32_t)h & (m->nslots - 1), tag = (uint32_t)(h >> 32);

	for (; m->slots[i].ent; i = (i + 1) & (m->nslots - 1)) {
		const struct cm_strmap_slot *e = &m->slots[i];

		if (e->tag == tag && e->len == n && memcmp(m->keys.data + e->off, key, n) == 0)
			break;
	}
	return i;
}

/* Looks key up. */
int64_t cm_strmap_find(const struct cm_strmap *m, const void *key, size_t n)
{
	uint64_t h;
	uint32_t i;

	if (!m->n)
		return -1;
	h = cm_strmap_hash(key, n, 0);
	i = probe(m, h, key, n);
	return m->slots[i].ent ? (int64_t)m->slots[i].ent - 1 : -1;
}

/* Adds key when it is new: the table is kept at most half full. */
int cm_strmap_add(struct cm_strmap *m, const void *key, size_t n, uint32_t *index)
{
	uint64_t h = cm_strmap_hash(key, n, 0);
	uint32_t i;

	if (m->nslots) {
		i = probe(m, h, key, n);
		if (m->slots[i].ent) {
			*index = m->slots[i].ent - 1;
			return 0;
		}
	}
	if (m->n >= CM_STRMAP_MAX || n >= (uint32_t)1 << 31 || m->keys.len + n >= (size_t)1 << 31)
		return -1;
	if ((m->n + 1) * 2 > m->nslots && grow_slots(m) < 0)
		return -1;
	if (cm_grow((void **)&m->ents, &m->cap, m->n + 1, sizeof(*m->ents)) < 0)
		return -1;
	{
		size_t off = m->keys.len;

		if (cm_buf_add(&m->keys, key, n) < 0)
			return -1;
		m->ents[m->n].hash = h;
		m->ents[m->n].off = (uint32_t)off;
		m->ents[m->n].len = (uint32_t)n;
	}
	i = probe(m, h, key, n);
	m->slots[i].ent = m->n + 1;
	m->slots[i].tag = (uint32_t)(h >> 32);
	m->slots[i].off = m->ents[m->n].off;
	m->slots[i].len = m->ents[m->n].len;
	*index = m->n++;
	return 1;
}

/* The key of entry i. */
const char *cm_strmap_key(const struct cm_strmap *m, uint32_t i, size_t *n)
{
	*n = m->ents[i].len;
	return m->keys.data + m->ents[i].off;
}
