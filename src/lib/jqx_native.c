/* jqx_native.c - jqx's native evaluator (see jqx_native.h): a subset of
 * jq parsed into a small tree of nodes and run straight on a parsed event,
 * with jq 1.6's answers or none. */
#include "jqx_native.h"

#include <stdlib.h>
#include <string.h>

#include "jqx.h"
#include "json.h"

/* Sets up an empty program store. */
int jqx_native_init(struct jqx_native *nv)
{
	memset(nv, 0, sizeof(*nv));
	cm_buf_init(&nv->npool, 0);
	nv->md = pcre2_match_data_create(1, NULL);
	if (!nv->md || cm_buf_add(&nv->npool, "", 0) < 0)
		return -1;
	return 0;
}

/* Frees the programs and their regular expressions. */
void jqx_native_release(struct jqx_native *nv)
{
	cm_buf_release(&nv->npool);
	for (uint32_t i = 0; i < nv->nre; i++)
		pcre2_code_free(nv->re[i]);
	free(nv->re);
	free(nv->jn);
	free(nv->kids);
	pcre2_match_data_free(nv->md);
}

/* The operations of a native program node. */
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

/* A node of a native program: an operation and its operands. */
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
	uint8_t built; /* V_ARR made by [a, b]: items, not tok; V_OBJ: the empty profile */
	uint8_t pd;    /* tok is in the profile's document, not the event's */
	uint8_t root;  /* the event's root object, with its "profile" member */
	uint32_t tok;
	uint32_t n;
	double num;
	const char *s;
	const struct jval *items;
};

/* Values an evaluation may build (the items of [a, b]). */
#define JPOOL 64

/* One evaluation: the programs, the event (and the profile its root
 * carries), and room for built values. */
struct jeval {
	struct jqx_native *nv;
	const struct cm_jdoc *d;
	const struct cm_jdoc *pd; /* the profile, or NULL */
	int with_profile;         /* the root has a "profile" member */
	struct jval pool[JPOOL];
	uint32_t npool;
};

/* Appends a node; NONE_J on failure. */
static uint32_t jn_add(struct jqx_native *nv, const struct jnode *n)
{
	if (nv->njn == nv->jncap) {
		uint32_t cap = nv->jncap ? nv->jncap * 2 : 64;
		struct jnode *p = realloc(nv->jn, cap * sizeof(*p));

		if (!p)
			return NONE_J;
		nv->jn = p;
		nv->jncap = cap;
	}
	nv->jn[nv->njn] = *n;
	return nv->njn++;
}

/* The parser state over one predicate text. */
struct jparser {
	struct jqx_native *nv;
	const char *s, *e;
	int bad;
	int depth;
};

/* Skips whitespace (comments are not in the subset). */
static void jp_ws(struct jparser *p)
{
	while (p->s < p->e && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
		p->s++;
}

/* True (and consumed) when the text continues with the punctuation tok. */
static int jp_punct(struct jparser *p, const char *tok)
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
static int jp_word(struct jparser *p, const char *w)
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
static int jp_ident(struct jparser *p, char *name, size_t size)
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
static int jp_string(struct jparser *p, uint32_t *off, uint32_t *len)
{
	struct cm_buf *b = &p->nv->npool;
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
static int jp_number(struct jparser *p, double *v)
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
static int jp_int(struct jparser *p, int64_t *v)
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

static uint32_t jp_pipe(struct jparser *p);
static uint32_t jp_alt(struct jparser *p);

/* Postfix: .name, ."name", [n], [n:m], ["name"] after a term. */
static uint32_t jp_post(struct jparser *p, uint32_t a)
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
			    cm_buf_add(&p->nv->npool, name, strlen(name)) < 0)
				return NONE_J;
			nd.op = J_FIELD;
			nd.slen = (uint32_t)strlen(name);
			nd.soff = (uint32_t)(p->nv->npool.len - nd.slen);
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
		a = jn_add(p->nv, &nd);
		if (a == NONE_J)
			return NONE_J;
	}
}

/* A builtin call: name without arguments, or name(arg). */
static uint32_t jp_call(struct jparser *p, const char *name)
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
			return jn_add(p->nv, &nd);
		}
		if (!jp_punct(p, "("))
			return NONE_J;
		if (nd.op == J_TEST) {
			uint32_t off, len;
			int code;
			PCRE2_SIZE eoff;
			pcre2_code *re;

			if (!jp_string(p, &off, &len) || !jp_punct(p, ")") ||
			    !jp_regex_ok(p->nv->npool.data + off, len))
				return NONE_J;
			re = pcre2_compile((PCRE2_SPTR)(p->nv->npool.data + off), len, PCRE2_UTF,
			                   &code, &eoff, NULL);
			if (!re)
				return NONE_J;
			if (p->nv->nre == p->nv->recap) {
				uint32_t cap = p->nv->recap ? p->nv->recap * 2 : 8;
				pcre2_code **q = realloc(p->nv->re, cap * sizeof(*q));

				if (!q) {
					pcre2_code_free(re);
					return NONE_J;
				}
				p->nv->re = q;
				p->nv->recap = cap;
			}
			nd.re = p->nv->nre;
			p->nv->re[p->nv->nre++] = re;
			return jn_add(p->nv, &nd);
		}
		nd.a = jp_pipe(p);
		if (nd.a == NONE_J || !jp_punct(p, ")"))
			return NONE_J;
		return jn_add(p->nv, &nd);
	}
	return NONE_J;
}

/* A term: . .name literal (e) [a, b] call, then postfixes. */
static uint32_t jp_term(struct jparser *p)
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
			a = jn_add(p->nv, &nd);
			return a == NONE_J ? a : jp_post(p, a);
		}
		p->s++;
		nd.op = J_DOT;
		a = jn_add(p->nv, &nd);
	} else if (*p->s == '"') {
		nd.op = J_LIT;
		nd.lk = V_STR;
		if (!jp_string(p, &nd.soff, &nd.slen))
			return NONE_J;
		a = jn_add(p->nv, &nd);
	} else if ((*p->s >= '0' && *p->s <= '9') || *p->s == '-') {
		nd.op = J_LIT;
		nd.lk = V_NUM;
		if (!jp_number(p, &nd.num))
			return NONE_J;
		a = jn_add(p->nv, &nd);
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
		nd.a = p->nv->nkids;
		nd.n = n;
		for (uint32_t i = 0; i < n; i++) {
			if (p->nv->nkids == p->nv->kidcap) {
				uint32_t cap = p->nv->kidcap ? p->nv->kidcap * 2 : 32;
				uint32_t *q = realloc(p->nv->kids, cap * sizeof(*q));

				if (!q)
					return NONE_J;
				p->nv->kids = q;
				p->nv->kidcap = cap;
			}
			p->nv->kids[p->nv->nkids++] = items[i];
		}
		a = jn_add(p->nv, &nd);
	} else if (jp_ident(p, name, sizeof(name))) {
		if (!strcmp(name, "true") || !strcmp(name, "false") || !strcmp(name, "null")) {
			nd.op = J_LIT;
			nd.lk = name[0] == 't' ? V_TRUE : name[0] == 'f' ? V_FALSE : V_NULL;
			a = jn_add(p->nv, &nd);
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
static uint32_t jp_binary(struct jparser *p, uint32_t a, uint8_t op, uint32_t b)
{
	struct jnode nd;

	if (a == NONE_J || b == NONE_J)
		return NONE_J;
	memset(&nd, 0, sizeof(nd));
	nd.op = op;
	nd.a = a;
	nd.b = b;
	return jn_add(p->nv, &nd);
}

/* Products: * / % (left-associative). */
static uint32_t jp_mul(struct jparser *p)
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
static uint32_t jp_add(struct jparser *p)
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
static uint32_t jp_cmp(struct jparser *p)
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
static uint32_t jp_and(struct jparser *p)
{
	uint32_t a = jp_cmp(p);

	while (a != NONE_J && jp_word(p, "and"))
		a = jp_binary(p, a, J_AND, jp_cmp(p));
	return a;
}

/* or. */
static uint32_t jp_or(struct jparser *p)
{
	uint32_t a = jp_and(p);

	while (a != NONE_J && jp_word(p, "or"))
		a = jp_binary(p, a, J_OR, jp_and(p));
	return a;
}

/* "//" is right-associative. */
static uint32_t jp_alt(struct jparser *p)
{
	uint32_t a = jp_or(p);

	if (a != NONE_J && jp_punct(p, "//"))
		return jp_binary(p, a, J_ALT, jp_alt(p));
	return a;
}

/* A pipe, the loosest operator of the subset (no comma). */
static uint32_t jp_pipe(struct jparser *p)
{
	uint32_t a = jp_alt(p);

	if (a != NONE_J && jp_punct(p, "|"))
		return jp_binary(p, a, J_PIPE, jp_pipe(p));
	return a;
}

/* Compiles text to a native program, or returns NONE_J when it is outside
 * the subset (then only libjq runs it). */
uint32_t jqx_native_compile(struct jqx_native *nv, const char *text, size_t len)
{
	struct jparser p = {nv, text, text + len, 0, 0};
	uint32_t mark = nv->njn, root;

	root = jp_pipe(&p);
	jp_ws(&p);
	if (root == NONE_J || p.s != p.e) {
		nv->njn = mark;
		return NONE_J;
	}
	return root;
}

/* The value of token t of the event (pd 0) or the profile (pd 1); -1 for
 * what the evaluator does not model (strings with escapes). */
static int tok_val(const struct jeval *c, int pd, uint32_t t, struct jval *v)
{
	const struct cm_jdoc *d = pd ? c->pd : c->d;
	const struct cm_jtok *k = &d->tok[t];

	memset(v, 0, sizeof(*v));
	v->pd = (uint8_t)pd;
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
		v->num = cm_json_num(d, t);
		return 0;
	case CM_JSTR:
		if (k->esc)
			return -1;
		v->k = V_STR;
		v->s = d->src + k->off;
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
static int arr_at(const struct jeval *c, const struct jval *a, uint32_t i, struct jval *out)
{
	if (a->built) {
		*out = a->items[i];
		return 0;
	}
	return tok_val(c, a->pd, cm_json_at(a->pd ? c->pd : c->d, a->tok, i), out);
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

static int jeval(struct jeval *c, uint32_t ni, const struct jval *in, struct jval *out);

/* Evaluates both operands of a binary node. */
static int jeval2(struct jeval *c, const struct jnode *n, const struct jval *in, struct jval *a,
                  struct jval *b)
{
	if (jeval(c, n->a, in, a) < 0 || jeval(c, n->b, in, b) < 0)
		return -1;
	return 0;
}

/* Evaluates node ni on input in: 0 with out set, or -1 when jq would raise
 * an error or the case is not modelled. */
static int jeval(struct jeval *c, uint32_t ni, const struct jval *in, struct jval *out)
{
	const struct jnode *n = &c->nv->jn[ni];
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
		if (a.k != V_OBJ)
			return -1;
		if (a.root && n->slen == 7 &&
		    memcmp(c->nv->npool.data + n->soff, "profile", 7) == 0) {
			/* The member the rule engine adds: the user's traits. */
			if (c->pd)
				return tok_val(c, 1, 0, out);
			memset(out, 0, sizeof(*out));
			out->k = V_OBJ;
			out->built = 1;
			return 0;
		}
		{
			uint32_t t = a.built ? CM_JNONE
			                     : cm_json_get(a.pd ? c->pd : c->d, a.tok,
			                                   c->nv->npool.data + n->soff, n->slen);

			if (t == CM_JNONE) {
				memset(out, 0, sizeof(*out));
				out->k = V_NULL;
				return 0;
			}
			return tok_val(c, a.pd, t, out);
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
			out->s = c->nv->npool.data + n->soff;
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
			if (jeval(c, c->nv->kids[n->a + i], in, &c->pool[first + i]) < 0)
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
		if (in->k != V_STR || memchr(in->s, '\n', in->n) || !c->nv->md)
			return -1;
		r = pcre2_match(c->nv->re[n->re], (PCRE2_SPTR)(in->n ? in->s : ""), in->n, 0, 0,
		                c->nv->md, NULL);
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

/* Runs the program at root on the document's root. */
int jqx_native_eval(struct jqx_native *nv, uint32_t root, const struct cm_jdoc *d,
                    const struct cm_jdoc *profile, int with_profile)
{
	struct jeval c;
	struct jval in, out;

	if (d->ntok == 0 || (profile && (profile->ntok == 0 || profile->tok[0].type != CM_JOBJ)))
		return CM_JQX_FALLBACK;
	c.nv = nv;
	c.d = d;
	c.pd = with_profile ? profile : NULL;
	c.with_profile = with_profile;
	c.npool = 0;
	if (tok_val(&c, 0, 0, &in) < 0)
		return CM_JQX_FALLBACK;
	in.root = with_profile && in.k == V_OBJ;
	if (jeval(&c, root, &in, &out) < 0)
		return CM_JQX_FALLBACK;
	return truthy(&out) ? CM_JQX_TRUE : CM_JQX_FALSE;
}
