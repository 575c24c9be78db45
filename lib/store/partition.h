/*
 * A leased-partition set: ownership of sources by partition, not by
 * source. Every source id hashes (FNV-1a) into one of a fixed number of
 * partitions (config partition_count, the same on every instance); a
 * daemon role ("fetch", "deliver") holds a lease "<role>:p<N>" per
 * partition it works (lib/store/lease.h documents: inserted
 * "<resource>#<epoch>" documents, the epoch fences writes). A source is
 * worked by this instance iff its partition is held.
 *
 * The whole take / renew / check / release cycle runs on a worker thread
 * of its own (lib/store/worker.h) and costs a handful of store calls whatever
 * the number of partitions or sources: one read of the role's lease
 * documents, one update for every renewal, one for every release, an
 * insert per partition taken, one delete of the epochs it superseded.
 * Results come back to the event loop, which never waits on the store
 * for ownership; a renewal that cannot reach the store keeps a partition
 * until its local monotonic deadline, then drops it.
 *
 * Fair share: only partitions that hold sources (partition_set_sync_*) are
 * taken, up to ceil(wanted / live instances); lease_live_instances counts
 * the instances. A lease whose newest document names this very instance
 * as holder belonged to a previous copy of this daemon (the supervisor
 * runs one copy per instance and restarts a child only after reaping it),
 * so it is taken again at once with epoch + 1, without waiting for its
 * expiry.
 */
#ifndef AR_LIB_PARTITION_H
#define AR_LIB_PARTITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "lib/store/lease.h"

#define PARTITION_COUNT_DEFAULT 64
#define PARTITION_COUNT_MAX	4096

struct store;
struct partition_set;

/*
 * What a daemon does when its partitions change hands, called on the
 * loop. The set keeps which partitions are held; the daemon keeps its
 * table of sources and starts or stops them.
 */
enum partition_drain {
	PARTITION_DRAIN_READY, /* idle: hand it over now */
	PARTITION_DRAIN_WAIT,  /* draining: ask again after the next sync */
	PARTITION_DRAIN_SKIP   /* busy: try another partition */
};

struct partition_ops {
	/* part was taken under l (a new epoch): start its sources. */
	void (*gained)(void *arg, int part, const struct lease *l);
	/* part is still held: l has a later deadline. */
	void (*renewed)(void *arg, int part, const struct lease *l);
	/*
	 * part is no longer this instance's: a newer epoch exists or its
	 * deadline passed (handover false), or it is handed over to balance
	 * the instances (handover true; its lease is released right after).
	 * Stop its sources.
	 */
	void (*lost)(void *arg, int part, const struct lease *l, bool handover);
	/*
	 * More partitions held than the fair share: may part be handed over
	 * now? NULL: always ready.
	 */
	enum partition_drain (*drain)(void *arg, int part);
};

struct partition_conf {
	const char *role;     /* "fetch", "deliver" */
	const char *instance; /* holder name, stable across restarts */
	int	    count;    /* partitions, 1..PARTITION_COUNT_MAX */
	int64_t	    ttl_ms;
	int64_t	    renew_ms;
	/* Told the outcome of every cycle's store calls (may be NULL). */
	void (*store_fn)(bool ok, const char *err);
};

/* The partition of a source id among count partitions (FNV-1a 32). */
int partition_index(const char *source_id, int count);

/*
 * A set for one role; starts its worker thread and a one-second tick on
 * base. NULL with err[] on error.
 */
struct partition_set *partition_set_new(struct event_base *base,
    struct store *st, const struct partition_conf *conf,
    const struct partition_ops *ops, void *arg, char *err, size_t errlen);
/* New ttl / renew interval (the count and role stay). */
void partition_set_reconfigure(struct partition_set *ps, int64_t ttl_ms,
    int64_t renew_ms);
int  partition_set_count(const struct partition_set *ps);
/* The partition of a source id in this set. */
int partition_set_of(const struct partition_set *ps, const char *id);

/*
 * After every re-read of the sources, the daemon tells the set which
 * partitions hold sources, and attaches the sources of partitions held:
 *
 *	partition_set_sync_begin(ps);
 *	for each source s of the table:
 *		if (partition_set_sync_source(ps, s->part, &l) && !attached)
 *			start s under l;
 *	partition_set_sync_end(ps);
 *
 * Partitions wanted and not held are taken by the next cycle (within the
 * fair share); held ones no longer wanted are released; past the fair
 * share one partition at a time is handed over (ops->drain, then
 * ops->lost with handover true, then its lease is released).
 */
void partition_set_sync_begin(struct partition_set *ps);
/*
 * A source of the table is in part. True, with the lease into *l, when
 * part is held here and not being handed over.
 */
bool partition_set_sync_source(struct partition_set *ps, int part,
    struct lease *l);
void partition_set_sync_end(struct partition_set *ps);
/* Run a cycle as soon as possible. */
void partition_set_kick(struct partition_set *ps);

/*
 * True while part is held and before its local deadline; the lease
 * (resource "<role>:p<N>", epoch, deadline) into *out when not NULL.
 */
bool partition_set_holds(const struct partition_set *ps, int part,
    struct lease *out);
/* Partitions held now. */
int partition_set_held(const struct partition_set *ps);
/* This instance's fair share of the wanted partitions. */
int partition_set_share(const struct partition_set *ps);
/* Live instances, as last counted. */
int partition_set_live(const struct partition_set *ps);
/*
 * Leaving: stop the cycles, release every lease of this instance and
 * role on the worker, then call done(arg) on the loop (also when the
 * store fails). The set must not be used afterwards but for
 * partition_set_free().
 */
void partition_set_shutdown(struct partition_set *ps, void (*done)(void *arg),
    void					 *arg);
/* Free the set (its worker thread stays parked). NULL is a no-op. */
void partition_set_free(struct partition_set *ps);

#endif
