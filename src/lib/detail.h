/* detail.h - FastAPI's error bodies, so that the original service's clients
 * keep working: {"detail":"..."} for most errors and, for a body that does
 * not validate (422), pydantic's list
 *     {"detail":[{"loc":["body","rule","where","all",1,"op"],"msg":"...",
 *                 "type":"value_error"}]}
 * with the location as a list of keys and indexes. */
#ifndef CM_DETAIL_H
#define CM_DETAIL_H

#include <stddef.h>

struct cm_buf;

/* Appends the location path[0..n) ("rule.where.all[1].op",
 * "properties.items[2]") as JSON array elements, each preceded by a comma:
 * ,"rule","where","all",1,"op". */
int cm_detail_path_loc(struct cm_buf *b, const char *path, size_t n);
/* Splits a message "PATH: text" (rule.h's form) into the length of PATH and
 * text; 0 when the message does not start with a path (then *text is
 * msg). */
size_t cm_detail_split_path(const char *msg, const char **text);
/* Splits a message "field 'PATH': text" (event.h's form) the same way,
 * *path pointing at PATH. */
size_t cm_detail_split_field(const char *msg, const char **path, const char **text);

/* The offset from 0 (as Python's json reports it, and FastAPI in its
 * location) of a JSON parser message "byte 17: ..." (json.h counts from 1);
 * 0 when the message has none. */
long cm_detail_json_pos(const char *msg);

/* Appends a complete 422 body with one error: loc is the inside of the
 * location list, already JSON ("\"body\",3,\"occurred_at\""). */
int cm_detail_422(struct cm_buf *b, const char *loc, const char *msg, const char *type);

#endif
