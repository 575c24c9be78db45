/*
 * The supervisor (auditrelayd.c reads the command line): reads the
 * configuration, fork+execs the three daemons with a fresh socketpair
 * each (proc.c), relays hints between them, restarts them with backoff,
 * reloads on SIGHUP (reload.c), and talks to systemd (notify.c).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/crypto/crypto.h"
#include "lib/ipc/config.h"
#include "supervisor/instance.h"
#include "supervisor/notify.h"
#include "supervisor/proc.h"
#include "supervisor/reload.h"
#include "supervisor/sup.h"

static struct event_base *sup_base;
static struct config	  sup_cfg;
static const char	 *sup_config_path;
static bool		  sup_config_given;
static uint32_t		  sup_gen = 1;
static int		  sup_exit_status;
static bool		  sup_stopping;
static char		  sup_instance[256];
static struct event	 *sup_tick_ev;
static char		 *sup_env_token;      /* $AUDITRELAY_API_TOKEN */
static uint32_t		  sup_reload_seq;     /* SIGHUPs seen */
static uint32_t		  sup_reload_pending; /* awaits acks */
static char		  sup_reload_refused[1024];
static bool		  sup_ready_sent;

/*
 * Parse the configuration file and the environment into cfg, and check the
 * master key file it names. The default file may be absent (environment
 * only); a file given with -c may not. A token given as
 * AUDITRELAY_API_TOKEN was taken out of the environment at start; it still
 * overrides the file on every reload.
 */
static int
sup_config_read(struct config *cfg, char *err, size_t errlen)
{
	uint8_t key[CRYPTO_KEY_LEN];
	char	keyid[CRYPTO_KEYID_LEN + 1], kerr[512], where[600];

	config_init(cfg);
	if (config_load(cfg, sup_config_path, !sup_config_given, err, errlen) !=
	    0)
		goto fail;
	if (sup_env_token != NULL &&
	    config_set(cfg, CONF_API_TOKEN, sup_env_token, err, errlen) == 0)
		cfg->line[CONF_API_TOKEN] = CONFIG_FROM_ENV;
	if (config_check(cfg, err, errlen) != 0)
		goto fail;
	if (crypto_master_key_load(config_str(cfg, CONF_CRYPTO_MASTER_KEY_FILE),
		key, keyid, kerr, sizeof(kerr)) != 0) {
		explicit_bzero(key, sizeof(key));
		config_where(cfg, CONF_CRYPTO_MASTER_KEY_FILE, where,
		    sizeof(where));
		util_errf(err, errlen, "%s: crypto_master_key_file: %s", where,
		    kerr);
		goto fail;
	}
	explicit_bzero(key, sizeof(key));
	return 0;
fail:
	config_clear(cfg);
	return -EINVAL;
}

/*
 * STATUS= from what is true now: the daemons' trouble, the store, a
 * refused reload (kept until a good one), else the daemons' pids.
 */
static void
sup_status_refresh(void)
{
	char	  trouble[600], pids[200], when[64], status[1400];
	int64_t	  down = proc_store_down_since();
	size_t	  off = 0;
	time_t	  t;
	struct tm tm;

	if (sup_stopping)
		return;
	status[0] = '\0';
	if (down > 0) {
		t = (time_t)down;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
		off += (size_t)snprintf(status + off, sizeof(status) - off,
		    "degraded: store unreachable since %s%s", when,
		    sup_cfg.line[CONF_MONGODB_URI] == 0 ?
			" (mongodb_uri is "
			"not configured: set it, then restart auditrelay)" :
			"");
	}
	if (proc_trouble(trouble, sizeof(trouble)) && off < sizeof(status))
		off += (size_t)snprintf(status + off, sizeof(status) - off,
		    "%s%s",
		    off > 0	       ? "; " :
			sup_ready_sent ? "degraded: " :
					 "starting: ",
		    trouble);
	if (sup_reload_refused[0] != '\0' && off < sizeof(status))
		off += (size_t)snprintf(status + off, sizeof(status) - off,
		    "%sreload refused: %s", off > 0 ? "; " : "",
		    sup_reload_refused);
	if (down == 0 && trouble[0] == '\0' && off < sizeof(status)) {
		proc_summary(pids, sizeof(pids));
		snprintf(status + off, sizeof(status) - off, "%s%s: %s",
		    off > 0 ? "; " : "",
		    sup_ready_sent ? "running" : "starting", pids);
	}
	notify_status("%s", status);
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
	proc_stop_all(
	    (unsigned)config_int(&sup_cfg, CONF_SHUTDOWN_GRACE) * 1000);
}

static void
sup_all_ready(void)
{
	char buf[200];

	proc_summary(buf, sizeof(buf));
	if (proc_all_ready())
		log_info("all daemons ready (%s)", buf);
	else
		log_warn("started with a daemon held in a crash loop (%s)",
		    buf);
	sup_ready_sent = true;
	notify_ready(NULL);
	sup_status_refresh();
}

/* The end of a reload: every running daemon acked the new generation. */
static void
sup_all_acked(uint32_t gen, const char *refused)
{
	char gen_s[16];

	if (refused != NULL) {
		log_err("reload refused by a daemon (generation=%u): %s", gen,
		    refused);
		util_strlcpy(sup_reload_refused, refused,
		    sizeof(sup_reload_refused));
	} else {
		log_info("configuration generation=%u applied by every "
			 "daemon",
		    gen);
		sup_reload_refused[0] = '\0';
	}
	/* STATUS= first: the verdict ends "systemctl reload". */
	notify_ready(NULL);
	sup_status_refresh();
	snprintf(gen_s, sizeof(gen_s), "%u", gen);
	if (sup_reload_pending != 0)
		reload_status_write(sup_reload_pending,
		    refused != NULL ? RELOAD_REFUSED : RELOAD_OK,
		    refused != NULL ? refused : gen_s);
	sup_reload_pending = 0;
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
	.changed = sup_status_refresh,
};

static void
sup_reload(void)
{
	struct config cfg;
	char	      err[1024];

	notify_reloading();
	reload_status_write(++sup_reload_seq, RELOAD_PENDING, NULL);
	if (sup_config_read(&cfg, err, sizeof(err)) != 0) {
		log_err("reload refused, keeping the old configuration: %s",
		    err);
		util_strlcpy(sup_reload_refused, err,
		    sizeof(sup_reload_refused));
		notify_ready(NULL);
		sup_status_refresh();
		reload_status_write(sup_reload_seq, RELOAD_REFUSED, err);
		return;
	}
	if (strcmp(config_str(&cfg, CONF_API_LISTEN),
		config_str(&sup_cfg, CONF_API_LISTEN)) != 0)
		log_warn("api_listen changed: it takes effect when "
			 "auditrelay-apid restarts");
	config_clear(&sup_cfg);
	sup_cfg = cfg;
	log_set_verbose((int)config_int(&sup_cfg, CONF_LOG_VERBOSE) > 0 ?
		1 :
		(log_debug_enabled() ? 1 : 0));
	log_redact_add(config_str(&sup_cfg, CONF_API_TOKEN));
	log_info("configuration reloaded from %s, pushing generation=%u",
	    sup_config_path, sup_gen + 1);
	sup_reload_pending = sup_reload_seq;
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

/*
 * Keep-alive tick: ping children (a silent one is killed and respawned),
 * feed the watchdog (it watches this loop; the children are ours to
 * watch, and a child held in a crash loop must not restart the others),
 * refresh STATUS=.
 */
static void
sup_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	if (sup_stopping)
		return;
	(void)proc_ping_all();
	notify_watchdog();
	sup_status_refresh();
}

/* Print a -n or --reload refusal: at err priority under journald. */
static void
sup_refuse(const char *what, const char *err)
{
	fprintf(stderr, "%sauditrelayd: %s%s\n", log_is_journal() ? "<3>" : "",
	    what, err);
}

/*
 * --reload: the runtime directory is systemd's $RUNTIME_DIRECTORY (under
 * ExecReload=), else runtime_dir of the configuration, read leniently (a
 * broken file is for the running supervisor to refuse).
 */
static int
sup_reload_client(int64_t pid)
{
	struct config cfg;
	char	      dir[4096], err[1024];
	const char   *env = getenv("RUNTIME_DIRECTORY");
	int	      rc;

	if (env != NULL && *env != '\0') {
		util_strlcpy(dir, env, sizeof(dir));
		dir[strcspn(dir, ":")] = '\0';
	} else {
		config_init(&cfg);
		(void)config_load(&cfg, sup_config_path, !sup_config_given, err,
		    sizeof(err));
		util_strlcpy(dir, config_str(&cfg, CONF_RUNTIME_DIR),
		    sizeof(dir));
		config_clear(&cfg);
	}
	rc = reload_client(dir, (long)pid);
	return rc;
}

/* The supervisor's life once its command line is read (auditrelayd.c). */
int
sup_run(const struct sup_opts *o)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD };
	struct timeval	 tv;
	char		 err[1024], warn[1024];
	const char	*env;
	bool		 check = o->check;
	int		 verbose = o->verbose, rc;
	int64_t		 tick_ms;
	size_t		 i;

	sup_config_path = o->config_path;
	sup_config_given = o->config_given;
	log_init("auditrelayd", verbose);
	if (o->reload)
		return sup_reload_client(o->reload_pid);
	/* No core dumps or ptrace of a process that holds the secrets. */
	prctl(PR_SET_DUMPABLE, 0);
	if (crypto_init() != 0) {
		log_err("cannot initialise libgcrypt");
		return 1;
	}
	if ((env = getenv("AUDITRELAY_API_TOKEN")) != NULL) {
		sup_env_token = util_xstrdup(env);
		log_redact_add(sup_env_token);
		/* Out of the environment (and /proc/PID/environ's view). */
		explicit_bzero((char *)env, strlen(env));
		unsetenv("AUDITRELAY_API_TOKEN");
	}
	if (sup_config_read(&sup_cfg, err, sizeof(err)) != 0) {
		if (check)
			sup_refuse("", err);
		else
			log_err("configuration error, not starting: %s", err);
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
	if ((rc = instance_acquire(&sup_cfg, sup_instance, sizeof(sup_instance),
		 warn, sizeof(warn), err, sizeof(err))) != 0) {
		log_err("not starting: %s", err);
		return EX_CONFIG_STATUS_SUP;
	}
	if (warn[0] != '\0')
		log_warn("%s", warn);
	reload_status_init(config_str(&sup_cfg, CONF_RUNTIME_DIR));
	signal(SIGPIPE, SIG_IGN);
	if ((sup_base = event_base_new()) == NULL)
		fatal("event_base_new failed");
	for (i = 0; i < nitems(sigs); i++) {
		struct event *ev = evsignal_new(sup_base, sigs[i],
		    sup_signal_cb, NULL);

		if (ev == NULL || evsignal_add(ev, NULL) != 0)
			fatal("cannot watch signal %d", sigs[i]);
	}
	log_info("auditrelayd %s starting instance=%s config=%s", AR_VERSION,
	    sup_instance, sup_config_path);
	proc_table_init(sup_base, &sup_cfg, sup_instance, verbose > 0,
	    &sup_hooks);
	proc_spawn_all();
	notify_status("starting");
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
