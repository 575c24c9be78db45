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
/*
 * Its record is written: a body in coll `bodies` (older versions) or
 * bodies_dead (a replayed dead letter) goes with the next bulk delete;
 * one in a bodies_* partition goes with its partition.
 */
void prune_body(const char *batch_id, const char *coll);

#endif
