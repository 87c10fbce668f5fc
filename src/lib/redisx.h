/* redisx.h - connecting to Redis from a CONTRACT URL
 * (redis://[:pass@]host[:port][/db], unix:///path[?db=N]). */
#ifndef CM_REDISX_H
#define CM_REDISX_H

#include <hiredis/hiredis.h>

struct cm_err;

/* Default URL when neither --redis nor CM_REDIS_URL is given. */
#define CM_REDIS_DEFAULT_URL "redis://127.0.0.1:6379"

/* Connects (with a timeout), authenticates and selects the database; on
 * failure returns NULL with err saying which step failed, and err->code what
 * it means: CM_EXIT_UNREACHABLE (no connection, or a refusal worth retrying
 * such as LOADING), CM_EXIT_REFUSED (AUTH or SELECT refused: a wrong
 * password does not get right by waiting), CM_EXIT_USAGE (a bad URL). The
 * caller frees the context with redisFree. */
redisContext *cm_redis_connect(const char *url, struct cm_err *err);
/* The URL to use: opt if set, else $CM_REDIS_URL, else the default. */
const char *cm_redis_url(const char *opt);

/* --- Stream helpers shared by cm-publish, cm-consume and cm-store. --- */

#include <stddef.h>
#include <stdint.h>

/* The stream entry format: one field, "data", holding the event as compact
 * JSON (XADD KEY * data JSON). Defaults of --stream and --group, and the
 * dead-letter stream's name (KEY + ":dead"). */
#define CM_REDIS_FIELD          "data"
#define CM_REDIS_DEFAULT_STREAM "cm:events"
#define CM_REDIS_DEFAULT_GROUP  "cm-workers"
#define CM_REDIS_DEAD_SUFFIX    ":dead"

/* cm_redis_connect gives up connecting after CM_REDIS_CONNECT_MS and sets a
 * read/write timeout of CM_REDIS_IO_MS on the context (a command that blocks
 * longer, such as XREADGROUP BLOCK, must raise it with redisSetTimeout). */
#define CM_REDIS_CONNECT_MS 5000
#define CM_REDIS_IO_MS      30000

/* A parsed URL: redis://[[user]:password@]host[:port][/db][?db=N] or
 * unix://[[user]:password@]/path[?db=N]. The user and password may be
 * percent-encoded; a bare "password@" (no colon) is a password. */
struct cm_redis_url {
	int is_unix;
	char host[256]; /* TCP host, an IPv6 address without its brackets */
	int port;       /* 6379 unless given */
	char path[108]; /* unix socket path */
	char user[128]; /* empty: the default user (AUTH password) */
	char pass[256]; /* empty: no AUTH */
	int db;         /* SELECTed when not 0 */
	char safe[512]; /* the URL for messages, the password shown as "***" */
};

/* Parses url into u; on failure err says what is wrong without repeating the
 * password. */
int cm_redis_url_parse(const char *url, struct cm_redis_url *u, struct cm_err *err);
/* cm_redis_connect for an already parsed URL. */
redisContext *cm_redis_connect_url(const struct cm_redis_url *u, struct cm_err *err);
/* The same with other timeouts than CM_REDIS_CONNECT_MS and CM_REDIS_IO_MS
 * (milliseconds, more than 0). */
redisContext *cm_redis_connect_timed(const struct cm_redis_url *u, int connect_ms, int io_ms,
                                     struct cm_err *err);

/* True when an error reply is worth retrying after a pause: the server is
 * loading its data, busy with a script, out of memory, read-only or
 * otherwise temporarily refusing (LOADING, BUSY, TRYAGAIN, OOM, ...). */
int cm_redis_error_transient(const char *msg, size_t len);

/* An entry to move to the dead-letter stream (KEY:dead, CONTRACT 1.4). */
struct cm_redis_dead {
	const char *key;      /* the stream the entry is in */
	const char *dead_key; /* where it goes: key + CM_REDIS_DEAD_SUFFIX */
	const char *group;    /* the consumer group it is pending in */
	const char *id;       /* its id */
	const char *data;     /* the dead entry's "data" field */
	size_t data_len;
	const char *reason;   /* why: "delivered 6 times", "not an event: ..." */
	const char *consumer; /* recorded as "consumer" when not NULL */
	long long deliveries; /* recorded as "deliveries" when above 0 */
};

/* Reads the next reply on c, the way the caller waits (cm-consume: with its
 * signals open); returns REDIS_OK, or REDIS_ERR with err saying why (c may
 * then be gone: it is not used again). */
typedef int cm_redis_getfn(void *ctx, redisContext *c, redisReply **reply, struct cm_err *err);

/* The failures of cm_redis_dead_letter and cm_redis_xack. Either way
 * err->code says whether retrying may help: CM_EXIT_UNREACHABLE (the
 * connection failed, or a refusal such as LOADING or OOM) or
 * CM_EXIT_REFUSED (an error reply that waiting does not change). */
#define CM_REDIS_IO      (-1) /* sending or reading failed: see err */
#define CM_REDIS_REFUSED (-2) /* Redis answered with an error: see err, *refusal */

/* Moves entry e to e->dead_key (XADD with the fields data, reason, id,
 * group and, when given, consumer and deliveries) and acknowledges it in
 * e->group, both in one MULTI/EXEC, so that the entry is never lost between
 * the two and never left pending beside its dead copy. Replies are read with
 * get (NULL: redisGetReply). Returns 0, CM_REDIS_IO, or CM_REDIS_REFUSED with
 * err saying what was refused and *refusal (when refusal is not NULL) the
 * error reply, for the caller to classify and free (NULL when EXEC ran but a
 * command inside it failed). If the reply to EXEC is lost, a retry writes a
 * second dead copy: harmless, since XACK is idempotent. */
int cm_redis_dead_letter(redisContext *c, const struct cm_redis_dead *e, cm_redis_getfn *get,
                         void *ctx, redisReply **refusal, struct cm_err *err);

/* Ids per XACK command of cm_redis_xack. */
#define CM_REDIS_XACK_CHUNK 4096

/* Acknowledges the entries ids[0..n) (lengths lens[i]; lens NULL: the ids
 * are NUL-terminated) of stream key in group: XACK commands of up to
 * CM_REDIS_XACK_CHUNK ids, all sent before the first reply is read (one
 * round trip), replies read with get (NULL: redisGetReply). *acked (when not
 * NULL) gets the number Redis acknowledged (ids that were not pending do not
 * count: acknowledging twice is harmless). Returns 0, CM_REDIS_IO (then
 * *refusal is NULL), or CM_REDIS_REFUSED with err and *refusal (when refusal
 * is not NULL) the first error reply, for the caller to classify and free;
 * the replies to the other chunks are read all the same. */
int cm_redis_xack(redisContext *c, const char *key, const char *group, const char *const *ids,
                  const size_t *lens, size_t n, cm_redis_getfn *get, void *ctx, long long *acked,
                  redisReply **refusal, struct cm_err *err);

/* A stream entry id, MS-SEQ. */
struct cm_stream_id {
	uint64_t ms, seq;
};
#define CM_STREAM_ID_MAX 42 /* longest formatted id with its NUL */

struct cm_jdoc;
struct cm_buf;

/* Appends the object at token 0 of d (an event read from or for a stream)
 * to out as compact JSON without its top-level "_stream_id", the id of an
 * earlier trip through a stream, which is stale: cm-consume adds the current
 * one. -1 when out cannot grow. */
int cm_stream_event_compact(const struct cm_jdoc *d, struct cm_buf *out);

/* Parses "MS-SEQ" (or "MS", meaning MS-0) from s[0..n); 0 or -1. */
int cm_stream_id_parse(const char *s, size_t n, struct cm_stream_id *id);
/* Writes id as "MS-SEQ" into out (CM_STREAM_ID_MAX bytes); returns its length. */
size_t cm_stream_id_format(const struct cm_stream_id *id, char *out);
/* <0, 0 or >0 as a sorts before, equal to or after b. */
int cm_stream_id_cmp(const struct cm_stream_id *a, const struct cm_stream_id *b);

/* Safe retention. The lowest id that some consumer group of stream key still
 * needs: for each group the smaller of its oldest pending (delivered, not
 * acknowledged) entry and the id just after its last-delivered-id; the
 * minimum over all groups. Returns 1 with *minid set, 0 when the stream has
 * no groups or does not exist (then nothing may be trimmed), -1 on error. */
int cm_redis_safe_minid(redisContext *c, const char *key, struct cm_stream_id *minid,
                        struct cm_err *err);
/* Trims stream key below cm_redis_safe_minid (XTRIM key MINID id, exact), so
 * that only entries every group has acknowledged go; *trimmed (if not NULL)
 * gets the number of entries removed. A stream without groups is left alone. */
int cm_redis_trim_safe(redisContext *c, const char *key, long long *trimmed, struct cm_err *err);

#endif
