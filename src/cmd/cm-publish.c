/* cm-publish - canonical events (NDJSON) into a Redis stream, XADD in
 * pipelined batches; retries a failed batch, and trims the stream safely. */
#include "buf.h"
#include "tool.h"
#include "err.h"
#include "event.h"
#include "json.h"
#include "lines.h"
#include "redisx.h"
#include "timefmt.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Exit status when Redis stays unreachable or refuses an entry. */
#define EXIT_REDIS 3

static const char usage_text[] =
    "Usage: cm-publish [--redis URL] [--stream KEY] [--batch N] [--retry-for SECONDS]\n"
    "                  [--max-line SIZE] [FILE...]\n"
    "       cm-publish [--redis URL] [--stream KEY] [--retry-for SECONDS] --trim\n"
    "Append canonical events (NDJSON) to a Redis stream, one XADD KEY * data JSON\n"
    "per event, in pipelined batches.\n"
    "\n"
    "  --redis URL           redis://[[user]:password@]host[:port][/db] or\n"
    "                        unix:///path[?db=N] (default $CM_REDIS_URL, else\n"
    "                        redis://127.0.0.1:6379)\n"
    "  --stream KEY          stream key (default cm:events)\n"
    "  --batch N             XADD commands sent per round trip (default 256)\n"
    "  --retry-for SECONDS   keep retrying an unreachable Redis this long (default 30)\n"
    "  --max-line SIZE       longest accepted line (default 1M)\n"
    "  --trim                read no input: trim the stream below the oldest entry\n"
    "                        that any consumer group still needs, then exit\n"
    "  -h, --help            this help\n"
    "  -V, --version         version\n"
    "\n"
    "Exit status: 0 all published; 1 some lines rejected (not published);\n"
    "2 usage error or unreadable file; 3 Redis unreachable or refusing.\n";

/* One XADD of the batch: its RESP text in the batch buffer and its origin. */
struct entry {
	size_t off, len;
	unsigned long line;
	int file;
	int done;
};

struct pub {
	struct cm_redis_url url;
	const char *key;
	char **files;
	int nfiles;
	size_t batch;
	int64_t retry_ms;
	redisContext *ctx;
	struct cm_buf resp; /* the batch's commands, RESP-encoded */
	struct cm_buf json; /* scratch: one event in compact form */
	struct cm_buf head; /* "*5\r\n$4\r\nXADD\r\n$n\r\nKEY\r\n..." up to the data */
	struct entry *ent;  /* up to two batches: nsent sent, the rest filling */
	size_t nent, nsent;
	unsigned long long published;
};

/* Milliseconds on a clock that does not jump. */
static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps ms milliseconds (whole, despite signals). */
static void sleep_ms(int64_t ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The name of input file i for messages. */
static const char *file_name(const struct pub *p, int i)
{
	if (p->nfiles == 0 || strcmp(p->files[i], "-") == 0)
		return "stdin";
	return p->files[i];
}

/* Precomputes the constant start of every XADD command, so that each event
 * costs one length prefix and one copy. */
static int build_head(struct pub *p)
{
	size_t klen = strlen(p->key), flen = strlen(CM_REDIS_FIELD);

	if (cm_buf_addf(&p->head, "*5\r\n$4\r\nXADD\r\n$%zu\r\n", klen) < 0 ||
	    cm_buf_add(&p->head, p->key, klen) < 0 ||
	    cm_buf_addf(&p->head, "\r\n$1\r\n*\r\n$%zu\r\n%s\r\n", flen, CM_REDIS_FIELD) < 0)
		return -1;
	return 0;
}

/* Writes the event in compact form into p->json, leaving out a top-level
 * _stream_id (an id from an earlier trip through a stream is stale: the
 * consumer adds the current one). */
static int compact_event(struct pub *p, const struct cm_jdoc *d)
{
	uint32_t t, first = 1;
	int rc = 0;

	cm_buf_reset(&p->json);
	if (cm_json_get(d, 0, "_stream_id", 10) == CM_JNONE) {
		/* Without a space, tab or CR anywhere the text is compact
		 * already (the usual case: cm-ingest's output): taken as is. */
		if (!memchr(d->src, ' ', d->len) && !memchr(d->src, '\t', d->len) &&
		    !memchr(d->src, '\r', d->len))
			return cm_buf_add(&p->json, d->src, d->len);
		return cm_json_write(d, 0, &p->json);
	}
	rc |= cm_buf_addc(&p->json, '{');
	for (t = 1; t < d->tok[0].next; t = d->tok[t + 1].next) {
		if (cm_json_str_eq(d, t, "_stream_id", 10))
			continue;
		if (!first)
			rc |= cm_buf_addc(&p->json, ',');
		first = 0;
		rc |= cm_buf_addc(&p->json, '"');
		rc |= cm_buf_add(&p->json, d->src + d->tok[t].off, d->tok[t].len);
		rc |= cm_buf_adds(&p->json, "\":");
		rc |= cm_json_write(d, t + 1, &p->json);
	}
	rc |= cm_buf_addc(&p->json, '}');
	return rc ? -1 : 0;
}

/* Appends the XADD for the event now in p->json to the batch. */
static int add_entry(struct pub *p, int file, unsigned long line)
{
	struct entry *e = &p->ent[p->nent];

	e->off = p->resp.len;
	e->file = file;
	e->line = line;
	e->done = 0;
	if (cm_buf_add(&p->resp, p->head.data, p->head.len) < 0 ||
	    cm_buf_addf(&p->resp, "$%zu\r\n", p->json.len) < 0 ||
	    cm_buf_add(&p->resp, p->json.data, p->json.len) < 0 ||
	    cm_buf_add(&p->resp, "\r\n", 2) < 0)
		return -1;
	e->len = p->resp.len - e->off;
	p->nent++;
	return 0;
}

/* Drops the context after an I/O error, keeping its message in err. */
static int lost(struct pub *p, struct cm_err *err)
{
	cm_errf(err, "%s", p->ctx->errstr[0] ? p->ctx->errstr : "connection lost");
	redisFree(p->ctx);
	p->ctx = NULL;
	return -1;
}

/* Queues the unconfirmed commands among entries [from, to) and writes them
 * to the socket; -1 after an I/O error (the context is dropped). */
static int send_range(struct pub *p, size_t from, size_t to, struct cm_err *err)
{
	size_t i;
	int done = 0;

	for (i = from; i < to; i++) {
		struct entry *e = &p->ent[i];
		size_t n = e->len;

		if (e->done)
			continue;
		/* A run of unconfirmed entries is contiguous in the buffer. */
		while (i + 1 < to && !p->ent[i + 1].done) {
			i++;
			n += p->ent[i].len;
		}
		if (redisAppendFormattedCommand(p->ctx, p->resp.data + e->off, n) != REDIS_OK)
			return lost(p, err);
	}
	do
		if (redisBufferWrite(p->ctx, &done) != REDIS_OK)
			return lost(p, err);
	while (!done);
	return 0;
}

/* Reads the replies of the unconfirmed entries [from, to), in order, marking
 * each confirmed one. Returns 0 when all are confirmed; -1 after an I/O error
 * (the context is dropped); -2 when Redis refused one for good; -3 when it
 * refused some for now (LOADING, OOM...). err gets the first error. */
static int read_range(struct pub *p, size_t from, size_t to, struct cm_err *err)
{
	size_t i;
	int rc = 0;

	for (i = from; i < to; i++) {
		struct entry *e = &p->ent[i];
		redisReply *r = NULL;

		if (e->done)
			continue;
		if (redisGetReply(p->ctx, (void **)&r) != REDIS_OK)
			return lost(p, err);
		if (r->type == REDIS_REPLY_ERROR) {
			if (rc == 0)
				cm_errf(err, "%.300s", r->str);
			if (!cm_redis_error_transient(r->str, r->len))
				rc = -2;
			else if (rc == 0)
				rc = -3;
		} else {
			e->done = 1;
			p->published++;
		}
		freeReplyObject(r);
	}
	return rc;
}

/* Reports the first entry that Redis has not confirmed. */
static void report_unconfirmed(const struct pub *p, const struct cm_err *err)
{
	size_t i;

	for (i = 0; i < p->nent; i++)
		if (!p->ent[i].done) {
			cm_warn("%s:%lu: not confirmed by Redis: %s", file_name(p, p->ent[i].file),
			        p->ent[i].line, err->msg);
			return;
		}
}

/* Forgets the first n entries (confirmed) and their commands. */
static void drop_front(struct pub *p, size_t n)
{
	size_t base, i;

	if (n == 0)
		return;
	if (n == p->nent) {
		p->nent = 0;
		cm_buf_reset(&p->resp);
		return;
	}
	base = p->ent[n].off;
	memmove(p->resp.data, p->resp.data + base, p->resp.len - base);
	p->resp.len -= base;
	memmove(p->ent, p->ent + n, (p->nent - n) * sizeof(*p->ent));
	p->nent -= n;
	for (i = 0; i < p->nent; i++)
		p->ent[i].off -= base;
}

/* Publishes every entry held, reconnecting and resending the unconfirmed
 * ones with exponential backoff for up to --retry-for; 0, or -1 (reported)
 * when Redis stayed unreachable or refused an entry for good. */
static int flush_all(struct pub *p)
{
	struct cm_err err = {"", 0};
	int64_t deadline = -1, backoff = 50, now;
	int rc, warned = 0;

	/* Collect the replies still due for the batch in flight first. */
	if (p->ctx && p->nsent > 0)
		read_range(p, 0, p->nsent, &err);
	p->nsent = 0;
	if (p->nent == 0)
		return 0;
	for (;;) {
		if (!p->ctx)
			p->ctx = cm_redis_connect_url(&p->url, &err);
		if (p->ctx) {
			rc = send_range(p, 0, p->nent, &err);
			if (rc == 0)
				rc = read_range(p, 0, p->nent, &err);
			if (rc == 0)
				break;
			cm_err_prefix(&err, "%s: ", p->url.safe);
			if (rc == -2) {
				report_unconfirmed(p, &err);
				return -1;
			}
		}
		now = mono_ms();
		if (deadline < 0)
			deadline = now + p->retry_ms;
		if (now >= deadline) {
			report_unconfirmed(p, &err);
			return -1;
		}
		if (!warned)
			cm_warn("%s; retrying for up to %lld s", err.msg,
			        (long long)((deadline - now + 999) / 1000));
		warned = 1;
		sleep_ms(backoff < deadline - now ? backoff : deadline - now);
		backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
	}
	if (warned)
		cm_warn("%s: publishing again", p->url.safe);
	p->nent = p->nsent = 0;
	cm_buf_reset(&p->resp);
	return 0;
}

/* Called when a new batch is full: sends it, then collects the replies of
 * the batch sent before, so that Redis works on one batch while the next is
 * read and encoded. Any trouble falls back to flush_all. */
static int pump(struct pub *p)
{
	struct cm_err err;
	int rc;

	if (!p->ctx)
		return flush_all(p);
	rc = send_range(p, p->nsent, p->nent, &err);
	if (rc == 0)
		rc = read_range(p, 0, p->nsent, &err);
	if (rc == 0) {
		drop_front(p, p->nsent);
		p->nsent = p->nent;
		return 0;
	}
	/* Refused entries: collect the newer batch's replies too, so that the
	 * connection has nothing outstanding when flush_all resends. */
	if (p->ctx)
		read_range(p, p->nsent, p->nent, &err);
	p->nsent = 0;
	return flush_all(p);
}

/* True when the next line is not yet available (a quiet pipe), so that a
 * trickle of events is published at once instead of waiting for a full
 * batch. */
static int input_idle(const struct cm_lines *r)
{
	struct pollfd pfd = {r->fd, POLLIN, 0};

	if (r->buf && r->end > r->start && memchr(r->buf + r->start, '\n', r->end - r->start))
		return 0;
	return poll(&pfd, 1, 0) == 0;
}

/* True for a line of nothing but spaces and tabs (skipped, as CONTRACT says
 * of blank lines). */
static int is_blank(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return 0;
	return 1;
}

/* Reads one input and publishes its events; returns the number of rejected
 * lines, or -1 when publishing failed for good (reported). */
static long publish_file(struct pub *p, int fi, size_t max_line, struct cm_jdoc *doc,
                         struct cm_progress *prog, int *open_failed)
{
	const char *path = p->nfiles ? p->files[fi] : "-";
	const char *name = file_name(p, fi);
	struct cm_lines r;
	struct cm_event_view view;
	struct cm_err err;
	const char *line;
	size_t len;
	long rejected = 0;
	int st;

	if (cm_lines_open(&r, path, max_line, &err) < 0) {
		cm_warn("%s", err.msg);
		*open_failed = 1;
		return 0;
	}
	for (;;) {
		if (p->nent > 0 && input_idle(&r) && flush_all(p) < 0) {
			rejected = -1;
			break;
		}
		st = cm_lines_next(&r, &line, &len, &err);
		if (st == CM_LINE_EOF)
			break;
		if (st == CM_LINE_ERR) {
			cm_warn("%s", err.msg);
			*open_failed = 1;
			break;
		}
		if (st == CM_LINE_LONG) {
			cm_warn("%s:%lu: line longer than %zu bytes", name, r.lineno, max_line);
			rejected++;
			continue;
		}
		cm_progress_tick(prog, len + 1);
		if (is_blank(line, len))
			continue;
		if (cm_event_parse(doc, line, len, &view, &err) < 0) {
			cm_warn("%s:%lu: %s", name, r.lineno, err.msg);
			rejected++;
			continue;
		}
		if (compact_event(p, doc) < 0 || add_entry(p, fi, r.lineno) < 0) {
			cm_warn("%s:%lu: out of memory", name, r.lineno);
			rejected = -1;
			break;
		}
		if (p->nent - p->nsent == p->batch && pump(p) < 0) {
			rejected = -1;
			break;
		}
	}
	cm_lines_release(&r);
	return rejected;
}

/* The --trim mode: one safe trim, retried while Redis is unreachable. */
static int trim_once(struct pub *p)
{
	struct cm_err err;
	int64_t deadline = mono_ms() + p->retry_ms, backoff = 50;

	for (;;) {
		if (!p->ctx)
			p->ctx = cm_redis_connect_url(&p->url, &err);
		if (p->ctx) {
			if (cm_redis_trim_safe(p->ctx, p->key, NULL, &err) == 0)
				return 0;
			cm_err_prefix(&err, "%s: ", p->url.safe);
			if (!p->ctx->err) {
				cm_warn("%s", err.msg);
				return -1;
			}
			redisFree(p->ctx);
			p->ctx = NULL;
		}
		if (mono_ms() >= deadline) {
			cm_warn("%s", err.msg);
			return -1;
		}
		sleep_ms(backoff);
		backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
	}
}

enum { OPT_REDIS = 256, OPT_STREAM, OPT_BATCH, OPT_RETRY, OPT_MAXLINE, OPT_TRIM };

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"redis", required_argument, NULL, OPT_REDIS},
	    {"stream", required_argument, NULL, OPT_STREAM},
	    {"batch", required_argument, NULL, OPT_BATCH},
	    {"retry-for", required_argument, NULL, OPT_RETRY},
	    {"max-line", required_argument, NULL, OPT_MAXLINE},
	    {"trim", no_argument, NULL, OPT_TRIM},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct pub p;
	struct cm_err err;
	struct cm_jdoc doc;
	struct cm_progress prog;
	const char *url = NULL;
	size_t max_line = CM_EVENT_LINE_MAX;
	int64_t v;
	int c, i, trim = 0, open_failed = 0, status = CM_EXIT_OK;
	long rejected = 0, n;

	cm_cli_init(argv[0]);
	memset(&p, 0, sizeof(p));
	p.key = CM_REDIS_DEFAULT_STREAM;
	p.batch = 256;
	p.retry_ms = 30000;
	while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
		switch (c) {
		case OPT_REDIS:
			url = optarg;
			break;
		case OPT_STREAM:
			if (!*optarg)
				cm_usage_error("--stream: empty key");
			p.key = optarg;
			break;
		case OPT_BATCH:
			if (cm_parse_i64(optarg, 1, 100000, &v) < 0)
				cm_usage_error(
				    "--batch: expected a number from 1 to 100000, got '%s'",
				    optarg);
			p.batch = (size_t)v;
			break;
		case OPT_RETRY:
			if (cm_parse_i64(optarg, 0, 86400 * 365, &v) < 0)
				cm_usage_error(
				    "--retry-for: expected seconds (0 or more), got '%s'", optarg);
			p.retry_ms = v * 1000;
			break;
		case OPT_MAXLINE:
			if (cm_parse_size(optarg, 2, (size_t)1 << 30, &max_line) < 0)
				cm_usage_error("--max-line: expected a size up to 1G, got '%s'",
				               optarg);
			break;
		case OPT_TRIM:
			trim = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return fflush(stdout) == 0 ? CM_EXIT_OK : CM_EXIT_USAGE;
		case 'V':
			cm_print_version();
		default:
			fprintf(stderr, "Try 'cm-publish --help' for more information.\n");
			return CM_EXIT_USAGE;
		}
	}
	if (cm_redis_url_parse(cm_redis_url(url), &p.url, &err) < 0)
		cm_usage_error("%s", err.msg);
	p.files = argv + optind;
	p.nfiles = argc - optind;
	if (trim) {
		if (p.nfiles > 0)
			cm_usage_error("--trim reads no input, but files were given");
		status = trim_once(&p) < 0 ? EXIT_REDIS : CM_EXIT_OK;
		if (p.ctx)
			redisFree(p.ctx);
		return status;
	}
	/* Every file must be readable before anything is published. */
	for (i = 0; i < p.nfiles; i++) {
		int fd;

		if (strcmp(p.files[i], "-") == 0)
			continue;
		fd = open(p.files[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			cm_warn("%s: cannot open: %s", p.files[i], strerror(errno));
			return CM_EXIT_USAGE;
		}
		close(fd);
	}
	cm_buf_init(&p.resp, 0);
	cm_buf_init(&p.json, 0);
	cm_buf_init(&p.head, 0);
	cm_jdoc_init(&doc, 0);
	cm_progress_init(&prog);
	p.ent = calloc(2 * p.batch, sizeof(*p.ent));
	if (!p.ent || build_head(&p) < 0) {
		cm_warn("out of memory");
		status = EXIT_REDIS;
		goto out;
	}
	for (i = 0; i < (p.nfiles ? p.nfiles : 1); i++) {
		n = publish_file(&p, i, max_line, &doc, &prog, &open_failed);
		if (n < 0) {
			status = EXIT_REDIS;
			goto out;
		}
		rejected += n;
	}
	if (flush_all(&p) < 0) {
		status = EXIT_REDIS;
		goto out;
	}
	if (open_failed)
		status = CM_EXIT_USAGE;
	else if (rejected)
		status = CM_EXIT_REJECTED;
out:
	cm_progress_end(&prog);
	if (p.ctx)
		redisFree(p.ctx);
	free(p.ent);
	cm_jdoc_release(&doc);
	cm_buf_release(&p.resp);
	cm_buf_release(&p.json);
	cm_buf_release(&p.head);
	return status;
}
