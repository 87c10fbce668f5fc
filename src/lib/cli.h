/* cli.h - what every tool shares: its name in diagnostics, --version, numeric
 * option parsing with range checks, and progress lines on a terminal. */
#ifndef CM_CLI_H
#define CM_CLI_H

#include <stddef.h>
#include <stdint.h>

#define CM_VERSION "0.1.0"

/* Exit statuses of CONTRACT section 2. */
enum { CM_EXIT_OK = 0, CM_EXIT_REJECTED = 1, CM_EXIT_USAGE = 2 };

/* Sets the program name used in messages and ignores SIGPIPE. */
void cm_cli_init(const char *progname);
const char *cm_progname(void);
/* "cm-TOOL: message\n" on stderr. */
void cm_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "cm-TOOL: message" and "Try 'cm-TOOL --help'." and exits 2. */
void cm_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Prints "cm-TOOL X.Y.Z" on stdout and exits 0. */
void cm_print_version(void) __attribute__((noreturn));
/* Checked number parsers for option values: the whole string must be a
 * number within [min, max]. Return 0 or -1. */
int cm_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
/* A size with an optional K, M or G suffix (powers of 1024). */
int cm_parse_size(const char *s, size_t min, size_t max, size_t *out);

/* Progress on stderr, only when stderr is a terminal: at most once a second,
 * "\rcm-TOOL: N records, X MB/s"; cm_progress_end clears the line. */
struct cm_progress {
	int on;
	int64_t start_ms, last_ms;
	unsigned long long records, bytes;
};
void cm_progress_init(struct cm_progress *p);
/* Cheap to call per record: looks at the clock every 4096 records. */
void cm_progress_tick(struct cm_progress *p, size_t bytes);
void cm_progress_end(struct cm_progress *p);

#endif
