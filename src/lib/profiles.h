/* profiles.h - what is known about users (CONTRACT section 1.5), in memory:
 * the profiles of a file pipeline, built from a profiles file and from the
 * identify events of the input.
 *
 * A profile is a user's traits. Each trait keeps the value of the identify
 * event with the latest occurred_at (equal times: the greater event_id,
 * bytewise), whatever the order the events come in, and a trait set to null
 * is removed (the removal is remembered with its time, so that an older
 * value arriving later does not bring the trait back). Traits read from a
 * profiles file are older than any identify event.
 *
 * Ownership: the store copies what it is given. The text cm_profiles_get
 * returns is the store's, valid until the store next changes. */
#ifndef CM_PROFILES_H
#define CM_PROFILES_H

#include <stddef.h>
#include <stdint.h>

struct cm_err;
struct cm_jdoc;
struct cm_rule_event;
struct cm_profiles;

/* Most traits one user may have, and most users a store holds. */
#define CM_PROFILES_MAX_TRAITS 1000
#define CM_PROFILES_MAX_USERS  50000000

struct cm_profiles *cm_profiles_new(void);
void cm_profiles_free(struct cm_profiles *p);

/* Takes one line of a profiles file, {"user_id":"u-1","traits":{...}} ("_"
 * keys and "updated_at" are ignored); d is a scratch document. Returns 0, or
 * -1 with err naming the part ("traits: expected an object, not a string"). A
 * blank line is no profile. */
int cm_profiles_load_line(struct cm_profiles *p, struct cm_jdoc *d, const char *line, size_t len,
                          struct cm_err *err);

/* True for an identify event (event_type "identify"): its properties are
 * traits to set. */
int cm_profiles_is_identify(const struct cm_rule_event *ev);
/* Merges the traits of identify event ev (a checked event) into its user's
 * profile; any other event is left alone. Returns 0, or -1 with err (out of
 * memory, too many users or traits). */
int cm_profiles_identify(struct cm_profiles *p, const struct cm_rule_event *ev, struct cm_err *err);

/* The traits of user[0..n) as a compact JSON object ("{}" once every trait
 * is removed), or NULL when nothing is known of the user. */
const char *cm_profiles_get(struct cm_profiles *p, const char *user, size_t n, size_t *len);

/* Users known. */
size_t cm_profiles_count(const struct cm_profiles *p);

#endif
