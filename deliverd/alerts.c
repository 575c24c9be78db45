/*
 * Alerts (credentials_invalid, credentials_restored, dead_letter,
 * callback_gone): documents in the alerts collection, raised by fetcherd
 * or by deliverd, each delivered as a batch of kind "alert" with the same
 * signing, retries and dead letters as logs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/batch.h"
#include "deliverd/deliverd.h"
#include "lib/log.h"
#include "lib/store.h"
#include "lib/util.h"

#define ALERTS_PER_BUILD	16

/*
 * Record an alert for s, to be delivered to its callback; logged at
 * warning level too, so an operator sees it without a receiver. 0 or -EIO.
 */
int
alerts_raise(struct dsource *s, const char *alert, const char *message)
{
	bson_t	*doc;
	char	 id[37], err[512] = "";
	int	 rc;

	util_uuid_v4(id);
	doc = BCON_NEW("_id", BCON_UTF8(id), "sourceId", BCON_UTF8(s->id),
	    "alert", BCON_UTF8(alert), "message", BCON_UTF8(message),
	    "at", BCON_INT64(util_now_ms()), "state", BCON_UTF8("pending"),
	    "batchId", BCON_NULL);
	rc = store_insert_one(D.store, STORE_ALERTS, doc, err, sizeof(err));
	bson_destroy(doc);
	log_warn("source=%s alert=%s: %s", s->id, alert, message);
	if (!deliverd_store_result(rc, err)) {
		log_warn("source=%s alert=%s could not be stored: %s", s->id,
		    alert, err);
		return -EIO;
	}
	s->alerts_dirty = true;
	return 0;
}

/*
 * Turn the pending alerts of s into alert batches, oldest first. Returns
 * how many were built, or -EIO.
 */
int
alerts_build(struct dsource *s)
{
	mongoc_client_t		*c;
	mongoc_collection_t	*coll;
	mongoc_cursor_t		*cur;
	const bson_t		*doc;
	bson_t			*filter, *opts;
	bson_error_t		 berr;
	char			 err[512] = "";
	struct {
		char	id[64];
		char	*body;
		size_t	len;
	} a[ALERTS_PER_BUILD];
	size_t			 n = 0, i;
	int			 rc = 0, built = 0;
	int64_t			 now = util_now_ms();

	filter = BCON_NEW("sourceId", BCON_UTF8(s->id),
	    "state", BCON_UTF8("pending"));
	opts = BCON_NEW("sort", "{", "at", BCON_INT32(1), "}",
	    "limit", BCON_INT64(ALERTS_PER_BUILD));
	c = store_pop(D.store);
	coll = store_coll(D.store, c, STORE_ALERTS);
	cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	while (n < ALERTS_PER_BUILD && mongoc_cursor_next(cur, &doc)) {
		const char *id = store_bson_str(doc, "_id");
		const char *kind = store_bson_str(doc, "alert");
		const char *msg = store_bson_str(doc, "message");

		if (id == NULL || kind == NULL || strlen(id) >= sizeof(a[0].id))
			continue;
		a[n].body = batch_alert_body(s->id, kind, msg != NULL ? msg :
		    "", store_bson_int(doc, "at", now), &a[n].len);
		if (a[n].body == NULL)
			continue;
		util_strlcpy(a[n].id, id, sizeof(a[n].id));
		n++;
	}
	if (mongoc_cursor_error(cur, &berr)) {
		snprintf(err, sizeof(err), "find alerts: %.400s",
		    berr.message);
		rc = -EIO;
	}
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	store_push(D.store, c);
	bson_destroy(filter);
	bson_destroy(opts);
	if (!deliverd_store_result(rc, err))
		built = -EIO;
	for (i = 0; built >= 0 && i < n; i++) {
		if (queue_insert_alert_batch(s, a[i].id, a[i].body, a[i].len,
		    now) != 0) {
			built = -EIO;
			break;
		}
		built++;
	}
	for (i = 0; i < n; i++)
		free(a[i].body);
	if (built >= 0 && n < ALERTS_PER_BUILD)
		s->alerts_dirty = false;
	return built;
}
