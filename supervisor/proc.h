/*
 * The supervisor's child table: spawn with a fresh socketpair on fd 3,
 * handshake, keep-alive, reap, respawn with backoff, crash-loop detection,
 * graceful stop, and the relay of hints between children.
 */
#ifndef AR_SUPERVISOR_PROC_H
#define AR_SUPERVISOR_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>

#include "lib/base/backoff.h"
#include "lib/ipc/config.h"
#include "lib/ipc/ipc.h"

#define PROC_COUNT	     3
#define PROC_HANDSHAKE_MS    10000
#define PROC_MISSED_PINGS    3
#define PROC_CRASH_LIMIT     5	   /* more than this many deaths ... */
#define PROC_CRASH_WINDOW_MS 60000 /* ... in this window: crash loop */
#define PROC_BACKOFF_BASE_MS 1000
#define PROC_BACKOFF_CAP_MS  60000
#define PROC_STABLE_MS	     60000 /* up this long: backoff resets */
#define EX_CONFIG_STATUS_SUP 78	   /* EX_CONFIG: never respawned */

enum proc_state {
	PROC_DOWN,
	PROC_STARTING,
	PROC_READY,
	PROC_STOPPING,
};

struct proc {
	Ar__Daemon	 daemon;
	const char	*name; /* "auditrelay-apid" */
	char		 path[4096];
	pid_t		 pid;
	struct ipc_chan *ch;
	enum proc_state	 state;
	struct crashwin	 deaths;
	unsigned	 attempt;
	unsigned	 restarts;
	int64_t		 started_ms, ready_ms, last_pong_ms;
	uint64_t	 ping_seq, pong_seq;
	uint32_t	 acked_gen;
	bool		 store_ok;
	uint64_t	 store_errors;
	bool		 crash_loop;	/* held at the longest backoff */
	unsigned	 recent_deaths; /* in PROC_CRASH_WINDOW_MS */
	int64_t		 respawn_at_ms; /* next start (mono) */
	struct event	*respawn_ev;
	struct event	*handshake_ev;
	bool		 forward_dropping; /* hints over PROC_FORWARD_MAX */
};

/* Bytes of relayed hints queued for one child at most (proc_forward). */
#define PROC_FORWARD_MAX (64u * 1024 * 1024)

/* Callbacks from the table to the supervisor's main loop. */
struct proc_hooks {
	/* Every child reached READY for the first time. */
	void (*all_ready)(void);
	/*
	 * Every running child acknowledged configuration generation gen;
	 * refused: NULL, or "<daemon>: reason" of the first that refused it.
	 */
	void (*all_acked)(uint32_t gen, const char *refused);
	/* Give up: stop everything and exit with status. */
	void (*give_up)(int status, const char *why);
	/* Something STATUS= shows changed (a death, a respawn, the store). */
	void (*changed)(void);
	/* Every child is down during a stop. */
	void (*all_down)(void);
};

void proc_table_init(struct event_base *base, const struct config *cfg,
    const char *instance_id, bool verbose, const struct proc_hooks *hooks);
/* Resolve each daemon's executable; 0 or -ENOENT with err[]. */
int  proc_table_find(char *err, size_t errlen);
void proc_spawn_all(void);
/* Push a new configuration generation to every running child. */
void proc_push_config(const struct config *cfg, uint32_t gen);
/* The keep-alive tick; returns true when every child answered. */
bool proc_ping_all(void);
/* Begin a graceful stop of every child. */
void proc_stop_all(unsigned grace_ms);
/* SIGCHLD: reap and decide. */
void proc_reap(void);
bool proc_all_ready(void);
bool proc_all_down(void);
/* "apid=123 fetcherd=124 ..." for STATUS=. */
void proc_summary(char *buf, size_t len);
/*
 * What is wrong, for STATUS=: "deliverd restarting (3 in 60 s); fetcherd
 * crash loop (6 in 60 s), held, next start in 58 s", and since when the
 * store is unreachable (0 when reachable). false when nothing is wrong
 * with the daemons (buf empty).
 */
bool proc_trouble(char *buf, size_t len);
/* Wall-clock time (s) since the daemons report the store down, or 0. */
int64_t proc_store_down_since(void);

#endif
