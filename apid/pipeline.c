/*
 * The add/rotate/patch pipeline. See pipeline.h.
 *
 *   START -------------------------------------------+ no callback, an
 *     | callback host is a name,                      | address literal,
 *     | async resolver                                | or a name the
 *     v                                               | blocking resolver
 *   RESOLVING --(the resolver answers)--> ADDRESSES <-+ found public
 *                                           |    \
 *                                ADD, CREDS |     `--- PATCH ----+
 *                                           v                    |
 *                                         GOOGLE                 |
 *                                           |                    |
 *                                           v                    |
 *                                        CHECKING                |
 *                                           | (Google answers)   |
 *                                           v                    |
 *                                        VERDICT ---(ok)---> COMMIT
 *                                                               |
 *                                                               v
 *                                                            STORING
 *                                                               | (worker)
 *                                                               v
 *                                                             DONE
 *
 * A state may go to DONE instead, having answered: START (a name the
 * blocking resolver refuses: 400), ADDRESSES (client gone; the host does
 * not resolve or is not public: 400), GOOGLE (the check cannot start:
 * 400), VERDICT (client gone: nothing stored; refused: 422; Google
 * unreachable: 503 with Retry-After), COMMIT (client gone). COMMIT is the
 * endpoint's (sources.c): seal, store, reply; its store work runs on a
 * worker thread (STORING) and pipe_committed() ends it. DONE frees the
 * pipe.
 *
 * pipe_step() makes every transition. Entering RESOLVING or CHECKING it
 * returns; the resolver's or Google's callback records the answer and
 * defers the next step to the event loop (never continuing from inside a
 * library's call, which may answer at once).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/util.h>

#include "apid/apid.h"
#include "apid/http.h"
#include "apid/pipeline.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/net/netaddr.h"
#include "runtime/child.h"

#define PIPE_GOOGLE_TIMEOUT_MS 15000

static void pipe_step(struct pipe *p);

struct pipe *
pipe_new(struct areq *a, enum pipe_kind kind, pipe_commit_fn commit)
{
	struct pipe *p;

	if (apid.inflight >= APID_ASYNC_MAX) {
		http_header(a, "Retry-After", "5");
		http_error(a, 503, "busy", NULL,
		    "too many checks in "
		    "progress; retry in a few seconds");
		return NULL;
	}
	p = util_xcalloc(1, sizeof(*p));
	p->kind = kind;
	p->state = PIPE_START;
	p->a = a;
	p->commit = commit;
	apid.inflight++;
	return p;
}

static void
pipe_free(struct pipe *p)
{
	src_input_clear(&p->in);
	apid.inflight--;
	free(p);
}

void
pipe_start(struct pipe *p)
{
	p->t0 = util_mono_ms();
	pipe_step(p);
}

void
pipe_committed(struct pipe *p)
{
	p->state = PIPE_DONE;
	pipe_step(p);
}

static void
pipe_step_cb(evutil_socket_t fd, short what, void *arg)
{
	pipe_step(arg);
}

/* Run the next step from the event loop. */
static void
pipe_defer(struct pipe *p)
{
	struct timeval tv = { 0, 0 };

	if (event_base_once(child_base(), -1, EV_TIMEOUT, pipe_step_cb, p,
		&tv) != 0)
		fatal("event_base_once failed");
}

static void
pipe_dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct pipe	       *p = arg;
	struct evutil_addrinfo *ai;

	p->dns_result = result;
	p->dns_public = true;
	for (ai = res; result == 0 && ai != NULL; ai = ai->ai_next) {
		p->naddrs++;
		if (!netaddr_is_public(ai->ai_addr))
			p->dns_public = false;
	}
	if (res != NULL)
		evutil_freeaddrinfo(res);
	p->dns_done = true;
	pipe_defer(p);
}

static void
pipe_google_cb(enum google_check_result r, const char *reason,
    const char *diagnosis, void *arg)
{
	struct pipe *p = arg;

	p->g_result = r;
	util_strlcpy(p->g_reason, reason ? reason : "", sizeof(p->g_reason));
	util_strlcpy(p->g_diag, diagnosis ? diagnosis : "", sizeof(p->g_diag));
	p->g_done = true;
	pipe_defer(p);
}

/* True when the callback host is a name (not absent, not a literal). */
static bool
pipe_host_is_name(const struct pipe *p)
{
	return p->in.has_callback && !p->in.cb_literal;
}

/*
 * START: ask the asynchronous resolver about a host name, or check it
 * with the blocking one when there is none. The next state.
 */
static enum pipe_state
pipe_resolve(struct pipe *p)
{
	struct evutil_addrinfo hints;
	char		       err[256];
	int		       rc;

	if (!pipe_host_is_name(p))
		return PIPE_ADDRESSES;
	if (apid.dns != NULL) {
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		p->resolved = true;
		evdns_getaddrinfo(apid.dns, p->in.cb_host, NULL, &hints,
		    pipe_dns_cb, p);
		return PIPE_RESOLVING;
	}
	rc = netaddr_check_host(p->in.cb_host,
	    config_bool(child_config(), CONF_DELIVERY_ALLOW_PRIVATE_NETWORKS),
	    err, sizeof(err));
	if (rc != 0) {
		http_error(p->a, 400,
		    rc == -EHOSTUNREACH ? "forbidden_address" : "invalid_field",
		    "callbackUrl", "callbackUrl: %s", err);
		return PIPE_DONE;
	}
	return PIPE_ADDRESSES;
}

/* ADDRESSES: what the resolver said, when it was asked. */
static enum pipe_state
pipe_check_addresses(struct pipe *p)
{
	if (http_gone(p->a)) {
		http_done(p->a);
		return PIPE_DONE;
	}
	if (p->resolved && (p->dns_result != 0 || p->naddrs == 0)) {
		http_error(p->a, 400, "unresolvable_host", "callbackUrl",
		    "callbackUrl: the host \"%.200s\" does not resolve (%s)",
		    p->in.cb_host,
		    p->dns_result ? evutil_gai_strerror(p->dns_result) :
				    "no address");
		return PIPE_DONE;
	}
	if (p->resolved && !p->dns_public &&
	    !config_bool(child_config(),
		CONF_DELIVERY_ALLOW_PRIVATE_NETWORKS)) {
		http_error(p->a, 400, "forbidden_address", "callbackUrl",
		    "callbackUrl: the host resolves to a non-public address "
		    "(loopback, private, link-local, CGNAT, multicast or "
		    "reserved); set AUDITRELAY_DELIVERY_ALLOW_PRIVATE_NETWORKS"
		    "=1 to allow private networks");
		return PIPE_DONE;
	}
	return p->kind == PIPE_PATCH ? PIPE_COMMIT : PIPE_GOOGLE;
}

/* GOOGLE: start the credentials check. */
static enum pipe_state
pipe_ask_google(struct pipe *p)
{
	struct google_check_opts o;
	const struct config	*cfg = child_config();
	char			 err[256];

	memset(&o, 0, sizeof(o));
	o.httpc = apid.httpc;
	o.token_url = config_str(cfg, CONF_GOOGLE_TOKEN_URL);
	o.api_base = config_str(cfg, CONF_GOOGLE_API_BASE);
	o.client_email = p->in.creds.client_email;
	o.private_key_pem = p->in.creds.private_key;
	o.private_key_id = p->in.creds.private_key_id;
	o.subject = p->in.creds.subject;
	o.apps = (const char *const *)p->in.apps;
	o.napps = p->in.napps;
	o.timeout_ms = PIPE_GOOGLE_TIMEOUT_MS;
	if (google_check_credentials(&o, pipe_google_cb, p, NULL, err,
		sizeof(err)) != 0) {
		http_error(p->a, 400, "invalid_field",
		    p->kind == PIPE_ADD ? "credentials.privateKey" :
					  "privateKey",
		    "%s", err);
		return PIPE_DONE;
	}
	return PIPE_CHECKING;
}

/* True (after freeing the request) when the client went away. */
static bool
pipe_client_left(struct pipe *p)
{
	if (!http_gone(p->a))
		return false;
	/* Nobody would learn the id or the secret: store nothing. */
	log_info("client went away before the answer; nothing stored");
	http_done(p->a);
	return true;
}

/* VERDICT: Google's answer, counted; only ok goes on. */
static enum pipe_state
pipe_verdict(struct pipe *p)
{
	if (pipe_client_left(p))
		return PIPE_DONE;
	switch (p->g_result) {
	case GOOGLE_CHECK_OK:
		apid.google_checks[0]++;
		return PIPE_COMMIT;
	case GOOGLE_CHECK_REFUSED:
		apid.google_checks[1]++;
		log_info("Google refused the credentials: %s%s%s client=%s",
		    p->g_reason, p->id[0] != '\0' ? " source=" : "", p->id,
		    p->in.creds.client_email);
		if (p->g_diag[0] != '\0')
			http_error(p->a, 422, "credentials_refused",
			    "credentials", "%s", p->g_diag);
		else
			http_error(p->a, 422, "credentials_refused",
			    "credentials",
			    "Google refused the credentials "
			    "(%s)",
			    p->g_reason);
		return PIPE_DONE;
	default:
		apid.google_checks[2]++;
		log_warn("cannot check credentials with Google: %s; nothing "
			 "stored, the client may retry%s%s client=%s",
		    p->g_reason, p->id[0] != '\0' ? " source=" : "", p->id,
		    p->in.creds.client_email);
		http_header(p->a, "Retry-After", "30");
		http_error(p->a, 503, "google_unavailable", NULL,
		    "Google could "
		    "not be reached to check the credentials (%s): %s; nothing "
		    "was stored, retry later",
		    p->g_reason, p->g_diag);
		return PIPE_DONE;
	}
}

/*
 * Run p from its state until it waits for an answer or is done (then p is
 * freed). Every transition of the pipeline is made here.
 */
static void
pipe_step(struct pipe *p)
{
	for (;;) {
		switch (p->state) {
		case PIPE_START:
			p->state = pipe_resolve(p);
			if (p->state == PIPE_RESOLVING)
				return; /* pipe_dns_cb defers a step */
			break;
		case PIPE_RESOLVING:
			if (!p->dns_done)
				return;
			p->state = PIPE_ADDRESSES;
			break;
		case PIPE_ADDRESSES:
			p->state = pipe_check_addresses(p);
			break;
		case PIPE_GOOGLE:
			p->state = pipe_ask_google(p);
			if (p->state == PIPE_CHECKING)
				return; /* pipe_google_cb defers */
			break;
		case PIPE_CHECKING:
			if (!p->g_done)
				return;
			p->state = PIPE_VERDICT;
			break;
		case PIPE_VERDICT:
			p->state = pipe_verdict(p);
			break;
		case PIPE_COMMIT:
			if (pipe_client_left(p)) {
				p->state = PIPE_DONE;
				break;
			}
			/* The commit calls pipe_committed(), maybe at once. */
			p->state = PIPE_STORING;
			p->commit(p);
			return;
		case PIPE_STORING:
			return;
		case PIPE_DONE:
			pipe_free(p);
			return;
		}
	}
}
