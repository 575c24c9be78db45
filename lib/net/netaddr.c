/*
 * Public-address checks for callback URLs. See netaddr.h.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lib/base/util.h"
#include "lib/net/netaddr.h"

struct v4range {
	uint32_t net;
	unsigned bits;
};

/* IPv4 ranges that are never a callback's public address. */
static const struct v4range v4_blocked[] = {
	{ 0x00000000, 8 },  /* 0.0.0.0/8 "this network" */
	{ 0x0a000000, 8 },  /* 10/8 private */
	{ 0x64400000, 10 }, /* 100.64/10 CGNAT */
	{ 0x7f000000, 8 },  /* 127/8 loopback */
	{ 0xa9fe0000, 16 }, /* 169.254/16 link-local, metadata */
	{ 0xac100000, 12 }, /* 172.16/12 private */
	{ 0xc0000000, 24 }, /* 192.0.0/24 IETF protocol assignments */
	{ 0xc0000200, 24 }, /* 192.0.2/24 TEST-NET-1 */
	{ 0xc0586300, 24 }, /* 192.88.99/24 6to4 relay anycast */
	{ 0xc0a80000, 16 }, /* 192.168/16 private */
	{ 0xc6120000, 15 }, /* 198.18/15 benchmarking */
	{ 0xc6336400, 24 }, /* 198.51.100/24 TEST-NET-2 */
	{ 0xcb007100, 24 }, /* 203.0.113/24 TEST-NET-3 */
	{ 0xe0000000, 4 },  /* 224/4 multicast */
	{ 0xf0000000, 4 },  /* 240/4 reserved, broadcast */
};

struct v6range {
	uint8_t	 net[16];
	unsigned bits;
};

/* IPv6 ranges inside 2000::/3 that are not public unicast. */
static const struct v6range v6_blocked[] = {
	/* 2001::/23 IETF protocol assignments (Teredo, ORCHID, benchmarking) */
	{ { 0x20, 0x01, 0x00, 0x00 }, 23 },
	/* 2001:db8::/32 documentation */
	{ { 0x20, 0x01, 0x0d, 0xb8 }, 32 },
	/* 3fff::/20 documentation (RFC 9637) */
	{ { 0x3f, 0xff, 0x00, 0x00 }, 20 },
};

/*
 * True when the top bits of a (network byte order, len bytes) match those of
 * net.
 */
static int
netaddr_prefix_match(const uint8_t *a, const uint8_t *net, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;
	uint8_t	 mask;

	if (memcmp(a, net, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (net[full] & mask);
}

/* True when the host-order IPv4 address is public unicast. */
static bool
netaddr_v4_is_public(uint32_t a)
{
	size_t i;

	for (i = 0; i < nitems(v4_blocked); i++) {
		uint32_t mask = v4_blocked[i].bits == 0 ?
		    0 :
		    0xffffffffu << (32 - v4_blocked[i].bits);

		if ((a & mask) == v4_blocked[i].net)
			return false;
	}
	return true;
}

/* Host-order IPv4 from four network-order bytes. */
static uint32_t
netaddr_v4_from(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	    (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/*
 * True when the IPv6 address is public unicast: inside 2000::/3 and outside
 * the special ranges; embedded IPv4 forms (mapped, compatible, NAT64, 6to4)
 * are judged by their IPv4 address.
 */
static bool
netaddr_v6_is_public(const uint8_t *a)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff,
		0xff };
	static const uint8_t zero[12] = { 0 };
	static const uint8_t nat64[12] = { 0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0,
		0, 0, 0, 0 };
	size_t		     i;

	if (memcmp(a, mapped, 12) == 0)
		return netaddr_v4_is_public(netaddr_v4_from(a + 12));
	if (memcmp(a, zero, 12) == 0) {
		/* ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d. */
		if (netaddr_v4_from(a + 12) <= 1)
			return false;
		return netaddr_v4_is_public(netaddr_v4_from(a + 12));
	}
	if (memcmp(a, nat64, 12) == 0)
		return netaddr_v4_is_public(netaddr_v4_from(a + 12));
	if (a[0] == 0x20 && a[1] == 0x02) /* 6to4 2002::/16 */
		return netaddr_v4_is_public(netaddr_v4_from(a + 2));
	if ((a[0] & 0xe0) != 0x20) /* outside 2000::/3 */
		return false;
	for (i = 0; i < nitems(v6_blocked); i++)
		if (netaddr_prefix_match(a, v6_blocked[i].net,
			v6_blocked[i].bits))
			return false;
	return true;
}

bool
netaddr_is_public(const struct sockaddr *sa)
{
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		return netaddr_v4_is_public(ntohl(s4->sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		return netaddr_v6_is_public(s6->sin6_addr.s6_addr);
	}
	return false;
}

/* True when s is a canonical dotted quad: 4 decimal parts, no leading 0s. */
static bool
netaddr_is_dotted_quad(const char *s)
{
	int parts = 0, digits, val;

	for (;;) {
		digits = 0;
		val = 0;
		while (isdigit((unsigned char)*s)) {
			if (digits > 0 && val == 0)
				return false; /* leading zero */
			val = val * 10 + (*s - '0');
			if (++digits > 3 || val > 255)
				return false;
			s++;
		}
		if (digits == 0)
			return false;
		parts++;
		if (*s == '\0')
			return parts == 4;
		if (*s != '.' || parts == 4)
			return false;
		s++;
	}
}

/*
 * True when the last DNS label looks numeric (all digits, or 0x hex), which
 * URL parsers and inet_aton() take as an IPv4 address.
 */
static bool
netaddr_last_label_numeric(const char *s)
{
	const char *p, *last = s;
	size_t	    n;

	n = strlen(s);
	if (n > 0 && s[n - 1] == '.')
		n--;
	for (p = s; p < s + n; p++)
		if (*p == '.')
			last = p + 1;
	if (last == s + n)
		return false;
	if ((s + n - last) >= 2 && last[0] == '0' &&
	    (last[1] == 'x' || last[1] == 'X'))
		return true;
	for (p = last; p < s + n; p++)
		if (!isdigit((unsigned char)*p))
			return false;
	return true;
}

/* True when s is a syntactically valid DNS host name (LDH labels). */
static bool
netaddr_is_hostname(const char *s)
{
	size_t len = strlen(s), label = 0, i;

	if (len == 0 || len > 253)
		return false;
	if (s[len - 1] == '.')
		len--;
	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-')
			return false;
		if (c == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && s[len - 1] != '-';
}

int
netaddr_check_syntax(const char *host, bool allow_private, bool *literal,
    char *err, size_t errlen)
{
	char		    buf[256];
	struct sockaddr_in  s4;
	struct sockaddr_in6 s6;
	struct in_addr	    ia;
	size_t		    len;

	*literal = false;
	if (host == NULL || (len = strlen(host)) == 0) {
		snprintf(err, errlen, "the host is empty");
		return -EINVAL;
	}
	if (host[0] == '[') {
		if (len < 3 || host[len - 1] != ']' || len - 2 >= sizeof(buf)) {
			snprintf(err, errlen, "the IPv6 literal is malformed");
			return -EINVAL;
		}
		memcpy(buf, host + 1, len - 2);
		buf[len - 2] = '\0';
		memset(&s6, 0, sizeof(s6));
		s6.sin6_family = AF_INET6;
		if (strchr(buf, '%') != NULL ||
		    inet_pton(AF_INET6, buf, &s6.sin6_addr) != 1) {
			snprintf(err, errlen, "the IPv6 literal is malformed");
			return -EINVAL;
		}
		*literal = true;
		if (IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr)) {
			snprintf(err, errlen,
			    "IPv4-mapped IPv6 addresses are "
			    "not accepted; write the IPv4 address itself");
			return -EINVAL;
		}
		if (!allow_private &&
		    !netaddr_is_public((struct sockaddr *)&s6)) {
			snprintf(err, errlen,
			    "the address is not a public "
			    "unicast address (loopback, private, link-local, "
			    "multicast or reserved)");
			return -EHOSTUNREACH;
		}
		return 0;
	}
	if (netaddr_is_dotted_quad(host)) {
		memset(&s4, 0, sizeof(s4));
		s4.sin_family = AF_INET;
		if (inet_pton(AF_INET, host, &s4.sin_addr) != 1) {
			snprintf(err, errlen, "the IPv4 address is malformed");
			return -EINVAL;
		}
		*literal = true;
		if (!allow_private &&
		    !netaddr_is_public((struct sockaddr *)&s4)) {
			snprintf(err, errlen,
			    "the address is not a public "
			    "unicast address (loopback, private, link-local, "
			    "CGNAT, multicast or reserved)");
			return -EHOSTUNREACH;
		}
		return 0;
	}
	if (inet_aton(host, &ia) != 0 || netaddr_last_label_numeric(host)) {
		snprintf(err, errlen,
		    "numeric host spellings other than a "
		    "dotted-decimal IPv4 address (decimal, octal, hex or "
		    "short forms) are not accepted");
		return -EINVAL;
	}
	if (!netaddr_is_hostname(host)) {
		snprintf(err, errlen, "the host is not a valid DNS name");
		return -EINVAL;
	}
	return 0;
}

int
netaddr_check_host(const char *host, bool allow_private, char *err,
    size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	char		name[256];
	bool		literal;
	int		rc, n = 0;

	if ((rc = netaddr_check_syntax(host, allow_private, &literal, err,
		 errlen)) != 0)
		return rc;
	if (literal)
		return 0;
	util_strlcpy(name, host, sizeof(name));
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(name, NULL, &hints, &res)) != 0) {
		snprintf(err, errlen, "the host does not resolve (%s)",
		    gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next, n++) {
		if (!allow_private && !netaddr_is_public(ai->ai_addr)) {
			snprintf(err, errlen,
			    "the host resolves to a "
			    "non-public address (loopback, private, link-local, "
			    "CGNAT, multicast or reserved)");
			freeaddrinfo(res);
			return -EHOSTUNREACH;
		}
	}
	freeaddrinfo(res);
	if (n == 0) {
		snprintf(err, errlen, "the host has no address");
		return -EHOSTUNREACH;
	}
	return 0;
}
