/*
 * Schema drift: the first time an application emits an event name or a
 * parameter name never seen before for a source, the logs are delivered
 * as usual and one schema_drift alert names it.
 *
 * "Never seen before" is decided by the store, so that a restart or
 * another instance never alerts twice: each name goes once into
 * schema_names with _id "<source>:<app>:e:<name>" (":p:" for a
 * parameter), and only an insert that is new (no duplicate key, E11000)
 * alerts. The collection is only inserted into on the data path (on
 * FerretDB 1.24 a read scans it all), and only for names this process
 * has not met yet for that (source, application): a job keeps the names
 * it knows in memory (at most DRIFT_KNOWN_MAX; a feed that sends more is
 * not checked further, and says so once).
 *
 * A new source would otherwise alert for every name of its first run:
 * until the job has once read a main window up to the live edge (the
 * cursor document's schemaBaselineDone, window.c), its names are recorded
 * silently (baseline: true in their document).
 *
 * The alert of a new name is stored by the same store job, right after
 * the insert that found it new (an alert kept in memory until later
 * would be lost with the process, and the name never alert again): only
 * a crash between those two inserts loses it. When that insert fails the
 * alerts go to fetcherd's alert queue (srcstate.c), which retries.
 *
 * Names come from Google: bounded (DRIFT_NAME_MAX bytes, cut on a UTF-8
 * boundary), escaped in messages and log lines; only names, never a
 * parameter's value. Alerts are capped at DRIFT_ALERTS_PER_HOUR per
 * source and hour (a job is given what is left of the hour when it is
 * submitted: jobs in flight together may pass it by what each was
 * given); the others are counted and summed into one alert when the
 * hour is over.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

#include "fetcherd/fetcherd.h"
#include "fetcherd/handoff.h"
#include "fetcherd/sched.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/google/normalize.h"
#include "lib/ipc/ipc.h"
#include "lib/store/store.h"
#include "runtime/child.h"

#define DRIFT_NAME_MAX	      128  /* bytes of a name kept */
#define DRIFT_KNOWN_MAX	      4096 /* names known per (source, app) */
#define DRIFT_ALERTS_PER_HOUR 20   /* per source */
#define DRIFT_HOUR_MS	      (3600LL * 1000)
#define DRIFT_ESCAPED_MAX     (DRIFT_NAME_MAX * 4 + 1)
#define DRIFT_KEY_MAX	      (DRIFT_NAME_MAX + 3)
#define DRIFT_DOCS_PER_PAGE   1024 /* names checked in one insert */

/* The names a job knows: an open-addressing set of "e:"/"p:" keys. */
struct drift {
	char **keys;
	size_t cap, n; /* cap a power of two */
	bool   full;   /* over DRIFT_KNOWN_MAX, said once */
};

static uint64_t
drift_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static char **
drift_slot(struct drift *d, const char *key)
{
	size_t i = (size_t)drift_hash(key) & (d->cap - 1);

	while (d->keys[i] != NULL && strcmp(d->keys[i], key) != 0)
		i = (i + 1) & (d->cap - 1);
	return &d->keys[i];
}

static bool
drift_known(struct drift *d, const char *key)
{
	return d->cap > 0 && *drift_slot(d, key) != NULL;
}

/* Add key (not known yet); false when the set is full. */
static bool
drift_learn(struct drift *d, const char *key)
{
	if (d->n >= DRIFT_KNOWN_MAX)
		return false;
	if (2 * (d->n + 1) > d->cap) {
		struct drift nd;
		size_t	     i;

		nd.cap = d->cap > 0 ? d->cap * 2 : 64;
		nd.keys = util_xcalloc(nd.cap, sizeof(*nd.keys));
		for (i = 0; i < d->cap; i++)
			if (d->keys[i] != NULL)
				*drift_slot(&nd, d->keys[i]) = d->keys[i];
		free(d->keys);
		d->keys = nd.keys;
		d->cap = nd.cap;
	}
	*drift_slot(d, key) = util_xstrdup(key);
	d->n++;
	return true;
}

/* Forget every name (after a failed insert: they are checked again). */
static void
drift_forget(struct drift *d)
{
	size_t i;

	for (i = 0; i < d->cap; i++)
		free(d->keys[i]);
	free(d->keys);
	d->keys = NULL;
	d->cap = d->n = 0;
	d->full = false;
}

void
drift_free(struct fjob *j)
{
	if (j->drift == NULL)
		return;
	drift_forget(j->drift);
	free(j->drift);
	j->drift = NULL;
}

/* name cut to DRIFT_NAME_MAX bytes, never inside a UTF-8 sequence. */
static void
drift_bound(const char *name, char out[DRIFT_NAME_MAX + 1])
{
	size_t len = strlen(name);

	if (len > DRIFT_NAME_MAX) {
		len = DRIFT_NAME_MAX;
		while (len > 0 && ((unsigned char)name[len] & 0xc0) == 0x80)
			len--;
	}
	memcpy(out, name, len);
	out[len] = '\0';
}

/* Printable ASCII but " and \ as is, every other byte as \xHH. */
static void
drift_escape(const char *in, char out[DRIFT_ESCAPED_MAX])
{
	static const char hex[] = "0123456789abcdef";
	size_t		  o = 0;

	for (; *in != '\0' && o + 5 <= DRIFT_ESCAPED_MAX; in++) {
		unsigned char c = (unsigned char)*in;

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			out[o++] = (char)c;
		else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		}
	}
	out[o] = '\0';
}

/*
 * The cap: an hour of s begins with its first alert; once it is over,
 * drift_tick() sends the sum of the names it did not alert one by one.
 */
void
drift_tick(struct fsrc *s)
{
	char msg[256];

	if (s->drift_hour_mono == 0 ||
	    util_mono_ms() - s->drift_hour_mono < DRIFT_HOUR_MS)
		return;
	if (s->drift_over > 0) {
		snprintf(msg, sizeof(msg),
		    "%lld more event or parameter names never seen before "
		    "for this source in the last hour (over the %d alerts "
		    "an hour sent one by one); they are counted in "
		    "auditrelay_fetch_schema_drift_total",
		    (long long)s->drift_over, DRIFT_ALERTS_PER_HOUR);
		alert_queue(s, "schema_drift", msg);
	}
	s->drift_hour_mono = 0;
	s->drift_sent = 0;
	s->drift_over = 0;
}

/* An alert of s goes out one by one: it counts in the hour. */
static void
drift_sent(struct fsrc *s)
{
	drift_tick(s);
	if (s->drift_hour_mono == 0)
		s->drift_hour_mono = util_mono_ms();
	s->drift_sent++;
}

/* How many alerts s may still send one by one this hour. */
static unsigned
drift_quota(struct fsrc *s)
{
	drift_tick(s);
	return s->drift_sent < DRIFT_ALERTS_PER_HOUR ?
	    DRIFT_ALERTS_PER_HOUR - s->drift_sent :
	    0;
}

/*
 * A new name whose alert its job did not store (over the quota it was
 * given, or the alert insert failed): queue it in fetcherd's alert queue
 * within the cap, else count it for the hour's sum.
 */
static void
drift_alert(struct fsrc *s, const char *msg)
{
	if (drift_quota(s) > 0) {
		drift_sent(s);
		alert_queue(s, "schema_drift", msg);
		return;
	}
	if (s->drift_over++ == 0)
		log_notice("source=%s more than %d new schema names this "
			   "hour: the others are counted and summed into one "
			   "alert when the hour is over",
		    s->id, DRIFT_ALERTS_PER_HOUR);
}

static struct fjob *
drift_job(struct fsrc *s, const char *app)
{
	size_t i;

	for (i = 0; s != NULL && i < s->njobs; i++)
		if (strcmp(s->jobs[i]->app, app) == 0)
			return s->jobs[i];
	return NULL;
}

/* The names are inserted (or not): count and alert the new ones. */
static void
drift_names_done(struct handoff *h)
{
	struct fsrc *s = src_find(h->sid);
	struct fjob *j = drift_job(s, h->app);
	size_t	     i, nbase = 0, nstored = 0;

	if (!child_store_result(h->rc == 0, h->err)) {
		log_warn("source=%s app=%s schema names not recorded (%s); "
			 "they are checked again when next seen",
		    h->sid, h->app, h->err);
		if (j != NULL && j->drift != NULL)
			drift_forget(j->drift);
		handoff_free(h);
		return;
	}
	if (h->alerts_rc != 0)
		log_warn("source=%s schema_drift alerts not stored (%s); "
			 "queued again",
		    h->sid, h->err);
	for (i = 0; i < h->ndocs; i++) {
		const bson_t *d = h->docs[i];
		const char   *kind, *name, *lid, *msg;
		char	      esc[DRIFT_ESCAPED_MAX];

		if (h->dup[i])
			continue;
		if (store_bson_bool(d, "baseline", false)) {
			nbase++;
			continue;
		}
		kind = store_bson_str(d, "kind");
		name = store_bson_str(d, "name");
		lid = store_bson_str(d, "firstLogId");
		if (kind == NULL || name == NULL || lid == NULL)
			continue;
		drift_escape(name, esc);
		log_notice("source=%s app=%s schema drift: %s name \"%s\" "
			   "never seen before (log %s)",
		    h->sid, h->app, kind, esc, lid);
		if (j != NULL && j->loaded) {
			j->stats.schema_drift++;
			j->drift_unsaved = true;
		}
		if (s == NULL)
			continue;
		if (h->alerted[i]) {
			drift_sent(s);
			nstored++;
		} else if (h->alerts != NULL && h->alerts[i] != NULL &&
		    (msg = store_bson_str(h->alerts[i], "message")) != NULL)
			drift_alert(s, msg);
	}
	if (nstored > 0) {
		log_info("source=%s alert=schema_drift %zu stored for delivery",
		    h->sid, nstored);
		if (child_chan() != NULL)
			ipc_send_logs_stored(child_chan(), h->sid, 0);
	}
	if (nbase > 0)
		log_info("source=%s app=%s %zu event and parameter names "
			 "recorded as the baseline",
		    h->sid, h->app, nbase);
	handoff_free(h);
}

/* The schema_drift alert of a new name, as srcstate.c stores alerts. */
static bson_t *
drift_alert_doc(struct fjob *j, char kind, const char *name, const char *log_id,
    int64_t now)
{
	char esc[DRIFT_ESCAPED_MAX], msg[GOOGLE_DIAG_MAX], id[37];

	drift_escape(name, esc);
	snprintf(msg, sizeof(msg),
	    "application %s emitted %s %s name never seen before for this "
	    "source: \"%s\" (first in log %s); its events are delivered as "
	    "usual",
	    j->app, kind == 'e' ? "an" : "a",
	    kind == 'e' ? "event" : "parameter", esc, log_id);
	util_uuid_v4(id);
	return BCON_NEW("_id", BCON_UTF8(id), "sourceId", BCON_UTF8(j->src->id),
	    "alert", BCON_UTF8("schema_drift"), "message", BCON_UTF8(msg), "at",
	    BCON_INT64(now), "state", BCON_UTF8("pending"), "batchId",
	    BCON_NULL);
}

/* The documents a page checks, and the alert of each (or NULL). */
struct drift_docs {
	bson_t **docs, **alerts;
	size_t	 n, cap;
};

/* Append the document of name (kind 'e' or 'p') unless j knows it. */
static void
drift_cand(struct fjob *j, struct drift_docs *dd, char kind, const char *raw,
    const char *log_id, int64_t now)
{
	char name[DRIFT_NAME_MAX + 1], key[DRIFT_KEY_MAX + 1], id[320];

	if (raw == NULL || raw[0] == '\0' || dd->n >= DRIFT_DOCS_PER_PAGE)
		return;
	drift_bound(raw, name);
	snprintf(key, sizeof(key), "%c:%s", kind, name);
	if (drift_known(j->drift, key))
		return;
	if (!drift_learn(j->drift, key)) {
		if (!j->drift->full) {
			j->drift->full = true;
			log_warn("source=%s app=%s more than %d distinct event "
				 "and parameter names: names past those are "
				 "not checked for schema drift until the next "
				 "start",
			    j->src->id, j->app, DRIFT_KNOWN_MAX);
		}
		return;
	}
	if (dd->n == dd->cap) {
		dd->cap = dd->cap > 0 ? dd->cap * 2 : 16;
		dd->docs = util_xreallocarray(dd->docs, dd->cap,
		    sizeof(*dd->docs));
		dd->alerts = util_xreallocarray(dd->alerts, dd->cap,
		    sizeof(*dd->alerts));
	}
	snprintf(id, sizeof(id), "%s:%s:%c:%s", j->src->id, j->app, kind, name);
	dd->alerts[dd->n] = j->drift_baseline ?
	    drift_alert_doc(j, kind, name, log_id, now) :
	    NULL;
	dd->docs[dd->n++] = BCON_NEW("_id", BCON_UTF8(id), "sourceId",
	    BCON_UTF8(j->src->id), "app", BCON_UTF8(j->app), "kind",
	    BCON_UTF8(kind == 'e' ? "event" : "parameter"), "name",
	    BCON_UTF8(name), "firstLogId", BCON_UTF8(log_id), "baseline",
	    BCON_BOOL(!j->drift_baseline), "at", BCON_INT64(now));
}

void
drift_page(struct fjob *j, const struct norm_log *logs, size_t n,
    const bool *dup)
{
	struct drift_docs dd;
	struct handoff	 *h;
	size_t		  i, off;
	int64_t		  now = util_now_ms();

	if (dup == NULL)
		return;
	if (j->drift == NULL)
		j->drift = util_xcalloc(1, sizeof(*j->drift));
	memset(&dd, 0, sizeof(dd));
	for (i = 0; i < n; i++) {
		const struct norm_log *l = &logs[i];

		if (dup[i])
			continue;
		drift_cand(j, &dd, 'e', l->event_name, l->id, now);
		for (off = 0; off < l->param_names_len;
		     off += strlen(l->param_names + off) + 1)
			drift_cand(j, &dd, 'p', l->param_names + off, l->id,
			    now);
	}
	if (dd.n == 0)
		return;
	h = handoff_new(HANDOFF_NAMES, j->src->id, j->app);
	util_strlcpy(h->coll, STORE_SCHEMA_NAMES, sizeof(h->coll));
	h->docs = dd.docs;
	h->alerts = dd.alerts;
	h->ndocs = dd.n;
	h->alert_quota = drift_quota(j->src);
	h->done = drift_names_done;
	if (handoff_submit(h) != 0) {
		handoff_free(h);
		drift_forget(j->drift);
	}
}
