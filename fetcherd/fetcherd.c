/*
 * auditrelay-fetcherd.
 */
#include <stdio.h>

#include "lib/child.h"
#include "lib/log.h"

static int
fetcherd_configure(const struct config *cfg, bool initial, char *err,
    size_t errlen)
{
	return 0;
}

static void
fetcherd_dispatch(const Ar__Envelope *env)
{
	log_debug("dropping message case=%d", (int)env->body_case);
}

static void
fetcherd_shutdown(unsigned grace_ms)
{
	child_exit(0);
}

static const struct child_ops fetcherd_ops = {
	.daemon = AR__DAEMON__DAEMON_FETCHERD,
	.name = "auditrelay-fetcherd",
	.summary = "auditrelay's fetcherd.",
	.configure = fetcherd_configure,
	.dispatch = fetcherd_dispatch,
	.shutdown = fetcherd_shutdown,
};

int
main(int argc, char **argv)
{
	return child_main(argc, argv, &fetcherd_ops);
}
