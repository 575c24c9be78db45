/*
 * Pruning what delivered batches leave behind (see prune.c).
 */
#ifndef AR_DELIVERD_PRUNE_H
#define AR_DELIVERD_PRUNE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Delivered metadata is kept this long: every update of `batches` scans
 * it on FerretDB, so it holds what is pending and only a few seconds of
 * what was delivered (the sweep keeps any whose intent still exists).
 */
#define PRUNE_KEEP_DELIVERED_MS (15LL * 1000)

/* Start the pruning timer (once). */
void prune_start(void);
/* batch_id got its 2xx (its record is being written). */
void prune_recent(const char *batch_id);
/* Its record is written (kept PRUNE_RECENT_KEEP_MS more, for loads). */
void prune_recorded(const char *batch_id);
/*
 * Its record is written: a body in coll `bodies` (older versions) or
 * bodies_dead (a replayed dead letter) goes with the next bulk delete;
 * one in a bodies_* partition goes with its partition.
 */
void prune_body(const char *batch_id, const char *coll);
/* Its record failed: it is pending again, a load may queue it. */
void prune_forget(const char *batch_id);
/*
 * True when batch_id was delivered here and a read of the store begun
 * at read_at (wall ms; 0: any) may still have found it pending: its
 * record not written yet, or written since read_at. A load must not
 * queue it again, nor a late hint.
 */
bool prune_recently_delivered(const char *batch_id, int64_t read_at);
/* How many delivered ids are remembered (for the status line). */
size_t prune_recent_count(void);

#endif
