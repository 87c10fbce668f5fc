/* cm-ingest.c - CSV or JSON lines in, canonical events (CONTRACT 1.1) out. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jq.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "csvin.h"
#include "csvmap.h"
#include "err.h"
#include "event.h"
#include "json.h"
#include "lines.h"
#include "out.h"
#include "timefmt.h"
#include "tool.h"

#define OUT_BATCH (256 * 1024)
#define SNIFF_MAX CM_LINES_PEEK_MAX

enum { FMT_AUTO, FMT_CSV, FMT_JSON };

/* Everything a run shares. */
struct ingest {
	int format, raw, stats, delim;
	const char *jqprog, *rejects;
	struct cm_common_opts opt; /* --max-line */
	unsigned max_depth;
	struct cm_csvmap map; /* the CSV header of the input being read, --types */

	struct cm_out out, rej;
	int rej_fd;
	jq_state *jq;
	struct cm_buf jqmsg;
	struct cm_jdoc doc, cell;
	struct cm_buf line, rawobj, tmp;
	struct cm_buf jqtext;
	size_t *jqoff;
	size_t njq, jqcap;
	const char *src;
	unsigned long long nread, nacc, nrej, nfilt;
	int status; /* the worst input or output error so far (enum cm_exit) */
	struct cm_progress prog;
};

static const char usage_text[] =
    "Usage: cm-ingest [OPTION]... [FILE]...\n"
    "Turn CSV or JSON lines into canonical events (NDJSON) on standard output.\n"
    "With no FILE, or when FILE is -, read standard input.\n"
    "\n"
    "  -f, --format FMT      csv, json or auto (default: by the file name: .csv .tsv\n"
    "                        .json .jsonl .ndjson; else '{' first means JSON)\n"
    "      --raw             no event validation: CSV rows become objects of\n"
    "                        header -> string exactly as in the file, JSON\n"
    "                        objects are written unchanged (compact)\n"
    "      --jq FILTER       map each raw record with a jq program; each output\n"
    "                        object becomes an event; no output drops the record\n"
    "  -t, --types COL=TYPE[,COL=TYPE...]\n"
    "                        type CSV columns (or in the header: amount:number):\n"
    "                        string, number, integer, boolean, json\n"
    "      --delimiter C     CSV field separator (default ',', tab for .tsv; 'tab')\n"
    "      --rejects FILE    write each rejected record to FILE as NDJSON\n"
    "                        {\"source\",\"line\",\"error\",\"raw\"}\n"
    "      --stats           print the record counts at the end\n"
    "      --max-line SIZE   longest JSON line or CSV record (default 1M; K, M, G)\n"
    "      --max-depth N     deepest JSON nesting (default 64)\n"
    "  -h, --help            show this help and exit\n"
    "  -V, --version         show the version and exit\n"
    "\n"
    "Exit status: 0 all records accepted, 1 some rejected, 2 usage or configuration\n"
    "error (or an input that cannot be opened), 5 a read or write error.\n";

/* Appends s[0..n) as a JSON string, turning bytes that are not UTF-8 into
 * U+FFFD, for the rejects file, which must stay valid JSON whatever came in. */
static int put_lossy(struct cm_buf *b, const char *s, size_t n)
{
	size_t i = 0;

	if (cm_buf_addc(b, '"'))
		return -1;
	while (i < n) {
		size_t k = cm_utf8_valid_prefix(s + i, n - i);

		if (k) {
			size_t mark = b->len;

			/* a valid run: escape it, without its quotes */
			if (cm_event_put_str(b, s + i, k))
				return -1;
			memmove(b->data + mark, b->data + mark + 1, b->len - mark - 2);
			b->len -= 2;
			b->data[b->len] = 0;
			i += k;
			continue;
		}
		if (cm_buf_add(b, "\\ufffd", 6))
			return -1;
		i++;
	}
	return cm_buf_addc(b, '"');
}

/* Writes the pending output lines; on a terminal after every record. */
static void flush_lines(struct ingest *g)
{
	if (g->line.len) {
		cm_out_write(&g->out, g->line.data, g->line.len);
		cm_buf_reset(&g->line);
	}
	if (g->out.tty)
		cm_out_flush(&g->out);
}

/* Counts an accepted record whose lines are in g->line. */
static void accept_rec(struct ingest *g)
{
	g->nacc++;
	if (g->line.len >= OUT_BATCH || g->out.tty)
		flush_lines(g);
}

/* Checks the event line appended to g->line since mark: a line longer than
 * --max-line is refused here, where it was made, so that no tool after
 * cm-ingest (whose defaults are set from this one) refuses it for its length. */
static int too_long(struct ingest *g, size_t mark, struct cm_err *err)
{
	size_t n = g->line.len - mark;

	if (n <= g->opt.max_line)
		return 0;
	g->line.len = mark;
	g->line.data[mark] = 0;
	return cm_errf(err,
	               "the event is %zu bytes long once normalised, longer than %zu bytes "
	               "(--max-line)",
	               n, g->opt.max_line);
}

/* Reports a rejected record on stderr and in the rejects file. */
static void reject(struct ingest *g, unsigned long line, const char *raw, size_t rawlen,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void reject(struct ingest *g, unsigned long line, const char *raw, size_t rawlen,
                   const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	g->nrej++;
	cm_warn("%s:%lu: %s", g->src, line, msg);
	if (g->rej_fd < 0)
		return;
	cm_buf_reset(&g->tmp);
	if (cm_buf_add(&g->tmp, "{\"source\":", 10) || put_lossy(&g->tmp, g->src, strlen(g->src)) ||
	    cm_buf_add(&g->tmp, ",\"line\":", 8) || cm_buf_add_i64(&g->tmp, (int64_t)line) ||
	    cm_buf_add(&g->tmp, ",\"error\":", 9) || put_lossy(&g->tmp, msg, strlen(msg)) ||
	    cm_buf_add(&g->tmp, ",\"raw\":", 7) || put_lossy(&g->tmp, raw, raw ? rawlen : 0) ||
	    cm_buf_addc(&g->tmp, '}'))
		return;
	if (cm_out_write(&g->rej, g->tmp.data, g->tmp.len) == 0)
		cm_out_endrec(&g->rej);
}

/* Prints the compile messages of a jq program, or drops a runtime debug
 * message: libjq must never print by itself. */
static void jq_msg(void *data, jv msg)
{
	struct cm_buf *b = data;

	if (b) {
		jv text = jv_get_kind(msg) == JV_KIND_STRING ? jv_copy(msg)
		                                             : jv_dump_string(jv_copy(msg), 0);
		const char *s = jv_string_value(text);
		size_t n = strlen(s);

		while (n && s[n - 1] == '\n')
			n--;
		if (b->len)
			cm_buf_addc(b, '\n');
		cm_buf_add(b, s, n);
		jv_free(text);
	}
	jv_free(msg);
}

/* Runs the jq program on one raw record and normalises each output; hraw is
 * what derived ids are hashed from, rraw the record as read. */
static void run_jq(struct ingest *g, jv in, const char *hraw, size_t hlen, const char *rraw,
                   size_t rlen, unsigned long line)
{
	size_t mark = g->line.len, limit = g->opt.max_line * 16;
	struct cm_err err;
	char num[32];

	cm_buf_reset(&g->jqtext);
	g->njq = 0;
	jq_start(g->jq, in, 0);
	for (;;) {
		jv o = jq_next(g->jq);

		if (!jv_is_valid(o)) {
			if (jv_invalid_has_msg(jv_copy(o))) {
				jv m = jv_invalid_get_msg(o);
				jv t = jv_get_kind(m) == JV_KIND_STRING ? m : jv_dump_string(m, 0);

				reject(g, line, rraw, rlen, "--jq: %s", jv_string_value(t));
				jv_free(t);
				return;
			}
			jv_free(o);
			break;
		}
		if (jv_get_kind(o) != JV_KIND_OBJECT) {
			reject(g, line, rraw, rlen, "--jq output %zu: expected an object, got %s",
			       g->njq, jv_kind_name(jv_get_kind(o)));
			jv_free(o);
			return;
		}
		jv t = jv_dump_string(o, 0);
		const char *ts = jv_string_value(t);
		size_t tl = strlen(ts);

		if (g->jqtext.len + tl > limit) {
			jv_free(t);
			reject(g, line, rraw, rlen, "--jq: outputs larger than %zu bytes", limit);
			return;
		}
		if (g->njq == g->jqcap) {
			size_t n = g->jqcap ? g->jqcap * 2 : 16;
			size_t *p = realloc(g->jqoff, (n + 1) * sizeof(*p));

			if (!p) {
				jv_free(t);
				reject(g, line, rraw, rlen, "out of memory");
				return;
			}
			g->jqoff = p;
			g->jqcap = n;
		}
		g->jqoff[g->njq++] = g->jqtext.len;
		if (cm_buf_add(&g->jqtext, ts, tl)) {
			jv_free(t);
			reject(g, line, rraw, rlen, "out of memory");
			return;
		}
		jv_free(t);
	}
	if (jq_halted(g->jq)) {
		reject(g, line, rraw, rlen, "--jq: the program halted");
		return;
	}
	if (g->njq == 0) {
		g->nfilt++;
		return;
	}
	g->jqoff[g->njq] = g->jqtext.len;
	for (size_t i = 0; i < g->njq; i++) {
		const char *ts = g->jqtext.data + g->jqoff[i];
		size_t tl = g->jqoff[i + 1] - g->jqoff[i];
		const char *h = hraw;
		size_t hl = hlen, here = g->line.len;

		if (g->njq > 1) {
			/* several events from one record: the index keeps ids apart */
			int k = snprintf(num, sizeof(num), "#%zu", i);

			cm_buf_reset(&g->tmp);
			if (cm_buf_add(&g->tmp, hraw, hlen) || cm_buf_add(&g->tmp, num, (size_t)k))
				goto nomem;
			h = g->tmp.data;
			hl = g->tmp.len;
		}
		if (cm_json_parse(&g->cell, ts, tl, &err) ||
		    cm_event_normalize(&g->cell, 0, h, hl, CM_EVENT_NOW, &g->line, &err) ||
		    too_long(g, here, &err)) {
			g->line.len = mark;
			if (g->line.data)
				g->line.data[mark] = 0;
			if (g->njq > 1)
				reject(g, line, rraw, rlen, "--jq output %zu: %s", i, err.msg);
			else
				reject(g, line, rraw, rlen, "%s", err.msg);
			return;
		}
		if (cm_buf_addc(&g->line, '\n'))
			goto nomem;
	}
	accept_rec(g);
	return;
nomem:
	g->line.len = mark;
	if (g->line.data)
		g->line.data[mark] = 0;
	reject(g, line, rraw, rlen, "out of memory");
}

/* One JSON line: parse, then map (--jq), copy (--raw) or normalise. */
static void json_record(struct ingest *g, const char *s, size_t n, unsigned long line)
{
	size_t mark = g->line.len;
	struct cm_err err;

	if (cm_json_parse(&g->doc, s, n, &err)) {
		reject(g, line, s, n, "invalid JSON: %s", err.msg);
		return;
	}
	if (g->jq) {
		jv in = jv_parse_sized(s, (int)n);

		if (!jv_is_valid(in)) {
			jv m = jv_invalid_get_msg(in);

			reject(g, line, s, n, "--jq: %s",
			       jv_get_kind(m) == JV_KIND_STRING ? jv_string_value(m) : "bad input");
			jv_free(m);
			return;
		}
		run_jq(g, in, s, n, s, n, line);
		return;
	}
	if (g->raw) {
		if (g->doc.tok[0].type != CM_JOBJ) {
			static const char *const kinds[] = {"null",     "false",    "true",
			                                    "a number", "a string", "an array",
			                                    "an object"};

			reject(g, line, s, n, "expected a JSON object, got %s",
			       kinds[g->doc.tok[0].type]);
			return;
		}
		if (cm_json_write(&g->doc, 0, &g->line) || cm_buf_addc(&g->line, '\n')) {
			reject(g, line, s, n, "out of memory");
			return;
		}
		accept_rec(g);
		return;
	}
	if (cm_event_normalize(&g->doc, 0, s, n, CM_EVENT_NOW, &g->line, &err) ||
	    too_long(g, mark, &err)) {
		reject(g, line, s, n, "%s", err.msg);
		return;
	}
	if (cm_buf_addc(&g->line, '\n')) {
		reject(g, line, s, n, "out of memory");
		return;
	}
	accept_rec(g);
}

/* The exit status that says more of two: a system error over a usage error
 * over none (CONTRACT section 2). */
static int worse(int a, int b)
{
	return a > b ? a : b;
}

/* Reports an error that ends the reading of one input; its code is the
 * exit status it stands for. */
static void input_error(struct ingest *g, const struct cm_err *err)
{
	cm_warn("%s", err->msg);
	g->status = worse(g->status, err->code);
}

/* Reads JSON lines to the end. */
static void json_file(struct ingest *g, struct cm_lines *r)
{
	struct cm_err err;
	const char *s = NULL;
	size_t n;

	for (;;) {
		int rc = cm_lines_next(r, &s, &n, &err);

		if (rc == CM_LINE_EOF)
			break;
		if (rc == CM_LINE_ERR) {
			input_error(g, &err);
			break;
		}
		g->nread++;
		if (rc == CM_LINE_LONG) {
			n = 0;
			reject(g, r->lineno, NULL, 0, "line longer than %zu bytes (--max-line)",
			       g->opt.max_line);
		} else {
			json_record(g, s, n, r->lineno);
		}
		cm_progress_tick(&g->prog, n + 1);
		if (g->out.closed || g->out.error)
			break;
	}
}

/* A CSV row as the jq program's input: header -> string, typed columns as
 * their JSON values, empty typed cells left out. */
static int row_to_jv(struct ingest *g, const struct cm_csvrec *rec, jv *out, struct cm_err *err)
{
	jv o = jv_object();

	for (size_t i = 0; i < rec->n; i++) {
		const char *s = rec->field[i], *name;
		size_t n = rec->len[i], namelen;
		int type = g->map.col[i].type;
		jv v;

		if (n == 0 && type != CM_CSVT_STRING)
			continue;
		if (cm_csvmap_check(&g->map, i, s, n, err)) {
			jv_free(o);
			return -1;
		}
		switch (type) {
		case CM_CSVT_BOOLEAN:
			v = cm_csvmap_bool(s, n) ? jv_true() : jv_false();
			break;
		case CM_CSVT_NUMBER:
		case CM_CSVT_INTEGER:
		case CM_CSVT_JSON:
			v = jv_parse_sized(s, (int)n);
			break;
		default:
			v = jv_string_sized(s, (int)n);
		}
		name = cm_csvmap_name(&g->map, i, &namelen);
		if (!jv_is_valid(v)) {
			jv_free(v);
			jv_free(o);
			return cm_errf(err, "column '%.*s': not a value jq can read", (int)namelen,
			               name);
		}
		o = jv_object_set(o, jv_string_sized(name, (int)namelen), v);
	}
	*out = o;
	return 0;
}

/* One CSV record (not the header) with as many fields as the header:
 * copied (--raw), mapped (--jq) or made an event. */
static void csv_record(struct ingest *g, const struct cm_csvrec *rec)
{
	struct cm_err err;
	size_t mark = g->line.len;
	int rc;

	if (g->jq) {
		jv in;

		cm_buf_reset(&g->rawobj);
		if (cm_csvmap_raw(&g->map, rec, &g->rawobj, &err) || row_to_jv(g, rec, &in, &err)) {
			reject(g, rec->line, rec->raw, rec->rawlen, "%s", err.msg);
			return;
		}
		run_jq(g, in, g->rawobj.data, g->rawobj.len, rec->raw, rec->rawlen, rec->line);
		return;
	}
	if (g->raw)
		rc = cm_csvmap_raw(&g->map, rec, &g->line, &err);
	else
		rc = cm_csvmap_event(&g->map, rec, CM_EVENT_NOW, &g->line, &err) ||
		     too_long(g, mark, &err);
	if (rc == 0 && cm_buf_addc(&g->line, '\n'))
		rc = cm_errf(&err, "out of memory");
	if (rc) {
		g->line.len = mark;
		if (g->line.data)
			g->line.data[mark] = 0;
		reject(g, rec->line, rec->raw, rec->rawlen, "%s", err.msg);
		return;
	}
	accept_rec(g);
}

/* Reads a CSV input to the end: the header, then one record at a time. A
 * header that cannot be used is a configuration error. */
static void csv_file(struct ingest *g, struct cm_csvin *c)
{
	struct cm_csvrec rec;
	struct cm_err err;
	int rc;

	rc = cm_csvin_next(c, &rec, &err);
	if (rc == CM_CSV_EOF)
		return;
	if (rc == CM_CSV_ERR) {
		cm_warn("%s: %s", g->src, err.msg);
		g->status = worse(g->status, CM_EXIT_SYSTEM);
		return;
	}
	if (rc == CM_CSV_OK && cm_csvmap_header(&g->map, &rec, &err) == 0) {
		for (size_t k = 0; !g->raw && k < g->map.ntypes; k++)
			if (!g->map.types[k].used)
				cm_warn("%s: --types: no column '%s' in the header", g->src,
				        g->map.types[k].col);
	} else {
		if (rc == CM_CSV_OK)
			cm_warn("%s:%lu: %s", g->src, rec.line, err.msg);
		else
			cm_warn("%s:%lu: header: %s%s", g->src, rec.line, err.msg,
			        rc == CM_CSV_LONG ? " (--max-line)" : "");
		g->status = worse(g->status, CM_EXIT_USAGE);
		return;
	}
	for (;;) {
		rc = cm_csvin_next(c, &rec, &err);
		if (rc == CM_CSV_EOF)
			break;
		if (rc == CM_CSV_ERR) {
			cm_warn("%s: %s", g->src, err.msg);
			g->status = worse(g->status, CM_EXIT_SYSTEM);
			break;
		}
		g->nread++;
		if (rc == CM_CSV_LONG)
			reject(g, rec.line, NULL, 0, "%s (--max-line)", err.msg);
		else if (rc == CM_CSV_BAD)
			reject(g, rec.line, rec.raw, rec.rawlen, "%s", err.msg);
		else if (rec.n != g->map.n)
			reject(g, rec.line, rec.raw, rec.rawlen,
			       "expected %zu fields as in the header, got %zu", g->map.n, rec.n);
		else
			csv_record(g, &rec);
		cm_progress_tick(&g->prog, rec.rawlen + 1);
		if (g->out.closed || g->out.error)
			break;
	}
}

/* True when name ends with suffix, in any case. */
static int ends_with(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);

	return n > s && !strcasecmp(name + n - s, suffix);
}

/* The format a file name implies, or FMT_AUTO. */
static int format_by_name(const char *path)
{
	if (!path)
		return FMT_AUTO;
	if (ends_with(path, ".csv") || ends_with(path, ".tsv"))
		return FMT_CSV;
	if (ends_with(path, ".json") || ends_with(path, ".jsonl") || ends_with(path, ".ndjson"))
		return FMT_JSON;
	return FMT_AUTO;
}

/* Guesses the format from the first bytes, read ahead without consuming
 * them: '{' after blanks (and a byte order mark) means JSON lines, anything
 * else CSV. */
static int sniff(struct cm_lines *r, struct cm_err *err)
{
	size_t want = 1;

	for (;;) {
		const char *p;
		size_t n, i = 0;

		if (cm_lines_peek(r, want, &p, &n, err))
			return -1;
		while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
			i++;
		if (i < n)
			return p[i] == '{' ? FMT_JSON : FMT_CSV;
		if (r->eof || n >= SNIFF_MAX)
			return FMT_CSV;
		want = n + 1;
	}
}

/* Reads CSV from what r has read ahead (a sniff) and the rest of its
 * descriptor; path names the delimiter (.tsv), NULL for stdin. */
static void csv_input(struct ingest *g, struct cm_lines *r, const char *path)
{
	struct cm_csvin c;
	struct cm_err err;
	const char *p;
	size_t n;
	int eof, delim = g->delim >= 0 ? g->delim : path && ends_with(path, ".tsv") ? '\t' : ',';

	cm_csvin_init_fd(&c, r->fd, g->src, (char)delim, g->opt.max_line);
	cm_lines_take(r, &p, &n, &eof);
	if (cm_csvin_prime(&c, p, n, &err)) {
		cm_warn("%s: %s", g->src, err.msg);
		g->status = worse(g->status, CM_EXIT_SYSTEM);
	} else {
		/* the sniff has seen the end, and dropped the byte order mark */
		c.eof = eof;
		c.began = r->began;
		csv_file(g, &c);
	}
	cm_csvin_release(&c);
}

/* Reads one input (a path, or stdin for NULL or "-"), in its format. */
static void process(struct ingest *g, const char *path)
{
	struct cm_lines r;
	struct cm_err err;
	int stdin_ = !path || !strcmp(path, "-");
	int fmt = g->format;

	if (cm_lines_open(&r, path, g->opt.max_line, &err)) {
		input_error(g, &err);
		return;
	}
	g->src = r.name;
	if (fmt == FMT_AUTO && !stdin_)
		fmt = format_by_name(path);
	if (fmt == FMT_AUTO)
		fmt = sniff(&r, &err);
	if (fmt < 0)
		input_error(g, &err);
	else if (fmt == FMT_JSON)
		json_file(g, &r);
	else
		csv_input(g, &r, stdin_ ? NULL : path);
	cm_lines_release(&r);
}

/* The delimiter named by --delimiter: one byte, or "tab" / "\t". */
static int parse_delim(const char *s)
{
	if (!strcmp(s, "tab") || !strcmp(s, "\\t"))
		return '\t';
	if (strlen(s) != 1 || s[0] == '"' || s[0] == '\r' || s[0] == '\n')
		cm_usage_error("--delimiter: expected one character other than a quote or a line "
		               "end, got '%s'",
		               s);
	return (unsigned char)s[0];
}

/* Parses the command line into g, the --types arguments into types[] (room
 * for argc); exits on --help, --version and errors. */
static void parse_args(struct ingest *g, int argc, char **argv, const char **types, size_t *ntypes)
{
	static const struct option opts[] = {
	    {"format", required_argument, NULL, 'f'},    {"raw", no_argument, NULL, 'r'},
	    {"jq", required_argument, NULL, 'j'},        {"types", required_argument, NULL, 't'},
	    {"delimiter", required_argument, NULL, 'd'}, {"rejects", required_argument, NULL, 'R'},
	    {"stats", no_argument, NULL, 's'},           CM_OPTION_MAX_LINE,
	    {"max-depth", required_argument, NULL, 'D'}, {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},         {NULL, 0, NULL, 0},
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:t:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (!strcmp(optarg, "csv"))
				g->format = FMT_CSV;
			else if (!strcmp(optarg, "json"))
				g->format = FMT_JSON;
			else if (!strcmp(optarg, "auto"))
				g->format = FMT_AUTO;
			else
				cm_usage_error("--format: expected csv, json or auto, got '%s'",
				               optarg);
			break;
		case 'r':
			g->raw = 1;
			break;
		case 'j':
			g->jqprog = optarg;
			break;
		case 't':
			types[(*ntypes)++] = optarg;
			break;
		case 'd':
			g->delim = parse_delim(optarg);
			break;
		case 'R':
			g->rejects = optarg;
			break;
		case 's':
			g->stats = 1;
			break;
		case 'D':
			g->max_depth =
			    (unsigned)cm_opts_int("max-depth", optarg, 1, 10000, "a number");
			break;
		default:
			cm_opts_default(&g->opt, c, optarg, argc, argv, usage_text);
		}
	}
	if (g->raw && g->jqprog)
		cm_usage_error("--raw and --jq cannot be used together");
}

/* Compiles the --jq program, whose messages libjq hands to jq_msg; a filter
 * that does not compile is a usage error. */
static void setup_jq(struct ingest *g)
{
	g->jq = jq_init();
	if (!g->jq)
		cm_usage_error("--jq: cannot start libjq");
	jq_set_error_cb(g->jq, jq_msg, &g->jqmsg);
	jq_set_debug_cb(g->jq, jq_msg, NULL);
	if (!jq_compile(g->jq, g->jqprog)) {
		fprintf(stderr, "%s: --jq: the filter does not compile:\n%s\n", cm_progname(),
		        g->jqmsg.data ? g->jqmsg.data : "");
		jq_teardown(&g->jq);
		cm_buf_release(&g->jqmsg);
		exit(CM_EXIT_USAGE);
	}
	jq_set_error_cb(g->jq, jq_msg, NULL);
}

/* Options, then each input in turn, then the counts and the exit status. */
int main(int argc, char **argv)
{
	struct ingest g;
	struct cm_err err;
	const char **types;
	size_t ntypes = 0;
	int rc;

	cm_cli_init("cm-ingest");
	memset(&g, 0, sizeof(g));
	g.delim = -1;
	g.opt.max_line = CM_EVENT_LINE_MAX;
	g.max_depth = 64;
	g.rej_fd = -1;
	types = calloc((size_t)argc, sizeof(*types));
	if (!types) {
		cm_warn("out of memory");
		return CM_EXIT_SYSTEM;
	}
	parse_args(&g, argc, argv, types, &ntypes);
	cm_csvmap_init(&g.map, g.raw, !g.raw && !g.jqprog, g.max_depth);
	for (size_t i = 0; i < ntypes; i++)
		if (cm_csvmap_types(&g.map, types[i], &err))
			cm_usage_error("--types: %s", err.msg);
	free(types);

	if (g.jqprog)
		setup_jq(&g);
	if (g.rejects) {
		g.rej_fd = open(g.rejects, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
		if (g.rej_fd < 0)
			cm_usage_error("--rejects: %s: %s", g.rejects, strerror(errno));
		cm_out_init(&g.rej, g.rej_fd);
	}
	cm_out_init(&g.out, 1);
	cm_jdoc_init(&g.doc, g.max_depth);
	cm_jdoc_init(&g.cell, g.max_depth);
	cm_progress_init(&g.prog);

	if (optind >= argc)
		process(&g, NULL);
	for (int i = optind; i < argc && !g.out.closed && !g.out.error; i++)
		process(&g, argv[i]);
	flush_lines(&g);
	cm_out_flush(&g.out);
	cm_progress_end(&g.prog);

	if (g.out.closed) {
		rc = CM_EXIT_OK;
	} else {
		if (g.out.error) {
			cm_warn("write error: %s", strerror(g.out.error));
			g.status = worse(g.status, CM_EXIT_SYSTEM);
		}
		if (g.nrej || g.stats) {
			if (g.jq)
				cm_warn("%llu records, %llu accepted, %llu rejected, %llu filtered",
				        g.nread, g.nacc, g.nrej, g.nfilt);
			else
				cm_warn("%llu records, %llu accepted, %llu rejected", g.nread,
				        g.nacc, g.nrej);
		}
		rc = g.status ? g.status : g.nrej ? CM_EXIT_REJECTED : CM_EXIT_OK;
	}
	if (g.rej_fd >= 0) {
		if (cm_out_release(&g.rej) && !g.out.closed) {
			cm_warn("--rejects: %s: write error", g.rejects);
			rc = worse(rc, CM_EXIT_SYSTEM);
		}
		close(g.rej_fd);
	}
	cm_out_release(&g.out);
	if (g.jq)
		jq_teardown(&g.jq);
	cm_csvmap_release(&g.map);
	cm_jdoc_release(&g.doc);
	cm_jdoc_release(&g.cell);
	cm_buf_release(&g.line);
	cm_buf_release(&g.rawobj);
	cm_buf_release(&g.tmp);
	cm_buf_release(&g.jqmsg);
	cm_buf_release(&g.jqtext);
	free(g.jqoff);
	return rc;
}
