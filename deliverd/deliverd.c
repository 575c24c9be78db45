/*
 * auditrelay-deliverd: pending batches -> signed POSTs -> callbackUrl.
 * This file is the entry point: the child_ops runtime/child.c runs.
 *
 * For every source whose partition lease "deliver:p<N>" this instance
 * holds, the pending batches fetcherd stored are POSTed with Standard
 * Webhooks signatures and their outcome recorded: delivered, retried on
 * a schedule, or parked as a dead letter. The store is the truth: hints
 * only wake us early, and everything is re-read every rescan_interval.
 *
 *	run.c		settings, start-up, reload, shutdown, indexes
 *	dispatch.c	hints from auditrelayd
 *	sources.c	the table of sources (secrets, callback URL), rescan
 *	owner.c		partitions held; sources taken over, stopped
 *	step.c		sending a queue; a POST's outcome
 *	queue.c		the store side of batches: load, body, record
 *	delivered.c	batches delivered whose record a load may not see
 *	state.c		each partition's delivery state document
 *	alerts.c	alerts deliverd raises (queue.c batches them)
 *	prune.c		delivered batches and their bodies removed
 *	janitor.c	what removed sources left; old alerts
 *	send.c outcome.c breaker.c	signing, classification, breaker
 */
#include "deliverd/deliverd.h"
#include "runtime/child.h"

static const struct child_ops deliverd_ops = {
	.daemon = AR__DAEMON__DAEMON_DELIVERD,
	.name = "auditrelay-deliverd",
	.summary = "auditrelay's deliverer: signed batches of pending logs "
		   "to each source's callback.",
	.configure = deliverd_configure,
	.dispatch = deliverd_dispatch,
	.shutdown = deliverd_shutdown,
	.store_setup = deliverd_store_setup,
};

int
main(int argc, char **argv)
{
	return child_main(argc, argv, &deliverd_ops);
}
