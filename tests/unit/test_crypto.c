/*
 * Unit tests of lib/crypto/crypto.c: base64, constant-time comparison, hashes,
 * HMAC, AES-256-GCM sealing and the master key file.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/crypto/crypto.h"

static char tmpdir[] = "/tmp/ar-test-crypto-XXXXXX";

/* Encode then decode s, checking the encoding against want. */
static void
b64_check(const char *s, bool url, bool pad, const char *want)
{
	unsigned char *dec = NULL;
	size_t	       declen = 0;
	char	      *enc;

	enc = b64_encode(s, strlen(s), url, pad);
	assert_non_null(enc);
	assert_string_equal(enc, want);
	assert_int_equal(b64_decode(enc, strlen(enc), &dec, &declen), 0);
	assert_int_equal(declen, strlen(s));
	assert_memory_equal(dec, s, declen);
	assert_int_equal(dec[declen], '\0');
	free(dec);
	free(enc);
}

static void
test_b64_vectors(void **state)
{
	/* RFC 4648 section 10. */
	b64_check("", false, true, "");
	b64_check("f", false, true, "Zg==");
	b64_check("fo", false, true, "Zm8=");
	b64_check("foo", false, true, "Zm9v");
	b64_check("foob", false, true, "Zm9vYg==");
	b64_check("fooba", false, true, "Zm9vYmE=");
	b64_check("foobar", false, true, "Zm9vYmFy");
	b64_check("f", true, false, "Zg");
	b64_check("fo", true, false, "Zm8");
	/* The alphabets differ on 62 and 63. */
	b64_check("\xfb\xff\xbf", false, true, "+/+/");
	b64_check("\xfb\xff\xbf", true, false, "-_-_");
}

static void
test_b64_roundtrip(void **state)
{
	unsigned char data[70], *dec;
	size_t	      len, declen;
	char	     *enc;
	int	      mode;

	crypto_random(data, sizeof(data));
	for (len = 0; len <= sizeof(data); len++) {
		for (mode = 0; mode < 4; mode++) {
			enc = b64_encode(data, len, mode & 1, mode & 2);
			assert_non_null(enc);
			assert_int_equal(
			    b64_decode(enc, strlen(enc), &dec, &declen), 0);
			assert_int_equal(declen, len);
			assert_memory_equal(dec, data, len);
			free(dec);
			free(enc);
		}
	}
}

static void
test_b64_rejects(void **state)
{
	static const char *bad[] = {
		"A",
		"Zg=",
		"Zg===",
		"Z===",
		"=Zg=",
		"Zm9v\n",
		" Zm9v",
		"Zm 9v",
		"Zm9v!",
		"Zh==",
		"Zm9=",
		"Zg==Zg==",
		"Zm8=Zm8",
		"Zm9vY",
		"\xc3\xa9\xc3\xa9",
	};
	unsigned char *dec = (unsigned char *)"x";
	size_t	       i, declen = 7;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(
		    b64_decode(bad[i], strlen(bad[i]), &dec, &declen), -EINVAL);
		assert_null(dec);
		assert_int_equal(declen, 0);
	}
	/* An embedded NUL is not base64 either. */
	assert_int_equal(b64_decode("Zm\0v", 4, &dec, &declen), -EINVAL);
}

static void
test_ct_equal(void **state)
{
	assert_true(crypto_ct_equal("abc", 3, "abc", 3));
	assert_false(crypto_ct_equal("abc", 3, "abd", 3));
	assert_false(crypto_ct_equal("abc", 3, "abcd", 4));
	assert_false(crypto_ct_equal("xbc", 3, "abc", 3));
	assert_true(crypto_ct_equal("", 0, "", 0));
}

static void
test_sha256_hmac(void **state)
{
	static const char *jefe_mac =
	    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
	char	hex[65];
	uint8_t mac[32];
	size_t	i;

	assert_int_equal(crypto_init(), 0);
	assert_int_equal(crypto_init(), 0);
	crypto_sha256_hex("abc", 3, hex);
	assert_string_equal(hex,
	    "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad");
	/* RFC 4231 test case 2. */
	crypto_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	assert_string_equal(hex, jefe_mac);
}

static void
test_aead(void **state)
{
	static const char pt[] = "-----BEGIN PRIVATE KEY-----secret";
	uint8_t		  key[CRYPTO_KEY_LEN], key2[CRYPTO_KEY_LEN];
	uint8_t		  n1[CRYPTO_NONCE_LEN], n2[CRYPTO_NONCE_LEN];
	unsigned char	 *c1, *c2, *out;
	size_t		  c1len, c2len, outlen;

	crypto_random(key, sizeof(key));
	memcpy(key2, key, sizeof(key));
	key2[0] ^= 1;
	assert_int_equal(
	    aead_seal(key, "source:a", 8, pt, sizeof(pt), n1, &c1, &c1len), 0);
	assert_int_equal(c1len, sizeof(pt) + CRYPTO_TAG_LEN);
	assert_true(memmem(c1, c1len, "PRIVATE", 7) == NULL);
	assert_int_equal(
	    aead_seal(key, "source:a", 8, pt, sizeof(pt), n2, &c2, &c2len), 0);
	/* Fresh nonce each time, hence different ciphertexts. */
	assert_memory_not_equal(n1, n2, CRYPTO_NONCE_LEN);
	assert_memory_not_equal(c1, c2, c1len);

	assert_int_equal(
	    aead_open(key, "source:a", 8, n1, c1, c1len, &out, &outlen), 0);
	assert_int_equal(outlen, sizeof(pt));
	assert_memory_equal(out, pt, outlen);
	crypto_free_secret(out, outlen + 1);

	/* Wrong AAD, key, nonce; tampered tag and body; short input. */
	assert_int_equal(
	    aead_open(key, "source:b", 8, n1, c1, c1len, &out, &outlen),
	    -EBADMSG);
	assert_null(out);
	assert_int_equal(
	    aead_open(key2, "source:a", 8, n1, c1, c1len, &out, &outlen),
	    -EBADMSG);
	assert_int_equal(
	    aead_open(key, "source:a", 8, n2, c1, c1len, &out, &outlen),
	    -EBADMSG);
	c1[c1len - 1] ^= 0x80;
	assert_int_equal(
	    aead_open(key, "source:a", 8, n1, c1, c1len, &out, &outlen),
	    -EBADMSG);
	c1[c1len - 1] ^= 0x80;
	c1[3] ^= 0x01;
	assert_int_equal(
	    aead_open(key, "source:a", 8, n1, c1, c1len, &out, &outlen),
	    -EBADMSG);
	assert_int_equal(
	    aead_open(key, "source:a", 8, n1, c1, 10, &out, &outlen), -EBADMSG);
	free(c1);
	free(c2);

	/* Empty plaintext and no AAD. */
	assert_int_equal(aead_seal(key, NULL, 0, "", 0, n1, &c1, &c1len), 0);
	assert_int_equal(c1len, CRYPTO_TAG_LEN);
	assert_int_equal(aead_open(key, NULL, 0, n1, c1, c1len, &out, &outlen),
	    0);
	assert_int_equal(outlen, 0);
	crypto_free_secret(out, 1);
	free(c1);
}

/* Write len bytes to tmpdir/name with mode; returns the path (static). */
static const char *
keyfile_write(const char *name, const void *data, size_t len, mode_t mode)
{
	static char path[256];
	int	    fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static void
test_master_key(void **state)
{
	uint8_t	    raw[CRYPTO_KEY_LEN], key[CRYPTO_KEY_LEN];
	char	    keyid[CRYPTO_KEYID_LEN + 1], hex[65], err[256];
	char	   *b64, *text;
	const char *path;
	size_t	    i;

	for (i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)(i * 7 + 1);
	crypto_sha256_hex(raw, sizeof(raw), hex);

	path = keyfile_write("raw.key", raw, sizeof(raw), 0600);
	memset(key, 0, sizeof(key));
	assert_int_equal(
	    crypto_master_key_load(path, key, keyid, err, sizeof(err)), 0);
	assert_memory_equal(key, raw, sizeof(raw));
	assert_int_equal(strlen(keyid), CRYPTO_KEYID_LEN);
	assert_memory_equal(keyid, hex, CRYPTO_KEYID_LEN);

	/* base64 with a trailing newline, as "openssl rand -base64 32". */
	b64 = b64_encode(raw, sizeof(raw), false, true);
	assert_non_null(b64);
	assert_non_null(text = malloc(strlen(b64) + 2));
	snprintf(text, strlen(b64) + 2, "%s\n", b64);
	path = keyfile_write("b64.key", text, strlen(text), 0640);
	memset(key, 0, sizeof(key));
	assert_int_equal(
	    crypto_master_key_load(path, key, keyid, err, sizeof(err)), 0);
	assert_memory_equal(key, raw, sizeof(raw));
	assert_memory_equal(keyid, hex, CRYPTO_KEYID_LEN);

	/* Readable by others: refused, saying the mode and the fix. */
	path = keyfile_write("open.key", text, strlen(text), 0644);
	assert_int_equal(
	    crypto_master_key_load(path, key, keyid, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "0644"));
	assert_non_null(strstr(err, "chmod 0640"));
	assert_null(strstr(err, b64));
	free(text);
	free(b64);

	/* Wrong lengths, raw and base64. */
	path = keyfile_write("short.key", raw, 31, 0600);
	assert_int_equal(
	    crypto_master_key_load(path, key, keyid, err, sizeof(err)),
	    -EINVAL);
	b64 = b64_encode(raw, 20, false, true);
	path = keyfile_write("short64.key", b64, strlen(b64), 0600);
	assert_int_equal(
	    crypto_master_key_load(path, key, keyid, err, sizeof(err)),
	    -EINVAL);
	free(b64);
	path = keyfile_write("empty.key", "", 0, 0600);
	assert_int_equal(
	    crypto_master_key_load(path, key, keyid, err, sizeof(err)),
	    -EINVAL);

	/* Missing file. */
	assert_int_equal(crypto_master_key_load("/nonexistent/ar.key", key,
			     keyid, err, sizeof(err)),
	    -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/ar.key"));
	/* A directory. */
	assert_int_equal(
	    crypto_master_key_load(tmpdir, key, keyid, err, sizeof(err)),
	    -EINVAL);
}

static void
test_free_secret(void **state)
{
	char *p = strdup("secret");

	assert_non_null(p);
	crypto_free_secret(p, 7);
	crypto_free_secret(NULL, 0);
}

/* Make the temporary directory for key files. */
static int
setup(void **state)
{
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return crypto_init();
}

/* Remove the temporary directory and what the tests left in it. */
static int
teardown(void **state)
{
	static const char *names[] = { "raw.key", "b64.key", "open.key",
		"short.key", "short64.key", "empty.key" };
	char		   path[256];
	size_t		   i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	rmdir(tmpdir);
	return 0;
}

/*
 * Issue 13 row 10: the AAD names the source, the field and the version;
 * blobs of the first format (AAD = source id) still open, flagged.
 */
static void
test_creds_aad(void **state)
{
	uint8_t	       key[CRYPTO_KEY_LEN], nonce[CRYPTO_NONCE_LEN];
	unsigned char *ct, *pt;
	size_t	       ctlen, ptlen;
	bool	       legacy;
	const char    *id = "0b3c1d9e-8f7a-4c2b-9d1e-123456789abc";

	crypto_random(key, sizeof(key));
	assert_int_equal(creds_seal(key, id, "credentials", 3, "secret", 6,
			     nonce, &ct, &ctlen),
	    0);
	assert_int_equal(creds_open(key, id, "credentials", 3, nonce, ct, ctlen,
			     &pt, &ptlen, &legacy),
	    0);
	assert_false(legacy);
	assert_memory_equal(pt, "secret", 6);
	crypto_free_secret(pt, ptlen + 1);
	/* Another field, an older version, another source: refused. */
	assert_int_equal(creds_open(key, id, "webhookSecret", 3, nonce, ct,
			     ctlen, &pt, &ptlen, &legacy),
	    -EBADMSG);
	assert_int_equal(creds_open(key, id, "credentials", 2, nonce, ct, ctlen,
			     &pt, &ptlen, &legacy),
	    -EBADMSG);
	assert_int_equal(creds_open(key,
			     "0b3c1d9e-8f7a-4c2b-9d1e-"
			     "123456789abd",
			     "credentials", 3, nonce, ct, ctlen, &pt, &ptlen,
			     &legacy),
	    -EBADMSG);
	free(ct);
	/* A blob of the first format opens, flagged legacy. */
	assert_int_equal(
	    aead_seal(key, id, strlen(id), "old", 3, nonce, &ct, &ctlen), 0);
	assert_int_equal(creds_open(key, id, "credentials", 1, nonce, ct, ctlen,
			     &pt, &ptlen, &legacy),
	    0);
	assert_true(legacy);
	assert_memory_equal(pt, "old", 3);
	crypto_free_secret(pt, ptlen + 1);
	assert_int_equal(creds_open(key, "other", "credentials", 1, nonce, ct,
			     ctlen, &pt, &ptlen, &legacy),
	    -EBADMSG);
	free(ct);
}

/*
 * The binding apid uses: credentials at credentialsVersion, the webhook
 * secret at webhookSecretVersion, the previous one at the version before
 * (its blob moves as it is). No blob opens in another's place.
 */
static void
test_creds_fields(void **state)
{
	uint8_t	       key[CRYPTO_KEY_LEN], n[3][CRYPTO_NONCE_LEN];
	unsigned char *ct[3], *pt;
	size_t	       ctlen[3], ptlen;
	bool	       legacy;
	const char    *id = "6f1c0a52-0d3e-4c55-8a1b-9e7f00c0ffee";
	static const struct {
		const char *field;
		int64_t	    version;
	} b[3] = {
		{ "credentials", 2 },	/* after one PUT */
		{ "webhookSecret", 2 }, /* after one rotation */
		{ "webhookSecret", 1 }, /* previousWebhookSecret */
	};
	int i, j;

	crypto_random(key, sizeof(key));
	for (i = 0; i < 3; i++)
		assert_int_equal(creds_seal(key, id, b[i].field, b[i].version,
				     "x", 1, n[i], &ct[i], &ctlen[i]),
		    0);
	for (i = 0; i < 3; i++)
		for (j = 0; j < 3; j++) {
			int rc = creds_open(key, id, b[j].field, b[j].version,
			    n[i], ct[i], ctlen[i], &pt, &ptlen, &legacy);

			if (i == j) {
				assert_int_equal(rc, 0);
				assert_false(legacy);
				crypto_free_secret(pt, ptlen + 1);
			} else
				assert_int_equal(rc, -EBADMSG);
		}
	/* Rolled back or forward: refused. */
	assert_int_equal(creds_open(key, id, "credentials", 1, n[0], ct[0],
			     ctlen[0], &pt, &ptlen, &legacy),
	    -EBADMSG);
	assert_int_equal(creds_open(key, id, "webhookSecret", 3, n[1], ct[1],
			     ctlen[1], &pt, &ptlen, &legacy),
	    -EBADMSG);
	for (i = 0; i < 3; i++)
		free(ct[i]);
	/* A legacy blob opens for any field and version, flagged. */
	assert_int_equal(aead_seal(key, id, strlen(id), "whsec_x", 7, n[0],
			     &ct[0], &ctlen[0]),
	    0);
	assert_int_equal(creds_open(key, id, "webhookSecret", 7, n[0], ct[0],
			     ctlen[0], &pt, &ptlen, &legacy),
	    0);
	assert_true(legacy);
	assert_memory_equal(pt, "whsec_x", 7);
	crypto_free_secret(pt, ptlen + 1);
	free(ct[0]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_creds_aad),
		cmocka_unit_test(test_creds_fields),
		cmocka_unit_test(test_b64_vectors),
		cmocka_unit_test(test_b64_roundtrip),
		cmocka_unit_test(test_b64_rejects),
		cmocka_unit_test(test_ct_equal),
		cmocka_unit_test(test_sha256_hmac),
		cmocka_unit_test(test_aead),
		cmocka_unit_test(test_master_key),
		cmocka_unit_test(test_free_secret),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
