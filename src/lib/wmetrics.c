/* wmetrics.c - workers' counters through Redis: the writer (in-memory
 * atomics flushed by a thread) and the reader (rendered for /metrics). */
#include "wmetrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "err.h"
#include "event.h"
#include "prom.h"
#include "redisx.h"
#include "timefmt.h"

/* The campaign table: open addressing, at most half full. */
#define CAMP_SLOTS (2 * CM_WMETRICS_MAX_CAMPAIGNS)
/* Longest field name: "campaign:" and a 19-digit id. */
#define FIELD_MAX 48
/* Campaign ids one render sums (the rest go to campaign_id="other"). */
#define RENDER_MAX_CAMPAIGNS 10000
/* A latency above this (seconds) is clamped, so the sum cannot overflow. */
#define LATENCY_CLAMP 1e9

static const char *const counter_fields[CM_WM_NCOUNTERS] = {
    "consumed", "matched", "matches", "stored", "acked", "dead", "errors",
};

static const double bounds[CM_WMETRICS_NBOUNDS] = CM_WMETRICS_BOUNDS;

struct cm_wmetrics {
	struct cm_redis_url url;
	char *hkey, *zkey, *consumer;
	size_t hkeylen, zkeylen, consumerlen;
	int64_t interval_ms, expire_ms;
	int timeout_ms;

	atomic_uint_fast64_t c[CM_WM_NCOUNTERS];
	atomic_uint_fast64_t lat[CM_WMETRICS_NBOUNDS + 1]; /* per bucket, not cumulative */
	atomic_uint_fast64_t lat_sum_us;
	atomic_int_fast64_t ckey[CAMP_SLOTS]; /* 0: empty; set once */
	atomic_uint_fast64_t cval[CAMP_SLOTS];
	atomic_size_t ncamp;
	atomic_uint_fast64_t camp_other;

	pthread_mutex_t flush_mu; /* one flush at a time; owns rc */
	redisContext *rc;

	pthread_mutex_t stats_mu;
	struct cm_wmetrics_stats stats;

	pthread_mutex_t mu; /* the thread's stop flag */
	pthread_cond_t cv;
	int stop, has_thread;
	pthread_t thread;
};

/* "lat_le_<bound>" for bucket i (i == NBOUNDS: "lat_count"). */
static void lat_field(size_t i, char *out)
{
	char num[32];

	if (i == CM_WMETRICS_NBOUNDS) {
		memcpy(out, "lat_count", 10);
		return;
	}
	cm_prom_format_double(bounds[i], num);
	snprintf(out, FIELD_MAX, "lat_le_%s", num);
}

/* Concatenates a, b and c into a new string; NULL when memory runs out. */
static char *concat3(const char *a, const char *b, const char *c, size_t *len)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *s = malloc(la + lb + lc + 1);

	if (!s)
		return NULL;
	memcpy(s, a, la);
	memcpy(s + la, b, lb);
	memcpy(s + la + lb, c, lc + 1);
	*len = la + lb + lc;
	return s;
}

/* --- The writer. --- */

/* Waits for the period or the stop flag, flushing after each period. */
static void *flush_thread(void *arg)
{
	struct cm_wmetrics *m = arg;
	struct cm_err err;
	struct timespec ts;

	pthread_mutex_lock(&m->mu);
	while (!m->stop) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += m->interval_ms / 1000;
		ts.tv_nsec += (m->interval_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (!m->stop && pthread_cond_timedwait(&m->cv, &m->mu, &ts) != ETIMEDOUT)
			;
		if (m->stop)
			break;
		pthread_mutex_unlock(&m->mu);
		/* A failure is counted in the stats and retried next period. */
		(void)cm_wmetrics_flush(m, &err);
		pthread_mutex_lock(&m->mu);
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

struct cm_wmetrics *cm_wmetrics_new(const struct cm_wmetrics_opts *o, struct cm_err *err)
{
	const char *stream = o->stream ? o->stream : CM_REDIS_DEFAULT_STREAM;
	struct cm_wmetrics *m;
	pthread_condattr_t ca;
	size_t n, i;

	n = o->consumer ? strlen(o->consumer) : 0;
	if (n == 0) {
		cm_errf(err, "metrics: no consumer name");
		return NULL;
	}
	if (n > CM_WMETRICS_CONSUMER_MAX || cm_utf8_valid_prefix(o->consumer, n) != n) {
		cm_errf(err, "metrics: consumer name: not 1 to %d bytes of UTF-8",
		        CM_WMETRICS_CONSUMER_MAX);
		return NULL;
	}
	if (!*stream) {
		cm_errf(err, "metrics: empty stream name");
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		cm_errf(err, "out of memory");
		return NULL;
	}
	if (cm_redis_url_parse(cm_redis_url(o->redis_url), &m->url, err) < 0) {
		free(m);
		return NULL;
	}
	m->interval_ms = o->interval_ms ? o->interval_ms : CM_WMETRICS_INTERVAL_MS;
	m->expire_ms = o->expire_ms > 0 ? o->expire_ms : CM_WMETRICS_EXPIRE_MS;
	m->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : CM_WMETRICS_TIMEOUT_MS;
	m->hkey = concat3(stream, ":worker:", o->consumer, &m->hkeylen);
	m->zkey = concat3(stream, ":workers", "", &m->zkeylen);
	m->consumer = concat3(o->consumer, "", "", &m->consumerlen);
	for (i = 0; i < CM_WM_NCOUNTERS; i++)
		atomic_init(&m->c[i], 0);
	for (i = 0; i <= CM_WMETRICS_NBOUNDS; i++)
		atomic_init(&m->lat[i], 0);
	atomic_init(&m->lat_sum_us, 0);
	for (i = 0; i < CAMP_SLOTS; i++) {
		atomic_init(&m->ckey[i], 0);
		atomic_init(&m->cval[i], 0);
	}
	atomic_init(&m->ncamp, 0);
	atomic_init(&m->camp_other, 0);
	pthread_mutex_init(&m->flush_mu, NULL);
	pthread_mutex_init(&m->stats_mu, NULL);
	pthread_mutex_init(&m->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (!m->hkey || !m->zkey || !m->consumer) {
		cm_errf(err, "out of memory");
		goto fail;
	}
	if (m->interval_ms > 0) {
		sigset_t all, old;
		int rc;

		/* The thread takes no signals: the tools wait for theirs in
		 * their own loops (ppoll with a mask), which a handler run on
		 * this thread would not wake. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		rc = pthread_create(&m->thread, NULL, flush_thread, m);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc != 0) {
			cm_errf(err, "metrics: cannot start the flush thread");
			goto fail;
		}
		m->has_thread = 1;
	}
	return m;
fail:
	cm_wmetrics_free(m);
	return NULL;
}

void cm_wmetrics_free(struct cm_wmetrics *m)
{
	struct cm_err err;

	if (!m)
		return;
	if (m->has_thread) {
		pthread_mutex_lock(&m->mu);
		m->stop = 1;
		pthread_cond_signal(&m->cv);
		pthread_mutex_unlock(&m->mu);
		pthread_join(m->thread, NULL);
	}
	if (m->hkey && m->zkey && m->consumer)
		(void)cm_wmetrics_flush(m, &err);
	if (m->rc)
		redisFree(m->rc);
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->mu);
	pthread_mutex_destroy(&m->stats_mu);
	pthread_mutex_destroy(&m->flush_mu);
	free(m->hkey);
	free(m->zkey);
	free(m->consumer);
	free(m);
}

void cm_wmetrics_add(struct cm_wmetrics *m, enum cm_wmetric which, uint64_t n)
{
	if (m && (unsigned)which < CM_WM_NCOUNTERS)
		atomic_fetch_add_explicit(&m->c[which], n, memory_order_relaxed);
}

void cm_wmetrics_campaign(struct cm_wmetrics *m, int64_t id, uint64_t n)
{
	uint64_t h;
	size_t i;

	if (!m || id <= 0)
		return;
	h = (uint64_t)id * 0x9E3779B97F4A7C15ULL;
	for (i = (size_t)(h >> 40) % CAMP_SLOTS;; i = (i + 1) % CAMP_SLOTS) {
		int_fast64_t k = atomic_load_explicit(&m->ckey[i], memory_order_acquire);

		if (k == id)
			break;
		if (k != 0)
			continue;
		/* An empty slot: claim it for id, if the cap allows. */
		if (atomic_load_explicit(&m->ncamp, memory_order_relaxed) >=
		    CM_WMETRICS_MAX_CAMPAIGNS) {
			atomic_fetch_add_explicit(&m->camp_other, n, memory_order_relaxed);
			return;
		}
		if (atomic_compare_exchange_strong_explicit(
		        &m->ckey[i], &k, id, memory_order_acq_rel, memory_order_acquire)) {
			atomic_fetch_add_explicit(&m->ncamp, 1, memory_order_relaxed);
			break;
		}
		if (k == id)
			break;
	}
	atomic_fetch_add_explicit(&m->cval[i], n, memory_order_relaxed);
}

void cm_wmetrics_latency(struct cm_wmetrics *m, double seconds)
{
	size_t i;

	if (!m || isnan(seconds))
		return;
	if (seconds < 0)
		seconds = 0;
	if (seconds > LATENCY_CLAMP)
		seconds = LATENCY_CLAMP;
	for (i = 0; i < CM_WMETRICS_NBOUNDS && seconds > bounds[i]; i++)
		;
	atomic_fetch_add_explicit(&m->lat[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->lat_sum_us, (uint64_t)llround(seconds * 1e6),
	                          memory_order_relaxed);
}

void cm_wmetrics_latency_id(struct cm_wmetrics *m, const struct cm_stream_id *id)
{
	struct timespec ts;
	double now;

	if (!m || !id)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	cm_wmetrics_latency(m, now - (double)id->ms / 1000.0);
}

/* What one flush takes out of the counters (and puts back on failure). */
struct deltas {
	uint64_t c[CM_WM_NCOUNTERS];
	uint64_t lat[CM_WMETRICS_NBOUNDS + 1];
	uint64_t lat_sum_us;
	uint64_t camp_other;
	size_t ncamp;
	size_t slot[CAMP_SLOTS]; /* campaign slots with a non-zero delta */
	uint64_t cval[CAMP_SLOTS];
};

static void take(struct cm_wmetrics *m, struct deltas *d)
{
	size_t i;

	for (i = 0; i < CM_WM_NCOUNTERS; i++)
		d->c[i] = atomic_exchange_explicit(&m->c[i], 0, memory_order_relaxed);
	for (i = 0; i <= CM_WMETRICS_NBOUNDS; i++)
		d->lat[i] = atomic_exchange_explicit(&m->lat[i], 0, memory_order_relaxed);
	d->lat_sum_us = atomic_exchange_explicit(&m->lat_sum_us, 0, memory_order_relaxed);
	d->camp_other = atomic_exchange_explicit(&m->camp_other, 0, memory_order_relaxed);
	d->ncamp = 0;
	if (!atomic_load_explicit(&m->ncamp, memory_order_relaxed))
		return;
	for (i = 0; i < CAMP_SLOTS; i++) {
		uint64_t v;

		if (!atomic_load_explicit(&m->ckey[i], memory_order_relaxed))
			continue;
		v = atomic_exchange_explicit(&m->cval[i], 0, memory_order_relaxed);
		if (v) {
			d->slot[d->ncamp] = i;
			d->cval[d->ncamp++] = v;
		}
	}
}

static void put_back(struct cm_wmetrics *m, const struct deltas *d)
{
	size_t i;

	for (i = 0; i < CM_WM_NCOUNTERS; i++)
		atomic_fetch_add_explicit(&m->c[i], d->c[i], memory_order_relaxed);
	for (i = 0; i <= CM_WMETRICS_NBOUNDS; i++)
		atomic_fetch_add_explicit(&m->lat[i], d->lat[i], memory_order_relaxed);
	atomic_fetch_add_explicit(&m->lat_sum_us, d->lat_sum_us, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->camp_other, d->camp_other, memory_order_relaxed);
	for (i = 0; i < d->ncamp; i++)
		atomic_fetch_add_explicit(&m->cval[d->slot[i]], d->cval[i], memory_order_relaxed);
}

/* Queues HINCRBY hkey field n. */
static void append_hincrby(struct cm_wmetrics *m, const char *field, uint64_t n)
{
	char num[24];
	const char *argv[4] = {"HINCRBY", m->hkey, field, num};
	size_t len[4] = {7, m->hkeylen, strlen(field), 0};

	len[3] = (size_t)snprintf(num, sizeof(num), "%llu", (unsigned long long)n);
	redisAppendCommandArgv(m->rc, 4, argv, len);
}

/* Sends one MULTI ... EXEC with the deltas and checks every reply. */
static int send_deltas(struct cm_wmetrics *m, const struct deltas *d, struct cm_err *err)
{
	char field[FIELD_MAX], num[24], ms[24];
	uint64_t cum = 0;
	size_t i, queued = 0;
	redisReply *r = NULL;
	int rc = -1;

	redisAppendCommand(m->rc, "MULTI");
	for (i = 0; i < CM_WM_NCOUNTERS; i++)
		if (d->c[i]) {
			append_hincrby(m, counter_fields[i], d->c[i]);
			queued++;
		}
	/* Buckets are stored cumulative (lat_count is the +Inf bucket). */
	for (i = 0; i <= CM_WMETRICS_NBOUNDS; i++) {
		cum += d->lat[i];
		if (!cum)
			continue;
		lat_field(i, field);
		append_hincrby(m, field, cum);
		queued++;
	}
	if (d->lat_sum_us) {
		append_hincrby(m, "lat_sum_us", d->lat_sum_us);
		queued++;
	}
	for (i = 0; i < d->ncamp; i++) {
		snprintf(
		    field, sizeof(field), "campaign:%lld",
		    (long long)atomic_load_explicit(&m->ckey[d->slot[i]], memory_order_relaxed));
		append_hincrby(m, field, d->cval[i]);
		queued++;
	}
	if (d->camp_other) {
		append_hincrby(m, "campaign:other", d->camp_other);
		queued++;
	}
	{
		const char *zargv[4] = {"ZADD", m->zkey, ms, m->consumer};
		size_t zlen[4] = {4, m->zkeylen, 0, m->consumerlen};
		const char *eargv[3] = {"PEXPIRE", m->hkey, num};
		size_t elen[3] = {7, m->hkeylen, 0};

		zlen[2] = (size_t)snprintf(ms, sizeof(ms), "%lld", (long long)cm_time_now());
		elen[2] = (size_t)snprintf(num, sizeof(num), "%lld", (long long)m->expire_ms);
		redisAppendCommandArgv(m->rc, 4, zargv, zlen);
		redisAppendCommandArgv(m->rc, 3, eargv, elen);
		queued += 2;
	}
	redisAppendCommand(m->rc, "EXEC");
	/* MULTI's +OK, a +QUEUED per command, then EXEC's array. */
	for (i = 0; i < queued + 2; i++) {
		void *p = NULL;

		if (redisGetReply(m->rc, &p) != REDIS_OK) {
			cm_errf(err, "metrics: %s: %s", m->url.safe,
			        m->rc->errstr[0] ? m->rc->errstr : "connection lost");
			goto out;
		}
		freeReplyObject(r);
		r = p;
		if (r->type == REDIS_REPLY_ERROR) {
			cm_errf(err, "metrics: %s: %.*s", m->url.safe, (int)r->len, r->str);
			goto out;
		}
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != queued) {
		cm_errf(err, "metrics: %s: the transaction was not applied", m->url.safe);
		goto out;
	}
	for (i = 0; i < r->elements; i++)
		if (r->element[i]->type == REDIS_REPLY_ERROR) {
			cm_errf(err, "metrics: %s: %.*s", m->url.safe, (int)r->element[i]->len,
			        r->element[i]->str);
			goto out;
		}
	rc = 0;
out:
	/* After a failure the caller drops the connection, so replies left
	 * unread do not matter: the next flush reconnects. */
	freeReplyObject(r);
	return rc;
}

int cm_wmetrics_flush(struct cm_wmetrics *m, struct cm_err *err)
{
	struct deltas *d;
	int rc = -1;

	if (!m)
		return 0;
	d = malloc(sizeof(*d));
	if (!d)
		return cm_errf(err, "out of memory");
	pthread_mutex_lock(&m->flush_mu);
	take(m, d);
	if (!m->rc) {
		struct timeval tv = {m->timeout_ms / 1000, (m->timeout_ms % 1000) * 1000};

		m->rc = cm_redis_connect_url(&m->url, err);
		if (!m->rc)
			goto fail;
		if (redisSetTimeout(m->rc, tv) != REDIS_OK) {
			cm_errf(err, "metrics: %s: cannot set a timeout", m->url.safe);
			goto fail;
		}
	}
	if (send_deltas(m, d, err) < 0)
		goto fail;
	pthread_mutex_lock(&m->stats_mu);
	m->stats.flushes++;
	pthread_mutex_unlock(&m->stats_mu);
	rc = 0;
	goto out;
fail:
	put_back(m, d);
	if (m->rc) {
		redisFree(m->rc);
		m->rc = NULL;
	}
	pthread_mutex_lock(&m->stats_mu);
	m->stats.failures++;
	snprintf(m->stats.last_error, sizeof(m->stats.last_error), "%.*s",
	         (int)sizeof(m->stats.last_error) - 1, err->msg);
	pthread_mutex_unlock(&m->stats_mu);
out:
	pthread_mutex_unlock(&m->flush_mu);
	free(d);
	return rc;
}

void cm_wmetrics_stats(struct cm_wmetrics *m, struct cm_wmetrics_stats *st)
{
	pthread_mutex_lock(&m->stats_mu);
	*st = m->stats;
	pthread_mutex_unlock(&m->stats_mu);
}

/* --- The reader. --- */

/* One live worker as read from its hash. */
struct worker {
	const char *name; /* in the ZSET reply */
	double last_seen; /* seconds */
	uint64_t c[CM_WM_NCOUNTERS];
	uint64_t lat[CM_WMETRICS_NBOUNDS + 1]; /* cumulative, [NBOUNDS] = lat_count */
	uint64_t lat_sum_us;
	const redisReply *hash;
};

struct campsum {
	int64_t id; /* 0: "other" */
	uint64_t n;
};

/* Parses a Redis integer field value; anything else is 0. */
static uint64_t parse_count(const char *s, size_t n)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > 20)
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return v;
}

/* True when s[0..n) equals the NUL-terminated lit. */
static int field_is(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* Adds n to campaign id's sum (linear probing in a table of cap slots). */
static void campsum_add(struct campsum *t, size_t cap, size_t *used, int64_t id, uint64_t n)
{
	size_t i = (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15ULL) >> 33) % cap;

	for (;; i = (i + 1) % cap) {
		if (t[i].n && t[i].id == id)
			break;
		if (!t[i].n) {
			if (*used >= RENDER_MAX_CAMPAIGNS && id != 0) {
				campsum_add(t, cap, used, 0, n);
				return;
			}
			t[i].id = id;
			(*used)++;
			break;
		}
	}
	t[i].n += n;
}

/* Reads one worker's fields; campaign fields go to the sums. */
static void read_worker(struct worker *wk, const redisReply *h, struct campsum *t, size_t cap,
                        size_t *used)
{
	char lat_names[CM_WMETRICS_NBOUNDS + 1][FIELD_MAX];
	size_t i, j;

	for (j = 0; j <= CM_WMETRICS_NBOUNDS; j++)
		lat_field(j, lat_names[j]);
	for (i = 0; i + 1 < h->elements; i += 2) {
		const redisReply *k = h->element[i], *v = h->element[i + 1];
		uint64_t n;

		if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		n = parse_count(v->str, v->len);
		if (k->len > 9 && memcmp(k->str, "campaign:", 9) == 0) {
			int64_t id = 0;
			uint64_t u = parse_count(k->str + 9, k->len - 9);

			if (field_is(k->str + 9, k->len - 9, "other"))
				id = 0;
			else if (u > 0 && u <= INT64_MAX)
				id = (int64_t)u;
			else
				continue;
			if (n)
				campsum_add(t, cap, used, id, n);
			continue;
		}
		if (field_is(k->str, k->len, "lat_sum_us")) {
			wk->lat_sum_us = n;
			continue;
		}
		for (j = 0; j < CM_WM_NCOUNTERS; j++)
			if (field_is(k->str, k->len, counter_fields[j]))
				wk->c[j] = n;
		for (j = 0; j <= CM_WMETRICS_NBOUNDS; j++)
			if (field_is(k->str, k->len, lat_names[j]))
				wk->lat[j] = n;
	}
}

static int worker_cmp(const void *a, const void *b)
{
	return strcmp(((const struct worker *)a)->name, ((const struct worker *)b)->name);
}

static int campsum_cmp(const void *a, const void *b)
{
	const struct campsum *x = a, *y = b;

	/* "other" (id 0) last, the rest by id. */
	if (x->id == 0 || y->id == 0)
		return (x->id == 0) - (y->id == 0);
	return (x->id > y->id) - (x->id < y->id);
}

/* What each worker family is called and says, in counter_fields order. */
static const char *const counter_families[CM_WM_NCOUNTERS][2] = {
    {"cm_worker_consumed_total", "Stream entries a worker read."},
    {"cm_worker_matched_total", "Events a worker found at least one matching campaign for."},
    {"cm_worker_matches_total", "Match rows a worker produced."},
    {"cm_worker_stored_total", "Events a worker committed to PostgreSQL."},
    {"cm_worker_acked_total", "Stream entries a worker acknowledged."},
    {"cm_worker_dead_lettered_total", "Stream entries a worker moved to the dead-letter stream."},
    {"cm_worker_errors_total", "Errors a worker met."},
};

/* Writes the families from the workers read and the campaign sums. */
static int write_families(struct cm_prom_writer *w, struct worker *wk, size_t nw,
                          struct campsum *cs, size_t ncs, struct cm_err *err)
{
	static const char *const consumer[] = {"consumer", NULL};
	static const char *const campaign[] = {"campaign_id", NULL};
	size_t i, j;

	if (cm_prom_write_family(w, CM_PROM_GAUGE, "cm_worker_up",
	                         "1 for every worker heard from within the worker TTL.", consumer,
	                         err) < 0)
		return -1;
	for (i = 0; i < nw; i++)
		if (cm_prom_write_sample(w, &wk[i].name, 1, err) < 0)
			return -1;
	if (cm_prom_write_family(w, CM_PROM_GAUGE, "cm_worker_last_seen_seconds",
	                         "When a worker last reported, in seconds since the Unix epoch.",
	                         consumer, err) < 0)
		return -1;
	for (i = 0; i < nw; i++)
		if (cm_prom_write_sample(w, &wk[i].name, wk[i].last_seen, err) < 0)
			return -1;
	for (j = 0; j < CM_WM_NCOUNTERS; j++) {
		if (cm_prom_write_family(w, CM_PROM_COUNTER, counter_families[j][0],
		                         counter_families[j][1], consumer, err) < 0)
			return -1;
		for (i = 0; i < nw; i++)
			if (cm_prom_write_u64(w, &wk[i].name, wk[i].c[j], err) < 0)
				return -1;
	}
	if (cm_prom_write_family(w, CM_PROM_HISTOGRAM, "cm_worker_publish_to_commit_seconds",
	                         "Time from an event's publication (its stream entry id) to its "
	                         "commit in PostgreSQL.",
	                         consumer, err) < 0)
		return -1;
	for (i = 0; i < nw; i++) {
		uint64_t counts[CM_WMETRICS_NBOUNDS + 1], prev = 0;

		/* Stored cumulative; un-cumulate, forcing monotonic buckets so
		 * that a damaged hash still renders a valid histogram. */
		for (j = 0; j <= CM_WMETRICS_NBOUNDS; j++) {
			uint64_t v = wk[i].lat[j] > prev ? wk[i].lat[j] : prev;

			counts[j] = v - prev;
			prev = v;
		}
		if (cm_prom_write_histogram(w, &wk[i].name, bounds, CM_WMETRICS_NBOUNDS, counts,
		                            (double)wk[i].lat_sum_us / 1e6, err) < 0)
			return -1;
	}
	if (cm_prom_write_family(w, CM_PROM_COUNTER, "cm_campaign_matches_total",
	                         "Match rows per campaign, summed over the live workers.", campaign,
	                         err) < 0)
		return -1;
	for (i = 0; i < ncs; i++) {
		char id[24];
		const char *v[1] = {id};

		if (cs[i].id)
			snprintf(id, sizeof(id), "%lld", (long long)cs[i].id);
		else
			memcpy(id, "other", 6);
		if (cm_prom_write_u64(w, v, cs[i].n, err) < 0)
			return -1;
	}
	return 0;
}

int cm_wmetrics_render(redisContext *c, const char *stream, int64_t ttl_ms, int64_t now_ms,
                       struct cm_prom_writer *w, struct cm_err *err)
{
	char cutoff[32], excl[32], limit[24];
	struct worker *wk = NULL;
	struct campsum *cs = NULL;
	redisReply *zr = NULL, **hr = NULL;
	size_t i, nw = 0, nhr = 0, cap = 2 * RENDER_MAX_CAMPAIGNS + 1, used = 0, ncs;
	char *zkey = NULL;
	size_t zkeylen;
	int rc = -1;

	if (!stream)
		stream = CM_REDIS_DEFAULT_STREAM;
	if (now_ms <= 0)
		now_ms = cm_time_now();
	zkey = concat3(stream, ":workers", "", &zkeylen);
	if (!zkey)
		return cm_errf(err, "out of memory");
	snprintf(cutoff, sizeof(cutoff), "%lld", (long long)(now_ms - ttl_ms));
	snprintf(excl, sizeof(excl), "(%lld", (long long)(now_ms - ttl_ms));
	snprintf(limit, sizeof(limit), "%d", CM_WMETRICS_MAX_WORKERS);
	{
		const char *a1[4] = {"ZREMRANGEBYSCORE", zkey, "-inf", cutoff};
		size_t l1[4] = {16, zkeylen, 4, strlen(cutoff)};
		const char *a2[8] = {"ZREVRANGEBYSCORE", zkey,    "+inf", excl,
		                     "WITHSCORES",       "LIMIT", "0",    limit};
		size_t l2[8] = {16, zkeylen, 4, strlen(excl), 10, 5, 1, strlen(limit)};
		void *p = NULL;

		redisAppendCommandArgv(c, 4, a1, l1);
		redisAppendCommandArgv(c, 8, a2, l2);
		if (redisGetReply(c, &p) != REDIS_OK)
			goto ioerr;
		freeReplyObject(p);
		p = NULL;
		if (redisGetReply(c, &p) != REDIS_OK)
			goto ioerr;
		zr = p;
	}
	if (zr->type == REDIS_REPLY_ERROR) {
		cm_errf(err, "workers: %s: %.*s", zkey, (int)zr->len, zr->str);
		goto out;
	}
	if (zr->type != REDIS_REPLY_ARRAY) {
		cm_errf(err, "workers: %s: unexpected reply", zkey);
		goto out;
	}
	wk = calloc(zr->elements / 2 + 1, sizeof(*wk));
	hr = calloc(zr->elements / 2 + 1, sizeof(*hr));
	cs = calloc(cap, sizeof(*cs));
	if (!wk || !hr || !cs) {
		cm_errf(err, "out of memory");
		goto out;
	}
	for (i = 0; i + 1 < zr->elements; i += 2) {
		const redisReply *name = zr->element[i], *score = zr->element[i + 1];
		char num[32];
		size_t n;

		if (name->type != REDIS_REPLY_STRING || score->type != REDIS_REPLY_STRING)
			continue;
		/* A name that cannot be a label value (or a key we wrote) is
		 * skipped rather than failing the scrape. */
		n = name->len;
		if (n == 0 || n > CM_WMETRICS_CONSUMER_MAX || memchr(name->str, 0, n) ||
		    cm_utf8_valid_prefix(name->str, n) != n)
			continue;
		snprintf(num, sizeof(num), "%.*s", (int)(score->len < 31 ? score->len : 31),
		         score->str);
		wk[nw].name = name->str;
		wk[nw].last_seen = strtod(num, NULL) / 1000.0;
		nw++;
	}
	for (i = 0; i < nw; i++) {
		const char *a[2] = {"HGETALL", NULL};
		size_t l[2] = {7, 0};
		size_t hlen;
		char *hkey = concat3(stream, ":worker:", wk[i].name, &hlen);

		if (!hkey) {
			cm_errf(err, "out of memory");
			goto out;
		}
		a[1] = hkey;
		l[1] = hlen;
		redisAppendCommandArgv(c, 2, a, l);
		free(hkey);
	}
	for (i = 0; i < nw; i++) {
		void *p = NULL;

		if (redisGetReply(c, &p) != REDIS_OK)
			goto ioerr;
		hr[nhr++] = p;
		if (hr[i]->type == REDIS_REPLY_ERROR) {
			cm_errf(err, "workers: HGETALL: %.*s", (int)hr[i]->len, hr[i]->str);
			/* Read the rest so the connection stays in step. */
			for (i++; i < nw; i++) {
				if (redisGetReply(c, &p) != REDIS_OK)
					goto ioerr;
				hr[nhr++] = p;
			}
			goto out;
		}
		if (hr[i]->type == REDIS_REPLY_ARRAY)
			read_worker(&wk[i], hr[i], cs, cap, &used);
	}
	qsort(wk, nw, sizeof(*wk), worker_cmp);
	for (i = ncs = 0; i < cap; i++)
		if (cs[i].n)
			cs[ncs++] = cs[i];
	qsort(cs, ncs, sizeof(*cs), campsum_cmp);
	rc = write_families(w, wk, nw, cs, ncs, err);
	goto out;
ioerr:
	cm_errf(err, "workers: %s", c->errstr[0] ? c->errstr : "connection lost");
out:
	for (i = 0; i < nhr; i++)
		freeReplyObject(hr[i]);
	freeReplyObject(zr);
	free(hr);
	free(wk);
	free(cs);
	free(zkey);
	return rc;
}
