/*
 * Backoff and restart policy as data: full-jitter exponential backoff,
 * +/- percentage jitter, and a sliding window that counts deaths.
 */
#ifndef AR_LIB_BACKOFF_H
#define AR_LIB_BACKOFF_H

#include <stdint.h>

/*
 * Full jitter (AWS architecture blog): a uniform draw in
 * [base, min(cap, base * 2^attempt)]. attempt counts from 0.
 */
int64_t backoff_full_jitter(unsigned attempt, int64_t base_ms, int64_t cap_ms);
/* value scaled by a uniform factor in [1 - pct/100, 1 + pct/100]. */
int64_t backoff_jitter_pct(int64_t value, unsigned pct);

#define CRASHWIN_MAX 16

/* Times of recent deaths, to detect a crash loop. */
struct crashwin {
	int64_t	 t[CRASHWIN_MAX];
	unsigned n;
};

/*
 * Record a death at now_ms and return how many deaths fall inside the last
 * window_ms (this one included).
 */
unsigned crashwin_record(struct crashwin *w, int64_t now_ms, int64_t window_ms);

#endif
