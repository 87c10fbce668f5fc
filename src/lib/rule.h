/* rule.h - campaigns (CONTRACT section 1.2): loading with full validation,
 * and matching events against a compiled set.
 *
 * A ruleset is filled by cm_ruleset_load (a JSON array of campaigns, or one
 * campaign object per line) and/or cm_ruleset_add (one campaign at a time,
 * for campaigns that come from a database), then frozen by
 * cm_ruleset_compile, which compiles the jq predicates and builds the
 * indexes. Every campaign is validated, whatever its status; only active
 * ones match. Each problem is handed to a report callback as one line:
 *
 *     campaigns.json:12: campaign 7: rule.where.all[1].op: unknown operator "gte2" (...)
 *
 * ("campaign #3" when the id itself is bad), and a set that had any problem
 * matches nothing: callers treat it as a configuration error.
 *
 * Ownership: the set copies what it needs from the texts it is given, so
 * they can be freed after each call. Results of cm_ruleset_match point into
 * the set and are valid until its next call. A set is not thread safe: it
 * keeps its per-event scratch (and its jq states) inside; use one per thread.
 */
#ifndef CM_RULE_H
#define CM_RULE_H

#include <stddef.h>
#include <stdint.h>

struct cm_buf;
struct cm_err;
struct cm_jdoc;
struct cm_ruleset;

/* Largest campaign id, 2^53 (ids must survive a trip through a double). */
#define CM_RULE_MAX_ID 9007199254740992LL
/* Deepest rule.where tree accepted. */
#define CM_RULE_MAX_DEPTH 64
/* Largest campaigns text cm_ruleset_load accepts. */
#define CM_RULE_MAX_TEXT (512u * 1024 * 1024)

/* Receives one problem as a line of text (no newline). */
typedef void cm_rule_reportfn(void *ctx, const char *msg);
/* Receives a jq runtime error raised while matching. */
typedef void cm_rule_jqerrfn(void *ctx, int64_t campaign_id, const char *msg);

struct cm_ruleset *cm_ruleset_new(void);
void cm_ruleset_free(struct cm_ruleset *s);

/* Adds every campaign of text[0..len): a JSON array (first non-space byte
 * '[') or NDJSON, one campaign object per line (blank lines skipped).
 * source names the text in messages ("campaigns.json"). Every problem is
 * reported; returns their number (0: all valid), or -1 when memory runs out
 * (also reported). */
int cm_ruleset_load(struct cm_ruleset *s, const char *text, size_t len, const char *source,
                    cm_rule_reportfn *report, void *ctx);
/* Adds the campaign at value v of d (for campaigns built from database
 * rows); source and line (0: none) only label messages. Returns the number
 * of problems reported, or -1 when memory runs out. */
int cm_ruleset_add(struct cm_ruleset *s, const struct cm_jdoc *d, uint32_t v, const char *source,
                   unsigned long line, cm_rule_reportfn *report, void *ctx);
/* Compiles the jq predicates (reporting each that fails, with its campaign)
 * and builds the matcher over the active campaigns. Call once, after the
 * last add. Returns the number of problems (including those found while
 * adding: a set is usable only when this returns 0), or -1 when memory runs
 * out. */
int cm_ruleset_compile(struct cm_ruleset *s, cm_rule_reportfn *report, void *ctx);

/* Number of campaigns added (any status), and of active ones. */
size_t cm_ruleset_count(const struct cm_ruleset *s);
/* True when the set has a valid campaign with this id (any status). */
int cm_ruleset_has(const struct cm_ruleset *s, int64_t id);
size_t cm_ruleset_active(const struct cm_ruleset *s);

/* An event prepared for matching: its parsed document and the members every
 * event must have (CONTRACT section 1.1), checked by cm_rule_event_init. */
struct cm_rule_event {
	const struct cm_jdoc *doc;                     /* root is token 0, a JSON object */
	uint32_t id_tok, type_tok, user_tok, time_tok; /* value tokens */
	uint32_t matches_key; /* key token of a top-level "matches", or CM_JNONE */
	int has_meta;         /* some top-level key starts with '_' */
	const char *type;     /* decoded event_type (may point into scratch) */
	size_t type_len;
	int64_t time_ms; /* occurred_at */
	/* The user's profile (CONTRACT 1.5): a parsed object of traits (root
	 * token 0), or NULL when the user has none. cm_rule_event_init sets it
	 * to NULL; the caller sets it before matching. Rules read it as
	 * profile.TRAIT, and jq sees it as the event's "profile" member ({}
	 * without one). */
	const struct cm_jdoc *profile;
	/* Or, when profile_fn is set, the profile is asked for only when a
	 * rule reaches a profile.* leaf or a jq predicate that names profile
	 * (most events never do): profile_fn(profile_ctx) is called at most
	 * once per match and its answer used as profile. */
	const struct cm_jdoc *(*profile_fn)(void *ctx);
	void *profile_ctx;
};

/* Checks that doc (root token 0) is a canonical event by the one definition
 * every tool uses (cm_event_validate in event.h) and fills ev. scratch holds
 * decoded text that ev points to. Returns 0, or -1 with err like "field
 * 'occurred_at': expected an RFC 3339 time, got \"yesterday\"". */
int cm_rule_event_init(struct cm_rule_event *ev, const struct cm_jdoc *doc, struct cm_buf *scratch,
                       struct cm_err *err);

/* Matches ev against the compiled set: sets *ids to the ids of the matching
 * campaigns in ascending order and returns their number. The event's jq
 * value is built at most once, and only when a campaign with a jq predicate
 * has passed all its other conditions. */
size_t cm_ruleset_match(struct cm_ruleset *s, const struct cm_rule_event *ev, const int64_t **ids);

/* True when some active campaign that an event of this type can match reads
 * the user's profile (a profile.* leaf, or a jq predicate whose text names
 * profile): only then does the profile need to be looked up. */
int cm_ruleset_reads_profile(const struct cm_ruleset *s, const char *type, size_t n);

/* Runtime errors of jq predicates so far (each made its rule false). */
unsigned long long cm_ruleset_jq_errors(const struct cm_ruleset *s);
/* Sets a callback for each jq runtime error (none by default). */
void cm_ruleset_on_jq_error(struct cm_ruleset *s, cm_rule_jqerrfn *fn, void *ctx);

/* A variant of a campaign's A/B split. */
struct cm_rule_variant {
	const char *name; /* decoded */
	size_t len;
	const char *json; /* the name as a JSON string literal, quotes included */
	size_t json_len;
};

/* A campaign's delivery controls (CONTRACT 1.6), as validated: what
 * happens to a user who satisfies its rule. */
struct cm_rule_controls {
	int64_t id;
	double holdout; /* in [0, 1); 0: no holdout */
	uint32_t nvariants;
	const struct cm_rule_variant *variants; /* nvariants of them, in order */
	const double *weights;                  /* their weights, for cm_bucket_group */
	int64_t per_user;                       /* limit.per_user; 0: no count limit */
	int64_t cooldown_ms;                    /* limit.cooldown; 0: no cooldown */
	const char *cooldown;                   /* limit.cooldown as written, or NULL */
	size_t cooldown_len;
	const char *limit; /* the limit object as compact JSON, or NULL: not limited */
	size_t limit_len;
};
/* Most variants a campaign may have. */
#define CM_RULE_MAX_VARIANTS 100
/* Longest variant name, in bytes. */
#define CM_RULE_VARIANT_MAX 64

/* The delivery controls of campaign id (any status) of a compiled set, or
 * NULL when it has none (every candidate is then matched) or is unknown. */
const struct cm_rule_controls *cm_ruleset_controls(const struct cm_ruleset *s, int64_t id);
/* The same for the k-th campaign of the last cm_ruleset_match (cheaper:
 * no lookup). */
const struct cm_rule_controls *cm_ruleset_hit_controls(const struct cm_ruleset *s, size_t k);
/* True when some active campaign has delivery controls. */
int cm_ruleset_has_controls(const struct cm_ruleset *s);

/* Event types fall into groups, each with the active campaigns that an
 * event of such a type can match (the campaigns of any type are in every
 * group; unknown types are in group 0, with only those). Counting events per
 * group tells how many events each campaign looked at. */
uint32_t cm_ruleset_ngroups(const struct cm_ruleset *s);
uint32_t cm_ruleset_group(const struct cm_ruleset *s, const char *type, size_t n);
/* The members of group g, ascending ids; returns their number. */
size_t cm_ruleset_group_members(const struct cm_ruleset *s, uint32_t g, const int64_t **ids);
/* A number no other set made by this process has, so that a set's state
 * can be told from another's even at the same address. */
uint64_t cm_ruleset_serial(const struct cm_ruleset *s);

/* Explaining why campaigns did or did not match an event (cm-match
 * --explain, the API's explain), by a slow evaluator of its own that reads
 * each rule as written, never the matcher's indexes: its verdict is the
 * matcher's, which tests hold it to.
 *
 * The campaigns to explain an event against: every valid campaign of the
 * set, of any status, whose rule.event_type admits type[0..n), ascending id
 * (valid until the next call). */
size_t cm_ruleset_explain_ids(struct cm_ruleset *s, const char *type, size_t n,
                              const int64_t **ids);
/* Appends to out the checks of campaign id on event ev, comma-separated
 * JSON objects in this order:
 *   {"check":"status","ok":B,"status":"active"}
 *   {"check":"event_type","ok":B,"expected":["purchase"]|null,"found":"purchase"}
 *   {"check":"window","ok":B,"starts_at":T|null,"ends_at":T|null,"occurred_at":T}
 *   {"check":"where","ok":B,"leaves":[{"path":"rule.where.all[0]","field":F,
 *     "op":O,"value":V,"found":V|"missing":true|"found_bytes":N,"ok":B},...]}
 *   {"check":"jq","ok":B,"result":B} or {"check":"jq","ok":false,"error":MSG}
 * (where and jq only when the rule has them; every leaf is evaluated, and a
 * leaf's ok is its own verdict, which all, any and not combine), and sets
 * *holds to whether all of them hold: the campaign's verdict. Returns 0, or
 * -1 with err (no such campaign, out of memory). */
int cm_rule_explain(struct cm_ruleset *s, const struct cm_rule_event *ev, int64_t id,
                    struct cm_buf *out, int *holds, struct cm_err *err);

/* Flags of cm_campaign_validate. */
enum { CM_RULE_ID_OPTIONAL = 1 /* the id may be absent (assigned later) */ };
/* Validates one campaign object text completely (jq and regular
 * expressions compiled) and returns 0, or -1 with the first problem in err
 * as "PATH: message" ("rule.where.any[0].value: ..."), or just the message
 * when it is about the whole text ("invalid JSON: ..."). */
int cm_campaign_validate(const char *json, size_t len, unsigned flags, struct cm_err *err);

#endif
