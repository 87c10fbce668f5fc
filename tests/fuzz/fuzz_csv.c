/* fuzz_csv.c - libFuzzer harness for the CSV reader: over any bytes it ends,
 * stays within its bounds, reports records in line order, and reading from a
 * descriptor (with a primed prefix) gives exactly what reading from memory
 * gives, and libcsv alone gives what the direct split of lines without
 * quotes gives. The first input byte picks the delimiter and the bound. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "buf.h"
#include "csvin.h"
#include "err.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

/* Reads every record and appends a description of each to out, checking
 * the invariants on the way. */
static void read_all(struct cm_csvin *r, const uint8_t *data, size_t size, size_t max, int mem,
                     struct cm_buf *out)
{
	struct cm_csvrec rec;
	struct cm_err err;
	unsigned long last = 0;
	int rc;

	while ((rc = cm_csvin_next(r, &rec, &err)) != CM_CSV_EOF) {
		CHECK(rc != CM_CSV_ERR);
		CHECK(rec.line > last);
		last = rec.line;
		cm_buf_addf(out, "%d@%lu:", rc, rec.line);
		if (rc == CM_CSV_LONG) {
			CHECK(rec.raw == NULL);
			cm_buf_addc(out, '\n');
			continue;
		}
		CHECK(rec.rawlen <= max);
		if (mem)
			CHECK((const uint8_t *)rec.raw >= data &&
			      (const uint8_t *)rec.raw + rec.rawlen <= data + size);
		cm_buf_add(out, rec.raw, rec.rawlen);
		if (rc == CM_CSV_OK) {
			size_t total = 0;

			CHECK(rec.n >= 1);
			for (size_t i = 0; i < rec.n; i++) {
				total += rec.len[i];
				cm_buf_addc(out, '|');
				cm_buf_add(out, rec.field[i], rec.len[i]);
			}
			/* fields are the raw text minus quotes and delimiters */
			CHECK(total <= rec.rawlen);
		}
		cm_buf_addc(out, '\n');
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char delims[] = {',', '\t', ';', '|'};
	static const size_t maxes[] = {1 << 20, 16, 64, 3};
	struct cm_buf a = CM_BUF_INIT, b = CM_BUF_INIT;
	struct cm_csvin r;
	char delim;
	size_t max, prime;
	int fd;

	if (size < 1)
		return 0;
	delim = delims[data[0] & 3];
	max = maxes[(data[0] >> 2) & 3];
	prime = (data[0] >> 4) & 15;
	data++;
	size--;

	cm_csvin_init_mem(&r, (const char *)data, size, "fuzz", delim, max);
	read_all(&r, data, size, max, 1, &a);
	cm_csvin_release(&r);

	/* libcsv alone gives the same records as with the direct split */
	cm_csvin_init_mem(&r, (const char *)data, size, "fuzz", delim, max);
	r.fast = 0;
	read_all(&r, data, size, max, 1, &b);
	cm_csvin_release(&r);
	CHECK(a.len == b.len && (a.len == 0 || !memcmp(a.data, b.data, a.len)));
	cm_buf_reset(&b);

	fd = memfd_create("fuzz_csv", 0);
	if (fd >= 0) {
		if (prime > size)
			prime = size;
		if (write(fd, data + prime, size - prime) == (ssize_t)(size - prime) &&
		    lseek(fd, 0, SEEK_SET) == 0) {
			cm_csvin_init_fd(&r, fd, "fuzz", delim, max);
			CHECK(cm_csvin_prime(&r, data, prime, NULL) == 0);
			read_all(&r, data, size, max, 0, &b);
			cm_csvin_release(&r);
			CHECK(a.len == b.len && (a.len == 0 || !memcmp(a.data, b.data, a.len)));
		}
		close(fd);
	}
	cm_buf_release(&a);
	cm_buf_release(&b);
	return 0;
}
