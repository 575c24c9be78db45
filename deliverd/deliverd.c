/*
 * auditrelay-deliverd: pending logs -> signed batches -> callbackUrl.
 *
 * For every source whose partition lease "deliver:p<N>" this instance
 * holds (lib/partition.h: taken, renewed and released on a worker thread
 * of its own), the pending logs are grouped into batches (queue.c), each batch is
 * POSTed with Standard Webhooks signatures (send.c) and its outcome
 * classified (outcome.c): delivered, retried on a schedule, or parked as
 * a dead letter; a circuit breaker per callback holds the queue while it
 * is down (breaker.c); alerts travel the same way (alerts.c). The store
 * is the truth: hints (LogsStored, SourceChanged) only wake us early, and
 * everything is re-read every rescan_interval.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "lib/batch.h"
#include "deliverd/deliverd.h"
#include "deliverd/prune.h"
#include "deliverd/send.h"
#include "lib/worker.h"
#include "lib/child.h"
#include "lib/log.h"
#include "lib/store.h"
#include "lib/util.h"

#define JANITOR_FIRST_MS	10000
#define JANITOR_EVERY_MS	60000
#define STATE_WRITE_MIN_MS	2000
#define DEAD_ALERT_EVERY_MS	(10LL * 60 * 1000)
#define SEND_FAIL_DELAY_MS	5000

struct deliverd		 D;

static struct event	*rescan_ev, *rescan_first_ev, *janitor_ev, *janitor2_ev;
static struct event	*stats_ev, *load_ev;

static void
deliverd_load_all_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (!D.stopping && child_store_ready() && store_healthy(D.store))
		(void)queue_load_all_start();
}

#define STATS_FLUSH_MS	2000	/* delivery counters reach the store */
static struct event	*finish_ev;
static bool		 rescan_busy, rescan_again, rescanned;

static void	deliverd_step(struct dsource *s);
static void	deliverd_janitor_first_cb(evutil_socket_t, short, void *);

/* Record a store call's outcome (logs outages once); true when ok. */
bool
deliverd_store_result(int rc, const char *err)
{
	return child_store_result(rc >= 0, err);
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
	bson_iter_t		 it, sub;
	const uint8_t		*nonce = NULL, *ct = NULL;
	uint32_t		 nlen = 0, ctlen = 0;
	bson_subtype_t		 st;
	const char		*keyid = NULL;
	unsigned char		*pt = NULL;
	size_t			 ptlen = 0;
	char			*out;

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
	if (keyid != NULL && strcmp(keyid, D.keyid) != 0) {
		snprintf(err, errlen, "%s was sealed with master key %s, "
		    "this instance has %s", field, keyid, D.keyid);
		return NULL;
	}
	if (creds_open(D.key, source_id, "webhookSecret", version, nonce, ct,
	    ctlen, &pt, &ptlen, NULL) != 0) {
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
	CURLU	*u;
	char	*host = NULL;
	int	 rc = -EINVAL;

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

/* The host entry for name, created on first use. */
static struct dhost *
deliverd_host(const char *name)
{
	struct dhost	*h;

	LIST_FOREACH(h, &D.hosts, entry)
		if (strcmp(h->name, name) == 0)
			return h;
	h = util_xcalloc(1, sizeof(*h));
	util_strlcpy(h->name, name, sizeof(h->name));
	LIST_INSERT_HEAD(&D.hosts, h, entry);
	return h;
}

struct dsource *
deliverd_source_find(const char *id)
{
	struct dsource	*s;

	TAILQ_FOREACH(s, &D.sources, entry)
		if (strcmp(s->id, id) == 0)
			return s;
	return NULL;
}

/* Arm s's timer for wall-clock time at (ms); 0 disarms. */
static void
deliverd_source_wake(struct dsource *s, int64_t at)
{
	struct timeval	tv;
	int64_t		d;

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
static void
deliverd_source_idle(struct dsource *s)
{
	struct dbatch	*b;

	while ((b = TAILQ_FIRST(&s->queue)) != NULL) {
		if (b->inflight) {
			httpc_cancel(b->req);
			b->host->inflight--;
			s->inflight--;
			D.inflight--;
		}
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
static void
deliverd_source_free(struct dsource *s)
{
	deliverd_source_idle(s);
	s->lease.held = false;
	atomic_store(&s->lease_deadline, 0);
	TAILQ_REMOVE(&D.sources, s, entry);
	if (s->busy) {
		s->zombie = true;	/* its worker job still points here */
		return;
	}
	deliverd_source_destroy(s);
}

/* Free s (unlinked, no job running). */
void
deliverd_source_destroy(struct dsource *s)
{
	event_free(s->timer);
	free(s->url);
	free(s->gone_url);
	deliverd_secret_free(&s->secret);
	deliverd_secret_free(&s->prev_secret);
	free(s);
}

/* A source_state write on the worker. */
struct state_write {
	char		 sid[64];
	char		 id[96];
	bson_t		*doc;
	const char	*status;
	int64_t		 at;
	int		 rc;
	char		 err[512];
};

static void
deliverd_state_work(void *arg)
{
	struct state_write	*w = arg;

	w->rc = store_upsert(D.store, STORE_SOURCE_STATE, w->id, w->doc,
	    w->err, sizeof(w->err));
}

static void
deliverd_state_done(void *arg)
{
	struct state_write	*w = arg;
	struct dsource		*s = deliverd_source_find(w->sid);
	bool			 ok = deliverd_store_result(w->rc, w->err);

	if (s != NULL) {
		s->state_writing = false;
		if (ok) {
			s->written_status = w->status;
			s->state_written_at = w->at;
		}
		if (s->state_dirty) {
			s->state_dirty = false;
			deliverd_source_state_write(s);
		}
	}
	bson_destroy(w->doc);
	free(w);
}

/*
 * Upsert source_state "<id>:deliver" on the worker (throttled unless the
 * status changed; one write in flight per source).
 */
void
deliverd_source_state_write(struct dsource *s)
{
	struct state_write	*w;
	bson_t			 doc;
	char			 id[96];
	int64_t			 now = util_now_ms();

	if (s->state_writing) {
		s->state_dirty = true;	/* written after the one in flight */
		return;
	}
	if (s->written_status == s->status &&
	    now - s->state_written_at < STATE_WRITE_MIN_MS)
		return;
	snprintf(id, sizeof(id), "%s:deliver", s->id);
	bson_init(&doc);
	BSON_APPEND_UTF8(&doc, "_id", id);
	BSON_APPEND_UTF8(&doc, "sourceId", s->id);
	BSON_APPEND_UTF8(&doc, "status", s->status);
	if (s->last_delivery_at > 0)
		BSON_APPEND_INT64(&doc, "lastDeliveryAt", s->last_delivery_at);
	else
		BSON_APPEND_NULL(&doc, "lastDeliveryAt");
	if (s->last_error[0] != '\0')
		BSON_APPEND_UTF8(&doc, "lastError", s->last_error);
	else
		BSON_APPEND_NULL(&doc, "lastError");
	BSON_APPEND_INT32(&doc, "consecutiveFailures",
	    (int32_t)s->br.consecutive);
	if (s->gone_url != NULL)
		BSON_APPEND_UTF8(&doc, "goneUrl", s->gone_url);
	if (s->ready) {
	}
	BSON_APPEND_INT64(&doc, "epoch", s->lease.epoch);
	BSON_APPEND_INT64(&doc, "updatedAt", now);
	w = util_xcalloc(1, sizeof(*w));
	util_strlcpy(w->sid, s->id, sizeof(w->sid));
	util_strlcpy(w->id, id, sizeof(w->id));
	w->doc = bson_copy(&doc);
	w->status = s->status;
	w->at = now;
	bson_destroy(&doc);
	if (worker_submit(deliverd_state_work, deliverd_state_done, w) != 0) {
		bson_destroy(w->doc);
		free(w);
		return;
	}
	s->state_writing = true;
}

/* Add to the counters in stats "<id>:deliver" (flushed every few s). */
void
deliverd_stats_add(struct dsource *s, int64_t logs, int64_t batches,
    int64_t failures, int64_t dead)
{
	s->st_logs += logs;
	s->st_batches += batches;
	s->st_fail += failures;
	s->st_dead += dead;
}

struct stats_delta {
	char	 sid[64];
	int64_t	 logs, batches, fail, dead;
	bool	 ok;
};

struct stats_flush {
	struct stats_delta	*d;
	size_t			 n;
	int			 rc;
	char			 err[512];
};

static void
deliverd_stats_work(void *arg)
{
	struct stats_flush	*f = arg;
	mongoc_client_t		*c;
	mongoc_collection_t	*coll;
	bson_t			*sel, *upd, *opts;
	bson_error_t		 berr;
	char			 id[96];
	size_t			 i;

	c = store_pop(D.store);
	coll = store_coll(D.store, c, STORE_STATS);
	opts = BCON_NEW("upsert", BCON_BOOL(true));
	for (i = 0; i < f->n; i++) {
		struct stats_delta *d = &f->d[i];

		snprintf(id, sizeof(id), "%s:deliver", d->sid);
		sel = BCON_NEW("_id", BCON_UTF8(id));
		upd = BCON_NEW("$inc", "{", "deliveredLogs",
		    BCON_INT64(d->logs), "deliveredBatches",
		    BCON_INT64(d->batches), "failedAttempts",
		    BCON_INT64(d->fail), "deadBatches", BCON_INT64(d->dead),
		    "}", "$set", "{", "sourceId", BCON_UTF8(d->sid),
		    "updatedAt", BCON_INT64(util_now_ms()), "}");
		d->ok = mongoc_collection_update_one(coll, sel, upd, opts,
		    NULL, &berr);
		if (!d->ok && f->rc == 0) {
			snprintf(f->err, sizeof(f->err), "update stats: %.400s",
			    berr.message);
			f->rc = -EIO;
		}
		bson_destroy(sel);
		bson_destroy(upd);
	}
	bson_destroy(opts);
	mongoc_collection_destroy(coll);
	store_push(D.store, c);
}

static bool	stats_flushing;

static void
deliverd_stats_done(void *arg)
{
	struct stats_flush	*f = arg;
	struct dsource		*s;
	size_t			 i;

	stats_flushing = false;
	(void)deliverd_store_result(f->rc, f->err);
	/* What was not written is added back, for the next flush. */
	for (i = 0; i < f->n; i++)
		if (!f->d[i].ok && (s = deliverd_source_find(f->d[i].sid)))
			deliverd_stats_add(s, f->d[i].logs, f->d[i].batches,
			    f->d[i].fail, f->d[i].dead);
	free(f->d);
	free(f);
}

/* Timer: write the counters that moved, in one worker job. */
static void
deliverd_stats_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stats_flush	*f;
	struct dsource		*s;
	size_t			 n = 0;

	(void)fd;
	(void)what;
	(void)arg;
	if (stats_flushing || !store_healthy(D.store))
		return;
	TAILQ_FOREACH(s, &D.sources, entry)
		if (s->st_logs || s->st_batches || s->st_fail || s->st_dead)
			n++;
	if (n == 0)
		return;
	f = util_xcalloc(1, sizeof(*f));
	f->d = util_xcalloc(n, sizeof(*f->d));
	TAILQ_FOREACH(s, &D.sources, entry) {
		if (!(s->st_logs || s->st_batches || s->st_fail || s->st_dead))
			continue;
		util_strlcpy(f->d[f->n].sid, s->id, sizeof(f->d[0].sid));
		f->d[f->n].logs = s->st_logs;
		f->d[f->n].batches = s->st_batches;
		f->d[f->n].fail = s->st_fail;
		f->d[f->n].dead = s->st_dead;
		s->st_logs = s->st_batches = s->st_fail = s->st_dead = 0;
		f->n++;
	}
	if (worker_submit(deliverd_stats_work, deliverd_stats_done, f) != 0) {
		for (size_t i = 0; i < f->n; i++)
			f->d[i].ok = false;
		deliverd_stats_done(f);
		return;
	}
	stats_flushing = true;
}

/* A short description of a failed attempt into out. */
static void
deliverd_describe(const struct httpc_resp *resp, char *out, size_t outlen)
{
	char	snippet[121];
	size_t	i, n;

	if (resp->status == 0) {
		snprintf(out, outlen, "%s", resp->error[0] != '\0' ?
		    resp->error : "no answer");
		return;
	}
	n = resp->body_len < sizeof(snippet) - 1 ? resp->body_len :
	    sizeof(snippet) - 1;
	for (i = 0; i < n; i++)
		snippet[i] = (resp->body[i] >= 0x20 && resp->body[i] < 0x7f) ?
		    resp->body[i] : ' ';
	snippet[n] = '\0';
	if (n > 0)
		snprintf(out, outlen, "HTTP %ld: %s", resp->status, snippet);
	else
		snprintf(out, outlen, "HTTP %ld", resp->status);
}

/* Tell the source's owner that a batch became a dead letter (throttled). */
static void
deliverd_dead_alert(struct dsource *s, struct dbatch *b, const char *why)
{
	char	msg[768];
	int64_t	now = util_now_ms();

	if (now - s->last_dead_alert < DEAD_ALERT_EVERY_MS)
		return;
	s->last_dead_alert = now;
	snprintf(msg, sizeof(msg), "batch %s (%lld logs) could not be "
	    "delivered after %u attempts (last: %s); dead letters are kept: "
	    "list them with GET /sources/%s/dead-letters and re-send them "
	    "with POST /sources/%s/dead-letters/replay", b->id,
	    (long long)b->nlogs, b->n_attempts, why, s->id, s->id);
	(void)alerts_raise(s, "dead_letter", msg);
}

static void	deliverd_finish(void);

/* Step every source held back by a concurrency limit, fairly. */
static void
deliverd_kick_waiting(void)
{
	struct dsource	*s, *first;

	if ((first = TAILQ_FIRST(&D.sources)) != NULL) {
		/* Rotate so that no source always goes first. */
		TAILQ_REMOVE(&D.sources, first, entry);
		TAILQ_INSERT_TAIL(&D.sources, first, entry);
	}
	TAILQ_FOREACH(s, &D.sources, entry) {
		if (D.inflight >= D.max_conc)
			break;
		if (s->wait_slot)
			deliverd_step(s);
	}
}

/* A POST finished: record the outcome, decide what happens next. */
static void
deliverd_done_cb(const struct httpc_resp *resp, void *arg)
{
	struct dbatch		*b = arg;
	struct dsource		*s = b->src;
	enum deliver_result	 r;
	enum breaker_event	 ev = BREAKER_NONE;
	int64_t			 now = util_now_ms(), delay, ra;
	unsigned		 attempts;
	char			 why[256];
	bool			 dead;

	b->inflight = false;
	b->req = NULL;
	b->host->inflight--;
	s->inflight--;
	D.inflight--;
	r = deliver_classify(resp->status, resp->curl_code, resp->blocked);
	deliverd_describe(resp, why, sizeof(why));

	if (!lease_valid(&s->lease)) {
		log_warn("source=%s batch=%s answered (%s) after the lease "
		    "ended; not recorded, the next holder sends it again",
		    s->id, b->id, deliver_result_name(r));
		s->reload = true;
		goto next;
	}
	b->n_attempts++;
	switch (r) {
	case DELIVER_OK:
		if (queue_record(s, b, resp, "delivered", now, NULL) != 0) {
			log_warn("source=%s batch=%s delivered but not "
			    "recorded (store); it will be sent again with the "
			    "same webhook-id", s->id, b->id);
			s->reload = true;
			goto next;
		}
		/* Routine deliveries are debug; one after retries is news. */
		if (b->n_attempts > 1)
			log_info("source=%s batch=%s delivered logs=%lld "
			    "status=%ld after %u attempts", s->id, b->id,
			    (long long)b->nlogs, resp->status, b->n_attempts);
		else
			log_debug("source=%s batch=%s delivered logs=%lld "
			    "status=%ld %lldms", s->id, b->id,
			    (long long)b->nlogs, resp->status,
			    (long long)resp->elapsed_ms);
		ev = breaker_success(&s->br, &attempts);
		if (ev == BREAKER_CLOSED)
			log_notice("source=%s callback resumed after %u "
			    "attempts; releasing the held queue", s->id,
			    attempts);
		s->last_delivery_at = now;
		s->last_error[0] = '\0';
		s->status = "ok";
		deliverd_stats_add(s, b->is_alert ? 0 : b->nlogs, 1, 0, 0);
		deliverd_source_state_write(s);
		queue_remove(s, b);
		break;
	case DELIVER_RETRY:
	case DELIVER_ERROR:
		b->n_fail++;
		if (r == DELIVER_ERROR)
			b->n_errors++;
		ra = (resp->status == 429 || resp->status == 503) ?
		    resp->retry_after_s : -1;
		delay = deliver_retry_delay(D.sched, D.nsched, b->n_fail, ra);
		dead = deliver_give_up(r, b->n_errors, now - b->age_base,
		    D.max_age_ms, &delay);
		util_strlcpy(s->last_error, why, sizeof(s->last_error));
		if (r == DELIVER_RETRY) {
			ev = breaker_failure(&s->br, now);
			if (ev == BREAKER_OPENED) {
				s->status = "callback_failing";
				log_warn("source=%s callback down after %u "
				    "failures in a row (%s); holding its queue "
				    "and probing with one batch, next in %llds",
				    s->id, s->br.consecutive, why,
				    (long long)(delay / 1000));
			}
		}
		deliverd_stats_add(s, 0, 0, 1, dead ? 1 : 0);
		if (dead) {
			if (queue_record(s, b, resp, "dead", now, why) != 0) {
				s->reload = true;
				goto next;
			}
			log_warn("source=%s batch=%s is a dead letter after %u "
			    "attempts (last: %s); kept for replay", s->id,
			    b->id, b->n_attempts, why);
			if (!b->is_alert)
				deliverd_dead_alert(s, b, why);
			queue_remove(s, b);
		} else {
			b->next_at = now + delay;
			if (queue_record(s, b, resp, "pending", now, why) !=
			    0) {
				s->reload = true;
				goto next;
			}
			if (s->br.open && ev != BREAKER_OPENED)
				log_debug("source=%s batch=%s probe failed: "
				    "%s; next probe in %llds", s->id, b->id,
				    why, (long long)(delay / 1000));
			else if (!s->br.open)
				log_info("source=%s batch=%s attempt %u "
				    "failed: %s; retrying in %llds", s->id,
				    b->id, b->n_attempts, why,
				    (long long)(delay / 1000));
		}
		deliverd_source_state_write(s);
		break;
	case DELIVER_GONE:
		b->next_at = now;
		(void)queue_record(s, b, resp, "pending", now, why);
		s->gone = true;
		free(s->gone_url);
		s->gone_url = util_xstrdup(s->url);
		s->status = "callback_gone";
		util_strlcpy(s->last_error, why, sizeof(s->last_error));
		deliverd_source_state_write(s);
		(void)alerts_raise(s, "callback_gone", "the callback answered "
		    "410 Gone; deliveries of this source are paused until its "
		    "callbackUrl changes");
		deliverd_stats_add(s, 0, 0, 1, 0);
		break;
	}
next:
	if (D.stopping) {
		if (D.inflight == 0)
			deliverd_finish();
		return;
	}
	deliverd_step(s);
	deliverd_kick_waiting();
}

/* Start the POST of b. 0, or -errno with b rescheduled. */
static int
deliverd_send(struct dsource *s, struct dbatch *b, struct dhost *host)
{
	struct send_params	 p;
	char			*body;
	size_t			 len = 0;
	int			 rc;

	if ((body = queue_body(s, b, &len)) == NULL) {
		/* Gone from the store (pruned, source removed) or no store. */
		s->reload = true;
		return -EIO;
	}
	memset(&p, 0, sizeof(p));
	p.url = s->url;
	p.webhook_id = b->webhook_id;
	p.secret = s->secret;
	p.prev_secret = s->prev_secret;
	p.prev_until = s->prev_until;
	p.body = body;
	p.body_len = len;
	p.timeout_ms = D.timeout_ms;
	p.allow_private = D.allow_private;
	rc = send_post(D.http, &p, deliverd_done_cb, b, &b->req);
	free(body);
	if (rc != 0) {
		log_err("source=%s batch=%s cannot start the POST: %s; "
		    "retrying in %ds", s->id, b->id, strerror(-rc),
		    SEND_FAIL_DELAY_MS / 1000);
		b->next_at = util_now_ms() + SEND_FAIL_DELAY_MS;
		return rc;
	}
	b->inflight = true;
	b->host = host;
	host->inflight++;
	s->inflight++;
	D.inflight++;
	log_debug("source=%s batch=%s POST webhook-id=%s bytes=%zu attempt=%u",
	    s->id, b->id, b->webhook_id, len, b->n_attempts + 1);
	return 0;
}

/*
 * Advance s: build batches when there is room, send what is due within
 * the concurrency limits (one probe at a time while the breaker is open),
 * and arm the timer for the next thing to do.
 */
static void
deliverd_step(struct dsource *s)
{
	struct dbatch	*b;
	struct dhost	*host;
	int64_t		 now = util_now_ms(), wake = 0;
	unsigned	 window;

	if (D.stopping || !child_store_ready() || !store_healthy(D.store))
		return;
	if (!lease_valid(&s->lease) || !s->ready || s->paused || s->gone ||
	    s->secret == NULL || s->url == NULL || s->handover)
		return;
	window = breaker_window(&s->br, D.host_conc);
	/* New batches from fetcherd (hinted), replays, other holders. */
	if (!s->busy && (s->reload || s->logs_dirty)) {
		s->reload = s->logs_dirty = false;
		(void)queue_load_start(s);
	}
	if (!s->br.open && s->alerts_dirty && !s->busy)
		(void)queue_alerts_start(s);
	s->wait_slot = false;
	host = deliverd_host(s->hostname);
	TAILQ_FOREACH(b, &s->queue, entry) {
		if (b->inflight)
			continue;
		if (s->br.open && s->inflight > 0)
			break;
		if (b->next_at > now) {
			if (wake == 0 || b->next_at < wake)
				wake = b->next_at;
			if (s->br.open)
				break;	/* the head is the probe */
			continue;
		}
		if (s->inflight >= window)
			break;
		if (host->inflight >= D.host_conc ||
		    D.inflight >= D.max_conc) {
			s->wait_slot = true;
			break;
		}
		if (deliverd_send(s, b, host) != 0) {
			if (s->reload)
				break;
			if (wake == 0 || b->next_at < wake)
				wake = b->next_at;
		}
	}
	deliverd_source_wake(s, wake);
}

static void
deliverd_source_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	deliverd_step(arg);
}

/*
 * The delivery state of sources just taken ("<id>:deliver" in
 * source_state: lastDeliveryAt, a 410 Gone to remember), read in one
 * query on the worker thread; each source is busy meanwhile, then its
 * queue is taken over (queue_takeover_start).
 */
struct dtake {
	int64_t		  epoch;
	struct dsource	**srcs;
	bson_t		**docs;
	size_t		  n;
	int		  rc;
	char		  err[512];
};

static void
deliverd_take_work(void *arg)
{
	struct dtake		*t = arg;
	mongoc_client_t		*c;
	mongoc_collection_t	*coll;
	mongoc_cursor_t		*cur;
	const bson_t		*doc;
	bson_t			 sel, in, arr;
	bson_error_t		 berr;
	char			 k[16], id[96];
	const char		*kp, *did;
	size_t			 i;

	bson_init(&sel);
	bson_append_document_begin(&sel, "_id", -1, &in);
	bson_append_array_begin(&in, "$in", -1, &arr);
	for (i = 0; i < t->n; i++) {
		bson_uint32_to_string((uint32_t)i, &kp, k, sizeof(k));
		snprintf(id, sizeof(id), "%s:deliver", t->srcs[i]->id);
		bson_append_utf8(&arr, kp, -1, id, -1);
	}
	bson_append_array_end(&in, &arr);
	bson_append_document_end(&sel, &in);
	c = store_pop(D.store);
	coll = store_coll(D.store, c, STORE_SOURCE_STATE);
	cur = mongoc_collection_find_with_opts(coll, &sel, NULL, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		if ((did = store_bson_str(doc, "_id")) == NULL)
			continue;
		/* The ids were copied on the loop: s->id does not change. */
		for (i = 0; i < t->n; i++) {
			snprintf(id, sizeof(id), "%s:deliver", t->srcs[i]->id);
			if (t->docs[i] == NULL && strcmp(did, id) == 0)
				t->docs[i] = bson_copy(doc);
		}
	}
	if (mongoc_cursor_error(cur, &berr)) {
		snprintf(t->err, sizeof(t->err), "find source_state: %.400s",
		    berr.message);
		t->rc = -EIO;
	}
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	store_push(D.store, c);
	bson_destroy(&sel);
}

/* Apply a source_state document (NULL: none) to s just taken. */
static void
deliverd_take_apply(struct dsource *s, const bson_t *doc)
{
	const char	*st, *gu;

	if (doc == NULL)
		return;
	st = store_bson_str(doc, "status");
	gu = store_bson_str(doc, "goneUrl");
	s->last_delivery_at = store_bson_int(doc, "lastDeliveryAt", 0);
	if (st != NULL && strcmp(st, "callback_gone") == 0 && gu != NULL &&
	    s->url != NULL && strcmp(gu, s->url) == 0) {
		s->gone = true;
		s->status = "callback_gone";
		free(s->gone_url);
		s->gone_url = util_xstrdup(gu);
	}
}

static void
deliverd_take_done(void *arg)
{
	struct dtake	*t = arg;
	struct dsource	*s;
	size_t		 i;

	(void)deliverd_store_result(t->rc, t->err);
	for (i = 0; i < t->n; i++) {
		s = t->srcs[i];
		s->busy = false;
		if (s->zombie)
			deliverd_source_destroy(s);
		else if (s->lease.held) {
			if (t->rc != 0)
				s->reload = true;
			else if (s->lease.epoch == t->epoch)
				deliverd_take_apply(s, t->docs[i]);
			deliverd_source_job_done(s);
		}
		if (t->docs[i] != NULL)
			bson_destroy(t->docs[i]);
	}
	free(t->srcs);
	free(t->docs);
	free(t);
}

/*
 * Sources of partition part (only one when one is not NULL) now work
 * under lease l: reset their delivery state, then read what the store
 * remembers of them and take their queues over, on the worker thread.
 */
static void
deliverd_sources_taken(int part, const struct lease *l, struct dsource *one)
{
	struct dsource	*s;
	struct dtake	*t;
	size_t		 n = 0;

	TAILQ_FOREACH(s, &D.sources, entry) {
		if (s->part != part || (one != NULL && s != one))
			continue;
		s->lease = *l;
		atomic_store(&s->lease_deadline, l->deadline_mono);
		s->logs_dirty = s->alerts_dirty = true;
		s->reload = false;
		s->ready = false;
		s->handover = false;
		breaker_init(&s->br, D.breaker_threshold);
		s->status = "ok";
		if (s->busy)
			s->reload = true;	/* its job's end takes over */
		else
			n++;
	}
	if (n == 0)
		return;
	t = util_xcalloc(1, sizeof(*t));
	t->epoch = l->epoch;
	t->srcs = util_xcalloc(n, sizeof(*t->srcs));
	t->docs = util_xcalloc(n, sizeof(*t->docs));
	TAILQ_FOREACH(s, &D.sources, entry)
		if (s->part == part && (one == NULL || s == one) && !s->busy)
			t->srcs[t->n++] = s;
	if (worker_submit(deliverd_take_work, deliverd_take_done, t) != 0) {
		for (n = 0; n < t->n; n++)
			t->srcs[n]->reload = true;	/* the rescan retries */
		free(t->srcs);
		free(t->docs);
		free(t);
		return;
	}
	for (n = 0; n < t->n; n++)
		t->srcs[n]->busy = true;
}

/* Stop the sources of part: lost, or handed over. */
static int
deliverd_partition_stop(int part)
{
	struct dsource	*s;
	int		 n = 0;

	TAILQ_FOREACH(s, &D.sources, entry) {
		if (s->part != part || !s->lease.held)
			continue;
		deliverd_source_idle(s);
		s->lease.held = false;
		s->handover = false;
		n++;
	}
	return n;
}

/* A partition taken (on the loop): its sources start. */
static void
deliverd_partition_gained(void *arg, int part, const struct lease *l)
{
	struct dsource	*s;
	int		 n = 0;

	TAILQ_FOREACH(s, &D.sources, entry)
		if (s->part == part)
			n++;
	log_info("partition %s: delivering here (epoch=%lld, %d sources)",
	    l->resource, (long long)l->epoch, n);
	deliverd_sources_taken(part, l, NULL);
}

/* A partition renewed: its sources' deadline moves. */
static void
deliverd_partition_renewed(void *arg, int part, const struct lease *l)
{
	struct dsource	*s;

	TAILQ_FOREACH(s, &D.sources, entry) {
		if (s->part != part || !s->lease.held ||
		    s->lease.epoch != l->epoch)
			continue;
		s->lease.deadline_mono = l->deadline_mono;
		atomic_store(&s->lease_deadline, l->deadline_mono);
	}
}

/* A partition lost or handed over: its sources stop at once. */
static void
deliverd_partition_lost(void *arg, int part, const struct lease *l,
    bool handover)
{
	int	n = deliverd_partition_stop(part);

	if (handover)
		log_info("partition %s handed over with its %d sources to "
		    "balance %d instances", l->resource, n,
		    partition_set_live(D.parts));
	else
		log_warn("partition %s: lease lost or not renewed in time "
		    "(epoch=%lld); deliveries of its %d sources stop until "
		    "it is taken again", l->resource, (long long)l->epoch, n);
}

/*
 * More partitions than our share (another instance joined): a partition
 * is drained (no new batches, in-flight POSTs finish) before its lease
 * goes, one at a time, so that the work spreads out.
 */
static enum partition_drain
deliverd_partition_drain(void *arg, int part)
{
	struct dsource	*s;
	bool		 idle = true;

	TAILQ_FOREACH(s, &D.sources, entry) {
		if (s->part != part || !s->lease.held)
			continue;
		s->handover = true;
		if (s->busy || s->inflight > 0)
			idle = false;
	}
	return idle ? PARTITION_DRAIN_READY : PARTITION_DRAIN_WAIT;
}

static const struct partition_ops deliverd_partition_ops = {
	.gained = deliverd_partition_gained,
	.renewed = deliverd_partition_renewed,
	.lost = deliverd_partition_lost,
	.drain = deliverd_partition_drain,
};

/* A worker job of s finished: carry on. */
void
deliverd_source_job_done(struct dsource *s)
{
	if (s->lease.held && !s->ready && !s->busy)
		(void)queue_takeover_start(s);
	deliverd_step(s);
}

/* Apply a sources document to s (new or known). */
static void
deliverd_source_apply(struct dsource *s, const bson_t *doc)
{
	const char	*url = store_bson_str(doc, "callbackUrl");
	char		 err[256], *sec, *prev;
	int64_t		 until = 0, ver;

	s->paused = store_bson_bool(doc, "paused", false);
	if (url != NULL && (s->url == NULL || strcmp(url, s->url) != 0)) {
		free(s->url);
		s->url = util_xstrdup(url);
		if (deliverd_url_host(url, s->hostname,
		    sizeof(s->hostname)) != 0)
			util_strlcpy(s->hostname, "?", sizeof(s->hostname));
		if (s->gone && s->gone_url != NULL &&
		    strcmp(s->gone_url, url) != 0) {
			log_notice("source=%s callbackUrl changed; resuming "
			    "deliveries paused by 410 Gone", s->id);
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
	sec = deliverd_secret_open(s->id, doc, "webhookSecret", ver, NULL,
	    err, sizeof(err));
	if (sec == NULL) {
		if (s->secret != NULL || s->last_error[0] == '\0')
			log_err("source=%s cannot read its webhook secret: %s; "
			    "deliveries held", s->id, err);
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
	struct dsource	*s;

	s = util_xcalloc(1, sizeof(*s));
	util_strlcpy(s->id, id, sizeof(s->id));
	TAILQ_INIT(&s->queue);
	s->timer = evtimer_new(D.base, deliverd_source_timer_cb, s);
	if (s->timer == NULL)
		fatal("out of memory");
	s->status = "ok";
	s->part = partition_set_of(D.parts, id);
	breaker_init(&s->br, D.breaker_threshold);
	TAILQ_INSERT_TAIL(&D.sources, s, entry);
	return s;
}

/* The sources documents (without credentials), read on the worker. */
struct drescan {
	bson_t	**docs;
	size_t	  n, cap;
	int	  rc;
	char	  err[512];
};

static void
deliverd_rescan_work(void *arg)
{
	struct drescan		*r = arg;
	mongoc_client_t		*c;
	mongoc_collection_t	*coll;
	mongoc_cursor_t		*cur;
	const bson_t		*doc;
	bson_t			*filter, *opts, **nd;
	bson_error_t		 berr;

	filter = bson_new();
	opts = BCON_NEW("projection", "{", "credentials", BCON_INT32(0), "}");
	c = store_pop(D.store);
	coll = store_coll(D.store, c, STORE_SOURCES);
	cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		if (r->n == r->cap) {
			r->cap = r->cap ? r->cap * 2 : 64;
			nd = realloc(r->docs, r->cap * sizeof(*nd));
			if (nd == NULL) {
				snprintf(r->err, sizeof(r->err), "out of "
				    "memory reading the sources");
				r->rc = -ENOMEM;
				break;
			}
			r->docs = nd;
		}
		r->docs[r->n++] = bson_copy(doc);
	}
	if (r->rc == 0 && mongoc_cursor_error(cur, &berr)) {
		snprintf(r->err, sizeof(r->err), "find sources: %.400s",
		    berr.message);
		r->rc = -EIO;
	}
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(coll);
	store_push(D.store, c);
	bson_destroy(filter);
	bson_destroy(opts);
}

/* Loop: reconcile with the sources read, then step those we hold. */
static void
deliverd_rescan_done(void *arg)
{
	struct drescan	*r = arg;
	struct dsource	*s, *ns;
	struct lease	 l;
	size_t		 i;

	rescan_busy = false;
	if (D.stopping || !deliverd_store_result(r->rc, r->err))
		goto out;
	rescanned = true;
	TAILQ_FOREACH(s, &D.sources, entry)
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
	partition_set_sync_begin(D.parts);
	TAILQ_FOREACH_SAFE(s, &D.sources, entry, ns) {
		if (!s->seen) {
			log_info("source=%s removed; its deliveries stop",
			    s->id);
			deliverd_source_free(s);
			continue;
		}
		/* A new source in a partition held already. */
		if (partition_set_sync_source(D.parts, s->part, &l) &&
		    !s->lease.held)
			deliverd_sources_taken(s->part, &l, s);
	}
	partition_set_sync_end(D.parts);
	TAILQ_FOREACH(s, &D.sources, entry) {
		if (!s->lease.held)
			continue;
		s->logs_dirty = s->alerts_dirty = true;
		if (!s->ready && !s->busy)
			(void)queue_takeover_start(s);
		deliverd_step(s);
	}
out:
	for (i = 0; i < r->n; i++)
		bson_destroy(r->docs[i]);
	free(r->docs);
	free(r);
	if (rescan_again && !D.stopping) {
		rescan_again = false;
		event_active(rescan_ev, EV_TIMEOUT, 0);
	}
}

/*
 * Re-read the store on the worker: sources (new, changed, removed), the
 * partitions wanted, then step every source we hold. True when started.
 */
static bool
deliverd_rescan_start(void)
{
	struct drescan	*r;

	if (D.stopping || !child_store_ready() || !store_healthy(D.store))
		return false;
	if (rescan_busy) {
		rescan_again = true;
		return true;
	}
	r = util_xcalloc(1, sizeof(*r));
	if (worker_submit(deliverd_rescan_work, deliverd_rescan_done,
	    r) != 0) {
		free(r);
		return false;
	}
	rescan_busy = true;
	return true;
}

static void
deliverd_rescan_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)deliverd_rescan_start();
}

/* Until the first rescan went through: try every half second. */
static void
deliverd_rescan_first_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval	tv = { 0, 500000 };

	if (rescanned || D.stopping)
		return;
	(void)deliverd_rescan_start();
	evtimer_add(rescan_first_ev, &tv);
}

/* Report the partition set's store calls like our own. */
static void
deliverd_partition_store(bool ok, const char *err)
{
	(void)deliverd_store_result(ok ? 0 : -EIO, err);
}

/*
 * Run a distinct on coll.sourceId; calls fn for each value. 0 or -EIO.
 */
static int
deliverd_distinct_sources(const char *coll, char ***out, size_t *nout,
    char *err, size_t errlen)
{
	mongoc_client_t		*c;
	mongoc_database_t	*db;
	bson_t			*cmd, reply;
	bson_iter_t		 it, ch;
	bson_error_t		 berr;
	char			**v = NULL, **nv;
	size_t			 n = 0;
	int			 rc = 0;

	cmd = BCON_NEW("distinct", BCON_UTF8(coll), "key",
	    BCON_UTF8("sourceId"));
	c = store_pop(D.store);
	db = mongoc_client_get_database(c, store_dbname(D.store));
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
	store_push(D.store, c);
	bson_destroy(cmd);
	*out = v;
	*nout = n;
	return rc;
}

struct janitor {
	int	 rc;
	char	 err[512];
	char	 msgs[2048];
	size_t	 off;
	int64_t	 retention_ms;
};

static bool	janitor_running;

static void
janitor_note(struct janitor *jt, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
janitor_note(struct janitor *jt, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	if (jt->off >= sizeof(jt->msgs) - 2)
		return;
	va_start(ap, fmt);
	n = vsnprintf(jt->msgs + jt->off, sizeof(jt->msgs) - jt->off, fmt,
	    ap);
	va_end(ap);
	if (n > 0)
		jt->off += (size_t)n;
	if (jt->off >= sizeof(jt->msgs))
		jt->off = sizeof(jt->msgs) - 1;
	jt->msgs[jt->off++] = '\n';
	jt->msgs[jt->off] = '\0';
}

/* Worker: delete what removed sources left behind. */
static void
janitor_removed(struct janitor *jt)
{
	static const char *const colls[] = { STORE_BATCHES, STORE_ALERTS };
	char		**ids = NULL, sid[96];
	size_t		 n = 0, i, k;
	bson_t		*sel, out;
	int64_t		 deleted;
	int		 rc;

	for (k = 0; k < nitems(colls) && jt->rc == 0; k++) {
		/* The ids first, then the sources: never the reverse. */
		rc = deliverd_distinct_sources(colls[k], &ids, &n, jt->err,
		    sizeof(jt->err));
		if (rc != 0) {
			jt->rc = rc;
			break;
		}
		for (i = 0; i < n && jt->rc == 0; i++) {
			sel = BCON_NEW("_id", BCON_UTF8(ids[i]));
			rc = store_find_one(D.store, STORE_SOURCES, sel, NULL,
			    &out, jt->err, sizeof(jt->err));
			bson_destroy(sel);
			if (rc < 0) {
				jt->rc = rc;
				break;
			}
			if (rc == 1) {
				bson_destroy(&out);
				continue;
			}
			sel = BCON_NEW("sourceId", BCON_UTF8(ids[i]));
			deleted = 0;
			jt->rc = store_delete(D.store, colls[k], sel, true,
			    &deleted, jt->err, sizeof(jt->err));
			bson_destroy(sel);
			janitor_note(jt, "source=%s removed: deleted %lld %s",
			    ids[i], (long long)deleted, colls[k]);
			if (k == 0) {
				snprintf(sid, sizeof(sid), "%s:deliver",
				    ids[i]);
				sel = BCON_NEW("_id", BCON_UTF8(sid));
				(void)store_delete(D.store, STORE_SOURCE_STATE,
				    sel, false, NULL, jt->err,
				    sizeof(jt->err));
				(void)store_delete(D.store, STORE_STATS, sel,
				    false, NULL, jt->err, sizeof(jt->err));
				bson_destroy(sel);
				/* Bodies, fetcherd's cursors and stats. */
				sel = BCON_NEW("sourceId", BCON_UTF8(ids[i]));
				(void)store_delete(D.store, STORE_BODIES, sel,
				    true, NULL, jt->err, sizeof(jt->err));
				(void)store_delete(D.store, STORE_INTENTS,
				    sel, true, NULL, jt->err,
				    sizeof(jt->err));
				(void)store_delete(D.store, STORE_CURSORS,
				    sel, true, NULL, jt->err,
				    sizeof(jt->err));
				(void)store_delete(D.store, STORE_STATS, sel,
				    true, NULL, jt->err, sizeof(jt->err));
				bson_destroy(sel);
			}
		}
		for (i = 0; i < n; i++)
			free(ids[i]);
		free(ids);
		ids = NULL;
		n = 0;
	}
}

/* Worker: delivered alerts older than the retention go. */
static void
janitor_prune(struct janitor *jt)
{
	bson_t	*filter;

	filter = BCON_NEW("state", BCON_UTF8("batched"), "at", "{",
	    "$lt", BCON_INT64(util_now_ms() - jt->retention_ms), "}");
	jt->rc = store_delete(D.store, STORE_ALERTS, filter, true, NULL,
	    jt->err, sizeof(jt->err));
	bson_destroy(filter);
}

static void
janitor_work(void *arg)
{
	struct janitor	*jt = arg;

	janitor_removed(jt);
	if (jt->rc == 0)
		janitor_prune(jt);
}

static void
janitor_done(void *arg)
{
	struct janitor	*jt = arg;
	char		*line, *save = NULL;

	janitor_running = false;
	(void)deliverd_store_result(jt->rc, jt->err);
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
	struct janitor	*jt;

	if (janitor_running || D.stopping || !child_store_ready() ||
	    !store_healthy(D.store))
		return;
	jt = util_xcalloc(1, sizeof(*jt));
	jt->retention_ms = D.retention_ms;
	if (worker_submit(janitor_work, janitor_done, jt) != 0) {
		free(jt);
		return;
	}
	janitor_running = true;
}

static void
deliverd_released(void *arg)
{
	child_exit(0);
}

/* Leave: release every lease so a restart or a peer takes over at once. */
static void
deliverd_finish(void)
{
	static bool	 finishing;
	struct dsource	*s;

	if (finishing)
		return;
	finishing = true;
	queue_record_flush();
	while ((s = TAILQ_FIRST(&D.sources)) != NULL)
		deliverd_source_free(s);
	httpc_free(D.http);
	D.http = NULL;
	/* The framework exits anyway when the grace period is over. */
	partition_set_shutdown(D.parts, deliverd_released, NULL);
}

static void
deliverd_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	if (D.inflight > 0)
		log_info("%u POSTs still in flight at the end of the grace "
		    "period; their batches will be sent again with the same "
		    "ids", D.inflight);
	deliverd_finish();
}

static void
deliverd_timer_start(struct event **ev, event_callback_fn cb, int64_t ms,
    bool persist)
{
	struct timeval	tv;

	if (*ev != NULL)
		event_free(*ev);
	*ev = event_new(D.base, -1, persist ? EV_PERSIST : 0, cb, NULL);
	if (*ev == NULL)
		fatal("out of memory");
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	event_add(*ev, &tv);
}

/* Read the settings from cfg into D. 0 or -EINVAL. */
static int
deliverd_settings(const struct config *cfg, char *err, size_t errlen)
{
	int64_t	ages[16], maxage = 0;
	int	n, i;

	n = config_int_list(config_str(cfg, CONF_DELIVERY_RETRY_SCHEDULE),
	    D.sched, DELIVER_SCHEDULE_MAX);
	if (n <= 0) {
		snprintf(err, errlen, "delivery_retry_schedule: not a list "
		    "of seconds");
		return -EINVAL;
	}
	D.nsched = n;
	D.max_logs = config_int(cfg, CONF_DELIVERY_BATCH_MAX_LOGS);
	D.max_bytes = config_int(cfg, CONF_DELIVERY_BATCH_MAX_BYTES);
	D.linger_ms = config_int(cfg, CONF_DELIVERY_LINGER_MS);
	D.max_age_ms = config_int(cfg, CONF_DELIVERY_MAX_AGE) * 1000;
	D.dead_retention_ms = config_int(cfg,
	    CONF_DELIVERY_DEAD_LETTER_RETENTION) * 1000;
	D.timeout_ms = (long)config_int(cfg, CONF_DELIVERY_TIMEOUT) * 1000;
	D.max_conc = (unsigned)config_int(cfg, CONF_DELIVERY_MAX_CONCURRENCY);
	D.host_conc = (unsigned)config_int(cfg,
	    CONF_DELIVERY_HOST_CONCURRENCY);
	D.breaker_threshold = (unsigned)config_int(cfg,
	    CONF_DELIVERY_BREAKER_THRESHOLD);
	D.lease_ttl_ms = config_int(cfg, CONF_LEASE_TTL) * 1000;
	D.lease_renew_ms = config_int(cfg, CONF_LEASE_RENEW) * 1000;
	D.rescan_ms = config_int(cfg, CONF_RESCAN_INTERVAL) * 1000;
	D.allow_private = config_bool(cfg,
	    CONF_DELIVERY_ALLOW_PRIVATE_NETWORKS);
	n = config_int_list(config_str(cfg, CONF_FETCH_REREAD_AGES), ages,
	    (int)nitems(ages));
	for (i = 0; i < n; i++)
		if (ages[i] > maxage)
			maxage = ages[i];
	/* Past every re-read window, with a day to spare. */
	D.retention_ms = (maxage + config_int(cfg, CONF_FETCH_OVERLAP) +
	    86400) * 1000;
	return 0;
}

static int
deliverd_configure(const struct config *cfg, bool initial, char *err,
    size_t errlen)
{
	struct partition_conf pc;
	struct dsource	*s;
	const char	*inst;
	int		 rc;

	if ((rc = deliverd_settings(cfg, err, errlen)) != 0)
		return rc;
	TAILQ_FOREACH(s, &D.sources, entry)
		s->br.threshold = D.breaker_threshold;
	if (!initial) {
		deliverd_timer_start(&rescan_ev, deliverd_rescan_cb,
		    D.rescan_ms, true);
		partition_set_reconfigure(D.parts, D.lease_ttl_ms,
		    D.lease_renew_ms);
		if (config_int(cfg, CONF_PARTITION_COUNT) !=
		    partition_set_count(D.parts))
			log_notice("partition_count %lld takes effect at the "
			    "next start; keeping %d",
			    (long long)config_int(cfg, CONF_PARTITION_COUNT),
			    partition_set_count(D.parts));
		return 0;
	}
	if (crypto_init() != 0) {
		snprintf(err, errlen, "libgcrypt initialisation failed");
		return -EINVAL;
	}
	if ((rc = crypto_master_key_load(config_str(cfg,
	    CONF_CRYPTO_MASTER_KEY_FILE), D.key, D.keyid, err, errlen)) != 0)
		return rc;
	D.have_key = true;
	D.base = child_base();
	D.store = child_store();
	TAILQ_INIT(&D.sources);
	LIST_INIT(&D.hosts);
	/* auditrelayd passes its instance id (supervisor/instance.c). */
	inst = config_str(cfg, CONF_INSTANCE_ID);
	if (inst == NULL || *inst == '\0') {
		snprintf(err, errlen, "no instance_id in the configuration "
		    "from auditrelayd; it names this instance's leases");
		return -EINVAL;
	}
	if (strlen(inst) >= sizeof(D.instance)) {
		snprintf(err, errlen, "instance_id is longer than %zu bytes",
		    sizeof(D.instance) - 1);
		return -EINVAL;
	}
	util_strlcpy(D.instance, inst, sizeof(D.instance));
	if ((rc = worker_start(D.base)) != 0) {
		snprintf(err, errlen, "cannot start the store worker: %s",
		    strerror(-rc));
		return rc;
	}
	if ((D.http = httpc_new(D.base)) == NULL) {
		snprintf(err, errlen, "cannot create the HTTP client");
		return -ENOMEM;
	}
	memset(&pc, 0, sizeof(pc));
	pc.role = "deliver";
	pc.instance = D.instance;
	pc.count = (int)config_int(cfg, CONF_PARTITION_COUNT);
	pc.ttl_ms = D.lease_ttl_ms;
	pc.renew_ms = D.lease_renew_ms;
	pc.store_fn = deliverd_partition_store;
	D.parts = partition_set_new(D.base, D.store, &pc,
	    &deliverd_partition_ops, NULL, err, errlen);
	if (D.parts == NULL)
		return -ENOMEM;
	deliverd_timer_start(&rescan_ev, deliverd_rescan_cb, D.rescan_ms, true);
	deliverd_timer_start(&rescan_first_ev, deliverd_rescan_first_cb, 100,
	    false);
	deliverd_timer_start(&janitor_ev, deliverd_janitor_first_cb,
	    JANITOR_FIRST_MS, false);
	prune_start();
	deliverd_timer_start(&stats_ev, deliverd_stats_flush_cb,
	    STATS_FLUSH_MS, true);
	deliverd_timer_start(&load_ev, deliverd_load_all_cb,
	    QUEUE_LOAD_EVERY(D), true);
	log_info("delivering instance=%s private_networks=%s batch=%lld "
	    "logs/%lld bytes retry=%s max_age=%llds", D.instance,
	    D.allow_private ? "allowed" : "refused", (long long)D.max_logs,
	    (long long)D.max_bytes,
	    config_str(cfg, CONF_DELIVERY_RETRY_SCHEDULE),
	    (long long)D.max_age_ms / 1000);
	return 0;
}

static void
deliverd_dispatch(const Ar__Envelope *env)
{
	struct dsource	*s;

	switch (env->body_case) {
	case AR__ENVELOPE__BODY_SOURCE_CHANGED:
		s = deliverd_source_find(env->source_changed->source_id);
		if (s != NULL && env->source_changed->removed) {
			log_info("source=%s removed; its deliveries stop",
			    s->id);
			deliverd_source_free(s);
		} else if (s != NULL)
			s->reload = true;	/* replays, URL changes */
		if (rescan_ev != NULL)
			event_active(rescan_ev, EV_TIMEOUT, 0);
		break;
	case AR__ENVELOPE__BODY_BATCH_STORED: {
		const Ar__BatchStored *bs = env->batch_stored;

		if (bs == NULL || bs->source_id == NULL || bs->batch_id == NULL ||
		    strlen(bs->batch_id) >= 40)
			break;
		s = deliverd_source_find(bs->source_id);
		if (s == NULL) {
			if (rescan_ev != NULL)
				event_active(rescan_ev, EV_TIMEOUT, 0);
			break;
		}
		if (s->lease.held && s->ready)
			queue_hinted(s, bs->batch_id, bs->webhook_id,
			    bs->n_logs, bs->created_at, bs->body.data,
			    bs->body.len);
		else
			s->logs_dirty = true;
		deliverd_step(s);
		break;
	}
	case AR__ENVELOPE__BODY_LOGS_STORED:
		s = deliverd_source_find(env->logs_stored->source_id);
		if (s == NULL) {
			if (rescan_ev != NULL)
				event_active(rescan_ev, EV_TIMEOUT, 0);
			break;
		}
		s->logs_dirty = s->alerts_dirty = true;
		deliverd_step(s);
		break;
	default:
		log_debug("dropping message case=%d", (int)env->body_case);
		break;
	}
}

/* Janitor timer: first run, then every minute. */
static void
deliverd_janitor_first_cb(evutil_socket_t fd, short what, void *arg)
{
	deliverd_janitor_cb(fd, what, arg);
	deliverd_timer_start(&janitor2_ev, deliverd_janitor_cb,
	    JANITOR_EVERY_MS, true);
}

static void
deliverd_shutdown(unsigned grace_ms)
{
	struct timeval	tv;
	unsigned	wait = grace_ms > 500 ? grace_ms - 400 : grace_ms / 2;

	D.stopping = true;
	if (D.inflight == 0) {
		deliverd_finish();
		return;
	}
	log_info("waiting up to %ums for %u POSTs in flight", wait,
	    D.inflight);
	finish_ev = evtimer_new(D.base, deliverd_finish_cb, NULL);
	tv.tv_sec = wait / 1000;
	tv.tv_usec = (wait % 1000) * 1000;
	evtimer_add(finish_ev, &tv);
}

/* Indexes of the collections this daemon reads and writes. */
static int
deliverd_store_setup(struct store *st, char *err, size_t errlen)
{
	bson_t	*idx;
	int	 rc;

	idx = BCON_NEW("0", "{", "key", "{", "sourceId", BCON_INT32(1),
	    "state", BCON_INT32(1), "createdAt", BCON_INT32(1), "}",
	    "name", BCON_UTF8("sourceId_state_createdAt"), "}");
	rc = store_create_indexes(st, STORE_BATCHES, idx, err, errlen);
	bson_destroy(idx);
	if (rc != 0)
		return rc;
	idx = BCON_NEW("0", "{", "key", "{", "sourceId", BCON_INT32(1),
	    "state", BCON_INT32(1), "at", BCON_INT32(1), "}",
	    "name", BCON_UTF8("sourceId_state_at"), "}");
	rc = store_create_indexes(st, STORE_ALERTS, idx, err, errlen);
	bson_destroy(idx);
	if (rc != 0)
		return rc;
	return lease_setup_indexes(st, err, errlen);
}

static const struct child_ops deliverd_ops = {
	.daemon = AR__DAEMON__DAEMON_DELIVERD,
	.name = "auditrelay-deliverd",
	.summary = "auditrelay's deliverer: signed batches of pending logs "
	    "to each source's callback.",
	.configure = deliverd_configure,
	.dispatch = deliverd_dispatch,
	.shutdown = deliverd_shutdown,
	.store_setup = deliverd_store_setup,
};

int
main(int argc, char **argv)
{
	return child_main(argc, argv, &deliverd_ops);
}
