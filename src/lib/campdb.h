/* campdb.h - the active campaigns of a PostgreSQL database, kept current.
 *
 * cm_campdb_open loads the active campaigns once; a background thread then
 * LISTENs on the channel cm_campaigns (the campaigns table's trigger
 * notifies it) and, on a notification or after reconnecting, builds a new
 * compiled set off the matching path. The matcher picks up the newest set
 * between two events with cm_campdb_current, so the stream never pauses.
 *
 * A campaign that does not validate or compile is reported and skipped; the
 * others keep matching. Problems go to the report callback, which may be
 * called from the background thread.
 *
 * Ownership: the campdb owns every set it hands out; the set returned by
 * cm_campdb_current stays valid until the next call of cm_campdb_current or
 * cm_campdb_close. */
#ifndef CM_CAMPDB_H
#define CM_CAMPDB_H

#include "rule.h"

#include <libpq-fe.h>

struct cm_err;
struct cm_campdb;

/* Connects and loads; NULL with err when the database cannot be reached or
 * read (a tool exits with CM_EXIT_UNREACHABLE then). */
struct cm_campdb *cm_campdb_open(const char *conninfo, cm_rule_reportfn *report, void *ctx,
                                 struct cm_err *err);
/* The newest compiled set (the previous one is freed when a newer one
 * replaces it). *generation (if not NULL) counts loads, from 1. */
struct cm_ruleset *cm_campdb_current(struct cm_campdb *db, unsigned long *generation);
/* How many campaigns the first load left out (for --check). */
size_t cm_campdb_skipped(const struct cm_campdb *db);
/* True when a newer set is waiting to be taken by cm_campdb_current: a
 * cheap test for every event. */
int cm_campdb_pending(struct cm_campdb *db);
/* Stops the thread and frees everything. */
void cm_campdb_close(struct cm_campdb *db);

/* Reads the active campaigns over c, as cm_campdb_open does, into a new
 * compiled set *out (campaigns that fail are reported and skipped, counted
 * in *skipped); -1 with err when the query fails. For a reader that keeps
 * its own connection (cm-httpd's explain). */
int cm_campdb_load(PGconn *c, cm_rule_reportfn *report, void *ctx, struct cm_ruleset **out,
                   size_t *skipped, struct cm_err *err);

/* Builds a compiled set from a JSON array of campaigns, skipping (and
 * reporting) each campaign that fails; never NULL unless memory runs out.
 * *skipped gets how many were left out. Exposed for tests. */
struct cm_ruleset *cm_campdb_build(const char *json, size_t len, const char *source,
                                   cm_rule_reportfn *report, void *ctx, size_t *skipped);

#endif
