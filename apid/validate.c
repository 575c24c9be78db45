/*
 * Request validation for the REST API. See validate.h.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "apid/validate.h"
#include "lib/base/json.h"
#include "lib/base/util.h"
#include "lib/crypto/crypto.h"
#include "lib/google/google.h"
#include "lib/net/netaddr.h"

#define SCOPE_REPORTS \
	"https://www.googleapis.com/auth/admin.reports.audit.readonly"
#define PEM_MAX (16 * 1024)

const char *const validate_default_apps[] = {
	"admin",
	"login",
	"token",
	"user_accounts",
	"saml",
	"groups",
	"drive",
	"mobile",
};
const size_t validate_default_napps = nitems(validate_default_apps);

/* Fields of a Google service-account key file. */
static const char *const keyfile_fields[] = {
	"type",
	"project_id",
	"private_key_id",
	"private_key",
	"client_email",
	"client_id",
	"auth_uri",
	"token_uri",
	"auth_provider_x509_cert_url",
	"client_x509_cert_url",
	"universe_domain",
};

/* Fill e and return -EINVAL. */
static int
verr_set(struct verr *e, const char *code, const char *field, const char *fmt,
    ...)
{
	va_list ap;

	e->status = 400;
	util_strlcpy(e->code, code, sizeof(e->code));
	util_strlcpy(e->field, field, sizeof(e->field));
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* "prefix.name" (or "name" for an empty prefix) into out. */
static const char *
field_join(char *out, size_t outlen, const char *prefix, const char *name)
{
	if (prefix == NULL || prefix[0] == '\0')
		snprintf(out, outlen, "%s", name);
	else
		snprintf(out, outlen, "%s.%s", prefix, name);
	return out;
}

/* An RFC 4122 UUID's text, its hex digits lower-case or (upper) either. */
static bool
validate_uuid_case(const char *s, bool upper)
{
	size_t i;

	if (strlen(s) != 36)
		return false;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!((s[i] >= '0' && s[i] <= '9') ||
			       (s[i] >= 'a' && s[i] <= 'f') ||
			       (upper && s[i] >= 'A' && s[i] <= 'F')))
			return false;
	}
	return true;
}

bool
validate_uuid(const char *s)
{
	return validate_uuid_case(s, true);
}

bool
validate_uuid_lower(const char *s)
{
	return validate_uuid_case(s, false);
}

bool
validate_app_known(const char *name)
{
	size_t i;

	for (i = 0; i < GOOGLE_NAPPS; i++)
		if (strcmp(google_app_names[i], name) == 0)
			return true;
	return false;
}

void
src_creds_clear(struct src_creds *c)
{
	free(c->client_email);
	if (c->private_key != NULL)
		crypto_free_secret(c->private_key, strlen(c->private_key) + 1);
	free(c->private_key_id);
	free(c->subject);
	memset(c, 0, sizeof(*c));
}

void
src_input_clear(struct src_input *in)
{
	size_t i;

	src_creds_clear(&in->creds);
	for (i = 0; i < in->napps; i++)
		free(in->apps[i]);
	free(in->callback_url);
	memset(in, 0, sizeof(*in));
}

void
validate_wipe_tree(yajl_val v)
{
	size_t i;

	if (v == NULL)
		return;
	if (YAJL_IS_STRING(v) && v->u.string != NULL)
		memset(v->u.string, 0, strlen(v->u.string));
	else if (YAJL_IS_OBJECT(v)) {
		for (i = 0; i < v->u.object.len; i++)
			validate_wipe_tree(v->u.object.values[i]);
	} else if (YAJL_IS_ARRAY(v)) {
		for (i = 0; i < v->u.array.len; i++)
			validate_wipe_tree(v->u.array.values[i]);
	}
}

/*
 * Check that obj is an object whose keys are all in allowed[] and appear
 * once. prefix names obj in errors.
 */
static int
check_keys(yajl_val obj, const char *prefix, const char *const *allowed,
    size_t nallowed, struct verr *e)
{
	char   f[128];
	size_t i, j;

	if (!YAJL_IS_OBJECT(obj))
		return verr_set(e, "invalid_type", prefix[0] ? prefix : "body",
		    "%s must be a JSON object",
		    prefix[0] ? prefix : "the body");
	for (i = 0; i < obj->u.object.len; i++) {
		const char *k = obj->u.object.keys[i];

		for (j = 0; j < nallowed; j++)
			if (strcmp(k, allowed[j]) == 0)
				break;
		if (j == nallowed)
			return verr_set(e, "unknown_field",
			    field_join(f, sizeof(f), prefix, k),
			    "unknown field \"%.64s\"", k);
		for (j = 0; j < i; j++)
			if (strcmp(k, obj->u.object.keys[j]) == 0)
				return verr_set(e, "duplicate_field",
				    field_join(f, sizeof(f), prefix, k),
				    "field \"%.64s\" appears twice", k);
	}
	return 0;
}

/*
 * A required (or optional: *out NULL when absent) string member that is
 * non-empty, at most max bytes, free of control characters.
 */
static int
get_string(yajl_val obj, const char *prefix, const char *key, bool required,
    size_t max, const char **out, struct verr *e)
{
	yajl_val    v = json_get(obj, key);
	const char *s, *p;
	char	    f[128];

	*out = NULL;
	field_join(f, sizeof(f), prefix, key);
	if (v == NULL) {
		if (required)
			return verr_set(e, "missing_field", f, "%s is required",
			    f);
		return 0;
	}
	if (!YAJL_IS_STRING(v))
		return verr_set(e, "invalid_type", f, "%s must be a string", f);
	s = v->u.string;
	if (s[0] == '\0')
		return verr_set(e, "invalid_field", f, "%s is empty", f);
	if (strlen(s) > max)
		return verr_set(e, "invalid_field", f,
		    "%s is longer than %zu bytes", f, max);
	for (p = s; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 && *p != '\n' && *p != '\r')
			return verr_set(e, "invalid_field", f,
			    "%s contains control characters", f);
	*out = s;
	return 0;
}

/* An e-mail address member. */
static int
get_email(yajl_val obj, const char *prefix, const char *key, bool required,
    char **out, struct verr *e)
{
	const char *s;
	char	    f[128];
	int	    rc;

	if ((rc = get_string(obj, prefix, key, required, 254, &s, e)) != 0)
		return rc;
	if (s == NULL)
		return 0;
	if (!util_is_email(s) || strchr(s, '\n') != NULL ||
	    strchr(s, '\r') != NULL)
		return verr_set(e, "invalid_field",
		    field_join(f, sizeof(f), prefix, key),
		    "%s is not an e-mail address", f);
	*out = util_xstrdup(s);
	return 0;
}

/* Parse the PEM to prove it is a usable key; keep a copy. */
static int
take_private_key(const char *pem, const char *field, struct src_creds *c,
    struct verr *e)
{
	struct rsa_key *key = NULL;
	char		err[256];

	if (strlen(pem) > PEM_MAX)
		return verr_set(e, "invalid_field", field,
		    "%s is longer than %d bytes", field, PEM_MAX);
	if (rsa_key_from_pem(pem, strlen(pem), &key, err, sizeof(err)) != 0 ||
	    rsa_key_check(key, err, sizeof(err)) != 0) {
		rsa_key_free(key);
		return verr_set(e, "invalid_field", field,
		    "%s is not a usable PEM PKCS#8 RSA private key "
		    "(2048-4096 bits): %s",
		    field, err);
	}
	rsa_key_free(key);
	c->private_key = util_xstrdup(pem);
	return 0;
}

/* A private key id: [A-Za-z0-9_-], 1..128. */
static int
take_key_id(const char *s, const char *field, struct src_creds *c,
    struct verr *e)
{
	const char *p;

	if (s == NULL)
		return 0;
	for (p = s; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			(*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
			return verr_set(e, "invalid_field", field,
			    "%s may hold only letters, digits, '_' and '-'",
			    field);
	c->private_key_id = util_xstrdup(s);
	return 0;
}

/* The scopes member: absent, or a non-empty array of the reports scope. */
static int
check_scopes(yajl_val obj, const char *prefix, struct verr *e)
{
	yajl_val v = json_get(obj, "scopes");
	char	 f[128], fi[160];
	size_t	 i;

	field_join(f, sizeof(f), prefix, "scopes");
	if (v == NULL)
		return 0;
	if (!YAJL_IS_ARRAY(v))
		return verr_set(e, "invalid_type", f,
		    "%s must be an array of strings", f);
	if (v->u.array.len == 0 || v->u.array.len > 4)
		return verr_set(e, "invalid_field", f,
		    "%s must list the Reports audit scope", f);
	for (i = 0; i < v->u.array.len; i++) {
		yajl_val s = v->u.array.values[i];

		snprintf(fi, sizeof(fi), "%s[%zu]", f, i);
		if (!YAJL_IS_STRING(s))
			return verr_set(e, "invalid_type", fi,
			    "%s must be a string", fi);
		if (strcmp(s->u.string, "admin.googleapis.com") != 0 &&
		    strcmp(s->u.string, SCOPE_REPORTS) != 0)
			return verr_set(e, "invalid_field", fi,
			    "unsupported "
			    "scope: only \"admin.googleapis.com\" or \"" SCOPE_REPORTS
			    "\" (read-only audit reports)");
	}
	return 0;
}

/* A service-account key file object (Google's JSON download). */
static int
take_keyfile(yajl_val kf, const char *f, struct src_creds *c, struct verr *e)
{
	const char *type, *pem, *kid;
	char	    ff[160];
	int	    rc;

	if ((rc = check_keys(kf, f, keyfile_fields, nitems(keyfile_fields),
		 e)) != 0)
		return rc;
	if ((rc = get_string(kf, f, "type", true, 64, &type, e)) != 0)
		return rc;
	if (strcmp(type, "service_account") != 0)
		return verr_set(e, "invalid_field",
		    field_join(ff, sizeof(ff), f, "type"),
		    "a service-account key file has type \"service_account\"");
	if ((rc = get_email(kf, f, "client_email", true, &c->client_email,
		 e)) != 0)
		return rc;
	if ((rc = get_string(kf, f, "private_key", true, PEM_MAX, &pem, e)) !=
	    0)
		return rc;
	if ((rc = take_private_key(pem,
		 field_join(ff, sizeof(ff), f, "private_key"), c, e)) != 0)
		return rc;
	if ((rc = get_string(kf, f, "private_key_id", false, 128, &kid, e)) !=
	    0)
		return rc;
	return take_key_id(kid, field_join(ff, sizeof(ff), f, "private_key_id"),
	    c, e);
}

int
validate_credentials(yajl_val obj, const char *prefix, struct src_creds *c,
    struct verr *e)
{
	static const char *const allowed[] = { "clientEmail", "privateKey",
		"privateKeyId", "subject", "scopes", "serviceAccountKey" };
	static const char *const allowed_kf[] = { "type", "project_id",
		"private_key_id", "private_key", "client_email", "client_id",
		"auth_uri", "token_uri", "auth_provider_x509_cert_url",
		"client_x509_cert_url", "universe_domain", "subject",
		"scopes" };
	const char		*pem, *kid;
	yajl_val		 sak;
	char			 f[128];
	int			 rc;

	memset(c, 0, sizeof(*c));
	if (YAJL_IS_OBJECT(obj) && json_get_string(obj, "type") != NULL) {
		/* A whole key file given as the credentials, plus subject. */
		if ((rc = check_keys(obj, prefix, allowed_kf,
			 nitems(allowed_kf), e)) != 0)
			goto fail;
		if ((rc = check_scopes(obj, prefix, e)) != 0 ||
		    (rc = get_email(obj, prefix, "subject", false, &c->subject,
			 e)) != 0)
			goto fail;
		/* Check it as a key file, without subject/scopes. */
		{
			struct yajl_val_s copy = *obj;
			const char	 *keys[16];
			yajl_val	  vals[16];
			size_t		  i, n = 0;

			for (i = 0; i < obj->u.object.len && n < 16; i++) {
				if (strcmp(obj->u.object.keys[i], "subject") ==
					0 ||
				    strcmp(obj->u.object.keys[i], "scopes") ==
					0)
					continue;
				keys[n] = obj->u.object.keys[i];
				vals[n++] = obj->u.object.values[i];
			}
			copy.u.object.keys = keys;
			copy.u.object.values = vals;
			copy.u.object.len = n;
			if ((rc = take_keyfile(&copy, prefix, c, e)) != 0)
				goto fail;
		}
		return 0;
	}
	if ((rc = check_keys(obj, prefix, allowed, nitems(allowed), e)) != 0)
		goto fail;
	if ((rc = check_scopes(obj, prefix, e)) != 0)
		goto fail;
	sak = json_get(obj, "serviceAccountKey");
	if (sak != NULL) {
		field_join(f, sizeof(f), prefix, "serviceAccountKey");
		if (json_get(obj, "clientEmail") != NULL ||
		    json_get(obj, "privateKey") != NULL ||
		    json_get(obj, "privateKeyId") != NULL) {
			rc = verr_set(e, "conflicting_fields", f,
			    "give either "
			    "serviceAccountKey or clientEmail/privateKey, "
			    "not both");
			goto fail;
		}
		if (YAJL_IS_STRING(sak)) {
			yajl_val tree = NULL;
			char	 perr[128];

			if (json_parse(sak->u.string, strlen(sak->u.string), 8,
				&tree, perr, sizeof(perr)) != 0) {
				rc = verr_set(e, "invalid_field", f,
				    "%s is not a JSON key file", f);
				goto fail;
			}
			rc = take_keyfile(tree, f, c, e);
			validate_wipe_tree(tree);
			yajl_tree_free(tree);
			if (rc != 0)
				goto fail;
		} else if ((rc = take_keyfile(sak, f, c, e)) != 0)
			goto fail;
	} else {
		if ((rc = get_email(obj, prefix, "clientEmail", true,
			 &c->client_email, e)) != 0)
			goto fail;
		if ((rc = get_string(obj, prefix, "privateKey", true, PEM_MAX,
			 &pem, e)) != 0)
			goto fail;
		if ((rc = take_private_key(pem,
			 field_join(f, sizeof(f), prefix, "privateKey"), c,
			 e)) != 0)
			goto fail;
		if ((rc = get_string(obj, prefix, "privateKeyId", false, 128,
			 &kid, e)) != 0)
			goto fail;
		if ((rc = take_key_id(kid,
			 field_join(f, sizeof(f), prefix, "privateKeyId"), c,
			 e)) != 0)
			goto fail;
	}
	if ((rc = get_email(obj, prefix, "subject", false, &c->subject, e)) !=
	    0)
		goto fail;
	return 0;
fail:
	src_creds_clear(c);
	return rc;
}

/* The applications member into in->apps. */
static int
check_apps(yajl_val v, struct src_input *in, struct verr *e)
{
	char   f[64];
	size_t i, j;

	if (!YAJL_IS_ARRAY(v))
		return verr_set(e, "invalid_type", "applications",
		    "applications must be an array of application names");
	if (v->u.array.len == 0)
		return verr_set(e, "invalid_field", "applications",
		    "applications is empty (omit it for the default set)");
	if (v->u.array.len > VALIDATE_APPS_MAX)
		return verr_set(e, "invalid_field", "applications",
		    "applications has too many entries");
	for (i = 0; i < v->u.array.len; i++) {
		yajl_val s = v->u.array.values[i];

		snprintf(f, sizeof(f), "applications[%zu]", i);
		if (!YAJL_IS_STRING(s))
			return verr_set(e, "invalid_type", f,
			    "%s must be a string", f);
		if (!validate_app_known(s->u.string))
			return verr_set(e, "invalid_field", f,
			    "\"%.64s\" is not a Reports API application "
			    "(see applicationName in the discovery document)",
			    s->u.string);
		for (j = 0; j < i; j++)
			if (strcmp(s->u.string,
				v->u.array.values[j]->u.string) == 0)
				return verr_set(e, "duplicate_value", f,
				    "\"%.64s\" is listed twice", s->u.string);
	}
	for (i = 0; i < v->u.array.len; i++)
		in->apps[i] = util_xstrdup(v->u.array.values[i]->u.string);
	in->napps = v->u.array.len;
	in->has_apps = true;
	return 0;
}

/*
 * An integer member key of root in [min, max] into *out (JSON Schema's
 * integer: 300.0 and 3e2 are integers too). 1 when present, 0 when
 * absent, -EINVAL with e filled.
 */
static int
get_seconds(yajl_val root, const char *key, int64_t min, int64_t max,
    int64_t *out, struct verr *e)
{
	yajl_val v = json_get(root, key);
	int64_t	 n;

	if (v == NULL)
		return 0;
	if (YAJL_IS_DOUBLE(v) && !json_get_int64(root, key, &n) &&
	    v->u.number.d == floor(v->u.number.d) && fabs(v->u.number.d) <= 1e9)
		n = (int64_t)v->u.number.d;
	else if (!YAJL_IS_NUMBER(v) || !json_get_int64(root, key, &n))
		return verr_set(e, "invalid_type", key,
		    "%s must be an integer number of seconds", key);
	if (n < min || n > max)
		return verr_set(e, "out_of_range", key,
		    "%s must be between %lld and %lld seconds", key,
		    (long long)min, (long long)max);
	*out = n;
	return 1;
}

/* logFetchInterval: an integer in [min, 86400]. */
static int
check_interval(yajl_val root, int64_t min, struct src_input *in, struct verr *e)
{
	int rc;

	rc = get_seconds(root, "logFetchInterval", min, VALIDATE_INTERVAL_MAX,
	    &in->interval, e);
	if (rc < 0)
		return rc;
	in->has_interval = rc == 1;
	return 0;
}

/* initialLookback: an integer in [1, 180 days]. */
static int
check_lookback(yajl_val root, struct src_input *in, struct verr *e)
{
	int rc;

	rc = get_seconds(root, "initialLookback", 1, VALIDATE_LOOKBACK_MAX,
	    &in->lookback, e);
	if (rc < 0)
		return rc;
	in->has_lookback = rc == 1;
	return 0;
}

/* The optional client-supplied id: a UUID, kept in lower case. */
static int
check_id(yajl_val root, struct src_input *in, struct verr *e)
{
	yajl_val v = json_get(root, "id");
	size_t	 i;

	if (v == NULL)
		return 0;
	if (!YAJL_IS_STRING(v))
		return verr_set(e, "invalid_type", "id",
		    "id must be a string "
		    "(a UUID such as 3f0c2a9e-6d1b-4c8e-9a57-2b1d0e4f7a61); "
		    "omit it and the server assigns one");
	/*
	 * The brief's example body says "id": "uuid": a placeholder a user
	 * may copy as written. It asks for what no id asks for: the server
	 * assigns one.
	 */
	if (strcmp(v->u.string, "uuid") == 0)
		return 0;
	if (!validate_uuid(v->u.string))
		return verr_set(e, "invalid_field", "id",
		    "id must be a UUID "
		    "(8-4-4-4-12 hexadecimal digits, such as "
		    "3f0c2a9e-6d1b-4c8e-9a57-2b1d0e4f7a61); omit it and the "
		    "server assigns one");
	for (i = 0; i < 36; i++)
		in->id[i] = (char)((v->u.string[i] >= 'A' &&
				       v->u.string[i] <= 'F') ?
			v->u.string[i] - 'A' + 'a' :
			v->u.string[i]);
	in->id[36] = '\0';
	in->has_id = true;
	return 0;
}

/* True when the authority of url ends with ':' (an empty port). */
static bool
validate_empty_port(const char *url)
{
	const char *a = strstr(url, "://"), *end;

	if (a == NULL)
		return false;
	a += 3;
	end = a + strcspn(a, "/?#");
	return end > a && end[-1] == ':';
}

/*
 * True when the host as written in url is the host libcurl parsed (it
 * rewrites numeric spellings such as 0x7f000001 or 127.1): an obfuscated
 * address is refused rather than silently normalised.
 */
static bool
validate_host_as_written(const char *url, const char *host)
{
	const char *a = strstr(url, "://"), *end, *h;
	size_t	    n;

	if (a == NULL)
		return false;
	a += 3;
	end = a + strcspn(a, "/?#");
	if (*a == '[') {
		if ((h = memchr(a, ']', (size_t)(end - a))) == NULL)
			return false;
		n = (size_t)(h + 1 - a);
	} else {
		for (h = end; h > a && h[-1] != ':'; h--)
			;
		n = h > a ? (size_t)(h - 1 - a) : (size_t)(end - a);
	}
	return strlen(host) == n && strncasecmp(a, host, n) == 0;
}

/* True when libcurl found this part in the URL. */
static bool
validate_url_has(CURLU *u, CURLUPart what)
{
	char *p = NULL;
	bool  has = curl_url_get(u, what, &p, 0) == CURLUE_OK;

	curl_free(p);
	return has;
}

int
validate_callback_url(yajl_val v, const char *f, bool allow_private,
    struct src_input *in, struct verr *e)
{
	CURLU	   *u = NULL;
	const char *s, *host, *p;
	char	    err[256], *part = NULL;
	size_t	    hl;
	int	    rc;

	if (!YAJL_IS_STRING(v))
		return verr_set(e, "invalid_type", f, "%s must be a string", f);
	s = v->u.string;
	if (strlen(s) > VALIDATE_URL_MAX)
		return verr_set(e, "invalid_field", f,
		    "%s is longer than %d bytes", f, VALIDATE_URL_MAX);
	for (p = s; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    *p == '\\')
			return verr_set(e, "invalid_field", f,
			    "%s contains "
			    "spaces, control or non-ASCII characters",
			    f);
	if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0)
		return verr_set(e, "invalid_field", f,
		    "%s must be an http:// or https:// URL", f);
	/*
	 * libcurl's parser, the one that sends: what is checked here is
	 * the host libcurl will connect to.
	 */
	if ((u = curl_url()) == NULL)
		return verr_set(e, "internal", f, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, s, 0) != CURLUE_OK) {
		rc = verr_set(e, "invalid_field", f, "%s is not a URL", f);
		goto fail;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &part, 0) != CURLUE_OK ||
	    (strcmp(part, "http") != 0 && strcmp(part, "https") != 0)) {
		rc = verr_set(e, "invalid_field", f,
		    "%s must be an http:// or https:// URL", f);
		goto fail;
	}
	curl_free(part);
	part = NULL;
	if (validate_url_has(u, CURLUPART_USER) ||
	    validate_url_has(u, CURLUPART_PASSWORD) ||
	    validate_url_has(u, CURLUPART_OPTIONS)) {
		rc = verr_set(e, "invalid_field", f,
		    "%s must not carry "
		    "credentials (user:password@); the webhook is signed",
		    f);
		goto fail;
	}
	if (validate_url_has(u, CURLUPART_FRAGMENT)) {
		rc = verr_set(e, "invalid_field", f,
		    "%s must not have a #fragment", f);
		goto fail;
	}
	if ((curl_url_get(u, CURLUPART_PORT, &part, 0) == CURLUE_OK &&
		strcmp(part, "0") == 0) ||
	    validate_empty_port(s)) {
		rc = verr_set(e, "invalid_field", f, "%s has an invalid port",
		    f);
		goto fail;
	}
	curl_free(part);
	part = NULL;
	if (curl_url_get(u, CURLUPART_HOST, &part, 0) != CURLUE_OK ||
	    part[0] == '\0' || strcmp(part, "[]") == 0) {
		rc = verr_set(e, "invalid_field", f, "%s has no host", f);
		goto fail;
	}
	host = part;
	if (!validate_host_as_written(s, host)) {
		rc = verr_set(e, "invalid_field", f,
		    "%s: write the host in "
		    "its usual form (%.64s)",
		    f, host);
		goto fail;
	}
	hl = strlen(host);
	if (hl + 3 > sizeof(in->cb_host)) {
		rc = verr_set(e, "invalid_field", f, "%s: host too long", f);
		goto fail;
	}
	/* An IPv6 literal is checked with its brackets. */
	if (strchr(host, ':') != NULL && host[0] != '[') {
		snprintf(in->cb_host, sizeof(in->cb_host), "[%s]", host);
	} else
		util_strlcpy(in->cb_host, host, sizeof(in->cb_host));
	if ((rc = netaddr_check_syntax(in->cb_host, allow_private,
		 &in->cb_literal, err, sizeof(err))) != 0) {
		rc = verr_set(e,
		    rc == -EHOSTUNREACH ? "forbidden_address" : "invalid_field",
		    f, "%s: %s%s", f, err,
		    rc == -EHOSTUNREACH ?
			" (set "
			"AUDITRELAY_DELIVERY_ALLOW_PRIVATE_NETWORKS=1 to allow "
			"private networks)" :
			"");
		goto fail;
	}
	if (in->cb_host[0] == '[') {
		/* Keep the bare address for the resolver. */
		memmove(in->cb_host, in->cb_host + 1, strlen(in->cb_host));
		in->cb_host[strlen(in->cb_host) - 1] = '\0';
	}
	in->callback_url = util_xstrdup(s);
	in->has_callback = true;
	curl_free(part);
	curl_url_cleanup(u);
	return 0;
fail:
	curl_free(part);
	curl_url_cleanup(u);
	return rc;
}

/* Optional boolean member key of root into *has / *val. */
static int
check_bool(yajl_val root, const char *key, bool *has, bool *val, struct verr *e)
{
	yajl_val v;

	if ((v = json_get(root, key)) == NULL)
		return 0;
	if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
		return verr_set(e, "invalid_type", key,
		    "%s must be true or false", key);
	*val = YAJL_IS_TRUE(v);
	*has = true;
	return 0;
}

int
validate_add_source(yajl_val root, int64_t min_interval, bool allow_private,
    struct src_input *in, struct verr *e)
{
	static const char *const allowed[] = { "id", "sourceType",
		"credentials", "applications", "logFetchInterval",
		"initialLookback", "callbackUrl", "watermarks" };
	const char		*st;
	yajl_val		 v;
	size_t			 i;
	int			 rc;

	memset(in, 0, sizeof(*in));
	if ((rc = check_keys(root, "", allowed, nitems(allowed), e)) != 0)
		goto fail;
	if ((rc = check_id(root, in, e)) != 0)
		goto fail;
	if ((rc = get_string(root, "", "sourceType", true, 64, &st, e)) != 0)
		goto fail;
	if (strcmp(st, "google_workspace") != 0) {
		rc = verr_set(e, "invalid_field", "sourceType",
		    "sourceType must be \"google_workspace\"");
		goto fail;
	}
	if ((v = json_get(root, "credentials")) == NULL) {
		rc = verr_set(e, "missing_field", "credentials",
		    "credentials is required");
		goto fail;
	}
	if ((rc = validate_credentials(v, "credentials", &in->creds, e)) != 0)
		goto fail;
	in->has_creds = true;
	if ((v = json_get(root, "applications")) != NULL) {
		if ((rc = check_apps(v, in, e)) != 0)
			goto fail;
	} else {
		for (i = 0; i < validate_default_napps; i++)
			in->apps[i] = util_xstrdup(validate_default_apps[i]);
		in->napps = validate_default_napps;
	}
	if ((rc = check_interval(root, min_interval, in, e)) != 0)
		goto fail;
	if (!in->has_interval) {
		in->interval = VALIDATE_INTERVAL_DEFAULT < min_interval ?
		    min_interval :
		    VALIDATE_INTERVAL_DEFAULT;
		in->has_interval = true;
	}
	if ((rc = check_lookback(root, in, e)) != 0)
		goto fail;
	if ((v = json_get(root, "callbackUrl")) == NULL) {
		rc = verr_set(e, "missing_field", "callbackUrl",
		    "callbackUrl is required");
		goto fail;
	}
	if ((rc = validate_callback_url(v, "callbackUrl", allow_private, in,
		 e)) != 0)
		goto fail;
	if ((rc = check_bool(root, "watermarks", &in->has_watermarks,
		 &in->watermarks, e)) != 0)
		goto fail;
	return 0;
fail:
	src_input_clear(in);
	return rc;
}

int
validate_patch(yajl_val root, int64_t min_interval, bool allow_private,
    struct src_input *in, struct verr *e)
{
	static const char *const allowed[] = { "logFetchInterval",
		"callbackUrl", "applications", "paused", "initialLookback",
		"watermarks" };
	yajl_val		 v;
	int			 rc;

	memset(in, 0, sizeof(*in));
	if ((rc = check_keys(root, "", allowed, nitems(allowed), e)) != 0)
		goto fail;
	if (root->u.object.len == 0) {
		rc = verr_set(e, "missing_field", "body",
		    "nothing to change: "
		    "give logFetchInterval, callbackUrl, applications, "
		    "initialLookback, paused or watermarks");
		goto fail;
	}
	if ((v = json_get(root, "applications")) != NULL &&
	    (rc = check_apps(v, in, e)) != 0)
		goto fail;
	if ((rc = check_interval(root, min_interval, in, e)) != 0)
		goto fail;
	if ((rc = check_lookback(root, in, e)) != 0)
		goto fail;
	if ((v = json_get(root, "callbackUrl")) != NULL &&
	    (rc = validate_callback_url(v, "callbackUrl", allow_private, in,
		 e)) != 0)
		goto fail;
	if ((rc = check_bool(root, "paused", &in->has_paused, &in->paused,
		 e)) != 0)
		goto fail;
	if ((rc = check_bool(root, "watermarks", &in->has_watermarks,
		 &in->watermarks, e)) != 0)
		goto fail;
	return 0;
fail:
	src_input_clear(in);
	return rc;
}

int
validate_empty_object(yajl_val root, struct verr *e)
{
	if (!YAJL_IS_OBJECT(root))
		return verr_set(e, "invalid_type", "body",
		    "the body must be a JSON object");
	if (root->u.object.len > 0)
		return verr_set(e, "unknown_field", root->u.object.keys[0],
		    "unknown field \"%.64s\"", root->u.object.keys[0]);
	return 0;
}

/* A required or optional RFC 3339 time member into *ms (absent: 0). */
static int
get_time(yajl_val root, const char *key, bool required, int64_t *ms,
    struct verr *e)
{
	const char *v;
	int	    rc;

	*ms = 0;
	if ((rc = get_string(root, "", key, required, 64, &v, e)) != 0)
		return rc;
	if (v != NULL && json_time_parse_rfc3339(v, ms) != 0)
		return verr_set(e, "invalid_field", key,
		    "%s must be an RFC 3339 time such as "
		    "\"2026-11-01T00:00:00Z\"",
		    key);
	return 0;
}

int
validate_backfill(yajl_val root, int64_t now_ms, char *const *apps,
    size_t napps, struct bf_input *in, struct verr *e)
{
	static const char *const allowed[] = { "application", "from", "to" };
	const int64_t		 oldest = now_ms -
	    (int64_t)VALIDATE_BACKFILL_DAYS * 86400000LL;
	const char *app;
	size_t	    i;
	int	    rc;

	memset(in, 0, sizeof(*in));
	if ((rc = check_keys(root, "", allowed, nitems(allowed), e)) != 0)
		return rc;
	if ((rc = get_string(root, "", "application", true, 63, &app, e)) != 0)
		return rc;
	for (i = 0; i < napps; i++)
		if (strcmp(apps[i], app) == 0)
			break;
	if (i == napps)
		return verr_set(e, "invalid_field", "application",
		    "application \"%.63s\" is not one this source reads "
		    "(PATCH its applications first)",
		    app);
	util_strlcpy(in->app, app, sizeof(in->app));
	if ((rc = get_time(root, "from", true, &in->from, e)) != 0 ||
	    (rc = get_time(root, "to", false, &in->to, e)) != 0)
		return rc;
	if (in->to == 0)
		in->to = now_ms;
	if (in->to > now_ms)
		return verr_set(e, "out_of_range", "to",
		    "to is in the future (leave it out for now: the live "
		    "polls read what is new)");
	if (in->from < oldest)
		return verr_set(e, "out_of_range", "from",
		    "from is more than %d days back: Google keeps no older "
		    "events",
		    VALIDATE_BACKFILL_DAYS);
	if (in->from >= in->to)
		return verr_set(e, "out_of_range", "from",
		    "from must be before to");
	return 0;
}
