/*
 * JWT-bearer assertion check of the Google simulator. See sim_jwt.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "sim_jwt.h"
#include "tests/support/testkey.h"

#define SIM_JWT_MAX_KEYS 8

/* Copy string member key of obj into dst; 0 or -ENOENT. */
static int
jwt_copy_str(yajl_val obj, const char *key, char *dst, size_t dstlen)
{
	const char *path[2] = { key, NULL };
	yajl_val    v;

	dst[0] = '\0';
	v = yajl_tree_get(obj, path, yajl_t_string);
	if (v == NULL)
		return -ENOENT;
	if (strlen((v)->u.string) >= dstlen)
		return -ENOENT;
	strcpy(dst, (v)->u.string);
	return 0;
}

/* Integer member key of obj (a JSON integer) into *out; 0 or -ENOENT. */
static int
jwt_get_int(yajl_val obj, const char *key, int64_t *out)
{
	const char *path[2] = { key, NULL };
	yajl_val    v;

	v = yajl_tree_get(obj, path, yajl_t_number);
	if (v == NULL || !YAJL_IS_INTEGER(v))
		return -ENOENT;
	*out = YAJL_GET_INTEGER(v);
	return 0;
}

/* Parse the header part of jwt and copy its "kid". 0 or -EINVAL. */
static int
jwt_header_kid(const char *jwt, char *kid, size_t kidlen)
{
	const char    *dot = strchr(jwt, '.');
	unsigned char *raw = NULL;
	size_t	       rawlen;
	yajl_val       h = NULL;
	int	       rc = -EINVAL;

	kid[0] = '\0';
	if (dot == NULL || dot == jwt)
		return -EINVAL;
	if (b64_decode(jwt, (size_t)(dot - jwt), &raw, &rawlen) < 0)
		return -EINVAL;
	h = yajl_tree_parse((const char *)raw, NULL, 0);
	if (h == NULL || !YAJL_IS_OBJECT(h))
		goto fail;
	(void)jwt_copy_str(h, "kid", kid, kidlen);
	rc = 0;
fail:
	yajl_tree_free(h);
	free(raw);
	return rc;
}

int
sim_jwt_scope_has(const char *list, const char *scope)
{
	size_t	    n = strlen(scope);
	const char *p = list;

	while (p != NULL && *p != '\0') {
		while (*p == ' ')
			p++;
		if (strncmp(p, scope, n) == 0 && (p[n] == ' ' || p[n] == '\0'))
			return 1;
		p = strchr(p, ' ');
	}
	return 0;
}

/* true when every scope of the list looks like a Google OAuth scope. */
static int
jwt_scopes_valid(const char *list)
{
	const char *p = list;
	int	    n = 0;

	while (*p != '\0') {
		size_t len;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		len = strcspn(p, " ");
		if (strncmp(p, "https://www.googleapis.com/auth/", 32) != 0 ||
		    len <= 32)
			return 0;
		n++;
		p += len;
	}
	return n > 0;
}

enum sim_jwt_result
sim_jwt_check(const char *jwt, int64_t now, const char *const *auds,
    size_t naud, sim_jwt_keys_fn keys_fn, void *arg, struct sim_jwt_claims *c)
{
	const struct rsa_key *keys[SIM_JWT_MAX_KEYS];
	char		     *peek = NULL, *verified = NULL;
	char		      aud[512], err[128];
	yajl_val	      t = NULL;
	enum sim_jwt_result   r = SIM_JWT_MALFORMED;
	const char	     *p;
	int		      nkeys, i, dots = 0;
	size_t		      j;

	memset(c, 0, sizeof(*c));
	if (jwt == NULL || *jwt == '\0')
		return SIM_JWT_MALFORMED;
	for (p = jwt; *p != '\0'; p++)
		if (*p == '.')
			dots++;
	if (dots != 2)
		return SIM_JWT_MALFORMED;
	if (jwt_header_kid(jwt, c->kid, sizeof(c->kid)) < 0)
		return SIM_JWT_MALFORMED;
	if (jwt_peek_claims(jwt, &peek) < 0)
		return SIM_JWT_MALFORMED;
	t = yajl_tree_parse(peek, NULL, 0);
	if (t == NULL || !YAJL_IS_OBJECT(t) ||
	    jwt_copy_str(t, "iss", c->iss, sizeof(c->iss)) < 0)
		goto done;
	yajl_tree_free(t);
	t = NULL;

	nkeys = keys_fn(arg, c->iss, c->kid, keys, SIM_JWT_MAX_KEYS);
	if (nkeys < 0) {
		r = SIM_JWT_UNKNOWN_CLIENT;
		goto done;
	}
	r = SIM_JWT_BAD_SIGNATURE;
	for (i = 0; i < nkeys && verified == NULL; i++) {
		if (jwt_verify_rs256(jwt, keys[i], &verified, err,
			sizeof(err)) < 0)
			verified = NULL;
	}
	if (verified == NULL)
		goto done;
	t = yajl_tree_parse(verified, NULL, 0);
	if (t == NULL || !YAJL_IS_OBJECT(t)) {
		r = SIM_JWT_MALFORMED;
		goto done;
	}
	(void)jwt_copy_str(t, "sub", c->sub, sizeof(c->sub));
	(void)jwt_copy_str(t, "scope", c->scope, sizeof(c->scope));

	r = SIM_JWT_BAD_TIME;
	if (jwt_get_int(t, "iat", &c->iat) < 0 ||
	    jwt_get_int(t, "exp", &c->exp) < 0)
		goto done;
	if (c->exp <= c->iat || c->exp - c->iat > SIM_JWT_MAX_LIFETIME ||
	    c->iat > now + SIM_JWT_SKEW || c->exp < now - SIM_JWT_SKEW)
		goto done;

	r = SIM_JWT_BAD_AUDIENCE;
	if (jwt_copy_str(t, "aud", aud, sizeof(aud)) < 0)
		goto done;
	for (j = 0; j < naud; j++)
		if (auds[j] != NULL && strcmp(aud, auds[j]) == 0)
			break;
	if (j == naud)
		goto done;

	if (c->scope[0] == '\0') {
		r = SIM_JWT_NO_SCOPE;
		goto done;
	}
	if (!jwt_scopes_valid(c->scope)) {
		r = SIM_JWT_BAD_SCOPE;
		goto done;
	}
	r = SIM_JWT_OK;
done:
	yajl_tree_free(t);
	free(peek);
	free(verified);
	return r;
}

void
sim_jwt_error(enum sim_jwt_result r, int *status, const char **error,
    const char **description)
{
	*status = 400;
	*error = "invalid_grant";
	switch (r) {
	case SIM_JWT_OK:
		*status = 200;
		*error = NULL;
		*description = NULL;
		break;
	case SIM_JWT_MALFORMED:
		*description = "Invalid JWT Signature.";
		break;
	case SIM_JWT_UNKNOWN_CLIENT:
		*status = 401;
		*error = "invalid_client";
		*description = "The OAuth client was not found.";
		break;
	case SIM_JWT_BAD_SIGNATURE:
		*description = "Invalid JWT Signature.";
		break;
	case SIM_JWT_BAD_TIME:
		*description =
		    "Invalid JWT: Token must be a short-lived token "
		    "(60 minutes) and in a reasonable timeframe. Check your "
		    "iat and exp values in the JWT claim.";
		break;
	case SIM_JWT_BAD_AUDIENCE:
		*description =
		    "Invalid JWT: Failed audience check. The right "
		    "audience is https://oauth2.googleapis.com/token";
		break;
	case SIM_JWT_NO_SCOPE:
		*error = "invalid_scope";
		*description = "Empty or missing scope not allowed.";
		break;
	case SIM_JWT_BAD_SCOPE:
		*error = "invalid_scope";
		*description = "Invalid OAuth scope or ID token audience "
			       "provided.";
		break;
	}
}
