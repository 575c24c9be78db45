/*
 * Watermarks per (source, application). See watermark.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"
#include "lib/store/store.h"
#include "lib/store/watermark.h"

static int
wm_hold_cmp(const void *a, const void *b)
{
	const struct wm_hold *x = a, *y = b;
	int		      c;

	if ((c = strcmp(x->sid, y->sid)) != 0)
		return c;
	return strcmp(x->app, y->app);
}

struct wm_load {
	struct wm_holds *h;
	size_t		 cap;
};

static int
wm_hold_one(const bson_t *doc, void *arg)
{
	struct wm_load *l = arg;
	struct wm_hold *x;
	const char     *sid = store_bson_str(doc, "sourceId");
	const char     *app = store_bson_str(doc, "app");

	if (sid == NULL || app == NULL)
		return 0;
	if (l->h->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->h->v = util_xreallocarray(l->h->v, l->cap, sizeof(*x));
	}
	x = &l->h->v[l->h->n++];
	util_strlcpy(x->sid, sid, sizeof(x->sid));
	util_strlcpy(x->app, app, sizeof(x->app));
	x->min_time = store_bson_int(doc, "minTime", 0);
	x->max_time = store_bson_int(doc, "maxTime", 0);
	return 0;
}

int
wm_holds_load(struct store *st, mongoc_client_t *c, const char *sid,
    struct wm_holds *out, char *err, size_t errlen)
{
	struct wm_load	     l = { out, 0 };
	mongoc_collection_t *col;
	bson_t		    *q, *opts;
	int		     rc;

	memset(out, 0, sizeof(*out));
	q = BCON_NEW("kind", BCON_UTF8("logs"), "state", "{", "$ne",
	    BCON_UTF8("delivered"), "}");
	if (sid != NULL)
		BSON_APPEND_UTF8(q, "sourceId", sid);
	opts = BCON_NEW("projection", "{", "sourceId", BCON_INT32(1), "app",
	    BCON_INT32(1), "minTime", BCON_INT32(1), "maxTime", BCON_INT32(1),
	    "_id", BCON_INT32(0), "}");
	if (c != NULL) {
		col = store_coll(st, c, STORE_BATCHES);
		rc = store_each_in(col, q, opts, wm_hold_one, &l, err, errlen);
		mongoc_collection_destroy(col);
	} else
		rc = store_each(st, STORE_BATCHES, q, opts, wm_hold_one, &l,
		    err, errlen);
	bson_destroy(q);
	bson_destroy(opts);
	if (rc < 0) {
		wm_holds_free(out);
		return -EIO;
	}
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), wm_hold_cmp);
	return 0;
}

void
wm_holds_free(struct wm_holds *h)
{
	free(h->v);
	memset(h, 0, sizeof(*h));
}

struct wm
wm_compute(const bson_t *fetch, const char *sid, const char *app,
    const struct wm_holds *h)
{
	struct wm      r = { 0, "fetch" };
	struct wm_hold key, *x = NULL;
	char	       path[96];
	int64_t	       fin, covered;

	if (fetch == NULL || sid == NULL || h == NULL)
		return r; /* h NULL: the holds are not known */
	snprintf(path, sizeof(path), "fetchedThrough.%s", app);
	fin = store_bson_int(fetch, path, 0);
	snprintf(path, sizeof(path), "coveredFrom.%s", app);
	covered = store_bson_int(fetch, path, 0);
	if (fin <= 0)
		return r;
	memset(&key, 0, sizeof(key));
	util_strlcpy(key.sid, sid, sizeof(key.sid));
	util_strlcpy(key.app, app, sizeof(key.app));
	if (h->n > 0)
		x = bsearch(&key, h->v, h->n, sizeof(*h->v), wm_hold_cmp);
	if (x != NULL) {
		/* The first batch of the pair, then every one of them. */
		while (x > h->v && wm_hold_cmp(x - 1, &key) == 0)
			x--;
		for (; x < h->v + h->n && wm_hold_cmp(x, &key) == 0; x++) {
			if (x->max_time > 0 && x->max_time < covered)
				continue; /* a backfill's, before coveredFrom */
			if (x->min_time - 1 < fin) {
				r.held_by = "delivery";
				fin = x->min_time - 1; /* minTime 0: none */
			}
		}
	}
	if (fin <= 0 || fin <= covered)
		return r;
	r.through_ms = fin;
	return r;
}
