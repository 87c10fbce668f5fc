/* json.h - a fast, validating JSON parser that builds a flat token tape.
 *
 * One parse turns a text into an array of tokens in document order; a value
 * is the index of its first token. An object's members are a key token
 * (CM_JSTR) followed by the value's tokens. Tokens point into the source text,
 * which the caller keeps alive and unchanged while the document is used; the
 * document owns only its token array. Strings are validated (UTF-8, escapes,
 * no control characters) but not decoded: use cm_json_str to get the bytes.
 *
 * While it validates, the parser also notes what some consumers cannot hold
 * (PostgreSQL's text and jsonb, see event.c): a string with an escape that
 * decodes to U+0000 or an unpaired surrogate escape, and a number too long or
 * with too large an exponent to be sure of without a closer look. Each such
 * token gets a CM_JF_* bit in its flags and the document the union of them,
 * so that checking a whole document costs nothing when none is set.
 */
#ifndef CM_JSON_H
#define CM_JSON_H

#include <stddef.h>
#include <stdint.h>

struct cm_err;
struct cm_buf;

enum cm_jtype {
	CM_JNULL = 0,
	CM_JFALSE,
	CM_JTRUE,
	CM_JNUM,
	CM_JSTR,
	CM_JARR,
	CM_JOBJ,
};

#define CM_JNONE UINT32_MAX /* "no such value" */

/* Token and document flags. */
#define CM_JF_NUL       0x1 /* string: an escape decodes to U+0000 */
#define CM_JF_SURROGATE 0x2 /* string: a \u escape is an unpaired surrogate */
#define CM_JF_BIGNUM    0x4 /* number: over 4096 bytes or an exponent over 4 digits */

/* The longest number text, and the longest exponent (digits, leading zeros
 * included), that never get CM_JF_BIGNUM. */
#define CM_JNUM_PLAIN_LEN 4096
#define CM_JNUM_PLAIN_EXP 4

struct cm_jtok {
	uint8_t type;   /* enum cm_jtype */
	uint8_t esc;    /* CM_JSTR: the raw text holds a backslash escape */
	uint16_t flags; /* CM_JF_* */
	uint32_t off;   /* byte offset of the value in the source; for strings,
	                   of the first byte after the opening quote */
	uint32_t len;   /* strings: raw bytes between the quotes; numbers and
	                   literals: their text; containers: bytes from the
	                   opening to the closing bracket, inclusive */
	uint32_t next;  /* index of the token after this value and all its
	                   children (so next - index = 1 for scalars) */
	uint32_t count; /* containers: number of elements or members */
};

struct cm_jdoc {
	const char *src;
	size_t len;
	struct cm_jtok *tok;
	uint32_t ntok, cap;
	unsigned max_depth;  /* nesting limit; deeper input is an error */
	uint32_t max_tokens; /* 0: no limit */
	uint32_t flags;      /* after a parse: the union of the tokens' CM_JF_* */
};

/* Prepares an empty document with the given nesting limit (0: 64). */
void cm_jdoc_init(struct cm_jdoc *d, unsigned max_depth);
void cm_jdoc_release(struct cm_jdoc *d);
/* Documents kept per thread for a server that parses on every request: the
 * calling thread's document of slot (< CM_JDOC_THREAD_SLOTS; one slot per
 * use that may be live at the same time), with its nesting limit set to
 * max_depth (0: 64) on each call; made on first use, freed when the thread
 * ends. NULL only when memory is out. */
#define CM_JDOC_THREAD_SLOTS 4
struct cm_jdoc *cm_jdoc_thread(unsigned slot, unsigned max_depth);
/* Parses src[0..len): exactly one JSON value, surrounded by optional
 * whitespace. On failure returns -1 with err like
 * "byte 17: expected ',' or '}' after object member". The root is token 0. */
int cm_json_parse(struct cm_jdoc *d, const char *src, size_t len, struct cm_err *err);

/* Makes dst the document of text, a copy of the text src was parsed from
 * (so the same bytes), without parsing it again. Returns 0, or -1 when
 * memory is out. */
int cm_jdoc_copy(struct cm_jdoc *dst, const struct cm_jdoc *src, const char *text);

/* The value of key in object obj (the last one if the key repeats), or
 * CM_JNONE; key is compared with the decoded member name. */
uint32_t cm_json_get(const struct cm_jdoc *d, uint32_t obj, const char *key, size_t keylen);
/* Element i of array arr, or CM_JNONE. */
uint32_t cm_json_at(const struct cm_jdoc *d, uint32_t arr, uint32_t i);

/* A dot path ("properties.cart.total"), split once so that lookups are fast.
 * A segment of decimal digits also indexes arrays. */
struct cm_jpath {
	uint32_t nseg;
	struct cm_jseg {
		const char *name;
		uint32_t len;
		int64_t index; /* -1 when the segment is not a valid array index */
	} * seg;
	char *text; /* owned copy of the path */
};
/* Splits path; -1 for an empty path or an empty segment ("a..b"). */
int cm_jpath_init(struct cm_jpath *p, const char *path, size_t len, struct cm_err *err);
void cm_jpath_release(struct cm_jpath *p);
/* The value at path p below root, or CM_JNONE. */
uint32_t cm_json_lookup(const struct cm_jdoc *d, uint32_t root, const struct cm_jpath *p);

/* The decoded bytes of string token t. When the string has no escapes this
 * points into the source and scratch is untouched; otherwise the string is
 * decoded into scratch (reset first). Returns NULL only when scratch cannot
 * grow. */
const char *cm_json_str(const struct cm_jdoc *d, uint32_t t, struct cm_buf *scratch, size_t *len);
/* True when string token t decodes to exactly s[0..n). */
int cm_json_str_eq(const struct cm_jdoc *d, uint32_t t, const char *s, size_t n);
/* The number token t as a double (overflow gives +-HUGE_VAL). */
double cm_json_num(const struct cm_jdoc *d, uint32_t t);
/* JSON equality: numbers by value (100 == 100.0, -0 == 0), strings by their
 * decoded bytes, arrays in order, objects regardless of member order. */
int cm_json_equal(const struct cm_jdoc *a, uint32_t ia, const struct cm_jdoc *b, uint32_t ib);
/* Appends value t in compact form (no insignificant whitespace; string and
 * number texts copied as they are). */
int cm_json_write(const struct cm_jdoc *d, uint32_t t, struct cm_buf *out);

#endif
