/* api_profiles.c - GET /profiles/{user_id}: what is known about one user
 * (CONTRACT 1.5), from the profiles table that cm-store keeps from the
 * identify events it stores. */
#include "api.h"

#include "err.h"
#include "event.h"
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>

/* The profile of c->param: 200 {"user_id","traits","updated_at"}, or 404. */
static void profile_db(struct cm_api_call *c, PGconn *pg)
{
	const char *params[1] = {c->param};
	struct cm_buf b = CM_BUF_INIT;
	struct cm_err err;
	PGresult *res;
	int bad;

	res = cm_pg_query(pg,
	                  "SELECT user_id, traits::text, cm_utc(updated_at) FROM profiles "
	                  "WHERE user_id = $1",
	                  1, params, &err);
	if (!res) {
		cm_api_db_error(c, pg, &err);
		return;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		cm_http_detail(c->r, 404, "Not Found");
		return;
	}
	bad = cm_buf_adds(&b, "{\"user_id\":") | cm_api_add_col(&b, res, 0, 0) |
	      cm_buf_adds(&b, ",\"traits\":") |
	      cm_api_add_json(&b, PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1)) |
	      cm_buf_adds(&b, ",\"updated_at\":") | cm_api_add_col(&b, res, 0, 2) |
	      cm_buf_addc(&b, '}');
	PQclear(res);
	cm_api_reply_json(c->r, 200, &b, bad);
}

void cm_api_profile_get(struct cm_api_call *c)
{
	/* A user_id no event can have is not looked up (PostgreSQL would
	 * refuse bytes that are not UTF-8). */
	if (c->param_nul || c->param_cut || c->param_len == 0 || c->param_len > CM_EVENT_USER_MAX ||
	    cm_utf8_valid_prefix(c->param, c->param_len) != c->param_len) {
		cm_http_detail(c->r, 404, "Not Found");
		return;
	}
	cm_api_db(c, profile_db);
}
