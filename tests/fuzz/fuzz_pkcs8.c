/*
 * libFuzzer target for the strict PKCS#8 PEM/DER reader:
 *
 *	clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. \
 *	    tests/fuzz/fuzz_pkcs8.c lib/crypto.c lib/pkcs8.c \
 *	    $(pkg-config --cflags --libs libgcrypt) -o fuzz_pkcs8
 *	./fuzz_pkcs8 -max_total_time=60
 *
 * Half the inputs are used as PEM text as they are; the other half are
 * taken as DER and wrapped in PEM armour first, so that the fuzzer reaches
 * the DER reader without having to invent base64.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/crypto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char	 begin[] = "-----BEGIN PRIVATE KEY-----\n";
	static const char	 end[] = "\n-----END PRIVATE KEY-----\n";
	struct rsa_key		*key = NULL;
	char			 err[256], *b64, *pem;
	size_t			 n;

	if (crypto_init() != 0)
		abort();
	if (size == 0)
		return 0;
	if (data[0] & 1) {
		(void)rsa_key_from_pem((const char *)data + 1, size - 1, &key,
		    err, sizeof(err));
		rsa_key_free(key);
		return 0;
	}
	if ((b64 = b64_encode(data + 1, size - 1, false, true)) == NULL)
		return 0;
	n = sizeof(begin) + strlen(b64) + sizeof(end);
	if ((pem = malloc(n)) != NULL) {
		snprintf(pem, n, "%s%s%s", begin, b64, end);
		if (rsa_key_from_pem(pem, strlen(pem), &key, err,
		    sizeof(err)) == 0) {
			/* Anything accepted must write back and re-read. */
			char		*again = rsa_key_to_pem(key);
			struct rsa_key	*key2 = NULL;

			if (again == NULL || rsa_key_from_pem(again,
			    strlen(again), &key2, err, sizeof(err)) != 0)
				abort();
			rsa_key_free(key2);
			free(again);
		}
		rsa_key_free(key);
		free(pem);
	}
	free(b64);
	return 0;
}
