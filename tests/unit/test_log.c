/*
 * Unit tests of the log redactor (lib/log.c): secrets, PEM blocks and
 * Bearer tokens become [REDACTED]; the line never grows past its buffer
 * (issue 13: "Bearer x" grew a full line, a secret in the last bytes
 * underflowed the tail).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/log.h"

#define GUARD	64

/* Redact s in a buffer of size bytes followed by a guard zone. */
static char *
redact(const char *s, size_t size)
{
	char	*b = malloc(size + GUARD);

	assert_non_null(b);
	memset(b, 'G', size + GUARD);
	snprintf(b, size, "%s", s);
	log_redact(b, size);
	for (size_t i = size; i < size + GUARD; i++)
		assert_int_equal(b[i], 'G');
	assert_true(strlen(b) < size);
	return b;
}

static void
test_basic(void **state)
{
	char	*b;

	log_redact_add("s3cr3t-canary");
	b = redact("token=s3cr3t-canary and s3cr3t-canary", 256);
	assert_string_equal(b, "token=[REDACTED] and [REDACTED]");
	free(b);
	b = redact("Authorization: Bearer abcdef rest", 256);
	assert_string_equal(b, "Authorization: Bearer [REDACTED] rest");
	free(b);
	b = redact("key -----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE "
	    "KEY----- after", 256);
	assert_string_equal(b, "key [REDACTED] after");
	free(b);
	log_redact_clear();
}

static void
test_growth_bounded(void **state)
{
	char	 line[4096], *b;
	size_t	 i, o = 0;

	/* A full line of "Bearer x": each grows by 9 bytes. */
	while (o + 9 < sizeof(line)) {
		memcpy(line + o, "Bearer x ", 9);
		o += 9;
	}
	line[o] = '\0';
	b = redact(line, sizeof(line));
	assert_true(strncmp(b, "Bearer [REDACTED] Bearer [REDACTED]", 35) == 0);
	free(b);
	/* A secret in the last bytes of a full buffer. */
	log_redact_add("abcd");
	for (i = 0; i < 40; i++) {
		memset(line, 'x', sizeof(line));
		memcpy(line + sizeof(line) - 1 - 4 - i, "abcd", 4);
		line[sizeof(line) - 1] = '\0';
		b = redact(line, sizeof(line));
		free(b);
	}
	/* Tiny buffers. */
	for (i = 1; i < 24; i++) {
		b = redact("Bearer abcd abcd", i);
		free(b);
	}
	log_redact_clear();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_growth_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
