/*
 * Connections of the API, under the evhttp server: a cap on how many are
 * open (the listener pauses at the cap and on EMFILE, a timer re-arms it,
 * one log line per episode), the oldest idle or slow connection evicted
 * when a new one needs its place, a deadline for a request's head and one
 * for its body, and the bearer token read from the head before any body
 * is read (an unauthenticated body is never buffered).
 */
#ifndef AR_APID_CONN_H
#define AR_APID_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/http.h>
#include <event2/listener.h>

#define CONN_HEAD_DEADLINE_MS 10000 /* request line + headers */
#define CONN_BODY_DEADLINE_MS 30000 /* the body after the head */
#define CONN_FD_RESERVE	      64    /* fds kept for the store etc. */

struct conn;
struct areq;

struct conn_stats {
	unsigned open; /* connections now */
	unsigned cap;  /* the effective cap */
	uint64_t accepted;
	uint64_t evicted;	/* to make room, or past a deadline */
	uint64_t refused_early; /* 401 before the body */
	uint64_t paused;	/* listener pause episodes */
};

/*
 * Take over the connections of http, listening through lev: cap is the
 * configured maximum, lowered to the fd limit minus CONN_FD_RESERVE.
 * Returns the effective cap.
 */
unsigned conn_setup(struct evhttp *http, struct evconnlistener *lev,
    unsigned cap);
/* The connection of an evhttp connection, or NULL. */
struct conn *conn_of(struct evhttp_connection *evcon);
/* A request reached the handlers / was answered. */
void conn_request_begin(struct conn *c, struct areq *a);
void conn_request_end(struct conn *c);
/* The head of this request lacked a valid token and announced a body. */
bool conn_refused_early(const struct conn *c);
void conn_get_stats(struct conn_stats *s);

#endif
