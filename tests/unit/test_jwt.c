/*
 * Unit tests of lib/crypto/jwt.c: RS256 JWT signing and verification. The fixed
 * test key was made with "openssl genpkey -algorithm RSA -pkeyopt
 * rsa_keygen_bits:2048", the expected signature with "printf header.claims
 * | openssl dgst -sha256 -sign key.pem". A test key, never used elsewhere.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/crypto/crypto.h"
#include "tests/support/testkey.h"

/* openssl dgst -sha256 -sign key.pem of "header.claims", base64url. */
static const char OPENSSL_SIG_B64URL[] =
    "NLSxfXhp5U__xyDXylZh3pnUsLTkjffhAXUgMHGhfJiKjLKQBzeEr68fQMIS14DtYkce"
    "d-0SVhXaybabt2PwMkL9tO-m9hn2uEK8L3W5d2KiLLH690C6QWAC6-DqerNsFr4MvDYU"
    "0nPsFG3lPLt-N0dOmKJGmkKJmow7NPuY_BSAfQ9hrKgxn2bLjr5GgU_wQv-aklnUEdHH"
    "3UnXnGRwyIK0gHZcgMTsU4tCw-zMPaFBjf3g5zm8sGXZPxbWZSEBFTwTsCp60cV3cCyl"
    "2X4De5c8GujL4As_Xw8iNnxJCCRt-DbzE_ea85WkiXAOqQt4CmA8IfFFX3_nz8ORW66bKg";

/* base64url of {"alg":"RS256","typ":"JWT"}. */
#define HDR_B64 "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"

static const char CLAIMS
    [] = "{\"iss\":\"sa@p.iam.gserviceaccount.com\","
	 "\"scope\":\"https://www.googleapis.com/auth/admin.reports.audit."
	 "readonly\",\"aud\":\"https://oauth2.googleapis.com/token\","
	 "\"iat\":1700000000,\"exp\":1700003600,\"sub\":\"admin@example.com\"}";

static struct rsa_key *key;

static int
setup(void **state)
{
	char err[256];

	if (crypto_init() != 0)
		return -1;
	return rsa_key_from_pem(testkey_openssl_pem,
	    strlen(testkey_openssl_pem), &key, err, sizeof(err));
}

static int
teardown(void **state)
{
	rsa_key_free(key);
	return 0;
}

/* base64url (no padding) of a string, malloc'd. */
static char *
b64u(const char *s)
{
	char *r = b64_encode(s, strlen(s), true, false);

	assert_non_null(r);
	return r;
}

/* Verify jwt, expecting rc and, on failure, err containing want. */
static void
expect_verify(const char *jwt, int want_rc, const char *want)
{
	char *claims = (char *)1, err[256];
	int   rc;

	err[0] = '\0';
	rc = jwt_verify_rs256(jwt, key, &claims, err, sizeof(err));
	if (rc != want_rc)
		fail_msg("rc %d, want %d (%s)", rc, want_rc, err);
	if (rc == 0) {
		free(claims);
		return;
	}
	assert_null(claims);
	if (want != NULL && strstr(err, want) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", err, want);
}

static void
test_openssl_vector(void **state)
{
	unsigned char *sig;
	size_t	       siglen;
	char	      *b64;

	/* RSASSA-PKCS1-v1_5 is deterministic: the same bytes as openssl. */
	assert_int_equal(
	    rsa_sign_sha256(key, "header.claims", 13, &sig, &siglen), 0);
	b64 = b64_encode(sig, siglen, true, false);
	assert_string_equal(b64, OPENSSL_SIG_B64URL);
	free(b64);
	free(sig);
}

static void
test_sign_stable(void **state)
{
	char  *a, *b, *c64, *claims = NULL, err[256];
	size_t hlen;

	a = jwt_sign_rs256(key, NULL, CLAIMS);
	b = jwt_sign_rs256(key, NULL, CLAIMS);
	assert_non_null(a);
	assert_non_null(b);
	assert_string_equal(a, b);
	hlen = strlen(HDR_B64);
	assert_memory_equal(a, HDR_B64 ".", hlen + 1);
	c64 = b64u(CLAIMS);
	assert_memory_equal(a + hlen + 1, c64, strlen(c64));
	assert_int_equal(a[hlen + 1 + strlen(c64)], '.');
	/* 256 signature bytes: 342 base64url chars, no padding. */
	assert_int_equal(strlen(a), hlen + 1 + strlen(c64) + 1 + 342);
	assert_null(strchr(a, '='));

	assert_int_equal(jwt_verify_rs256(a, key, &claims, err, sizeof(err)),
	    0);
	assert_string_equal(claims, CLAIMS);
	free(claims);
	assert_int_equal(jwt_peek_claims(a, &claims), 0);
	assert_string_equal(claims, CLAIMS);
	free(claims);
	free(c64);
	free(a);
	free(b);
}

static void
test_kid(void **state)
{
	unsigned char *hdr;
	size_t	       hlen;
	char	      *jwt, *claims = NULL, err[256];

	jwt = jwt_sign_rs256(key, "0123abcd\"x", "{}");
	assert_non_null(jwt);
	assert_int_equal(b64_decode(jwt, strchr(jwt, '.') - jwt, &hdr, &hlen),
	    0);
	assert_string_equal((char *)hdr,
	    "{\"alg\":\"RS256\",\"kid\":\"0123abcd\\\"x\",\"typ\":\"JWT\"}");
	assert_int_equal(jwt_verify_rs256(jwt, key, &claims, err, sizeof(err)),
	    0);
	assert_string_equal(claims, "{}");
	free(claims);
	free(hdr);
	free(jwt);
}

static void
test_tamper(void **state)
{
	char  *jwt, *dot, saved;
	size_t i, n;

	jwt = jwt_sign_rs256(key, NULL, CLAIMS);
	assert_non_null(jwt);
	n = strlen(jwt);
	/* One changed character of the claims: bad signature. */
	dot = strchr(jwt, '.');
	saved = dot[5];
	dot[5] = saved == 'A' ? 'B' : 'A';
	expect_verify(jwt, -EBADMSG, "does not verify");
	dot[5] = saved;
	/* One changed byte of the signature, at several places. */
	dot = strrchr(jwt, '.');
	for (i = 1; i < 340; i += 29) {
		char c = dot[i];

		dot[i] = c == 'A' ? 'B' : 'A';
		expect_verify(jwt, -EBADMSG, NULL);
		dot[i] = c;
	}
	expect_verify(jwt, 0, NULL);
	/* A truncated signature. */
	jwt[n - 2] = '\0';
	expect_verify(jwt, -EBADMSG, NULL);
	free(jwt);
}

/* A token with the given header JSON, the claims and a real signature. */
static char *
forge(const char *hdr_json, const char *sig_of)
{
	char  *h = b64u(hdr_json), *c = b64u(CLAIMS), *good, *out;
	size_t n;

	good = jwt_sign_rs256(key, NULL, sig_of);
	assert_non_null(good);
	n = strlen(h) + strlen(c) + strlen(good) + 3;
	assert_non_null(out = malloc(n));
	snprintf(out, n, "%s.%s.%s", h, c, strrchr(good, '.') + 1);
	free(h);
	free(c);
	free(good);
	return out;
}

static void
test_alg(void **state)
{
	/* Headers refused before the signature, and what err[] names. */
	static const struct {
		const char *hdr;
		const char *msg;
	} bad[] = {
		{ "{\"alg\":\"none\",\"typ\":\"JWT\"}", "RS256" },
		{ "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "RS256" },
		{ "{\"alg\":\"rs256\"}", "RS256" },
		{ "{\"typ\":\"JWT\"}", "alg" },
		{ "{\"alg\":[\"RS256\"]}", "alg" },
		{ "[\"RS256\"]", "JSON object" },
		{ "{\"alg\":\"RS256\",\"crit\":[\"exp\"]}", "crit" },
	};
	char  *jwt, *h, *c;
	size_t i;

	/* alg "none" with an empty signature, and with a real one. */
	h = b64u("{\"alg\":\"none\",\"typ\":\"JWT\"}");
	c = b64u(CLAIMS);
	assert_non_null(jwt = malloc(strlen(h) + strlen(c) + 3));
	sprintf(jwt, "%s.%s.", h, c);
	expect_verify(jwt, -EINVAL, NULL);
	free(jwt);
	free(h);
	free(c);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		jwt = forge(bad[i].hdr, CLAIMS);
		expect_verify(jwt, -EINVAL, bad[i].msg);
		free(jwt);
	}
	/* A different but valid RS256 header: signature no longer fits. */
	jwt = forge("{\"alg\":\"RS256\"}", CLAIMS);
	expect_verify(jwt, -EBADMSG, NULL);
	free(jwt);
}

static void
test_malformed(void **state)
{
	static const char *bad[] = {
		"",
		".",
		"..",
		"a.b",
		"a.b.c.d",
		HDR_B64 "..sig",
		HDR_B64 ".e30.",
		".e30.abc",
		HDR_B64 ".e30=.abc",
		HDR_B64 ".e30.ab+c",
		HDR_B64 " .e30.abc",
	};
	char  *claims = (char *)1;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_verify(bad[i], -EINVAL, NULL);
	assert_int_equal(jwt_peek_claims("a.b", &claims), -EINVAL);
	assert_null(claims);
	/* Claims that are not a JSON object, correctly signed. */
	{
		char *jwt = jwt_sign_rs256(key, NULL, "[1,2]");

		assert_non_null(jwt);
		expect_verify(jwt, -EINVAL, "claims");
		free(jwt);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openssl_vector),
		cmocka_unit_test(test_sign_stable),
		cmocka_unit_test(test_kid),
		cmocka_unit_test(test_tamper),
		cmocka_unit_test(test_alg),
		cmocka_unit_test(test_malformed),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
