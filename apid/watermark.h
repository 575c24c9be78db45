/*
 * The watermark of each (source, application): the time T such that
 * every event with id.time <= T that auditrelay will ever read has been
 * delivered (2xx). Two halves, read in this order (docs/WATERMARK.md):
 *
 *  1. fetcherd's fetchedThrough.<app> in the source's fetch state: every
 *     event before it is read for the last time and stored (no poll
 *     overlap and no re-read reaches it again);
 *  2. the oldest event (minTime) of each batch of logs not yet delivered
 *     (pending, retrying or dead), one find on `batches` (what is
 *     pending: small).
 *
 * T = min(fetchedThrough, oldest undelivered - 1 ms), none before the
 * application's first fetch (coveredFrom). Reading 1 before 2 matters: a
 * batch is in `batches` before fetchedThrough passes its events.
 */
#ifndef AR_APID_WATERMARK_H
#define AR_APID_WATERMARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

#include "apid/view.h"

struct jsonw;

/* The oldest undelivered event of one (source, application). */
struct wm_hold {
	char	sid[64];
	char	app[64];
	int64_t min_time; /* 0: a batch without minTime (older version) */
};

struct wm_holds {
	struct wm_hold *v; /* sorted by (sid, app), one per pair */
	size_t		n;
};

/* A watermark computed. */
struct wm {
	int64_t	    through_ms; /* 0: none yet */
	const char *held_by;	/* "fetch" or "delivery" */
};

/*
 * Load the holds of source sid (NULL: of every source) on client c
 * (NULL: the daemon's store). 0, or -EIO with err[]; wm_holds_free it.
 */
int  wm_holds_load(mongoc_client_t *c, const char *sid, struct wm_holds *out,
     char *err, size_t errlen);
void wm_holds_free(struct wm_holds *h);
/* The watermark of application app of view v (h NULL: unknown, none). */
struct wm wm_of(const struct view *v, const char *app,
    const struct wm_holds *h);
/*
 * Member "watermarks": {app: {through, behindSeconds, heldBy}} of every
 * application of v (through and behindSeconds null while none).
 */
void wm_json(struct jsonw *w, const struct view *v, const struct wm_holds *h);
/*
 * Member "rereads": {app: {mode, agesSeconds, lateFoundByAge,
 * rereadsByAge, lagP999Seconds, eventsSeen}}: the re-read ages each
 * application uses (fetch_reread_ages auto: tuned) and their evidence,
 * from the fetch state of v.
 */
void wm_rereads_json(struct jsonw *w, const struct view *v);

#endif
