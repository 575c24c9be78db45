/*
 * apid's frame: configuration (listener, master key, worker threads),
 * IPC hints, the graceful stop, the indexes apid relies on.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>

#include "apid/apid.h"
#include "apid/esexport.h"
#include "apid/http.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/crypto/crypto.h"
#include "lib/net/httpc.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

struct apid_state apid;

int
apid_configure(const struct config *cfg, bool initial, char *err, size_t errlen)
{
	char	 host[256];
	uint16_t port;
	int	 rc;

	if (!initial)
		return 0;
	if (crypto_init() != 0) {
		snprintf(err, errlen, "libgcrypt initialisation failed");
		return -EINVAL;
	}
	if ((rc = crypto_master_key_load(
		 config_str(cfg, CONF_CRYPTO_MASTER_KEY_FILE), apid.mkey,
		 apid.keyid, err, errlen)) != 0)
		return rc;
	if (util_split_hostport(config_str(cfg, CONF_API_LISTEN), host,
		sizeof(host), &port) != 0) {
		snprintf(err, errlen, "api_listen: not host:port");
		return -EINVAL;
	}
	if ((apid.httpc = httpc_new(child_base())) == NULL) {
		snprintf(err, errlen, "cannot create the HTTP client");
		return -ENOMEM;
	}
	apid.dns = evdns_base_new(child_base(),
	    EVDNS_BASE_INITIALIZE_NAMESERVERS |
		EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (apid.dns == NULL)
		log_warn("no asynchronous resolver (%s); callback hosts are "
			 "resolved with the system resolver",
		    "resolv.conf");
	/* The store work of the requests (http.h: http_work). */
	if ((rc = worker_start_threads(child_base(), APID_WORKERS)) != 0) {
		snprintf(err, errlen, "cannot start the store workers");
		return rc;
	}
	if ((rc = http_start(host, port, err, errlen)) != 0)
		return rc;
	apid.started_ms = util_now_ms();
	esexport_start();
	log_info("listening on %s:%u keyid=%s", host, port, apid.keyid);
	return 0;
}

void
apid_dispatch(const Ar__Envelope *env)
{
	uint8_t buf[4096];
	size_t	n;

	apid.ipc_messages++;
	switch (env->body_case) {
	case AR__ENVELOPE__BODY_HEALTH:
		/* Keep a copy: the envelope is freed after dispatch. */
		n = ar__health__get_packed_size(env->health);
		if (n > sizeof(buf))
			break;
		if (apid.health != NULL)
			ar__health__free_unpacked(apid.health, NULL);
		ar__health__pack(env->health, buf);
		apid.health = ar__health__unpack(NULL, n, buf);
		break;
	default:
		log_debug("dropping message case=%d", (int)env->body_case);
		break;
	}
}

void
apid_shutdown(unsigned grace_ms)
{
	child_exit(0);
}

/*
 * Indexes of what apid reads by field: a source's backfill requests (on
 * FerretDB 1.24 a scan of a collection of at most 16 per source).
 */
int
apid_store_setup(struct store *s, char *err, size_t errlen)
{
	bson_t *idx;
	int	rc;

	idx = BCON_NEW("0", "{", "key", "{", "sourceId", BCON_INT32(1),
	    "createdAt", BCON_INT32(1), "}", "name",
	    BCON_UTF8("sourceId_createdAt"), "}");
	rc = store_create_indexes(s, STORE_BACKFILLS, idx, err, errlen);
	bson_destroy(idx);
	return rc;
}
