/* cli.c - what every tool shares: name, messages, version, option numbers,
 * progress on a terminal. */
#include "cli.h"

#include "timefmt.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *progname = "cm";

/* Ignoring SIGPIPE turns a closed stdout into EPIPE, which cm_out handles. */
void cm_cli_init(const char *name)
{
	const char *slash = strrchr(name, '/');

	progname = slash ? slash + 1 : name;
	signal(SIGPIPE, SIG_IGN);
}

const char *cm_progname(void)
{
	return progname;
}

void cm_warn(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One write per message so that lines from parallel tools do not mix. */
	fprintf(stderr, "%s: %s\n", progname, msg);
}

void cm_usage_error(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\nTry '%s --help' for more information.\n", progname, msg, progname);
	exit(CM_EXIT_USAGE);
}

void cm_print_version(void)
{
	printf("%s %s\n", progname, CM_VERSION);
	exit(fflush(stdout) == 0 ? CM_EXIT_OK : CM_EXIT_USAGE);
}

int cm_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !*s || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int cm_parse_size(const char *s, size_t min, size_t max, size_t *out)
{
	char *end;
	unsigned long long v, mul = 1;

	if (!s || !*s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (*end) {
	case 'k':
	case 'K':
		mul = 1024ULL;
		end++;
		break;
	case 'm':
	case 'M':
		mul = 1024ULL * 1024;
		end++;
		break;
	case 'g':
	case 'G':
		mul = 1024ULL * 1024 * 1024;
		end++;
		break;
	}
	if ((*end == 'B' || *end == 'b') && mul > 1)
		end++;
	if (*end || v > (unsigned long long)SIZE_MAX / mul)
		return -1;
	v *= mul;
	if (v < min || v > max)
		return -1;
	*out = (size_t)v;
	return 0;
}

void cm_progress_init(struct cm_progress *p)
{
	memset(p, 0, sizeof(*p));
	p->on = isatty(2);
	p->start_ms = p->last_ms = cm_time_now();
}

/* Prints a progress line when a second has passed since the last one. */
void cm_progress_tick(struct cm_progress *p, size_t bytes)
{
	p->records++;
	p->bytes += bytes;
	if (!p->on || (p->records & 4095))
		return;
	int64_t now = cm_time_now();

	if (now - p->last_ms < 1000)
		return;
	p->last_ms = now;
	double secs = (double)(now - p->start_ms) / 1000.0;

	fprintf(stderr, "\r%s: %llu records, %.1f MB/s ", progname, p->records,
	        secs > 0 ? (double)p->bytes / 1e6 / secs : 0.0);
}

void cm_progress_end(struct cm_progress *p)
{
	if (p->on && p->last_ms != p->start_ms)
		fputs("\r\033[K", stderr);
}
