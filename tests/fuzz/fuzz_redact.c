/*
 * libFuzzer target for the log redactor: the first bytes register up to
 * three secrets, the rest is the line, redacted in buffers of several
 * sizes followed by a guard zone that must stay untouched; then the field
 * parser (the journal's SOURCE_ID, APPLICATION...) reads the line from a
 * buffer of exactly its length, no NUL: every value it finds is shorter
 * than LOG_FIELD_MAX and is a piece of the line. Built and run by
 * scripts/fuzz.sh.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"

#define GUARD 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The field parser on the len bytes at line (no NUL after them). */
static void
fuzz_fields(const uint8_t *line, size_t len)
{
	struct log_fields f;
	char		 *buf;
	size_t		  n;
	int		  k, found = 0;

	if ((buf = malloc(len > 0 ? len : 1)) == NULL)
		abort();
	memcpy(buf, line, len);
	k = log_fields_parse(buf, len, &f);
	if (k < 0 || k > LOG_FIELD_COUNT)
		abort();
	for (int i = 0; i < LOG_FIELD_COUNT; i++) {
		n = strnlen(f.v[i], sizeof(f.v[i]));
		if (n >= LOG_FIELD_MAX)
			abort();
		if (n == 0)
			continue;
		found++;
		if (memmem(buf, len, f.v[i], n) == NULL)
			abort();
	}
	if (found != k)
		abort();
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t sizes[] = { 1, 2, 11, 64, 4096 };
	char		    secret[64], *buf;
	size_t		    i, k, n, off = 1, len;

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
	fuzz_fields(data + off, len);
	log_redact_clear();
	return 0;
}
