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

/* The sources with pending alerts, read on the worker. */
struct aprobe {
	char **sids;
	size_t n, cap;
	int    rc;
	char   err[512];
};

static bool aprobe_running;

static int
aprobe_one(const bson_t *doc, void *arg)
{
	struct aprobe *p = arg;
	const char    *sid = store_bson_str(doc, "sourceId");
	size_t	       i;

	if (sid == NULL)
		return 0;
	for (i = 0; i < p->n; i++)
		if (strcmp(p->sids[i], sid) == 0)
			return 0;
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 16;
		p->sids = util_xreallocarray(p->sids, p->cap, sizeof(*p->sids));
	}
	p->sids[p->n++] = util_xstrdup(sid);
	return 0;
}

static void
aprobe_work(void *arg)
{
	struct aprobe *p = arg;
	bson_t	      *filter, *opts;

	filter = BCON_NEW("state", BCON_UTF8("pending"));
	opts = BCON_NEW("projection", "{", "sourceId", BCON_INT32(1), "_id",
	    BCON_INT32(0), "}");
	p->rc = store_each(child_store(), STORE_ALERTS, filter, opts,
	    aprobe_one, p, p->err, sizeof(p->err));
	bson_destroy(filter);
	bson_destroy(opts);
}

static void
aprobe_done(void *arg)
{
	struct aprobe  *p = arg;
	struct dsource *s;
	size_t		i;

	aprobe_running = false;
	if (child_store_result(p->rc >= 0, p->err))
		for (i = 0; i < p->n; i++) {
			s = deliverd_source_find(p->sids[i]);
			if (s == NULL || !s->lease.held || !s->ready)
				continue;
			s->alerts_dirty = true;
			deliverd_step(s);
		}
	for (i = 0; i < p->n; i++)
		free(p->sids[i]);
	free(p->sids);
	free(p);
}

void
alerts_probe_start(void)
{
	struct aprobe *p;

	if (aprobe_running || child_stopping() || !store_healthy(child_store()))
		return;
	p = util_xcalloc(1, sizeof(*p));
	if (worker_submit(aprobe_work, aprobe_done, p) != 0) {
		free(p);
		return;
	}
	aprobe_running = true;
}
