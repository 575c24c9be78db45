/*
 * HTTP layer of the API. See http.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "apid/apid.h"
#include "apid/backfill.h"
#include "apid/conn.h"
#include "apid/http.h"
#include "apid/metrics.h"
#include "apid/sources.h"
#include "apid/validate.h"
#include "lib/base/json.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/crypto/crypto.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

#define HTTP_LISTEN_BACKLOG 4096

enum body_rule {
	BODY_NONE,     /* ignored */
	BODY_REQUIRED, /* a JSON object */
	BODY_OPTIONAL, /* empty, or a JSON object */
};

/* Flags of a route. */
#define RT_PUBLIC  0x01 /* no token needed */
#define RT_METRICS 0x02 /* no token needed when metrics_public */
#define RT_QUERY   0x04 /* takes query parameters (the handler's) */
#define RT_WORKER  0x08 /* the handler is store work (http_work) */

#define HTTP_PATH_SEGS 4 /* segments of the longest path */

/*
 * One method on one path. The path is a pattern of at most HTTP_PATH_SEGS
 * segments, ":id" matching any one segment (the source id, into a->id).
 * A path is public when one of its routes is (its 405 needs no token
 * either); Allow lists the methods of its routes in table order.
 */
struct route {
	enum evhttp_cmd_type cmd;
	const char	    *path;
	http_handler	     fn;
	unsigned	     flags;
	enum body_rule	     body;
	size_t		     body_max; /* bytes, for BODY_* but NONE */
};

static void http_healthz(struct areq *a);
static void http_openapi(struct areq *a);

static const struct route routes[] = {
	{ EVHTTP_REQ_GET, "/healthz", http_healthz, RT_PUBLIC, BODY_NONE, 0 },
	{ EVHTTP_REQ_GET, "/openapi.json", http_openapi, 0, BODY_NONE, 0 },
	{ EVHTTP_REQ_GET, "/metrics", metrics_get, RT_METRICS, BODY_NONE, 0 },
	{ EVHTTP_REQ_POST, "/add-source", sources_add, RT_WORKER, BODY_REQUIRED,
	    HTTP_BODY_MAX },
	{ EVHTTP_REQ_DELETE, "/remove-source/:id", sources_remove, RT_WORKER,
	    BODY_NONE, 0 },
	{ EVHTTP_REQ_GET, "/sources", sources_list, RT_QUERY | RT_WORKER,
	    BODY_NONE, 0 },
	{ EVHTTP_REQ_GET, "/sources/:id", sources_get, RT_WORKER, BODY_NONE,
	    0 },
	{ EVHTTP_REQ_PATCH, "/sources/:id", sources_patch, RT_WORKER,
	    BODY_REQUIRED, HTTP_BODY_MAX },
	{ EVHTTP_REQ_PUT, "/sources/:id/credentials", sources_put_credentials,
	    RT_WORKER, BODY_REQUIRED, HTTP_BODY_MAX },
	{ EVHTTP_REQ_POST, "/sources/:id/webhook-secret", sources_rotate_secret,
	    RT_WORKER, BODY_OPTIONAL, HTTP_BODY_MAX },
	{ EVHTTP_REQ_GET, "/sources/:id/dead-letters", sources_dead_letters,
	    RT_QUERY | RT_WORKER, BODY_NONE, 0 },
	{ EVHTTP_REQ_POST, "/sources/:id/dead-letters/replay", sources_replay,
	    RT_WORKER, BODY_OPTIONAL, HTTP_BODY_MAX },
	{ EVHTTP_REQ_POST, "/sources/:id/backfill", backfill_post, RT_WORKER,
	    BODY_REQUIRED, HTTP_BODY_MAX },
	{ EVHTTP_REQ_GET, "/sources/:id/backfill", backfill_get, RT_WORKER,
	    BODY_NONE, 0 },
	{ EVHTTP_REQ_DELETE, "/sources/:id/backfill", backfill_delete,
	    RT_QUERY | RT_WORKER, BODY_NONE, 0 },
};

/* What http_match() found for a path. */
struct match {
	const struct route *r;	       /* the route of the method */
	bool		    path;      /* some route has the path */
	bool		    open;      /* no token needed */
	char		    allow[64]; /* its methods, "GET, PATCH" */
};

static struct evhttp *http_srv;
static unsigned	      http_nwork; /* counted requests in work */

/* Forget a recorded reply (its body may hold a secret). */
static void
http_forget_reply(struct areq *a)
{
	if (a->data != NULL) {
		explicit_bzero(a->data, a->len);
		free(a->data);
	}
	a->data = NULL;
	a->len = 0;
	a->code = 0;
	a->nhdr = 0;
}

static void
http_free(struct areq *a)
{
	if (a == NULL)
		return;
	if (a->cx != NULL)
		conn_request_end(a->cx);
	else if (a->req != NULL && a->conn != NULL)
		evhttp_connection_set_closecb(a->conn, NULL, NULL);
	if (a->body != NULL) {
		if (a->wipe)
			validate_wipe_tree(a->body);
		yajl_tree_free(a->body);
	}
	http_forget_reply(a);
	free(a->note);
	free(a->query);
	free(a);
}

/* The client closed the connection before we answered. */
static void
http_close_cb(struct evhttp_connection *conn, void *arg)
{
	struct areq *a = arg;

	a->req = NULL;
	a->conn = NULL;
}

void
http_conn_gone(struct areq *a)
{
	a->req = NULL;
	a->conn = NULL;
	a->cx = NULL;
}

bool
http_query_parse(struct areq *a, struct evkeyvalq *q)
{
	TAILQ_INIT(q);
	if (a->query == NULL || evhttp_parse_query_str(a->query, q) == 0)
		return true;
	http_error(a, 400, "invalid_parameter", "query",
	    "the query string is malformed");
	return false;
}

bool
http_gone(const struct areq *a)
{
	return a->req == NULL;
}

void
http_done(struct areq *a)
{
	http_free(a);
}

/* evbuffer cleanup of a reply body: wipe, then free. */
static void
http_wipe_cb(const void *data, size_t datalen, void *extra)
{
	explicit_bzero((void *)(uintptr_t)data, (size_t)(uintptr_t)extra);
	free((void *)(uintptr_t)data);
}

void
http_header(struct areq *a, const char *key, const char *value)
{
	if (a->recording) {
		if (a->nhdr < AREQ_HDRS_MAX) {
			a->hdr[a->nhdr].key = key;
			util_strlcpy(a->hdr[a->nhdr].value, value,
			    sizeof(a->hdr[0].value));
			a->nhdr++;
		}
		return;
	}
	if (a->req != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(a->req),
		    key, value);
}

/* Send a reply now (on the loop) and free a. */
static void
http_send(struct areq *a, int code, const char *ctype, const char *data,
    size_t len)
{
	struct evhttp_request *req = a->req;
	struct evkeyvalq      *h;
	struct evbuffer	      *b;
	char		      *copy;

	if (req == NULL) {
		http_free(a);
		return;
	}
	/* Detach first: the reply may end the connection. */
	if (a->cx != NULL) {
		conn_request_end(a->cx);
		a->cx = NULL;
	} else if (a->conn != NULL)
		evhttp_connection_set_closecb(a->conn, NULL, NULL);
	a->req = NULL;
	a->conn = NULL;
	if (code >= 100 && code < 600)
		apid.responses[code / 100]++;
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	if (data != NULL && len > 0) {
		evhttp_add_header(h, "Content-Type", ctype);
		/*
		 * The body may carry a secret: send it from a copy that is
		 * wiped when the connection has written it.
		 */
		b = evbuffer_new();
		copy = malloc(len);
		if (b == NULL || copy == NULL)
			fatal("out of memory");
		memcpy(copy, data, len);
		if (evbuffer_add_reference(b, copy, len, http_wipe_cb,
			(void *)(uintptr_t)len) != 0)
			fatal("out of memory");
		evhttp_send_reply(req, code, NULL, b);
		evbuffer_free(b);
	} else
		evhttp_send_reply(req, code, NULL, NULL);
	http_free(a);
}

void
http_reply_typed(struct areq *a, int code, const char *ctype, const char *data,
    size_t len)
{
	if (!a->recording) {
		http_send(a, code, ctype, data, len);
		return;
	}
	if (a->code != 0)
		return; /* one reply per request: the first */
	a->code = code;
	a->ctype = ctype;
	if (data != NULL && len > 0) {
		a->data = util_xcalloc(1, len);
		memcpy(a->data, data, len);
		a->len = len;
	}
}

/* The recorded reply of a, sent, and a freed. */
static void
http_send_recorded(struct areq *a)
{
	size_t i;

	for (i = 0; a->req != NULL && i < a->nhdr; i++)
		evhttp_add_header(evhttp_request_get_output_headers(a->req),
		    a->hdr[i].key, a->hdr[i].value);
	http_send(a, a->code, a->ctype, a->data, a->len);
}

void
http_then(struct areq *a, http_then_fn then, void *arg)
{
	a->then = then;
	a->then_arg = arg;
}

void
http_store_result(struct areq *a, bool ok, const char *err)
{
	if (!a->recording) {
		child_store_result(ok, err);
		return;
	}
	if (!ok) {
		a->store_ok = -1;
		util_strlcpy(a->store_err, err != NULL ? err : "error",
		    sizeof(a->store_err));
	} else if (a->store_ok == 0)
		a->store_ok = 1;
}

void
http_changed(struct areq *a, const char *id, bool removed)
{
	util_strlcpy(a->changed, id, sizeof(a->changed));
	a->removed = removed;
}

void
http_note(struct areq *a, const char *fmt, ...)
{
	va_list ap;

	free(a->note);
	a->note = NULL;
	va_start(ap, fmt);
	if (vasprintf(&a->note, fmt, ap) < 0)
		a->note = NULL;
	va_end(ap);
}

unsigned
http_work_pending(void)
{
	return http_nwork;
}

/* Worker thread: the request's store work. */
static void
http_work_run(void *arg)
{
	struct areq *a = arg;

	a->work(a);
}

/*
 * Loop: a's work is over. Apply what it recorded: the store outcome, the
 * change, the log line, then the reply or the continuation.
 */
static void
http_work_done(void *arg)
{
	struct areq *a = arg;
	http_then_fn then = a->then;
	void	    *then_arg = a->then_arg;
	if (a->counted)
		http_nwork--;
	a->counted = false;
	a->recording = false;
	a->then = NULL;
	a->then_arg = NULL;
	if (a->store_ok != 0)
		child_store_result(a->store_ok > 0, a->store_err);
	a->store_ok = 0;
	if (a->changed[0] != '\0') {
		ipc_send_source_changed(child_chan(), a->changed, a->removed);
		a->changed[0] = '\0';
	}
	if (a->note != NULL) {
		log_info("%s", a->note);
		free(a->note);
		a->note = NULL;
	}
	if (a->code != 0) {
		http_send_recorded(a);
		if (then != NULL)
			then(NULL, then_arg);
		return;
	}
	if (then != NULL) {
		then(a, then_arg);
		return;
	}
	http_error(a, 500, "internal", NULL, "the request was not answered");
}

static int
http_work_submit(struct areq *a, http_handler work, bool counted)
{
	int rc;

	a->work = work;
	a->recording = true;
	a->code = 0;
	a->store_ok = 0;
	a->counted = false;
	/* The store is known down: work answers 503 without calling it. */
	if (!store_healthy(child_store())) {
		work(a);
		http_work_done(a);
		return 0;
	}
	/* Only what will wait for the store counts. */
	if (counted && http_nwork >= APID_WORK_MAX) {
		a->recording = false; /* answered now, from the loop */
		apid.work_refused++;
		http_header(a, "Retry-After", "2");
		http_error(a, 503, "busy", NULL,
		    "%u requests are already "
		    "waiting for the store; retry in a few seconds",
		    http_nwork);
		return -EBUSY;
	}
	a->queued_ms = util_mono_ms();
	if (counted) {
		a->counted = true;
		http_nwork++;
	}
	if ((rc = worker_submit(http_work_run, http_work_done, a)) != 0) {
		if (counted)
			http_nwork--;
		a->counted = false;
		a->recording = false;
		http_error(a, 503, "busy", NULL,
		    "cannot queue the request "
		    "(%s); retry later",
		    strerror(-rc));
		return rc;
	}
	return 0;
}

int
http_work(struct areq *a, http_handler work)
{
	return http_work_submit(a, work, true);
}

int
http_work_always(struct areq *a, http_handler work)
{
	return http_work_submit(a, work, false);
}

void
http_reply(struct areq *a, int code, const char *json, size_t len)
{
	http_reply_typed(a, code, "application/json", json, len);
}

void
http_error(struct areq *a, int code, const char *ecode, const char *field,
    const char *fmt, ...)
{
	struct jsonw *w = jsonw_new();
	char	      msg[1536];
	const char   *out;
	size_t	      len;
	va_list	      ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (w == NULL)
		fatal("out of memory");
	jsonw_obj_open(w);
	jsonw_key(w, "error");
	jsonw_obj_open(w);
	jsonw_kv_str(w, "code", ecode);
	jsonw_kv_str(w, "message", msg);
	jsonw_kv_str(w, "field", field);
	jsonw_obj_close(w);
	jsonw_obj_close(w);
	if ((out = jsonw_buf(w, &len)) == NULL) {
		/* A message that was not UTF-8: say less. */
		out = "{\"error\":{\"code\":\"internal\",\"message\":"
		      "\"unprintable error\",\"field\":null}}";
		len = strlen(out);
	}
	http_reply(a, code, out, len);
	jsonw_free(w);
}

void
http_verr(struct areq *a, const struct verr *e)
{
	http_error(a, e->status ? e->status : 400, e->code,
	    e->field[0] ? e->field : NULL, "%s", e->message);
}

/*
 * Constant-time check of one Authorization header value: scheme Bearer
 * (any case), the whole token.
 */
bool
http_token_ok(const char *h)
{
	const char *tok = config_str(child_config(), CONF_API_TOKEN);

	if (h == NULL || tok == NULL || tok[0] == '\0')
		return false;
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return false;
	h += 7;
	while (*h == ' ')
		h++;
	return crypto_ct_equal(h, strlen(h), tok, strlen(tok));
}

/* Exactly one Authorization header, and http_token_ok(). */
static bool
http_authorized(struct evhttp_request *req)
{
	struct evkeyvalq *hs = evhttp_request_get_input_headers(req);
	struct evkeyval	 *kv;
	const char	 *h = NULL;
	int		  n = 0;

	TAILQ_FOREACH (kv, hs, next) {
		if (strcasecmp(kv->key, "Authorization") == 0) {
			h = kv->value;
			n++;
		}
	}
	return n == 1 && http_token_ok(h);
}

/*
 * GET /healthz: {"status":"ok"|"degraded"} for anyone, 200 or 503; with
 * the token also the store and every child (pid, state, restarts).
 * Degraded when the store is down or a child is not ready or has lost
 * the store. Built with the JSON writer: valid JSON in every state.
 */
static void
http_healthz(struct areq *a)
{
	struct jsonw *w;
	const char   *out;
	size_t	      i, len;
	bool	      store_ok = store_healthy(child_store()), ok = store_ok;
	Ar__Health   *hh = apid.health;

	for (i = 0; hh != NULL && i < hh->n_children; i++)
		if (!hh->children[i]->store_ok || !hh->children[i]->ready)
			ok = false;
	if ((w = jsonw_new()) == NULL)
		fatal("out of memory");
	jsonw_obj_open(w);
	jsonw_kv_str(w, "status", ok ? "ok" : "degraded");
	if (a->authorized) {
		jsonw_key(w, "store");
		jsonw_obj_open(w);
		jsonw_kv_bool(w, "ok", store_ok);
		jsonw_kv_int(w, "outageSeconds",
		    store_outage_ms(child_store()) / 1000);
		jsonw_obj_close(w);
		jsonw_key(w, "children");
		jsonw_arr_open(w);
		for (i = 0; hh != NULL && i < hh->n_children; i++) {
			Ar__ChildHealth *c = hh->children[i];

			jsonw_obj_open(w);
			jsonw_kv_str(w, "name", ipc_daemon_name(c->daemon));
			jsonw_kv_int(w, "pid", c->pid);
			jsonw_kv_str(w, "state",
			    c->state != NULL ? c->state : "");
			jsonw_kv_bool(w, "storeOk", c->store_ok);
			jsonw_kv_int(w, "restarts", c->restarts);
			jsonw_obj_close(w);
		}
		jsonw_arr_close(w);
	}
	jsonw_obj_close(w);
	if ((out = jsonw_buf(w, &len)) == NULL) {
		out = ok ? "{\"status\":\"ok\"}" : "{\"status\":\"degraded\"}";
		len = strlen(out);
	}
	http_reply(a, ok ? 200 : 503, out, len);
	jsonw_free(w);
}

static void
http_openapi(struct areq *a)
{
	http_reply(a, 200, apid_openapi_json, apid_openapi_json_len);
}

/*
 * Split path into at most HTTP_PATH_SEGS segments; false when it has more,
 * empty segments, or a trailing slash.
 */
static bool
http_split(const char *path, char seg[HTTP_PATH_SEGS][64], size_t *nseg)
{
	const char *p = path, *q;
	size_t	    n = 0, len;

	if (p == NULL || *p != '/')
		return false;
	p++;
	while (*p != '\0') {
		q = strchr(p, '/');
		len = q != NULL ? (size_t)(q - p) : strlen(p);
		if (len == 0 || len >= 64 || n == HTTP_PATH_SEGS)
			return false;
		memcpy(seg[n], p, len);
		seg[n][len] = '\0';
		n++;
		if (q == NULL)
			break;
		p = q + 1;
		if (*p == '\0')
			return false;
	}
	*nseg = n;
	return n > 0;
}

/*
 * True when the segments seg[0..nseg) match the route pattern pat; the
 * segment under ":id" is then copied into id.
 */
static bool
http_pattern_match(const char *pat, char seg[HTTP_PATH_SEGS][64], size_t nseg,
    char *id, size_t idlen)
{
	const char *p = pat + 1, *sid = NULL;
	size_t	    i, len;

	for (i = 0; i < nseg; i++) {
		len = strcspn(p, "/");
		if (len == 0)
			return false;
		if (len == 3 && strncmp(p, ":id", 3) == 0)
			sid = seg[i];
		else if (strlen(seg[i]) != len || strncmp(seg[i], p, len) != 0)
			return false;
		p += len;
		if (*p == '/')
			p++;
	}
	if (*p != '\0')
		return false;
	if (sid != NULL)
		util_strlcpy(id, sid, idlen);
	return true;
}

/* The name of a method, as Allow lists it. */
static const char *
http_method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	default:
		return "?";
	}
}

/*
 * Look path and method cmd up in the route table into *m (the :id segment
 * into id): the route of the method, whether the path exists, whether it
 * is public and which methods it allows.
 */
static void
http_match(const char *path, enum evhttp_cmd_type cmd, char *id, size_t idlen,
    struct match *m)
{
	const struct route *r;
	char		    seg[HTTP_PATH_SEGS][64];
	size_t		    nseg, i, len;

	memset(m, 0, sizeof(*m));
	if (!http_split(path, seg, &nseg))
		return;
	for (i = 0; i < nitems(routes); i++) {
		r = &routes[i];
		if (!http_pattern_match(r->path, seg, nseg, id, idlen))
			continue;
		if ((r->flags & RT_PUBLIC) ||
		    ((r->flags & RT_METRICS) &&
			config_bool(child_config(), CONF_METRICS_PUBLIC)))
			m->open = true;
		if (r->cmd == cmd)
			m->r = r;
		len = strlen(m->allow);
		snprintf(m->allow + len, sizeof(m->allow) - len, "%s%s",
		    m->path ? ", " : "", http_method_name(r->cmd));
		m->path = true;
	}
}

bool
http_path_open(const char *path)
{
	struct match m;
	char	     id[64];

	http_match(path, (enum evhttp_cmd_type)0, id, sizeof(id), &m);
	return m.open;
}

/* True when the Content-Type is JSON (charset, if any, UTF-8). */
static bool
http_is_json(const char *ct)
{
	const char *p;

	if (ct == NULL)
		return false;
	while (*ct == ' ')
		ct++;
	if (strncasecmp(ct, "application/json", 16) != 0)
		return false;
	p = ct + 16;
	while (*p == ' ')
		p++;
	if (*p == '\0')
		return true;
	if (*p != ';')
		return false;
	p++;
	while (*p == ' ')
		p++;
	if (strncasecmp(p, "charset=", 8) != 0)
		return false;
	p += 8;
	if (*p == '"')
		p++;
	if (strncasecmp(p, "utf-8", 5) != 0)
		return false;
	p += 5;
	if (*p == '"')
		p++;
	while (*p == ' ')
		p++;
	return *p == '\0';
}

/*
 * Read and parse the body as route r wants it; replies itself and returns
 * false.
 */
static bool
http_take_body(struct areq *a, const struct route *r)
{
	enum body_rule	 rule = r->body;
	struct evbuffer *in = evhttp_request_get_input_buffer(a->req);
	size_t		 len = evbuffer_get_length(in);
	const char	*ct;
	char		 err[256], field[256];
	unsigned char	*p;
	int		 rc;

	if (rule == BODY_NONE)
		return true;
	if (len == 0 && rule == BODY_OPTIONAL)
		return true;
	if (len > r->body_max) {
		http_error(a, 413, "payload_too_large", "body",
		    "the body is larger than %zu bytes", r->body_max);
		return false;
	}
	ct = evhttp_find_header(evhttp_request_get_input_headers(a->req),
	    "Content-Type");
	if (!http_is_json(ct)) {
		http_error(a, 415, "unsupported_media_type", "Content-Type",
		    "send the body as application/json");
		return false;
	}
	if (len == 0) {
		http_error(a, 400, "invalid_json", "body",
		    "the body is empty; a JSON object is expected");
		return false;
	}
	if ((p = evbuffer_pullup(in, -1)) == NULL)
		fatal("out of memory");
	rc = json_parse((const char *)p, len, HTTP_JSON_DEPTH, &a->body, err,
	    sizeof(err));
	/* U+0000 would cut a C string short silently: refuse, by name. */
	if (rc == 0 &&
	    json_find_nul((const char *)p, len, field, sizeof(field)) == 1) {
		a->wipe = true;
		memset(p, 0, len);
		evbuffer_drain(in, len);
		http_error(a, 400, "invalid_field",
		    field[0] != '\0' ? field : "body",
		    "%s must not contain U+0000 (\\u0000)",
		    field[0] != '\0' ? field : "the body");
		return false;
	}
	/* The body may hold a private key: do not leave it around. */
	a->wipe = true;
	memset(p, 0, len);
	evbuffer_drain(in, len);
	if (rc != 0) {
		a->body = NULL;
		http_error(a, 400, "invalid_json", "body",
		    "the body is not valid JSON: %s", err);
		return false;
	}
	if (!YAJL_IS_OBJECT(a->body)) {
		http_error(a, 400, "invalid_type", "body",
		    "the body must be a JSON object");
		return false;
	}
	return true;
}

/* The methods whose body libevent reads (evhttp_method_may_have_body). */
#define HTTP_BODY_METHODS                                                 \
	(EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |              \
	    EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_CONNECT | \
	    EVHTTP_REQ_PATCH)

static void
http_request_cb(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	enum evhttp_cmd_type	 cmd = evhttp_request_get_command(req);
	struct match		 m;
	struct areq		*a;
	const char		*path;

	a = util_xcalloc(1, sizeof(*a));
	a->req = req;
	if ((cmd & HTTP_BODY_METHODS) == 0) {
		/*
		 * libevent does not read the body of HEAD, TRACE or a
		 * method it does not know: close after the answer, or a
		 * body sent anyway would be read as the next request.
		 */
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Connection", "close");
	}
	a->conn = evhttp_request_get_connection(req);
	a->conf.min_interval = config_int(child_config(),
	    CONF_FETCH_MIN_INTERVAL);
	a->conf.initial_lookback = config_int(child_config(),
	    CONF_FETCH_INITIAL_LOOKBACK);
	a->conf.max_sources = config_int(child_config(), CONF_API_MAX_SOURCES);
	a->conf.allow_private = config_bool(child_config(),
	    CONF_DELIVERY_ALLOW_PRIVATE_NETWORKS);
	if ((a->cx = conn_of(a->conn)) != NULL)
		conn_request_begin(a->cx, a);
	else if (a->conn != NULL)
		evhttp_connection_set_closecb(a->conn, http_close_cb, a);
	path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	/* A copy: evhttp frees the request if the client leaves. */
	if (uri != NULL && evhttp_uri_get_query(uri) != NULL)
		a->query = util_xstrdup(evhttp_uri_get_query(uri));
	http_match(path, cmd, a->id, sizeof(a->id), &m);
	a->authorized = http_authorized(req);
	if (!m.open && !a->authorized) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "WWW-Authenticate", "Bearer");
		http_error(a, 401, "unauthorized", NULL,
		    "missing or wrong "
		    "bearer token (send Authorization: Bearer <token>)");
		return;
	}
	if (!m.path) {
		http_error(a, 404, "not_found", NULL, "no such path");
		return;
	}
	if (m.r == NULL) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", m.allow);
		http_error(a, 405, "method_not_allowed", NULL,
		    "method not allowed here; allowed: %s", m.allow);
		return;
	}
	if (a->query != NULL && (m.r->flags & RT_QUERY) == 0) {
		http_error(a, 400, "unknown_parameter", "query",
		    "this endpoint takes no query parameters");
		return;
	}
	if (!http_take_body(a, m.r))
		return;
	if (m.r->flags & RT_WORKER)
		(void)http_work(a, m.r->fn);
	else
		m.r->fn(a);
}

/*
 * A listening socket on host:port with a deep accept queue (the kernel
 * caps it at net.core.somaxconn): under a connection flood a legitimate
 * client's SYN must not be dropped (it would wait a 1 s retransmission).
 * The fd, or -1 with errno set.
 */
static int
http_listen(const char *host, unsigned short port)
{
	struct evutil_addrinfo hints, *ai = NULL;
	char		       portstr[8];
	int		       fd = -1, one = 1, e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG;
	snprintf(portstr, sizeof(portstr), "%u", port);
	if (evutil_getaddrinfo(host, portstr, &hints, &ai) != 0 || ai == NULL) {
		errno = EADDRNOTAVAIL;
		return -1;
	}
	if ((fd = socket(ai->ai_family,
		 ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		 ai->ai_protocol)) < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
	    listen(fd, HTTP_LISTEN_BACKLOG) != 0)
		goto fail;
	evutil_freeaddrinfo(ai);
	return fd;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	evutil_freeaddrinfo(ai);
	errno = e;
	return -1;
}

int
http_start(const char *host, unsigned short port, char *err, size_t errlen)
{
	struct evhttp_bound_socket *bound;
	unsigned		    cap;
	int			    fd;

	http_srv = evhttp_new(child_base());
	if (http_srv == NULL) {
		snprintf(err, errlen, "evhttp_new failed");
		return -ENOMEM;
	}
	evhttp_set_gencb(http_srv, http_request_cb, NULL);
	/*
	 * Every method reaches us, so that we answer 405, never 501: the
	 * known ones and, through libevent's internal "unknown" bit
	 * (1 << 15), any other token such as QUERY or PROPFIND.
	 */
	evhttp_set_allowed_methods(http_srv, 0xffff);
	/*
	 * libevent answers bodies over its limit itself, in HTML: let it
	 * read up to HTTP_BODY_READ_MAX so that we answer 413 in JSON for
	 * the usual oversized bodies.
	 */
	evhttp_set_max_body_size(http_srv, HTTP_BODY_READ_MAX);
	evhttp_set_max_headers_size(http_srv, 16 * 1024);
	evhttp_set_timeout(http_srv, 30);
	evhttp_set_default_content_type(http_srv, "application/json");
	if ((fd = http_listen(host, port)) < 0 ||
	    (bound = evhttp_accept_socket_with_handle(http_srv, fd)) == NULL) {
		snprintf(err, errlen, "cannot listen on %s:%u: %s", host, port,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return -EADDRINUSE;
	}
	cap = conn_setup(http_srv, evhttp_bound_socket_get_listener(bound),
	    (unsigned)config_int(child_config(), CONF_API_MAX_CONNECTIONS));
	log_info("api: listening on %s:%u, at most %u connections", host, port,
	    cap);
	return 0;
}
