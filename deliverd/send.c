/*
 * Signing and sending. See send.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliverd/send.h"
#include "lib/base/util.h"
#include "lib/crypto/crypto.h"

char *
send_signature(const char *secret, const char *prev_secret, int64_t prev_until,
    int64_t now_ms, const char *webhook_id, long long ts, const char *body,
    size_t len)
{
	char  *a, *b, *out;
	size_t n;

	if ((a = webhook_sign(secret, webhook_id, ts, body, len)) == NULL)
		return NULL;
	if (prev_secret == NULL || prev_until <= now_ms)
		return a;
	if ((b = webhook_sign(prev_secret, webhook_id, ts, body, len)) == NULL)
		return a; /* a broken old secret must not stop delivery */
	n = strlen(a) + 1 + strlen(b) + 1;
	if ((out = malloc(n)) != NULL)
		snprintf(out, n, "%s %s", a, b);
	free(a);
	free(b);
	return out;
}

int
send_post(struct httpc *h, const struct send_params *p, httpc_done_cb done,
    void *arg, struct httpc_req **out)
{
	struct httpc_opts o;
	const char	 *hdrs[6];
	char		  h_id[96], h_ts[64], *h_sig = NULL, *sig;
	int64_t		  now = util_now_ms();
	long long	  ts = (long long)(now / 1000);
	size_t		  n;
	int		  rc;

	sig = send_signature(p->secret, p->prev_secret, p->prev_until, now,
	    p->webhook_id, ts, p->body, p->body_len);
	if (sig == NULL)
		return -EINVAL;
	n = strlen(sig) + sizeof("webhook-signature: ");
	if ((h_sig = malloc(n)) == NULL) {
		free(sig);
		return -ENOMEM;
	}
	snprintf(h_sig, n, "webhook-signature: %s", sig);
	free(sig);
	snprintf(h_id, sizeof(h_id), "webhook-id: %s", p->webhook_id);
	snprintf(h_ts, sizeof(h_ts), "webhook-timestamp: %lld", ts);
	hdrs[0] = "Content-Type: application/json";
	hdrs[1] = h_id;
	hdrs[2] = h_ts;
	hdrs[3] = h_sig;
	hdrs[4] = NULL;

	memset(&o, 0, sizeof(o));
	o.method = "POST";
	o.url = p->url;
	o.headers = hdrs;
	o.body = p->body;
	o.body_len = p->body_len;
	o.timeout_ms = p->timeout_ms;
	o.connect_timeout_ms = p->timeout_ms < 10000 ? p->timeout_ms : 10000;
	o.max_body = HTTPC_BODY_MAX_DEFAULT;
	o.allow_private = p->allow_private;
	o.user_agent = NULL; /* auditrelay/<version> */
	rc = httpc_start(h, &o, done, arg, out);
	free(h_sig);
	return rc;
}
