/*
 * A circuit breaker per callback: after threshold consecutive failures
 * it opens (the queue is held, one batch probes at a time); the first
 * success closes it. Transitions are returned so the caller logs each
 * once. Pure.
 */
#ifndef AR_DELIVERD_BREAKER_H
#define AR_DELIVERD_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

struct breaker {
	unsigned threshold;
	unsigned consecutive; /* failures in a row */
	bool	 open;
	int64_t	 down_since; /* ms of the first failure in a row */
};

enum breaker_event {
	BREAKER_NONE,
	BREAKER_OPENED,
	BREAKER_CLOSED,
};

void breaker_init(struct breaker *b, unsigned threshold);
/* A failed attempt at now (ms). */
enum breaker_event breaker_failure(struct breaker *b, int64_t now);
/*
 * A delivered batch. *attempts (optional) receives how many attempts
 * the streak took, this successful one included.
 */
enum breaker_event breaker_success(struct breaker *b, unsigned *attempts);
/* How many batches may be in flight: normal when closed, 1 when open. */
unsigned breaker_window(const struct breaker *b, unsigned normal);

#endif
