/*
 * Unit tests of the simulator's page tokens, RFC 3339 times and hashes
 * (sim_page.c).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sim_page.h"

static void
test_roundtrip(void **state)
{
	struct sim_page_pos in, out;
	char		    tok[SIM_PAGE_TOKEN_MAX];
	const int64_t	    uqs[] = { 0, 1, -1, INT64_MAX, INT64_MIN,
		      -2132132132132132132LL, 7097050198975420298LL };
	size_t		    i;

	for (i = 0; i < sizeof(uqs) / sizeof(uqs[0]); i++) {
		in.time_us = 1663351168102997LL + (int64_t)i;
		in.uq = uqs[i];
		in.cutoff_us = 1663351169000000LL;
		in.qhash = (uint32_t)(0xdeadbeefu ^ i);
		assert_int_equal(sim_page_encode(&in, tok, sizeof(tok)), 0);
		assert_true(strncmp(tok, "A:", 2) == 0);
		memset(&out, 0, sizeof(out));
		assert_int_equal(sim_page_decode(tok, &out), 0);
		assert_true(out.time_us == in.time_us);
		assert_true(out.uq == in.uq);
		assert_true(out.cutoff_us == in.cutoff_us);
		assert_true(out.qhash == in.qhash);
	}
	in.time_us = INT64_MAX;
	in.uq = INT64_MIN;
	in.cutoff_us = INT64_MAX;
	assert_int_equal(sim_page_encode(&in, tok, sizeof(tok)), 0);
	assert_int_equal(sim_page_decode(tok, &out), 0);
	assert_true(out.time_us == INT64_MAX && out.uq == INT64_MIN);
	assert_int_equal(sim_page_encode(&in, tok, 10), -ENOSPC);
}

static void
test_reject(void **state)
{
	static const char *const bad[] = {
		"",
		"A",
		"A:",
		"B:1:2:3:0000000a",
		"A:1:2:3",
		"A:1:2:3:",
		"A:1:2:3:0000000",
		"A:1:2:3:000000000",
		"A:1:2:3:0000000G",
		"A:1:2:3:0000000A",
		"A:x:2:3:0000000a",
		"A:1:2:3:0000000a:",
		"A:1::3:0000000a",
		"A:-1:2:3:0000000a",
		"A:1:2:-3:0000000a",
		"A:99999999999999999999:2:3:0000000a",
		"A:1:-:3:0000000a",
		"A: 1:2:3:0000000a",
		"A:1:2:3:0000000a ",
		"AAAA",
		"A:1663351168102997:7097050198975420298:207535951991:C033fmrgf",
	};
	struct sim_page_pos p;
	size_t		    i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sim_page_decode(bad[i], &p), -EINVAL);
	assert_int_equal(sim_page_decode(NULL, &p), -EINVAL);
	assert_int_equal(sim_page_decode("A:1:-2:3:0123abcd", &p), 0);
	assert_true(p.uq == -2 && p.qhash == 0x0123abcdu);
}

static void
test_query_hash(void **state)
{
	const char *a[] = { "login", "all", "2026-01-01T00:00:00Z", NULL };
	const char *b[] = { "login", "all", "2026-01-01T00:00:01Z", NULL };
	const char *c[] = { "loginall", "", "2026-01-01T00:00:00Z", NULL };

	assert_true(sim_page_query_hash(a, 4) == sim_page_query_hash(a, 4));
	assert_true(sim_page_query_hash(a, 4) != sim_page_query_hash(b, 4));
	assert_true(sim_page_query_hash(a, 4) != sim_page_query_hash(c, 4));
}

static void
test_time(void **state)
{
	int64_t us;
	char	buf[32];

	assert_int_equal(sim_time_parse("2022-09-16T17:59:28.102Z", &us), 0);
	assert_true(us == 1663351168102000LL);
	assert_string_equal(sim_time_format(us, buf),
	    "2022-09-16T17:59:28.102Z");
	assert_int_equal(sim_time_parse("2022-09-16T17:59:28.102997Z", &us), 0);
	assert_true(us == 1663351168102997LL);
	assert_string_equal(sim_time_format(us, buf),
	    "2022-09-16T17:59:28.102Z");
	assert_int_equal(sim_time_parse("2022-09-16T19:59:28+02:00", &us), 0);
	assert_true(us == 1663351168000000LL);
	assert_int_equal(sim_time_parse("2022-09-16T12:59:28.5-05:00", &us), 0);
	assert_true(us == 1663351168500000LL);
	assert_int_equal(sim_time_parse("1970-01-01T00:00:00Z", &us), 0);
	assert_true(us == 0);
	assert_string_equal(sim_time_format(0, buf),
	    "1970-01-01T00:00:00.000Z");
	assert_int_equal(sim_time_parse("2022-09-16 17:59:28Z", &us), -EINVAL);
	assert_int_equal(sim_time_parse("2022-09-16T17:59:28", &us), -EINVAL);
	assert_int_equal(sim_time_parse("2022-13-16T17:59:28Z", &us), -EINVAL);
	assert_int_equal(sim_time_parse("2022-09-16T17:59:28.Z", &us), -EINVAL);
	assert_int_equal(sim_time_parse("2022-09-16T17:59:28Zx", &us), -EINVAL);
	assert_int_equal(sim_time_parse("2022-09-16T17:59:28+0200", &us),
	    -EINVAL);
	assert_int_equal(sim_time_parse("yesterday", &us), -EINVAL);
	assert_int_equal(sim_time_parse(NULL, &us), -EINVAL);
}

static void
test_hash(void **state)
{
	assert_true(sim_mix64(1) != sim_mix64(2));
	assert_true(sim_hash_str("a", 0) != sim_hash_str("b", 0));
	assert_true(sim_hash_str(NULL, 0) == sim_hash_str("", 0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_reject),
		cmocka_unit_test(test_query_hash),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_hash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
