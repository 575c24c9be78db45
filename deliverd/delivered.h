/*
 * The batches delivered here whose 2xx a read of the store may not show
 * yet (see delivered.c).
 */
#ifndef AR_DELIVERD_DELIVERED_H
#define AR_DELIVERD_DELIVERED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How long an id is kept after its record was written. */
#define DELIVERED_KEEP_MS (10LL * 60 * 1000)

/* batch_id got its 2xx at now (wall ms); its record is being written. */
void delivered_add(const char *batch_id, int64_t now);
/* Its record is written (at now). */
void delivered_recorded(const char *batch_id, int64_t now);
/* Its record failed: it is pending again, a load may queue it. */
void delivered_forget(const char *batch_id);
/*
 * True when batch_id was delivered here and a read of the store begun at
 * read_at (wall ms; 0: any read) may still have found it pending: its
 * record not written yet, or written since read_at. Such a read must not
 * queue it again, nor may a late hint.
 */
bool delivered_hides(const char *batch_id, int64_t read_at);
/* How many ids are kept. */
size_t delivered_count(void);
/* Forget them all (tests). */
void delivered_clear(void);

#endif
