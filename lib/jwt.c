/*
 * RS256 JSON Web Tokens (RFC 7519 / 7515 compact form): signing the
 * service-account assertion for Google's token endpoint, and verifying
 * (the Google simulator checks what the fetcher sends).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "lib/crypto.h"
#include "lib/util.h"

#define JWT_MAX		(64 * 1024)

/*
 * The JOSE header JSON: {"alg":"RS256","typ":"JWT"}, with "kid" when kid
 * is non-NULL. malloc'd or NULL.
 */
static char *
jwt_header_json(const char *kid)
{
	yajl_gen		 g;
	const unsigned char	*buf;
	size_t			 len;
	char			*out = NULL;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		return NULL;
	if (yajl_gen_map_open(g) != yajl_gen_status_ok ||
	    yajl_gen_string(g, (const unsigned char *)"alg", 3) !=
	    yajl_gen_status_ok ||
	    yajl_gen_string(g, (const unsigned char *)"RS256", 5) !=
	    yajl_gen_status_ok)
		goto fail;
	if (kid != NULL && (yajl_gen_string(g, (const unsigned char *)"kid",
	    3) != yajl_gen_status_ok ||
	    yajl_gen_string(g, (const unsigned char *)kid, strlen(kid)) !=
	    yajl_gen_status_ok))
		goto fail;
	if (yajl_gen_string(g, (const unsigned char *)"typ", 3) !=
	    yajl_gen_status_ok ||
	    yajl_gen_string(g, (const unsigned char *)"JWT", 3) !=
	    yajl_gen_status_ok ||
	    yajl_gen_map_close(g) != yajl_gen_status_ok ||
	    yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok)
		goto fail;
	if ((out = malloc(len + 1)) != NULL) {
		memcpy(out, buf, len);
		out[len] = '\0';
	}
fail:
	yajl_gen_free(g);
	return out;
}

/*
 * Sign claims_json (used verbatim) as an RS256 JWT. Returns
 * header.claims.signature (base64url, no padding), malloc'd, or NULL.
 */
char *
jwt_sign_rs256(const struct rsa_key *key, const char *kid,
    const char *claims_json)
{
	char		*hdr = NULL, *h64 = NULL, *c64 = NULL, *s64 = NULL;
	char		*input = NULL, *jwt = NULL;
	unsigned char	*sig = NULL;
	size_t		 siglen = 0, ilen;

	if (key == NULL || claims_json == NULL)
		return NULL;
	if ((hdr = jwt_header_json(kid)) == NULL ||
	    (h64 = b64_encode(hdr, strlen(hdr), true, false)) == NULL ||
	    (c64 = b64_encode(claims_json, strlen(claims_json), true,
	    false)) == NULL)
		goto fail;
	ilen = strlen(h64) + 1 + strlen(c64);
	if ((input = malloc(ilen + 1)) == NULL)
		goto fail;
	snprintf(input, ilen + 1, "%s.%s", h64, c64);
	if (rsa_sign_sha256(key, input, ilen, &sig, &siglen) != 0 ||
	    (s64 = b64_encode(sig, siglen, true, false)) == NULL)
		goto fail;
	if ((jwt = malloc(ilen + 1 + strlen(s64) + 1)) == NULL)
		goto fail;
	snprintf(jwt, ilen + 1 + strlen(s64) + 1, "%s.%s", input, s64);
fail:
	free(hdr);
	free(h64);
	free(c64);
	free(s64);
	free(input);
	free(sig);
	return jwt;
}

/*
 * Split a compact JWT into its three parts: offsets of the two dots in
 * *d1 and *d2. Every part must be non-empty base64url without padding.
 * 0 or -EINVAL.
 */
static int
jwt_split(const char *jwt, size_t *d1, size_t *d2)
{
	size_t	i, len, ndots = 0;

	if (jwt == NULL)
		return -EINVAL;
	len = strnlen(jwt, JWT_MAX + 1);
	if (len > JWT_MAX)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		char	c = jwt[i];

		if (c == '.') {
			if (ndots == 0)
				*d1 = i;
			else if (ndots == 1)
				*d2 = i;
			if (++ndots > 2)
				return -EINVAL;
			continue;
		}
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return -EINVAL;
	}
	if (ndots != 2 || *d1 == 0 || *d2 == *d1 + 1 || *d2 + 1 == len)
		return -EINVAL;
	return 0;
}

/*
 * Decode the claims part of a JWT without verifying it (to find "iss").
 * 0, -EINVAL or -ENOMEM; *claims_json malloc'd.
 */
int
jwt_peek_claims(const char *jwt, char **claims_json)
{
	unsigned char	*dec = NULL;
	size_t		 d1, d2, declen;
	int		 rc;

	*claims_json = NULL;
	if ((rc = jwt_split(jwt, &d1, &d2)) != 0)
		return rc;
	if ((rc = b64_decode(jwt + d1 + 1, d2 - d1 - 1, &dec, &declen)) != 0)
		return rc;
	if (memchr(dec, '\0', declen) != NULL) {
		free(dec);
		return -EINVAL;
	}
	*claims_json = (char *)dec;
	return 0;
}

/*
 * Check the JOSE header: a JSON object whose "alg" is "RS256", "typ" (if
 * any) "JWT", and no "crit". 0 or -EINVAL with err[] set.
 */
static int
jwt_check_header(const char *h64, size_t len, char *err, size_t errlen)
{
	static const char	*alg_path[] = { "alg", NULL };
	static const char	*typ_path[] = { "typ", NULL };
	static const char	*crit_path[] = { "crit", NULL };
	unsigned char		*dec = NULL;
	size_t			 declen;
	yajl_val		 root = NULL, v;
	const char		*s;
	int			 rc;

	if ((rc = b64_decode(h64, len, &dec, &declen)) != 0) {
		util_errf(err, errlen, "JWT header is not base64url");
		return rc;
	}
	if (memchr(dec, '\0', declen) != NULL ||
	    (root = yajl_tree_parse((const char *)dec, NULL, 0)) == NULL ||
	    !YAJL_IS_OBJECT(root)) {
		util_errf(err, errlen, "JWT header is not a JSON object");
		rc = -EINVAL;
		goto fail;
	}
	v = yajl_tree_get(root, alg_path, yajl_t_string);
	if (v == NULL || (s = YAJL_GET_STRING(v)) == NULL) {
		util_errf(err, errlen, "JWT header has no \"alg\"");
		rc = -EINVAL;
		goto fail;
	}
	if (strcmp(s, "RS256") != 0) {
		util_errf(err, errlen, "JWT alg must be RS256, not \"%.16s\"",
		    s);
		rc = -EINVAL;
		goto fail;
	}
	v = yajl_tree_get(root, typ_path, yajl_t_any);
	if (v != NULL && ((s = YAJL_GET_STRING(v)) == NULL ||
	    strcmp(s, "JWT") != 0)) {
		util_errf(err, errlen, "JWT typ must be \"JWT\"");
		rc = -EINVAL;
		goto fail;
	}
	if (yajl_tree_get(root, crit_path, yajl_t_any) != NULL) {
		util_errf(err, errlen, "JWT header has unsupported \"crit\"");
		rc = -EINVAL;
		goto fail;
	}
	rc = 0;
fail:
	yajl_tree_free(root);
	free(dec);
	return rc;
}

/*
 * Verify a compact RS256 JWT against key. On success *claims_json is the
 * decoded claims (a JSON object, malloc'd). 0, -EBADMSG for a bad
 * signature, -EINVAL for a malformed token or another alg (err[] says
 * which), -ENOMEM.
 */
int
jwt_verify_rs256(const char *jwt, const struct rsa_key *key,
    char **claims_json, char *err, size_t errlen)
{
	unsigned char	*sig = NULL, *claims = NULL;
	size_t		 d1, d2, siglen = 0, clen = 0;
	yajl_val	 root = NULL;
	int		 rc;

	*claims_json = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (key == NULL)
		return -EINVAL;
	if ((rc = jwt_split(jwt, &d1, &d2)) != 0) {
		util_errf(err, errlen, "malformed JWT (expected three "
		    "base64url parts)");
		return rc;
	}
	if ((rc = jwt_check_header(jwt, d1, err, errlen)) != 0)
		return rc;
	if ((rc = b64_decode(jwt + d2 + 1, strlen(jwt + d2 + 1), &sig,
	    &siglen)) != 0) {
		util_errf(err, errlen, "JWT signature is not base64url");
		goto fail;
	}
	if ((rc = b64_decode(jwt + d1 + 1, d2 - d1 - 1, &claims,
	    &clen)) != 0) {
		util_errf(err, errlen, "JWT claims are not base64url");
		goto fail;
	}
	if ((rc = rsa_verify_sha256(key, jwt, d2, sig, siglen)) != 0) {
		if (rc == -EBADMSG)
			util_errf(err, errlen, "JWT signature does not verify");
		goto fail;
	}
	if (memchr(claims, '\0', clen) != NULL ||
	    (root = yajl_tree_parse((const char *)claims, NULL, 0)) == NULL ||
	    !YAJL_IS_OBJECT(root)) {
		util_errf(err, errlen, "JWT claims are not a JSON object");
		rc = -EINVAL;
		goto fail;
	}
	*claims_json = (char *)claims;
	claims = NULL;
	rc = 0;
fail:
	yajl_tree_free(root);
	free(sig);
	free(claims);
	return rc;
}
