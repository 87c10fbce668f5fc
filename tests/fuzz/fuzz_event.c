/* fuzz_event.c - libFuzzer harness for event normalisation: any JSON text
 * either is rejected with a message or becomes a line that parses again,
 * passes cm_event_check and normalises to itself, whether its shape is told
 * by its keys or it is taken as a Segment call (cm-httpd's /v1 routes); the
 * CSV builder's output passes the same check. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "event.h"
#include "json.h"
#include "parts.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

/* 2026-11-27T10:15:00Z, so that runs are reproducible. */
#define NOW 1795774500000LL

/* Checks that line is a canonical event that normalises to itself. */
static void check_canonical(const char *line, size_t len)
{
	struct cm_jdoc d;
	struct cm_buf again = CM_BUF_INIT;
	struct cm_err err;
	struct cm_event_ref ref;

	cm_jdoc_init(&d, 0);
	CHECK(cm_json_parse(&d, line, len, &err) == 0);
	CHECK(cm_event_check_ref(&d, 0, &ref, &err) == 0);
	CHECK(ref.id_off + ref.id_len <= len && line[ref.id_off] == '"');
	CHECK(cm_event_normalize(&d, 0, line, len, NOW, &again, &err) == 0);
	CHECK(again.len == len && !memcmp(again.data, line, len));
	cm_buf_release(&again);
	cm_jdoc_release(&d);
}

/* Splits data at 0x1f bytes into the parts of an event and builds it
 * (without properties: fuzz_verdicts gives the builder those). */
static void fuzz_build(const uint8_t *data, size_t size)
{
	struct cm_event_parts p;
	struct cm_buf out = CM_BUF_INIT;
	struct cm_err err;

	if (!fuzz_parts(data, size, &p))
		return;
	p.props = NULL;
	if (cm_event_build(&p, (const char *)data, size, NOW, &out, &err) == 0)
		check_canonical(out.data, out.len);
	cm_buf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cm_jdoc d;
	struct cm_buf out = CM_BUF_INIT;
	struct cm_err err;
	const char *src = (const char *)data;

	cm_jdoc_init(&d, 0);
	if (cm_json_parse(&d, src, size, &err) == 0) {
		cm_buf_adds(&out, "prefix");
		if (cm_event_normalize(&d, 0, src, size, NOW, &out, &err) == 0) {
			CHECK(out.len > 6 && !memcmp(out.data, "prefix", 6));
			CHECK(memchr(out.data, '\n', out.len) == NULL);
			check_canonical(out.data + 6, out.len - 6);
		} else {
			/* a failure leaves the output as it was */
			CHECK(out.len == 6 && strlen(err.msg) > 0);
		}
		/* the same text as a Segment call, the call picked by its length */
		cm_buf_reset(&out);
		if (cm_event_normalize_segment(&d, 0, (int)(size % 7), src, size, NOW, &out, NULL,
		                               &err) == 0)
			check_canonical(out.data, out.len);
		else
			CHECK(out.len == 0 && strlen(err.msg) > 0);
		/* checking arbitrary values must never crash */
		(void)cm_event_check(&d, 0, &err);
	}
	cm_jdoc_release(&d);
	cm_buf_release(&out);
	fuzz_build(data, size);
	return 0;
}
