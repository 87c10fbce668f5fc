/* event.c - the one definition of a valid event (CONTRACT 1.1) and of a
 * match line (1.3): normalising input records into canonical events,
 * validating lines that claim to be events or match lines, and building
 * events from CSV parts. Every rule is written here once, and each rule
 * accepts exactly what cm-store can store in PostgreSQL. */
#include "event.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "duration.h"
#include "err.h"
#include "json.h"
#include "timefmt.h"

/* The top-level keys any accepted shape gives a meaning to. */
enum key {
	K_EVENT_ID,
	K_EVENT_TYPE,
	K_USER_ID,
	K_OCCURRED_AT,
	K_PROPERTIES,
	K_TYPE,
	K_EVENT,
	K_MESSAGE_ID,
	K_SEG_USER_ID,
	K_ANONYMOUS_ID,
	K_TIMESTAMP,
	K_SPECVERSION,
	K_ID,
	K_SUBJECT,
	K_TIME,
	K_DATA,
	K_MATCHES,
	K_CAMPAIGN_ID,
	K_OUTCOME,
	K_VARIANT,
	K_LIMIT,
	K_TRAITS,
	K_NAME,
	K_CATEGORY,
	K_GROUP_ID,
	K_PREVIOUS_ID,
	K_NKEYS,
	K_META = K_NKEYS, /* "_"-prefixed */
	K_OTHER,
};

static const char *const key_name[K_NKEYS] = {
    "event_id",  "event_type", "user_id",     "occurred_at", "properties",  "type",    "event",
    "messageId", "userId",     "anonymousId", "timestamp",   "specversion", "id",      "subject",
    "time",      "data",       "matches",     "campaign_id", "outcome",     "variant", "limit",
    "traits",    "name",       "category",    "groupId",     "previousId",
};

/* The value token of each known key (valid where its bit of seen is set),
 * and the first key no shape knows. */
struct scan {
	uint32_t v[K_NKEYS];
	uint32_t seen;    /* bit k set when key k is there */
	uint32_t unknown; /* key token of the first unknown key, or CM_JNONE */
	int has_meta;     /* some key starts with '_' */
};

/* The known keys a canonical event and a match line may have. */
#define EVENT_KEYS                                                                                 \
	(1u << K_EVENT_ID | 1u << K_EVENT_TYPE | 1u << K_USER_ID | 1u << K_OCCURRED_AT |           \
	 1u << K_PROPERTIES | 1u << K_MATCHES)
#define MATCH_KEYS                                                                                 \
	(1u << K_EVENT_ID | 1u << K_EVENT_TYPE | 1u << K_USER_ID | 1u << K_OCCURRED_AT |           \
	 1u << K_CAMPAIGN_ID | 1u << K_OUTCOME | 1u << K_VARIANT | 1u << K_LIMIT)

/* The value token of known key k, or CM_JNONE. */
static inline uint32_t key_val(const struct scan *sc, int k)
{
	return sc->seen >> k & 1 ? sc->v[k] : CM_JNONE;
}

/* The lowest key set in bits (not 0). */
static inline int first_key(uint32_t bits)
{
	return __builtin_ctz(bits);
}

/* Where each canonical part comes from, and the input's name for it (for
 * messages that point at what the user wrote). */
struct src {
	uint32_t id, type, user, time, props;
	const char *n_id, *n_type, *n_user, *n_time, *n_props;
	int call;    /* a Segment call (CM_SEG_*), or 0 */
	int implied; /* the call is the caller's: the record has no type */
	uint32_t traits, name, category, group; /* Segment's other parts, for some calls */
	uint32_t previous;
};

/* Maps a decoded key to its enum with a switch on the length, because this
 * runs for every member of every record. */
static inline __attribute__((always_inline)) int classify(const char *s, size_t n)
{
	switch (n) {
	case 2:
		if (!memcmp(s, "id", 2))
			return K_ID;
		break;
	case 4:
		if (!memcmp(s, "type", 4))
			return K_TYPE;
		if (!memcmp(s, "time", 4))
			return K_TIME;
		if (!memcmp(s, "data", 4))
			return K_DATA;
		if (!memcmp(s, "name", 4))
			return K_NAME;
		break;
	case 5:
		if (!memcmp(s, "event", 5))
			return K_EVENT;
		if (!memcmp(s, "limit", 5))
			return K_LIMIT;
		break;
	case 6:
		if (!memcmp(s, "userId", 6))
			return K_SEG_USER_ID;
		if (!memcmp(s, "traits", 6))
			return K_TRAITS;
		break;
	case 7:
		if (!memcmp(s, "user_id", 7))
			return K_USER_ID;
		if (!memcmp(s, "subject", 7))
			return K_SUBJECT;
		if (!memcmp(s, "matches", 7))
			return K_MATCHES;
		if (!memcmp(s, "outcome", 7))
			return K_OUTCOME;
		if (!memcmp(s, "variant", 7))
			return K_VARIANT;
		if (!memcmp(s, "groupId", 7))
			return K_GROUP_ID;
		break;
	case 8:
		if (!memcmp(s, "event_id", 8))
			return K_EVENT_ID;
		if (!memcmp(s, "category", 8))
			return K_CATEGORY;
		break;
	case 9:
		if (!memcmp(s, "messageId", 9))
			return K_MESSAGE_ID;
		if (!memcmp(s, "timestamp", 9))
			return K_TIMESTAMP;
		break;
	case 10:
		if (!memcmp(s, "event_type", 10))
			return K_EVENT_TYPE;
		if (!memcmp(s, "properties", 10))
			return K_PROPERTIES;
		if (!memcmp(s, "previousId", 10))
			return K_PREVIOUS_ID;
		break;
	case 11:
		if (!memcmp(s, "occurred_at", 11))
			return K_OCCURRED_AT;
		if (!memcmp(s, "anonymousId", 11))
			return K_ANONYMOUS_ID;
		if (!memcmp(s, "specversion", 11))
			return K_SPECVERSION;
		if (!memcmp(s, "campaign_id", 11))
			return K_CAMPAIGN_ID;
		break;
	}
	if (n > 0 && s[0] == '_')
		return K_META;
	return K_OTHER;
}

/* True when key token k decodes to a name starting with '_', judged on the
 * raw text ("\u005f" is the only escape that decodes to '_'). */
static int key_is_meta(const struct cm_jdoc *d, uint32_t k)
{
	const struct cm_jtok *t = &d->tok[k];
	const char *s = d->src + t->off;

	if (t->len >= 1 && s[0] == '_')
		return 1;
	return t->esc && t->len >= 6 && !memcmp(s, "\\u005", 5) && (s[5] == 'f' || s[5] == 'F');
}

/* Copies at most 40 bytes of s into b for a message (see event.h). */
const char *cm_event_snippet(const char *s, size_t n, int quote, char *b, size_t bn)
{
	size_t keep = cm_utf8_valid_prefix(s, n < 40 ? n : 40);
	int cut = keep < n;
	size_t j = 0;

	if (bn < 52)
		return "?";
	if (quote)
		b[j++] = '"';
	for (size_t i = 0; i < keep; i++)
		b[j++] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
	if (cut) {
		memcpy(b + j, "...", 3);
		j += 3;
	}
	if (quote)
		b[j++] = '"';
	b[j] = 0;
	return b;
}

/* Describes value t for a "got ..." message: short scalars as written,
 * containers by kind. */
static const char *got(const struct cm_jdoc *d, uint32_t t, char *b, size_t bn)
{
	const struct cm_jtok *k = &d->tok[t];

	switch (k->type) {
	case CM_JOBJ:
		return "an object";
	case CM_JARR:
		return "an array";
	case CM_JSTR:
		return cm_event_snippet(d->src + k->off, k->len, 1, b, bn);
	default:
		return cm_event_snippet(d->src + k->off, k->len, 0, b, bn);
	}
}

/* True when value t is there and not null: null counts as absent. */
static int present(const struct cm_jdoc *d, uint32_t t)
{
	return t != CM_JNONE && d->tok[t].type != CM_JNULL;
}

/* Collects the value of every known key in one pass over the members, so
 * that a record costs one walk whatever its shape. */
static int scan_members(const struct cm_jdoc *d, uint32_t root, struct scan *sc,
                        struct cm_buf *scratch, struct cm_err *err)
{
	const struct cm_jtok *tok = d->tok;
	uint32_t k = root + 1, count = tok[root].count;

	sc->seen = 0;
	sc->unknown = CM_JNONE;
	sc->has_meta = 0;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t v = k + 1;
		const char *ks = d->src + tok[k].off;
		size_t kn = tok[k].len;
		int c;

		if (tok[k].esc) {
			ks = cm_json_str(d, k, scratch, &kn);
			if (!ks)
				return cm_errf(err, "out of memory");
		}
		c = classify(ks, kn);
		if (c < K_NKEYS) {
			if (sc->seen >> c & 1)
				return cm_errf(err, "field '%s': duplicate key", key_name[c]);
			sc->v[c] = v;
			sc->seen |= 1u << c;
		} else if (c == K_OTHER && sc->unknown == CM_JNONE) {
			sc->unknown = k;
		} else if (c == K_META) {
			sc->has_meta = 1;
		}
		k = tok[v].next;
	}
	return 0;
}

/* True when container t is written without insignificant whitespace, found
 * by adding up the compact length of its tokens (no byte is read). */
static int is_compact(const struct cm_jdoc *d, uint32_t t)
{
	const struct cm_jtok *tk = d->tok;
	uint32_t end = tk[t].next;
	size_t want = 0;

	for (uint32_t i = t; i < end; i++) {
		switch (tk[i].type) {
		case CM_JSTR:
			want += (size_t)tk[i].len + 2;
			break;
		case CM_JARR:
			want += 2 + (tk[i].count ? tk[i].count - 1 : 0);
			break;
		case CM_JOBJ:
			want += 2 + (tk[i].count ? 2 * (size_t)tk[i].count - 1 : 0);
			break;
		default:
			want += tk[i].len;
		}
	}
	return want == tk[t].len;
}

/* Appends value t compactly, copying the source bytes when they already are
 * compact (the common case) instead of re-serialising. */
static int put_value(struct cm_buf *o, const struct cm_jdoc *d, uint32_t t)
{
	const struct cm_jtok *k = &d->tok[t];

	switch (k->type) {
	case CM_JSTR:
		return cm_buf_put(o, d->src + k->off - 1, (size_t)k->len + 2);
	case CM_JOBJ:
	case CM_JARR:
		if (!is_compact(d, t))
			return cm_json_write(d, t, o);
		return cm_buf_put(o, d->src + k->off, k->len);
	default:
		return cm_buf_put(o, d->src + k->off, k->len);
	}
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is
 * not one (overlong forms, surrogates and code points past U+10FFFF
 * included). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
			return 0;
		if (c == 0xE0 && s[1] < 0xA0)
			return 0;
		if (c == 0xED && s[1] > 0x9F)
			return 0;
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
		    (s[3] & 0xC0) != 0x80)
			return 0;
		if (c == 0xF0 && s[1] < 0x90)
			return 0;
		if (c == 0xF4 && s[1] > 0x8F)
			return 0;
		return 4;
	}
	return 0;
}

/* Finds where valid UTF-8 stops, so callers can refuse or replace the rest. */
size_t cm_utf8_valid_prefix(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		size_t l;

		if (u[i] < 0x80) {
			i++;
			continue;
		}
		l = utf8_seq(u + i, n - i);
		if (!l)
			break;
		i += l;
	}
	return i;
}

/* Bytes that a JSON string cannot hold as they are (1) or that start a
 * multi-byte UTF-8 sequence to be checked (2). */
static const unsigned char str_class[256] = {
    [0 ... 0x1F] = 1,
    ['"'] = 1,
    ['\\'] = 1,
    [0x80 ... 0xFF] = 2,
};

/* True when none of the 8 bytes in w needs escaping or a UTF-8 check (no
 * byte below 0x20, none from 0x80, no quote, no backslash), tested a word at
 * a time since most text is plain ASCII. */
static inline int word_plain(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
	uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');

	return !((w | ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b)) & high);
}

/* Writes bytes from outside (CSV cells) as a JSON string, refusing what is not UTF-8. */
int cm_event_put_str(struct cm_buf *out, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	for (uint64_t w; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, 8);
		if (!word_plain(w))
			break;
	}
	while (i < n && !str_class[u[i]])
		i++;
	if (cm_buf_grow(out, n + 2))
		return -1;
	if (i == n) {
		/* nothing to escape or check: the common case */
		char *p = out->data + out->len;

		p[0] = '"';
		memcpy(p + 1, s, n);
		p[n + 1] = '"';
		p[n + 2] = 0;
		out->len += n + 2;
		return 0;
	}
	i = 0;
	if (cm_buf_addc(out, '"'))
		return -1;
	while (i < n) {
		size_t j = i;
		char esc[8];

		while (j < n && !str_class[u[j]])
			j++;
		if (j > i && cm_buf_add(out, s + i, j - i))
			return -1;
		if (j == n)
			break;
		if (str_class[u[j]] == 2) {
			size_t l = utf8_seq(u + j, n - j);

			if (!l || cm_buf_add(out, s + j, l))
				return -1;
			i = j + l;
			continue;
		}
		switch (u[j]) {
		case '"':
			memcpy(esc, "\\\"", 2);
			break;
		case '\\':
			memcpy(esc, "\\\\", 2);
			break;
		case '\n':
			memcpy(esc, "\\n", 2);
			break;
		case '\r':
			memcpy(esc, "\\r", 2);
			break;
		case '\t':
			memcpy(esc, "\\t", 2);
			break;
		default:
			esc[0] = '\\';
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = "0123456789abcdef"[u[j] >> 4];
			esc[5] = "0123456789abcdef"[u[j] & 15];
			if (cm_buf_add(out, esc, 6))
				return -1;
			i = j + 1;
			continue;
		}
		if (cm_buf_add(out, esc, 2))
			return -1;
		i = j + 1;
	}
	return cm_buf_addc(out, '"');
}

/* Checks the event_type charset with a table, since it runs for every record. */
int cm_event_type_ok(const char *s, size_t n)
{
	static const unsigned char ok[256] = {
	    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1, ['_'] = 1,
	    ['.'] = 1,         [':'] = 1,         ['-'] = 1,
	};

	if (n < 1 || n > CM_EVENT_TYPE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!ok[(unsigned char)s[i]])
			return 0;
	return 1;
}

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;

/* Lets libsodium pick its fastest BLAKE2b code once per process; hashing
 * works (more slowly) even if that fails, so the result is not needed. */
static void sodium_start(void)
{
	if (sodium_init() < 0)
		return;
}

/* Writes the derived id of prefix (hashed first) and raw into out. */
static void derive_id(const char *prefix, const void *raw, size_t len,
                      char out[CM_EVENT_DERIVED_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	crypto_generichash_state st;
	unsigned char h[16];

	pthread_once(&sodium_once, sodium_start);
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const unsigned char *)prefix, strlen(prefix));
	crypto_generichash_update(&st, raw, len);
	crypto_generichash_final(&st, h, sizeof(h));
	memcpy(out, "ev-", 3);
	for (int i = 0; i < 16; i++) {
		out[3 + 2 * i] = hex[h[i] >> 4];
		out[4 + 2 * i] = hex[h[i] & 15];
	}
	out[CM_EVENT_DERIVED_LEN] = 0;
}

/* Hashes the record as read, so that the same record always gets the same id. */
void cm_event_derive_id(const void *raw, size_t len, char out[CM_EVENT_DERIVED_LEN + 1])
{
	derive_id("", raw, len, out);
}

/* Appends the derived id of raw as a JSON string; prefix is hashed before
 * raw, for a record whose meaning also depends on where it was sent (a
 * Segment call's body without its type), "" otherwise. */
static int put_derived_id(struct cm_buf *o, const char *prefix, const char *raw, size_t rawlen)
{
	char id[CM_EVENT_DERIVED_LEN + 3];

	id[0] = '"';
	derive_id(prefix, raw, rawlen, id + 1);
	id[CM_EVENT_DERIVED_LEN + 1] = '"';
	return cm_buf_put(o, id, CM_EVENT_DERIVED_LEN + 2);
}

/* ---- what PostgreSQL can store ---- */

/* PostgreSQL 15's numeric, which jsonb stores numbers as (numeric_in and
 * make_result in src/backend/utils/adt/numeric.c): the exponent must lie
 * strictly between -(INT_MAX / 2) and INT_MAX / 2, the first significant
 * digit at most 131071 places before the decimal point (a weight of at most
 * 32767 base-10000 digits), and the scale (digits after the point as written,
 * less the exponent) at most 16383, for zero too. */
enum {
	PG_EXP_LIMIT = 1073741823,
	PG_INT_DIGITS = 131072,
	PG_FRAC_DIGITS = 16383,
};

/* True when the (valid) JSON number s[0..n) is one jsonb can hold; only
 * numbers the parser flagged CM_JF_BIGNUM get here, so this may be slow. */
static int num_storable(const char *s, size_t n)
{
	const char *p = s, *e = s + n;
	int64_t nint = 0, nfrac = 0, first = INT64_MIN, exp10 = 0, scale;

	if (p < e && *p == '-')
		p++;
	for (; p < e && *p >= '0' && *p <= '9'; p++, nint++)
		if (first == INT64_MIN && *p != '0')
			first = nint;
	if (first != INT64_MIN)
		first = nint - 1 - first; /* the power of ten of the first significant digit */
	if (p < e && *p == '.')
		for (p++; p < e && *p >= '0' && *p <= '9'; p++, nfrac++)
			if (first == INT64_MIN && *p != '0')
				first = -(nfrac + 1);
	if (p < e) { /* the exponent */
		int neg = 0, digits = 0;

		p++;
		if (*p == '+' || *p == '-')
			neg = *p++ == '-';
		while (p < e && *p == '0')
			p++;
		for (; p < e; p++) {
			if (++digits > 10)
				return 0;
			exp10 = exp10 * 10 + (*p - '0');
		}
		if (exp10 >= PG_EXP_LIMIT)
			return 0;
		if (neg)
			exp10 = -exp10;
	}
	scale = nfrac - exp10;
	if (scale > PG_FRAC_DIGITS)
		return 0;
	return first == INT64_MIN || first + exp10 < PG_INT_DIGITS;
}

/* Appends s[0..n) to the path being built in b (bn bytes), marking a cut
 * with "..." once it is full. */
static void path_add(char *b, size_t bn, size_t *j, const char *s, size_t n)
{
	if (*j + n + 4 > bn) {
		if (*j + 4 <= bn && (*j < 3 || memcmp(b + *j - 3, "...", 3)))
			memcpy(b + *j, "...", 3), *j += 3;
		b[*j] = 0;
		return;
	}
	memcpy(b + *j, s, n);
	*j += n;
	b[*j] = 0;
}

/* Writes into b the path from root (called name, "" for an event's top
 * level) to token t: member names as written (escapes shown, long ones cut),
 * array elements as [i]; *is_key tells whether t is itself a member name. */
static void path_of(const struct cm_jdoc *d, uint32_t root, const char *name, uint32_t t, char *b,
                    size_t bn, int *is_key)
{
	const struct cm_jtok *tok = d->tok;
	uint32_t c = root;
	size_t j = 0;

	*is_key = 0;
	b[0] = 0;
	path_add(b, bn, &j, name, strlen(name));
	while (c != t) {
		uint32_t k = c + 1, i, count = tok[c].count;
		char seg[64];

		if (tok[c].type == CM_JOBJ) {
			for (i = 0; i < count; i++) {
				uint32_t v = k + 1;

				if (k == t || (v <= t && t < tok[v].next)) {
					cm_event_snippet(d->src + tok[k].off, tok[k].len, 0, seg,
					                 sizeof(seg));
					if (j)
						path_add(b, bn, &j, ".", 1);
					path_add(b, bn, &j, seg, strlen(seg));
					*is_key = k == t;
					c = k == t ? t : v;
					break;
				}
				k = tok[v].next;
			}
		} else if (tok[c].type == CM_JARR) {
			for (i = 0; i < count; i++) {
				if (k <= t && t < tok[k].next) {
					int w = snprintf(seg, sizeof(seg), "[%u]", i);

					path_add(b, bn, &j, seg, (size_t)w);
					c = k;
					break;
				}
				k = tok[k].next;
			}
		} else {
			return; /* t is not below root: cannot happen */
		}
		if (i == count)
			return;
	}
}

/* Says where in tokens [from, to) the first value is that PostgreSQL cannot
 * store, and why, naming it by its path from root; 0 when the flags that
 * brought us here were only numbers to look at closer. */
static __attribute__((cold, noinline)) int unstorable(const struct cm_jdoc *d, uint32_t root,
                                                      const char *name, uint32_t from, uint32_t to,
                                                      struct cm_err *err)
{
	for (uint32_t i = from; i < to; i++) {
		const struct cm_jtok *k = &d->tok[i];
		char path[200], b[64];
		int is_key;

		if (!k->flags)
			continue;
		if (k->type == CM_JNUM && num_storable(d->src + k->off, k->len))
			continue;
		path_of(d, root, name, i, path, sizeof(path), &is_key);
		if (k->type == CM_JNUM)
			return cm_errf(
			    err,
			    "field '%s': number out of the range PostgreSQL can store (at "
			    "most %d digits before the decimal point and %d after it, the "
			    "exponent applied), got %s",
			    path, PG_INT_DIGITS, PG_FRAC_DIGITS, got(d, i, b, sizeof(b)));
		if (k->flags & CM_JF_NUL)
			return is_key
			           ? cm_errf(err,
			                     "field '%s': a key must not contain NUL (\\u0000)",
			                     path)
			           : cm_errf(err,
			                     "field '%s': must not contain NUL (\\u0000), got %s",
			                     path, got(d, i, b, sizeof(b)));
		return is_key
		           ? cm_errf(err,
		                     "field '%s': a key must not contain an unpaired surrogate "
		                     "escape (\\uD800-\\uDFFF)",
		                     path)
		           : cm_errf(err,
		                     "field '%s': unpaired surrogate escape (\\uD800-\\uDFFF), got "
		                     "%s",
		                     path, got(d, i, b, sizeof(b)));
	}
	return 0;
}

/* Checks that PostgreSQL can store everything in tokens [from, to), paths
 * named from root; free when the parser noted nothing in the document. */
static inline int storable(const struct cm_jdoc *d, uint32_t root, const char *name, uint32_t from,
                           uint32_t to, struct cm_err *err)
{
	if (__builtin_expect(!d->flags, 1))
		return 0;
	return unstorable(d, root, name, from, to, err);
}

/* ---- the rules of each field ---- */

/* Checks the decoded bytes of an identifier (event_id, user_id): 1 to max
 * bytes, no NUL (PostgreSQL text cannot hold one). The value is described
 * from token t of d, or from s when d is NULL, only when it is wrong; a
 * token can hold a NUL only when the parser flagged it, so only bytes from
 * elsewhere (d NULL) are searched. */
static int check_ident(const char *name, const char *s, size_t n, size_t max,
                       const struct cm_jdoc *d, uint32_t t, struct cm_err *err)
{
	char b[64];

	if (n >= 1 && n <= max && (d ? !(d->tok[t].flags & CM_JF_NUL) : !memchr(s, 0, n)))
		return 0;
	if (n < 1 || n > max) {
		if (n > max)
			return cm_errf(
			    err, "field '%s': expected a string of 1-%zu bytes, got %zu bytes",
			    name, max, n);
		return cm_errf(err, "field '%s': expected a string of 1-%zu bytes, got \"\"", name,
		               max);
	}
	return cm_errf(err, "field '%s': must not contain NUL (\\u0000), got %s", name,
	               d ? got(d, t, b, sizeof(b)) : cm_event_snippet(s, n, 1, b, sizeof(b)));
}

/* The message for an event_type that breaks the charset or length rule. */
static int type_error(const char *name, size_t n, const char *gotv, struct cm_err *err)
{
	char sz[32] = "";

	if (n > CM_EVENT_TYPE_MAX)
		snprintf(sz, sizeof(sz), " (%zu bytes)", n);
	return cm_errf(err, "field '%s': expected 1-%d bytes of [A-Za-z0-9_.:-], got %s%s", name,
	               CM_EVENT_TYPE_MAX, gotv, sz);
}

/* The message for a time cm_time_parse refused with rc. */
static int time_error(const char *name, int rc, const char *gotv, struct cm_err *err)
{
	if (rc == CM_TIME_RANGE)
		return cm_errf(err,
		               "field '%s': %s is outside the years 0001-9999 once in UTC (from "
		               "0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z)",
		               name, gotv);
	return cm_errf(err, "field '%s': expected an RFC 3339 time, got %s", name, gotv);
}

/* Decodes string token t, using scratch only when it holds escapes. */
static inline const char *str_of(const struct cm_jdoc *d, uint32_t t, struct cm_buf *scratch,
                                 size_t *n, struct cm_err *err)
{
	const char *s;

	if (!d->tok[t].esc) {
		*n = d->tok[t].len;
		return d->src + d->tok[t].off;
	}
	s = cm_json_str(d, t, scratch, n);

	if (!s)
		cm_errf(err, "out of memory");
	return s;
}

/* Checks an identifier member (event_id, user_id, variant) at token t: a
 * string of 1 to max bytes once decoded that PostgreSQL can store. */
static int check_ident_tok(const struct cm_jdoc *d, uint32_t t, const char *name, size_t max,
                           struct cm_buf *scratch, struct cm_err *err)
{
	char b[64];
	const char *s;
	size_t n;

	if (d->tok[t].type != CM_JSTR)
		return cm_errf(err, "field '%s': expected a string, got %s", name,
		               got(d, t, b, sizeof(b)));
	if (!(s = str_of(d, t, scratch, &n, err)))
		return -1;
	if (check_ident(name, s, n, max, d, t, err))
		return -1;
	return storable(d, t, name, t, t + 1, err);
}

/* Checks event_type at token t: 1-64 bytes of [A-Za-z0-9_.:-] once decoded
 * (which leaves no room for a NUL or a surrogate); *s and *n get the decoded
 * text, in scratch when it was escaped. */
static int check_type_tok(const struct cm_jdoc *d, uint32_t t, const char *name,
                          struct cm_buf *scratch, const char **s, size_t *n, struct cm_err *err)
{
	char b[64];

	if (d->tok[t].type != CM_JSTR)
		return cm_errf(err, "field '%s': expected a string, got %s", name,
		               got(d, t, b, sizeof(b)));
	if (!(*s = str_of(d, t, scratch, n, err)))
		return -1;
	if (!cm_event_type_ok(*s, *n))
		return type_error(name, *n, got(d, t, b, sizeof(b)), err);
	return 0;
}

/* Checks a time member at token t: an RFC 3339 string whose UTC time the
 * canonical form can write; *ms gets it, *s and *n the decoded text. */
static int check_time_tok(const struct cm_jdoc *d, uint32_t t, const char *name,
                          struct cm_buf *scratch, const char **s, size_t *n, int64_t *ms,
                          struct cm_err *err)
{
	char b[64];
	int rc;

	if (d->tok[t].type != CM_JSTR)
		return cm_errf(err, "field '%s': expected an RFC 3339 time, got %s", name,
		               got(d, t, b, sizeof(b)));
	if (!(*s = str_of(d, t, scratch, n, err)))
		return -1;
	rc = cm_time_parse(*s, *n, ms);
	if (rc)
		return time_error(name, rc, got(d, t, b, sizeof(b)), err);
	return 0;
}

/* Checks properties (CloudEvents: data) at token t: an object, every
 * string, key and number in it storable. */
static int check_props_tok(const struct cm_jdoc *d, uint32_t t, const char *name,
                           struct cm_err *err)
{
	char b[64];

	if (d->tok[t].type != CM_JOBJ)
		return cm_errf(err, "field '%s': expected an object, got %s", name,
		               got(d, t, b, sizeof(b)));
	return storable(d, t, name, t + 1, d->tok[t].next, err);
}

/* Checks that token t is a JSON integer from 1 to max written in plain
 * digits (no sign, fraction or exponent: what a program writes for a count
 * or an id); *v gets its value. */
static int plain_int(const struct cm_jdoc *d, uint32_t t, int64_t max, int64_t *v)
{
	const char *s = d->src + d->tok[t].off;
	size_t n = d->tok[t].len, i;
	int64_t x = 0;

	if (d->tok[t].type != CM_JNUM || n > 19 || s[0] < '1' || s[0] > '9')
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (x > (max - (s[i] - '0')) / 10)
			return -1;
		x = x * 10 + (s[i] - '0');
	}
	*v = x;
	return 0;
}

/* Checks a campaign id at token t: a JSON integer from 1 to 2^63-1 written
 * in plain digits (what cm-match writes and PostgreSQL's bigint holds); *id
 * gets its value. */
static int check_campaign_tok(const struct cm_jdoc *d, uint32_t t, const char *name, int64_t *id,
                              struct cm_err *err)
{
	char b[64];

	if (plain_int(d, t, INT64_MAX, id) == 0)
		return 0;
	return cm_errf(err,
	               "field '%s': expected an integer campaign id from 1 to "
	               "9223372036854775807, got %s",
	               name, got(d, t, b, sizeof(b)));
}

/* Checks a match's limit at token t (CONTRACT 1.6, the campaign's limit as
 * cm-match copies it: {"per_user":N,"cooldown":"P7D"}, at least one of the
 * two, nothing else) and fills lim; name is the field for messages. */
static int check_limit_tok(const struct cm_jdoc *d, uint32_t t, const char *name,
                           struct cm_buf *scratch, struct cm_match_limit *lim, struct cm_err *err)
{
	const struct cm_jtok *tok = d->tok;
	uint32_t k = t + 1, pu = CM_JNONE, cd = CM_JNONE;
	const char *s;
	size_t n;
	char b[64];

	lim->per_user = lim->cooldown_ms = 0;
	if (tok[t].type != CM_JOBJ)
		return cm_errf(err,
		               "field '%s': expected an object such as "
		               "{\"per_user\":1,\"cooldown\":\"P7D\"}, got %s",
		               name, got(d, t, b, sizeof(b)));
	for (uint32_t m = 0; m < tok[t].count; m++, k = tok[k + 1].next) {
		uint32_t *slot = NULL;

		if (!(s = str_of(d, k, scratch, &n, err)))
			return -1;
		if (n == 8 && !memcmp(s, "per_user", 8))
			slot = &pu;
		else if (n == 8 && !memcmp(s, "cooldown", 8))
			slot = &cd;
		if (!slot)
			return cm_errf(
			    err,
			    "field '%s.%s': unknown key (a limit has per_user and "
			    "cooldown)",
			    name,
			    cm_event_snippet(d->src + tok[k].off, tok[k].len, 0, b, sizeof(b)));
		if (*slot != CM_JNONE)
			return cm_errf(err, "field '%s.%.8s': duplicate key", name, s);
		*slot = k + 1;
	}
	if (pu == CM_JNONE && cd == CM_JNONE)
		return cm_errf(err, "field '%s': expected per_user, cooldown or both, got {}",
		               name);
	if (pu != CM_JNONE && plain_int(d, pu, INT32_MAX, &lim->per_user) < 0)
		return cm_errf(err,
		               "field '%s.per_user': expected an integer from 1 to 2147483647, "
		               "got %s",
		               name, got(d, pu, b, sizeof(b)));
	if (cd == CM_JNONE)
		return 0;
	if (tok[cd].type == CM_JSTR) {
		if (!(s = str_of(d, cd, scratch, &n, err)))
			return -1;
		if (cm_duration_parse(s, n, &lim->cooldown_ms) == 0 && lim->cooldown_ms > 0)
			return 0;
	}
	return cm_errf(err,
	               "field '%s.cooldown': expected an ISO 8601 duration above zero such as "
	               "\"P7D\" or \"PT12H\", got %s",
	               name, got(d, cd, b, sizeof(b)));
}

/* Reads a validated match's limit (the value of its "limit"). */
int cm_match_limit_read(const struct cm_jdoc *d, uint32_t t, struct cm_match_limit *lim,
                        struct cm_err *err)
{
	struct cm_buf scratch = CM_BUF_INIT;
	int rc = check_limit_tok(d, t, "limit", &scratch, lim, err);

	cm_buf_release(&scratch);
	return rc;
}

/* Checks a match's outcome at token t (CONTRACT 1.6). */
static int check_outcome_tok(const struct cm_jdoc *d, uint32_t t, const char *name,
                             struct cm_err *err)
{
	char b[64];

	if (cm_json_str_eq(d, t, "matched", 7) || cm_json_str_eq(d, t, "holdout", 7) ||
	    cm_json_str_eq(d, t, "capped", 6))
		return 0;
	return cm_errf(err, "field '%s': expected \"matched\", \"holdout\" or \"capped\", got %s",
	               name, got(d, t, b, sizeof(b)));
}

/* Checks the optional outcome, variant and limit of a match (an element of
 * an event's matches, or a match line), named prefix + key in messages. */
static int check_match_extras(const struct cm_jdoc *d, uint32_t outcome, uint32_t variant,
                              uint32_t limit, const char *prefix, struct cm_buf *scratch,
                              struct cm_err *err)
{
	struct cm_match_limit lim;
	char name[48];

	if (outcome != CM_JNONE) {
		snprintf(name, sizeof(name), "%soutcome", prefix);
		if (check_outcome_tok(d, outcome, name, err))
			return -1;
	}
	if (variant != CM_JNONE) {
		snprintf(name, sizeof(name), "%svariant", prefix);
		if (check_ident_tok(d, variant, name, CM_EVENT_VARIANT_MAX, scratch, err))
			return -1;
	}
	if (limit != CM_JNONE) {
		snprintf(name, sizeof(name), "%slimit", prefix);
		if (check_limit_tok(d, limit, name, scratch, &lim, err))
			return -1;
	}
	return 0;
}

/* Checks an event's "matches": an array of {"campaign_id":N} objects, each
 * with an optional outcome, variant and limit and nothing else, as cm-match
 * writes them. */
static int check_matches(const struct cm_jdoc *d, uint32_t t, struct cm_buf *scratch,
                         struct cm_err *err)
{
	const struct cm_jtok *tok = d->tok;
	uint32_t el = t + 1;
	char b[64], prefix[32];

	if (tok[t].type != CM_JARR)
		return cm_errf(err, "field 'matches': expected an array, got %s",
		               got(d, t, b, sizeof(b)));
	for (uint32_t i = 0; i < tok[t].count; i++, el = tok[el].next) {
		uint32_t f[4] = {CM_JNONE, CM_JNONE, CM_JNONE, CM_JNONE}, k = el + 1;
		int64_t id;

		snprintf(prefix, sizeof(prefix), "matches[%u].", i);
		if (tok[el].type != CM_JOBJ)
			return cm_errf(err,
			               "field 'matches[%u]': expected an object such as "
			               "{\"campaign_id\":7}, got %s",
			               i, got(d, el, b, sizeof(b)));
		for (uint32_t m = 0; m < tok[el].count; m++, k = tok[k + 1].next) {
			const char *ks;
			size_t kn;
			int c;

			if (!(ks = str_of(d, k, scratch, &kn, err)))
				return -1;
			c = classify(ks, kn);
			if (c < K_CAMPAIGN_ID || c > K_LIMIT)
				return cm_errf(
				    err,
				    "field '%s%s': unknown key (a match has campaign_id, "
				    "outcome, variant and limit)",
				    prefix,
				    cm_event_snippet(d->src + tok[k].off, tok[k].len, 0, b,
				                     sizeof(b)));
			if (f[c - K_CAMPAIGN_ID] != CM_JNONE)
				return cm_errf(err, "field '%s%s': duplicate key", prefix,
				               key_name[c]);
			f[c - K_CAMPAIGN_ID] = k + 1;
		}
		if (f[0] == CM_JNONE)
			return cm_errf(err, "field '%scampaign_id': missing (required)", prefix);
		snprintf(b, sizeof(b), "%scampaign_id", prefix);
		if (check_campaign_tok(d, f[0], b, &id, err) ||
		    check_match_extras(d, f[1], f[2], f[3], prefix, scratch, err))
			return -1;
	}
	return 0;
}

/* ---- normalising ---- */

/* Appends the time t as canonical UTC with Z; ms gets its value. */
static int put_time(struct cm_buf *o, int64_t ms)
{
	char b[CM_TIME_MAX + 2];
	size_t n;

	b[0] = '"';
	n = cm_time_format(ms, b + 1);
	b[n + 1] = '"';
	return cm_buf_put(o, b, n + 2);
}

/* True when the valid time s[0..n) already has the canonical form
 * ("...:SSZ" or "...:SS.mmmZ" with a non-zero fraction, and no leap second,
 * which is the next minute's :00), so that it can be copied instead of
 * formatted again. */
static int time_canonical(const char *s, size_t n)
{
	if ((n != 20 && n != 24) || s[10] != 'T' || s[17] == '6')
		return 0;
	if (n == 20)
		return s[19] == 'Z';
	return s[19] == '.' && s[23] == 'Z' && memcmp(s + 20, "000", 3) != 0;
}

/* The time of ingestion: now_ms, or the clock when it is CM_EVENT_NOW. */
static int64_t now_of(int64_t now_ms)
{
	return now_ms == CM_EVENT_NOW ? cm_time_now() : now_ms;
}

/* pick_shape's want for a record whose keys tell its shape. */
#define CM_SEG_AUTO (-1)

/* Segment's call types (CM_SEG_*), and the event_type each becomes (a track
 * call's is its event name, mapped). */
static const char *const seg_name[] = {
    NULL, "track", "identify", "page", "screen", "group", "alias",
};
static const char *const seg_type[] = {
    NULL, NULL, "identify", "page_view", "screen_view", "group", "alias",
};

/* The Segment call type string token t names, or 0. */
static int seg_call_of(const struct cm_jdoc *d, uint32_t t)
{
	if (t == CM_JNONE || d->tok[t].type != CM_JSTR)
		return 0;
	for (int c = CM_SEG_TRACK; c <= CM_SEG_ALIAS; c++)
		if (cm_json_str_eq(d, t, seg_name[c], strlen(seg_name[c])))
			return c;
	return 0;
}

/* Fills m for Segment call c: messageId, userId (else anonymousId),
 * timestamp, and the parts the call has. */
static void seg_shape(const uint32_t *v, int c, const struct cm_jdoc *d, struct src *m)
{
	m->call = c;
	m->id = v[K_MESSAGE_ID];
	m->type = v[K_EVENT];
	m->user = v[K_SEG_USER_ID];
	m->n_user = "userId";
	if (!present(d, m->user) && present(d, v[K_ANONYMOUS_ID])) {
		m->user = v[K_ANONYMOUS_ID];
		m->n_user = "anonymousId";
	}
	m->time = v[K_TIMESTAMP];
	m->props = v[K_PROPERTIES];
	m->traits = v[K_TRAITS];
	m->name = v[K_NAME];
	m->category = v[K_CATEGORY];
	m->group = v[K_GROUP_ID];
	m->previous = v[K_PREVIOUS_ID];
	m->n_id = "messageId";
	m->n_type = "event";
	m->n_time = "timestamp";
	m->n_props = "properties";
}

/* Works out the record's shape from the keys it has (want CM_SEG_AUTO), or
 * takes it as the Segment call want (CM_SEG_ANY: the one its "type" names),
 * and where each canonical part comes from. */
static int pick_shape(const struct cm_jdoc *d, const struct scan *sc, int want, struct src *m,
                      struct cm_err *err)
{
	uint32_t v[K_NKEYS], ty;
	int seg_ids, call;
	char b[64];

	for (int i = 0; i < K_NKEYS; i++)
		v[i] = key_val(sc, i);
	ty = v[K_TYPE];
	seg_ids = v[K_MESSAGE_ID] != CM_JNONE || v[K_SEG_USER_ID] != CM_JNONE ||
	          v[K_ANONYMOUS_ID] != CM_JNONE;
	call = seg_call_of(d, ty);
	memset(m, 0, sizeof(*m));
	if (want != CM_SEG_AUTO) {
		if (want == CM_SEG_ANY && !present(d, ty))
			return cm_errf(err, "field 'type': missing (required: track, identify, "
			                    "page, screen, group or alias)");
		if (present(d, ty) && !call)
			return cm_errf(err,
			               "field 'type': expected track, identify, page, screen, "
			               "group or alias, got %s",
			               got(d, ty, b, sizeof(b)));
		if (want != CM_SEG_ANY && present(d, ty) && call != want)
			return cm_errf(err, "field 'type': expected \"%s\" (the call sent), got %s",
			               seg_name[want], got(d, ty, b, sizeof(b)));
		seg_shape(v, want == CM_SEG_ANY ? call : want, d, m);
		m->implied = !present(d, ty);
		return 0;
	}
	if (v[K_SPECVERSION] != CM_JNONE) {
		uint32_t sv = v[K_SPECVERSION];

		if (d->tok[sv].type != CM_JSTR || !cm_json_str_eq(d, sv, "1.0", 3))
			return cm_errf(err, "field 'specversion': expected \"1.0\", got %s",
			               got(d, sv, b, sizeof(b)));
		m->id = v[K_ID];
		m->type = v[K_TYPE];
		m->user = v[K_SUBJECT];
		m->time = v[K_TIME];
		m->props = v[K_DATA];
		m->n_id = "id";
		m->n_type = "type";
		m->n_user = "subject";
		m->n_time = "time";
		m->n_props = "data";
		return 0;
	}
	if (call) {
		seg_shape(v, call, d, m);
		return 0;
	}
	if (v[K_EVENT_TYPE] == CM_JNONE && v[K_EVENT] != CM_JNONE && seg_ids && !present(d, ty)) {
		seg_shape(v, CM_SEG_TRACK, d, m);
		return 0;
	}
	if (v[K_EVENT_TYPE] == CM_JNONE && present(d, ty) && seg_ids)
		return cm_errf(err,
		               "field 'type': expected a Segment call (track, identify, page, "
		               "screen, group or alias), got %s",
		               got(d, ty, b, sizeof(b)));
	if (sc->unknown != CM_JNONE || v[K_MATCHES] != CM_JNONE) {
		uint32_t k = sc->unknown;
		const char *name;

		if (k != CM_JNONE)
			name = cm_event_snippet(d->src + d->tok[k].off, d->tok[k].len, 0, b,
			                        sizeof(b));
		else
			name = "matches";
		return cm_errf(
		    err,
		    "field '%s': unknown key; event data belongs under 'properties' (or map "
		    "the record with cm-ingest --jq)",
		    name);
	}
	if (sc->seen & ~EVENT_KEYS)
		return cm_errf(err,
		               "field '%s': unknown key; event data belongs under 'properties' (or "
		               "map the record with cm-ingest --jq)",
		               key_name[first_key(sc->seen & ~EVENT_KEYS)]);
	m->id = v[K_EVENT_ID];
	m->type = v[K_EVENT_TYPE];
	m->user = v[K_USER_ID];
	m->time = v[K_OCCURRED_AT];
	m->props = v[K_PROPERTIES];
	m->n_id = "event_id";
	m->n_type = "event_type";
	m->n_user = "user_id";
	m->n_time = "occurred_at";
	m->n_props = "properties";
	return 0;
}

/* Checks that the "_"-prefixed members of root, which go out verbatim, hold
 * nothing PostgreSQL cannot store (one rule for every string of a line). */
static int check_meta(const struct cm_jdoc *d, uint32_t root, struct cm_err *err)
{
	const struct cm_jtok *tok = d->tok;
	uint32_t k = root + 1, count = tok[root].count;

	if (!d->flags)
		return 0;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t v = k + 1;

		if (key_is_meta(d, k) && storable(d, root, "", k, tok[v].next, err))
			return -1;
		k = tok[v].next;
	}
	return 0;
}

/* Appends the "_"-prefixed members of root, verbatim and in input order. */
static int put_meta(struct cm_buf *o, const struct cm_jdoc *d, uint32_t root)
{
	const struct cm_jtok *tok = d->tok;
	uint32_t k = root + 1, count = tok[root].count;

	for (uint32_t i = 0; i < count; i++) {
		uint32_t v = k + 1;

		if (key_is_meta(d, k)) {
			if (cm_buf_put(o, ",", 1) || put_value(o, d, k) || cm_buf_put(o, ":", 1) ||
			    put_value(o, d, v))
				return -1;
		}
		k = tok[v].next;
	}
	return 0;
}

/* Describes byte i of s[0..n) for a message: a printable ASCII character in
 * quotes, a control character by its code point, another character as
 * itself, or a byte that starts no valid UTF-8 sequence by its value. */
static const char *char_at(const char *s, size_t n, size_t i, char *b, size_t bn)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t l;

	if (u[i] >= 0x21 && u[i] < 0x7F)
		snprintf(b, bn, "'%c'", u[i]);
	else if (u[i] < 0x80)
		snprintf(b, bn, "U+%04X", u[i]);
	else if ((l = utf8_seq(u + i, n - i)) != 0)
		snprintf(b, bn, "'%.*s'", (int)l, s + i);
	else
		snprintf(b, bn, "byte 0x%02X", u[i]);
	return b;
}

/* Maps a Segment track call's event name (token t) to its event_type the
 * way Segment's warehouses name event tables: ASCII letters lowercased and
 * each space '_' ("Order Completed" -> "order_completed"); out (64 bytes)
 * gets the result, which must be a valid event_type and not "identify"
 * (an identify event sets traits: CONTRACT 1.5). */
static int seg_track_type(const struct cm_jdoc *d, uint32_t t, struct cm_buf *scratch, char *out,
                          size_t *outn, struct cm_err *err)
{
	static const char rule[] = "which an event_type cannot hold ([A-Za-z0-9_.:-]; Segment "
	                           "names are lowercased and spaces become '_')";
	const char *s;
	size_t n, i;
	char b[64], c[24];

	if (!present(d, t))
		return cm_errf(err, "field 'event': missing (required)");
	if (d->tok[t].type != CM_JSTR)
		return cm_errf(err, "field 'event': expected a string, got %s",
		               got(d, t, b, sizeof(b)));
	if (!(s = str_of(d, t, scratch, &n, err)))
		return -1;
	if (n < 1 || n > CM_EVENT_TYPE_MAX)
		return cm_errf(err, "field 'event': expected a name of 1-%d bytes, got %s%s",
		               CM_EVENT_TYPE_MAX, got(d, t, b, sizeof(b)), n ? " (too long)" : "");
	for (i = 0; i < n; i++)
		out[i] = s[i] == ' ' ? '_' : s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i];
	if (!cm_event_type_ok(out, n)) {
		for (i = 0; i < n && cm_event_type_ok(out + i, 1); i++)
			;
		return cm_errf(err, "field 'event': %s has %s at byte %zu, %s",
		               got(d, t, b, sizeof(b)), char_at(s, n, i, c, sizeof(c)), i + 1,
		               rule);
	}
	if (n == 8 && !memcmp(out, "identify", 8))
		return cm_errf(err,
		               "field 'event': a track call named %s would be an identify event, "
		               "which sets the user's traits; send an identify call instead",
		               got(d, t, b, sizeof(b)));
	*outn = n;
	return 0;
}

/* Appends an object: the extra members keys[i]: vals[i] (those present),
 * then the members of obj (CM_JNONE: none) whose names no extra member
 * took, so that a page call's top-level name wins over properties.name. */
static int put_obj_with(struct cm_buf *o, const struct cm_jdoc *d, uint32_t obj,
                        const char *const *keys, const uint32_t *vals, int nx)
{
	const struct cm_jtok *tok = d->tok;
	int first = 1;

	if (cm_buf_addc(o, '{'))
		return -1;
	for (int i = 0; i < nx; i++) {
		if (!present(d, vals[i]))
			continue;
		if ((!first && cm_buf_addc(o, ',')) ||
		    cm_buf_add_jstr(o, keys[i], strlen(keys[i])) || cm_buf_addc(o, ':') ||
		    put_value(o, d, vals[i]))
			return -1;
		first = 0;
	}
	if (obj != CM_JNONE) {
		uint32_t k = obj + 1;

		for (uint32_t m = 0; m < tok[obj].count; m++, k = tok[k + 1].next) {
			int taken = 0;

			for (int i = 0; i < nx && !taken; i++)
				taken = present(d, vals[i]) &&
				        cm_json_str_eq(d, k, keys[i], strlen(keys[i]));
			if (taken)
				continue;
			if ((!first && cm_buf_addc(o, ',')) || put_value(o, d, k) ||
			    cm_buf_addc(o, ':') || put_value(o, d, k + 1))
				return -1;
			first = 0;
		}
	}
	return cm_buf_addc(o, '}');
}

/* Checks an optional object member of a Segment call (properties, traits). */
static int seg_obj(const struct cm_jdoc *d, uint32_t t, const char *name, struct cm_err *err)
{
	return present(d, t) ? check_props_tok(d, t, name, err) : 0;
}

/* Checks an optional string member of a Segment call (a page's name). */
static int seg_str(const struct cm_jdoc *d, uint32_t t, const char *name, struct cm_err *err)
{
	char b[64];

	if (!present(d, t))
		return 0;
	if (d->tok[t].type != CM_JSTR)
		return cm_errf(err, "field '%s': expected a string, got %s", name,
		               got(d, t, b, sizeof(b)));
	return storable(d, t, name, t, t + 1, err);
}

/* Checks a Segment call's parts and appends its properties: a track's
 * properties, an identify's traits (CONTRACT 1.5), a page's or screen's
 * properties with its name and category, a group's groupId and traits, an
 * alias's previousId. */
static int put_seg_props(struct cm_buf *o, const struct cm_jdoc *d, const struct src *m,
                         struct cm_buf *scratch, struct cm_err *err)
{
	static const char *const page_keys[] = {"name", "category"};
	uint32_t v[2];
	int rc;

	switch (m->call) {
	case CM_SEG_TRACK:
	case CM_SEG_IDENTIFY: {
		uint32_t t = m->call == CM_SEG_TRACK ? m->props : m->traits;

		if (seg_obj(d, t, m->call == CM_SEG_TRACK ? "properties" : "traits", err))
			return -1;
		rc = present(d, t) ? put_value(o, d, t) : cm_buf_put(o, "{}", 2);
		break;
	}
	case CM_SEG_PAGE:
	case CM_SEG_SCREEN:
		if (seg_obj(d, m->props, "properties", err) || seg_str(d, m->name, "name", err) ||
		    seg_str(d, m->category, "category", err))
			return -1;
		v[0] = m->name;
		v[1] = m->category;
		rc =
		    put_obj_with(o, d, present(d, m->props) ? m->props : CM_JNONE, page_keys, v, 2);
		break;
	case CM_SEG_GROUP:
		if (!present(d, m->group))
			return cm_errf(err, "field 'groupId': missing (a Segment group call "
			                    "needs groupId)");
		if (check_ident_tok(d, m->group, "groupId", CM_EVENT_USER_MAX, scratch, err) ||
		    seg_obj(d, m->traits, "traits", err))
			return -1;
		rc =
		    cm_buf_adds(o, "{\"groupId\":") || put_value(o, d, m->group) ||
		    cm_buf_adds(o, ",\"traits\":") ||
		    (present(d, m->traits) ? put_value(o, d, m->traits) : cm_buf_put(o, "{}", 2)) ||
		    cm_buf_addc(o, '}');
		break;
	default: /* CM_SEG_ALIAS */
		if (!present(d, m->previous))
			return cm_errf(err, "field 'previousId': missing (a Segment alias call "
			                    "needs previousId)");
		if (check_ident_tok(d, m->previous, "previousId", CM_EVENT_USER_MAX, scratch, err))
			return -1;
		rc = cm_buf_adds(o, "{\"previousId\":") || put_value(o, d, m->previous) ||
		     cm_buf_addc(o, '}');
	}
	return rc ? cm_errf(err, "out of memory") : 0;
}

/* Writes the canonical line for the parts located by m, checking each with
 * the rules cm_event_validate applies, under the input's names. */
static int emit(const struct cm_jdoc *d, uint32_t root, const struct src *m, const char *raw,
                size_t rawlen, int64_t now_ms, struct cm_buf *o, struct cm_event_ref *ref,
                struct cm_buf *scratch, struct cm_err *err)
{
	char tb[CM_EVENT_TYPE_MAX];
	const char *s;
	size_t n;
	int64_t ms;

	if (cm_buf_grow(o, d->tok[root].len + 256) || cm_buf_put(o, "{\"event_id\":", 12))
		return cm_errf(err, "out of memory");
	if (ref)
		ref->id_off = o->len;
	if (present(d, m->id)) {
		if (check_ident_tok(d, m->id, m->n_id, CM_EVENT_ID_MAX, scratch, err))
			return -1;
		if (put_value(o, d, m->id))
			return cm_errf(err, "out of memory");
	} else if (put_derived_id(o, m->implied && m->call != CM_SEG_TRACK ? seg_name[m->call] : "",
	                          raw, rawlen)) {
		return cm_errf(err, "out of memory");
	}
	if (ref)
		ref->id_len = o->len - ref->id_off;

	if (m->call == CM_SEG_TRACK) {
		if (seg_track_type(d, m->type, scratch, tb, &n, err))
			return -1;
		s = tb;
	} else if (m->call) {
		s = seg_type[m->call];
		n = strlen(s);
	} else {
		if (!present(d, m->type))
			return cm_errf(err, "field '%s': missing (required)", m->n_type);
		if (check_type_tok(d, m->type, m->n_type, scratch, &s, &n, err))
			return -1;
	}
	if (cm_buf_put(o, ",\"event_type\":\"", 15) || cm_buf_put(o, s, n) ||
	    cm_buf_put(o, "\",\"user_id\":", 12))
		return cm_errf(err, "out of memory");

	if (!present(d, m->user)) {
		if (m->call)
			return cm_errf(err,
			               "field 'userId': missing (a Segment %s call needs userId or "
			               "anonymousId)",
			               seg_name[m->call]);
		return cm_errf(err, "field '%s': missing (required)", m->n_user);
	}
	if (check_ident_tok(d, m->user, m->n_user, CM_EVENT_USER_MAX, scratch, err))
		return -1;
	if (put_value(o, d, m->user) || cm_buf_put(o, ",\"occurred_at\":", 15))
		return cm_errf(err, "out of memory");

	if (present(d, m->time)) {
		if (check_time_tok(d, m->time, m->n_time, scratch, &s, &n, &ms, err))
			return -1;
		if (!d->tok[m->time].esc && time_canonical(s, n)) {
			if (put_value(o, d, m->time))
				return cm_errf(err, "out of memory");
		} else if (put_time(o, ms)) {
			return cm_errf(err, "out of memory");
		}
	} else {
		ms = now_of(now_ms);
		if (put_time(o, ms))
			return cm_errf(err, "out of memory");
	}
	if (cm_buf_put(o, ",\"properties\":", 14))
		return cm_errf(err, "out of memory");
	if (ref)
		ref->occurred_ms = ms;

	if (m->call) {
		if (put_seg_props(o, d, m, scratch, err))
			return -1;
	} else if (present(d, m->props)) {
		if (check_props_tok(d, m->props, m->n_props, err))
			return -1;
		if (put_value(o, d, m->props))
			return cm_errf(err, "out of memory");
	} else if (cm_buf_put(o, "{}", 2)) {
		return cm_errf(err, "out of memory");
	}
	if (check_meta(d, root, err))
		return -1;
	if (put_meta(o, d, root) || cm_buf_addc(o, '}'))
		return cm_errf(err, "out of memory");
	return 0;
}

/* Normalises the record at root as the shape want says (pick_shape); on
 * failure rolls out back to where it was. */
static int normalize(const struct cm_jdoc *d, uint32_t root, int want, const char *raw,
                     size_t rawlen, int64_t now_ms, struct cm_buf *out, struct cm_event_ref *ref,
                     struct cm_err *err)
{
	struct cm_buf scratch = CM_BUF_INIT;
	struct scan sc;
	struct src m;
	size_t mark = out->len;
	char b[64];
	int rc = -1;

	if (d->tok[root].type != CM_JOBJ) {
		cm_errf(err, "expected a JSON object, got %s", got(d, root, b, sizeof(b)));
		goto out;
	}
	if (scan_members(d, root, &sc, &scratch, err) || pick_shape(d, &sc, want, &m, err))
		goto out;
	if (emit(d, root, &m, raw, rawlen, now_ms, out, ref, &scratch, err))
		goto out;
	rc = 0;
out:
	if (rc) {
		out->len = mark;
		if (out->data)
			out->data[mark] = 0;
	}
	cm_buf_release(&scratch);
	return rc;
}

/* Normalises any accepted shape, told apart by its keys. */
int cm_event_normalize_ref(const struct cm_jdoc *d, uint32_t root, const char *raw, size_t rawlen,
                           int64_t now_ms, struct cm_buf *out, struct cm_event_ref *ref,
                           struct cm_err *err)
{
	return normalize(d, root, CM_SEG_AUTO, raw, rawlen, now_ms, out, ref, err);
}

/* The common case of cm_event_normalize_ref, without the reference. */
int cm_event_normalize(const struct cm_jdoc *d, uint32_t root, const char *raw, size_t rawlen,
                       int64_t now_ms, struct cm_buf *out, struct cm_err *err)
{
	return normalize(d, root, CM_SEG_AUTO, raw, rawlen, now_ms, out, NULL, err);
}

/* Normalises a record that is a Segment call (cm-httpd's /v1 routes). */
int cm_event_normalize_segment(const struct cm_jdoc *d, uint32_t root, int call, const char *raw,
                               size_t rawlen, int64_t now_ms, struct cm_buf *out,
                               struct cm_event_ref *ref, struct cm_err *err)
{
	if (call < CM_SEG_ANY || call > CM_SEG_ALIAS)
		return cm_errf(err, "no such Segment call (%d)", call);
	return normalize(d, root, call, raw, rawlen, now_ms, out, ref, err);
}

/* ---- validating ---- */

/* The message for a top-level key that is not one of the line's. */
static int unknown_key(const struct cm_jdoc *d, uint32_t k, const char *name, const char *why,
                       struct cm_err *err)
{
	char b[64];

	if (!name)
		name = cm_event_snippet(d->src + d->tok[k].off, d->tok[k].len, 0, b, sizeof(b));
	return cm_errf(err, "field '%s': unknown key (%s)", name, why);
}

/* Checks the members every event and match line has (event_id, event_type,
 * user_id, occurred_at), found by sc, and fills them into v. */
static int validate_common(const struct cm_jdoc *d, const struct scan *sc, struct cm_event_view *v,
                           struct cm_buf *scratch, struct cm_err *err)
{
	const char *s;
	size_t n;

	v->id = key_val(sc, K_EVENT_ID);
	v->type = key_val(sc, K_EVENT_TYPE);
	v->user = key_val(sc, K_USER_ID);
	v->time = key_val(sc, K_OCCURRED_AT);
	v->has_meta = sc->has_meta;
	if (v->id == CM_JNONE)
		return cm_errf(err, "field 'event_id': missing (required)");
	if (check_ident_tok(d, v->id, "event_id", CM_EVENT_ID_MAX, scratch, err))
		return -1;
	if (v->type == CM_JNONE)
		return cm_errf(err, "field 'event_type': missing (required)");
	if (check_type_tok(d, v->type, "event_type", scratch, &s, &n, err))
		return -1;
	memcpy(v->type_text, s, n);
	v->type_text[n] = 0;
	v->type_len = n;
	if (v->user == CM_JNONE)
		return cm_errf(err, "field 'user_id': missing (required)");
	if (check_ident_tok(d, v->user, "user_id", CM_EVENT_USER_MAX, scratch, err))
		return -1;
	if (v->time == CM_JNONE)
		return cm_errf(err, "field 'occurred_at': missing (required)");
	return check_time_tok(d, v->time, "occurred_at", scratch, &s, &n, &v->occurred_ms, err);
}

/* The rules of a canonical event (CONTRACT 1.1) over the members sc found. */
static int validate_event(const struct cm_jdoc *d, uint32_t root, const struct scan *sc,
                          struct cm_event_view *v, struct cm_buf *scratch, struct cm_err *err)
{
	static const char why[] = "event data belongs under 'properties'";

	if (sc->unknown != CM_JNONE)
		return unknown_key(d, sc->unknown, NULL, why, err);
	if (sc->seen & ~EVENT_KEYS)
		return unknown_key(d, 0, key_name[first_key(sc->seen & ~EVENT_KEYS)], why, err);
	if (validate_common(d, sc, v, scratch, err))
		return -1;
	v->props = key_val(sc, K_PROPERTIES);
	if (v->props == CM_JNONE)
		return cm_errf(err, "field 'properties': missing (required)");
	if (check_props_tok(d, v->props, "properties", err))
		return -1;
	v->matches = key_val(sc, K_MATCHES);
	if (v->matches != CM_JNONE && check_matches(d, v->matches, scratch, err))
		return -1;
	return storable(d, root, "", root + 1, d->tok[root].next, err);
}

/* The rules of a match line (CONTRACT 1.3 and 1.6) over the members sc found. */
static int validate_match(const struct cm_jdoc *d, uint32_t root, const struct scan *sc,
                          struct cm_event_view *v, struct cm_buf *scratch, struct cm_err *err)
{
	static const char why[] = "a match line has campaign_id, event_id, user_id, "
	                          "event_type, occurred_at, outcome, variant and limit";

	if (sc->unknown != CM_JNONE)
		return unknown_key(d, sc->unknown, NULL, why, err);
	if (sc->seen & ~MATCH_KEYS)
		return unknown_key(d, 0, key_name[first_key(sc->seen & ~MATCH_KEYS)], why, err);
	v->is_match = 1;
	v->campaign = key_val(sc, K_CAMPAIGN_ID);
	v->outcome = key_val(sc, K_OUTCOME);
	v->variant = key_val(sc, K_VARIANT);
	v->limit = key_val(sc, K_LIMIT);
	if (v->campaign == CM_JNONE)
		return cm_errf(err, "field 'campaign_id': missing (required)");
	if (check_campaign_tok(d, v->campaign, "campaign_id", &v->campaign_id, err) ||
	    validate_common(d, sc, v, scratch, err) ||
	    check_match_extras(d, v->outcome, v->variant, v->limit, "", scratch, err))
		return -1;
	return storable(d, root, "", root + 1, d->tok[root].next, err);
}

/* Scans root's members and runs one of the validators (or, for kind -1,
 * the one the line's keys call for). */
static int validate(const struct cm_jdoc *d, uint32_t root, int kind, struct cm_event_view *v,
                    struct cm_err *err)
{
	struct cm_buf scratch = CM_BUF_INIT;
	struct scan sc;
	char b[64];
	int rc;

	memset(v, 0, offsetof(struct cm_event_view, type_text));
	v->type_text[0] = 0;
	v->root = root;
	v->id = v->type = v->user = v->time = v->props = v->matches = CM_JNONE;
	v->campaign = v->outcome = v->variant = v->limit = CM_JNONE;
	if (root >= d->ntok || d->tok[root].type != CM_JOBJ)
		return cm_errf(err, "expected a JSON object, got %s",
		               root < d->ntok ? got(d, root, b, sizeof(b)) : "nothing");
	rc = scan_members(d, root, &sc, &scratch, err);
	if (rc == 0) {
		if (kind < 0)
			kind = key_val(&sc, K_CAMPAIGN_ID) != CM_JNONE;
		rc = kind ? validate_match(d, root, &sc, v, &scratch, err)
		          : validate_event(d, root, &sc, v, &scratch, err);
	}
	if (scratch.data) /* only escaped keys and values need it */
		cm_buf_release(&scratch);
	return rc;
}

/* The one check of a canonical event that every tool runs. */
int cm_event_validate(const struct cm_jdoc *d, uint32_t root, struct cm_event_view *v,
                      struct cm_err *err)
{
	return validate(d, root, 0, v, err);
}

/* The one check of a match line. */
int cm_match_validate(const struct cm_jdoc *d, uint32_t root, struct cm_event_view *v,
                      struct cm_err *err)
{
	return validate(d, root, 1, v, err);
}

/* An event or a match line, told apart by a top-level campaign_id. */
int cm_record_validate(const struct cm_jdoc *d, uint32_t root, struct cm_event_view *v,
                       struct cm_err *err)
{
	return validate(d, root, -1, v, err);
}

/* Parses a line into d and runs validator kind on it. */
static int parse_validate(struct cm_jdoc *d, const char *line, size_t len, int kind,
                          struct cm_event_view *v, struct cm_err *err)
{
	if (cm_json_parse(d, line, len, err) < 0)
		return cm_err_prefix(err, "invalid JSON: ");
	return validate(d, 0, kind, v, err);
}

/* The entry of every tool that reads events (cm-publish, cm-consume). */
int cm_event_parse(struct cm_jdoc *d, const char *line, size_t len, struct cm_event_view *v,
                   struct cm_err *err)
{
	return parse_validate(d, line, len, 0, v, err);
}

/* The entry of cm-store, which reads events and match lines. */
int cm_record_parse(struct cm_jdoc *d, const char *line, size_t len, struct cm_event_view *v,
                    struct cm_err *err)
{
	return parse_validate(d, line, len, -1, v, err);
}

/* cm_event_validate for callers that want only the id and the time. */
int cm_event_check_ref(const struct cm_jdoc *d, uint32_t root, struct cm_event_ref *ref,
                       struct cm_err *err)
{
	struct cm_event_view v;

	if (cm_event_validate(d, root, &v, err))
		return -1;
	if (ref) {
		ref->id_off = d->tok[v.id].off - 1;
		ref->id_len = (size_t)d->tok[v.id].len + 2;
		ref->occurred_ms = v.occurred_ms;
	}
	return 0;
}

/* cm_event_validate for callers that want only the verdict. */
int cm_event_check(const struct cm_jdoc *d, uint32_t root, struct cm_err *err)
{
	return cm_event_check_ref(d, root, NULL, err);
}

/* ---- building from parts ---- */

/* Checks an identifier given as bytes (a CSV cell) and appends it. */
static int build_ident(struct cm_buf *o, const char *name, const char *s, size_t n, size_t max,
                       struct cm_err *err)
{
	char b[64];

	if (cm_utf8_valid_prefix(s, n) != n)
		return cm_errf(err, "field '%s': expected UTF-8 text, got %s", name,
		               cm_event_snippet(s, n, 1, b, sizeof(b)));
	if (check_ident(name, s, n, max, NULL, 0, err))
		return -1;
	if (cm_event_put_str(o, s, n))
		return cm_errf(err, "out of memory");
	return 0;
}

/* Checks the properties text of a CSV row (the only part of the line that
 * comes from the caller as JSON) with the rule of every event's properties:
 * one JSON object, everything in it storable; parsed into doc, or (NULL) a
 * document of its own. The other parts get the same field rules as they are
 * built, so the line is not parsed again. */
static int check_props_text(struct cm_jdoc *doc, const char *s, size_t n, struct cm_err *err)
{
	struct cm_jdoc own;
	int rc;

	if (!doc) {
		cm_jdoc_init(&own, 0);
		doc = &own;
	}
	rc = cm_json_parse(doc, s, n, err);
	if (rc)
		cm_err_prefix(err, "field 'properties': not valid JSON: ");
	else
		rc = check_props_tok(doc, 0, "properties", err);
	if (doc == &own)
		cm_jdoc_release(&own);
	return rc;
}

/* Builds an event from decoded parts (a CSV row) with the rules and messages
 * of normalise, the properties text included. */
int cm_event_build(const struct cm_event_parts *p, const char *raw, size_t rawlen, int64_t now_ms,
                   struct cm_buf *out, struct cm_err *err)
{
	size_t mark = out->len;
	int64_t ms;
	char b[64];
	int rc = -1, trc;

	if (cm_buf_grow(out, p->props_len + p->id_len + p->user_len + p->type_len + 160) ||
	    cm_buf_put(out, "{\"event_id\":", 12)) {
		cm_errf(err, "out of memory");
		goto out;
	}
	if (p->id) {
		if (build_ident(out, "event_id", p->id, p->id_len, CM_EVENT_ID_MAX, err))
			goto out;
	} else if (put_derived_id(out, "", raw, rawlen)) {
		cm_errf(err, "out of memory");
		goto out;
	}
	if (!p->type) {
		cm_errf(err, "field 'event_type': missing (required)");
		goto out;
	}
	if (!cm_event_type_ok(p->type, p->type_len)) {
		type_error("event_type", p->type_len,
		           cm_event_snippet(p->type, p->type_len, 1, b, sizeof(b)), err);
		goto out;
	}
	if (cm_buf_put(out, ",\"event_type\":\"", 15) || cm_buf_put(out, p->type, p->type_len) ||
	    cm_buf_put(out, "\",\"user_id\":", 12)) {
		cm_errf(err, "out of memory");
		goto out;
	}
	if (!p->user) {
		cm_errf(err, "field 'user_id': missing (required)");
		goto out;
	}
	if (build_ident(out, "user_id", p->user, p->user_len, CM_EVENT_USER_MAX, err))
		goto out;
	if (p->props && check_props_text(p->doc, p->props, p->props_len, err))
		goto out;
	if (!p->time) {
		ms = now_of(now_ms);
	} else if ((trc = cm_time_parse(p->time, p->time_len, &ms)) != 0) {
		time_error("occurred_at", trc,
		           cm_event_snippet(p->time, p->time_len, 1, b, sizeof(b)), err);
		goto out;
	}
	if (cm_buf_put(out, ",\"occurred_at\":", 15) ||
	    (p->time && time_canonical(p->time, p->time_len)
	         ? cm_buf_put(out, "\"", 1) || cm_buf_put(out, p->time, p->time_len) ||
	               cm_buf_put(out, "\"", 1)
	         : put_time(out, ms)) ||
	    cm_buf_put(out, ",\"properties\":", 14) ||
	    (p->props ? cm_buf_put(out, p->props, p->props_len) : cm_buf_put(out, "{}", 2)) ||
	    cm_buf_addc(out, '}')) {
		cm_errf(err, "out of memory");
		goto out;
	}
	rc = 0;
out:
	if (rc) {
		out->len = mark;
		if (out->data)
			out->data[mark] = 0;
	}
	return rc;
}
