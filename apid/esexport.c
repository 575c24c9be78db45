/*
 * Optional export of the metrics and the alerts to Elasticsearch's _bulk
 * API, as ECS-shaped documents. Off unless elasticsearch_url is set.
 *
 * Every ESEXPORT_INTERVAL_S seconds one POST {url}/_bulk carries:
 *  - one metric document per stats document (source + application for
 *    fetcherd's, source for deliverd's) into <prefix>-metrics-YYYY.MM.DD,
 *    its _id "<source>:<app>:<YYYYMMDDhhmm>": the instances of a cluster
 *    exporting the same minute overwrite one another instead of adding
 *    duplicates;
 *  - the alerts stored since the last successful export (with a margin)
 *    into <prefix>-alerts, _id = the alert's id (idempotent).
 * A failure is logged once per change of state (and again when it works);
 * the next interval simply tries again. The documents are read and built
 * on a store worker thread (lib/store/worker.h; a full read of sources, states
 * and stats takes seconds at thousands of sources), the POST is sent from
 * the loop.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "apid/apid.h"
#include "apid/esexport.h"
#include "apid/metrics.h"
#include "apid/view.h"
#include "lib/base/json.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/crypto/crypto.h"
#include "lib/ipc/config.h"
#include "lib/net/httpc.h"
#include "lib/store/fstate.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

#define ESEXPORT_INTERVAL_S	  30
#define ESEXPORT_FIRST_S	  3    /* first export after start */
#define ESEXPORT_ALERTS_MAX	  1000 /* per export */
#define ESEXPORT_ALERTS_BACK_MS	  (24LL * 3600 * 1000) /* at start */
#define ESEXPORT_ALERTS_MARGIN_MS (5LL * 60 * 1000)    /* late inserts */

static struct {
	struct event	 *timer;
	struct httpc_req *req;	    /* export in flight */
	bool		  building; /* documents read on the worker */
	bool		  failing;  /* last export failed */
	bool		  ever_ok;
	int64_t		  alerts_since; /* export alerts with at >= this */
	int64_t		  alerts_next;	/* since, once this export works */
	int		  ndocs;
} es;

/* The URL without any user:password@, for logs. */
static void
esexport_url_for_log(const char *url, char *out, size_t outlen)
{
	const char *p = strstr(url, "://"), *at, *slash;

	if (p == NULL || (at = strchr(p + 3, '@')) == NULL ||
	    ((slash = strchr(p + 3, '/')) != NULL && slash < at)) {
		snprintf(out, outlen, "%s", url);
		return;
	}
	snprintf(out, outlen, "%.*s%s", (int)(p + 3 - url), url, at + 1);
}

/* "name_like_this" from "nameLikeThis". */
static void
esexport_snake(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	for (; *in != '\0' && o + 2 < outlen; in++) {
		if (*in >= 'A' && *in <= 'Z') {
			if (o > 0)
				out[o++] = '_';
			out[o++] = (char)(*in - 'A' + 'a');
		} else
			out[o++] = *in;
	}
	out[o] = '\0';
}

/* Append one NDJSON line (w's document) to b and free w. */
static int
esexport_line(struct evbuffer *b, struct jsonw *w)
{
	const char *p;
	size_t	    len;
	int	    rc = 0;

	if ((p = jsonw_buf(w, &len)) == NULL)
		rc = -EINVAL;
	else if (evbuffer_add(b, p, len) != 0 || evbuffer_add(b, "\n", 1) != 0)
		rc = -ENOMEM;
	jsonw_free(w);
	return rc;
}

/* The bulk action line {"index":{"_index":..,"_id":..}}. */
static int
esexport_action(struct evbuffer *b, const char *index, const char *id)
{
	struct jsonw *w;

	if ((w = jsonw_new()) == NULL)
		return -ENOMEM;
	jsonw_obj_open(w);
	jsonw_key(w, "index");
	jsonw_obj_open(w);
	jsonw_kv_str(w, "_index", index);
	jsonw_kv_str(w, "_id", id);
	jsonw_obj_close(w);
	jsonw_obj_close(w);
	return esexport_line(b, w);
}

/* ECS fields every document has, and event.{kind,module,dataset}. */
static void
esexport_common(struct jsonw *w, const char *ts, const char *kind,
    const char *dataset, const char *action, const char *id)
{
	jsonw_kv_str(w, "@timestamp", ts);
	jsonw_key(w, "ecs");
	jsonw_obj_open(w);
	jsonw_kv_str(w, "version", "8.11.0");
	jsonw_obj_close(w);
	jsonw_key(w, "event");
	jsonw_obj_open(w);
	jsonw_kv_str(w, "kind", kind);
	jsonw_kv_str(w, "module", "auditrelay");
	jsonw_kv_str(w, "dataset", dataset);
	if (action != NULL)
		jsonw_kv_str(w, "action", action);
	if (id != NULL)
		jsonw_kv_str(w, "id", id);
	jsonw_obj_close(w);
	jsonw_key(w, "service");
	jsonw_obj_open(w);
	jsonw_kv_str(w, "name", "auditrelay");
	jsonw_kv_str(w, "type", "auditrelay");
	jsonw_kv_str(w, "version", AR_VERSION);
	jsonw_obj_close(w);
}

/* One metric document from a stats document. */
static int
esexport_metric(struct evbuffer *b, const bson_t *d, const char *prefix,
    int64_t minute_ms, const struct views *vs)
{
	struct jsonw	  *w;
	struct tm	   tm;
	time_t		   t = (time_t)(minute_ms / 1000);
	bson_iter_t	   it;
	char		   index[200], id[300], ts[32], app[128], src[64];
	char		   key[64], when[16];
	const char	  *sid, *colon;
	const struct view *s;
	double		   p50, p99;
	bool		   deliver;
	int		   rc;

	if ((sid = store_bson_str(d, "_id")) == NULL ||
	    (colon = strrchr(sid, ':')) == NULL ||
	    (size_t)(colon - sid) >= sizeof(src))
		return 0;
	snprintf(src, sizeof(src), "%.*s", (int)(colon - sid), sid);
	util_strlcpy(app, colon + 1, sizeof(app));
	deliver = strcmp(app, "deliver") == 0;
	s = views_find(vs, src, strlen(src));
	gmtime_r(&t, &tm);
	snprintf(index, sizeof(index), "%s-metrics-%04d.%02d.%02d", prefix,
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	strftime(when, sizeof(when), "%Y%m%d%H%M", &tm);
	snprintf(id, sizeof(id), "%s:%s:%s", src, app, when);
	if ((rc = esexport_action(b, index, id)) != 0)
		return rc;
	if ((w = jsonw_new()) == NULL)
		return -ENOMEM;
	time_format_rfc3339_ms(minute_ms, ts);
	jsonw_obj_open(w);
	esexport_common(w, ts, "metric",
	    deliver ? "auditrelay.delivery" : "auditrelay.fetch", NULL, NULL);
	jsonw_key(w, "labels");
	jsonw_obj_open(w);
	jsonw_kv_str(w, "source_id", src);
	if (!deliver)
		jsonw_kv_str(w, "application", app);
	jsonw_obj_close(w);
	jsonw_key(w, "auditrelay");
	jsonw_obj_open(w);
	if (s != NULL) {
		jsonw_kv_str(w, "status", s->status);
		if (!deliver && s->last_fetch_ms > 0) {
			time_format_rfc3339_ms(s->last_fetch_ms, ts);
			jsonw_kv_str(w, "last_fetch", ts);
		}
		if (deliver && s->last_delivery_ms > 0) {
			time_format_rfc3339_ms(s->last_delivery_ms, ts);
			jsonw_kv_str(w, "last_delivery", ts);
		}
	}
	/* Every numeric counter of the stats document, snake_case. */
	if (bson_iter_init(&it, d)) {
		while (bson_iter_next(&it)) {
			const char *k = bson_iter_key(&it);

			if (strcmp(k, "epoch") == 0 ||
			    strcmp(k, "updatedAt") == 0 ||
			    strcmp(k, "cursor") == 0)
				continue;
			esexport_snake(k, key, sizeof(key));
			if (BSON_ITER_HOLDS_INT32(&it))
				jsonw_kv_int(w, key, bson_iter_int32(&it));
			else if (BSON_ITER_HOLDS_INT64(&it))
				jsonw_kv_int(w, key, bson_iter_int64(&it));
			else if (BSON_ITER_HOLDS_DOUBLE(&it)) {
				jsonw_key(w, key);
				jsonw_double(w, bson_iter_double(&it));
			}
		}
	}
	if (!deliver) {
		jsonw_kv_int(w, "late_recovered_reread",
		    metrics_array_sum(d, "lateRereads"));
		jsonw_kv_int(w, "rereads_done_total",
		    metrics_array_sum(d, "rereadsDone"));
		jsonw_key(w, "lag");
		jsonw_obj_open(w);
		jsonw_kv_int(w, "count", store_bson_int(d, "lag.count", 0));
		jsonw_kv_int(w, "sum_ms", store_bson_int(d, "lag.sumMs", 0));
		jsonw_kv_int(w, "max_ms", store_bson_int(d, "lag.maxMs", 0));
		if (metrics_lag(d, &p50, &p99)) {
			jsonw_kv_int(w, "p50_ms", (int64_t)(p50 * 1000));
			jsonw_kv_int(w, "p99_ms", (int64_t)(p99 * 1000));
		}
		jsonw_obj_close(w);
	}
	jsonw_obj_close(w);
	jsonw_obj_close(w);
	return esexport_line(b, w);
}

/* One alert document. */
static int
esexport_alert(struct evbuffer *b, const bson_t *d, const char *prefix)
{
	struct jsonw *w;
	char	      index[200], ts[32];
	const char   *id, *alert;
	int	      rc;

	if ((id = store_bson_str(d, "_id")) == NULL)
		return 0;
	alert = store_bson_str(d, "alert");
	snprintf(index, sizeof(index), "%s-alerts", prefix);
	if ((rc = esexport_action(b, index, id)) != 0)
		return rc;
	if ((w = jsonw_new()) == NULL)
		return -ENOMEM;
	time_format_rfc3339_ms(store_bson_int(d, "at", 0), ts);
	jsonw_obj_open(w);
	esexport_common(w, ts, "alert", "auditrelay.alert",
	    alert != NULL ? alert : "unknown", id);
	jsonw_kv_str(w, "message", store_bson_str(d, "message"));
	jsonw_key(w, "labels");
	jsonw_obj_open(w);
	jsonw_kv_str(w, "source_id", store_bson_str(d, "sourceId"));
	jsonw_obj_close(w);
	jsonw_key(w, "auditrelay");
	jsonw_obj_open(w);
	jsonw_kv_str(w, "alert", alert);
	jsonw_kv_str(w, "state", store_bson_str(d, "state"));
	jsonw_obj_close(w);
	jsonw_obj_close(w);
	return esexport_line(b, w);
}

/* One export's documents, read on a worker thread. */
struct es_job {
	struct evbuffer *b;
	char		 prefix[128]; /* the index prefix */
	int64_t		 now;
	int64_t		 since; /* alerts with at >= this */
	int64_t		 next;	/* since, once this export works */
	int		 ndocs;
	int		 rc;
};

/* What one export walks: the stats, then the alerts since the last. */
struct esbuild {
	struct evbuffer	   *b;
	const char	   *prefix;
	int64_t		    minute;
	const struct views *vs;
	struct es_job	   *j; /* ndocs, next */
	size_t		    nalerts;
	int64_t		    at; /* the last alert's */
};

static int
esexport_metric_one(const bson_t *d, void *arg)
{
	struct esbuild *eb = arg;
	int		rc;

	if ((rc = esexport_metric(eb->b, d, eb->prefix, eb->minute, eb->vs)) ==
	    0)
		eb->j->ndocs++;
	return rc;
}

static int
esexport_alert_one(const bson_t *d, void *arg)
{
	struct esbuild *eb = arg;
	int		rc;

	if ((rc = esexport_alert(eb->b, d, eb->prefix)) != 0)
		return rc;
	eb->j->ndocs++;
	eb->nalerts++;
	eb->at = store_bson_int(d, "at", 0);
	if (eb->at - ESEXPORT_ALERTS_MARGIN_MS > eb->j->next)
		eb->j->next = eb->at - ESEXPORT_ALERTS_MARGIN_MS;
	return 0;
}

/* Metric and alert documents into j->b (worker); -1 on a store error. */
static int
esexport_build(struct es_job *j)
{
	struct evbuffer	    *b = j->b;
	const char	    *prefix = j->prefix;
	int64_t		     now = j->now;
	mongoc_client_t	    *c;
	mongoc_collection_t *col;
	bson_t		    *aq, *opts;
	struct views	     vs;
	struct esbuild	     eb;
	char		     err[256];
	int		     rc = 0;

	j->ndocs = 0;
	c = store_pop(child_store());
	if (views_load(c, NULL, 0, &vs, err, sizeof(err)) != 0) {
		rc = -1;
		goto done;
	}
	memset(&eb, 0, sizeof(eb));
	eb.b = b;
	eb.prefix = prefix;
	eb.minute = now - now % 60000;
	eb.vs = &vs;
	eb.j = j;
	rc = dstate_each_stats(child_store(), esexport_metric_one, &eb, err,
	    sizeof(err));
	if (rc == 0)
		rc = fstate_each_stats(child_store(), esexport_metric_one, &eb,
		    err, sizeof(err));
	if (rc != 0) {
		rc = -1;
		goto done;
	}
	aq = BCON_NEW("at", "{", "$gte", BCON_INT64(j->since), "}");
	opts = BCON_NEW("sort", "{", "at", BCON_INT32(1), "}", "limit",
	    BCON_INT64(ESEXPORT_ALERTS_MAX));
	col = store_coll(child_store(), c, STORE_ALERTS);
	j->next = j->since;
	rc = store_each_in(col, aq, opts, esexport_alert_one, &eb, err,
	    sizeof(err));
	/* A full page: go on from its last alert, margin or not. */
	if (eb.nalerts == ESEXPORT_ALERTS_MAX && eb.at > j->next)
		j->next = eb.at;
	mongoc_collection_destroy(col);
	bson_destroy(aq);
	bson_destroy(opts);
	if (rc != 0)
		rc = -1;
done:
	store_push(child_store(), c);
	views_clear(&vs);
	return rc;
}

/* Log a failure once, until an export works again. */
static void
esexport_failed(const char *url, const char *why)
{
	char u[256];

	if (es.failing)
		return;
	es.failing = true;
	esexport_url_for_log(url, u, sizeof(u));
	log_warn("elasticsearch export to %s failed: %s; retrying every %ds", u,
	    why, ESEXPORT_INTERVAL_S);
}

static void
esexport_done(const struct httpc_resp *resp, void *arg)
{
	const char *url = config_str(child_config(), CONF_ELASTICSEARCH_URL);
	char	    why[300], u[256];
	const char *r;
	size_t	    n;

	es.req = NULL;
	if (resp->status == 0) {
		snprintf(why, sizeof(why), "%s",
		    resp->error[0] != '\0' ? resp->error : "no answer");
		esexport_failed(url, why);
		return;
	}
	if (resp->status < 200 || resp->status > 299 ||
	    (resp->body != NULL &&
		memmem(resp->body, resp->body_len < 256 ? resp->body_len : 256,
		    "\"errors\":true", 13) != NULL)) {
		/* The first reason ES gives, printable and short. */
		r = resp->body != NULL ? strstr(resp->body, "\"reason\":\"") :
					 NULL;
		if (r != NULL) {
			r += 10;
			for (n = 0; r[n] != '\0' && r[n] != '"' && n < 160 &&
			     r[n] >= 0x20 && r[n] < 0x7f;
			     n++)
				;
			snprintf(why, sizeof(why), "HTTP %ld: %.*s",
			    resp->status, (int)n, r);
		} else
			snprintf(why, sizeof(why), "HTTP %ld", resp->status);
		esexport_failed(url, why);
		return;
	}
	es.alerts_since = es.alerts_next;
	if (es.failing || !es.ever_ok) {
		esexport_url_for_log(url, u, sizeof(u));
		if (es.failing)
			log_notice("elasticsearch export to %s works again "
				   "(%d documents)",
			    u, es.ndocs);
		else
			log_info("elasticsearch export to %s works (%d "
				 "documents every %ds)",
			    u, es.ndocs, ESEXPORT_INTERVAL_S);
	}
	es.failing = false;
	es.ever_ok = true;
	log_debug("elasticsearch: %d documents exported", es.ndocs);
}

/* Worker: read the export's documents. */
static void
esexport_work(void *arg)
{
	struct es_job *j = arg;

	j->rc = esexport_build(j);
}

/* Loop: the documents are read; POST them. */
static void
esexport_built(void *arg)
{
	struct es_job	    *j = arg;
	const struct config *cfg = child_config();
	const char	    *url = config_str(cfg, CONF_ELASTICSEARCH_URL);
	const char	    *auth = config_str(cfg, CONF_ELASTICSEARCH_AUTH);
	struct httpc_opts    o;
	const char	    *hdrs[3];
	char		     full[1024], *authz = NULL, *b64 = NULL;
	size_t		     ulen;
	int		     rc;

	es.building = false;
	if (j->rc != 0) {
		child_store_result(false,
		    "elasticsearch export: store "
		    "queries failed");
		goto done;
	}
	es.ndocs = j->ndocs;
	es.alerts_next = j->next;
	if (evbuffer_get_length(j->b) == 0 || url == NULL || url[0] == '\0' ||
	    child_stopping())
		goto done;
	ulen = strlen(url);
	while (ulen > 0 && url[ulen - 1] == '/')
		ulen--;
	snprintf(full, sizeof(full), "%.*s/_bulk", (int)ulen, url);
	memset(&o, 0, sizeof(o));
	hdrs[0] = "Content-Type: application/x-ndjson";
	hdrs[1] = NULL;
	hdrs[2] = NULL;
	if (auth != NULL && auth[0] != '\0') {
		if ((b64 = b64_encode(auth, strlen(auth), false, true)) ==
			NULL ||
		    asprintf(&authz, "Authorization: Basic %s", b64) < 0)
			fatal("out of memory");
		hdrs[1] = authz;
	}
	o.method = "POST";
	o.url = full;
	o.headers = hdrs;
	o.body = evbuffer_pullup(j->b, -1);
	o.body_len = evbuffer_get_length(j->b);
	o.timeout_ms = 20000;
	o.max_body = 1024 * 1024;
	o.allow_private = true; /* Elasticsearch is usually internal */
	if ((rc = httpc_start(apid.httpc, &o, esexport_done, NULL, &es.req)) !=
	    0) {
		es.req = NULL;
		esexport_failed(url, strerror(-rc));
	}
done:
	if (authz != NULL)
		crypto_free_secret(authz, strlen(authz));
	if (b64 != NULL)
		crypto_free_secret(b64, strlen(b64));
	evbuffer_free(j->b);
	free(j);
}

static void
esexport_tick(evutil_socket_t fd, short what, void *arg)
{
	const struct config *cfg = child_config();
	const char	    *url = config_str(cfg, CONF_ELASTICSEARCH_URL);
	const char	    *prefix = config_str(cfg, CONF_ELASTICSEARCH_INDEX);
	struct timeval	     tv = { ESEXPORT_INTERVAL_S, 0 };
	struct es_job	    *j;

	evtimer_add(es.timer, &tv);
	if (url == NULL || url[0] == '\0' || es.req != NULL || es.building ||
	    child_stopping() || !store_healthy(child_store()))
		return;
	if (prefix == NULL || prefix[0] == '\0')
		prefix = "auditrelay";
	j = util_xcalloc(1, sizeof(*j));
	if ((j->b = evbuffer_new()) == NULL)
		fatal("out of memory");
	util_strlcpy(j->prefix, prefix, sizeof(j->prefix));
	j->now = util_now_ms();
	j->since = es.alerts_since;
	es.building = true;
	if (worker_submit(esexport_work, esexport_built, j) != 0) {
		es.building = false;
		evbuffer_free(j->b);
		free(j);
	}
}

void
esexport_start(void)
{
	struct timeval tv = { ESEXPORT_FIRST_S, 0 };

	if (es.timer != NULL)
		return;
	es.alerts_since = util_now_ms() - ESEXPORT_ALERTS_BACK_MS;
	if ((es.timer = evtimer_new(child_base(), esexport_tick, NULL)) == NULL)
		fatal("cannot create the elasticsearch timer");
	evtimer_add(es.timer, &tv);
}
