/* promsample - a test-only program that prints a real exposition: every
 * family cm-httpd serves, from a prom.h registry updated by several threads,
 * a collector of stream gauges, and the workers' families read back from
 * Redis after two wmetrics writers flushed there (tests/prom.bats runs
 * promtool and tests/tools/promcheck.py on it).
 *
 *     promsample REDIS_URL [STREAM]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "prom.h"
#include "redisx.h"
#include "wmetrics.h"

static const char *redis_url, *stream = "cm:events";

struct fams {
	struct cm_prom_family *req, *dur, *acc, *rej, *cap;
};

/* Requests as the server would count them, from one thread. */
static void *serve(void *arg)
{
	static const char *const routes[] = {"/events", "/campaigns", "/campaigns/{id}", "/health",
	                                     "unmatched"};
	static const char *const methods[] = {"GET", "POST", "PATCH"};
	static const char *const statuses[] = {"200", "202", "401", "404", "422"};
	struct fams *f = arg;
	int i;

	for (i = 0; i < 20000; i++) {
		const char *r = routes[i % 5];

		cm_prom_inc(cm_prom_series(
		    f->req, (const char *[]){r, methods[i % 3], statuses[(i / 7) % 5]}));
		cm_prom_observe(cm_prom_series(f->dur, (const char *[]){r}),
		                (double)(i % 900) / 1e4);
		if (i % 5 == 0)
			cm_prom_add(cm_prom_series(f->acc, (const char *[]){"api"}), 3);
		if (i % 50 == 0)
			cm_prom_inc(cm_prom_series(f->rej, (const char *[]){"api"}));
	}
	return NULL;
}

/* Stream gauges, as cm-httpd reads them from Redis at scrape time; one
 * stream name that needs escaping. */
static int collect_streams(struct cm_prom_writer *w, void *arg, struct cm_err *err)
{
	static const char *const s[] = {"stream", NULL};
	static const char *const sg[] = {"stream", "group", NULL};
	const char *odd = "odd \"stream\"\\\n";

	if (cm_prom_write_family(w, CM_PROM_GAUGE, "cm_stream_length", "Entries in the stream.", s,
	                         err) < 0 ||
	    cm_prom_write_sample(w, (const char *[]){stream}, 1200, err) < 0 ||
	    cm_prom_write_sample(w, (const char *[]){odd}, 3, err) < 0 ||
	    cm_prom_write_family(w, CM_PROM_GAUGE, "cm_stream_pending",
	                         "Entries delivered and not acknowledged.", sg, err) < 0 ||
	    cm_prom_write_sample(w, (const char *[]){stream, "cm-workers"}, 17, err) < 0 ||
	    cm_prom_write_family(w, CM_PROM_GAUGE, "cm_stream_lag", "Entries not yet delivered.",
	                         sg, err) < 0 ||
	    cm_prom_write_sample(w, (const char *[]){stream, "cm-workers"}, 40, err) < 0 ||
	    cm_prom_write_family(w, CM_PROM_GAUGE, "cm_dead_letter_length",
	                         "Entries in the dead-letter stream.", s, err) < 0 ||
	    cm_prom_write_sample(w, (const char *[]){stream}, 2, err) < 0)
		return -1;
	return 0;
}

/* The workers' families, read back from Redis. */
static int collect_workers(struct cm_prom_writer *w, void *arg, struct cm_err *err)
{
	redisContext *c = cm_redis_connect(redis_url, err);
	int rc;

	if (!c)
		return -1;
	rc = cm_wmetrics_render(c, stream, CM_WMETRICS_TTL_MS, 0, w, err);
	redisFree(c);
	return rc;
}

/* Two workers report through Redis, as cm-consume | cm-match | cm-store
 * would. */
static int report_workers(struct cm_err *err)
{
	static const char *const names[] = {"host-a:1", "host \"b\":2"};
	size_t i;
	int k;

	for (i = 0; i < 2; i++) {
		struct cm_wmetrics_opts o = {redis_url, stream, names[i], -1, 0, 0};
		struct cm_wmetrics *m = cm_wmetrics_new(&o, err);

		if (!m)
			return -1;
		cm_wmetrics_add(m, CM_WM_CONSUMED, 1000 * (i + 1));
		cm_wmetrics_add(m, CM_WM_MATCHED, 300);
		cm_wmetrics_add(m, CM_WM_MATCHES, 450);
		cm_wmetrics_add(m, CM_WM_STORED, 990);
		cm_wmetrics_add(m, CM_WM_ACKED, 990);
		cm_wmetrics_add(m, CM_WM_DEAD, i);
		cm_wmetrics_add(m, CM_WM_ERRORS, 2 * i);
		for (k = 1; k <= 5; k++)
			cm_wmetrics_campaign(m, k, (uint64_t)(k * 10));
		for (k = 0; k < 500; k++)
			cm_wmetrics_latency(m, (double)(k * k) / 4000.0);
		if (cm_wmetrics_flush(m, err) < 0) {
			cm_wmetrics_free(m);
			return -1;
		}
		cm_wmetrics_free(m);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const rms[] = {"route", "method", "status", NULL};
	static const char *const route[] = {"route", NULL};
	static const char *const source[] = {"source", NULL};
	static const char *const version[] = {"version", NULL};
	static const char *const id[] = {"id", NULL};
	static const double dur_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	                                    0.1,    0.25,  0.5,    1,     2.5,  5,     10};
	const struct cm_prom_desc descs[] = {
	    {CM_PROM_COUNTER, "cm_http_requests_total", "HTTP requests answered.", rms, NULL, 0, 0},
	    {CM_PROM_HISTOGRAM, "cm_http_request_duration_seconds", "Time to answer a request.",
	     route, dur_bounds, sizeof(dur_bounds) / sizeof(dur_bounds[0]), 0},
	    {CM_PROM_COUNTER, "cm_events_accepted_total", "Events published.", source, NULL, 0, 0},
	    {CM_PROM_COUNTER, "cm_events_rejected_total", "Events refused.", source, NULL, 0, 0},
	    {CM_PROM_COUNTER, "cm_sample_capped_total", "A family past its cap.", id, NULL, 0, 2},
	    {CM_PROM_GAUGE, "cm_build_info", "The running version.", version, NULL, 0, 0},
	};
	struct cm_prom_family *fam[6];
	struct cm_prom *r;
	struct cm_buf out = CM_BUF_INIT;
	struct cm_err err;
	struct fams f;
	pthread_t t[3];
	size_t i;
	int rc;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: promsample REDIS_URL [STREAM]\n");
		return 2;
	}
	redis_url = argv[1];
	if (argc == 3)
		stream = argv[2];
	if (report_workers(&err) < 0) {
		fprintf(stderr, "promsample: %s\n", err.msg);
		return 3;
	}
	r = cm_prom_new();
	for (i = 0; i < 6; i++) {
		fam[i] = cm_prom_family(r, &descs[i], &err);
		if (!fam[i]) {
			fprintf(stderr, "promsample: %s\n", err.msg);
			return 2;
		}
	}
	f.req = fam[0];
	f.dur = fam[1];
	f.acc = fam[2];
	f.rej = fam[3];
	for (i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, serve, &f);
	for (i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < 5; i++) {
		char v[8];

		snprintf(v, sizeof(v), "%zu", i);
		cm_prom_inc(cm_prom_series(fam[4], (const char *[]){v}));
	}
	cm_prom_set(cm_prom_series(fam[5], (const char *[]){"0.0.0-test"}), 1);
	if (cm_prom_collector(r, collect_streams, NULL, &err) < 0 ||
	    cm_prom_collector(r, collect_workers, NULL, &err) < 0) {
		fprintf(stderr, "promsample: %s\n", err.msg);
		return 2;
	}
	rc = cm_prom_render(r, &out, &err);
	if (rc != 0) {
		fprintf(stderr, "promsample: render: %s\n", err.msg);
		return 3;
	}
	fwrite(out.data, 1, out.len, stdout);
	cm_buf_release(&out);
	cm_prom_free(r);
	return 0;
}
