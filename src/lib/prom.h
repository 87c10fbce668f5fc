/* prom.h - Prometheus metrics: a registry of counter, gauge and histogram
 * families with labels, updated from many threads without a lock, and a
 * writer of the text exposition format 0.0.4.
 *
 * Families are registered once, at start-up, before other threads use the
 * registry. A series (one label set of a family) is found or created with
 * cm_prom_series; its pointer stays valid until cm_prom_free, so a hot path
 * looks it up once (or per request: the lookup is a lock-free hash probe)
 * and then updates it with relaxed atomic adds. Rendering takes the
 * registry's mutex, which no update ever takes.
 *
 * Bounded cardinality: each family holds at most max_series label sets.
 * Past that cap, and for a label value that is not UTF-8 or is longer than
 * CM_PROM_VALUE_MAX bytes, updates go to one overflow series whose every
 * label value is CM_PROM_OVERFLOW ("_overflow"), so totals stay right and
 * memory stays bounded. A family without labels has exactly one series.
 *
 * External families (values read elsewhere at scrape time: stream lengths,
 * workers' counters in Redis) come from collectors: callbacks that write
 * families through the same cm_prom_writer during cm_prom_render. A
 * collector that fails has its partial output removed, so the text stays
 * valid.
 *
 * Ownership: the registry owns its families and series and copies every
 * string given to it; the writer writes into the caller's cm_buf. */
#ifndef CM_PROM_H
#define CM_PROM_H

#include <stddef.h>
#include <stdint.h>

struct cm_buf;
struct cm_err;

enum cm_prom_type { CM_PROM_COUNTER, CM_PROM_GAUGE, CM_PROM_HISTOGRAM };

#define CM_PROM_CONTENT_TYPE       "text/plain; version=0.0.4; charset=utf-8"
#define CM_PROM_MAX_LABELS         8    /* labels per family */
#define CM_PROM_MAX_BUCKETS        32   /* histogram bounds, +Inf not counted */
#define CM_PROM_VALUE_MAX          256  /* bytes of one label value */
#define CM_PROM_DEFAULT_MAX_SERIES 1000 /* label sets per family unless given */
#define CM_PROM_OVERFLOW           "_overflow"

struct cm_prom;
struct cm_prom_family;
struct cm_prom_series;
struct cm_prom_writer;

/* What a family is: its type, name ([a-zA-Z_:][a-zA-Z0-9_:]*), help text
 * (any UTF-8), label names (NULL-terminated, may be NULL for none; each
 * [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", not "le" in a histogram),
 * the histogram's upper bounds (strictly increasing and finite; +Inf is
 * implicit) and its cardinality cap (0: CM_PROM_DEFAULT_MAX_SERIES). */
struct cm_prom_desc {
	enum cm_prom_type type;
	const char *name;
	const char *help;
	const char *const *labels;
	const double *bounds;
	size_t nbounds;
	size_t max_series;
};

/* A collector: writes its families into w at scrape time; returns 0, or -1
 * with err (its output is then dropped from the scrape). */
typedef int cm_prom_collectfn(struct cm_prom_writer *w, void *arg, struct cm_err *err);

/* A new empty registry; NULL when memory runs out. */
struct cm_prom *cm_prom_new(void);
/* Frees the registry, its families and series. */
void cm_prom_free(struct cm_prom *r);

/* Registers a family; -1 with err for an invalid description or a name
 * already registered. The family lives as long as the registry. */
struct cm_prom_family *cm_prom_family(struct cm_prom *r, const struct cm_prom_desc *d,
                                      struct cm_err *err);
/* Registers a collector, called in registration order after the registry's
 * own families at every render; 0 or -1 (memory). */
int cm_prom_collector(struct cm_prom *r, cm_prom_collectfn *fn, void *arg, struct cm_err *err);

/* The series of family f with the given label values (as many as the
 * family has labels; NULL when it has none), created on first use. Never
 * NULL for a non-NULL f: past the cap, on a bad value or when memory runs
 * out it is the overflow series. Safe from any thread, lock-free. */
struct cm_prom_series *cm_prom_series(struct cm_prom_family *f, const char *const *values);

/* Updates, safe from any thread; a NULL series is ignored. Counters only
 * go up (cm_prom_inc, cm_prom_add); gauges are set or moved by any amount;
 * cm_prom_observe puts one value into a histogram. Using a verb on a series
 * of another type is ignored. */
void cm_prom_inc(struct cm_prom_series *s);
void cm_prom_add(struct cm_prom_series *s, uint64_t n);
void cm_prom_set(struct cm_prom_series *s, double v);
void cm_prom_gauge_add(struct cm_prom_series *s, double v);
void cm_prom_observe(struct cm_prom_series *s, double v);

/* Current values (for tests and for code that reads its own metrics): a
 * counter's count, a gauge's value, a histogram's count. */
double cm_prom_value(struct cm_prom_series *s);

/* Appends the whole exposition to out: the registry's families in
 * registration order, each with HELP and TYPE and its series in creation
 * order, then what each collector writes. Returns 0; 1 when some collector
 * failed (its families are left out, err names the first failure); -1 when
 * out's cap was reached or memory ran out (out is then as it was). */
int cm_prom_render(struct cm_prom *r, struct cm_buf *out, struct cm_err *err);

/* --- The writer: one exposition being written. It checks what it can
 * cheaply: one family per name, valid names, label values escaped, samples
 * only inside a family of their type, histogram buckets cumulative with
 * +Inf equal to _count. Collectors get one from cm_prom_render; other code
 * (tests, a tool printing metrics) makes its own. --- */

struct cm_prom_wstate;
struct cm_prom_writer {
	struct cm_buf *out;
	struct cm_prom_wstate *st; /* private: names written, the open family */
};

/* Starts writing into out (appending). */
void cm_prom_writer_init(struct cm_prom_writer *w, struct cm_buf *out);
/* Frees the writer's own memory (not out). */
void cm_prom_writer_release(struct cm_prom_writer *w);

/* Starts family name: writes its HELP and TYPE lines. labels as in
 * cm_prom_desc. -1 with err for a name already written in this exposition,
 * an invalid name or label, or out's cap. */
int cm_prom_write_family(struct cm_prom_writer *w, enum cm_prom_type type, const char *name,
                         const char *help, const char *const *labels, struct cm_err *err);
/* One sample of the open counter or gauge family: label values as many as
 * its labels (NULL for none; any bytes but NUL, escaped here), value v
 * (integral values print without a fraction; NaN and infinities as
 * Prometheus spells them). */
int cm_prom_write_sample(struct cm_prom_writer *w, const char *const *values, double v,
                         struct cm_err *err);
/* The same for an exact 64-bit count (above 2^53 a double would round). */
int cm_prom_write_u64(struct cm_prom_writer *w, const char *const *values, uint64_t v,
                      struct cm_err *err);
/* One series of the open histogram family: nbounds upper bounds (strictly
 * increasing, finite), counts[0..nbounds] the number of observations in
 * each bucket, NOT cumulative (counts[nbounds] those above the last bound),
 * and their sum. Writes the cumulative _bucket lines, le="+Inf", _sum and
 * _count (equal to the +Inf bucket by construction). */
int cm_prom_write_histogram(struct cm_prom_writer *w, const char *const *values,
                            const double *bounds, size_t nbounds, const uint64_t *counts,
                            double sum, struct cm_err *err);

/* Formats v as Prometheus reads it (shortest round-trip form, "+Inf",
 * "-Inf", "NaN") into out (at least 32 bytes); returns its length. */
size_t cm_prom_format_double(double v, char *out);

#endif
