/* json.c - a single-pass, iterative, strictly validating JSON parser (RFC 8259)
 * that fills a flat token tape, plus the accessors built on it.
 *
 * The parser never recurses: an open container keeps its parent's index in its
 * `next` field until it closes, so the nesting stack lives in the tape itself.
 * Strings are scanned 16 bytes at a time with SSE2 and only fall back to a
 * byte-wise UTF-8 validator when a non-ASCII byte appears. */
#include "json.h"

#include "buf.h"
#include "err.h"
#include "num.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define LIKELY(x)   __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

enum {
	DEFAULT_DEPTH = 64,
	FIRST_CAP = 64,
};

/* What went wrong inside a string, for the error message. */
enum str_err {
	SE_EOF = 1,
	SE_CTRL,
	SE_ESC,
	SE_HEX,
	SE_UTF8,
};

/* Prepares an empty document so that release is always safe. */
void cm_jdoc_init(struct cm_jdoc *d, unsigned max_depth)
{
	memset(d, 0, sizeof(*d));
	d->max_depth = max_depth ? max_depth : DEFAULT_DEPTH;
}

/* Frees the token array; the source text belongs to the caller. */
void cm_jdoc_release(struct cm_jdoc *d)
{
	free(d->tok);
	d->tok = NULL;
	d->ntok = d->cap = 0;
	d->src = NULL;
	d->len = 0;
}

static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;

/* Frees a thread's documents when it ends. */
static void thread_free(void *p)
{
	struct cm_jdoc *docs = p;

	for (unsigned i = 0; i < CM_JDOC_THREAD_SLOTS; i++)
		cm_jdoc_release(&docs[i]);
	free(docs);
}

/* The key is made once per process; failing to make it only costs reuse. */
static void thread_key_make(void)
{
	if (pthread_key_create(&thread_key, thread_free) != 0)
		thread_key = (pthread_key_t)-1;
}

/* The thread's document of that slot, made on first use. */
struct cm_jdoc *cm_jdoc_thread(unsigned slot, unsigned max_depth)
{
	struct cm_jdoc *docs;

	pthread_once(&thread_once, thread_key_make);
	if (slot >= CM_JDOC_THREAD_SLOTS)
		return NULL;
	docs = pthread_getspecific(thread_key);
	if (!docs) {
		docs = calloc(CM_JDOC_THREAD_SLOTS, sizeof(*docs));
		if (!docs || pthread_setspecific(thread_key, docs) != 0) {
			free(docs);
			return NULL;
		}
		for (unsigned i = 0; i < CM_JDOC_THREAD_SLOTS; i++)
			cm_jdoc_init(&docs[i], 0);
	}
	docs[slot].max_depth = max_depth ? max_depth : 64;
	return &docs[slot];
}

/* Copies the tokens of src into dst, for the same text at a new place: the
 * tokens hold offsets, so only the text pointer changes (cheaper than
 * parsing the copy of a text again). */
int cm_jdoc_copy(struct cm_jdoc *dst, const struct cm_jdoc *src, const char *text)
{
	if (dst->cap < src->ntok) {
		struct cm_jtok *t = realloc(dst->tok, (size_t)src->ntok * sizeof(*t));

		if (!t)
			return -1;
		dst->tok = t;
		dst->cap = src->ntok;
	}
	if (src->ntok)
		memcpy(dst->tok, src->tok, (size_t)src->ntok * sizeof(*src->tok));
	dst->ntok = src->ntok;
	dst->src = text;
	dst->len = src->len;
	dst->flags = src->flags;
	return 0;
}

/* The JSON whitespace characters as a bit set over bytes 0..32. */
#define WS_BITS                                                                                    \
	(UINT64_C(1) << ' ' | UINT64_C(1) << '\n' | UINT64_C(1) << '\r' | UINT64_C(1) << '\t')

/* Tells JSON whitespace apart from everything else with one compare and one
 * bit test. */
static inline int is_ws(unsigned char c)
{
	return c <= ' ' && (WS_BITS >> c & 1);
}

/* Skips insignificant whitespace; compact input leaves the loop at once. */
static inline const unsigned char *skip_ws(const unsigned char *p, const unsigned char *end)
{
	while (p < end && is_ws(*p))
		p++;
	return p;
}

/* Digit test without the locale machinery of isdigit. */
static inline int is_digit(unsigned char c)
{
	return (unsigned)(c - '0') < 10;
}

/* Length of the strict UTF-8 sequence at p (no overlongs, no surrogates,
 * nothing above U+10FFFF), or 0 when it is invalid. */
static inline size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
	size_t left = (size_t)(end - p);
	unsigned c = p[0], lo = 0x80, hi = 0xBF;

	if (c < 0xC2)
		return 0;
	if (c < 0xE0)
		return left >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c < 0xF0) {
		if (left < 3)
			return 0;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
		return p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 ? 3 : 0;
	}
	if (c < 0xF5) {
		if (left < 4)
			return 0;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
		return p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80
		           ? 4
		           : 0;
	}
	return 0;
}

/* The value of the 4 hex digits at p, or -1 when one is not a hex digit. */
static inline int hex4(const unsigned char *p)
{
	int a = cm_hexval(p[0]), b = cm_hexval(p[1]), c = cm_hexval(p[2]), d = cm_hexval(p[3]);

	return (a | b | c | d) < 0 ? -1 : a << 12 | b << 8 | c << 4 | d;
}

/* Notes in *fl what the (validated) \u escape at p decodes to when some
 * consumer cannot hold it: U+0000, or a surrogate that is not the high half
 * of a pair followed by its low half. Returns the bytes the escape takes,
 * 12 for a pair. Only reached for \u escapes, so plain text pays nothing. */
static __attribute__((noinline)) size_t note_u(const unsigned char *p, const unsigned char *end,
                                               unsigned *fl)
{
	int cp = hex4(p + 2), lo;

	if (cp == 0) {
		*fl |= CM_JF_NUL;
	} else if (cp >= 0xD800 && cp < 0xE000) {
		if (cp < 0xDC00 && end - p >= 12 && p[6] == '\\' && p[7] == 'u') {
			lo = hex4(p + 8);
			if (lo >= 0xDC00 && lo < 0xE000)
				return 12;
		}
		*fl |= CM_JF_SURROGATE;
	}
	return 6;
}

/* Scans a string body starting after its opening quote and returns the
 * closing quote, or NULL with *code and *at describing the fault; plain ASCII
 * runs go 16 bytes per step, and the last partial block is read as the 16
 * bytes ending at end (never past it) when the input is long enough. *esc is
 * set when there is an escape, and *fl gets the CM_JF_* of note_u. */
static inline __attribute__((always_inline)) const unsigned char *
scan_str(const unsigned char *p, const unsigned char *end, const unsigned char *base, int *esc,
         unsigned *fl, int *code, const unsigned char **at)
{
#if defined(__SSE2__)
	const __m128i quote = _mm_set1_epi8('"');
	const __m128i bslash = _mm_set1_epi8('\\');
	const __m128i space = _mm_set1_epi8(' ');
	__m128i v, qv, m;
	unsigned mask, qmask;
#endif
	for (;;) {
		unsigned char c;

#if defined(__SSE2__)
		/* A signed compare against ' ' catches both control characters
		 * and bytes >= 0x80, which are negative as signed chars. */
		while (end - p >= 16) {
			v = _mm_loadu_si128((const __m128i *)(const void *)p);
			qv = _mm_cmpeq_epi8(v, quote);
			m = _mm_or_si128(_mm_or_si128(qv, _mm_cmpeq_epi8(v, bslash)),
			                 _mm_cmplt_epi8(v, space));
			mask = (unsigned)_mm_movemask_epi8(m);
			if (mask) {
				qmask = (unsigned)_mm_movemask_epi8(qv);
				/* The closing quote first: no need to reload the byte. */
				if (LIKELY(qmask & mask & -mask))
					return p + __builtin_ctz(mask);
				p += __builtin_ctz(mask);
				goto special;
			}
			p += 16;
		}
		if (p < end && end - base >= 16) {
			unsigned shift = 16 - (unsigned)(end - p);

			v = _mm_loadu_si128((const __m128i *)(const void *)(end - 16));
			qv = _mm_cmpeq_epi8(v, quote);
			m = _mm_or_si128(_mm_or_si128(qv, _mm_cmpeq_epi8(v, bslash)),
			                 _mm_cmplt_epi8(v, space));
			mask = (unsigned)_mm_movemask_epi8(m) >> shift;
			if (mask) {
				qmask = (unsigned)_mm_movemask_epi8(qv) >> shift;
				if (LIKELY(qmask & mask & -mask))
					return p + __builtin_ctz(mask);
				p += __builtin_ctz(mask);
				goto special;
			}
			p = end;
		}
#endif
		for (;;) {
			if (UNLIKELY(p >= end)) {
				*code = SE_EOF;
				*at = p;
				return NULL;
			}
			c = *p;
			if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80)
				break;
			p++;
		}
#if defined(__SSE2__)
	special:
#endif
		c = *p;
		if (LIKELY(c == '"'))
			return p;
		if (c == '\\') {
			*esc = 1;
			if (p + 1 >= end) {
				*code = SE_ESC;
				*at = p + 1;
				return NULL;
			}
			switch (p[1]) {
			case '"':
			case '\\':
			case '/':
			case 'b':
			case 'f':
			case 'n':
			case 'r':
			case 't':
				p += 2;
				continue;
			case 'u':
				for (int i = 2; i < 6; i++) {
					if (p + i >= end || cm_hexval(p[i]) < 0) {
						*code = SE_HEX;
						*at = p + i;
						return NULL;
					}
				}
				p += note_u(p, end, fl);
				continue;
			default:
				*code = SE_ESC;
				*at = p + 1;
				return NULL;
			}
		}
		if (c < 0x20) {
			*code = SE_CTRL;
			*at = p;
			return NULL;
		}
		/* Non-ASCII: validate sequences until the text turns ASCII. */
		do {
			size_t n = utf8_seq(p, end);

			if (!n) {
				*code = SE_UTF8;
				*at = p;
				return NULL;
			}
			p += n;
		} while (p < end && *p >= 0x80);
	}
}

/* Stores a token with a few plain stores (type, esc and flags as one word). */
static inline void put_tok(struct cm_jtok *t, unsigned type, unsigned esc, unsigned flags,
                           uint32_t off, uint32_t len, uint32_t next)
{
	uint32_t head = type | esc << 8 | flags << 16;

	memcpy(t, &head, sizeof(head));
	t->off = off;
	t->len = len;
	t->next = next;
	t->count = 0;
}

/* Formats an "expected X" error, naming what was found instead, and empties
 * the document so that a failed parse exposes no half-built tape. */
static __attribute__((cold, noinline)) int fail(struct cm_jdoc *d, struct cm_err *err,
                                                const unsigned char *p, const char *what)
{
	const unsigned char *base = (const unsigned char *)d->src, *end = base + d->len;
	size_t at = (size_t)(p - base) + 1;

	d->ntok = 0;
	if (p >= end)
		return cm_errf(err, "byte %zu: %s, found end of input", at, what);
	if (*p >= 0x20 && *p < 0x7f)
		return cm_errf(err, "byte %zu: %s, found '%c'", at, what, *p);
	return cm_errf(err, "byte %zu: %s, found byte 0x%02x", at, what, *p);
}

/* Reports a fault found by scan_str for the string that opened at quote. */
static __attribute__((cold, noinline)) int fail_str(struct cm_jdoc *d, struct cm_err *err,
                                                    const unsigned char *quote, int code,
                                                    const unsigned char *at)
{
	const unsigned char *base = (const unsigned char *)d->src;
	size_t pos = (size_t)(at - base) + 1;

	switch (code) {
	case SE_EOF:
		d->ntok = 0;
		return cm_errf(err,
		               "byte %zu: unterminated string (opened at byte %zu), expected '\"'",
		               pos, (size_t)(quote - base) + 1);
	case SE_CTRL:
		d->ntok = 0;
		return cm_errf(err,
		               "byte %zu: unescaped control character 0x%02x in string, expected "
		               "an escape such as \\n or \\u00XX",
		               pos, *at);
	case SE_ESC:
		return fail(d, err, at,
		            "invalid escape in string: expected one of \" \\ / b f n r t u "
		            "after '\\'");
	case SE_HEX:
		return fail(d, err, at, "invalid \\u escape in string: expected 4 hex digits");
	default:
		d->ntok = 0;
		return cm_errf(err, "byte %zu: invalid UTF-8 sequence in string (byte 0x%02x)", pos,
		               *at);
	}
}

/* Makes room for token n: grows the array geometrically (keeping it for later
 * parses) and returns the new usable limit, or 0 at max_tokens or when memory
 * is out. */
static __attribute__((noinline)) uint32_t grow_tokens(struct cm_jdoc *d, uint32_t n)
{
	size_t nc;
	struct cm_jtok *t;

	if (d->max_tokens && n >= d->max_tokens)
		return 0;
	if (n < d->cap)
		return d->max_tokens && d->max_tokens < d->cap ? d->max_tokens : d->cap;
	nc = d->cap ? (size_t)d->cap * 2 : FIRST_CAP;
	if (nc > UINT32_MAX)
		nc = UINT32_MAX;
	if (nc <= n)
		return 0;
	t = realloc(d->tok, nc * sizeof(*t));
	if (!t)
		return 0;
	d->tok = t;
	d->cap = (uint32_t)nc;
	return d->max_tokens && d->max_tokens < d->cap ? d->max_tokens : d->cap;
}

/* Reports why grow_tokens gave no room. */
static __attribute__((cold, noinline)) int fail_tokens(struct cm_jdoc *d, struct cm_err *err,
                                                       const unsigned char *p, uint32_t n)
{
	size_t at = (size_t)(p - (const unsigned char *)d->src) + 1;

	d->ntok = 0;
	if (d->max_tokens && n >= d->max_tokens)
		return cm_errf(err, "byte %zu: document has more than %u tokens (max_tokens)", at,
		               (unsigned)d->max_tokens);
	return cm_errf(err, "byte %zu: out of memory for %u tokens", at, (unsigned)n + 1);
}

/* Parses in one pass with a goto state machine: `value` expects a value,
 * `after` a separator or a closing bracket, `key` a member name. */
int cm_json_parse(struct cm_jdoc *d, const char *src, size_t len, struct cm_err *err)
{
	const unsigned char *base = (const unsigned char *)src, *p = base, *end = base + len;
	const unsigned char *s, *q, *at = NULL;
	struct cm_jtok *tok;
	uint32_t n = 0, lim, cur = CM_JNONE;
	unsigned depth = 0, maxd = d->max_depth ? d->max_depth : DEFAULT_DEPTH;
	unsigned fl, dflags = 0;
	int in_obj = 0, esc, code = 0;

	d->src = src;
	d->len = len;
	d->ntok = 0;
	d->flags = 0;
	if (len > UINT32_MAX)
		return cm_errf(err, "input of %zu bytes is too large (the limit is %u bytes)", len,
		               (unsigned)UINT32_MAX);
	if (len == 0)
		return cm_errf(err, "byte 1: empty input, expected a JSON value");
	tok = d->tok;
	lim = d->cap;
	if (d->max_tokens && d->max_tokens < lim)
		lim = d->max_tokens;

value:
	if (UNLIKELY(n >= lim)) {
		lim = grow_tokens(d, n);
		if (!lim)
			return fail_tokens(d, err, p, n);
		tok = d->tok;
	}
	if (UNLIKELY(p >= end))
		return fail(d, err, p, "expected a JSON value");
	if (LIKELY(*p == '"'))
		goto string;
	switch (*p) {
	case ' ':
	case '\t':
	case '\n':
	case '\r':
		p = skip_ws(p + 1, end);
		goto value;
	case '"':
	string:
		s = p + 1;
		esc = 0;
		fl = 0;
		q = scan_str(s, end, base, &esc, &fl, &code, &at);
		if (UNLIKELY(!q))
			return fail_str(d, err, p, code, at);
		put_tok(&tok[n], CM_JSTR, (uint8_t)esc, fl, (uint32_t)(s - base), (uint32_t)(q - s),
		        n + 1);
		dflags |= fl;
		n++;
		p = q + 1;
		goto after;
	case '{':
	case '[':
		if (UNLIKELY(++depth > maxd)) {
			d->ntok = 0;
			return cm_errf(err, "byte %zu: nesting deeper than %u levels (max_depth)",
			               (size_t)(p - base) + 1, maxd);
		}
		put_tok(&tok[n], *p == '{' ? CM_JOBJ : CM_JARR, 0, 0, (uint32_t)(p - base), 0, cur);
		cur = n++;
		in_obj = *p == '{';
		p++;
		if (UNLIKELY(p < end && is_ws(*p)))
			p = skip_ws(p, end);
		if (p < end && *p == (in_obj ? '}' : ']')) {
			p++;
			goto close;
		}
		tok[cur].count = 1;
		if (in_obj)
			goto key;
		goto value;
	case '-':
	case '0':
	case '1':
	case '2':
	case '3':
	case '4':
	case '5':
	case '6':
	case '7':
	case '8':
	case '9':
		s = p;
		fl = 0;
		if (*p == '-') {
			p++;
			if (p >= end || !is_digit(*p))
				return fail(d, err, p, "expected a digit after '-'");
		}
		if (*p == '0') {
			p++;
			if (p < end && is_digit(*p))
				return fail(d, err, p,
				            "leading zeros are not allowed: expected '.', 'e' or "
				            "the end of the number after 0");
		} else {
			do
				p++;
			while (p < end && is_digit(*p));
		}
		if (p < end && *p == '.') {
			p++;
			if (p >= end || !is_digit(*p))
				return fail(d, err, p, "expected a digit after '.'");
			do
				p++;
			while (p < end && is_digit(*p));
		}
		if (p < end && (*p | 0x20) == 'e') {
			p++;
			if (p < end && (*p == '+' || *p == '-'))
				p++;
			if (p >= end || !is_digit(*p))
				return fail(d, err, p, "expected a digit in the exponent");
			q = p;
			do
				p++;
			while (p < end && is_digit(*p));
			if (UNLIKELY(p - q > CM_JNUM_PLAIN_EXP))
				fl = CM_JF_BIGNUM;
		}
		if (UNLIKELY(p - s > CM_JNUM_PLAIN_LEN))
			fl = CM_JF_BIGNUM;
		put_tok(&tok[n], CM_JNUM, 0, fl, (uint32_t)(s - base), (uint32_t)(p - s), n + 1);
		dflags |= fl;
		n++;
		goto after;
	case 't':
		if (end - p >= 4 && memcmp(p, "true", 4) == 0) {
			put_tok(&tok[n], CM_JTRUE, 0, 0, (uint32_t)(p - base), 4, n + 1);
			break;
		}
		return fail(d, err, p, "expected a JSON value (true, false or null?)");
	case 'f':
		if (end - p >= 5 && memcmp(p, "false", 5) == 0) {
			put_tok(&tok[n], CM_JFALSE, 0, 0, (uint32_t)(p - base), 5, n + 1);
			p++; /* the common p += 4 below covers the rest */
			break;
		}
		return fail(d, err, p, "expected a JSON value (true, false or null?)");
	case 'n':
		if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
			put_tok(&tok[n], CM_JNULL, 0, 0, (uint32_t)(p - base), 4, n + 1);
			break;
		}
		return fail(d, err, p, "expected a JSON value (true, false or null?)");
	default:
		return fail(d, err, p, "expected a JSON value");
	}
	/* Literals end here. */
	n++;
	p += 4;
	goto after;

close:
	/* p is one past the closing bracket of container cur. */
	{
		uint32_t parent = tok[cur].next;

		tok[cur].next = n;
		tok[cur].len = (uint32_t)(p - base) - tok[cur].off;
		cur = parent;
		depth--;
		in_obj = cur != CM_JNONE && tok[cur].type == CM_JOBJ;
	}
	/* fall through */
after:
	if (UNLIKELY(cur == CM_JNONE))
		goto done;
	if (UNLIKELY(p < end && is_ws(*p)))
		p = skip_ws(p, end);
	if (in_obj) {
		if (LIKELY(p < end && *p == ',')) {
			tok[cur].count++;
			p++;
			goto key;
		}
		if (LIKELY(p < end && *p == '}')) {
			p++;
			goto close;
		}
		return fail(d, err, p, "expected ',' or '}' after object member");
	}
	if (LIKELY(p < end && *p == ',')) {
		tok[cur].count++;
		p++;
		goto value;
	}
	if (LIKELY(p < end && *p == ']')) {
		p++;
		goto close;
	}
	return fail(d, err, p, "expected ',' or ']' after array element");

key:
	if (UNLIKELY(p < end && is_ws(*p)))
		p = skip_ws(p, end);
	if (UNLIKELY(n >= lim)) {
		lim = grow_tokens(d, n);
		if (!lim)
			return fail_tokens(d, err, p, n);
		tok = d->tok;
	}
	if (UNLIKELY(p >= end || *p != '"'))
		return fail(d, err, p, "expected '\"' to start a member name");
	s = p + 1;
	esc = 0;
	fl = 0;
	q = scan_str(s, end, base, &esc, &fl, &code, &at);
	if (UNLIKELY(!q))
		return fail_str(d, err, p, code, at);
	put_tok(&tok[n], CM_JSTR, (uint8_t)esc, fl, (uint32_t)(s - base), (uint32_t)(q - s), n + 1);
	dflags |= fl;
	n++;
	p = q + 1;
	if (LIKELY(p < end && *p == ':')) {
		p++;
		goto value;
	}
	p = skip_ws(p, end);
	if (UNLIKELY(p >= end || *p != ':'))
		return fail(d, err, p, "expected ':' after member name");
	p++;
	goto value;

done:
	p = skip_ws(p, end);
	if (UNLIKELY(p != end))
		return fail(d, err, p, "expected the end of input after the JSON value");
	d->ntok = n;
	d->flags = dflags;
	return 0;
}

/* Decodes the escape at p (a backslash inside a validated string ending at e)
 * into o; returns the bytes written and advances *pp. Lone surrogates become
 * U+FFFD. */
static size_t decode_esc(const unsigned char **pp, const unsigned char *e, unsigned char *o)
{
	const unsigned char *p = *pp;
	unsigned cp;

	switch (p[1]) {
	case 'b':
		o[0] = '\b';
		break;
	case 'f':
		o[0] = '\f';
		break;
	case 'n':
		o[0] = '\n';
		break;
	case 'r':
		o[0] = '\r';
		break;
	case 't':
		o[0] = '\t';
		break;
	case 'u':
		break;
	default:
		o[0] = p[1];
		break;
	}
	if (p[1] != 'u') {
		*pp = p + 2;
		return 1;
	}
	cp = (unsigned)(cm_hexval(p[2]) << 12 | cm_hexval(p[3]) << 8 | cm_hexval(p[4]) << 4 |
	                cm_hexval(p[5]));
	p += 6;
	if (cp >= 0xD800 && cp < 0xDC00) {
		unsigned lo = 0;

		if (e - p >= 6 && p[0] == '\\' && p[1] == 'u')
			lo = (unsigned)(cm_hexval(p[2]) << 12 | cm_hexval(p[3]) << 8 |
			                cm_hexval(p[4]) << 4 | cm_hexval(p[5]));
		if (lo >= 0xDC00 && lo < 0xE000) {
			cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			p += 6;
		} else {
			cp = 0xFFFD;
		}
	} else if (cp >= 0xDC00 && cp < 0xE000) {
		cp = 0xFFFD;
	}
	*pp = p;
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xC0 | cp >> 6);
		o[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xE0 | cp >> 12);
		o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
		o[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (unsigned char)(0xF0 | cp >> 18);
	o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
	o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
	o[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

/* A byte-at-a-time view of a string's decoded form, so that escaped strings
 * can be compared without allocating. */
struct sdec {
	const unsigned char *p, *e;
	unsigned char buf[4];
	unsigned bi, bn;
};

/* Starts a decoder over string token t. */
static void sdec_init(struct sdec *s, const struct cm_jdoc *d, uint32_t t)
{
	s->p = (const unsigned char *)d->src + d->tok[t].off;
	s->e = s->p + d->tok[t].len;
	s->bi = s->bn = 0;
}

/* The next decoded byte, or -1 at the end. */
static int sdec_next(struct sdec *s)
{
	if (s->bi < s->bn)
		return s->buf[s->bi++];
	if (s->p >= s->e)
		return -1;
	if (*s->p != '\\')
		return *s->p++;
	s->bn = (unsigned)decode_esc(&s->p, s->e, s->buf);
	s->bi = 1;
	return s->buf[0];
}

/* Whether escaped string token t decodes to s[0..n). */
static int esc_eq(const struct cm_jdoc *d, uint32_t t, const char *str, size_t n)
{
	struct sdec s;
	size_t i;
	int c;

	if (n > d->tok[t].len)
		return 0; /* decoding never lengthens a string */
	sdec_init(&s, d, t);
	for (i = 0; i < n; i++) {
		c = sdec_next(&s);
		if (c != (unsigned char)str[i])
			return 0;
	}
	return sdec_next(&s) < 0;
}

/* True when string token t decodes to exactly s[0..n); raw bytes compare
 * directly when the token holds no escape. */
int cm_json_str_eq(const struct cm_jdoc *d, uint32_t t, const char *s, size_t n)
{
	const struct cm_jtok *k;

	if (t >= d->ntok || d->tok[t].type != CM_JSTR)
		return 0;
	k = &d->tok[t];
	if (!k->esc)
		return k->len == n && memcmp(d->src + k->off, s, n) == 0;
	return esc_eq(d, t, s, n);
}

/* Finds the last member of obj whose name decodes to key: member names are
 * compared as raw bytes unless they hold an escape. */
uint32_t cm_json_get(const struct cm_jdoc *d, uint32_t obj, const char *key, size_t keylen)
{
	const struct cm_jtok *t = d->tok;
	uint32_t i, m, found = CM_JNONE;

	if (obj >= d->ntok || t[obj].type != CM_JOBJ)
		return CM_JNONE;
	i = obj + 1;
	for (m = t[obj].count; m; m--) {
		const struct cm_jtok *k = &t[i];

		if (k->len == keylen && !k->esc) {
			/* Names of equal length mostly differ in their first byte:
			 * test it before calling memcmp. */
			if (keylen == 0 || (d->src[k->off] == key[0] &&
			                    memcmp(d->src + k->off + 1, key + 1, keylen - 1) == 0))
				found = i + 1;
		} else if (k->esc && esc_eq(d, i, key, keylen)) {
			found = i + 1;
		}
		i = t[i + 1].next;
	}
	return found;
}

/* Walks the elements of arr, since the tape links siblings forward only. */
uint32_t cm_json_at(const struct cm_jdoc *d, uint32_t arr, uint32_t i)
{
	uint32_t t;

	if (arr >= d->ntok || d->tok[arr].type != CM_JARR || i >= d->tok[arr].count)
		return CM_JNONE;
	t = arr + 1;
	while (i--)
		t = d->tok[t].next;
	return t;
}

/* Splits the path once into segments pointing into an owned copy, so that
 * lookups do no parsing. */
int cm_jpath_init(struct cm_jpath *p, const char *path, size_t len, struct cm_err *err)
{
	size_t i, start, nseg = 1;
	uint32_t k = 0;

	memset(p, 0, sizeof(*p));
	if (len == 0)
		return cm_errf(err, "empty path, expected a dot path such as properties.amount");
	if (len > UINT32_MAX)
		return cm_errf(err, "path of %zu bytes is too long", len);
	for (i = 0; i < len; i++)
		nseg += path[i] == '.';
	p->text = malloc(len + 1);
	p->seg = calloc(nseg, sizeof(*p->seg));
	if (!p->text || !p->seg) {
		cm_jpath_release(p);
		return cm_errf(err, "out of memory for a path of %zu bytes", len);
	}
	memcpy(p->text, path, len);
	p->text[len] = 0;
	for (start = 0, i = 0; i <= len; i++) {
		struct cm_jseg *g;
		size_t j;

		if (i < len && path[i] != '.')
			continue;
		if (i == start) {
			int plen = len > 200 ? 200 : (int)len;

			cm_jpath_release(p);
			return cm_errf(err, "path '%.*s%s': empty segment at byte %zu", plen, path,
			               len > 200 ? "..." : "", i + 1);
		}
		g = &p->seg[k++];
		g->name = p->text + start;
		g->len = (uint32_t)(i - start);
		g->index = -1;
		if (g->len > 1 && path[start] == '0')
			goto next;
		{
			int64_t v = 0;

			for (j = start; j < i; j++) {
				unsigned dgt = (unsigned char)path[j] - '0';

				if (dgt > 9 || v > (INT64_MAX - (int64_t)dgt) / 10)
					goto next;
				v = v * 10 + dgt;
			}
			g->index = v;
		}
	next:
		start = i + 1;
	}
	p->nseg = k;
	return 0;
}

/* Frees the segments and the copy of the path. */
void cm_jpath_release(struct cm_jpath *p)
{
	free(p->seg);
	free(p->text);
	p->seg = NULL;
	p->text = NULL;
	p->nseg = 0;
}

/* Follows p from root: a segment names an object member, or indexes an array
 * when it is a valid index and the value there is an array. */
uint32_t cm_json_lookup(const struct cm_jdoc *d, uint32_t root, const struct cm_jpath *p)
{
	uint32_t t = root, i;

	for (i = 0; i < p->nseg && t != CM_JNONE; i++) {
		const struct cm_jseg *g = &p->seg[i];

		if (t >= d->ntok)
			return CM_JNONE;
		if (d->tok[t].type == CM_JOBJ)
			t = cm_json_get(d, t, g->name, g->len);
		else if (d->tok[t].type == CM_JARR && g->index >= 0 && g->index < UINT32_MAX)
			t = cm_json_at(d, t, (uint32_t)g->index);
		else
			return CM_JNONE;
	}
	return t;
}

/* Decodes string token t into out (room for its raw length is enough, since
 * decoding never lengthens a string); returns the decoded length. */
static size_t decode_into(const struct cm_jdoc *d, uint32_t t, char *out)
{
	const unsigned char *p = (const unsigned char *)d->src + d->tok[t].off;
	const unsigned char *e = p + d->tok[t].len;
	unsigned char *o = (unsigned char *)out;

	while (p < e) {
		const unsigned char *bs = memchr(p, '\\', (size_t)(e - p));
		size_t run = bs ? (size_t)(bs - p) : (size_t)(e - p);

		memcpy(o, p, run);
		o += run;
		p += run;
		if (p < e)
			o += decode_esc(&p, e, o);
	}
	return (size_t)(o - (unsigned char *)out);
}

/* Returns string bytes in place when possible and decodes only escaped
 * strings, so that the common case costs nothing. */
const char *cm_json_str(const struct cm_jdoc *d, uint32_t t, struct cm_buf *scratch, size_t *len)
{
	const struct cm_jtok *k;
	size_t n;

	if (len)
		*len = 0;
	if (t >= d->ntok || d->tok[t].type != CM_JSTR)
		return NULL;
	k = &d->tok[t];
	if (!k->esc) {
		if (len)
			*len = k->len;
		return d->src + k->off;
	}
	cm_buf_reset(scratch);
	if (cm_buf_grow(scratch, (size_t)k->len + 1) < 0)
		return NULL;
	n = decode_into(d, t, scratch->data);
	scratch->len = n;
	scratch->data[n] = 0;
	if (len)
		*len = n;
	return scratch->data;
}

/* Exact powers of ten representable as doubles, for the fast path. */
static const double pow10_exact[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

enum {
	SLOW_DIGITS = 780, /* more than any halfway case between doubles needs */
	EXP_CLAMP = 100000,
};

/* Converts a validated number text exactly via strtod: the text is rewritten
 * as an integer of at most SLOW_DIGITS digits (plus a sticky 1 standing for
 * any nonzero digits dropped) and a decimal exponent, which has no decimal
 * point and so reads the same in every locale. */
static __attribute__((noinline)) double num_slow(const unsigned char *p, const unsigned char *e)
{
	char buf[SLOW_DIGITS + 40];
	size_t nd = 0;
	int64_t e10 = 0, x = 0;
	int neg = 0, sticky = 0, frac = 0, xneg = 0, saved = errno;
	double v;

	if (*p == '-') {
		neg = 1;
		p++;
	}
	for (; p < e; p++) {
		unsigned char c = *p;

		if (c == '.') {
			frac = 1;
			continue;
		}
		if (!is_digit(c))
			break;
		if (nd == 0 && c == '0') {
			e10 -= frac;
			continue;
		}
		if (nd < SLOW_DIGITS) {
			buf[nd++] = (char)c;
			e10 -= frac;
		} else {
			sticky |= c != '0';
			e10 += !frac;
		}
	}
	if (p < e) { /* exponent */
		p++;
		if (*p == '-' || *p == '+')
			xneg = *p++ == '-';
		for (; p < e; p++)
			if (x < 1000000000)
				x = x * 10 + (*p - '0');
		e10 += xneg ? -x : x;
	}
	if (nd == 0)
		return neg ? -0.0 : 0.0;
	if (sticky) {
		buf[nd++] = '1';
		e10--;
	}
	if (e10 > EXP_CLAMP)
		e10 = EXP_CLAMP;
	if (e10 < -EXP_CLAMP)
		e10 = -EXP_CLAMP;
	buf[nd++] = 'e';
	if (e10 < 0) {
		buf[nd++] = '-';
		e10 = -e10;
	}
	{
		char tmp[16];
		size_t i = 0;

		do {
			tmp[i++] = (char)('0' + e10 % 10);
			e10 /= 10;
		} while (e10);
		while (i)
			buf[nd++] = tmp[--i];
	}
	buf[nd] = 0;
	v = strtod(buf, NULL);
	errno = saved;
	return neg ? -v : v;
}

/* Converts number token t: a mantissa of at most 2^53 with a decimal exponent
 * within +-22 is exact with one multiply or divide; the rest goes to strtod. */
double cm_json_num(const struct cm_jdoc *d, uint32_t t)
{
	const unsigned char *p, *e, *s;
	uint64_t m = 0;
	int e10 = 0, nd = 0, neg = 0;

	if (t >= d->ntok || d->tok[t].type != CM_JNUM)
		return 0.0;
	s = p = (const unsigned char *)d->src + d->tok[t].off;
	e = p + d->tok[t].len;
	if (*p == '-') {
		neg = 1;
		p++;
	}
	while (p < e && is_digit(*p)) {
		if (m || *p != '0') {
			if (++nd > 19)
				return num_slow(s, e);
			m = m * 10 + (uint64_t)(*p - '0');
		}
		p++;
	}
	if (p < e && *p == '.') {
		p++;
		while (p < e && is_digit(*p)) {
			if (m || *p != '0') {
				if (++nd > 19)
					return num_slow(s, e);
				m = m * 10 + (uint64_t)(*p - '0');
			}
			e10--;
			p++;
		}
	}
	if (p < e) {
		int x = 0, xneg = 0;

		p++;
		if (*p == '-' || *p == '+')
			xneg = *p++ == '-';
		while (p < e) {
			if (x > 10000)
				return num_slow(s, e);
			x = x * 10 + (*p++ - '0');
		}
		e10 += xneg ? -x : x;
	}
	if (m == 0)
		return neg ? -0.0 : 0.0;
	if (m > (UINT64_C(1) << 53) || e10 < -22 || e10 > 22)
		return num_slow(s, e);
	{
		double v = (double)m;

		v = e10 < 0 ? v / pow10_exact[-e10] : v * pow10_exact[e10];
		return neg ? -v : v;
	}
}

/* Whether string tokens a.ta and b.tb decode to the same bytes. */
static int str_tok_eq(const struct cm_jdoc *a, uint32_t ta, const struct cm_jdoc *b, uint32_t tb)
{
	const struct cm_jtok *x = &a->tok[ta], *y = &b->tok[tb];
	struct sdec sa, sb;
	int c;

	if (!x->esc && !y->esc)
		return x->len == y->len && memcmp(a->src + x->off, b->src + y->off, x->len) == 0;
	if (!x->esc)
		return esc_eq(b, tb, a->src + x->off, x->len);
	if (!y->esc)
		return esc_eq(a, ta, b->src + y->off, y->len);
	sdec_init(&sa, a, ta);
	sdec_init(&sb, b, tb);
	do {
		c = sdec_next(&sa);
		if (c != sdec_next(&sb))
			return 0;
	} while (c >= 0);
	return 1;
}

/* The value of the last member of obj (in d) whose name equals key token k of
 * document kd, or CM_JNONE. */
static uint32_t get_by_tok(const struct cm_jdoc *d, uint32_t obj, const struct cm_jdoc *kd,
                           uint32_t k)
{
	const struct cm_jtok *kt = &kd->tok[k];

	if (!kt->esc)
		return cm_json_get(d, obj, kd->src + kt->off, kt->len);
	{
		const struct cm_jtok *t = d->tok;
		uint32_t i = obj + 1, m, found = CM_JNONE;

		for (m = t[obj].count; m; m--) {
			if (str_tok_eq(d, i, kd, k))
				found = i + 1;
			i = t[i + 1].next;
		}
		return found;
	}
}

/* Whether every member name of object lo (in ld) is also a name in object so
 * (in sd); costs one scan of so per member of lo. */
static int names_within(const struct cm_jdoc *ld, uint32_t lo, const struct cm_jdoc *sd,
                        uint32_t so)
{
	uint32_t i = lo + 1, m;

	for (m = ld->tok[lo].count; m; m--) {
		if (get_by_tok(sd, so, ld, i) == CM_JNONE)
			return 0;
		i = ld->tok[i + 1].next;
	}
	return 1;
}

/* Whether number tokens compare equal by value (identical texts need no
 * conversion). */
static int num_tok_eq(const struct cm_jdoc *a, uint32_t ta, const struct cm_jdoc *b, uint32_t tb)
{
	const struct cm_jtok *x = &a->tok[ta], *y = &b->tok[tb];

	if (x->len == y->len && memcmp(a->src + x->off, b->src + y->off, x->len) == 0)
		return 1;
	return cm_json_num(a, ta) == cm_json_num(b, tb);
}

/* One container being compared. Arrays step both sides in order. Objects
 * step the members of the side with fewer members (s, in document sd) and
 * look each name up in the other (l), so that comparing a small object with
 * a huge one costs their product, not the square of the huge one. */
struct eqframe {
	uint32_t ai, bi;   /* arrays: the next element of a and of b */
	uint32_t so, lo;   /* objects: the smaller and the larger object */
	uint32_t left;     /* elements or members still to visit */
	uint8_t obj, swap; /* swap: the smaller object is b's */
};

/* Compares without recursion, with a stack of containers that starts on the C
 * stack and moves to the heap only for unusually deep documents; objects
 * compare as maps with last-wins duplicate names, as cm_json_get sees them:
 * the same set of names, and equal values under each. */
int cm_json_equal(const struct cm_jdoc *a, uint32_t ia, const struct cm_jdoc *b, uint32_t ib)
{
	struct eqframe local[32], *st = local, *f;
	size_t sp = 0, cap = sizeof(local) / sizeof(local[0]);
	uint32_t x = ia, y = ib;
	int rc = 0;

	if (ia >= a->ntok || ib >= b->ntok)
		return 0;
	for (;;) {
		const struct cm_jtok *tx = &a->tok[x], *ty = &b->tok[y];
		struct eqframe nf;

		if (tx->type != ty->type)
			goto out;
		switch (tx->type) {
		case CM_JNUM:
			if (!num_tok_eq(a, x, b, y))
				goto out;
			break;
		case CM_JSTR:
			if (!str_tok_eq(a, x, b, y))
				goto out;
			break;
		case CM_JARR:
		case CM_JOBJ:
			memset(&nf, 0, sizeof(nf));
			if (tx->type == CM_JARR) {
				if (tx->count != ty->count)
					goto out;
				nf.ai = x + 1;
				nf.bi = y + 1;
				nf.left = tx->count;
			} else {
				nf.obj = 1;
				nf.swap = ty->count < tx->count;
				nf.so = nf.swap ? y : x;
				nf.lo = nf.swap ? x : y;
				nf.ai = nf.so + 1;
				nf.left = nf.swap ? ty->count : tx->count;
				if (!nf.left && (tx->count || ty->count))
					goto out;
				if (nf.swap ? !names_within(a, x, b, y) : !names_within(b, y, a, x))
					goto out;
			}
			if (!nf.left)
				break;
			if (sp == cap) {
				struct eqframe *ns;

				ns = st == local ? malloc(cap * 2 * sizeof(*ns))
				                 : realloc(st, cap * 2 * sizeof(*ns));
				if (!ns)
					goto out;
				if (st == local)
					memcpy(ns, local, sizeof(local));
				st = ns;
				cap *= 2;
			}
			st[sp++] = nf;
			break;
		default:
			break;
		}
		/* Pick the next pair of values to compare. */
		for (;;) {
			const struct cm_jdoc *sd, *ld;
			uint32_t k, v, w;

			if (sp == 0) {
				rc = 1;
				goto out;
			}
			f = &st[sp - 1];
			if (f->left == 0) {
				sp--;
				continue;
			}
			f->left--;
			if (!f->obj) {
				x = f->ai;
				y = f->bi;
				f->ai = a->tok[x].next;
				f->bi = b->tok[y].next;
				break;
			}
			sd = f->swap ? b : a;
			ld = f->swap ? a : b;
			k = f->ai;
			v = k + 1;
			f->ai = sd->tok[v].next;
			if (get_by_tok(sd, f->so, sd, k) != v)
				continue; /* a later duplicate name wins */
			w = get_by_tok(ld, f->lo, sd, k);
			if (w == CM_JNONE)
				goto out;
			x = f->swap ? w : v;
			y = f->swap ? v : w;
			break;
		}
	}
out:
	if (st != local)
		free(st);
	return rc;
}

/* Copies src[from..to) without whitespace; only structural text is passed in,
 * so every whitespace byte is insignificant. */
static char *copy_compact(char *o, const char *from, const char *to)
{
	for (; from < to; from++) {
		unsigned char c = (unsigned char)*from;

		*o = (char)c;
		o += !is_ws(c);
	}
	return o;
}

/* Writes value t compactly in one pass over its source text: string bodies are
 * copied whole (they may contain spaces), everything between them loses its
 * whitespace. */
int cm_json_write(const struct cm_jdoc *d, uint32_t t, struct cm_buf *out)
{
	const struct cm_jtok *k;
	const char *pos, *end;
	char *o;
	uint32_t i;

	if (t >= d->ntok)
		return -1;
	k = &d->tok[t];
	if (k->type == CM_JSTR) {
		if (cm_buf_grow(out, (size_t)k->len + 2) < 0)
			return -1;
		o = out->data + out->len;
		*o++ = '"';
		memcpy(o, d->src + k->off, k->len);
		o += k->len;
		*o++ = '"';
	} else if (k->type != CM_JARR && k->type != CM_JOBJ) {
		if (cm_buf_grow(out, k->len) < 0)
			return -1;
		o = out->data + out->len;
		memcpy(o, d->src + k->off, k->len);
		o += k->len;
	} else {
		if (cm_buf_grow(out, k->len) < 0)
			return -1;
		o = out->data + out->len;
		pos = d->src + k->off;
		end = pos + k->len;
		for (i = t + 1; i < k->next; i++) {
			const struct cm_jtok *s = &d->tok[i];

			if (s->type != CM_JSTR)
				continue;
			o = copy_compact(o, pos, d->src + s->off);
			memcpy(o, d->src + s->off, s->len);
			o += s->len;
			pos = d->src + s->off + s->len;
		}
		o = copy_compact(o, pos, end);
	}
	out->len = (size_t)(o - out->data);
	out->data[out->len] = 0;
	return 0;
}
