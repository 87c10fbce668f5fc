/* wmetrics.h - workers' metrics, reported through Redis.
 *
 * A worker stage (cm-consume, cm-match, cm-store) counts in memory with
 * relaxed atomic adds, cheap from any thread, and a background thread
 * flushes the counts at most once a period (default 1 s) and once more at
 * cm_wmetrics_free, each flush one pipelined round trip:
 *
 *     MULTI
 *     HINCRBY STREAM:worker:CONSUMER FIELD DELTA     (each non-zero field)
 *     ZADD STREAM:workers NOW_MS CONSUMER
 *     PEXPIRE STREAM:worker:CONSUMER EXPIRE_MS
 *     EXEC
 *
 * Fields: consumed, matched, matches, stored, acked, dead, errors; the
 * publish-to-commit latency histogram as cumulative buckets lat_le_<bound>
 * (bounds CM_WMETRICS_BOUNDS, written as cm_prom_format_double spells them:
 * lat_le_0.005 ... lat_le_60), lat_count (the +Inf bucket) and lat_sum_us;
 * and campaign:<id> per campaign. The three stages of one worker use the
 * same consumer name and so add into the same hash. A flush that fails
 * keeps its deltas for the next one and is counted; Redis being down is
 * never fatal and never blocks the caller (only the thread waits, at most
 * timeout_ms per attempt). A reply lost after the server applied a flush
 * can count that flush twice (the retry): counters are at least once.
 *
 * The reading side (cm-httpd's /metrics) is cm_wmetrics_render: it drops
 * workers not heard from within the TTL from STREAM:workers, reads the
 * others' hashes in one pipeline and writes the cm_worker_* families and
 * cm_campaign_matches_total through a cm_prom_writer.
 *
 * The flush thread blocks every signal, so a tool's signals reach its own
 * threads only.
 *
 * Ownership: the handle owns its connection and thread; cm_wmetrics_free
 * stops the thread, flushes and frees. */
#ifndef CM_WMETRICS_H
#define CM_WMETRICS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

struct cm_err;
struct cm_prom_writer;
struct cm_stream_id;

/* What a worker counts (the hash field in parentheses). */
enum cm_wmetric {
	CM_WM_CONSUMED, /* entries read from the stream (consumed) */
	CM_WM_MATCHED,  /* events with at least one match (matched) */
	CM_WM_MATCHES,  /* match rows (matches) */
	CM_WM_STORED,   /* events committed to PostgreSQL (stored) */
	CM_WM_ACKED,    /* entries acknowledged (acked) */
	CM_WM_DEAD,     /* entries moved to the dead-letter stream (dead) */
	CM_WM_ERRORS,   /* errors of any kind (errors) */
	CM_WM_NCOUNTERS
};

/* The latency histogram's upper bounds in seconds (+Inf implicit). */
#define CM_WMETRICS_BOUNDS                                                                         \
	{                                                                                          \
		0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60                    \
	}
#define CM_WMETRICS_NBOUNDS 13

#define CM_WMETRICS_INTERVAL_MS   1000   /* flush period */
#define CM_WMETRICS_EXPIRE_MS     300000 /* PEXPIRE of a worker's hash: 10 x the default TTL */
#define CM_WMETRICS_TIMEOUT_MS    1000   /* connect and reply timeout of one flush */
#define CM_WMETRICS_TTL_MS        30000  /* cm-httpd --worker-ttl default */
#define CM_WMETRICS_CONSUMER_MAX  128    /* bytes of a consumer name */
#define CM_WMETRICS_MAX_CAMPAIGNS 4096   /* distinct campaign ids one process counts */
#define CM_WMETRICS_MAX_WORKERS   1000   /* workers one render reads */

/* How to report; NULL or 0 members take the defaults shown. */
struct cm_wmetrics_opts {
	const char *redis_url; /* NULL: cm_redis_url(NULL) ($CM_REDIS_URL or the default) */
	const char *stream;    /* NULL: CM_REDIS_DEFAULT_STREAM */
	const char *consumer;  /* required: 1..CM_WMETRICS_CONSUMER_MAX bytes, no NUL */
	int64_t interval_ms;   /* 0: CM_WMETRICS_INTERVAL_MS; < 0: no thread (the caller
	                          calls cm_wmetrics_flush itself) */
	int64_t expire_ms;     /* 0: CM_WMETRICS_EXPIRE_MS */
	int timeout_ms;        /* 0: CM_WMETRICS_TIMEOUT_MS */
};

/* Counts of the reporter itself (cm_wmetrics_stats). */
struct cm_wmetrics_stats {
	uint64_t flushes;     /* flushes that reached Redis */
	uint64_t failures;    /* flushes that failed (their deltas were kept) */
	char last_error[256]; /* the last failure's message, "" if none */
};

struct cm_wmetrics;

/* Validates the options and starts the flush thread; does not connect (the
 * first flush does), so an unreachable Redis is no error here. NULL with
 * err for a bad URL or consumer name, or when memory or threads run out. */
struct cm_wmetrics *cm_wmetrics_new(const struct cm_wmetrics_opts *o, struct cm_err *err);
/* Stops the thread, makes one last flush (its failure only counted) and
 * frees everything; NULL is ignored. */
void cm_wmetrics_free(struct cm_wmetrics *m);

/* Adds n to counter which; lock-free, from any thread; NULL m is ignored. */
void cm_wmetrics_add(struct cm_wmetrics *m, enum cm_wmetric which, uint64_t n);
/* Adds n match rows of campaign id (> 0) to campaign:<id>. Past
 * CM_WMETRICS_MAX_CAMPAIGNS distinct ids the rest go to campaign:other. */
void cm_wmetrics_campaign(struct cm_wmetrics *m, int64_t id, uint64_t n);
/* Puts one publish-to-commit latency (seconds, negative counts as 0) into
 * the histogram. */
void cm_wmetrics_latency(struct cm_wmetrics *m, double seconds);
/* The same for a stream entry committed now: the latency is the time since
 * the entry id's millisecond part (the time XADD published it). */
void cm_wmetrics_latency_id(struct cm_wmetrics *m, const struct cm_stream_id *id);

/* Sends what was counted since the last successful flush now (the thread
 * does this by itself): 0, or -1 with err (the deltas are kept). Safe from
 * any thread; flushes never overlap. */
int cm_wmetrics_flush(struct cm_wmetrics *m, struct cm_err *err);
/* Copies the reporter's own counts into st. */
void cm_wmetrics_stats(struct cm_wmetrics *m, struct cm_wmetrics_stats *st);

/* The reading side. Over connection c: removes the members of
 * STREAM:workers whose score is at or below now_ms - ttl_ms, reads the rest
 * (at most CM_WMETRICS_MAX_WORKERS, the most recent) with their hashes in
 * one pipeline, and writes to w the families
 *
 *   cm_worker_up, cm_worker_last_seen_seconds                 gauges {consumer}
 *   cm_worker_consumed_total, _matched_total, _matches_total,
 *   _stored_total, _acked_total, _dead_lettered_total,
 *   _errors_total                                             counters {consumer}
 *   cm_worker_publish_to_commit_seconds                       histogram {consumer}
 *   cm_campaign_matches_total                                 counter {campaign_id},
 *                                                             summed over the workers read
 *
 * (each family written, with HELP and TYPE, even when no worker is live).
 * A field that is missing or not a number counts as 0; a member whose name
 * is not 1..CM_WMETRICS_CONSUMER_MAX bytes of UTF-8 is skipped. now_ms <= 0
 * means the current time. -1 with err on a Redis error (then nothing has
 * been written to w) or a writer error (within cm_prom_render, which then
 * drops the collector's partial output). */
int cm_wmetrics_render(redisContext *c, const char *stream, int64_t ttl_ms, int64_t now_ms,
                       struct cm_prom_writer *w, struct cm_err *err);

#endif
