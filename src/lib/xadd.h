/* xadd.h - appending entries to a Redis stream in pipelined batches, with a
 * confirmation (the entry id) or a final error for every entry.
 *
 * Entries are added to a filling batch; cm_xadd_pump sends it and collects
 * the replies of older batches, so that Redis works on one batch while the
 * caller prepares the next (cm-publish keeps two batches in flight; a server
 * sends what arrived while the previous round trip was out). Entries added
 * between cm_xadd_begin and cm_xadd_commit form a group sent inside
 * MULTI/EXEC, so that Redis stores all of them or none.
 *
 * Every entry is reported exactly once through the done callback, in the
 * order added: with its stream id once Redis confirmed it, or with an error
 * once it is given up. An entry is given up when Redis refuses it for good
 * (a wrong key type, a refused command), or when Redis stayed unreachable
 * or busy (LOADING, OOM, ...) for the retry budget: until then a lost
 * connection is reopened with exponential backoff and every unconfirmed
 * entry sent again (so an entry whose confirmation was lost may be stored
 * twice; consumers deduplicate by event_id). After giving up, the publisher
 * counts Redis as down: later calls try one reconnection (at most every
 * 250 ms) and give up at once when it fails, instead of waiting out the
 * budget for every batch. A connection Redis refuses for good (a wrong
 * password, a missing permission) is not retried: the unconfirmed entries
 * are given up at once.
 *
 * A failure's code (err.h) says which: CM_EXIT_UNREACHABLE when Redis stayed
 * unreachable or busy for the budget, CM_EXIT_REFUSED (or the connection's
 * own code) when it refused an entry or the connection for good.
 *
 * The entry format is CONTRACT's: XADD KEY * data JSON. A struct cm_xadd is
 * used by one thread; the callback runs inside cm_xadd_pump and
 * cm_xadd_flush, on that thread. The data is copied when added. SIGPIPE
 * must be ignored by the program (a write to a closed connection must fail,
 * not kill it). */
#ifndef CM_XADD_H
#define CM_XADD_H

#include <stddef.h>
#include <stdint.h>

struct cm_err;
struct cm_redis_url;
struct cm_xadd;

/* What the retry loop tells a caller that says how it is doing (cm-publish
 * on stderr): CM_XADD_RETRYING once when a round fails and waiting starts
 * (msg: the trouble, left_ms: the budget left), CM_XADD_RESUMED when Redis
 * confirmed everything again after that. */
enum { CM_XADD_RETRYING = 1, CM_XADD_RESUMED };
typedef void cm_xadd_note_fn(void *ctx, int what, const char *msg, int64_t left_ms);

struct cm_xadd_opts {
	const struct cm_redis_url *url; /* copied */
	const char *key;                /* the stream, copied */
	int64_t retry_ms;               /* budget for an unreachable or busy Redis */
	int connect_ms, io_ms;          /* socket timeouts; 0: redisx's defaults */
	cm_xadd_note_fn *note;          /* optional, called with the done callback's ctx */
};

/* The fate of the entry added with tag: id[0..idlen) is its stream entry id
 * when error is NULL; otherwise it was given up and error says why. */
typedef void cm_xadd_done_fn(void *ctx, uint64_t tag, const char *id, size_t idlen,
                             const char *error);

/* A publisher that connects on first use; NULL when memory is out. */
struct cm_xadd *cm_xadd_new(const struct cm_xadd_opts *o, cm_xadd_done_fn *done, void *ctx);
/* Closes the connection and frees everything; entries not yet reported are
 * dropped without a report. */
void cm_xadd_free(struct cm_xadd *x);

/* Adds an entry with data[0..len) to the filling batch; -1 when memory is
 * out (nothing added). */
int cm_xadd_add(struct cm_xadd *x, const char *data, size_t len, uint64_t tag);
/* Opens a group: the entries added until cm_xadd_commit are stored
 * together or not at all. Groups do not nest. */
int cm_xadd_begin(struct cm_xadd *x);
/* Closes the open group (an empty group sends nothing). */
int cm_xadd_commit(struct cm_xadd *x);
/* Drops the entries of the open group, unsent and unreported. */
void cm_xadd_rollback(struct cm_xadd *x);

/* Entries added and not yet sent, and entries sent but not yet reported. */
size_t cm_xadd_filling(const struct cm_xadd *x);
size_t cm_xadd_unconfirmed(const struct cm_xadd *x);
/* Batches sent whose replies are still due. */
size_t cm_xadd_inflight(const struct cm_xadd *x);
/* True while Redis counts as down (see above). */
int cm_xadd_down(const struct cm_xadd *x);

/* Sends the filling batch (if any), then waits for the replies of the
 * oldest batches until at most keep batches are in flight. Trouble on the
 * way (a lost connection, a busy server) is retried as in cm_xadd_flush.
 * Returns 0, or -1 when some entry was given up (err: the first reason,
 * with its code). */
int cm_xadd_pump(struct cm_xadd *x, unsigned keep, struct cm_err *err);
/* Sends and confirms everything: cm_xadd_pump with keep 0. */
int cm_xadd_flush(struct cm_xadd *x, struct cm_err *err);

#endif
