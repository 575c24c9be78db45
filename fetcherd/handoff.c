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
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/batch/batch.h"
#include "lib/store/fstate.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

#define HANDOFF_MAX_DAYS 8 /* days one chunk may touch */
#define DAY_MS		 86400000LL

struct handoff *
handoff_new(enum handoff_kind kind, const char *sid, const char *app)
{
	struct handoff *h = util_xcalloc(1, sizeof(*h));

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
	if (h->doc != NULL)
		bson_destroy(h->doc);
	for (size_t i = 0; i < h->ndocs; i++) {
		bson_destroy(h->docs[i]);
		if (h->alerts != NULL && h->alerts[i] != NULL)
			bson_destroy(h->alerts[i]);
	}
	free(h->docs);
	free(h->alerts);
	free(h->alerted);
	free(h->lease);
	free(h->counts);
	for (size_t i = 0; i < h->nbf_ids; i++)
		free(h->bf_ids[i]);
	free(h->bf_ids);
	free(h);
}

void
handoff_seen_coll(int64_t time_ms, char out[24])
{
	struct tm tm;
	time_t	  t;

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
		return handoff_fail(h, -ESTALE,
		    "lease deadline passed before "
		    "the write");
	return 0;
}

/* The collection of an intent's bodies (older intents: `bodies`). */
static const char *
handoff_intent_bodies(const bson_t *doc)
{
	const char *c = store_bson_str(doc, "bodyColl");

	return c != NULL && store_body_coll_end(c) > 0 ? c : STORE_BODIES;
}

/*
 * Undo what an interrupted page store left of intent bid: if its batch
 * was committed (the metadata exists) nothing; else its seen ids (in each
 * day the intent names) and its body. Then the intent goes. 0 or -EIO.
 */
static int
handoff_clean_intent(struct handoff *h, const char *bid, const bson_t *doc)
{
	bson_iter_t it, ch;
	bson_t	   *sel, out;
	char	    coll[24];
	int	    rc = 0, found;

	sel = BCON_NEW("_id", BCON_UTF8(bid));
	found = store_find_one(child_store(), STORE_BATCHES, sel, NULL, &out,
	    h->err, sizeof(h->err));
	if (found == 1)
		bson_destroy(&out);
	if (found < 0) {
		bson_destroy(sel);
		return -EIO;
	}
	if (found == 0 && bson_iter_init_find(&it, doc, "days") &&
	    BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &ch))
		while (rc == 0 && bson_iter_next(&ch)) {
			bson_t *s2;

			if (!BSON_ITER_HOLDS_INT64(&ch) &&
			    !BSON_ITER_HOLDS_INT32(&ch))
				continue;
			handoff_seen_coll(bson_iter_as_int64(&ch) * DAY_MS,
			    coll);
			s2 = BCON_NEW("b", BCON_UTF8(bid));
			rc = store_delete(child_store(), coll, s2, true, NULL,
			    h->err, sizeof(h->err));
			bson_destroy(s2);
		}
	if (rc == 0 && found == 0)
		rc = store_delete(child_store(), handoff_intent_bodies(doc),
		    sel, false, NULL, h->err, sizeof(h->err));
	if (rc == 0)
		rc = store_delete(child_store(), STORE_INTENTS, sel, false,
		    NULL, h->err, sizeof(h->err));
	bson_destroy(sel);
	return rc != 0 ? -EIO : 0;
}

/*
 * Clean the intents of (source, app) that an interrupted page store left:
 * runs before the job's first page in a lease epoch and after a failure,
 * when none of the job's pages is being stored (a job stores one page at
 * a time; other applications' jobs have intents of their own, and so has
 * the source's backfill job: its intents say job "backfill", the live
 * job's say nothing, and each cleans only its own, never a page the other
 * is storing on the other worker thread).
 */
static int
handoff_recover(struct handoff *h)
{
	bson_t	   *filter, **docs;
	const char *id;
	size_t	    n, i;
	int	    rc;

	if (h->backfill)
		filter = BCON_NEW("sourceId", BCON_UTF8(h->sid), "app",
		    BCON_UTF8(h->app), "job", BCON_UTF8("backfill"));
	else
		filter = BCON_NEW("sourceId", BCON_UTF8(h->sid), "app",
		    BCON_UTF8(h->app), "job", "{", "$ne", BCON_UTF8("backfill"),
		    "}");
	rc = store_find_all(child_store(), STORE_INTENTS, filter, NULL, &docs,
	    &n, h->err, sizeof(h->err));
	bson_destroy(filter);
	if (rc == -ENOMEM)
		fatal("out of memory");
	for (i = 0; i < n && rc == 0; i++) {
		if ((id = store_bson_str(docs[i], "_id")) == NULL)
			continue;
		if ((rc = handoff_check_deadline(h)) == 0 &&
		    (rc = handoff_clean_intent(h, id, docs[i])) == 0)
			h->nrecovered++;
	}
	store_docs_free(docs, n);
	return rc;
}

/* One batch of a page: logs[from..to). */
struct hchunk {
	size_t	from, to;
	int64_t days[HANDOFF_MAX_DAYS];
	size_t	nd;
	size_t	nnew;
};

/* The days of c's logs; -EINVAL when too many. */
static int
handoff_chunk_days(struct handoff *h, struct hchunk *c)
{
	int64_t d;
	size_t	i, j;

	for (i = c->from; i < c->to; i++) {
		d = h->logs[i].time_ms / DAY_MS;
		for (j = 0; j < c->nd; j++)
			if (c->days[j] == d)
				break;
		if (j == c->nd) {
			if (c->nd == HANDOFF_MAX_DAYS)
				return -EINVAL;
			c->days[c->nd++] = d;
		}
	}
	return 0;
}

/*
 * Pages are stored in groups. On FerretDB a store call costs about the
 * same for one document as for hundreds, so the pages that wait while
 * the worker threads are busy go together: each of the five calls
 * (intents, seen ids per day, bodies, metadata, deleting the intents)
 * carries every page of the group (group commit: one page alone goes at
 * once; under load a group grows, and the calls per page fall). A page's
 * outcome is its own for the lease deadline (checked per page before the
 * first write and before the commit); a store error fails every page of
 * the group still being stored, and each is read again, as it would be
 * alone.
 */
#define HANDOFF_GROUP_PAGES 64	  /* pages per group at most */
#define HANDOFF_GROUP_LOGS  20000 /* logs per group, past one page */
#define HANDOFF_GROUPS	    2	  /* groups in flight (worker threads) */

struct hpage {
	struct handoff *h;
	struct hchunk  *ch;
	char (*ids)[37]; /* batch id of each chunk */
	size_t nc;
	bool   live; /* not failed yet */
};

struct hgroup {
	struct handoff **hs;
	size_t		 n;
};

/* Fail every live page of the group with what (and the store's err). */
static void
hgroup_fail(struct hpage *g, size_t n, int rc, const char *what,
    const char *err)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (g[i].live) {
			if (err != NULL && err[0] != '\0')
				snprintf(g[i].h->err, sizeof(g[i].h->err),
				    "%s: %.400s", what, err);
			handoff_fail(g[i].h, rc, what);
			g[i].live = false;
		}
}

/* Pages whose lease deadline passed drop out of the group. */
static size_t
hgroup_check_deadlines(struct hpage *g, size_t n)
{
	size_t i, live = 0;

	for (i = 0; i < n; i++)
		if (g[i].live) {
			if (handoff_check_deadline(g[i].h) != 0)
				g[i].live = false;
			else
				live++;
		}
	return live;
}

/* The intents of every chunk of every live page, in one insertMany. */
static int
hgroup_insert_intents(struct hpage *g, size_t n, char *err, size_t errlen)
{
	const bson_t **docs;
	bson_t	      *all, arr;
	char	       k[16];
	const char    *kp;
	size_t	       p, i, j, nd = 0, total = 0, ins, dups;
	int	       rc;

	for (p = 0; p < n; p++)
		if (g[p].live)
			total += g[p].nc;
	all = util_xcalloc(total, sizeof(*all));
	docs = util_xcalloc(total, sizeof(*docs));
	for (p = 0; p < n; p++) {
		struct handoff *h = g[p].h;

		if (!g[p].live)
			continue;
		for (i = 0; i < g[p].nc; i++) {
			bson_init(&all[nd]);
			BSON_APPEND_UTF8(&all[nd], "_id", g[p].ids[i]);
			BSON_APPEND_UTF8(&all[nd], "sourceId", h->sid);
			BSON_APPEND_UTF8(&all[nd], "app", h->app);
			if (h->backfill)
				BSON_APPEND_UTF8(&all[nd], "job", "backfill");
			BSON_APPEND_UTF8(&all[nd], "bodyColl", h->body_coll);
			bson_append_array_begin(&all[nd], "days", -1, &arr);
			for (j = 0; j < g[p].ch[i].nd; j++) {
				bson_uint32_to_string((uint32_t)j, &kp, k,
				    sizeof(k));
				bson_append_int64(&arr, kp, -1,
				    g[p].ch[i].days[j]);
			}
			bson_append_array_end(&all[nd], &arr);
			BSON_APPEND_INT64(&all[nd], "createdAt", util_now_ms());
			BSON_APPEND_INT64(&all[nd], "epoch", h->epoch);
			docs[nd] = &all[nd];
			nd++;
		}
	}
	rc = store_insert_many(child_store(), STORE_INTENTS, docs, nd, &ins,
	    &dups, NULL, err, errlen);
	for (i = 0; i < nd; i++)
		bson_destroy(&all[i]);
	free(all);
	free(docs);
	return rc != 0 ? -EIO : 0;
}

/*
 * The seen ids of every log of every live page, each pointing to its
 * chunk's intent, one insertMany per day; dup[] of each page set for
 * those already there.
 */
static int
hgroup_insert_seen(struct hpage *g, size_t n, char *err, size_t errlen)
{
	const bson_t **docs;
	bson_t	      *all;
	bool	      *dup, **where;
	size_t	       total = 0, p, c, i, k, d, m = 0, inserted, ndup, nd = 0;
	int64_t	      *day_of, days[HANDOFF_MAX_DAYS * 4], day;
	char	       coll[24], id[200];
	int	       rc = 0;

	for (p = 0; p < n; p++)
		if (g[p].live)
			total += g[p].h->n;
	all = util_xcalloc(total + 1, sizeof(*all));
	docs = util_xcalloc(total + 1, sizeof(*docs));
	where = util_xcalloc(total + 1, sizeof(*where));
	day_of = util_xcalloc(total + 1, sizeof(*day_of));
	dup = util_xcalloc(total + 1, sizeof(*dup));
	for (p = 0; p < n; p++) {
		struct handoff *h = g[p].h;

		if (!g[p].live)
			continue;
		for (c = 0; c < g[p].nc; c++)
			for (i = g[p].ch[c].from; i < g[p].ch[c].to; i++) {
				snprintf(id, sizeof(id), "%s:%s", h->sid,
				    h->logs[i].id);
				bson_init(&all[m]);
				BSON_APPEND_UTF8(&all[m], "_id", id);
				BSON_APPEND_UTF8(&all[m], "b", g[p].ids[c]);
				BSON_APPEND_UTF8(&all[m], "a", h->app);
				where[m] = &h->dup[i];
				day = day_of[m] = h->logs[i].time_ms / DAY_MS;
				for (d = 0; d < nd; d++)
					if (days[d] == day)
						break;
				if (d == nd && nd < nitems(days))
					days[nd++] = day;
				m++;
			}
	}
	for (d = 0; d < nd && rc == 0; d++) {
		size_t *idx = util_xcalloc(m + 1, sizeof(*idx));

		k = 0;
		for (i = 0; i < m; i++)
			if (day_of[i] == days[d]) {
				idx[k] = i;
				docs[k++] = &all[i];
			}
		handoff_seen_coll(days[d] * DAY_MS, coll);
		rc = store_insert_many(child_store(), coll, docs, k, &inserted,
		    &ndup, dup, err, errlen);
		for (i = 0; rc == 0 && i < k; i++)
			*where[idx[i]] = dup[i];
		free(idx);
	}
	for (i = 0; i < m; i++)
		bson_destroy(&all[i]);
	free(all);
	free(docs);
	free(where);
	free(day_of);
	free(dup);
	return rc != 0 ? -EIO : 0;
}

/* Body (into h->batches) and the two documents of chunk c as batch bid. */
static void
handoff_build(struct handoff *h, const struct hchunk *c, const char *bid,
    bson_t *body_doc, bson_t *meta)
{
	struct batch_body     body;
	struct handoff_batch *hb;
	bson_t		      ids, att;
	char		      wid[48], k[16];
	const char	     *kp;
	int64_t now = util_now_ms(), nlogs = 0, tmin = 0, tmax = 0;
	size_t	i;

	if (batch_body_begin(&body, h->sid, bid) != 0)
		fatal("out of memory");
	for (i = c->from; i < c->to; i++)
		if (!h->dup[i]) {
			batch_body_add(&body, h->logs[i].json,
			    h->logs[i].json_len);
			/* An event of unknown time holds the watermark. */
			if (tmin == 0 || h->logs[i].time_ms < tmin)
				tmin = h->logs[i].time_ms > 0 ?
				    h->logs[i].time_ms :
				    1;
			if (h->logs[i].time_ms <= 0)
				tmax = INT64_MAX;
			else if (h->logs[i].time_ms > tmax)
				tmax = h->logs[i].time_ms;
		}
	if (batch_body_end(&body) != 0)
		fatal("out of memory");
	batch_webhook_id(bid, wid);

	bson_init(body_doc);
	BSON_APPEND_UTF8(body_doc, "_id", bid);
	BSON_APPEND_UTF8(body_doc, "sourceId", h->sid);
	bson_append_utf8(body_doc, "body", -1, body.buf, (int)body.len);
	bson_append_array_begin(body_doc, "logIds", -1, &ids);
	for (i = c->from; i < c->to; i++)
		if (!h->dup[i]) {
			bson_uint32_to_string((uint32_t)nlogs++, &kp, k,
			    sizeof(k));
			bson_append_utf8(&ids, kp, -1, h->logs[i].id, -1);
		}
	bson_append_array_end(body_doc, &ids);

	bson_init(meta);
	BSON_APPEND_UTF8(meta, "_id", bid);
	BSON_APPEND_UTF8(meta, "sourceId", h->sid);
	BSON_APPEND_UTF8(meta, "kind", "logs");
	BSON_APPEND_UTF8(meta, "app", h->app);
	BSON_APPEND_INT64(meta, "nLogs", nlogs);
	BSON_APPEND_INT64(meta, "minTime", tmin); /* the oldest event */
	BSON_APPEND_INT64(meta, "maxTime", tmax); /* the newest */
	BSON_APPEND_INT64(meta, "bytes", (int64_t)body.len);
	BSON_APPEND_UTF8(meta, "webhookId", wid);
	BSON_APPEND_UTF8(meta, "bodyColl", h->body_coll);
	BSON_APPEND_UTF8(meta, "state", "pending");
	BSON_APPEND_INT64(meta, "createdAt", now);
	BSON_APPEND_INT64(meta, "nextAttemptAt", now);
	BSON_APPEND_INT32(meta, "nAttempts", 0);
	BSON_APPEND_INT32(meta, "nErrors", 0);
	BSON_APPEND_ARRAY_BEGIN(meta, "attempts", &att);
	bson_append_array_end(meta, &att);
	BSON_APPEND_NULL(meta, "deliveredAt");
	BSON_APPEND_INT64(meta, "epoch", h->epoch);

	hb = &h->batches[h->nbatches++];
	util_strlcpy(hb->id, bid, sizeof(hb->id));
	util_strlcpy(hb->webhook_id, wid, sizeof(hb->webhook_id));
	hb->nlogs = (uint32_t)nlogs;
	hb->created_at = now;
	hb->body = body.buf; /* kept for the hint */
	hb->len = body.len;
}

/*
 * Cut p's page into chunks of at most max_logs logs and max_bytes, each
 * with a new batch id. False (the page failed) when it cannot be cut.
 */
static bool
hpage_cut(struct hpage *p)
{
	struct handoff	 *h = p->h;
	struct batch_body probe;
	size_t		  from = 0, i, c;

	h->dup = util_xcalloc(h->n + 1, sizeof(*h->dup));
	p->ch = util_xcalloc(h->n + 1, sizeof(*p->ch));
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
			i = from + 1; /* one log always makes a batch */
		p->ch[p->nc].from = from;
		p->ch[p->nc].to = i;
		if (handoff_chunk_days(h, &p->ch[p->nc]) != 0) {
			handoff_fail(h, -EINVAL,
			    "a batch would span too "
			    "many days");
			return false;
		}
		p->nc++;
		from = i;
	}
	p->ids = util_xcalloc(p->nc + 1, sizeof(*p->ids));
	for (c = 0; c < p->nc; c++)
		util_uuid_v4(p->ids[c]);
	h->batches = util_xcalloc(p->nc + 1, sizeof(*h->batches));
	return true;
}

/*
 * Store a group of pages (see above): intents, seen ids, then the bodies
 * and metadata of the chunks that hold new logs (the metadata insert
 * commits a batch), and the intents deleted. Five store calls per group
 * (one more per extra day of events), inserts but the last, which scans
 * only the intents in flight.
 */
static void
handoff_pages(struct handoff **hs, size_t n)
{
	struct hpage  *g = util_xcalloc(n, sizeof(*g));
	const bson_t **bd, **md;
	bson_t	      *bdocs, *mdocs, *sel;
	char(*all_ids)[37], err[512], bcoll[STORE_BODY_COLL_MAX];
	size_t	p, c, i, nb = 0, nchunks = 0, nids = 0, ins, dups;
	int64_t t0, t1, t2;
	int	rc;

	/* Every page of the group keeps its bodies in one partition. */
	store_body_coll(util_now_ms(), bcoll);
	for (p = 0; p < n; p++) {
		g[p].h = hs[p];
		memcpy(hs[p]->body_coll, bcoll, sizeof(bcoll));
		g[p].live = hs[p]->rc == 0 && hpage_cut(&g[p]);
		nchunks += g[p].nc;
	}
	bdocs = util_xcalloc(nchunks + 1, sizeof(*bdocs));
	mdocs = util_xcalloc(nchunks + 1, sizeof(*mdocs));
	bd = util_xcalloc(nchunks + 1, sizeof(*bd));
	md = util_xcalloc(nchunks + 1, sizeof(*md));
	all_ids = util_xcalloc(nchunks + 1, sizeof(*all_ids));
	err[0] = '\0';

	t0 = util_mono_ms();
	if (hgroup_check_deadlines(g, n) == 0)
		goto out;
	if (hgroup_insert_intents(g, n, err, sizeof(err)) != 0) {
		hgroup_fail(g, n, -EIO, "insert intents", err);
		goto out;
	}
	t1 = util_mono_ms();
	if (hgroup_insert_seen(g, n, err, sizeof(err)) != 0) {
		hgroup_fail(g, n, -EIO, "insert seen ids", err);
		goto out;
	}
	t2 = util_mono_ms();
	/* A page whose lease ended meanwhile commits nothing. */
	(void)hgroup_check_deadlines(g, n);
	for (p = 0; p < n; p++) {
		struct handoff *h = g[p].h;

		if (!g[p].live)
			continue;
		for (c = 0; c < g[p].nc; c++) {
			for (i = g[p].ch[c].from; i < g[p].ch[c].to; i++)
				if (!h->dup[i])
					g[p].ch[c].nnew++;
			if (g[p].ch[c].nnew == 0)
				continue;
			handoff_build(h, &g[p].ch[c], g[p].ids[c], &bdocs[nb],
			    &mdocs[nb]);
			bd[nb] = &bdocs[nb];
			md[nb] = &mdocs[nb];
			h->nnew += g[p].ch[c].nnew;
			nb++;
		}
	}
	/*
	 * A partition may be dropped STORE_BODY_DROP_MS after its span once
	 * no intent names it: a group held up that long writes nothing.
	 */
	if (nb > 0 &&
	    util_now_ms() >= store_body_coll_end(bcoll) + STORE_BODY_LATE_MS) {
		hgroup_fail(g, n, -EIO,
		    "store bodies: too late for their "
		    "partition",
		    bcoll);
		goto out;
	}
	if (nb > 0) {
		rc = store_insert_many(child_store(), bcoll, bd, nb, &ins,
		    &dups, NULL, err, sizeof(err));
		if (rc == 0)
			rc = store_insert_many(child_store(), STORE_BATCHES, md,
			    nb, &ins, &dups, NULL, err, sizeof(err));
		if (rc != 0) {
			hgroup_fail(g, n, -EIO, "insert batches", err);
			goto out;
		}
	}
	/* Committed: the intents have done their job. */
	for (p = 0; p < n; p++)
		if (g[p].live)
			for (c = 0; c < g[p].nc; c++)
				memcpy(all_ids[nids++], g[p].ids[c],
				    sizeof(all_ids[0]));
	sel = store_sel_ids(all_ids, sizeof(*all_ids), nids, false);
	/* A failure here leaves them to the next recovery: harmless. */
	(void)store_delete(child_store(), STORE_INTENTS, sel, true, NULL, err,
	    sizeof(err));
	bson_destroy(sel);
	for (p = 0; p < n; p++)
		if (g[p].live) {
			g[p].h->ms_intent = t1 - t0;
			g[p].h->ms_seen = t2 - t1;
			g[p].h->ms_seal = util_mono_ms() - t2;
		}
out:
	for (c = 0; c < nb; c++) {
		bson_destroy(&bdocs[c]);
		bson_destroy(&mdocs[c]);
	}
	for (p = 0; p < n; p++) {
		struct handoff *h = g[p].h;

		if (h->rc != 0) {
			/* Nothing committed may be hinted. */
			for (c = 0; c < h->nbatches; c++)
				free(h->batches[c].body);
			h->nbatches = 0;
			h->nnew = 0;
		}
		free(g[p].ch);
		free(g[p].ids);
	}
	free(g);
	free(bdocs);
	free(mdocs);
	free(bd);
	free(md);
	free(all_ids);
}

/* The _id of h's cursors (and stats) document: "<source>:<app>", or key. */
static void
handoff_cursor_id(const struct handoff *h, char *out, size_t outlen)
{
	if (h->key[0] != '\0')
		util_strlcpy(out, h->key, outlen);
	else
		snprintf(out, outlen, "%s:%s", h->sid, h->app);
}

/* Cursor and stats of a finished window, under the lease. */
static void
handoff_save(struct handoff *h)
{
	char id[200];
	int  rc;

	if (handoff_check_deadline(h) != 0)
		return;
	if (h->lease != NULL &&
	    (rc = lease_check(child_store(), h->lease, h->err,
		 sizeof(h->err))) != 0) {
		h->rc = rc;
		return;
	}
	handoff_cursor_id(h, id, sizeof(id));
	if (h->cursor_doc != NULL &&
	    store_upsert(child_store(), STORE_CURSORS, id, h->cursor_doc,
		h->err, sizeof(h->err)) != 0) {
		h->rc = -EIO;
		return;
	}
	if (h->stats_doc != NULL &&
	    store_upsert(child_store(), STORE_STATS, id, h->stats_doc, h->err,
		sizeof(h->err)) != 0)
		h->rc = -EIO;
}

/*
 * The oldest cursor of any source (any instance) within Google's
 * retention, or INT64_MAX: a source still reading old days keeps their
 * partitions. -1 on a store error.
 */
struct hmin {
	int64_t		floor_ms, min, now;
	struct handoff *h;
	char	      **orphans; /* backfill documents of no request */
	size_t		norphans;
	char	      **fsids; /* sources in the fetch state, sorted */
	size_t		nfsids, capfsids;
};

static void
handoff_min_at(struct hmin *m, int64_t v)
{
	if (v > m->floor_ms && v < m->min)
		m->min = v;
}

/* The cursors of a source's entry of the fetch state (fstate_each). */
static int
handoff_min_entry(const char *sid, const bson_t *entry, void *arg)
{
	struct hmin *m = arg;
	bson_iter_t  it, sub;
	bson_t	     c;

	if (m->nfsids == m->capfsids) {
		char **nv;

		m->capfsids = m->capfsids ? m->capfsids * 2 : 256;
		if ((nv = reallocarray(m->fsids, m->capfsids, sizeof(*nv))) ==
		    NULL)
			return -ENOMEM;
		m->fsids = nv;
	}
	m->fsids[m->nfsids++] = util_xstrdup(sid);
	if (!bson_iter_init_find(&it, entry, "cursors") ||
	    !BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &sub))
		return 0;
	while (bson_iter_next(&sub)) {
		const uint8_t *data;
		uint32_t       len;

		if (!BSON_ITER_HOLDS_DOCUMENT(&sub))
			continue;
		bson_iter_document(&sub, &len, &data);
		if (bson_init_static(&c, data, len))
			handoff_min_at(m, store_bson_int(&c, "cursor", 0));
	}
	return 0;
}

static int
handoff_min_one(const bson_t *doc, void *arg)
{
	struct hmin *m = arg;
	int64_t	     v = store_bson_int(doc, "cursor", 0);
	const char  *bf = store_bson_str(doc, "backfillId");
	const char  *id = store_bson_str(doc, "_id");
	const char  *sid = store_bson_str(doc, "sourceId");

	/*
	 * A backfill's document whose request is gone (cancelled, or done
	 * and deleted) holds nothing: it goes, an hour after its last write
	 * (a request this instance's rescan has not seen yet is not gone).
	 */
	if (bf != NULL && id != NULL && m->h->bf_known &&
	    bsearch(&bf, m->h->bf_ids, m->h->nbf_ids, sizeof(char *),
		util_strp_cmp) == NULL) {
		if (store_bson_int(doc, "updatedAt", 0) < m->now - 3600000LL) {
			char **no = reallocarray(m->orphans, m->norphans + 1,
			    sizeof(*no));

			if (no == NULL)
				return -ENOMEM;
			m->orphans = no;
			no[m->norphans++] = util_xstrdup(id);
		}
		return 0;
	}
	/* An older version's cursor of a source now in the fetch state. */
	if (bf == NULL && sid != NULL && m->nfsids > 0 &&
	    bsearch(&sid, m->fsids, m->nfsids, sizeof(char *), util_strp_cmp) !=
		NULL)
		return 0;
	handoff_min_at(m, v);
	return 0;
}

static int64_t
handoff_min_cursor(struct handoff *h)
{
	bson_t	    q = BSON_INITIALIZER, *opts;
	struct hmin m = { util_now_ms() - 181LL * DAY_MS, INT64_MAX,
		util_now_ms(), h, NULL, 0, NULL, 0, 0 };
	int64_t	    deleted = 0;
	size_t	    i;

	if (h->nbf_ids > 1)
		qsort(h->bf_ids, h->nbf_ids, sizeof(char *), util_strp_cmp);
	opts = BCON_NEW("projection", "{", "cursor", BCON_INT32(1),
	    "backfillId", BCON_INT32(1), "updatedAt", BCON_INT32(1), "}");
	if (fstate_each(child_store(), handoff_min_entry, &m, h->err,
		sizeof(h->err)) != 0)
		m.min = -1;
	if (m.nfsids > 1)
		qsort(m.fsids, m.nfsids, sizeof(char *), util_strp_cmp);
	if (m.min >= 0 &&
	    store_each(child_store(), STORE_CURSORS, &q, opts, handoff_min_one,
		&m, h->err, sizeof(h->err)) != 0)
		m.min = -1;
	if (m.min >= 0 && m.norphans > 0) {
		bson_t *sel = store_sel_ids(m.orphans, sizeof(char *),
		    m.norphans, true);

		if (store_delete(child_store(), STORE_CURSORS, sel, true,
			&deleted, h->err, sizeof(h->err)) != 0)
			m.min = -1;
		else
			h->nbf_dropped = (unsigned)deleted;
		bson_destroy(sel);
	}
	for (i = 0; i < m.norphans; i++)
		free(m.orphans[i]);
	free(m.orphans);
	for (i = 0; i < m.nfsids; i++)
		free(m.fsids[i]);
	free(m.fsids);
	bson_destroy(opts);
	bson_destroy(&q);
	return m.min;
}

/*
 * Drop the seen_YYYYMMDD partitions of days that ended before the
 * horizon and before every source's cursor minus the overlap (a window
 * read again after a restart must still find its logs).
 */
static void
handoff_prune(struct handoff *h)
{
	char  **names = NULL, coll[24];
	size_t	n = 0, i;
	int64_t min;

	if ((min = handoff_min_cursor(h)) < 0) {
		h->rc = -EIO;
		return;
	}
	if (min != INT64_MAX && min - h->overlap_ms - DAY_MS < h->keep_after_ms)
		h->keep_after_ms = min - h->overlap_ms - DAY_MS;
	if (store_list_collections(child_store(), "seen_", &names, &n, h->err,
		sizeof(h->err)) != 0) {
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

/* HANDOFF_NAMES: see handoff.h. */
static void
handoff_names(struct handoff *h)
{
	const bson_t **al;
	size_t	       i, na = 0, ins, dups;

	h->dup = util_xcalloc(h->ndocs + 1, sizeof(*h->dup));
	h->alerted = util_xcalloc(h->ndocs + 1, sizeof(*h->alerted));
	if (store_insert_many(child_store(), h->coll, (const bson_t **)h->docs,
		h->ndocs, &ins, &dups, h->dup, h->err, sizeof(h->err)) != 0) {
		h->rc = -EIO;
		return;
	}
	if (h->alerts == NULL)
		return;
	al = util_xcalloc(h->ndocs + 1, sizeof(*al));
	for (i = 0; i < h->ndocs && na < h->alert_quota; i++)
		if (!h->dup[i] && h->alerts[i] != NULL) {
			al[na++] = h->alerts[i];
			h->alerted[i] = true;
		}
	/* Random ids: a duplicate cannot happen, any error is a failure. */
	if (na > 0 &&
	    store_insert_many(child_store(), STORE_ALERTS, al, na, &ins, &dups,
		NULL, h->err, sizeof(h->err)) != 0) {
		h->alerts_rc = -EIO;
		memset(h->alerted, 0, h->ndocs * sizeof(*h->alerted));
	}
	free(al);
}

static int
handoff_count_add(const char *sid, int64_t n, void *arg)
{
	struct handoff	     *h = arg;
	struct handoff_count *nc;

	if (h->ncounts == h->capcounts) {
		h->capcounts = h->capcounts ? h->capcounts * 2 : 64;
		nc = reallocarray(h->counts, h->capcounts, sizeof(*nc));
		if (nc == NULL)
			return -ENOMEM;
		h->counts = nc;
	}
	snprintf(h->counts[h->ncounts].sid, sizeof(h->counts->sid), "%s", sid);
	h->counts[h->ncounts++].n = n;
	return 0;
}

static void
handoff_work(void *arg)
{
	struct handoff *h = arg;

	h->rc = 0;
	if (h->recover && handoff_recover(h) != 0) {
		if (h->rc == 0)
			h->rc = -EIO;
		return;
	}
	switch (h->kind) {
	case HANDOFF_PAGE:
		handoff_pages(&h, 1);
		break;
	case HANDOFF_SAVE:
		handoff_save(h);
		break;
	case HANDOFF_PRUNE:
		handoff_prune(h);
		break;
	case HANDOFF_LOAD: {
		bson_t *sel, doc;
		char	id[200];
		int	rc;

		handoff_cursor_id(h, id, sizeof(id));
		sel = BCON_NEW("_id", BCON_UTF8(id));
		rc = store_find_one(child_store(), STORE_CURSORS, sel, NULL,
		    &doc, h->err, sizeof(h->err));
		if (rc == 1) {
			h->cursor_doc = bson_copy(&doc);
			bson_destroy(&doc);
		}
		if (rc >= 0 && h->key[0] == '\0') {
			rc = store_find_one(child_store(), STORE_STATS, sel,
			    NULL, &doc, h->err, sizeof(h->err));
			if (rc == 1) {
				h->stats_doc = bson_copy(&doc);
				bson_destroy(&doc);
			}
		}
		if (rc < 0)
			h->rc = -EIO;
		bson_destroy(sel);
		break;
	}
	case HANDOFF_UPSERT:
		if (h->lease != NULL) {
			int rc;

			if (handoff_check_deadline(h) != 0)
				break;
			if ((rc = lease_check(child_store(), h->lease, h->err,
				 sizeof(h->err))) != 0) {
				h->rc = rc;
				break;
			}
		}
		if (store_upsert(child_store(), h->coll, h->id, h->doc, h->err,
			sizeof(h->err)) != 0)
			h->rc = -EIO;
		break;
	case HANDOFF_INSERT: {
		int rc = store_insert_one(child_store(), h->coll, h->doc,
		    h->err, sizeof(h->err));

		if (rc != 0 && rc != -EEXIST)
			h->rc = -EIO;
		break;
	}
	case HANDOFF_NAMES:
		handoff_names(h);
		break;
	case HANDOFF_COUNT: {
		bson_t *sel = BCON_NEW("state", BCON_UTF8("pending"));
		int	rc;

		rc = store_count_by(child_store(), STORE_BATCHES, sel,
		    "sourceId", handoff_count_add, h, h->err, sizeof(h->err));
		if (rc == -ENOMEM)
			snprintf(h->err, sizeof(h->err),
			    "out of memory counting pending batches");
		if (rc != 0)
			h->rc = -EIO;
		bson_destroy(sel);
		break;
	}
	}
}

static void
handoff_done(void *arg)
{
	struct handoff *h = arg;

	h->done(h);
}

static struct handoff **hq; /* pages waiting for a group */
static size_t		hq_n, hq_cap;
static int		hq_groups; /* groups in flight */

static void
handoff_group_work(void *arg)
{
	struct hgroup *gr = arg;
	size_t	       i;

	for (i = 0; i < gr->n; i++) {
		struct handoff *h = gr->hs[i];

		h->rc = 0;
		if (h->recover && handoff_recover(h) != 0 && h->rc == 0)
			h->rc = -EIO;
	}
	handoff_pages(gr->hs, gr->n);
}

static int handoff_group_submit(struct hgroup *);

/* A group is stored: tell each page, then store those that waited. */
static void
handoff_group_done(void *arg)
{
	struct hgroup *gr = arg, *next;
	size_t	       i, n, logs;

	hq_groups--;
	for (i = 0; i < gr->n; i++)
		gr->hs[i]->done(gr->hs[i]);
	free(gr->hs);
	free(gr);
	if (hq_n == 0)
		return;
	for (n = 0, logs = 0; n < hq_n && n < HANDOFF_GROUP_PAGES; n++) {
		if (n > 0 && logs + hq[n]->n > HANDOFF_GROUP_LOGS)
			break;
		logs += hq[n]->n;
	}
	next = util_xcalloc(1, sizeof(*next));
	next->hs = util_xcalloc(n, sizeof(*next->hs));
	memcpy(next->hs, hq, n * sizeof(*hq));
	next->n = n;
	memmove(hq, hq + n, (hq_n - n) * sizeof(*hq));
	hq_n -= n;
	if (handoff_group_submit(next) != 0)
		fatal("cannot queue page stores on the worker");
}

static int
handoff_group_submit(struct hgroup *gr)
{
	int rc;

	if ((rc = worker_submit(handoff_group_work, handoff_group_done, gr)) !=
	    0)
		return rc;
	hq_groups++;
	return 0;
}

int
handoff_submit(struct handoff *h)
{
	struct hgroup *gr;
	int	       rc;

	if (h->kind != HANDOFF_PAGE)
		return worker_submit(handoff_work, handoff_done, h);
	if (hq_groups >= HANDOFF_GROUPS) {
		/* Goes with the next group (see "Pages are stored..."). */
		if (hq_n == hq_cap) {
			hq_cap = hq_cap ? hq_cap * 2 : 64;
			hq = util_xreallocarray(hq, hq_cap, sizeof(*hq));
		}
		hq[hq_n++] = h;
		return 0;
	}
	gr = util_xcalloc(1, sizeof(*gr));
	gr->hs = util_xcalloc(1, sizeof(*gr->hs));
	gr->hs[0] = h;
	gr->n = 1;
	if ((rc = handoff_group_submit(gr)) != 0) {
		free(gr->hs);
		free(gr);
	}
	return rc;
}
