/* rule.c - the rule set's lifecycle and the helpers its parts share:
 * growing arrays, the pool, and problems reported with the campaign's label
 * and the JSON path of the part at fault (see rule_int.h for the engine's
 * files). */
#include "rule_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jqx.h"

/* ---- small helpers ---- */

/* Grows an array of elsize-byte elements so that it holds need elements;
 * -1 when memory is out or the count would overflow. */
int rule_grow_array(void **p, uint32_t *cap, uint32_t need, size_t elsize)
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

/* Copies bytes into the pool and returns their offset, NONE on failure. */
uint32_t rule_pool_add(struct cm_ruleset *s, const char *p, size_t n)
{
	size_t off = s->pool.len;

	if (off + n >= UINT32_MAX / 2 || cm_buf_add(&s->pool, p, n) < 0)
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
	for (uint32_t i = 0; i < s->ncontainers; i++) {
		cm_jdoc_release(&s->containers[i].doc);
		free(s->containers[i].text);
	}
	for (uint32_t i = 0; i < s->nregex; i++)
		pcre2_code_free(s->regexes[i]);
	for (uint32_t i = 0; i < s->nsrc; i++)
		free(s->sources[i]);
	for (uint32_t i = 0; i < s->nslot_errors; i++)
		free(s->slot_errors[i]);
	if (s->have_ev_jv)
		jv_free(s->ev_jv);
	for (uint32_t i = 0; i < s->key_jvcap; i++)
		if (s->key_jvs[i].used)
			jv_free(s->key_jvs[i].key);
	free(s->key_jvs);
	pcre2_match_data_free(s->match_data);
	pcre2_match_context_free(s->match_ctx);
	pcre2_jit_stack_free(s->jit_stack);
	cm_jqx_free(s->jqx);
	cm_buf_release(&s->pool);
	cm_buf_release(&s->arena);
	cm_buf_release(&s->tmp);
	free(s->camps);
	free(s->nodes);
	free(s->kids);
	free(s->values);
	free(s->containers);
	free(s->sets);
	free(s->setnums);
	free(s->setstrs);
	free(s->typerefs);
	free(s->regexes);
	free(s->regex_jit);
	free(s->paths);
	free(s->path_tab);
	free(s->sources);
	free(s->idtab);
	free(s->slot_errors);
	free(s->active);
	free(s->buckets);
	free(s->type_map);
	free(s->probes);
	free(s->keys);
	free(s->code);
	free(s->progs);
	free(s->sids);
	free(s->path_nsids);
	free(s->sidlists);
	free(s->prefixes);
	free(s->path_prefix);
	free(s->path_nprefixes);
	free(s->hitbits);
	free(s->member_ids);
	free(s->pathvals);
	free(s->hits);
	free(s->ids);
	free(s->slot_gen);
	free(s->slot_answer);
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
	return s->nactive;
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

/* Decoded bytes of string token t, in the set's scratch (valid until the
 * next call). */
const char *rule_tok_str(struct load_ctx *lc, uint32_t t, size_t *n)
{
	const char *p = cm_json_str(lc->d, t, &lc->s->tmp, n);

	if (!p) {
		lc->oom = 1;
		*n = 0;
		return "";
	}
	return p;
}

/* Prepares a loading context; lc->path and lc->msg are released by
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
	return lc->oom ? -1 : n;
}
