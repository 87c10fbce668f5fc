/* redisx.c - Redis connections from CONTRACT URLs, stream ids, and the safe
 * (group-aware) retention shared by the Redis tools. */
#include "redisx.h"

#include "buf.h"
#include "err.h"
#include "json.h"
#include "num.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* The URL to use: an explicit option beats the environment, which beats the
 * default, so one setting reaches every tool of a worker. */
const char *cm_redis_url(const char *opt)
{
	const char *env;

	if (opt && *opt)
		return opt;
	env = getenv("CM_REDIS_URL");
	if (env && *env)
		return env;
	return CM_REDIS_DEFAULT_URL;
}

/* Copies s[0..n) into out (size cap) decoding %XX escapes, so that a password
 * may hold '@', ':' or '/'; -1 when it does not fit or an escape is bad. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '%') {
			int h, l;

			if (i + 2 >= n)
				return -1;
			h = cm_hexval((unsigned char)s[i + 1]);
			l = cm_hexval((unsigned char)s[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			c = (char)(h * 16 + l);
			i += 2;
		}
		if (c == '\0' || o + 1 >= cap)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

/* Parses a decimal number s[0..n) within [min, max]; 0 or -1. */
static int parse_num(const char *s, size_t n, long min, long max, long *out)
{
	long v = 0;
	size_t i;

	if (n == 0 || n > 10)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Parses the user information before '@' into user and password. */
static int parse_userinfo(const char *s, size_t n, struct cm_redis_url *u, struct cm_err *err)
{
	const char *colon = memchr(s, ':', n);
	size_t ulen = colon ? (size_t)(colon - s) : 0;
	const char *p = colon ? colon + 1 : s;
	size_t plen = colon ? n - ulen - 1 : n;

	if (pct_decode(s, ulen, u->user, sizeof(u->user)) < 0)
		return cm_errf(err, "the user name in the URL is too long or has a bad %%-escape");
	if (pct_decode(p, plen, u->pass, sizeof(u->pass)) < 0)
		return cm_errf(err, "the password in the URL is too long or has a bad %%-escape");
	if (u->user[0] && !u->pass[0])
		return cm_errf(err, "the URL names user '%s' without a password", u->user);
	return 0;
}

/* Parses a query "db=N" (the only parameter); -1 for anything else. */
static int parse_query(const char *q, struct cm_redis_url *u, struct cm_err *err)
{
	long db;

	if (strncmp(q, "db=", 3) != 0)
		return cm_errf(err, "unknown URL parameter in '?%.40s' (expected ?db=N)", q);
	if (parse_num(q + 3, strlen(q + 3), 0, 1000000, &db) < 0)
		return cm_errf(err, "URL parameter db: expected a database number, got '%.40s'",
		               q + 3);
	u->db = (int)db;
	return 0;
}

/* Writes the URL with its password masked into u->safe. */
static void make_safe(struct cm_redis_url *u)
{
	char auth[200] = "";
	char db[24] = "";

	if (u->pass[0])
		snprintf(auth, sizeof(auth), "%.127s:***@", u->user);
	if (u->db)
		snprintf(db, sizeof(db), "%s%d", u->is_unix ? "?db=" : "/", u->db);
	if (u->is_unix)
		snprintf(u->safe, sizeof(u->safe), "unix://%s%s%s", auth, u->path, db);
	else if (strchr(u->host, ':'))
		snprintf(u->safe, sizeof(u->safe), "redis://%s[%s]:%d%s", auth, u->host, u->port,
		         db);
	else
		snprintf(u->safe, sizeof(u->safe), "redis://%s%s:%d%s", auth, u->host, u->port, db);
}

/* Parses the part after "redis://": [userinfo@]host[:port][/db][?db=N]. */
static int parse_tcp(const char *s, struct cm_redis_url *u, struct cm_err *err)
{
	size_t alen = strcspn(s, "/?");
	const char *at = NULL, *h, *end = s + alen, *port = NULL;
	const char *q;
	long v;
	size_t i;

	for (i = 0; i < alen; i++)
		if (s[i] == '@')
			at = s + i;
	if (at && parse_userinfo(s, (size_t)(at - s), u, err) < 0)
		return -1;
	h = at ? at + 1 : s;
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(end - h));

		if (!rb)
			return cm_errf(err, "URL host: '[' without ']'");
		if ((size_t)(rb - h - 1) >= sizeof(u->host) || rb == h + 1)
			return cm_errf(err, "URL host: bad IPv6 address");
		memcpy(u->host, h + 1, (size_t)(rb - h - 1));
		u->host[rb - h - 1] = '\0';
		if (rb + 1 < end) {
			if (rb[1] != ':')
				return cm_errf(err, "URL host: expected ':' after ']'");
			port = rb + 2;
		}
	} else {
		const char *colon = memchr(h, ':', (size_t)(end - h));
		const char *hend = colon ? colon : end;

		if ((size_t)(hend - h) >= sizeof(u->host))
			return cm_errf(err, "URL host: longer than %zu bytes", sizeof(u->host) - 1);
		memcpy(u->host, h, (size_t)(hend - h));
		u->host[hend - h] = '\0';
		if (!u->host[0])
			snprintf(u->host, sizeof(u->host), "127.0.0.1");
		if (colon)
			port = colon + 1;
	}
	if (port) {
		if (parse_num(port, (size_t)(end - port), 1, 65535, &v) < 0)
			return cm_errf(err,
			               "URL port: expected a number from 1 to 65535, got '%.*s'",
			               (int)(end - port > 20 ? 20 : end - port), port);
		u->port = (int)v;
	}
	q = end;
	if (*q == '/') {
		size_t dlen = strcspn(q + 1, "?");

		if (dlen > 0 && parse_num(q + 1, dlen, 0, 1000000, &v) < 0)
			return cm_errf(err, "URL database: expected a number after '/', got '%.*s'",
			               (int)(dlen > 20 ? 20 : dlen), q + 1);
		if (dlen > 0)
			u->db = (int)v;
		q += 1 + dlen;
	}
	if (*q == '?' && parse_query(q + 1, u, err) < 0)
		return -1;
	return 0;
}

/* Parses the part after "unix://": [userinfo@]/path[?db=N]. */
static int parse_unix(const char *s, struct cm_redis_url *u, struct cm_err *err)
{
	const char *slash = strchr(s, '/');
	const char *at = slash ? memchr(s, '@', (size_t)(slash - s)) : NULL;
	size_t plen;

	if (at && parse_userinfo(s, (size_t)(at - s), u, err) < 0)
		return -1;
	if (!slash || slash != (at ? at + 1 : s))
		return cm_errf(err, "unix URL: expected an absolute socket path (unix:///path)");
	plen = strcspn(slash, "?");
	if (plen >= sizeof(u->path))
		return cm_errf(err, "unix URL: socket path longer than %zu bytes",
		               sizeof(u->path) - 1);
	memcpy(u->path, slash, plen);
	u->path[plen] = '\0';
	if (slash[plen] == '?' && parse_query(slash + plen + 1, u, err) < 0)
		return -1;
	return 0;
}

/* Splits a URL into its parts without echoing the password in messages. */
int cm_redis_url_parse(const char *url, struct cm_redis_url *u, struct cm_err *err)
{
	int rc;

	memset(u, 0, sizeof(*u));
	u->port = 6379;
	if (!url || strlen(url) > 1024)
		return cm_errf(err, "Redis URL: missing or longer than 1024 bytes");
	if (strncmp(url, "redis://", 8) == 0) {
		rc = parse_tcp(url + 8, u, err);
	} else if (strncmp(url, "unix://", 7) == 0) {
		u->is_unix = 1;
		rc = parse_unix(url + 7, u, err);
	} else if (strncmp(url, "rediss://", 9) == 0) {
		return cm_errf(err, "Redis URL: TLS (rediss://) is not supported");
	} else {
		return cm_errf(err,
		               "Redis URL: expected redis://[[user]:password@]host[:port][/db] "
		               "or unix:///path[?db=N]");
	}
	if (rc < 0)
		return cm_err_prefix(err, "Redis URL: ");
	make_safe(u);
	return 0;
}

/* Sends one command and checks that its reply is not an error; step names the
 * command for the message, which never includes the arguments (a password). */
static int simple_command(redisContext *c, int argc, const char **argv, const char *step,
                          const char *safe, struct cm_err *err)
{
	redisReply *r = redisCommandArgv(c, argc, argv, NULL);
	int rc = -1;

	if (!r) {
		cm_errc(err, CM_EXIT_UNREACHABLE, "%s: %s: %s", safe, step,
		        c->errstr[0] ? c->errstr : "no reply");
		goto out;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		cm_errc(err,
		        cm_redis_error_transient(r->str, r->len) ? CM_EXIT_UNREACHABLE
		                                                 : CM_EXIT_REFUSED,
		        "%s: %s refused: %.*s", safe, step, (int)(r->len > 200 ? 200 : r->len),
		        r->str);
		goto out;
	}
	rc = 0;
out:
	if (r)
		freeReplyObject(r);
	return rc;
}

/* Connects, authenticates and selects, naming the failed step in err. */
redisContext *cm_redis_connect_url(const struct cm_redis_url *u, struct cm_err *err)
{
	return cm_redis_connect_timed(u, CM_REDIS_CONNECT_MS, CM_REDIS_IO_MS, err);
}

/* Connects with the given timeouts (a server that must answer quickly, as
 * behind an HTTP request, cannot wait the defaults). */
redisContext *cm_redis_connect_timed(const struct cm_redis_url *u, int connect_ms, int io_ms,
                                     struct cm_err *err)
{
	struct timeval ctv = {connect_ms / 1000, (connect_ms % 1000) * 1000};
	struct timeval iotv = {io_ms / 1000, (io_ms % 1000) * 1000};
	redisContext *c;
	char dbs[16];

	if (u->is_unix)
		c = redisConnectUnixWithTimeout(u->path, ctv);
	else
		c = redisConnectWithTimeout(u->host, u->port, ctv);
	if (!c) {
		cm_errc(err, CM_EXIT_SYSTEM, "%s: connect: out of memory", u->safe);
		return NULL;
	}
	if (c->err) {
		cm_errc(err, CM_EXIT_UNREACHABLE, "%s: connect: %s", u->safe, c->errstr);
		goto fail;
	}
	if (redisSetTimeout(c, iotv) != REDIS_OK) {
		cm_errc(err, CM_EXIT_UNREACHABLE, "%s: setting the socket timeout: %s", u->safe,
		        strerror(errno));
		goto fail;
	}
	if (!u->is_unix)
		redisEnableKeepAlive(c);
	if (u->pass[0]) {
		/* AUTH user password for an ACL user, AUTH password otherwise. */
		const char *argv[3] = {"AUTH", u->user, u->pass};
		int argc = 3;

		if (!u->user[0]) {
			argv[1] = u->pass;
			argc = 2;
		}
		if (simple_command(c, argc, argv, "AUTH", u->safe, err) < 0)
			goto fail;
	}
	if (u->db) {
		snprintf(dbs, sizeof(dbs), "%d", u->db);
		if (simple_command(c, 2, (const char *[]){"SELECT", dbs}, "SELECT", u->safe, err) <
		    0)
			goto fail;
	}
	return c;
fail:
	redisFree(c);
	return NULL;
}

/* Parses the URL, then connects: the one call every tool makes. */
redisContext *cm_redis_connect(const char *url, struct cm_err *err)
{
	struct cm_redis_url u;

	if (cm_redis_url_parse(url, &u, err) < 0) {
		if (err)
			err->code = CM_EXIT_USAGE;
		return NULL;
	}
	return cm_redis_connect_url(&u, err);
}

/* The default reply reader of cm_redis_dead_letter. */
static int get_blocking(void *ctx, redisContext *c, redisReply **reply, struct cm_err *err)
{
	(void)ctx;
	if (redisGetReply(c, (void **)reply) == REDIS_OK && *reply)
		return REDIS_OK;
	cm_errf(err, "%s", c->errstr[0] ? c->errstr : "connection lost");
	return REDIS_ERR;
}

/* The code of a refusal: worth retrying (CM_EXIT_UNREACHABLE, the server is
 * busy or loading) or not (CM_EXIT_REFUSED). */
static int refusal_code(const redisReply *r)
{
	return cm_redis_error_transient(r->str, r->len) ? CM_EXIT_UNREACHABLE : CM_EXIT_REFUSED;
}

/* Queues the transaction, then reads its four replies (OK, QUEUED, QUEUED,
 * and EXEC's array of the XADD and XACK results) and checks each. */
int cm_redis_dead_letter(redisContext *c, const struct cm_redis_dead *e, cm_redis_getfn *get,
                         void *ctx, redisReply **refusal, struct cm_err *err)
{
	char dn[24];
	const char *xadd[17] = {"XADD",    e->dead_key, "*",   CM_REDIS_FIELD, e->data, "reason",
	                        e->reason, "id",        e->id, "group",        e->group};
	size_t xlen[17];
	const char *xack[] = {"XACK", e->key, e->group, e->id};
	redisReply *r[4] = {NULL, NULL, NULL, NULL};
	int i, n = 11, rc = CM_REDIS_REFUSED;

	if (refusal)
		*refusal = NULL;
	if (!get)
		get = get_blocking;
	if (e->consumer) {
		xadd[n++] = "consumer";
		xadd[n++] = e->consumer;
	}
	if (e->deliveries > 0) {
		snprintf(dn, sizeof(dn), "%lld", e->deliveries);
		xadd[n++] = "deliveries";
		xadd[n++] = dn;
	}
	for (i = 0; i < n; i++)
		xlen[i] = i == 4 ? e->data_len : strlen(xadd[i]);
	if (redisAppendCommand(c, "MULTI") != REDIS_OK ||
	    redisAppendCommandArgv(c, n, xadd, xlen) != REDIS_OK ||
	    redisAppendCommandArgv(c, 4, xack, NULL) != REDIS_OK ||
	    redisAppendCommand(c, "EXEC") != REDIS_OK) {
		cm_errc(err, CM_EXIT_UNREACHABLE, "dead-lettering %s %s: %s", e->key, e->id,
		        c->errstr);
		return CM_REDIS_IO;
	}
	for (i = 0; i < 4; i++) {
		if (get(ctx, c, &r[i], err) != REDIS_OK) {
			r[i] = NULL;
			cm_err_prefix(err, "dead-lettering %s %s: ", e->key, e->id);
			err->code = CM_EXIT_UNREACHABLE;
			rc = CM_REDIS_IO;
			goto out;
		}
	}
	for (i = 0; i < 4; i++)
		if (r[i]->type == REDIS_REPLY_ERROR) {
			cm_errc(err, refusal_code(r[i]),
			        "dead-lettering %s %s (MULTI/EXEC): %.300s", e->key, e->id,
			        r[i]->str);
			if (refusal) {
				*refusal = r[i];
				r[i] = NULL;
			}
			goto out;
		}
	if (r[3]->type != REDIS_REPLY_ARRAY || r[3]->elements != 2) {
		cm_errc(err, CM_EXIT_REFUSED, "dead-lettering %s %s: unexpected EXEC reply", e->key,
		        e->id);
		goto out;
	}
	for (i = 0; i < 2; i++)
		if (r[3]->element[i]->type == REDIS_REPLY_ERROR) {
			cm_errc(err, refusal_code(r[3]->element[i]), "dead-lettering %s %s: %.300s",
			        e->key, e->id, r[3]->element[i]->str);
			goto out;
		}
	rc = 0;
out:
	for (i = 0; i < 4; i++)
		if (r[i])
			freeReplyObject(r[i]);
	return rc;
}

/* Sends the XACK commands of all chunks before reading a reply (one round
 * trip however many ids), then reads every reply, so that the connection is
 * left with nothing outstanding even when one was refused. */
int cm_redis_xack(redisContext *c, const char *key, const char *group, const char *const *ids,
                  const size_t *lens, size_t n, cm_redis_getfn *get, void *ctx, long long *acked,
                  redisReply **refusal, struct cm_err *err)
{
	size_t chunk = n < CM_REDIS_XACK_CHUNK ? n : CM_REDIS_XACK_CHUNK;
	const char **argv = NULL;
	size_t *argl = NULL, i, sent = 0, k;
	redisReply *r;
	int rc = CM_REDIS_IO;

	if (refusal)
		*refusal = NULL;
	if (acked)
		*acked = 0;
	if (n == 0)
		return 0;
	if (!get)
		get = get_blocking;
	argv = malloc((chunk + 3) * sizeof(*argv));
	argl = malloc((chunk + 3) * sizeof(*argl));
	if (!argv || !argl) {
		cm_errc(err, CM_EXIT_SYSTEM, "XACK %s %s: out of memory", key, group);
		goto out;
	}
	argv[0] = "XACK";
	argv[1] = key;
	argv[2] = group;
	for (k = 0; k < 3; k++)
		argl[k] = strlen(argv[k]);
	for (i = 0; i < n; sent++) {
		size_t argc = 3;

		for (; i < n && argc < chunk + 3; i++, argc++) {
			argv[argc] = ids[i];
			argl[argc] = lens ? lens[i] : strlen(ids[i]);
		}
		if (redisAppendCommandArgv(c, (int)argc, argv, argl) != REDIS_OK) {
			cm_errc(err, CM_EXIT_UNREACHABLE, "XACK %s %s: %s", key, group, c->errstr);
			goto out;
		}
	}
	rc = 0;
	for (k = 0; k < sent; k++) {
		if (get(ctx, c, &r, err) != REDIS_OK) {
			cm_err_prefix(err, "XACK %s %s: ", key, group);
			err->code = CM_EXIT_UNREACHABLE;
			rc = CM_REDIS_IO;
			if (refusal && *refusal) {
				freeReplyObject(*refusal);
				*refusal = NULL;
			}
			goto out;
		}
		if (r->type == REDIS_REPLY_ERROR && rc == 0) {
			cm_errc(err, refusal_code(r), "Redis refused XACK %s %s: %.300s", key,
			        group, r->str);
			rc = CM_REDIS_REFUSED;
			if (refusal) {
				*refusal = r;
				continue;
			}
		} else if (r->type == REDIS_REPLY_INTEGER && acked) {
			*acked += r->integer;
		}
		freeReplyObject(r);
	}
out:
	free(argv);
	free(argl);
	return rc;
}

/* Retrying these errors after a pause can succeed without anyone acting: the
 * server is starting, busy, short of memory or failing over. */
int cm_redis_error_transient(const char *msg, size_t len)
{
	static const char *const codes[] = {"LOADING",     "BUSY",       "TRYAGAIN",
	                                    "OOM",         "READONLY",   "MASTERDOWN",
	                                    "CLUSTERDOWN", "NOREPLICAS", "MISCONF"};
	size_t i, n;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		n = strlen(codes[i]);
		if (len >= n && memcmp(msg, codes[i], n) == 0 && (len == n || msg[n] == ' '))
			return 1;
	}
	return 0;
}

/* Parses an unsigned 64-bit decimal s[0..n); 0 or -1. */
static int parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > 20)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* Writes each member but the stale id, as cm_json_write writes values. */
int cm_stream_event_compact(const struct cm_jdoc *d, struct cm_buf *out)
{
	uint32_t t, first = 1;
	int rc = 0;

	rc |= cm_buf_addc(out, '{');
	for (t = 1; t < d->tok[0].next; t = d->tok[t + 1].next) {
		if (cm_json_str_eq(d, t, "_stream_id", 10))
			continue;
		if (!first)
			rc |= cm_buf_addc(out, ',');
		first = 0;
		rc |= cm_buf_addc(out, '"');
		rc |= cm_buf_add(out, d->src + d->tok[t].off, d->tok[t].len);
		rc |= cm_buf_adds(out, "\":");
		rc |= cm_json_write(d, t + 1, out);
	}
	rc |= cm_buf_addc(out, '}');
	return rc ? -1 : 0;
}

/* Stream ids come back from Redis as text; comparing them needs numbers. */
int cm_stream_id_parse(const char *s, size_t n, struct cm_stream_id *id)
{
	const char *dash = memchr(s, '-', n);

	if (!dash) {
		id->seq = 0;
		return parse_u64(s, n, &id->ms);
	}
	if (parse_u64(s, (size_t)(dash - s), &id->ms) < 0)
		return -1;
	return parse_u64(dash + 1, n - (size_t)(dash - s) - 1, &id->seq);
}

/* Formats an id the way Redis writes it. */
size_t cm_stream_id_format(const struct cm_stream_id *id, char *out)
{
	int n = snprintf(out, CM_STREAM_ID_MAX, "%" PRIu64 "-%" PRIu64, id->ms, id->seq);

	return n > 0 ? (size_t)n : 0;
}

/* Orders ids by time, then sequence. */
int cm_stream_id_cmp(const struct cm_stream_id *a, const struct cm_stream_id *b)
{
	if (a->ms != b->ms)
		return a->ms < b->ms ? -1 : 1;
	if (a->seq != b->seq)
		return a->seq < b->seq ? -1 : 1;
	return 0;
}

/* The id right after id (the first one a group has not been given yet). */
static void id_next(struct cm_stream_id *id)
{
	if (id->seq == UINT64_MAX) {
		id->ms++;
		id->seq = 0;
	} else {
		id->seq++;
	}
}

/* Reads one group's pending count and last-delivered-id from its XINFO GROUPS
 * entry (a flat name/value array). */
static int group_info(const redisReply *g, const char **name, long long *pending,
                      struct cm_stream_id *last, struct cm_err *err)
{
	size_t i;
	int have_last = 0;

	*name = NULL;
	*pending = 0;
	if (g->type != REDIS_REPLY_ARRAY || g->elements % 2)
		return cm_errf(err, "XINFO GROUPS: unexpected reply shape");
	for (i = 0; i + 1 < g->elements; i += 2) {
		const redisReply *k = g->element[i], *v = g->element[i + 1];

		if (k->type != REDIS_REPLY_STRING && k->type != REDIS_REPLY_STATUS)
			continue;
		if (strcmp(k->str, "name") == 0 && v->type == REDIS_REPLY_STRING) {
			*name = v->str;
		} else if (strcmp(k->str, "pending") == 0 && v->type == REDIS_REPLY_INTEGER) {
			*pending = v->integer;
		} else if (strcmp(k->str, "last-delivered-id") == 0 &&
		           v->type == REDIS_REPLY_STRING) {
			if (cm_stream_id_parse(v->str, v->len, last) < 0)
				return cm_errf(err, "XINFO GROUPS: bad last-delivered-id '%.40s'",
				               v->str);
			have_last = 1;
		}
	}
	if (!*name || !have_last)
		return cm_errf(err, "XINFO GROUPS: a group without name or last-delivered-id");
	return 0;
}

/* The oldest pending id of one group, from the XPENDING summary. */
static int group_oldest_pending(redisContext *c, const char *key, const char *group,
                                struct cm_stream_id *oldest, int *found, struct cm_err *err)
{
	redisReply *r = redisCommandArgv(c, 3, (const char *[]){"XPENDING", key, group}, NULL);
	int rc = -1;

	*found = 0;
	if (!r) {
		cm_errf(err, "XPENDING %s %s: %s", key, group, c->errstr);
		goto out;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		cm_errf(err, "XPENDING %s %s: %.200s", key, group, r->str);
		goto out;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
		cm_errf(err, "XPENDING %s %s: unexpected reply shape", key, group);
		goto out;
	}
	if (r->element[1]->type == REDIS_REPLY_STRING) {
		if (cm_stream_id_parse(r->element[1]->str, r->element[1]->len, oldest) < 0) {
			cm_errf(err, "XPENDING %s %s: bad id '%.40s'", key, group,
			        r->element[1]->str);
			goto out;
		}
		*found = 1;
	}
	rc = 0;
out:
	if (r)
		freeReplyObject(r);
	return rc;
}

/* Retention must never drop an entry that some group still needs, so the
 * boundary is the minimum over all groups of what each still needs. */
int cm_redis_safe_minid(redisContext *c, const char *key, struct cm_stream_id *minid,
                        struct cm_err *err)
{
	redisReply *r = redisCommandArgv(c, 3, (const char *[]){"XINFO", "GROUPS", key}, NULL);
	int rc = -1, have = 0;
	size_t i;

	if (!r) {
		cm_errf(err, "XINFO GROUPS %s: %s", key, c->errstr);
		goto out;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		if (strstr(r->str, "no such key")) {
			rc = 0;
			goto out;
		}
		cm_errf(err, "XINFO GROUPS %s: %.200s", key, r->str);
		goto out;
	}
	if (r->type != REDIS_REPLY_ARRAY) {
		cm_errf(err, "XINFO GROUPS %s: unexpected reply shape", key);
		goto out;
	}
	for (i = 0; i < r->elements; i++) {
		struct cm_stream_id need, oldest;
		const char *name;
		long long pending;
		int found;

		if (group_info(r->element[i], &name, &pending, &need, err) < 0)
			goto out;
		id_next(&need);
		if (pending > 0) {
			if (group_oldest_pending(c, key, name, &oldest, &found, err) < 0)
				goto out;
			if (found && cm_stream_id_cmp(&oldest, &need) < 0)
				need = oldest;
		}
		if (!have || cm_stream_id_cmp(&need, minid) < 0)
			*minid = need;
		have = 1;
	}
	rc = have;
out:
	if (r)
		freeReplyObject(r);
	return rc;
}

/* Trims exactly below the safe boundary: every entry removed was acknowledged
 * (or skipped) by every group. */
int cm_redis_trim_safe(redisContext *c, const char *key, long long *trimmed, struct cm_err *err)
{
	struct cm_stream_id minid = {0, 0};
	char ids[CM_STREAM_ID_MAX];
	redisReply *r = NULL;
	int rc = -1, have;

	if (trimmed)
		*trimmed = 0;
	have = cm_redis_safe_minid(c, key, &minid, err);
	if (have <= 0)
		return have;
	cm_stream_id_format(&minid, ids);
	r = redisCommandArgv(c, 4, (const char *[]){"XTRIM", key, "MINID", ids}, NULL);
	if (!r) {
		cm_errf(err, "XTRIM %s MINID %s: %s", key, ids, c->errstr);
		goto out;
	}
	if (r->type != REDIS_REPLY_INTEGER) {
		cm_errf(err, "XTRIM %s MINID %s: %.200s", key, ids,
		        r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		goto out;
	}
	if (trimmed)
		*trimmed = r->integer;
	rc = 0;
out:
	if (r)
		freeReplyObject(r);
	return rc;
}
