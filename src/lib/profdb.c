/* profdb.c - profiles looked up in PostgreSQL a batch at a time, with a
 * bounded cache of what was found (and of who has no profile). */
#include "profdb.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "num.h"
#include "pg.h"
#include "retry.h"
#include "strmap.h"

/* How long a lookup keeps trying to reach the server. */
#define PROFDB_RETRY_MS 30000
/* How long opening waits for a server that is starting. */
#define PROFDB_OPEN_MS 10000

/* The users come back by their place in the array, so that the answer is
 * filed without looking each one up again. */
static const char lookup_sql[] =
    "SELECT u.o, p.traits::text FROM unnest($1::text[]) WITH ORDINALITY AS u(id, o)"
    " JOIN profiles AS p ON p.user_id = u.id";

/* What is known of one user. */
struct pentry {
	int64_t fetched;   /* cm_mono_ms when the query that told started; INT64_MIN: never */
	uint32_t off, len; /* the traits, in texts */
	uint32_t batch;    /* the batch that last put it in missing */
	uint8_t present;   /* the user has a profile */
	uint8_t pending;   /* in the query in flight */
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
	uint32_t *flight; /* entries of the query in flight (cm_profdb_send) */
	uint32_t nflight, flightcap;
	int busy; /* a query is in flight */
	int64_t flight_t0;
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
	free(db->flight);
	free(db->conninfo);
	free(db);
}

/* A new batch. */
void cm_profdb_begin(struct cm_profdb *db)
{
	db->batch++;
	db->nmissing = 0;
}

/* Empties the cache when it is over its bounds and no query is in flight
 * (whose users it would forget). */
int cm_profdb_trim(struct cm_profdb *db)
{
	if (db->busy || (db->users.n < db->max_users && db->texts.len < CM_PROFDB_BYTES))
		return 0;
	cm_strmap_clear(&db->users);
	cm_buf_reset(&db->texts);
	db->nmissing = 0;
	db->batch++;
	return 1;
}

/* Makes entry i new: never looked up. */
static int new_entry(struct cm_profdb *db, uint32_t i)
{
	if (cm_grow((void **)&db->ents, &db->entcap, i + 1, sizeof(*db->ents)) < 0)
		return -1;
	memset(&db->ents[i], 0, sizeof(db->ents[i]));
	db->ents[i].fetched = INT64_MIN;
	return 0;
}

/* Puts entry i in the batch's lookups unless it is fresh, in them already,
 * or in the query in flight. */
static int add_missing(struct cm_profdb *db, uint32_t i)
{
	struct pentry *e = &db->ents[i];

	if ((e->fetched != INT64_MIN && cm_mono_ms() - e->fetched < db->ttl_ms) ||
	    e->batch == db->batch || e->pending)
		return 0;
	if (cm_grow((void **)&db->missing, &db->missingcap, db->nmissing + 1,
	            sizeof(*db->missing)) < 0)
		return -1;
	e->batch = db->batch;
	db->missing[db->nmissing++] = i;
	return 0;
}

/* Adds the user to the batch's lookups unless it is fresh in the cache. */
int cm_profdb_want(struct cm_profdb *db, const char *user, size_t n, struct cm_err *err)
{
	uint32_t i;
	int rc = cm_strmap_add(&db->users, user, n, &i);

	if (rc < 0 || (rc == 1 && new_entry(db, i) < 0) || add_missing(db, i) < 0)
		return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
	return 0;
}

/* Users this batch still has to fetch. */
size_t cm_profdb_missing(const struct cm_profdb *db)
{
	return db->nmissing;
}

/* Builds the text[] literal of the users list[from..to): each element
 * quoted, with backslash before quote and backslash. */
static int array_literal(struct cm_profdb *db, const uint32_t *list, uint32_t from, uint32_t to)
{
	cm_buf_reset(&db->arr);
	if (cm_buf_addc(&db->arr, '{') < 0)
		return -1;
	for (uint32_t k = from; k < to; k++) {
		size_t n;
		const char *u = cm_strmap_key(&db->users, list[k], &n);

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

/* Stores the answer r of a lookup of list[from..to), which started at t0:
 * the users it has have a profile, the others none. */
static int apply(struct cm_profdb *db, PGresult *r, const uint32_t *list, uint32_t from,
                 uint32_t to, int64_t t0, struct cm_err *err)
{
	db->queries++;
	for (uint32_t k = from; k < to; k++) {
		struct pentry *e = &db->ents[list[k]];

		e->present = 0;
		e->pending = 0;
		e->fetched = t0;
	}
	for (int row = 0; row < PQntuples(r); row++) {
		int64_t o;
		size_t off = db->texts.len, len = (size_t)PQgetlength(r, row, 1);
		uint32_t i;

		if (cm_parse_i64(PQgetvalue(r, row, 0), 1, to - from, &o) < 0)
			continue;
		i = list[from + (uint32_t)o - 1];
		if (len >= UINT32_MAX || cm_buf_add(&db->texts, PQgetvalue(r, row, 1), len) < 0 ||
		    db->texts.len >= UINT32_MAX)
			return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
		db->ents[i].off = (uint32_t)off;
		db->ents[i].len = (uint32_t)len;
		db->ents[i].present = 1;
		db->fetched++;
	}
	return 0;
}

/* Runs one lookup of the users list[from..to) and stores the answers,
 * reconnecting and retrying when the connection fails. */
static int lookup(struct cm_profdb *db, const uint32_t *list, uint32_t from, uint32_t to,
                  struct cm_err *err)
{
	struct cm_backoff b;
	const char *param;
	PGresult *r;
	int64_t t0;
	int rc;

	if (array_literal(db, list, from, to) < 0)
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
	rc = apply(db, r, list, from, to, t0, err);
	PQclear(r);
	return rc;
}

/* Fetches the batch's missing users, CM_PROFDB_BATCH_MAX per query, after
 * the query in flight, if any. */
int cm_profdb_fetch(struct cm_profdb *db, struct cm_err *err)
{
	if (cm_profdb_receive(db, err) < 0)
		return -1;
	for (uint32_t k = 0; k < db->nmissing; k += CM_PROFDB_BATCH_MAX) {
		uint32_t to =
		    db->nmissing - k > CM_PROFDB_BATCH_MAX ? k + CM_PROFDB_BATCH_MAX : db->nmissing;

		if (lookup(db, db->missing, k, to, err) < 0)
			return -1;
	}
	db->nmissing = 0;
	return 0;
}

/* Sends the lookup of the batch's missing users and returns at once; the
 * answer is taken by cm_profdb_receive. A failure to send falls back to a
 * lookup that waits (and retries). */
int cm_profdb_send(struct cm_profdb *db, struct cm_err *err)
{
	const char *param;
	uint32_t *swap, cap;

	if (cm_profdb_receive(db, err) < 0)
		return -1;
	if (!db->nmissing)
		return 0;
	if (db->nmissing > CM_PROFDB_BATCH_MAX || !db->conn)
		return cm_profdb_fetch(db, err);
	if (array_literal(db, db->missing, 0, db->nmissing) < 0)
		return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
	param = db->arr.data;
	db->flight_t0 = cm_mono_ms();
	if (!PQsendQueryParams(db->conn, lookup_sql, 1, NULL, &param, NULL, NULL, 0)) {
		/* the connection is broken: the waiting way, which reconnects */
		PQfinish(db->conn);
		db->conn = NULL;
		return cm_profdb_fetch(db, err);
	}
	for (uint32_t k = 0; k < db->nmissing; k++)
		db->ents[db->missing[k]].pending = 1;
	/* the missing list becomes the flight list, and the old one free */
	swap = db->flight;
	cap = db->flightcap;
	db->flight = db->missing;
	db->flightcap = db->missingcap;
	db->nflight = db->nmissing;
	db->missing = swap;
	db->missingcap = cap;
	db->nmissing = 0;
	db->busy = 1;
	return 0;
}

/* Waits for the answer of the query in flight and stores it; a failed one
 * is run again the waiting way. */
int cm_profdb_receive(struct cm_profdb *db, struct cm_err *err)
{
	PGresult *r, *last = NULL;
	int ok = 1, rc;

	if (!db->busy)
		return 0;
	db->busy = 0;
	while ((r = PQgetResult(db->conn))) {
		if (PQresultStatus(r) != PGRES_TUPLES_OK || last)
			ok = 0;
		if (last)
			PQclear(last);
		last = r;
	}
	if (ok && last) {
		rc = apply(db, last, db->flight, 0, db->nflight, db->flight_t0, err);
		PQclear(last);
		return rc;
	}
	if (last) {
		int retry = cm_pg_classify(db->conn, last) == CM_PG_RETRY;

		cm_pg_errf(err, db->conn, last, "profiles");
		PQclear(last);
		if (!retry) {
			err->code = CM_EXIT_REFUSED;
			return -1;
		}
	}
	PQfinish(db->conn);
	db->conn = NULL;
	for (uint32_t k = 0; k < db->nflight; k++)
		db->ents[db->flight[k]].pending = 0;
	return lookup(db, db->flight, 0, db->nflight, err);
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

/* A fresh cache entry, or the user added to the batch's lookups. */
int cm_profdb_lookup(struct cm_profdb *db, const char *user, size_t n, const char **text,
                     size_t *len, uint32_t *ref, struct cm_err *err)
{
	uint32_t i;
	int rc = cm_strmap_add(&db->users, user, n, &i);
	struct pentry *e;

	if (rc < 0 || (rc == 1 && new_entry(db, i) < 0))
		return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
	e = &db->ents[i];
	*ref = i;
	if (!e->pending && e->fetched != INT64_MIN && cm_mono_ms() - e->fetched < db->ttl_ms) {
		*text = e->present ? db->texts.data + e->off : NULL;
		*len = e->len;
		return 1;
	}
	return add_missing(db, i) < 0 ? cm_errc(err, CM_EXIT_SYSTEM, "out of memory") : 0;
}

/* The profile of entry ref (of cm_profdb_lookup) once looked up. */
const char *cm_profdb_ref(struct cm_profdb *db, uint32_t ref, size_t *len)
{
	if (ref >= db->users.n || !db->ents[ref].present)
		return NULL;
	*len = db->ents[ref].len;
	return db->texts.data + db->ents[ref].off;
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
