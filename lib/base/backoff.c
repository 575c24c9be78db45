/*
 * Backoff and crash-loop window. See backoff.h.
 */
#include "lib/base/backoff.h"
#include "lib/base/util.h"

int64_t
backoff_full_jitter(unsigned attempt, int64_t base_ms, int64_t cap_ms)
{
	int64_t hi = base_ms;

	while (attempt-- > 0 && hi < cap_ms)
		hi *= 2;
	if (hi > cap_ms)
		hi = cap_ms;
	if (hi <= base_ms)
		return hi;
	return base_ms +
	    (int64_t)util_random_below((uint64_t)(hi - base_ms + 1));
}

int64_t
backoff_jitter_pct(int64_t value, unsigned pct)
{
	int64_t span = value * (int64_t)pct / 100;

	if (span <= 0)
		return value;
	return value - span +
	    (int64_t)util_random_below((uint64_t)(2 * span + 1));
}

unsigned
crashwin_record(struct crashwin *w, int64_t now_ms, int64_t window_ms)
{
	unsigned i, kept = 0, count = 0;

	for (i = 0; i < w->n; i++)
		if (now_ms - w->t[i] < window_ms)
			w->t[kept++] = w->t[i];
	w->n = kept;
	if (w->n == CRASHWIN_MAX) {
		for (i = 1; i < w->n; i++)
			w->t[i - 1] = w->t[i];
		w->n--;
	}
	w->t[w->n++] = now_ms;
	for (i = 0; i < w->n; i++)
		if (now_ms - w->t[i] < window_ms)
			count++;
	return count;
}
