/*
 * The instance name and its lock. See instance.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/util.h"
#include "lib/crypto/crypto.h"
#include "supervisor/instance.h"

static int instance_lock_fd = -1;

/* "<hostname>:<8 hex>" from the machine id and the runtime directory. */
static void
instance_stable_id(const char *dir, char *id, size_t idlen)
{
	char  host[256], mid[128] = "", real[PATH_MAX], hex[65];
	char  buf[PATH_MAX + 400];
	FILE *f;

	if (gethostname(host, sizeof(host)) != 0)
		util_strlcpy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	if ((f = fopen("/etc/machine-id", "re")) != NULL) {
		if (fgets(mid, sizeof(mid), f) == NULL)
			mid[0] = '\0';
		mid[strcspn(mid, "\n")] = '\0';
		fclose(f);
	}
	if (realpath(dir, real) == NULL)
		util_strlcpy(real, dir, sizeof(real));
	snprintf(buf, sizeof(buf), "%s\n%s\n%s", mid, host, real);
	crypto_sha256_hex(buf, strlen(buf), hex);
	snprintf(id, idlen, "%s:%.8s", host, hex);
}

pid_t
instance_lock_pid(const char *dir)
{
	char  path[PATH_MAX], buf[64];
	FILE *f;
	long  pid;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir,
		INSTANCE_LOCK_FILE) >= sizeof(path) ||
	    (f = fopen(path, "re")) == NULL)
		return -1;
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	pid = strtol(buf, NULL, 10);
	return pid > 0 ? (pid_t)pid : -1;
}

int
instance_acquire(const struct config *cfg, char *id, size_t idlen, char *warn,
    size_t warnlen, char *err, size_t errlen)
{
	const char *dir = config_str(cfg, CONF_RUNTIME_DIR);
	const char *given = config_str(cfg, CONF_INSTANCE_ID);
	char	    path[PATH_MAX], line[400], host[256];
	pid_t	    other;
	int	    fd = -1, rc;

	warn[0] = err[0] = '\0';
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir,
		INSTANCE_LOCK_FILE) >= sizeof(path)) {
		snprintf(err, errlen, "runtime_dir %s: path too long", dir);
		return -ENAMETOOLONG;
	}
	if (mkdir(dir, 0750) == -1 && errno != EEXIST)
		rc = -errno;
	else if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
		      0640)) == -1)
		rc = -errno;
	else if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		rc = -errno;
		close(fd);
		if (rc == -EWOULDBLOCK) {
			other = instance_lock_pid(dir);
			snprintf(err, errlen,
			    "another auditrelayd pid=%d "
			    "runs with runtime_dir %s (it holds %s); stop it "
			    "or give this copy its own runtime_dir",
			    (int)other, dir, path);
			return -EEXIST;
		}
	} else
		rc = 0;
	if (rc != 0) {
		if (given[0] != '\0') {
			snprintf(err, errlen,
			    "runtime_dir %s: cannot lock %s: "
			    "%s; instance_id %s needs it to be exclusive",
			    dir, path, strerror(-rc), given);
			return rc;
		}
		if (gethostname(host, sizeof(host)) != 0)
			util_strlcpy(host, "localhost", sizeof(host));
		host[sizeof(host) - 1] = '\0';
		snprintf(id, idlen, "%s:%d", host, (int)getpid());
		snprintf(warn, warnlen,
		    "runtime_dir %s: cannot lock %s: %s; "
		    "running as instance=%s, so after a restart leases wait "
		    "for their TTL",
		    dir, path, strerror(-rc), id);
		return 0;
	}
	if (given[0] != '\0')
		util_strlcpy(id, given, idlen);
	else
		instance_stable_id(dir, id, idlen);
	snprintf(line, sizeof(line), "%d %s\n", (int)getpid(), id);
	if (ftruncate(fd, 0) != 0 ||
	    pwrite(fd, line, strlen(line), 0) != (ssize_t)strlen(line)) {
		/* The lock is what counts; the pid is for messages. */
	}
	instance_lock_fd = fd;
	return 0;
}
