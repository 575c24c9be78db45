/*
 * The leased-partition set. See partition.h; the lease documents are
 * those of lease.h (docs/STORE.md, "leases").
 *
 * The loop keeps the truth about what it may work on (held, epoch,
 * deadline). A cycle copies what it needs into a struct pcycle, runs on
 * the set's worker thread, and hands its outcomes back; the loop applies
 * them, so no state is shared between the threads.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"
#include "lib/store/partition.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"

/* As in lease.c: stop this long before the lease's end as seen locally. */
#define PARTITION_SAFETY_MS(ttl) ((ttl) / 3)
#define PARTITION_TICK_MS	 1000
#define PARTITION_KICK_MS	 50

struct ppart {
	bool	     want;
	bool	     held;
	bool	     release; /* released locally, not yet in the store */
	struct lease lease;
};

struct partition_set {
	struct event_base   *base;
	struct store	    *st;
	struct worker	    *w;
	char		     role[32];
	char		     instance[160];
	int		     count;
	int64_t		     ttl_ms, renew_ms;
	struct partition_ops ops;
	void (*store_fn)(bool ok, const char *err);
	void	     *arg;
	struct ppart *p;
	struct event *tick, *kick_ev;
	int64_t	      next_cycle; /* mono ms */
	bool	      busy;	  /* a job on the worker */
	bool	      again;	  /* run another cycle after it */
	bool	      stopping;
	bool	      dying; /* free after the job */
	int	      live;
	int	      nwant;
	bool	     *sync;	/* partitions seen by a sync */
	int	      draining; /* being handed over, or -1 */
	void (*shut_done)(void *);
	void *shut_arg;
};

enum pout {
	POUT_NONE,
	POUT_TAKEN,
	POUT_RENEWED,
	POUT_LOST,
	POUT_KEPT /* could not renew: unchanged */
};

/* What the worker knows of one partition, in and out. */
struct pcpart {
	bool	want, held, release;
	int64_t epoch;	  /* held: ours */
	int64_t deadline; /* held: local */
	/* The newest document in the store. */
	int64_t	  s_epoch, s_expires;
	bool	  s_released, s_mine;
	enum pout out;
	int64_t	  new_epoch, new_deadline;
};

struct pcycle {
	struct partition_set *ps;
	struct store	     *st;
	char		      role[32];
	char		      instance[160];
	int		      count;
	int64_t		      ttl_ms;
	bool		      shutdown;
	struct pcpart	     *p;
	/* Out. */
	int    rc;
	char   err[512];
	int    live;
	char **del; /* superseded lease ids */
	size_t ndel, capdel;
};

static void partition_cycle_start(struct partition_set *ps);

/* realloc or abort, like util_xcalloc. */
static void *
partition_xrealloc(void *p, size_t size)
{
	void *np = realloc(p, size);

	if (np == NULL)
		abort();
	return np;
}

int
partition_index(const char *source_id, int count)
{
	const unsigned char *c;
	uint32_t	     h = 2166136261u;

	if (count <= 1)
		return 0;
	for (c = (const unsigned char *)source_id; *c != '\0'; c++) {
		h ^= *c;
		h *= 16777619u;
	}
	return (int)(h % (uint32_t)count);
}

/* "<role>:p<N>" into out. */
static void
partition_resource(const char *role, int part, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s:p%d", role, part);
}

/* The partition named by resource for role and count, or -1. */
static int
partition_parse(const char *role, int count, const char *resource)
{
	size_t n = strlen(role);
	char  *end;
	long   v;

	if (strncmp(resource, role, n) != 0 || resource[n] != ':' ||
	    resource[n + 1] != 'p' || resource[n + 2] < '0' ||
	    resource[n + 2] > '9')
		return -1;
	v = strtol(resource + n + 2, &end, 10);
	if (*end != '\0' || v < 0 || v >= count)
		return -1;
	/* "p07" is not ours: only the canonical spelling. */
	if (resource[n + 2] == '0' && resource[n + 3] != '\0')
		return -1;
	return (int)v;
}

static void
pcycle_del_add(struct pcycle *c, const char *id)
{
	char **nd;

	if (c->ndel == c->capdel) {
		c->capdel = c->capdel ? c->capdel * 2 : 16;
		nd = realloc(c->del, c->capdel * sizeof(*nd));
		if (nd == NULL) {
			c->capdel = c->ndel;
			return;
		}
		c->del = nd;
	}
	c->del[c->ndel++] = util_xstrdup(id);
}

/* {field: {$in: [ids...]}} into sel. */
static void
pcycle_in(bson_t *sel, const char *field, char **ids, size_t n)
{
	bson_t	    in, arr;
	char	    k[16];
	const char *kp;
	size_t	    i;

	bson_append_document_begin(sel, field, -1, &in);
	bson_append_array_begin(&in, "$in", -1, &arr);
	for (i = 0; i < n; i++) {
		bson_uint32_to_string((uint32_t)i, &kp, k, sizeof(k));
		bson_append_utf8(&arr, kp, -1, ids[i], -1);
	}
	bson_append_array_end(&in, &arr);
	bson_append_document_end(sel, &in);
}

/* A resource outside the partitions of this role and count. */
struct pforeign {
	char	resource[160];
	int64_t epoch, expires;
	bool	released;
	char  **ids;
	size_t	nids;
};

/*
 * Worker: read every lease document of the role (one query) into the
 * newest-epoch fields of c->p; older epochs of a partition, and every
 * document of a resource that is no partition of ours and is over (an
 * old per-source lease, a partition beyond the count), go on the delete
 * list. 0 or -EIO.
 */
/* What a read of the lease documents gathers besides c->p[]. */
struct pread {
	struct pcycle	*c;
	bool		 collect;
	struct pforeign *fr; /* other partition counts' leases */
	size_t		 nfr;
	char	       **ids; /* every lease document */
	int64_t		*epochs;
	int		*parts;
	size_t		 nids, capids;
};

/* One lease document: the newest epoch of its partition wins. */
static int
pread_one(const bson_t *doc, void *arg)
{
	struct pread	*r = arg;
	struct pcycle	*c = r->c;
	const char	*id = store_bson_str(doc, "_id");
	const char	*res = store_bson_str(doc, "resource");
	const char	*holder = store_bson_str(doc, "holder");
	int64_t		 ep = store_bson_int(doc, "epoch", 0);
	struct pforeign *f;
	struct pcpart	*pp;
	size_t		 i;
	int		 part;

	if (id == NULL || res == NULL)
		return 0;
	part = partition_parse(c->role, c->count, res);
	if (r->collect) {
		if (r->nids == r->capids) {
			r->capids = r->capids ? r->capids * 2 : 64;
			r->ids = partition_xrealloc(r->ids,
			    r->capids * sizeof(*r->ids));
			r->epochs = partition_xrealloc(r->epochs,
			    r->capids * sizeof(*r->epochs));
			r->parts = partition_xrealloc(r->parts,
			    r->capids * sizeof(*r->parts));
		}
		r->ids[r->nids] = util_xstrdup(id);
		r->epochs[r->nids] = ep;
		r->parts[r->nids] = part;
		r->nids++;
	}
	if (part < 0) {
		if (!r->collect)
			return 0;
		for (i = 0; i < r->nfr; i++)
			if (strcmp(r->fr[i].resource, res) == 0)
				break;
		if (i == r->nfr) {
			r->fr = partition_xrealloc(r->fr,
			    (r->nfr + 1) * sizeof(*r->fr));
			memset(&r->fr[r->nfr], 0, sizeof(*r->fr));
			util_strlcpy(r->fr[r->nfr].resource, res,
			    sizeof(r->fr[r->nfr].resource));
			r->nfr++;
		}
		f = &r->fr[i];
		f->ids = partition_xrealloc(f->ids,
		    (f->nids + 1) * sizeof(*f->ids));
		f->ids[f->nids++] = util_xstrdup(id);
		if (ep >= f->epoch) {
			f->epoch = ep;
			f->expires = store_bson_int(doc, "expiresAt", 0);
			f->released = store_bson_bool(doc, "released", false);
		}
		return 0;
	}
	pp = &c->p[part];
	if (ep < pp->s_epoch)
		return 0;
	pp->s_epoch = ep;
	pp->s_expires = store_bson_int(doc, "expiresAt", 0);
	pp->s_released = store_bson_bool(doc, "released", false);
	pp->s_mine = holder != NULL && strcmp(holder, c->instance) == 0;
	return 0;
}

static int
pcycle_read(struct pcycle *c, bool collect)
{
	struct pread r;
	bson_t	    *filter, *opts;
	char	     rx[64];
	size_t	     i, k;
	int64_t	     now = util_now_ms();
	int	     part, rc;

	for (part = 0; part < c->count; part++) {
		c->p[part].s_epoch = 0;
		c->p[part].s_expires = 0;
		c->p[part].s_released = false;
		c->p[part].s_mine = false;
	}
	memset(&r, 0, sizeof(r));
	r.c = c;
	r.collect = collect;
	snprintf(rx, sizeof(rx), "^%s:", c->role);
	filter = BCON_NEW("resource", "{", "$regex", BCON_UTF8(rx), "}");
	opts = BCON_NEW("projection", "{", "resource", BCON_INT32(1), "epoch",
	    BCON_INT32(1), "holder", BCON_INT32(1), "expiresAt", BCON_INT32(1),
	    "released", BCON_INT32(1), "}");
	rc = store_each(c->st, STORE_LEASES, filter, opts, pread_one, &r,
	    c->err, sizeof(c->err));
	bson_destroy(filter);
	bson_destroy(opts);
	if (rc == 0 && collect) {
		/* Superseded epochs of our partitions. */
		for (i = 0; i < r.nids; i++)
			if (r.parts[i] >= 0 &&
			    r.epochs[i] < c->p[r.parts[i]].s_epoch)
				pcycle_del_add(c, r.ids[i]);
		/* Foreign resources, over for a whole ttl. */
		for (i = 0; i < r.nfr; i++)
			if (r.fr[i].released ||
			    r.fr[i].expires < now - c->ttl_ms)
				for (k = 0; k < r.fr[i].nids; k++)
					pcycle_del_add(c, r.fr[i].ids[k]);
	}
	for (i = 0; i < r.nfr; i++) {
		for (k = 0; k < r.fr[i].nids; k++)
			free(r.fr[i].ids[k]);
		free(r.fr[i].ids);
	}
	free(r.fr);
	for (i = 0; i < r.nids; i++)
		free(r.ids[i]);
	free(r.ids);
	free(r.epochs);
	free(r.parts);
	return rc;
}

/* Worker: $set fields on the lease documents ids held by us. 0 or -EIO. */
static int
pcycle_set(struct pcycle *c, char **ids, size_t n, const bson_t *set)
{
	bson_t sel;
	int    rc;

	if (n == 0)
		return 0;
	bson_init(&sel);
	pcycle_in(&sel, "_id", ids, n);
	BSON_APPEND_UTF8(&sel, "holder", c->instance);
	rc = store_update_set(c->st, STORE_LEASES, &sel, set, true, NULL,
	    c->err, sizeof(c->err));
	bson_destroy(&sel);
	return rc;
}

/* "<role>:p<N>#<epoch>" into out. */
static void
pcycle_lease_id(const struct pcycle *c, int part, int64_t epoch, char *out,
    size_t outlen)
{
	snprintf(out, outlen, "%s:p%d#%lld", c->role, part, (long long)epoch);
}

/* Worker: renew what we hold, release what was given up. */
static int
pcycle_renew_release(struct pcycle *c)
{
	char  **ren, **rel, id[200];
	size_t	nren = 0, nrel = 0, i;
	int64_t now = util_now_ms(), mono = util_mono_ms();
	bson_t *set;
	int	part, rc = 0;

	ren = util_xcalloc((size_t)c->count, sizeof(*ren));
	rel = util_xcalloc((size_t)c->count, sizeof(*rel));
	for (part = 0; part < c->count; part++) {
		struct pcpart *pp = &c->p[part];

		if (pp->release) {
			pcycle_lease_id(c, part, pp->epoch, id, sizeof(id));
			rel[nrel++] = util_xstrdup(id);
			continue;
		}
		if (!pp->held)
			continue;
		/* Check before: a newer epoch, or not ours any more. */
		if (pp->s_epoch != pp->epoch || !pp->s_mine || pp->s_released ||
		    mono >= pp->deadline) {
			pp->out = POUT_LOST;
			continue;
		}
		pp->out = POUT_KEPT;
		pcycle_lease_id(c, part, pp->epoch, id, sizeof(id));
		ren[nren++] = util_xstrdup(id);
	}
	if (nren > 0) {
		set = BCON_NEW("expiresAt", BCON_INT64(now + c->ttl_ms));
		rc = pcycle_set(c, ren, nren, set);
		bson_destroy(set);
		/* Check after: a contender may have inserted meanwhile. */
		if (rc == 0)
			rc = pcycle_read(c, false);
		for (part = 0; rc == 0 && part < c->count; part++) {
			struct pcpart *pp = &c->p[part];

			if (pp->out != POUT_KEPT)
				continue;
			if (pp->s_epoch != pp->epoch || !pp->s_mine ||
			    pp->s_expires != now + c->ttl_ms) {
				pp->out = POUT_LOST;
				continue;
			}
			pp->out = POUT_RENEWED;
			pp->new_epoch = pp->epoch;
			pp->new_deadline = mono + c->ttl_ms -
			    PARTITION_SAFETY_MS(c->ttl_ms);
		}
	}
	if (rc == 0 && nrel > 0) {
		set = BCON_NEW("released", BCON_BOOL(true));
		rc = pcycle_set(c, rel, nrel, set);
		bson_destroy(set);
	}
	for (i = 0; i < nren; i++)
		free(ren[i]);
	for (i = 0; i < nrel; i++)
		free(rel[i]);
	free(ren);
	free(rel);
	return rc;
}

/* Worker: insert epoch of part. 1 taken, 0 lost the race, -EIO. */
static int
pcycle_take_one(struct pcycle *c, int part, int64_t epoch)
{
	char	id[200], res[160];
	int64_t now = util_now_ms(), mono = util_mono_ms();
	bson_t *doc;
	int	rc;

	partition_resource(c->role, part, res, sizeof(res));
	pcycle_lease_id(c, part, epoch, id, sizeof(id));
	doc = BCON_NEW("_id", BCON_UTF8(id), "resource", BCON_UTF8(res),
	    "epoch", BCON_INT64(epoch), "holder", BCON_UTF8(c->instance),
	    "takenAt", BCON_INT64(now), "expiresAt",
	    BCON_INT64(now + c->ttl_ms), "released", BCON_BOOL(false));
	rc = store_insert_one(c->st, STORE_LEASES, doc, c->err, sizeof(c->err));
	bson_destroy(doc);
	if (rc == -EEXIST)
		return 0;
	if (rc != 0)
		return -EIO;
	c->p[part].out = POUT_TAKEN;
	c->p[part].new_epoch = epoch;
	c->p[part].new_deadline = mono + c->ttl_ms -
	    PARTITION_SAFETY_MS(c->ttl_ms);
	/* The epoch before is superseded now. */
	if (c->p[part].s_epoch > 0) {
		pcycle_lease_id(c, part, c->p[part].s_epoch, id, sizeof(id));
		pcycle_del_add(c, id);
	}
	return 1;
}

/*
 * Worker: take wanted partitions up to the fair share: first those whose
 * newest lease names this instance (a previous copy of this daemon, dead),
 * at once and whatever the share; then free ones (none yet, released,
 * expired), from a random start so that instances do not all contend
 * for the same ones.
 */
static int
pcycle_take(struct pcycle *c)
{
	int64_t now = util_now_ms();
	int	held = 0, nwant = 0, share, part, i, start, rc;

	for (part = 0; part < c->count; part++) {
		if (c->p[part].want)
			nwant++;
		if (c->p[part].out == POUT_RENEWED ||
		    c->p[part].out == POUT_KEPT)
			held++;
	}
	share = lease_fair_share(nwant, c->live);
	for (part = 0; part < c->count; part++) {
		struct pcpart *pp = &c->p[part];

		if (!pp->want || pp->held || pp->release || pp->s_epoch == 0 ||
		    !pp->s_mine || pp->s_released)
			continue;
		if ((rc = pcycle_take_one(c, part, pp->s_epoch + 1)) < 0)
			return rc;
		held += rc;
	}
	start = (int)util_random_below((uint64_t)c->count);
	for (i = 0; i < c->count && held < share; i++) {
		struct pcpart *pp;

		part = (start + i) % c->count;
		pp = &c->p[part];
		if (!pp->want || pp->held || pp->release ||
		    pp->out == POUT_TAKEN)
			continue;
		if (pp->s_epoch > 0 && !pp->s_released && pp->s_expires > now)
			continue; /* someone else's */
		if ((rc = pcycle_take_one(c, part, pp->s_epoch + 1)) < 0)
			return rc;
		held += rc;
	}
	return 0;
}

/* Worker: delete the superseded lease documents (best effort). */
static void
pcycle_prune(struct pcycle *c)
{
	char   e2[256];
	bson_t sel;
	size_t off, n;

	for (off = 0; off < c->ndel; off += n) {
		n = c->ndel - off < 500 ? c->ndel - off : 500;
		bson_init(&sel);
		pcycle_in(&sel, "_id", c->del + off, n);
		(void)store_delete(c->st, STORE_LEASES, &sel, true, NULL, e2,
		    sizeof(e2));
		bson_destroy(&sel);
	}
}

/* Worker: one cycle. */
static void
pcycle_work(void *arg)
{
	struct pcycle *c = arg;
	bson_t	      *sel, *set;
	char	       rx[64];

	if (c->shutdown) {
		snprintf(rx, sizeof(rx), "^%s:", c->role);
		sel = BCON_NEW("resource", "{", "$regex", BCON_UTF8(rx), "}",
		    "holder", BCON_UTF8(c->instance), "released",
		    BCON_BOOL(false));
		set = BCON_NEW("released", BCON_BOOL(true));
		c->rc = store_update_set(c->st, STORE_LEASES, sel, set, true,
		    NULL, c->err, sizeof(c->err));
		bson_destroy(sel);
		bson_destroy(set);
		return;
	}
	if ((c->rc = lease_heartbeat(c->st, c->instance, c->err,
		 sizeof(c->err))) != 0)
		return;
	c->live = lease_live_instances(c->st, c->ttl_ms, c->err,
	    sizeof(c->err));
	if (c->live < 0) {
		c->rc = c->live;
		return;
	}
	if ((c->rc = pcycle_read(c, true)) != 0)
		return;
	if ((c->rc = pcycle_renew_release(c)) != 0)
		return;
	c->rc = pcycle_take(c);
	pcycle_prune(c);
}

static void
pcycle_free(struct pcycle *c)
{
	size_t i;

	for (i = 0; i < c->ndel; i++)
		free(c->del[i]);
	free(c->del);
	free(c->p);
	free(c);
}

/* Loop: part is held no longer (lost, or handed over); tell the daemon. */
static void
partition_lost(struct partition_set *ps, int part, bool handover)
{
	struct ppart *p = &ps->p[part];

	p->held = false;
	p->lease.held = false;
	if (ps->draining == part)
		ps->draining = -1;
	ps->ops.lost(ps->arg, part, &p->lease, handover);
}

/* Loop: drop what passed its local deadline. */
static void
partition_expire(struct partition_set *ps)
{
	int64_t mono = util_mono_ms();
	int	part;

	for (part = 0; part < ps->count; part++) {
		struct ppart *p = &ps->p[part];

		if (!p->held || mono < p->lease.deadline_mono)
			continue;
		partition_lost(ps, part, false);
	}
}

/* Loop: a cycle finished; apply its outcomes. */
static void
pcycle_done(void *arg)
{
	struct pcycle	     *c = arg;
	struct partition_set *ps = c->ps;
	int		      part;

	ps->busy = false;
	if (ps->dying) {
		pcycle_free(c);
		partition_set_free(ps);
		return;
	}
	if (c->shutdown) {
		void (*done)(void *) = ps->shut_done;

		ps->shut_done = NULL;
		pcycle_free(c);
		if (done != NULL)
			done(ps->shut_arg);
		return;
	}
	if (ps->store_fn != NULL)
		ps->store_fn(c->rc == 0, c->err);
	if (c->rc == 0 && c->live > 0)
		ps->live = c->live;
	for (part = 0; part < ps->count && !ps->stopping; part++) {
		struct pcpart *cp = &c->p[part];
		struct ppart  *p = &ps->p[part];

		if (cp->release && p->release && !p->held &&
		    p->lease.epoch == cp->epoch && c->rc == 0)
			p->release = false; /* in the store now */
		switch (cp->out) {
		case POUT_TAKEN:
			if (p->held)
				break; /* cannot happen: not asked */
			memset(&p->lease, 0, sizeof(p->lease));
			partition_resource(ps->role, part, p->lease.resource,
			    sizeof(p->lease.resource));
			p->lease.epoch = cp->new_epoch;
			p->lease.deadline_mono = cp->new_deadline;
			p->lease.held = true;
			p->held = true;
			p->release = false;
			ps->ops.gained(ps->arg, part, &p->lease);
			break;
		case POUT_RENEWED:
			if (!p->held || p->lease.epoch != cp->epoch)
				break; /* released meanwhile */
			p->lease.deadline_mono = cp->new_deadline;
			ps->ops.renewed(ps->arg, part, &p->lease);
			break;
		case POUT_LOST:
			if (!p->held || p->lease.epoch != cp->epoch)
				break;
			partition_lost(ps, part, false);
			break;
		default:
			break;
		}
	}
	pcycle_free(c);
	partition_expire(ps);
	if (ps->again && !ps->stopping) {
		ps->again = false;
		partition_cycle_start(ps);
	}
}

/* Loop: snapshot the set and run a cycle on the worker. */
static void
partition_cycle_start(struct partition_set *ps)
{
	struct pcycle *c;
	int	       part;

	if (ps->stopping)
		return;
	if (ps->busy) {
		ps->again = true;
		return;
	}
	partition_expire(ps);
	c = util_xcalloc(1, sizeof(*c));
	c->ps = ps;
	c->st = ps->st;
	util_strlcpy(c->role, ps->role, sizeof(c->role));
	util_strlcpy(c->instance, ps->instance, sizeof(c->instance));
	c->count = ps->count;
	c->ttl_ms = ps->ttl_ms;
	c->live = ps->live;
	c->p = util_xcalloc((size_t)ps->count, sizeof(*c->p));
	for (part = 0; part < ps->count; part++) {
		struct ppart *p = &ps->p[part];

		/* Held and no longer wanted: give it up. */
		if (p->held && !p->want) {
			p->held = false;
			p->lease.held = false;
			p->release = true;
		}
		c->p[part].want = p->want;
		c->p[part].held = p->held;
		c->p[part].release = p->release;
		c->p[part].epoch = p->lease.epoch;
		c->p[part].deadline = p->lease.deadline_mono;
	}
	if (worker_submit_to(ps->w, pcycle_work, pcycle_done, c) != 0) {
		pcycle_free(c);
		return;
	}
	ps->busy = true;
	ps->next_cycle = util_mono_ms() + ps->renew_ms;
}

static void
partition_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct partition_set *ps = arg;

	(void)fd;
	(void)what;
	if (ps->stopping)
		return;
	partition_expire(ps);
	if (util_mono_ms() >= ps->next_cycle)
		partition_cycle_start(ps);
}

static void
partition_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	partition_cycle_start(arg);
}

struct partition_set *
partition_set_new(struct event_base *base, struct store *st,
    const struct partition_conf *conf, const struct partition_ops *ops,
    void *arg, char *err, size_t errlen)
{
	struct partition_set *ps;
	struct timeval	      tv = { PARTITION_TICK_MS / 1000,
		       (PARTITION_TICK_MS % 1000) * 1000 };

	if (conf->count < 1 || conf->count > PARTITION_COUNT_MAX ||
	    strlen(conf->role) >= sizeof(ps->role) ||
	    strlen(conf->instance) >= sizeof(ps->instance)) {
		snprintf(err, errlen, "partitions: bad settings");
		return NULL;
	}
	ps = util_xcalloc(1, sizeof(*ps));
	ps->base = base;
	ps->st = st;
	util_strlcpy(ps->role, conf->role, sizeof(ps->role));
	util_strlcpy(ps->instance, conf->instance, sizeof(ps->instance));
	ps->count = conf->count;
	ps->ttl_ms = conf->ttl_ms;
	ps->renew_ms = conf->renew_ms;
	ps->ops = *ops;
	ps->store_fn = conf->store_fn;
	ps->arg = arg;
	ps->live = 1;
	ps->draining = -1;
	ps->p = util_xcalloc((size_t)ps->count, sizeof(*ps->p));
	ps->sync = util_xcalloc((size_t)ps->count, sizeof(*ps->sync));
	if ((ps->w = worker_new(base)) == NULL) {
		snprintf(err, errlen, "cannot start the lease worker thread");
		goto fail;
	}
	ps->tick = event_new(base, -1, EV_PERSIST, partition_tick_cb, ps);
	ps->kick_ev = evtimer_new(base, partition_kick_cb, ps);
	if (ps->tick == NULL || ps->kick_ev == NULL ||
	    event_add(ps->tick, &tv) != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return ps;
fail:
	/* A started worker thread stays parked: there is no way to join. */
	if (ps->tick != NULL)
		event_free(ps->tick);
	if (ps->kick_ev != NULL)
		event_free(ps->kick_ev);
	free(ps->sync);
	free(ps->p);
	free(ps);
	return NULL;
}

void
partition_set_reconfigure(struct partition_set *ps, int64_t ttl_ms,
    int64_t renew_ms)
{
	ps->ttl_ms = ttl_ms;
	ps->renew_ms = renew_ms;
}

int
partition_set_count(const struct partition_set *ps)
{
	return ps->count;
}

int
partition_set_of(const struct partition_set *ps, const char *id)
{
	return partition_index(id, ps->count);
}

void
partition_set_kick(struct partition_set *ps)
{
	struct timeval tv = { 0, PARTITION_KICK_MS * 1000 };

	if (ps->stopping || evtimer_pending(ps->kick_ev, NULL))
		return;
	evtimer_add(ps->kick_ev, &tv);
}

/* Want the partitions that hold sources; a change starts a cycle soon. */
static void
partition_set_want(struct partition_set *ps, const bool *want)
{
	bool changed = false;
	int  part, n = 0;

	for (part = 0; part < ps->count; part++) {
		if (ps->p[part].want != want[part])
			changed = true;
		ps->p[part].want = want[part];
		if (want[part])
			n++;
	}
	ps->nwant = n;
	if (changed)
		partition_set_kick(ps);
}

void
partition_set_sync_begin(struct partition_set *ps)
{
	memset(ps->sync, 0, (size_t)ps->count * sizeof(*ps->sync));
}

bool
partition_set_sync_source(struct partition_set *ps, int part, struct lease *l)
{
	if (part < 0 || part >= ps->count)
		return false;
	ps->sync[part] = true;
	return part != ps->draining && partition_set_holds(ps, part, l);
}

/* Give part up now: no longer held, its lease released by a cycle. */
static void
partition_release(struct partition_set *ps, int part)
{
	partition_lost(ps, part, true);
	ps->p[part].release = true;
	partition_set_kick(ps);
}

/*
 * More partitions held than the fair share (another instance joined):
 * hand one over. A partition being drained stays the one until it is
 * ready; otherwise the first held one the daemon does not skip.
 */
static void
partition_handover(struct partition_set *ps)
{
	enum partition_drain d;
	int		     part;

	if (ps->draining >= 0 && !partition_set_holds(ps, ps->draining, NULL))
		ps->draining = -1;
	if (ps->draining >= 0) {
		part = ps->draining;
		d = ps->ops.drain != NULL ? ps->ops.drain(ps->arg, part) :
					    PARTITION_DRAIN_READY;
		if (d == PARTITION_DRAIN_READY)
			partition_release(ps, part);
		if (d != PARTITION_DRAIN_SKIP)
			return;
		ps->draining = -1;
	}
	if (partition_set_held(ps) <= partition_set_share(ps))
		return;
	for (part = 0; part < ps->count; part++) {
		if (!partition_set_holds(ps, part, NULL))
			continue;
		d = ps->ops.drain != NULL ? ps->ops.drain(ps->arg, part) :
					    PARTITION_DRAIN_READY;
		if (d == PARTITION_DRAIN_SKIP)
			continue;
		if (d == PARTITION_DRAIN_WAIT)
			ps->draining = part;
		else
			partition_release(ps, part);
		return;
	}
}

void
partition_set_sync_end(struct partition_set *ps)
{
	if (ps->stopping)
		return;
	partition_set_want(ps, ps->sync);
	partition_handover(ps);
}

bool
partition_set_holds(const struct partition_set *ps, int part, struct lease *out)
{
	const struct ppart *p;

	if (part < 0 || part >= ps->count)
		return false;
	p = &ps->p[part];
	if (!p->held || !lease_valid(&p->lease))
		return false;
	if (out != NULL)
		*out = p->lease;
	return true;
}

int
partition_set_held(const struct partition_set *ps)
{
	int part, n = 0;

	for (part = 0; part < ps->count; part++)
		if (ps->p[part].held)
			n++;
	return n;
}

int
partition_set_share(const struct partition_set *ps)
{
	return lease_fair_share(ps->nwant, ps->live);
}

int
partition_set_live(const struct partition_set *ps)
{
	return ps->live;
}

void
partition_set_shutdown(struct partition_set *ps, void (*done)(void *arg),
    void				    *arg)
{
	struct pcycle *c;
	int	       part;

	ps->stopping = true;
	evtimer_del(ps->tick);
	evtimer_del(ps->kick_ev);
	for (part = 0; part < ps->count; part++) {
		ps->p[part].held = false;
		ps->p[part].lease.held = false;
	}
	ps->shut_done = done;
	ps->shut_arg = arg;
	c = util_xcalloc(1, sizeof(*c));
	c->ps = ps;
	c->st = ps->st;
	c->shutdown = true;
	util_strlcpy(c->role, ps->role, sizeof(c->role));
	util_strlcpy(c->instance, ps->instance, sizeof(c->instance));
	/* Queued behind a running cycle: it sees what that one took. */
	if (worker_submit_to(ps->w, pcycle_work, pcycle_done, c) != 0) {
		pcycle_free(c);
		ps->shut_done = NULL;
		if (done != NULL)
			done(arg);
		return;
	}
	ps->busy = true;
}

void
partition_set_free(struct partition_set *ps)
{
	if (ps == NULL)
		return;
	if (ps->busy) {
		ps->dying = true;
		ps->stopping = true;
		return;
	}
	event_free(ps->tick);
	event_free(ps->kick_ev);
	free(ps->sync);
	free(ps->p);
	free(ps);
}
