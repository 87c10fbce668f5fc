/* rule_match.c - events: the members every event has checked
 * (cm_rule_event_init), then matched against a compiled set
 * (cm_ruleset_match): the bucket of its type, each probe's candidate list,
 * each candidate's window, compiled conditions and jq. Per event, each path
 * is resolved once and the event becomes a jq value at most once. */
#include "rule_int.h"

#include <string.h>

#include "err.h"
#include "event.h"
#include "jqx.h"
#include "timefmt.h"

/* ---- events ----
 *
 * cm_rule_event_init stands alone: it uses nothing of the set, only the
 * event's parsed document and the one validator of event.c. */

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

/* ---- matching ----
 *
 * Everything below reads the compiled set and writes only the per-event
 * scratch (path values, hits, the event's jv, jq answers). */

static struct path_value *resolve(struct cm_ruleset *s, uint32_t pid);

/* The profile of the current event, asked for the first time it is needed. */
static const struct cm_jdoc *event_profile(struct cm_ruleset *s)
{
	if (!s->scratch.prof_done) {
		s->scratch.prof = s->scratch.prof_fn(s->scratch.prof_ctx);
		s->scratch.prof_done = 1;
	}
	return s->scratch.prof;
}

/* Looks path pid up in the current event, once per event; the path
 * "profile" is the root of the user's profile (missing without one), so
 * that its traits resolve like the event's members. */
static __attribute__((noinline)) struct path_value *resolve_slow(struct cm_ruleset *s, uint32_t pid)
{
	struct path_value *v = &s->scratch.pathvals[pid];
	const struct path_seg *pn = &s->loaded.paths[pid];
	const struct cm_jdoc *d = s->scratch.doc;
	uint32_t ptok, t = CM_JNONE;

	if (pn->parent == NONE && pn->prof) {
		d = event_profile(s);
		t = d ? 0 : CM_JNONE;
	} else {
		if (pn->parent == NONE) {
			ptok = 0;
		} else {
			const struct path_value *pv = resolve(s, pn->parent);

			ptok = pv->tok;
			d = pv->doc;
		}
		if (ptok != CM_JNONE) {
			if (d->tok[ptok].type == CM_JOBJ)
				t = cm_json_get(d, ptok, pool_at(&s->loaded, pn->off), pn->len);
			else if (d->tok[ptok].type == CM_JARR && pn->index >= 0)
				t = cm_json_at(d, ptok, (uint32_t)pn->index);
		}
	}
	v->gen = s->scratch.gen;
	v->doc = d;
	v->tok = t;
	v->cls = t == CM_JNONE ? C_NONE : (uint8_t)cls_of_type(d->tok[t].type);
	v->numok = v->strok = v->sidok = v->pfxok = 0;
	return v;
}

/* The value at path pid in the current event (cached per event). */
static inline struct path_value *resolve(struct cm_ruleset *s, uint32_t pid)
{
	struct path_value *v = &s->scratch.pathvals[pid];

	return v->gen == s->scratch.gen ? v : resolve_slow(s, pid);
}

/* The number of a resolved value, converted once per event. */
static inline double pv_num(struct cm_ruleset *s, struct path_value *v)
{
	if (!v->numok) {
		v->num = cm_json_num(v->doc, v->tok);
		v->numok = 1;
	}
	return v->num;
}

/* The decoded bytes of a string value; escaped strings are decoded once
 * into the event's arena. */
static const char *pv_str(struct cm_ruleset *s, struct path_value *v, size_t *n)
{
	const struct cm_jtok *k = &v->doc->tok[v->tok];

	if (!k->esc) {
		*n = k->len;
		return v->doc->src + k->off;
	}
	if (!v->strok) {
		size_t len;
		const char *p = cm_json_str(v->doc, v->tok, &s->scratch.tmp, &len);
		size_t off = s->scratch.arena.len;

		if (!p || cm_buf_add(&s->scratch.arena, p, len) < 0) {
			*n = 0;
			return "";
		}
		v->soff = (uint32_t)off;
		v->slen = (uint32_t)len;
		v->strok = 1;
	}
	*n = v->slen;
	return s->scratch.arena.data + v->soff;
}

/* JSON equality of token t of d with constant c ("same type and equal"). */
static int tok_eq_val(struct cm_ruleset *s, const struct cm_jdoc *d, uint32_t t,
                      const struct rule_value *c)
{
	int cls = cls_of_type(d->tok[t].type);

	if (cls != c->cls)
		return 0;
	switch (cls) {
	case C_BOOL:
		return (d->tok[t].type == CM_JTRUE) == c->truth;
	case C_NUM:
		return cm_json_num(d, t) == c->num;
	case C_STR:
		return cm_json_str_eq(d, t, pool_at(&s->loaded, c->off), c->len);
	default:
		return cm_json_equal(d, t, &s->loaded.containers[c->container].doc, 0);
	}
}

/* Equality of a resolved value with a constant, using the cached forms. */
static int pv_eq_val(struct cm_ruleset *s, struct path_value *v, const struct rule_value *c)
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
		return n == c->len && memcmp(p, pool_at(&s->loaded, c->off), n) == 0;
	case C_BOOL:
		return (v->doc->tok[v->tok].type == CM_JTRUE) == c->truth;
	default:
		return cm_json_equal(v->doc, v->tok, &s->loaded.containers[c->container].doc, 0);
	}
}

/* Membership of a resolved value in an in-set. */
static int pv_in_set(struct cm_ruleset *s, struct path_value *v, const struct in_set *set)
{
	switch (v->cls) {
	case C_NUM: {
		double x;
		const double *a;
		uint32_t lo = 0, hi = set->nnum;

		if (!hi)
			return 0;
		x = pv_num(s, v);
		a = s->loaded.setnums + set->nums;

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
		const struct str_ref *a;
		uint32_t lo = 0, hi = set->nstr;

		if (!hi)
			return 0;
		p = pv_str(s, v, &n);
		a = s->loaded.setstrs + set->strs;

		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			int c = a[mid].len != n ? (a[mid].len < n ? -1 : 1)
			                        : memcmp(pool_at(&s->loaded, a[mid].off), p, n);

			if (c < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		return lo < set->nstr && a[lo].len == n &&
		       memcmp(pool_at(&s->loaded, a[lo].off), p, n) == 0;
	}
	case C_BOOL:
		return v->doc->tok[v->tok].type == CM_JTRUE ? set->has_true : set->has_false;
	default:
		for (uint32_t i = 0; i < set->ncplx; i++)
			if (cm_json_equal(
			        v->doc, v->tok,
			        &s->loaded.containers[s->loaded.values[set->cplx + i].container]
			             .doc,
			        0))
				return 1;
		return 0;
	}
}

/* Evaluates a leaf on the current event. */
static int eval_leaf(struct cm_ruleset *s, const struct cond_node *n)
{
	struct path_value *v = resolve(s, n->path);
	const struct rule_value *c;
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
		return pv_eq_val(s, v, &s->loaded.values[n->arg]);
	case OP_NE:
		c = &s->loaded.values[n->arg];
		return v->cls == c->cls && !pv_eq_val(s, v, c);
	case OP_LT:
	case OP_LTE:
	case OP_GT:
	case OP_GTE: {
		int cmp;

		c = &s->loaded.values[n->arg];
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
		cmp = bytes_cmp(p, len, pool_at(&s->loaded, c->off), c->len);
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
		return pv_in_set(s, v, &s->loaded.sets[n->arg]);
	case OP_NOT_IN: {
		const struct in_set *set = &s->loaded.sets[n->arg];

		if (set->total == 0)
			return 1;
		if (!(set->classes & (1u << v->cls)))
			return 0;
		return !pv_in_set(s, v, set);
	}
	case OP_CONTAINS:
		c = &s->loaded.values[n->arg];
		if (v->cls == C_STR) {
			if (c->cls != C_STR)
				return 0;
			if (c->len == 0)
				return 1;
			p = pv_str(s, v, &len);
			return memmem(p, len, pool_at(&s->loaded, c->off), c->len) != NULL;
		}
		if (v->cls == C_ARR) {
			const struct cm_jdoc *d = v->doc;
			uint32_t e = v->tok + 1;

			for (uint32_t i = 0; i < d->tok[v->tok].count; i++, e = d->tok[e].next)
				if (tok_eq_val(s, d, e, c))
					return 1;
		}
		return 0;
	case OP_STARTS_WITH:
		c = &s->loaded.values[n->arg];
		if (v->cls != C_STR)
			return 0;
		p = pv_str(s, v, &len);
		return len >= c->len && memcmp(p, pool_at(&s->loaded, c->off), c->len) == 0;
	case OP_MATCHES: {
		int rc;

		if (v->cls != C_STR)
			return 0;
		p = pv_str(s, v, &len);
		if (s->loaded.regex_jit[n->arg])
			rc = pcre2_jit_match(s->loaded.regexes[n->arg], (PCRE2_SPTR)p, len, 0, 0,
			                     s->scratch.match_data, s->scratch.match_ctx);
		else
			rc = pcre2_match(s->loaded.regexes[n->arg], (PCRE2_SPTR)p, len, 0, 0,
			                 s->scratch.match_data, s->scratch.match_ctx);
		return rc >= 0;
	}
	default:
		return 0;
	}
}

/* Evaluates a condition tree with short-circuits. */
static int eval_node(struct cm_ruleset *s, uint32_t ni)
{
	const struct cond_node *n = &s->loaded.nodes[ni];

	switch (n->kind) {
	case K_ALL:
		for (uint32_t i = 0; i < n->nkids; i++)
			if (!eval_node(s, s->loaded.kids[n->arg + i]))
				return 0;
		return 1;
	case K_ANY:
		for (uint32_t i = 0; i < n->nkids; i++)
			if (eval_node(s, s->loaded.kids[n->arg + i]))
				return 1;
		return 0;
	case K_NOT:
		return !eval_node(s, n->arg);
	default:
		return eval_leaf(s, n);
	}
}

/* The string id of a resolved string value on its path (0: no constant). */
static inline uint32_t pv_sid(struct cm_ruleset *s, struct path_value *v, uint32_t path)
{
	if (!v->sidok) {
		size_t n;
		const char *p = pv_str(s, v, &n);

		v->sid = s->index.path_nsids[path] ? sid_find(s, path, p, n) : 0;
		v->sidok = 1;
	}
	return v->sid;
}

/* Tests a string value against every prefix of its path at once. */
static void pv_prefixes(struct cm_ruleset *s, struct path_value *v, uint32_t path)
{
	size_t n;
	const char *p = pv_str(s, v, &n);
	const struct str_ref *r = s->index.prefixes + s->index.path_prefix[path];
	uint64_t m = 0;

	for (uint32_t k = 0; k < s->index.path_nprefixes[path]; k++)
		if (r[k].len <= n && memcmp(p, pool_at(&s->loaded, r[k].off), r[k].len) == 0)
			m |= (uint64_t)1 << k;
	v->pfx = m;
	v->pfxok = 1;
}

/* Runs compiled instructions (a subtree starting at ip). */
static int run(struct cm_ruleset *s, const struct instruction *ip)
{
	struct path_value *v;

	switch (ip->op) {
	case I_ALL: {
		const struct instruction *k = ip + 1;

		for (uint32_t i = 0; i < ip->v.u[0]; i++, k += k->size)
			if (!run(s, k))
				return 0;
		return 1;
	}
	case I_ANY: {
		const struct instruction *k = ip + 1;

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
	struct key_jv *e;

	if (n > 48 || !s->scratch.key_jvcap)
		return jv_string_sized(p, (int)n);
	h = hash_bytes(p, n, 0x77);
	for (i = (uint32_t)h & (s->scratch.key_jvcap - 1); s->scratch.key_jvs[i].used;
	     i = (i + 1) & (s->scratch.key_jvcap - 1)) {
		e = &s->scratch.key_jvs[i];
		if (e->hash == h && e->len == n && memcmp(e->text, p, n) == 0)
			return jv_copy(e->key);
	}
	if (s->scratch.nkey_jvs * 2 >= s->scratch.key_jvcap)
		return jv_string_sized(p, (int)n);
	e = &s->scratch.key_jvs[i];
	e->used = 1;
	e->hash = h;
	e->len = (uint8_t)n;
	memcpy(e->text, p, n);
	e->key = jv_string_sized(p, (int)n);
	s->scratch.nkey_jvs++;
	return jv_copy(e->key);
}

/* Builds the jv of token t of d straight from the tape, which costs less
 * than letting jq parse the text again. */
static jv tok_jv(struct cm_ruleset *s, const struct cm_jdoc *d, uint32_t t)
{
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
		const char *p = cm_json_str(d, t, &s->scratch.tmp, &n);

		return p ? jv_string_sized(p, (int)n) : jv_invalid();
	}
	case CM_JARR: {
		jv a = jv_array_sized((int)k->count);
		uint32_t e = t + 1;

		for (uint32_t i = 0; i < k->count; i++, e = d->tok[e].next)
			a = jv_array_append(a, tok_jv(s, d, e));
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
				p = cm_json_str(d, e, &s->scratch.tmp, &n);
				key = p ? jv_string_sized(p, (int)n) : jv_string("");
			}
			o = jv_object_set(o, key, tok_jv(s, d, e + 1));
		}
		return o;
	}
	}
}

/* The jq input of an event: the event (root 0 of d) with "profile" added,
 * the user's traits (root 0 of prof), or {} without a profile. */
jv rule_event_jv(struct cm_ruleset *s, const struct cm_jdoc *d, const struct cm_jdoc *prof)
{
	jv ev = tok_jv(s, d, 0);

	if (!jv_is_valid(ev))
		return ev;
	return jv_object_set(ev, jv_string("profile"), prof ? tok_jv(s, prof, 0) : jv_object());
}

/* Runs a campaign's jq predicate on the event, converting the event to a
 * jv once per event and remembering each slot's answer. */
static int jq_holds(struct cm_ruleset *s, uint32_t local, uint32_t slot)
{
	struct cm_err err;
	int r;

	if (s->scratch.slot_gen[slot] == s->scratch.gen)
		return s->scratch.slot_answer[slot];
	/* a predicate that does not name the profile cannot reach it natively */
	r = cm_jqx_eval_event(s->jqx, slot, s->scratch.doc,
	                      s->index.slot_prof[slot] ? event_profile(s) : NULL);
	if (r != CM_JQX_FALLBACK) {
		s->scratch.slot_gen[slot] = s->scratch.gen;
		s->scratch.slot_answer[slot] = (uint8_t)r;
		return r;
	}
	if (!s->scratch.have_ev_jv) {
		s->scratch.ev_jv = rule_event_jv(s, s->scratch.doc, event_profile(s));
		s->scratch.have_ev_jv = 1;
	}
	if (!jv_is_valid(s->scratch.ev_jv)) {
		cm_errf(&err, "the event cannot be converted for jq");
		r = CM_JQX_ERROR;
	} else {
		r = cm_jqx_eval(s->jqx, slot, s->scratch.ev_jv, &err);
	}
	if (r == CM_JQX_ERROR) {
		s->jq_errors++;
		rule_one_line(err.msg);
		if (s->on_jq)
			s->on_jq(s->on_jq_ctx,
			         s->index.member_ids[s->scratch.cur_bucket->ids + local], err.msg);
		return 0;
	}
	s->scratch.slot_gen[slot] = s->scratch.gen;
	s->scratch.slot_answer[slot] = (uint8_t)r;
	return r;
}

/* Finishes the evaluation of a candidate whose key holds: window, the rest
 * of its conditions, then jq. */
static inline void consider(struct cm_ruleset *s, int64_t t, const struct campaign_block *b)
{
	uint32_t r = b->local;

	if (b->flags & (B_WINDOW | B_MULTI)) {
		if (b->flags & B_WINDOW) {
			const int64_t *w = blk_window(b);

			if (t < w[0] || t >= w[1])
				return;
		}
		if ((b->flags & B_MULTI) && (s->scratch.hitbits[r / 64] >> (r % 64) & 1))
			return;
	}
	if (b->nins && !run(s, blk_ins(b)))
		return;
	if (b->jq >= 0 && !jq_holds(s, r, (uint32_t)b->jq))
		return;
	s->scratch.hits[s->scratch.nhits++] = r;
	s->scratch.hitbits[r / 64] |= (uint64_t)1 << (r % 64);
}

/* Considers every block of code[begin..end). */
static void run_list(struct cm_ruleset *s, int64_t t, uint32_t begin, uint32_t end)
{
	const uint64_t *p = s->index.code + begin, *e = s->index.code + end;

	while (p < e) {
		const struct campaign_block *b = (const struct campaign_block *)p;

		consider(s, t, b);
		p += b->words;
	}
}

/* Looks up the key table for a probe and value; returns the entry or NULL. */
static const struct key_entry *key_find(const struct cm_ruleset *s, uint32_t probe, uint32_t cls,
                                        double num, const char *p, size_t n)
{
	uint64_t h = key_hash(probe, cls, num, p, n);

	for (uint32_t i = (uint32_t)h & (s->index.keycap - 1); s->index.keys[i].end;
	     i = (i + 1) & (s->index.keycap - 1)) {
		const struct key_entry *e = &s->index.keys[i];

		if (e->hash != h || e->probe != probe || e->cls != cls)
			continue;
		if (cls == C_STR ? (e->len == n && memcmp(pool_at(&s->loaded, e->off), p, n) == 0)
		                 : e->num == num)
			return e;
	}
	return NULL;
}

/* Puts the hit ranks in ascending order: a short list by insertion, a long
 * one by reading the hit bitmap. Clears the bitmap. */
static void sort_hits(struct cm_ruleset *s)
{
	uint32_t *a = s->scratch.hits, n = s->scratch.nhits;

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
			s->scratch.hitbits[a[i] / 64] = 0;
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
			uint64_t bits = s->scratch.hitbits[w];

			s->scratch.hitbits[w] = 0;
			while (bits) {
				a[k++] = w * 64 + (uint32_t)__builtin_ctzll(bits);
				bits &= bits - 1;
			}
		}
	}
}

/* A candidate list found for the event: a key's list, or a range list
 * with the event's value. */
struct found_list {
	uint32_t begin, end;
	uint32_t kind;
	double x;
};

/* Finds the candidate list of probe pi for the current event; 0 when the
 * event has no value that leads anywhere. */
static int find_list(struct cm_ruleset *s, uint32_t pi, struct found_list *td)
{
	const struct probe *pr = &s->index.probes[pi];
	struct path_value *v = resolve(s, pr->path);
	const struct key_entry *e = NULL;

	td->kind = pr->kind;
	switch (pr->kind) {
	case P_EQ:
		if (v->cls == C_NUM) {
			e = key_find(s, pi, C_NUM, pv_num(s, v), NULL, 0);
		} else if (v->cls == C_STR) {
			uint32_t id = pv_sid(s, v, pr->path);
			const uint32_t *l = s->index.sidlists + 2 * (pr->sidbase + id);

			if (!id || l[1] == l[0])
				return 0;
			td->begin = l[0];
			td->end = l[1];
			return 1;
		} else if (v->cls == C_BOOL) {
			e = key_find(s, pi, C_BOOL, v->doc->tok[v->tok].type == CM_JTRUE ? 1 : 0,
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
static void run_range(struct cm_ruleset *s, int64_t t, const struct found_list *td)
{
	const uint64_t *p = s->index.code + td->begin, *end = s->index.code + td->end;
	int lower = td->kind == P_LOWER;
	double x = td->x;

	while (p < end) {
		const struct campaign_block *c = (const struct campaign_block *)p;
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
	int keyless_done = 0;

	*ids = s->scratch.ids;
	if (!s->compiled || s->problems || !s->index.active || s->index.nactive == 0)
		return 0;
	s->scratch.doc = ev->doc;
	s->scratch.prof = ev->profile;
	s->scratch.prof_fn = ev->profile_fn;
	s->scratch.prof_ctx = ev->profile_ctx;
	s->scratch.prof_done = !ev->profile_fn;
	s->scratch.nhits = 0;
	if (++s->scratch.gen == 0) {
		memset(s->scratch.pathvals, 0,
		       (s->loaded.npath ? s->loaded.npath : 1) * sizeof(*s->scratch.pathvals));
		memset(s->scratch.slot_gen, 0,
		       (cm_jqx_count(s->jqx) + 1) * sizeof(*s->scratch.slot_gen));
		s->scratch.gen = 1;
	}
	cm_buf_reset(&s->scratch.arena);
	b = &s->index.buckets[type_bucket(s, ev->type, ev->type_len)];
	s->scratch.cur_bucket = b;
	/* First find every candidate list and ask for its first lines, so
	 * that the cache misses on list starts overlap; then run them, the
	 * campaigns without a key first. */
	if (b->end > b->begin)
		__builtin_prefetch(s->index.code + b->begin);
	pi = b->probes;
	pe = b->probes + b->nprobes;
	do {
		struct found_list todo[32];
		uint32_t n = 0;

		for (; pi < pe && n < 32; pi++) {
			if (!find_list(s, pi, &todo[n]))
				continue;
			__builtin_prefetch(s->index.code + todo[n].begin);
			__builtin_prefetch(s->index.code + todo[n].begin + 8);
			n++;
		}
		if (!keyless_done) {
			run_list(s, t, b->begin, b->end);
			keyless_done = 1;
		}
		for (uint32_t i = 0; i < n; i++) {
			if (todo[i].kind == P_EQ || todo[i].kind == P_PREFIX)
				run_list(s, t, todo[i].begin, todo[i].end);
			else
				run_range(s, t, &todo[i]);
		}
	} while (pi < pe);
	if (s->scratch.have_ev_jv) {
		jv_free(s->scratch.ev_jv);
		s->scratch.have_ev_jv = 0;
	}
	sort_hits(s);
	for (uint32_t i = 0; i < s->scratch.nhits; i++)
		s->scratch.ids[i] = s->index.member_ids[b->ids + s->scratch.hits[i]];
	return s->scratch.nhits;
}

/* Looks at the bucket of the type, the campaigns an event of it can match. */
int cm_ruleset_reads_profile(const struct cm_ruleset *s, const char *type, size_t n)
{
	if (!s->compiled || s->problems || !s->index.buckets)
		return 0;
	return s->index.buckets[type_bucket(s, type, n)].reads_profile;
}

/* The controls of campaign id, found through the id table. */
const struct cm_rule_controls *cm_ruleset_controls(const struct cm_ruleset *s, int64_t id)
{
	uint32_t c;

	if (!s->index.camp_ctl)
		return NULL;
	c = rule_camp_find(&s->loaded, id);
	if (c == NONE || !s->index.camp_ctl[c])
		return NULL;
	return &s->index.ctls[s->index.camp_ctl[c] - 1];
}

/* The controls of the k-th hit of the last match, through its bucket. */
const struct cm_rule_controls *cm_ruleset_hit_controls(const struct cm_ruleset *s, size_t k)
{
	uint32_t c, ctl;

	if (!s->index.nctls || k >= s->scratch.nhits)
		return NULL;
	c = s->index.member_camps[s->scratch.cur_bucket->ids + s->scratch.hits[k]];
	ctl = s->index.camp_ctl[c];
	return ctl ? &s->index.ctls[ctl - 1] : NULL;
}

/* Whether any active campaign has controls. */
int cm_ruleset_has_controls(const struct cm_ruleset *s)
{
	return s->index.nctls > 0;
}
