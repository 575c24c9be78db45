/*
 * lib/google: JWT assertion against a fixed vector (computed with
 * openssl dgst -sha256 -sign from the key below), URL building, the error
 * classification table, and the async client (token cache, one refresh on
 * 401, credential check) against an in-process evhttp server.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "lib/base/util.h"
#include "lib/crypto/crypto.h"
#include "lib/google/google.h"
#include "tests/support/httpserver.h"

static const char test_pem
    [] = "-----BEGIN PRIVATE KEY-----\n"
	 "MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQCrGDN3Ss76mHeb\n"
	 "jVkam+8nm/GTdRMkDPwNSAFuixpKFJXi9Fwpu+vzXQqd9LdtkCV2H0kBtzZxYli3\n"
	 "09w92WfW4i3DDP750HWxTBAAm1gwCcg4ZJqoU3N5razgXpyG7iAufsf1FM+6SULn\n"
	 "ikzoiOdPlnOqKw78GosXupX8F5C1HphF363ELm2jeBzOfgXBr4dzX3KhaeV+aOmH\n"
	 "+mw3L+v8ruS+ofAnAABJ7lPY8GmioQi1hVZldWHFKB2ROFIeLA5waIntNgAW3khJ\n"
	 "i4I+nwv5z4B8CXxmymaqDOtFEWZm3vqn/nkkT8iAmwAIpzruM/4TBaCNhdmShB57\n"
	 "XBqQnI0fAgMBAAECggEADikCmWznlHXp8EXSihE9ydluNPYLj4BDnBXJiIyasGbj\n"
	 "wNTYi9uxu4KHzmrig37amtwb/rhbGSc6kHxIThYgMfimMO5ya9qE4xeYe3Rf6Bnn\n"
	 "KEOrSSMe+4MUO72Y1tH+d9qmUfJW/uPxVZhspRIvkraw+/R0WQkZWe1nXGXW5CZx\n"
	 "WxV+s8B2TQCiQXqVnjcIJpk2qjXmi1aj6usFjbHDBRaNAJfvSve4BOgXt8YQ0xaq\n"
	 "Whi4rgGYDVl8CVa2Gi0ajGtdeGJIAQ9jVVNeWDra8z89PdJ+9JSuBdCW6J50Eo5B\n"
	 "NBNtJLI1tbV8l4FYZ39HEuClo1PsNWSrcwtsL6iHgQKBgQDf70IXwW/OP8oaMtt4\n"
	 "dra41Yvj0TTR/lKF/5PvMVWK6KL9IMyyKiW+17uBoxrHvoI6JxfVDDODiUQFd/lx\n"
	 "zatIgHwL2WlV7RKFbJPTIE7uZzHI9ALoXjJVdpVq+ALQXtPU5KRAE4ICILsB9beh\n"
	 "hXQJru1STgk7Iup2o3DhDxfUlQKBgQDDl/3I7OJlXI5UENWRaJTTQmMq+GSdovUy\n"
	 "X6vw6A5zolIJQvsBcA+7L70s1giT3bm8ZYECKfPM6kLNNE1ALZ0/EaCCbm5ASGig\n"
	 "qIuFys+WfP2ZdqtbD/lcONGFJwu4uKREnWA06A46S7ZZly/K1SFwIsld6zZpIog/\n"
	 "RFZ+dTaZ4wKBgQDNV9iDcB3WQyhQXdJi5HkphKiCf5Sv+0YxGevNqq+GcU0EUM9j\n"
	 "kMKL/cczWR11jHxeVvrDoiyasYRuf1V9xdsK4MbfFr5AzOPu9WGYeEfo1TgRza/c\n"
	 "5IPDWropHMN3z3zv+7miCEFvMhRJ98grlPSS7JUyo9xTHfFiWP1pYy23AQKBgQCC\n"
	 "IppEGPf4oMBBxoGSIZcDiGQarvGiwE2LmoP34S3cWd9jMiF3L2wICxc+wZkraJav\n"
	 "domDOw5vBF410dqkHLVGxR+aKIdKVeLnIbzS48GCSt8gQAh6qgIrDdK5WOU/nfoN\n"
	 "fPgJu2vb9Yv5x9GQjoWU6lA4IMsu4D7ueTVjJfGSKQKBgQCoVNTzcPYsc2AXi7gc\n"
	 "jAPs9hOIIXkD/6fae/CK5dsRmEPHakJw7aLv4PRmIP/YIXhUV/XPP5gI1Wj635Jc\n"
	 "mbonL5bUm69l8Q2T4dvbFT5jDlHQWuEU3gMMAKhdiFOrTjm7LJxmOT5u4hyd06An\n"
	 "etvUff6uen9I2DWcVOC3VOE6+A==\n"
	 "-----END PRIVATE KEY-----\n";

static const char test_jwt
    [] = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdmNAcC5pYW0uZ3NlcnZp"
	 "Y2VhY2NvdW50LmNvbSIsInNjb3BlIjoiaHR0cHM6Ly93d3cuZ29vZ2xlYXBpcy5jb20vY"
	 "XV0aC9hZG1pbi5yZXBvcnRzLmF1ZGl0LnJlYWRvbmx5IiwiYXVkIjoiaHR0cHM6Ly9vYX"
	 "V0aDIuZ29vZ2xlYXBpcy5jb20vdG9rZW4iLCJzdWIiOiJhZG1pbkBleGFtcGxlLmNvbSI"
	 "sImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwfQ.eN4hFO7Nn_fKdPxO6OBi2"
	 "HQz8Et8zZSkEN0MewO42v3EIRt7FXK8Kusdx6EsJ0-c65AO4vKdlfL2EqP1kniW5Yq25x"
	 "qfGIkidn7cIzK6hFQQ2A4cCE6pWzhy3b1MOCA4aZW-I0EnxAX_e2Eaf_hVVONWy0vinj_"
	 "sg7FVGXOzmMtOhGI4m3t0FosTbxk9y86jzuuMBDaqZw9FbLYOCchGCjppXcwjmSshWzqA"
	 "6q-6S5vjbh7_vKitp9tomfEIO4g57NKx6a9TqqONNN63t58owNUFlIOUtsPME1xrC7YM6"
	 "Gr801VlgkKLBEACCQDHnUuf1GYy5NcV4ddun1SVfrSOzw";

static void
test_jwt_vector(void **state)
{
	struct rsa_key *key = NULL;
	char		err[128], *jwt, *claims;

	(void)state;
	assert_int_equal(crypto_init(), 0);
	assert_int_equal(rsa_key_from_pem(test_pem, strlen(test_pem), &key, err,
			     sizeof(err)),
	    0);
	jwt = google_jwt_assertion(key, NULL, "svc@p.iam.gserviceaccount.com",
	    "admin@example.com", GOOGLE_SCOPE_REPORTS,
	    "https://oauth2.googleapis.com/token", 1700000000);
	assert_non_null(jwt);
	assert_string_equal(jwt, test_jwt);
	free(jwt);

	/* No subject: no "sub" claim. */
	claims = google_jwt_claims("a@b.c", "", "s", "u", 5);
	assert_string_equal(claims,
	    "{\"iss\":\"a@b.c\",\"scope\":\"s\",\"aud\":\"u\",\"iat\":5,"
	    "\"exp\":3605}");
	free(claims);
	assert_null(google_jwt_claims(NULL, NULL, "s", "u", 5));
	rsa_key_free(key);
}

static void
test_url(void **state)
{
	char *u;

	(void)state;
	u = google_activities_url("https://admin.googleapis.com/", "login",
	    1710072000000LL, 1710075600123LL, 1000, NULL);
	assert_string_equal(u,
	    "https://admin.googleapis.com/admin/reports/v1/"
	    "activity/users/all/applications/login?startTime="
	    "2024-03-10T12:00:00.000Z&endTime=2024-03-10T13:00:00.123Z"
	    "&maxResults=1000");
	free(u);
	u = google_activities_url("http://127.0.0.1:9", "admin", 0, 0, 1,
	    "A:1710:-12/+=x");
	assert_string_equal(u,
	    "http://127.0.0.1:9/admin/reports/v1/activity/"
	    "users/all/applications/admin?startTime=1970-01-01T00:00:00.000Z"
	    "&maxResults=1&pageToken=A%3A1710%3A-12%2F%2B%3Dx");
	free(u);
	assert_null(google_activities_url("http://x", "", 0, 0, 10, NULL));
	assert_null(google_activities_url("http://x", "a", 0, 0, 0, NULL));
	assert_null(google_activities_url("http://x", "a", 0, 0, 1001, NULL));
}

struct ccase {
	long		  status;
	int		  curl;
	bool		  token;
	bool		  refreshed;
	const char	 *body;
	enum google_class cls;
	bool		  rate;
	const char	 *reason;
	const char	 *diag; /* substring of the diagnosis */
};

#define API_ERR(code, reason)                                             \
	"{\"error\":{\"code\":" #code ",\"message\":\"m\",\"errors\":[{"  \
	"\"message\":\"m\",\"domain\":\"d\",\"reason\":\"" reason "\"}]," \
	"\"status\":\"X\"}}"

static const struct ccase ccases[] = {
	{ 200, 0, false, false, "{}", GOOGLE_OK, false, "", NULL },
	{ 0, 28, false, false, "", GOOGLE_RETRY, false, "timeout", "reach" },
	{ 0, 56, false, false, "", GOOGLE_RETRY, false, "network", NULL },
	{ 403, 0, false, false, API_ERR(403, "rateLimitExceeded"), GOOGLE_RETRY,
	    true, "rateLimitExceeded", "slow down" },
	{ 403, 0, false, false, API_ERR(403, "userRateLimitExceeded"),
	    GOOGLE_RETRY, true, "userRateLimitExceeded", NULL },
	{ 429, 0, false, false, API_ERR(429, "rateLimitExceeded"), GOOGLE_RETRY,
	    true, "rateLimitExceeded", NULL },
	{ 503, 0, false, false, "", GOOGLE_RETRY, true, "http_503", NULL },
	{ 500, 0, false, false, API_ERR(500, "backendError"), GOOGLE_RETRY,
	    false, "backendError", NULL },
	{ 502, 0, false, false, "<html>", GOOGLE_RETRY, false, "http_502",
	    NULL },
	{ 504, 0, false, false, "", GOOGLE_RETRY, false, "http_504", NULL },
	{ 400, 0, true, false,
	    "{\"error\":\"invalid_grant\","
	    "\"error_description\":\"Invalid JWT Signature.\"}",
	    GOOGLE_CREDENTIALS, false, "invalid_grant", "revoked" },
	{ 400, 0, true, false,
	    "{\"error\":\"invalid_grant\","
	    "\"error_description\":\"Invalid JWT: Token must be a short-lived "
	    "token (60 minutes) and in a reasonable timeframe. Check your iat "
	    "and exp values in the JWT claim.\"}",
	    GOOGLE_CREDENTIALS, false, "invalid_grant", "clock skew" },
	{ 400, 0, true, false,
	    "{\"error\":\"invalid_grant\","
	    "\"error_description\":\"Invalid email or User ID\"}",
	    GOOGLE_CREDENTIALS, false, "invalid_grant", "subject" },
	{ 400, 0, true, false,
	    "{\"error\":\"unauthorized_client\","
	    "\"error_description\":\"Client is unauthorized\"}",
	    GOOGLE_CREDENTIALS, false, "unauthorized_client", "delegation" },
	{ 401, 0, true, false,
	    "{\"error\":\"invalid_client\","
	    "\"error_description\":\"The OAuth client was not found.\"}",
	    GOOGLE_CREDENTIALS, false, "invalid_client", "deleted" },
	{ 400, 0, true, false, "{\"error\":\"access_denied\"}",
	    GOOGLE_CREDENTIALS, false, "access_denied", NULL },
	{ 400, 0, true, false, "{\"error\":\"invalid_request\"}", GOOGLE_FATAL,
	    false, "invalid_request", NULL },
	{ 503, 0, true, false, "", GOOGLE_RETRY, true, "http_503", NULL },
	{ 401, 0, false, true, API_ERR(401, "authError"), GOOGLE_CREDENTIALS,
	    false, "authError", "after a refresh" },
	{ 403, 0, false, true, API_ERR(403, "insufficientPermissions"),
	    GOOGLE_CREDENTIALS, false, "insufficientPermissions", "privilege" },
	{ 403, 0, false, true, API_ERR(403, "forbidden"), GOOGLE_CREDENTIALS,
	    false, "forbidden", NULL },
	{ 400, 0, false, false, API_ERR(400, "invalid"), GOOGLE_FATAL, false,
	    "invalid", NULL },
	{ 404, 0, false, false, "not json", GOOGLE_FATAL, false, "http_404",
	    NULL },
};

static void
test_classify(void **state)
{
	struct httpc_resp   r;
	struct google_error e;
	size_t		    i;

	(void)state;
	for (i = 0; i < nitems(ccases); i++) {
		const struct ccase *c = &ccases[i];

		memset(&r, 0, sizeof(r));
		r.status = c->status;
		r.curl_code = c->curl;
		r.body = c->body;
		r.body_len = strlen(c->body);
		r.retry_after_s = c->status == 429 ? 7 : -1;
		if (c->curl != 0)
			util_strlcpy(r.error, "boom", sizeof(r.error));
		google_classify(&r, c->token, c->refreshed, &e);
		if (e.cls != c->cls || e.rate_limited != c->rate ||
		    strcmp(e.reason, c->reason) != 0 ||
		    (c->diag != NULL && strstr(e.diagnosis, c->diag) == NULL))
			fail_msg("case %zu: cls %d rate %d reason '%s' diag "
				 "'%s'",
			    i, e.cls, e.rate_limited, e.reason, e.diagnosis);
		assert_int_equal(e.retry_after_s, c->status == 429 ? 7 : -1);
	}
	/* A truncated 200 is retried. */
	memset(&r, 0, sizeof(r));
	r.status = 200;
	r.truncated = true;
	r.body = "";
	google_classify(&r, false, false, &e);
	assert_int_equal(e.cls, GOOGLE_RETRY);
}

/*
 * An API 403 "no access" explained for the way the token was asked, the
 * advice whole even under Google's longest message (the 422 of add-source
 * used to be cut at 320 characters, in the middle of its advice).
 */
static void
test_explain_access(void **state)
{
	static const char body_sa
	    [] = "{\"error\":{\"code\":403,\"message\":"
		 "\"Not Authorized to access this resource/api\",\"errors\":[{"
		 "\"message\":\"Not Authorized to access this resource/api\","
		 "\"domain\":\"global\",\"reason\":\"forbidden\"}]}}";
	struct httpc_resp   r;
	struct google_error e;
	char		    body[1024], msg[301];
	const char	   *advice_sa =
	    "domain-wide delegation for " GOOGLE_SCOPE_REPORTS
	    " (Admin console > Security > API controls > Domain-wide "
	    "delegation)";
	const char *advice_sub = "or omit subject and assign that role to the "
				 "service account itself";
	const char
	      *email = "a-rather-long-service-account-name-0123456789@"
		       "a-long-project-identifier-0123.iam.gserviceaccount.com";
	size_t n;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.status = 403;
	r.body = body_sa;
	r.body_len = strlen(body_sa);
	google_classify(&r, false, true, &e);
	assert_int_equal(e.cls, GOOGLE_CREDENTIALS);
	assert_true(e.access_denied);
	google_explain_access(&e, email, NULL);
	assert_non_null(strstr(e.diagnosis,
	    "Not Authorized to access this "
	    "resource/api"));
	assert_non_null(strstr(e.diagnosis, "this service account (a-rather"));
	assert_non_null(strstr(e.diagnosis,
	    "has no admin role with the Reports "
	    "privilege, and no subject was given: assign it one"));
	n = strlen(e.diagnosis);
	assert_true(n > strlen(advice_sa));
	assert_string_equal(e.diagnosis + n - strlen(advice_sa), advice_sa);
	/* The longest Google message: still the whole advice. */
	memset(msg, 'x', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	snprintf(body, sizeof(body),
	    "{\"error\":{\"code\":403,\"message\":"
	    "\"%s\",\"errors\":[{\"reason\":\"insufficientPermissions\","
	    "\"message\":\"%s\"}]}}",
	    msg, msg);
	r.body = body;
	r.body_len = strlen(body);
	google_classify(&r, false, true, &e);
	google_explain_access(&e, email, NULL);
	n = strlen(e.diagnosis);
	assert_true(n < sizeof(e.diagnosis) - 1);
	assert_string_equal(e.diagnosis + n - strlen(advice_sa), advice_sa);
	google_classify(&r, false, true, &e);
	google_explain_access(&e, email,
	    "an-administrator-with-a-long-"
	    "name@a-customer-domain-with-a-long-name.example.com");
	n = strlen(e.diagnosis);
	assert_true(n < sizeof(e.diagnosis) - 1);
	assert_non_null(strstr(e.diagnosis,
	    "the admin given as subject (an-"
	    "administrator"));
	assert_string_equal(e.diagnosis + n - strlen(advice_sub), advice_sub);
	/* Other errors keep their diagnosis. */
	r.status = 401;
	google_classify(&r, false, true, &e);
	assert_false(e.access_denied);
	util_strlcpy(msg, e.diagnosis, sizeof(msg));
	google_explain_access(&e, email, NULL);
	assert_string_equal(e.diagnosis, msg);
}

/* The async client against a fake Google. */

struct fake {
	struct test_http srv;
	int		 ntoken;
	int		 nlist;
	int		 token_status; /* 200 or an error */
	int		 list_401;     /* answer 401 this many times */
	int		 list_status;  /* 200 or an error */
	char		 last_auth[256];
};

static void
fake_cb(struct evhttp_request *req, void *arg)
{
	struct fake	*f = arg;
	struct evbuffer *b = evbuffer_new();
	const char	*uri = evhttp_request_get_uri(req);
	const char	*auth;

	if (strcmp(uri, "/token") == 0) {
		f->ntoken++;
		if (f->token_status != 200) {
			evbuffer_add_printf(b,
			    "{\"error\":\"invalid_grant\","
			    "\"error_description\":\"Invalid JWT Signature.\"}");
			evhttp_send_reply(req, f->token_status, "x", b);
		} else {
			evbuffer_add_printf(b,
			    "{\"access_token\":\"tok%d\","
			    "\"expires_in\":3599,\"token_type\":\"Bearer\"}",
			    f->ntoken);
			evhttp_send_reply(req, 200, "OK", b);
		}
	} else {
		f->nlist++;
		auth = evhttp_find_header(evhttp_request_get_input_headers(req),
		    "Authorization");
		util_strlcpy(f->last_auth, auth != NULL ? auth : "",
		    sizeof(f->last_auth));
		if (f->list_401 > 0) {
			f->list_401--;
			evbuffer_add_printf(b, API_ERR(401, "authError"));
			evhttp_send_reply(req, 401, "x", b);
		} else if (f->list_status != 200) {
			evbuffer_add_printf(b, API_ERR(503, "backendError"));
			evhttp_send_reply(req, f->list_status, "x", b);
		} else {
			evbuffer_add_printf(b,
			    "{\"kind\":\"admin#reports#"
			    "activities\",\"items\":[]}");
			evhttp_send_reply(req, 200, "OK", b);
		}
	}
	evbuffer_free(b);
}

static int
fake_setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(crypto_init(), 0);
	assert_int_equal(test_http_start(&f->srv, fake_cb, f), 0);
	f->token_status = 200;
	f->list_status = 200;
	*state = f;
	return 0;
}

static int
fake_teardown(void **state)
{
	struct fake *f = *state;

	test_http_stop(&f->srv);
	free(f);
	return 0;
}

struct pres {
	bool		    done;
	int		    ncalls;
	struct google_error e;
	char		    body[256];
};

static void
page_cb(const char *body, size_t len, const struct google_error *e, void *arg)
{
	struct pres *r = arg;

	r->done = true;
	r->ncalls++;
	r->e = *e;
	if (body != NULL)
		snprintf(r->body, sizeof(r->body), "%.*s", (int)len, body);
}

static void
loop_until(struct fake *f, bool *done)
{
	int64_t deadline = util_mono_ms() + 10000;

	while (!*done && util_mono_ms() < deadline)
		event_base_loop(f->srv.base, EVLOOP_ONCE);
	assert_true(*done);
}

static struct google_client *
fake_client(struct fake *f)
{
	struct google_client_opts o;
	struct google_client	 *c = NULL;
	char			  tu[96], err[128];

	snprintf(tu, sizeof(tu), "%s/token", f->srv.url);
	memset(&o, 0, sizeof(o));
	o.httpc = f->srv.hc;
	o.token_url = tu;
	o.api_base = f->srv.url;
	o.client_email = "svc@p.iam.gserviceaccount.com";
	o.private_key_pem = test_pem;
	o.subject = "admin@example.com";
	o.timeout_ms = 5000;
	assert_int_equal(google_client_new(&o, &c, err, sizeof(err)), 0);
	return c;
}

static void
test_client_token_cache(void **state)
{
	struct fake	     *f = *state;
	struct google_client *c = fake_client(f);
	struct pres	      r1, r2, r3;

	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	/* Two pages at once share one token exchange. */
	assert_int_equal(
	    google_list_page(c, "login", 1, 2, 1000, NULL, page_cb, &r1, NULL),
	    0);
	assert_int_equal(
	    google_list_page(c, "login", 1, 2, 1000, "P1", page_cb, &r2, NULL),
	    0);
	assert_false(r1.done);
	loop_until(f, &r1.done);
	loop_until(f, &r2.done);
	assert_int_equal(r1.e.cls, GOOGLE_OK);
	assert_int_equal(r2.e.cls, GOOGLE_OK);
	assert_non_null(strstr(r1.body, "admin#reports#activities"));
	assert_int_equal(f->ntoken, 1);
	assert_string_equal(f->last_auth, "Bearer tok1");

	/* A 401 with a cached token: one refresh, then success. */
	f->list_401 = 1;
	memset(&r3, 0, sizeof(r3));
	assert_int_equal(
	    google_list_page(c, "login", 1, 2, 1000, NULL, page_cb, &r3, NULL),
	    0);
	loop_until(f, &r3.done);
	assert_int_equal(r3.e.cls, GOOGLE_OK);
	assert_int_equal(f->ntoken, 2);
	assert_string_equal(f->last_auth, "Bearer tok2");

	/* A 401 that survives the refresh is a credentials error. */
	f->list_401 = 5;
	memset(&r3, 0, sizeof(r3));
	google_client_forget_token(c);
	assert_int_equal(
	    google_list_page(c, "login", 1, 2, 1000, NULL, page_cb, &r3, NULL),
	    0);
	loop_until(f, &r3.done);
	assert_int_equal(r3.e.cls, GOOGLE_CREDENTIALS);
	assert_int_equal(r3.ncalls, 1);
	f->list_401 = 0;

	/* 503: retry, rate limited. */
	f->list_status = 503;
	memset(&r3, 0, sizeof(r3));
	assert_int_equal(
	    google_list_page(c, "login", 1, 2, 1000, NULL, page_cb, &r3, NULL),
	    0);
	loop_until(f, &r3.done);
	assert_int_equal(r3.e.cls, GOOGLE_RETRY);
	assert_true(r3.e.rate_limited);
	f->list_status = 200;

	/* Token refused. */
	f->token_status = 400;
	google_client_forget_token(c);
	memset(&r3, 0, sizeof(r3));
	assert_int_equal(
	    google_list_page(c, "login", 1, 2, 1000, NULL, page_cb, &r3, NULL),
	    0);
	loop_until(f, &r3.done);
	assert_int_equal(r3.e.cls, GOOGLE_CREDENTIALS);
	assert_string_equal(r3.e.reason, "invalid_grant");
	assert_null(strstr(r3.e.diagnosis, "BEGIN"));
	google_client_free(c);
}

/* Freeing the client from inside its own callback is safe. */
struct freer {
	struct google_client *c;
	bool		      done;
};

static void
free_cb(const char *body, size_t len, const struct google_error *e, void *arg)
{
	struct freer *fr = arg;

	(void)body;
	(void)len;
	(void)e;
	fr->done = true;
	google_client_free(fr->c);
}

static void
test_client_free_in_cb(void **state)
{
	struct fake *f = *state;
	struct freer fr;
	struct pres  r2;

	memset(&r2, 0, sizeof(r2));
	f->token_status = 400; /* both ops fail in order; the first frees */
	fr.c = fake_client(f);
	fr.done = false;
	assert_int_equal(
	    google_list_page(fr.c, "login", 1, 2, 10, NULL, free_cb, &fr, NULL),
	    0);
	assert_int_equal(
	    google_list_page(fr.c, "login", 1, 2, 10, NULL, page_cb, &r2, NULL),
	    0);
	loop_until(f, &fr.done);
	/* the second op was cancelled with the client */
	event_base_loop(f->srv.base, EVLOOP_NONBLOCK);
	assert_int_equal(r2.ncalls, 0);
}

struct cres {
	bool			 done;
	enum google_check_result r;
	char			 reason[64];
	char			 diag[320];
};

static void
check_cb(enum google_check_result r, const char *reason, const char *diagnosis,
    void *arg)
{
	struct cres *c = arg;

	c->done = true;
	c->r = r;
	util_strlcpy(c->reason, reason, sizeof(c->reason));
	util_strlcpy(c->diag, diagnosis, sizeof(c->diag));
}

static void
run_check(struct fake *f, struct cres *res)
{
	struct google_check_opts o;
	const char		*apps[] = { "login", "admin", "token" };
	char			 tu[96], err[128];

	snprintf(tu, sizeof(tu), "%s/token", f->srv.url);
	memset(&o, 0, sizeof(o));
	memset(res, 0, sizeof(*res));
	o.httpc = f->srv.hc;
	o.token_url = tu;
	o.api_base = f->srv.url;
	o.client_email = "svc@p.iam.gserviceaccount.com";
	o.private_key_pem = test_pem;
	o.subject = "admin@example.com";
	o.apps = apps;
	o.napps = nitems(apps);
	assert_int_equal(
	    google_check_credentials(&o, check_cb, res, NULL, err, sizeof(err)),
	    0);
	loop_until(f, &res->done);
}

static void
test_check(void **state)
{
	struct fake		*f = *state;
	struct google_check_opts o;
	struct cres		 res;
	const char		*apps[] = { "login" };
	char			 err[128];

	run_check(f, &res);
	assert_int_equal(res.r, GOOGLE_CHECK_OK);
	assert_int_equal(f->nlist, 3);
	assert_int_equal(f->ntoken, 1);

	f->token_status = 400;
	run_check(f, &res);
	assert_int_equal(res.r, GOOGLE_CHECK_REFUSED);
	assert_string_equal(res.reason, "invalid_grant");
	assert_non_null(strstr(res.diag, "revoked"));

	f->token_status = 200;
	f->list_status = 503;
	run_check(f, &res);
	assert_int_equal(res.r, GOOGLE_CHECK_UNREACHABLE);

	/* A bad key is refused at once, with no callback. */
	memset(&o, 0, sizeof(o));
	o.httpc = f->srv.hc;
	o.token_url = "http://127.0.0.1:1/token";
	o.api_base = "http://127.0.0.1:1";
	o.client_email = "a@b.c";
	o.private_key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n"
			    "-----END PRIVATE KEY-----\n";
	o.apps = apps;
	o.napps = 1;
	assert_int_equal(google_check_credentials(&o, check_cb, &res, NULL, err,
			     sizeof(err)),
	    -EINVAL);
	assert_null(strstr(err, "AAAA"));
}

static void
test_project_of(void **state)
{
	static const struct {
		const char *email, *project;
	} cases[] = {
		{ "relay@acme-audit.iam.gserviceaccount.com", "acme-audit" },
		{ "acme-old@appspot.gserviceaccount.com", "acme-old" },
		{ "123456789-compute@developer.gserviceaccount.com",
		    "123456789" },
		{ "sa@example.com", "example.com" },
		{ "noat", "noat" },
		{ "x@.iam.gserviceaccount.com", ".iam.gserviceaccount.com" },
		{ "", "" },
	};
	char   out[64], tiny[4];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		google_project_of(cases[i].email, out, sizeof(out));
		assert_string_equal(out, cases[i].project);
	}
	google_project_of("relay@acme-audit.iam.gserviceaccount.com", tiny,
	    sizeof(tiny));
	assert_string_equal(tiny, "acm");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jwt_vector),
		cmocka_unit_test(test_url),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_explain_access),
		cmocka_unit_test(test_project_of),
		cmocka_unit_test_setup_teardown(test_client_token_cache,
		    fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_client_free_in_cb,
		    fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_check, fake_setup,
		    fake_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
