/* storebatch.h - cm-store's batches: rows of records (storerow.h) stored in
 * PostgreSQL in one transaction per batch, idempotently, exact under
 * concurrency and redelivery.
 *
 * A batch is normally COPYed straight into events and matches. When rows
 * are there already (a redelivery: a unique violation) or a deadlock
 * intervenes, it goes through temporary staging tables and INSERT ... SELECT
 * ... ORDER BY key ON CONFLICT DO NOTHING instead, which is idempotent and
 * takes row locks in key order, for the next CM_STORE_STAGED_BATCHES
 * batches. In the same transaction, after the rows, the batch's identify
 * events are merged with cm_merge_profiles (003_profiles.sql), then its
 * candidates of limited campaigns are decided and stored by
 * cm_decide_limits (004_outcomes.sql): profiles first, then limits, the lock
 * order those functions require. Only a batch that has such rows pays for
 * the calls. A batch the server refuses for a bad value is halved until the
 * rows at fault are found; they are refused (the hooks hear of each) and the
 * rest is stored. A failure worth retrying (the connection, a server
 * starting or shutting down, a deadlock) is retried on the one backoff
 * (retry.h) for the connection's retry budget, reconnecting as needed.
 *
 * Ownership: a struct cm_store_batch owns its rows and text; a struct
 * cm_store_conn owns its PGconn. One connection serves one thread at a time.
 * Nothing here prints: what a tool says goes through struct cm_store_hooks. */
#ifndef CM_STOREBATCH_H
#define CM_STOREBATCH_H

#include <libpq-fe.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "storerow.h"

struct cm_jdoc;
struct cm_event_view;
struct cm_err;

/* Batches through staging after a conflict, before COPY is tried again. */
#define CM_STORE_STAGED_BATCHES 16

/* What became of a row. */
enum cm_store_state {
	CM_STORE_PENDING = 0, /* to be stored */
	CM_STORE_STORED,      /* committed */
	CM_STORE_REFUSED,     /* the server refused it alone (a bad value): not stored */
	CM_STORE_SKIP,        /* not to be stored (the tool's own: a line it refused) */
};

/* One row: a record's parts of the batch's text. */
struct cm_store_row {
	size_t ev_off, mt_off, lim_off, pf_off;
	uint32_t ev_len, mt_len, lim_len, pf_len;
	uint8_t state; /* enum cm_store_state; the tool may set it */
};

struct cm_store_batch {
	struct cm_storerow_out out; /* the rows' text, in row order */
	struct cm_store_row *rows;
	size_t n, cap;
};

void cm_store_batch_init(struct cm_store_batch *b);
/* Empties b for reuse, keeping its memory. */
void cm_store_batch_reset(struct cm_store_batch *b);
void cm_store_batch_release(struct cm_store_batch *b);
/* Adds record v (validated in d) as row b->n, with its counts in *n; on
 * failure (out of memory) b is as it was. */
int cm_store_batch_add(struct cm_store_batch *b, struct cm_storerow *sr, const struct cm_jdoc *d,
                       const struct cm_event_view *v, struct cm_storerow_counts *n,
                       struct cm_err *err);
/* Adds an empty row in state CM_STORE_SKIP (a line the tool keeps track of
 * but that is not stored). */
int cm_store_batch_skip(struct cm_store_batch *b, struct cm_err *err);
/* Bytes of text the batch holds (for flushing a batch early). */
size_t cm_store_batch_bytes(const struct cm_store_batch *b);

/* What a connection committed, added up over its batches. */
struct cm_store_stats {
	unsigned long long batches;     /* committed */
	unsigned long long events_new;  /* events rows inserted */
	unsigned long long matches_new; /* matches rows of unlimited campaigns inserted */
	unsigned long long matched, holdout, capped; /* cm_decide_limits' outcomes */
	unsigned long long profiles;                 /* profiles that cm_merge_profiles changed */
	unsigned long long refused;                  /* rows refused */
	unsigned long long retries;                  /* waits before another attempt */
};

/* What happens, for the tool to say (every hook may be NULL). */
struct cm_store_hooks {
	void *ctx;
	/* The first failure of an outage (msg says what failed); the attempts
	 * go on within the budget. */
	void (*retrying)(void *ctx, const char *msg);
	/* The outage is over: the batch was stored. */
	void (*back)(void *ctx);
	/* Row i of the batch was refused alone with a data error (msg); its
	 * state is CM_STORE_REFUSED, which the hook may change to
	 * CM_STORE_SKIP. */
	void (*refused)(void *ctx, size_t i, const char *msg);
	/* True when retrying should end now (a second signal). */
	int (*stop)(void *ctx);
	/* The signal mask during the backoff's sleeps (NULL: as it is). */
	const sigset_t *mask;
};

struct cm_store_conn {
	const char *conninfo;
	int64_t retry_ms; /* the retry budget of a batch (and of cm_store_open) */
	struct cm_store_hooks hooks;
	PGconn *pg;
	int staged_left; /* batches still to store through staging */
	int outage;      /* a retry is under way: retrying was said */
	struct cm_store_stats st;
	struct cm_buf arr; /* a JSON array parameter */
};

/* Prepares c (no connection yet); conninfo must outlive c. */
void cm_store_conn_init(struct cm_store_conn *c, const char *conninfo, int64_t retry_ms,
                        const struct cm_store_hooks *hooks);
/* Closes the connection and frees what c holds. */
void cm_store_conn_release(struct cm_store_conn *c);
/* Connects and prepares the connection (a commit that waits for the disk,
 * the staging tables, a check of the schema), retrying an unreachable server
 * for the budget. -1 with err->code CM_EXIT_USAGE (the schema of migrations
 * 001-004 is missing), CM_EXIT_REFUSED (the server refused: a wrong
 * password, a permission) or CM_EXIT_UNREACHABLE (the budget is spent, or
 * stop said so). */
int cm_store_open(struct cm_store_conn *c, struct cm_err *err);
/* Stores the batch's CM_STORE_PENDING rows: 0 when each is now
 * CM_STORE_STORED or CM_STORE_REFUSED; -1 when giving up (nothing of the
 * unfinished part committed), with err->code as for cm_store_open. */
int cm_store_batch_store(struct cm_store_conn *c, struct cm_store_batch *b, struct cm_err *err);

#endif
