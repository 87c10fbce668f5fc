/* cm-match - events and campaigns in, events annotated with the campaigns
 * they match out (CONTRACT sections 1.2-1.4 and 2). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "campdb.h"
#include "tool.h"
#include "err.h"
#include "event.h"
#include "json.h"
#include "lines.h"
#include "out.h"
#include "outcome.h"
#include "pg.h"
#include "profdb.h"
#include "profiles.h"
#include "rule.h"
#include "wmetrics.h"

/* jq runtime errors reported one by one before they are only counted. */
#define JQ_WARN_MAX 5
/* A batch of events waiting for their profiles from the database: at most
 * this many events, or lines of this many bytes. */
#define BATCH_EVENTS 4096
#define BATCH_BYTES  ((size_t)4 << 20)

static const char usage_text[] =
    "Usage: cm-match -c FILE|CONNINFO [OPTION]... [FILE]...\n"
    "Match NDJSON events (from FILEs, or stdin when none or -) against campaigns\n"
    "and write each event with \"matches\":[{\"campaign_id\":N},...] added.\n"
    "\n"
    "  -c, --campaigns FILE|CONNINFO\n"
    "                         campaigns: a JSON array or one campaign per line,\n"
    "                         or the active campaigns of a PostgreSQL database\n"
    "                         (a libpq conninfo or postgres:// URI)\n"
    "      --matched-only     write only events that match at least one campaign\n"
    "      --emit events|matches\n"
    "                         events (default): every event, annotated;\n"
    "                         matches: one line per (campaign, event) match\n"
    "      --profiles FILE|CONNINFO\n"
    "                         users' traits for profile.* rules: NDJSON lines\n"
    "                         {\"user_id\":...,\"traits\":{...}}, which identify\n"
    "                         events of the input update as they pass; or the\n"
    "                         profiles table of a PostgreSQL database\n"
    "      --profile-ttl MS   how long a profile read from the database is used\n"
    "                         before it is read again (default 1000)\n"
    "      --explain          instead of the events, one line per event and campaign\n"
    "                         of its type saying why it matched or not: each\n"
    "                         check, what it expected and what it found\n"
    "      --campaign ID      with --explain: only campaign ID\n"
    "      --summary          instead of the events, per-campaign counts at the end\n"
    "                         (events checked, candidates, matched, holdout,\n"
    "                         capped, distinct users, first and last match): a\n"
    "                         table on a terminal, NDJSON otherwise\n"
    "      --check            validate the campaigns and exit; read no events\n"
    "      --stats            print counts on stderr at the end\n"
    "      --redis URL        report this stage's counts as worker metrics to Redis\n"
    "                         (cm-worker gives it; without it nothing is reported)\n"
    "      --stream KEY       with --redis: the stream the worker consumes\n"
    "                         (default cm:events)\n"
    "      --consumer NAME    with --redis: the worker's consumer name (default\n"
    "                         HOSTNAME-$CM_WORKER_ID, else HOSTNAME-1)\n"
    "      --max-line SIZE    longest event line accepted (default 2M: what\n"
    "                         cm-ingest writes, with room for what comes after)\n"
    "  -h, --help             show this help and exit\n"
    "  -V, --version          show the version and exit\n"
    "\n"
    "SIGHUP reloads the campaigns file; a file that fails validation leaves the\n"
    "campaigns in use unchanged. Database campaigns reload by themselves when\n"
    "they change; one that does not compile is reported and skipped.\n"
    "Exit status: 0 all events processed, 1 some lines rejected, 2 usage or\n"
    "configuration error, 3 the database cannot be reached, 5 a read or write\n"
    "error.\n";

enum {
	OPT_MATCHED_ONLY = 256,
	OPT_EMIT,
	OPT_STATS,
	OPT_CHECK,
	OPT_PROFILES,
	OPT_EXPLAIN,
	OPT_CAMPAIGN,
	OPT_SUMMARY,
	OPT_PROFILE_TTL,
};

static const struct option long_options[] = {
    {"campaigns", required_argument, NULL, 'c'},
    {"matched-only", no_argument, NULL, OPT_MATCHED_ONLY},
    {"emit", required_argument, NULL, OPT_EMIT},
    {"check", no_argument, NULL, OPT_CHECK},
    {"profiles", required_argument, NULL, OPT_PROFILES},
    {"explain", no_argument, NULL, OPT_EXPLAIN},
    {"campaign", required_argument, NULL, OPT_CAMPAIGN},
    {"summary", no_argument, NULL, OPT_SUMMARY},
    {"profile-ttl", required_argument, NULL, OPT_PROFILE_TTL},
    {"stats", no_argument, NULL, OPT_STATS},
    CM_OPTION_MAX_LINE,
    CM_OPTION_REDIS,
    CM_OPTION_STREAM,
    CM_OPTION_CONSUMER,
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static volatile sig_atomic_t reload_wanted;

/* Only sets a flag: the reload happens between two events. */
static void on_hup(int sig)
{
	(void)sig;
	reload_wanted = 1;
}

/* An event waiting in the batch: its line, its document and view, and the
 * user whose profile it needs. */
struct slot {
	struct cm_buf line_buf;
	struct cm_jdoc doc;
	struct cm_rule_event ev;
	struct cm_buf scratch; /* what ev points to */
	struct cm_buf user;    /* the decoded user_id */
	struct cm_buf tmp;
	const char *file;
	unsigned long line;
	int wants;            /* explain: the profile is to be fetched */
	size_t stage_off;     /* its record goes before stage[stage_off..] */
	size_t kept_off;      /* its record, once matched, in kept */
	uint32_t ref;         /* its user in the profiles' cache */
	int rematch;          /* matched before the profile it needs was known */
	unsigned jq_reported; /* jq errors reported by the first match */
	int64_t *ids;         /* the first match's answer, when final */
	size_t nids, idcap;
};

/* A batch of events waiting for the profiles they need. */
struct batch {
	struct slot *slots;
	size_t n, cap, bytes;
	size_t events;       /* read into the batch: kept in slots, or written to stage */
	struct cm_buf stage; /* records of the events matched at once, behind the kept */
	struct cm_buf kept;  /* records of the kept events, once matched */
	struct iovec *iov;   /* the pieces to write */
	size_t iovcap;
};

struct run {
	const char *campaigns;
	const struct cm_rule_event *cur_ev; /* the event lazy_profile is asked about */
	struct slot *cur_slot;              /* the slot being matched, with profdb */
	unsigned jq_skip;                   /* jq errors not to report again */
	int rematching;                     /* cur_slot is matched a second time */
	unsigned long long jq_uncounted;    /* counted twice by the set: once too many */
	struct cm_profdb *profdb;           /* --profiles CONNINFO */
	int64_t profile_ttl;                /* --profile-ttl */
	struct batch batches[2];            /* with profdb: read into cur, the other waits */
	int cur;
	int waiting;                  /* the other batch waits for its lookup */
	struct cm_buf *stage;         /* where records go meanwhile, or NULL: the output */
	int ordered;                  /* the outcomes depend on the order of the events */
	struct slot probe;            /* an event matched before it is known to wait */
	struct cm_summary *sum;       /* --summary */
	int explain;                  /* --explain */
	int64_t explain_id;           /* --campaign, or 0 */
	struct cm_buf exline;         /* an event's explain lines */
	const char *profiles_spec;    /* --profiles */
	struct cm_profiles *profiles; /* in memory: the file's and the input's identify events */
	struct cm_jdoc prof_doc;      /* the profile of the event being matched */
	int matched_only, emit_matches, stats, check, summary;
	struct cm_common_opts opt; /* --max-line, --redis, --stream, --consumer */
	struct cm_wmetrics *wm;    /* with --redis: the worker's metrics */
	struct cm_ruleset *set;
	struct cm_campdb *db; /* when the campaigns come from PostgreSQL */
	struct cm_out out;
	struct cm_jdoc doc;
	struct cm_buf scratch;
	struct cm_buf scratch2; /* a decoded user_id */
	struct cm_buf rec;      /* the matches part of one output record */
	struct cm_buf tail;     /* --emit matches: the part after the campaign id */
	struct cm_progress progress;
	struct cm_outcomes *oc; /* the limits' state (applied offline only) */
	struct cm_outcome *outs;
	size_t outcap;
	unsigned long long events, matched, matches, rejected;
	unsigned long long jq_errors_before; /* from sets replaced by reloads */
	const char *file;
	unsigned long line;
	unsigned jq_warned;
	int io_error;
	int fatal; /* an exit status to stop with (memory ran out) */
};

/* Prints each campaign problem as it is found. */
static void report_problem(void *ctx, const char *msg)
{
	(void)ctx;
	cm_warn("%s", msg);
}

/* Reports the first few jq runtime errors with the event's position. */
static void report_jq_error(void *ctx, int64_t id, const char *msg)
{
	struct run *r = ctx;

	/* With database profiles an event may be matched twice: errors of a
	 * first match that turned out to need a profile are not the event's,
	 * and those a second match meets again were reported the first time. */
	if (r->cur_slot && r->rematching) {
		if (r->jq_skip) {
			r->jq_skip--;
			r->jq_uncounted++;
			return;
		}
	} else if (r->cur_slot) {
		if (r->cur_slot->rematch) {
			r->jq_uncounted++;
			return;
		}
		r->cur_slot->jq_reported++;
	}

	if (r->jq_warned < JQ_WARN_MAX)
		cm_warn("%s:%lu: campaign %lld: jq error: %s", r->file, r->line, (long long)id,
		        msg);
	else if (r->jq_warned == JQ_WARN_MAX)
		cm_warn("further jq errors are only counted (see --stats)");
	r->jq_warned++;
}

/* True when spec names a PostgreSQL database rather than a file. */
static int is_conninfo(const char *spec)
{
	return strncmp(spec, "postgres://", 11) == 0 || strncmp(spec, "postgresql://", 13) == 0 ||
	       strchr(spec, '=') != NULL;
}

/* Reads a whole campaigns file into buf (bounded by CM_RULE_MAX_TEXT). */
static int read_file(const char *path, struct cm_buf *buf, struct cm_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;

	if (fd < 0)
		return cm_errf(err, "%s: cannot open: %s", path, strerror(errno));
	for (;;) {
		ssize_t n;

		if (cm_buf_grow(buf, 64 * 1024) < 0) {
			cm_errf(err, "%s: larger than %u bytes", path, CM_RULE_MAX_TEXT);
			goto out;
		}
		n = read(fd, buf->data + buf->len, buf->cap - buf->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cm_errf(err, "%s: read error: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		buf->len += (size_t)n;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

/* Loads and compiles the campaigns named by spec, printing every problem;
 * returns NULL when there was any. (Database campaigns: see open_db.) */
static struct cm_ruleset *load_campaigns(const char *spec)
{
	struct cm_buf text;
	struct cm_ruleset *set = NULL;
	struct cm_err err;
	int bad;

	cm_buf_init(&text, CM_RULE_MAX_TEXT);
	if (read_file(spec, &text, &err) < 0) {
		cm_warn("%s", err.msg);
		goto out;
	}
	set = cm_ruleset_new();
	if (!set) {
		cm_warn("out of memory");
		goto out;
	}
	bad =
	    cm_ruleset_load(set, text.data ? text.data : "", text.len, spec, report_problem, NULL);
	if (cm_ruleset_compile(set, report_problem, NULL) != 0 || bad != 0) {
		cm_ruleset_free(set);
		set = NULL;
	}
out:
	cm_buf_release(&text);
	return set;
}

/* Loads the --profiles file into r->profiles; every bad line is reported
 * and makes it a configuration error (exit 2), as a bad campaign does. */
static int load_profiles(struct run *r, const char *path)
{
	struct cm_lines lr;
	struct cm_err err;
	struct cm_jdoc d;
	const char *line;
	size_t len;
	int bad = 0, st;

	if (cm_lines_open(&lr, path, r->opt.max_line, &err) < 0) {
		cm_warn("--profiles: %s", err.msg);
		return -1;
	}
	cm_jdoc_init(&d, 64);
	while ((st = cm_lines_next(&lr, &line, &len, &err)) != CM_LINE_EOF) {
		if (st == CM_LINE_ERR) {
			cm_warn("%s", err.msg);
			bad++;
			break;
		}
		if (st == CM_LINE_LONG) {
			cm_warn("%s:%lu: line longer than %zu bytes", lr.name, lr.lineno,
			        r->opt.max_line);
			bad++;
		} else if (cm_profiles_load_line(r->profiles, &d, line, len, &err) < 0) {
			cm_warn("%s:%lu: %s", lr.name, lr.lineno, err.msg);
			bad++;
		}
	}
	cm_jdoc_release(&d);
	cm_lines_release(&lr);
	return bad ? -1 : 0;
}

/* Folds the summary's counts of the current set into its rows, before the
 * set is replaced and at the end. */
static void flush_summary(struct run *r)
{
	struct cm_err err;

	if (r->sum && cm_summary_flush(r->sum, r->set, &err) < 0) {
		cm_warn("%s", err.msg);
		r->fatal = CM_EXIT_SYSTEM;
	}
}

/* Writes the summary: a table for a person at a terminal, NDJSON for a
 * program. */
static void write_summary(struct run *r)
{
	const struct cm_summary_row *rows;
	struct cm_buf b;
	size_t n;

	flush_summary(r);
	n = cm_summary_rows(r->sum, &rows);
	cm_buf_init(&b, 0);
	if ((r->out.tty ? cm_summary_table(rows, n, &b) : cm_summary_ndjson(rows, n, &b)) < 0) {
		cm_warn("out of memory");
		r->fatal = CM_EXIT_SYSTEM;
	} else if (b.len) {
		cm_out_write(&r->out, b.data, b.len);
	}
	cm_buf_release(&b);
}

/* Replaces the campaign set with a fresh load of the file, or keeps the
 * old one when the new file has problems. */
static void reload(struct run *r)
{
	struct cm_ruleset *set;

	reload_wanted = 0;
	set = load_campaigns(r->campaigns);
	if (!set) {
		cm_warn("%s: not reloaded, still using the %zu campaigns loaded before",
		        r->campaigns, cm_ruleset_count(r->set));
		return;
	}
	r->jq_errors_before += cm_ruleset_jq_errors(r->set);
	flush_summary(r);
	cm_ruleset_free(r->set);
	r->set = set;
	r->ordered = !r->db && cm_ruleset_has_controls(set);
	cm_ruleset_on_jq_error(set, report_jq_error, r);
	cm_warn("reloaded %zu campaigns from %s", cm_ruleset_count(set), r->campaigns);
}

/* Switches to the newest set the database thread has built. */
static void take_db_set(struct run *r)
{
	r->jq_errors_before += cm_ruleset_jq_errors(r->set);
	flush_summary(r);
	r->set = cm_campdb_current(r->db, NULL);
	cm_ruleset_on_jq_error(r->set, report_jq_error, r);
}

/* Opens the database source and takes its first set; exits 2 for a bad
 * conninfo, 3 when the database cannot be reached or read. */
static void open_db(struct run *r)
{
	struct cm_err err;

	if (cm_pg_conninfo_check(r->campaigns, &err) < 0)
		cm_usage_error("-c/--campaigns: %s", err.msg);
	r->db = cm_campdb_open(r->campaigns, report_problem, NULL, &err);
	if (!r->db) {
		cm_warn("campaigns: %s", err.msg);
		exit(CM_EXIT_UNREACHABLE);
	}
	r->set = cm_campdb_current(r->db, NULL);
}

/* Writes the decimal form of v at p and returns the end; two digits per
 * step, since a busy event writes dozens of ids. */
static char *put_i64(char *p, int64_t v)
{
	static const char pairs[201] = "00010203040506070809101112131415161718192021222324"
	                               "25262728293031323334353637383940414243444546474849"
	                               "50515253545556575859606162636465666768697071727374"
	                               "75767778798081828384858687888990919293949596979899";
	char tmp[24], *q = tmp + sizeof(tmp);
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	while (u >= 100) {
		unsigned d = (unsigned)(u % 100) * 2;

		u /= 100;
		*--q = pairs[d + 1];
		*--q = pairs[d];
	}
	if (u >= 10) {
		*--q = pairs[u * 2 + 1];
		*--q = pairs[u * 2];
	} else {
		*--q = (char)('0' + u);
	}
	if (v < 0)
		*--q = '-';
	memcpy(p, q, (size_t)(tmp + sizeof(tmp) - q));
	return p + (tmp + sizeof(tmp) - q);
}

/* Appends bytes at p and returns the end. */
static inline char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

/* The raw text of value token t, strings with their quotes. */
static void raw_value(const struct cm_jdoc *d, uint32_t t, const char **p, size_t *n)
{
	const struct cm_jtok *k = &d->tok[t];

	if (k->type == CM_JSTR) {
		*p = d->src + k->off - 1;
		*n = (size_t)k->len + 2;
	} else {
		*p = d->src + k->off;
		*n = k->len;
	}
}

/* True when key token t decodes to s. */
static int key_is(const struct cm_jdoc *d, uint32_t t, const char *s, size_t n)
{
	return cm_json_str_eq(d, t, s, n);
}

/* True when key token t decodes to a name starting with '_'. */
static int key_is_meta(const struct cm_jdoc *d, uint32_t t, struct cm_buf *scratch)
{
	size_t n;
	const char *p;

	if (!d->tok[t].esc)
		return d->tok[t].len > 0 && d->src[d->tok[t].off] == '_';
	p = cm_json_str(d, t, scratch, &n);
	return p && n > 0 && p[0] == '_';
}

/* Writes bytes of a record: to the output, or to the batch's stage when
 * the record must wait behind an event that waits for its profile. */
static inline void out_write(struct run *r, const void *p, size_t n)
{
	if (!r->stage)
		cm_out_write(&r->out, p, n);
	else if (cm_buf_add(r->stage, p, n) < 0)
		r->out.error = ENOMEM;
}

/* Ends a record written with out_write. */
static inline void out_end(struct run *r)
{
	if (!r->stage)
		cm_out_endrec(&r->out);
	else if (cm_buf_addc(r->stage, '\n') < 0)
		r->out.error = ENOMEM;
}

/* Appends match k's keys after its campaign_id to rec at p, and returns the
 * new end: the outcome, and a variant and limit where the campaign has them
 * (no outcomes: the campaigns have no controls, every match is matched). */
static char *put_outcome(struct run *r, char *p, const struct cm_outcome *outs, size_t k)
{
	static const char matched[] = ",\"outcome\":\"matched\"";

	if (!outs || !outs[k].ctl)
		return put(p, matched, sizeof(matched) - 1);
	r->rec.len = (size_t)(p - r->rec.data);
	if (cm_outcome_put(&outs[k], &r->rec) < 0) {
		r->out.error = ENOMEM;
		return r->rec.data + r->rec.len;
	}
	return r->rec.data + r->rec.len;
}

/* Room in rec for match k's keys after put_outcome's longest; returns the
 * (possibly moved) write position. */
static char *room(struct run *r, char *p, const struct cm_outcome *outs, size_t k, size_t more)
{
	size_t need = 64 + more;

	if (outs && outs[k].ctl) {
		const struct cm_rule_controls *c = outs[k].ctl;

		need += c->limit_len + 16;
		if (outs[k].variant >= 0)
			need += c->variants[outs[k].variant].json_len + 16;
	}
	r->rec.len = (size_t)(p - r->rec.data);
	if (r->rec.len + need + 1 > r->rec.cap && cm_buf_grow(&r->rec, need) < 0) {
		r->out.error = ENOMEM;
		return NULL;
	}
	return r->rec.data + r->rec.len;
}

/* Writes the event as read, with "matches" added before its closing brace;
 * an existing top-level "matches" member is dropped (the object is then
 * rebuilt member by member). */
static void emit_event(struct run *r, const struct cm_rule_event *ev, const int64_t *ids,
                       const struct cm_outcome *outs, size_t n)
{
	const struct cm_jdoc *d = ev->doc;
	const struct cm_jtok *root = &d->tok[0];
	int first = 1;
	char *p;

	if (ev->matches_key == CM_JNONE) {
		out_write(r, d->src + root->off, root->len - 1);
		first = root->count == 0;
	} else {
		uint32_t i = 1;

		out_write(r, "{", 1);
		for (uint32_t m = root->count; m; m--) {
			uint32_t v = i + 1;

			if (!key_is(d, i, "matches", 7)) {
				const char *val;
				size_t len;

				raw_value(d, v, &val, &len);
				if (!first)
					out_write(r, ",", 1);
				first = 0;
				out_write(r, d->src + d->tok[i].off - 1,
				          (size_t)(val + len - (d->src + d->tok[i].off - 1)));
			}
			i = d->tok[v].next;
		}
	}
	cm_buf_reset(&r->rec);
	if (cm_buf_grow(&r->rec, 16 + n * 64) < 0) {
		r->out.error = ENOMEM;
		return;
	}
	p = r->rec.data;
	p = first ? put(p, "\"matches\":[", 11) : put(p, ",\"matches\":[", 12);
	for (size_t k = 0; k < n; k++) {
		if (outs && !(p = room(r, p, outs, k, 0)))
			return;
		p = k ? put(p, ",{\"campaign_id\":", 16) : put(p, "{\"campaign_id\":", 15);
		p = put_i64(p, ids[k]);
		p = put_outcome(r, p, outs, k);
		*p++ = '}';
	}
	p = put(p, "]}", 2);
	out_write(r, r->rec.data, (size_t)(p - r->rec.data));
	out_end(r);
}

/* Writes one CONTRACT 1.3 match line per campaign (only those matched with
 * --matched-only), with the event's top-level '_' members copied verbatim;
 * the part after the outcome is the same on every line, so it is built
 * once. */
static void emit_matches(struct run *r, const struct cm_rule_event *ev, const int64_t *ids,
                         const struct cm_outcome *outs, size_t n)
{
	const struct cm_jdoc *d = ev->doc;
	struct cm_buf *tail = &r->tail;
	static const char *const names[4] = {
	    ",\"event_id\":", ",\"user_id\":", ",\"event_type\":", ",\"occurred_at\":"};
	uint32_t toks[4] = {ev->id_tok, ev->user_tok, ev->type_tok, ev->time_tok};
	size_t written = 0;
	char *p;

	if (n == 0)
		return;
	cm_buf_reset(tail);
	for (int f = 0; f < 4; f++) {
		const char *val;
		size_t len;

		raw_value(d, toks[f], &val, &len);
		cm_buf_adds(tail, names[f]);
		cm_buf_add(tail, val, len);
	}
	if (ev->has_meta) {
		uint32_t i = 1;

		for (uint32_t m = d->tok[0].count; m; m--) {
			uint32_t v = i + 1;

			if (key_is_meta(d, i, &r->scratch)) {
				const char *val;
				size_t len;
				const char *key = d->src + d->tok[i].off - 1;

				raw_value(d, v, &val, &len);
				cm_buf_addc(tail, ',');
				cm_buf_add(tail, key, (size_t)(val + len - key));
			}
			i = d->tok[v].next;
		}
	}
	if (cm_buf_addc(tail, '}') < 0) {
		r->out.error = ENOMEM;
		return;
	}
	cm_buf_reset(&r->rec);
	if (n > SIZE_MAX / 2 / (tail->len + 64) || cm_buf_grow(&r->rec, n * (tail->len + 64)) < 0) {
		r->out.error = ENOMEM;
		return;
	}
	p = r->rec.data;
	for (size_t k = 0; k < n; k++) {
		if (r->matched_only && outs && outs[k].outcome != CM_OUTCOME_MATCHED)
			continue;
		if (outs && !(p = room(r, p, outs, k, tail->len)))
			return;
		if (written++)
			*p++ = '\n';
		p = put(p, "{\"campaign_id\":", 15);
		p = put_i64(p, ids[k]);
		p = put_outcome(r, p, outs, k);
		p = put(p, tail->data, tail->len);
	}
	if (!written)
		return;
	out_write(r, r->rec.data, (size_t)(p - r->rec.data));
	out_end(r);
}

/* Reports a rejected line, on one line whatever the message quotes. */
static void reject(struct run *r, const char *msg)
{
	char line[600];

	snprintf(line, sizeof(line), "%s", msg);
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	r->rejected++;
	cm_wmetrics_add(r->wm, CM_WM_ERRORS, 1);
	cm_warn("%s:%lu: %s", r->file, r->line, line);
}

/* Grows the outcomes array to n; 0 when memory is out. */
static int decide_room(struct run *r, size_t n)
{
	struct cm_outcome *o = realloc(r->outs, n * sizeof(*o));

	if (!o)
		return 0;
	r->outs = o;
	r->outcap = n;
	return 1;
}

/* An identify event counts for the events after it, not for itself; a
 * worker's profiles are the database's, which cm-store keeps. */
static void apply_identify(struct run *r, const struct cm_rule_event *ev)
{
	struct cm_err err;

	if (!r->profdb && cm_profiles_is_identify(ev) &&
	    cm_profiles_identify(r->profiles, ev, &err) < 0) {
		cm_warn("%s:%lu: profiles: %s", r->file, r->line, err.msg);
		r->fatal = CM_EXIT_SYSTEM;
	}
}

/* Decides the outcomes of the n matches of ev when some campaign has
 * delivery controls or for a summary (NULL otherwise: every match is
 * matched, or when memory ran out, with r->fatal set). */
static const struct cm_outcome *decide(struct run *r, const struct cm_rule_event *ev,
                                       const int64_t *ids, size_t n, int just_matched)
{
	struct cm_err err;

	if (!r->summary && !cm_ruleset_has_controls(r->set))
		return NULL;
	if (n > r->outcap && !decide_room(r, n)) {
		cm_warn("out of memory");
		r->fatal = CM_EXIT_SYSTEM;
		return NULL;
	}
	for (size_t k = 0; k < n; k++) {
		r->outs[k].campaign_id = ids[k];
		r->outs[k].ctl = just_matched ? cm_ruleset_hit_controls(r->set, k)
		                              : cm_ruleset_controls(r->set, ids[k]);
	}
	if (cm_outcomes_decide(r->oc, ev, r->outs, n, &err) < 0) {
		cm_warn("%s:%lu: %s", r->file, r->line, err.msg);
		r->fatal = CM_EXIT_SYSTEM;
		return NULL;
	}
	return r->outs;
}

/* The profile of ev's user, parsed into r->prof_doc, or NULL when the user
 * has none. */
static const struct cm_jdoc *profile_of(struct run *r, const struct cm_rule_event *ev)
{
	const char *user, *text;
	size_t un, tn;
	struct cm_err err;

	user = cm_json_str(ev->doc, ev->user_tok, &r->scratch2, &un);
	if (!user)
		return NULL;
	text = cm_profiles_get(r->profiles, user, un, &tn);
	if (!text || cm_json_parse(&r->prof_doc, text, tn, &err) < 0)
		return NULL;
	return &r->prof_doc;
}

/* Writes the explain lines of ev (outcome.c's): every campaign of its type
 * (or only --campaign) by the slow evaluator, the campaigns that hold
 * decided as candidates in id order, as the matcher's would be. */
static void explain_event(struct run *r, const struct cm_rule_event *ev)
{
	const int64_t *ids;
	size_t n, nc;
	struct cm_err err;

	if (r->explain_id) {
		ids = &r->explain_id;
		n = cm_ruleset_has(r->set, r->explain_id);
	} else {
		n = cm_ruleset_explain_ids(r->set, ev->type, ev->type_len, &ids);
	}
	if (n == 0)
		return;
	cm_buf_reset(&r->exline);
	if (cm_outcomes_explain(r->oc, r->set, ev, ids, n, '\n', &r->exline, &nc, &err) < 0) {
		cm_warn("%s:%lu: %s", r->file, r->line, err.msg);
		r->fatal = CM_EXIT_SYSTEM;
		return;
	}
	if (nc) {
		r->matched++;
		r->matches += nc;
	}
	/* the lines, the last one ended as a record (flushed on a terminal) */
	out_write(r, r->exline.data, r->exline.len - 1);
	out_end(r);
}

/* Decides, writes (or counts) what the n matches ids of ev yield, then
 * applies ev if it is an identify event. just_matched: ids are the answer of
 * the last cm_ruleset_match (its controls are at hand). */
static void deliver(struct run *r, const struct cm_rule_event *ev, const int64_t *ids, size_t n,
                    int just_matched)
{
	struct cm_err err;
	const struct cm_outcome *outs = NULL;

	r->events++;
	if (n && (outs = decide(r, ev, ids, n, just_matched)) == NULL && r->fatal)
		return;
	if (n) {
		r->matched++;
		r->matches += n;
		cm_wmetrics_add(r->wm, CM_WM_MATCHED, 1);
		cm_wmetrics_add(r->wm, CM_WM_MATCHES, n);
		for (size_t k = 0; k < n; k++)
			cm_wmetrics_campaign(r->wm, ids[k], 1);
	}
	if (r->summary) {
		if (cm_summary_event(r->sum, r->set, ev, outs, n, &err) < 0) {
			cm_warn("%s", err.msg);
			r->fatal = CM_EXIT_SYSTEM;
			return;
		}
	} else if (r->emit_matches) {
		emit_matches(r, ev, ids, outs, n);
	} else {
		size_t sent = n;

		if (outs) {
			sent = 0;
			for (size_t k = 0; k < n; k++)
				sent += outs[k].outcome == CM_OUTCOME_MATCHED;
		}
		if (sent || !r->matched_only)
			emit_event(r, ev, ids, outs, n);
	}
	apply_identify(r, ev);
}

/* Matches one checked event whose profile is set (or asked for lazily),
 * and writes what it yields (or explains it, or counts it). */
static void handle_event(struct run *r, const struct cm_rule_event *ev)
{
	const int64_t *ids;
	size_t n;

	if (r->explain) {
		r->events++;
		explain_event(r, ev);
		apply_identify(r, ev);
		return;
	}
	n = cm_ruleset_match(r->set, ev, &ids);
	deliver(r, ev, ids, n, 1);
}

/* True when the event's profile must be looked up. */
static int needs_profile(const struct run *r, const struct cm_rule_event *ev)
{
	return r->explain || cm_ruleset_reads_profile(r->set, ev->type, ev->type_len);
}

/* The profile of the slot's user once the batch's lookup is done, parsed
 * into r->prof_doc, or NULL when the user has none. */
static const struct cm_jdoc *fetched_profile(struct run *r, struct slot *sl)
{
	struct cm_err err;
	size_t tn;
	const char *text = sl->rematch ? cm_profdb_ref(r->profdb, sl->ref, &tn)
	                               : cm_profdb_get(r->profdb, sl->user.data, sl->user.len, &tn);

	if (!text || cm_json_parse(&r->prof_doc, text, tn, &err) < 0)
		return NULL;
	return &r->prof_doc;
}

/* fetched_profile for the matcher's lazy profile_fn. */
static const struct cm_jdoc *fetched_lazy(void *ctx)
{
	struct run *r = ctx;

	return fetched_profile(r, r->cur_slot);
}

/* Writes the events of batch b in input order (its lookup done): those
 * matched already with the answer they had, the others matched now. */
static void deliver_batch(struct run *r, struct batch *b)
{
	const char *file = r->file;
	unsigned long line = r->line;
	size_t pos = 0, niov = 0;

	/* the kept events first, into kept, in input order */
	cm_buf_reset(&b->kept);
	r->stage = &b->kept;
	for (size_t k = 0; k < b->n && !r->fatal; k++) {
		struct slot *sl = &b->slots[k];

		sl->ev.doc = &sl->doc; /* the slots may have moved since */
		sl->kept_off = b->kept.len;
		r->file = sl->file;
		r->line = sl->line;
		if (r->explain) {
			sl->ev.profile = NULL;
			sl->ev.profile_fn = NULL;
			if (sl->wants)
				sl->ev.profile = fetched_profile(r, sl);
			handle_event(r, &sl->ev);
		} else if (sl->rematch) {
			/* the profile is known now: match again, the jq errors
			 * reported before it was needed not again */
			const int64_t *ids;
			size_t n;

			r->cur_slot = sl;
			r->jq_skip = sl->jq_reported;
			r->rematching = 1;
			sl->ev.profile_fn = fetched_lazy;
			sl->ev.profile_ctx = r;
			n = cm_ruleset_match(r->set, &sl->ev, &ids);
			r->cur_slot = NULL;
			r->rematching = 0;
			r->jq_skip = 0;
			sl->rematch = 0;
			deliver(r, &sl->ev, ids, n, 1);
		} else {
			deliver(r, &sl->ev, sl->ids, sl->nids, 0);
		}
		/* a slot that held a long line gives its memory back */
		if (sl->line_buf.cap > 65536)
			cm_buf_release(&sl->line_buf);
	}
	r->stage = NULL;
	r->file = file;
	r->line = line;
	/* then all of it in order, each record where it is: the stage's up to
	 * each kept event, that event's, and so on */
	if (!r->fatal && !r->out.closed && !r->out.error && (niov = 2 * b->n + 1) > b->iovcap) {
		struct iovec *v = realloc(b->iov, niov * sizeof(*v));

		if (!v) {
			r->out.error = ENOMEM;
			niov = 0;
		} else {
			b->iov = v;
			b->iovcap = niov;
		}
	}
	if (!r->fatal && !r->out.closed && !r->out.error) {
		niov = 0;
		for (size_t k = 0; k < b->n; k++) {
			const struct slot *sl = &b->slots[k];
			size_t kend = k + 1 < b->n ? b->slots[k + 1].kept_off : b->kept.len;

			if (sl->stage_off > pos)
				b->iov[niov++] =
				    (struct iovec){b->stage.data + pos, sl->stage_off - pos};
			pos = sl->stage_off;
			if (kend > sl->kept_off)
				b->iov[niov++] = (struct iovec){b->kept.data + sl->kept_off,
				                                kend - sl->kept_off};
		}
		if (b->stage.len > pos)
			b->iov[niov++] = (struct iovec){b->stage.data + pos, b->stage.len - pos};
		if (niov)
			cm_out_writev(&r->out, b->iov, (int)niov);
	}
	b->n = 0;
	b->bytes = 0;
	b->events = 0;
	cm_buf_reset(&b->stage);
	if (b->stage.cap > BATCH_BYTES * 2)
		cm_buf_release(&b->stage);
	if (b->kept.cap > BATCH_BYTES * 2)
		cm_buf_release(&b->kept);
}

/* Reports a failed lookup: the run ends with its status. */
static void lookup_failed(struct run *r, const struct cm_err *err)
{
	cm_warn("%s", err->msg);
	r->fatal = err->code ? err->code : CM_EXIT_UNREACHABLE;
	r->batches[0].n = r->batches[1].n = 0;
	r->waiting = 0;
}

/* Ends the batch being read. Two batches take turns: while the server
 * looks up the profiles of one, the next is read and matched with what the
 * cache has; so with wait 0, the batch before is written and this one's
 * lookup sent. With wait 1 (the input is not ready, or ends, or the
 * campaigns change), everything is written now. */
static void flush_batch(struct run *r, int wait)
{
	struct cm_err err;
	struct batch *cur = &r->batches[r->cur], *prev = &r->batches[1 - r->cur];

	if (!r->profdb)
		return;
	if (r->waiting) {
		r->waiting = 0;
		if (cm_profdb_receive(r->profdb, &err) < 0) {
			lookup_failed(r, &err);
			return;
		}
		deliver_batch(r, prev);
	}
	if (r->fatal)
		return;
	if (!cur->n) {
		/* nothing waits for a profile: what was staged goes out */
		deliver_batch(r, cur);
		cm_profdb_begin(r->profdb);
		return;
	}
	if (cm_profdb_trim(r->profdb)) {
		/* the cache was full and is empty now: this batch asks again */
		for (size_t k = 0; k < cur->n; k++) {
			struct slot *sl = &cur->slots[k];
			const char *text;
			size_t tn;

			if ((sl->rematch || sl->wants) &&
			    cm_profdb_lookup(r->profdb, sl->user.data, sl->user.len, &text, &tn,
			                     &sl->ref, &err) < 0) {
				lookup_failed(r, &err);
				return;
			}
		}
	}
	if (wait) {
		if (cm_profdb_fetch(r->profdb, &err) < 0) {
			lookup_failed(r, &err);
			return;
		}
		deliver_batch(r, cur);
	} else {
		if (cm_profdb_send(r->profdb, &err) < 0) {
			lookup_failed(r, &err);
			return;
		}
		r->waiting = 1;
		r->cur = 1 - r->cur;
	}
	cm_profdb_begin(r->profdb);
}

/* Notes the user of ev in sl->user: the batch's lookup is to fetch its
 * profile. */
static int want_user(struct run *r, struct slot *sl, const struct cm_rule_event *ev)
{
	struct cm_err err;
	size_t un;
	const char *u = cm_json_str(ev->doc, ev->user_tok, &sl->tmp, &un);

	cm_buf_reset(&sl->user);
	if (!u || cm_buf_add(&sl->user, u, un) < 0 || cm_profdb_want(r->profdb, u, un, &err) < 0) {
		cm_warn("out of memory");
		r->fatal = CM_EXIT_SYSTEM;
		return -1;
	}
	return 0;
}

/* The profile of the event being matched (r->cur_ev) before its batch's
 * lookup: the cache's when it is fresh; otherwise the user is wanted and
 * the event (r->cur_slot) matched again after the lookup, what this match
 * answers dropped. */
static const struct cm_jdoc *cached_lazy(void *ctx)
{
	struct run *r = ctx;
	struct slot *sl = r->cur_slot;
	const struct cm_rule_event *ev = r->cur_ev;
	struct cm_err err;
	const char *user, *text;
	size_t un, tn;
	int rc;

	user = cm_json_str(ev->doc, ev->user_tok, &sl->tmp, &un);
	if (!user)
		goto oom;
	rc = cm_profdb_lookup(r->profdb, user, un, &text, &tn, &sl->ref, &err);
	if (rc > 0) {
		if (!text || cm_json_parse(&r->prof_doc, text, tn, &err) < 0)
			return NULL;
		return &r->prof_doc;
	}
	cm_buf_reset(&sl->user);
	if (rc < 0 || cm_buf_add(&sl->user, user, un) < 0)
		goto oom;
	sl->rematch = 1;
	return NULL;
oom:
	cm_warn("out of memory");
	r->fatal = CM_EXIT_SYSTEM;
	return NULL;
}

/* Adds a checked event (in its slot) to the batch: matched at once with
 * the profiles the cache has, kept to be matched again after the batch's
 * lookup when it needed one the cache has not; the batch is written in
 * input order once it is full. */
static void enqueue(struct run *r, struct slot *sl)
{
	sl->file = r->file;
	sl->line = r->line;
	sl->rematch = 0;
	sl->wants = 0;
	sl->jq_reported = 0;
	if (r->explain) {
		/* explain reads every event's profile */
		sl->wants = needs_profile(r, &sl->ev);
		if (sl->wants && want_user(r, sl, &sl->ev) < 0)
			return;
	} else {
		const int64_t *ids;
		size_t n;

		r->cur_slot = sl;
		r->cur_ev = &sl->ev;
		sl->ev.profile_fn = cached_lazy;
		sl->ev.profile_ctx = r;
		n = cm_ruleset_match(r->set, &sl->ev, &ids);
		r->cur_slot = NULL;
		if (r->fatal)
			return;
		if (!sl->rematch) {
			if (n > sl->idcap) {
				int64_t *ni = realloc(sl->ids, n * sizeof(*ni));

				if (!ni) {
					cm_warn("out of memory");
					r->fatal = CM_EXIT_SYSTEM;
					return;
				}
				sl->ids = ni;
				sl->idcap = n;
			}
			if (n)
				memcpy(sl->ids, ids, n * sizeof(*ids));
			sl->nids = n;
		}
	}
	sl->stage_off = 0;
	r->batches[r->cur].n++;
	r->batches[r->cur].events++;
	if (r->batches[r->cur].events == BATCH_EVENTS || r->batches[r->cur].bytes >= BATCH_BYTES)
		flush_batch(r, 0);
}

/* The next free slot of the batch being read; NULL when memory is out. */
static struct slot *next_slot(struct run *r)
{
	struct batch *b = &r->batches[r->cur];

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct slot *ns = realloc(b->slots, cap * sizeof(*ns));

		if (!ns)
			return NULL;
		for (size_t k = b->cap; k < cap; k++) {
			cm_jdoc_init(&ns[k].doc, 64);
			cm_buf_init(&ns[k].line_buf, 0);
			cm_buf_init(&ns[k].scratch, 0);
			cm_buf_init(&ns[k].user, 0);
			cm_buf_init(&ns[k].tmp, 0);
			ns[k].ids = NULL;
			ns[k].idcap = 0;
		}
		b->slots = ns;
		b->cap = cap;
	}
	return &b->slots[b->n];
}

/* Keeps event ev of line[0..len) in a slot of the batch, to be matched
 * again once its profile is looked up (pr: what its first match noted). */
static void keep(struct run *r, const struct cm_rule_event *ev, const char *line, size_t len,
                 const struct slot *pr)
{
	struct batch *b = &r->batches[r->cur];
	struct slot *sl = next_slot(r);

	if (!sl) {
		cm_warn("out of memory");
		r->fatal = CM_EXIT_SYSTEM;
		return;
	}
	cm_buf_reset(&sl->line_buf);
	cm_buf_reset(&sl->user);
	if (cm_buf_add(&sl->line_buf, line, len) < 0 ||
	    cm_buf_add(&sl->user, pr->user.data, pr->user.len) < 0) {
		cm_warn("out of memory");
		r->fatal = CM_EXIT_SYSTEM;
		return;
	}
	/* the parsed document moves with the line; the view is the same but
	 * for what points into the line or the scratch */
	if (cm_jdoc_copy(&sl->doc, ev->doc, sl->line_buf.data) < 0) {
		cm_warn("out of memory");
		r->fatal = CM_EXIT_SYSTEM;
		return;
	}
	sl->ev = *ev;
	sl->ev.doc = &sl->doc;
	if (!sl->doc.tok[ev->type_tok].esc) {
		sl->ev.type = sl->doc.src + sl->doc.tok[ev->type_tok].off;
	} else {
		cm_buf_reset(&sl->scratch);
		if (cm_buf_add(&sl->scratch, ev->type, ev->type_len) < 0) {
			cm_warn("out of memory");
			r->fatal = CM_EXIT_SYSTEM;
			return;
		}
		sl->ev.type = sl->scratch.data;
	}
	sl->file = r->file;
	sl->line = r->line;
	sl->wants = 0;
	sl->rematch = 1;
	sl->jq_reported = pr->jq_reported;
	sl->ref = pr->ref;
	sl->stage_off = b->stage.len;
	b->n++;
}

/* With database profiles and no order to keep: matches the event at once
 * with what the cache has, and writes what it yields (to the stage when an
 * event before it waits); only an event that needs a profile the cache has
 * not is kept, to be matched again after the lookup. */
static void match_or_keep(struct run *r, struct cm_rule_event *ev, const char *line, size_t len)
{
	struct batch *b = &r->batches[r->cur];
	struct slot *pr = &r->probe;
	const int64_t *ids;
	size_t n;

	pr->rematch = 0;
	pr->jq_reported = 0;
	r->cur_slot = pr;
	r->cur_ev = ev;
	ev->profile_fn = cached_lazy;
	ev->profile_ctx = r;
	n = cm_ruleset_match(r->set, ev, &ids);
	r->cur_slot = NULL;
	if (r->fatal)
		return;
	if (pr->rematch) {
		keep(r, ev, line, len, pr);
	} else {
		r->stage = b->n || r->waiting ? &b->stage : NULL;
		deliver(r, ev, ids, n, 1);
		r->stage = NULL;
	}
	b->events++;
	b->bytes += len;
	if (b->events == BATCH_EVENTS || b->bytes >= BATCH_BYTES)
		flush_batch(r, 0);
}

/* The profile of the event being matched, when the matcher asks for it. */
static const struct cm_jdoc *lazy_profile(void *ctx)
{
	struct run *r = ctx;

	return profile_of(r, r->cur_ev);
}

/* Matches ev with its profile looked up only if a rule gets as far as it. */
static void handle_lazy(struct run *r, struct cm_rule_event *ev)
{
	r->cur_ev = ev;
	ev->profile_fn = lazy_profile;
	ev->profile_ctx = r;
	handle_event(r, ev);
	r->cur_ev = NULL;
}

/* Parses, checks and matches one line, and writes what it yields; with
 * database profiles the event waits in the batch. */
static void process_line(struct run *r, const char *line, size_t len)
{
	struct cm_rule_event ev;
	struct cm_jdoc *doc = &r->doc;
	struct cm_buf *scratch = &r->scratch;
	struct slot *sl = NULL;
	struct cm_err err;
	if (r->profdb && !r->explain && !r->ordered) {
		if (cm_json_parse(doc, line, len, &err) < 0) {
			char msg[sizeof(err.msg) + 16];

			snprintf(msg, sizeof(msg), "invalid JSON: %s", err.msg);
			reject(r, msg);
		} else if (cm_rule_event_init(&ev, doc, scratch, &err) < 0) {
			reject(r, err.msg);
		} else {
			match_or_keep(r, &ev, line, len);
		}
		return;
	}
	if (r->profdb) {
		/* the line is kept in its slot until the batch is matched */
		sl = next_slot(r);
		if (!sl) {
			cm_warn("out of memory");
			r->fatal = CM_EXIT_SYSTEM;
			return;
		}
		cm_buf_reset(&sl->line_buf);
		if (cm_buf_add(&sl->line_buf, line, len) < 0) {
			cm_warn("out of memory");
			r->fatal = CM_EXIT_SYSTEM;
			return;
		}
		line = sl->line_buf.data;
		doc = &sl->doc;
		scratch = &sl->scratch;
		r->batches[r->cur].bytes += len;
	}
	if (cm_json_parse(doc, line, len, &err) < 0) {
		char msg[sizeof(err.msg) + 16];

		snprintf(msg, sizeof(msg), "invalid JSON: %s", err.msg);
		reject(r, msg);
		return;
	}
	if (cm_rule_event_init(sl ? &sl->ev : &ev, doc, scratch, &err) < 0) {
		reject(r, err.msg);
		return;
	}
	if (sl) {
		enqueue(r, sl);
		return;
	}
	if (r->explain) {
		ev.profile = profile_of(r, &ev);
		handle_event(r, &ev);
	} else {
		handle_lazy(r, &ev);
	}
}

/* Reads one input and processes its lines; output is flushed whenever the
 * next line is not in the reader's buffer yet, so that a slow stream
 * (cm-consume --follow) is not held back behind our buffer. Returns 0, or
 * the exit status of an input error (reported): CM_EXIT_USAGE for a file
 * that cannot be opened, CM_EXIT_SYSTEM for a read error. */
static int process_file(struct run *r, const char *path)
{
	struct cm_lines lr;
	struct cm_err err;
	const char *line;
	size_t len;
	int rc = 0;

	if (cm_lines_open(&lr, path, r->opt.max_line, &err) < 0) {
		cm_warn("%s", err.msg);
		return CM_EXIT_USAGE;
	}
	r->file = lr.name;
	for (;;) {
		int st = cm_lines_next(&lr, &line, &len, &err);

		/* A SIGHUP seen while waiting for this line applies to it; the
		 * batch waiting for profiles is matched with the set it was
		 * read under. */
		if (reload_wanted || (r->db && cm_campdb_pending(r->db)))
			flush_batch(r, 1);
		if (reload_wanted)
			reload(r);
		if (r->db && cm_campdb_pending(r->db))
			take_db_set(r);
		if (st == CM_LINE_EOF)
			break;
		if (st == CM_LINE_ERR) {
			cm_warn("%s", err.msg);
			rc = CM_EXIT_SYSTEM;
			break;
		}
		r->line = lr.lineno;
		if (st == CM_LINE_LONG) {
			char msg[96];

			snprintf(msg, sizeof(msg), "line longer than %zu bytes", r->opt.max_line);
			reject(r, msg);
		} else {
			process_line(r, line, len);
		}
		cm_progress_tick(&r->progress, len + 1);
		if (r->out.closed || r->out.error || r->fatal)
			break;
		if (!cm_lines_ready(&lr, 0)) {
			/* the next line is not buffered: flush the output; and when
			 * it is not even readable now, do not keep events waiting */
			if ((r->batches[r->cur].n || r->waiting) && !cm_lines_ready(&lr, 1))
				flush_batch(r, 1);
			cm_out_flush(&r->out);
		}
	}
	flush_batch(r, 1);
	cm_lines_release(&lr);
	return rc;
}

/* The exit status that says more of two: a system error over a usage
 * error over none. */
static int worse(int a, int b)
{
	return a > b ? a : b;
}

/* Parses the options into r; exits on --help, --version and usage errors. */
static void parse_options(struct run *r, int argc, char **argv)
{
	int c;

	while ((c = getopt_long(argc, argv, ":c:hV", long_options, NULL)) != -1) {
		switch (c) {
		case 'c':
			r->campaigns = optarg;
			break;
		case OPT_MATCHED_ONLY:
			r->matched_only = 1;
			break;
		case OPT_EMIT:
			if (strcmp(optarg, "events") == 0)
				r->emit_matches = 0;
			else if (strcmp(optarg, "matches") == 0)
				r->emit_matches = 1;
			else
				cm_usage_error("--emit: expected events or matches, not '%s'",
				               optarg);
			break;
		case OPT_CHECK:
			r->check = 1;
			break;
		case OPT_EXPLAIN:
			r->explain = 1;
			break;
		case OPT_SUMMARY:
			r->summary = 1;
			break;
		case OPT_PROFILE_TTL:
			if (cm_parse_i64(optarg, 0, CM_PROFDB_TTL_MAX, &r->profile_ttl) < 0)
				cm_usage_error(
				    "--profile-ttl: expected milliseconds from 0 to %d, not "
				    "'%s'",
				    CM_PROFDB_TTL_MAX, optarg);
			break;
		case OPT_CAMPAIGN:
			if (cm_parse_i64(optarg, 1, CM_RULE_MAX_ID, &r->explain_id) < 0)
				cm_usage_error(
				    "--campaign: expected a campaign id from 1 to %lld, not "
				    "'%s'",
				    (long long)CM_RULE_MAX_ID, optarg);
			break;
		case OPT_PROFILES:
			if (!*optarg)
				cm_usage_error("--profiles: empty file name or conninfo");
			r->profiles_spec = optarg;
			break;
		case OPT_STATS:
			r->stats = 1;
			break;
		case 'h':
			cm_print_help(usage_text);
		case 'V':
			cm_print_version();
		default:
			if (!cm_opts_common(&r->opt, c, optarg))
				cm_opts_bad(c, argc, argv);
		}
	}
	if (!r->campaigns)
		cm_usage_error("missing -c/--campaigns FILE");
	if (r->explain_id && !r->explain)
		cm_usage_error("--campaign goes with --explain");
	if (r->explain && (r->emit_matches || r->matched_only || r->summary))
		cm_usage_error("--explain writes its own lines: no --emit matches, --matched-only "
		               "or --summary");
	if (r->summary && (r->emit_matches || r->matched_only))
		cm_usage_error("--summary writes only the counts: no --emit matches or "
		               "--matched-only");
	if (!*r->campaigns)
		cm_usage_error("-c/--campaigns: empty file name");
	if (!r->opt.redis && (r->opt.stream || r->opt.consumer))
		cm_usage_error("--stream and --consumer go with --redis");
}

/* Frees everything of the run (what was never made is zero, and freed
 * as nothing). */
static void release_run(struct run *r)
{
	if (r->db)
		cm_campdb_close(r->db); /* owns r->set */
	else
		cm_ruleset_free(r->set);
	cm_jdoc_release(&r->doc);
	cm_jdoc_release(&r->prof_doc);
	cm_profiles_free(r->profiles);
	cm_outcomes_free(r->oc);
	cm_summary_free(r->sum);
	cm_profdb_close(r->profdb);
	cm_wmetrics_free(r->wm);
	for (int b = 0; b < 2; b++) {
		for (size_t k = 0; k < r->batches[b].cap; k++) {
			struct slot *sl = &r->batches[b].slots[k];

			cm_jdoc_release(&sl->doc);
			cm_buf_release(&sl->line_buf);
			cm_buf_release(&sl->scratch);
			cm_buf_release(&sl->user);
			cm_buf_release(&sl->tmp);
			free(sl->ids);
		}
		free(r->batches[b].slots);
		cm_buf_release(&r->batches[b].stage);
		cm_buf_release(&r->batches[b].kept);
		free(r->batches[b].iov);
	}
	cm_buf_release(&r->probe.user);
	cm_buf_release(&r->probe.tmp);
	free(r->outs);
	cm_buf_release(&r->scratch);
	cm_buf_release(&r->scratch2);
	cm_buf_release(&r->rec);
	cm_buf_release(&r->tail);
	cm_buf_release(&r->exline);
}

/* Options, the campaigns, then the inputs in order; the exit status of
 * CONTRACT section 2 (a write error other than a closed pipe is 2). */
int main(int argc, char **argv)
{
	struct run r;
	struct sigaction sa;
	int status = CM_EXIT_OK, input_error = 0;

	cm_cli_init(argv[0]);
	memset(&r, 0, sizeof(r));
	r.opt.max_line = CM_MATCH_LINE_MAX;
	r.profile_ttl = CM_PROFDB_TTL_MS;
	opterr = 0;
	parse_options(&r, argc, argv);
	if (is_conninfo(r.campaigns)) {
		open_db(&r);
		if (r.check) {
			size_t skipped = cm_campdb_skipped(r.db);

			cm_warn("database: %zu active campaigns valid, %zu skipped",
			        cm_ruleset_active(r.set), skipped);
			cm_campdb_close(r.db);
			return skipped ? CM_EXIT_USAGE : CM_EXIT_OK;
		}
	} else {
		r.set = load_campaigns(r.campaigns);
		if (!r.set)
			return CM_EXIT_USAGE;
	}
	if (r.check) {
		cm_warn("%s: %zu campaigns valid (%zu active)", r.campaigns,
		        cm_ruleset_count(r.set), cm_ruleset_active(r.set));
		cm_ruleset_free(r.set);
		return CM_EXIT_OK;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = r.db ? SIG_IGN : on_hup;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &sa, NULL);

	r.oc = cm_outcomes_new(r.db ? 0 : CM_OUTCOMES_LIMITS);
	r.sum = r.summary ? cm_summary_new() : NULL;
	r.profiles = cm_profiles_new();
	if (r.profiles_spec && is_conninfo(r.profiles_spec)) {
		struct cm_err err;

		if (cm_pg_conninfo_check(r.profiles_spec, &err) < 0)
			cm_usage_error("--profiles: %s", err.msg);
		r.profdb = cm_profdb_open(r.profiles_spec, r.profile_ttl, 0, &err);
		if (!r.profdb) {
			cm_warn("%s", err.msg);
			release_run(&r);
			return err.code;
		}
		cm_profdb_begin(r.profdb);
		/* offline limits are decided in input order: every event waits */
		r.ordered = !r.db && cm_ruleset_has_controls(r.set);
	}
	if (!r.oc || !r.profiles || (r.summary && !r.sum) ||
	    (r.profiles_spec && !r.profdb && load_profiles(&r, r.profiles_spec) < 0)) {
		int oom = !r.profiles || !r.oc || (r.summary && !r.sum);

		if (oom)
			cm_warn("out of memory");
		release_run(&r);
		return oom ? CM_EXIT_SYSTEM : CM_EXIT_USAGE;
	}
	if (r.explain_id && !cm_ruleset_has(r.set, r.explain_id)) {
		cm_warn("--campaign %lld: no such campaign in %s", (long long)r.explain_id,
		        r.db ? "the database's active campaigns" : r.campaigns);
		release_run(&r);
		return CM_EXIT_USAGE;
	}
	cm_ruleset_on_jq_error(r.set, report_jq_error, &r);
	cm_out_init(&r.out, STDOUT_FILENO);
	cm_jdoc_init(&r.doc, 64);
	cm_jdoc_init(&r.prof_doc, 64);
	cm_buf_init(&r.scratch, 0);
	cm_buf_init(&r.scratch2, 0);
	cm_buf_init(&r.rec, 0);
	cm_buf_init(&r.tail, 0);
	cm_buf_init(&r.probe.user, 0);
	cm_buf_init(&r.probe.tmp, 0);
	cm_buf_init(&r.batches[0].stage, 0);
	cm_buf_init(&r.batches[1].stage, 0);
	cm_buf_init(&r.batches[0].kept, 0);
	cm_buf_init(&r.batches[1].kept, 0);
	cm_buf_init(&r.exline, 0);
	cm_progress_init(&r.progress);
	if (r.opt.redis)
		r.wm = cm_opts_metrics(&r.opt, cm_opts_redis(&r.opt));
	if (optind >= argc) {
		input_error = process_file(&r, "-");
	} else {
		for (int i = optind; i < argc && !r.out.closed && !r.out.error; i++)
			input_error = worse(input_error, process_file(&r, argv[i]));
	}
	if (r.sum && !r.out.closed && !r.out.error && !r.fatal)
		write_summary(&r);
	cm_progress_end(&r.progress);
	if (cm_out_release(&r.out) < 0 && r.out.error) {
		cm_warn("write error: %s", strerror(r.out.error));
		status = CM_EXIT_SYSTEM;
	} else if (r.fatal) {
		status = r.fatal;
	} else if (!r.out.closed) {
		if (input_error)
			status = input_error;
		else if (r.rejected)
			status = CM_EXIT_REJECTED;
	}
	if (r.stats && r.profdb)
		cm_warn("%llu events, %llu matched, %llu matches, %llu rejected, %llu jq errors, "
		        "%llu profiles read in %llu queries",
		        r.events, r.matched, r.matches, r.rejected,
		        r.jq_errors_before + cm_ruleset_jq_errors(r.set) - r.jq_uncounted,
		        cm_profdb_fetched(r.profdb), cm_profdb_queries(r.profdb));
	else if (r.stats)
		cm_warn("%llu events, %llu matched, %llu matches, %llu rejected, %llu jq errors",
		        r.events, r.matched, r.matches, r.rejected,
		        r.jq_errors_before + cm_ruleset_jq_errors(r.set));
	release_run(&r);
	return status;
}
