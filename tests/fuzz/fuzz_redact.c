/*
 * libFuzzer target for the log redactor: the first bytes register up to
 * three secrets, the rest is the line, redacted in buffers of several
 * sizes followed by a guard zone that must stay untouched. Built and run
 * by scripts/fuzz.sh.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

#define GUARD	32

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t	 sizes[] = { 1, 2, 11, 64, 4096 };
	char			 secret[64], *buf;
	size_t			 i, k, n, off = 1, len;

	if (size == 0)
		return 0;
	for (k = 0; k < (size_t)(data[0] & 3); k++) {
		if (off >= size)
			break;
		n = data[off++] % 24;
		if (n > size - off)
			n = size - off;
		memcpy(secret, data + off, n);
		secret[n] = '\0';
		log_redact_add(secret);
		off += n;
	}
	len = size - off;
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		if ((buf = malloc(sizes[i] + GUARD)) == NULL)
			abort();
		memset(buf, 'G', sizes[i] + GUARD);
		n = len < sizes[i] - 1 ? len : sizes[i] - 1;
		memcpy(buf, data + off, n);
		buf[n] = '\0';
		log_redact(buf, sizes[i]);
		if (strnlen(buf, sizes[i]) >= sizes[i])
			abort();
		for (n = sizes[i]; n < sizes[i] + GUARD; n++)
			if (buf[n] != 'G')
				abort();
		free(buf);
	}
	log_redact_clear();
	return 0;
}
