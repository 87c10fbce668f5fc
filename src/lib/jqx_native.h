/* jqx_native.h - the native evaluator of jqx.c (private to jqx*.c).
 *
 * Most campaign predicates are small expressions over a few fields:
 * "(.properties.items // 0) >= 2", "(.user_id | ltrimstr(\"u-\") |
 * tonumber) % 7 == 3". Running them through libjq costs a conversion of
 * the event to jv values and an interpreter run, several microseconds. The
 * native evaluator runs a subset of jq straight on the parsed event: paths,
 * literals, | // and or, comparisons, + - * / %, [a, b], and length not
 * tonumber add startswith endswith ltrimstr rtrimstr test index contains,
 * each with jq 1.6's exact semantics where it answers. It answers only when
 * it is sure: every error, every value it does not model (an escaped
 * string, two containers compared, a regular expression meeting a newline)
 * makes it return CM_JQX_FALLBACK and libjq decides, so its answers are
 * always jq's. The differential tests in test_jqx.c hold it to that.
 *
 * Its programs live in a store that the jqx set owns: nodes in one array,
 * field names and string literals in one pool, regular expressions
 * compiled once.
 */
#ifndef CM_JQX_NATIVE_H
#define CM_JQX_NATIVE_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct cm_jdoc;
struct jnode;

/* No program: the predicate is outside the subset. */
#define NONE_J UINT32_MAX

/* The native programs of a set. */
struct jqx_native {
	struct jnode *jn; /* every program's nodes */
	uint32_t njn, jncap;
	uint32_t *kids; /* J_ARRAY items: node n's from n.a */
	uint32_t nkids, kidcap;
	struct cm_buf npool; /* field names and string literals */
	pcre2_code **re;     /* test() patterns: node n's is re[n.re] */
	uint32_t nre, recap;
	pcre2_match_data *md; /* for test(), reused */
};

/* Sets up an empty store; -1 when memory is out (release it anyway). */
int jqx_native_init(struct jqx_native *nv);
/* Frees every program. */
void jqx_native_release(struct jqx_native *nv);
/* Compiles text into nv and returns its root, or NONE_J when the text is
 * outside the subset (or memory is out): then only libjq runs it. */
uint32_t jqx_native_compile(struct jqx_native *nv, const char *text, size_t len);
/* Runs the program at root on the root of d: CM_JQX_TRUE, CM_JQX_FALSE, or
 * CM_JQX_FALLBACK when jq would raise an error or the input is not
 * modelled. With with_profile set, the root object also has a "profile"
 * member: the root of profile, or {} when profile is NULL. Allocates
 * nothing. */
int jqx_native_eval(struct jqx_native *nv, uint32_t root, const struct cm_jdoc *d,
                    const struct cm_jdoc *profile, int with_profile);

#endif
