/* profdb.h - users' profiles from PostgreSQL (the profiles table of
 * 003_profiles.sql, which cm-store fills from identify events), for a
 * matcher in a worker: looked up in batches, never one query per event, and
 * cached for a time.
 *
 * A batch is built with cm_profdb_want for the user of each event that
 * needs a profile, fetched with one cm_profdb_fetch (one query for every
 * wanted user not cached, WHERE user_id = ANY($1)), and read with
 * cm_profdb_get. A cached profile, also the knowledge that a user has none,
 * is used for ttl_ms after the query that brought it started; so a trait
 * changed in the database is seen within ttl_ms plus the time of one batch.
 * The cache holds at most max_users users (and 64 MiB of traits): beyond
 * that, cm_profdb_trim empties it.
 *
 * Ownership: the texts cm_profdb_get returns are valid until the next
 * cm_profdb_begin, cm_profdb_fetch or cm_profdb_receive. A profdb is not
 * thread safe. */
#ifndef CM_PROFDB_H
#define CM_PROFDB_H

#include <stddef.h>
#include <stdint.h>

struct cm_err;
struct cm_profdb;

/* Defaults and bounds of the cache. */
#define CM_PROFDB_TTL_MS  1000
#define CM_PROFDB_TTL_MAX 86400000 /* a day */
#define CM_PROFDB_USERS   200000
#define CM_PROFDB_BYTES   ((size_t)64 << 20)
/* Most users looked up by one query. */
#define CM_PROFDB_BATCH_MAX 10000

/* Connects (retrying for 10 s, a server that is starting) and checks that
 * the profiles table can be read; NULL with err (code CM_EXIT_UNREACHABLE,
 * or CM_EXIT_REFUSED when the table is missing). */
struct cm_profdb *cm_profdb_open(const char *conninfo, int64_t ttl_ms, size_t max_users,
                                 struct cm_err *err);
void cm_profdb_close(struct cm_profdb *db);

/* Starts a batch. */
void cm_profdb_begin(struct cm_profdb *db);
/* Empties the cache, and the batch's wanted users, when the cache is over
 * its bounds and no query is in flight; returns 1 when it did (the caller
 * wants its batch's users again). */
int cm_profdb_trim(struct cm_profdb *db);
/* Notes that the batch needs user[0..n)'s profile. Returns 0, or -1 when
 * memory is out. */
int cm_profdb_want(struct cm_profdb *db, const char *user, size_t n, struct cm_err *err);
/* Wanted users so far in this batch that are not fresh in the cache. */
size_t cm_profdb_missing(const struct cm_profdb *db);
/* Looks up the missing users in one query (after taking the answer of a
 * query in flight), reconnecting and retrying for up to 30 s when the
 * connection fails. Returns 0, or -1 with err (code CM_EXIT_UNREACHABLE, or
 * CM_EXIT_REFUSED for an error retrying cannot fix). */
int cm_profdb_fetch(struct cm_profdb *db, struct cm_err *err);
/* The same without waiting for the answer: the query goes out, and its
 * users count as asked for (cm_profdb_want does not ask again, and
 * cm_profdb_cached says they must be looked up) until cm_profdb_receive has
 * taken its answer; so the server answers while the next batch is read. At
 * most one query is in flight; a failure to send is a cm_profdb_fetch. */
int cm_profdb_send(struct cm_profdb *db, struct cm_err *err);
/* Waits for the answer of the query in flight, if any, and stores it. */
int cm_profdb_receive(struct cm_profdb *db, struct cm_err *err);
/* The traits (a JSON object text) of a user wanted in this batch, or NULL
 * when the user has no profile. */
const char *cm_profdb_get(struct cm_profdb *db, const char *user, size_t n, size_t *len);
/* What the cache knows of user[0..n) now: 1 with *text (NULL: the user
 * has no profile) when that is fresh; 0 when it is not, and the user is
 * wanted by the batch (as cm_profdb_want); -1 with err when memory is out.
 * *ref names the user for cm_profdb_ref until the next cm_profdb_trim. */
int cm_profdb_lookup(struct cm_profdb *db, const char *user, size_t n, const char **text,
                     size_t *len, uint32_t *ref, struct cm_err *err);
/* The traits of the user *ref named, once looked up (NULL: none). */
const char *cm_profdb_ref(struct cm_profdb *db, uint32_t ref, size_t *len);

/* Queries run and users fetched so far (for --stats). */
unsigned long long cm_profdb_queries(const struct cm_profdb *db);
unsigned long long cm_profdb_fetched(const struct cm_profdb *db);

#endif
