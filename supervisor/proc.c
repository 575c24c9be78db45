/*
 * The supervisor's child table. See proc.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>
#include <syslog.h>

#include <systemd/sd-journal.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "supervisor/proc.h"

static struct proc procs[PROC_COUNT] = {
	{ .daemon = AR__DAEMON__DAEMON_APID, .name = "auditrelay-apid" },
	{ .daemon = AR__DAEMON__DAEMON_FETCHERD,
	    .name = "auditrelay-fetcherd" },
	{ .daemon = AR__DAEMON__DAEMON_DELIVERD,
	    .name = "auditrelay-deliverd" },
};

static struct event_base       *proc_base;
static const struct config     *proc_cfg;
static const struct proc_hooks *proc_hooks;
static const char	       *proc_instance;
static uint32_t			proc_gen = 1;
static bool			proc_verbose;
static bool			proc_stopping;
static bool			proc_announced_ready;
static int64_t			proc_store_down_wall; /* s; 0: up */
static char			proc_refused[512];    /* of proc_gen */
static struct event	       *proc_term_ev, *proc_kill_ev;
static pid_t			proc_self; /* the supervisor */

static void proc_spawn(struct proc *);

static struct proc *
proc_by_daemon(Ar__Daemon d)
{
	int i;

	for (i = 0; i < PROC_COUNT; i++)
		if (procs[i].daemon == d)
			return &procs[i];
	return NULL;
}

void
proc_table_init(struct event_base *base, const struct config *cfg,
    const char *instance_id, bool verbose, const struct proc_hooks *hooks)
{
	proc_base = base;
	proc_self = getpid();
	proc_cfg = cfg;
	proc_instance = instance_id;
	proc_verbose = verbose;
	proc_hooks = hooks;
}

int
proc_table_find(char *err, size_t errlen)
{
	char dir[4096];
	int  i;

	if (util_self_dir(dir, sizeof(dir)) != 0)
		dir[0] = '\0';
	for (i = 0; i < PROC_COUNT; i++) {
		if (dir[0] != '\0' &&
		    (size_t)snprintf(procs[i].path, sizeof(procs[i].path),
			"%s/%s", dir, procs[i].name) < sizeof(procs[i].path) &&
		    access(procs[i].path, X_OK) == 0)
			continue;
		if ((size_t)snprintf(procs[i].path, sizeof(procs[i].path),
			"%s/%s", AR_LIBEXECDIR,
			procs[i].name) < sizeof(procs[i].path) &&
		    access(procs[i].path, X_OK) == 0)
			continue;
		snprintf(err, errlen,
		    "cannot find %s beside auditrelayd (%s) "
		    "nor in %s",
		    procs[i].name, dir, AR_LIBEXECDIR);
		return -ENOENT;
	}
	return 0;
}

static void
proc_respawn_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proc *p = arg;

	if (!proc_stopping)
		proc_spawn(p);
}

static void
proc_handshake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proc *p = arg;

	if (p->state == PROC_STARTING && p->pid > 0) {
		log_warn("%s pid=%d did not finish its handshake within %ds, "
			 "killing it",
		    p->name, (int)p->pid, PROC_HANDSHAKE_MS / 1000);
		kill(p->pid, SIGKILL);
	}
}

static void
proc_forward(Ar__Daemon to, const Ar__Envelope *env)
{
	struct proc *p = proc_by_daemon(to);

	if (p == NULL || p->ch == NULL || p->state != PROC_READY)
		return;
	/*
	 * Hints are lossy (the receiver's rescan finds what one missed):
	 * a child that does not read them (stopped, stuck) gets no more
	 * than PROC_FORWARD_MAX bytes of them queued here.
	 */
	if (ipc_chan_pending(p->ch) > PROC_FORWARD_MAX) {
		if (!p->forward_dropping)
			log_warn("%s pid=%d reads no hints (%zu bytes queued); "
				 "dropping them until it does",
			    p->name, (int)p->pid, ipc_chan_pending(p->ch));
		p->forward_dropping = true;
		return;
	}
	if (p->forward_dropping)
		log_info("%s pid=%d reads hints again", p->name, (int)p->pid);
	p->forward_dropping = false;
	ipc_send_envelope(p->ch, env);
}

static void
proc_send_health(void)
{
	Ar__Envelope	   env = AR__ENVELOPE__INIT;
	Ar__Health	   h = AR__HEALTH__INIT;
	Ar__ChildHealth	   ch[PROC_COUNT], *pch[PROC_COUNT];
	static const char *states[] = { "down", "starting", "ready",
		"stopping" };
	struct proc	  *api = proc_by_daemon(AR__DAEMON__DAEMON_APID);
	int64_t		   now = util_mono_ms();
	int		   i;

	if (api->ch == NULL || api->state != PROC_READY)
		return;
	for (i = 0; i < PROC_COUNT; i++) {
		ar__child_health__init(&ch[i]);
		ch[i].daemon = procs[i].daemon;
		ch[i].pid = (uint32_t)(procs[i].pid > 0 ? procs[i].pid : 0);
		ch[i].ready = procs[i].state == PROC_READY;
		ch[i].store_ok = procs[i].store_ok;
		ch[i].restarts = procs[i].restarts;
		ch[i].state = (char *)(procs[i].crash_loop &&
			    procs[i].state != PROC_READY ?
			"crash-loop" :
			states[procs[i].state]);
		ch[i].crash_loop = procs[i].crash_loop;
		ch[i].store_errors = procs[i].store_errors;
		ch[i].ipc_messages = procs[i].ch != NULL ?
		    ipc_chan_sent(procs[i].ch) +
			ipc_chan_received(procs[i].ch) :
		    0;
		ch[i].last_pong_ms = procs[i].last_pong_ms > 0 ?
		    (uint64_t)(now - procs[i].last_pong_ms) :
		    0;
		pch[i] = &ch[i];
	}
	h.n_children = PROC_COUNT;
	h.children = pch;
	env.body_case = AR__ENVELOPE__BODY_HEALTH;
	env.health = &h;
	ipc_send_envelope(api->ch, &env);
}

/*
 * The store as the daemons see it: down when a ready daemon reports it
 * down; remember since when (wall clock, for STATUS=).
 */
static void
proc_store_update(void)
{
	bool down = false;
	int  i;

	for (i = 0; i < PROC_COUNT; i++)
		if (procs[i].state == PROC_READY && !procs[i].store_ok)
			down = true;
	if (down && proc_store_down_wall == 0)
		proc_store_down_wall = util_now_ms() / 1000;
	else if (!down)
		proc_store_down_wall = 0;
}

/*
 * READY=1 once, when start-up is decided: every child ready, or held in a
 * crash loop (systemd must not time the start out and restart the
 * siblings because one daemon keeps dying; STATUS= says which).
 */
static void
proc_announce_ready(void)
{
	int i;

	if (proc_announced_ready)
		return;
	for (i = 0; i < PROC_COUNT; i++)
		if (procs[i].state != PROC_READY && !procs[i].crash_loop)
			return;
	proc_announced_ready = true;
	proc_hooks->all_ready();
}

/* A pushed generation is settled once every ready child acked it. */
static void
proc_check_acked(void)
{
	static uint32_t settled = 1;
	int		i;

	if (proc_gen == settled)
		return;
	for (i = 0; i < PROC_COUNT; i++)
		if (procs[i].state == PROC_READY &&
		    procs[i].acked_gen != proc_gen)
			return;
	settled = proc_gen;
	proc_hooks->all_acked(proc_gen,
	    proc_refused[0] != '\0' ? proc_refused : NULL);
}

/*
 * One dispatch switch for every message a child sends: handshake,
 * keep-alive, and the relay of hints (apid -> fetcherd/deliverd, fetcherd
 * -> deliverd).
 */
static void
proc_dispatch_child(struct ipc_chan *ch, const Ar__Envelope *env, void *arg)
{
	struct proc *p = arg;

	switch (env->body_case) {
	case AR__ENVELOPE__BODY_HELLO:
		if (env->hello->daemon != p->daemon) {
			log_err("%s pid=%d says it is %s, killing it", p->name,
			    (int)p->pid, ipc_daemon_name(env->hello->daemon));
			kill(p->pid, SIGKILL);
			break;
		}
		ipc_send_config(ch, proc_gen, proc_cfg, proc_instance);
		break;
	case AR__ENVELOPE__BODY_READY:
		if (p->state != PROC_STARTING)
			break;
		p->state = PROC_READY;
		p->ready_ms = p->last_pong_ms = util_mono_ms();
		p->acked_gen = env->ready->generation;
		p->store_ok = true;
		evtimer_del(p->handshake_ev);
		log_info("%s pid=%d ready", p->name, (int)p->pid);
		proc_store_update();
		/* apid knows before systemd hears READY=1 (its /healthz). */
		proc_send_health();
		proc_announce_ready();
		proc_check_acked();
		proc_hooks->changed();
		break;
	case AR__ENVELOPE__BODY_CONFIG_ACK:
		p->acked_gen = env->config_ack->generation;
		if (!env->config_ack->ok) {
			log_warn("%s refused configuration generation=%u: %s",
			    p->name, env->config_ack->generation,
			    env->config_ack->error);
			if (env->config_ack->generation == proc_gen &&
			    proc_refused[0] == '\0')
				snprintf(proc_refused, sizeof(proc_refused),
				    "%s: %s", p->name + 11,
				    env->config_ack->error);
		}
		proc_check_acked();
		break;
	case AR__ENVELOPE__BODY_PONG:
		p->pong_seq = env->pong->seq;
		p->store_errors = env->pong->store_errors;
		p->last_pong_ms = util_mono_ms();
		break;
	case AR__ENVELOPE__BODY_CHILD_STATUS:
		p->store_ok = env->child_status->store_ok;
		proc_store_update();
		proc_send_health();
		proc_hooks->changed();
		break;
	case AR__ENVELOPE__BODY_SOURCE_CHANGED:
		proc_forward(AR__DAEMON__DAEMON_FETCHERD, env);
		proc_forward(AR__DAEMON__DAEMON_DELIVERD, env);
		break;
	case AR__ENVELOPE__BODY_LOGS_STORED:
	case AR__ENVELOPE__BODY_BATCH_STORED:
		proc_forward(AR__DAEMON__DAEMON_DELIVERD, env);
		break;
	default:
		log_debug("%s sent an unexpected message case=%d, dropped",
		    p->name, (int)env->body_case);
		break;
	}
}

static void
proc_close_cb(struct ipc_chan *ch, const char *err, void *arg)
{
	struct proc *p = arg;

	/* The process is reaped on SIGCHLD; make sure it goes. */
	if (p->pid > 0 && p->state != PROC_STOPPING) {
		log_debug("%s pid=%d channel closed: %s", p->name, (int)p->pid,
		    err);
		kill(p->pid, SIGKILL);
	}
}

/*
 * In a forked child under journald: give it a journal stream of its own so
 * that each daemon has its own syslog identifier (journalctl -t NAME), and
 * point $JOURNAL_STREAM at it so lib/log keeps the priority prefixes.
 */
static void
proc_child_journal(const char *name)
{
	struct stat st;
	char	    buf[64];
	int	    fd;

	if (!log_is_journal())
		return;
	if ((fd = sd_journal_stream_fd(name, LOG_INFO, 1)) < 0)
		return;
	if (dup2(fd, STDERR_FILENO) == -1) {
		close(fd);
		return;
	}
	close(fd);
	if (fstat(STDERR_FILENO, &st) == 0) {
		snprintf(buf, sizeof(buf), "%lu:%lu", (unsigned long)st.st_dev,
		    (unsigned long)st.st_ino);
		setenv("JOURNAL_STREAM", buf, 1);
	}
}

/* Fork and exec one child with a fresh socketpair on fd 3. */
static void
proc_spawn(struct proc *p)
{
	struct timeval tv = { PROC_HANDSHAKE_MS / 1000, 0 };
	int	       sv[2];
	pid_t	       pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		log_err("%s: socketpair: %s; retrying in 1s", p->name,
		    strerror(errno));
		goto retry;
	}
	switch ((pid = fork())) {
	case -1:
		log_err("%s: fork: %s; retrying in 1s", p->name,
		    strerror(errno));
		close(sv[0]);
		close(sv[1]);
		goto retry;
	case 0:
		if (sv[1] == IPC_CHILD_FD)
			fcntl(sv[1], F_SETFD, 0);
		else if (dup2(sv[1], IPC_CHILD_FD) == -1)
			_exit(127);
		proc_child_journal(p->name);
		close_range(IPC_CHILD_FD + 1, ~0U, 0);
		/* Children get their configuration over IPC, not secrets
		 * through their environment. */
		unsetenv("AUDITRELAY_API_TOKEN");
		unsetenv("AUDITRELAY_MONGODB_URI");
		unsetenv("AUDITRELAY_ELASTICSEARCH_AUTH");
		/* Who the parent must be (we may be pid 1 in a container). */
		{
			char ppid[16];

			snprintf(ppid, sizeof(ppid), "%d", (int)proc_self);
			setenv("AUDITRELAY_SUPERVISOR_PID", ppid, 1);
		}
		{
			char *argv[] = { (char *)p->name,
				proc_verbose ? "-v" : NULL, NULL };

			execv(p->path, argv);
		}
		fprintf(stderr, "%s: exec %s: %s\n", p->name, p->path,
		    strerror(errno));
		_exit(127);
	default:
		break;
	}
	close(sv[1]);
	p->pid = pid;
	p->state = PROC_STARTING;
	p->started_ms = util_mono_ms();
	p->ping_seq = p->pong_seq = 0;
	p->ch = ipc_chan_new(proc_base, sv[0], proc_dispatch_child,
	    proc_close_cb, p);
	if (p->ch == NULL)
		fatal("out of memory");
	if (p->handshake_ev == NULL)
		p->handshake_ev = evtimer_new(proc_base, proc_handshake_cb, p);
	evtimer_add(p->handshake_ev, &tv);
	log_info("started %s pid=%d", p->name, (int)pid);
	return;
retry:
	tv.tv_sec = 1;
	evtimer_add(p->respawn_ev, &tv);
}

void
proc_spawn_all(void)
{
	int i;

	for (i = 0; i < PROC_COUNT; i++) {
		procs[i].respawn_ev = evtimer_new(proc_base, proc_respawn_cb,
		    &procs[i]);
		proc_spawn(&procs[i]);
	}
}

void
proc_push_config(const struct config *cfg, uint32_t gen)
{
	int i;

	proc_cfg = cfg;
	proc_gen = gen;
	proc_refused[0] = '\0';
	for (i = 0; i < PROC_COUNT; i++)
		if (procs[i].state == PROC_READY)
			ipc_send_config(procs[i].ch, gen, cfg, proc_instance);
}

bool
proc_ping_all(void)
{
	bool all = true;
	int  i;

	for (i = 0; i < PROC_COUNT; i++) {
		struct proc *p = &procs[i];

		if (p->state != PROC_READY) {
			all = false;
			continue;
		}
		if (p->crash_loop &&
		    util_mono_ms() - p->ready_ms > PROC_STABLE_MS) {
			p->crash_loop = false;
			p->attempt = 0;
			log_notice("%s out of its crash loop: up for %ds",
			    p->name, PROC_STABLE_MS / 1000);
		}
		if (p->ping_seq - p->pong_seq >= PROC_MISSED_PINGS) {
			log_warn("%s pid=%d missed %d pings, killing it",
			    p->name, (int)p->pid, PROC_MISSED_PINGS);
			kill(p->pid, SIGKILL);
			all = false;
			continue;
		}
		if (p->ping_seq != p->pong_seq)
			all = false;
		ipc_send_ping(p->ch, ++p->ping_seq);
	}
	proc_send_health();
	return all;
}

static void
proc_kill_cb(evutil_socket_t fd, short what, void *arg)
{
	int sig = (int)(intptr_t)arg, i;

	for (i = 0; i < PROC_COUNT; i++) {
		if (procs[i].pid <= 0)
			continue;
		log_warn("%s pid=%d still running, sending %s", procs[i].name,
		    (int)procs[i].pid, sig == SIGKILL ? "SIGKILL" : "SIGTERM");
		kill(procs[i].pid, sig);
	}
}

void
proc_stop_all(unsigned grace_ms)
{
	struct timeval tv;
	int	       i;

	if (proc_stopping)
		return;
	proc_stopping = true;
	for (i = 0; i < PROC_COUNT; i++) {
		struct proc *p = &procs[i];

		evtimer_del(p->respawn_ev);
		if (p->handshake_ev != NULL)
			evtimer_del(p->handshake_ev);
		if (p->pid <= 0)
			continue;
		if (p->ch != NULL && p->state == PROC_READY)
			ipc_send_shutdown(p->ch, grace_ms);
		else
			kill(p->pid, SIGTERM);
		p->state = PROC_STOPPING;
	}
	tv.tv_sec = grace_ms / 1000;
	tv.tv_usec = (grace_ms % 1000) * 1000;
	proc_term_ev = evtimer_new(proc_base, proc_kill_cb,
	    (void *)(intptr_t)SIGTERM);
	evtimer_add(proc_term_ev, &tv);
	tv.tv_sec += 3;
	proc_kill_ev = evtimer_new(proc_base, proc_kill_cb,
	    (void *)(intptr_t)SIGKILL);
	evtimer_add(proc_kill_ev, &tv);
	if (proc_all_down())
		proc_hooks->all_down();
}

/* One child is gone: decide between respawn, give up, or done. */
static void
proc_died(struct proc *p, int status)
{
	struct timeval tv;
	int64_t	       now = util_mono_ms(), delay;
	unsigned       deaths;
	char	       how[64];

	if (WIFEXITED(status))
		snprintf(how, sizeof(how), "pid=%d exited with status %d",
		    (int)p->pid, WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "pid=%d killed by signal %d",
		    (int)p->pid, WTERMSIG(status));
	else
		snprintf(how, sizeof(how), "pid=%d stopped (status %d)",
		    (int)p->pid, status);
	ipc_chan_free(p->ch);
	p->ch = NULL;
	p->pid = 0;
	if (p->handshake_ev != NULL)
		evtimer_del(p->handshake_ev);
	if (proc_stopping) {
		log_info("%s %s", p->name, how);
		p->state = PROC_DOWN;
		if (proc_all_down())
			proc_hooks->all_down();
		return;
	}
	p->state = PROC_DOWN;
	if (WIFEXITED(status) && WEXITSTATUS(status) == EX_CONFIG_STATUS_SUP) {
		log_err("%s %s (configuration error): not restarting it, "
			"stopping auditrelay",
		    p->name, how);
		proc_hooks->give_up(EX_CONFIG_STATUS_SUP,
		    "configuration error");
		return;
	}
	deaths = crashwin_record(&p->deaths, now, PROC_CRASH_WINDOW_MS);
	p->recent_deaths = deaths;
	if (p->ready_ms > 0 && now - p->ready_ms > PROC_STABLE_MS) {
		p->attempt = 0;
		if (p->crash_loop)
			log_notice("%s out of its crash loop (it ran %llds)",
			    p->name, (long long)(now - p->ready_ms) / 1000);
		p->crash_loop = false;
	}
	p->ready_ms = 0;
	p->restarts++;
	if (deaths > PROC_CRASH_LIMIT) {
		/* That child only: held at the longest backoff, reported;
		 * its siblings keep working. */
		delay = PROC_BACKOFF_CAP_MS;
		if (!p->crash_loop)
			log_err("%s crash loop: %u deaths in %ds (last: %s); "
				"holding it, next start in %ds; the other "
				"daemons keep running",
			    p->name, deaths, PROC_CRASH_WINDOW_MS / 1000, how,
			    PROC_BACKOFF_CAP_MS / 1000);
		else
			log_warn("%s %s, still in a crash loop, next start "
				 "in %ds (restart %u)",
			    p->name, how, PROC_BACKOFF_CAP_MS / 1000,
			    p->restarts);
		p->crash_loop = true;
	} else {
		delay = backoff_full_jitter(p->attempt++, PROC_BACKOFF_BASE_MS,
		    PROC_BACKOFF_CAP_MS);
		log_warn("%s %s, restarting in %lldms (restart %u)", p->name,
		    how, (long long)delay, p->restarts);
	}
	p->respawn_at_ms = now + delay;
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(p->respawn_ev, &tv);
	if (p->crash_loop)
		proc_announce_ready();
	proc_store_update();
	proc_send_health();
	proc_hooks->changed();
}

void
proc_reap(void)
{
	pid_t pid;
	int   status, i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < PROC_COUNT; i++) {
			if (procs[i].pid == pid) {
				proc_died(&procs[i], status);
				break;
			}
		}
	}
}

bool
proc_all_ready(void)
{
	int i;

	for (i = 0; i < PROC_COUNT; i++)
		if (procs[i].state != PROC_READY)
			return false;
	return true;
}

bool
proc_all_down(void)
{
	int i;

	for (i = 0; i < PROC_COUNT; i++)
		if (procs[i].pid > 0)
			return false;
	return true;
}

void
proc_summary(char *buf, size_t len)
{
	size_t off = 0;
	int    i;

	buf[0] = '\0';
	for (i = 0; i < PROC_COUNT && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s=%d",
		    i > 0 ? " " : "", procs[i].name + 11, (int)procs[i].pid);
}

bool
proc_trouble(char *buf, size_t len)
{
	int64_t now = util_mono_ms(), left;
	size_t	off = 0;
	int	i;

	buf[0] = '\0';
	for (i = 0; i < PROC_COUNT && off < len; i++) {
		struct proc *p = &procs[i];
		const char  *short_name = p->name + 11;

		if (p->state == PROC_READY)
			continue;
		left = p->respawn_at_ms - now;
		if (p->crash_loop)
			off += (size_t)snprintf(buf + off, len - off,
			    "%s%s crash loop (%u in %d s), held%s",
			    off > 0 ? "; " : "", short_name, p->recent_deaths,
			    PROC_CRASH_WINDOW_MS / 1000,
			    p->pid > 0 ? ", starting" : "");
		else if (p->recent_deaths > 0)
			off += (size_t)snprintf(buf + off, len - off,
			    "%s%s restarting (%u in %d s)", off > 0 ? "; " : "",
			    short_name, p->recent_deaths,
			    PROC_CRASH_WINDOW_MS / 1000);
		else
			off += (size_t)snprintf(buf + off, len - off,
			    "%s%s starting", off > 0 ? "; " : "", short_name);
		if (p->pid <= 0 && left > 0 && off < len)
			off += (size_t)snprintf(buf + off, len - off,
			    ", next start in %lld s",
			    (long long)(left + 999) / 1000);
	}
	return buf[0] != '\0';
}

int64_t
proc_store_down_since(void)
{
	return proc_store_down_wall;
}
