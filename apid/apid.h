/*
 * auditrelay-apid: state shared by the API's modules (master key, HTTP
 * client, resolver, the supervisor's last health snapshot, counters).
 */
#ifndef AR_APID_APID_H
#define AR_APID_APID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/crypto/crypto.h"
#include "lib/ipc/ipc.h"

struct httpc;
struct evdns_base;

#define APID_ASYNC_MAX 64 /* credential checks in flight */
#define APID_WORK_MAX  32 /* requests waiting for or on a worker */
#define APID_WORKERS   2  /* store worker threads */

struct apid_state {
	uint8_t		   mkey[CRYPTO_KEY_LEN];
	char		   keyid[CRYPTO_KEYID_LEN + 1];
	struct httpc	  *httpc;
	struct evdns_base *dns;
	Ar__Health	  *health;	 /* last snapshot from auditrelayd */
	unsigned	   inflight;	 /* asynchronous operations */
	uint64_t	   responses[6]; /* by status class, [2] = 2xx */
	uint64_t	   google_checks[3]; /* ok, refused, unreachable */
	uint64_t	   ipc_messages;     /* received from auditrelayd */
	uint64_t	   work_refused; /* 503: APID_WORK_MAX were queued */
	int64_t		   started_ms;
};

extern struct apid_state apid;

/* The OpenAPI document, embedded at build time (openapi_json.c). */
extern const char   apid_openapi_json[];
extern const size_t apid_openapi_json_len;

/* run.c: the daemon's child_ops (apid.c is the entry point). */
struct config;
struct store;
int  apid_configure(const struct config *cfg, bool initial, char *err,
     size_t errlen);
void apid_dispatch(const Ar__Envelope *env);
void apid_shutdown(unsigned grace_ms);
int  apid_store_setup(struct store *s, char *err, size_t errlen);

#endif
