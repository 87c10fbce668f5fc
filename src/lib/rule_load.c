/* rule_load.c - campaigns into a set: a JSON array or NDJSON text
 * (cm_ruleset_load), one parsed campaign (cm_ruleset_add) or one campaign
 * checked alone (cm_campaign_validate). Each campaign is validated
 * completely and every problem reported; its rule.where goes to
 * rule_where.c. */
#include "rule_int.h"

#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "err.h"
#include "event.h"
#include "jqx.h"
#include "timefmt.h"

/* ---- campaigns ---- */

/* Checks one event type string at token t and stores it in typerefs. */
static int add_type(struct load_ctx *lc, uint32_t t)
{
	struct rules_loaded *ld = &lc->s->loaded;
	size_t n;
	const char *p;
	struct str_ref r;

	if (lc->d->tok[t].type != CM_JSTR) {
		rule_problem(lc, "expected an event type string, not %s", rule_type_word(lc->d, t));
		return -1;
	}
	p = rule_tok_str(lc, t, &n);
	if (!cm_event_type_ok(p, n)) {
		rule_problem(lc,
		             "invalid event type \"%.*s\" (expected 1 to 64 bytes of "
		             "[A-Za-z0-9_.:-])",
		             (int)(n > 64 ? 64 : n), p);
		return -1;
	}
	r.off = rule_pool_add(ld, p, n);
	r.len = (uint32_t)n;
	if (r.off == NONE || PUSH(ld->typerefs, ld->ntyperef, ld->typerefcap, r) < 0) {
		lc->oom = 1;
		return -1;
	}
	return 0;
}

/* Validates rule (token t) and fills c's types, where and jq. */
static void load_rule(struct load_ctx *lc, struct campaign *c, uint32_t t)
{
	struct rules_loaded *ld = &lc->s->loaded;
	const struct cm_jdoc *d = lc->d;
	uint32_t ttype = NONE, twhere = NONE, tjq = NONE, i = t + 1;

	if (d->tok[t].type != CM_JOBJ) {
		rule_problem(lc, "expected an object with event_type, where and/or jq, not %s",
		             rule_type_word(d, t));
		c->bad = 1;
		return;
	}
	for (uint32_t m = d->tok[t].count; m; m--, i = d->tok[i + 1].next) {
		size_t n;
		const char *k = rule_tok_str(lc, i, &n);

		if (n == 10 && memcmp(k, "event_type", 10) == 0)
			ttype = i + 1;
		else if (n == 5 && memcmp(k, "where", 5) == 0)
			twhere = i + 1;
		else if (n == 2 && memcmp(k, "jq", 2) == 0)
			tjq = i + 1;
		else {
			size_t mark = rule_path_key(lc, k, n);

			rule_problem(lc, "unknown key (expected event_type, where or jq)");
			rule_path_pop(lc, mark);
			c->bad = 1;
		}
	}
	if (ttype != NONE && d->tok[ttype].type != CM_JNULL) {
		size_t mark = rule_path_key(lc, "event_type", 10);

		c->types = ld->ntyperef;
		if (d->tok[ttype].type == CM_JARR) {
			uint32_t e = ttype + 1;

			if (d->tok[ttype].count == 0) {
				rule_problem(lc, "empty array (omit event_type to match any type)");
				c->bad = 1;
			}
			for (uint32_t k = 0; k < d->tok[ttype].count; k++, e = d->tok[e].next) {
				size_t m2 = rule_path_index(lc, k);

				if (add_type(lc, e) < 0)
					c->bad = 1;
				rule_path_pop(lc, m2);
			}
		} else if (d->tok[ttype].type == CM_JSTR) {
			if (add_type(lc, ttype) < 0)
				c->bad = 1;
		} else {
			rule_problem(lc, "expected a string or an array of strings, not %s",
			             rule_type_word(d, ttype));
			c->bad = 1;
		}
		c->ntypes = ld->ntyperef - c->types;
		rule_path_pop(lc, mark);
	}
	if (twhere != NONE && d->tok[twhere].type != CM_JNULL) {
		size_t mark = rule_path_key(lc, "where", 5);

		c->where = rule_where_build(lc, twhere);
		if (c->where == NONE) {
			c->bad = 1;
		} else {
			/* Kept as written for explain, which walks it on its own. */
			struct cm_buf text = CM_BUF_INIT;

			if (cm_json_write(d, twhere, &text) < 0 ||
			    (c->where_off = rule_pool_add(ld, text.data, text.len)) == NONE)
				lc->oom = 1;
			c->where_len = (uint32_t)text.len;
			cm_buf_release(&text);
		}
		rule_path_pop(lc, mark);
	}
	if (tjq != NONE && d->tok[tjq].type != CM_JNULL) {
		size_t mark = rule_path_key(lc, "jq", 2);

		if (d->tok[tjq].type != CM_JSTR) {
			rule_problem(lc, "expected a jq expression string, not %s",
			             rule_type_word(d, tjq));
			c->bad = 1;
		} else {
			struct cm_err err;
			size_t n;
			const char *p = rule_tok_str(lc, tjq, &n);

			c->jq = cm_jqx_add(lc->s->jqx, p, n, &err);
			/* A predicate that names the profile needs it fetched. */
			if (memmem(p, n, "profile", 7))
				lc->reads_profile = c->jq_prof = 1;
			if (c->jq < 0) {
				rule_problem(lc, "%s", err.msg);
				c->bad = 1;
			}
		}
		rule_path_pop(lc, mark);
	}
}

/* Parses a window bound: null/absent is open, else an RFC 3339 time. */
static int load_time(struct load_ctx *lc, uint32_t t, const char *key, int64_t *ms)
{
	size_t mark, n;
	const char *p;
	int rc = 0;

	if (t == NONE || lc->d->tok[t].type == CM_JNULL)
		return 0;
	mark = rule_path_key(lc, key, strlen(key));
	if (lc->d->tok[t].type != CM_JSTR) {
		rule_problem(lc, "expected null or an RFC 3339 time, not %s",
		             rule_type_word(lc->d, t));
		rc = -1;
	} else {
		p = rule_tok_str(lc, t, &n);
		if (cm_time_parse(p, n, ms) < 0) {
			rule_problem(
			    lc,
			    "\"%.*s\" is not an RFC 3339 time (expected null or a time such "
			    "as 2026-11-27T10:15:00Z)",
			    (int)(n > 40 ? 40 : n), p);
			rc = -1;
		}
	}
	rule_path_pop(lc, mark);
	return rc;
}

/* ---- delivery controls (CONTRACT 1.6) ---- */

/* Validates the limit object at token t: per_user, cooldown, or both. */
static void load_limit(struct load_ctx *lc, struct campaign *c, uint32_t t)
{
	struct rules_loaded *ld = &lc->s->loaded;
	const struct cm_jdoc *d = lc->d;
	uint32_t tper = NONE, tcool = NONE, i = t + 1;
	size_t mark = rule_path_key(lc, "limit", 5), n;
	int bad = 0;

	if (d->tok[t].type != CM_JOBJ) {
		rule_problem(lc, "expected an object with per_user and/or cooldown, not %s",
		             rule_type_word(d, t));
		c->bad = 1;
		goto out;
	}
	for (uint32_t m = d->tok[t].count; m; m--, i = d->tok[i + 1].next) {
		const char *k = rule_tok_str(lc, i, &n);

		if (n == 8 && memcmp(k, "per_user", 8) == 0) {
			tper = i + 1;
		} else if (n == 8 && memcmp(k, "cooldown", 8) == 0) {
			tcool = i + 1;
		} else {
			size_t m2 = rule_path_key(lc, k, n);

			rule_problem(lc, "unknown key (expected per_user or cooldown)");
			rule_path_pop(lc, m2);
			bad = 1;
		}
	}
	if (tper == NONE && tcool == NONE && !bad) {
		rule_problem(lc, "expected per_user and/or cooldown (omit limit for none)");
		bad = 1;
	}
	if (tper != NONE) {
		size_t m2 = rule_path_key(lc, "per_user", 8);
		const char *p = d->src + d->tok[tper].off;
		uint32_t len = d->tok[tper].len, k = 0;
		int64_t v = 0;

		if (d->tok[tper].type == CM_JNUM)
			for (; k < len && k < 11 && p[k] >= '0' && p[k] <= '9'; k++)
				v = v * 10 + (p[k] - '0');
		if (d->tok[tper].type != CM_JNUM) {
			rule_problem(lc, "expected an integer from 1 to %d, not %s", INT32_MAX,
			             rule_type_word(d, tper));
			bad = 1;
		} else if (k == 0 || k != len || v < 1 || v > INT32_MAX) {
			rule_problem(lc, "expected an integer from 1 to %d, not %.*s", INT32_MAX,
			             (int)(len > 40 ? 40 : len), p);
			bad = 1;
		}
		c->per_user = v;
		rule_path_pop(lc, m2);
	}
	if (tcool != NONE) {
		size_t m2 = rule_path_key(lc, "cooldown", 8);
		int64_t ms = 0;

		if (d->tok[tcool].type != CM_JSTR) {
			rule_problem(lc,
			             "expected an ISO 8601 duration such as \"P7D\" or \"PT12H\", "
			             "not %s",
			             rule_type_word(d, tcool));
			bad = 1;
		} else {
			const char *p = rule_tok_str(lc, tcool, &n);

			if (cm_duration_parse(p, n, &ms) < 0) {
				rule_problem(lc,
				             "expected an ISO 8601 duration such as \"P7D\" or "
				             "\"PT12H\", got \"%.*s\"",
				             (int)(n > 40 ? 40 : n), p);
				bad = 1;
			} else if (ms <= 0) {
				rule_problem(lc,
				             "expected a duration longer than zero, got \"%.*s\"",
				             (int)(n > 40 ? 40 : n), p);
				bad = 1;
			} else {
				c->cooldown_ms = ms;
				c->cooldown_off = rule_pool_add(ld, p, n);
				c->cooldown_len = (uint32_t)n;
				if (c->cooldown_off == NONE)
					lc->oom = 1;
			}
		}
		rule_path_pop(lc, m2);
	}
	if (bad) {
		c->bad = 1;
	} else {
		/* Kept verbatim, for the match lines of its candidates. */
		struct cm_buf text = CM_BUF_INIT;

		if (cm_json_write(d, t, &text) < 0 ||
		    (c->limit_off = rule_pool_add(ld, text.data, text.len)) == NONE)
			lc->oom = 1;
		c->limit_len = (uint32_t)text.len;
		cm_buf_release(&text);
	}
out:
	rule_path_pop(lc, mark);
}

/* Validates the holdout at token t: a number in [0, 1). */
static void load_holdout(struct load_ctx *lc, struct campaign *c, uint32_t t)
{
	size_t mark = rule_path_key(lc, "holdout", 7);
	double v = lc->d->tok[t].type == CM_JNUM ? cm_json_num(lc->d, t) : -1;

	if (lc->d->tok[t].type != CM_JNUM || !(v >= 0 && v < 1)) {
		rule_problem(lc,
		             "expected a number from 0 up to (not including) 1, such as 0.1, "
		             "not %s",
		             lc->d->tok[t].type == CM_JNUM ? "a number outside it"
		                                           : rule_type_word(lc->d, t));
		c->bad = 1;
	}
	c->holdout = v > 0 && v < 1 ? v : 0;
	rule_path_pop(lc, mark);
}

/* Validates one variant {"name","weight"} at token t and stores it. */
static void load_variant(struct load_ctx *lc, struct campaign *c, uint32_t t)
{
	struct rules_loaded *ld = &lc->s->loaded;
	const struct cm_jdoc *d = lc->d;
	uint32_t tname = NONE, tweight = NONE, i = t + 1;
	struct variant v = {0, 0, 0, 0, 0};
	size_t n;
	int ok = 1;

	if (d->tok[t].type != CM_JOBJ) {
		rule_problem(lc, "expected an object {\"name\":...,\"weight\":...}, not %s",
		             rule_type_word(d, t));
		c->bad = 1;
		return;
	}
	for (uint32_t m = d->tok[t].count; m; m--, i = d->tok[i + 1].next) {
		const char *k = rule_tok_str(lc, i, &n);

		if (n == 4 && memcmp(k, "name", 4) == 0) {
			tname = i + 1;
		} else if (n == 6 && memcmp(k, "weight", 6) == 0) {
			tweight = i + 1;
		} else {
			size_t m2 = rule_path_key(lc, k, n);

			rule_problem(lc, "unknown key (expected name and weight)");
			rule_path_pop(lc, m2);
			ok = 0;
		}
	}
	{
		size_t m2 = rule_path_key(lc, "name", 4);
		const char *p = tname != NONE && d->tok[tname].type == CM_JSTR
		                    ? rule_tok_str(lc, tname, &n)
		                    : NULL;

		if (tname == NONE) {
			rule_problem(lc, "missing (expected a string of 1 to %d bytes)",
			             CM_RULE_VARIANT_MAX);
			ok = 0;
		} else if (!p) {
			rule_problem(lc, "expected a string of 1 to %d bytes, not %s",
			             CM_RULE_VARIANT_MAX, rule_type_word(d, tname));
			ok = 0;
		} else if (n < 1 || n > CM_RULE_VARIANT_MAX) {
			rule_problem(lc, "expected a string of 1 to %d bytes, not %zu bytes",
			             CM_RULE_VARIANT_MAX, n);
			ok = 0;
		} else {
			for (uint32_t k = c->variants; k < ld->nvariant; k++)
				if (ld->variants[k].len == n &&
				    memcmp(pool_at(ld, ld->variants[k].off), p, n) == 0) {
					rule_problem(lc,
					             "duplicate name \"%.*s\" (also variants[%u])",
					             (int)n, p, k - c->variants);
					ok = 0;
				}
			v.off = rule_pool_add(ld, p, n);
			v.len = (uint32_t)n;
			if (v.off == NONE)
				lc->oom = 1;
		}
		rule_path_pop(lc, m2);
	}
	{
		size_t m2 = rule_path_key(lc, "weight", 6);

		v.weight = tweight != NONE && d->tok[tweight].type == CM_JNUM
		               ? cm_json_num(d, tweight)
		               : -1;
		if (tweight == NONE) {
			rule_problem(lc, "missing (expected a number greater than 0)");
			ok = 0;
		} else if (d->tok[tweight].type != CM_JNUM) {
			rule_problem(lc, "expected a number greater than 0, not %s",
			             rule_type_word(d, tweight));
			ok = 0;
		} else if (!(v.weight > 0 && v.weight < 1e300)) {
			rule_problem(lc, "expected a number greater than 0, not %.*s",
			             (int)(d->tok[tweight].len > 40 ? 40 : d->tok[tweight].len),
			             d->src + d->tok[tweight].off);
			ok = 0;
		}
		rule_path_pop(lc, m2);
	}
	if (!ok) {
		c->bad = 1;
		return;
	}
	if (PUSH(ld->variants, ld->nvariant, ld->variantcap, v) < 0)
		lc->oom = 1;
}

/* Validates the variants array at token t. */
static void load_variants(struct load_ctx *lc, struct campaign *c, uint32_t t)
{
	const struct cm_jdoc *d = lc->d;
	size_t mark = rule_path_key(lc, "variants", 8);
	uint32_t e = t + 1;

	c->variants = lc->s->loaded.nvariant;
	if (d->tok[t].type != CM_JARR || d->tok[t].count == 0 ||
	    d->tok[t].count > CM_RULE_MAX_VARIANTS) {
		if (d->tok[t].type != CM_JARR)
			rule_problem(lc,
			             "expected an array of {\"name\",\"weight\"} objects, not %s",
			             rule_type_word(d, t));
		else
			rule_problem(lc,
			             "expected 1 to %d variants, not %u (omit variants for none)",
			             CM_RULE_MAX_VARIANTS, d->tok[t].count);
		c->bad = 1;
		goto out;
	}
	for (uint32_t k = 0; k < d->tok[t].count; k++, e = d->tok[e].next) {
		size_t m2 = rule_path_index(lc, k);

		load_variant(lc, c, e);
		rule_path_pop(lc, m2);
	}
	c->nvariants = lc->s->loaded.nvariant - c->variants;
out:
	rule_path_pop(lc, mark);
}

/* Finds a campaign by id without adding it. */
uint32_t rule_camp_find(const struct rules_loaded *ld, int64_t id)
{
	if (!ld->idtabcap)
		return NONE;
	for (uint32_t i = (uint32_t)hash_u64((uint64_t)id, 7) & (ld->idtabcap - 1); ld->idtab[i];
	     i = (i + 1) & (ld->idtabcap - 1))
		if (ld->camps[ld->idtab[i] - 1].id == id)
			return ld->idtab[i] - 1;
	return NONE;
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
static uint32_t id_lookup(struct rules_loaded *ld, int64_t id, uint32_t camp, int add)
{
	uint32_t i;

	if (add && (ld->nids + 1) * 2 > ld->idtabcap) {
		uint32_t cap = ld->idtabcap ? ld->idtabcap * 2 : 64;
		uint32_t *tab = calloc(cap, sizeof(*tab));

		if (!tab)
			return NONE - 1;
		for (uint32_t k = 0; k < ld->idtabcap; k++) {
			uint32_t c = ld->idtab[k];

			if (!c)
				continue;
			i = (uint32_t)hash_u64((uint64_t)ld->camps[c - 1].id, 7) & (cap - 1);
			while (tab[i])
				i = (i + 1) & (cap - 1);
			tab[i] = c;
		}
		free(ld->idtab);
		ld->idtab = tab;
		ld->idtabcap = cap;
	}
	if (!ld->idtabcap)
		return NONE;
	for (i = (uint32_t)hash_u64((uint64_t)id, 7) & (ld->idtabcap - 1); ld->idtab[i];
	     i = (i + 1) & (ld->idtabcap - 1))
		if (ld->camps[ld->idtab[i] - 1].id == id)
			return ld->idtab[i] - 1;
	if (add) {
		ld->idtab[i] = camp + 1;
		ld->nids++;
	}
	return NONE;
}

/* Remembers a source name for later messages (jq problems are found at
 * compile time) and returns its index. */
static uint32_t add_source(struct rules_loaded *ld, const char *source)
{
	char *copy;

	if (!source)
		return NONE;
	if (ld->nsrc && strcmp(ld->sources[ld->nsrc - 1], source) == 0)
		return ld->nsrc - 1;
	if (rule_grow_array((void **)&ld->sources, &ld->srccap, ld->nsrc + 1,
	                    sizeof(*ld->sources)) < 0)
		return NONE - 1;
	copy = strdup(source);
	if (!copy)
		return NONE - 1;
	ld->sources[ld->nsrc++] = copy;
	return ld->nsrc - 1;
}

/* Validates the campaign at token t and appends it (marked bad when it has
 * problems). */
static void load_campaign(struct load_ctx *lc, uint32_t t)
{
	struct rules_loaded *ld = &lc->s->loaded;
	const struct cm_jdoc *d = lc->d;
	uint32_t tid = NONE, tname = NONE, tstatus = NONE, tstart = NONE, tend = NONE;
	uint32_t trule = NONE, tlimit = NONE, tholdout = NONE, tvariants = NONE, i = t + 1;
	struct campaign c;
	size_t n;
	const char *p;

	memset(&c, 0, sizeof(c));
	c.pos = lc->pos;
	c.line = lc->line;
	c.start = INT64_MIN;
	c.end = INT64_MAX;
	c.where = NONE;
	c.jq = -1;
	c.src = add_source(ld, lc->source);
	if (c.src == NONE - 1) {
		lc->oom = 1;
		return;
	}
	lc->id = 0;
	lc->reads_profile = 0;
	rule_path_pop(lc, 0);
	if (d->tok[t].type != CM_JOBJ) {
		rule_problem(lc, "expected a campaign object, not %s", rule_type_word(d, t));
		return;
	}
	for (uint32_t m = d->tok[t].count; m; m--, i = d->tok[i + 1].next) {
		p = rule_tok_str(lc, i, &n);
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
		else if (IS("limit"))
			tlimit = i + 1;
		else if (IS("holdout"))
			tholdout = i + 1;
		else if (IS("variants"))
			tvariants = i + 1;
#undef IS
	}
	if (tid != NONE) {
		c.id = parse_id(d, tid);
		if (c.id == 0) {
			size_t mark = rule_path_key(lc, "id", 2);

			rule_problem(lc, "expected an integer from 1 to %lld",
			             (long long)CM_RULE_MAX_ID);
			rule_path_pop(lc, mark);
			c.bad = 1;
		} else {
			uint32_t other = id_lookup(ld, c.id, ld->ncamp, 1);

			if (other == NONE - 1) {
				lc->oom = 1;
				return;
			}
			lc->id = c.id;
			if (other != NONE) {
				const struct campaign *o = &ld->camps[other];
				size_t mark = rule_path_key(lc, "id", 2);

				if (o->line)
					rule_problem(lc,
					             "duplicate id (also campaign #%u, line %lu)",
					             o->pos, o->line);
				else
					rule_problem(lc, "duplicate id (also campaign #%u)",
					             o->pos);
				rule_path_pop(lc, mark);
				c.bad = 1;
			}
		}
	} else if (!(lc->flags & CM_RULE_ID_OPTIONAL)) {
		size_t mark = rule_path_key(lc, "id", 2);

		rule_problem(lc, "missing (expected an integer from 1 to %lld)",
		             (long long)CM_RULE_MAX_ID);
		rule_path_pop(lc, mark);
		c.bad = 1;
	}
	{
		size_t mark = rule_path_key(lc, "name", 4);

		if (tname == NONE) {
			rule_problem(lc, "missing (expected a string of 1 to %d bytes)",
			             MAX_NAME_LEN);
			c.bad = 1;
		} else if (d->tok[tname].type != CM_JSTR) {
			rule_problem(lc, "expected a string of 1 to %d bytes, not %s", MAX_NAME_LEN,
			             rule_type_word(d, tname));
			c.bad = 1;
		} else {
			rule_tok_str(lc, tname, &n);
			if (n < 1 || n > MAX_NAME_LEN) {
				rule_problem(lc,
				             "expected a string of 1 to %d bytes, not %zu bytes",
				             MAX_NAME_LEN, n);
				c.bad = 1;
			}
		}
		rule_path_pop(lc, mark);
	}
	{
		size_t mark = rule_path_key(lc, "status", 6);

		if (tstatus == NONE) {
			rule_problem(lc, "missing (expected active, paused or archived)");
			c.bad = 1;
		} else if (d->tok[tstatus].type != CM_JSTR) {
			rule_problem(lc, "expected active, paused or archived, not %s",
			             rule_type_word(d, tstatus));
			c.bad = 1;
		} else {
			p = rule_tok_str(lc, tstatus, &n);
			c.status = (uint8_t)(n == 6 && memcmp(p, "paused", 6) == 0 ? 1 : 2);
			if (n == 6 && memcmp(p, "active", 6) == 0) {
				c.active = 1;
				c.status = 0;
			} else if (!(n == 6 && memcmp(p, "paused", 6) == 0) &&
			           !(n == 8 && memcmp(p, "archived", 8) == 0)) {
				rule_problem(lc,
				             "\"%.*s\" is not a status (expected active, paused or "
				             "archived)",
				             (int)(n > 40 ? 40 : n), p);
				c.bad = 1;
			}
		}
		rule_path_pop(lc, mark);
	}
	if (load_time(lc, tstart, "starts_at", &c.start) < 0)
		c.bad = 1;
	if (load_time(lc, tend, "ends_at", &c.end) < 0)
		c.bad = 1;
	if (c.start != INT64_MIN && c.end != INT64_MAX && c.end <= c.start) {
		size_t mark = rule_path_key(lc, "ends_at", 7);

		rule_problem(lc, "must be after starts_at");
		rule_path_pop(lc, mark);
		c.bad = 1;
	}
	if (trule == NONE) {
		size_t mark = rule_path_key(lc, "rule", 4);

		rule_problem(lc, "missing (expected an object with event_type, where and/or jq)");
		rule_path_pop(lc, mark);
		c.bad = 1;
	} else {
		size_t mark = rule_path_key(lc, "rule", 4);

		load_rule(lc, &c, trule);
		rule_path_pop(lc, mark);
	}
	/* Delivery controls: null is the same as absent. */
	if (tlimit != NONE && d->tok[tlimit].type != CM_JNULL)
		load_limit(lc, &c, tlimit);
	if (tholdout != NONE && d->tok[tholdout].type != CM_JNULL)
		load_holdout(lc, &c, tholdout);
	if (tvariants != NONE && d->tok[tvariants].type != CM_JNULL)
		load_variants(lc, &c, tvariants);
	if (lc->oom)
		return;
	c.reads_profile = (uint8_t)lc->reads_profile;
	if (PUSH(ld->camps, ld->ncamp, ld->campcap, c) < 0)
		lc->oom = 1;
}

/* Adds one campaign from an already parsed document. */
int cm_ruleset_add(struct cm_ruleset *s, const struct cm_jdoc *d, uint32_t v, const char *source,
                   unsigned long line, cm_rule_reportfn *report, void *ctx)
{
	struct load_ctx lc;

	rule_load_ctx_init(&lc, s, report, ctx, source);
	lc.d = d;
	lc.line = line;
	lc.pos = s->loaded.ncamp + 1;
	if (s->compiled) {
		rule_problem(&lc, "the set is already compiled");
	} else if (v >= d->ntok) {
		rule_problem(&lc, "no such value");
	} else {
		load_campaign(&lc, v);
	}
	return rule_load_ctx_release(&lc);
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
static void syntax_problem(struct load_ctx *lc, const char *text, size_t base, size_t len,
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
			rule_one_line(b->data);
		lc->nprob++;
		if (lc->report)
			lc->report(lc->ctx, b->data ? b->data : "invalid JSON");
	}
}

/* Loads a JSON array or NDJSON text of campaigns. */
int cm_ruleset_load(struct cm_ruleset *s, const char *text, size_t len, const char *source,
                    cm_rule_reportfn *report, void *ctx)
{
	struct load_ctx lc;
	struct cm_jdoc d;
	struct cm_err err;
	size_t i = 0;

	rule_load_ctx_init(&lc, s, report, ctx, source);
	cm_jdoc_init(&d, DOC_DEPTH);
	lc.d = &d;
	lc.line = 1;
	if (s->compiled) {
		lc.pos = 1;
		rule_problem(&lc, "the set is already compiled");
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
	return rule_load_ctx_release(&lc);
}

/* ---- single campaign validation ---- */

/* The first problem reported, kept for cm_campaign_validate's err. */
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
	struct load_ctx lc;
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
	rule_load_ctx_init(&lc, s, keep_first, &f, NULL);
	lc.d = &d;
	lc.bare = 1;
	lc.flags = flags;
	lc.pos = 1;
	load_campaign(&lc, 0);
	if (rule_load_ctx_release(&lc) != 0)
		goto out;
	/* Only the jq remains to be checked: compile it. */
	s->compiled = 1;
	if (rule_compile_jq(s, &perr) < 0) {
		cm_errf(err, "%s", perr.msg);
		goto out;
	}
	if (s->index.nslot_errors && s->index.slot_errors[0]) {
		cm_errf(err, "rule.jq: does not compile: %s", s->index.slot_errors[0]);
		goto out;
	}
	rc = 0;
out:
	cm_jdoc_release(&d);
	cm_ruleset_free(s);
	return rc;
}
