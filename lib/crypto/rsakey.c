/*
 * RSA private keys on OpenSSL's libcrypto: reading the PEM (or DER)
 * private key of a Google service account, refusing what is not a sound
 * RSA key of 2048..4096 bits, and RSASSA-PKCS1-v1_5 SHA-256 signatures for
 * RS256. The parsing and the arithmetic are the library's; this file only
 * states the policy and turns the library's verdict into a sentence.
 *
 * Every function leaves the thread's OpenSSL error queue empty: libcurl
 * and libmongoc share it in the same thread.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lib/base/util.h"
#include "lib/crypto/crypto.h"

#define RSA_BITS_MIN   2048
#define RSA_BITS_MAX   4096
#define RSA_E_BITS_MAX 33 /* 2^32 + 1 at most; Google uses 65537 */
#define PEM_MAX	       (64 * 1024)
#define DER_MAX	       (16 * 1024)

struct rsa_key {
	EVP_PKEY *pkey;
	unsigned  bits;
};

/*
 * The passphrase callback: there is never a passphrase (an encrypted key
 * is refused, never prompted for on a terminal).
 */
static int
rsakey_no_pass_cb(char *buf, int size, int rwflag, void *u)
{
	return 0;
}

/* The library's last reason, for err[]; never key material. */
static const char *
rsakey_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char   *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	return r != NULL ? r : "rejected";
}

/*
 * Sign a fixed message and verify it with the public half: the key does
 * what it is for. 0 or -EINVAL.
 */
static int
rsakey_pairwise(EVP_PKEY *pkey)
{
	static const char msg[] = "auditrelay key check";
	EVP_MD_CTX	 *md = NULL;
	unsigned char	  sig[RSA_BITS_MAX / 8];
	size_t		  n = sizeof(sig);
	int		  rc = -EINVAL;

	if ((md = EVP_MD_CTX_new()) == NULL)
		return -ENOMEM;
	if (EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, pkey, NULL) !=
		1 ||
	    EVP_DigestSign(md, sig, &n, (const unsigned char *)msg,
		sizeof(msg) - 1) != 1)
		goto out;
	EVP_MD_CTX_free(md);
	if ((md = EVP_MD_CTX_new()) == NULL)
		return -ENOMEM;
	if (EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, pkey,
		NULL) == 1 &&
	    EVP_DigestVerify(md, sig, n, (const unsigned char *)msg,
		sizeof(msg) - 1) == 1)
		rc = 0;
out:
	EVP_MD_CTX_free(md);
	return rc;
}

/*
 * Apply the policy to a decoded key, cheaply (every daemon start reads
 * every source's key): RSA, 2048..4096 bits, a small odd public exponent,
 * the private parts present, primes p, q > 1 with p * q = n, and a
 * signature that verifies. rsa_key_check() adds the library's full check.
 * 0, -EINVAL or -ENOMEM with err[] set.
 */
static int
rsakey_policy(EVP_PKEY *pkey, char *err, size_t errlen)
{
	BIGNUM *n = NULL, *e = NULL, *d = NULL, *p = NULL, *q = NULL;
	BIGNUM *pq = NULL;
	BN_CTX *bn = NULL;
	int	bits, rc = -EINVAL;

	if (!EVP_PKEY_is_a(pkey, "RSA")) {
		util_errf(err, errlen, "not an RSA key (%s)",
		    EVP_PKEY_get0_type_name(pkey) != NULL ?
			EVP_PKEY_get0_type_name(pkey) :
			"unknown type");
		goto out;
	}
	bits = EVP_PKEY_get_bits(pkey);
	if (bits < RSA_BITS_MIN || bits > RSA_BITS_MAX) {
		util_errf(err, errlen, "RSA key of %d bits (%d to %d wanted)",
		    bits, RSA_BITS_MIN, RSA_BITS_MAX);
		goto out;
	}
	if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) != 1 ||
	    BN_num_bits(e) > RSA_E_BITS_MAX || !BN_is_odd(e) || BN_is_one(e)) {
		util_errf(err, errlen, "unusable RSA public exponent");
		goto out;
	}
	if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
	    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_D, &d) != 1 ||
	    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_FACTOR1, &p) != 1 ||
	    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_FACTOR2, &q) != 1) {
		util_errf(err, errlen, "RSA key without its private parts");
		goto out;
	}
	if ((bn = BN_CTX_new()) == NULL || (pq = BN_new()) == NULL) {
		util_errf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	if (BN_num_bits(p) < bits / 2 - 64 || BN_num_bits(q) < bits / 2 - 64 ||
	    BN_is_zero(d) || BN_is_negative(d) || BN_cmp(d, n) >= 0 ||
	    !BN_mul(pq, p, q, bn) || BN_cmp(pq, n) != 0) {
		util_errf(err, errlen,
		    "inconsistent RSA key (its primes do "
		    "not make its modulus)");
		goto out;
	}
	if ((rc = rsakey_pairwise(pkey)) != 0) {
		util_errf(err, errlen,
		    "inconsistent RSA key (it cannot "
		    "sign)");
		goto out;
	}
	rc = 0;
out:
	BN_CTX_free(bn);
	BN_free(pq);
	BN_free(n);
	BN_free(e);
	BN_clear_free(d);
	BN_clear_free(p);
	BN_clear_free(q);
	return rc;
}

/*
 * The library's full check of a key (primality of p and q, d * e = 1,
 * the CRT values): some 30 ms for 2048 bits, so for keys that arrive
 * (the API), not for every start. 0 or -EINVAL with err[] set.
 */
int
rsa_key_check(const struct rsa_key *key, char *err, size_t errlen)
{
	EVP_PKEY_CTX *ctx;
	int	      rc = -EINVAL;

	if (key == NULL)
		return -EINVAL;
	ERR_clear_error();
	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL)) == NULL) {
		util_errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (EVP_PKEY_check(ctx) == 1)
		rc = 0;
	else
		util_errf(err, errlen, "inconsistent RSA key (%s)",
		    rsakey_reason());
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

/* Wrap a checked pkey (taking it) into *out. 0 or -ENOMEM. */
static int
rsakey_make(EVP_PKEY *pkey, struct rsa_key **out)
{
	struct rsa_key *k;

	if ((k = calloc(1, sizeof(*k))) == NULL) {
		EVP_PKEY_free(pkey);
		return -ENOMEM;
	}
	k->pkey = pkey;
	k->bits = (unsigned)EVP_PKEY_get_bits(pkey);
	*out = k;
	return 0;
}

/* rsakey_policy(), then rsakey_make(); pkey is taken in every case. */
static int
rsakey_accept(EVP_PKEY *pkey, struct rsa_key **out, char *err, size_t errlen)
{
	int rc;

	if ((rc = rsakey_policy(pkey, err, errlen)) != 0) {
		EVP_PKEY_free(pkey);
		return rc;
	}
	return rsakey_make(pkey, out);
}

/*
 * The label of the first PEM block must be PKCS#8's "PRIVATE KEY"; the
 * other private key labels get a sentence saying what they are. 0 or
 * -EINVAL with err[] set.
 */
static int
rsakey_label(const char *pem, size_t len, char *err, size_t errlen)
{
	const char *b = memmem(pem, len, "-----BEGIN ", 11), *e;
	size_t	    n;

	b += 11;
	e = memmem(b, len - (size_t)(b - pem), "-----", 5);
	n = e != NULL ? (size_t)(e - b) : 0;
	if (n == 11 && memcmp(b, "PRIVATE KEY", 11) == 0)
		return 0;
	if (n == 15 && memcmp(b, "RSA PRIVATE KEY", 15) == 0)
		util_errf(err, errlen,
		    "a PKCS#1 key (BEGIN RSA PRIVATE KEY); "
		    "convert it with openssl pkcs8 -topk8 -nocrypt");
	else if (n == 21 && memcmp(b, "ENCRYPTED PRIVATE KEY", 21) == 0)
		util_errf(err, errlen,
		    "encrypted private keys are not "
		    "supported");
	else if (n > 12 && memcmp(b + n - 12, " PRIVATE KEY", 12) == 0)
		util_errf(err, errlen, "not an RSA key (%.*s)",
		    (int)(n - 12 < 16 ? n - 12 : 16), b);
	else
		util_errf(err, errlen, "expected -----BEGIN PRIVATE KEY-----");
	return -EINVAL;
}

/*
 * Read a PEM private key: PKCS#8 "BEGIN PRIVATE KEY" (what Google's key
 * files hold), unencrypted, one key, then rsakey_policy(). 0 or -EINVAL/-ENOMEM with err[] set; the message
 * never contains key material.
 */
int
rsa_key_from_pem(const char *pem, size_t len, struct rsa_key **out, char *err,
    size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	BIO	 *bio = NULL;
	char	  rest[16];
	int	  rc = -EINVAL, n;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (len == 0) {
		util_errf(err, errlen, "empty");
		return -EINVAL;
	}
	if (len > PEM_MAX) {
		util_errf(err, errlen, "longer than %d bytes", PEM_MAX);
		return -EINVAL;
	}
	if (memchr(pem, '\0', len) != NULL) {
		util_errf(err, errlen, "contains a NUL byte");
		return -EINVAL;
	}
	if (memmem(pem, len, "-----BEGIN ", 11) == NULL) {
		util_errf(err, errlen,
		    "not a PEM private key (expected "
		    "-----BEGIN PRIVATE KEY-----)");
		return -EINVAL;
	}
	if (memchr(pem, '\n', len) == NULL &&
	    memmem(pem, len, "\\n", 2) != NULL) {
		util_errf(err, errlen,
		    "has literal \\n instead of line "
		    "breaks");
		return -EINVAL;
	}
	if (rsakey_label(pem, len, err, errlen) != 0)
		return -EINVAL;
	ERR_clear_error();
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
		util_errf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	pkey = PEM_read_bio_PrivateKey_ex(bio, NULL, rsakey_no_pass_cb, NULL,
	    NULL, NULL);
	if (pkey == NULL) {
		util_errf(err, errlen, "malformed PEM private key (%s)",
		    rsakey_reason());
		goto out;
	}
	/* One key per string: nothing but blanks may follow its END line. */
	while ((n = BIO_read(bio, rest, sizeof(rest))) > 0) {
		int i;

		for (i = 0; i < n; i++)
			if (rest[i] != ' ' && rest[i] != '\t' &&
			    rest[i] != '\r' && rest[i] != '\n') {
				util_errf(err, errlen,
				    "malformed PEM: "
				    "something follows the key");
				goto out;
			}
	}
	rc = rsakey_accept(pkey, out, err, errlen);
	pkey = NULL;
out:
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	ERR_clear_error();
	return rc;
}

/*
 * Read a DER private key (PKCS#8 PrivateKeyInfo or PKCS#1), the whole of
 * der[], then rsakey_policy(). 0 or -EINVAL/-ENOMEM with err[] set.
 */
int
rsa_key_from_der(const void *der, size_t len, struct rsa_key **out, char *err,
    size_t errlen)
{
	const unsigned char *p = der;
	EVP_PKEY	    *pkey = NULL;
	int		     rc = -EINVAL;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (len == 0 || len > DER_MAX) {
		util_errf(err, errlen,
		    len == 0 ? "empty" : "longer than %d bytes", DER_MAX);
		return -EINVAL;
	}
	ERR_clear_error();
	pkey = d2i_AutoPrivateKey(NULL, &p, (long)len);
	if (pkey == NULL) {
		util_errf(err, errlen, "malformed DER private key (%s)",
		    rsakey_reason());
		goto out;
	}
	if (p != (const unsigned char *)der + len) {
		util_errf(err, errlen, "malformed DER: trailing bytes");
		goto out;
	}
	rc = rsakey_accept(pkey, out, err, errlen);
	pkey = NULL;
out:
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return rc;
}

/*
 * Take an OpenSSL key as it is, without the policy (the test tree makes
 * keys of any size with it). 0, -EINVAL or -ENOMEM; pkey is taken.
 */
int
rsa_key_adopt(struct evp_pkey_st *pkey, struct rsa_key **out)
{
	*out = NULL;
	if (pkey == NULL)
		return -EINVAL;
	if (!EVP_PKEY_is_a(pkey, "RSA")) {
		EVP_PKEY_free(pkey);
		return -EINVAL;
	}
	return rsakey_make(pkey, out);
}

/* The OpenSSL key inside (borrowed). */
struct evp_pkey_st *
rsa_key_evp(const struct rsa_key *key)
{
	return key != NULL ? key->pkey : NULL;
}

unsigned
rsa_key_bits(const struct rsa_key *key)
{
	return key != NULL ? key->bits : 0;
}

/*
 * RSASSA-PKCS1-v1_5 with SHA-256 over msg; *sig malloc'd (the modulus'
 * size). 0, -EINVAL or -ENOMEM.
 */
int
rsa_sign_sha256(const struct rsa_key *key, const void *msg, size_t len,
    unsigned char **sig, size_t *siglen)
{
	EVP_MD_CTX    *md = NULL;
	unsigned char *buf = NULL;
	size_t	       n = 0;
	int	       rc = -EINVAL;

	*sig = NULL;
	*siglen = 0;
	if (key == NULL)
		return -EINVAL;
	ERR_clear_error();
	if ((md = EVP_MD_CTX_new()) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, key->pkey,
		NULL) != 1 ||
	    EVP_DigestSign(md, NULL, &n, msg, len) != 1)
		goto out;
	if ((buf = malloc(n)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (EVP_DigestSign(md, buf, &n, msg, len) != 1)
		goto out;
	*sig = buf;
	*siglen = n;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return rc;
}

void
rsa_key_free(struct rsa_key *key)
{
	if (key == NULL)
		return;
	EVP_PKEY_free(key->pkey); /* clears the private parts */
	free(key);
}
