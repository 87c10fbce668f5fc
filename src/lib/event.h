/* event.h - the one definition of a valid event (CONTRACT section 1.1) and
 * of a match line (1.3): normalising the accepted input shapes into the
 * canonical event, validating lines that claim to be events or match lines,
 * and building events from CSV parts. Every tool's entry path goes through
 * these functions, so that a line one tool accepts every tool accepts, and
 * cm-store can store it in PostgreSQL.
 *
 * The rules, everywhere:
 *   event_id     a string of 1-128 bytes once decoded
 *   event_type   a string of 1-64 bytes of [A-Za-z0-9_.:-] once decoded
 *   user_id      a string of 1-128 bytes once decoded
 *   occurred_at  an RFC 3339 time (any offset) whose UTC time lies in the years
 *                0001-9999, the range of the canonical form ("Z", four-digit
 *                years); 0001-01-01T00:00:00+01:00 is refused (year 0000 UTC)
 *   properties   an object
 *   matches      (events from cm-match) an array of objects, each with
 *                "campaign_id" (an integer 1 to 2^63-1 in plain digits) and
 *                optionally "outcome" ("matched", "holdout", "capped"),
 *                "variant" (a string of 1-128 bytes) and "limit" (the
 *                campaign's limit, CONTRACT 1.6: an object with "per_user",
 *                an integer 1 to 2^31-1 in plain digits, and "cooldown", an
 *                ISO 8601 duration above zero as duration.h parses it, at
 *                least one of the two and nothing else), nothing else
 *   other keys   only "_"-prefixed ones (metadata, passed through)
 * and, in every string, key and number anywhere in the line, nothing
 * PostgreSQL's text and jsonb refuse: no \u0000 (text cannot hold NUL), no
 * unpaired surrogate escape (\uD800 without a following \uDC00-\uDFFF, or a
 * lone \uDC00-\uDFFF: jsonb refuses "Unicode low surrogate must follow a
 * high surrogate"), and no number outside numeric's range: at most 131072
 * digits before the decimal point and 16383 after it once the exponent is
 * applied (1e131071 and 1e-16383 are stored, 1e131072 and 1e-16384 or
 * 1.5e-16383 are refused; zero obeys the scale limit too: 0e-16384 is
 * refused), and an exponent below 1073741823 either way. The parser notes the
 * rare strings and numbers that need a closer look (CM_JF_*), so that a
 * document without them costs nothing more to check.
 *
 * Accepted shapes (cm_event_normalize):
 *   canonical    event_id, event_type, user_id, occurred_at, properties and
 *                any "_"-prefixed keys; any other key is an error.
 *   Segment      a call of Segment's Tracking API: "type" one of track,
 *                identify, page, screen, group, alias; or, without a
 *                "type", "event" together with "messageId"/"userId"/
 *                "anonymousId" and no "event_type" (a track). messageId ->
 *                event_id, userId (else anonymousId) -> user_id, timestamp
 *                -> occurred_at, and by call:
 *                  track     event -> event_type, mapped as Segment's
 *                            warehouses name tables: ASCII letters
 *                            lowercased, each space '_' ("Order Completed"
 *                            -> "order_completed"); the result must be a
 *                            valid event_type, and not "identify";
 *                            properties -> properties
 *                  identify  event_type "identify", traits -> properties
 *                            (CONTRACT 1.5)
 *                  page      "page_view", properties with the call's name
 *                  screen    and category added ("screen_view")
 *                  group     "group", {"groupId":..,"traits":{..}}
 *                  alias     "alias", {"previousId":..}
 *                Segment's other keys (context, sentAt, writeKey, ...) are
 *                ignored.
 *   CloudEvents  structured 1.0 JSON ("specversion":"1.0"): id, type,
 *                subject -> user_id, time, data (an object) -> properties;
 *                other attributes are ignored.
 * In every shape a null optional value counts as absent, and "_"-prefixed
 * top-level keys are copied verbatim after the canonical keys.
 *
 * The canonical line is compact JSON with the keys in the order event_id,
 * event_type, user_id, occurred_at, properties, then the "_" keys. A missing
 * event_id is derived from the record as read (cm_event_derive_id), so that
 * importing the same file twice yields the same ids; a missing occurred_at is
 * the time of ingestion (now_ms). Nothing here allocates per call except the
 * growth of the caller's output buffer (and a scratch buffer for the rare
 * escaped key or value). Error messages name the input field:
 *   field 'occurred_at': expected an RFC 3339 time, got "yesterday"
 */
#ifndef CM_EVENT_H
#define CM_EVENT_H

#include <stddef.h>
#include <stdint.h>

struct cm_jdoc;
struct cm_buf;
struct cm_err;

#define CM_EVENT_ID_MAX      128 /* bytes of event_id */
#define CM_EVENT_TYPE_MAX    64  /* bytes of event_type */
#define CM_EVENT_USER_MAX    128 /* bytes of user_id */
#define CM_EVENT_VARIANT_MAX 128 /* bytes of a match's variant */
/* The longest line cm-ingest writes by default (its --max-line), and the
 * defaults of the tools after it, chosen so that nothing cm-ingest accepts
 * is refused downstream for its length: cm-publish reads what cm-ingest
 * writes; cm-consume adds "_stream_id" (under 64 bytes), so cm-match reads
 * twice that; cm-match adds "matches" (about 35 bytes per matching campaign,
 * more with outcome and variant), so cm-store reads 16 MiB, room for the
 * longest event and some 200,000 matches. */
#define CM_EVENT_LINE_MAX ((size_t)1 << 20)
#define CM_MATCH_LINE_MAX ((size_t)2 << 20)
#define CM_STORE_LINE_MAX ((size_t)16 << 20)
/* now_ms value asking for the clock to be read only when a time is missing. */
#define CM_EVENT_NOW INT64_MIN
/* Length of a derived id: "ev-" and 32 hex digits of BLAKE2b-128. */
#define CM_EVENT_DERIVED_LEN 35

/* Where the event_id and the time of a normalised or checked event are, for
 * callers that need them without parsing again (cm-httpd's reply, a
 * publisher's log). For cm_event_normalize_ref the offsets are into out->data;
 * for cm_event_check_ref into d->src. The range is the JSON string literal,
 * quotes included. */
struct cm_event_ref {
	size_t id_off, id_len;
	int64_t occurred_ms;
};

/* Appends to out the canonical line (no newline) for the object at root, which
 * may be a canonical event, a Segment track call or a CloudEvent;
 * raw[0..rawlen) is what a derived event_id is hashed from (the record as
 * read); now_ms is the time of ingestion for a missing occurred_at
 * (CM_EVENT_NOW: read the clock only then). On error out is left as it was
 * and err says which field and what was expected. */
int cm_event_normalize(const struct cm_jdoc *d, uint32_t root, const char *raw, size_t rawlen,
                       int64_t now_ms, struct cm_buf *out, struct cm_err *err);
/* Same, also filling ref (may be NULL). */
int cm_event_normalize_ref(const struct cm_jdoc *d, uint32_t root, const char *raw, size_t rawlen,
                           int64_t now_ms, struct cm_buf *out, struct cm_event_ref *ref,
                           struct cm_err *err);

/* The Segment calls, for a record whose call is known from where it came
 * (cm-httpd's POST /v1/track and friends) rather than from its keys. */
enum cm_seg_call {
	CM_SEG_ANY = 0, /* the one its "type" names, which is required (a batch item) */
	CM_SEG_TRACK,
	CM_SEG_IDENTIFY,
	CM_SEG_PAGE,
	CM_SEG_SCREEN,
	CM_SEG_GROUP,
	CM_SEG_ALIAS,
};

/* cm_event_normalize_ref for a record that is Segment call `call` whatever
 * its keys: a "type" in it must name that call (CM_SEG_ANY: some call). A
 * derived event_id of a record without "type" also hashes the call's name
 * (but for track, a record's meaning without one), so that one body sent
 * as two calls gets two ids. */
int cm_event_normalize_segment(const struct cm_jdoc *d, uint32_t root, int call, const char *raw,
                               size_t rawlen, int64_t now_ms, struct cm_buf *out,
                               struct cm_event_ref *ref, struct cm_err *err);

/* What a validator found, so that no tool walks the line again: the value
 * token of each member (CM_JNONE when absent; a member's key token is always
 * its value token minus one) and the values decoded. Filled by
 * cm_event_validate (an event: props always, matches when there), by
 * cm_match_validate (a match line: campaign, outcome and variant) or by
 * cm_record_validate (either). Points into the document validated. */
struct cm_event_view {
	uint32_t root;
	uint32_t id, type, user, time;              /* event_id, event_type, user_id, occurred_at */
	uint32_t props, matches;                    /* events */
	uint32_t campaign, outcome, variant, limit; /* match lines */
	int is_match;                               /* a match line (CONTRACT 1.3), not an event */
	int has_meta;                               /* some top-level key starts with '_' */
	int64_t occurred_ms;
	int64_t campaign_id;                   /* match lines */
	size_t type_len;                       /* the decoded event_type: */
	char type_text[CM_EVENT_TYPE_MAX + 1]; /* NUL-terminated */
};

/* Checks that the value at root is a canonical event by the rules above
 * (every member required, properties included) and fills v. Returns 0, or -1
 * with err naming the field: "field 'properties.items[2].note': must not
 * contain NUL (\u0000), got ...". */
int cm_event_validate(const struct cm_jdoc *d, uint32_t root, struct cm_event_view *v,
                      struct cm_err *err);
/* Checks that the value at root is a match line (CONTRACT 1.3): campaign_id,
 * event_id, user_id, event_type and occurred_at by the rules above, outcome,
 * variant and limit optional (as in a match object), "_" keys, nothing
 * else. */
int cm_match_validate(const struct cm_jdoc *d, uint32_t root, struct cm_event_view *v,
                      struct cm_err *err);
/* Either: a match line when root has a top-level "campaign_id", else an
 * event (what cm-store takes). */
int cm_record_validate(const struct cm_jdoc *d, uint32_t root, struct cm_event_view *v,
                       struct cm_err *err);

/* A match's limit: 0 where a part is not set. */
struct cm_match_limit {
	int64_t per_user;    /* 1 to 2^31-1 */
	int64_t cooldown_ms; /* above 0 */
};

/* Reads the value t of a match's "limit" (a match object's, or a match
 * line's v->limit) into lim, with the rule above (a validated line always
 * passes). */
int cm_match_limit_read(const struct cm_jdoc *d, uint32_t t, struct cm_match_limit *lim,
                        struct cm_err *err);

/* The entry path of the tools that read events (cm-publish, cm-consume):
 * parses line[0..len) into d ("invalid JSON: byte 3: ..." on failure) and
 * validates it as an event. */
int cm_event_parse(struct cm_jdoc *d, const char *line, size_t len, struct cm_event_view *v,
                   struct cm_err *err);
/* cm-store's: the same with cm_record_validate. */
int cm_record_parse(struct cm_jdoc *d, const char *line, size_t len, struct cm_event_view *v,
                    struct cm_err *err);

/* cm_event_validate for callers that need only the verdict (and ref, which
 * may be NULL). */
int cm_event_check(const struct cm_jdoc *d, uint32_t root, struct cm_err *err);
int cm_event_check_ref(const struct cm_jdoc *d, uint32_t root, struct cm_event_ref *ref,
                       struct cm_err *err);

/* An event from parts that are already decoded bytes (a CSV row). */
struct cm_event_parts {
	const char *id; /* NULL: derive from raw */
	size_t id_len;
	const char *type; /* NULL: missing (an error) */
	size_t type_len;
	const char *user; /* NULL: missing (an error) */
	size_t user_len;
	const char *time; /* NULL: now_ms */
	size_t time_len;
	const char *props; /* a compact JSON object text; NULL: {} */
	size_t props_len;
	struct cm_jdoc *doc; /* for checking props; NULL: a document of its own */
};

/* Validates parts with the same rules and messages as cm_event_normalize
 * (the properties text too: one object, everything in it storable) and
 * appends the canonical line to out; strings must be UTF-8. */
int cm_event_build(const struct cm_event_parts *p, const char *raw, size_t rawlen, int64_t now_ms,
                   struct cm_buf *out, struct cm_err *err);

/* Writes the derived id of raw[0..len) ("ev-" + 32 lowercase hex digits of
 * its BLAKE2b-128 hash) and a NUL into out. */
void cm_event_derive_id(const void *raw, size_t len, char out[CM_EVENT_DERIVED_LEN + 1]);

/* True when s[0..n) is a valid event_type: 1-64 bytes of [A-Za-z0-9_.:-]. */
int cm_event_type_ok(const char *s, size_t n);

/* Appends s[0..n) as a JSON string literal, escaping what JSON requires;
 * returns -1 (with out possibly extended) when s is not valid UTF-8. */
int cm_event_put_str(struct cm_buf *out, const char *s, size_t n);

/* Length of the longest prefix of s[0..n) that is valid UTF-8. */
size_t cm_utf8_valid_prefix(const char *s, size_t n);

/* s[0..n) for a message: at most 40 bytes cut at a UTF-8 boundary, "..."
 * when cut, control bytes shown as '?', in double quotes when quote is set;
 * written into b (bn >= 52, else "?" is returned) and returned. */
const char *cm_event_snippet(const char *s, size_t n, int quote, char *b, size_t bn);

#endif
