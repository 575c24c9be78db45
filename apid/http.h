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

#include <event2/http.h>
#include <yajl/yajl_tree.h>

#define HTTP_BODY_MAX		(1024 * 1024)
#define HTTP_BODY_READ_MAX	(4 * 1024 * 1024)
#define HTTP_JSON_DEPTH		32

struct verr;
struct conn;

/* A request in progress; lives until a reply is sent (or the client left). */
struct areq {
	struct evhttp_request	*req;	/* NULL once the client went away */
	struct evhttp_connection *conn;
	char			 id[64];	/* :id of the path */
	yajl_val		 body;		/* parsed JSON body, or NULL */
	const char		*query;		/* raw query string or NULL */
	bool			 wipe;		/* body held a secret */
	bool			 authorized;	/* the token was given */
	struct conn		*cx;		/* our connection state */
};

/* Create the server bound to host:port. 0 or -errno with err[]. */
int	http_start(const char *host, unsigned short port, char *err,
	    size_t errlen);

/* Reply with a JSON body (NULL: no body, e.g. 204) and free a. */
void	http_reply(struct areq *a, int code, const char *json, size_t len);
/* Reply with a body of another type. */
void	http_reply_typed(struct areq *a, int code, const char *ctype,
	    const char *data, size_t len);
/* Reply {"error":{"code","message","field"}} and free a. */
void	http_error(struct areq *a, int code, const char *ecode,
	    const char *field, const char *fmt, ...)
	    __attribute__((format(printf, 5, 6)));
/* Reply with a validation error (its status, normally 400). */
void	http_verr(struct areq *a, const struct verr *e);
/* True when the client is gone (the handler should just http_done). */
bool	http_gone(const struct areq *a);
/* The connection of a went away (conn.c). */
void	http_conn_gone(struct areq *a);
/* True when path needs no token (/healthz, /metrics when public). */
bool	http_path_open(const char *path);
/* Constant-time check of an Authorization header value. */
bool	http_token_ok(const char *value);
/* Free a without replying (the client went away). */
void	http_done(struct areq *a);

#endif
