/* rule_explain.c - why a campaign did or did not match an event: a slow
 * evaluator of its own, apart from the indexes and compiled programs of the
 * matcher, that walks each campaign's rule.where as written and records
 * every check with what it expected and what it found. It shares only the
 * loaded campaign (status, types, window, jq slot) and the JSON primitives,
 * so that a test comparing its verdicts with cm_ruleset_match's checks the
 * matcher against an independent reading of the rule language. */
#include "rule_int.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "jqx.h"
#include "strmap.h"
#include "timefmt.h"

/* Found values longer than this are given by their size only. */
#define FOUND_MAX 4096

/* What explain keeps between calls: the parsed where of the campaign being
 * explained and the regular expressions compiled so far. */
struct rule_explain {
	struct cm_jdoc where;
	struct cm_buf path, tmp, tmp2, val;
	struct cm_strmap re_map; /* pattern -> re */
	pcre2_code **re;
	uint8_t *re_jit;
	uint32_t nre, recap;
	pcre2_match_data *md;
	pcre2_match_context *mctx;
	pcre2_jit_stack *jit;
};

/* Frees explain's state. */
void rule_explain_free(struct rule_explain *x)
{
	if (!x)
		return;
	for (uint32_t i = 0; i < x->nre; i++)
		pcre2_code_free(x->re[i]);
	free(x->re);
	free(x->re_jit);
	cm_strmap_release(&x->re_map);
	cm_jdoc_release(&x->where);
	cm_buf_release(&x->path);
	cm_buf_release(&x->tmp);
	cm_buf_release(&x->tmp2);
	cm_buf_release(&x->val);
	pcre2_match_data_free(x->md);
	pcre2_match_context_free(x->mctx);
	pcre2_jit_stack_free(x->jit);
	free(x);
}

/* Makes explain's state, with the matcher's limits for regular expressions
 * (a pattern that runs into them does not match, in both). */
static struct rule_explain *explain_state(struct cm_ruleset *s)
{
	struct rule_explain *x = s->explain;

	if (x)
		return x;
	x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	cm_jdoc_init(&x->where, DOC_DEPTH);
	cm_buf_init(&x->path, 0);
	cm_buf_init(&x->tmp, 0);
	cm_buf_init(&x->tmp2, 0);
	cm_buf_init(&x->val, 0);
	cm_strmap_init(&x->re_map);
	x->md = pcre2_match_data_create(1, NULL);
	x->mctx = pcre2_match_context_create(NULL);
	x->jit = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
	if (!x->md || !x->mctx || !x->jit) {
		rule_explain_free(x);
		return NULL;
	}
	pcre2_jit_stack_assign(x->mctx, NULL, x->jit);
	pcre2_set_match_limit(x->mctx, 1000000);
	pcre2_set_depth_limit(x->mctx, 10000);
	s->explain = x;
	return x;
}

/* ---- the campaigns an event is explained against ---- */

/* Orders campaign indexes by id (arg: the campaigns). */
static int by_id_cmp(const void *a, const void *b, void *arg)
{
	const struct campaign *c = arg;
	int64_t x = c[*(const uint32_t *)a].id, y = c[*(const uint32_t *)b].id;

	return x < y ? -1 : x > y;
}

/* True when campaign c admits events of type[0..n). */
static int admits(const struct rules_loaded *ld, const struct campaign *c, const char *type,
                  size_t n)
{
	if (c->ntypes == 0)
		return 1;
	for (uint32_t k = 0; k < c->ntypes; k++) {
		const struct str_ref *t = &ld->typerefs[c->types + k];

		if (t->len == n && memcmp(pool_at(ld, t->off), type, n) == 0)
			return 1;
	}
	return 0;
}

/* Every good campaign of any status whose rule.event_type admits the type,
 * by ascending id. */
size_t cm_ruleset_explain_ids(struct cm_ruleset *s, const char *type, size_t n, const int64_t **ids)
{
	struct rules_loaded *ld = &s->loaded;
	struct rules_index *ix = &s->index;
	size_t k = 0;

	*ids = NULL;
	if (!s->compiled || s->problems)
		return 0;
	if (!ix->by_id) {
		ix->by_id = malloc((ld->ncamp ? ld->ncamp : 1) * sizeof(*ix->by_id));
		ix->explain_ids = malloc((ld->ncamp ? ld->ncamp : 1) * sizeof(*ix->explain_ids));
		if (!ix->by_id || !ix->explain_ids)
			return 0;
		for (uint32_t i = 0; i < ld->ncamp; i++)
			if (!ld->camps[i].bad)
				ix->by_id[ix->nby_id++] = i;
		qsort_r(ix->by_id, ix->nby_id, sizeof(*ix->by_id), by_id_cmp, ld->camps);
	}
	for (uint32_t i = 0; i < ix->nby_id; i++) {
		const struct campaign *c = &ld->camps[ix->by_id[i]];

		if (admits(ld, c, type, n))
			ix->explain_ids[k++] = c->id;
	}
	*ids = ix->explain_ids;
	return k;
}

/* ---- where, from the text ---- */

/* The value at a dot path in the event, or in the profile for a path
 * profile.TRAIT...: each segment a member of an object, or, made of digits
 * (no leading zero, below 2^32 - 1), an element of an array. Returns the
 * token, CM_JNONE when there is none, and the document it is in. */
static uint32_t find_path(const struct cm_rule_event *ev, const char *p, size_t n,
                          const struct cm_jdoc **doc)
{
	const struct cm_jdoc *d = ev->doc;
	uint32_t t = 0;
	size_t start = 0;
	int first = 1;

	for (size_t i = 0; i <= n; i++) {
		const char *seg;
		size_t sn;

		if (i < n && p[i] != '.')
			continue;
		seg = p + start;
		sn = i - start;
		start = i + 1;
		if (first && sn == 7 && memcmp(seg, "profile", 7) == 0) {
			first = 0;
			d = ev->profile;
			if (!d)
				break;
			t = 0;
			continue;
		}
		first = 0;
		if (d->tok[t].type == CM_JOBJ) {
			t = cm_json_get(d, t, seg, sn);
		} else if (d->tok[t].type == CM_JARR) {
			int64_t v = 0;
			size_t k;

			for (k = 0; k < sn && k < 11 && seg[k] >= '0' && seg[k] <= '9'; k++)
				v = v * 10 + (seg[k] - '0');
			if (sn == 0 || sn > 10 || k != sn || (sn > 1 && seg[0] == '0') ||
			    v >= UINT32_MAX)
				t = CM_JNONE;
			else
				t = cm_json_at(d, t, (uint32_t)v);
		} else {
			t = CM_JNONE;
		}
		if (t == CM_JNONE)
			break;
	}
	*doc = d;
	return d ? t : CM_JNONE;
}

/* The comparison class of a token: booleans are one class. */
static int jclass(const struct cm_jdoc *d, uint32_t t)
{
	int k = d->tok[t].type;

	return k == CM_JFALSE ? CM_JTRUE : k;
}

/* Orders two strings by their decoded bytes, the shorter first on a common
 * prefix. */
static int str_cmp(struct rule_explain *x, const struct cm_jdoc *a, uint32_t ta,
                   const struct cm_jdoc *b, uint32_t tb)
{
	size_t an, bn;
	const char *p = cm_json_str(a, ta, &x->tmp, &an);
	const char *q = cm_json_str(b, tb, &x->tmp2, &bn);
	int c;

	if (!p || !q)
		return 0;
	c = memcmp(p, q, an < bn ? an : bn);
	return c ? c : (an > bn) - (an < bn);
}

/* The compiled regular expression of pattern, compiled once. */
static int regex_of(struct rule_explain *x, const char *pat, size_t n, pcre2_code **re, int *jit)
{
	uint32_t i;
	int rc = cm_strmap_add(&x->re_map, pat, n, &i);

	if (rc < 0)
		return -1;
	if (rc == 1) {
		int ec;
		PCRE2_SIZE eo;
		pcre2_code *c = pcre2_compile((PCRE2_SPTR)pat, n,
		                              PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);

		{
			uint32_t jitcap = x->recap;

			if (rule_grow_array((void **)&x->re, &x->recap, i + 1, sizeof(*x->re)) <
			        0 ||
			    rule_grow_array((void **)&x->re_jit, &jitcap, x->recap, 1) < 0) {
				pcre2_code_free(c);
				return -1;
			}
		}
		x->re[i] = c;
		x->re_jit[i] = c && pcre2_jit_compile(c, PCRE2_JIT_COMPLETE) == 0;
		x->nre = i + 1;
	}
	*re = x->re[i];
	*jit = x->re_jit[i];
	return *re ? 0 : -1;
}

/* The names of the operators, in the order of the language. */
static const char *const ex_ops[] = {"eq",     "ne",         "lt",     "lte",      "gt",
                                     "gte",    "in",         "not_in", "contains", "starts_with",
                                     "exists", "not_exists", "matches"};

/* The verdict of leaf op on the found value (token ft of fd, CM_JNONE when
 * absent) against the rule's value (token vt of the where document). */
static int leaf_holds(struct rule_explain *x, int op, const struct cm_jdoc *fd, uint32_t ft,
                      uint32_t vt)
{
	const struct cm_jdoc *w = &x->where;
	int missing = ft == CM_JNONE || fd->tok[ft].type == CM_JNULL;
	uint32_t e;
	size_t fn, vn;
	const char *fp, *vp;

	if (op == OP_EXISTS || op == OP_NOT_EXISTS)
		return (op == OP_EXISTS) != missing;
	if (missing)
		return 0;
	switch (op) {
	case OP_EQ:
		return cm_json_equal(fd, ft, w, vt);
	case OP_NE:
		return jclass(fd, ft) == jclass(w, vt) && !cm_json_equal(fd, ft, w, vt);
	case OP_LT:
	case OP_LTE:
	case OP_GT:
	case OP_GTE: {
		int c;

		if (jclass(fd, ft) != jclass(w, vt))
			return 0;
		if (w->tok[vt].type == CM_JNUM) {
			double a = cm_json_num(fd, ft), b = cm_json_num(w, vt);

			c = a < b ? -1 : a > b ? 1 : 0;
		} else {
			c = str_cmp(x, fd, ft, w, vt);
		}
		return op == OP_LT ? c < 0 : op == OP_LTE ? c <= 0 : op == OP_GT ? c > 0 : c >= 0;
	}
	case OP_IN:
	case OP_NOT_IN: {
		int same = 0;

		e = vt + 1;
		for (uint32_t i = 0; i < w->tok[vt].count; i++, e = w->tok[e].next) {
			if (cm_json_equal(fd, ft, w, e))
				return op == OP_IN;
			same |= jclass(fd, ft) == jclass(w, e);
		}
		/* not_in: only against values of its own type (or none at all) */
		return op == OP_NOT_IN && (same || w->tok[vt].count == 0);
	}
	case OP_CONTAINS:
		if (fd->tok[ft].type == CM_JARR) {
			e = ft + 1;
			for (uint32_t i = 0; i < fd->tok[ft].count; i++, e = fd->tok[e].next)
				if (cm_json_equal(fd, e, w, vt))
					return 1;
			return 0;
		}
		if (fd->tok[ft].type != CM_JSTR || w->tok[vt].type != CM_JSTR)
			return 0;
		fp = cm_json_str(fd, ft, &x->tmp, &fn);
		vp = cm_json_str(w, vt, &x->tmp2, &vn);
		return fp && vp && (vn == 0 || memmem(fp, fn, vp, vn) != NULL);
	case OP_STARTS_WITH:
		if (fd->tok[ft].type != CM_JSTR)
			return 0;
		fp = cm_json_str(fd, ft, &x->tmp, &fn);
		vp = cm_json_str(w, vt, &x->tmp2, &vn);
		return fp && vp && fn >= vn && memcmp(fp, vp, vn) == 0;
	case OP_MATCHES: {
		pcre2_code *re;
		int jit, rc;

		if (fd->tok[ft].type != CM_JSTR)
			return 0;
		vp = cm_json_str(w, vt, &x->tmp2, &vn);
		if (!vp || regex_of(x, vp, vn, &re, &jit) < 0)
			return 0;
		fp = cm_json_str(fd, ft, &x->tmp, &fn);
		if (!fp)
			return 0;
		rc = jit ? pcre2_jit_match(re, (PCRE2_SPTR)fp, fn, 0, 0, x->md, x->mctx)
		         : pcre2_match(re, (PCRE2_SPTR)fp, fn, 0, 0, x->md, x->mctx);
		return rc >= 0;
	}
	default:
		return 0;
	}
}

/* Appends one leaf's record to out and returns its verdict. */
static int ex_leaf(struct rule_explain *x, const struct cm_rule_event *ev, uint32_t t,
                   struct cm_buf *out, int *bad)
{
	const struct cm_jdoc *w = &x->where, *fd = NULL;
	uint32_t tf = cm_json_get(w, t, "field", 5), top = cm_json_get(w, t, "op", 2);
	uint32_t tv = cm_json_get(w, t, "value", 5), ft;
	size_t fn, on;
	const char *field, *op;
	int o = -1, ok;

	field = cm_json_str(w, tf, &x->tmp, &fn);
	*bad |= !field || cm_buf_adds(out, "{\"path\":") < 0 ||
	        cm_buf_add_jstr(out, x->path.data, x->path.len) < 0 ||
	        cm_buf_adds(out, ",\"field\":") < 0 || cm_buf_add_jstr(out, field, fn) < 0;
	ft = field ? find_path(ev, field, fn, &fd) : CM_JNONE;
	op = cm_json_str(w, top, &x->tmp, &on);
	for (int i = 0; op && i < OP_COUNT; i++)
		if (strlen(ex_ops[i]) == on && memcmp(ex_ops[i], op, on) == 0)
			o = i;
	*bad |= !op || cm_buf_adds(out, ",\"op\":") < 0 || cm_buf_add_jstr(out, op, on) < 0;
	if (tv != CM_JNONE)
		*bad |= cm_buf_adds(out, ",\"value\":") < 0 || cm_json_write(w, tv, out) < 0;
	if (ft == CM_JNONE || fd->tok[ft].type == CM_JNULL) {
		*bad |= cm_buf_adds(out, ",\"missing\":true") < 0;
	} else if (fd->tok[ft].len > FOUND_MAX && fd->tok[ft].type >= CM_JSTR) {
		*bad |= cm_buf_addf(out, ",\"found_bytes\":%u", fd->tok[ft].len) < 0;
	} else {
		*bad |= cm_buf_adds(out, ",\"found\":") < 0 || cm_json_write(fd, ft, out) < 0;
	}
	ok = o >= 0 && leaf_holds(x, o, fd, ft, tv);
	*bad |= cm_buf_adds(out, ok ? ",\"ok\":true}" : ",\"ok\":false}") < 0;
	return ok;
}

/* Evaluates the node at token t without short cuts, so that every leaf
 * is recorded, and returns its verdict. */
static int ex_node(struct rule_explain *x, const struct cm_rule_event *ev, uint32_t t,
                   struct cm_buf *out, int *nleaves, int *bad)
{
	const struct cm_jdoc *w = &x->where;
	uint32_t k;
	size_t mark = x->path.len;
	int r;

	if ((k = cm_json_get(w, t, "not", 3)) != CM_JNONE) {
		*bad |= cm_buf_adds(&x->path, ".not") < 0;
		r = !ex_node(x, ev, k, out, nleaves, bad);
	} else if ((k = cm_json_get(w, t, "all", 3)) != CM_JNONE ||
	           (k = cm_json_get(w, t, "any", 3)) != CM_JNONE) {
		int all = cm_json_get(w, t, "all", 3) != CM_JNONE;
		uint32_t e = k + 1;

		r = all;
		for (uint32_t i = 0; i < w->tok[k].count; i++, e = w->tok[e].next) {
			int v;

			x->path.len = mark;
			*bad |= cm_buf_addf(&x->path, "%s[%u]", all ? ".all" : ".any", i) < 0;
			v = ex_node(x, ev, e, out, nleaves, bad);
			r = all ? r && v : r || v;
		}
	} else {
		if ((*nleaves)++)
			*bad |= cm_buf_addc(out, ',') < 0;
		r = ex_leaf(x, ev, t, out, bad);
	}
	x->path.len = mark;
	if (x->path.data)
		x->path.data[mark] = 0;
	return r;
}

/* Appends a time, or null for an open bound. */
static int put_bound(struct cm_buf *b, int64_t ms, int64_t open)
{
	char t[CM_TIME_MAX];
	size_t n;

	if (ms == open)
		return cm_buf_adds(b, "null");
	n = cm_time_format(ms, t);
	return cm_buf_addc(b, '"') < 0 || cm_buf_add(b, t, n) < 0 || cm_buf_addc(b, '"') < 0 ? -1
	                                                                                     : 0;
}

/* The checks of one campaign on one event. */
int cm_rule_explain(struct cm_ruleset *s, const struct cm_rule_event *ev, int64_t id,
                    struct cm_buf *out, int *holds, struct cm_err *err)
{
	static const char *const status_names[] = {"active", "paused", "archived"};
	struct rules_loaded *ld = &s->loaded;
	struct rule_explain *x;
	const struct campaign *c;
	uint32_t ci = rule_camp_find(ld, id);
	int ok, all = 1, bad = 0;

	*holds = 0;
	if (ci == NONE || ld->camps[ci].bad || !s->compiled || s->problems)
		return cm_errf(err, "no campaign %lld to explain", (long long)id);
	c = &ld->camps[ci];
	x = explain_state(s);
	if (!x)
		return cm_errf(err, "out of memory");
	/* status */
	bad |= cm_buf_addf(out, "{\"check\":\"status\",\"ok\":%s,\"status\":\"%s\"}",
	                   c->active ? "true" : "false", status_names[c->status]) < 0;
	all &= c->active;
	/* event_type */
	ok = admits(ld, c, ev->type, ev->type_len);
	bad |= cm_buf_addf(out, ",{\"check\":\"event_type\",\"ok\":%s,\"expected\":",
	                   ok ? "true" : "false") < 0;
	if (c->ntypes == 0) {
		bad |= cm_buf_adds(out, "null") < 0;
	} else {
		for (uint32_t k = 0; k < c->ntypes; k++) {
			const struct str_ref *t = &ld->typerefs[c->types + k];

			bad |= cm_buf_addc(out, k ? ',' : '[') < 0 ||
			       cm_buf_add_jstr(out, pool_at(ld, t->off), t->len) < 0;
		}
		bad |= cm_buf_addc(out, ']') < 0;
	}
	bad |= cm_buf_adds(out, ",\"found\":") < 0 ||
	       cm_buf_add_jstr(out, ev->type, ev->type_len) < 0 || cm_buf_addc(out, '}') < 0;
	all &= ok;
	/* window */
	ok = c->start <= ev->time_ms && ev->time_ms < c->end;
	bad |= cm_buf_addf(out, ",{\"check\":\"window\",\"ok\":%s,\"starts_at\":",
	                   ok ? "true" : "false") < 0 ||
	       put_bound(out, c->start, INT64_MIN) < 0 || cm_buf_adds(out, ",\"ends_at\":") < 0 ||
	       put_bound(out, c->end, INT64_MAX) < 0 || cm_buf_adds(out, ",\"occurred_at\":") < 0 ||
	       put_bound(out, ev->time_ms, INT64_MIN) < 0 || cm_buf_addc(out, '}') < 0;
	all &= ok;
	/* where, re-read from its text; the leaves first, for the verdict */
	if (c->where != NONE) {
		int nleaves = 0;
		struct cm_err perr;

		if (cm_json_parse(&x->where, pool_at(ld, c->where_off), c->where_len, &perr) < 0)
			return cm_errf(err, "campaign %lld: rule.where: %s", (long long)id,
			               perr.msg);
		cm_buf_reset(&x->path);
		cm_buf_reset(&x->val);
		bad |= cm_buf_adds(&x->path, "rule.where") < 0;
		ok = ex_node(x, ev, 0, &x->val, &nleaves, &bad);
		bad |= cm_buf_addf(out, ",{\"check\":\"where\",\"ok\":%s,\"leaves\":[",
		                   ok ? "true" : "false") < 0 ||
		       cm_buf_add(out, x->val.data ? x->val.data : "", x->val.len) < 0 ||
		       cm_buf_adds(out, "]}") < 0;
		all &= ok;
	}
	/* jq: natively where the matcher is (the same verdicts, and none of
	 * libjq 1.6's leaking builtins), else by libjq itself */
	if (c->jq >= 0) {
		int r = cm_jqx_eval_event(s->jqx, (uint32_t)c->jq, ev->doc, ev->profile);
		struct cm_err jerr;

		if (r == CM_JQX_FALLBACK) {
			jv in = rule_event_jv(s, ev->doc, ev->profile);

			if (!jv_is_valid(in)) {
				r = CM_JQX_ERROR;
				cm_errf(&jerr, "the event cannot be converted for jq");
			} else {
				r = cm_jqx_eval(s->jqx, (uint32_t)c->jq, in, &jerr);
			}
			jv_free(in);
		}
		if (r == CM_JQX_ERROR) {
			rule_one_line(jerr.msg);
			bad |= cm_buf_adds(out, ",{\"check\":\"jq\",\"ok\":false,\"error\":") < 0 ||
			       cm_buf_add_jstr(out, jerr.msg, strlen(jerr.msg)) < 0 ||
			       cm_buf_addc(out, '}') < 0;
			ok = 0;
		} else {
			ok = r == CM_JQX_TRUE;
			bad |= cm_buf_addf(out, ",{\"check\":\"jq\",\"ok\":%s,\"result\":%s}",
			                   ok ? "true" : "false", ok ? "true" : "false") < 0;
		}
		all &= ok;
	}
	if (bad)
		return cm_errf(err, "out of memory");
	*holds = all;
	return 0;
}
