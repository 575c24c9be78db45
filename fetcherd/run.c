/*
 * fetcherd's frame: configuration (which starts the scheduler and the
 * store threads), the hourly drop of seen_* partitions past the
 * de-duplication horizon, hints from auditrelayd, the graceful stop.
 */
#include <stdio.h>

#include <event2/event.h>
#include <string.h>

#include "fetcherd/fetcherd.h"
#include "fetcherd/handoff.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

#define FETCHERD_PRUNE_EVERY_MS (3600LL * 1000)

static struct event *ev_prune;

static void
fetcherd_prune_done(struct handoff *h)
{
	if (h->rc != 0)
		log_warn("de-duplication partitions not pruned (%s); "
			 "retrying in an hour",
		    h->err);
	else if (h->ndropped > 0)
		log_info("dropped %u de-duplication partitions past the "
			 "horizon",
		    h->ndropped);
	if (h->rc == 0 && h->nbf_dropped > 0)
		log_info("deleted the progress of %u backfills no longer "
			 "requested",
		    h->nbf_dropped);
	handoff_free(h);
}

/*
 * Hourly: drop the seen_* partitions past the de-duplication horizon
 * (the longest re-read age, the overlap and a day).
 */
static void
fetcherd_prune_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval	tv = { FETCHERD_PRUNE_EVERY_MS / 1000, 0 };
	struct handoff *h;
	int64_t		horizon;

	(void)fd;
	(void)what;
	(void)arg;
	evtimer_add(ev_prune, &tv);
	if (!child_store_ready() || !store_healthy(child_store()))
		return;
	horizon = fconf.overlap_ms + 86400000LL;
	if (fconf.nages > 0) /* the whole ladder: a tuned job may grow */
		horizon += fconf.ages_s[fconf.nages - 1] * 1000;
	h = handoff_new(HANDOFF_PRUNE, "", NULL);
	h->keep_after_ms = util_now_ms() - horizon;
	h->overlap_ms = fconf.overlap_ms;
	h->bf_known = sched_backfill_ids(&h->bf_ids, &h->nbf_ids);
	h->done = fetcherd_prune_done;
	if (handoff_submit(h) != 0)
		handoff_free(h);
}

/* Apply a configuration; the first one also starts the scheduler. */
int
fetcherd_configure(const struct config *cfg, bool initial, char *err,
    size_t errlen)
{
	int rc;

	if ((rc = sched_configure(cfg, initial, err, errlen)) != 0)
		return rc;
	if (initial) {
		/*
		 * Two store threads: the pages of different (source, app)
		 * jobs are stored side by side; one job never has two.
		 */
		if ((rc = worker_start_threads(child_base(), 2)) != 0) {
			snprintf(err, errlen,
			    "cannot start the store worker: "
			    "%s",
			    strerror(-rc));
			return rc;
		}
		sched_start();
		if ((ev_prune = evtimer_new(child_base(), fetcherd_prune_cb,
			 NULL)) == NULL)
			fatal("out of memory");
		{
			struct timeval tv = { 60, 0 };

			evtimer_add(ev_prune, &tv);
		}
	}
	return 0;
}

/* Hints relayed by the supervisor. */
void
fetcherd_dispatch(const Ar__Envelope *env)
{
	const Ar__SourceChanged *sc;

	switch (env->body_case) {
	case AR__ENVELOPE__BODY_SOURCE_CHANGED:
		sc = env->source_changed;
		if (sc == NULL || sc->source_id == NULL)
			return;
		log_debug("source=%s changed%s", sc->source_id,
		    sc->removed ? " (removed)" : "");
		sched_source_changed(sc->source_id, sc->removed);
		break;
	default:
		log_debug("dropping message case=%d", (int)env->body_case);
		break;
	}
}

static void
fetcherd_stopped(void)
{
	child_exit(0);
}

/*
 * Graceful stop: abandon the windows in flight (their cursors did not
 * move, the next holder reads them again), store the states, give the
 * leases back, exit (the framework exits anyway when the grace is over).
 */
void
fetcherd_shutdown(unsigned grace_ms)
{
	(void)grace_ms;
	sched_stop(fetcherd_stopped);
}
