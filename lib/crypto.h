/*
 * Cryptography on libgcrypt: random bytes, constant-time comparison,
 * base64, RSA keys (strict PKCS#8 DER reader and writer), RS256 JWTs,
 * AES-256-GCM sealing of stored credentials, HMAC-SHA256 and Standard
 * Webhooks signatures. Library code: returns 0 or -errno, never logs,
 * writes what a person should read into err[] when given one.
 */
#ifndef AR_LIB_CRYPTO_H
#define AR_LIB_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_KEY_LEN		32	/* AES-256 master key */
#define CRYPTO_NONCE_LEN	12	/* GCM nonce */
#define CRYPTO_TAG_LEN		16	/* GCM tag */
#define CRYPTO_KEYID_LEN	16	/* hex chars of SHA-256(key) */

/* Initialise libgcrypt once per process (secure memory on). 0 or -errno. */
int	crypto_init(void);
/* Fill buf with len strong random bytes. */
void	crypto_random(void *buf, size_t len);
/* Constant-time comparison (time depends only on alen/blen). */
bool	crypto_ct_equal(const void *a, size_t alen, const void *b, size_t blen);
/* Hex SHA-256 of data into out[65]. */
void	crypto_sha256_hex(const void *data, size_t len, char out[65]);
/* Raw SHA-256 of data into out[32]. */
void	crypto_sha256(const void *data, size_t len, uint8_t out[32]);

/*
 * Base64. b64_encode returns a malloc'd NUL-terminated string (url: the
 * URL-safe alphabet; pad: '=' padding). b64_decode accepts either alphabet,
 * with or without padding, and rejects anything else: 0 or -EINVAL/-ENOMEM;
 * *out is malloc'd (NUL-terminated for convenience, not counted in *outlen).
 */
char	*b64_encode(const void *data, size_t len, bool url, bool pad);
int	 b64_decode(const char *s, size_t slen, unsigned char **out,
	    size_t *outlen);

/* An RSA private key (with its public part). */
struct rsa_key;

/*
 * Parse a PEM "-----BEGIN PRIVATE KEY-----" PKCS#8 RSA key (what Google's
 * service-account key files hold), with a strict DER reader: wrong type,
 * truncation, trailing bytes, a non-RSA algorithm or a size outside
 * 2048..4096 bits are errors. 0 or -EINVAL with err[] set (the message
 * never contains key material).
 */
int	 rsa_key_from_pem(const char *pem, size_t len, struct rsa_key **out,
	    char *err, size_t errlen);
/* Generate a key of bits (2048..4096). 0 or -errno. */
int	 rsa_key_generate(unsigned bits, struct rsa_key **out);
/* Same without the size policy (tests: e.g. 1024 bits to see it refused). */
int	 rsa_key_generate_unchecked(unsigned bits, struct rsa_key **out);
/* PKCS#8 PEM of the private key, malloc'd; NULL on failure. */
char	*rsa_key_to_pem(const struct rsa_key *key);
/* SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY") of the key, malloc'd. */
char	*rsa_key_public_pem(const struct rsa_key *key);
unsigned rsa_key_bits(const struct rsa_key *key);
/* RSASSA-PKCS1-v1_5 SHA-256 signature; *sig malloc'd. 0 or -errno. */
int	 rsa_sign_sha256(const struct rsa_key *key, const void *msg,
	    size_t len, unsigned char **sig, size_t *siglen);
/* Verify with the public part: 0 valid, -EBADMSG invalid, -errno else. */
int	 rsa_verify_sha256(const struct rsa_key *key, const void *msg,
	    size_t len, const void *sig, size_t siglen);
void	 rsa_key_free(struct rsa_key *key);

/*
 * JWT RS256. jwt_sign_rs256 returns header.claims.signature malloc'd, with
 * header {"alg":"RS256","typ":"JWT"} (plus "kid" when kid is non-NULL).
 * claims_json is used verbatim.
 */
char	*jwt_sign_rs256(const struct rsa_key *key, const char *kid,
	    const char *claims_json);
/* Decode the claims part without verifying (to find "iss"). malloc'd. */
int	 jwt_peek_claims(const char *jwt, char **claims_json);
/*
 * Verify a JWT's RS256 signature (header alg must be RS256) against key;
 * on success *claims_json is the decoded claims (malloc'd). 0, -EBADMSG
 * for a bad signature, -EINVAL for a malformed token (err[] says which).
 */
int	 jwt_verify_rs256(const char *jwt, const struct rsa_key *key,
	    char **claims_json, char *err, size_t errlen);

/*
 * Master key: a file of 32 raw bytes or their base64. Refused when missing,
 * of another length, or readable by others (mode & 007). keyid receives
 * the first 16 hex chars of SHA-256(key). 0 or -errno, err[] set.
 */
int	 crypto_master_key_load(const char *path, uint8_t key[CRYPTO_KEY_LEN],
	    char keyid[CRYPTO_KEYID_LEN + 1], char *err, size_t errlen);

/*
 * AES-256-GCM. aead_seal draws a fresh random 96-bit nonce into nonce[],
 * returns ciphertext||tag in *out (malloc'd, len + 16). aead_open checks
 * the tag: 0, -EBADMSG on a wrong key/AAD/tampering, -errno else.
 */
int	 aead_seal(const uint8_t key[CRYPTO_KEY_LEN], const void *aad,
	    size_t aadlen, const void *pt, size_t ptlen,
	    uint8_t nonce[CRYPTO_NONCE_LEN], unsigned char **out, size_t *outlen);
int	 aead_open(const uint8_t key[CRYPTO_KEY_LEN], const void *aad,
	    size_t aadlen, const uint8_t nonce[CRYPTO_NONCE_LEN],
	    const void *ct, size_t ctlen, unsigned char **out, size_t *outlen);
/* Free a buffer that held a secret: zero it first. */
void	 crypto_free_secret(void *p, size_t len);

/* HMAC-SHA256 of data under key into out[32]. */
void	 crypto_hmac_sha256(const void *key, size_t keylen, const void *data,
	    size_t len, uint8_t out[32]);

/* A new webhook secret: "whsec_" + base64 of 32 random bytes. malloc'd. */
char	*webhook_secret_new(void);
/*
 * Standard Webhooks: "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>",
 * key being the base64 after "whsec_". malloc'd; NULL on a bad secret.
 */
char	*webhook_sign(const char *secret, const char *msg_id, long long ts,
	    const void *body, size_t len);
/*
 * Verify a webhook-signature header (space-separated "v1,..." entries, any
 * may match) with one secret. true when one matches.
 */
bool	 webhook_verify(const char *secret, const char *msg_id, long long ts,
	    const void *body, size_t len, const char *header);

#endif
