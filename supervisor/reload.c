/*
 * Reload verdicts through a status file. See reload.h.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "supervisor/instance.h"
#include "supervisor/reload.h"

static char reload_path[PATH_MAX];

void
reload_status_init(const char *dir)
{
	if ((size_t)snprintf(reload_path, sizeof(reload_path), "%s/%s", dir,
		RELOAD_STATUS_FILE) >= sizeof(reload_path))
		reload_path[0] = '\0';
}

void
reload_status_write(uint32_t seq, enum reload_state state, const char *reason)
{
	static const char *const names[] = { "pending", "ok", "refused" };
	char			 tmp[PATH_MAX + 8];
	FILE			*f;

	if (reload_path[0] == '\0')
		return;
	snprintf(tmp, sizeof(tmp), "%s.new", reload_path);
	if ((f = fopen(tmp, "we")) == NULL) {
		log_debug("cannot write %s: %s", tmp, strerror(errno));
		return;
	}
	fprintf(f, "%d %u %s%s%s\n", (int)getpid(), seq, names[state],
	    reason != NULL ? " " : "", reason != NULL ? reason : "");
	if (fclose(f) != 0 || rename(tmp, reload_path) != 0) {
		log_debug("cannot write %s: %s", reload_path, strerror(errno));
		unlink(tmp);
	}
}

/* Read the status file: pid, seq and the rest of the line. false if none. */
static bool
reload_status_read(long *pid, unsigned long *seq, char *rest, size_t len)
{
	char  line[1400], *p, *q;
	FILE *f;

	if ((f = fopen(reload_path, "re")) == NULL)
		return false;
	if (fgets(line, sizeof(line), f) == NULL) {
		fclose(f);
		return false;
	}
	fclose(f);
	line[strcspn(line, "\n")] = '\0';
	*pid = strtol(line, &p, 10);
	*seq = strtoul(p, &q, 10);
	if (q == p || *q != ' ')
		return false;
	util_strlcpy(rest, q + 1, len);
	return true;
}

/* True when process pid runs auditrelayd (a pid from a file may be stale). */
static bool
reload_is_supervisor(long pid)
{
	char  path[64], comm[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	if ((f = fopen(path, "re")) == NULL)
		return false;
	if (fgets(comm, sizeof(comm), f) == NULL)
		comm[0] = '\0';
	fclose(f);
	comm[strcspn(comm, "\n")] = '\0';
	return strcmp(comm, "auditrelayd") == 0;
}

int
reload_client(const char *dir, long pid)
{
	unsigned long seq0 = 0, seq;
	long	      spid;
	char	      rest[1400];
	const char   *env;
	int64_t	      deadline;

	reload_status_init(dir);
	if (pid <= 0 && (env = getenv("MAINPID")) != NULL)
		pid = strtol(env, NULL, 10);
	if (pid <= 0 && (pid = instance_lock_pid(dir)) > 0 &&
	    !reload_is_supervisor(pid)) {
		log_err(
		    "reload: %s/%s names pid=%ld, which is not "
		    "auditrelayd (a stale lock file); is auditrelayd running?",
		    dir, INSTANCE_LOCK_FILE, pid);
		return 1;
	}
	if (pid <= 0) {
		log_err("reload: no running auditrelayd found (no $MAINPID, "
			"no pid in %s/%s)",
		    dir, INSTANCE_LOCK_FILE);
		return 1;
	}
	if (reload_status_read(&spid, &seq, rest, sizeof(rest)) && spid == pid)
		seq0 = seq;
	if (kill((pid_t)pid, SIGHUP) != 0) {
		log_err("reload: cannot signal auditrelayd pid=%ld: %s", pid,
		    strerror(errno));
		return 1;
	}
	deadline = util_mono_ms() + RELOAD_WAIT_MS;
	while (util_mono_ms() < deadline) {
		if (reload_status_read(&spid, &seq, rest, sizeof(rest)) &&
		    spid == pid && seq > seq0) {
			if (strncmp(rest, "ok ", 3) == 0) {
				log_info("reload: configuration applied by "
					 "every daemon generation=%s",
				    rest + 3);
				return 0;
			}
			if (strncmp(rest, "refused ", 8) == 0) {
				log_err("reload refused, the old configuration "
					"stays: %s",
				    rest + 8);
				return EX_CONFIG_STATUS_RELOAD;
			}
		}
		usleep(50 * 1000);
	}
	log_err("reload: auditrelayd pid=%ld gave no verdict within %ds (see "
		"journalctl -u auditrelay)",
	    pid, RELOAD_WAIT_MS / 1000);
	return 1;
}
