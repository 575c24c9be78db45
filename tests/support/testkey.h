/*
 * Test-tree helpers around lib/crypto/crypto.h's RSA keys, for the unit
 * tests and the Google simulator only (the daemons never generate, write
 * or verify keys): generation, PEM writing, signature and JWT
 * verification, and the crafted keys of the hostile-input tests. All on
 * OpenSSL's libcrypto.
 */
#ifndef AR_TESTS_SUPPORT_TESTKEY_H
#define AR_TESTS_SUPPORT_TESTKEY_H

#include <stddef.h>

#include "lib/crypto/crypto.h"

/*
 * A 2048-bit key as OpenSSL writes it (PKCS#8 PEM), for the tests that
 * need a fixed key: JWT signatures checked against openssl dgst, PEM
 * round trips.
 */
extern const char testkey_openssl_pem[];

/* Generate a key of bits (2048..4096). 0 or -errno. */
int rsa_key_generate(unsigned bits, struct rsa_key **out);
/* Same without the size policy (e.g. 1024 bits, to see it refused). */
int rsa_key_generate_unchecked(unsigned bits, struct rsa_key **out);
/* PKCS#8 PEM of the private key, malloc'd; NULL on failure. */
char *rsa_key_to_pem(const struct rsa_key *key);
/* PKCS#8 DER of the private key, malloc'd into *der; 0 or -errno. */
int rsa_key_to_der(const struct rsa_key *key, unsigned char **der, size_t *len);
/* SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY") of the key, malloc'd. */
char *rsa_key_public_pem(const struct rsa_key *key);
/* Verify with the public part: 0 valid, -EBADMSG invalid, -errno else. */
int rsa_verify_sha256(const struct rsa_key *key, const void *msg, size_t len,
    const void *sig, size_t siglen);

/*
 * The crafted key of issue 13: the modulus, exponents of a real key but
 * p = 1 and q = n (libgcrypt divided by zero on it). PKCS#8 PEM, malloc'd.
 */
char *testkey_crafted_pem(const struct rsa_key *real);

/* Decode the claims part without verifying (to find "iss"). malloc'd. */
int jwt_peek_claims(const char *jwt, char **claims_json);
/*
 * Verify a JWT's RS256 signature (header alg must be RS256) against key;
 * on success *claims_json is the decoded claims (malloc'd). 0, -EBADMSG
 * for a bad signature, -EINVAL for a malformed token (err[] says which).
 */
int jwt_verify_rs256(const char *jwt, const struct rsa_key *key,
    char **claims_json, char *err, size_t errlen);

#endif
