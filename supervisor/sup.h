/*
 * The supervisor, once auditrelayd.c has read its command line.
 */
#ifndef AR_SUPERVISOR_SUP_H
#define AR_SUPERVISOR_SUP_H

#include <stdbool.h>
#include <stdint.h>

#define SUP_DEFAULT_CONFIG AR_SYSCONFDIR "/auditrelay/auditrelay.conf"

struct sup_opts {
	const char *config_path;
	bool	    config_given; /* -c: the file must exist */
	bool	    check;	  /* -n */
	bool	    reload;	  /* --reload[=PID] */
	int64_t	    reload_pid;
	int	    verbose; /* -d, -v */
};

/* Run the supervisor; returns the process's exit status. */
int sup_run(const struct sup_opts *o);

#endif
