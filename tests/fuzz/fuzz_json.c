/* fuzz_json.c - libFuzzer harness for the JSON parser: any input either fails
 * cleanly or yields a consistent tape whose compact form parses back to an
 * equal value; it also exercises the accessors on every token. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "json.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

/* Checks that the subtree at i is well formed and ends exactly at its next;
 * returns that next so that callers can walk siblings. */
static uint32_t check_tok(const struct cm_jdoc *d, uint32_t i, uint32_t limit)
{
	const struct cm_jtok *t = &d->tok[i];
	const unsigned char *s = (const unsigned char *)d->src;
	uint32_t j, n = 0;

	CHECK(i < limit && t->next > i && t->next <= limit);
	CHECK((size_t)t->off + t->len <= d->len);
	switch (t->type) {
	case CM_JSTR:
		CHECK(t->off >= 1 && s[t->off - 1] == '"' && s[t->off + t->len] == '"');
		CHECK(!!t->esc == !!memchr(s + t->off, '\\', t->len));
		CHECK(t->next == i + 1);
		return t->next;
	case CM_JNUM:
	case CM_JNULL:
	case CM_JTRUE:
	case CM_JFALSE:
		CHECK(t->len >= 1 && t->next == i + 1);
		return t->next;
	case CM_JARR:
	case CM_JOBJ:
		CHECK(t->len >= 2);
		CHECK(s[t->off] == (t->type == CM_JARR ? '[' : '{'));
		CHECK(s[t->off + t->len - 1] == (t->type == CM_JARR ? ']' : '}'));
		for (j = i + 1; j < t->next; n++) {
			if (t->type == CM_JOBJ) {
				CHECK(d->tok[j].type == CM_JSTR);
				j = check_tok(d, j, t->next);
			}
			j = check_tok(d, j, t->next);
		}
		CHECK(j == t->next && n == t->count);
		return t->next;
	default:
		abort();
	}
}

/* The deepest nesting of containers in the document. */
static unsigned depth_of(const struct cm_jdoc *d)
{
	uint32_t ends[1024];
	unsigned sp = 0, max = 0;

	for (uint32_t i = 0; i < d->ntok; i++) {
		while (sp && ends[sp - 1] <= i)
			sp--;
		if (d->tok[i].type == CM_JARR || d->tok[i].type == CM_JOBJ) {
			CHECK(sp < 1024);
			ends[sp++] = d->tok[i].next;
			if (sp > max)
				max = sp;
		}
	}
	return max;
}

/* Checks decoding, comparison, lookups and numbers on every token. */
static void check_accessors(const struct cm_jdoc *d, struct cm_buf *scratch)
{
	for (uint32_t i = 0; i < d->ntok; i++) {
		const struct cm_jtok *t = &d->tok[i];
		size_t n = 0;
		const char *s;

		if (t->type == CM_JNUM) {
			double v = cm_json_num(d, i);

			CHECK(v == v); /* never NaN */
		}
		if (t->type == CM_JSTR) {
			s = cm_json_str(d, i, scratch, &n);
			CHECK(s && n <= t->len);
			CHECK(cm_json_str_eq(d, i, s, n));
			CHECK(!cm_json_str_eq(d, i, s, n + 1));
		}
		if (t->type == CM_JOBJ) {
			uint32_t k = i + 1;

			for (uint32_t m = 0; m < t->count; m++) {
				uint32_t v, got;
				char *key;

				s = cm_json_str(d, k, scratch, &n);
				CHECK(s);
				key = malloc(n + 1);
				CHECK(key);
				memcpy(key, s, n);
				got = cm_json_get(d, i, key, n);
				/* The last member of that name wins, so never an earlier
				 * one. */
				v = k + 1;
				CHECK(got != CM_JNONE && got >= v && got < t->next);
				CHECK(cm_json_equal(d, got, d, got));
				free(key);
				k = d->tok[v].next;
			}
		}
		if (t->type == CM_JARR) {
			uint32_t e = i + 1;

			for (uint32_t m = 0; m < t->count; m++) {
				CHECK(cm_json_at(d, i, m) == e);
				e = d->tok[e].next;
			}
			CHECK(cm_json_at(d, i, t->count) == CM_JNONE);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cm_jdoc d, r;
	struct cm_buf out = CM_BUF_INIT, again = CM_BUF_INIT, scratch = CM_BUF_INIT;
	struct cm_err err;
	unsigned depth;

	cm_jdoc_init(&d, 0);
	cm_jdoc_init(&r, 0);
	err.msg[0] = 0;
	if (cm_json_parse(&d, (const char *)data, size, &err) != 0) {
		/* Every rejection says where. */
		CHECK(d.ntok == 0 && strncmp(err.msg, "byte ", 5) == 0);
		goto out;
	}
	CHECK(d.ntok >= 1 && d.tok[0].next == d.ntok);
	CHECK(check_tok(&d, 0, d.ntok) == d.ntok);
	check_accessors(&d, &scratch);
	CHECK(cm_json_equal(&d, 0, &d, 0));

	/* The compact form parses back to an equal value and is a fixed point. */
	CHECK(cm_json_write(&d, 0, &out) == 0);
	CHECK(out.len <= size);
	CHECK(cm_json_parse(&r, out.data, out.len, &err) == 0);
	CHECK(r.ntok == d.ntok);
	CHECK(cm_json_equal(&d, 0, &r, 0) && cm_json_equal(&r, 0, &d, 0));
	CHECK(cm_json_write(&r, 0, &again) == 0);
	CHECK(again.len == out.len && memcmp(again.data, out.data, out.len) == 0);

	/* The limits hold exactly at the document's own size and depth. */
	r.max_tokens = d.ntok;
	CHECK(cm_json_parse(&r, (const char *)data, size, &err) == 0);
	if (d.ntok > 1) {
		r.max_tokens = d.ntok - 1;
		CHECK(cm_json_parse(&r, (const char *)data, size, &err) != 0);
	}
	r.max_tokens = 0;
	depth = depth_of(&d);
	if (depth >= 2) {
		r.max_depth = depth;
		CHECK(cm_json_parse(&r, (const char *)data, size, &err) == 0);
		r.max_depth = depth - 1;
		CHECK(cm_json_parse(&r, (const char *)data, size, &err) != 0);
	}
out:
	cm_buf_release(&out);
	cm_buf_release(&again);
	cm_buf_release(&scratch);
	cm_jdoc_release(&d);
	cm_jdoc_release(&r);
	return 0;
}
