/*
 * Test-tree RSA helpers on OpenSSL: key generation, PKCS#8 PEM/DER
 * writing, public PEM, signature verification and the crafted key.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lib/crypto/crypto.h"
#include "tests/support/testkey.h"

/* Generate an RSA key of bits with e = 65537, no policy. */
int
rsa_key_generate_unchecked(unsigned bits, struct rsa_key **out)
{
	EVP_PKEY	*pkey;

	*out = NULL;
	if ((pkey = EVP_RSA_gen(bits)) == NULL) {
		ERR_clear_error();
		return -EINVAL;
	}
	return rsa_key_adopt(pkey, out);
}

int
rsa_key_generate(unsigned bits, struct rsa_key **out)
{
	*out = NULL;
	if (bits < 2048 || bits > 4096)
		return -EINVAL;
	return rsa_key_generate_unchecked(bits, out);
}

/* The contents of a memory BIO as a NUL-terminated string, malloc'd. */
static char *
bio_string(BIO *bio)
{
	char	*data, *s;
	long	 n = BIO_get_mem_data(bio, &data);

	if (n < 0 || (s = malloc((size_t)n + 1)) == NULL)
		return NULL;
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	return s;
}

char *
rsa_key_to_pem(const struct rsa_key *key)
{
	BIO	*bio;
	char	*s = NULL;

	if (key == NULL || (bio = BIO_new(BIO_s_mem())) == NULL)
		return NULL;
	if (PEM_write_bio_PrivateKey(bio, rsa_key_evp(key), NULL, NULL, 0,
	    NULL, NULL) == 1)
		s = bio_string(bio);
	BIO_free(bio);
	ERR_clear_error();
	return s;
}

int
rsa_key_to_der(const struct rsa_key *key, unsigned char **der, size_t *len)
{
	unsigned char	*p = NULL;
	int		 n;

	*der = NULL;
	*len = 0;
	if (key == NULL || (n = i2d_PrivateKey(rsa_key_evp(key), &p)) <= 0) {
		ERR_clear_error();
		return -EINVAL;
	}
	if ((*der = malloc((size_t)n)) == NULL) {
		OPENSSL_free(p);
		return -ENOMEM;
	}
	memcpy(*der, p, (size_t)n);
	*len = (size_t)n;
	OPENSSL_clear_free(p, (size_t)n);
	return 0;
}

char *
rsa_key_public_pem(const struct rsa_key *key)
{
	BIO	*bio;
	char	*s = NULL;

	if (key == NULL || (bio = BIO_new(BIO_s_mem())) == NULL)
		return NULL;
	if (PEM_write_bio_PUBKEY(bio, rsa_key_evp(key)) == 1)
		s = bio_string(bio);
	BIO_free(bio);
	ERR_clear_error();
	return s;
}

int
rsa_verify_sha256(const struct rsa_key *key, const void *msg, size_t len,
    const void *sig, size_t siglen)
{
	EVP_MD_CTX	*md;
	int		 rc = -EBADMSG;

	if (key == NULL)
		return -EINVAL;
	if ((md = EVP_MD_CTX_new()) == NULL)
		return -ENOMEM;
	if (EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL,
	    rsa_key_evp(key), NULL) != 1)
		rc = -EINVAL;
	else if (EVP_DigestVerify(md, sig, siglen, msg, len) == 1)
		rc = 0;
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return rc;
}

/*
 * n, e, d of real, p = 1, q = n, dp = dq = d, qinv = 1: a key whose DER
 * is well formed and whose modulus is real, as an attacker would send it.
 */
char *
testkey_crafted_pem(const struct rsa_key *real)
{
	OSSL_PARAM_BLD	*bld = NULL;
	OSSL_PARAM	*params = NULL;
	EVP_PKEY_CTX	*ctx = NULL;
	EVP_PKEY	*pkey = NULL;
	BIGNUM		*n = NULL, *e = NULL, *d = NULL, *one = NULL;
	BIO		*bio = NULL;
	char		*s = NULL;

	if (EVP_PKEY_get_bn_param(rsa_key_evp(real), OSSL_PKEY_PARAM_RSA_N,
	    &n) != 1 ||
	    EVP_PKEY_get_bn_param(rsa_key_evp(real), OSSL_PKEY_PARAM_RSA_E,
	    &e) != 1 ||
	    EVP_PKEY_get_bn_param(rsa_key_evp(real), OSSL_PKEY_PARAM_RSA_D,
	    &d) != 1 || (one = BN_new()) == NULL || !BN_one(one))
		goto out;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, one) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, d) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, d) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
	    one) || (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
		goto out;
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1)
		goto out;
	if ((bio = BIO_new(BIO_s_mem())) != NULL &&
	    PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL,
	    NULL) == 1)
		s = bio_string(bio);
out:
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	BN_clear_free(d);
	BN_free(one);
	ERR_clear_error();
	return s;
}
