/*
 * The configuration table: every key, its type, default and bounds, in one
 * place. A file of "key = value" lines, then AUDITRELAY_<KEY> environment
 * variables override it; secrets also have a <key>_file variant that reads
 * the value from a file. The supervisor parses, children receive the
 * resolved values over IPC and rebuild the same struct with config_set().
 */
#ifndef AR_LIB_CONFIG_H
#define AR_LIB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum config_key {
	CONF_API_LISTEN,
	CONF_API_TOKEN,
	CONF_API_MAX_CONNECTIONS,
	CONF_API_MAX_SOURCES,
	CONF_MONGODB_URI,
	CONF_MONGODB_DATABASE,
	CONF_GOOGLE_TOKEN_URL,
	CONF_GOOGLE_API_BASE,
	CONF_CRYPTO_MASTER_KEY_FILE,
	CONF_DELIVERY_ALLOW_PRIVATE_NETWORKS,
	CONF_FETCH_MIN_INTERVAL,
	CONF_RUNTIME_DIR,
	CONF_INSTANCE_ID,
	CONF_LOG_VERBOSE,
	CONF_SHUTDOWN_GRACE,
	CONF_PING_INTERVAL,
	CONF_RESCAN_INTERVAL,
	CONF_FETCH_OVERLAP,
	CONF_FETCH_REREAD_AGES,
	CONF_FETCH_INITIAL_LOOKBACK,
	CONF_FETCH_MAX_CONCURRENCY,
	CONF_FETCH_CLIENT_CONCURRENCY,
	CONF_FETCH_CREDENTIALS_RETRY,
	CONF_FETCH_TIMEOUT,
	CONF_DELIVERY_BATCH_MAX_LOGS,
	CONF_DELIVERY_BATCH_MAX_BYTES,
	CONF_DELIVERY_LINGER_MS,
	CONF_DELIVERY_RETRY_SCHEDULE,
	CONF_DELIVERY_MAX_AGE,
	CONF_DELIVERY_DEAD_LETTER_RETENTION,
	CONF_DELIVERY_TIMEOUT,
	CONF_DELIVERY_MAX_CONCURRENCY,
	CONF_DELIVERY_HOST_CONCURRENCY,
	CONF_DELIVERY_BREAKER_THRESHOLD,
	CONF_LEASE_TTL,
	CONF_LEASE_RENEW,
	CONF_PARTITION_COUNT,
	CONF_METRICS_PUBLIC,
	CONF_ELASTICSEARCH_URL,
	CONF_ELASTICSEARCH_AUTH,
	CONF_ELASTICSEARCH_INDEX,
	CONF__COUNT
};

enum config_type {
	CONFIG_STRING,
	CONFIG_INT,
	CONFIG_BOOL,
};

struct config_def {
	const char	*name; /* file key, lower case */
	enum config_type type;
	const char	*def;	   /* NULL: no default */
	int64_t		 min, max; /* CONFIG_INT bounds */
	bool		 secret;   /* never logged; has _file */
	const char	*help;
};

struct config {
	char *val[CONF__COUNT];
	bool  set[CONF__COUNT]; /* given by file or environment */
	/* Where each value came from: a line of file (> 0), the
	 * environment (CONFIG_FROM_ENV) or the default (0). */
	int   line[CONF__COUNT];
	char *file; /* the file config_load read */
};

#define CONFIG_FROM_ENV (-1)

const struct config_def *config_defs(void);
/* Index of a key name, or -1. */
int config_lookup(const char *name);

void config_init(struct config *c); /* all defaults */
void config_clear(struct config *c);
int  config_copy(struct config *dst, const struct config *src);

/*
 * Set one key from its text, validating type and bounds. 0 or -EINVAL with
 * err[] naming the key and the reason.
 */
int config_set(struct config *c, int key, const char *value, char *err,
    size_t errlen);
/*
 * Load path (missing file is an error unless optional), then apply the
 * environment. Errors name the file and line: "FILE:LINE: reason".
 */
int config_load(struct config *c, const char *path, bool optional, char *err,
    size_t errlen);
/* Apply AUDITRELAY_* variables (and *_FILE variants) from the environment. */
int config_apply_env(struct config *c, char *err, size_t errlen);
/*
 * Cross-key checks (a token must exist, renew < ttl...). An error names
 * where the offending value came from: "FILE:LINE: key: reason" or
 * "environment AUDITRELAY_KEY: reason".
 */
int config_check(const struct config *c, char *err, size_t errlen);
/*
 * Where key's value came from, into buf: "FILE:LINE", "environment
 * AUDITRELAY_KEY" or "default". Returns buf.
 */
const char *config_where(const struct config *c, int key, char *buf,
    size_t len);

const char *config_str(const struct config *c, int key);
int64_t	    config_int(const struct config *c, int key);
bool	    config_bool(const struct config *c, int key);
/*
 * Parse a comma-separated list of non-negative integers (a schedule, in
 * seconds) into out[max]; returns the count or -EINVAL.
 */
int config_int_list(const char *s, int64_t *out, int max);

/* Re-read ages a tuned ladder may add past the given ones (doublings). */
#define CONFIG_REREAD_EXTRA 2
/* Google keeps 180 days; no re-read age goes past this (s). */
#define CONFIG_REREAD_MAX_S (180LL * 86400 - 3600)
/*
 * The re-read ladder of fetch_reread_ages into ages[max]: "auto" (the
 * default ages, tuned), "auto:A,B,..." (those ages, tuned) or "A,B,..."
 * (fixed). A tuned ladder is the ages given then up to
 * CONFIG_REREAD_EXTRA doublings of the last (at most CONFIG_REREAD_MAX_S);
 * *nbase says how many were given, *tuned which form. Returns the count
 * or -EINVAL. Every horizon that must outlive a re-read (the seen ids,
 * what removed sources left) uses the last age of the whole ladder.
 */
int config_reread_ladder(const char *s, int64_t *ages, int max, int *nbase,
    bool *tuned);

#endif
