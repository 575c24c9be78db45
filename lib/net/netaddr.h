/*
 * Which addresses a callback may reach. Unless the operator allows private
 * networks, only public unicast addresses: never loopback, RFC 1918,
 * link-local (cloud metadata 169.254.169.254 included), CGNAT 100.64/10,
 * multicast, unspecified, reserved, documentation or benchmark ranges,
 * ULA fc00::/7, IPv4-mapped/compatible/NAT64/6to4 forms of those.
 */
#ifndef AR_LIB_NETADDR_H
#define AR_LIB_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* True when sa is a public unicast address. */
bool netaddr_is_public(const struct sockaddr *sa);
/*
 * Check a URL's host for the API: rejects non-canonical numeric spellings
 * (decimal 2130706433, octal 0177.0.0.1, hex 0x7f000001, short forms),
 * then resolves it and requires every address to be public unless
 * allow_private. 0 or -EINVAL/-EHOSTUNREACH with err[] saying why.
 */
int netaddr_check_host(const char *host, bool allow_private, char *err,
    size_t errlen);
/*
 * The part of netaddr_check_host() that needs no resolver: host syntax,
 * numeric spellings, and for IP literals (*literal set) the public check.
 * Lets an event-loop caller resolve names asynchronously and then call
 * netaddr_is_public() on each address. 0, -EINVAL or -EHOSTUNREACH.
 */
int netaddr_check_syntax(const char *host, bool allow_private, bool *literal,
    char *err, size_t errlen);

#endif
