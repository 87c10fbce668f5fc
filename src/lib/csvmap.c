/* csvmap.c - a CSV header's column names, types and roles, and a record's
 * cells as JSON values by them, for cm-ingest. */
#include "csvmap.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "csvin.h"
#include "err.h"
#include "event.h"

#define NTYPES (CM_CSVT_JSON + 1)

static const char *const type_names[NTYPES] = {"string", "number", "integer", "boolean", "json"};

/* Prepares an empty map. */
void cm_csvmap_init(struct cm_csvmap *m, int raw, int need_event, unsigned max_depth)
{
	memset(m, 0, sizeof(*m));
	m->raw = raw;
	m->need_event = need_event;
	cm_jdoc_init(&m->cell, max_depth);
}

/* Drops the header, so that the next one starts afresh. */
static void header_release(struct cm_csvmap *m)
{
	free(m->col);
	m->col = NULL;
	m->n = 0;
	cm_buf_release(&m->names);
	cm_buf_release(&m->keys);
}

/* Frees the header, the types and the scratch buffers. */
void cm_csvmap_release(struct cm_csvmap *m)
{
	header_release(m);
	for (size_t i = 0; i < m->ntypes; i++)
		free(m->types[i].col);
	free(m->types);
	m->types = NULL;
	m->ntypes = 0;
	cm_jdoc_release(&m->cell);
	cm_buf_release(&m->props);
	cm_buf_release(&m->rawobj);
}

/* A type by its name ("number"), or -1. */
static int type_by_name(const char *s, size_t n)
{
	for (int t = 0; t < NTYPES; t++)
		if (strlen(type_names[t]) == n && !memcmp(s, type_names[t], n))
			return t;
	return -1;
}

/* Adds the entries of one --types argument. */
int cm_csvmap_types(struct cm_csvmap *m, const char *arg, struct cm_err *err)
{
	char *copy = strdup(arg), *save = NULL, *tok;
	int rc = -1;

	if (!copy)
		return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		struct cm_csvtype *t;
		int ty;

		if (!eq || eq == tok) {
			cm_errc(err, CM_EXIT_USAGE, "expected COL=TYPE, got '%s'", tok);
			goto out;
		}
		*eq = 0;
		ty = type_by_name(eq + 1, strlen(eq + 1));
		if (ty < 0) {
			cm_errc(err, CM_EXIT_USAGE,
			        "unknown type '%s' for column '%s' (string, number, integer, "
			        "boolean, json)",
			        eq + 1, tok);
			goto out;
		}
		t = realloc(m->types, (m->ntypes + 1) * sizeof(*t));
		if (!t)
			goto nomem;
		m->types = t;
		t[m->ntypes].col = strdup(tok);
		if (!t[m->ntypes].col)
			goto nomem;
		t[m->ntypes].type = ty;
		t[m->ntypes++].used = 0;
	}
	rc = 0;
	goto out;
nomem:
	cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
out:
	free(copy);
	return rc;
}

/* The role of a column by its (stripped) name. */
static int role_of(const char *s, size_t n)
{
	static const char *const names[] = {NULL, "event_id", "event_type", "user_id",
	                                    "occurred_at"};

	for (int r = CM_CSVR_EVENT_ID; r <= CM_CSVR_OCCURRED_AT; r++)
		if (strlen(names[r]) == n && !memcmp(s, names[r], n))
			return r;
	return CM_CSVR_PROP;
}

/* Appends the JSON key s[0..n) with its colon; the name is valid UTF-8. */
static int add_key(struct cm_buf *b, const char *s, size_t n, size_t *off, size_t *len)
{
	*off = b->len;
	if (cm_event_put_str(b, s, n) || cm_buf_addc(b, ':'))
		return -1;
	*len = b->len - *off;
	return 0;
}

/* The name a column is known by: as written with raw, else without its
 * type suffix. */
static size_t key_len(const struct cm_csvcol *c, int raw)
{
	return raw ? c->name_len : c->strip_len;
}

/* Orders column indices by name, then by position (qsort_r). */
static int cmp_cols(const void *a, const void *b, void *arg)
{
	const struct cm_csvmap *m = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	size_t li = key_len(&m->col[i], m->raw), lj = key_len(&m->col[j], m->raw);
	int c = memcmp(m->names.data + m->col[i].name_off, m->names.data + m->col[j].name_off,
	               li < lj ? li : lj);

	if (c)
		return c;
	if (li != lj)
		return li < lj ? -1 : 1;
	return i < j ? -1 : i > j;
}

/* Finds the first repeated column name by sorting (a header may have very
 * many columns, so no pairwise comparison). */
static int find_duplicate(struct cm_csvmap *m, struct cm_err *err)
{
	size_t *ix, first = SIZE_MAX, dup = 0;

	if (m->n < 2)
		return 0;
	ix = malloc(m->n * sizeof(*ix));
	if (!ix)
		return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
	for (size_t i = 0; i < m->n; i++)
		ix[i] = i;
	qsort_r(ix, m->n, sizeof(*ix), cmp_cols, m);
	for (size_t k = 1; k < m->n; k++) {
		const struct cm_csvcol *a = &m->col[ix[k - 1]], *b = &m->col[ix[k]];

		if (key_len(a, m->raw) == key_len(b, m->raw) &&
		    !memcmp(m->names.data + a->name_off, m->names.data + b->name_off,
		            key_len(a, m->raw)) &&
		    ix[k] < first) {
			first = ix[k];
			dup = ix[k - 1];
		}
	}
	free(ix);
	if (first == SIZE_MAX)
		return 0;
	return cm_errc(err, CM_EXIT_USAGE, "header: duplicate column '%.*s' (columns %zu and %zu)",
	               (int)key_len(&m->col[first], m->raw), m->names.data + m->col[first].name_off,
	               dup + 1, first + 1);
}

/* Sets column c's type and role from its name s[0..n): a type suffix, then
 * --types entries (marked used); an event field cannot be typed. */
static int type_column(struct cm_csvmap *m, struct cm_csvcol *c, const char *s, size_t n,
                       struct cm_err *err)
{
	const char *colon = memrchr(s, ':', n);
	int explicit = 0;

	if (colon && colon > s) {
		int t = type_by_name(colon + 1, (size_t)(s + n - colon - 1));

		if (t >= 0) {
			c->type = t;
			c->strip_len = (size_t)(colon - s);
			explicit = 1;
		}
	}
	for (size_t k = 0; k < m->ntypes; k++)
		if (strlen(m->types[k].col) == c->strip_len &&
		    !memcmp(m->types[k].col, s, c->strip_len)) {
			c->type = m->types[k].type;
			m->types[k].used = 1;
			explicit = 1;
		}
	c->role = role_of(s, c->strip_len);
	if (c->role != CM_CSVR_PROP && explicit && c->type != CM_CSVT_STRING)
		return cm_errc(err, CM_EXIT_USAGE,
		               "header: column '%.*s' is always a string; it cannot be typed %s",
		               (int)c->strip_len, s, type_names[c->type]);
	return 0;
}

/* Reads the header record: names, types, roles, JSON keys. */
int cm_csvmap_header(struct cm_csvmap *m, const struct cm_csvrec *rec, struct cm_err *err)
{
	header_release(m);
	for (size_t k = 0; k < m->ntypes; k++)
		m->types[k].used = 0;
	m->col = calloc(rec->n ? rec->n : 1, sizeof(*m->col));
	if (!m->col)
		return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
	m->n = rec->n;
	for (size_t i = 0; i < rec->n; i++) {
		struct cm_csvcol *c = &m->col[i];
		const char *s = rec->field[i];
		size_t n = rec->len[i];
		char b[64];

		if (n == 0)
			return cm_errc(err, CM_EXIT_USAGE, "header: column %zu has an empty name",
			               i + 1);
		if (cm_utf8_valid_prefix(s, n) != n)
			return cm_errc(err, CM_EXIT_USAGE,
			               "header: column %zu: the name %s is not UTF-8", i + 1,
			               cm_event_snippet(s, n, 1, b, sizeof(b)));
		c->name_off = m->names.len;
		c->name_len = n;
		if (cm_buf_add(&m->names, s, n))
			return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
		c->strip_len = n;
		c->type = CM_CSVT_STRING;
		if (!m->raw && type_column(m, c, s, n, err))
			return -1;
		if (add_key(&m->keys, s, n, &c->kraw_off, &c->kraw_len) ||
		    add_key(&m->keys, s, c->strip_len, &c->kstr_off, &c->kstr_len))
			return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
	}
	if (find_duplicate(m, err))
		return -1;
	if (!m->raw && m->need_event) {
		int have_type = 0, have_user = 0;

		for (size_t i = 0; i < m->n; i++) {
			have_type |= m->col[i].role == CM_CSVR_EVENT_TYPE;
			have_user |= m->col[i].role == CM_CSVR_USER_ID;
		}
		if (!have_type || !have_user)
			return cm_errc(err, CM_EXIT_USAGE,
			               "header: no column '%s', which every event needs (map the "
			               "columns with --jq, or use --raw)",
			               have_type ? "user_id" : "event_type");
	}
	return 0;
}

/* Column i's name as events know it. */
const char *cm_csvmap_name(const struct cm_csvmap *m, size_t i, size_t *len)
{
	*len = m->col[i].strip_len;
	return m->names.data + m->col[i].name_off;
}

/* Takes back what was appended to out after mark. */
static void cut(struct cm_buf *out, size_t mark)
{
	out->len = mark;
	if (out->data)
		out->data[mark] = 0;
}

/* The message for column i's cell that is not UTF-8. */
static int not_utf8(const struct cm_csvmap *m, size_t i, struct cm_err *err)
{
	return cm_errf(err, "column '%.*s': expected UTF-8 text", (int)m->col[i].strip_len,
	               m->names.data + m->col[i].name_off);
}

/* Appends the object of header -> string, keys as written. */
int cm_csvmap_raw(const struct cm_csvmap *m, const struct cm_csvrec *rec, struct cm_buf *out,
                  struct cm_err *err)
{
	size_t mark = out->len;

	if (cm_buf_addc(out, '{'))
		goto nomem;
	for (size_t i = 0; i < rec->n; i++) {
		if ((i && cm_buf_put(out, ",", 1)) ||
		    cm_buf_put(out, m->keys.data + m->col[i].kraw_off, m->col[i].kraw_len))
			goto nomem;
		if (cm_event_put_str(out, rec->field[i], rec->len[i])) {
			cut(out, mark);
			return not_utf8(m, i, err);
		}
	}
	if (cm_buf_addc(out, '}'))
		goto nomem;
	return 0;
nomem:
	cut(out, mark);
	return cm_errf(err, "out of memory");
}

/* True when s[0..n) is a JSON number (the grammar of RFC 8259). */
static int json_number(const char *s, size_t n, int integer)
{
	size_t i = 0;

	if (i < n && s[i] == '-')
		i++;
	if (i == n)
		return 0;
	if (s[i] == '0')
		i++;
	else if (s[i] >= '1' && s[i] <= '9')
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	else
		return 0;
	if (integer)
		return i == n;
	if (i < n && s[i] == '.') {
		size_t d = ++i;

		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == d)
			return 0;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t d;

		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		d = i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == d)
			return 0;
	}
	return i == n;
}

/* True when an integer's digits fit in a signed 64-bit value. */
static int fits_i64(const char *s, size_t n)
{
	static const char lim[] = "9223372036854775807";
	int neg = n && s[0] == '-';
	size_t d = n - (size_t)neg;
	const char *p = s + neg;

	if (d < 19)
		return 1;
	if (d > 19)
		return 0;
	return memcmp(p, lim, 19) <= 0 || (neg && !memcmp(p, "9223372036854775808", 19));
}

/* Parses a boolean cell. */
int cm_csvmap_bool(const char *s, size_t n)
{
	if ((n == 4 && !strncasecmp(s, "true", 4)) || (n == 3 && !strncasecmp(s, "yes", 3)) ||
	    (n == 1 && s[0] == '1'))
		return 1;
	if ((n == 5 && !strncasecmp(s, "false", 5)) || (n == 2 && !strncasecmp(s, "no", 2)) ||
	    (n == 1 && s[0] == '0'))
		return 0;
	return -1;
}

/* Checks a cell against a type; on failure says what was expected (a json
 * cell is left parsed in m->cell for put_cell). */
static int check_type(struct cm_csvmap *m, int type, const char *s, size_t n, struct cm_err *err)
{
	char b[64];
	struct cm_err e2;

	switch (type) {
	case CM_CSVT_NUMBER:
		if (!json_number(s, n, 0))
			return cm_errf(err, "expected a number, got %s",
			               cm_event_snippet(s, n, 1, b, sizeof(b)));
		return 0;
	case CM_CSVT_INTEGER:
		if (!json_number(s, n, 1) || !fits_i64(s, n))
			return cm_errf(err, "expected an integer, got %s",
			               cm_event_snippet(s, n, 1, b, sizeof(b)));
		return 0;
	case CM_CSVT_BOOLEAN:
		if (cm_csvmap_bool(s, n) < 0)
			return cm_errf(err, "expected a boolean (true/false, yes/no, 1/0), got %s",
			               cm_event_snippet(s, n, 1, b, sizeof(b)));
		return 0;
	case CM_CSVT_JSON:
		if (cm_json_parse(&m->cell, s, n, &e2))
			return cm_errf(err, "expected JSON, got %s (%s)",
			               cm_event_snippet(s, n, 1, b, sizeof(b)), e2.msg);
		return 0;
	default:
		if (cm_utf8_valid_prefix(s, n) != n)
			return cm_errf(err, "expected UTF-8 text, got %s",
			               cm_event_snippet(s, n, 1, b, sizeof(b)));
		return 0;
	}
}

/* Checks column i's cell, naming the column. */
int cm_csvmap_check(struct cm_csvmap *m, size_t i, const char *s, size_t n, struct cm_err *err)
{
	if (check_type(m, m->col[i].type, s, n, err))
		return cm_err_prefix(err, "column '%.*s': ", (int)m->col[i].strip_len,
		                     m->names.data + m->col[i].name_off);
	return 0;
}

/* Appends a checked cell as the JSON value of its type. */
static int put_cell(struct cm_csvmap *m, int type, const char *s, size_t n, struct cm_buf *b)
{
	switch (type) {
	case CM_CSVT_NUMBER:
	case CM_CSVT_INTEGER:
		return cm_buf_put(b, s, n);
	case CM_CSVT_BOOLEAN:
		return cm_csvmap_bool(s, n) ? cm_buf_put(b, "true", 4) : cm_buf_put(b, "false", 5);
	case CM_CSVT_JSON:
		return cm_json_write(&m->cell, 0, b);
	default:
		return cm_event_put_str(b, s, n);
	}
}

/* Sorts the event's own fields into p and appends the other cells to the
 * properties object in m->props. */
static int build_props(struct cm_csvmap *m, const struct cm_csvrec *rec, struct cm_event_parts *p,
                       struct cm_err *err)
{
	struct cm_buf *b = &m->props;
	int first = 1;

	cm_buf_reset(b);
	if (cm_buf_addc(b, '{'))
		return cm_errf(err, "out of memory");
	for (size_t i = 0; i < rec->n; i++) {
		const struct cm_csvcol *c = &m->col[i];
		const char *s = rec->field[i];
		size_t n = rec->len[i];

		switch (c->role) {
		case CM_CSVR_EVENT_ID:
			if (n) {
				p->id = s;
				p->id_len = n;
			}
			continue;
		case CM_CSVR_EVENT_TYPE:
			p->type = s;
			p->type_len = n;
			continue;
		case CM_CSVR_USER_ID:
			p->user = s;
			p->user_len = n;
			continue;
		case CM_CSVR_OCCURRED_AT:
			if (n) {
				p->time = s;
				p->time_len = n;
			}
			continue;
		}
		if (n == 0 && c->type != CM_CSVT_STRING)
			continue;
		if (c->type != CM_CSVT_STRING && cm_csvmap_check(m, i, s, n, err))
			return -1;
		if ((!first && cm_buf_put(b, ",", 1)) ||
		    cm_buf_put(b, m->keys.data + c->kstr_off, c->kstr_len))
			return cm_errf(err, "out of memory");
		first = 0;
		if (put_cell(m, c->type, s, n, b)) {
			char sn[64];

			return cm_errf(err, "column '%.*s': expected UTF-8 text, got %s",
			               (int)c->strip_len, m->names.data + c->name_off,
			               cm_event_snippet(s, n, 1, sn, sizeof(sn)));
		}
	}
	if (cm_buf_addc(b, '}'))
		return cm_errf(err, "out of memory");
	p->props = b->data;
	p->props_len = b->len;
	return 0;
}

/* Builds the event of one record through the one validator. */
int cm_csvmap_event(struct cm_csvmap *m, const struct cm_csvrec *rec, int64_t now_ms,
                    struct cm_buf *out, struct cm_err *err)
{
	struct cm_event_parts p;

	memset(&p, 0, sizeof(p));
	cm_buf_reset(&m->rawobj);
	if (build_props(m, rec, &p, err))
		return -1;
	/* no event_id: the id is derived from the record as --raw shows it */
	if (!p.id && cm_csvmap_raw(m, rec, &m->rawobj, err))
		return -1;
	p.doc = &m->cell;
	return cm_event_build(&p, m->rawobj.data, m->rawobj.len, now_ms, out, err);
}
