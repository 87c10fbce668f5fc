/* tool_conn.c - the server settings of the shared options (--redis, --db)
 * resolved and checked once; apart from tool_opts.c, so that only the tools
 * that talk to servers link hiredis and libpq. */
#include "tool.h"

#include "pg.h"
#include "redisx.h"
#include "wmetrics.h"

/* Resolves and checks the Redis URL once, before any connection. */
const char *cm_opts_redis(const struct cm_common_opts *o)
{
	struct cm_redis_url u;
	struct cm_err err;
	const char *url = cm_redis_url(o->redis);

	if (cm_redis_url_parse(url, &u, &err) < 0)
		cm_usage_error("--redis: %s", err.msg);
	return url;
}

/* Resolves and checks the conninfo once, before any connection. */
const char *cm_opts_db(const struct cm_common_opts *o)
{
	struct cm_err err;
	const char *db = cm_pg_conninfo(o->db);

	if (cm_pg_conninfo_check(db, &err) < 0)
		cm_usage_error("--db: %s", err.msg);
	return db;
}

/* Metrics are never worth stopping a stage for: a failure to start them is
 * said once and the stage runs without. */
struct cm_wmetrics *cm_opts_metrics(const struct cm_common_opts *o, const char *redis_url)
{
	char name[256];
	struct cm_wmetrics_opts mo = {0};
	struct cm_wmetrics *m;
	struct cm_err err;

	cm_opts_consumer(o, name, sizeof(name));
	mo.redis_url = redis_url;
	mo.stream = o->stream;
	mo.consumer = name;
	m = cm_wmetrics_new(&mo, &err);
	if (!m)
		cm_warn("%s; running without metrics", err.msg);
	return m;
}
