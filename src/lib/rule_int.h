/* rule_int.h - the rule engine's insides, shared by its files (the API is
 * rule.h; nothing outside src/lib/rule*.c includes this).
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
 *
 * A set's state comes in three parts by lifetime (struct cm_ruleset below):
 * what loading filled, the index compiling built from it, and the scratch
 * that matching writes for each event.
 *
 * The engine in files, in the order a campaign goes through them:
 *
 *     rule.c          the set's lifecycle, growing arrays, reporting problems
 *     rule_load.c     campaigns: cm_ruleset_load, cm_ruleset_add and
 *                     cm_campaign_validate
 *     rule_where.c    a rule.where: interned paths, constants, the condition tree
 *     rule_compile.c  cm_ruleset_compile: keys, string ids, programs, indexes
 *     rule_match.c    cm_rule_event_init and cm_ruleset_match
 *     rule_explain.c  cm_rule_explain: a slow evaluator of its own, for
 *                     explaining and for checking the others
 */
#ifndef CM_RULE_INT_H
#define CM_RULE_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jv.h>
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "hash.h"
#include "json.h"
#include "rule.h"

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

/* The operators of a leaf. */
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

/* The kinds of condition node. */
enum { K_LEAF, K_ALL, K_ANY, K_NOT };

/* A node of a condition tree: a leaf {"field","op","value"} or an all / any
 * of kids, or a not of one child. */
struct cond_node {
	uint8_t kind;   /* K_* */
	uint8_t op;     /* leaf: OP_* */
	uint16_t cost;  /* estimated, so that an all / any tries cheap kids first */
	uint32_t path;  /* leaf: interned path */
	uint32_t arg;   /* all/any: first kid in kids; not: child; leaf: value, set or regex */
	uint32_t nkids; /* all/any: number of kids */
};

/* A constant from a rule. Strings live in the pool; arrays and objects in
 * their own parsed document (containers). */
struct rule_value {
	uint8_t cls;        /* C_* */
	uint8_t truth;      /* C_BOOL: true or false */
	double num;         /* C_NUM */
	uint32_t off, len;  /* C_STR: in the pool */
	uint32_t container; /* C_ARR, C_OBJ: in containers; else NONE */
};

/* An array or object constant, parsed once for JSON equality tests. */
struct container_value {
	char *text;
	struct cm_jdoc doc;
};

/* Bytes in the pool. */
struct str_ref {
	uint32_t off, len;
};

/* The array of an in / not_in leaf, sorted for binary search. */
struct in_set {
	uint32_t nums, nnum;  /* into setnums */
	uint32_t strs, nstr;  /* into setstrs, ordered by length then bytes */
	uint32_t cplx, ncplx; /* into values */
	uint8_t classes;      /* bit 1 << class for each class present */
	uint8_t has_true, has_false;
	uint32_t total;
};

/* One segment of an interned path; parent NONE means the event root. */
struct path_seg {
	uint32_t parent;
	uint32_t off, len; /* the member name, in the pool */
	int64_t index;     /* the name as an array index, or -1 */
	uint64_t hash;
	uint8_t prof; /* the path is profile or below it: read in the user's profile */
};

/* A variant of a campaign's A/B split: its decoded name in the pool (and,
 * once compiled, the name as a JSON string literal). */
struct variant {
	uint32_t off, len;
	uint32_t jsoff, jslen;
	double weight;
};

/* A campaign as loaded, whatever its status. */
struct campaign {
	int64_t id;         /* 0 when absent or invalid */
	uint32_t pos;       /* 1-based position in its text, for messages */
	uint32_t src;       /* its source's name in sources, or NONE */
	unsigned long line; /* its line in its text, 0 when none */
	uint8_t active, bad;
	uint8_t status;                /* 0 active, 1 paused, 2 archived */
	int64_t start, end;            /* the window in ms; INT64_MIN / INT64_MAX when open */
	uint32_t types, ntypes;        /* into typerefs; 0 types: any */
	uint32_t where;                /* the root of its condition tree, or NONE */
	uint32_t where_off, where_len; /* rule.where as written (compact), in the pool */
	int64_t jq;                    /* its jq slot, or -1 */
	uint8_t reads_profile;         /* a profile.* leaf, or a jq predicate naming profile */
	uint8_t jq_prof;               /* its jq predicate names profile */
	/* Delivery controls (CONTRACT 1.6): */
	double holdout;                /* 0: none */
	uint32_t variants, nvariants;  /* into loaded.variants; 0 variants: none */
	int64_t per_user, cooldown_ms; /* 0: not limited that way */
	uint32_t limit_off, limit_len; /* the limit object, compact, in the pool; len 0: none */
	uint32_t cooldown_off, cooldown_len; /* limit.cooldown as written, in the pool */
};

/* An active campaign as the matcher sees it, indexed by rank (id order). */
struct active_campaign {
	int64_t id;
	int64_t start, end;
	uint32_t rest; /* what remains of where once the key holds, or NONE */
	uint32_t key;  /* key leaf (or, when multi, an any of key leaves), or NONE */
	int multi;     /* reached through each leaf of an any: dedupe hits */
	int64_t jq;
	uint32_t campaign;    /* index in camps */
	uint32_t prog, nprog; /* the rest compiled, in progs */
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

/* One compiled condition (I_*) with its operand. */
struct instruction {
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
 * rest. Most campaigns fit a cache line. */
struct campaign_block {
	uint32_t local; /* rank within the bucket (id order) */
	int32_t jq;
	uint16_t nins;  /* instructions at the end */
	uint16_t flags; /* B_* */
	uint32_t words; /* size of the whole block in 8-byte words */
};

/* What a campaign block holds besides its header. */
enum {
	B_STRICT = 1, /* range lists: gt / lt rather than gte / lte */
	B_MULTI = 2,  /* listed under several keys: skip when already a hit */
	B_RANGE = 4,  /* a double threshold follows the header */
	B_WINDOW = 8, /* int64 start and end (ms) follow */
};

/* The threshold of a block with B_RANGE. */
static inline double blk_t(const struct campaign_block *b)
{
	return *(const double *)(b + 1);
}

/* The window of a block with B_WINDOW: start, end. */
static inline const int64_t *blk_window(const struct campaign_block *b)
{
	return (const int64_t *)((const char *)(b + 1) + (b->flags & B_RANGE ? 8 : 0));
}

/* The first instruction of a block's rest. */
static inline const struct instruction *blk_ins(const struct campaign_block *b)
{
	return (const struct instruction *)((const char *)(b + 1) + (b->flags & B_RANGE ? 8 : 0) +
	                                    (b->flags & B_WINDOW ? 16 : 0));
}

/* How a probe looks an event's value up: by equality (number, boolean or
 * string id), by a prefix of some length, or against thresholds. */
enum { P_EQ, P_PREFIX, P_LOWER, P_UPPER };

/* One lookup a bucket makes on each event: a path and a way (P_*) to find
 * the candidate lists of its value. */
struct probe {
	uint8_t kind;
	uint32_t path;
	uint32_t plen;       /* P_PREFIX: the prefix length */
	uint32_t sidbase;    /* P_EQ: the lists of string keys, by id, in sidlists */
	uint32_t begin, end; /* P_LOWER (ascending t) / P_UPPER (descending t): in code */
};

/* The active campaigns of one event type (bucket 0: of any type) and
 * their probes. */
struct bucket {
	uint32_t begin, end; /* campaigns without a key: in code */
	uint32_t probes, nprobes;
	uint32_t ids, nmem;    /* the members' ids in local rank order: in member_ids */
	uint8_t reads_profile; /* some member reads the user's profile */
};

/* An entry of the key table: a probe, a value and its candidate list. */
struct key_entry {
	uint64_t hash;
	uint32_t probe;
	uint32_t cls;
	double num;
	uint32_t off, len;
	uint32_t begin, end; /* in code; end 0: empty slot */
};

/* An entry of the type map: an event type and its bucket. */
struct type_entry {
	uint64_t hash;
	uint32_t off, len;
	uint32_t bucket; /* NONE: empty slot */
};

/* An entry of the string id table: a string constant on a path. */
struct string_id {
	uint64_t hash;
	uint32_t path;
	uint32_t off, len;
	uint32_t sid; /* 0: empty slot */
};

/* A cached jv of an object key. */
struct key_jv {
	uint64_t hash;
	jv key;
	uint8_t used, len;
	char text[48];
};

/* A path's value in the current event, filled lazily; each *ok says that
 * the field after it is computed. */
struct path_value {
	const struct cm_jdoc *doc; /* the document tok is in: the event or the profile */
	uint32_t gen;              /* the event it belongs to: current when equal to the set's */
	uint32_t tok;              /* its token, or CM_JNONE */
	uint8_t cls;               /* C_* */
	uint8_t numok, strok, sidok, pfxok;
	uint32_t sid;
	uint64_t pfx; /* bit k: starts with the path's prefix k */
	double num;
	uint32_t soff, slen; /* a decoded string: in arena */
};

/* What loading fills (cm_ruleset_load, cm_ruleset_add, rule_where.c): the
 * campaigns and everything their rules hold, by index. Compiling reads it
 * and only adds nodes and kids (each keyed all without its key); matching
 * reads it. */
struct rules_loaded {
	struct campaign *camps;
	uint32_t ncamp, campcap;
	struct cm_buf pool; /* every string of the rules, by offset */
	struct cond_node *nodes;
	uint32_t nnode, nodecap;
	uint32_t *kids; /* the kids of all / any nodes */
	uint32_t nkid, kidcap;
	struct rule_value *values;
	uint32_t nvalue, valuecap;
	struct container_value *containers;
	uint32_t ncontainers, containercap;
	struct in_set *sets;
	uint32_t nset, setcap;
	double *setnums;
	uint32_t nsetnum, setnumcap;
	struct str_ref *setstrs;
	uint32_t nsetstr, setstrcap;
	struct str_ref *typerefs; /* each campaign's event types */
	uint32_t ntyperef, typerefcap;
	struct variant *variants; /* each campaign's variants */
	uint32_t nvariant, variantcap;
	pcre2_code **regexes;
	uint32_t nregex, regexcap;
	uint8_t *regex_jit; /* per regex: JIT compiled */
	struct path_seg *paths;
	uint32_t npath, pathcap;
	uint32_t *path_tab; /* path intern table: index + 1 */
	uint32_t path_tabcap;
	char **sources;
	uint32_t nsrc, srccap;
	uint32_t *idtab; /* id table: camp index + 1 */
	uint32_t idtabcap, nids;
};

/* What compiling builds (cm_ruleset_compile) over the active campaigns:
 * the matcher, frozen afterwards and only read while matching. */
struct rules_index {
	struct active_campaign *active; /* by rank (id order) */
	uint32_t nactive;
	struct bucket *buckets;
	uint32_t nbucket;
	struct type_entry *type_map;
	uint32_t type_mapcap;
	struct probe *probes;
	uint32_t nprobe, probecap;
	struct key_entry *keys;
	uint32_t keycap;
	uint64_t *code; /* candidate blocks, in 8-byte words */
	uint32_t ncode, codecap;
	struct instruction *progs; /* the active campaigns' rests, while building */
	uint32_t nprogs, progscap;
	struct string_id *sids;
	uint32_t sidcap, nsid;
	uint32_t *sidlists; /* pairs begin, end per (P_EQ probe, string id) */
	uint32_t nsidlists;
	uint32_t *path_nsids;     /* per path: string ids given so far */
	struct str_ref *prefixes; /* starts_with prefixes, grouped by path */
	uint32_t nprefixes, prefixcap;
	uint32_t *path_prefix;   /* per path: its first in prefixes */
	uint8_t *path_nprefixes; /* per path: how many */
	int64_t *member_ids;     /* each bucket's member ids */
	uint32_t *member_camps;  /* and their campaigns, in camps */
	uint32_t nmember_ids;
	struct cm_rule_controls *ctls; /* the delivery controls of the campaigns that have them */
	struct cm_rule_variant *ctl_variants;
	double *ctl_weights;
	uint32_t *camp_ctl; /* per campaign: its index in ctls + 1, or 0 */
	uint32_t nctls;
	uint32_t *by_id; /* every good campaign, ascending id (for explain) */
	uint32_t nby_id;
	int64_t *explain_ids; /* explain's answer */
	char **slot_errors;   /* per jq slot: jq's message when it does not compile */
	uint32_t nslot_errors;
	uint8_t *slot_prof; /* per jq slot: its text names profile */
};

/* What matching writes, sized by compiling so that matching allocates
 * nothing: the event being matched and what is known of it so far. */
struct rules_scratch {
	const struct cm_jdoc *doc;
	const struct cm_jdoc *prof;                  /* the user's traits (root 0), or NULL */
	const struct cm_jdoc *(*prof_fn)(void *ctx); /* asked for prof once, lazily */
	void *prof_ctx;
	int prof_done;               /* prof is known */
	struct path_value *pathvals; /* by path */
	uint32_t gen;                /* the current event's generation */
	struct cm_buf arena;         /* decoded strings of the event */
	struct cm_buf tmp;           /* decoded strings used at once */
	uint32_t *hits;              /* local ranks of the campaigns that matched */
	uint32_t nhits;
	uint64_t *hitbits;               /* the same, as a bitmap */
	const struct bucket *cur_bucket; /* the bucket of the event being matched */
	int64_t *ids;                    /* the result */
	jv ev_jv;                        /* the event as a jq value, once needed */
	int have_ev_jv;
	struct key_jv *key_jvs; /* key cache for building event jvs */
	uint32_t key_jvcap, nkey_jvs;
	uint32_t *slot_gen; /* per jq slot: the generation of its answer */
	uint8_t *slot_answer;
	pcre2_match_data *match_data;
	pcre2_match_context *match_ctx;
	pcre2_jit_stack *jit_stack;
};

/* A rule set: what was loaded, the matcher compiled from it, and the
 * scratch of the event being matched. */
struct cm_ruleset {
	struct rules_loaded loaded;
	struct rules_index index;
	struct rules_scratch scratch;
	/* The jq predicates: added while loading, compiled by compiling, run
	 * (with jq's own state) while matching. */
	struct cm_jqx *jqx;
	struct rule_explain *explain; /* explain's state, made when first asked */
	int problems;                 /* found so far, loading and compiling */
	int compiled;
	uint64_t serial;              /* cm_ruleset_serial */
	unsigned long long jq_errors; /* runtime errors while matching */
	cm_rule_jqerrfn *on_jq;
	void *on_jq_ctx;
};

/* What a campaign being loaded needs: where it came from (for messages) and
 * the JSON path of the part being looked at. */
struct load_ctx {
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
	int reads_profile; /* the campaign so far has a profile.* leaf */
	struct cm_buf path;
	struct cm_buf msg;
	struct cm_buf str; /* decoded strings (rule_tok_str) */
};

/* ---- small helpers, inline: matching uses them on every event ---- */

/* A fast hash for short strings (keys, types, values): libcm's one. */
static inline uint64_t hash_bytes(const char *s, size_t n, uint64_t seed)
{
	return cm_hash_bytes(s, n, seed);
}

/* Mixes a 64-bit value into a hash. */
static inline uint64_t hash_u64(uint64_t x, uint64_t seed)
{
	x ^= seed;
	x ^= x >> 33;
	x *= 0xFF51AFD7ED558CCDULL;
	x ^= x >> 33;
	x *= 0xC4CEB9FE1A85EC53ULL;
	return x ^ (x >> 33);
}

/* The hash of a number key: -0 and 0 are the same number. */
static inline uint64_t hash_num(double v, uint64_t seed)
{
	uint64_t bits;

	if (v == 0)
		v = 0;
	memcpy(&bits, &v, sizeof(bits));
	return hash_u64(bits, seed);
}

/* Bytes at a pool offset (offsets survive the pool growing). */
static inline const char *pool_at(const struct rules_loaded *ld, uint32_t off)
{
	return ld->pool.data + off;
}

/* The comparison class of a JSON token type (true and false are one). */
static inline int cls_of_type(uint8_t t)
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
static inline int bytes_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);

	if (c)
		return c;
	return an < bn ? -1 : an > bn;
}

/* The hash of a key value for a probe. */
static inline uint64_t key_hash(uint32_t probe, uint32_t cls, double num, const char *p, size_t n)
{
	uint64_t seed = ((uint64_t)probe << 8 | cls) * 0x9E3779B97F4A7C15ULL;

	return cls == C_STR ? hash_bytes(p, n, seed) : hash_num(num, seed);
}

/* ---- index lookups, inline: compiling and matching use them ---- */

/* The id of string p[0..n) on path, or 0 when no rule compares that path
 * with that string. */
static inline uint32_t sid_find(const struct cm_ruleset *s, uint32_t path, const char *p, size_t n)
{
	uint64_t h;

	if (!s->index.sidcap)
		return 0;
	h = hash_bytes(p, n, (uint64_t)path * 0x9E3779B97F4A7C15ULL + 3);
	for (uint32_t i = (uint32_t)h & (s->index.sidcap - 1); s->index.sids[i].sid;
	     i = (i + 1) & (s->index.sidcap - 1)) {
		const struct string_id *e = &s->index.sids[i];

		if (e->hash == h && e->path == path && e->len == n &&
		    memcmp(pool_at(&s->loaded, e->off), p, n) == 0)
			return e->sid;
	}
	return 0;
}

/* Finds the bucket of an event type, or bucket 0 (any-type campaigns). */
static inline uint32_t type_bucket(const struct cm_ruleset *s, const char *p, size_t n)
{
	uint64_t h;

	if (!s->index.type_mapcap)
		return 0;
	h = hash_bytes(p, n, 0x51);
	for (uint32_t i = (uint32_t)h & (s->index.type_mapcap - 1);
	     s->index.type_map[i].bucket != NONE; i = (i + 1) & (s->index.type_mapcap - 1)) {
		const struct type_entry *t = &s->index.type_map[i];

		if (t->hash == h && t->len == n && memcmp(pool_at(&s->loaded, t->off), p, n) == 0)
			return t->bucket;
	}
	return 0;
}

/* ---- shared helpers (rule.c) ---- */

/* Grows an array of elsize-byte elements so that it holds need elements;
 * -1 when memory is out or the count would overflow. */
int rule_grow_array(void **p, uint32_t *cap, uint32_t need, size_t elsize);
/* Appends val to arr[0..n), growing it; 0 or -1. */
#define PUSH(arr, n, cap, val)                                                                     \
	(rule_grow_array((void **)&(arr), &(cap), (n) + 1, sizeof(*(arr))) < 0                     \
	     ? -1                                                                                  \
	     : ((arr)[(n)++] = (val), 0))
/* Copies bytes into the pool and returns their offset, NONE on failure. */
uint32_t rule_pool_add(struct rules_loaded *ld, const char *p, size_t n);
/* Makes a message one printable line (control bytes become '?'). */
void rule_one_line(char *m);
/* The kind of value at token t, for messages ("a string"). */
const char *rule_type_word(const struct cm_jdoc *d, uint32_t t);

/* Prepares a loading context; its buffers are released by
 * rule_load_ctx_release. */
void rule_load_ctx_init(struct load_ctx *lc, struct cm_ruleset *s, cm_rule_reportfn *report,
                        void *ctx, const char *source);
/* Ends a loading context: adds its problems to the set's count (an out of
 * memory condition is reported once) and returns its problem count or -1. */
int rule_load_ctx_release(struct load_ctx *lc);
/* Reports one problem at the current path, with the campaign's label. */
void rule_problem(struct load_ctx *lc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends ".name" (or "name" at the start) to the path; returns the old
 * length for rule_path_pop. */
size_t rule_path_key(struct load_ctx *lc, const char *name, size_t n);
/* Appends "[i]" to the path; returns the old length. */
size_t rule_path_index(struct load_ctx *lc, uint32_t i);
/* Cuts the path back to what it was at mark. */
void rule_path_pop(struct load_ctx *lc, size_t mark);
/* Decoded bytes of string token t (valid until the next call). */
const char *rule_tok_str(struct load_ctx *lc, uint32_t t, size_t *n);

struct rule_explain;
/* Frees explain's state (rule_explain.c). */
void rule_explain_free(struct rule_explain *x);
/* The campaign with id, or NONE (rule_load.c). */
uint32_t rule_camp_find(const struct rules_loaded *ld, int64_t id);

/* ---- between the parts ---- */

/* Builds the condition tree of the rule.where at token t (rule_where.c),
 * reporting every problem inside it; returns its root, NONE if there was
 * any. */
uint32_t rule_where_build(struct load_ctx *lc, uint32_t t);
/* The jq input of an event: the event (root 0 of d) with "profile" added,
 * the traits at root 0 of prof, or {} when prof is NULL (rule_match.c). */
jv rule_event_jv(struct cm_ruleset *s, const struct cm_jdoc *d, const struct cm_jdoc *prof);
/* Compiles the set's jq predicates, keeping jq's message for each that
 * fails in slot_errors (rule_compile.c). Returns 0, or -1 with err when memory
 * is out. */
int rule_compile_jq(struct cm_ruleset *s, struct cm_err *err);

#endif
