/*
 * libFuzzer target for the RSA key reader (lib/crypto/rsakey.c on OpenSSL): the
 * first byte chooses PEM text as it is, or DER as it is. Anything accepted
 * must sign. Built and run by scripts/fuzz.sh.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "lib/crypto/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rsa_key *key = NULL;
	unsigned char  *sig = NULL;
	size_t		siglen;
	char		err[256];
	int		rc;

	if (crypto_init() != 0)
		abort();
	if (size == 0)
		return 0;
	if (data[0] & 1)
		rc = rsa_key_from_pem((const char *)data + 1, size - 1, &key,
		    err, sizeof(err));
	else
		rc = rsa_key_from_der(data + 1, size - 1, &key, err,
		    sizeof(err));
	if (rc == 0) {
		if (rsa_sign_sha256(key, "x", 1, &sig, &siglen) != 0)
			abort();
		free(sig);
		(void)rsa_key_check(key, err, sizeof(err));
	}
	rsa_key_free(key);
	return 0;
}
