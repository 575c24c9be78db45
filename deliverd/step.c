/*
 * Delivery of a source's queue: deliverd_step() sends the batches that
 * are due within the concurrency limits (per callback host, overall, one
 * probe while the breaker is open); a POST's outcome (outcome.c) is
 * recorded (queue.c) and decides what happens next: delivered, retried
 * on the schedule, a dead letter, or the source paused by 410 Gone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliverd/deliverd.h"
#include "deliverd/send.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

#define DEAD_ALERT_EVERY_MS (10LL * 60 * 1000)
#define SEND_FAIL_DELAY_MS  5000

static struct httpc *http;
static LIST_HEAD(, dhost) hosts = LIST_HEAD_INITIALIZER(hosts);
static unsigned inflight; /* POSTs, all sources */

/* The HTTP client POSTs go through. 0 or -ENOMEM. */
int
deliverd_step_init(void)
{
	if ((http = httpc_new(child_base())) == NULL)
		return -ENOMEM;
	return 0;
}

/* POSTs in flight, all sources. */
unsigned
deliverd_inflight(void)
{
	return inflight;
}

/* Cancel the POST of b (its outcome is unknown; b stays pending). */
void
deliverd_step_cancel(struct dsource *s, struct dbatch *b)
{
	httpc_cancel(b->req);
	b->req = NULL;
	b->inflight = false;
	b->host->inflight--;
	s->inflight--;
	inflight--;
}

/* Leaving: no more POSTs. */
void
deliverd_step_stop(void)
{
	httpc_free(http);
	http = NULL;
}

/* The host entry for name, created on first use. */
static struct dhost *
deliverd_host(const char *name)
{
	struct dhost *h;

	LIST_FOREACH (h, &hosts, entry)
		if (strcmp(h->name, name) == 0)
			return h;
	h = util_xcalloc(1, sizeof(*h));
	util_strlcpy(h->name, name, sizeof(h->name));
	LIST_INSERT_HEAD(&hosts, h, entry);
	return h;
}

/* A short description of a failed attempt into out. */
static void
deliverd_describe(const struct httpc_resp *resp, char *out, size_t outlen)
{
	char   snippet[121];
	size_t i, n;

	if (resp->status == 0) {
		snprintf(out, outlen, "%s",
		    resp->error[0] != '\0' ? resp->error : "no answer");
		return;
	}
	n = resp->body_len < sizeof(snippet) - 1 ? resp->body_len :
						   sizeof(snippet) - 1;
	for (i = 0; i < n; i++)
		snippet[i] = (resp->body[i] >= 0x20 && resp->body[i] < 0x7f) ?
		    resp->body[i] :
		    ' ';
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
	int64_t now = util_now_ms();

	if (now - s->last_dead_alert < DEAD_ALERT_EVERY_MS)
		return;
	s->last_dead_alert = now;
	snprintf(msg, sizeof(msg),
	    "batch=%s (%lld logs) could not be "
	    "delivered after %u attempts (last: %s); dead letters are kept: "
	    "list them with GET /sources/%s/dead-letters and re-send them "
	    "with POST /sources/%s/dead-letters/replay",
	    b->id, (long long)b->nlogs, b->n_attempts, why, s->id, s->id);
	(void)alerts_raise(s, "dead_letter", msg);
}

/* Step every source held back by a concurrency limit, fairly. */
static void
deliverd_kick_waiting(void)
{
	struct dsource *s, *first;

	if ((first = TAILQ_FIRST(deliverd_sources())) != NULL) {
		/* Rotate so that no source always goes first. */
		TAILQ_REMOVE(deliverd_sources(), first, entry);
		TAILQ_INSERT_TAIL(deliverd_sources(), first, entry);
	}
	TAILQ_FOREACH (s, deliverd_sources(), entry) {
		if (inflight >= deliverd_conf()->max_conc)
			break;
		if (s->wait_slot)
			deliverd_step(s);
	}
}

/* A POST finished: record the outcome, decide what happens next. */
static void
deliverd_done_cb(const struct httpc_resp *resp, void *arg)
{
	struct dbatch	   *b = arg;
	struct dsource	   *s = b->src;
	enum deliver_result r;
	enum breaker_event  ev = BREAKER_NONE;
	int64_t		    now = util_now_ms(), delay, ra;
	unsigned	    attempts;
	char		    why[256];
	bool		    dead;

	b->inflight = false;
	b->req = NULL;
	b->host->inflight--;
	s->inflight--;
	inflight--;
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
			log_warn(
			    "source=%s batch=%s delivered but not "
			    "recorded (store); it will be sent again with the "
			    "same webhook-id",
			    s->id, b->id);
			s->reload = true;
			goto next;
		}
		/* Routine deliveries are debug; one after retries is news. */
		if (b->n_attempts > 1)
			log_info("source=%s batch=%s delivered logs=%lld "
				 "status=%ld after %u attempts",
			    s->id, b->id, (long long)b->nlogs, resp->status,
			    b->n_attempts);
		else
			log_debug("source=%s batch=%s delivered logs=%lld "
				  "status=%ld %lldms",
			    s->id, b->id, (long long)b->nlogs, resp->status,
			    (long long)resp->elapsed_ms);
		ev = breaker_success(&s->br, &attempts);
		if (ev == BREAKER_CLOSED)
			log_notice("source=%s callback resumed after %u "
				   "attempts; releasing the held queue",
			    s->id, attempts);
		s->last_delivery_at = now;
		s->last_error[0] = '\0';
		s->status = "ok";
		deliverd_stats_add(s, b->inline_body ? 0 : b->nlogs, 1, 0, 0);
		deliverd_source_state_write(s);
		queue_remove(s, b);
		break;
	case DELIVER_RETRY:
	case DELIVER_ERROR:
		b->n_fail++;
		if (r == DELIVER_ERROR)
			b->n_errors++;
		ra = (resp->status == 429 || resp->status == 503) ?
		    resp->retry_after_s :
		    -1;
		delay = deliver_retry_delay(deliverd_conf()->sched,
		    deliverd_conf()->nsched, b->n_fail, ra);
		dead = deliver_give_up(r, b->n_errors, now - b->age_base,
		    deliverd_conf()->max_age_ms, &delay);
		util_strlcpy(s->last_error, why, sizeof(s->last_error));
		if (r == DELIVER_RETRY) {
			ev = breaker_failure(&s->br, now);
			if (ev == BREAKER_OPENED) {
				s->status = "callback_failing";
				log_warn(
				    "source=%s callback down after %u "
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
				 "attempts (last: %s); kept for replay",
			    s->id, b->id, b->n_attempts, why);
			if (!b->inline_body)
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
					  "%s; next probe in %llds",
				    s->id, b->id, why,
				    (long long)(delay / 1000));
			else if (!s->br.open)
				log_info("source=%s batch=%s attempt %u "
					 "failed: %s; retrying in %llds",
				    s->id, b->id, b->n_attempts, why,
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
		(void)alerts_raise(s, "callback_gone",
		    "the callback answered "
		    "410 Gone; deliveries of this source are paused until its "
		    "callbackUrl changes");
		deliverd_stats_add(s, 0, 0, 1, 0);
		break;
	}
next:
	if (child_stopping()) {
		if (inflight == 0)
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
	struct send_params p;
	int		   rc;

	if (b->body == NULL) {
		/* Read on the worker first (queue_bodies_start). */
		s->want_bodies = true;
		return -EAGAIN;
	}
	memset(&p, 0, sizeof(p));
	p.url = s->url;
	p.webhook_id = b->webhook_id;
	p.secret = s->secret;
	p.prev_secret = s->prev_secret;
	p.prev_until = s->prev_until;
	p.body = b->body;
	p.body_len = b->body_len;
	p.timeout_ms = deliverd_conf()->timeout_ms;
	p.allow_private = deliverd_conf()->allow_private;
	rc = send_post(http, &p, deliverd_done_cb, b, &b->req);
	if (rc != 0) {
		log_err("source=%s batch=%s cannot start the POST: %s; "
			"retrying in %ds",
		    s->id, b->id, strerror(-rc), SEND_FAIL_DELAY_MS / 1000);
		b->next_at = util_now_ms() + SEND_FAIL_DELAY_MS;
		return rc;
	}
	b->inflight = true;
	b->host = host;
	host->inflight++;
	s->inflight++;
	inflight++;
	log_debug("source=%s batch=%s POST webhook-id=%s bytes=%zu attempt=%u",
	    s->id, b->id, b->webhook_id, b->body_len, b->n_attempts + 1);
	queue_body_trim(b); /* sent: read again if it must go again */
	return 0;
}

/*
 * Advance s: build batches when there is room, send what is due within
 * the concurrency limits (one probe at a time while the breaker is open),
 * and arm the timer for the next thing to do.
 */
void
deliverd_step(struct dsource *s)
{
	struct dbatch *b;
	struct dhost  *host;
	int64_t	       now = util_now_ms(), wake = 0;
	unsigned       window;

	if (child_stopping() || !child_store_ready() ||
	    !store_healthy(child_store()))
		return;
	if (!lease_valid(&s->lease) || !s->ready || s->paused || s->gone ||
	    s->secret == NULL || s->url == NULL || s->handover)
		return;
	window = breaker_window(&s->br, deliverd_conf()->host_conc);
	/* New batches from fetcherd (hinted), replays, other holders. */
	if (!s->busy && (s->reload || s->logs_dirty)) {
		s->reload = s->logs_dirty = false;
		(void)queue_load_start(s);
	}
	if (!s->br.open && s->alerts_dirty && !s->busy)
		(void)queue_alerts_start(s);
	s->wait_slot = false;
	s->want_bodies = false;
	host = deliverd_host(s->hostname);
	TAILQ_FOREACH (b, &s->queue, entry) {
		if (b->inflight)
			continue;
		if (s->br.open && s->inflight > 0)
			break;
		if (b->next_at > now) {
			if (wake == 0 || b->next_at < wake)
				wake = b->next_at;
			if (s->br.open)
				break; /* the head is the probe */
			continue;
		}
		if (s->inflight >= window)
			break;
		if (host->inflight >= deliverd_conf()->host_conc ||
		    inflight >= deliverd_conf()->max_conc) {
			s->wait_slot = true;
			break;
		}
		if (deliverd_send(s, b, host) != 0) {
			if (s->want_bodies)
				continue; /* the others may have theirs */
			if (wake == 0 || b->next_at < wake)
				wake = b->next_at;
		}
	}
	if (s->want_bodies) {
		int64_t later = queue_bodies_start(s); /* stepped when in */

		if (later > 0 && (wake == 0 || later < wake))
			wake = later;
	}
	deliverd_source_wake(s, wake);
}

void
deliverd_source_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	deliverd_step(arg);
}
