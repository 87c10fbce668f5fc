/* event.h - the canonical event of CONTRACT section 1.1: normalising the
 * accepted input shapes into it, and checking values that claim to be in it.
 *
 * Accepted shapes (cm_event_normalize):
 *   canonical    event_id, event_type, user_id, occurred_at, properties and
 *                any "_"-prefixed keys; any other key is an error.
 *   Segment      a "track" call: "type":"track", or "event" together with
 *                "messageId"/"userId"/"anonymousId" and no "event_type".
 *                messageId -> event_id, event -> event_type, userId (else
 *                anonymousId) -> user_id, timestamp -> occurred_at,
 *                properties -> properties; Segment's other keys are ignored.
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

#define CM_EVENT_ID_MAX   128 /* bytes of event_id */
#define CM_EVENT_TYPE_MAX 64  /* bytes of event_type */
#define CM_EVENT_USER_MAX 128 /* bytes of user_id */
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

/* Checks that the value at root is already a canonical event: an object with
 * valid event_id, event_type, user_id, occurred_at (any RFC 3339 time) and
 * properties (an object); other keys only "_"-prefixed ones and "matches" (an
 * array, as cm-match adds). */
int cm_event_check(const struct cm_jdoc *d, uint32_t root, struct cm_err *err);
/* Same, also filling ref (may be NULL). */
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
};

/* Validates parts with the same rules and messages as cm_event_normalize
 * and appends the canonical line to out; strings must be UTF-8. */
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

#endif
