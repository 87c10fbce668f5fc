/* cm-store.c - events (with their matches) and match lines into PostgreSQL,
 * idempotently, one transaction per batch; with --ack, each batch's stream
 * entries are acknowledged in Redis only after its COMMIT.
 *
 * The main thread reads lines, checks them with the one validator every
 * tool uses (cm_record_parse) and turns them into rows (storerow.h); full
 * batches go to storing threads, each with its own PostgreSQL connection
 * (and Redis connection for --ack), so that parsing, storing and the disk's
 * commit latency overlap. How a batch is stored (COPY, the staging fallback,
 * profiles and delivery limits in the same transaction, halving to isolate
 * bad rows, retrying) is storebatch.h's; this file is the options, the
 * threads, the input and the acknowledging.
 *
 * With --ack, a line that can never be stored (it fails the validator, or
 * the server refuses its row alone with a data error) is a poison entry: it
 * is moved to the dead-letter stream with the reason and acknowledged with
 * the batch (cm_redis_dead_letter), so that it does not stay pending and hold
 * back trimming until cm-consume gives up on it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "tool.h"
#include "err.h"
#include "event.h"
#include "json.h"
#include "lines.h"
#include "redisx.h"
#include "retry.h"
#include "storebatch.h"
#include "storerow.h"
#include "wmetrics.h"

#define BATCH_MAX_TEXT (64u << 20) /* flush early when the rows' text is this big */
#define CLOCK_EVERY    64          /* lines taken from the buffer between looks at the clock */
#define SID_MAX        (CM_STREAM_ID_MAX - 1)
#define MAX_CONNS      16

static const char usage_text[] =
    "Usage: cm-store [OPTION]... [FILE]...\n"
    "Store events (with their \"matches\") and match lines from NDJSON FILEs (or stdin)\n"
    "in PostgreSQL, idempotently, one transaction per batch; identify events update\n"
    "the users' profiles, and candidates of limited campaigns are decided (matched,\n"
    "holdout or capped) in the same transaction.\n"
    "\n"
    "  -d, --db CONNINFO     PostgreSQL conninfo or URI (default: $CM_DATABASE_URL)\n"
    "  -b, --batch N         lines per transaction (default 5000)\n"
    "      --flush-ms MS     store a partial batch once its first line is MS old\n"
    "                        (default 100)\n"
    "      --connections N   PostgreSQL connections storing batches in parallel\n"
    "                        (default 2)\n"
    "      --retry-for SECONDS  keep retrying an unreachable PostgreSQL or Redis this\n"
    "                        long before giving up with status 3 (default 60)\n"
    "      --ack             XACK each line's _stream_id after its batch commits\n"
    "      --redis URL       Redis for --ack (default: $CM_REDIS_URL, redis://127.0.0.1:6379)\n"
    "      --stream KEY      stream of the entries (default cm:events)\n"
    "      --group NAME      consumer group to acknowledge in (default cm-workers)\n"
    "      --consumer NAME   with --ack: the worker whose metrics this stage reports\n"
    "                        to Redis (default HOSTNAME-$CM_WORKER_ID, else HOSTNAME-1)\n"
    "      --max-line SIZE   longest line accepted (default 16M: the longest event\n"
    "                        cm-ingest writes, with matches from many campaigns)\n"
    "      --stats           print counts and the rate on stderr at the end\n"
    "  -h, --help            show this help and exit\n"
    "  -V, --version         show the version and exit\n"
    "\n"
    "Exit status: 0 all stored, 1 some lines rejected (reported), 2 usage or\n"
    "configuration error, 3 PostgreSQL or Redis unreachable for --retry-for,\n"
    "4 PostgreSQL or Redis refused a request that retrying cannot fix, 5 a read\n"
    "error or no memory.\n";

/* The tool's side of a row of the batch: its stream id and where it came
 * from; with --ack also the line as read and, for poison, why, to
 * dead-letter it. */
struct meta {
	size_t sid_off;  /* in batch.sids */
	size_t text_off; /* in batch.text: the line */
	size_t why_off;  /* in batch.text: why it is poison */
	uint32_t text_len, why_len;
	uint16_t sid_len; /* 0: nothing to acknowledge */
	uint8_t buried;   /* dead-lettered and acknowledged */
	const char *file;
	unsigned long line;
};

struct batch {
	struct cm_store_batch sb; /* the rows (storebatch.h) */
	struct meta *meta;        /* one per row */
	size_t cap;
	struct cm_buf sids; /* the rows' stream ids, back to back */
	struct cm_buf text; /* --ack: the lines as read and the poison's reasons */
	int64_t first_ms;   /* when the first row was read (cm_mono_ms) */
};

/* The main thread's and a storing thread's counts of the tool's part. */
struct stats {
	unsigned long long lines, events, matches, limited, identify, rejected;
	unsigned long long acked, dead, retries;
};

struct store;

/* A storing thread: its connections and the batch it is storing. */
struct conn {
	struct store *s;
	pthread_t thread;
	int started;
	struct cm_store_conn db; /* PostgreSQL (storebatch.h) */
	redisContext *redis;
	struct batch *b;     /* under s->mu: the batch to store, NULL when idle */
	struct batch *spare; /* under s->mu: an empty batch, when idle */
	struct stats st;     /* this thread's counts, read after it ended */
	int outage;          /* a Redis retry is under way: said once */
	int exit_code;       /* why it gave up */
};

struct store {
	/* options, fixed before the threads start */
	struct cm_common_opts opt;
	const char *conninfo, *redis_url;
	struct cm_buf dead_key; /* stream + CM_REDIS_DEAD_SUFFIX */
	int ack, show_stats, nconns;
	size_t batch_max;
	int64_t flush_ms;
	/* the main thread's */
	struct cm_jdoc doc;
	struct cm_event_view view;
	struct cm_storerow sr;
	struct batch *cur; /* the batch being filled */
	struct stats st;
	/* shared with the storing threads */
	struct conn conns[MAX_CONNS];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int wake[2];            /* a storing thread that gives up writes here */
	int closing;            /* under mu: no more batches will come */
	int failed;             /* under mu: the exit status of a thread that gave up */
	struct cm_wmetrics *wm; /* with --ack: the worker's metrics (thread-safe) */
};

/* Signals seen: the first stops reading, the second stops retrying. */
static volatile sig_atomic_t signals;
/* The signal mask with SIGTERM and SIGINT open: they are blocked except while
 * waiting for input or sleeping, so that none is lost between a check of
 * `signals` and a blocking read. */
static sigset_t open_mask;

/* Counts SIGTERM and SIGINT; the main loop decides what they mean. */
static void on_signal(int sig)
{
	(void)sig;
	if (signals < 2)
		signals++;
}

/* --- staging a line ---------------------------------------------------- */

/* Adds the tool's record of row b->sb.n - 1 (just added): its stream id,
 * and with --ack the line and, for poison, why. */
static int add_meta(struct store *s, const char *line, size_t len, const char *sid, size_t sid_len,
                    const char *why, const char *file, unsigned long lineno)
{
	struct batch *b = s->cur;
	size_t i = b->sb.n - 1, sid_mark = b->sids.len, text_mark = b->text.len;
	size_t why_len = why ? strlen(why) : 0;
	struct meta *m;

	if (i >= b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1024;
		struct meta *p = realloc(b->meta, cap * sizeof(*p));
		if (!p)
			return -1;
		b->meta = p;
		b->cap = cap;
	}
	if (len > UINT32_MAX || (sid_len && cm_buf_add(&b->sids, sid, sid_len) < 0))
		goto oom;
	if (s->ack &&
	    (cm_buf_add(&b->text, line, len) < 0 || cm_buf_add(&b->text, why, why_len) < 0))
		goto oom;
	m = &b->meta[i];
	m->sid_off = sid_mark;
	m->sid_len = (uint16_t)sid_len;
	m->text_off = text_mark;
	m->text_len = s->ack ? (uint32_t)len : 0;
	m->why_off = text_mark + m->text_len;
	m->why_len = s->ack ? (uint32_t)why_len : 0;
	m->buried = 0;
	m->file = file;
	m->line = lineno;
	if (b->sb.n == 1)
		b->first_ms = cm_mono_ms();
	return 0;
oom:
	b->sids.len = sid_mark;
	b->text.len = text_mark;
	return -1;
}

/* Finds the parsed line's _stream_id for --ack: *sid and *len stay NULL and
 * 0 when there is none; a malformed one is -1 (with err, when given). */
static int stream_id_of(struct store *s, const char **sid, size_t *len, struct cm_err *err)
{
	const struct cm_jdoc *d = &s->doc;
	uint32_t t = cm_json_get(d, 0, "_stream_id", 10);
	struct cm_stream_id id;
	const struct cm_jtok *k;

	if (t == CM_JNONE)
		return 0;
	k = &d->tok[t];
	if (k->type != CM_JSTR || k->esc || k->len > SID_MAX ||
	    memchr(d->src + k->off, '-', k->len) == NULL ||
	    cm_stream_id_parse(d->src + k->off, k->len, &id) < 0)
		return cm_errf(err, "field '_stream_id': expected a stream entry id MS-SEQ");
	*sid = d->src + k->off;
	*len = k->len;
	return 0;
}

/* Turns one line into a row of the batch, or says what is wrong with it;
 * under --ack a line refused with a stream id becomes a poison row,
 * dead-lettered with the batch. err->code CM_EXIT_SYSTEM: out of memory. */
static int stage_line(struct store *s, const char *line, size_t len, const char *file,
                      unsigned long lineno, int no_newline, struct cm_err *err)
{
	struct batch *b = s->cur;
	const struct cm_jdoc *d = &s->doc;
	struct cm_storerow_counts n;
	size_t sid_len = 0;
	const char *sid = NULL;
	static const char poison[] = "not storable: ";
	char why[sizeof(poison) + sizeof(err->msg)];
	int bad;

	/* cm-store's entry path (ntok is 0 when the line did not parse) */
	bad = cm_record_parse(&s->doc, line, len, &s->view, err) < 0;
	if (bad && d->ntok == 0)
		return no_newline ? cm_errf(err, "truncated last line (no newline at the end of "
		                                 "the input): not stored")
		                  : -1;
	/* a malformed _stream_id is what is wrong only when nothing else is */
	if (s->ack && d->tok[0].type == CM_JOBJ &&
	    stream_id_of(s, &sid, &sid_len, bad ? NULL : err) < 0 && !bad)
		return -1;
	if (bad) {
		if (!sid_len || !strcmp(err->msg, "out of memory"))
			return -1; /* not poison: the line may be fine next time */
		snprintf(why, sizeof(why), "%s%s", poison, err->msg);
		if (cm_store_batch_skip(&b->sb, err) < 0)
			return -1;
		if (add_meta(s, line, len, sid, sid_len, why, file, lineno) < 0) {
			b->sb.n--;
			return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
		}
		return cm_errf(err, "%s (entry %.*s goes to %s)", why + sizeof(poison) - 1,
		               (int)sid_len, sid, s->dead_key.data);
	}
	if (cm_store_batch_add(&b->sb, &s->sr, d, &s->view, &n, err) < 0) {
		err->code = CM_EXIT_SYSTEM;
		return -1;
	}
	if (add_meta(s, line, len, sid, sid_len, NULL, file, lineno) < 0) {
		/* take the row back */
		const struct cm_store_row *r = &b->sb.rows[--b->sb.n];
		b->sb.out.ev.len = r->ev_off;
		b->sb.out.mt.len = r->mt_off;
		b->sb.out.lim.len = r->lim_off;
		b->sb.out.pf.len = r->pf_off;
		return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
	}
	s->st.events += n.events;
	s->st.matches += n.matches;
	s->st.limited += n.limited;
	s->st.identify += n.identify;
	return 0;
}

/* --- the storing threads' hooks ---------------------------------------- */

/* A PostgreSQL outage begins. */
static void on_retrying(void *ctx, const char *msg)
{
	const struct conn *c = ctx;

	cm_wmetrics_add(c->s->wm, CM_WM_ERRORS, 1);
	cm_warn("%s; retrying for up to %lld s", msg, (long long)(c->s->opt.retry_ms / 1000));
}

/* A PostgreSQL outage is over. */
static void on_back(void *ctx)
{
	(void)ctx;
	cm_warn("PostgreSQL is back: stored the batch");
}

/* Row i, which the server refused alone with a data error (so it never
 * will take it), is reported; with a stream id under --ack it becomes
 * poison, to be dead-lettered with the reason. */
static void on_refused(void *ctx, size_t i, const char *msg)
{
	struct conn *c = ctx;
	const struct store *s = c->s;
	struct batch *b = c->b;
	struct meta *m = &b->meta[i];
	size_t mark = b->text.len;

	c->st.rejected++;
	cm_wmetrics_add(s->wm, CM_WM_ERRORS, 1);
	if (s->ack && m->sid_len && cm_buf_adds(&b->text, "not storable: ") == 0 &&
	    cm_buf_adds(&b->text, msg) == 0) {
		m->why_off = mark;
		m->why_len = (uint32_t)(b->text.len - mark);
		b->sb.rows[i].state = CM_STORE_SKIP;
		cm_warn("%s:%lu: %s: not stored (entry %.*s goes to %s)", m->file, m->line, msg,
		        (int)m->sid_len, b->sids.data + m->sid_off, s->dead_key.data);
		return;
	}
	b->text.len = mark;
	cm_warn("%s:%lu: %s: not stored", m->file, m->line, msg);
}

/* True when retrying should end: a second signal. */
static int on_stop(void *ctx)
{
	(void)ctx;
	return signals >= 2;
}

/* --- Redis ------------------------------------------------------------- */

/* True when row i is poison still to be dead-lettered. */
static int is_poison(const struct batch *b, size_t i)
{
	return b->sb.rows[i].state == CM_STORE_SKIP && b->meta[i].why_len && !b->meta[i].buried;
}

/* Moves the batch's poison rows to the dead-letter stream, each with its
 * line and reason, acknowledging them there (cm_redis_dead_letter, as
 * cm-consume does); a row done is not done again on a retry. */
static int bury_poison(struct conn *c, struct batch *b, struct cm_err *err)
{
	const struct store *s = c->s;
	size_t i;

	for (i = 0; i < b->sb.n; i++) {
		struct meta *m = &b->meta[i];
		char id[CM_STREAM_ID_MAX];
		char why[sizeof(err->msg)];
		struct cm_redis_dead e;

		if (!is_poison(b, i))
			continue;
		snprintf(id, sizeof(id), "%.*s", (int)m->sid_len, b->sids.data + m->sid_off);
		snprintf(why, sizeof(why), "%.*s", (int)m->why_len, b->text.data + m->why_off);
		memset(&e, 0, sizeof(e));
		e.key = s->opt.stream;
		e.dead_key = s->dead_key.data;
		e.group = s->opt.group;
		e.id = id;
		e.data = b->text.data + m->text_off;
		e.data_len = m->text_len;
		e.reason = why;
		if (cm_redis_dead_letter(c->redis, &e, NULL, NULL, NULL, err) < 0)
			return -1;
		m->buried = 1;
		c->st.dead++;
		cm_wmetrics_add(s->wm, CM_WM_DEAD, 1);
	}
	return 0;
}

/* Acknowledges the committed rows' ids (cm_redis_xack), then buries the
 * poison; -1 with err->code saying whether a retry may help. */
static int redis_ack(struct conn *c, struct batch *b, struct cm_err *err)
{
	const struct store *s = c->s;
	const char **ids = NULL;
	size_t *lens = NULL, i, n = 0;
	long long acked;
	int rc = -1;

	ids = malloc(b->sb.n * sizeof(*ids));
	lens = malloc(b->sb.n * sizeof(*lens));
	if (!ids || !lens) {
		cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
		goto out;
	}
	for (i = 0; i < b->sb.n; i++)
		if (b->sb.rows[i].state == CM_STORE_STORED && b->meta[i].sid_len) {
			ids[n] = b->sids.data + b->meta[i].sid_off;
			lens[n++] = b->meta[i].sid_len;
		}
	if (cm_redis_xack(c->redis, s->opt.stream, s->opt.group, ids, lens, n, NULL, NULL, &acked,
	                  NULL, err) < 0)
		goto out;
	c->st.acked += (unsigned long long)acked;
	cm_wmetrics_add(s->wm, CM_WM_ACKED, (uint64_t)acked);
	rc = bury_poison(c, b, err);
out:
	free(ids);
	free(lens);
	return rc;
}

/* Acknowledges the batch, reconnecting on the one backoff for --retry-for:
 * the rows are committed, so acknowledging late (or twice) is harmless. */
static int ack_batch(struct conn *c, struct batch *b, struct cm_err *err)
{
	struct cm_backoff bo;
	size_t i;

	for (i = 0; i < b->sb.n; i++)
		if ((b->sb.rows[i].state == CM_STORE_STORED && b->meta[i].sid_len) ||
		    is_poison(b, i))
			break;
	if (i == b->sb.n)
		return 0;
	cm_backoff_start(&bo, c->s->opt.retry_ms);
	for (;;) {
		if (!c->redis)
			c->redis = cm_redis_connect(c->s->redis_url, err);
		if (c->redis && redis_ack(c, b, err) == 0) {
			if (c->outage)
				cm_warn("Redis is back: acknowledged the batch");
			c->outage = 0;
			return 0;
		}
		if (err->code != CM_EXIT_UNREACHABLE) {
			c->exit_code = err->code;
			return -1;
		}
		if (c->redis) {
			redisFree(c->redis);
			c->redis = NULL;
		}
		if (!c->outage) {
			cm_wmetrics_add(c->s->wm, CM_WM_ERRORS, 1);
			cm_warn("%s; retrying for up to %lld s (the rows are committed)", err->msg,
			        (long long)(c->s->opt.retry_ms / 1000));
		}
		c->outage = 1;
		if (signals >= 2 || cm_backoff_wait(&bo, &open_mask) < 0 || signals >= 2) {
			cm_err_prefix(err, "%s: ", signals >= 2 ? "interrupted" : "gave up");
			c->exit_code = CM_EXIT_UNREACHABLE;
			return -1;
		}
		c->st.retries++;
	}
}

/* --- batches and the storing threads ----------------------------------- */

/* A new, empty batch; its buffers grow as lines come. */
static struct batch *batch_new(void)
{
	struct batch *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	cm_store_batch_init(&b->sb);
	cm_buf_init(&b->sids, 0);
	cm_buf_init(&b->text, 0);
	return b;
}

/* Empties a batch for reuse, keeping its memory. */
static void batch_reset(struct batch *b)
{
	cm_store_batch_reset(&b->sb);
	cm_buf_reset(&b->sids);
	cm_buf_reset(&b->text);
}

/* Frees a batch and everything in it (NULL is fine). */
static void batch_free(struct batch *b)
{
	if (!b)
		return;
	cm_store_batch_release(&b->sb);
	cm_buf_release(&b->sids);
	cm_buf_release(&b->text);
	free(b->meta);
	free(b);
}

/* Counts a committed batch in the worker's metrics: its events stored, and
 * for each stream entry the time from its publication (the id's time) to
 * now, its commit (once for the match lines of one entry, which follow each
 * other). */
static void count_committed(struct store *s, const struct batch *b)
{
	const char *last = NULL;
	size_t lastlen = 0;
	uint64_t events = 0;
	size_t i;

	for (i = 0; i < b->sb.n; i++) {
		const struct cm_store_row *row = &b->sb.rows[i];
		const struct meta *m = &b->meta[i];
		const char *sid;
		struct cm_stream_id id;

		if (row->state != CM_STORE_STORED)
			continue;
		events += row->ev_len > 0;
		if (!m->sid_len)
			continue;
		sid = b->sids.data + m->sid_off;
		if (m->sid_len == lastlen && memcmp(sid, last, lastlen) == 0)
			continue;
		last = sid;
		lastlen = m->sid_len;
		if (cm_stream_id_parse(sid, m->sid_len, &id) == 0)
			cm_wmetrics_latency_id(s->wm, &id);
	}
	cm_wmetrics_add(s->wm, CM_WM_STORED, events);
}

/* Commits a batch (isolating rows the server refuses), then acknowledges
 * what was committed; -1 with c->exit_code when giving up. */
static int store_batch(struct conn *c, struct batch *b)
{
	const struct meta *m0 = &b->meta[0], *m1 = &b->meta[b->sb.n - 1];
	struct cm_err err;

	if (cm_store_batch_store(&c->db, &b->sb, &err) < 0) {
		c->exit_code = err.code;
		goto fail;
	}
	if (c->s->wm)
		count_committed(c->s, b);
	if (c->s->ack && ack_batch(c, b, &err) < 0)
		goto fail;
	return 0;
fail:
	cm_warn("%s", err.msg);
	cm_warn("a batch of %zu lines (%s:%lu-%lu) was %s", b->sb.n, m0->file, m0->line, m1->line,
	        b->sb.rows[0].state == CM_STORE_STORED ? "stored but not acknowledged"
	                                               : "neither stored nor acknowledged");
	return -1;
}

/* A storing thread: takes batches until the main thread closes, and stops
 * at the first batch it gives up on. */
static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct store *s = c->s;
	struct batch *b;
	int rc;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!c->b && !s->closing)
			pthread_cond_wait(&s->cv, &s->mu);
		b = c->b;
		if (!b)
			break;
		pthread_mutex_unlock(&s->mu);
		rc = store_batch(c, b);
		batch_reset(b);
		pthread_mutex_lock(&s->mu);
		c->b = NULL;
		c->spare = b;
		if (rc < 0 && !s->failed) {
			s->failed = c->exit_code ? c->exit_code : CM_EXIT_REFUSED;
			/* Wake the main thread, which may be waiting for input. */
			if (write(s->wake[1], "x", 1) < 0)
				cm_warn("waking the reader: %s", strerror(errno));
		}
		pthread_cond_broadcast(&s->cv);
		if (rc < 0)
			break;
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Hands the current batch to an idle storing thread and takes its empty one
 * in exchange, waiting while all are busy; -1 once a thread has given up. */
static int hand_over(struct store *s)
{
	int i;

	if (s->cur->sb.n == 0)
		return 0;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		if (s->failed) {
			pthread_mutex_unlock(&s->mu);
			return -1;
		}
		for (i = 0; i < s->nconns; i++) {
			struct conn *c = &s->conns[i];
			if (!c->b && c->spare) {
				c->b = s->cur;
				s->cur = c->spare;
				c->spare = NULL;
				pthread_cond_broadcast(&s->cv);
				pthread_mutex_unlock(&s->mu);
				return 0;
			}
		}
		pthread_cond_wait(&s->cv, &s->mu);
	}
}

/* Milliseconds until the current batch must be handed over (-1: no batch,
 * wait for input as long as it takes). */
static int flush_timeout(const struct store *s)
{
	int64_t left;

	if (s->cur->sb.n == 0)
		return -1;
	left = s->cur->first_ms + s->flush_ms - cm_mono_ms();
	return left < 0 ? 0 : left > 3600000 ? 3600000 : (int)left;
}

/* Reads one input to its end (or a signal), handing over batch after
 * batch; 0, or what ends the run: -1 when a storing thread gave up,
 * CM_EXIT_SYSTEM for a read error or no memory (reported). Lines already
 * buffered are taken without a look at the clock, CLOCK_EVERY at a time
 * (reading the clock for every line was a twentieth of the tool's CPU); the
 * flush deadline is checked between those runs and while waiting. */
static int store_input(struct store *s, struct cm_lines *rd)
{
	struct cm_lines_wait w = {.wake_fd = s->wake[0], .mask = &open_mask};
	const char *line;
	size_t len;
	struct cm_err err;
	int quick = 0, rc;

	while (!signals) {
		if (quick < CLOCK_EVERY && cm_lines_ready(rd, 0)) {
			quick++;
			rc = cm_lines_next(rd, &line, &len, &err);
		} else {
			quick = 0;
			w.timeout_ms = flush_timeout(s);
			rc = cm_lines_next_wait(rd, &line, &len, &w, &err);
		}
		switch (rc) {
		case CM_LINE_OK:
			s->st.lines++;
			if (stage_line(s, line, len, rd->name, rd->lineno, rd->no_newline, &err) <
			    0) {
				cm_warn("%s:%lu: %s", rd->name, rd->lineno, err.msg);
				if (err.code == CM_EXIT_SYSTEM)
					return CM_EXIT_SYSTEM;
				s->st.rejected++;
				cm_wmetrics_add(s->wm, CM_WM_ERRORS, 1);
			}
			break;
		case CM_LINE_LONG:
			s->st.lines++;
			s->st.rejected++;
			cm_wmetrics_add(s->wm, CM_WM_ERRORS, 1);
			cm_warn("%s:%lu: line longer than %zu bytes: not stored", rd->name,
			        rd->lineno, s->opt.max_line);
			break;
		case CM_LINE_TIMEOUT:
			if (hand_over(s) < 0)
				return -1;
			break;
		case CM_LINE_EOF:
			return 0;
		case CM_LINE_INTR:
			break;
		case CM_LINE_WAKE:
			return -1;
		default:
			cm_warn("%s", err.msg);
			return err.code ? err.code : CM_EXIT_SYSTEM;
		}
		if (s->cur->sb.n >= s->batch_max ||
		    cm_store_batch_bytes(&s->cur->sb) >= BATCH_MAX_TEXT ||
		    (s->cur->sb.n && !quick && flush_timeout(s) == 0))
			if (hand_over(s) < 0)
				return -1;
	}
	return 0;
}

/* Adds b's counts to a. */
static void stats_add(struct stats *a, const struct stats *b)
{
	a->rejected += b->rejected;
	a->acked += b->acked;
	a->dead += b->dead;
	a->retries += b->retries;
}

/* Adds the storing side's counts of b to a. */
static void db_stats_add(struct cm_store_stats *a, const struct cm_store_stats *b)
{
	a->batches += b->batches;
	a->events_new += b->events_new;
	a->matches_new += b->matches_new;
	a->matched += b->matched;
	a->holdout += b->holdout;
	a->capped += b->capped;
	a->profiles += b->profiles;
	a->retries += b->retries;
}

/* Prints the counts of --stats. */
static void print_stats(const struct stats *st, const struct cm_store_stats *db, int64_t ms)
{
	double secs = ms > 0 ? (double)ms / 1000 : 0.001;

	cm_warn("%llu lines: %llu events (%llu new), %llu matches (%llu new), %llu rejected "
	        "(%llu dead-lettered); %llu batches, %llu acknowledged, %llu retries; %.2f s, %.0f "
	        "lines/s",
	        st->lines, st->events, db->events_new, st->matches, db->matches_new, st->rejected,
	        st->dead, db->batches, st->acked, st->retries + db->retries, secs,
	        (double)st->lines / secs);
	if (st->limited || st->identify)
		cm_warn("%llu candidates of limited campaigns: %llu matched, %llu holdout, %llu "
		        "capped; %llu identify events: %llu profiles changed",
		        st->limited, db->matched, db->holdout, db->capped, st->identify,
		        db->profiles);
}

/* Parses the options into s; exits 2 on a usage error. */
static void parse_options(struct store *s, int argc, char **argv)
{
	enum { O_FLUSH = 256, O_CONNS, O_ACK, O_STATS };
	static const struct option longopts[] = {
	    CM_OPTION_DB,
	    {"batch", required_argument, NULL, 'b'},
	    {"flush-ms", required_argument, NULL, O_FLUSH},
	    {"connections", required_argument, NULL, O_CONNS},
	    CM_OPTION_RETRY_FOR,
	    {"ack", no_argument, NULL, O_ACK},
	    CM_OPTION_REDIS,
	    CM_OPTION_STREAM,
	    CM_OPTION_GROUP,
	    CM_OPTION_CONSUMER,
	    CM_OPTION_MAX_LINE,
	    {"stats", no_argument, NULL, O_STATS},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:b:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			s->opt.db = optarg;
			break;
		case 'b':
			s->batch_max = (size_t)cm_opts_int("batch", optarg, 1, 1000000, "a number");
			break;
		case O_FLUSH:
			s->flush_ms = cm_opts_int("flush-ms", optarg, 0, 3600000, "milliseconds");
			break;
		case O_CONNS:
			s->nconns =
			    (int)cm_opts_int("connections", optarg, 1, MAX_CONNS, "a number");
			break;
		case O_ACK:
			s->ack = 1;
			break;
		case O_STATS:
			s->show_stats = 1;
			break;
		default:
			cm_opts_default(&s->opt, c, optarg, argc, argv, usage_text);
		}
	}
	s->conninfo = cm_opts_db(&s->opt);
	if (s->ack)
		s->redis_url = cm_opts_redis(&s->opt);
	else if (s->opt.redis)
		cm_usage_error("--redis is only used with --ack");
	else if (s->opt.consumer)
		cm_usage_error("--consumer is only used with --ack");
}

/* Connects the first storing thread's database before reading anything, so
 * that a wrong database or a missing schema is said at once, and a database
 * still starting up is waited for (--retry-for); 0 or the exit status. */
static int first_connect(struct store *s)
{
	struct conn *c = &s->conns[0];
	struct cm_err err;

	if (cm_store_open(&c->db, &err) < 0) {
		cm_warn("%s", err.msg);
		return err.code;
	}
	if (s->ack) {
		c->redis = cm_redis_connect(s->redis_url, &err);
		if (!c->redis && err.code != CM_EXIT_UNREACHABLE) {
			cm_warn("%s", err.msg);
			return err.code;
		}
		if (!c->redis)
			cm_warn("%s (acknowledging will retry)", err.msg);
	}
	return 0;
}

/* Reads, stages and hands over batches until the input ends or a signal
 * comes, then waits for the storing threads; exits with the status of the
 * worst thing that happened. */
int main(int argc, char **argv)
{
	static struct store s;
	const struct cm_store_hooks hooks = {
	    .retrying = on_retrying,
	    .back = on_back,
	    .refused = on_refused,
	    .stop = on_stop,
	    .mask = &open_mask,
	};
	struct cm_store_stats db;
	struct sigaction sa;
	sigset_t block;
	int64_t t0;
	int i, nfiles, rc, failed = 0, stopped = 0;

	s.batch_max = 5000;
	s.flush_ms = 100;
	s.nconns = 2;
	s.opt.retry_ms = 60000;
	s.opt.max_line = CM_STORE_LINE_MAX;
	s.opt.stream = CM_REDIS_DEFAULT_STREAM;
	s.opt.group = CM_REDIS_DEFAULT_GROUP;
	cm_cli_init(argv[0]);
	parse_options(&s, argc, argv);
	if (cm_buf_adds(&s.dead_key, s.opt.stream) < 0 ||
	    cm_buf_adds(&s.dead_key, CM_REDIS_DEAD_SUFFIX) < 0) {
		cm_warn("out of memory");
		return CM_EXIT_SYSTEM;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: a blocked wait must return */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_SETMASK, NULL, &open_mask);

	cm_jdoc_init(&s.doc, 64);
	cm_storerow_init(&s.sr);
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	t0 = cm_mono_ms();
	for (i = 0; i < MAX_CONNS; i++) {
		struct cm_store_hooks h = hooks;

		s.conns[i].s = &s;
		h.ctx = &s.conns[i];
		cm_store_conn_init(&s.conns[i].db, s.conninfo, s.opt.retry_ms, &h);
	}

	s.wake[0] = s.wake[1] = -1;
	if (pipe2(s.wake, O_CLOEXEC) < 0) {
		cm_warn("pipe: %s", strerror(errno));
		rc = CM_EXIT_SYSTEM;
		goto out;
	}
	rc = first_connect(&s);
	if (rc)
		goto out;
	if (s.ack)
		s.wm = cm_opts_metrics(&s.opt, s.redis_url);
	/* From here on the signals are only taken while waiting (the threads
	 * inherit the mask). */
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	s.cur = batch_new();
	if (!s.cur)
		goto oom;
	for (i = 0; i < s.nconns; i++) {
		struct conn *c = &s.conns[i];
		c->spare = batch_new();
		if (!c->spare)
			goto oom;
		if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
			cm_warn("cannot start a storing thread: %s", strerror(errno));
			batch_free(c->spare);
			c->spare = NULL;
			s.nconns = i;
			if (i == 0) {
				rc = CM_EXIT_SYSTEM;
				goto out;
			}
			break;
		}
		c->started = 1;
	}

	nfiles = argc - optind;
	for (i = 0; i < (nfiles ? nfiles : 1) && !signals && !stopped; i++) {
		struct cm_lines rd;
		struct cm_err err;

		if (cm_lines_open(&rd, nfiles ? argv[optind + i] : "-", s.opt.max_line, &err) < 0) {
			cm_warn("%s", err.msg);
			failed = err.code;
			continue;
		}
		rc = store_input(&s, &rd);
		cm_lines_release(&rd);
		if (rc > 0)
			failed = rc;
		stopped = rc != 0;
	}
	/* what was read before a read error is stored all the same */
	if (!stopped || failed == CM_EXIT_SYSTEM)
		hand_over(&s);
	rc = 0;
	goto out;
oom:
	cm_warn("out of memory");
	rc = CM_EXIT_SYSTEM;
out:
	pthread_mutex_lock(&s.mu);
	s.closing = 1;
	pthread_cond_broadcast(&s.cv);
	pthread_mutex_unlock(&s.mu);
	memset(&db, 0, sizeof(db));
	for (i = 0; i < MAX_CONNS; i++) {
		struct conn *c = &s.conns[i];
		if (c->started)
			pthread_join(c->thread, NULL);
		stats_add(&s.st, &c->st);
		db_stats_add(&db, &c->db.st);
		cm_store_conn_release(&c->db);
		if (c->redis)
			redisFree(c->redis);
		batch_free(c->b);
		batch_free(c->spare);
	}
	if (rc == 0)
		rc = s.failed        ? s.failed
		     : failed        ? failed
		     : s.st.rejected ? CM_EXIT_REJECTED
		                     : CM_EXIT_OK;
	cm_wmetrics_free(s.wm);
	if (s.show_stats)
		print_stats(&s.st, &db, cm_mono_ms() - t0);
	batch_free(s.cur);
	cm_jdoc_release(&s.doc);
	cm_storerow_release(&s.sr);
	cm_buf_release(&s.dead_key);
	if (s.wake[0] >= 0) {
		close(s.wake[0]);
		close(s.wake[1]);
	}
	pthread_mutex_destroy(&s.mu);
	pthread_cond_destroy(&s.cv);
	return rc;
}
