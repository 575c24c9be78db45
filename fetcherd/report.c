/*
 * What becomes of a run: sched_report() takes the driver's result (enum
 * fetch_result) and decides the job's next run time and backoff, the
 * rate-limit budget of the client e-mail, the credentials state of the
 * source (credentials_invalid, probes, alerts, recovery) and the log line
 * of each change. The delays are the SCHED_* constants of sched.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetcherd/fetcherd.h"
#include "fetcherd/sched.h"
#include "lib/base/backoff.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/google/google.h"

static TAILQ_HEAD(, fbudget) budgets = TAILQ_HEAD_INITIALIZER(budgets);

/*
 * Budgets: one per Google Cloud project (Google counts the Reports API's
 * quota per project), shared by the sources of all its service accounts.
 */
struct fbudget *
budget_get(const char *email)
{
	struct fbudget *b;
	char		project[sizeof(b->project)];

	google_project_of(email, project, sizeof(project));
	if ((b = budget_find(project)) != NULL) {
		b->refs++;
		return b;
	}
	b = util_xcalloc(1, sizeof(*b));
	util_strlcpy(b->project, project, sizeof(b->project));
	b->refs = 1;
	TAILQ_INSERT_TAIL(&budgets, b, entry);
	return b;
}

struct fbudget *
budget_find(const char *project)
{
	struct fbudget *b;

	TAILQ_FOREACH (b, &budgets, entry)
		if (strcmp(b->project, project) == 0)
			return b;
	return NULL;
}

bool
budget_any(void)
{
	return !TAILQ_EMPTY(&budgets);
}

void
budget_put(struct fbudget *b)
{
	if (b == NULL || --b->refs > 0)
		return;
	TAILQ_REMOVE(&budgets, b, entry);
	free(b);
}

/* Interval of a source with jitter, ms. */
static int64_t
src_interval_ms(const struct fsrc *s)
{
	int64_t iv = s->interval_s > 0 ? s->interval_s : 300;

	return backoff_jitter_pct(iv * 1000, SCHED_INTERVAL_JITTER_PCT);
}

/*
 * When the next run is due: an interval after this one became due, not
 * after it ended, so a source is polled every interval however long its
 * runs take (waiting for a slot, Google, the store), as "every source
 * polled within 1.1x its interval" asks; at least a quarter interval
 * after the end, so that runs longer than the interval (an overloaded
 * store) do not turn into polling without a pause.
 */
static int64_t
src_next_ms(const struct fjob *j)
{
	int64_t iv = src_interval_ms(j->src);
	int64_t took = j->due_mono > 0 ? util_mono_ms() - j->due_mono : 0;

	return iv - took > iv / 4 ? iv - took : iv / 4;
}

/* FETCH_DONE (ok) and FETCH_NO_CLIENT: next poll at the interval. */
static void
job_finish(struct fjob *j, bool ok)
{
	struct fsrc *s = j->src;

	job_release(j);
	j->probe = false;
	j->last_run_mono = util_mono_ms();
	if (ok) {
		s->last_fetch_at = util_now_ms();
		if (!s->creds_invalid && s->last_error[0] != '\0') {
			bool   others = false;
			size_t i;

			for (i = 0; i < s->njobs; i++)
				if (s->jobs[i]->failing)
					others = true;
			if (!others)
				s->last_error[0] = '\0';
		}
		s->state_dirty = true;
		src_flush_state(s);
		if (j->run_new > 0)
			log_debug("source=%s app=%s %lld new logs", s->id,
			    j->app, (long long)j->run_new);
	}
	j->run_new = 0;
	if (j->bf != NULL && ok)
		backfill_finished(j); /* the next request, if any */
	else
		sched_arm(j->timer, src_next_ms(j));
	sched_pump_later(0);
}

/* The run pauses delay_ms without its slot (the driver's window stays). */
static void
job_wait(struct fjob *j, int64_t delay_ms)
{
	job_release(j);
	j->state = JOB_WAIT;
	sched_arm(j->timer, delay_ms);
	sched_pump_later(0);
}

/* FETCH_RATE_LIMITED: the client's budget backs off, the job waits it. */
static void
budget_limited(struct fjob *j, const struct google_error *e)
{
	struct fbudget *b = j->src->budget;
	int64_t		now = util_mono_ms(), d;

	d = backoff_full_jitter(b->attempt, SCHED_LIMIT_BASE_MS,
	    SCHED_LIMIT_CAP_MS);
	if (b->attempt < SCHED_LIMIT_MAX_STEP)
		b->attempt++;
	if (e->retry_after_s > 0 && e->retry_after_s * 1000 > d)
		d = e->retry_after_s * 1000;
	if (now + d > b->blocked_until)
		b->blocked_until = now + d;
	if (!b->limited) {
		log_warn("Google rate-limits project=%s (%s, client=%s); every "
			 "source of this project slows down, here and on the "
			 "other instances, retrying in %llds",
		    b->project, e->reason, j->src->client_email,
		    (long long)d / 1000);
		b->limited = true;
	} else
		log_debug("project=%s still rate-limited (%s), next try in "
			  "%lldms",
		    b->project, e->reason, (long long)d);
	quota_share(b);
	job_wait(j, b->blocked_until - now);
}

/* Google answered a request of the client: full speed again. */
static void
budget_ok(struct fjob *j)
{
	struct fbudget *b = j->src->budget;

	if (b->attempt == 0)
		return;
	if (b->limited)
		log_info("Google accepts requests of project=%s again; full "
			 "speed resumed",
		    b->project);
	b->attempt = 0;
	b->limited = false;
	/* A block another instance was told of stays (Retry-After). */
	b->blocked_until = b->remote_until > util_mono_ms() ? b->remote_until :
							      0;
	sched_pump_later(0);
}

/* FETCH_CREDS_BAD: credentials_invalid, every job probes slowly. */
static void
src_creds_bad(struct fjob *j, const struct google_error *e)
{
	struct fsrc *s = j->src;
	char	     msg[GOOGLE_DIAG_MAX];
	size_t	     i;

	s->creds_retry_at = util_mono_ms() + fconf.creds_retry_ms;
	snprintf(msg, sizeof(msg), "%s", e->diagnosis);
	if (!s->creds_invalid) {
		s->creds_invalid = true;
		log_err("source=%s %s; fetching paused, cursor kept, "
			"retrying every %llds",
		    s->id, msg, (long long)fconf.creds_retry_ms / 1000);
		alert_queue(s, "credentials_invalid", msg);
		/* stop the other applications of this source */
		for (i = 0; i < s->njobs; i++)
			if (s->jobs[i] != j) {
				job_stop(s->jobs[i]);
				sched_arm(s->jobs[i]->timer,
				    fconf.creds_retry_ms);
			}
		if (s->bfjob != NULL && s->bfjob != j) {
			job_stop(s->bfjob);
			sched_arm(s->bfjob->timer, fconf.creds_retry_ms);
		}
	} else
		log_info("source=%s credentials still refused (%s); next "
			 "try in %llds",
		    s->id, e->reason, (long long)fconf.creds_retry_ms / 1000);
	util_strlcpy(s->last_error, msg, sizeof(s->last_error));
	s->state_dirty = true;
	src_flush_state(s);
	job_release(j);
	j->probe = false;
	sched_arm(j->timer, fconf.creds_retry_ms);
	sched_pump_later(0);
}

/* Google accepts the credentials of j's source again. */
static void
src_creds_ok(struct fjob *j)
{
	struct fsrc *s = j->src;
	size_t	     i;

	if (!s->creds_invalid)
		return;
	s->creds_invalid = false;
	s->creds_retry_at = 0;
	s->last_error[0] = '\0';
	s->state_dirty = true;
	log_notice("source=%s Google accepts the credentials again; "
		   "fetching resumed from the saved cursors",
	    s->id);
	alert_queue(s, "credentials_restored",
	    "Google accepts the "
	    "service-account credentials again; fetching resumed from where "
	    "it stopped");
	src_flush_state(s);
	for (i = 0; i < s->njobs; i++)
		if (s->jobs[i] != j && s->jobs[i]->state == JOB_IDLE)
			sched_arm(s->jobs[i]->timer,
			    (int64_t)util_random_below(SCHED_RESUME_SPREAD_MS));
	if (s->bfjob != NULL && s->bfjob != j && s->bfjob->state == JOB_IDLE)
		sched_arm(s->bfjob->timer,
		    (int64_t)util_random_below(SCHED_RESUME_SPREAD_MS));
}

/* FETCH_ANSWERED: the client and the credentials work. */
static void
job_answered(struct fjob *j)
{
	budget_ok(j);
	if (j->src->creds_invalid)
		src_creds_ok(j);
}

/* FETCH_PAGE_STORED: the job's run of failures is over. */
static void
job_page_stored(struct fjob *j)
{
	if (j->failing) {
		log_info("source=%s app=%s Google answers again after %u "
			 "failed attempts",
		    j->src->id, j->app, j->attempt);
		j->failing = false;
	}
	j->attempt = 0;
}

/* FETCH_RETRY: the job backs off; the first failure is logged. */
static void
job_retry(struct fjob *j, const struct google_error *e)
{
	int64_t d;

	j->attempt++;
	d = backoff_full_jitter(j->attempt, SCHED_RETRY_BASE_MS,
	    SCHED_RETRY_CAP_MS);
	if (e->retry_after_s > 0 && e->retry_after_s * 1000 > d)
		d = e->retry_after_s * 1000;
	if (!j->failing) {
		log_warn("source=%s app=%s %s; retrying in %llds (further "
			 "retries logged at debug)",
		    j->src->id, j->app, e->diagnosis, (long long)d / 1000);
		j->failing = true;
	} else
		log_debug("source=%s app=%s %s; retry %u in %lldms", j->src->id,
		    j->app, e->diagnosis, j->attempt, (long long)d);
	job_wait(j, d);
}

/* FETCH_WINDOW_FAILED: lastError says why; the window comes back later. */
static void
job_window_failed(struct fjob *j, const char *what)
{
	char	msg[512];
	int64_t d;

	snprintf(msg, sizeof(msg), "%s window %s: %s", j->app,
	    window_kind_name(j->kind), what);
	j->attempt++;
	d = backoff_full_jitter(j->attempt, SCHED_WINDOW_BASE_MS,
	    SCHED_WINDOW_CAP_MS);
	log_warn("source=%s app=%s %s window: %s; window dropped, cursor "
		 "kept, retrying in %llds",
	    j->src->id, j->app, window_kind_name(j->kind), what,
	    (long long)d / 1000);
	src_set_error(j->src, msg);
	job_wait(j, d);
}

/* FETCH_STORE_ERROR: the run starts again shortly. */
static void
job_store_error(struct fjob *j, const char *what)
{
	if (what != NULL)
		log_warn("source=%s app=%s %s; retrying in %llds", j->src->id,
		    j->app, what, (long long)SCHED_STORE_RETRY_MS / 1000);
	job_wait(j, SCHED_STORE_RETRY_MS);
}

void
sched_report(struct fjob *j, enum fetch_result r,
    const struct fetch_report *rep)
{
	static const struct fetch_report none;

	if (rep == NULL)
		rep = &none;
	switch (r) {
	case FETCH_ANSWERED:
		job_answered(j);
		break;
	case FETCH_PAGE_STORED:
		job_page_stored(j);
		break;
	case FETCH_DONE:
		job_finish(j, true);
		break;
	case FETCH_NO_CLIENT:
		job_finish(j, false);
		break;
	case FETCH_WAIT:
		job_wait(j, rep->delay_ms);
		break;
	case FETCH_RETRY:
		job_retry(j, rep->gerr);
		break;
	case FETCH_RATE_LIMITED:
		budget_limited(j, rep->gerr);
		break;
	case FETCH_WINDOW_FAILED:
		job_window_failed(j, rep->what);
		break;
	case FETCH_CREDS_BAD:
		src_creds_bad(j, rep->gerr);
		break;
	case FETCH_STORE_ERROR:
		job_store_error(j, rep->what);
		break;
	case FETCH_LEASE_LOST:
		src_lease_lost(j->src);
		break;
	}
}

/* FETCH_LEASE_LOST: every job of s stops; nothing is rescheduled. */
void
src_lease_lost(struct fsrc *s)
{
	if (s->leased)
		log_warn("source=%s lease lost (epoch=%lld); stopped, another "
			 "instance may fetch it",
		    s->id, (long long)s->lease.epoch);
	s->leased = false;
	s->lease.held = false;
	src_stop_jobs(s);
	sched_pump_later(0);
}
