/* api_campaigns.c - the campaign routes: create, list, read, edit, archive,
 * and a campaign's matches and audit trail.
 *
 * A campaign body is checked by cm_campaign_validate (rule.h), the code
 * cm-match loads campaigns with, so the API never stores a campaign that
 * the workers would refuse; its problems become FastAPI 422 locations
 * ("rule.where.all[1].op" -> ["body","rule","where","all",1,"op"]). Every
 * change runs in one transaction that names its actor (cm.actor), so that
 * 002_api.sql's triggers bump the version and write the audit row with it,
 * and the NOTIFY trigger tells the running cm-match workers. */
#include "api.h"

#include "num.h"
#include "detail.h"
#include "err.h"
#include "json.h"
#include "logj.h"
#include "pg.h"
#include "rule.h"
#include "timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The columns every campaign reply is built from, in this order. */
#define COLS                                                                                       \
	"id, name, status, cm_utc(starts_at), cm_utc(ends_at), rule::text, version, "              \
	"cm_utc(created_at), cm_utc(updated_at), \"limit\"::text, holdout, variants::text"

#define LIST_DEFAULT 100
#define LIST_MAX     1000
#define OFFSET_MAX   10000000

/* The fields of a campaign body, each as compact JSON (NULL: absent): the
 * delivery controls (CONTRACT 1.6) last. */
enum { F_NAME = 0, F_STATUS, F_STARTS, F_ENDS, F_RULE, F_LIMIT, F_HOLDOUT, F_VARIANTS, NFIELDS };
static const char *const field_names[NFIELDS] = {"name", "status", "starts_at", "ends_at",
                                                 "rule", "limit",  "holdout",   "variants"};
/* Each field's column in COLS. */
static const int field_col[NFIELDS] = {1, 2, 3, 4, 5, 9, 10, 11};

/* True for the fields stored as JSON (or, holdout, a number): the others
 * are strings. */
static int is_json_field(int i)
{
	return i == F_RULE || i >= F_LIMIT;
}

/* True for the fields that PATCH may set to null (unset). */
static int nullable_field(int i)
{
	return i == F_STARTS || i == F_ENDS || i >= F_LIMIT;
}

struct fields {
	const char *loc;    /* where the campaign is in the body, for 422s; NULL: "body" */
	struct cm_buf text; /* the values, one after another */
	size_t off[NFIELDS], len[NFIELDS];
	int has[NFIELDS];
	int has_version;
	int64_t version;
};

/* Records field i's value as JSON text. */
static int field_set(struct fields *f, int i, const char *json, size_t n)
{
	f->off[i] = f->text.len;
	f->len[i] = n;
	f->has[i] = 1;
	return cm_buf_add(&f->text, json, n);
}

/* Appends the campaign of row (columns COLS) as JSON. The delivery controls
 * are there only when set, so that a campaign without them reads as the
 * original service's did. */
static int add_campaign(struct cm_buf *b, const PGresult *res, int row)
{
	int rc = cm_buf_addf(b, "{\"id\":%s,\"name\":", PQgetvalue(res, row, 0)) |
	         cm_api_add_col(b, res, row, 1) | cm_buf_adds(b, ",\"status\":") |
	         cm_api_add_col(b, res, row, 2) | cm_buf_adds(b, ",\"starts_at\":") |
	         cm_api_add_col(b, res, row, 3) | cm_buf_adds(b, ",\"ends_at\":") |
	         cm_api_add_col(b, res, row, 4) | cm_buf_adds(b, ",\"rule\":") |
	         cm_api_add_json(b, PQgetvalue(res, row, 5), (size_t)PQgetlength(res, row, 5));

	for (int i = F_LIMIT; i < NFIELDS; i++) {
		int col = field_col[i];

		if (PQgetisnull(res, row, col))
			continue;
		rc |= cm_buf_addf(b, ",\"%s\":", field_names[i]);
		rc |= i == F_HOLDOUT ? cm_buf_add(b, PQgetvalue(res, row, col),
		                                  (size_t)PQgetlength(res, row, col))
		                     : cm_api_add_json(b, PQgetvalue(res, row, col),
		                                       (size_t)PQgetlength(res, row, col));
	}
	return rc | cm_buf_addf(b, ",\"version\":%s,\"created_at\":", PQgetvalue(res, row, 6)) |
	       cm_api_add_col(b, res, row, 7) | cm_buf_adds(b, ",\"updated_at\":") |
	       cm_api_add_col(b, res, row, 8) | cm_buf_addc(b, '}');
}

/* Replies with the single campaign of res. */
static void reply_campaign(struct cm_http_req *r, int status, const PGresult *res)
{
	struct cm_buf b = CM_BUF_INIT;

	if (add_campaign(&b, res, 0) < 0) {
		cm_buf_release(&b);
		cm_http_detail(r, 500, "Internal Server Error");
		return;
	}
	cm_http_reply(r, status, "application/json", &b);
}

int cm_api_parse_object(struct cm_http_req *r, struct cm_jdoc *d)
{
	struct cm_err err;
	char loc[48];

	if (cm_json_parse(d, r->body.data ? r->body.data : "", r->body.len, &err) < 0) {
		if (r->body.len == 0) {
			cm_api_422(r, "\"body\"", "field required", "value_error.missing");
			return -1;
		}
		snprintf(loc, sizeof(loc), "\"body\",%ld", cm_detail_json_pos(err.msg));
		cm_api_422(r, loc, err.msg, "value_error.jsondecode");
		return -1;
	}
	if (d->tok[0].type != CM_JOBJ) {
		cm_api_422(r, "\"body\"", "value is not a valid dict", "type_error.dict");
		return -1;
	}
	return 0;
}

void cm_api_422_at(struct cm_http_req *r, const char *at, const char *key, size_t klen,
                   const char *msg, const char *type)
{
	struct cm_buf loc = CM_BUF_INIT;

	if (cm_buf_adds(&loc, at ? at : "\"body\"") == 0 && cm_buf_addc(&loc, ',') == 0 &&
	    cm_log_add_str(&loc, key, klen) == 0)
		cm_api_422(r, loc.data, msg, type);
	else
		cm_http_detail(r, 500, "Internal Server Error");
	cm_buf_release(&loc);
}

/* Reads the campaign object at token obj of d into f: the known fields as
 * JSON texts; read-only fields (id, created_at, updated_at) ignored;
 * version kept for PATCH's check; anything else refused. -1 after
 * answering. */
static int read_fields(struct cm_http_req *r, const struct cm_jdoc *d, uint32_t obj, int patch,
                       struct fields *f)
{
	struct cm_buf key = CM_BUF_INIT, val = CM_BUF_INIT;
	const char *k;
	size_t klen;
	uint32_t t, i;
	int rc = -1, j;

	for (t = obj + 1, i = 0; i < d->tok[obj].count; i++, t = d->tok[t + 1].next) {
		k = cm_json_str(d, t, &key, &klen);
		if (!k)
			goto oom;
		for (j = 0; j < NFIELDS; j++)
			if (strlen(field_names[j]) == klen && memcmp(field_names[j], k, klen) == 0)
				break;
		if (j < NFIELDS) {
			cm_buf_reset(&val);
			if (patch && !nullable_field(j) && d->tok[t + 1].type == CM_JNULL) {
				cm_api_422_at(r, f->loc, k, klen, "none is not an allowed value",
				              "type_error.none.not_allowed");
				goto out;
			}
			if (cm_json_write(d, t + 1, &val) < 0 ||
			    field_set(f, j, val.data, val.len) < 0)
				goto oom;
		} else if (klen == 7 && memcmp(k, "version", 7) == 0) {
			const struct cm_jtok *v = &d->tok[t + 1];
			char num[24];

			if (!patch)
				continue;
			if (v->type != CM_JNUM || v->len >= sizeof(num) ||
			    (memcpy(num, d->src + v->off, v->len), num[v->len] = 0,
			     cm_parse_i64(num, 1, INT32_MAX, &f->version) < 0)) {
				cm_api_422_at(r, f->loc, k, klen, "value is not a valid integer",
				              "type_error.integer");
				goto out;
			}
			f->has_version = 1;
		} else if ((klen == 2 && memcmp(k, "id", 2) == 0) ||
		           (klen == 10 && (memcmp(k, "created_at", 10) == 0 ||
		                           memcmp(k, "updated_at", 10) == 0))) {
			continue;
		} else {
			cm_api_422_at(r, f->loc, k, klen, "extra fields not permitted",
			              "value_error.extra");
			goto out;
		}
	}
	rc = 0;
	goto out;
oom:
	cm_http_detail(r, 500, "Internal Server Error");
out:
	cm_buf_release(&key);
	cm_buf_release(&val);
	return rc;
}

/* Reads the request's body, a campaign object, into f (read_fields). */
static int read_body(struct cm_http_req *r, int patch, struct fields *f)
{
	struct cm_jdoc *d = cm_jdoc_thread(CM_API_DOC_BODY, CM_RULE_MAX_DEPTH + 8);

	if (!d) {
		cm_http_detail(r, 500, "Internal Server Error");
		return -1;
	}
	if (cm_api_parse_object(r, d) < 0)
		return -1;
	return read_fields(r, d, 0, patch, f);
}

/* The values the database gets, decoded from a validated campaign. */
struct values {
	struct cm_buf text;
	const char *p[NFIELDS]; /* in the order of field_names; NULL: SQL null */
};

/* Builds the campaign from f, validates it as cm-match would, and decodes
 * the values for SQL (and, with out, appends the campaign to it as JSON);
 * -1 after answering 422. */
static int validate(struct cm_http_req *r, const struct fields *f, struct values *v,
                    struct cm_buf *out)
{
	struct cm_buf doc = CM_BUF_INIT, scratch = CM_BUF_INIT;
	struct cm_jdoc d;
	struct cm_err err;
	const char *text, *s;
	size_t n, off[NFIELDS] = {0};
	int i, rc = -1, first = 1, isnull[NFIELDS];
	uint32_t t;

	for (i = 0; i < NFIELDS; i++)
		isnull[i] = 1;
	cm_jdoc_init(&d, CM_RULE_MAX_DEPTH + 8);
	cm_buf_init(&v->text, 0);
	cm_buf_addc(&doc, '{');
	for (i = 0; i < NFIELDS; i++) {
		if (!f->has[i])
			continue;
		cm_buf_addf(&doc, "%s\"%s\":", first ? "" : ",", field_names[i]);
		cm_buf_add(&doc, f->text.data + f->off[i], f->len[i]);
		first = 0;
	}
	if (cm_buf_addc(&doc, '}') < 0)
		goto oom;
	if (cm_campaign_validate(doc.data, doc.len, CM_RULE_ID_OPTIONAL, &err) < 0) {
		struct cm_buf loc = CM_BUF_INIT;
		size_t plen = cm_detail_split_path(err.msg, &text);

		cm_buf_adds(&loc, f->loc ? f->loc : "\"body\"");
		cm_detail_path_loc(&loc, err.msg, plen);
		cm_api_422(r, loc.data ? loc.data : "\"body\"", text,
		           strncmp(text, "missing", 7) == 0 ? "value_error.missing"
		                                            : "value_error");
		cm_buf_release(&loc);
		goto out;
	}
	if (cm_json_parse(&d, doc.data, doc.len, &err) < 0 ||
	    (out && cm_buf_add(out, doc.data, doc.len) < 0))
		goto oom;
	/* The strings PostgreSQL gets: decoded, times in the canonical form. */
	for (i = 0; i < NFIELDS; i++) {
		t = f->has[i] ? cm_json_get(&d, 0, field_names[i], strlen(field_names[i]))
		              : CM_JNONE;
		off[i] = v->text.len;
		if (t == CM_JNONE || d.tok[t].type == CM_JNULL)
			continue;
		isnull[i] = 0;
		if (is_json_field(i)) {
			if (cm_json_write(&d, t, &v->text) < 0)
				goto oom;
		} else {
			s = cm_json_str(&d, t, &scratch, &n);
			if (!s)
				goto oom;
			if (memchr(s, 0, n)) {
				cm_api_422_at(r, f->loc, field_names[i], strlen(field_names[i]),
				              "must not contain NUL (\\u0000)", "value_error");
				goto out;
			}
			if (i == F_STARTS || i == F_ENDS) {
				char tb[CM_TIME_MAX];
				int64_t ms;

				if (cm_time_parse(s, n, &ms) < 0)
					goto oom; /* validated above */
				n = cm_time_format(ms, tb);
				s = tb;
				if (cm_buf_add(&v->text, s, n) < 0)
					goto oom;
			} else if (cm_buf_add(&v->text, s, n) < 0) {
				goto oom;
			}
		}
		if (cm_buf_addc(&v->text, 0) < 0)
			goto oom;
	}
	for (i = 0; i < NFIELDS; i++)
		v->p[i] = isnull[i] ? NULL : v->text.data + off[i];
	rc = 0;
	goto out;
oom:
	cm_http_detail(r, 500, "Internal Server Error");
out:
	cm_jdoc_release(&d);
	cm_buf_release(&doc);
	cm_buf_release(&scratch);
	return rc;
}

/* Runs sql in the open transaction; on failure rolls back and answers
 * (409 for a name taken, 422 for a value the schema refuses). */
static PGresult *tx_query(struct cm_api_call *c, PGconn *pg, const char *sql, int n,
                          const char *const *params)
{
	struct cm_err err;
	PGresult *res = cm_pg_query(pg, sql, n, params, &err);

	if (res)
		return res;
	if (strstr(err.msg, "SQLSTATE 23505")) {
		cm_pg_exec(pg, "ROLLBACK", NULL);
		cm_http_detail(c->r, 409, "Campaign name already exists");
	} else if (strstr(err.msg, "SQLSTATE 22") || strstr(err.msg, "SQLSTATE 23")) {
		cm_pg_exec(pg, "ROLLBACK", NULL);
		cm_api_422(c->r, "\"body\"", err.msg, "value_error");
	} else {
		if (PQstatus(pg) == CONNECTION_OK)
			cm_pg_exec(pg, "ROLLBACK", NULL);
		cm_api_db_error(c, pg, &err);
	}
	return NULL;
}

/* BEGIN and name the actor for the audit trigger. */
static int tx_begin(struct cm_api_call *c, PGconn *pg)
{
	const char *params[1] = {c->who};
	struct cm_err err;
	PGresult *res;

	if (cm_pg_exec(pg, "BEGIN", &err) < 0) {
		cm_api_db_error(c, pg, &err);
		return -1;
	}
	res = tx_query(c, pg, "SELECT set_config('cm.actor', $1, true)", 1, params);
	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

/* Opens the changing transaction and locks campaign id: its row (columns
 * COLS), or NULL after rolling back and answering 404, or 409 when version
 * (0: any) is not the campaign's. */
static PGresult *lock_campaign(struct cm_api_call *c, PGconn *pg, const char *id, int64_t version)
{
	const char *params[1] = {id};
	PGresult *res;
	char msg[96];
	int64_t at;

	if (tx_begin(c, pg) < 0)
		return NULL;
	res = tx_query(c, pg, "SELECT " COLS " FROM campaigns WHERE id = $1 FOR UPDATE", 1, params);
	if (!res)
		return NULL;
	if (PQntuples(res) != 1) {
		PQclear(res);
		cm_pg_exec(pg, "ROLLBACK", NULL);
		cm_http_detail(c->r, 404, "Campaign not found");
		return NULL;
	}
	at = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
	if (version && version != at) {
		PQclear(res);
		cm_pg_exec(pg, "ROLLBACK", NULL);
		snprintf(msg, sizeof(msg), "Version conflict: the campaign is at version %lld",
		         (long long)at);
		cm_http_detail(c->r, 409, msg);
		return NULL;
	}
	return res;
}

/* COMMIT, then the reply from res (freed). */
static void tx_commit(struct cm_api_call *c, PGconn *pg, PGresult *res, int status)
{
	struct cm_err err;

	if (cm_pg_exec(pg, "COMMIT", &err) < 0) {
		PQclear(res);
		cm_api_db_error(c, pg, &err);
		return;
	}
	reply_campaign(c->r, status, res);
	PQclear(res);
}

/* --- POST /campaigns --- */

static void create_db(struct cm_api_call *c, PGconn *pg)
{
	struct values *v = c->state;
	PGresult *res;

	if (tx_begin(c, pg) < 0)
		return;
	res = tx_query(c, pg,
	               "INSERT INTO campaigns (name, status, starts_at, ends_at, rule, \"limit\", "
	               "holdout, variants) VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, "
	               "$7::float8, $8::jsonb) RETURNING " COLS,
	               NFIELDS, v->p);
	if (res)
		tx_commit(c, pg, res, 201);
}

static void values_free(void *p)
{
	struct values *v = p;

	cm_buf_release(&v->text);
	free(v);
}

void cm_api_campaign_create(struct cm_api_call *c)
{
	struct fields f;
	struct values *v = calloc(1, sizeof(*v));

	memset(&f, 0, sizeof(f));
	cm_buf_init(&f.text, 0);
	if (!v) {
		cm_http_detail(c->r, 500, "Internal Server Error");
		return;
	}
	c->state = v;
	c->state_free = values_free;
	if (read_body(c->r, 0, &f) == 0) {
		if (!f.has[F_STATUS])
			field_set(&f, F_STATUS, "\"active\"", 8);
		if (validate(c->r, &f, v, NULL) == 0)
			cm_api_db(c, create_db);
	}
	cm_buf_release(&f.text);
}

int cm_api_campaign_read(struct cm_http_req *r, const struct cm_jdoc *d, uint32_t obj,
                         const char *loc, struct cm_buf *out)
{
	struct fields f;
	struct values v;
	int rc;

	memset(&f, 0, sizeof(f));
	memset(&v, 0, sizeof(v));
	f.loc = loc;
	cm_buf_init(&f.text, 0);
	rc = read_fields(r, d, obj, 0, &f);
	if (rc == 0 && field_set(&f, F_STATUS, "\"active\"", 8) < 0) {
		cm_http_detail(r, 500, "Internal Server Error");
		rc = -1;
	}
	if (rc == 0)
		rc = validate(r, &f, &v, out);
	cm_buf_release(&v.text);
	cm_buf_release(&f.text);
	return rc;
}

/* --- GET /campaigns --- */

struct list {
	char status[16], limit[24], offset[24]; /* status: or the outcome of matches */
	int64_t id;
	char id_text[24]; /* id for SQL */
	int64_t version;  /* DELETE's ?version=, 0: none */
};

static void list_db(struct cm_api_call *c, PGconn *pg)
{
	struct list *l = c->state;
	const char *params[3] = {l->limit, l->offset, l->status};
	struct cm_buf b = CM_BUF_INIT;
	struct cm_err err;
	PGresult *res;
	int i, bad = 0;

	res = cm_pg_query(pg,
	                  l->status[0] ? "SELECT " COLS " FROM campaigns WHERE status = $3 "
	                                 "ORDER BY id LIMIT $1 OFFSET $2"
	                               : "SELECT " COLS
	                                 " FROM campaigns ORDER BY id LIMIT $1 OFFSET $2",
	                  l->status[0] ? 3 : 2, params, &err);
	if (!res) {
		cm_api_db_error(c, pg, &err);
		return;
	}
	bad |= cm_buf_addc(&b, '[');
	for (i = 0; i < PQntuples(res); i++)
		bad |= (i ? cm_buf_addc(&b, ',') : 0) | add_campaign(&b, res, i);
	bad |= cm_buf_addc(&b, ']');
	PQclear(res);
	cm_api_reply_json(c->r, 200, &b, bad);
}

/* Reads ?limit= and ?offset= into l; -1 after answering 422. */
static int read_page(struct cm_http_req *r, struct list *l)
{
	int64_t limit, offset;

	if (cm_api_query_int(r, "limit", LIST_DEFAULT, 1, LIST_MAX, &limit) < 0 ||
	    cm_api_query_int(r, "offset", 0, 0, OFFSET_MAX, &offset) < 0)
		return -1;
	snprintf(l->limit, sizeof(l->limit), "%lld", (long long)limit);
	snprintf(l->offset, sizeof(l->offset), "%lld", (long long)offset);
	return 0;
}

/* Reads the path's campaign id into l; -1 after answering 422. */
static int list_id(struct cm_api_call *c, struct list *l)
{
	if (cm_api_path_id(c, &l->id) < 0)
		return -1;
	snprintf(l->id_text, sizeof(l->id_text), "%lld", (long long)l->id);
	return 0;
}

/* A new struct list as the call's state. */
static struct list *new_list(struct cm_api_call *c)
{
	struct list *l = calloc(1, sizeof(*l));

	if (!l) {
		cm_http_detail(c->r, 500, "Internal Server Error");
		return NULL;
	}
	c->state = l;
	c->state_free = free;
	return l;
}

void cm_api_campaign_list(struct cm_api_call *c)
{
	struct cm_http_req *r = c->r;
	struct list *l = new_list(c);
	int st;

	if (!l || read_page(r, l) < 0)
		return;
	st = r->query ? cm_query_get(r->query, r->query_len, "status", l->status, sizeof(l->status))
	              : 0;
	if (st != 0 &&
	    (st < 0 || (strcmp(l->status, "active") != 0 && strcmp(l->status, "paused") != 0 &&
	                strcmp(l->status, "archived") != 0))) {
		cm_api_422(
		    r, "\"query\",\"status\"",
		    "value is not a valid enumeration member; permitted: 'active', 'paused', "
		    "'archived'",
		    "type_error.enum");
		return;
	}
	cm_api_db(c, list_db);
}

/* --- GET /campaigns/{id} --- */

static void get_db(struct cm_api_call *c, PGconn *pg)
{
	struct list *l = c->state;
	const char *params[1] = {l->id_text};
	struct cm_err err;
	PGresult *res;

	res = cm_pg_query(pg, "SELECT " COLS " FROM campaigns WHERE id = $1", 1, params, &err);
	if (!res) {
		cm_api_db_error(c, pg, &err);
		return;
	}
	if (PQntuples(res) == 1)
		reply_campaign(c->r, 200, res);
	else
		cm_http_detail(c->r, 404, "Campaign not found");
	PQclear(res);
}

void cm_api_campaign_get(struct cm_api_call *c)
{
	struct list *l = new_list(c);

	if (l && list_id(c, l) == 0)
		cm_api_db(c, get_db);
}

/* --- PATCH /campaigns/{id} --- */

struct patch {
	struct fields f;
	int64_t id;
};

static void patch_free(void *p)
{
	struct patch *pt = p;

	cm_buf_release(&pt->f.text);
	free(pt);
}

/* Fills the fields the patch leaves out from the stored campaign (row 0 of
 * res, columns COLS). */
static int merge_current(struct fields *f, const PGresult *res)
{
	struct cm_buf b = CM_BUF_INIT;
	int i, col, rc = 0;

	for (i = 0; i < NFIELDS && rc == 0; i++) {
		if (f->has[i])
			continue;
		col = field_col[i];
		cm_buf_reset(&b);
		if (PQgetisnull(res, 0, col))
			rc |= cm_buf_adds(&b, "null");
		else if (i == F_HOLDOUT)
			rc |= cm_buf_add(&b, PQgetvalue(res, 0, col),
			                 (size_t)PQgetlength(res, 0, col));
		else if (is_json_field(i))
			rc |= cm_api_add_json(&b, PQgetvalue(res, 0, col),
			                      (size_t)PQgetlength(res, 0, col));
		else
			rc |= cm_buf_add_jstr(&b, PQgetvalue(res, 0, col),
			                      (size_t)PQgetlength(res, 0, col));
		rc |= field_set(f, i, b.data ? b.data : "", b.len);
	}
	cm_buf_release(&b);
	return rc;
}

static void patch_db(struct cm_api_call *c, PGconn *pg)
{
	struct patch *pt = c->state;
	struct values v;
	char id[24];
	const char *params[NFIELDS + 1];
	PGresult *res;

	snprintf(id, sizeof(id), "%lld", (long long)pt->id);
	params[0] = id;
	res = lock_campaign(c, pg, id, pt->f.has_version ? pt->f.version : 0);
	if (!res)
		return;
	if (merge_current(&pt->f, res) < 0) {
		PQclear(res);
		cm_pg_exec(pg, "ROLLBACK", NULL);
		cm_http_detail(c->r, 500, "Internal Server Error");
		return;
	}
	PQclear(res);
	if (validate(c->r, &pt->f, &v, NULL) < 0) {
		cm_buf_release(&v.text);
		cm_pg_exec(pg, "ROLLBACK", NULL);
		return;
	}
	memcpy(params + 1, v.p, sizeof(v.p));
	res = tx_query(c, pg,
	               "UPDATE campaigns SET name = $2, status = $3, starts_at = $4, ends_at = $5, "
	               "rule = $6::jsonb, \"limit\" = $7::jsonb, holdout = $8::float8, "
	               "variants = $9::jsonb WHERE id = $1 RETURNING " COLS,
	               NFIELDS + 1, params);
	cm_buf_release(&v.text);
	if (res)
		tx_commit(c, pg, res, 200);
}

void cm_api_campaign_patch(struct cm_api_call *c)
{
	struct patch *pt = calloc(1, sizeof(*pt));

	if (!pt) {
		cm_http_detail(c->r, 500, "Internal Server Error");
		return;
	}
	cm_buf_init(&pt->f.text, 0);
	c->state = pt;
	c->state_free = patch_free;
	if (cm_api_path_id(c, &pt->id) < 0 || read_body(c->r, 1, &pt->f) < 0)
		return;
	cm_api_db(c, patch_db);
}

/* --- DELETE /campaigns/{id} (archives) --- */

static void archive_db(struct cm_api_call *c, PGconn *pg)
{
	struct list *l = c->state;
	const char *params[1] = {l->id_text};
	PGresult *res;

	res = lock_campaign(c, pg, l->id_text, l->version);
	if (!res)
		return;
	PQclear(res);
	res = tx_query(c, pg,
	               "UPDATE campaigns SET status = 'archived' WHERE id = $1 RETURNING " COLS, 1,
	               params);
	if (res)
		tx_commit(c, pg, res, 200);
}

/* DELETE archives; with ?version=N only a campaign still at version N. */
void cm_api_campaign_archive(struct cm_api_call *c)
{
	struct list *l = new_list(c);

	if (l && list_id(c, l) == 0 &&
	    cm_api_query_int(c->r, "version", 0, 1, INT32_MAX, &l->version) == 0)
		cm_api_db(c, archive_db);
}

/* --- GET /campaigns/{id}/matches and /audit --- */

/* True when campaign id exists; -1 after answering a database error. */
static int campaign_exists(struct cm_api_call *c, PGconn *pg, const char *id)
{
	const char *params[1] = {id};
	struct cm_err err;
	PGresult *res = cm_pg_query(pg, "SELECT 1 FROM campaigns WHERE id = $1", 1, params, &err);
	int n;

	if (!res) {
		cm_api_db_error(c, pg, &err);
		return -1;
	}
	n = PQntuples(res);
	PQclear(res);
	return n > 0;
}

/* Replies with the rows of res as a JSON array, each built by add. */
static void reply_rows(struct cm_api_call *c, PGresult *res,
                       int (*add)(struct cm_buf *b, const PGresult *res, int row))
{
	struct cm_buf b = CM_BUF_INIT;
	int i, bad;

	bad = cm_buf_addc(&b, '[');
	for (i = 0; i < PQntuples(res); i++)
		bad |= (i ? cm_buf_addc(&b, ',') : 0) | add(&b, res, i);
	bad |= cm_buf_addc(&b, ']');
	cm_api_reply_json(c->r, 200, &b, bad);
}

/* A match row: campaign_id, event_id, user_id, event_type, occurred_at,
 * matched_at, then the outcome columns. */
static int add_match(struct cm_buf *b, const PGresult *res, int row)
{
	return cm_buf_addf(b, "{\"campaign_id\":%s,\"event_id\":", PQgetvalue(res, row, 0)) |
	       cm_api_add_col(b, res, row, 1) | cm_buf_adds(b, ",\"user_id\":") |
	       cm_api_add_col(b, res, row, 2) | cm_buf_adds(b, ",\"event_type\":") |
	       cm_api_add_col(b, res, row, 3) | cm_buf_adds(b, ",\"occurred_at\":") |
	       cm_api_add_col(b, res, row, 4) | cm_buf_adds(b, ",\"matched_at\":") |
	       cm_api_add_col(b, res, row, 5) | cm_api_add_outcome(b, res, row, 6) |
	       cm_buf_addc(b, '}');
}

static void matches_db(struct cm_api_call *c, PGconn *pg)
{
	struct list *l = c->state;
	const char *params[4] = {l->id_text, l->limit, l->offset, l->status};
	struct cm_err err;
	PGresult *res;
	int st;

	st = campaign_exists(c, pg, l->id_text);
	if (st <= 0) {
		if (st == 0)
			cm_http_detail(c->r, 404, "Campaign not found");
		return;
	}
	res = cm_pg_query(pg,
	                  "SELECT m.campaign_id, m.event_id, m.user_id, m.event_type, "
	                  "cm_utc(m.occurred_at), cm_utc(m.matched_at), " CM_API_OUTCOME_COLS
	                  " FROM matches m WHERE m.campaign_id = $1 AND ($4 = '' OR m.outcome = $4)"
	                  " ORDER BY m.matched_at DESC, m.event_id DESC LIMIT $2 OFFSET $3",
	                  4, params, &err);
	if (!res) {
		cm_api_db_error(c, pg, &err);
		return;
	}
	reply_rows(c, res, add_match);
	PQclear(res);
}

/* A campaign snapshot of the audit (002's cm_campaign_doc, every column)
 * without the delivery controls that are not set, as the campaign replies
 * leave them out. */
#define UNSET(col)                                                                                 \
	"(" col " - ARRAY(SELECT k FROM jsonb_each(" col ") AS e(k, v) "                           \
	"WHERE k IN ('limit', 'holdout', 'variants') AND v = 'null'))"

/* An audit row: id, campaign_id, actor, action, at, before, after. */
static int add_audit(struct cm_buf *b, const PGresult *res, int row)
{
	int rc = cm_buf_addf(b, "{\"id\":%s,\"campaign_id\":%s,\"actor\":", PQgetvalue(res, row, 0),
	                     PQgetvalue(res, row, 1)) |
	         cm_api_add_col(b, res, row, 2) | cm_buf_adds(b, ",\"action\":") |
	         cm_api_add_col(b, res, row, 3) | cm_buf_adds(b, ",\"at\":") |
	         cm_api_add_col(b, res, row, 4);
	int col;

	for (col = 5; col <= 6; col++) {
		rc |= cm_buf_adds(b, col == 5 ? ",\"before\":" : ",\"after\":");
		if (PQgetisnull(res, row, col))
			rc |= cm_buf_adds(b, "null");
		else
			rc |= cm_api_add_json(b, PQgetvalue(res, row, col),
			                      (size_t)PQgetlength(res, row, col));
	}
	return rc | cm_buf_addc(b, '}');
}

static void audit_db(struct cm_api_call *c, PGconn *pg)
{
	struct list *l = c->state;
	const char *params[3] = {l->id_text, l->limit, l->offset};
	struct cm_err err;
	PGresult *res;
	int st;

	res = cm_pg_query(
	    pg,
	    "SELECT id, campaign_id, actor, action, cm_utc(at), " UNSET("before") "::text, " UNSET(
	        "after") "::text FROM campaign_audit WHERE campaign_id = $1 "
	                 "ORDER BY id DESC LIMIT $2 OFFSET $3",
	    3, params, &err);
	if (!res) {
		cm_api_db_error(c, pg, &err);
		return;
	}
	/* No trail and no campaign: there is no such campaign (a deleted
	 * one keeps its trail). */
	if (PQntuples(res) == 0 && strcmp(l->offset, "0") == 0) {
		st = campaign_exists(c, pg, l->id_text);
		if (st <= 0) {
			if (st == 0)
				cm_http_detail(c->r, 404, "Campaign not found");
			PQclear(res);
			return;
		}
	}
	reply_rows(c, res, add_audit);
	PQclear(res);
}

/* GET /campaigns/{id}/matches, with ?outcome= (matched, holdout, capped)
 * to see one kind only. */
void cm_api_campaign_matches(struct cm_api_call *c)
{
	struct cm_http_req *r = c->r;
	struct list *l = new_list(c);
	int st;

	if (!l || list_id(c, l) < 0 || read_page(r, l) < 0)
		return;
	st = r->query
	         ? cm_query_get(r->query, r->query_len, "outcome", l->status, sizeof(l->status))
	         : 0;
	if (st != 0 &&
	    (st < 0 || (strcmp(l->status, "matched") != 0 && strcmp(l->status, "holdout") != 0 &&
	                strcmp(l->status, "capped") != 0))) {
		cm_api_422(r, "\"query\",\"outcome\"",
		           "value is not a valid enumeration member; permitted: 'matched', "
		           "'holdout', 'capped'",
		           "type_error.enum");
		return;
	}
	cm_api_db(c, matches_db);
}

void cm_api_campaign_audit(struct cm_api_call *c)
{
	struct list *l = new_list(c);

	if (l && list_id(c, l) == 0 && read_page(c->r, l) == 0)
		cm_api_db(c, audit_db);
}
