/* prom.c - Prometheus metrics registry and text exposition writer. */
#include "prom.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "event.h"

/* Above this a cap is surely a mistake (and its table would be large). */
#define MAX_SERIES_CAP 1000000

struct cm_prom_series {
	struct cm_prom_family *f;
	uint64_t hash;
	char **values;                  /* f->nlabels copies, NULL for none */
	atomic_uint_fast64_t u;         /* counter: the count; gauge: the double's bits */
	atomic_uint_fast64_t sum;       /* histogram: the double sum's bits */
	atomic_uint_fast64_t buckets[]; /* histogram: nbounds + 1, not cumulative */
};

struct cm_prom_family {
	enum cm_prom_type type;
	char *name, *help;
	char *labels[CM_PROM_MAX_LABELS + 1]; /* NULL-terminated */
	size_t nlabels;
	double bounds[CM_PROM_MAX_BUCKETS];
	size_t nbounds;
	size_t max_series;
	size_t mask;                             /* slots - 1, a power of 2 minus 1 */
	_Atomic(struct cm_prom_series *) *slots; /* open addressing by hash */
	_Atomic(struct cm_prom_series *) *order; /* max_series, creation order */
	atomic_size_t nseries;                   /* order entries reserved */
	struct cm_prom_series *overflow;         /* or the only series without labels */
	atomic_int overflow_used;
	struct cm_prom_family *next;
};

struct collector {
	cm_prom_collectfn *fn;
	void *arg;
	struct collector *next;
};

struct cm_prom {
	pthread_mutex_t mu; /* registration and rendering, never updates */
	struct cm_prom_family *families, **tail;
	struct collector *collectors, **ctail;
};

struct cm_prom_wstate {
	char **names; /* families written so far */
	size_t nnames, capnames;
	int type; /* of the open family, -1 when none */
	char *family;
	char *labels[CM_PROM_MAX_LABELS + 1];
	size_t nlabels;
	int full; /* an append failed: out's cap or memory */
};

static uint64_t dbits(double v)
{
	uint64_t u;

	memcpy(&u, &v, sizeof(u));
	return u;
}

static double bitsd(uint64_t u)
{
	double v;

	memcpy(&v, &u, sizeof(v));
	return v;
}

/* Adds v to the double stored as bits in a, with a compare-and-swap loop. */
static void atomic_add_double(atomic_uint_fast64_t *a, double v)
{
	uint_fast64_t old = atomic_load_explicit(a, memory_order_relaxed);

	while (!atomic_compare_exchange_weak_explicit(a, &old, dbits(bitsd(old) + v),
	                                              memory_order_relaxed, memory_order_relaxed))
		;
}

/* True when s is a metric name: [a-zA-Z_:][a-zA-Z0-9_:]*. */
static int name_ok(const char *s)
{
	size_t i;

	if (!s || !*s)
		return 0;
	for (i = 0; s[i]; i++) {
		char c = s[i];
		int alpha =
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';

		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return 0;
	}
	return 1;
}

/* True when s is a label name: [a-zA-Z_][a-zA-Z0-9_]*, not reserved (__). */
static int label_ok(const char *s)
{
	size_t i;

	if (!s || !*s || (s[0] == '_' && s[1] == '_'))
		return 0;
	for (i = 0; s[i]; i++) {
		char c = s[i];
		int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';

		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return 0;
	}
	return 1;
}

/* Checks a family's label names (NULL-terminated); sets *n to their count. */
static int labels_ok(enum cm_prom_type type, const char *name, const char *const *labels, size_t *n,
                     struct cm_err *err)
{
	size_t i, j;

	*n = 0;
	if (!labels)
		return 0;
	for (i = 0; labels[i]; i++) {
		if (i >= CM_PROM_MAX_LABELS)
			return cm_errf(err, "metric %s: more than %d labels", name,
			               CM_PROM_MAX_LABELS);
		if (!label_ok(labels[i]))
			return cm_errf(err, "metric %s: invalid label name '%s'", name, labels[i]);
		if (type == CM_PROM_HISTOGRAM && strcmp(labels[i], "le") == 0)
			return cm_errf(err, "metric %s: a histogram cannot have a label 'le'",
			               name);
		for (j = 0; j < i; j++)
			if (strcmp(labels[i], labels[j]) == 0)
				return cm_errf(err, "metric %s: label '%s' given twice", name,
				               labels[i]);
	}
	*n = i;
	return 0;
}

/* Checks histogram bounds: finite, strictly increasing, not too many. */
static int bounds_ok(const char *name, const double *bounds, size_t n, struct cm_err *err)
{
	size_t i;

	if (n > CM_PROM_MAX_BUCKETS)
		return cm_errf(err, "metric %s: more than %d buckets", name, CM_PROM_MAX_BUCKETS);
	if (n && !bounds)
		return cm_errf(err, "metric %s: no bucket bounds", name);
	for (i = 0; i < n; i++) {
		if (!isfinite(bounds[i]))
			return cm_errf(err, "metric %s: bucket bound %zu is not finite", name, i);
		if (i && !(bounds[i] > bounds[i - 1]))
			return cm_errf(err, "metric %s: bucket bounds must increase", name);
	}
	return 0;
}

/* --- Formatting. --- */

size_t cm_prom_format_double(double v, char *out)
{
	int n;

	if (isnan(v)) {
		memcpy(out, "NaN", 4);
		return 3;
	}
	if (isinf(v)) {
		memcpy(out, v > 0 ? "+Inf" : "-Inf", 5);
		return 4;
	}
	if (v == 0) {
		memcpy(out, "0", 2);
		return 1;
	}
	/* Integral values of a safe size print as integers. */
	if (fabs(v) < 9007199254740992.0 && v == (double)(int64_t)v)
		n = snprintf(out, 32, "%lld", (long long)(int64_t)v);
	else {
		int prec;

		/* The shortest precision that reads back to the same double. */
		for (prec = 1; prec <= 17; prec++) {
			n = snprintf(out, 32, "%.*g", prec, v);
			if (strtod(out, NULL) == v)
				break;
		}
	}
	return n > 0 ? (size_t)n : 0;
}

/* Appends s with the escapes of a label value (backslash, quote, newline)
 * or, when quote is 0, of a HELP text (backslash, newline). */
static int add_escaped(struct cm_buf *b, const char *s, int quote)
{
	const char *run = s;

	for (; *s; s++) {
		const char *rep = NULL;

		if (*s == '\\')
			rep = "\\\\";
		else if (*s == '\n')
			rep = "\\n";
		else if (quote && *s == '"')
			rep = "\\\"";
		if (!rep)
			continue;
		if (cm_buf_add(b, run, (size_t)(s - run)) < 0 || cm_buf_adds(b, rep) < 0)
			return -1;
		run = s + 1;
	}
	return cm_buf_add(b, run, (size_t)(s - run));
}

/* --- The writer. --- */

void cm_prom_writer_init(struct cm_prom_writer *w, struct cm_buf *out)
{
	w->out = out;
	w->st = NULL;
}

/* Forgets the open family's labels. */
static void close_family(struct cm_prom_wstate *st)
{
	size_t i;

	for (i = 0; i < st->nlabels; i++) {
		free(st->labels[i]);
		st->labels[i] = NULL;
	}
	st->nlabels = 0;
	st->type = -1;
	st->family = NULL;
}

void cm_prom_writer_release(struct cm_prom_writer *w)
{
	size_t i;

	if (!w->st)
		return;
	close_family(w->st);
	for (i = 0; i < w->st->nnames; i++)
		free(w->st->names[i]);
	free(w->st->names);
	free(w->st);
	w->st = NULL;
}

/* Forgets the names written after the first n (to undo a collector). */
static void writer_truncate(struct cm_prom_writer *w, size_t n)
{
	close_family(w->st);
	while (w->st->nnames > n)
		free(w->st->names[--w->st->nnames]);
}

/* Notes that out is full and says so. */
static int too_large(struct cm_prom_writer *w, const char *name, struct cm_err *err)
{
	w->st->full = 1;
	return cm_errf(err, "metric %s: output too large", name);
}

static const char *const type_names[] = {"counter", "gauge", "histogram"};

int cm_prom_write_family(struct cm_prom_writer *w, enum cm_prom_type type, const char *name,
                         const char *help, const char *const *labels, struct cm_err *err)
{
	struct cm_prom_wstate *st;
	size_t i, n;
	char *copy;

	if (!w->st) {
		w->st = calloc(1, sizeof(*w->st));
		if (!w->st)
			return cm_errf(err, "out of memory");
		w->st->type = -1;
	}
	st = w->st;
	close_family(st);
	if ((unsigned)type > CM_PROM_HISTOGRAM)
		return cm_errf(err, "metric %s: unknown type", name ? name : "(null)");
	if (!name_ok(name))
		return cm_errf(err, "invalid metric name '%s'", name ? name : "(null)");
	if (labels_ok(type, name, labels, &n, err) < 0)
		return -1;
	for (i = 0; i < st->nnames; i++)
		if (strcmp(st->names[i], name) == 0)
			return cm_errf(err, "metric %s: family written twice", name);
	if (st->nnames == st->capnames) {
		size_t cap = st->capnames ? st->capnames * 2 : 32;
		char **p = realloc(st->names, cap * sizeof(*p));

		if (!p)
			return cm_errf(err, "out of memory");
		st->names = p;
		st->capnames = cap;
	}
	copy = strdup(name);
	if (!copy)
		return cm_errf(err, "out of memory");
	st->names[st->nnames++] = copy;
	for (i = 0; i < n; i++) {
		st->labels[i] = strdup(labels[i]);
		if (!st->labels[i]) {
			st->nlabels = i;
			close_family(st);
			return cm_errf(err, "out of memory");
		}
	}
	st->nlabels = n;
	if (cm_buf_addf(w->out, "# HELP %s ", name) < 0 ||
	    add_escaped(w->out, help ? help : "", 0) < 0 ||
	    cm_buf_addf(w->out, "\n# TYPE %s %s\n", name, type_names[type]) < 0) {
		close_family(st);
		return too_large(w, name, err);
	}
	st->type = (int)type;
	st->family = copy;
	return 0;
}

/* Writes NAME[SUFFIX]{labels[,le="LE"]} (without the value). */
static int sample_head(struct cm_prom_writer *w, const char *suffix, const char *const *values,
                       const char *le, struct cm_err *err)
{
	struct cm_prom_wstate *st = w->st;
	struct cm_buf *b = w->out;
	size_t i;

	if (cm_buf_adds(b, st->family) < 0 || (suffix && cm_buf_adds(b, suffix) < 0))
		goto full;
	if (!st->nlabels && !le)
		return 0;
	if (cm_buf_addc(b, '{') < 0)
		goto full;
	for (i = 0; i < st->nlabels; i++) {
		if (cm_buf_addf(b, "%s%s=\"", i ? "," : "", st->labels[i]) < 0 ||
		    add_escaped(b, values[i], 1) < 0 || cm_buf_addc(b, '"') < 0)
			goto full;
	}
	if (le && cm_buf_addf(b, "%sle=\"%s\"", st->nlabels ? "," : "", le) < 0)
		goto full;
	if (cm_buf_addc(b, '}') < 0)
		goto full;
	return 0;
full:
	return too_large(w, st->family, err);
}

/* Checks that a sample fits the open family: its type and label values. */
static int sample_ok(struct cm_prom_writer *w, int histogram, const char *const *values,
                     struct cm_err *err)
{
	struct cm_prom_wstate *st = w->st;
	size_t i;

	if (!st || st->type < 0)
		return cm_errf(err, "metric sample outside a family");
	if ((st->type == CM_PROM_HISTOGRAM) != histogram)
		return cm_errf(err, "metric %s: sample of the wrong type", st->family);
	if (st->nlabels && !values)
		return cm_errf(err, "metric %s: no label values", st->family);
	for (i = 0; i < st->nlabels; i++) {
		size_t n;

		if (!values[i])
			return cm_errf(err, "metric %s: label %s has no value", st->family,
			               st->labels[i]);
		n = strlen(values[i]);
		if (cm_utf8_valid_prefix(values[i], n) != n)
			return cm_errf(err, "metric %s: label %s: value is not UTF-8", st->family,
			               st->labels[i]);
	}
	return 0;
}

/* Writes one sample line with a value already formatted. */
static int write_line(struct cm_prom_writer *w, const char *suffix, const char *const *values,
                      const char *le, const char *num, struct cm_err *err)
{
	if (sample_head(w, suffix, values, le, err) < 0)
		return -1;
	if (cm_buf_addf(w->out, " %s\n", num) < 0)
		return too_large(w, w->st->family, err);
	return 0;
}

int cm_prom_write_sample(struct cm_prom_writer *w, const char *const *values, double v,
                         struct cm_err *err)
{
	char num[32];

	if (sample_ok(w, 0, values, err) < 0)
		return -1;
	cm_prom_format_double(v, num);
	return write_line(w, NULL, values, NULL, num, err);
}

int cm_prom_write_u64(struct cm_prom_writer *w, const char *const *values, uint64_t v,
                      struct cm_err *err)
{
	char num[32];

	if (sample_ok(w, 0, values, err) < 0)
		return -1;
	snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	return write_line(w, NULL, values, NULL, num, err);
}

int cm_prom_write_histogram(struct cm_prom_writer *w, const char *const *values,
                            const double *bounds, size_t nbounds, const uint64_t *counts,
                            double sum, struct cm_err *err)
{
	char num[32], le[32];
	uint64_t cum = 0;
	size_t i;

	if (sample_ok(w, 1, values, err) < 0)
		return -1;
	if (bounds_ok(w->st->family, bounds, nbounds, err) < 0)
		return -1;
	for (i = 0; i <= nbounds; i++) {
		cum += counts[i];
		if (i < nbounds)
			cm_prom_format_double(bounds[i], le);
		else
			memcpy(le, "+Inf", 5);
		snprintf(num, sizeof(num), "%llu", (unsigned long long)cum);
		if (write_line(w, "_bucket", values, le, num, err) < 0)
			return -1;
	}
	cm_prom_format_double(sum, num);
	if (write_line(w, "_sum", values, NULL, num, err) < 0)
		return -1;
	snprintf(num, sizeof(num), "%llu", (unsigned long long)cum);
	return write_line(w, "_count", values, NULL, num, err);
}

/* --- The registry. --- */

struct cm_prom *cm_prom_new(void)
{
	struct cm_prom *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	pthread_mutex_init(&r->mu, NULL);
	r->tail = &r->families;
	r->ctail = &r->collectors;
	return r;
}

static void series_free(struct cm_prom_series *s)
{
	size_t i;

	if (!s)
		return;
	if (s->values)
		for (i = 0; i < s->f->nlabels; i++)
			free(s->values[i]);
	free(s->values);
	free(s);
}

static void family_free(struct cm_prom_family *f)
{
	size_t i;

	if (!f)
		return;
	if (f->slots)
		for (i = 0; i <= f->mask; i++)
			series_free(atomic_load(&f->slots[i]));
	series_free(f->overflow);
	free(f->slots);
	free(f->order);
	for (i = 0; i < f->nlabels; i++)
		free(f->labels[i]);
	free(f->name);
	free(f->help);
	free(f);
}

void cm_prom_free(struct cm_prom *r)
{
	struct cm_prom_family *f, *fn;
	struct collector *c, *cn;

	if (!r)
		return;
	for (f = r->families; f; f = fn) {
		fn = f->next;
		family_free(f);
	}
	for (c = r->collectors; c; c = cn) {
		cn = c->next;
		free(c);
	}
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* A new zeroed series of f with copies of values (NULL: none, or all
 * CM_PROM_OVERFLOW when overflow is set). */
static struct cm_prom_series *series_new(struct cm_prom_family *f, const char *const *values,
                                         int overflow, uint64_t hash)
{
	size_t nb = f->type == CM_PROM_HISTOGRAM ? f->nbounds + 1 : 0;
	struct cm_prom_series *s;
	size_t i;

	s = calloc(1, sizeof(*s) + nb * sizeof(s->buckets[0]));
	if (!s)
		return NULL;
	s->f = f;
	s->hash = hash;
	if (f->nlabels) {
		s->values = calloc(f->nlabels, sizeof(*s->values));
		if (!s->values)
			goto fail;
		for (i = 0; i < f->nlabels; i++) {
			s->values[i] = strdup(overflow ? CM_PROM_OVERFLOW : values[i]);
			if (!s->values[i])
				goto fail;
		}
	}
	atomic_init(&s->u, 0);
	atomic_init(&s->sum, dbits(0));
	for (i = 0; i < nb; i++)
		atomic_init(&s->buckets[i], 0);
	return s;
fail:
	series_free(s);
	return NULL;
}

struct cm_prom_family *cm_prom_family(struct cm_prom *r, const struct cm_prom_desc *d,
                                      struct cm_err *err)
{
	struct cm_prom_family *f, *g;
	size_t i, n, slots;

	if ((unsigned)d->type > CM_PROM_HISTOGRAM) {
		cm_errf(err, "metric %s: unknown type", d->name ? d->name : "(null)");
		return NULL;
	}
	if (!name_ok(d->name)) {
		cm_errf(err, "invalid metric name '%s'", d->name ? d->name : "(null)");
		return NULL;
	}
	if (labels_ok(d->type, d->name, d->labels, &n, err) < 0)
		return NULL;
	if (d->type == CM_PROM_HISTOGRAM && bounds_ok(d->name, d->bounds, d->nbounds, err) < 0)
		return NULL;
	if (d->max_series > MAX_SERIES_CAP) {
		cm_errf(err, "metric %s: more than %d series", d->name, MAX_SERIES_CAP);
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		goto oom;
	f->type = d->type;
	f->name = strdup(d->name);
	f->help = strdup(d->help ? d->help : "");
	if (!f->name || !f->help)
		goto oom;
	for (i = 0; i < n; i++) {
		f->labels[i] = strdup(d->labels[i]);
		if (!f->labels[i])
			goto oom;
		f->nlabels = i + 1;
	}
	if (d->type == CM_PROM_HISTOGRAM) {
		if (d->nbounds)
			memcpy(f->bounds, d->bounds, d->nbounds * sizeof(d->bounds[0]));
		f->nbounds = d->nbounds;
	}
	f->max_series = n ? (d->max_series ? d->max_series : CM_PROM_DEFAULT_MAX_SERIES) : 0;
	atomic_init(&f->nseries, 0);
	atomic_init(&f->overflow_used, 0);
	/* A table at most half full, so a probe always ends at an empty slot. */
	if (n) {
		for (slots = 16; slots < 2 * f->max_series; slots *= 2)
			;
		f->mask = slots - 1;
		f->slots = calloc(slots, sizeof(*f->slots));
		f->order = calloc(f->max_series, sizeof(*f->order));
		if (!f->slots || !f->order)
			goto oom;
	}
	f->overflow = series_new(f, NULL, 1, 0);
	if (!f->overflow)
		goto oom;
	pthread_mutex_lock(&r->mu);
	for (g = r->families; g; g = g->next)
		if (strcmp(g->name, f->name) == 0)
			break;
	if (g) {
		pthread_mutex_unlock(&r->mu);
		cm_errf(err, "metric %s: registered twice", d->name);
		family_free(f);
		return NULL;
	}
	*r->tail = f;
	r->tail = &f->next;
	pthread_mutex_unlock(&r->mu);
	return f;
oom:
	family_free(f);
	cm_errf(err, "out of memory");
	return NULL;
}

int cm_prom_collector(struct cm_prom *r, cm_prom_collectfn *fn, void *arg, struct cm_err *err)
{
	struct collector *c = calloc(1, sizeof(*c));

	if (!c)
		return cm_errf(err, "out of memory");
	c->fn = fn;
	c->arg = arg;
	pthread_mutex_lock(&r->mu);
	*r->ctail = c;
	r->ctail = &c->next;
	pthread_mutex_unlock(&r->mu);
	return 0;
}

/* FNV-1a over the label values, each followed by a 0xff byte (which UTF-8
 * never contains). */
static uint64_t values_hash(const char *const *values, size_t n)
{
	uint64_t h = 14695981039346656037ULL;
	size_t i;
	const unsigned char *p;

	for (i = 0; i < n; i++) {
		for (p = (const unsigned char *)values[i]; *p; p++)
			h = (h ^ *p) * 1099511628211ULL;
		h = (h ^ 0xff) * 1099511628211ULL;
	}
	return h;
}

static int values_equal(const struct cm_prom_series *s, const char *const *values, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(s->values[i], values[i]) != 0)
			return 0;
	return 1;
}

/* The overflow series, remembered as used so that rendering shows it. */
static struct cm_prom_series *overflow(struct cm_prom_family *f)
{
	if (!atomic_load_explicit(&f->overflow_used, memory_order_relaxed))
		atomic_store_explicit(&f->overflow_used, 1, memory_order_relaxed);
	return f->overflow;
}

struct cm_prom_series *cm_prom_series(struct cm_prom_family *f, const char *const *values)
{
	struct cm_prom_series *s, *mine = NULL;
	uint64_t h;
	size_t i, n, k;

	if (!f)
		return NULL;
	if (!f->nlabels)
		return f->overflow;
	if (!values)
		return overflow(f);
	for (i = 0; i < f->nlabels; i++) {
		if (!values[i])
			return overflow(f);
		n = strnlen(values[i], CM_PROM_VALUE_MAX + 1);
		if (n > CM_PROM_VALUE_MAX || cm_utf8_valid_prefix(values[i], n) != n)
			return overflow(f);
	}
	h = values_hash(values, f->nlabels);
	for (i = h & f->mask;; i = (i + 1) & f->mask) {
		s = atomic_load_explicit(&f->slots[i], memory_order_acquire);
		if (!s) {
			if (!mine) {
				/* Reserve a place under the cap before allocating. */
				k = atomic_fetch_add_explicit(&f->nseries, 1, memory_order_relaxed);
				if (k >= f->max_series)
					return overflow(f);
				mine = series_new(f, values, 0, h);
				if (!mine)
					return overflow(f);
			}
			if (atomic_compare_exchange_strong_explicit(&f->slots[i], &s, mine,
			                                            memory_order_acq_rel,
			                                            memory_order_acquire)) {
				atomic_store_explicit(&f->order[k], mine, memory_order_release);
				return mine;
			}
			/* Another thread filled the slot first: look at what it put. */
		}
		if (s->hash == h && values_equal(s, values, f->nlabels)) {
			/* The same label set won the race; our reservation stays
			 * unused (rendering skips it). */
			series_free(mine);
			return s;
		}
	}
}

void cm_prom_inc(struct cm_prom_series *s)
{
	cm_prom_add(s, 1);
}

void cm_prom_add(struct cm_prom_series *s, uint64_t n)
{
	if (s && s->f->type == CM_PROM_COUNTER)
		atomic_fetch_add_explicit(&s->u, n, memory_order_relaxed);
}

void cm_prom_set(struct cm_prom_series *s, double v)
{
	if (s && s->f->type == CM_PROM_GAUGE)
		atomic_store_explicit(&s->u, dbits(v), memory_order_relaxed);
}

void cm_prom_gauge_add(struct cm_prom_series *s, double v)
{
	if (s && s->f->type == CM_PROM_GAUGE)
		atomic_add_double(&s->u, v);
}

void cm_prom_observe(struct cm_prom_series *s, double v)
{
	const struct cm_prom_family *f;
	size_t lo, hi;

	if (!s || s->f->type != CM_PROM_HISTOGRAM || isnan(v))
		return;
	f = s->f;
	/* The first bound >= v (the le semantics), by binary search. */
	lo = 0;
	hi = f->nbounds;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (v <= f->bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	atomic_fetch_add_explicit(&s->buckets[lo], 1, memory_order_relaxed);
	atomic_add_double(&s->sum, v);
}

double cm_prom_value(struct cm_prom_series *s)
{
	uint64_t n = 0;
	size_t i;

	if (!s)
		return 0;
	switch (s->f->type) {
	case CM_PROM_COUNTER:
		return (double)atomic_load_explicit(&s->u, memory_order_relaxed);
	case CM_PROM_GAUGE:
		return bitsd(atomic_load_explicit(&s->u, memory_order_relaxed));
	case CM_PROM_HISTOGRAM:
		for (i = 0; i <= s->f->nbounds; i++)
			n += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
		return (double)n;
	}
	return 0;
}

/* Writes one series of a registered family. */
static int render_series(struct cm_prom_writer *w, struct cm_prom_series *s, struct cm_err *err)
{
	const char *const *values = (const char *const *)s->values;
	uint64_t counts[CM_PROM_MAX_BUCKETS + 1];
	size_t i;

	switch (s->f->type) {
	case CM_PROM_COUNTER:
		return cm_prom_write_u64(w, values,
		                         atomic_load_explicit(&s->u, memory_order_relaxed), err);
	case CM_PROM_GAUGE:
		return cm_prom_write_sample(
		    w, values, bitsd(atomic_load_explicit(&s->u, memory_order_relaxed)), err);
	case CM_PROM_HISTOGRAM:
		/* Each bucket read once: the cumulative sums and _count then agree
		 * even while other threads observe. */
		for (i = 0; i <= s->f->nbounds; i++)
			counts[i] = atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
		return cm_prom_write_histogram(
		    w, values, s->f->bounds, s->f->nbounds, counts,
		    bitsd(atomic_load_explicit(&s->sum, memory_order_relaxed)), err);
	}
	return 0;
}

/* Writes a registered family and its series in creation order. */
static int render_family(struct cm_prom_writer *w, struct cm_prom_family *f, struct cm_err *err)
{
	size_t i, n;

	if (cm_prom_write_family(w, f->type, f->name, f->help, (const char *const *)f->labels,
	                         err) < 0)
		return -1;
	if (!f->nlabels)
		return render_series(w, f->overflow, err);
	n = atomic_load_explicit(&f->nseries, memory_order_relaxed);
	if (n > f->max_series)
		n = f->max_series;
	for (i = 0; i < n; i++) {
		struct cm_prom_series *s = atomic_load_explicit(&f->order[i], memory_order_acquire);

		if (s && render_series(w, s, err) < 0)
			return -1;
	}
	if (atomic_load_explicit(&f->overflow_used, memory_order_relaxed))
		return render_series(w, f->overflow, err);
	return 0;
}

int cm_prom_render(struct cm_prom *r, struct cm_buf *out, struct cm_err *err)
{
	struct cm_prom_writer w;
	struct cm_prom_family *f;
	struct collector *c;
	struct cm_err cerr;
	size_t start = out->len;
	int rc = 0;

	cm_prom_writer_init(&w, out);
	pthread_mutex_lock(&r->mu);
	for (f = r->families; f; f = f->next)
		if (render_family(&w, f, err) < 0)
			goto fail;
	for (c = r->collectors; c; c = c->next) {
		size_t len = out->len, nnames = w.st ? w.st->nnames : 0;

		memcpy(cerr.msg, "collector failed", 17);
		if (c->fn(&w, c->arg, &cerr) == 0)
			continue;
		/* A full buffer fails the whole render; other failures only
		 * drop what this collector wrote. */
		if (w.st && w.st->full) {
			cm_errf(err, "%s", cerr.msg);
			goto fail;
		}
		out->len = len;
		if (out->data)
			out->data[len] = 0;
		if (w.st)
			writer_truncate(&w, nnames);
		if (rc == 0)
			cm_errf(err, "%s", cerr.msg);
		rc = 1;
	}
	pthread_mutex_unlock(&r->mu);
	cm_prom_writer_release(&w);
	return rc;
fail:
	pthread_mutex_unlock(&r->mu);
	cm_prom_writer_release(&w);
	out->len = start;
	if (out->data)
		out->data[start] = 0;
	return -1;
}
