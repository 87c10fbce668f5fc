/* cm-consume - a Redis stream consumer group member: writes each entry's
 * event with its "_stream_id" to stdout, re-reads its own pending entries
 * after a restart, claims those of dead consumers, and dead-letters entries
 * that keep coming back or are not events. */
#include "buf.h"
#include "tool.h"
#include "err.h"
#include "event.h"
#include "json.h"
#include "out.h"
#include "redisx.h"
#include "retry.h"
#include "wmetrics.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "Usage: cm-consume [--redis URL] [--stream KEY] [--group NAME] [--consumer NAME]\n"
    "                  [--count N] [--follow] [--block MS] [--claim-idle MS]\n"
    "                  [--max-deliveries N] [--ack] [--trim-interval S]\n"
    "                  [--retry-for SECONDS]\n"
    "Read events from a Redis stream as a member of a consumer group and write\n"
    "them to standard output, one per line, with \"_stream_id\" added.\n"
    "\n"
    "  --redis URL           redis://[[user]:password@]host[:port][/db] or\n"
    "                        unix:///path[?db=N] (default $CM_REDIS_URL, else\n"
    "                        redis://127.0.0.1:6379)\n"
    "  --stream KEY          stream key (default cm:events)\n"
    "  --group NAME          consumer group, created when missing (default cm-workers)\n"
    "  --consumer NAME       consumer name (default HOSTNAME-$CM_WORKER_ID, else\n"
    "                        HOSTNAME-1)\n"
    "  --count N             entries per read (default 500)\n"
    "  --follow              keep waiting for new entries instead of exiting\n"
    "  --block MS            with --follow, longest wait per read (default 2000)\n"
    "  --claim-idle MS       claim other consumers' entries idle this long\n"
    "                        (default 60000; 0: never claim)\n"
    "  --max-deliveries N    dead-letter an entry delivered more often (default 5)\n"
    "  --ack                 acknowledge entries as soon as they are written\n"
    "                        (at-most-once; by default cm-store --ack does it)\n"
    "  --trim-interval S     trim the stream of entries all groups have\n"
    "                        acknowledged every S seconds (default 10; 0: never)\n"
    "  --retry-for SECONDS   give up when Redis stays unreachable this long\n"
    "                        (default 30; with --follow: retry forever)\n"
    "  -h, --help            this help\n"
    "  -V, --version         version\n"
    "\n"
    "Exit status: 0 done, or stopped by SIGTERM/SIGINT or a closed output; 2 usage\n"
    "error; 3 Redis unreachable for --retry-for; 4 Redis refused a request that\n"
    "retrying cannot fix (such as a key of the wrong type); 5 output error.\n";

static volatile sig_atomic_t stop_flag;

/* SIGTERM and SIGINT only ask the main loop to finish what it wrote. */
static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

struct con {
	struct cm_common_opts opt; /* --redis, --stream, --group, --consumer, --retry-for */
	struct cm_redis_url url;
	const char *key, *group;
	char consumer[256];
	struct cm_buf dead_key;
	long count;
	int64_t block_ms, claim_idle, trim_ms, retry_ms; /* retry_ms < 0: forever */
	long max_deliveries;
	int follow, ack;
	sigset_t waitmask; /* the mask while waiting: the signals unblocked */
	redisContext *ctx;
	int warned; /* an outage was reported and not yet its end */
	struct cm_out out;
	struct cm_jdoc doc;
	struct cm_event_view view;
	struct cm_buf scratch;
	int last_rx;       /* the outcome of the last dl_get */
	const char **ackv; /* --ack: the ids written since the last XACK */
	size_t nack;
	unsigned long long emitted, dead, deleted;
	struct cm_wmetrics *wm; /* the worker's metrics: consumed, dead, errors */
};

/* Outcome of a Redis exchange. */
enum {
	RX_OK = 0,
	RX_LOST = -1,        /* connection gone (dropped) or transient refusal: retry */
	RX_STOP = -2,        /* a signal arrived while waiting */
	RX_FATAL = -3,       /* Redis refused for good (reported) */
	RX_NOGROUP = -4,     /* the group (or stream) vanished: create it again */
	RX_UNREACHABLE = -5, /* unreachable for --retry-for (reported) */
	RX_SYSTEM = -6,      /* out of memory (reported) */
};

/* Drops the connection; the next loop turn reconnects. */
static int drop(struct con *p, const char *why)
{
	cm_wmetrics_add(p->wm, CM_WM_ERRORS, 1);
	if (!p->warned)
		cm_warn("%s: %s; reconnecting", p->url.safe, why);
	p->warned = 1;
	if (p->ctx)
		redisFree(p->ctx);
	p->ctx = NULL;
	return RX_LOST;
}

/* Waits for the next reply, writing out queued commands first. The wait is a
 * ppoll with SIGTERM/SIGINT unblocked, so a signal ends it at once (the
 * connection is then dropped: a read left in flight only leaves entries
 * pending, which the next start re-reads). */
static int get_reply(struct con *p, redisReply **out, int64_t timeout_ms)
{
	void *r = NULL;
	int done = 0;
	int64_t deadline = cm_mono_ms() + timeout_ms, left;

	*out = NULL;
	if (redisGetReplyFromReader(p->ctx, &r) != REDIS_OK)
		return drop(p, p->ctx->errstr);
	while (!r) {
		struct pollfd pfd = {p->ctx->fd, POLLIN, 0};
		struct timespec ts;
		int n;

		while (!done)
			if (redisBufferWrite(p->ctx, &done) != REDIS_OK)
				return drop(p, p->ctx->errstr);
		if (stop_flag) {
			redisFree(p->ctx);
			p->ctx = NULL;
			return RX_STOP;
		}
		left = deadline - cm_mono_ms();
		if (left <= 0)
			return drop(p, "no reply in time");
		ts.tv_sec = left / 1000;
		ts.tv_nsec = (left % 1000) * 1000000;
		n = ppoll(&pfd, 1, &ts, &p->waitmask);
		if (n < 0 && errno != EINTR)
			return drop(p, strerror(errno));
		if (n <= 0)
			continue;
		if (redisBufferRead(p->ctx) != REDIS_OK ||
		    redisGetReplyFromReader(p->ctx, &r) != REDIS_OK)
			return drop(p, p->ctx->errstr[0] ? p->ctx->errstr : "connection lost");
	}
	*out = r;
	return RX_OK;
}

/* Classifies an error reply: NOGROUP or UNBLOCKED means the stream was
 * deleted under us, LOADING and the like mean wait, anything else is for a
 * human. */
static int reply_error(struct con *p, redisReply *r, const char *what)
{
	int rc;

	if ((r->len >= 7 && memcmp(r->str, "NOGROUP", 7) == 0) ||
	    (r->len >= 9 && memcmp(r->str, "UNBLOCKED", 9) == 0)) {
		/* UNBLOCKED: the stream was deleted while we waited on it. */
		rc = RX_NOGROUP;
	} else if (cm_redis_error_transient(r->str, r->len)) {
		if (!p->warned)
			cm_warn("%s: %s: %.200s; retrying", p->url.safe, what, r->str);
		p->warned = 1;
		rc = RX_LOST;
	} else {
		cm_warn("%s: %s: %.300s", p->url.safe, what, r->str);
		rc = RX_FATAL;
	}
	freeReplyObject(r);
	return rc;
}

/* Sends one command and waits for its reply (errors classified). */
static int command(struct con *p, int argc, const char **argv, const size_t *lens, redisReply **out,
                   int64_t timeout_ms)
{
	int rc;

	*out = NULL;
	if (redisAppendCommandArgv(p->ctx, argc, argv, lens) != REDIS_OK)
		return drop(p, p->ctx->errstr);
	rc = get_reply(p, out, timeout_ms);
	if (rc == RX_OK && (*out)->type == REDIS_REPLY_ERROR) {
		rc = reply_error(p, *out, argv[0]);
		*out = NULL;
	}
	return rc;
}

/* Creates the group (and the stream) when missing: from id 0, so that
 * events published before the first worker started are processed too. */
static int create_group(struct con *p)
{
	const char *argv[] = {"XGROUP", "CREATE", p->key, p->group, "0", "MKSTREAM"};
	redisReply *r = NULL;
	int rc;

	if (redisAppendCommandArgv(p->ctx, 6, argv, NULL) != REDIS_OK)
		return drop(p, p->ctx->errstr);
	rc = get_reply(p, &r, CM_REDIS_IO_MS);
	if (rc != RX_OK)
		return rc;
	if (r->type == REDIS_REPLY_ERROR && !(r->len >= 9 && memcmp(r->str, "BUSYGROUP", 9) == 0))
		return reply_error(p, r, "XGROUP CREATE");
	freeReplyObject(r);
	return RX_OK;
}

/* Connects and makes sure the group exists: one attempt (run waits and
 * tries again while the outage lasts no longer than --retry-for). A refused
 * AUTH or SELECT is for a human, not for waiting. */
static int connect_ready(struct con *p)
{
	struct cm_err err = {"", 0};
	int rc;

	p->ctx = cm_redis_connect_url(&p->url, &err);
	if (!p->ctx) {
		if (err.code == CM_EXIT_REFUSED || err.code == CM_EXIT_SYSTEM) {
			cm_warn("%s", err.msg);
			return err.code == CM_EXIT_REFUSED ? RX_FATAL : RX_SYSTEM;
		}
		if (!p->warned)
			cm_warn("%s; retrying", err.msg);
		p->warned = 1;
		return RX_LOST;
	}
	rc = create_group(p);
	if (rc == RX_OK && p->warned) {
		cm_warn("%s: connected", p->url.safe);
		p->warned = 0;
	}
	return rc;
}

/* get_reply as cm_redis_dead_letter reads replies; the RX_ outcome is kept
 * in p->last_rx, since a failure may have dropped the connection. */
static int dl_get(void *ctx, redisContext *c, redisReply **reply, struct cm_err *err)
{
	struct con *p = ctx;

	(void)c;
	p->last_rx = get_reply(p, reply, CM_REDIS_IO_MS);
	if (p->last_rx == RX_OK)
		return REDIS_OK;
	cm_errf(err, "%s", p->last_rx == RX_STOP ? "interrupted" : "connection lost");
	return REDIS_ERR;
}

/* What a failed cm_redis_dead_letter or cm_redis_xack (rc) means here: the
 * connection is gone (dl_get has said so), or Redis refused (classified as
 * every reply is). */
static int helper_failed(struct con *p, int rc, redisReply *refusal, const struct cm_err *err,
                         const char *what)
{
	if (rc == CM_REDIS_IO)
		return p->last_rx != RX_OK ? p->last_rx : drop(p, err->msg);
	if (refusal)
		return reply_error(p, refusal, what);
	cm_warn("%s", err->msg);
	return err->code == CM_EXIT_UNREACHABLE ? RX_LOST : RX_FATAL;
}

/* Moves an entry to KEY:dead with the reason and acknowledges it, both in
 * one MULTI/EXEC (cm_redis_dead_letter, shared with cm-store). */
static int dead_letter(struct con *p, const char *id, const char *data, size_t dlen,
                       const char *reason, long long deliveries)
{
	const struct cm_redis_dead e = {
	    .key = p->key,
	    .dead_key = p->dead_key.data,
	    .group = p->group,
	    .id = id,
	    .data = data,
	    .data_len = dlen,
	    .reason = reason,
	    .consumer = p->consumer,
	    .deliveries = deliveries,
	};
	redisReply *refusal;
	struct cm_err err;
	int rc;

	p->last_rx = RX_OK;
	rc = cm_redis_dead_letter(p->ctx, &e, dl_get, p, &refusal, &err);
	if (rc < 0)
		return helper_failed(p, rc, refusal, &err, "dead-lettering (MULTI/EXEC)");
	cm_warn("%s %s: %s; moved to %s", p->key, id, reason, p->dead_key.data);
	p->dead++;
	cm_wmetrics_add(p->wm, CM_WM_DEAD, 1);
	return RX_OK;
}

/* Acknowledges ids[0..n) (cm_redis_xack, shared with cm-store). */
static int ack(struct con *p, const char *const *ids, size_t n)
{
	redisReply *refusal;
	struct cm_err err;
	int rc;

	p->last_rx = RX_OK;
	rc = cm_redis_xack(p->ctx, p->key, p->group, ids, NULL, n, dl_get, p, NULL, &refusal, &err);
	return rc < 0 ? helper_failed(p, rc, refusal, &err, "XACK") : RX_OK;
}

/* Acknowledges one entry (one whose data was trimmed or deleted). */
static int ack_one(struct con *p, const char *id)
{
	return ack(p, &id, 1);
}

/* Acknowledges the entries written since the last call (--ack). */
static int ack_written(struct con *p)
{
	size_t n = p->nack;

	p->nack = 0;
	return n ? ack(p, p->ackv, n) : RX_OK;
}

/* Writes the event with "_stream_id" as its last key; an old _stream_id in
 * the data (from an earlier trip through a stream) is left out. */
static int emit(struct con *p, const char *id, size_t idlen)
{
	const struct cm_jdoc *d = &p->doc;
	const struct cm_jtok *root = &d->tok[0];
	int rc = 0, members = root->count > 0;

	if (cm_json_get(d, 0, "_stream_id", 10) == CM_JNONE) {
		/* The object's text up to its closing brace. */
		rc |= cm_out_write(&p->out, d->src + root->off, root->len - 1);
	} else {
		/* Without the stale id, up to the closing brace. */
		cm_buf_reset(&p->scratch);
		rc |= cm_stream_event_compact(d, &p->scratch);
		if (rc == 0)
			rc |= cm_out_write(&p->out, p->scratch.data, p->scratch.len - 1);
		members = p->scratch.len > 2;
	}
	if (members)
		rc |= cm_out_write(&p->out, ",", 1);
	rc |= cm_out_write(&p->out, "\"_stream_id\":\"", 14);
	rc |= cm_out_write(&p->out, id, idlen);
	rc |= cm_out_write(&p->out, "\"}", 2);
	rc |= cm_out_endrec(&p->out);
	return rc ? -1 : 0;
}

/* The value of field name in an entry's flat field array, or NULL. */
static const redisReply *field(const redisReply *fields, const char *name)
{
	size_t i, n = strlen(name);

	for (i = 0; i + 1 < fields->elements; i += 2) {
		const redisReply *k = fields->element[i];

		if (k->type == REDIS_REPLY_STRING && k->len == n && memcmp(k->str, name, n) == 0)
			return fields->element[i + 1];
	}
	return NULL;
}

/* Looks up the delivery counts of entries (pipelined XPENDING key group id id
 * 1), for those re-read or claimed: only they can have been delivered
 * before. */
static int delivery_counts(struct con *p, redisReply **ents, size_t n, long long *counts)
{
	size_t i;
	int rc = RX_OK;

	for (i = 0; i < n; i++) {
		const char *id = ents[i]->element[0]->str;
		const char *argv[] = {"XPENDING", p->key, p->group, id, id, "1"};

		counts[i] = 1;
		if (redisAppendCommandArgv(p->ctx, 6, argv, NULL) != REDIS_OK)
			return drop(p, p->ctx->errstr);
	}
	for (i = 0; i < n; i++) {
		redisReply *r = NULL;
		int g = get_reply(p, &r, CM_REDIS_IO_MS);

		if (g != RX_OK)
			return g;
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
		    r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 4 &&
		    r->element[0]->element[3]->type == REDIS_REPLY_INTEGER)
			counts[i] = r->element[0]->element[3]->integer;
		else if (r->type == REDIS_REPLY_ERROR && rc == RX_OK)
			rc = RX_LOST; /* checked again at the next delivery */
		freeReplyObject(r);
	}
	return rc;
}

/* Handles a batch of entries ([id, fields] pairs): writes the events, acks
 * the deleted ones, dead-letters poison and the too often delivered.
 * known_new: the entries were never delivered before (read with ">"). */
static int handle_entries(struct con *p, redisReply **ents, size_t n, int known_new)
{
	long long *counts = NULL;
	struct cm_err err;
	char reason[sizeof(err.msg) + 32];
	size_t i;
	int rc = RX_OK;

	if (n == 0)
		return RX_OK;
	counts = calloc(n, sizeof(*counts));
	if (!counts) {
		cm_warn("out of memory");
		return RX_SYSTEM;
	}
	if (!known_new && (rc = delivery_counts(p, ents, n, counts)) != RX_OK)
		goto out;
	for (i = 0; i < n; i++) {
		const redisReply *e = ents[i], *data;
		const char *id;
		long long dc = known_new ? 1 : counts[i];

		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
		    e->element[0]->type != REDIS_REPLY_STRING)
			continue;
		id = e->element[0]->str;
		if (e->element[1]->type != REDIS_REPLY_ARRAY) {
			/* The entry's data was trimmed or deleted: nothing to do. */
			if ((rc = ack_one(p, id)) != RX_OK)
				goto out;
			cm_warn("%s %s: entry was deleted from the stream; acknowledged", p->key,
			        id);
			p->deleted++;
			continue;
		}
		data = field(e->element[1], CM_REDIS_FIELD);
		if (!data || data->type != REDIS_REPLY_STRING) {
			rc = dead_letter(p, id, "", 0,
			                 "not an event: no '" CM_REDIS_FIELD "' field", dc);
		} else if (cm_event_parse(&p->doc, data->str, data->len, &p->view, &err) < 0) {
			snprintf(reason, sizeof(reason), "not an event: %s", err.msg);
			rc = dead_letter(p, id, data->str, data->len, reason, dc);
		} else if (dc > p->max_deliveries) {
			snprintf(reason, sizeof(reason), "delivered %lld times", dc);
			rc = dead_letter(p, id, data->str, data->len, reason, dc);
		} else {
			if (emit(p, id, e->element[0]->len) < 0)
				break;
			p->emitted++;
			cm_wmetrics_add(p->wm, CM_WM_CONSUMED, 1);
			if (p->ack)
				p->ackv[p->nack++] = id;
		}
		if (rc != RX_OK)
			goto out;
	}
	if (cm_out_flush(&p->out) == 0 && p->ack)
		rc = ack_written(p);
out:
	p->nack = 0;
	free(counts);
	return rc;
}

/* One XREADGROUP: id "0"-style (own pending, after cursor) or ">" (new). Sets
 * *got to the number of entries seen; the last id read goes to cursor. */
static int read_group(struct con *p, char *cursor, int new_entries, int64_t block, size_t *got)
{
	char countv[24], blockv[24];
	const char *argv[12];
	redisReply *r = NULL, *ents;
	int argc = 0, rc;

	*got = 0;
	snprintf(countv, sizeof(countv), "%ld", p->count);
	snprintf(blockv, sizeof(blockv), "%lld", (long long)block);
	argv[argc++] = "XREADGROUP";
	argv[argc++] = "GROUP";
	argv[argc++] = p->group;
	argv[argc++] = p->consumer;
	argv[argc++] = "COUNT";
	argv[argc++] = countv;
	if (block > 0) {
		argv[argc++] = "BLOCK";
		argv[argc++] = blockv;
	}
	argv[argc++] = "STREAMS";
	argv[argc++] = p->key;
	argv[argc++] = new_entries ? ">" : cursor;
	rc = command(p, argc, argv, NULL, &r, block + CM_REDIS_IO_MS);
	if (rc != RX_OK)
		return rc;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
	    r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
	    r->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
		ents = r->element[0]->element[1];
		*got = ents->elements;
		if (*got > 0) {
			const redisReply *last = ents->element[*got - 1];

			if (last->type == REDIS_REPLY_ARRAY && last->elements == 2 &&
			    last->element[0]->type == REDIS_REPLY_STRING &&
			    last->element[0]->len < CM_STREAM_ID_MAX)
				memcpy(cursor, last->element[0]->str, last->element[0]->len + 1);
		}
		rc = handle_entries(p, ents->element, ents->elements, new_entries);
	}
	freeReplyObject(r);
	return rc;
}

/* Takes over entries that other consumers left idle longer than
 * --claim-idle (XAUTOCLAIM, a full scan of the pending list). */
static int claim_idle(struct con *p)
{
	char cursor[CM_STREAM_ID_MAX] = "0-0", idle[24], countv[24];
	int rc = RX_OK;

	snprintf(idle, sizeof(idle), "%lld", (long long)p->claim_idle);
	snprintf(countv, sizeof(countv), "%ld", p->count);
	do {
		const char *argv[] = {"XAUTOCLAIM", p->key, p->group, p->consumer,
		                      idle,         cursor, "COUNT",  countv};
		redisReply *r = NULL;
		size_t i;

		rc = command(p, 8, argv, NULL, &r, CM_REDIS_IO_MS);
		if (rc != RX_OK)
			return rc;
		if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[0]->len >= CM_STREAM_ID_MAX ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			freeReplyObject(r);
			cm_warn("%s: XAUTOCLAIM: unexpected reply", p->url.safe);
			return RX_FATAL;
		}
		memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
		/* Redis 7 lists the ids whose data is gone (and already drops
		 * them from the pending list): count them. */
		if (r->elements > 2 && r->element[2]->type == REDIS_REPLY_ARRAY)
			for (i = 0; i < r->element[2]->elements && rc == RX_OK; i++) {
				const redisReply *d = r->element[2]->element[i];

				if (d->type != REDIS_REPLY_STRING)
					continue;
				rc = ack_one(p, d->str);
				cm_warn("%s %s: entry was deleted from the stream; acknowledged",
				        p->key, d->str);
				p->deleted++;
			}
		if (rc == RX_OK && r->element[1]->elements > 0)
			rc = handle_entries(p, r->element[1]->element, r->element[1]->elements, 0);
		freeReplyObject(r);
	} while (rc == RX_OK && strcmp(cursor, "0-0") != 0 && !stop_flag && !p->out.closed);
	return rc;
}

/* Trims what every group has acknowledged; a failure is reported, not fatal
 * (the next interval tries again). */
static void trim(struct con *p)
{
	struct cm_err err;

	if (!p->ctx)
		return;
	if (cm_redis_trim_safe(p->ctx, p->key, NULL, &err) < 0) {
		if (p->ctx->err)
			drop(p, err.msg);
		else
			cm_warn("%s: %s", p->url.safe, err.msg);
	}
}

/* Waits before the next attempt after a failed exchange, on the one backoff
 * (retry.h) started at the first failure of an outage; RX_UNREACHABLE once
 * the outage has lasted --retry-for, RX_STOP for a signal. */
static int retry_wait(struct con *p, struct cm_backoff *bo, int *failing)
{
	if (!*failing)
		cm_backoff_start(bo, p->retry_ms);
	*failing = 1;
	if (stop_flag)
		return RX_STOP;
	if (cm_backoff_wait(bo, &p->waitmask) < 0) {
		cm_warn("%s: unreachable for %lld s; giving up", p->url.safe,
		        (long long)(p->retry_ms / 1000));
		return RX_UNREACHABLE;
	}
	return stop_flag ? RX_STOP : RX_OK;
}

/* The main loop: own pending entries first, then claims and new entries. */
static int run(struct con *p)
{
	char cursor[CM_STREAM_ID_MAX] = "0";
	int64_t next_claim = 0, next_trim = cm_mono_ms() + p->trim_ms, now;
	int pending_phase = 1, rc = RX_OK, failing = 0;
	struct cm_backoff bo;
	size_t got;

	while (!stop_flag && !p->out.closed && !p->out.error) {
		if (!p->ctx) {
			/* Whatever was in flight is pending on us now. */
			pending_phase = 1;
			snprintf(cursor, sizeof(cursor), "0");
			rc = connect_ready(p);
		}
		if (p->ctx && rc == RX_OK) {
			now = cm_mono_ms();
			if (!pending_phase && p->claim_idle > 0 && now >= next_claim) {
				rc = claim_idle(p);
				next_claim =
				    now + (p->claim_idle / 2 > 100 ? p->claim_idle / 2 : 100);
			} else if (p->follow && p->trim_ms > 0 && now >= next_trim) {
				trim(p);
				next_trim = now + p->trim_ms;
			} else if (pending_phase) {
				rc = read_group(p, cursor, 0, 0, &got);
				if (rc == RX_OK && got == 0)
					pending_phase = 0;
			} else {
				rc = read_group(p, cursor, 1, p->follow ? p->block_ms : 0, &got);
				if (rc == RX_OK && got == 0 && !p->follow)
					break;
			}
			if (rc == RX_OK)
				failing = 0;
		}
		if (rc == RX_NOGROUP) {
			/* The stream was deleted: reconnecting creates it again. */
			drop(p, "the consumer group vanished");
			rc = RX_OK;
		} else if (rc == RX_LOST) {
			/* Entries of the failed exchange may be pending on us
			 * unseen: read the own pending list again. */
			pending_phase = 1;
			snprintf(cursor, sizeof(cursor), "0");
			rc = retry_wait(p, &bo, &failing);
		}
		if (rc == RX_STOP) {
			rc = RX_OK;
			break;
		}
		if (rc != RX_OK)
			break;
	}
	if (rc == RX_OK && !p->follow && p->trim_ms > 0 && !stop_flag)
		trim(p);
	return rc;
}

enum {
	OPT_COUNT = 256,
	OPT_BLOCK,
	OPT_FOLLOW,
	OPT_CLAIM,
	OPT_MAXDEL,
	OPT_ACK,
	OPT_TRIM,
};

/* The exit status for what ended run (CONTRACT section 2). */
static int exit_status(int rc)
{
	switch (rc) {
	case RX_OK:
		return CM_EXIT_OK;
	case RX_UNREACHABLE:
		return CM_EXIT_UNREACHABLE;
	case RX_SYSTEM:
		return CM_EXIT_SYSTEM;
	default:
		return CM_EXIT_REFUSED;
	}
}

/* Parses the options into p; exits on --help, --version and usage errors. */
static void parse_options(struct con *p, int argc, char **argv)
{
	static const struct option opts[] = {
	    CM_OPTION_REDIS,
	    CM_OPTION_STREAM,
	    CM_OPTION_GROUP,
	    CM_OPTION_CONSUMER,
	    {"count", required_argument, NULL, OPT_COUNT},
	    {"block", required_argument, NULL, OPT_BLOCK},
	    {"follow", no_argument, NULL, OPT_FOLLOW},
	    {"claim-idle", required_argument, NULL, OPT_CLAIM},
	    {"max-deliveries", required_argument, NULL, OPT_MAXDEL},
	    {"ack", no_argument, NULL, OPT_ACK},
	    {"trim-interval", required_argument, NULL, OPT_TRIM},
	    CM_OPTION_RETRY_FOR,
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct cm_err err;
	int c;

	p->opt.stream = CM_REDIS_DEFAULT_STREAM;
	p->opt.group = CM_REDIS_DEFAULT_GROUP;
	p->opt.retry_ms = -1; /* not given: 30 s, with --follow forever */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
		switch (c) {
		case OPT_COUNT:
			p->count = (long)cm_opts_int("count", optarg, 1, 100000, "a number");
			break;
		case OPT_BLOCK:
			p->block_ms = cm_opts_int("block", optarg, 1, 3600000, "milliseconds");
			break;
		case OPT_FOLLOW:
			p->follow = 1;
			break;
		case OPT_CLAIM:
			p->claim_idle =
			    cm_opts_int("claim-idle", optarg, 0, INT64_C(1) << 40, "milliseconds");
			break;
		case OPT_MAXDEL:
			p->max_deliveries =
			    (long)cm_opts_int("max-deliveries", optarg, 1, 1000000, "a number");
			break;
		case OPT_ACK:
			p->ack = 1;
			break;
		case OPT_TRIM:
			p->trim_ms =
			    cm_opts_int("trim-interval", optarg, 0, CM_RETRY_FOR_MAX, "seconds") *
			    1000;
			break;
		default:
			cm_opts_default(&p->opt, c, optarg, argc, argv, usage_text);
		}
	}
	if (optind < argc)
		cm_usage_error("unexpected argument '%s' (cm-consume reads no files)",
		               argv[optind]);
	if (cm_redis_url_parse(cm_opts_redis(&p->opt), &p->url, &err) < 0)
		cm_usage_error("--redis: %s", err.msg);
	p->key = p->opt.stream;
	p->group = p->opt.group;
	p->retry_ms = p->opt.retry_ms >= 0 ? p->opt.retry_ms : p->follow ? -1 : 30000;
	cm_opts_consumer(&p->opt, p->consumer, sizeof(p->consumer));
}

int main(int argc, char **argv)
{
	struct con p;
	struct sigaction sa;
	sigset_t block;
	int status = CM_EXIT_OK;

	cm_cli_init(argv[0]);
	memset(&p, 0, sizeof(p));
	p.count = 500;
	p.block_ms = 2000;
	p.claim_idle = 60000;
	p.max_deliveries = 5;
	p.trim_ms = 10000;
	parse_options(&p, argc, argv);

	/* SIGTERM/SIGINT stay blocked except while waiting in ppoll, so that a
	 * signal can only interrupt a wait, never a half-written record. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &p.waitmask);
	sigdelset(&p.waitmask, SIGTERM);
	sigdelset(&p.waitmask, SIGINT);

	cm_out_init(&p.out, 1);
	cm_jdoc_init(&p.doc, 0);
	cm_buf_init(&p.scratch, 0);
	cm_buf_init(&p.dead_key, 0);
	p.ackv = calloc((size_t)p.count, sizeof(*p.ackv));
	if (!p.ackv || cm_buf_adds(&p.dead_key, p.key) < 0 ||
	    cm_buf_adds(&p.dead_key, CM_REDIS_DEAD_SUFFIX) < 0) {
		cm_warn("out of memory");
		status = CM_EXIT_SYSTEM;
		goto out;
	}

	p.wm = cm_opts_metrics(&p.opt, cm_opts_redis(&p.opt));
	status = exit_status(run(&p));
	if (p.dead || p.deleted)
		cm_warn("%llu written, %llu dead-lettered, %llu deleted ones acknowledged",
		        p.emitted, p.dead, p.deleted);
out:
	if (cm_out_release(&p.out) < 0 && p.out.error && !p.out.closed) {
		cm_warn("standard output: %s", strerror(p.out.error));
		status = CM_EXIT_SYSTEM;
	}
	if (p.ctx)
		redisFree(p.ctx);
	cm_wmetrics_free(p.wm);
	free(p.ackv);
	cm_jdoc_release(&p.doc);
	cm_buf_release(&p.scratch);
	cm_buf_release(&p.dead_key);
	return status;
}
