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
#include "tool.h"
#include "csvin.h"
#include "err.h"
#include "event.h"
#include "json.h"
#include "out.h"
#include "timefmt.h"

#define READ_BLOCK (256 * 1024)
#define OUT_BATCH  (256 * 1024)
#define SNIFF_MAX  (64 * 1024)

enum { FMT_AUTO, FMT_CSV, FMT_JSON };
enum { T_STRING, T_NUMBER, T_INTEGER, T_BOOLEAN, T_JSON, T_NTYPES };
enum { R_PROP, R_EVENT_ID, R_EVENT_TYPE, R_USER_ID, R_OCCURRED_AT };

static const char *const type_names[T_NTYPES] = {"string", "number", "integer", "boolean", "json"};

/* One --types entry. */
struct coltype {
	char *col;
	int type;
};

/* One CSV column: its names and keys live in the header's buffers. */
struct col {
	size_t name_off, name_len; /* as written */
	size_t strip_len;          /* without a ":type" suffix */
	size_t kraw_off, kraw_len; /* "as written": */
	size_t kstr_off, kstr_len; /* "stripped": */
	int type, role;
};

struct header {
	struct col *col;
	size_t n;
	struct cm_buf names, keys;
};

/* A line reader for JSON input that can look at the first bytes (format
 * detection) and hand them to the CSV reader if it is CSV. */
struct rd {
	int fd;
	char *buf;
	size_t cap, pos, end, max;
	int eof;
	unsigned long line;
	unsigned long long bytes;
};

enum { RD_OK, RD_EOF, RD_LONG, RD_ERR = -1 };

/* Everything a run shares. */
struct ingest {
	int format, raw, stats, delim;
	const char *jqprog, *rejects;
	size_t max_line;
	unsigned max_depth;
	struct coltype *types;
	size_t ntypes;

	struct cm_out out, rej;
	int rej_fd;
	jq_state *jq;
	struct cm_buf jqmsg;
	struct cm_jdoc doc, cell;
	struct cm_buf line, props, rawobj, tmp;
	struct cm_buf jqtext;
	size_t *jqoff;
	size_t njq, jqcap;
	const char *src;
	unsigned long long nread, nacc, nrej, nfilt;
	int failed;
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
    "Exit status: 0 all records accepted, 1 some rejected, 2 usage or input error.\n";

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

/* Copies at most 40 bytes of s for a message, cut at a UTF-8 boundary, with
 * control bytes shown as '?'. */
static const char *snip(const char *s, size_t n, char *b)
{
	size_t keep = cm_utf8_valid_prefix(s, n < 40 ? n : 40), j = 0;

	b[j++] = '"';
	for (size_t i = 0; i < keep; i++)
		b[j++] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
	if (keep < n) {
		memcpy(b + j, "...", 3);
		j += 3;
	}
	b[j++] = '"';
	b[j] = 0;
	return b;
}

/* Appends bytes without a call when they fit (cells are small and many);
 * the buffer's NUL is restored by the next cm_buf_* append. */
static inline int put(struct cm_buf *b, const void *p, size_t n)
{
	if (b->len + n < b->cap) {
		memcpy(b->data + b->len, p, n);
		b->len += n;
		return 0;
	}
	return cm_buf_add(b, p, n);
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

	if (n <= g->max_line)
		return 0;
	g->line.len = mark;
	g->line.data[mark] = 0;
	return cm_errf(err,
	               "the event is %zu bytes long once normalised, longer than %zu bytes "
	               "(--max-line)",
	               n, g->max_line);
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
	size_t mark = g->line.len, limit = g->max_line * 16;
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

/* True when s[0..n) holds only spaces and tabs: a blank line, skipped. */
static int blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return 0;
	return 1;
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

/* Reads more input after end, dropping the bytes before pos: 1 when bytes
 * came, 0 at the end, -1 on error. */
static int rd_fill(struct rd *r, struct cm_err *err)
{
	ssize_t n;

	if (r->eof)
		return 0;
	if (r->pos > 0) {
		memmove(r->buf, r->buf + r->pos, r->end - r->pos);
		r->end -= r->pos;
		r->pos = 0;
	}
	if (r->cap - r->end < READ_BLOCK / 2) {
		size_t cap = r->cap ? r->cap * 2 : READ_BLOCK;
		char *p = realloc(r->buf, cap);

		if (!p)
			return cm_errf(err, "out of memory");
		r->buf = p;
		r->cap = cap;
	}
	do
		n = read(r->fd, r->buf + r->end, r->cap - r->end);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return cm_errf(err, "read error: %s", strerror(errno));
	if (n == 0) {
		r->eof = 1;
		return 0;
	}
	r->end += (size_t)n;
	return 1;
}

/* The next line without its LF or CRLF; a line longer than max is skipped
 * whole (RD_LONG, its number in r->line), so memory stays bounded. */
static int rd_line(struct rd *r, const char **s, size_t *n, struct cm_err *err)
{
	int skipping = 0, f;

	for (;;) {
		char *p = r->buf + r->pos;
		char *nl = r->pos < r->end ? memchr(p, '\n', r->end - r->pos) : NULL;
		size_t len;

		if (nl || (r->eof && r->pos < r->end)) {
			len = nl ? (size_t)(nl - p) : r->end - r->pos;
			r->pos += len + (nl != NULL);
			r->bytes += len + (nl != NULL);
			if (skipping)
				return RD_LONG;
			r->line++;
			if (len && p[len - 1] == '\r')
				len--;
			if (len > r->max)
				return RD_LONG;
			*s = p;
			*n = len;
			return RD_OK;
		}
		if (r->eof)
			return skipping ? RD_LONG : RD_EOF;
		if (!skipping && r->end - r->pos > r->max + 1) {
			skipping = 1;
			r->line++;
		}
		if (skipping) {
			r->bytes += r->end - r->pos;
			r->pos = r->end;
		}
		f = rd_fill(r, err);
		if (f < 0)
			return RD_ERR;
	}
}

/* Reads JSON lines from r to the end. */
static void json_file(struct ingest *g, struct rd *r)
{
	struct cm_err err;
	const char *s = NULL;
	size_t n = 0;
	int f = 1;

	/* a UTF-8 byte order mark at the start is not part of the first line */
	while (r->end - r->pos < 3 && (f = rd_fill(r, &err)) > 0)
		;
	if (f < 0) {
		cm_warn("%s: %s", g->src, err.msg);
		g->failed = 1;
		return;
	}
	if (r->end - r->pos >= 3 && !memcmp(r->buf + r->pos, "\xEF\xBB\xBF", 3))
		r->pos += 3;
	for (;;) {
		int rc = rd_line(r, &s, &n, &err);

		if (rc == RD_EOF)
			break;
		if (rc == RD_ERR) {
			cm_warn("%s: %s", g->src, err.msg);
			g->failed = 1;
			break;
		}
		if (rc == RD_LONG) {
			g->nread++;
			reject(g, r->line, NULL, 0, "line longer than %zu bytes (--max-line)",
			       g->max_line);
		} else if (!blank(s, n)) {
			g->nread++;
			json_record(g, s, n, r->line);
		}
		cm_progress_tick(&g->prog, n + 1);
		if (g->out.closed || g->out.error)
			break;
	}
}

/* A CSV header's type suffix (":number"), or -1. */
static int type_by_name(const char *s, size_t n)
{
	for (int t = 0; t < T_NTYPES; t++)
		if (strlen(type_names[t]) == n && !memcmp(s, type_names[t], n))
			return t;
	return -1;
}

/* The role of a column by its (stripped) name. */
static int role_of(const char *s, size_t n)
{
	static const char *const names[] = {NULL, "event_id", "event_type", "user_id",
	                                    "occurred_at"};

	for (int r = R_EVENT_ID; r <= R_OCCURRED_AT; r++)
		if (strlen(names[r]) == n && !memcmp(s, names[r], n))
			return r;
	return R_PROP;
}

/* Frees what header_setup allocated, so that the next file starts afresh. */
static void header_release(struct header *h)
{
	free(h->col);
	cm_buf_release(&h->names);
	cm_buf_release(&h->keys);
	memset(h, 0, sizeof(*h));
}

/* Appends the JSON key s[0..n) with its colon; the name is valid UTF-8. */
static int add_key(struct cm_buf *b, const char *s, size_t n, size_t *off, size_t *len)
{
	*off = b->len;
	if (cm_event_put_str(b, s, n) || cm_buf_addc(b, ':'))
		return -1;
	*len = b->len - *off;
	return 0;
}

/* The name a column is known by: as written with --raw, else without its
 * type suffix. */
static size_t key_len(const struct col *c, int raw)
{
	return raw ? c->name_len : c->strip_len;
}

/* Orders column indices by name, then by position (qsort_r). */
static int cmp_cols(const void *a, const void *b, void *arg)
{
	const struct header *h = ((const struct header **)arg)[0];
	int raw = *((const int **)arg)[1];
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	size_t li = key_len(&h->col[i], raw), lj = key_len(&h->col[j], raw);
	int c = memcmp(h->names.data + h->col[i].name_off, h->names.data + h->col[j].name_off,
	               li < lj ? li : lj);

	if (c)
		return c;
	if (li != lj)
		return li < lj ? -1 : 1;
	return i < j ? -1 : i > j;
}

/* Finds the first repeated column name by sorting (a header may have very
 * many columns, so no pairwise comparison). */
static int find_duplicate(const struct header *h, int raw, struct cm_err *err)
{
	const void *ctx[2] = {h, &raw};
	size_t *ix, first = SIZE_MAX, dup = 0;

	if (h->n < 2)
		return 0;
	ix = malloc(h->n * sizeof(*ix));
	if (!ix)
		return cm_errf(err, "out of memory");
	for (size_t i = 0; i < h->n; i++)
		ix[i] = i;
	qsort_r(ix, h->n, sizeof(*ix), cmp_cols, ctx);
	for (size_t k = 1; k < h->n; k++) {
		const struct col *a = &h->col[ix[k - 1]], *b = &h->col[ix[k]];

		if (key_len(a, raw) == key_len(b, raw) &&
		    !memcmp(h->names.data + a->name_off, h->names.data + b->name_off,
		            key_len(a, raw)) &&
		    ix[k] < first) {
			first = ix[k];
			dup = ix[k - 1];
		}
	}
	free(ix);
	if (first == SIZE_MAX)
		return 0;
	return cm_errf(err, "header: duplicate column '%.*s' (columns %zu and %zu)",
	               (int)key_len(&h->col[first], raw), h->names.data + h->col[first].name_off,
	               dup + 1, first + 1);
}

/* Reads the header record into h: names, types, roles, JSON keys. */
static int header_setup(struct ingest *g, struct header *h, const struct cm_csvrec *rec,
                        struct cm_err *err)
{
	h->col = calloc(rec->n, sizeof(*h->col));
	if (!h->col)
		return cm_errf(err, "out of memory");
	h->n = rec->n;
	for (size_t i = 0; i < rec->n; i++) {
		struct col *c = &h->col[i];
		const char *s = rec->field[i];
		size_t n = rec->len[i];
		const char *colon;
		char b[64];
		int explicit = 0;

		if (n == 0)
			return cm_errf(err, "header: column %zu has an empty name", i + 1);
		if (cm_utf8_valid_prefix(s, n) != n)
			return cm_errf(err, "header: column %zu: the name %s is not UTF-8", i + 1,
			               snip(s, n, b));
		c->name_off = h->names.len;
		c->name_len = n;
		if (cm_buf_add(&h->names, s, n))
			return cm_errf(err, "out of memory");
		c->strip_len = n;
		c->type = T_STRING;
		colon = memrchr(s, ':', n);
		if (!g->raw && colon && colon > s) {
			int t = type_by_name(colon + 1, (size_t)(s + n - colon - 1));

			if (t >= 0) {
				c->type = t;
				c->strip_len = (size_t)(colon - s);
				explicit = 1;
			}
		}
		if (!g->raw) {
			for (size_t k = 0; k < g->ntypes; k++)
				if (strlen(g->types[k].col) == c->strip_len &&
				    !memcmp(g->types[k].col, s, c->strip_len)) {
					c->type = g->types[k].type;
					explicit = 1;
				}
			c->role = role_of(s, c->strip_len);
			if (c->role != R_PROP && explicit && c->type != T_STRING)
				return cm_errf(err,
				               "header: column '%.*s' is always a string; it "
				               "cannot be typed %s",
				               (int)c->strip_len, s, type_names[c->type]);
		}
		if (add_key(&h->keys, s, n, &c->kraw_off, &c->kraw_len) ||
		    add_key(&h->keys, s, c->strip_len, &c->kstr_off, &c->kstr_len))
			return cm_errf(err, "out of memory");
	}
	if (find_duplicate(h, g->raw, err))
		return -1;
	if (!g->raw && !g->jq) {
		int have_type = 0, have_user = 0;

		for (size_t i = 0; i < h->n; i++) {
			have_type |= h->col[i].role == R_EVENT_TYPE;
			have_user |= h->col[i].role == R_USER_ID;
		}
		if (!have_type || !have_user)
			return cm_errf(err,
			               "header: no column '%s', which every event needs (map the "
			               "columns with --jq, or use --raw)",
			               have_type ? "user_id" : "event_type");
	}
	for (size_t k = 0; !g->raw && k < g->ntypes; k++) {
		size_t i;

		for (i = 0; i < h->n; i++)
			if (strlen(g->types[k].col) == h->col[i].strip_len &&
			    !memcmp(g->types[k].col, h->names.data + h->col[i].name_off,
			            h->col[i].strip_len))
				break;
		if (i == h->n)
			cm_warn("%s: --types: no column '%s' in the header", g->src,
			        g->types[k].col);
	}
	return 0;
}

/* Appends the record as the object of header -> string that --raw writes;
 * -1 with *bad set to the column whose cell is not UTF-8. */
static int raw_object(struct cm_buf *b, const struct header *h, const struct cm_csvrec *rec,
                      size_t *bad)
{
	if (cm_buf_addc(b, '{'))
		return -1;
	for (size_t i = 0; i < rec->n; i++) {
		if ((i && put(b, ",", 1)) ||
		    put(b, h->keys.data + h->col[i].kraw_off, h->col[i].kraw_len))
			return -1;
		if (cm_event_put_str(b, rec->field[i], rec->len[i])) {
			*bad = i;
			return -1;
		}
	}
	return cm_buf_addc(b, '}');
}

/* True when s[0..n) is a JSON number (the grammar of RFC 8259). */
static int json_number(const char *s, size_t n, int integer)
{
	size_t i = 0;

	if (i < n && s[i] == '-')
		i++;
	if (i == n)
		return 0;
	if (s[i] == '0')
		i++;
	else if (s[i] >= '1' && s[i] <= '9')
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	else
		return 0;
	if (integer)
		return i == n;
	if (i < n && s[i] == '.') {
		size_t d = ++i;

		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == d)
			return 0;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t d;

		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		d = i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == d)
			return 0;
	}
	return i == n;
}

/* True when an integer's digits fit in a signed 64-bit value. */
static int fits_i64(const char *s, size_t n)
{
	static const char lim[] = "9223372036854775807";
	int neg = n && s[0] == '-';
	size_t d = n - (size_t)neg;
	const char *p = s + neg;

	if (d < 19)
		return 1;
	if (d > 19)
		return 0;
	return memcmp(p, lim, 19) <= 0 || (neg && !memcmp(p, "9223372036854775808", 19));
}

/* Parses a boolean cell: true/false, 1/0, yes/no in any case; -1 if none. */
static int boolean_of(const char *s, size_t n)
{
	if ((n == 4 && !strncasecmp(s, "true", 4)) || (n == 3 && !strncasecmp(s, "yes", 3)) ||
	    (n == 1 && s[0] == '1'))
		return 1;
	if ((n == 5 && !strncasecmp(s, "false", 5)) || (n == 2 && !strncasecmp(s, "no", 2)) ||
	    (n == 1 && s[0] == '0'))
		return 0;
	return -1;
}

/* Checks a typed cell; on failure says what was expected. */
static int check_cell(struct ingest *g, int type, const char *s, size_t n, struct cm_err *err)
{
	char b[64];
	struct cm_err e2;

	switch (type) {
	case T_NUMBER:
		if (!json_number(s, n, 0))
			return cm_errf(err, "expected a number, got %s", snip(s, n, b));
		return 0;
	case T_INTEGER:
		if (!json_number(s, n, 1) || !fits_i64(s, n))
			return cm_errf(err, "expected an integer, got %s", snip(s, n, b));
		return 0;
	case T_BOOLEAN:
		if (boolean_of(s, n) < 0)
			return cm_errf(err, "expected a boolean (true/false, yes/no, 1/0), got %s",
			               snip(s, n, b));
		return 0;
	case T_JSON:
		if (cm_json_parse(&g->cell, s, n, &e2))
			return cm_errf(err, "expected JSON, got %s (%s)", snip(s, n, b), e2.msg);
		return 0;
	default:
		if (cm_utf8_valid_prefix(s, n) != n)
			return cm_errf(err, "expected UTF-8 text, got %s", snip(s, n, b));
		return 0;
	}
}

/* Appends a checked cell as the JSON value of its type. */
static int put_cell(struct ingest *g, int type, const char *s, size_t n, struct cm_buf *b)
{
	switch (type) {
	case T_NUMBER:
	case T_INTEGER:
		return put(b, s, n);
	case T_BOOLEAN:
		return boolean_of(s, n) ? put(b, "true", 4) : put(b, "false", 5);
	case T_JSON:
		return cm_json_write(&g->cell, 0, b);
	default:
		return cm_event_put_str(b, s, n);
	}
}

/* A CSV row as the jq program's input: header -> string, typed columns as
 * their JSON values, empty typed cells left out. */
static int row_to_jv(struct ingest *g, const struct header *h, const struct cm_csvrec *rec, jv *out,
                     struct cm_err *err)
{
	jv o = jv_object();

	for (size_t i = 0; i < rec->n; i++) {
		const struct col *c = &h->col[i];
		const char *s = rec->field[i];
		size_t n = rec->len[i];
		jv v;

		if (n == 0 && c->type != T_STRING)
			continue;
		if (check_cell(g, c->type, s, n, err)) {
			jv_free(o);
			return cm_err_prefix(err, "column '%.*s': ", (int)c->strip_len,
			                     h->names.data + c->name_off);
		}
		switch (c->type) {
		case T_BOOLEAN:
			v = boolean_of(s, n) ? jv_true() : jv_false();
			break;
		case T_NUMBER:
		case T_INTEGER:
		case T_JSON:
			v = jv_parse_sized(s, (int)n);
			break;
		default:
			v = jv_string_sized(s, (int)n);
		}
		if (!jv_is_valid(v)) {
			jv_free(v);
			jv_free(o);
			return cm_errf(err, "column '%.*s': not a value jq can read",
			               (int)c->strip_len, h->names.data + c->name_off);
		}
		o = jv_object_set(
		    o, jv_string_sized(h->names.data + c->name_off, (int)c->strip_len), v);
	}
	*out = o;
	return 0;
}

/* One CSV record (not the header) with as many fields as the header. */
static void csv_record(struct ingest *g, const struct header *h, const struct cm_csvrec *rec)
{
	struct cm_event_parts p;
	struct cm_err err;
	size_t bad = 0, mark = g->line.len;
	int first = 1;

	if (g->raw) {
		if (raw_object(&g->line, h, rec, &bad) || cm_buf_addc(&g->line, '\n')) {
			g->line.len = mark;
			if (g->line.data)
				g->line.data[mark] = 0;
			reject(g, rec->line, rec->raw, rec->rawlen,
			       "column '%.*s': expected UTF-8 text", (int)h->col[bad].name_len,
			       h->names.data + h->col[bad].name_off);
			return;
		}
		accept_rec(g);
		return;
	}
	cm_buf_reset(&g->rawobj);
	if (g->jq) {
		jv in;

		if (raw_object(&g->rawobj, h, rec, &bad)) {
			reject(g, rec->line, rec->raw, rec->rawlen,
			       "column '%.*s': expected UTF-8 text", (int)h->col[bad].strip_len,
			       h->names.data + h->col[bad].name_off);
			return;
		}
		if (row_to_jv(g, h, rec, &in, &err)) {
			reject(g, rec->line, rec->raw, rec->rawlen, "%s", err.msg);
			return;
		}
		run_jq(g, in, g->rawobj.data, g->rawobj.len, rec->raw, rec->rawlen, rec->line);
		return;
	}
	memset(&p, 0, sizeof(p));
	cm_buf_reset(&g->props);
	cm_buf_addc(&g->props, '{');
	for (size_t i = 0; i < rec->n; i++) {
		const struct col *c = &h->col[i];
		const char *s = rec->field[i];
		size_t n = rec->len[i];

		switch (c->role) {
		case R_EVENT_ID:
			if (n) {
				p.id = s;
				p.id_len = n;
			}
			continue;
		case R_EVENT_TYPE:
			p.type = s;
			p.type_len = n;
			continue;
		case R_USER_ID:
			p.user = s;
			p.user_len = n;
			continue;
		case R_OCCURRED_AT:
			if (n) {
				p.time = s;
				p.time_len = n;
			}
			continue;
		}
		if (n == 0 && c->type != T_STRING)
			continue;
		if (c->type != T_STRING && check_cell(g, c->type, s, n, &err)) {
			reject(g, rec->line, rec->raw, rec->rawlen, "column '%.*s': %s",
			       (int)c->strip_len, h->names.data + c->name_off, err.msg);
			return;
		}
		if ((!first && put(&g->props, ",", 1)) ||
		    put(&g->props, h->keys.data + c->kstr_off, c->kstr_len))
			goto nomem;
		first = 0;
		if (put_cell(g, c->type, s, n, &g->props)) {
			char b[64];

			reject(g, rec->line, rec->raw, rec->rawlen,
			       "column '%.*s': expected UTF-8 text, got %s", (int)c->strip_len,
			       h->names.data + c->name_off, snip(s, n, b));
			return;
		}
	}
	if (cm_buf_addc(&g->props, '}'))
		goto nomem;
	p.props = g->props.data;
	p.props_len = g->props.len;
	if (!p.id && raw_object(&g->rawobj, h, rec, &bad)) {
		reject(g, rec->line, rec->raw, rec->rawlen, "column '%.*s': expected UTF-8 text",
		       (int)h->col[bad].strip_len, h->names.data + h->col[bad].name_off);
		return;
	}
	p.doc = &g->cell;
	if (cm_event_build(&p, g->rawobj.data, g->rawobj.len, CM_EVENT_NOW, &g->line, &err) ||
	    too_long(g, mark, &err)) {
		reject(g, rec->line, rec->raw, rec->rawlen, "%s", err.msg);
		return;
	}
	if (cm_buf_addc(&g->line, '\n'))
		goto nomem;
	accept_rec(g);
	return;
nomem:
	reject(g, rec->line, rec->raw, rec->rawlen, "out of memory");
}

/* Reads a CSV input to the end: the header, then one record at a time. */
static void csv_file(struct ingest *g, struct cm_csvin *c)
{
	struct header h;
	struct cm_csvrec rec;
	struct cm_err err;
	int rc;

	memset(&h, 0, sizeof(h));
	rc = cm_csvin_next(c, &rec, &err);
	if (rc == CM_CSV_EOF)
		goto out;
	if (rc != CM_CSV_OK) {
		if (rc == CM_CSV_ERR)
			cm_warn("%s: %s", g->src, err.msg);
		else
			cm_warn("%s:%lu: header: %s%s", g->src, rec.line, err.msg,
			        rc == CM_CSV_LONG ? " (--max-line)" : "");
		g->failed = 1;
		goto out;
	}
	if (header_setup(g, &h, &rec, &err)) {
		cm_warn("%s:%lu: %s", g->src, rec.line, err.msg);
		g->failed = 1;
		goto out;
	}
	for (;;) {
		rc = cm_csvin_next(c, &rec, &err);
		if (rc == CM_CSV_EOF)
			break;
		if (rc == CM_CSV_ERR) {
			cm_warn("%s: %s", g->src, err.msg);
			g->failed = 1;
			break;
		}
		g->nread++;
		if (rc == CM_CSV_LONG)
			reject(g, rec.line, NULL, 0, "%s (--max-line)", err.msg);
		else if (rc == CM_CSV_BAD)
			reject(g, rec.line, rec.raw, rec.rawlen, "%s", err.msg);
		else if (rec.n != h.n)
			reject(g, rec.line, rec.raw, rec.rawlen,
			       "expected %zu fields as in the header, got %zu", h.n, rec.n);
		else
			csv_record(g, &h, &rec);
		cm_progress_tick(&g->prog, rec.rawlen + 1);
		if (g->out.closed || g->out.error)
			break;
	}
out:
	header_release(&h);
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

/* Guesses the format from the first bytes: '{' after blanks (and a byte
 * order mark) means JSON lines, anything else CSV. */
static int sniff(struct rd *r, struct cm_err *err)
{
	for (;;) {
		size_t i = r->pos;

		if (r->end - i >= 3 && !memcmp(r->buf + i, "\xEF\xBB\xBF", 3))
			i += 3;
		while (i < r->end && strchr(" \t\r\n", r->buf[i]))
			i++;
		if (i < r->end)
			return r->buf[i] == '{' ? FMT_JSON : FMT_CSV;
		if (r->end >= SNIFF_MAX)
			return FMT_CSV;
		int f = rd_fill(r, err);

		if (f < 0)
			return -1;
		if (f == 0)
			return FMT_CSV;
	}
}

/* Reads one input (a path, or stdin for NULL or "-"), in its format. */
static void process(struct ingest *g, const char *path)
{
	struct rd r;
	struct cm_err err;
	int stdin_ = !path || !strcmp(path, "-");
	int fmt = g->format, delim;

	memset(&r, 0, sizeof(r));
	g->src = stdin_ ? "stdin" : path;
	r.fd = stdin_ ? 0 : open(path, O_RDONLY | O_CLOEXEC);
	r.max = g->max_line;
	if (r.fd < 0) {
		cm_warn("%s: %s", path, strerror(errno));
		g->failed = 1;
		return;
	}
	if (fmt == FMT_AUTO && !stdin_)
		fmt = format_by_name(path);
	if (fmt == FMT_AUTO)
		fmt = sniff(&r, &err);
	if (fmt < 0) {
		cm_warn("%s: %s", g->src, err.msg);
		g->failed = 1;
		goto out;
	}
	if (fmt == FMT_JSON) {
		json_file(g, &r);
	} else {
		struct cm_csvin c;

		delim = g->delim >= 0 ? g->delim : !stdin_ && ends_with(path, ".tsv") ? '\t' : ',';
		cm_csvin_init_fd(&c, r.fd, g->src, (char)delim, g->max_line);
		if (cm_csvin_prime(&c, r.buf + r.pos, r.end - r.pos, &err)) {
			cm_warn("%s: %s", g->src, err.msg);
			g->failed = 1;
		} else {
			c.eof = r.eof;
			csv_file(g, &c);
		}
		cm_csvin_release(&c);
	}
out:
	free(r.buf);
	if (!stdin_)
		close(r.fd);
}

/* Parses one --types argument "COL=TYPE[,COL=TYPE...]" into g->types. */
static void parse_types(struct ingest *g, const char *arg)
{
	char *copy = strdup(arg), *save = NULL, *tok;

	if (!copy)
		cm_usage_error("out of memory");
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		struct coltype *t;
		int ty;

		if (!eq || eq == tok)
			cm_usage_error("--types: expected COL=TYPE, got '%s'", tok);
		*eq = 0;
		ty = type_by_name(eq + 1, strlen(eq + 1));
		if (ty < 0)
			cm_usage_error(
			    "--types: unknown type '%s' for column '%s' (string, number, "
			    "integer, boolean, json)",
			    eq + 1, tok);
		t = realloc(g->types, (g->ntypes + 1) * sizeof(*t));
		if (!t)
			cm_usage_error("out of memory");
		g->types = t;
		t[g->ntypes].col = strdup(tok);
		if (!t[g->ntypes].col)
			cm_usage_error("out of memory");
		t[g->ntypes++].type = ty;
	}
	free(copy);
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

/* Parses the command line into g; exits on --help, --version and errors. */
static void parse_args(struct ingest *g, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"format", required_argument, NULL, 'f'},    {"raw", no_argument, NULL, 'r'},
	    {"jq", required_argument, NULL, 'j'},        {"types", required_argument, NULL, 't'},
	    {"delimiter", required_argument, NULL, 'd'}, {"rejects", required_argument, NULL, 'R'},
	    {"stats", no_argument, NULL, 's'},           {"max-line", required_argument, NULL, 'L'},
	    {"max-depth", required_argument, NULL, 'D'}, {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},         {NULL, 0, NULL, 0},
	};
	int c;
	int64_t v;

	while ((c = getopt_long(argc, argv, "f:t:hV", opts, NULL)) != -1) {
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
			parse_types(g, optarg);
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
		case 'L':
			if (cm_parse_size(optarg, 16, (size_t)1 << 30, &g->max_line))
				cm_usage_error("--max-line: expected a size from 16 to 1G (K, M, G "
				               "suffixes), got '%s'",
				               optarg);
			break;
		case 'D':
			if (cm_parse_i64(optarg, 1, 10000, &v))
				cm_usage_error(
				    "--max-depth: expected a number from 1 to 10000, got '%s'",
				    optarg);
			g->max_depth = (unsigned)v;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(fflush(stdout) == 0 ? CM_EXIT_OK : CM_EXIT_USAGE);
		case 'V':
			cm_print_version();
		default:
			fprintf(stderr, "Try '%s --help' for more information.\n", cm_progname());
			exit(CM_EXIT_USAGE);
		}
	}
	if (g->raw && g->jqprog)
		cm_usage_error("--raw and --jq cannot be used together");
}

/* Options, then each input in turn, then the counts and the exit status. */
int main(int argc, char **argv)
{
	struct ingest g;
	int rc;

	cm_cli_init("cm-ingest");
	memset(&g, 0, sizeof(g));
	g.delim = -1;
	g.max_line = CM_EVENT_LINE_MAX;
	g.max_depth = 64;
	g.rej_fd = -1;
	parse_args(&g, argc, argv);

	if (g.jqprog) {
		g.jq = jq_init();
		if (!g.jq)
			cm_usage_error("--jq: cannot start libjq");
		jq_set_error_cb(g.jq, jq_msg, &g.jqmsg);
		jq_set_debug_cb(g.jq, jq_msg, NULL);
		if (!jq_compile(g.jq, g.jqprog)) {
			fprintf(stderr, "%s: --jq: the filter does not compile:\n%s\n",
			        cm_progname(), g.jqmsg.data ? g.jqmsg.data : "");
			jq_teardown(&g.jq);
			cm_buf_release(&g.jqmsg);
			exit(CM_EXIT_USAGE);
		}
		jq_set_error_cb(g.jq, jq_msg, NULL);
	}
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
			g.failed = 1;
		}
		if (g.nrej || g.stats) {
			if (g.jq)
				cm_warn("%llu records, %llu accepted, %llu rejected, %llu filtered",
				        g.nread, g.nacc, g.nrej, g.nfilt);
			else
				cm_warn("%llu records, %llu accepted, %llu rejected", g.nread,
				        g.nacc, g.nrej);
		}
		rc = g.failed ? CM_EXIT_USAGE : g.nrej ? CM_EXIT_REJECTED : CM_EXIT_OK;
	}
	if (g.rej_fd >= 0) {
		if (cm_out_release(&g.rej) && !g.out.closed) {
			cm_warn("--rejects: %s: write error", g.rejects);
			rc = CM_EXIT_USAGE;
		}
		close(g.rej_fd);
	}
	cm_out_release(&g.out);
	if (g.jq)
		jq_teardown(&g.jq);
	cm_jdoc_release(&g.doc);
	cm_jdoc_release(&g.cell);
	cm_buf_release(&g.line);
	cm_buf_release(&g.props);
	cm_buf_release(&g.rawobj);
	cm_buf_release(&g.tmp);
	cm_buf_release(&g.jqmsg);
	cm_buf_release(&g.jqtext);
	free(g.jqoff);
	for (size_t i = 0; i < g.ntypes; i++)
		free(g.types[i].col);
	free(g.types);
	return rc;
}
