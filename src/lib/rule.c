/* rule.c - campaign loading, validation and matching (see rule.h).
 *
 * Loading validates each campaign and turns its rule.where into nodes of a
 * flat array, with field paths interned into a trie so that an event
 * resolves each path at most once (a per-event cache stamped with a
 * generation number).
 *
 * Compiling sorts the active campaigns by id, buckets them by event type
 * (campaigns of any type go into every bucket) and, inside a bucket, lists
 * each campaign under one "key" condition of its top-level all, its only
 * leaf, or each leaf of a top-level any: eq/in values (strings by a per-path
 * string id), starts_with prefixes, numeric thresholds sorted so that a scan
 * stops at the first that fails. An event then looks at the campaigns whose
 * key holds, plus the few that have none. Each list entry is a self-contained
 * block (rank within the bucket, jq slot, window if any, and the rest of the
 * conditions compiled to a pre-order instruction array using string ids and
 * prefix bit masks), so a candidate costs a cache line or two, not a walk
 * over scattered nodes. Hits are sorted through a small bitmap of ranks.
 * jq runs last, natively when it can (jqx.h), and per event the event is
 * converted to a jq value at most once.
 */
#include "rule.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jv.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "event.h"
#include "jqx.h"
#include "json.h"
#include "timefmt.h"

#define NONE UINT32_MAX
/* JSON nesting allowed in a campaigns text: each where level takes two
 * (an object and an array), plus the campaign and the file's array. */
#define DOC_DEPTH    (CM_RULE_MAX_DEPTH * 2 + 16)
#define MAX_PATH_LEN 1024
#define MAX_NAME_LEN 200

/* Value classes for "same type" comparisons; 0 is missing (absent or null). */
enum { C_NONE = 0, C_BOOL, C_NUM, C_STR, C_ARR, C_OBJ };
/* The class of a key that is a string id (eq / in probes on strings). */
#define C_SID 7

enum {
	OP_EQ,
	OP_NE,
	OP_LT,
	OP_LTE,
	OP_GT,
	OP_GTE,
	OP_IN,
	OP_NOT_IN,
	OP_CONTAINS,
	OP_STARTS_WITH,
	OP_EXISTS,
	OP_NOT_EXISTS,
	OP_MATCHES,
	OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "eq",     "ne",       "lt",          "lte",    "gt",         "gte",     "in",
    "not_in", "contains", "starts_with", "exists", "not_exists", "matches",
};
#define OP_LIST                                                                                    \
	"eq ne lt lte gt gte in not_in contains starts_with exists not_exists "                    \
	"matches"

enum { K_LEAF, K_ALL, K_ANY, K_NOT };

struct node {
	uint8_t kind;
	uint8_t op;
	uint16_t cost;
	uint32_t path; /* leaf: interned path */
	uint32_t a;    /* all/any: first kid in kids; not: child; leaf: value, set or regex */
	uint32_t n;    /* all/any: number of kids */
};

/* A constant from a rule. Strings live in the pool; arrays and objects in
 * their own parsed document (cvals). */
struct rval {
	uint8_t cls;
	uint8_t b;
	double num;
	uint32_t off, len;
	uint32_t cv;
};

struct cval {
	char *text;
	struct cm_jdoc doc;
};

struct sref {
	uint32_t off, len;
};

/* The array of an in / not_in leaf, sorted for binary search. */
struct inset {
	uint32_t nums, nnum;  /* into setnums */
	uint32_t strs, nstr;  /* into setstrs, ordered by length then bytes */
	uint32_t cplx, ncplx; /* into vals */
	uint8_t classes;      /* bit 1 << class for each class present */
	uint8_t has_true, has_false;
	uint32_t total;
};

/* One segment of an interned path; parent NONE means the event root. */
struct pnode {
	uint32_t parent;
	uint32_t off, len;
	int64_t index;
	uint64_t hash;
};

struct camp {
	int64_t id; /* 0 when absent or invalid */
	uint32_t pos;
	uint32_t src;
	unsigned long line;
	uint8_t active, bad;
	int64_t start, end;
	uint32_t types, ntypes; /* into typerefs; 0 types: any */
	uint32_t where;
	int64_t jq;
};

/* An active campaign as the matcher sees it, indexed by rank (id order). */
struct act {
	int64_t id;
	int64_t start, end;
	uint32_t resid; /* what remains of where once the key holds, or NONE */
	uint32_t key;   /* key leaf (or, when multi, an any of key leaves), or NONE */
	int multi;      /* reached through each leaf of an any: dedupe hits */
	int64_t jq;
	uint32_t camp;
	uint32_t prog, nprog; /* the residual compiled, in pins */
};

/* Compiled conditions: a pre-order array where each instruction knows the
 * size of its subtree, so that a campaign's whole test sits in a few cache
 * lines next to its candidate header. Strings compared against constants
 * use per-path string ids, computed once per event and path. */
enum {
	I_ALL,     /* v.u[0] kids follow */
	I_ANY,     /* v.u[0] kids follow */
	I_NOT,     /* one kid follows */
	I_EXISTS,  /* path present and not null */
	I_NEXISTS, /* path absent or null */
	I_SEQ,     /* string with id v.u[0] */
	I_SNE,     /* string other than id v.u[0] */
	I_SIN,     /* string whose id is in mask v.mask */
	I_SNOTIN,  /* string whose id is not in mask v.mask */
	I_NLT,     /* number < v.num, and so on */
	I_NLE,
	I_NGT,
	I_NGE,
	I_NEQ,
	I_NNE,
	I_PREFIX, /* string starting with the aux bytes of v.b */
	I_PFX,    /* string starting with the path's prefix number v.u[0] */
	I_NODE,   /* anything else: the node v.u[0], evaluated from the tree */
};

struct ins {
	uint8_t op;
	uint8_t aux;
	uint16_t size; /* instructions in this subtree, itself included */
	uint32_t path;
	union {
		double num;
		uint64_t mask;
		uint32_t u[2];
		char b[8];
	} v;
};

/* A candidate in a list: the campaign (by its rank within the bucket, so
 * that hits sort over a few words of bitmap), its jq slot, then what it
 * needs of: the threshold (range lists), the window, and its compiled
 * residual. Most campaigns fit a cache line. */
struct cblk {
	uint32_t local; /* rank within the bucket (id order) */
	int32_t jq;
	uint16_t nins;  /* instructions at the end */
	uint16_t flags; /* B_* */
	uint32_t words; /* size of the whole block in 8-byte words */
};

enum {
	B_STRICT = 1, /* range lists: gt / lt rather than gte / lte */
	B_MULTI = 2,  /* listed under several keys: skip when already a hit */
	B_RANGE = 4,  /* a double threshold follows the header */
	B_WINDOW = 8, /* int64 start and end (ms) follow */
};

/* The parts of a block after its header. */
static inline double blk_t(const struct cblk *b)
{
	return *(const double *)(b + 1);
}

/* The window of a block with B_WINDOW: start, end. */
static inline const int64_t *blk_window(const struct cblk *b)
{
	return (const int64_t *)((const char *)(b + 1) + (b->flags & B_RANGE ? 8 : 0));
}

/* The first instruction of a block's residual. */
static inline const struct ins *blk_ins(const struct cblk *b)
{
	return (const struct ins *)((const char *)(b + 1) + (b->flags & B_RANGE ? 8 : 0) +
	                            (b->flags & B_WINDOW ? 16 : 0));
}

enum { P_EQ, P_PREFIX, P_LOWER, P_UPPER };

struct probe {
	uint8_t kind;
	uint32_t path;
	uint32_t plen;
	uint32_t sidbase;    /* P_EQ: the lists of string keys, by id, in sidlists */
	uint32_t begin, end; /* P_LOWER (ascending t) / P_UPPER (descending t): in code */
};

struct bucket {
	uint32_t begin, end; /* campaigns without a key: in code */
	uint32_t probes, nprobes;
	uint32_t ids, nmem; /* the members' ids in local rank order: in bids */
};

/* An entry of the key table: a probe, a value and its candidate list. */
struct kent {
	uint64_t h;
	uint32_t probe;
	uint32_t cls;
	double num;
	uint32_t off, len;
	uint32_t begin, end; /* in code; end 0: empty slot */
};

struct tent {
	uint64_t h;
	uint32_t off, len;
	uint32_t bucket; /* NONE: empty slot */
};

/* An entry of the string id table: a string constant on a path. */
struct sent {
	uint64_t h;
	uint32_t path;
	uint32_t off, len;
	uint32_t sid; /* 0: empty slot */
};

/* A cached jv of an object key. */
struct kjv {
	uint64_t h;
	jv key;
	uint8_t used, len;
	char text[48];
};

/* A path's value in the current event, filled lazily. */
struct pval {
	uint32_t gen;
	uint32_t tok;
	uint8_t cls;
	uint8_t numok, strok, sidok, pfxok;
	uint32_t sid;
	uint64_t pfx; /* bit k: starts with the path's prefix k */
	double num;
	uint32_t soff, slen;
};

struct cm_ruleset {
	struct camp *camps;
	uint32_t ncamp, campcap;
	struct cm_buf pool;
	struct node *nodes;
	uint32_t nnode, nodecap;
	uint32_t *kids;
	uint32_t nkid, kidcap;
	struct rval *vals;
	uint32_t nval, valcap;
	struct cval *cvals;
	uint32_t ncval, cvalcap;
	struct inset *sets;
	uint32_t nset, setcap;
	double *setnums;
	uint32_t nsetnum, setnumcap;
	struct sref *setstrs;
	uint32_t nsetstr, setstrcap;
	struct sref *typerefs;
	uint32_t ntyperef, typerefcap;
	pcre2_code **res;
	uint32_t nre, recap;
	uint8_t *rejit;
	struct pnode *paths;
	uint32_t npath, pathcap;
	uint32_t *ptab; /* path intern table: index + 1 */
	uint32_t ptabcap;
	char **sources;
	uint32_t nsrc, srccap;
	uint32_t *idtab; /* id table: camp index + 1 */
	uint32_t idtabcap, nids;
	struct cm_jqx *jqx;
	char **slotbad;
	uint32_t nslotbad;
	int problems;
	int compiled;

	/* The matcher. */
	struct act *act;
	uint32_t nact;
	struct bucket *buckets;
	uint32_t nbucket;
	struct tent *tmap;
	uint32_t tmapcap;
	struct probe *probes;
	uint32_t nprobe, probecap;
	struct kent *keys;
	uint32_t keycap;
	uint64_t *code; /* candidate blocks, in 8-byte words */
	uint32_t ncode, codecap;
	struct ins *pins; /* residual programs while building */
	uint32_t npins, pinscap;
	struct sent *sids;
	uint32_t sidcap, nsid;
	uint32_t *sidlists; /* pairs begin, end per (P_EQ probe, string id) */
	uint32_t nsidlists;
	uint32_t *pathsids; /* per path: string ids given so far */
	struct sref *pfx;   /* starts_with prefixes, grouped by path */
	uint32_t npfx, pfxcap;
	uint32_t *pathpfx; /* per path: first prefix in pfx (count in pathnpfx) */
	uint8_t *pathnpfx;

	/* Per-event scratch. */
	const struct cm_jdoc *doc;
	struct pval *pc;
	uint32_t gen;
	struct cm_buf arena;
	struct cm_buf tmp;
	uint32_t *hits;
	uint32_t nhits;
	uint64_t *hitbits; /* by local rank */
	int64_t *bids;     /* each bucket's member ids */
	uint32_t nbids;
	const struct bucket *cur; /* the bucket of the event being matched */
	int64_t *ids;
	jv ev;
	int have_ev;
	struct kjv *kjv; /* key cache for building event jvs */
	uint32_t kjvcap, nkjv;
	uint32_t *slotgen;
	uint8_t *slotres;
	pcre2_match_data *md;
	pcre2_match_context *mctx;
	pcre2_jit_stack *jstack;
	unsigned long long jq_errors;
	cm_rule_jqerrfn *on_jq;
	void *on_jq_ctx;
};

/* ---- small helpers ---- */

/* Grows an array of elsize-byte elements so that it holds need elements;
 * -1 when memory is out or the count would overflow. */
static int grow_array(void **p, uint32_t *cap, uint32_t need, size_t elsize)
{
	uint32_t c = *cap ? *cap : 8;
	void *q;

	if (need <= *cap)
		return 0;
	if (need > UINT32_MAX / 2)
		return -1;
	while (c < need)
		c *= 2;
	q = realloc(*p, (size_t)c * elsize);
	if (!q)
		return -1;
	*p = q;
	*cap = c;
	return 0;
}

#define PUSH(arr, n, cap, val)                                                                     \
	(grow_array((void **)&(arr), &(cap), (n) + 1, sizeof(*(arr))) < 0                          \
	     ? -1                                                                                  \
	     : ((arr)[(n)++] = (val), 0))

/* A fast hash for short strings (keys, types, values), 8 bytes at a time. */
static uint64_t hash_bytes(const char *s, size_t n, uint64_t seed)
{
	uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ULL);

	while (n >= 8) {
		uint64_t w;

		memcpy(&w, s, 8);
		h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
		h ^= h >> 31;
		s += 8;
		n -= 8;
	}
	if (n) {
		uint64_t w = 0;

		memcpy(&w, s, n);
		h = (h ^ w) * 0x94D049BB133111EBULL;
		h ^= h >> 29;
	}
	h *= 0xBF58476D1CE4E5B9ULL;
	return h ^ (h >> 32);
}

/* Mixes a 64-bit value into a hash. */
static uint64_t hash_u64(uint64_t x, uint64_t seed)
{
	x ^= seed;
	x ^= x >> 33;
	x *= 0xFF51AFD7ED558CCDULL;
	x ^= x >> 33;
	x *= 0xC4CEB9FE1A85EC53ULL;
	return x ^ (x >> 33);
}

/* The hash of a number key: -0 and 0 are the same number. */
static uint64_t hash_num(double v, uint64_t seed)
{
	uint64_t bits;

	if (v == 0)
		v = 0;
	memcpy(&bits, &v, sizeof(bits));
	return hash_u64(bits, seed);
}

/* Copies bytes into the pool and returns their offset, NONE on failure. */
static uint32_t pool_add(struct cm_ruleset *s, const char *p, size_t n)
{
	size_t off = s->pool.len;

	if (off + n >= UINT32_MAX / 2 || cm_buf_add(&s->pool, p, n) < 0)
		return NONE;
	return (uint32_t)off;
}

/* Bytes at a pool offset (offsets survive the pool growing). */
static inline const char *pool_at(const struct cm_ruleset *s, uint32_t off)
{
	return s->pool.data + off;
}

/* The comparison class of a JSON token type (true and false are one). */
static int cls_of_type(uint8_t t)
{
	switch (t) {
	case CM_JTRUE:
	case CM_JFALSE:
		return C_BOOL;
	case CM_JNUM:
		return C_NUM;
	case CM_JSTR:
		return C_STR;
	case CM_JARR:
		return C_ARR;
	case CM_JOBJ:
		return C_OBJ;
	default:
		return C_NONE;
	}
}

/* Orders strings by bytes, the shorter first on a common prefix (the order of
 * lt/gt on strings). */
static int bytes_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);

	if (c)
		return c;
	return an < bn ? -1 : an > bn;
}

/* ---- the set ---- */

/* Makes an empty set. */
struct cm_ruleset *cm_ruleset_new(void)
{
	struct cm_ruleset *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	cm_buf_init(&s->pool, 0);
	cm_buf_init(&s->arena, 0);
	cm_buf_init(&s->tmp, 0);
	s->jqx = cm_jqx_new();
	if (!s->jqx || cm_buf_add(&s->pool, "", 1) < 0) {
		cm_ruleset_free(s);
		return NULL;
	}
	return s;
}

/* Frees the set and everything it compiled. */
void cm_ruleset_free(struct cm_ruleset *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->ncval; i++) {
		cm_jdoc_release(&s->cvals[i].doc);
		free(s->cvals[i].text);
	}
	for (uint32_t i = 0; i < s->nre; i++)
		pcre2_code_free(s->res[i]);
	for (uint32_t i = 0; i < s->nsrc; i++)
		free(s->sources[i]);
	for (uint32_t i = 0; i < s->nslotbad; i++)
		free(s->slotbad[i]);
	if (s->have_ev)
		jv_free(s->ev);
	for (uint32_t i = 0; i < s->kjvcap; i++)
		if (s->kjv[i].used)
			jv_free(s->kjv[i].key);
	free(s->kjv);
	pcre2_match_data_free(s->md);
	pcre2_match_context_free(s->mctx);
	pcre2_jit_stack_free(s->jstack);
	cm_jqx_free(s->jqx);
	cm_buf_release(&s->pool);
	cm_buf_release(&s->arena);
	cm_buf_release(&s->tmp);
	free(s->camps);
	free(s->nodes);
	free(s->kids);
	free(s->vals);
	free(s->cvals);
	free(s->sets);
	free(s->setnums);
	free(s->setstrs);
	free(s->typerefs);
	free(s->res);
	free(s->rejit);
	free(s->paths);
	free(s->ptab);
	free(s->sources);
	free(s->idtab);
	free(s->slotbad);
	free(s->act);
	free(s->buckets);
	free(s->tmap);
	free(s->probes);
	free(s->keys);
	free(s->code);
	free(s->pins);
	free(s->sids);
	free(s->pathsids);
	free(s->sidlists);
	free(s->pfx);
	free(s->pathpfx);
	free(s->pathnpfx);
	free(s->hitbits);
	free(s->bids);
	free(s->pc);
	free(s->hits);
	free(s->ids);
	free(s->slotgen);
	free(s->slotres);
	free(s);
}

/* Campaigns loaded, any status. */
size_t cm_ruleset_count(const struct cm_ruleset *s)
{
	return s->ncamp;
}
/* Active campaigns in the matcher. */
size_t cm_ruleset_active(const struct cm_ruleset *s)
{
	return s->nact;
}
/* jq runtime errors counted so far. */
unsigned long long cm_ruleset_jq_errors(const struct cm_ruleset *s)
{
	return s->jq_errors;
}

/* Installs the jq runtime error callback. */
void cm_ruleset_on_jq_error(struct cm_ruleset *s, cm_rule_jqerrfn *fn, void *ctx)
{
	s->on_jq = fn;
	s->on_jq_ctx = ctx;
}

/* ---- loading: problems ---- */

/* What a campaign being loaded needs: where it came from (for messages) and
 * the JSON path of the part being looked at. */
struct lctx {
	struct cm_ruleset *s;
	const struct cm_jdoc *d;
	cm_rule_reportfn *report;
	void *ctx;
	const char *source;
	unsigned long line;
	int64_t id;
	uint32_t pos;
	int bare;
	unsigned flags;
	int nprob;
	int oom;
	struct cm_buf path;
	struct cm_buf msg;
};

/* Makes a message one printable line: texts from the input (an operator
 * written with a newline, say) may hold control bytes. */
static void one_line(char *m)
{
	for (; *m; m++)
		if ((unsigned char)*m < 0x20 || *m == 0x7f)
			*m = '?';
}

/* Reports one problem at the current path, with the campaign's label. */
static void __attribute__((format(printf, 2, 3))) problem(struct lctx *lc, const char *fmt, ...)
{
	char text[600];
	va_list ap;
	struct cm_buf *m = &lc->msg;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	lc->nprob++;
	cm_buf_reset(m);
	if (!lc->bare) {
		if (lc->source && lc->line)
			cm_buf_addf(m, "%s:%lu: ", lc->source, lc->line);
		else if (lc->source)
			cm_buf_addf(m, "%s: ", lc->source);
		if (lc->id > 0)
			cm_buf_addf(m, "campaign %lld: ", (long long)lc->id);
		else
			cm_buf_addf(m, "campaign #%u: ", lc->pos);
	}
	if (lc->path.len)
		cm_buf_addf(m, "%s: ", lc->path.data);
	cm_buf_adds(m, text);
	one_line(m->data ? m->data : text);
	if (lc->report)
		lc->report(lc->ctx, m->data ? m->data : text);
}

/* Appends ".name" (or "name" at the start) to the path; returns the old
 * length for path_pop. Names are cut and made printable. */
static size_t path_key(struct lctx *lc, const char *name, size_t n)
{
	size_t mark = lc->path.len, lim = n < 64 ? n : 64;

	if (mark)
		cm_buf_addc(&lc->path, '.');
	for (const char *p = name; p < name + lim; p++) {
		unsigned char c = (unsigned char)*p;

		cm_buf_addc(&lc->path, c < 0x20 || c == 0x7f ? '?' : (char)c);
	}
	return mark;
}

/* Appends "[i]" to the path. */
static size_t path_index(struct lctx *lc, uint32_t i)
{
	size_t mark = lc->path.len;

	cm_buf_addf(&lc->path, "[%u]", i);
	return mark;
}

/* Cuts the path back to what it was at mark. */
static void path_pop(struct lctx *lc, size_t mark)
{
	lc->path.len = mark;
	if (lc->path.data)
		lc->path.data[mark] = 0;
}

/* Decoded bytes of string token t, in the set's scratch (valid until the
 * next call). */
static const char *tok_str(struct lctx *lc, uint32_t t, size_t *n)
{
	const char *p = cm_json_str(lc->d, t, &lc->s->tmp, n);

	if (!p) {
		lc->oom = 1;
		*n = 0;
		return "";
	}
	return p;
}

/* The kind of value at token t, for messages ("a string"). */
static const char *type_word(const struct cm_jdoc *d, uint32_t t)
{
	switch (d->tok[t].type) {
	case CM_JNULL:
		return "null";
	case CM_JTRUE:
	case CM_JFALSE:
		return "a boolean";
	case CM_JNUM:
		return "a number";
	case CM_JSTR:
		return "a string";
	case CM_JARR:
		return "an array";
	default:
		return "an object";
	}
}

/* ---- loading: paths ---- */

/* Interns one path segment below parent and returns its index. */
static uint32_t intern_seg(struct cm_ruleset *s, uint32_t parent, const char *name, size_t n)
{
	uint64_t h = hash_bytes(name, n, (uint64_t)parent * 0x9E3779B97F4A7C15ULL + 1);
	uint32_t i;
	struct pnode *p;

	if ((s->npath + 1) * 2 > s->ptabcap) {
		uint32_t cap = s->ptabcap ? s->ptabcap * 2 : 64;
		uint32_t *tab = calloc(cap, sizeof(*tab));

		if (!tab)
			return NONE;
		for (uint32_t k = 0; k < s->npath; k++) {
			i = (uint32_t)s->paths[k].hash & (cap - 1);
			while (tab[i])
				i = (i + 1) & (cap - 1);
			tab[i] = k + 1;
		}
		free(s->ptab);
		s->ptab = tab;
		s->ptabcap = cap;
	}
	for (i = (uint32_t)h & (s->ptabcap - 1); s->ptab[i]; i = (i + 1) & (s->ptabcap - 1)) {
		p = &s->paths[s->ptab[i] - 1];
		if (p->hash == h && p->parent == parent && p->len == n &&
		    memcmp(pool_at(s, p->off), name, n) == 0)
			return s->ptab[i] - 1;
	}
	if (grow_array((void **)&s->paths, &s->pathcap, s->npath + 1, sizeof(*s->paths)) < 0)
		return NONE;
	p = &s->paths[s->npath];
	p->off = pool_add(s, name, n);
	if (p->off == NONE)
		return NONE;
	p->parent = parent;
	p->len = (uint32_t)n;
	p->hash = h;
	p->index = -1;
	if (n > 0 && n <= 10) {
		int64_t v = 0;
		size_t k;

		for (k = 0; k < n && name[k] >= '0' && name[k] <= '9'; k++)
			v = v * 10 + (name[k] - '0');
		if (k == n && (n == 1 || name[0] != '0') && v < UINT32_MAX)
			p->index = v;
	}
	s->ptab[i] = s->npath + 1;
	return s->npath++;
}

/* Checks and interns a dot path; reports a problem and returns NONE when it
 * is empty or has an empty segment. */
static uint32_t intern_path(struct lctx *lc, const char *p, size_t n)
{
	uint32_t parent = NONE;
	size_t start = 0;

	if (n == 0) {
		problem(lc, "empty path (expected a dot path such as properties.amount)");
		return NONE;
	}
	if (n > MAX_PATH_LEN) {
		problem(lc, "path longer than %d bytes", MAX_PATH_LEN);
		return NONE;
	}
	for (size_t i = 0; i <= n; i++) {
		if (i < n && p[i] != '.')
			continue;
		if (i == start) {
			problem(lc,
			        "empty segment in path \"%.*s\" (expected a dot path such as "
			        "properties.amount)",
			        (int)n, p);
			return NONE;
		}
		parent = intern_seg(lc->s, parent, p + start, i - start);
		if (parent == NONE) {
			lc->oom = 1;
			return NONE;
		}
		start = i + 1;
	}
	return parent;
}

/* ---- loading: values ---- */

/* Turns token t (not null) into a constant; NONE when memory is out. */
static uint32_t add_val(struct lctx *lc, uint32_t t)
{
	struct cm_ruleset *s = lc->s;
	const struct cm_jdoc *d = lc->d;
	struct rval v;

	memset(&v, 0, sizeof(v));
	v.cls = (uint8_t)cls_of_type(d->tok[t].type);
	v.cv = NONE;
	switch (v.cls) {
	case C_BOOL:
		v.b = d->tok[t].type == CM_JTRUE;
		break;
	case C_NUM:
		v.num = cm_json_num(d, t);
		break;
	case C_STR: {
		size_t n;
		const char *p = tok_str(lc, t, &n);

		v.off = pool_add(s, p, n);
		v.len = (uint32_t)n;
		if (v.off == NONE)
			goto oom;
		break;
	}
	default: {
		struct cm_buf text = CM_BUF_INIT;
		struct cval c;
		struct cm_err err;

		cm_buf_init(&text, 0);
		if (cm_json_write(d, t, &text) < 0 ||
		    grow_array((void **)&s->cvals, &s->cvalcap, s->ncval + 1, sizeof(*s->cvals)) <
		        0) {
			cm_buf_release(&text);
			goto oom;
		}
		c.text = text.data;
		cm_jdoc_init(&c.doc, DOC_DEPTH);
		if (cm_json_parse(&c.doc, c.text, text.len, &err) < 0) {
			cm_jdoc_release(&c.doc);
			free(c.text);
			goto oom;
		}
		v.cv = s->ncval;
		s->cvals[s->ncval++] = c;
		break;
	}
	}
	if (PUSH(s->vals, s->nval, s->valcap, v) < 0)
		goto oom;
	return s->nval - 1;
oom:
	lc->oom = 1;
	return NONE;
}

/* Orders doubles for qsort. */
static int num_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Orders strings of a set by length, then bytes (arg: the set). */
static int sref_cmp(const void *a, const void *b, void *arg)
{
	const struct sref *x = a, *y = b;
	const struct cm_ruleset *s = arg;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(pool_at(s, x->off), pool_at(s, y->off), x->len);
}

/* Builds the sorted set of an in / not_in array at token t; elements must
 * not be null. Returns the set index, or NONE after a problem. */
static uint32_t add_inset(struct lctx *lc, uint32_t t)
{
	struct cm_ruleset *s = lc->s;
	const struct cm_jdoc *d = lc->d;
	struct inset set;
	uint32_t e = t + 1, bad = 0;

	memset(&set, 0, sizeof(set));
	set.nums = s->nsetnum;
	set.strs = s->nsetstr;
	set.cplx = s->nval;
	for (uint32_t i = 0; i < d->tok[t].count; i++, e = d->tok[e].next) {
		int cls = cls_of_type(d->tok[e].type);

		if (cls == C_NONE) {
			size_t mark = path_index(lc, i);

			problem(lc, "null means missing: use exists/not_exists");
			path_pop(lc, mark);
			bad = 1;
			continue;
		}
		set.classes |= (uint8_t)(1u << cls);
		set.total++;
		if (cls == C_NUM) {
			double v = cm_json_num(d, e);

			if (PUSH(s->setnums, s->nsetnum, s->setnumcap, v) < 0)
				goto oom;
		} else if (cls == C_STR) {
			size_t n;
			const char *p = tok_str(lc, e, &n);
			struct sref r = {pool_add(s, p, n), (uint32_t)n};

			if (r.off == NONE || PUSH(s->setstrs, s->nsetstr, s->setstrcap, r) < 0)
				goto oom;
		} else if (cls == C_BOOL) {
			if (d->tok[e].type == CM_JTRUE)
				set.has_true = 1;
			else
				set.has_false = 1;
		}
	}
	/* Complex elements after the scalars, so that their values are
	 * contiguous. */
	e = t + 1;
	for (uint32_t i = 0; i < d->tok[t].count; i++, e = d->tok[e].next) {
		int cls = cls_of_type(d->tok[e].type);

		if ((cls == C_ARR || cls == C_OBJ) && add_val(lc, e) == NONE)
			goto oom;
	}
	if (bad)
		return NONE;
	set.ncplx = s->nval - set.cplx;
	set.nnum = s->nsetnum - set.nums;
	set.nstr = s->nsetstr - set.strs;
	if (set.nnum > 1)
		qsort(s->setnums + set.nums, set.nnum, sizeof(double), num_cmp);
	if (set.nstr > 1)
		qsort_r(s->setstrs + set.strs, set.nstr, sizeof(struct sref), sref_cmp, s);
	/* Drop duplicates (1 and 1.0 are one number). */
	if (set.nnum > 1) {
		uint32_t k = 1;

		for (uint32_t i = 1; i < set.nnum; i++)
			if (s->setnums[set.nums + i] != s->setnums[set.nums + k - 1])
				s->setnums[set.nums + k++] = s->setnums[set.nums + i];
		s->nsetnum = set.nums + k;
		set.nnum = k;
	}
	if (set.nstr > 1) {
		uint32_t k = 1;

		for (uint32_t i = 1; i < set.nstr; i++)
			if (sref_cmp(&s->setstrs[set.strs + i], &s->setstrs[set.strs + k - 1], s) !=
			    0)
				s->setstrs[set.strs + k++] = s->setstrs[set.strs + i];
		s->nsetstr = set.strs + k;
		set.nstr = k;
	}
	if (PUSH(s->sets, s->nset, s->setcap, set) < 0)
		goto oom;
	return s->nset - 1;
oom:
	lc->oom = 1;
	return NONE;
}

/* Compiles a regular expression for a matches leaf; reports a pattern that
 * does not compile with its offset. */
static uint32_t add_regex(struct lctx *lc, uint32_t t)
{
	struct cm_ruleset *s = lc->s;
	size_t n, erroff;
	const char *p = tok_str(lc, t, &n);
	int errcode;
	pcre2_code *re;

	re = pcre2_compile((PCRE2_SPTR)p, n, PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &errcode, &erroff,
	                   NULL);
	if (!re) {
		PCRE2_UCHAR msg[256];

		if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0)
			strcpy((char *)msg, "unknown error");
		problem(lc, "invalid regular expression at offset %zu: %s", erroff, (char *)msg);
		return NONE;
	}
	if (grow_array((void **)&s->res, &s->recap, s->nre + 1, sizeof(*s->res)) < 0) {
		pcre2_code_free(re);
		lc->oom = 1;
		return NONE;
	}
	{
		uint8_t *j = realloc(s->rejit, s->recap);

		if (!j) {
			pcre2_code_free(re);
			lc->oom = 1;
			return NONE;
		}
		s->rejit = j;
	}
	s->rejit[s->nre] = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
	s->res[s->nre] = re;
	return s->nre++;
}

/* ---- loading: conditions ---- */

static uint32_t add_node(struct lctx *lc, struct node n)
{
	if (PUSH(lc->s->nodes, lc->s->nnode, lc->s->nodecap, n) < 0) {
		lc->oom = 1;
		return NONE;
	}
	return lc->s->nnode - 1;
}

/* The estimated cost of evaluating a node, so that an all/any tries cheap
 * conditions first. */
static uint16_t leaf_cost(const struct cm_ruleset *s, const struct node *n)
{
	switch (n->op) {
	case OP_EXISTS:
	case OP_NOT_EXISTS:
		return 1;
	case OP_EQ:
	case OP_NE:
	case OP_LT:
	case OP_LTE:
	case OP_GT:
	case OP_GTE: {
		int cls = s->vals[n->a].cls;

		return cls == C_NUM || cls == C_BOOL ? 2 : cls == C_STR ? 3 : 10;
	}
	case OP_STARTS_WITH:
		return 3;
	case OP_IN:
	case OP_NOT_IN:
		return 4;
	case OP_CONTAINS:
		return 8;
	default:
		return 20;
	}
}

/* Orders kids by cost, then by position (arg: the node array). */
static int kid_cmp(const void *a, const void *b, void *arg)
{
	const struct node *nodes = arg;
	const struct node *x = &nodes[*(const uint32_t *)a];
	const struct node *y = &nodes[*(const uint32_t *)b];

	if (x->cost != y->cost)
		return x->cost < y->cost ? -1 : 1;
	return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

static uint32_t build_node(struct lctx *lc, uint32_t t, unsigned depth);

/* Builds an all / any node from the array at token t. */
static uint32_t build_list(struct lctx *lc, uint32_t t, int kind, unsigned depth)
{
	struct cm_ruleset *s = lc->s;
	const struct cm_jdoc *d = lc->d;
	uint32_t n = d->tok[t].count, e = t + 1, *tmp = NULL, ok = 1, cost = 1;
	struct node nd;

	if (d->tok[t].type != CM_JARR) {
		problem(lc, "expected an array of conditions, not %s", type_word(d, t));
		return NONE;
	}
	if (n) {
		tmp = malloc(n * sizeof(*tmp));
		if (!tmp) {
			lc->oom = 1;
			return NONE;
		}
	}
	for (uint32_t i = 0; i < n; i++, e = d->tok[e].next) {
		size_t mark = path_index(lc, i);

		tmp[i] = build_node(lc, e, depth + 1);
		path_pop(lc, mark);
		if (tmp[i] == NONE)
			ok = 0;
		else
			cost += s->nodes[tmp[i]].cost;
	}
	if (!ok) {
		free(tmp);
		return NONE;
	}
	if (n > 1)
		qsort_r(tmp, n, sizeof(*tmp), kid_cmp, s->nodes);
	memset(&nd, 0, sizeof(nd));
	nd.kind = (uint8_t)kind;
	nd.a = s->nkid;
	nd.n = n;
	nd.cost = (uint16_t)(cost > 1000 ? 1000 : cost);
	for (uint32_t i = 0; i < n; i++)
		if (PUSH(s->kids, s->nkid, s->kidcap, tmp[i]) < 0) {
			lc->oom = 1;
			free(tmp);
			return NONE;
		}
	free(tmp);
	return add_node(lc, nd);
}

/* Builds a leaf {"field","op","value"} whose members are at the tokens
 * given (NONE when absent). */
static uint32_t build_leaf(struct lctx *lc, uint32_t tf, uint32_t top, uint32_t tv)
{
	const struct cm_jdoc *d = lc->d;
	struct node nd;
	int op = -1, ok = 1;
	size_t mark, n;
	const char *p;

	memset(&nd, 0, sizeof(nd));
	nd.kind = K_LEAF;
	nd.path = NONE;
	mark = path_key(lc, "field", 5);
	if (tf == NONE) {
		problem(lc, "missing (expected a dot path such as properties.amount)");
		ok = 0;
	} else if (d->tok[tf].type != CM_JSTR) {
		problem(lc, "expected a string (a dot path such as properties.amount), not %s",
		        type_word(d, tf));
		ok = 0;
	} else {
		p = tok_str(lc, tf, &n);
		nd.path = intern_path(lc, p, n);
		if (nd.path == NONE)
			ok = 0;
	}
	path_pop(lc, mark);

	mark = path_key(lc, "op", 2);
	if (top == NONE) {
		problem(lc, "missing (expected one of " OP_LIST ")");
		ok = 0;
	} else if (d->tok[top].type != CM_JSTR) {
		problem(lc, "expected a string (one of " OP_LIST "), not %s", type_word(d, top));
		ok = 0;
	} else {
		p = tok_str(lc, top, &n);
		for (int i = 0; i < OP_COUNT; i++)
			if (strlen(op_names[i]) == n && memcmp(op_names[i], p, n) == 0)
				op = i;
		if (op < 0) {
			problem(lc, "unknown operator \"%.*s\" (expected one of " OP_LIST ")",
			        (int)(n > 40 ? 40 : n), p);
			ok = 0;
		}
	}
	path_pop(lc, mark);
	if (op < 0) {
		/* The value cannot be judged without an operator, but it still
		 * must not be null-free garbage; nothing more to say. */
		return NONE;
	}
	nd.op = (uint8_t)op;

	mark = path_key(lc, "value", 5);
	if (op == OP_EXISTS || op == OP_NOT_EXISTS) {
		if (tv != NONE) {
			problem(lc, "not allowed with %s", op_names[op]);
			ok = 0;
		}
		goto done;
	}
	if (tv == NONE) {
		problem(lc, "missing (operator %s needs a value)", op_names[op]);
		ok = 0;
		goto done;
	}
	if (d->tok[tv].type == CM_JNULL) {
		problem(lc, "null means missing: use exists/not_exists");
		ok = 0;
		goto done;
	}
	switch (op) {
	case OP_LT:
	case OP_LTE:
	case OP_GT:
	case OP_GTE:
		if (d->tok[tv].type != CM_JNUM && d->tok[tv].type != CM_JSTR) {
			problem(lc, "expected a number or a string for %s, not %s", op_names[op],
			        type_word(d, tv));
			ok = 0;
		} else if (ok) {
			nd.a = add_val(lc, tv);
		}
		break;
	case OP_IN:
	case OP_NOT_IN:
		if (d->tok[tv].type != CM_JARR) {
			problem(lc, "expected an array for %s, not %s", op_names[op],
			        type_word(d, tv));
			ok = 0;
		} else {
			nd.a = add_inset(lc, tv);
			if (nd.a == NONE)
				ok = 0;
		}
		break;
	case OP_STARTS_WITH:
	case OP_MATCHES:
		if (d->tok[tv].type != CM_JSTR) {
			problem(lc, "expected a string for %s, not %s", op_names[op],
			        type_word(d, tv));
			ok = 0;
		} else if (op == OP_MATCHES) {
			nd.a = add_regex(lc, tv);
			if (nd.a == NONE)
				ok = 0;
		} else if (ok) {
			nd.a = add_val(lc, tv);
		}
		break;
	default:
		if (ok)
			nd.a = add_val(lc, tv);
		break;
	}
done:
	path_pop(lc, mark);
	if (!ok || lc->oom)
		return NONE;
	nd.cost = leaf_cost(lc->s, &nd);
	return add_node(lc, nd);
}

/* Builds the condition node at token t (at the current path), reporting
 * every problem inside it; returns NONE if there was any. */
static uint32_t build_node(struct lctx *lc, uint32_t t, unsigned depth)
{
	const struct cm_jdoc *d = lc->d;
	uint32_t tall = NONE, tany = NONE, tnot = NONE, tf = NONE, top = NONE, tv = NONE;
	uint32_t i = t + 1;
	int forms, ok = 1;

	if (depth > CM_RULE_MAX_DEPTH) {
		problem(lc, "conditions nested deeper than %d levels", CM_RULE_MAX_DEPTH);
		return NONE;
	}
	if (d->tok[t].type != CM_JOBJ) {
		problem(lc, "expected a condition object, not %s", type_word(d, t));
		return NONE;
	}
	for (uint32_t m = d->tok[t].count; m; m--, i = d->tok[i + 1].next) {
		size_t n;
		const char *k = tok_str(lc, i, &n);

#define IS(lit) (n == sizeof(lit) - 1 && memcmp(k, lit, n) == 0)
		if (IS("all"))
			tall = i + 1;
		else if (IS("any"))
			tany = i + 1;
		else if (IS("not"))
			tnot = i + 1;
		else if (IS("field"))
			tf = i + 1;
		else if (IS("op"))
			top = i + 1;
		else if (IS("value"))
			tv = i + 1;
		else {
			size_t mark = path_key(lc, k, n);

			problem(lc, "unknown key (a condition has all, any, not, or field, op and "
			            "value)");
			path_pop(lc, mark);
			ok = 0;
		}
#undef IS
	}
	forms = (tall != NONE) + (tany != NONE) + (tnot != NONE) +
	        (tf != NONE || top != NONE || tv != NONE);
	if (forms != 1) {
		problem(lc, "a condition is exactly one of {\"all\":[...]}, {\"any\":[...]}, "
		            "{\"not\":{...}} or {\"field\":...,\"op\":...,\"value\":...}");
		return NONE;
	}
	if (tall != NONE || tany != NONE) {
		size_t mark = path_key(lc, tall != NONE ? "all" : "any", 3);
		uint32_t r =
		    build_list(lc, tall != NONE ? tall : tany, tall != NONE ? K_ALL : K_ANY, depth);

		path_pop(lc, mark);
		return ok ? r : NONE;
	}
	if (tnot != NONE) {
		size_t mark = path_key(lc, "not", 3);
		uint32_t c = build_node(lc, tnot, depth + 1);
		struct node nd;

		path_pop(lc, mark);
		if (c == NONE || !ok)
			return NONE;
		memset(&nd, 0, sizeof(nd));
		nd.kind = K_NOT;
		nd.a = c;
		nd.cost = lc->s->nodes[c].cost;
		return add_node(lc, nd);
	}
	{
		uint32_t r = build_leaf(lc, tf, top, tv);

		return ok ? r : NONE;
	}
}

/* ---- loading: campaigns ---- */

/* Checks one event type string at token t and stores it in typerefs. */
static int add_type(struct lctx *lc, uint32_t t)
{
	struct cm_ruleset *s = lc->s;
	size_t n;
	const char *p;
	struct sref r;

	if (lc->d->tok[t].type != CM_JSTR) {
		problem(lc, "expected an event type string, not %s", type_word(lc->d, t));
		return -1;
	}
	p = tok_str(lc, t, &n);
	if (!cm_event_type_ok(p, n)) {
		problem(lc,
		        "invalid event type \"%.*s\" (expected 1 to 64 bytes of "
		        "[A-Za-z0-9_.:-])",
		        (int)(n > 64 ? 64 : n), p);
		return -1;
	}
	r.off = pool_add(s, p, n);
	r.len = (uint32_t)n;
	if (r.off == NONE || PUSH(s->typerefs, s->ntyperef, s->typerefcap, r) < 0) {
		lc->oom = 1;
		return -1;
	}
	return 0;
}

/* Validates rule (token t) and fills c's types, where and jq. */
static void load_rule(struct lctx *lc, struct camp *c, uint32_t t)
{
	struct cm_ruleset *s = lc->s;
	const struct cm_jdoc *d = lc->d;
	uint32_t ttype = NONE, twhere = NONE, tjq = NONE, i = t + 1;

	if (d->tok[t].type != CM_JOBJ) {
		problem(lc, "expected an object with event_type, where and/or jq, not %s",
		        type_word(d, t));
		c->bad = 1;
		return;
	}
	for (uint32_t m = d->tok[t].count; m; m--, i = d->tok[i + 1].next) {
		size_t n;
		const char *k = tok_str(lc, i, &n);

		if (n == 10 && memcmp(k, "event_type", 10) == 0)
			ttype = i + 1;
		else if (n == 5 && memcmp(k, "where", 5) == 0)
			twhere = i + 1;
		else if (n == 2 && memcmp(k, "jq", 2) == 0)
			tjq = i + 1;
		else {
			size_t mark = path_key(lc, k, n);

			problem(lc, "unknown key (expected event_type, where or jq)");
			path_pop(lc, mark);
			c->bad = 1;
		}
	}
	if (ttype != NONE && d->tok[ttype].type != CM_JNULL) {
		size_t mark = path_key(lc, "event_type", 10);

		c->types = s->ntyperef;
		if (d->tok[ttype].type == CM_JARR) {
			uint32_t e = ttype + 1;

			if (d->tok[ttype].count == 0) {
				problem(lc, "empty array (omit event_type to match any type)");
				c->bad = 1;
			}
			for (uint32_t k = 0; k < d->tok[ttype].count; k++, e = d->tok[e].next) {
				size_t m2 = path_index(lc, k);

				if (add_type(lc, e) < 0)
					c->bad = 1;
				path_pop(lc, m2);
			}
		} else if (d->tok[ttype].type == CM_JSTR) {
			if (add_type(lc, ttype) < 0)
				c->bad = 1;
		} else {
			problem(lc, "expected a string or an array of strings, not %s",
			        type_word(d, ttype));
			c->bad = 1;
		}
		c->ntypes = s->ntyperef - c->types;
		path_pop(lc, mark);
	}
	if (twhere != NONE && d->tok[twhere].type != CM_JNULL) {
		size_t mark = path_key(lc, "where", 5);

		c->where = build_node(lc, twhere, 1);
		if (c->where == NONE)
			c->bad = 1;
		path_pop(lc, mark);
	}
	if (tjq != NONE && d->tok[tjq].type != CM_JNULL) {
		size_t mark = path_key(lc, "jq", 2);

		if (d->tok[tjq].type != CM_JSTR) {
			problem(lc, "expected a jq expression string, not %s", type_word(d, tjq));
			c->bad = 1;
		} else {
			struct cm_err err;
			size_t n;
			const char *p = tok_str(lc, tjq, &n);

			c->jq = cm_jqx_add(s->jqx, p, n, &err);
			if (c->jq < 0) {
				problem(lc, "%s", err.msg);
				c->bad = 1;
			}
		}
		path_pop(lc, mark);
	}
}

/* Parses a window bound: null/absent is open, else an RFC 3339 time. */
static int load_time(struct lctx *lc, uint32_t t, const char *key, int64_t *ms)
{
	size_t mark, n;
	const char *p;
	int rc = 0;

	if (t == NONE || lc->d->tok[t].type == CM_JNULL)
		return 0;
	mark = path_key(lc, key, strlen(key));
	if (lc->d->tok[t].type != CM_JSTR) {
		problem(lc, "expected null or an RFC 3339 time, not %s", type_word(lc->d, t));
		rc = -1;
	} else {
		p = tok_str(lc, t, &n);
		if (cm_time_parse(p, n, ms) < 0) {
			problem(lc,
			        "\"%.*s\" is not an RFC 3339 time (expected null or a time such "
			        "as 2026-11-27T10:15:00Z)",
			        (int)(n > 40 ? 40 : n), p);
			rc = -1;
		}
	}
	path_pop(lc, mark);
	return rc;
}

/* Reads an id token: an integer from 1 to 2^53 written without fraction or
 * exponent. Returns 0 when it is not one. */
static int64_t parse_id(const struct cm_jdoc *d, uint32_t t)
{
	const char *p = d->src + d->tok[t].off;
	uint32_t n = d->tok[t].len;
	int64_t v = 0;

	if (d->tok[t].type != CM_JNUM || n == 0 || n > 16)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return 0;
		v = v * 10 + (p[i] - '0');
	}
	return v >= 1 && v <= CM_RULE_MAX_ID ? v : 0;
}

/* Finds the campaign with id, or NONE; when add is set, records camp as
 * its holder if there was none. */
static uint32_t id_lookup(struct cm_ruleset *s, int64_t id, uint32_t camp, int add)
{
	uint32_t i;

	if (add && (s->nids + 1) * 2 > s->idtabcap) {
		uint32_t cap = s->idtabcap ? s->idtabcap * 2 : 64;
		uint32_t *tab = calloc(cap, sizeof(*tab));

		if (!tab)
			return NONE - 1;
		for (uint32_t k = 0; k < s->idtabcap; k++) {
			uint32_t c = s->idtab[k];

			if (!c)
				continue;
			i = (uint32_t)hash_u64((uint64_t)s->camps[c - 1].id, 7) & (cap - 1);
			while (tab[i])
				i = (i + 1) & (cap - 1);
			tab[i] = c;
		}
		free(s->idtab);
		s->idtab = tab;
		s->idtabcap = cap;
	}
	if (!s->idtabcap)
		return NONE;
	for (i = (uint32_t)hash_u64((uint64_t)id, 7) & (s->idtabcap - 1); s->idtab[i];
	     i = (i + 1) & (s->idtabcap - 1))
		if (s->camps[s->idtab[i] - 1].id == id)
			return s->idtab[i] - 1;
	if (add) {
		s->idtab[i] = camp + 1;
		s->nids++;
	}
	return NONE;
}

/* Remembers a source name for later messages (jq problems are found at
 * compile time) and returns its index. */
static uint32_t add_source(struct cm_ruleset *s, const char *source)
{
	char *copy;

	if (!source)
		return NONE;
	if (s->nsrc && strcmp(s->sources[s->nsrc - 1], source) == 0)
		return s->nsrc - 1;
	if (grow_array((void **)&s->sources, &s->srccap, s->nsrc + 1, sizeof(*s->sources)) < 0)
		return NONE - 1;
	copy = strdup(source);
	if (!copy)
		return NONE - 1;
	s->sources[s->nsrc++] = copy;
	return s->nsrc - 1;
}

/* Validates the campaign at token t and appends it (marked bad when it has
 * problems). */
static void load_campaign(struct lctx *lc, uint32_t t)
{
	struct cm_ruleset *s = lc->s;
	const struct cm_jdoc *d = lc->d;
	uint32_t tid = NONE, tname = NONE, tstatus = NONE, tstart = NONE, tend = NONE;
	uint32_t trule = NONE, i = t + 1;
	struct camp c;
	size_t n;
	const char *p;

	memset(&c, 0, sizeof(c));
	c.pos = lc->pos;
	c.line = lc->line;
	c.start = INT64_MIN;
	c.end = INT64_MAX;
	c.where = NONE;
	c.jq = -1;
	c.src = add_source(s, lc->source);
	if (c.src == NONE - 1) {
		lc->oom = 1;
		return;
	}
	lc->id = 0;
	path_pop(lc, 0);
	if (d->tok[t].type != CM_JOBJ) {
		problem(lc, "expected a campaign object, not %s", type_word(d, t));
		return;
	}
	for (uint32_t m = d->tok[t].count; m; m--, i = d->tok[i + 1].next) {
		p = tok_str(lc, i, &n);
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(p, lit, n) == 0)
		if (IS("id"))
			tid = i + 1;
		else if (IS("name"))
			tname = i + 1;
		else if (IS("status"))
			tstatus = i + 1;
		else if (IS("starts_at"))
			tstart = i + 1;
		else if (IS("ends_at"))
			tend = i + 1;
		else if (IS("rule"))
			trule = i + 1;
#undef IS
	}
	if (tid != NONE) {
		c.id = parse_id(d, tid);
		if (c.id == 0) {
			size_t mark = path_key(lc, "id", 2);

			problem(lc, "expected an integer from 1 to %lld",
			        (long long)CM_RULE_MAX_ID);
			path_pop(lc, mark);
			c.bad = 1;
		} else {
			uint32_t other = id_lookup(s, c.id, s->ncamp, 1);

			if (other == NONE - 1) {
				lc->oom = 1;
				return;
			}
			lc->id = c.id;
			if (other != NONE) {
				const struct camp *o = &s->camps[other];
				size_t mark = path_key(lc, "id", 2);

				if (o->line)
					problem(lc, "duplicate id (also campaign #%u, line %lu)",
					        o->pos, o->line);
				else
					problem(lc, "duplicate id (also campaign #%u)", o->pos);
				path_pop(lc, mark);
				c.bad = 1;
			}
		}
	} else if (!(lc->flags & CM_RULE_ID_OPTIONAL)) {
		size_t mark = path_key(lc, "id", 2);

		problem(lc, "missing (expected an integer from 1 to %lld)",
		        (long long)CM_RULE_MAX_ID);
		path_pop(lc, mark);
		c.bad = 1;
	}
	{
		size_t mark = path_key(lc, "name", 4);

		if (tname == NONE) {
			problem(lc, "missing (expected a string of 1 to %d bytes)", MAX_NAME_LEN);
			c.bad = 1;
		} else if (d->tok[tname].type != CM_JSTR) {
			problem(lc, "expected a string of 1 to %d bytes, not %s", MAX_NAME_LEN,
			        type_word(d, tname));
			c.bad = 1;
		} else {
			tok_str(lc, tname, &n);
			if (n < 1 || n > MAX_NAME_LEN) {
				problem(lc, "expected a string of 1 to %d bytes, not %zu bytes",
				        MAX_NAME_LEN, n);
				c.bad = 1;
			}
		}
		path_pop(lc, mark);
	}
	{
		size_t mark = path_key(lc, "status", 6);

		if (tstatus == NONE) {
			problem(lc, "missing (expected active, paused or archived)");
			c.bad = 1;
		} else if (d->tok[tstatus].type != CM_JSTR) {
			problem(lc, "expected active, paused or archived, not %s",
			        type_word(d, tstatus));
			c.bad = 1;
		} else {
			p = tok_str(lc, tstatus, &n);
			if (n == 6 && memcmp(p, "active", 6) == 0) {
				c.active = 1;
			} else if (!(n == 6 && memcmp(p, "paused", 6) == 0) &&
			           !(n == 8 && memcmp(p, "archived", 8) == 0)) {
				problem(lc,
				        "\"%.*s\" is not a status (expected active, paused or "
				        "archived)",
				        (int)(n > 40 ? 40 : n), p);
				c.bad = 1;
			}
		}
		path_pop(lc, mark);
	}
	if (load_time(lc, tstart, "starts_at", &c.start) < 0)
		c.bad = 1;
	if (load_time(lc, tend, "ends_at", &c.end) < 0)
		c.bad = 1;
	if (c.start != INT64_MIN && c.end != INT64_MAX && c.end <= c.start) {
		size_t mark = path_key(lc, "ends_at", 7);

		problem(lc, "must be after starts_at");
		path_pop(lc, mark);
		c.bad = 1;
	}
	if (trule == NONE) {
		size_t mark = path_key(lc, "rule", 4);

		problem(lc, "missing (expected an object with event_type, where and/or jq)");
		path_pop(lc, mark);
		c.bad = 1;
	} else {
		size_t mark = path_key(lc, "rule", 4);

		load_rule(lc, &c, trule);
		path_pop(lc, mark);
	}
	if (lc->oom)
		return;
	if (PUSH(s->camps, s->ncamp, s->campcap, c) < 0)
		lc->oom = 1;
}

/* Prepares a loading context; lc->path and lc->msg are released by
 * lctx_release. */
static void lctx_init(struct lctx *lc, struct cm_ruleset *s, cm_rule_reportfn *report, void *ctx,
                      const char *source)
{
	memset(lc, 0, sizeof(*lc));
	lc->s = s;
	lc->report = report;
	lc->ctx = ctx;
	lc->source = source;
	cm_buf_init(&lc->path, 4096);
	cm_buf_init(&lc->msg, 0);
}

/* Ends a loading context: adds its problems to the set's count (an out of
 * memory condition is reported once) and returns its problem count or -1. */
static int lctx_release(struct lctx *lc)
{
	int n = lc->nprob;

	if (lc->oom) {
		lc->pos = lc->pos ? lc->pos : 1;
		path_pop(lc, 0);
		problem(lc, "out of memory");
	}
	lc->s->problems += lc->nprob;
	cm_buf_release(&lc->path);
	cm_buf_release(&lc->msg);
	return lc->oom ? -1 : n;
}

/* Adds one campaign from an already parsed document. */
int cm_ruleset_add(struct cm_ruleset *s, const struct cm_jdoc *d, uint32_t v, const char *source,
                   unsigned long line, cm_rule_reportfn *report, void *ctx)
{
	struct lctx lc;

	lctx_init(&lc, s, report, ctx, source);
	lc.d = d;
	lc.line = line;
	lc.pos = s->ncamp + 1;
	if (s->compiled) {
		problem(&lc, "the set is already compiled");
	} else if (v >= d->ntok) {
		problem(&lc, "no such value");
	} else {
		load_campaign(&lc, v);
	}
	return lctx_release(&lc);
}

/* The line of byte off in text, counting from line0 at byte from. */
static unsigned long line_at(const char *text, size_t from, size_t off, unsigned long line0)
{
	const char *p = text + from, *e = text + off;

	while ((p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
		line0++;
		p++;
	}
	return line0;
}

/* Reports a JSON syntax error with the line it is on when the message gives
 * a byte offset ("byte 17: ..."). */
static void syntax_problem(struct lctx *lc, const char *text, size_t base, size_t len,
                           unsigned long line0, const struct cm_err *err)
{
	unsigned long long off = 0;
	const char *m = err->msg;

	if (strncmp(m, "byte ", 5) == 0) {
		char *end;

		off = strtoull(m + 5, &end, 10);
		if (end != m + 5 && off > 0 && off <= len)
			lc->line = line_at(text, base, base + (size_t)off - 1, line0);
	}
	lc->bare = 0;
	lc->id = -1;
	{
		/* Not about one campaign: no "campaign" label. */
		struct cm_buf *b = &lc->msg;

		cm_buf_reset(b);
		if (lc->source)
			cm_buf_addf(b, "%s:%lu: ", lc->source, lc->line);
		cm_buf_addf(b, "invalid JSON: %s", m);
		if (b->data)
			one_line(b->data);
		lc->nprob++;
		if (lc->report)
			lc->report(lc->ctx, b->data ? b->data : "invalid JSON");
	}
}

/* Loads a JSON array or NDJSON text of campaigns. */
int cm_ruleset_load(struct cm_ruleset *s, const char *text, size_t len, const char *source,
                    cm_rule_reportfn *report, void *ctx)
{
	struct lctx lc;
	struct cm_jdoc d;
	struct cm_err err;
	size_t i = 0;

	lctx_init(&lc, s, report, ctx, source);
	cm_jdoc_init(&d, DOC_DEPTH);
	lc.d = &d;
	lc.line = 1;
	if (s->compiled) {
		lc.pos = 1;
		problem(&lc, "the set is already compiled");
		goto out;
	}
	if (len > CM_RULE_MAX_TEXT) {
		lc.id = -1;
		cm_buf_addf(&lc.msg, "%s: larger than %u bytes", source ? source : "campaigns",
		            CM_RULE_MAX_TEXT);
		lc.nprob++;
		if (report)
			report(ctx, lc.msg.data);
		goto out;
	}
	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
		i++;
	if (i == len)
		goto out;
	if (text[i] == '[') {
		uint32_t e;
		size_t prev = 0;
		unsigned long line = 1;

		if (cm_json_parse(&d, text, len, &err) < 0) {
			syntax_problem(&lc, text, 0, len, 1, &err);
			goto out;
		}
		e = 1;
		for (uint32_t k = 0; k < d.tok[0].count; k++, e = d.tok[e].next) {
			size_t off = d.tok[e].off;

			if (d.tok[e].type == CM_JSTR)
				off--;
			line = line_at(text, prev, off, line);
			prev = off;
			lc.line = line;
			lc.pos = k + 1;
			load_campaign(&lc, e);
			if (lc.oom)
				goto out;
		}
	} else if (text[i] == '{') {
		unsigned long line = 0;
		uint32_t pos = 0;
		size_t start = 0;

		while (start < len) {
			const char *nl = memchr(text + start, '\n', len - start);
			size_t end = nl ? (size_t)(nl - text) : len;
			size_t a = start, b = end;

			line++;
			while (a < b && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r'))
				a++;
			if (a < b) {
				pos++;
				lc.line = line;
				lc.pos = pos;
				if (cm_json_parse(&d, text + start, end - start, &err) < 0) {
					syntax_problem(&lc, text, start, end - start, line, &err);
				} else {
					load_campaign(&lc, 0);
					if (lc.oom)
						goto out;
				}
			}
			start = end + 1;
		}
	} else {
		lc.id = -1;
		cm_buf_reset(&lc.msg);
		if (source)
			cm_buf_addf(&lc.msg, "%s:%lu: ", source, line_at(text, 0, i, 1));
		cm_buf_adds(&lc.msg,
		            "expected a JSON array of campaigns or one campaign object per "
		            "line");
		lc.nprob++;
		if (report)
			report(ctx, lc.msg.data);
	}
out:
	cm_jdoc_release(&d);
	return lctx_release(&lc);
}

/* ---- compiling ---- */

/* Remembers jq's message for a slot that does not compile. */
static void on_bad_slot(void *ctx, uint32_t slot, const char *msg)
{
	struct cm_ruleset *s = ctx;

	if (slot < s->nslotbad && !s->slotbad[slot])
		s->slotbad[slot] = strdup(msg);
	if (slot < s->nslotbad && !s->slotbad[slot])
		s->slotbad[slot] = strdup("");
}

/* Reports, for every campaign, a jq expression that did not compile. */
static int report_jq(struct cm_ruleset *s, cm_rule_reportfn *report, void *ctx)
{
	struct lctx lc;

	lctx_init(&lc, s, report, ctx, NULL);
	for (uint32_t i = 0; i < s->ncamp; i++) {
		struct camp *c = &s->camps[i];

		if (c->jq < 0 || !s->slotbad[c->jq])
			continue;
		lc.source = c->src == NONE ? NULL : s->sources[c->src];
		lc.line = c->line;
		lc.pos = c->pos;
		lc.id = c->id;
		path_pop(&lc, 0);
		cm_buf_adds(&lc.path, "rule.jq");
		problem(&lc, "does not compile: %s", s->slotbad[c->jq]);
		c->bad = 1;
	}
	return lctx_release(&lc);
}

/* Can leaf n serve as a campaign's key, and how good is it (lower is
 * better)? Returns 0 when it cannot. */
static unsigned key_score(const struct cm_ruleset *s, const struct node *n)
{
	if (n->kind != K_LEAF)
		return 0;
	switch (n->op) {
	case OP_EQ: {
		int cls = s->vals[n->a].cls;

		return cls == C_NUM || cls == C_STR || cls == C_BOOL ? 2 : 0;
	}
	case OP_IN: {
		const struct inset *set = &s->sets[n->a];

		if (set->ncplx)
			return 0;
		return set->total == 0 ? 1 : 3 + (set->total > 50 ? 50 : set->total);
	}
	case OP_STARTS_WITH:
		return s->vals[n->a].len > 0 ? 60 : 0;
	case OP_LT:
	case OP_LTE:
	case OP_GT:
	case OP_GTE:
		return s->vals[n->a].cls == C_NUM ? 100 : 0;
	default:
		return 0;
	}
}

/* Picks the key of an active campaign and builds what remains of its where
 * once the key holds. */
static int choose_key(struct cm_ruleset *s, struct act *a, uint32_t where)
{
	const struct node *root;
	unsigned best = 0;
	uint32_t bestk = NONE;

	a->key = NONE;
	a->multi = 0;
	a->resid = where;
	if (where == NONE)
		return 0;
	root = &s->nodes[where];
	if (root->kind == K_LEAF) {
		if (key_score(s, root)) {
			a->key = where;
			a->resid = NONE;
		}
		return 0;
	}
	if (root->kind == K_ANY) {
		/* An any of key leaves holds exactly when one of its keys does:
		 * list the campaign under each, with nothing left to test. */
		for (uint32_t i = 0; i < root->n; i++)
			if (!key_score(s, &s->nodes[s->kids[root->a + i]]))
				return 0;
		if (root->n == 0)
			return 0;
		a->key = where;
		a->multi = 1;
		a->resid = NONE;
		return 0;
	}
	if (root->kind != K_ALL)
		return 0;
	for (uint32_t i = 0; i < root->n; i++) {
		unsigned sc = key_score(s, &s->nodes[s->kids[root->a + i]]);

		if (sc && (!best || sc < best)) {
			best = sc;
			bestk = i;
		}
	}
	if (bestk == NONE)
		return 0;
	a->key = s->kids[root->a + bestk];
	if (root->n == 1) {
		a->resid = NONE;
		return 0;
	}
	{
		struct node nd = *root;
		uint32_t first = s->nkid;

		for (uint32_t i = 0; i < root->n; i++) {
			if (i == bestk)
				continue;
			if (PUSH(s->kids, s->nkid, s->kidcap, s->kids[s->nodes[where].a + i]) < 0)
				return -1;
		}
		nd.a = first;
		nd.n = s->nodes[where].n - 1;
		if (PUSH(s->nodes, s->nnode, s->nodecap, nd) < 0)
			return -1;
		a->resid = s->nnode - 1;
	}
	return 0;
}

/* Orders active campaigns by id, which is the order of results. */
static int act_cmp(const void *a, const void *b)
{
	const struct act *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* ---- compiling: string ids ---- */

/* The id of string p[0..n) on path, or 0 when no rule compares that path
 * with that string. */
static uint32_t sid_find(const struct cm_ruleset *s, uint32_t path, const char *p, size_t n)
{
	uint64_t h;

	if (!s->sidcap)
		return 0;
	h = hash_bytes(p, n, (uint64_t)path * 0x9E3779B97F4A7C15ULL + 3);
	for (uint32_t i = (uint32_t)h & (s->sidcap - 1); s->sids[i].sid;
	     i = (i + 1) & (s->sidcap - 1)) {
		const struct sent *e = &s->sids[i];

		if (e->h == h && e->path == path && e->len == n &&
		    memcmp(pool_at(s, e->off), p, n) == 0)
			return e->sid;
	}
	return 0;
}

/* Gives the string at pool offset off an id on path (once). */
static int sid_add(struct cm_ruleset *s, uint32_t path, uint32_t off, uint32_t len)
{
	const char *p = pool_at(s, off);
	uint64_t h = hash_bytes(p, len, (uint64_t)path * 0x9E3779B97F4A7C15ULL + 3);
	uint32_t i;

	if ((s->nsid + 1) * 2 > s->sidcap) {
		uint32_t cap = s->sidcap ? s->sidcap * 2 : 256;
		struct sent *t = calloc(cap, sizeof(*t));

		if (!t)
			return -1;
		for (uint32_t k = 0; k < s->sidcap; k++) {
			if (!s->sids[k].sid)
				continue;
			for (i = (uint32_t)s->sids[k].h & (cap - 1); t[i].sid;
			     i = (i + 1) & (cap - 1))
				;
			t[i] = s->sids[k];
		}
		free(s->sids);
		s->sids = t;
		s->sidcap = cap;
	}
	for (i = (uint32_t)h & (s->sidcap - 1); s->sids[i].sid; i = (i + 1) & (s->sidcap - 1)) {
		const struct sent *e = &s->sids[i];

		if (e->h == h && e->path == path && e->len == len &&
		    memcmp(pool_at(s, e->off), p, len) == 0)
			return 0;
	}
	s->sids[i].h = h;
	s->sids[i].path = path;
	s->sids[i].off = off;
	s->sids[i].len = len;
	s->sids[i].sid = ++s->pathsids[path];
	s->nsid++;
	return 0;
}

/* Gives ids to the string constants of eq, ne, in and not_in leaves, per
 * path, in the order they first appear. */
static int assign_sids(struct cm_ruleset *s)
{
	s->pathsids = calloc(s->npath ? s->npath : 1, sizeof(*s->pathsids));
	if (!s->pathsids)
		return -1;
	for (uint32_t i = 0; i < s->nnode; i++) {
		const struct node *n = &s->nodes[i];

		if (n->kind != K_LEAF)
			continue;
		if ((n->op == OP_EQ || n->op == OP_NE) && s->vals[n->a].cls == C_STR) {
			if (sid_add(s, n->path, s->vals[n->a].off, s->vals[n->a].len) < 0)
				return -1;
		} else if (n->op == OP_IN || n->op == OP_NOT_IN) {
			const struct inset *set = &s->sets[n->a];

			for (uint32_t k = 0; k < set->nstr; k++)
				if (sid_add(s, n->path, s->setstrs[set->strs + k].off,
				            s->setstrs[set->strs + k].len) < 0)
					return -1;
		}
	}
	return 0;
}

/* Orders starts_with leaves by path, then by node (arg: the nodes). */
static int leaf_path_cmp(const void *a, const void *b, void *arg)
{
	const struct node *nodes = arg;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	if (nodes[x].path != nodes[y].path)
		return nodes[x].path < nodes[y].path ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* Numbers the distinct starts_with prefixes of each path (up to 64), so
 * that an event tests each prefix of a path once and each condition is a
 * bit test. */
static int assign_prefixes(struct cm_ruleset *s)
{
	uint32_t *leaves = NULL, nl = 0, cap = 0;
	int rc = -1;

	s->pathpfx = calloc(s->npath ? s->npath : 1, sizeof(*s->pathpfx));
	s->pathnpfx = calloc(s->npath ? s->npath : 1, sizeof(*s->pathnpfx));
	if (!s->pathpfx || !s->pathnpfx)
		goto out;
	for (uint32_t i = 0; i < s->nnode; i++)
		if (s->nodes[i].kind == K_LEAF && s->nodes[i].op == OP_STARTS_WITH &&
		    PUSH(leaves, nl, cap, i) < 0)
			goto out;
	if (nl > 1)
		qsort_r(leaves, nl, sizeof(*leaves), leaf_path_cmp, s->nodes);
	for (uint32_t i = 0; i < nl;) {
		uint32_t path = s->nodes[leaves[i]].path, first = s->npfx;

		for (; i < nl && s->nodes[leaves[i]].path == path; i++) {
			const struct rval *v = &s->vals[s->nodes[leaves[i]].a];
			uint32_t k;

			for (k = first; k < s->npfx; k++)
				if (s->pfx[k].len == v->len &&
				    memcmp(pool_at(s, s->pfx[k].off), pool_at(s, v->off), v->len) ==
				        0)
					break;
			if (k < s->npfx || s->npfx - first >= 64)
				continue;
			if (grow_array((void **)&s->pfx, &s->pfxcap, s->npfx + 1, sizeof(*s->pfx)) <
			    0)
				goto out;
			s->pfx[s->npfx].off = v->off;
			s->pfx[s->npfx].len = v->len;
			s->npfx++;
		}
		s->pathpfx[path] = first;
		s->pathnpfx[path] = (uint8_t)(s->npfx - first);
	}
	rc = 0;
out:
	free(leaves);
	return rc;
}

/* The number of a prefix on its path, or -1. */
static int prefix_bit(const struct cm_ruleset *s, uint32_t path, const struct rval *v)
{
	for (uint32_t k = 0; k < s->pathnpfx[path]; k++) {
		const struct sref *r = &s->pfx[s->pathpfx[path] + k];

		if (r->len == v->len && memcmp(pool_at(s, r->off), pool_at(s, v->off), v->len) == 0)
			return (int)k;
	}
	return -1;
}

/* ---- compiling: programs ---- */

/* The mask of string ids of an in-set that holds only strings, all with
 * ids below 64; returns -1 when the set does not fit a mask. */
static int set_mask(const struct cm_ruleset *s, uint32_t path, const struct inset *set,
                    uint64_t *mask)
{
	*mask = 0;
	if (set->total == 0 || set->nstr != set->total)
		return -1;
	for (uint32_t k = 0; k < set->nstr; k++) {
		const struct sref *r = &s->setstrs[set->strs + k];
		uint32_t id = sid_find(s, path, pool_at(s, r->off), r->len);

		if (id == 0 || id >= 64)
			return -1;
		*mask |= (uint64_t)1 << id;
	}
	return 0;
}

/* Appends the instructions of node ni to pins; returns the subtree size,
 * or 0 when memory is out. */
static uint32_t emit_ins(struct cm_ruleset *s, uint32_t ni)
{
	const struct node *n = &s->nodes[ni];
	struct ins in;
	uint32_t at = s->npins, size = 1;

	memset(&in, 0, sizeof(in));
	in.path = n->path;
	in.op = I_NODE;
	in.v.u[0] = ni;
	switch (n->kind) {
	case K_ALL:
	case K_ANY:
		in.op = n->kind == K_ALL ? I_ALL : I_ANY;
		in.v.u[0] = n->n;
		in.path = NONE;
		break;
	case K_NOT:
		in.op = I_NOT;
		in.path = NONE;
		break;
	default:
		switch (n->op) {
		case OP_EXISTS:
			in.op = I_EXISTS;
			break;
		case OP_NOT_EXISTS:
			in.op = I_NEXISTS;
			break;
		case OP_EQ:
		case OP_NE:
		case OP_LT:
		case OP_LTE:
		case OP_GT:
		case OP_GTE: {
			const struct rval *c = &s->vals[n->a];

			if (c->cls == C_NUM) {
				static const uint8_t nops[] = {I_NEQ, I_NNE, I_NLT,
				                               I_NLE, I_NGT, I_NGE};

				in.op = nops[n->op - OP_EQ];
				in.v.num = c->num;
			} else if (c->cls == C_STR && (n->op == OP_EQ || n->op == OP_NE)) {
				in.op = n->op == OP_EQ ? I_SEQ : I_SNE;
				in.v.u[0] = sid_find(s, n->path, pool_at(s, c->off), c->len);
			}
			break;
		}
		case OP_IN:
		case OP_NOT_IN: {
			uint64_t mask;

			if (set_mask(s, n->path, &s->sets[n->a], &mask) == 0) {
				in.op = n->op == OP_IN ? I_SIN : I_SNOTIN;
				in.v.mask = mask;
			}
			break;
		}
		case OP_STARTS_WITH: {
			const struct rval *c = &s->vals[n->a];
			int bit = prefix_bit(s, n->path, c);

			if (bit >= 0) {
				in.op = I_PFX;
				in.v.u[0] = (uint32_t)bit;
			} else if (c->len <= 8) {
				in.op = I_PREFIX;
				in.aux = (uint8_t)c->len;
				memcpy(in.v.b, pool_at(s, c->off), c->len);
			}
			break;
		}
		default:
			break;
		}
		break;
	}
	if (PUSH(s->pins, s->npins, s->pinscap, in) < 0)
		return 0;
	if (n->kind == K_ALL || n->kind == K_ANY) {
		for (uint32_t i = 0; i < n->n; i++) {
			uint32_t k = emit_ins(s, s->kids[s->nodes[ni].a + i]);

			if (!k)
				return 0;
			size += k;
		}
	} else if (n->kind == K_NOT) {
		uint32_t k = emit_ins(s, s->nodes[ni].a);

		if (!k)
			return 0;
		size += k;
	}
	/* A subtree too big for the size field is evaluated from the tree. */
	if (size > UINT16_MAX) {
		s->npins = at + 1;
		s->pins[at].op = I_NODE;
		s->pins[at].path = NONE;
		s->pins[at].v.u[0] = ni;
		size = 1;
	}
	s->pins[at].size = (uint16_t)size;
	return size;
}

/* Appends the candidate block of campaign rank to code; t and strict are
 * for range lists. */
static int emit_block(struct cm_ruleset *s, uint32_t rank, uint32_t local, double t, uint32_t flags)
{
	const struct act *a = &s->act[rank];
	size_t words;
	struct cblk h;
	char *p;

	memset(&h, 0, sizeof(h));
	h.local = local;
	h.jq = (int32_t)a->jq;
	h.nins = (uint16_t)a->nprog;
	h.flags = (uint16_t)(flags | (a->multi ? B_MULTI : 0));
	if (a->start != INT64_MIN || a->end != INT64_MAX)
		h.flags |= B_WINDOW;
	words = (sizeof(h) + (h.flags & B_RANGE ? 8 : 0) + (h.flags & B_WINDOW ? 16 : 0) +
	         a->nprog * sizeof(struct ins)) /
	        8;
	h.words = (uint32_t)words;
	if (a->nprog > UINT16_MAX || s->ncode + words >= UINT32_MAX / 2 ||
	    grow_array((void **)&s->code, &s->codecap, s->ncode + (uint32_t)words,
	               sizeof(*s->code)) < 0)
		return -1;
	p = (char *)(s->code + s->ncode);
	memcpy(p, &h, sizeof(h));
	p += sizeof(h);
	if (h.flags & B_RANGE) {
		memcpy(p, &t, 8);
		p += 8;
	}
	if (h.flags & B_WINDOW) {
		memcpy(p, &a->start, 8);
		memcpy(p + 8, &a->end, 8);
		p += 16;
	}
	if (a->nprog)
		memcpy(p, s->pins + a->prog, a->nprog * sizeof(struct ins));
	s->ncode += (uint32_t)words;
	return 0;
}

/* ---- compiling: indexes ---- */

/* A key tuple gathered while building the key table. */
struct ktmp {
	uint32_t probe;
	uint32_t cls;
	double num;
	uint32_t off, len;
	uint32_t rank;
	uint32_t local;
};

/* Orders key tuples by probe, class, value, rank (arg: the set). */
static int ktmp_cmp(const void *a, const void *b, void *arg)
{
	const struct ktmp *x = a, *y = b;
	const struct cm_ruleset *s = arg;
	int c;

	if (x->probe != y->probe)
		return x->probe < y->probe ? -1 : 1;
	if (x->cls != y->cls)
		return x->cls < y->cls ? -1 : 1;
	if (x->cls == C_STR) {
		c = bytes_cmp(pool_at(s, x->off), x->len, pool_at(s, y->off), y->len);
		if (c)
			return c;
	} else if (x->num != y->num) {
		return x->num < y->num ? -1 : 1;
	}
	return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/* A range tuple: a threshold campaign under a probe. */
struct rtmp {
	uint32_t probe;
	uint32_t rank;
	uint32_t local;
	double t;
	int strict;
	int desc;
};

/* Orders range tuples by probe, then threshold (descending for upper
 * bounds), then rank. */
static int rtmp_cmp(const void *a, const void *b)
{
	const struct rtmp *x = a, *y = b;

	if (x->probe != y->probe)
		return x->probe < y->probe ? -1 : 1;
	if (x->t != y->t)
		return (x->t < y->t) != x->desc ? -1 : 1;
	return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/* The hash of a key value for a probe. */
static inline uint64_t key_hash(uint32_t probe, uint32_t cls, double num, const char *p, size_t n)
{
	uint64_t seed = ((uint64_t)probe << 8 | cls) * 0x9E3779B97F4A7C15ULL;

	return cls == C_STR ? hash_bytes(p, n, seed) : hash_num(num, seed);
}

/* Finds (or creates) the probe of bucket b for a key leaf. */
static uint32_t probe_for(struct cm_ruleset *s, struct bucket *b, const struct node *k)
{
	struct probe p;

	memset(&p, 0, sizeof(p));
	p.path = k->path;
	switch (k->op) {
	case OP_EQ:
	case OP_IN:
		p.kind = P_EQ;
		break;
	case OP_STARTS_WITH:
		p.kind = P_PREFIX;
		p.plen = s->vals[k->a].len;
		break;
	case OP_GT:
	case OP_GTE:
		p.kind = P_LOWER;
		break;
	default:
		p.kind = P_UPPER;
		break;
	}
	for (uint32_t i = b->probes; i < b->probes + b->nprobes; i++)
		if (s->probes[i].kind == p.kind && s->probes[i].path == p.path &&
		    s->probes[i].plen == p.plen)
			return i;
	if (PUSH(s->probes, s->nprobe, s->probecap, p) < 0)
		return NONE;
	b->nprobes++;
	return s->nprobe - 1;
}

/* True when two sorted key tuples name the same key. */
static int same_key(const struct cm_ruleset *s, const struct ktmp *x, const struct ktmp *y)
{
	if (x->probe != y->probe || x->cls != y->cls)
		return 0;
	if (x->cls == C_STR)
		return x->len == y->len &&
		       memcmp(pool_at(s, x->off), pool_at(s, y->off), x->len) == 0;
	return x->num == y->num;
}

/* Builds the key table and the keyed candidate lists from the tuples. */
static int build_keys(struct cm_ruleset *s, struct ktmp *kt, uint32_t nk)
{
	uint32_t groups = 0, cap = 16;

	if (nk > 1)
		qsort_r(kt, nk, sizeof(*kt), ktmp_cmp, s);
	for (uint32_t i = 0; i < nk; i++)
		if (i == 0 || !same_key(s, &kt[i], &kt[i - 1]))
			groups++;
	while (cap < groups * 2)
		cap *= 2;
	s->keys = calloc(cap, sizeof(*s->keys));
	if (!s->keys)
		return -1;
	s->keycap = cap;
	for (uint32_t i = 0; i < nk;) {
		uint32_t j = i + 1, h;
		struct kent e;

		while (j < nk && same_key(s, &kt[i], &kt[j]))
			j++;
		memset(&e, 0, sizeof(e));
		e.probe = kt[i].probe;
		e.cls = kt[i].cls;
		e.num = kt[i].num;
		e.off = kt[i].off;
		e.len = kt[i].len;
		e.h = key_hash(e.probe, e.cls, e.num, pool_at(s, e.off), e.len);
		e.begin = s->ncode;
		for (uint32_t k = i; k < j; k++) {
			if (k > i && kt[k].rank == kt[k - 1].rank)
				continue;
			if (emit_block(s, kt[k].rank, kt[k].local, 0, 0) < 0)
				return -1;
		}
		e.end = s->ncode;
		if (e.cls == C_SID) {
			/* String keys are found by id, without hashing. */
			uint32_t at = s->probes[e.probe].sidbase + (uint32_t)e.num;

			s->sidlists[2 * at] = e.begin;
			s->sidlists[2 * at + 1] = e.end;
			i = j;
			continue;
		}
		for (h = (uint32_t)e.h & (cap - 1); s->keys[h].end; h = (h + 1) & (cap - 1))
			;
		s->keys[h] = e;
		i = j;
	}
	return 0;
}

/* Builds the range candidate lists from the tuples. */
static int build_ranges(struct cm_ruleset *s, struct rtmp *rt, uint32_t nr)
{
	if (nr > 1)
		qsort(rt, nr, sizeof(*rt), rtmp_cmp);
	for (uint32_t i = 0; i < nr;) {
		struct probe *p = &s->probes[rt[i].probe];
		uint32_t j = i;

		p->begin = s->ncode;
		for (; j < nr && rt[j].probe == rt[i].probe; j++)
			if (emit_block(s, rt[j].rank, rt[j].local, rt[j].t,
			               B_RANGE | (rt[j].strict ? B_STRICT : 0)) < 0)
				return -1;
		p->end = s->ncode;
		i = j;
	}
	return 0;
}

/* Adds the key tuples of campaign rank (key leaf k) under probe p. */
static int gather_keys(struct cm_ruleset *s, uint32_t p, const struct node *k, uint32_t rank,
                       uint32_t local, struct ktmp **kt, uint32_t *nk, uint32_t *kcap)
{
	struct ktmp t;

	memset(&t, 0, sizeof(t));
	t.probe = p;
	t.rank = rank;
	t.local = local;
	if (k->op == OP_EQ || k->op == OP_STARTS_WITH) {
		const struct rval *v = &s->vals[k->a];

		t.cls = v->cls;
		t.num = v->cls == C_BOOL ? v->b : v->num;
		t.off = v->off;
		t.len = v->len;
		if (k->op == OP_EQ && v->cls == C_STR) {
			/* Strings of eq keys are looked up by their id. */
			t.cls = C_SID;
			t.num = sid_find(s, k->path, pool_at(s, v->off), v->len);
			t.off = t.len = 0;
		}
		return PUSH(*kt, *nk, *kcap, t);
	}
	{
		const struct inset *set = &s->sets[k->a];

		t.cls = C_NUM;
		for (uint32_t i = 0; i < set->nnum; i++) {
			t.num = s->setnums[set->nums + i];
			if (PUSH(*kt, *nk, *kcap, t) < 0)
				return -1;
		}
		t.cls = C_SID;
		for (uint32_t i = 0; i < set->nstr; i++) {
			const struct sref *r = &s->setstrs[set->strs + i];

			t.num = sid_find(s, k->path, pool_at(s, r->off), r->len);
			if (PUSH(*kt, *nk, *kcap, t) < 0)
				return -1;
		}
		t.cls = C_BOOL;
		t.off = t.len = 0;
		if (set->has_true) {
			t.num = 1;
			if (PUSH(*kt, *nk, *kcap, t) < 0)
				return -1;
		}
		if (set->has_false) {
			t.num = 0;
			if (PUSH(*kt, *nk, *kcap, t) < 0)
				return -1;
		}
	}
	return 0;
}

/* Lists campaign rank under key leaf k in bucket b: as key tuples for an
 * eq or prefix probe, as a range tuple for a threshold. */
static int add_key(struct cm_ruleset *s, struct bucket *b, const struct node *k, uint32_t rank,
                   uint32_t local, struct ktmp **kt, uint32_t *nk, uint32_t *kcap, struct rtmp **rt,
                   uint32_t *nr, uint32_t *rcap)
{
	uint32_t p = probe_for(s, b, k);
	struct rtmp r;

	if (p == NONE)
		return -1;
	if (s->probes[p].kind == P_EQ || s->probes[p].kind == P_PREFIX)
		return gather_keys(s, p, k, rank, local, kt, nk, kcap);
	r.probe = p;
	r.rank = rank;
	r.local = local;
	r.t = s->vals[k->a].num;
	r.strict = k->op == OP_GT || k->op == OP_LT;
	r.desc = s->probes[p].kind == P_UPPER;
	return PUSH(*rt, *nr, *rcap, r);
}

/* Fills bucket b from the ranks in members[0..n): campaigns without a key
 * get their blocks in the bucket's own list, keyed ones become tuples. */
static int fill_bucket(struct cm_ruleset *s, struct bucket *b, const uint32_t *members, uint32_t n,
                       struct ktmp **kt, uint32_t *nk, uint32_t *kcap, struct rtmp **rt,
                       uint32_t *nr, uint32_t *rcap)
{
	b->probes = s->nprobe;
	b->nprobes = 0;
	b->ids = s->nbids;
	b->nmem = n;
	for (uint32_t i = 0; i < n; i++)
		s->bids[s->nbids++] = s->act[members[i]].id;
	b->begin = s->ncode;
	for (uint32_t i = 0; i < n; i++)
		if (s->act[members[i]].key == NONE && emit_block(s, members[i], i, 0, 0) < 0)
			return -1;
	b->end = s->ncode;
	for (uint32_t i = 0; i < n; i++) {
		const struct act *a = &s->act[members[i]];
		const struct node *root;

		if (a->key == NONE)
			continue;
		root = &s->nodes[a->key];
		if (!a->multi) {
			if (add_key(s, b, root, members[i], i, kt, nk, kcap, rt, nr, rcap) < 0)
				return -1;
			continue;
		}
		for (uint32_t k = 0; k < root->n; k++)
			if (add_key(s, b, &s->nodes[s->kids[s->nodes[a->key].a + k]], members[i], i,
			            kt, nk, kcap, rt, nr, rcap) < 0)
				return -1;
	}
	return 0;
}

/* Finds the bucket of an event type, or bucket 0 (any-type campaigns). */
static uint32_t type_bucket(const struct cm_ruleset *s, const char *p, size_t n)
{
	uint64_t h;

	if (!s->tmapcap)
		return 0;
	h = hash_bytes(p, n, 0x51);
	for (uint32_t i = (uint32_t)h & (s->tmapcap - 1); s->tmap[i].bucket != NONE;
	     i = (i + 1) & (s->tmapcap - 1)) {
		const struct tent *t = &s->tmap[i];

		if (t->h == h && t->len == n && memcmp(pool_at(s, t->off), p, n) == 0)
			return t->bucket;
	}
	return 0;
}

/* Builds the type map, the buckets and their indexes over the active
 * campaigns. */
static int build_matcher(struct cm_ruleset *s)
{
	uint32_t ntypes = 0, **members = NULL, *nmem = NULL, *memcap = NULL, maxmem = 0;
	struct ktmp *kt = NULL;
	struct rtmp *rt = NULL;
	uint32_t nk = 0, kcap = 0, nr = 0, rcap = 0;
	int rc = -1;

	/* Active campaigns in id order, with their key and program. */
	for (uint32_t i = 0; i < s->ncamp; i++)
		if (s->camps[i].active && !s->camps[i].bad)
			s->nact++;
	s->act = calloc(s->nact ? s->nact : 1, sizeof(*s->act));
	if (!s->act)
		goto out;
	for (uint32_t i = 0, r = 0; i < s->ncamp; i++) {
		const struct camp *c = &s->camps[i];

		if (!c->active || c->bad)
			continue;
		s->act[r].id = c->id;
		s->act[r].start = c->start;
		s->act[r].end = c->end;
		s->act[r].jq = c->jq;
		s->act[r].camp = i;
		r++;
	}
	if (s->nact > 1)
		qsort(s->act, s->nact, sizeof(*s->act), act_cmp);
	for (uint32_t r = 0; r < s->nact; r++)
		if (choose_key(s, &s->act[r], s->camps[s->act[r].camp].where) < 0)
			goto out;
	if (assign_sids(s) < 0 || assign_prefixes(s) < 0)
		goto out;
	for (uint32_t r = 0; r < s->nact; r++) {
		s->act[r].prog = s->npins;
		if (s->act[r].resid != NONE && !emit_ins(s, s->act[r].resid))
			goto out;
		s->act[r].nprog = s->npins - s->act[r].prog;
	}

	/* The type map: every distinct type of an active campaign. */
	s->tmapcap = 16;
	for (uint32_t r = 0; r < s->nact; r++)
		ntypes += s->camps[s->act[r].camp].ntypes;
	while (s->tmapcap < ntypes * 2)
		s->tmapcap *= 2;
	s->tmap = malloc(s->tmapcap * sizeof(*s->tmap));
	if (!s->tmap)
		goto out;
	for (uint32_t i = 0; i < s->tmapcap; i++)
		s->tmap[i].bucket = NONE;
	s->nbucket = 1;
	for (uint32_t r = 0; r < s->nact; r++) {
		const struct camp *c = &s->camps[s->act[r].camp];

		for (uint32_t k = 0; k < c->ntypes; k++) {
			const struct sref *t = &s->typerefs[c->types + k];
			const char *p = pool_at(s, t->off);
			uint64_t h = hash_bytes(p, t->len, 0x51);
			uint32_t i;

			for (i = (uint32_t)h & (s->tmapcap - 1); s->tmap[i].bucket != NONE;
			     i = (i + 1) & (s->tmapcap - 1))
				if (s->tmap[i].h == h && s->tmap[i].len == t->len &&
				    memcmp(pool_at(s, s->tmap[i].off), p, t->len) == 0)
					break;
			if (s->tmap[i].bucket == NONE) {
				s->tmap[i].h = h;
				s->tmap[i].off = t->off;
				s->tmap[i].len = t->len;
				s->tmap[i].bucket = s->nbucket++;
			}
		}
	}
	/* Members of each bucket, in rank order. */
	members = calloc(s->nbucket, sizeof(*members));
	nmem = calloc(s->nbucket, sizeof(*nmem));
	memcap = calloc(s->nbucket, sizeof(*memcap));
	s->buckets = calloc(s->nbucket, sizeof(*s->buckets));
	if (!members || !nmem || !memcap || !s->buckets)
		goto out;
	for (uint32_t r = 0; r < s->nact; r++) {
		const struct camp *c = &s->camps[s->act[r].camp];

		if (c->ntypes == 0) {
			for (uint32_t b = 0; b < s->nbucket; b++)
				if (PUSH(members[b], nmem[b], memcap[b], r) < 0)
					goto out;
			continue;
		}
		for (uint32_t k = 0; k < c->ntypes; k++) {
			const struct sref *t = &s->typerefs[c->types + k];
			uint32_t b = type_bucket(s, pool_at(s, t->off), t->len);

			if (nmem[b] && members[b][nmem[b] - 1] == r)
				continue;
			if (PUSH(members[b], nmem[b], memcap[b], r) < 0)
				goto out;
		}
	}
	{
		size_t total = 0;

		for (uint32_t b = 0; b < s->nbucket; b++) {
			total += nmem[b];
			maxmem = nmem[b] > maxmem ? nmem[b] : maxmem;
		}
		if (total >= UINT32_MAX / 2)
			goto out;
		s->bids = malloc((total ? total : 1) * sizeof(*s->bids));
		if (!s->bids)
			goto out;
	}
	for (uint32_t b = 0; b < s->nbucket; b++)
		if (fill_bucket(s, &s->buckets[b], members[b], nmem[b], &kt, &nk, &kcap, &rt, &nr,
		                &rcap) < 0)
			goto out;
	{
		size_t total = 0;

		for (uint32_t p = 0; p < s->nprobe; p++) {
			if (s->probes[p].kind != P_EQ)
				continue;
			s->probes[p].sidbase = (uint32_t)total;
			total += s->pathsids[s->probes[p].path] + 1;
		}
		if (total >= UINT32_MAX / 4)
			goto out;
		s->sidlists = calloc(2 * total + 2, sizeof(*s->sidlists));
		if (!s->sidlists)
			goto out;
		s->nsidlists = (uint32_t)total;
	}
	if (build_keys(s, kt, nk) < 0 || build_ranges(s, rt, nr) < 0)
		goto out;
	free(s->pins);
	s->pins = NULL;
	s->npins = s->pinscap = 0;

	/* Per-event scratch, so that matching allocates nothing. */
	s->pc = calloc(s->npath ? s->npath : 1, sizeof(*s->pc));
	s->hits = malloc((s->nact ? s->nact : 1) * sizeof(*s->hits));
	s->hitbits = calloc(maxmem / 64 + 1, sizeof(*s->hitbits));
	s->ids = malloc((s->nact ? s->nact : 1) * sizeof(*s->ids));
	s->slotgen = calloc(cm_jqx_count(s->jqx) + 1, sizeof(*s->slotgen));
	s->slotres = calloc(cm_jqx_count(s->jqx) + 1, sizeof(*s->slotres));
	if (cm_jqx_count(s->jqx)) {
		s->kjvcap = 1024;
		s->kjv = calloc(s->kjvcap, sizeof(*s->kjv));
		if (!s->kjv)
			goto out;
	}
	s->md = pcre2_match_data_create(1, NULL);
	s->mctx = pcre2_match_context_create(NULL);
	s->jstack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
	if (!s->pc || !s->hits || !s->hitbits || !s->ids || !s->slotgen || !s->slotres || !s->md ||
	    !s->mctx || !s->jstack)
		goto out;
	pcre2_jit_stack_assign(s->mctx, NULL, s->jstack);
	pcre2_set_match_limit(s->mctx, 1000000);
	pcre2_set_depth_limit(s->mctx, 10000);
	s->gen = 1;
	rc = 0;
out:
	for (uint32_t b = 0; members && b < s->nbucket; b++)
		free(members[b]);
	free(members);
	free(nmem);
	free(memcap);
	free(kt);
	free(rt);
	return rc;
}

/* Compiles jq, reports what failed, and builds the matcher. */
int cm_ruleset_compile(struct cm_ruleset *s, cm_rule_reportfn *report, void *ctx)
{
	struct cm_err err;
	uint32_t nslots = cm_jqx_count(s->jqx);
	int n;

	if (s->compiled)
		return s->problems;
	s->compiled = 1;
	s->slotbad = calloc(nslots ? nslots : 1, sizeof(*s->slotbad));
	if (!s->slotbad)
		goto oom;
	s->nslotbad = nslots;
	if (cm_jqx_compile(s->jqx, on_bad_slot, s, &err) < 0)
		goto oom;
	n = report_jq(s, report, ctx);
	if (n < 0)
		goto oom;
	if (s->problems)
		return s->problems;
	if (build_matcher(s) < 0)
		goto oom;
	return 0;
oom:
	s->problems++;
	if (report)
		report(ctx, "campaigns: out of memory");
	return -1;
}

/* ---- events ---- */

/* Checks the event with the one validator every tool uses (event.c) and
 * keeps what matching needs from its view, so that nothing is walked twice. */
int cm_rule_event_init(struct cm_rule_event *ev, const struct cm_jdoc *d, struct cm_buf *scratch,
                       struct cm_err *err)
{
	struct cm_event_view v;

	memset(ev, 0, sizeof(*ev));
	ev->doc = d;
	ev->id_tok = ev->type_tok = ev->user_tok = ev->time_tok = CM_JNONE;
	ev->matches_key = CM_JNONE;
	if (cm_event_validate(d, 0, &v, err) < 0)
		return -1;
	ev->id_tok = v.id;
	ev->type_tok = v.type;
	ev->user_tok = v.user;
	ev->time_tok = v.time;
	ev->matches_key = v.matches == CM_JNONE ? CM_JNONE : v.matches - 1;
	ev->has_meta = v.has_meta;
	ev->time_ms = v.occurred_ms;
	ev->type_len = v.type_len;
	if (!d->tok[v.type].esc) {
		ev->type = d->src + d->tok[v.type].off;
	} else {
		/* the view is ours only until we return: keep the decoded type */
		cm_buf_reset(scratch);
		if (cm_buf_add(scratch, v.type_text, v.type_len) < 0)
			return cm_errf(err, "out of memory");
		ev->type = scratch->data;
	}
	return 0;
}

/* ---- matching ---- */

static struct pval *resolve(struct cm_ruleset *s, uint32_t pid);

/* Looks path pid up in the current event, once per event. */
static __attribute__((noinline)) struct pval *resolve_slow(struct cm_ruleset *s, uint32_t pid)
{
	struct pval *v = &s->pc[pid];
	const struct pnode *pn = &s->paths[pid];
	const struct cm_jdoc *d = s->doc;
	uint32_t ptok, t = CM_JNONE;

	ptok = pn->parent == NONE ? 0 : resolve(s, pn->parent)->tok;
	if (ptok != CM_JNONE) {
		if (d->tok[ptok].type == CM_JOBJ)
			t = cm_json_get(d, ptok, pool_at(s, pn->off), pn->len);
		else if (d->tok[ptok].type == CM_JARR && pn->index >= 0)
			t = cm_json_at(d, ptok, (uint32_t)pn->index);
	}
	v->gen = s->gen;
	v->tok = t;
	v->cls = t == CM_JNONE ? C_NONE : (uint8_t)cls_of_type(d->tok[t].type);
	v->numok = v->strok = v->sidok = v->pfxok = 0;
	return v;
}

/* The value at path pid in the current event (cached per event). */
static inline struct pval *resolve(struct cm_ruleset *s, uint32_t pid)
{
	struct pval *v = &s->pc[pid];

	return v->gen == s->gen ? v : resolve_slow(s, pid);
}

/* The number of a resolved value, converted once per event. */
static inline double pv_num(struct cm_ruleset *s, struct pval *v)
{
	if (!v->numok) {
		v->num = cm_json_num(s->doc, v->tok);
		v->numok = 1;
	}
	return v->num;
}

/* The decoded bytes of a string value; escaped strings are decoded once
 * into the event's arena. */
static const char *pv_str(struct cm_ruleset *s, struct pval *v, size_t *n)
{
	const struct cm_jtok *k = &s->doc->tok[v->tok];

	if (!k->esc) {
		*n = k->len;
		return s->doc->src + k->off;
	}
	if (!v->strok) {
		size_t len;
		const char *p = cm_json_str(s->doc, v->tok, &s->tmp, &len);
		size_t off = s->arena.len;

		if (!p || cm_buf_add(&s->arena, p, len) < 0) {
			*n = 0;
			return "";
		}
		v->soff = (uint32_t)off;
		v->slen = (uint32_t)len;
		v->strok = 1;
	}
	*n = v->slen;
	return s->arena.data + v->soff;
}

/* JSON equality of event token t with constant c ("same type and equal"). */
static int tok_eq_val(struct cm_ruleset *s, uint32_t t, const struct rval *c)
{
	const struct cm_jdoc *d = s->doc;
	int cls = cls_of_type(d->tok[t].type);

	if (cls != c->cls)
		return 0;
	switch (cls) {
	case C_BOOL:
		return (d->tok[t].type == CM_JTRUE) == c->b;
	case C_NUM:
		return cm_json_num(d, t) == c->num;
	case C_STR:
		return cm_json_str_eq(d, t, pool_at(s, c->off), c->len);
	default:
		return cm_json_equal(d, t, &s->cvals[c->cv].doc, 0);
	}
}

/* Equality of a resolved value with a constant, using the cached forms. */
static int pv_eq_val(struct cm_ruleset *s, struct pval *v, const struct rval *c)
{
	size_t n;
	const char *p;

	if (v->cls != c->cls)
		return 0;
	switch (v->cls) {
	case C_NUM:
		return pv_num(s, v) == c->num;
	case C_STR:
		p = pv_str(s, v, &n);
		return n == c->len && memcmp(p, pool_at(s, c->off), n) == 0;
	case C_BOOL:
		return (s->doc->tok[v->tok].type == CM_JTRUE) == c->b;
	default:
		return cm_json_equal(s->doc, v->tok, &s->cvals[c->cv].doc, 0);
	}
}

/* Membership of a resolved value in an in-set. */
static int pv_in_set(struct cm_ruleset *s, struct pval *v, const struct inset *set)
{
	switch (v->cls) {
	case C_NUM: {
		double x;
		const double *a;
		uint32_t lo = 0, hi = set->nnum;

		if (!hi)
			return 0;
		x = pv_num(s, v);
		a = s->setnums + set->nums;

		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;

			if (a[mid] < x)
				lo = mid + 1;
			else
				hi = mid;
		}
		return lo < set->nnum && a[lo] == x;
	}
	case C_STR: {
		size_t n;
		const char *p;
		const struct sref *a;
		uint32_t lo = 0, hi = set->nstr;

		if (!hi)
			return 0;
		p = pv_str(s, v, &n);
		a = s->setstrs + set->strs;

		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			int c = a[mid].len != n ? (a[mid].len < n ? -1 : 1)
			                        : memcmp(pool_at(s, a[mid].off), p, n);

			if (c < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		return lo < set->nstr && a[lo].len == n && memcmp(pool_at(s, a[lo].off), p, n) == 0;
	}
	case C_BOOL:
		return s->doc->tok[v->tok].type == CM_JTRUE ? set->has_true : set->has_false;
	default:
		for (uint32_t i = 0; i < set->ncplx; i++)
			if (cm_json_equal(s->doc, v->tok, &s->cvals[s->vals[set->cplx + i].cv].doc,
			                  0))
				return 1;
		return 0;
	}
}

/* Evaluates a leaf on the current event. */
static int eval_leaf(struct cm_ruleset *s, const struct node *n)
{
	struct pval *v = resolve(s, n->path);
	const struct rval *c;
	size_t len;
	const char *p;

	if (v->cls == C_NONE)
		return n->op == OP_NOT_EXISTS;
	switch (n->op) {
	case OP_EXISTS:
		return 1;
	case OP_NOT_EXISTS:
		return 0;
	case OP_EQ:
		return pv_eq_val(s, v, &s->vals[n->a]);
	case OP_NE:
		c = &s->vals[n->a];
		return v->cls == c->cls && !pv_eq_val(s, v, c);
	case OP_LT:
	case OP_LTE:
	case OP_GT:
	case OP_GTE: {
		int cmp;

		c = &s->vals[n->a];
		if (v->cls != c->cls)
			return 0;
		if (c->cls == C_NUM) {
			double x = pv_num(s, v);

			switch (n->op) {
			case OP_LT:
				return x < c->num;
			case OP_LTE:
				return x <= c->num;
			case OP_GT:
				return x > c->num;
			default:
				return x >= c->num;
			}
		}
		p = pv_str(s, v, &len);
		cmp = bytes_cmp(p, len, pool_at(s, c->off), c->len);
		switch (n->op) {
		case OP_LT:
			return cmp < 0;
		case OP_LTE:
			return cmp <= 0;
		case OP_GT:
			return cmp > 0;
		default:
			return cmp >= 0;
		}
	}
	case OP_IN:
		return pv_in_set(s, v, &s->sets[n->a]);
	case OP_NOT_IN: {
		const struct inset *set = &s->sets[n->a];

		if (set->total == 0)
			return 1;
		if (!(set->classes & (1u << v->cls)))
			return 0;
		return !pv_in_set(s, v, set);
	}
	case OP_CONTAINS:
		c = &s->vals[n->a];
		if (v->cls == C_STR) {
			if (c->cls != C_STR)
				return 0;
			if (c->len == 0)
				return 1;
			p = pv_str(s, v, &len);
			return memmem(p, len, pool_at(s, c->off), c->len) != NULL;
		}
		if (v->cls == C_ARR) {
			const struct cm_jdoc *d = s->doc;
			uint32_t e = v->tok + 1;

			for (uint32_t i = 0; i < d->tok[v->tok].count; i++, e = d->tok[e].next)
				if (tok_eq_val(s, e, c))
					return 1;
		}
		return 0;
	case OP_STARTS_WITH:
		c = &s->vals[n->a];
		if (v->cls != C_STR)
			return 0;
		p = pv_str(s, v, &len);
		return len >= c->len && memcmp(p, pool_at(s, c->off), c->len) == 0;
	case OP_MATCHES: {
		int rc;

		if (v->cls != C_STR)
			return 0;
		p = pv_str(s, v, &len);
		if (s->rejit[n->a])
			rc =
			    pcre2_jit_match(s->res[n->a], (PCRE2_SPTR)p, len, 0, 0, s->md, s->mctx);
		else
			rc = pcre2_match(s->res[n->a], (PCRE2_SPTR)p, len, 0, 0, s->md, s->mctx);
		return rc >= 0;
	}
	default:
		return 0;
	}
}

/* Evaluates a condition tree with short-circuits. */
static int eval_node(struct cm_ruleset *s, uint32_t ni)
{
	const struct node *n = &s->nodes[ni];

	switch (n->kind) {
	case K_ALL:
		for (uint32_t i = 0; i < n->n; i++)
			if (!eval_node(s, s->kids[n->a + i]))
				return 0;
		return 1;
	case K_ANY:
		for (uint32_t i = 0; i < n->n; i++)
			if (eval_node(s, s->kids[n->a + i]))
				return 1;
		return 0;
	case K_NOT:
		return !eval_node(s, n->a);
	default:
		return eval_leaf(s, n);
	}
}

/* The string id of a resolved string value on its path (0: no constant). */
static inline uint32_t pv_sid(struct cm_ruleset *s, struct pval *v, uint32_t path)
{
	if (!v->sidok) {
		size_t n;
		const char *p = pv_str(s, v, &n);

		v->sid = s->pathsids[path] ? sid_find(s, path, p, n) : 0;
		v->sidok = 1;
	}
	return v->sid;
}

/* Tests a string value against every prefix of its path at once. */
static void pv_prefixes(struct cm_ruleset *s, struct pval *v, uint32_t path)
{
	size_t n;
	const char *p = pv_str(s, v, &n);
	const struct sref *r = s->pfx + s->pathpfx[path];
	uint64_t m = 0;

	for (uint32_t k = 0; k < s->pathnpfx[path]; k++)
		if (r[k].len <= n && memcmp(p, pool_at(s, r[k].off), r[k].len) == 0)
			m |= (uint64_t)1 << k;
	v->pfx = m;
	v->pfxok = 1;
}

/* Runs compiled instructions (a subtree starting at ip). */
static int run(struct cm_ruleset *s, const struct ins *ip)
{
	struct pval *v;

	switch (ip->op) {
	case I_ALL: {
		const struct ins *k = ip + 1;

		for (uint32_t i = 0; i < ip->v.u[0]; i++, k += k->size)
			if (!run(s, k))
				return 0;
		return 1;
	}
	case I_ANY: {
		const struct ins *k = ip + 1;

		for (uint32_t i = 0; i < ip->v.u[0]; i++, k += k->size)
			if (run(s, k))
				return 1;
		return 0;
	}
	case I_NOT:
		return !run(s, ip + 1);
	case I_NODE:
		return eval_node(s, ip->v.u[0]);
	default:
		break;
	}
	v = resolve(s, ip->path);
	switch (ip->op) {
	case I_EXISTS:
		return v->cls != C_NONE;
	case I_NEXISTS:
		return v->cls == C_NONE;
	case I_SEQ:
		return v->cls == C_STR && pv_sid(s, v, ip->path) == ip->v.u[0];
	case I_SNE:
		return v->cls == C_STR && pv_sid(s, v, ip->path) != ip->v.u[0];
	case I_SIN:
	case I_SNOTIN: {
		uint32_t id;
		int in;

		if (v->cls != C_STR)
			return 0;
		id = pv_sid(s, v, ip->path);
		in = id < 64 && ((ip->v.mask >> id) & 1);
		return ip->op == I_SIN ? in : !in;
	}
	case I_PREFIX: {
		size_t n;
		const char *p;

		if (v->cls != C_STR)
			return 0;
		p = pv_str(s, v, &n);
		return n >= ip->aux && memcmp(p, ip->v.b, ip->aux) == 0;
	}
	case I_PFX:
		if (v->cls != C_STR)
			return 0;
		if (!v->pfxok)
			pv_prefixes(s, v, ip->path);
		return (v->pfx >> ip->v.u[0]) & 1;
	default:
		break;
	}
	if (v->cls != C_NUM)
		return 0;
	switch (ip->op) {
	case I_NLT:
		return pv_num(s, v) < ip->v.num;
	case I_NLE:
		return pv_num(s, v) <= ip->v.num;
	case I_NGT:
		return pv_num(s, v) > ip->v.num;
	case I_NGE:
		return pv_num(s, v) >= ip->v.num;
	case I_NEQ:
		return pv_num(s, v) == ip->v.num;
	default:
		return pv_num(s, v) != ip->v.num;
	}
}

/* The jv of an object key, from a small cache: events repeat the same keys,
 * and a shared jv string saves an allocation and a hash per member. */
static jv key_jv(struct cm_ruleset *s, const char *p, size_t n)
{
	uint64_t h;
	uint32_t i;
	struct kjv *e;

	if (n > 48 || !s->kjvcap)
		return jv_string_sized(p, (int)n);
	h = hash_bytes(p, n, 0x77);
	for (i = (uint32_t)h & (s->kjvcap - 1); s->kjv[i].used; i = (i + 1) & (s->kjvcap - 1)) {
		e = &s->kjv[i];
		if (e->h == h && e->len == n && memcmp(e->text, p, n) == 0)
			return jv_copy(e->key);
	}
	if (s->nkjv * 2 >= s->kjvcap)
		return jv_string_sized(p, (int)n);
	e = &s->kjv[i];
	e->used = 1;
	e->h = h;
	e->len = (uint8_t)n;
	memcpy(e->text, p, n);
	e->key = jv_string_sized(p, (int)n);
	s->nkjv++;
	return jv_copy(e->key);
}

/* Builds the jv of event token t straight from the tape, which costs less
 * than letting jq parse the text again. */
static jv tok_jv(struct cm_ruleset *s, uint32_t t)
{
	const struct cm_jdoc *d = s->doc;
	const struct cm_jtok *k = &d->tok[t];

	switch (k->type) {
	case CM_JNULL:
		return jv_null();
	case CM_JTRUE:
		return jv_true();
	case CM_JFALSE:
		return jv_false();
	case CM_JNUM:
		return jv_number(cm_json_num(d, t));
	case CM_JSTR: {
		size_t n;
		const char *p = cm_json_str(d, t, &s->tmp, &n);

		return p ? jv_string_sized(p, (int)n) : jv_invalid();
	}
	case CM_JARR: {
		jv a = jv_array_sized((int)k->count);
		uint32_t e = t + 1;

		for (uint32_t i = 0; i < k->count; i++, e = d->tok[e].next)
			a = jv_array_append(a, tok_jv(s, e));
		return a;
	}
	default: {
		jv o = jv_object();
		uint32_t e = t + 1;

		for (uint32_t i = 0; i < k->count; i++, e = d->tok[e + 1].next) {
			size_t n;
			const char *p;
			jv key;

			if (!d->tok[e].esc) {
				key = key_jv(s, d->src + d->tok[e].off, d->tok[e].len);
			} else {
				p = cm_json_str(d, e, &s->tmp, &n);
				key = p ? jv_string_sized(p, (int)n) : jv_string("");
			}
			o = jv_object_set(o, key, tok_jv(s, e + 1));
		}
		return o;
	}
	}
}

/* Runs a campaign's jq predicate on the event, converting the event to a
 * jv once per event and remembering each slot's answer. */
static int jq_holds(struct cm_ruleset *s, uint32_t local, uint32_t slot)
{
	struct cm_err err;
	int r;

	if (s->slotgen[slot] == s->gen)
		return s->slotres[slot];
	r = cm_jqx_eval_doc(s->jqx, slot, s->doc);
	if (r != CM_JQX_FALLBACK) {
		s->slotgen[slot] = s->gen;
		s->slotres[slot] = (uint8_t)r;
		return r;
	}
	if (!s->have_ev) {
		s->ev = tok_jv(s, 0);
		s->have_ev = 1;
	}
	if (!jv_is_valid(s->ev)) {
		cm_errf(&err, "the event cannot be converted for jq");
		r = CM_JQX_ERROR;
	} else {
		r = cm_jqx_eval(s->jqx, slot, s->ev, &err);
	}
	if (r == CM_JQX_ERROR) {
		s->jq_errors++;
		one_line(err.msg);
		if (s->on_jq)
			s->on_jq(s->on_jq_ctx, s->bids[s->cur->ids + local], err.msg);
		return 0;
	}
	s->slotgen[slot] = s->gen;
	s->slotres[slot] = (uint8_t)r;
	return r;
}

/* Finishes the evaluation of a candidate whose key holds: window, the rest
 * of its conditions, then jq. */
static inline void consider(struct cm_ruleset *s, int64_t t, const struct cblk *b)
{
	uint32_t r = b->local;

	if (b->flags & (B_WINDOW | B_MULTI)) {
		if (b->flags & B_WINDOW) {
			const int64_t *w = blk_window(b);

			if (t < w[0] || t >= w[1])
				return;
		}
		if ((b->flags & B_MULTI) && (s->hitbits[r / 64] >> (r % 64) & 1))
			return;
	}
	if (b->nins && !run(s, blk_ins(b)))
		return;
	if (b->jq >= 0 && !jq_holds(s, r, (uint32_t)b->jq))
		return;
	s->hits[s->nhits++] = r;
	s->hitbits[r / 64] |= (uint64_t)1 << (r % 64);
}

/* Considers every block of code[begin..end). */
static void run_list(struct cm_ruleset *s, int64_t t, uint32_t begin, uint32_t end)
{
	const uint64_t *p = s->code + begin, *e = s->code + end;

	while (p < e) {
		const struct cblk *b = (const struct cblk *)p;

		consider(s, t, b);
		p += b->words;
	}
}

/* Looks up the key table for a probe and value; returns the entry or NULL. */
static const struct kent *key_find(const struct cm_ruleset *s, uint32_t probe, uint32_t cls,
                                   double num, const char *p, size_t n)
{
	uint64_t h = key_hash(probe, cls, num, p, n);

	for (uint32_t i = (uint32_t)h & (s->keycap - 1); s->keys[i].end;
	     i = (i + 1) & (s->keycap - 1)) {
		const struct kent *e = &s->keys[i];

		if (e->h != h || e->probe != probe || e->cls != cls)
			continue;
		if (cls == C_STR ? (e->len == n && memcmp(pool_at(s, e->off), p, n) == 0)
		                 : e->num == num)
			return e;
	}
	return NULL;
}

/* Puts the hit ranks in ascending order: a short list by insertion, a long
 * one by reading the hit bitmap. Clears the bitmap. */
static void sort_hits(struct cm_ruleset *s)
{
	uint32_t *a = s->hits, n = s->nhits;

	if (n <= 16) {
		for (uint32_t i = 1; i < n; i++) {
			uint32_t x = a[i], j = i;

			while (j > 0 && a[j - 1] > x) {
				a[j] = a[j - 1];
				j--;
			}
			a[j] = x;
		}
		for (uint32_t i = 0; i < n; i++)
			s->hitbits[a[i] / 64] = 0;
		return;
	}
	{
		uint32_t lo = UINT32_MAX, hi = 0, k = 0;

		for (uint32_t i = 0; i < n; i++) {
			uint32_t w = a[i] / 64;

			lo = w < lo ? w : lo;
			hi = w > hi ? w : hi;
		}
		for (uint32_t w = lo; w <= hi; w++) {
			uint64_t bits = s->hitbits[w];

			s->hitbits[w] = 0;
			while (bits) {
				a[k++] = w * 64 + (uint32_t)__builtin_ctzll(bits);
				bits &= bits - 1;
			}
		}
	}
}

/* A candidate list found for the event: a key's list, or a range list
 * with the event's value. */
struct todo {
	uint32_t begin, end;
	uint32_t kind;
	double x;
};

/* Finds the candidate list of probe pi for the current event; 0 when the
 * event has no value that leads anywhere. */
static int find_list(struct cm_ruleset *s, uint32_t pi, struct todo *td)
{
	const struct probe *pr = &s->probes[pi];
	struct pval *v = resolve(s, pr->path);
	const struct kent *e = NULL;

	td->kind = pr->kind;
	switch (pr->kind) {
	case P_EQ:
		if (v->cls == C_NUM) {
			e = key_find(s, pi, C_NUM, pv_num(s, v), NULL, 0);
		} else if (v->cls == C_STR) {
			uint32_t id = pv_sid(s, v, pr->path);
			const uint32_t *l = s->sidlists + 2 * (pr->sidbase + id);

			if (!id || l[1] == l[0])
				return 0;
			td->begin = l[0];
			td->end = l[1];
			return 1;
		} else if (v->cls == C_BOOL) {
			e = key_find(s, pi, C_BOOL, s->doc->tok[v->tok].type == CM_JTRUE ? 1 : 0,
			             NULL, 0);
		}
		break;
	case P_PREFIX:
		if (v->cls == C_STR) {
			size_t n;
			const char *p = pv_str(s, v, &n);

			if (n >= pr->plen)
				e = key_find(s, pi, C_STR, 0, p, pr->plen);
		}
		break;
	default:
		if (v->cls != C_NUM || pr->end == pr->begin)
			return 0;
		td->x = pv_num(s, v);
		td->begin = pr->begin;
		td->end = pr->end;
		return 1;
	}
	if (!e)
		return 0;
	td->begin = e->begin;
	td->end = e->end;
	return 1;
}

/* Considers the blocks of a range list whose threshold the value passes:
 * lower bounds ascend (the key holds while t <= x), upper bounds descend
 * (while t >= x). */
static void run_range(struct cm_ruleset *s, int64_t t, const struct todo *td)
{
	const uint64_t *p = s->code + td->begin, *end = s->code + td->end;
	int lower = td->kind == P_LOWER;
	double x = td->x;

	while (p < end) {
		const struct cblk *c = (const struct cblk *)p;
		double th = blk_t(c);

		if (lower ? th > x : th < x)
			break;
		if (th != x || !(c->flags & B_STRICT))
			consider(s, t, c);
		p += c->words;
	}
}

/* Matches one event: the bucket of its type, the campaigns without a key,
 * then each probe's candidates. */
size_t cm_ruleset_match(struct cm_ruleset *s, const struct cm_rule_event *ev, const int64_t **ids)
{
	const struct bucket *b;
	int64_t t = ev->time_ms;
	uint32_t pi, pe;
	int resid_done = 0;

	*ids = s->ids;
	if (!s->compiled || s->problems || !s->act || s->nact == 0)
		return 0;
	s->doc = ev->doc;
	s->nhits = 0;
	if (++s->gen == 0) {
		memset(s->pc, 0, (s->npath ? s->npath : 1) * sizeof(*s->pc));
		memset(s->slotgen, 0, (cm_jqx_count(s->jqx) + 1) * sizeof(*s->slotgen));
		s->gen = 1;
	}
	cm_buf_reset(&s->arena);
	b = &s->buckets[type_bucket(s, ev->type, ev->type_len)];
	s->cur = b;
	/* First find every candidate list and ask for its first lines, so
	 * that the cache misses on list starts overlap; then run them, the
	 * campaigns without a key first. */
	if (b->end > b->begin)
		__builtin_prefetch(s->code + b->begin);
	pi = b->probes;
	pe = b->probes + b->nprobes;
	do {
		struct todo todo[32];
		uint32_t n = 0;

		for (; pi < pe && n < 32; pi++) {
			if (!find_list(s, pi, &todo[n]))
				continue;
			__builtin_prefetch(s->code + todo[n].begin);
			__builtin_prefetch(s->code + todo[n].begin + 8);
			n++;
		}
		if (!resid_done) {
			run_list(s, t, b->begin, b->end);
			resid_done = 1;
		}
		for (uint32_t i = 0; i < n; i++) {
			if (todo[i].kind == P_EQ || todo[i].kind == P_PREFIX)
				run_list(s, t, todo[i].begin, todo[i].end);
			else
				run_range(s, t, &todo[i]);
		}
	} while (pi < pe);
	if (s->have_ev) {
		jv_free(s->ev);
		s->have_ev = 0;
	}
	sort_hits(s);
	for (uint32_t i = 0; i < s->nhits; i++)
		s->ids[i] = s->bids[b->ids + s->hits[i]];
	return s->nhits;
}

/* ---- single campaign validation ---- */

struct first_problem {
	struct cm_err *err;
	int seen;
};

/* Keeps the first problem reported, for cm_campaign_validate. */
static void keep_first(void *ctx, const char *msg)
{
	struct first_problem *f = ctx;

	if (!f->seen++)
		cm_errf(f->err, "%s", msg);
}

/* Validates one campaign text completely, for an API that accepts one. */
int cm_campaign_validate(const char *json, size_t len, unsigned flags, struct cm_err *err)
{
	struct cm_ruleset *s = cm_ruleset_new();
	struct cm_jdoc d;
	struct cm_err perr;
	struct first_problem f = {err, 0};
	struct lctx lc;
	int rc = -1;

	cm_jdoc_init(&d, DOC_DEPTH);
	if (!s) {
		cm_errf(err, "out of memory");
		goto out;
	}
	if (cm_json_parse(&d, json, len, &perr) < 0) {
		cm_errf(err, "invalid JSON: %s", perr.msg);
		goto out;
	}
	lctx_init(&lc, s, keep_first, &f, NULL);
	lc.d = &d;
	lc.bare = 1;
	lc.flags = flags;
	lc.pos = 1;
	load_campaign(&lc, 0);
	if (lctx_release(&lc) != 0)
		goto out;
	/* Only the jq remains to be checked: compile it. */
	s->slotbad = calloc(cm_jqx_count(s->jqx) + 1, sizeof(*s->slotbad));
	if (!s->slotbad) {
		cm_errf(err, "out of memory");
		goto out;
	}
	s->nslotbad = cm_jqx_count(s->jqx);
	s->compiled = 1;
	if (cm_jqx_compile(s->jqx, on_bad_slot, s, &perr) < 0) {
		cm_errf(err, "%s", perr.msg);
		goto out;
	}
	if (s->nslotbad && s->slotbad[0]) {
		cm_errf(err, "rule.jq: does not compile: %s", s->slotbad[0]);
		goto out;
	}
	rc = 0;
out:
	cm_jdoc_release(&d);
	cm_ruleset_free(s);
	return rc;
}
