/*
 * Handlers of a source's backfills: POST, GET and DELETE
 * /sources/:id/backfill (backfill.c).
 */
#ifndef AR_APID_BACKFILL_H
#define AR_APID_BACKFILL_H

struct areq;

void backfill_post(struct areq *a);
void backfill_get(struct areq *a);
void backfill_delete(struct areq *a);

#endif
