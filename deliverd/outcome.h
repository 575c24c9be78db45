/*
 * What a callback's answer means for a batch (Fluent Bit's OK / RETRY /
 * ERROR), when to try again, and when to give up. Pure functions.
 */
#ifndef AR_DELIVERD_OUTCOME_H
#define AR_DELIVERD_OUTCOME_H

#include <stdbool.h>
#include <stdint.h>

enum deliver_result {
	DELIVER_OK,    /* 2xx: delivered */
	DELIVER_RETRY, /* 408, 429, 5xx, timeouts, transport errors */
	DELIVER_ERROR, /* other answers: a few retries, then dead */
	DELIVER_GONE,  /* 410: pause the source's deliveries */
};

#define DELIVER_ERROR_RETRIES	   3 /* retries of an ERROR */
#define DELIVER_JITTER_PCT	   20
#define DELIVER_RETRY_AFTER_MIN_MS 1000LL
#define DELIVER_RETRY_AFTER_MAX_MS (6LL * 3600 * 1000)
#define DELIVER_SCHEDULE_MAX	   32

/* Classify a finished POST. */
enum deliver_result deliver_classify(long status, int curl_code, bool blocked);
const char	   *deliver_result_name(enum deliver_result r);

/*
 * Delay before the next attempt after the failures-th failure (>= 1):
 * the schedule's entry (the last one repeats, seconds) with +/-20 %
 * jitter, or the server's Retry-After (>= 0 s) clamped to [1 s, 6 h] with
 * up to +20 % (never earlier than asked). Milliseconds.
 */
int64_t deliver_retry_delay(const int64_t *sched_s, int nsched,
    unsigned failures, int64_t retry_after_s);

/*
 * After a failed attempt: true when the batch must become a dead letter.
 * errors counts ERROR outcomes since the batch was (re)queued; age_ms is
 * its age; *delay_ms (in/out) is shortened so that the last try happens
 * at max_age.
 */
bool deliver_give_up(enum deliver_result r, unsigned errors, int64_t age_ms,
    int64_t max_age_ms, int64_t *delay_ms);

#endif
