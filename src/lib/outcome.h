/* outcome.h - what happens to a user who satisfies a campaign's rule
 * (CONTRACT section 1.6), and the per-campaign counts of a run.
 *
 * A satisfied rule is a candidate. Its user's bucket (bucket.h) puts it in
 * the holdout or a variant; a campaign's limit (per_user, cooldown) may
 * then refuse it, "capped". Offline (a file pipeline, a backtest) the limits
 * are applied here, in input order, from the state of the candidates seen so
 * far, by the rules cm-store applies in PostgreSQL (004_outcomes.sql): a
 * (campaign, event) decided before keeps its outcome; a user with per_user
 * matched-or-holdout matches already is capped, yielding to the latest of
 * them; one within the cooldown of such a match (either side in time) is
 * capped, yielding to the closest (ties: the smaller event_id); otherwise
 * the bucket's outcome stands and counts from then on. Without limits (a
 * worker: cm-store decides) only the bucket is applied.
 *
 * The summary counts, per campaign, the events it looked at, its candidates
 * and their outcomes, its distinct users and its first and last match; it is
 * what cm-match --summary prints and what a backtest reports.
 *
 * Ownership: the states own what they remember (event ids, user ids); a
 * decided outcome points into its state until the next decision. */
#ifndef CM_OUTCOME_H
#define CM_OUTCOME_H

#include <stddef.h>
#include <stdint.h>

struct cm_buf;
struct cm_err;
struct cm_ruleset;
struct cm_rule_controls;
struct cm_rule_event;

enum { CM_OUTCOME_MATCHED = 0, CM_OUTCOME_HOLDOUT = 1, CM_OUTCOME_CAPPED = 2 };
/* Why a candidate was capped. */
enum { CM_CAPPED_NO = 0, CM_CAPPED_PER_USER = 1, CM_CAPPED_COOLDOWN = 2 };

/* One candidate: campaign_id and ctl are the caller's (ctl NULL when the
 * campaign has no controls: always matched); the rest is decided. */
struct cm_outcome {
	int64_t campaign_id;
	const struct cm_rule_controls *ctl;
	int outcome;           /* CM_OUTCOME_* */
	int variant;           /* index into ctl->variants, or -1 */
	double bucket;         /* the user's bucket when ctl has a holdout or variants, else -1 */
	int limited;           /* ctl has a limit */
	int decided;           /* the limit was applied here (else cm-store applies it) */
	int reason;            /* CM_CAPPED_* */
	int64_t before;        /* matched-or-holdout matches of the (campaign, user) before it */
	const char *capped_by; /* the event it yields to (capped), or NULL */
	size_t capped_by_len;
	int64_t capped_at_ms; /* that event's occurred_at */
};

/* The names of the outcomes, for match lines. */
const char *cm_outcome_name(int outcome);

/* The group of a user in a campaign: -1 for the holdout, else the variant
 * index (0 without variants); *bucket gets the bucket (when ctl has neither
 * a holdout nor variants, -1 and group 0: no bucket is computed). */
int cm_outcome_group(const struct cm_rule_controls *ctl, int64_t campaign_id, const char *user,
                     size_t n, double *bucket);

/* The decisions so far of a run. */
struct cm_outcomes;

/* Flags of cm_outcomes_new. */
enum { CM_OUTCOMES_LIMITS = 1 /* apply limits (offline); without it cm-store does */ };

struct cm_outcomes *cm_outcomes_new(unsigned flags);
void cm_outcomes_free(struct cm_outcomes *o);

/* Decides the n candidates out[0..n) of event ev (each with campaign_id
 * and ctl set), in order. Returns 0, or -1 with err when memory runs out. */
int cm_outcomes_decide(struct cm_outcomes *o, const struct cm_rule_event *ev,
                       struct cm_outcome *out, size_t n, struct cm_err *err);

/* Appends what a match object carries after its campaign_id, as cm-match
 * writes it: ,"outcome":"matched" then ,"variant":NAME when the campaign has
 * variants and ,"limit":{...} (verbatim) when it is limited. */
int cm_outcome_put(const struct cm_outcome *oc, struct cm_buf *b);

/* Appends the explain checks of a candidate (matched 1) or not (matched 0)
 * of a campaign with controls ctl: ,{"check":"bucket",...} when it has a
 * holdout or variants, and for a candidate of a limited campaign
 * ,{"check":"limit",...} with the decision and its reason. user is the
 * decoded user_id (for the bucket of a non-candidate). */
int cm_outcome_explain(const struct cm_outcome *oc, int matched, const char *user, size_t n,
                       struct cm_buf *b);

/* Explains event ev against campaigns ids[0..n) of s (those of
 * cm_ruleset_explain_ids, or one): each campaign is explained by the slow
 * evaluator (cm_rule_explain), those that hold are decided by o as
 * candidates in id order (as the matcher's would be), and one object per
 * campaign is appended to out, each followed by sep:
 *   {"event_id":"e-1","campaign_id":7,"matched":true,"outcome":"matched",
 *    "variant":"A","checks":[...,{"check":"bucket",...},{"check":"limit",...}]}
 * (outcome null when it did not match; variant only with one). *candidates
 * gets how many matched. Returns 0, or -1 with err (out of memory). */
int cm_outcomes_explain(struct cm_outcomes *o, struct cm_ruleset *s, const struct cm_rule_event *ev,
                        const int64_t *ids, size_t n, char sep, struct cm_buf *out,
                        size_t *candidates, struct cm_err *err);

/* ---- summary ---- */

/* The counts of one campaign. */
struct cm_summary_row {
	int64_t campaign_id;
	uint64_t checked;    /* events whose type it admits */
	uint64_t candidates; /* events that satisfied its rule */
	uint64_t matched, holdout, capped;
	uint64_t users;            /* distinct users of its candidates */
	int64_t first_ms, last_ms; /* occurred_at of its first and last match
	                              (matched or holdout); INT64_MIN: none */
};

struct cm_summary;

struct cm_summary *cm_summary_new(void);
void cm_summary_free(struct cm_summary *sm);
/* Counts one event matched against set s, with its decided candidates
 * out[0..n). Returns 0 or -1 with err (out of memory). */
int cm_summary_event(struct cm_summary *sm, const struct cm_ruleset *s,
                     const struct cm_rule_event *ev, const struct cm_outcome *out, size_t n,
                     struct cm_err *err);
/* Folds the events counted per type group of set s into its campaigns'
 * rows: call it before s is freed or replaced (a reload), and before the
 * rows are read. */
int cm_summary_flush(struct cm_summary *sm, const struct cm_ruleset *s, struct cm_err *err);
/* The rows (every active campaign of the sets flushed, and every campaign
 * with a candidate), ascending campaign id; valid until the next call. */
size_t cm_summary_rows(struct cm_summary *sm, const struct cm_summary_row **rows);
/* Appends the rows as NDJSON, one object per campaign:
 * {"campaign_id":7,"events_checked":N,"candidates":N,"matched":N,
 *  "holdout":N,"capped":N,"distinct_users":N,"first_match":TIME|null,
 *  "last_match":TIME|null} */
int cm_summary_ndjson(const struct cm_summary_row *rows, size_t n, struct cm_buf *b);
/* Appends the rows as an aligned table with a header line. */
int cm_summary_table(const struct cm_summary_row *rows, size_t n, struct cm_buf *b);

#endif
