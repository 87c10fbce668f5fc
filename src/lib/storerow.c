/* storerow.c - a validated record -> cm-store's COPY rows and SQL inputs. */
#include "storerow.h"

#include <string.h>

#include "err.h"
#include "event.h"
#include "json.h"
#include "pg.h"
#include "timefmt.h"

/* A field of the record, escaped for COPY, in sr->fld. */
struct span {
	size_t off, len;
};

/* The record's fields every row repeats: event_id, event_type, user_id,
 * occurred_at (escaped for COPY), and the time as JSON needs it. */
struct fields {
	struct span f[4];
	char at[CM_TIME_MAX];
	size_t atn;
};

/* The members of a match object (or a match line). */
struct mparts {
	uint32_t campaign, outcome, variant, limit;
};

void cm_storerow_init(struct cm_storerow *sr)
{
	cm_buf_init(&sr->fld, 0);
	cm_buf_init(&sr->scratch, 0);
}

void cm_storerow_release(struct cm_storerow *sr)
{
	cm_buf_release(&sr->fld);
	cm_buf_release(&sr->scratch);
}

/* Appends the decoded string token t to sr->fld, escaped for COPY. */
static int put_str(struct cm_storerow *sr, const struct cm_jdoc *d, uint32_t t, struct span *sp)
{
	const char *v;
	size_t n;

	v = cm_json_str(d, t, &sr->scratch, &n);
	if (!v)
		return -1;
	sp->off = sr->fld.len;
	if (cm_pg_copy_escape(&sr->fld, v, n) < 0)
		return -1;
	sp->len = sr->fld.len - sp->off;
	return 0;
}

/* Appends field sp of sr->fld to b, then the byte c. */
static int add_span(struct cm_buf *b, const struct cm_storerow *sr, const struct span *sp, char c)
{
	return cm_buf_add(b, sr->fld.data + sp->off, sp->len) < 0 ? -1 : cm_buf_addc(b, c);
}

/* Appends the string token t to b as the JSON it was written as (the
 * validator has checked it). */
static int add_raw_str(struct cm_buf *b, const struct cm_jdoc *d, uint32_t t)
{
	return cm_buf_add(b, d->src + d->tok[t].off - 1, (size_t)d->tok[t].len + 2);
}

/* The outcome a match carries, one of the three words the validator allows
 * (compared decoded, so an escaped spelling is the same word). */
static const char *outcome_of(const struct cm_jdoc *d, uint32_t t)
{
	if (t == CM_JNONE)
		return "matched";
	if (cm_json_str_eq(d, t, "holdout", 7))
		return "holdout";
	if (cm_json_str_eq(d, t, "capped", 6))
		return "capped";
	return "matched";
}

/* Finds the members of match object obj in one walk. */
static void match_parts(const struct cm_jdoc *d, uint32_t obj, struct mparts *m)
{
	uint32_t k = obj + 1;

	m->campaign = m->outcome = m->variant = m->limit = CM_JNONE;
	for (uint32_t i = 0; i < d->tok[obj].count; i++, k = d->tok[k + 1].next) {
		if (cm_json_str_eq(d, k, "campaign_id", 11))
			m->campaign = k + 1;
		else if (cm_json_str_eq(d, k, "outcome", 7))
			m->outcome = k + 1;
		else if (cm_json_str_eq(d, k, "variant", 7))
			m->variant = k + 1;
		else if (cm_json_str_eq(d, k, "limit", 5))
			m->limit = k + 1;
	}
}

/* Appends a matches COPY row: campaign_id, event_id, user_id, event_type,
 * occurred_at, outcome, variant. */
static int match_row(struct cm_storerow *sr, const struct cm_jdoc *d, const struct fields *fs,
                     const struct mparts *m, struct cm_buf *b)
{
	const struct cm_jtok *c = &d->tok[m->campaign];
	const char *o = outcome_of(d, m->outcome);
	struct span var;

	if (cm_buf_add(b, d->src + c->off, c->len) < 0 || cm_buf_addc(b, '\t') < 0 ||
	    add_span(b, sr, &fs->f[0], '\t') < 0 || add_span(b, sr, &fs->f[2], '\t') < 0 ||
	    add_span(b, sr, &fs->f[1], '\t') < 0 || add_span(b, sr, &fs->f[3], '\t') < 0 ||
	    cm_buf_adds(b, o) < 0 || cm_buf_addc(b, '\t') < 0)
		return -1;
	if (m->variant == CM_JNONE)
		return cm_buf_add(b, "\\N\n", 3);
	/* the variant goes after the record's fields in fld, taken back after */
	if (put_str(sr, d, m->variant, &var) < 0 || add_span(b, sr, &var, '\n') < 0)
		return -1;
	sr->fld.len = var.off;
	return 0;
}

/* Appends a candidate of a limited campaign for cm_decide_limits. */
static int limit_obj(const struct cm_jdoc *d, const struct cm_event_view *v,
                     const struct fields *fs, const struct mparts *m,
                     const struct cm_match_limit *lim, struct cm_buf *b)
{
	const struct cm_jtok *c = &d->tok[m->campaign];
	int rc = 0;

	rc |= cm_buf_adds(b, "{\"campaign_id\":");
	rc |= cm_buf_add(b, d->src + c->off, c->len);
	rc |= cm_buf_adds(b, ",\"event_id\":");
	rc |= add_raw_str(b, d, v->id);
	rc |= cm_buf_adds(b, ",\"user_id\":");
	rc |= add_raw_str(b, d, v->user);
	rc |= cm_buf_adds(b, ",\"event_type\":");
	rc |= add_raw_str(b, d, v->type);
	rc |= cm_buf_adds(b, ",\"occurred_at\":\"");
	rc |= cm_buf_add(b, fs->at, fs->atn);
	rc |= cm_buf_adds(b, "\",\"outcome\":\"");
	rc |= cm_buf_adds(b, outcome_of(d, m->outcome));
	rc |= cm_buf_adds(b, "\",\"variant\":");
	rc |= m->variant == CM_JNONE ? cm_buf_adds(b, "null") : add_raw_str(b, d, m->variant);
	rc |= cm_buf_adds(b, ",\"per_user\":");
	rc |= lim->per_user ? cm_buf_add_i64(b, lim->per_user) : cm_buf_adds(b, "null");
	rc |= cm_buf_adds(b, ",\"cooldown_ms\":");
	rc |= lim->cooldown_ms ? cm_buf_add_i64(b, lim->cooldown_ms) : cm_buf_adds(b, "null");
	rc |= cm_buf_adds(b, "},");
	return rc ? -1 : 0;
}

/* Appends one match: a COPY row, or a candidate when it carries a limit. */
static int put_match(struct cm_storerow *sr, const struct cm_jdoc *d, const struct cm_event_view *v,
                     const struct fields *fs, const struct mparts *m, struct cm_storerow_out *out,
                     struct cm_storerow_counts *n, struct cm_err *err)
{
	struct cm_match_limit lim;

	n->matches++;
	if (m->limit == CM_JNONE)
		return match_row(sr, d, fs, m, &out->mt) < 0 ? cm_errf(err, "out of memory") : 0;
	if (cm_match_limit_read(d, m->limit, &lim, err) < 0)
		return -1;
	n->limited++;
	return limit_obj(d, v, fs, m, &lim, &out->lim) < 0 ? cm_errf(err, "out of memory") : 0;
}

/* Appends an events COPY row: the fields, then the properties as written. */
static int event_row(const struct cm_storerow *sr, const struct cm_jdoc *d,
                     const struct cm_event_view *v, const struct fields *fs, struct cm_buf *b)
{
	const struct cm_jtok *t = &d->tok[v->props];

	for (int i = 0; i < 4; i++)
		if (add_span(b, sr, &fs->f[i], '\t') < 0)
			return -1;
	if (cm_pg_copy_escape(b, d->src + t->off, t->len) < 0)
		return -1;
	return cm_buf_addc(b, '\n');
}

/* Appends an identify event's traits for cm_merge_profiles. */
static int profile_obj(const struct cm_jdoc *d, const struct cm_event_view *v,
                       const struct fields *fs, struct cm_buf *b)
{
	const struct cm_jtok *t = &d->tok[v->props];
	int rc = 0;

	rc |= cm_buf_adds(b, "{\"user_id\":");
	rc |= add_raw_str(b, d, v->user);
	rc |= cm_buf_adds(b, ",\"occurred_at\":\"");
	rc |= cm_buf_add(b, fs->at, fs->atn);
	rc |= cm_buf_adds(b, "\",\"event_id\":");
	rc |= add_raw_str(b, d, v->id);
	rc |= cm_buf_adds(b, ",\"traits\":");
	rc |= cm_buf_add(b, d->src + t->off, t->len);
	rc |= cm_buf_adds(b, "},");
	return rc ? -1 : 0;
}

/* True for an event whose properties are profile traits. */
static int is_identify(const struct cm_event_view *v)
{
	return v->type_len == sizeof(CM_STOREROW_IDENTIFY) - 1 &&
	       !memcmp(v->type_text, CM_STOREROW_IDENTIFY, v->type_len);
}

/* Escapes the fields once, then writes every row from them; any failure
 * takes the record's rows back, so that a batch never holds half a record. */
int cm_storerow_add(struct cm_storerow *sr, const struct cm_jdoc *d, const struct cm_event_view *v,
                    struct cm_storerow_out *out, struct cm_storerow_counts *n, struct cm_err *err)
{
	size_t mark[4] = {out->ev.len, out->mt.len, out->lim.len, out->pf.len};
	struct fields fs;
	struct mparts m;

	memset(n, 0, sizeof(*n));
	cm_buf_reset(&sr->fld);
	fs.atn = cm_time_format(v->occurred_ms, fs.at);
	if (put_str(sr, d, v->id, &fs.f[0]) < 0 || put_str(sr, d, v->type, &fs.f[1]) < 0 ||
	    put_str(sr, d, v->user, &fs.f[2]) < 0)
		goto oom;
	fs.f[3].off = sr->fld.len;
	fs.f[3].len = fs.atn;
	if (cm_buf_add(&sr->fld, fs.at, fs.atn) < 0)
		goto oom;
	if (v->is_match) {
		m.campaign = v->campaign;
		m.outcome = v->outcome;
		m.variant = v->variant;
		m.limit = v->limit;
		if (put_match(sr, d, v, &fs, &m, out, n, err) < 0)
			goto fail;
		return 0;
	}
	if (event_row(sr, d, v, &fs, &out->ev) < 0)
		goto oom;
	n->events = 1;
	if (is_identify(v)) {
		if (profile_obj(d, v, &fs, &out->pf) < 0)
			goto oom;
		n->identify = 1;
	}
	if (v->matches != CM_JNONE) {
		uint32_t el = v->matches + 1;

		for (uint32_t i = 0; i < d->tok[v->matches].count; i++, el = d->tok[el].next) {
			match_parts(d, el, &m);
			if (put_match(sr, d, v, &fs, &m, out, n, err) < 0)
				goto fail;
		}
	}
	return 0;
oom:
	cm_errf(err, "out of memory");
fail:
	out->ev.len = mark[0];
	out->mt.len = mark[1];
	out->lim.len = mark[2];
	out->pf.len = mark[3];
	memset(n, 0, sizeof(*n));
	return -1;
}

/* Drops the last object's comma and closes the brackets. */
int cm_storerow_array(struct cm_buf *arr, const char *text, size_t len)
{
	cm_buf_reset(arr);
	if (len && text[len - 1] == ',')
		len--;
	if (cm_buf_addc(arr, '[') < 0 || cm_buf_add(arr, text, len) < 0 ||
	    cm_buf_addc(arr, ']') < 0)
		return -1;
	return 0;
}
