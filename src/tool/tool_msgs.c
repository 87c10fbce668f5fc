/* tool_msgs.c - the tools' messages: name, warnings, usage errors, --help,
 * --version and progress on a terminal. */
#include "tool.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "timefmt.h"

static const char *progname = "cm";

/* Ignoring SIGPIPE turns a closed stdout into EPIPE, which cm_out handles. */
void cm_cli_init(const char *name)
{
	const char *slash = strrchr(name, '/');

	progname = slash ? slash + 1 : name;
	signal(SIGPIPE, SIG_IGN);
}

/* The name messages start with. */
const char *cm_progname(void)
{
	return progname;
}

/* Formats the whole line first, so that it goes out in one write. */
void cm_warn(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", progname, msg);
}

/* Says what is wrong and where to look, then exits 2. */
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

/* --version: a failed write to stdout is an output error of the system. */
void cm_print_version(void)
{
	printf("%s %s\n", progname, CM_VERSION);
	exit(fflush(stdout) == 0 ? CM_EXIT_OK : CM_EXIT_SYSTEM);
}

/* --help, with the same care for the write. */
void cm_print_help(const char *text)
{
	fputs(text, stdout);
	exit(fflush(stdout) == 0 ? CM_EXIT_OK : CM_EXIT_SYSTEM);
}

/* Progress only makes sense for a person watching a terminal. */
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

/* Clears the progress line, if one was printed. */
void cm_progress_end(struct cm_progress *p)
{
	if (p->on && p->last_ms != p->start_ms)
		fputs("\r\033[K", stderr);
}
