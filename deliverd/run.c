/*
 * deliverd's life: the settings (D, read elsewhere through
 * deliverd_conf()), start-up (master key, worker, HTTP client, partition
 * set, timers), reload, shutdown
 * (in-flight POSTs finish within the grace, leases are released) and the
 * store's indexes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliverd/deliverd.h"
#include "deliverd/prune.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

#define STATE_FLUSH_MS 1000 /* delivery state: urgent writes retried */

/* The settings; the other files read them through deliverd_conf(). */
static struct deliverd_conf D;

static struct event *stats_ev, *finish_ev;

const struct deliverd_conf *
deliverd_conf(void)
{
	return &D;
}

static void
deliverd_released(void *arg)
{
	child_exit(0);
}

/* Leave: release every lease so a restart or a peer takes over at once. */
/* The grace period bounds all of it: the framework exits anyway. */
static void
deliverd_finish_leases(void)
{
	deliverd_sources_free();
	deliverd_step_stop();
	deliverd_partitions_shutdown(deliverd_released, NULL);
}

void
deliverd_finish(void)
{
	static bool finishing;

	if (finishing)
		return;
	finishing = true;
	queue_record_flush();
	/* The delivery state first, while the leases are held. */
	deliverd_state_finish(deliverd_finish_leases);
}

static void
deliverd_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	if (deliverd_inflight() > 0)
		log_info(
		    "%u POSTs still in flight at the end of the grace "
		    "period; their batches will be sent again with the same "
		    "ids",
		    deliverd_inflight());
	deliverd_finish();
}

void
deliverd_timer_start(struct event **ev, event_callback_fn cb, int64_t ms,
    bool persist)
{
	struct timeval tv;

	if (*ev != NULL)
		event_free(*ev);
	*ev = event_new(child_base(), -1, persist ? EV_PERSIST : 0, cb, NULL);
	if (*ev == NULL)
		fatal("out of memory");
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	event_add(*ev, &tv);
}

/* Read the settings from cfg into D. 0 or -EINVAL. */
static int
deliverd_settings(const struct config *cfg, char *err, size_t errlen)
{
	int64_t ages[16], maxage = 0;
	int	n, i, nbase;
	bool	tuned;

	n = config_int_list(config_str(cfg, CONF_DELIVERY_RETRY_SCHEDULE),
	    D.sched, DELIVER_SCHEDULE_MAX);
	if (n <= 0) {
		snprintf(err, errlen,
		    "delivery_retry_schedule: not a list "
		    "of seconds");
		return -EINVAL;
	}
	D.nsched = n;
	D.max_logs = config_int(cfg, CONF_DELIVERY_BATCH_MAX_LOGS);
	D.max_bytes = config_int(cfg, CONF_DELIVERY_BATCH_MAX_BYTES);
	D.linger_ms = config_int(cfg, CONF_DELIVERY_LINGER_MS);
	D.max_age_ms = config_int(cfg, CONF_DELIVERY_MAX_AGE) * 1000;
	D.dead_retention_ms = config_int(cfg,
				  CONF_DELIVERY_DEAD_LETTER_RETENTION) *
	    1000;
	D.timeout_ms = (long)config_int(cfg, CONF_DELIVERY_TIMEOUT) * 1000;
	D.max_conc = (unsigned)config_int(cfg, CONF_DELIVERY_MAX_CONCURRENCY);
	D.host_conc = (unsigned)config_int(cfg, CONF_DELIVERY_HOST_CONCURRENCY);
	D.breaker_threshold = (unsigned)config_int(cfg,
	    CONF_DELIVERY_BREAKER_THRESHOLD);
	D.lease_ttl_ms = config_int(cfg, CONF_LEASE_TTL) * 1000;
	D.lease_renew_ms = config_int(cfg, CONF_LEASE_RENEW) * 1000;
	D.rescan_ms = config_int(cfg, CONF_RESCAN_INTERVAL) * 1000;
	D.allow_private = config_bool(cfg,
	    CONF_DELIVERY_ALLOW_PRIVATE_NETWORKS);
	n = config_reread_ladder(config_str(cfg, CONF_FETCH_REREAD_AGES), ages,
	    (int)nitems(ages), &nbase, &tuned);
	for (i = 0; i < n; i++)
		if (ages[i] > maxage)
			maxage = ages[i];
	/* Past every re-read window, with a day to spare. */
	D.retention_ms = (maxage + config_int(cfg, CONF_FETCH_OVERLAP) +
			     86400) *
	    1000;
	return 0;
}

int
deliverd_configure(const struct config *cfg, bool initial, char *err,
    size_t errlen)
{
	const char *inst;
	int	    rc;

	if ((rc = deliverd_settings(cfg, err, errlen)) != 0)
		return rc;
	deliverd_sources_configure();
	if (!initial) {
		deliverd_rescan_arm(false);
		deliverd_partitions_configure(cfg);
		return 0;
	}
	/* auditrelayd passes its instance id (supervisor/instance.c). */
	inst = config_str(cfg, CONF_INSTANCE_ID);
	if (inst == NULL || *inst == '\0') {
		snprintf(err, errlen,
		    "no instance_id in the configuration "
		    "from auditrelayd; it names this instance's leases");
		return -EINVAL;
	}
	if (crypto_init() != 0) {
		snprintf(err, errlen, "libgcrypt initialisation failed");
		return -EINVAL;
	}
	if ((rc = deliverd_sources_init(
		 config_str(cfg, CONF_CRYPTO_MASTER_KEY_FILE), err, errlen)) !=
	    0)
		return rc;
	if ((rc = worker_start(child_base())) != 0) {
		snprintf(err, errlen, "cannot start the store worker: %s",
		    strerror(-rc));
		return rc;
	}
	if ((rc = deliverd_step_init()) != 0) {
		snprintf(err, errlen, "cannot create the HTTP client");
		return rc;
	}
	if ((rc = deliverd_partitions_init(cfg, inst, err, errlen)) != 0)
		return rc;
	deliverd_rescan_arm(true);
	deliverd_janitor_start();
	prune_start();
	deliverd_timer_start(&stats_ev, deliverd_state_flush_cb, STATE_FLUSH_MS,
	    true);
	log_info("delivering instance=%s private_networks=%s batch_max=%lld "
		 "logs/%lld bytes retry=%s max_age=%llds",
	    inst, D.allow_private ? "allowed" : "refused",
	    (long long)D.max_logs, (long long)D.max_bytes,
	    config_str(cfg, CONF_DELIVERY_RETRY_SCHEDULE),
	    (long long)D.max_age_ms / 1000);
	return 0;
}

void
deliverd_shutdown(unsigned grace_ms)
{
	struct timeval tv;
	unsigned       wait = grace_ms > 500 ? grace_ms - 400 : grace_ms / 2;

	if (deliverd_inflight() == 0) {
		deliverd_finish();
		return;
	}
	log_info("waiting up to %ums for %u POSTs in flight", wait,
	    deliverd_inflight());
	finish_ev = evtimer_new(child_base(), deliverd_finish_cb, NULL);
	tv.tv_sec = wait / 1000;
	tv.tv_usec = (wait % 1000) * 1000;
	evtimer_add(finish_ev, &tv);
}

/* Indexes of the collections this daemon reads and writes. */
int
deliverd_store_setup(struct store *st, char *err, size_t errlen)
{
	bson_t *idx;
	int	rc;

	idx = BCON_NEW("0", "{", "key", "{", "sourceId", BCON_INT32(1), "state",
	    BCON_INT32(1), "createdAt", BCON_INT32(1), "}", "name",
	    BCON_UTF8("sourceId_state_createdAt"), "}", "1", "{", "key", "{",
	    "bodyColl", BCON_INT32(1), "state", BCON_INT32(1), "}", "name",
	    BCON_UTF8("bodyColl_state"), "}", "2", "{", "key", "{", "state",
	    BCON_INT32(1), "deliveredAt", BCON_INT32(1), "}", "name",
	    BCON_UTF8("state_deliveredAt"), "}");
	rc = store_create_indexes(st, STORE_BATCHES, idx, err, errlen);
	bson_destroy(idx);
	if (rc != 0)
		return rc;
	idx = BCON_NEW("0", "{", "key", "{", "sourceId", BCON_INT32(1), "state",
	    BCON_INT32(1), "at", BCON_INT32(1), "}", "name",
	    BCON_UTF8("sourceId_state_at"), "}");
	rc = store_create_indexes(st, STORE_ALERTS, idx, err, errlen);
	bson_destroy(idx);
	if (rc != 0)
		return rc;
	return lease_setup_indexes(st, err, errlen);
}
