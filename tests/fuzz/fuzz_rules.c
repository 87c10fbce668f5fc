/* fuzz_rules.c - libFuzzer harness for the campaign loader: any input either
 * loads or is reported as a list of problems, never a crash or a leak; a set
 * that loads and compiles matches a few fixed events, with results in
 * ascending id order. Inputs that carry a jq predicate are loaded but not
 * compiled (libjq takes ~25 ms per compile, which would stall the fuzzer);
 * the jq predicates get their own unit tests. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "json.h"
#include "rule.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

#define MAX_INPUT (64 * 1024)

static const char *const events[] = {
    "{\"event_id\":\"e-1\",\"event_type\":\"purchase\",\"user_id\":\"u-42\","
    "\"occurred_at\":\"2026-11-27T10:15:00Z\",\"properties\":{\"amount\":120.5,"
    "\"country\":\"DE\",\"items\":[{\"sku\":\"a\"}],\"tags\":[\"gift\"],\"vip\":true}}",
    "{\"event_id\":\"e-2\",\"event_type\":\"page_view\",\"user_id\":\"u-\\u00e9\","
    "\"occurred_at\":\"2026-01-01T00:00:00.5+02:00\",\"properties\":{\"amount\":\"5\","
    "\"country\":null,\"referrer\":\"https://t.co/x\"},\"_stream_id\":\"1-0\"}",
    "{\"event_id\":\"e-3\",\"event_type\":\"a\",\"user_id\":\"u\","
    "\"occurred_at\":\"1999-12-31T23:59:59Z\",\"properties\":{\"list\":[1,2,3]}}",
};

/* Counts problems and checks that each is one non-empty line. */
static void on_problem(void *ctx, const char *msg)
{
	int *n = ctx;

	CHECK(msg && *msg && !strchr(msg, '\n'));
	(*n)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cm_ruleset *s;
	int problems = 0, loaded;
	struct cm_jdoc d;
	struct cm_buf scratch;
	struct cm_err err;

	if (size > MAX_INPUT)
		return 0;
	s = cm_ruleset_new();
	CHECK(s);
	loaded = cm_ruleset_load(s, (const char *)data, size, "fuzz", on_problem, &problems);
	CHECK(loaded == problems);
	if (memmem(data, size, "jq", 2)) {
		cm_ruleset_free(s);
		return 0;
	}
	/* The single-campaign validator on the same text (one campaign, or
	 * an error). */
	(void)cm_campaign_validate((const char *)data, size, CM_RULE_ID_OPTIONAL, &err);
	CHECK(cm_ruleset_compile(s, on_problem, &problems) == problems);
	if (problems) {
		cm_ruleset_free(s);
		return 0;
	}
	CHECK(cm_ruleset_active(s) <= cm_ruleset_count(s));
	cm_jdoc_init(&d, 64);
	cm_buf_init(&scratch, 0);
	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		struct cm_rule_event ev;
		const int64_t *ids;
		size_t n;

		CHECK(cm_json_parse(&d, events[i], strlen(events[i]), &err) == 0);
		CHECK(cm_rule_event_init(&ev, &d, &scratch, &err) == 0);
		n = cm_ruleset_match(s, &ev, &ids);
		CHECK(n <= cm_ruleset_active(s));
		for (size_t k = 1; k < n; k++)
			CHECK(ids[k - 1] < ids[k]);
	}
	cm_jdoc_release(&d);
	cm_buf_release(&scratch);
	cm_ruleset_free(s);
	return 0;
}
