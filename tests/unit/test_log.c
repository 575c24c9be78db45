/*
 * Unit tests of the log redactor (lib/base/log.c): secrets, PEM blocks and
 * Bearer tokens become [REDACTED]; the line never grows past its buffer
 * (issue 13: "Bearer x" grew a full line, a secret in the last bytes
 * underflowed the tail). The field parser: the source=, app=, batch= and
 * window= pairs of a line that become journal fields (#17).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/base/log.h"

#define GUARD 64

/* Redact s in a buffer of size bytes followed by a guard zone. */
static char *
redact(const char *s, size_t size)
{
	char *b = malloc(size + GUARD);

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
	char *b;

	log_redact_add("s3cr3t-canary");
	b = redact("token=s3cr3t-canary and s3cr3t-canary", 256);
	assert_string_equal(b, "token=[REDACTED] and [REDACTED]");
	free(b);
	b = redact("Authorization: Bearer abcdef rest", 256);
	assert_string_equal(b, "Authorization: Bearer [REDACTED] rest");
	free(b);
	b = redact("key -----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE "
		   "KEY----- after",
	    256);
	assert_string_equal(b, "key [REDACTED] after");
	free(b);
	log_redact_clear();
}

static void
test_growth_bounded(void **state)
{
	char   line[4096], *b;
	size_t i, o = 0;

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

#define SRC   "3f2a9c1e-8b7d-4e21-9a0f-2b6c8d4e1f03"
#define BATCH "0b1c2d3e-4f50-4a61-8b72-93a4b5c6d7e8"

static void
test_fields(void **state)
{
	struct log_fields f;
	const char	 *l;

	l = "source=" SRC " app=login page stored: logs=3 new=3 batches=1";
	assert_int_equal(log_fields_parse(l, strlen(l), &f), 2);
	assert_string_equal(f.v[LOG_FIELD_SOURCE], SRC);
	assert_string_equal(f.v[LOG_FIELD_APP], "login");
	assert_string_equal(f.v[LOG_FIELD_BATCH], "");
	assert_string_equal(f.v[LOG_FIELD_WINDOW], "");

	/* After a sentence, in parentheses, ended by ';', ',' or ':'. */
	l = "delivered (source=" SRC ", batch=" BATCH "); window="
	    "1733100000000..1733100060000: done app=admin.";
	assert_int_equal(log_fields_parse(l, strlen(l), &f), 4);
	assert_string_equal(f.v[LOG_FIELD_SOURCE], SRC);
	assert_string_equal(f.v[LOG_FIELD_BATCH], BATCH);
	assert_string_equal(f.v[LOG_FIELD_WINDOW],
	    "1733100000000..1733100060000");
	assert_string_equal(f.v[LOG_FIELD_APP], "admin");

	/* A key inside a word is not a key; the first pair wins. */
	l = "datasource=x webhook-batch=y xapp=z source=a source=b app=c";
	assert_int_equal(log_fields_parse(l, strlen(l), &f), 2);
	assert_string_equal(f.v[LOG_FIELD_SOURCE], "a");
	assert_string_equal(f.v[LOG_FIELD_APP], "c");
	assert_string_equal(f.v[LOG_FIELD_BATCH], "");

	/* Empty values, "source ID" (no '='), nothing at all. */
	l = "source= app=: batch=; source " SRC " window";
	assert_int_equal(log_fields_parse(l, strlen(l), &f), 0);
	assert_int_equal(log_fields_parse("", 0, &f), 0);
	assert_int_equal(log_fields_parse(NULL, 10, &f), 0);
	assert_string_equal(f.v[LOG_FIELD_SOURCE], "");
}

static void
test_fields_bounded(void **state)
{
	struct log_fields f;
	char		  line[600];
	size_t		  n;

	/* A value of LOG_FIELD_MAX - 1 bytes is kept, one more is dropped. */
	n = (size_t)snprintf(line, sizeof(line), "source=");
	memset(line + n, 'a', LOG_FIELD_MAX - 1);
	snprintf(line + n + LOG_FIELD_MAX - 1,
	    sizeof(line) - n - LOG_FIELD_MAX + 1, " app=x");
	assert_int_equal(log_fields_parse(line, strlen(line), &f), 2);
	assert_int_equal(strlen(f.v[LOG_FIELD_SOURCE]), LOG_FIELD_MAX - 1);
	n = (size_t)snprintf(line, sizeof(line), "source=");
	memset(line + n, 'a', LOG_FIELD_MAX);
	snprintf(line + n + LOG_FIELD_MAX, sizeof(line) - n - LOG_FIELD_MAX,
	    " app=x");
	assert_int_equal(log_fields_parse(line, strlen(line), &f), 1);
	assert_string_equal(f.v[LOG_FIELD_SOURCE], "");
	assert_string_equal(f.v[LOG_FIELD_APP], "x");
	/* A "source=" inside an over-long value is not a key either. */
	n = (size_t)snprintf(line, sizeof(line), "batch=");
	memset(line + n, 'b', 300);
	memcpy(line + n + 200, "source=zz", 9);
	line[n + 300] = '\0';
	assert_int_equal(log_fields_parse(line, strlen(line), &f), 0);

	/* len bounds the scan: no NUL needed, nothing read past len. */
	memcpy(line, "app=login source=" SRC, 17 + 36);
	assert_int_equal(log_fields_parse(line, 9, &f), 1);
	assert_string_equal(f.v[LOG_FIELD_APP], "login");
	assert_int_equal(log_fields_parse(line, 17 + 8, &f), 2);
	assert_string_equal(f.v[LOG_FIELD_SOURCE], "3f2a9c1e");

	assert_string_equal(log_field_journal_name(LOG_FIELD_SOURCE),
	    "SOURCE_ID");
	assert_string_equal(log_field_journal_name(LOG_FIELD_APP),
	    "APPLICATION");
	assert_string_equal(log_field_journal_name(LOG_FIELD_BATCH),
	    "BATCH_ID");
	assert_string_equal(log_field_journal_name(LOG_FIELD_WINDOW), "WINDOW");
	assert_null(log_field_journal_name(LOG_FIELD_COUNT));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_growth_bounded),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_fields_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
