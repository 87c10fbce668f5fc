/* api_segment.c - Segment's HTTP Tracking API, so that Segment's own SDKs
 * (analytics-node, analytics-python, ...) and plain HTTP clients send here:
 * POST /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group, /v1/alias
 * and /v1/batch with Segment's bodies and answers.
 *
 * Who: a write key (cm-admin key add), as the user name of HTTP Basic
 * credentials with an empty password (what the SDKs send), else as
 * "writeKey" in the body; nothing else, a user's token neither.
 *
 * What: each call is normalised by event.h's cm_event_normalize_segment, the
 * code cm-ingest uses for the same records (messageId is the event_id, so
 * an SDK's retry is a no-op at the sink), and published all together
 * through the publisher POST /events uses: a batch is all or nothing.
 *
 * Answers, as Segment's: 200 {"success":true}; 400 {"success":false,
 * "message":...} saying exactly what is wrong for a body that is not JSON,
 * over Segment's limits (32 KB a call and an event of a batch, 500 KB and
 * 2500 events a batch) or not a valid call (the SDKs never retry a 400);
 * 401 for no or an unknown write key; 503 with Retry-After when Redis (or,
 * for a key not looked up lately, PostgreSQL) is down, which the SDKs retry
 * with backoff. */
#include "api.h"

#include "err.h"
#include "event.h"
#include "json.h"
#include "timefmt.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define CALL_MAX        32768  /* bytes of one call, and of each event of a batch */
#define BATCH_MAX       512000 /* bytes of a batch (500 KB) */
#define BATCH_EVENTS    2500   /* events of a batch */
#define BASIC_MAX       192    /* decoded bytes of Basic credentials we look at */
#define MSG_MAX         600    /* a message: the validator's and a prefix */
#define WWW_AUTH_SCHEME "Basic realm=\"cm-httpd\""

void cm_api_segment_error(struct cm_http_req *r, int status, const char *message)
{
	struct cm_buf b = CM_BUF_INIT;

	if (cm_buf_adds(&b, "{\"success\":false,\"message\":") < 0 ||
	    cm_buf_add_jstr(&b, message, strlen(message)) < 0 || cm_buf_addc(&b, '}') < 0) {
		cm_buf_release(&b);
		cm_http_detail(r, 500, "Internal Server Error");
		return;
	}
	cm_http_reply(r, status, "application/json", &b);
}

/* A 400 for a body that is not a valid call, counted as n events refused. */
static void refuse(struct cm_api_call *c, uint64_t n, const char *message)
{
	cm_api_segment_error(c->r, 400, message);
	cm_api_events_rejected(c->api, CM_API_SRC_SEGMENT, n);
}

/* A 401 with the challenge for the credentials Segment's SDKs send. */
static void no_key(struct cm_api_call *c, const char *message)
{
	cm_api_segment_error(c->r, 401, message);
	cm_http_add_header(c->r, "WWW-Authenticate", WWW_AUTH_SCHEME);
}

/* The limit of a body: a batch's, or a call's. */
static size_t body_max(int call)
{
	return call == CM_SEG_ANY ? BATCH_MAX : CALL_MAX;
}

/* Says what the limit of a body is, for a call or a batch. */
static void too_large(char *msg, size_t size, int call)
{
	snprintf(msg, size,
	         "request body too large: a %s takes at most %zu bytes (%s, Segment's limit)",
	         call == CM_SEG_ANY ? "batch" : "call", body_max(call),
	         call == CM_SEG_ANY ? "500 KB" : "32 KB");
}

int cm_api_segment_too_big(struct cm_http_req *r)
{
	struct cm_api *a = r->app;
	int call = strcmp(r->route, "/v1/batch") == 0 ? CM_SEG_ANY : CM_SEG_TRACK;
	char msg[200];

	if (a->max_body < body_max(call))
		snprintf(msg, sizeof(msg),
		         "request body too large: this server takes at most %zu bytes (cm-httpd "
		         "--max-body)",
		         a->max_body);
	else
		too_large(msg, sizeof(msg), call);
	cm_api_segment_error(r, 400, msg);
	cm_api_events_rejected(a, CM_API_SRC_SEGMENT, 1);
	return 1;
}

/* Reads the write key from HTTP Basic credentials: the user name, with an
 * empty password (or none: Segment takes a key without the colon too);
 * key gets the decoded bytes (BASIC_MAX + 1). 0, or -1 after the 401. */
static int basic_key(struct cm_api_call *c, const char *hdr, char *key, size_t *len)
{
	const char *b64, *colon;
	size_t n, bin;

	while (*hdr == ' ')
		hdr++;
	if (strncasecmp(hdr, "Basic ", 6) != 0) {
		no_key(c, "Authorization: expected Basic credentials with the write key as the "
		          "user name and an empty password (a user's token is not taken here)");
		return -1;
	}
	for (b64 = hdr + 6; *b64 == ' '; b64++)
		;
	for (n = strlen(b64); n && b64[n - 1] == ' '; n--)
		;
	if (n > 4 * ((BASIC_MAX + 2) / 3) ||
	    sodium_base642bin((unsigned char *)key, BASIC_MAX, b64, n, NULL, &bin, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0) {
		no_key(c, "Authorization: the Basic credentials are not base64 of "
		          "\"WRITE_KEY:\"");
		return -1;
	}
	colon = memchr(key, ':', bin);
	if (colon && colon + 1 < key + bin) {
		no_key(c, "Authorization: the password must be empty; the write key is the "
		          "user name");
		return -1;
	}
	*len = colon ? (size_t)(colon - key) : bin;
	key[*len] = 0;
	return 0;
}

/* Finds the caller's write key: the Authorization header's, else the
 * body's "writeKey" (of the object at token 0 of d), and authenticates
 * it (cm_api_key: 0 known, 1 suspended for a lookup, -1 answered). */
static int segment_auth(struct cm_api_call *c, const struct cm_jdoc *d)
{
	const char *hdr = cm_http_header(c->r, "Authorization");
	char key[BASIC_MAX + 1];
	struct cm_buf scratch = CM_BUF_INIT;
	const char *k;
	size_t len;
	uint32_t t;
	int rc;

	if (hdr) {
		if (basic_key(c, hdr, key, &len) < 0)
			return -1;
		rc = cm_api_key(c, key, len);
		sodium_memzero(key, sizeof(key));
		return rc;
	}
	t = cm_json_get(d, 0, "writeKey", 8);
	if (t == CM_JNONE || d->tok[t].type != CM_JSTR) {
		no_key(c, "no write key: send it as the HTTP Basic user name with an empty "
		          "password, or as \"writeKey\" in the body");
		return -1;
	}
	k = cm_json_str(d, t, &scratch, &len);
	rc = k ? cm_api_key(c, k, len) : -1;
	if (!k)
		cm_http_detail(c->r, 500, "Internal Server Error");
	cm_buf_release(&scratch);
	return rc;
}

/* The 200 Segment sends for every call it took. */
static void success(struct cm_api_post *ps)
{
	static const char ok[] = "{\"success\":true}";

	cm_http_reply_text(ps->c->r, 200, "application/json", ok, sizeof(ok) - 1);
}

/* Adds the call at token t (raw: its text) to ps, or refuses the request
 * (400) naming the batch element idx (-1: the body is the call); -1 then. */
static int add_call(struct cm_api_call *c, struct cm_api_post *ps, const struct cm_jdoc *d,
                    uint32_t t, int call, long idx, uint64_t nev, int64_t now)
{
	const char *raw = c->r->body.data + d->tok[t].off;
	size_t rawlen = d->tok[t].len;
	struct cm_err err;
	char msg[MSG_MAX];

	if (idx >= 0 && d->tok[t].type == CM_JOBJ && rawlen > CALL_MAX) {
		snprintf(msg, sizeof(msg),
		         "batch[%ld]: the event is %zu bytes; an event takes at most %d bytes "
		         "(32 KB, Segment's limit)",
		         idx, rawlen, CALL_MAX);
		refuse(c, nev, msg);
		return -1;
	}
	if (cm_api_post_add(ps, d, t, raw, rawlen, call, now, &err) == 0)
		return 0;
	if (err.code == CM_EXIT_SYSTEM) {
		cm_http_detail(c->r, 500, "Internal Server Error");
		return -1;
	}
	if (idx >= 0)
		snprintf(msg, sizeof(msg), "batch[%ld]: %s", idx, err.msg);
	else
		snprintf(msg, sizeof(msg), "%s", err.msg);
	refuse(c, nev, msg);
	return -1;
}

/* One route: the body checked and parsed, the key checked, every call
 * normalised, all published together (call CM_SEG_ANY: a batch). */
static void segment_post(struct cm_api_call *c, int call)
{
	struct cm_http_req *r = c->r;
	struct cm_jdoc *d = cm_api_thread_doc();
	struct cm_api_post *ps;
	struct cm_err err;
	char msg[MSG_MAX];
	int64_t now = cm_time_now();
	uint32_t arr, t, i, n;

	if (r->body.len > body_max(call)) {
		too_large(msg, sizeof(msg), call);
		snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), "; this one is %zu bytes",
		         r->body.len);
		refuse(c, 1, msg);
		return;
	}
	if (r->body.len == 0) {
		refuse(c, 1, "request body is empty: expected a JSON object");
		return;
	}
	if (cm_json_parse(d, r->body.data, r->body.len, &err) < 0) {
		snprintf(msg, sizeof(msg), "invalid JSON: %s", err.msg);
		refuse(c, 1, msg);
		return;
	}
	if (d->tok[0].type != CM_JOBJ) {
		refuse(c, 1,
		       d->tok[0].type == CM_JARR
		           ? "expected a JSON object, got an array (send several calls "
		             "to /v1/batch as {\"batch\":[...]})"
		           : "expected a JSON object");
		return;
	}
	if (c->role != CM_ROLE_KEY && segment_auth(c, d) != 0)
		return;
	ps = cm_api_post_new(c, CM_API_SRC_SEGMENT, success);
	if (!ps) {
		cm_http_detail(r, 500, "Internal Server Error");
		return;
	}
	if (call != CM_SEG_ANY) {
		if (add_call(c, ps, d, 0, call, -1, 1, now) < 0)
			return;
		cm_api_post_publish(ps);
		return;
	}
	arr = cm_json_get(d, 0, "batch", 5);
	if (arr == CM_JNONE || d->tok[arr].type != CM_JARR) {
		refuse(c, 1,
		       arr == CM_JNONE ? "field 'batch': missing (required: an array of calls)"
		                       : "field 'batch': expected an array of calls");
		return;
	}
	n = d->tok[arr].count;
	if (n > BATCH_EVENTS) {
		snprintf(msg, sizeof(msg),
		         "field 'batch': %u events; a batch takes at most %d (Segment's limit)", n,
		         BATCH_EVENTS);
		refuse(c, n, msg);
		return;
	}
	for (i = 0, t = arr + 1; i < n; i++, t = d->tok[t].next)
		if (add_call(c, ps, d, t, CM_SEG_ANY, (long)i, n, now) < 0)
			return;
	cm_api_post_publish(ps);
}

void cm_api_segment_track(struct cm_api_call *c)
{
	segment_post(c, CM_SEG_TRACK);
}

void cm_api_segment_identify(struct cm_api_call *c)
{
	segment_post(c, CM_SEG_IDENTIFY);
}

void cm_api_segment_page(struct cm_api_call *c)
{
	segment_post(c, CM_SEG_PAGE);
}

void cm_api_segment_screen(struct cm_api_call *c)
{
	segment_post(c, CM_SEG_SCREEN);
}

void cm_api_segment_group(struct cm_api_call *c)
{
	segment_post(c, CM_SEG_GROUP);
}

void cm_api_segment_alias(struct cm_api_call *c)
{
	segment_post(c, CM_SEG_ALIAS);
}

void cm_api_segment_batch(struct cm_api_call *c)
{
	segment_post(c, CM_SEG_ANY);
}
