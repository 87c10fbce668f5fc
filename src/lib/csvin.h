/* csvin.h - a CSV record reader over libcsv (RFC 4180).
 *
 * Quoted fields, doubled quotes, newlines inside quotes, CRLF, LF or CR line
 * ends; a UTF-8 byte order mark at the start of the input is dropped; blank
 * lines between records are skipped. Parsing is strict RFC 4180 with one
 * exception: as exports in the wild write it, a quote inside an unquoted
 * field is a literal character. Text after a closing quote ("ab"c) makes the
 * record bad (CM_CSV_BAD) up to the end of its line. Spaces are part of a
 * field (never trimmed). The reader does not know
 * about headers: it hands out each record's fields, the line where the record
 * starts and its text as read.
 *
 * Memory is bounded by the maximum record size: a longer record is skipped
 * whole (CM_CSV_LONG) and reading goes on after it. The reader owns its
 * buffers; a record's pointers stay valid until the next call.
 */
#ifndef CM_CSVIN_H
#define CM_CSVIN_H

#include <csv.h>
#include <stddef.h>

struct cm_err;

struct cm_csvin {
	struct csv_parser p;
	int fd;
	int own_fd;       /* opened by cm_csvin_open: closed by release */
	int mem;          /* buf is the caller's memory (cm_csvin_init_mem) */
	const char *name; /* for messages: a path or "stdin" */
	char *buf;
	size_t cap, start, pos, end; /* buf[start..pos): current record fed to libcsv */
	size_t max;                  /* maximum record size in bytes */
	int eof;                     /* no more input after buf[end] */
	int began;                   /* the byte order mark check is done */
	int prev_cr;                 /* the last byte consumed was a CR (for CRLF line counting) */
	int fast;           /* split lines without quotes directly (the default); 0 sends every
	                       record through libcsv, for differential tests */
	unsigned long line; /* line number at pos, from 1 */
	unsigned long long bytes; /* bytes consumed so far */

	/* the record being read */
	int ended, skipping, failed, bad;
	size_t bad_field;
	char *arena;
	size_t alen, acap;
	size_t *foff, *flen;
	const char **fptr;
	size_t nf, fcap;
};

/* One record; pointers into the reader, valid until the next call. */
struct cm_csvrec {
	unsigned long line;       /* line where the record starts */
	const char *raw;          /* record text as read, without its line end */
	size_t rawlen;            /* (NULL/0 for CM_CSV_LONG) */
	size_t n;                 /* number of fields */
	const char *const *field; /* field i is field[i][0..len[i]), not NUL-terminated */
	const size_t *len;
};

enum {
	CM_CSV_OK = 0,   /* *rec holds the next record */
	CM_CSV_EOF = 1,  /* no more records */
	CM_CSV_LONG = 2, /* the record at rec->line was longer than max; skipped */
	CM_CSV_BAD = 3,  /* the record at rec->line is malformed (err says why) */
	CM_CSV_ERR = -1, /* read error or out of memory; err says why */
};

/* Opens path ("-" or NULL for stdin) to read records of at most max bytes,
 * fields separated by delim. */
int cm_csvin_open(struct cm_csvin *c, const char *path, char delim, size_t max, struct cm_err *err);
/* Same for an already open descriptor (not closed by release). */
void cm_csvin_init_fd(struct cm_csvin *c, int fd, const char *name, char delim, size_t max);
/* Reads records from data[0..len), which must outlive the reader. */
void cm_csvin_init_mem(struct cm_csvin *c, const char *data, size_t len, const char *name,
                       char delim, size_t max);
/* Puts bytes already read from the descriptor (a format sniff) in front of
 * what is still to be read; only before the first cm_csvin_next. */
int cm_csvin_prime(struct cm_csvin *c, const void *p, size_t n, struct cm_err *err);
/* Returns CM_CSV_OK with the next record, or EOF, LONG, BAD or ERR. */
int cm_csvin_next(struct cm_csvin *c, struct cm_csvrec *rec, struct cm_err *err);
void cm_csvin_release(struct cm_csvin *c);

#endif
