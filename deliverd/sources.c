/*
 * deliverd's table of sources: one struct dsource per source of the
 * store, with its callback URL, webhook secrets (opened with the master
 * key), timer and in-memory queue; created, changed and removed by the
 * rescan, which re-reads the sources collection on the worker thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "deliverd/deliverd.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

static struct dsource_q sources = TAILQ_HEAD_INITIALIZER(sources);
static uint8_t		master_key[CRYPTO_KEY_LEN];
static char		master_keyid[CRYPTO_KEYID_LEN + 1];
static bool		rescan_busy, rescan_again, rescanned;
static bool		rescan_forced;		 /* a hint: at once */
static int64_t		rescan_took, rescan_end; /* ms: the last read */
static struct event    *rescan_ev, *rescan_first_ev;

static void deliverd_rescan_first_cb(evutil_socket_t, short, void *);

/*
 * Load the master key that opens the webhook secrets, and hand the table
 * to queue.c. 0 or -errno with err[].
 */
int
deliverd_sources_init(const char *key_file, char *err, size_t errlen)
{
	int rc;

	if ((rc = crypto_master_key_load(key_file, master_key, master_keyid,
		 err, errlen)) != 0)
		return rc;
	queue_init(&sources, deliverd_source_job_end, NULL);
	return 0;
}

/* The table of sources (owner.c, step.c, state.c walk it). */
struct dsource_q *
deliverd_sources(void)
{
	return &sources;
}

/* New settings: the breakers' threshold. */
void
deliverd_sources_configure(void)
{
	struct dsource *s;

	TAILQ_FOREACH (s, &sources, entry)
		s->br.threshold = deliverd_conf()->breaker_threshold;
}

/* Drop every source (leaving). */
void
deliverd_sources_free(void)
{
	struct dsource *s;

	while ((s = TAILQ_FIRST(&sources)) != NULL)
		deliverd_source_free(s);
}

/* Free a decrypted secret. */
static void
deliverd_secret_free(char **p)
{
	if (*p != NULL)
		crypto_free_secret(*p, strlen(*p) + 1);
	*p = NULL;
}

/*
 * Open the sealed secret in field of a source document ({keyId, nonce,
 * ct[, until]}), sealed for webhookSecret at version (creds_open(); a
 * blob of the first format opens too). malloc'd "whsec_..."; NULL with
 * err[] when absent or unreadable (the text never contains the secret).
 */
static char *
deliverd_secret_open(const char *source_id, const bson_t *doc,
    const char *field, int64_t version, int64_t *until, char *err,
    size_t errlen)
{
	bson_iter_t    it, sub;
	const uint8_t *nonce = NULL, *ct = NULL;
	uint32_t       nlen = 0, ctlen = 0;
	bson_subtype_t st;
	const char    *keyid = NULL;
	unsigned char *pt = NULL;
	size_t	       ptlen = 0;
	char	      *out;

	if (until != NULL)
		*until = 0;
	if (!bson_iter_init_find(&it, doc, field) ||
	    !BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &sub)) {
		snprintf(err, errlen, "%s absent", field);
		return NULL;
	}
	while (bson_iter_next(&sub)) {
		const char *k = bson_iter_key(&sub);

		if (strcmp(k, "keyId") == 0 && BSON_ITER_HOLDS_UTF8(&sub))
			keyid = bson_iter_utf8(&sub, NULL);
		else if (strcmp(k, "nonce") == 0 &&
		    BSON_ITER_HOLDS_BINARY(&sub))
			bson_iter_binary(&sub, &st, &nlen, &nonce);
		else if (strcmp(k, "ct") == 0 && BSON_ITER_HOLDS_BINARY(&sub))
			bson_iter_binary(&sub, &st, &ctlen, &ct);
		else if (strcmp(k, "until") == 0 && until != NULL &&
		    BSON_ITER_HOLDS_NUMBER(&sub))
			*until = bson_iter_as_int64(&sub);
	}
	if (nonce == NULL || nlen != CRYPTO_NONCE_LEN || ct == NULL) {
		snprintf(err, errlen, "%s is malformed", field);
		return NULL;
	}
	if (keyid != NULL && strcmp(keyid, master_keyid) != 0) {
		snprintf(err, errlen,
		    "%s was sealed with master key %s, "
		    "this instance has %s",
		    field, keyid, master_keyid);
		return NULL;
	}
	if (creds_open(master_key, source_id, "webhookSecret", version, nonce,
		ct, ctlen, &pt, &ptlen, NULL) != 0) {
		snprintf(err, errlen, "%s does not open with the master key",
		    field);
		return NULL;
	}
	out = malloc(ptlen + 1);
	if (out != NULL) {
		memcpy(out, pt, ptlen);
		out[ptlen] = '\0';
	}
	crypto_free_secret(pt, ptlen + 1);
	return out;
}

/* The host part of a URL into out; 0 or -EINVAL. */
static int
deliverd_url_host(const char *url, char *out, size_t outlen)
{
	CURLU *u;
	char  *host = NULL;
	int    rc = -EINVAL;

	if ((u = curl_url()) == NULL)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		util_strlcpy(out, host, outlen);
		rc = 0;
	}
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

struct dsource *
deliverd_source_find(const char *id)
{
	return dsource_find(&sources, id);
}

/*
 * The ids of the sources delivered here (leased, not being removed),
 * sorted, into *out (the caller frees each and the array); their count.
 */
size_t
deliverd_sources_owned(char ***out)
{
	struct dsource *s;
	size_t		n = 0;

	*out = NULL;
	TAILQ_FOREACH (s, &sources, entry)
		if (s->lease.held && !s->zombie)
			n++;
	if (n == 0)
		return 0;
	*out = util_xcalloc(n, sizeof(**out));
	n = 0;
	TAILQ_FOREACH (s, &sources, entry)
		if (s->lease.held && !s->zombie)
			(*out)[n++] = util_xstrdup(s->id);
	qsort(*out, n, sizeof(**out), util_strp_cmp);
	return n;
}

/* Arm s's timer for wall-clock time at (ms); 0 disarms. */
void
deliverd_source_wake(struct dsource *s, int64_t at)
{
	struct timeval tv;
	int64_t	       d;

	if (at <= 0) {
		evtimer_del(s->timer);
		return;
	}
	d = at - util_now_ms();
	if (d < 0)
		d = 0;
	tv.tv_sec = d / 1000;
	tv.tv_usec = (d % 1000) * 1000;
	evtimer_add(s->timer, &tv);
}

/* Step s from its timer, soon (after a worker result, say). */
void
deliverd_source_kick(struct dsource *s)
{
	deliverd_source_wake(s, util_now_ms());
}

/*
 * Stop all work of s: cancel its POSTs (their outcome is unknown, the
 * batches stay pending in the store and will be sent again with the same
 * ids) and forget its queue.
 */
void
deliverd_source_idle(struct dsource *s)
{
	struct dbatch *b;

	while ((b = TAILQ_FIRST(&s->queue)) != NULL) {
		if (b->inflight)
			deliverd_step_cancel(s, b);
		queue_remove(s, b);
	}
	evtimer_del(s->timer);
	s->wait_slot = false;
	s->ready = false;
	atomic_store(&s->lease_deadline, 0);
}

/*
 * Drop s entirely (removed source, shutdown). Its partition's lease stays
 * with the partition set (released there when the partition is empty).
 */
void
deliverd_source_free(struct dsource *s)
{
	deliverd_source_idle(s);
	s->lease.held = false;
	atomic_store(&s->lease_deadline, 0);
	TAILQ_REMOVE(&sources, s, entry);
	if (s->busy) {
		s->zombie = true; /* its worker job still points here */
		return;
	}
	deliverd_source_destroy(s);
}

/* s was removed from `sources` (a hint, or a rescan): it stops. */
void
deliverd_source_removed(struct dsource *s)
{
	log_info("source=%s removed; its deliveries stop", s->id);
	deliverd_state_gone(s);
	deliverd_source_free(s);
}

/* Free s (unlinked, no job running). */
void
deliverd_source_destroy(struct dsource *s)
{
	event_free(s->timer);
	free(s->url);
	free(s->gone_url);
	free(s->sealed);
	deliverd_secret_free(&s->secret);
	deliverd_secret_free(&s->prev_secret);
	wmark_free(s);
	free(s);
}

/*
 * A worker job of s ended (queue.c, owner.c) or brought news: free s if
 * it was removed meanwhile, else carry on.
 */
void
deliverd_source_job_end(void *arg, struct dsource *s)
{
	if (s->zombie)
		deliverd_source_destroy(s);
	else
		deliverd_source_job_done(s);
}

/* A worker job of s finished: carry on. */
void
deliverd_source_job_done(struct dsource *s)
{
	if (s->lease.held && !s->ready && !s->busy)
		(void)queue_takeover_start(s);
	deliverd_step(s);
}

/* The raw value of document field of doc (len 0, NULL: absent). */
static const uint8_t *
deliverd_sealed_raw(const bson_t *doc, const char *field, uint32_t *len)
{
	bson_iter_t    it;
	const uint8_t *data = NULL;

	*len = 0;
	if (bson_iter_init_find(&it, doc, field) &&
	    BSON_ITER_HOLDS_DOCUMENT(&it))
		bson_iter_document(&it, len, &data);
	return data;
}

/*
 * True when doc's sealed secrets are those s opened last (nothing to
 * open again); else s remembers them and the caller opens them.
 */
static bool
deliverd_sealed_same(struct dsource *s, const bson_t *doc, int64_t ver)
{
	const uint8_t *cur, *prev;
	uint32_t       lc, lp;
	size_t	       n;
	uint8_t	      *b, *w;

	cur = deliverd_sealed_raw(doc, "webhookSecret", &lc);
	prev = deliverd_sealed_raw(doc, "previousWebhookSecret", &lp);
	n = sizeof(ver) + sizeof(lc) + sizeof(lp) + lc + lp;
	b = w = util_xcalloc(1, n);
	w = mempcpy(w, &ver, sizeof(ver));
	w = mempcpy(w, &lc, sizeof(lc));
	w = mempcpy(w, &lp, sizeof(lp));
	if (lc > 0)
		w = mempcpy(w, cur, lc);
	if (lp > 0)
		mempcpy(w, prev, lp);
	if (s->sealed != NULL && s->sealed_len == n &&
	    memcmp(s->sealed, b, n) == 0) {
		free(b);
		return true;
	}
	free(s->sealed);
	s->sealed = b;
	s->sealed_len = n;
	return false;
}

/* Apply a sources document to s (new or known). */
static void
deliverd_source_apply(struct dsource *s, const bson_t *doc)
{
	const char *url = store_bson_str(doc, "callbackUrl");
	char	    err[256], *sec, *prev;
	int64_t	    until = 0, ver;

	s->paused = store_bson_bool(doc, "paused", false);
	wmark_apply(s, doc);
	if (url != NULL && (s->url == NULL || strcmp(url, s->url) != 0)) {
		free(s->url);
		s->url = util_xstrdup(url);
		if (deliverd_url_host(url, s->hostname, sizeof(s->hostname)) !=
		    0)
			util_strlcpy(s->hostname, "?", sizeof(s->hostname));
		if (s->gone && s->gone_url != NULL &&
		    strcmp(s->gone_url, url) != 0) {
			log_notice("source=%s callbackUrl changed; resuming "
				   "deliveries paused by 410 Gone",
			    s->id);
			s->gone = false;
			free(s->gone_url);
			s->gone_url = NULL;
			s->status = "ok";
			s->last_error[0] = '\0';
			s->written_status = NULL;
			if (s->lease.held)
				deliverd_source_state_write(s);
		}
	}
	/* The previous secret was sealed at the version before this one. */
	ver = store_bson_int(doc, "webhookSecretVersion", 1);
	if (deliverd_sealed_same(s, doc, ver))
		return;
	sec = deliverd_secret_open(s->id, doc, "webhookSecret", ver, NULL, err,
	    sizeof(err));
	if (sec == NULL) {
		if (s->secret != NULL || s->last_error[0] == '\0')
			log_err("source=%s cannot read its webhook secret: %s; "
				"deliveries held",
			    s->id, err);
		deliverd_secret_free(&s->secret);
		util_strlcpy(s->last_error, err, sizeof(s->last_error));
	} else {
		deliverd_secret_free(&s->secret);
		s->secret = sec;
	}
	deliverd_secret_free(&s->prev_secret);
	prev = deliverd_secret_open(s->id, doc, "previousWebhookSecret",
	    ver - 1, &until, err, sizeof(err));
	if (prev != NULL) {
		s->prev_secret = prev;
		s->prev_until = until;
	}
}

static struct dsource *
deliverd_source_new(const char *id)
{
	struct dsource *s;

	s = util_xcalloc(1, sizeof(*s));
	util_strlcpy(s->id, id, sizeof(s->id));
	TAILQ_INIT(&s->queue);
	s->timer = evtimer_new(child_base(), deliverd_source_timer_cb, s);
	if (s->timer == NULL)
		fatal("out of memory");
	s->status = "ok";
	s->part = deliverd_partition_of(id);
	breaker_init(&s->br, deliverd_conf()->breaker_threshold);
	TAILQ_INSERT_TAIL(&sources, s, entry);
	return s;
}

/* The sources documents (without credentials), read on the worker. */
struct drescan {
	int64_t	 took_ms;
	bson_t **docs;
	size_t	 n;
	int	 rc;
	char	 err[512];
};

static void
deliverd_rescan_work(void *arg)
{
	struct drescan *r = arg;
	bson_t	       *filter, *opts;
	int64_t		t0 = util_mono_ms();

	filter = bson_new();
	opts = BCON_NEW("projection", "{", "credentials", BCON_INT32(0), "}");
	r->rc = store_find_all(child_store(), STORE_SOURCES, filter, opts,
	    &r->docs, &r->n, r->err, sizeof(r->err));
	bson_destroy(filter);
	bson_destroy(opts);
	r->took_ms = util_mono_ms() - t0;
}

/* Loop: reconcile with the sources read, then step those we hold. */
static void
deliverd_rescan_done(void *arg)
{
	struct drescan *r = arg;
	struct dsource *s, *ns;
	size_t		i;

	rescan_busy = false;
	rescan_took = r->took_ms;
	rescan_end = util_mono_ms();
	if (child_stopping() || !child_store_result(r->rc >= 0, r->err))
		goto out;
	rescanned = true;
	TAILQ_FOREACH (s, &sources, entry)
		s->seen = false;
	for (i = 0; i < r->n; i++) {
		const char *id = store_bson_str(r->docs[i], "_id");

		if (id == NULL || strlen(id) >= sizeof(s->id))
			continue;
		if ((s = deliverd_source_find(id)) == NULL)
			s = deliverd_source_new(id);
		deliverd_source_apply(s, r->docs[i]);
		s->seen = true;
	}
	TAILQ_FOREACH_SAFE (s, &sources, entry, ns) {
		if (!s->seen) {
			deliverd_source_removed(s);
		}
	}
	deliverd_partitions_sync();
	TAILQ_FOREACH (s, &sources, entry) {
		if (!s->lease.held)
			continue;
		if (!s->ready && !s->busy)
			(void)queue_takeover_start(s);
		deliverd_step(s);
	}
	/*
	 * What no hint brought (replays, lost hints, batches and alerts
	 * stored by other hosts): one scan of the pending batches and one of
	 * the pending alerts for every source, not a find per source.
	 */
	(void)queue_load_all_start();
	alerts_probe_start();
	wmark_tick();
out:
	store_docs_free(r->docs, r->n);
	free(r);
	if (rescan_again && !child_stopping()) {
		rescan_again = false;
		deliverd_rescan_soon();
	}
}

/*
 * Re-read the store on the worker: sources (new, changed, removed), the
 * partitions wanted, then step every source we hold. True when started.
 */
static bool
deliverd_rescan_start(void)
{
	struct drescan *r;

	if (child_stopping() || !child_store_ready() ||
	    !store_healthy(child_store()))
		return false;
	if (rescan_busy) {
		rescan_again = true;
		return true;
	}
	r = util_xcalloc(1, sizeof(*r));
	if (worker_submit(deliverd_rescan_work, deliverd_rescan_done, r) != 0) {
		free(r);
		return false;
	}
	rescan_busy = true;
	return true;
}

/*
 * Every rescan_interval, spaced by what the last read took
 * (store_rescan_delay); at once for a hint.
 */
static void
deliverd_rescan_cb(evutil_socket_t fd, short what, void *arg)
{
	if (!rescan_forced && rescan_end > 0 &&
	    util_mono_ms() - rescan_end <
		store_rescan_delay(deliverd_conf()->rescan_ms, rescan_took) -
		    deliverd_conf()->rescan_ms / 2)
		return;
	rescan_forced = false;
	(void)deliverd_rescan_start();
}

/*
 * Arm the rescan every rescan_interval; at start, also try every half
 * second until the first rescan went through.
 */
void
deliverd_rescan_arm(bool initial)
{
	deliverd_timer_start(&rescan_ev, deliverd_rescan_cb,
	    deliverd_conf()->rescan_ms, true);
	if (initial)
		deliverd_timer_start(&rescan_first_ev, deliverd_rescan_first_cb,
		    100, false);
}

/* Rescan at once (a hint named a source not known yet). */
void
deliverd_rescan_soon(void)
{
	if (rescan_ev != NULL) {
		rescan_forced = true;
		event_active(rescan_ev, EV_TIMEOUT, 0);
	}
}

/* Until the first rescan went through: try every half second. */
static void
deliverd_rescan_first_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv = { 0, 500000 };

	if (rescanned || child_stopping())
		return;
	(void)deliverd_rescan_start();
	evtimer_add(rescan_first_ev, &tv);
}
