/*
 * What a delivered batch leaves behind. Its metadata in `batches` is
 * marked "delivered" at the 2xx (a small document, in a collection kept as
 * small as what is pending); its body in `bodies` is deleted a few seconds
 * later, in bulk, with those of the other batches delivered meanwhile
 * (every delete scans the collection on FerretDB 1.24, so one deleteMany
 * per PRUNE_EVERY_MS, not one per batch). A sweep deletes the delivered
 * metadata after PRUNE_KEEP_DELIVERED_MS, with any body a crash kept.
 * The de-duplication is fetcherd's (seen_* partitions), never this.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliverd/deliverd.h"
#include "deliverd/prune.h"
#include "lib/log.h"
#include "lib/store.h"
#include "lib/util.h"
#include "lib/worker.h"

#define PRUNE_EVERY_MS		5000
#define PRUNE_MAX_IDS		2000	/* per deleteMany */
#define PRUNE_RECENT		1024	/* delivered ids remembered */

struct prune_job {
	char		**ids;		/* bodies to delete */
	size_t		  nids;
	bool		  sweep;	/* and old delivered metadata */
	int64_t		  deleted;
	int		  rc;
	char		  err[512];
};

static struct event	*prune_ev;
static bool		 prune_running;
static int64_t		 prune_next_sweep;
static char		 recent[PRUNE_RECENT][40];
static unsigned		 recent_pos;

void
prune_recent(const char *batch_id)
{
	util_strlcpy(recent[recent_pos], batch_id, sizeof(recent[0]));
	recent_pos = (recent_pos + 1) % PRUNE_RECENT;
}

void
prune_forget(const char *batch_id)
{
	unsigned	i;

	for (i = 0; i < PRUNE_RECENT; i++)
		if (strcmp(recent[i], batch_id) == 0)
			recent[i][0] = '\0';
}

void
prune_body(const char *batch_id)
{
	if (D.ndone == D.capdone) {
		D.capdone = D.capdone ? D.capdone * 2 : 256;
		D.done_ids = realloc(D.done_ids, D.capdone *
		    sizeof(*D.done_ids));
		if (D.done_ids == NULL)
			fatal("out of memory");
	}
	D.done_ids[D.ndone++] = util_xstrdup(batch_id);
}

bool
prune_recently_delivered(const char *batch_id)
{
	unsigned	i;

	for (i = 0; i < PRUNE_RECENT; i++)
		if (recent[i][0] != '\0' && strcmp(recent[i], batch_id) == 0)
			return true;
	return false;
}

/* Worker: the ids of delivered metadata older than the keep time. */
static void
prune_sweep_ids(struct prune_job *pj)
{
	mongoc_client_t		*c;
	mongoc_collection_t	*coll;
	mongoc_cursor_t		*cur;
	const bson_t		*doc;
	bson_t			*filter, *opts;
	bson_error_t		 berr;

	filter = BCON_NEW("state", BCON_UTF8("delivered"), "deliveredAt",
	    "{", "$lt", BCON_INT64(util_now_ms() - PRUNE_KEEP_DELIVERED_MS),
	    "}");
	opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}",
	    "limit", BCON_INT64(PRUNE_MAX_IDS));
	c = store_pop(D.store);
	coll = store_coll(D.store, c, STORE_BATCHES);
	cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		const char *id = store_bson_str(doc, "_id");

		if (id == NULL)
			continue;
		pj->ids = realloc(pj->ids, (pj->nids + 1) * sizeof(*pj->ids));
		if (pj->ids == NULL)
			fatal("out of memory");
		pj->ids[pj->nids++] = util_xstrdup(id);
	}
	if (mongoc_cursor_error(cur, &berr)) {
		pj->rc = -EIO;
		snprintf(pj->err, sizeof(pj->err), "find delivered batches: "
		    "%.400s", berr.message);
	}
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	store_push(D.store, c);
	bson_destroy(filter);
	bson_destroy(opts);
}

static void
prune_work(void *arg)
{
	struct prune_job	*pj = arg;
	size_t			 first = pj->nids, off, n;
	bson_t			*sel;
	int64_t			 m;

	if (pj->sweep)
		prune_sweep_ids(pj);
	for (off = 0; pj->rc == 0 && off < pj->nids; off += n) {
		n = pj->nids - off;
		if (n > PRUNE_MAX_IDS)
			n = PRUNE_MAX_IDS;
		sel = store_sel_ids(pj->ids + off, sizeof(char *), n, true);
		m = 0;
		pj->rc = store_delete(D.store, STORE_BODIES, sel, true, &m,
		    pj->err, sizeof(pj->err));
		pj->deleted += m;
		bson_destroy(sel);
	}
	/* The swept metadata goes after its bodies. */
	if (pj->rc == 0 && pj->nids > first) {
		sel = store_sel_ids(pj->ids + first, sizeof(char *),
		    pj->nids - first, true);
		pj->rc = store_delete(D.store, STORE_BATCHES, sel, true, NULL,
		    pj->err, sizeof(pj->err));
		bson_destroy(sel);
	}
}

static void
prune_done(void *arg)
{
	struct prune_job	*pj = arg;
	size_t			 i;

	prune_running = false;
	if (pj->rc != 0) {
		(void)deliverd_store_result(pj->rc, pj->err);
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
	struct prune_job	*pj;
	int64_t			 now = util_now_ms();

	(void)fd;
	(void)what;
	(void)arg;
	if (prune_running || D.stopping || !store_healthy(D.store))
		return;
	if (D.ndone == 0 && now < prune_next_sweep)
		return;
	pj = util_xcalloc(1, sizeof(*pj));
	pj->ids = D.done_ids;
	pj->nids = D.ndone;
	D.done_ids = NULL;
	D.ndone = D.capdone = 0;
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

void
prune_start(void)
{
	struct timeval	tv = { PRUNE_EVERY_MS / 1000, 0 };

	if (prune_ev != NULL)
		return;
	prune_next_sweep = util_now_ms() + PRUNE_KEEP_DELIVERED_MS / 2;
	if ((prune_ev = event_new(D.base, -1, EV_PERSIST, prune_cb, NULL)) ==
	    NULL || event_add(prune_ev, &tv) != 0)
		fatal("out of memory");
}
