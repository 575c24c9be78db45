/*
 * Handlers of a source's backfills: POST, GET and DELETE
 * /sources/:id/backfill (backfill.c).
 */
#ifndef AR_APID_BACKFILL_H
#define AR_APID_BACKFILL_H

#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

struct areq;

/* The counters of a job's progress document, as the API names them. */
#define BACKFILL_NCOUNTERS 5
extern const char *const backfill_counters[BACKFILL_NCOUNTERS];

/* Requests (`backfills`) and their jobs' progress (`cursors`, or NULL). */
struct bf_list {
	bson_t **reqs;
	bson_t **progs;
	size_t	 n;
};

/* Where a request stands, from its request and progress documents. */
struct bf_progress {
	const char *state; /* "queued", "running" or "done" */
	double	    ratio; /* of from..to read and stored */
	int64_t	    from, to, next, started, updated, finished; /* ms */
	int64_t	    eta_s;			  /* -1: not known */
	int64_t	    counters[BACKFILL_NCOUNTERS]; /* backfill_counters */
};

/*
 * The requests of source sid (NULL: of every source), oldest first, with
 * their progress: two finds (store work: a worker thread). 0, or -EIO
 * with err[]; backfill_list_free() it.
 */
int backfill_load(const char *sid, struct bf_list *l, char *err, size_t errlen);
void backfill_list_free(struct bf_list *l);
void backfill_progress(const bson_t *req, const bson_t *prog,
    struct bf_progress *p);

void backfill_post(struct areq *a);
void backfill_get(struct areq *a);
void backfill_delete(struct areq *a);

#endif
