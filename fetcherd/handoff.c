/*
 * The store side of fetching, on the worker thread. See handoff.h for
 * the protocol (intent, seen ids, one batch document per page chunk).
 *
 * Nothing here touches the scheduler's state: a job carries copies of
 * what it needs and its results, and h->done runs on the loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mongoc/mongoc.h>

#include "fetcherd/handoff.h"
#include "lib/batch.h"
#include "lib/child.h"
#include "lib/log.h"
#include "lib/store.h"
#include "lib/util.h"
#include "lib/worker.h"

#define HANDOFF_MAX_DAYS	8	/* days one chunk may touch */
#define DAY_MS			86400000LL

struct handoff *
handoff_new(enum handoff_kind kind, const char *sid, const char *app)
{
	struct handoff	*h = util_xcalloc(1, sizeof(*h));

	h->kind = kind;
	util_strlcpy(h->sid, sid, sizeof(h->sid));
	if (app != NULL)
		util_strlcpy(h->app, app, sizeof(h->app));
	return h;
}

void
handoff_free(struct handoff *h)
{
	if (h == NULL)
		return;
	if (h->logs != NULL)
		norm_logs_free(h->logs, h->n);
	free(h->dup);
	for (unsigned i = 0; i < h->nbatches; i++)
		free(h->batches[i].body);
	free(h->batches);
	if (h->cursor_doc != NULL)
		bson_destroy(h->cursor_doc);
	if (h->stats_doc != NULL)
		bson_destroy(h->stats_doc);
	free(h->lease);
	free(h);
}

void
handoff_seen_coll(int64_t time_ms, char out[24])
{
	struct tm	tm;
	time_t		t;

	if (time_ms < 0)
		time_ms = 0;
	t = (time_t)(time_ms / 1000);
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, 24, "seen_%Y%m%d", &tm) == 0)
		snprintf(out, 24, "seen_19700101");
}

static int
handoff_fail(struct handoff *h, int rc, const char *what)
{
	if (h->err[0] == '\0')
		snprintf(h->err, sizeof(h->err), "%s", what);
	h->rc = rc;
	return rc;
}

/* The fencing deadline: no write once the lease may have passed on. */
static int
handoff_check_deadline(struct handoff *h)
{
	if (h->deadline_mono > 0 && util_mono_ms() >= h->deadline_mono)
		return handoff_fail(h, -ESTALE, "lease deadline passed before "
		    "the write");
	return 0;
}

/*
 * Delete the seen ids of open intent bid (in each day it names) and then
 * the intent. 0 or -EIO.
 */
static int
handoff_clean_intent(struct handoff *h, const char *bid, const bson_t *doc)
{
	bson_iter_t	 it, ch;
	bson_t		*sel;
	char		 coll[24];
	int		 rc = 0;

	if (bson_iter_init_find(&it, doc, "days") &&
	    BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &ch))
		while (rc == 0 && bson_iter_next(&ch)) {
			if (!BSON_ITER_HOLDS_INT64(&ch) &&
			    !BSON_ITER_HOLDS_INT32(&ch))
				continue;
			handoff_seen_coll(bson_iter_as_int64(&ch) * DAY_MS,
			    coll);
			sel = BCON_NEW("b", BCON_UTF8(bid));
			rc = store_delete(child_store(), coll, sel, true, NULL,
			    h->err, sizeof(h->err));
			bson_destroy(sel);
		}
	if (rc != 0)
		return -EIO;
	sel = BCON_NEW("_id", BCON_UTF8(bid));
	rc = store_delete(child_store(), STORE_BATCHES, sel, false, NULL,
	    h->err, sizeof(h->err));
	bson_destroy(sel);
	return rc != 0 ? -EIO : 0;
}

/*
 * Clean every open intent of the source: what a crashed or failed page
 * store left. Runs before the source's first page in a lease epoch and
 * after any failure, when none of its pages is being stored.
 */
static int
handoff_recover(struct handoff *h)
{
	mongoc_client_t		*c;
	mongoc_collection_t	*coll;
	mongoc_cursor_t		*cur;
	const bson_t		*doc;
	bson_t			*filter, *opts;
	bson_error_t		 berr;
	char			**ids = NULL;
	bson_t			**docs = NULL;
	size_t			 n = 0, i;
	int			 rc = 0;

	filter = BCON_NEW("sourceId", BCON_UTF8(h->sid), "state",
	    BCON_UTF8("open"));
	opts = BCON_NEW("projection", "{", "days", BCON_INT32(1), "}");
	c = store_pop(child_store());
	coll = store_coll(child_store(), c, STORE_BATCHES);
	cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		const char *id = store_bson_str(doc, "_id");

		if (id == NULL)
			continue;
		if ((ids = realloc(ids, (n + 1) * sizeof(*ids))) == NULL ||
		    (docs = realloc(docs, (n + 1) * sizeof(*docs))) == NULL)
			fatal("out of memory");
		ids[n] = util_xstrdup(id);
		docs[n] = bson_copy(doc);
		n++;
	}
	if (mongoc_cursor_error(cur, &berr)) {
		snprintf(h->err, sizeof(h->err), "find open batches: %.400s",
		    berr.message);
		rc = -EIO;
	}
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	store_push(child_store(), c);
	bson_destroy(filter);
	bson_destroy(opts);
	for (i = 0; i < n; i++) {
		if (rc == 0 && (rc = handoff_check_deadline(h)) == 0 &&
		    (rc = handoff_clean_intent(h, ids[i], docs[i])) == 0)
			h->nrecovered++;
		free(ids[i]);
		bson_destroy(docs[i]);
	}
	free(ids);
	free(docs);
	return rc;
}

/* Insert the intent of batch bid touching days[0..nd). */
static int
handoff_insert_intent(struct handoff *h, const char *bid,
    const int64_t *days, size_t nd)
{
	bson_t	 doc, arr;
	char	 k[16];
	const char *kp;
	size_t	 i;
	int	 rc;

	bson_init(&doc);
	BSON_APPEND_UTF8(&doc, "_id", bid);
	BSON_APPEND_UTF8(&doc, "sourceId", h->sid);
	BSON_APPEND_UTF8(&doc, "kind", "logs");
	BSON_APPEND_UTF8(&doc, "app", h->app);
	BSON_APPEND_UTF8(&doc, "state", "open");
	bson_append_array_begin(&doc, "days", -1, &arr);
	for (i = 0; i < nd; i++) {
		bson_uint32_to_string((uint32_t)i, &kp, k, sizeof(k));
		bson_append_int64(&arr, kp, -1, days[i]);
	}
	bson_append_array_end(&doc, &arr);
	BSON_APPEND_INT64(&doc, "createdAt", util_now_ms());
	BSON_APPEND_INT64(&doc, "epoch", h->epoch);
	rc = store_insert_one(child_store(), STORE_BATCHES, &doc, h->err,
	    sizeof(h->err));
	bson_destroy(&doc);
	return rc;
}

/*
 * Insert the seen ids of logs[from..to) pointing to bid, one insertMany
 * per day; dup[i] set for those already there. 0 or -EIO.
 */
static int
handoff_insert_seen(struct handoff *h, const char *bid, size_t from,
    size_t to, const int64_t *days, size_t nd)
{
	const bson_t	**docs;
	bson_t		 *all;
	bool		 *dup;
	size_t		 *idx, d, i, k, inserted, ndup;
	char		  coll[24], id[200];
	int		  rc = 0;

	all = util_xcalloc(to - from, sizeof(*all));
	docs = util_xcalloc(to - from, sizeof(*docs));
	idx = util_xcalloc(to - from, sizeof(*idx));
	dup = util_xcalloc(to - from, sizeof(*dup));
	for (i = from; i < to; i++) {
		snprintf(id, sizeof(id), "%s:%s", h->sid, h->logs[i].id);
		bson_init(&all[i - from]);
		BSON_APPEND_UTF8(&all[i - from], "_id", id);
		BSON_APPEND_UTF8(&all[i - from], "b", bid);
		BSON_APPEND_UTF8(&all[i - from], "a", h->app);
	}
	for (d = 0; d < nd && rc == 0; d++) {
		k = 0;
		for (i = from; i < to; i++)
			if (h->logs[i].time_ms / DAY_MS == days[d]) {
				idx[k] = i;
				docs[k++] = &all[i - from];
			}
		if (k == 0)
			continue;
		handoff_seen_coll(days[d] * DAY_MS, coll);
		rc = store_insert_many(child_store(), coll, docs, k, &inserted,
		    &ndup, dup, h->err, sizeof(h->err));
		for (i = 0; rc == 0 && i < k; i++)
			h->dup[idx[i]] = dup[i];
	}
	for (i = from; i < to; i++)
		bson_destroy(&all[i - from]);
	free(all);
	free(docs);
	free(idx);
	free(dup);
	return rc != 0 ? -EIO : 0;
}

/*
 * Seal bid: the body of the new logs of [from, to) into `bodies`, then
 * the intent rewritten as state "pending" (small: no body, no ids).
 */
static int
handoff_seal(struct handoff *h, const char *bid, size_t from, size_t to)
{
	struct batch_body	 body;
	struct handoff_batch	*hb;
	bson_t			 doc, ids, att;
	char			 wid[48], k[16];
	const char		*kp;
	int64_t			 now = util_now_ms(), nlogs = 0;
	size_t			 i;
	int			 rc;

	if ((rc = batch_body_begin(&body, h->sid, bid)) != 0)
		return handoff_fail(h, rc, "out of memory");
	for (i = from; i < to; i++)
		if (!h->dup[i])
			batch_body_add(&body, h->logs[i].json,
			    h->logs[i].json_len);
	if ((rc = batch_body_end(&body)) != 0) {
		batch_body_clear(&body);
		return handoff_fail(h, rc, "out of memory");
	}
	batch_webhook_id(bid, wid);

	bson_init(&doc);
	BSON_APPEND_UTF8(&doc, "_id", bid);
	BSON_APPEND_UTF8(&doc, "sourceId", h->sid);
	bson_append_utf8(&doc, "body", -1, body.buf, (int)body.len);
	bson_append_array_begin(&doc, "logIds", -1, &ids);
	for (i = from; i < to; i++)
		if (!h->dup[i]) {
			bson_uint32_to_string((uint32_t)nlogs++, &kp, k,
			    sizeof(k));
			bson_append_utf8(&ids, kp, -1, h->logs[i].id, -1);
		}
	bson_append_array_end(&doc, &ids);
	rc = store_insert_one(child_store(), STORE_BODIES, &doc, h->err,
	    sizeof(h->err));
	bson_destroy(&doc);
	if (rc != 0 && rc != -EEXIST) {
		batch_body_clear(&body);
		return -EIO;
	}

	bson_init(&doc);
	BSON_APPEND_UTF8(&doc, "sourceId", h->sid);
	BSON_APPEND_UTF8(&doc, "kind", "logs");
	BSON_APPEND_UTF8(&doc, "app", h->app);
	BSON_APPEND_INT64(&doc, "nLogs", nlogs);
	BSON_APPEND_INT64(&doc, "bytes", (int64_t)body.len);
	BSON_APPEND_UTF8(&doc, "webhookId", wid);
	BSON_APPEND_UTF8(&doc, "state", "pending");
	BSON_APPEND_INT64(&doc, "createdAt", now);
	BSON_APPEND_INT64(&doc, "nextAttemptAt", now);
	BSON_APPEND_INT32(&doc, "nAttempts", 0);
	BSON_APPEND_INT32(&doc, "nErrors", 0);
	BSON_APPEND_ARRAY_BEGIN(&doc, "attempts", &att);
	bson_append_array_end(&doc, &att);
	BSON_APPEND_NULL(&doc, "deliveredAt");
	BSON_APPEND_INT64(&doc, "epoch", h->epoch);
	rc = store_upsert(child_store(), STORE_BATCHES, bid, &doc, h->err,
	    sizeof(h->err));
	bson_destroy(&doc);
	if (rc != 0) {
		batch_body_clear(&body);
		return -EIO;
	}
	if ((h->batches = realloc(h->batches, (h->nbatches + 1) *
	    sizeof(*h->batches))) == NULL)
		fatal("out of memory");
	hb = &h->batches[h->nbatches];
	util_strlcpy(hb->id, bid, sizeof(hb->id));
	util_strlcpy(hb->webhook_id, wid, sizeof(hb->webhook_id));
	hb->nlogs = (uint32_t)nlogs;
	hb->created_at = now;
	hb->body = body.buf;	/* kept for the hint */
	hb->len = body.len;
	return 0;
}

/* Store logs[from..to) as one batch (intent, seen ids, seal). */
static int
handoff_chunk(struct handoff *h, size_t from, size_t to)
{
	int64_t	 days[HANDOFF_MAX_DAYS], d;
	size_t	 nd = 0, i, j, nnew = 0;
	char	 bid[37];
	bson_t	*sel;
	int	 rc;

	for (i = from; i < to; i++) {
		d = h->logs[i].time_ms / DAY_MS;
		for (j = 0; j < nd; j++)
			if (days[j] == d)
				break;
		if (j == nd) {
			if (nd == HANDOFF_MAX_DAYS)
				return handoff_fail(h, -EINVAL, "a batch "
				    "would span too many days");
			days[nd++] = d;
		}
	}
	util_uuid_v4(bid);
	if ((rc = handoff_check_deadline(h)) != 0)
		return rc;
	if ((rc = handoff_insert_intent(h, bid, days, nd)) != 0)
		return handoff_fail(h, -EIO, "insert batch intent");
	if ((rc = handoff_insert_seen(h, bid, from, to, days, nd)) != 0)
		return handoff_fail(h, -EIO, "insert seen ids");
	for (i = from; i < to; i++)
		if (!h->dup[i])
			nnew++;
	if ((rc = handoff_check_deadline(h)) != 0)
		return rc;
	if (nnew == 0) {
		/* Nothing new: no seen id points to bid; drop the intent. */
		sel = BCON_NEW("_id", BCON_UTF8(bid));
		rc = store_delete(child_store(), STORE_BATCHES, sel, false,
		    NULL, h->err, sizeof(h->err));
		bson_destroy(sel);
		return rc != 0 ? handoff_fail(h, -EIO, "delete intent") : 0;
	}
	if ((rc = handoff_seal(h, bid, from, to)) != 0)
		return handoff_fail(h, rc, "seal batch");
	h->nnew += nnew;
	h->nbatches++;
	return 0;
}

/* Cut logs[0..n) into chunks of at most max_logs logs and max_bytes. */
static void
handoff_page(struct handoff *h)
{
	struct batch_body	probe;
	size_t			from = 0, i;

	h->dup = util_xcalloc(h->n + 1, sizeof(*h->dup));
	memset(&probe, 0, sizeof(probe));
	while (from < h->n) {
		probe.len = 64 + strlen(h->sid) + 40;
		probe.nlogs = 0;
		for (i = from; i < h->n && (int64_t)(i - from) < h->max_logs;
		    i++) {
			if (!batch_body_fits(&probe, h->logs[i].json_len,
			    (size_t)h->max_bytes))
				break;
			probe.len += (probe.nlogs > 0 ? 1 : 0) +
			    h->logs[i].json_len;
			probe.nlogs++;
		}
		if (i == from)
			i = from + 1;	/* one log always makes a batch */
		if (handoff_chunk(h, from, i) != 0)
			return;
		from = i;
	}
}

/* Cursor and stats of a finished window, under the lease. */
static void
handoff_save(struct handoff *h)
{
	char	id[200];
	int	rc;

	if (handoff_check_deadline(h) != 0)
		return;
	if (h->lease != NULL &&
	    (rc = lease_check(child_store(), h->lease, h->err,
	    sizeof(h->err))) != 0) {
		h->rc = rc;
		return;
	}
	snprintf(id, sizeof(id), "%s:%s", h->sid, h->app);
	if (h->cursor_doc != NULL && store_upsert(child_store(),
	    STORE_CURSORS, id, h->cursor_doc, h->err, sizeof(h->err)) != 0) {
		h->rc = -EIO;
		return;
	}
	if (h->stats_doc != NULL && store_upsert(child_store(), STORE_STATS,
	    id, h->stats_doc, h->err, sizeof(h->err)) != 0)
		h->rc = -EIO;
}

/*
 * The oldest cursor of any source (any instance) within Google's
 * retention, or INT64_MAX: a source still reading old days keeps their
 * partitions. -1 on a store error.
 */
static int64_t
handoff_min_cursor(struct handoff *h)
{
	mongoc_client_t		*c;
	mongoc_collection_t	*coll;
	mongoc_cursor_t		*cur;
	const bson_t		*doc;
	bson_t			*opts;
	bson_error_t		 berr;
	int64_t			 min = INT64_MAX, v, floor_ms;

	floor_ms = util_now_ms() - 181LL * DAY_MS;
	opts = BCON_NEW("projection", "{", "cursor", BCON_INT32(1), "}");
	c = store_pop(child_store());
	coll = store_coll(child_store(), c, STORE_CURSORS);
	cur = mongoc_collection_find_with_opts(coll, &(bson_t)BSON_INITIALIZER,
	    opts, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		v = store_bson_int(doc, "cursor", 0);
		if (v > floor_ms && v < min)
			min = v;
	}
	if (mongoc_cursor_error(cur, &berr)) {
		snprintf(h->err, sizeof(h->err), "find cursors: %.400s",
		    berr.message);
		min = -1;
	}
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	store_push(child_store(), c);
	bson_destroy(opts);
	return min;
}

/*
 * Drop the seen_YYYYMMDD partitions of days that ended before the
 * horizon and before every source's cursor minus the overlap (a window
 * read again after a restart must still find its logs).
 */
static void
handoff_prune(struct handoff *h)
{
	char	**names = NULL, coll[24];
	size_t	  n = 0, i;
	int64_t	  min;

	if ((min = handoff_min_cursor(h)) < 0) {
		h->rc = -EIO;
		return;
	}
	if (min != INT64_MAX && min - h->overlap_ms - DAY_MS < h->keep_after_ms)
		h->keep_after_ms = min - h->overlap_ms - DAY_MS;
	if (store_list_collections(child_store(), "seen_", &names, &n,
	    h->err, sizeof(h->err)) != 0) {
		h->rc = -EIO;
		return;
	}
	handoff_seen_coll(h->keep_after_ms - DAY_MS, coll);
	for (i = 0; i < n; i++) {
		/* Names sort by day: seen_YYYYMMDD. */
		if (h->rc == 0 && strlen(names[i]) == strlen(coll) &&
		    strcmp(names[i], coll) <= 0) {
			if (store_drop(child_store(), names[i], h->err,
			    sizeof(h->err)) != 0)
				h->rc = -EIO;
			else
				h->ndropped++;
		}
		free(names[i]);
	}
	free(names);
}

static void
handoff_work(void *arg)
{
	struct handoff	*h = arg;

	h->rc = 0;
	if (h->recover && handoff_recover(h) != 0) {
		if (h->rc == 0)
			h->rc = -EIO;
		return;
	}
	switch (h->kind) {
	case HANDOFF_PAGE:
		handoff_page(h);
		break;
	case HANDOFF_SAVE:
		handoff_save(h);
		break;
	case HANDOFF_PRUNE:
		handoff_prune(h);
		break;
	}
}

static void
handoff_done(void *arg)
{
	struct handoff	*h = arg;

	h->done(h);
}

int
handoff_submit(struct handoff *h)
{
	return worker_submit(handoff_work, handoff_done, h);
}
