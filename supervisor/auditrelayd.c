/*
 * auditrelayd: the supervisor's entry point, its command line. What it
 * then does is sup.c's (configuration, children, reloads, systemd).
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/base/util.h"
#include "supervisor/sup.h"

static void
sup_usage(FILE *f)
{
	fprintf(f,
	    "usage: auditrelayd [-c FILE] [-n] [-d] [-v] [--help] [--version]\n"
	    "\n"
	    "Relays Google Workspace audit logs to webhooks. Starts and\n"
	    "supervises auditrelay-apid, auditrelay-fetcherd and\n"
	    "auditrelay-deliverd, in the foreground.\n"
	    "\n"
	    "  -c FILE    configuration file (default %s)\n"
	    "  -n         check the configuration, print \"configuration OK\"\n"
	    "             or the file, line and reason (exit 78), and exit\n"
	    "  --reload[=PID]  make the running auditrelayd (PID, $MAINPID\n"
	    "             or the pid in runtime_dir) reload, wait for its\n"
	    "             verdict: exit 0 applied, 78 refused, 1 no answer\n"
	    "  -d         debug: log at debug level, children too\n"
	    "  -v         verbose (same as -d)\n"
	    "  --help     this text\n"
	    "  --version  print the version\n"
	    "\n"
	    "Every configuration key can be overridden by AUDITRELAY_<KEY>\n"
	    "(for example AUDITRELAY_API_LISTEN); secrets also accept\n"
	    "AUDITRELAY_<KEY>_FILE. Signals: TERM/INT stop, HUP reloads.\n"
	    "See auditrelayd(8) and auditrelay.conf(5).\n",
	    SUP_DEFAULT_CONFIG);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "reload", optional_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	struct sup_opts o = { .config_path = SUP_DEFAULT_CONFIG };
	int		ch;

	while ((ch = getopt_long(argc, argv, "c:ndvh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o.config_path = optarg;
			o.config_given = true;
			break;
		case 'n':
			o.check = true;
			break;
		case 'd':
		case 'v':
			o.verbose++;
			break;
		case 'h':
			sup_usage(stdout);
			return 0;
		case 'V':
			printf("auditrelayd %s\n", AR_VERSION);
			return 0;
		case 'R':
			o.reload = true;
			if (optarg != NULL &&
			    util_parse_int64(optarg, 1, INT32_MAX,
				&o.reload_pid) != 0) {
				sup_usage(stderr);
				return 64;
			}
			break;
		default:
			sup_usage(stderr);
			return 64;
		}
	}
	if (optind != argc) {
		sup_usage(stderr);
		return 64;
	}
	return sup_run(&o);
}
