/*
 * Validation of the API's request bodies: pure functions over parsed JSON
 * trees, no I/O except the syntax checks of a callback host. Each returns
 * 0 or -EINVAL and fills a struct verr naming the field and the reason.
 */
#ifndef AR_APID_VALIDATE_H
#define AR_APID_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#define VALIDATE_APPS_MAX	  64
#define VALIDATE_URL_MAX	  2048
#define VALIDATE_INTERVAL_MAX	  86400
#define VALIDATE_INTERVAL_DEFAULT 300
#define VALIDATE_LOOKBACK_MAX	  15552000 /* 180 days: Google's retention */

struct verr {
	int  status;	   /* HTTP status, 400 */
	char code[32];	   /* "invalid_field", "unknown_field" ... */
	char field[128];   /* "credentials.privateKey" */
	char message[480]; /* whole: sized for the longest advice */
};

struct src_creds {
	char *client_email;
	char *private_key;    /* PEM; secret: wiped on clear */
	char *private_key_id; /* may be NULL */
	char *subject;	      /* NULL: the account acts as itself */
};

struct src_input {
	bool		 has_id;
	char		 id[37]; /* client-supplied, lower case */
	bool		 has_creds;
	struct src_creds creds;
	bool		 has_apps;
	char		*apps[VALIDATE_APPS_MAX];
	size_t		 napps;
	bool		 has_interval;
	int64_t		 interval;
	bool		 has_callback;
	char		*callback_url;
	char		 cb_host[256]; /* without brackets */
	bool		 cb_literal;   /* host is an IP literal */
	bool		 has_paused;
	bool		 paused;
	bool		 has_lookback;
	int64_t		 lookback; /* initialLookback, seconds */
	bool		 has_watermarks;
	bool		 watermarks; /* send watermark messages */
};

/* A backfill request (POST /sources/:id/backfill). */
#define VALIDATE_BACKFILL_DAYS 180 /* Google's retention */
struct bf_input {
	char	app[64];
	int64_t from, to; /* ms; to defaults to now */
};

/* The documented default applications. */
extern const char *const validate_default_apps[];
extern const size_t	 validate_default_napps;

/* True when s is an RFC 4122 UUID (8-4-4-4-12 hex digits, any case). */
bool validate_uuid(const char *s);
/* The same with lower-case hex digits only (the source ids we hand out). */
bool validate_uuid_lower(const char *s);

/* True when name is an application of the Reports API. */
bool validate_app_known(const char *name);

void src_input_clear(struct src_input *in);
void src_creds_clear(struct src_creds *c);

/* POST /add-source body. Fills defaults for optional fields. */
int validate_add_source(yajl_val root, int64_t min_interval, bool allow_private,
    struct src_input *in, struct verr *e);
/*
 * A credentials object (add-source's "credentials", or the body of PUT
 * /sources/:id/credentials with prefix ""). field names start with prefix.
 */
int validate_credentials(yajl_val obj, const char *prefix, struct src_creds *c,
    struct verr *e);
/* PATCH /sources/:id body: at least one of the patchable fields. */
int validate_patch(yajl_val root, int64_t min_interval, bool allow_private,
    struct src_input *in, struct verr *e);
/*
 * A callback URL: http/https, no credentials, no fragment, <= 2048 bytes,
 * a host that is a valid name or a canonical public (unless allow_private)
 * IP literal. Fills in->callback_url, cb_host, cb_literal.
 */
int validate_callback_url(yajl_val v, const char *field, bool allow_private,
    struct src_input *in, struct verr *e);
/* An object with no members at all (bodies that take none). */
int validate_empty_object(yajl_val root, struct verr *e);
/*
 * {"application", "from", "to"} of a backfill at now_ms: application
 * one of the source's apps[napps], from and to RFC 3339, from before to,
 * at most VALIDATE_BACKFILL_DAYS back, to not in the future (absent:
 * now).
 */
int validate_backfill(yajl_val root, int64_t now_ms, char *const *apps,
    size_t napps, struct bf_input *in, struct verr *e);
/* Wipe every string of a parsed tree (it held a private key). */
void validate_wipe_tree(yajl_val v);

#endif
