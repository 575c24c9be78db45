/*
 * auditrelayd: the supervisor. Reads the configuration, fork+execs the
 * three daemons with a fresh socketpair each, relays hints between them,
 * restarts them with backoff, and talks to systemd.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/config.h"
#include "lib/log.h"
#include "lib/util.h"
#include "supervisor/notify.h"
#include "supervisor/proc.h"

#define SUP_DEFAULT_CONFIG	AR_SYSCONFDIR "/auditrelay/auditrelay.conf"

static struct event_base	*sup_base;
static struct config		 sup_cfg;
static const char		*sup_config_path = SUP_DEFAULT_CONFIG;
static bool			 sup_config_given;
static uint32_t			 sup_gen = 1;
static int			 sup_exit_status;
static bool			 sup_stopping;
static char			 sup_instance[256];
static struct event		*sup_tick_ev;

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

/*
 * Parse the configuration file and the environment into cfg. The default
 * file may be absent (environment only); a file given with -c may not.
 */
static int
sup_config_read(struct config *cfg, char *err, size_t errlen)
{
	config_init(cfg);
	if (config_load(cfg, sup_config_path, !sup_config_given, err,
	    errlen) != 0 || config_check(cfg, err, errlen) != 0) {
		config_clear(cfg);
		return -EINVAL;
	}
	return 0;
}

static void
sup_stop(int status, const char *why)
{
	if (sup_stopping)
		return;
	sup_stopping = true;
	sup_exit_status = status;
	notify_stopping();
	log_info("stopping: %s", why);
	proc_stop_all((unsigned)config_int(&sup_cfg, CONF_SHUTDOWN_GRACE) *
	    1000);
}

static void
sup_all_ready(void)
{
	char	buf[200];

	proc_summary(buf, sizeof(buf));
	log_info("all daemons ready (%s)", buf);
	notify_ready("running");
}

static void
sup_all_acked(uint32_t gen)
{
	log_info("configuration generation=%u applied by every daemon", gen);
	notify_ready("running (reloaded)");
}

static void
sup_give_up(int status, const char *why)
{
	notify_status("failed: %s", why);
	sup_stop(status, why);
}

static void
sup_all_down(void)
{
	log_info("every daemon stopped, exiting with status %d",
	    sup_exit_status);
	event_base_loopbreak(sup_base);
}

static const struct proc_hooks sup_hooks = {
	.all_ready = sup_all_ready,
	.all_acked = sup_all_acked,
	.give_up = sup_give_up,
	.all_down = sup_all_down,
};

static void
sup_reload(void)
{
	struct config	cfg;
	char		err[1024];

	notify_reloading();
	if (sup_config_read(&cfg, err, sizeof(err)) != 0) {
		log_err("reload failed, keeping the old configuration: %s", err);
		notify_ready("running (reload failed)");
		return;
	}
	if (strcmp(config_str(&cfg, CONF_API_LISTEN),
	    config_str(&sup_cfg, CONF_API_LISTEN)) != 0)
		log_warn("api_listen changed: it takes effect when "
		    "auditrelay-apid restarts");
	config_clear(&sup_cfg);
	sup_cfg = cfg;
	log_set_verbose((int)config_int(&sup_cfg, CONF_LOG_VERBOSE) > 0 ? 1 :
	    (log_debug_enabled() ? 1 : 0));
	log_redact_add(config_str(&sup_cfg, CONF_API_TOKEN));
	log_info("configuration reloaded from %s, pushing generation=%u",
	    sup_config_path, sup_gen + 1);
	proc_push_config(&sup_cfg, ++sup_gen);
}

static void
sup_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		sup_stop(0, sig == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	case SIGHUP:
		if (!sup_stopping)
			sup_reload();
		break;
	case SIGCHLD:
		proc_reap();
		break;
	}
}

/* Keep-alive tick: ping children, feed the watchdog only when all answer. */
static void
sup_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	char	buf[200];

	if (sup_stopping)
		return;
	if (proc_ping_all()) {
		notify_watchdog();
		proc_summary(buf, sizeof(buf));
		notify_status("running: %s", buf);
	} else
		notify_status("degraded: a daemon is starting or silent");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD };
	struct timeval	 tv;
	char		 err[1024], host[200];
	bool		 check = false;
	int		 ch, verbose = 0;
	int64_t		 tick_ms;
	size_t		 i;

	while ((ch = getopt_long(argc, argv, "c:ndvh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			sup_config_path = optarg;
			sup_config_given = true;
			break;
		case 'n':
			check = true;
			break;
		case 'd':
		case 'v':
			verbose++;
			break;
		case 'h':
			sup_usage(stdout);
			return 0;
		case 'V':
			printf("auditrelayd %s\n", AR_VERSION);
			return 0;
		default:
			sup_usage(stderr);
			return 64;
		}
	}
	if (optind != argc) {
		sup_usage(stderr);
		return 64;
	}
	log_init("auditrelayd", verbose);
	if (sup_config_read(&sup_cfg, err, sizeof(err)) != 0) {
		if (check)
			fprintf(stderr, "auditrelayd: %s\n", err);
		else
			log_err("configuration error: %s", err);
		return EX_CONFIG_STATUS_SUP;
	}
	if (check) {
		printf("configuration OK\n");
		return 0;
	}
	if (config_int(&sup_cfg, CONF_LOG_VERBOSE) > 0)
		log_set_verbose(1);
	log_redact_add(config_str(&sup_cfg, CONF_API_TOKEN));
	if (proc_table_find(err, sizeof(err)) != 0) {
		log_err("%s", err);
		return EX_CONFIG_STATUS_SUP;
	}
	if (config_str(&sup_cfg, CONF_INSTANCE_ID)[0] != '\0')
		util_strlcpy(sup_instance, config_str(&sup_cfg,
		    CONF_INSTANCE_ID), sizeof(sup_instance));
	else {
		if (gethostname(host, sizeof(host)) != 0)
			util_strlcpy(host, "localhost", sizeof(host));
		host[sizeof(host) - 1] = '\0';
		snprintf(sup_instance, sizeof(sup_instance), "%s:%d", host,
		    (int)getpid());
	}
	signal(SIGPIPE, SIG_IGN);
	if ((sup_base = event_base_new()) == NULL)
		fatal("event_base_new failed");
	for (i = 0; i < nitems(sigs); i++) {
		struct event	*ev = evsignal_new(sup_base, sigs[i],
		    sup_signal_cb, NULL);

		if (ev == NULL || evsignal_add(ev, NULL) != 0)
			fatal("cannot watch signal %d", sigs[i]);
	}
	log_info("auditrelayd %s starting instance=%s config=%s", AR_VERSION,
	    sup_instance, sup_config_path);
	proc_table_init(sup_base, &sup_cfg, sup_instance, verbose > 0,
	    &sup_hooks);
	proc_spawn_all();
	tick_ms = config_int(&sup_cfg, CONF_PING_INTERVAL) * 1000;
	if (notify_watchdog_ms() > 0 &&
	    (int64_t)notify_watchdog_ms() / 3 < tick_ms)
		tick_ms = (int64_t)notify_watchdog_ms() / 3;
	tv.tv_sec = tick_ms / 1000;
	tv.tv_usec = (tick_ms % 1000) * 1000;
	sup_tick_ev = event_new(sup_base, -1, EV_PERSIST, sup_tick_cb, NULL);
	event_add(sup_tick_ev, &tv);
	event_base_dispatch(sup_base);
	/* Reap anything left; children die with us anyway (PDEATHSIG). */
	proc_reap();
	return sup_exit_status;
}
