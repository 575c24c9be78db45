/*
 * auditrelay-apid: the REST management API on libevent's evhttp. This
 * file is the entry point: the child_ops runtime/child.c runs.
 *
 *	run.c		configuration, master key, hints, stop, indexes
 *	http.c conn.c	routes (one table) and connections
 *	sources.c	the endpoints of sources and dead letters
 *	backfill.c	the backfill endpoints
 *	pipeline.c	the add/rotate/patch state machine
 *	view.c		sources as reported (status), for all readers
 *	metrics.c	/metrics; esexport.c the Elasticsearch export
 *	validate.c	request validation
 */
#include "apid/apid.h"
#include "runtime/child.h"

static const struct child_ops apid_ops = {
	.daemon = AR__DAEMON__DAEMON_APID,
	.name = "auditrelay-apid",
	.summary = "auditrelay's REST management API.",
	.configure = apid_configure,
	.dispatch = apid_dispatch,
	.shutdown = apid_shutdown,
	.store_setup = apid_store_setup,
};

int
main(int argc, char **argv)
{
	return child_main(argc, argv, &apid_ops);
}
