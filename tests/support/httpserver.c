/* The HTTP test fixture: a server on 127.0.0.1 and an httpc client. */
#include <netinet/in.h>
#include <sys/socket.h>

#include <stdio.h>
#include <string.h>

#include "tests/support/httpserver.h"

int
test_http_start(struct test_http *t,
    void (*cb)(struct evhttp_request *, void *), void *arg)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in	    sin;
	socklen_t		    len = sizeof(sin);

	memset(t, 0, sizeof(*t));
	if ((t->base = event_base_new()) == NULL ||
	    (t->http = evhttp_new(t->base)) == NULL ||
	    (bs = evhttp_bind_socket_with_handle(t->http, "127.0.0.1", 0)) ==
		NULL ||
	    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin,
		&len) != 0)
		return -1;
	t->port = ntohs(sin.sin_port);
	snprintf(t->url, sizeof(t->url), "http://127.0.0.1:%d", t->port);
	evhttp_set_gencb(t->http, cb, arg);
	if ((t->hc = httpc_new(t->base)) == NULL)
		return -1;
	return 0;
}

void
test_http_stop(struct test_http *t)
{
	httpc_free(t->hc);
	if (t->http != NULL)
		evhttp_free(t->http);
	if (t->base != NULL)
		event_base_free(t->base);
	memset(t, 0, sizeof(*t));
}
