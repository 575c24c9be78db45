/*
 * RS256 JSON Web Tokens (RFC 7519 / 7515 compact form): signing the
 * service-account assertion for Google's token endpoint. Verifying is the
 * Google simulator's job and lives in the test tree (tests/support).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "lib/base/util.h"
#include "lib/crypto/crypto.h"

/*
 * The JOSE header JSON: {"alg":"RS256","typ":"JWT"}, with "kid" when kid
 * is non-NULL. malloc'd or NULL.
 */
static char *
jwt_header_json(const char *kid)
{
	yajl_gen	     g;
	const unsigned char *buf;
	size_t		     len;
	char		    *out = NULL;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		return NULL;
	if (yajl_gen_map_open(g) != yajl_gen_status_ok ||
	    yajl_gen_string(g, (const unsigned char *)"alg", 3) !=
		yajl_gen_status_ok ||
	    yajl_gen_string(g, (const unsigned char *)"RS256", 5) !=
		yajl_gen_status_ok)
		goto fail;
	if (kid != NULL &&
	    (yajl_gen_string(g, (const unsigned char *)"kid", 3) !=
		    yajl_gen_status_ok ||
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
	char	      *hdr = NULL, *h64 = NULL, *c64 = NULL, *s64 = NULL;
	char	      *input = NULL, *jwt = NULL;
	unsigned char *sig = NULL;
	size_t	       siglen = 0, ilen;

	if (key == NULL || claims_json == NULL)
		return NULL;
	if ((hdr = jwt_header_json(kid)) == NULL ||
	    (h64 = b64_encode(hdr, strlen(hdr), true, false)) == NULL ||
	    (c64 = b64_encode(claims_json, strlen(claims_json), true, false)) ==
		NULL)
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
