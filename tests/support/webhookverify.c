/*
 * Standard Webhooks verification for the tests. See webhookverify.h.
 * Moved out of lib/ (the daemons only sign): the expected entry is what
 * webhook_sign() makes, compared with each v1 entry of the header.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/crypto/crypto.h"
#include "tests/support/webhookverify.h"

bool
webhook_verify(const char *secret, const char *msg_id, long long ts,
    const void *body, size_t len, const char *header)
{
	char	   *want;
	const char *p, *tok;
	size_t	    tlen, wlen;
	bool	    ok = false;

	if (header == NULL)
		return false;
	if ((want = webhook_sign(secret, msg_id, ts, body, len)) == NULL)
		return false;
	wlen = strlen(want);
	for (p = header; *p != '\0';) {
		while (*p == ' ')
			p++;
		tok = p;
		while (*p != '\0' && *p != ' ')
			p++;
		tlen = (size_t)(p - tok);
		if (tlen < 3 || strncmp(tok, "v1,", 3) != 0)
			continue;
		if (crypto_ct_equal(tok, tlen, want, wlen))
			ok = true;
	}
	free(want);
	return ok;
}
