/*
 * The fetch state by partition. See fstate.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/fstate.h"
#include "lib/store/partition.h"
#include "lib/store/store.h"

/*
 * What tells the fetch state from the delivery state: the prefix of the
 * collections, and how older versions' per-source documents are read.
 */
typedef int (*fkind_legacy_fn)(struct store *st, const char *const *ids,
    size_t n, bson_t **entries, char *err, size_t errlen);
struct fkind {
	const char     *prefix;
	fkind_legacy_fn legacy;
};

static int fstate_legacy(struct store *st, const char *const *ids, size_t n,
    bson_t **entries, char *err, size_t errlen);
static int dstate_legacy(struct store *st, const char *const *ids, size_t n,
    bson_t **entries, char *err, size_t errlen);

static const struct fkind fetch_kind = { FSTATE_PREFIX, fstate_legacy };
static const struct fkind deliver_kind = { DSTATE_PREFIX, dstate_legacy };

static void
kind_coll(const struct fkind *k, int count, int part, char out[FSTATE_COLL_MAX])
{
	snprintf(out, FSTATE_COLL_MAX, "%s%d_%d", k->prefix, count, part);
}

void
fstate_coll(int count, int part, char out[FSTATE_COLL_MAX])
{
	kind_coll(&fetch_kind, count, part, out);
}

void
dstate_coll(int count, int part, char out[FSTATE_COLL_MAX])
{
	kind_coll(&deliver_kind, count, part, out);
}

void
fstate_doc_id(int count, int part, char out[FSTATE_ID_MAX])
{
	snprintf(out, FSTATE_ID_MAX, "%d:%d", count, part);
}

/* The count of a collection name "<prefix><count>_<part>", or -1. */
static int
kind_coll_count(const struct fkind *k, const char *name)
{
	size_t plen = strlen(k->prefix);
	int    count, part;
	char   tail;

	if (strncmp(name, k->prefix, plen) != 0 ||
	    sscanf(name + plen, "%d_%d%c", &count, &part, &tail) != 2)
		return -1;
	return count;
}

/*
 * Copy the entries of ids found in doc's sources into entries: where
 * none is there yet, or (newest) where doc's is more recent.
 */
static void
fstate_pick(const bson_t *doc, const char *const *ids, size_t n,
    bson_t **entries, bool newest)
{
	bson_iter_t    it, sub;
	const uint8_t *data;
	uint32_t       len;
	bson_t	       e;
	size_t	       i;

	if (!bson_iter_init_find(&it, doc, "sources") ||
	    !BSON_ITER_HOLDS_DOCUMENT(&it))
		return;
	for (i = 0; i < n; i++) {
		if (entries[i] != NULL && !newest)
			continue;
		if (!bson_iter_recurse(&it, &sub) ||
		    !bson_iter_find(&sub, ids[i]) ||
		    !BSON_ITER_HOLDS_DOCUMENT(&sub))
			continue;
		bson_iter_document(&sub, &len, &data);
		if (!bson_init_static(&e, data, len))
			continue;
		if (entries[i] != NULL) {
			if (store_bson_int(&e, "updatedAt", 0) <=
			    store_bson_int(entries[i], "updatedAt", 0))
				continue;
			bson_destroy(entries[i]);
		}
		if ((entries[i] = bson_new_from_data(data, len)) == NULL)
			fatal("out of memory");
	}
}

struct fpick {
	const char *const *ids;
	size_t		   n;
	bson_t		 **entries;
};

static int
fstate_pick_one(const bson_t *doc, void *arg)
{
	struct fpick *p = arg;

	fstate_pick(doc, p->ids, p->n, p->entries, true);
	return 0;
}

/*
 * The per-source documents of older versions (source_state "<id>:fetch",
 * cursors and stats "<id>:<app>") of the ids that have no entry yet,
 * made into entries.
 */
struct flegacy {
	const char **sids;
	size_t	     m;
	bson_t	   **cur, **sta; /* m each, NULL until one is met */
};

static ssize_t
fstate_legacy_index(const struct flegacy *l, const char *sid)
{
	size_t i;

	for (i = 0; sid != NULL && i < l->m; i++)
		if (strcmp(l->sids[i], sid) == 0)
			return (ssize_t)i;
	return -1;
}

/* Add doc (without its _id) to *dst under its app. */
static void
fstate_legacy_add(bson_t **dst, const bson_t *doc)
{
	const char *app = store_bson_str(doc, "app");
	bson_t	    copy;

	if (app == NULL || strchr(app, '.') != NULL || app[0] == '$')
		return;
	if (*dst == NULL)
		*dst = bson_new();
	bson_init(&copy);
	bson_copy_to_excluding_noinit(doc, &copy, "_id", NULL);
	BSON_APPEND_DOCUMENT(*dst, app, &copy);
	bson_destroy(&copy);
}

static int
fstate_legacy_cursor(const bson_t *doc, void *arg)
{
	struct flegacy *l = arg;
	ssize_t k = fstate_legacy_index(l, store_bson_str(doc, "sourceId"));

	if (k >= 0)
		fstate_legacy_add(&l->cur[k], doc);
	return 0;
}

/* Whether a stats document is deliverd's "<source>:deliver". */
static bool
fstate_deliver_stats(const bson_t *doc)
{
	const char *id = store_bson_str(doc, "_id");
	size_t	    n;

	return id != NULL && (n = strlen(id)) > 8 &&
	    strcmp(id + n - 8, ":deliver") == 0;
}

static int
fstate_legacy_stats(const bson_t *doc, void *arg)
{
	struct flegacy *l = arg;
	ssize_t k = fstate_legacy_index(l, store_bson_str(doc, "sourceId"));

	/* deliverd's "<id>:deliver" documents stay where they are. */
	if (k < 0 || store_bson_str(doc, "_id") == NULL ||
	    fstate_deliver_stats(doc))
		return 0;
	fstate_legacy_add(&l->sta[k], doc);
	return 0;
}

static int
fstate_legacy(struct store *st, const char *const *ids, size_t n,
    bson_t **entries, char *err, size_t errlen)
{
	struct flegacy l = { NULL, 0, NULL, NULL };
	bson_t	      *sel, **sdocs, entry;
	char	     **keys;
	size_t	       i, k;
	size_t	      *idx;
	int	       rc;

	idx = util_xcalloc(n + 1, sizeof(*idx));
	l.sids = util_xcalloc(n + 1, sizeof(*l.sids));
	for (i = 0; i < n; i++)
		if (entries[i] == NULL) {
			idx[l.m] = i;
			l.sids[l.m++] = ids[i];
		}
	keys = util_xcalloc(l.m + 1, sizeof(*keys));
	sdocs = util_xcalloc(l.m + 1, sizeof(*sdocs));
	l.cur = util_xcalloc(l.m + 1, sizeof(*l.cur));
	l.sta = util_xcalloc(l.m + 1, sizeof(*l.sta));
	for (k = 0; k < l.m; k++) {
		char key[96];

		snprintf(key, sizeof(key), "%s:fetch", l.sids[k]);
		keys[k] = util_xstrdup(key);
	}
	rc = l.m == 0 ? 0 :
			store_find_ids(st, STORE_SOURCE_STATE, keys, l.m, sdocs,
			    err, errlen);
	if (rc == 0 && l.m > 0) {
		bson_t a;

		sel = store_sel_in("sourceId", l.sids, sizeof(*l.sids), l.m,
		    true);
		rc = store_each(st, STORE_STATS, sel, NULL, fstate_legacy_stats,
		    &l, err, errlen);
		BSON_APPEND_DOCUMENT_BEGIN(sel, "backfillId", &a);
		BSON_APPEND_BOOL(&a, "$exists", false);
		bson_append_document_end(sel, &a);
		if (rc == 0)
			rc = store_each(st, STORE_CURSORS, sel, NULL,
			    fstate_legacy_cursor, &l, err, errlen);
		bson_destroy(sel);
	}
	for (k = 0; k < l.m; k++) {
		if (rc == 0 && (sdocs[k] != NULL || l.cur[k] != NULL)) {
			bson_init(&entry);
			if (sdocs[k] != NULL)
				bson_copy_to_excluding_noinit(sdocs[k], &entry,
				    "_id", "sourceId", NULL);
			if (l.cur[k] != NULL)
				BSON_APPEND_DOCUMENT(&entry, "cursors",
				    l.cur[k]);
			if (l.sta[k] != NULL)
				BSON_APPEND_DOCUMENT(&entry, "stats", l.sta[k]);
			if ((entries[idx[k]] = bson_copy(&entry)) == NULL)
				fatal("out of memory");
			bson_destroy(&entry);
		}
		if (sdocs[k] != NULL)
			bson_destroy(sdocs[k]);
		if (l.cur[k] != NULL)
			bson_destroy(l.cur[k]);
		if (l.sta[k] != NULL)
			bson_destroy(l.sta[k]);
		free(keys[k]);
	}
	free(keys);
	free(sdocs);
	free(l.cur);
	free(l.sta);
	free(l.sids);
	free(idx);
	return rc < 0 ? -EIO : 0;
}

/*
 * deliverd's per-source documents of older versions (source_state and
 * stats "<id>:deliver") of the ids that have no entry yet, made into
 * entries {status, lastDeliveryAt, ..., stats: {deliveredLogs, ...}}.
 */
static int
dstate_legacy(struct store *st, const char *const *ids, size_t n,
    bson_t **entries, char *err, size_t errlen)
{
	char  **keys;
	bson_t *docs[2], **found[2], entry, stats;
	size_t *idx, i, k, m = 0;
	int	rc = 0;

	keys = util_xcalloc(n + 1, sizeof(*keys));
	idx = util_xcalloc(n + 1, sizeof(*idx));
	for (i = 0; i < n; i++)
		if (entries[i] == NULL) {
			char key[96];

			snprintf(key, sizeof(key), "%s:deliver", ids[i]);
			keys[m] = util_xstrdup(key);
			idx[m++] = i;
		}
	found[0] = util_xcalloc(m + 1, sizeof(bson_t *));
	found[1] = util_xcalloc(m + 1, sizeof(bson_t *));
	if (m > 0)
		rc = store_find_ids(st, STORE_SOURCE_STATE, keys, m, found[0],
		    err, errlen);
	if (m > 0 && rc == 0)
		rc = store_find_ids(st, STORE_STATS, keys, m, found[1], err,
		    errlen);
	for (k = 0; k < m; k++) {
		docs[0] = found[0][k];
		docs[1] = found[1][k];
		if (rc == 0 && (docs[0] != NULL || docs[1] != NULL)) {
			bson_init(&entry);
			if (docs[0] != NULL)
				bson_copy_to_excluding_noinit(docs[0], &entry,
				    "_id", "sourceId", NULL);
			if (docs[1] != NULL) {
				bson_init(&stats);
				bson_copy_to_excluding_noinit(docs[1], &stats,
				    "_id", "sourceId", "updatedAt", NULL);
				BSON_APPEND_DOCUMENT(&entry, "stats", &stats);
				bson_destroy(&stats);
			}
			if ((entries[idx[k]] = bson_copy(&entry)) == NULL)
				fatal("out of memory");
			bson_destroy(&entry);
		}
		for (i = 0; i < 2; i++)
			if (docs[i] != NULL)
				bson_destroy(docs[i]);
		free(keys[k]);
	}
	free(found[0]);
	free(found[1]);
	free(keys);
	free(idx);
	return rc < 0 ? -EIO : 0;
}

/*
 * fn(doc, arg) for the documents of every fetch_state_ collection but
 * those of count skip (-1: none skipped).
 */
static int
kind_scan(const struct fkind *k, struct store *st, int skip, store_each_fn fn,
    void *arg, char *err, size_t errlen)
{
	bson_t all = BSON_INITIALIZER;
	char **names = NULL;
	size_t nn = 0, i;
	int    rc;

	rc = store_list_collections(st, k->prefix, &names, &nn, err, errlen);
	for (i = 0; i < nn; i++) {
		int c = kind_coll_count(k, names[i]);

		if (rc == 0 && c > 0 && c != skip)
			rc = store_each(st, names[i], &all, NULL, fn, arg, err,
			    errlen);
		free(names[i]);
	}
	free(names);
	bson_destroy(&all);
	return rc;
}

/*
 * Entries not found in the partition's own document: the newest in the
 * documents of other counts, then those of older versions.
 */
static int
kind_fallback(const struct fkind *k, struct store *st, int count,
    const char *const *ids, size_t n, bson_t **entries, unsigned flags,
    char *err, size_t errlen)
{
	struct fpick p = { ids, n, entries };
	int	     rc;

	rc = kind_scan(k, st, count, fstate_pick_one, &p, err, errlen);
	if (rc == 0 && !(flags & FSTATE_NO_LEGACY))
		rc = k->legacy(st, ids, n, entries, err, errlen);
	return rc < 0 ? -EIO : 0;
}

static int
kind_load(const struct fkind *k, struct store *st, int count, int part,
    const char *const *ids, size_t n, bson_t **entries, unsigned flags,
    bool *found, bson_t **sources, char *err, size_t errlen)
{
	char   coll[FSTATE_COLL_MAX], id[FSTATE_ID_MAX];
	bson_t sel, doc, sub;
	size_t i;
	int    rc;

	for (i = 0; i < n; i++)
		entries[i] = NULL;
	if (found != NULL)
		*found = false;
	if (sources != NULL)
		*sources = NULL;
	kind_coll(k, count, part, coll);
	fstate_doc_id(count, part, id);
	bson_init(&sel);
	BSON_APPEND_UTF8(&sel, "_id", id);
	rc = store_find_one(st, coll, &sel, NULL, &doc, err, errlen);
	bson_destroy(&sel);
	if (rc < 0)
		return -EIO;
	if (rc == 0)
		return kind_fallback(k, st, count, ids, n, entries, flags, err,
		    errlen);
	if (found != NULL)
		*found = true;
	fstate_pick(&doc, ids, n, entries, false);
	if (sources != NULL)
		*sources = store_bson_sub(&doc, "sources", &sub) ?
		    bson_copy(&sub) :
		    bson_new();
	bson_destroy(&doc);
	return 0;
}

int
fstate_load(struct store *st, int count, int part, const char *const *ids,
    size_t n, bson_t **entries, unsigned flags, bool *found, bson_t **sources,
    char *err, size_t errlen)
{
	return kind_load(&fetch_kind, st, count, part, ids, n, entries, flags,
	    found, sources, err, errlen);
}

int
dstate_load(struct store *st, int count, int part, const char *const *ids,
    size_t n, bson_t **entries, bool *found, bson_t **sources, char *err,
    size_t errlen)
{
	return kind_load(&deliver_kind, st, count, part, ids, n, entries, 0,
	    found, sources, err, errlen);
}

struct fgroup {
	int	    part;
	size_t	    i;
	const char *id;
};

static int
fstate_group_cmp(const void *a, const void *b)
{
	const struct fgroup *x = a, *y = b;

	if (x->part != y->part)
		return x->part < y->part ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

static int
kind_find(const struct fkind *kind, struct store *st, int count,
    const char *const *ids, size_t n, bson_t **entries, char *err,
    size_t errlen)
{
	struct fgroup *g;
	const char   **gids;
	bson_t	     **gent;
	size_t	       i, k, m, missing;
	bool	       found;
	int	       rc = 0;

	g = util_xcalloc(n + 1, sizeof(*g));
	gids = util_xcalloc(n + 1, sizeof(*gids));
	gent = util_xcalloc(n + 1, sizeof(*gent));
	for (i = 0; i < n; i++) {
		entries[i] = NULL;
		g[i].part = partition_index(ids[i], count);
		g[i].i = i;
		g[i].id = ids[i];
	}
	qsort(g, n, sizeof(*g), fstate_group_cmp);
	for (i = 0; rc == 0 && i < n; i = k) {
		for (k = i, m = 0; k < n && g[k].part == g[i].part; k++)
			gids[m++] = g[k].id;
		rc = kind_load(kind, st, count, g[i].part, gids, m, gent, 0,
		    &found, NULL, err, errlen);
		for (k = i, missing = 0; k < n && g[k].part == g[i].part; k++)
			missing += gent[k - i] == NULL;
		if (rc == 0 && found && missing > 0)
			rc = kind_fallback(kind, st, count, gids, m, gent,
			    FSTATE_NO_LEGACY, err, errlen);
		for (k = i; k < n && g[k].part == g[i].part; k++)
			entries[g[k].i] = gent[k - i];
	}
	if (rc != 0)
		for (i = 0; i < n; i++)
			if (entries[i] != NULL) {
				bson_destroy(entries[i]);
				entries[i] = NULL;
			}
	free(g);
	free(gids);
	free(gent);
	return rc;
}

int
fstate_find(struct store *st, int count, const char *const *ids, size_t n,
    bson_t **entries, char *err, size_t errlen)
{
	return kind_find(&fetch_kind, st, count, ids, n, entries, err, errlen);
}

int
dstate_find(struct store *st, int count, const char *const *ids, size_t n,
    bson_t **entries, char *err, size_t errlen)
{
	return kind_find(&deliver_kind, st, count, ids, n, entries, err,
	    errlen);
}

/* Every entry of every partition document, copied, then the newest. */
struct fitem {
	char	*sid;
	int64_t	 at;
	uint8_t *data;
	uint32_t len;
};

struct feach {
	struct fitem *v;
	size_t	      n, cap;
};

static int
fstate_each_doc(const bson_t *doc, void *arg)
{
	struct feach  *f = arg;
	bson_iter_t    it, sub;
	const uint8_t *data;
	uint32_t       len;
	bson_t	       e;

	if (!bson_iter_init_find(&it, doc, "sources") ||
	    !BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &sub))
		return 0;
	while (bson_iter_next(&sub)) {
		struct fitem *x;

		if (!BSON_ITER_HOLDS_DOCUMENT(&sub))
			continue;
		bson_iter_document(&sub, &len, &data);
		if (!bson_init_static(&e, data, len))
			continue;
		if (f->n == f->cap) {
			f->cap = f->cap ? f->cap * 2 : 256;
			if ((x = reallocarray(f->v, f->cap, sizeof(*x))) ==
			    NULL)
				return -ENOMEM;
			f->v = x;
		}
		x = &f->v[f->n++];
		x->sid = util_xstrdup(bson_iter_key(&sub));
		x->at = store_bson_int(&e, "updatedAt", 0);
		if ((x->data = malloc(len)) == NULL)
			return -ENOMEM;
		memcpy(x->data, data, len);
		x->len = len;
	}
	return 0;
}

static int
fstate_item_cmp(const void *a, const void *b)
{
	const struct fitem *x = a, *y = b;
	int		    c = strcmp(x->sid, y->sid);

	if (c != 0)
		return c;
	return x->at > y->at ? -1 : x->at < y->at;
}

static int
kind_each(const struct fkind *k, struct store *st, fstate_each_fn fn, void *arg,
    char *err, size_t errlen)
{
	struct feach f = { NULL, 0, 0 };
	bson_t	     e;
	size_t	     i;
	int	     rc;

	rc = kind_scan(k, st, -1, fstate_each_doc, &f, err, errlen);
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory reading %s*", k->prefix);
	if (rc == 0 && f.n > 1)
		qsort(f.v, f.n, sizeof(*f.v), fstate_item_cmp);
	/* The first of each source is its newest (freed after: compared). */
	for (i = 0; i < f.n; i++)
		if (rc == 0 && (i == 0 || strcmp(f.v[i].sid, f.v[i - 1].sid)) &&
		    bson_init_static(&e, f.v[i].data, f.v[i].len))
			rc = fn(f.v[i].sid, &e, arg);
	for (i = 0; i < f.n; i++) {
		free(f.v[i].sid);
		free(f.v[i].data);
	}
	free(f.v);
	return rc;
}

int
fstate_each(struct store *st, fstate_each_fn fn, void *arg, char *err,
    size_t errlen)
{
	return kind_each(&fetch_kind, st, fn, arg, err, errlen);
}

int
dstate_each(struct store *st, fstate_each_fn fn, void *arg, char *err,
    size_t errlen)
{
	return kind_each(&deliver_kind, st, fn, arg, err, errlen);
}

int
fstate_legacy_probe(struct store *st, char *err, size_t errlen)
{
	bson_t *sel, *opts, doc;
	int	rc;

	sel = BCON_NEW("backfillId", "{", "$exists", BCON_BOOL(false), "}");
	opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}");
	rc = store_find_one(st, STORE_CURSORS, sel, opts, &doc, err, errlen);
	if (rc == 1)
		bson_destroy(&doc);
	bson_destroy(sel);
	bson_destroy(opts);
	return rc < 0 ? -EIO : rc;
}

struct fstats {
	store_each_fn fn;
	void	     *arg;
};

/*
 * fn(the stats document {_id: id, sourceId: sid (when not NULL), and the
 * counters of stats}).
 */
static int
fstate_stats_emit(struct fstats *f, const char *id, const char *sid,
    const bson_t *stats)
{
	bson_t doc;
	int    rc;

	bson_init(&doc);
	BSON_APPEND_UTF8(&doc, "_id", id);
	if (sid != NULL)
		BSON_APPEND_UTF8(&doc, "sourceId", sid);
	bson_copy_to_excluding_noinit(stats, &doc, "_id",
	    sid != NULL ? "sourceId" : NULL, NULL);
	rc = f->fn(&doc, f->arg);
	bson_destroy(&doc);
	return rc;
}

static int
fstate_stats_entry(const char *sid, const bson_t *entry, void *arg)
{
	struct fstats *f = arg;
	bson_iter_t    it, sub;
	const uint8_t *data;
	uint32_t       len;
	bson_t	       stats;
	char	       id[200];
	int	       rc = 0;

	if (!bson_iter_init_find(&it, entry, "stats") ||
	    !BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &sub))
		return 0;
	while (rc == 0 && bson_iter_next(&sub)) {
		if (!BSON_ITER_HOLDS_DOCUMENT(&sub))
			continue;
		bson_iter_document(&sub, &len, &data);
		if (!bson_init_static(&stats, data, len))
			continue;
		snprintf(id, sizeof(id), "%s:%s", sid, bson_iter_key(&sub));
		rc = fstate_stats_emit(f, id, NULL, &stats);
	}
	return rc;
}

int
fstate_each_stats(struct store *st, store_each_fn fn, void *arg, char *err,
    size_t errlen)
{
	struct fstats f = { fn, arg };

	return fstate_each(st, fstate_stats_entry, &f, err, errlen);
}

/* The counters of a delivery entry as stats "<source>:deliver". */
static int
dstate_stats_entry(const char *sid, const bson_t *entry, void *arg)
{
	struct fstats *f = arg;
	bson_t	       stats;
	char	       id[200];

	if (!store_bson_sub(entry, "stats", &stats))
		return 0;
	snprintf(id, sizeof(id), "%s:deliver", sid);
	return fstate_stats_emit(f, id, sid, &stats);
}

int
dstate_each_stats(struct store *st, store_each_fn fn, void *arg, char *err,
    size_t errlen)
{
	struct fstats f = { fn, arg };

	return dstate_each(st, dstate_stats_entry, &f, err, errlen);
}
