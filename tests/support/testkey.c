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

/* openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 */
const char testkey_openssl_pem
    [] = "-----BEGIN PRIVATE KEY-----\n"
	 "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCZ1cF2+9Jnz+Cl\n"
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
	 "IUNBKFc8D5ACzNTkC8Yzyfup4jfRs1aURgQbAq9bZQKBgQDLHsoEU2LsVqnojXPN\n"
	 "6iPlOqP165OAIMrB5W/UaFFAnxBmz0k4/2nnurUx6dcF8kA5Xy70qkpFefmSvnYO\n"
	 "a0h5IC8FeC0t0Ldh93XYrOVg2Anoh7za2Fons8Pixkho1Gswlc7cOpmkdfp02YGj\n"
	 "nJDfYtTpuQfq3Lu3Mc2OCiq8TQKBgQDB4kkTqTH8ANg8xKAdZ/fTTDBo95yjEr2K\n"
	 "1ti9UqtpPgYU501kWHPeks/AziL6xC6rHdhrE8K5boni0Rd8SwkODaChE1lkx71Y\n"
	 "DOd1BinrbMgnHfsBRt969IXeHSQ4BSQdECKR1MnQjbIjnlytxth4bMbfSowOZPLt\n"
	 "omgQzYZGBwKBgBi6v+e060dQ6dDJX/8C8anX8Nxg+Q1RcL4Ym/vlU3clpo6N0CFj\n"
	 "X1Z6MdNI4Af2TYFuqD3beb1ps0v9akwpHaK5m1/0GLQKRDlmMm/V5PtcciBgXkra\n"
	 "qmdJCKFUeL5ilkZNBuljLQ+L2ZleXd04k57O3pMyFteuViBgrOENNdTFAoGAV8T8\n"
	 "l+3sNsybF0dbxHQgeILxF1OgkSIWtBd2np4iAs6VKjlbi6WPLp7/daTbqPHOvqAQ\n"
	 "LMkRSaiEuy00mIvPWZFJuiFsQnc5e/a7gPp9V5ozMaIc0wMmgB7ZyyceEk4hfxai\n"
	 "z6mogsTic8Vo5zIxJLL5hHPW211Pq8vtmE2yD1kCgYEApQSkwedtTqagCAo5l5ri\n"
	 "ECTMwYO/hvphChVtvbmjHgqGp44TZ7gpY6tTL+b9LVIpQEp0htHfaYhAtOXRHCJl\n"
	 "HlKsBtNZCgyaLZ6eYmXL525/4pLh7ZAfS6fKAFppyXpRqNXavkfyq0YXMqV2n6/G\n"
	 "fFiQWUFZeaUEk/nl2j/U1d0=\n"
	 "-----END PRIVATE KEY-----\n";

/* Generate an RSA key of bits with e = 65537, no policy. */
int
rsa_key_generate_unchecked(unsigned bits, struct rsa_key **out)
{
	EVP_PKEY *pkey;

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
	char *data, *s;
	long  n = BIO_get_mem_data(bio, &data);

	if (n < 0 || (s = malloc((size_t)n + 1)) == NULL)
		return NULL;
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	return s;
}

char *
rsa_key_to_pem(const struct rsa_key *key)
{
	BIO  *bio;
	char *s = NULL;

	if (key == NULL || (bio = BIO_new(BIO_s_mem())) == NULL)
		return NULL;
	if (PEM_write_bio_PrivateKey(bio, rsa_key_evp(key), NULL, NULL, 0, NULL,
		NULL) == 1)
		s = bio_string(bio);
	BIO_free(bio);
	ERR_clear_error();
	return s;
}

int
rsa_key_to_der(const struct rsa_key *key, unsigned char **der, size_t *len)
{
	unsigned char *p = NULL;
	int	       n;

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
	BIO  *bio;
	char *s = NULL;

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
	EVP_MD_CTX *md;
	int	    rc = -EBADMSG;

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
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM     *params = NULL;
	EVP_PKEY_CTX   *ctx = NULL;
	EVP_PKEY       *pkey = NULL;
	BIGNUM	       *n = NULL, *e = NULL, *d = NULL, *one = NULL;
	BIO	       *bio = NULL;
	char	       *s = NULL;

	if (EVP_PKEY_get_bn_param(rsa_key_evp(real), OSSL_PKEY_PARAM_RSA_N,
		&n) != 1 ||
	    EVP_PKEY_get_bn_param(rsa_key_evp(real), OSSL_PKEY_PARAM_RSA_E,
		&e) != 1 ||
	    EVP_PKEY_get_bn_param(rsa_key_evp(real), OSSL_PKEY_PARAM_RSA_D,
		&d) != 1 ||
	    (one = BN_new()) == NULL || !BN_one(one))
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
		one) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
		goto out;
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1)
		goto out;
	if ((bio = BIO_new(BIO_s_mem())) != NULL &&
	    PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) == 1)
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
