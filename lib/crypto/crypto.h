/*
 * Cryptography on libgcrypt: random bytes, constant-time comparison,
 * base64, RSA keys (read and used through OpenSSL), RS256 JWT signing,
 * AES-256-GCM sealing of stored credentials, HMAC-SHA256 and Standard
 * Webhooks signatures. Library code: returns 0 or -errno, never logs,
 * writes what a person should read into err[] when given one.
 */
#ifndef AR_LIB_CRYPTO_H
#define AR_LIB_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_KEY_LEN	 32 /* AES-256 master key */
#define CRYPTO_NONCE_LEN 12 /* GCM nonce */
#define CRYPTO_TAG_LEN	 16 /* GCM tag */
#define CRYPTO_KEYID_LEN 16 /* hex chars of SHA-256(key) */

/* Initialise libgcrypt once per process (secure memory on). 0 or -errno. */
int crypto_init(void);
/* Fill buf with len strong random bytes. */
void crypto_random(void *buf, size_t len);
/* Constant-time comparison (time depends only on alen/blen). */
bool crypto_ct_equal(const void *a, size_t alen, const void *b, size_t blen);
/* Hex SHA-256 of data into out[65]. */
void crypto_sha256_hex(const void *data, size_t len, char out[65]);
/* Raw SHA-256 of data into out[32]. */
void crypto_sha256(const void *data, size_t len, uint8_t out[32]);

/*
 * Base64. b64_encode returns a malloc'd NUL-terminated string (url: the
 * URL-safe alphabet; pad: '=' padding). b64_decode accepts either alphabet,
 * with or without padding, and rejects anything else: 0 or -EINVAL/-ENOMEM;
 * *out is malloc'd (NUL-terminated for convenience, not counted in *outlen).
 */
char *b64_encode(const void *data, size_t len, bool url, bool pad);
int b64_decode(const char *s, size_t slen, unsigned char **out, size_t *outlen);

/* An RSA private key (with its public part), held by OpenSSL's libcrypto. */
struct rsa_key;
struct evp_pkey_st;

/*
 * Parse a PEM private key (PKCS#8 "-----BEGIN PRIVATE KEY-----", what
 * Google's service-account key files hold) with OpenSSL. Refused: what the
 * library cannot read, encrypted keys, more than one key, a non-RSA key, a
 * size outside 2048..4096 bits, an unusual public exponent, primes that
 * do not make the modulus (p = 1, q = n), a key that cannot sign. 0 or
 * -EINVAL with err[] set (the message never contains key material).
 */
int rsa_key_from_pem(const char *pem, size_t len, struct rsa_key **out,
    char *err, size_t errlen);
/* The same for DER (PKCS#8 or PKCS#1), the whole buffer. */
int rsa_key_from_der(const void *der, size_t len, struct rsa_key **out,
    char *err, size_t errlen);
/*
 * The library's full check (primality, d * e = 1, CRT values): ~30 ms,
 * for keys that arrive through the API. 0 or -EINVAL with err[] set.
 */
int rsa_key_check(const struct rsa_key *key, char *err, size_t errlen);
/* Take an OpenSSL RSA key without the size policy (the test tree). */
int rsa_key_adopt(struct evp_pkey_st *pkey, struct rsa_key **out);
/* The OpenSSL key inside, borrowed (the test tree). */
struct evp_pkey_st *rsa_key_evp(const struct rsa_key *key);
unsigned	    rsa_key_bits(const struct rsa_key *key);
/* RSASSA-PKCS1-v1_5 SHA-256 signature; *sig malloc'd. 0 or -errno. */
int  rsa_sign_sha256(const struct rsa_key *key, const void *msg, size_t len,
     unsigned char **sig, size_t *siglen);
void rsa_key_free(struct rsa_key *key);

/*
 * JWT RS256. jwt_sign_rs256 returns header.claims.signature malloc'd, with
 * header {"alg":"RS256","typ":"JWT"} (plus "kid" when kid is non-NULL).
 * claims_json is used verbatim.
 */
char *jwt_sign_rs256(const struct rsa_key *key, const char *kid,
    const char *claims_json);
/*
 * Master key: a file of 32 raw bytes or their base64. Refused when missing,
 * of another length, or readable by others (mode & 007). keyid receives
 * the first 16 hex chars of SHA-256(key). 0 or -errno, err[] set.
 */
int crypto_master_key_load(const char *path, uint8_t key[CRYPTO_KEY_LEN],
    char keyid[CRYPTO_KEYID_LEN + 1], char *err, size_t errlen);

/*
 * AES-256-GCM. aead_seal draws a fresh random 96-bit nonce into nonce[],
 * returns ciphertext||tag in *out (malloc'd, len + 16). aead_open checks
 * the tag: 0, -EBADMSG on a wrong key/AAD/tampering, -errno else.
 */
int aead_seal(const uint8_t key[CRYPTO_KEY_LEN], const void *aad, size_t aadlen,
    const void *pt, size_t ptlen, uint8_t nonce[CRYPTO_NONCE_LEN],
    unsigned char **out, size_t *outlen);
int aead_open(const uint8_t key[CRYPTO_KEY_LEN], const void *aad, size_t aadlen,
    const uint8_t nonce[CRYPTO_NONCE_LEN], const void *ct, size_t ctlen,
    unsigned char **out, size_t *outlen);
/*
 * Stored secrets (credentials, webhook secrets): AES-256-GCM with AAD =
 * "ar2" US source id US field US version, so a blob cannot be swapped to
 * another source or field nor rolled back to an older version.
 * creds_open() also opens a blob of the first format (AAD = the source id
 * alone), saying so in *legacy: the migration path. A caller re-seals
 * such a blob at its next write; the fallback goes once none is left.
 */
int creds_seal(const uint8_t key[CRYPTO_KEY_LEN], const char *id,
    const char *field, int64_t version, const void *pt, size_t ptlen,
    uint8_t nonce[CRYPTO_NONCE_LEN], unsigned char **out, size_t *outlen);
int creds_open(const uint8_t key[CRYPTO_KEY_LEN], const char *id,
    const char *field, int64_t version, const uint8_t nonce[CRYPTO_NONCE_LEN],
    const void *ct, size_t ctlen, unsigned char **out, size_t *outlen,
    bool *legacy);
/* Free a buffer that held a secret: zero it first. */
void crypto_free_secret(void *p, size_t len);

/* HMAC-SHA256 of data under key into out[32]. */
void crypto_hmac_sha256(const void *key, size_t keylen, const void *data,
    size_t len, uint8_t out[32]);

/* A new webhook secret: "whsec_" + base64 of 32 random bytes. malloc'd. */
char *webhook_secret_new(void);
/*
 * Standard Webhooks: "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>",
 * key being the base64 after "whsec_". malloc'd; NULL on a bad secret.
 */
char *webhook_sign(const char *secret, const char *msg_id, long long ts,
    const void *body, size_t len);

#endif
