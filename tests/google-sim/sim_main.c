/*
 * auditrelay-google-sim: a faithful Google Workspace simulator for the
 * tests, the demo and the benchmarks of auditrelay. One thread, one
 * libevent loop: OAuth token endpoint, Reports API activities.list and a
 * control API under /_sim/. See --help and tests/google-sim/README.md.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/listener.h>

#include "sim.h"

struct sim sim;

static const char usage_text[] =
    "usage: auditrelay-google-sim --listen 127.0.0.1:PORT [options]\n"
    "\n"
    "A Google Workspace simulator: the OAuth 2.0 token endpoint (POST /token),\n"
    "the Admin SDK Reports API activities.list\n"
    "(GET /admin/reports/v1/activity/users/{userKey}/applications/{app}) and a\n"
    "control API under /_sim/, all on one address. Point auditrelay at it with\n"
    "AUDITRELAY_GOOGLE_TOKEN_URL=http://HOST:PORT/token and\n"
    "AUDITRELAY_GOOGLE_API_BASE=http://HOST:PORT.\n"
    "\n"
    "Options:\n"
    "  -l, --listen HOST:PORT   address to serve (PORT 0 picks a free port; the\n"
    "                           line \"listening on HOST:PORT\" is printed on\n"
    "                           stdout with the real port). Required.\n"
    "  -s, --seed N             seed of every generator and of the fault dice\n"
    "                           (default 1): same seed, same activities.\n"
    "  -t, --time-scale X       compress ingestion lag: a lag of L sim seconds\n"
    "                           takes L/X real seconds (default 1). id.time\n"
    "                           stays the real wall clock, so clients may use\n"
    "                           their own clock for startTime/endTime; only\n"
    "                           lags (and injected visibility delays) shrink.\n"
    "  -r, --rate R             activities per second generated for login,\n"
    "                           admin, drive and token of every new tenant\n"
    "                           (default 0: set rates over the control API).\n"
    "      --no-lag             every activity is visible at once.\n"
    "      --token-ttl S        real lifetime of access tokens (default 3599;\n"
    "                           expires_in always says 3599, like Google).\n"
    "      --quota-per-minute N Reports API requests per service account per\n"
    "                           minute before 403 rateLimitExceeded (default 0:\n"
    "                           no quota).\n"
    "      --token-url URL      the audience JWTs must name (default\n"
    "                           http://HOST:PORT/token; the real\n"
    "                           https://oauth2.googleapis.com/token is always\n"
    "                           accepted too).\n"
    "  -v, --verbose            debug logging (one line per request).\n"
    "  -h, --help               this text.  -V, --version  the version.\n"
    "\n"
    "Control API (JSON bodies; errors are {\"error\": \"...\"}):\n"
    "  GET  /_sim/health                       {\"ok\":true}\n"
    "  GET|POST /_sim/settings                 {tokenUrl, quotaPerMinute,\n"
    "                                          tokenTtlSeconds, timeScale, noLag}\n"
    "  POST /_sim/tenants                      {\"customerId\":\"C01abc\",\n"
    "                                          \"domain\":\"example.com\"}\n"
    "  GET  /_sim/tenants[/{cid}]              tenants, keys, admins, apps\n"
    "  POST /_sim/tenants/{cid}/service-accounts  {name?, projectId?,\n"
    "       privateKey? (PKCS#8 PEM), delegation?: true, adminRole?: false}\n"
    "       -> a Google service-account key file (RSA 2048 generated unless\n"
    "       given); delegation: domain-wide delegation for the audit.readonly\n"
    "       scope (a JWT with sub); adminRole: an admin role with the Reports\n"
    "       privilege assigned to the account itself (a JWT without sub;\n"
    "       without it such a token gets 403 Not Authorized to access this\n"
    "       resource/api)\n"
    "  POST /_sim/tenants/{cid}/service-accounts/{email}  {delegation: bool,\n"
    "       adminRole: bool, delegatedScopes: \"s1 s2\", revokeKeys: true,\n"
    "       revokeKey: \"<id>\", restoreKeys: true}\n"
    "  POST /_sim/tenants/{cid}/service-accounts/{email}/keys  add a key\n"
    "  POST /_sim/tenants/{cid}/admins         {\"email\", \"privileged\"?: true}\n"
    "       (create or update; privileged=false -> 403 insufficientPermissions)\n"
    "  POST /_sim/tenants/{cid}/applications/{app}  {rate, paused, lag:\n"
    "       {minSeconds, meanSeconds, tailProbability, tailMaxSeconds}}\n"
    "       lag = min + Exp(mean), or with tailProbability uniform[min,tailMax]\n"
    "  POST /_sim/tenants/{cid}/pause | /resume  all generators of the tenant\n"
    "  POST /_sim/tenants/{cid}/inject         {application?, activities:[...],\n"
    "       visibleAfterSeconds?: S, useLag?: bool}; Google-shaped activities,\n"
    "       id.customerId/applicationName are set, id.time defaults to now,\n"
    "       id.uniqueQualifier is drawn when absent\n"
    "  POST /_sim/tokens/revoke                {tenant?, clientEmail?}\n"
    "  POST /_sim/faults                       {kind, tenant?, application?,\n"
    "       endpoint?: activities|token|any, probability?: 1, count?: N,\n"
    "       durationSeconds?: S, retryAfter?: S, delayMs?: MS} -> {\"id\"}\n"
    "       kinds: rate_limit user_rate_limit (403), 429, 503, 500, slow,\n"
    "       reset (TCP RST), repeat_token, bad_json, truncated_json,\n"
    "       revoked_key (invalid_grant), no_delegation (unauthorized_client)\n"
    "       (the first matching fault that fires answers the request)\n"
    "  GET  /_sim/faults;  DELETE /_sim/faults[?id=N]\n"
    "  GET  /_sim/events?tenant=&application=&visible=0|1  ground truth: every\n"
    "       event ever generated or injected with its key (customerId,\n"
    "       applicationName, time, uniqueQualifier, eventIndex, eventName),\n"
    "       visibleAt and visible\n"
    "  GET  /_sim/stats                        requests by endpoint and status,\n"
    "       pages/activities/events served, stored counts\n"
    "  POST /_sim/sign-jwt                     {clientEmail, subject?, claims?}\n"
    "       test helper: an assertion signed with the account's first key\n";

static void
usage(FILE *f, int status)
{
	fputs(usage_text, f);
	exit(status);
}

static void
gen_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	sim_gen_tick();
}

static void
signal_cb(evutil_socket_t fd, short what, void *arg)
{
	log_info("stopping on signal %d", (int)fd);
	event_base_loopexit(sim.base, NULL);
}

/* Bind host:port; fill sim.listen with the real address. */
static void
sim_bind(const char *spec)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in	    sin;
	socklen_t		    slen = sizeof(sin);
	char			    host[64], *colon;
	long			    port;
	char			   *end;

	if (strlen(spec) >= sizeof(host) ||
	    (colon = strrchr(spec, ':')) == NULL)
		fatal_status(78, "--listen wants HOST:PORT, got %s", spec);
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 0 || port > 65535)
		fatal_status(78, "bad port in --listen %s", spec);
	bs = evhttp_bind_socket_with_handle(sim.http, host, (uint16_t)port);
	if (bs == NULL)
		fatal("cannot listen on %s: %s", spec, strerror(errno));
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin,
		&slen) < 0)
		fatal("getsockname: %s", strerror(errno));
	snprintf(sim.listen, sizeof(sim.listen), "%s:%u", host,
	    (unsigned)ntohs(sin.sin_port));
}

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "seed", required_argument, NULL, 's' },
		{ "time-scale", required_argument, NULL, 't' },
		{ "rate", required_argument, NULL, 'r' },
		{ "no-lag", no_argument, NULL, 'N' },
		{ "token-ttl", required_argument, NULL, 'T' },
		{ "quota-per-minute", required_argument, NULL, 'Q' },
		{ "token-url", required_argument, NULL, 'U' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char    *listen_spec = NULL, *token_url = NULL;
	struct event  *tick, *sigint, *sigterm;
	struct timeval tv = { 0, 50000 };
	int	       c, verbose = 0;
	char	      *end;

	memset(&sim, 0, sizeof(sim));
	sim.seed = 1;
	sim.time_scale = 1.0;
	sim.token_ttl = 3599;
	while ((c = getopt_long(argc, argv, "l:s:t:r:vhV", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen_spec = optarg;
			break;
		case 's':
			sim.seed = strtoull(optarg, &end, 10);
			if (*end != '\0')
				usage(stderr, 78);
			break;
		case 't':
			sim.time_scale = strtod(optarg, &end);
			if (*end != '\0' || !(sim.time_scale > 0))
				usage(stderr, 78);
			break;
		case 'r':
			sim.default_rate = strtod(optarg, &end);
			if (*end != '\0' || sim.default_rate < 0)
				usage(stderr, 78);
			break;
		case 'N':
			sim.no_lag = true;
			break;
		case 'T':
			sim.token_ttl = atoi(optarg);
			if (sim.token_ttl < 1)
				usage(stderr, 78);
			break;
		case 'Q':
			sim.quota_per_minute = (unsigned)atoi(optarg);
			break;
		case 'U':
			token_url = optarg;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout, 0);
			break;
		case 'V':
			printf("auditrelay-google-sim %s\n", AR_VERSION);
			return 0;
		default:
			usage(stderr, 78);
		}
	}
	if (listen_spec == NULL || optind != argc)
		usage(stderr, 78);
	log_init("auditrelay-google-sim", verbose);
	if (crypto_init() < 0)
		fatal("libgcrypt initialisation failed");
	signal(SIGPIPE, SIG_IGN);
	sim.fault_rng = sim.seed * 0x9e3779b97f4a7c15ULL + 17;
	sim.started_us = sim_now_us();
	if ((sim.base = event_base_new()) == NULL ||
	    (sim.http = evhttp_new(sim.base)) == NULL)
		fatal("libevent initialisation failed");
	evhttp_set_allowed_methods(sim.http,
	    EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
	evhttp_set_max_body_size(sim.http, 64 * 1024 * 1024);
	evhttp_set_timeout(sim.http, 120);
	evhttp_set_gencb(sim.http, sim_http_cb, NULL);
	sim_bind(listen_spec);
	if (token_url != NULL)
		snprintf(sim.token_url, sizeof(sim.token_url), "%s", token_url);
	else
		snprintf(sim.token_url, sizeof(sim.token_url),
		    "http://%s/token", sim.listen);

	tick = event_new(sim.base, -1, EV_PERSIST, gen_timer_cb, NULL);
	sigint = evsignal_new(sim.base, SIGINT, signal_cb, NULL);
	sigterm = evsignal_new(sim.base, SIGTERM, signal_cb, NULL);
	if (tick == NULL || sigint == NULL || sigterm == NULL ||
	    event_add(tick, &tv) < 0 || event_add(sigint, NULL) < 0 ||
	    event_add(sigterm, NULL) < 0)
		fatal("libevent event setup failed");

	printf("listening on %s\n", sim.listen);
	fflush(stdout);
	log_info("listening on %s seed=%" PRIu64 " time-scale=%g token-url=%s",
	    sim.listen, sim.seed, sim.time_scale, sim.token_url);
	event_base_dispatch(sim.base);

	event_free(tick);
	event_free(sigint);
	event_free(sigterm);
	evhttp_free(sim.http);
	event_base_free(sim.base);
	log_info("stopped");
	return 0;
}
