/* tool.h - the tools' side of the line: what every command-line tool shares
 * and the library must not do (print, exit). Messages as
 * "cm-TOOL: FILE:LINE: message" on stderr, usage errors, --version, progress
 * on a terminal, and the options several tools take, parsed and
 * range-checked once with one wording (as curl keeps src/tool_msgs.c beside
 * its lib/). Only tools include this header; src/lib never does. */
#ifndef CM_TOOL_H
#define CM_TOOL_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "num.h"
#include "version.h"

/* --- messages (tool_msgs.c) -------------------------------------------- */

/* Sets the program name used in messages and ignores SIGPIPE (a closed
 * stdout then shows as EPIPE, which cm_out handles). */
void cm_cli_init(const char *progname);
const char *cm_progname(void);
/* "cm-TOOL: message\n" on stderr, in one write so that lines from tools
 * running side by side do not mix. */
void cm_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "cm-TOOL: message" and "Try 'cm-TOOL --help' for more
 * information." and exits CM_EXIT_USAGE. */
void cm_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Prints "cm-TOOL X.Y.Z" on stdout and exits 0. */
void cm_print_version(void) __attribute__((noreturn));
/* Prints text (the usage) on stdout and exits 0, or CM_EXIT_SYSTEM when
 * stdout cannot take it. */
void cm_print_help(const char *text) __attribute__((noreturn));

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

/* --- shared options (tool_opts.c) -------------------------------------- */

/* getopt_long codes of the shared options, above any tool's own. */
enum {
	CM_OPT_REDIS = 0x1000,
	CM_OPT_DB,
	CM_OPT_STREAM,
	CM_OPT_GROUP,
	CM_OPT_RETRY_FOR,
	CM_OPT_MAX_LINE,
	CM_OPT_CONSUMER,
};

/* Their struct option entries, for a tool's table (tests/man.bats knows
 * these names). --db also has the short form -d where a tool lists 'd'. */
/* One line each, so that tests/man.bats can read them. */
/* clang-format off */
#define CM_OPTION_REDIS     {"redis", required_argument, NULL, CM_OPT_REDIS}
#define CM_OPTION_DB        {"db", required_argument, NULL, CM_OPT_DB}
#define CM_OPTION_STREAM    {"stream", required_argument, NULL, CM_OPT_STREAM}
#define CM_OPTION_GROUP     {"group", required_argument, NULL, CM_OPT_GROUP}
#define CM_OPTION_RETRY_FOR {"retry-for", required_argument, NULL, CM_OPT_RETRY_FOR}
#define CM_OPTION_MAX_LINE  {"max-line", required_argument, NULL, CM_OPT_MAX_LINE}
#define CM_OPTION_CONSUMER  {"consumer", required_argument, NULL, CM_OPT_CONSUMER}
/* clang-format on */

/* --max-line bounds, the same for every tool. */
#define CM_MAX_LINE_MIN ((size_t)64)
#define CM_MAX_LINE_MAX ((size_t)1 << 30)
/* --retry-for bound: a year. */
#define CM_RETRY_FOR_MAX (86400LL * 365)

/* The values of the shared options. A tool sets its defaults first (NULL
 * for redis and db: the environment, then the built-in default, decided by
 * cm_opts_redis/cm_opts_db). */
struct cm_common_opts {
	const char *redis;    /* --redis URL */
	const char *db;       /* --db CONNINFO */
	const char *stream;   /* --stream KEY */
	const char *group;    /* --group NAME */
	const char *consumer; /* --consumer NAME (NULL: cm_opts_consumer's default) */
	int64_t retry_ms;     /* --retry-for SECONDS, in ms */
	size_t max_line;      /* --max-line SIZE */
};

/* Takes option c (a getopt_long result) with value arg when it is one of
 * the shared options: returns 1 when it was, 0 when it is the tool's own.
 * A bad value exits CM_EXIT_USAGE with the one wording, e.g.
 * "--max-line: expected a size from 64 to 1G, not '10Q'". */
int cm_opts_common(struct cm_common_opts *o, int c, const char *arg);
/* The value of whole-number option --name: arg parsed (cm_parse_i64) and
 * between min and max, else a usage error with the one wording, e.g.
 * "--batch: expected a number from 1 to 1000000, not 'x'" (what: "a
 * number", "milliseconds", "seconds"). */
int64_t cm_opts_int(const char *name, const char *arg, int64_t min, int64_t max, const char *what);
/* The default case of a tool's getopt_long switch: -h/--help prints usage
 * and exits, -V/--version the version; a shared option goes to
 * cm_opts_common; anything else is cm_opts_bad. Returns only for a shared
 * option. */
void cm_opts_default(struct cm_common_opts *o, int c, const char *arg, int argc, char **argv,
                     const char *usage);
/* Handles what getopt_long returns for an unknown option ('?') or a missing
 * value (':', with optstring starting with ':' and opterr = 0): prints the
 * one message for it and exits CM_EXIT_USAGE. Call from the default case. */
void cm_opts_bad(int c, int argc, char **argv) __attribute__((noreturn));
/* The Redis URL to use (--redis, else $CM_REDIS_URL, else the default),
 * checked: a bad URL exits CM_EXIT_USAGE naming --redis. */
const char *cm_opts_redis(const struct cm_common_opts *o);
/* The conninfo to use (--db, else $CM_DATABASE_URL, else libpq's defaults),
 * checked: a malformed one exits CM_EXIT_USAGE naming --db. */
const char *cm_opts_db(const struct cm_common_opts *o);
/* The consumer name into out[n]: --consumer, else HOSTNAME-$CM_WORKER_ID
 * (HOSTNAME-1 without it), the same in every stage of one worker, so that
 * cm-consume's group membership and the worker's metrics share it. */
void cm_opts_consumer(const struct cm_common_opts *o, char *out, size_t n);

struct cm_wmetrics;
/* The worker metrics (wmetrics.h) of a stage as consumer
 * cm_opts_consumer(o) of o->stream, reported to Redis redis_url; NULL
 * when they cannot start (said on stderr once: the stage works on without
 * them). */
struct cm_wmetrics *cm_opts_metrics(const struct cm_common_opts *o, const char *redis_url);

#endif
