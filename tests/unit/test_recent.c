/*
 * fetcherd's set of recently stored log ids: exact membership, expiry by
 * event time, the bound, bad ids refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fetcherd/recent.c"

/* A log id: 32 hex chars from i (distinct for distinct i). */
static void
mkid(uint64_t i, char out[33])
{
	/* splitmix64, to spread the ids as SHA-256 prefixes are */
	uint64_t z = i + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	snprintf(out, 33, "%016llx%016llx", (unsigned long long)z,
	    (unsigned long long)i);
}

static void
test_membership(void **state)
{
	struct recent *r = recent_new();
	char	       id[33];
	uint64_t       i;

	for (i = 0; i < 20000; i++) {
		mkid(i, id);
		recent_add(r, id, 1000 + (int64_t)i);
	}
	assert_int_equal(recent_count(r), 20000);
	for (i = 0; i < 20000; i++) {
		mkid(i, id);
		assert_true(recent_has(r, id));
	}
	for (i = 20000; i < 40000; i++) {
		mkid(i, id);
		assert_false(recent_has(r, id));
	}
	/* Adding again changes nothing. */
	mkid(7, id);
	recent_add(r, id, 5);
	assert_int_equal(recent_count(r), 20000);
	recent_clear(r);
	assert_false(recent_has(r, id));
	assert_int_equal(recent_count(r), 0);
	recent_free(r);
}

static void
test_expiry(void **state)
{
	struct recent *r = recent_new();
	char	       id[33];
	uint64_t       i;

	/* A sliding window of 1 000 ids stays about that size. */
	for (i = 0; i < 100000; i++) {
		mkid(i, id);
		recent_add(r, id, (int64_t)i);
		if (i % 100 == 0)
			recent_expire(r, (int64_t)i - 1000);
	}
	assert_true(recent_count(r) <= 4096);
	assert_true(r->nslots <= 8192);
	mkid(99999, id);
	assert_true(recent_has(r, id));
	/* An id older than the horizon is not added. */
	mkid(200000, id);
	recent_add(r, id, 5);
	assert_false(recent_has(r, id));
	/* Quiet: the memory goes back. */
	recent_expire(r, INT64_MAX);
	assert_true(r->nslots <= 2 * RECENT_MIN_SLOTS);
	recent_free(r);
}

static void
test_bound(void **state)
{
	struct recent *r = recent_new();
	char	       id[33];
	uint64_t       i;

	for (i = 0; i < 3 * (uint64_t)RECENT_MAX; i++) {
		mkid(i, id);
		recent_add(r, id, 1);
	}
	assert_true(recent_count(r) <= 2 * (size_t)RECENT_MAX / 2 + 1);
	assert_true(r->nslots <= 2 * (size_t)RECENT_MAX);
	/* Whatever is in is still exact. */
	mkid(0, id);
	assert_true(recent_has(r, id));
	recent_free(r);
}

static void
test_bad_ids(void **state)
{
	struct recent *r = recent_new();

	recent_add(r, "not hex at all, not thirty-two..", 1);
	recent_add(r, "0123456789abcdef0123456789ABCDEF", 1);
	recent_add(r, "0123456789abcdef0123456789abcde", 1);
	recent_add(r, "0123456789abcdef0123456789abcdef0", 1);
	assert_int_equal(recent_count(r), 0);
	assert_false(recent_has(r, ""));
	recent_add(r, "0123456789abcdef0123456789abcdef", 1);
	assert_true(recent_has(r, "0123456789abcdef0123456789abcdef"));
	assert_false(recent_has(r, "0123456789abcdef0123456789abcdee"));
	recent_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_membership),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_bad_ids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
