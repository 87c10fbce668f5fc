/* cm-publish - canonical events (NDJSON) into a Redis stream, XADD in
 * pipelined batches; retries a failed batch, and trims the stream safely. */
#include "buf.h"
#include "tool.h"
#include "err.h"
#include "event.h"
#include "json.h"
#include "lines.h"
#include "redisx.h"
#include "retry.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    "2 usage error or unreadable file; 3 Redis unreachable for --retry-for;\n"
    "4 Redis refused an entry or the password; 5 a read error.\n";

/* One XADD of the batch: its RESP text in the batch buffer and its origin. */
struct entry {
	size_t off, len;
	unsigned long line;
	int file;
	int done;
};

struct pub {
	struct cm_common_opts opt; /* --redis, --stream, --retry-for, --max-line */
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
	cm_buf_reset(&p->json);
	if (cm_json_get(d, 0, "_stream_id", 10) == CM_JNONE) {
		/* Without a space, tab or CR anywhere the text is compact
		 * already (the usual case: cm-ingest's output): taken as is. */
		if (!memchr(d->src, ' ', d->len) && !memchr(d->src, '\t', d->len) &&
		    !memchr(d->src, '\r', d->len))
			return cm_buf_add(&p->json, d->src, d->len);
		return cm_json_write(d, 0, &p->json);
	}
	return cm_stream_event_compact(d, &p->json);
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
 * ones on the one backoff (retry.h) for up to --retry-for; 0, or the exit
 * status (reported) when Redis stayed unreachable (3) or refused an entry or
 * the connection for good (4). */
static int flush_all(struct pub *p)
{
	struct cm_err err = {"", 0};
	struct cm_backoff bo;
	int64_t left;
	int rc, warned = 0;

	/* Collect the replies still due for the batch in flight first. */
	if (p->ctx && p->nsent > 0)
		read_range(p, 0, p->nsent, &err);
	p->nsent = 0;
	if (p->nent == 0)
		return 0;
	cm_backoff_start(&bo, p->retry_ms);
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
				return CM_EXIT_REFUSED;
			}
		} else if (err.code == CM_EXIT_REFUSED || err.code == CM_EXIT_SYSTEM) {
			report_unconfirmed(p, &err);
			return err.code;
		}
		left = cm_backoff_left(&bo);
		if (left == 0) {
			report_unconfirmed(p, &err);
			return CM_EXIT_UNREACHABLE;
		}
		if (!warned)
			cm_warn("%s; retrying for up to %lld s", err.msg,
			        (long long)((left + 999) / 1000));
		warned = 1;
		cm_backoff_wait(&bo, NULL);
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

/* Reads one input and publishes its events, adding the lines rejected to
 * *rejected; returns 0, or the exit status (reported) of a read error (5) or
 * of publishing that failed for good. */
static int publish_file(struct pub *p, int fi, size_t max_line, struct cm_jdoc *doc,
                        struct cm_progress *prog, long *rejected)
{
	const char *path = p->nfiles ? p->files[fi] : "-";
	const char *name = file_name(p, fi);
	struct cm_lines r;
	struct cm_event_view view;
	struct cm_err err;
	const char *line;
	size_t len;
	int st, status = 0;

	if (cm_lines_open(&r, path, max_line, &err) < 0) {
		cm_warn("%s", err.msg);
		return CM_EXIT_USAGE;
	}
	for (;;) {
		/* a trickle of events is published at once instead of waiting
		 * for a full batch: when the next line is not there yet */
		if (p->nent > 0 && !cm_lines_ready(&r, 1) && (status = flush_all(p)) != 0)
			break;
		st = cm_lines_next(&r, &line, &len, &err);
		if (st == CM_LINE_EOF)
			break;
		if (st == CM_LINE_ERR) {
			cm_warn("%s", err.msg);
			status = CM_EXIT_SYSTEM;
			break;
		}
		if (st == CM_LINE_LONG) {
			cm_warn("%s:%lu: line longer than %zu bytes", name, r.lineno, max_line);
			(*rejected)++;
			continue;
		}
		cm_progress_tick(prog, len + 1);
		if (cm_event_parse(doc, line, len, &view, &err) < 0) {
			cm_warn("%s:%lu: %s", name, r.lineno, err.msg);
			(*rejected)++;
			continue;
		}
		if (compact_event(p, doc) < 0 || add_entry(p, fi, r.lineno) < 0) {
			cm_warn("%s:%lu: out of memory", name, r.lineno);
			status = CM_EXIT_SYSTEM;
			break;
		}
		if (p->nent - p->nsent == p->batch && (status = pump(p)) != 0)
			break;
	}
	cm_lines_release(&r);
	return status;
}

/* The --trim mode: one safe trim, retried on the one backoff while Redis is
 * unreachable; 0 or the exit status (reported). */
static int trim_once(struct pub *p)
{
	struct cm_err err;
	struct cm_backoff bo;

	cm_backoff_start(&bo, p->retry_ms);
	for (;;) {
		if (!p->ctx)
			p->ctx = cm_redis_connect_url(&p->url, &err);
		if (p->ctx) {
			if (cm_redis_trim_safe(p->ctx, p->key, NULL, &err) == 0)
				return 0;
			cm_err_prefix(&err, "%s: ", p->url.safe);
			if (!p->ctx->err) {
				cm_warn("%s", err.msg);
				return CM_EXIT_REFUSED;
			}
			redisFree(p->ctx);
			p->ctx = NULL;
		} else if (err.code == CM_EXIT_REFUSED || err.code == CM_EXIT_SYSTEM) {
			cm_warn("%s", err.msg);
			return err.code;
		}
		if (cm_backoff_wait(&bo, NULL) < 0) {
			cm_warn("%s", err.msg);
			return CM_EXIT_UNREACHABLE;
		}
	}
}

enum { OPT_BATCH = 256, OPT_TRIM };

/* Parses the options into p; exits on --help, --version and usage errors.
 * Returns whether --trim was given. */
static int parse_options(struct pub *p, int argc, char **argv)
{
	static const struct option opts[] = {
	    CM_OPTION_REDIS,
	    CM_OPTION_STREAM,
	    {"batch", required_argument, NULL, OPT_BATCH},
	    CM_OPTION_RETRY_FOR,
	    CM_OPTION_MAX_LINE,
	    {"trim", no_argument, NULL, OPT_TRIM},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct cm_err err;
	int c, trim = 0;

	p->opt.stream = CM_REDIS_DEFAULT_STREAM;
	p->opt.retry_ms = 30000;
	p->opt.max_line = CM_EVENT_LINE_MAX;
	p->batch = 256;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
		switch (c) {
		case OPT_BATCH:
			p->batch = (size_t)cm_opts_int("batch", optarg, 1, 100000, "a number");
			break;
		case OPT_TRIM:
			trim = 1;
			break;
		default:
			cm_opts_default(&p->opt, c, optarg, argc, argv, usage_text);
		}
	}
	if (cm_redis_url_parse(cm_opts_redis(&p->opt), &p->url, &err) < 0)
		cm_usage_error("--redis: %s", err.msg);
	p->key = p->opt.stream;
	p->retry_ms = p->opt.retry_ms;
	p->files = argv + optind;
	p->nfiles = argc - optind;
	if (trim && p->nfiles > 0)
		cm_usage_error("--trim reads no input, but files were given");
	return trim;
}

int main(int argc, char **argv)
{
	struct pub p;
	struct cm_jdoc doc;
	struct cm_progress prog;
	int i, status = CM_EXIT_OK;
	long rejected = 0;

	cm_cli_init(argv[0]);
	memset(&p, 0, sizeof(p));
	if (parse_options(&p, argc, argv)) {
		status = trim_once(&p);
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
		status = CM_EXIT_SYSTEM;
		goto out;
	}
	for (i = 0; i < (p.nfiles ? p.nfiles : 1) && status == 0; i++)
		status = publish_file(&p, i, p.opt.max_line, &doc, &prog, &rejected);
	/* What was read before a read error is published all the same. */
	if (status == 0 || status == CM_EXIT_SYSTEM || status == CM_EXIT_USAGE) {
		int st = flush_all(&p);
		if (st && !status)
			status = st;
	}
	if (status == 0 && rejected)
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
