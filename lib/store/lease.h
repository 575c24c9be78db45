/*
 * Leases in the store: ownership of a unit of work (a source's fetching, a
 * source's delivery queue) by one instance at a time, with an epoch that
 * fences writes. A lease is an inserted document "<resource>#<epoch>"
 * (unique _id), so taking one is atomic on FerretDB 1.24 too. See
 * docs/STORE.md.
 */
#ifndef AR_LIB_LEASE_H
#define AR_LIB_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

struct lease {
	char	resource[160];
	int64_t epoch;
	int64_t deadline_mono; /* stop work before this (ms) */
	bool	held;
};

/*
 * Try to take resource for holder. 1 taken (lease filled), 0 someone else
 * holds it (or won the race), -EIO store error.
 */
int lease_take(struct store *s, const char *resource, const char *holder,
    int64_t ttl_ms, struct lease *l, char *err, size_t errlen);
/*
 * Renew a held lease. 0 renewed, -ESTALE lost to a newer epoch (l->held
 * cleared), -EIO store error (still held until deadline_mono).
 */
int lease_renew(struct store *s, struct lease *l, const char *holder,
    int64_t ttl_ms, char *err, size_t errlen);
/* Give a held lease up so another instance may take it at once. */
int lease_release(struct store *s, struct lease *l, char *err, size_t errlen);
/* True while held and before its local deadline. */
bool lease_valid(const struct lease *l);
/*
 * Fencing check: 0 when no epoch newer than l's exists for its resource,
 * -ESTALE otherwise, -EIO on error.
 */
int lease_check(struct store *s, const struct lease *l, char *err,
    size_t errlen);

/*
 * Instances: each heartbeats {_id: instance, seenAt}; live instances are
 * those seen within ttl. Used to take a fair share of the work.
 */
int lease_heartbeat(struct store *s, const char *instance, char *err,
    size_t errlen);
int lease_live_instances(struct store *s, int64_t ttl_ms, char *err,
    size_t errlen);
/* Create the leases index (idempotent); call from store_setup. */
int lease_setup_indexes(struct store *s, char *err, size_t errlen);

/* The fair share of n resources among live instances: ceil(n / live). */
int lease_fair_share(int n, int live);

#endif
