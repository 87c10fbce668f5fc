/* throttle.h - slowing down password guessing at the login route.
 *
 * Failed logins are counted per user name and per client address. The first
 * free_user failures of a name (free_addr of an address) cost nothing; after
 * that, each attempt must wait 1 s after the previous one, the wait doubling
 * with every further failure up to max_lock_ms. A success clears the name's
 * count (not the address's, so that an attacker's own account cannot reset
 * it); counts are forgotten forget_ms after the last failure. An attempt
 * counts as failed from the moment it is allowed until it succeeds, so that
 * parallel guesses cannot slip in before the first of them fails.
 *
 * Names and addresses are kept as SipHash values under a random key in two
 * fixed tables (slots entries each; the oldest entry of a probe run makes
 * room), so memory stays bounded whatever an attacker sends. Thread safe. */
#ifndef CM_THROTTLE_H
#define CM_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

struct cm_throttle;

struct cm_throttle_opts {
	unsigned free_user, free_addr; /* failures before waits start */
	int64_t max_lock_ms;           /* longest wait */
	int64_t forget_ms;             /* quiet time that clears a count */
	size_t slots;                  /* entries per table (a power of two) */
};

/* Defaults: 5 per name, 20 per address, 15 minutes, 15 minutes, 16384. */
void cm_throttle_defaults(struct cm_throttle_opts *o);
/* NULL when memory is out. */
struct cm_throttle *cm_throttle_new(const struct cm_throttle_opts *o);
void cm_throttle_free(struct cm_throttle *t);
/* An attempt for user from addr at now_ms: 0 when it may go ahead (it then
 * counts as a failure until cm_throttle_success), otherwise the
 * milliseconds to wait (> 0). */
int64_t cm_throttle_begin(struct cm_throttle *t, const char *user, const char *addr,
                          int64_t now_ms);
/* The attempt begun for user from addr succeeded. */
void cm_throttle_success(struct cm_throttle *t, const char *user, const char *addr);

#endif
