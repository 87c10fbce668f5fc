/* rule.c - the rule set's lifecycle and the helpers its parts share:
 * growing arrays, the pool, and problems reported with the campaign's label
 * and the JSON path of the part at fault (see rule_int.h for the engine's
 * files). */
#include "rule_int.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jqx.h"

/* ---- small helpers ---- */

/* Grows an array of elsize-byte elements so that it holds need elements;
 * -1 when memory is out or the count would overflow. */
int rule_grow_array(void **p, uint32_t *cap, uint32_t need, size_t elsize)
{
	return cm_grow(p, cap, need, elsize);
}

/* Copies bytes into the pool and returns their offset, NONE on failure. */
uint32_t rule_pool_add(struct rules_loaded *ld, const char *p, size_t n)
{
	size_t off = ld->pool.len;

	if (off + n >= UINT32_MAX / 2 || cm_buf_add(&ld->pool, p, n) < 0)
		return NONE;
	return (uint32_t)off;
}

/* Makes a message one printable line: texts from the input (an operator
 * written with a newline, say) may hold control bytes. */
void rule_one_line(char *m)
{
	for (; *m; m++)
		if ((unsigned char)*m < 0x20 || *m == 0x7f)
			*m = '?';
}

/* The kind of value at token t, for messages ("a string"). */
const char *rule_type_word(const struct cm_jdoc *d, uint32_t t)
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

/* ---- the set ---- */

/* The serial number of the last set made. */
static _Atomic uint64_t last_serial;

/* Makes an empty set. */
struct cm_ruleset *cm_ruleset_new(void)
{
	struct cm_ruleset *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->serial = atomic_fetch_add(&last_serial, 1) + 1;
	cm_buf_init(&s->loaded.pool, 0);
	cm_buf_init(&s->scratch.arena, 0);
	cm_buf_init(&s->scratch.tmp, 0);
	s->jqx = cm_jqx_new();
	if (!s->jqx || cm_buf_add(&s->loaded.pool, "", 1) < 0) {
		cm_ruleset_free(s);
		return NULL;
	}
	return s;
}

/* Frees what loading filled. */
static void loaded_release(struct rules_loaded *ld)
{
	for (uint32_t i = 0; i < ld->ncontainers; i++) {
		cm_jdoc_release(&ld->containers[i].doc);
		free(ld->containers[i].text);
	}
	for (uint32_t i = 0; i < ld->nregex; i++)
		pcre2_code_free(ld->regexes[i]);
	for (uint32_t i = 0; i < ld->nsrc; i++)
		free(ld->sources[i]);
	cm_buf_release(&ld->pool);
	free(ld->camps);
	free(ld->nodes);
	free(ld->kids);
	free(ld->values);
	free(ld->containers);
	free(ld->sets);
	free(ld->setnums);
	free(ld->setstrs);
	free(ld->typerefs);
	free(ld->variants);
	free(ld->regexes);
	free(ld->regex_jit);
	free(ld->paths);
	free(ld->path_tab);
	free(ld->sources);
	free(ld->idtab);
}

/* Frees what compiling built. */
static void index_release(struct rules_index *ix)
{
	for (uint32_t i = 0; i < ix->nslot_errors; i++)
		free(ix->slot_errors[i]);
	free(ix->slot_errors);
	free(ix->slot_prof);
	free(ix->active);
	free(ix->buckets);
	free(ix->type_map);
	free(ix->probes);
	free(ix->keys);
	free(ix->code);
	free(ix->progs);
	free(ix->sids);
	free(ix->path_nsids);
	free(ix->sidlists);
	free(ix->prefixes);
	free(ix->path_prefix);
	free(ix->path_nprefixes);
	free(ix->member_ids);
	free(ix->member_camps);
	free(ix->ctls);
	free(ix->ctl_variants);
	free(ix->ctl_weights);
	free(ix->camp_ctl);
	free(ix->by_id);
	free(ix->explain_ids);
}

/* Frees the matching scratch. */
static void scratch_release(struct rules_scratch *sc)
{
	if (sc->have_ev_jv)
		jv_free(sc->ev_jv);
	for (uint32_t i = 0; i < sc->key_jvcap; i++)
		if (sc->key_jvs[i].used)
			jv_free(sc->key_jvs[i].key);
	free(sc->key_jvs);
	pcre2_match_data_free(sc->match_data);
	pcre2_match_context_free(sc->match_ctx);
	pcre2_jit_stack_free(sc->jit_stack);
	cm_buf_release(&sc->arena);
	cm_buf_release(&sc->tmp);
	free(sc->hitbits);
	free(sc->pathvals);
	free(sc->hits);
	free(sc->ids);
	free(sc->slot_gen);
	free(sc->slot_answer);
}

/* Frees the set and everything it compiled. */
void cm_ruleset_free(struct cm_ruleset *s)
{
	if (!s)
		return;
	rule_explain_free(s->explain);
	scratch_release(&s->scratch);
	index_release(&s->index);
	loaded_release(&s->loaded);
	cm_jqx_free(s->jqx);
	free(s);
}

/* Campaigns loaded, any status. */
size_t cm_ruleset_count(const struct cm_ruleset *s)
{
	return s->loaded.ncamp;
}
/* Looks the id up among the valid campaigns. */
int cm_ruleset_has(const struct cm_ruleset *s, int64_t id)
{
	uint32_t c = rule_camp_find(&s->loaded, id);

	return c != NONE && !s->loaded.camps[c].bad;
}

/* Active campaigns in the matcher. */
size_t cm_ruleset_active(const struct cm_ruleset *s)
{
	return s->index.nactive;
}
/* The set's serial number. */
uint64_t cm_ruleset_serial(const struct cm_ruleset *s)
{
	return s->serial;
}

/* Groups are the type buckets of the matcher. */
uint32_t cm_ruleset_ngroups(const struct cm_ruleset *s)
{
	return s->index.buckets ? s->index.nbucket : 0;
}

/* The bucket of an event type. */
uint32_t cm_ruleset_group(const struct cm_ruleset *s, const char *type, size_t n)
{
	return s->index.buckets ? type_bucket(s, type, n) : 0;
}

/* A bucket's members, in rank order, which is id order. */
size_t cm_ruleset_group_members(const struct cm_ruleset *s, uint32_t g, const int64_t **ids)
{
	if (!s->index.buckets || g >= s->index.nbucket) {
		*ids = NULL;
		return 0;
	}
	*ids = s->index.member_ids + s->index.buckets[g].ids;
	return s->index.buckets[g].nmem;
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

/* ---- problems ---- */

/* Reports one problem at the current path, with the campaign's label. */
void rule_problem(struct load_ctx *lc, const char *fmt, ...)
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
	rule_one_line(m->data ? m->data : text);
	if (lc->report)
		lc->report(lc->ctx, m->data ? m->data : text);
}

/* Appends ".name" (or "name" at the start) to the path; returns the old
 * length for rule_path_pop. Names are cut and made printable. */
size_t rule_path_key(struct load_ctx *lc, const char *name, size_t n)
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
size_t rule_path_index(struct load_ctx *lc, uint32_t i)
{
	size_t mark = lc->path.len;

	cm_buf_addf(&lc->path, "[%u]", i);
	return mark;
}

/* Cuts the path back to what it was at mark. */
void rule_path_pop(struct load_ctx *lc, size_t mark)
{
	lc->path.len = mark;
	if (lc->path.data)
		lc->path.data[mark] = 0;
}

/* Decoded bytes of string token t (valid until the next call). */
const char *rule_tok_str(struct load_ctx *lc, uint32_t t, size_t *n)
{
	const char *p = cm_json_str(lc->d, t, &lc->str, n);

	if (!p) {
		lc->oom = 1;
		*n = 0;
		return "";
	}
	return p;
}

/* Prepares a loading context; its buffers are released by
 * rule_load_ctx_release. */
void rule_load_ctx_init(struct load_ctx *lc, struct cm_ruleset *s, cm_rule_reportfn *report,
                        void *ctx, const char *source)
{
	memset(lc, 0, sizeof(*lc));
	lc->s = s;
	lc->report = report;
	lc->ctx = ctx;
	lc->source = source;
	cm_buf_init(&lc->path, 4096);
	cm_buf_init(&lc->msg, 0);
	cm_buf_init(&lc->str, 0);
}

/* Ends a loading context: adds its problems to the set's count (an out of
 * memory condition is reported once) and returns its problem count or -1. */
int rule_load_ctx_release(struct load_ctx *lc)
{
	int n = lc->nprob;

	if (lc->oom) {
		lc->pos = lc->pos ? lc->pos : 1;
		rule_path_pop(lc, 0);
		rule_problem(lc, "out of memory");
	}
	lc->s->problems += lc->nprob;
	cm_buf_release(&lc->path);
	cm_buf_release(&lc->msg);
	cm_buf_release(&lc->str);
	return lc->oom ? -1 : n;
}
