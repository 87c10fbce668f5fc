/* rule_compile.c - freezing a loaded set into the matcher: jq compiled,
 * each active campaign's key chosen and the rest of its where compiled to
 * instructions, string constants numbered per path, then the type buckets
 * with their key tables and candidate lists (see rule_int.h). */
#include "rule_int.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "jqx.h"

/* ---- jq and keys ---- */

/* Remembers jq's message for a slot that does not compile. */
static void on_bad_slot(void *ctx, uint32_t slot, const char *msg)
{
	struct cm_ruleset *s = ctx;

	if (slot < s->index.nslot_errors && !s->index.slot_errors[slot])
		s->index.slot_errors[slot] = strdup(msg);
	if (slot < s->index.nslot_errors && !s->index.slot_errors[slot])
		s->index.slot_errors[slot] = strdup("");
}

/* Compiles jq, keeping each failing slot's message for report_jq. */
int rule_compile_jq(struct cm_ruleset *s, struct cm_err *err)
{
	uint32_t nslots = cm_jqx_count(s->jqx);

	s->index.slot_errors = calloc(nslots ? nslots : 1, sizeof(*s->index.slot_errors));
	if (!s->index.slot_errors)
		return cm_errf(err, "out of memory");
	s->index.nslot_errors = nslots;
	s->index.slot_prof = calloc(nslots ? nslots : 1, 1);
	if (!s->index.slot_prof)
		return cm_errf(err, "out of memory");
	for (uint32_t i = 0; i < s->loaded.ncamp; i++)
		if (s->loaded.camps[i].jq >= 0 && s->loaded.camps[i].jq_prof)
			s->index.slot_prof[s->loaded.camps[i].jq] = 1;
	return cm_jqx_compile(s->jqx, on_bad_slot, s, err) < 0 ? -1 : 0;
}

/* Reports, for every campaign, a jq expression that did not compile. */
static int report_jq(struct cm_ruleset *s, cm_rule_reportfn *report, void *ctx)
{
	struct load_ctx lc;

	rule_load_ctx_init(&lc, s, report, ctx, NULL);
	for (uint32_t i = 0; i < s->loaded.ncamp; i++) {
		struct campaign *c = &s->loaded.camps[i];

		if (c->jq < 0 || !s->index.slot_errors[c->jq])
			continue;
		lc.source = c->src == NONE ? NULL : s->loaded.sources[c->src];
		lc.line = c->line;
		lc.pos = c->pos;
		lc.id = c->id;
		rule_path_pop(&lc, 0);
		cm_buf_adds(&lc.path, "rule.jq");
		rule_problem(&lc, "does not compile: %s", s->index.slot_errors[c->jq]);
		c->bad = 1;
	}
	return rule_load_ctx_release(&lc);
}

/* Can leaf n serve as a campaign's key, and how good is it (lower is
 * better)? Returns 0 when it cannot. */
static unsigned key_score(const struct cm_ruleset *s, const struct cond_node *n)
{
	/* Never a profile leaf: a probe on it would ask every event of the
	 * type for its user's profile, which is looked up only when a rule
	 * gets that far. */
	if (n->kind != K_LEAF || s->loaded.paths[n->path].prof)
		return 0;
	switch (n->op) {
	case OP_EQ: {
		int cls = s->loaded.values[n->arg].cls;

		return cls == C_NUM || cls == C_STR || cls == C_BOOL ? 2 : 0;
	}
	case OP_IN: {
		const struct in_set *set = &s->loaded.sets[n->arg];

		if (set->ncplx)
			return 0;
		return set->total == 0 ? 1 : 3 + (set->total > 50 ? 50 : set->total);
	}
	case OP_STARTS_WITH:
		return s->loaded.values[n->arg].len > 0 ? 60 : 0;
	case OP_LT:
	case OP_LTE:
	case OP_GT:
	case OP_GTE:
		return s->loaded.values[n->arg].cls == C_NUM ? 100 : 0;
	default:
		return 0;
	}
}

/* Picks the key of an active campaign and builds what remains of its where
 * once the key holds. */
static int choose_key(struct cm_ruleset *s, struct active_campaign *a, uint32_t where)
{
	const struct cond_node *root;
	unsigned best = 0;
	uint32_t bestk = NONE;

	a->key = NONE;
	a->multi = 0;
	a->rest = where;
	if (where == NONE)
		return 0;
	root = &s->loaded.nodes[where];
	if (root->kind == K_LEAF) {
		if (key_score(s, root)) {
			a->key = where;
			a->rest = NONE;
		}
		return 0;
	}
	if (root->kind == K_ANY) {
		/* An any of key leaves holds exactly when one of its keys does:
		 * list the campaign under each, with nothing left to test. */
		for (uint32_t i = 0; i < root->nkids; i++)
			if (!key_score(s, &s->loaded.nodes[s->loaded.kids[root->arg + i]]))
				return 0;
		if (root->nkids == 0)
			return 0;
		a->key = where;
		a->multi = 1;
		a->rest = NONE;
		return 0;
	}
	if (root->kind != K_ALL)
		return 0;
	for (uint32_t i = 0; i < root->nkids; i++) {
		unsigned sc = key_score(s, &s->loaded.nodes[s->loaded.kids[root->arg + i]]);

		if (sc && (!best || sc < best)) {
			best = sc;
			bestk = i;
		}
	}
	if (bestk == NONE)
		return 0;
	a->key = s->loaded.kids[root->arg + bestk];
	if (root->nkids == 1) {
		a->rest = NONE;
		return 0;
	}
	{
		struct cond_node nd = *root;
		uint32_t first = s->loaded.nkid;

		for (uint32_t i = 0; i < root->nkids; i++) {
			if (i == bestk)
				continue;
			if (PUSH(s->loaded.kids, s->loaded.nkid, s->loaded.kidcap,
			         s->loaded.kids[s->loaded.nodes[where].arg + i]) < 0)
				return -1;
		}
		nd.arg = first;
		nd.nkids = s->loaded.nodes[where].nkids - 1;
		if (PUSH(s->loaded.nodes, s->loaded.nnode, s->loaded.nodecap, nd) < 0)
			return -1;
		a->rest = s->loaded.nnode - 1;
	}
	return 0;
}

/* Orders active campaigns by id, which is the order of results. */
static int active_cmp(const void *a, const void *b)
{
	const struct active_campaign *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* ---- string ids ---- */

/* Gives the string at pool offset off an id on path (once). */
static int sid_add(struct cm_ruleset *s, uint32_t path, uint32_t off, uint32_t len)
{
	const char *p = pool_at(&s->loaded, off);
	uint64_t h = hash_bytes(p, len, (uint64_t)path * 0x9E3779B97F4A7C15ULL + 3);
	uint32_t i;

	if ((s->index.nsid + 1) * 2 > s->index.sidcap) {
		uint32_t cap = s->index.sidcap ? s->index.sidcap * 2 : 256;
		struct string_id *t = calloc(cap, sizeof(*t));

		if (!t)
			return -1;
		for (uint32_t k = 0; k < s->index.sidcap; k++) {
			if (!s->index.sids[k].sid)
				continue;
			for (i = (uint32_t)s->index.sids[k].hash & (cap - 1); t[i].sid;
			     i = (i + 1) & (cap - 1))
				;
			t[i] = s->index.sids[k];
		}
		free(s->index.sids);
		s->index.sids = t;
		s->index.sidcap = cap;
	}
	for (i = (uint32_t)h & (s->index.sidcap - 1); s->index.sids[i].sid;
	     i = (i + 1) & (s->index.sidcap - 1)) {
		const struct string_id *e = &s->index.sids[i];

		if (e->hash == h && e->path == path && e->len == len &&
		    memcmp(pool_at(&s->loaded, e->off), p, len) == 0)
			return 0;
	}
	s->index.sids[i].hash = h;
	s->index.sids[i].path = path;
	s->index.sids[i].off = off;
	s->index.sids[i].len = len;
	s->index.sids[i].sid = ++s->index.path_nsids[path];
	s->index.nsid++;
	return 0;
}

/* Gives ids to the string constants of eq, ne, in and not_in leaves, per
 * path, in the order they first appear. */
static int assign_sids(struct cm_ruleset *s)
{
	s->index.path_nsids =
	    calloc(s->loaded.npath ? s->loaded.npath : 1, sizeof(*s->index.path_nsids));
	if (!s->index.path_nsids)
		return -1;
	for (uint32_t i = 0; i < s->loaded.nnode; i++) {
		const struct cond_node *n = &s->loaded.nodes[i];

		if (n->kind != K_LEAF)
			continue;
		if ((n->op == OP_EQ || n->op == OP_NE) && s->loaded.values[n->arg].cls == C_STR) {
			if (sid_add(s, n->path, s->loaded.values[n->arg].off,
			            s->loaded.values[n->arg].len) < 0)
				return -1;
		} else if (n->op == OP_IN || n->op == OP_NOT_IN) {
			const struct in_set *set = &s->loaded.sets[n->arg];

			for (uint32_t k = 0; k < set->nstr; k++)
				if (sid_add(s, n->path, s->loaded.setstrs[set->strs + k].off,
				            s->loaded.setstrs[set->strs + k].len) < 0)
					return -1;
		}
	}
	return 0;
}

/* Orders starts_with leaves by path, then by node (arg: the nodes). */
static int leaf_path_cmp(const void *a, const void *b, void *arg)
{
	const struct cond_node *nodes = arg;
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

	s->index.path_prefix =
	    calloc(s->loaded.npath ? s->loaded.npath : 1, sizeof(*s->index.path_prefix));
	s->index.path_nprefixes =
	    calloc(s->loaded.npath ? s->loaded.npath : 1, sizeof(*s->index.path_nprefixes));
	if (!s->index.path_prefix || !s->index.path_nprefixes)
		goto out;
	for (uint32_t i = 0; i < s->loaded.nnode; i++)
		if (s->loaded.nodes[i].kind == K_LEAF && s->loaded.nodes[i].op == OP_STARTS_WITH &&
		    PUSH(leaves, nl, cap, i) < 0)
			goto out;
	if (nl > 1)
		qsort_r(leaves, nl, sizeof(*leaves), leaf_path_cmp, s->loaded.nodes);
	for (uint32_t i = 0; i < nl;) {
		uint32_t path = s->loaded.nodes[leaves[i]].path, first = s->index.nprefixes;

		for (; i < nl && s->loaded.nodes[leaves[i]].path == path; i++) {
			const struct rule_value *v =
			    &s->loaded.values[s->loaded.nodes[leaves[i]].arg];
			uint32_t k;

			for (k = first; k < s->index.nprefixes; k++)
				if (s->index.prefixes[k].len == v->len &&
				    memcmp(pool_at(&s->loaded, s->index.prefixes[k].off),
				           pool_at(&s->loaded, v->off), v->len) == 0)
					break;
			if (k < s->index.nprefixes || s->index.nprefixes - first >= 64)
				continue;
			if (rule_grow_array((void **)&s->index.prefixes, &s->index.prefixcap,
			                    s->index.nprefixes + 1, sizeof(*s->index.prefixes)) < 0)
				goto out;
			s->index.prefixes[s->index.nprefixes].off = v->off;
			s->index.prefixes[s->index.nprefixes].len = v->len;
			s->index.nprefixes++;
		}
		s->index.path_prefix[path] = first;
		s->index.path_nprefixes[path] = (uint8_t)(s->index.nprefixes - first);
	}
	rc = 0;
out:
	free(leaves);
	return rc;
}

/* The number of a prefix on its path, or -1. */
static int prefix_bit(const struct cm_ruleset *s, uint32_t path, const struct rule_value *v)
{
	for (uint32_t k = 0; k < s->index.path_nprefixes[path]; k++) {
		const struct str_ref *r = &s->index.prefixes[s->index.path_prefix[path] + k];

		if (r->len == v->len &&
		    memcmp(pool_at(&s->loaded, r->off), pool_at(&s->loaded, v->off), v->len) == 0)
			return (int)k;
	}
	return -1;
}

/* ---- programs ---- */

/* The mask of string ids of an in-set that holds only strings, all with
 * ids below 64; returns -1 when the set does not fit a mask. */
static int set_mask(const struct cm_ruleset *s, uint32_t path, const struct in_set *set,
                    uint64_t *mask)
{
	*mask = 0;
	if (set->total == 0 || set->nstr != set->total)
		return -1;
	for (uint32_t k = 0; k < set->nstr; k++) {
		const struct str_ref *r = &s->loaded.setstrs[set->strs + k];
		uint32_t id = sid_find(s, path, pool_at(&s->loaded, r->off), r->len);

		if (id == 0 || id >= 64)
			return -1;
		*mask |= (uint64_t)1 << id;
	}
	return 0;
}

/* Appends the instructions of node ni to progs; returns the subtree size,
 * or 0 when memory is out. */
static uint32_t emit_ins(struct cm_ruleset *s, uint32_t ni)
{
	const struct cond_node *n = &s->loaded.nodes[ni];
	struct instruction in;
	uint32_t at = s->index.nprogs, size = 1;

	memset(&in, 0, sizeof(in));
	in.path = n->path;
	in.op = I_NODE;
	in.v.u[0] = ni;
	switch (n->kind) {
	case K_ALL:
	case K_ANY:
		in.op = n->kind == K_ALL ? I_ALL : I_ANY;
		in.v.u[0] = n->nkids;
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
			const struct rule_value *c = &s->loaded.values[n->arg];

			if (c->cls == C_NUM) {
				static const uint8_t nops[] = {I_NEQ, I_NNE, I_NLT,
				                               I_NLE, I_NGT, I_NGE};

				in.op = nops[n->op - OP_EQ];
				in.v.num = c->num;
			} else if (c->cls == C_STR && (n->op == OP_EQ || n->op == OP_NE)) {
				in.op = n->op == OP_EQ ? I_SEQ : I_SNE;
				in.v.u[0] =
				    sid_find(s, n->path, pool_at(&s->loaded, c->off), c->len);
			}
			break;
		}
		case OP_IN:
		case OP_NOT_IN: {
			uint64_t mask;

			if (set_mask(s, n->path, &s->loaded.sets[n->arg], &mask) == 0) {
				in.op = n->op == OP_IN ? I_SIN : I_SNOTIN;
				in.v.mask = mask;
			}
			break;
		}
		case OP_STARTS_WITH: {
			const struct rule_value *c = &s->loaded.values[n->arg];
			int bit = prefix_bit(s, n->path, c);

			if (bit >= 0) {
				in.op = I_PFX;
				in.v.u[0] = (uint32_t)bit;
			} else if (c->len <= 8) {
				in.op = I_PREFIX;
				in.aux = (uint8_t)c->len;
				memcpy(in.v.b, pool_at(&s->loaded, c->off), c->len);
			}
			break;
		}
		default:
			break;
		}
		break;
	}
	if (PUSH(s->index.progs, s->index.nprogs, s->index.progscap, in) < 0)
		return 0;
	if (n->kind == K_ALL || n->kind == K_ANY) {
		for (uint32_t i = 0; i < n->nkids; i++) {
			uint32_t k = emit_ins(s, s->loaded.kids[s->loaded.nodes[ni].arg + i]);

			if (!k)
				return 0;
			size += k;
		}
	} else if (n->kind == K_NOT) {
		uint32_t k = emit_ins(s, s->loaded.nodes[ni].arg);

		if (!k)
			return 0;
		size += k;
	}
	/* A subtree too big for the size field is evaluated from the tree. */
	if (size > UINT16_MAX) {
		s->index.nprogs = at + 1;
		s->index.progs[at].op = I_NODE;
		s->index.progs[at].path = NONE;
		s->index.progs[at].v.u[0] = ni;
		size = 1;
	}
	s->index.progs[at].size = (uint16_t)size;
	return size;
}

/* Appends the candidate block of campaign rank to code; t and strict are
 * for range lists. */
static int emit_block(struct cm_ruleset *s, uint32_t rank, uint32_t local, double t, uint32_t flags)
{
	const struct active_campaign *a = &s->index.active[rank];
	size_t words;
	struct campaign_block h;
	char *p;

	memset(&h, 0, sizeof(h));
	h.local = local;
	h.jq = (int32_t)a->jq;
	h.nins = (uint16_t)a->nprog;
	h.flags = (uint16_t)(flags | (a->multi ? B_MULTI : 0));
	if (a->start != INT64_MIN || a->end != INT64_MAX)
		h.flags |= B_WINDOW;
	words = (sizeof(h) + (h.flags & B_RANGE ? 8 : 0) + (h.flags & B_WINDOW ? 16 : 0) +
	         a->nprog * sizeof(struct instruction)) /
	        8;
	h.words = (uint32_t)words;
	if (a->nprog > UINT16_MAX || s->index.ncode + words >= UINT32_MAX / 2 ||
	    rule_grow_array((void **)&s->index.code, &s->index.codecap,
	                    s->index.ncode + (uint32_t)words, sizeof(*s->index.code)) < 0)
		return -1;
	p = (char *)(s->index.code + s->index.ncode);
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
		memcpy(p, s->index.progs + a->prog, a->nprog * sizeof(struct instruction));
	s->index.ncode += (uint32_t)words;
	return 0;
}

/* ---- indexes ---- */

/* A key tuple gathered while building the key table. */
struct key_tuple {
	uint32_t probe;
	uint32_t cls;
	double num;
	uint32_t off, len;
	uint32_t rank;
	uint32_t local;
};

/* Orders key tuples by probe, class, value, rank (arg: the set). */
static int key_tuple_cmp(const void *a, const void *b, void *arg)
{
	const struct key_tuple *x = a, *y = b;
	const struct cm_ruleset *s = arg;
	int c;

	if (x->probe != y->probe)
		return x->probe < y->probe ? -1 : 1;
	if (x->cls != y->cls)
		return x->cls < y->cls ? -1 : 1;
	if (x->cls == C_STR) {
		c = bytes_cmp(pool_at(&s->loaded, x->off), x->len, pool_at(&s->loaded, y->off),
		              y->len);
		if (c)
			return c;
	} else if (x->num != y->num) {
		return x->num < y->num ? -1 : 1;
	}
	return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/* A range tuple: a threshold campaign under a probe. */
struct range_tuple {
	uint32_t probe;
	uint32_t rank;
	uint32_t local;
	double t;
	int strict;
	int desc;
};

/* Orders range tuples by probe, then threshold (descending for upper
 * bounds), then rank. */
static int range_tuple_cmp(const void *a, const void *b)
{
	const struct range_tuple *x = a, *y = b;

	if (x->probe != y->probe)
		return x->probe < y->probe ? -1 : 1;
	if (x->t != y->t)
		return (x->t < y->t) != x->desc ? -1 : 1;
	return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/* Finds (or creates) the probe of bucket b for a key leaf. */
static uint32_t probe_for(struct cm_ruleset *s, struct bucket *b, const struct cond_node *k)
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
		p.plen = s->loaded.values[k->arg].len;
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
		if (s->index.probes[i].kind == p.kind && s->index.probes[i].path == p.path &&
		    s->index.probes[i].plen == p.plen)
			return i;
	if (PUSH(s->index.probes, s->index.nprobe, s->index.probecap, p) < 0)
		return NONE;
	b->nprobes++;
	return s->index.nprobe - 1;
}

/* True when two sorted key tuples name the same key. */
static int same_key(const struct cm_ruleset *s, const struct key_tuple *x,
                    const struct key_tuple *y)
{
	if (x->probe != y->probe || x->cls != y->cls)
		return 0;
	if (x->cls == C_STR)
		return x->len == y->len && memcmp(pool_at(&s->loaded, x->off),
		                                  pool_at(&s->loaded, y->off), x->len) == 0;
	return x->num == y->num;
}

/* Builds the key table and the keyed candidate lists from the tuples. */
static int build_keys(struct cm_ruleset *s, struct key_tuple *kt, uint32_t nk)
{
	uint32_t groups = 0, cap = 16;

	if (nk > 1)
		qsort_r(kt, nk, sizeof(*kt), key_tuple_cmp, s);
	for (uint32_t i = 0; i < nk; i++)
		if (i == 0 || !same_key(s, &kt[i], &kt[i - 1]))
			groups++;
	while (cap < groups * 2)
		cap *= 2;
	s->index.keys = calloc(cap, sizeof(*s->index.keys));
	if (!s->index.keys)
		return -1;
	s->index.keycap = cap;
	for (uint32_t i = 0; i < nk;) {
		uint32_t j = i + 1, h;
		struct key_entry e;

		while (j < nk && same_key(s, &kt[i], &kt[j]))
			j++;
		memset(&e, 0, sizeof(e));
		e.probe = kt[i].probe;
		e.cls = kt[i].cls;
		e.num = kt[i].num;
		e.off = kt[i].off;
		e.len = kt[i].len;
		e.hash = key_hash(e.probe, e.cls, e.num, pool_at(&s->loaded, e.off), e.len);
		e.begin = s->index.ncode;
		for (uint32_t k = i; k < j; k++) {
			if (k > i && kt[k].rank == kt[k - 1].rank)
				continue;
			if (emit_block(s, kt[k].rank, kt[k].local, 0, 0) < 0)
				return -1;
		}
		e.end = s->index.ncode;
		if (e.cls == C_SID) {
			/* String keys are found by id, without hashing. */
			uint32_t at = s->index.probes[e.probe].sidbase + (uint32_t)e.num;

			s->index.sidlists[2 * at] = e.begin;
			s->index.sidlists[2 * at + 1] = e.end;
			i = j;
			continue;
		}
		for (h = (uint32_t)e.hash & (cap - 1); s->index.keys[h].end;
		     h = (h + 1) & (cap - 1))
			;
		s->index.keys[h] = e;
		i = j;
	}
	return 0;
}

/* Builds the range candidate lists from the tuples. */
static int build_ranges(struct cm_ruleset *s, struct range_tuple *rt, uint32_t nr)
{
	if (nr > 1)
		qsort(rt, nr, sizeof(*rt), range_tuple_cmp);
	for (uint32_t i = 0; i < nr;) {
		struct probe *p = &s->index.probes[rt[i].probe];
		uint32_t j = i;

		p->begin = s->index.ncode;
		for (; j < nr && rt[j].probe == rt[i].probe; j++)
			if (emit_block(s, rt[j].rank, rt[j].local, rt[j].t,
			               B_RANGE | (rt[j].strict ? B_STRICT : 0)) < 0)
				return -1;
		p->end = s->index.ncode;
		i = j;
	}
	return 0;
}

/* Adds the key tuples of campaign rank (key leaf k) under probe p. */
static int gather_keys(struct cm_ruleset *s, uint32_t p, const struct cond_node *k, uint32_t rank,
                       uint32_t local, struct key_tuple **kt, uint32_t *nk, uint32_t *kcap)
{
	struct key_tuple t;

	memset(&t, 0, sizeof(t));
	t.probe = p;
	t.rank = rank;
	t.local = local;
	if (k->op == OP_EQ || k->op == OP_STARTS_WITH) {
		const struct rule_value *v = &s->loaded.values[k->arg];

		t.cls = v->cls;
		t.num = v->cls == C_BOOL ? v->truth : v->num;
		t.off = v->off;
		t.len = v->len;
		if (k->op == OP_EQ && v->cls == C_STR) {
			/* Strings of eq keys are looked up by their id. */
			t.cls = C_SID;
			t.num = sid_find(s, k->path, pool_at(&s->loaded, v->off), v->len);
			t.off = t.len = 0;
		}
		return PUSH(*kt, *nk, *kcap, t);
	}
	{
		const struct in_set *set = &s->loaded.sets[k->arg];

		t.cls = C_NUM;
		for (uint32_t i = 0; i < set->nnum; i++) {
			t.num = s->loaded.setnums[set->nums + i];
			if (PUSH(*kt, *nk, *kcap, t) < 0)
				return -1;
		}
		t.cls = C_SID;
		for (uint32_t i = 0; i < set->nstr; i++) {
			const struct str_ref *r = &s->loaded.setstrs[set->strs + i];

			t.num = sid_find(s, k->path, pool_at(&s->loaded, r->off), r->len);
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
static int add_key(struct cm_ruleset *s, struct bucket *b, const struct cond_node *k, uint32_t rank,
                   uint32_t local, struct key_tuple **kt, uint32_t *nk, uint32_t *kcap,
                   struct range_tuple **rt, uint32_t *nr, uint32_t *rcap)
{
	uint32_t p = probe_for(s, b, k);
	struct range_tuple r;

	if (p == NONE)
		return -1;
	if (s->index.probes[p].kind == P_EQ || s->index.probes[p].kind == P_PREFIX)
		return gather_keys(s, p, k, rank, local, kt, nk, kcap);
	r.probe = p;
	r.rank = rank;
	r.local = local;
	r.t = s->loaded.values[k->arg].num;
	r.strict = k->op == OP_GT || k->op == OP_LT;
	r.desc = s->index.probes[p].kind == P_UPPER;
	return PUSH(*rt, *nr, *rcap, r);
}

/* Fills bucket b from the ranks in members[0..n): campaigns without a key
 * get their blocks in the bucket's own list, keyed ones become tuples. */
static int fill_bucket(struct cm_ruleset *s, struct bucket *b, const uint32_t *members, uint32_t n,
                       struct key_tuple **kt, uint32_t *nk, uint32_t *kcap, struct range_tuple **rt,
                       uint32_t *nr, uint32_t *rcap)
{
	b->probes = s->index.nprobe;
	b->nprobes = 0;
	b->ids = s->index.nmember_ids;
	b->nmem = n;
	b->reads_profile = 0;
	for (uint32_t i = 0; i < n; i++) {
		s->index.member_camps[s->index.nmember_ids] = s->index.active[members[i]].campaign;
		s->index.member_ids[s->index.nmember_ids++] = s->index.active[members[i]].id;
		b->reads_profile |=
		    s->loaded.camps[s->index.active[members[i]].campaign].reads_profile;
	}
	b->begin = s->index.ncode;
	for (uint32_t i = 0; i < n; i++)
		if (s->index.active[members[i]].key == NONE &&
		    emit_block(s, members[i], i, 0, 0) < 0)
			return -1;
	b->end = s->index.ncode;
	for (uint32_t i = 0; i < n; i++) {
		const struct active_campaign *a = &s->index.active[members[i]];
		const struct cond_node *root;

		if (a->key == NONE)
			continue;
		root = &s->loaded.nodes[a->key];
		if (!a->multi) {
			if (add_key(s, b, root, members[i], i, kt, nk, kcap, rt, nr, rcap) < 0)
				return -1;
			continue;
		}
		for (uint32_t k = 0; k < root->nkids; k++)
			if (add_key(
			        s, b,
			        &s->loaded.nodes[s->loaded.kids[s->loaded.nodes[a->key].arg + k]],
			        members[i], i, kt, nk, kcap, rt, nr, rcap) < 0)
				return -1;
	}
	return 0;
}

/* Builds the type map, the buckets and their indexes over the active
 * campaigns. */
static int build_matcher(struct cm_ruleset *s)
{
	uint32_t ntypes = 0, **members = NULL, *nmem = NULL, *memcap = NULL, maxmem = 0;
	struct key_tuple *kt = NULL;
	struct range_tuple *rt = NULL;
	uint32_t nk = 0, kcap = 0, nr = 0, rcap = 0;
	int rc = -1;

	/* Active campaigns in id order, with their key and program. */
	for (uint32_t i = 0; i < s->loaded.ncamp; i++)
		if (s->loaded.camps[i].active && !s->loaded.camps[i].bad)
			s->index.nactive++;
	s->index.active = calloc(s->index.nactive ? s->index.nactive : 1, sizeof(*s->index.active));
	if (!s->index.active)
		goto out;
	for (uint32_t i = 0, r = 0; i < s->loaded.ncamp; i++) {
		const struct campaign *c = &s->loaded.camps[i];

		if (!c->active || c->bad)
			continue;
		s->index.active[r].id = c->id;
		s->index.active[r].start = c->start;
		s->index.active[r].end = c->end;
		s->index.active[r].jq = c->jq;
		s->index.active[r].campaign = i;
		r++;
	}
	if (s->index.nactive > 1)
		qsort(s->index.active, s->index.nactive, sizeof(*s->index.active), active_cmp);
	for (uint32_t r = 0; r < s->index.nactive; r++)
		if (choose_key(s, &s->index.active[r],
		               s->loaded.camps[s->index.active[r].campaign].where) < 0)
			goto out;
	if (assign_sids(s) < 0 || assign_prefixes(s) < 0)
		goto out;
	for (uint32_t r = 0; r < s->index.nactive; r++) {
		s->index.active[r].prog = s->index.nprogs;
		if (s->index.active[r].rest != NONE && !emit_ins(s, s->index.active[r].rest))
			goto out;
		s->index.active[r].nprog = s->index.nprogs - s->index.active[r].prog;
	}

	/* The type map: every distinct type of an active campaign. */
	s->index.type_mapcap = 16;
	for (uint32_t r = 0; r < s->index.nactive; r++)
		ntypes += s->loaded.camps[s->index.active[r].campaign].ntypes;
	while (s->index.type_mapcap < ntypes * 2)
		s->index.type_mapcap *= 2;
	s->index.type_map = malloc(s->index.type_mapcap * sizeof(*s->index.type_map));
	if (!s->index.type_map)
		goto out;
	for (uint32_t i = 0; i < s->index.type_mapcap; i++)
		s->index.type_map[i].bucket = NONE;
	s->index.nbucket = 1;
	for (uint32_t r = 0; r < s->index.nactive; r++) {
		const struct campaign *c = &s->loaded.camps[s->index.active[r].campaign];

		for (uint32_t k = 0; k < c->ntypes; k++) {
			const struct str_ref *t = &s->loaded.typerefs[c->types + k];
			const char *p = pool_at(&s->loaded, t->off);
			uint64_t h = hash_bytes(p, t->len, 0x51);
			uint32_t i;

			for (i = (uint32_t)h & (s->index.type_mapcap - 1);
			     s->index.type_map[i].bucket != NONE;
			     i = (i + 1) & (s->index.type_mapcap - 1))
				if (s->index.type_map[i].hash == h &&
				    s->index.type_map[i].len == t->len &&
				    memcmp(pool_at(&s->loaded, s->index.type_map[i].off), p,
				           t->len) == 0)
					break;
			if (s->index.type_map[i].bucket == NONE) {
				s->index.type_map[i].hash = h;
				s->index.type_map[i].off = t->off;
				s->index.type_map[i].len = t->len;
				s->index.type_map[i].bucket = s->index.nbucket++;
			}
		}
	}
	/* Members of each bucket, in rank order. */
	members = calloc(s->index.nbucket, sizeof(*members));
	nmem = calloc(s->index.nbucket, sizeof(*nmem));
	memcap = calloc(s->index.nbucket, sizeof(*memcap));
	s->index.buckets = calloc(s->index.nbucket, sizeof(*s->index.buckets));
	if (!members || !nmem || !memcap || !s->index.buckets)
		goto out;
	for (uint32_t r = 0; r < s->index.nactive; r++) {
		const struct campaign *c = &s->loaded.camps[s->index.active[r].campaign];

		if (c->ntypes == 0) {
			for (uint32_t b = 0; b < s->index.nbucket; b++)
				if (PUSH(members[b], nmem[b], memcap[b], r) < 0)
					goto out;
			continue;
		}
		for (uint32_t k = 0; k < c->ntypes; k++) {
			const struct str_ref *t = &s->loaded.typerefs[c->types + k];
			uint32_t b = type_bucket(s, pool_at(&s->loaded, t->off), t->len);

			if (nmem[b] && members[b][nmem[b] - 1] == r)
				continue;
			if (PUSH(members[b], nmem[b], memcap[b], r) < 0)
				goto out;
		}
	}
	{
		size_t total = 0;

		for (uint32_t b = 0; b < s->index.nbucket; b++) {
			total += nmem[b];
			maxmem = nmem[b] > maxmem ? nmem[b] : maxmem;
		}
		if (total >= UINT32_MAX / 2)
			goto out;
		s->index.member_ids = malloc((total ? total : 1) * sizeof(*s->index.member_ids));
		s->index.member_camps =
		    malloc((total ? total : 1) * sizeof(*s->index.member_camps));
		if (!s->index.member_ids || !s->index.member_camps)
			goto out;
	}
	for (uint32_t b = 0; b < s->index.nbucket; b++)
		if (fill_bucket(s, &s->index.buckets[b], members[b], nmem[b], &kt, &nk, &kcap, &rt,
		                &nr, &rcap) < 0)
			goto out;
	{
		size_t total = 0;

		for (uint32_t p = 0; p < s->index.nprobe; p++) {
			if (s->index.probes[p].kind != P_EQ)
				continue;
			s->index.probes[p].sidbase = (uint32_t)total;
			total += s->index.path_nsids[s->index.probes[p].path] + 1;
		}
		if (total >= UINT32_MAX / 4)
			goto out;
		s->index.sidlists = calloc(2 * total + 2, sizeof(*s->index.sidlists));
		if (!s->index.sidlists)
			goto out;
		s->index.nsidlists = (uint32_t)total;
	}
	if (build_keys(s, kt, nk) < 0 || build_ranges(s, rt, nr) < 0)
		goto out;
	free(s->index.progs);
	s->index.progs = NULL;
	s->index.nprogs = s->index.progscap = 0;

	/* Per-event scratch, so that matching allocates nothing. */
	s->scratch.pathvals =
	    calloc(s->loaded.npath ? s->loaded.npath : 1, sizeof(*s->scratch.pathvals));
	s->scratch.hits =
	    malloc((s->index.nactive ? s->index.nactive : 1) * sizeof(*s->scratch.hits));
	s->scratch.hitbits = calloc(maxmem / 64 + 1, sizeof(*s->scratch.hitbits));
	s->scratch.ids =
	    malloc((s->index.nactive ? s->index.nactive : 1) * sizeof(*s->scratch.ids));
	s->scratch.slot_gen = calloc(cm_jqx_count(s->jqx) + 1, sizeof(*s->scratch.slot_gen));
	s->scratch.slot_answer = calloc(cm_jqx_count(s->jqx) + 1, sizeof(*s->scratch.slot_answer));
	if (cm_jqx_count(s->jqx)) {
		s->scratch.key_jvcap = 1024;
		s->scratch.key_jvs = calloc(s->scratch.key_jvcap, sizeof(*s->scratch.key_jvs));
		if (!s->scratch.key_jvs)
			goto out;
	}
	s->scratch.match_data = pcre2_match_data_create(1, NULL);
	s->scratch.match_ctx = pcre2_match_context_create(NULL);
	s->scratch.jit_stack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
	if (!s->scratch.pathvals || !s->scratch.hits || !s->scratch.hitbits || !s->scratch.ids ||
	    !s->scratch.slot_gen || !s->scratch.slot_answer || !s->scratch.match_data ||
	    !s->scratch.match_ctx || !s->scratch.jit_stack)
		goto out;
	pcre2_jit_stack_assign(s->scratch.match_ctx, NULL, s->scratch.jit_stack);
	pcre2_set_match_limit(s->scratch.match_ctx, 1000000);
	pcre2_set_depth_limit(s->scratch.match_ctx, 10000);
	s->scratch.gen = 1;
	rc = 0;
out:
	for (uint32_t b = 0; members && b < s->index.nbucket; b++)
		free(members[b]);
	free(members);
	free(nmem);
	free(memcap);
	free(kt);
	free(rt);
	return rc;
}

/* Gathers the delivery controls of every campaign that has some into
 * ctls, with pointers into the pool (which grows no more), so that a match
 * reaches them without a lookup. */
static int build_controls(struct cm_ruleset *s)
{
	struct rules_loaded *ld = &s->loaded;
	struct rules_index *ix = &s->index;
	uint32_t n = 0, nv = 0, k = 0, kv = 0;

	for (uint32_t i = 0; i < ld->ncamp; i++) {
		const struct campaign *c = &ld->camps[i];

		if (c->holdout > 0 || c->nvariants || c->limit_len)
			n++;
		nv += c->nvariants;
	}
	ix->camp_ctl = calloc(ld->ncamp ? ld->ncamp : 1, sizeof(*ix->camp_ctl));
	ix->ctls = calloc(n ? n : 1, sizeof(*ix->ctls));
	ix->ctl_variants = calloc(nv ? nv : 1, sizeof(*ix->ctl_variants));
	ix->ctl_weights = calloc(nv ? nv : 1, sizeof(*ix->ctl_weights));
	if (!ix->camp_ctl || !ix->ctls || !ix->ctl_variants || !ix->ctl_weights)
		return -1;
	/* The names as JSON literals first: the pool may move meanwhile. */
	for (uint32_t i = 0; i < ld->nvariant; i++) {
		struct cm_buf lit = CM_BUF_INIT;
		struct variant *v = &ld->variants[i];

		if (cm_buf_add_jstr(&lit, pool_at(ld, v->off), v->len) < 0 ||
		    (v->jsoff = rule_pool_add(ld, lit.data, lit.len)) == NONE) {
			cm_buf_release(&lit);
			return -1;
		}
		v->jslen = (uint32_t)lit.len;
		cm_buf_release(&lit);
	}
	for (uint32_t i = 0; i < ld->ncamp; i++) {
		const struct campaign *c = &ld->camps[i];
		struct cm_rule_controls *ctl = &ix->ctls[k];

		if (!(c->holdout > 0 || c->nvariants || c->limit_len))
			continue;
		ctl->id = c->id;
		ctl->holdout = c->holdout;
		ctl->nvariants = c->nvariants;
		ctl->variants = ix->ctl_variants + kv;
		ctl->weights = ix->ctl_weights + kv;
		for (uint32_t j = 0; j < c->nvariants; j++, kv++) {
			const struct variant *v = &ld->variants[c->variants + j];

			ix->ctl_variants[kv].name = pool_at(ld, v->off);
			ix->ctl_variants[kv].len = v->len;
			ix->ctl_variants[kv].json = pool_at(ld, v->jsoff);
			ix->ctl_variants[kv].json_len = v->jslen;
			ix->ctl_weights[kv] = v->weight;
		}
		ctl->per_user = c->per_user;
		ctl->cooldown_ms = c->cooldown_ms;
		ctl->cooldown = c->cooldown_len ? pool_at(ld, c->cooldown_off) : NULL;
		ctl->cooldown_len = c->cooldown_len;
		ctl->limit = c->limit_len ? pool_at(ld, c->limit_off) : NULL;
		ctl->limit_len = c->limit_len;
		ix->camp_ctl[i] = ++k;
		if (c->active && !c->bad)
			ix->nctls++;
	}
	return 0;
}

/* Compiles jq, reports what failed, and builds the matcher. */
int cm_ruleset_compile(struct cm_ruleset *s, cm_rule_reportfn *report, void *ctx)
{
	struct cm_err err;
	int n;

	if (s->compiled)
		return s->problems;
	s->compiled = 1;
	if (rule_compile_jq(s, &err) < 0)
		goto oom;
	n = report_jq(s, report, ctx);
	if (n < 0)
		goto oom;
	if (s->problems)
		return s->problems;
	if (build_matcher(s) < 0 || build_controls(s) < 0)
		goto oom;
	return 0;
oom:
	s->problems++;
	if (report)
		report(ctx, "campaigns: out of memory");
	return -1;
}
