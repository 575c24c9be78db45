/*
 * The watermark of each (source, application): the time T such that
 * every event with id.time <= T that auditrelay will ever read has been
 * delivered (2xx). Two halves, read in this order (docs/WATERMARK.md):
 *
 *  1. fetcherd's fetchedThrough.<app> in the source's fetch state
 *     (source_state "<id>:fetch"): every event before it is read for the
 *     last time and stored (no poll overlap and no re-read reaches it
 *     again);
 *  2. the oldest event (minTime) of each batch of logs not yet delivered
 *     (pending, retrying or dead): one find on `batches` (what is
 *     pending: small).
 *
 * T = min(fetchedThrough, oldest undelivered - 1 ms), none before the
 * application's first fetch (coveredFrom). Reading 1 before 2 matters: a
 * batch is in `batches` before fetchedThrough passes its events.
 *
 * Used by apid (GET /sources/:id, /metrics) and deliverd (watermark
 * messages). Runs on a worker thread (it makes a store call).
 */
#ifndef AR_LIB_STORE_WATERMARK_H
#define AR_LIB_STORE_WATERMARK_H

#include <stddef.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

struct store;

/* An undelivered batch of one (source, application): its events' span. */
struct wm_hold {
	char	sid[64];
	char	app[64];
	int64_t min_time; /* 0: a batch without minTime (older version) */
	int64_t max_time; /* 0: without maxTime (older version): unknown */
};

struct wm_holds {
	struct wm_hold *v; /* sorted by (sid, app), one per batch */
	size_t		n;
};

/* A watermark computed. */
struct wm {
	int64_t	    through_ms; /* 0: none yet */
	const char *held_by;	/* "fetch" or "delivery" */
};

/*
 * Load the holds of source sid (NULL: of every source) from st, on
 * client c (NULL: one from st's pool). 0, or -EIO with err[];
 * wm_holds_free it.
 */
int  wm_holds_load(struct store *st, mongoc_client_t *c, const char *sid,
     struct wm_holds *out, char *err, size_t errlen);
void wm_holds_free(struct wm_holds *h);
/*
 * The watermark of application app of source sid, from its fetch state
 * document fetch (NULL: none yet) and the holds h (NULL: unknown, so
 * none). A batch all of whose events are older than the application's
 * coveredFrom (a backfill's) holds nothing: the watermark promises
 * nothing before coveredFrom.
 */
struct wm wm_compute(const bson_t *fetch, const char *sid, const char *app,
    const struct wm_holds *h);

#endif
