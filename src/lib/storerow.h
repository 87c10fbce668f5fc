/* storerow.h - what cm-store writes for one record that the validator
 * accepted (cm_record_parse: an event with its "matches", or a match line):
 * COPY text rows for the events and matches tables, and, for what is decided
 * in SQL inside the batch's transaction, JSON objects for
 * cm_merge_profiles (identify events: PROFILES.md, 003_profiles.sql) and
 * cm_decide_limits (candidates of limited campaigns: DELIVERY.md,
 * 004_outcomes.sql).
 *
 * A match whose object has no "limit" is a COPY row of matches with its
 * outcome ("matched" when absent) and variant (NULL when absent); one with a
 * limit is a candidate, decided by cm_decide_limits against what is stored,
 * with the outcome it carries as the bucket's verdict. An event whose
 * event_type is "identify" is an events row and a profile merge of its
 * properties (the traits). Nothing here talks to a server. */
#ifndef CM_STOREROW_H
#define CM_STOREROW_H

#include <stddef.h>

#include "buf.h"

struct cm_jdoc;
struct cm_event_view;
struct cm_err;

/* The columns of the COPY rows, in order. */
#define CM_STOREROW_EVENT_COLS "(event_id, event_type, user_id, occurred_at, properties)"
#define CM_STOREROW_MATCH_COLS                                                                     \
	"(campaign_id, event_id, user_id, event_type, occurred_at, outcome, variant)"

/* The event_type whose events are profile updates (CONTRACT 1.5). */
#define CM_STOREROW_IDENTIFY "identify"

/* Where the rows go: the caller's buffers, appended to. The JSON objects are
 * each followed by ',' so that any run of them makes an array
 * (cm_storerow_array). */
struct cm_storerow_out {
	struct cm_buf ev;  /* COPY text of events rows */
	struct cm_buf mt;  /* COPY text of matches rows (matches without a limit) */
	struct cm_buf lim; /* {"campaign_id",...,"cooldown_ms"}, for cm_decide_limits */
	struct cm_buf pf; /* {"user_id","occurred_at","event_id","traits"}, for cm_merge_profiles */
};

/* What one record added. */
struct cm_storerow_counts {
	unsigned events;   /* 0 or 1 */
	unsigned matches;  /* match rows and candidates */
	unsigned limited;  /* of which candidates of limited campaigns */
	unsigned identify; /* 0 or 1 */
};

/* Scratch space kept from record to record (no allocation per record once
 * warm). */
struct cm_storerow {
	struct cm_buf fld;     /* the record's fields, escaped for COPY */
	struct cm_buf scratch; /* decoded strings */
};

void cm_storerow_init(struct cm_storerow *sr);
void cm_storerow_release(struct cm_storerow *sr);

/* Appends the rows of record v (validated in document d) to out and says in
 * n what they were. On failure (out of memory) nothing of the record stays
 * in out, and err says why. */
int cm_storerow_add(struct cm_storerow *sr, const struct cm_jdoc *d, const struct cm_event_view *v,
                    struct cm_storerow_out *out, struct cm_storerow_counts *n, struct cm_err *err);

/* Writes the JSON array of the objects text[0..len) (a run of lim or pf)
 * into arr, reset first and NUL-terminated: a query parameter. */
int cm_storerow_array(struct cm_buf *arr, const char *text, size_t len);

#endif
