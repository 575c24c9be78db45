/*
 * Connections of the API under evhttp. See conn.h.
 *
 * libevent 2.1 has no connection limit and no per-request hook before the
 * head is parsed, so this file works at the bufferevent level: evhttp asks
 * us for each new connection's bufferevent (evhttp_set_bevcb); we keep a
 * reference on it, watch its input buffer (a copy of the bytes of each
 * request head, up to its blank line) and learn of its end through the
 * connection's close callback (or, for one closed before it sent a byte,
 * through the periodic tick, which sees evhttp's callbacks gone). evhttp
 * passes its connection as the bufferevent's callback argument; that is
 * how the connection of a bufferevent is found.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/resource.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "apid/apid.h"
#include "apid/conn.h"
#include "apid/http.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "runtime/child.h"

#define CONN_HEAD_MAX	  (16 * 1024)
#define CONN_TICK_MS	  250
#define CONN_PAUSE_MS	  1000
#define CONN_NOFILE_WANT  65536
#define CONN_ACCEPT_BURST 64 /* accepts per loop pass at most */

enum conn_state {
	CONN_HEAD, /* waiting for a request head */
	CONN_BODY, /* head read, body being read */
	CONN_BUSY, /* in the handlers */
};

struct conn {
	TAILQ_ENTRY(conn) entry;
	struct bufferevent	 *bev;
	struct evbuffer_cb_entry *watch;
	struct evhttp_connection *evcon; /* once known */
	struct areq		 *areq;	 /* the request in the handlers */
	enum conn_state		  state;
	int64_t			  since; /* state entered, monotonic ms */
	char			 *head;	 /* bytes of the head so far */
	size_t			  headlen;
	size_t			  headcap;
	bool			  evicting;
	bool			  refused; /* 401 before the body */
};

static TAILQ_HEAD(, conn) conns = TAILQ_HEAD_INITIALIZER(conns);
static struct evconnlistener *conn_lev;
static struct event	     *conn_tick;
static struct conn_stats      stats;
static unsigned		      conn_evicting;
static bool		      conn_paused;
static int64_t		      conn_resume_at;
static struct event	     *conn_burst_ev;
static unsigned		      conn_burst;

static void conn_close_cb(struct evhttp_connection *evcon, void *arg);

/* Learn the evhttp connection of c and hook its close callback. */
static void
conn_adopt(struct conn *c)
{
	bufferevent_data_cb  r, w;
	bufferevent_event_cb e;
	void		    *arg = NULL;

	if (c->evcon != NULL)
		return;
	bufferevent_getcb(c->bev, &r, &w, &e, &arg);
	if (e == NULL || arg == NULL)
		return;
	c->evcon = arg;
	evhttp_connection_set_closecb(c->evcon, conn_close_cb, c);
}

/* Forget c: evhttp no longer has it. Drops our bufferevent reference. */
static void
conn_release(struct conn *c)
{
	TAILQ_REMOVE(&conns, c, entry);
	if (c->evicting)
		conn_evicting--;
	stats.open--;
	if (c->watch != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_input(c->bev),
		    c->watch);
	free(c->head);
	bufferevent_decref(c->bev);
	free(c);
}

static void
conn_close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct conn *c = arg;

	if (c->areq != NULL)
		http_conn_gone(c->areq);
	c->areq = NULL;
	conn_release(c);
}

/*
 * Close c now, as if it had timed out: evhttp frees it and calls our close
 * callback (which releases c). Never called from c's own callbacks.
 */
static void
conn_evict(struct conn *c)
{
	if (c->evicting)
		return;
	c->evicting = true;
	conn_evicting++;
	stats.evicted++;
	bufferevent_trigger_event(c->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT,
	    0);
}

/* Pause the listener: at the cap, or out of file descriptors. */
static void
conn_pause(const char *why)
{
	if (conn_paused)
		return;
	conn_paused = true;
	conn_resume_at = util_mono_ms() + CONN_PAUSE_MS;
	stats.paused++;
	evconnlistener_disable(conn_lev);
	log_warn("api: %s (%u connections open, cap %u): not accepting new "
		 "connections for now",
	    why, stats.open, stats.cap);
}

/*
 * The connection to close for a new one: the oldest still waiting for
 * (the rest of) a request head; never one whose head is read. NULL when
 * none.
 */
static struct conn *
conn_oldest_idle(const struct conn *except)
{
	struct conn *c, *best = NULL;

	TAILQ_FOREACH (c, &conns, entry)
		if (c != except && !c->evicting && c->state == CONN_HEAD &&
		    (best == NULL || c->since < best->since))
			best = c;
	return best;
}

/* The next loop pass: accept again (unless paused meanwhile). */
static void
conn_burst_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_burst = 0;
	if (!conn_paused)
		evconnlistener_enable(conn_lev);
}

/* The 401 of conn_refuse() is written: close the connection. */
static void
conn_refused_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	evhttp_connection_free(c->evcon); /* calls conn_close_cb */
}

static void
conn_refused_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	evhttp_connection_free(c->evcon);
}

/*
 * A head without a valid token announced a body: take the connection
 * from evhttp before it reads the body, answer 401 ourselves and close.
 * The body is never read (a client still sending it may see a reset).
 */
static void
conn_refuse(struct conn *c)
{
	static const char
			 body[] = "{\"error\":{\"code\":\"unauthorized\","
				  "\"message\":\"missing or wrong bearer token (send "
				  "Authorization: Bearer <token>); the body was not read\","
				  "\"field\":null}}";
	struct evbuffer *out = bufferevent_get_output(c->bev);

	c->refused = true;
	stats.refused_early++;
	apid.responses[4]++;
	bufferevent_setcb(c->bev, NULL, conn_refused_write_cb,
	    conn_refused_event_cb, c);
	bufferevent_disable(c->bev, EV_READ);
	evbuffer_add_printf(out,
	    "HTTP/1.1 401 Unauthorized\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: %zu\r\n"
	    "WWW-Authenticate: Bearer\r\n"
	    "Cache-Control: no-store\r\n"
	    "X-Content-Type-Options: nosniff\r\n"
	    "Connection: close\r\n\r\n%s",
	    sizeof(body) - 1, body);
	bufferevent_enable(c->bev, EV_WRITE);
}

/*
 * Parse the copied head of c: the path, the Authorization header(s), and
 * whether a body is announced. A request that needs the token, lacks it
 * and announces a body is answered by conn_refuse(), its body unread.
 */
static void
conn_head_done(struct conn *c)
{
	char *line, *save = NULL, *authz = NULL, *sp, *path;
	char *q;
	bool  body = false, ok;
	int   nauth = 0;

	c->head[c->headlen] = '\0';
	line = strtok_r(c->head, "\r\n", &save);
	if (line == NULL)
		goto out;
	if ((sp = strchr(line, ' ')) == NULL)
		goto out;
	path = sp + 1;
	if ((sp = strchr(path, ' ')) != NULL)
		*sp = '\0';
	if ((q = strchr(path, '?')) != NULL)
		*q = '\0';
	while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
		char *v = strchr(line, ':');

		if (v == NULL)
			continue;
		*v++ = '\0';
		while (*v == ' ' || *v == '\t')
			v++;
		if (strcasecmp(line, "Authorization") == 0) {
			authz = v;
			nauth++;
		} else if (strcasecmp(line, "Content-Length") == 0) {
			if (strspn(v, "0") != strlen(v) || *v == '\0')
				body = true;
		} else if (strcasecmp(line, "Transfer-Encoding") == 0)
			body = true;
	}
	ok = http_path_open(path) || (nauth == 1 && http_token_ok(authz));
	if (!ok && body && c->evcon != NULL)
		conn_refuse(c);
	else if (c->evcon != NULL)
		evhttp_connection_set_max_body_size(c->evcon,
		    HTTP_BODY_READ_MAX);
out:
	explicit_bzero(c->head, c->headlen);
	free(c->head);
	c->head = NULL;
	c->headlen = 0;
	c->headcap = 0;
	c->state = CONN_BODY;
	c->since = util_mono_ms();
}

/*
 * Bytes arrived on c: while a head is awaited, copy them (bounded) until
 * its blank line. Leading blank lines between requests are skipped, as
 * evhttp skips them.
 */
static void
conn_input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct conn	    *c = arg;
	struct evbuffer_ptr  pos;
	bufferevent_data_cb  r, w;
	bufferevent_event_cb e;
	void		    *cbarg;
	size_t		     len, n, room, from, i;
	char		    *end;

	if (info->n_added == 0)
		return;
	bufferevent_getcb(c->bev, &r, &w, &e, &cbarg);
	if (e == NULL && cbarg == NULL)
		return; /* freed by evhttp; the tick releases it */
	conn_adopt(c);
	if (c->state != CONN_HEAD || c->refused)
		return;
	len = evbuffer_get_length(buf);
	n = info->n_added < len ? info->n_added : len;
	room = CONN_HEAD_MAX - c->headlen;
	if (n > room)
		n = room;
	if (n == 0)
		return; /* evhttp refuses heads this long */
	if (c->headlen + n + 1 > c->headcap) {
		size_t cap = c->headcap > 0 ? c->headcap : 1024;

		while (cap < c->headlen + n + 1)
			cap *= 2;
		if ((c->head = realloc(c->head, cap)) == NULL)
			fatal("out of memory");
		c->headcap = cap;
	}
	if (evbuffer_ptr_set(buf, &pos, len - n, EVBUFFER_PTR_SET) != 0 ||
	    evbuffer_copyout_from(buf, &pos, c->head + c->headlen, n) < 0)
		return;
	from = c->headlen > 3 ? c->headlen - 3 : 0;
	c->headlen += n;
	/* Blank lines before a request line are skipped (as evhttp does). */
	for (i = 0;
	     i < c->headlen && (c->head[i] == '\r' || c->head[i] == '\n'); i++)
		;
	if (i > 0) {
		memmove(c->head, c->head + i, c->headlen - i);
		c->headlen -= i;
		from = 0;
	}
	c->head[c->headlen] = '\0';
	if ((end = memmem(c->head + from, c->headlen - from, "\r\n\r\n", 4)) !=
		NULL ||
	    (end = memmem(c->head + from, c->headlen - from, "\n\n", 2)) !=
		NULL) {
		c->headlen = (size_t)(end - c->head);
		conn_head_done(c);
	}
}

/* evhttp wants a bufferevent for a new connection: ours, counted. */
static struct bufferevent *
conn_bev_cb(struct event_base *base, void *arg)
{
	struct conn	   *c, *victim;
	struct bufferevent *bev;

	if ((bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE)) ==
	    NULL)
		return NULL;
	c = util_xcalloc(1, sizeof(*c));
	c->bev = bev;
	c->state = CONN_HEAD;
	c->since = util_mono_ms();
	bufferevent_incref(bev);
	c->watch = evbuffer_add_cb(bufferevent_get_input(bev), conn_input_cb,
	    c);
	TAILQ_INSERT_TAIL(&conns, c, entry);
	stats.open++;
	stats.accepted++;
	/* Over the cap: make room by closing the oldest idle or slow one. */
	while (stats.open - conn_evicting > stats.cap &&
	    (victim = conn_oldest_idle(c)) != NULL)
		conn_evict(victim);
	if (stats.open - conn_evicting >= stats.cap &&
	    conn_oldest_idle(c) == NULL)
		conn_pause("connection cap reached, all connections busy");
	/*
	 * A burst of connections must not starve the reads of the ones
	 * just accepted (their heads would never be seen before they are
	 * evicted): at most CONN_ACCEPT_BURST per loop pass.
	 */
	if (++conn_burst >= CONN_ACCEPT_BURST && !conn_paused) {
		struct timeval tv = { 0, 1000 };

		evconnlistener_disable(conn_lev);
		event_add(conn_burst_ev, &tv);
	}
	return bev;
}

/* accept() failed: out of fds (EMFILE, ENFILE) or memory. Never spin. */
static void
conn_accept_error_cb(struct evconnlistener *lev, void *arg)
{
	int e = EVUTIL_SOCKET_ERROR();

	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)
		conn_pause(e == EMFILE || e == ENFILE ?
			"out of file descriptors" :
			"out of memory in accept");
	else
		log_debug("api: accept: %s", strerror(e));
}

/* Every CONN_TICK_MS: deadlines, connections freed unseen, the listener. */
static void
conn_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn	    *c, *next;
	bufferevent_data_cb  r, w;
	bufferevent_event_cb e;
	void		    *cbarg;
	int64_t		     now = util_mono_ms();

	for (c = TAILQ_FIRST(&conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		bufferevent_getcb(c->bev, &r, &w, &e, &cbarg);
		if (e == NULL && cbarg == NULL) {
			/* evhttp freed it without our close callback. */
			conn_release(c);
			continue;
		}
		conn_adopt(c);
		if ((c->state == CONN_HEAD &&
			now - c->since > CONN_HEAD_DEADLINE_MS) ||
		    (c->state == CONN_BODY &&
			now - c->since > CONN_BODY_DEADLINE_MS))
			conn_evict(c);
	}
	if (conn_paused && now >= conn_resume_at &&
	    stats.open - conn_evicting < stats.cap) {
		conn_paused = false;
		conn_burst = 0;
		evconnlistener_enable(conn_lev);
		log_info("api: accepting connections again (%u open, cap %u)",
		    stats.open, stats.cap);
	}
}

unsigned
conn_setup(struct evhttp *http, struct evconnlistener *lev, unsigned cap)
{
	struct rlimit  rl;
	struct timeval tv = { 0, CONN_TICK_MS * 1000 };

	/* As many fds as allowed (up to 64 Ki); the cap stays under them. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < CONN_NOFILE_WANT &&
		    rl.rlim_max > rl.rlim_cur) {
			rl.rlim_cur = rl.rlim_max < CONN_NOFILE_WANT ?
			    rl.rlim_max :
			    CONN_NOFILE_WANT;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
			(void)getrlimit(RLIMIT_NOFILE, &rl);
		}
		if (rl.rlim_cur != RLIM_INFINITY &&
		    rl.rlim_cur < (rlim_t)cap + 2 * CONN_FD_RESERVE)
			cap = rl.rlim_cur > 3 * CONN_FD_RESERVE ?
			    (unsigned)rl.rlim_cur - 2 * CONN_FD_RESERVE :
			    CONN_FD_RESERVE;
	}
	stats.cap = cap;
	conn_lev = lev;
	evconnlistener_set_error_cb(lev, conn_accept_error_cb);
	evhttp_set_bevcb(http, conn_bev_cb, NULL);
	conn_tick = event_new(child_base(), -1, EV_PERSIST, conn_tick_cb, NULL);
	conn_burst_ev = evtimer_new(child_base(), conn_burst_cb, NULL);
	if (conn_tick == NULL || conn_burst_ev == NULL)
		fatal("out of memory");
	event_add(conn_tick, &tv);
	return cap;
}

struct conn *
conn_of(struct evhttp_connection *evcon)
{
	struct bufferevent *bev;
	struct conn	   *c;

	if (evcon == NULL)
		return NULL;
	bev = evhttp_connection_get_bufferevent(evcon);
	TAILQ_FOREACH (c, &conns, entry)
		if (c->evcon == evcon || c->bev == bev) {
			conn_adopt(c);
			return c;
		}
	return NULL;
}

void
conn_request_begin(struct conn *c, struct areq *a)
{
	if (c == NULL)
		return;
	c->areq = a;
	c->state = CONN_BUSY;
	c->since = util_mono_ms();
}

void
conn_request_end(struct conn *c)
{
	if (c == NULL)
		return;
	c->areq = NULL;
	c->state = CONN_HEAD;
	c->since = util_mono_ms();
}

bool
conn_refused_early(const struct conn *c)
{
	return c != NULL && c->refused;
}

void
conn_get_stats(struct conn_stats *s)
{
	*s = stats;
}
