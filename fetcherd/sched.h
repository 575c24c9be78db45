/*
 * Inside the scheduler, what its files share: sched.c (configuration,
 * the sources and their partitions, a timer per job, the queue of due
 * jobs and its concurrency gates), report.c (what becomes of a run:
 * sched_report(), backoffs, budgets, credentials state) and srcstate.c
 * (source_state documents and alerts). The driver sees fetcherd.h only.
 */
#ifndef AR_FETCHERD_SCHED_H
#define AR_FETCHERD_SCHED_H

#include <sys/queue.h>

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "fetcherd/fetcherd.h"

/*
 * Every delay of the scheduler. Those sched_report() decides are listed
 * by enum fetch_result (fetcherd.h). A backoff is a full-jitter draw in
 * [base, min(cap, base * 2^attempt)] (lib/base/backoff.h).
 */
/* Polls: the source's logFetchInterval, +/- this much jitter. */
#define SCHED_INTERVAL_JITTER_PCT 10
/* FETCH_RETRY: the job's own backoff (Retry-After, if longer, wins). */
#define SCHED_RETRY_BASE_MS 1000
#define SCHED_RETRY_CAP_MS  (120LL * 1000)
/* FETCH_WINDOW_FAILED: the window is dropped; it comes back slower. */
#define SCHED_WINDOW_BASE_MS 2000
#define SCHED_WINDOW_CAP_MS  (300LL * 1000)
/*
 * FETCH_RATE_LIMITED: the budget of the Google Cloud project, shared by
 * all its sources here and on the other instances (quota.c; one request
 * at a time while it is limited); Retry-After wins.
 */
#define SCHED_LIMIT_BASE_MS  1000
#define SCHED_LIMIT_CAP_MS   (300LL * 1000)
#define SCHED_LIMIT_MAX_STEP 30
/*
 * FETCH_CREDS_BAD: fetch_credentials_retry (fconf.creds_retry_ms); the
 * other applications of the source wait for the probe's answer.
 */
/* FETCH_STORE_ERROR: the run starts again (the pump waits for the store). */
#define SCHED_STORE_RETRY_MS 3000
/* The pump looks again this often while the store is down. */
#define SCHED_STORE_POLL_MS 1000
/* Jobs kicked (new lease, new credentials) start within this spread. */
#define SCHED_KICK_SPREAD_MS 1000
/* The other jobs of a source whose credentials work again: this spread. */
#define SCHED_RESUME_SPREAD_MS 500
/* lastFetchAt alone reaches source_state at most this often. */
#define SCHED_STATE_EVERY_MS (30LL * 1000)

/* sched.c */
TAILQ_HEAD(fsrc_list, fsrc);
extern struct fsrc_list srcs;
bool			sched_stopping(void);
/* Stopping, the states written: the partitions go. */
void	     sched_release_all(void);
void	     sched_arm(struct event *ev, int64_t ms);
void	     sched_pump_later(int64_t ms);
void	     job_release(struct fjob *j);
void	     job_stop(struct fjob *j);
struct fsrc *src_find(const char *id);
/* The rescans completed, and whether the last one saw source id. */
uint64_t     sched_rescans(void);
bool	     sched_known(const char *id);
struct fjob *job_new(struct fsrc *s, const char *app);
void	     job_free(struct fjob *j);
void	     src_kick(struct fsrc *s);
void	     src_stop_jobs(struct fsrc *s);

/* report.c */
struct fbudget *budget_get(const char *email);
void		budget_put(struct fbudget *b);
struct fbudget *budget_find(const char *project);
bool		budget_any(void);

/* quota.c */
void quota_start(void);
void quota_stop(void);
/* b was rate-limited here: tell the other instances (the store). */
void quota_share(struct fbudget *b);
void src_lease_lost(struct fsrc *s);

/* srcstate.c */
void	 src_set_error(struct fsrc *s, const char *msg);
void	 src_flush_state(struct fsrc *s);
void	 src_flush_cursors(struct fsrc *s);
unsigned src_state_writes(void);
void	 src_state_entry(struct fsrc *s, bson_t *parent);
void	 src_state_apply(struct fsrc *s, const bson_t *entry);

/* pstate.c: the fetch state document of each partition held */
void	 pstate_init(struct event_base *base, int count);
void	 src_load_start(int part, int64_t epoch, struct fsrc *one);
void	 pstate_touch(struct fsrc *s, int64_t ms);
void	 pstate_gone(const char *sid, int part);
void	 pstate_lost(int part);
void	 pstate_leased(int part, const struct lease *l);
bool	 pstate_drain_ready(int part);
void	 pstate_flush_all(void);
unsigned pstate_writes(void);
void	 alert_queue(struct fsrc *s, const char *kind, const char *msg);
void	 alerts_flush(void);

#endif
