/* evrow.c - a stored event row as its canonical line. */
#include "evrow.h"

#include "buf.h"
#include "err.h"
#include "event.h"
#include "json.h"
#include "pgcopy.h"
#include "timefmt.h"

int cm_evrow_line(const struct cm_pgcopy *r, struct cm_jdoc *doc, struct cm_buf *b,
                  struct cm_err *err)
{
	char t[CM_TIME_MAX];
	size_t tn;
	int rc = 0;

	cm_buf_reset(b);
	if (r->nfields < CM_EVROW_NCOLS || r->flen[0] < 0 || r->flen[1] < 0 || r->flen[2] < 0 ||
	    r->flen[3] != 8 || r->flen[4] < 1 || r->field[4][0] != 1)
		return cm_errc(err, CM_EXIT_REFUSED, "unexpected row shape from PostgreSQL");
	if (doc && cm_json_parse(doc, r->field[4] + 1, (size_t)r->flen[4] - 1, err) < 0) {
		cm_err_prefix(err, "event %.*s: properties: ", (int)r->flen[0], r->field[0]);
		err->code = CM_EXIT_REJECTED;
		return -1;
	}
	tn = cm_time_format(cm_pg_be64(r->field[3]), t);
	rc |= cm_buf_adds(b, "{\"event_id\":");
	rc |= cm_event_put_str(b, r->field[0], (size_t)r->flen[0]);
	rc |= cm_buf_adds(b, ",\"event_type\":");
	rc |= cm_event_put_str(b, r->field[1], (size_t)r->flen[1]);
	rc |= cm_buf_adds(b, ",\"user_id\":");
	rc |= cm_event_put_str(b, r->field[2], (size_t)r->flen[2]);
	rc |= cm_buf_adds(b, ",\"occurred_at\":\"");
	rc |= cm_buf_add(b, t, tn);
	rc |= cm_buf_adds(b, "\",\"properties\":");
	rc |=
	    doc ? cm_json_write(doc, 0, b) : cm_buf_add(b, r->field[4] + 1, (size_t)r->flen[4] - 1);
	if (rc)
		return cm_errc(err, CM_EXIT_SYSTEM, "out of memory");
	return 0;
}
