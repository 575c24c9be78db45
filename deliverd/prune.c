/*
 * What a delivered batch leaves behind. Its metadata in `batches` is
 * marked "delivered" at the 2xx (a small document, in a collection kept as
 * small as what is pending); its body in `bodies` is deleted a few seconds
 * later, in bulk, with those of the other batches delivered meanwhile
 * (every delete scans the collection on FerretDB 1.24, so one deleteMany
 * per PRUNE_EVERY_MS, not one per batch). A sweep deletes the delivered
 * metadata after PRUNE_KEEP_DELIVERED_MS, with any body a crash kept,
 * but never the metadata of a batch whose intent still exists: fetcherd,
 * cleaning the intents a crash left (fetcherd/handoff.h), takes a batch
 * without metadata for one never committed and reads its logs again, so
 * the metadata must outlive the intent however long the recovery waits
 * (a fetcherd down, a store outage); it used to be kept a minute and
 * hope that was enough.
 * The de-duplication is fetcherd's (seen_* partitions), never this.
 *
 * Dead letters are kept delivery_dead_letter_retention seconds after they
 * became one (0: forever). At start and then hourly (more often when the
 * retention is shorter) one find lists the expired ones of the sources
 * whose lease this instance holds, one deleteMany removes their metadata
 * (still dead and expired: a replay meanwhile wins) and one their bodies;
 * each source's count goes into its stats (deadLettersPruned) and into
 * one dead_letters_pruned alert.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliverd/deliverd.h"
#include "deliverd/prune.h"
#include "runtime/child.h"
#include "lib/base/log.h"
#include "lib/store/store.h"
#include "lib/base/util.h"
#include "lib/store/worker.h"

#define PRUNE_EVERY_MS	    5000
#define PRUNE_MAX_IDS	    2000 /* per deleteMany */
#define PRUNE_RECENT	    1024 /* delivered ids remembered */
#define PRUNE_DEAD_EVERY_MS (3600LL * 1000)

struct prune_job {
	char  **ids; /* bodies to delete */
	size_t	nids;
	bool	sweep;	   /* and old delivered metadata */
	size_t	keep_from; /* swept ids start here */
	size_t	kept;	   /* swept, kept for their intent */
	int64_t deleted;
	int	rc;
	char	err[512];
};

static struct event *prune_ev;
static char	   **done_ids; /* delivered, bodies to delete */
static size_t	     ndone, capdone;
static bool	     prune_running;
static int64_t	     prune_next_sweep;
static char	     recent[PRUNE_RECENT][40];
static unsigned	     recent_pos;

/* One run of the dead-letter retention. */
struct dead_job {
	char  **owned; /* source ids leased here, sorted */
	size_t	nowned;
	int64_t cutoff; /* deadAt before this: expired */
	char  **ids;	/* expired batches of owned sources */
	char  **sids;	/* their source */
	size_t	nids;
	size_t	nseen; /* found, owned or not */
	bool	more;  /* the find hit its limit */
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

void
prune_recent(const char *batch_id)
{
	util_strlcpy(recent[recent_pos], batch_id, sizeof(recent[0]));
	recent_pos = (recent_pos + 1) % PRUNE_RECENT;
}

void
prune_forget(const char *batch_id)
{
	unsigned i;

	for (i = 0; i < PRUNE_RECENT; i++)
		if (strcmp(recent[i], batch_id) == 0)
			recent[i][0] = '\0';
}

void
prune_body(const char *batch_id)
{
	if (ndone == capdone) {
		capdone = capdone ? capdone * 2 : 256;
		done_ids = util_xreallocarray(done_ids, capdone,
		    sizeof(*done_ids));
	}
	done_ids[ndone++] = util_xstrdup(batch_id);
}

bool
prune_recently_delivered(const char *batch_id)
{
	unsigned i;

	for (i = 0; i < PRUNE_RECENT; i++)
		if (recent[i][0] != '\0' && strcmp(recent[i], batch_id) == 0)
			return true;
	return false;
}

static int
prune_sweep_one(const bson_t *doc, void *arg)
{
	struct prune_job *pj = arg;
	const char	 *id = store_bson_str(doc, "_id");

	if (id == NULL)
		return 0;
	pj->ids = util_xreallocarray(pj->ids, pj->nids + 1, sizeof(*pj->ids));
	pj->ids[pj->nids++] = util_xstrdup(id);
	return 0;
}

static int
prune_intent_one(const bson_t *doc, void *arg)
{
	struct prune_job *pj = arg;
	const char	 *id = store_bson_str(doc, "_id");
	size_t		  i;

	for (i = pj->keep_from; id != NULL && i < pj->nids; i++)
		if (strcmp(pj->ids[i], id) == 0) {
			free(pj->ids[i]);
			pj->ids[i] = pj->ids[--pj->nids];
			pj->kept++;
			return 0;
		}
	return 0;
}

/*
 * Worker: drop from ids[first..] those whose intent still exists (one
 * find on `intents`, which holds only the pages in flight).
 */
static void
prune_keep_intents(struct prune_job *pj, size_t first)
{
	bson_t *sel, *opts;

	sel = store_sel_ids(pj->ids + first, sizeof(char *), pj->nids - first,
	    true);
	opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}");
	pj->keep_from = first;
	pj->rc = store_each(child_store(), STORE_INTENTS, sel, opts,
	    prune_intent_one, pj, pj->err, sizeof(pj->err));
	bson_destroy(sel);
	bson_destroy(opts);
}

/* Worker: the ids of delivered metadata older than the keep time. */
static void
prune_sweep_ids(struct prune_job *pj)
{
	bson_t *filter, *opts;
	size_t	first = pj->nids;

	filter = BCON_NEW("state", BCON_UTF8("delivered"), "deliveredAt", "{",
	    "$lt", BCON_INT64(util_now_ms() - PRUNE_KEEP_DELIVERED_MS), "}");
	opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}", "limit",
	    BCON_INT64(PRUNE_MAX_IDS));
	pj->rc = store_each(child_store(), STORE_BATCHES, filter, opts,
	    prune_sweep_one, pj, pj->err, sizeof(pj->err));
	bson_destroy(filter);
	bson_destroy(opts);
	if (pj->rc == 0 && pj->nids > first)
		prune_keep_intents(pj, first);
}

static void
prune_work(void *arg)
{
	struct prune_job *pj = arg;
	size_t		  first = pj->nids, off, n;
	bson_t		 *sel;
	int64_t		  m;

	if (pj->sweep)
		prune_sweep_ids(pj);
	for (off = 0; pj->rc == 0 && off < pj->nids; off += n) {
		n = pj->nids - off;
		if (n > PRUNE_MAX_IDS)
			n = PRUNE_MAX_IDS;
		sel = store_sel_ids(pj->ids + off, sizeof(char *), n, true);
		m = 0;
		pj->rc = store_delete(child_store(), STORE_BODIES, sel, true,
		    &m, pj->err, sizeof(pj->err));
		pj->deleted += m;
		bson_destroy(sel);
	}
	/* The swept metadata goes after its bodies. */
	if (pj->rc == 0 && pj->nids > first) {
		sel = store_sel_ids(pj->ids + first, sizeof(char *),
		    pj->nids - first, true);
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
	for (i = 0; i < pj->nids; i++)
		free(pj->ids[i]);
	free(pj->ids);
	free(pj);
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
	if (prune_running)
		return;
	if (ndone == 0 && now < prune_next_sweep)
		return;
	pj = util_xcalloc(1, sizeof(*pj));
	pj->ids = done_ids;
	pj->nids = ndone;
	done_ids = NULL;
	ndone = capdone = 0;
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
dead_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
dead_find_one(const bson_t *doc, void *arg)
{
	struct dead_job *dj = arg;
	const char	*id = store_bson_str(doc, "_id");
	const char	*sid = store_bson_str(doc, "sourceId");

	dj->nseen++;
	if (id == NULL || sid == NULL ||
	    bsearch(&sid, dj->owned, dj->nowned, sizeof(*dj->owned),
		dead_cmp) == NULL)
		return 0;
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
	    BCON_INT32(1), "}", "limit", BCON_INT64(PRUNE_MAX_IDS));
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

/* Worker: add what each source lost to its stats "<source>:deliver". */
static void
dead_count(struct dead_job *dj)
{
	mongoc_client_t	    *c;
	mongoc_collection_t *coll;
	bson_t		    *sel, *upd, *opts;
	char		     id[96];
	size_t		     i, k;

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
	c = store_pop(child_store());
	coll = store_coll(child_store(), c, STORE_STATS);
	opts = BCON_NEW("upsert", BCON_BOOL(true));
	for (k = 0; k < dj->nper; k++) {
		snprintf(id, sizeof(id), "%s:deliver", dj->per[k].sid);
		sel = BCON_NEW("_id", BCON_UTF8(id));
		upd = BCON_NEW("$inc", "{", "deadLettersPruned",
		    BCON_INT64(dj->per[k].n), "}", "$set", "{", "sourceId",
		    BCON_UTF8(dj->per[k].sid), "updatedAt",
		    BCON_INT64(util_now_ms()), "}");
		/* A lost count is only a metric: the letters are gone. */
		(void)mongoc_collection_update_one(coll, sel, upd, opts, NULL,
		    NULL);
		bson_destroy(sel);
		bson_destroy(upd);
	}
	bson_destroy(opts);
	mongoc_collection_destroy(coll);
	store_push(child_store(), c);
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
	/* The bodies of what went (a crash before this leaves them). */
	sel = store_sel_ids(dj->ids, sizeof(char *), dj->nids, true);
	dj->rc = store_delete(child_store(), STORE_BODIES, sel, true, NULL,
	    dj->err, sizeof(dj->err));
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
	struct dsource	*s;
	size_t		 n = 0;

	if (deliverd_conf()->dead_retention_ms <= 0 || dead_running ||
	    now < dead_next)
		return;
	TAILQ_FOREACH (s, deliverd_sources(), entry)
		if (s->lease.held && !s->zombie)
			n++;
	if (n == 0)
		return; /* no lease yet: at the next tick */
	dead_next = now +
	    (deliverd_conf()->dead_retention_ms < PRUNE_DEAD_EVERY_MS ?
		    deliverd_conf()->dead_retention_ms :
		    PRUNE_DEAD_EVERY_MS);
	dj = util_xcalloc(1, sizeof(*dj));
	dj->owned = util_xcalloc(n, sizeof(*dj->owned));
	TAILQ_FOREACH (s, deliverd_sources(), entry)
		if (s->lease.held && !s->zombie)
			dj->owned[dj->nowned++] = util_xstrdup(s->id);
	qsort(dj->owned, dj->nowned, sizeof(*dj->owned), dead_cmp);
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
