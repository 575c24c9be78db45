/*
 * deliverd's janitor: every minute on the worker thread, deletes what
 * removed sources left behind (batches, bodies, alerts, states, stats,
 * fetcherd's cursors, intents and schema names) and delivered alerts past
 * the retention.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliverd/deliverd.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/fstate.h"
#include "lib/store/partition.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

#define JANITOR_FIRST_MS 10000
#define JANITOR_EVERY_MS 60000

static struct event *janitor_ev, *janitor2_ev;

static void deliverd_janitor_first_cb(evutil_socket_t, short, void *);

/*
 * Run a distinct on coll.sourceId; calls fn for each value. 0 or -EIO.
 */
static int
deliverd_distinct_sources(const char *coll, char ***out, size_t *nout,
    char *err, size_t errlen)
{
	mongoc_client_t	  *c;
	mongoc_database_t *db;
	bson_t		  *cmd, reply;
	bson_iter_t	   it, ch;
	bson_error_t	   berr;
	char		 **v = NULL, **nv;
	size_t		   n = 0;
	int		   rc = 0;

	cmd = BCON_NEW("distinct", BCON_UTF8(coll), "key",
	    BCON_UTF8("sourceId"));
	c = store_pop(child_store());
	db = mongoc_client_get_database(c, store_dbname(child_store()));
	if (!mongoc_database_command_simple(db, cmd, NULL, &reply, &berr)) {
		snprintf(err, errlen, "distinct %s: %.400s", coll,
		    berr.message);
		rc = -EIO;
	} else if (bson_iter_init_find(&it, &reply, "values") &&
	    BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &ch)) {
		while (bson_iter_next(&ch)) {
			if (!BSON_ITER_HOLDS_UTF8(&ch))
				continue;
			nv = realloc(v, (n + 1) * sizeof(*v));
			if (nv == NULL)
				break;
			v = nv;
			v[n++] = util_xstrdup(bson_iter_utf8(&ch, NULL));
		}
	}
	bson_destroy(&reply);
	mongoc_database_destroy(db);
	store_push(child_store(), c);
	bson_destroy(cmd);
	*out = v;
	*nout = n;
	return rc;
}

/* A list of source ids. */
struct janitor_ids {
	char **v;
	size_t n;
};

static void
janitor_ids_free(struct janitor_ids *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

struct janitor {
	struct janitor_ids forgot; /* removed sources cleaned up */
	int		   rc;
	char		   err[512];
	char		   msgs[2048];
	size_t		   off;
	int64_t		   retention_ms;
};

static bool janitor_running;

#define JANITOR_DSTATE 4 /* colls[]: the delivery state */

static void janitor_note(struct janitor *jt, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
janitor_note(struct janitor *jt, const char *fmt, ...)
{
	va_list ap;
	int	n;

	if (jt->off >= sizeof(jt->msgs) - 2)
		return;
	va_start(ap, fmt);
	n = vsnprintf(jt->msgs + jt->off, sizeof(jt->msgs) - jt->off, fmt, ap);
	va_end(ap);
	if (n > 0)
		jt->off += (size_t)n;
	if (jt->off >= sizeof(jt->msgs))
		jt->off = sizeof(jt->msgs) - 1;
	jt->msgs[jt->off++] = '\n';
	jt->msgs[jt->off] = '\0';
}

static bool
janitor_has(char **v, size_t n, const char *id)
{
	return n > 0 && bsearch(&id, v, n, sizeof(*v), util_strp_cmp) != NULL;
}

static void
janitor_ids_add(struct janitor_ids *l, const char *id)
{
	l->v = util_xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = util_xstrdup(id);
}

static int
janitor_source_one(const bson_t *doc, void *arg)
{
	const char *id = store_bson_str(doc, "_id");

	if (id != NULL)
		janitor_ids_add(arg, id);
	return 0;
}

/* A source with an entry in the delivery state (dstate_each). */
static int
janitor_state_one(const char *sid, const bson_t *entry, void *arg)
{
	(void)entry;
	janitor_ids_add(arg, sid);
	return 0;
}

/*
 * Worker: the removed source's entry in its partition's delivery state,
 * the one write to that document not by the partition's holder. It is
 * safe: the entry belongs to no source any more, and a holder that still
 * carries it (state.c keeps a removed source's entry until this is done)
 * drops it when told (deliverd_state_forgotten); one that wrote it back
 * meanwhile is cleaned up at the next run. Without it, the entry of a
 * source removed while its partition has no holder (it had no other
 * source) would stay.
 */
static void
janitor_forget_state(const char *id)
{
	mongoc_client_t	    *c;
	mongoc_collection_t *coll;
	bson_t		    *sel, *upd;
	char		     name[FSTATE_COLL_MAX], did[FSTATE_ID_MAX];
	char		     key[96];
	int		     count = deliverd_partition_count();
	int		     part = partition_index(id, count);

	if (strchr(id, '.') != NULL || id[0] == '$')
		return;
	dstate_coll(count, part, name);
	fstate_doc_id(count, part, did);
	snprintf(key, sizeof(key), "sources.%s", id);
	sel = BCON_NEW("_id", BCON_UTF8(did));
	upd = BCON_NEW("$unset", "{", key, BCON_UTF8(""), "}");
	c = store_pop(child_store());
	coll = store_coll(child_store(), c, name);
	(void)mongoc_collection_update_one(coll, sel, upd, NULL, NULL, NULL);
	mongoc_collection_destroy(coll);
	store_push(child_store(), c);
	bson_destroy(sel);
	bson_destroy(upd);
}

/* Worker: everything else removed source sid left behind. */
static void
janitor_forget(struct janitor *jt, const char *id)
{
	static const char *const by_source[] = { STORE_BODIES,
		STORE_BODIES_DEAD, STORE_INTENTS, STORE_CURSORS, STORE_STATS,
		STORE_SCHEMA_NAMES };
	bson_t			*sel;
	char			 sid[96];
	size_t			 k;

	snprintf(sid, sizeof(sid), "%s:deliver", id);
	sel = BCON_NEW("_id", BCON_UTF8(sid));
	(void)store_delete(child_store(), STORE_SOURCE_STATE, sel, false, NULL,
	    jt->err, sizeof(jt->err));
	(void)store_delete(child_store(), STORE_STATS, sel, false, NULL,
	    jt->err, sizeof(jt->err));
	bson_destroy(sel);
	/* Bodies, fetcherd's cursors, stats and schema names. */
	sel = BCON_NEW("sourceId", BCON_UTF8(id));
	for (k = 0; k < nitems(by_source); k++)
		(void)store_delete(child_store(), by_source[k], sel, true, NULL,
		    jt->err, sizeof(jt->err));
	bson_destroy(sel);
	janitor_forget_state(id);
}

/*
 * Worker: delete what removed sources left behind. They are found by
 * what they left in `batches`, `source_state` (every source ever
 * delivered to has its "<id>:deliver" there: a source whose batches were
 * all delivered leaves no metadata, its 2xx deleted it), `cursors` (a
 * backfill's progress, and what older versions kept) and `alerts`: one
 * distinct on each (fetcherd drops a removed source's fetch state from
 * its partition's document itself), then one find of
 * every source id (never the reverse order: a source added in between
 * would look removed), compared in memory, where a find per id was one
 * scan of `sources` each.
 */
static void
janitor_removed(struct janitor *jt)
{
	/* The last: the entries of the delivery state (dstate_each). */
	static const char *const colls[] = { STORE_BATCHES, STORE_SOURCE_STATE,
		STORE_CURSORS, STORE_ALERTS, DSTATE_PREFIX "*" };
	struct janitor_ids	 ids[nitems(colls)], live = { NULL, 0 };
	bson_t			*sel, *opts;
	int64_t			 deleted;
	size_t			 i, k;

	memset(ids, 0, sizeof(ids));
	for (k = 0; k < nitems(colls) && jt->rc == 0; k++) {
		if (k == JANITOR_DSTATE)
			jt->rc = dstate_each(child_store(), janitor_state_one,
			    &ids[k], jt->err, sizeof(jt->err));
		else
			jt->rc = deliverd_distinct_sources(colls[k], &ids[k].v,
			    &ids[k].n, jt->err, sizeof(jt->err));
		if (jt->rc == 0 && ids[k].n > 1)
			qsort(ids[k].v, ids[k].n, sizeof(*ids[k].v),
			    util_strp_cmp);
	}
	if (jt->rc == 0) {
		sel = bson_new();
		opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}");
		jt->rc = store_each(child_store(), STORE_SOURCES, sel, opts,
		    janitor_source_one, &live, jt->err, sizeof(jt->err));
		bson_destroy(sel);
		bson_destroy(opts);
		if (live.n > 1)
			qsort(live.v, live.n, sizeof(*live.v), util_strp_cmp);
	}
	for (k = 0; k < nitems(colls) && jt->rc == 0; k++)
		for (i = 0; i < ids[k].n && jt->rc == 0; i++) {
			const char *id = ids[k].v[i];

			if (janitor_has(live.v, live.n, id))
				continue;
			/* States, cursors, delivery states. */
			bool left = k == 1 || k == 2 || k == JANITOR_DSTATE;

			if (!left) {
				sel = BCON_NEW("sourceId", BCON_UTF8(id));
				deleted = 0;
				jt->rc = store_delete(child_store(), colls[k],
				    sel, true, &deleted, jt->err,
				    sizeof(jt->err));
				bson_destroy(sel);
				janitor_note(jt,
				    "source=%s removed: deleted %lld %s", id,
				    (long long)deleted, colls[k]);
			} else if (janitor_has(ids[0].v, ids[0].n, id) ||
			    (k >= 2 && janitor_has(ids[1].v, ids[1].n, id)) ||
			    (k > 2 && janitor_has(ids[2].v, ids[2].n, id)))
				continue; /* forgotten already */
			else
				janitor_note(jt,
				    "source=%s removed: deleting its "
				    "cursors, states and stats",
				    id);
			/* Once per source: batches, else states or cursors. */
			if (jt->rc == 0 && (k == 0 || left)) {
				janitor_forget(jt, id);
				janitor_ids_add(&jt->forgot, id);
			}
		}
	for (k = 0; k < nitems(colls); k++)
		janitor_ids_free(&ids[k]);
	janitor_ids_free(&live);
}

/* Worker: delivered alerts older than the retention go. */
static void
janitor_prune(struct janitor *jt)
{
	bson_t *filter;

	filter = BCON_NEW("state", BCON_UTF8("batched"), "at", "{", "$lt",
	    BCON_INT64(util_now_ms() - jt->retention_ms), "}");
	jt->rc = store_delete(child_store(), STORE_ALERTS, filter, true, NULL,
	    jt->err, sizeof(jt->err));
	bson_destroy(filter);
}

static void
janitor_work(void *arg)
{
	struct janitor *jt = arg;

	janitor_removed(jt);
	if (jt->rc == 0)
		janitor_prune(jt);
}

static void
janitor_done(void *arg)
{
	struct janitor *jt = arg;
	char	       *line, *save = NULL;

	janitor_running = false;
	(void)child_store_result(jt->rc >= 0, jt->err);
	/* Their delivery state entries may go now (kept until this). */
	deliverd_state_forgotten(jt->forgot.v, jt->forgot.n);
	janitor_ids_free(&jt->forgot);
	for (line = strtok_r(jt->msgs, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save))
		log_info("%s", line);
	free(jt);
}

/*
 * Janitor: delete what belongs to removed sources (logs, batches, alerts,
 * this daemon's state and stats), and prune what was delivered long ago.
 * Runs on the worker thread.
 */
static void
deliverd_janitor_cb(evutil_socket_t fd, short what, void *arg)
{
	struct janitor *jt;

	if (janitor_running || child_stopping() || !child_store_ready() ||
	    !store_healthy(child_store()))
		return;
	jt = util_xcalloc(1, sizeof(*jt));
	jt->retention_ms = deliverd_conf()->retention_ms;
	if (worker_submit(janitor_work, janitor_done, jt) != 0) {
		free(jt);
		return;
	}
	janitor_running = true;
}

/* Start the janitor: a first run soon, then every minute. */
void
deliverd_janitor_start(void)
{
	deliverd_timer_start(&janitor_ev, deliverd_janitor_first_cb,
	    JANITOR_FIRST_MS, false);
}

/* Janitor timer: first run, then every minute. */
static void
deliverd_janitor_first_cb(evutil_socket_t fd, short what, void *arg)
{
	deliverd_janitor_cb(fd, what, arg);
	deliverd_timer_start(&janitor2_ev, deliverd_janitor_cb,
	    JANITOR_EVERY_MS, true);
}
