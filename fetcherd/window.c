/*
 * The window and cursor state of one (source, application): its cursor,
 * re-read list and stats as they are read from and written to the
 * cursors and stats collections, the choice of the next window, the move
 * of the cursor (or of a re-read's age step) once a window is read, and
 * the counting of the logs a page stored. No I/O: google_driver.c reads
 * and writes the documents through the store worker.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

#include "fetcherd/fetcherd.h"
#include "fetcherd/recent.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/google/normalize.h"
#include "lib/store/store.h"

/* Upper bounds (ms) of the lag buckets; the last one is open. */
static const int64_t lag_bounds[FETCH_LAG_BUCKETS - 1] = { 60000, 300000,
	900000, 3600000, 21600000, 86400000, 259200000 };

/* Read an int64 array member into out[max]; returns the count. */
static int
window_int_array(const bson_t *doc, const char *key, int64_t *out, int max)
{
	bson_iter_t it, a;
	int	    n = 0;

	if (!bson_iter_init_find(&it, doc, key) ||
	    !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &a))
		return 0;
	while (bson_iter_next(&a) && n < max)
		out[n++] = bson_iter_as_int64(&a);
	return n;
}

/*
 * How many re-read ages j uses after a load: fixed, every one; tuned,
 * what its cursor says (cdoc NULL: none yet), else the ages given and
 * one more, a sentinel that shows whether the tail goes further.
 */
static int
window_ages_start(const bson_t *cdoc)
{
	int64_t n = cdoc != NULL ? store_bson_int(cdoc, "agesInUse", 0) : 0;

	if (!fconf.tuned)
		return fconf.nages;
	if (n >= 1 && n <= fconf.nages)
		return (int)n;
	return fconf.nbase < fconf.nages ? fconf.nbase + 1 : fconf.nages;
}

/*
 * A backfill job's document (NULL: not started): its progress and the
 * counters of what it read so far.
 */
static void
window_load_backfill(struct fjob *j, const bson_t *cdoc)
{
	struct backfill	   *b = j->bf;
	struct fetch_stats *s = &j->stats;
	const char	   *st;

	memset(s, 0, sizeof(*s));
	b->next = b->req.from;
	b->slice_ms = FETCH_SLICE_START_MS;
	b->windows = 0;
	b->started_at = util_now_ms();
	b->finished_at = 0;
	b->done = false;
	if (cdoc == NULL) {
		log_info("source=%s app=%s backfill=%s starts: %" PRId64
			 "..%" PRId64,
		    j->src->id, j->app, b->req.id, b->req.from, b->req.to);
		return;
	}
	st = store_bson_str(cdoc, "state");
	b->done = st != NULL && strcmp(st, "done") == 0;
	b->next = store_bson_int(cdoc, "next", b->req.from);
	if (b->next < b->req.from)
		b->next = b->req.from;
	b->slice_ms = store_bson_int(cdoc, "sliceMs", FETCH_SLICE_START_MS);
	if (b->slice_ms < FETCH_SLICE_MIN_MS ||
	    b->slice_ms > FETCH_MAX_WINDOW_MS)
		b->slice_ms = FETCH_SLICE_START_MS;
	b->windows = store_bson_int(cdoc, "windows", 0);
	b->started_at = store_bson_int(cdoc, "startedAt", b->started_at);
	b->finished_at = store_bson_int(cdoc, "finishedAt", 0);
	s->events_fetched = store_bson_int(cdoc, "eventsFetched", 0);
	s->events_stored = store_bson_int(cdoc, "eventsStored", 0);
	s->duplicates = store_bson_int(cdoc, "duplicates", 0);
	s->pages = store_bson_int(cdoc, "pages", 0);
	if (!b->done)
		log_info("source=%s app=%s backfill=%s resumes at %" PRId64
			 " (%" PRId64 " windows read)",
		    j->src->id, j->app, b->req.id, b->next, b->windows);
}

/* The cursors document of a backfill job. */
static bson_t *
window_doc_backfill(struct fjob *j)
{
	struct backfill	   *b = j->bf;
	struct fetch_stats *s = &j->stats;
	bson_t		    doc;
	bson_t		   *out;

	bson_init(&doc);
	BSON_APPEND_UTF8(&doc, "sourceId", j->src->id);
	BSON_APPEND_UTF8(&doc, "app", j->app);
	BSON_APPEND_UTF8(&doc, "backfillId", b->req.id);
	BSON_APPEND_UTF8(&doc, "state", b->done ? "done" : "running");
	BSON_APPEND_INT64(&doc, "from", b->req.from);
	BSON_APPEND_INT64(&doc, "to", b->req.to);
	BSON_APPEND_INT64(&doc, "next", b->next);
	/*
	 * "cursor" while it runs: the seen partitions of the days it still
	 * reads stay (handoff_prune), so a window read again after a crash
	 * stores nothing twice.
	 */
	if (!b->done)
		BSON_APPEND_INT64(&doc, "cursor", b->next);
	BSON_APPEND_INT64(&doc, "sliceMs", b->slice_ms);
	BSON_APPEND_INT64(&doc, "windows", b->windows);
	BSON_APPEND_INT64(&doc, "pages", s->pages);
	BSON_APPEND_INT64(&doc, "eventsFetched", s->events_fetched);
	BSON_APPEND_INT64(&doc, "eventsStored", s->events_stored);
	BSON_APPEND_INT64(&doc, "duplicates", s->duplicates);
	BSON_APPEND_INT64(&doc, "startedAt", b->started_at);
	if (b->done)
		BSON_APPEND_INT64(&doc, "finishedAt", b->finished_at);
	BSON_APPEND_INT64(&doc, "epoch", j->src->lease.epoch);
	BSON_APPEND_INT64(&doc, "updatedAt", util_now_ms());
	out = bson_copy(&doc);
	bson_destroy(&doc);
	return out;
}

/* The cursor and stats documents of j (NULL: none yet): take them in. */
void
window_load(struct fjob *j, const bson_t *cdoc, const bson_t *sdoc)
{
	bson_t	    sub;
	bson_iter_t it, a;
	int64_t	    now = util_now_ms(), lb, fin;

	if (j->bf != NULL) {
		window_load_backfill(j, cdoc);
		j->loaded = true;
		return;
	}
	free(j->rr);
	j->rr = NULL;
	j->nrr = 0;
	j->nages = window_ages_start(cdoc);
	/* An older cursor without it: the baseline is read (again). */
	j->drift_baseline = cdoc != NULL &&
	    store_bson_bool(cdoc, "schemaBaselineDone", false);
	if (cdoc != NULL) {
		j->cursor = store_bson_int(cdoc, "cursor", 0);
		/* A cursor of an older version: covered from here on. */
		j->covered_ms = store_bson_int(cdoc, "coveredFrom", j->cursor);
		fin = store_bson_int(cdoc, "finalThrough", 0);
		if (fin > j->final_ms)
			j->final_ms = fin;
		if (bson_iter_init_find(&it, cdoc, "rereads") &&
		    BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &a)) {
			while (bson_iter_next(&a)) {
				const uint8_t *data;
				uint32_t       len;
				struct reread *nr;

				if (!BSON_ITER_HOLDS_DOCUMENT(&a))
					continue;
				bson_iter_document(&a, &len, &data);
				if (!bson_init_static(&sub, data, len))
					continue;
				nr = realloc(j->rr, (j->nrr + 1) * sizeof(*nr));
				if (nr == NULL)
					fatal("out of memory");
				j->rr = nr;
				nr[j->nrr].start = store_bson_int(&sub, "start",
				    0);
				nr[j->nrr].end = store_bson_int(&sub, "end", 0);
				nr[j->nrr].closed_at = store_bson_int(&sub,
				    "closedAt", 0);
				nr[j->nrr].next = (int)store_bson_int(&sub,
				    "next", 0);
				if (nr[j->nrr].next < j->nages &&
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
		j->covered_ms = j->cursor;
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
		window_int_array(sdoc, "lag.buckets", s->lag_buckets,
		    FETCH_LAG_BUCKETS);
		s->late_overlap = store_bson_int(sdoc, "lateOverlap", 0);
		s->schema_drift = store_bson_int(sdoc, "schemaDrift", 0);
		window_int_array(sdoc, "lateRereads", s->late_rereads,
		    FETCH_MAX_AGES);
		window_int_array(sdoc, "rereadsDone", s->rereads_done,
		    FETCH_MAX_AGES);
	}
	j->loaded = true;
}

/* Append an int64 array. */
static void
window_append_array(bson_t *doc, const char *key, const int64_t *v, int n)
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
 * The cursor and stats documents of j, to be written on the worker after
 * checking that no newer lease epoch exists (the caller frees them).
 */
void
window_docs(struct fjob *j, bson_t **cursor, bson_t **stats)
{
	struct fetch_stats *s = &j->stats;
	bson_t		    doc, a, e, lag;
	int64_t		    now = util_now_ms(), ages[FETCH_MAX_AGES];
	char		    k[16];
	const char	   *kp;
	size_t		    i;
	int		    n;

	if (j->bf != NULL) {
		*cursor = window_doc_backfill(j);
		*stats = NULL;
		return;
	}
	bson_init(&doc);
	BSON_APPEND_UTF8(&doc, "sourceId", j->src->id);
	BSON_APPEND_UTF8(&doc, "app", j->app);
	BSON_APPEND_INT64(&doc, "cursor", j->cursor);
	BSON_APPEND_INT64(&doc, "coveredFrom", j->covered_ms);
	BSON_APPEND_INT64(&doc, "finalThrough", j->final_ms);
	BSON_APPEND_INT32(&doc, "agesInUse", j->nages);
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
	BSON_APPEND_BOOL(&doc, "schemaBaselineDone", j->drift_baseline);
	BSON_APPEND_INT64(&doc, "epoch", j->src->lease.epoch);
	BSON_APPEND_INT64(&doc, "updatedAt", now);
	*cursor = bson_copy(&doc);
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
	window_append_array(&lag, "bucketBoundsMs", lag_bounds,
	    FETCH_LAG_BUCKETS - 1);
	window_append_array(&lag, "buckets", s->lag_buckets, FETCH_LAG_BUCKETS);
	bson_append_document_end(&doc, &lag);
	BSON_APPEND_INT64(&doc, "lateOverlap", s->late_overlap);
	BSON_APPEND_INT64(&doc, "schemaDrift", s->schema_drift);
	n = fconf.nages;
	for (i = 0; i < (size_t)n; i++)
		ages[i] = fconf.ages_s[i];
	window_append_array(&doc, "rereadAgesS", ages, n);
	BSON_APPEND_INT32(&doc, "rereadAgesInUse", j->nages);
	BSON_APPEND_BOOL(&doc, "rereadTuned", fconf.tuned);
	window_append_array(&doc, "lateRereads", s->late_rereads, n);
	window_append_array(&doc, "rereadsDone", s->rereads_done, n);
	BSON_APPEND_INT64(&doc, "rereadsPending", (int64_t)j->nrr);
	BSON_APPEND_INT64(&doc, "cursor", j->cursor);
	BSON_APPEND_INT64(&doc, "epoch", j->src->lease.epoch);
	BSON_APPEND_INT64(&doc, "updatedAt", now);
	*stats = bson_copy(&doc);
	bson_destroy(&doc);
}

/*
 * Move j's final_ms: the oldest time any read of j may still reach is
 * the start of the oldest re-read window left, or the cursor less the
 * poll overlap (every poll reads it again). Before that, what is stored
 * is all auditrelay will ever read. True when it moved.
 */
bool
window_final(struct fjob *j)
{
	int64_t f = j->cursor - fconf.overlap_ms;
	size_t	i;

	if (j->bf != NULL || j->cursor <= 0 || j->covered_ms <= 0)
		return false;
	for (i = 0; i < j->nrr; i++)
		if (j->rr[i].start < f)
			f = j->rr[i].start;
	if (f <= j->covered_ms || f <= j->final_ms)
		return false;
	j->final_ms = f;
	return true;
}

/* Merge neighbouring re-read windows that share their age step. */
static void
window_rr_merge(struct fjob *j)
{
	int64_t gran = fconf.nages > 0 ? fconf.ages_s[0] * 250 : 1000;
	size_t	i;

	if (gran < 1000)
		gran = 1000;
	for (i = 0; i + 1 < j->nrr;) {
		struct reread *a = &j->rr[i], *b = &j->rr[i + 1];
		int64_t	       d = a->closed_at - b->closed_at;

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
			    a->closed_at :
			    b->closed_at;
			memmove(b, b + 1, (j->nrr - i - 2) * sizeof(*b));
			j->nrr--;
		} else
			i++;
	}
}

/* Remember a closed window for its re-reads. */
static void
window_rr_add(struct fjob *j, int64_t start, int64_t end, int64_t now)
{
	struct reread *nr;

	if (j->nages == 0 || end <= start)
		return;
	if ((nr = realloc(j->rr, (j->nrr + 1) * sizeof(*nr))) == NULL)
		fatal("out of memory");
	j->rr = nr;
	nr[j->nrr].start = start;
	nr[j->nrr].end = end;
	nr[j->nrr].closed_at = now;
	nr[j->nrr].next = 0;
	j->nrr++;
	window_rr_merge(j);
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
window_overlap(struct fjob *j)
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

/*
 * Pick the next window of this run: the main poll from the cursor minus
 * the overlap (window_overlap; in FETCH_MAX_WINDOW_MS chunks), then the
 * closed windows due for a re-read at their age; false when the run is
 * over.
 */
bool
window_next(struct fjob *j)
{
	int64_t now = util_now_ms();
	int64_t floor_ms = now - FETCH_RETENTION_MS + FETCH_RETENTION_MARGIN_MS;
	int64_t start, end;
	size_t	i;

	if (j->bf != NULL) {
		struct backfill *b = j->bf;

		if (b->next < floor_ms)
			b->next = floor_ms; /* Google has nothing older */
		if (b->done || b->next >= b->req.to)
			return false;
		j->kind = WIN_BACKFILL;
		j->w_start = b->next;
		j->w_end = b->next + b->slice_ms;
		if (j->w_end > b->req.to)
			j->w_end = b->req.to;
		j->w_prev_cursor = b->next;
		return true;
	}
	if (j->cursor < floor_ms) {
		log_warn("source=%s app=%s cursor is beyond Google's "
			 "retention; events older than %d days are gone, "
			 "resuming at the retention limit",
		    j->src->id, j->app, GOOGLE_RETENTION_DAYS);
		j->cursor = floor_ms;
	}
	while (!j->main_done) {
		start = j->cursor;
		if (j->chunks == 0)
			start -= window_overlap(j);
		if (start < floor_ms)
			start = floor_ms;
		end = j->cursor + FETCH_MAX_WINDOW_MS;
		j->w_live = false;
		if (end >= now) {
			end = now;
			j->main_done = true;
			j->w_live = true;
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

		if (r->next >= j->nages || r->end <= floor_ms) {
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

const char *
window_kind_name(enum win_kind k)
{
	switch (k) {
	case WIN_MAIN:
		return "poll";
	case WIN_REREAD:
		return "re-read";
	case WIN_BACKFILL:
		return "backfill";
	}
	return "window";
}

/* Account the newly stored logs of a page (dup[i]: already stored). */
void
window_count(struct fjob *j, struct norm_log *logs, size_t n, const bool *dup,
    int64_t seen)
{
	struct fetch_stats *s = &j->stats;
	size_t		    i;
	int		    b;

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
		if (logs[i].time_ms <= 0 || j->bf != NULL)
			continue; /* a backfill's "lag" is its age */
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

/* Upper bound (ms) of the lag that 99.9 % of j's events stayed under. */
int64_t
window_lag_p999(const struct fetch_stats *s)
{
	int64_t acc = 0, want = s->lag_count - s->lag_count / 1000;
	int	b;

	for (b = 0; b < FETCH_LAG_BUCKETS - 1; b++) {
		acc += s->lag_buckets[b];
		if (acc >= want)
			return lag_bounds[b];
	}
	return s->lag_max_ms;
}

/*
 * Tune j's re-read ages after a re-read (fetch_reread_ages auto): the
 * last age in use is a sentinel that should find nothing. When it finds
 * new events the tail goes further: one more age (a doubling). When the
 * ages past the last one that ever found a late event (and one sentinel
 * past it) have each been read FETCH_TUNE_EVIDENCE times for nothing,
 * and twice the lag 99.9 % of events stayed under is within what is
 * left, they go: fewer Google calls, a watermark closer to real time.
 */
static void
window_tune(struct fjob *j)
{
	struct fetch_stats *s = &j->stats;
	int		    k, last = -1, want;

	if (!fconf.tuned)
		return;
	if (j->rr_age == j->nages - 1 && j->win_new > 0) {
		if (j->nages < fconf.nages) {
			j->nages++;
			log_notice(
			    "source=%s app=%s the last re-read (at %llds) "
			    "found %lld new events: re-reading at %llds "
			    "too",
			    j->src->id, j->app,
			    (long long)fconf.ages_s[j->nages - 2],
			    (long long)j->win_new,
			    (long long)fconf.ages_s[j->nages - 1]);
		} else
			log_warn("source=%s app=%s the last re-read (at %llds) "
				 "still finds new events (%lld); no longer age "
				 "is allowed (fetch_reread_ages)",
			    j->src->id, j->app,
			    (long long)fconf.ages_s[j->nages - 1],
			    (long long)j->win_new);
		return;
	}
	for (k = 0; k < j->nages; k++)
		if (s->late_rereads[k] > 0)
			last = k;
	want = last + 2;
	if (want < 1)
		want = 1;
	if (s->lag_count < FETCH_TUNE_EVIDENCE * 10)
		return;
	while (want < j->nages &&
	    fconf.ages_s[want - 1] * 1000 < 2 * window_lag_p999(s))
		want++;
	if (want >= j->nages)
		return;
	for (k = want; k < j->nages; k++)
		if (s->rereads_done[k] < FETCH_TUNE_EVIDENCE)
			return;
	log_notice("source=%s app=%s re-reads past %llds found nothing in %lld "
		   "windows (99.9 %% of %lld events seen within %llds): "
		   "dropping %d longer ages",
	    j->src->id, j->app, (long long)fconf.ages_s[want - 1],
	    (long long)s->rereads_done[j->nages - 1], (long long)s->lag_count,
	    (long long)window_lag_p999(s) / 1000, j->nages - want);
	j->nages = want;
}

/*
 * A backfill window was read: move on, and size the next one by what
 * this one held (adaptive slices: FETCH_SLICE_PAGES pages at most).
 */
static void
window_close_backfill(struct fjob *j, int64_t now)
{
	struct backfill *b = j->bf;
	int64_t		 len = j->w_end - j->w_start;

	b->windows++;
	b->next = j->w_end;
	if (j->w_pages > FETCH_SLICE_PAGES && len / 2 >= FETCH_SLICE_MIN_MS)
		b->slice_ms = len / 2;
	else if (j->w_pages <= 1 && len >= b->slice_ms)
		b->slice_ms = len * 2 > FETCH_MAX_WINDOW_MS ?
		    FETCH_MAX_WINDOW_MS :
		    len * 2;
	if (b->next < b->req.to)
		return;
	b->done = true;
	b->finished_at = now;
	log_notice("source=%s app=%s backfill=%s done: %" PRId64
		   " windows, %" PRId64 " events read, %" PRId64
		   " new, %" PRId64 " already stored, in %llds",
	    j->src->id, j->app, b->req.id, b->windows, j->stats.events_fetched,
	    j->stats.events_stored, j->stats.duplicates,
	    (long long)(now - b->started_at) / 1000);
}

/*
 * The window of j was read completely: move the cursor or the re-read
 * step. True when the change is worth a write even if nothing new came.
 */
bool
window_close(struct fjob *j)
{
	int64_t now = util_now_ms();
	bool	force = false;

	j->stats.windows++;
	if (j->kind == WIN_BACKFILL) {
		window_close_backfill(j, now);
		return true;
	}
	if (j->kind == WIN_MAIN) {
		int64_t from = j->w_prev_cursor;

		/*
		 * Only the part recent enough for Google to still publish
		 * into it is worth reading again (a back-fill of old days
		 * is not).
		 */
		if (j->nages > 0 &&
		    from < now - 2 * fconf.ages_s[j->nages - 1] * 1000)
			from = now - 2 * fconf.ages_s[j->nages - 1] * 1000;
		j->cursor = j->w_end;
		window_rr_add(j, from, j->w_end, now);
		/*
		 * Read up to the live edge once: the names seen so far are
		 * the baseline, those new from now on are schema drift.
		 */
		if (j->w_live && !j->drift_baseline) {
			j->drift_baseline = true;
			force = true;
			log_info("source=%s app=%s read up to the live edge: "
				 "event and parameter names new from now on "
				 "raise schema_drift alerts",
			    j->src->id, j->app);
		}
		if (j->recent != NULL)
			recent_expire(j->recent,
			    j->cursor - fconf.overlap_ms - FETCH_EDGE_MS);
	} else if (j->rr_idx < j->nrr) {
		struct reread *r = &j->rr[j->rr_idx];

		j->stats.rereads_done[j->rr_age]++;
		r->next++;
		force = true; /* a re-read step is worth keeping */
		window_tune(j);
		/* read again later relative to when it was last read */
		if (r->next >= j->nages) {
			memmove(r, r + 1,
			    (j->nrr - j->rr_idx - 1) * sizeof(*r));
			j->nrr--;
		} else
			window_rr_merge(j);
	}
	return force;
}
