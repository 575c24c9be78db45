/*
 * deliverd's messages from auditrelayd: hints that wake a source early
 * (SourceChanged, BatchStored, LogsStored). They are lossy: the rescan
 * finds everything anyway.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliverd/deliverd.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

void
deliverd_dispatch(const Ar__Envelope *env)
{
	struct dsource *s;

	switch (env->body_case) {
	case AR__ENVELOPE__BODY_SOURCE_CHANGED:
		s = deliverd_source_find(env->source_changed->source_id);
		if (s != NULL && env->source_changed->removed)
			deliverd_source_removed(s);
		else if (s != NULL)
			s->reload = true; /* replays, URL changes */
		deliverd_rescan_soon();
		break;
	case AR__ENVELOPE__BODY_BATCH_STORED: {
		const Ar__BatchStored *bs = env->batch_stored;

		if (bs == NULL || bs->source_id == NULL ||
		    bs->batch_id == NULL || strlen(bs->batch_id) >= 40)
			break;
		s = deliverd_source_find(bs->source_id);
		if (s == NULL) {
			deliverd_rescan_soon();
			break;
		}
		/*
		 * Held but not taken over yet (the take-over's scan waits
		 * on the worker): the batch joins the queue with its body
		 * all the same, sent once the take-over is done; dropped,
		 * the scan would find it bodiless and read its partition.
		 */
		if (s->lease.held)
			queue_hinted(s, bs->batch_id, bs->webhook_id,
			    bs->n_logs, bs->created_at, bs->body.data,
			    bs->body.len, bs->body_coll);
		else
			s->logs_dirty = true;
		deliverd_step(s);
		break;
	}
	case AR__ENVELOPE__BODY_LOGS_STORED:
		s = deliverd_source_find(env->logs_stored->source_id);
		if (s == NULL) {
			deliverd_rescan_soon();
			break;
		}
		s->logs_dirty = s->alerts_dirty = true;
		deliverd_step(s);
		break;
	default:
		log_debug("dropping message case=%d", (int)env->body_case);
		break;
	}
}
