/*
 * What deliverd writes about its sources: for each partition it holds,
 * one document in deliver_state_<count>_<N> (lib/store/fstate.h) with
 * every source's status, last delivery, last error, a 410 Gone to
 * remember and its counters. The document is read once when the
 * partition is taken (owner.c), then kept in memory and written whole by
 * the partition's holder under its lease: at once for a new status, else
 * at most every STATE_WRITE_MIN_MS, one write in flight per partition.
 *
 * Older versions wrote source_state and stats "<id>:deliver", a document
 * per source: on FerretDB 1.24 each of those writes scanned one document
 * per source, and 10 000 sources delivering made two such writes a
 * source every few seconds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliverd/deliverd.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/fstate.h"
#include "lib/store/lease.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

#define STATE_WRITE_MIN_MS 5000

struct dpart {
	bson_t	    *base;    /* the sources of the document read; NULL: none */
	int64_t	     epoch;   /* of the lease it was read under */
	struct lease lease;   /* the partition's, kept by owner.c */
	bool	     dirty;   /* memory differs from the store */
	bool	     urgent;  /* a status changed: write at once */
	bool	     writing; /* a write in flight */
	bool	     finish_wait; /* the stop waits for the write in flight */
	int64_t	     written_at;  /* mono ms of the last write */
	size_t	     bytes;	  /* of the last document */
};

static struct dpart *dparts;
static int	     ndparts;
static unsigned	     finishing; /* writes the stop waits for */
static bool	     stopping;	/* no write but the stop's own */
static void (*finish_then)(void);

static bool state_write(int part, bool finish);

static struct dpart *
dpart_of(int part)
{
	return part >= 0 && part < ndparts ? &dparts[part] : NULL;
}

void
deliverd_state_init(int count)
{
	ndparts = count;
	dparts = util_xcalloc((size_t)count + 1, sizeof(*dparts));
}

/* The partition is held (gained or renewed) under l. */
void
deliverd_state_lease(int part, const struct lease *l)
{
	struct dpart *d = dpart_of(part);

	if (d == NULL)
		return;
	if (d->base != NULL && d->epoch != l->epoch)
		deliverd_state_forget(part);
	d->lease = *l;
}

/* The partition is lost or handed over: what was read is stale. */
void
deliverd_state_forget(int part)
{
	struct dpart *d = dpart_of(part);

	if (d == NULL)
		return;
	if (d->base != NULL)
		bson_destroy(d->base);
	d->base = NULL;
	d->dirty = d->urgent = false;
	d->lease.held = false;
}

bool
deliverd_state_read(int part, int64_t epoch)
{
	struct dpart *d = dpart_of(part);

	return d != NULL && d->base != NULL && d->epoch == epoch;
}

/*
 * The document of part was read under the lease of epoch: sources, its
 * "sources" (an empty document where there was none, found false; taken
 * over).
 */
void
deliverd_state_base(int part, int64_t epoch, bson_t *sources, bool found)
{
	struct dpart *d = dpart_of(part);

	if (d == NULL || (d->lease.held && d->lease.epoch != epoch)) {
		bson_destroy(sources);
		return;
	}
	if (d->base != NULL)
		bson_destroy(d->base);
	d->base = sources;
	d->epoch = epoch;
	/* A first document (what older versions kept goes into it). */
	d->dirty = d->urgent = !found;
}

/* The entry of s from memory. */
static void
state_entry(const struct dsource *s, bson_t *e, int64_t now)
{
	bson_t st;

	BSON_APPEND_UTF8(e, "status", s->status);
	if (s->last_delivery_at > 0)
		BSON_APPEND_INT64(e, "lastDeliveryAt", s->last_delivery_at);
	else
		BSON_APPEND_NULL(e, "lastDeliveryAt");
	if (s->last_error[0] != '\0')
		BSON_APPEND_UTF8(e, "lastError", s->last_error);
	else
		BSON_APPEND_NULL(e, "lastError");
	BSON_APPEND_INT32(e, "consecutiveFailures", (int32_t)s->br.consecutive);
	if (s->gone_url != NULL)
		BSON_APPEND_UTF8(e, "goneUrl", s->gone_url);
	BSON_APPEND_INT64(e, "epoch", s->lease.epoch);
	BSON_APPEND_INT64(e, "updatedAt", now);
	BSON_APPEND_DOCUMENT_BEGIN(e, "stats", &st);
	BSON_APPEND_INT64(&st, "deliveredLogs", s->st_logs);
	BSON_APPEND_INT64(&st, "deliveredBatches", s->st_batches);
	BSON_APPEND_INT64(&st, "failedAttempts", s->st_fail);
	BSON_APPEND_INT64(&st, "deadBatches", s->st_dead);
	if (s->st_pruned > 0) /* a metric only once one went */
		BSON_APPEND_INT64(&st, "deadLettersPruned", s->st_pruned);
	bson_append_document_end(e, &st);
}

/* Whether s's entry comes from memory: held under d's epoch, read. */
static bool
state_live(const struct dpart *d, int part, const struct dsource *s)
{
	return s != NULL && s->part == part && s->lease.held &&
	    s->lease.epoch == d->epoch && s->state_ready;
}

/*
 * The whole document of part: the entries of its sources from memory,
 * then the others as read (not taken yet here, busy being taken, or
 * removed and not yet cleaned up by the janitor).
 */
static bson_t *
state_doc(struct dpart *d, int part)
{
	struct dsource *s;
	bson_t	       *doc = bson_new(), srcs, e;
	bson_iter_t	it;
	char		id[FSTATE_ID_MAX];
	int64_t		now = util_now_ms();

	fstate_doc_id(ndparts, part, id);
	BSON_APPEND_UTF8(doc, "_id", id);
	BSON_APPEND_INT32(doc, "count", ndparts);
	BSON_APPEND_INT32(doc, "part", part);
	BSON_APPEND_INT64(doc, "epoch", d->epoch);
	BSON_APPEND_INT64(doc, "updatedAt", now);
	BSON_APPEND_DOCUMENT_BEGIN(doc, "sources", &srcs);
	TAILQ_FOREACH (s, deliverd_sources(), entry) {
		if (!state_live(d, part, s))
			continue;
		BSON_APPEND_DOCUMENT_BEGIN(&srcs, s->id, &e);
		state_entry(s, &e, now);
		bson_append_document_end(&srcs, &e);
		s->written_status = s->status;
	}
	if (bson_iter_init(&it, d->base))
		while (bson_iter_next(&it)) {
			const char *sid = bson_iter_key(&it);

			s = deliverd_source_find(sid);
			if (state_live(d, part, s) ||
			    !BSON_ITER_HOLDS_DOCUMENT(&it))
				continue;
			bson_append_iter(&srcs, sid, -1, &it);
		}
	bson_append_document_end(doc, &srcs);
	return doc;
}

struct state_write {
	int	     part;
	int64_t	     epoch;
	struct lease lease;
	bson_t	    *doc;
	int64_t	     queued; /* mono ms */
	bool	     finish; /* the stop waits for it */
	int	     rc;
	char	     err[512];
};

static void
state_write_work(void *arg)
{
	struct state_write *w = arg;
	char		    coll[FSTATE_COLL_MAX], id[FSTATE_ID_MAX];

	if (util_mono_ms() >= w->lease.deadline_mono) {
		snprintf(w->err, sizeof(w->err),
		    "lease of partition %d past its deadline", w->part);
		w->rc = -ETIMEDOUT;
		return;
	}
	if ((w->rc = lease_check(child_store(), &w->lease, w->err,
		 sizeof(w->err))) != 0)
		return;
	dstate_coll(ndparts, w->part, coll);
	fstate_doc_id(ndparts, w->part, id);
	w->rc = store_upsert(child_store(), coll, id, w->doc, w->err,
	    sizeof(w->err));
}

static void
state_write_done(void *arg)
{
	struct state_write *w = arg;
	struct dpart	   *d = dpart_of(w->part);

	(void)child_store_result(w->rc != -EIO, w->err);
	if (w->rc != 0 && w->rc != -EIO)
		log_info("partition=%d delivery state not written: %s "
			 "(the next holder reads the last one written)",
		    w->part, w->err);
	if (d != NULL) {
		d->writing = false;
		if (w->rc != 0 && d->base != NULL && d->epoch == w->epoch)
			d->dirty = true; /* again at the next tick */
		if (d->finish_wait) {
			d->finish_wait = false;
			if (d->dirty && state_write(w->part, true))
				finishing++;
			finishing--;
		}
	}
	if (w->finish && finishing > 0)
		finishing--;
	if (finish_then != NULL && finishing == 0) {
		void (*then)(void) = finish_then;

		finish_then = NULL;
		then();
	}
	bson_destroy(w->doc);
	free(w);
}

/* Write part's document now. True when a write was queued. */
static bool
state_write(int part, bool finish)
{
	struct dpart	   *d = dpart_of(part);
	struct state_write *w;

	if (d == NULL || d->base == NULL || d->writing || !d->lease.held ||
	    d->lease.epoch != d->epoch || (stopping && !finish))
		return false;
	w = util_xcalloc(1, sizeof(*w));
	w->part = part;
	w->epoch = d->epoch;
	w->lease = d->lease;
	w->doc = state_doc(d, part);
	w->queued = util_mono_ms();
	w->finish = finish;
	d->bytes = w->doc->len;
	if (worker_submit(state_write_work, state_write_done, w) != 0) {
		bson_destroy(w->doc);
		free(w);
		return false;
	}
	d->writing = true;
	d->dirty = d->urgent = false;
	d->written_at = w->queued;
	return true;
}

/* s's delivery state changed: written at once for a new status. */
void
deliverd_source_state_write(struct dsource *s)
{
	struct dpart *d = dpart_of(s->part);

	if (d == NULL || !s->state_ready)
		return;
	d->dirty = true;
	/* By value: the same name may be two literals in two files. */
	if (s->written_status == NULL ||
	    strcmp(s->written_status, s->status) != 0) {
		d->urgent = true;
		if (store_healthy(child_store()))
			(void)state_write(s->part, false);
	}
}

/* Add to s's counters (written with its partition's document). */
void
deliverd_stats_add(struct dsource *s, int64_t logs, int64_t batches,
    int64_t failures, int64_t dead)
{
	struct dpart *d = dpart_of(s->part);

	s->st_logs += logs;
	s->st_batches += batches;
	s->st_fail += failures;
	s->st_dead += dead;
	if (d != NULL)
		d->dirty = true;
}

/* d's base without sid's entry (when it has one). */
static void
base_drop(struct dpart *d, const char *sid)
{
	bson_t *nb;

	if (!bson_has_field(d->base, sid))
		return;
	nb = bson_new();
	bson_copy_to_excluding_noinit(d->base, nb, sid, NULL);
	bson_destroy(d->base);
	d->base = nb;
}

/*
 * Source s was removed (on the loop, before it is freed): its entry
 * stays, as it is now, until the janitor has deleted what the source
 * left (deliverd_state_forgotten), so that a janitor run after a crash
 * still finds it.
 */
void
deliverd_state_gone(const struct dsource *s)
{
	struct dpart *d = dpart_of(s->part);
	bson_t	      e;

	if (d == NULL || d->base == NULL || !state_live(d, s->part, s))
		return;
	base_drop(d, s->id);
	BSON_APPEND_DOCUMENT_BEGIN(d->base, s->id, &e);
	state_entry(s, &e, util_now_ms());
	bson_append_document_end(d->base, &e);
	d->dirty = true;
}

/* The janitor cleaned up after removed sources ids: their entries go. */
void
deliverd_state_forgotten(char *const *ids, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		int	      part = deliverd_partition_of(ids[i]);
		struct dpart *d = dpart_of(part);

		if (d == NULL || d->base == NULL ||
		    deliverd_source_find(ids[i]) != NULL ||
		    !bson_has_field(d->base, ids[i]))
			continue;
		base_drop(d, ids[i]);
		d->dirty = true;
	}
}

/* Dead letters of s deleted at the end of their retention. */
void
deliverd_stats_pruned(struct dsource *s, int64_t n)
{
	struct dpart *d = dpart_of(s->part);

	s->st_pruned += n;
	if (d != NULL)
		d->dirty = true;
}

/*
 * Timer: write the partitions whose state moved, an urgent one at once
 * (one whose write failed is tried again here), the others at most every
 * STATE_WRITE_MIN_MS.
 */
void
deliverd_state_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	int64_t now = util_mono_ms();
	int	i;

	(void)fd;
	(void)what;
	(void)arg;
	if (finishing > 0 || !store_healthy(child_store()))
		return;
	for (i = 0; i < ndparts; i++) {
		struct dpart *d = &dparts[i];

		if (d->dirty && !d->writing &&
		    (d->urgent || now - d->written_at >= STATE_WRITE_MIN_MS))
			(void)state_write(i, false);
	}
}

/* A handover: write what is not in the store yet, then it may go. */
bool
deliverd_state_drain(int part)
{
	struct dpart *d = dpart_of(part);

	if (d == NULL || d->base == NULL)
		return true;
	if (d->dirty && !d->writing)
		(void)state_write(part, false);
	return !d->dirty && !d->writing;
}

/*
 * Stopping: write every partition that moved, then then() (at once
 * when there is none; the grace period bounds the wait).
 */
void
deliverd_state_finish(void (*then)(void))
{
	int i;

	stopping = true;
	for (i = 0; i < ndparts; i++) {
		struct dpart *d = &dparts[i];

		if (!store_healthy(child_store()))
			break; /* what moved since the last write is lost */
		if (d->writing) {
			d->finish_wait = true; /* then again if it moved */
			finishing++;
		} else if (d->dirty && state_write(i, true))
			finishing++;
	}
	if (finishing == 0)
		then();
	else
		finish_then = then;
}
