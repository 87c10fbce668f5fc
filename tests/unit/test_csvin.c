/* Tests for csvin.c: RFC 4180 records over libcsv, line numbers, the text as
 * read, bounds, and reading from a descriptor in small and large pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "csvin.h"
#include "err.h"

/* Appends a field to the dump, escaping what would make it ambiguous. */
static void dump_field(struct cm_buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case '\n':
			cm_buf_adds(b, "\\n");
			break;
		case '\r':
			cm_buf_adds(b, "\\r");
			break;
		case '|':
			cm_buf_adds(b, "\\|");
			break;
		case '\\':
			cm_buf_adds(b, "\\\\");
			break;
		default:
			cm_buf_addc(b, s[i]);
		}
	}
}

/* Reads every record with r and describes them one per line:
 * "LINE:f1|f2" for a record, "LINE:LONG" and "LINE:BAD" for the others,
 * and with raw set, "LINE:[raw text]" instead of the fields. */
static char *dump_reader(struct cm_csvin *r, int raw)
{
	struct cm_buf b = CM_BUF_INIT;
	struct cm_csvrec rec;
	struct cm_err err;
	int rc;

	cm_buf_adds(&b, "");
	while ((rc = cm_csvin_next(r, &rec, &err)) != CM_CSV_EOF) {
		assert_int_not_equal(rc, CM_CSV_ERR);
		cm_buf_addf(&b, "%lu:", rec.line);
		if (rc == CM_CSV_LONG) {
			assert_null(rec.raw);
			cm_buf_adds(&b, "LONG");
		} else if (rc == CM_CSV_BAD && !raw) {
			cm_buf_adds(&b, "BAD");
		} else if (raw) {
			if (rc == CM_CSV_BAD)
				cm_buf_adds(&b, "BAD");
			cm_buf_addc(&b, '[');
			dump_field(&b, rec.raw, rec.rawlen);
			cm_buf_addc(&b, ']');
		} else {
			for (size_t i = 0; i < rec.n; i++) {
				if (i)
					cm_buf_addc(&b, '|');
				dump_field(&b, rec.field[i], rec.len[i]);
			}
		}
		cm_buf_addc(&b, '\n');
	}
	return b.data;
}

/* Parses in[0..n) from memory and dumps it; checks on the way that the
 * direct split of lines without quotes gives what libcsv alone gives. */
static char *dump_n(const char *in, size_t n, char delim, size_t max, int raw)
{
	struct cm_csvin r;
	char *out, *slow;

	cm_csvin_init_mem(&r, in, n, "test", delim, max);
	out = dump_reader(&r, raw);
	cm_csvin_release(&r);
	cm_csvin_init_mem(&r, in, n, "test", delim, max);
	r.fast = 0;
	slow = dump_reader(&r, raw);
	cm_csvin_release(&r);
	assert_string_equal(out, slow);
	free(slow);
	return out;
}

/* Checks that in parses to want (read from memory). */
static void check_ex(const char *in, char delim, size_t max, int raw, const char *want)
{
	char *got = dump_n(in, strlen(in), delim, max, raw);

	assert_string_equal(got, want);
	free(got);
}

static void check(const char *in, const char *want)
{
	check_ex(in, ',', 1 << 20, 0, want);
}

static void test_simple(void **state)
{
	check("a,b,c\n1,2,3\n", "1:a|b|c\n2:1|2|3\n");
	check("x\n", "1:x\n");
}

static void test_quoted(void **state)
{
	check("\"a,b\",c\n", "1:a,b|c\n");
	check("\"\",x\n", "1:|x\n");
	check("\"he said \"\"hi\"\"\",x\n", "1:he said \"hi\"|x\n");
	check("\"\"\"\"\n", "1:\"\n");
}

static void test_newline_in_quotes(void **state)
{
	check("h1,h2\n\"multi\nline\",x\nnext,y\n", "1:h1|h2\n2:multi\\nline|x\n4:next|y\n");
	check("h\n\"a\n\nb\"\nz\n", "1:h\n2:a\\n\\nb\n5:z\n");
	check("h\r\n\"x\r\ny\",z\r\nq,w\r\n", "1:h\n2:x\\r\\ny|z\n4:q|w\n");
}

static void test_line_ends(void **state)
{
	check("a,b\r\n1,2\r\n", "1:a|b\n2:1|2\n");
	check("a,b\n1,2", "1:a|b\n2:1|2\n");
	check("a,b\r1,2\r", "1:a|b\n2:1|2\n");
	check("a\r\n\r\nb\r\n", "1:a\n3:b\n");
	check_ex("a,b\r\n1,2\r\n", ',', 1 << 20, 1, "1:[a,b]\n2:[1,2]\n");
	check_ex("a,b\n1,2", ',', 1 << 20, 1, "1:[a,b]\n2:[1,2]\n");
}

static void test_bom(void **state)
{
	check("\xEF\xBB\xBFid,name\n1,x\n", "1:id|name\n2:1|x\n");
	/* only at the very start */
	check("id\n\xEF\xBB\xBFx\n", "1:id\n2:\xEF\xBB\xBFx\n");
	check("\xEF\xBB\xBF", "");
	check("\xEF\xBB", "1:\xEF\xBB\n");
}

static void test_stray_quote(void **state)
{
	check("a,b\"c,d\n", "1:a|b\"c|d\n");
	check("5\" screen,x\"\n", "1:5\" screen|x\"\n");
	check("a\"\"b\n", "1:a\"\"b\n");
	/* text after a closing quote is an error up to the end of the line */
	check("\"ab\"c,d\nnext\n", "1:BAD\n2:next\n");
	check("\"a\" ,b\r\nn\r\n", "1:BAD\n2:n\n");
	check_ex("\"ab\"c,d\r\nx\n", ',', 1 << 20, 1, "1:BAD[\"ab\"c,d]\n2:[x]\n");
	check_ex("h\n\"open\n", ',', 1 << 20, 1, "1:[h]\n2:BAD[\"open\\n]\n");
}

static void test_empty_fields(void **state)
{
	check(",,\n", "1:||\n");
	check("a,,b\n", "1:a||b\n");
	check("a,b,\n", "1:a|b|\n");
	check(",\n", "1:|\n");
}

static void test_spaces_kept(void **state)
{
	check("a, b ,c\n", "1:a| b |c\n");
	check(" \n", "1: \n");
	check("\t,x\n", "1:\t|x\n");
}

static void test_blank_lines(void **state)
{
	check("a\n\n\nb\n\n", "1:a\n4:b\n");
	check("", "");
	check("\n\n\r\n", "");
}

static void test_ragged(void **state)
{
	/* the reader reports what is there; the header check is the caller's */
	check("a,b\n1\n1,2,3\n", "1:a|b\n2:1\n3:1|2|3\n");
}

static void test_tab(void **state)
{
	check_ex("a\tb\n1\t2 x\n\"q\tt\"\tz\n", '\t', 1 << 20, 0, "1:a|b\n2:1|2 x\n3:q\tt|z\n");
	check_ex("a;b,c\n", ';', 1 << 20, 0, "1:a|b,c\n");
}

static void test_unterminated(void **state)
{
	check("a\n\"open,x\ny\n", "1:a\n2:BAD\n");
	check("\"x\"", "1:x\n");
}

static void test_max(void **state)
{
	/* a record longer than max is skipped whole, reading goes on */
	check_ex("ab\nabcdefghij\nxy\n", ',', 4, 0, "1:ab\n2:LONG\n3:xy\n");
	check_ex("ab\n\"abc\ndefgh\nijk\"\nxy\n", ',', 6, 0, "1:ab\n2:LONG\n5:xy\n");
	check_ex("abcd\n", ',', 4, 0, "1:abcd\n");
	check_ex("abcde", ',', 4, 0, "1:LONG\n");
	check_ex("\"abcdefgh", ',', 4, 0, "1:LONG\n");
}

static void test_raw_text(void **state)
{
	check_ex("h\n\"a\"\"b\",c\n", ',', 1 << 20, 1, "1:[h]\n2:[\"a\"\"b\",c]\n");
	check_ex("h\n\"x\ny\"\n", ',', 1 << 20, 1, "1:[h]\n2:[\"x\\ny\"]\n");
}

static void test_nul_and_binary(void **state)
{
	static const char in[] = "a\0b,\xff\n";
	char *got = dump_n(in, sizeof(in) - 1, ',', 1 << 20, 0);

	assert_int_equal(memcmp(got, "1:a\0b|\xff\n", 9), 0);
	free(got);
}

/* Reads a large input through a file descriptor, with a primed prefix,
 * and checks it gives what the memory reader gives (buffer handling). */
static void test_fd(void **state)
{
	struct cm_buf in = CM_BUF_INIT;
	struct cm_csvin r;
	char path[] = "/tmp/cm-test-csvin.XXXXXX";
	int fd = mkstemp(path);
	char *got, *wanted;

	assert_true(fd >= 0);
	unlink(path);
	cm_buf_adds(&in, "id,text\r\n");
	for (int i = 0; i < 20000; i++)
		cm_buf_addf(&in, "%d,\"line %d\nwith \"\"quotes\"\", and commas\"\r\n", i, i);
	assert_int_equal(write(fd, in.data, in.len), (ssize_t)in.len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);

	wanted = dump_n(in.data, in.len, ',', 1 << 20, 0);
	/* prime with the first 7 bytes, as the format sniffing does */
	assert_int_equal(read(fd, path, 7), 7);
	cm_csvin_init_fd(&r, fd, "test", ',', 1 << 20);
	assert_int_equal(cm_csvin_prime(&r, path, 7, NULL), 0);
	got = dump_reader(&r, 0);
	assert_string_equal(got, wanted);
	assert_true(strstr(got, "40000:19999|line 19999\\nwith \"quotes\", and commas\n") != NULL);
	cm_csvin_release(&r);
	close(fd);
	free(got);
	free(wanted);
	cm_buf_release(&in);
}

static void test_open_missing(void **state)
{
	struct cm_csvin r;
	struct cm_err err;

	assert_int_equal(cm_csvin_open(&r, "/nonexistent/x.csv", ',', 100, &err), -1);
	assert_non_null(strstr(err.msg, "/nonexistent/x.csv"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_simple),
	    cmocka_unit_test(test_quoted),
	    cmocka_unit_test(test_newline_in_quotes),
	    cmocka_unit_test(test_line_ends),
	    cmocka_unit_test(test_bom),
	    cmocka_unit_test(test_stray_quote),
	    cmocka_unit_test(test_empty_fields),
	    cmocka_unit_test(test_spaces_kept),
	    cmocka_unit_test(test_blank_lines),
	    cmocka_unit_test(test_ragged),
	    cmocka_unit_test(test_tab),
	    cmocka_unit_test(test_unterminated),
	    cmocka_unit_test(test_max),
	    cmocka_unit_test(test_raw_text),
	    cmocka_unit_test(test_nul_and_binary),
	    cmocka_unit_test(test_fd),
	    cmocka_unit_test(test_open_missing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
