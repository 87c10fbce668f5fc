/* evrow.h - a stored event (a row of the events table, read with
 * pgcopy.h) as its canonical NDJSON line (CONTRACT 1.1): what cm-export
 * writes and what cm-httpd's explain and backtest match.
 *
 * The query selects CM_EVROW_COLS (table alias e) as its first columns;
 * the line is built from those fields of the current row. */
#ifndef CM_EVROW_H
#define CM_EVROW_H

struct cm_buf;
struct cm_err;
struct cm_jdoc;
struct cm_pgcopy;

/* The columns of an event, in the order cm_evrow_line reads them. */
#define CM_EVROW_COLS                                                                              \
	"e.event_id, e.event_type, e.user_id, "                                                    \
	"floor(extract(epoch FROM e.occurred_at) * 1000)::bigint, e.properties"
#define CM_EVROW_NCOLS 5

/* Replaces b's contents with the event of r's current row, without the
 * closing brace (so that the caller can add members such as "matches").
 * With doc, the properties are parsed and written compact (jsonb's text has
 * spaces); without, they are copied as PostgreSQL wrote them (still valid
 * JSON, for a reader that parses it anyway). Returns 0, or -1 with err:
 * code CM_EXIT_REFUSED for a row not of these columns, CM_EXIT_REJECTED
 * for properties that do not parse (deeper than doc takes), CM_EXIT_SYSTEM
 * when memory runs out. */
int cm_evrow_line(const struct cm_pgcopy *r, struct cm_jdoc *doc, struct cm_buf *b,
                  struct cm_err *err);

#endif
