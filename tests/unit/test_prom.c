/* Tests for prom.c: registration checks, the exact exposition text,
 * escaping, the cardinality cap, collectors, buffer caps and updates from
 * many threads at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "err.h"
#include "prom.h"

static const char *const no_labels[] = {NULL};
static const char *const rm_labels[] = {"route", "method", NULL};

/* Renders r into a fresh string (the caller frees it); fails the test on
 * an error. */
static char *render(struct cm_prom *r)
{
	struct cm_buf b = CM_BUF_INIT;
	struct cm_err err;

	assert_int_equal(cm_prom_render(r, &b, &err), 0);
	if (!b.data)
		return strdup("");
	return b.data;
}

static void test_register_checks(void **state)
{
	struct cm_prom *r = cm_prom_new();
	struct cm_err err;
	static const char *const dup[] = {"a", "a", NULL};
	static const char *const le[] = {"le", NULL};
	static const char *const reserved[] = {"__x", NULL};
	static const char *const badlabel[] = {"1x", NULL};
	static const char *const many[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", NULL};
	const double up[] = {1, 2, 2};
	const double inf[] = {1, INFINITY};
	struct cm_prom_desc d = {CM_PROM_COUNTER, "ok_total", "h", NULL, NULL, 0, 0};

	assert_non_null(r);
	assert_non_null(cm_prom_family(r, &d, &err));
	assert_null(cm_prom_family(r, &d, &err));
	assert_non_null(strstr(err.msg, "registered twice"));

	d.name = "9bad";
	assert_null(cm_prom_family(r, &d, &err));
	assert_non_null(strstr(err.msg, "invalid metric name '9bad'"));
	d.name = "bad-name";
	assert_null(cm_prom_family(r, &d, &err));
	d.name = "";
	assert_null(cm_prom_family(r, &d, &err));
	d.name = NULL;
	assert_null(cm_prom_family(r, &d, &err));

	d.name = "x_total";
	d.labels = dup;
	assert_null(cm_prom_family(r, &d, &err));
	assert_non_null(strstr(err.msg, "label 'a' given twice"));
	d.labels = reserved;
	assert_null(cm_prom_family(r, &d, &err));
	d.labels = badlabel;
	assert_null(cm_prom_family(r, &d, &err));
	assert_non_null(strstr(err.msg, "invalid label name '1x'"));
	d.labels = many;
	assert_null(cm_prom_family(r, &d, &err));
	assert_non_null(strstr(err.msg, "more than 8 labels"));
	d.labels = no_labels;
	d.max_series = 2000000;
	assert_null(cm_prom_family(r, &d, &err));
	d.max_series = 0;

	d.type = CM_PROM_HISTOGRAM;
	d.name = "h_seconds";
	d.labels = le;
	assert_null(cm_prom_family(r, &d, &err));
	assert_non_null(strstr(err.msg, "cannot have a label 'le'"));
	d.labels = NULL;
	d.bounds = up;
	d.nbounds = 3;
	assert_null(cm_prom_family(r, &d, &err));
	assert_non_null(strstr(err.msg, "must increase"));
	d.bounds = inf;
	d.nbounds = 2;
	assert_null(cm_prom_family(r, &d, &err));
	assert_non_null(strstr(err.msg, "not finite"));
	d.nbounds = 40;
	assert_null(cm_prom_family(r, &d, &err));
	d.type = 7;
	assert_null(cm_prom_family(r, &d, &err));
	cm_prom_free(r);
}

static void test_render_text(void **state)
{
	struct cm_prom *r = cm_prom_new();
	struct cm_err err;
	const double b[] = {0.1, 0.5, 1};
	struct cm_prom_desc dc = {
	    CM_PROM_COUNTER, "cm_http_requests_total", "Requests.", rm_labels, NULL, 0, 0};
	struct cm_prom_desc dg = {CM_PROM_GAUGE, "cm_build_info", "Build.", NULL, NULL, 0, 0};
	struct cm_prom_desc dh = {CM_PROM_HISTOGRAM, "lat_seconds", "Latency.", NULL, b, 3, 0};
	struct cm_prom_family *c, *g, *h;
	struct cm_prom_series *s;
	char *text;

	c = cm_prom_family(r, &dc, &err);
	g = cm_prom_family(r, &dg, &err);
	h = cm_prom_family(r, &dh, &err);
	assert_non_null(c);
	assert_non_null(g);
	assert_non_null(h);
	s = cm_prom_series(c, (const char *[]){"/events", "POST"});
	cm_prom_inc(s);
	cm_prom_add(s, 41);
	assert_ptr_equal(cm_prom_series(c, (const char *[]){"/events", "POST"}), s);
	cm_prom_inc(cm_prom_series(c, (const char *[]){"/health", "GET"}));
	cm_prom_set(cm_prom_series(g, NULL), 1);
	s = cm_prom_series(h, NULL);
	cm_prom_observe(s, 0.05);
	cm_prom_observe(s, 0.1); /* le: on the bound counts in that bucket */
	cm_prom_observe(s, 0.7);
	cm_prom_observe(s, 3);
	cm_prom_observe(s, NAN); /* ignored */
	assert_true(cm_prom_value(s) == 4);
	text = render(r);
	assert_string_equal(text, "# HELP cm_http_requests_total Requests.\n"
	                          "# TYPE cm_http_requests_total counter\n"
	                          "cm_http_requests_total{route=\"/events\",method=\"POST\"} 42\n"
	                          "cm_http_requests_total{route=\"/health\",method=\"GET\"} 1\n"
	                          "# HELP cm_build_info Build.\n"
	                          "# TYPE cm_build_info gauge\n"
	                          "cm_build_info 1\n"
	                          "# HELP lat_seconds Latency.\n"
	                          "# TYPE lat_seconds histogram\n"
	                          "lat_seconds_bucket{le=\"0.1\"} 2\n"
	                          "lat_seconds_bucket{le=\"0.5\"} 2\n"
	                          "lat_seconds_bucket{le=\"1\"} 3\n"
	                          "lat_seconds_bucket{le=\"+Inf\"} 4\n"
	                          "lat_seconds_sum 3.85\n"
	                          "lat_seconds_count 4\n");
	free(text);
	cm_prom_free(r);
}

static void test_verbs_by_type(void **state)
{
	struct cm_prom *r = cm_prom_new();
	struct cm_err err;
	struct cm_prom_desc dc = {CM_PROM_COUNTER, "c_total", "", NULL, NULL, 0, 0};
	struct cm_prom_desc dg = {CM_PROM_GAUGE, "g", "", NULL, NULL, 0, 0};
	struct cm_prom_series *c, *g;

	c = cm_prom_series(cm_prom_family(r, &dc, &err), NULL);
	g = cm_prom_series(cm_prom_family(r, &dg, &err), NULL);
	/* A verb of another type changes nothing; NULL is ignored. */
	cm_prom_set(c, 5);
	cm_prom_observe(c, 5);
	cm_prom_inc(g);
	cm_prom_inc(NULL);
	cm_prom_set(NULL, 1);
	assert_true(cm_prom_value(c) == 0);
	assert_true(cm_prom_value(g) == 0);
	cm_prom_gauge_add(g, 2.5);
	cm_prom_gauge_add(g, -4);
	assert_true(cm_prom_value(g) == -1.5);
	assert_null(cm_prom_series(NULL, NULL));
	assert_true(cm_prom_value(NULL) == 0);
	cm_prom_free(r);
}

static void test_escaping(void **state)
{
	struct cm_prom *r = cm_prom_new();
	struct cm_err err;
	static const char *const l[] = {"v", NULL};
	struct cm_prom_desc d = {
	    CM_PROM_COUNTER, "e_total", "A \\ backslash\nand \"quotes\"", l, NULL, 0, 0};
	struct cm_prom_family *f = cm_prom_family(r, &d, &err);
	char *text;

	cm_prom_inc(cm_prom_series(f, (const char *[]){"a\\b\"c\nd\xc3\xa9"}));
	text = render(r);
	assert_string_equal(text, "# HELP e_total A \\\\ backslash\\nand \"quotes\"\n"
	                          "# TYPE e_total counter\n"
	                          "e_total{v=\"a\\\\b\\\"c\\nd\xc3\xa9\"} 1\n");
	free(text);
	cm_prom_free(r);
}

static void test_cardinality_cap(void **state)
{
	struct cm_prom *r = cm_prom_new();
	struct cm_err err;
	static const char *const l[] = {"id", NULL};
	struct cm_prom_desc d = {CM_PROM_COUNTER, "cap_total", "", l, NULL, 0, 3};
	struct cm_prom_family *f = cm_prom_family(r, &d, &err);
	char id[16], longv[CM_PROM_VALUE_MAX + 2], *text;
	const char *v[1] = {id};
	int i;

	for (i = 0; i < 6; i++) {
		snprintf(id, sizeof(id), "%d", i);
		cm_prom_add(cm_prom_series(f, v), (uint64_t)i + 1);
	}
	/* Old label sets keep their own series after the cap is reached. */
	memcpy(id, "1", 2);
	cm_prom_add(cm_prom_series(f, v), 10);
	/* Not UTF-8, or too long: the overflow series too. */
	cm_prom_inc(cm_prom_series(f, (const char *[]){"\xff"}));
	memset(longv, 'x', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = 0;
	cm_prom_inc(cm_prom_series(f, (const char *[]){longv}));
	memset(longv + CM_PROM_VALUE_MAX, 0, 1); /* exactly the maximum: still too many */
	cm_prom_inc(cm_prom_series(f, (const char *[]){longv}));
	cm_prom_inc(cm_prom_series(f, (const char *[]){NULL}));
	cm_prom_inc(cm_prom_series(f, NULL));
	text = render(r);
	assert_string_equal(text, "# HELP cap_total \n"
	                          "# TYPE cap_total counter\n"
	                          "cap_total{id=\"0\"} 1\n"
	                          "cap_total{id=\"1\"} 12\n"
	                          "cap_total{id=\"2\"} 3\n"
	                          "cap_total{id=\"_overflow\"} 20\n");
	free(text);
	cm_prom_free(r);
}

static int collect_ok(struct cm_prom_writer *w, void *arg, struct cm_err *err)
{
	static const char *const l[] = {"stream", NULL};

	if (cm_prom_write_family(w, CM_PROM_GAUGE, "cm_stream_length", "XLEN.", l, err) < 0)
		return -1;
	return cm_prom_write_sample(w, (const char *[]){"cm:events"}, 12, err);
}

static int collect_fail(struct cm_prom_writer *w, void *arg, struct cm_err *err)
{
	if (cm_prom_write_family(w, CM_PROM_GAUGE, "half_written", "", NULL, err) < 0)
		return -1;
	if (cm_prom_write_sample(w, NULL, 1, err) < 0)
		return -1;
	return cm_errf(err, "redis down");
}

static int collect_dup(struct cm_prom_writer *w, void *arg, struct cm_err *err)
{
	return cm_prom_write_family(w, CM_PROM_GAUGE, arg, "", NULL, err);
}

static void test_collectors(void **state)
{
	struct cm_prom *r = cm_prom_new();
	struct cm_buf b = CM_BUF_INIT;
	struct cm_err err;
	struct cm_prom_desc d = {CM_PROM_GAUGE, "own", "", NULL, NULL, 0, 0};

	assert_non_null(cm_prom_family(r, &d, &err));
	assert_int_equal(cm_prom_collector(r, collect_fail, NULL, &err), 0);
	assert_int_equal(cm_prom_collector(r, collect_ok, NULL, &err), 0);
	assert_int_equal(cm_prom_collector(r, collect_dup, "own", &err), 0);
	assert_int_equal(cm_prom_collector(r, collect_dup, "cm_stream_length", &err), 0);
	/* The failed collectors' output is gone; the first failure is named. */
	assert_int_equal(cm_prom_render(r, &b, &err), 1);
	assert_string_equal(err.msg, "redis down");
	assert_string_equal(b.data, "# HELP own \n"
	                            "# TYPE own gauge\n"
	                            "own 0\n"
	                            "# HELP cm_stream_length XLEN.\n"
	                            "# TYPE cm_stream_length gauge\n"
	                            "cm_stream_length{stream=\"cm:events\"} 12\n");
	/* A render appends; a second one is a whole new exposition. */
	cm_buf_reset(&b);
	assert_int_equal(cm_prom_render(r, &b, &err), 1);
	assert_non_null(strstr(b.data, "cm_stream_length{"));
	cm_buf_release(&b);
	cm_prom_free(r);
}

static void test_buffer_cap(void **state)
{
	struct cm_prom *r = cm_prom_new();
	struct cm_buf b;
	struct cm_err err;
	struct cm_prom_desc d = {
	    CM_PROM_COUNTER, "a_long_metric_name_total", "help", NULL, NULL, 0, 0};

	assert_non_null(cm_prom_family(r, &d, &err));
	cm_buf_init(&b, 40);
	assert_int_equal(cm_buf_adds(&b, "kept"), 0);
	assert_int_equal(cm_prom_render(r, &b, &err), -1);
	assert_non_null(strstr(err.msg, "output too large"));
	assert_string_equal(b.data, "kept");
	/* Also when a collector fills it. */
	cm_buf_release(&b);
	cm_prom_free(r);
	r = cm_prom_new();
	assert_int_equal(cm_prom_collector(r, collect_ok, NULL, &err), 0);
	cm_buf_init(&b, 60);
	assert_int_equal(cm_prom_render(r, &b, &err), -1);
	assert_int_equal(b.len, 0);
	cm_buf_release(&b);
	cm_prom_free(r);
}

static void test_writer_checks(void **state)
{
	struct cm_buf b = CM_BUF_INIT;
	struct cm_prom_writer w;
	struct cm_err err;
	static const char *const l[] = {"x", NULL};
	const double bounds[] = {1, 2};
	const double bad[] = {2, 1};
	const uint64_t counts[] = {1, 0, 2};

	cm_prom_writer_init(&w, &b);
	assert_int_equal(cm_prom_write_sample(&w, NULL, 1, &err), -1);
	assert_non_null(strstr(err.msg, "outside a family"));
	assert_int_equal(cm_prom_write_family(&w, CM_PROM_COUNTER, "c_total", "", l, &err), 0);
	assert_int_equal(cm_prom_write_sample(&w, NULL, 1, &err), -1);
	assert_int_equal(cm_prom_write_sample(&w, (const char *[]){"\xc3"}, 1, &err), -1);
	assert_non_null(strstr(err.msg, "not UTF-8"));
	assert_int_equal(
	    cm_prom_write_histogram(&w, (const char *[]){"a"}, bounds, 2, counts, 1, &err), -1);
	assert_non_null(strstr(err.msg, "wrong type"));
	assert_int_equal(cm_prom_write_u64(&w, (const char *[]){"a"}, UINT64_MAX, &err), 0);
	assert_int_equal(cm_prom_write_family(&w, CM_PROM_GAUGE, "c_total", "", NULL, &err), -1);
	assert_non_null(strstr(err.msg, "written twice"));
	assert_int_equal(cm_prom_write_family(&w, CM_PROM_HISTOGRAM, "h", "", l, &err), 0);
	assert_int_equal(cm_prom_write_sample(&w, (const char *[]){"a"}, 1, &err), -1);
	assert_int_equal(
	    cm_prom_write_histogram(&w, (const char *[]){"a"}, bad, 2, counts, 1, &err), -1);
	assert_int_equal(
	    cm_prom_write_histogram(&w, (const char *[]){"a"}, bounds, 2, counts, 7.5, &err), 0);
	assert_string_equal(b.data, "# HELP c_total \n"
	                            "# TYPE c_total counter\n"
	                            "c_total{x=\"a\"} 18446744073709551615\n"
	                            "# HELP h \n"
	                            "# TYPE h histogram\n"
	                            "h_bucket{x=\"a\",le=\"1\"} 1\n"
	                            "h_bucket{x=\"a\",le=\"2\"} 1\n"
	                            "h_bucket{x=\"a\",le=\"+Inf\"} 3\n"
	                            "h_sum{x=\"a\"} 7.5\n"
	                            "h_count{x=\"a\"} 3\n");
	cm_prom_writer_release(&w);
	cm_buf_release(&b);
}

static void test_format_double(void **state)
{
	char out[32];

	cm_prom_format_double(0, out);
	assert_string_equal(out, "0");
	cm_prom_format_double(-0.0, out);
	assert_string_equal(out, "0");
	cm_prom_format_double(0.1, out);
	assert_string_equal(out, "0.1");
	cm_prom_format_double(0.005, out);
	assert_string_equal(out, "0.005");
	cm_prom_format_double(60, out);
	assert_string_equal(out, "60");
	cm_prom_format_double(-3, out);
	assert_string_equal(out, "-3");
	cm_prom_format_double(1.0 / 3, out);
	assert_string_equal(out, "0.3333333333333333");
	cm_prom_format_double(1e300, out);
	assert_string_equal(out, "1e+300");
	cm_prom_format_double(1764000000.123, out);
	assert_string_equal(out, "1764000000.123");
	cm_prom_format_double(INFINITY, out);
	assert_string_equal(out, "+Inf");
	cm_prom_format_double(-INFINITY, out);
	assert_string_equal(out, "-Inf");
	cm_prom_format_double(NAN, out);
	assert_string_equal(out, "NaN");
}

/* --- Many threads: every update counted, renders consistent meanwhile. --- */

#define THREADS 4
#define ROUNDS  200000

struct shared {
	struct cm_prom_family *c, *h;
	int start;
};

static void *hammer(void *arg)
{
	struct shared *sh = arg;
	static const char *const routes[] = {"/events", "/campaigns", "/health", "/metrics"};
	static const char *const methods[] = {"GET", "POST"};
	int i;

	for (i = 0; i < ROUNDS; i++) {
		/* A lookup per request, as the server does. */
		const char *v[2] = {routes[i % 4], methods[(i / 4) % 2]};

		cm_prom_inc(cm_prom_series(sh->c, v));
		cm_prom_observe(cm_prom_series(sh->h, v), (double)(i % 100) / 100.0);
	}
	return NULL;
}

/* Checks that each histogram's +Inf bucket equals its _count. */
static void check_inf_equals_count(const char *text)
{
	const char *p = text;

	while ((p = strstr(p, "le=\"+Inf\"} ")) != NULL) {
		unsigned long long inf, count;
		const char *q;

		assert_int_equal(sscanf(p + 11, "%llu", &inf), 1);
		q = strstr(p, "_count{");
		assert_non_null(q);
		q = strchr(q, ' ');
		assert_int_equal(sscanf(q + 1, "%llu", &count), 1);
		assert_int_equal(inf, count);
		p = q;
	}
}

static void test_threads(void **state)
{
	struct cm_prom *r = cm_prom_new();
	struct cm_err err;
	const double b[] = {0.1, 0.25, 0.5};
	struct cm_prom_desc dc = {CM_PROM_COUNTER, "req_total", "", rm_labels, NULL, 0, 0};
	struct cm_prom_desc dh = {CM_PROM_HISTOGRAM, "dur_seconds", "", rm_labels, b, 3, 0};
	struct shared sh;
	pthread_t t[THREADS];
	struct timespec t0, t1;
	double total = 0, ns;
	char *text, *p;
	int i, renders = 0;

	sh.c = cm_prom_family(r, &dc, &err);
	sh.h = cm_prom_family(r, &dh, &err);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &sh), 0);
	/* Render while they run: each snapshot must be self-consistent. */
	for (i = 0; i < 20; i++, renders++) {
		text = render(r);
		check_inf_equals_count(text);
		free(text);
	}
	for (i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
	     (THREADS * (double)ROUNDS);
	print_message("# %d threads: %.0f ns per request (2 lookups, inc, observe), %d renders\n",
	              THREADS, ns, renders);
	text = render(r);
	check_inf_equals_count(text);
	/* Exactly 8 series per family, no overflow, and every update there. */
	assert_null(strstr(text, "_overflow"));
	for (p = text; (p = strstr(p, "\nreq_total{")) != NULL; p++)
		total += strtod(strchr(p, ' ') + 1, NULL);
	assert_true(total == (double)THREADS * ROUNDS);
	for (i = 0, p = text; (p = strstr(p, "dur_seconds_count{")) != NULL; p++)
		i++;
	assert_int_equal(i, 8);
	free(text);
	cm_prom_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_register_checks), cmocka_unit_test(test_render_text),
	    cmocka_unit_test(test_verbs_by_type),   cmocka_unit_test(test_escaping),
	    cmocka_unit_test(test_cardinality_cap), cmocka_unit_test(test_collectors),
	    cmocka_unit_test(test_buffer_cap),      cmocka_unit_test(test_writer_checks),
	    cmocka_unit_test(test_format_double),   cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
