/*
 * The life of a child daemon. See child.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

#define CHILD_HANDSHAKE_MS 10000

static const struct child_ops *child_ops;
static struct event_base      *child_evbase;
static struct ipc_chan	      *child_ch;
static struct config	       child_cfg;
static bool		       child_configured;
static bool		       child_is_stopping;
static int		       child_status;
static struct event	      *child_hs_ev, *child_grace_ev;
static struct event	      *child_sigterm_ev, *child_sigint_ev;
static int		       child_store_reported = -1;
static struct store	      *child_st;
static bool		       child_st_ready;
static struct event	      *child_st_ev;
static int64_t		       child_st_down_since;
static uint64_t		       child_st_errors;

#define CHILD_STORE_CHECK_MS 2000

static bool child_probing; /* the probe reports: it may say "back" */

/*
 * The store probe runs on its own worker thread (the probe client is used
 * there only): a store that accepts connections but does not answer holds
 * the ping for its socket timeout, and the loop must go on answering the
 * supervisor's pings and the daemon's own work meanwhile.
 */
static struct worker *child_probe_w;
static bool	      child_probe_busy;
static int	      child_probe_rc;
static char	      child_probe_err[512];

struct event_base *
child_base(void)
{
	return child_evbase;
}

struct ipc_chan *
child_chan(void)
{
	return child_ch;
}

const struct config *
child_config(void)
{
	return &child_cfg;
}

bool
child_stopping(void)
{
	return child_is_stopping;
}

void
child_exit(int status)
{
	child_status = status;
	event_base_loopbreak(child_evbase);
}

void
child_report_store(bool ok, const char *detail)
{
	if (child_store_reported == (int)ok)
		return;
	child_store_reported = ok;
	ipc_send_child_status(child_ch, ok, detail);
}

struct store *
child_store(void)
{
	return child_st;
}

bool
child_store_ready(void)
{
	return child_st_ready;
}

bool
child_store_result(bool ok, const char *err)
{
	if (!ok)
		child_st_errors++;
	/*
	 * Only the probe says the store is back: a worker's result may be
	 * of a call that began before the outage, and must not make the
	 * state flap (and log the outage twice).
	 */
	if (ok && !child_probing && child_st != NULL &&
	    !store_healthy(child_st))
		return ok;
	if (child_st == NULL || !store_note(child_st, ok))
		return ok;
	if (!ok) {
		child_st_down_since = util_mono_ms();
		log_err("store unreachable: %s; retrying every %ds, work is "
			"held until it is back",
		    err != NULL ? err : "error", CHILD_STORE_CHECK_MS / 1000);
	} else
		log_notice("store reachable again after %llds",
		    (long long)(util_mono_ms() - child_st_down_since) / 1000);
	child_report_store(ok, ok ? "store ok" : err);
	return ok;
}

/* Probe worker: one ping on the probe client. */
static void
child_probe_work(void *arg)
{
	child_probe_rc = store_ping(child_st, child_probe_err,
	    sizeof(child_probe_err));
}

/* Loop: the ping's outcome; run store_setup until it succeeds. */
static void
child_probe_done(void *arg)
{
	char err[512];

	child_probe_busy = false;
	if (child_probe_rc != 0) {
		child_store_result(false, child_probe_err);
		return;
	}
	child_probing = true;
	child_store_result(true, NULL);
	child_probing = false;
	if (!child_st_ready) {
		if (child_ops->store_setup != NULL &&
		    child_ops->store_setup(child_st, err, sizeof(err)) != 0) {
			log_warn("cannot create indexes: %s; retrying", err);
			return;
		}
		child_st_ready = true;
		log_info("store ready database=%s", store_dbname(child_st));
	}
}

/* Periodic store check: a ping on the probe worker, one at a time. */
static void
child_store_check_cb(evutil_socket_t fd, short what, void *arg)
{
	if (child_probe_busy)
		return;
	if (child_probe_w == NULL &&
	    (child_probe_w = worker_new(child_evbase)) == NULL) {
		/* No thread: ping here, as a last resort. */
		child_probe_work(NULL);
		child_probe_done(NULL);
		return;
	}
	child_probe_busy = true;
	if (worker_submit_to(child_probe_w, child_probe_work, child_probe_done,
		NULL) != 0)
		child_probe_busy = false;
}

/* Open the store pool from the first configuration. */
static int
child_store_open(const struct config *cfg, char *err, size_t errlen)
{
	struct timeval tv = { 0, CHILD_STORE_CHECK_MS * 1000 };

	if (store_open(config_str(cfg, CONF_MONGODB_URI),
		config_str(cfg, CONF_MONGODB_DATABASE), child_ops->name,
		&child_st, err, errlen) != 0)
		return -EINVAL;
	tv.tv_sec = CHILD_STORE_CHECK_MS / 1000;
	tv.tv_usec = 0;
	child_st_ev = event_new(child_evbase, -1, EV_PERSIST,
	    child_store_check_cb, NULL);
	event_add(child_st_ev, &tv);
	event_active(child_st_ev, EV_TIMEOUT, 0);
	return 0;
}

static void
child_grace_cb(evutil_socket_t fd, short what, void *arg)
{
	log_info("grace period over, exiting");
	child_exit(0);
}

/* Start a graceful stop once. */
static void
child_begin_stop(unsigned grace_ms, const char *why)
{
	struct timeval tv;

	if (child_is_stopping)
		return;
	child_is_stopping = true;
	log_info("stopping (%s), grace %ums", why, grace_ms);
	tv.tv_sec = grace_ms / 1000;
	tv.tv_usec = (grace_ms % 1000) * 1000;
	child_grace_ev = evtimer_new(child_evbase, child_grace_cb, NULL);
	evtimer_add(child_grace_ev, &tv);
	if (child_ops->shutdown != NULL && child_configured)
		child_ops->shutdown(grace_ms);
	else
		child_exit(0);
}

static void
child_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	/* TERM after Shutdown means the grace is over: go now. */
	if (child_is_stopping) {
		child_exit(0);
		return;
	}
	child_begin_stop(1000, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void
child_handshake_cb(evutil_socket_t fd, short what, void *arg)
{
	log_err("no configuration from auditrelayd within %ds, exiting",
	    CHILD_HANDSHAKE_MS / 1000);
	child_exit(1);
}

/* A Config message: first one configures and answers Ready. */
static void
child_on_config(const Ar__Config *m)
{
	struct config cfg;
	char	      err[512];

	if (ipc_config_apply(m, &cfg, err, sizeof(err)) != 0) {
		log_err("configuration from auditrelayd refused: %s", err);
		if (!child_configured)
			child_exit(EX_CONFIG_STATUS);
		else
			ipc_send_config_ack(child_ch, m->generation, false,
			    err);
		return;
	}
	log_set_verbose((int)config_int(&cfg, CONF_LOG_VERBOSE) > 0 ?
		(int)config_int(&cfg, CONF_LOG_VERBOSE) :
		(log_debug_enabled() ? 1 : 0));
	log_redact_add(config_str(&cfg, CONF_API_TOKEN));
	if (!child_configured &&
	    child_store_open(&cfg, err, sizeof(err)) != 0) {
		log_err("configuration error: %s", err);
		config_clear(&cfg);
		child_exit(EX_CONFIG_STATUS);
		return;
	}
	if (child_ops->configure(&cfg, !child_configured, err, sizeof(err)) !=
	    0) {
		if (!child_configured) {
			log_err("configuration error: %s", err);
			config_clear(&cfg);
			child_exit(EX_CONFIG_STATUS);
			return;
		}
		log_warn("reload refused, keeping the old configuration: %s",
		    err);
		ipc_send_config_ack(child_ch, m->generation, false, err);
		config_clear(&cfg);
		return;
	}
	config_clear(&child_cfg);
	child_cfg = cfg;
	if (!child_configured) {
		child_configured = true;
		if (child_hs_ev != NULL)
			evtimer_del(child_hs_ev);
		ipc_send_ready(child_ch, m->generation);
		log_info("ready generation=%u", m->generation);
	} else {
		ipc_send_config_ack(child_ch, m->generation, true, NULL);
		log_info("configuration reloaded generation=%u", m->generation);
	}
}

static void
child_msg_cb(struct ipc_chan *ch, const Ar__Envelope *env, void *arg)
{
	switch (env->body_case) {
	case AR__ENVELOPE__BODY_CONFIG:
		child_on_config(env->config);
		break;
	case AR__ENVELOPE__BODY_PING:
		ipc_send_pong(ch, env->ping->seq, child_st_errors);
		break;
	case AR__ENVELOPE__BODY_SHUTDOWN:
		child_begin_stop(env->shutdown->grace_ms, "shutdown requested");
		break;
	default:
		if (child_configured && child_ops->dispatch != NULL)
			child_ops->dispatch(env);
		else
			log_debug("dropping message case=%d",
			    (int)env->body_case);
		break;
	}
}

static void
child_close_cb(struct ipc_chan *ch, const char *err, void *arg)
{
	log_info("channel to auditrelayd closed (%s), exiting", err);
	child_exit(0);
}

static void
child_usage(FILE *f, const char *prog)
{
	fprintf(f,
	    "usage: %s [-v] [--help] [--version]\n"
	    "%s\n"
	    "This program is started by auditrelayd(8) with its IPC channel "
	    "on fd 3;\nit is not meant to be run by hand.\n",
	    prog, child_ops->summary);
}

int
child_main(int argc, char **argv, const struct child_ops *ops)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct timeval tv = { CHILD_HANDSHAKE_MS / 1000, 0 };
	const char    *sup;
	int64_t	       sup_pid;
	int	       ch, verbose = 0;

	child_ops = ops;
	while ((ch = getopt_long(argc, argv, "hvV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			child_usage(stdout, ops->name);
			return 0;
		case 'V':
			printf("%s %s\n", ops->name, AR_VERSION);
			return 0;
		case 'v':
			verbose++;
			break;
		default:
			child_usage(stderr, ops->name);
			return 64;
		}
	}
	log_init(ops->name, verbose);
	if (fcntl(IPC_CHILD_FD, F_GETFD) == -1) {
		fprintf(stderr,
		    "%s: no IPC channel on fd 3; start auditrelayd "
		    "instead\n",
		    ops->name);
		return 64;
	}
	/*
	 * Die with the supervisor, even if it is killed with SIGKILL. It
	 * names itself in AUDITRELAY_SUPERVISOR_PID: a parent other than
	 * that one means it is already gone (it may be pid 1 itself, in a
	 * container).
	 */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if ((sup = getenv("AUDITRELAY_SUPERVISOR_PID")) == NULL ||
	    util_parse_int64(sup, 1, INT32_MAX, &sup_pid) != 0)
		sup_pid = -1;
	unsetenv("AUDITRELAY_SUPERVISOR_PID");
	if (sup_pid > 0 ? getppid() != (pid_t)sup_pid : getppid() == 1) {
		log_err("supervisor already gone, exiting");
		return 1;
	}
	prctl(PR_SET_DUMPABLE, 0);
	signal(SIGPIPE, SIG_IGN);
	fcntl(IPC_CHILD_FD, F_SETFD, FD_CLOEXEC);
	config_init(&child_cfg);
	store_log_init();
	if ((child_evbase = event_base_new()) == NULL)
		fatal("event_base_new failed");
	child_ch = ipc_chan_new(child_evbase, IPC_CHILD_FD, child_msg_cb,
	    child_close_cb, NULL);
	if (child_ch == NULL)
		fatal("cannot set up the IPC channel");
	child_sigterm_ev = evsignal_new(child_evbase, SIGTERM, child_signal_cb,
	    NULL);
	child_sigint_ev = evsignal_new(child_evbase, SIGINT, child_signal_cb,
	    NULL);
	evsignal_add(child_sigterm_ev, NULL);
	evsignal_add(child_sigint_ev, NULL);
	child_hs_ev = evtimer_new(child_evbase, child_handshake_cb, NULL);
	evtimer_add(child_hs_ev, &tv);
	ipc_send_hello(child_ch, ops->daemon);
	event_base_dispatch(child_evbase);
	return child_status;
}
