/*
 * Unit tests of lib/crypto/rsakey.c (RSA keys read and used through
 * OpenSSL) and of the test tree's key helpers: what is accepted, what is
 * refused and with which words, the crafted key of issue 13 (p = 1,
 * q = n) refused without an abort, RSA PKCS#1 v1.5 SHA-256 signatures.
 * The fixed keys were made with
 * "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048" and
 * "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"; SWAPPED_KEY_PEM is the
 * same RSA key rewritten with prime1 < prime2 (coefficient recomputed),
 * checked with "openssl pkey -check". Test keys only, never used elsewhere.
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

static const char EC_KEY_PEM
    [] = "-----BEGIN PRIVATE KEY-----\n"
	 "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgrNCVYkK0avQppsXU\n"
	 "KMcARRbQfbtm9Gaz7maqJnfikUChRANCAATgOOIaQ5LOFcZl7m0YdqxZKOy9mAes\n"
	 "uRUOjroWgpdeUIVJy4DHg3bNo9et5JZaCXVhMMpE5BNjX3eNlVkfwCqH\n"
	 "-----END PRIVATE KEY-----\n";
static const char SWAPPED_KEY_PEM
    [] = "-----BEGIN PRIVATE KEY-----\n"
	 "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCZ1cF2+9Jnz+Cl\n"
	 "SoqLFb1Ffuh50s84LlIEfNn1E3rcVgwDodTIfWuD0GAUV3Y1xH1MC/96uAYIXNoF\n"
	 "a/revk94VqFy9p432J+QAs051ToHwOcXM2XXNLbZILBQf6+V0FgTurmNzqFae/g7\n"
	 "djNrlCSAILaBVUVFFJpkGneGrK77vwtWfAthzHNP9RWNTWPgUvKdFVEqA88s8dht\n"
	 "nsBdcmxqCKv1k4uZ+nuw/txNpyFgU+rPc0wpkuedmnxriSZiUFRRLr5QK1BT0BFK\n"
	 "ChbxkFbxRTf1al+E+BARcanLRAr/IQ5GQt+Oq0ezUFAfPpJnAiSkTIW0Q9DEEGf0\n"
	 "DaIv9jQbAgMBAAECggEAScze/eZsd+ol8xYyJex9e0gZXkxQpjqulUGSTL0WLXtI\n"
	 "UzvBeZeVy0xds5SL/NpxY9jDrUt4dW2aGIzHczGorWoeFSmUGOWfEvcNHqgZKVwV\n"
	 "YS+CtX4wFDVW8J95DG3Bu2FSoGHXTbH4kgowO/V7l05aT+ypCS2Lred2nRDd955e\n"
	 "a7ooPlAppux5LGhzWgLLpp5svKbSs5o7bo2SXNUSywxrMeSkpunf6UO02F4QtADQ\n"
	 "Ch2Fc8XvsGTGISXxdk+MeWIm5GtGLIpy8VWlzAsbJEUwux9AY0C6e36ugP76iOCG\n"
	 "IUNBKFc8D5ACzNTkC8Yzyfup4jfRs1aURgQbAq9bZQKBgQDB4kkTqTH8ANg8xKAd\n"
	 "Z/fTTDBo95yjEr2K1ti9UqtpPgYU501kWHPeks/AziL6xC6rHdhrE8K5boni0Rd8\n"
	 "SwkODaChE1lkx71YDOd1BinrbMgnHfsBRt969IXeHSQ4BSQdECKR1MnQjbIjnlyt\n"
	 "xth4bMbfSowOZPLtomgQzYZGBwKBgQDLHsoEU2LsVqnojXPN6iPlOqP165OAIMrB\n"
	 "5W/UaFFAnxBmz0k4/2nnurUx6dcF8kA5Xy70qkpFefmSvnYOa0h5IC8FeC0t0Ldh\n"
	 "93XYrOVg2Anoh7za2Fons8Pixkho1Gswlc7cOpmkdfp02YGjnJDfYtTpuQfq3Lu3\n"
	 "Mc2OCiq8TQKBgFfE/Jft7DbMmxdHW8R0IHiC8RdToJEiFrQXdp6eIgLOlSo5W4ul\n"
	 "jy6e/3Wk26jxzr6gECzJEUmohLstNJiLz1mRSbohbEJ3OXv2u4D6fVeaMzGiHNMD\n"
	 "JoAe2csnHhJOIX8Wos+pqILE4nPFaOcyMSSy+YRz1ttdT6vL7ZhNsg9ZAoGAGLq/\n"
	 "57TrR1Dp0Mlf/wLxqdfw3GD5DVFwvhib++VTdyWmjo3QIWNfVnox00jgB/ZNgW6o\n"
	 "Pdt5vWmzS/1qTCkdormbX/QYtApEOWYyb9Xk+1xyIGBeStqqZ0kIoVR4vmKWRk0G\n"
	 "6WMtD4vZmV5d3TiTns7ekzIW165WIGCs4Q011MUCgYAkXpour7I4IQZhRNiXojuN\n"
	 "BpyJ3sE3q/RBkpH7ezJvVl/NZaylKPDRvKiqCY2xZoopQ0HM4gmebkjo5UR+X4c9\n"
	 "zfsnKNu8r5Re2re803Ly1c7s9UT2KMYkoIPlGt5qkfecVq+0IMDYZqg+8cqf+kpE\n"
	 "sqGbASmSCRnMvCiX1J7F1Q==\n"
	 "-----END PRIVATE KEY-----\n";

/* The key generated once for the group (slow-ish). */
static struct rsa_key *genkey;

static int
setup(void **state)
{
	if (crypto_init() != 0)
		return -1;
	return rsa_key_generate(2048, &genkey);
}

static int
teardown(void **state)
{
	rsa_key_free(genkey);
	return 0;
}

/* Parse pem, expecting failure with a message containing want. */
static void
expect_reject(const char *pem, size_t len, const char *want)
{
	struct rsa_key *key = (struct rsa_key *)1;
	char		err[512];

	err[0] = '\0';
	assert_int_equal(rsa_key_from_pem(pem, len, &key, err, sizeof(err)),
	    -EINVAL);
	assert_null(key);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", err, want);
}

static void
expect_reject_str(const char *pem, const char *want)
{
	expect_reject(pem, strlen(pem), want);
}

/* Parse der, expecting failure with a message containing want. */
static void
expect_reject_der(const unsigned char *der, size_t len, const char *want)
{
	struct rsa_key *key = (struct rsa_key *)1;
	char		err[512];

	err[0] = '\0';
	assert_int_equal(rsa_key_from_der(der, len, &key, err, sizeof(err)),
	    -EINVAL);
	assert_null(key);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", err, want);
}

/* The DER inside a PEM private key (malloc'd). */
static unsigned char *
pem_to_der(const char *pem, size_t *derlen)
{
	const char    *b = strchr(pem, '\n') + 1;
	const char    *e = strstr(pem, "-----END");
	char	      *b64 = malloc(e - b + 1);
	unsigned char *der;
	size_t	       n = 0;

	assert_non_null(b64);
	for (; b < e; b++)
		if (*b != '\n')
			b64[n++] = *b;
	assert_int_equal(b64_decode(b64, n, &der, derlen), 0);
	free(b64);
	return der;
}

/* PEM private key armour around der (malloc'd, 64-column lines). */
static char *
der_to_pem(const unsigned char *der, size_t len)
{
	char  *b64 = b64_encode(der, len, false, true), *pem;
	size_t n, i, o = 0, blen;

	assert_non_null(b64);
	blen = strlen(b64);
	n = blen + blen / 64 + 128;
	assert_non_null(pem = malloc(n));
	o = (size_t)snprintf(pem, n, "-----BEGIN PRIVATE KEY-----\n");
	for (i = 0; i < blen; i += 64)
		o += (size_t)snprintf(pem + o, n - o, "%.64s\n", b64 + i);
	snprintf(pem + o, n - o, "-----END PRIVATE KEY-----\n");
	free(b64);
	return pem;
}

static void
test_generate_roundtrip(void **state)
{
	struct rsa_key *key = NULL;
	unsigned char  *sig;
	size_t		siglen;
	char	       *pem, *pem2, err[256];

	assert_int_equal(rsa_key_bits(genkey), 2048);
	pem = rsa_key_to_pem(genkey);
	assert_non_null(pem);
	assert_true(strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
	assert_int_equal(strchr(pem + 28, '\n') - (pem + 28), 64);
	assert_int_equal(
	    rsa_key_from_pem(pem, strlen(pem), &key, err, sizeof(err)), 0);
	assert_int_equal(rsa_key_bits(key), 2048);
	pem2 = rsa_key_to_pem(key);
	assert_non_null(pem2);
	assert_string_equal(pem, pem2);

	assert_int_equal(rsa_sign_sha256(genkey, "hello", 5, &sig, &siglen), 0);
	assert_int_equal(siglen, 256);
	assert_int_equal(rsa_verify_sha256(key, "hello", 5, sig, siglen), 0);
	assert_int_equal(rsa_verify_sha256(key, "hellO", 5, sig, siglen),
	    -EBADMSG);
	sig[100] ^= 4;
	assert_int_equal(rsa_verify_sha256(key, "hello", 5, sig, siglen),
	    -EBADMSG);
	assert_int_equal(rsa_verify_sha256(key, "hello", 5, sig, siglen - 1),
	    -EBADMSG);
	free(sig);
	crypto_free_secret(pem, strlen(pem));
	crypto_free_secret(pem2, strlen(pem2));
	rsa_key_free(key);
}

static void
test_public_pem(void **state)
{
	char *pub = rsa_key_public_pem(genkey);

	assert_non_null(pub);
	assert_true(strncmp(pub,
			"-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG"
			"9w0BAQEFAAOCAQ8AMIIBCgKCAQEA",
			71) == 0);
	assert_non_null(strstr(pub, "IDAQAB\n-----END PUBLIC KEY-----\n"));
	free(pub);
}

static void
test_openssl_key(void **state)
{
	struct rsa_key *a = NULL, *b = NULL;
	unsigned char  *sa, *sb;
	size_t		la, lb;
	char	       *pem, err[256];

	assert_int_equal(rsa_key_from_pem(testkey_openssl_pem,
			     strlen(testkey_openssl_pem), &a, err, sizeof(err)),
	    0);
	pem = rsa_key_to_pem(a);
	assert_string_equal(pem, testkey_openssl_pem);
	free(pem);
	/* The same key with prime1 < prime2 signs identically. */
	assert_int_equal(rsa_key_from_pem(SWAPPED_KEY_PEM,
			     strlen(SWAPPED_KEY_PEM), &b, err, sizeof(err)),
	    0);
	assert_int_equal(rsa_sign_sha256(a, "x", 1, &sa, &la), 0);
	assert_int_equal(rsa_sign_sha256(b, "x", 1, &sb, &lb), 0);
	assert_int_equal(la, lb);
	assert_memory_equal(sa, sb, la);
	free(sa);
	free(sb);
	rsa_key_free(a);
	rsa_key_free(b);
}

static void
test_crlf_and_whitespace(void **state)
{
	struct rsa_key *key = NULL;
	char		buf[4096], err[256];
	size_t		i, n = 0;

	buf[n++] = '\n';
	for (i = 0; testkey_openssl_pem[i] != '\0'; i++) {
		if (testkey_openssl_pem[i] == '\n')
			buf[n++] = '\r';
		buf[n++] = testkey_openssl_pem[i];
	}
	buf[n++] = ' ';
	buf[n] = '\0';
	assert_int_equal(rsa_key_from_pem(buf, n, &key, err, sizeof(err)), 0);
	rsa_key_free(key);
	/* No newline at the end, as some JSON strings have it. */
	n = strlen(testkey_openssl_pem) - 1;
	assert_int_equal(
	    rsa_key_from_pem(testkey_openssl_pem, n, &key, err, sizeof(err)),
	    0);
	rsa_key_free(key);
}

static void
test_wrong_type(void **state)
{
	char  *pem;
	size_t n;

	expect_reject(EC_KEY_PEM, strlen(EC_KEY_PEM), "not an RSA key");
	/* PKCS#1 armour: says what it is and how to convert. */
	n = strlen(testkey_openssl_pem) + 16;
	assert_non_null(pem = malloc(n));
	snprintf(pem, n, "-----BEGIN RSA PRIVATE KEY-----\n%s",
	    strchr(testkey_openssl_pem, '\n') + 1);
	memcpy(strstr(pem, "-----END "), "-----END RSA PRIVATE KEY-----\n", 31);
	expect_reject(pem, strlen(pem), "openssl pkcs8 -topk8 -nocrypt");
	expect_reject(pem, strlen(pem), "PKCS#1");
	free(pem);
	expect_reject_str("-----BEGIN PUBLIC KEY-----\nMIIB\n"
			  "-----END PUBLIC KEY-----\n",
	    "expected -----BEGIN PRIVATE "
	    "KEY-----");
	expect_reject_str("-----BEGIN EC PRIVATE KEY-----\nMIIB\n"
			  "-----END EC PRIVATE KEY-----\n",
	    "not an RSA key");
	expect_reject_str("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n"
			  "-----END ENCRYPTED PRIVATE KEY-----\n",
	    "encrypted");
}

static void
test_garbage(void **state)
{
	char buf[8192];

	expect_reject_str("", "empty");
	expect_reject_str("hello world", "not a PEM private key");
	expect_reject_str("{\"type\":\"service_account\"}",
	    "expected "
	    "-----BEGIN PRIVATE KEY-----");
	expect_reject_str("-----BEGIN PRIVATE KEY-----\nMII*\n"
			  "-----END PRIVATE KEY-----\n",
	    "malformed");
	expect_reject_str("-----BEGIN PRIVATE KEY-----\\nMIIB\\n"
			  "-----END PRIVATE KEY-----\\n",
	    "literal");
	expect_reject_str("-----BEGIN PRIVATE KEY-----\nAAAA\n"
			  "-----END PRIVATE KEY-----\n",
	    "malformed");
	expect_reject_str("-----BEGIN PRIVATE KEY-----\n"
			  "-----END PRIVATE KEY-----\n",
	    "malformed");
	expect_reject("-----BEGIN PRIVATE KEY-----\n\0", 29, "NUL");
	/* Two keys in one string. */
	snprintf(buf, sizeof(buf), "%s%s", testkey_openssl_pem,
	    testkey_openssl_pem);
	expect_reject(buf, strlen(buf), "follows the key");
}

static void
test_truncated(void **state)
{
	unsigned char *der;
	size_t	       derlen, cut;
	char	      *pem;

	expect_reject(testkey_openssl_pem, 600, "malformed");
	der = pem_to_der(testkey_openssl_pem, &derlen);
	/* Every truncation of the DER is refused, as PEM and as DER. */
	for (cut = 0; cut < derlen; cut += 37) {
		pem = der_to_pem(der, cut);
		expect_reject(pem, strlen(pem), "malformed");
		free(pem);
		if (cut > 0)
			expect_reject_der(der, cut, "malformed");
	}
	expect_reject_der(der, derlen - 1, "malformed");
	crypto_free_secret(der, derlen);
}

static void
test_der(void **state)
{
	struct rsa_key *key = NULL;
	unsigned char  *der, *big, *gen;
	size_t		derlen, genlen;
	char	       *pem, err[256];

	der = pem_to_der(testkey_openssl_pem, &derlen);
	assert_int_equal(rsa_key_from_der(der, derlen, &key, err, sizeof(err)),
	    0);
	assert_int_equal(rsa_key_bits(key), 2048);
	rsa_key_free(key);

	/* The test tree's DER writer gives what the reader takes. */
	assert_int_equal(rsa_key_to_der(genkey, &gen, &genlen), 0);
	assert_int_equal(rsa_key_from_der(gen, genlen, &key, err, sizeof(err)),
	    0);
	rsa_key_free(key);
	crypto_free_secret(gen, genlen);

	/* Trailing bytes after the outer SEQUENCE. */
	assert_non_null(big = malloc(derlen + 2));
	memcpy(big, der, derlen);
	big[derlen] = 0;
	big[derlen + 1] = 0;
	expect_reject_der(big, derlen + 2, "trailing bytes");
	free(big);
	expect_reject_der(der, 0, "empty");

	/* Indefinite length. */
	der[1] = 0x80;
	pem = der_to_pem(der, derlen);
	expect_reject(pem, strlen(pem), "malformed");
	free(pem);
	der[1] = 0x82;

	/*
	 * A flipped bit in d: the CRT values still sign, so the cheap
	 * policy takes it; the library's full check (the API's) refuses it.
	 */
	der[400] ^= 0x10;
	assert_int_equal(rsa_key_from_der(der, derlen, &key, err, sizeof(err)),
	    0);
	assert_int_equal(rsa_key_check(key, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "inconsistent RSA key"));
	rsa_key_free(key);
	der[400] ^= 0x10;
	assert_int_equal(rsa_key_from_der(der, derlen, &key, err, sizeof(err)),
	    0);
	assert_int_equal(rsa_key_check(key, err, sizeof(err)), 0);
	rsa_key_free(key);

	/* The original still parses (the test mutated it correctly). */
	pem = der_to_pem(der, derlen);
	assert_int_equal(
	    rsa_key_from_pem(pem, strlen(pem), &key, err, sizeof(err)), 0);
	rsa_key_free(key);
	free(pem);
	crypto_free_secret(der, derlen);
}

/*
 * Issue 13 row 1: n real, p = 1, q = n aborted the daemon in libgcrypt
 * (division by zero). Now the library's check refuses it, as PEM and DER,
 * as often as it is sent.
 */
static void
test_crafted_key(void **state)
{
	unsigned char *der;
	size_t	       derlen;
	char	      *pem;
	int	       i;

	pem = testkey_crafted_pem(genkey);
	assert_non_null(pem);
	assert_true(strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
	for (i = 0; i < 6; i++)
		expect_reject(pem, strlen(pem), "inconsistent RSA key");
	der = pem_to_der(pem, &derlen);
	expect_reject_der(der, derlen, "inconsistent RSA key");
	free(der);
	free(pem);
}

static void
test_mutations(void **state)
{
	unsigned char  *der, r[3];
	struct rsa_key *key;
	size_t		derlen, i, pos;
	char	       *pem, err[256];
	int		rc;

	/* Bounded random single-byte corruption: no crash, no bad accept. */
	der = pem_to_der(testkey_openssl_pem, &derlen);
	for (i = 0; i < 300; i++) {
		crypto_random(r, sizeof(r));
		pos = ((size_t)r[0] << 8 | r[1]) % derlen;
		if (r[2] == 0)
			r[2] = 1;
		der[pos] ^= r[2];
		pem = der_to_pem(der, derlen);
		key = NULL;
		rc = rsa_key_from_pem(pem, strlen(pem), &key, err, sizeof(err));
		if (rc != 0 && rc != -EINVAL)
			fail_msg("rc %d at %zu: %s", rc, pos, err);
		rsa_key_free(key);
		rc = rsa_key_from_der(der, derlen, &key, err, sizeof(err));
		if (rc != 0 && rc != -EINVAL)
			fail_msg("rc %d at %zu: %s", rc, pos, err);
		rsa_key_free(key);
		free(pem);
		der[pos] ^= r[2];
	}
	crypto_free_secret(der, derlen);
}

static void
test_size_limits(void **state)
{
	struct rsa_key *small = NULL;
	char	       *pem;

	assert_int_equal(rsa_key_generate(1024, &small), -EINVAL);
	assert_int_equal(rsa_key_generate(8192, &small), -EINVAL);
	assert_int_equal(rsa_key_generate_unchecked(1024, &small), 0);
	assert_int_equal(rsa_key_bits(small), 1024);
	pem = rsa_key_to_pem(small);
	assert_non_null(pem);
	expect_reject(pem, strlen(pem), "1024 bits");
	free(pem);
	rsa_key_free(small);
}

static void
test_wrong_key_verify(void **state)
{
	struct rsa_key *other = NULL;
	unsigned char  *sig;
	size_t		siglen;
	char		err[256];

	assert_int_equal(rsa_key_from_pem(testkey_openssl_pem,
			     strlen(testkey_openssl_pem), &other, err,
			     sizeof(err)),
	    0);
	assert_int_equal(rsa_sign_sha256(genkey, "m", 1, &sig, &siglen), 0);
	assert_int_equal(rsa_verify_sha256(other, "m", 1, sig, siglen),
	    -EBADMSG);
	free(sig);
	rsa_key_free(other);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generate_roundtrip),
		cmocka_unit_test(test_public_pem),
		cmocka_unit_test(test_openssl_key),
		cmocka_unit_test(test_crlf_and_whitespace),
		cmocka_unit_test(test_wrong_type),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_der),
		cmocka_unit_test(test_crafted_key),
		cmocka_unit_test(test_mutations),
		cmocka_unit_test(test_size_limits),
		cmocka_unit_test(test_wrong_key_verify),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
