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
static unsigned writing; /* backfill cursor writes out */

/* Writes out: a stop waits for them before the partitions go. */
unsigned
src_state_writes(void)
{
	return writing + pstate_writes();
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

/* A cursor written at the stop (src_flush_cursors). */
static void
src_cursor_done(struct handoff *h)
{
	(void)child_store_result(h->rc == 0 || h->rc == -ESTALE, h->err);
	writing--;
	if (sched_stopping() && src_state_writes() == 0)
		sched_release_all();
	handoff_free(h);
}

/*
 * The cursor and stats of j as they are now go into its partition's
 * document (written within ms); a backfill's, into its own cursors
 * document at once. Stopping, every job of s that changed since its last
 * save (google_driver.c saves at most every 5 s) does this, before the
 * partitions are given back.
 */
void
src_save_job(struct fjob *j, int64_t ms)
{
	bson_t *c = NULL, *st = NULL;

	if (j->bf != NULL) {
		struct handoff *h;

		if (!j->src->leased || !child_store_ready() ||
		    !store_healthy(child_store()))
			return;
		h = driver_save_handoff(j);
		h->done = src_cursor_done;
		if (handoff_submit(h) != 0) {
			handoff_free(h);
			return;
		}
		writing++;
		return;
	}
	window_docs(j, &c, &st);
	if (j->fs_cursor != NULL)
		bson_destroy(j->fs_cursor);
	if (j->fs_stats != NULL)
		bson_destroy(j->fs_stats);
	j->fs_cursor = c;
	j->fs_stats = st;
	j->drift_unsaved = false;
	j->unsaved = false;
	j->saved_at = util_mono_ms();
	pstate_touch(j->src, ms);
}

void
src_flush_cursors(struct fsrc *s)
{
	size_t i;

	if (!s->leased)
		return;
	for (i = 0; i <= s->njobs; i++) {
		struct fjob *j = i < s->njobs ? s->jobs[i] : s->bfjob;

		if (j != NULL && j->loaded && j->unsaved)
			src_save_job(j, 0);
	}
}

/*
 * The cursor and stats j starts from: those it made last in this
 * process, else its source's entry as read (NULL: none).
 */
void
src_job_docs(struct fjob *j, bson_t *cbuf, bson_t *sbuf, const bson_t **c,
    const bson_t **st)
{
	char key[96];

	*c = j->fs_cursor;
	*st = j->fs_stats;
	if (j->src->fentry == NULL)
		return;
	snprintf(key, sizeof(key), "cursors.%s", j->app);
	if (*c == NULL && store_bson_sub(j->src->fentry, key, cbuf))
		*c = cbuf;
	snprintf(key, sizeof(key), "stats.%s", j->app);
	if (*st == NULL && store_bson_sub(j->src->fentry, key, sbuf))
		*st = sbuf;
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
 * s's status, error or lastFetchAt changed (state_dirty): its
 * partition's document is written at once for a new status or error
 * (or the first time under an epoch), within SCHED_STATE_EVERY_MS for a
 * lastFetchAt alone: a poll that found nothing writes nothing.
 */
void
src_flush_state(struct fsrc *s)
{
	const char *status;
	bool	    urgent;

	if (!s->state_dirty || !s->leased || !s->state_loaded)
		return;
	status = s->creds_invalid ? "credentials_invalid" : "active";
	urgent = s->written_status != status ||
	    strcmp(s->written_error, s->last_error) != 0 ||
	    (s->last_fetch_at > 0) != s->written_fetched;
	s->state_dirty = false;
	pstate_touch(s, urgent ? 0 : SCHED_STATE_EVERY_MS);
}

/*
 * name {app: doc} of s's jobs: each the cursor (or stats) its job made
 * last, else the one of s's entry as read.
 */
static void
src_append_job_docs(struct fsrc *s, bson_t *e, const char *name, bool cursor)
{
	bson_t d, sub;
	char   key[96];
	size_t i;

	bson_append_document_begin(e, name, -1, &d);
	for (i = 0; i < s->njobs; i++) {
		struct fjob  *j = s->jobs[i];
		const bson_t *mine = cursor ? j->fs_cursor : j->fs_stats;

		snprintf(key, sizeof(key), "%s.%s", name, j->app);
		if (mine != NULL)
			BSON_APPEND_DOCUMENT(&d, j->app, mine);
		else if (s->fentry != NULL &&
		    store_bson_sub(s->fentry, key, &sub))
			BSON_APPEND_DOCUMENT(&d, j->app, &sub);
	}
	bson_append_document_end(e, &d);
}

/* Append s's entry of its partition's document to parent (fstate.h). */
void
src_state_entry(struct fsrc *s, bson_t *parent)
{
	const char *status = s->creds_invalid ? "credentials_invalid" :
						"active";
	bson_t	    e;

	bson_append_document_begin(parent, s->id, -1, &e);
	BSON_APPEND_UTF8(&e, "status", status);
	if (s->last_fetch_at > 0)
		BSON_APPEND_INT64(&e, "lastFetchAt", s->last_fetch_at);
	else
		BSON_APPEND_NULL(&e, "lastFetchAt");
	if (s->last_error[0] != '\0')
		BSON_APPEND_UTF8(&e, "lastError", s->last_error);
	else
		BSON_APPEND_NULL(&e, "lastError");
	src_append_final(s, &e);
	BSON_APPEND_INT64(&e, "credentialsVersion", s->creds_version);
	BSON_APPEND_INT64(&e, "epoch", s->lease.epoch);
	BSON_APPEND_INT64(&e, "updatedAt", util_now_ms());
	src_append_job_docs(s, &e, "cursors", true);
	src_append_job_docs(s, &e, "stats", false);
	bson_append_document_end(parent, &e);
	s->written_status = status;
	s->written_fetched = s->last_fetch_at > 0;
	util_strlcpy(s->written_error, s->last_error, sizeof(s->written_error));
}

/*
 * Apply s's entry of its partition's document (NULL: none yet) after a
 * take: what the jobs made in this process before goes, the entry is
 * newer or as new.
 */
void
src_state_apply(struct fsrc *s, const bson_t *doc)
{
	const char *st, *le;
	size_t	    i;

	s->state_loaded = true;
	s->state_dirty = true; /* the new epoch */
	s->written_status = NULL;
	if (s->fentry != NULL)
		bson_destroy(s->fentry);
	s->fentry = doc != NULL ? bson_copy(doc) : NULL;
	for (i = 0; i < s->njobs; i++) {
		struct fjob *j = s->jobs[i];

		if (j->fs_cursor != NULL)
			bson_destroy(j->fs_cursor);
		if (j->fs_stats != NULL)
			bson_destroy(j->fs_stats);
		j->fs_cursor = j->fs_stats = NULL;
		if (j->state != JOB_RUNNING)
			j->loaded = false;
	}
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
