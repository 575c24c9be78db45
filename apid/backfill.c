/*
 * Backfill endpoints: POST /sources/:id/backfill stores a request (the
 * `backfills` collection: source, application, from, to) and tells
 * fetcherd, whose backfill job of the source reads it beside the live
 * polls (fetcherd/backfill.c); GET lists a source's requests with their
 * progress (the job's cursors document "<source>:<app>:bf:<id>");
 * DELETE cancels them (all, or ?id=). Store work, on a worker thread
 * (http.h, http_work), like every handler of sources.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "apid/apid.h"
#include "apid/backfill.h"
#include "apid/http.h"
#include "apid/sources.h"
#include "apid/validate.h"
#include "lib/base/json.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/store.h"
#include "runtime/child.h"

/* Requests a source may have at once (fetcherd reads no more). */
#define BACKFILL_MAX 16

static void
bf_time(struct jsonw *w, const char *key, int64_t ms)
{
	char t[32];

	jsonw_key(w, key);
	if (ms <= 0) {
		jsonw_null(w);
		return;
	}
	time_format_rfc3339_ms(ms, t);
	jsonw_str(w, t);
}

/* One request (req) and its progress (prog: NULL, not started). */
static void
bf_render(struct jsonw *w, const bson_t *req, const bson_t *prog)
{
	static const char *const counters[] = { "windows", "pages",
		"eventsFetched", "eventsStored", "duplicates" };
	const bson_t		 none = BSON_INITIALIZER;
	const bson_t *pd = prog != NULL ? prog : &none; /* its fields or 0 */
	int64_t	      from = store_bson_int(req, "from", 0);
	int64_t	      to = store_bson_int(req, "to", 0);
	int64_t	      next = store_bson_int(pd, "next", from);
	int64_t	      started = store_bson_int(pd, "startedAt", 0);
	int64_t	      updated = store_bson_int(pd, "updatedAt", 0);
	const char   *ps = store_bson_str(pd, "state");
	const char   *st = "queued";
	double	      p = 0;
	size_t	      i;

	if (prog != NULL)
		st = ps != NULL && strcmp(ps, "done") == 0 ? "done" : "running";
	if (strcmp(st, "done") == 0)
		p = 1;
	else if (to > from && next > from)
		p = (double)(next - from) / (double)(to - from);
	if (p > 1)
		p = 1;
	jsonw_obj_open(w);
	jsonw_kv_str(w, "id", store_bson_str(req, "_id"));
	jsonw_kv_str(w, "application", store_bson_str(req, "application"));
	bf_time(w, "from", from);
	bf_time(w, "to", to);
	jsonw_kv_str(w, "state", st);
	bf_time(w, "createdAt", store_bson_int(req, "createdAt", 0));
	bf_time(w, "startedAt", started);
	bf_time(w, "finishedAt", store_bson_int(pd, "finishedAt", 0));
	bf_time(w, "updatedAt", updated);
	/* Every event with id.time before it is read and stored. */
	bf_time(w, "readThrough", prog != NULL ? next : 0);
	jsonw_key(w, "progress");
	jsonw_double(w, (double)(int64_t)(p * 10000) / 10000);
	for (i = 0; i < nitems(counters); i++)
		jsonw_kv_int(w, counters[i],
		    store_bson_int(pd, counters[i], 0));
	jsonw_key(w, "etaSeconds");
	if (strcmp(st, "running") == 0 && p > 0.001 && updated > started)
		jsonw_int(w,
		    (int64_t)((double)(updated - started) / 1000 * (1 - p) /
			p));
	else
		jsonw_null(w);
	jsonw_obj_close(w);
}

/* The application names of a source document (pointers into it). */
static size_t
bf_apps(const bson_t *doc, char **apps, size_t max)
{
	bson_iter_t it, a;
	size_t	    n = 0;

	if (!bson_iter_init_find(&it, doc, "applications") ||
	    !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &a))
		return 0;
	while (bson_iter_next(&a) && n < max)
		if (BSON_ITER_HOLDS_UTF8(&a))
			apps[n++] = (char *)bson_iter_utf8(&a, NULL);
	return n;
}

void
backfill_post(struct areq *a)
{
	char	       *apps[VALIDATE_APPS_MAX];
	struct bf_input in;
	struct verr	e;
	struct jsonw   *w = NULL;
	bson_t		doc, sel = BSON_INITIALIZER, *req = NULL;
	char		id[37], err[256];
	int64_t		now = util_now_ms(), n;
	size_t		napps;

	memset(&e, 0, sizeof(e));
	if (sources_load(a, a->id, &doc) != 1)
		goto out;
	napps = bf_apps(&doc, apps, VALIDATE_APPS_MAX);
	if (validate_backfill(a->body, now, apps, napps, &in, &e) != 0) {
		bson_destroy(&doc);
		http_verr(a, &e);
		goto out;
	}
	bson_destroy(&doc);
	BSON_APPEND_UTF8(&sel, "sourceId", a->id);
	if ((n = store_count(child_store(), STORE_BACKFILLS, &sel, err,
		 sizeof(err))) < 0) {
		sources_store_failed(a, err);
		goto out;
	}
	if (n >= BACKFILL_MAX) {
		http_error(a, 409, "too_many_backfills", NULL,
		    "this source has %d backfills already; DELETE "
		    "/sources/%s/backfill?id=... the finished ones first",
		    BACKFILL_MAX, a->id);
		goto out;
	}
	util_uuid_v4(id);
	req = BCON_NEW("_id", BCON_UTF8(id), "sourceId", BCON_UTF8(a->id),
	    "application", BCON_UTF8(in.app), "from", BCON_INT64(in.from), "to",
	    BCON_INT64(in.to), "createdAt", BCON_INT64(now));
	if (store_insert_one(child_store(), STORE_BACKFILLS, req, err,
		sizeof(err)) != 0) {
		sources_store_failed(a, err);
		goto out;
	}
	http_store_result(a, true, NULL);
	http_changed(a, a->id, false);
	http_note(a, "source=%s backfill=%s of %s requested: %lld s of events",
	    a->id, id, in.app, (long long)(in.to - in.from) / 1000);
	if ((w = jsonw_new()) == NULL)
		fatal("out of memory");
	bf_render(w, req, NULL);
	sources_reply_jsonw(a, 202, w, "cannot render the backfill");
out:
	jsonw_free(w);
	if (req != NULL)
		bson_destroy(req);
	bson_destroy(&sel);
}

/* ?id=UUID of a DELETE into id[] (empty: none); false after a 400. */
static bool
bf_query_id(struct areq *a, char id[37])
{
	struct evkeyvalq q;
	struct evkeyval *kv;
	bool		 ok = true;

	id[0] = '\0';
	if (!http_query_parse(a, &q))
		return false;
	TAILQ_FOREACH (kv, &q, next) {
		if (strcmp(kv->key, "id") != 0) {
			http_error(a, 400, "unknown_parameter", "query",
			    "unknown query parameter (only id)");
			ok = false;
			break;
		}
		if (!validate_uuid_lower(kv->value)) {
			http_error(a, 400, "invalid_parameter", "id",
			    "id must be a backfill id");
			ok = false;
			break;
		}
		util_strlcpy(id, kv->value, 37);
	}
	evhttp_clear_headers(&q);
	return ok;
}

void
backfill_get(struct areq *a)
{
	bson_t	      doc, q = BSON_INITIALIZER, *opts;
	bson_t	    **reqs = NULL, **progs = NULL;
	char	    **keys = NULL;
	struct jsonw *w = NULL;
	char	      err[256];
	size_t	      n = 0, i;
	int	      rc;

	if (sources_load(a, a->id, &doc) != 1)
		goto out;
	bson_destroy(&doc);
	BSON_APPEND_UTF8(&q, "sourceId", a->id);
	opts = BCON_NEW("sort", "{", "createdAt", BCON_INT32(1), "}");
	rc = store_find_all(child_store(), STORE_BACKFILLS, &q, opts, &reqs, &n,
	    err, sizeof(err));
	bson_destroy(opts);
	if (rc != 0) {
		sources_store_failed(a, err);
		goto out;
	}
	keys = util_xcalloc(n + 1, sizeof(*keys));
	progs = util_xcalloc(n + 1, sizeof(*progs));
	for (i = 0; i < n; i++) {
		const char *bid = store_bson_str(reqs[i], "_id");
		const char *app = store_bson_str(reqs[i], "application");
		char	    k[200];

		store_backfill_key(k, sizeof(k), a->id, app != NULL ? app : "",
		    bid != NULL ? bid : "");
		keys[i] = util_xstrdup(k);
	}
	if (n > 0 &&
	    store_find_ids(child_store(), STORE_CURSORS, keys, n, progs, err,
		sizeof(err)) != 0) {
		sources_store_failed(a, err);
		goto out;
	}
	http_store_result(a, true, NULL);
	if ((w = jsonw_new()) == NULL)
		fatal("out of memory");
	jsonw_obj_open(w);
	jsonw_key(w, "backfills");
	jsonw_arr_open(w);
	for (i = 0; i < n; i++)
		bf_render(w, reqs[i], progs[i]);
	jsonw_arr_close(w);
	jsonw_kv_int(w, "count", (int64_t)n);
	jsonw_obj_close(w);
	sources_reply_jsonw(a, 200, w, "cannot render the backfills");
out:
	for (i = 0; keys != NULL && i < n; i++) {
		free(keys[i]);
		if (progs[i] != NULL)
			bson_destroy(progs[i]);
	}
	free(keys);
	free(progs);
	store_docs_free(reqs, n);
	jsonw_free(w);
	bson_destroy(&q);
}

void
backfill_delete(struct areq *a)
{
	bson_t	doc, sel = BSON_INITIALIZER;
	char	id[37], err[256], out[64];
	int64_t deleted = 0;

	if (sources_load(a, a->id, &doc) != 1)
		goto out;
	bson_destroy(&doc);
	if (!bf_query_id(a, id))
		goto out;
	BSON_APPEND_UTF8(&sel, "sourceId", a->id);
	if (id[0] != '\0')
		BSON_APPEND_UTF8(&sel, "_id", id);
	if (store_delete(child_store(), STORE_BACKFILLS, &sel, true, &deleted,
		err, sizeof(err)) != 0) {
		sources_store_failed(a, err);
		goto out;
	}
	http_store_result(a, true, NULL);
	if (id[0] != '\0' && deleted == 0) {
		http_error(a, 404, "not_found", "id",
		    "this source has no such backfill");
		goto out;
	}
	if (deleted > 0) {
		http_changed(a, a->id, false);
		http_note(a, "source=%s %lld backfill(s) cancelled", a->id,
		    (long long)deleted);
	}
	snprintf(out, sizeof(out), "{\"cancelled\":%lld}", (long long)deleted);
	http_reply(a, 200, out, strlen(out));
out:
	bson_destroy(&sel);
}
