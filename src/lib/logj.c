/* logj.c - JSON log lines through a callback. */
#include "logj.h"

#include "buf.h"
#include "event.h"
#include "timefmt.h"

#include <stdarg.h>
#include <string.h>

static int add_str(struct cm_buf *b, const char *s)
{
	return cm_log_add_str(b, s, strlen(s));
}

static const char *const names[] = {"debug", "info", "warning", "error"};

int cm_log_level_parse(const char *s)
{
	int i;

	for (i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

const char *cm_log_level_name(int level)
{
	return level >= 0 && level < 4 ? names[level] : "info";
}

int cm_log_on(const struct cm_log *l, int level)
{
	return l && l->fn && level >= l->min_level;
}

/* Appends s[0..n) as a JSON string; bytes that are not UTF-8 become
 * U+FFFD, so that a line always parses whatever a client sent. */
int cm_log_add_str(struct cm_buf *b, const char *s, size_t n)
{
	size_t i;

	if (cm_utf8_valid_prefix(s, n) == n)
		return cm_buf_add_jstr(b, s, n);
	/* Not UTF-8: keep the ASCII, mark the rest. */
	if (cm_buf_addc(b, '"') < 0)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			if (cm_buf_addc(b, '\\') < 0 || cm_buf_addc(b, (char)c) < 0)
				return -1;
		} else if (c < 0x20 || c >= 0x7f) {
			if (cm_buf_addf(b, "\\u%04x", c < 0x20 ? c : 0xfffd) < 0)
				return -1;
		} else if (cm_buf_addc(b, (char)c) < 0) {
			return -1;
		}
	}
	return cm_buf_addc(b, '"');
}

int cm_log_begin(struct cm_buf *b, int level)
{
	char t[CM_TIME_MAX];

	cm_time_format(cm_time_now(), t);
	return cm_buf_adds(b, "{\"time\":\"") | cm_buf_adds(b, t) |
	       cm_buf_adds(b, "\",\"level\":\"") | cm_buf_adds(b, cm_log_level_name(level)) |
	       cm_buf_addc(b, '"');
}

void cm_log_end(const struct cm_log *l, int level, struct cm_buf *b)
{
	if (cm_buf_addc(b, '}') == 0 && l && l->fn)
		l->fn(l->ctx, level, b->data, b->len);
}

void cm_logkv(const struct cm_log *l, int level, const char *msg, ...)
{
	struct cm_buf b = CM_BUF_INIT;
	const char *k, *v;
	va_list ap;
	int bad;

	if (!cm_log_on(l, level))
		return;
	bad = cm_log_begin(&b, level) | cm_buf_adds(&b, ",\"msg\":") | add_str(&b, msg);
	va_start(ap, msg);
	while (!bad && (k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		if (!v)
			v = "";
		bad |= cm_buf_addc(&b, ',');
		if (k[0] == '#')
			bad |= add_str(&b, k + 1) | cm_buf_addc(&b, ':') | cm_buf_adds(&b, v);
		else
			bad |= add_str(&b, k) | cm_buf_addc(&b, ':') | add_str(&b, v);
	}
	va_end(ap);
	if (!bad)
		cm_log_end(l, level, &b);
	cm_buf_release(&b);
}
