/* profdb.c - profiles looked up in PostgreSQL a batch at a time, with a
 * bounded cache of what was found (and of who has no profile). */
#include "profdb.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "pg.h"
#include "retry.h"
#include "strmap.h"

/* How long a lookup keeps trying to reach the server. */
#define PROFDB_RETRY_MS 30000
/* How long opening waits for a server that is starting. */
#define PROFDB_OPEN_MS 10000

static const char lookup_sql[] =
    "SELECT user_id, traits::text FROM profiles WHERE user_id = ANY($1::text[])";

/* What is known of one user. */
struct pentry {
	int64_t fetched;   /* cm_mono_ms when the query that told started; INT64_MIN: never */
	uint32_t off, len; /* the traits, in texts */
	uint32_t batch;    /* the batch that last put it in missing */
	uint8_t present;   /* the user has a profile */
};

struct cm_profdb {
	char *conninfo;
	PGconn *conn;
	int64_t ttl_ms;
	size_t max_users;
	struct cm_strmap users; /* user_id -> ents */
	struct pentry *ents;
	uint32_t entcap;
	struct cm_buf texts;
	uint32_t *missing; /* entries this batch must fetch */
	uint32_t nmissing, missingcap;
	uint32_t batch;
	int64_t now;       /* the batch's first want; INT64_MIN: none yet */
	struct cm_buf arr; /* the array literal of a query */
	unsigned long long queries, fetched;
};

/* Connects and checks that the table is there. */
static int connect_db(struct cm_profdb *db, int64_t budget_ms, struct cm_err *err)
{
	PGresult *r;

	db->conn = cm_pg_connect_retry(db->conninfo, budget_ms, NULL, err);
	if (!db->conn) {
		cm_err_prefix(err, "profiles: ");
		err->code = CM_EXIT_UNREACHABLE;
		return -1;
	}
	r = PQexec(db->conn, "SELECT 1 FROM profiles LIMIT 0");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		int retry = cm_pg_classify(db->conn, r) == CM_PG_RETRY;

		cm_pg_errf(err, db->conn, r, "profiles");
		if (!retry)
			cm_err_prefix(err,
			              "the profiles table cannot be read (run cm-admin migrate): ");
		err->code = retry ? CM_EXIT_UNREACHABLE : CM_EXIT_REFUSED;
		PQclear(r);
		PQfinish(db->conn);
		db->conn = NULL;
		return -1;
	}
	PQclear(r);
	return 0;
}

/* Opens the connection and an empty cache. */
struct cm_profdb *cm_profdb_open(const char *conninfo, int64_t ttl_ms, size_t max_users,
                                 struct cm_err *err)
{
	struct cm_profdb *db = calloc(1, sizeof(*db));

	if (!db || !(db->conninfo = strdup(conninfo))) {
		free(db);
		cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
		return NULL;
	}
	db->ttl_ms = ttl_ms;
	db->max_users = max_users ? max_users : CM_PROFDB_USERS;
	cm_strmap_init(&db->users);
	cm_buf_init(&db->texts, 0);
	cm_buf_init(&db->arr, 0);
	if (connect_db(db, PROFDB_OPEN_MS, err) < 0) {
		cm_profdb_close(db);
		return NULL;
	}
	return db;
}

/* Closes the connection and frees the cache. */
void cm_profdb_close(struct cm_profdb *db)
{
	if (!db)
		return;
	if (db->conn)
		PQfinish(db->conn);
	cm_strmap_release(&db->users);
	cm_buf_release(&db->texts);
	cm_buf_release(&db->arr);
	free(db->ents);
	free(db->missing);
	free(db->conninfo);
	free(db);
}

/* A new batch (its clock is read at its first want), the cache emptied when
 * over its bounds (nothing of the last batch is needed any more). */
void cm_profdb_begin(struct cm_profdb *db)
{
	db->batch++;
	db->nmissing = 0;
	db->now = INT64_MIN;
	if (db->users.n >= db->max_users || db->texts.len >= CM_PROFDB_BYTES) {
		cm_strmap_clear(&db->users);
		cm_buf_reset(&db->texts);
	}
}

/* Adds the user to the batch's lookups unless it is fresh in the cache. */
int cm_profdb_want(struct cm_profdb *db, const char *user, size_t n, struct cm_err *err)
{
	uint32_t i;
	int rc = cm_strmap_add(&db->users, user, n, &i);
	struct pentry *e;

	if (rc < 0)
		return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
	if (db->now == INT64_MIN)
		db->now = cm_mono_ms();
	if (rc == 1) {
		if (i >= db->entcap) {
			uint32_t cap = db->entcap ? db->entcap * 2 : 1024;
			struct pentry *ne = realloc(db->ents, (size_t)cap * sizeof(*ne));

			if (!ne)
				return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
			db->ents = ne;
			db->entcap = cap;
		}
		memset(&db->ents[i], 0, sizeof(db->ents[i]));
		db->ents[i].fetched = INT64_MIN;
	}
	e = &db->ents[i];
	if ((e->fetched != INT64_MIN && db->now - e->fetched < db->ttl_ms) || e->batch == db->batch)
		return 0;
	if (db->nmissing == db->missingcap) {
		uint32_t cap = db->missingcap ? db->missingcap * 2 : 256;
		uint32_t *nm = realloc(db->missing, (size_t)cap * sizeof(*nm));

		if (!nm)
			return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
		db->missing = nm;
		db->missingcap = cap;
	}
	e->batch = db->batch;
	db->missing[db->nmissing++] = i;
	return 0;
}

/* Users this batch still has to fetch. */
size_t cm_profdb_missing(const struct cm_profdb *db)
{
	return db->nmissing;
}

/* Builds the text[] literal of the missing users from..to: each element
 * quoted, with backslash before quote and backslash. */
static int array_literal(struct cm_profdb *db, uint32_t from, uint32_t to)
{
	cm_buf_reset(&db->arr);
	if (cm_buf_addc(&db->arr, '{') < 0)
		return -1;
	for (uint32_t k = from; k < to; k++) {
		size_t n;
		const char *u = cm_strmap_key(&db->users, db->missing[k], &n);

		if ((k > from && cm_buf_addc(&db->arr, ',') < 0) || cm_buf_addc(&db->arr, '"') < 0)
			return -1;
		for (size_t i = 0; i < n; i++)
			if (((u[i] == '"' || u[i] == '\\') && cm_buf_addc(&db->arr, '\\') < 0) ||
			    cm_buf_addc(&db->arr, u[i]) < 0)
				return -1;
		if (cm_buf_addc(&db->arr, '"') < 0)
			return -1;
	}
	return cm_buf_addc(&db->arr, '}');
}

/* Runs one lookup of the missing users from..to and stores the answers. */
static int lookup(struct cm_profdb *db, uint32_t from, uint32_t to, struct cm_err *err)
{
	struct cm_backoff b;
	const char *param;
	PGresult *r;
	int64_t t0;

	if (array_literal(db, from, to) < 0)
		return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
	param = db->arr.data;
	cm_backoff_start(&b, PROFDB_RETRY_MS);
	for (;;) {
		int retry;

		if (!db->conn && connect_db(db, cm_backoff_left(&b), err) < 0) {
			if (err->code != CM_EXIT_UNREACHABLE || cm_backoff_wait(&b, NULL) < 0)
				return -1;
			continue;
		}
		t0 = cm_mono_ms();
		r = PQexecParams(db->conn, lookup_sql, 1, NULL, &param, NULL, NULL, 0);
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			break;
		retry = cm_pg_classify(db->conn, r) == CM_PG_RETRY;
		cm_pg_errf(err, db->conn, r, "profiles");
		PQclear(r);
		err->code = retry ? CM_EXIT_UNREACHABLE : CM_EXIT_REFUSED;
		if (!retry)
			return -1;
		/* the connection failed: a new one, within the budget */
		PQfinish(db->conn);
		db->conn = NULL;
		if (cm_backoff_wait(&b, NULL) < 0)
			return -1;
	}
	db->queries++;
	for (uint32_t k = from; k < to; k++) {
		struct pentry *e = &db->ents[db->missing[k]];

		e->present = 0;
		e->fetched = t0;
	}
	for (int row = 0; row < PQntuples(r); row++) {
		int64_t i = cm_strmap_find(&db->users, PQgetvalue(r, row, 0),
		                           (size_t)PQgetlength(r, row, 0));
		size_t off = db->texts.len, len = (size_t)PQgetlength(r, row, 1);

		if (i < 0)
			continue;
		if (len >= UINT32_MAX || cm_buf_add(&db->texts, PQgetvalue(r, row, 1), len) < 0 ||
		    db->texts.len >= UINT32_MAX) {
			PQclear(r);
			return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
		}
		db->ents[i].off = (uint32_t)off;
		db->ents[i].len = (uint32_t)len;
		db->ents[i].present = 1;
		db->fetched++;
	}
	PQclear(r);
	return 0;
}

/* Fetches the batch's missing users, CM_PROFDB_BATCH_MAX per query. */
int cm_profdb_fetch(struct cm_profdb *db, struct cm_err *err)
{
	for (uint32_t k = 0; k < db->nmissing; k += CM_PROFDB_BATCH_MAX) {
		uint32_t to =
		    db->nmissing - k > CM_PROFDB_BATCH_MAX ? k + CM_PROFDB_BATCH_MAX : db->nmissing;

		if (lookup(db, k, to, err) < 0)
			return -1;
	}
	db->nmissing = 0;
	return 0;
}

/* The cached traits of a user. */
const char *cm_profdb_get(struct cm_profdb *db, const char *user, size_t n, size_t *len)
{
	int64_t i = cm_strmap_find(&db->users, user, n);

	if (i < 0 || !db->ents[i].present)
		return NULL;
	*len = db->ents[i].len;
	return db->texts.data + db->ents[i].off;
}

/* Queries run so far. */
unsigned long long cm_profdb_queries(const struct cm_profdb *db)
{
	return db->queries;
}

/* Profiles fetched so far. */
unsigned long long cm_profdb_fetched(const struct cm_profdb *db)
{
	return db->fetched;
}
