/*
 * Google counts the Reports API's quota per Cloud project, whichever
 * instance asks: a budget (report.c) is per project, and its rate limits
 * are shared with the other instances through `quotas`, one small
 * document per project ever rate-limited:
 *
 *   { _id: project, blockedUntil: wall ms, attempt, by: instance,
 *     updatedAt }
 *
 * A 403 rateLimitExceeded (or 429) here raises blockedUntil ($max: a
 * shorter block never shortens a longer one), one write in flight per
 * project and none for a block that ends within QUOTA_SLACK_MS of the
 * one already written. Every QUOTA_POLL_MS, while there is a budget, one
 * find reads the blocks still running (of every project: the collection
 * is as small as the projects rate-limited lately) and applies those of
 * another instance to the local budget: its sources wait them out and go
 * one request at a time, as if Google had answered here. A success here
 * does not lift a block another instance was told of (Google's
 * Retry-After). Blocks over for QUOTA_KEEP_MS are deleted, hourly.
 * Store work runs on the worker; the loop only applies results.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "fetcherd/fetcherd.h"
#include "fetcherd/sched.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

#define QUOTA_POLL_MS  5000	       /* the blocks read this often */
#define QUOTA_SLACK_MS 1000	       /* a block this much longer: written */
#define QUOTA_KEEP_MS  (3600LL * 1000) /* a block over since: deleted */
#define QUOTA_PRUNE_MS (3600LL * 1000) /* that often */
#define QUOTA_READ_MAX 1024	       /* blocks read per poll */

struct qshare {
	struct fbudget *b;
	char		project[sizeof(((struct fbudget *)0)->project)];
	int64_t		until; /* wall ms */
	int64_t		attempt;
	int		rc;
	char		err[256];
};

struct qblock {
	char	project[sizeof(((struct fbudget *)0)->project)];
	char	by[160];
	int64_t until; /* wall ms */
	int64_t attempt;
};

struct qpoll {
	struct qblock *v;
	size_t	       n;
	bool	       prune;
	char	       perr[256]; /* of the delete: logged, not fatal */
	int	       rc;
	char	       err[256];
};

static struct event *ev_poll;
static bool	     polling, stopped;
static int64_t	     pruned_at; /* mono ms */

/* Worker: raise the project's block in the store. */
static void
qshare_work(void *arg)
{
	struct qshare	    *q = arg;
	mongoc_client_t	    *c = store_pop(child_store());
	mongoc_collection_t *coll = store_coll(child_store(), c, STORE_QUOTAS);
	bson_t		    *sel, *upd, *opts;
	bson_error_t	     berr;

	sel = BCON_NEW("_id", BCON_UTF8(q->project));
	upd = BCON_NEW("$max", "{", "blockedUntil", BCON_INT64(q->until),
	    "attempt", BCON_INT64(q->attempt), "}", "$set", "{", "by",
	    BCON_UTF8(fconf.instance), "updatedAt", BCON_INT64(util_now_ms()),
	    "}");
	opts = BCON_NEW("upsert", BCON_BOOL(true));
	if (!mongoc_collection_update_one(coll, sel, upd, opts, NULL, &berr)) {
		snprintf(q->err, sizeof(q->err), "update quotas: %.200s",
		    berr.message);
		q->rc = -1;
	}
	bson_destroy(opts);
	bson_destroy(upd);
	bson_destroy(sel);
	mongoc_collection_destroy(coll);
	store_push(child_store(), c);
}

static void
qshare_done(void *arg)
{
	struct qshare  *q = arg;
	struct fbudget *b = q->b;

	b->sharing = false;
	if (child_store_result(q->rc == 0, q->err)) {
		if (q->until > b->shared_until)
			b->shared_until = q->until;
	} else
		log_warn("project=%s: the rate limit is not shared with the "
			 "other instances (%s)",
		    b->project, q->err);
	budget_put(b);
	free(q);
}

void
quota_share(struct fbudget *b)
{
	struct qshare *q;
	int64_t	       now = util_mono_ms();
	int64_t	       until = util_now_ms() + (b->blocked_until - now);

	if (stopped || b->sharing || b->blocked_until <= now ||
	    until <= b->shared_until + QUOTA_SLACK_MS ||
	    b->blocked_until <= b->remote_until)
		return; /* known, or what another instance told us */
	if (!child_store_ready() || !store_healthy(child_store()))
		return;
	q = util_xcalloc(1, sizeof(*q));
	q->b = b;
	util_strlcpy(q->project, b->project, sizeof(q->project));
	q->until = until;
	q->attempt = b->attempt;
	b->refs++; /* kept until the write is back */
	b->sharing = true;
	if (worker_submit(qshare_work, qshare_done, q) != 0) {
		b->sharing = false;
		budget_put(b);
		free(q);
	}
}

/* Worker: one block read (store_each). */
static int
qpoll_one(const bson_t *doc, void *arg)
{
	struct qpoll  *p = arg;
	struct qblock *x = &p->v[p->n];
	const char    *id = store_bson_str(doc, "_id");
	const char    *by = store_bson_str(doc, "by");

	if (id == NULL)
		return 0;
	util_strlcpy(x->project, id, sizeof(x->project));
	util_strlcpy(x->by, by != NULL ? by : "", sizeof(x->by));
	x->until = store_bson_int(doc, "blockedUntil", 0);
	x->attempt = store_bson_int(doc, "attempt", 0);
	return ++p->n < QUOTA_READ_MAX ? 0 : 1;
}

/* Worker: the blocks still running, and the hourly delete. */
static void
qpoll_work(void *arg)
{
	struct qpoll *p = arg;
	bson_t	     *q, *opts;
	int64_t	      now = util_now_ms();

	if (p->prune) {
		q = BCON_NEW("blockedUntil", "{", "$lt",
		    BCON_INT64(now - QUOTA_KEEP_MS), "}");
		(void)store_delete(child_store(), STORE_QUOTAS, q, true, NULL,
		    p->perr, sizeof(p->perr));
		bson_destroy(q);
	}
	q = BCON_NEW("blockedUntil", "{", "$gt", BCON_INT64(now), "}");
	opts = BCON_NEW("limit", BCON_INT64(QUOTA_READ_MAX));
	p->v = util_xcalloc(QUOTA_READ_MAX, sizeof(*p->v));
	if (store_each(child_store(), STORE_QUOTAS, q, opts, qpoll_one, p,
		p->err, sizeof(p->err)) < 0)
		p->rc = -1;
	bson_destroy(opts);
	bson_destroy(q);
}

/* Loop: another instance's block of a project of ours, applied. */
static void
qpoll_apply(const struct qblock *x)
{
	struct fbudget *b;
	int64_t		now = util_mono_ms(), until;

	if ((b = budget_find(x->project)) == NULL ||
	    strcmp(x->by, fconf.instance) == 0 || x->until <= b->shared_until)
		return;
	until = now + (x->until - util_now_ms());
	if (until <= b->remote_until + QUOTA_SLACK_MS)
		return;
	b->remote_until = until;
	if (until > b->blocked_until)
		b->blocked_until = until;
	if (b->attempt < 1 || (int64_t)b->attempt < x->attempt)
		b->attempt = x->attempt > 1 ? (unsigned)x->attempt : 1;
	if (!b->limited) {
		log_warn("Google rate-limits project=%s (seen by instance %s); "
			 "every source of this project here slows down for "
			 "%llds",
		    b->project, x->by, (long long)((until - now) / 1000));
		b->limited = true;
	}
}

static void
qpoll_done(void *arg)
{
	struct qpoll *p = arg;
	size_t	      i;

	polling = false;
	if (p->perr[0] != '\0')
		log_warn("delete of rate limits over for an hour: %s", p->perr);
	if (!stopped && child_store_result(p->rc == 0, p->err))
		for (i = 0; i < p->n; i++)
			qpoll_apply(&p->v[i]);
	free(p->v);
	free(p);
}

static void
qpoll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qpoll *p;
	int64_t	      now = util_mono_ms();

	(void)fd;
	(void)what;
	(void)arg;
	if (stopped)
		return;
	sched_arm(ev_poll, QUOTA_POLL_MS);
	if (polling || !budget_any() || !child_store_ready() ||
	    !store_healthy(child_store()))
		return;
	p = util_xcalloc(1, sizeof(*p));
	if (pruned_at == 0 || now - pruned_at >= QUOTA_PRUNE_MS) {
		p->prune = true;
		pruned_at = now;
	}
	polling = true;
	if (worker_submit(qpoll_work, qpoll_done, p) != 0) {
		polling = false;
		free(p);
	}
}

void
quota_start(void)
{
	if (ev_poll != NULL)
		return;
	if ((ev_poll = evtimer_new(child_base(), qpoll_cb, NULL)) == NULL)
		fatal("out of memory");
	sched_arm(ev_poll, QUOTA_POLL_MS);
}

void
quota_stop(void)
{
	stopped = true;
	if (ev_poll != NULL)
		evtimer_del(ev_poll);
}
