/*
 * GET /metrics in the Prometheus text format. Fetch and delivery counters
 * are whatever numeric fields fetcherd and deliverd keep in their stats
 * documents (<source>:<app> and <source>:deliver): each becomes
 * auditrelay_fetch_<field> / auditrelay_delivery_<field> with source (and
 * app) labels, so a new counter needs no change here.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "apid/apid.h"
#include "apid/http.h"
#include "apid/metrics.h"
#include "lib/child.h"
#include "lib/log.h"
#include "lib/store.h"
#include "lib/util.h"

struct sample {
	char	 name[96];
	char	 labels[200];
	double	 value;
};

struct samples {
	struct sample	*v;
	size_t		 n, cap;
};

static void
samples_add(struct samples *s, const char *name, const char *labels,
    double value)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		if (s->v == NULL)
			fatal("out of memory");
	}
	util_strlcpy(s->v[s->n].name, name, sizeof(s->v[s->n].name));
	util_strlcpy(s->v[s->n].labels, labels, sizeof(s->v[s->n].labels));
	s->v[s->n].value = value;
	s->n++;
}

static int
sample_cmp(const void *a, const void *b)
{
	const struct sample *x = a, *y = b;
	int	c = strcmp(x->name, y->name);

	return c != 0 ? c : strcmp(x->labels, y->labels);
}

/* Label value with \, " and newlines escaped, at most 64 chars. */
static void
metrics_escape(const char *in, char *out, size_t outlen)
{
	size_t	o = 0;

	for (; in != NULL && *in != '\0' && o + 3 < outlen && o < 64; in++) {
		if (*in == '\\' || *in == '"') {
			out[o++] = '\\';
			out[o++] = *in;
		} else if (*in == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else
			out[o++] = *in;
	}
	out[o] = '\0';
}

/* camelCase or odd characters into a snake_case metric name part. */
static void
metrics_snake(const char *in, char *out, size_t outlen)
{
	size_t	o = 0;

	for (; *in != '\0' && o + 2 < outlen; in++) {
		unsigned char c = (unsigned char)*in;

		if (isupper(c)) {
			if (o > 0 && out[o - 1] != '_')
				out[o++] = '_';
			out[o++] = (char)tolower(c);
		} else if (isalnum(c))
			out[o++] = (char)c;
		else if (o > 0 && out[o - 1] != '_')
			out[o++] = '_';
	}
	out[o] = '\0';
}

/* Numeric fields of every stats document. */
static int
metrics_stats(struct samples *s, mongoc_client_t *c)
{
	mongoc_collection_t	*col;
	mongoc_cursor_t		*cur;
	const bson_t		*d;
	bson_t			 q = BSON_INITIALIZER;
	bson_iter_t		 it;
	bson_error_t		 e;
	char			 src[80], app[80], labels[200], name[96];
	char			 snake[64];
	const char		*id, *colon;
	int			 rc = 0;

	col = store_coll(child_store(), c, STORE_STATS);
	cur = mongoc_collection_find_with_opts(col, &q, NULL, NULL);
	while (mongoc_cursor_next(cur, &d)) {
		bool deliver;

		if ((id = store_bson_str(d, "_id")) == NULL ||
		    (colon = strrchr(id, ':')) == NULL)
			continue;
		snprintf(labels, sizeof(labels), "%.*s", (int)(colon - id), id);
		metrics_escape(labels, src, sizeof(src));
		metrics_escape(colon + 1, app, sizeof(app));
		deliver = strcmp(colon + 1, "deliver") == 0;
		if (deliver)
			snprintf(labels, sizeof(labels), "source=\"%s\"", src);
		else
			snprintf(labels, sizeof(labels),
			    "source=\"%s\",app=\"%s\"", src, app);
		if (!bson_iter_init(&it, d))
			continue;
		while (bson_iter_next(&it)) {
			const char *k = bson_iter_key(&it);
			double v;

			if (strcmp(k, "epoch") == 0 || strcmp(k, "_id") == 0)
				continue;
			if (BSON_ITER_HOLDS_INT32(&it))
				v = bson_iter_int32(&it);
			else if (BSON_ITER_HOLDS_INT64(&it))
				v = (double)bson_iter_int64(&it);
			else if (BSON_ITER_HOLDS_DOUBLE(&it))
				v = bson_iter_double(&it);
			else
				continue;
			metrics_snake(k, snake, sizeof(snake));
			if (snake[0] == '\0')
				continue;
			if (strstr(snake, "_at") != NULL &&
			    strcmp(snake + strlen(snake) - 3, "_at") == 0) {
				/* A time in ms: export seconds. */
				snprintf(name, sizeof(name),
				    "auditrelay_%s_%s_seconds",
				    deliver ? "delivery" : "fetch", snake);
				v /= 1000.0;
			} else
				snprintf(name, sizeof(name), "auditrelay_%s_%s",
				    deliver ? "delivery" : "fetch", snake);
			samples_add(s, name, labels, v);
		}
	}
	if (mongoc_cursor_error(cur, &e))
		rc = -1;
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(col);
	bson_destroy(&q);
	return rc;
}

/* One sample per source: status, interval, last fetch/delivery times. */
static int
metrics_sources(struct samples *s, mongoc_client_t *c)
{
	mongoc_collection_t	*col;
	mongoc_cursor_t		*cur;
	const bson_t		*d;
	bson_t			 q = BSON_INITIALIZER;
	bson_error_t		 e;
	char			 src[80], labels[200];
	const char		*id, *colon, *st;
	int64_t			 npaused = 0, nsrc = 0;
	int			 rc = 0;

	col = store_coll(child_store(), c, STORE_SOURCES);
	cur = mongoc_collection_find_with_opts(col, &q, NULL, NULL);
	while (mongoc_cursor_next(cur, &d)) {
		nsrc++;
		if (store_bson_bool(d, "paused", false))
			npaused++;
		metrics_escape(store_bson_str(d, "_id"), src, sizeof(src));
		snprintf(labels, sizeof(labels), "source=\"%s\"", src);
		samples_add(s, "auditrelay_source_fetch_interval_seconds",
		    labels, (double)store_bson_int(d, "logFetchInterval", 0));
		samples_add(s, "auditrelay_source_paused", labels,
		    store_bson_bool(d, "paused", false) ? 1 : 0);
	}
	if (mongoc_cursor_error(cur, &e))
		rc = -1;
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(col);
	samples_add(s, "auditrelay_sources", "", (double)nsrc);
	samples_add(s, "auditrelay_sources_paused", "", (double)npaused);
	if (rc != 0)
		goto done;
	col = store_coll(child_store(), c, STORE_SOURCE_STATE);
	cur = mongoc_collection_find_with_opts(col, &q, NULL, NULL);
	while (mongoc_cursor_next(cur, &d)) {
		if ((id = store_bson_str(d, "_id")) == NULL ||
		    (colon = strrchr(id, ':')) == NULL)
			continue;
		snprintf(labels, sizeof(labels), "%.*s", (int)(colon - id), id);
		metrics_escape(labels, src, sizeof(src));
		st = store_bson_str(d, "status");
		if (strcmp(colon + 1, "fetch") == 0) {
			snprintf(labels, sizeof(labels), "source=\"%s\"", src);
			samples_add(s, "auditrelay_source_credentials_invalid",
			    labels, st != NULL &&
			    strcmp(st, "credentials_invalid") == 0 ? 1 : 0);
			if (store_bson_int(d, "lastFetchAt", 0) > 0)
				samples_add(s,
				    "auditrelay_source_last_fetch_timestamp_seconds",
				    labels, (double)store_bson_int(d,
				    "lastFetchAt", 0) / 1000.0);
		} else if (strcmp(colon + 1, "deliver") == 0) {
			snprintf(labels, sizeof(labels), "source=\"%s\"", src);
			samples_add(s, "auditrelay_source_callback_failing",
			    labels, st != NULL && strcmp(st, "ok") != 0 ? 1 : 0);
			samples_add(s,
			    "auditrelay_source_consecutive_delivery_failures",
			    labels, (double)store_bson_int(d,
			    "consecutiveFailures", 0));
			if (store_bson_int(d, "lastDeliveryAt", 0) > 0)
				samples_add(s,
				    "auditrelay_source_last_delivery_timestamp_seconds",
				    labels, (double)store_bson_int(d,
				    "lastDeliveryAt", 0) / 1000.0);
		}
	}
	if (mongoc_cursor_error(cur, &e))
		rc = -1;
	mongoc_cursor_destroy(cur);
	mongoc_collection_destroy(col);
done:
	bson_destroy(&q);
	return rc;
}

/* Daemons (from the supervisor's Health) and the API's own counters. */
static void
metrics_process(struct samples *s)
{
	static const char *const classes[] = { "", "1xx", "2xx", "3xx",
	    "4xx", "5xx" };
	static const char *const checks[] = { "ok", "refused",
	    "unreachable" };
	Ar__Health	*h = apid.health;
	char		 labels[128];
	size_t		 i;

	samples_add(s, "auditrelay_up", "", 1);
	samples_add(s, "auditrelay_store_up", "",
	    store_healthy(child_store()) ? 1 : 0);
	for (i = 0; h != NULL && i < h->n_children; i++) {
		Ar__ChildHealth	*c = h->children[i];

		snprintf(labels, sizeof(labels), "daemon=\"%s\"",
		    ipc_daemon_name(c->daemon));
		samples_add(s, "auditrelay_daemon_restarts_total", labels,
		    c->restarts);
		samples_add(s, "auditrelay_daemon_up", labels,
		    c->ready ? 1 : 0);
		samples_add(s, "auditrelay_daemon_store_ok", labels,
		    c->store_ok ? 1 : 0);
	}
	for (i = 1; i < nitems(classes); i++) {
		snprintf(labels, sizeof(labels), "code=\"%s\"", classes[i]);
		samples_add(s, "auditrelay_api_responses_total", labels,
		    (double)apid.responses[i]);
	}
	for (i = 0; i < nitems(checks); i++) {
		snprintf(labels, sizeof(labels), "result=\"%s\"", checks[i]);
		samples_add(s, "auditrelay_api_credential_checks_total",
		    labels, (double)apid.google_checks[i]);
	}
}

void
metrics_get(struct areq *a)
{
	struct samples	 s = { NULL, 0, 0 };
	struct evbuffer	*b;
	mongoc_client_t	*c;
	const char	*last = "";
	size_t		 i;
	bool		 ok = true;

	metrics_process(&s);
	if (store_healthy(child_store())) {
		c = store_pop(child_store());
		if (metrics_sources(&s, c) != 0 || metrics_stats(&s, c) != 0)
			ok = false;
		store_push(child_store(), c);
		child_store_result(ok, ok ? NULL : "metrics queries failed");
	}
	qsort(s.v, s.n, sizeof(*s.v), sample_cmp);
	if ((b = evbuffer_new()) == NULL)
		fatal("out of memory");
	for (i = 0; i < s.n; i++) {
		if (strcmp(last, s.v[i].name) != 0) {
			evbuffer_add_printf(b, "# TYPE %s %s\n", s.v[i].name,
			    strstr(s.v[i].name, "_total") != NULL ?
			    "counter" : "gauge");
			last = s.v[i].name;
		}
		if (s.v[i].labels[0] != '\0')
			evbuffer_add_printf(b, "%s{%s} %.17g\n", s.v[i].name,
			    s.v[i].labels, s.v[i].value);
		else
			evbuffer_add_printf(b, "%s %.17g\n", s.v[i].name,
			    s.v[i].value);
	}
	http_reply_typed(a, 200, "text/plain; version=0.0.4; charset=utf-8",
	    (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
	evbuffer_free(b);
	free(s.v);
}
