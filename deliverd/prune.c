/*
 * What a delivered batch leaves behind. Its metadata in `batches` is
 * deleted at the 2xx (queue.c), or, while the batch's intent still exists,
 * marked "delivered" (a small document, in a collection kept as small as
 * what is pending). Its body is in a bodies_* partition (a span
 * of STORE_BODY_SPAN_MS of the time it was stored): nothing deletes it
 * there; every PRUNE_GC_EVERY_MS the partitions that ended
 * STORE_BODY_DROP_MS ago and that no intent and no undelivered batch
 * names are dropped whole (free at any size, where a deleteMany scans
 * every body of the collection on FerretDB 1.24). Bodies kept elsewhere
 * (`bodies` of older versions, bodies_dead for a replayed dead letter) are
 * deleted a few seconds after the 2xx, in bulk, with those of the other
 * batches delivered meanwhile (one deleteMany per PRUNE_EVERY_MS, not one
 * per batch). A sweep deletes metadata marked delivered (those kept for
 * an intent, and those of older versions) after PRUNE_KEEP_DELIVERED_MS,
 * with any such body a crash kept, but never the metadata of a batch
 * whose intent still exists: fetcherd,
 * cleaning the intents a crash left (fetcherd/handoff.h), takes a batch
 * without metadata for one never committed and reads its logs again, so
 * the metadata must outlive the intent however long the recovery waits
 * (a fetcherd down, a store outage); it used to be kept a minute and
 * hope that was enough.
 * The de-duplication is fetcherd's (seen_* partitions), never this.
 *
 * A dead letter's body is copied into bodies_dead when it becomes one
 * (queue.c), so that its partition can go. Dead letters are kept
 * delivery_dead_letter_retention seconds after they
 * became one (0: forever). At start and then hourly (more often when the
 * retention is shorter) one find lists the expired ones of the sources
 * whose lease this instance holds, one deleteMany removes their metadata
 * (still dead and expired: a replay meanwhile wins) and one their bodies
 * (bodies_dead, and `bodies` for letters of older versions);
 * each source's count goes into its stats (deadLettersPruned) and into
 * one dead_letters_pruned alert.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliverd/deliverd.h"
#include "deliverd/prune.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

#define PRUNE_EVERY_MS	    5000
#define PRUNE_MAX_IDS	    2000 /* per deleteMany */
#define PRUNE_DEAD_EVERY_MS (3600LL * 1000)
#define PRUNE_GC_EVERY_MS   (30LL * 1000)

/* Bodies to delete by id: in `bodies` (older versions) and bodies_dead. */
struct prune_ids {
	char **v;
	size_t n, cap;
};

struct prune_job {
	struct prune_ids legacy, dead; /* bodies to delete */
	bool		 sweep;	       /* and old delivered metadata */
	struct prune_ids swept;	       /* its ids (the metadata to delete) */
	char	       **swept_coll;   /* and where each one's body is */
	size_t		 kept;	       /* swept, kept for their intent */
	int64_t		 deleted;
	int		 rc;
	char		 err[512];
};

/* One drop of body partitions. */
struct gc_job {
	char **names; /* candidates: ended STORE_BODY_DROP_MS ago */
	size_t n;
	int    rc;
	char   err[512];
};

static struct event    *prune_ev;
static struct prune_ids done_legacy, done_dead; /* delivered */
static bool		gc_running;
static int64_t		gc_next;
static bool		prune_running;
static int64_t		prune_next_sweep;

/* One run of the dead-letter retention. */
struct dead_job {
	char  **owned; /* source ids leased here, sorted */
	size_t	nowned;
	int64_t cutoff; /* deadAt before this: expired */
	char  **ids;	/* expired batches of owned sources */
	char  **sids;	/* their source */
	size_t	nids;
	size_t	nseen;	/* found, owned or not */
	bool	more;	/* the find hit its limit */
	bool	legacy; /* some body is in `bodies` (older versions) */
	struct dead_count {
		char	sid[64];
		int64_t n;
	} * per;
	size_t nper;
	int    rc;
	char   err[512];
};

static bool    dead_running;
static int64_t dead_next; /* 0: at the first tick */

static void dead_maybe_start(int64_t);
static void gc_maybe_start(int64_t);

static void
prune_ids_add(struct prune_ids *l, const char *id)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->v = util_xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n++] = util_xstrdup(id);
}

static void
prune_ids_free(struct prune_ids *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* The list of coll's bodies to delete by id, or NULL (a partition). */
static struct prune_ids *
prune_list(struct prune_job *pj, const char *coll)
{
	if (coll == NULL || strcmp(coll, STORE_BODIES) == 0)
		return pj != NULL ? &pj->legacy : &done_legacy;
	if (strcmp(coll, STORE_BODIES_DEAD) == 0)
		return pj != NULL ? &pj->dead : &done_dead;
	return NULL;
}

void
prune_body(const char *batch_id, const char *coll)
{
	struct prune_ids *l = prune_list(NULL, coll);

	if (l != NULL)
		prune_ids_add(l, batch_id);
}

static int
prune_sweep_one(const bson_t *doc, void *arg)
{
	struct prune_job *pj = arg;
	const char	 *id = store_bson_str(doc, "_id");
	const char	 *coll = store_bson_str(doc, "bodyColl");

	if (id == NULL)
		return 0;
	prune_ids_add(&pj->swept, id);
	pj->swept_coll = util_xreallocarray(pj->swept_coll, pj->swept.n,
	    sizeof(*pj->swept_coll));
	pj->swept_coll[pj->swept.n - 1] = util_xstrdup(
	    coll != NULL ? coll : STORE_BODIES);
	return 0;
}

static int
prune_intent_one(const bson_t *doc, void *arg)
{
	struct prune_job *pj = arg;
	const char	 *id = store_bson_str(doc, "_id");
	size_t		  i, last;

	for (i = 0; id != NULL && i < pj->swept.n; i++)
		if (strcmp(pj->swept.v[i], id) == 0) {
			last = --pj->swept.n;
			free(pj->swept.v[i]);
			free(pj->swept_coll[i]);
			pj->swept.v[i] = pj->swept.v[last];
			pj->swept_coll[i] = pj->swept_coll[last];
			pj->kept++;
			return 0;
		}
	return 0;
}

/*
 * Worker: drop from the swept ids those whose intent still exists (one
 * find on `intents`, which holds only the pages in flight).
 */
static void
prune_keep_intents(struct prune_job *pj)
{
	bson_t *sel, *opts;

	sel = store_sel_ids(pj->swept.v, sizeof(char *), pj->swept.n, true);
	opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}");
	pj->rc = store_each(child_store(), STORE_INTENTS, sel, opts,
	    prune_intent_one, pj, pj->err, sizeof(pj->err));
	bson_destroy(sel);
	bson_destroy(opts);
}

/*
 * Worker: the ids of delivered metadata older than the keep time; the
 * bodies kept outside a partition join the lists to delete.
 */
static void
prune_sweep_ids(struct prune_job *pj)
{
	struct prune_ids *l;
	bson_t		 *filter, *opts;
	size_t		  i;

	filter = BCON_NEW("state", BCON_UTF8("delivered"), "deliveredAt", "{",
	    "$lt", BCON_INT64(util_now_ms() - PRUNE_KEEP_DELIVERED_MS), "}");
	opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "bodyColl",
	    BCON_INT32(1), "}", "limit", BCON_INT64(PRUNE_MAX_IDS));
	pj->rc = store_each(child_store(), STORE_BATCHES, filter, opts,
	    prune_sweep_one, pj, pj->err, sizeof(pj->err));
	bson_destroy(filter);
	bson_destroy(opts);
	if (pj->rc == 0 && pj->swept.n > 0)
		prune_keep_intents(pj);
	for (i = 0; pj->rc == 0 && i < pj->swept.n; i++)
		if ((l = prune_list(pj, pj->swept_coll[i])) != NULL)
			prune_ids_add(l, pj->swept.v[i]);
}

/* Worker: delete the bodies of l from coll, PRUNE_MAX_IDS per call. */
static void
prune_delete_ids(struct prune_job *pj, const char *coll,
    const struct prune_ids *l)
{
	size_t	off, n;
	bson_t *sel;
	int64_t m;

	for (off = 0; pj->rc == 0 && off < l->n; off += n) {
		n = l->n - off;
		if (n > PRUNE_MAX_IDS)
			n = PRUNE_MAX_IDS;
		sel = store_sel_ids(l->v + off, sizeof(char *), n, true);
		m = 0;
		pj->rc = store_delete(child_store(), coll, sel, true, &m,
		    pj->err, sizeof(pj->err));
		pj->deleted += m;
		bson_destroy(sel);
	}
}

static void
prune_work(void *arg)
{
	struct prune_job *pj = arg;
	bson_t		 *sel;

	if (pj->sweep)
		prune_sweep_ids(pj);
	prune_delete_ids(pj, STORE_BODIES, &pj->legacy);
	prune_delete_ids(pj, STORE_BODIES_DEAD, &pj->dead);
	/* The swept metadata goes after its bodies. */
	if (pj->rc == 0 && pj->swept.n > 0) {
		sel = store_sel_ids(pj->swept.v, sizeof(char *), pj->swept.n,
		    true);
		pj->rc = store_delete(child_store(), STORE_BATCHES, sel, true,
		    NULL, pj->err, sizeof(pj->err));
		bson_destroy(sel);
	}
}

static void
prune_done(void *arg)
{
	struct prune_job *pj = arg;
	size_t		  i;

	prune_running = false;
	if (pj->rc != 0) {
		(void)child_store_result(pj->rc >= 0, pj->err);
		/* Kept for the next round (the sweep finds them anyway). */
		log_debug("delivered bodies not pruned: %s", pj->err);
	} else if (pj->deleted > 0)
		log_debug("pruned %lld delivered bodies",
		    (long long)pj->deleted);
	for (i = 0; i < pj->swept.n; i++)
		free(pj->swept_coll[i]);
	free(pj->swept_coll);
	prune_ids_free(&pj->swept);
	prune_ids_free(&pj->legacy);
	prune_ids_free(&pj->dead);
	free(pj);
}

/*
 * Worker: drop the body partitions nothing needs any more. Candidates are
 * those that ended STORE_BODY_DROP_MS ago; the intents are read first,
 * then the batches. A group of pages inserts its intents (naming its
 * partition), checks that it is no later than STORE_BODY_LATE_MS after the
 * partition's end, writes the bodies, inserts the metadata, then deletes
 * the intents. Its intents were so in the store before end + LATE, i.e.
 * before this read of `intents` began (at end + DROP or later): the read
 * sees them, or they were deleted, which happens only once the metadata
 * is in, and the read of `batches` after it sees that. Either way the
 * partition stays.
 */
static int
gc_keep_one(const bson_t *doc, void *arg)
{
	struct gc_job *gj = arg;
	const char    *coll = store_bson_str(doc, "bodyColl");
	size_t	       i;

	for (i = 0; coll != NULL && i < gj->n; i++)
		if (gj->names[i][0] != '\0' && strcmp(gj->names[i], coll) == 0)
			gj->names[i][0] = '\0'; /* kept */
	return 0;
}

static void
gc_work(void *arg)
{
	struct gc_job *gj = arg;
	bson_t	       q = BSON_INITIALIZER, *opts, *sel, in;
	char	       k[16];
	const char    *kp;
	int64_t	       now = util_now_ms(), end;
	size_t	       i, k2 = 0, nc = 0;

	gj->rc = store_list_collections(child_store(), "bodies_", &gj->names,
	    &gj->n, gj->err, sizeof(gj->err));
	if (gj->rc != 0)
		return;
	for (i = 0; i < gj->n; i++) {
		end = store_body_coll_end(gj->names[i]);
		if (end < 0 || end + STORE_BODY_DROP_MS > now)
			gj->names[i][0] = '\0'; /* not one, or too young */
		else
			nc++;
	}
	if (nc == 0)
		goto out;
	opts = BCON_NEW("projection", "{", "bodyColl", BCON_INT32(1), "}");
	gj->rc = store_each(child_store(), STORE_INTENTS, &q, opts, gc_keep_one,
	    gj, gj->err, sizeof(gj->err));
	if (gj->rc == 0) {
		sel = bson_new();
		BSON_APPEND_DOCUMENT_BEGIN(sel, "bodyColl", &in);
		{
			bson_t arr;

			BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
			for (i = 0; i < gj->n; i++)
				if (gj->names[i][0] != '\0') {
					bson_uint32_to_string((uint32_t)k2++,
					    &kp, k, sizeof(k));
					bson_append_utf8(&arr, kp, -1,
					    gj->names[i], -1);
				}
			bson_append_array_end(&in, &arr);
		}
		bson_append_document_end(sel, &in);
		BSON_APPEND_DOCUMENT_BEGIN(sel, "state", &in);
		BSON_APPEND_UTF8(&in, "$ne", "delivered");
		bson_append_document_end(sel, &in);
		gj->rc = store_each(child_store(), STORE_BATCHES, sel, opts,
		    gc_keep_one, gj, gj->err, sizeof(gj->err));
		bson_destroy(sel);
	}
	bson_destroy(opts);
	/* What stays named in names[] is what was dropped. */
	for (i = 0; i < gj->n; i++) {
		if (gj->names[i][0] == '\0')
			continue;
		if (gj->rc == 0)
			gj->rc = store_drop(child_store(), gj->names[i],
			    gj->err, sizeof(gj->err));
		if (gj->rc != 0)
			gj->names[i][0] = '\0';
	}
out:
	bson_destroy(&q);
}

static void
gc_done(void *arg)
{
	struct gc_job *gj = arg;
	size_t	       i;

	gc_running = false;
	if (gj->rc != 0) {
		(void)child_store_result(gj->rc >= 0, gj->err);
		log_warn("body partitions not dropped: %s", gj->err);
	}
	for (i = 0; i < gj->n; i++) {
		if (gj->names[i][0] != '\0')
			log_info("dropped %s: every batch stored in it "
				 "was delivered",
			    gj->names[i]);
		free(gj->names[i]);
	}
	free(gj->names);
	free(gj);
}

/* Start a drop of body partitions when one is due. */
static void
gc_maybe_start(int64_t now)
{
	struct gc_job *gj;

	if (gc_running || now < gc_next)
		return;
	gc_next = now + PRUNE_GC_EVERY_MS;
	gj = util_xcalloc(1, sizeof(*gj));
	if (worker_submit(gc_work, gc_done, gj) != 0) {
		free(gj);
		return;
	}
	gc_running = true;
}

static void
prune_cb(evutil_socket_t fd, short what, void *arg)
{
	struct prune_job *pj;
	int64_t		  now = util_now_ms();

	(void)fd;
	(void)what;
	(void)arg;
	if (child_stopping() || !store_healthy(child_store()))
		return;
	dead_maybe_start(now);
	gc_maybe_start(now);
	if (prune_running)
		return;
	if (done_legacy.n == 0 && done_dead.n == 0 && now < prune_next_sweep)
		return;
	pj = util_xcalloc(1, sizeof(*pj));
	pj->legacy = done_legacy;
	pj->dead = done_dead;
	memset(&done_legacy, 0, sizeof(done_legacy));
	memset(&done_dead, 0, sizeof(done_dead));
	if (now >= prune_next_sweep) {
		pj->sweep = true;
		prune_next_sweep = now + PRUNE_KEEP_DELIVERED_MS / 2;
	}
	if (worker_submit(prune_work, prune_done, pj) != 0) {
		prune_done(pj);
		return;
	}
	prune_running = true;
}

static int
dead_find_one(const bson_t *doc, void *arg)
{
	struct dead_job *dj = arg;
	const char	*id = store_bson_str(doc, "_id");
	const char	*sid = store_bson_str(doc, "sourceId");
	const char	*coll = store_bson_str(doc, "bodyColl");

	dj->nseen++;
	if (id == NULL || sid == NULL ||
	    bsearch(&sid, dj->owned, dj->nowned, sizeof(*dj->owned),
		util_strp_cmp) == NULL)
		return 0;
	if (coll == NULL || strcmp(coll, STORE_BODIES) == 0)
		dj->legacy = true;
	dj->ids = util_xreallocarray(dj->ids, dj->nids + 1, sizeof(*dj->ids));
	dj->sids = util_xreallocarray(dj->sids, dj->nids + 1,
	    sizeof(*dj->sids));
	dj->ids[dj->nids] = util_xstrdup(id);
	dj->sids[dj->nids++] = util_xstrdup(sid);
	return 0;
}

/* Worker: the expired dead letters of the owned sources into dj. */
static void
dead_find(struct dead_job *dj)
{
	bson_t *filter, *opts;

	filter = BCON_NEW("state", BCON_UTF8("dead"), "deadAt", "{", "$lt",
	    BCON_INT64(dj->cutoff), "}");
	opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "sourceId",
	    BCON_INT32(1), "bodyColl", BCON_INT32(1), "}", "limit",
	    BCON_INT64(PRUNE_MAX_IDS));
	dj->rc = store_each(child_store(), STORE_BATCHES, filter, opts,
	    dead_find_one, dj, dj->err, sizeof(dj->err));
	dj->more = dj->nseen >= PRUNE_MAX_IDS;
	bson_destroy(filter);
	bson_destroy(opts);
}

static int
dead_survivor(const bson_t *doc, void *arg)
{
	struct dead_job *dj = arg;
	const char	*id = store_bson_str(doc, "_id");
	size_t		 j;

	for (j = 0; id != NULL && j < dj->nids; j++)
		if (strcmp(dj->ids[j], id) == 0)
			dj->ids[j][0] = '\0'; /* kept */
	return 0;
}

/*
 * Worker: drop from dj the ids whose metadata is still there (replayed
 * between the find and the delete), so that their bodies stay.
 */
static void
dead_keep_survivors(struct dead_job *dj)
{
	bson_t *sel, *opts;

	sel = store_sel_ids(dj->ids, sizeof(char *), dj->nids, true);
	opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}");
	dj->rc = store_each(child_store(), STORE_BATCHES, sel, opts,
	    dead_survivor, dj, dj->err, sizeof(dj->err));
	bson_destroy(sel);
	bson_destroy(opts);
}

/* Worker: what each source lost (added to its counters on the loop). */
static void
dead_count(struct dead_job *dj)
{
	size_t i, k;

	for (i = 0; i < dj->nids; i++) {
		if (dj->ids[i][0] == '\0')
			continue;
		for (k = 0; k < dj->nper; k++)
			if (strcmp(dj->per[k].sid, dj->sids[i]) == 0)
				break;
		if (k == dj->nper) {
			dj->per = util_xreallocarray(dj->per, dj->nper + 1,
			    sizeof(*dj->per));
			util_strlcpy(dj->per[k].sid, dj->sids[i],
			    sizeof(dj->per[k].sid));
			dj->per[k].n = 0;
			dj->nper++;
		}
		dj->per[k].n++;
	}
}

static void
dead_work(void *arg)
{
	struct dead_job *dj = arg;
	bson_t		*sel, cond;
	int64_t		 m = 0;

	dead_find(dj);
	if (dj->rc != 0 || dj->nids == 0)
		return;
	sel = store_sel_ids(dj->ids, sizeof(char *), dj->nids, true);
	BSON_APPEND_UTF8(sel, "state", "dead");
	BSON_APPEND_DOCUMENT_BEGIN(sel, "deadAt", &cond);
	BSON_APPEND_INT64(&cond, "$lt", dj->cutoff);
	bson_append_document_end(sel, &cond);
	dj->rc = store_delete(child_store(), STORE_BATCHES, sel, true, &m,
	    dj->err, sizeof(dj->err));
	bson_destroy(sel);
	if (dj->rc != 0)
		return;
	if ((size_t)m < dj->nids && (dead_keep_survivors(dj), dj->rc != 0))
		return;
	dead_count(dj);
	/*
	 * The bodies of what went (a crash before this leaves them; a letter
	 * whose body stayed in its partition, its copy having failed, lets
	 * the partition go now).
	 */
	sel = store_sel_ids(dj->ids, sizeof(char *), dj->nids, true);
	dj->rc = store_delete(child_store(), STORE_BODIES_DEAD, sel, true, NULL,
	    dj->err, sizeof(dj->err));
	if (dj->rc == 0 && dj->legacy)
		dj->rc = store_delete(child_store(), STORE_BODIES, sel, true,
		    NULL, dj->err, sizeof(dj->err));
	bson_destroy(sel);
}

static void
dead_done(void *arg)
{
	struct dead_job *dj = arg;
	struct dsource	*s;
	char		 msg[512];
	int64_t		 total = 0;
	size_t		 i;

	dead_running = false;
	if (dj->rc != 0) {
		(void)child_store_result(dj->rc >= 0, dj->err);
		log_warn("dead letters not pruned: %s", dj->err);
		dead_next = util_now_ms() + PRUNE_EVERY_MS * 12;
	} else if (dj->more)
		dead_next = 0; /* more to do: at the next tick */
	for (i = 0; i < dj->nper; i++) {
		total += dj->per[i].n;
		if ((s = deliverd_source_find(dj->per[i].sid)) == NULL)
			continue;
		/* A count lost with its source is only a metric. */
		deliverd_stats_pruned(s, dj->per[i].n);
		snprintf(msg, sizeof(msg),
		    "%lld dead letter(s) older than "
		    "%llds (delivery_dead_letter_retention) deleted with "
		    "their logs",
		    (long long)dj->per[i].n,
		    (long long)(deliverd_conf()->dead_retention_ms / 1000));
		(void)alerts_raise(s, "dead_letters_pruned", msg);
	}
	if (total > 0)
		log_info("pruned %lld dead letters of %zu sources",
		    (long long)total, dj->nper);
	for (i = 0; i < dj->nowned; i++)
		free(dj->owned[i]);
	for (i = 0; i < dj->nids; i++) {
		free(dj->ids[i]);
		free(dj->sids[i]);
	}
	free(dj->owned);
	free(dj->ids);
	free(dj->sids);
	free(dj->per);
	free(dj);
}

/* Start a dead-letter run when one is due. */
static void
dead_maybe_start(int64_t now)
{
	struct dead_job *dj;
	char	       **owned;
	size_t		 n;

	if (deliverd_conf()->dead_retention_ms <= 0 || dead_running ||
	    now < dead_next)
		return;
	if ((n = deliverd_sources_owned(&owned)) == 0)
		return; /* no lease yet: at the next tick */
	dead_next = now +
	    (deliverd_conf()->dead_retention_ms < PRUNE_DEAD_EVERY_MS ?
		    deliverd_conf()->dead_retention_ms :
		    PRUNE_DEAD_EVERY_MS);
	dj = util_xcalloc(1, sizeof(*dj));
	dj->owned = owned;
	dj->nowned = n;
	dj->cutoff = now - deliverd_conf()->dead_retention_ms;
	if (worker_submit(dead_work, dead_done, dj) != 0) {
		dead_done(dj);
		return;
	}
	dead_running = true;
}

void
prune_start(void)
{
	struct timeval tv = { PRUNE_EVERY_MS / 1000, 0 };

	if (prune_ev != NULL)
		return;
	prune_next_sweep = util_now_ms() + PRUNE_KEEP_DELIVERED_MS / 2;
	if ((prune_ev = event_new(child_base(), -1, EV_PERSIST, prune_cb,
		 NULL)) == NULL ||
	    event_add(prune_ev, &tv) != 0)
		fatal("out of memory");
}
