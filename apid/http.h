/*
 * The API's HTTP layer on evhttp: one request context per request,
 * routing by one table of routes (method, path pattern, handler, token,
 * query and body rules) with 404/405 (+ Allow) and the pre-body token
 * check read from it, bearer authentication in constant time,
 * body checks (415, 413, depth, UTF-8) and JSON replies/errors.
 */
#ifndef AR_APID_HTTP_H
#define AR_APID_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/http.h>
#include <yajl/yajl_tree.h>

#define HTTP_BODY_MAX	   (1024 * 1024)
#define HTTP_BODY_READ_MAX (4 * 1024 * 1024)
#define HTTP_JSON_DEPTH	   32

struct verr;
struct conn;

/*
 * What a handler may read of the configuration: copied into each request
 * on the loop, since a reload replaces the configuration there while a
 * handler may be running on a worker thread.
 */
struct areq_conf {
	int64_t min_interval;	  /* fetch_min_interval */
	int64_t initial_lookback; /* fetch_initial_lookback */
	int64_t max_sources;	  /* api_max_sources */
	bool	allow_private;	  /* delivery_allow_private_networks */
};

#define AREQ_HDRS_MAX 2

struct areq;
/* A handler, or the store work of one (http_work). */
typedef void (*http_handler)(struct areq *a);
/* What follows a worker phase on the loop (http_then): a is NULL once
 * the recorded reply was sent. */
typedef void (*http_then_fn)(struct areq *a, void *arg);

/* A request in progress; lives until a reply is sent (or the client left). */
struct areq {
	struct evhttp_request	 *req; /* NULL once the client went away */
	struct evhttp_connection *conn;
	char			  id[64]; /* :id of the path */
	yajl_val		  body;	  /* parsed JSON body, or NULL */
	char			 *query; /* raw query string (a copy) or NULL */
	bool			  wipe;	 /* body held a secret */
	bool			  authorized; /* the token was given */
	struct conn		 *cx;	      /* our connection state */
	struct areq_conf	  conf;
	void			 *arg; /* the handler's own */
	/*
	 * A worker phase (http_work): the handler's reply, store outcome,
	 * source change and log line are recorded here and applied on the
	 * loop afterwards, in that order (change and log line first).
	 */
	bool	    recording; /* replies are recorded */
	int	    code;      /* recorded reply; 0: none */
	const char *ctype;     /* static */
	char	   *data;      /* owned, wiped when freed */
	size_t	    len;
	struct {
		const char *key; /* static */
		char	    value[32];
	} hdr[AREQ_HDRS_MAX];
	size_t	     nhdr;
	int	     store_ok; /* 1 ok, -1 failed, 0 no call */
	char	     store_err[256];
	char	     changed[64]; /* a source to announce */
	bool	     removed;	  /* changed: it was removed */
	char	    *note;	  /* a log line (info) */
	http_handler work;
	http_then_fn then;
	void	    *then_arg;
	int64_t	     queued_ms; /* submitted, monotonic */
	bool	     counted;	/* in APID_WORK_MAX */
};

/* Create the server bound to host:port. 0 or -errno with err[]. */
int http_start(const char *host, unsigned short port, char *err, size_t errlen);

/*
 * Replies. On the loop they send at once and free a; in a worker phase
 * (a->recording) they record the reply, sent on the loop afterwards.
 */
/* Reply with a JSON body (NULL: no body, e.g. 204) and free a. */
void http_reply(struct areq *a, int code, const char *json, size_t len);
/* Reply with a body of another type (ctype: a static string). */
void http_reply_typed(struct areq *a, int code, const char *ctype,
    const char *data, size_t len);
/* Reply {"error":{"code","message","field"}} and free a. */
void http_error(struct areq *a, int code, const char *ecode, const char *field,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Reply with a validation error (its status, normally 400). */
void http_verr(struct areq *a, const struct verr *e);
/* Add a header to the coming reply (key: a static string). */
void http_header(struct areq *a, const char *key, const char *value);
/* True when the client is gone (the handler should just http_done). */
bool http_gone(const struct areq *a);
/*
 * The request's query string into q (empty without one; clear it with
 * evhttp_clear_headers either way); false after replying 400 when it is
 * malformed.
 */
struct evkeyvalq;
bool http_query_parse(struct areq *a, struct evkeyvalq *q);
/* The connection of a went away (conn.c). */
void http_conn_gone(struct areq *a);
/* True when path needs no token (/healthz, /metrics when public). */
bool http_path_open(const char *path);
/* Constant-time check of an Authorization header value. */
bool http_token_ok(const char *value);
/* Free a without replying (the client went away). */
void http_done(struct areq *a);

/*
 * The store work of a request, off the event loop. http_work() runs
 * work(a) on a worker thread; work may use the store, a's request fields
 * (id, body, query, conf, arg) and the reply functions above, nothing of
 * the loop's (no evhttp, no configuration, no log, no IPC): it records
 * instead, with http_store_result(), http_changed(), http_note() and
 * http_then(). Back on the loop the outcome goes to child_store_result(),
 * the change to the daemons, the note to the log, the reply to the client
 * (or a is freed when the client left), then then(NULL, arg); with no
 * reply recorded, then(a, arg) owns a (it replies or hands a on).
 *
 * When the store is known to be down work runs at once on the loop: every
 * work checks store_healthy() before a store call and answers 503.
 * Otherwise at most APID_WORK_MAX requests wait or run: over it
 * http_work() answers 503 busy (Retry-After) and returns -EBUSY; http_work_always() does not count
 * (the pipeline's commits, already bounded by APID_ASYNC_MAX).
 */
int http_work(struct areq *a, http_handler work);
int http_work_always(struct areq *a, http_handler work);
/* In work: then(a or NULL, arg) follows on the loop. */
void http_then(struct areq *a, http_then_fn then, void *arg);
/* In work: the outcome of a store call (err: what failed). */
void http_store_result(struct areq *a, bool ok, const char *err);
/* In work: source id changed (removed): the daemons are told. */
void http_changed(struct areq *a, const char *id, bool removed);
/* In work: an info log line, written on the loop. */
void http_note(struct areq *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Requests in a worker phase now. */
unsigned http_work_pending(void);

#endif
