/*
 * Unit tests of deliverd's pure parts: outcome classification, the retry
 * schedule with jitter and Retry-After, giving up, the circuit breaker,
 * batch and alert bodies, webhook ids, signatures (the Standard
 * Webhooks published vector, and two signatures during a rotation), and
 * the set of batches delivered whose record a load may not see yet.
 * deliverd/ is not part of libar, so its pure files are compiled in here.
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
#include <curl/curl.h>

#include "deliverd/breaker.c"
#include "deliverd/delivered.c"
#include "deliverd/outcome.c"
#include "deliverd/send.c"
#include "lib/base/json.h"
#include "lib/batch/batch.h"
#include "lib/crypto/crypto.h"
#include "tests/support/webhookverify.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define MSG_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define TS     1614265330LL
#define BODY   "{\"test\": 2432232314}"
#define SIG    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

static void
test_classify(void **state)
{
	assert_int_equal(deliver_classify(200, 0, false), DELIVER_OK);
	assert_int_equal(deliver_classify(204, 0, false), DELIVER_OK);
	assert_int_equal(deliver_classify(299, 0, false), DELIVER_OK);
	assert_int_equal(deliver_classify(408, 0, false), DELIVER_RETRY);
	assert_int_equal(deliver_classify(429, 0, false), DELIVER_RETRY);
	assert_int_equal(deliver_classify(500, 0, false), DELIVER_RETRY);
	assert_int_equal(deliver_classify(503, 0, false), DELIVER_RETRY);
	assert_int_equal(deliver_classify(599, 0, false), DELIVER_RETRY);
	assert_int_equal(deliver_classify(410, 0, false), DELIVER_GONE);
	assert_int_equal(deliver_classify(400, 0, false), DELIVER_ERROR);
	assert_int_equal(deliver_classify(401, 0, false), DELIVER_ERROR);
	assert_int_equal(deliver_classify(404, 0, false), DELIVER_ERROR);
	assert_int_equal(deliver_classify(413, 0, false), DELIVER_ERROR);
	assert_int_equal(deliver_classify(301, 0, false), DELIVER_ERROR);
	/* No answer: timeouts, refused, reset, DNS. */
	assert_int_equal(deliver_classify(0, CURLE_OPERATION_TIMEDOUT, false),
	    DELIVER_RETRY);
	assert_int_equal(deliver_classify(0, CURLE_COULDNT_CONNECT, false),
	    DELIVER_RETRY);
	assert_int_equal(deliver_classify(0, CURLE_GOT_NOTHING, false),
	    DELIVER_RETRY);
	assert_int_equal(deliver_classify(0, CURLE_RECV_ERROR, false),
	    DELIVER_RETRY);
	assert_int_equal(deliver_classify(0, CURLE_COULDNT_RESOLVE_HOST, false),
	    DELIVER_RETRY);
	assert_int_equal(
	    deliver_classify(0, CURLE_PEER_FAILED_VERIFICATION, false),
	    DELIVER_RETRY);
	/* Refused by the public-address check. */
	assert_int_equal(deliver_classify(0, CURLE_COULDNT_CONNECT, true),
	    DELIVER_ERROR);
	assert_string_equal(deliver_result_name(DELIVER_GONE), "gone");
}

static void
test_schedule(void **state)
{
	const int64_t sched[] = { 5, 30, 120, 600, 1800, 3600, 7200 };
	int64_t	      d;
	unsigned      f;
	int	      i;

	for (i = 0; i < 200; i++) {
		for (f = 1; f <= 10; f++) {
			int64_t base = sched[f - 1 < 7 ? f - 1 : 6] * 1000;

			d = deliver_retry_delay(sched, 7, f, -1);
			assert_true(d >= base * 80 / 100);
			assert_true(d <= base * 120 / 100);
		}
	}
	/* The jitter actually varies. */
	d = deliver_retry_delay(sched, 7, 3, -1);
	for (i = 0; i < 50; i++)
		if (deliver_retry_delay(sched, 7, 3, -1) != d)
			break;
	assert_true(i < 50);
	/* Retry-After: honoured, never earlier, bounded. */
	for (i = 0; i < 100; i++) {
		d = deliver_retry_delay(sched, 7, 1, 42);
		assert_true(d >= 42000 && d <= 42000 * 120 / 100);
		d = deliver_retry_delay(sched, 7, 1, 0);
		assert_true(d >= DELIVER_RETRY_AFTER_MIN_MS);
		d = deliver_retry_delay(sched, 7, 1, 10LL * 86400);
		assert_true(d <= DELIVER_RETRY_AFTER_MAX_MS * 120 / 100);
		assert_true(d >= DELIVER_RETRY_AFTER_MAX_MS);
	}
}

static void
test_give_up(void **state)
{
	int64_t	 delay, max = 72LL * 3600 * 1000;
	unsigned e;

	/* Other 4xx: three retries, then dead. */
	for (e = 1; e <= DELIVER_ERROR_RETRIES; e++) {
		delay = 5000;
		assert_false(
		    deliver_give_up(DELIVER_ERROR, e, 1000, max, &delay));
	}
	delay = 5000;
	assert_true(deliver_give_up(DELIVER_ERROR, DELIVER_ERROR_RETRIES + 1,
	    1000, max, &delay));
	/* Retryable: until max age, the last try at the deadline. */
	delay = 7200000;
	assert_false(
	    deliver_give_up(DELIVER_RETRY, 0, max - 1000, max, &delay));
	assert_int_equal(delay, 1000);
	delay = 5000;
	assert_true(deliver_give_up(DELIVER_RETRY, 0, max, max, &delay));
	delay = 5000;
	assert_false(deliver_give_up(DELIVER_RETRY, 0, 0, max, &delay));
	assert_int_equal(delay, 5000);
}

static void
test_breaker(void **state)
{
	struct breaker b;
	unsigned       n;

	breaker_init(&b, 3);
	assert_int_equal(breaker_window(&b, 4), 4);
	assert_int_equal(breaker_failure(&b, 1000), BREAKER_NONE);
	assert_int_equal(breaker_failure(&b, 2000), BREAKER_NONE);
	assert_int_equal(breaker_failure(&b, 3000), BREAKER_OPENED);
	assert_true(b.open);
	assert_int_equal(b.down_since, 1000);
	assert_int_equal(breaker_window(&b, 4), 1);
	/* Opened once: later failures say nothing new. */
	assert_int_equal(breaker_failure(&b, 4000), BREAKER_NONE);
	assert_int_equal(breaker_failure(&b, 5000), BREAKER_NONE);
	assert_int_equal(breaker_success(&b, &n), BREAKER_CLOSED);
	assert_int_equal(n, 6);
	assert_false(b.open);
	assert_int_equal(breaker_window(&b, 4), 4);
	/* A success below the threshold closes nothing. */
	assert_int_equal(breaker_failure(&b, 6000), BREAKER_NONE);
	assert_int_equal(breaker_success(&b, &n), BREAKER_NONE);
	assert_int_equal(n, 2);
	assert_int_equal(b.consecutive, 0);
}

static void
test_body(void **state)
{
	struct batch_body b;
	const char	 *l1 = "{\"id\":\"a\",\"x\":1}";
	const char	 *l2 = "{\"id\":\"b\",\"y\":\"\\u00e9\"}";
	yajl_val	  v;
	char		  err[128];

	assert_int_equal(batch_body_begin(&b, "src\"1", "bid-1"), 0);
	assert_true(batch_body_fits(&b, 1u << 30, 10)); /* first fits */
	assert_int_equal(batch_body_add(&b, l1, strlen(l1)), 0);
	assert_int_equal(batch_body_add(&b, l2, strlen(l2)), 0);
	assert_int_equal(batch_body_end(&b), 0);
	assert_string_equal(b.buf,
	    "{\"type\":\"logs\",\"sourceId\":"
	    "\"src\\\"1\",\"batchId\":\"bid-1\",\"logs\":[{\"id\":\"a\","
	    "\"x\":1},{\"id\":\"b\",\"y\":\"\\u00e9\"}]}");
	assert_int_equal(b.nlogs, 2);
	assert_int_equal(json_parse(b.buf, b.len, 16, &v, err, sizeof(err)), 0);
	assert_non_null(v);
	yajl_tree_free(v);
	/* Size accounting: exactly at the limit fits, one more does not. */
	assert_true(batch_body_fits(&b, 10, b.len + 1 + 10 + 2));
	assert_false(batch_body_fits(&b, 11, b.len + 1 + 10 + 2));
	batch_body_clear(&b);

	/* An empty batch is still valid JSON. */
	assert_int_equal(batch_body_begin(&b, "s", "b"), 0);
	assert_int_equal(batch_body_end(&b), 0);
	assert_string_equal(b.buf,
	    "{\"type\":\"logs\",\"sourceId\":\"s\","
	    "\"batchId\":\"b\",\"logs\":[]}");
	batch_body_clear(&b);
}

static void
test_alert_body(void **state)
{
	size_t len;
	char  *a;

	a = batch_alert_body("s1", "dead_letter", "batch \"x\" died",
	    1795608343123LL, &len);
	assert_non_null(a);
	assert_string_equal(a,
	    "{\"type\":\"alert\",\"sourceId\":\"s1\","
	    "\"alert\":\"dead_letter\",\"message\":\"batch \\\"x\\\" died\","
	    "\"at\":\"2026-11-25T12:05:43Z\"}");
	assert_int_equal(len, strlen(a));
	free(a);
}

static void
test_watermark_body(void **state)
{
	size_t len;
	char  *a;

	a = batch_watermark_body("s1", "login", 1795608343123LL, &len);
	assert_non_null(a);
	assert_string_equal(a,
	    "{\"type\":\"watermark\",\"sourceId\":\"s1\","
	    "\"application\":\"login\","
	    "\"through\":\"2026-11-25T12:05:43.123Z\"}");
	assert_int_equal(len, strlen(a));
	free(a);
}

static void
test_webhook_id(void **state)
{
	char id[48];

	batch_webhook_id("7ae9251d-7796-4ff9-877e-77215e60caab", id);
	assert_string_equal(id, "msg_7ae9251d77964ff9877e77215e60caab");
}

static void
test_signature(void **state)
{
	const char *old = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
	char	   *s;

	/* The specification's published vector. */
	s = send_signature(SECRET, NULL, 0, 0, MSG_ID, TS, BODY, strlen(BODY));
	assert_non_null(s);
	assert_string_equal(s, SIG);
	free(s);
	/* Rotation: both while the old secret is valid, new one first. */
	s = send_signature(SECRET, old, 2000, 1000, MSG_ID, TS, BODY,
	    strlen(BODY));
	assert_non_null(s);
	assert_non_null(strstr(s, SIG " v1,"));
	assert_true(webhook_verify(old, MSG_ID, TS, BODY, strlen(BODY), s));
	assert_true(webhook_verify(SECRET, MSG_ID, TS, BODY, strlen(BODY), s));
	free(s);
	/* Expired: only the new one. */
	s = send_signature(SECRET, old, 1000, 1000, MSG_ID, TS, BODY,
	    strlen(BODY));
	assert_string_equal(s, SIG);
	free(s);
	/* A bad secret signs nothing. */
	assert_null(send_signature("whsec_!!", NULL, 0, 0, MSG_ID, TS, BODY,
	    strlen(BODY)));
}

/* The delivered set: what a load that read the store at read_at skips. */
static void
test_delivered(void **state)
{
	char   id[40];
	size_t i;

	delivered_clear();
	/* Far more than the 1 024 the old ring held, none recorded. */
	for (i = 0; i < 5000; i++) {
		snprintf(id, sizeof(id), "b-%zu", i);
		delivered_add(id, 1000);
	}
	assert_int_equal(delivered_count(), 5000);
	for (i = 0; i < 5000; i++) {
		snprintf(id, sizeof(id), "b-%zu", i);
		assert_true(delivered_hides(id, 0));
		assert_true(delivered_hides(id, 999999));
	}
	assert_false(delivered_hides("never", 0));

	/* Recorded at 2000: a read begun before still hides it, not after. */
	delivered_recorded("b-0", 2000);
	assert_true(delivered_hides("b-0", 1500));
	assert_true(delivered_hides("b-0", 2000));
	assert_false(delivered_hides("b-0", 2001));
	assert_true(delivered_hides("b-0", 0)); /* a late hint: any read */

	/* A failed record: pending again, a load queues it. */
	delivered_forget("b-1");
	assert_false(delivered_hides("b-1", 0));
	assert_int_equal(delivered_count(), 4999);
	delivered_add("b-1", 3000); /* sent again */
	assert_true(delivered_hides("b-1", 999999));

	/*
	 * Expiry: b-0 recorded long ago goes; b-2, the next in order and
	 * not recorded, stays and holds every younger one back.
	 */
	delivered_add("late", 2000 + DELIVERED_KEEP_MS + 1);
	assert_false(delivered_hides("b-0", 0));
	assert_true(delivered_hides("b-2", 0));
	assert_int_equal(delivered_count(), 5000);
	for (i = 2; i < 5000; i++) {
		snprintf(id, sizeof(id), "b-%zu", i);
		delivered_recorded(id, 5000);
	}
	delivered_recorded("b-1", 5000);
	delivered_add("later", 5000 + DELIVERED_KEEP_MS + 1);
	assert_int_equal(delivered_count(), 2); /* late, later */
	assert_true(delivered_hides("later", 0));
	delivered_clear();
	assert_int_equal(delivered_count(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_schedule),
		cmocka_unit_test(test_give_up),
		cmocka_unit_test(test_breaker),
		cmocka_unit_test(test_body),
		cmocka_unit_test(test_alert_body),
		cmocka_unit_test(test_watermark_body),
		cmocka_unit_test(test_webhook_id),
		cmocka_unit_test(test_signature),
		cmocka_unit_test(test_delivered),
	};

	if (crypto_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
