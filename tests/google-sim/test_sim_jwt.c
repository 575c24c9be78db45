/*
 * Unit tests of the simulator's JWT-bearer assertion check (sim_jwt.c):
 * every outcome against keys generated here and signed with lib/crypto.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/crypto/crypto.h"
#include "sim_jwt.h"
#include "tests/support/testkey.h"

#define NOW 1790000000LL
#define ISS "relay@proj.iam.gserviceaccount.com"
#define AUD "http://127.0.0.1:9/token"

static struct rsa_key *key_a, *key_b;
static int	       nkeys_active = 1; /* 0: all deleted */

static int
keys_cb(void *arg, const char *iss, const char *kid,
    const struct rsa_key **keys, size_t max)
{
	if (strcmp(iss, ISS) != 0)
		return -2;
	if (nkeys_active == 0)
		return 0;
	if (kid[0] != '\0' && strcmp(kid, "kid-a") != 0)
		return 0;
	keys[0] = key_a;
	return 1;
}

static int
setup(void **state)
{
	if (crypto_init() < 0 || rsa_key_generate(2048, &key_a) < 0 ||
	    rsa_key_generate(2048, &key_b) < 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	rsa_key_free(key_a);
	rsa_key_free(key_b);
	return 0;
}

/* Sign claims built from the parts with key; malloc'd JWT. */
static char *
mk(const struct rsa_key *key, const char *kid, const char *iss, const char *aud,
    const char *scope, long long iat, long long exp)
{
	char claims[1024];

	snprintf(claims, sizeof(claims),
	    "{\"iss\":\"%s\",\"sub\":"
	    "\"admin@example.com\",\"scope\":\"%s\",\"aud\":\"%s\","
	    "\"iat\":%lld,\"exp\":%lld}",
	    iss, scope, aud, iat, exp);
	return jwt_sign_rs256(key, kid, claims);
}

static enum sim_jwt_result
check(const char *jwt, struct sim_jwt_claims *c)
{
	const char *auds[] = { AUD, "https://oauth2.googleapis.com/token" };

	return sim_jwt_check(jwt, NOW, auds, 2, keys_cb, NULL, c);
}

static void
test_ok(void **state)
{
	struct sim_jwt_claims c;
	char *j = mk(key_a, NULL, ISS, AUD, SIM_JWT_REPORTS_SCOPE, NOW,
	    NOW + 3600);

	assert_non_null(j);
	assert_int_equal(check(j, &c), SIM_JWT_OK);
	assert_string_equal(c.iss, ISS);
	assert_string_equal(c.sub, "admin@example.com");
	assert_string_equal(c.scope, SIM_JWT_REPORTS_SCOPE);
	assert_int_equal(c.exp - c.iat, 3600);
	free(j);
	/* Google's own token URL is an accepted audience too; kid used. */
	j = mk(key_a, "kid-a", ISS, "https://oauth2.googleapis.com/token",
	    SIM_JWT_REPORTS_SCOPE, NOW - 10, NOW + 100);
	assert_int_equal(check(j, &c), SIM_JWT_OK);
	assert_string_equal(c.kid, "kid-a");
	free(j);
}

static void
test_bad_signature(void **state)
{
	struct sim_jwt_claims c;
	char		     *j;
	size_t		      n;

	j = mk(key_b, NULL, ISS, AUD, SIM_JWT_REPORTS_SCOPE, NOW, NOW + 60);
	assert_int_equal(check(j, &c), SIM_JWT_BAD_SIGNATURE);
	free(j);
	/* Tampered signature byte. */
	j = mk(key_a, NULL, ISS, AUD, SIM_JWT_REPORTS_SCOPE, NOW, NOW + 60);
	n = strlen(j);
	j[n - 5] = j[n - 5] == 'A' ? 'B' : 'A';
	assert_int_equal(check(j, &c), SIM_JWT_BAD_SIGNATURE);
	free(j);
	/* A kid naming another (deleted) key. */
	j = mk(key_a, "kid-gone", ISS, AUD, SIM_JWT_REPORTS_SCOPE, NOW,
	    NOW + 60);
	assert_int_equal(check(j, &c), SIM_JWT_BAD_SIGNATURE);
	free(j);
	/* Every key deleted. */
	j = mk(key_a, NULL, ISS, AUD, SIM_JWT_REPORTS_SCOPE, NOW, NOW + 60);
	nkeys_active = 0;
	assert_int_equal(check(j, &c), SIM_JWT_BAD_SIGNATURE);
	nkeys_active = 1;
	free(j);
}

static void
test_unknown_client(void **state)
{
	struct sim_jwt_claims c;
	char		     *j = mk(key_a, NULL,
			    "nobody@x.iam.gserviceaccount."
					    "com",
			    AUD, SIM_JWT_REPORTS_SCOPE, NOW, NOW + 60);

	assert_int_equal(check(j, &c), SIM_JWT_UNKNOWN_CLIENT);
	free(j);
}

static void
test_times(void **state)
{
	struct sim_jwt_claims c;
	char		     *j;
	const char	     *s = SIM_JWT_REPORTS_SCOPE;

	j = mk(key_a, NULL, ISS, AUD, s, NOW, NOW + 3601); /* > 1 h */
	assert_int_equal(check(j, &c), SIM_JWT_BAD_TIME);
	free(j);
	j = mk(key_a, NULL, ISS, AUD, s, NOW, NOW); /* exp = iat */
	assert_int_equal(check(j, &c), SIM_JWT_BAD_TIME);
	free(j);
	j = mk(key_a, NULL, ISS, AUD, s, NOW - 7200, NOW - 3600); /* stale */
	assert_int_equal(check(j, &c), SIM_JWT_BAD_TIME);
	free(j);
	j = mk(key_a, NULL, ISS, AUD, s, NOW + 600, NOW + 900); /* future */
	assert_int_equal(check(j, &c), SIM_JWT_BAD_TIME);
	free(j);
	/* Within the 5 minutes of skew: accepted. */
	j = mk(key_a, NULL, ISS, AUD, s, NOW + 250, NOW + 3000);
	assert_int_equal(check(j, &c), SIM_JWT_OK);
	free(j);
	j = mk(key_a, NULL, ISS, AUD, s, NOW - 3700, NOW - 200);
	assert_int_equal(check(j, &c), SIM_JWT_OK);
	free(j);
	/* iat as a string is not a NumericDate. */
	j = jwt_sign_rs256(key_a, NULL,
	    "{\"iss\":\"" ISS "\",\"aud\":\"" AUD
	    "\",\"scope\":\"" SIM_JWT_REPORTS_SCOPE "\",\"iat\":\"1\","
	    "\"exp\":1790000100}");
	assert_int_equal(check(j, &c), SIM_JWT_BAD_TIME);
	free(j);
}

static void
test_audience_scope(void **state)
{
	struct sim_jwt_claims c;
	char		     *j;

	j = mk(key_a, NULL, ISS, "https://example.com/token",
	    SIM_JWT_REPORTS_SCOPE, NOW, NOW + 60);
	assert_int_equal(check(j, &c), SIM_JWT_BAD_AUDIENCE);
	free(j);
	j = mk(key_a, NULL, ISS, AUD, "", NOW, NOW + 60);
	assert_int_equal(check(j, &c), SIM_JWT_NO_SCOPE);
	free(j);
	j = mk(key_a, NULL, ISS, AUD, "admin.googleapis.com", NOW, NOW + 60);
	assert_int_equal(check(j, &c), SIM_JWT_BAD_SCOPE);
	free(j);
	j = mk(key_a, NULL, ISS, AUD,
	    SIM_JWT_REPORTS_SCOPE " https://www.googleapis.com/auth/drive", NOW,
	    NOW + 60);
	assert_int_equal(check(j, &c), SIM_JWT_OK);
	assert_true(sim_jwt_scope_has(c.scope, SIM_JWT_REPORTS_SCOPE));
	assert_true(sim_jwt_scope_has(c.scope,
	    "https://www.googleapis.com/auth/drive"));
	assert_false(
	    sim_jwt_scope_has(c.scope, "https://www.googleapis.com/auth/dri"));
	free(j);
}

static void
test_malformed(void **state)
{
	struct sim_jwt_claims c;

	assert_int_equal(check("", &c), SIM_JWT_MALFORMED);
	assert_int_equal(check("abc", &c), SIM_JWT_MALFORMED);
	assert_int_equal(check("a.b", &c), SIM_JWT_MALFORMED);
	assert_int_equal(check("a.b.c.d", &c), SIM_JWT_MALFORMED);
	assert_int_equal(check("!!!.###.$$$", &c), SIM_JWT_MALFORMED);
	/* Valid base64 but not JSON. */
	assert_int_equal(check("eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", &c),
	    SIM_JWT_MALFORMED);
	/* JSON claims without iss. */
	assert_int_equal(check("eyJhbGciOiJSUzI1NiJ9.e30.c2ln", &c),
	    SIM_JWT_MALFORMED);
}

static void
test_error_wording(void **state)
{
	const char *e, *d;
	int	    st;

	sim_jwt_error(SIM_JWT_BAD_SIGNATURE, &st, &e, &d);
	assert_int_equal(st, 400);
	assert_string_equal(e, "invalid_grant");
	assert_string_equal(d, "Invalid JWT Signature.");
	sim_jwt_error(SIM_JWT_UNKNOWN_CLIENT, &st, &e, &d);
	assert_int_equal(st, 401);
	assert_string_equal(e, "invalid_client");
	assert_string_equal(d, "The OAuth client was not found.");
	sim_jwt_error(SIM_JWT_BAD_TIME, &st, &e, &d);
	assert_string_equal(e, "invalid_grant");
	assert_string_equal(d,
	    "Invalid JWT: Token must be a short-lived "
	    "token (60 minutes) and in a reasonable timeframe. Check your iat "
	    "and exp values in the JWT claim.");
	sim_jwt_error(SIM_JWT_NO_SCOPE, &st, &e, &d);
	assert_string_equal(e, "invalid_scope");
	sim_jwt_error(SIM_JWT_BAD_SCOPE, &st, &e, &d);
	assert_string_equal(e, "invalid_scope");
	sim_jwt_error(SIM_JWT_OK, &st, &e, &d);
	assert_int_equal(st, 200);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ok),
		cmocka_unit_test(test_bad_signature),
		cmocka_unit_test(test_unknown_client),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_audience_scope),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_error_wording),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
