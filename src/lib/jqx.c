/* jqx.c - jq predicates compiled in chunks behind a slot dispatch (see jqx.h). */
#include "jqx.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jq.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "json.h"

/* A chunk holds at most this many predicates or this much text: libjq's
 * compile time has a fixed part (~25 ms) and a part that grows faster than
 * linearly with the program, so a few hundred slots per program is best. */
#define CHUNK_SLOTS 128
#define CHUNK_TEXT  (24 * 1024)
/* Nesting limit of the bracket guard. */
#define GUARD_DEPTH 256

#define NO_CHUNK UINT32_MAX

struct slot {
	char *text;
	size_t len;
	uint64_t hash;
	uint32_t chunk;  /* NO_CHUNK until compiled, and for a slot that failed */
	uint32_t pos;    /* the slot's number inside its chunk's program */
	uint32_t native; /* root of the native program, or NONE_J */
};

struct jnode;

struct cm_jqx {
	struct slot *slots;
	uint32_t n, cap;
	uint32_t done; /* slots [0, done) went through cm_jqx_compile */
	jq_state **chunks;
	uint32_t nchunks, chunkcap;
	uint32_t *tab; /* open addressing: slot + 1, 0 = empty */
	uint32_t tabcap;
	struct cm_buf prog; /* program text being compiled */
	int64_t feed;       /* the slot `input` hands out next, -1 when done */
	struct cm_buf msgs; /* jq's messages captured during one compile */
	/* The native programs (see the native evaluator below). */
	struct jnode *jn;
	uint32_t njn, jncap;
	uint32_t *kids;
	uint32_t nkids, kidcap;
	struct cm_buf npool; /* field names and string literals */
	pcre2_code **re;
	uint32_t nre, recap;
	pcre2_match_data *md;
};

static uint32_t native_compile(struct cm_jqx *x, const char *text, size_t len);

/* FNV-1a, enough to dedupe predicate texts. */
static uint64_t text_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* Makes an empty set. */
struct cm_jqx *cm_jqx_new(void)
{
	struct cm_jqx *x = calloc(1, sizeof(*x));

	if (!x)
		return NULL;
	cm_buf_init(&x->prog, 0);
	cm_buf_init(&x->msgs, 64 * 1024);
	cm_buf_init(&x->npool, 0);
	x->md = pcre2_match_data_create(1, NULL);
	if (!x->md || cm_buf_add(&x->npool, "", 0) < 0) {
		cm_jqx_free(x);
		return NULL;
	}
	return x;
}

/* Frees the set, its jq states and its texts. */
void cm_jqx_free(struct cm_jqx *x)
{
	if (!x)
		return;
	for (uint32_t i = 0; i < x->nchunks; i++)
		jq_teardown(&x->chunks[i]);
	for (uint32_t i = 0; i < x->n; i++)
		free(x->slots[i].text);
	free(x->chunks);
	free(x->slots);
	free(x->tab);
	cm_buf_release(&x->prog);
	cm_buf_release(&x->msgs);
	cm_buf_release(&x->npool);
	for (uint32_t i = 0; i < x->nre; i++)
		pcre2_code_free(x->re[i]);
	free(x->re);
	free(x->jn);
	free(x->kids);
	pcre2_match_data_free(x->md);
	free(x);
}

/* Distinct predicates added. */
uint32_t cm_jqx_count(const struct cm_jqx *x)
{
	return x->n;
}

/* The guard is a small jq lexer that tracks only what can close a bracket:
 * strings (with their \( interpolations, which hold code again), comments
 * and the three bracket pairs. A text accepted here, placed between "((" and
 * "\n))", cannot close those parentheses, so it cannot change the dispatch
 * around it: jq's grammar pairs brackets exactly as its lexer sees them.
 * Keywords need no check (an "end" or "import" inside parentheses is just a
 * syntax error), and neither does ';': "def f: .; f" is a valid expression
 * inside parentheses. The limit of the approach is that it trusts the lexer
 * rules of jq 1.6 to be the ones mirrored here; a comment may therefore not
 * end with a backslash (jq 1.7 continues such a comment on the next line). */
int cm_jqx_guard(const char *s, size_t n, struct cm_err *err)
{
	char stack[GUARD_DEPTH];   /* ')' ']' '}' code brackets, 'I' interpolation, 'S' string */
	size_t where[GUARD_DEPTH]; /* byte offset of each opening */
	size_t depth = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '\0')
			return cm_errf(err, "contains a NUL byte");
		if (depth > 0 && stack[depth - 1] == 'S') {
			if (c == '"') {
				depth--;
			} else if (c == '\\') {
				if (++i >= n)
					break;
				if (s[i] == '\0')
					return cm_errf(err, "contains a NUL byte");
				if (s[i] == '(') {
					if (depth >= GUARD_DEPTH)
						return cm_errf(err, "nested too deeply");
					where[depth] = i;
					stack[depth++] = 'I';
				}
			}
			continue;
		}
		switch (c) {
		case '#': {
			size_t j = i;

			while (j < n && s[j] != '\n') {
				if (s[j] == '\0')
					return cm_errf(err, "contains a NUL byte");
				j++;
			}
			if (j > i + 1 && s[j - 1] == '\\')
				return cm_errf(err, "a comment may not end with a backslash");
			i = j;
			break;
		}
		case '"':
		case '(':
		case '[':
		case '{':
			if (depth >= GUARD_DEPTH)
				return cm_errf(err, "nested too deeply");
			where[depth] = i;
			stack[depth++] = c == '"' ? 'S' : c == '(' ? ')' : c == '[' ? ']' : '}';
			break;
		case ')':
		case ']':
		case '}':
			if (depth == 0)
				return cm_errf(err, "unbalanced '%c' at byte %zu", c, i + 1);
			if (stack[depth - 1] == 'I' && c == ')') {
				depth--; /* back in the string around the interpolation */
				break;
			}
			if (stack[depth - 1] != c)
				return cm_errf(err, "unbalanced '%c' at byte %zu", c, i + 1);
			depth--;
			break;
		default:
			break;
		}
	}
	if (depth > 0) {
		char c = stack[depth - 1];

		if (c == 'S')
			return cm_errf(err, "unterminated string starting at byte %zu",
			               where[depth - 1] + 1);
		return cm_errf(err, "'%s' at byte %zu is never closed",
		               c == ')'   ? "("
		               : c == ']' ? "["
		               : c == '}' ? "{"
		                          : "\\(",
		               where[depth - 1] + 1);
	}
	return 0;
}

/* Doubles the dedupe table and reinserts every slot. */
static int tab_grow(struct cm_jqx *x)
{
	uint32_t cap = x->tabcap ? x->tabcap * 2 : 64;
	uint32_t *tab = calloc(cap, sizeof(*tab));

	if (!tab)
		return -1;
	for (uint32_t i = 0; i < x->n; i++) {
		uint32_t h = (uint32_t)x->slots[i].hash & (cap - 1);

		while (tab[h])
			h = (h + 1) & (cap - 1);
		tab[h] = i + 1;
	}
	free(x->tab);
	x->tab = tab;
	x->tabcap = cap;
	return 0;
}

/* Adds a predicate text, or finds the slot that already has it. */
int64_t cm_jqx_add(struct cm_jqx *x, const char *text, size_t len, struct cm_err *err)
{
	uint64_t hash;
	uint32_t h;
	struct slot *s;

	if (len == 0)
		return cm_errf(err, "empty jq expression");
	if (len > CM_JQX_MAX_TEXT)
		return cm_errf(err, "jq expression longer than %d bytes", CM_JQX_MAX_TEXT);
	if (cm_jqx_guard(text, len, err) < 0)
		return -1;
	if (x->n >= UINT32_MAX / 4)
		return cm_errf(err, "too many jq expressions");
	if ((x->n + 1) * 2 > x->tabcap && tab_grow(x) < 0)
		return cm_errf(err, "out of memory");
	hash = text_hash(text, len);
	for (h = (uint32_t)hash & (x->tabcap - 1); x->tab[h]; h = (h + 1) & (x->tabcap - 1)) {
		s = &x->slots[x->tab[h] - 1];
		if (s->hash == hash && s->len == len && memcmp(s->text, text, len) == 0)
			return x->tab[h] - 1;
	}
	if (x->n == x->cap) {
		uint32_t cap = x->cap ? x->cap * 2 : 16;
		struct slot *p = realloc(x->slots, cap * sizeof(*p));

		if (!p)
			return cm_errf(err, "out of memory");
		x->slots = p;
		x->cap = cap;
	}
	s = &x->slots[x->n];
	s->text = malloc(len + 1);
	if (!s->text)
		return cm_errf(err, "out of memory");
	memcpy(s->text, text, len);
	s->text[len] = '\0';
	s->len = len;
	s->hash = hash;
	s->chunk = NO_CHUNK;
	s->pos = 0;
	s->native = native_compile(x, s->text, len);
	x->tab[h] = x->n + 1;
	return x->n++;
}

/* Collects jq's compile messages instead of letting jq print them; keeps
 * the first line of each ("jq: error: " and the source excerpt dropped). */
static void on_jq_msg(void *ctx, jv msg)
{
	struct cm_buf *b = ctx;
	const char *s, *nl;
	size_t n;

	if (jv_get_kind(msg) != JV_KIND_STRING) {
		jv_free(msg);
		return;
	}
	s = jv_string_value(msg);
	if (strncmp(s, "jq: error: ", 11) == 0)
		s += 11;
	else if (strncmp(s, "jq: ", 4) == 0 && strstr(s, "compile error")) {
		jv_free(msg);
		return;
	}
	nl = strchr(s, '\n');
	n = nl ? (size_t)(nl - s) : strlen(s);
	while (n > 0 && (s[n - 1] == ':' || s[n - 1] == ' '))
		n--;
	if (b->len > 0)
		cm_buf_adds(b, "; ");
	cm_buf_add(b, s, n);
	jv_free(msg);
}

/* Writes the dispatch tree over slots idx[lo..hi) into the program text;
 * positions inside the chunk count from base. */
static int emit_tree(struct cm_jqx *x, const uint32_t *idx, uint32_t base, uint32_t lo, uint32_t hi)
{
	uint32_t mid;

	if (hi - lo == 1) {
		const struct slot *s = &x->slots[idx[lo]];

		if (cm_buf_adds(&x->prog, "first((") < 0 ||
		    cm_buf_add(&x->prog, s->text, s->len) < 0 || cm_buf_adds(&x->prog, "\n))") < 0)
			return -1;
		return 0;
	}
	mid = lo + (hi - lo) / 2;
	if (cm_buf_addf(&x->prog, "if $__cm_slot < %u then ", mid - base) < 0 ||
	    emit_tree(x, idx, base, lo, mid) < 0 || cm_buf_adds(&x->prog, " else ") < 0 ||
	    emit_tree(x, idx, base, mid, hi) < 0 || cm_buf_adds(&x->prog, " end") < 0)
		return -1;
	return 0;
}

/* Hands the slot number to the program's first `input`; any later `input`
 * (one in a predicate) finds no more inputs, an error as in a plain run. */
static jv feed_slot(jq_state *jq, void *ctx)
{
	struct cm_jqx *x = ctx;
	int64_t slot = x->feed;

	(void)jq;
	x->feed = -1;
	return slot >= 0 ? jv_number((double)slot) : jv_invalid();
}

/* Compiles text in a fresh jq state with messages captured into x->msgs;
 * returns the state, or NULL when it does not compile. */
static jq_state *compile_text(struct cm_jqx *x, const char *text)
{
	jq_state *jq = jq_init();

	if (!jq)
		return NULL;
	cm_buf_reset(&x->msgs);
	jq_set_error_cb(jq, on_jq_msg, &x->msgs);
	jq_set_input_cb(jq, feed_slot, x);
	if (!jq_compile(jq, text)) {
		jq_teardown(&jq);
		return NULL;
	}
	return jq;
}

/* Reports slot as bad with jq's message about the text alone (its line
 * numbers then refer to the user's text), or about the wrapped text. */
static void report_bad(struct cm_jqx *x, uint32_t slot, cm_jqx_badfn *bad, void *ctx)
{
	struct cm_buf wrapped = CM_BUF_INIT;
	jq_state *jq;

	if (!bad)
		return;
	cm_buf_init(&wrapped, 0);
	if (cm_buf_add(&wrapped, x->msgs.data ? x->msgs.data : "", x->msgs.len) < 0) {
		bad(ctx, slot, "does not compile");
		goto out;
	}
	jq = compile_text(x, x->slots[slot].text);
	if (jq) {
		jq_teardown(&jq);
		bad(ctx, slot, wrapped.len ? wrapped.data : "does not compile");
	} else {
		bad(ctx, slot, x->msgs.len ? x->msgs.data : "does not compile");
	}
out:
	cm_buf_release(&wrapped);
}

/* Compiles slots idx[lo..hi) as one chunk; on failure splits the group in
 * two until each bad slot is alone, so that the good ones still compile.
 * Returns the number of bad slots, or -1 when memory is out. */
static int compile_group(struct cm_jqx *x, const uint32_t *idx, uint32_t lo, uint32_t hi,
                         cm_jqx_badfn *bad, void *ctx)
{
	jq_state *jq;
	int a, b;

	cm_buf_reset(&x->prog);
	if (cm_buf_adds(&x->prog, "input as $__cm_slot | ") < 0 ||
	    emit_tree(x, idx, lo, lo, hi) < 0)
		return -1;
	jq = compile_text(x, x->prog.data);
	if (jq) {
		if (x->nchunks == x->chunkcap) {
			uint32_t cap = x->chunkcap ? x->chunkcap * 2 : 8;
			jq_state **p = realloc(x->chunks, cap * sizeof(*p));

			if (!p) {
				jq_teardown(&jq);
				return -1;
			}
			x->chunks = p;
			x->chunkcap = cap;
		}
		for (uint32_t i = lo; i < hi; i++) {
			x->slots[idx[i]].chunk = x->nchunks;
			x->slots[idx[i]].pos = i - lo;
		}
		x->chunks[x->nchunks++] = jq;
		return 0;
	}
	if (hi - lo == 1) {
		report_bad(x, idx[lo], bad, ctx);
		return 1;
	}
	a = compile_group(x, idx, lo, lo + (hi - lo) / 2, bad, ctx);
	if (a < 0)
		return -1;
	b = compile_group(x, idx, lo + (hi - lo) / 2, hi, bad, ctx);
	if (b < 0)
		return -1;
	return a + b;
}

/* Compiles the slots added since the last call, chunk by chunk. */
int cm_jqx_compile(struct cm_jqx *x, cm_jqx_badfn *bad, void *ctx, struct cm_err *err)
{
	uint32_t *idx = NULL, n = x->n - x->done, lo = 0;
	int nbad = 0, rc = -1;

	if (n == 0)
		return 0;
	idx = malloc(n * sizeof(*idx));
	if (!idx) {
		cm_errf(err, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < n; i++)
		idx[i] = x->done + i;
	while (lo < n) {
		uint32_t hi = lo;
		size_t text = 0;
		int r;

		while (hi < n && hi - lo < CHUNK_SLOTS && (hi == lo || text < CHUNK_TEXT))
			text += x->slots[idx[hi++]].len;
		r = compile_group(x, idx, lo, hi, bad, ctx);
		if (r < 0) {
			cm_errf(err, "out of memory");
			goto out;
		}
		nbad += r;
		lo = hi;
	}
	x->done = x->n;
	rc = nbad;
out:
	free(idx);
	return rc;
}

/* Copies the message of an invalid jv into err, as text. */
static void error_text(jv result, struct cm_err *err)
{
	jv msg = jv_invalid_get_msg(result);

	if (jv_get_kind(msg) == JV_KIND_STRING) {
		cm_errf(err, "%.400s", jv_string_value(msg));
		jv_free(msg);
	} else {
		jv s = jv_dump_string(msg, 0);

		cm_errf(err, "%.400s (not a string)", jv_string_value(s));
		jv_free(s);
	}
}

/* Runs one slot's predicate on input and applies jq truthiness to its first
 * output. */
int cm_jqx_eval(struct cm_jqx *x, uint32_t slot, jv input, struct cm_err *err)
{
	const struct slot *s;
	jq_state *jq;
	jv r;
	int rc;

	if (slot >= x->n || x->slots[slot].chunk == NO_CHUNK) {
		if (err)
			cm_errf(err, "jq expression did not compile");
		return CM_JQX_ERROR;
	}
	s = &x->slots[slot];
	jq = x->chunks[s->chunk];
	x->feed = s->pos;
	jq_start(jq, jv_copy(input), 0);
	r = jq_next(jq);
	x->feed = -1;
	switch (jv_get_kind(r)) {
	case JV_KIND_INVALID:
		if (jv_invalid_has_msg(jv_copy(r))) {
			if (err)
				error_text(r, err);
			else
				jv_free(r);
			return CM_JQX_ERROR;
		}
		rc = CM_JQX_FALSE;
		break;
	case JV_KIND_NULL:
	case JV_KIND_FALSE:
		rc = CM_JQX_FALSE;
		break;
	default:
		rc = CM_JQX_TRUE;
		break;
	}
	jv_free(r);
	return rc;
}

/* ---- the native evaluator ----
 *
 * Most campaign predicates are small expressions over a few fields:
 * "(.properties.items // 0) >= 2", "(.user_id | ltrimstr(\"u-\") |
 * tonumber) % 7 == 3". Running them through libjq costs a conversion of
 * the event to jv values and an interpreter run, several microseconds. The
 * native evaluator runs a subset of jq straight on the parsed event: paths,
 * literals, | // and or, comparisons, + - * / %, [a, b], and length not
 * tonumber add startswith endswith ltrimstr rtrimstr test index contains,
 * each with jq 1.6's exact semantics where it answers. It answers only when
 * it is sure: every error, every value it does not model (an escaped
 * string, two containers compared, a regular expression meeting a newline)
 * makes it return CM_JQX_FALLBACK and libjq decides, so its answers are
 * always jq's. The differential tests in test_jqx.c hold it to that. */

enum {
	J_DOT,
	J_FIELD,
	J_INDEX,
	J_SLICE,
	J_LIT,
	J_PIPE,
	J_ALT,
	J_OR,
	J_AND,
	J_EQ,
	J_NE,
	J_LT,
	J_LE,
	J_GT,
	J_GE,
	J_ADD,
	J_SUB,
	J_MUL,
	J_DIV,
	J_MOD,
	J_ARRAY,
	J_LENGTH,
	J_NOT,
	J_TONUMBER,
	J_ADDALL,
	J_STARTS,
	J_ENDS,
	J_LTRIM,
	J_RTRIM,
	J_TEST,
	J_INDEXOF,
	J_CONTAINS,
};

/* Value kinds, in jq's sort order (null < false < true < numbers < strings
 * < arrays < objects). */
enum { V_NULL, V_FALSE, V_TRUE, V_NUM, V_STR, V_ARR, V_OBJ };

struct jnode {
	uint8_t op;
	uint8_t lk;    /* J_LIT: kind */
	uint8_t flags; /* J_SLICE: 1 from given, 2 to given */
	uint32_t a, b; /* operands; J_FIELD/J_INDEX/J_SLICE: a is the subject */
	uint32_t n;    /* J_ARRAY: items in kids from a */
	int64_t i1, i2;
	uint32_t soff, slen; /* J_FIELD name, J_LIT string: in npool */
	double num;
	uint32_t re; /* J_TEST: regex */
};

/* A value during native evaluation: scalars, strings pointing into the
 * event or the program, event containers by token, built arrays by item
 * list. */
struct jval {
	uint8_t k;
	uint8_t built; /* V_ARR made by [a, b]: items, not tok */
	uint32_t tok;
	uint32_t n;
	double num;
	const char *s;
	const struct jval *items;
};

#define JPOOL 64

struct jctx {
	struct cm_jqx *x;
	const struct cm_jdoc *d;
	struct jval pool[JPOOL];
	uint32_t npool;
};

#define NONE_J UINT32_MAX

/* Appends a node; NONE_J on failure. */
static uint32_t jn_add(struct cm_jqx *x, const struct jnode *n)
{
	if (x->njn == x->jncap) {
		uint32_t cap = x->jncap ? x->jncap * 2 : 64;
		struct jnode *p = realloc(x->jn, cap * sizeof(*p));

		if (!p)
			return NONE_J;
		x->jn = p;
		x->jncap = cap;
	}
	x->jn[x->njn] = *n;
	return x->njn++;
}

/* The parser state over one predicate text. */
struct jp {
	struct cm_jqx *x;
	const char *s, *e;
	int bad;
	int depth;
};

/* Skips whitespace (comments are not in the subset). */
static void jp_ws(struct jp *p)
{
	while (p->s < p->e && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
		p->s++;
}

/* True (and consumed) when the text continues with the punctuation tok. */
static int jp_punct(struct jp *p, const char *tok)
{
	size_t n = strlen(tok);

	jp_ws(p);
	if ((size_t)(p->e - p->s) < n || memcmp(p->s, tok, n) != 0)
		return 0;
	/* "/" must not be the start of "//", "<" not of "<=", and so on. */
	if (n == 1 && p->s + 1 < p->e &&
	    ((tok[0] == '/' && p->s[1] == '/') || (tok[0] == '<' && p->s[1] == '=') ||
	     (tok[0] == '>' && p->s[1] == '=') || (tok[0] == '|' && p->s[1] == '=') ||
	     (tok[0] == '=' && p->s[1] == '=')))
		return 0;
	if (n == 2 && tok[0] == '/' && p->s + 2 < p->e && p->s[2] == '=')
		return 0;
	p->s += n;
	return 1;
}

/* True for a character of a jq identifier. */
static int jp_identc(char c, int first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (!first && c >= '0' && c <= '9');
}

/* True (and consumed) when the text continues with the word w. */
static int jp_word(struct jp *p, const char *w)
{
	size_t n = strlen(w);

	jp_ws(p);
	if ((size_t)(p->e - p->s) < n || memcmp(p->s, w, n) != 0)
		return 0;
	if (p->s + n < p->e && (jp_identc(p->s[n], 0) || p->s[n] == ':'))
		return 0;
	p->s += n;
	return 1;
}

/* Reads an identifier into name (at most size - 1 bytes); 0 if none. */
static int jp_ident(struct jp *p, char *name, size_t size)
{
	size_t n = 0;

	jp_ws(p);
	if (p->s >= p->e || !jp_identc(*p->s, 1))
		return 0;
	while (p->s + n < p->e && jp_identc(p->s[n], 0))
		n++;
	if (p->s + n < p->e && p->s[n] == ':') /* module syntax */
		return 0;
	if (n >= size)
		return 0;
	memcpy(name, p->s, n);
	name[n] = 0;
	p->s += n;
	return 1;
}

/* Reads a string literal without interpolation into the pool, decoded. */
static int jp_string(struct jp *p, uint32_t *off, uint32_t *len)
{
	struct cm_buf *b = &p->x->npool;
	size_t start = b->len;

	jp_ws(p);
	if (p->s >= p->e || *p->s != '"')
		return 0;
	p->s++;
	while (p->s < p->e && *p->s != '"') {
		unsigned char c = (unsigned char)*p->s++;

		if (c < 0x20)
			return 0;
		if (c != '\\') {
			if (cm_buf_addc(b, (char)c) < 0)
				return 0;
			continue;
		}
		if (p->s >= p->e)
			return 0;
		c = (unsigned char)*p->s++;
		switch (c) {
		case '"':
		case '\\':
		case '/':
			break;
		case 'b':
			c = '\b';
			break;
		case 'f':
			c = '\f';
			break;
		case 'n':
			c = '\n';
			break;
		case 'r':
			c = '\r';
			break;
		case 't':
			c = '\t';
			break;
		default:
			return 0; /* \u escapes and \( interpolation: left to jq */
		}
		if (cm_buf_addc(b, (char)c) < 0)
			return 0;
	}
	if (p->s >= p->e)
		return 0;
	p->s++;
	if (b->len - start > UINT32_MAX / 2)
		return 0;
	*off = (uint32_t)start;
	*len = (uint32_t)(b->len - start);
	return 1;
}

/* Reads a number literal of the form -?D+(.D+)?([eE][+-]?D+)? */
static int jp_number(struct jp *p, double *v)
{
	const char *s;
	char buf[64];
	size_t n;

	jp_ws(p);
	s = p->s;
	if (s < p->e && *s == '-')
		s++;
	if (s >= p->e || *s < '0' || *s > '9')
		return 0;
	while (s < p->e && *s >= '0' && *s <= '9')
		s++;
	if (s < p->e && *s == '.') {
		s++;
		if (s >= p->e || *s < '0' || *s > '9')
			return 0;
		while (s < p->e && *s >= '0' && *s <= '9')
			s++;
	}
	if (s < p->e && (*s == 'e' || *s == 'E')) {
		s++;
		if (s < p->e && (*s == '+' || *s == '-'))
			s++;
		if (s >= p->e || *s < '0' || *s > '9')
			return 0;
		while (s < p->e && *s >= '0' && *s <= '9')
			s++;
	}
	if (s < p->e && (jp_identc(*s, 0) || *s == '.'))
		return 0;
	n = (size_t)(s - p->s);
	if (n >= sizeof(buf))
		return 0;
	memcpy(buf, p->s, n);
	buf[n] = 0;
	*v = strtod(buf, NULL);
	p->s = s;
	return 1;
}

/* Reads an integer literal (for indexes and slices). */
static int jp_int(struct jp *p, int64_t *v)
{
	double d;

	if (!jp_number(p, &d) || d != (double)(int64_t)d || d > 1e15 || d < -1e15)
		return 0;
	*v = (int64_t)d;
	return 1;
}

/* Checks that a regular expression uses only syntax on which Oniguruma (as
 * jq runs it) and PCRE2 agree for subjects without newlines: ASCII
 * literals, . ^ $ | ( ) * + ? and ASCII classes, backslash only before
 * punctuation. */
static int jp_regex_ok(const char *r, size_t n)
{
	int cls = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)r[i];

		if (c >= 0x80 || c < 0x20 || c == '{' || c == '}')
			return 0;
		if (c == '\\') {
			if (++i >= n)
				return 0;
			c = (unsigned char)r[i];
			if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c >= 0x80 || c < 0x20)
				return 0;
			continue;
		}
		if (cls) {
			if (c == '[' || (c == '&' && i + 1 < n && r[i + 1] == '&'))
				return 0;
			if (c == ']')
				cls = 0;
			continue;
		}
		if (c == '[') {
			cls = 1;
			if (i + 1 < n && r[i + 1] == '^')
				i++;
			if (i + 1 < n && r[i + 1] == ']') /* "[]...]" */
				return 0;
			continue;
		}
		if (c == '(' && i + 1 < n && (r[i + 1] == '?' || r[i + 1] == '*'))
			return 0;
		/* possessive quantifiers change what matches */
		if ((c == '*' || c == '+' || c == '?') && i + 1 < n && r[i + 1] == '+')
			return 0;
	}
	return !cls;
}

static uint32_t jp_pipe(struct jp *p);
static uint32_t jp_alt(struct jp *p);

/* Postfix: .name, ."name", [n], [n:m], ["name"] after a term. */
static uint32_t jp_post(struct jp *p, uint32_t a)
{
	for (;;) {
		struct jnode nd;
		char name[256];

		memset(&nd, 0, sizeof(nd));
		nd.a = a;
		jp_ws(p);
		if (p->s + 1 < p->e && p->s[0] == '.' && jp_identc(p->s[1], 1)) {
			p->s++;
			if (!jp_ident(p, name, sizeof(name)) ||
			    cm_buf_add(&p->x->npool, name, strlen(name)) < 0)
				return NONE_J;
			nd.op = J_FIELD;
			nd.slen = (uint32_t)strlen(name);
			nd.soff = (uint32_t)(p->x->npool.len - nd.slen);
		} else if (p->s + 1 < p->e && p->s[0] == '.' && p->s[1] == '"') {
			p->s++;
			nd.op = J_FIELD;
			if (!jp_string(p, &nd.soff, &nd.slen))
				return NONE_J;
		} else if (p->s < p->e && p->s[0] == '[') {
			p->s++;
			jp_ws(p);
			if (p->s < p->e && *p->s == '"') {
				nd.op = J_FIELD;
				if (!jp_string(p, &nd.soff, &nd.slen))
					return NONE_J;
			} else if (jp_punct(p, ":")) {
				nd.op = J_SLICE;
				nd.flags = 2;
				if (!jp_int(p, &nd.i2))
					return NONE_J;
			} else {
				if (!jp_int(p, &nd.i1))
					return NONE_J;
				nd.op = J_INDEX;
				if (jp_punct(p, ":")) {
					nd.op = J_SLICE;
					nd.flags = 1;
					jp_ws(p);
					if (p->s < p->e && *p->s != ']') {
						if (!jp_int(p, &nd.i2))
							return NONE_J;
						nd.flags |= 2;
					}
				}
			}
			if (!jp_punct(p, "]"))
				return NONE_J;
		} else {
			return a;
		}
		a = jn_add(p->x, &nd);
		if (a == NONE_J)
			return NONE_J;
	}
}

/* A builtin call: name without arguments, or name(arg). */
static uint32_t jp_call(struct jp *p, const char *name)
{
	static const struct {
		const char *name;
		uint8_t op;
		uint8_t args;
	} fns[] = {
	    {"length", J_LENGTH, 0},  {"not", J_NOT, 0},           {"tonumber", J_TONUMBER, 0},
	    {"add", J_ADDALL, 0},     {"startswith", J_STARTS, 1}, {"endswith", J_ENDS, 1},
	    {"ltrimstr", J_LTRIM, 1}, {"rtrimstr", J_RTRIM, 1},    {"test", J_TEST, 1},
	    {"index", J_INDEXOF, 1},  {"contains", J_CONTAINS, 1},
	};
	struct jnode nd;

	memset(&nd, 0, sizeof(nd));
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		if (strcmp(fns[i].name, name) != 0)
			continue;
		nd.op = fns[i].op;
		if (fns[i].args == 0) {
			jp_ws(p);
			if (p->s < p->e && *p->s == '(')
				return NONE_J;
			return jn_add(p->x, &nd);
		}
		if (!jp_punct(p, "("))
			return NONE_J;
		if (nd.op == J_TEST) {
			uint32_t off, len;
			int code;
			PCRE2_SIZE eoff;
			pcre2_code *re;

			if (!jp_string(p, &off, &len) || !jp_punct(p, ")") ||
			    !jp_regex_ok(p->x->npool.data + off, len))
				return NONE_J;
			re = pcre2_compile((PCRE2_SPTR)(p->x->npool.data + off), len, PCRE2_UTF,
			                   &code, &eoff, NULL);
			if (!re)
				return NONE_J;
			if (p->x->nre == p->x->recap) {
				uint32_t cap = p->x->recap ? p->x->recap * 2 : 8;
				pcre2_code **q = realloc(p->x->re, cap * sizeof(*q));

				if (!q) {
					pcre2_code_free(re);
					return NONE_J;
				}
				p->x->re = q;
				p->x->recap = cap;
			}
			nd.re = p->x->nre;
			p->x->re[p->x->nre++] = re;
			return jn_add(p->x, &nd);
		}
		nd.a = jp_pipe(p);
		if (nd.a == NONE_J || !jp_punct(p, ")"))
			return NONE_J;
		return jn_add(p->x, &nd);
	}
	return NONE_J;
}

/* A term: . .name literal (e) [a, b] call, then postfixes. */
static uint32_t jp_term(struct jp *p)
{
	struct jnode nd;
	char name[64];
	uint32_t a;

	memset(&nd, 0, sizeof(nd));
	if (++p->depth > 100)
		return NONE_J;
	jp_ws(p);
	if (p->s >= p->e)
		return NONE_J;
	if (*p->s == '.') {
		if (p->s + 1 < p->e && (p->s[1] == '.' || (p->s[1] >= '0' && p->s[1] <= '9')))
			return NONE_J; /* .. and .5 */
		if (p->s + 1 < p->e && (jp_identc(p->s[1], 1) || p->s[1] == '"')) {
			nd.op = J_DOT;
			a = jn_add(p->x, &nd);
			return a == NONE_J ? a : jp_post(p, a);
		}
		p->s++;
		nd.op = J_DOT;
		a = jn_add(p->x, &nd);
	} else if (*p->s == '"') {
		nd.op = J_LIT;
		nd.lk = V_STR;
		if (!jp_string(p, &nd.soff, &nd.slen))
			return NONE_J;
		a = jn_add(p->x, &nd);
	} else if ((*p->s >= '0' && *p->s <= '9') || *p->s == '-') {
		nd.op = J_LIT;
		nd.lk = V_NUM;
		if (!jp_number(p, &nd.num))
			return NONE_J;
		a = jn_add(p->x, &nd);
	} else if (*p->s == '(') {
		p->s++;
		a = jp_pipe(p);
		if (a == NONE_J || !jp_punct(p, ")"))
			return NONE_J;
	} else if (*p->s == '[') {
		uint32_t items[16], n = 0;

		p->s++;
		if (!jp_punct(p, "]")) {
			do {
				if (n == 16)
					return NONE_J;
				items[n] = jp_alt(p);
				if (items[n++] == NONE_J)
					return NONE_J;
			} while (jp_punct(p, ","));
			if (!jp_punct(p, "]"))
				return NONE_J;
		}
		nd.op = J_ARRAY;
		nd.a = p->x->nkids;
		nd.n = n;
		for (uint32_t i = 0; i < n; i++) {
			if (p->x->nkids == p->x->kidcap) {
				uint32_t cap = p->x->kidcap ? p->x->kidcap * 2 : 32;
				uint32_t *q = realloc(p->x->kids, cap * sizeof(*q));

				if (!q)
					return NONE_J;
				p->x->kids = q;
				p->x->kidcap = cap;
			}
			p->x->kids[p->x->nkids++] = items[i];
		}
		a = jn_add(p->x, &nd);
	} else if (jp_ident(p, name, sizeof(name))) {
		if (!strcmp(name, "true") || !strcmp(name, "false") || !strcmp(name, "null")) {
			nd.op = J_LIT;
			nd.lk = name[0] == 't' ? V_TRUE : name[0] == 'f' ? V_FALSE : V_NULL;
			a = jn_add(p->x, &nd);
		} else {
			a = jp_call(p, name);
		}
	} else {
		return NONE_J;
	}
	p->depth--;
	return a == NONE_J ? a : jp_post(p, a);
}

/* A left-associative level: operands from next, joined by the operators
 * ops (punctuation) mapped to codes. */
static uint32_t jp_binary(struct jp *p, uint32_t a, uint8_t op, uint32_t b)
{
	struct jnode nd;

	if (a == NONE_J || b == NONE_J)
		return NONE_J;
	memset(&nd, 0, sizeof(nd));
	nd.op = op;
	nd.a = a;
	nd.b = b;
	return jn_add(p->x, &nd);
}

/* Products: * / % (left-associative). */
static uint32_t jp_mul(struct jp *p)
{
	uint32_t a = jp_term(p);

	while (a != NONE_J) {
		if (jp_punct(p, "*"))
			a = jp_binary(p, a, J_MUL, jp_term(p));
		else if (jp_punct(p, "/"))
			a = jp_binary(p, a, J_DIV, jp_term(p));
		else if (jp_punct(p, "%"))
			a = jp_binary(p, a, J_MOD, jp_term(p));
		else
			break;
	}
	return a;
}

/* Sums: + - (left-associative). */
static uint32_t jp_add(struct jp *p)
{
	uint32_t a = jp_mul(p);

	while (a != NONE_J) {
		if (jp_punct(p, "+"))
			a = jp_binary(p, a, J_ADD, jp_mul(p));
		else if (jp_punct(p, "-"))
			a = jp_binary(p, a, J_SUB, jp_mul(p));
		else
			break;
	}
	return a;
}

/* Comparisons do not chain in jq. */
static uint32_t jp_cmp(struct jp *p)
{
	static const struct {
		const char *tok;
		uint8_t op;
	} ops[] = {{"==", J_EQ}, {"!=", J_NE}, {"<=", J_LE},
	           {">=", J_GE}, {"<", J_LT},  {">", J_GT}};
	uint32_t a = jp_add(p);

	if (a == NONE_J)
		return a;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (!jp_punct(p, ops[i].tok))
			continue;
		a = jp_binary(p, a, ops[i].op, jp_add(p));
		for (size_t k = 0; a != NONE_J && k < sizeof(ops) / sizeof(ops[0]); k++) {
			jp_ws(p);
			if ((size_t)(p->e - p->s) >= strlen(ops[k].tok) &&
			    memcmp(p->s, ops[k].tok, strlen(ops[k].tok)) == 0)
				return NONE_J;
		}
		return a;
	}
	return a;
}

/* and, binding tighter than or. */
static uint32_t jp_and(struct jp *p)
{
	uint32_t a = jp_cmp(p);

	while (a != NONE_J && jp_word(p, "and"))
		a = jp_binary(p, a, J_AND, jp_cmp(p));
	return a;
}

/* or. */
static uint32_t jp_or(struct jp *p)
{
	uint32_t a = jp_and(p);

	while (a != NONE_J && jp_word(p, "or"))
		a = jp_binary(p, a, J_OR, jp_and(p));
	return a;
}

/* "//" is right-associative. */
static uint32_t jp_alt(struct jp *p)
{
	uint32_t a = jp_or(p);

	if (a != NONE_J && jp_punct(p, "//"))
		return jp_binary(p, a, J_ALT, jp_alt(p));
	return a;
}

/* A pipe, the loosest operator of the subset (no comma). */
static uint32_t jp_pipe(struct jp *p)
{
	uint32_t a = jp_alt(p);

	if (a != NONE_J && jp_punct(p, "|"))
		return jp_binary(p, a, J_PIPE, jp_pipe(p));
	return a;
}

/* Compiles text to a native program, or returns NONE_J when it is outside
 * the subset (then only libjq runs it). */
static uint32_t native_compile(struct cm_jqx *x, const char *text, size_t len)
{
	struct jp p = {x, text, text + len, 0, 0};
	uint32_t mark = x->njn, root;

	root = jp_pipe(&p);
	jp_ws(&p);
	if (root == NONE_J || p.s != p.e) {
		x->njn = mark;
		return NONE_J;
	}
	return root;
}

/* The value of event token t; -1 for what the evaluator does not model
 * (strings with escapes). */
static int tok_val(const struct jctx *c, uint32_t t, struct jval *v)
{
	const struct cm_jtok *k = &c->d->tok[t];

	memset(v, 0, sizeof(*v));
	switch (k->type) {
	case CM_JNULL:
		v->k = V_NULL;
		return 0;
	case CM_JTRUE:
		v->k = V_TRUE;
		return 0;
	case CM_JFALSE:
		v->k = V_FALSE;
		return 0;
	case CM_JNUM:
		v->k = V_NUM;
		v->num = cm_json_num(c->d, t);
		return 0;
	case CM_JSTR:
		if (k->esc)
			return -1;
		v->k = V_STR;
		v->s = c->d->src + k->off;
		v->n = k->len;
		return 0;
	case CM_JARR:
		v->k = V_ARR;
		v->tok = t;
		v->n = k->count;
		return 0;
	default:
		v->k = V_OBJ;
		v->tok = t;
		v->n = k->count;
		return 0;
	}
}

/* jq truthiness: everything but false and null. */
static inline int truthy(const struct jval *v)
{
	return v->k != V_NULL && v->k != V_FALSE;
}

/* Sets a boolean result. */
static inline void set_bool(struct jval *v, int b)
{
	memset(v, 0, sizeof(*v));
	v->k = b ? V_TRUE : V_FALSE;
}

/* Sets a number result. */
static inline void set_num(struct jval *v, double n)
{
	memset(v, 0, sizeof(*v));
	v->k = V_NUM;
	v->num = n;
}

/* Element i of an array value. */
static int arr_at(const struct jctx *c, const struct jval *a, uint32_t i, struct jval *out)
{
	if (a->built) {
		*out = a->items[i];
		return 0;
	}
	return tok_val(c, cm_json_at(c->d, a->tok, i), out);
}

/* jq's ordering of two values; -2 when containers would have to be
 * compared element by element (not modelled). */
static int jcmp(const struct jval *a, const struct jval *b)
{
	int c;

	if (a->k != b->k)
		return a->k < b->k ? -1 : 1;
	switch (a->k) {
	case V_NUM:
		return a->num < b->num ? -1 : a->num > b->num;
	case V_STR:
		c = memcmp(a->s, b->s, a->n < b->n ? a->n : b->n);
		if (c)
			return c < 0 ? -1 : 1;
		return a->n < b->n ? -1 : a->n > b->n;
	case V_ARR:
	case V_OBJ:
		return -2;
	default:
		return 0;
	}
}

/* Number of code points of valid UTF-8. */
static size_t utf8_len(const char *s, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += ((unsigned char)s[i] & 0xC0) != 0x80;
	return k;
}

/* Byte offset of code point i. */
static size_t utf8_off(const char *s, size_t n, size_t i)
{
	size_t b = 0;

	while (b < n && i > 0) {
		b++;
		while (b < n && ((unsigned char)s[b] & 0xC0) == 0x80)
			b++;
		i--;
	}
	return b;
}

/* jq's tonumber on a string, for the forms jq reads as strtod does:
 * -?D+(.D+)?([eE][+-]?D+)?; others are left to jq. */
static int str_number(const char *s, size_t n, double *v)
{
	char buf[64];
	size_t i = 0;

	if (n == 0 || n >= sizeof(buf))
		return -1;
	if (s[i] == '-')
		i++;
	if (i >= n || s[i] < '0' || s[i] > '9')
		return -1;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++;
	if (i < n && s[i] == '.') {
		if (++i >= n || s[i] < '0' || s[i] > '9')
			return -1;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= n || s[i] < '0' || s[i] > '9')
			return -1;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (i != n)
		return -1;
	memcpy(buf, s, n);
	buf[n] = 0;
	*v = strtod(buf, NULL);
	return 0;
}

/* a + b for the kinds modelled: numbers, and null on either side. */
static int jadd(const struct jval *a, const struct jval *b, struct jval *out)
{
	if (a->k == V_NULL) {
		*out = *b;
		return 0;
	}
	if (b->k == V_NULL) {
		*out = *a;
		return 0;
	}
	if (a->k != V_NUM || b->k != V_NUM)
		return -1;
	set_num(out, a->num + b->num);
	return 0;
}

static int jeval(struct jctx *c, uint32_t ni, const struct jval *in, struct jval *out);

/* Evaluates both operands of a binary node. */
static int jeval2(struct jctx *c, const struct jnode *n, const struct jval *in, struct jval *a,
                  struct jval *b)
{
	if (jeval(c, n->a, in, a) < 0 || jeval(c, n->b, in, b) < 0)
		return -1;
	return 0;
}

/* Evaluates node ni on input in: 0 with out set, or -1 when jq would raise
 * an error or the case is not modelled. */
static int jeval(struct jctx *c, uint32_t ni, const struct jval *in, struct jval *out)
{
	const struct jnode *n = &c->x->jn[ni];
	struct jval a, b;
	int r;

	switch (n->op) {
	case J_DOT:
		*out = *in;
		return 0;
	case J_FIELD:
		if (jeval(c, n->a, in, &a) < 0)
			return -1;
		if (a.k == V_NULL) {
			*out = a;
			return 0;
		}
		if (a.k != V_OBJ || a.built)
			return -1;
		{
			uint32_t t = cm_json_get(c->d, a.tok, c->x->npool.data + n->soff, n->slen);

			if (t == CM_JNONE) {
				memset(out, 0, sizeof(*out));
				out->k = V_NULL;
				return 0;
			}
			return tok_val(c, t, out);
		}
	case J_INDEX: {
		int64_t i = n->i1;

		if (jeval(c, n->a, in, &a) < 0)
			return -1;
		if (a.k == V_NULL) {
			*out = a;
			return 0;
		}
		if (a.k != V_ARR)
			return -1;
		if (i < 0)
			i += a.n;
		if (i < 0 || i >= (int64_t)a.n) {
			memset(out, 0, sizeof(*out));
			out->k = V_NULL;
			return 0;
		}
		return arr_at(c, &a, (uint32_t)i, out);
	}
	case J_SLICE: {
		int64_t len, from, to;

		if (jeval(c, n->a, in, &a) < 0)
			return -1;
		if (a.k == V_NULL) {
			*out = a;
			return 0;
		}
		if (a.k != V_STR)
			return -1;
		len = (int64_t)utf8_len(a.s, a.n);
		from = n->flags & 1 ? n->i1 : 0;
		to = n->flags & 2 ? n->i2 : len;
		if (from < 0)
			from += len;
		if (to < 0)
			to += len;
		if (from < 0)
			from = 0;
		if (from > len)
			from = len;
		if (to > len)
			to = len;
		if (to < from)
			to = from;
		{
			size_t bf = utf8_off(a.s, a.n, (size_t)from);
			size_t bt = utf8_off(a.s, a.n, (size_t)to);

			*out = a;
			out->s = a.s + bf;
			out->n = (uint32_t)(bt - bf);
		}
		return 0;
	}
	case J_LIT:
		memset(out, 0, sizeof(*out));
		out->k = n->lk;
		out->num = n->num;
		if (n->lk == V_STR) {
			out->s = c->x->npool.data + n->soff;
			out->n = n->slen;
		}
		return 0;
	case J_PIPE:
		if (jeval(c, n->a, in, &a) < 0)
			return -1;
		return jeval(c, n->b, &a, out);
	case J_ALT:
		if (jeval(c, n->a, in, &a) < 0)
			return -1;
		if (truthy(&a)) {
			*out = a;
			return 0;
		}
		return jeval(c, n->b, in, out);
	case J_OR:
	case J_AND:
		if (jeval(c, n->a, in, &a) < 0)
			return -1;
		if (truthy(&a) == (n->op == J_OR)) {
			set_bool(out, n->op == J_OR);
			return 0;
		}
		if (jeval(c, n->b, in, &b) < 0)
			return -1;
		set_bool(out, truthy(&b));
		return 0;
	case J_EQ:
	case J_NE:
	case J_LT:
	case J_LE:
	case J_GT:
	case J_GE:
		if (jeval2(c, n, in, &a, &b) < 0)
			return -1;
		r = jcmp(&a, &b);
		if (r == -2)
			return -1;
		set_bool(out, n->op == J_EQ   ? r == 0
		              : n->op == J_NE ? r != 0
		              : n->op == J_LT ? r < 0
		              : n->op == J_LE ? r <= 0
		              : n->op == J_GT ? r > 0
		                              : r >= 0);
		return 0;
	case J_ADD:
		if (jeval2(c, n, in, &a, &b) < 0)
			return -1;
		return jadd(&a, &b, out);
	case J_SUB:
	case J_MUL:
	case J_DIV:
	case J_MOD:
		if (jeval2(c, n, in, &a, &b) < 0 || a.k != V_NUM || b.k != V_NUM)
			return -1;
		if (n->op == J_SUB) {
			set_num(out, a.num - b.num);
		} else if (n->op == J_MUL) {
			set_num(out, a.num * b.num);
		} else if (n->op == J_DIV) {
			if (b.num == 0)
				return -1;
			set_num(out, a.num / b.num);
		} else {
			/* jq 1.6 truncates both to intmax_t first. */
			if (!(a.num > -9e18 && a.num < 9e18 && b.num > -9e18 && b.num < 9e18))
				return -1;
			if ((int64_t)b.num == 0)
				return -1;
			set_num(out, (double)((int64_t)a.num % (int64_t)b.num));
		}
		return 0;
	case J_ARRAY: {
		uint32_t first = c->npool;

		if (c->npool + n->n > JPOOL)
			return -1;
		c->npool += n->n;
		for (uint32_t i = 0; i < n->n; i++)
			if (jeval(c, c->x->kids[n->a + i], in, &c->pool[first + i]) < 0)
				return -1;
		memset(out, 0, sizeof(*out));
		out->k = V_ARR;
		out->built = 1;
		out->n = n->n;
		out->items = &c->pool[first];
		return 0;
	}
	case J_LENGTH:
		switch (in->k) {
		case V_NULL:
			set_num(out, 0);
			return 0;
		case V_NUM:
			set_num(out, in->num < 0 ? -in->num : in->num);
			return 0;
		case V_STR:
			set_num(out, (double)utf8_len(in->s, in->n));
			return 0;
		case V_ARR:
			set_num(out, in->n);
			return 0;
		default:
			return -1; /* booleans: error; objects: duplicate keys */
		}
	case J_NOT:
		set_bool(out, !truthy(in));
		return 0;
	case J_TONUMBER:
		if (in->k == V_NUM) {
			*out = *in;
			return 0;
		}
		if (in->k != V_STR)
			return -1;
		memset(out, 0, sizeof(*out));
		out->k = V_NUM;
		return str_number(in->s, in->n, &out->num);
	case J_ADDALL: {
		struct jval acc, e;

		if (in->k != V_ARR)
			return -1;
		memset(&acc, 0, sizeof(acc));
		acc.k = V_NULL;
		for (uint32_t i = 0; i < in->n; i++) {
			if (arr_at(c, in, i, &e) < 0 || jadd(&acc, &e, &acc) < 0)
				return -1;
		}
		*out = acc;
		return 0;
	}
	case J_STARTS:
	case J_ENDS:
	case J_LTRIM:
	case J_RTRIM: {
		int start = n->op == J_STARTS || n->op == J_LTRIM, hit;

		if (jeval(c, n->a, in, &b) < 0)
			return -1;
		hit = in->k == V_STR && b.k == V_STR && b.n <= in->n &&
		      memcmp(start ? in->s : in->s + in->n - b.n, b.s, b.n) == 0;
		if (n->op == J_STARTS || n->op == J_ENDS) {
			if (in->k != V_STR || b.k != V_STR)
				return -1;
			set_bool(out, hit);
			return 0;
		}
		*out = *in;
		if (hit) {
			out->n -= b.n;
			if (start)
				out->s += b.n;
		}
		return 0;
	}
	case J_TEST:
		if (in->k != V_STR || memchr(in->s, '\n', in->n) || !c->x->md)
			return -1;
		r = pcre2_match(c->x->re[n->re], (PCRE2_SPTR)(in->n ? in->s : ""), in->n, 0, 0,
		                c->x->md, NULL);
		if (r < 0 && r != PCRE2_ERROR_NOMATCH)
			return -1;
		set_bool(out, r >= 0);
		return 0;
	case J_INDEXOF:
		if (jeval(c, n->a, in, &b) < 0)
			return -1;
		if (in->k == V_NULL && b.k == V_STR) {
			*out = *in;
			return 0;
		}
		if (in->k == V_ARR && b.k < V_ARR) {
			struct jval e;

			for (uint32_t i = 0; i < in->n; i++) {
				if (arr_at(c, in, i, &e) < 0)
					return -1;
				if (e.k < V_ARR && jcmp(&e, &b) == 0) {
					set_num(out, i);
					return 0;
				}
			}
			memset(out, 0, sizeof(*out));
			out->k = V_NULL;
			return 0;
		}
		if (in->k == V_STR && b.k == V_STR && b.n > 0) {
			const char *hit = memmem(in->s, in->n, b.s, b.n);

			memset(out, 0, sizeof(*out));
			out->k = V_NULL;
			if (hit)
				set_num(out, (double)(hit - in->s));
			return 0;
		}
		return -1;
	case J_CONTAINS:
		if (jeval(c, n->a, in, &b) < 0)
			return -1;
		if (in->k != V_STR || b.k != V_STR)
			return -1;
		set_bool(out, b.n == 0 || memmem(in->s, in->n, b.s, b.n) != NULL);
		return 0;
	default:
		return -1;
	}
}

/* Whether slot runs natively. */
int cm_jqx_native(const struct cm_jqx *x, uint32_t slot)
{
	return slot < x->n && x->slots[slot].native != NONE_J;
}

/* Runs slot natively on the document's root. */
int cm_jqx_eval_doc(struct cm_jqx *x, uint32_t slot, const struct cm_jdoc *d)
{
	struct jctx c;
	struct jval in, out;

	if (slot >= x->n || x->slots[slot].native == NONE_J || x->slots[slot].chunk == NO_CHUNK ||
	    d->ntok == 0)
		return CM_JQX_FALLBACK;
	c.x = x;
	c.d = d;
	c.npool = 0;
	if (tok_val(&c, 0, &in) < 0 || jeval(&c, x->slots[slot].native, &in, &out) < 0)
		return CM_JQX_FALLBACK;
	return truthy(&out) ? CM_JQX_TRUE : CM_JQX_FALSE;
}
