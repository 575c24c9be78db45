/*
 * Standard Webhooks signatures (https://www.standardwebhooks.com/):
 * webhook-signature is "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>",
 * the key being the base64 after "whsec_" in the secret.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gcrypt.h>

#include "lib/crypto/crypto.h"

#define WEBHOOK_PREFIX	"whsec_"
#define WEBHOOK_KEY_MAX 128

/*
 * Decode the key of a secret ("whsec_" + base64; the prefix is optional,
 * as in the reference libraries). 0 or -EINVAL/-ENOMEM; *key malloc'd.
 */
static int
webhook_secret_key(const char *secret, unsigned char **key, size_t *keylen)
{
	size_t plen = strlen(WEBHOOK_PREFIX);
	int    rc;

	*key = NULL;
	*keylen = 0;
	if (secret == NULL)
		return -EINVAL;
	if (strncmp(secret, WEBHOOK_PREFIX, plen) == 0)
		secret += plen;
	if ((rc = b64_decode(secret, strlen(secret), key, keylen)) != 0)
		return rc;
	if (*keylen == 0 || *keylen > WEBHOOK_KEY_MAX) {
		crypto_free_secret(*key, *keylen);
		*key = NULL;
		*keylen = 0;
		return -EINVAL;
	}
	return 0;
}

/*
 * The raw signature: HMAC-SHA256(key, msg_id "." ts "." body) into
 * mac[32]. 0 or -EINVAL (bad secret) / -ENOMEM / -EIO.
 */
static int
webhook_mac(const char *secret, const char *msg_id, long long ts,
    const void *body, size_t len, uint8_t mac[32])
{
	unsigned char *key = NULL;
	size_t	       keylen = 0;
	gcry_buffer_t  iov[4];
	char	       tsbuf[32];
	int	       rc;

	if (msg_id == NULL || (body == NULL && len > 0))
		return -EINVAL;
	if ((rc = crypto_init()) != 0)
		return rc;
	if ((rc = webhook_secret_key(secret, &key, &keylen)) != 0)
		return rc;
	snprintf(tsbuf, sizeof(tsbuf), ".%lld.", ts);
	memset(iov, 0, sizeof(iov));
	iov[0].data = key;
	iov[0].len = keylen;
	iov[1].data = (void *)(uintptr_t)msg_id;
	iov[1].len = strlen(msg_id);
	iov[2].data = tsbuf;
	iov[2].len = strlen(tsbuf);
	iov[3].data = (void *)(uintptr_t)body;
	iov[3].len = len;
	rc = gcry_md_hash_buffers(GCRY_MD_SHA256, GCRY_MD_FLAG_HMAC, mac, iov,
		 4) == 0 ?
	    0 :
	    -EIO;
	crypto_free_secret(key, keylen);
	return rc;
}

/* A new webhook secret: "whsec_" + base64 of 32 random bytes. malloc'd. */
char *
webhook_secret_new(void)
{
	unsigned char raw[32];
	char	     *b64, *out = NULL;
	size_t	      n;

	crypto_random(raw, sizeof(raw));
	if ((b64 = b64_encode(raw, sizeof(raw), false, true)) == NULL)
		goto fail;
	n = strlen(WEBHOOK_PREFIX) + strlen(b64) + 1;
	if ((out = malloc(n)) != NULL)
		snprintf(out, n, "%s%s", WEBHOOK_PREFIX, b64);
	crypto_free_secret(b64, strlen(b64));
fail:
	explicit_bzero(raw, sizeof(raw));
	return out;
}

/*
 * The webhook-signature value "v1,<base64>" for one message. malloc'd;
 * NULL on a bad secret or out of memory.
 */
char *
webhook_sign(const char *secret, const char *msg_id, long long ts,
    const void *body, size_t len)
{
	uint8_t mac[32];
	char   *b64, *out = NULL;
	size_t	n;

	if (webhook_mac(secret, msg_id, ts, body, len, mac) != 0)
		return NULL;
	if ((b64 = b64_encode(mac, sizeof(mac), false, true)) == NULL)
		return NULL;
	n = 3 + strlen(b64) + 1;
	if ((out = malloc(n)) != NULL)
		snprintf(out, n, "v1,%s", b64);
	free(b64);
	return out;
}
