/*
 * The fetch driver of one (source, application): choose the next window
 * (the main poll from the cursor minus the overlap, then closed windows
 * due for a re-read at their age), page through it, store every log, and
 * only when the last page of the window is stored move the cursor (or the
 * re-read schedule), under the source's lease.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

#include "fetcherd/fetcherd.h"
#include "fetcherd/handoff.h"
#include "fetcherd/recent.h"
#include "lib/child.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/normalize.h"
#include "lib/store.h"
#include "lib/util.h"

/* Upper bounds (ms) of the lag buckets; the last one is open. */
static const int64_t lag_bounds[FETCH_LAG_BUCKETS - 1] = {
	60000, 300000, 900000, 3600000, 21600000, 86400000, 259200000
};

static void	driver_request(struct fjob *j);
static void	driver_page_stored(struct fjob *j, size_t n, char *next);
static bool	driver_hold(struct fjob *j);
static void	driver_count_done(struct handoff *h);
static void	driver_report(struct fjob *j, enum fetch_result r,
		    const struct google_error *e, const char *what);

/* Bumped on every failed page store: every source recovers once more. */
static uint64_t	driver_fail_gen = 1;

/* A window that stored nothing new saves its cursor at most this often. */
#define DRIVER_IDLE_SAVE_MS	(5LL * 60 * 1000)

/* Tell the scheduler how the run goes (enum fetch_result). */
static void
driver_report(struct fjob *j, enum fetch_result r,
    const struct google_error *e, const char *what)
{
	struct fetch_report rep;

	memset(&rep, 0, sizeof(rep));
	rep.gerr = e;
	rep.what = what;
	sched_report(j, r, &rep);
}

/* Forget the window in progress (the cursor stays where it was). */
void
driver_abort(struct fjob *j)
{
	size_t i;

	if (j->op != NULL) {
		google_op_cancel(j->op);
		j->op = NULL;
	}
	if (j->ho != NULL) {
		/* It finishes on the worker; its done frees it. */
		j->ho->arg = NULL;
		j->ho = NULL;
	}
	free(j->ho_next);
	j->ho_next = NULL;
	free(j->page_token);
	j->page_token = NULL;
	for (i = 0; i < j->nseen; i++)
		free(j->seen_tokens[i]);
	free(j->seen_tokens);
	j->seen_tokens = NULL;
	j->nseen = 0;
	j->empty_pages = 0;
	j->in_win = false;
}

void
driver_free(struct fjob *j)
{
	driver_abort(j);
	free(j->rr);
	j->rr = NULL;
	j->nrr = 0;
	recent_free(j->recent);
	j->recent = NULL;
}

/* Read an int64 array member into out[max]; returns the count. */
static int
driver_int_array(const bson_t *doc, const char *key, int64_t *out, int max)
{
	bson_iter_t it, a;
	int n = 0;

	if (!bson_iter_init_find(&it, doc, key) ||
	    !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &a))
		return 0;
	while (bson_iter_next(&a) && n < max)
		out[n++] = bson_iter_as_int64(&a);
	return n;
}

/* Load the cursor and stats documents. 0 or -EIO. */
/* The cursor and stats documents of j are read: take them in. */
static void
driver_load_apply(struct fjob *j, const bson_t *cdoc, const bson_t *sdoc)
{
	bson_t sub;
	bson_iter_t it, a;
	int64_t now = util_now_ms(), lb;

	free(j->rr);
	j->rr = NULL;
	j->nrr = 0;
	if (cdoc != NULL) {
		j->cursor = store_bson_int(cdoc, "cursor", 0);
		if (bson_iter_init_find(&it, cdoc, "rereads") &&
		    BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &a)) {
			while (bson_iter_next(&a)) {
				const uint8_t *data;
				uint32_t len;
				struct reread *nr;

				if (!BSON_ITER_HOLDS_DOCUMENT(&a))
					continue;
				bson_iter_document(&a, &len, &data);
				if (!bson_init_static(&sub, data, len))
					continue;
				nr = realloc(j->rr, (j->nrr + 1) *
				    sizeof(*nr));
				if (nr == NULL)
					fatal("out of memory");
				j->rr = nr;
				nr[j->nrr].start = store_bson_int(&sub,
				    "start", 0);
				nr[j->nrr].end = store_bson_int(&sub, "end", 0);
				nr[j->nrr].closed_at = store_bson_int(&sub,
				    "closedAt", 0);
				nr[j->nrr].next = (int)store_bson_int(&sub,
				    "next", 0);
				if (nr[j->nrr].next < fconf.nages &&
				    nr[j->nrr].end > nr[j->nrr].start)
					j->nrr++;
			}
		}
	} else {
		lb = j->src->lookback_s > 0 ? j->src->lookback_s :
		    fconf.lookback_s;
		if (lb * 1000 > FETCH_RETENTION_MS - FETCH_RETENTION_MARGIN_MS)
			lb = (FETCH_RETENTION_MS - FETCH_RETENTION_MARGIN_MS) /
			    1000;
		j->cursor = now - lb * 1000;
		log_info("source=%s app=%s first run, starting %llds ago",
		    j->src->id, j->app, (long long)lb);
	}
	memset(&j->stats, 0, sizeof(j->stats));
	if (sdoc != NULL) {
		struct fetch_stats *s = &j->stats;

		s->events_stored = store_bson_int(sdoc, "eventsStored", 0);
		s->events_fetched = store_bson_int(sdoc, "eventsFetched", 0);
		s->duplicates = store_bson_int(sdoc, "duplicates", 0);
		s->error_logs = store_bson_int(sdoc, "errorLogs", 0);
		s->truncated_logs = store_bson_int(sdoc, "truncatedLogs", 0);
		s->pages = store_bson_int(sdoc, "pages", 0);
		s->windows = store_bson_int(sdoc, "windows", 0);
		s->lag_count = store_bson_int(sdoc, "lag.count", 0);
		s->lag_sum_ms = store_bson_int(sdoc, "lag.sumMs", 0);
		s->lag_max_ms = store_bson_int(sdoc, "lag.maxMs", 0);
		s->last_lag_ms = store_bson_int(sdoc, "lag.lastMs", 0);
		driver_int_array(sdoc, "lag.buckets", s->lag_buckets,
		    FETCH_LAG_BUCKETS);
		s->late_overlap = store_bson_int(sdoc, "lateOverlap", 0);
		driver_int_array(sdoc, "lateRereads", s->late_rereads,
		    FETCH_MAX_AGES);
		driver_int_array(sdoc, "rereadsDone", s->rereads_done,
		    FETCH_MAX_AGES);
	}
	j->loaded = true;
}

static void
driver_load_done(struct handoff *h)
{
	struct fjob *j = h->arg;

	if (j == NULL)
		goto out;
	j->ho = NULL;
	if (!child_store_result(h->rc == 0, h->err)) {
		driver_abort(j);
		driver_report(j, FETCH_STORE_ERROR, NULL, NULL);
		goto out;
	}
	driver_load_apply(j, h->cursor_doc, h->stats_doc);
	driver_step(j);
out:
	handoff_free(h);
}

/* Read j's cursor and stats on the worker; driver_step follows. */
static void
driver_load_start(struct fjob *j)
{
	struct handoff *h;

	h = handoff_new(HANDOFF_LOAD, j->src->id, j->app);
	h->done = driver_load_done;
	h->arg = j;
	if (handoff_submit(h) != 0) {
		handoff_free(h);
		driver_report(j, FETCH_STORE_ERROR, NULL, NULL);
		return;
	}
	j->ho = h;
}

/* Append an int64 array. */
static void
driver_append_array(bson_t *doc, const char *key, const int64_t *v, int n)
{
	bson_t a;
	char k[16];
	const char *kp;
	int i;

	bson_append_array_begin(doc, key, -1, &a);
	for (i = 0; i < n; i++) {
		bson_uint32_to_string((uint32_t)i, &kp, k, sizeof(k));
		bson_append_int64(&a, kp, -1, v[i]);
	}
	bson_append_array_end(doc, &a);
}

/*
 * The cursor and stats documents of j into h (written on the worker
 * after checking that no newer lease epoch exists).
 */
static void
driver_save_docs(struct fjob *j, struct handoff *h)
{
	struct fetch_stats *s = &j->stats;
	bson_t doc, a, e, lag;
	int64_t now = util_now_ms(), ages[FETCH_MAX_AGES];
	char k[16];
	const char *kp;
	size_t i;
	int n;

	bson_init(&doc);
	BSON_APPEND_UTF8(&doc, "sourceId", j->src->id);
	BSON_APPEND_UTF8(&doc, "app", j->app);
	BSON_APPEND_INT64(&doc, "cursor", j->cursor);
	bson_append_array_begin(&doc, "rereads", -1, &a);
	for (i = 0; i < j->nrr; i++) {
		bson_uint32_to_string((uint32_t)i, &kp, k, sizeof(k));
		bson_append_document_begin(&a, kp, -1, &e);
		BSON_APPEND_INT64(&e, "start", j->rr[i].start);
		BSON_APPEND_INT64(&e, "end", j->rr[i].end);
		BSON_APPEND_INT64(&e, "closedAt", j->rr[i].closed_at);
		BSON_APPEND_INT32(&e, "next", j->rr[i].next);
		bson_append_document_end(&a, &e);
	}
	bson_append_array_end(&doc, &a);
	BSON_APPEND_INT64(&doc, "epoch", j->src->lease.epoch);
	BSON_APPEND_INT64(&doc, "updatedAt", now);
	h->cursor_doc = bson_copy(&doc);
	bson_destroy(&doc);

	bson_init(&doc);
	BSON_APPEND_UTF8(&doc, "sourceId", j->src->id);
	BSON_APPEND_UTF8(&doc, "app", j->app);
	BSON_APPEND_INT64(&doc, "eventsStored", s->events_stored);
	BSON_APPEND_INT64(&doc, "eventsFetched", s->events_fetched);
	BSON_APPEND_INT64(&doc, "duplicates", s->duplicates);
	BSON_APPEND_INT64(&doc, "errorLogs", s->error_logs);
	BSON_APPEND_INT64(&doc, "truncatedLogs", s->truncated_logs);
	BSON_APPEND_INT64(&doc, "pages", s->pages);
	BSON_APPEND_INT64(&doc, "windows", s->windows);
	BSON_APPEND_DOCUMENT_BEGIN(&doc, "lag", &lag);
	BSON_APPEND_INT64(&lag, "count", s->lag_count);
	BSON_APPEND_INT64(&lag, "sumMs", s->lag_sum_ms);
	BSON_APPEND_INT64(&lag, "maxMs", s->lag_max_ms);
	BSON_APPEND_INT64(&lag, "lastMs", s->last_lag_ms);
	driver_append_array(&lag, "bucketBoundsMs", lag_bounds,
	    FETCH_LAG_BUCKETS - 1);
	driver_append_array(&lag, "buckets", s->lag_buckets,
	    FETCH_LAG_BUCKETS);
	bson_append_document_end(&doc, &lag);
	BSON_APPEND_INT64(&doc, "lateOverlap", s->late_overlap);
	n = fconf.nages;
	for (i = 0; i < (size_t)n; i++)
		ages[i] = fconf.ages_s[i];
	driver_append_array(&doc, "rereadAgesS", ages, n);
	driver_append_array(&doc, "lateRereads", s->late_rereads, n);
	driver_append_array(&doc, "rereadsDone", s->rereads_done, n);
	BSON_APPEND_INT64(&doc, "rereadsPending", (int64_t)j->nrr);
	BSON_APPEND_INT64(&doc, "cursor", j->cursor);
	BSON_APPEND_INT64(&doc, "epoch", j->src->lease.epoch);
	BSON_APPEND_INT64(&doc, "updatedAt", now);
	h->stats_doc = bson_copy(&doc);
	bson_destroy(&doc);
}

/* Merge neighbouring re-read windows that share their age step. */
static void
driver_rr_merge(struct fjob *j)
{
	int64_t gran = fconf.nages > 0 ? fconf.ages_s[0] * 250 : 1000;
	size_t i;

	if (gran < 1000)
		gran = 1000;
	for (i = 0; i + 1 < j->nrr;) {
		struct reread *a = &j->rr[i], *b = &j->rr[i + 1];
		int64_t d = a->closed_at - b->closed_at;

		if (d < 0)
			d = -d;
		if (a->next == b->next && a->end >= b->start &&
		    b->end >= a->start && d <= gran) {
			a->start = a->start < b->start ? a->start : b->start;
			a->end = a->end > b->end ? a->end : b->end;
			/*
			 * The earliest close: a merged window never slides
			 * forward; its newest part is read at most gran
			 * early (a quarter of the first age).
			 */
			a->closed_at = a->closed_at < b->closed_at ?
			    a->closed_at : b->closed_at;
			memmove(b, b + 1, (j->nrr - i - 2) * sizeof(*b));
			j->nrr--;
		} else
			i++;
	}
}

/* Remember a closed window for its re-reads. */
static void
driver_rr_add(struct fjob *j, int64_t start, int64_t end, int64_t now)
{
	struct reread *nr;

	if (fconf.nages == 0 || end <= start)
		return;
	if ((nr = realloc(j->rr, (j->nrr + 1) * sizeof(*nr))) == NULL)
		fatal("out of memory");
	j->rr = nr;
	nr[j->nrr].start = start;
	nr[j->nrr].end = end;
	nr[j->nrr].closed_at = now;
	nr[j->nrr].next = 0;
	j->nrr++;
	driver_rr_merge(j);
}

/*
 * How far before the cursor the first window of a run starts. The whole
 * overlap (fetch_overlap: events Google publishes minutes late) is read
 * again at most every FETCH_OVERLAP_SPREAD-th of it, and every poll
 * reads the last FETCH_EDGE_MS again: a source polled every second with
 * the default 600 s overlap read 600 s of events a second before, 600
 * times what is new, in Google calls as in CPU. A late event is then
 * found within a tenth of the overlap (60 s by default) instead of at the
 * next poll; the re-reads at growing ages (fetch_reread_ages) stay as
 * they were. Polls further apart than a tenth of the overlap (the usual
 * intervals of minutes) read the whole overlap every time, as before.
 */
static int64_t
driver_overlap(struct fjob *j)
{
	int64_t now = util_mono_ms();
	int64_t every = fconf.overlap_ms / FETCH_OVERLAP_SPREAD;

	if (j->overlap_mono == 0 || now - j->overlap_mono >= every) {
		j->overlap_mono = now;
		return fconf.overlap_ms;
	}
	return fconf.overlap_ms < FETCH_EDGE_MS ? fconf.overlap_ms :
	    FETCH_EDGE_MS;
}

/* Pick the next window of this run; false when the run is over. */
static bool
driver_next_window(struct fjob *j)
{
	int64_t now = util_now_ms();
	int64_t floor_ms = now - FETCH_RETENTION_MS + FETCH_RETENTION_MARGIN_MS;
	int64_t start, end;
	size_t i;

	if (j->cursor < floor_ms) {
		log_warn("source=%s app=%s cursor is beyond Google's "
		    "retention; events older than %d days are gone, "
		    "resuming at the retention limit", j->src->id, j->app,
		    GOOGLE_RETENTION_DAYS);
		j->cursor = floor_ms;
	}
	while (!j->main_done) {
		start = j->cursor;
		if (j->chunks == 0)
			start -= driver_overlap(j);
		if (start < floor_ms)
			start = floor_ms;
		end = j->cursor + FETCH_MAX_WINDOW_MS;
		if (end >= now) {
			end = now;
			j->main_done = true;
		}
		if (end <= start || end <= j->cursor) {
			j->main_done = true;
			break;
		}
		j->chunks++;
		j->kind = WIN_MAIN;
		j->w_start = start;
		j->w_end = end;
		j->w_prev_cursor = j->cursor;
		return true;
	}
	for (i = 0; i < j->nrr;) {
		struct reread *r = &j->rr[i];

		if (r->next >= fconf.nages || r->end <= floor_ms) {
			memmove(r, r + 1, (j->nrr - i - 1) * sizeof(*r));
			j->nrr--;
			continue;
		}
		if (r->closed_at + fconf.ages_s[r->next] * 1000 <= now) {
			j->kind = WIN_REREAD;
			j->rr_idx = i;
			j->rr_age = r->next;
			j->w_start = r->start < floor_ms ? floor_ms : r->start;
			j->w_end = r->end;
			j->w_prev_cursor = j->cursor;
			return true;
		}
		i++;
	}
	return false;
}

/* The cursor and stats are written (or could not be). */
static void
driver_save_done(struct handoff *h)
{
	struct fjob *j = h->arg;

	if (j == NULL)
		goto out;
	j->ho = NULL;
	if (h->rc == -ESTALE && !lease_valid(&j->src->lease)) {
		log_warn("source=%s app=%s %s; another instance fetches it "
		    "now", j->src->id, j->app, h->err);
		j->loaded = false;
		driver_report(j, FETCH_LEASE_LOST, NULL, NULL);
		goto out;
	}
	if (h->rc != 0) {
		char what[600];

		if (h->rc != -ESTALE)
			child_store_result(false, h->err);
		snprintf(what, sizeof(what), "cursor not saved (%s); the "
		    "window will be read again", h->err);
		j->loaded = false;
		driver_report(j, FETCH_STORE_ERROR, NULL, what);
		goto out;
	}
	child_store_result(true, NULL);
	j->saved_at = util_mono_ms();
	driver_step(j);
out:
	handoff_free(h);
}

/*
 * Write j's cursor and stats on the worker, then go on. A window that
 * found nothing new writes at most every DRIVER_IDLE_SAVE_MS: reading it
 * again after a restart costs nothing but a poll.
 */
static void
driver_save_start(struct fjob *j, bool force)
{
	struct handoff *h;

	if (!force && j->win_new == 0 && j->saved_at > 0 &&
	    util_mono_ms() - j->saved_at < DRIVER_IDLE_SAVE_MS) {
		driver_step(j);
		return;
	}
	h = handoff_new(HANDOFF_SAVE, j->src->id, j->app);
	driver_save_docs(j, h);
	h->lease = util_xcalloc(1, sizeof(*h->lease));
	*h->lease = j->src->lease;
	h->epoch = j->src->lease.epoch;
	h->deadline_mono = j->src->lease.deadline_mono;
	h->done = driver_save_done;
	h->arg = j;
	if (handoff_submit(h) != 0) {
		handoff_free(h);
		j->loaded = false;
		driver_report(j, FETCH_STORE_ERROR, NULL, "cannot queue the "
		    "cursor write");
		return;
	}
	j->ho = h;
}

/* A window was read completely: move the cursor or the re-read step. */
static void
driver_window_done(struct fjob *j)
{
	int64_t now = util_now_ms();
	bool force = false;

	j->stats.windows++;
	if (j->kind == WIN_MAIN) {
		int64_t from = j->w_prev_cursor;

		/*
		 * Only the part recent enough for Google to still publish
		 * into it is worth reading again (a back-fill of old days
		 * is not).
		 */
		if (fconf.nages > 0 && from < now - 2 *
		    fconf.ages_s[fconf.nages - 1] * 1000)
			from = now - 2 * fconf.ages_s[fconf.nages - 1] * 1000;
		j->cursor = j->w_end;
		driver_rr_add(j, from, j->w_end, now);
		if (j->recent != NULL)
			recent_expire(j->recent, j->cursor - fconf.overlap_ms -
			    FETCH_EDGE_MS);
	} else if (j->rr_idx < j->nrr) {
		struct reread *r = &j->rr[j->rr_idx];

		j->stats.rereads_done[j->rr_age]++;
		r->next++;
		force = true;	/* a re-read step is worth keeping */
		/* read again later relative to when it was last read */
		if (r->next >= fconf.nages) {
			memmove(r, r + 1, (j->nrr - j->rr_idx - 1) *
			    sizeof(*r));
			j->nrr--;
		} else
			driver_rr_merge(j);
	}
	driver_abort(j);
	driver_save_start(j, force);
}

/* Account the newly stored logs of a page. */
static void
driver_count(struct fjob *j, struct norm_log *logs, size_t n,
    const bool *dup, int64_t seen)
{
	struct fetch_stats *s = &j->stats;
	size_t i;
	int b;

	for (i = 0; i < n; i++) {
		int64_t lag;

		s->events_fetched++;
		if (dup[i]) {
			s->duplicates++;
			continue;
		}
		j->run_new++;
		s->events_stored++;
		if (logs[i].error)
			s->error_logs++;
		if (logs[i].truncated)
			s->truncated_logs++;
		if (j->kind == WIN_REREAD)
			s->late_rereads[j->rr_age]++;
		else if (logs[i].time_ms > 0 &&
		    logs[i].time_ms < j->w_prev_cursor)
			s->late_overlap++;
		if (logs[i].time_ms <= 0)
			continue;
		lag = seen - logs[i].time_ms;
		if (lag < 0)
			lag = 0;
		s->lag_count++;
		s->lag_sum_ms += lag;
		s->last_lag_ms = lag;
		if (lag > s->lag_max_ms)
			s->lag_max_ms = lag;
		for (b = 0; b < FETCH_LAG_BUCKETS - 1; b++)
			if (lag < lag_bounds[b])
				break;
		s->lag_buckets[b]++;
	}
}

/* A window cannot go on: drop it (the cursor stays), report why. */
static void
driver_window_error(struct fjob *j, const char *what)
{
	driver_abort(j);
	driver_report(j, FETCH_WINDOW_FAILED, NULL, what);
}

/* A request failed: report it (the window and page token are kept). */
static void
driver_retry(struct fjob *j, const struct google_error *e)
{
	driver_report(j, e->rate_limited ? FETCH_RATE_LIMITED : FETCH_RETRY,
	    e, NULL);
}

static bool
driver_token_seen(struct fjob *j, const char *tok)
{
	size_t i;

	for (i = 0; i < j->nseen; i++)
		if (strcmp(j->seen_tokens[i], tok) == 0)
			return true;
	return false;
}

/* The logs of a page are stored (or could not be). */
static void
driver_page_done(struct handoff *h)
{
	struct fjob *j = h->arg;
	char *next;
	size_t n, k;

	if (h->rc != 0)
		driver_fail_gen++;	/* open intents to clean */
	if (j == NULL)
		goto out;
	j->ho = NULL;
	n = j->ho_page_n;
	/* Recovery may delete seen ids: only a stored page's are known. */
	if (h->rc != 0 && j->recent != NULL)
		recent_clear(j->recent);
	next = j->ho_next;
	j->ho_next = NULL;
	if (h->rc != 0) {
		free(next);
		char what[600];

		if (h->rc == -ESTALE && !lease_valid(&j->src->lease)) {
			driver_abort(j);
			driver_report(j, FETCH_LEASE_LOST, NULL, NULL);
			goto out;
		}
		if (h->rc != -ESTALE)
			child_store_result(false, h->err);
		snprintf(what, sizeof(what), "logs not stored (%s); cursor "
		    "kept", h->err);
		driver_abort(j);
		driver_report(j, FETCH_STORE_ERROR, NULL, what);
		goto out;
	}
	child_store_result(true, NULL);
	log_debug("source=%s app=%s page stored: logs=%zu new=%zu batches=%u "
	    "intent=%lldms seen=%lldms seal=%lldms", h->sid, h->app, h->n,
	    h->nnew, h->nbatches, (long long)h->ms_intent,
	    (long long)h->ms_seen, (long long)h->ms_seal);
	if (h->recover) {
		j->recovered_epoch = h->epoch;
		j->recovered_gen = h->gen;
		if (h->nrecovered > 0)
			log_notice("source=%s app=%s cleaned %u intents of an "
			    "interrupted page store; their logs are read "
			    "again", j->src->id, j->app, h->nrecovered);
	}
	{
		int64_t before = j->run_new;

		driver_count(j, h->logs, h->n, h->dup, j->ho_seen_at);
		j->win_new += j->run_new - before;
	}
	if (j->recent == NULL)
		j->recent = recent_new();
	for (k = 0; k < h->n; k++)
		recent_add(j->recent, h->logs[k].id, h->logs[k].time_ms);
	j->src->pending_est += h->nbatches;
	for (unsigned i = 0; i < h->nbatches && child_chan() != NULL; i++) {
		struct handoff_batch *hb = &h->batches[i];

		(void)ipc_send_batch_stored(child_chan(), h->sid, hb->id,
		    hb->webhook_id, hb->nlogs, hb->created_at, hb->body,
		    hb->len);
	}
	handoff_free(h);
	driver_page_stored(j, n, next);
	return;
out:
	handoff_free(h);
}

/*
 * Store the n logs of a page on the worker (they and next become the
 * job's); the window goes on in driver_page_done.
 */
static void
driver_store_page(struct fjob *j, struct norm_log *logs, size_t n,
    char *next, int64_t seen)
{
	struct fsrc *s = j->src;
	struct handoff *h;

	h = handoff_new(HANDOFF_PAGE, s->id, j->app);
	h->logs = logs;
	h->n = n;
	h->max_logs = fconf.batch_max_logs;
	h->max_bytes = fconf.batch_max_bytes;
	h->epoch = s->lease.epoch;
	h->deadline_mono = s->lease.deadline_mono;
	h->gen = driver_fail_gen;
	h->recover = j->recovered_epoch != s->lease.epoch ||
	    j->recovered_gen != driver_fail_gen;
	h->done = driver_page_done;
	h->arg = j;
	if (handoff_submit(h) != 0) {
		handoff_free(h);
		free(next);
		driver_abort(j);
		driver_report(j, FETCH_STORE_ERROR, NULL, "cannot queue the "
		    "page store; cursor kept");
		return;
	}
	j->ho = h;
	j->ho_next = next;
	j->ho_seen_at = seen;
}

/*
 * Count the logs of a page this job stored lately (recent.h) as
 * duplicates, free them, and keep the others at the front of logs;
 * returns how many are left for the store.
 */
static size_t
driver_known(struct fjob *j, struct norm_log *logs, size_t n, int64_t seen)
{
	size_t i, k = 0;
	bool dup = true;

	if (j->recent == NULL || recent_count(j->recent) == 0)
		return n;
	for (i = 0; i < n; i++) {
		if (!recent_has(j->recent, logs[i].id)) {
			logs[k++] = logs[i];
			continue;
		}
		driver_count(j, &logs[i], 1, &dup, seen);
		norm_log_clear(&logs[i]);
	}
	return k;
}

/* A page arrived (or failed). */
static void
driver_page_cb(const char *body, size_t len, const struct google_error *e,
    void *arg)
{
	struct fjob *j = arg;
	struct norm_log *logs = NULL;
	size_t n = 0;
	char *next = NULL, err[512];

	j->op = NULL;
	switch (e->cls) {
	case GOOGLE_OK:
		break;
	case GOOGLE_RETRY:
		driver_retry(j, e);
		return;
	case GOOGLE_CREDENTIALS:
		driver_abort(j);
		driver_report(j, FETCH_CREDS_BAD, e, NULL);
		return;
	case GOOGLE_FATAL:
		driver_window_error(j, e->diagnosis);
		return;
	}
	driver_report(j, FETCH_ANSWERED, NULL, NULL);
	if (normalize_page(body, len, j->app, &logs, &n, &next, err,
	    sizeof(err)) != 0) {
		struct google_error be;

		memset(&be, 0, sizeof(be));
		be.cls = GOOGLE_RETRY;
		be.retry_after_s = -1;
		snprintf(be.diagnosis, sizeof(be.diagnosis),
		    "unreadable page from Google (%.200s)", err);
		driver_retry(j, &be);
		return;
	}
	if (n > 0) {
		if (!store_healthy(child_store())) {
			norm_logs_free(logs, n);
			free(next);
			driver_abort(j);
			driver_report(j, FETCH_STORE_ERROR, NULL, NULL);
			return;
		}
		j->ho_page_n = n;
		n = driver_known(j, logs, n, util_now_ms());
		if (n > 0) {
			driver_store_page(j, logs, n, next, util_now_ms());
			return;
		}
		free(logs);
		driver_page_stored(j, j->ho_page_n, next);
		return;
	}
	norm_logs_free(logs, n);
	driver_page_stored(j, 0, next);
}

/* The page's n logs are stored: the next page, or the window is done. */
static void
driver_page_stored(struct fjob *j, size_t n, char *next)
{
	j->stats.pages++;
	driver_report(j, FETCH_PAGE_STORED, NULL, NULL);

	if (next != NULL) {
		if (next[0] == '\0') {
			free(next);
			next = NULL;
		}
	}
	if (next != NULL) {
		if (n == 0 && ++j->empty_pages > FETCH_MAX_EMPTY_PAGES) {
			free(next);
			driver_window_error(j, "Google keeps sending empty "
			    "pages with a next page token");
			return;
		}
		if (n > 0)
			j->empty_pages = 0;
		if (driver_token_seen(j, next)) {
			free(next);
			driver_window_error(j, "Google repeated a page token "
			    "(the window would never end)");
			return;
		}
		if (j->nseen >= FETCH_MAX_PAGES) {
			free(next);
			driver_window_error(j, "too many pages in one window");
			return;
		}
		{
			char **ns = realloc(j->seen_tokens, (j->nseen + 1) *
			    sizeof(char *));

			if (ns == NULL)
				fatal("out of memory");
			j->seen_tokens = ns;
			ns[j->nseen++] = util_xstrdup(next);
		}
		free(j->page_token);
		j->page_token = next;
		if (!lease_valid(&j->src->lease)) {
			driver_abort(j);
			driver_report(j, FETCH_LEASE_LOST, NULL, NULL);
			return;
		}
		if (driver_hold(j))
			return;
		driver_request(j);
		return;
	}

	/* Last page: the whole window is stored. */
	driver_window_done(j);
}

/* Ask for the current page of the current window. */
static void
driver_request(struct fjob *j)
{
	int rc;

	rc = google_list_page(j->src->gc, j->app, j->w_start, j->w_end,
	    GOOGLE_MAX_RESULTS, j->page_token, driver_page_cb, j, &j->op);
	if (rc != 0) {
		struct google_error e;

		memset(&e, 0, sizeof(e));
		e.cls = GOOGLE_RETRY;
		e.retry_after_s = -1;
		snprintf(e.diagnosis, sizeof(e.diagnosis), "cannot start a "
		    "request: %s", strerror(-rc));
		driver_retry(j, &e);
	}
}

/* Say once when a source is held back, and once when it goes on. */
static void
driver_pressure_note(struct fsrc *s)
{
	if (!s->held_back && s->pending_est >= FETCH_MAX_PENDING_BATCHES) {
		log_notice("source=%s %lld batches wait for delivery; reading "
		    "no new window until the callback catches up (Google "
		    "keeps the events)", s->id, (long long)s->pending_est);
		s->held_back = true;
	} else if (s->held_back &&
	    s->pending_est < FETCH_MAX_PENDING_BATCHES / 2) {
		log_notice("source=%s delivery caught up (%lld batches "
		    "pending); reading new windows again", s->id,
		    (long long)s->pending_est);
		s->held_back = false;
	}
}

/* Start a count of s's undelivered batches for j; false if not now. */
static bool
driver_recount(struct fjob *j)
{
	struct fsrc *s = j->src;
	struct handoff *h;

	if (util_mono_ms() - s->pending_counted_at < FETCH_PENDING_RECOUNT_MS)
		return false;
	/* At most one count per source every few seconds. */
	s->pending_counted_at = util_mono_ms();
	h = handoff_new(HANDOFF_COUNT, s->id, j->app);
	h->done = driver_count_done;
	h->arg = j;
	if (handoff_submit(h) != 0) {
		handoff_free(h);
		return false;
	}
	j->ho = h;
	return true;
}

static void
driver_count_done(struct handoff *h)
{
	struct fjob *j = h->arg;

	if (j != NULL) {
		j->ho = NULL;
		if (h->rc == 0)
			j->src->pending_est = h->pending;
		driver_pressure_note(j->src);
		if (!j->in_win)
			driver_step(j);
		else if (!driver_hold(j))
			driver_request(j);
	}
	handoff_free(h);
}

/*
 * Backpressure, at the start of a run: true when j waits for a count of
 * its source's undelivered batches (it goes on after it). Over
 * FETCH_MAX_PENDING_BATCHES the run reads no new window, re-reads only.
 */
static bool
driver_backpressure(struct fjob *j)
{
	struct fsrc *s = j->src;

	if (j->in_win || j->main_done || j->chunks > 0 ||
	    s->pending_est < FETCH_MAX_PENDING_BATCHES)
		return false;
	if (driver_recount(j))
		return true;
	driver_pressure_note(s);
	if (s->pending_est >= FETCH_MAX_PENDING_BATCHES)
		j->main_done = true;	/* this run: re-reads only */
	return false;
}

/*
 * Backpressure inside a new window: true when j must not ask for its next
 * page yet (a count runs, or it waits with its window and page token).
 */
static bool
driver_hold(struct fjob *j)
{
	struct fsrc *s = j->src;

	if (j->kind != WIN_MAIN || s->pending_est < FETCH_MAX_PENDING_BATCHES)
		return false;
	if (driver_recount(j))
		return true;
	driver_pressure_note(s);
	if (s->pending_est < FETCH_MAX_PENDING_BATCHES)
		return false;
	{
		struct fetch_report rep;

		memset(&rep, 0, sizeof(rep));
		rep.delay_ms = FETCH_PENDING_RECOUNT_MS;	/* count again */
		sched_report(j, FETCH_WAIT, &rep);
	}
	return true;
}

/*
 * Go on with the run of j (which holds a concurrency slot): load its
 * state, pick the next window or resume the current one, or finish.
 */
void
driver_step(struct fjob *j)
{
	if (j->src->gc == NULL) {
		driver_report(j, FETCH_NO_CLIENT, NULL, NULL);
		return;
	}
	if (!j->loaded) {
		driver_load_start(j);
		return;
	}
	if (!lease_valid(&j->src->lease)) {
		driver_abort(j);
		driver_report(j, FETCH_LEASE_LOST, NULL, NULL);
		return;
	}
	if (driver_backpressure(j))
		return;
	if (!j->in_win) {
		if (!driver_next_window(j)) {
			driver_report(j, FETCH_DONE, NULL, NULL);
			return;
		}
		j->in_win = true;
		j->win_new = 0;
		log_debug("source=%s app=%s %s window %" PRId64 "..%" PRId64,
		    j->src->id, j->app, j->kind == WIN_MAIN ? "poll" :
		    "re-read", j->w_start, j->w_end);
	} else if (driver_hold(j))
		return;
	driver_request(j);
}
