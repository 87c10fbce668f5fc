/* rule_where.c - a campaign's rule.where, validated and turned into a
 * condition tree: field paths interned into a trie (so that an event
 * resolves each path once), constants and in-sets in the set's pools,
 * regular expressions compiled, nodes in one flat array with each all/any
 * ordered cheapest first. Every problem is reported with its JSON path. */
#include "rule_int.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

/* The operators' names, by OP_*, and their list for messages. */
static const char *const op_names[OP_COUNT] = {
    "eq",     "ne",       "lt",          "lte",    "gt",         "gte",     "in",
    "not_in", "contains", "starts_with", "exists", "not_exists", "matches",
};
#define OP_LIST                                                                                    \
	"eq ne lt lte gt gte in not_in contains starts_with exists not_exists "                    \
	"matches"

/* ---- paths ---- */

/* Interns one path segment below parent and returns its index. */
static uint32_t intern_seg(struct rules_loaded *ld, uint32_t parent, const char *name, size_t n)
{
	uint64_t h = hash_bytes(name, n, (uint64_t)parent * 0x9E3779B97F4A7C15ULL + 1);
	uint32_t i;
	struct path_seg *p;

	if ((ld->npath + 1) * 2 > ld->path_tabcap) {
		uint32_t cap = ld->path_tabcap ? ld->path_tabcap * 2 : 64;
		uint32_t *tab = calloc(cap, sizeof(*tab));

		if (!tab)
			return NONE;
		for (uint32_t k = 0; k < ld->npath; k++) {
			i = (uint32_t)ld->paths[k].hash & (cap - 1);
			while (tab[i])
				i = (i + 1) & (cap - 1);
			tab[i] = k + 1;
		}
		free(ld->path_tab);
		ld->path_tab = tab;
		ld->path_tabcap = cap;
	}
	for (i = (uint32_t)h & (ld->path_tabcap - 1); ld->path_tab[i];
	     i = (i + 1) & (ld->path_tabcap - 1)) {
		p = &ld->paths[ld->path_tab[i] - 1];
		if (p->hash == h && p->parent == parent && p->len == n &&
		    memcmp(pool_at(ld, p->off), name, n) == 0)
			return ld->path_tab[i] - 1;
	}
	if (rule_grow_array((void **)&ld->paths, &ld->pathcap, ld->npath + 1, sizeof(*ld->paths)) <
	    0)
		return NONE;
	p = &ld->paths[ld->npath];
	p->off = rule_pool_add(ld, name, n);
	if (p->off == NONE)
		return NONE;
	p->parent = parent;
	p->len = (uint32_t)n;
	p->hash = h;
	p->index = -1;
	p->prof =
	    parent == NONE ? n == 7 && memcmp(name, "profile", 7) == 0 : ld->paths[parent].prof;
	if (n > 0 && n <= 10) {
		int64_t v = 0;
		size_t k;

		for (k = 0; k < n && name[k] >= '0' && name[k] <= '9'; k++)
			v = v * 10 + (name[k] - '0');
		if (k == n && (n == 1 || name[0] != '0') && v < UINT32_MAX)
			p->index = v;
	}
	ld->path_tab[i] = ld->npath + 1;
	return ld->npath++;
}

/* Checks and interns a dot path; reports a problem and returns NONE when it
 * is empty, has an empty segment or is "profile" alone. A path under
 * profile marks the campaign as reading the user's profile. */
static uint32_t intern_path(struct load_ctx *lc, const char *p, size_t n)
{
	uint32_t parent = NONE;
	size_t start = 0;

	if (n == 0) {
		rule_problem(lc, "empty path (expected a dot path such as properties.amount)");
		return NONE;
	}
	if (n > MAX_PATH_LEN) {
		rule_problem(lc, "path longer than %d bytes", MAX_PATH_LEN);
		return NONE;
	}
	for (size_t i = 0; i <= n; i++) {
		if (i < n && p[i] != '.')
			continue;
		if (i == start) {
			rule_problem(lc,
			             "empty segment in path \"%.*s\" (expected a dot path such as "
			             "properties.amount)",
			             (int)n, p);
			return NONE;
		}
		parent = intern_seg(&lc->s->loaded, parent, p + start, i - start);
		if (parent == NONE) {
			lc->oom = 1;
			return NONE;
		}
		start = i + 1;
	}
	if (lc->s->loaded.paths[parent].prof) {
		/* The profile is an object of traits, never a value itself. */
		if (lc->s->loaded.paths[parent].parent == NONE) {
			rule_problem(lc, "\"profile\" alone is not a trait (expected profile.TRAIT "
			                 "such as profile.plan)");
			return NONE;
		}
		lc->reads_profile = 1;
	}
	return parent;
}

/* ---- values ---- */

/* Turns token t (not null) into a constant; NONE when memory is out. */
static uint32_t add_val(struct load_ctx *lc, uint32_t t)
{
	struct rules_loaded *ld = &lc->s->loaded;
	const struct cm_jdoc *d = lc->d;
	struct rule_value v;

	memset(&v, 0, sizeof(v));
	v.cls = (uint8_t)cls_of_type(d->tok[t].type);
	v.container = NONE;
	switch (v.cls) {
	case C_BOOL:
		v.truth = d->tok[t].type == CM_JTRUE;
		break;
	case C_NUM:
		v.num = cm_json_num(d, t);
		break;
	case C_STR: {
		size_t n;
		const char *p = rule_tok_str(lc, t, &n);

		v.off = rule_pool_add(ld, p, n);
		v.len = (uint32_t)n;
		if (v.off == NONE)
			goto oom;
		break;
	}
	default: {
		struct cm_buf text = CM_BUF_INIT;
		struct container_value c;
		struct cm_err err;

		cm_buf_init(&text, 0);
		if (cm_json_write(d, t, &text) < 0 ||
		    rule_grow_array((void **)&ld->containers, &ld->containercap,
		                    ld->ncontainers + 1, sizeof(*ld->containers)) < 0) {
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
		v.container = ld->ncontainers;
		ld->containers[ld->ncontainers++] = c;
		break;
	}
	}
	if (PUSH(ld->values, ld->nvalue, ld->valuecap, v) < 0)
		goto oom;
	return ld->nvalue - 1;
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
static int str_ref_cmp(const void *a, const void *b, void *arg)
{
	const struct str_ref *x = a, *y = b;
	const struct rules_loaded *ld = arg;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(pool_at(ld, x->off), pool_at(ld, y->off), x->len);
}

/* Builds the sorted set of an in / not_in array at token t; elements must
 * not be null. Returns the set index, or NONE after a rule_problem. */
static uint32_t add_inset(struct load_ctx *lc, uint32_t t)
{
	struct rules_loaded *ld = &lc->s->loaded;
	const struct cm_jdoc *d = lc->d;
	struct in_set set;
	uint32_t e = t + 1, bad = 0;

	memset(&set, 0, sizeof(set));
	set.nums = ld->nsetnum;
	set.strs = ld->nsetstr;
	set.cplx = ld->nvalue;
	for (uint32_t i = 0; i < d->tok[t].count; i++, e = d->tok[e].next) {
		int cls = cls_of_type(d->tok[e].type);

		if (cls == C_NONE) {
			size_t mark = rule_path_index(lc, i);

			rule_problem(lc, "null means missing: use exists/not_exists");
			rule_path_pop(lc, mark);
			bad = 1;
			continue;
		}
		set.classes |= (uint8_t)(1u << cls);
		set.total++;
		if (cls == C_NUM) {
			double v = cm_json_num(d, e);

			if (PUSH(ld->setnums, ld->nsetnum, ld->setnumcap, v) < 0)
				goto oom;
		} else if (cls == C_STR) {
			size_t n;
			const char *p = rule_tok_str(lc, e, &n);
			struct str_ref r = {rule_pool_add(ld, p, n), (uint32_t)n};

			if (r.off == NONE || PUSH(ld->setstrs, ld->nsetstr, ld->setstrcap, r) < 0)
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
	set.ncplx = ld->nvalue - set.cplx;
	set.nnum = ld->nsetnum - set.nums;
	set.nstr = ld->nsetstr - set.strs;
	if (set.nnum > 1)
		qsort(ld->setnums + set.nums, set.nnum, sizeof(double), num_cmp);
	if (set.nstr > 1)
		qsort_r(ld->setstrs + set.strs, set.nstr, sizeof(struct str_ref), str_ref_cmp, ld);
	/* Drop duplicates (1 and 1.0 are one number). */
	if (set.nnum > 1) {
		uint32_t k = 1;

		for (uint32_t i = 1; i < set.nnum; i++)
			if (ld->setnums[set.nums + i] != ld->setnums[set.nums + k - 1])
				ld->setnums[set.nums + k++] = ld->setnums[set.nums + i];
		ld->nsetnum = set.nums + k;
		set.nnum = k;
	}
	if (set.nstr > 1) {
		uint32_t k = 1;

		for (uint32_t i = 1; i < set.nstr; i++)
			if (str_ref_cmp(&ld->setstrs[set.strs + i], &ld->setstrs[set.strs + k - 1],
			                ld) != 0)
				ld->setstrs[set.strs + k++] = ld->setstrs[set.strs + i];
		ld->nsetstr = set.strs + k;
		set.nstr = k;
	}
	if (PUSH(ld->sets, ld->nset, ld->setcap, set) < 0)
		goto oom;
	return ld->nset - 1;
oom:
	lc->oom = 1;
	return NONE;
}

/* Compiles a regular expression for a matches leaf; reports a pattern that
 * does not compile with its offset. */
static uint32_t add_regex(struct load_ctx *lc, uint32_t t)
{
	struct rules_loaded *ld = &lc->s->loaded;
	size_t n, erroff;
	const char *p = rule_tok_str(lc, t, &n);
	int errcode;
	pcre2_code *re;

	re = pcre2_compile((PCRE2_SPTR)p, n, PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &errcode, &erroff,
	                   NULL);
	if (!re) {
		PCRE2_UCHAR msg[256];

		if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0)
			strcpy((char *)msg, "unknown error");
		rule_problem(lc, "invalid regular expression at offset %zu: %s", erroff,
		             (char *)msg);
		return NONE;
	}
	if (rule_grow_array((void **)&ld->regexes, &ld->regexcap, ld->nregex + 1,
	                    sizeof(*ld->regexes)) < 0) {
		pcre2_code_free(re);
		lc->oom = 1;
		return NONE;
	}
	{
		uint8_t *j = realloc(ld->regex_jit, ld->regexcap);

		if (!j) {
			pcre2_code_free(re);
			lc->oom = 1;
			return NONE;
		}
		ld->regex_jit = j;
	}
	ld->regex_jit[ld->nregex] = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
	ld->regexes[ld->nregex] = re;
	return ld->nregex++;
}

/* ---- conditions ---- */

/* Appends a node to the tree array; NONE when memory is out. */
static uint32_t add_node(struct load_ctx *lc, struct cond_node n)
{
	struct rules_loaded *ld = &lc->s->loaded;

	if (PUSH(ld->nodes, ld->nnode, ld->nodecap, n) < 0) {
		lc->oom = 1;
		return NONE;
	}
	return ld->nnode - 1;
}

static uint16_t leaf_cost_op(const struct rules_loaded *ld, const struct cond_node *n);

/* The estimated cost of evaluating a node, so that an all/any tries cheap
 * conditions first. */
static uint16_t leaf_cost(const struct rules_loaded *ld, const struct cond_node *n)
{
	/* The profile may have to be looked up: the event's own fields first. */
	uint16_t extra = ld->paths[n->path].prof ? 50 : 0;

	return extra + leaf_cost_op(ld, n);
}

/* The cost of a leaf's operator and value. */
static uint16_t leaf_cost_op(const struct rules_loaded *ld, const struct cond_node *n)
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
		int cls = ld->values[n->arg].cls;

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
	const struct cond_node *nodes = arg;
	const struct cond_node *x = &nodes[*(const uint32_t *)a];
	const struct cond_node *y = &nodes[*(const uint32_t *)b];

	if (x->cost != y->cost)
		return x->cost < y->cost ? -1 : 1;
	return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

static uint32_t build_node(struct load_ctx *lc, uint32_t t, unsigned depth);

/* Builds an all / any node from the array at token t. */
static uint32_t build_list(struct load_ctx *lc, uint32_t t, int kind, unsigned depth)
{
	struct rules_loaded *ld = &lc->s->loaded;
	const struct cm_jdoc *d = lc->d;
	uint32_t n = d->tok[t].count, e = t + 1, *tmp = NULL, ok = 1, cost = 1;
	struct cond_node nd;

	if (d->tok[t].type != CM_JARR) {
		rule_problem(lc, "expected an array of conditions, not %s", rule_type_word(d, t));
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
		size_t mark = rule_path_index(lc, i);

		tmp[i] = build_node(lc, e, depth + 1);
		rule_path_pop(lc, mark);
		if (tmp[i] == NONE)
			ok = 0;
		else
			cost += ld->nodes[tmp[i]].cost;
	}
	if (!ok) {
		free(tmp);
		return NONE;
	}
	if (n > 1)
		qsort_r(tmp, n, sizeof(*tmp), kid_cmp, ld->nodes);
	memset(&nd, 0, sizeof(nd));
	nd.kind = (uint8_t)kind;
	nd.arg = ld->nkid;
	nd.nkids = n;
	nd.cost = (uint16_t)(cost > 1000 ? 1000 : cost);
	for (uint32_t i = 0; i < n; i++)
		if (PUSH(ld->kids, ld->nkid, ld->kidcap, tmp[i]) < 0) {
			lc->oom = 1;
			free(tmp);
			return NONE;
		}
	free(tmp);
	return add_node(lc, nd);
}

/* Builds a leaf {"field","op","value"} whose members are at the tokens
 * given (NONE when absent). */
static uint32_t build_leaf(struct load_ctx *lc, uint32_t tf, uint32_t top, uint32_t tv)
{
	const struct cm_jdoc *d = lc->d;
	struct cond_node nd;
	int op = -1, ok = 1;
	size_t mark, n;
	const char *p;

	memset(&nd, 0, sizeof(nd));
	nd.kind = K_LEAF;
	nd.path = NONE;
	mark = rule_path_key(lc, "field", 5);
	if (tf == NONE) {
		rule_problem(lc, "missing (expected a dot path such as properties.amount)");
		ok = 0;
	} else if (d->tok[tf].type != CM_JSTR) {
		rule_problem(lc, "expected a string (a dot path such as properties.amount), not %s",
		             rule_type_word(d, tf));
		ok = 0;
	} else {
		p = rule_tok_str(lc, tf, &n);
		nd.path = intern_path(lc, p, n);
		if (nd.path == NONE)
			ok = 0;
	}
	rule_path_pop(lc, mark);

	mark = rule_path_key(lc, "op", 2);
	if (top == NONE) {
		rule_problem(lc, "missing (expected one of " OP_LIST ")");
		ok = 0;
	} else if (d->tok[top].type != CM_JSTR) {
		rule_problem(lc, "expected a string (one of " OP_LIST "), not %s",
		             rule_type_word(d, top));
		ok = 0;
	} else {
		p = rule_tok_str(lc, top, &n);
		for (int i = 0; i < OP_COUNT; i++)
			if (strlen(op_names[i]) == n && memcmp(op_names[i], p, n) == 0)
				op = i;
		if (op < 0) {
			rule_problem(lc, "unknown operator \"%.*s\" (expected one of " OP_LIST ")",
			             (int)(n > 40 ? 40 : n), p);
			ok = 0;
		}
	}
	rule_path_pop(lc, mark);
	if (op < 0) {
		/* The value cannot be judged without an operator, but it still
		 * must not be null-free garbage; nothing more to say. */
		return NONE;
	}
	nd.op = (uint8_t)op;

	mark = rule_path_key(lc, "value", 5);
	if (op == OP_EXISTS || op == OP_NOT_EXISTS) {
		if (tv != NONE) {
			rule_problem(lc, "not allowed with %s", op_names[op]);
			ok = 0;
		}
		goto done;
	}
	if (tv == NONE) {
		rule_problem(lc, "missing (operator %s needs a value)", op_names[op]);
		ok = 0;
		goto done;
	}
	if (d->tok[tv].type == CM_JNULL) {
		rule_problem(lc, "null means missing: use exists/not_exists");
		ok = 0;
		goto done;
	}
	switch (op) {
	case OP_LT:
	case OP_LTE:
	case OP_GT:
	case OP_GTE:
		if (d->tok[tv].type != CM_JNUM && d->tok[tv].type != CM_JSTR) {
			rule_problem(lc, "expected a number or a string for %s, not %s",
			             op_names[op], rule_type_word(d, tv));
			ok = 0;
		} else if (ok) {
			nd.arg = add_val(lc, tv);
		}
		break;
	case OP_IN:
	case OP_NOT_IN:
		if (d->tok[tv].type != CM_JARR) {
			rule_problem(lc, "expected an array for %s, not %s", op_names[op],
			             rule_type_word(d, tv));
			ok = 0;
		} else {
			nd.arg = add_inset(lc, tv);
			if (nd.arg == NONE)
				ok = 0;
		}
		break;
	case OP_STARTS_WITH:
	case OP_MATCHES:
		if (d->tok[tv].type != CM_JSTR) {
			rule_problem(lc, "expected a string for %s, not %s", op_names[op],
			             rule_type_word(d, tv));
			ok = 0;
		} else if (op == OP_MATCHES) {
			nd.arg = add_regex(lc, tv);
			if (nd.arg == NONE)
				ok = 0;
		} else if (ok) {
			nd.arg = add_val(lc, tv);
		}
		break;
	default:
		if (ok)
			nd.arg = add_val(lc, tv);
		break;
	}
done:
	rule_path_pop(lc, mark);
	if (!ok || lc->oom)
		return NONE;
	nd.cost = leaf_cost(&lc->s->loaded, &nd);
	return add_node(lc, nd);
}

/* Builds the condition node at token t (at the current path), reporting
 * every problem inside it; returns NONE if there was any. */
static uint32_t build_node(struct load_ctx *lc, uint32_t t, unsigned depth)
{
	const struct cm_jdoc *d = lc->d;
	uint32_t tall = NONE, tany = NONE, tnot = NONE, tf = NONE, top = NONE, tv = NONE;
	uint32_t i = t + 1;
	int forms, ok = 1;

	if (depth > CM_RULE_MAX_DEPTH) {
		rule_problem(lc, "conditions nested deeper than %d levels", CM_RULE_MAX_DEPTH);
		return NONE;
	}
	if (d->tok[t].type != CM_JOBJ) {
		rule_problem(lc, "expected a condition object, not %s", rule_type_word(d, t));
		return NONE;
	}
	for (uint32_t m = d->tok[t].count; m; m--, i = d->tok[i + 1].next) {
		size_t n;
		const char *k = rule_tok_str(lc, i, &n);

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
			size_t mark = rule_path_key(lc, k, n);

			rule_problem(lc,
			             "unknown key (a condition has all, any, not, or field, op and "
			             "value)");
			rule_path_pop(lc, mark);
			ok = 0;
		}
#undef IS
	}
	forms = (tall != NONE) + (tany != NONE) + (tnot != NONE) +
	        (tf != NONE || top != NONE || tv != NONE);
	if (forms != 1) {
		rule_problem(lc, "a condition is exactly one of {\"all\":[...]}, {\"any\":[...]}, "
		                 "{\"not\":{...}} or {\"field\":...,\"op\":...,\"value\":...}");
		return NONE;
	}
	if (tall != NONE || tany != NONE) {
		size_t mark = rule_path_key(lc, tall != NONE ? "all" : "any", 3);
		uint32_t r =
		    build_list(lc, tall != NONE ? tall : tany, tall != NONE ? K_ALL : K_ANY, depth);

		rule_path_pop(lc, mark);
		return ok ? r : NONE;
	}
	if (tnot != NONE) {
		size_t mark = rule_path_key(lc, "not", 3);
		uint32_t c = build_node(lc, tnot, depth + 1);
		struct cond_node nd;

		rule_path_pop(lc, mark);
		if (c == NONE || !ok)
			return NONE;
		memset(&nd, 0, sizeof(nd));
		nd.kind = K_NOT;
		nd.arg = c;
		nd.cost = lc->s->loaded.nodes[c].cost;
		return add_node(lc, nd);
	}
	{
		uint32_t r = build_leaf(lc, tf, top, tv);

		return ok ? r : NONE;
	}
}

/* The entry point for rule_load.c: a where is a condition at depth 1. */
uint32_t rule_where_build(struct load_ctx *lc, uint32_t t)
{
	return build_node(lc, t, 1);
}
