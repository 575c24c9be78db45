/*
 * Backfill endpoints: POST /sources/:id/backfill stores a request (the
 * `backfills` collection: source, application, from, to) and tells
 * fetcherd, whose backfill job of the source reads it beside the live
 * polls (fetcherd/backfill.c); GET lists a source's requests with their
 * progress (the job's cursors document "<source>:<app>:bf:<id>");
 * DELETE cancels them (all, or ?id=). Store work, on a worker thread
 * (http.h, http_work), like every handler of sources.c.
 */
#include <errno.h>
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

const char *const backfill_counters[BACKFILL_NCOUNTERS] = { "windows", "pages",
	"eventsFetched", "eventsStored", "duplicates" };

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

void
backfill_progress(const bson_t *req, const bson_t *prog, struct bf_progress *p)
{
	const bson_t  none = BSON_INITIALIZER;
	const bson_t *pd = prog != NULL ? prog : &none; /* its fields or 0 */
	const char   *ps = store_bson_str(pd, "state");
	size_t	      i;

	memset(p, 0, sizeof(*p));
	p->from = store_bson_int(req, "from", 0);
	p->to = store_bson_int(req, "to", 0);
	p->next = store_bson_int(pd, "next", p->from);
	p->started = store_bson_int(pd, "startedAt", 0);
	p->updated = store_bson_int(pd, "updatedAt", 0);
	p->finished = store_bson_int(pd, "finishedAt", 0);
	for (i = 0; i < BACKFILL_NCOUNTERS; i++)
		p->counters[i] = store_bson_int(pd, backfill_counters[i], 0);
	p->state = "queued";
	if (prog != NULL)
		p->state = ps != NULL && strcmp(ps, "done") == 0 ? "done" :
								   "running";
	if (strcmp(p->state, "done") == 0)
		p->ratio = 1;
	else if (p->to > p->from && p->next > p->from)
		p->ratio = (double)(p->next - p->from) /
		    (double)(p->to - p->from);
	if (p->ratio > 1)
		p->ratio = 1;
	p->eta_s = -1;
	if (strcmp(p->state, "running") == 0 && p->ratio > 0.001 &&
	    p->updated > p->started)
		p->eta_s = (int64_t)((double)(p->updated - p->started) / 1000 *
		    (1 - p->ratio) / p->ratio);
}

/* One request (req) and its progress (prog: NULL, not started). */
static void
bf_render(struct jsonw *w, const bson_t *req, const bson_t *prog)
{
	struct bf_progress p;
	size_t		   i;

	backfill_progress(req, prog, &p);
	jsonw_obj_open(w);
	jsonw_kv_str(w, "id", store_bson_str(req, "_id"));
	jsonw_kv_str(w, "application", store_bson_str(req, "application"));
	bf_time(w, "from", p.from);
	bf_time(w, "to", p.to);
	jsonw_kv_str(w, "state", p.state);
	bf_time(w, "createdAt", store_bson_int(req, "createdAt", 0));
	bf_time(w, "startedAt", p.started);
	bf_time(w, "finishedAt", p.finished);
	bf_time(w, "updatedAt", p.updated);
	/* Every event with id.time before it is read and stored. */
	bf_time(w, "readThrough", prog != NULL ? p.next : 0);
	jsonw_key(w, "progress");
	jsonw_double(w, (double)(int64_t)(p.ratio * 10000) / 10000);
	for (i = 0; i < BACKFILL_NCOUNTERS; i++)
		jsonw_kv_int(w, backfill_counters[i], p.counters[i]);
	jsonw_key(w, "etaSeconds");
	if (p.eta_s >= 0)
		jsonw_int(w, p.eta_s);
	else
		jsonw_null(w);
	jsonw_obj_close(w);
}

int
backfill_load(const char *sid, struct bf_list *l, char *err, size_t errlen)
{
	bson_t q = BSON_INITIALIZER, *opts;
	char **keys;
	size_t i;
	int    rc;

	memset(l, 0, sizeof(*l));
	if (sid != NULL)
		BSON_APPEND_UTF8(&q, "sourceId", sid);
	opts = BCON_NEW("sort", "{", "createdAt", BCON_INT32(1), "}");
	rc = store_find_all(child_store(), STORE_BACKFILLS, &q, opts, &l->reqs,
	    &l->n, err, errlen);
	bson_destroy(opts);
	bson_destroy(&q);
	if (rc != 0)
		return rc;
	keys = util_xcalloc(l->n + 1, sizeof(*keys));
	l->progs = util_xcalloc(l->n + 1, sizeof(*l->progs));
	for (i = 0; i < l->n; i++) {
		const char *src = store_bson_str(l->reqs[i], "sourceId");
		const char *bid = store_bson_str(l->reqs[i], "_id");
		const char *app = store_bson_str(l->reqs[i], "application");
		char	    k[200];

		store_backfill_key(k, sizeof(k), src != NULL ? src : "",
		    app != NULL ? app : "", bid != NULL ? bid : "");
		keys[i] = util_xstrdup(k);
	}
	if (l->n > 0 &&
	    store_find_ids(child_store(), STORE_CURSORS, keys, l->n, l->progs,
		err, errlen) != 0)
		rc = -EIO;
	for (i = 0; i < l->n; i++)
		free(keys[i]);
	free(keys);
	if (rc != 0)
		backfill_list_free(l);
	return rc;
}

void
backfill_list_free(struct bf_list *l)
{
	size_t i;

	for (i = 0; l->progs != NULL && i < l->n; i++)
		if (l->progs[i] != NULL)
			bson_destroy(l->progs[i]);
	free(l->progs);
	store_docs_free(l->reqs, l->n);
	memset(l, 0, sizeof(*l));
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
	bson_t	       doc;
	struct bf_list l;
	struct jsonw  *w = NULL;
	char	       err[256];
	size_t	       i;

	if (sources_load(a, a->id, &doc) != 1)
		return;
	bson_destroy(&doc);
	if (backfill_load(a->id, &l, err, sizeof(err)) != 0) {
		sources_store_failed(a, err);
		return;
	}
	http_store_result(a, true, NULL);
	if ((w = jsonw_new()) == NULL)
		fatal("out of memory");
	jsonw_obj_open(w);
	jsonw_key(w, "backfills");
	jsonw_arr_open(w);
	for (i = 0; i < l.n; i++)
		bf_render(w, l.reqs[i], l.progs[i]);
	jsonw_arr_close(w);
	jsonw_kv_int(w, "count", (int64_t)l.n);
	jsonw_obj_close(w);
	sources_reply_jsonw(a, 200, w, "cannot render the backfills");
	backfill_list_free(&l);
	jsonw_free(w);
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
