/*
 * The fetch scheduler: the sources of the store (re-read every
 * rescan_interval and on SourceChanged hints, on the worker thread), the
 * leased partitions of sources (lib/store/partition.h: a source is fetched here
 * iff its partition "fetch:p<N>" is held), a timer per (source,
 * application) with jitter, and a FIFO of due jobs bounded by an overall
 * concurrency and one per Google client (service account e-mail). What
 * becomes of a run is report.c's (sched_report), the stored state of a
 * source srcstate.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

#include "fetcherd/fetcherd.h"
#include "fetcherd/sched.h"
#include "lib/base/json.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/partition.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

struct fetch_conf fconf;

struct fsrc_list srcs = TAILQ_HEAD_INITIALIZER(srcs);
static TAILQ_HEAD(, fjob) queue = TAILQ_HEAD_INITIALIZER(queue);
/* Running jobs back from the store, waiting for a slot to go on. */
static TAILQ_HEAD(, fjob) resume = TAILQ_HEAD_INITIALIZER(resume);
static struct httpc	    *hc;
static struct event	    *ev_rescan, *ev_pump;
static int		     running;
static bool		     started, stopping;
static struct partition_set *parts;
static bool		     rescan_busy, rescan_again;
static int64_t		     rescan_took; /* ms, the last read of sources */
static bool		     rescanned;	  /* one rescan is applied */
static char		   **bf_known;	  /* its backfill request ids */
static size_t		     nbf_known;
static void (*stop_done)(void);
static bool releasing;

/* Arm a one-shot timer ms from now. */
void
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
	int		  n;

	memset(&nc, 0, sizeof(nc));
	nc.overlap_ms = config_int(cfg, CONF_FETCH_OVERLAP) * 1000;
	n = config_reread_ladder(config_str(cfg, CONF_FETCH_REREAD_AGES),
	    nc.ages_s, FETCH_MAX_AGES, &nc.nbase, &nc.tuned);
	if (n < 0) {
		snprintf(err, errlen,
		    "fetch_reread_ages: expected auto, auto:A,B,... or at "
		    "most %d comma-separated seconds",
		    FETCH_MAX_AGES);
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
			   "keeping %d",
		    nc.partitions, partition_set_count(parts));
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
		snprintf(err, errlen,
		    "no instance_id in the configuration; "
		    "auditrelayd names the instance of its children");
		return -EINVAL;
	}
	util_strlcpy(nc.instance, config_str(cfg, CONF_INSTANCE_ID),
	    sizeof(nc.instance));
	if (crypto_init() != 0) {
		snprintf(err, errlen, "cannot initialise libgcrypt");
		return -EIO;
	}
	if (crypto_master_key_load(config_str(cfg, CONF_CRYPTO_MASTER_KEY_FILE),
		nc.master, nc.master_id, err, errlen) != 0)
		return -EINVAL;
	nc.have_master = true;
	if (!initial && strcmp(nc.master_id, fconf.master_id) != 0)
		log_notice("master key changed keyid=%s", nc.master_id);
	memcpy(&fconf, &nc, sizeof(fconf));
	explicit_bzero(&nc, sizeof(nc));
	if (parts != NULL)
		partition_set_reconfigure(parts, fconf.lease_ttl_ms,
		    fconf.lease_renew_ms);
	log_info("fetch settings: overlap %llds, %d re-read ages (%s), "
		 "lookback %llds, concurrency %d (per client %d) instance=%s",
	    (long long)fconf.overlap_ms / 1000, fconf.nbase,
	    fconf.tuned ? "tuned per application, up to 2 more" : "fixed",
	    (long long)fconf.lookback_s, fconf.max_conc, fconf.client_conc,
	    fconf.instance);
	if (started)
		sched_pump_later(0);
	return 0;
}

/* The run of a job ends: its slot (if it holds one) goes back. */
void
job_release(struct fjob *j)
{
	job_slot_put(j);
	if (j->resuming) {
		TAILQ_REMOVE(&resume, j, qentry);
		j->resuming = false;
	}
	if (j->state == JOB_QUEUED)
		TAILQ_REMOVE(&queue, j, qentry);
	j->state = JOB_IDLE;
}

/*
 * Slots count requests to Google, not store work: a job waiting on the
 * store (a page, a cursor, a count) gives its slot back, so that a slow
 * store does not hold back the polls of other sources (their pages then
 * join the same group commit, fetcherd/handoff.c).
 */
void
job_slot_put(struct fjob *j)
{
	if (!j->holds_slot)
		return;
	j->holds_slot = false;
	running--;
	j->src->budget->inflight--;
	if (!TAILQ_EMPTY(&resume) || !TAILQ_EMPTY(&queue))
		sched_pump_later(0);
}

/*
 * Backfill jobs take a slot only while at most half of them are busy:
 * the live polls always have the other half.
 */
static bool
job_bf_room(const struct fjob *j)
{
	int half = fconf.max_conc / 2 > 0 ? fconf.max_conc / 2 : 1;

	return j->bf == NULL || running < half;
}

/* Whether j's client may have one more request in flight now. */
static bool
job_client_free(struct fjob *j, int64_t now, int64_t *wake)
{
	struct fbudget *b = j->src->budget;

	if (now < b->blocked_until) {
		if (*wake < 0 || b->blocked_until - now < *wake)
			*wake = b->blocked_until - now;
		return false;
	}
	return b->inflight < (b->attempt > 0 ? 1 : fconf.client_conc);
}

static void
job_slot_hold(struct fjob *j)
{
	j->holds_slot = true;
	running++;
	j->src->budget->inflight++;
}

bool
job_slot_take(struct fjob *j)
{
	int64_t wake = -1;

	if (j->holds_slot)
		return true;
	if (!j->resuming && TAILQ_EMPTY(&resume) && running < fconf.max_conc &&
	    job_bf_room(j) && job_client_free(j, util_mono_ms(), &wake)) {
		job_slot_hold(j);
		return true;
	}
	if (!j->resuming) {
		TAILQ_INSERT_TAIL(&resume, j, qentry);
		j->resuming = true;
	}
	sched_pump_later(wake > 0 ? wake : 0);
	return false;
}

/* Stop whatever the job does; it stays idle without a timer. */
void
job_stop(struct fjob *j)
{
	driver_abort(j);
	job_release(j);
	evtimer_del(j->timer);
	j->probe = false;
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
	int	     n = 0;

	(void)arg;
	TAILQ_FOREACH (s, &srcs, entry)
		if (s->part == part) {
			src_attach(s, l);
			n++;
		}
	log_info("partition=%s fetching here (epoch=%lld, %d "
		 "sources)",
	    l->resource, (long long)l->epoch, n);
	src_load_start(part, l->epoch, NULL);
	pstate_leased(part, l);
}

/* A partition renewed: its sources' deadline moves. */
static void
sched_partition_renewed(void *arg, int part, const struct lease *l)
{
	struct fsrc *s;

	(void)arg;
	pstate_leased(part, l);
	TAILQ_FOREACH (s, &srcs, entry) {
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
sched_partition_lost(void *arg, int part, const struct lease *l, bool handover)
{
	struct fsrc *s;
	int	     n = 0;

	(void)arg;
	TAILQ_FOREACH (s, &srcs, entry)
		if (s->part == part && s->leased) {
			s->leased = false;
			s->lease.held = false;
			src_stop_jobs(s);
			n++;
		}
	pstate_lost(part);
	if (handover)
		log_info("partition=%s handed over with its %d sources to "
			 "balance %d instances",
		    l->resource, n, partition_set_live(parts));
	else
		log_warn("partition=%s lease lost (epoch=%lld); its %d "
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
	size_t	     i;

	(void)arg;
	TAILQ_FOREACH (s, &srcs, entry)
		if (s->part == part) {
			for (i = 0; i < s->njobs; i++)
				if (s->jobs[i]->state == JOB_RUNNING)
					return PARTITION_DRAIN_SKIP;
			if (s->bfjob != NULL && s->bfjob->state == JOB_RUNNING)
				return PARTITION_DRAIN_SKIP;
		}
	/* Its state written first: the next holder starts from it. */
	return pstate_drain_ready(part) ? PARTITION_DRAIN_READY :
					  PARTITION_DRAIN_WAIT;
}

static const struct partition_ops sched_partition_ops = {
	.gained = sched_partition_gained,
	.renewed = sched_partition_renewed,
	.lost = sched_partition_lost,
	.drain = sched_partition_drain,
};

/* The job's timer: due, or its backoff is over. */
static void
job_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fjob *j = arg;
	struct fsrc *s = j->src;
	int64_t	     now = util_mono_ms();

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
	if (j->bf != NULL && !backfill_ready(j))
		return; /* nothing to backfill: idle until a request */
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
	j->due_mono = now;
	j->state = JOB_QUEUED;
	TAILQ_INSERT_TAIL(&queue, j, qentry);
	sched_pump_later(0);
}

/* Start as many queued jobs as the limits allow. */
static void
sched_pump(void)
{
	struct fjob *j, *nj;
	int64_t	     now = util_mono_ms(), wake = -1;
	bool	     again = true;

	if (stopping)
		return;
	while (again) {
		again = false;
		/* Runs back from the store first: they are mid-window. */
		for (j = TAILQ_FIRST(&resume); j != NULL; j = nj) {
			nj = TAILQ_NEXT(j, qentry);
			if (running >= fconf.max_conc)
				break;
			if (!job_bf_room(j)) {
				if (wake < 0)
					wake = SCHED_STORE_POLL_MS;
				continue;
			}
			if (!job_client_free(j, now, &wake))
				continue;
			TAILQ_REMOVE(&resume, j, qentry);
			j->resuming = false;
			job_slot_hold(j);
			driver_request(j);
			again = true;
			break;
		}
		if (again)
			continue;
		for (j = TAILQ_FIRST(&queue); j != NULL; j = nj) {
			struct fbudget *b = j->src->budget;
			int		limit;

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
				sched_arm(j->timer,
				    j->src->creds_retry_at - now);
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
			if (!job_bf_room(j)) {
				if (wake < 0)
					wake = SCHED_STORE_POLL_MS;
				continue;
			}
			TAILQ_REMOVE(&queue, j, qentry);
			j->state = JOB_RUNNING;
			job_slot_hold(j);
			driver_step(j);
			again = true; /* the queue may have changed */
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

void
sched_pump_later(int64_t ms)
{
	if (ev_pump != NULL && !stopping)
		sched_arm(ev_pump, ms);
}

/* Sources. */

/*
 * The sources by id, hashed: a rescan or a partition's load looks up
 * every source of the store (10 000 of them) without a walk of the list.
 */
#define SRC_HASH_SIZE 4096
static struct fsrc *src_hash[SRC_HASH_SIZE];

static struct fsrc **
src_hash_slot(const char *id)
{
	/* The FNV-1a 32 hash the partitions use, over more buckets. */
	return &src_hash[partition_index(id, SRC_HASH_SIZE)];
}

static void
src_hash_add(struct fsrc *s)
{
	struct fsrc **slot = src_hash_slot(s->id);

	s->hnext = *slot;
	*slot = s;
}

static void
src_hash_del(struct fsrc *s)
{
	struct fsrc **p;

	for (p = src_hash_slot(s->id); *p != NULL; p = &(*p)->hnext)
		if (*p == s) {
			*p = s->hnext;
			return;
		}
}

struct fsrc *
src_find(const char *id)
{
	struct fsrc *s;

	for (s = *src_hash_slot(id); s != NULL; s = s->hnext)
		if (strcmp(s->id, id) == 0)
			return s;
	return NULL;
}

/* A job of s (not yet scheduled) reading app. */
struct fjob *
job_new(struct fsrc *s, const char *app)
{
	struct fjob *j = util_xcalloc(1, sizeof(*j));

	j->src = s;
	util_strlcpy(j->app, app, sizeof(j->app));
	j->timer = evtimer_new(child_base(), job_timer_cb, j);
	if (j->timer == NULL)
		fatal("out of memory");
	return j;
}

void
job_free(struct fjob *j)
{
	if (j == NULL)
		return;
	job_stop(j);
	driver_free(j);
	event_free(j->timer);
	free(j->bf);
	free(j);
}

static void
src_free_jobs(struct fsrc *s)
{
	size_t i;

	for (i = 0; i < s->njobs; i++)
		job_free(s->jobs[i]);
	free(s->jobs);
	s->jobs = NULL;
	s->njobs = 0;
	job_free(s->bfjob);
	s->bfjob = NULL;
}

/* Stop all jobs and forget their loaded state (after losing the lease). */
void
src_stop_jobs(struct fsrc *s)
{
	size_t i;

	for (i = 0; i < s->njobs; i++) {
		job_stop(s->jobs[i]);
		s->jobs[i]->loaded = false;
	}
	if (s->bfjob != NULL) {
		job_stop(s->bfjob);
		s->bfjob->loaded = false;
	}
}

/* Kick every job of a source within a second. */
void
src_kick(struct fsrc *s)
{
	size_t i;

	for (i = 0; i < s->njobs; i++)
		if (s->jobs[i]->state == JOB_IDLE)
			sched_arm(s->jobs[i]->timer,
			    (int64_t)util_random_below(SCHED_KICK_SPREAD_MS));
	if (s->bfjob != NULL && s->bfjob->state == JOB_IDLE)
		sched_arm(s->bfjob->timer,
		    (int64_t)util_random_below(SCHED_KICK_SPREAD_MS));
}

/* Forget s (removed, paused); its partition may become empty. */
static void
src_remove(struct fsrc *s, const char *why)
{
	log_info("source=%s %s; its fetching stops", s->id, why);
	if (strcmp(why, "removed") == 0)
		pstate_gone(s->id, s->part);
	src_free_jobs(s);
	backfill_free(s);
	google_client_free(s->gc);
	budget_put(s->budget);
	if (s->fentry != NULL)
		bson_destroy(s->fentry);
	src_hash_del(s);
	TAILQ_REMOVE(&srcs, s, entry);
	free(s);
}

/* Decrypt the credentials of doc and build the Google client. */
static int
src_build_client(struct fsrc *s, const bson_t *doc, char *err, size_t errlen)
{
	struct google_client_opts o;
	struct google_client	 *gc = NULL;
	bson_iter_t		  it;
	const uint8_t		 *nonce = NULL, *ct = NULL;
	uint32_t		  nlen = 0, ctlen = 0;
	bson_subtype_t		  sub;
	const char		 *kid;
	unsigned char		 *pt = NULL;
	size_t			  ptlen = 0;
	yajl_val		  t = NULL;
	char			  perr[128];
	int			  rc = -EINVAL;

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
		snprintf(err, errlen,
		    "credentials were sealed with another "
		    "master key (keyid=%.16s, ours %s)",
		    kid, fconf.master_id);
		return -EINVAL;
	}
	if (creds_open(fconf.master, s->id, "credentials",
		store_bson_int(doc, "credentialsVersion", 1), nonce, ct, ctlen,
		&pt, &ptlen, NULL) != 0) {
		snprintf(err, errlen,
		    "cannot decrypt the stored credentials "
		    "(wrong master key?)");
		return -EINVAL;
	}
	if (json_parse((const char *)pt, ptlen, 4, &t, perr, sizeof(perr)) !=
		0 ||
	    json_get_string(t, "privateKey") == NULL) {
		snprintf(err, errlen,
		    "decrypted credentials are not the "
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
	int	    n = 0;

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
		s->jobs[s->njobs++] = job_new(s, apps[i]);
	}
}

/*
 * Apply one source document (new or changed): the source, or NULL when
 * it is not fetched here (malformed, paused).
 */
static struct fsrc *
src_apply(const bson_t *doc)
{
	const char  *id = store_bson_str(doc, "_id");
	const char  *email = store_bson_str(doc, "clientEmail");
	const char  *subject = store_bson_str(doc, "subject");
	char	     apps[64][64], err[512];
	struct fsrc *s;
	int	     napps, i;
	int64_t	     ver;
	bool	     fresh = false, same_apps;

	if (id == NULL || email == NULL || strlen(id) >= sizeof(s->id))
		return NULL;
	if (store_bson_bool(doc, "paused", false)) {
		if ((s = src_find(id)) != NULL) {
			s->seen = true;
			src_remove(s, "paused");
		}
		return NULL;
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
		src_hash_add(s);
		fresh = true;
		log_info("source=%s %d applications every %llds (client=%s)",
		    id, napps,
		    (long long)store_bson_int(doc, "logFetchInterval", 300),
		    email);
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

	if (fresh || ver != s->creds_version ||
	    strcmp(email, s->client_email) != 0 ||
	    strcmp(subject != NULL ? subject : "", s->subject) != 0) {
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
				"credentials are replaced",
			    id, err);
			google_client_free(s->gc);
			s->gc = NULL;
			s->creds_bad_local = true;
			src_set_error(s, err);
			return s;
		}
		s->creds_bad_local = false;
		if (rotated) {
			log_info("source=%s new credentials (version=%lld); "
				 "resuming at once",
			    id, (long long)ver);
			s->creds_retry_at = 0;
			s->state_dirty = true;
		}
		if (s->leased)
			src_kick(s);
	}
	return s;
}

/*
 * The sources documents, read on the worker thread, then applied on the
 * loop in slices (a new source decrypts its key and builds its client:
 * a thousand at once would hold the loop for seconds).
 */
#define RESCAN_SLICE_MS 20

/* A backfill request read by a rescan, with its source. */
struct rescan_bf {
	char		    sid[64];
	int64_t		    created_at;
	struct backfill_req req;
};

struct srescan {
	int64_t		  took_ms; /* the read */
	bson_t		**docs;
	size_t		  n;
	struct rescan_bf *bf; /* sorted by source, then age */
	size_t		  nbf;
	size_t		  next; /* applied so far */
	struct event	 *ev;
	int		  rc;
	char		  err[512];
};

static int
rescan_bf_cmp(const void *a, const void *b)
{
	const struct rescan_bf *x = a, *y = b;
	int			c = strcmp(x->sid, y->sid);

	if (c != 0)
		return c;
	if (x->created_at != y->created_at)
		return x->created_at < y->created_at ? -1 : 1;
	return strcmp(x->req.id, y->req.id);
}

/* Worker: one backfill request (a malformed one is skipped). */
static int
srescan_bf_one(const bson_t *doc, void *arg)
{
	struct srescan	 *r = arg;
	struct rescan_bf *b, *nb;
	const char	 *id = store_bson_str(doc, "_id");
	const char	 *sid = store_bson_str(doc, "sourceId");
	const char	 *app = store_bson_str(doc, "application");

	if (id == NULL || sid == NULL || app == NULL ||
	    strlen(id) >= sizeof(b->req.id) || strlen(sid) >= sizeof(b->sid) ||
	    strlen(app) >= sizeof(b->req.app))
		return 0;
	if ((nb = reallocarray(r->bf, r->nbf + 1, sizeof(*nb))) == NULL)
		return -ENOMEM;
	r->bf = nb;
	b = &nb[r->nbf];
	memset(b, 0, sizeof(*b));
	util_strlcpy(b->sid, sid, sizeof(b->sid));
	util_strlcpy(b->req.id, id, sizeof(b->req.id));
	util_strlcpy(b->req.app, app, sizeof(b->req.app));
	b->req.from = store_bson_int(doc, "from", 0);
	b->req.to = store_bson_int(doc, "to", 0);
	b->created_at = store_bson_int(doc, "createdAt", 0);
	if (b->req.from > 0 && b->req.to > b->req.from)
		r->nbf++;
	return 0;
}

/* Loop: hand s the backfill requests of the rescan that are its own. */
static void
srescan_apply_bf(struct srescan *r, struct fsrc *s)
{
	struct backfill_req reqs[FETCH_BACKFILL_MAX];
	size_t		    lo = 0, hi = r->nbf, n = 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(r->bf[mid].sid, s->id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < r->nbf && strcmp(r->bf[lo].sid, s->id) == 0; lo++)
		if (n < FETCH_BACKFILL_MAX)
			reqs[n++] = r->bf[lo].req;
	backfill_apply(s, reqs, n);
}

static void
srescan_work(void *arg)
{
	struct srescan *r = arg;
	bson_t		q = BSON_INITIALIZER;
	int64_t		t0 = util_mono_ms();

	r->took_ms = 0;
	r->rc = store_find_all(child_store(), STORE_SOURCES, &q, NULL, &r->docs,
	    &r->n, r->err, sizeof(r->err));
	if (r->rc == 0)
		r->rc = store_each(child_store(), STORE_BACKFILLS, &q, NULL,
		    srescan_bf_one, r, r->err, sizeof(r->err));
	bson_destroy(&q);
	if (r->nbf > 1)
		qsort(r->bf, r->nbf, sizeof(*r->bf), rescan_bf_cmp);
	r->took_ms = util_mono_ms() - t0;
}

static void
srescan_free(struct srescan *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		bson_destroy(r->docs[i]);
	free(r->docs);
	free(r->bf);
	rescan_took = r->took_ms;
	if (r->ev != NULL)
		event_free(r->ev);
	free(r);
	rescan_busy = false;
	if (rescan_again && !stopping) {
		rescan_again = false;
		sched_arm(ev_rescan, 0);
	}
}

/*
 * The ids of the sources of the last rescan, paused ones too, sorted:
 * the fetch state of a source not among them goes (pstate.c).
 */
static char   **known;
static size_t	nknown;
static uint64_t rescans;

uint64_t
sched_rescans(void)
{
	return rescans;
}

bool
sched_known(const char *id)
{
	return nknown > 0 &&
	    bsearch(&id, known, nknown, sizeof(*known), util_strp_cmp) != NULL;
}

static void
srescan_known(const struct srescan *r)
{
	const char *id;
	size_t	    i;

	for (i = 0; i < nknown; i++)
		free(known[i]);
	free(known);
	known = util_xcalloc(r->n + 1, sizeof(*known));
	for (i = 0, nknown = 0; i < r->n; i++)
		if ((id = store_bson_str(r->docs[i], "_id")) != NULL)
			known[nknown++] = util_xstrdup(id);
	if (nknown > 1)
		qsort(known, nknown, sizeof(*known), util_strp_cmp);
	rescans++;
}

/* Loop: every document applied; drop the rest, want, hand over. */
static void
srescan_finish(struct srescan *r)
{
	struct fsrc *s, *ns;
	struct lease l;
	size_t	     i;

	srescan_known(r);
	for (s = TAILQ_FIRST(&srcs); s != NULL; s = ns) {
		ns = TAILQ_NEXT(s, entry);
		if (!s->seen)
			src_remove(s, "removed");
	}
	partition_set_sync_begin(parts);
	TAILQ_FOREACH (s, &srcs, entry) {
		/* A new source in a partition held already. */
		if (partition_set_sync_source(parts, s->part, &l) &&
		    !s->leased) {
			src_attach(s, &l);
			src_load_start(s->part, l.epoch, s);
		}
	}
	partition_set_sync_end(parts);
	TAILQ_FOREACH (s, &srcs, entry)
		src_flush_state(s);
	alerts_flush();
	/* Every request, of paused sources too: their progress stays. */
	for (i = 0; i < nbf_known; i++)
		free(bf_known[i]);
	free(bf_known);
	bf_known = r->nbf > 0 ? util_xcalloc(r->nbf, sizeof(char *)) : NULL;
	for (i = 0; i < r->nbf; i++)
		bf_known[i] = util_xstrdup(r->bf[i].req.id);
	nbf_known = r->nbf;
	rescanned = true;
	srescan_free(r);
}

/* Loop: apply the next slice of documents; the last one finishes. */
static void
srescan_apply_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srescan *r = arg;
	int64_t		until = util_mono_ms() + RESCAN_SLICE_MS;

	(void)fd;
	(void)what;
	if (stopping) {
		srescan_free(r);
		return;
	}
	while (r->next < r->n && util_mono_ms() < until) {
		const bson_t *doc = r->docs[r->next++];
		const char   *t = store_bson_str(doc, "sourceType");
		struct fsrc  *s;

		if (t != NULL && strcmp(t, "google_workspace") != 0)
			continue;
		if ((s = src_apply(doc)) != NULL)
			srescan_apply_bf(r, s);
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
	struct fsrc    *s;

	if (stopping || !child_store_result(r->rc == 0, r->err)) {
		srescan_free(r); /* keep everything as it was */
		return;
	}
	if ((r->ev = evtimer_new(child_base(), srescan_apply_cb, r)) == NULL)
		fatal("out of memory");
	TAILQ_FOREACH (s, &srcs, entry)
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
	sched_arm(ev_rescan, store_rescan_delay(fconf.rescan_ms, rescan_took));
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
	char		      err[256];
	int		      rc;

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
	pstate_init(child_base(), partition_set_count(parts));
	ev_rescan = evtimer_new(child_base(), rescan_cb, NULL);
	ev_pump = evtimer_new(child_base(), pump_cb, NULL);
	if (ev_rescan == NULL || ev_pump == NULL)
		fatal("out of memory");
	sched_arm(ev_rescan, 0);
	quota_start();
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
void
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
	TAILQ_FOREACH (s, &srcs, entry)
		src_stop_jobs(s);
	stopping = true;
	quota_stop();
	stop_done = done;
	/* Store the states (the worker may run them side by side)... */
	TAILQ_FOREACH (s, &srcs, entry) {
		src_flush_cursors(s);
		src_flush_state(s);
	}
	pstate_flush_all();
	TAILQ_FOREACH (s, &srcs, entry)
		s->leased = false;
	/* ...then hand the partitions over, once the last one is written. */
	if (src_state_writes() == 0)
		sched_release_all();
}

bool
sched_backfill_ids(char ***ids, size_t *n)
{
	size_t i;

	*ids = NULL;
	*n = 0;
	if (!rescanned)
		return false;
	if (nbf_known > 0)
		*ids = util_xcalloc(nbf_known, sizeof(char *));
	for (i = 0; i < nbf_known; i++)
		(*ids)[i] = util_xstrdup(bf_known[i]);
	*n = nbf_known;
	return true;
}

bool
sched_stopping(void)
{
	return stopping;
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
