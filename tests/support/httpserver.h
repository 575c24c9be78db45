/*
 * A libevent HTTP server on 127.0.0.1 (a free port) and an httpc client
 * on the same event base: the fixture of the unit tests that talk HTTP.
 */
#ifndef AR_TESTS_SUPPORT_HTTPSERVER_H
#define AR_TESTS_SUPPORT_HTTPSERVER_H

#include <event2/event.h>
#include <event2/http.h>

#include "lib/net/httpc.h"

struct test_http {
	struct event_base *base;
	struct evhttp	  *http;
	struct httpc	  *hc;
	int		   port;
	char		   url[64]; /* http://127.0.0.1:PORT */
};

/* Start it, cb answering every request (with arg). 0 or -1. */
int test_http_start(struct test_http *t,
    void (*cb)(struct evhttp_request *, void *), void *arg);
/* Free the client, the server and the base. */
void test_http_stop(struct test_http *t);

#endif
