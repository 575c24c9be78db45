/*
 * A set of 128-bit log ids (see recent.h): open addressing with linear
 * probing, no deletion; old ids go when the table is rebuilt, which
 * happens when it is half full (amortized O(1) per add).
 */
#include <stdlib.h>
#include <string.h>

#include "fetcherd/recent.h"
#include "lib/base/util.h"

#define RECENT_MIN_SLOTS 256

struct rslot {
	uint64_t hi, lo;
	int64_t	 time_ms;
	bool	 used;
};

struct recent {
	struct rslot *slot;
	size_t	      nslots; /* a power of two, or 0 */
	size_t	      n;
	int64_t	      horizon_ms;
	int64_t	      newest_ms; /* the newest event's time */
	bool	      full;	 /* until the horizon moves */
};

static int
recent_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The 32 hex chars of id as two words; false if id is not one. */
static bool
recent_key(const char *id, uint64_t *hi, uint64_t *lo)
{
	int i, v;

	*hi = *lo = 0;
	for (i = 0; i < 32; i++) {
		if ((v = recent_hex(id[i])) < 0)
			return false;
		if (i < 16)
			*hi = *hi << 4 | (uint64_t)v;
		else
			*lo = *lo << 4 | (uint64_t)v;
	}
	return id[32] == '\0';
}

/* The ids are SHA-256 prefixes: their bits are already uniform. */
static size_t
recent_find(const struct recent *r, uint64_t hi, uint64_t lo)
{
	size_t mask = r->nslots - 1, i = (size_t)(lo ^ hi) & mask;

	while (r->slot[i].used && (r->slot[i].hi != hi || r->slot[i].lo != lo))
		i = (i + 1) & mask;
	return i;
}

struct recent *
recent_new(void)
{
	return util_xcalloc(1, sizeof(struct recent));
}

void
recent_free(struct recent *r)
{
	if (r == NULL)
		return;
	free(r->slot);
	free(r);
}

void
recent_clear(struct recent *r)
{
	free(r->slot);
	r->slot = NULL;
	r->nslots = r->n = 0;
	r->newest_ms = 0;
	r->full = false;
}

bool
recent_has(const struct recent *r, const char *id)
{
	uint64_t hi, lo;

	if (r == NULL || r->n == 0 || !recent_key(id, &hi, &lo))
		return false;
	return r->slot[recent_find(r, hi, lo)].used;
}

/* Rebuild into nslots slots, keeping what is not older than the horizon. */
static void
recent_rebuild(struct recent *r, size_t nslots)
{
	struct rslot *old = r->slot;
	size_t	      nold = r->nslots, i, k;

	r->slot = util_xcalloc(nslots, sizeof(*r->slot));
	r->nslots = nslots;
	r->n = 0;
	for (i = 0; i < nold; i++) {
		if (!old[i].used || old[i].time_ms < r->horizon_ms)
			continue;
		k = recent_find(r, old[i].hi, old[i].lo);
		r->slot[k] = old[i];
		r->n++;
	}
	free(old);
}

void
recent_add(struct recent *r, const char *id, int64_t time_ms)
{
	uint64_t hi, lo;
	size_t	 k;

	if (time_ms < r->horizon_ms || !recent_key(id, &hi, &lo))
		return;
	if (r->full)
		return;
	if (r->nslots == 0)
		recent_rebuild(r, RECENT_MIN_SLOTS);
	else if ((r->n + 1) * 2 > r->nslots) {
		/* Drop the old first; grow only if what is left is many. */
		recent_rebuild(r, r->nslots);
		if (r->n * 4 > r->nslots && r->nslots < 2 * (size_t)RECENT_MAX)
			recent_rebuild(r, r->nslots * 2);
		if ((r->n + 1) * 2 > r->nslots) {
			/* Full of live ids: the store de-duplicates the rest. */
			r->full = true;
			return;
		}
	}
	k = recent_find(r, hi, lo);
	if (r->slot[k].used) {
		if (time_ms > r->slot[k].time_ms)
			r->slot[k].time_ms = time_ms;
		return;
	}
	r->slot[k].hi = hi;
	r->slot[k].lo = lo;
	r->slot[k].time_ms = time_ms;
	r->slot[k].used = true;
	r->n++;
	if (time_ms > r->newest_ms)
		r->newest_ms = time_ms;
}

void
recent_expire(struct recent *r, int64_t horizon_ms)
{
	if (horizon_ms > r->horizon_ms) {
		r->horizon_ms = horizon_ms;
		r->full = false;
	}
	/* A job gone quiet gives its memory back. */
	if (r->n > 0 && r->newest_ms < r->horizon_ms)
		recent_clear(r);
	else if (r->nslots > RECENT_MIN_SLOTS && r->n * 8 < r->nslots)
		recent_rebuild(r, r->nslots / 2);
}

size_t
recent_count(const struct recent *r)
{
	return r->n;
}
