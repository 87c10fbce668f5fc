/* test_jqx.c - the chunked jq predicate set: truthiness, dedupe, chunking,
 * per-slot compile errors and the guard that keeps a predicate in its slot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <jv.h>

#include "buf.h"
#include "err.h"
#include "json.h"
#include "jqx.h"

/* Collects the slots reported as bad and their messages. */
struct bad {
	int n;
	uint32_t slot[16];
	char msg[16][256];
};

static void on_bad(void *ctx, uint32_t slot, const char *msg)
{
	struct bad *b = ctx;

	if (b->n < 16) {
		b->slot[b->n] = slot;
		snprintf(b->msg[b->n], sizeof(b->msg[0]), "%s", msg);
	}
	b->n++;
}

/* Adds text and returns its slot, failing the test when it is refused. */
static uint32_t add(struct cm_jqx *x, const char *text)
{
	struct cm_err err;
	int64_t slot = cm_jqx_add(x, text, strlen(text), &err);

	if (slot < 0)
		fail_msg("cm_jqx_add(%s): %s", text, err.msg);
	return (uint32_t)slot;
}

/* Evaluates slot on the JSON text in. */
static int eval(struct cm_jqx *x, uint32_t slot, const char *in, struct cm_err *err)
{
	jv v = jv_parse(in);
	int r;

	assert_true(jv_is_valid(v));
	r = cm_jqx_eval(x, slot, v, err);
	jv_free(v);
	return r;
}

static void test_truthiness(void **state)
{
	struct cm_jqx *x = cm_jqx_new();
	struct cm_err err;
	uint32_t t, f, n, e, z, none, many, err1, idx, halt, input;

	(void)state;
	assert_non_null(x);
	t = add(x, "true");
	f = add(x, "false");
	n = add(x, "null");
	e = add(x, "empty");
	z = add(x, "0");
	none = add(x, ".missing");
	many = add(x, "(false, true)");
	err1 = add(x, "error(\"boom\")");
	idx = add(x, ".a.b");
	halt = add(x, "halt");
	input = add(x, "input");
	assert_int_equal(cm_jqx_compile(x, on_bad, NULL, &err), 0);
	assert_int_equal(eval(x, t, "{}", &err), CM_JQX_TRUE);
	assert_int_equal(eval(x, f, "{}", &err), CM_JQX_FALSE);
	assert_int_equal(eval(x, n, "{}", &err), CM_JQX_FALSE);
	/* No output at all is false, not an error. */
	assert_int_equal(eval(x, e, "{}", &err), CM_JQX_FALSE);
	/* 0 is truthy in jq. */
	assert_int_equal(eval(x, z, "{}", &err), CM_JQX_TRUE);
	assert_int_equal(eval(x, none, "{}", &err), CM_JQX_FALSE);
	/* Only the first output counts. */
	assert_int_equal(eval(x, many, "{}", &err), CM_JQX_FALSE);
	assert_int_equal(eval(x, err1, "{}", &err), CM_JQX_ERROR);
	assert_string_equal(err.msg, "boom");
	assert_int_equal(eval(x, idx, "{\"a\":\"s\"}", &err), CM_JQX_ERROR);
	assert_non_null(strstr(err.msg, "Cannot index string"));
	assert_int_equal(eval(x, idx, "{\"a\":{\"b\":1}}", &err), CM_JQX_TRUE);
	/* halt ends the program without output; the state works afterwards. */
	assert_int_equal(eval(x, halt, "{}", &err), CM_JQX_FALSE);
	assert_int_equal(eval(x, t, "{}", &err), CM_JQX_TRUE);
	/* A predicate's own input finds nothing (the slot number is not
	 * leaked to it). */
	assert_int_equal(eval(x, input, "{}", &err), CM_JQX_ERROR);
	assert_int_equal(eval(x, t, "{}", &err), CM_JQX_TRUE);
	cm_jqx_free(x);
}

static void test_dedupe(void **state)
{
	struct cm_jqx *x = cm_jqx_new();
	struct cm_err err;
	uint32_t a, b, c;

	(void)state;
	a = add(x, ".x > 1");
	b = add(x, ".x > 2");
	c = add(x, ".x > 1");
	assert_int_equal(a, c);
	assert_int_not_equal(a, b);
	assert_int_equal(cm_jqx_count(x), 2);
	assert_int_equal(cm_jqx_compile(x, on_bad, NULL, &err), 0);
	assert_int_equal(eval(x, a, "{\"x\":2}", &err), CM_JQX_TRUE);
	assert_int_equal(eval(x, b, "{\"x\":2}", &err), CM_JQX_FALSE);
	cm_jqx_free(x);
}

/* 300 distinct predicates span several chunks; each slot must run its own
 * expression. */
static void test_chunking(void **state)
{
	struct cm_jqx *x = cm_jqx_new();
	struct cm_err err;
	uint32_t slot[300];
	char text[64], in[64];

	(void)state;
	for (int i = 0; i < 300; i++) {
		snprintf(text, sizeof(text), ". == %d", i);
		slot[i] = add(x, text);
		assert_int_equal(slot[i], i);
	}
	assert_int_equal(cm_jqx_compile(x, on_bad, NULL, &err), 0);
	for (int i = 0; i < 300; i++) {
		snprintf(in, sizeof(in), "%d", i);
		assert_int_equal(eval(x, slot[i], in, &err), CM_JQX_TRUE);
		snprintf(in, sizeof(in), "%d", i + 1);
		assert_int_equal(eval(x, slot[i], in, &err), CM_JQX_FALSE);
	}
	/* Slots added after a compile are compiled by the next one. */
	slot[0] = add(x, ". == \"late\"");
	assert_int_equal(cm_jqx_compile(x, on_bad, NULL, &err), 0);
	assert_int_equal(eval(x, slot[0], "\"late\"", &err), CM_JQX_TRUE);
	assert_int_equal(eval(x, 5, "5", &err), CM_JQX_TRUE);
	cm_jqx_free(x);
}

/* Bad predicates among good ones: each is reported with jq's message and
 * the others keep working. */
static void test_bad_among_good(void **state)
{
	struct cm_jqx *x = cm_jqx_new();
	struct bad bad;
	struct cm_err err;
	uint32_t syn = 0, undef = 0, var = 0, good[150];
	char text[64], in[64];

	(void)state;
	memset(&bad, 0, sizeof(bad));
	for (int i = 0; i < 150; i++) {
		snprintf(text, sizeof(text), ".n == %d", i);
		good[i] = add(x, text);
		if (i == 40)
			syn = add(x, ".a ~ b");
		if (i == 90)
			undef = add(x, "nosuchfn(1)");
		if (i == 120)
			var = add(x, "$nope");
	}
	assert_int_equal(cm_jqx_compile(x, on_bad, &bad, &err), 3);
	assert_int_equal(bad.n, 3);
	assert_int_equal(bad.slot[0], syn);
	assert_non_null(strstr(bad.msg[0], "syntax error"));
	assert_int_equal(bad.slot[1], undef);
	assert_non_null(strstr(bad.msg[1], "nosuchfn/1 is not defined"));
	assert_int_equal(bad.slot[2], var);
	assert_non_null(strstr(bad.msg[2], "$nope is not defined"));
	/* jq's own prefix and source excerpt are not in the message. */
	assert_null(strstr(bad.msg[0], "jq: error"));
	assert_null(strchr(bad.msg[0], '\n'));
	assert_int_equal(eval(x, syn, "{}", &err), CM_JQX_ERROR);
	/* Each good slot still runs its own expression (the groups split
	 * around the bad ones dispatch correctly). */
	for (int i = 0; i < 150; i++) {
		snprintf(in, sizeof(in), "{\"n\":%d}", i);
		assert_int_equal(eval(x, good[i], in, &err), CM_JQX_TRUE);
		snprintf(in, sizeof(in), "{\"n\":%d}", i + 1);
		assert_int_equal(eval(x, good[i], in, &err), CM_JQX_FALSE);
	}
	cm_jqx_free(x);
}

/* Texts that could close the parentheses around their slot are refused. */
static void test_guard(void **state)
{
	static const char *const bad[] = {
	    "true)) else first((false",
	    "1)",
	    "(1",
	    "[1,2",
	    "{a:1]",
	    "\"unterminated",
	    "\"\\(1\"",
	    ". # ends with a backslash \\",
	};
	static const char *const good[] = {
	    "\"a(\" | length > 0",
	    ". # )) a comment with brackets\n| true",
	    "\"\\(1))\" == \"1)\"",
	    "{a: [1, (2)]} | .a[1] == 2",
	    "def f: .; f | true",
	    "\"x\\\"(\" != \"\"",
	    "reduce (1,2) as $i (0; . + $i) == 3",
	};
	struct cm_jqx *x = cm_jqx_new();
	struct cm_err err;
	char nul[] = "1 \0 2";

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(cm_jqx_guard(bad[i], strlen(bad[i]), &err), -1);
		assert_true(cm_jqx_add(x, bad[i], strlen(bad[i]), &err) < 0);
	}
	assert_int_equal(cm_jqx_guard(nul, sizeof(nul) - 1, &err), -1);
	assert_non_null(strstr(err.msg, "NUL"));
	assert_int_equal(cm_jqx_guard("(1", 2, &err), -1);
	assert_string_equal(err.msg, "'(' at byte 1 is never closed");
	assert_int_equal(cm_jqx_guard("a)", 2, &err), -1);
	assert_string_equal(err.msg, "unbalanced ')' at byte 2");
	assert_true(cm_jqx_add(x, "", 0, &err) < 0);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint32_t s = add(x, good[i]);

		assert_int_equal(cm_jqx_compile(x, on_bad, NULL, &err), 0);
		assert_int_equal(eval(x, s, "{}", &err), CM_JQX_TRUE);
	}
	cm_jqx_free(x);
}

/* ---- the native evaluator against libjq ---- */

/* libjq's answers for each slot on each event (ans[slot * n + event]),
 * computed in a child process: libjq 1.6 itself leaks in some builtins
 * (ltrimstr and rtrimstr on non-strings, index on arrays), and a child that
 * ends with _exit is not leak-checked, while everything of ours still runs
 * in the parent. */
static void jq_answers(struct cm_jqx *x, const uint32_t *slots, size_t nslots,
                       const char *const *events, size_t n, signed char *ans)
{
	int fd[2];
	pid_t pid;
	size_t got = 0, total = nslots * n;
	int status;

	assert_int_equal(pipe(fd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fd[0]);
		for (size_t e = 0; e < n; e++) {
			jv v = jv_parse(events[e]);

			for (size_t k = 0; k < nslots; k++) {
				struct cm_err err;

				ans[k * n + e] = (signed char)cm_jqx_eval(x, slots[k], v, &err);
			}
			jv_free(v);
		}
		_exit(write(fd[1], ans, total) == (ssize_t)total ? 0 : 1);
	}
	close(fd[1]);
	while (got < total) {
		ssize_t r = read(fd[0], ans + got, total - got);

		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(got, total);
}

/* Evaluates every slot on every event natively and compares with libjq's
 * answers where the native evaluator answers. Returns how often it did. */
static int both(struct cm_jqx *x, const uint32_t *slots, const char *const *exprs, size_t nslots,
                const char *const *events, size_t n)
{
	signed char *ans = malloc(nslots * n);
	int answered = 0;

	assert_non_null(ans);
	jq_answers(x, slots, nslots, events, n, ans);
	for (size_t e = 0; e < n; e++) {
		struct cm_jdoc d;
		struct cm_err err;

		cm_jdoc_init(&d, 64);
		if (cm_json_parse(&d, events[e], strlen(events[e]), &err) < 0)
			fail_msg("bad test event %s: %s", events[e], err.msg);
		for (size_t k = 0; k < nslots; k++) {
			int native = cm_jqx_eval_doc(x, slots[k], &d);

			if (native == CM_JQX_FALLBACK)
				continue;
			if (native != ans[k * n + e])
				fail_msg("native %d, jq %d for %s on %s", native, ans[k * n + e],
				         exprs[k], events[e]);
			answered++;
		}
		cm_jdoc_release(&d);
	}
	free(ans);
	return answered;
}

/* The rule engine's jq input has a "profile" member that is not in the
 * event's document: the native evaluator answers with the profile's
 * document (or {} without one) as libjq does on the merged object. */
static void test_native_profile(void **state)
{
	static const char *const exprs[] = {
	    ".profile.plan == \"pro\"",
	    "(.profile.seats // 0) >= 10",
	    ".profile",
	    ".profile.plan",
	    ".[\"profile\"].plan | startswith(\"p\")",
	    "(. | .profile.address.city) == \"Berlin\"",
	    "[.profile.seats, .properties.n] | add > 5",
	    ".profile.profile",
	    ".properties.profile == null",
	    "(.profile.tags // []) | index(\"vip\") != null",
	    ".profile | length == 0",
	};
	static const char *const events[] = {
	    "{\"event_id\":\"e\",\"user_id\":\"u\",\"properties\":{\"n\":3}}",
	    "{\"event_id\":\"e\",\"user_id\":\"u\",\"properties\":{\"n\":3,\"profile\":1}}",
	};
	static const char *const profiles[] = {
	    NULL,
	    "{}",
	    "{\"plan\":\"pro\",\"seats\":12,\"address\":{\"city\":\"Berlin\"},\"tags\":[\"vip\"]}",
	    "{\"plan\":\"basic\",\"seats\":\"x\",\"profile\":true}",
	    "{\"plan\":null}",
	};
	enum {
		NE = sizeof(events) / sizeof(events[0]),
		NP = sizeof(profiles) / sizeof(profiles[0])
	};
	const char *merged[NE * NP];
	char buf[NE * NP][512];
	uint32_t slots[sizeof(exprs) / sizeof(exprs[0])];
	size_t nx = sizeof(exprs) / sizeof(exprs[0]);
	signed char ans[sizeof(exprs) / sizeof(exprs[0]) * NE * NP];
	struct cm_jqx *x = cm_jqx_new();
	struct cm_err err;
	int answered = 0;

	(void)state;
	assert_non_null(x);
	for (size_t i = 0; i < nx; i++)
		slots[i] = add(x, exprs[i]);
	assert_int_equal(cm_jqx_compile(x, NULL, NULL, &err), 0);
	/* libjq's input: the event with the profile member added. */
	for (size_t e = 0; e < NE; e++)
		for (size_t p = 0; p < NP; p++) {
			snprintf(buf[e * NP + p], sizeof(buf[0]), "%.*s,\"profile\":%s}",
			         (int)strlen(events[e]) - 1, events[e],
			         profiles[p] ? profiles[p] : "{}");
			merged[e * NP + p] = buf[e * NP + p];
		}
	jq_answers(x, slots, nx, merged, NE * NP, ans);
	for (size_t e = 0; e < NE; e++)
		for (size_t p = 0; p < NP; p++) {
			struct cm_jdoc d, pd;

			cm_jdoc_init(&d, 64);
			cm_jdoc_init(&pd, 64);
			assert_int_equal(cm_json_parse(&d, events[e], strlen(events[e]), &err), 0);
			if (profiles[p])
				assert_int_equal(
				    cm_json_parse(&pd, profiles[p], strlen(profiles[p]), &err), 0);
			for (size_t k = 0; k < nx; k++) {
				int native =
				    cm_jqx_eval_event(x, slots[k], &d, profiles[p] ? &pd : NULL);

				if (native == CM_JQX_FALLBACK)
					continue;
				if (native != ans[k * NE * NP + e * NP + p])
					fail_msg("native %d, jq %d for %s on %s", native,
					         ans[k * NE * NP + e * NP + p], exprs[k],
					         merged[e * NP + p]);
				answered++;
			}
			cm_jdoc_release(&d);
			cm_jdoc_release(&pd);
		}
	/* Most of these run natively (".profile | length" on an object does
	 * not). */
	assert_true(answered >= (int)((nx - 1) * NE * NP * 3 / 4));
	cm_jqx_free(x);
}

static void test_native_cases(void **state)
{
	static const struct {
		const char *expr;
		int native; /* expected to have a native form */
	} exprs[] = {
	    {"(.occurred_at[5:7] | tonumber) >= 6", 1},
	    {"(.properties.amount // 0) > 200", 1},
	    {"(.properties.cart.lines // 0) > 2", 1},
	    {"(.properties.country // \"\") | test(\"^(DE|AT|CH)$\")", 1},
	    {"(.properties.items // 0) >= 2", 1},
	    {"(.properties.referrer // \"\") | startswith(\"https://t.co/\")", 1},
	    {"(.properties.tags // []) | index(\"gift\") != null", 1},
	    {"(.properties.tags // []) | length >= 2", 1},
	    {"(.user_id | ltrimstr(\"u-\") | tonumber) % 7 == 3", 1},
	    {".properties.channel == \"web\" and ([.properties.amount // 0, (.properties.items // "
	     "0) "
	     "* 10] | add) > 100",
	     1},
	    {".properties | not", 1},
	    {".properties.x.y // \"d\" | endswith(\"d\")", 1},
	    {".properties.tags[-1] == \"new\" or .properties.tags[0] == \"gift\"", 1},
	    {".properties.name | contains(\"é\")", 1},
	    {".properties.name[1:] | length", 1},
	    {".properties.name | rtrimstr(\"é\") | length == 3", 1},
	    {"(.properties.amount / 2) - 1 < 100", 1},
	    {".[\"properties\"].amount", 1},
	    {".properties.\"amount\"", 1},
	    {"[.properties.amount, null, 1] | add", 1},
	    {"false // null // 3", 1},
	    {"1 + null == 1", 1},
	    {".properties.amount | tonumber", 1},
	    {".properties.amount % 0", 1},
	    {"(.properties.amount | length) == 5", 1},
	    {"(.properties.amount % 2) == 1", 1},
	    {"(.properties.amount % 3) == -1", 1},
	    {".properties.name[-9:2] == \"ca\"", 1},
	    {".properties.name[3:1] == \"\"", 1},
	    {".properties.name[-2:] == \"fé\"", 1},
	    {"(.properties.name | length) == 4", 1},
	    {"(.properties.name | index(\"é\")) == 3", 1},
	    {"(.properties.tags | index(\"new\")) == 1", 1},
	    {"(.properties.word | index(\"a\")) == 2", 1},
	    {"if . then 1 else 2 end", 0},
	    {".properties | keys", 0},
	    {".a, .b", 0},
	    {".a?", 0},
	    {"$__loc__", 0},
	    {".properties.country | test(\"^de\"; \"i\")", 0},
	    {".properties.country | test(\"\\\\d\")", 0},
	    {".properties.country | test(\"a{2}\")", 0},
	    {".properties.country | test(\"(?i)de\")", 0},
	    {".a == 1 == true", 0},
	    {"\"\\(.a)\"", 0},
	};
	static const char *const events[] = {
	    "{\"user_id\":\"u-17\",\"occurred_at\":\"2026-07-01T00:00:00Z\",\"properties\":{"
	    "\"amount\":250,\"country\":\"DE\",\"items\":3,\"cart\":{\"lines\":4},\"tags\":["
	    "\"gift\","
	    "\"new\"],\"referrer\":\"https://t.co/x\",\"channel\":\"web\",\"name\":\"café\"}}",
	    "{\"user_id\":\"u-3\",\"occurred_at\":\"2026-01-01T00:00:00Z\",\"properties\":{"
	    "\"amount\":\"300\",\"country\":\"de\",\"items\":null,\"cart\":5,\"tags\":\"gift\","
	    "\"referrer\":7,\"channel\":\"ios\",\"name\":\"caf\\u00e9\"}}",
	    "{\"user_id\":\"x-9\",\"occurred_at\":\"2026-12-31T23:59:59Z\",\"properties\":{"
	    "\"amount\":1e400,\"country\":\"DE\\n\",\"tags\":[],\"name\":\"\",\"x\":{\"y\":\"od\"}}"
	    "}",
	    "{\"user_id\":\"u-\",\"occurred_at\":\"2026\",\"properties\":null}",
	    "{\"properties\":{\"amount\":-5,\"name\":\"café\",\"tags\":[\"x\",\"new\"]}}",
	    "{\"properties\":{\"amount\":5.9,\"word\":\"éa\"}}",
	    "{\"properties\":{\"amount\":-7}}",
	    "{\"user_id\":\"u-0010\",\"occurred_at\":\"2026-03-04T00:00:00Z\",\"properties\":{"
	    "\"amount\":-0,\"tags\":[1,\"gift\",[\"gift\"]],\"country\":[\"DE\"],\"name\":\"ééé\"}"
	    "}",
	};
	struct cm_jqx *x = cm_jqx_new();
	struct cm_err err;
	uint32_t slot[sizeof(exprs) / sizeof(exprs[0])];
	const char *texts[sizeof(exprs) / sizeof(exprs[0])];
	int answered;

	(void)state;
	for (size_t i = 0; i < sizeof(exprs) / sizeof(exprs[0]); i++) {
		slot[i] = add(x, exprs[i].expr);
		texts[i] = exprs[i].expr;
	}
	assert_int_equal(cm_jqx_compile(x, NULL, NULL, &err), 1); /* the chained == */
	for (size_t i = 0; i < sizeof(exprs) / sizeof(exprs[0]); i++) {
		if (cm_jqx_native(x, slot[i]) != exprs[i].native)
			fail_msg("native form of %s: expected %d", exprs[i].expr, exprs[i].native);
	}
	answered = both(x, slot, texts, sizeof(exprs) / sizeof(exprs[0]), events,
	                sizeof(events) / sizeof(events[0]));
	assert_true(answered > 80);
	cm_jqx_free(x);
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

/* A random expression of the subset (and a little beyond it). */
static void gen_expr(struct cm_buf *b, int depth)
{
	static const char *const paths[] = {
	    ".",       ".a",       ".s",       ".n",       ".arr",     ".o",     ".o.k",
	    ".a.b",    ".arr[0]",  ".arr[-1]", ".arr[5]",  ".s[1:3]",  ".s[:2]", ".s[-2:]",
	    ".n[0]",   ".o.k.z",   ".\"s\"",   ".[\"n\"]", ".missing", ".s[1:]", ".arr[1]",
	    ".s[3:1]", ".s[2:-5]", ".s[-9:2]", ".s[:-1]",  ".s[0:0]",
	};
	static const char *const lits[] = {"0",    "1",     "2.5",    "-1",    "1e2",
	                                   "\"\"", "\"a\"", "\"ab\"", "\"é\"", "\"10\"",
	                                   "null", "true",  "false",  "[]",    "[1,\"a\"]"};
	static const char *const ops[] = {" // ", " and ", " or ", " == ", " != ", " < ", " <= ",
	                                  " > ",  " >= ",  " + ",  " - ",  " * ",  " / ", " % "};
	static const char *const fns[] = {"length",
	                                  "not",
	                                  "tonumber",
	                                  "add",
	                                  "startswith(\"a\")",
	                                  "endswith(\"b\")",
	                                  "ltrimstr(\"a\")",
	                                  "rtrimstr(\"1\")",
	                                  "test(\"^a.*b$\")",
	                                  "test(\"[0-9]+\")",
	                                  "index(\"a\")",
	                                  "index(1)",
	                                  "contains(\"b\")",
	                                  "startswith(.s)",
	                                  "ascii_downcase"};
	uint32_t k = rnd(depth > 3 ? 2 : 6);

	switch (k) {
	case 0:
		cm_buf_adds(b, paths[rnd(sizeof(paths) / sizeof(paths[0]))]);
		break;
	case 1:
		cm_buf_adds(b, lits[rnd(sizeof(lits) / sizeof(lits[0]))]);
		break;
	case 2:
	case 3:
		cm_buf_addc(b, '(');
		gen_expr(b, depth + 1);
		cm_buf_adds(b, ops[rnd(sizeof(ops) / sizeof(ops[0]))]);
		gen_expr(b, depth + 1);
		cm_buf_addc(b, ')');
		break;
	case 4:
		cm_buf_addc(b, '(');
		gen_expr(b, depth + 1);
		cm_buf_adds(b, " | ");
		cm_buf_adds(b, fns[rnd(sizeof(fns) / sizeof(fns[0]))]);
		cm_buf_addc(b, ')');
		break;
	default:
		cm_buf_addc(b, '[');
		gen_expr(b, depth + 1);
		cm_buf_addc(b, ',');
		gen_expr(b, depth + 1);
		cm_buf_addc(b, ']');
		break;
	}
}

/* A random event-like object with values of every type. */
static void gen_event(struct cm_buf *b)
{
	static const char *const vals[] = {"null",         "true",
	                                   "false",        "0",
	                                   "-0",           "1",
	                                   "2.5",          "10",
	                                   "1e400",        "-7",
	                                   "\"\"",         "\"a\"",
	                                   "\"ab\"",       "\"b\"",
	                                   "\"a1b\"",      "\"10\"",
	                                   "\"1e2\"",      "\" 5\"",
	                                   "\"é\"",        "\"aéb\"",
	                                   "5.9",          "-2.5",
	                                   "\"007\"",      "\"-3.5e1\"",
	                                   "\"a\\nb\"",    "\"\\u0061b\"",
	                                   "[]",           "[1,\"a\"]",
	                                   "[\"a\",null]", "{}",
	                                   "{\"k\":1}",    "{\"k\":{\"z\":\"a\"}}",
	                                   "\"abcdef\"",   "[1,2,3]"};
	static const char *const keys[] = {"a", "s", "n", "arr", "o"};

	cm_buf_addc(b, '{');
	for (int i = 0; i < 5; i++) {
		if (i)
			cm_buf_addc(b, ',');
		cm_buf_addf(b, "\"%s\":%s", keys[i], vals[rnd(sizeof(vals) / sizeof(vals[0]))]);
	}
	cm_buf_addc(b, '}');
}

static void test_native_random(void **state)
{
	struct cm_jqx *x = cm_jqx_new();
	struct cm_buf expr, event;
	struct cm_err err;
	uint32_t nexpr = 0, native = 0;
	uint32_t slots[300];
	char *texts[300], *events[80];
	int answered = 0, runs = 0;

	(void)state;
	cm_buf_init(&expr, 0);
	cm_buf_init(&event, 0);
	for (int i = 0; i < 300; i++) {
		static const char *const cmps[] = {" == ", " != ", " < ", " >= "};
		static const char *const lits[] = {
		    "0",     "1",     "3",    "-1",    "0.5",  "7",  "\"\"", "\"a\"",
		    "\"b\"", "\"é\"", "null", "false", "true", "[]", "2",    "4"};

		cm_buf_reset(&expr);
		/* Most predicates compare the generated value with a literal, so
		 * that values, not only truthiness, are checked. */
		if (rnd(4)) {
			cm_buf_addc(&expr, '(');
			gen_expr(&expr, 0);
			cm_buf_addf(&expr, ")%s%s", cmps[rnd(4)], lits[rnd(16)]);
		} else {
			gen_expr(&expr, 0);
		}
		slots[nexpr] = add(x, expr.data);
		texts[nexpr] = strdup(expr.data);
		nexpr++;
	}
	cm_jqx_compile(x, NULL, NULL, &err);
	for (uint32_t i = 0; i < nexpr; i++)
		native += (uint32_t)cm_jqx_native(x, slots[i]);
	for (int e = 0; e < 80; e++) {
		cm_buf_reset(&event);
		gen_event(&event);
		events[e] = strdup(event.data);
	}
	answered =
	    both(x, slots, (const char *const *)texts, nexpr, (const char *const *)events, 80);
	runs = (int)nexpr * 80;
	/* Most generated expressions have a native form, and it answers a
	 * good share of the runs (the others are jq errors or unmodelled). */
	assert_true(native > nexpr * 3 / 4);
	assert_true(answered > runs / 4);
	for (uint32_t i = 0; i < nexpr; i++)
		free(texts[i]);
	for (int e = 0; e < 80; e++)
		free(events[e]);
	cm_buf_release(&expr);
	cm_buf_release(&event);
	cm_jqx_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_truthiness),    cmocka_unit_test(test_dedupe),
	    cmocka_unit_test(test_chunking),      cmocka_unit_test(test_bad_among_good),
	    cmocka_unit_test(test_guard),         cmocka_unit_test(test_native_cases),
	    cmocka_unit_test(test_native_random), cmocka_unit_test(test_native_profile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
