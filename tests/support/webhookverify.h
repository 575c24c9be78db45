/*
 * Standard Webhooks verification, for the tests: the daemons only sign
 * (lib/crypto/webhook.c), verifying is a receiver's job.
 */
#ifndef AR_TESTS_SUPPORT_WEBHOOKVERIFY_H
#define AR_TESTS_SUPPORT_WEBHOOKVERIFY_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Verify a webhook-signature header (space-separated "<version>,<sig>"
 * entries) with one secret: true when a "v1" entry matches, compared in
 * constant time. Other versions are skipped.
 */
bool webhook_verify(const char *secret, const char *msg_id, long long ts,
    const void *body, size_t len, const char *header);

#endif
