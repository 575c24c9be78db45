/*
 * Unit tests of lib/net/netaddr.c: every blocked range, IPv4-mapped and other
 * embedded forms, odd numeric spellings and host name syntax.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/net/netaddr.h"

/* True when the literal address text is judged public. */
static bool
is_public(const char *s)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(s, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, s, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, s, &s4->sin_addr), 1);
	}
	return netaddr_is_public((struct sockaddr *)&ss);
}

/* Every address of blocked[] judged not public, every one of allowed[] public. */
static void
expect_ranges(const char *const *blocked, size_t nblocked,
    const char *const *allowed, size_t nallowed)
{
	size_t i;

	for (i = 0; i < nblocked; i++)
		if (is_public(blocked[i]))
			fail_msg("%s judged public", blocked[i]);
	for (i = 0; i < nallowed; i++)
		if (!is_public(allowed[i]))
			fail_msg("%s judged not public", allowed[i]);
}

static void
test_v4_ranges(void **state)
{
	static const char *blocked[] = {
		"0.0.0.0",
		"0.255.255.255",
		"10.0.0.1",
		"10.255.255.255",
		"100.64.0.1",
		"100.127.255.254",
		"127.0.0.1",
		"127.1.2.3",
		"169.254.169.254",
		"169.254.0.1",
		"172.16.0.1",
		"172.31.255.255",
		"192.0.0.8",
		"192.0.2.1",
		"192.88.99.1",
		"192.168.0.1",
		"192.168.255.255",
		"198.18.0.1",
		"198.19.255.255",
		"198.51.100.7",
		"203.0.113.9",
		"224.0.0.1",
		"239.255.255.250",
		"240.0.0.1",
		"255.255.255.255",
	};
	static const char *allowed[] = {
		"8.8.8.8",
		"1.1.1.1",
		"100.63.255.255",
		"100.128.0.0",
		"172.15.255.255",
		"172.32.0.0",
		"192.0.1.1",
		"192.169.0.1",
		"198.17.255.255",
		"198.20.0.0",
		"9.255.255.255",
		"11.0.0.0",
		"126.255.255.255",
		"128.0.0.0",
		"169.253.255.255",
		"223.255.255.255",
		"203.0.114.1",
	};

	expect_ranges(blocked, sizeof(blocked) / sizeof(blocked[0]), allowed,
	    sizeof(allowed) / sizeof(allowed[0]));
}

static void
test_v6_ranges(void **state)
{
	static const char *blocked[] = {
		"::",
		"::1",
		"::ffff:127.0.0.1",
		"::ffff:10.1.2.3",
		"::ffff:169.254.169.254",
		"::127.0.0.1",
		"::10.0.0.1",
		"64:ff9b::7f00:1",
		"64:ff9b::a9fe:a9fe",
		"2002:7f00:1::1",
		"2002:c0a8:101::1",
		"fe80::1",
		"febf::1",
		"fec0::1",
		"fc00::1",
		"fd00:ec2::254",
		"ff02::1",
		"ff0e::1",
		"2001:db8::1",
		"2001::1",
		"2001:10::1",
		"2001:2::1",
		"3fff::1",
		"100::1",
		"4000::1",
		"1000::1",
		"::ffff:100.64.0.1",
		"::ffff:0.0.0.0",
	};
	static const char *allowed[] = {
		"2606:4700:4700::1111",
		"2a00:1450:4001::200e",
		"::ffff:8.8.8.8",
		"64:ff9b::808:808",
		"2002:808:808::1",
		"2400:cb00::1",
		"2001:4860:4860::8888",
	};

	expect_ranges(blocked, sizeof(blocked) / sizeof(blocked[0]), allowed,
	    sizeof(allowed) / sizeof(allowed[0]));
}

static void
test_other_family(void **state)
{
	struct sockaddr sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	assert_false(netaddr_is_public(&sa));
	assert_false(netaddr_is_public(NULL));
}

static void
test_spellings(void **state)
{
	static const char *bad[] = {
		"2130706433",
		"0177.0.0.1",
		"0x7f000001",
		"0x7f.0.0.1",
		"127.1",
		"127.0.1",
		"017700000001",
		"0x7F.1",
		"1.2.3.4.5",
		"01.1.1.1",
		"1.1.1.01",
		"256.1.1.1",
		"1.1.1.256",
		"example.123",
		"example.0x1f",
		"[::ffff:127.0.0.1]",
		"[::ffff:8.8.8.8]",
		"[::1",
		"[]",
		"[zz::1]",
		"[fe80::1%eth0]",
		"",
		"exa mple.com",
		"ex_ample.com",
		"-example.com",
		"example-.com",
		"a..b",
		".",
		"user@example.com",
		"example.com:80",
		"%65xample.com",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
	};
	char   err[256];
	bool   lit;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (netaddr_check_syntax(bad[i], true, &lit, err,
			sizeof(err)) == 0)
			fail_msg("%s accepted", bad[i]);
		assert_true(err[0] != '\0');
	}
}

static void
test_literals(void **state)
{
	char err[256];
	bool lit;

	assert_int_equal(
	    netaddr_check_syntax("127.0.0.1", false, &lit, err, sizeof(err)),
	    -EHOSTUNREACH);
	assert_true(lit);
	assert_int_equal(
	    netaddr_check_syntax("127.0.0.1", true, &lit, err, sizeof(err)), 0);
	assert_int_equal(
	    netaddr_check_syntax("[::1]", false, &lit, err, sizeof(err)),
	    -EHOSTUNREACH);
	assert_int_equal(
	    netaddr_check_syntax("[::1]", true, &lit, err, sizeof(err)), 0);
	assert_int_equal(
	    netaddr_check_syntax("10.0.0.1", false, &lit, err, sizeof(err)),
	    -EHOSTUNREACH);
	assert_int_equal(netaddr_check_syntax("169.254.169.254", false, &lit,
			     err, sizeof(err)),
	    -EHOSTUNREACH);
	assert_int_equal(
	    netaddr_check_syntax("8.8.8.8", false, &lit, err, sizeof(err)), 0);
	assert_true(lit);
	assert_int_equal(netaddr_check_syntax("[2606:4700:4700::1111]", false,
			     &lit, err, sizeof(err)),
	    0);
	assert_int_equal(
	    netaddr_check_syntax("example.com", false, &lit, err, sizeof(err)),
	    0);
	assert_false(lit);
	assert_int_equal(
	    netaddr_check_syntax("Example.COM.", false, &lit, err, sizeof(err)),
	    0);
	assert_int_equal(
	    netaddr_check_syntax("1e100.net", false, &lit, err, sizeof(err)),
	    0);
}

static void
test_resolve(void **state)
{
	char err[256];

	/* localhost resolves from /etc/hosts without a network. */
	assert_int_equal(
	    netaddr_check_host("localhost", false, err, sizeof(err)),
	    -EHOSTUNREACH);
	assert_int_equal(
	    netaddr_check_host("localhost", true, err, sizeof(err)), 0);
	assert_int_equal(
	    netaddr_check_host("0x7f000001", true, err, sizeof(err)), -EINVAL);
	assert_int_equal(
	    netaddr_check_host("127.0.0.1", false, err, sizeof(err)),
	    -EHOSTUNREACH);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v4_ranges),
		cmocka_unit_test(test_v6_ranges),
		cmocka_unit_test(test_other_family),
		cmocka_unit_test(test_spellings),
		cmocka_unit_test(test_literals),
		cmocka_unit_test(test_resolve),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
