/* cm-export - stored events (and their matches) from PostgreSQL as
 * canonical NDJSON, in occurred_at order, streamed with binary COPY so that
 * memory stays flat however much history there is (CONTRACT section 2).
 * `cm-export --since 2026-11-01 | cm-match -c draft.json --summary` is a
 * backtest. With --profiles: the users' profiles (CONTRACT 1.5) instead, as
 * the NDJSON `cm-match --profiles FILE` reads. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "event.h"
#include "evrow.h"
#include "json.h"
#include "out.h"
#include "pg.h"
#include "pgcopy.h"
#include "timefmt.h"
#include "tool.h"

/* Filter values accepted per repeated option. */
#define MAX_FILTER 1000

static const char usage_text[] =
    "Usage: cm-export [OPTION]...\n"
    "Write the events stored in PostgreSQL as canonical NDJSON, one per line, in\n"
    "occurred_at order (ties by event_id), streamed.\n"
    "\n"
    "  -d, --db CONNINFO     PostgreSQL conninfo or URI (default: $CM_DATABASE_URL)\n"
    "      --since TIME      only events with occurred_at >= TIME (RFC 3339, or a\n"
    "                        date YYYY-MM-DD meaning its midnight UTC)\n"
    "      --until TIME      only events with occurred_at < TIME\n"
    "      --type TYPE       only events of this event_type (repeatable)\n"
    "      --user ID         only events of this user_id (repeatable)\n"
    "      --with-matches    add each event's stored matches as \"matches\":[...]\n"
    "      --profiles        write the users' profiles instead, {\"user_id\",\"traits\"}\n"
    "                        a line in user_id order (with --user: those users')\n"
    "      --stats           print the number of lines written on stderr\n"
    "  -h, --help            show this help and exit\n"
    "  -V, --version         show the version and exit\n"
    "\n"
    "Exit status: 0 done (also when the reader closes the output early), 1 some\n"
    "stored events could not be written (reported), 2 usage error, 3 PostgreSQL\n"
    "unreachable, 4 PostgreSQL refused the query, 5 a write error.\n";

struct filter {
	const char *v[MAX_FILTER];
	size_t n;
};

struct export
{
	struct cm_common_opts opt;
	const char *since, *until; /* canonical RFC 3339 texts, or NULL */
	char since_b[CM_TIME_MAX], until_b[CM_TIME_MAX];
	int64_t since_ms, until_ms;
	struct filter types, users;
	int with_matches, stats, profiles;
	int has_outcome; /* the matches table has outcome and variant (migration 004) */
	struct cm_out out;
	struct cm_jdoc doc;
	struct cm_buf line;
	struct cm_progress prog;
	unsigned long long events, rejected;
};

/* Parses a --since/--until value into its canonical UTC text and ms. */
static const char *time_arg(const char *opt, const char *arg, char *b, int64_t *msp)
{
	char tmp[40];
	int64_t ms;
	size_t n = strlen(arg);

	if (n == 10 && snprintf(tmp, sizeof(tmp), "%sT00:00:00Z", arg) == 20)
		arg = tmp, n = 20;
	if (cm_time_parse(arg, n, &ms) < 0)
		cm_usage_error("%s: expected an RFC 3339 time or a date YYYY-MM-DD, not '%s'", opt,
		               arg);
	cm_time_format(ms, b);
	*msp = ms;
	return b;
}

/* Adds a repeated option's value, bounded. */
static void filter_add(struct filter *f, const char *opt, const char *v)
{
	if (f->n == MAX_FILTER)
		cm_usage_error("%s: at most %d values", opt, MAX_FILTER);
	f->v[f->n++] = v;
}

/* Parses the options; exits on --help, --version and usage errors. */
static void parse_options(struct export *x, int argc, char **argv)
{
	enum { O_SINCE = 256, O_UNTIL, O_TYPE, O_USER, O_MATCHES, O_PROFILES, O_STATS };
	static const struct option longopts[] = {
	    CM_OPTION_DB,
	    {"since", required_argument, NULL, O_SINCE},
	    {"until", required_argument, NULL, O_UNTIL},
	    {"type", required_argument, NULL, O_TYPE},
	    {"user", required_argument, NULL, O_USER},
	    {"with-matches", no_argument, NULL, O_MATCHES},
	    {"profiles", no_argument, NULL, O_PROFILES},
	    {"stats", no_argument, NULL, O_STATS},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			x->opt.db = optarg;
			break;
		case O_SINCE:
			x->since = time_arg("--since", optarg, x->since_b, &x->since_ms);
			break;
		case O_UNTIL:
			x->until = time_arg("--until", optarg, x->until_b, &x->until_ms);
			break;
		case O_TYPE:
			if (!cm_event_type_ok(optarg, strlen(optarg)))
				cm_usage_error(
				    "--type: expected 1-%d bytes of [A-Za-z0-9_.:-], not "
				    "'%s'",
				    CM_EVENT_TYPE_MAX, optarg);
			filter_add(&x->types, "--type", optarg);
			break;
		case O_USER:
			if (!*optarg || strlen(optarg) > CM_EVENT_USER_MAX)
				cm_usage_error("--user: expected a user_id of 1-%d bytes",
				               CM_EVENT_USER_MAX);
			filter_add(&x->users, "--user", optarg);
			break;
		case O_MATCHES:
			x->with_matches = 1;
			break;
		case O_PROFILES:
			x->profiles = 1;
			break;
		case O_STATS:
			x->stats = 1;
			break;
		default:
			cm_opts_default(&x->opt, c, optarg, argc, argv, usage_text);
		}
	}
	if (optind < argc)
		cm_usage_error("unexpected argument '%s' (cm-export reads no files)", argv[optind]);
	if (x->since && x->until && x->since_ms >= x->until_ms)
		cm_usage_error("--since %s is not before --until %s", x->since, x->until);
	if (x->profiles && (x->since || x->until || x->types.n || x->with_matches))
		cm_usage_error("--profiles: --since, --until, --type and --with-matches select "
		               "events; only --user goes with --profiles");
}

/* Appends "col IN (lit, ...)" with each value quoted by libpq. */
static int add_in(struct cm_buf *q, PGconn *c, const char *col, const struct filter *f)
{
	if (!f->n)
		return 0;
	if (cm_buf_addf(q, " AND %s IN (", col))
		return -1;
	for (size_t i = 0; i < f->n; i++) {
		char *lit = PQescapeLiteral(c, f->v[i], strlen(f->v[i]));
		int rc;

		if (!lit)
			return -1;
		rc = cm_buf_addf(q, "%s%s", i ? ", " : "", lit);
		PQfreemem(lit);
		if (rc)
			return -1;
	}
	return cm_buf_addc(q, ')');
}

/* Builds the query: one row per event, or per (event, match) with
 * --with-matches, in the order the output wants. The times are canonical
 * texts from cm_time_format, safe to inline. */
static int build_query(const struct export *x, PGconn *c, struct cm_buf *q)
{
	int rc = 0;

	rc |= cm_buf_adds(q, "SELECT " CM_EVROW_COLS);
	if (x->with_matches)
		rc |= cm_buf_adds(q, x->has_outcome ? ", m.campaign_id, m.outcome, m.variant"
		                                    : ", m.campaign_id");
	rc |= cm_buf_adds(q, " FROM events e");
	if (x->with_matches)
		rc |= cm_buf_adds(q, " LEFT JOIN matches m ON m.event_id = e.event_id");
	rc |= cm_buf_adds(q, " WHERE true");
	if (x->since)
		rc |= cm_buf_addf(q, " AND e.occurred_at >= '%s'", x->since);
	if (x->until)
		rc |= cm_buf_addf(q, " AND e.occurred_at < '%s'", x->until);
	rc |= add_in(q, c, "e.event_type", &x->types);
	rc |= add_in(q, c, "e.user_id", &x->users);
	rc |= cm_buf_adds(q, " ORDER BY e.occurred_at, e.event_id");
	if (x->with_matches)
		rc |= cm_buf_adds(q, ", m.campaign_id");
	return rc ? -1 : 0;
}

/* Appends the bytes of a text field as a JSON string. */
static int put_text(struct cm_buf *b, const char *s, int32_t n)
{
	return cm_event_put_str(b, s, (size_t)n);
}

/* Starts an event's line from the first row of its group; properties
 * written by other means than cm-store may be deeper than we take. */
static int begin_event(struct export *x, const struct cm_pgcopy *r, struct cm_err *err)
{
	if (cm_evrow_line(r, &x->doc, &x->line, err) < 0)
		return -1;
	if (x->with_matches && cm_buf_adds(&x->line, ",\"matches\":["))
		return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
	return 0;
}

/* Appends the match of a row (NULL campaign_id: the event has none). */
static int add_match(struct export *x, const struct cm_pgcopy *r, int first)
{
	struct cm_buf *b = &x->line;
	int rc = 0;

	if (r->flen[5] != 8)
		return 0;
	rc |= cm_buf_adds(b, first ? "{\"campaign_id\":" : ",{\"campaign_id\":");
	rc |= cm_buf_add_i64(b, cm_pg_be64(r->field[5]));
	if (x->has_outcome && r->flen[6] >= 0) {
		rc |= cm_buf_adds(b, ",\"outcome\":");
		rc |= put_text(b, r->field[6], r->flen[6]);
	}
	if (x->has_outcome && r->flen[7] >= 0) {
		rc |= cm_buf_adds(b, ",\"variant\":");
		rc |= put_text(b, r->field[7], r->flen[7]);
	}
	rc |= cm_buf_addc(b, '}');
	return rc ? -1 : 1;
}

/* Ends the event's line and writes it. */
static void end_event(struct export *x)
{
	if (x->with_matches)
		cm_buf_addc(&x->line, ']');
	cm_buf_addc(&x->line, '}');
	cm_out_write(&x->out, x->line.data, x->line.len);
	cm_out_endrec(&x->out);
	cm_progress_tick(&x->prog, x->line.len + 1);
	x->events++;
}

/* True when the matches table has the outcome columns of the delivery
 * controls, so that an older schema still exports. */
static int has_outcome(PGconn *c, struct cm_err *err)
{
	PGresult *r =
	    cm_pg_query(c,
	                "SELECT count(*) = 2 FROM information_schema.columns WHERE "
	                "table_name = 'matches' AND column_name IN ('outcome', 'variant') "
	                "AND table_schema = current_schema()",
	                0, NULL, err);
	int yes;

	if (!r)
		return -1;
	yes = !strcmp(PQgetvalue(r, 0, 0), "t");
	PQclear(r);
	return yes;
}

/* Streams the rows, grouping those of one event; returns an exit status. */
static int export(struct export *x, PGconn *c)
{
	struct cm_pgcopy r;
	struct cm_buf q = CM_BUF_INIT;
	struct cm_err err;
	char prev[CM_EVENT_ID_MAX + 1];
	int32_t prev_len = -1;
	int st, status = CM_EXIT_OK, nmatch = 0, skipping = 0;

	if (x->with_matches && (x->has_outcome = has_outcome(c, &err)) < 0) {
		cm_warn("%s", err.msg);
		return err.code;
	}
	if (build_query(x, c, &q) < 0) {
		cm_warn("out of memory");
		return CM_EXIT_SYSTEM;
	}
	if (cm_pgcopy_start(&r, c, q.data, &err) < 0) {
		cm_warn("%s", err.msg);
		cm_buf_release(&q);
		return err.code;
	}
	cm_buf_release(&q);
	while ((st = cm_pgcopy_next(&r, &err)) > 0) {
		int same = x->with_matches && prev_len == r.flen[0] &&
		           !memcmp(prev, r.field[0], (size_t)prev_len);

		if (!same) {
			if (prev_len >= 0 && !skipping)
				end_event(x);
			if (x->out.closed || x->out.error)
				break;
			prev_len = r.flen[0] >= 0 && r.flen[0] <= CM_EVENT_ID_MAX ? r.flen[0] : -1;
			if (prev_len >= 0)
				memcpy(prev, r.field[0], (size_t)prev_len);
			nmatch = 0;
			skipping = 0;
			if (begin_event(x, &r, &err) < 0) {
				cm_warn("%s", err.msg);
				if (err.code != CM_EXIT_REJECTED) {
					status = err.code;
					break;
				}
				x->rejected++;
				skipping = 1;
				continue;
			}
		}
		if (skipping)
			continue;
		if (x->with_matches) {
			int m = add_match(x, &r, nmatch == 0);

			if (m < 0) {
				cm_warn("out of memory");
				status = CM_EXIT_SYSTEM;
				break;
			}
			nmatch += m;
		}
	}
	if (st < 0) {
		cm_warn("%s", err.msg);
		status = err.code;
	} else if (status == CM_EXIT_OK && prev_len >= 0 && !skipping && !x->out.closed &&
	           !x->out.error) {
		end_event(x);
	}
	cm_pgcopy_release(&r);
	if (status == CM_EXIT_OK && x->rejected)
		status = CM_EXIT_REJECTED;
	return status;
}

/* Writes one profile row (user_id, traits) as {"user_id","traits"}; -1 with
 * err (CM_EXIT_REJECTED: traits this tool cannot write, skipped). */
static int write_profile(struct export *x, const struct cm_pgcopy *r, struct cm_err *err)
{
	struct cm_buf *b = &x->line;

	cm_buf_reset(b);
	if (r->flen[0] < 0 || r->flen[1] < 1 || r->field[1][0] != 1)
		return cm_errc(err, CM_EXIT_REFUSED, "unexpected row shape from PostgreSQL");
	if (cm_json_parse(&x->doc, r->field[1] + 1, (size_t)r->flen[1] - 1, err) < 0) {
		cm_err_prefix(err, "profile %.*s: traits: ", (int)r->flen[0], r->field[0]);
		err->code = CM_EXIT_REJECTED;
		return -1;
	}
	if (cm_buf_adds(b, "{\"user_id\":") || put_text(b, r->field[0], r->flen[0]) ||
	    cm_buf_adds(b, ",\"traits\":") || cm_json_write(&x->doc, 0, b) || cm_buf_addc(b, '}'))
		return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
	cm_out_write(&x->out, b->data, b->len);
	cm_out_endrec(&x->out);
	cm_progress_tick(&x->prog, b->len + 1);
	x->events++;
	return 0;
}

/* Streams the profiles (of the --user users) in user_id order, bytewise
 * (the column's collation is "C"); returns an exit status. */
static int export_profiles(struct export *x, PGconn *c)
{
	struct cm_buf q = CM_BUF_INIT;
	struct cm_pgcopy r;
	struct cm_err err;
	int st, status = CM_EXIT_OK;

	if (cm_buf_adds(&q, "SELECT user_id, traits FROM profiles WHERE true") ||
	    add_in(&q, c, "user_id", &x->users) || cm_buf_adds(&q, " ORDER BY user_id")) {
		cm_warn("out of memory");
		cm_buf_release(&q);
		return CM_EXIT_SYSTEM;
	}
	st = cm_pgcopy_start(&r, c, q.data, &err);
	cm_buf_release(&q);
	if (st < 0) {
		cm_warn("%s", err.msg);
		return err.code;
	}
	while (!x->out.closed && !x->out.error && (st = cm_pgcopy_next(&r, &err)) > 0) {
		if (write_profile(x, &r, &err) == 0)
			continue;
		cm_warn("%s", err.msg);
		if (err.code != CM_EXIT_REJECTED) {
			status = err.code;
			break;
		}
		x->rejected++;
	}
	if (st < 0) {
		cm_warn("%s", err.msg);
		status = err.code;
	}
	cm_pgcopy_release(&r);
	if (status == CM_EXIT_OK && x->rejected)
		status = CM_EXIT_REJECTED;
	return status;
}

/* Options, one connection, one streamed query. */
int main(int argc, char **argv)
{
	struct export x;
	struct cm_err err;
	const char *db;
	PGconn *c;
	int status;

	cm_cli_init(argv[0]);
	memset(&x, 0, sizeof(x));
	parse_options(&x, argc, argv);
	db = cm_opts_db(&x.opt);
	c = cm_pg_connect(db, &err);
	if (!c) {
		cm_warn("%s", err.msg);
		return CM_EXIT_UNREACHABLE;
	}
	cm_out_init(&x.out, STDOUT_FILENO);
	cm_jdoc_init(&x.doc, 0);
	cm_buf_init(&x.line, 0);
	cm_progress_init(&x.prog);
	status = x.profiles ? export_profiles(&x, c) : export(&x, c);
	cm_progress_end(&x.prog);
	if (cm_out_release(&x.out) < 0 && x.out.error) {
		cm_warn("write error: %s", strerror(x.out.error));
		status = CM_EXIT_SYSTEM;
	}
	if (x.stats)
		cm_warn("%llu %s written, %llu skipped", x.events,
		        x.profiles ? "profiles" : "events", x.rejected);
	PQfinish(c);
	cm_jdoc_release(&x.doc);
	cm_buf_release(&x.line);
	return status;
}
