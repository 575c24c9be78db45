/*
 * auditrelay-deliverd's types and the functions its files offer one
 * another: the sources whose delivery queue this instance holds (by the
 * lease of their partition, "deliver:p<N>", lib/store/partition.h), their
 * batches in memory, callback hosts, the settings. The store is the
 * truth; this is a cache rebuilt from it. Each file keeps its own state
 * (static): the settings in run.c, the table in sources.c, the partition
 * set in owner.c, the HTTP client and in-flight counts in step.c.
 */
#ifndef AR_DELIVERD_DELIVERD_H
#define AR_DELIVERD_DELIVERD_H

#include <sys/queue.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <stdatomic.h>

#include <event2/event.h>

#include "deliverd/breaker.h"
#include "deliverd/outcome.h"
#include "lib/crypto/crypto.h"
#include "lib/ipc/config.h"
#include "lib/ipc/ipc.h"
#include "lib/net/httpc.h"
#include "lib/store/lease.h"
#include "lib/store/partition.h"
#include "lib/store/store.h"

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                  \
	for ((var) = TAILQ_FIRST(head);                             \
	     (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1); \
	     (var) = (tvar))
#endif

struct dsource;

/* A callback host: POSTs in flight to it, across sources. */
struct dhost {
	LIST_ENTRY(dhost) entry;
	char	 name[256];
	unsigned inflight;
};

/* An undelivered batch (its body stays in the store). */
struct dbatch {
	TAILQ_ENTRY(dbatch) entry;
	struct dsource	 *src;
	struct dhost	 *host; /* while in flight */
	char		  id[40];
	char		  webhook_id[48];
	bool		  inline_body; /* alert, watermark: body in the doc */
	int64_t		  created_at;
	int64_t		  next_at;  /* ms, next attempt */
	int64_t		  age_base; /* created, or replayed */
	int64_t		  known_at; /* ms, hinted or first read by a scan */
	bool		  hinted;   /* fetcherd's hint for it came */
	unsigned	  n_attempts;
	unsigned	  n_errors; /* ERROR outcomes since base */
	unsigned	  n_fail;   /* failures, for the schedule */
	int64_t		  nlogs;
	bool		  inflight;
	bool		  seen; /* reload bookkeeping */
	struct httpc_req *req;
	char		 *body; /* from the hint or a read, or NULL */
	size_t		  body_len;
	bool		  body_reading; /* a worker reads it */
	/* Where the body is: a bodies_* partition, bodies_dead, ... */
	char body_coll[STORE_BODY_COLL_MAX];
};

TAILQ_HEAD(dbatch_q, dbatch);

struct dsource {
	TAILQ_ENTRY(dsource) entry;
	char	id[64];
	char   *url;
	char	hostname[256];
	char   *secret;
	char   *prev_secret;
	int64_t prev_until;
	/*
	 * The sealed blobs the secrets were opened from (version, then the
	 * raw webhookSecret and previousWebhookSecret): a rescan that
	 * finds them unchanged opens nothing (10 000 sources every 5 s).
	 */
	uint8_t *sealed;
	size_t	 sealed_len;
	bool	 paused; /* sources.paused */
	bool	 gone;	 /* callback answered 410 */
	char	*gone_url;
	bool	 seen;
	/*
	 * A copy of the lease of the source's partition ("deliver:p<N>"),
	 * kept in step by the partition set: held, epoch (the fencing
	 * token written into batches) and local deadline.
	 */
	int		part;
	struct lease	lease;
	struct dbatch_q queue;
	unsigned	nqueue;
	unsigned	inflight;
	struct event   *timer;
	bool		logs_dirty; /* new batches were hinted */
	bool		alerts_dirty;
	bool		reload;		/* re-read the batch queue */
	bool		ready;		/* taken over: watermark known */
	bool		busy;		/* a worker job runs for it */
	bool		zombie;		/* removed; freed after the job */
	bool		handover;	/* over our share: drain, release */
	_Atomic int64_t lease_deadline; /* for the worker: mono ms */
	int64_t		next_sweep;	/* look for late logs */
	bool		wait_slot;	/* held back by a limit */
	bool		bodies_reading; /* a body read job runs for it */
	bool		want_bodies;	/* a due batch has no body in memory */
	struct breaker	br;
	char		last_error[256];
	const char     *status; /* ok, callback_failing, ... */
	int64_t		last_delivery_at;
	int64_t		last_dead_alert;
	const char     *written_status; /* in the last document written */
	bool		state_ready;	/* its entry was read (state.c) */
	int64_t		st_logs, st_batches, st_fail, st_dead; /* totals */
	int64_t		st_pruned; /* dead letters past their retention */
	/* Watermark messages (sources.watermarks; wmark.c). */
	bool	    watermarks;
	int64_t	    interval_ms; /* logFetchInterval */
	struct dwm *wm;		 /* one per application */
	size_t	    nwm;
	int64_t	    wm_next; /* wall ms: look again then */
};

/* The watermark last sent for one application of a source. */
struct dwm {
	char	app[64];
	int64_t sent; /* through_ms, 0: none yet (since this process) */
};

TAILQ_HEAD(dsource_q, dsource);

/* The source id in q, or NULL. */
static inline struct dsource *
dsource_find(struct dsource_q *q, const char *id)
{
	struct dsource *s;

	TAILQ_FOREACH (s, q, entry)
		if (strcmp(s->id, id) == 0)
			return s;
	return NULL;
}

/* The settings (run.c reads them from the configuration). */
struct deliverd_conf {
	int64_t	 max_logs;
	int64_t	 max_bytes;
	int64_t	 linger_ms;
	int64_t	 sched[DELIVER_SCHEDULE_MAX];
	int	 nsched;
	int64_t	 max_age_ms;
	long	 timeout_ms;
	unsigned max_conc;
	unsigned host_conc;
	unsigned breaker_threshold;
	int64_t	 lease_ttl_ms;
	int64_t	 lease_renew_ms;
	int64_t	 rescan_ms;
	int64_t	 retention_ms;
	int64_t	 dead_retention_ms; /* 0: kept */
	bool	 allow_private;
};

/* Bodies kept in memory from BatchStored hints, at most. */
#define DELIVERD_BODY_CACHE_MAX (64u * 1024 * 1024)

/* run.c: settings, start-up, reload, shutdown. */
const struct deliverd_conf *deliverd_conf(void);
int  deliverd_configure(const struct config *cfg, bool initial, char *err,
     size_t errlen);
void deliverd_shutdown(unsigned grace_ms);
/* Leave: the sources go, every lease is released, the process exits. */
void deliverd_finish(void);
int  deliverd_store_setup(struct store *st, char *err, size_t errlen);
/* (Re)create *ev on the loop, firing after ms (every ms if persist). */
void deliverd_timer_start(struct event **ev, event_callback_fn cb, int64_t ms,
    bool persist);

/* dispatch.c: hints from auditrelayd. */
void deliverd_dispatch(const Ar__Envelope *env);

/* sources.c: the table of sources, the rescan. */
int deliverd_sources_init(const char *key_file, char *err, size_t errlen);
struct dsource_q *deliverd_sources(void);
void		  deliverd_sources_configure(void);
void		  deliverd_sources_free(void);
struct dsource	 *deliverd_source_find(const char *id);
size_t		  deliverd_sources_owned(char ***out);
void		  deliverd_source_wake(struct dsource *s, int64_t at);
void		  deliverd_source_kick(struct dsource *s);
void		  deliverd_source_idle(struct dsource *s);
void		  deliverd_source_free(struct dsource *s);
void		  deliverd_source_removed(struct dsource *s);
void		  deliverd_source_destroy(struct dsource *s);
void		  deliverd_source_job_done(struct dsource *s);
/* A worker job of s ended (queue_init's done): carry on, or free s. */
void deliverd_source_job_end(void *arg, struct dsource *s);
void deliverd_rescan_arm(bool initial);
void deliverd_rescan_soon(void);

/* state.c: the delivery state of each partition's sources. */
void deliverd_state_init(int count);
void deliverd_state_lease(int part, const struct lease *l);
void deliverd_state_forget(int part);
bool deliverd_state_read(int part, int64_t epoch);
void deliverd_state_base(int part, int64_t epoch, bson_t *sources, bool found);
bool deliverd_state_drain(int part);
void deliverd_state_finish(void (*then)(void));
void deliverd_source_state_write(struct dsource *s);
void deliverd_stats_add(struct dsource *s, int64_t logs, int64_t batches,
    int64_t failures, int64_t dead);
void deliverd_state_gone(const struct dsource *s);
void deliverd_state_forgotten(char *const *ids, size_t n);
void deliverd_stats_pruned(struct dsource *s, int64_t n);
void deliverd_state_flush_cb(evutil_socket_t fd, short what, void *arg);

/* step.c: sending a source's queue, a POST's outcome. */
int	 deliverd_step_init(void);
void	 deliverd_step_stop(void);
unsigned deliverd_inflight(void);
void	 deliverd_step_cancel(struct dsource *s, struct dbatch *b);
void	 deliverd_step(struct dsource *s);
void	 deliverd_source_timer_cb(evutil_socket_t fd, short what, void *arg);

/* owner.c: partitions held, sources taken over. */
int  deliverd_partitions_init(const struct config *cfg, const char *instance,
     char *err, size_t errlen);
void deliverd_partitions_configure(const struct config *cfg);
void deliverd_partitions_shutdown(void (*done)(void *), void *arg);
int  deliverd_partition_of(const char *id);
int  deliverd_partition_count(void);
void deliverd_partitions_sync(void);
void deliverd_sources_taken(int part, const struct lease *l,
    struct dsource *one);

/* janitor.c: what removed sources left, old alerts. */
void deliverd_janitor_start(void);

/* queue.c: the store side of batches (scans on the worker thread). */
/*
 * Every source's pending batches are re-read in one scan at each rescan
 * (5 s by default): fetcherd's hints queue new batches at once; the
 * re-read finds replays, lost hints and batches of other holders.
 */
int queue_load_all_start(void);
/*
 * The table of sources (load_all merges into it) and what to call when
 * a job of one of them ended, or brought news: done(arg, s), with s no
 * longer busy (and maybe a zombie to free).
 */
void queue_init(struct dsource_q *sources,
    void (*done)(void *arg, struct dsource *s), void *arg);
/* An alert of sid was stored: build its alert batches soon. */
void queue_alerts_raised(const char *sid);

/* Take-over: watermark, pending batches, alert marks; then ready. */
int queue_takeover_start(struct dsource *s);
/* Re-read the pending batches (replays, other holders). */
int queue_load_start(struct dsource *s);
/* Turn the pending alerts of s into alert batches (on the worker). */
#define QUEUE_ALERTS_PER_BUILD 16
int queue_alerts_start(struct dsource *s);
/*
 * Read the bodies of s's due batches that have none in memory, on the
 * worker (never on the loop); s is stepped again when they are in. A
 * batch cut since this deliverd started and not hinted yet waits up to
 * QUEUE_HINT_GRACE_MS from its cut or its first scan for its hint (a
 * rescan can find it in the store before fetcherd's hint with its body
 * arrives, and a slow store holds the hint back by the rest of the page
 * store; a read would scan a whole partition and slow the store more):
 * the time it may be read from is returned (0: none waits).
 */
#define QUEUE_HINT_GRACE_MS 5000
int64_t queue_bodies_start(struct dsource *s);
/* Free b's body when the cache holds more than its bound. */
void queue_body_trim(struct dbatch *b);
/* Shutdown: send the 2xx not yet recorded to the worker now. */
void queue_record_flush(void);
int  queue_record(struct dsource *s, struct dbatch *b,
     const struct httpc_resp *resp, const char *state, int64_t now,
     const char *error);
void queue_insert_sorted(struct dsource *s, struct dbatch *b);
void queue_remove(struct dsource *s, struct dbatch *b);
/* A batch hinted by fetcherd (queued unless known); takes no ownership. */
void queue_hinted(struct dsource *s, const char *id, const char *wid,
    uint32_t nlogs, int64_t created_at, const uint8_t *body, size_t len,
    const char *body_coll);

/*
 * A batch whose body is in its document (a watermark message), stored
 * pending by the caller: queued unless known. Takes body (malloc'd).
 */
/*
 * The fields after the head (_id, sourceId, kind, ...) of a pending
 * batch whose body is in its document (alerts, watermarks).
 */
void queue_bson_inline(bson_t *doc, const char *body, size_t len,
    const char *wid, int64_t now, int64_t epoch);
void queue_add_inline(struct dsource *s, const char *id, const char *wid,
    int64_t created_at, char *body, size_t len);

/* alerts.c */
int alerts_raise(struct dsource *s, const char *alert, const char *message);
/*
 * One scan of the pending alerts of every source (those fetcherd or
 * another host stored): their sources build alert batches soon.
 */
void alerts_probe_start(void);

/*
 * wmark.c: the watermark messages of the sources with watermarks on,
 * looked at every rescan, one job for all that are due.
 */
void wmark_apply(struct dsource *s, const bson_t *doc);
void wmark_tick(void);
void wmark_free(struct dsource *s);

#endif
