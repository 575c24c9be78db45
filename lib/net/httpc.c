/*
 * Asynchronous HTTP client: libcurl's multi interface on a libevent base,
 * in the shape of curl's docs/examples/multi-event.c (hiperfifo). libcurl
 * tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to
 * wake it (CURLMOPT_TIMERFUNCTION); libevent calls curl_multi_socket_action
 * back. Finished transfers are reported from the loop, never from inside
 * httpc_start().
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "lib/base/util.h"
#include "lib/net/httpc.h"
#include "lib/net/netaddr.h"

#define HTTPC_CONNECT_TIMEOUT_DEFAULT 10000L
#define HTTPC_TIMEOUT_DEFAULT	      30000L

struct httpc {
	struct event_base *base;
	CURLM		  *multi;
	struct event	  *timer;
	TAILQ_HEAD(, httpc_req) reqs;
	LIST_HEAD(, httpc_sock) socks;
	size_t inflight;
	int    depth;	/* inside our event callbacks */
	bool   freeing; /* httpc_free() called in a cb */
};

struct httpc_req {
	TAILQ_ENTRY(httpc_req) entry;
	struct httpc	  *h;
	CURL		  *easy;
	struct curl_slist *hdrs;
	httpc_done_cb	   done;
	void		  *arg;
	bool		   allow_private;
	bool		   blocked;
	char		   blocked_addr[INET6_ADDRSTRLEN];
	char		  *body;
	size_t		   body_len;
	size_t		   max_body;
	bool		   truncated;
	int64_t		   retry_after_s;
	char		   errbuf[CURL_ERROR_SIZE];
};

/* One watched socket. */
struct httpc_sock {
	LIST_ENTRY(httpc_sock) entry;
	struct httpc *h;
	curl_socket_t fd;
	struct event *ev;
};

static void httpc_check_done(struct httpc *h);

/*
 * Copy libcurl's response body into the request's buffer, up to max_body.
 * Past the cap the transfer is stopped (CURLE_WRITE_ERROR, reported as a
 * truncated but otherwise successful response).
 */
static size_t
httpc_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct httpc_req *r = userdata;
	size_t		  n = size * nmemb, room;
	char		 *nb;

	if (r->truncated)
		return 0;
	room = r->max_body - r->body_len;
	if (n > room) {
		r->truncated = true;
		n = room;
	}
	if (n > 0) {
		nb = realloc(r->body, r->body_len + n + 1);
		if (nb == NULL)
			return 0;
		r->body = nb;
		memcpy(r->body + r->body_len, ptr, n);
		r->body_len += n;
		r->body[r->body_len] = '\0';
	}
	return r->truncated ? 0 : size * nmemb;
}

/*
 * Parse a Retry-After value: delay-seconds or an HTTP-date. Returns the
 * delay in seconds (>= 0) or -1 when unparsable.
 */
static int64_t
httpc_parse_retry_after(const char *v)
{
	int64_t secs;
	time_t	t, now;

	if (util_parse_int64(v, 0, INT64_MAX / 1000, &secs) == 0)
		return secs;
	t = curl_getdate(v, NULL);
	if (t == -1)
		return -1;
	now = time(NULL);
	return t > now ? (int64_t)(t - now) : 0;
}

/*
 * Header callback: remember Retry-After; a new status line (100 Continue,
 * then the final answer) resets it.
 */
static size_t
httpc_header_cb(char *buf, size_t size, size_t nitems_, void *userdata)
{
	struct httpc_req *r = userdata;
	size_t		  n = size * nitems_, vlen;
	char		  val[128];
	const char	 *v;
	static const char name[] = "retry-after:";

	if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		r->retry_after_s = -1;
		return n;
	}
	if (n <= sizeof(name) - 1 ||
	    strncasecmp(buf, name, sizeof(name) - 1) != 0)
		return n;
	v = buf + sizeof(name) - 1;
	vlen = n - (sizeof(name) - 1);
	while (vlen > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen > 0 &&
	    (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ' ||
		v[vlen - 1] == '\t'))
		vlen--;
	if (vlen == 0 || vlen >= sizeof(val))
		return n;
	memcpy(val, v, vlen);
	val[vlen] = '\0';
	r->retry_after_s = httpc_parse_retry_after(val);
	return n;
}

/*
 * Open-socket callback: refuse any address that is not public unless the
 * request allows private networks. Runs for every address libcurl tries,
 * after DNS resolution, so DNS rebinding cannot slip through.
 */
static curl_socket_t
httpc_opensocket_cb(void *clientp, curlsocktype purpose,
    struct curl_sockaddr *a)
{
	struct httpc_req *r = clientp;
	const void	 *ip = NULL;

	if (!r->allow_private && !netaddr_is_public(&a->addr)) {
		r->blocked = true;
		if (a->family == AF_INET)
			ip = &(
			    (const struct sockaddr_in *)(const void *)&a->addr)
				  ->sin_addr;
		else if (a->family == AF_INET6)
			ip = &(
			    (const struct sockaddr_in6 *)(const void *)&a->addr)
				  ->sin6_addr;
		if (ip == NULL ||
		    inet_ntop(a->family, ip, r->blocked_addr,
			sizeof(r->blocked_addr)) == NULL)
			util_strlcpy(r->blocked_addr, "?",
			    sizeof(r->blocked_addr));
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype, a->protocol);
}

/* libevent: a watched socket is ready. */
static void
httpc_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct httpc *h = arg;
	int	      action = 0, running;

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	h->depth++;
	curl_multi_socket_action(h->multi, fd, action, &running);
	httpc_check_done(h);
}

/* libevent: libcurl's timeout expired. */
static void
httpc_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct httpc *h = arg;
	int	      running;

	h->depth++;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	httpc_check_done(h);
}

/* libcurl: arm or disarm our single timer. */
static int
httpc_multi_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct httpc  *h = userp;
	struct timeval tv;

	if (timeout_ms < 0) {
		evtimer_del(h->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(h->timer, &tv);
	return 0;
}

/* libcurl: start, change or stop watching a socket. */
static int
httpc_multi_sock_cb(CURL *e, curl_socket_t s, int what, void *userp,
    void *socketp)
{
	struct httpc	  *h = userp;
	struct httpc_sock *hs = socketp;
	short		   kind;

	if (what == CURL_POLL_REMOVE) {
		if (hs != NULL) {
			if (hs->ev != NULL)
				event_free(hs->ev);
			LIST_REMOVE(hs, entry);
			free(hs);
			curl_multi_assign(h->multi, s, NULL);
		}
		return 0;
	}
	kind = EV_PERSIST;
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (hs == NULL) {
		hs = calloc(1, sizeof(*hs));
		if (hs == NULL)
			return -1;
		hs->h = h;
		hs->fd = s;
		LIST_INSERT_HEAD(&h->socks, hs, entry);
		curl_multi_assign(h->multi, s, hs);
	} else if (hs->ev != NULL) {
		event_free(hs->ev);
		hs->ev = NULL;
	}
	hs->ev = event_new(h->base, s, kind, httpc_event_cb, h);
	if (hs->ev == NULL || event_add(hs->ev, NULL) != 0)
		return -1;
	return 0;
}

/* Release a request that is no longer in the multi handle. */
static void
httpc_req_free(struct httpc_req *r)
{
	if (r == NULL)
		return;
	if (r->easy != NULL)
		curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->hdrs);
	free(r->body);
	free(r);
}

/* Detach a request from the multi handle and our list. */
static void
httpc_req_unlink(struct httpc_req *r)
{
	struct httpc *h = r->h;

	curl_multi_remove_handle(h->multi, r->easy);
	TAILQ_REMOVE(&h->reqs, r, entry);
	h->inflight--;
}

/* Fill a response from a finished transfer. */
static void
httpc_resp_fill(struct httpc_req *r, CURLcode code, struct httpc_resp *resp)
{
	curl_off_t us = 0;
	long	   status = 0;

	memset(resp, 0, sizeof(*resp));
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &us);
	resp->status = status;
	resp->elapsed_ms = (int64_t)(us / 1000);
	resp->body = r->body != NULL ? r->body : "";
	resp->body_len = r->body_len;
	resp->truncated = r->truncated;
	resp->retry_after_s = r->retry_after_s;
	resp->blocked = r->blocked;
	if (code == CURLE_WRITE_ERROR && r->truncated && status != 0)
		code = CURLE_OK; /* our cap, not a transport failure */
	resp->curl_code = (int)code;
	if (code == CURLE_OK)
		return;
	resp->status = r->blocked ? 0 : status;
	if (r->blocked)
		snprintf(resp->error, sizeof(resp->error),
		    "refused to connect to %s: not a public address "
		    "(private networks are not allowed)",
		    r->blocked_addr);
	else if (r->errbuf[0] != '\0')
		snprintf(resp->error, sizeof(resp->error), "%s", r->errbuf);
	else
		snprintf(resp->error, sizeof(resp->error), "%s",
		    curl_easy_strerror(code));
}

/*
 * Report every finished transfer to its owner, then leave the callback
 * depth; a httpc_free() requested from a callback happens here.
 */
static void
httpc_check_done(struct httpc *h)
{
	struct httpc_req *r;
	struct httpc_resp resp;
	CURLMsg		 *m;
	int		  left;
	void		 *p;

	while (!h->freeing &&
	    (m = curl_multi_info_read(h->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		p = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &p);
		r = p;
		if (r == NULL)
			continue;
		httpc_resp_fill(r, m->data.result, &resp);
		httpc_req_unlink(r);
		if (r->done != NULL)
			r->done(&resp, r->arg);
		httpc_req_free(r);
	}
	if (--h->depth == 0 && h->freeing) {
		h->freeing = false;
		httpc_free(h);
	}
}

/*
 * A client on base. NULL on allocation failure (curl_global_init must have
 * succeeded; it is done here once per process).
 */
struct httpc *
httpc_new(struct event_base *base)
{
	static bool   inited;
	struct httpc *h;

	if (!inited) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return NULL;
		inited = true;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	h->base = base;
	TAILQ_INIT(&h->reqs);
	LIST_INIT(&h->socks);
	if ((h->multi = curl_multi_init()) == NULL)
		goto fail;
	if ((h->timer = evtimer_new(base, httpc_timer_cb, h)) == NULL)
		goto fail;
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION,
	    httpc_multi_sock_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION,
	    httpc_multi_timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	return h;
fail:
	if (h->multi != NULL)
		curl_multi_cleanup(h->multi);
	free(h);
	return NULL;
}

/* Cancel every request without callbacks and free the client. */
void
httpc_free(struct httpc *h)
{
	struct httpc_req  *r;
	struct httpc_sock *hs;

	if (h == NULL)
		return;
	if (h->depth > 0) {
		/* Inside one of our callbacks: cancel now, free on unwind. */
		while ((r = TAILQ_FIRST(&h->reqs)) != NULL)
			httpc_cancel(r);
		h->freeing = true;
		return;
	}
	while ((r = TAILQ_FIRST(&h->reqs)) != NULL)
		httpc_cancel(r);
	curl_multi_cleanup(h->multi);
	while ((hs = LIST_FIRST(&h->socks)) != NULL) {
		LIST_REMOVE(hs, entry);
		if (hs->ev != NULL)
			event_free(hs->ev);
		free(hs);
	}
	event_free(h->timer);
	free(h);
}

/* Set one easy option; -EINVAL when libcurl refuses it. */
#define HTTPC_SETOPT(e, opt, val)                                      \
	do {                                                           \
		if (curl_easy_setopt((e), (opt), (val)) != CURLE_OK) { \
			rc = -EINVAL;                                  \
			goto fail;                                     \
		}                                                      \
	} while (0)

/*
 * Start a request. 0 with the request queued (its callback comes later
 * from the loop), or -errno (-EINVAL bad options, -ENOMEM).
 */
int
httpc_start(struct httpc *h, const struct httpc_opts *o, httpc_done_cb done,
    void *arg, struct httpc_req **out)
{
	struct httpc_req  *r;
	struct curl_slist *nl;
	const char	  *method = o->method != NULL ? o->method : "GET";
	char		   ua[64];
	size_t		   i;
	int		   rc = -ENOMEM;

	if (out != NULL)
		*out = NULL;
	if (h == NULL || o->url == NULL || h->freeing)
		return -EINVAL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -ENOMEM;
	r->h = h;
	r->done = done;
	r->arg = arg;
	r->allow_private = o->allow_private;
	r->max_body = o->max_body != 0 ? o->max_body : HTTPC_BODY_MAX_DEFAULT;
	r->retry_after_s = -1;
	if ((r->easy = curl_easy_init()) == NULL)
		goto fail;

	for (i = 0; o->headers != NULL && o->headers[i] != NULL; i++) {
		if ((nl = curl_slist_append(r->hdrs, o->headers[i])) == NULL)
			goto fail;
		r->hdrs = nl;
	}
	/* No "Expect: 100-continue" round trip for large bodies. */
	if ((nl = curl_slist_append(r->hdrs, "Expect:")) == NULL)
		goto fail;
	r->hdrs = nl;

	HTTPC_SETOPT(r->easy, CURLOPT_URL, o->url);
	HTTPC_SETOPT(r->easy, CURLOPT_PRIVATE, r);
	HTTPC_SETOPT(r->easy, CURLOPT_HTTPHEADER, r->hdrs);
	HTTPC_SETOPT(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
	HTTPC_SETOPT(r->easy, CURLOPT_NOSIGNAL, 1L);
	HTTPC_SETOPT(r->easy, CURLOPT_FOLLOWLOCATION, 0L);
	HTTPC_SETOPT(r->easy, CURLOPT_PROXY, "");
	HTTPC_SETOPT(r->easy, CURLOPT_NOPROXY, "*");
#if LIBCURL_VERSION_NUM >= 0x075500
	HTTPC_SETOPT(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	HTTPC_SETOPT(r->easy, CURLOPT_PROTOCOLS,
	    (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	HTTPC_SETOPT(r->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	HTTPC_SETOPT(r->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	HTTPC_SETOPT(r->easy, CURLOPT_CONNECTTIMEOUT_MS,
	    o->connect_timeout_ms > 0 ? o->connect_timeout_ms :
					HTTPC_CONNECT_TIMEOUT_DEFAULT);
	HTTPC_SETOPT(r->easy, CURLOPT_TIMEOUT_MS,
	    o->timeout_ms > 0 ? o->timeout_ms : HTTPC_TIMEOUT_DEFAULT);
	if (o->user_agent != NULL)
		HTTPC_SETOPT(r->easy, CURLOPT_USERAGENT, o->user_agent);
	else {
		snprintf(ua, sizeof(ua), "auditrelay/%s", AR_VERSION);
		HTTPC_SETOPT(r->easy, CURLOPT_USERAGENT, ua);
	}
	HTTPC_SETOPT(r->easy, CURLOPT_WRITEFUNCTION, httpc_write_cb);
	HTTPC_SETOPT(r->easy, CURLOPT_WRITEDATA, r);
	HTTPC_SETOPT(r->easy, CURLOPT_HEADERFUNCTION, httpc_header_cb);
	HTTPC_SETOPT(r->easy, CURLOPT_HEADERDATA, r);
	HTTPC_SETOPT(r->easy, CURLOPT_OPENSOCKETFUNCTION, httpc_opensocket_cb);
	HTTPC_SETOPT(r->easy, CURLOPT_OPENSOCKETDATA, r);

	if (strcmp(method, "GET") == 0) {
		HTTPC_SETOPT(r->easy, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "POST") == 0 || o->body != NULL) {
		HTTPC_SETOPT(r->easy, CURLOPT_POST, 1L);
		HTTPC_SETOPT(r->easy, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)o->body_len);
		HTTPC_SETOPT(r->easy, CURLOPT_COPYPOSTFIELDS,
		    o->body != NULL ? o->body : "");
		if (strcmp(method, "POST") != 0)
			HTTPC_SETOPT(r->easy, CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "HEAD") == 0) {
		HTTPC_SETOPT(r->easy, CURLOPT_NOBODY, 1L);
	} else {
		HTTPC_SETOPT(r->easy, CURLOPT_CUSTOMREQUEST, method);
	}

	TAILQ_INSERT_TAIL(&h->reqs, r, entry);
	h->inflight++;
	if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
		TAILQ_REMOVE(&h->reqs, r, entry);
		h->inflight--;
		rc = -EIO;
		goto fail;
	}
	if (out != NULL)
		*out = r;
	return 0;
fail:
	httpc_req_free(r);
	return rc;
}

/* Cancel an in-flight request; its callback is never called. */
void
httpc_cancel(struct httpc_req *r)
{
	if (r == NULL)
		return;
	httpc_req_unlink(r);
	httpc_req_free(r);
}

size_t
httpc_inflight(const struct httpc *h)
{
	return h != NULL ? h->inflight : 0;
}
