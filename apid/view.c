/*
 * The sources as the API reports them. See view.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apid/view.h"
#include "lib/base/json.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/ipc/config.h"
#include "lib/store/fstate.h"
#include "lib/store/store.h"
#include "runtime/child.h"

/* partition_count: where fetcherd keeps the fetch states (fstate.h). */
static int
view_parts(void)
{
	return (int)config_int(child_config(), CONF_PARTITION_COUNT);
}

/* An entry of a state into its source's view, where it has none yet. */
static int
views_entry(struct views *vs, const char *sid, const bson_t *entry,
    bool deliver)
{
	struct view *v = (struct view *)views_find(vs, sid, strlen(sid));
	bson_t	   **slot;

	if (v == NULL)
		return 0;
	slot = deliver ? &v->deliver : &v->fetch;
	if (*slot == NULL && (*slot = bson_copy(entry)) == NULL)
		fatal("out of memory");
	return 0;
}

/* The fetch state's entries (fstate_each), the delivery state's. */
static int
views_fstate_one(const char *sid, const bson_t *entry, void *arg)
{
	return views_entry(arg, sid, entry, false);
}

static int
views_dstate_one(const char *sid, const bson_t *entry, void *arg)
{
	return views_entry(arg, sid, entry, true);
}

/*
 * The fetch states (deliver false) or the delivery states of vs's
 * sources: those of a page, or all.
 */
static int
views_states(struct views *vs, bool page, bool deliver, char *err,
    size_t errlen)
{
	const char **ids;
	bson_t	   **entries;
	size_t	     i;
	int	     rc;

	if (!page)
		return (deliver ? dstate_each(child_store(), views_dstate_one,
				      vs, err, errlen) :
				  fstate_each(child_store(), views_fstate_one,
				      vs, err, errlen)) == 0 ?
		    0 :
		    -EIO;
	ids = util_xcalloc(vs->n + 1, sizeof(*ids));
	entries = util_xcalloc(vs->n + 1, sizeof(*entries));
	for (i = 0; i < vs->n; i++)
		ids[i] = vs->v[i].id;
	rc = (deliver ? dstate_find : fstate_find)(child_store(), view_parts(),
	    ids, vs->n, entries, err, errlen);
	for (i = 0; rc == 0 && i < vs->n; i++)
		*(deliver ? &vs->v[i].deliver : &vs->v[i].fetch) = entries[i];
	free(ids);
	free(entries);
	return rc;
}

#define VIEW_STATE_ID_MAX 96 /* "<source>:deliver" and its NUL */

const char *const view_statuses[VIEW_NSTATUS] = { "active", "paused",
	"credentials_invalid", "callback_failing", "callback_gone" };

/*
 * Derive what v reports from its documents: the status is paused if the
 * source is paused, else credentials_invalid from fetch, else
 * callback_failing/callback_gone from deliver, else active; the last error
 * is fetch's, unless it has none or the callback is the trouble.
 */
static void
view_derive(struct view *v)
{
	const char *fs = NULL, *ds = NULL, *derr;

	if (v->fetch != NULL)
		fs = store_bson_str(v->fetch, "status");
	if (v->deliver != NULL)
		ds = store_bson_str(v->deliver, "status");
	v->id = store_bson_str(v->src, "_id");
	v->paused = store_bson_bool(v->src, "paused", false);
	v->watermarks = store_bson_bool(v->src, "watermarks", false);
	v->creds_invalid = fs != NULL && strcmp(fs, "credentials_invalid") == 0;
	v->deliver_failing = ds != NULL && strcmp(ds, "ok") != 0;
	v->last_fetch_ms = v->fetch != NULL ?
	    store_bson_int(v->fetch, "lastFetchAt", 0) :
	    0;
	v->last_delivery_ms = v->deliver != NULL ?
	    store_bson_int(v->deliver, "lastDeliveryAt", 0) :
	    0;
	if (v->paused)
		v->status = view_statuses[1];
	else if (v->creds_invalid)
		v->status = view_statuses[2];
	else if (ds != NULL && strcmp(ds, view_statuses[3]) == 0)
		v->status = view_statuses[3];
	else if (ds != NULL && strcmp(ds, view_statuses[4]) == 0)
		v->status = view_statuses[4];
	else
		v->status = view_statuses[0];
	v->last_error = v->fetch != NULL ?
	    store_bson_str(v->fetch, "lastError") :
	    NULL;
	derr = v->deliver != NULL ? store_bson_str(v->deliver, "lastError") :
				    NULL;
	if ((v->last_error == NULL || v->status == view_statuses[3] ||
		v->status == view_statuses[4]) &&
	    derr != NULL)
		v->last_error = derr;
}

/* A copy of source document src without its secrets. */
static bson_t *
view_copy_src(const bson_t *src)
{
	bson_t *d = bson_new();

	bson_copy_to_excluding_noinit(src, d, "credentials", "webhookSecret",
	    "requestDigest", NULL);
	return d;
}

static int
view_cmp_id(const void *a, const void *b)
{
	const struct view *const *x = a, *const *y = b;

	return strcmp((*x)->id, (*y)->id);
}

const struct view *
views_find(const struct views *vs, const char *id, size_t idlen)
{
	size_t lo = 0, hi = vs->n, mid;
	int    c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strncmp(vs->byid[mid]->id, id, idlen);
		if (c == 0 && vs->byid[mid]->id[idlen] != '\0')
			c = 1;
		if (c == 0)
			return vs->byid[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * Attach state document d ("<source>:fetch" or "<source>:deliver") to its
 * source's view, if that source is in vs (states of removed sources are
 * left out).
 */
static void
views_attach(struct views *vs, const bson_t *d)
{
	const char  *id, *colon;
	struct view *v;
	bson_t	   **slot;

	if ((id = store_bson_str(d, "_id")) == NULL ||
	    (colon = strrchr(id, ':')) == NULL ||
	    (v = (struct view *)views_find(vs, id, (size_t)(colon - id))) ==
		NULL)
		return;
	if (strcmp(colon + 1, "fetch") == 0)
		slot = &v->fetch;
	else if (strcmp(colon + 1, "deliver") == 0)
		slot = &v->deliver;
	else
		return;
	if (*slot == NULL && (*slot = bson_copy(d)) == NULL)
		fatal("out of memory");
}

/* A state document into its view (store_each). */
static int
views_attach_one(const bson_t *d, void *arg)
{
	views_attach(arg, d);
	return 0;
}

/*
 * The selector of the states of vs's sources, {_id: {$in: [<id>:fetch,
 * <id>:deliver, ...]}}; bson_destroy it.
 */
static bson_t *
views_states_sel(const struct views *vs)
{
	char(*keys)[VIEW_STATE_ID_MAX];
	bson_t *sel;
	size_t	i;

	keys = util_xcalloc(2 * vs->n + 1, sizeof(*keys));
	for (i = 0; i < vs->n; i++) {
		snprintf(keys[2 * i], sizeof(keys[0]), "%s:fetch", vs->v[i].id);
		snprintf(keys[2 * i + 1], sizeof(keys[0]), "%s:deliver",
		    vs->v[i].id);
	}
	sel = store_sel_ids(keys, sizeof(keys[0]), 2 * vs->n, false);
	free(keys);
	return sel;
}

/* Sources read by views_load, a page at most. */
struct views_add {
	struct views *vs;
	int64_t	      limit;
	size_t	      cap;
};

static int
views_add_one(const bson_t *d, void *arg)
{
	struct views_add *vl = arg;
	struct views	 *vs = vl->vs;

	if (store_bson_str(d, "_id") == NULL)
		return 0;
	if (vl->limit > 0 && vs->n == (size_t)vl->limit) {
		vs->more = true;
		return 1;
	}
	if (vs->n == vl->cap) {
		vl->cap = vl->cap > 0 ? vl->cap * 2 : 64;
		vs->v = util_xreallocarray(vs->v, vl->cap, sizeof(*vs->v));
	}
	memset(&vs->v[vs->n], 0, sizeof(vs->v[0]));
	if ((vs->v[vs->n].src = bson_copy(d)) == NULL)
		fatal("out of memory");
	vs->v[vs->n].id = store_bson_str(vs->v[vs->n].src, "_id");
	vs->n++;
	return 0;
}

int
views_load(mongoc_client_t *c, const bson_t *q, int64_t limit, struct views *vs,
    char *err, size_t errlen)
{
	mongoc_collection_t *col;
	bson_t		     empty = BSON_INITIALIZER, *opts, *sel = NULL;
	struct views_add     vl = { vs, limit, 0 };
	size_t		     i;
	bool		     ok;

	memset(vs, 0, sizeof(*vs));
	if (limit > 0)
		opts = BCON_NEW("sort", "{", "createdAt", BCON_INT32(1), "_id",
		    BCON_INT32(1), "}", "limit", BCON_INT64(limit + 1),
		    "projection", "{", "credentials", BCON_INT32(0),
		    "webhookSecret", BCON_INT32(0), "requestDigest",
		    BCON_INT32(0), "}");
	else
		opts = BCON_NEW("projection", "{", "credentials", BCON_INT32(0),
		    "webhookSecret", BCON_INT32(0), "requestDigest",
		    BCON_INT32(0), "}");
	col = store_coll(child_store(), c, STORE_SOURCES);
	ok = store_each_in(col, q != NULL ? q : &empty, opts, views_add_one,
		 &vl, err, errlen) >= 0;
	mongoc_collection_destroy(col);
	bson_destroy(opts);
	if (!ok)
		return -EIO;

	vs->byid = util_xcalloc(vs->n + 1, sizeof(*vs->byid));
	for (i = 0; i < vs->n; i++)
		vs->byid[i] = &vs->v[i];
	qsort(vs->byid, vs->n, sizeof(*vs->byid), view_cmp_id);
	if (vs->n > 0 || limit == 0) {
		/*
		 * The fetch and delivery states by partition; then what
		 * older versions kept per source for those that have none:
		 * a page's only, else all of them, one scan.
		 */
		ok = views_states(vs, limit > 0, false, err, errlen) == 0 &&
		    views_states(vs, limit > 0, true, err, errlen) == 0;
		if (ok && limit > 0)
			sel = views_states_sel(vs);
		col = store_coll(child_store(), c, STORE_SOURCE_STATE);
		ok = ok &&
		    store_each_in(col, sel != NULL ? sel : &empty, NULL,
			views_attach_one, vs, err, errlen) == 0;
		mongoc_collection_destroy(col);
		if (sel != NULL)
			bson_destroy(sel);
	}
	for (i = 0; i < vs->n; i++)
		view_derive(&vs->v[i]);
	return ok ? 0 : -EIO;
}

/*
 * The states of v's source: its fetch and delivery states from their
 * partitions' documents (fstate.h), else what an older version kept in
 * source_state, by _id equality (on FerretDB 1.24 a find by _id costs a
 * fraction of a $in).
 */
int
view_of_doc(const bson_t *src, struct view *v, char *err, size_t errlen)
{
	static const char *const kinds[] = { "fetch", "deliver" };
	bson_t			 sel, out, **slot;
	char			 key[VIEW_STATE_ID_MAX];
	size_t			 i;
	int			 rc = 0;

	memset(v, 0, sizeof(*v));
	v->src = view_copy_src(src);
	v->id = store_bson_str(v->src, "_id");
	if (v->id != NULL &&
	    (fstate_find(child_store(), view_parts(), &v->id, 1, &v->fetch, err,
		 errlen) != 0 ||
		dstate_find(child_store(), view_parts(), &v->id, 1, &v->deliver,
		    err, errlen) != 0))
		rc = -1;
	for (i = 0; rc == 0 && v->id != NULL && i < nitems(kinds); i++) {
		if ((i == 0 ? v->fetch : v->deliver) != NULL)
			continue; /* else as older versions kept it */
		snprintf(key, sizeof(key), "%s:%s", v->id, kinds[i]);
		bson_init(&sel);
		BSON_APPEND_UTF8(&sel, "_id", key);
		rc = store_find_one(child_store(), STORE_SOURCE_STATE, &sel,
		    NULL, &out, err, errlen);
		bson_destroy(&sel);
		if (rc < 0)
			break;
		if (rc == 0)
			continue;
		slot = i == 0 ? &v->fetch : &v->deliver;
		if ((*slot = bson_copy(&out)) == NULL)
			fatal("out of memory");
		bson_destroy(&out);
	}
	view_derive(v);
	return rc < 0 ? -EIO : 0;
}

void
view_clear(struct view *v)
{
	if (v->src != NULL)
		bson_destroy(v->src);
	if (v->fetch != NULL)
		bson_destroy(v->fetch);
	if (v->deliver != NULL)
		bson_destroy(v->deliver);
	memset(v, 0, sizeof(*v));
}

void
views_clear(struct views *vs)
{
	size_t i;

	for (i = 0; i < vs->n; i++)
		view_clear(&vs->v[i]);
	free(vs->v);
	free(vs->byid);
	memset(vs, 0, sizeof(*vs));
}

void
view_json_time(struct jsonw *w, const char *key, const bson_t *doc,
    const char *field)
{
	int64_t ms = doc != NULL ? store_bson_int(doc, field, 0) : 0;
	char	buf[32];

	if (ms <= 0) {
		jsonw_key(w, key);
		jsonw_null(w);
		return;
	}
	time_format_rfc3339_ms(ms, buf);
	jsonw_kv_str(w, key, buf);
}

/* Write a string array of doc (key) as a JSON array. */
static void
view_json_strv(struct jsonw *w, const bson_t *doc, const char *key)
{
	bson_iter_t it, sub;

	jsonw_key(w, key);
	jsonw_arr_open(w);
	if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_ARRAY(&it) &&
	    bson_iter_recurse(&it, &sub)) {
		while (bson_iter_next(&sub))
			if (BSON_ITER_HOLDS_UTF8(&sub))
				jsonw_str(w, bson_iter_utf8(&sub, NULL));
	}
	jsonw_arr_close(w);
}

void
view_json(struct jsonw *w, const struct view *v)
{
	const bson_t *src = v->src;
	bson_iter_t   it;

	jsonw_kv_str(w, "id", v->id);
	jsonw_kv_str(w, "sourceType", store_bson_str(src, "sourceType"));
	jsonw_kv_str(w, "clientEmail", store_bson_str(src, "clientEmail"));
	jsonw_kv_str(w, "subject", store_bson_str(src, "subject"));
	view_json_strv(w, src, "scopes");
	view_json_strv(w, src, "applications");
	jsonw_kv_int(w, "logFetchInterval",
	    store_bson_int(src, "logFetchInterval", 0));
	jsonw_kv_int(w, "initialLookback",
	    store_bson_int(src, "initialLookback", 0));
	jsonw_kv_str(w, "callbackUrl", store_bson_str(src, "callbackUrl"));
	jsonw_kv_bool(w, "paused", v->paused);
	jsonw_kv_bool(w, "watermarks", v->watermarks);
	jsonw_kv_str(w, "status", v->status);
	view_json_time(w, "lastFetchAt", v->fetch, "lastFetchAt");
	view_json_time(w, "lastDeliveryAt", v->deliver, "lastDeliveryAt");
	jsonw_kv_str(w, "lastError", v->last_error);
	jsonw_kv_int(w, "credentialsVersion",
	    store_bson_int(src, "credentialsVersion", 1));
	if (bson_iter_init_find(&it, src, "previousWebhookSecret") &&
	    BSON_ITER_HOLDS_DOCUMENT(&it) &&
	    store_bson_int(src, "previousWebhookSecret.until", 0) >
		util_now_ms())
		view_json_time(w, "previousWebhookSecretValidUntil", src,
		    "previousWebhookSecret.until");
	view_json_time(w, "createdAt", src, "createdAt");
	view_json_time(w, "updatedAt", src, "updatedAt");
}
