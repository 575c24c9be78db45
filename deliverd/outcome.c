/*
 * Outcome classification and the retry schedule. See outcome.h.
 */
#include <curl/curl.h>

#include "deliverd/outcome.h"
#include "lib/base/backoff.h"
#include "lib/base/util.h"

/*
 * 2xx OK; 410 GONE; 408, 429 and 5xx RETRY; any other answer ERROR. No
 * answer at all: RETRY (timeouts, refused connections, resets), except a
 * connection our public-address check refused, which no retry can fix
 * by itself: ERROR.
 */
enum deliver_result
deliver_classify(long status, int curl_code, bool blocked)
{
	if (blocked)
		return DELIVER_ERROR;
	if (curl_code != CURLE_OK || status == 0) {
		switch (curl_code) {
		case CURLE_UNSUPPORTED_PROTOCOL:
		case CURLE_URL_MALFORMAT:
			return DELIVER_ERROR;
		default:
			return DELIVER_RETRY;
		}
	}
	if (status >= 200 && status < 300)
		return DELIVER_OK;
	if (status == 410)
		return DELIVER_GONE;
	if (status == 408 || status == 429 || (status >= 500 && status < 600))
		return DELIVER_RETRY;
	return DELIVER_ERROR;
}

const char *
deliver_result_name(enum deliver_result r)
{
	switch (r) {
	case DELIVER_OK:
		return "ok";
	case DELIVER_RETRY:
		return "retry";
	case DELIVER_ERROR:
		return "error";
	case DELIVER_GONE:
		return "gone";
	}
	return "?";
}

int64_t
deliver_retry_delay(const int64_t *sched_s, int nsched, unsigned failures,
    int64_t retry_after_s)
{
	int64_t	 base, ra;
	unsigned idx;

	if (retry_after_s >= 0) {
		ra = retry_after_s * 1000;
		if (ra < DELIVER_RETRY_AFTER_MIN_MS)
			ra = DELIVER_RETRY_AFTER_MIN_MS;
		if (ra > DELIVER_RETRY_AFTER_MAX_MS)
			ra = DELIVER_RETRY_AFTER_MAX_MS;
		return ra +
		    (int64_t)util_random_below(
			(uint64_t)(ra * DELIVER_JITTER_PCT / 100) + 1);
	}
	if (nsched <= 0)
		return 5000;
	idx = failures > 0 ? failures - 1 : 0;
	if (idx >= (unsigned)nsched)
		idx = (unsigned)nsched - 1;
	base = sched_s[idx] * 1000;
	if (base <= 0)
		return 0;
	return backoff_jitter_pct(base, DELIVER_JITTER_PCT);
}

bool
deliver_give_up(enum deliver_result r, unsigned errors, int64_t age_ms,
    int64_t max_age_ms, int64_t *delay_ms)
{
	if (r == DELIVER_ERROR && errors > DELIVER_ERROR_RETRIES)
		return true;
	if (age_ms >= max_age_ms)
		return true;
	if (age_ms + *delay_ms > max_age_ms)
		*delay_ms = max_age_ms - age_ms;
	return false;
}
