/* tool_opts.c - the options several tools share, parsed and range-checked in
 * one place, so that every tool words a bad value, an unknown option and a
 * missing value the same way. The checks of --redis and --db are in
 * tool_conn.c, so that a tool without servers links neither client library. */
#include "tool.h"

#include "wmetrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One wording for every whole-number option of every tool. */
int64_t cm_opts_int(const char *name, const char *arg, int64_t min, int64_t max, const char *what)
{
	int64_t v;

	if (cm_parse_i64(arg, min, max, &v) < 0)
		cm_usage_error("--%s: expected %s from %lld to %lld, not '%s'", name, what,
		               (long long)min, (long long)max, arg);
	return v;
}

/* Takes one of the shared options, or says it is the tool's own. */
int cm_opts_common(struct cm_common_opts *o, int c, const char *arg)
{
	int64_t v;

	switch (c) {
	case CM_OPT_REDIS:
		if (!*arg)
			cm_usage_error("--redis: expected a URL, not an empty string");
		o->redis = arg;
		return 1;
	case CM_OPT_DB:
		o->db = arg;
		return 1;
	case CM_OPT_STREAM:
		if (!*arg)
			cm_usage_error("--stream: expected a stream key, not an empty string");
		o->stream = arg;
		return 1;
	case CM_OPT_GROUP:
		if (!*arg)
			cm_usage_error("--group: expected a group name, not an empty string");
		o->group = arg;
		return 1;
	case CM_OPT_CONSUMER:
		/* the metrics' bound (wmetrics.h), so that every stage can report */
		if (!*arg || strlen(arg) > CM_WMETRICS_CONSUMER_MAX)
			cm_usage_error("--consumer: expected a name of 1 to %d bytes",
			               CM_WMETRICS_CONSUMER_MAX);
		o->consumer = arg;
		return 1;
	case CM_OPT_RETRY_FOR:
		v = cm_opts_int("retry-for", arg, 0, CM_RETRY_FOR_MAX, "seconds");
		o->retry_ms = v * 1000;
		return 1;
	case CM_OPT_MAX_LINE:
		if (cm_parse_size(arg, CM_MAX_LINE_MIN, CM_MAX_LINE_MAX, &o->max_line) < 0)
			cm_usage_error("--max-line: expected a size from %zu to 1G, not '%s'",
			               CM_MAX_LINE_MIN, arg);
		return 1;
	}
	return 0;
}

/* The option getopt_long stopped at: its own text when it was a long option
 * or a cluster, else the short option letter. */
static const char *bad_name(int argc, char **argv, char *b, size_t bn)
{
	int i = optind - 1;

	if (i >= 1 && i < argc && argv[i][0] == '-' && argv[i][1] == '-')
		return argv[i];
	if (optopt > 0 && optopt < 0x100) {
		b[0] = '-';
		b[1] = (char)optopt;
		b[2] = 0;
		return b;
	}
	return i >= 1 && i < argc ? argv[i] : "?";
}

/* One wording for the two ways getopt_long refuses an argument. */
void cm_opts_bad(int c, int argc, char **argv)
{
	char b[4];
	const char *name = bad_name(argc, argv, b, sizeof(b));
	size_t n = strcspn(name, "=");

	if (c == ':')
		cm_usage_error("option '%.*s' needs a value", (int)n, name);
	cm_usage_error("unknown option '%.*s'", (int)n, name);
}

/* What every tool's option switch does with what is not its own. */
void cm_opts_default(struct cm_common_opts *o, int c, const char *arg, int argc, char **argv,
                     const char *usage)
{
	if (c == 'h')
		cm_print_help(usage);
	if (c == 'V')
		cm_print_version();
	if (!cm_opts_common(o, c, arg))
		cm_opts_bad(c, argc, argv);
}

/* The default is stable across restarts of the same worker, so that a
 * restarted worker re-reads its own pending entries. */
void cm_opts_consumer(const struct cm_common_opts *o, char *out, size_t n)
{
	char host[200];
	const char *id = getenv("CM_WORKER_ID");

	if (o->consumer) {
		snprintf(out, n, "%s", o->consumer);
		return;
	}
	if (gethostname(host, sizeof(host)) < 0 || !host[0])
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(out, n, "%s-%s", host, id && *id ? id : "1");
}
