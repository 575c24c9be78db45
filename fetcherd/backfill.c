/*
 * Backfill jobs. apid stores a request (`backfills`: source, application,
 * from, to; POST /sources/:id/backfill); every rescan hands each source
 * its requests, oldest first (backfill_apply), and one job per source
 * (fsrc.bfjob) reads them one after the other. Its windows go through the
 * same driver as the live jobs': the same Google client and rate-limit
 * budget, the same seen ids (only what is new is stored, under the same
 * stable ids), the same backpressure at half the live limit; the pump
 * gives it a slot only while half of them are free (sched.c). Its
 * progress is the cursors document "<source>:<app>:bf:<request id>"
 * (window.c), written under the partition's lease like a cursor: a crash
 * or a take-over reads again at most the windows since its last write.
 * A request deleted (DELETE /sources/:id/backfill) stops the job at the
 * next rescan; the hourly prune deletes the progress of requests gone.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetcherd/fetcherd.h"
#include "fetcherd/sched.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/store.h"

void
backfill_key(const struct fjob *j, char *out, size_t outlen)
{
	store_backfill_key(out, outlen, j->src->id, j->app, j->bf->req.id);
}

static bool
bf_requested(const struct fsrc *s, const char *id)
{
	size_t i;

	for (i = 0; i < s->nbfreq; i++)
		if (strcmp(s->bfreq[i].id, id) == 0)
			return true;
	return false;
}

static bool
bf_is_done(const struct fsrc *s, const char *id)
{
	size_t i;

	for (i = 0; i < s->nbf_done; i++)
		if (strcmp(s->bf_done[i], id) == 0)
			return true;
	return false;
}

/* The oldest request of s not known to be finished, or NULL. */
static const struct backfill_req *
bf_next_req(const struct fsrc *s)
{
	size_t i;

	for (i = 0; i < s->nbfreq; i++)
		if (!bf_is_done(s, s->bfreq[i].id))
			return &s->bfreq[i];
	return NULL;
}

/* Start the job of s on its next request soon, if it has one. */
static void
bf_kick(struct fsrc *s)
{
	struct fjob *j = s->bfjob;

	if (bf_next_req(s) == NULL)
		return;
	if (j == NULL) {
		j = job_new(s, s->bfreq[0].app);
		j->bf = util_xcalloc(1, sizeof(*j->bf));
		s->bfjob = j;
	}
	if (s->leased && j->state == JOB_IDLE)
		sched_arm(j->timer,
		    (int64_t)util_random_below(SCHED_KICK_SPREAD_MS));
}

void
backfill_apply(struct fsrc *s, const struct backfill_req *reqs, size_t n)
{
	struct fjob *j = s->bfjob;
	size_t	     i, k;

	free(s->bfreq);
	s->bfreq = NULL;
	s->nbfreq = 0;
	if (n > 0) {
		s->bfreq = util_xcalloc(n, sizeof(*reqs));
		memcpy(s->bfreq, reqs, n * sizeof(*reqs));
		s->nbfreq = n;
	}
	/* Forget what was finished and is no longer asked for. */
	for (i = k = 0; i < s->nbf_done; i++) {
		if (bf_requested(s, s->bf_done[i]))
			s->bf_done[k++] = s->bf_done[i];
		else
			free(s->bf_done[i]);
	}
	s->nbf_done = k;
	if (j != NULL && j->bf->req.id[0] != '\0' && !j->bf->done &&
	    !bf_requested(s, j->bf->req.id)) {
		log_notice("source=%s app=%s backfill=%s cancelled after "
			   "%" PRId64 " windows (%" PRId64 " new events "
			   "stored)",
		    s->id, j->app, j->bf->req.id, j->bf->windows,
		    j->stats.events_stored);
		job_free(j);
		s->bfjob = NULL;
	}
	bf_kick(s);
}

bool
backfill_ready(struct fjob *j)
{
	struct fsrc		  *s = j->src;
	struct backfill		  *b = j->bf;
	const struct backfill_req *r;

	if (b->req.id[0] != '\0' && !b->done && bf_requested(s, b->req.id))
		return true;
	if ((r = bf_next_req(s)) == NULL)
		return false;
	/* The next request: a fresh job state, loaded from its document. */
	driver_free(j);
	memset(b, 0, sizeof(*b));
	b->req = *r;
	util_strlcpy(j->app, r->app, sizeof(j->app));
	memset(&j->stats, 0, sizeof(j->stats));
	j->loaded = false;
	j->unsaved = false;
	j->saved_at = 0;
	j->attempt = 0;
	j->failing = false;
	return true;
}

void
backfill_finished(struct fjob *j)
{
	struct fsrc	*s = j->src;
	struct backfill *b = j->bf;
	char	       **nd;

	if (b->req.id[0] != '\0' && !bf_is_done(s, b->req.id)) {
		if (!b->done) {
			/* Past Google's retention: nothing left to read. */
			b->done = true;
			b->finished_at = util_now_ms();
			j->unsaved = true;
			log_notice("source=%s app=%s backfill=%s done: the "
				   "rest is older than Google keeps",
			    s->id, j->app, b->req.id);
		}
		if (j->unsaved)
			src_flush_cursors(s);
		if ((nd = reallocarray(s->bf_done, s->nbf_done + 1,
			 sizeof(*nd))) == NULL)
			fatal("out of memory");
		s->bf_done = nd;
		nd[s->nbf_done++] = util_xstrdup(b->req.id);
	}
	bf_kick(s);
}

void
backfill_free(struct fsrc *s)
{
	size_t i;

	free(s->bfreq);
	s->bfreq = NULL;
	s->nbfreq = 0;
	for (i = 0; i < s->nbf_done; i++)
		free(s->bf_done[i]);
	free(s->bf_done);
	s->bf_done = NULL;
	s->nbf_done = 0;
}
