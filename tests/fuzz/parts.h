/* parts.h - for the fuzz harnesses: an input split at 0x1f bytes into the
 * parts of a CSV row, as cm_event_build takes them. */
#ifndef FUZZ_PARTS_H
#define FUZZ_PARTS_H

#include <stdint.h>
#include <string.h>

#include "event.h"

/* Fills p from data split at 0x1f bytes: event_id (empty: derived),
 * event_type, user_id, occurred_at (empty: the clock) and, from a fifth
 * part, the properties text; 0 when there are fewer than three parts. */
static inline int fuzz_parts(const uint8_t *data, size_t size, struct cm_event_parts *p)
{
	const char *part[5] = {NULL};
	size_t plen[5] = {0}, n = 0, start = 0;

	for (size_t i = 0; i <= size && n < 5; i++) {
		if (i == size || data[i] == 0x1f) {
			part[n] = (const char *)data + start;
			plen[n++] = i - start;
			start = i + 1;
		}
	}
	if (n < 3)
		return 0;
	memset(p, 0, sizeof(*p));
	p->id = plen[0] ? part[0] : NULL;
	p->id_len = plen[0];
	p->type = part[1];
	p->type_len = plen[1];
	p->user = part[2];
	p->user_len = plen[2];
	if (n > 3 && plen[3]) {
		p->time = part[3];
		p->time_len = plen[3];
	}
	if (n > 4 && plen[4]) {
		p->props = part[4];
		p->props_len = plen[4];
	}
	return 1;
}

#endif
