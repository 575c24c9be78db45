/*
 * Unit tests of lib/net/httpc.c against a tiny evhttp server on 127.0.0.1 in
 * the same event loop: status and body, the body cap, Retry-After,
 * timeouts, refused connections, the public-address check, cancel, and
 * that callbacks never run inside httpc_start().
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "lib/base/util.h"
#include "lib/net/httpc.h"
#include "tests/support/httpserver.h"

struct fixture {
	struct test_http srv;
	char		 url[128];
};

struct result {
	bool		  done;
	int		  ncalls;
	struct httpc_resp resp;
	char		  body[256];
	char		  ua[128];
};

static char last_ua[128];
static char last_body[256];
static char last_method[16];

/* The server: /status/N, /big, /retry/secs, /retrydate, /slow, /echo. */
static void
server_cb(struct evhttp_request *req, void *arg)
{
	const char	 *uri = evhttp_request_get_uri(req);
	struct evbuffer	 *out = evhttp_request_get_output_buffer(req);
	struct evbuffer	 *in = evhttp_request_get_input_buffer(req);
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
	const char	 *ua;
	size_t		  n;
	int		  i;

	ua = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "User-Agent");
	util_strlcpy(last_ua, ua != NULL ? ua : "", sizeof(last_ua));
	n = evbuffer_get_length(in);
	if (n >= sizeof(last_body))
		n = sizeof(last_body) - 1;
	evbuffer_copyout(in, last_body, n);
	last_body[n] = '\0';
	util_strlcpy(last_method,
	    evhttp_request_get_command(req) == EVHTTP_REQ_POST	  ? "POST" :
		evhttp_request_get_command(req) == EVHTTP_REQ_GET ? "GET" :
								    "?",
	    sizeof(last_method));

	if (strncmp(uri, "/status/", 8) == 0) {
		evbuffer_add_printf(out, "status %s", uri + 8);
		evhttp_send_reply(req, atoi(uri + 8), "X", out);
	} else if (strcmp(uri, "/big") == 0) {
		for (i = 0; i < 1000; i++)
			evbuffer_add(out, "0123456789", 10);
		evhttp_send_reply(req, 200, "OK", out);
	} else if (strncmp(uri, "/retry/", 7) == 0) {
		evhttp_add_header(hdr, "Retry-After", uri + 7);
		evhttp_send_reply(req, 429, "Too Many", out);
	} else if (strcmp(uri, "/retrydate") == 0) {
		evhttp_add_header(hdr, "Retry-After",
		    "Wed, 21 Oct 2015 07:28:00 GMT");
		evhttp_send_reply(req, 503, "Busy", out);
	} else if (strcmp(uri, "/slow") == 0) {
		/* Never answered: the client's timeout must fire. */
		return;
	} else if (strcmp(uri, "/echo") == 0) {
		evbuffer_add_buffer(out, in);
		evhttp_send_reply(req, 201, "Created", out);
	} else
		evhttp_send_reply(req, 404, "Not Found", out);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(test_http_start(&f->srv, server_cb, f), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	test_http_stop(&f->srv);
	free(f);
	return 0;
}

static void
done_cb(const struct httpc_resp *resp, void *arg)
{
	struct result *r = arg;

	r->done = true;
	r->ncalls++;
	r->resp = *resp;
	util_strlcpy(r->body, resp->body, sizeof(r->body));
	r->resp.body = r->body;
}

/* Run the loop until r is done, for at most 10 s. */
static void
run_until(struct fixture *f, struct result *r)
{
	int64_t deadline = util_mono_ms() + 10000;

	while (!r->done && util_mono_ms() < deadline)
		event_base_loop(f->srv.base, EVLOOP_ONCE);
	assert_true(r->done);
}

static void
request(struct fixture *f, const char *path, struct httpc_opts *o,
    struct result *r)
{
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u%s",
	    (unsigned)f->srv.port, path);
	o->url = f->url;
	o->allow_private = true;
	memset(r, 0, sizeof(*r));
	assert_int_equal(httpc_start(f->srv.hc, o, done_cb, r, NULL), 0);
	/* Never called back from inside httpc_start. */
	assert_false(r->done);
	run_until(f, r);
	assert_int_equal(r->ncalls, 1);
}

static void
test_status(void **state)
{
	struct fixture	 *f = *state;
	struct httpc_opts o = { 0 };
	struct result	  r;
	char		  ua[64];

	request(f, "/status/200", &o, &r);
	assert_int_equal(r.resp.status, 200);
	assert_int_equal(r.resp.curl_code, 0);
	assert_string_equal(r.body, "status 200");
	assert_false(r.resp.truncated);
	assert_int_equal(r.resp.retry_after_s, -1);
	assert_false(r.resp.blocked);
	snprintf(ua, sizeof(ua), "auditrelay/%s", AR_VERSION);
	assert_string_equal(last_ua, ua);
	assert_string_equal(last_method, "GET");
	assert_int_equal(httpc_inflight(f->srv.hc), 0);

	memset(&o, 0, sizeof(o));
	request(f, "/status/503", &o, &r);
	assert_int_equal(r.resp.status, 503);
	assert_int_equal(r.resp.curl_code, 0);
}

static void
test_post(void **state)
{
	struct fixture *f = *state;
	const char *hdrs[] = { "Content-Type: application/json", "X-Test: 1",
		NULL };
	struct httpc_opts o = { 0 };
	struct result	  r;
	char		  body[64];

	/* The body is copied: the caller may reuse its buffer at once. */
	snprintf(body, sizeof(body), "{\"a\":1}");
	o.method = "POST";
	o.headers = hdrs;
	o.body = body;
	o.body_len = strlen(body);
	o.user_agent = "test-agent/1";
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u/echo",
	    (unsigned)f->srv.port);
	o.url = f->url;
	o.allow_private = true;
	memset(&r, 0, sizeof(r));
	assert_int_equal(httpc_start(f->srv.hc, &o, done_cb, &r, NULL), 0);
	memset(body, 'x', sizeof(body) - 1);
	run_until(f, &r);
	assert_int_equal(r.resp.status, 201);
	assert_string_equal(r.body, "{\"a\":1}");
	assert_string_equal(last_body, "{\"a\":1}");
	assert_string_equal(last_method, "POST");
	assert_string_equal(last_ua, "test-agent/1");
}

static void
test_body_cap(void **state)
{
	struct fixture	 *f = *state;
	struct httpc_opts o = { 0 };
	struct result	  r;

	o.max_body = 100;
	o.allow_private = true;
	request(f, "/big", &o, &r);
	assert_int_equal(r.resp.status, 200);
	assert_int_equal(r.resp.curl_code, 0);
	assert_true(r.resp.truncated);
	assert_int_equal(r.resp.body_len, 100);
	assert_int_equal(strlen(r.body), 100);
}

static void
test_retry_after(void **state)
{
	struct fixture	 *f = *state;
	struct httpc_opts o = { 0 };
	struct result	  r;

	request(f, "/retry/120", &o, &r);
	assert_int_equal(r.resp.status, 429);
	assert_int_equal(r.resp.retry_after_s, 120);

	memset(&o, 0, sizeof(o));
	request(f, "/retry/soon", &o, &r);
	assert_int_equal(r.resp.retry_after_s, -1);

	/* An HTTP-date in the past means "now". */
	memset(&o, 0, sizeof(o));
	request(f, "/retrydate", &o, &r);
	assert_int_equal(r.resp.status, 503);
	assert_int_equal(r.resp.retry_after_s, 0);
}

static void
test_timeout(void **state)
{
	struct fixture	 *f = *state;
	struct httpc_opts o = { 0 };
	struct result	  r;

	o.timeout_ms = 300;
	o.allow_private = true;
	request(f, "/slow", &o, &r);
	assert_int_equal(r.resp.status, 0);
	assert_int_equal(r.resp.curl_code, CURLE_OPERATION_TIMEDOUT);
	assert_true(r.resp.error[0] != '\0');
	assert_false(r.resp.blocked);
}

static void
test_refused(void **state)
{
	struct fixture	  *f = *state;
	struct httpc_opts  o = { 0 };
	struct sockaddr_in sin;
	socklen_t	   len = sizeof(sin);
	struct result	   r;
	char		   url[64];
	int		   fd;

	/* A port that was free a moment ago: nothing listens there. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/",
	    (unsigned)ntohs(sin.sin_port));
	o.url = url;
	o.allow_private = true;
	memset(&r, 0, sizeof(r));
	assert_int_equal(httpc_start(f->srv.hc, &o, done_cb, &r, NULL), 0);
	run_until(f, &r);
	assert_int_equal(r.resp.status, 0);
	assert_int_equal(r.resp.curl_code, CURLE_COULDNT_CONNECT);
	assert_false(r.resp.blocked);
}

static void
test_blocked(void **state)
{
	struct fixture	 *f = *state;
	struct httpc_opts o = { 0 };
	struct result	  r;

	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u/status/200",
	    (unsigned)f->srv.port);
	o.url = f->url;
	o.allow_private = false;
	last_method[0] = '\0';
	memset(&r, 0, sizeof(r));
	assert_int_equal(httpc_start(f->srv.hc, &o, done_cb, &r, NULL), 0);
	run_until(f, &r);
	assert_true(r.resp.blocked);
	assert_int_equal(r.resp.status, 0);
	assert_int_not_equal(r.resp.curl_code, 0);
	assert_non_null(strstr(r.resp.error, "127.0.0.1"));
	/* The server never saw a request. */
	assert_string_equal(last_method, "");

	/* localhost resolves to loopback too: refused at connect time. */
	snprintf(f->url, sizeof(f->url), "http://localhost:%u/status/200",
	    (unsigned)f->srv.port);
	memset(&r, 0, sizeof(r));
	assert_int_equal(httpc_start(f->srv.hc, &o, done_cb, &r, NULL), 0);
	run_until(f, &r);
	assert_true(r.resp.blocked);
	assert_string_equal(last_method, "");
}

static void
test_cancel_and_protocols(void **state)
{
	struct fixture	 *f = *state;
	struct httpc_opts o = { 0 };
	struct httpc_req *req;
	struct result	  r, r2;
	int64_t		  deadline;

	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u/slow",
	    (unsigned)f->srv.port);
	o.url = f->url;
	o.allow_private = true;
	memset(&r, 0, sizeof(r));
	assert_int_equal(httpc_start(f->srv.hc, &o, done_cb, &r, &req), 0);
	assert_int_equal(httpc_inflight(f->srv.hc), 1);
	httpc_cancel(req);
	assert_int_equal(httpc_inflight(f->srv.hc), 0);
	deadline = util_mono_ms() + 300;
	while (util_mono_ms() < deadline)
		event_base_loop(f->srv.base, EVLOOP_NONBLOCK);
	assert_false(r.done);

	/* Only http and https. */
	o.url = "file:///etc/passwd";
	memset(&r2, 0, sizeof(r2));
	assert_int_equal(httpc_start(f->srv.hc, &o, done_cb, &r2, NULL), 0);
	run_until(f, &r2);
	assert_int_equal(r2.resp.curl_code, CURLE_UNSUPPORTED_PROTOCOL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_after, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blocked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_and_protocols,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
