/* test_outcome.c - candidates' outcomes (CONTRACT 1.6): groups from the
 * bucket, limits applied in input order as cm-store applies them (per_user
 * yields to the latest match, cooldown to the closest on either side, a
 * redelivered event keeps its outcome), the match object and explain texts,
 * and the per-campaign summary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bucket.h"
#include "buf.h"
#include "err.h"
#include "json.h"
#include "outcome.h"
#include "rule.h"

/* Loads a valid campaigns text. */
static struct cm_ruleset *load(const char *text)
{
	struct cm_ruleset *s = cm_ruleset_new();

	assert_non_null(s);
	assert_int_equal(cm_ruleset_load(s, text, strlen(text), "c", NULL, NULL), 0);
	assert_int_equal(cm_ruleset_compile(s, NULL, NULL), 0);
	return s;
}

/* An event being decided: its document and view. */
struct tev {
	struct cm_jdoc d;
	struct cm_buf scratch;
	struct cm_rule_event ev;
	char text[512];
};

/* Parses the event (id, user, time) of type t. */
static void tev_init(struct tev *e, const char *id, const char *user, const char *time)
{
	struct cm_err err;

	memset(e, 0, sizeof(*e));
	snprintf(e->text, sizeof(e->text),
	         "{\"event_id\":\"%s\",\"event_type\":\"t\",\"user_id\":\"%s\",\"occurred_at\":"
	         "\"%s\",\"properties\":{}}",
	         id, user, time);
	cm_jdoc_init(&e->d, 64);
	cm_buf_init(&e->scratch, 0);
	assert_int_equal(cm_json_parse(&e->d, e->text, strlen(e->text), &err), 0);
	assert_int_equal(cm_rule_event_init(&e->ev, &e->d, &e->scratch, &err), 0);
}

static void tev_release(struct tev *e)
{
	cm_jdoc_release(&e->d);
	cm_buf_release(&e->scratch);
}

/* Decides one candidate of campaign id for the event; returns its outcome
 * and copies its capped_by into by (or ""). */
static int decide(struct cm_outcomes *o, struct cm_ruleset *s, int64_t id, const char *eid,
                  const char *user, const char *time, char *by, struct cm_outcome *res)
{
	struct tev e;
	struct cm_outcome oc;
	struct cm_err err;

	tev_init(&e, eid, user, time);
	memset(&oc, 0, sizeof(oc));
	oc.campaign_id = id;
	oc.ctl = cm_ruleset_controls(s, id);
	assert_int_equal(cm_outcomes_decide(o, &e.ev, &oc, 1, &err), 0);
	if (by)
		snprintf(by, 64, "%.*s", (int)oc.capped_by_len, oc.capped_by ? oc.capped_by : "");
	if (res)
		*res = oc;
	tev_release(&e);
	return oc.outcome;
}

#define CAMP(id, x) "{\"id\":" #id ",\"name\":\"c" #id "\",\"status\":\"active\",\"rule\":{}," x "}"

/* A user's group is the bucket's, for every campaign; no controls, no
 * bucket. */
static void test_groups(void **state)
{
	struct cm_ruleset *s = load("[" CAMP(1, "\"holdout\":0.2") "," CAMP(
	    2,
	    "\"variants\":[{\"name\":\"A\",\"weight\":1}"
	    ",{\"name\":\"B\",\"weight\":3}]") "," CAMP(3,
	                                                "\"holdout\":0.1,\"variants\":[{\"name\":"
	                                                "\"X\",\"weight\":1}]") "," CAMP(4,
	                                                                                 "\"name2\""
	                                                                                 ":1") "]");
	struct cm_outcomes *o = cm_outcomes_new(CM_OUTCOMES_LIMITS);
	int counts[3][3] = {{0}};

	(void)state;
	for (int u = 0; u < 2000; u++) {
		char user[32];
		struct cm_outcome r;

		snprintf(user, sizeof(user), "u-%d", u);
		for (int64_t id = 1; id <= 3; id++) {
			double b = cm_bucket(id, user, strlen(user));
			int g;

			decide(o, s, id, "e", user, "2026-01-01T00:00:00Z", NULL, &r);
			g = cm_bucket_group(b, cm_ruleset_controls(s, id)->holdout,
			                    cm_ruleset_controls(s, id)->weights,
			                    cm_ruleset_controls(s, id)->nvariants);
			assert_true(r.bucket == b);
			assert_int_equal(r.outcome,
			                 g < 0 ? CM_OUTCOME_HOLDOUT : CM_OUTCOME_MATCHED);
			assert_int_equal(r.variant, id == 1 || g < 0 ? -1 : g);
			counts[id - 1][g < 0 ? 2 : g]++;
		}
		decide(o, s, 4, "e", user, "2026-01-01T00:00:00Z", NULL, &r);
		assert_int_equal(r.outcome, CM_OUTCOME_MATCHED);
		assert_true(r.bucket == -1);
		assert_int_equal(r.variant, -1);
		assert_false(r.limited);
	}
	/* roughly the proportions asked for */
	assert_in_range(counts[0][2], 300, 500);
	assert_in_range(counts[1][0], 400, 600);
	assert_in_range(counts[2][2], 120, 280);
	cm_outcomes_free(o);
	cm_ruleset_free(s);
}

/* per_user: at most that many matched-or-holdout, the rest capped by the
 * latest in time (not in arrival); a redelivered event keeps its outcome;
 * users and campaigns are counted apart. */
static void test_per_user(void **state)
{
	struct cm_ruleset *s = load("[" CAMP(1, "\"limit\":{\"per_user\":2}") "," CAMP(
	    2, "\"limit\":{\"per_user\":1},\"holdout\":0.99") "]");
	struct cm_outcomes *o = cm_outcomes_new(CM_OUTCOMES_LIMITS);
	struct cm_outcome r;
	char by[64];

	(void)state;
	assert_int_equal(decide(o, s, 1, "e-1", "u", "2026-01-02T00:00:00Z", by, &r),
	                 CM_OUTCOME_MATCHED);
	assert_true(r.limited && r.decided);
	assert_int_equal(r.before, 0);
	assert_int_equal(decide(o, s, 1, "e-2", "u", "2026-01-05T00:00:00Z", by, NULL),
	                 CM_OUTCOME_MATCHED);
	assert_int_equal(decide(o, s, 1, "e-3", "u", "2026-01-03T00:00:00Z", by, &r),
	                 CM_OUTCOME_CAPPED);
	assert_string_equal(by, "e-2");
	assert_int_equal(r.reason, CM_CAPPED_PER_USER);
	assert_int_equal(r.before, 2);
	/* redelivered: the same outcome as the first time */
	assert_int_equal(decide(o, s, 1, "e-1", "u", "2026-01-02T00:00:00Z", by, NULL),
	                 CM_OUTCOME_MATCHED);
	assert_int_equal(decide(o, s, 1, "e-3", "u", "2026-01-03T00:00:00Z", by, NULL),
	                 CM_OUTCOME_CAPPED);
	assert_string_equal(by, "e-2");
	/* another user, the same campaign */
	assert_int_equal(decide(o, s, 1, "e-4", "v", "2026-01-03T00:00:00Z", by, NULL),
	                 CM_OUTCOME_MATCHED);
	/* a holdout counts too: nearly every user is in campaign 2's holdout */
	{
		const char *user = NULL;
		char ub[16];

		for (int i = 0; i < 100 && !user; i++) {
			snprintf(ub, sizeof(ub), "h%d", i);
			if (cm_bucket(2, ub, strlen(ub)) < 0.99)
				user = ub;
		}
		assert_non_null(user);
		assert_int_equal(decide(o, s, 2, "e-5", user, "2026-01-01T00:00:00Z", by, NULL),
		                 CM_OUTCOME_HOLDOUT);
		assert_int_equal(decide(o, s, 2, "e-6", user, "2026-02-01T00:00:00Z", by, NULL),
		                 CM_OUTCOME_CAPPED);
		assert_string_equal(by, "e-5");
	}
	cm_outcomes_free(o);
	cm_ruleset_free(s);
}

/* cooldown: no two matched-or-holdout closer than it, checked against both
 * neighbours in time; capped yields to the closest, ties to the smaller
 * event_id; exactly the cooldown apart is allowed. */
static void test_cooldown(void **state)
{
	struct cm_ruleset *s = load("[" CAMP(1, "\"limit\":{\"cooldown\":\"PT1H\"}") "," CAMP(
	    2, "\"limit\":{\"cooldown\":\"PT3H\",\"per_user\":5}") "]");
	struct cm_outcomes *o = cm_outcomes_new(CM_OUTCOMES_LIMITS);
	struct cm_outcome r;
	char by[64];

	(void)state;
	assert_int_equal(decide(o, s, 1, "a", "u", "2026-01-01T10:00:00Z", by, NULL),
	                 CM_OUTCOME_MATCHED);
	assert_int_equal(decide(o, s, 1, "b", "u", "2026-01-01T10:30:00Z", by, &r),
	                 CM_OUTCOME_CAPPED);
	assert_string_equal(by, "a");
	assert_int_equal(r.reason, CM_CAPPED_COOLDOWN);
	assert_int_equal(decide(o, s, 1, "c", "u", "2026-01-01T12:00:00Z", by, NULL),
	                 CM_OUTCOME_MATCHED);
	/* arrives late: 75 min after a, 45 before c */
	assert_int_equal(decide(o, s, 1, "d", "u", "2026-01-01T11:15:00Z", by, NULL),
	                 CM_OUTCOME_CAPPED);
	assert_string_equal(by, "c");
	/* exactly an hour from a and from c: allowed */
	assert_int_equal(decide(o, s, 1, "e", "u", "2026-01-01T11:00:00Z", by, NULL),
	                 CM_OUTCOME_MATCHED);
	/* within the cooldown of both a and e: the closer, e */
	assert_int_equal(decide(o, s, 1, "f", "u", "2026-01-01T10:59:59.999Z", by, NULL),
	                 CM_OUTCOME_CAPPED);
	assert_string_equal(by, "e");
	/* equally close on both sides: the smaller event_id */
	assert_int_equal(decide(o, s, 2, "z", "u", "2026-01-01T10:00:00Z", by, NULL),
	                 CM_OUTCOME_MATCHED);
	assert_int_equal(decide(o, s, 2, "y", "u", "2026-01-01T14:00:00Z", by, NULL),
	                 CM_OUTCOME_MATCHED);
	assert_int_equal(decide(o, s, 2, "x", "u", "2026-01-01T12:00:00Z", by, NULL),
	                 CM_OUTCOME_CAPPED);
	assert_string_equal(by, "y");
	cm_outcomes_free(o);
	cm_ruleset_free(s);
}

/* Without CM_OUTCOMES_LIMITS (a worker), only the bucket is decided and the
 * limit travels with the candidate for cm-store. */
static void test_worker_mode(void **state)
{
	struct cm_ruleset *s = load("[" CAMP(1, "\"limit\":{\"per_user\":1}") "]");
	struct cm_outcomes *o = cm_outcomes_new(0);
	struct cm_outcome r;
	struct cm_buf b;

	(void)state;
	cm_buf_init(&b, 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(
		    decide(o, s, 1, i ? "e2" : "e1", "u", "2026-01-01T00:00:00Z", NULL, &r),
		    CM_OUTCOME_MATCHED);
		assert_true(r.limited);
		assert_false(r.decided);
	}
	assert_int_equal(cm_outcome_put(&r, &b), 0);
	assert_string_equal(b.data, ",\"outcome\":\"matched\",\"limit\":{\"per_user\":1}");
	cm_buf_reset(&b);
	assert_int_equal(cm_outcome_explain(&r, 1, "u", 1, &b), 0);
	assert_string_equal(b.data, ",{\"check\":\"limit\",\"ok\":null,\"per_user\":1,\"reason\":"
	                            "\"decided by cm-store against the stored matches\"}");
	cm_buf_release(&b);
	cm_outcomes_free(o);
	cm_ruleset_free(s);
}

/* The match object keys and the explain checks. */
static void test_texts(void **state)
{
	struct cm_ruleset *s = load("[" CAMP(
	    1,
	    "\"limit\":{\"per_user\":1,\"cooldown\":\"P7D\"},\"variants\":[{\"name\":"
	    "\"A\\\"\",\"weight\":1}]") "," CAMP(2, "\"holdout\":0.5") "," CAMP(3, "\"x\":1") "]");
	struct cm_outcomes *o = cm_outcomes_new(CM_OUTCOMES_LIMITS);
	struct cm_outcome r;
	struct cm_buf b;
	char want[512];

	(void)state;
	cm_buf_init(&b, 0);
	decide(o, s, 1, "e-17", "u", "2026-11-27T10:15:00Z", NULL, &r);
	assert_int_equal(cm_outcome_put(&r, &b), 0);
	assert_string_equal(b.data, ",\"outcome\":\"matched\",\"variant\":\"A\\\"\",\"limit\":{"
	                            "\"per_user\":1,\"cooldown\":\"P7D\"}");
	decide(o, s, 1, "e-18", "u", "2026-11-28T10:15:00Z", NULL, &r);
	cm_buf_reset(&b);
	assert_int_equal(cm_outcome_put(&r, &b), 0);
	assert_string_equal(b.data, ",\"outcome\":\"capped\",\"variant\":\"A\\\"\",\"limit\":{"
	                            "\"per_user\":1,\"cooldown\":\"P7D\"}");
	cm_buf_reset(&b);
	assert_int_equal(cm_outcome_explain(&r, 1, "u", 1, &b), 0);
	snprintf(want, sizeof(want),
	         ",{\"check\":\"bucket\",\"bucket\":%.17g,\"holdout\":0,\"group\":\"variant\","
	         "\"variant\":\"A\\\"\"},{\"check\":\"limit\",\"ok\":false,\"per_user\":1,"
	         "\"cooldown\":\"P7D\",\"before\":1,\"reason\":\"capped: user already matched 1 "
	         "time, last on 2026-11-27T10:15:00Z by event e-17\",\"capped_by\":\"e-17\","
	         "\"capped_at\":\"2026-11-27T10:15:00Z\"}",
	         cm_bucket(1, "u", 1));
	assert_string_equal(b.data, want);
	/* not a candidate: only the bucket */
	cm_buf_reset(&b);
	assert_int_equal(cm_outcome_explain(&r, 0, "u", 1, &b), 0);
	assert_null(strstr(b.data, "limit"));
	/* campaign 2: a holdout and no variants */
	decide(o, s, 2, "e-1", "u", "2026-11-27T10:15:00Z", NULL, &r);
	cm_buf_reset(&b);
	assert_int_equal(cm_outcome_explain(&r, 1, "u", 1, &b), 0);
	snprintf(want, sizeof(want),
	         ",{\"check\":\"bucket\",\"bucket\":%.17g,\"holdout\":0.5,\"group\":\"%s\"}",
	         cm_bucket(2, "u", 1), cm_bucket(2, "u", 1) < 0.5 ? "holdout" : "matched");
	assert_string_equal(b.data, want);
	cm_buf_reset(&b);
	assert_int_equal(cm_outcome_put(&r, &b), 0);
	assert_string_equal(b.data, cm_bucket(2, "u", 1) < 0.5 ? ",\"outcome\":\"holdout\""
	                                                       : ",\"outcome\":\"matched\"");
	/* campaign 3: nothing but the outcome */
	decide(o, s, 3, "e-1", "u", "2026-11-27T10:15:00Z", NULL, &r);
	cm_buf_reset(&b);
	assert_int_equal(cm_outcome_explain(&r, 1, "u", 1, &b), 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(cm_outcome_put(&r, &b), 0);
	assert_string_equal(b.data, ",\"outcome\":\"matched\"");
	/* the cooldown's reason */
	decide(o, s, 1, "e-19", "w", "2026-11-27T10:15:00Z", NULL, &r);
	assert_int_equal(r.outcome, CM_OUTCOME_MATCHED);
	cm_buf_reset(&b);
	assert_int_equal(cm_outcome_explain(&r, 1, "w", 1, &b), 0);
	assert_non_null(strstr(b.data,
	                       "\"ok\":true,\"per_user\":1,\"cooldown\":\"P7D\",\"before\":0,"
	                       "\"reason\":\"within the limit\"}"));
	cm_buf_release(&b);
	cm_outcomes_free(o);
	cm_ruleset_free(s);
}

/* Counts one event of set s with the candidates of campaigns ids[0..n). */
static void count(struct cm_summary *sm, struct cm_outcomes *o, struct cm_ruleset *s,
                  const char *type, const char *eid, const char *user, const char *time,
                  const int64_t *ids, size_t n)
{
	struct cm_jdoc d;
	struct cm_buf scratch;
	struct cm_rule_event ev;
	struct cm_outcome oc[4];
	struct cm_err err;
	char text[512];

	snprintf(text, sizeof(text),
	         "{\"event_id\":\"%s\",\"event_type\":\"%s\",\"user_id\":\"%s\",\"occurred_at\":"
	         "\"%s\",\"properties\":{}}",
	         eid, type, user, time);
	cm_jdoc_init(&d, 64);
	cm_buf_init(&scratch, 0);
	assert_int_equal(cm_json_parse(&d, text, strlen(text), &err), 0);
	assert_int_equal(cm_rule_event_init(&ev, &d, &scratch, &err), 0);
	for (size_t i = 0; i < n; i++) {
		oc[i].campaign_id = ids[i];
		oc[i].ctl = cm_ruleset_controls(s, ids[i]);
	}
	assert_int_equal(cm_outcomes_decide(o, &ev, oc, n, &err), 0);
	assert_int_equal(cm_summary_event(sm, s, &ev, oc, n, &err), 0);
	cm_jdoc_release(&d);
	cm_buf_release(&scratch);
}

/* Events checked by type (any-type campaigns see every event), candidates
 * by outcome, distinct users, first and last match, across a reload. */
static void test_summary(void **state)
{
	struct cm_ruleset *s = load(
	    "[{\"id\":2,\"name\":\"a\",\"status\":\"active\",\"rule\":{\"event_type\":\"buy\"},"
	    "\"limit\":{\"per_user\":1}},{\"id\":1,\"name\":\"b\",\"status\":\"active\",\"rule\":{}"
	    "},"
	    "{\"id\":3,\"name\":\"c\",\"status\":\"paused\",\"rule\":{}},"
	    "{\"id\":4,\"name\":\"d\",\"status\":\"active\",\"rule\":{\"event_type\":[\"view\","
	    "\"buy\"]}}]");
	struct cm_ruleset *s2 =
	    load("[{\"id\":4,\"name\":\"d\",\"status\":\"active\",\"rule\":{}}]");
	struct cm_summary *sm = cm_summary_new();
	struct cm_outcomes *o = cm_outcomes_new(CM_OUTCOMES_LIMITS);
	const struct cm_summary_row *rows;
	struct cm_err err;
	struct cm_buf b;
	static const int64_t c12[] = {1, 2}, c1[] = {1}, c4[] = {4};
	size_t n;

	(void)state;
	cm_buf_init(&b, 0);
	count(sm, o, s, "buy", "e1", "u1", "2026-01-02T00:00:00Z", c12, 2);
	count(sm, o, s, "buy", "e2", "u1", "2026-01-01T00:00:00Z", c12, 2);
	count(sm, o, s, "buy", "e3", "u2", "2026-01-03T00:00:00Z", c1, 1);
	count(sm, o, s, "view", "e4", "u2", "2026-01-04T00:00:00Z", NULL, 0);
	count(sm, o, s, "other", "e5", "u3", "2026-01-05T00:00:00Z", c1, 1);
	assert_int_equal(cm_summary_flush(sm, s, &err), 0);
	/* a reload: campaign 4 now admits every type */
	count(sm, o, s2, "other", "e6", "u3", "2026-01-06T00:00:00Z", c4, 1);
	assert_int_equal(cm_summary_flush(sm, s2, &err), 0);
	n = cm_summary_rows(sm, &rows);
	assert_int_equal(n, 3);
	assert_int_equal(cm_summary_ndjson(rows, n, &b), 0);
	assert_string_equal(
	    b.data,
	    "{\"campaign_id\":1,\"events_checked\":5,\"candidates\":4,\"matched\":4,\"holdout\":0,"
	    "\"capped\":0,\"distinct_users\":3,\"first_match\":\"2026-01-01T00:00:00Z\","
	    "\"last_match\":\"2026-01-05T00:00:00Z\"}\n"
	    "{\"campaign_id\":2,\"events_checked\":3,\"candidates\":2,\"matched\":1,\"holdout\":0,"
	    "\"capped\":1,\"distinct_users\":1,\"first_match\":\"2026-01-02T00:00:00Z\","
	    "\"last_match\":\"2026-01-02T00:00:00Z\"}\n"
	    "{\"campaign_id\":4,\"events_checked\":5,\"candidates\":1,\"matched\":1,\"holdout\":0,"
	    "\"capped\":0,\"distinct_users\":1,\"first_match\":\"2026-01-06T00:00:00Z\","
	    "\"last_match\":\"2026-01-06T00:00:00Z\"}\n");
	cm_buf_reset(&b);
	assert_int_equal(cm_summary_table(rows, n, &b), 0);
	assert_non_null(strstr(b.data,
	                       "    campaign    checked candidates    matched    holdout     "
	                       "capped      users  first_match              last_match\n"));
	assert_non_null(strstr(b.data, "\n           2          3          2          1          0 "
	                               "         1          1  2026-01-02T00:00:00Z     "
	                               "2026-01-02T00:00:00Z\n"));
	cm_buf_release(&b);
	cm_outcomes_free(o);
	cm_summary_free(sm);
	cm_ruleset_free(s);
	cm_ruleset_free(s2);
}

/* A summary of no events still lists the active campaigns. */
static void test_summary_empty(void **state)
{
	struct cm_ruleset *s = load("[" CAMP(5, "\"x\":1") "]");
	struct cm_summary *sm = cm_summary_new();
	const struct cm_summary_row *rows;
	struct cm_err err;
	struct cm_buf b;
	size_t n;

	(void)state;
	cm_buf_init(&b, 0);
	assert_int_equal(cm_summary_flush(sm, s, &err), 0);
	n = cm_summary_rows(sm, &rows);
	assert_int_equal(n, 1);
	assert_int_equal(cm_summary_ndjson(rows, n, &b), 0);
	assert_string_equal(b.data, "{\"campaign_id\":5,\"events_checked\":0,\"candidates\":0,"
	                            "\"matched\":0,\"holdout\":0,\"capped\":0,\"distinct_users\":0,"
	                            "\"first_match\":null,\"last_match\":null}\n");
	cm_buf_release(&b);
	cm_summary_free(sm);
	cm_ruleset_free(s);
}

/* cm_outcomes_explain: an object per campaign, in the order given, each
 * with its verdict and outcome, the candidates decided in order (a limit
 * applied offline), each object followed by the separator. */
static void test_explain(void **state)
{
	struct cm_ruleset *s = load(
	    "[{\"id\":1,\"name\":\"a\",\"status\":\"active\",\"rule\":{\"event_type\":\"t\"},"
	    "\"limit\":{\"per_user\":1},\"variants\":[{\"name\":\"V\",\"weight\":1}]},"
	    "{\"id\":2,\"name\":\"b\",\"status\":\"active\",\"rule\":{\"event_type\":\"other\"}}]");
	struct cm_outcomes *o = cm_outcomes_new(CM_OUTCOMES_LIMITS);
	struct cm_buf out = CM_BUF_INIT;
	struct cm_err err;
	struct tev e1, e2;
	const int64_t ids[2] = {1, 2};
	size_t nc;

	(void)state;
	assert_non_null(o);
	tev_init(&e1, "e-1", "u", "2026-11-27T10:15:00Z");
	tev_init(&e2, "e-2", "u", "2026-11-28T10:15:00Z");
	assert_int_equal(cm_outcomes_explain(o, s, &e1.ev, ids, 2, '\n', &out, &nc, &err), 0);
	assert_int_equal(nc, 1);
	assert_non_null(strstr(out.data, "{\"event_id\":\"e-1\",\"campaign_id\":1,\"matched\":true,"
	                                 "\"outcome\":\"matched\",\"variant\":\"V\",\"checks\":["));
	assert_non_null(strstr(out.data,
	                       "{\"event_id\":\"e-1\",\"campaign_id\":2,\"matched\":false,"
	                       "\"outcome\":null,\"checks\":["));
	assert_int_equal(out.data[out.len - 1], '\n');
	/* two lines: the first ends before the last byte */
	assert_true(strchr(out.data, '\n') + 1 < out.data + out.len);
	cm_buf_reset(&out);
	/* the second candidate of the user is capped by the first */
	assert_int_equal(cm_outcomes_explain(o, s, &e2.ev, ids, 1, ',', &out, &nc, &err), 0);
	assert_int_equal(nc, 1);
	assert_non_null(strstr(out.data, "\"outcome\":\"capped\""));
	assert_non_null(strstr(out.data, "\"capped_by\":\"e-1\""));
	assert_int_equal(out.data[out.len - 1], ',');
	tev_release(&e1);
	tev_release(&e2);
	cm_buf_release(&out);
	cm_outcomes_free(o);
	cm_ruleset_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_groups),        cmocka_unit_test(test_per_user),
	    cmocka_unit_test(test_cooldown),      cmocka_unit_test(test_worker_mode),
	    cmocka_unit_test(test_texts),         cmocka_unit_test(test_summary),
	    cmocka_unit_test(test_summary_empty), cmocka_unit_test(test_explain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
