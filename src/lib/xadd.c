/* xadd.c - pipelined XADD batches with per-entry confirmation and retry.
 *
 * The commands of every unreported entry are kept RESP-encoded in one
 * buffer, as units: a single XADD, or MULTI, the group's XADDs and EXEC.
 * Units are sent in batches; a batch's replies are read in order. A unit
 * that is not confirmed (connection lost, transient refusal) stays in the
 * buffer and is sent again by the retry loop; confirmed units are dropped
 * from the front. */
#include "xadd.h"

#include "buf.h"
#include "err.h"
#include "redisx.h"
#include "retry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How often a publisher that counts Redis as down tries to reconnect. */
#define DOWN_RETRY_MS 250
/* Backoff between attempts in the retry loop. */

enum { U_FILLING = 0, U_SENT, U_DONE };

struct unit {
	size_t off, len;   /* its commands in x->cmd */
	uint32_t first, n; /* its entries in x->tags */
	uint8_t group;     /* wrapped in MULTI/EXEC */
	uint8_t state;
	uint64_t batch; /* batch number it was last sent in */
};

struct cm_xadd {
	struct cm_redis_url url;
	struct cm_buf head; /* "*5\r\n$4\r\nXADD\r\n$N\r\nKEY\r\n$1\r\n*\r\n$4\r\ndata\r\n" */
	int64_t retry_ms;
	int connect_ms, io_ms;
	cm_xadd_done_fn *done;
	cm_xadd_note_fn *note;
	void *ctx;
	redisContext *c;
	struct cm_buf cmd;
	uint64_t *tags;
	size_t ntags, captags;
	struct unit *units;
	size_t nunits, capunits;
	size_t nsent;       /* units [0, nsent) have been sent at least once */
	uint64_t batch;     /* number of the last batch sent */
	uint64_t oldest;    /* oldest batch whose replies are still due */
	int open;           /* a group is open: units[nunits - 1] */
	int64_t down_since; /* 0, or when Redis was given up on (monotonic ms) */
	int64_t last_try;   /* last reconnection attempt while down */
	struct cm_err last; /* the latest trouble */
	struct cm_err gave; /* why the first entry given up since the last pump was */
};

struct cm_xadd *cm_xadd_new(const struct cm_xadd_opts *o, cm_xadd_done_fn *done, void *ctx)
{
	struct cm_xadd *x = calloc(1, sizeof(*x));
	size_t klen = strlen(o->key);

	if (!x)
		return NULL;
	x->url = *o->url;
	x->retry_ms = o->retry_ms;
	x->connect_ms = o->connect_ms > 0 ? o->connect_ms : CM_REDIS_CONNECT_MS;
	x->io_ms = o->io_ms > 0 ? o->io_ms : CM_REDIS_IO_MS;
	x->done = done;
	x->note = o->note;
	x->ctx = ctx;
	x->oldest = 1;
	cm_buf_init(&x->cmd, 0);
	cm_buf_init(&x->head, 0);
	if (cm_buf_addf(&x->head, "*5\r\n$4\r\nXADD\r\n$%zu\r\n", klen) < 0 ||
	    cm_buf_add(&x->head, o->key, klen) < 0 ||
	    cm_buf_addf(&x->head, "\r\n$1\r\n*\r\n$%zu\r\n%s\r\n", strlen(CM_REDIS_FIELD),
	                CM_REDIS_FIELD) < 0) {
		cm_xadd_free(x);
		return NULL;
	}
	return x;
}

void cm_xadd_free(struct cm_xadd *x)
{
	if (!x)
		return;
	if (x->c)
		redisFree(x->c);
	cm_buf_release(&x->cmd);
	cm_buf_release(&x->head);
	free(x->tags);
	free(x->units);
	free(x);
}

/* Makes room for one more unit and one more tag. */
static int reserve(struct cm_xadd *x)
{
	if (x->nunits == x->capunits) {
		size_t cap = x->capunits ? x->capunits * 2 : 64;
		struct unit *u = realloc(x->units, cap * sizeof(*u));

		if (!u)
			return -1;
		x->units = u;
		x->capunits = cap;
	}
	if (x->ntags == x->captags) {
		size_t cap = x->captags ? x->captags * 2 : 64;
		uint64_t *t = realloc(x->tags, cap * sizeof(*t));

		if (!t)
			return -1;
		x->tags = t;
		x->captags = cap;
	}
	return 0;
}

/* Starts a unit at the end of the buffer. */
static struct unit *new_unit(struct cm_xadd *x, int group)
{
	struct unit *u = &x->units[x->nunits++];

	memset(u, 0, sizeof(*u));
	u->off = x->cmd.len;
	u->first = (uint32_t)x->ntags;
	u->group = (uint8_t)group;
	return u;
}

int cm_xadd_add(struct cm_xadd *x, const char *data, size_t len, uint64_t tag)
{
	size_t mark = x->cmd.len, nunits = x->nunits;
	struct unit *u;

	if (reserve(x) < 0)
		return -1;
	u = x->open ? &x->units[x->nunits - 1] : new_unit(x, 0);
	if (cm_buf_add(&x->cmd, x->head.data, x->head.len) < 0 ||
	    cm_buf_addf(&x->cmd, "$%zu\r\n", len) < 0 || cm_buf_add(&x->cmd, data, len) < 0 ||
	    cm_buf_add(&x->cmd, "\r\n", 2) < 0) {
		x->cmd.len = mark;
		x->nunits = nunits;
		return -1;
	}
	x->tags[x->ntags++] = tag;
	u->n++;
	u->len = x->cmd.len - u->off;
	return 0;
}

int cm_xadd_begin(struct cm_xadd *x)
{
	struct unit *u;

	if (x->open || reserve(x) < 0)
		return -1;
	u = new_unit(x, 1);
	if (cm_buf_adds(&x->cmd, "*1\r\n$5\r\nMULTI\r\n") < 0) {
		x->nunits--;
		return -1;
	}
	u->len = x->cmd.len - u->off;
	x->open = 1;
	return 0;
}

int cm_xadd_commit(struct cm_xadd *x)
{
	struct unit *u;

	if (!x->open)
		return -1;
	u = &x->units[x->nunits - 1];
	if (u->n == 0) {
		cm_xadd_rollback(x);
		return 0;
	}
	if (cm_buf_adds(&x->cmd, "*1\r\n$4\r\nEXEC\r\n") < 0)
		return -1;
	u->len = x->cmd.len - u->off;
	x->open = 0;
	return 0;
}

void cm_xadd_rollback(struct cm_xadd *x)
{
	struct unit *u;

	if (!x->open)
		return;
	u = &x->units[--x->nunits];
	x->cmd.len = u->off;
	if (x->cmd.data)
		x->cmd.data[x->cmd.len] = 0;
	x->ntags = u->first;
	x->open = 0;
}

size_t cm_xadd_filling(const struct cm_xadd *x)
{
	size_t i, n = 0;

	for (i = x->nsent; i < x->nunits; i++)
		n += x->units[i].n;
	return n;
}

size_t cm_xadd_unconfirmed(const struct cm_xadd *x)
{
	size_t i, n = 0;

	for (i = 0; i < x->nsent; i++)
		if (x->units[i].state != U_DONE)
			n += x->units[i].n;
	return n;
}

size_t cm_xadd_inflight(const struct cm_xadd *x)
{
	return x->nsent && x->batch >= x->oldest ? (size_t)(x->batch - x->oldest + 1) : 0;
}

int cm_xadd_down(const struct cm_xadd *x)
{
	return x->down_since != 0;
}

/* Reports entry i of unit u. */
static void report(struct cm_xadd *x, const struct unit *u, uint32_t i, const char *id,
                   size_t idlen, const char *error)
{
	if (error && !x->gave.msg[0])
		x->gave = x->last;
	if (x->done)
		x->done(x->ctx, x->tags[u->first + i], id, idlen, error);
}

/* Gives up unit u: every entry reported with error. */
static void give_up(struct cm_xadd *x, struct unit *u, const char *error)
{
	uint32_t i;

	for (i = 0; i < u->n; i++)
		report(x, u, i, NULL, 0, error);
	u->state = U_DONE;
}

/* Drops the reported units at the front, with their commands and tags. */
static void drop_front(struct cm_xadd *x)
{
	size_t k = 0, i, boff, btag;

	while (k < x->nsent && x->units[k].state == U_DONE)
		k++;
	if (k == 0)
		return;
	boff = k < x->nunits ? x->units[k].off : x->cmd.len;
	btag = k < x->nunits ? x->units[k].first : x->ntags;
	memmove(x->cmd.data, x->cmd.data + boff, x->cmd.len - boff);
	x->cmd.len -= boff;
	x->cmd.data[x->cmd.len] = 0;
	memmove(x->tags, x->tags + btag, (x->ntags - btag) * sizeof(*x->tags));
	x->ntags -= btag;
	memmove(x->units, x->units + k, (x->nunits - k) * sizeof(*x->units));
	x->nunits -= k;
	x->nsent -= k;
	for (i = 0; i < x->nunits; i++) {
		x->units[i].off -= boff;
		x->units[i].first -= (uint32_t)btag;
	}
}

/* Drops the connection after an I/O error, keeping its reason. */
static void lost(struct cm_xadd *x)
{
	cm_errf(&x->last, "%s: %s", x->url.safe,
	        x->c->errstr[0] ? x->c->errstr : "connection lost");
	redisFree(x->c);
	x->c = NULL;
}

/* Makes units [from, to) that are not done batch number x->batch + 1; they
 * count as sent from now on, whether or not the write succeeds. */
static void new_batch(struct cm_xadd *x, size_t from, size_t to)
{
	size_t i;

	x->batch++;
	for (i = from; i < to; i++)
		if (x->units[i].state != U_DONE) {
			x->units[i].state = U_SENT;
			x->units[i].batch = x->batch;
		}
	if (to > x->nsent)
		x->nsent = to;
}

/* Writes the commands of the units of the last batch among [from, to);
 * -1 after an I/O error (connection dropped). */
static int write_batch(struct cm_xadd *x, size_t from, size_t to)
{
	size_t i, first;
	int done = 0;

	for (i = from; i < to; i++) {
		if (x->units[i].state != U_SENT || x->units[i].batch != x->batch)
			continue;
		/* A run of units to send is contiguous in the buffer. */
		first = i;
		while (i + 1 < to && x->units[i + 1].state == U_SENT &&
		       x->units[i + 1].batch == x->batch)
			i++;
		if (redisAppendFormattedCommand(x->c, x->cmd.data + x->units[first].off,
		                                x->units[i].off + x->units[i].len -
		                                    x->units[first].off) != REDIS_OK) {
			lost(x);
			return -1;
		}
	}
	do
		if (redisBufferWrite(x->c, &done) != REDIS_OK) {
			lost(x);
			return -1;
		}
	while (!done);
	return 0;
}

/* Outcome of reading one unit's replies. */
enum { RX_OK = 0, RX_IO = -1, RX_TRANSIENT = -2 };

/* Keeps the text of an error reply as the last error. */
static void keep_error(struct cm_xadd *x, const redisReply *r)
{
	cm_errc(&x->last, CM_EXIT_REFUSED, "%s: %.*s", x->url.safe,
	        (int)(r->len > 200 ? 200 : r->len), r->str);
}

/* Reads one reply; NULL after an I/O error (connection dropped). */
static redisReply *get_reply(struct cm_xadd *x)
{
	redisReply *r = NULL;

	if (redisGetReply(x->c, (void **)&r) != REDIS_OK || !r) {
		if (r)
			freeReplyObject(r);
		lost(x);
		return NULL;
	}
	return r;
}

/* Reports the entry that reply r confirms or refuses: a bulk string is the
 * entry id; an error is final unless transient. Returns RX_OK or
 * RX_TRANSIENT. */
static int settle_entry(struct cm_xadd *x, struct unit *u, uint32_t i, const redisReply *r,
                        int *gave_up)
{
	if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) {
		report(x, u, i, r->str, r->len, NULL);
		return RX_OK;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		keep_error(x, r);
		if (cm_redis_error_transient(r->str, r->len))
			return RX_TRANSIENT;
		report(x, u, i, NULL, 0, x->last.msg);
		*gave_up = 1;
		return RX_OK;
	}
	cm_errc(&x->last, CM_EXIT_REFUSED, "%s: unexpected reply type %d to XADD", x->url.safe,
	        r->type);
	report(x, u, i, NULL, 0, x->last.msg);
	*gave_up = 1;
	return RX_OK;
}

/* Reads the replies of a group: MULTI's, one per queued XADD, EXEC's.
 * An error while queueing makes EXEC refuse the whole group; its entries
 * are given up unless that error is transient. */
static int read_group(struct cm_xadd *x, struct unit *u, int *gave_up)
{
	redisReply *r;
	int transient = 0, refused = 0, rc = RX_OK;
	uint32_t i;

	for (i = 0; i < u->n + 1; i++) {
		r = get_reply(x);
		if (!r)
			return RX_IO;
		if (r->type == REDIS_REPLY_ERROR) {
			keep_error(x, r);
			if (cm_redis_error_transient(r->str, r->len))
				transient = 1;
			else
				refused = 1;
		}
		freeReplyObject(r);
	}
	r = get_reply(x);
	if (!r)
		return RX_IO;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == u->n && !transient && !refused) {
		for (i = 0; i < u->n; i++)
			if (settle_entry(x, u, i, r->element[i], gave_up) != RX_OK) {
				/* A transient error inside EXEC: the others are
				 * stored, so this one cannot be sent again
				 * alone without breaking the group. */
				report(x, u, i, NULL, 0, x->last.msg);
				*gave_up = 1;
			}
		u->state = U_DONE;
	} else if (transient || r->type == REDIS_REPLY_NIL ||
	           (r->type == REDIS_REPLY_ERROR && !refused &&
	            cm_redis_error_transient(r->str, r->len))) {
		if (r->type == REDIS_REPLY_ERROR && !transient)
			keep_error(x, r);
		rc = RX_TRANSIENT;
	} else {
		if (!refused)
			keep_error(x, r);
		give_up(x, u, x->last.msg);
		*gave_up = 1;
	}
	freeReplyObject(r);
	return rc;
}

/* Reads the replies of every sent unit of batch b (units not done whose
 * batch is b); units left not done are retried. Returns RX_OK, RX_IO or
 * RX_TRANSIENT (the remaining replies of the batch were still read). */
static int read_batch(struct cm_xadd *x, uint64_t b, int *gave_up)
{
	size_t i;
	int rc = RX_OK, st;

	for (i = 0; i < x->nsent; i++) {
		struct unit *u = &x->units[i];

		if (u->state != U_SENT || u->batch != b)
			continue;
		if (u->group) {
			st = read_group(x, u, gave_up);
		} else {
			redisReply *r = get_reply(x);

			if (!r)
				return RX_IO;
			st = settle_entry(x, u, 0, r, gave_up);
			if (st == RX_OK)
				u->state = U_DONE;
			freeReplyObject(r);
		}
		if (st == RX_IO)
			return RX_IO;
		if (st == RX_TRANSIENT)
			rc = RX_TRANSIENT;
	}
	return rc;
}

/* Connects when there is no connection; while Redis counts as down, at most
 * every DOWN_RETRY_MS. -1 when there is none for now, -2 when Redis refused
 * it for good (x->last says why, with its code). */
static int ensure_connected(struct cm_xadd *x)
{
	struct cm_err err;
	int64_t now;

	if (x->c)
		return 0;
	now = cm_mono_ms();
	if (x->down_since && now - x->last_try < DOWN_RETRY_MS)
		return -1;
	x->last_try = now;
	x->c = cm_redis_connect_timed(&x->url, x->connect_ms, x->io_ms, &err);
	if (!x->c) {
		x->last = err;
		return err.code == CM_EXIT_REFUSED || err.code == CM_EXIT_SYSTEM ? -2 : -1;
	}
	return 0;
}

/* Gives up every unit sent and not done, after the retry budget. */
static void give_up_unconfirmed(struct cm_xadd *x)
{
	size_t i;

	if (!x->down_since)
		x->down_since = cm_mono_ms();

	for (i = 0; i < x->nsent; i++)
		if (x->units[i].state != U_DONE)
			give_up(x, &x->units[i], x->last.msg);
	x->oldest = x->batch + 1;
}

/* The retry loop: sends every unconfirmed unit again and reads all replies
 * until all are done, with backoff, within the budget (no wait while down).
 * The connection, if any, owes no replies. 0 when Redis settled every
 * unit, -1 when units were given up. */
static int settle_all(struct cm_xadd *x, int *gave_up)
{
	struct cm_backoff bo;
	int st, noted = 0;

	cm_backoff_start(&bo, x->down_since ? 0 : x->retry_ms);
	for (;;) {
		st = ensure_connected(x);
		if (st == -2) {
			give_up_unconfirmed(x);
			*gave_up = 1;
			return -1;
		}
		if (st == 0) {
			new_batch(x, 0, x->nsent);
			st = write_batch(x, 0, x->nsent);
			if (st == 0)
				st = read_batch(x, x->batch, gave_up);
			if (st == RX_OK) {
				x->oldest = x->batch + 1;
				x->down_since = 0;
				if (noted && x->note)
					x->note(x->ctx, CM_XADD_RESUMED, NULL, 0);
				return 0;
			}
		}
		if (!x->last.msg[0])
			cm_errf(&x->last, "%s: unreachable", x->url.safe);
		if (!noted && x->note && cm_backoff_left(&bo) > 0)
			x->note(x->ctx, CM_XADD_RETRYING, x->last.msg, cm_backoff_left(&bo));
		noted = 1;
		if (cm_backoff_wait(&bo, NULL) < 0) {
			x->last.code = CM_EXIT_UNREACHABLE;
			give_up_unconfirmed(x);
			*gave_up = 1;
			return -1;
		}
	}
}

int cm_xadd_pump(struct cm_xadd *x, unsigned keep, struct cm_err *err)
{
	size_t nunits = x->open ? x->nunits - 1 : x->nunits, first = x->nsent;
	int gave_up = 0, st = RX_OK;

	if (nunits > x->nsent)
		new_batch(x, x->nsent, nunits);
	if (cm_xadd_unconfirmed(x) == 0)
		goto out;
	if (x->down_since || ensure_connected(x) < 0)
		st = RX_IO;
	else if (nunits > first)
		st = write_batch(x, first, nunits);
	while (st == RX_OK && cm_xadd_inflight(x) > keep) {
		st = read_batch(x, x->oldest, &gave_up);
		if (st == RX_OK)
			x->oldest++;
	}
	if (st != RX_OK) {
		/* Collect what the connection still owes, so that it can
		 * carry a clean resend of everything unconfirmed. */
		while (x->c && st == RX_TRANSIENT && x->oldest < x->batch)
			if (read_batch(x, ++x->oldest, &gave_up) == RX_IO)
				break;
		settle_all(x, &gave_up);
	}
out:
	drop_front(x);
	if (gave_up) {
		cm_errc(err, x->gave.code > CM_EXIT_USAGE ? x->gave.code : CM_EXIT_REFUSED, "%s",
		        x->gave.msg[0] ? x->gave.msg : x->last.msg);
		x->gave.msg[0] = 0;
		return -1;
	}
	return 0;
}

int cm_xadd_flush(struct cm_xadd *x, struct cm_err *err)
{
	return cm_xadd_pump(x, 0, err);
}
