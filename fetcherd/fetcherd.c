/*
 * auditrelay-fetcherd: reads the Google Workspace audit logs of every
 * source on its own schedule and stores them (deduplicated by stable id)
 * before any cursor moves. The scheduler lives in sched.c, the window and
 * paging logic in google_driver.c, the Google client in lib/google.c.
 */
#include <stdio.h>

#include "fetcherd/fetcherd.h"
#include "lib/child.h"
#include "lib/log.h"

/* Apply a configuration; the first one also starts the scheduler. */
static int
fetcherd_configure(const struct config *cfg, bool initial, char *err,
    size_t errlen)
{
	int rc;

	if ((rc = sched_configure(cfg, initial, err, errlen)) != 0)
		return rc;
	if (initial)
		sched_start();
	return 0;
}

/* Hints relayed by the supervisor. */
static void
fetcherd_dispatch(const Ar__Envelope *env)
{
	const Ar__SourceChanged *sc;

	switch (env->body_case) {
	case AR__ENVELOPE__BODY_SOURCE_CHANGED:
		sc = env->source_changed;
		if (sc == NULL || sc->source_id == NULL)
			return;
		log_debug("source %s changed%s", sc->source_id,
		    sc->removed ? " (removed)" : "");
		sched_source_changed(sc->source_id, sc->removed);
		break;
	default:
		log_debug("dropping message case=%d", (int)env->body_case);
		break;
	}
}

/*
 * Graceful stop: abandon the windows in flight (their cursors did not
 * move, the next holder reads them again), store the states, give the
 * leases back, exit.
 */
static void
fetcherd_shutdown(unsigned grace_ms)
{
	(void)grace_ms;
	sched_stop();
	child_exit(0);
}

static const struct child_ops fetcherd_ops = {
	.daemon = AR__DAEMON__DAEMON_FETCHERD,
	.name = "auditrelay-fetcherd",
	.summary = "auditrelay's fetcher: Google Workspace audit logs into "
	    "the store.",
	.configure = fetcherd_configure,
	.dispatch = fetcherd_dispatch,
	.shutdown = fetcherd_shutdown,
	.store_setup = sched_store_setup,
};

int
main(int argc, char **argv)
{
	return child_main(argc, argv, &fetcherd_ops);
}
