/*
 * The fetch state of each partition held (lib/store/fstate.h): one
 * document for all the sources of the partition, read once when the
 * partition is taken and written whole, under its lease, when something
 * in it changed: at once for a new status or error (and the first time
 * under a new epoch), within DRIVER_SAVE_EVERY_MS of a cursor that
 * stored something, within SCHED_STATE_EVERY_MS of a lastFetchAt and
 * within DRIVER_IDLE_SAVE_MS of a cursor that only moved. One write in
 * flight per partition; what changes meanwhile goes in the next.
 *
 * The document keeps what this process does not hold in memory: the
 * entries of paused sources and of sources not yet loaded are written
 * back as they were read; those of removed sources go.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "fetcherd/fetcherd.h"
#include "fetcherd/handoff.h"
#include "fetcherd/sched.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/fstate.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

/* A failed write is tried again after this long. */
#define PSTATE_RETRY_MS 3000
/* A document this large (of 16 MiB at most) asks for more partitions. */
#define PSTATE_WARN_BYTES (8u << 20)
/* The writer looks at the partitions due this often. */
#define PSTATE_TICK_MS 250

struct ppart {
	bson_t	    *base;    /* its "sources" as read or last written */
	int64_t	     epoch;   /* the lease epoch base was read under */
	bool	     found;   /* base is the partition's own document */
	bool	     loading; /* a read of the whole partition in flight */
	bool	     dirty, writing;
	bool	     urgent;   /* a status, an error, a removal: not paced */
	bool	     paced;    /* the write out is a paced one */
	int64_t	     due_mono; /* write at or after this, when dirty */
	char	   **gone;     /* removed sources: their entries go */
	size_t	     ngone;
	struct lease lease; /* held: the partition's, renewed */
	bool	     leased;
	uint64_t     rescan_at;	    /* sched_rescans() when base was read */
	bool	     warned;	    /* too large, said once */
	bool	     drain_flushed; /* written for a handover */
};

static struct ppart *pp;
static int	     npp;
/*
 * The writer: every PSTATE_TICK_MS (tick_ev), and at once (now_ev, a
 * separate event: activating a persistent timer by hand moves its next
 * expiry, and thousands of touches a second kept it from ever expiring).
 */
static struct event *tick_ev, *now_ev;
static unsigned	     writing;	  /* partition writes out */
static atomic_int    legacy = -1; /* fstate_legacy_probe: -1 not yet */

/*
 * Writes that can wait (a cursor, counters, a lastFetchAt) go one at a
 * time, each PSTATE_PACE times as far from the last as that one took from
 * queueing to stored: they keep to about half a store thread whatever the
 * number of sources (on FerretDB 1.24 a write of a partition of 156
 * sources, 0.3 MB, costs about 0.3 s), and come later when the store is
 * slow. Small partitions are written as soon as due; at 10 000 sources
 * each is written about every 40 s instead of every 30 s (with 5 here,
 * every 110 s: 7 of 10 000 lastFetchAt reached the store later than
 * 1.1 intervals after the poll before).
 */
#define PSTATE_PACE 2
static int64_t paced_at; /* mono ms: the next paced write may start */
static bool    paced_out;

/* What the writes cost, said every PSTATE_REPORT_MS when there were some. */
#define PSTATE_REPORT_MS (60LL * 1000)
static struct {
	unsigned n;
	int64_t	 sum_ms, max_ms, since;
	uint32_t max_bytes;
} wstat;

unsigned
pstate_writes(void)
{
	return writing;
}

static void pstate_write(int part);

static struct ppart *
pstate_of(int part)
{
	return part >= 0 && part < npp ? &pp[part] : NULL;
}

/* Something of s's partition changed: write it within ms. */
void
pstate_touch(struct fsrc *s, int64_t ms)
{
	struct ppart *p = pstate_of(s->part);
	int64_t	      due = util_mono_ms() + ms;

	if (p == NULL)
		return;
	if (!p->dirty || due < p->due_mono)
		p->due_mono = due;
	p->dirty = true;
	if (ms == 0) {
		p->urgent = true;
		event_active(now_ev, EV_TIMEOUT, 0);
	}
}

/* A removed source (not a paused one): its entry goes at the next write. */
void
pstate_gone(const char *sid, int part)
{
	struct ppart *p = pstate_of(part);
	char	    **ng;

	if (p == NULL || p->base == NULL)
		return;
	if ((ng = reallocarray(p->gone, p->ngone + 1, sizeof(*ng))) == NULL)
		fatal("out of memory");
	p->gone = ng;
	ng[p->ngone++] = util_xstrdup(sid);
	p->dirty = true;
	p->urgent = true;
	p->due_mono = util_mono_ms();
	event_active(now_ev, EV_TIMEOUT, 0);
}

/* part is held under l (taken or renewed): its writes go under it. */
void
pstate_leased(int part, const struct lease *l)
{
	struct ppart *p = pstate_of(part);

	if (p == NULL)
		return;
	p->lease = *l;
	p->leased = true;
}

static void
pstate_forget_gone(struct ppart *p)
{
	size_t i;

	for (i = 0; i < p->ngone; i++)
		free(p->gone[i]);
	free(p->gone);
	p->gone = NULL;
	p->ngone = 0;
}

/* What was read or changed of p goes (its lease stays). */
static void
pstate_forget(struct ppart *p)
{
	if (p->base != NULL)
		bson_destroy(p->base);
	p->base = NULL;
	p->found = false;
	p->dirty = false;
	pstate_forget_gone(p);
}

/* The partition is not ours any more: what we knew of it goes. */
void
pstate_lost(int part)
{
	struct ppart *p = pstate_of(part);

	if (p == NULL)
		return;
	pstate_forget(p);
	p->epoch = 0;
	p->leased = false;
}

/*
 * May part be handed over (its jobs idle)? Once its state is written: a
 * write is started if it changed, and the next ask says yes unless that
 * write is still out (a poll in between changes it again: the next
 * holder reads that poll again, the seen ids absorb it).
 */
bool
pstate_drain_ready(int part)
{
	struct ppart *p = pstate_of(part);

	if (p == NULL)
		return true;
	if (p->writing || p->loading)
		return false;
	if (p->dirty && !p->drain_flushed) {
		p->drain_flushed = true;
		p->urgent = true;
		pstate_write(part);
		return false;
	}
	p->drain_flushed = false;
	return true;
}

/* The entry of sid in base (a static view into it), or false. */
static bool
pstate_base_entry(const struct ppart *p, const char *sid, bson_t *out)
{
	bson_iter_t    it;
	const uint8_t *data;
	uint32_t       len;

	if (p->base == NULL || !bson_iter_init_find(&it, p->base, sid) ||
	    !BSON_ITER_HOLDS_DOCUMENT(&it))
		return false;
	bson_iter_document(&it, &len, &data);
	return bson_init_static(out, data, len);
}

/*
 * Reading a partition's document (or a source's entry in it) on the
 * worker; the sources start once it is known.
 */
struct pload {
	int	 part;
	int	 count;
	int64_t	 epoch;
	bool	 whole; /* the partition's read: base comes with it */
	unsigned flags;
	char (*ids)[64];
	bson_t **entries;
	size_t	 n;
	bson_t	*sources; /* whole: the document's "sources" */
	bool	 found;
	int	 rc;
	char	 err[512];
};

static void
pload_work(void *arg)
{
	struct pload *l = arg;
	const char  **ids;
	size_t	      i;

	if (legacy < 0)
		legacy = fstate_legacy_probe(child_store(), l->err,
		    sizeof(l->err));
	if (legacy < 0) {
		l->rc = -EIO;
		return;
	}
	ids = util_xcalloc(l->n + 1, sizeof(*ids));
	for (i = 0; i < l->n; i++)
		ids[i] = l->ids[i];
	/* Whole: the entries of sources this process does not hold too. */
	l->rc = fstate_load(child_store(), l->count, l->part, ids, l->n,
	    l->entries, legacy ? 0 : FSTATE_NO_LEGACY, &l->found,
	    l->whole ? &l->sources : NULL, l->err, sizeof(l->err));
	free(ids);
}

static void
pload_free(struct pload *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->entries[i] != NULL)
			bson_destroy(l->entries[i]);
	if (l->sources != NULL)
		bson_destroy(l->sources);
	free(l->ids);
	free(l->entries);
	free(l);
}

static void pload_done(void *arg);

/* A read that failed, again (its sources wait: none starts without it). */
static void
pload_retry(evutil_socket_t fd, short what, void *arg)
{
	struct pload *l = arg;
	struct ppart *p = pstate_of(l->part);

	(void)fd;
	(void)what;
	if (p == NULL || p->epoch != l->epoch || sched_stopping()) {
		pload_free(l);
		return;
	}
	l->rc = 0;
	l->found = false;
	if (worker_submit(pload_work, pload_done, l) != 0)
		pload_free(l);
}

static void
pload_done(void *arg)
{
	struct pload  *l = arg;
	struct ppart  *p = pstate_of(l->part);
	struct fsrc   *s;
	struct timeval tv = { PSTATE_RETRY_MS / 1000, 0 };
	size_t	       i;

	if (!child_store_result(l->rc == 0, l->err) && p != NULL &&
	    p->epoch == l->epoch && !sched_stopping()) {
		log_warn("partition=%d fetch state not read (%s); its sources "
			 "wait for it, read again in %d s",
		    l->part, l->err, PSTATE_RETRY_MS / 1000);
		for (i = 0; i < l->n; i++)
			if (l->entries[i] != NULL) {
				bson_destroy(l->entries[i]);
				l->entries[i] = NULL;
			}
		if (l->sources != NULL)
			bson_destroy(l->sources);
		l->sources = NULL;
		if (event_base_once(child_base(), -1, EV_TIMEOUT, pload_retry,
			l, &tv) == 0)
			return;
	}
	if (l->whole && p != NULL && p->epoch == l->epoch) {
		p->loading = false;
		if (l->rc == 0) {
			if (p->base != NULL)
				bson_destroy(p->base);
			p->base = l->sources != NULL ? l->sources : bson_new();
			l->sources = NULL;
			p->found = l->found;
			p->rescan_at = sched_rescans();
		}
	}
	for (i = 0; i < l->n; i++) {
		s = src_find(l->ids[i]);
		if (s == NULL || !s->leased || s->part != l->part ||
		    s->lease.epoch != l->epoch || sched_stopping())
			continue;
		if (l->rc == 0)
			src_state_apply(s, l->entries[i]);
		src_kick(s);
		src_flush_state(s);
	}
	pload_free(l);
}

/*
 * Load the states of the sources of part (only one when one is not
 * NULL) that hold its lease of epoch, then kick them. A source of a
 * partition whose document is known takes its entry from it at once.
 */
void
src_load_start(int part, int64_t epoch, struct fsrc *one)
{
	struct ppart *p = pstate_of(part);
	struct pload *l;
	struct fsrc  *s;
	bson_t	      e;
	size_t	      n = 0;

	if (p == NULL)
		return;
	if (one == NULL) {
		/* A new epoch: what was known of the partition goes. */
		pstate_forget(p);
		p->epoch = epoch;
		p->loading = true;
	} else if (p->base != NULL && p->epoch == epoch && !p->loading &&
	    (p->found || pstate_base_entry(p, one->id, &e))) {
		src_state_apply(one,
		    pstate_base_entry(p, one->id, &e) ? &e : NULL);
		src_kick(one);
		src_flush_state(one);
		return;
	}
	TAILQ_FOREACH (s, &srcs, entry)
		if (s->part == part && s->leased && (one == NULL || s == one))
			n++;
	l = util_xcalloc(1, sizeof(*l));
	l->part = part;
	l->count = npp;
	l->epoch = epoch;
	l->whole = one == NULL;
	l->ids = util_xcalloc(n + 1, sizeof(*l->ids));
	l->entries = util_xcalloc(n + 1, sizeof(*l->entries));
	TAILQ_FOREACH (s, &srcs, entry)
		if (s->part == part && s->leased && (one == NULL || s == one))
			util_strlcpy(l->ids[l->n++], s->id, sizeof(l->ids[0]));
	if (worker_submit(pload_work, pload_done, l) != 0) {
		if (l->whole)
			p->loading = false;
		pload_free(l);
	}
}

static bool
pstate_is_gone(const struct ppart *p, const char *sid)
{
	size_t i;

	for (i = 0; i < p->ngone; i++)
		if (strcmp(p->gone[i], sid) == 0)
			return true;
	return false;
}

/* part's lease of the epoch its state was read under, or NULL. */
static const struct lease *
pstate_lease(int part)
{
	struct ppart *p = pstate_of(part);

	if (p == NULL || !p->leased || p->lease.epoch != p->epoch ||
	    !lease_valid(&p->lease))
		return NULL;
	return &p->lease;
}

/*
 * Whether base's entry k goes: its source was removed (a hint), or the
 * sources re-read since base was read do not have it (removed while no
 * fetcherd ran; a paused source is still there).
 */
static bool
pstate_drops(const struct ppart *p, const char *k)
{
	return pstate_is_gone(p, k) ||
	    (sched_rescans() > p->rescan_at && !sched_known(k));
}

/* A partition write finished: its document is now base, or retry. */
static void
pstate_write_done(struct handoff *h)
{
	int	      part = h->part;
	struct ppart *p = pstate_of(part);
	bool	      was_paced = p != NULL && p->paced;

	(void)child_store_result(h->rc == 0 || h->rc == -ESTALE, h->err);
	writing--;
	if (was_paced) {
		int64_t ms = util_mono_ms() - h->submitted_mono;

		p->paced = false;
		paced_out = false;
		paced_at = util_mono_ms() + (PSTATE_PACE - 1) * ms;
	}
	if (h->rc == 0) {
		int64_t ms = util_mono_ms() - h->submitted_mono;

		wstat.n++;
		wstat.sum_ms += ms;
		if (ms > wstat.max_ms)
			wstat.max_ms = ms;
		if (h->doc->len > wstat.max_bytes)
			wstat.max_bytes = h->doc->len;
	}
	if (p != NULL) {
		p->writing = false;
		if (h->rc == 0 && p->epoch == h->epoch) {
			bson_iter_t    it;
			const uint8_t *data;
			uint32_t       len;

			if (bson_iter_init_find(&it, h->doc, "sources") &&
			    BSON_ITER_HOLDS_DOCUMENT(&it)) {
				bson_iter_document(&it, &len, &data);
				if (p->base != NULL)
					bson_destroy(p->base);
				p->base = bson_new_from_data(data, len);
				p->found = true;
			}
		} else if (h->rc == -ESTALE && pstate_lease(part) == NULL)
			log_warn("partition=%d fetch state not written: %s; "
				 "another instance fetches it now",
			    part, h->err);
		else if (h->rc != 0 && p->epoch == h->epoch) {
			/* Queued past a deadline since renewed: at once. */
			if (h->rc == -ESTALE)
				log_info("partition=%d fetch state write "
					 "waited past its lease deadline; "
					 "written again under the renewed "
					 "lease",
				    part);
			p->dirty = true;
			p->urgent = !was_paced || h->rc == -ESTALE;
			p->due_mono = util_mono_ms() +
			    (h->rc == -ESTALE ? 0 : PSTATE_RETRY_MS);
		}
	}
	if (sched_stopping() && src_state_writes() == 0)
		sched_release_all();
	handoff_free(h);
}

/*
 * Write part's document now (under the lease of its sources): the
 * entries of the sources loaded here, the others as read.
 */
static void
pstate_write(int part)
{
	struct ppart	   *p = pstate_of(part);
	struct handoff	   *h;
	const struct lease *l;
	struct fsrc	   *s;
	bson_iter_t	    it;
	bson_t		   *doc, srcd;
	char		    id[FSTATE_ID_MAX];

	if (p == NULL || !p->dirty || p->writing || p->loading ||
	    p->base == NULL || !child_store_ready() ||
	    !store_healthy(child_store()) || (l = pstate_lease(part)) == NULL)
		return;
	fstate_doc_id(npp, part, id);
	doc = BCON_NEW("_id", BCON_UTF8(id), "count", BCON_INT32(npp), "part",
	    BCON_INT32(part), "epoch", BCON_INT64(p->epoch), "updatedAt",
	    BCON_INT64(util_now_ms()));
	bson_append_document_begin(doc, "sources", -1, &srcd);
	TAILQ_FOREACH (s, &srcs, entry)
		if (s->part == part && s->leased && s->state_loaded &&
		    s->lease.epoch == p->epoch)
			src_state_entry(s, &srcd);
	if (bson_iter_init(&it, p->base))
		while (bson_iter_next(&it)) {
			const char *k = bson_iter_key(&it);

			s = src_find(k);
			if ((s != NULL && s->leased && s->state_loaded &&
				s->part == part &&
				s->lease.epoch == p->epoch) ||
			    pstate_drops(p, k))
				continue;
			bson_append_iter(&srcd, k, -1, &it);
		}
	bson_append_document_end(doc, &srcd);
	if (doc->len > PSTATE_WARN_BYTES && !p->warned) {
		log_warn("partition=%d fetch state is %u bytes for its sources "
			 "(a document holds at most 16 MiB): raise "
			 "partition_count",
		    part, doc->len);
		p->warned = true;
	}
	pstate_forget_gone(p);
	h = handoff_new(HANDOFF_UPSERT, l->resource, NULL);
	fstate_coll(npp, part, h->coll);
	util_strlcpy(h->id, id, sizeof(h->id));
	h->doc = doc;
	h->epoch = p->epoch;
	h->part = part;
	h->lease = util_xcalloc(1, sizeof(*h->lease));
	*h->lease = *l;
	h->deadline_mono = l->deadline_mono;
	h->done = pstate_write_done;
	h->submitted_mono = util_mono_ms();
	if (handoff_submit(h) != 0) {
		handoff_free(h);
		return;
	}
	p->writing = true;
	p->dirty = false;
	p->paced = !p->urgent && !sched_stopping();
	p->urgent = false;
	if (p->paced)
		paced_out = true;
	writing++;
}

/* Write every partition due (all that changed when stopping). */
static void
pstate_tick(evutil_socket_t fd, short what, void *arg)
{
	int64_t now = util_mono_ms();
	int	i;

	(void)fd;
	(void)what;
	(void)arg;
	/* Now: those that cannot wait; then the paced one due longest. */
	for (i = 0; i < npp; i++)
		if (pp[i].dirty &&
		    (sched_stopping() ||
			(pp[i].urgent && now >= pp[i].due_mono)))
			pstate_write(i);
	if (!paced_out && now >= paced_at) {
		int best = -1;

		for (i = 0; i < npp; i++)
			if (pp[i].dirty && !pp[i].writing &&
			    now >= pp[i].due_mono &&
			    (best < 0 || pp[i].due_mono < pp[best].due_mono))
				best = i;
		if (best >= 0)
			pstate_write(best);
	}
	if (wstat.since == 0)
		wstat.since = now;
	if (now - wstat.since >= PSTATE_REPORT_MS) {
		if (wstat.n > 0)
			log_info("fetch state: %u partition writes in %llds, "
				 "%lld ms each from queueing to stored "
				 "(at most %lld), documents up to %u KB",
			    wstat.n, (long long)(now - wstat.since) / 1000,
			    (long long)(wstat.sum_ms / wstat.n),
			    (long long)wstat.max_ms, wstat.max_bytes / 1024);
		memset(&wstat, 0, sizeof(wstat));
		wstat.since = now;
	}
}

/* Stopping: write what changed now (sched_release_all follows). */
void
pstate_flush_all(void)
{
	pstate_tick(-1, 0, NULL);
}

void
pstate_init(struct event_base *base, int count)
{
	struct timeval tv = { 0, PSTATE_TICK_MS * 1000 };

	npp = count;
	pp = util_xcalloc((size_t)count, sizeof(*pp));
	tick_ev = event_new(base, -1, EV_PERSIST, pstate_tick, NULL);
	now_ev = event_new(base, -1, 0, pstate_tick, NULL);
	if (tick_ev == NULL || now_ev == NULL || event_add(tick_ev, &tv) != 0)
		fatal("cannot arm the fetch state writer");
}
