/* test_json.c - the JSON parser: validation and its error offsets, the token
 * tape, accessors, paths, decoding, numbers, equality and compact writing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "json.h"

/* Parses s[0..n) into d and fails the test with the parser's message when it
 * is rejected. */
static void parse_ok_n(struct cm_jdoc *d, const char *s, size_t n)
{
	struct cm_err err;

	err.msg[0] = 0;
	if (cm_json_parse(d, s, n, &err) != 0)
		fail_msg("rejected %.*s: %s", (int)n, s, err.msg);
	assert_true(d->ntok > 0);
	assert_int_equal(d->tok[0].next, d->ntok);
}

/* Parses a C string that must be valid JSON. */
static void parse_ok(struct cm_jdoc *d, const char *s)
{
	parse_ok_n(d, s, strlen(s));
}

/* Asserts that s[0..n) is rejected with exactly the message want, under the
 * nesting limit depth (0: the default). */
static void reject_n(const char *s, size_t n, unsigned depth, const char *want)
{
	struct cm_jdoc d;
	struct cm_err err;

	cm_jdoc_init(&d, depth);
	err.msg[0] = 0;
	if (cm_json_parse(&d, s, n, &err) == 0)
		fail_msg("accepted %.*s", (int)n, s);
	assert_string_equal(err.msg, want);
	assert_int_equal(d.ntok, 0);
	assert_int_equal(cm_json_get(&d, 0, "a", 1), CM_JNONE);
	cm_jdoc_release(&d);
}

/* Asserts that the C string s is rejected with message want. */
static void reject(const char *s, const char *want)
{
	reject_n(s, strlen(s), 0, want);
}

static void test_tape(void **state)
{
	struct cm_jdoc d;
	const char *s = " {\"a\": [1, \"x\", true, false, null, {}], \"b\\n\": {\"c\": -2.5e3}} ";

	(void)state;
	cm_jdoc_init(&d, 0);
	parse_ok(&d, s);
	assert_int_equal(d.ntok, 13);
	/* 0 {  1 "a"  2 [  3 1  4 "x"  5 true  6 false  7 null  8 {}  9 "b\n"
	 * 10 {  11 "c"  12 -2.5e3 */
	assert_int_equal(d.tok[0].type, CM_JOBJ);
	assert_int_equal(d.tok[0].count, 2);
	assert_int_equal(d.tok[0].off, 1);
	assert_int_equal(d.tok[0].len, strlen(s) - 2);
	assert_int_equal(d.tok[1].type, CM_JSTR);
	assert_int_equal(d.tok[1].off, 3);
	assert_int_equal(d.tok[1].len, 1);
	assert_int_equal(d.tok[1].esc, 0);
	assert_int_equal(d.tok[2].type, CM_JARR);
	assert_int_equal(d.tok[2].count, 6);
	assert_int_equal(d.tok[2].next, 9);
	assert_memory_equal(s + d.tok[2].off, "[1, \"x\", true, false, null, {}]", d.tok[2].len);
	assert_int_equal(d.tok[3].type, CM_JNUM);
	assert_int_equal(d.tok[3].next, 4);
	assert_int_equal(d.tok[5].type, CM_JTRUE);
	assert_int_equal(d.tok[6].type, CM_JFALSE);
	assert_int_equal(d.tok[6].len, 5);
	assert_int_equal(d.tok[7].type, CM_JNULL);
	assert_int_equal(d.tok[8].type, CM_JOBJ);
	assert_int_equal(d.tok[8].count, 0);
	assert_int_equal(d.tok[8].len, 2);
	assert_int_equal(d.tok[8].next, 9);
	assert_int_equal(d.tok[9].esc, 1);
	assert_int_equal(d.tok[9].len, 3);
	assert_int_equal(d.tok[10].count, 1);
	assert_int_equal(d.tok[10].next, 13);
	assert_memory_equal(s + d.tok[12].off, "-2.5e3", d.tok[12].len);
	assert_int_equal(d.tok[12].len, 6);

	/* Scalars at the root, with whitespace around them. */
	parse_ok(&d, " \t\r\n42\n");
	assert_int_equal(d.ntok, 1);
	assert_int_equal(d.tok[0].type, CM_JNUM);
	assert_int_equal(d.tok[0].off, 4);
	assert_int_equal(d.tok[0].len, 2);
	parse_ok(&d, "\"\"");
	assert_int_equal(d.tok[0].type, CM_JSTR);
	assert_int_equal(d.tok[0].len, 0);
	parse_ok(&d, "null");
	assert_int_equal(d.tok[0].type, CM_JNULL);
	parse_ok(&d, "[[],[[]],{}]");
	assert_int_equal(d.ntok, 5);
	assert_int_equal(d.tok[0].count, 3);
	assert_int_equal(d.tok[2].count, 1);
	assert_int_equal(d.tok[2].next, 4);
	cm_jdoc_release(&d);
}

static void test_structure_errors(void **state)
{
	char big[400];

	(void)state;
	reject_n("", 0, 0, "byte 1: empty input, expected a JSON value");
	reject("   ", "byte 4: expected a JSON value, found end of input");
	reject("{", "byte 2: expected '\"' to start a member name, found end of input");
	reject("[", "byte 2: expected a JSON value, found end of input");
	reject("[1", "byte 3: expected ',' or ']' after array element, found end of input");
	reject("[1,]", "byte 4: expected a JSON value, found ']'");
	reject("[,1]", "byte 2: expected a JSON value, found ','");
	reject("{\"a\":1,}", "byte 8: expected '\"' to start a member name, found '}'");
	reject("{,}", "byte 2: expected '\"' to start a member name, found ','");
	reject("{1:2}", "byte 2: expected '\"' to start a member name, found '1'");
	reject("{'a':1}", "byte 2: expected '\"' to start a member name, found '''");
	reject("{\"a\" 1}", "byte 6: expected ':' after member name, found '1'");
	reject("{\"a\"", "byte 5: expected ':' after member name, found end of input");
	reject("{\"a\":", "byte 6: expected a JSON value, found end of input");
	reject("{\"a\":}", "byte 6: expected a JSON value, found '}'");
	reject("{\"a\":1 \"b\":2}", "byte 8: expected ',' or '}' after object member, found '\"'");
	reject("{\"a\":1]", "byte 7: expected ',' or '}' after object member, found ']'");
	reject("[1 2]", "byte 4: expected ',' or ']' after array element, found '2'");
	reject("[1}", "byte 3: expected ',' or ']' after array element, found '}'");
	reject("1 2", "byte 3: expected the end of input after the JSON value, found '2'");
	reject("{} x", "byte 4: expected the end of input after the JSON value, found 'x'");
	reject("{\"a\":1}}", "byte 8: expected the end of input after the JSON value, found '}'");
	reject("[]]", "byte 3: expected the end of input after the JSON value, found ']'");
	reject("nul", "byte 1: expected a JSON value (true, false or null?), found 'n'");
	reject("tru", "byte 1: expected a JSON value (true, false or null?), found 't'");
	reject("fals", "byte 1: expected a JSON value (true, false or null?), found 'f'");
	reject("trUe", "byte 1: expected a JSON value (true, false or null?), found 't'");
	reject("True", "byte 1: expected a JSON value, found 'T'");
	reject("truex", "byte 5: expected the end of input after the JSON value, found 'x'");
	reject("NaN", "byte 1: expected a JSON value, found 'N'");
	reject("Infinity", "byte 1: expected a JSON value, found 'I'");
	reject("[-Infinity]", "byte 3: expected a digit after '-', found 'I'");
	reject("\xef\xbb\xbf{}", "byte 1: expected a JSON value, found byte 0xef");
	reject_n("[1,\0]", 5, 0, "byte 4: expected a JSON value, found byte 0x00");
	reject("{\"a\":1}\x01",
	       "byte 8: expected the end of input after the JSON value, found byte 0x01");
	reject("[1]\f", "byte 4: expected the end of input after the JSON value, found byte 0x0c");
	/* Offsets are not truncated to a byte. */
	memset(big, ' ', sizeof(big));
	big[350] = 'x';
	reject_n(big, sizeof(big), 0, "byte 351: expected a JSON value, found 'x'");
}

static void test_number_errors(void **state)
{
	(void)state;
	reject("01", "byte 2: leading zeros are not allowed: expected '.', 'e' or the end of the "
	             "number after 0, found '1'");
	reject("[-00]",
	       "byte 4: leading zeros are not allowed: expected '.', 'e' or the end of the "
	       "number after 0, found '0'");
	reject("+1", "byte 1: expected a JSON value, found '+'");
	reject("1.", "byte 3: expected a digit after '.', found end of input");
	reject("[1.]", "byte 4: expected a digit after '.', found ']'");
	reject("1.e5", "byte 3: expected a digit after '.', found 'e'");
	reject(".5", "byte 1: expected a JSON value, found '.'");
	reject("-", "byte 2: expected a digit after '-', found end of input");
	reject("-a", "byte 2: expected a digit after '-', found 'a'");
	reject("- 1", "byte 2: expected a digit after '-', found ' '");
	reject("1e", "byte 3: expected a digit in the exponent, found end of input");
	reject("1e+", "byte 4: expected a digit in the exponent, found end of input");
	reject("1E-x", "byte 4: expected a digit in the exponent, found 'x'");
	reject("1ee5", "byte 3: expected a digit in the exponent, found 'e'");
	reject("0x10", "byte 2: expected the end of input after the JSON value, found 'x'");
	reject("1.5.2", "byte 4: expected the end of input after the JSON value, found '.'");
	reject("[1,-]", "byte 5: expected a digit after '-', found ']'");
	reject("--1", "byte 2: expected a digit after '-', found '-'");
}

static void test_string_errors(void **state)
{
	(void)state;
	reject("\"abc", "byte 5: unterminated string (opened at byte 1), expected '\"'");
	reject("[\"abcdefghijklmnopqrstuvwxyz0123456789",
	       "byte 39: unterminated string (opened at byte 2), expected '\"'");
	reject("\"a\nb\"", "byte 3: unescaped control character 0x0a in string, expected an "
	                   "escape such as \\n or \\u00XX");
	reject("\"0123456789abcdefghij\tk\"", "byte 22: unescaped control character 0x09 in "
	                                      "string, expected an escape such as \\n or \\u00XX");
	reject_n("[\"\0\"]", 5, 0,
	         "byte 3: unescaped control character 0x00 in string, expected an escape such as "
	         "\\n or \\u00XX");
	reject("\"\x1f\"", "byte 2: unescaped control character 0x1f in string, expected an "
	                   "escape such as \\n or \\u00XX");
	reject("\"\\x\"", "byte 3: invalid escape in string: expected one of \" \\ / b f n r t u "
	                  "after '\\', found 'x'");
	reject("\"0123456789abcdefghijkl\\'\"",
	       "byte 25: invalid escape in string: expected one of \" \\ / b f n r t u after "
	       "'\\', found '''");
	reject("\"\\U0041\"", "byte 3: invalid escape in string: expected one of \" \\ / b f n r t "
	                      "u after '\\', found 'U'");
	reject("\"\\", "byte 3: invalid escape in string: expected one of \" \\ / b f n r t u "
	               "after '\\', found end of input");
	reject("\"\\u12G4\"",
	       "byte 6: invalid \\u escape in string: expected 4 hex digits, found 'G'");
	reject("\"\\u12\"",
	       "byte 6: invalid \\u escape in string: expected 4 hex digits, found '\"'");
	reject("\"\\u", "byte 4: invalid \\u escape in string: expected 4 hex digits, found end "
	                "of input");
	reject("{\"a\\q\":1}", "byte 5: invalid escape in string: expected one of \" \\ / b f n r "
	                       "t u after '\\', found 'q'");
	reject("{\"a\nb\":1}", "byte 4: unescaped control character 0x0a in string, expected an "
	                       "escape such as \\n or \\u00XX");
	reject("{\"ab", "byte 5: unterminated string (opened at byte 2), expected '\"'");
}

/* Accepts valid UTF-8 of every length and rejects every class of invalid
 * sequence at the offset of its first byte. */
static void test_utf8(void **state)
{
	struct cm_jdoc d;
	static const char *const good[] = {
	    "\"\xc3\xa9\"",                 /* U+00E9 */
	    "\"\xc2\x80\"",                 /* U+0080, smallest 2-byte */
	    "\"\xdf\xbf\"",                 /* U+07FF */
	    "\"\xe0\xa0\x80\"",             /* U+0800, smallest 3-byte */
	    "\"\xe2\x82\xac\"",             /* U+20AC */
	    "\"\xed\x9f\xbf\"",             /* U+D7FF, just below the surrogates */
	    "\"\xee\x80\x80\"",             /* U+E000, just above them */
	    "\"\xef\xbf\xbf\"",             /* U+FFFF */
	    "\"\xf0\x90\x80\x80\"",         /* U+10000, smallest 4-byte */
	    "\"\xf0\x9f\x98\x80\"",         /* U+1F600 */
	    "\"\xf4\x8f\xbf\xbf\"",         /* U+10FFFF, the largest */
	    "\"\xc3\xa4\xc3\xb6\xc3\xbc\"", /* a run of non-ASCII */
	    /* Multi-byte sequences straddling the 16-byte SIMD blocks. */
	    "\"abcdefghijklmn\xf0\x9f\x98\x80opqrstuvwxyz\xe2\x82\xac\"",
	    "{\"\xc3\xa9t\xc3\xa9\":\"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, "
	    "\xd0\xbc\xd0\xb8\xd1\x80\"}",
	};
	static const struct {
		const char *s;
		const char *msg;
	} bad[] = {
	    {"\"\xc3\x28\"", "byte 2: invalid UTF-8 sequence in string (byte 0xc3)"},
	    {"\"\x80\"", "byte 2: invalid UTF-8 sequence in string (byte 0x80)"},
	    {"\"\xbf\"", "byte 2: invalid UTF-8 sequence in string (byte 0xbf)"},
	    {"\"\xc0\x80\"", "byte 2: invalid UTF-8 sequence in string (byte 0xc0)"},
	    {"\"\xc1\xbf\"", "byte 2: invalid UTF-8 sequence in string (byte 0xc1)"},
	    {"\"\xe0\x80\xaf\"", "byte 2: invalid UTF-8 sequence in string (byte 0xe0)"},
	    {"\"\xe0\x9f\xbf\"", "byte 2: invalid UTF-8 sequence in string (byte 0xe0)"},
	    {"\"\xf0\x80\x80\xaf\"", "byte 2: invalid UTF-8 sequence in string (byte 0xf0)"},
	    {"\"\xf0\x8f\xbf\xbf\"", "byte 2: invalid UTF-8 sequence in string (byte 0xf0)"},
	    {"\"\xed\xa0\x80\"", "byte 2: invalid UTF-8 sequence in string (byte 0xed)"},
	    {"\"\xed\xbf\xbf\"", "byte 2: invalid UTF-8 sequence in string (byte 0xed)"},
	    {"\"\xf4\x90\x80\x80\"", "byte 2: invalid UTF-8 sequence in string (byte 0xf4)"},
	    {"\"\xf5\x80\x80\x80\"", "byte 2: invalid UTF-8 sequence in string (byte 0xf5)"},
	    {"\"\xf8\x88\x80\x80\x80\"", "byte 2: invalid UTF-8 sequence in string (byte 0xf8)"},
	    {"\"\xff\"", "byte 2: invalid UTF-8 sequence in string (byte 0xff)"},
	    {"\"\xe2\x82\"", "byte 2: invalid UTF-8 sequence in string (byte 0xe2)"},
	    {"\"\xe2\x82", "byte 2: invalid UTF-8 sequence in string (byte 0xe2)"},
	    {"\"\xf0\x9f\x98\"", "byte 2: invalid UTF-8 sequence in string (byte 0xf0)"},
	    {"\"\xf0\x9f\x98\x80\x80\"", "byte 6: invalid UTF-8 sequence in string (byte 0x80)"},
	    {"\"\xc3\xa9\xc3\"", "byte 4: invalid UTF-8 sequence in string (byte 0xc3)"},
	    {"\"abcdefghijklmnopqrstu\xc3\xa9v\xe9\"",
	     "byte 26: invalid UTF-8 sequence in string (byte 0xe9)"},
	    {"{\"k\xff\":1}", "byte 4: invalid UTF-8 sequence in string (byte 0xff)"},
	};
	size_t i;

	(void)state;
	cm_jdoc_init(&d, 0);
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		parse_ok(&d, good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		reject(bad[i].s, bad[i].msg);
	/* A high byte outside a string is not a value. */
	reject("\xc3\xa9", "byte 1: expected a JSON value, found byte 0xc3");
	cm_jdoc_release(&d);
}

/* Puts every special byte at every offset of a string and of the input, so
 * that each position relative to the 16-byte blocks and to the end of the
 * input is scanned, in an exactly sized heap buffer that ASan guards. */
static void test_string_positions(void **state)
{
	static const struct {
		const char *ins;
		const char *dec; /* decoded, or NULL when the insert is an error */
		const char *err; /* the error after "byte N: " */
	} ins[] = {
	    {"", "", NULL},
	    {"\\n", "\n", NULL},
	    {"\\u00e9", "\xc3\xa9", NULL},
	    {"\xc3\xa9", "\xc3\xa9", NULL},
	    {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80", NULL},
	    {"\x01", NULL, "unescaped control character 0x01"},
	    {"\xc3", NULL, "invalid UTF-8 sequence"},
	    {"\\q", NULL, "invalid escape"},
	};
	struct cm_jdoc d;
	struct cm_buf scratch = CM_BUF_INIT;
	struct cm_err err;
	size_t k, t, i;

	(void)state;
	cm_jdoc_init(&d, 0);
	for (i = 0; i < sizeof(ins) / sizeof(ins[0]); i++) {
		for (k = 0; k < 40; k++) {
			for (t = 0; t < 20; t++) {
				size_t il = strlen(ins[i].ins), n = 1 + k + il + 1 + t, dl;
				char *s = malloc(n), want[64];
				const char *got;
				char prefix[32];

				assert_non_null(s);
				s[0] = '"';
				memset(s + 1, 'a', k);
				memcpy(s + 1 + k, ins[i].ins, il);
				s[1 + k + il] = '"';
				memset(s + 2 + k + il, ' ', t);
				if (!ins[i].dec) {
					assert_int_equal(cm_json_parse(&d, s, n, &err), -1);
					snprintf(prefix, sizeof(prefix),
					         "byte %zu: ", k + 2 + (ins[i].ins[0] == '\\'));
					if (strncmp(err.msg, prefix, strlen(prefix)) != 0 ||
					    !strstr(err.msg, ins[i].err))
						fail_msg("k=%zu t=%zu: %s", k, t, err.msg);
				} else {
					parse_ok_n(&d, s, n);
					dl = strlen(ins[i].dec);
					memset(want, 'a', k);
					memcpy(want + k, ins[i].dec, dl);
					got = cm_json_str(&d, 0, &scratch, &n);
					assert_non_null(got);
					assert_int_equal(n, k + dl);
					assert_memory_equal(got, want, n);
					n = 1 + k + il;
					assert_int_equal(cm_json_parse(&d, s, n, &err), -1);
					snprintf(prefix, sizeof(prefix), "byte %zu: unterminated",
					         n + 1);
					if (strncmp(err.msg, prefix, strlen(prefix)) != 0)
						fail_msg("k=%zu: %s", k, err.msg);
				}
				free(s);
			}
		}
	}
	cm_buf_release(&scratch);
	cm_jdoc_release(&d);
}

/* Builds depth nested arrays (or objects) into a fresh string. */
static char *nest(unsigned depth, int obj)
{
	size_t unit = obj ? 5 : 1, n = (size_t)depth * (unit + 1), i;
	char *s = malloc(n + 2);

	assert_non_null(s);
	for (i = 0; i < depth; i++)
		memcpy(s + i * unit, obj ? "{\"a\":" : "[", unit);
	s[depth * unit] = obj ? '1' : ' ';
	for (i = 0; i < depth; i++)
		s[depth * unit + 1 + i] = obj ? '}' : ']';
	s[n + 1] = 0;
	return s;
}

static void test_depth(void **state)
{
	struct cm_jdoc d;
	struct cm_buf out = CM_BUF_INIT;
	struct cm_err err;
	char *s;

	(void)state;
	cm_jdoc_init(&d, 0);
	assert_int_equal(d.max_depth, 64);
	s = nest(64, 0);
	parse_ok(&d, s);
	assert_int_equal(d.ntok, 64);
	free(s);
	s = nest(65, 0);
	reject_n(s, strlen(s), 0, "byte 65: nesting deeper than 64 levels (max_depth)");
	free(s);
	s = nest(64, 1);
	parse_ok(&d, s);
	free(s);
	s = nest(65, 1);
	reject_n(s, strlen(s), 0, "byte 321: nesting deeper than 64 levels (max_depth)");
	free(s);
	cm_jdoc_release(&d);

	/* A small explicit limit, mixing arrays and objects. */
	reject_n("[{\"a\":[[]]}]", 12, 3, "byte 8: nesting deeper than 3 levels (max_depth)");
	cm_jdoc_init(&d, 3);
	parse_ok(&d, "[{\"a\":[]},{\"b\":[1]},[[]]]");
	cm_jdoc_release(&d);

	/* Very deep input fails fast and cannot exhaust the C stack. */
	s = nest(1000000, 0);
	reject_n(s, strlen(s), 0, "byte 65: nesting deeper than 64 levels (max_depth)");

	/* With a high limit, a million levels parse, compare and write without
	 * recursion. */
	cm_jdoc_init(&d, 2000000);
	parse_ok(&d, s);
	assert_int_equal(d.ntok, 1000000);
	assert_true(cm_json_equal(&d, 0, &d, 0));
	assert_int_equal(cm_json_write(&d, 0, &out), 0);
	assert_int_equal(out.len, 2000000);
	assert_int_equal(cm_json_parse(&d, out.data, out.len, &err), 0);
	cm_jdoc_release(&d);
	cm_buf_release(&out);
	free(s);
}

static void test_too_large(void **state)
{
	struct cm_jdoc d;
	struct cm_err err;

	(void)state;
	cm_jdoc_init(&d, 0);
	/* Rejected on its length alone, before a byte is read. */
	assert_int_equal(cm_json_parse(&d, "1", (size_t)UINT32_MAX + 1, &err), -1);
	assert_string_equal(err.msg, "input of 4294967296 bytes is too large (the limit is "
	                             "4294967295 bytes)");
	assert_int_equal(d.ntok, 0);
	cm_jdoc_release(&d);
}

static void test_max_tokens(void **state)
{
	struct cm_jdoc d;
	struct cm_err err;

	(void)state;
	cm_jdoc_init(&d, 0);
	d.max_tokens = 3;
	parse_ok(&d, "[1,2]");
	parse_ok(&d, "{\"a\":1}");
	assert_int_equal(cm_json_parse(&d, "[1,2,3]", 7, &err), -1);
	assert_string_equal(err.msg, "byte 6: document has more than 3 tokens (max_tokens)");
	assert_int_equal(d.ntok, 0);
	assert_int_equal(cm_json_parse(&d, "{\"a\":1,\"b\":2}", 13, &err), -1);
	assert_string_equal(err.msg, "byte 8: document has more than 3 tokens (max_tokens)");
	d.max_tokens = 1;
	parse_ok(&d, "\"only\"");
	assert_int_equal(cm_json_parse(&d, "[0]", 3, &err), -1);
	assert_string_equal(err.msg, "byte 2: document has more than 1 tokens (max_tokens)");
	cm_jdoc_release(&d);
}

/* The token array grows geometrically and is kept for later parses. */
static void test_reuse(void **state)
{
	struct cm_jdoc d;
	struct cm_err err;
	char *s = malloc(20002);
	uint32_t cap, i;

	(void)state;
	assert_non_null(s);
	s[0] = '[';
	for (i = 0; i < 10000; i++) {
		s[1 + 2 * i] = '7';
		s[2 + 2 * i] = ',';
	}
	s[20000] = ']';
	s[20001] = 0;
	cm_jdoc_init(&d, 0);
	parse_ok(&d, s);
	assert_int_equal(d.ntok, 10001);
	assert_int_equal(d.tok[0].count, 10000);
	assert_int_equal(cm_json_at(&d, 0, 9999), 10000);
	assert_int_equal(cm_json_at(&d, 0, 10000), CM_JNONE);
	cap = d.cap;
	assert_true(cap >= 10001);
	parse_ok(&d, "[1]");
	assert_int_equal(d.ntok, 2);
	assert_int_equal(d.cap, cap);
	/* A failed parse leaves the document empty but keeps its array. */
	assert_int_equal(cm_json_parse(&d, "[1,", 3, &err), -1);
	assert_int_equal(d.ntok, 0);
	assert_int_equal(d.cap, cap);
	assert_int_equal(cm_json_at(&d, 0, 0), CM_JNONE);
	cm_jdoc_release(&d);
	assert_null(d.tok);
	free(s);
}

/* Decodes s (a JSON string literal) and compares with want[0..n). */
static void check_str(const char *s, const char *want, size_t n)
{
	struct cm_jdoc d;
	struct cm_buf scratch = CM_BUF_INIT;
	const char *got;
	size_t len = 99;

	cm_jdoc_init(&d, 0);
	parse_ok(&d, s);
	assert_int_equal(d.tok[0].type, CM_JSTR);
	got = cm_json_str(&d, 0, &scratch, &len);
	assert_non_null(got);
	if (len != n || memcmp(got, want, n) != 0)
		fail_msg("%s decoded to %zu bytes '%.*s'", s, len, (int)len, got);
	assert_true(cm_json_str_eq(&d, 0, want, n));
	assert_false(cm_json_str_eq(&d, 0, want, n + 1));
	if (n)
		assert_false(cm_json_str_eq(&d, 0, want, n - 1));
	if (!d.tok[0].esc) {
		assert_ptr_equal(got, s + 1);
		assert_null(scratch.data);
	} else {
		assert_ptr_equal(got, scratch.data);
		assert_int_equal(scratch.len, n);
		assert_int_equal(got[n], 0);
	}
	cm_buf_release(&scratch);
	cm_jdoc_release(&d);
}

static void test_escapes(void **state)
{
	(void)state;
	check_str("\"plain\"", "plain", 5);
	check_str("\"\"", "", 0);
	check_str("\"\\\"\"", "\"", 1);
	check_str("\"\\\\\"", "\\", 1);
	check_str("\"\\/\"", "/", 1);
	check_str("\"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t", 5);
	check_str("\"a\\tb\\nc\"", "a\tb\nc", 5);
	check_str("\"\\u0041\\u00e9\\u00E9\"", "A\xc3\xa9\xc3\xa9", 5);
	check_str("\"\\u0000\"", "\0", 1);
	check_str("\"\\u007f\\u0080\\u07ff\\u0800\"", "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80", 8);
	check_str("\"\\u20ac\\uFFFF\"", "\xe2\x82\xac\xef\xbf\xbf", 6);
	/* Surrogate pairs combine; lone halves become U+FFFD. */
	check_str("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4);
	check_str("\"\\uD83D\\uDE00!\"", "\xf0\x9f\x98\x80!", 5);
	check_str("\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf", 4);
	check_str("\"\\ud800\"", "\xef\xbf\xbd", 3);
	check_str("\"\\udc00\"", "\xef\xbf\xbd", 3);
	check_str("\"\\ud800x\"", "\xef\xbf\xbdx", 4);
	check_str("\"\\ud800\\u0041\"",
	          "\xef\xbf\xbd"
	          "A",
	          4);
	check_str("\"\\ud800\\ud800\\udc00\"", "\xef\xbf\xbd\xf0\x90\x80\x80", 7);
	check_str("\"\\udc00\\ud800\"", "\xef\xbf\xbd\xef\xbf\xbd", 6);
	check_str("\"\\ud800\\n\"", "\xef\xbf\xbd\n", 4);
	check_str("\"\\udfff\"", "\xef\xbf\xbd", 3);
	check_str("\"\\udbff\"", "\xef\xbf\xbd", 3);
	check_str("\"\\ud800\\ue000\"", "\xef\xbf\xbd\xee\x80\x80", 6);
	check_str("\"\\ud800\\udbff\"", "\xef\xbf\xbd\xef\xbf\xbd", 6);
	check_str("\"\\ud7ff\\udc00\"", "\xed\x9f\xbf\xef\xbf\xbd", 6);
	/* Escapes after a long plain run and next to raw UTF-8. */
	check_str("\"0123456789abcdefghij\\\"k\xc3\xa9\\u00e9\"",
	          "0123456789abcdefghij\"k\xc3\xa9\xc3\xa9", 26);
}

static void test_str_misuse(void **state)
{
	struct cm_jdoc d;
	struct cm_buf scratch;
	size_t len = 7;

	(void)state;
	cm_buf_init(&scratch, 4);
	cm_jdoc_init(&d, 0);
	parse_ok(&d, "[1,\"\\u00e9\\u00e9\\u00e9\"]");
	assert_null(cm_json_str(&d, 1, &scratch, &len)); /* a number */
	assert_int_equal(len, 0);
	assert_false(cm_json_str_eq(&d, 1, "1", 1));
	assert_null(cm_json_str(&d, 99, &scratch, &len));
	/* Scratch capped below what decoding needs. */
	assert_null(cm_json_str(&d, 2, &scratch, &len));
	cm_buf_release(&scratch);
	cm_jdoc_release(&d);
}

/* Parses s and returns its value as a double. */
static double num(const char *s)
{
	struct cm_jdoc d;
	double v;

	cm_jdoc_init(&d, 0);
	parse_ok(&d, s);
	assert_int_equal(d.tok[0].type, CM_JNUM);
	v = cm_json_num(&d, 0);
	cm_jdoc_release(&d);
	return v;
}

/* Asserts that s converts to exactly want (bit for bit, so -0 differs). */
static void num_is(const char *s, double want)
{
	double got = num(s);

	if (memcmp(&got, &want, sizeof(got)) != 0)
		fail_msg("%.40s -> %.17g, want %.17g", s, got, want);
}

static void test_numbers(void **state)
{
	char *s;
	size_t i;

	(void)state;
	num_is("0", 0.0);
	num_is("-0", -0.0);
	num_is("-0.0e5", -0.0);
	num_is("0e99999999999", 0.0);
	num_is("1", 1.0);
	num_is("-1", -1.0);
	num_is("100", 100.0);
	num_is("100.0", 100.0);
	num_is("1E2", 100.0);
	num_is("1e+2", 100.0);
	num_is("10000e-2", 100.0);
	num_is("120.5", 120.5);
	num_is("0.1", 0.1);
	num_is("1e-2", 0.01);
	num_is("1.5e-5", 1.5e-5);
	num_is("-2.5e3", -2500.0);
	num_is("3.141592653589793", 3.141592653589793);
	num_is("1e22", 1e22);
	num_is("1e23", 1e23);
	num_is("9007199254740992", 9007199254740992.0);
	num_is("9007199254740993", 9007199254740992.0); /* ties to even */
	num_is("9007199254740995", 9007199254740996.0);
	/* Just past the exact fast path: one rounding only. */
	num_is("9007199254740993e1", 90071992547409930.0);
	num_is("9007199254740993e-1", 900719925474099.3);
	num_is("4503599627370497.5", 4503599627370497.5);
	num_is("18446744073709551615", 18446744073709551615.0);
	num_is("123456789012345678901234567890", 123456789012345678901234567890.0);
	num_is("0.000000000000000000000000000001", 1e-30);
	num_is("1.7976931348623157e308", 1.7976931348623157e308);
	num_is("2.2250738585072011e-308", 2.2250738585072011e-308);
	num_is("4.9406564584124654e-324", 4.9406564584124654e-324);
	num_is("1e400", HUGE_VAL);
	num_is("-1e400", -HUGE_VAL);
	num_is("1e99999999999999999999", HUGE_VAL);
	num_is("1e-400", 0.0);
	num_is("-1e-400", -0.0);
	num_is("1e-99999999999999999999", 0.0);
	num_is("1.8e308", HUGE_VAL);

	/* Digits beyond what the exact rewrite keeps still decide rounding:
	 * 2^53 + 1 is halfway, so ties go to even unless a far digit is set. */
	s = malloc(1100);
	assert_non_null(s);
	memcpy(s, "9007199254740993", 16);
	for (i = 16; i < 1016; i++)
		s[i] = '0';
	memcpy(s + 1016, "e-1000", 7);
	num_is(s, 9007199254740992.0);
	memcpy(s + 1016, "1e-1001", 8);
	num_is(s, 9007199254740994.0);
	/* The same with the digits after a decimal point. */
	memcpy(s, "9007199254740993.", 17);
	for (i = 17; i < 1017; i++)
		s[i] = '0';
	memcpy(s + 1017, "1", 2);
	num_is(s, 9007199254740994.0);
	s[1017] = 0;
	num_is(s, 9007199254740992.0);
	/* A thousand-digit integer overflows. */
	memset(s, '9', 1000);
	s[1000] = 0;
	num_is(s, HUGE_VAL);
	free(s);

	/* Not a number token. */
	{
		struct cm_jdoc d;

		cm_jdoc_init(&d, 0);
		parse_ok(&d, "[\"1\"]");
		assert_true(cm_json_num(&d, 1) == 0.0);
		cm_jdoc_release(&d);
	}
}

static void test_get_at_lookup(void **state)
{
	struct cm_jdoc d;
	struct cm_jpath p;
	struct cm_err err;
	const char *s = "{\"user\":{\"name\":\"x\",\"tags\":[\"a\",\"b\",{\"k\":[10,20]}]},"
	                "\"0\":\"zero\",\"list\":[{\"0\":\"objkey\"}],\"e\\u0073c\":5,"
	                "\"a\\u0000b\":6,\"dup\":1,\"dup\":2,\"a.b\":7}";
	uint32_t t, user;
	static const struct {
		const char *path;
		const char *want; /* raw text of the value, NULL: absent */
	} cases[] = {
	    {"user.name", "x"},
	    {"user.tags.0", "a"},
	    {"user.tags.1", "b"},
	    {"user.tags.2.k.1", "20"},
	    {"user.tags.2.k.0", "10"},
	    {"user.tags.2.k.2", NULL},
	    {"user.tags.3", NULL},
	    {"user.tags.01", NULL},
	    {"user.tags.x", NULL},
	    {"user.tags.99999999999999999999", NULL},
	    {"0", "zero"},
	    {"list.0.0", "objkey"},
	    {"esc", "5"},
	    {"dup", "2"},
	    {"user.name.x", NULL},
	    {"missing", NULL},
	    {"user.missing.deeper", NULL},
	    {"a.b", NULL},
	    {"user", "{"},
	};
	size_t i;

	(void)state;
	cm_jdoc_init(&d, 0);
	parse_ok(&d, s);
	user = cm_json_get(&d, 0, "user", 4);
	assert_int_equal(user, 2);
	assert_int_equal(cm_json_get(&d, 0, "use", 3), CM_JNONE);
	assert_int_equal(cm_json_get(&d, 0, "users", 5), CM_JNONE);
	assert_int_equal(cm_json_get(&d, user, "user", 4), CM_JNONE);
	/* Escaped names compare decoded, also with an embedded NUL. */
	t = cm_json_get(&d, 0, "esc", 3);
	assert_int_not_equal(t, CM_JNONE);
	assert_memory_equal(s + d.tok[t].off, "5", 1);
	assert_int_equal(cm_json_get(&d, 0, "e\\u0073c", 8), CM_JNONE);
	t = cm_json_get(&d, 0, "a\0b", 3);
	assert_int_not_equal(t, CM_JNONE);
	assert_memory_equal(s + d.tok[t].off, "6", 1);
	/* The last duplicate wins. */
	t = cm_json_get(&d, 0, "dup", 3);
	assert_memory_equal(s + d.tok[t].off, "2", 1);
	assert_true(cm_json_num(&d, t) == 2.0);
	/* Not an object / not an array / out of range. */
	assert_int_equal(cm_json_get(&d, 1, "x", 1), CM_JNONE);
	assert_int_equal(cm_json_get(&d, 9999, "x", 1), CM_JNONE);
	assert_int_equal(cm_json_at(&d, 0, 0), CM_JNONE);
	t = cm_json_get(&d, user, "tags", 4);
	assert_int_equal(d.tok[t].type, CM_JARR);
	assert_true(cm_json_str_eq(&d, cm_json_at(&d, t, 1), "b", 1));
	assert_int_equal(d.tok[cm_json_at(&d, t, 2)].type, CM_JOBJ);
	assert_int_equal(cm_json_at(&d, t, 3), CM_JNONE);
	assert_int_equal(cm_json_at(&d, t, UINT32_MAX), CM_JNONE);
	assert_int_equal(cm_json_at(&d, 9999, 0), CM_JNONE);

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(cm_jpath_init(&p, cases[i].path, strlen(cases[i].path), &err), 0);
		t = cm_json_lookup(&d, 0, &p);
		if (!cases[i].want) {
			if (t != CM_JNONE)
				fail_msg("%s: found token %u", cases[i].path, t);
		} else {
			if (t == CM_JNONE)
				fail_msg("%s: not found", cases[i].path);
			assert_memory_equal(s + d.tok[t].off, cases[i].want, strlen(cases[i].want));
		}
		cm_jpath_release(&p);
	}
	/* A lookup from a root that is not token 0. */
	assert_int_equal(cm_jpath_init(&p, "tags.2.k", 8, &err), 0);
	t = cm_json_lookup(&d, user, &p);
	assert_int_equal(d.tok[t].type, CM_JARR);
	assert_int_equal(d.tok[t].count, 2);
	cm_jpath_release(&p);
	cm_jdoc_release(&d);
}

static void test_jpath(void **state)
{
	struct cm_jpath p;
	struct cm_err err;
	static const struct {
		const char *seg;
		int64_t index;
	} idx[] = {
	    {"0", 0},
	    {"7", 7},
	    {"12", 12},
	    {"01", -1},
	    {"00", -1},
	    {"1a", -1},
	    {"-1", -1},
	    {"+1", -1},
	    {"9223372036854775807", INT64_MAX},
	    {"9223372036854775808", -1},
	    {"99999999999999999999", -1},
	    {"name", -1},
	};
	size_t i;

	(void)state;
	assert_int_equal(cm_jpath_init(&p, "properties.cart.total", 21, &err), 0);
	assert_int_equal(p.nseg, 3);
	assert_int_equal(p.seg[0].len, 10);
	assert_memory_equal(p.seg[0].name, "properties", 10);
	assert_memory_equal(p.seg[1].name, "cart", 4);
	assert_memory_equal(p.seg[2].name, "total", 5);
	assert_int_equal(p.seg[2].index, -1);
	assert_string_equal(p.text, "properties.cart.total");
	cm_jpath_release(&p);
	assert_null(p.seg);

	assert_int_equal(cm_jpath_init(&p, "x", 1, &err), 0);
	assert_int_equal(p.nseg, 1);
	cm_jpath_release(&p);

	for (i = 0; i < sizeof(idx) / sizeof(idx[0]); i++) {
		assert_int_equal(cm_jpath_init(&p, idx[i].seg, strlen(idx[i].seg), &err), 0);
		assert_int_equal(p.nseg, 1);
		if (p.seg[0].index != idx[i].index)
			fail_msg("%s: index %lld", idx[i].seg, (long long)p.seg[0].index);
		cm_jpath_release(&p);
	}

	assert_int_equal(cm_jpath_init(&p, "", 0, &err), -1);
	assert_string_equal(err.msg, "empty path, expected a dot path such as properties.amount");
	assert_int_equal(cm_jpath_init(&p, "a..b", 4, &err), -1);
	assert_string_equal(err.msg, "path 'a..b': empty segment at byte 3");
	assert_int_equal(cm_jpath_init(&p, ".a", 2, &err), -1);
	assert_string_equal(err.msg, "path '.a': empty segment at byte 1");
	assert_int_equal(cm_jpath_init(&p, "a.", 2, &err), -1);
	assert_string_equal(err.msg, "path 'a.': empty segment at byte 3");
	assert_int_equal(cm_jpath_init(&p, ".", 1, &err), -1);
	assert_null(p.seg);
	assert_null(p.text);
	cm_jpath_release(&p); /* safe after a failed init */
}

/* Parses a and b and returns whether they are JSON-equal, checking that
 * equality is symmetric. */
static int eq(const char *a, const char *b)
{
	struct cm_jdoc da, db;
	int r1, r2;

	cm_jdoc_init(&da, 0);
	cm_jdoc_init(&db, 0);
	parse_ok(&da, a);
	parse_ok(&db, b);
	r1 = cm_json_equal(&da, 0, &db, 0);
	r2 = cm_json_equal(&db, 0, &da, 0);
	if (r1 != r2)
		fail_msg("asymmetric: %s vs %s", a, b);
	assert_true(cm_json_equal(&da, 0, &da, 0));
	cm_jdoc_release(&da);
	cm_jdoc_release(&db);
	return r1;
}

static void test_equal(void **state)
{
	char *x, *y;

	(void)state;
	assert_true(eq("100", "100.0"));
	assert_true(eq("100", "1e2"));
	assert_true(eq("100", "1000e-1"));
	assert_true(eq("-0", "0"));
	assert_true(eq("0.1", "1e-1"));
	assert_false(eq("1", "2"));
	assert_false(eq("1", "-1"));
	assert_false(eq("1", "\"1\""));
	assert_true(eq("true", "true"));
	assert_false(eq("true", "false"));
	assert_false(eq("null", "false"));
	assert_false(eq("null", "0"));
	assert_true(eq("null", " null "));
	assert_true(eq("\"a\"", "\"\\u0061\""));
	assert_true(eq("\"\xc3\xa9\"", "\"\\u00e9\""));
	assert_true(eq("\"\\u00e9\"", "\"\\u00E9\""));
	assert_true(eq("\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\""));
	assert_false(eq("\"a\"", "\"b\""));
	assert_false(eq("\"a\"", "\"ab\""));
	assert_false(eq("\"a\\n\"", "\"a\\t\""));
	assert_false(eq("\"\\u00e9\"", "\"\\u00e8\""));
	assert_true(eq("[]", "[ ]"));
	assert_true(eq("[1,2]", "[1.0, 2e0]"));
	assert_false(eq("[1,2]", "[2,1]"));
	assert_false(eq("[1]", "[1,1]"));
	assert_false(eq("[]", "{}"));
	assert_true(eq("{}", "{ }"));
	assert_true(eq("{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1}"));
	assert_false(eq("{\"a\":1}", "{\"a\":1,\"b\":2}"));
	assert_false(eq("{\"a\":1,\"b\":2}", "{\"a\":1,\"c\":2}"));
	assert_false(eq("{\"a\":1}", "{\"a\":2}"));
	assert_true(eq("{\"\\u0061\":1}", "{\"a\":1.0}"));
	assert_true(eq("{\"\\u0061\":1}", "{\"\\u0061\":1}"));
	assert_false(eq("{\"\\u0061\":1}", "{\"\\u0062\":1}"));
	/* Duplicate names: the last one wins, as cm_json_get sees it. */
	assert_true(eq("{\"a\":1,\"a\":2}", "{\"a\":2}"));
	assert_false(eq("{\"a\":1,\"a\":2}", "{\"a\":1}"));
	assert_true(eq("{\"a\":1,\"b\":3,\"a\":2}", "{\"b\":3,\"a\":2,\"b\":3}"));
	assert_false(eq("{\"a\":1,\"a\":2,\"b\":3}", "{\"a\":2,\"c\":3}"));
	assert_false(eq("{\"a\":1,\"a\":1}", "{\"a\":1,\"b\":1}"));
	assert_true(eq("{\"a\":[1,{\"b\":null,\"c\":[true]}],\"d\":\"x\"}",
	               "{\"d\":\"x\",\"a\":[1.0,{\"c\":[true],\"b\":null}]}"));
	assert_false(eq("{\"a\":[1,{\"b\":null,\"c\":[true]}],\"d\":\"x\"}",
	                "{\"d\":\"x\",\"a\":[1.0,{\"c\":[false],\"b\":null}]}"));
	assert_true(eq("1e400", "2e400")); /* both overflow to infinity */
	/* Deeper than the comparison's on-stack frames. */
	x = nest(60, 1);
	y = nest(60, 1);
	assert_true(eq(x, y));
	y[60 * 5] = '2';
	assert_false(eq(x, y));
	free(x);
	free(y);
	x = nest(60, 0);
	assert_false(eq(x, "[]"));
	free(x);

	/* A huge object against a small one costs their product, not the square
	 * of the huge one: 100,000 duplicates of one name are equal to that one
	 * member, as cm_json_get sees them. */
	{
		static const char *const small[] = {"{\"a\":1}", "{\"a\":2}", "{\"a\":1,\"b\":1}"};
		struct cm_jdoc hd, sd;
		size_t n = 100000, i;
		char *h = malloc(n * 8 + 2);

		assert_non_null(h);
		h[0] = '{';
		for (i = 0; i < n; i++)
			memcpy(h + 1 + i * 8, "\"a\":1.0,", 8);
		h[n * 8] = '}';
		h[n * 8 + 1] = 0;
		cm_jdoc_init(&hd, 0);
		cm_jdoc_init(&sd, 0);
		parse_ok(&hd, h);
		for (i = 0; i < 3; i++) {
			parse_ok(&sd, small[i]);
			assert_int_equal(cm_json_equal(&hd, 0, &sd, 0), i == 0);
			assert_int_equal(cm_json_equal(&sd, 0, &hd, 0), i == 0);
		}
		cm_jdoc_release(&hd);
		cm_jdoc_release(&sd);
		free(h);
	}

	/* Sub-values across documents, and indexes out of range. */
	{
		struct cm_jdoc a, b;

		cm_jdoc_init(&a, 0);
		cm_jdoc_init(&b, 0);
		parse_ok(&a, "{\"k\":[1,\"x\"],\"m\":{\"z\":null}}");
		parse_ok(&b, "[[1,\"x\"],{\"z\":null}]");
		assert_true(cm_json_equal(&a, cm_json_get(&a, 0, "k", 1), &b, 1));
		assert_true(
		    cm_json_equal(&a, cm_json_get(&a, 0, "m", 1), &b, cm_json_at(&b, 0, 1)));
		assert_false(cm_json_equal(&a, 0, &b, 0));
		assert_false(cm_json_equal(&a, 99, &b, 0));
		assert_false(cm_json_equal(&a, 0, &b, CM_JNONE));
		cm_jdoc_release(&a);
		cm_jdoc_release(&b);
	}
}

/* Writes s compactly, checks the text, and checks that it parses back to an
 * equal value whose compact form is the same. */
static void write_is(const char *s, const char *want)
{
	struct cm_jdoc d, r;
	struct cm_buf out = CM_BUF_INIT, again = CM_BUF_INIT;

	cm_jdoc_init(&d, 0);
	cm_jdoc_init(&r, 0);
	parse_ok(&d, s);
	assert_int_equal(cm_json_write(&d, 0, &out), 0);
	assert_string_equal(out.data, want);
	parse_ok_n(&r, out.data, out.len);
	assert_true(cm_json_equal(&d, 0, &r, 0));
	assert_int_equal(r.ntok, d.ntok);
	assert_int_equal(cm_json_write(&r, 0, &again), 0);
	assert_string_equal(again.data, want);
	cm_buf_release(&out);
	cm_buf_release(&again);
	cm_jdoc_release(&d);
	cm_jdoc_release(&r);
}

/* The flags of token t after parsing text (which must parse). */
static unsigned flags_of(const char *text, uint32_t t, uint32_t *doc_flags)
{
	struct cm_jdoc d;
	struct cm_err err;
	unsigned f;

	cm_jdoc_init(&d, 0);
	if (cm_json_parse(&d, text, strlen(text), &err) != 0)
		fail_msg("%s: %s", text, err.msg);
	f = d.tok[t].flags;
	*doc_flags = d.flags;
	cm_jdoc_release(&d);
	return f;
}

static void test_flags(void **state)
{
	static const struct {
		const char *text;
		uint32_t tok;
		unsigned want;
	} cases[] = {
	    {"\"plain\"", 0, 0},
	    {"\"a\\nb\\u00e9\"", 0, 0},
	    {"\"a\\u0000b\"", 0, CM_JF_NUL},
	    {"{\"k\\u0000\":1}", 1, CM_JF_NUL},
	    {"[\"x\",\"\\u0000\"]", 2, CM_JF_NUL},
	    /* surrogates: a pair is fine, anything else is unpaired */
	    {"\"\\ud83d\\ude00\"", 0, 0},
	    {"\"\\uD83D\\uDE00\"", 0, 0},
	    {"\"\\udbff\\udfff\"", 0, 0},
	    {"\"\\ud800\"", 0, CM_JF_SURROGATE},
	    {"\"\\udc00\"", 0, CM_JF_SURROGATE},
	    {"\"\\ud800x\"", 0, CM_JF_SURROGATE},
	    {"\"\\ud800\\u0041\"", 0, CM_JF_SURROGATE},
	    {"\"\\ud800\\ud800\\udc00\"", 0, CM_JF_SURROGATE},
	    {"\"\\udc00\\ud800\"", 0, CM_JF_SURROGATE},
	    {"\"\\ud800\\\\udc00\"", 0, CM_JF_SURROGATE},
	    {"\"\\u0000\\ud800\"", 0, CM_JF_NUL | CM_JF_SURROGATE},
	    /* numbers: a short text with an exponent of up to 4 digits is plain */
	    {"1e400", 0, 0},
	    {"-1.5E-9999", 0, 0},
	    {"1e10000", 0, CM_JF_BIGNUM},
	    {"1e00001", 0, CM_JF_BIGNUM},
	    {"[1,2e+12345]", 2, CM_JF_BIGNUM},
	    {"true", 0, 0},
	};
	uint32_t df;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned f = flags_of(cases[i].text, cases[i].tok, &df);

		if (f != cases[i].want || df != cases[i].want)
			fail_msg("%s: flags %u, document %u, want %u", cases[i].text, f,
			         (unsigned)df, cases[i].want);
	}
	/* the length bound, and that the document is the union of its tokens */
	{
		char big[CM_JNUM_PLAIN_LEN + 8];

		memset(big, '1', sizeof(big));
		big[CM_JNUM_PLAIN_LEN] = 0;
		assert_int_equal(flags_of(big, 0, &df), 0);
		big[CM_JNUM_PLAIN_LEN] = '1';
		big[CM_JNUM_PLAIN_LEN + 1] = 0;
		assert_int_equal(flags_of(big, 0, &df), CM_JF_BIGNUM);
	}
	assert_int_equal(flags_of("{\"a\":\"\\u0000\",\"b\":1e99999}", 0, &df), 0);
	assert_int_equal(df, CM_JF_NUL | CM_JF_BIGNUM);
	/* a later parse into the same document starts afresh */
	{
		struct cm_jdoc d;
		struct cm_err err;

		cm_jdoc_init(&d, 0);
		assert_int_equal(cm_json_parse(&d, "\"\\u0000\"", 8, &err), 0);
		assert_int_equal(d.flags, CM_JF_NUL);
		assert_int_equal(cm_json_parse(&d, "\"x\"", 3, &err), 0);
		assert_int_equal(d.flags, 0);
		assert_int_equal(cm_json_parse(&d, "[\"\\u0000\",", 11, &err), -1);
		assert_int_equal(d.flags, 0);
		cm_jdoc_release(&d);
	}
}

static void test_write(void **state)
{
	struct cm_jdoc d;
	struct cm_buf out = CM_BUF_INIT;

	(void)state;
	write_is(" { \"a\" : [ 1 , 2.50 , \"x y\\n\" ] ,\n\t\"b\" : { } , \"c\":[ ] } ",
	         "{\"a\":[1,2.50,\"x y\\n\"],\"b\":{},\"c\":[]}");
	write_is("{\"event_id\":\"e-1\",\"properties\":{\"amount\":120.5}}",
	         "{\"event_id\":\"e-1\",\"properties\":{\"amount\":120.5}}");
	write_is(" \" spaced \\\" \\u00e9 \" ", "\" spaced \\\" \\u00e9 \"");
	write_is("\t-0.0E+5\n", "-0.0E+5");
	write_is(" true", "true");
	write_is("null ", "null");
	write_is("[ \"a , b\" , { \"k\\\\\" : \" : \" } ]", "[\"a , b\",{\"k\\\\\":\" : \"}]");
	write_is("{\"a\":1,\"a\":2}", "{\"a\":1,\"a\":2}");
	write_is("[\"\xf0\x9f\x98\x80 \xc3\xa9\"]", "[\"\xf0\x9f\x98\x80 \xc3\xa9\"]");

	/* A sub-value, appended after what the buffer holds. */
	cm_jdoc_init(&d, 0);
	parse_ok(&d, "{ \"a\" : [ 1 , { \"b\" : \"c d\" } ] , \"e\" : 2 }");
	assert_int_equal(cm_buf_add(&out, "x=", 2), 0);
	assert_int_equal(cm_json_write(&d, cm_json_get(&d, 0, "a", 1), &out), 0);
	assert_string_equal(out.data, "x=[1,{\"b\":\"c d\"}]");
	assert_int_equal(cm_json_write(&d, cm_json_get(&d, 0, "e", 1), &out), 0);
	assert_string_equal(out.data, "x=[1,{\"b\":\"c d\"}]2");
	assert_int_equal(cm_json_write(&d, 99, &out), -1);
	cm_buf_release(&out);
	/* A capped buffer that cannot take the value. */
	cm_buf_init(&out, 4);
	assert_int_equal(cm_json_write(&d, 0, &out), -1);
	cm_buf_release(&out);
	cm_jdoc_release(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tape),          cmocka_unit_test(test_structure_errors),
	    cmocka_unit_test(test_number_errors), cmocka_unit_test(test_string_errors),
	    cmocka_unit_test(test_utf8),          cmocka_unit_test(test_string_positions),
	    cmocka_unit_test(test_depth),         cmocka_unit_test(test_too_large),
	    cmocka_unit_test(test_max_tokens),    cmocka_unit_test(test_reuse),
	    cmocka_unit_test(test_escapes),       cmocka_unit_test(test_str_misuse),
	    cmocka_unit_test(test_numbers),       cmocka_unit_test(test_get_at_lookup),
	    cmocka_unit_test(test_jpath),         cmocka_unit_test(test_equal),
	    cmocka_unit_test(test_write),         cmocka_unit_test(test_flags),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
