/*
 * Asynchronous HTTP client: libcurl's multi interface driven by a libevent
 * base (the shape of curl's docs/examples/multi-event.c). Used by fetcherd
 * (Google), deliverd (callbacks) and apid (credential checks).
 *
 * Every request: no redirects followed, proxy environment ignored, connect
 * and total timeouts, TLS verified, response body read into a capped buffer
 * by our own write callback, Retry-After captured. Unless allow_private is
 * set, every address libcurl is about to connect to is checked with
 * netaddr_is_public() in the open-socket callback (defeats DNS rebinding).
 */
#ifndef AR_LIB_HTTPC_H
#define AR_LIB_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#define HTTPC_BODY_MAX_DEFAULT (64 * 1024)

struct httpc;
struct httpc_req;

struct httpc_opts {
	const char	  *method; /* "GET", "POST"; NULL: GET */
	const char	  *url;
	const char *const *headers; /* "Name: value", NULL-terminated */
	const void	  *body;
	size_t		   body_len;
	long		   connect_timeout_ms; /* 0: 10 s */
	long		   timeout_ms;	       /* 0: 30 s */
	size_t		   max_body;	       /* 0: HTTPC_BODY_MAX_DEFAULT */
	bool		   allow_private; /* skip the public-address check */
	const char	  *user_agent;	  /* NULL: auditrelay/<version> */
};

struct httpc_resp {
	long	    status;	/* HTTP status, 0 when none */
	int	    curl_code;	/* CURLcode, 0 on transport success */
	char	    error[256]; /* transport error text, "" if none */
	const char *body;	/* NUL-terminated, may be truncated */
	size_t	    body_len;
	bool	    truncated;	   /* body exceeded max_body */
	int64_t	    retry_after_s; /* Retry-After in seconds, -1: none */
	bool	    blocked;	   /* refused by the public-address check */
	int64_t	    elapsed_ms;
};

/* Called once per started request, unless it was cancelled. */
typedef void (*httpc_done_cb)(const struct httpc_resp *resp, void *arg);

struct httpc *httpc_new(struct event_base *base);
/* Cancel every request (no callbacks) and free; NULL is a no-op. */
void httpc_free(struct httpc *h);
/*
 * Start a request; done is called from the event loop later (never from
 * inside httpc_start). *out (optional) lets the caller cancel it.
 * 0 or -errno.
 */
int httpc_start(struct httpc *h, const struct httpc_opts *opts,
    httpc_done_cb done, void *arg, struct httpc_req **out);
/* Cancel an in-flight request: its callback will not be called. */
void   httpc_cancel(struct httpc_req *r);
size_t httpc_inflight(const struct httpc *h);

#endif
