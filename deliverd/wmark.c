/*
 * Watermark messages: for a source with "watermarks": true, a signed
 * {"type":"watermark","sourceId","application","through"} POSTed to its
 * callback when the application's watermark (lib/store/watermark.h) has
 * moved by more than the source's interval since the last one sent, so a
 * receiver can run detections over closed windows (docs/WATERMARK.md).
 *
 * Every rescan (5 s) one worker job looks at all the due sources held
 * here: one find of their fetch states, one find of the undelivered
 * batches (the holds), then one batch inserted per message, kind
 * "watermark", its body in the document like an alert's, delivered by
 * the same queue (signing, retries, dead letters). The batch id derives
 * from (source, application, through): an instance that restarts, or
 * another that takes the partition over, and computes the same
 * watermark inserts nothing new (a duplicate key), and one that resends
 * uses the same webhook-id. What was sent is kept in memory only: after
 * a restart the first look sends the current watermark once.
 *
 * A message only ever follows what it covers: the holds are read from
 * the store, where a batch stays undelivered until its 2xx is recorded,
 * so every log batch with an event at or before "through" has been
 * answered 2xx before the message is even stored.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliverd/deliverd.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/batch/batch.h"
#include "lib/crypto/crypto.h"
#include "lib/ipc/config.h"
#include "lib/store/fstate.h"
#include "lib/store/store.h"
#include "lib/store/watermark.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

#define WMARK_MIN_EVERY_MS 5000 /* a source is looked at no more often */
#define WMARK_APPS_MAX	   64	/* applications of a source */

void
wmark_apply(struct dsource *s, const bson_t *doc)
{
	struct dwm *nw;
	bson_iter_t it, a;
	size_t	    n = 0, i;

	s->watermarks = store_bson_bool(doc, "watermarks", false);
	s->interval_ms = store_bson_int(doc, "logFetchInterval", 60) * 1000;
	nw = util_xcalloc(WMARK_APPS_MAX, sizeof(*nw));
	if (bson_iter_init_find(&it, doc, "applications") &&
	    BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &a))
		while (bson_iter_next(&a) && n < WMARK_APPS_MAX) {
			if (!BSON_ITER_HOLDS_UTF8(&a))
				continue;
			util_strlcpy(nw[n].app, bson_iter_utf8(&a, NULL),
			    sizeof(nw[n].app));
			/* What was sent for an application kept. */
			for (i = 0; i < s->nwm; i++)
				if (strcmp(s->wm[i].app, nw[n].app) == 0)
					nw[n].sent = s->wm[i].sent;
			n++;
		}
	free(s->wm);
	s->wm = nw;
	s->nwm = n;
}

void
wmark_free(struct dsource *s)
{
	free(s->wm);
	s->wm = NULL;
	s->nwm = 0;
}

/* One message to send, decided on the worker. */
struct wmsg {
	char	app[64];
	int64_t through;
	char	id[37];
	char	wid[48];
	char   *body;
	size_t	len;
};

/* A due source, copied for the worker. */
struct wsrc {
	char	    sid[64];
	int64_t	    epoch, interval_ms;
	struct dwm *apps; /* copy */
	size_t	    napps;
	struct wmsg msgs[WMARK_APPS_MAX];
	size_t	    nmsgs;
};

struct wjob {
	struct wsrc *v;
	size_t	     n;
	int64_t	     now;
	int	     rc;
	char	     err[512];
};

static bool wmark_running;

/*
 * The batch id of a watermark message: a UUID (version 8, RFC 9562) from
 * SHA-256 of source, application and through, the same everywhere.
 */
static void
wmark_batch_id(const char *sid, const char *app, int64_t through, char out[37])
{
	char	name[256];
	uint8_t h[32];
	int	n;

	n = snprintf(name, sizeof(name), "watermark\n%s\n%s\n%lld", sid, app,
	    (long long)through);
	crypto_sha256(name, n > 0 ? (size_t)n : 0, h);
	util_uuid_format(h, 8, out);
}

/* Worker: store message m of source w as a pending batch. 0 or -EIO. */
static int
wmark_store(struct wjob *j, const struct wsrc *w, const struct wmsg *m)
{
	bson_t doc, ids;
	int    rc;

	bson_init(&doc);
	BSON_APPEND_UTF8(&doc, "_id", m->id);
	BSON_APPEND_UTF8(&doc, "sourceId", w->sid);
	BSON_APPEND_UTF8(&doc, "kind", "watermark");
	BSON_APPEND_UTF8(&doc, "app", m->app);
	BSON_APPEND_INT64(&doc, "through", m->through);
	BSON_APPEND_ARRAY_BEGIN(&doc, "logIds", &ids);
	bson_append_array_end(&doc, &ids);
	queue_bson_inline(&doc, m->body, m->len, m->wid, j->now, w->epoch);
	rc = store_insert_one(child_store(), STORE_BATCHES, &doc, j->err,
	    sizeof(j->err));
	bson_destroy(&doc);
	if (rc == -EEXIST)
		return 1; /* stored before (a restart, another holder) */
	return rc == 0 ? 0 : -EIO;
}

/* Worker: the fetch states first, then the holds (watermark.h). */
static void
wmark_work(void *arg)
{
	struct wjob    *j = arg;
	struct wm_holds h = { NULL, 0 };
	bson_t	      **docs;
	const char    **ids;
	size_t		i, k;

	ids = util_xcalloc(j->n + 1, sizeof(*ids));
	docs = util_xcalloc(j->n + 1, sizeof(*docs));
	for (i = 0; i < j->n; i++)
		ids[i] = j->v[i].sid;
	j->rc = fstate_find(child_store(),
	    (int)config_int(child_config(), CONF_PARTITION_COUNT), ids, j->n,
	    docs, j->err, sizeof(j->err));
	if (j->rc == 0)
		j->rc = wm_holds_load(child_store(), NULL,
		    j->n == 1 ? j->v[0].sid : NULL, &h, j->err, sizeof(j->err));
	for (i = 0; j->rc == 0 && i < j->n; i++) {
		struct wsrc *w = &j->v[i];

		for (k = 0; k < w->napps; k++) {
			struct wmsg *m = &w->msgs[w->nmsgs];
			struct wm    t = wm_compute(docs[i], w->sid,
			       w->apps[k].app, &h);
			int	     rc;

			if (t.through_ms <= w->apps[k].sent ||
			    (w->apps[k].sent > 0 &&
				t.through_ms - w->apps[k].sent <=
				    w->interval_ms))
				continue;
			util_strlcpy(m->app, w->apps[k].app, sizeof(m->app));
			m->through = t.through_ms;
			wmark_batch_id(w->sid, m->app, m->through, m->id);
			batch_webhook_id(m->id, m->wid);
			m->body = batch_watermark_body(w->sid, m->app,
			    m->through, &m->len);
			if (m->body == NULL)
				continue;
			if ((rc = wmark_store(j, w, m)) < 0) {
				free(m->body);
				j->rc = rc;
				break;
			}
			if (rc > 0) {
				/* Stored already: it is in the queue or sent. */
				free(m->body);
				m->body = NULL;
			}
			w->nmsgs++;
		}
	}
	wm_holds_free(&h);
	for (i = 0; i < j->n; i++) {
		if (docs[i] != NULL)
			bson_destroy(docs[i]);
	}
	free(ids);
	free(docs);
}

/* Loop: queue what was stored, for the sources still held. */
static void
wmark_done(void *arg)
{
	struct wjob    *j = arg;
	struct dsource *s;
	size_t		i, k, a;
	bool		ok;

	wmark_running = false;
	ok = child_store_result(j->rc >= 0, j->err);
	for (i = 0; i < j->n; i++) {
		struct wsrc *w = &j->v[i];

		s = deliverd_source_find(w->sid);
		for (k = 0; k < w->nmsgs; k++) {
			struct wmsg *m = &w->msgs[k];

			if (s == NULL || !s->lease.held ||
			    s->lease.epoch != w->epoch) {
				free(m->body);
				continue;
			}
			for (a = 0; a < s->nwm; a++)
				if (strcmp(s->wm[a].app, m->app) == 0 &&
				    s->wm[a].sent < m->through)
					s->wm[a].sent = m->through;
			log_debug("source=%s app=%s watermark through %lld "
				  "batch=%s%s",
			    s->id, m->app, (long long)m->through, m->id,
			    m->body == NULL ? " (stored before)" : "");
			if (m->body != NULL)
				queue_add_inline(s, m->id, m->wid, j->now,
				    m->body, m->len);
		}
		if (s != NULL && ok) {
			s->wm_next = j->now +
			    (s->interval_ms > WMARK_MIN_EVERY_MS ?
				    s->interval_ms :
				    WMARK_MIN_EVERY_MS);
			if (w->nmsgs > 0)
				deliverd_step(s);
		}
		free(w->apps);
	}
	free(j->v);
	free(j);
}

/* A source whose watermark messages are due now. */
static bool
wmark_due(const struct dsource *s, int64_t now)
{
	return s->watermarks && s->nwm > 0 && s->lease.held && s->ready &&
	    !s->zombie && !s->handover && now >= s->wm_next;
}

void
wmark_tick(void)
{
	struct dsource *s;
	struct wjob    *j;
	int64_t		now = util_now_ms();
	size_t		n = 0;

	if (wmark_running || child_stopping() || !store_healthy(child_store()))
		return;
	TAILQ_FOREACH (s, deliverd_sources(), entry)
		if (wmark_due(s, now))
			n++;
	if (n == 0)
		return;
	j = util_xcalloc(1, sizeof(*j));
	j->v = util_xcalloc(n, sizeof(*j->v));
	j->now = now;
	TAILQ_FOREACH (s, deliverd_sources(), entry) {
		struct wsrc *w;

		if (!wmark_due(s, now))
			continue;
		w = &j->v[j->n++];
		util_strlcpy(w->sid, s->id, sizeof(w->sid));
		w->epoch = s->lease.epoch;
		w->interval_ms = s->interval_ms;
		w->apps = util_xcalloc(s->nwm, sizeof(*w->apps));
		memcpy(w->apps, s->wm, s->nwm * sizeof(*w->apps));
		w->napps = s->nwm;
	}
	if (worker_submit(wmark_work, wmark_done, j) != 0) {
		j->rc = -EAGAIN;
		for (size_t i = 0; i < j->n; i++)
			free(j->v[i].apps);
		free(j->v);
		free(j);
		return;
	}
	wmark_running = true;
}
