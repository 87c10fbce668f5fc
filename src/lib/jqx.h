/* jqx.h - many small jq predicates compiled together and evaluated one at a
 * time, for the rule engine.
 *
 * libjq 1.6 re-parses its builtins on every jq_compile (about 25 ms), so
 * compiling a thousand predicates one by one takes half a minute. A set
 * instead dedupes the texts it is given and compiles the distinct ones in
 * chunks, each chunk one jq program that dispatches on a slot number:
 *
 *     input as $__cm_slot | if $__cm_slot < 2 then first((E0)) ... end
 *
 * Evaluating a slot runs its chunk's program on the input, with the slot
 * number handed to that first `input` by an input callback (cheaper than
 * wrapping the input in an array; a predicate's own `input` finds none). A predicate
 * that does not compile is found by compiling smaller groups and reported
 * with jq's own message; the others still work. jq never prints: its
 * messages are captured.
 *
 * Ownership: the set owns its texts and jq states. cm_jqx_eval borrows its
 * input. A set is not thread safe (a jq_state runs one program at a time).
 */
#ifndef CM_JQX_H
#define CM_JQX_H

#include <stddef.h>
#include <stdint.h>
#include <jv.h>

struct cm_err;
struct cm_jdoc;
struct cm_jqx;

/* Longest predicate text accepted, in bytes. */
#define CM_JQX_MAX_TEXT 65536

/* Called once for each slot that does not compile, with jq's message
 * ("syntax error, unexpected ... at <top-level>, line 1"). */
typedef void cm_jqx_badfn(void *ctx, uint32_t slot, const char *msg);

struct cm_jqx *cm_jqx_new(void);
void cm_jqx_free(struct cm_jqx *x);
/* Adds a predicate and returns its slot (>= 0); the same text twice gives
 * the same slot. Returns -1 with err when the text is not usable as an
 * isolated expression (NUL bytes, unbalanced brackets or strings, too long)
 * or when memory is out. Call before cm_jqx_compile. */
int64_t cm_jqx_add(struct cm_jqx *x, const char *text, size_t len, struct cm_err *err);
/* Number of distinct slots added. */
uint32_t cm_jqx_count(const struct cm_jqx *x);
/* Compiles every slot added since the last call. Each slot that fails is
 * reported through bad (may be NULL) and evaluates to an error afterwards.
 * Returns the number of bad slots, or -1 with err when memory is out. */
int cm_jqx_compile(struct cm_jqx *x, cm_jqx_badfn *bad, void *ctx, struct cm_err *err);

enum { CM_JQX_FALSE = 0, CM_JQX_TRUE = 1, CM_JQX_ERROR = -1, CM_JQX_FALLBACK = -2 };
/* Runs slot on input (borrowed) and returns CM_JQX_TRUE when its first
 * output is neither false nor null, CM_JQX_FALSE when it is or when there
 * is no output, CM_JQX_ERROR (err filled with jq's message, if err is not
 * NULL) on a runtime error. */
int cm_jqx_eval(struct cm_jqx *x, uint32_t slot, jv input, struct cm_err *err);

/* Runs slot without libjq, straight on a parsed event (root token 0), when
 * the predicate is in the subset the native evaluator implements with jq
 * 1.6's semantics: paths, literals, | // and or, comparisons, arithmetic,
 * [a, b], length not tonumber add startswith endswith ltrimstr rtrimstr
 * test index contains. Returns CM_JQX_TRUE or CM_JQX_FALSE, or
 * CM_JQX_FALLBACK for any other predicate or whenever jq would raise an
 * error or the input is not modelled (then call cm_jqx_eval). Allocates
 * nothing. */
int cm_jqx_eval_doc(struct cm_jqx *x, uint32_t slot, const struct cm_jdoc *d);
/* The same on an event whose jq input also has a "profile" member (the rule
 * engine's, CONTRACT 1.5): the object at root 0 of profile, or {} when
 * profile is NULL. d's root must not have a "profile" member of its own. */
int cm_jqx_eval_event(struct cm_jqx *x, uint32_t slot, const struct cm_jdoc *d,
                      const struct cm_jdoc *profile);
/* True when slot has a native form. */
int cm_jqx_native(const struct cm_jqx *x, uint32_t slot);

/* Checks that text can sit inside "(...)" without closing it: brackets
 * balanced outside strings and comments, strings closed, no NUL byte.
 * Returns 0 or -1 with err. Exposed for tests. */
int cm_jqx_guard(const char *text, size_t len, struct cm_err *err);

#endif
