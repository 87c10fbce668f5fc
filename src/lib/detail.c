/* detail.c - FastAPI-shaped error bodies and validator paths as locations. */
#include "detail.h"

#include "buf.h"
#include "logj.h"

#include <string.h>

/* True for the bytes a path segment may have in a validator message. */
static int seg_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

int cm_detail_path_loc(struct cm_buf *b, const char *path, size_t n)
{
	size_t i = 0, start;
	int bad = 0;

	while (i < n && !bad) {
		if (path[i] == '.') {
			i++;
			continue;
		}
		if (path[i] == '[') {
			start = ++i;
			while (i < n && path[i] >= '0' && path[i] <= '9')
				i++;
			bad |= cm_buf_addc(b, ',') | cm_buf_add(b, path + start, i - start);
			if (i < n && path[i] == ']')
				i++;
			continue;
		}
		start = i;
		while (i < n && path[i] != '.' && path[i] != '[')
			i++;
		bad |= cm_buf_addc(b, ',') | cm_log_add_str(b, path + start, i - start);
	}
	return bad ? -1 : 0;
}

size_t cm_detail_split_path(const char *msg, const char **text)
{
	size_t i = 0;

	*text = msg;
	while (msg[i] && (seg_char(msg[i]) || msg[i] == '.' || msg[i] == '[' || msg[i] == ']'))
		i++;
	if (i == 0 || msg[i] != ':' || msg[i + 1] != ' ')
		return 0;
	*text = msg + i + 2;
	return i;
}

size_t cm_detail_split_field(const char *msg, const char **path, const char **text)
{
	const char *end;

	*path = NULL;
	*text = msg;
	if (strncmp(msg, "field '", 7) != 0)
		return 0;
	end = strstr(msg + 7, "': ");
	if (!end)
		return 0;
	*path = msg + 7;
	*text = end + 3;
	return (size_t)(end - *path);
}

int cm_detail_422(struct cm_buf *b, const char *loc, const char *msg, const char *type)
{
	return cm_buf_adds(b, "{\"detail\":[{\"loc\":[") | cm_buf_adds(b, loc) |
	       cm_buf_adds(b, "],\"msg\":") | cm_log_add_str(b, msg, strlen(msg)) |
	       cm_buf_adds(b, ",\"type\":") | cm_log_add_str(b, type, strlen(type)) |
	       cm_buf_adds(b, "}]}");
}

long cm_detail_json_pos(const char *msg)
{
	long pos = 0;

	if (strncmp(msg, "byte ", 5) == 0)
		for (msg += 5; *msg >= '0' && *msg <= '9' && pos < 1000000000L; msg++)
			pos = pos * 10 + (*msg - '0');
	return pos > 0 ? pos - 1 : 0;
}
