/* outcome.c - buckets, groups and limits for each candidate, in input
 * order (see outcome.h for the rules), and the per-campaign summary. */
#include "outcome.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bucket.h"
#include "buf.h"
#include "err.h"
#include "json.h"
#include "rule.h"
#include "strmap.h"
#include "timefmt.h"

/* ---- groups ---- */

static const char *const outcome_names[] = {"matched", "holdout", "capped"};

/* The name of an outcome. */
const char *cm_outcome_name(int outcome)
{
	return outcome >= 0 && outcome <= CM_OUTCOME_CAPPED ? outcome_names[outcome] : "matched";
}

/* The bucket and group of a user, when the campaign splits its users. */
int cm_outcome_group(const struct cm_rule_controls *ctl, int64_t campaign_id, const char *user,
                     size_t n, double *bucket)
{
	*bucket = -1;
	if (!ctl || (ctl->holdout <= 0 && ctl->nvariants == 0))
		return 0;
	*bucket = cm_bucket(campaign_id, user, n);
	return cm_bucket_group(*bucket, ctl->holdout, ctl->weights, ctl->nvariants);
}

/* ---- limits ---- */

/* A matched-or-holdout match of a (campaign, user): when, and which event
 * (in ids). */
struct hit {
	int64_t t;
	uint32_t off, len;
};

/* The matched-or-holdout matches of one (campaign, user), sorted by time,
 * then event_id. */
struct pair {
	struct hit *h;
	uint32_t n, cap;
};

/* A (campaign, event) decided already: what it got, for a redelivery. */
struct decision {
	uint8_t outcome, reason;
	int variant;
	double bucket;
	int64_t before;
	uint32_t by_off, by_len; /* in ids; len 0: none */
	int64_t by_ms;
};

struct cm_outcomes {
	unsigned flags;
	struct cm_strmap pairs; /* campaign id (8 bytes) + user_id -> pairs */
	struct pair *pv;
	uint32_t pcap;
	struct cm_strmap done; /* campaign id + event_id -> decisions */
	struct decision *dv;
	uint32_t dcap;
	struct cm_buf ids;  /* event ids the state remembers */
	struct cm_buf key;  /* a key being built */
	struct cm_buf user; /* decoded user_id and event_id of the event */
	struct cm_buf eid;
};

/* Makes an empty state. */
struct cm_outcomes *cm_outcomes_new(unsigned flags)
{
	struct cm_outcomes *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->flags = flags;
	cm_strmap_init(&o->pairs);
	cm_strmap_init(&o->done);
	cm_buf_init(&o->ids, 0);
	cm_buf_init(&o->key, 0);
	cm_buf_init(&o->user, 0);
	cm_buf_init(&o->eid, 0);
	return o;
}

/* Frees the state. */
void cm_outcomes_free(struct cm_outcomes *o)
{
	if (!o)
		return;
	for (uint32_t i = 0; i < o->pairs.n; i++)
		free(o->pv[i].h);
	free(o->pv);
	free(o->dv);
	cm_strmap_release(&o->pairs);
	cm_strmap_release(&o->done);
	cm_buf_release(&o->ids);
	cm_buf_release(&o->key);
	cm_buf_release(&o->user);
	cm_buf_release(&o->eid);
	free(o);
}

/* Makes the key campaign id + s[0..n) in o->key. */
static int make_key(struct cm_outcomes *o, int64_t id, const char *s, size_t n)
{
	cm_buf_reset(&o->key);
	return cm_buf_add(&o->key, &id, sizeof(id)) < 0 || cm_buf_add(&o->key, s, n) < 0 ? -1 : 0;
}

/* Orders two matches by time, then event_id bytewise. */
static int hit_cmp(const struct cm_outcomes *o, int64_t t, const char *e, size_t en,
                   const struct hit *h)
{
	size_t k = en < h->len ? en : h->len;
	int c;

	if (t != h->t)
		return t < h->t ? -1 : 1;
	c = k ? memcmp(e, o->ids.data + h->off, k) : 0;
	if (c)
		return c;
	return en < h->len ? -1 : en > h->len;
}

/* Orders two event ids bytewise. */
static int id_cmp(const struct cm_outcomes *o, const struct hit *a, const struct hit *b)
{
	size_t k = a->len < b->len ? a->len : b->len;
	int c = k ? memcmp(o->ids.data + a->off, o->ids.data + b->off, k) : 0;

	return c ? c : (a->len > b->len) - (a->len < b->len);
}

/* Applies the limit of candidate oc (bucket outcome decided) of the event
 * (t, e[0..en)) of user u[0..un), and remembers the decision. */
static int apply_limit(struct cm_outcomes *o, struct cm_outcome *oc, int64_t t, const char *u,
                       size_t un, const char *e, size_t en, struct cm_err *err)
{
	const struct cm_rule_controls *ctl = oc->ctl;
	struct pair *p;
	struct decision *dv;
	const struct hit *by = NULL;
	uint32_t pi, di, lo = 0, hi;
	int rc;

	/* a (campaign, event) decided before keeps its outcome */
	if (make_key(o, oc->campaign_id, e, en) < 0)
		return cm_errf(err, "out of memory");
	rc = cm_strmap_add(&o->done, o->key.data, o->key.len, &di);
	if (rc < 0)
		return cm_errf(err, "out of memory");
	if (rc == 0) {
		const struct decision *d = &o->dv[di];

		oc->outcome = d->outcome;
		oc->reason = d->reason;
		oc->variant = d->variant;
		oc->bucket = d->bucket;
		oc->before = d->before;
		oc->capped_by = d->by_len ? o->ids.data + d->by_off : NULL;
		oc->capped_by_len = d->by_len;
		oc->capped_at_ms = d->by_ms;
		return 0;
	}
	if (cm_grow((void **)&o->dv, &o->dcap, di + 1, sizeof(*o->dv)) < 0)
		return cm_errf(err, "out of memory");
	if (make_key(o, oc->campaign_id, u, un) < 0)
		return cm_errf(err, "out of memory");
	rc = cm_strmap_add(&o->pairs, o->key.data, o->key.len, &pi);
	if (rc < 0)
		return cm_errf(err, "out of memory");
	if (rc == 1) {
		if (cm_grow((void **)&o->pv, &o->pcap, pi + 1, sizeof(*o->pv)) < 0)
			return cm_errf(err, "out of memory");
		memset(&o->pv[pi], 0, sizeof(o->pv[pi]));
	}
	p = &o->pv[pi];
	oc->before = p->n;
	/* where this match goes in time order */
	hi = p->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (hit_cmp(o, t, e, en, &p->h[mid]) > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (ctl->per_user && p->n >= (uint64_t)ctl->per_user) {
		oc->reason = CM_CAPPED_PER_USER;
		by = &p->h[p->n - 1];
	} else if (ctl->cooldown_ms) {
		/* the closest match within the cooldown, on either side */
		int64_t best = INT64_MAX;

		for (uint32_t k = lo; k > 0 && t - p->h[k - 1].t < ctl->cooldown_ms; k--) {
			int64_t dt = t - p->h[k - 1].t;

			if (dt < best || (dt == best && id_cmp(o, &p->h[k - 1], by) < 0)) {
				best = dt;
				by = &p->h[k - 1];
			}
		}
		for (uint32_t k = lo; k < p->n && p->h[k].t - t < ctl->cooldown_ms; k++) {
			int64_t dt = p->h[k].t - t;

			if (dt < best || (dt == best && id_cmp(o, &p->h[k], by) < 0)) {
				best = dt;
				by = &p->h[k];
			}
		}
		if (by)
			oc->reason = CM_CAPPED_COOLDOWN;
	}
	dv = &o->dv[di];
	memset(dv, 0, sizeof(*dv));
	if (by) {
		oc->outcome = CM_OUTCOME_CAPPED; /* in its variant still */
		dv->by_off = by->off;
		dv->by_len = by->len;
		dv->by_ms = by->t;
	} else {
		/* it counts from now on */
		size_t off = o->ids.len;

		if (cm_buf_add(&o->ids, e, en) < 0 || o->ids.len >= UINT32_MAX)
			return cm_errf(err, "out of memory");
		if (cm_grow((void **)&p->h, &p->cap, p->n + 1, sizeof(*p->h)) < 0)
			return cm_errf(err, "out of memory");
		memmove(p->h + lo + 1, p->h + lo, (p->n - lo) * sizeof(*p->h));
		p->h[lo].t = t;
		p->h[lo].off = (uint32_t)off;
		p->h[lo].len = (uint32_t)en;
		p->n++;
	}
	dv->outcome = (uint8_t)oc->outcome;
	dv->reason = (uint8_t)oc->reason;
	dv->variant = oc->variant;
	dv->bucket = oc->bucket;
	dv->before = oc->before;
	oc->capped_by = dv->by_len ? o->ids.data + dv->by_off : NULL;
	oc->capped_by_len = dv->by_len;
	oc->capped_at_ms = dv->by_ms;
	return 0;
}

/* Decides each candidate: the bucket's group, then (offline) its limit. */
int cm_outcomes_decide(struct cm_outcomes *o, const struct cm_rule_event *ev,
                       struct cm_outcome *out, size_t n, struct cm_err *err)
{
	const char *user = NULL, *eid = NULL;
	size_t un = 0, en = 0;

	for (size_t i = 0; i < n; i++) {
		struct cm_outcome *oc = &out[i];
		const struct cm_rule_controls *ctl = oc->ctl;
		int g;

		oc->outcome = CM_OUTCOME_MATCHED;
		oc->variant = -1;
		oc->bucket = -1;
		oc->limited = ctl && ctl->limit;
		oc->decided = 0;
		oc->reason = CM_CAPPED_NO;
		oc->before = 0;
		oc->capped_by = NULL;
		oc->capped_by_len = 0;
		oc->capped_at_ms = 0;
		if (!ctl)
			continue;
		if (!user) {
			user = cm_json_str(ev->doc, ev->user_tok, &o->user, &un);
			eid = cm_json_str(ev->doc, ev->id_tok, &o->eid, &en);
			if (!user || !eid)
				return cm_errf(err, "out of memory");
		}
		g = cm_outcome_group(ctl, oc->campaign_id, user, un, &oc->bucket);
		if (g < 0)
			oc->outcome = CM_OUTCOME_HOLDOUT;
		else if (ctl->nvariants)
			oc->variant = g;
		if (oc->limited && (o->flags & CM_OUTCOMES_LIMITS)) {
			oc->decided = 1;
			if (apply_limit(o, oc, ev->time_ms, user, un, eid, en, err) < 0)
				return -1;
		}
	}
	return 0;
}

/* ---- writing ---- */

/* The match object's outcome keys. */
int cm_outcome_put(const struct cm_outcome *oc, struct cm_buf *b)
{
	if (cm_buf_adds(b, ",\"outcome\":\"") < 0 ||
	    cm_buf_adds(b, cm_outcome_name(oc->outcome)) < 0 || cm_buf_addc(b, '"') < 0)
		return -1;
	if (oc->variant >= 0 && (cm_buf_adds(b, ",\"variant\":") < 0 ||
	                         cm_buf_add(b, oc->ctl->variants[oc->variant].json,
	                                    oc->ctl->variants[oc->variant].json_len) < 0))
		return -1;
	if (oc->limited && (cm_buf_adds(b, ",\"limit\":") < 0 ||
	                    cm_buf_add(b, oc->ctl->limit, oc->ctl->limit_len) < 0))
		return -1;
	return 0;
}

/* Appends a time as a JSON string. */
static int put_time(struct cm_buf *b, int64_t ms)
{
	char t[CM_TIME_MAX];
	size_t n = cm_time_format(ms, t);

	return cm_buf_addc(b, '"') < 0 || cm_buf_add(b, t, n) < 0 || cm_buf_addc(b, '"') < 0 ? -1
	                                                                                     : 0;
}

/* The bucket and limit checks of explain; every append is checked once,
 * at the end (a buffer that failed stays failed). */
int cm_outcome_explain(const struct cm_outcome *oc, int matched, const char *user, size_t n,
                       struct cm_buf *b)
{
	const struct cm_rule_controls *ctl = oc->ctl;
	int bad = 0;

	if (!ctl)
		return 0;
	if (ctl->holdout > 0 || ctl->nvariants) {
		double bucket;
		int g = cm_outcome_group(ctl, oc->campaign_id, user, n, &bucket);

		bad |= cm_buf_addf(b, ",{\"check\":\"bucket\",\"bucket\":%.17g,\"holdout\":%.17g",
		                   bucket, ctl->holdout) < 0;
		if (g < 0) {
			bad |= cm_buf_adds(b, ",\"group\":\"holdout\"") < 0;
		} else if (ctl->nvariants) {
			bad |= cm_buf_adds(b, ",\"group\":\"variant\",\"variant\":") < 0;
			bad |= cm_buf_add(b, ctl->variants[g].json, ctl->variants[g].json_len) < 0;
		} else {
			bad |= cm_buf_adds(b, ",\"group\":\"matched\"") < 0;
		}
		bad |= cm_buf_addc(b, '}') < 0;
	}
	if (!matched || !ctl->limit)
		return bad ? -1 : 0;
	bad |= cm_buf_adds(b, ",{\"check\":\"limit\",\"ok\":") < 0;
	bad |= cm_buf_adds(b, !oc->decided                       ? "null"
	                      : oc->outcome == CM_OUTCOME_CAPPED ? "false"
	                                                         : "true") < 0;
	if (ctl->per_user)
		bad |= cm_buf_addf(b, ",\"per_user\":%lld", (long long)ctl->per_user) < 0;
	if (ctl->cooldown) {
		bad |= cm_buf_adds(b, ",\"cooldown\":") < 0;
		bad |= cm_buf_add_jstr(b, ctl->cooldown, ctl->cooldown_len) < 0;
	}
	if (!oc->decided) {
		bad |= cm_buf_adds(b, ",\"reason\":\"decided by cm-store against the stored "
		                      "matches\"") < 0;
	} else if (oc->outcome != CM_OUTCOME_CAPPED) {
		bad |= cm_buf_addf(b, ",\"before\":%lld,\"reason\":\"within the limit\"",
		                   (long long)oc->before) < 0;
	} else {
		struct cm_buf reason = CM_BUF_INIT;
		char t[CM_TIME_MAX];

		cm_time_format(oc->capped_at_ms, t);
		if (oc->reason == CM_CAPPED_PER_USER)
			bad |=
			    cm_buf_addf(&reason,
			                "capped: user already matched %lld time%s, last on %s by "
			                "event ",
			                (long long)oc->before, oc->before == 1 ? "" : "s", t) < 0;
		else
			bad |= cm_buf_addf(&reason,
			                   "capped: within the cooldown %.*s of the match on %s by "
			                   "event ",
			                   (int)ctl->cooldown_len, ctl->cooldown, t) < 0;
		bad |= cm_buf_add(&reason, oc->capped_by, oc->capped_by_len) < 0;
		bad |= cm_buf_addf(b, ",\"before\":%lld,\"reason\":", (long long)oc->before) < 0;
		bad |= cm_buf_add_jstr(b, reason.data ? reason.data : "", reason.len) < 0;
		bad |= cm_buf_adds(b, ",\"capped_by\":") < 0;
		bad |= cm_buf_add_jstr(b, oc->capped_by, oc->capped_by_len) < 0;
		bad |= cm_buf_adds(b, ",\"capped_at\":") < 0;
		bad |= put_time(b, oc->capped_at_ms) < 0;
		cm_buf_release(&reason);
	}
	bad |= cm_buf_addc(b, '}') < 0;
	return bad ? -1 : 0;
}

/* The raw JSON text of the value at token t of d (a string with its quotes). */
static void raw_value(const struct cm_jdoc *d, uint32_t t, const char **p, size_t *n)
{
	const struct cm_jtok *k = &d->tok[t];

	*p = d->src + k->off - (k->type == CM_JSTR);
	*n = (size_t)k->len + (k->type == CM_JSTR ? 2 : 0);
}

int cm_outcomes_explain(struct cm_outcomes *o, struct cm_ruleset *s, const struct cm_rule_event *ev,
                        const int64_t *ids, size_t n, char sep, struct cm_buf *out,
                        size_t *candidates, struct cm_err *err)
{
	struct cm_buf checks = CM_BUF_INIT, scratch = CM_BUF_INIT;
	size_t *off = calloc(n + 1, sizeof(*off)), nc = 0, elen, ulen;
	int *holds = calloc(n + 1, sizeof(*holds)), rc = -1;
	struct cm_outcome *outs = calloc(n + 1, sizeof(*outs));
	const char *eid, *user;

	*candidates = 0;
	if (!off || !holds || !outs)
		goto oom;
	for (size_t k = 0; k < n; k++) {
		off[k] = checks.len;
		if (cm_rule_explain(s, ev, ids[k], &checks, &holds[k], err) < 0)
			goto out;
		if (holds[k]) {
			outs[nc].campaign_id = ids[k];
			outs[nc].ctl = cm_ruleset_controls(s, ids[k]);
			nc++;
		}
	}
	off[n] = checks.len;
	if (cm_outcomes_decide(o, ev, outs, nc, err) < 0)
		goto out;
	raw_value(ev->doc, ev->id_tok, &eid, &elen);
	user = cm_json_str(ev->doc, ev->user_tok, &scratch, &ulen);
	if (!user)
		goto oom;
	for (size_t k = 0, c = 0; k < n; k++) {
		struct cm_outcome none;
		const struct cm_outcome *oc = holds[k] ? &outs[c++] : NULL;
		int bad = 0;

		if (!oc) {
			memset(&none, 0, sizeof(none));
			none.campaign_id = ids[k];
			none.ctl = cm_ruleset_controls(s, ids[k]);
			none.variant = -1;
		}
		bad |= cm_buf_adds(out, "{\"event_id\":") < 0 || cm_buf_add(out, eid, elen) < 0 ||
		       cm_buf_addf(out, ",\"campaign_id\":%lld,\"matched\":%s,\"outcome\":",
		                   (long long)ids[k], oc ? "true" : "false") < 0;
		if (!oc) {
			bad |= cm_buf_adds(out, "null") < 0;
		} else {
			bad |= cm_buf_addf(out, "\"%s\"", cm_outcome_name(oc->outcome)) < 0;
			if (oc->variant >= 0)
				bad |= cm_buf_adds(out, ",\"variant\":") < 0 ||
				       cm_buf_add(out, oc->ctl->variants[oc->variant].json,
				                  oc->ctl->variants[oc->variant].json_len) < 0;
		}
		bad |= cm_buf_adds(out, ",\"checks\":[") < 0 ||
		       cm_buf_add(out, checks.data + off[k], off[k + 1] - off[k]) < 0 ||
		       cm_outcome_explain(oc ? oc : &none, oc != NULL, user, ulen, out) < 0 ||
		       cm_buf_adds(out, "]}") < 0 || cm_buf_addc(out, sep) < 0;
		if (bad)
			goto oom;
	}
	*candidates = nc;
	rc = 0;
	goto out;
oom:
	rc = cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
out:
	free(off);
	free(holds);
	free(outs);
	cm_buf_release(&checks);
	cm_buf_release(&scratch);
	return rc;
}

/* ---- summary ---- */

struct cm_summary {
	struct cm_strmap rowmap; /* campaign id (8 bytes) -> rows */
	struct cm_summary_row *rows;
	uint32_t rowcap;
	struct cm_strmap users; /* campaign id + user_id: distinct users */
	uint64_t serial;        /* the set the group counts belong to */
	uint64_t *groups;       /* events per type group of that set */
	uint32_t ngroups;
	struct cm_summary_row *sorted;
	struct cm_buf key, user;
};

/* Makes an empty summary. */
struct cm_summary *cm_summary_new(void)
{
	struct cm_summary *sm = calloc(1, sizeof(*sm));

	if (!sm)
		return NULL;
	cm_strmap_init(&sm->rowmap);
	cm_strmap_init(&sm->users);
	cm_buf_init(&sm->key, 0);
	cm_buf_init(&sm->user, 0);
	return sm;
}

/* Frees the summary. */
void cm_summary_free(struct cm_summary *sm)
{
	if (!sm)
		return;
	cm_strmap_release(&sm->rowmap);
	cm_strmap_release(&sm->users);
	cm_buf_release(&sm->key);
	cm_buf_release(&sm->user);
	free(sm->rows);
	free(sm->groups);
	free(sm->sorted);
	free(sm);
}

/* The row of campaign id, made when new; NULL when memory is out. */
static struct cm_summary_row *row_of(struct cm_summary *sm, int64_t id)
{
	uint32_t i;
	int rc = cm_strmap_add(&sm->rowmap, &id, sizeof(id), &i);

	if (rc < 0)
		return NULL;
	if (rc == 1) {
		if (cm_grow((void **)&sm->rows, &sm->rowcap, i + 1, sizeof(*sm->rows)) < 0)
			return NULL;
		memset(&sm->rows[i], 0, sizeof(sm->rows[i]));
		sm->rows[i].campaign_id = id;
		sm->rows[i].first_ms = sm->rows[i].last_ms = INT64_MIN;
	}
	return &sm->rows[i];
}

/* Adds the group counts of set s to its members' rows, and forgets them;
 * every active campaign of s gets a row, also one that saw no event. */
int cm_summary_flush(struct cm_summary *sm, const struct cm_ruleset *s, struct cm_err *err)
{
	uint32_t ng = cm_ruleset_ngroups(s);
	int mine = sm->serial == cm_ruleset_serial(s);

	for (uint32_t g = 0; g < ng; g++) {
		const int64_t *ids;
		size_t n = cm_ruleset_group_members(s, g, &ids);
		uint64_t events = mine && g < sm->ngroups ? sm->groups[g] : 0;

		for (size_t k = 0; k < n; k++) {
			struct cm_summary_row *r = row_of(sm, ids[k]);

			if (!r)
				return cm_errf(err, "out of memory");
			r->checked += events;
		}
		if (mine && g < sm->ngroups)
			sm->groups[g] = 0;
	}
	return 0;
}

/* Counts an event and its candidates. */
int cm_summary_event(struct cm_summary *sm, const struct cm_ruleset *s,
                     const struct cm_rule_event *ev, const struct cm_outcome *out, size_t n,
                     struct cm_err *err)
{
	const char *user = NULL;
	size_t un = 0;

	if (sm->serial != cm_ruleset_serial(s)) {
		/* a new set: its groups start at zero (the caller flushed the old) */
		uint32_t ng = cm_ruleset_ngroups(s);
		uint64_t *g = calloc(ng ? ng : 1, sizeof(*g));

		if (!g)
			return cm_errf(err, "out of memory");
		free(sm->groups);
		sm->groups = g;
		sm->ngroups = ng;
		sm->serial = cm_ruleset_serial(s);
	}
	if (sm->ngroups)
		sm->groups[cm_ruleset_group(s, ev->type, ev->type_len)]++;
	for (size_t i = 0; i < n; i++) {
		struct cm_summary_row *r = row_of(sm, out[i].campaign_id);
		uint32_t ui;
		int rc;

		if (!r)
			return cm_errf(err, "out of memory");
		r->candidates++;
		if (out[i].outcome == CM_OUTCOME_CAPPED) {
			r->capped++;
		} else {
			if (out[i].outcome == CM_OUTCOME_HOLDOUT)
				r->holdout++;
			else
				r->matched++;
			if (r->first_ms == INT64_MIN || ev->time_ms < r->first_ms)
				r->first_ms = ev->time_ms;
			if (r->last_ms == INT64_MIN || ev->time_ms > r->last_ms)
				r->last_ms = ev->time_ms;
		}
		if (!user && !(user = cm_json_str(ev->doc, ev->user_tok, &sm->user, &un)))
			return cm_errf(err, "out of memory");
		cm_buf_reset(&sm->key);
		if (cm_buf_add(&sm->key, &out[i].campaign_id, sizeof(out[i].campaign_id)) < 0 ||
		    cm_buf_add(&sm->key, user, un) < 0 ||
		    (rc = cm_strmap_add(&sm->users, sm->key.data, sm->key.len, &ui)) < 0)
			return cm_errf(err, "out of memory");
		r->users += rc == 1;
	}
	return 0;
}

/* Orders rows by campaign id. */
static int row_cmp(const void *a, const void *b)
{
	const struct cm_summary_row *x = a, *y = b;

	return x->campaign_id < y->campaign_id ? -1 : x->campaign_id > y->campaign_id;
}

/* The rows in id order. */
size_t cm_summary_rows(struct cm_summary *sm, const struct cm_summary_row **rows)
{
	uint32_t n = sm->rowmap.n;
	struct cm_summary_row *s = realloc(sm->sorted, (n ? n : 1) * sizeof(*s));

	if (!s) {
		*rows = NULL;
		return 0;
	}
	sm->sorted = s;
	if (n)
		memcpy(s, sm->rows, n * sizeof(*s));
	qsort(s, n, sizeof(*s), row_cmp);
	*rows = s;
	return n;
}

/* One object per row. */
int cm_summary_ndjson(const struct cm_summary_row *rows, size_t n, struct cm_buf *b)
{
	for (size_t i = 0; i < n; i++) {
		const struct cm_summary_row *r = &rows[i];

		cm_buf_addf(b,
		            "{\"campaign_id\":%lld,\"events_checked\":%llu,\"candidates\":%llu,"
		            "\"matched\":%llu,\"holdout\":%llu,\"capped\":%llu,"
		            "\"distinct_users\":%llu,\"first_match\":",
		            (long long)r->campaign_id, (unsigned long long)r->checked,
		            (unsigned long long)r->candidates, (unsigned long long)r->matched,
		            (unsigned long long)r->holdout, (unsigned long long)r->capped,
		            (unsigned long long)r->users);
		if (r->first_ms == INT64_MIN)
			cm_buf_adds(b, "null,\"last_match\":null");
		else if (put_time(b, r->first_ms) < 0 || cm_buf_adds(b, ",\"last_match\":") < 0 ||
		         put_time(b, r->last_ms) < 0)
			return -1;
		if (cm_buf_adds(b, "}\n") < 0)
			return -1;
	}
	return 0;
}

/* An aligned table: each number right-aligned under its title. */
int cm_summary_table(const struct cm_summary_row *rows, size_t n, struct cm_buf *b)
{
	cm_buf_addf(b, "%12s %10s %10s %10s %10s %10s %10s  %-24s %s\n", "campaign", "checked",
	            "candidates", "matched", "holdout", "capped", "users", "first_match",
	            "last_match");
	for (size_t i = 0; i < n; i++) {
		const struct cm_summary_row *r = &rows[i];
		char f[CM_TIME_MAX] = "-", l[CM_TIME_MAX] = "-";

		if (r->first_ms != INT64_MIN) {
			cm_time_format(r->first_ms, f);
			cm_time_format(r->last_ms, l);
		}
		if (cm_buf_addf(b, "%12lld %10llu %10llu %10llu %10llu %10llu %10llu  %-24s %s\n",
		                (long long)r->campaign_id, (unsigned long long)r->checked,
		                (unsigned long long)r->candidates, (unsigned long long)r->matched,
		                (unsigned long long)r->holdout, (unsigned long long)r->capped,
		                (unsigned long long)r->users, f, l) < 0)
			return -1;
	}
	return 0;
}
