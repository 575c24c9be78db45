/*
 * Alerts (credentials_invalid, credentials_restored, dead_letter,
 * dead_letters_pruned, callback_gone, schema_drift): documents in the alerts collection, raised by fetcherd
 * or by deliverd, each delivered as a batch of kind "alert" with the same
 * signing, retries and dead letters as logs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliverd/deliverd.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/batch/batch.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

struct araise {
	char	sid[64];
	bson_t *doc;
	int	rc;
	char	err[512];
};

static void
araise_work(void *arg)
{
	struct araise *r = arg;

	r->rc = store_insert_one(child_store(), STORE_ALERTS, r->doc, r->err,
	    sizeof(r->err));
}

static void
araise_done(void *arg)
{
	struct araise *r = arg;

	if (!child_store_result(r->rc >= 0, r->err))
		log_warn("source=%s alert could not be stored: %s", r->sid,
		    r->err);
	else
		queue_alerts_raised(r->sid);
	bson_destroy(r->doc);
	free(r);
}

/*
 * Record an alert for s (on the worker), to be delivered to its callback;
 * logged at warning level too, so an operator sees it without a
 * receiver. 0, or -ENOMEM.
 */
int
alerts_raise(struct dsource *s, const char *alert, const char *message)
{
	struct araise *r;
	char	       id[37];

	util_uuid_v4(id);
	r = util_xcalloc(1, sizeof(*r));
	util_strlcpy(r->sid, s->id, sizeof(r->sid));
	r->doc = BCON_NEW("_id", BCON_UTF8(id), "sourceId", BCON_UTF8(s->id),
	    "alert", BCON_UTF8(alert), "message", BCON_UTF8(message), "at",
	    BCON_INT64(util_now_ms()), "state", BCON_UTF8("pending"), "batchId",
	    BCON_NULL);
	log_warn("source=%s alert=%s raised: %s", s->id, alert, message);
	if (worker_submit(araise_work, araise_done, r) != 0) {
		bson_destroy(r->doc);
		free(r);
		return -ENOMEM;
	}
	return 0;
}
