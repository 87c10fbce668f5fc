/* cm-publish - canonical events (NDJSON) into a Redis stream through the one
 * publisher (xadd.h: pipelined batches, a confirmation per entry, resending
 * what is unconfirmed), and trims the stream safely. */
#include "buf.h"
#include "tool.h"
#include "err.h"
#include "event.h"
#include "json.h"
#include "lines.h"
#include "redisx.h"
#include "retry.h"
#include "xadd.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
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

struct pub {
	struct cm_common_opts opt; /* --redis, --stream, --retry-for, --max-line */
	struct cm_redis_url url;
	const char *key;
	char **files;
	int nfiles;
	size_t batch;
	int64_t retry_ms;
	redisContext *ctx;  /* --trim's */
	struct cm_xadd *x;  /* the one publisher (xadd.h) */
	struct cm_buf json; /* scratch: one event in compact form */
	/* the first entry given up, and how many were */
	uint64_t failed_tag;
	unsigned long long failed;
	char failed_msg[512];
	int warned; /* "retrying" was said */
	/* entries added since the last pump, and since the last flush */
	size_t filling, held;
};

/* An entry's tag: its input file and line. */
#define TAG(file, line) ((uint64_t)(file) << 40 | (uint64_t)(line))
#define TAG_FILE(t)     ((int)((t) >> 40))
#define TAG_LINE(t)     ((unsigned long)((t) & ((UINT64_C(1) << 40) - 1)))

/* The name of input file i for messages. */
static const char *file_name(const struct pub *p, int i)
{
	if (p->nfiles == 0 || strcmp(p->files[i], "-") == 0)
		return "stdin";
	return p->files[i];
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

/* The publisher's report of one entry: only the ones given up matter here
 * (the first is named when publishing fails). */
static void on_entry(void *ctx, uint64_t tag, const char *id, size_t idlen, const char *error)
{
	struct pub *p = ctx;

	if (!error)
		return;
	if (p->failed++ == 0) {
		p->failed_tag = tag;
		snprintf(p->failed_msg, sizeof(p->failed_msg), "%s", error);
	}
}

/* What the publisher's retry loop says, on stderr. */
static void on_note(void *ctx, int what, const char *msg, int64_t left_ms)
{
	struct pub *p = ctx;

	if (what == CM_XADD_RETRYING) {
		cm_warn("%s; retrying for up to %lld s", msg, (long long)((left_ms + 999) / 1000));
		p->warned = 1;
	} else if (p->warned) {
		cm_warn("%s: publishing again", p->url.safe);
		p->warned = 0;
	}
}

/* After the publisher gave up: names the first line not confirmed and
 * returns the exit status that err's code means (3 unreachable, 4 refused). */
static int given_up(struct pub *p, const struct cm_err *err)
{
	if (p->failed > 1)
		cm_warn("%s:%lu: not confirmed by Redis: %s (and %llu more lines)",
		        file_name(p, TAG_FILE(p->failed_tag)), TAG_LINE(p->failed_tag),
		        p->failed_msg, p->failed - 1);
	else if (p->failed)
		cm_warn("%s:%lu: not confirmed by Redis: %s", file_name(p, TAG_FILE(p->failed_tag)),
		        TAG_LINE(p->failed_tag), p->failed_msg);
	else
		cm_warn("not confirmed by Redis: %s", err->msg);
	return err->code == CM_EXIT_UNREACHABLE || err->code == CM_EXIT_REFUSED ||
	               err->code == CM_EXIT_SYSTEM
	           ? err->code
	           : CM_EXIT_REFUSED;
}

/* Sends and confirms everything added; 0 or the exit status (reported). */
static int flush_all(struct pub *p)
{
	struct cm_err err = {"", 0};

	p->filling = p->held = 0;
	if (cm_xadd_flush(p->x, &err) < 0)
		return given_up(p, &err);
	return 0;
}

/* Called when a batch is full: sends it and collects the replies of the
 * batch before, so that Redis works on one batch while the next is read and
 * encoded; 0 or the exit status (reported). */
static int pump(struct pub *p)
{
	struct cm_err err = {"", 0};

	p->filling = 0;
	if (cm_xadd_pump(p->x, 1, &err) < 0)
		return given_up(p, &err);
	return 0;
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
		if (p->held > 0 && !cm_lines_ready(&r, 1) && (status = flush_all(p)) != 0)
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
		if (compact_event(p, doc) < 0 ||
		    cm_xadd_add(p->x, p->json.data, p->json.len, TAG(fi, r.lineno)) < 0) {
			cm_warn("%s:%lu: out of memory", name, r.lineno);
			status = CM_EXIT_SYSTEM;
			break;
		}
		p->filling++;
		p->held++;
		if (p->filling == p->batch && (status = pump(p)) != 0)
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
	cm_buf_init(&p.json, 0);
	cm_jdoc_init(&doc, 0);
	cm_progress_init(&prog);
	{
		struct cm_xadd_opts xo = {&p.url, p.key, p.retry_ms, 0, 0, on_note};

		p.x = cm_xadd_new(&xo, on_entry, &p);
	}
	if (!p.x) {
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
	cm_xadd_free(p.x);
	cm_jdoc_release(&doc);
	cm_buf_release(&p.json);
	return status;
}
