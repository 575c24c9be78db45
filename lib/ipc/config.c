/*
 * The configuration table and its parsers. See config.h.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"
#include "lib/ipc/config.h"

#define CONFIG_LINE_MAX	  4096
#define CONFIG_SECRET_MAX 65536

static const struct config_def config_table[CONF__COUNT] = {
	[CONF_API_LISTEN] = { "api_listen", CONFIG_STRING, "127.0.0.1:8080", 0,
	    0, false, "host:port of the REST API" },
	[CONF_API_TOKEN] = { "api_token", CONFIG_STRING, NULL, 0, 0, true,
	    "bearer token the REST API requires" },
	[CONF_API_MAX_CONNECTIONS] = { "api_max_connections", CONFIG_INT,
	    "1000", 8, 1000000, false,
	    "open API connections at most (kept under the fd limit)" },
	[CONF_API_MAX_SOURCES] = { "api_max_sources", CONFIG_INT, "100000", 1,
	    100000000, false, "sources at most; add-source beyond is 507" },
	[CONF_MONGODB_URI] = { "mongodb_uri", CONFIG_STRING,
	    "mongodb://127.0.0.1:27017", 0, 0, true,
	    "MongoDB connection string" },
	[CONF_MONGODB_DATABASE] = { "mongodb_database", CONFIG_STRING,
	    "auditrelay", 0, 0, false, "database name" },
	[CONF_GOOGLE_TOKEN_URL] = { "google_token_url", CONFIG_STRING,
	    "https://oauth2.googleapis.com/token", 0, 0, false,
	    "OAuth token endpoint" },
	[CONF_GOOGLE_API_BASE] = { "google_api_base", CONFIG_STRING,
	    "https://admin.googleapis.com", 0, 0, false, "Reports API root" },
	[CONF_CRYPTO_MASTER_KEY_FILE] = { "crypto_master_key_file",
	    CONFIG_STRING, "/etc/auditrelay/master.key", 0, 0, false,
	    "32-byte key (raw or base64) that encrypts credentials" },
	[CONF_DELIVERY_ALLOW_PRIVATE_NETWORKS] = { "delivery_allow_private_networks",
	    CONFIG_BOOL, "0", 0, 0, false,
	    "let callbacks reach loopback/private addresses" },
	[CONF_FETCH_MIN_INTERVAL] = { "fetch_min_interval", CONFIG_INT, "60", 1,
	    86400, false, "smallest logFetchInterval accepted, seconds" },
	[CONF_RUNTIME_DIR] = { "runtime_dir", CONFIG_STRING, "/run/auditrelay",
	    0, 0, false, "where Unix sockets live" },
	[CONF_INSTANCE_ID] = { "instance_id", CONFIG_STRING, NULL, 0, 0, false,
	    "name of this instance in leases (default: hostname and a stable hash "
	    "of machine-id and runtime_dir)" },
	[CONF_LOG_VERBOSE] = { "log_verbose", CONFIG_INT, "0", 0, 2, false,
	    "0 info, 1 debug, 2 more debug" },
	[CONF_SHUTDOWN_GRACE] = { "shutdown_grace", CONFIG_INT, "4", 1, 60,
	    false, "seconds children get to finish on shutdown" },
	[CONF_PING_INTERVAL] = { "ping_interval", CONFIG_INT, "2", 1, 60, false,
	    "seconds between keep-alive pings" },
	[CONF_RESCAN_INTERVAL] = { "rescan_interval", CONFIG_INT, "5", 1, 3600,
	    false, "seconds between re-reads of the store" },
	[CONF_FETCH_OVERLAP] = { "fetch_overlap", CONFIG_INT, "600", 0, 86400,
	    false,
	    "seconds re-read before the cursor (whole every tenth of it)" },
	[CONF_FETCH_REREAD_AGES] = { "fetch_reread_ages", CONFIG_STRING, "auto",
	    0, 0, false,
	    "ages (s) at which closed windows are read again: auto, "
	    "auto:A,B,... (tuned per application) or A,B,... (fixed)" },
	[CONF_FETCH_INITIAL_LOOKBACK] = { "fetch_initial_lookback", CONFIG_INT,
	    "3600", 0, 15552000, false, "first poll starts this long ago (s)" },
	[CONF_FETCH_MAX_CONCURRENCY] = { "fetch_max_concurrency", CONFIG_INT,
	    "16", 1, 1024, false, "requests to Google in flight overall" },
	[CONF_FETCH_CLIENT_CONCURRENCY] = { "fetch_client_concurrency",
	    CONFIG_INT, "4", 1, 64, false,
	    "requests in flight per service account" },
	[CONF_FETCH_CREDENTIALS_RETRY] = { "fetch_credentials_retry",
	    CONFIG_INT, "900", 1, 86400, false,
	    "seconds between retries of refused credentials" },
	[CONF_FETCH_TIMEOUT] = { "fetch_timeout", CONFIG_INT, "60", 1, 600,
	    false, "seconds a Google request may take" },
	[CONF_DELIVERY_BATCH_MAX_LOGS] = { "delivery_batch_max_logs",
	    CONFIG_INT, "500", 1, 100000, false, "logs per batch" },
	[CONF_DELIVERY_BATCH_MAX_BYTES] = { "delivery_batch_max_bytes",
	    CONFIG_INT, "1048576", 1024, 67108864, false, "bytes per batch" },
	[CONF_DELIVERY_LINGER_MS] = { "delivery_linger_ms", CONFIG_INT, "500",
	    0, 60000, false, "wait this long for a batch to fill" },
	[CONF_DELIVERY_RETRY_SCHEDULE] = { "delivery_retry_schedule",
	    CONFIG_STRING, "5,30,120,600,1800,3600,7200", 0, 0, false,
	    "retry delays (s); the last repeats" },
	[CONF_DELIVERY_MAX_AGE] = { "delivery_max_age", CONFIG_INT, "259200", 1,
	    31536000, false, "seconds a batch is retried before dead letter" },
	[CONF_DELIVERY_DEAD_LETTER_RETENTION] = { "delivery_dead_letter_retention",
	    CONFIG_INT, "2592000", 0, 31536000, false,
	    "seconds a dead letter is kept (0: forever)" },
	[CONF_DELIVERY_TIMEOUT] = { "delivery_timeout", CONFIG_INT, "30", 1,
	    600, false, "seconds a callback POST may take" },
	[CONF_DELIVERY_MAX_CONCURRENCY] = { "delivery_max_concurrency",
	    CONFIG_INT, "32", 1, 1024, false, "POSTs in flight overall" },
	[CONF_DELIVERY_HOST_CONCURRENCY] = { "delivery_host_concurrency",
	    CONFIG_INT, "4", 1, 64, false,
	    "POSTs in flight per callback host" },
	[CONF_DELIVERY_BREAKER_THRESHOLD] = { "delivery_breaker_threshold",
	    CONFIG_INT, "5", 1, 1000, false,
	    "consecutive failures that open a callback's circuit" },
	[CONF_LEASE_TTL] = { "lease_ttl", CONFIG_INT, "30", 3, 3600, false,
	    "seconds a lease lasts without renewal" },
	[CONF_LEASE_RENEW] = { "lease_renew", CONFIG_INT, "10", 1, 1200, false,
	    "seconds between lease renewals" },
	[CONF_PARTITION_COUNT] = { "partition_count", CONFIG_INT, "64", 1, 4096,
	    false,
	    "partitions the sources are hashed into for "
	    "ownership (the same on every instance)" },
	[CONF_METRICS_PUBLIC] = { "metrics_public", CONFIG_BOOL, "0", 0, 0,
	    false, "serve /metrics without the bearer token" },
	[CONF_ELASTICSEARCH_URL] = { "elasticsearch_url", CONFIG_STRING, "", 0,
	    0, false,
	    "Elasticsearch root for metrics and alerts (empty: off)" },
	[CONF_ELASTICSEARCH_AUTH] = { "elasticsearch_auth", CONFIG_STRING, "",
	    0, 0, true, "user:password for Elasticsearch" },
	[CONF_ELASTICSEARCH_INDEX] = { "elasticsearch_index", CONFIG_STRING,
	    "auditrelay", 0, 0, false, "index prefix in Elasticsearch" },
};

const struct config_def *
config_defs(void)
{
	return config_table;
}

int
config_lookup(const char *name)
{
	int i;

	for (i = 0; i < CONF__COUNT; i++)
		if (strcmp(config_table[i].name, name) == 0)
			return i;
	return -1;
}

void
config_init(struct config *c)
{
	int i;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < CONF__COUNT; i++)
		if (config_table[i].def != NULL)
			c->val[i] = util_xstrdup(config_table[i].def);
}

void
config_clear(struct config *c)
{
	int i;

	for (i = 0; i < CONF__COUNT; i++) {
		if (c->val[i] != NULL && config_table[i].secret)
			explicit_bzero(c->val[i], strlen(c->val[i]));
		free(c->val[i]);
		c->val[i] = NULL;
		c->set[i] = false;
		c->line[i] = 0;
	}
	free(c->file);
	c->file = NULL;
}

int
config_copy(struct config *dst, const struct config *src)
{
	int i;

	memset(dst, 0, sizeof(*dst));
	for (i = 0; i < CONF__COUNT; i++) {
		if (src->val[i] != NULL)
			dst->val[i] = util_xstrdup(src->val[i]);
		dst->set[i] = src->set[i];
		dst->line[i] = src->line[i];
	}
	if (src->file != NULL)
		dst->file = util_xstrdup(src->file);
	return 0;
}

int
config_set(struct config *c, int key, const char *value, char *err,
    size_t errlen)
{
	const struct config_def *d;
	int64_t			 iv;
	bool			 bv;
	int			 rc;

	if (key < 0 || key >= CONF__COUNT) {
		snprintf(err, errlen, "unknown key");
		return -EINVAL;
	}
	d = &config_table[key];
	switch (d->type) {
	case CONFIG_INT:
		rc = util_parse_int64(value, d->min, d->max, &iv);
		if (rc == -ERANGE) {
			snprintf(err, errlen,
			    "%s: %s is out of range "
			    "(%lld..%lld)",
			    d->name, value, (long long)d->min,
			    (long long)d->max);
			return -EINVAL;
		}
		if (rc != 0) {
			snprintf(err, errlen, "%s: \"%s\" is not an integer",
			    d->name, value);
			return -EINVAL;
		}
		break;
	case CONFIG_BOOL:
		if (util_parse_bool(value, &bv) != 0) {
			snprintf(err, errlen,
			    "%s: \"%s\" is not a boolean "
			    "(use 0 or 1)",
			    d->name, value);
			return -EINVAL;
		}
		value = bv ? "1" : "0";
		break;
	case CONFIG_STRING:
		if (strlen(value) > CONFIG_SECRET_MAX) {
			snprintf(err, errlen, "%s: value too long", d->name);
			return -EINVAL;
		}
		break;
	}
	if (c->val[key] != NULL && d->secret)
		explicit_bzero(c->val[key], strlen(c->val[key]));
	free(c->val[key]);
	c->val[key] = util_xstrdup(value);
	c->set[key] = true;
	return 0;
}

/* Read a secret from a file: whole content, one trailing newline dropped. */
static int
config_read_secret(const char *path, char **out, char *err, size_t errlen)
{
	FILE  *f;
	char  *buf;
	size_t n;

	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	buf = util_xcalloc(1, CONFIG_SECRET_MAX + 1);
	n = fread(buf, 1, CONFIG_SECRET_MAX, f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if (n == 0 || strlen(buf) != n) {
		snprintf(err, errlen, "%s: empty or binary secret file", path);
		free(buf);
		return -EINVAL;
	}
	*out = buf;
	return 0;
}

/*
 * Set key, or for "<secret>_file" read the file and set the secret; line
 * records where the value came from (see struct config).
 */
static int
config_set_named(struct config *c, const char *name, const char *value,
    int line, char *err, size_t errlen)
{
	char   base[128], *secret = NULL;
	size_t len = strlen(name);
	int    key, rc;

	if ((key = config_lookup(name)) >= 0) {
		if ((rc = config_set(c, key, value, err, errlen)) == 0)
			c->line[key] = line;
		return rc;
	}
	if (len > 5 && strcmp(name + len - 5, "_file") == 0 &&
	    len - 5 < sizeof(base)) {
		memcpy(base, name, len - 5);
		base[len - 5] = '\0';
		key = config_lookup(base);
		if (key >= 0 && config_table[key].secret) {
			if ((rc = config_read_secret(value, &secret, err,
				 errlen)) != 0)
				return rc;
			rc = config_set(c, key, secret, err, errlen);
			explicit_bzero(secret, strlen(secret));
			free(secret);
			if (rc == 0)
				c->line[key] = line;
			return rc;
		}
	}
	snprintf(err, errlen, "unknown key \"%s\"", name);
	return -EINVAL;
}

int
config_load(struct config *c, const char *path, bool optional, char *err,
    size_t errlen)
{
	FILE *f;
	char  line[CONFIG_LINE_MAX], e[512], *p, *key, *val, *end;
	int   lineno = 0, rc = 0;

	if ((f = fopen(path, "re")) == NULL) {
		if (optional && errno == ENOENT)
			return config_apply_env(c, err, errlen);
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	free(c->file);
	c->file = util_xstrdup(path);
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			snprintf(err, errlen, "%s:%d: line too long", path,
			    lineno);
			rc = -EINVAL;
			goto done;
		}
		for (p = line; isspace((unsigned char)*p); p++)
			;
		if (*p == '\0' || *p == '#')
			continue;
		key = p;
		while (*p != '\0' && (isalnum((unsigned char)*p) || *p == '_'))
			p++;
		end = p;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '=' || end == key) {
			snprintf(err, errlen, "%s:%d: expected \"key = value\"",
			    path, lineno);
			rc = -EINVAL;
			goto done;
		}
		*end = '\0';
		for (p++; *p == ' ' || *p == '\t'; p++)
			;
		val = p;
		end = val + strlen(val);
		while (end > val && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (end - val >= 2 && *val == '"' && end[-1] == '"') {
			end[-1] = '\0';
			val++;
		}
		if (config_set_named(c, key, val, lineno, e, sizeof(e)) != 0) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, e);
			rc = -EINVAL;
			goto done;
		}
	}
	rc = config_apply_env(c, err, errlen);
done:
	explicit_bzero(line, sizeof(line));
	fclose(f);
	return rc;
}

int
config_apply_env(struct config *c, char *err, size_t errlen)
{
	char   name[160], e[512], *v;
	size_t i;
	int    k, pass;

	/* _FILE variants first, so a direct value wins over a file. */
	for (pass = 0; pass < 2; pass++) {
		for (k = 0; k < CONF__COUNT; k++) {
			if (pass == 0 && !config_table[k].secret)
				continue;
			snprintf(name, sizeof(name), "AUDITRELAY_%s%s",
			    config_table[k].name, pass == 0 ? "_file" : "");
			for (i = 0; name[i] != '\0'; i++)
				name[i] = (char)toupper((unsigned char)name[i]);
			if ((v = getenv(name)) == NULL)
				continue;
			if (pass == 0) {
				char lower[160];

				snprintf(lower, sizeof(lower), "%s_file",
				    config_table[k].name);
				if (config_set_named(c, lower, v,
					CONFIG_FROM_ENV, e, sizeof(e)) == 0)
					continue;
			} else if (config_set(c, k, v, e, sizeof(e)) == 0) {
				c->line[k] = CONFIG_FROM_ENV;
				continue;
			}
			snprintf(err, errlen, "environment %s: %s", name, e);
			return -EINVAL;
		}
	}
	return 0;
}

const char *
config_where(const struct config *c, int key, char *buf, size_t len)
{
	size_t i, n;

	if (c->line[key] > 0 && c->file != NULL)
		snprintf(buf, len, "%s:%d", c->file, c->line[key]);
	else if (c->line[key] == CONFIG_FROM_ENV) {
		n = strlen("environment AUDITRELAY_");
		snprintf(buf, len, "environment AUDITRELAY_%s",
		    config_table[key].name);
		for (i = n; i < len && buf[i] != '\0'; i++)
			buf[i] = (char)toupper((unsigned char)buf[i]);
	} else
		snprintf(buf, len, "default");
	return buf;
}

/* An error about key's value: "WHERE: key: reason". */
static int
config_check_fail(const struct config *c, int key, char *err, size_t errlen,
    const char *fmt, ...)
{
	char	where[600], why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	config_where(c, key, where, sizeof(where));
	snprintf(err, errlen, "%s: %s: %s", where, config_table[key].name, why);
	return -EINVAL;
}

int
config_check(const struct config *c, char *err, size_t errlen)
{
	char	 host[256];
	uint16_t port;
	int64_t	 sched[32];

	if (c->val[CONF_API_TOKEN] == NULL || *c->val[CONF_API_TOKEN] == '\0') {
		snprintf(err, errlen,
		    "no API token: set api_token_file in the "
		    "configuration or AUDITRELAY_API_TOKEN(_FILE) in the "
		    "environment");
		return -EINVAL;
	}
	if (strlen(c->val[CONF_API_TOKEN]) < 16)
		return config_check_fail(c, CONF_API_TOKEN, err, errlen,
		    "the API token is shorter than 16 characters; use a long "
		    "random token");
	if (util_split_hostport(c->val[CONF_API_LISTEN], host, sizeof(host),
		&port) != 0)
		return config_check_fail(c, CONF_API_LISTEN, err, errlen,
		    "\"%s\" is not host:port", c->val[CONF_API_LISTEN]);
	if (config_int(c, CONF_LEASE_RENEW) * 2 > config_int(c, CONF_LEASE_TTL))
		return config_check_fail(c,
		    c->line[CONF_LEASE_RENEW] != 0 ? CONF_LEASE_RENEW :
						     CONF_LEASE_TTL,
		    err, errlen,
		    "lease_renew must be at most half of lease_ttl");
	{
		int  nb;
		bool tuned;

		if (config_reread_ladder(c->val[CONF_FETCH_REREAD_AGES], sched,
			8, &nb, &tuned) < 0)
			return config_check_fail(c, CONF_FETCH_REREAD_AGES, err,
			    errlen,
			    "expected auto, auto:A,B,... or a comma-separated "
			    "list of at most 8 seconds");
	}
	if (config_int_list(c->val[CONF_DELIVERY_RETRY_SCHEDULE], sched, 32) <=
	    0)
		return config_check_fail(c, CONF_DELIVERY_RETRY_SCHEDULE, err,
		    errlen, "expected a comma-separated list of seconds");
	if (strncmp(c->val[CONF_MONGODB_URI], "mongodb://", 10) != 0 &&
	    strncmp(c->val[CONF_MONGODB_URI], "mongodb+srv://", 14) != 0)
		return config_check_fail(c, CONF_MONGODB_URI, err, errlen,
		    "must start with mongodb:// or mongodb+srv://");
	return 0;
}

const char *
config_str(const struct config *c, int key)
{
	return c->val[key] != NULL ? c->val[key] : "";
}

int64_t
config_int(const struct config *c, int key)
{
	int64_t v = 0;

	if (c->val[key] != NULL)
		(void)util_parse_int64(c->val[key], INT64_MIN, INT64_MAX, &v);
	return v;
}

bool
config_bool(const struct config *c, int key)
{
	return c->val[key] != NULL && strcmp(c->val[key], "1") == 0;
}

#define CONFIG_REREAD_DEFAULT "3600,21600,86400,259200"

int
config_reread_ladder(const char *s, int64_t *ages, int max, int *nbase,
    bool *tuned)
{
	int n;

	*tuned = strncmp(s, "auto", 4) == 0;
	if (*tuned) {
		if (s[4] == '\0')
			s = CONFIG_REREAD_DEFAULT;
		else if (s[4] == ':')
			s += 5;
		else
			return -EINVAL;
	}
	if ((n = config_int_list(s, ages, max)) < 0 || (*tuned && n == 0))
		return -EINVAL;
	*nbase = n;
	while (*tuned && n > 0 && n < max && n < *nbase + CONFIG_REREAD_EXTRA &&
	    ages[n - 1] * 2 <= CONFIG_REREAD_MAX_S) {
		ages[n] = ages[n - 1] * 2;
		n++;
	}
	return n;
}

int
config_int_list(const char *s, int64_t *out, int max)
{
	char buf[512], *tok, *save = NULL;
	int  n = 0;

	if (util_strlcpy(buf, s, sizeof(buf)) >= sizeof(buf))
		return -EINVAL;
	for (tok = strtok_r(buf, ", ", &save); tok != NULL;
	     tok = strtok_r(NULL, ", ", &save)) {
		if (n == max ||
		    util_parse_int64(tok, 0, 31536000, &out[n]) != 0)
			return -EINVAL;
		n++;
	}
	return n;
}
