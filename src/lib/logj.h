/* logj.h - JSON log lines for a daemon: {"time":"...Z","level":"info",
 * "msg":"...", ...}. The library builds the lines; the program says where
 * they go with a callback (cm-httpd writes them to stderr), so library code
 * never prints. A struct cm_log may be used from any thread. */
#ifndef CM_LOGJ_H
#define CM_LOGJ_H

#include <stddef.h>

enum cm_log_level { CM_LOG_DEBUG = 0, CM_LOG_INFO, CM_LOG_WARNING, CM_LOG_ERROR };

/* Receives one complete line (no newline). */
typedef void cm_log_fn(void *ctx, int level, const char *line, size_t len);

struct cm_log {
	cm_log_fn *fn; /* NULL: nothing is logged */
	void *ctx;
	int min_level; /* lines below it are not built */
};

/* "debug", "info", "warning" or "error"; -1 for anything else. */
int cm_log_level_parse(const char *s);
const char *cm_log_level_name(int level);
/* True when a line of this level would be logged. */
int cm_log_on(const struct cm_log *l, int level);
/* Logs msg with fields given as key, value pairs ended by NULL; values are
 * strings, except that a key starting with '#' (not written) takes a value
 * that is written as it is (a number). End the list with CM_LOG_END. */
#define CM_LOG_END ((const char *)NULL)
void cm_logkv(const struct cm_log *l, int level, const char *msg, ...);

struct cm_buf;
/* Starts a line in b: {"time":"...","level":"..." (no closing brace), for
 * callers that build their own fields. */
int cm_log_begin(struct cm_buf *b, int level);
/* Appends s[0..n) as a JSON string, any bytes that are not UTF-8 replaced
 * (for what clients send: paths, names). */
int cm_log_add_str(struct cm_buf *b, const char *s, size_t n);
/* Ends the line in b and hands it to the callback. */
void cm_log_end(const struct cm_log *l, int level, struct cm_buf *b);

#endif
