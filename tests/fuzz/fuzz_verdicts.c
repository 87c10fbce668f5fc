/* fuzz_verdicts.c - differential libFuzzer harness for the one definition of
 * an event: for any input line, the entry paths of every tool agree, and what
 * cm-ingest writes every tool accepts.
 *
 * The entry paths are the library calls each tool makes on a line:
 *   cm-ingest   cm_json_parse + cm_event_normalize (its JSON path)
 *   cm-publish  cm_event_parse
 *   cm-consume  cm_event_parse
 *   cm-match    cm_json_parse + cm_rule_event_init
 *   cm-store    cm_record_parse (an event, or a match line)
 * Checked: the four that read canonical events give the same verdict (and,
 * once the line parses, the same message); cm-store agrees on every line
 * without a top-level "campaign_id" and takes a match line only when the
 * others refuse it as an event; a line cm-ingest writes is accepted by all,
 * also with what the tools after it add (cm-consume's "_stream_id", then
 * cm-match's "matches", or the match line cm-match --emit matches makes
 * from it, both also with an outcome and a campaign's limit), and
 * normalises to itself. The same holds for the CSV builder's
 * lines (cm_event_build), from the input split at 0x1f bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "event.h"
#include "json.h"
#include "parts.h"
#include "rule.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_verdicts: %s:%d: %s\n", __FILE__, __LINE__, #c);     \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* 2026-11-27T10:15:00Z, so that runs are reproducible. */
#define NOW 1795774500000LL

/* The verdict and message of one entry path. */
struct verdict {
	int ok;
	char msg[sizeof(((struct cm_err *)0)->msg) + 16];
};

/* cm-publish's and cm-consume's path. */
static void v_event(const char *s, size_t n, struct verdict *v, struct cm_event_view *view)
{
	struct cm_jdoc d;
	struct cm_err err;

	cm_jdoc_init(&d, 64);
	v->ok = cm_event_parse(&d, s, n, view, &err) == 0;
	snprintf(v->msg, sizeof(v->msg), "%s", v->ok ? "" : err.msg);
	cm_jdoc_release(&d);
}

/* cm-match's path; parse failures get cm-match's own prefix. */
static void v_match(const char *s, size_t n, struct verdict *v)
{
	struct cm_jdoc d;
	struct cm_buf scratch = CM_BUF_INIT;
	struct cm_rule_event ev;
	struct cm_err err;

	cm_jdoc_init(&d, 64);
	if (cm_json_parse(&d, s, n, &err) < 0) {
		v->ok = 0;
		snprintf(v->msg, sizeof(v->msg), "invalid JSON: %s", err.msg);
	} else {
		v->ok = cm_rule_event_init(&ev, &d, &scratch, &err) == 0;
		snprintf(v->msg, sizeof(v->msg), "%s", v->ok ? "" : err.msg);
		if (v->ok) {
			CHECK(ev.type_len >= 1 && ev.type_len <= CM_EVENT_TYPE_MAX);
			CHECK(cm_event_type_ok(ev.type, ev.type_len));
			CHECK(d.tok[ev.id_tok].type == CM_JSTR &&
			      d.tok[ev.user_tok].type == CM_JSTR);
		}
	}
	cm_buf_release(&scratch);
	cm_jdoc_release(&d);
}

/* cm-store's staging path; *is_match tells what it took the line for. */
static void v_store(const char *s, size_t n, struct verdict *v, int *is_match)
{
	struct cm_jdoc d;
	struct cm_event_view view;
	struct cm_err err;

	cm_jdoc_init(&d, 64);
	v->ok = cm_record_parse(&d, s, n, &view, &err) == 0;
	snprintf(v->msg, sizeof(v->msg), "%s", v->ok ? "" : err.msg);
	*is_match = v->ok && view.is_match;
	cm_jdoc_release(&d);
}

/* True when s[0..n) has a top-level "campaign_id" (cm-store's match lines). */
static int has_campaign(const char *s, size_t n)
{
	struct cm_jdoc d;
	struct cm_err err;
	int rc;

	cm_jdoc_init(&d, 64);
	rc =
	    cm_json_parse(&d, s, n, &err) == 0 && cm_json_get(&d, 0, "campaign_id", 11) != CM_JNONE;
	cm_jdoc_release(&d);
	return rc;
}

/* Checks that every tool's entry path agrees on line s[0..n). */
static void agree(const char *s, size_t n)
{
	struct verdict pub, match, store;
	struct cm_event_view view;
	int is_match;

	v_event(s, n, &pub, &view);
	v_match(s, n, &match);
	v_store(s, n, &store, &is_match);
	CHECK(pub.ok == match.ok);
	CHECK(!strcmp(pub.msg, match.msg));
	if (!has_campaign(s, n)) {
		CHECK(store.ok == pub.ok);
		CHECK(!strcmp(store.msg, pub.msg));
		CHECK(!is_match);
	} else {
		CHECK(!pub.ok);
		CHECK(!store.ok || is_match);
	}
	if (!pub.ok)
		CHECK(pub.msg[0]);
}

/* Checks that a line a tool wrote (cm-ingest, or the CSV builder) is taken
 * by every tool after it, as written and with what they add. */
static void accepted_downstream(const char *s, size_t n)
{
	struct cm_event_view view;
	struct verdict v;
	struct cm_buf line = CM_BUF_INIT, again = CM_BUF_INIT;
	struct cm_jdoc d;
	struct cm_err err;
	int is_match;

	CHECK(n > 2 && s[0] == '{' && s[n - 1] == '}' && !memchr(s, '\n', n));
	agree(s, n);
	v_event(s, n, &v, &view);
	CHECK(v.ok);
	/* it normalises to itself: cm-ingest is idempotent */
	cm_jdoc_init(&d, 64);
	CHECK(cm_json_parse(&d, s, n, &err) == 0);
	CHECK(cm_event_normalize(&d, 0, s, n, NOW, &again, &err) == 0);
	CHECK(again.len == n && !memcmp(again.data, s, n));
	/* cm-consume adds "_stream_id", then cm-match "matches" (both before
	 * the closing brace) */
	CHECK(cm_buf_add(&line, s, n - 1) == 0);
	CHECK(cm_buf_adds(&line, ",\"_stream_id\":\"1795774500000-0\"") == 0);
	CHECK(cm_buf_addc(&line, '}') == 0);
	agree(line.data, line.len);
	line.len--;
	CHECK(cm_buf_adds(
	          &line,
	          ",\"matches\":[{\"campaign_id\":1},{\"campaign_id\":9223372036854775807,"
	          "\"outcome\":\"holdout\",\"variant\":\"B\"},{\"campaign_id\":3,"
	          "\"outcome\":\"matched\",\"limit\":{\"per_user\":1,\"cooldown\":\"P7D\"}}]}") ==
	      0);
	v_store(line.data, line.len, &v, &is_match);
	CHECK(v.ok && !is_match);
	agree(line.data, line.len);
	/* and cm-match --emit matches makes a match line of its fields */
	cm_buf_reset(&line);
	CHECK(cm_buf_adds(&line, "{\"campaign_id\":7") == 0);
	{
		const uint32_t f[4] = {view.id, view.user, view.type, view.time};
		static const char *const names[4] = {
		    ",\"event_id\":", ",\"user_id\":", ",\"event_type\":", ",\"occurred_at\":"};

		for (int i = 0; i < 4; i++) {
			const struct cm_jtok *t = &d.tok[f[i]];

			CHECK(cm_buf_adds(&line, names[i]) == 0);
			CHECK(cm_buf_add(&line, d.src + t->off - 1, (size_t)t->len + 2) == 0);
		}
	}
	CHECK(cm_buf_addc(&line, '}') == 0);
	v_store(line.data, line.len, &v, &is_match);
	CHECK(v.ok && is_match);
	/* with the outcome and the campaign's limit, as a worker's cm-match
	 * writes a candidate of a limited campaign */
	line.len--;
	CHECK(cm_buf_adds(&line, ",\"outcome\":\"holdout\",\"limit\":{\"cooldown\":\"PT12H\"}}") ==
	      0);
	v_store(line.data, line.len, &v, &is_match);
	CHECK(v.ok && is_match);
	cm_jdoc_release(&d);
	cm_buf_release(&line);
	cm_buf_release(&again);
}

/* Splits data at 0x1f bytes into the parts of a CSV row (id, type, user,
 * time, properties text) and builds it as cm-ingest does; properties that
 * parse are made compact first, as cm-ingest always writes them. */
static void fuzz_build(const uint8_t *data, size_t size)
{
	struct cm_event_parts p;
	struct cm_buf out = CM_BUF_INIT, props = CM_BUF_INIT;
	struct cm_jdoc d;
	struct cm_err err;

	if (!fuzz_parts(data, size, &p))
		return;
	cm_jdoc_init(&d, 64);
	if (p.props && cm_json_parse(&d, p.props, p.props_len, &err) == 0) {
		CHECK(cm_json_write(&d, 0, &props) == 0);
		p.props = props.data;
		p.props_len = props.len;
	}
	p.doc = &d;
	if (cm_event_build(&p, (const char *)data, size, NOW, &out, &err) == 0)
		accepted_downstream(out.data, out.len);
	else
		CHECK(out.len == 0 && err.msg[0]);
	cm_jdoc_release(&d);
	cm_buf_release(&out);
	cm_buf_release(&props);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *src = (const char *)data;
	struct cm_buf out = CM_BUF_INIT;
	struct cm_jdoc d;
	struct cm_err err;

	agree(src, size);
	/* cm-ingest's JSON path */
	cm_jdoc_init(&d, 64);
	if (cm_json_parse(&d, src, size, &err) == 0 &&
	    cm_event_normalize(&d, 0, src, size, NOW, &out, &err) == 0)
		accepted_downstream(out.data, out.len);
	cm_jdoc_release(&d);
	cm_buf_release(&out);
	fuzz_build(data, size);
	return 0;
}
