/* throttle.c - failure counts per name and per address, with doubling
 * waits, in two bounded hash tables. */
#include "throttle.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define PROBE 8

struct slot {
	uint64_t h; /* 0: free */
	uint32_t count;
	int64_t last_ms;
};

struct table {
	struct slot *s;
	size_t mask;
	unsigned free_n;
};

struct cm_throttle {
	struct cm_throttle_opts o;
	pthread_mutex_t mu;
	unsigned char key[crypto_shorthash_KEYBYTES];
	struct table user, addr;
};

void cm_throttle_defaults(struct cm_throttle_opts *o)
{
	o->free_user = 5;
	o->free_addr = 20;
	o->max_lock_ms = 15 * 60 * 1000;
	o->forget_ms = 15 * 60 * 1000;
	o->slots = 16384;
}

struct cm_throttle *cm_throttle_new(const struct cm_throttle_opts *o)
{
	struct cm_throttle *t = calloc(1, sizeof(*t));
	size_t n = 16;

	if (!t)
		return NULL;
	t->o = *o;
	while (n < o->slots)
		n *= 2;
	t->user.s = calloc(n, sizeof(struct slot));
	t->addr.s = calloc(n, sizeof(struct slot));
	if (!t->user.s || !t->addr.s) {
		cm_throttle_free(t);
		return NULL;
	}
	t->user.mask = t->addr.mask = n - 1;
	t->user.free_n = o->free_user;
	t->addr.free_n = o->free_addr;
	randombytes_buf(t->key, sizeof(t->key));
	pthread_mutex_init(&t->mu, NULL);
	return t;
}

void cm_throttle_free(struct cm_throttle *t)
{
	if (!t)
		return;
	if (t->user.s && t->addr.s)
		pthread_mutex_destroy(&t->mu);
	free(t->user.s);
	free(t->addr.s);
	free(t);
}

/* The keyed hash of s (never 0, which marks a free slot). */
static uint64_t hash(const struct cm_throttle *t, const char *s)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t h;

	crypto_shorthash(out, (const unsigned char *)s, strlen(s), t->key);
	memcpy(&h, out, sizeof(h));
	return h ? h : 1;
}

/* The slot of h, made when absent (reusing the oldest of its probe run);
 * counts older than forget_ms start again from zero. */
static struct slot *find(struct cm_throttle *t, struct table *tb, uint64_t h, int64_t now)
{
	struct slot *victim = NULL, *s;
	size_t i;

	for (i = 0; i < PROBE; i++) {
		s = &tb->s[(h + i) & tb->mask];
		if (s->h == h) {
			if (now - s->last_ms > t->o.forget_ms)
				s->count = 0;
			return s;
		}
		/* The first free slot, else the one used longest ago. */
		if (s->h == 0) {
			if (!victim || victim->h != 0)
				victim = s;
		} else if (!victim || (victim->h != 0 && s->last_ms < victim->last_ms)) {
			victim = s;
		}
	}
	victim->h = h;
	victim->count = 0;
	victim->last_ms = now;
	return victim;
}

/* How long s must still wait at now (0: not at all). */
static int64_t wait_ms(const struct cm_throttle *t, const struct table *tb, const struct slot *s,
                       int64_t now)
{
	unsigned extra;
	int64_t d;

	if (s->count < tb->free_n)
		return 0;
	extra = s->count - tb->free_n;
	d = extra >= 30 ? t->o.max_lock_ms : (int64_t)1000 << extra;
	if (d > t->o.max_lock_ms)
		d = t->o.max_lock_ms;
	d = s->last_ms + d - now;
	return d > 0 ? d : 0;
}

int64_t cm_throttle_begin(struct cm_throttle *t, const char *user, const char *addr, int64_t now_ms)
{
	uint64_t hu = hash(t, user), ha = hash(t, addr);
	struct slot *su, *sa;
	int64_t wu, wa;

	pthread_mutex_lock(&t->mu);
	su = find(t, &t->user, hu, now_ms);
	sa = find(t, &t->addr, ha, now_ms);
	wu = wait_ms(t, &t->user, su, now_ms);
	wa = wait_ms(t, &t->addr, sa, now_ms);
	if (wu == 0 && wa == 0) {
		su->count++;
		su->last_ms = now_ms;
		sa->count++;
		sa->last_ms = now_ms;
	}
	pthread_mutex_unlock(&t->mu);
	return wu > wa ? wu : wa;
}

void cm_throttle_success(struct cm_throttle *t, const char *user, const char *addr)
{
	uint64_t hu = hash(t, user), ha = hash(t, addr);
	size_t i;

	pthread_mutex_lock(&t->mu);
	for (i = 0; i < PROBE; i++) {
		struct slot *s = &t->user.s[(hu + i) & t->user.mask];

		if (s->h == hu)
			s->count = 0;
		s = &t->addr.s[(ha + i) & t->addr.mask];
		if (s->h == ha && s->count > 0)
			s->count--;
	}
	pthread_mutex_unlock(&t->mu);
}
