/*
 * The state the scheduler stores for each source: its source_state
 * document "<id>:fetch" (status, lastError, lastFetchAt; read once when
 * a partition is taken, written under the lease when it changes) and the
 * alerts (credentials_invalid, credentials_restored, schema_drift)
 * queued for deliverd.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

#include "fetcherd/fetcherd.h"
#include "fetcherd/handoff.h"
#include "fetcherd/sched.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/ipc/ipc.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

struct palert {
	TAILQ_ENTRY(palert) entry;
	char	src[64];
	char	kind[32];
	char	msg[GOOGLE_DIAG_MAX]; /* whole advice */
	int64_t at;
};

static TAILQ_HEAD(, palert) alerts = TAILQ_HEAD_INITIALIZER(alerts);
static bool	alerts_storing;
static unsigned writing; /* source_state writes out */

unsigned
src_state_writes(void)
{
	return writing;
}

void
src_set_error(struct fsrc *s, const char *msg)
{
	if (strcmp(s->last_error, msg) == 0)
		return;
	util_strlcpy(s->last_error, msg, sizeof(s->last_error));
	s->state_dirty = true;
	src_flush_state(s);
}

/* The head alert is stored (or not): the next one, or retry later. */
static void
alerts_flush_done(struct handoff *h)
{
	struct palert *a = TAILQ_FIRST(&alerts);

	alerts_storing = false;
	if (!child_store_result(h->rc == 0, h->err)) {
		handoff_free(h);
		return; /* kept; the next alert or rescan retries */
	}
	if (a != NULL) {
		log_info("source=%s alert=%s stored for delivery", a->src,
		    a->kind);
		if (child_chan() != NULL)
			ipc_send_logs_stored(child_chan(), a->src, 0);
		TAILQ_REMOVE(&alerts, a, entry);
		free(a);
	}
	handoff_free(h);
	alerts_flush();
}

/*
 * Store the queued alerts on the worker, one at a time and in order;
 * each then wakes the deliverer.
 */
void
alerts_flush(void)
{
	struct palert  *a;
	struct handoff *h;
	char		id[37];

	if (alerts_storing || (a = TAILQ_FIRST(&alerts)) == NULL ||
	    !child_store_ready() || !store_healthy(child_store()))
		return;
	util_uuid_v4(id);
	h = handoff_new(HANDOFF_INSERT, a->src, NULL);
	util_strlcpy(h->coll, STORE_ALERTS, sizeof(h->coll));
	h->doc = BCON_NEW("_id", BCON_UTF8(id), "sourceId", BCON_UTF8(a->src),
	    "alert", BCON_UTF8(a->kind), "message", BCON_UTF8(a->msg), "at",
	    BCON_INT64(a->at), "state", BCON_UTF8("pending"), "batchId",
	    BCON_NULL);
	h->done = alerts_flush_done;
	if (handoff_submit(h) != 0) {
		handoff_free(h);
		return;
	}
	alerts_storing = true;
}

void
alert_queue(struct fsrc *s, const char *kind, const char *msg)
{
	struct palert *a = util_xcalloc(1, sizeof(*a));

	util_strlcpy(a->src, s->id, sizeof(a->src));
	util_strlcpy(a->kind, kind, sizeof(a->kind));
	util_strlcpy(a->msg, msg, sizeof(a->msg));
	a->at = util_now_ms();
	TAILQ_INSERT_TAIL(&alerts, a, entry);
	alerts_flush();
}

/* A state write finished: note it, write again if it changed since. */
static void
src_flush_done(struct handoff *h)
{
	struct fsrc *s = src_find(h->sid);

	(void)child_store_result(h->rc == 0, h->err);
	writing--;
	if (sched_stopping() && writing == 0)
		sched_release_all();
	if (s != NULL && s->state_writing) {
		s->state_writing = false;
		if (h->rc != 0)
			s->state_dirty = true; /* the next rescan retries */
		else
			s->state_written_at = util_mono_ms();
		if (s->state_dirty && s->state_urgent && !sched_stopping())
			src_flush_state(s);
	}
	handoff_free(h);
}

/* A cursor written at the stop (src_flush_cursors). */
static void
src_cursor_done(struct handoff *h)
{
	(void)child_store_result(h->rc == 0 || h->rc == -ESTALE, h->err);
	writing--;
	if (sched_stopping() && writing == 0)
		sched_release_all();
	handoff_free(h);
}

/*
 * Stopping: write the cursors and stats of s's jobs that changed since
 * they were last written (google_driver.c writes them at most every 5 s),
 * under the lease, before it is given back.
 */
void
src_flush_cursors(struct fsrc *s)
{
	struct handoff *h;
	size_t		i;

	if (!s->leased || !child_store_ready() || !store_healthy(child_store()))
		return;
	for (i = 0; i <= s->njobs; i++) {
		struct fjob *j = i < s->njobs ? s->jobs[i] : s->bfjob;

		if (j == NULL || !j->loaded || !j->unsaved)
			continue;
		h = driver_save_handoff(j);
		h->done = src_cursor_done;
		if (handoff_submit(h) != 0) {
			handoff_free(h);
			continue;
		}
		writing++;
	}
}

static void
src_append_i64s(bson_t *doc, const char *key, const int64_t *v, int n)
{
	bson_t	    a;
	char	    k[16];
	const char *kp;
	int	    i;

	bson_append_array_begin(doc, key, -1, &a);
	for (i = 0; i < n; i++) {
		bson_uint32_to_string((uint32_t)i, &kp, k, sizeof(k));
		bson_append_int64(&a, kp, -1, v[i]);
	}
	bson_append_array_end(doc, &a);
}

/*
 * rereads {app: {agesS, tuned, lateByAge, doneByAge, lagP999S, events}}:
 * the re-read ages each application uses and the evidence they were
 * chosen on (window.c, window_tune), for the API.
 */
static void
src_append_rereads(struct fsrc *s, bson_t *doc)
{
	bson_t r, a;
	size_t i;

	bson_append_document_begin(doc, "rereads", -1, &r);
	for (i = 0; i < s->njobs; i++) {
		struct fjob *j = s->jobs[i];

		if (!j->loaded)
			continue;
		bson_append_document_begin(&r, j->app, -1, &a);
		src_append_i64s(&a, "agesS", fconf.ages_s, j->nages);
		BSON_APPEND_BOOL(&a, "tuned", fconf.tuned);
		src_append_i64s(&a, "lateByAge", j->stats.late_rereads,
		    fconf.nages);
		src_append_i64s(&a, "doneByAge", j->stats.rereads_done,
		    fconf.nages);
		BSON_APPEND_INT64(&a, "lagP999S",
		    window_lag_p999(&j->stats) / 1000);
		BSON_APPEND_INT64(&a, "events", j->stats.lag_count);
		bson_append_document_end(&r, &a);
	}
	bson_append_document_end(doc, &r);
}

/*
 * fetchedThrough {app: ms}: the fetch side of each application's
 * watermark (window_final), for apid; coveredFrom {app: ms} with it.
 */
static void
src_append_final(struct fsrc *s, bson_t *doc)
{
	bson_t f, c;
	size_t i;

	bson_append_document_begin(doc, "fetchedThrough", -1, &f);
	for (i = 0; i < s->njobs; i++)
		if (s->jobs[i]->final_ms > 0)
			BSON_APPEND_INT64(&f, s->jobs[i]->app,
			    s->jobs[i]->final_ms);
	bson_append_document_end(doc, &f);
	bson_append_document_begin(doc, "coveredFrom", -1, &c);
	for (i = 0; i < s->njobs; i++)
		if (s->jobs[i]->final_ms > 0)
			BSON_APPEND_INT64(&c, s->jobs[i]->app,
			    s->jobs[i]->covered_ms);
	bson_append_document_end(doc, &c);
	src_append_rereads(s, doc);
}

/*
 * Write source_state "<id>:fetch" when it changed (under the lease), on
 * the worker. A new lastFetchAt alone is written at most every
 * SCHED_STATE_EVERY_MS: a poll that found nothing writes nothing.
 */
void
src_flush_state(struct fsrc *s)
{
	struct handoff *h;
	bson_t	       *doc;
	const char     *status;

	if (!s->state_dirty || !s->leased || !child_store_ready() ||
	    !store_healthy(child_store()) || s->state_writing)
		return;
	status = s->creds_invalid ? "credentials_invalid" : "active";
	s->state_urgent = s->written_status != status ||
	    strcmp(s->written_error, s->last_error) != 0 ||
	    (s->last_fetch_at > 0) != s->written_fetched;
	if (!s->state_urgent && s->state_written_at > 0 &&
	    util_mono_ms() - s->state_written_at < SCHED_STATE_EVERY_MS)
		return;
	doc = BCON_NEW("sourceId", BCON_UTF8(s->id), "status",
	    BCON_UTF8(status));
	if (s->last_fetch_at > 0)
		BSON_APPEND_INT64(doc, "lastFetchAt", s->last_fetch_at);
	else
		BSON_APPEND_NULL(doc, "lastFetchAt");
	if (s->last_error[0] != '\0')
		BSON_APPEND_UTF8(doc, "lastError", s->last_error);
	else
		BSON_APPEND_NULL(doc, "lastError");
	src_append_final(s, doc);
	BSON_APPEND_INT64(doc, "credentialsVersion", s->creds_version);
	BSON_APPEND_INT64(doc, "epoch", s->lease.epoch);
	BSON_APPEND_INT64(doc, "updatedAt", util_now_ms());
	h = handoff_new(HANDOFF_UPSERT, s->id, NULL);
	util_strlcpy(h->coll, STORE_SOURCE_STATE, sizeof(h->coll));
	snprintf(h->id, sizeof(h->id), "%s:fetch", s->id);
	h->doc = doc;
	h->done = src_flush_done;
	if (handoff_submit(h) != 0) {
		handoff_free(h);
		return;
	}
	s->state_writing = true;
	s->state_dirty = false;
	writing++;
	s->written_status = status;
	s->written_fetched = s->last_fetch_at > 0;
	util_strlcpy(s->written_error, s->last_error, sizeof(s->written_error));
}

/* Apply a persisted source_state (NULL: none yet) after a take. */
static void
src_state_apply(struct fsrc *s, const bson_t *doc)
{
	const char *st, *le;
	size_t	    i;

	s->state_loaded = true;
	s->state_dirty = true; /* the new epoch */
	if (doc == NULL)
		return;
	st = store_bson_str(doc, "status");
	le = store_bson_str(doc, "lastError");
	if (st != NULL && strcmp(st, "credentials_invalid") == 0) {
		s->creds_invalid = true;
		s->creds_retry_at = 0; /* probe at once */
	}
	if (le != NULL)
		util_strlcpy(s->last_error, le, sizeof(s->last_error));
	s->last_fetch_at = store_bson_int(doc, "lastFetchAt", 0);
	for (i = 0; i < s->njobs; i++) {
		struct fjob *j = s->jobs[i];
		char	     key[96];
		int64_t	     v;

		/* The watermark never moves back, whichever doc is newer. */
		snprintf(key, sizeof(key), "fetchedThrough.%s", j->app);
		if ((v = store_bson_int(doc, key, 0)) > j->final_ms)
			j->final_ms = v;
		snprintf(key, sizeof(key), "coveredFrom.%s", j->app);
		if (j->covered_ms == 0)
			j->covered_ms = store_bson_int(doc, key, 0);
	}
}

/*
 * The source_state of the sources of a partition just taken, read in
 * one query on the worker thread; they start once it is known.
 */
struct sload {
	int	part;
	int64_t epoch;
	char (*ids)[64];
	bson_t **docs;
	size_t	 n;
	int	 rc;
	char	 err[512];
};

static void
sload_work(void *arg)
{
	struct sload *l = arg;
	char	    **ids, id[96];
	size_t	      i;

	ids = util_xcalloc(l->n, sizeof(*ids));
	for (i = 0; i < l->n; i++) {
		snprintf(id, sizeof(id), "%s:fetch", l->ids[i]);
		ids[i] = util_xstrdup(id);
	}
	l->rc = store_find_ids(child_store(), STORE_SOURCE_STATE, ids, l->n,
	    l->docs, l->err, sizeof(l->err));
	for (i = 0; i < l->n; i++)
		free(ids[i]);
	free(ids);
}

static void
sload_done(void *arg)
{
	struct sload *l = arg;
	struct fsrc  *s;
	size_t	      i;

	child_store_result(l->rc == 0, l->err);
	for (i = 0; i < l->n; i++) {
		s = src_find(l->ids[i]);
		if (s != NULL && s->leased && s->part == l->part &&
		    s->lease.epoch == l->epoch && !sched_stopping()) {
			if (l->rc == 0)
				src_state_apply(s, l->docs[i]);
			src_kick(s);
			src_flush_state(s);
		}
		if (l->docs[i] != NULL)
			bson_destroy(l->docs[i]);
	}
	free(l->ids);
	free(l->docs);
	free(l);
}

/*
 * Load the states of the sources of part (only one when one is not
 * NULL) that hold its lease of epoch, then kick them.
 */
void
src_load_start(int part, int64_t epoch, struct fsrc *one)
{
	struct sload *l;
	struct fsrc  *s;
	size_t	      n = 0;

	TAILQ_FOREACH (s, &srcs, entry)
		if (s->part == part && s->leased && (one == NULL || s == one))
			n++;
	if (n == 0)
		return;
	l = util_xcalloc(1, sizeof(*l));
	l->part = part;
	l->epoch = epoch;
	l->ids = util_xcalloc(n, sizeof(*l->ids));
	l->docs = util_xcalloc(n, sizeof(*l->docs));
	TAILQ_FOREACH (s, &srcs, entry)
		if (s->part == part && s->leased && (one == NULL || s == one))
			util_strlcpy(l->ids[l->n++], s->id, sizeof(l->ids[0]));
	if (worker_submit(sload_work, sload_done, l) != 0) {
		free(l->ids);
		free(l->docs);
		free(l);
	}
}
