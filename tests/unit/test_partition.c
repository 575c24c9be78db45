/*
 * Partitions of sources: the FNV-1a hash against fixed vectors (the
 * system tests compute the same in Python), its spread over the
 * partitions, and the bounds of partition_count. Partitions of bodies:
 * the name of a time's bodies_* collection and the end of its span.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/ipc/config.h"
#include "lib/store/partition.h"
#include "lib/store/store.h"

static void
test_vectors(void **state)
{
	(void)state;
	/* FNV-1a 32: "" = 0x811c9dc5, "a" = 0xe40c292c. */
	assert_int_equal(partition_index("", 64), 0x811c9dc5u % 64);
	assert_int_equal(partition_index("a", 64), 0xe40c292cu % 64);
	assert_int_equal(partition_index("a", 4096), 0xe40c292cu % 4096);
	assert_int_equal(partition_index("source-1", 64), 58);
	assert_int_equal(
	    partition_index("0b6f5e1e-8a58-4d8e-9a5f-0d7f3c1b2a11", 64), 54);
	assert_int_equal(partition_index("anything", 1), 0);
	assert_int_equal(partition_index("anything", 0), 0);
}

static void
test_spread(void **state)
{
	int  n[64] = { 0 }, i, lo = 1 << 30, hi = 0;
	char id[64];

	(void)state;
	for (i = 0; i < 64 * 200; i++) {
		snprintf(id, sizeof(id), "%08x-0000-4000-8000-%012d", i * 7919,
		    i);
		n[partition_index(id, 64)]++;
	}
	for (i = 0; i < 64; i++) {
		if (n[i] < lo)
			lo = n[i];
		if (n[i] > hi)
			hi = n[i];
	}
	/* 200 per partition on average: no partition empty or doubled. */
	assert_true(lo > 120);
	assert_true(hi < 280);
}

static void
test_count_bounds(void **state)
{
	struct config c;
	char	      err[256];

	(void)state;
	config_init(&c);
	assert_int_equal(config_int(&c, CONF_PARTITION_COUNT),
	    PARTITION_COUNT_DEFAULT);
	assert_int_equal(
	    config_set(&c, CONF_PARTITION_COUNT, "0", err, sizeof(err)),
	    -EINVAL);
	assert_int_equal(
	    config_set(&c, CONF_PARTITION_COUNT, "4097", err, sizeof(err)),
	    -EINVAL);
	assert_int_equal(
	    config_set(&c, CONF_PARTITION_COUNT, "4096", err, sizeof(err)), 0);
	assert_int_equal(config_int(&c, CONF_PARTITION_COUNT),
	    PARTITION_COUNT_MAX);
	config_clear(&c);
}

static void
test_body_coll(void **state)
{
	char	name[STORE_BODY_COLL_MAX];
	int64_t t = 1764667199999LL; /* 2025-12-02T09:19:59.999Z */

	(void)state;
	store_body_coll(t, name);
	assert_string_equal(name, "bodies_202512020919");
	assert_int_equal(store_body_coll_end(name), 1764667200000LL);
	store_body_coll(1764667200000LL, name);
	assert_string_equal(name, "bodies_202512020920");
	store_body_coll(0, name);
	assert_string_equal(name, "bodies_197001010000");
	assert_int_equal(store_body_coll_end(name), STORE_BODY_SPAN_MS);
	/* Not body partitions. */
	assert_int_equal(store_body_coll_end("bodies"), -1);
	assert_int_equal(store_body_coll_end("bodies_dead"), -1);
	assert_int_equal(store_body_coll_end("bodies_20251202091"), -1);
	assert_int_equal(store_body_coll_end("bodies_2025120209100"), -1);
	assert_int_equal(store_body_coll_end("bodies_20251202x910"), -1);
	assert_int_equal(store_body_coll_end("bodies_202513020910"), -1);
	assert_int_equal(store_body_coll_end("seen_20251202"), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_body_coll),
		cmocka_unit_test(test_spread),
		cmocka_unit_test(test_count_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
