/* Tests for jwtx.c: tokens are crafted here byte by byte (base64url and
 * HMAC from libsodium, HS384 from libjwt's encoder), so that every attack
 * that libjwt 1.10 alone would let through is tried against cm_jwt_verify. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jwt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "jwtx.h"

static const char KEY[] = "0123456789abcdef0123456789abcdef-test";
#define KLEN (sizeof(KEY) - 1)
#define NOW  1800000000LL

enum mac { MAC_HS256, MAC_HS512, MAC_NONE, MAC_GARBAGE };

/* Appends the base64url (no padding) form of p[0..n). */
static void b64(struct cm_buf *b, const void *p, size_t n)
{
	char tmp[16384];

	sodium_bin2base64(tmp, sizeof(tmp), p, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	assert_int_equal(cm_buf_adds(b, tmp), 0);
}

/* A token with the given header and payload texts, signed as mac says with
 * key k. The caller releases the buffer. */
static char *craft(const char *header, const char *payload, enum mac mac, const char *k)
{
	struct cm_buf b = CM_BUF_INIT;
	unsigned char sig[64];

	b64(&b, header, strlen(header));
	cm_buf_addc(&b, '.');
	b64(&b, payload, strlen(payload));
	switch (mac) {
	case MAC_HS256: {
		crypto_auth_hmacsha256_state st;

		crypto_auth_hmacsha256_init(&st, (const unsigned char *)k, strlen(k));
		crypto_auth_hmacsha256_update(&st, (const unsigned char *)b.data, b.len);
		crypto_auth_hmacsha256_final(&st, sig);
		cm_buf_addc(&b, '.');
		b64(&b, sig, 32);
		break;
	}
	case MAC_HS512: {
		crypto_auth_hmacsha512_state st;

		crypto_auth_hmacsha512_init(&st, (const unsigned char *)k, strlen(k));
		crypto_auth_hmacsha512_update(&st, (const unsigned char *)b.data, b.len);
		crypto_auth_hmacsha512_final(&st, sig);
		cm_buf_addc(&b, '.');
		b64(&b, sig, 64);
		break;
	}
	case MAC_NONE:
		cm_buf_addc(&b, '.');
		break;
	case MAC_GARBAGE:
		cm_buf_adds(&b, ".c2lnbmF0dXJl");
		break;
	}
	return b.data;
}

/* Verifies tok with KEY at NOW; returns the status and keeps the message. */
static int verify(const char *tok, struct cm_jwt_claims *c, struct cm_err *err)
{
	return cm_jwt_verify(KEY, KLEN, tok, strlen(tok), NOW, c, err);
}

#define GOOD_PAYLOAD "{\"sub\":\"alice\",\"role\":\"admin\",\"iat\":1799999000,\"exp\":1800000600}"
#define HS256        "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* Refuses tok, with a message containing want. */
static void refused(const char *tok, const char *want)
{
	struct cm_jwt_claims c;
	struct cm_err err = {"", 0};

	assert_int_equal(verify(tok, &c, &err), -1);
	if (!strstr(err.msg, want))
		fail_msg("message '%s' lacks '%s'", err.msg, want);
}

/* Crafts and refuses in one go. */
static void refused_craft(const char *h, const char *p, enum mac m, const char *k, const char *want)
{
	char *t = craft(h, p, m, k);

	refused(t, want);
	free(t);
}

static void test_roundtrip(void **state)
{
	struct cm_buf b = CM_BUF_INIT;
	struct cm_jwt_claims c;
	struct cm_err err;
	char *t;

	assert_int_equal(cm_jwt_sign(KEY, KLEN, "alice", "admin", NOW, NOW + 1800, &b, &err), 0);
	assert_int_equal(verify(b.data, &c, &err), 0);
	assert_string_equal(c.sub, "alice");
	assert_string_equal(c.role, "admin");
	assert_int_equal(c.iat, NOW);
	assert_int_equal(c.exp, NOW + 1800);
	cm_buf_release(&b);

	/* A token crafted independently of libjwt's encoder verifies too. */
	t = craft(HS256, GOOD_PAYLOAD, MAC_HS256, KEY);
	assert_int_equal(verify(t, &c, &err), 0);
	assert_string_equal(c.sub, "alice");
	free(t);
	/* nbf in the past and a multi-byte subject are fine. */
	t = craft(HS256,
	          "{\"sub\":\"j\\u00fcrgen\",\"role\":\"user\",\"exp\":1800000001,\"nbf\":1}",
	          MAC_HS256, KEY);
	assert_int_equal(verify(t, &c, &err), 0);
	assert_string_equal(c.sub, "j\xc3\xbcrgen");
	assert_int_equal(c.iat, 0);
	free(t);
}

static void test_signature(void **state)
{
	char *t = craft(HS256, GOOD_PAYLOAD, MAC_HS256, "another-key-another-key-another-key");

	refused(t, "bad signature");
	free(t);
	refused_craft(HS256, GOOD_PAYLOAD, MAC_GARBAGE, KEY, "bad signature");
	/* One payload byte changed after signing. */
	t = craft(HS256, GOOD_PAYLOAD, MAC_HS256, KEY);
	{
		char *dot = strchr(t, '.');
		dot[3] = dot[3] == 'A' ? 'B' : 'A';
	}
	refused(t, "bad signature");
	free(t);
}

static void test_alg_none(void **state)
{
	refused_craft("{\"alg\":\"none\"}", GOOD_PAYLOAD, MAC_NONE, KEY, "malformed");
	refused_craft("{\"alg\":\"none\",\"typ\":\"JWT\"}", GOOD_PAYLOAD, MAC_GARBAGE, KEY, "");
	refused_craft("{\"alg\":\"None\"}", GOOD_PAYLOAD, MAC_GARBAGE, KEY, "");
	refused_craft("{\"typ\":\"JWT\"}", GOOD_PAYLOAD, MAC_HS256, KEY, "");
}

static void test_other_algorithms(void **state)
{
	jwt_t *j = NULL;
	char *t;

	/* HS384 signed with the very secret: libjwt accepts it; we must not. */
	assert_int_equal(jwt_new(&j), 0);
	jwt_add_grant(j, "sub", "alice");
	jwt_add_grant(j, "role", "admin");
	jwt_add_grant_int(j, "exp", (long)NOW + 600);
	assert_int_equal(jwt_set_alg(j, JWT_ALG_HS384, (const unsigned char *)KEY, (int)KLEN), 0);
	t = jwt_encode_str(j);
	assert_non_null(t);
	{
		jwt_t *d = NULL;
		/* (the premise: libjwt on its own lets it through) */
		assert_int_equal(jwt_decode(&d, t, (const unsigned char *)KEY, (int)KLEN), 0);
		jwt_free(d);
	}
	refused(t, "not HS256");
	free(t);
	jwt_free(j);
	refused_craft("{\"alg\":\"HS512\"}", GOOD_PAYLOAD, MAC_HS512, KEY, "not HS256");
	refused_craft("{\"alg\":\"RS256\"}", GOOD_PAYLOAD, MAC_HS256, KEY, "");
	refused_craft("{\"alg\":\"HS512\"}", GOOD_PAYLOAD, MAC_HS256, KEY, "");
}

static void test_exp(void **state)
{
	refused_craft(HS256, "{\"sub\":\"a\",\"role\":\"user\"}", MAC_HS256, KEY, "no exp");
	refused_craft(HS256, "{\"sub\":\"a\",\"role\":\"user\",\"exp\":null}", MAC_HS256, KEY, "");
	refused_craft(HS256, "{\"sub\":\"a\",\"role\":\"user\",\"exp\":\"1900000000\"}", MAC_HS256,
	              KEY, "not an integer");
	refused_craft(HS256, "{\"sub\":\"a\",\"role\":\"user\",\"exp\":1900000000.5}", MAC_HS256,
	              KEY, "not an integer");
	refused_craft(HS256, "{\"sub\":\"a\",\"role\":\"user\",\"exp\":1.9e9}", MAC_HS256, KEY,
	              "not an integer");
	refused_craft(HS256, "{\"sub\":\"a\",\"role\":\"user\",\"exp\":true}", MAC_HS256, KEY,
	              "not an integer");
	refused_craft(HS256, "{\"sub\":\"a\",\"role\":\"user\",\"exp\":[1900000000]}", MAC_HS256,
	              KEY, "not an integer");
	/* (jansson refuses to decode an integer this large at all) */
	refused_craft(HS256, "{\"sub\":\"a\",\"role\":\"user\",\"exp\":99999999999999999999999}",
	              MAC_HS256, KEY, "");
	refused_craft(HS256, "{\"sub\":\"a\",\"role\":\"user\",\"exp\":1799999999}", MAC_HS256, KEY,
	              "expired");
	refused_craft(HS256, "{\"sub\":\"a\",\"role\":\"user\",\"exp\":1800000000}", MAC_HS256, KEY,
	              "expired");
	refused_craft(HS256, "{\"sub\":\"a\",\"role\":\"user\",\"exp\":-5}", MAC_HS256, KEY,
	              "expired");
}

static void test_nbf_iat(void **state)
{
	refused_craft(HS256,
	              "{\"sub\":\"a\",\"role\":\"user\",\"exp\":1900000000,\"nbf\":1800000001}",
	              MAC_HS256, KEY, "nbf");
	refused_craft(HS256, "{\"sub\":\"a\",\"role\":\"user\",\"exp\":1900000000,\"nbf\":\"0\"}",
	              MAC_HS256, KEY, "nbf is not an integer");
	refused_craft(HS256, "{\"sub\":\"a\",\"role\":\"user\",\"exp\":1900000000,\"iat\":1.5}",
	              MAC_HS256, KEY, "iat is not an integer");
}

static void test_subject_role(void **state)
{
	char payload[512];
	char longsub[CM_JWT_SUB_MAX + 2];

	refused_craft(HS256, "{\"role\":\"user\",\"exp\":1900000000}", MAC_HS256, KEY, "no sub");
	refused_craft(HS256, "{\"sub\":7,\"role\":\"user\",\"exp\":1900000000}", MAC_HS256, KEY,
	              "no sub");
	refused_craft(HS256, "{\"sub\":\"\",\"role\":\"user\",\"exp\":1900000000}", MAC_HS256, KEY,
	              "no sub");
	memset(longsub, 'x', sizeof(longsub) - 1);
	longsub[sizeof(longsub) - 1] = 0;
	snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"role\":\"user\",\"exp\":1900000000}",
	         longsub);
	refused_craft(HS256, payload, MAC_HS256, KEY, "no sub");
	refused_craft(HS256, "{\"sub\":\"a\",\"exp\":1900000000}", MAC_HS256, KEY, "no role");
	refused_craft(HS256, "{\"sub\":\"a\",\"role\":\"administrator-of-everything\",\"exp\":1}",
	              MAC_HS256, KEY, "");
}

static void test_malformed(void **state)
{
	static const char *const bad[] = {
	    "",
	    "abc",
	    "a.b",
	    "a.b.c.d",
	    ".b.c",
	    "a..c",
	    "a.b.",
	    "eyJ hbGciOiJIUzI1NiJ9.e30.c2ln",
	    "eyJhbGciOiJIUzI1NiJ9=.e30.c2ln",
	    "eyJhbGciOiJIUzI1NiJ9.e30.c2ln\n",
	    "bm90IGpzb24.bm90IGpzb24.c2ln", /* "not json" */
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		refused(bad[i], "");
	/* A JSON array as header or payload. */
	refused_craft("[]", GOOD_PAYLOAD, MAC_HS256, KEY, "");
	refused_craft(HS256, "[1]", MAC_HS256, KEY, "");
}

static void test_length_cap(void **state)
{
	struct cm_jwt_claims c;
	struct cm_err err;
	size_t n = 5 * 1024 * 1024, i;
	char *big = malloc(n + 1);
	char *t;

	/* A multi-megabyte token of the right shape: refused, not decoded. */
	assert_non_null(big);
	for (i = 0; i < n; i++)
		big[i] = 'A';
	big[100] = '.';
	big[200] = '.';
	big[n] = 0;
	refused(big, "longer than 8192");
	free(big);
	/* Just over the cap, with a valid signature: still refused. */
	{
		char payload[9000];
		int len =
		    snprintf(payload, sizeof(payload),
		             "{\"sub\":\"a\",\"role\":\"user\",\"exp\":1900000000,\"pad\":\"");

		memset(payload + len, 'p', 6200);
		strcpy(payload + len + 6200, "\"}");
		t = craft(HS256, payload, MAC_HS256, KEY);
		assert_true(strlen(t) > CM_JWT_MAX_LEN);
		refused(t, "longer than");
		free(t);
		payload[len + 5000] = 0;
		strcat(payload, "\"}");
		t = craft(HS256, payload, MAC_HS256, KEY);
		assert_true(strlen(t) <= CM_JWT_MAX_LEN);
		assert_int_equal(verify(t, &c, &err), 0);
		free(t);
	}
}

static void test_keys(void **state)
{
	struct cm_buf b = CM_BUF_INIT;
	struct cm_jwt_claims c;
	struct cm_err err;
	char *t = craft(HS256, GOOD_PAYLOAD, MAC_HS256, "");

	/* Without a key libjwt would accept anything: refused before it. */
	assert_int_equal(cm_jwt_verify(NULL, 0, t, strlen(t), NOW, &c, &err), -1);
	assert_int_equal(cm_jwt_verify("", 0, t, strlen(t), NOW, &c, &err), -1);
	assert_int_equal(cm_jwt_verify("short", 5, t, strlen(t), NOW, &c, &err), -1);
	assert_non_null(strstr(err.msg, "no signing key"));
	free(t);
	assert_int_equal(cm_jwt_sign("short", 5, "a", "user", 0, 1, &b, &err), -1);
	assert_int_equal(b.len, 0);
	cm_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),    cmocka_unit_test(test_signature),
	    cmocka_unit_test(test_alg_none),     cmocka_unit_test(test_other_algorithms),
	    cmocka_unit_test(test_exp),          cmocka_unit_test(test_nbf_iat),
	    cmocka_unit_test(test_subject_role), cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_length_cap),   cmocka_unit_test(test_keys),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
