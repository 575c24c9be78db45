/*
 * The Google endpoints of the simulator: POST /token (OAuth 2.0 JWT
 * bearer) and GET /admin/reports/v1/activity/users/{userKey}/applications/
 * {applicationName}, with Google's error bodies and the fault injector.
 */
#include <sys/socket.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sys/queue.h>

#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>

#include "sim.h"
#include "sim_jwt.h"
#include "sim_page.h"
#include "tests/support/testkey.h"

#define EP_STAT_TOKEN	   0
#define EP_STAT_ACTIVITIES 1
#define EP_STAT_CONTROL	   2
#define EP_STAT_OTHER	   3

#define API_PREFIX "/admin/reports/v1/activity/users/"
#define MAX_PAGE   1000

static const char *const time_pattern =
    "(\\d\\d\\d\\d)-(\\d\\d)-(\\d\\d)T"
    "(\\d\\d):(\\d\\d):(\\d\\d)(?:\\.(\\d+))?(?:(Z)|([-+])(\\d\\d):(\\d\\d))";

static int reply_delay_ms;

static void api_error_item(struct evhttp_request *, int, const char *,
    const char *, const char *, const char *, const char *, const char *,
    const char *, int, int); /* set by a "slow" fault for this request */

const char *const sim_fault_names[FAULT_NKINDS] = {
	"rate_limit",
	"user_rate_limit",
	"429",
	"503",
	"500",
	"slow",
	"reset",
	"repeat_token",
	"bad_json",
	"truncated_json",
	"revoked_key",
	"no_delegation",
};

yajl_gen
sim_gen_new(void)
{
	yajl_gen g;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		return NULL;
	yajl_gen_config(g, yajl_gen_beautify, 0);
	return g;
}

void
yg_str(yajl_gen g, const char *s)
{
	yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

void
yg_kv(yajl_gen g, const char *k, const char *v)
{
	yg_str(g, k);
	if (v == NULL)
		yajl_gen_null(g);
	else
		yg_str(g, v);
}

void
yg_ki(yajl_gen g, const char *k, long long v)
{
	yg_str(g, k);
	yajl_gen_integer(g, v);
}

void
yg_kb(yajl_gen g, const char *k, bool v)
{
	yg_str(g, k);
	yajl_gen_bool(g, v);
}

void
sim_stat(int ep, int code)
{
	struct sim_stat_ep *s = &sim.stats[ep];
	int		    i;

	for (i = 0; i < SIM_STAT_CODES; i++) {
		if (s->code[i] == code || s->code[i] == 0) {
			s->code[i] = code;
			s->count[i]++;
			return;
		}
	}
}

char *
sim_req_body(struct evhttp_request *req, size_t *len)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t		 n = evbuffer_get_length(in);
	char		*s;

	if ((s = malloc(n + 1)) == NULL)
		return NULL;
	if (n > 0 && evbuffer_copyout(in, s, n) != (ev_ssize_t)n) {
		free(s);
		return NULL;
	}
	s[n] = '\0';
	if (len != NULL)
		*len = n;
	return s;
}

/* A reply waiting for a "slow" fault's delay. */
struct pending {
	struct evhttp_request	 *req;
	struct evhttp_connection *evcon;
	struct event		 *ev;
	struct evbuffer		 *body;
	int			  code;
};

static void
pending_free(struct pending *p)
{
	if (p == NULL)
		return;
	if (p->ev != NULL)
		event_free(p->ev);
	if (p->body != NULL)
		evbuffer_free(p->body);
	free(p);
}

/* The client went away during the delay: drop the reply. */
static void
pending_close_cb(struct evhttp_connection *evcon, void *arg)
{
	pending_free(arg);
}

static void
pending_fire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pending *p = arg;

	evhttp_connection_set_closecb(p->evcon, NULL, NULL);
	evhttp_send_reply(p->req, p->code, NULL, p->body);
	pending_free(p);
}

void
sim_reply_buf(struct evhttp_request *req, int code, struct evbuffer *b, int ep)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct pending	 *p;
	struct timeval	  tv;

	if (evhttp_find_header(h, "Content-Type") == NULL)
		evhttp_add_header(h, "Content-Type",
		    "application/json; charset=UTF-8");
	sim_stat(ep, code);
	sim.bytes_served += evbuffer_get_length(b);
	if (reply_delay_ms <= 0)
		goto now;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		goto now;
	p->req = req;
	p->code = code;
	p->evcon = evhttp_request_get_connection(req);
	p->body = evbuffer_new();
	p->ev = evtimer_new(sim.base, pending_fire_cb, p);
	if (p->body == NULL || p->ev == NULL || p->evcon == NULL) {
		pending_free(p);
		goto now;
	}
	evbuffer_add_buffer(p->body, b);
	tv.tv_sec = reply_delay_ms / 1000;
	tv.tv_usec = (reply_delay_ms % 1000) * 1000;
	evhttp_connection_set_closecb(p->evcon, pending_close_cb, p);
	evtimer_add(p->ev, &tv);
	return;
now:
	evhttp_send_reply(req, code, NULL, b);
}

void
sim_reply_json(struct evhttp_request *req, int code, yajl_gen g, int ep)
{
	const unsigned char *out;
	size_t		     len;
	struct evbuffer	    *b = evbuffer_new();

	if (b == NULL)
		fatal("out of memory");
	if (yajl_gen_get_buf(g, &out, &len) == yajl_gen_status_ok)
		evbuffer_add(b, out, len);
	sim_reply_buf(req, code, b, ep);
	evbuffer_free(b);
}

void
sim_api_error(struct evhttp_request *req, int code, const char *message,
    const char *domain, const char *reason, const char *status,
    const char *location, const char *location_type, int retry_after, int ep)
{
	api_error_item(req, code, message, message, domain, reason, status,
	    location, location_type, retry_after, ep);
}

/*
 * Google's JSON error body: {"error": {"code", "message", "errors": [{
 * "message" (item), "domain", "reason", "location"?, "locationType"?}],
 * "status"?}}, with Retry-After when retry_after > 0.
 */
static void
api_error_item(struct evhttp_request *req, int code, const char *message,
    const char *item, const char *domain, const char *reason,
    const char *status, const char *location, const char *location_type,
    int retry_after, int ep)
{
	yajl_gen g = sim_gen_new();
	char	 buf[32];

	if (g == NULL)
		fatal("out of memory");
	if (retry_after > 0) {
		snprintf(buf, sizeof(buf), "%d", retry_after);
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Retry-After", buf);
	}
	yajl_gen_map_open(g);
	yg_str(g, "error");
	yajl_gen_map_open(g);
	yg_ki(g, "code", code);
	yg_kv(g, "message", message);
	yg_str(g, "errors");
	yajl_gen_array_open(g);
	yajl_gen_map_open(g);
	yg_kv(g, "message", item);
	yg_kv(g, "domain", domain);
	yg_kv(g, "reason", reason);
	if (location != NULL) {
		yg_kv(g, "location", location);
		yg_kv(g, "locationType", location_type);
	}
	yajl_gen_map_close(g);
	yajl_gen_array_close(g);
	if (status != NULL)
		yg_kv(g, "status", status);
	yajl_gen_map_close(g);
	yajl_gen_map_close(g);
	sim_reply_json(req, code, g, ep);
	yajl_gen_free(g);
}

/* OAuth error body {"error","error_description"}. */
static void
oauth_error(struct evhttp_request *req, int code, const char *error,
    const char *desc)
{
	yajl_gen g = sim_gen_new();

	if (g == NULL)
		fatal("out of memory");
	yajl_gen_map_open(g);
	yg_kv(g, "error", error);
	yg_kv(g, "error_description", desc);
	yajl_gen_map_close(g);
	sim_reply_json(req, code, g, EP_STAT_TOKEN);
	yajl_gen_free(g);
}

/* Close the connection with a TCP RST, after the callback returns. */
static void
reset_cb(evutil_socket_t fd, short what, void *arg)
{
	evhttp_connection_free(arg);
}

static void
http_reset(struct evhttp_request *req, int ep)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent	 *bev;
	struct linger		  l = { 1, 0 };
	struct timeval		  tv = { 0, 0 };
	evutil_socket_t		  fd;

	sim_stat(ep, 1); /* "reset" in the statistics */
	bev = evhttp_connection_get_bufferevent(evcon);
	fd = bufferevent_getfd(bev);
	if (fd >= 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	if (event_base_once(sim.base, -1, EV_TIMEOUT, reset_cb, evcon, &tv) < 0)
		evhttp_send_error(req, 500, NULL);
}

/*
 * The first fault that applies to (tenant, app, endpoint) and fires now,
 * or NULL. A fault fires within its window, while its count lasts, with
 * its probability (drawn from the seeded fault generator).
 */
static struct sim_fault *
fault_pick(const char *cid, int app, enum sim_endpoint ep)
{
	int64_t now = sim_now_us();
	int	i;

	for (i = 0; i < sim.nfaults; i++) {
		struct sim_fault *f = &sim.faults[i];
		double		  u;

		if (f->tenant[0] != '\0' && strcmp(f->tenant, cid) != 0)
			continue;
		if (f->app >= 0 && ep == EP_ACTIVITIES && f->app != app)
			continue;
		if (f->ep != EP_ANY && f->ep != ep)
			continue;
		if (f->until_us != 0 && now > f->until_us)
			continue;
		if (f->count == 0)
			continue;
		sim.fault_rng += 0x9e3779b97f4a7c15ULL;
		u = (double)(sim_mix64(sim.fault_rng) >> 11) /
		    9007199254740992.0;
		if (u >= f->probability)
			continue;
		if (f->count > 0)
			f->count--;
		f->fired++;
		return f;
	}
	return NULL;
}

/*
 * Answer a fault that replaces the reply (errors, reset). Returns true
 * when the request was answered; "slow" only sets the delay.
 */
static bool
fault_apply(struct evhttp_request *req, struct sim_fault *f, int ep,
    const char *project)
{
	char msg[512];

	switch (f->kind) {
	case FAULT_RATE_LIMIT:
		snprintf(msg, sizeof(msg),
		    "Quota exceeded for quota metric "
		    "'Queries' and limit 'Queries per minute per user' of "
		    "service 'admin.googleapis.com' for consumer "
		    "'project_number:%s'.",
		    project);
		sim_api_error(req, 403, msg, "usageLimits", "rateLimitExceeded",
		    "PERMISSION_DENIED", NULL, NULL, f->retry_after, ep);
		return true;
	case FAULT_USER_RATE_LIMIT:
		sim_api_error(req, 403, "User Rate Limit Exceeded",
		    "usageLimits", "userRateLimitExceeded", "PERMISSION_DENIED",
		    NULL, NULL, f->retry_after, ep);
		return true;
	case FAULT_429:
		snprintf(msg, sizeof(msg),
		    "Quota exceeded for quota metric "
		    "'Queries' and limit 'Queries per minute' of service "
		    "'admin.googleapis.com' for consumer 'project_number:%s'.",
		    project);
		sim_api_error(req, 429, msg, "global", "rateLimitExceeded",
		    "RESOURCE_EXHAUSTED", NULL, NULL, f->retry_after, ep);
		return true;
	case FAULT_503:
		sim_api_error(req, 503, "The service is currently unavailable.",
		    "global", "backendError", "UNAVAILABLE", NULL, NULL,
		    f->retry_after, ep);
		return true;
	case FAULT_500:
		sim_api_error(req, 500, "Internal error encountered.", "global",
		    "backendError", "INTERNAL", NULL, NULL, f->retry_after, ep);
		return true;
	case FAULT_RESET:
		http_reset(req, ep);
		return true;
	case FAULT_SLOW:
		reply_delay_ms = f->delay_ms > 0 ? f->delay_ms : 2000;
		return false;
	default:
		return false;
	}
}

/* Service-account key lookup for sim_jwt_check(). */
static int
token_keys(void *arg, const char *iss, const char *kid,
    const struct rsa_key **keys, size_t max)
{
	struct sim_sa *sa = sim_sa_find(iss);
	int	       i, n = 0;

	if (sa == NULL)
		return -ENOENT;
	for (i = 0; i < sa->nkeys && (size_t)n < max; i++) {
		if (sa->keys[i].deleted)
			continue;
		if (kid[0] != '\0' && strcmp(kid, sa->keys[i].id) != 0)
			continue;
		keys[n++] = sa->keys[i].key;
	}
	return n;
}

/* true when every scope of list is delegated to sa. */
static bool
token_scopes_delegated(const struct sim_sa *sa, const char *list)
{
	char buf[1024], *p, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", list);
	for (p = strtok_r(buf, " ", &save); p != NULL;
	     p = strtok_r(NULL, " ", &save))
		if (!sim_jwt_scope_has(sa->scopes, p))
			return false;
	return true;
}

static struct sim_token *
token_add(void)
{
	struct sim_token *t;
	int64_t		  now = sim_now_us();
	size_t		  i, j = 0;

	/* Prune the expired ones first. */
	for (i = 0; i < sim.ntokens; i++)
		if (sim.tokens[i].exp_us + 60000000LL > now)
			sim.tokens[j++] = sim.tokens[i];
	sim.ntokens = j;
	if (sim.ntokens == sim.captokens) {
		size_t ncap = sim.captokens ? sim.captokens * 2 : 64;

		t = realloc(sim.tokens, ncap * sizeof(*t));
		if (t == NULL)
			return NULL;
		sim.tokens = t;
		sim.captokens = ncap;
	}
	t = &sim.tokens[sim.ntokens++];
	memset(t, 0, sizeof(*t));
	return t;
}

static void
http_token(struct evhttp_request *req)
{
	struct evkeyvalq      q;
	struct sim_jwt_claims c;
	struct sim_fault     *f;
	struct sim_sa	     *sa;
	struct sim_token     *tok;
	const char	     *grant, *assertion, *err, *desc;
	const char	     *auds[3];
	char		     *body = NULL, *peek = NULL, *rnd = NULL;
	char		      listen_aud[300];
	unsigned char	      raw[48];
	enum sim_jwt_result   r;
	yajl_gen	      g;
	int		      status;

	TAILQ_INIT(&q);
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		oauth_error(req, 400, "invalid_request",
		    "Invalid request method (POST required).");
		return;
	}
	if ((body = sim_req_body(req, NULL)) == NULL ||
	    evhttp_parse_query_str(body, &q) < 0) {
		oauth_error(req, 400, "invalid_request", "Bad Request");
		goto done;
	}
	grant = evhttp_find_header(&q, "grant_type");
	assertion = evhttp_find_header(&q, "assertion");
	if (grant == NULL ||
	    strcmp(grant, "urn:ietf:params:oauth:grant-type:jwt-bearer") != 0) {
		char d[300];

		snprintf(d, sizeof(d), "Invalid grant_type: %.200s",
		    grant ? grant : "");
		oauth_error(req, 400, "unsupported_grant_type", d);
		goto done;
	}
	if (assertion == NULL) {
		oauth_error(req, 400, "invalid_request",
		    "Missing required parameter: assertion");
		goto done;
	}

	/* Faults of the tenant that owns iss, before any verification. */
	sa = NULL;
	if (jwt_peek_claims(assertion, &peek) == 0) {
		yajl_val    t = yajl_tree_parse(peek, NULL, 0);
		const char *p_iss[] = { "iss", NULL };
		yajl_val v = t ? yajl_tree_get(t, p_iss, yajl_t_string) : NULL;

		if (v != NULL)
			sa = sim_sa_find((v)->u.string);
		yajl_tree_free(t);
	}
	if (sa != NULL &&
	    (f = fault_pick(sa->tenant->cid, -1, EP_TOKEN)) != NULL) {
		if (f->kind == FAULT_REVOKED_KEY) {
			oauth_error(req, 400, "invalid_grant",
			    "Invalid JWT Signature.");
			goto done;
		}
		if (f->kind == FAULT_NO_DELEGATION) {
			oauth_error(req, 400, "unauthorized_client",
			    "Client is unauthorized to retrieve access tokens "
			    "using this method, or client not authorized for "
			    "any of the scopes requested.");
			goto done;
		}
		if (fault_apply(req, f, EP_STAT_TOKEN, sa->project))
			goto done;
	}

	snprintf(listen_aud, sizeof(listen_aud), "http://%s/token", sim.listen);
	auds[0] = sim.token_url;
	auds[1] = "https://oauth2.googleapis.com/token";
	auds[2] = listen_aud;
	r = sim_jwt_check(assertion, sim_now_us() / 1000000, auds, 3,
	    token_keys, NULL, &c);
	if (r != SIM_JWT_OK) {
		sim_jwt_error(r, &status, &err, &desc);
		log_info("token refused iss=%s error=%s (%s)", c.iss, err,
		    desc);
		oauth_error(req, status, err, desc);
		goto done;
	}
	sa = sim_sa_find(c.iss);
	if (sa == NULL)
		goto done;
	if ((tok = token_add()) == NULL)
		fatal("out of memory");
	tok->admin = -1;
	if (c.sub[0] != '\0') {
		tok->admin = sim_admin_find(sa->tenant, c.sub);
		if (tok->admin < 0) {
			sim.ntokens--;
			oauth_error(req, 400, "invalid_grant",
			    "Invalid email or User ID");
			goto done;
		}
		if (!sa->delegation || !token_scopes_delegated(sa, c.scope)) {
			sim.ntokens--;
			oauth_error(req, 400, "unauthorized_client",
			    "Client is unauthorized to retrieve access tokens "
			    "using this method, or client not authorized for "
			    "any of the scopes requested.");
			goto done;
		}
	}
	crypto_random(raw, sizeof(raw));
	if ((rnd = b64_encode(raw, sizeof(raw), true, false)) == NULL)
		fatal("out of memory");
	snprintf(tok->tok, sizeof(tok->tok), "ya29.c.%s", rnd);
	tok->sa = sa;
	tok->exp_us = sim_now_us() + (int64_t)sim.token_ttl * 1000000;
	tok->reports_scope = sim_jwt_scope_has(c.scope, SIM_JWT_REPORTS_SCOPE);
	log_info("token issued tenant=%s client=%s sub=%s", sa->tenant->cid,
	    sa->email, c.sub);
	if ((g = sim_gen_new()) == NULL)
		fatal("out of memory");
	yajl_gen_map_open(g);
	yg_kv(g, "access_token", tok->tok);
	yg_ki(g, "expires_in", 3599);
	yg_kv(g, "token_type", "Bearer");
	yajl_gen_map_close(g);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Cache-Control", "no-cache, no-store, max-age=0, must-revalidate");
	sim_reply_json(req, 200, g, EP_STAT_TOKEN);
	yajl_gen_free(g);
done:
	evhttp_clear_headers(&q);
	free(body);
	free(peek);
	free(rnd);
}

/* 401 of the Reports API; missing: no Authorization header at all. */
static void
api_unauthenticated(struct evhttp_request *req, bool missing)
{
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "WWW-Authenticate",
	    "Bearer realm=\"https://accounts.google.com/\""
	    ", error=\"invalid_token\"");
	if (missing)
		api_error_item(req, 401,
		    "Request is missing required "
		    "authentication credential. Expected OAuth 2 access token, "
		    "login cookie or other valid authentication credential. See "
		    "https://developers.google.com/identity/sign-in/web/"
		    "devconsole-project.",
		    "Login Required.", "global", "required", "UNAUTHENTICATED",
		    "Authorization", "header", 0, EP_STAT_ACTIVITIES);
	else
		api_error_item(req, 401,
		    "Request had invalid authentication "
		    "credentials. Expected OAuth 2 access token, login cookie "
		    "or other valid authentication credential. See "
		    "https://developers.google.com/identity/sign-in/web/"
		    "devconsole-project.",
		    "Invalid Credentials", "global", "authError",
		    "UNAUTHENTICATED", "Authorization", "header", 0,
		    EP_STAT_ACTIVITIES);
}

/* 400 invalidParameter for a value that does not match pattern. */
static void
api_bad_param(struct evhttp_request *req, const char *name, const char *value,
    const char *pattern)
{
	char msg[1400];

	snprintf(msg, sizeof(msg),
	    "Invalid value '%.100s'. Values must match "
	    "the following regular expression: '%s'",
	    value, pattern);
	sim_api_error(req, 400, msg, "global", "invalidParameter",
	    "INVALID_ARGUMENT", name, "parameter", 0, EP_STAT_ACTIVITIES);
}

/* Number of activities with key (time, uq) < (bt, bu). */
static size_t
api_lower(const struct sim_app *a, int64_t bt, int64_t bu)
{
	size_t lo = 0, hi = a->n;

	while (lo < hi) {
		size_t		      mid = lo + (hi - lo) / 2;
		const struct sim_act *x = &a->acts[mid];

		if (x->time_us < bt || (x->time_us == bt && x->uq < bu))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The application pattern of the discovery document. */
static char *
api_app_pattern(void)
{
	static char buf[1024];
	size_t	    o = 0;
	int	    i;

	if (buf[0] != '\0')
		return buf;
	for (i = 0; i < SIM_NAPPS; i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s(%s)",
		    i ? "|" : "", sim_app_names[i]);
	return buf;
}

static void
http_activities(struct evhttp_request *req, const char *path)
{
	static size_t		 hits[MAX_PAGE + 1];
	struct evkeyvalq	 q;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char		*auth, *v, *start_s, *end_s, *ev_name, *ip_f;
	const char		*ptok, *cust;
	char			*user_key = NULL, *app_s = NULL, *slash;
	char			 tokbuf[SIM_PAGE_TOKEN_MAX], etag[80];
	char			 abuf[256], ibuf[64], msg[300];
	struct sim_token	*tok = NULL;
	struct sim_tenant	*t;
	struct sim_app		*a;
	struct sim_fault	*f = NULL;
	struct sim_page_pos	 pos;
	int64_t			 now = sim_now_us(), start_us = 0;
	int64_t			 end_us = INT64_MAX, bt, bu;
	long			 max = MAX_PAGE;
	size_t			 i, nhits = 0, hi;
	int			 app;
	bool			 more = false, have_pos = false;
	const char		*qparts[7];
	uint32_t		 qhash;
	yajl_gen		 g = NULL;
	const unsigned char	*out;
	size_t			 outlen;
	struct evbuffer		*b = NULL;

	TAILQ_INIT(&q);
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		sim_api_error(req, 405, "Method not allowed.", "global",
		    "httpMethodNotAllowed", NULL, NULL, NULL, 0,
		    EP_STAT_ACTIVITIES);
		return;
	}
	/* {userKey}/applications/{applicationName} */
	slash = strchr(path, '/');
	if (slash == NULL || strncmp(slash, "/applications/", 14) != 0 ||
	    strchr(slash + 14, '/') != NULL || slash == path) {
		sim_api_error(req, 404, "Not Found", "global", "notFound",
		    "NOT_FOUND", NULL, NULL, 0, EP_STAT_ACTIVITIES);
		return;
	}
	user_key = evhttp_uridecode(path, 0, NULL);
	if (user_key == NULL)
		fatal("out of memory");
	user_key[strcspn(user_key, "/")] = '\0';
	app_s = evhttp_uridecode(slash + 14, 0, NULL);
	if (app_s == NULL)
		fatal("out of memory");

	auth = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	if (auth == NULL) {
		api_unauthenticated(req, true);
		goto done;
	}
	if (strncasecmp(auth, "Bearer ", 7) == 0) {
		for (i = 0; i < sim.ntokens; i++)
			if (strcmp(sim.tokens[i].tok, auth + 7) == 0) {
				tok = &sim.tokens[i];
				break;
			}
	}
	if (tok == NULL || tok->revoked || tok->exp_us <= now) {
		api_unauthenticated(req, false);
		goto done;
	}
	t = tok->sa->tenant;
	if (!tok->reports_scope) {
		api_error_item(req, 403,
		    "Request had insufficient "
		    "authentication scopes.",
		    "Insufficient Permission", "global",
		    "insufficientPermissions", "PERMISSION_DENIED", NULL, NULL,
		    0, EP_STAT_ACTIVITIES);
		goto done;
	}
	if (tok->admin < 0 && !tok->sa->admin_role) {
		/*
		 * A token without sub: the service account acts as itself,
		 * and Google lets it only with an admin role of its own.
		 */
		sim_api_error(req, 403,
		    "Not Authorized to access this "
		    "resource/api",
		    "global", "forbidden", "PERMISSION_DENIED", NULL, NULL, 0,
		    EP_STAT_ACTIVITIES);
		goto done;
	}
	if (tok->admin >= 0 && !t->admins[tok->admin].privileged) {
		sim_api_error(req, 403,
		    "Caller does not have access to the "
		    "customers reporting data.",
		    "global", "insufficientPermissions", "PERMISSION_DENIED",
		    NULL, NULL, 0, EP_STAT_ACTIVITIES);
		goto done;
	}
	if (sim.quota_per_minute > 0) {
		struct sim_sa *sa = tok->sa;
		int64_t	       minute = now / 60000000;

		if (sa->quota_minute != minute) {
			sa->quota_minute = minute;
			sa->quota_used = 0;
		}
		if (++sa->quota_used > sim.quota_per_minute) {
			snprintf(msg, sizeof(msg),
			    "Quota exceeded for quota "
			    "metric 'Queries' and limit 'Queries per minute per "
			    "user' of service 'admin.googleapis.com' for "
			    "consumer 'project_number:%s'.",
			    sa->project);
			sim_api_error(req, 403, msg, "usageLimits",
			    "rateLimitExceeded", "PERMISSION_DENIED", NULL,
			    NULL, (int)(60 - (now / 1000000) % 60),
			    EP_STAT_ACTIVITIES);
			goto done;
		}
	}

	app = sim_app_index(app_s);
	if (app < 0) {
		api_bad_param(req, "applicationName", app_s, api_app_pattern());
		goto done;
	}
	a = &t->apps[app];
	if (evhttp_parse_query_str(
		evhttp_uri_get_query(uri) ? evhttp_uri_get_query(uri) : "",
		&q) < 0) {
		sim_api_error(req, 400, "Invalid query.", "global", "invalid",
		    "INVALID_ARGUMENT", NULL, NULL, 0, EP_STAT_ACTIVITIES);
		goto done;
	}
	start_s = evhttp_find_header(&q, "startTime");
	end_s = evhttp_find_header(&q, "endTime");
	ev_name = evhttp_find_header(&q, "eventName");
	ip_f = evhttp_find_header(&q, "actorIpAddress");
	ptok = evhttp_find_header(&q, "pageToken");
	cust = evhttp_find_header(&q, "customerId");
	if (start_s != NULL && sim_time_parse(start_s, &start_us) < 0) {
		api_bad_param(req, "startTime", start_s, time_pattern);
		goto done;
	}
	if (end_s != NULL && sim_time_parse(end_s, &end_us) < 0) {
		api_bad_param(req, "endTime", end_s, time_pattern);
		goto done;
	}
	if ((v = evhttp_find_header(&q, "maxResults")) != NULL) {
		char *e;

		errno = 0;
		max = strtol(v, &e, 10);
		if (errno != 0 || *e != '\0' || e == v || max < 1 ||
		    max > MAX_PAGE) {
			snprintf(msg, sizeof(msg),
			    "Invalid value '%.50s'. "
			    "Values must be within the range: [1, 1000]",
			    v);
			sim_api_error(req, 400, msg, "global",
			    "invalidParameter", "INVALID_ARGUMENT",
			    "maxResults", "parameter", 0, EP_STAT_ACTIVITIES);
			goto done;
		}
	}
	if (cust != NULL && strcmp(cust, "my_customer") != 0) {
		if (cust[0] != 'C' || cust[1] == '\0') {
			api_bad_param(req, "customerId", cust,
			    "C.+|my_customer");
			goto done;
		}
		if (strcmp(cust, t->cid) != 0) {
			sim_api_error(req, 403,
			    "Not Authorized to access this "
			    "resource/api",
			    "global", "forbidden", "PERMISSION_DENIED", NULL,
			    NULL, 0, EP_STAT_ACTIVITIES);
			goto done;
		}
	}
	/* Google's misleading answer for a start beyond retention. */
	if ((start_s != NULL && start_us < now - SIM_RETENTION_US) ||
	    (start_s != NULL && end_s != NULL && start_us > end_us)) {
		sim_api_error(req, 400,
		    "Invalid request: Start time is after "
		    "end time.",
		    "global", "invalid", "INVALID_ARGUMENT", NULL, NULL, 0,
		    EP_STAT_ACTIVITIES);
		goto done;
	}
	qparts[0] = app_s;
	qparts[1] = user_key;
	qparts[2] = start_s;
	qparts[3] = end_s;
	qparts[4] = ev_name;
	qparts[5] = ip_f;
	qparts[6] = evhttp_find_header(&q, "filters");
	qhash = sim_page_query_hash(qparts, 7);
	if (ptok != NULL && ptok[0] != '\0') {
		if (sim_page_decode(ptok, &pos) < 0 || pos.qhash != qhash) {
			sim_api_error(req, 400, "Invalid Value", "global",
			    "invalid", "INVALID_ARGUMENT", "pageToken",
			    "parameter", 0, EP_STAT_ACTIVITIES);
			goto done;
		}
		have_pos = true;
	}

	f = fault_pick(t->cid, app, EP_ACTIVITIES);
	if (f != NULL) {
		log_info("fault tenant=%s app=%s kind=%s", t->cid, app_s,
		    sim_fault_names[f->kind]);
		if (fault_apply(req, f, EP_STAT_ACTIVITIES, tok->sa->project))
			goto done;
	}

	if (!have_pos) {
		pos.cutoff_us = now;
		bt = end_us;
		bu = INT64_MIN;
	} else {
		bt = pos.time_us;
		bu = pos.uq;
	}
	hi = api_lower(a, bt, bu);
	for (i = hi; i > 0; i--) {
		const struct sim_act *x = &a->acts[i - 1];
		int		      k, ne;

		if (x->time_us < start_us)
			break;
		if (x->visible_us > pos.cutoff_us)
			continue;
		if (ev_name != NULL) {
			ne = sim_act_nevents(x);
			for (k = 0; k < ne; k++)
				if (strcmp(sim_act_event_name(x, app, k),
					ev_name) == 0)
					break;
			if (k == ne)
				continue;
		}
		if (strcmp(user_key, "all") != 0 &&
		    strcasecmp(user_key,
			sim_act_actor(t, x, app, abuf, sizeof(abuf))) != 0)
			continue;
		if (ip_f != NULL &&
		    strcmp(ip_f, sim_act_ip(x, ibuf, sizeof(ibuf))) != 0)
			continue;
		if ((long)nhits == max) {
			more = true;
			break;
		}
		hits[nhits++] = i - 1;
	}

	if ((g = sim_gen_new()) == NULL || (b = evbuffer_new()) == NULL)
		fatal("out of memory");
	yajl_gen_map_open(g);
	yg_kv(g, "kind", "admin#reports#activities");
	sim_etag(t->hash,
	    sim_mix64(qhash ^ (uint64_t)pos.cutoff_us ^
		(nhits ? (uint64_t)a->acts[hits[0]].uq : 0)),
	    etag);
	yg_kv(g, "etag", etag);
	if (f != NULL && f->kind == FAULT_REPEAT_TOKEN) {
		if (have_pos)
			snprintf(tokbuf, sizeof(tokbuf), "%s", ptok);
		else {
			struct sim_page_pos p0 = pos;

			p0.time_us = end_us == INT64_MAX ? now + 1000000 :
							   end_us;
			p0.uq = INT64_MIN;
			p0.qhash = qhash;
			(void)sim_page_encode(&p0, tokbuf, sizeof(tokbuf));
		}
		yg_kv(g, "nextPageToken", tokbuf);
	} else if (more) {
		const struct sim_act *last = &a->acts[hits[nhits - 1]];
		struct sim_page_pos   np;

		np.time_us = last->time_us;
		np.uq = last->uq;
		np.cutoff_us = pos.cutoff_us;
		np.qhash = qhash;
		(void)sim_page_encode(&np, tokbuf, sizeof(tokbuf));
		yg_kv(g, "nextPageToken", tokbuf);
	}
	if (nhits > 0) {
		yg_str(g, "items");
		yajl_gen_array_open(g);
		for (i = 0; i < nhits; i++) {
			const struct sim_act *x = &a->acts[hits[i]];

			sim_act_render(g, t, app, x);
			sim.events_served += (uint64_t)sim_act_nevents(x);
			/* Move rendered bytes out now and then. */
			if ((i & 63) == 63 &&
			    yajl_gen_get_buf(g, &out, &outlen) ==
				yajl_gen_status_ok) {
				evbuffer_add(b, out, outlen);
				yajl_gen_clear(g);
			}
		}
		yajl_gen_array_close(g);
		sim.activities_served += nhits;
	}
	yajl_gen_map_close(g);
	if (yajl_gen_get_buf(g, &out, &outlen) == yajl_gen_status_ok)
		evbuffer_add(b, out, outlen);
	sim.pages_served++;
	if (f != NULL && f->kind == FAULT_TRUNCATED_JSON) {
		size_t		 len = evbuffer_get_length(b);
		struct evbuffer *h = evbuffer_new();

		if (h == NULL)
			fatal("out of memory");
		evbuffer_remove_buffer(b, h, len / 2);
		evbuffer_free(b);
		b = h;
	} else if (f != NULL && f->kind == FAULT_BAD_JSON) {
		evbuffer_drain(b, evbuffer_get_length(b));
		evbuffer_add_printf(b,
		    "{\"kind\": \"admin#reports#activities\","
		    " \"etag\": %s, \"items\": [{\"kind\": admin#reports#activity"
		    "}, ]}",
		    etag);
	}
	sim_reply_buf(req, 200, b, EP_STAT_ACTIVITIES);
done:
	if (b != NULL)
		evbuffer_free(b);
	if (g != NULL)
		yajl_gen_free(g);
	evhttp_clear_headers(&q);
	free(user_key);
	free(app_s);
}

void
sim_http_cb(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char		*path = uri ? evhttp_uri_get_path(uri) : NULL;

	reply_delay_ms = 0;
	if (path == NULL)
		path = "/";
	log_debug("request %d %s", (int)evhttp_request_get_command(req), path);
	if (strcmp(path, "/token") == 0)
		http_token(req);
	else if (strncmp(path, API_PREFIX, strlen(API_PREFIX)) == 0)
		http_activities(req, path + strlen(API_PREFIX));
	else if (strncmp(path, "/_sim/", 6) == 0)
		sim_control(req, path + 6);
	else
		sim_api_error(req, 404, "Not Found", "global", "notFound",
		    "NOT_FOUND", NULL, NULL, 0, EP_STAT_OTHER);
	reply_delay_ms = 0;
}
