/* cm-store.c - events (with their matches) and match lines into PostgreSQL,
 * idempotently, one transaction per batch; with --ack, each batch's stream
 * entries are acknowledged in Redis only after its COMMIT.
 *
 * The main thread reads and checks lines and turns them into COPY text for
 * events and matches; full batches go to storing threads, each with its own
 * PostgreSQL connection (and Redis connection for --ack), so that parsing,
 * storing and the disk's commit latency overlap. A batch is normally COPYed
 * straight into the tables; when rows are there already (a redelivery: a
 * unique violation), it goes through temporary staging tables and
 * INSERT ... SELECT ... ORDER BY key ON CONFLICT DO NOTHING instead, which
 * is idempotent and takes row locks in key order (so that two workers
 * storing the same entries do not deadlock). A batch the server refuses for
 * a bad value is halved until the bad lines are found; they are reported
 * and the rest is stored.
 *
 * Lines are checked by the one validator every tool uses (cm_record_parse);
 * with --ack, a line that can never be stored (it fails that check, or the
 * server refuses its row alone with a data error) is a poison entry: it is
 * moved to the dead-letter stream with the reason and acknowledged with the
 * batch (cm_redis_dead_letter), so that it does not stay pending and hold
 * back trimming until cm-consume gives up on it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "tool.h"
#include "err.h"
#include "event.h"
#include "json.h"
#include "pg.h"
#include "redisx.h"
#include "retry.h"
#include "timefmt.h"

/* Exit statuses beyond CONTRACT's 0, 1, 2 (documented in cm-store(1)). */
enum { EXIT_UNREACHABLE = CM_EXIT_UNREACHABLE, EXIT_REFUSED = CM_EXIT_REFUSED };

#define READ_CHUNK     (256 * 1024)
#define BATCH_MAX_COPY (64u << 20) /* flush early when the staged text is this big */
#define COPY_CHUNK     (256 * 1024)
#define XACK_CHUNK     4096 /* ids per XACK command */
#define SID_MAX        (CM_STREAM_ID_MAX - 1)
#define STAGED_BATCHES 16 /* batches through staging after a conflict */
#define MAX_CONNS      16

#define EVENT_COLS "(event_id, event_type, user_id, occurred_at, properties)"
#define MATCH_COLS "(campaign_id, event_id, user_id, event_type, occurred_at)"

#define STAGE_SQL                                                                                  \
	"CREATE TEMP TABLE IF NOT EXISTS cm_stage_events (event_id text COLLATE \"C\", "           \
	"event_type text, user_id text COLLATE \"C\", occurred_at timestamptz, properties jsonb) " \
	"ON COMMIT DELETE ROWS; "                                                                  \
	"CREATE TEMP TABLE IF NOT EXISTS cm_stage_matches (campaign_id bigint, "                   \
	"event_id text COLLATE \"C\", user_id text COLLATE \"C\", event_type text, "               \
	"occurred_at timestamptz) ON COMMIT DELETE ROWS"

#define COPY_EVENTS_SQL  "BEGIN; COPY events " EVENT_COLS " FROM STDIN"
#define COPY_MATCHES_SQL "COPY matches " MATCH_COLS " FROM STDIN"
#define STAGE_EVENTS_SQL "BEGIN; COPY cm_stage_events FROM STDIN"
#define STAGE_MATCH_SQL  "COPY cm_stage_matches FROM STDIN"

#define MOVE_SQL                                                                                   \
	"INSERT INTO events " EVENT_COLS " SELECT * FROM cm_stage_events ORDER BY event_id "       \
	"ON CONFLICT DO NOTHING; "                                                                 \
	"INSERT INTO matches " MATCH_COLS " SELECT * FROM cm_stage_matches ORDER BY 1, 2 "         \
	"ON CONFLICT DO NOTHING; "                                                                 \
	"COMMIT"

static const char usage_text[] =
    "Usage: cm-store [OPTION]... [FILE]...\n"
    "Store events (with their \"matches\") and match lines from NDJSON FILEs (or stdin)\n"
    "in PostgreSQL, idempotently, one transaction per batch.\n"
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
    "      --max-line SIZE   longest line accepted (default 16M: the longest event\n"
    "                        cm-ingest writes, with matches from many campaigns)\n"
    "      --stats           print counts and the rate on stderr at the end\n"
    "  -h, --help            show this help and exit\n"
    "  -V, --version         show the version and exit\n"
    "\n"
    "Exit status: 0 all stored, 1 some lines rejected (reported), 2 usage or\n"
    "configuration error, 3 PostgreSQL or Redis unreachable for --retry-for,\n"
    "4 PostgreSQL or Redis refused a request that retrying cannot fix.\n";

/* One staged line: its COPY text (an event row and its match rows, or one
 * match row), its stream id and where it came from; with --ack also the line
 * as read, to dead-letter it if it can never be stored. */
struct row {
	size_t ev_off, mt_off; /* in batch.ev and batch.mt */
	size_t sid_off;        /* in batch.sids */
	size_t text_off;       /* in batch.text: the line, then why it is poison */
	size_t why_off;        /* in batch.text: why it is poison */
	uint32_t ev_len, mt_len, text_len, why_len;
	uint16_t sid_len; /* 0: nothing to acknowledge */
	uint8_t state;    /* enum row_state */
	const char *file;
	unsigned long line;
};

enum row_state {
	ROW_PENDING = 0, /* to be stored */
	ROW_STORED,      /* committed: to be acknowledged */
	ROW_REFUSED,     /* the server refused it alone: reported, not stored */
	ROW_POISON,      /* never storable (refused, with a stream id): to dead-letter */
	ROW_BURIED,      /* dead-lettered and acknowledged */
};

/* What a failed attempt means: cm_pg_fail's classes, and a unique violation
 * or deadlock on the COPY path (some rows are there already). */
enum fail {
	FAIL_FATAL = CM_PG_FATAL,
	FAIL_RETRY = CM_PG_RETRY,
	FAIL_DATA = CM_PG_DATA,
	FAIL_CONFLICT,
};

struct batch {
	struct cm_buf ev;   /* COPY text for events, row after row */
	struct cm_buf mt;   /* COPY text for matches */
	struct cm_buf sids; /* the rows' stream ids, back to back */
	struct cm_buf text; /* --ack: the lines as read and the poison's reasons */
	struct row *rows;
	size_t n, cap;
	int64_t first_ms; /* when the first row was read (cm_mono_ms) */
};

struct stats {
	unsigned long long lines, events, matches, rejected, events_new, matches_new;
	unsigned long long batches, acked, retries, dead;
};

struct store;

/* A storing thread: its connections and the batch it is storing. */
struct conn {
	struct store *s;
	pthread_t thread;
	int started;
	PGconn *pg;
	redisContext *redis;
	struct batch *b;     /* under s->mu: the batch to store, NULL when idle */
	struct batch *spare; /* under s->mu: an empty batch, when idle */
	struct stats st;     /* this thread's counts, read after it ended */
	int staged_left;     /* batches still to store through staging */
	int outage;          /* a retry is under way: said once */
	int exit_code;       /* why it gave up: 2, 3 or 4 */
};

struct store {
	/* options, fixed before the threads start */
	const char *conninfo;
	const char *redis_url, *stream, *group;
	struct cm_buf dead_key; /* stream + CM_REDIS_DEAD_SUFFIX */
	int ack, show_stats, nconns;
	size_t batch_max, max_line;
	int64_t flush_ms, retry_ms;
	/* the main thread's */
	struct cm_jdoc doc;
	struct cm_event_view view;
	struct cm_buf scratch;
	struct cm_buf fld; /* the current line's fields, escaped for COPY */
	struct batch *cur; /* the batch being filled */
	struct stats st;
	/* shared with the storing threads */
	struct conn conns[MAX_CONNS];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int wake[2]; /* a storing thread that gives up writes here */
	int closing; /* under mu: no more batches will come */
	int failed;  /* under mu: the exit status of a thread that gave up */
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

/* --- input ------------------------------------------------------------- */

/* A line reader that can wait for input with a timeout, so that a partial
 * batch is stored while the writer is idle. */
struct reader {
	int fd, own_fd;
	int wake_fd; /* readable when the reading should stop (or -1) */
	const char *name;
	char *buf;
	size_t cap, start, end, scan, max;
	unsigned long lineno;
	int eof, skipping;
};

enum { RD_LINE, RD_EOF, RD_TIMEOUT, RD_LONG, RD_INTR, RD_WAKE, RD_ERR };

/* Opens a file operand ("-" is stdin). */
static int rd_open(struct reader *r, const char *path, size_t max)
{
	memset(r, 0, sizeof(*r));
	r->max = max;
	if (!strcmp(path, "-")) {
		r->name = "stdin";
		return 0;
	}
	r->name = path;
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		cm_warn("%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	r->own_fd = 1;
	return 0;
}

/* Closes what rd_open opened (never stdin) and frees the buffer. */
static void rd_close(struct reader *r)
{
	if (r->own_fd)
		close(r->fd);
	free(r->buf);
	r->buf = NULL;
}

/* Makes room to read: moves the unread part to the front, or grows the
 * buffer up to max + a chunk. */
static int rd_room(struct reader *r)
{
	size_t cap;
	char *p;

	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->scan -= r->start;
		r->start = 0;
	}
	if (r->end < r->cap)
		return 0;
	cap = r->cap ? r->cap * 2 : READ_CHUNK;
	if (cap > r->max + READ_CHUNK)
		cap = r->max + READ_CHUNK;
	if (cap <= r->cap)
		return 0; /* cannot happen: a longer line is dropped first */
	p = realloc(r->buf, cap);
	if (!p)
		return -1;
	r->buf = p;
	r->cap = cap;
	return 0;
}

/* Returns the next line in *line and *len (CR before LF stripped; *no_newline when
 * the input ended without LF), or EOF, TIMEOUT (nothing arrived within
 * timeout_ms; -1 waits forever), LONG (line lineno exceeded max and was
 * skipped), INTR (a signal), WAKE (r->wake_fd became readable) or ERR. */
static int rd_next(struct reader *r, const char **line, size_t *len, int *no_newline,
                   int timeout_ms)
{
	for (;;) {
		char *lf =
		    r->end > r->scan ? memchr(r->buf + r->scan, '\n', r->end - r->scan) : NULL;
		if (lf) {
			size_t s = r->start, e = (size_t)(lf - r->buf);
			r->start = r->scan = e + 1;
			r->lineno++;
			if (r->skipping) {
				r->skipping = 0;
				return RD_LONG;
			}
			if (e > s && r->buf[e - 1] == '\r')
				e--;
			if (e - s > r->max)
				return RD_LONG;
			*line = r->buf + s;
			*len = e - s;
			*no_newline = 0;
			return RD_LINE;
		}
		r->scan = r->end;
		if (r->end - r->start > r->max) {
			/* Too long: forget it and skip to the next LF. */
			r->start = r->end = r->scan = 0;
			r->skipping = 1;
		}
		if (r->eof) {
			if (r->end > r->start || r->skipping) {
				size_t s = r->start, e = r->end;
				r->start = r->scan = r->end;
				r->lineno++;
				if (r->skipping) {
					r->skipping = 0;
					return RD_LONG;
				}
				if (e > s && r->buf[e - 1] == '\r')
					e--;
				if (e - s > r->max)
					return RD_LONG;
				*line = r->buf + s;
				*len = e - s;
				*no_newline = 1;
				return RD_LINE;
			}
			return RD_EOF;
		}
		if (rd_room(r) < 0) {
			cm_warn("%s: out of memory", r->name);
			return RD_ERR;
		}
		struct pollfd pfd[2] = {{.fd = r->fd, .events = POLLIN},
		                        {.fd = r->wake_fd, .events = POLLIN}};
		struct timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
		int ready = ppoll(pfd, 2, timeout_ms >= 0 ? &ts : NULL, &open_mask);
		if (ready == 0)
			return RD_TIMEOUT;
		if (ready > 0 && pfd[1].revents)
			return RD_WAKE;
		if (ready < 0 && errno == EINTR)
			return RD_INTR;
		if (ready < 0) {
			cm_warn("%s: poll: %s", r->name, strerror(errno));
			return RD_ERR;
		}
		ssize_t got = read(r->fd, r->buf + r->end, r->cap - r->end);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got < 0) {
			cm_warn("%s: read error: %s", r->name, strerror(errno));
			return RD_ERR;
		}
		if (got == 0)
			r->eof = 1;
		r->end += (size_t)got;
	}
}

/* --- parsing a line into a staged row ---------------------------------- */

/* A field escaped for COPY in store.fld. */
struct span {
	size_t off, len;
};

/* Appends the decoded string token t to s->fld, escaped for COPY (the
 * validator has checked it). */
static int put_str(struct store *s, uint32_t t, struct span *sp, struct cm_err *err)
{
	const char *v;
	size_t n;

	v = cm_json_str(&s->doc, t, &s->scratch, &n);
	if (!v)
		return cm_errf(err, "out of memory");
	sp->off = s->fld.len;
	if (cm_pg_copy_escape(&s->fld, v, n) < 0)
		return cm_errf(err, "out of memory");
	sp->len = s->fld.len - sp->off;
	return 0;
}

/* Appends occurred_at normalised to UTC (as the validator parsed it), so
 * that the server never has to guess at a format. */
static int put_time(struct store *s, int64_t ms, struct span *sp, struct cm_err *err)
{
	char out[CM_TIME_MAX];
	size_t n;

	n = cm_time_format(ms, out);
	sp->off = s->fld.len;
	sp->len = n;
	return cm_buf_add(&s->fld, out, n) < 0 ? cm_errf(err, "out of memory") : 0;
}

/* Appends one row to the COPY text of matches: the campaign id token t (a
 * JSON integer, checked by the validator) and the event's fields. */
static int put_match(struct store *s, uint32_t t, const struct span f[4], struct cm_err *err)
{
	const struct cm_jdoc *d = &s->doc;
	struct cm_buf *m = &s->cur->mt;
	const char *v = d->src + d->tok[t].off, *fld = s->fld.data;
	size_t n = d->tok[t].len;

	if (cm_buf_grow(m, n + f[0].len + f[1].len + f[2].len + f[3].len + 5) < 0)
		return cm_errf(err, "out of memory");
	/* campaign_id, event_id, user_id, event_type, occurred_at */
	cm_buf_add(m, v, n);
	cm_buf_addc(m, '\t');
	cm_buf_add(m, fld + f[0].off, f[0].len);
	cm_buf_addc(m, '\t');
	cm_buf_add(m, fld + f[2].off, f[2].len);
	cm_buf_addc(m, '\t');
	cm_buf_add(m, fld + f[1].off, f[1].len);
	cm_buf_addc(m, '\t');
	cm_buf_add(m, fld + f[3].off, f[3].len);
	cm_buf_addc(m, '\n');
	return 0;
}

/* Appends the match rows of an event's "matches":[{"campaign_id":N},...]. */
static int put_event_matches(struct store *s, uint32_t arr, const struct span f[4],
                             unsigned long long *count, struct cm_err *err)
{
	const struct cm_jdoc *d = &s->doc;
	uint32_t i, el;

	*count = 0;
	if (arr == CM_JNONE)
		return 0;
	for (i = 0, el = arr + 1; i < d->tok[arr].count; i++, el = d->tok[el].next)
		if (put_match(s, cm_json_get(d, el, "campaign_id", 11), f, err) < 0)
			return -1;
	*count = d->tok[arr].count;
	return 0;
}

/* Appends an event's row to the COPY text of events. */
static int put_event(struct store *s, uint32_t props, const struct span f[4], struct cm_err *err)
{
	const struct cm_jdoc *d = &s->doc;
	struct cm_buf *e = &s->cur->ev;
	const char *fld = s->fld.data;
	const struct cm_jtok *t = &d->tok[props];
	int i;

	/* event_id, event_type, user_id, occurred_at, properties */
	for (i = 0; i < 4; i++)
		if (cm_buf_add(e, fld + f[i].off, f[i].len) < 0 || cm_buf_addc(e, '\t') < 0)
			return cm_errf(err, "out of memory");
	if (cm_pg_copy_escape(e, d->src + t->off, t->len) < 0)
		return cm_errf(err, "out of memory");
	return cm_buf_addc(e, '\n') < 0 ? cm_errf(err, "out of memory") : 0;
}

/* Adds a row for the line just parsed (its COPY text is in the batch from
 * ev_mark and mt_mark on, its stream id sid[0..sid_len)); with --ack the line
 * is kept, and poison (why != NULL) gets its reason too. */
static int add_row(struct store *s, const char *line, size_t len, const char *sid, size_t sid_len,
                   size_t ev_mark, size_t mt_mark, const char *why, const char *file,
                   unsigned long lineno)
{
	struct batch *b = s->cur;
	size_t sid_mark = b->sids.len, text_mark = b->text.len, why_len = why ? strlen(why) : 0;
	struct row *r;

	if (sid_len && cm_buf_add(&b->sids, sid, sid_len) < 0)
		goto oom;
	if (s->ack && (cm_buf_add(&b->text, line, len) < 0 || cm_buf_add(&b->text, why, why_len)))
		goto oom;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1024;
		struct row *rows = realloc(b->rows, cap * sizeof(*rows));
		if (!rows)
			goto oom;
		b->rows = rows;
		b->cap = cap;
	}
	if (b->ev.len - ev_mark > UINT32_MAX || b->mt.len - mt_mark > UINT32_MAX ||
	    len > UINT32_MAX)
		goto oom;
	r = &b->rows[b->n++];
	r->ev_off = ev_mark;
	r->ev_len = (uint32_t)(b->ev.len - ev_mark);
	r->mt_off = mt_mark;
	r->mt_len = (uint32_t)(b->mt.len - mt_mark);
	r->sid_off = sid_mark;
	r->sid_len = (uint16_t)sid_len;
	r->text_off = text_mark;
	r->text_len = s->ack ? (uint32_t)len : 0;
	r->why_off = text_mark + r->text_len;
	r->why_len = s->ack ? (uint32_t)why_len : 0;
	r->state = why ? ROW_POISON : ROW_PENDING;
	r->file = file;
	r->line = lineno;
	if (b->n == 1)
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

/* Turns one line into staged rows (an event and its matches, or a match), or
 * says what is wrong with it (what it staged is then taken back); under
 * --ack a line refused with a stream id becomes a poison row, dead-lettered
 * with the batch. */
static int stage_line(struct store *s, const char *line, size_t len, const char *file,
                      unsigned long lineno, int no_newline, struct cm_err *err)
{
	struct batch *b = s->cur;
	const struct cm_jdoc *d = &s->doc;
	const struct cm_event_view *v = &s->view;
	size_t ev_mark = b->ev.len, mt_mark = b->mt.len, sid_len = 0;
	const char *sid = NULL;
	unsigned long long nmatch = 0;
	struct span f[4]; /* event_id, event_type, user_id, occurred_at */
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
		if (add_row(s, line, len, sid, sid_len, ev_mark, mt_mark, why, file, lineno) < 0)
			return cm_errf(err, "out of memory");
		return cm_errf(err, "%s (entry %.*s goes to %s)", why + sizeof(poison) - 1,
		               (int)sid_len, sid, s->dead_key.data);
	}
	cm_buf_reset(&s->fld);
	if (put_str(s, v->id, &f[0], err) < 0 || put_str(s, v->type, &f[1], err) < 0 ||
	    put_str(s, v->user, &f[2], err) < 0 || put_time(s, v->occurred_ms, &f[3], err) < 0)
		return -1;
	if (v->is_match) {
		if (put_match(s, v->campaign, f, err) < 0)
			goto fail;
		nmatch = 1;
	} else if (put_event(s, v->props, f, err) < 0 ||
	           put_event_matches(s, v->matches, f, &nmatch, err) < 0) {
		goto fail;
	}
	if (add_row(s, line, len, sid, sid_len, ev_mark, mt_mark, NULL, file, lineno) < 0) {
		cm_errf(err, "out of memory");
		goto fail;
	}
	s->st.events += !v->is_match;
	s->st.matches += nmatch;
	return 0;
fail:
	b->ev.len = ev_mark;
	b->mt.len = mt_mark;
	return -1;
}

/* --- PostgreSQL -------------------------------------------------------- */

/* Sleeps before the next attempt with SIGTERM and SIGINT open, so that a
 * second signal ends a hopeless wait; -1 when the budget is spent or a second
 * signal came. */
static int retry_wait(struct cm_backoff *bo)
{
	if (signals >= 2)
		return -1;
	return cm_backoff_wait(bo, &open_mask) < 0 || signals >= 2 ? -1 : 0;
}

/* Prepares a new connection: the staging tables, a commit that waits for
 * the disk (acknowledging needs durability), and a check that the schema is
 * there (its absence is a configuration error, status 2). */
static int pg_setup(struct conn *c, struct cm_err *err)
{
	PGresult *r;
	int ok;

	r = cm_pg_query(c->pg,
	                "SELECT to_regclass('events') IS NOT NULL AND to_regclass('matches') IS "
	                "NOT NULL, current_setting('synchronous_commit')",
	                0, NULL, err);
	if (!r)
		return -1;
	ok = !strcmp(PQgetvalue(r, 0, 0), "t");
	if (ok && !strcmp(PQgetvalue(r, 0, 1), "off") &&
	    cm_pg_exec(c->pg, "SET synchronous_commit = local", err) < 0) {
		PQclear(r);
		return -1;
	}
	PQclear(r);
	if (!ok) {
		c->exit_code = CM_EXIT_USAGE;
		return cm_errf(err, "the database has no events and matches tables: run "
		                    "'cm-admin migrate' first");
	}
	return cm_pg_exec(c->pg, STAGE_SQL, err);
}

/* Reads the results of a command string up to COPY IN (returns 1) or its
 * end, keeping the first failure (and its class) and adding the row counts
 * of COPY and INSERT tags to counts[]. */
static int pg_results(struct conn *c, enum fail *fail, unsigned long long *counts, int *nc,
                      struct cm_err *err)
{
	PGresult *r;
	int rc = 0;

	while ((r = PQgetResult(c->pg))) {
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_COPY_IN) {
			PQclear(r);
			return rc < 0 ? -1 : 1;
		}
		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
			if (rc == 0) {
				const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
				*fail = (enum fail)cm_pg_classify(c->pg, r);
				if (code && (!strcmp(code, "23505") || !strcmp(code, "40P01")))
					*fail = FAIL_CONFLICT;
				cm_pg_errf(err, c->pg, r, "PostgreSQL");
			}
			rc = -1;
		} else if (counts && *nc < 2 &&
		           (!strncmp(PQcmdStatus(r), "INSERT", 6) ||
		            !strncmp(PQcmdStatus(r), "COPY", 4))) {
			counts[(*nc)++] = strtoull(PQcmdTuples(r), NULL, 10);
		}
		PQclear(r);
	}
	if (rc == 0 && PQstatus(c->pg) == CONNECTION_BAD) {
		*fail = FAIL_RETRY;
		cm_pg_errf(err, c->pg, NULL, "PostgreSQL");
		rc = -1;
	}
	return rc;
}

/* Runs a command string that ends in COPY FROM STDIN and sends data[0..len)
 * to it. */
static int pg_copy(struct conn *c, const char *sql, const char *data, size_t len, enum fail *fail,
                   unsigned long long *counts, int *nc, struct cm_err *err)
{
	int rc;

	if (!PQsendQuery(c->pg, sql))
		return cm_pg_errf(err, c->pg, NULL, "PostgreSQL");
	rc = pg_results(c, fail, NULL, NULL, err);
	if (rc < 0)
		return -1;
	if (rc != 1)
		return cm_errf(err, "PostgreSQL: COPY did not start");
	while (len > 0) {
		size_t n = len < COPY_CHUNK ? len : COPY_CHUNK;
		if (PQputCopyData(c->pg, data, (int)n) != 1)
			break;
		data += n;
		len -= n;
	}
	if (PQputCopyEnd(c->pg, len ? "client stopped sending" : NULL) != 1)
		return cm_pg_errf(err, c->pg, NULL, "PostgreSQL");
	return pg_results(c, fail, counts, nc, err) < 0 ? -1 : 0;
}

/* Stores rows [lo, hi) of b in one transaction: straight into the tables
 * with COPY, or through the staging tables and INSERT ... ON CONFLICT DO
 * NOTHING when some rows may be there already; 0 when committed, -1 with the
 * failure's class in *fail. */
static int pg_store(struct conn *c, const struct batch *b, size_t lo, size_t hi, int staged,
                    enum fail *fail, struct cm_err *err)
{
	const struct row *a = &b->rows[lo], *z = &b->rows[hi - 1];
	size_t ev_len = z->ev_off + z->ev_len - a->ev_off;
	size_t mt_len = z->mt_off + z->mt_len - a->mt_off;
	unsigned long long counts[2] = {0, 0};
	int nc = 0;

	*fail = FAIL_RETRY;
	if (pg_copy(c, staged ? STAGE_EVENTS_SQL : COPY_EVENTS_SQL, b->ev.data + a->ev_off, ev_len,
	            fail, counts, &nc, err) < 0)
		goto abort;
	if (mt_len && pg_copy(c, staged ? STAGE_MATCH_SQL : COPY_MATCHES_SQL,
	                      b->mt.data + a->mt_off, mt_len, fail, counts, &nc, err) < 0)
		goto abort;
	if (staged)
		nc = 0; /* the INSERTs' counts are the new rows */
	if (!PQsendQuery(c->pg, staged ? MOVE_SQL : "COMMIT"))
		return cm_pg_errf(err, c->pg, NULL, "PostgreSQL");
	if (pg_results(c, fail, staged ? counts : NULL, &nc, err) < 0)
		goto abort;
	c->st.events_new += counts[0];
	c->st.matches_new += counts[1];
	return 0;
abort:
	if (PQstatus(c->pg) == CONNECTION_OK)
		PQclear(PQexec(c->pg, "ROLLBACK"));
	return -1;
}

/* Stores rows [lo, hi), reconnecting and retrying for --retry-for while the
 * failure is worth a retry, and falling back from COPY to the staging tables
 * when rows are there already; -1 with *fail FAIL_DATA when a row is at
 * fault, or with c->exit_code set when giving up. */
static int store_range(struct conn *c, const struct batch *b, size_t lo, size_t hi,
                       struct cm_backoff *bo, enum fail *fail, struct cm_err *err)
{
	const struct store *s = c->s;

	for (;;) {
		int staged = c->staged_left > 0;
		if (!c->pg) {
			c->pg = cm_pg_connect(s->conninfo, err);
			if (c->pg && pg_setup(c, err) < 0) {
				PQfinish(c->pg);
				c->pg = NULL;
				if (c->exit_code)
					return -1;
			}
		}
		if (c->pg) {
			if (pg_store(c, b, lo, hi, staged, fail, err) == 0) {
				if (c->outage)
					cm_warn("PostgreSQL is back: stored the batch");
				c->outage = 0;
				return 0;
			}
			if (!staged && (*fail == FAIL_CONFLICT || *fail == FAIL_DATA)) {
				/* Some rows are stored already (a redelivery) or one is bad:
				 * take the careful path for a while. */
				c->staged_left = STAGED_BATCHES;
				continue;
			}
			if (*fail == FAIL_DATA)
				return -1;
			if (*fail == FAIL_FATAL) {
				c->exit_code = EXIT_REFUSED;
				return -1;
			}
			if (PQstatus(c->pg) != CONNECTION_OK) {
				PQfinish(c->pg);
				c->pg = NULL;
			}
		}
		if (!c->outage)
			cm_warn("%s; retrying for up to %lld s", err->msg,
			        (long long)(s->retry_ms / 1000));
		c->outage = 1;
		c->st.retries++;
		if (retry_wait(bo) < 0) {
			cm_err_prefix(err, "%s: ", signals >= 2 ? "interrupted" : "gave up");
			c->exit_code = EXIT_UNREACHABLE;
			return -1;
		}
	}
}

/* Marks row r, which the server refused alone with a data error (so it
 * never will take it), as refused; with a stream id under --ack it becomes
 * poison, to be dead-lettered with the reason. */
static void refuse_row(struct conn *c, struct batch *b, struct row *r, const char *msg)
{
	const struct store *s = c->s;
	size_t mark = b->text.len;

	c->st.rejected++;
	if (s->ack && r->sid_len && cm_buf_adds(&b->text, "not storable: ") == 0 &&
	    cm_buf_adds(&b->text, msg) == 0) {
		r->why_off = mark;
		r->why_len = (uint32_t)(b->text.len - mark);
		r->state = ROW_POISON;
		cm_warn("%s:%lu: %s: not stored (entry %.*s goes to %s)", r->file, r->line, msg,
		        (int)r->sid_len, b->sids.data + r->sid_off, s->dead_key.data);
		return;
	}
	b->text.len = mark;
	r->state = ROW_REFUSED;
	cm_warn("%s:%lu: %s: not stored", r->file, r->line, msg);
}

/* Finds the rows the server refuses by halving the range, so that one bad
 * value costs its own line and not the whole batch. */
static int store_bisect(struct conn *c, struct batch *b, size_t lo, size_t hi,
                        struct cm_backoff *bo, struct cm_err *err)
{
	enum fail fail;
	size_t i, mid;

	for (i = lo; i < hi && b->rows[i].state != ROW_PENDING; i++)
		;
	if (i == hi)
		return 0; /* only poison found while staging: nothing to store */
	if (store_range(c, b, lo, hi, bo, &fail, err) == 0) {
		for (i = lo; i < hi; i++)
			if (b->rows[i].state == ROW_PENDING)
				b->rows[i].state = ROW_STORED;
		return 0;
	}
	if (fail != FAIL_DATA || c->exit_code)
		return -1;
	if (hi - lo == 1) {
		refuse_row(c, b, &b->rows[lo], err->msg);
		return 0;
	}
	mid = lo + (hi - lo) / 2;
	if (store_bisect(c, b, lo, mid, bo, err) < 0)
		return -1;
	return store_bisect(c, b, mid, hi, bo, err);
}

/* --- Redis ------------------------------------------------------------- */

/* Moves the batch's poison rows to the dead-letter stream, each with its
 * line and reason, acknowledging them there (cm_redis_dead_letter, as
 * cm-consume does); a row done is not done again on a retry. -1 with *retry
 * set when trying again may help. */
static int bury_poison(struct conn *c, struct batch *b, int *retry, struct cm_err *err)
{
	const struct store *s = c->s;
	redisReply *refusal;
	size_t i;

	for (i = 0; i < b->n; i++) {
		struct row *r = &b->rows[i];
		char id[CM_STREAM_ID_MAX];
		char why[sizeof(err->msg)];
		struct cm_redis_dead e;
		int rc;

		if (r->state != ROW_POISON)
			continue;
		snprintf(id, sizeof(id), "%.*s", (int)r->sid_len, b->sids.data + r->sid_off);
		snprintf(why, sizeof(why), "%.*s", (int)r->why_len, b->text.data + r->why_off);
		memset(&e, 0, sizeof(e));
		e.key = s->stream;
		e.dead_key = s->dead_key.data;
		e.group = s->group;
		e.id = id;
		e.data = b->text.data + r->text_off;
		e.data_len = r->text_len;
		e.reason = why;
		rc = cm_redis_dead_letter(c->redis, &e, NULL, NULL, &refusal, err);
		if (rc == CM_REDIS_REFUSED) {
			*retry = refusal && cm_redis_error_transient(refusal->str, refusal->len);
			if (refusal)
				freeReplyObject(refusal);
			return -1;
		}
		if (rc < 0) {
			*retry = 1;
			return -1;
		}
		r->state = ROW_BURIED;
		c->st.dead++;
	}
	return 0;
}

/* Sends XACK for the stored rows' ids, pipelined in chunks, then buries the
 * poison; -1 with *retry set when trying again may help. */
static int redis_ack(struct conn *c, struct batch *b, int *retry, struct cm_err *err)
{
	const struct store *s = c->s;
	const char **argv = NULL;
	size_t *argl = NULL, i = 0, sent = 0, k;
	long long acked = 0;
	redisReply *rep;
	int rc = -1;

	*retry = 1;
	argv = malloc((XACK_CHUNK + 3) * sizeof(*argv));
	argl = malloc((XACK_CHUNK + 3) * sizeof(*argl));
	if (!argv || !argl) {
		*retry = 0;
		cm_errf(err, "out of memory");
		goto out;
	}
	argv[0] = "XACK";
	argv[1] = s->stream;
	argv[2] = s->group;
	for (k = 0; k < 3; k++)
		argl[k] = strlen(argv[k]);
	while (i < b->n) {
		int argc = 3;
		for (; i < b->n && argc < XACK_CHUNK + 3; i++) {
			if (b->rows[i].state != ROW_STORED || !b->rows[i].sid_len)
				continue;
			argv[argc] = b->sids.data + b->rows[i].sid_off;
			argl[argc++] = b->rows[i].sid_len;
		}
		if (argc > 3 && redisAppendCommandArgv(c->redis, argc, argv, argl) != REDIS_OK) {
			cm_errf(err, "Redis: %s", c->redis->errstr);
			goto out;
		}
		sent += argc > 3;
	}
	for (k = 0; k < sent; k++) {
		if (redisGetReply(c->redis, (void **)&rep) != REDIS_OK) {
			cm_errf(err, "Redis: XACK: %s", c->redis->errstr);
			goto out;
		}
		if (rep->type == REDIS_REPLY_ERROR) {
			*retry = cm_redis_error_transient(rep->str, rep->len);
			cm_errf(err, "Redis refused XACK %s %s: %s", s->stream, s->group, rep->str);
			freeReplyObject(rep);
			goto out;
		}
		if (rep->type == REDIS_REPLY_INTEGER)
			acked += rep->integer;
		freeReplyObject(rep);
	}
	c->st.acked += (unsigned long long)acked;
	rc = bury_poison(c, b, retry, err);
out:
	free(argv);
	free(argl);
	return rc;
}

/* Acknowledges the batch, reconnecting for --retry-for: the rows are
 * committed, so acknowledging late (or twice) is harmless. */
static int ack_batch(struct conn *c, struct batch *b, struct cm_backoff *bo, struct cm_err *err)
{
	size_t i;
	int retry;

	for (i = 0; i < b->n; i++)
		if ((b->rows[i].state == ROW_STORED && b->rows[i].sid_len) ||
		    b->rows[i].state == ROW_POISON)
			break;
	if (i == b->n)
		return 0;
	for (;;) {
		if (!c->redis)
			c->redis = cm_redis_connect(c->s->redis_url, err);
		if (c->redis) {
			if (redis_ack(c, b, &retry, err) == 0) {
				if (c->outage)
					cm_warn("Redis is back: acknowledged the batch");
				c->outage = 0;
				return 0;
			}
			if (!retry) {
				c->exit_code = EXIT_REFUSED;
				return -1;
			}
			redisFree(c->redis);
			c->redis = NULL;
		}
		if (!c->outage)
			cm_warn("%s; retrying for up to %lld s (the rows are committed)", err->msg,
			        (long long)(c->s->retry_ms / 1000));
		c->outage = 1;
		c->st.retries++;
		if (retry_wait(bo) < 0) {
			cm_err_prefix(err, "%s: ", signals >= 2 ? "interrupted" : "gave up");
			c->exit_code = EXIT_UNREACHABLE;
			return -1;
		}
	}
}

/* --- batches and the storing threads ----------------------------------- */

/* Prepares an empty batch; its buffers grow as lines come. */
static void batch_init(struct batch *b)
{
	memset(b, 0, sizeof(*b));
	cm_buf_init(&b->ev, 0);
	cm_buf_init(&b->mt, 0);
	cm_buf_init(&b->sids, 0);
	cm_buf_init(&b->text, 0);
}

/* Empties a batch for reuse, keeping its memory. */
static void batch_reset(struct batch *b)
{
	b->n = 0;
	cm_buf_reset(&b->ev);
	cm_buf_reset(&b->mt);
	cm_buf_reset(&b->sids);
	cm_buf_reset(&b->text);
}

/* Frees a batch and everything in it (NULL is fine). */
static void batch_free(struct batch *b)
{
	if (!b)
		return;
	cm_buf_release(&b->ev);
	cm_buf_release(&b->mt);
	cm_buf_release(&b->sids);
	cm_buf_release(&b->text);
	free(b->rows);
	free(b);
}

/* Commits a batch (isolating rows the server refuses), then acknowledges
 * what was committed; -1 with c->exit_code when giving up. */
static int store_batch(struct conn *c, struct batch *b)
{
	struct cm_backoff bo;
	struct cm_err err;

	cm_backoff_start(&bo, c->s->retry_ms);
	if (store_bisect(c, b, 0, b->n, &bo, &err) < 0)
		goto fail;
	c->st.batches++;
	if (c->staged_left > 0)
		c->staged_left--;
	if (c->s->ack) {
		cm_backoff_start(&bo, c->s->retry_ms);
		if (ack_batch(c, b, &bo, &err) < 0)
			goto fail;
	}
	return 0;
fail:
	cm_warn("%s", err.msg);
	cm_warn("a batch of %zu lines (%s:%lu-%lu) was %s", b->n, b->rows[0].file, b->rows[0].line,
	        b->rows[b->n - 1].line,
	        b->rows[0].state == ROW_STORED ? "stored but not acknowledged"
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
			s->failed = c->exit_code ? c->exit_code : EXIT_REFUSED;
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

	if (s->cur->n == 0)
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

	if (s->cur->n == 0)
		return -1;
	left = s->cur->first_ms + s->flush_ms - cm_mono_ms();
	return left < 0 ? 0 : left > 3600000 ? 3600000 : (int)left;
}

/* Reads one input to its end (or a signal), handing over batch after
 * batch; -1 when a storing thread gave up. */
static int store_input(struct store *s, struct reader *rd)
{
	const char *line;
	size_t len, i;
	int no_nl, rc;
	struct cm_err err;

	while (!signals) {
		rc = rd_next(rd, &line, &len, &no_nl, flush_timeout(s));
		switch (rc) {
		case RD_LINE:
			for (i = 0; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
				;
			if (i == len)
				break;
			s->st.lines++;
			if (stage_line(s, line, len, rd->name, rd->lineno, no_nl, &err) < 0) {
				cm_warn("%s:%lu: %s", rd->name, rd->lineno, err.msg);
				s->st.rejected++;
			}
			break;
		case RD_LONG:
			s->st.lines++;
			s->st.rejected++;
			cm_warn("%s:%lu: line longer than %zu bytes: not stored", rd->name,
			        rd->lineno, s->max_line);
			break;
		case RD_TIMEOUT:
			if (hand_over(s) < 0)
				return -1;
			break;
		case RD_EOF:
			return 0;
		case RD_INTR:
			break;
		case RD_WAKE:
			return -1;
		default:
			s->st.rejected++; /* the rest of this input is lost to us */
			return 0;
		}
		if (s->cur->n >= s->batch_max ||
		    s->cur->ev.len + s->cur->mt.len >= BATCH_MAX_COPY ||
		    (s->cur->n && flush_timeout(s) == 0))
			if (hand_over(s) < 0)
				return -1;
	}
	return 0;
}

/* Adds b's counts to a. */
static void stats_add(struct stats *a, const struct stats *b)
{
	a->lines += b->lines;
	a->events += b->events;
	a->matches += b->matches;
	a->rejected += b->rejected;
	a->events_new += b->events_new;
	a->matches_new += b->matches_new;
	a->batches += b->batches;
	a->acked += b->acked;
	a->retries += b->retries;
	a->dead += b->dead;
}

/* Prints the counts of --stats. */
static void print_stats(const struct stats *st, int64_t ms)
{
	double secs = ms > 0 ? (double)ms / 1000 : 0.001;

	cm_warn("%llu lines: %llu events (%llu new), %llu matches (%llu new), %llu rejected "
	        "(%llu dead-lettered); %llu batches, %llu acknowledged, %llu retries; %.2f s, %.0f "
	        "lines/s",
	        st->lines, st->events, st->events_new, st->matches, st->matches_new, st->rejected,
	        st->dead, st->batches, st->acked, st->retries, secs, (double)st->lines / secs);
}

/* Parses the options into s; exits 2 on a usage error. */
static void parse_options(struct store *s, int argc, char **argv)
{
	enum {
		O_FLUSH = 256,
		O_CONNS,
		O_RETRY,
		O_ACK,
		O_REDIS,
		O_STREAM,
		O_GROUP,
		O_MAXLINE,
		O_STATS
	};
	static const struct option longopts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"batch", required_argument, NULL, 'b'},
	    {"flush-ms", required_argument, NULL, O_FLUSH},
	    {"connections", required_argument, NULL, O_CONNS},
	    {"retry-for", required_argument, NULL, O_RETRY},
	    {"ack", no_argument, NULL, O_ACK},
	    {"redis", required_argument, NULL, O_REDIS},
	    {"stream", required_argument, NULL, O_STREAM},
	    {"group", required_argument, NULL, O_GROUP},
	    {"max-line", required_argument, NULL, O_MAXLINE},
	    {"stats", no_argument, NULL, O_STATS},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *db = NULL, *redis = NULL;
	struct cm_redis_url u;
	struct cm_err err;
	int64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "d:b:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			db = optarg;
			break;
		case 'b':
			if (cm_parse_i64(optarg, 1, 1000000, &v) < 0)
				cm_usage_error("--batch: expected a number from 1 to 1000000, "
				               "not '%s'",
				               optarg);
			s->batch_max = (size_t)v;
			break;
		case O_FLUSH:
			if (cm_parse_i64(optarg, 0, 3600000, &v) < 0)
				cm_usage_error("--flush-ms: expected milliseconds from 0 to "
				               "3600000, not '%s'",
				               optarg);
			s->flush_ms = v;
			break;
		case O_CONNS:
			if (cm_parse_i64(optarg, 1, MAX_CONNS, &v) < 0)
				cm_usage_error("--connections: expected a number from 1 to %d, "
				               "not '%s'",
				               MAX_CONNS, optarg);
			s->nconns = (int)v;
			break;
		case O_RETRY:
			if (cm_parse_i64(optarg, 0, 86400 * 365, &v) < 0)
				cm_usage_error("--retry-for: expected seconds, not '%s'", optarg);
			s->retry_ms = v * 1000;
			break;
		case O_ACK:
			s->ack = 1;
			break;
		case O_REDIS:
			redis = optarg;
			break;
		case O_STREAM:
			s->stream = optarg;
			break;
		case O_GROUP:
			s->group = optarg;
			break;
		case O_MAXLINE:
			if (cm_parse_size(optarg, 64, (size_t)1 << 30, &s->max_line) < 0)
				cm_usage_error("--max-line: expected a size from 64 to 1G, not "
				               "'%s'",
				               optarg);
			break;
		case O_STATS:
			s->show_stats = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(fflush(stdout) == 0 ? CM_EXIT_OK : CM_EXIT_USAGE);
		case 'V':
			cm_print_version();
		default:
			cm_usage_error("invalid option");
		}
	}
	if (!*s->stream || !*s->group)
		cm_usage_error("--stream and --group must not be empty");
	s->conninfo = cm_pg_conninfo(db);
	if (cm_pg_conninfo_check(s->conninfo, &err) < 0)
		cm_usage_error("%s", err.msg);
	if (s->ack) {
		s->redis_url = cm_redis_url(redis);
		if (cm_redis_url_parse(s->redis_url, &u, &err) < 0)
			cm_usage_error("--redis: %s", err.msg);
	} else if (redis) {
		cm_usage_error("--redis is only used with --ack");
	}
}

/* Connects the first storing thread's database before reading anything, so
 * that a wrong database or a missing schema is said at once, and a database
 * still starting up is waited for (--retry-for). */
static int first_connect(struct store *s)
{
	struct conn *c = &s->conns[0];
	struct cm_backoff bo;
	struct cm_err err;

	cm_backoff_start(&bo, s->retry_ms);
	for (;;) {
		c->pg = cm_pg_connect(s->conninfo, &err);
		if (c->pg && pg_setup(c, &err) == 0)
			break;
		if (c->pg) {
			PQfinish(c->pg);
			c->pg = NULL;
		}
		if (c->exit_code) {
			cm_warn("%s", err.msg);
			return c->exit_code;
		}
		if (bo.attempts == 0 && s->retry_ms > 0)
			cm_warn("%s; retrying for up to %lld s", err.msg,
			        (long long)(s->retry_ms / 1000));
		if (signals || cm_backoff_wait(&bo, &open_mask) < 0 || signals) {
			cm_warn("gave up: %s", err.msg);
			return EXIT_UNREACHABLE;
		}
	}
	if (s->ack) {
		c->redis = cm_redis_connect(s->redis_url, &err);
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
	struct sigaction sa;
	sigset_t block;
	int64_t t0;
	int i, nfiles, rc, failed = 0, stopped = 0;

	s.batch_max = 5000;
	s.flush_ms = 100;
	s.nconns = 2;
	s.retry_ms = 60000;
	s.max_line = CM_STORE_LINE_MAX;
	s.stream = CM_REDIS_DEFAULT_STREAM;
	s.group = CM_REDIS_DEFAULT_GROUP;
	cm_cli_init(argv[0]);
	parse_options(&s, argc, argv);
	if (cm_buf_adds(&s.dead_key, s.stream) < 0 ||
	    cm_buf_adds(&s.dead_key, CM_REDIS_DEAD_SUFFIX) < 0) {
		cm_warn("out of memory");
		return EXIT_REFUSED;
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
	cm_buf_init(&s.scratch, 0);
	cm_buf_init(&s.fld, 0);
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	t0 = cm_time_now();

	s.wake[0] = s.wake[1] = -1;
	if (pipe2(s.wake, O_CLOEXEC) < 0) {
		cm_warn("pipe: %s", strerror(errno));
		rc = EXIT_REFUSED;
		goto out;
	}
	rc = first_connect(&s);
	if (rc)
		goto out;
	/* From here on the signals are only taken while waiting (the threads
	 * inherit the mask). */
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	s.cur = malloc(sizeof(*s.cur));
	if (!s.cur)
		goto oom;
	batch_init(s.cur);
	for (i = 0; i < s.nconns; i++) {
		struct conn *c = &s.conns[i];
		c->s = &s;
		c->spare = malloc(sizeof(*c->spare));
		if (!c->spare)
			goto oom;
		batch_init(c->spare);
		if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
			cm_warn("cannot start a storing thread: %s", strerror(errno));
			batch_free(c->spare);
			c->spare = NULL;
			s.nconns = i;
			if (i == 0) {
				rc = EXIT_REFUSED;
				goto out;
			}
			break;
		}
		c->started = 1;
	}

	nfiles = argc - optind;
	for (i = 0; i < (nfiles ? nfiles : 1) && !signals && !stopped; i++) {
		struct reader rd;
		if (rd_open(&rd, nfiles ? argv[optind + i] : "-", s.max_line) < 0) {
			failed = CM_EXIT_USAGE;
			continue;
		}
		rd.wake_fd = s.wake[0];
		stopped = store_input(&s, &rd) < 0;
		rd_close(&rd);
	}
	if (!stopped)
		hand_over(&s);
	rc = 0;
	goto out;
oom:
	cm_warn("out of memory");
	rc = EXIT_REFUSED;
out:
	pthread_mutex_lock(&s.mu);
	s.closing = 1;
	pthread_cond_broadcast(&s.cv);
	pthread_mutex_unlock(&s.mu);
	for (i = 0; i < MAX_CONNS; i++) {
		struct conn *c = &s.conns[i];
		if (c->started)
			pthread_join(c->thread, NULL);
		stats_add(&s.st, &c->st);
		if (c->pg)
			PQfinish(c->pg);
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
	if (s.show_stats)
		print_stats(&s.st, cm_time_now() - t0);
	batch_free(s.cur);
	cm_jdoc_release(&s.doc);
	cm_buf_release(&s.scratch);
	cm_buf_release(&s.fld);
	cm_buf_release(&s.dead_key);
	if (s.wake[0] >= 0) {
		close(s.wake[0]);
		close(s.wake[1]);
	}
	pthread_mutex_destroy(&s.mu);
	pthread_cond_destroy(&s.cv);
	return rc;
}
