/*
 * Pruning what delivered batches leave behind (see prune.c).
 */
#ifndef AR_DELIVERD_PRUNE_H
#define AR_DELIVERD_PRUNE_H

#include <stdbool.h>

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
/*
 * Its record is written: a body in coll `bodies` (older versions) or
 * bodies_dead (a replayed dead letter) goes with the next bulk delete;
 * one in a bodies_* partition goes with its partition.
 */
void prune_body(const char *batch_id, const char *coll);
/* Its record failed: it is pending again, a load may queue it. */
void prune_forget(const char *batch_id);
/*
 * True when batch_id was delivered recently: a load that read it as
 * pending before its 2xx was recorded must not queue it again.
 */
bool prune_recently_delivered(const char *batch_id);

#endif
