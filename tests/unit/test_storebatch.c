/* Tests for storebatch.c against the PostgreSQL that tests/run.sh starts
 * (CM_TEST_DATABASE_URL, an empty database: the migrations of share/sql are
 * applied here): the COPY path, the staging fallback of a redelivery, a bad
 * row isolated by halving, skipped rows, profiles and limits in the batch's
 * transaction (on every path), a lost connection retried, and the ways of
 * giving up (no schema, unreachable, interrupted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "event.h"
#include "json.h"
#include "pg.h"
#include "storebatch.h"
#include "storerow.h"
#include "testenv.h"

static const char *url; /* CM_TEST_DATABASE_URL */
static PGconn *admin;   /* the test's own connection, for checks */

/* What the hooks heard. */
static struct heard {
	int retrying, back, stop_after;
	size_t refused[8], nrefused;
	char msg[512];
} h;

static void on_retrying(void *ctx, const char *msg)
{
	(void)ctx;
	h.retrying++;
	snprintf(h.msg, sizeof(h.msg), "%s", msg);
}

static void on_back(void *ctx)
{
	(void)ctx;
	h.back++;
}

static void on_refused(void *ctx, size_t i, const char *msg)
{
	(void)ctx;
	if (h.nrefused < 8)
		h.refused[h.nrefused++] = i;
	snprintf(h.msg, sizeof(h.msg), "%s", msg);
}

/* Stops once stop_after calls have said "go on" (0: never stops). */
static int on_stop(void *ctx)
{
	(void)ctx;
	return h.stop_after > 0 && --h.stop_after == 0;
}

static const struct cm_store_hooks hooks = {
    .retrying = on_retrying, .back = on_back, .refused = on_refused, .stop = on_stop};

struct fix {
	struct cm_store_conn c;
	struct cm_store_batch b;
	struct cm_storerow sr;
	struct cm_jdoc d;
	struct cm_err err;
};

static struct fix fx;

/* Runs sql on the test's connection and returns the first value of its
 * first row ("" when there is none), kept until the next call. */
static const char *sql(const char *q)
{
	static char out[4096];
	PGresult *r = PQexec(admin, q);

	assert_true(PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK);
	snprintf(out, sizeof(out), "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return out;
}

static int setup(void **state)
{
	memset(&h, 0, sizeof(h));
	sql("TRUNCATE events, matches, match_limits, profiles, profile_traits");
	sql("ALTER TABLE events DROP CONSTRAINT IF EXISTS no_poison");
	cm_store_conn_init(&fx.c, url, 2000, &hooks);
	cm_store_batch_init(&fx.b);
	cm_storerow_init(&fx.sr);
	cm_jdoc_init(&fx.d, 0);
	return 0;
}

static int teardown(void **state)
{
	cm_store_conn_release(&fx.c);
	cm_store_batch_release(&fx.b);
	cm_storerow_release(&fx.sr);
	cm_jdoc_release(&fx.d);
	return 0;
}

/* Adds line to the batch as cm-store does. */
static void add(const char *line)
{
	struct cm_event_view v;
	struct cm_storerow_counts n;

	assert_int_equal(cm_record_parse(&fx.d, line, strlen(line), &v, &fx.err), 0);
	assert_int_equal(cm_store_batch_add(&fx.b, &fx.sr, &fx.d, &v, &n, &fx.err), 0);
}

/* Adds event e-I of type t with properties p and matches m. */
static void add_event(int i, const char *type, const char *props, const char *matches)
{
	char line[1024];

	snprintf(line, sizeof(line),
	         "{\"event_id\":\"e-%d\",\"event_type\":\"%s\",\"user_id\":\"u-%d\","
	         "\"occurred_at\":\"2026-11-%02dT10:00:00Z\",\"properties\":%s%s%s%s}",
	         i, type, i % 3, 1 + i % 28, props, matches ? ",\"matches\":[" : "",
	         matches ? matches : "", matches ? "]" : "");
	add(line);
}

/* Stores the batch, expecting success, and empties it. */
static void store_ok(void)
{
	assert_int_equal(cm_store_batch_store(&fx.c, &fx.b, &fx.err), 0);
	for (size_t i = 0; i < fx.b.n; i++)
		assert_true(fx.b.rows[i].state == CM_STORE_STORED ||
		            fx.b.rows[i].state == CM_STORE_REFUSED ||
		            fx.b.rows[i].state == CM_STORE_SKIP);
}

static void test_copy_then_staged(void **state)
{
	assert_int_equal(cm_store_open(&fx.c, &fx.err), 0);
	for (int i = 0; i < 10; i++)
		add_event(i, "purchase", "{\"n\":1}",
		          i % 2 ? "{\"campaign_id\":1},{\"campaign_id\":2,\"outcome\":\"holdout\","
		                  "\"variant\":\"B\"}"
		                : NULL);
	store_ok();
	assert_int_equal(fx.c.st.events_new, 10);
	assert_int_equal(fx.c.st.matches_new, 10);
	assert_int_equal(fx.c.st.batches, 1);
	assert_int_equal(fx.c.staged_left, 0);
	assert_string_equal(sql("SELECT count(*) FROM events"), "10");
	assert_string_equal(
	    sql("SELECT outcome || '/' || variant FROM matches WHERE campaign_id = 2 "
	        "AND event_id = 'e-1'"),
	    "holdout/B");
	assert_string_equal(
	    sql("SELECT outcome || '/' || coalesce(variant, '-') FROM matches WHERE "
	        "campaign_id = 1 AND event_id = 'e-1'"),
	    "matched/-");
	/* again, with two new ones: COPY meets the old rows, the staging path
	 * stores the new ones only, and the connection stays careful */
	for (size_t i = 0; i < fx.b.n; i++)
		fx.b.rows[i].state = CM_STORE_PENDING;
	add_event(10, "purchase", "{}", "{\"campaign_id\":3}");
	add_event(11, "purchase", "{}", NULL);
	store_ok();
	assert_int_equal(fx.c.st.events_new, 12);
	assert_int_equal(fx.c.st.matches_new, 11);
	assert_int_equal(fx.c.staged_left, CM_STORE_STAGED_BATCHES - 1);
	assert_string_equal(sql("SELECT count(*) FROM events"), "12");
	assert_int_equal(h.retrying, 0);
}

static void test_bad_row_isolated(void **state)
{
	assert_int_equal(cm_store_open(&fx.c, &fx.err), 0);
	sql("ALTER TABLE events ADD CONSTRAINT no_poison CHECK (event_type <> 'poison')");
	for (int i = 0; i < 9; i++)
		add_event(i, i == 2 || i == 7 ? "poison" : "p", "{}", "{\"campaign_id\":1}");
	assert_int_equal(cm_store_batch_skip(&fx.b, &fx.err), 0);
	store_ok();
	assert_int_equal(h.nrefused, 2);
	assert_int_equal(h.refused[0], 2);
	assert_int_equal(h.refused[1], 7);
	assert_non_null(strstr(h.msg, "no_poison"));
	assert_int_equal(fx.b.rows[2].state, CM_STORE_REFUSED);
	assert_int_equal(fx.b.rows[9].state, CM_STORE_SKIP);
	assert_int_equal(fx.b.rows[8].state, CM_STORE_STORED);
	assert_int_equal(fx.c.st.refused, 2);
	assert_string_equal(sql("SELECT count(*) FROM events"), "7");
	assert_string_equal(sql("SELECT count(*) FROM matches"), "7");
}

/* Identify events and limited candidates are decided in the batch's
 * transaction, on the COPY path, the staging path and in halves. */
static void test_profiles_and_limits(void **state)
{
	static const char lim[] = "{\"campaign_id\":5,\"limit\":{\"per_user\":1}}";

	assert_int_equal(cm_store_open(&fx.c, &fx.err), 0);
	add_event(1, "identify", "{\"plan\":\"pro\",\"seats\":3}", NULL);
	add_event(4, "purchase", "{}", lim); /* u-1 */
	add_event(7, "purchase", "{}", lim); /* u-1 again: capped */
	add_event(2, "purchase", "{}", lim); /* u-2 */
	store_ok();
	assert_string_equal(sql("SELECT traits FROM profiles WHERE user_id = 'u-1'"),
	                    "{\"plan\": \"pro\", \"seats\": 3}");
	assert_string_equal(sql("SELECT string_agg(event_id || ':' || outcome || ':' || "
	                        "coalesce(capped_by, '-'), ',' ORDER BY event_id) FROM matches"),
	                    "e-2:matched:-,e-4:matched:-,e-7:capped:e-4");
	assert_int_equal(fx.c.st.matched, 2);
	assert_int_equal(fx.c.st.capped, 1);
	assert_int_equal(fx.c.st.profiles, 1);

	/* a redelivery with a later identify: staged, the same outcomes */
	for (size_t i = 0; i < fx.b.n; i++)
		fx.b.rows[i].state = CM_STORE_PENDING;
	add_event(28, "identify", "{\"plan\":null}", NULL);     /* u-1, 2026-11-01: older */
	add_event(10, "identify", "{\"plan\":\"team\"}", NULL); /* u-1, 2026-11-11: newer */
	store_ok();
	assert_int_equal(fx.c.staged_left, CM_STORE_STAGED_BATCHES - 1);
	assert_string_equal(sql("SELECT traits FROM profiles WHERE user_id = 'u-1'"),
	                    "{\"plan\": \"team\", \"seats\": 3}");
	assert_string_equal(sql("SELECT count(*) FROM matches"), "3");
	assert_int_equal(fx.c.st.matched, 4);
	assert_int_equal(fx.c.st.capped, 2);

	/* a bad row beside them: the halves still merge and decide theirs */
	cm_store_batch_reset(&fx.b);
	sql("ALTER TABLE events ADD CONSTRAINT no_poison CHECK (event_type <> 'poison')");
	add_event(5, "identify", "{\"country\":\"DE\"}", NULL); /* u-2 */
	add_event(8, "poison", "{}", NULL);
	add_event(11, "purchase", "{}", lim); /* u-2 again: capped */
	add_event(3, "purchase", "{}",
	          "{\"campaign_id\":6,\"outcome\":\"holdout\","
	          "\"limit\":{\"cooldown\":\"P1D\"}}");
	store_ok();
	assert_int_equal(h.nrefused, 1);
	assert_int_equal(h.refused[0], 1);
	assert_string_equal(sql("SELECT traits FROM profiles WHERE user_id = 'u-2'"),
	                    "{\"country\": \"DE\"}");
	assert_string_equal(sql("SELECT string_agg(event_id || ':' || outcome, ',' ORDER BY "
	                        "event_id) FROM matches WHERE event_id IN ('e-11', 'e-3')"),
	                    "e-11:capped,e-3:holdout");
	assert_string_equal(sql("SELECT count(*) FROM match_limits"), "3");
}

static void test_connection_lost(void **state)
{
	char q[128];

	assert_int_equal(cm_store_open(&fx.c, &fx.err), 0);
	snprintf(q, sizeof(q), "SELECT pg_terminate_backend(%d)", PQbackendPID(fx.c.pg));
	sql(q);
	add_event(1, "p", "{}", NULL);
	store_ok();
	assert_int_equal(h.retrying, 1);
	assert_int_equal(h.back, 1);
	assert_int_equal(fx.c.st.retries, 1);
	assert_non_null(strstr(h.msg, "PostgreSQL"));
	assert_string_equal(sql("SELECT count(*) FROM events"), "1");
}

static void test_giving_up(void **state)
{
	struct cm_store_conn c;
	struct cm_buf ci = CM_BUF_INIT;

	/* a database without the schema: a configuration error, at once */
	assert_int_equal(cm_buf_addf(&ci, "%s options=-csearch_path=nosuchschema", url), 0);
	cm_store_conn_init(&c, ci.data, 60000, &hooks);
	assert_int_equal(cm_store_open(&c, &fx.err), -1);
	assert_int_equal(fx.err.code, CM_EXIT_USAGE);
	assert_non_null(strstr(fx.err.msg, "cm-admin migrate"));
	assert_int_equal(h.retrying, 0);
	cm_store_conn_release(&c);

	/* no server: retried for the budget, then unreachable */
	cm_store_conn_init(&c, "host=/nonexistent port=1", 300, &hooks);
	assert_int_equal(cm_store_open(&c, &fx.err), -1);
	assert_int_equal(fx.err.code, CM_EXIT_UNREACHABLE);
	assert_non_null(strstr(fx.err.msg, "gave up: cannot connect to PostgreSQL"));
	assert_int_equal(h.retrying, 1);
	assert_true(c.st.retries >= 2);
	/* a batch there: the same, nothing stored; a stop ends it early */
	add_event(1, "p", "{}", NULL);
	h.stop_after = 2;
	c.retry_ms = 60000;
	assert_int_equal(cm_store_batch_store(&c, &fx.b, &fx.err), -1);
	assert_int_equal(fx.err.code, CM_EXIT_UNREACHABLE);
	assert_non_null(strstr(fx.err.msg, "interrupted: "));
	assert_int_equal(fx.b.rows[0].state, CM_STORE_PENDING);
	cm_store_conn_release(&c);
	cm_buf_release(&ci);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_copy_then_staged, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_row_isolated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_profiles_and_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_connection_lost, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_giving_up, setup, teardown),
	};
	struct cm_pg_migrations m;
	struct cm_err err;
	int rc;

	url = test_server("test_storebatch", "CM_TEST_DATABASE_URL");
	if (!url)
		return 1;
	admin = cm_pg_connect(url, &err);
	if (!admin || cm_pg_migrations_load(&m, "share/sql", &err) < 0 ||
	    cm_pg_migrate(admin, &m, NULL, NULL, &err) < 0) {
		fprintf(stderr, "test_storebatch: %s\n", err.msg);
		printf("not ok - test_storebatch: %s\n", err.msg);
		return 1;
	}
	cm_pg_migrations_release(&m);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	PQfinish(admin);
	return rc;
}
