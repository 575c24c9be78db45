/*
 * The life of a child daemon, shared by apid, fetcherd and deliverd: the
 * fd-3 channel to auditrelayd, the Hello -> Config -> Ready handshake,
 * Ping/Pong, Shutdown with a grace period, reloads, exit on EOF (and
 * PR_SET_PDEATHSIG). Each daemon provides a child_ops and its own loop work.
 */
#ifndef AR_LIB_CHILD_H
#define AR_LIB_CHILD_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "lib/ipc/config.h"
#include "lib/ipc/ipc.h"
#include "lib/store/store.h"

struct child_ops {
	Ar__Daemon  daemon;
	const char *name;    /* process name in logs */
	const char *summary; /* one line for --help */
	/*
	 * Apply a configuration. initial is true for the first one: a
	 * failure then exits 78 (EX_CONFIG, never respawned). On reload a
	 * failure keeps the old configuration. 0 or -errno with err[] set.
	 */
	int (*configure)(const struct config *cfg, bool initial, char *err,
	    size_t errlen);
	/* Every message that is not the framework's own. */
	void (*dispatch)(const Ar__Envelope *env);
	/*
	 * Begin a graceful stop: finish or release in-flight work, then call
	 * child_exit(0). The framework exits anyway when grace_ms is over.
	 */
	void (*shutdown)(unsigned grace_ms);
	/*
	 * Create the indexes this daemon owns, idempotently. Called once the
	 * store answers, and again until it succeeds. 0 or -errno.
	 */
	int (*store_setup)(struct store *s, char *err, size_t errlen);
};

/* Run the daemon; returns the process exit status. */
int child_main(int argc, char **argv, const struct child_ops *ops);

struct event_base   *child_base(void);
struct ipc_chan	    *child_chan(void);
const struct config *child_config(void);
bool		     child_stopping(void);
/* Leave the event loop and exit with status. */
void child_exit(int status);
/* Report store health to the supervisor (on change only). */
void child_report_store(bool ok, const char *detail);
/* The store (opened with the first configuration). */
struct store *child_store(void);
/* True once store_setup succeeded. */
bool child_store_ready(void);
/*
 * Record the outcome of a store call made by the daemon: logs the outage
 * once ("store unreachable: ..., retrying") and the recovery once, and
 * tells the supervisor. Returns ok.
 */
bool child_store_result(bool ok, const char *err);

#define EX_CONFIG_STATUS 78

#endif
