/*
 * What deliverd writes about each source: its source_state document
 * "<id>:deliver" (status, last delivery, last error; throttled, one write
 * in flight) and its counters in stats "<id>:deliver" (added up in memory,
 * flushed every few seconds in one worker job).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliverd/deliverd.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

#define STATE_WRITE_MIN_MS 2000

/* A source_state write on the worker. */
struct state_write {
	char	    sid[64];
	char	    id[96];
	bson_t	   *doc;
	const char *status;
	int64_t	    at;
	int	    rc;
	char	    err[512];
};

static void
deliverd_state_work(void *arg)
{
	struct state_write *w = arg;

	w->rc = store_upsert(child_store(), STORE_SOURCE_STATE, w->id, w->doc,
	    w->err, sizeof(w->err));
}

static void
deliverd_state_done(void *arg)
{
	struct state_write *w = arg;
	struct dsource	   *s = deliverd_source_find(w->sid);
	bool		    ok = child_store_result(w->rc >= 0, w->err);

	if (s != NULL) {
		s->state_writing = false;
		if (ok) {
			s->written_status = w->status;
			s->state_written_at = w->at;
		}
		if (s->state_dirty) {
			s->state_dirty = false;
			deliverd_source_state_write(s);
		}
	}
	bson_destroy(w->doc);
	free(w);
}

/*
 * Upsert source_state "<id>:deliver" on the worker (throttled unless the
 * status changed; one write in flight per source).
 */
void
deliverd_source_state_write(struct dsource *s)
{
	struct state_write *w;
	bson_t		    doc;
	char		    id[96];
	int64_t		    now = util_now_ms();

	if (s->state_writing) {
		s->state_dirty = true; /* written after the one in flight */
		return;
	}
	if (s->written_status == s->status &&
	    now - s->state_written_at < STATE_WRITE_MIN_MS)
		return;
	snprintf(id, sizeof(id), "%s:deliver", s->id);
	bson_init(&doc);
	BSON_APPEND_UTF8(&doc, "_id", id);
	BSON_APPEND_UTF8(&doc, "sourceId", s->id);
	BSON_APPEND_UTF8(&doc, "status", s->status);
	if (s->last_delivery_at > 0)
		BSON_APPEND_INT64(&doc, "lastDeliveryAt", s->last_delivery_at);
	else
		BSON_APPEND_NULL(&doc, "lastDeliveryAt");
	if (s->last_error[0] != '\0')
		BSON_APPEND_UTF8(&doc, "lastError", s->last_error);
	else
		BSON_APPEND_NULL(&doc, "lastError");
	BSON_APPEND_INT32(&doc, "consecutiveFailures",
	    (int32_t)s->br.consecutive);
	if (s->gone_url != NULL)
		BSON_APPEND_UTF8(&doc, "goneUrl", s->gone_url);
	BSON_APPEND_INT64(&doc, "epoch", s->lease.epoch);
	BSON_APPEND_INT64(&doc, "updatedAt", now);
	w = util_xcalloc(1, sizeof(*w));
	util_strlcpy(w->sid, s->id, sizeof(w->sid));
	util_strlcpy(w->id, id, sizeof(w->id));
	w->doc = bson_copy(&doc);
	w->status = s->status;
	w->at = now;
	bson_destroy(&doc);
	if (worker_submit(deliverd_state_work, deliverd_state_done, w) != 0) {
		bson_destroy(w->doc);
		free(w);
		return;
	}
	s->state_writing = true;
}

/* Add to the counters in stats "<id>:deliver" (flushed every few s). */
void
deliverd_stats_add(struct dsource *s, int64_t logs, int64_t batches,
    int64_t failures, int64_t dead)
{
	s->st_logs += logs;
	s->st_batches += batches;
	s->st_fail += failures;
	s->st_dead += dead;
}

struct stats_delta {
	char	sid[64];
	int64_t logs, batches, fail, dead;
	bool	ok;
};

struct stats_flush {
	struct stats_delta *d;
	size_t		    n;
	int		    rc;
	char		    err[512];
};

static void
deliverd_stats_work(void *arg)
{
	struct stats_flush  *f = arg;
	mongoc_client_t	    *c;
	mongoc_collection_t *coll;
	bson_t		    *sel, *upd, *opts;
	bson_error_t	     berr;
	char		     id[96];
	size_t		     i;

	c = store_pop(child_store());
	coll = store_coll(child_store(), c, STORE_STATS);
	opts = BCON_NEW("upsert", BCON_BOOL(true));
	for (i = 0; i < f->n; i++) {
		struct stats_delta *d = &f->d[i];

		snprintf(id, sizeof(id), "%s:deliver", d->sid);
		sel = BCON_NEW("_id", BCON_UTF8(id));
		upd = BCON_NEW("$inc", "{", "deliveredLogs",
		    BCON_INT64(d->logs), "deliveredBatches",
		    BCON_INT64(d->batches), "failedAttempts",
		    BCON_INT64(d->fail), "deadBatches", BCON_INT64(d->dead),
		    "}", "$set", "{", "sourceId", BCON_UTF8(d->sid),
		    "updatedAt", BCON_INT64(util_now_ms()), "}");
		d->ok = mongoc_collection_update_one(coll, sel, upd, opts, NULL,
		    &berr);
		if (!d->ok && f->rc == 0) {
			snprintf(f->err, sizeof(f->err), "update stats: %.400s",
			    berr.message);
			f->rc = -EIO;
		}
		bson_destroy(sel);
		bson_destroy(upd);
	}
	bson_destroy(opts);
	mongoc_collection_destroy(coll);
	store_push(child_store(), c);
}

static bool stats_flushing;

static void
deliverd_stats_done(void *arg)
{
	struct stats_flush *f = arg;
	struct dsource	   *s;
	size_t		    i;

	stats_flushing = false;
	(void)child_store_result(f->rc >= 0, f->err);
	/* What was not written is added back, for the next flush. */
	for (i = 0; i < f->n; i++)
		if (!f->d[i].ok && (s = deliverd_source_find(f->d[i].sid)))
			deliverd_stats_add(s, f->d[i].logs, f->d[i].batches,
			    f->d[i].fail, f->d[i].dead);
	free(f->d);
	free(f);
}

/* Timer: write the counters that moved, in one worker job. */
void
deliverd_stats_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stats_flush *f;
	struct dsource	   *s;
	size_t		    n = 0;

	(void)fd;
	(void)what;
	(void)arg;
	if (stats_flushing || !store_healthy(child_store()))
		return;
	TAILQ_FOREACH (s, deliverd_sources(), entry)
		if (s->st_logs || s->st_batches || s->st_fail || s->st_dead)
			n++;
	if (n == 0)
		return;
	f = util_xcalloc(1, sizeof(*f));
	f->d = util_xcalloc(n, sizeof(*f->d));
	TAILQ_FOREACH (s, deliverd_sources(), entry) {
		if (!(s->st_logs || s->st_batches || s->st_fail || s->st_dead))
			continue;
		util_strlcpy(f->d[f->n].sid, s->id, sizeof(f->d[0].sid));
		f->d[f->n].logs = s->st_logs;
		f->d[f->n].batches = s->st_batches;
		f->d[f->n].fail = s->st_fail;
		f->d[f->n].dead = s->st_dead;
		s->st_logs = s->st_batches = s->st_fail = s->st_dead = 0;
		f->n++;
	}
	if (worker_submit(deliverd_stats_work, deliverd_stats_done, f) != 0) {
		for (size_t i = 0; i < f->n; i++)
			f->d[i].ok = false;
		deliverd_stats_done(f);
		return;
	}
	stats_flushing = true;
}
