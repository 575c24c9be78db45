/*
 * The watermarks of a source as GET /sources/:id and /metrics show them
 * (lib/store/watermark.h computes them; docs/WATERMARK.md).
 */
#ifndef AR_APID_WATERMARK_H
#define AR_APID_WATERMARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

#include "apid/view.h"
#include "lib/store/watermark.h"
#include "runtime/child.h"

struct jsonw;

/*
 * Load the holds of source sid (NULL: of every source) on client c
 * (NULL: the daemon's store). 0, or -EIO with err[]; wm_holds_free it.
 */
static inline int
apid_wm_holds_load(mongoc_client_t *c, const char *sid, struct wm_holds *out,
    char *err, size_t errlen)
{
	return wm_holds_load(child_store(), c, sid, out, err, errlen);
}
/* The watermark of application app of view v (h NULL: unknown, none). */
struct wm wm_of(const struct view *v, const char *app,
    const struct wm_holds *h);
/*
 * Member "completeThrough": {app: {through, behindSeconds, heldBy}} of every
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
