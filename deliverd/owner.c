/*
 * Which sources deliverd works: those of the partitions whose lease
 * "deliver:p<N>" it holds (lib/store/partition.h). A partition gained takes
 * its sources over (their delivery state, then their queues); a partition
 * lost or handed over stops them.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliverd/deliverd.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/fstate.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

static struct partition_set *parts;

/*
 * The delivery state of sources just taken (lastDeliveryAt, a 410 Gone
 * to remember, counters: their entries in the partition's document,
 * state.c), read in one find on the worker thread, with the whole
 * document when the partition's is not in memory yet; each source is
 * busy meanwhile, then its queue is taken over (queue_takeover_start).
 */
struct dtake {
	int		 part;
	int64_t		 epoch;
	bool		 whole, found;
	struct dsource **srcs;
	const char     **ids;
	bson_t	       **docs;
	bson_t		*sources;
	size_t		 n;
	int		 rc;
	char		 err[512];
};

static void
deliverd_take_work(void *arg)
{
	struct dtake *t = arg;

	t->rc = dstate_load(child_store(), partition_set_count(parts), t->part,
	    t->ids, t->n, t->docs, &t->found, t->whole ? &t->sources : NULL,
	    t->err, sizeof(t->err));
}

/* Apply an entry of the delivery state (NULL: none) to s just taken. */
static void
deliverd_take_apply(struct dsource *s, const bson_t *doc)
{
	const char *st, *gu;

	s->state_ready = true;
	if (doc == NULL)
		return;
	s->st_logs = store_bson_int(doc, "stats.deliveredLogs", 0);
	s->st_batches = store_bson_int(doc, "stats.deliveredBatches", 0);
	s->st_fail = store_bson_int(doc, "stats.failedAttempts", 0);
	s->st_dead = store_bson_int(doc, "stats.deadBatches", 0);
	s->st_pruned = store_bson_int(doc, "stats.deadLettersPruned", 0);
	st = store_bson_str(doc, "status");
	gu = store_bson_str(doc, "goneUrl");
	s->last_delivery_at = store_bson_int(doc, "lastDeliveryAt", 0);
	if (st != NULL && strcmp(st, "callback_gone") == 0 && gu != NULL &&
	    s->url != NULL && strcmp(gu, s->url) == 0) {
		s->gone = true;
		s->status = "callback_gone";
		free(s->gone_url);
		s->gone_url = util_xstrdup(gu);
	}
}

static void
deliverd_take_done(void *arg)
{
	struct dtake   *t = arg;
	struct dsource *s;
	size_t		i;

	(void)child_store_result(t->rc >= 0, t->err);
	if (t->rc == 0 && t->whole) {
		deliverd_state_base(t->part, t->epoch,
		    t->sources != NULL ? t->sources : bson_new(), t->found);
		t->sources = NULL;
	}
	for (i = 0; i < t->n; i++) {
		s = t->srcs[i];
		s->busy = false;
		if (!s->zombie && s->lease.held) {
			if (t->rc != 0)
				s->reload = true;
			else if (s->lease.epoch == t->epoch)
				deliverd_take_apply(s, t->docs[i]);
		}
		deliverd_source_job_end(NULL, s);
		if (t->docs[i] != NULL)
			bson_destroy(t->docs[i]);
	}
	if (t->sources != NULL)
		bson_destroy(t->sources);
	free(t->srcs);
	free(t->ids);
	free(t->docs);
	free(t);
}

/*
 * Sources of partition part (only one when one is not NULL) now work
 * under lease l: reset their delivery state, then read what the store
 * remembers of them and take their queues over, on the worker thread.
 */
void
deliverd_sources_taken(int part, const struct lease *l, struct dsource *one)
{
	struct dsource *s;
	struct dtake   *t;
	size_t		n = 0;

	TAILQ_FOREACH (s, deliverd_sources(), entry) {
		if (s->part != part || (one != NULL && s != one))
			continue;
		s->lease = *l;
		atomic_store(&s->lease_deadline, l->deadline_mono);
		s->logs_dirty = s->alerts_dirty = true;
		s->reload = false;
		s->ready = false;
		s->handover = false;
		breaker_init(&s->br, deliverd_conf()->breaker_threshold);
		s->status = "ok";
		s->written_status = NULL;
		s->state_ready = false;
		s->st_logs = s->st_batches = s->st_fail = s->st_dead = 0;
		s->st_pruned = 0;
		if (s->busy)
			s->reload = true; /* its job's end takes over */
		else
			n++;
	}
	if (n == 0)
		return;
	t = util_xcalloc(1, sizeof(*t));
	t->part = part;
	t->epoch = l->epoch;
	t->whole = !deliverd_state_read(part, l->epoch);
	t->srcs = util_xcalloc(n, sizeof(*t->srcs));
	t->ids = util_xcalloc(n, sizeof(*t->ids));
	t->docs = util_xcalloc(n, sizeof(*t->docs));
	/* The ids are read on the worker: s->id does not change. */
	TAILQ_FOREACH (s, deliverd_sources(), entry)
		if (s->part == part && (one == NULL || s == one) && !s->busy) {
			t->ids[t->n] = s->id;
			t->srcs[t->n++] = s;
		}
	if (worker_submit(deliverd_take_work, deliverd_take_done, t) != 0) {
		for (n = 0; n < t->n; n++)
			t->srcs[n]->reload = true; /* the rescan retries */
		free(t->srcs);
		free(t->ids);
		free(t->docs);
		free(t);
		return;
	}
	for (n = 0; n < t->n; n++)
		t->srcs[n]->busy = true;
}

/* Stop the sources of part: lost, or handed over. */
static int
deliverd_partition_stop(int part)
{
	struct dsource *s;
	int		n = 0;

	TAILQ_FOREACH (s, deliverd_sources(), entry) {
		if (s->part != part || !s->lease.held)
			continue;
		deliverd_source_idle(s);
		s->lease.held = false;
		s->handover = false;
		n++;
	}
	return n;
}

/* A partition taken (on the loop): its sources start. */
static void
deliverd_partition_gained(void *arg, int part, const struct lease *l)
{
	struct dsource *s;
	int		n = 0;

	TAILQ_FOREACH (s, deliverd_sources(), entry)
		if (s->part == part)
			n++;
	log_info("partition=%s delivering here (epoch=%lld, %d sources)",
	    l->resource, (long long)l->epoch, n);
	deliverd_state_lease(part, l);
	deliverd_sources_taken(part, l, NULL);
}

/* A partition renewed: its sources' deadline moves. */
static void
deliverd_partition_renewed(void *arg, int part, const struct lease *l)
{
	struct dsource *s;

	deliverd_state_lease(part, l);
	TAILQ_FOREACH (s, deliverd_sources(), entry) {
		if (s->part != part || !s->lease.held ||
		    s->lease.epoch != l->epoch)
			continue;
		s->lease.deadline_mono = l->deadline_mono;
		atomic_store(&s->lease_deadline, l->deadline_mono);
	}
}

/* A partition lost or handed over: its sources stop at once. */
static void
deliverd_partition_lost(void *arg, int part, const struct lease *l,
    bool handover)
{
	int n = deliverd_partition_stop(part);

	deliverd_state_forget(part);
	if (handover)
		log_info("partition=%s handed over with its %d sources to "
			 "balance %d instances",
		    l->resource, n, partition_set_live(parts));
	else
		log_warn(
		    "partition=%s lease lost or not renewed in time "
		    "(epoch=%lld); deliveries of its %d sources stop until "
		    "it is taken again",
		    l->resource, (long long)l->epoch, n);
}

/*
 * More partitions than our share (another instance joined): a partition
 * is drained (no new batches, in-flight POSTs finish, its delivery state
 * written) before its lease goes, one at a time, so that the work spreads
 * out.
 */
static enum partition_drain
deliverd_partition_drain(void *arg, int part)
{
	struct dsource *s;
	bool		idle = true;

	TAILQ_FOREACH (s, deliverd_sources(), entry) {
		if (s->part != part || !s->lease.held)
			continue;
		s->handover = true;
		if (s->busy || s->inflight > 0)
			idle = false;
	}
	if (idle && !deliverd_state_drain(part))
		idle = false;
	return idle ? PARTITION_DRAIN_READY : PARTITION_DRAIN_WAIT;
}

static const struct partition_ops deliverd_partition_ops = {
	.gained = deliverd_partition_gained,
	.renewed = deliverd_partition_renewed,
	.lost = deliverd_partition_lost,
	.drain = deliverd_partition_drain,
};

/* The partition_count in effect (any thread: set once at the start). */
int
deliverd_partition_count(void)
{
	return partition_set_count(parts);
}

/* The partition of a source id. */
int
deliverd_partition_of(const char *id)
{
	return partition_set_of(parts, id);
}

/*
 * After a rescan: want the partitions that hold sources, start the new
 * sources of partitions held already, hand over past our share.
 */
void
deliverd_partitions_sync(void)
{
	struct dsource *s;
	struct lease	l;

	partition_set_sync_begin(parts);
	TAILQ_FOREACH (s, deliverd_sources(), entry)
		if (partition_set_sync_source(parts, s->part, &l) &&
		    !s->lease.held)
			deliverd_sources_taken(s->part, &l, s);
	partition_set_sync_end(parts);
}

/* Leaving: every lease released, then done(arg). */
void
deliverd_partitions_shutdown(void (*done)(void *), void *arg)
{
	partition_set_shutdown(parts, done, arg);
}

/* A reload: new lease timings (the count stays until a restart). */
void
deliverd_partitions_configure(const struct config *cfg)
{
	partition_set_reconfigure(parts, deliverd_conf()->lease_ttl_ms,
	    deliverd_conf()->lease_renew_ms);
	if (config_int(cfg, CONF_PARTITION_COUNT) != partition_set_count(parts))
		log_notice("partition_count %lld takes effect at the next "
			   "start; keeping %d",
		    (long long)config_int(cfg, CONF_PARTITION_COUNT),
		    partition_set_count(parts));
}

/* Report the partition set's store calls like our own. */
static void
deliverd_partition_store(bool ok, const char *err)
{
	(void)child_store_result(ok, err);
}

/* The partition set of role "deliver" for instance. 0 or -errno. */
int
deliverd_partitions_init(const struct config *cfg, const char *instance,
    char *err, size_t errlen)
{
	struct partition_conf pc;

	memset(&pc, 0, sizeof(pc));
	pc.role = "deliver";
	pc.instance = instance;
	pc.count = (int)config_int(cfg, CONF_PARTITION_COUNT);
	pc.ttl_ms = deliverd_conf()->lease_ttl_ms;
	pc.renew_ms = deliverd_conf()->lease_renew_ms;
	pc.store_fn = deliverd_partition_store;
	deliverd_state_init(pc.count);
	parts = partition_set_new(child_base(), child_store(), &pc,
	    &deliverd_partition_ops, NULL, err, errlen);
	return parts != NULL ? 0 : -EINVAL;
}
