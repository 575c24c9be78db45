/*
 * Unit tests of apid/validate.c (compiled in: it is daemon code, pure
 * functions over parsed JSON): add-source, credentials, patch, callback
 * URLs, defaults and the fields named in errors.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "apid/validate.c"
#include "lib/base/json.h"
#include "tests/support/testkey.h"

static char *pem;      /* a valid 2048-bit PKCS#8 key */
static char *pem_json; /* the same, JSON-escaped with quotes */

static int
setup(void **state)
{
	struct rsa_key *k = NULL;
	struct jsonw   *w;

	assert_int_equal(crypto_init(), 0);
	assert_int_equal(rsa_key_generate(2048, &k), 0);
	pem = rsa_key_to_pem(k);
	assert_non_null(pem);
	rsa_key_free(k);
	w = jsonw_new();
	jsonw_str(w, pem);
	pem_json = jsonw_steal(w, NULL);
	jsonw_free(w);
	return 0;
}

static int
teardown(void **state)
{
	free(pem);
	free(pem_json);
	return 0;
}

/* Parse a body built from fmt, where %K stands for the PEM. */
static yajl_val
body(const char *fmt)
{
	char	    buf[8192], err[128];
	const char *k = strstr(fmt, "%K");
	yajl_val    v = NULL;

	if (k != NULL)
		snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(k - fmt), fmt,
		    pem_json, k + 2);
	else
		snprintf(buf, sizeof(buf), "%s", fmt);
	if (json_parse(buf, strlen(buf), 32, &v, err, sizeof(err)) != 0)
		fail_msg("test body does not parse: %s", err);
	return v;
}

#define CREDS                                                 \
	"{\"clientEmail\":\"svc@p.iam.gserviceaccount.com\"," \
	"\"privateKey\":%K,\"subject\":\"admin@example.com\"}"

/* Run validate_add_source; return the error field ("" when valid). */
static const char *
add(const char *fmt, bool allow_private, struct src_input *in)
{
	static struct verr e;
	yajl_val	   v = body(fmt);
	int		   rc;

	memset(&e, 0, sizeof(e));
	rc = validate_add_source(v, 60, allow_private, in, &e);
	yajl_tree_free(v);
	if (rc == 0)
		return "";
	assert_int_equal(e.status, 400);
	assert_true(e.message[0] != '\0');
	return e.field;
}

static void
test_add_ok_defaults(void **state)
{
	struct src_input in;

	assert_string_equal(add("{\"sourceType\":\"google_workspace\","
				"\"credentials\":" CREDS ",\"callbackUrl\":"
				"\"https://hooks.example.com/x\"}",
				false, &in),
	    "");
	assert_string_equal(in.creds.client_email,
	    "svc@p.iam.gserviceaccount.com");
	assert_string_equal(in.creds.subject, "admin@example.com");
	assert_int_equal(in.interval, 300);
	assert_int_equal(in.napps, validate_default_napps);
	assert_string_equal(in.cb_host, "hooks.example.com");
	assert_false(in.cb_literal);
	src_input_clear(&in);
}

static void
test_add_fields(void **state)
{
	struct src_input in;
	static const struct {
		const char *body;
		const char *field;
	} cases[] = {
		{ "{}", "sourceType" },
		{ "{\"sourceType\":\"x\"}", "sourceType" },
		{ "{\"sourceType\":\"google_workspace\",\"zz\":1}", "zz" },
		{ "{\"sourceType\":\"google_workspace\"}", "credentials" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":{}}",
		    "credentials.clientEmail" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":"
		  "{\"clientEmail\":\"a@b.co\",\"privateKey\":\"x\","
		  "\"subject\":\"a@b.co\"}}",
		    "credentials.privateKey" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":" CREDS
		  ",\"callbackUrl\":\"http://127.0.0.1/\","
		  "\"logFetchInterval\":59}",
		    "logFetchInterval" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":" CREDS
		  ",\"callbackUrl\":\"http://127.0.0.1/\","
		  "\"logFetchInterval\":60.5}",
		    "logFetchInterval" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":" CREDS
		  ",\"callbackUrl\":\"http://127.0.0.1/\","
		  "\"applications\":[\"login\",\"login\"]}",
		    "applications[1]" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":" CREDS
		  ",\"callbackUrl\":\"http://127.0.0.1/\"}",
		    "callbackUrl" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":" CREDS
		  ",\"callbackUrl\":\"http://u:p@8.8.8.8/\"}",
		    "callbackUrl" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":" CREDS
		  ",\"callbackUrl\":\"http://0x08080808/\"}",
		    "callbackUrl" },
		/* Spellings libcurl would rewrite or read otherwise. */
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":" CREDS
		  ",\"callbackUrl\":\"http://127.1/\"}",
		    "callbackUrl" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":" CREDS
		  ",\"callbackUrl\":\"http://2130706433/\"}",
		    "callbackUrl" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":" CREDS
		  ",\"callbackUrl\":\"http://0177.0.0.1/\"}",
		    "callbackUrl" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":" CREDS
		  ",\"callbackUrl\":\"http://8.8.8.8:0/\"}",
		    "callbackUrl" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":" CREDS
		  ",\"callbackUrl\":\"http://8.8.8.8:99999/\"}",
		    "callbackUrl" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":" CREDS
		  ",\"callbackUrl\":\"http://[::1]/\"}",
		    "callbackUrl" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":" CREDS
		  ",\"callbackUrl\":\"http://[::ffff:127.0.0.1]/\"}",
		    "callbackUrl" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":" CREDS
		  ",\"callbackUrl\":\"http://example.com#frag\"}",
		    "callbackUrl" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":" CREDS
		  ",\"callbackUrl\":\"http://example.com@127.0.0.1/\"}",
		    "callbackUrl" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":" CREDS
		  ",\"callbackUrl\":\"http:///x\"}",
		    "callbackUrl" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":" CREDS
		  ",\"callbackUrl\":\"ftp://example.com/\"}",
		    "callbackUrl" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":" CREDS
		  ",\"callbackUrl\":\"http://ex ample.com/\"}",
		    "callbackUrl" },
		{ "{\"sourceType\":\"google_workspace\",\"credentials\":" CREDS
		  ",\"callbackUrl\":\"http://u@example.com/\"}",
		    "callbackUrl" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *f = add(cases[i].body, false, &in);

		if (strcmp(f, cases[i].field) != 0)
			fail_msg("case %zu: field \"%s\", wanted \"%s\"", i, f,
			    cases[i].field);
	}
	/* Loopback is fine when private networks are allowed. */
	assert_string_equal(
	    add("{\"sourceType\":\"google_workspace\","
		"\"credentials\":" CREDS ",\"callbackUrl\":"
		"\"http://[::1]:8080/x\",\"logFetchInterval\":86400}",
		true, &in),
	    "");
	assert_string_equal(in.cb_host, "::1");
	assert_true(in.cb_literal);
	assert_int_equal(in.interval, 86400);
	src_input_clear(&in);
}

static void
test_keyfile_forms(void **state)
{
	struct src_creds c;
	struct verr	 e;
	yajl_val	 v;

	v = body(
	    "{\"type\":\"service_account\",\"client_email\":"
	    "\"s@p.iam.gserviceaccount.com\",\"private_key\":%K,"
	    "\"private_key_id\":\"abc123\",\"subject\":\"a@example.com\"}");
	assert_int_equal(validate_credentials(v, "credentials", &c, &e), 0);
	assert_string_equal(c.private_key_id, "abc123");
	assert_string_equal(c.subject, "a@example.com");
	src_creds_clear(&c);
	yajl_tree_free(v);
	v = body("{\"serviceAccountKey\":{\"type\":\"service_account\","
		 "\"client_email\":\"s@p.iam.gserviceaccount.com\","
		 "\"private_key\":%K},\"subject\":\"a@example.com\","
		 "\"scopes\":[\"admin.googleapis.com\"]}");
	assert_int_equal(validate_credentials(v, "", &c, &e), 0);
	src_creds_clear(&c);
	yajl_tree_free(v);
	v = body("{\"serviceAccountKey\":{\"type\":\"service_account\"},"
		 "\"clientEmail\":\"s@p.co\",\"subject\":\"a@example.com\"}");
	assert_int_equal(validate_credentials(v, "", &c, &e), -EINVAL);
	assert_string_equal(e.field, "serviceAccountKey");
	yajl_tree_free(v);
}

static void
test_patch(void **state)
{
	struct src_input in;
	struct verr	 e;
	yajl_val	 v;

	v = body("{\"paused\":true,\"logFetchInterval\":120}");
	assert_int_equal(validate_patch(v, 60, false, &in, &e), 0);
	assert_true(in.has_paused && in.paused && in.has_interval);
	assert_false(in.has_callback || in.has_apps);
	src_input_clear(&in);
	yajl_tree_free(v);
	v = body("{}");
	assert_int_equal(validate_patch(v, 60, false, &in, &e), -EINVAL);
	yajl_tree_free(v);
	v = body("{\"paused\":1}");
	assert_int_equal(validate_patch(v, 60, false, &in, &e), -EINVAL);
	assert_string_equal(e.field, "paused");
	yajl_tree_free(v);
	v = body("{\"watermarks\":true}");
	assert_int_equal(validate_patch(v, 60, false, &in, &e), 0);
	assert_true(in.has_watermarks && in.watermarks && !in.has_paused);
	src_input_clear(&in);
	yajl_tree_free(v);
	v = body("{\"watermarks\":\"yes\"}");
	assert_int_equal(validate_patch(v, 60, false, &in, &e), -EINVAL);
	assert_string_equal(e.field, "watermarks");
	assert_string_equal(e.code, "invalid_type");
	yajl_tree_free(v);
}

/* id, subject and initialLookback of an add-source body (issue 14). */
static void
test_id_subject_lookback(void **state)
{
	struct src_input in;
	struct verr	 e;
	yajl_val	 v;

	/* The brief's body as written: placeholder id, no subject. */
	assert_string_equal(
	    add("{\"id\":\"uuid\",\"sourceType\":"
		"\"google_workspace\",\"credentials\":{\"clientEmail\":"
		"\"svc@p.iam.gserviceaccount.com\",\"privateKey\":%K,"
		"\"scopes\":[\"admin.googleapis.com\"]},\"logFetchInterval\":300,"
		"\"callbackUrl\":\"https://example.com/webhook\"}",
		false, &in),
	    "");
	assert_false(in.has_id);
	assert_null(in.creds.subject);
	assert_false(in.has_lookback);
	src_input_clear(&in);
	/* A client id, kept in lower case; a lookback. */
	assert_string_equal(
	    add("{\"id\":\"3F0C2A9E-6D1B-4C8E-9A57-"
		"2B1D0E4F7A61\",\"sourceType\":\"google_workspace\","
		"\"credentials\":" CREDS ",\"initialLookback\":15552000,"
		"\"callbackUrl\":\"https://example.com/webhook\"}",
		false, &in),
	    "");
	assert_true(in.has_id);
	assert_string_equal(in.id, "3f0c2a9e-6d1b-4c8e-9a57-2b1d0e4f7a61");
	assert_true(in.has_lookback);
	assert_int_equal(in.lookback, 15552000);
	src_input_clear(&in);
	assert_string_equal(add("{\"id\":\"nope\",\"sourceType\":"
				"\"google_workspace\",\"credentials\":" CREDS
				",\"callbackUrl\":"
				"\"https://example.com/webhook\"}",
				false, &in),
	    "id");
	assert_string_equal(add("{\"id\":12,\"sourceType\":"
				"\"google_workspace\",\"credentials\":" CREDS
				",\"callbackUrl\":"
				"\"https://example.com/webhook\"}",
				false, &in),
	    "id");
	assert_string_equal(
	    add("{\"sourceType\":\"google_workspace\","
		"\"credentials\":" CREDS ",\"initialLookback\":15552001,"
		"\"callbackUrl\":\"https://example.com/webhook\"}",
		false, &in),
	    "initialLookback");
	assert_string_equal(
	    add("{\"sourceType\":\"google_workspace\","
		"\"credentials\":" CREDS ",\"initialLookback\":0,"
		"\"callbackUrl\":\"https://example.com/webhook\"}",
		false, &in),
	    "initialLookback");
	/* A subject, when given, must still be an address. */
	v = body("{\"clientEmail\":\"s@p.iam.gserviceaccount.com\","
		 "\"privateKey\":%K,\"subject\":\"admin\"}");
	assert_int_equal(validate_credentials(v, "credentials", &in.creds, &e),
	    -EINVAL);
	assert_string_equal(e.field, "credentials.subject");
	yajl_tree_free(v);
	/* PATCH takes initialLookback. */
	v = body("{\"initialLookback\":86400,\"paused\":true}");
	assert_int_equal(validate_patch(v, 60, false, &in, &e), 0);
	assert_true(in.has_lookback && in.lookback == 86400 && in.paused);
	src_input_clear(&in);
	yajl_tree_free(v);
	assert_true(validate_uuid("3f0c2a9e-6d1b-4c8e-9a57-2b1d0e4f7a61"));
	assert_false(validate_uuid("3f0c2a9e-6d1b-4c8e-9a57-2b1d0e4f7a6"));
	assert_false(validate_uuid("3f0c2a9e+6d1b-4c8e-9a57-2b1d0e4f7a61"));
	assert_true(validate_uuid("3F0C2A9E-6D1B-4C8E-9A57-2B1D0E4F7A61"));
	/* Source ids in a path: lower-case only, as we hand them out. */
	assert_true(
	    validate_uuid_lower("3f0c2a9e-6d1b-4c8e-9a57-2b1d0e4f7a61"));
	assert_false(
	    validate_uuid_lower("3F0C2A9E-6D1B-4C8E-9A57-2B1D0E4F7A61"));
	assert_false(
	    validate_uuid_lower("3f0c2a9e-6d1b-4c8e-9a57-2b1d0e4f7a6"));
	assert_false(
	    validate_uuid_lower("3f0c2a9e-6d1b-4c8e-9a57+2b1d0e4f7a61"));
}

static void
test_apps_known(void **state)
{
	size_t i;

	for (i = 0; i < validate_default_napps; i++)
		assert_true(validate_app_known(validate_default_apps[i]));
	assert_false(validate_app_known("Login"));
	assert_false(validate_app_known(""));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_ok_defaults),
		cmocka_unit_test(test_add_fields),
		cmocka_unit_test(test_keyfile_forms),
		cmocka_unit_test(test_patch),
		cmocka_unit_test(test_id_subject_lookback),
		cmocka_unit_test(test_apps_known),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
