/*
 * auditrelay-fetcherd internals: the scheduler (sched.c, with report.c
 * and srcstate.c; fetcherd/sched.h) owns sources, the partition leases
 * (lib/store/partition.h), timers, concurrency gates, per-client rate-limit
 * budgets and every retry delay; the driver (google_driver.c) reads the
 * windows of one (source, application) that window.c picks, stores their
 * logs before it moves a cursor, and reports each outcome to
 * sched_report().
 */
#ifndef AR_FETCHERD_H
#define AR_FETCHERD_H

#include <sys/queue.h>

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <mongoc/mongoc.h>

#include "lib/crypto/crypto.h"
#include "lib/google/google.h"
#include "lib/ipc/config.h"
#include "lib/ipc/ipc.h"
#include "lib/store/lease.h"

#define FETCH_MAX_AGES 8
/* Re-reads at an age that found nothing before a tuned ladder drops it. */
#define FETCH_TUNE_EVIDENCE	  100
#define FETCH_MAX_PAGES		  5000 /* per window */
#define FETCH_MAX_EMPTY_PAGES	  3    /* empty pages with a token in a row */
#define FETCH_OVERLAP_SPREAD	  10   /* the overlap read every 1/10 of it */
#define FETCH_EDGE_MS		  2000 /* read again by every poll */
#define FETCH_MAX_WINDOW_MS	  (6LL * 3600 * 1000) /* catch-up chunk */
#define FETCH_RETENTION_MS	  ((int64_t)GOOGLE_RETENTION_DAYS * 86400000LL)
#define FETCH_RETENTION_MARGIN_MS (3600LL * 1000)
#define FETCH_LAG_BUCKETS	  8
/*
 * Backpressure: past this many undelivered batches of a source, its runs
 * read no new window (re-reads go on) until deliverd has caught up;
 * Google keeps 180 days, the store keeps what is pending small.
 */
#define FETCH_MAX_PENDING_BATCHES 64
/*
 * A held source counts its undelivered batches again after a delay that
 * follows the callback: FETCH_PENDING_RECOUNT_MIN_MS while the count
 * falls (a backlog drains: the fetcher goes on as soon as there is room),
 * doubled up to FETCH_PENDING_RECOUNT_MS while it does not (a callback
 * down costs one count per source every 5 s, no more).
 */
#define FETCH_PENDING_RECOUNT_MIN_MS 250
#define FETCH_PENDING_RECOUNT_MS     5000

/*
 * Backfill jobs (POST /sources/:id/backfill, fetcherd/backfill.c): at
 * most FETCH_BACKFILL_MAX requests per source, read one at a time, oldest
 * request first, by a job of their own beside the live ones. It reads no
 * new window while its source has FETCH_BACKFILL_PENDING undelivered
 * batches (half the live limit: the live edge keeps its room), and takes
 * a concurrency slot only while at most half of them are busy and no
 * live job waits for one. Its windows adapt to the volume: a window of
 * more than FETCH_SLICE_PAGES pages halves the next one, one of a page or
 * none doubles it, within [FETCH_SLICE_MIN_MS, FETCH_MAX_WINDOW_MS].
 */
#define FETCH_BACKFILL_MAX     16
#define FETCH_BACKFILL_DAYS    180
#define FETCH_BACKFILL_PENDING (FETCH_MAX_PENDING_BATCHES / 2)
#define FETCH_SLICE_PAGES      8
#define FETCH_SLICE_MIN_MS     (60LL * 1000)
#define FETCH_SLICE_START_MS   (3600LL * 1000)

/* Settings from the configuration. */
struct fetch_conf {
	int64_t overlap_ms;
	/*
	 * The re-read ladder (config_reread_ladder): nages ages, the
	 * first nbase given; tuned: each job uses a prefix of it that
	 * window.c chooses from what its re-reads find (fjob.nages).
	 */
	int64_t ages_s[FETCH_MAX_AGES];
	int	nages;
	int	nbase;
	bool	tuned;
	int64_t lookback_s;
	int	max_conc;
	int	client_conc;
	int64_t creds_retry_ms;
	int64_t timeout_ms;
	int64_t lease_ttl_ms;
	int64_t lease_renew_ms;
	int64_t rescan_ms;
	int	partitions; /* partition_count */
	int64_t min_interval_s;
	int64_t batch_max_logs; /* batches cut per page */
	int64_t batch_max_bytes;
	char	token_url[512];
	char	api_base[512];
	char	instance[160];
	uint8_t master[CRYPTO_KEY_LEN];
	char	master_id[CRYPTO_KEYID_LEN + 1];
	bool	have_master;
};

/* A window already read, to be read again at growing ages. */
struct reread {
	int64_t start, end, closed_at;
	int	next; /* index into ages */
};

/* Counters kept per (source, application) in the stats collection. */
struct fetch_stats {
	int64_t events_stored;
	int64_t events_fetched; /* events read from Google */
	int64_t duplicates;	/* already stored, absorbed */
	int64_t error_logs;
	int64_t truncated_logs; /* stored over the size cap */
	int64_t pages;
	int64_t windows;
	int64_t lag_count, lag_sum_ms, lag_max_ms, last_lag_ms;
	int64_t lag_buckets[FETCH_LAG_BUCKETS];
	int64_t late_overlap;		      /* new events from the overlap */
	int64_t schema_drift;		      /* names new after the baseline */
	int64_t late_rereads[FETCH_MAX_AGES]; /* per age */
	int64_t rereads_done[FETCH_MAX_AGES];
};

enum job_state {
	JOB_IDLE,    /* waiting for its next interval */
	JOB_QUEUED,  /* due, waiting for a concurrency slot */
	JOB_RUNNING, /* holds a slot: a request in flight */
	JOB_WAIT     /* backing off, slot released, window kept */
};

enum win_kind {
	WIN_MAIN,
	WIN_REREAD,
	WIN_BACKFILL
};

/* A backfill request (the `backfills` collection, apid's). */
struct backfill_req {
	char	id[40];
	char	app[64];
	int64_t from, to; /* ms */
};

/*
 * The progress of the backfill a backfill job reads, kept in its
 * cursors document "<source>:<app>:bf:<backfill id>" (window.c).
 */
struct backfill {
	struct backfill_req req;
	int64_t		    next;     /* read up to here */
	int64_t		    slice_ms; /* the next window's length */
	int64_t		    windows, started_at, finished_at;
	bool		    done;
};

struct fsrc;
struct handoff;

struct recent;
struct drift;

struct fjob {
	struct fsrc   *src;
	char	       app[64];
	struct event  *timer;
	enum job_state state;
	TAILQ_ENTRY(fjob) qentry; /* in the queue, or waiting to resume */
	bool probe;		  /* credentials probe run */
	/*
	 * A running job holds a concurrency slot only while it talks to
	 * Google: it gives the slot back while the store works for it and
	 * takes one again (resuming: waiting for it) before its next request.
	 */
	bool holds_slot;
	bool resuming;

	/* Persistent state (cursors and stats documents). */
	bool		   loaded;
	int64_t		   cursor;
	struct reread	  *rr;
	size_t		   nrr;
	struct fetch_stats stats;
	/*
	 * The fetch side of the watermark (docs/WATERMARK.md): every event
	 * with id.time before final_ms is read for the last time (no poll
	 * overlap, no re-read reaches it again), those from covered_ms on
	 * are all stored. 0: not yet. Never moves backwards.
	 */
	int64_t covered_ms; /* the first run's start */
	int64_t final_ms;
	int	nages; /* re-read ages in use: fconf.ages_s[0..nages) */

	/* The run in progress. */
	bool		  main_done;
	bool		  in_win;
	enum win_kind	  kind;
	size_t		  rr_idx; /* WIN_REREAD: entry */
	int		  rr_age; /* its age index */
	int64_t		  w_start, w_end;
	int64_t		  w_prev_cursor; /* WIN_MAIN: cursor before */
	char		 *page_token;
	char		**seen_tokens;
	size_t		  nseen;
	int		  empty_pages;
	int64_t		  run_new;
	int		  chunks; /* main windows this run */
	struct google_op *op;
	struct handoff	 *ho;	   /* store job in flight */
	char		 *ho_next; /* its page's next token */
	int64_t		  ho_seen_at;
	int64_t		  win_new;  /* new logs this window */
	int64_t		  saved_at; /* mono ms of the last save */
	bool		  unsaved;  /* changed since it was written */
	/* The cursor and stats of the last save, for the partition's doc. */
	bson_t	*fs_cursor, *fs_stats;
	int64_t	 recovered_epoch; /* intents cleaned in */
	uint64_t recovered_gen;	  /* ...after that failure */
	/* The job's backoff (sched_report's). */
	unsigned       attempt; /* consecutive failures */
	bool	       failing; /* state change logged */
	int64_t	       last_run_mono;
	int64_t	       due_mono;     /* this run became due */
	struct recent *recent;	     /* ids stored lately (recent.h) */
	int64_t	       overlap_mono; /* the overlap last read */
	size_t	       ho_page_n;    /* logs of the page in flight */
	/* Schema drift (drift.c). */
	struct drift *drift;	      /* names known in this process */
	bool	      drift_baseline; /* done: new names now alert */
	bool	      drift_unsaved;  /* schemaDrift moved since the save */
	bool	      w_live;	      /* WIN_MAIN ending at "now" */
	/* A backfill job (fsrc.bfjob): what it reads; NULL for the others. */
	struct backfill *bf;
	int		 w_pages; /* pages of the window in progress */
};

/*
 * The rate-limit budget of a Google Cloud project (google_project_of() of
 * the client e-mail), shared by every source of its service accounts
 * here, and with the other instances through the store (quota.c).
 */
struct fbudget {
	TAILQ_ENTRY(fbudget) entry;
	char	 project[256];
	int	 inflight;
	unsigned attempt;	/* rate-limit backoff step */
	int64_t	 blocked_until; /* mono ms */
	int64_t	 remote_until;	/* mono ms: a block another instance saw */
	int64_t	 shared_until;	/* wall ms: the block in the store, ours */
	bool	 sharing;	/* a write of it in flight */
	bool	 limited;	/* state logged */
	int	 refs;
};

struct fsrc {
	TAILQ_ENTRY(fsrc) entry;
	char		      id[64];
	char		      client_email[256];
	char		      subject[256];
	int64_t		      interval_s;
	int64_t		      lookback_s;
	int64_t		      creds_version;
	bool		      seen; /* in the last rescan */
	struct fbudget	     *budget;
	struct google_client *gc;
	bool		      creds_bad_local; /* cannot decrypt/parse */
	struct fjob	    **jobs;
	size_t		      njobs;

	/*
	 * The lease of the source's partition ("fetch:p<N>"), a copy kept
	 * in step with the partition set: its epoch fences every write.
	 */
	int	     part;
	struct lease lease;
	bool	     leased;

	/* source_state */
	bool	     creds_invalid;
	int64_t	     creds_retry_at; /* mono ms */
	char	     last_error[GOOGLE_DIAG_MAX];
	int64_t	     last_fetch_at;
	bool	     state_dirty;
	bool	     state_loaded;
	bson_t	    *fentry; /* its entry of the partition's state, as read */
	struct fsrc *hnext;  /* sched.c's hash of the sources by id */
	const char  *written_status;
	bool	     written_fetched; /* lastFetchAt was set */
	char	     written_error[512];
	/* backpressure: undelivered batches (estimate, recounted) */
	int64_t pending_est;
	int64_t pending_counted_at; /* mono ms */
	int64_t pending_recount_ms; /* delay before the next count */
	bool	count_waited;	    /* a job of it waits for the census */
	bool	held_back;	    /* state logged */
	/* alerts not yet stored */
	char *pending_alert;
	char *pending_alert_msg;
	/* schema_drift alerts of the hour (drift.c: the cap) */
	int64_t	 drift_hour_mono; /* the hour began; 0: none yet */
	unsigned drift_sent;
	int64_t	 drift_over; /* counted, not alerted one by one */
	/* backfill requests (oldest first) and the job reading them */
	struct backfill_req *bfreq;
	size_t		     nbfreq;
	struct fjob	    *bfjob;
	char		   **bf_done; /* ids known finished */
	size_t		     nbf_done;
};

/* sched.c */
extern struct fetch_conf fconf;
int  sched_configure(const struct config *cfg, bool initial, char *err,
     size_t errlen);
void sched_start(void);
/* Store the states, give the partitions back, then call done(). */
void sched_stop(void (*done)(void));
void sched_source_changed(const char *id, bool removed);
/*
 * Copies of the ids of every backfill request the last rescan saw (the
 * caller frees them); false (and none) before the first rescan.
 */
bool sched_backfill_ids(char ***ids, size_t *n);
int  sched_store_setup(struct store *st, char *err, size_t errlen);

/*
 * What the driver tells the scheduler about a run: sched_report() alone
 * decides the next run time, the backoff, the source's status, alerts and
 * the log line of the change (the delays are the SCHED_* constants of
 * sched.h). FETCH_ANSWERED and FETCH_PAGE_STORED are news of a run that
 * goes on; every other result ends the run (its concurrency slot is given
 * back) and is reported exactly once. The driver drops or keeps its window
 * before it reports.
 */
enum fetch_result {
	FETCH_ANSWERED,	     /* Google answered a page: the client's
				   rate limit and refused credentials are
				   over; the run goes on */
	FETCH_PAGE_STORED,   /* a page is read and stored: the job's run
				   of failures is over; the run goes on */
	FETCH_DONE,	     /* nothing left to read: next poll at the
				   source's interval */
	FETCH_NO_CLIENT,     /* no Google client (credentials unusable
				   here): next poll at the interval */
	FETCH_WAIT,	     /* hold the window delay_ms (backpressure) */
	FETCH_RETRY,	     /* transient Google or network error (gerr):
				   the job's backoff, Retry-After at least;
				   window kept */
	FETCH_RATE_LIMITED,  /* 403/429 quota (gerr): the budget of the
				   client e-mail decides; window kept */
	FETCH_WINDOW_FAILED, /* the window cannot be read (what): dropped,
				   lastError set, slower backoff */
	FETCH_CREDS_BAD,     /* Google refuses the credentials (gerr):
				   credentials_invalid, alert, slow probe */
	FETCH_STORE_ERROR,   /* a store call of the run failed or the store
				   is down (what, may be NULL): short retry */
	FETCH_LEASE_LOST     /* the partition's lease is gone: the source
				   stops here, nothing is rescheduled */
};

struct fetch_report {
	const struct google_error *gerr;
	const char		  *what;
	int64_t			   delay_ms;
};

/* report.c; rep may be NULL for the results that need none. */
void sched_report(struct fjob *j, enum fetch_result r,
    const struct fetch_report *rep);

/*
 * backfill.c: the requests of a source (from the rescan), its backfill
 * job and what becomes of it.
 */
void backfill_apply(struct fsrc *s, const struct backfill_req *reqs, size_t n);
/* The job's request is read completely (FETCH_DONE): the next one. */
void backfill_finished(struct fjob *j);
/* Before a backfill job's run: false when it has nothing to read. */
bool backfill_ready(struct fjob *j);
void backfill_free(struct fsrc *s);
/* A backfill job's cursors document id. */
void backfill_key(const struct fjob *j, char *out, size_t outlen);

/* window.c */
struct norm_log;
void window_load(struct fjob *j, const bson_t *cdoc, const bson_t *sdoc);
void window_docs(struct fjob *j, bson_t **cursor, bson_t **stats);
bool window_next(struct fjob *j);
/* "poll", "re-read", "backfill": for log lines. */
const char *window_kind_name(enum win_kind k);
bool	    window_close(struct fjob *j);
bool	    window_final(struct fjob *j);
int64_t	    window_lag_p999(const struct fetch_stats *s);
void	    window_count(struct fjob *j, struct norm_log *logs, size_t n,
	   const bool *dup, int64_t seen);

/*
 * drift.c: schema drift. After a page is stored, the event and parameter
 * names of its new logs that j has not met in this process are inserted
 * into schema_names ("<source>:<app>:e:<name>" / ":p:"); an insert that
 * is new (no duplicate key) after the baseline (j->drift_baseline: the
 * job has once read up to the live edge) is a schema_drift alert,
 * counted in schemaDrift and capped per source and hour.
 */
void drift_page(struct fjob *j, const struct norm_log *logs, size_t n,
    const bool *dup);
/* Send the summary of an hour over the cap once it is over. */
void drift_tick(struct fsrc *s);
void drift_free(struct fjob *j);

/* google_driver.c */
void driver_step(struct fjob *j);
/* The current page of j's window from Google (takes a slot first). */
void driver_request(struct fjob *j);
/* A running job's slot, given back while the store works for it. */
void job_slot_put(struct fjob *j);
/*
 * Before a running job's next request to Google: true when it holds a
 * slot; else it waits for one and driver_request(j) follows.
 */
bool job_slot_take(struct fjob *j);
void driver_abort(struct fjob *j);
/* srcstate.c: a job's save into its partition's state, and its load. */
void src_save_job(struct fjob *j, int64_t ms);
void src_job_docs(struct fjob *j, bson_t *cbuf, bson_t *sbuf, const bson_t **c,
    const bson_t **st);
struct handoff *driver_save_handoff(struct fjob *j);
void		driver_free(struct fjob *j);

/* run.c: the daemon's child_ops (fetcherd.c is the entry point). */
int  fetcherd_configure(const struct config *cfg, bool initial, char *err,
     size_t errlen);
void fetcherd_dispatch(const Ar__Envelope *env);
void fetcherd_shutdown(unsigned grace_ms);

#endif
