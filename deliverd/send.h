/*
 * Signing and POSTing a batch to a callback: Standard Webhooks headers
 * (webhook-id, webhook-timestamp, webhook-signature with one signature,
 * or two while a rotated-out secret is still valid), Content-Type and
 * User-Agent, over lib/httpc.
 */
#ifndef AR_DELIVERD_SEND_H
#define AR_DELIVERD_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/net/httpc.h"

/*
 * The webhook-signature value: "v1,<sig>" with secret, followed by
 * " v1,<sig>" with prev_secret when prev_secret is non-NULL and
 * prev_until > now_ms. malloc'd; NULL on a bad secret or no memory.
 */
char *send_signature(const char *secret, const char *prev_secret,
    int64_t prev_until, int64_t now_ms, const char *webhook_id, long long ts,
    const char *body, size_t len);

struct send_params {
	const char *url;
	const char *webhook_id;
	const char *secret;
	const char *prev_secret; /* NULL: none */
	int64_t	    prev_until;	 /* ms */
	const char *body;
	size_t	    body_len;
	long	    timeout_ms;
	bool	    allow_private;
};

/*
 * Sign (timestamp = now) and start the POST. 0 or -errno (-EINVAL for an
 * unusable secret).
 */
int send_post(struct httpc *h, const struct send_params *p, httpc_done_cb done,
    void *arg, struct httpc_req **out);

#endif
