/* profiles.c - users' traits in memory: a profiles file and identify events
 * merged by CONTRACT 1.5's rule (latest occurred_at, then the greater
 * event_id, wins per trait; null removes). */
#include "profiles.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "event.h"
#include "json.h"
#include "rule.h"
#include "strmap.h"

/* One trait: its name, its value as compact JSON (none once removed) and
 * the identify event it came from, all in one allocation. */
struct trait {
	char *mem; /* name, then value, then event_id */
	uint32_t nlen, vlen, elen;
	int removed;
	int64_t t; /* occurred_at of its event; INT64_MIN from a profiles file */
};

/* A user's traits, and their object text once asked for. */
struct profile {
	struct trait *tr;
	uint32_t n, cap;
	struct cm_buf text;
	int dirty; /* text is out of date */
};

struct cm_profiles {
	struct cm_strmap users; /* user_id -> index in prof */
	struct profile *prof;
	uint32_t cap;
	struct cm_buf val, name, user, eid; /* decoding scratch */
};

/* Makes an empty store. */
struct cm_profiles *cm_profiles_new(void)
{
	struct cm_profiles *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	cm_strmap_init(&p->users);
	cm_buf_init(&p->val, 0);
	cm_buf_init(&p->name, 0);
	cm_buf_init(&p->user, 0);
	cm_buf_init(&p->eid, 0);
	return p;
}

/* Frees every profile. */
void cm_profiles_free(struct cm_profiles *p)
{
	if (!p)
		return;
	for (uint32_t u = 0; u < p->users.n; u++) {
		for (uint32_t i = 0; i < p->prof[u].n; i++)
			free(p->prof[u].tr[i].mem);
		free(p->prof[u].tr);
		cm_buf_release(&p->prof[u].text);
	}
	free(p->prof);
	cm_strmap_release(&p->users);
	cm_buf_release(&p->val);
	cm_buf_release(&p->name);
	cm_buf_release(&p->user);
	cm_buf_release(&p->eid);
	free(p);
}

/* The profile of user, made empty when new; NULL when memory is out or the
 * store is full. */
static struct profile *profile_of(struct cm_profiles *p, const char *user, size_t n,
                                  struct cm_err *err)
{
	uint32_t i;
	int rc;

	if (p->users.n >= CM_PROFILES_MAX_USERS && cm_strmap_find(&p->users, user, n) < 0) {
		cm_errf(err, "more than %u users with a profile", CM_PROFILES_MAX_USERS);
		return NULL;
	}
	rc = cm_strmap_add(&p->users, user, n, &i);
	if (rc < 0) {
		cm_errf(err, "out of memory");
		return NULL;
	}
	if (rc == 1) {
		if (cm_grow((void **)&p->prof, &p->cap, i + 1, sizeof(*p->prof)) < 0) {
			cm_errf(err, "out of memory");
			return NULL;
		}
		memset(&p->prof[i], 0, sizeof(p->prof[i]));
		cm_buf_init(&p->prof[i].text, 0);
		p->prof[i].dirty = 1;
	}
	return &p->prof[i];
}

/* True when (t, eid) does not come before the trait's own event: the same
 * event again replaces it too, so that of a key repeated in one event the
 * last counts, as in PostgreSQL's jsonb. */
static int not_older(const struct trait *tr, int64_t t, const char *eid, size_t elen)
{
	const char *old = tr->mem + tr->nlen + tr->vlen;
	size_t k = elen < tr->elen ? elen : tr->elen;
	int c;

	if (t != tr->t)
		return t > tr->t;
	c = k ? memcmp(eid, old, k) : 0;
	return c ? c > 0 : elen >= tr->elen;
}

/* Sets trait name of pr to val (NULL: removes it) from an event at (t,
 * eid), unless force is 0 and the trait holds a value from a later event. */
static int set_trait(struct profile *pr, const char *name, size_t nlen, const char *val,
                     size_t vlen, int64_t t, const char *eid, size_t elen, int force,
                     struct cm_err *err)
{
	struct trait *tr = NULL;
	char *mem;

	for (uint32_t i = 0; i < pr->n; i++)
		if (pr->tr[i].nlen == nlen && memcmp(pr->tr[i].mem, name, nlen) == 0) {
			tr = &pr->tr[i];
			break;
		}
	if (tr && !force && !not_older(tr, t, eid, elen))
		return 0;
	if (!tr) {
		if (pr->n >= CM_PROFILES_MAX_TRAITS)
			return cm_errf(err, "more than %d traits", CM_PROFILES_MAX_TRAITS);
		if (cm_grow((void **)&pr->tr, &pr->cap, pr->n + 1, sizeof(*pr->tr)) < 0)
			return cm_errf(err, "out of memory");
		tr = &pr->tr[pr->n++];
		tr->mem = NULL;
	}
	mem = malloc(nlen + (val ? vlen : 0) + elen + 1);
	if (!mem) {
		if (!tr->mem)
			pr->n--;
		return cm_errf(err, "out of memory");
	}
	memcpy(mem, name, nlen);
	if (val)
		memcpy(mem + nlen, val, vlen);
	memcpy(mem + nlen + (val ? vlen : 0), eid, elen);
	free(tr->mem);
	tr->mem = mem;
	tr->nlen = (uint32_t)nlen;
	tr->vlen = val ? (uint32_t)vlen : 0;
	tr->elen = (uint32_t)elen;
	tr->removed = !val;
	tr->t = t;
	pr->dirty = 1;
	return 0;
}

/* Sets every member of the traits object at token obj of d as a trait of
 * pr, from an event at (t, eid). */
static int set_traits(struct cm_profiles *p, struct profile *pr, const struct cm_jdoc *d,
                      uint32_t obj, int64_t t, const char *eid, size_t elen, int force,
                      struct cm_err *err)
{
	uint32_t k = obj + 1;

	for (uint32_t m = 0; m < d->tok[obj].count; m++, k = d->tok[k + 1].next) {
		size_t nlen;
		const char *name = cm_json_str(d, k, &p->name, &nlen);
		int removed = d->tok[k + 1].type == CM_JNULL;

		cm_buf_reset(&p->val);
		if (!name || (!removed && cm_json_write(d, k + 1, &p->val) < 0))
			return cm_errf(err, "out of memory");
		if (set_trait(pr, name, nlen, removed ? NULL : p->val.data, p->val.len, t, eid,
		              elen, force, err) < 0)
			return -1;
	}
	return 0;
}

/* Reads one profiles file line. */
int cm_profiles_load_line(struct cm_profiles *p, struct cm_jdoc *d, const char *line, size_t len,
                          struct cm_err *err)
{
	uint32_t tuser = CM_JNONE, ttraits = CM_JNONE, k = 1;
	struct profile *pr;
	const char *user;
	size_t n, i = 0;

	while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
		i++;
	if (i == len)
		return 0;
	if (cm_json_parse(d, line, len, err) < 0)
		return cm_err_prefix(err, "invalid JSON: ");
	if (d->tok[0].type != CM_JOBJ)
		return cm_errf(err, "expected an object {\"user_id\":...,\"traits\":{...}}");
	for (uint32_t m = 0; m < d->tok[0].count; m++, k = d->tok[k + 1].next) {
		const char *key = cm_json_str(d, k, &p->name, &n);

		if (!key)
			return cm_errf(err, "out of memory");
		if (n == 7 && memcmp(key, "user_id", 7) == 0)
			tuser = k + 1;
		else if (n == 6 && memcmp(key, "traits", 6) == 0)
			ttraits = k + 1;
		else if (!(n == 10 && memcmp(key, "updated_at", 10) == 0) && !(n && key[0] == '_'))
			return cm_errf(err, "unknown key \"%.*s\" (expected user_id and traits)",
			               (int)(n > 40 ? 40 : n), key);
	}
	if (tuser == CM_JNONE || d->tok[tuser].type != CM_JSTR)
		return cm_errf(err, "user_id: expected a string of 1 to %d bytes",
		               CM_EVENT_USER_MAX);
	user = cm_json_str(d, tuser, &p->user, &n);
	if (!user)
		return cm_errf(err, "out of memory");
	if (n < 1 || n > CM_EVENT_USER_MAX)
		return cm_errf(err, "user_id: expected a string of 1 to %d bytes, not %zu bytes",
		               CM_EVENT_USER_MAX, n);
	if (ttraits == CM_JNONE || d->tok[ttraits].type != CM_JOBJ)
		return cm_errf(err, "traits: expected an object");
	pr = profile_of(p, user, n, err);
	if (!pr)
		return -1;
	return set_traits(p, pr, d, ttraits, INT64_MIN, "", 0, 1, err);
}

/* Is ev an identify event? */
int cm_profiles_is_identify(const struct cm_rule_event *ev)
{
	return ev->type_len == 8 && memcmp(ev->type, "identify", 8) == 0;
}

/* Merges an identify event's properties into its user's profile. */
int cm_profiles_identify(struct cm_profiles *p, const struct cm_rule_event *ev, struct cm_err *err)
{
	const struct cm_jdoc *d = ev->doc;
	uint32_t props;
	struct profile *pr;
	const char *user, *eid;
	size_t un, en;

	if (!cm_profiles_is_identify(ev))
		return 0;
	props = cm_json_get(d, 0, "properties", 10);
	if (props == CM_JNONE || d->tok[props].type != CM_JOBJ)
		return 0;
	user = cm_json_str(d, ev->user_tok, &p->user, &un);
	eid = cm_json_str(d, ev->id_tok, &p->eid, &en);
	if (!user || !eid)
		return cm_errf(err, "out of memory");
	pr = profile_of(p, user, un, err);
	if (!pr)
		return -1;
	return set_traits(p, pr, d, props, ev->time_ms, eid, en, 0, err);
}

/* Rebuilds a profile's object text from its traits. */
static int write_text(struct profile *pr)
{
	int first = 1;

	cm_buf_reset(&pr->text);
	if (cm_buf_addc(&pr->text, '{') < 0)
		return -1;
	for (uint32_t i = 0; i < pr->n; i++) {
		const struct trait *tr = &pr->tr[i];

		if (tr->removed)
			continue;
		if ((!first && cm_buf_addc(&pr->text, ',') < 0) ||
		    cm_buf_add_jstr(&pr->text, tr->mem, tr->nlen) < 0 ||
		    cm_buf_addc(&pr->text, ':') < 0 ||
		    cm_buf_add(&pr->text, tr->mem + tr->nlen, tr->vlen) < 0)
			return -1;
		first = 0;
	}
	if (cm_buf_addc(&pr->text, '}') < 0)
		return -1;
	pr->dirty = 0;
	return 0;
}

/* The user's traits as an object text. */
const char *cm_profiles_get(struct cm_profiles *p, const char *user, size_t n, size_t *len)
{
	int64_t i = cm_strmap_find(&p->users, user, n);
	struct profile *pr;

	if (i < 0)
		return NULL;
	pr = &p->prof[i];
	if (pr->dirty && write_text(pr) < 0)
		return NULL;
	*len = pr->text.len;
	return pr->text.data;
}

/* Users known. */
size_t cm_profiles_count(const struct cm_profiles *p)
{
	return p->users.n;
}
