/*
 * The instance: a stable name for this copy of auditrelay on this host, and
 * a lock in the runtime directory proving that no other copy with the same
 * runtime directory runs. Children get the name in every Config message
 * (CONF_INSTANCE_ID); because of the lock it is exclusive to the running
 * supervisor, so a lease a child finds under its own instance name was
 * left by a predecessor that is known dead.
 */
#ifndef AR_SUPERVISOR_INSTANCE_H
#define AR_SUPERVISOR_INSTANCE_H

#include <stddef.h>
#include <sys/types.h>

#include "lib/ipc/config.h"

#define INSTANCE_LOCK_FILE "auditrelayd.lock"

/*
 * Take the lock in cfg's runtime_dir (created 0750 if missing) and choose
 * the instance name into id[idlen]: instance_id from the configuration,
 * else "<hostname>:<8 hex of SHA-256(machine-id, runtime_dir)>", stable
 * across restarts. When the lock cannot be created and no instance_id is
 * configured, falls back to "<hostname>:<pid>" (unique, so still
 * exclusive) and puts a warning into warn[]. 0, or -EEXIST (another copy
 * runs; its pid in err[]) or another -errno with err[] set: the caller
 * must not start.
 */
int instance_acquire(const struct config *cfg, char *id, size_t idlen,
    char *warn, size_t warnlen, char *err, size_t errlen);
/* The pid written in dir's lock file by the running copy, or -1. */
pid_t instance_lock_pid(const char *dir);

#endif
