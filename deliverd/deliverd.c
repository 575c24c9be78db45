/*
 * auditrelay-deliverd.
 */
#include <stdio.h>

#include "lib/child.h"
#include "lib/log.h"

static int
deliverd_configure(const struct config *cfg, bool initial, char *err,
    size_t errlen)
{
	return 0;
}

static void
deliverd_dispatch(const Ar__Envelope *env)
{
	log_debug("dropping message case=%d", (int)env->body_case);
}

static void
deliverd_shutdown(unsigned grace_ms)
{
	child_exit(0);
}

static const struct child_ops deliverd_ops = {
	.daemon = AR__DAEMON__DAEMON_DELIVERD,
	.name = "auditrelay-deliverd",
	.summary = "auditrelay's deliverd.",
	.configure = deliverd_configure,
	.dispatch = deliverd_dispatch,
	.shutdown = deliverd_shutdown,
};

int
main(int argc, char **argv)
{
	return child_main(argc, argv, &deliverd_ops);
}
