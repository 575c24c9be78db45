/*
 * The store side of a source's batches.
 *
 * Logs are never updated by deliverd (FerretDB 1.24 rewrites each updated
 * document in its own transaction, ~20 ms apiece): a log's delivery state
 * is the state of the batch that holds it. Batches are cut from the logs
 * past the source's watermark, in (seq, _id) order; each batch records
 * seqFrom/seqTo/lastLogId, so the watermark is max(source_state's
 * batchedSeq, the newest batch) and a crash anywhere never batches a log
 * twice. Logs younger than QUEUE_SETTLE_MS wait (their inserts may still
 * land out of order); a sweep batches any log that landed
 * behind the watermark anyway (every five minutes).
 *
 * Scans run on the worker thread (worker.h); single-document reads and
 * writes by _id (bodies, attempts) stay on the loop: they are fast.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/batch.h"
#include "deliverd/deliverd.h"
#include "lib/worker.h"
#include "lib/child.h"
#include "lib/log.h"
#include "lib/store.h"
#include "lib/util.h"

/* A batch as loaded or built, handed from the worker to the loop. */
struct qinfo {
	char		id[40];
	char		wid[48];
	bool		is_alert;
	int64_t		created_at, next_at, age_base;
	unsigned	n_attempts, n_errors;
	int64_t		nlogs;
	bool		replayed;
};

enum qjob_kind {
	QJ_TAKEOVER,
	QJ_LOAD,
	QJ_BUILD,
};

struct qjob {
	enum qjob_kind	 kind;
	char		 sid[64];
	int64_t		 epoch;
	struct dsource	*src;		/* lease deadline; kept alive */
	int64_t		 now;
	/* Build input. */
	int64_t		 w_seq;
	char		 w_id[200];
	size_t		 limit;
	int64_t		 max_logs, max_bytes;
	bool		 sweep;
	/* Output. */
	int		 rc;
	char		 err[512];
	struct qinfo	*b;
	size_t		 nb, capb;
	bool		 w_moved;
	int64_t		 new_w_seq;
	char		 new_w_id[200];
	bool		 exhausted;
	int64_t		 wait_until;
	size_t		 nlate;
	int		 nremarked;
};

struct qlog {
	char	*id;
	char	*json;
	size_t	 len;
	int64_t	 seq;
	int64_t	 stored_at;
};

/*
 * Copy one log of a scan (its store _id, its JSON of jl bytes, its seq and
 * storedAt) into l. 0 or -ENOMEM (l left empty).
 */
static int
qlog_fill(struct qlog *l, const char *id, const char *js, uint32_t jl,
    int64_t seq, const bson_t *doc)
{
	l->id = strdup(id);
	l->json = malloc(jl + 1);
	if (l->id == NULL || l->json == NULL) {
		free(l->id);
		free(l->json);
		l->id = l->json = NULL;
		return -ENOMEM;
	}
	memcpy(l->json, js, jl);
	l->json[jl] = '\0';
	l->len = jl;
	l->seq = seq;
	l->stored_at = store_bson_int(doc, "storedAt", 0);
	return 0;
}

static void
qjob_add(struct qjob *j, const struct qinfo *in)
{
	struct qinfo	*nb;

	if (j->nb == j->capb) {
		j->capb = j->capb ? j->capb * 2 : 16;
		if ((nb = realloc(j->b, j->capb * sizeof(*nb))) == NULL)
			abort();
		j->b = nb;
	}
	j->b[j->nb++] = *in;
}

static void
qjob_error(struct qjob *j, const char *what, const bson_error_t *e)
{
	if (j->rc == 0) {
		j->rc = -EIO;
		snprintf(j->err, sizeof(j->err), "%s: %.400s", what,
		    e != NULL ? e->message : "failed");
	}
}

/* (seq, id) > (wseq, wid)? */
static bool
qpast(int64_t seq, const char *id, int64_t wseq, const char *wid)
{
	return seq > wseq || (seq == wseq && strcmp(id, wid) > 0);
}

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


/* Worker: the pending batches of j->sid, replays recognised. */
static void
qwork_load_pending(struct qjob *j)
{
	mongoc_client_t		*c;
	mongoc_collection_t	*coll;
	mongoc_cursor_t		*cur;
	const bson_t		*doc;
	bson_t			*filter, *opts;
	bson_error_t		 berr;
	struct qinfo		 in;
	int64_t			 dead_at, replayed;

	filter = BCON_NEW("sourceId", BCON_UTF8(j->sid),
	    "state", BCON_UTF8("pending"));
	opts = BCON_NEW("projection", "{", "body", BCON_INT32(0),
	    "logIds", BCON_INT32(0), "attempts", BCON_INT32(0), "}",
	    "sort", "{", "createdAt", BCON_INT32(1), "}");
	c = store_pop(D.store);
	coll = store_coll(D.store, c, STORE_BATCHES);
	cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		const char *id = store_bson_str(doc, "_id");
		const char *kind = store_bson_str(doc, "kind");
		const char *wid = store_bson_str(doc, "webhookId");

		if (id == NULL || strlen(id) >= sizeof(in.id))
			continue;
		memset(&in, 0, sizeof(in));
		util_strlcpy(in.id, id, sizeof(in.id));
		batch_webhook_id(id, in.wid);
		if (wid != NULL)
			util_strlcpy(in.wid, wid, sizeof(in.wid));
		in.is_alert = kind != NULL && strcmp(kind, "alert") == 0;
		in.created_at = store_bson_int(doc, "createdAt", j->now);
		in.next_at = store_bson_int(doc, "nextAttemptAt", j->now);
		in.n_attempts = (unsigned)store_bson_int(doc, "nAttempts", 0);
		in.n_errors = (unsigned)store_bson_int(doc, "nErrors", 0);
		in.nlogs = store_bson_int(doc, "nLogs", 0);
		in.age_base = in.created_at;
		dead_at = store_bson_int(doc, "deadAt", 0);
		replayed = store_bson_int(doc, "replayedAt", 0);
		if (dead_at > 0 && replayed < dead_at) {
			/* A dead letter set back to pending: a replay. */
			bson_t	*sel = BCON_NEW("_id", BCON_UTF8(id));
			bson_t	*set = BCON_NEW("replayedAt",
			    BCON_INT64(j->now), "nextAttemptAt",
			    BCON_INT64(j->now), "nErrors", BCON_INT32(0),
			    "epoch", BCON_INT64(j->epoch));
			char	 e2[256];

			(void)store_update_set(D.store, STORE_BATCHES, sel,
			    set, false, NULL, e2, sizeof(e2));
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
	}
	if (mongoc_cursor_error(cur, &berr))
		qjob_error(j, "find batches", &berr);
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	store_push(D.store, c);
	bson_destroy(filter);
	bson_destroy(opts);
}

/*
 * Worker, on take-over: the watermark (source_state, then the newest
 * batch), the pending batches, and the alerts of undelivered alert
 * batches marked again (an alert batch is inserted before its alert is
 * marked).
 */
static void
qwork_takeover(void *arg)
{
	struct qjob		*j = arg;
	mongoc_client_t		*c;
	mongoc_collection_t	*coll;
	mongoc_cursor_t		*cur;
	const bson_t		*doc;
	bson_t			*sel, *opts, out;
	bson_error_t		 berr;
	char			 id[96], **ids;
	size_t			 n, i;
	int			 rc;

	snprintf(id, sizeof(id), "%s:deliver", j->sid);
	sel = BCON_NEW("_id", BCON_UTF8(id));
	rc = store_find_one(D.store, STORE_SOURCE_STATE, sel, NULL, &out,
	    j->err, sizeof(j->err));
	bson_destroy(sel);
	if (rc < 0) {
		j->rc = rc;
		return;
	}
	j->new_w_seq = 0;
	j->new_w_id[0] = '\0';
	if (rc == 1) {
		const char *wid = store_bson_str(&out, "batchedId");

		j->new_w_seq = store_bson_int(&out, "batchedSeq", 0);
		util_strlcpy(j->new_w_id, wid != NULL ? wid : "",
		    sizeof(j->new_w_id));
		bson_destroy(&out);
	}
	sel = BCON_NEW("sourceId", BCON_UTF8(j->sid), "kind",
	    BCON_UTF8("logs"));
	opts = BCON_NEW("sort", "{", "seqTo", BCON_INT32(-1), "lastLogId",
	    BCON_INT32(-1), "}", "projection", "{", "seqTo", BCON_INT32(1),
	    "lastLogId", BCON_INT32(1), "}");
	rc = store_find_one(D.store, STORE_BATCHES, sel, opts, &out, j->err,
	    sizeof(j->err));
	bson_destroy(sel);
	bson_destroy(opts);
	if (rc < 0) {
		j->rc = rc;
		return;
	}
	if (rc == 1) {
		int64_t		 seq = store_bson_int(&out, "seqTo", 0);
		const char	*lid = store_bson_str(&out, "lastLogId");

		if (lid != NULL && qpast(seq, lid, j->new_w_seq, j->new_w_id)) {
			j->new_w_seq = seq;
			util_strlcpy(j->new_w_id, lid, sizeof(j->new_w_id));
		}
		bson_destroy(&out);
	}
	j->w_moved = true;

	/* Alerts of undelivered alert batches: marked again. */
	sel = BCON_NEW("sourceId", BCON_UTF8(j->sid), "kind",
	    BCON_UTF8("alert"), "state", "{", "$in", "[",
	    BCON_UTF8("pending"), BCON_UTF8("dead"), "]", "}");
	opts = BCON_NEW("projection", "{", "alertIds", BCON_INT32(1), "}");
	c = store_pop(D.store);
	coll = store_coll(D.store, c, STORE_BATCHES);
	cur = mongoc_collection_find_with_opts(coll, sel, opts, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		const char *bid = store_bson_str(doc, "_id");

		if (bid == NULL)
			continue;
		n = queue_array_strs(doc, "alertIds", &ids);
		for (i = 0; i < n; i++) {
			bson_t	*s2 = BCON_NEW("_id", BCON_UTF8(ids[i]),
			    "state", BCON_UTF8("pending"));
			bson_t	*set = BCON_NEW("state", BCON_UTF8("batched"),
			    "batchId", BCON_UTF8(bid));
			int64_t	 m = 0;
			char	 e2[256];

			if (store_update_set(D.store, STORE_ALERTS, s2, set,
			    false, &m, e2, sizeof(e2)) == 0)
				j->nremarked += (int)m;
			bson_destroy(s2);
			bson_destroy(set);
		}
		queue_strs_free(ids, n);
	}
	if (mongoc_cursor_error(cur, &berr))
		qjob_error(j, "find alert batches", &berr);
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	store_push(D.store, c);
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

/*
 * Worker: insert one batch of logs[from..to) (in store order). 0, or -EIO
 * (-ESTALE when the lease is over: nothing inserted).
 */
static int
qwork_insert(struct qjob *j, struct qlog *logs, size_t from, size_t to)
{
	struct batch_body	 body;
	struct qinfo		 in;
	const char		**ids;
	bson_t			 doc, att;
	char			 id[37];
	int64_t			 smin = INT64_MAX, smax = 0;
	size_t			 i, last = from;
	int			 rc;

	if (util_mono_ms() >= atomic_load(&j->src->lease_deadline))
		return -ESTALE;
	util_uuid_v4(id);
	if ((rc = batch_body_begin(&body, j->sid, id)) != 0)
		return rc;
	ids = calloc(to - from, sizeof(*ids));
	if (ids == NULL) {
		batch_body_clear(&body);
		return -ENOMEM;
	}
	for (i = from; i < to; i++) {
		batch_body_add(&body, logs[i].json, logs[i].len);
		ids[i - from] = logs[i].id;
		if (logs[i].seq < smin)
			smin = logs[i].seq;
		if (qpast(logs[i].seq, logs[i].id, logs[last].seq,
		    logs[last].id))
			last = i;
	}
	smax = logs[last].seq;
	if ((rc = batch_body_end(&body)) != 0)
		goto out;
	memset(&in, 0, sizeof(in));
	util_strlcpy(in.id, id, sizeof(in.id));
	batch_webhook_id(id, in.wid);
	in.created_at = in.next_at = in.age_base = util_now_ms();
	in.nlogs = (int64_t)(to - from);

	bson_init(&doc);
	BSON_APPEND_UTF8(&doc, "_id", id);
	BSON_APPEND_UTF8(&doc, "sourceId", j->sid);
	BSON_APPEND_UTF8(&doc, "kind", "logs");
	queue_bson_ids(&doc, "logIds", ids, to - from);
	queue_bson_ids(&doc, "alertIds", NULL, 0);
	BSON_APPEND_INT64(&doc, "nLogs", in.nlogs);
	BSON_APPEND_INT64(&doc, "seqFrom", smin);
	BSON_APPEND_INT64(&doc, "seqTo", smax);
	BSON_APPEND_UTF8(&doc, "lastLogId", logs[last].id);
	bson_append_utf8(&doc, "body", -1, body.buf, (int)body.len);
	BSON_APPEND_UTF8(&doc, "webhookId", in.wid);
	BSON_APPEND_UTF8(&doc, "state", "pending");
	BSON_APPEND_INT64(&doc, "createdAt", in.created_at);
	BSON_APPEND_INT64(&doc, "nextAttemptAt", in.next_at);
	BSON_APPEND_INT32(&doc, "nAttempts", 0);
	BSON_APPEND_INT32(&doc, "nErrors", 0);
	BSON_APPEND_ARRAY_BEGIN(&doc, "attempts", &att);
	bson_append_array_end(&doc, &att);
	BSON_APPEND_NULL(&doc, "deliveredAt");
	BSON_APPEND_INT64(&doc, "epoch", j->epoch);
	rc = store_insert_one(D.store, STORE_BATCHES, &doc, j->err,
	    sizeof(j->err));
	bson_destroy(&doc);
	if (rc == 0)
		qjob_add(j, &in);
	else if (rc != -EEXIST)
		rc = -EIO;
out:
	free(ids);
	batch_body_clear(&body);
	return rc;
}

/*
 * Worker: group logs[0..n) into batches by count and bytes and insert
 * them. Returns the number of logs batched (a prefix), or -errno.
 */
static ssize_t
qwork_group(struct qjob *j, struct qlog *logs, size_t n)
{
	struct batch_body	probe;
	size_t			from = 0, i;
	int			rc;

	memset(&probe, 0, sizeof(probe));
	while (from < n) {
		probe.len = 64 + strlen(j->sid) + 40;
		probe.nlogs = 0;
		for (i = from; i < n && (int64_t)(i - from) < j->max_logs;
		    i++) {
			if (!batch_body_fits(&probe, logs[i].len,
			    (size_t)j->max_bytes))
				break;
			probe.len += (probe.nlogs > 0 ? 1 : 0) + logs[i].len;
			probe.nlogs++;
		}
		if ((rc = qwork_insert(j, logs, from, i)) != 0)
			return from > 0 ? (ssize_t)from : rc;
		from = i;
	}
	return (ssize_t)n;
}

/* Read the logs selected by filter/opts into *out (json included). */
static int
qwork_read_logs(struct qjob *j, const bson_t *filter, const bson_t *opts,
    struct qlog **out, size_t *nout, size_t max)
{
	mongoc_client_t		*c;
	mongoc_collection_t	*coll;
	mongoc_cursor_t		*cur;
	const bson_t		*doc;
	bson_error_t		 berr;
	struct qlog		*logs, *nl;
	size_t			 n = 0, cap = 64;
	int			 rc = 0;

	if ((logs = calloc(cap, sizeof(*logs))) == NULL)
		return -ENOMEM;
	c = store_pop(D.store);
	coll = store_coll(D.store, c, STORE_LOGS);
	cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	while (n < max && mongoc_cursor_next(cur, &doc)) {
		const char	*id = store_bson_str(doc, "_id");
		bson_iter_t	 it;
		uint32_t	 jl = 0;
		const char	*js;

		if (id == NULL || !bson_iter_init_find(&it, doc, "json") ||
		    !BSON_ITER_HOLDS_UTF8(&it))
			continue;
		if (n == cap) {
			cap *= 2;
			if ((nl = realloc(logs, cap * sizeof(*nl))) == NULL) {
				rc = -ENOMEM;
				break;
			}
			logs = nl;
		}
		js = bson_iter_utf8(&it, &jl);
		if ((rc = qlog_fill(&logs[n], id, js, jl,
		    store_bson_int(doc, "seq", 0), doc)) != 0)
			break;
		n++;
	}
	if (rc == 0 && mongoc_cursor_error(cur, &berr)) {
		qjob_error(j, "find logs", &berr);
		rc = -EIO;
	}
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	store_push(D.store, c);
	*out = logs;
	*nout = n;
	return rc;
}

static void
qlogs_free(struct qlog *logs, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		free(logs[i].id);
		free(logs[i].json);
	}
	free(logs);
}

static int
qlog_cmp(const void *a, const void *b)
{
	const struct qlog	*x = a, *y = b;

	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return strcmp(x->id, y->id);
}

static int
qstr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Worker: logs behind the watermark (within the sweep window) that no
 * batch holds -- inserted late, out of (seq, _id) order -- get batches.
 */
static void
qwork_sweep(struct qjob *j)
{
	mongoc_client_t		*c;
	mongoc_collection_t	*coll;
	mongoc_cursor_t		*cur;
	const bson_t		*doc;
	bson_t			*filter, *opts;
	bson_error_t		 berr;
	char			**held = NULL, **ids, **nh;
	size_t			 nheld = 0, n, i;
	struct qlog		*logs = NULL, *late = NULL;
	size_t			 nlogs = 0, nlate = 0;
	int64_t			 low = j->w_seq - QUEUE_SWEEP_WINDOW_MS * 1000;

	/* What the recent batches hold. */
	filter = BCON_NEW("sourceId", BCON_UTF8(j->sid), "kind",
	    BCON_UTF8("logs"), "seqTo", "{", "$gte", BCON_INT64(low), "}");
	opts = BCON_NEW("projection", "{", "logIds", BCON_INT32(1), "}");
	c = store_pop(D.store);
	coll = store_coll(D.store, c, STORE_BATCHES);
	cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		n = queue_array_strs(doc, "logIds", &ids);
		nh = realloc(held, (nheld + n + 1) * sizeof(*held));
		if (nh == NULL) {
			queue_strs_free(ids, n);
			break;
		}
		held = nh;
		for (i = 0; i < n; i++)
			held[nheld++] = ids[i];
		free(ids);
	}
	if (mongoc_cursor_error(cur, &berr))
		qjob_error(j, "find batches", &berr);
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	store_push(D.store, c);
	bson_destroy(filter);
	bson_destroy(opts);
	if (j->rc != 0)
		goto out;
	qsort(held, nheld, sizeof(*held), qstr_cmp);

	/* The logs of the window, up to the watermark. */
	filter = BCON_NEW("sourceId", BCON_UTF8(j->sid), "seq", "{", "$gte",
	    BCON_INT64(low), "$lte", BCON_INT64(j->w_seq), "}");
	opts = BCON_NEW("projection", "{", "json", BCON_INT32(1),
	    "seq", BCON_INT32(1), "storedAt", BCON_INT32(1), "}");
	(void)qwork_read_logs(j, filter, opts, &logs, &nlogs, SIZE_MAX);
	bson_destroy(filter);
	bson_destroy(opts);
	if (j->rc != 0)
		goto out;
	if ((late = calloc(nlogs + 1, sizeof(*late))) == NULL)
		goto out;
	for (i = 0; i < nlogs; i++) {
		const char *key = logs[i].id;

		if (qpast(logs[i].seq, logs[i].id, j->w_seq, j->w_id))
			continue;
		if (bsearch(&key, held, nheld, sizeof(*held), qstr_cmp) !=
		    NULL)
			continue;
		late[nlate++] = logs[i];
		logs[i].id = logs[i].json = NULL;
	}
	if (nlate > 0) {
		qsort(late, nlate, sizeof(*late), qlog_cmp);
		(void)qwork_group(j, late, nlate);
		j->nlate = nlate;
	}
out:
	if (logs != NULL)
		qlogs_free(logs, nlogs);
	if (late != NULL)
		qlogs_free(late, nlate);
	queue_strs_free(held, nheld);
}

/* Keep the limit smallest (seq, _id) of logs[0..*n): sort, free the rest. */
static void
qlogs_trim(struct qlog *logs, size_t *n, size_t limit)
{
	size_t	i;

	qsort(logs, *n, sizeof(*logs), qlog_cmp);
	for (i = limit; i < *n; i++) {
		free(logs[i].id);
		free(logs[i].json);
	}
	if (*n > limit)
		*n = limit;
}

/*
 * Worker: read the logs of j->sid past the watermark, unsorted (FerretDB
 * sorts in memory, slower than one plain scan), keeping the j->limit
 * oldest in a buffer of at most twice that. 0 or -errno.
 */
static int
qwork_read_past(struct qjob *j, struct qlog **out, size_t *nout)
{
	mongoc_client_t		*c;
	mongoc_collection_t	*coll;
	mongoc_cursor_t		*cur;
	const bson_t		*doc;
	bson_t			*filter, *opts;
	bson_error_t		 berr;
	struct qlog		*logs;
	size_t			 n = 0, cap = 2 * j->limit;
	int			 rc = 0;
	bool			 trimmed = false;

	if ((logs = calloc(cap, sizeof(*logs))) == NULL)
		return -ENOMEM;
	filter = BCON_NEW("sourceId", BCON_UTF8(j->sid), "seq", "{", "$gte",
	    BCON_INT64(j->w_seq), "}");
	opts = BCON_NEW("projection", "{", "json", BCON_INT32(1),
	    "seq", BCON_INT32(1), "storedAt", BCON_INT32(1), "}");
	c = store_pop(D.store);
	coll = store_coll(D.store, c, STORE_LOGS);
	cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		const char	*id = store_bson_str(doc, "_id");
		int64_t		 seq = store_bson_int(doc, "seq", 0);
		bson_iter_t	 it;
		uint32_t	 jl = 0;
		const char	*js;

		if (id == NULL || !qpast(seq, id, j->w_seq, j->w_id) ||
		    !bson_iter_init_find(&it, doc, "json") ||
		    !BSON_ITER_HOLDS_UTF8(&it))
			continue;
		if (n == cap) {
			qlogs_trim(logs, &n, j->limit);
			trimmed = true;
		}
		js = bson_iter_utf8(&it, &jl);
		if ((rc = qlog_fill(&logs[n], id, js, jl, seq, doc)) != 0)
			break;
		n++;
	}
	if (rc == 0 && mongoc_cursor_error(cur, &berr)) {
		qjob_error(j, "find logs", &berr);
		rc = -EIO;
	}
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	store_push(D.store, c);
	bson_destroy(filter);
	bson_destroy(opts);
	j->exhausted = !trimmed && n <= j->limit;
	qlogs_trim(logs, &n, j->limit);
	*out = logs;
	*nout = n;
	return rc;
}

/*
 * Worker: batches from the logs past the watermark, oldest first, at
 * most j->limit logs; logs younger than QUEUE_SETTLE_MS wait
 * (j->wait_until says until when).
 */
static void
qwork_build(void *arg)
{
	struct qjob	*j = arg;
	struct qlog	*logs = NULL;
	size_t		 n = 0, ready;
	ssize_t		 done;
	bool		 all;

	if (j->sweep)
		qwork_sweep(j);
	if (j->rc != 0)
		return;
	(void)qwork_read_past(j, &logs, &n);
	if (j->rc != 0)
		goto out;
	all = j->exhausted;
	/* The settled prefix. */
	for (ready = 0; ready < n; ready++)
		if (logs[ready].stored_at > j->now - QUEUE_SETTLE_MS) {
			j->wait_until = logs[ready].stored_at +
			    QUEUE_SETTLE_MS;
			break;
		}
	j->exhausted = all && ready == n;
	if (ready == 0)
		goto out;
	done = qwork_group(j, logs, ready);
	if (done > 0) {
		j->w_moved = true;
		j->new_w_seq = logs[done - 1].seq;
		util_strlcpy(j->new_w_id, logs[done - 1].id,
		    sizeof(j->new_w_id));
	}
	if (done < (ssize_t)ready) {
		j->exhausted = false;
		if (j->rc == 0) {
			j->rc = done < 0 ? (int)done : -EIO;
			if (j->err[0] == '\0')
				snprintf(j->err, sizeof(j->err), "insert "
				    "batch: %s", strerror(-j->rc));
		}
	}
out:
	qlogs_free(logs, n);
}

/* Merge loaded pending batches into s's queue. */
static void
queue_merge(struct dsource *s, struct qjob *j, bool drop_unseen)
{
	struct dbatch	*b, *nb;
	size_t		 i;

	TAILQ_FOREACH(b, &s->queue, entry)
		b->seen = false;
	for (i = 0; i < j->nb; i++) {
		struct qinfo *in = &j->b[i];

		if ((b = queue_find(s, in->id)) != NULL) {
			b->seen = true;
			continue;
		}
		b = util_xcalloc(1, sizeof(*b));
		b->src = s;
		util_strlcpy(b->id, in->id, sizeof(b->id));
		util_strlcpy(b->webhook_id, in->wid, sizeof(b->webhook_id));
		b->is_alert = in->is_alert;
		b->created_at = in->created_at;
		b->next_at = in->next_at;
		b->age_base = in->age_base;
		b->n_attempts = in->n_attempts;
		b->n_errors = in->n_errors;
		b->n_fail = in->replayed ? 0 : in->n_attempts;
		b->nlogs = in->nlogs;
		b->seen = true;
		if (in->replayed)
			log_info("source=%s batch=%s replaying dead letter "
			    "webhook-id=%s", s->id, b->id, b->webhook_id);
		queue_insert_sorted(s, b);
	}
	if (!drop_unseen)
		return;
	/* Gone from the pending state elsewhere; younger ones are ours. */
	TAILQ_FOREACH_SAFE(b, &s->queue, entry, nb)
		if (!b->seen && !b->inflight && b->created_at < j->now)
			queue_remove(s, b);
}

/* Loop: a job finished. */
static void
qjob_done(void *arg)
{
	struct qjob	*j = arg;
	struct dsource	*s = j->src;
	bool		 ok;

	ok = deliverd_store_result(j->rc == -ESTALE ? 0 : j->rc, j->err);
	s->busy = false;
	if (s->zombie) {
		deliverd_source_destroy(s);
		goto out;
	}
	if (!s->lease.held || s->lease.epoch != j->epoch)
		goto next;	/* another life of this source's lease */
	switch (j->kind) {
	case QJ_TAKEOVER:
		if (!ok)
			break;
		s->w_seq = j->new_w_seq;
		util_strlcpy(s->w_id, j->new_w_id, sizeof(s->w_id));
		queue_merge(s, j, true);
		s->ready = true;
		s->next_load = util_now_ms() + QUEUE_LOAD_EVERY_MS;
		s->next_sweep = util_now_ms() + QUEUE_SWEEP_EVERY_MS;
		log_info("source=%s queue loaded: %u undelivered batches, "
		    "watermark seq=%lld%s", s->id, s->nqueue,
		    (long long)s->w_seq, j->nremarked > 0 ?
		    ", alerts re-marked" : "");
		break;
	case QJ_LOAD:
		if (ok)
			queue_merge(s, j, true);
		s->next_load = util_now_ms() + QUEUE_LOAD_EVERY_MS;
		break;
	case QJ_BUILD:
		/* Whatever was inserted is queued, even after an error. */
		queue_merge(s, j, false);
		if (j->w_moved) {
			s->w_seq = j->new_w_seq;
			util_strlcpy(s->w_id, j->new_w_id, sizeof(s->w_id));
			s->written_status = NULL;	/* persist it */
			deliverd_source_state_write(s);
		}
		if (j->sweep && ok)
			s->next_sweep = util_now_ms() + QUEUE_SWEEP_EVERY_MS;
		if (j->nlate > 0)
			log_warn("source=%s %zu logs were stored behind the "
			    "delivery watermark; batched now", s->id,
			    j->nlate);
		if (ok) {
			s->logs_dirty = !j->exhausted;
			s->linger_until = j->wait_until;
		}
		if (j->nb > 0)
			log_debug("source=%s built %zu batches", s->id, j->nb);
		break;
	}
next:
	deliverd_source_job_done(s);
out:
	free(j->b);
	free(j);
}

static struct qjob *
qjob_new(struct dsource *s, enum qjob_kind kind)
{
	struct qjob	*j = util_xcalloc(1, sizeof(*j));

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
	int	rc;

	if ((rc = worker_submit(fn, qjob_done, j)) != 0) {
		free(j);
		return rc;
	}
	s->busy = true;
	return 0;
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

int
queue_build_start(struct dsource *s, unsigned max_batches)
{
	struct qjob	*j = qjob_new(s, QJ_BUILD);

	j->w_seq = s->w_seq;
	util_strlcpy(j->w_id, s->w_id, sizeof(j->w_id));
	j->max_logs = D.max_logs;
	j->max_bytes = D.max_bytes;
	j->limit = (size_t)max_batches * (size_t)D.max_logs;
	if (j->limit > QUEUE_BUILD_LOGS_MAX)
		j->limit = QUEUE_BUILD_LOGS_MAX;
	j->sweep = j->now >= s->next_sweep;
	return qjob_submit(s, j, qwork_build);
}

/*
 * Loop: insert an alert batch, then mark its alert (a crash in between
 * is repaired at take-over). 0 or -EIO.
 */
int
queue_insert_alert_batch(struct dsource *s, const char *alert_id,
    const char *body, size_t body_len, int64_t now)
{
	struct dbatch	*b;
	const char	*ids[1] = { alert_id };
	bson_t		 doc, att, *sel, *set;
	char		 id[37], wid[48], err[512] = "";
	int		 rc;

	util_uuid_v4(id);
	batch_webhook_id(id, wid);
	bson_init(&doc);
	BSON_APPEND_UTF8(&doc, "_id", id);
	BSON_APPEND_UTF8(&doc, "sourceId", s->id);
	BSON_APPEND_UTF8(&doc, "kind", "alert");
	queue_bson_ids(&doc, "logIds", NULL, 0);
	queue_bson_ids(&doc, "alertIds", ids, 1);
	BSON_APPEND_INT64(&doc, "nLogs", 0);
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
	if (!deliverd_store_result(rc == -EEXIST ? 0 : rc, err) || rc != 0)
		return -EIO;
	sel = BCON_NEW("_id", BCON_UTF8(alert_id), "state",
	    BCON_UTF8("pending"));
	set = BCON_NEW("state", BCON_UTF8("batched"), "batchId",
	    BCON_UTF8(id));
	rc = store_update_set(D.store, STORE_ALERTS, sel, set, false, NULL,
	    err, sizeof(err));
	bson_destroy(sel);
	bson_destroy(set);
	b = util_xcalloc(1, sizeof(*b));
	b->src = s;
	util_strlcpy(b->id, id, sizeof(b->id));
	util_strlcpy(b->webhook_id, wid, sizeof(b->webhook_id));
	b->is_alert = true;
	b->created_at = b->next_at = b->age_base = now;
	b->seen = true;
	queue_insert_sorted(s, b);
	if (!deliverd_store_result(rc, err))
		return -EIO;	/* queued; the mark is repaired later */
	return 0;
}
