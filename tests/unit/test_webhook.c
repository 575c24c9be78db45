/*
 * Unit tests of lib/crypto/webhook.c's Standard Webhooks signing, and of
 * the test tree's verification (tests/support/webhookverify.c), against
 * the specification's published vector.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/crypto/crypto.h"
#include "tests/support/webhookverify.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define MSG_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define TS     1614265330LL
#define BODY   "{\"test\": 2432232314}"
#define SIG    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

static void
test_vector(void **state)
{
	char *sig;

	sig = webhook_sign(SECRET, MSG_ID, TS, BODY, strlen(BODY));
	assert_non_null(sig);
	assert_string_equal(sig, SIG);
	free(sig);
	/* The prefix is optional, as in the reference libraries. */
	sig = webhook_sign(SECRET + 6, MSG_ID, TS, BODY, strlen(BODY));
	assert_non_null(sig);
	assert_string_equal(sig, SIG);
	free(sig);
}

static void
test_verify(void **state)
{
	const char *body = BODY;
	size_t	    len = strlen(BODY);

	assert_true(webhook_verify(SECRET, MSG_ID, TS, body, len, SIG));
	/* Several signatures (key rotation): any one may match. */
	assert_true(webhook_verify(SECRET, MSG_ID, TS, body, len,
	    "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= " SIG));
	assert_true(webhook_verify(SECRET, MSG_ID, TS, body, len,
	    SIG " v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
	assert_true(
	    webhook_verify(SECRET, MSG_ID, TS, body, len, "v1a,xyz " SIG));
	/* Wrong body, id, timestamp, secret, version, or no match. */
	assert_false(
	    webhook_verify(SECRET, MSG_ID, TS, "{\"test\": 1}", 11, SIG));
	assert_false(webhook_verify(SECRET, "msg_other", TS, body, len, SIG));
	assert_false(webhook_verify(SECRET, MSG_ID, TS + 1, body, len, SIG));
	assert_false(webhook_verify("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	    MSG_ID, TS, body, len, SIG));
	assert_false(webhook_verify(SECRET, MSG_ID, TS, body, len,
	    "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
	assert_false(webhook_verify(SECRET, MSG_ID, TS, body, len,
	    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE"));
	assert_false(webhook_verify(SECRET, MSG_ID, TS, body, len,
	    "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
	assert_false(webhook_verify(SECRET, MSG_ID, TS, body, len, ""));
	assert_false(webhook_verify(SECRET, MSG_ID, TS, body, len, "v1,"));
	assert_false(webhook_verify(SECRET, MSG_ID, TS, body, len, NULL));
}

static void
test_bad_secret(void **state)
{
	assert_null(webhook_sign("whsec_", MSG_ID, TS, BODY, 4));
	assert_null(webhook_sign("whsec_not base64!", MSG_ID, TS, BODY, 4));
	assert_null(webhook_sign(NULL, MSG_ID, TS, BODY, 4));
	assert_false(webhook_verify("whsec_***", MSG_ID, TS, BODY, 4, SIG));
}

static void
test_secret_new(void **state)
{
	unsigned char *key;
	size_t	       keylen;
	char	      *a, *b, *sig;

	a = webhook_secret_new();
	b = webhook_secret_new();
	assert_non_null(a);
	assert_non_null(b);
	assert_string_not_equal(a, b);
	assert_true(strncmp(a, "whsec_", 6) == 0);
	assert_int_equal(strlen(a), 6 + 44);
	assert_int_equal(b64_decode(a + 6, strlen(a + 6), &key, &keylen), 0);
	assert_int_equal(keylen, 32);
	crypto_free_secret(key, keylen);
	sig = webhook_sign(a, "msg_1", 1, "{}", 2);
	assert_non_null(sig);
	assert_true(webhook_verify(a, "msg_1", 1, "{}", 2, sig));
	assert_false(webhook_verify(b, "msg_1", 1, "{}", 2, sig));
	free(sig);
	/* An empty body is signed too. */
	sig = webhook_sign(a, "msg_1", 1, NULL, 0);
	assert_non_null(sig);
	assert_true(webhook_verify(a, "msg_1", 1, "", 0, sig));
	free(sig);
	crypto_free_secret(a, strlen(a));
	crypto_free_secret(b, strlen(b));
}

static void
test_hmac_matches_webhook(void **state)
{
	static const char data[] = MSG_ID ".1614265330." BODY;
	unsigned char	 *key;
	size_t		  keylen;
	uint8_t		  mac[32];
	char		 *b64;

	assert_int_equal(
	    b64_decode(SECRET + 6, strlen(SECRET) - 6, &key, &keylen), 0);
	assert_int_equal(keylen, 24);
	crypto_hmac_sha256(key, keylen, data, strlen(data), mac);
	b64 = b64_encode(mac, sizeof(mac), false, true);
	assert_string_equal(b64, SIG + 3);
	free(b64);
	crypto_free_secret(key, keylen);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vector),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_bad_secret),
		cmocka_unit_test(test_secret_new),
		cmocka_unit_test(test_hmac_matches_webhook),
	};

	if (crypto_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
