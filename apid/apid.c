/*
 * auditrelay-apid: the REST management API on libevent's evhttp.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "lib/child.h"
#include "lib/crypto.h"
#include "lib/log.h"
#include "lib/util.h"

static struct evhttp	*apid_http;
static Ar__Health	*apid_health;	/* last snapshot from auditrelayd */

/* Send a JSON body with status code. */
static void
apid_reply_json(struct evhttp_request *req, int code, const char *reason,
    const char *json)
{
	struct evbuffer	*b = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Cache-Control", "no-store");
	evbuffer_add(b, json, strlen(json));
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

/* Constant-time check of "Authorization: Bearer <token>". */
static bool
apid_authorized(struct evhttp_request *req)
{
	const char	*h, *tok = config_str(child_config(), CONF_API_TOKEN);

	h = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	if (h == NULL || strncmp(h, "Bearer ", 7) != 0)
		return false;
	h += 7;
	return crypto_ct_equal(h, strlen(h), tok, strlen(tok));
}

static void
apid_healthz(struct evhttp_request *req)
{
	char	 body[2048];
	size_t	 off, i;
	bool	 ok = store_healthy(child_store());

	off = (size_t)snprintf(body, sizeof(body),
	    "{\"status\":\"%s\",\"store\":{\"ok\":%s,\"outageSeconds\":%lld},"
	    "\"children\":[", ok ? "ok" : "degraded", ok ? "true" : "false",
	    (long long)store_outage_ms(child_store()) / 1000);
	for (i = 0; apid_health != NULL && i < apid_health->n_children; i++) {
		Ar__ChildHealth	*c = apid_health->children[i];

		off += (size_t)snprintf(body + off, sizeof(body) - off,
		    "%s{\"name\":\"%s\",\"pid\":%u,\"state\":\"%s\","
		    "\"storeOk\":%s,\"restarts\":%u}", i > 0 ? "," : "",
		    ipc_daemon_name(c->daemon), c->pid, c->state,
		    c->store_ok ? "true" : "false", c->restarts);
		if (!c->store_ok || !c->ready)
			ok = false;
	}
	snprintf(body + off, sizeof(body) - off, "]}");
	if (!ok)
		memcpy(body + 11, "degraded", 8) ;
	apid_reply_json(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable",
	    body);
}

static void
apid_request_cb(struct evhttp_request *req, void *arg)
{
	const char	*path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

	if (path != NULL && strcmp(path, "/healthz") == 0) {
		apid_healthz(req);
		return;
	}
	if (!apid_authorized(req)) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "WWW-Authenticate", "Bearer");
		apid_reply_json(req, 401, "Unauthorized",
		    "{\"error\":{\"code\":\"unauthorized\",\"message\":"
		    "\"missing or wrong bearer token\"}}");
		return;
	}
	apid_reply_json(req, 404, "Not Found",
	    "{\"error\":{\"code\":\"not_found\",\"message\":\"no such path\"}}");
}

static int
apid_configure(const struct config *cfg, bool initial, char *err,
    size_t errlen)
{
	char		host[256];
	uint16_t	port;

	if (!initial)
		return 0;
	if (crypto_init() != 0) {
		snprintf(err, errlen, "libgcrypt initialisation failed");
		return -EINVAL;
	}
	if (util_split_hostport(config_str(cfg, CONF_API_LISTEN), host,
	    sizeof(host), &port) != 0) {
		snprintf(err, errlen, "api_listen: not host:port");
		return -EINVAL;
	}
	apid_http = evhttp_new(child_base());
	evhttp_set_gencb(apid_http, apid_request_cb, NULL);
	evhttp_set_max_body_size(apid_http, 1024 * 1024);
	evhttp_set_max_headers_size(apid_http, 16 * 1024);
	evhttp_set_timeout(apid_http, 30);
	if (evhttp_bind_socket(apid_http, host, port) != 0) {
		snprintf(err, errlen, "cannot listen on %s:%u: %s", host,
		    port, strerror(errno));
		return -EADDRINUSE;
	}
	log_info("listening on %s:%u", host, port);
	return 0;
}

static void
apid_dispatch(const Ar__Envelope *env)
{
	switch (env->body_case) {
	case AR__ENVELOPE__BODY_HEALTH:
		if (apid_health != NULL)
			ar__health__free_unpacked(apid_health, NULL);
		/* Keep a copy: the envelope is freed after dispatch. */
		{
			uint8_t	buf[4096];
			size_t	n = ar__health__get_packed_size(env->health);

			if (n <= sizeof(buf)) {
				ar__health__pack(env->health, buf);
				apid_health = ar__health__unpack(NULL, n, buf);
			} else
				apid_health = NULL;
		}
		break;
	default:
		log_debug("dropping message case=%d", (int)env->body_case);
		break;
	}
}

static void
apid_shutdown(unsigned grace_ms)
{
	child_exit(0);
}

static int
apid_store_setup(struct store *s, char *err, size_t errlen)
{
	return 0;
}

static const struct child_ops apid_ops = {
	.daemon = AR__DAEMON__DAEMON_APID,
	.name = "auditrelay-apid",
	.summary = "auditrelay's REST management API.",
	.configure = apid_configure,
	.dispatch = apid_dispatch,
	.shutdown = apid_shutdown,
	.store_setup = apid_store_setup,
};

int
main(int argc, char **argv)
{
	return child_main(argc, argv, &apid_ops);
}
