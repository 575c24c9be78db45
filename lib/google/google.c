/*
 * Google service-account client for the Reports API: JWT assertion, token
 * exchange and cache, activities.list pages, error classification and the
 * credential check used by apid. See lib/google/google.h.
 */
#include <sys/queue.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "lib/base/json.h"
#include "lib/base/util.h"
#include "lib/crypto/crypto.h"
#include "lib/google/google.h"

/* The applicationName enum of the discovery document, in its order. */
const char *const google_app_names[GOOGLE_NAPPS] = {
	"access_transparency",
	"admin",
	"calendar",
	"chat",
	"drive",
	"gcp",
	"gmail",
	"gplus",
	"groups",
	"groups_enterprise",
	"jamboard",
	"login",
	"meet",
	"mobile",
	"rules",
	"saml",
	"token",
	"user_accounts",
	"context_aware_access",
	"chrome",
	"data_studio",
	"keep",
	"vault",
	"gemini_in_workspace_apps",
	"classroom",
	"assignments",
	"cloud_search",
	"tasks",
	"data_migration",
	"meet_hardware",
	"directory_sync",
	"ldap",
	"profile",
	"access_evaluation",
	"admin_data_action",
	"contacts",
	"takeout",
	"graduation",
	"voice",
	"chrome_sync",
	"workspace_studio",
};

#define GOOGLE_PAGE_MAX_DEFAULT (16 * 1024 * 1024)
#define GOOGLE_TIMEOUT_DEFAULT	30000
#define GOOGLE_CHECK_TIMEOUT	15000
#define GOOGLE_TOKEN_BODY_MAX	(16 * 1024)

enum op_state {
	OP_WAIT_TOKEN,
	OP_LIST
};

struct google_op {
	TAILQ_ENTRY(google_op) entry;
	struct google_client *c;
	enum op_state	      state;
	char		     *url;
	google_page_cb	      cb;
	void		     *arg;
	struct httpc_req     *req;
	bool		      refreshed; /* token refreshed for this op */
	bool		      fresh;	 /* the token used was new */
};
TAILQ_HEAD(google_ops, google_op);

struct google_client {
	struct httpc   *httpc;
	char	       *token_url;
	char	       *api_base;
	char	       *client_email;
	char	       *key_id;
	char	       *subject;
	struct rsa_key *key;
	long		timeout_ms;
	size_t		max_body;

	char		 *token; /* cached access token */
	int64_t		  token_exp_mono;
	bool		  token_new; /* not used by any op yet */
	struct httpc_req *token_req;

	struct google_ops wait;	 /* waiting for a token, FIFO */
	struct google_ops ops;	 /* sent */
	unsigned	  depth; /* callback nesting */
	bool		  dead;	 /* free when depth drops to 0 */
};

static int  google_token_start(struct google_client *c);
static void google_token_done(const struct httpc_resp *resp, void *arg);
static void google_local_error(struct google_error *e, const char *what);
static int  google_op_send(struct google_op *op);

char *
google_jwt_claims(const char *client_email, const char *subject,
    const char *scope, const char *aud, int64_t now_s)
{
	struct jsonw *w;
	char	     *s = NULL;

	if (client_email == NULL || scope == NULL || aud == NULL)
		return NULL;
	if ((w = jsonw_new()) == NULL)
		return NULL;
	jsonw_obj_open(w);
	jsonw_kv_str(w, "iss", client_email);
	jsonw_kv_str(w, "scope", scope);
	jsonw_kv_str(w, "aud", aud);
	if (subject != NULL && subject[0] != '\0')
		jsonw_kv_str(w, "sub", subject);
	jsonw_kv_int(w, "iat", now_s);
	jsonw_kv_int(w, "exp", now_s + GOOGLE_JWT_LIFETIME_S);
	jsonw_obj_close(w);
	if (jsonw_error(w) == 0)
		s = jsonw_steal(w, NULL);
	jsonw_free(w);
	return s;
}

char *
google_jwt_assertion(const struct rsa_key *key, const char *kid,
    const char *client_email, const char *subject, const char *scope,
    const char *aud, int64_t now_s)
{
	char *claims, *jwt;

	if (key == NULL)
		return NULL;
	claims = google_jwt_claims(client_email, subject, scope, aud, now_s);
	if (claims == NULL)
		return NULL;
	jwt = jwt_sign_rs256(key, kid != NULL && kid[0] != '\0' ? kid : NULL,
	    claims);
	free(claims);
	return jwt;
}

/* Percent-encode s (RFC 3986 unreserved kept); malloc'd. */
static char *
google_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		  i, n = strlen(s);
	char		 *out, *p;

	if ((out = malloc(n * 3 + 1)) == NULL)
		return NULL;
	p = out;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' ||
		    ch == '~') {
			*p++ = (char)ch;
		} else {
			*p++ = '%';
			*p++ = hex[ch >> 4];
			*p++ = hex[ch & 15];
		}
	}
	*p = '\0';
	return out;
}

char *
google_activities_url(const char *api_base, const char *app, int64_t start_ms,
    int64_t end_ms, int max_results, const char *page_token)
{
	char   st[32], et[32], *eapp = NULL, *etok = NULL, *url = NULL;
	size_t blen, len;
	int    n;

	if (api_base == NULL || app == NULL || app[0] == '\0' ||
	    max_results < 1 || max_results > GOOGLE_MAX_RESULTS)
		return NULL;
	blen = strlen(api_base);
	while (blen > 0 && api_base[blen - 1] == '/')
		blen--;
	if ((eapp = google_escape(app)) == NULL)
		goto done;
	if (page_token != NULL && (etok = google_escape(page_token)) == NULL)
		goto done;
	time_format_rfc3339_ms(start_ms, st);
	time_format_rfc3339_ms(end_ms, et);
	len = blen + strlen(eapp) + (etok != NULL ? strlen(etok) : 0) + 256;
	if ((url = malloc(len)) == NULL)
		goto done;
	n = snprintf(url, len,
	    "%.*s/admin/reports/v1/activity/users/all/"
	    "applications/%s?startTime=%s%s%s&maxResults=%d%s%s",
	    (int)blen, api_base, eapp, st, end_ms > 0 ? "&endTime=" : "",
	    end_ms > 0 ? et : "", max_results,
	    etok != NULL ? "&pageToken=" : "", etok != NULL ? etok : "");
	if (n < 0 || (size_t)n >= len) {
		free(url);
		url = NULL;
	}
done:
	free(eapp);
	free(etok);
	return url;
}

/* Reason and message of a Google API error body, if it is one. */
static void
google_api_reason(const char *body, size_t len, char *reason, size_t rlen,
    char *msg, size_t mlen)
{
	yajl_val    t = NULL, e, errs;
	const char *s;
	char	    err[64];

	reason[0] = '\0';
	msg[0] = '\0';
	if (body == NULL || len == 0 ||
	    json_parse(body, len, 16, &t, err, sizeof(err)) != 0)
		return;
	e = json_get(t, "error");
	if (e != NULL && YAJL_IS_OBJECT(e)) {
		if ((s = json_get_string(e, "message")) != NULL)
			util_strlcpy(msg, s, mlen);
		errs = json_get(e, "errors");
		if (errs != NULL && YAJL_IS_ARRAY(errs) &&
		    errs->u.array.len > 0 &&
		    (s = json_get_string(errs->u.array.values[0], "reason")) !=
			NULL)
			util_strlcpy(reason, s, rlen);
		else if ((s = json_get_string(e, "status")) != NULL)
			util_strlcpy(reason, s, rlen);
	} else if (e != NULL && YAJL_IS_STRING(e)) {
		/* OAuth shape {"error": "...", "error_description": "..."} */
		util_strlcpy(reason, YAJL_GET_STRING(e), rlen);
		if ((s = json_get_string(t, "error_description")) != NULL)
			util_strlcpy(msg, s, mlen);
	}
	yajl_tree_free(t);
}

/* Case-insensitive substring test. */
static bool
google_has(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay != '\0'; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return true;
	return false;
}

/* The token endpoint refused: say why in words. */
static void
google_classify_token(const char *reason, const char *msg,
    struct google_error *e)
{
	e->cls = GOOGLE_CREDENTIALS;
	if (strcmp(reason, "invalid_grant") == 0) {
		if (google_has(msg, "iat") || google_has(msg, "exp") ||
		    google_has(msg, "timeframe"))
			snprintf(e->diagnosis, sizeof(e->diagnosis),
			    "Google refused the service-account credentials "
			    "(invalid_grant: %s): the clock of this host and "
			    "Google's disagree (clock skew); check NTP%s",
			    msg, "");
		else if (google_has(msg, "email") || google_has(msg, "user id"))
			snprintf(e->diagnosis, sizeof(e->diagnosis),
			    "Google refused the service-account credentials "
			    "(invalid_grant: %s): the subject (the admin to "
			    "impersonate) is not a user of the domain%s",
			    msg, "");
		else
			snprintf(e->diagnosis, sizeof(e->diagnosis),
			    "Google refused the service-account credentials "
			    "(invalid_grant: %s): the key was revoked or "
			    "deleted, or the service account no longer "
			    "exists; create a new key and rotate the "
			    "credentials%s",
			    msg, "");
	} else if (strcmp(reason, "unauthorized_client") == 0) {
		snprintf(e->diagnosis, sizeof(e->diagnosis),
		    "Google refused the service-account credentials "
		    "(unauthorized_client: %s): domain-wide delegation is "
		    "missing; authorize the service account's client id for "
		    "the scope " GOOGLE_SCOPE_REPORTS " in the Admin console "
		    "(Security > API controls > Domain-wide delegation), or "
		    "omit subject and assign the service account an admin "
		    "role with the Reports privilege%s",
		    msg, "");
	} else if (strcmp(reason, "invalid_client") == 0) {
		snprintf(e->diagnosis, sizeof(e->diagnosis),
		    "Google refused the service-account credentials "
		    "(invalid_client: %s): the service account or its key "
		    "was deleted%s",
		    msg, "");
	} else if (strcmp(reason, "access_denied") == 0) {
		snprintf(e->diagnosis, sizeof(e->diagnosis),
		    "Google refused the service-account credentials "
		    "(access_denied: %s): the admin or the domain does not "
		    "allow this access%s",
		    msg, "");
	} else if (strcmp(reason, "invalid_scope") == 0) {
		snprintf(e->diagnosis, sizeof(e->diagnosis),
		    "Google refused the requested scope (invalid_scope: %s)"
		    "%s",
		    msg, "");
	} else {
		e->cls = GOOGLE_FATAL;
		snprintf(e->diagnosis, sizeof(e->diagnosis),
		    "the token endpoint refused the request (%s: %s)",
		    reason[0] != '\0' ? reason : "no reason", msg);
	}
}

void
google_classify(const struct httpc_resp *resp, bool token_endpoint,
    bool after_refresh, struct google_error *e)
{
	char reason[64], msg[200];
	long st = resp->status;

	memset(e, 0, sizeof(*e));
	e->status = st;
	e->retry_after_s = resp->retry_after_s;
	if (resp->blocked) {
		e->cls = GOOGLE_FATAL;
		util_strlcpy(e->reason, "blocked", sizeof(e->reason));
		util_strlcpy(e->diagnosis, resp->error, sizeof(e->diagnosis));
		return;
	}
	if (resp->curl_code != 0 || st == 0) {
		e->cls = GOOGLE_RETRY;
		e->status = 0;
		util_strlcpy(e->reason,
		    resp->curl_code == CURLE_OPERATION_TIMEDOUT ? "timeout" :
								  "network",
		    sizeof(e->reason));
		snprintf(e->diagnosis, sizeof(e->diagnosis),
		    "cannot reach Google (%s)%s",
		    resp->error[0] != '\0' ? resp->error : "no response", "");
		return;
	}
	if (st >= 200 && st < 300) {
		if (resp->truncated) {
			e->cls = GOOGLE_RETRY;
			util_strlcpy(e->reason, "truncated", sizeof(e->reason));
			util_strlcpy(e->diagnosis,
			    "Google's reply exceeded the "
			    "size limit",
			    sizeof(e->diagnosis));
			return;
		}
		e->cls = GOOGLE_OK;
		return;
	}
	google_api_reason(resp->body, resp->body_len, reason, sizeof(reason),
	    msg, sizeof(msg));
	if (reason[0] != '\0')
		util_strlcpy(e->reason, reason, sizeof(e->reason));
	else
		snprintf(e->reason, sizeof(e->reason), "http_%ld", st);

	if (st == 429 || st == 503 ||
	    (st == 403 &&
		(strcmp(reason, "rateLimitExceeded") == 0 ||
		    strcmp(reason, "userRateLimitExceeded") == 0 ||
		    strcmp(reason, "quotaExceeded") == 0 ||
		    strcmp(reason, "dailyLimitExceeded") == 0))) {
		e->cls = GOOGLE_RETRY;
		e->rate_limited = true;
		if (st == 503 && reason[0] == '\0')
			util_strlcpy(e->reason, "http_503", sizeof(e->reason));
		snprintf(e->diagnosis, sizeof(e->diagnosis),
		    "Google asks to slow down (HTTP %ld %s)", st, e->reason);
		return;
	}
	if (st >= 500 || st == 408) {
		e->cls = GOOGLE_RETRY;
		snprintf(e->diagnosis, sizeof(e->diagnosis),
		    "Google failed (HTTP %ld%s%.150s)", st,
		    msg[0] != '\0' ? ": " : "", msg);
		return;
	}
	if (token_endpoint) {
		if (st == 400 || st == 401 || st == 403)
			google_classify_token(reason, msg, e);
		else {
			e->cls = GOOGLE_FATAL;
			snprintf(e->diagnosis, sizeof(e->diagnosis),
			    "the token endpoint answered HTTP %ld", st);
		}
		return;
	}
	if (st == 401) {
		e->cls = GOOGLE_CREDENTIALS;
		snprintf(e->diagnosis, sizeof(e->diagnosis),
		    "Google does not accept the access token%s (HTTP 401 "
		    "%.150s)",
		    after_refresh ? " even after a refresh" : "", msg);
		return;
	}
	if (st == 403) {
		e->cls = GOOGLE_CREDENTIALS;
		if (strcmp(reason, "insufficientPermissions") == 0 &&
		    google_has(msg, "scope"))
			snprintf(e->diagnosis, sizeof(e->diagnosis),
			    "the access token lacks the scope " GOOGLE_SCOPE_REPORTS
			    " (%.150s)",
			    msg);
		else {
			e->access_denied = true;
			snprintf(e->diagnosis, sizeof(e->diagnosis),
			    "Google refuses access to the audit reports "
			    "(%s: %.150s): the admin impersonated lacks the "
			    "Reports privilege",
			    e->reason, msg);
			util_strlcpy(e->google_msg, msg, sizeof(e->google_msg));
		}
		return;
	}
	e->cls = GOOGLE_FATAL;
	snprintf(e->diagnosis, sizeof(e->diagnosis),
	    "Google refused the "
	    "request (HTTP %ld %s%s%.150s)",
	    st, e->reason, msg[0] != '\0' ? ": " : "", msg);
}

void
google_project_of(const char *client_email, char *out, size_t outlen)
{
	static const char iam[] = ".iam.gserviceaccount.com";
	const char	 *at = strrchr(client_email, '@');
	size_t		  n, dl;

	if (outlen == 0)
		return;
	if (at == NULL) {
		util_strlcpy(out, client_email, outlen);
		return;
	}
	dl = strlen(at + 1);
	if (strcmp(at + 1, "appspot.gserviceaccount.com") == 0)
		n = (size_t)(at - client_email); /* the local part */
	else if (strcmp(at + 1, "developer.gserviceaccount.com") == 0) {
		const char *dash = memchr(client_email, '-',
		    (size_t)(at - client_email));

		n = (size_t)((dash != NULL ? dash : at) - client_email);
	} else if (dl > sizeof(iam) - 1 &&
	    strcmp(at + 1 + dl - (sizeof(iam) - 1), iam) == 0) {
		client_email = at + 1;
		n = dl - (sizeof(iam) - 1);
	} else {
		client_email = at + 1;
		n = dl;
	}
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, client_email, n);
	out[n] = '\0';
}

void
google_explain_access(struct google_error *e, const char *client_email,
    const char *subject)
{
	if (e->cls != GOOGLE_CREDENTIALS || !e->access_denied)
		return;
	if (subject == NULL || subject[0] == '\0')
		snprintf(e->diagnosis, sizeof(e->diagnosis),
		    "Google refuses access to the audit reports (%s: %.150s): "
		    "this service account (%.120s) has no admin role with the "
		    "Reports privilege, and no subject was given: assign it "
		    "one (Admin console > Account > Admin roles > a role with "
		    "the Reports privilege > Assign service accounts), or give "
		    "subject (an admin) with domain-wide delegation for " GOOGLE_SCOPE_REPORTS
		    " (Admin console > Security > API "
		    "controls > Domain-wide delegation)",
		    e->reason, e->google_msg,
		    client_email != NULL ? client_email : "");
	else
		snprintf(e->diagnosis, sizeof(e->diagnosis),
		    "Google refuses access to the audit reports (%s: %.150s): "
		    "the admin given as subject (%.120s) lacks the Reports "
		    "privilege: give subject an admin whose role has it (a "
		    "super admin, or Admin console > Account > Admin roles > "
		    "a role with the Reports privilege), or omit subject and "
		    "assign that role to the service account itself",
		    e->reason, e->google_msg, subject);
}

/* Client. */

int
google_client_new(const struct google_client_opts *o,
    struct google_client **out, char *err, size_t errlen)
{
	struct google_client *c;
	char		      kerr[160];

	*out = NULL;
	if (o->httpc == NULL || o->token_url == NULL || o->api_base == NULL ||
	    o->client_email == NULL || o->private_key_pem == NULL) {
		snprintf(err, errlen, "incomplete Google client options");
		return -EINVAL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto nomem;
	TAILQ_INIT(&c->wait);
	TAILQ_INIT(&c->ops);
	c->httpc = o->httpc;
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms :
					    GOOGLE_TIMEOUT_DEFAULT;
	c->max_body = o->max_body > 0 ? o->max_body : GOOGLE_PAGE_MAX_DEFAULT;
	if ((c->token_url = strdup(o->token_url)) == NULL ||
	    (c->api_base = strdup(o->api_base)) == NULL ||
	    (c->client_email = strdup(o->client_email)) == NULL ||
	    (c->subject = strdup(o->subject != NULL ? o->subject : "")) ==
		NULL ||
	    (o->private_key_id != NULL &&
		(c->key_id = strdup(o->private_key_id)) == NULL)) {
		google_client_free(c);
		goto nomem;
	}
	if (rsa_key_from_pem(o->private_key_pem, strlen(o->private_key_pem),
		&c->key, kerr, sizeof(kerr)) != 0) {
		snprintf(err, errlen, "private key: %s", kerr);
		google_client_free(c);
		return -EINVAL;
	}
	*out = c;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -ENOMEM;
}

/* Release everything; only when no callback is running. */
static void
google_client_destroy(struct google_client *c)
{
	free(c->token_url);
	free(c->api_base);
	free(c->client_email);
	free(c->key_id);
	free(c->subject);
	rsa_key_free(c->key);
	if (c->token != NULL)
		crypto_free_secret(c->token, strlen(c->token));
	free(c);
}

/* Unlink and free an op (cancelling its request). */
static void
google_op_free(struct google_op *op)
{
	if (op->req != NULL)
		httpc_cancel(op->req);
	if (op->state == OP_WAIT_TOKEN)
		TAILQ_REMOVE(&op->c->wait, op, entry);
	else
		TAILQ_REMOVE(&op->c->ops, op, entry);
	free(op->url);
	free(op);
}

void
google_client_free(struct google_client *c)
{
	struct google_op *op;

	if (c == NULL)
		return;
	while ((op = TAILQ_FIRST(&c->wait)) != NULL)
		google_op_free(op);
	while ((op = TAILQ_FIRST(&c->ops)) != NULL)
		google_op_free(op);
	if (c->token_req != NULL) {
		httpc_cancel(c->token_req);
		c->token_req = NULL;
	}
	if (c->depth > 0) {
		c->dead = true;
		return;
	}
	google_client_destroy(c);
}

void
google_client_forget_token(struct google_client *c)
{
	if (c == NULL || c->token == NULL)
		return;
	crypto_free_secret(c->token, strlen(c->token));
	c->token = NULL;
}

/* Leave a callback; free the client if it was freed meanwhile. */
static bool
google_leave(struct google_client *c)
{
	c->depth--;
	if (c->dead && c->depth == 0) {
		google_client_destroy(c);
		return true;
	}
	return c->dead;
}

/* Finish op with an error or a page, then free it. */
static void
google_op_finish(struct google_op *op, const char *body, size_t len,
    const struct google_error *e)
{
	google_page_cb cb = op->cb;
	void	      *arg = op->arg;

	op->req = NULL;
	google_op_free(op);
	cb(body, len, e, arg);
}

/* Token endpoint answered. */
static void
google_token_done(const struct httpc_resp *resp, void *arg)
{
	struct google_client *c = arg;
	struct google_error   e;
	struct google_op     *op;
	yajl_val	      t = NULL;
	const char	     *tok;
	int64_t		      exp = 0;
	char		      perr[64];

	c->token_req = NULL;
	google_classify(resp, true, false, &e);
	if (e.cls == GOOGLE_OK) {
		if (json_parse(resp->body, resp->body_len, 8, &t, perr,
			sizeof(perr)) != 0 ||
		    (tok = json_get_string(t, "access_token")) == NULL ||
		    tok[0] == '\0') {
			e.cls = GOOGLE_RETRY;
			util_strlcpy(e.reason, "bad_token_reply",
			    sizeof(e.reason));
			util_strlcpy(e.diagnosis,
			    "the token endpoint sent a "
			    "reply without an access token",
			    sizeof(e.diagnosis));
		} else {
			google_client_forget_token(c);
			if ((c->token = strdup(tok)) == NULL) {
				e.cls = GOOGLE_RETRY;
				util_strlcpy(e.reason, "nomem",
				    sizeof(e.reason));
				util_strlcpy(e.diagnosis, "out of memory",
				    sizeof(e.diagnosis));
			}
			if (!json_get_int64(t, "expires_in", &exp) || exp <= 0)
				exp = 3600;
			exp -= GOOGLE_TOKEN_MARGIN_S;
			if (exp < 30)
				exp = 30;
			c->token_exp_mono = util_mono_ms() + exp * 1000;
			c->token_new = true;
		}
		yajl_tree_free(t);
	}
	c->depth++;
	while ((op = TAILQ_FIRST(&c->wait)) != NULL) {
		if (e.cls == GOOGLE_OK && c->token != NULL) {
			op->fresh = c->token_new;
			TAILQ_REMOVE(&c->wait, op, entry);
			op->state = OP_LIST;
			TAILQ_INSERT_TAIL(&c->ops, op, entry);
			if (google_op_send(op) != 0) {
				struct google_error se;

				google_local_error(&se,
				    "cannot start the "
				    "request");
				google_op_finish(op, NULL, 0, &se);
			}
		} else
			google_op_finish(op, NULL, 0, &e);
		if (c->dead)
			break;
	}
	c->token_new = false;
	google_leave(c);
}

/*
 * Start a token exchange unless one is running. 0 or -errno (no callback
 * is made on failure: the caller fails its ops).
 */
static int
google_token_start(struct google_client *c)
{
	struct httpc_opts o;
	const char	 *hdrs[] = {
		      "Content-Type: application/x-www-form-urlencoded",
		      "Accept: application/json", NULL
	};
	char  *jwt = NULL, *body = NULL;
	size_t len;
	int    rc = -ENOMEM;

	if (c->token_req != NULL)
		return 0;
	jwt = google_jwt_assertion(c->key, c->key_id, c->client_email,
	    c->subject, GOOGLE_SCOPE_REPORTS, c->token_url,
	    util_now_ms() / 1000);
	if (jwt == NULL)
		goto done;
	len = strlen(jwt) + 128;
	if ((body = malloc(len)) == NULL)
		goto done;
	/* The JWT is base64url and dots: nothing to escape. */
	snprintf(body, len,
	    "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3A"
	    "grant-type%%3Ajwt-bearer&assertion=%s",
	    jwt);
	memset(&o, 0, sizeof(o));
	o.method = "POST";
	o.url = c->token_url;
	o.headers = hdrs;
	o.body = body;
	o.body_len = strlen(body);
	o.timeout_ms = c->timeout_ms;
	o.max_body = GOOGLE_TOKEN_BODY_MAX;
	o.allow_private = true;
	rc = httpc_start(c->httpc, &o, google_token_done, c, &c->token_req);
	if (rc != 0)
		c->token_req = NULL;
done:
	if (body != NULL)
		crypto_free_secret(body, strlen(body));
	free(jwt);
	return rc;
}

/* Fail every op waiting for a token with e (from a callback). */
static void
google_fail_waiting(struct google_client *c, const struct google_error *e)
{
	struct google_op *op;

	c->depth++;
	while (!c->dead && (op = TAILQ_FIRST(&c->wait)) != NULL)
		google_op_finish(op, NULL, 0, e);
	google_leave(c);
}

/* A local failure as an error. */
static void
google_local_error(struct google_error *e, const char *what)
{
	memset(e, 0, sizeof(*e));
	e->cls = GOOGLE_RETRY;
	e->retry_after_s = -1;
	util_strlcpy(e->reason, "local", sizeof(e->reason));
	util_strlcpy(e->diagnosis, what, sizeof(e->diagnosis));
}

/* activities.list answered. */
static void
google_list_done(const struct httpc_resp *resp, void *arg)
{
	struct google_op     *op = arg;
	struct google_client *c = op->c;
	struct google_error   e;
	bool		      auth_err;

	op->req = NULL;
	google_classify(resp, false, op->fresh || op->refreshed, &e);
	google_explain_access(&e, c->client_email, c->subject);
	auth_err = e.cls == GOOGLE_CREDENTIALS &&
	    (resp->status == 401 || resp->status == 403);
	if (auth_err && !op->refreshed && !op->fresh) {
		/* A stale or revoked token: refresh once, then retry. */
		op->refreshed = true;
		google_client_forget_token(c);
		TAILQ_REMOVE(&c->ops, op, entry);
		op->state = OP_WAIT_TOKEN;
		TAILQ_INSERT_TAIL(&c->wait, op, entry);
		if (google_token_start(c) != 0) {
			google_local_error(&e,
			    "cannot start the token request");
			google_fail_waiting(c, &e);
		}
		return;
	}
	c->depth++;
	if (e.cls == GOOGLE_OK)
		google_op_finish(op, resp->body, resp->body_len, &e);
	else
		google_op_finish(op, NULL, 0, &e);
	google_leave(c);
}

/* Send the list request of op with the cached token. 0 or -errno. */
static int
google_op_send(struct google_op *op)
{
	struct google_client *c = op->c;
	struct httpc_opts     o;
	const char	     *hdrs[3];
	char		     *auth;
	size_t		      len;
	int		      rc;

	len = strlen(c->token) + 32;
	if ((auth = malloc(len)) == NULL)
		return -ENOMEM;
	snprintf(auth, len, "Authorization: Bearer %s", c->token);
	hdrs[0] = auth;
	hdrs[1] = "Accept: application/json";
	hdrs[2] = NULL;
	memset(&o, 0, sizeof(o));
	o.url = op->url;
	o.headers = hdrs;
	o.timeout_ms = c->timeout_ms;
	o.max_body = c->max_body;
	o.allow_private = true;
	rc = httpc_start(c->httpc, &o, google_list_done, op, &op->req);
	crypto_free_secret(auth, strlen(auth));
	return rc;
}

int
google_list_page(struct google_client *c, const char *app, int64_t start_ms,
    int64_t end_ms, int max_results, const char *page_token, google_page_cb cb,
    void *arg, struct google_op **out)
{
	struct google_op *op;
	int		  rc;

	if (out != NULL)
		*out = NULL;
	if (c == NULL || c->dead || cb == NULL)
		return -EINVAL;
	if ((op = calloc(1, sizeof(*op))) == NULL)
		return -ENOMEM;
	op->c = c;
	op->cb = cb;
	op->arg = arg;
	op->url = google_activities_url(c->api_base, app, start_ms, end_ms,
	    max_results, page_token);
	if (op->url == NULL) {
		free(op);
		return -EINVAL;
	}
	if (c->token != NULL && util_mono_ms() < c->token_exp_mono) {
		op->state = OP_LIST;
		TAILQ_INSERT_TAIL(&c->ops, op, entry);
		if ((rc = google_op_send(op)) != 0) {
			op->req = NULL;
			TAILQ_REMOVE(&c->ops, op, entry);
			free(op->url);
			free(op);
			return rc;
		}
	} else {
		op->state = OP_WAIT_TOKEN;
		TAILQ_INSERT_TAIL(&c->wait, op, entry);
		if (c->token_req == NULL) {
			google_client_forget_token(c);
			if ((rc = google_token_start(c)) != 0) {
				TAILQ_REMOVE(&c->wait, op, entry);
				free(op->url);
				free(op);
				return rc;
			}
		}
	}
	if (out != NULL)
		*out = op;
	return 0;
}

void
google_op_cancel(struct google_op *op)
{
	if (op == NULL)
		return;
	google_op_free(op);
}

/* Credential check. */

struct google_check {
	struct google_client *c;
	struct google_op     *op;
	char		    **apps;
	size_t		      napps;
	size_t		      next;
	google_check_cb	      cb;
	void		     *arg;
};

static void google_check_next(struct google_check *chk);

/* Report once and free. */
static void
google_check_end(struct google_check *chk, enum google_check_result r,
    const char *reason, const char *diagnosis)
{
	google_check_cb cb = chk->cb;
	void	       *arg = chk->arg;

	chk->op = NULL;
	cb(r, reason, diagnosis, arg);
	google_check_cancel(chk);
}

static void
google_check_page(const char *body, size_t len, const struct google_error *e,
    void *arg)
{
	struct google_check *chk = arg;

	(void)body;
	(void)len;
	chk->op = NULL;
	switch (e->cls) {
	case GOOGLE_OK:
		chk->next++;
		google_check_next(chk);
		break;
	case GOOGLE_RETRY:
		google_check_end(chk, GOOGLE_CHECK_UNREACHABLE, e->reason,
		    e->diagnosis);
		break;
	case GOOGLE_CREDENTIALS:
	case GOOGLE_FATAL:
		google_check_end(chk, GOOGLE_CHECK_REFUSED, e->reason,
		    e->diagnosis);
		break;
	}
}

/* List one activity of the next application, or report success. */
static void
google_check_next(struct google_check *chk)
{
	int64_t now = util_now_ms();
	int	rc;

	if (chk->next >= chk->napps) {
		google_check_end(chk, GOOGLE_CHECK_OK, "", "");
		return;
	}
	rc = google_list_page(chk->c, chk->apps[chk->next], now - 3600000, 0, 1,
	    NULL, google_check_page, chk, &chk->op);
	if (rc != 0)
		google_check_end(chk, GOOGLE_CHECK_UNREACHABLE, "local",
		    rc == -EINVAL ? "invalid application name" :
				    "cannot start the request");
}

int
google_check_credentials(const struct google_check_opts *o, google_check_cb cb,
    void *arg, struct google_check **out, char *err, size_t errlen)
{
	struct google_client_opts co;
	struct google_check	 *chk;
	size_t			  i;
	int			  rc;

	if (out != NULL)
		*out = NULL;
	if (cb == NULL || o->napps == 0 || o->apps == NULL) {
		snprintf(err, errlen, "no application to check");
		return -EINVAL;
	}
	for (i = 0; i < o->napps; i++)
		if (o->apps[i] == NULL || o->apps[i][0] == '\0') {
			snprintf(err, errlen, "empty application name");
			return -EINVAL;
		}
	if ((chk = calloc(1, sizeof(*chk))) == NULL ||
	    (chk->apps = calloc(o->napps, sizeof(char *))) == NULL) {
		free(chk);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	chk->cb = cb;
	chk->arg = arg;
	chk->napps = o->napps;
	for (i = 0; i < o->napps; i++)
		if ((chk->apps[i] = strdup(o->apps[i])) == NULL) {
			google_check_cancel(chk);
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
	memset(&co, 0, sizeof(co));
	co.httpc = o->httpc;
	co.token_url = o->token_url;
	co.api_base = o->api_base;
	co.client_email = o->client_email;
	co.private_key_pem = o->private_key_pem;
	co.private_key_id = o->private_key_id;
	co.subject = o->subject;
	co.timeout_ms = o->timeout_ms > 0 ? o->timeout_ms :
					    GOOGLE_CHECK_TIMEOUT;
	co.max_body = 1024 * 1024;
	if ((rc = google_client_new(&co, &chk->c, err, errlen)) != 0) {
		google_check_cancel(chk);
		return rc;
	}
	rc = google_list_page(chk->c, chk->apps[0], util_now_ms() - 3600000, 0,
	    1, NULL, google_check_page, chk, &chk->op);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the check: %s",
		    strerror(-rc));
		google_check_cancel(chk);
		return rc;
	}
	if (out != NULL)
		*out = chk;
	return 0;
}

void
google_check_cancel(struct google_check *chk)
{
	size_t i;

	if (chk == NULL)
		return;
	google_client_free(chk->c); /* cancels chk->op */
	for (i = 0; chk->apps != NULL && i < chk->napps; i++)
		free(chk->apps[i]);
	free(chk->apps);
	free(chk);
}
