/*
 * The store side of a source's batches.
 *
 * fetcherd cuts the batches of logs itself (fetcherd/handoff.h: one
 * document per page chunk, sealed "pending" with its exact body and
 * webhook-id); deliverd only reads the pending batches of the sources it
 * holds, sends them and records each attempt. It never reads or writes
 * a log. Alert batches are built here (alerts.c) from the alerts
 * collection.
 *
 * Every store call runs on the worker threads (lib/store/worker.h), never
 * on the loop: scans, records of attempts, and the reads of bodies that
 * no hint brought (queue_bodies_start: on FerretDB a read by _id scans
 * its collection, a partition of bodies here).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliverd/deliverd.h"
#include "deliverd/delivered.h"
#include "deliverd/prune.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/batch/batch.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

/* Bodies held from hints, in bytes (at most DELIVERD_BODY_CACHE_MAX). */
static size_t cached_bytes;
/* Wall ms: batches cut before it were hinted to no one here. */
static int64_t queue_started_at;

/* The table of sources, and whom to tell that a job of one ended. */
static struct dsource_q *queue_sources;
static void (*queue_done_fn)(void *arg, struct dsource *s);
static void *queue_done_arg;

void
queue_init(struct dsource_q *sources,
    void (*done)(void *arg, struct dsource *s), void *arg)
{
	queue_sources = sources;
	queue_started_at = util_now_ms();
	queue_done_fn = done;
	queue_done_arg = arg;
}

void
queue_alerts_raised(const char *sid)
{
	struct dsource *s;

	if ((s = dsource_find(queue_sources, sid)) == NULL)
		return;
	s->alerts_dirty = true;
	queue_done_fn(queue_done_arg, s);
}

/* A batch as loaded or built, handed from the worker to the loop. */
struct qinfo {
	char	 sid[64];
	char	 id[40];
	char	 wid[48];
	bool	 inline_body;
	int64_t	 created_at, next_at, age_base;
	unsigned n_attempts, n_errors;
	int64_t	 nlogs;
	bool	 replayed;
	char	 body_coll[STORE_BODY_COLL_MAX];
	char	*body; /* alert batches built here: their body (owned) */
	size_t	 body_len;
};

enum qjob_kind {
	QJ_TAKEOVER,
	QJ_LOAD,
	QJ_ALERTS,
	QJ_LOAD_ALL, /* every source's pending batches, one scan */
};

struct qjob {
	enum qjob_kind	kind;
	char		sid[64];
	int64_t		epoch;
	struct dsource *src; /* lease deadline; kept alive */
	int64_t		now;
	/* Output. */
	int	      rc;
	char	      err[512];
	struct qinfo *b;
	size_t	      nb, capb;
	int	      nremarked;
	bool	      more; /* QJ_ALERTS: a full build */
};

static void
qjob_add(struct qjob *j, const struct qinfo *in)
{
	struct qinfo *nb;

	if (j->nb == j->capb) {
		j->capb = j->capb ? j->capb * 2 : 16;
		if ((nb = realloc(j->b, j->capb * sizeof(*nb))) == NULL)
			abort();
		j->b = nb;
	}
	j->b[j->nb++] = *in;
}

/* Worker: fn on every document found; a store error goes into j. */
static void
qjob_each(struct qjob *j, const char *coll, const bson_t *filter,
    const bson_t *opts, store_each_fn fn, void *arg)
{
	char err[512];
	int  rc;

	rc = store_each(child_store(), coll, filter, opts, fn, arg, err,
	    sizeof(err));
	if (rc < 0 && j->rc == 0) {
		j->rc = rc;
		util_strlcpy(j->err, err, sizeof(j->err));
	}
}

/* Append the string ids as a BSON array under key of doc. */
static void
queue_bson_ids(bson_t *doc, const char *key, const char *const *ids, size_t n)
{
	bson_t	    arr;
	char	    k[16];
	const char *kp;
	size_t	    i;

	bson_append_array_begin(doc, key, -1, &arr);
	for (i = 0; i < n; i++) {
		bson_uint32_to_string((uint32_t)i, &kp, k, sizeof(k));
		bson_append_utf8(&arr, kp, -1, ids[i], -1);
	}
	bson_append_array_end(doc, &arr);
}

/* Collect the strings of an array field of doc. */
static size_t
queue_array_strs(const bson_t *doc, const char *key, char ***out)
{
	bson_iter_t it, ch;
	char	  **v = NULL, **nv;
	size_t	    n = 0;

	*out = NULL;
	if (!bson_iter_init_find(&it, doc, key) ||
	    !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &ch))
		return 0;
	while (bson_iter_next(&ch)) {
		if (!BSON_ITER_HOLDS_UTF8(&ch))
			continue;
		if ((nv = realloc(v, (n + 1) * sizeof(*v))) == NULL)
			break;
		v = nv;
		v[n++] = util_xstrdup(bson_iter_utf8(&ch, NULL));
	}
	*out = v;
	return n;
}

static void
queue_strs_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Insert b into s's queue, ordered by creation time. */
void
queue_insert_sorted(struct dsource *s, struct dbatch *b)
{
	struct dbatch *x;

	TAILQ_FOREACH_REVERSE (x, &s->queue, dbatch_q, entry)
		if (x->created_at <= b->created_at)
			break;
	if (x == NULL)
		TAILQ_INSERT_HEAD(&s->queue, b, entry);
	else
		TAILQ_INSERT_AFTER(&s->queue, x, b, entry);
	s->nqueue++;
}

void
queue_remove(struct dsource *s, struct dbatch *b)
{
	TAILQ_REMOVE(&s->queue, b, entry);
	s->nqueue--;
	if (b->body != NULL) {
		cached_bytes -= b->body_len;
		free(b->body);
	}
	free(b);
}

/* Find a queued batch by id. */
static struct dbatch *
queue_find(struct dsource *s, const char *id)
{
	struct dbatch *b;

	TAILQ_FOREACH (b, &s->queue, entry)
		if (strcmp(b->id, id) == 0)
			return b;
	return NULL;
}

/* Attach body (taken) to b, counted in the cache. */
static void
queue_body_attach(struct dbatch *b, char *body, size_t len)
{
	if (b->body != NULL) {
		cached_bytes -= b->body_len;
		free(b->body);
	}
	b->body = body;
	b->body_len = len;
	cached_bytes += len;
}

void
queue_body_trim(struct dbatch *b)
{
	if (b->body == NULL || cached_bytes <= DELIVERD_BODY_CACHE_MAX)
		return;
	cached_bytes -= b->body_len;
	free(b->body);
	b->body = NULL;
	b->body_len = 0;
}

/*
 * Bodies that no hint brought (a restart, a lost hint, a body past the
 * frame or the cache, an alert batch read back) are read on the worker,
 * those a source is about to send, QBODY_MAX at a time: one find per
 * collection named ({_id: {$in}}, one scan of a partition for all).
 */
#define QBODY_MAX 16

struct qbody {
	char   id[40];
	char   coll[STORE_BODY_COLL_MAX];
	char  *body; /* out, malloc'd */
	size_t len;
};

struct qbodies {
	char	     sid[64];
	struct qbody b[QBODY_MAX];
	size_t	     n;
	int	     rc;
	char	     err[512];
};

static int
qbodies_one(const bson_t *doc, void *arg)
{
	struct qbodies *qb = arg;
	const char     *id = store_bson_str(doc, "_id");
	bson_iter_t	it;
	const char     *v;
	uint32_t	l = 0;
	size_t		i;

	if (id == NULL || !bson_iter_init_find(&it, doc, "body") ||
	    !BSON_ITER_HOLDS_UTF8(&it))
		return 0;
	v = bson_iter_utf8(&it, &l);
	for (i = 0; i < qb->n; i++)
		if (qb->b[i].body == NULL && strcmp(qb->b[i].id, id) == 0) {
			qb->b[i].body = util_xcalloc(1, (size_t)l + 1);
			memcpy(qb->b[i].body, v, l);
			qb->b[i].body[l] = '\0';
			qb->b[i].len = l;
		}
	return 0;
}

static void
qbodies_work(void *arg)
{
	struct qbodies *qb = arg;
	const char     *ids[QBODY_MAX], *coll;
	bool		done[QBODY_MAX] = { false };
	bson_t	       *sel, *opts;
	size_t		i, k, n;

	opts = BCON_NEW("projection", "{", "body", BCON_INT32(1), "}");
	for (i = 0; i < qb->n && qb->rc == 0; i++) {
		if (done[i])
			continue;
		coll = qb->b[i].coll;
		for (k = i, n = 0; k < qb->n; k++)
			if (!done[k] && strcmp(qb->b[k].coll, coll) == 0) {
				ids[n++] = qb->b[k].id;
				done[k] = true;
			}
		sel = store_sel_ids(ids, sizeof(ids[0]), n, true);
		qb->rc = store_each(child_store(), coll, sel, opts, qbodies_one,
		    qb, qb->err, sizeof(qb->err));
		bson_destroy(sel);
	}
	bson_destroy(opts);
}

static void
qbodies_done(void *arg)
{
	struct qbodies *qb = arg;
	struct dsource *s;
	struct dbatch  *b;
	bool		ok;
	size_t		i;

	ok = child_store_result(qb->rc >= 0, qb->err);
	s = dsource_find(queue_sources, qb->sid);
	if (s != NULL)
		s->bodies_reading = false;
	for (i = 0; i < qb->n; i++) {
		b = s != NULL && !s->zombie ? queue_find(s, qb->b[i].id) : NULL;
		if (b == NULL) {
			free(qb->b[i].body);
			continue;
		}
		b->body_reading = false;
		if (qb->b[i].body != NULL && b->body == NULL)
			queue_body_attach(b, qb->b[i].body, qb->b[i].len);
		else
			free(qb->b[i].body);
		if (ok && b->body == NULL) {
			/* Gone from the store (delivered elsewhere, removed). */
			log_debug("source=%s batch=%s body not in %s: "
				  "reading the queue again",
			    s->id, b->id, qb->b[i].coll);
			s->reload = true;
		}
	}
	if (s != NULL && !s->zombie)
		queue_done_fn(queue_done_arg, s);
	free(qb);
}

int64_t
queue_bodies_start(struct dsource *s)
{
	struct qbodies *qb;
	struct dbatch  *b;
	int64_t		now = util_now_ms(), later = 0, base;

	if (s->bodies_reading)
		return 0;
	qb = util_xcalloc(1, sizeof(*qb));
	util_strlcpy(qb->sid, s->id, sizeof(qb->sid));
	TAILQ_FOREACH (b, &s->queue, entry) {
		if (qb->n == QBODY_MAX)
			break;
		if (b->body != NULL || b->inflight || b->next_at > now)
			continue;
		/*
		 * From the later of its cut and its first scan: under a slow
		 * store the hint follows the batch's insert by the rest of
		 * fetcherd's page store, and a read now would add a scan of
		 * a partition to that store's load (the tail feeds itself).
		 * Cut before this process started, it has no hint to wait for.
		 */
		base = b->known_at > b->created_at ? b->known_at :
						     b->created_at;
		if (!b->inline_body && !b->hinted && b->n_attempts == 0 &&
		    b->created_at >= queue_started_at && now >= base &&
		    now - base < QUEUE_HINT_GRACE_MS) {
			if (later == 0 || base + QUEUE_HINT_GRACE_MS < later)
				later = base + QUEUE_HINT_GRACE_MS;
			continue;
		}
		util_strlcpy(qb->b[qb->n].id, b->id, sizeof(qb->b[0].id));
		util_strlcpy(qb->b[qb->n].coll,
		    b->inline_body		? STORE_BATCHES :
			b->body_coll[0] != '\0' ? b->body_coll :
						  STORE_BODIES,
		    sizeof(qb->b[0].coll));
		b->body_reading = true;
		qb->n++;
	}
	if (qb->n == 0) {
		free(qb);
		return later;
	}
	if (worker_submit(qbodies_work, qbodies_done, qb) != 0) {
		/* Tried again at the next step. */
		TAILQ_FOREACH (b, &s->queue, entry)
			b->body_reading = false;
		free(qb);
		return later;
	}
	s->bodies_reading = true;
	return later;
}

/*
 * A write of a batch's attempt, done on the worker. A batch that becomes
 * a dead letter first has its body copied from its partition into
 * bodies_dead (upd_moved then names it there), so that the partition can
 * be dropped while the letter waits for a replay or its retention.
 */
struct qrec {
	char	sid[64];
	char	bid[40];
	bool	dead;
	char	from[STORE_BODY_COLL_MAX]; /* partition to copy from, or "" */
	bson_t *sel, *upd, *upd_moved;
	int	rc;
	char	err[512];
};

/*
 * Batches that became dead letters, their record in flight: they left
 * the queue at once, and a load reading the store before the record is
 * written would find them still pending and send them once more.
 */
static char (*rec_dead)[40];
static size_t nrec_dead, caprec_dead;

static void
rec_dead_add(const char *id)
{
	if (nrec_dead == caprec_dead) {
		caprec_dead = caprec_dead ? caprec_dead * 2 : 16;
		rec_dead = util_xreallocarray(rec_dead, caprec_dead,
		    sizeof(*rec_dead));
	}
	util_strlcpy(rec_dead[nrec_dead++], id, sizeof(rec_dead[0]));
}

static void
rec_dead_remove(const char *id)
{
	size_t i;

	for (i = 0; i < nrec_dead; i++)
		if (strcmp(rec_dead[i], id) == 0) {
			memcpy(rec_dead[i], rec_dead[--nrec_dead],
			    sizeof(rec_dead[0]));
			return;
		}
}

static bool
rec_dead_has(const char *id)
{
	size_t i;

	for (i = 0; i < nrec_dead; i++)
		if (strcmp(rec_dead[i], id) == 0)
			return true;
	return false;
}

static void
qrec_work(void *arg)
{
	struct qrec	    *r = arg;
	mongoc_client_t	    *c;
	mongoc_collection_t *coll;
	bson_error_t	     berr;
	const bson_t	    *upd = r->upd;
	bson_t		     body;
	int		     rc;

	if (r->from[0] != '\0') {
		rc = store_find_one(child_store(), r->from, r->sel, NULL, &body,
		    r->err, sizeof(r->err));
		if (rc < 0) {
			r->rc = -EIO;
			return;
		}
		if (rc == 1) {
			rc = store_insert_one(child_store(), STORE_BODIES_DEAD,
			    &body, r->err, sizeof(r->err));
			bson_destroy(&body);
			if (rc != 0 && rc != -EEXIST) {
				r->rc = -EIO;
				return;
			}
			r->err[0] = '\0';
			upd = r->upd_moved;
		}
	}
	c = store_pop(child_store());
	coll = store_coll(child_store(), c, STORE_BATCHES);
	if (!mongoc_collection_update_one(coll, r->sel, upd, NULL, NULL,
		&berr)) {
		snprintf(r->err, sizeof(r->err), "update batch: %.400s",
		    berr.message);
		r->rc = -EIO;
	}
	mongoc_collection_destroy(coll);
	store_push(child_store(), c);
}

static void
qrec_done(void *arg)
{
	struct qrec    *r = arg;
	struct dsource *s;

	if (r->dead)
		rec_dead_remove(r->bid);
	if (!child_store_result(r->rc >= 0, r->err)) {
		/* Still pending in the store: read again, sent again. */
		if ((s = dsource_find(queue_sources, r->sid)) != NULL)
			s->reload = true;
		if (r->dead)
			log_warn(
			    "source=%s batch=%s became a dead letter but "
			    "was not recorded (%s); it will be sent again with "
			    "the same webhook-id",
			    r->sid, r->bid, r->err);
	}
	bson_destroy(r->sel);
	bson_destroy(r->upd);
	if (r->upd_moved != NULL)
		bson_destroy(r->upd_moved);
	free(r);
}

/*
 * Deliveries are recorded together, and a delivered batch's metadata is
 * deleted, not marked: on FerretDB 1.24 an update costs 3 to 6 ms per
 * document it changes (and holds SQLite's one writer meanwhile: every
 * insert of fetcherd waits), a delete a tenth of a millisecond, so
 * marking each 2xx made the store the bottleneck of the whole flow (50
 * sources x 10 events/s: updates of 300 to 5 000 ms, the latency p99 5 s).
 * Each 2xx joins a list; one find on `intents` (only the pages in
 * flight) and one deleteMany record all of the list (group commit: the
 * first waits QDONE_GATHER_MS for others, or goes at once when
 * QDONE_GATHER_N are there, and those that arrive while it is in flight
 * go together when it returns). A batch whose intent still exists is
 * marked "delivered" instead (one updateMany per status code), for
 * fetcherd's recovery reads a batch without metadata as never committed
 * (fetcherd/handoff.h); prune.c deletes it once the intent is gone. The
 * record is not on the delivery path (the POST is done); a crash in the
 * wait sends those batches again under the same webhook-id, as one in
 * flight. Until its record returns a batch is known delivered here
 * (delivered.c), so a load of the source's pending batches does not
 * send it again. A record that fails (the store down or stalled) is
 * tried again, the same deliveries first, after QDONE_RETRY_MS doubling
 * up to QDONE_RETRY_MAX_MS: the batches stay known delivered meanwhile
 * and are not sent again (they were, until the record came back: every
 * store outage sent the batches of its last seconds twice). Only a stop
 * gives up on them (logged): the next start sends them again under the
 * same webhook-ids.
 */
#define QDONE_MAX	   1000	 /* deliveries per updateMany */
#define QDONE_GATHER_MS	   250	 /* the first 2xx waits that long for others */
#define QDONE_GATHER_N	   64	 /* or until that many are there */
#define QDONE_RETRY_MS	   1000	 /* a failed record is tried again after */
#define QDONE_RETRY_MAX_MS 30000 /* doubling up to */

struct qdone {
	char	sid[64];
	char	bid[40];
	char	coll[STORE_BODY_COLL_MAX]; /* of its body */
	int32_t status;
	bool	keep; /* its intent exists: marked, not deleted */
};

struct qflush {
	struct qdone *d;
	size_t	      n;
	int64_t	      now;
	int	      rc;
	char	      err[512];
};

static struct qdone *qd_list;
static size_t	     qd_n, qd_cap;
static bool	     qd_inflight;
static bool	     qd_stopping; /* a failed record is given up */
static struct event *qd_gather;	  /* armed: a list waits for more */
static struct event *qd_retry;	  /* armed: a failed record waits */
static int64_t	     qd_retry_ms; /* the wait after the last failure */

static void qdone_flush(void);
static void qdone_retry(struct qflush *);
static void qdone_reserve(size_t);
static void qdone_gather_cb(evutil_socket_t, short, void *);

/* A failed record waits before it is tried again. */
static bool
qdone_waiting(void)
{
	return qd_retry != NULL && evtimer_pending(qd_retry, NULL);
}

static int
qdone_cmp(const void *a, const void *b)
{
	const struct qdone *x = a, *y = b;

	if (x->keep != y->keep)
		return x->keep ? -1 : 1;
	return x->status < y->status ? -1 : x->status > y->status;
}

/* Worker: which of f's batches still have an intent (one find). */
static void
qdone_intents(struct qflush *f)
{
	char   **ids = util_xcalloc(f->n, sizeof(*ids));
	bson_t **docs = util_xcalloc(f->n, sizeof(*docs));
	size_t	 i;

	for (i = 0; i < f->n; i++)
		ids[i] = f->d[i].bid;
	if (store_find_ids(child_store(), STORE_INTENTS, ids, f->n, docs,
		f->err, sizeof(f->err)) != 0)
		f->rc = -EIO;
	for (i = 0; i < f->n; i++)
		if (docs[i] != NULL) {
			f->d[i].keep = true;
			bson_destroy(docs[i]);
		}
	free(docs);
	free(ids);
}

static void
qdone_work(void *arg)
{
	struct qflush	    *f = arg;
	bson_t		    *sel, *upd, set, inc, push, att;
	bson_error_t	     berr;
	size_t		     i, j;
	mongoc_client_t	    *c;
	mongoc_collection_t *coll;

	qdone_intents(f);
	qsort(f->d, f->n, sizeof(f->d[0]), qdone_cmp);
	c = store_pop(child_store());
	coll = store_coll(child_store(), c, STORE_BATCHES);
	for (i = 0; i < f->n && f->d[i].keep && f->rc == 0; i = j) {
		for (j = i; j < f->n && f->d[j].keep &&
		     f->d[j].status == f->d[i].status;
		     j++)
			;
		sel = store_sel_ids(&f->d[i].bid, sizeof(f->d[0]), j - i,
		    false);
		/* A retry after the delete failed: marked once, not twice. */
		bson_append_document_begin(sel, "state", -1, &set);
		BSON_APPEND_UTF8(&set, "$ne", "delivered");
		bson_append_document_end(sel, &set);
		upd = bson_new();
		bson_append_document_begin(upd, "$set", -1, &set);
		BSON_APPEND_UTF8(&set, "state", "delivered");
		BSON_APPEND_INT64(&set, "deliveredAt", f->now);
		BSON_APPEND_NULL(&set, "lastError");
		bson_append_document_end(upd, &set);
		bson_append_document_begin(upd, "$inc", -1, &inc);
		BSON_APPEND_INT32(&inc, "nAttempts", 1);
		bson_append_document_end(upd, &inc);
		bson_append_document_begin(upd, "$push", -1, &push);
		bson_append_document_begin(&push, "attempts", -1, &att);
		BSON_APPEND_INT64(&att, "at", f->now);
		BSON_APPEND_INT32(&att, "status", f->d[i].status);
		BSON_APPEND_NULL(&att, "error");
		bson_append_document_end(&push, &att);
		bson_append_document_end(upd, &push);
		if (!mongoc_collection_update_many(coll, sel, upd, NULL, NULL,
			&berr)) {
			snprintf(f->err, sizeof(f->err),
			    "update batches: "
			    "%.400s",
			    berr.message);
			f->rc = -EIO;
		}
		bson_destroy(sel);
		bson_destroy(upd);
	}
	if (f->rc == 0 && i < f->n) {
		sel = store_sel_ids(&f->d[i].bid, sizeof(f->d[0]), f->n - i,
		    false);
		if (!mongoc_collection_delete_many(coll, sel, NULL, NULL,
			&berr)) {
			snprintf(f->err, sizeof(f->err),
			    "delete delivered batches: %.400s", berr.message);
			f->rc = -EIO;
		}
		bson_destroy(sel);
	}
	mongoc_collection_destroy(coll);
	store_push(child_store(), c);
}

static void
qdone_done(void *arg)
{
	struct qflush  *f = arg;
	struct dsource *s;
	size_t		i;

	qd_inflight = false;
	if (child_store_result(f->rc >= 0, f->err)) {
		if (qd_retry_ms > 0)
			log_info("%zu deliveries recorded after a failure",
			    f->n);
		qd_retry_ms = 0;
		for (i = 0; i < f->n; i++) {
			delivered_recorded(f->d[i].bid, util_now_ms());
			prune_body(f->d[i].bid, f->d[i].coll);
		}
	} else if (qd_stopping) {
		/* Still pending in the store: read again, sent again. */
		log_warn("%zu deliveries not recorded at the stop (%s); those "
			 "batches will be sent again with the same webhook-id",
		    f->n, f->err);
		for (i = 0; i < f->n; i++) {
			log_debug("source=%s batch=%s delivered but not "
				  "recorded",
			    f->d[i].sid, f->d[i].bid);
			delivered_forget(f->d[i].bid);
			if ((s = dsource_find(queue_sources, f->d[i].sid)) !=
			    NULL)
				s->reload = true;
		}
	} else {
		qdone_retry(f);
		return;
	}
	free(f->d);
	free(f);
	if (qd_n > 0)
		qdone_flush();
}

/* f's record failed: its deliveries go back first, and wait. */
static void
qdone_retry(struct qflush *f)
{
	qd_retry_ms = qd_retry_ms == 0 ? QDONE_RETRY_MS : qd_retry_ms * 2;
	if (qd_retry_ms > QDONE_RETRY_MAX_MS)
		qd_retry_ms = QDONE_RETRY_MAX_MS;
	log_warn("%zu deliveries not recorded (%s); tried again in %llds, "
		 "their batches are not sent again meanwhile",
	    f->n, f->err, (long long)(qd_retry_ms / 1000));
	qdone_reserve(f->n);
	memmove(qd_list + f->n, qd_list, qd_n * sizeof(qd_list[0]));
	memcpy(qd_list, f->d, f->n * sizeof(f->d[0]));
	qd_n += f->n;
	free(f->d);
	free(f);
	deliverd_timer_start(&qd_retry, qdone_gather_cb, qd_retry_ms, false);
}

/* Send the list's first QDONE_MAX deliveries to the worker. */
static void
qdone_flush(void)
{
	struct qflush *f;
	size_t	       n = qd_n < QDONE_MAX ? qd_n : QDONE_MAX;

	f = util_xcalloc(1, sizeof(*f));
	f->d = util_xcalloc(n, sizeof(f->d[0]));
	memcpy(f->d, qd_list, n * sizeof(f->d[0]));
	memmove(qd_list, qd_list + n, (qd_n - n) * sizeof(qd_list[0]));
	qd_n -= n;
	if (qd_gather != NULL)
		evtimer_del(qd_gather); /* these go now */
	f->n = n;
	f->now = util_now_ms();
	qd_inflight = true;
	if (worker_submit(qdone_work, qdone_done, f) != 0) {
		f->rc = -ENOMEM;
		util_strlcpy(f->err, "out of memory", sizeof(f->err));
		qdone_done(f);
	}
}

/* Shutdown: the deliveries not yet recorded go now, in flight or not. */
void
queue_record_flush(void)
{
	qd_stopping = true;
	if (qd_retry != NULL)
		evtimer_del(qd_retry);
	while (qd_n > 0)
		qdone_flush();
}

/* The gathering ends, or the wait after a failed record. */
static void
qdone_gather_cb(evutil_socket_t fd, short what, void *arg)
{
	if (!qd_inflight && qd_n > 0 && !qdone_waiting())
		qdone_flush();
}

/* Room for n more deliveries in the list. */
static void
qdone_reserve(size_t n)
{
	if (qd_n + n <= qd_cap)
		return;
	while (qd_n + n > qd_cap)
		qd_cap = qd_cap ? qd_cap * 2 : 64;
	qd_list = util_xreallocarray(qd_list, qd_cap, sizeof(qd_list[0]));
}

/* b of s got its 2xx: record it with the others. */
static void
qdone_add(struct dsource *s, struct dbatch *b, long status)
{
	struct qdone *d;

	qdone_reserve(1);
	d = &qd_list[qd_n++];
	util_strlcpy(d->sid, s->id, sizeof(d->sid));
	util_strlcpy(d->bid, b->id, sizeof(d->bid));
	util_strlcpy(d->coll, b->inline_body ? STORE_BATCHES : b->body_coll,
	    sizeof(d->coll));
	d->status = (int32_t)status;
	d->keep = false;
	delivered_add(b->id, util_now_ms());
	if (qd_inflight || qdone_waiting())
		return; /* goes when the one in flight is back, or the wait ends */
	if (qd_gather == NULL)
		qd_gather = evtimer_new(child_base(), qdone_gather_cb, NULL);
	if (qd_n >= QDONE_GATHER_N || qd_gather == NULL)
		qdone_flush();
	else if (!evtimer_pending(qd_gather, NULL)) {
		struct timeval tv = { 0, QDONE_GATHER_MS * 1000 };

		evtimer_add(qd_gather, &tv);
	}
}

/* The update recording an attempt of b (and its body's new home). */
static bson_t *
qrec_update(struct dsource *s, struct dbatch *b, const struct httpc_resp *resp,
    const char *state, int64_t now, const char *error, const char *body_coll)
{
	bson_t *upd = bson_new(), set, push, att;

	bson_append_document_begin(upd, "$set", -1, &set);
	BSON_APPEND_UTF8(&set, "state", state);
	BSON_APPEND_INT64(&set, "nextAttemptAt", b->next_at);
	BSON_APPEND_INT32(&set, "nAttempts", (int32_t)b->n_attempts);
	BSON_APPEND_INT32(&set, "nErrors", (int32_t)b->n_errors);
	if (error != NULL && *error != '\0')
		BSON_APPEND_UTF8(&set, "lastError", error);
	else
		BSON_APPEND_NULL(&set, "lastError");
	if (strcmp(state, "dead") == 0)
		BSON_APPEND_INT64(&set, "deadAt", now);
	if (body_coll != NULL)
		BSON_APPEND_UTF8(&set, "bodyColl", body_coll);
	BSON_APPEND_INT64(&set, "epoch", s->lease.epoch);
	bson_append_document_end(upd, &set);
	bson_append_document_begin(upd, "$push", -1, &push);
	bson_append_document_begin(&push, "attempts", -1, &att);
	BSON_APPEND_INT64(&att, "at", now);
	BSON_APPEND_INT32(&att, "status", (int32_t)resp->status);
	if (error != NULL && *error != '\0')
		BSON_APPEND_UTF8(&att, "error", error);
	else
		BSON_APPEND_NULL(&att, "error");
	BSON_APPEND_INT64(&att, "elapsedMs", resp->elapsed_ms);
	bson_append_document_end(&push, &att);
	bson_append_document_end(upd, &push);
	return upd;
}

/*
 * Record an attempt of b: its new state ("pending", "delivered",
 * "dead"), counters, next attempt, and the attempt itself (time, status,
 * error) appended to attempts. The write runs on the worker; a failure
 * makes the source re-read its queue (the batch is still pending there
 * and goes again under its webhook-id). 0, or -ENOMEM (not queued).
 */
int
queue_record(struct dsource *s, struct dbatch *b, const struct httpc_resp *resp,
    const char *state, int64_t now, const char *error)
{
	struct qrec *r;

	if (strcmp(state, "delivered") == 0) {
		qdone_add(s, b, resp->status);
		return 0;
	}
	r = util_xcalloc(1, sizeof(*r));
	util_strlcpy(r->sid, s->id, sizeof(r->sid));
	util_strlcpy(r->bid, b->id, sizeof(r->bid));
	r->dead = strcmp(state, "dead") == 0;
	r->sel = BCON_NEW("_id", BCON_UTF8(b->id));
	r->upd = qrec_update(s, b, resp, state, now, error, NULL);
	if (r->dead && !b->inline_body &&
	    store_body_coll_end(b->body_coll) > 0) {
		util_strlcpy(r->from, b->body_coll, sizeof(r->from));
		r->upd_moved = qrec_update(s, b, resp, state, now, error,
		    STORE_BODIES_DEAD);
	}
	if (r->dead)
		rec_dead_add(b->id);
	if (worker_submit(qrec_work, qrec_done, r) != 0) {
		if (r->dead)
			rec_dead_remove(b->id);
		bson_destroy(r->sel);
		bson_destroy(r->upd);
		if (r->upd_moved != NULL)
			bson_destroy(r->upd_moved);
		free(r);
		return -ENOMEM;
	}
	return 0;
}

/*
 * The collection of a log batch's body from its metadata: the partition
 * it names, bodies_dead, or (older versions, no name) `bodies`.
 */
static void
queue_coll_of(const bson_t *doc, char out[STORE_BODY_COLL_MAX])
{
	const char *c = store_bson_str(doc, "bodyColl");

	if (c != NULL &&
	    (store_body_coll_end(c) > 0 || strcmp(c, STORE_BODIES_DEAD) == 0))
		util_strlcpy(out, c, STORE_BODY_COLL_MAX);
	else
		util_strlcpy(out, STORE_BODIES, STORE_BODY_COLL_MAX);
}

/* Worker: a pending batch into j (a dead letter set back: a replay). */
static int
qload_one(const bson_t *doc, void *arg)
{
	struct qjob *j = arg;
	const char  *id = store_bson_str(doc, "_id");
	const char  *kind = store_bson_str(doc, "kind");
	const char  *wid = store_bson_str(doc, "webhookId");
	const char  *sid = store_bson_str(doc, "sourceId");
	struct qinfo in;
	int64_t	     dead_at, replayed;

	if (id == NULL || strlen(id) >= sizeof(in.id) || sid == NULL ||
	    strlen(sid) >= sizeof(in.sid))
		return 0;
	memset(&in, 0, sizeof(in));
	util_strlcpy(in.sid, sid, sizeof(in.sid));
	util_strlcpy(in.id, id, sizeof(in.id));
	batch_webhook_id(id, in.wid);
	if (wid != NULL)
		util_strlcpy(in.wid, wid, sizeof(in.wid));
	/* Alerts and watermarks: the body is in the batch document. */
	in.inline_body = kind != NULL &&
	    (strcmp(kind, "alert") == 0 || strcmp(kind, "watermark") == 0);
	in.created_at = store_bson_int(doc, "createdAt", j->now);
	in.next_at = store_bson_int(doc, "nextAttemptAt", j->now);
	in.n_attempts = (unsigned)store_bson_int(doc, "nAttempts", 0);
	in.n_errors = (unsigned)store_bson_int(doc, "nErrors", 0);
	in.nlogs = store_bson_int(doc, "nLogs", 0);
	in.age_base = in.created_at;
	queue_coll_of(doc, in.body_coll);
	dead_at = store_bson_int(doc, "deadAt", 0);
	replayed = store_bson_int(doc, "replayedAt", 0);
	if (dead_at > 0 && replayed < dead_at) {
		/* A dead letter set back to pending: a replay. */
		bson_t *sel = BCON_NEW("_id", BCON_UTF8(id));
		bson_t *set = BCON_NEW("replayedAt", BCON_INT64(j->now),
		    "nextAttemptAt", BCON_INT64(j->now), "nErrors",
		    BCON_INT32(0), "epoch", BCON_INT64(j->epoch));
		char	e2[256];

		(void)store_update_set(child_store(), STORE_BATCHES, sel, set,
		    false, NULL, e2, sizeof(e2));
		bson_destroy(sel);
		bson_destroy(set);
		replayed = j->now;
		in.next_at = j->now;
		in.n_errors = 0;
		in.replayed = true;
	}
	if (replayed > in.age_base)
		in.age_base = replayed;
	qjob_add(j, &in);
	return 0;
}

static void
qwork_load_pending(struct qjob *j)
{
	bson_t *filter, *opts;

	if (j->kind == QJ_LOAD_ALL)
		filter = BCON_NEW("state", BCON_UTF8("pending"));
	else
		filter = BCON_NEW("sourceId", BCON_UTF8(j->sid), "state",
		    BCON_UTF8("pending"));
	opts = BCON_NEW("projection", "{", "body", BCON_INT32(0), "logIds",
	    BCON_INT32(0), "attempts", BCON_INT32(0), "}", "sort", "{",
	    "createdAt", BCON_INT32(1), "}");
	qjob_each(j, STORE_BATCHES, filter, opts, qload_one, j);
	bson_destroy(filter);
	bson_destroy(opts);
}

/*
 * Worker, on take-over: the pending batches, and the alerts of
 * undelivered alert batches marked again (an alert batch is inserted
 * before its alert is marked).
 */
static int
qtakeover_one(const bson_t *doc, void *arg)
{
	struct qjob *j = arg;
	const char  *bid = store_bson_str(doc, "_id");
	char	   **ids;
	size_t	     n, i;

	if (bid == NULL)
		return 0;
	n = queue_array_strs(doc, "alertIds", &ids);
	for (i = 0; i < n; i++) {
		bson_t *s2 = BCON_NEW("_id", BCON_UTF8(ids[i]), "state",
		    BCON_UTF8("pending"));
		bson_t *set = BCON_NEW("state", BCON_UTF8("batched"), "batchId",
		    BCON_UTF8(bid));
		int64_t m = 0;
		char	e2[256];

		if (store_update_set(child_store(), STORE_ALERTS, s2, set,
			false, &m, e2, sizeof(e2)) == 0)
			j->nremarked += (int)m;
		bson_destroy(s2);
		bson_destroy(set);
	}
	queue_strs_free(ids, n);
	return 0;
}

static void
qwork_takeover(void *arg)
{
	struct qjob *j = arg;
	bson_t	    *sel, *opts;

	/* Alerts of undelivered alert batches: marked again. */
	sel = BCON_NEW("sourceId", BCON_UTF8(j->sid), "kind",
	    BCON_UTF8("alert"), "state", "{", "$in", "[", BCON_UTF8("pending"),
	    BCON_UTF8("dead"), "]", "}");
	opts = BCON_NEW("projection", "{", "alertIds", BCON_INT32(1), "}");
	qjob_each(j, STORE_BATCHES, sel, opts, qtakeover_one, j);
	bson_destroy(sel);
	bson_destroy(opts);
	if (j->rc == 0)
		qwork_load_pending(j);
}

static void
qwork_load(void *arg)
{
	qwork_load_pending(arg);
}

void
queue_hinted(struct dsource *s, const char *id, const char *wid, uint32_t nlogs,
    int64_t created_at, const uint8_t *body, size_t len, const char *body_coll)
{
	struct dbatch *b;

	/*
	 * Known, or already sent and acknowledged: a load can read a batch
	 * from the store and deliver it before its hint arrives. Known
	 * without its body, it takes the hint's (no read from the store).
	 */
	if ((b = queue_find(s, id)) != NULL) {
		b->hinted = true; /* no other hint comes: no more waiting */
		if (b->body == NULL && !b->inline_body && body != NULL &&
		    len > 0 && cached_bytes + len <= DELIVERD_BODY_CACHE_MAX) {
			char *copy = malloc(len);

			if (copy != NULL) {
				memcpy(copy, body, len);
				queue_body_attach(b, copy, len);
			}
		}
		return;
	}
	if (delivered_hides(id, 0))
		return;
	b = util_xcalloc(1, sizeof(*b));
	b->src = s;
	util_strlcpy(b->id, id, sizeof(b->id));
	if (wid != NULL && *wid != '\0')
		util_strlcpy(b->webhook_id, wid, sizeof(b->webhook_id));
	else
		batch_webhook_id(id, b->webhook_id);
	b->created_at = b->next_at = b->age_base = created_at;
	b->nlogs = nlogs;
	b->seen = true;
	b->hinted = true;
	b->known_at = util_now_ms();
	util_strlcpy(b->body_coll,
	    body_coll != NULL && store_body_coll_end(body_coll) > 0 ?
		body_coll :
		STORE_BODIES,
	    sizeof(b->body_coll));
	if (body != NULL && len > 0 &&
	    cached_bytes + len <= DELIVERD_BODY_CACHE_MAX &&
	    (b->body = malloc(len)) != NULL) {
		memcpy(b->body, body, len);
		b->body_len = len;
		cached_bytes += len;
	}
	queue_insert_sorted(s, b);
}

void
queue_add_inline(struct dsource *s, const char *id, const char *wid,
    int64_t created_at, char *body, size_t len)
{
	struct dbatch *b;

	if (queue_find(s, id) != NULL || delivered_hides(id, 0) ||
	    rec_dead_has(id)) {
		free(body);
		return;
	}
	b = util_xcalloc(1, sizeof(*b));
	b->src = s;
	util_strlcpy(b->id, id, sizeof(b->id));
	util_strlcpy(b->webhook_id, wid, sizeof(b->webhook_id));
	b->inline_body = true;
	b->created_at = b->next_at = b->age_base = created_at;
	b->known_at = util_now_ms();
	b->seen = true;
	util_strlcpy(b->body_coll, STORE_BATCHES, sizeof(b->body_coll));
	queue_body_attach(b, body, len);
	queue_insert_sorted(s, b);
}

void
queue_bson_inline(bson_t *doc, const char *body, size_t len, const char *wid,
    int64_t now, int64_t epoch)
{
	bson_t att;

	BSON_APPEND_INT64(doc, "nLogs", 0);
	bson_append_utf8(doc, "body", -1, body, (int)len);
	BSON_APPEND_UTF8(doc, "webhookId", wid);
	BSON_APPEND_UTF8(doc, "state", "pending");
	BSON_APPEND_INT64(doc, "createdAt", now);
	BSON_APPEND_INT64(doc, "nextAttemptAt", now);
	BSON_APPEND_INT32(doc, "nAttempts", 0);
	BSON_APPEND_INT32(doc, "nErrors", 0);
	BSON_APPEND_ARRAY_BEGIN(doc, "attempts", &att);
	bson_append_array_end(doc, &att);
	BSON_APPEND_NULL(doc, "deliveredAt");
	BSON_APPEND_INT64(doc, "epoch", epoch);
}

static void qwork_alert_batch(struct qjob *j, const char *alert_id,
    const char *body, size_t body_len);
static void queue_load_all_done(struct qjob *j, bool ok);

/* Merge loaded pending batches into s's queue. */
static void
queue_merge(struct dsource *s, struct qjob *j, bool drop_unseen)
{
	struct dbatch *b, *nb;
	size_t	       i;
	int64_t	       now = util_now_ms();

	TAILQ_FOREACH (b, &s->queue, entry)
		b->seen = false;
	for (i = 0; i < j->nb; i++) {
		struct qinfo *in = &j->b[i];

		if (j->kind == QJ_LOAD_ALL && strcmp(in->sid, s->id) != 0)
			continue;
		if ((b = queue_find(s, in->id)) != NULL) {
			b->seen = true;
			continue;
		}
		if (delivered_hides(in->id, j->now) || rec_dead_has(in->id))
			continue; /* read before its outcome was recorded */
		b = util_xcalloc(1, sizeof(*b));
		b->src = s;
		util_strlcpy(b->id, in->id, sizeof(b->id));
		util_strlcpy(b->webhook_id, in->wid, sizeof(b->webhook_id));
		b->inline_body = in->inline_body;
		b->created_at = in->created_at;
		b->next_at = in->next_at;
		b->age_base = in->age_base;
		b->n_attempts = in->n_attempts;
		b->n_errors = in->n_errors;
		b->n_fail = in->replayed ? 0 : in->n_attempts;
		b->nlogs = in->nlogs;
		b->seen = true;
		b->known_at = now;
		util_strlcpy(b->body_coll, in->body_coll, sizeof(b->body_coll));
		if (in->body != NULL) {
			queue_body_attach(b, in->body, in->body_len);
			in->body = NULL;
		}
		if (in->replayed)
			log_info("source=%s batch=%s replaying dead letter "
				 "webhook-id=%s",
			    s->id, b->id, b->webhook_id);
		queue_insert_sorted(s, b);
	}
	if (!drop_unseen)
		return;
	/*
	 * Gone from the pending state elsewhere. Only batches known before
	 * the load began: a hint follows its batch's insert, so the scan
	 * saw those; a batch hinted since may have been inserted after the
	 * scan read (its createdAt, from its cut, is older than both), and
	 * dropping it would throw away its body for a read of a partition.
	 */
	TAILQ_FOREACH_SAFE (b, &s->queue, entry, nb)
		if (!b->seen && !b->inflight && b->known_at < j->now)
			queue_remove(s, b);
}

/* Loop: a job finished. */
static void
qjob_done(void *arg)
{
	struct qjob    *j = arg;
	struct dsource *s = j->src;
	bool		ok;

	ok = child_store_result(j->rc >= 0 || j->rc == -ESTALE, j->err);
	if (j->kind == QJ_LOAD_ALL) {
		queue_load_all_done(j, ok);
		goto out;
	}
	s->busy = false;
	if (s->zombie || !s->lease.held || s->lease.epoch != j->epoch)
		goto next; /* removed, or another life of its lease */
	switch (j->kind) {
	case QJ_TAKEOVER:
		if (!ok)
			break;
		queue_merge(s, j, true);
		s->ready = true;
		log_info("source=%s queue loaded: %u undelivered batches%s",
		    s->id, s->nqueue,
		    j->nremarked > 0 ? ", alerts re-marked" : "");
		break;
	case QJ_LOAD:
		if (ok)
			queue_merge(s, j, true);
		break;
	case QJ_LOAD_ALL:
		break; /* handled above */
	case QJ_ALERTS:
		queue_merge(s, j, false);
		if (ok && !j->more)
			s->alerts_dirty = false;
		break;
	}
next:
	queue_done_fn(queue_done_arg, s);
out:
	for (size_t i = 0; i < j->nb; i++)
		free(j->b[i].body);
	free(j->b);
	free(j);
}

static bool load_all_running;

/*
 * Loop: the pending batches of every source, read in one scan, merged
 * into each source that is ready and has no job of its own (that job
 * brings fresher news).
 */
static void
queue_load_all_done(struct qjob *j, bool ok)
{
	struct dsource *s;

	load_all_running = false;
	if (!ok)
		return;
	TAILQ_FOREACH (s, queue_sources, entry) {
		if (!s->lease.held || !s->ready || s->busy || s->zombie)
			continue;
		queue_merge(s, j, true);
		queue_done_fn(queue_done_arg, s);
	}
}

static void
qwork_load_all(void *arg)
{
	qwork_load_pending(arg);
}

/*
 * Re-read the pending batches of every source in one scan (replays,
 * lost hints, batches of other holders), at most one at a time.
 */
int
queue_load_all_start(void)
{
	struct qjob *j;
	int	     rc;

	if (load_all_running)
		return 0;
	j = util_xcalloc(1, sizeof(*j));
	j->kind = QJ_LOAD_ALL;
	j->now = util_now_ms();
	if ((rc = worker_submit(qwork_load_all, qjob_done, j)) != 0) {
		free(j);
		return rc;
	}
	load_all_running = true;
	return 0;
}

static struct qjob *
qjob_new(struct dsource *s, enum qjob_kind kind)
{
	struct qjob *j = util_xcalloc(1, sizeof(*j));

	j->kind = kind;
	util_strlcpy(j->sid, s->id, sizeof(j->sid));
	j->epoch = s->lease.epoch;
	j->src = s;
	j->now = util_now_ms();
	return j;
}

static int
qjob_submit(struct dsource *s, struct qjob *j, worker_fn fn)
{
	int rc;

	if ((rc = worker_submit(fn, qjob_done, j)) != 0) {
		free(j);
		return rc;
	}
	s->busy = true;
	return 0;
}

/*
 * Worker: turn the pending alerts of j->sid into alert batches, oldest
 * first: the batch is inserted before its alert is marked (a crash in
 * between is repaired at take-over).
 */
/* Pending alerts read, each with its alert batch body. */
struct qalerts {
	struct qjob *j;
	struct {
		char   id[64];
		char  *body;
		size_t len;
	} a[QUEUE_ALERTS_PER_BUILD];
	size_t n;
};

static int
qalerts_one(const bson_t *doc, void *arg)
{
	struct qalerts *qa = arg;
	const char     *id = store_bson_str(doc, "_id");
	const char     *kind = store_bson_str(doc, "alert");
	const char     *msg = store_bson_str(doc, "message");

	if (id == NULL || kind == NULL || strlen(id) >= sizeof(qa->a[0].id))
		return 0;
	qa->a[qa->n].body = batch_alert_body(qa->j->sid, kind,
	    msg != NULL ? msg : "", store_bson_int(doc, "at", qa->j->now),
	    &qa->a[qa->n].len);
	if (qa->a[qa->n].body == NULL)
		return 0;
	util_strlcpy(qa->a[qa->n].id, id, sizeof(qa->a[0].id));
	qa->n++;
	return qa->n == QUEUE_ALERTS_PER_BUILD;
}

static void
qwork_alerts(void *arg)
{
	struct qjob    *j = arg;
	struct qalerts *qa;
	bson_t	       *filter, *opts;
	size_t		i;

	qa = util_xcalloc(1, sizeof(*qa));
	qa->j = j;
	filter = BCON_NEW("sourceId", BCON_UTF8(j->sid), "state",
	    BCON_UTF8("pending"));
	opts = BCON_NEW("sort", "{", "at", BCON_INT32(1), "}", "limit",
	    BCON_INT64(QUEUE_ALERTS_PER_BUILD));
	qjob_each(j, STORE_ALERTS, filter, opts, qalerts_one, qa);
	bson_destroy(filter);
	bson_destroy(opts);
	j->more = qa->n == QUEUE_ALERTS_PER_BUILD;
	for (i = 0; i < qa->n; i++) {
		if (j->rc == 0)
			qwork_alert_batch(j, qa->a[i].id, qa->a[i].body,
			    qa->a[i].len);
		free(qa->a[i].body);
	}
	free(qa);
}

int
queue_alerts_start(struct dsource *s)
{
	return qjob_submit(s, qjob_new(s, QJ_ALERTS), qwork_alerts);
}

int
queue_takeover_start(struct dsource *s)
{
	s->ready = false;
	return qjob_submit(s, qjob_new(s, QJ_TAKEOVER), qwork_takeover);
}

int
queue_load_start(struct dsource *s)
{
	return qjob_submit(s, qjob_new(s, QJ_LOAD), qwork_load);
}

/*
 * Worker: insert an alert batch, then mark its alert (a crash in between
 * is repaired at take-over); the batch joins j's results.
 */
static void
qwork_alert_batch(struct qjob *j, const char *alert_id, const char *body,
    size_t body_len)
{
	struct qinfo in;
	const char  *ids[1] = { alert_id };
	bson_t	     doc, *sel, *set;
	char	     id[37], wid[48];
	int	     rc;

	util_uuid_v4(id);
	batch_webhook_id(id, wid);
	bson_init(&doc);
	BSON_APPEND_UTF8(&doc, "_id", id);
	BSON_APPEND_UTF8(&doc, "sourceId", j->sid);
	BSON_APPEND_UTF8(&doc, "kind", "alert");
	queue_bson_ids(&doc, "logIds", NULL, 0);
	queue_bson_ids(&doc, "alertIds", ids, 1);
	queue_bson_inline(&doc, body, body_len, wid, j->now, j->epoch);
	rc = store_insert_one(child_store(), STORE_BATCHES, &doc, j->err,
	    sizeof(j->err));
	bson_destroy(&doc);
	if (rc != 0 && rc != -EEXIST) {
		j->rc = -EIO;
		return;
	}
	memset(&in, 0, sizeof(in));
	util_strlcpy(in.id, id, sizeof(in.id));
	util_strlcpy(in.wid, wid, sizeof(in.wid));
	in.inline_body = true;
	in.created_at = in.next_at = in.age_base = j->now;
	util_strlcpy(in.body_coll, STORE_BATCHES, sizeof(in.body_coll));
	in.body = util_xcalloc(1, body_len + 1);
	memcpy(in.body, body, body_len);
	in.body_len = body_len;
	qjob_add(j, &in);
	sel = BCON_NEW("_id", BCON_UTF8(alert_id), "state",
	    BCON_UTF8("pending"));
	set = BCON_NEW("state", BCON_UTF8("batched"), "batchId", BCON_UTF8(id));
	/* Unmarked, it is marked again at take-over. */
	(void)store_update_set(child_store(), STORE_ALERTS, sel, set, false,
	    NULL, j->err, sizeof(j->err));
	j->err[0] = '\0';
	bson_destroy(sel);
	bson_destroy(set);
}
