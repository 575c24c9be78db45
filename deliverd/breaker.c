/*
 * Circuit breaker per callback. See breaker.h.
 */
#include <stddef.h>

#include "deliverd/breaker.h"

void
breaker_init(struct breaker *b, unsigned threshold)
{
	b->threshold = threshold > 0 ? threshold : 1;
	b->consecutive = 0;
	b->open = false;
	b->down_since = 0;
}

enum breaker_event
breaker_failure(struct breaker *b, int64_t now)
{
	if (b->consecutive++ == 0)
		b->down_since = now;
	if (!b->open && b->consecutive >= b->threshold) {
		b->open = true;
		return BREAKER_OPENED;
	}
	return BREAKER_NONE;
}

enum breaker_event
breaker_success(struct breaker *b, unsigned *attempts)
{
	bool was_open = b->open;

	if (attempts != NULL)
		*attempts = b->consecutive + 1;
	b->consecutive = 0;
	b->open = false;
	b->down_since = 0;
	return was_open ? BREAKER_CLOSED : BREAKER_NONE;
}

unsigned
breaker_window(const struct breaker *b, unsigned normal)
{
	return b->open ? 1 : (normal > 0 ? normal : 1);
}
