/*
 * The ids a fetch job stored lately, in memory: the overlap that every
 * poll reads again (fetch_overlap) returns the same events over and
 * over, and without this each of them would be inserted into a seen_*
 * partition again only to be refused as a duplicate, a store call per
 * event per poll. A log whose id is here is known stored (its page was
 * committed: ids are added only after their page store succeeded), so it
 * is counted as a duplicate without asking the store; any other log goes
 * to the store, which stays the truth (the seen_* unique index).
 *
 * Bounded: ids of events older than the horizon given to recent_expire()
 * are dropped, and past RECENT_MAX ids nothing more is added (the store
 * then de-duplicates them, as it would without this). Cleared when a page
 * store fails (recovery may delete seen ids). Not thread-safe: the loop's.
 */
#ifndef AR_FETCHERD_RECENT_H
#define AR_FETCHERD_RECENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RECENT_MAX (1u << 17) /* ids per job: 3 MiB */

struct recent;

struct recent *recent_new(void);
void	       recent_free(struct recent *);
void	       recent_clear(struct recent *);
/* True when id (32 hex chars, a log id) is in the set. */
bool recent_has(const struct recent *, const char *id);
/* Add id of an event at time_ms (a no-op past RECENT_MAX or if bad). */
void recent_add(struct recent *, const char *id, int64_t time_ms);
/* Drop the ids of events before horizon_ms. */
void   recent_expire(struct recent *, int64_t horizon_ms);
size_t recent_count(const struct recent *);

#endif
