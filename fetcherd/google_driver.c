/*
 * The fetch driver of one (source, application), the Google conversation
 * of a run: load the job's cursor, page through the window window.c picks,
 * hand every page to the store worker, and only when the last page of the
 * window is stored move the cursor (or the re-read schedule) and write it,
 * under the source's lease. Backpressure holds new windows. Every step's
 * outcome goes to sched_report() (report.c), which decides what follows.
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
#include "fetcherd/sched.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/google/normalize.h"
#include "lib/ipc/ipc.h"
#include "lib/store/store.h"
#include "runtime/child.h"

static void driver_page_stored(struct fjob *j, size_t n, char *next);
static bool driver_hold(struct fjob *j);
static void driver_count_done(struct handoff *h);
static void census_forget(struct fjob *j);
static void driver_report(struct fjob *j, enum fetch_result r,
    const struct google_error *e, const char *what);

/* Bumped on every failed page store: every source recovers once more. */
static uint64_t driver_fail_gen = 1;

/* A window that stored nothing new saves its cursor at most this often. */
#define DRIVER_IDLE_SAVE_MS (5LL * 60 * 1000)
/* One that did, or moved a re-read, at most this often. */
#define DRIVER_SAVE_EVERY_MS 5000

/* Tell the scheduler how the run goes (enum fetch_result). */
static void
driver_report(struct fjob *j, enum fetch_result r, const struct google_error *e,
    const char *what)
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
	census_forget(j);
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
	drift_free(j);
	if (j->fs_cursor != NULL)
		bson_destroy(j->fs_cursor);
	if (j->fs_stats != NULL)
		bson_destroy(j->fs_stats);
	j->fs_cursor = j->fs_stats = NULL;
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
	window_load(j, h->cursor_doc, h->stats_doc);
	driver_step(j);
out:
	handoff_free(h);
}

/*
 * j's cursor and stats: those of its partition's state, read when the
 * partition was taken; a backfill's, read on the worker. driver_step
 * follows.
 */
static void
driver_load_start(struct fjob *j)
{
	struct handoff *h;

	if (j->bf == NULL) {
		const bson_t *c, *st;
		bson_t	      cbuf, sbuf;

		src_job_docs(j, &cbuf, &sbuf, &c, &st);
		window_load(j, c, st);
		driver_step(j);
		return;
	}

	h = handoff_new(HANDOFF_LOAD, j->src->id, j->app);
	if (j->bf != NULL)
		backfill_key(j, h->key, sizeof(h->key));
	h->done = driver_load_done;
	h->arg = j;
	if (handoff_submit(h) != 0) {
		handoff_free(h);
		driver_report(j, FETCH_STORE_ERROR, NULL, NULL);
		return;
	}
	j->ho = h;
	job_slot_put(j);
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
			 "now",
		    j->src->id, j->app, h->err);
		j->loaded = false;
		driver_report(j, FETCH_LEASE_LOST, NULL, NULL);
		goto out;
	}
	if (h->rc != 0) {
		char what[600];

		if (h->rc != -ESTALE)
			child_store_result(false, h->err);
		j->unsaved = true;
		snprintf(what, sizeof(what),
		    "cursor not saved (%s); the "
		    "window will be read again",
		    h->err);
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
 * A write of j's cursor and stats, checked on the worker against newer
 * lease epochs (done and arg for the caller to set).
 */
struct handoff *
driver_save_handoff(struct fjob *j)
{
	struct handoff *h;

	h = handoff_new(HANDOFF_SAVE, j->src->id, j->app);
	if (j->bf != NULL)
		backfill_key(j, h->key, sizeof(h->key));
	window_docs(j, &h->cursor_doc, &h->stats_doc);
	j->drift_unsaved = false;
	h->lease = util_xcalloc(1, sizeof(*h->lease));
	*h->lease = j->src->lease;
	h->epoch = j->src->lease.epoch;
	h->deadline_mono = j->src->lease.deadline_mono;
	j->unsaved = false;
	return h;
}

/*
 * Save j's cursor and stats, then go on. Those of a live job go into its
 * partition's fetch state (pstate.c), written within DRIVER_SAVE_EVERY_MS
 * when something changed, DRIVER_IDLE_SAVE_MS when nothing did; a
 * backfill's are written on the worker at most that often. An older
 * cursor costs only a re-read after a crash (the seen ids absorb what it
 * finds again; the re-read windows of what it reads again are added
 * again). A graceful stop writes what is left (src_flush_cursors).
 */
static void
driver_save_start(struct fjob *j, bool force)
{
	struct handoff *h;
	int64_t		since = util_mono_ms() - j->saved_at;

	if (force || j->win_new > 0 || j->drift_unsaved)
		j->unsaved = true;
	if (j->bf == NULL) {
		/* Into the partition's state: written within 5 s or 5 min. */
		src_save_job(j,
		    j->unsaved ? DRIVER_SAVE_EVERY_MS : DRIVER_IDLE_SAVE_MS);
		driver_step(j);
		return;
	}
	/* A finished backfill says so at once (GET .../backfill). */
	if (j->saved_at > 0 && (j->bf == NULL || !j->bf->done) &&
	    since < (j->unsaved ? DRIVER_SAVE_EVERY_MS : DRIVER_IDLE_SAVE_MS)) {
		driver_step(j);
		return;
	}
	h = driver_save_handoff(j);
	h->done = driver_save_done;
	h->arg = j;
	if (handoff_submit(h) != 0) {
		handoff_free(h);
		j->loaded = false;
		driver_report(j, FETCH_STORE_ERROR, NULL,
		    "cannot queue the "
		    "cursor write");
		return;
	}
	j->ho = h;
	job_slot_put(j);
}

/* A window was read completely: move the cursor or the re-read step. */
static void
driver_window_done(struct fjob *j)
{
	bool force;

	force = window_close(j);
	if (window_final(j))
		j->src->state_dirty = true; /* fetchedThrough, in 30 s */
	driver_abort(j);
	driver_save_start(j, force);
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
	driver_report(j, e->rate_limited ? FETCH_RATE_LIMITED : FETCH_RETRY, e,
	    NULL);
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
	char	    *next;
	size_t	     n, k;

	if (h->rc != 0)
		driver_fail_gen++; /* open intents to clean */
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
		snprintf(what, sizeof(what),
		    "logs not stored (%s); cursor "
		    "kept",
		    h->err);
		driver_abort(j);
		driver_report(j, FETCH_STORE_ERROR, NULL, what);
		goto out;
	}
	child_store_result(true, NULL);
	log_debug("source=%s app=%s page stored: logs=%zu new=%zu batches=%u "
		  "intent=%lldms seen=%lldms seal=%lldms",
	    h->sid, h->app, h->n, h->nnew, h->nbatches, (long long)h->ms_intent,
	    (long long)h->ms_seen, (long long)h->ms_seal);
	if (h->recover) {
		j->recovered_epoch = h->epoch;
		j->recovered_gen = h->gen;
		if (h->nrecovered > 0)
			log_notice(
			    "source=%s app=%s cleaned %u intents of an "
			    "interrupted page store; their logs are read "
			    "again",
			    j->src->id, j->app, h->nrecovered);
	}
	{
		int64_t before = j->run_new;

		window_count(j, h->logs, h->n, h->dup, j->ho_seen_at);
		j->win_new += j->run_new - before;
	}
	/*
	 * The names of the new logs: any never seen raises schema_drift
	 * (a backfill reads the past: its names are no news).
	 */
	if (j->bf == NULL)
		drift_page(j, h->logs, h->n, h->dup);
	if (j->recent == NULL)
		j->recent = recent_new();
	for (k = 0; k < h->n; k++)
		recent_add(j->recent, h->logs[k].id, h->logs[k].time_ms);
	j->src->pending_est += h->nbatches;
	for (unsigned i = 0; i < h->nbatches && child_chan() != NULL; i++) {
		struct handoff_batch *hb = &h->batches[i];

		(void)ipc_send_batch_stored(child_chan(), h->sid, hb->id,
		    hb->webhook_id, hb->nlogs, hb->created_at, hb->body,
		    hb->len, h->body_coll);
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
driver_store_page(struct fjob *j, struct norm_log *logs, size_t n, char *next,
    int64_t seen)
{
	struct fsrc    *s = j->src;
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
	h->backfill = j->bf != NULL;
	h->done = driver_page_done;
	h->arg = j;
	if (handoff_submit(h) != 0) {
		handoff_free(h);
		free(next);
		driver_abort(j);
		driver_report(j, FETCH_STORE_ERROR, NULL,
		    "cannot queue the "
		    "page store; cursor kept");
		return;
	}
	j->ho = h;
	j->ho_next = next;
	j->ho_seen_at = seen;
	job_slot_put(j);
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
	bool   dup = true;

	if (j->recent == NULL || recent_count(j->recent) == 0)
		return n;
	for (i = 0; i < n; i++) {
		if (!recent_has(j->recent, logs[i].id)) {
			logs[k++] = logs[i];
			continue;
		}
		window_count(j, &logs[i], 1, &dup, seen);
		norm_log_clear(&logs[i]);
	}
	return k;
}

/* A page arrived (or failed). */
static void
driver_page_cb(const char *body, size_t len, const struct google_error *e,
    void *arg)
{
	struct fjob	*j = arg;
	struct norm_log *logs = NULL;
	size_t		 n = 0;
	char		*next = NULL, err[512];

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
	j->w_pages++;
	drift_tick(j->src);
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
			driver_window_error(j,
			    "Google keeps sending empty "
			    "pages with a next page token");
			return;
		}
		if (n > 0)
			j->empty_pages = 0;
		if (driver_token_seen(j, next)) {
			free(next);
			driver_window_error(j,
			    "Google repeated a page token "
			    "(the window would never end)");
			return;
		}
		if (j->nseen >= FETCH_MAX_PAGES) {
			free(next);
			driver_window_error(j, "too many pages in one window");
			return;
		}
		{
			char **ns = realloc(j->seen_tokens,
			    (j->nseen + 1) * sizeof(char *));

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
void
driver_request(struct fjob *j)
{
	int rc;

	if (!job_slot_take(j))
		return; /* the scheduler calls again with a slot */
	rc = google_list_page(j->src->gc, j->app, j->w_start, j->w_end,
	    GOOGLE_MAX_RESULTS, j->page_token, driver_page_cb, j, &j->op);
	if (rc != 0) {
		struct google_error e;

		memset(&e, 0, sizeof(e));
		e.cls = GOOGLE_RETRY;
		e.retry_after_s = -1;
		snprintf(e.diagnosis, sizeof(e.diagnosis),
		    "cannot start a "
		    "request: %s",
		    strerror(-rc));
		driver_retry(j, &e);
	}
}

/* Say once when a source is held back, and once when it goes on. */
static void
driver_pressure_note(struct fsrc *s)
{
	if (!s->held_back && s->pending_est >= FETCH_MAX_PENDING_BATCHES) {
		log_notice(
		    "source=%s %lld batches wait for delivery; reading "
		    "no new window until the callback catches up (Google "
		    "keeps the events)",
		    s->id, (long long)s->pending_est);
		s->held_back = true;
	} else if (s->held_back &&
	    s->pending_est < FETCH_MAX_PENDING_BATCHES / 2) {
		log_notice("source=%s delivery caught up (%lld batches "
			   "pending); reading new windows again",
		    s->id, (long long)s->pending_est);
		s->held_back = false;
	}
}

/* How long after the last count of s's batches the next may start. */
static int64_t
driver_recount_ms(const struct fsrc *s)
{
	return s->pending_recount_ms > 0 ? s->pending_recount_ms :
					   FETCH_PENDING_RECOUNT_MIN_MS;
}

/*
 * The census of undelivered batches: one count of every source's pending
 * batches in one scan ($group by source), shared by every job that waits
 * for a count while it runs. A count per source was one scan of `batches`
 * each: 50 sources polled every second all reached their threshold about
 * once a minute, and their 50 counts in a row held every poll up for
 * seconds.
 */
static struct {
	struct handoff *h;    /* in flight, or NULL */
	struct fjob   **wait; /* jobs waiting for it (NULL: gone) */
	size_t		n, cap;
	struct fjob   **running; /* the waiters being resumed */
	size_t		nrunning;
} census;

/* j is gone (or goes on without the count): forget it as a waiter. */
static void
census_forget(struct fjob *j)
{
	size_t i;

	for (i = 0; i < census.n; i++)
		if (census.wait[i] == j)
			census.wait[i] = NULL;
	for (i = 0; i < census.nrunning; i++)
		if (census.running[i] == j)
			census.running[i] = NULL;
}

/* Start a count of s's undelivered batches for j; false if not now. */
static bool
driver_recount(struct fjob *j)
{
	struct fsrc    *s = j->src;
	struct handoff *h;
	struct fjob   **nw;

	if (util_mono_ms() - s->pending_counted_at < driver_recount_ms(s))
		return false;
	if (census.n == census.cap) {
		nw = reallocarray(census.wait, census.cap ? census.cap * 2 : 16,
		    sizeof(*nw));
		if (nw == NULL)
			return false;
		census.wait = nw;
		census.cap = census.cap ? census.cap * 2 : 16;
	}
	if (census.h == NULL) {
		h = handoff_new(HANDOFF_COUNT, "", NULL);
		h->done = driver_count_done;
		if (handoff_submit(h) != 0) {
			handoff_free(h);
			return false;
		}
		census.h = h;
	}
	s->pending_counted_at = util_mono_ms();
	census.wait[census.n++] = j;
	job_slot_put(j);
	return true;
}

/* The new count of s (it waited for it: the next delay follows it). */
static void
driver_count_set(struct fsrc *s, int64_t n, bool waited)
{
	if (waited) {
		/* Falling: count again soon; else back off. */
		if (n < s->pending_est)
			s->pending_recount_ms = FETCH_PENDING_RECOUNT_MIN_MS;
		else
			s->pending_recount_ms = driver_recount_ms(s) * 2;
		if (s->pending_recount_ms > FETCH_PENDING_RECOUNT_MS)
			s->pending_recount_ms = FETCH_PENDING_RECOUNT_MS;
	}
	s->pending_est = n;
}

static int
count_cmp(const void *a, const void *b)
{
	return strcmp(((const struct handoff_count *)a)->sid,
	    ((const struct handoff_count *)b)->sid);
}

static void
driver_count_done(struct handoff *h)
{
	struct fsrc *s;
	struct fjob *j;
	size_t	     i;

	census.h = NULL;
	census.running = census.wait;
	census.nrunning = census.n;
	census.wait = NULL;
	census.n = census.cap = 0;
	if (child_store_result(h->rc == 0, h->err)) {
		/* Every source learns its count; absent ones have none. */
		for (i = 0; i < census.nrunning; i++)
			if (census.running[i] != NULL)
				census.running[i]->src->count_waited = true;
		if (h->ncounts > 1)
			qsort(h->counts, h->ncounts, sizeof(*h->counts),
			    count_cmp);
		TAILQ_FOREACH (s, &srcs, entry) {
			struct handoff_count key, *c = NULL;

			snprintf(key.sid, sizeof(key.sid), "%s", s->id);
			if (h->ncounts > 0)
				c = bsearch(&key, h->counts, h->ncounts,
				    sizeof(*h->counts), count_cmp);
			driver_count_set(s, c != NULL ? c->n : 0,
			    s->count_waited);
			s->count_waited = false;
		}
	}
	handoff_free(h);
	for (i = 0; i < census.nrunning; i++) {
		if ((j = census.running[i]) == NULL)
			continue;
		census.running[i] = NULL;
		driver_pressure_note(j->src);
		if (!j->in_win)
			driver_step(j);
		else if (!driver_hold(j))
			driver_request(j);
	}
	free(census.running);
	census.running = NULL;
	census.nrunning = 0;
}

/*
 * A backfill job waits (its window and page token kept) while its source
 * has FETCH_BACKFILL_PENDING undelivered batches: the live jobs keep the
 * other half of FETCH_MAX_PENDING_BATCHES. True when it does not go on.
 */
static bool
driver_hold_backfill(struct fjob *j)
{
	struct fsrc	   *s = j->src;
	struct fetch_report rep;

	if (s->pending_est < FETCH_BACKFILL_PENDING)
		return false;
	if (driver_recount(j))
		return true;
	if (s->pending_est < FETCH_BACKFILL_PENDING)
		return false;
	memset(&rep, 0, sizeof(rep));
	rep.delay_ms = driver_recount_ms(s);
	sched_report(j, FETCH_WAIT, &rep);
	return true;
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

	if (j->bf != NULL)
		return !j->in_win && driver_hold_backfill(j);
	if (j->in_win || j->main_done || j->chunks > 0 ||
	    s->pending_est < FETCH_MAX_PENDING_BATCHES)
		return false;
	if (driver_recount(j))
		return true;
	driver_pressure_note(s);
	if (s->pending_est >= FETCH_MAX_PENDING_BATCHES)
		j->main_done = true; /* this run: re-reads only */
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

	if (j->bf != NULL)
		return driver_hold_backfill(j);
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
		rep.delay_ms = driver_recount_ms(s); /* count again */
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
		if (!window_next(j)) {
			driver_report(j, FETCH_DONE, NULL, NULL);
			return;
		}
		j->in_win = true;
		j->win_new = 0;
		j->w_pages = 0;
		log_debug("source=%s app=%s %s window=%" PRId64 "..%" PRId64,
		    j->src->id, j->app, window_kind_name(j->kind), j->w_start,
		    j->w_end);
	} else if (driver_hold(j))
		return;
	driver_request(j);
}
