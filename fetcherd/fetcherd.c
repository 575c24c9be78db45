/*
 * auditrelay-fetcherd: reads the Google Workspace audit logs of every
 * source on its own schedule and stores them (deduplicated by stable id)
 * before any cursor moves. This file is the entry point: the child_ops
 * runtime/child.c runs.
 *
 *	run.c		configuration, partition pruning, hints, stop
 *	sched.c		the scheduler: sources, jobs, slots, partitions
 *	report.c	what becomes of a run (every retry delay)
 *	quota.c		a project's rate limits, shared through the store
 *	srcstate.c	the sources' stored state, alerts
 *	google_driver.c	the Google conversation of a run
 *	window.c	a job's window and cursor state
 *	handoff.c	the store side: page groups, cursors, recovery
 *	recent.c	the ids a job stored lately
 *	drift.c		schema drift: names never seen, alerts
 *	the Google client: lib/google/google.c
 */
#include "fetcherd/fetcherd.h"
#include "runtime/child.h"

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
