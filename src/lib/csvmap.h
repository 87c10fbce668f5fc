/* csvmap.h - what a CSV header means to cm-ingest, and a record's cells as
 * JSON by it.
 *
 * Each column has a name (UTF-8, not empty, unique), a type (string by
 * default; a header suffix "amount:number" or a --types entry makes it
 * number, integer, boolean or json) and a role: event_id, event_type,
 * user_id and occurred_at are the event's own fields, always strings; every
 * other column is a property. With raw set, names are taken as written (no
 * suffix, no roles) and every cell is a string.
 *
 * A record then becomes the canonical event (cm_csvmap_event: typed cells as
 * their JSON values, empty typed cells left out, the id derived from the raw
 * object when there is no event_id), or the object of header -> string
 * (cm_csvmap_raw). The map owns its header, keys and scratch buffers; it
 * never keeps a record's pointers past a call.
 */
#ifndef CM_CSVMAP_H
#define CM_CSVMAP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "json.h"

struct cm_err;
struct cm_csvrec;

/* Column types. */
enum { CM_CSVT_STRING, CM_CSVT_NUMBER, CM_CSVT_INTEGER, CM_CSVT_BOOLEAN, CM_CSVT_JSON };

/* Column roles. */
enum { CM_CSVR_PROP, CM_CSVR_EVENT_ID, CM_CSVR_EVENT_TYPE, CM_CSVR_USER_ID, CM_CSVR_OCCURRED_AT };

/* One COL=TYPE entry of cm_csvmap_types. */
struct cm_csvtype {
	char *col;
	int type;
	int used; /* a column of the last header has this name */
};

/* One column of the header; its names and keys live in the map's buffers. */
struct cm_csvcol {
	size_t name_off, name_len; /* in names: as written */
	size_t strip_len;          /* without a ":type" suffix */
	size_t kraw_off, kraw_len; /* in keys: "as written": */
	size_t kstr_off, kstr_len; /* in keys: "stripped": */
	int type, role;
};

struct cm_csvmap {
	int raw;        /* names as written: no types, no roles */
	int need_event; /* the header must have event_type and user_id */
	struct cm_csvtype *types;
	size_t ntypes;
	struct cm_csvcol *col; /* the last header's columns */
	size_t n;
	struct cm_buf names, keys;
	struct cm_jdoc cell;         /* a json cell, checked then written */
	struct cm_buf props, rawobj; /* scratch for cm_csvmap_event */
};

/* Prepares an empty map; max_depth bounds the nesting of json cells. */
void cm_csvmap_init(struct cm_csvmap *m, int raw, int need_event, unsigned max_depth);
/* Adds the types of "COL=TYPE[,COL=TYPE...]" (a later entry for a column
 * wins); the message names the bad entry. */
int cm_csvmap_types(struct cm_csvmap *m, const char *arg, struct cm_err *err);
/* Takes rec as the header (replacing any before): names, types, roles and
 * JSON keys; the message starts with "header: " and names the column. */
int cm_csvmap_header(struct cm_csvmap *m, const struct cm_csvrec *rec, struct cm_err *err);
/* Column i's name without its type suffix (not NUL-terminated). */
const char *cm_csvmap_name(const struct cm_csvmap *m, size_t i, size_t *len);
/* Checks cell s[0..n) of column i against its type; the message is
 * "column 'NAME': expected ..., got ...". */
int cm_csvmap_check(struct cm_csvmap *m, size_t i, const char *s, size_t n, struct cm_err *err);
/* A boolean cell's value: 1 for true/yes/1, 0 for false/no/0 in any case,
 * -1 for anything else. */
int cm_csvmap_bool(const char *s, size_t n);
/* Appends rec (as many fields as the header) as the object of header ->
 * string that --raw writes; names the column whose cell is not UTF-8. */
int cm_csvmap_raw(const struct cm_csvmap *m, const struct cm_csvrec *rec, struct cm_buf *out,
                  struct cm_err *err);
/* Appends rec (as many fields as the header) as the canonical event line,
 * without LF, by cm_event_build (now_ms for a missing occurred_at); on error
 * out is as it was. */
int cm_csvmap_event(struct cm_csvmap *m, const struct cm_csvrec *rec, int64_t now_ms,
                    struct cm_buf *out, struct cm_err *err);
void cm_csvmap_release(struct cm_csvmap *m);

#endif
