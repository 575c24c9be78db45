/*
 * The simulator's OAuth 2.0 JWT-bearer assertion check (RFC 7523 as Google
 * applies it): RS256 signature against the keys registered for "iss",
 * audience, iat/exp window, scope syntax. Pure: keys come from a callback,
 * the clock from the caller, so unit tests drive it with fixed values.
 */
#ifndef AR_TESTS_GOOGLE_SIM_SIM_JWT_H
#define AR_TESTS_GOOGLE_SIM_SIM_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "lib/crypto/crypto.h"

#define SIM_JWT_SKEW	     300  /* seconds of clock skew tolerated */
#define SIM_JWT_MAX_LIFETIME 3600 /* exp - iat at most */
#define SIM_JWT_REPORTS_SCOPE \
	"https://www.googleapis.com/auth/admin.reports.audit.readonly"

enum sim_jwt_result {
	SIM_JWT_OK = 0,
	SIM_JWT_MALFORMED,	/* not three parts, bad base64/JSON */
	SIM_JWT_UNKNOWN_CLIENT, /* iss names no service account */
	SIM_JWT_BAD_SIGNATURE,	/* no active key verifies it */
	SIM_JWT_BAD_TIME,	/* iat/exp missing, too long, stale */
	SIM_JWT_BAD_AUDIENCE,
	SIM_JWT_NO_SCOPE,
	SIM_JWT_BAD_SCOPE,
};

struct sim_jwt_claims {
	char	iss[256];
	char	sub[256]; /* "" when absent */
	char	scope[1024];
	char	kid[128]; /* "" when the header has none */
	int64_t iat;
	int64_t exp;
};

/*
 * Key lookup: fill keys[0..max) with the active keys of service account
 * iss (only the one named kid when kid is non-empty and known). Returns
 * the number of keys (0 when all were deleted) or -ENOENT when iss is
 * unknown.
 */
typedef int (*sim_jwt_keys_fn)(void *arg, const char *iss, const char *kid,
    const struct rsa_key **keys, size_t max);

/*
 * Check assertion jwt at time now (seconds since the epoch) against the
 * accepted audiences auds[0..naud). Fills *claims as far as it got.
 * Returns a sim_jwt_result.
 */
enum sim_jwt_result sim_jwt_check(const char *jwt, int64_t now,
    const char *const *auds, size_t naud, sim_jwt_keys_fn keys, void *arg,
    struct sim_jwt_claims *claims);

/*
 * Google's answer for a result: HTTP status, "error" and
 * "error_description" as the real token endpoint words them.
 */
void sim_jwt_error(enum sim_jwt_result r, int *status, const char **error,
    const char **description);

/* true when the space-separated scope list contains scope. */
int sim_jwt_scope_has(const char *list, const char *scope);

#endif
