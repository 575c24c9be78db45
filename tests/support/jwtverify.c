/*
 * JWT verification for the Google simulator and the tests: split, peek at
 * the claims, check the JOSE header and the RS256 signature. Moved out of
 * lib/ (the daemons only sign).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "lib/base/util.h"
#include "lib/crypto/crypto.h"
#include "tests/support/testkey.h"

#define JWT_MAX (64 * 1024)

/*
 * Split a compact JWT into its three parts: offsets of the two dots in
 * *d1 and *d2. Every part must be non-empty base64url without padding.
 * 0 or -EINVAL.
 */
static int
jwt_split(const char *jwt, size_t *d1, size_t *d2)
{
	size_t i, len, ndots = 0;

	if (jwt == NULL)
		return -EINVAL;
	len = strnlen(jwt, JWT_MAX + 1);
	if (len > JWT_MAX)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		char c = jwt[i];

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
	unsigned char *dec = NULL;
	size_t	       d1, d2, declen;
	int	       rc;

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
	static const char *alg_path[] = { "alg", NULL };
	static const char *typ_path[] = { "typ", NULL };
	static const char *crit_path[] = { "crit", NULL };
	unsigned char	  *dec = NULL;
	size_t		   declen;
	yajl_val	   root = NULL, v;
	const char	  *s;
	int		   rc;

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
	if (v != NULL &&
	    ((s = YAJL_GET_STRING(v)) == NULL || strcmp(s, "JWT") != 0)) {
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
jwt_verify_rs256(const char *jwt, const struct rsa_key *key, char **claims_json,
    char *err, size_t errlen)
{
	unsigned char *sig = NULL, *claims = NULL;
	size_t	       d1, d2, siglen = 0, clen = 0;
	yajl_val       root = NULL;
	int	       rc;

	*claims_json = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (key == NULL)
		return -EINVAL;
	if ((rc = jwt_split(jwt, &d1, &d2)) != 0) {
		util_errf(err, errlen,
		    "malformed JWT (expected three "
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
	if ((rc = b64_decode(jwt + d1 + 1, d2 - d1 - 1, &claims, &clen)) != 0) {
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
