/*
 * The fetch scheduler: the sources of the store (re-read every
 * rescan_interval and on SourceChanged hints, on the worker thread), the
 * leased partitions of sources (lib/partition.h: a source is fetched here
 * iff its partition "fetch:p<N>" is held), a timer per (source,
 * application) with jitter, a FIFO of due jobs bounded by an
 * overall concurrency and one per Google client (service account e-mail),
 * a rate-limit budget per client, and the credentials state of each source
 * (credentials_invalid, slow probes, alerts, recovery).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

#include "fetcherd/fetcherd.h"
#include "fetcherd/handoff.h"
#include "lib/backoff.h"
#include "lib/child.h"
#include "lib/ipc.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/partition.h"
#include "lib/store.h"
#include "lib/util.h"
#include "lib/worker.h"

struct fetch_conf fconf;

struct palert {
	TAILQ_ENTRY(palert)	 entry;
	char			 src[64];
	char			 kind[32];
	char			 msg[GOOGLE_DIAG_MAX];	/* whole advice */
	int64_t			 at;
};

static TAILQ_HEAD(, fsrc)	 srcs = TAILQ_HEAD_INITIALIZER(srcs);
static TAILQ_HEAD(, fjob)	 queue = TAILQ_HEAD_INITIALIZER(queue);
static TAILQ_HEAD(, fbudget)	 budgets = TAILQ_HEAD_INITIALIZER(budgets);
static TAILQ_HEAD(, palert)	 alerts = TAILQ_HEAD_INITIALIZER(alerts);
static struct httpc		*hc;
static struct event		*ev_rescan, *ev_pump;
static int			 running;
static bool			 started, stopping;
static struct partition_set	*parts;
static bool			 rescan_busy, rescan_again;
static void			(*stop_done)(void);
static unsigned			 writing;	/* source_state writes out */
static bool			 releasing;

static void	sched_release_all(void);

static void	sched_pump_later(int64_t ms);
static void	src_flush_state(struct fsrc *s);
static struct fsrc *src_find(const char *id);
static void	src_kick(struct fsrc *s);
static void	src_stop_jobs(struct fsrc *s);
static void	src_set_error(struct fsrc *s, const char *msg);
static void	src_lease_lost(struct fsrc *s);

/* lastFetchAt alone reaches source_state at most this often. */
#define SCHED_STATE_EVERY_MS	(30LL * 1000)

/*
 * The delays sched_report() decides (see enum fetch_result). A backoff is
 * a full-jitter draw in [base, min(cap, base * 2^attempt)] (lib/backoff.h).
 */
/* Polls: the source's logFetchInterval, +/- this much jitter. */
#define SCHED_INTERVAL_JITTER_PCT	10
/* FETCH_RETRY: the job's own backoff (Retry-After, if longer, wins). */
#define SCHED_RETRY_BASE_MS		1000
#define SCHED_RETRY_CAP_MS		(120LL * 1000)
/* FETCH_WINDOW_FAILED: the window is dropped; it comes back slower. */
#define SCHED_WINDOW_BASE_MS		2000
#define SCHED_WINDOW_CAP_MS		(300LL * 1000)
/*
 * FETCH_RATE_LIMITED: the budget of the client e-mail, shared by all its
 * sources (one request at a time while it is limited); Retry-After wins.
 */
#define SCHED_LIMIT_BASE_MS		1000
#define SCHED_LIMIT_CAP_MS		(300LL * 1000)
#define SCHED_LIMIT_MAX_STEP		30
/*
 * FETCH_CREDS_BAD: fetch_credentials_retry (fconf.creds_retry_ms); the
 * other applications of the source wait for the probe's answer.
 */
/* FETCH_STORE_ERROR: the run starts again (the pump waits for the store). */
#define SCHED_STORE_RETRY_MS		3000
/* The pump looks again this often while the store is down. */
#define SCHED_STORE_POLL_MS		1000
/* Jobs kicked (new lease, new credentials) start within this spread. */
#define SCHED_KICK_SPREAD_MS		1000
/* The other jobs of a source whose credentials work again: this spread. */
#define SCHED_RESUME_SPREAD_MS		500

/* Arm a one-shot timer ms from now. */
static void
sched_arm(struct event *ev, int64_t ms)
{
	struct timeval tv;

	if (ms < 0)
		ms = 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	event_add(ev, &tv);
}

int
sched_configure(const struct config *cfg, bool initial, char *err,
    size_t errlen)
{
	struct fetch_conf nc;
	int n;

	memset(&nc, 0, sizeof(nc));
	nc.overlap_ms = config_int(cfg, CONF_FETCH_OVERLAP) * 1000;
	n = config_int_list(config_str(cfg, CONF_FETCH_REREAD_AGES),
	    nc.ages_s, FETCH_MAX_AGES);
	if (n < 0) {
		snprintf(err, errlen, "fetch_reread_ages: expected at most %d "
		    "comma-separated seconds", FETCH_MAX_AGES);
		return -EINVAL;
	}
	nc.nages = n;
	nc.lookback_s = config_int(cfg, CONF_FETCH_INITIAL_LOOKBACK);
	nc.max_conc = (int)config_int(cfg, CONF_FETCH_MAX_CONCURRENCY);
	nc.client_conc = (int)config_int(cfg, CONF_FETCH_CLIENT_CONCURRENCY);
	nc.creds_retry_ms = config_int(cfg, CONF_FETCH_CREDENTIALS_RETRY) *
	    1000;
	nc.timeout_ms = config_int(cfg, CONF_FETCH_TIMEOUT) * 1000;
	nc.lease_ttl_ms = config_int(cfg, CONF_LEASE_TTL) * 1000;
	nc.lease_renew_ms = config_int(cfg, CONF_LEASE_RENEW) * 1000;
	nc.rescan_ms = config_int(cfg, CONF_RESCAN_INTERVAL) * 1000;
	nc.partitions = (int)config_int(cfg, CONF_PARTITION_COUNT);
	if (parts != NULL && nc.partitions != partition_set_count(parts)) {
		log_notice("partition_count %d takes effect at the next start; "
		    "keeping %d", nc.partitions, partition_set_count(parts));
		nc.partitions = partition_set_count(parts);
	}
	nc.min_interval_s = config_int(cfg, CONF_FETCH_MIN_INTERVAL);
	nc.batch_max_logs = config_int(cfg, CONF_DELIVERY_BATCH_MAX_LOGS);
	nc.batch_max_bytes = config_int(cfg, CONF_DELIVERY_BATCH_MAX_BYTES);
	util_strlcpy(nc.token_url, config_str(cfg, CONF_GOOGLE_TOKEN_URL),
	    sizeof(nc.token_url));
	util_strlcpy(nc.api_base, config_str(cfg, CONF_GOOGLE_API_BASE),
	    sizeof(nc.api_base));
	/*
	 * The supervisor names the instance in every Config message
	 * (supervisor/instance.c): the leases are held under that name.
	 */
	if (config_str(cfg, CONF_INSTANCE_ID) == NULL ||
	    config_str(cfg, CONF_INSTANCE_ID)[0] == '\0') {
		snprintf(err, errlen, "no instance_id in the configuration; "
		    "auditrelayd names the instance of its children");
		return -EINVAL;
	}
	util_strlcpy(nc.instance, config_str(cfg, CONF_INSTANCE_ID),
	    sizeof(nc.instance));
	if (crypto_init() != 0) {
		snprintf(err, errlen, "cannot initialise libgcrypt");
		return -EIO;
	}
	if (crypto_master_key_load(config_str(cfg,
	    CONF_CRYPTO_MASTER_KEY_FILE), nc.master, nc.master_id, err,
	    errlen) != 0)
		return -EINVAL;
	nc.have_master = true;
	if (!initial && strcmp(nc.master_id, fconf.master_id) != 0)
		log_notice("master key changed (keyId %s)", nc.master_id);
	memcpy(&fconf, &nc, sizeof(fconf));
	explicit_bzero(&nc, sizeof(nc));
	if (parts != NULL)
		partition_set_reconfigure(parts, fconf.lease_ttl_ms,
		    fconf.lease_renew_ms);
	log_info("fetch settings: overlap %llds, %d re-read ages, lookback "
	    "%llds, concurrency %d (per client %d), instance %s",
	    (long long)fconf.overlap_ms / 1000, fconf.nages,
	    (long long)fconf.lookback_s, fconf.max_conc, fconf.client_conc,
	    fconf.instance);
	if (started)
		sched_pump_later(0);
	return 0;
}

/* Budgets: one per client e-mail. */
static struct fbudget *
budget_get(const char *email)
{
	struct fbudget *b;

	TAILQ_FOREACH(b, &budgets, entry)
		if (strcmp(b->email, email) == 0) {
			b->refs++;
			return b;
		}
	b = util_xcalloc(1, sizeof(*b));
	util_strlcpy(b->email, email, sizeof(b->email));
	b->refs = 1;
	TAILQ_INSERT_TAIL(&budgets, b, entry);
	return b;
}

static void
budget_put(struct fbudget *b)
{
	if (b == NULL || --b->refs > 0)
		return;
	TAILQ_REMOVE(&budgets, b, entry);
	free(b);
}

/* Give back the concurrency slot of a running job. */
static void
job_release(struct fjob *j)
{
	if (j->state == JOB_RUNNING) {
		running--;
		j->src->budget->inflight--;
	}
	if (j->state == JOB_QUEUED)
		TAILQ_REMOVE(&queue, j, qentry);
	j->state = JOB_IDLE;
}

/* Stop whatever the job does; it stays idle without a timer. */
static void
job_stop(struct fjob *j)
{
	driver_abort(j);
	job_release(j);
	evtimer_del(j->timer);
	j->probe = false;
}

/* Interval of a source with jitter, ms. */
static int64_t
src_interval_ms(const struct fsrc *s)
{
	int64_t iv = s->interval_s > 0 ? s->interval_s : 300;

	return backoff_jitter_pct(iv * 1000, SCHED_INTERVAL_JITTER_PCT);
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
			bool others = false;
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
			log_debug("source=%s app=%s %lld new logs",
			    s->id, j->app, (long long)j->run_new);
	}
	j->run_new = 0;
	sched_arm(j->timer, src_interval_ms(s));
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
	int64_t now = util_mono_ms(), d;

	d = backoff_full_jitter(b->attempt, SCHED_LIMIT_BASE_MS,
	    SCHED_LIMIT_CAP_MS);
	if (b->attempt < SCHED_LIMIT_MAX_STEP)
		b->attempt++;
	if (e->retry_after_s > 0 && e->retry_after_s * 1000 > d)
		d = e->retry_after_s * 1000;
	if (now + d > b->blocked_until)
		b->blocked_until = now + d;
	if (!b->limited) {
		log_warn("Google rate-limits client %s (%s); every source of "
		    "this client slows down, retrying in %llds", b->email,
		    e->reason, (long long)d / 1000);
		b->limited = true;
	} else
		log_debug("client %s still rate-limited (%s), next try in "
		    "%lldms", b->email, e->reason, (long long)d);
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
		log_info("Google accepts requests of client %s again; full "
		    "speed resumed", b->email);
	b->attempt = 0;
	b->limited = false;
	b->blocked_until = 0;
	sched_pump_later(0);
}

static void
src_set_error(struct fsrc *s, const char *msg)
{
	if (strcmp(s->last_error, msg) == 0)
		return;
	util_strlcpy(s->last_error, msg, sizeof(s->last_error));
	s->state_dirty = true;
	src_flush_state(s);
}

static bool	alerts_storing;
static void	alerts_flush(void);

/* The head alert is stored (or not): the next one, or retry later. */
static void
alerts_flush_done(struct handoff *h)
{
	struct palert *a = TAILQ_FIRST(&alerts);

	alerts_storing = false;
	if (!child_store_result(h->rc == 0, h->err)) {
		handoff_free(h);
		return;		/* kept; the next alert or rescan retries */
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
static void
alerts_flush(void)
{
	struct palert *a;
	struct handoff *h;
	char id[37];

	if (alerts_storing || (a = TAILQ_FIRST(&alerts)) == NULL ||
	    !child_store_ready() || !store_healthy(child_store()))
		return;
	util_uuid_v4(id);
	h = handoff_new(HANDOFF_INSERT, a->src, NULL);
	util_strlcpy(h->coll, STORE_ALERTS, sizeof(h->coll));
	h->doc = BCON_NEW("_id", BCON_UTF8(id), "sourceId",
	    BCON_UTF8(a->src), "alert", BCON_UTF8(a->kind), "message",
	    BCON_UTF8(a->msg), "at", BCON_INT64(a->at), "state",
	    BCON_UTF8("pending"), "batchId", BCON_NULL);
	h->done = alerts_flush_done;
	if (handoff_submit(h) != 0) {
		handoff_free(h);
		return;
	}
	alerts_storing = true;
}

static void
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
	if (stopping && writing == 0)
		sched_release_all();
	if (s != NULL && s->state_writing) {
		s->state_writing = false;
		if (h->rc != 0)
			s->state_dirty = true;	/* the next rescan retries */
		else
			s->state_written_at = util_mono_ms();
		if (s->state_dirty && s->state_urgent && !stopping)
			src_flush_state(s);
	}
	handoff_free(h);
}

/*
 * Write source_state "<id>:fetch" when it changed (under the lease), on
 * the worker. A new lastFetchAt alone is written at most every
 * SCHED_STATE_EVERY_MS: a poll that found nothing writes nothing.
 */
static void
src_flush_state(struct fsrc *s)
{
	struct handoff *h;
	bson_t *doc;
	const char *status;

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
	doc = BCON_NEW("sourceId", BCON_UTF8(s->id),
	    "status", BCON_UTF8(status));
	if (s->last_fetch_at > 0)
		BSON_APPEND_INT64(doc, "lastFetchAt", s->last_fetch_at);
	else
		BSON_APPEND_NULL(doc, "lastFetchAt");
	if (s->last_error[0] != '\0')
		BSON_APPEND_UTF8(doc, "lastError", s->last_error);
	else
		BSON_APPEND_NULL(doc, "lastError");
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
	util_strlcpy(s->written_error, s->last_error,
	    sizeof(s->written_error));
}

/* Apply a persisted source_state (NULL: none yet) after a take. */
static void
src_state_apply(struct fsrc *s, const bson_t *doc)
{
	const char *st, *le;

	s->state_loaded = true;
	s->state_dirty = true;	/* the new epoch */
	if (doc == NULL)
		return;
	st = store_bson_str(doc, "status");
	le = store_bson_str(doc, "lastError");
	if (st != NULL && strcmp(st, "credentials_invalid") == 0) {
		s->creds_invalid = true;
		s->creds_retry_at = 0;	/* probe at once */
	}
	if (le != NULL)
		util_strlcpy(s->last_error, le, sizeof(s->last_error));
	s->last_fetch_at = store_bson_int(doc, "lastFetchAt", 0);
}

/*
 * The source_state of the sources of a partition just taken, read in
 * one query on the worker thread; they start once it is known.
 */
struct sload {
	int	 part;
	int64_t	 epoch;
	char	 (*ids)[64];
	bson_t	**docs;
	size_t	 n;
	int	 rc;
	char	 err[512];
};

static void
sload_work(void *arg)
{
	struct sload *l = arg;
	mongoc_client_t *c;
	mongoc_collection_t *col;
	mongoc_cursor_t *cur;
	const bson_t *doc;
	bson_t sel, in, arr;
	bson_error_t e;
	char k[16], id[100];
	const char *kp, *did;
	size_t i, n;

	bson_init(&sel);
	bson_append_document_begin(&sel, "_id", -1, &in);
	bson_append_array_begin(&in, "$in", -1, &arr);
	for (i = 0; i < l->n; i++) {
		bson_uint32_to_string((uint32_t)i, &kp, k, sizeof(k));
		snprintf(id, sizeof(id), "%s:fetch", l->ids[i]);
		bson_append_utf8(&arr, kp, -1, id, -1);
	}
	bson_append_array_end(&in, &arr);
	bson_append_document_end(&sel, &in);
	c = store_pop(child_store());
	col = store_coll(child_store(), c, STORE_SOURCE_STATE);
	cur = mongoc_collection_find_with_opts(col, &sel, NULL, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		if ((did = store_bson_str(doc, "_id")) == NULL)
			continue;
		n = strlen(did);
		for (i = 0; i < l->n; i++)
			if (n == strlen(l->ids[i]) + 6 &&
			    strncmp(did, l->ids[i], n - 6) == 0 &&
			    l->docs[i] == NULL)
				l->docs[i] = bson_copy(doc);
	}
	if (mongoc_cursor_error(cur, &e)) {
		snprintf(l->err, sizeof(l->err), "find source_state: %.400s",
		    e.message);
		l->rc = -EIO;
	}
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(col);
	store_push(child_store(), c);
	bson_destroy(&sel);
}

static void
sload_done(void *arg)
{
	struct sload *l = arg;
	struct fsrc *s;
	size_t i;

	child_store_result(l->rc == 0, l->err);
	for (i = 0; i < l->n; i++) {
		s = src_find(l->ids[i]);
		if (s != NULL && s->leased && s->part == l->part &&
		    s->lease.epoch == l->epoch && !stopping) {
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
static void
src_load_start(int part, int64_t epoch, struct fsrc *one)
{
	struct sload *l;
	struct fsrc *s;
	size_t n = 0;

	TAILQ_FOREACH(s, &srcs, entry)
		if (s->part == part && s->leased && (one == NULL || s == one))
			n++;
	if (n == 0)
		return;
	l = util_xcalloc(1, sizeof(*l));
	l->part = part;
	l->epoch = epoch;
	l->ids = util_xcalloc(n, sizeof(*l->ids));
	l->docs = util_xcalloc(n, sizeof(*l->docs));
	TAILQ_FOREACH(s, &srcs, entry)
		if (s->part == part && s->leased && (one == NULL || s == one))
			util_strlcpy(l->ids[l->n++], s->id, sizeof(l->ids[0]));
	if (worker_submit(sload_work, sload_done, l) != 0) {
		free(l->ids);
		free(l->docs);
		free(l);
	}
}

/* Work on s under its partition's lease l; it starts once loaded. */
static void
src_attach(struct fsrc *s, const struct lease *l)
{
	s->lease = *l;
	s->leased = true;
	s->state_loaded = false;
}

/* A partition taken (on the loop): its sources start once loaded. */
static void
sched_partition_gained(void *arg, int part, const struct lease *l)
{
	struct fsrc *s;
	int n = 0;

	(void)arg;
	TAILQ_FOREACH(s, &srcs, entry)
		if (s->part == part) {
			src_attach(s, l);
			n++;
		}
	log_info("partition %s: fetching here (lease epoch %lld, %d "
	    "sources)", l->resource, (long long)l->epoch, n);
	src_load_start(part, l->epoch, NULL);
}

/* A partition renewed: its sources' deadline moves. */
static void
sched_partition_renewed(void *arg, int part, const struct lease *l)
{
	struct fsrc *s;

	(void)arg;
	TAILQ_FOREACH(s, &srcs, entry) {
		if (s->part != part)
			continue;
		if (s->leased && s->lease.epoch == l->epoch) {
			s->lease.deadline_mono = l->deadline_mono;
			continue;
		}
		/* Dropped by a late check, but renewed in time. */
		src_attach(s, l);
		src_load_start(part, l->epoch, s);
	}
}

/* A partition lost or handed over: its sources stop at once. */
static void
sched_partition_lost(void *arg, int part, const struct lease *l,
    bool handover)
{
	struct fsrc *s;
	int n = 0;

	(void)arg;
	TAILQ_FOREACH(s, &srcs, entry)
		if (s->part == part && s->leased) {
			s->leased = false;
			s->lease.held = false;
			src_stop_jobs(s);
			n++;
		}
	if (handover)
		log_info("partition %s: handed over with its %d sources to "
		    "balance %d instances", l->resource, n,
		    partition_set_live(parts));
	else
		log_warn("partition %s: lease lost (epoch %lld); its %d "
		    "sources stopped, another instance may fetch them",
		    l->resource, (long long)l->epoch, n);
	sched_pump_later(0);
}

/*
 * More partitions than our share (another instance joined): a partition
 * none of whose sources is fetching right now may go.
 */
static enum partition_drain
sched_partition_drain(void *arg, int part)
{
	struct fsrc *s;
	size_t i;

	(void)arg;
	TAILQ_FOREACH(s, &srcs, entry)
		if (s->part == part)
			for (i = 0; i < s->njobs; i++)
				if (s->jobs[i]->state == JOB_RUNNING)
					return PARTITION_DRAIN_SKIP;
	return PARTITION_DRAIN_READY;
}

static const struct partition_ops sched_partition_ops = {
	.gained = sched_partition_gained,
	.renewed = sched_partition_renewed,
	.lost = sched_partition_lost,
	.drain = sched_partition_drain,
};

/* FETCH_CREDS_BAD: credentials_invalid, every job probes slowly. */
static void
src_creds_bad(struct fjob *j, const struct google_error *e)
{
	struct fsrc *s = j->src;
	char msg[GOOGLE_DIAG_MAX];
	size_t i;

	s->creds_retry_at = util_mono_ms() + fconf.creds_retry_ms;
	snprintf(msg, sizeof(msg), "%s", e->diagnosis);
	if (!s->creds_invalid) {
		s->creds_invalid = true;
		log_err("source=%s %s; fetching paused, cursor kept, "
		    "retrying every %llds", s->id, msg,
		    (long long)fconf.creds_retry_ms / 1000);
		alert_queue(s, "credentials_invalid", msg);
		/* stop the other applications of this source */
		for (i = 0; i < s->njobs; i++)
			if (s->jobs[i] != j) {
				job_stop(s->jobs[i]);
				sched_arm(s->jobs[i]->timer,
				    fconf.creds_retry_ms);
			}
	} else
		log_info("source=%s credentials still refused (%s); next "
		    "try in %llds", s->id, e->reason,
		    (long long)fconf.creds_retry_ms / 1000);
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
	size_t i;

	if (!s->creds_invalid)
		return;
	s->creds_invalid = false;
	s->creds_retry_at = 0;
	s->last_error[0] = '\0';
	s->state_dirty = true;
	log_notice("source=%s Google accepts the credentials again; "
	    "fetching resumed from the saved cursors", s->id);
	alert_queue(s, "credentials_restored", "Google accepts the "
	    "service-account credentials again; fetching resumed from where "
	    "it stopped");
	src_flush_state(s);
	for (i = 0; i < s->njobs; i++)
		if (s->jobs[i] != j && s->jobs[i]->state == JOB_IDLE)
			sched_arm(s->jobs[i]->timer,
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
		    "failed attempts", j->src->id, j->app, j->attempt);
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
		    "retries logged at debug)", j->src->id, j->app,
		    e->diagnosis, (long long)d / 1000);
		j->failing = true;
	} else
		log_debug("source=%s app=%s %s; retry %u in %lldms",
		    j->src->id, j->app, e->diagnosis, j->attempt,
		    (long long)d);
	job_wait(j, d);
}

/* FETCH_WINDOW_FAILED: lastError says why; the window comes back later. */
static void
job_window_failed(struct fjob *j, const char *what)
{
	char msg[512];
	int64_t d;

	snprintf(msg, sizeof(msg), "%s window %s: %s", j->app,
	    j->kind == WIN_MAIN ? "poll" : "re-read", what);
	j->attempt++;
	d = backoff_full_jitter(j->attempt, SCHED_WINDOW_BASE_MS,
	    SCHED_WINDOW_CAP_MS);
	log_warn("source=%s %s; window dropped, cursor kept, retrying in "
	    "%llds", j->src->id, msg, (long long)d / 1000);
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

/* The job's timer: due, or its backoff is over. */
static void
job_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fjob *j = arg;
	struct fsrc *s = j->src;
	int64_t now = util_mono_ms();

	(void)fd;
	(void)what;
	if (stopping)
		return;
	if (!s->leased || s->gc == NULL) {
		job_stop(j);
		return;
	}
	if (j->state == JOB_WAIT) {
		j->state = JOB_QUEUED;
		TAILQ_INSERT_TAIL(&queue, j, qentry);
		sched_pump_later(0);
		return;
	}
	if (j->state != JOB_IDLE)
		return;
	if (s->creds_invalid) {
		if (now < s->creds_retry_at) {
			sched_arm(j->timer, s->creds_retry_at - now);
			return;
		}
		/* this job probes; the others wait for its answer */
		s->creds_retry_at = now + fconf.creds_retry_ms;
		j->probe = true;
		log_info("source=%s trying the refused credentials again",
		    s->id);
	}
	j->main_done = false;
	j->chunks = 0;
	j->run_new = 0;
	j->state = JOB_QUEUED;
	TAILQ_INSERT_TAIL(&queue, j, qentry);
	sched_pump_later(0);
}

/* Start as many queued jobs as the limits allow. */
static void
sched_pump(void)
{
	struct fjob *j, *nj;
	int64_t now = util_mono_ms(), wake = -1;
	bool again = true;

	if (stopping)
		return;
	while (again) {
		again = false;
		for (j = TAILQ_FIRST(&queue); j != NULL; j = nj) {
			struct fbudget *b = j->src->budget;
			int limit;

			nj = TAILQ_NEXT(j, qentry);
			if (running >= fconf.max_conc)
				break;
			if (!child_store_ready() ||
			    !store_healthy(child_store())) {
				wake = SCHED_STORE_POLL_MS;
				break;
			}
			if (j->src->creds_invalid && !j->probe) {
				TAILQ_REMOVE(&queue, j, qentry);
				j->state = JOB_IDLE;
				sched_arm(j->timer, j->src->creds_retry_at -
				    now);
				continue;
			}
			if (now < b->blocked_until) {
				if (wake < 0 || b->blocked_until - now < wake)
					wake = b->blocked_until - now;
				continue;
			}
			limit = b->attempt > 0 ? 1 : fconf.client_conc;
			if (b->inflight >= limit)
				continue;
			TAILQ_REMOVE(&queue, j, qentry);
			j->state = JOB_RUNNING;
			running++;
			b->inflight++;
			driver_step(j);
			again = true;	/* the queue may have changed */
			break;
		}
	}
	if (wake >= 0)
		sched_arm(ev_pump, wake);
}

static void
pump_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	sched_pump();
}

static void
sched_pump_later(int64_t ms)
{
	if (ev_pump != NULL && !stopping)
		sched_arm(ev_pump, ms);
}

/* Sources. */

static struct fsrc *
src_find(const char *id)
{
	struct fsrc *s;

	TAILQ_FOREACH(s, &srcs, entry)
		if (strcmp(s->id, id) == 0)
			return s;
	return NULL;
}

static void
src_free_jobs(struct fsrc *s)
{
	size_t i;

	for (i = 0; i < s->njobs; i++) {
		job_stop(s->jobs[i]);
		driver_free(s->jobs[i]);
		event_free(s->jobs[i]->timer);
		free(s->jobs[i]);
	}
	free(s->jobs);
	s->jobs = NULL;
	s->njobs = 0;
}

/* Stop all jobs and forget their loaded state (after losing the lease). */
static void
src_stop_jobs(struct fsrc *s)
{
	size_t i;

	for (i = 0; i < s->njobs; i++) {
		job_stop(s->jobs[i]);
		s->jobs[i]->loaded = false;
	}
}

/* Kick every job of a source within a second. */
static void
src_kick(struct fsrc *s)
{
	size_t i;

	for (i = 0; i < s->njobs; i++)
		if (s->jobs[i]->state == JOB_IDLE)
			sched_arm(s->jobs[i]->timer,
			    (int64_t)util_random_below(SCHED_KICK_SPREAD_MS));
}

/* Forget s (removed, paused); its partition may become empty. */
static void
src_remove(struct fsrc *s, const char *why)
{
	log_info("source=%s %s; its fetching stops", s->id, why);
	src_free_jobs(s);
	google_client_free(s->gc);
	budget_put(s->budget);
	TAILQ_REMOVE(&srcs, s, entry);
	free(s);
}

/* FETCH_LEASE_LOST: every job of s stops; nothing is rescheduled. */
static void
src_lease_lost(struct fsrc *s)
{
	if (s->leased)
		log_warn("source=%s lease lost (epoch %lld); stopped, another "
		    "instance may fetch it", s->id,
		    (long long)s->lease.epoch);
	s->leased = false;
	s->lease.held = false;
	src_stop_jobs(s);
	sched_pump_later(0);
}

/* Decrypt the credentials of doc and build the Google client. */
static int
src_build_client(struct fsrc *s, const bson_t *doc, char *err,
    size_t errlen)
{
	struct google_client_opts o;
	struct google_client *gc = NULL;
	bson_iter_t it;
	const uint8_t *nonce = NULL, *ct = NULL;
	uint32_t nlen = 0, ctlen = 0;
	bson_subtype_t sub;
	const char *kid;
	unsigned char *pt = NULL;
	size_t ptlen = 0;
	yajl_val t = NULL;
	char perr[128];
	int rc = -EINVAL;

	kid = store_bson_str(doc, "credentials.keyId");
	if (bson_iter_init(&it, doc) &&
	    bson_iter_find_descendant(&it, "credentials.nonce", &it) &&
	    BSON_ITER_HOLDS_BINARY(&it))
		bson_iter_binary(&it, &sub, &nlen, &nonce);
	if (bson_iter_init(&it, doc) &&
	    bson_iter_find_descendant(&it, "credentials.ct", &it) &&
	    BSON_ITER_HOLDS_BINARY(&it))
		bson_iter_binary(&it, &sub, &ctlen, &ct);
	if (nonce == NULL || ct == NULL || nlen != CRYPTO_NONCE_LEN) {
		snprintf(err, errlen, "stored credentials are incomplete");
		return -EINVAL;
	}
	if (kid != NULL && strcmp(kid, fconf.master_id) != 0) {
		snprintf(err, errlen, "credentials were sealed with another "
		    "master key (keyId %.16s, ours %s)", kid, fconf.master_id);
		return -EINVAL;
	}
	if (creds_open(fconf.master, s->id, "credentials",
	    store_bson_int(doc, "credentialsVersion", 1), nonce, ct, ctlen,
	    &pt, &ptlen, NULL) != 0) {
		snprintf(err, errlen, "cannot decrypt the stored credentials "
		    "(wrong master key?)");
		return -EINVAL;
	}
	if (json_parse((const char *)pt, ptlen, 4, &t, perr,
	    sizeof(perr)) != 0 || json_get_string(t, "privateKey") == NULL) {
		snprintf(err, errlen, "decrypted credentials are not the "
		    "expected JSON");
		goto done;
	}
	memset(&o, 0, sizeof(o));
	o.httpc = hc;
	o.token_url = fconf.token_url;
	o.api_base = fconf.api_base;
	o.client_email = s->client_email;
	o.private_key_pem = json_get_string(t, "privateKey");
	o.private_key_id = json_get_string(t, "privateKeyId");
	o.subject = s->subject;
	o.timeout_ms = fconf.timeout_ms;
	if ((rc = google_client_new(&o, &gc, err, errlen)) != 0)
		goto done;
	google_client_free(s->gc);
	s->gc = gc;
	rc = 0;
done:
	if (t != NULL) {
		/* wipe the key copies held by the tree */
		yajl_val pk = json_get(t, "privateKey");

		if (pk != NULL && YAJL_IS_STRING(pk))
			explicit_bzero(pk->u.string, strlen(pk->u.string));
		yajl_tree_free(t);
	}
	crypto_free_secret(pt, ptlen + 1);
	return rc;
}

/* Application names of a source document; count or -1. */
static int
src_doc_apps(const bson_t *doc, char apps[][64], int max)
{
	bson_iter_t it, a;
	int n = 0;

	if (!bson_iter_init_find(&it, doc, "applications") ||
	    !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &a))
		return -1;
	while (bson_iter_next(&a) && n < max) {
		if (!BSON_ITER_HOLDS_UTF8(&a))
			continue;
		util_strlcpy(apps[n++], bson_iter_utf8(&a, NULL), 64);
	}
	return n;
}

static void
src_make_jobs(struct fsrc *s, char apps[][64], int n)
{
	int i;

	s->jobs = util_xcalloc((size_t)(n > 0 ? n : 1), sizeof(*s->jobs));
	for (i = 0; i < n; i++) {
		struct fjob *j = util_xcalloc(1, sizeof(*j));

		j->src = s;
		util_strlcpy(j->app, apps[i], sizeof(j->app));
		j->timer = evtimer_new(child_base(), job_timer_cb, j);
		if (j->timer == NULL)
			fatal("out of memory");
		s->jobs[s->njobs++] = j;
	}
}

/* Apply one source document (new or changed). */
static void
src_apply(const bson_t *doc)
{
	const char *id = store_bson_str(doc, "_id");
	const char *email = store_bson_str(doc, "clientEmail");
	const char *subject = store_bson_str(doc, "subject");
	char apps[64][64], err[512];
	struct fsrc *s;
	int napps, i;
	int64_t ver;
	bool fresh = false, same_apps;

	if (id == NULL || email == NULL || strlen(id) >= sizeof(s->id))
		return;
	if (store_bson_bool(doc, "paused", false)) {
		if ((s = src_find(id)) != NULL) {
			s->seen = true;
			src_remove(s, "paused");
		}
		return;
	}
	if ((napps = src_doc_apps(doc, apps, 64)) < 0)
		napps = 0;
	ver = store_bson_int(doc, "credentialsVersion", 0);
	if ((s = src_find(id)) == NULL) {
		s = util_xcalloc(1, sizeof(*s));
		util_strlcpy(s->id, id, sizeof(s->id));
		s->part = partition_set_of(parts, id);
		util_strlcpy(s->client_email, email, sizeof(s->client_email));
		util_strlcpy(s->subject, subject != NULL ? subject : "",
		    sizeof(s->subject));
		s->budget = budget_get(email);
		s->creds_version = ver;
		TAILQ_INSERT_TAIL(&srcs, s, entry);
		fresh = true;
		log_info("source=%s %d applications every %llds (client %s)",
		    id, napps, (long long)store_bson_int(doc,
		    "logFetchInterval", 300), email);
	}
	s->seen = true;
	s->interval_s = store_bson_int(doc, "logFetchInterval", 300);
	if (s->interval_s < 1)
		s->interval_s = 1;
	s->lookback_s = store_bson_int(doc, "initialLookback", 0);

	same_apps = (size_t)napps == s->njobs;
	for (i = 0; same_apps && i < napps; i++)
		if (strcmp(s->jobs[i]->app, apps[i]) != 0)
			same_apps = false;
	if (!same_apps) {
		if (!fresh)
			log_info("source=%s applications changed", id);
		src_free_jobs(s);
		src_make_jobs(s, apps, napps);
		if (s->leased)
			src_kick(s);
	}

	if (fresh || ver != s->creds_version || strcmp(email,
	    s->client_email) != 0 || strcmp(subject != NULL ? subject : "",
	    s->subject) != 0) {
		bool rotated = !fresh;

		if (strcmp(email, s->client_email) != 0) {
			budget_put(s->budget);
			s->budget = NULL;
			util_strlcpy(s->client_email, email,
			    sizeof(s->client_email));
			s->budget = budget_get(email);
		}
		util_strlcpy(s->subject, subject != NULL ? subject : "",
		    sizeof(s->subject));
		s->creds_version = ver;
		/* jobs hold ops of the old client: stop them first */
		if (rotated)
			src_stop_jobs(s);
		if (src_build_client(s, doc, err, sizeof(err)) != 0) {
			log_err("source=%s %s; not fetching until its "
			    "credentials are replaced", id, err);
			google_client_free(s->gc);
			s->gc = NULL;
			s->creds_bad_local = true;
			src_set_error(s, err);
			return;
		}
		s->creds_bad_local = false;
		if (rotated) {
			log_info("source=%s new credentials (version %lld); "
			    "resuming at once", id, (long long)ver);
			s->creds_retry_at = 0;
			s->state_dirty = true;
		}
		if (s->leased)
			src_kick(s);
	}
}

/*
 * The sources documents, read on the worker thread, then applied on the
 * loop in slices (a new source decrypts its key and builds its client:
 * a thousand at once would hold the loop for seconds).
 */
#define RESCAN_SLICE_MS	20

struct srescan {
	bson_t		**docs;
	size_t		 n, cap;
	size_t		 next;		/* applied so far */
	struct event	*ev;
	int		 rc;
	char		 err[512];
};

static void
srescan_work(void *arg)
{
	struct srescan *r = arg;
	struct store *st = child_store();
	mongoc_client_t *c;
	mongoc_collection_t *col;
	mongoc_cursor_t *cur;
	const bson_t *doc;
	bson_t q = BSON_INITIALIZER;
	bson_error_t e;

	c = store_pop(st);
	col = store_coll(st, c, STORE_SOURCES);
	cur = mongoc_collection_find_with_opts(col, &q, NULL, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		if (r->n == r->cap) {
			bson_t **nd;

			r->cap = r->cap ? r->cap * 2 : 64;
			if ((nd = realloc(r->docs, r->cap *
			    sizeof(*nd))) == NULL) {
				snprintf(r->err, sizeof(r->err), "out of "
				    "memory reading the sources");
				r->rc = -ENOMEM;
				break;
			}
			r->docs = nd;
		}
		r->docs[r->n++] = bson_copy(doc);
	}
	if (r->rc == 0 && mongoc_cursor_error(cur, &e)) {
		snprintf(r->err, sizeof(r->err), "find sources: %.400s",
		    e.message);
		r->rc = -EIO;
	}
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(col);
	store_push(st, c);
	bson_destroy(&q);
}

static void
srescan_free(struct srescan *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		bson_destroy(r->docs[i]);
	free(r->docs);
	if (r->ev != NULL)
		event_free(r->ev);
	free(r);
	rescan_busy = false;
	if (rescan_again && !stopping) {
		rescan_again = false;
		sched_arm(ev_rescan, 0);
	}
}

/* Loop: every document applied; drop the rest, want, hand over. */
static void
srescan_finish(struct srescan *r)
{
	struct fsrc *s, *ns;
	struct lease l;

	for (s = TAILQ_FIRST(&srcs); s != NULL; s = ns) {
		ns = TAILQ_NEXT(s, entry);
		if (!s->seen)
			src_remove(s, "removed");
	}
	partition_set_sync_begin(parts);
	TAILQ_FOREACH(s, &srcs, entry) {
		/* A new source in a partition held already. */
		if (partition_set_sync_source(parts, s->part, &l) &&
		    !s->leased) {
			src_attach(s, &l);
			src_load_start(s->part, l.epoch, s);
		}
	}
	partition_set_sync_end(parts);
	TAILQ_FOREACH(s, &srcs, entry)
		src_flush_state(s);
	alerts_flush();
	srescan_free(r);
}

/* Loop: apply the next slice of documents; the last one finishes. */
static void
srescan_apply_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srescan *r = arg;
	int64_t until = util_mono_ms() + RESCAN_SLICE_MS;

	(void)fd;
	(void)what;
	if (stopping) {
		srescan_free(r);
		return;
	}
	while (r->next < r->n && util_mono_ms() < until) {
		const bson_t *doc = r->docs[r->next++];
		const char *t = store_bson_str(doc, "sourceType");

		if (t != NULL && strcmp(t, "google_workspace") != 0)
			continue;
		src_apply(doc);
	}
	if (r->next < r->n) {
		/* A timer, not event_active: I/O (pings) is polled first. */
		sched_arm(r->ev, 0);
		return;
	}
	srescan_finish(r);
}

/* Loop: the sources were read; reconcile, a slice at a time. */
static void
srescan_done(void *arg)
{
	struct srescan *r = arg;
	struct fsrc *s;

	if (stopping || !child_store_result(r->rc == 0, r->err)) {
		srescan_free(r);	/* keep everything as it was */
		return;
	}
	if ((r->ev = evtimer_new(child_base(), srescan_apply_cb, r)) == NULL)
		fatal("out of memory");
	TAILQ_FOREACH(s, &srcs, entry)
		s->seen = false;
	srescan_apply_cb(-1, 0, r);
}

/* Read every source of the store (on the worker) and reconcile. */
static void
sched_rescan(void)
{
	struct srescan *r;

	if (!child_store_ready() || !store_healthy(child_store()))
		return;
	if (rescan_busy) {
		rescan_again = true;
		return;
	}
	r = util_xcalloc(1, sizeof(*r));
	if (worker_submit(srescan_work, srescan_done, r) != 0) {
		free(r);
		return;
	}
	rescan_busy = true;
}

static void
rescan_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (stopping)
		return;
	sched_rescan();
	sched_arm(ev_rescan, fconf.rescan_ms);
}

/* Report the partition set's store calls like our own. */
static void
sched_partition_store(bool ok, const char *err)
{
	child_store_result(ok, err);
}

void
sched_start(void)
{
	struct partition_conf pc;
	char err[256];
	int rc;

	if (started)
		return;
	if ((hc = httpc_new(child_base())) == NULL)
		fatal("cannot create the HTTP client");
	if ((rc = worker_start(child_base())) != 0)
		fatal("cannot start the store worker: %s", strerror(-rc));
	memset(&pc, 0, sizeof(pc));
	pc.role = "fetch";
	pc.instance = fconf.instance;
	pc.count = fconf.partitions;
	pc.ttl_ms = fconf.lease_ttl_ms;
	pc.renew_ms = fconf.lease_renew_ms;
	pc.store_fn = sched_partition_store;
	parts = partition_set_new(child_base(), child_store(), &pc,
	    &sched_partition_ops, NULL, err, sizeof(err));
	if (parts == NULL)
		fatal("%s", err);
	ev_rescan = evtimer_new(child_base(), rescan_cb, NULL);
	ev_pump = evtimer_new(child_base(), pump_cb, NULL);
	if (ev_rescan == NULL || ev_pump == NULL)
		fatal("out of memory");
	sched_arm(ev_rescan, 0);
	started = true;
}

static void
sched_released(void *arg)
{
	(void)arg;
	if (stop_done != NULL)
		stop_done();
}

/* Stopping, the states written: now the partitions go. */
static void
sched_release_all(void)
{
	if (releasing)
		return;
	releasing = true;
	partition_set_shutdown(parts, sched_released, NULL);
}

void
sched_stop(void (*done)(void))
{
	struct fsrc *s;

	if (!started) {
		done();
		return;
	}
	TAILQ_FOREACH(s, &srcs, entry)
		src_stop_jobs(s);
	stopping = true;
	stop_done = done;
	/* Store the states (the worker may run them side by side)... */
	TAILQ_FOREACH(s, &srcs, entry) {
		src_flush_state(s);
		s->leased = false;
	}
	/* ...then hand the partitions over, once the last one is written. */
	if (writing == 0)
		sched_release_all();
}

void
sched_source_changed(const char *id, bool removed)
{
	struct fsrc *s;

	if (removed) {
		if ((s = src_find(id)) != NULL)
			src_remove(s, "removed");
		return;
	}
	if (ev_rescan != NULL && !stopping)
		sched_arm(ev_rescan, 0);
}

int
sched_store_setup(struct store *st, char *err, size_t errlen)
{
	/* seen_* partitions need only their unique _id; batches: deliverd. */
	return lease_setup_indexes(st, err, errlen);
}
