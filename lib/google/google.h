/*
 * Google service-account client for the Admin SDK Reports API, shared by
 * fetcherd (activities.list paging) and apid (credential check before a
 * source is stored).
 *
 * - JWT bearer assertion (RFC 7523) signed RS256 with lib/crypto/crypto.h,
 *   exchanged at the configured token URL; the access token is cached
 *   until GOOGLE_TOKEN_MARGIN_S before its expires_in, refreshed once when
 *   the API answers 401.
 * - activities.list URLs with startTime/endTime/maxResults/pageToken.
 * - Classification of every failure into RETRY (rate limits, 5xx,
 *   transport), CREDENTIALS (revoked/deleted key, delegation missing,
 *   admin lacks privilege, clock skew ...) with a diagnosis for a person,
 *   or FATAL (anything else that retrying will not fix).
 *
 * Library code: never logs above debug, never exits, never puts a key or
 * token into an error string. Requests go to operator-configured URLs
 * (token URL, API base), so the public-address check of httpc is skipped
 * for them (tests and on-prem proxies are on loopback).
 */
#ifndef AR_LIB_GOOGLE_H
#define AR_LIB_GOOGLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/net/httpc.h"

struct rsa_key;

#define GOOGLE_SCOPE_REPORTS \
	"https://www.googleapis.com/auth/admin.reports.audit.readonly"
#define GOOGLE_TOKEN_MARGIN_S 120 /* refresh this long before expiry */
#define GOOGLE_JWT_LIFETIME_S 3600
#define GOOGLE_MAX_RESULTS    1000
#define GOOGLE_RETENTION_DAYS 180  /* Reports API keeps ~6 months */
#define GOOGLE_DIAG_MAX	      1024 /* a diagnosis with its advice, whole */

enum google_class {
	GOOGLE_OK = 0,
	GOOGLE_RETRY,	    /* transient: back off and try again */
	GOOGLE_CREDENTIALS, /* Google refuses these credentials */
	GOOGLE_FATAL	    /* a request we make wrongly, bad reply ... */
};

struct google_error {
	enum google_class cls;
	long		  status;	 /* HTTP status, 0: transport */
	bool		  rate_limited;	 /* slow every source of the client */
	int64_t		  retry_after_s; /* -1: none given */
	char		  reason
	    [64]; /* "invalid_grant", "rateLimitExceeded", "http_503", "timeout" ... */
	/* For a person, whole; no secrets. */
	char diagnosis[GOOGLE_DIAG_MAX];
	/* An API 403: the caller lacks the Reports privilege. */
	bool access_denied;
	char google_msg[160]; /* Google's words */
};

/*
 * JWT claims of the assertion: {"iss":client_email,"scope":scope,
 * "aud":aud,"sub":subject,"iat":now_s,"exp":now_s+GOOGLE_JWT_LIFETIME_S}
 * (sub omitted when subject is NULL or ""). malloc'd, NULL on failure.
 */
char *google_jwt_claims(const char *client_email, const char *subject,
    const char *scope, const char *aud, int64_t now_s);
/* Signed assertion for those claims; malloc'd, NULL on failure. */
char *google_jwt_assertion(const struct rsa_key *key, const char *kid,
    const char *client_email, const char *subject, const char *scope,
    const char *aud, int64_t now_s);
/*
 * URL of activities.list: <api_base>/admin/reports/v1/activity/users/all/
 * applications/<app>?startTime=..&endTime=..&maxResults=..[&pageToken=..]
 * (times RFC 3339 with milliseconds, UTC; end_ms <= 0 omits endTime;
 * pageToken URL-escaped). malloc'd, NULL on failure.
 */
char *google_activities_url(const char *api_base, const char *app,
    int64_t start_ms, int64_t end_ms, int max_results, const char *page_token);

/*
 * Classify a reply. token_endpoint: resp came from the token URL.
 * after_refresh: a 401/403 from the API that happened with a freshly
 * exchanged token (so it is not a stale token). Fills *e (cls GOOGLE_OK
 * for a 2xx).
 */
void google_classify(const struct httpc_resp *resp, bool token_endpoint,
    bool after_refresh, struct google_error *e);

/*
 * Rewrite the diagnosis of an API 403 "no access to the reports" (e->
 * access_denied) for the way the token was asked: with a subject (the
 * admin impersonated lacks the privilege) or without one (the service
 * account itself has no admin role with the Reports privilege). The
 * advice is always whole. Other errors are left alone.
 */
void google_explain_access(struct google_error *e, const char *client_email,
    const char *subject);

/*
 * The Google Cloud project a service account's quota is counted in, from
 * its e-mail: NAME@PROJECT.iam.gserviceaccount.com, PROJECT@appspot.
 * gserviceaccount.com, NUMBER-compute@developer.gserviceaccount.com; any
 * other e-mail: its domain (or the whole e-mail without an '@'). Cut to
 * outlen - 1 bytes.
 */
void google_project_of(const char *client_email, char *out, size_t outlen);

/*
 * A client: one service account + subject, with its cached access token.
 * private_key_pem is parsed at once (the caller may wipe it afterwards).
 * 0 or -errno (err[] says why, e.g. a bad key).
 */
struct google_client;
struct google_client_opts {
	struct httpc *httpc;
	const char   *token_url;
	const char   *api_base;
	const char   *client_email;
	const char   *private_key_pem;
	const char   *private_key_id; /* JWT "kid", may be NULL */
	const char   *subject;
	long	      timeout_ms; /* per request, 0: 30 s */
	size_t	      max_body;	  /* page cap, 0: 16 MiB */
};
int google_client_new(const struct google_client_opts *o,
    struct google_client **out, char *err, size_t errlen);
/* Free (cancels its requests without callbacks); NULL is a no-op. */
void google_client_free(struct google_client *c);
/* Forget the cached token (next call exchanges a new one). */
void google_client_forget_token(struct google_client *c);

/*
 * One activities.list page, getting (or refreshing once on 401) a token
 * first as needed. The callback gets either e->cls == GOOGLE_OK and the
 * body of the page, or the classified error (body NULL). Never called
 * from inside google_list_page. *out (optional) allows cancelling.
 */
struct google_op;
typedef void (*google_page_cb)(const char *body, size_t len,
    const struct google_error *e, void *arg);
int google_list_page(struct google_client *c, const char *app, int64_t start_ms,
    int64_t end_ms, int max_results, const char *page_token, google_page_cb cb,
    void *arg, struct google_op **out);
/* Cancel an in-flight op: its callback will not be called. */
void google_op_cancel(struct google_op *op);

/*
 * Credential check (apid, before storing a source): exchange a token and
 * list one activity (maxResults=1, last hour) of every application.
 * The callback is called exactly once (unless cancelled) with:
 *   GOOGLE_CHECK_OK,
 *   GOOGLE_CHECK_REFUSED (reason: Google's reason, diagnosis: readable),
 *   GOOGLE_CHECK_UNREACHABLE (Google could not be asked: transport, 5xx,
 *     rate limit; reason/diagnosis say which).
 * A key that does not parse is reported as -EINVAL with err[] by the call
 * itself (no callback).
 */
enum google_check_result {
	GOOGLE_CHECK_OK = 0,
	GOOGLE_CHECK_REFUSED,
	GOOGLE_CHECK_UNREACHABLE
};
struct google_check_opts {
	struct httpc	  *httpc;
	const char	  *token_url;
	const char	  *api_base;
	const char	  *client_email;
	const char	  *private_key_pem;
	const char	  *private_key_id; /* may be NULL */
	const char	  *subject;
	const char *const *apps;
	size_t		   napps;
	long		   timeout_ms; /* per request, 0: 15 s */
};
struct google_check;
typedef void (*google_check_cb)(enum google_check_result r, const char *reason,
    const char *diagnosis, void *arg);
int  google_check_credentials(const struct google_check_opts *o,
     google_check_cb cb, void *arg, struct google_check **out, char *err,
     size_t errlen);
void google_check_cancel(struct google_check *chk);

/*
 * The applications of activities.list (the applicationName enum of the
 * discovery document, in its order): what a source may name.
 */
#define GOOGLE_NAPPS 41
extern const char *const google_app_names[GOOGLE_NAPPS];

#endif
