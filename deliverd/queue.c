/*
 * The store side of a source's batches: building them from pending logs
 * in store order, loading the undelivered ones, recording every attempt.
 * A batch is inserted before its logs get its batchId; queue_remark()
 * repairs a crash between the two, so that no log ever lands in two
 * batches. Bodies stay in the store and are read back for each attempt,
 * so every retry sends the same bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliverd/batch.h"
#include "deliverd/deliverd.h"
#include "lib/child.h"
#include "lib/log.h"
#include "lib/store.h"
#include "lib/util.h"

/* Append the string ids as a BSON array under key of doc. */
static void
queue_bson_ids(bson_t *doc, const char *key, const char *const *ids,
    size_t n)
{
	bson_t		 arr;
	char		 k[16];
	const char	*kp;
	size_t		 i;

	bson_append_array_begin(doc, key, -1, &arr);
	for (i = 0; i < n; i++) {
		bson_uint32_to_string((uint32_t)i, &kp, k, sizeof(k));
		bson_append_utf8(&arr, kp, -1, ids[i], -1);
	}
	bson_append_array_end(doc, &arr);
}

/*
 * Set batchId on the logs (or alerts) ids that have none yet. 0 or -EIO.
 */
static int
queue_mark_ids(const char *coll, const char *batch_id,
    const char *const *ids, size_t n, char *err, size_t errlen)
{
	bson_t	 sel, in, *set;
	int	 rc;

	if (n == 0)
		return 0;
	bson_init(&sel);
	bson_append_document_begin(&sel, "_id", -1, &in);
	queue_bson_ids(&in, "$in", ids, n);
	bson_append_document_end(&sel, &in);
	if (strcmp(coll, STORE_ALERTS) == 0) {
		BSON_APPEND_UTF8(&sel, "state", "pending");
		set = BCON_NEW("batchId", BCON_UTF8(batch_id),
		    "state", BCON_UTF8("batched"));
	} else {
		BSON_APPEND_NULL(&sel, "batchId");
		set = BCON_NEW("batchId", BCON_UTF8(batch_id));
	}
	rc = store_update_set(D.store, coll, &sel, set, true, NULL, err,
	    errlen);
	bson_destroy(&sel);
	bson_destroy(set);
	return rc;
}

/* Collect the strings of an array field of doc. */
static size_t
queue_array_strs(const bson_t *doc, const char *key, char ***out)
{
	bson_iter_t	 it, ch;
	char		**v = NULL, **nv;
	size_t		 n = 0;

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
	size_t	i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/*
 * Give the logs and alerts of every undelivered batch (pending or dead)
 * of s their batchId again. Run on lease take-over, and after a failed
 * marking, before any new batch is built. 0 or -EIO.
 */
int
queue_remark(struct dsource *s)
{
	mongoc_client_t		*c;
	mongoc_collection_t	*coll;
	mongoc_cursor_t		*cur;
	const bson_t		*doc;
	bson_t			*filter, *opts;
	bson_error_t		 berr;
	char			 err[512] = "", **ids;
	size_t			 n;
	int			 rc = 0, nb = 0;

	filter = BCON_NEW("sourceId", BCON_UTF8(s->id), "state", "{", "$in",
	    "[", BCON_UTF8("pending"), BCON_UTF8("dead"), "]", "}");
	opts = BCON_NEW("projection", "{", "logIds", BCON_INT32(1),
	    "alertIds", BCON_INT32(1), "}");
	c = store_pop(D.store);
	coll = store_coll(D.store, c, STORE_BATCHES);
	cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	while (rc == 0 && mongoc_cursor_next(cur, &doc)) {
		const char *bid = store_bson_str(doc, "_id");

		if (bid == NULL)
			continue;
		nb++;
		n = queue_array_strs(doc, "logIds", &ids);
		rc = queue_mark_ids(STORE_LOGS, bid, (const char *const *)ids,
		    n, err, sizeof(err));
		queue_strs_free(ids, n);
		if (rc != 0)
			break;
		n = queue_array_strs(doc, "alertIds", &ids);
		rc = queue_mark_ids(STORE_ALERTS, bid,
		    (const char *const *)ids, n, err, sizeof(err));
		queue_strs_free(ids, n);
	}
	if (rc == 0 && mongoc_cursor_error(cur, &berr)) {
		snprintf(err, sizeof(err), "find batches: %.400s", berr.message);
		rc = -EIO;
	}
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	store_push(D.store, c);
	bson_destroy(filter);
	bson_destroy(opts);
	if (!deliverd_store_result(rc, err))
		return -EIO;
	s->remark = false;
	log_debug("source=%s re-marked the logs of %d undelivered batches",
	    s->id, nb);
	return 0;
}

/* Insert b into s's queue, ordered by creation time. */
void
queue_insert_sorted(struct dsource *s, struct dbatch *b)
{
	struct dbatch	*x;

	TAILQ_FOREACH_REVERSE(x, &s->queue, dbatch_q, entry)
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
	free(b);
}

/* Find a queued batch by id. */
static struct dbatch *
queue_find(struct dsource *s, const char *id)
{
	struct dbatch	*b;

	TAILQ_FOREACH(b, &s->queue, entry)
		if (strcmp(b->id, id) == 0)
			return b;
	return NULL;
}

/*
 * Re-read the undelivered (pending) batches of s and merge them into the
 * queue: new ones (created by a previous holder, or dead letters the API
 * set back to pending for a replay) are added, ones no longer pending are
 * dropped unless in flight. A replayed dead letter starts a new life:
 * due now, its age counted from the replay. 0 or -EIO.
 */
int
queue_load(struct dsource *s)
{
	mongoc_client_t		*c;
	mongoc_collection_t	*coll;
	mongoc_cursor_t		*cur;
	const bson_t		*doc;
	bson_t			*filter, *opts;
	bson_error_t		 berr;
	struct dbatch		*b, *nb;
	char			 err[512] = "";
	int64_t			 now = util_now_ms(), dead_at, replayed;
	int			 rc = 0;

	TAILQ_FOREACH(b, &s->queue, entry)
		b->seen = false;
	filter = BCON_NEW("sourceId", BCON_UTF8(s->id),
	    "state", BCON_UTF8("pending"));
	opts = BCON_NEW("projection", "{", "body", BCON_INT32(0),
	    "logIds", BCON_INT32(0), "attempts", BCON_INT32(0),
	    "alertIds", BCON_INT32(0), "}",
	    "sort", "{", "createdAt", BCON_INT32(1), "}");
	c = store_pop(D.store);
	coll = store_coll(D.store, c, STORE_BATCHES);
	cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		const char *id = store_bson_str(doc, "_id");
		const char *kind = store_bson_str(doc, "kind");

		if (id == NULL || strlen(id) >= sizeof(b->id))
			continue;
		if ((b = queue_find(s, id)) != NULL) {
			b->seen = true;
			continue;
		}
		b = util_xcalloc(1, sizeof(*b));
		b->src = s;
		util_strlcpy(b->id, id, sizeof(b->id));
		batch_webhook_id(id, b->webhook_id);
		if (store_bson_str(doc, "webhookId") != NULL)
			util_strlcpy(b->webhook_id,
			    store_bson_str(doc, "webhookId"),
			    sizeof(b->webhook_id));
		b->is_alert = kind != NULL && strcmp(kind, "alert") == 0;
		b->created_at = store_bson_int(doc, "createdAt", now);
		b->next_at = store_bson_int(doc, "nextAttemptAt", now);
		b->n_attempts = (unsigned)store_bson_int(doc, "nAttempts", 0);
		b->n_errors = (unsigned)store_bson_int(doc, "nErrors", 0);
		b->n_fail = b->n_attempts;
		b->nlogs = store_bson_int(doc, "nLogs", 0);
		b->age_base = b->created_at;
		dead_at = store_bson_int(doc, "deadAt", 0);
		replayed = store_bson_int(doc, "replayedAt", 0);
		if (dead_at > 0 && replayed < dead_at) {
			/* A dead letter set back to pending: a replay. */
			bson_t	*sel = BCON_NEW("_id", BCON_UTF8(id));
			bson_t	*set = BCON_NEW("replayedAt", BCON_INT64(now),
			    "nextAttemptAt", BCON_INT64(now),
			    "nErrors", BCON_INT32(0),
			    "epoch", BCON_INT64(s->lease.epoch));
			char	 e2[256];

			if (store_update_set(D.store, STORE_BATCHES, sel, set,
			    false, NULL, e2, sizeof(e2)) != 0)
				log_warn("source=%s batch=%s: cannot record "
				    "the replay: %s", s->id, id, e2);
			bson_destroy(sel);
			bson_destroy(set);
			replayed = now;
			b->next_at = now;
			b->n_errors = 0;
			b->n_fail = 0;
			log_info("source=%s batch=%s replaying dead letter "
			    "webhook-id=%s", s->id, id, b->webhook_id);
		}
		if (replayed > b->age_base)
			b->age_base = replayed;
		b->seen = true;
		queue_insert_sorted(s, b);
	}
	if (mongoc_cursor_error(cur, &berr)) {
		snprintf(err, sizeof(err), "find batches: %.400s", berr.message);
		rc = -EIO;
	}
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	store_push(D.store, c);
	bson_destroy(filter);
	bson_destroy(opts);
	if (!deliverd_store_result(rc, err))
		return -EIO;
	TAILQ_FOREACH_SAFE(b, &s->queue, entry, nb)
		if (!b->seen && !b->inflight)
			queue_remove(s, b);
	s->reload = false;
	return 0;
}

/*
 * Insert a batch document, then give its logs (or alerts) its id, then
 * queue it in memory. A failure after the insert leaves s->remark set so
 * that no new batch is built before the marking is repaired. 0 or -EIO.
 */
int
queue_insert_batch(struct dsource *s, const char *id, bool is_alert,
    const char *const *ids, size_t nids, const char *body, size_t body_len,
    int64_t now)
{
	struct dbatch	*b;
	bson_t		 doc, att;
	char		 wid[48], err[512] = "";
	int		 rc;

	batch_webhook_id(id, wid);
	bson_init(&doc);
	BSON_APPEND_UTF8(&doc, "_id", id);
	BSON_APPEND_UTF8(&doc, "sourceId", s->id);
	BSON_APPEND_UTF8(&doc, "kind", is_alert ? "alert" : "logs");
	queue_bson_ids(&doc, "logIds", is_alert ? NULL : ids,
	    is_alert ? 0 : nids);
	queue_bson_ids(&doc, "alertIds", is_alert ? ids : NULL,
	    is_alert ? nids : 0);
	BSON_APPEND_INT64(&doc, "nLogs", is_alert ? 0 : (int64_t)nids);
	bson_append_utf8(&doc, "body", -1, body, (int)body_len);
	BSON_APPEND_UTF8(&doc, "webhookId", wid);
	BSON_APPEND_UTF8(&doc, "state", "pending");
	BSON_APPEND_INT64(&doc, "createdAt", now);
	BSON_APPEND_INT64(&doc, "nextAttemptAt", now);
	BSON_APPEND_INT32(&doc, "nAttempts", 0);
	BSON_APPEND_INT32(&doc, "nErrors", 0);
	BSON_APPEND_ARRAY_BEGIN(&doc, "attempts", &att);
	bson_append_array_end(&doc, &att);
	BSON_APPEND_NULL(&doc, "deliveredAt");
	BSON_APPEND_INT64(&doc, "epoch", s->lease.epoch);
	rc = store_insert_one(D.store, STORE_BATCHES, &doc, err, sizeof(err));
	bson_destroy(&doc);
	if (!deliverd_store_result(rc == -EEXIST ? 0 : rc, err))
		return -EIO;
	if (rc == -EEXIST)
		return -EEXIST;	/* a uuid collision: never in practice */
	rc = queue_mark_ids(is_alert ? STORE_ALERTS : STORE_LOGS, id, ids,
	    nids, err, sizeof(err));
	if (!deliverd_store_result(rc, err)) {
		s->remark = true;
		s->reload = true;
		return -EIO;
	}
	b = util_xcalloc(1, sizeof(*b));
	b->src = s;
	util_strlcpy(b->id, id, sizeof(b->id));
	util_strlcpy(b->webhook_id, wid, sizeof(b->webhook_id));
	b->is_alert = is_alert;
	b->created_at = b->next_at = b->age_base = now;
	b->nlogs = is_alert ? 0 : (int64_t)nids;
	b->seen = true;
	queue_insert_sorted(s, b);
	return 0;
}

struct qlog {
	char	*id;
	char	*json;
	size_t	 len;
	int64_t	 stored_at;
};

/* Turn logs[from..to) into one batch. 0 or -EIO. */
static int
queue_make_batch(struct dsource *s, struct qlog *logs, size_t from,
    size_t to, int64_t now)
{
	struct batch_body	 body;
	const char		**ids;
	char			 id[37];
	size_t			 i;
	int			 rc;

	util_uuid_v4(id);
	if ((rc = batch_body_begin(&body, s->id, id)) != 0)
		return rc;
	ids = util_xcalloc(to - from, sizeof(*ids));
	for (i = from; i < to; i++) {
		batch_body_add(&body, logs[i].json, logs[i].len);
		ids[i - from] = logs[i].id;
	}
	if ((rc = batch_body_end(&body)) == 0)
		rc = queue_insert_batch(s, id, false, ids, to - from,
		    body.buf, body.len, now);
	if (rc == 0)
		log_debug("source=%s batch=%s built logs=%zu bytes=%zu",
		    s->id, id, to - from, body.len);
	free(ids);
	batch_body_clear(&body);
	return rc;
}

/*
 * Build up to max_batches batches from the pending logs of s that have
 * no batch yet, oldest stored first, each up to max_logs and max_bytes.
 * A last, partial batch waits until its oldest log has lingered
 * linger_ms (s->linger_until). Returns how many were built, or -EIO.
 */
int
queue_build_logs(struct dsource *s, unsigned max_batches)
{
	mongoc_client_t		*c;
	mongoc_collection_t	*coll;
	mongoc_cursor_t		*cur;
	const bson_t		*doc;
	bson_t			*filter, *opts;
	bson_error_t		 berr;
	struct qlog		*logs = NULL;
	struct batch_body	 probe;
	size_t			 n = 0, i, from, limit;
	char			 err[512] = "";
	int64_t			 now = util_now_ms(), blen;
	int			 rc = 0, built = 0;
	bool			 exhausted;

	limit = (size_t)max_batches * (size_t)D.max_logs;
	if (limit == 0)
		return 0;
	filter = BCON_NEW("sourceId", BCON_UTF8(s->id),
	    "state", BCON_UTF8("pending"), "batchId", BCON_NULL);
	opts = BCON_NEW("projection", "{", "json", BCON_INT32(1),
	    "storedAt", BCON_INT32(1), "}",
	    "sort", "{", "seq", BCON_INT32(1), "}",
	    "limit", BCON_INT64((int64_t)limit));
	logs = util_xcalloc(limit, sizeof(*logs));
	c = store_pop(D.store);
	coll = store_coll(D.store, c, STORE_LOGS);
	cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	while (n < limit && mongoc_cursor_next(cur, &doc)) {
		const char	*id = store_bson_str(doc, "_id");
		bson_iter_t	 it;
		uint32_t	 jl = 0;
		const char	*js;

		if (id == NULL || !bson_iter_init_find(&it, doc, "json") ||
		    !BSON_ITER_HOLDS_UTF8(&it))
			continue;
		js = bson_iter_utf8(&it, &jl);
		logs[n].id = util_xstrdup(id);
		logs[n].json = malloc(jl + 1);
		if (logs[n].json == NULL) {
			free(logs[n].id);
			rc = -ENOMEM;
			break;
		}
		memcpy(logs[n].json, js, jl);
		logs[n].json[jl] = '\0';
		logs[n].len = jl;
		logs[n].stored_at = store_bson_int(doc, "storedAt", now);
		n++;
	}
	if (rc == 0 && mongoc_cursor_error(cur, &berr)) {
		snprintf(err, sizeof(err), "find logs: %.400s", berr.message);
		rc = -EIO;
	}
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	store_push(D.store, c);
	bson_destroy(filter);
	bson_destroy(opts);
	if (!deliverd_store_result(rc == -ENOMEM ? 0 : rc, err) ||
	    rc != 0) {
		built = -EIO;
		goto out;
	}
	exhausted = n < limit;
	s->linger_until = 0;

	/* Group in store order, by count and by bytes. */
	from = 0;
	memset(&probe, 0, sizeof(probe));
	while (from < n) {
		/* The envelope's size, approximately: 64 + ids. */
		blen = 64 + (int64_t)strlen(s->id) + 40;
		probe.len = (size_t)blen;
		probe.nlogs = 0;
		for (i = from; i < n && (int64_t)(i - from) < D.max_logs; i++) {
			if (!batch_body_fits(&probe, logs[i].len,
			    (size_t)D.max_bytes))
				break;
			probe.len += (probe.nlogs > 0 ? 1 : 0) + logs[i].len;
			probe.nlogs++;
		}
		if (i == n && !exhausted && from > 0)
			break;	/* a partial tail: next time, with more logs */
		if (i == n && exhausted && (int64_t)(i - from) < D.max_logs &&
		    D.linger_ms > 0) {
			int64_t	until = logs[from].stored_at + D.linger_ms;

			if (until > now + D.linger_ms)
				until = now + D.linger_ms;
			if (until > now) {
				/* Partial and fresh: let it fill a little. */
				s->linger_until = until;
				break;
			}
		}
		if ((rc = queue_make_batch(s, logs, from, i, now)) != 0) {
			built = -EIO;
			goto out;
		}
		built++;
		from = i;
	}
	s->logs_dirty = !exhausted;
out:
	for (i = 0; i < n; i++) {
		free(logs[i].id);
		free(logs[i].json);
	}
	free(logs);
	return built;
}

/* The stored body of b, malloc'd; NULL when it cannot be read. */
char *
queue_body(struct dsource *s, const struct dbatch *b, size_t *len)
{
	bson_t		*sel, *opts, out;
	bson_iter_t	 it;
	uint32_t	 l = 0;
	const char	*v;
	char		 err[512] = "", *body = NULL;
	int		 rc;

	sel = BCON_NEW("_id", BCON_UTF8(b->id));
	opts = BCON_NEW("projection", "{", "body", BCON_INT32(1), "}");
	rc = store_find_one(D.store, STORE_BATCHES, sel, opts, &out, err,
	    sizeof(err));
	bson_destroy(sel);
	bson_destroy(opts);
	if (!deliverd_store_result(rc < 0 ? rc : 0, err) || rc == 0)
		return NULL;
	if (bson_iter_init_find(&it, &out, "body") &&
	    BSON_ITER_HOLDS_UTF8(&it)) {
		v = bson_iter_utf8(&it, &l);
		if ((body = malloc(l + 1)) != NULL) {
			memcpy(body, v, l);
			body[l] = '\0';
			*len = l;
		}
	}
	bson_destroy(&out);
	return body;
}

/*
 * Record an attempt of b: its new state ("pending", "delivered",
 * "dead"), counters, next attempt, and the attempt itself (time, status,
 * error) appended to attempts. 0 or -EIO.
 */
int
queue_record(struct dsource *s, struct dbatch *b,
    const struct httpc_resp *resp, const char *state, int64_t now,
    const char *error)
{
	mongoc_client_t		*c;
	mongoc_collection_t	*coll;
	bson_t			*sel, upd, set, push, att;
	bson_error_t		 berr;
	char			 err[512] = "";
	int			 rc = 0;

	sel = BCON_NEW("_id", BCON_UTF8(b->id));
	bson_init(&upd);
	bson_append_document_begin(&upd, "$set", -1, &set);
	BSON_APPEND_UTF8(&set, "state", state);
	BSON_APPEND_INT64(&set, "nextAttemptAt", b->next_at);
	BSON_APPEND_INT32(&set, "nAttempts", (int32_t)b->n_attempts);
	BSON_APPEND_INT32(&set, "nErrors", (int32_t)b->n_errors);
	if (error != NULL && *error != '\0')
		BSON_APPEND_UTF8(&set, "lastError", error);
	else
		BSON_APPEND_NULL(&set, "lastError");
	if (strcmp(state, "delivered") == 0)
		BSON_APPEND_INT64(&set, "deliveredAt", now);
	if (strcmp(state, "dead") == 0)
		BSON_APPEND_INT64(&set, "deadAt", now);
	BSON_APPEND_INT64(&set, "epoch", s->lease.epoch);
	bson_append_document_end(&upd, &set);
	bson_append_document_begin(&upd, "$push", -1, &push);
	bson_append_document_begin(&push, "attempts", -1, &att);
	BSON_APPEND_INT64(&att, "at", now);
	BSON_APPEND_INT32(&att, "status", (int32_t)resp->status);
	if (error != NULL && *error != '\0')
		BSON_APPEND_UTF8(&att, "error", error);
	else
		BSON_APPEND_NULL(&att, "error");
	BSON_APPEND_INT64(&att, "elapsedMs", resp->elapsed_ms);
	bson_append_document_end(&push, &att);
	bson_append_document_end(&upd, &push);

	c = store_pop(D.store);
	coll = store_coll(D.store, c, STORE_BATCHES);
	if (!mongoc_collection_update_one(coll, sel, &upd, NULL, NULL,
	    &berr)) {
		snprintf(err, sizeof(err), "update batch: %.400s", berr.message);
		rc = -EIO;
	}
	mongoc_collection_destroy(coll);
	store_push(D.store, c);
	bson_destroy(sel);
	bson_destroy(&upd);
	return deliverd_store_result(rc, err) ? 0 : -EIO;
}

/*
 * The callback took b: its logs leave the pending state (before the
 * batch is marked, so a crash in between re-sends the batch, with the
 * same webhook-id, rather than strand its logs). 0 or -EIO.
 */
int
queue_mark_delivered(struct dsource *s, struct dbatch *b, int64_t now)
{
	bson_t	*sel, *set;
	char	 err[512] = "";
	int	 rc;

	if (b->is_alert)
		return 0;
	sel = BCON_NEW("sourceId", BCON_UTF8(s->id),
	    "state", BCON_UTF8("pending"), "batchId", BCON_UTF8(b->id));
	set = BCON_NEW("state", BCON_UTF8("delivered"),
	    "deliveredAt", BCON_INT64(now));
	rc = store_update_set(D.store, STORE_LOGS, sel, set, true, NULL, err,
	    sizeof(err));
	bson_destroy(sel);
	bson_destroy(set);
	return deliverd_store_result(rc, err) ? 0 : -EIO;
}
