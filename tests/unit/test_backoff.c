/*
 * Backoff bounds, jitter, the crash-loop window and log redaction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/base/backoff.h"
#include "lib/base/log.h"

static void
test_full_jitter_bounds(void **state)
{
	unsigned a;
	int	 i;
	int64_t	 v, max_seen = 0;

	for (a = 0; a < 20; a++) {
		int64_t hi = 1000LL << (a > 6 ? 6 : a);

		if (hi > 60000)
			hi = 60000;
		for (i = 0; i < 200; i++) {
			v = backoff_full_jitter(a, 1000, 60000);
			assert_true(v >= 1000);
			assert_true(v <= hi);
			if (v > max_seen)
				max_seen = v;
		}
	}
	assert_true(max_seen <= 60000);
	assert_true(max_seen > 30000); /* the cap is reached eventually */
	assert_int_equal(backoff_full_jitter(0, 1000, 60000), 1000);
}

static void
test_jitter_pct(void **state)
{
	int	i;
	int64_t v;
	bool	low = false, high = false;

	for (i = 0; i < 1000; i++) {
		v = backoff_jitter_pct(10000, 20);
		assert_true(v >= 8000 && v <= 12000);
		low |= v < 9000;
		high |= v > 11000;
	}
	assert_true(low && high);
	assert_int_equal(backoff_jitter_pct(0, 20), 0);
}

static void
test_crash_window(void **state)
{
	struct crashwin w = { .n = 0 };
	int64_t		t = 1000000;
	int		i;

	/* Five deaths in a minute: not yet a crash loop; the sixth is. */
	for (i = 1; i <= 5; i++)
		assert_int_equal(crashwin_record(&w, t + i * 1000, 60000),
		    (unsigned)i);
	assert_int_equal(crashwin_record(&w, t + 6000, 60000), 6);
	/* Old deaths fall out of the window. */
	assert_int_equal(crashwin_record(&w, t + 200000, 60000), 1);
	/* Many deaths never overflow the table. */
	for (i = 0; i < 100; i++)
		crashwin_record(&w, t + 300000 + i, 60000);
	assert_true(w.n <= CRASHWIN_MAX);
}

static void
test_log_redaction(void **state)
{
	char buf[512];

	log_redact_add("CANARY-secret-0123456789");
	snprintf(buf, sizeof(buf),
	    "token=CANARY-secret-0123456789 and "
	    "again CANARY-secret-0123456789.");
	log_redact(buf, sizeof(buf));
	assert_null(strstr(buf, "CANARY"));
	assert_non_null(strstr(buf, "[REDACTED]"));
	snprintf(buf, sizeof(buf),
	    "key -----BEGIN PRIVATE KEY-----\nMIIE"
	    "abc\n-----END PRIVATE KEY----- tail");
	log_redact(buf, sizeof(buf));
	assert_null(strstr(buf, "MIIE"));
	assert_non_null(strstr(buf, "tail"));
	snprintf(buf, sizeof(buf), "Authorization: Bearer ya29.abcdef rest");
	log_redact(buf, sizeof(buf));
	assert_null(strstr(buf, "ya29"));
	assert_non_null(strstr(buf, "rest"));
	/* Short secrets are refused (they would redact common words). */
	log_redact_add("ab");
	snprintf(buf, sizeof(buf), "about");
	log_redact(buf, sizeof(buf));
	assert_string_equal(buf, "about");
	log_redact_clear();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_jitter_bounds),
		cmocka_unit_test(test_jitter_pct),
		cmocka_unit_test(test_crash_window),
		cmocka_unit_test(test_log_redaction),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
