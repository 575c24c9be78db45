/*
 * The configuration table: defaults, file parsing with line numbers,
 * environment overrides, _file secrets, bounds, unknown keys.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/ipc/config.h"

static char tmpdir[] = "/tmp/ar-config-XXXXXX";

static const char *
write_file(const char *name, const char *text)
{
	static char paths[8][256];
	static int  next;
	char	   *path = paths[next++ % 8];
	FILE	   *f;

	snprintf(path, 256, "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void
clear_env(void)
{
	unsetenv("AUDITRELAY_API_TOKEN");
	unsetenv("AUDITRELAY_API_TOKEN_FILE");
	unsetenv("AUDITRELAY_FETCH_MIN_INTERVAL");
	unsetenv("AUDITRELAY_API_LISTEN");
}

static void
test_defaults(void **state)
{
	struct config c;
	char	      err[256];

	clear_env();
	config_init(&c);
	assert_string_equal(config_str(&c, CONF_API_LISTEN), "127.0.0.1:8080");
	assert_string_equal(config_str(&c, CONF_MONGODB_URI),
	    "mongodb://127.0.0.1:27017");
	assert_string_equal(config_str(&c, CONF_MONGODB_DATABASE),
	    "auditrelay");
	assert_string_equal(config_str(&c, CONF_GOOGLE_TOKEN_URL),
	    "https://oauth2.googleapis.com/token");
	assert_string_equal(config_str(&c, CONF_GOOGLE_API_BASE),
	    "https://admin.googleapis.com");
	assert_string_equal(config_str(&c, CONF_CRYPTO_MASTER_KEY_FILE),
	    "/etc/auditrelay/master.key");
	assert_false(config_bool(&c, CONF_DELIVERY_ALLOW_PRIVATE_NETWORKS));
	assert_int_equal(config_int(&c, CONF_FETCH_MIN_INTERVAL), 60);
	assert_string_equal(config_str(&c, CONF_RUNTIME_DIR),
	    "/run/auditrelay");
	/* No token: refused with a clear message. */
	assert_int_equal(config_check(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "API token"));
	config_clear(&c);
}

static void
test_file_and_lines(void **state)
{
	struct config c;
	char	      err[512];
	const char   *p;

	clear_env();
	config_init(&c);
	p = write_file("good.conf",
	    "# comment\n\napi_listen = 0.0.0.0:9000\n"
	    "fetch_min_interval=30\n  api_token = \"abcdefghijklmnopq\"\n");
	assert_int_equal(config_load(&c, p, false, err, sizeof(err)), 0);
	assert_string_equal(config_str(&c, CONF_API_LISTEN), "0.0.0.0:9000");
	assert_int_equal(config_int(&c, CONF_FETCH_MIN_INTERVAL), 30);
	assert_int_equal(config_check(&c, err, sizeof(err)), 0);
	config_clear(&c);

	config_init(&c);
	p = write_file("unknown.conf",
	    "api_listen = 1.2.3.4:5\nbogus_key = 1\n");
	assert_int_equal(config_load(&c, p, false, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown.conf:2:"));
	assert_non_null(strstr(err, "bogus_key"));
	config_clear(&c);

	config_init(&c);
	p = write_file("range.conf", "\n\n\nfetch_min_interval = 0\n");
	assert_int_equal(config_load(&c, p, false, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "range.conf:4:"));
	assert_non_null(strstr(err, "out of range"));
	config_clear(&c);

	config_init(&c);
	p = write_file("syntax.conf", "just words\n");
	assert_int_equal(config_load(&c, p, false, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "syntax.conf:1:"));
	config_clear(&c);

	/* Value errors found by config_check name the file and line too. */
	config_init(&c);
	p = write_file("value.conf",
	    "api_token = abcdefghijklmnopq\n"
	    "# the store\nmongodb_uri = http://db:27017\n");
	assert_int_equal(config_load(&c, p, false, err, sizeof(err)), 0);
	assert_int_equal(config_check(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "value.conf:3: mongodb_uri: must start"));
	config_clear(&c);

	config_init(&c);
	p = write_file("lease.conf",
	    "api_token = abcdefghijklmnopq\n"
	    "lease_renew = 20\n");
	assert_int_equal(config_load(&c, p, false, err, sizeof(err)), 0);
	assert_int_equal(config_check(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "lease.conf:2: lease_renew:"));
	config_clear(&c);

	config_init(&c);
	setenv("AUDITRELAY_API_LISTEN", "nonsense", 1);
	p = write_file("listen.conf", "api_token = abcdefghijklmnopq\n");
	assert_int_equal(config_load(&c, p, false, err, sizeof(err)), 0);
	assert_int_equal(config_check(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(
	    strstr(err, "environment AUDITRELAY_API_LISTEN: api_listen:"));
	unsetenv("AUDITRELAY_API_LISTEN");
	config_clear(&c);

	config_init(&c);
	p = write_file("types.conf",
	    "delivery_allow_private_networks = maybe\n");
	assert_int_equal(config_load(&c, p, false, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "boolean"));
	config_clear(&c);

	/* Missing optional file: environment only; missing -c file: error. */
	config_init(&c);
	assert_int_equal(
	    config_load(&c, "/nonexistent/x.conf", true, err, sizeof(err)), 0);
	assert_int_not_equal(
	    config_load(&c, "/nonexistent/x.conf", false, err, sizeof(err)), 0);
	config_clear(&c);
}

static void
test_env_overrides(void **state)
{
	struct config c;
	char	      err[512];
	const char   *p;
	char	      tok[256];

	clear_env();
	p = write_file("env.conf", "fetch_min_interval = 30\n");
	setenv("AUDITRELAY_FETCH_MIN_INTERVAL", "90", 1);
	setenv("AUDITRELAY_API_LISTEN", "127.0.0.1:1234", 1);
	config_init(&c);
	assert_int_equal(config_load(&c, p, false, err, sizeof(err)), 0);
	assert_int_equal(config_int(&c, CONF_FETCH_MIN_INTERVAL), 90);
	assert_string_equal(config_str(&c, CONF_API_LISTEN), "127.0.0.1:1234");
	config_clear(&c);

	/* _FILE variant for secrets; the direct variable wins. */
	snprintf(tok, sizeof(tok), "%s",
	    write_file("token", "from-a-file-0123456789\n"));
	setenv("AUDITRELAY_API_TOKEN_FILE", tok, 1);
	config_init(&c);
	assert_int_equal(config_load(&c, p, false, err, sizeof(err)), 0);
	assert_string_equal(config_str(&c, CONF_API_TOKEN),
	    "from-a-file-0123456789");
	setenv("AUDITRELAY_API_TOKEN", "direct-token-0123456789", 1);
	assert_int_equal(config_apply_env(&c, err, sizeof(err)), 0);
	assert_string_equal(config_str(&c, CONF_API_TOKEN),
	    "direct-token-0123456789");
	config_clear(&c);

	/* Bad environment values are named. */
	setenv("AUDITRELAY_FETCH_MIN_INTERVAL", "1e3", 1);
	config_init(&c);
	assert_int_equal(config_load(&c, p, false, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "AUDITRELAY_FETCH_MIN_INTERVAL"));
	config_clear(&c);
	/* A token file in the config file works too. */
	clear_env();
	{
		char line[300];

		snprintf(line, sizeof(line), "api_token_file = %s\n", tok);
		p = write_file("tf.conf", line);
	}
	config_init(&c);
	assert_int_equal(config_load(&c, p, false, err, sizeof(err)), 0);
	assert_string_equal(config_str(&c, CONF_API_TOKEN),
	    "from-a-file-0123456789");
	config_clear(&c);
	/* _file is only for secrets. */
	p = write_file("nf.conf", "api_listen_file = /etc/passwd\n");
	config_init(&c);
	assert_int_equal(config_load(&c, p, false, err, sizeof(err)), -EINVAL);
	config_clear(&c);
}

static void
test_bounds_and_lists(void **state)
{
	struct config c;
	char	      err[256];
	int64_t	      v[8];

	config_init(&c);
	assert_int_equal(config_set(&c, CONF_LEASE_TTL, "2", err, sizeof(err)),
	    -EINVAL);
	assert_int_equal(config_set(&c, CONF_LEASE_TTL, "99999999999999999999",
			     err, sizeof(err)),
	    -EINVAL);
	assert_int_equal(
	    config_set(&c, CONF_LEASE_TTL, " 30", err, sizeof(err)), -EINVAL);
	assert_int_equal(config_set(&c, CONF_LEASE_TTL, "30", err, sizeof(err)),
	    0);
	assert_int_equal(config_int_list("5,30, 120", v, 8), 3);
	assert_int_equal(v[2], 120);
	assert_int_equal(config_int_list("5,x", v, 8), -EINVAL);
	assert_int_equal(config_int_list("1,2,3", v, 2), -EINVAL);
	config_set(&c, CONF_API_TOKEN, "abcdefghijklmnopqrstu", err,
	    sizeof(err));
	config_set(&c, CONF_LEASE_RENEW, "20", err, sizeof(err));
	assert_int_equal(config_check(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "lease_renew"));
	config_clear(&c);
}

static int
setup(void **state)
{
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_file_and_lines),
		cmocka_unit_test(test_env_overrides),
		cmocka_unit_test(test_bounds_and_lists),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
