/*
 * The outcome of reloads, for `systemctl reload` (ExecReload=auditrelayd
 * --reload): the supervisor writes one line to <runtime_dir>/reload.status
 * on every SIGHUP ("PID SEQ pending", then "PID SEQ ok GEN" or "PID SEQ
 * refused REASON"); the client sends SIGHUP and waits for its verdict, so a
 * refused file fails the reload instead of reporting success. systemd 252
 * (bookworm) has no Type=notify-reload, which would wait for READY=1 itself.
 */
#ifndef AR_SUPERVISOR_RELOAD_H
#define AR_SUPERVISOR_RELOAD_H

#include <stdint.h>

#define RELOAD_STATUS_FILE	"reload.status"
#define RELOAD_WAIT_MS		30000
#define EX_CONFIG_STATUS_RELOAD 78

enum reload_state {
	RELOAD_PENDING,
	RELOAD_OK,
	RELOAD_REFUSED,
};

/* Where the supervisor writes its verdicts (its runtime directory). */
void reload_status_init(const char *dir);
/* Write the verdict of reload seq (reason: NULL, or why it was refused). */
void reload_status_write(uint32_t seq, enum reload_state state,
    const char *reason);
/*
 * The client: signal the supervisor (pid, or $MAINPID, or the pid in the
 * lock file of dir) and wait for the verdict. Returns the exit status: 0
 * applied, 78 refused, 1 no answer or no supervisor; prints why.
 */
int reload_client(const char *dir, long pid);

#endif
