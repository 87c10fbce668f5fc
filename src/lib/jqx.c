/* jqx.c - jq predicates compiled in chunks behind a slot dispatch (see jqx.h). */
#include "jqx.h"

#include <jq.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "json.h"
#include "jqx_native.h"

/* A chunk holds at most this many predicates or this much text: libjq's
 * compile time has a fixed part (~25 ms) and a part that grows faster than
 * linearly with the program, so a few hundred slots per program is best. */
#define CHUNK_SLOTS 128
#define CHUNK_TEXT  (24 * 1024)
/* Nesting limit of the bracket guard. */
#define GUARD_DEPTH 256

#define NO_CHUNK UINT32_MAX

/* One distinct predicate: its text, where it was compiled, its native form. */
struct slot {
	char *text;
	size_t len;
	uint64_t hash;
	uint32_t chunk;  /* NO_CHUNK until compiled, and for a slot that failed */
	uint32_t pos;    /* the slot's number inside its chunk's program */
	uint32_t native; /* root of the native program, or NONE_J */
};

/* A set of predicates (jqx.h). */
struct cm_jqx {
	struct slot *slots;
	uint32_t n, cap;
	uint32_t done; /* slots [0, done) went through cm_jqx_compile */
	jq_state **chunks;
	uint32_t nchunks, chunkcap;
	uint32_t *tab; /* open addressing: slot + 1, 0 = empty */
	uint32_t tabcap;
	struct cm_buf prog;       /* program text being compiled */
	int64_t feed;             /* the slot `input` hands out next, -1 when done */
	struct cm_buf msgs;       /* jq's messages captured during one compile */
	struct jqx_native native; /* the native programs (jqx_native.c) */
};

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
	if (jqx_native_init(&x->native) < 0) {
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
	jqx_native_release(&x->native);
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
	s->native = jqx_native_compile(&x->native, s->text, len);
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

/* Whether slot runs natively. */
int cm_jqx_native(const struct cm_jqx *x, uint32_t slot)
{
	return slot < x->n && x->slots[slot].native != NONE_J;
}

/* Runs slot natively on the document's root. */
int cm_jqx_eval_doc(struct cm_jqx *x, uint32_t slot, const struct cm_jdoc *d)
{
	if (slot >= x->n || x->slots[slot].native == NONE_J || x->slots[slot].chunk == NO_CHUNK)
		return CM_JQX_FALLBACK;
	return jqx_native_eval(&x->native, x->slots[slot].native, d, NULL, 0);
}

/* Runs slot natively on an event with its profile member. */
int cm_jqx_eval_event(struct cm_jqx *x, uint32_t slot, const struct cm_jdoc *d,
                      const struct cm_jdoc *profile)
{
	if (slot >= x->n || x->slots[slot].native == NONE_J || x->slots[slot].chunk == NO_CHUNK)
		return CM_JQX_FALLBACK;
	return jqx_native_eval(&x->native, x->slots[slot].native, d, profile, 1);
}
