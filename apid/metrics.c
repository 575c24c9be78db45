/*
 * GET /metrics in the Prometheus text format (version 0.0.4), every family
 * with HELP and TYPE, checked by `promtool check metrics` in CI
 * (tests/system/test_observability.py).
 *
 * Per source and application: the counters fetcherd keeps in its stats
 * documents (<source>:<app>), the lag summary estimated from its lag
 * histogram; per source: deliverd's counters (<source>:deliver), the
 * status and the last fetch/delivery times (source_state); per daemon:
 * the supervisor's last Health snapshot. A numeric stats field this file
 * does not know is still exported, as a gauge auditrelay_fetch_<field> /
 * auditrelay_delivery_<field>, so a new counter is visible at once.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "apid/apid.h"
#include "apid/backfill.h"
#include "apid/http.h"
#include "apid/metrics.h"
#include "apid/view.h"
#include "apid/watermark.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/fstate.h"
#include "lib/store/store.h"
#include "runtime/child.h"

#define METRICS_LAG_BUCKETS_MAX 16

enum mtype {
	M_GAUGE,
	M_COUNTER,
	M_SUMMARY
};

struct sample {
	char	   family[96];
	char	   name[112]; /* family or family_sum/_count */
	char	   labels[256];
	char	   help[160];
	enum mtype type;
	double	   value;
	size_t	   seq;
};

struct samples {
	struct sample *v;
	size_t	       n, cap;
};

/* A known stats field: where it goes and what it means. */
struct field {
	const char *key;
	const char *family;
	enum mtype  type;
	double	    scale;
	const char *help;
};

static const struct field fetch_fields[] = {
	{ "eventsFetched", "auditrelay_fetch_events_fetched_total", M_COUNTER,
	    1, "Events read from Google (new and already stored)." },
	{ "eventsStored", "auditrelay_fetch_events_stored_total", M_COUNTER, 1,
	    "New events stored (each delivered once)." },
	{ "duplicates", "auditrelay_fetch_duplicates_total", M_COUNTER, 1,
	    "Events read again and absorbed by the de-duplication." },
	{ "errorLogs", "auditrelay_fetch_error_events_total", M_COUNTER, 1,
	    "Stored events that could not be normalized (sent with an error)." },
	{ "truncatedLogs", "auditrelay_fetch_truncated_events_total", M_COUNTER,
	    1,
	    "Stored events over the size cap, delivered "
	    "truncated (details {}, raw null, originalBytes)." },
	{ "schemaDrift", "auditrelay_fetch_schema_drift_total", M_COUNTER, 1,
	    "Event and parameter names first seen after the baseline "
	    "(each a schema_drift alert, within the hourly cap)." },
	{ "pages", "auditrelay_fetch_pages_total", M_COUNTER, 1,
	    "Pages read from the Reports API." },
	{ "windows", "auditrelay_fetch_windows_total", M_COUNTER, 1,
	    "Time windows read completely (main and re-reads)." },
	{ "rereadsPending", "auditrelay_fetch_rereads_pending", M_GAUGE, 1,
	    "Windows waiting for a growing-age re-read." },
	{ "cursor", "auditrelay_fetch_cursor_timestamp_seconds", M_GAUGE, 1e-3,
	    "End of the last window read completely." },
};

static const struct field deliver_fields[] = {
	{ "deliveredLogs", "auditrelay_delivery_logs_total", M_COUNTER, 1,
	    "Logs delivered (2xx from the callback)." },
	{ "deliveredBatches", "auditrelay_delivery_batches_total", M_COUNTER, 1,
	    "Batches delivered (2xx from the callback)." },
	{ "failedAttempts", "auditrelay_delivery_batches_retried_total",
	    M_COUNTER, 1,
	    "Failed POSTs of a batch: each is retried later or "
	    "ends as a dead letter." },
	{ "deadBatches", "auditrelay_delivery_dead_letters_total", M_COUNTER, 1,
	    "Batches given up on (dead letters)." },
	{ "deadLettersPruned", "auditrelay_delivery_dead_letters_pruned_total",
	    M_COUNTER, 1,
	    "Dead letters deleted with their logs past "
	    "delivery_dead_letter_retention." },
};

/* Fields read elsewhere in this file or of no use as a metric. */
static const char *const skip_fields[] = { "_id", "epoch", "updatedAt",
	"sourceId", "app", "lateOverlap" };

static void
samples_add(struct samples *s, const char *family, const char *suffix,
    enum mtype type, const char *help, const char *labels, double value)
{
	struct sample *x;

	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 128;
		s->v = util_xreallocarray(s->v, s->cap, sizeof(*s->v));
	}
	x = &s->v[s->n];
	util_strlcpy(x->family, family, sizeof(x->family));
	snprintf(x->name, sizeof(x->name), "%s%s", family, suffix);
	util_strlcpy(x->labels, labels, sizeof(x->labels));
	util_strlcpy(x->help, help, sizeof(x->help));
	x->type = type;
	x->value = value;
	x->seq = s->n++;
}

static void
samples_gauge(struct samples *s, const char *family, const char *help,
    const char *labels, double value)
{
	samples_add(s, family, "", M_GAUGE, help, labels, value);
}

static void
samples_counter(struct samples *s, const char *family, const char *help,
    const char *labels, double value)
{
	samples_add(s, family, "", M_COUNTER, help, labels, value);
}

static int
sample_cmp(const void *a, const void *b)
{
	const struct sample *x = a, *y = b;
	int		     c;

	if ((c = strcmp(x->family, y->family)) != 0)
		return c;
	if ((c = strcmp(x->labels, y->labels)) != 0)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Label value with \, " and newlines escaped, at most 64 chars. */
static void
metrics_escape(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

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
	size_t o = 0;

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
	while (o > 0 && out[o - 1] == '_')
		o--;
	out[o] = '\0';
}

static bool
metrics_number(bson_iter_t *it, double *v)
{
	if (BSON_ITER_HOLDS_INT32(it))
		*v = bson_iter_int32(it);
	else if (BSON_ITER_HOLDS_INT64(it))
		*v = (double)bson_iter_int64(it);
	else if (BSON_ITER_HOLDS_DOUBLE(it))
		*v = bson_iter_double(it);
	else
		return false;
	return true;
}

/* Up to max numbers of the array at dotkey; returns how many. */
static size_t
metrics_array(const bson_t *d, const char *dotkey, double *out, size_t max)
{
	bson_iter_t it, sub;
	size_t	    n = 0;

	if (!bson_iter_init(&it, d) ||
	    !bson_iter_find_descendant(&it, dotkey, &sub) ||
	    !BSON_ITER_HOLDS_ARRAY(&sub) || !bson_iter_recurse(&sub, &it))
		return 0;
	while (n < max && bson_iter_next(&it))
		if (metrics_number(&it, &out[n]))
			n++;
	return n;
}

/*
 * Quantile q of the lag histogram in seconds: linear within the bucket
 * holding the rank, the open last bucket capped by the maximum seen.
 * NAN when nothing was observed.
 */
static double
metrics_lag_quantile(const double *bounds, size_t nbounds, const double *counts,
    size_t ncounts, double maxms, double q)
{
	double total = 0, cum = 0, rank, lo, hi;
	size_t i;

	for (i = 0; i < ncounts; i++)
		total += counts[i];
	if (total <= 0)
		return NAN;
	rank = q * total;
	for (i = 0; i < ncounts; i++) {
		if (cum + counts[i] >= rank && counts[i] > 0)
			break;
		cum += counts[i];
	}
	if (i == ncounts)
		i = ncounts - 1;
	lo = i == 0 ? 0 : (i - 1 < nbounds ? bounds[i - 1] : maxms);
	hi = i < nbounds ? bounds[i] : maxms;
	if (maxms > 0 && hi > maxms)
		hi = maxms;
	if (hi < lo)
		hi = lo;
	return (lo + (hi - lo) * (rank - cum) / counts[i]) / 1000.0;
}

bool
metrics_lag(const bson_t *d, double *p50, double *p99)
{
	double bounds[METRICS_LAG_BUCKETS_MAX], counts[METRICS_LAG_BUCKETS_MAX];
	double maxms = (double)store_bson_int(d, "lag.maxMs", 0);
	size_t nb, nc;

	nb = metrics_array(d, "lag.bucketBoundsMs", bounds, nitems(bounds));
	nc = metrics_array(d, "lag.buckets", counts, nitems(counts));
	if (nc == 0)
		return false;
	*p50 = metrics_lag_quantile(bounds, nb, counts, nc, maxms, 0.5);
	*p99 = metrics_lag_quantile(bounds, nb, counts, nc, maxms, 0.99);
	return !isnan(*p50) && !isnan(*p99);
}

int64_t
metrics_array_sum(const bson_t *d, const char *dotkey)
{
	double v[METRICS_LAG_BUCKETS_MAX], sum = 0;
	size_t n, i;

	n = metrics_array(d, dotkey, v, nitems(v));
	for (i = 0; i < n; i++)
		sum += v[i];
	return (int64_t)sum;
}

/* The lag summary and late-event counters of one fetch stats document. */
static void
metrics_fetch_extra(struct samples *s, const bson_t *d, const char *labels)
{
	static const char lag_help
	    [] = "Time from an event to auditrelay "
		 "first seeing it (p50/p99 estimated from a histogram).";
	static const char late_help
	    [] = "Late events recovered: found by "
		 "the overlap before the cursor or by a growing-age re-read.";
	double bounds[METRICS_LAG_BUCKETS_MAX], counts[METRICS_LAG_BUCKETS_MAX];
	double v[METRICS_LAG_BUCKETS_MAX], sum = 0, maxms;
	char   l[300];
	size_t nb, nc, i;

	nb = metrics_array(d, "lag.bucketBoundsMs", bounds, nitems(bounds));
	nc = metrics_array(d, "lag.buckets", counts, nitems(counts));
	maxms = (double)store_bson_int(d, "lag.maxMs", 0);
	if (nc > 0) {
		snprintf(l, sizeof(l), "%s,quantile=\"0.5\"", labels);
		samples_add(s, "auditrelay_fetch_lag_seconds", "", M_SUMMARY,
		    lag_help, l,
		    metrics_lag_quantile(bounds, nb, counts, nc, maxms, 0.5));
		snprintf(l, sizeof(l), "%s,quantile=\"0.99\"", labels);
		samples_add(s, "auditrelay_fetch_lag_seconds", "", M_SUMMARY,
		    lag_help, l,
		    metrics_lag_quantile(bounds, nb, counts, nc, maxms, 0.99));
		samples_add(s, "auditrelay_fetch_lag_seconds", "_sum",
		    M_SUMMARY, lag_help, labels,
		    (double)store_bson_int(d, "lag.sumMs", 0) / 1000.0);
		samples_add(s, "auditrelay_fetch_lag_seconds", "_count",
		    M_SUMMARY, lag_help, labels,
		    (double)store_bson_int(d, "lag.count", 0));
		samples_gauge(s, "auditrelay_fetch_lag_max_seconds",
		    "Largest lag seen.", labels, maxms / 1000.0);
	}
	snprintf(l, sizeof(l), "%s,via=\"overlap\"", labels);
	samples_counter(s, "auditrelay_fetch_late_recovered_total", late_help,
	    l, (double)store_bson_int(d, "lateOverlap", 0));
	nc = metrics_array(d, "lateRereads", v, nitems(v));
	for (i = 0; i < nc; i++)
		sum += v[i];
	snprintf(l, sizeof(l), "%s,via=\"reread\"", labels);
	samples_counter(s, "auditrelay_fetch_late_recovered_total", late_help,
	    l, sum);
	nc = metrics_array(d, "rereadsDone", v, nitems(v));
	for (sum = 0, i = 0; i < nc; i++)
		sum += v[i];
	samples_counter(s, "auditrelay_fetch_rereads_total",
	    "Growing-age re-reads done.", labels, sum);
}

/* One stats document: its numeric fields as samples. */
static int
metrics_stats_one(const bson_t *d, void *arg)
{
	struct samples	   *s = arg;
	const struct field *fields;
	bson_iter_t	    it;
	char		    src[80], app[80], labels[200], name[96];
	char		    snake[64], help[160];
	const char	   *id, *colon;
	size_t		    nfields, i;
	bool		    deliver;

	if ((id = store_bson_str(d, "_id")) == NULL ||
	    (colon = strrchr(id, ':')) == NULL)
		return 0;
	snprintf(labels, sizeof(labels), "%.*s", (int)(colon - id), id);
	metrics_escape(labels, src, sizeof(src));
	metrics_escape(colon + 1, app, sizeof(app));
	deliver = strcmp(colon + 1, "deliver") == 0;
	if (deliver) {
		snprintf(labels, sizeof(labels), "source=\"%s\"", src);
		fields = deliver_fields;
		nfields = nitems(deliver_fields);
	} else {
		snprintf(labels, sizeof(labels), "source=\"%s\",app=\"%s\"",
		    src, app);
		fields = fetch_fields;
		nfields = nitems(fetch_fields);
		metrics_fetch_extra(s, d, labels);
	}
	if (!bson_iter_init(&it, d))
		return 0;
	while (bson_iter_next(&it)) {
		const char *k = bson_iter_key(&it);
		double	    v;

		for (i = 0; i < nitems(skip_fields); i++)
			if (strcmp(k, skip_fields[i]) == 0)
				break;
		if (i < nitems(skip_fields) || !metrics_number(&it, &v))
			continue;
		for (i = 0; i < nfields; i++)
			if (strcmp(k, fields[i].key) == 0)
				break;
		if (i < nfields) {
			samples_add(s, fields[i].family, "", fields[i].type,
			    fields[i].help, labels, v * fields[i].scale);
			continue;
		}
		/* Unknown: a gauge named after the field. */
		metrics_snake(k, snake, sizeof(snake));
		if (snake[0] == '\0' || isdigit((unsigned char)snake[0]))
			continue;
		snprintf(name, sizeof(name), "auditrelay_%s_%s",
		    deliver ? "delivery" : "fetch", snake);
		snprintf(help, sizeof(help),
		    "Field %s of %s's stats "
		    "documents.",
		    k, deliver ? "deliverd" : "fetcherd");
		if (strlen(name) > 6 &&
		    strcmp(name + strlen(name) - 6, "_total") == 0)
			samples_counter(s, name, help, labels, v);
		else
			samples_gauge(s, name, help, labels, v);
	}
	return 0;
}

/*
 * Numeric fields of every stats document: fetcherd's counters in the
 * fetch state, deliverd's in the delivery state (fstate.h).
 */
static int
metrics_stats(struct samples *s, mongoc_client_t *c)
{
	char err[256];

	(void)c;
	if (dstate_each_stats(child_store(), metrics_stats_one, s, err,
		sizeof(err)) != 0 ||
	    fstate_each_stats(child_store(), metrics_stats_one, s, err,
		sizeof(err)) != 0)
		return -1;
	return 0;
}

/*
 * Per source (the view: sources joined with source_state): interval,
 * paused, status, credentials and callback trouble, last fetch and
 * delivery times.
 */
/* The watermark of each application of v that has one (watermark.h). */
static void
metrics_watermarks(struct samples *s, const struct view *v,
    const struct wm_holds *h)
{
	bson_iter_t it, sub;
	char	    src[80], app[80], labels[200];
	int64_t	    now = util_now_ms();

	if (!bson_iter_init_find(&it, v->src, "applications") ||
	    !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &sub))
		return;
	metrics_escape(v->id, src, sizeof(src));
	while (bson_iter_next(&sub)) {
		struct wm m;

		if (!BSON_ITER_HOLDS_UTF8(&sub))
			continue;
		m = wm_of(v, bson_iter_utf8(&sub, NULL), h);
		if (m.through_ms <= 0)
			continue;
		metrics_escape(bson_iter_utf8(&sub, NULL), app, sizeof(app));
		snprintf(labels, sizeof(labels),
		    "source=\"%s\",application=\"%s\"", src, app);
		samples_gauge(s, "auditrelay_watermark_timestamp_seconds",
		    "Every event up to this time has been delivered, as far "
		    "as the re-reads can know.",
		    labels, (double)m.through_ms / 1000.0);
		samples_gauge(s, "auditrelay_watermark_behind_seconds",
		    "How far the watermark is behind real time.", labels,
		    (double)(now - m.through_ms) / 1000.0);
	}
}

static int
metrics_sources(struct samples *s, mongoc_client_t *c)
{
	struct views	   vs;
	struct wm_holds	   holds;
	const struct view *v;
	char		   src[80], labels[200], err[256];
	size_t		   i, j;
	int64_t		   npaused = 0;
	int		   rc;
	bool		   holds_ok;

	if ((rc = views_load(c, NULL, 0, &vs, err, sizeof(err))) != 0) {
		views_clear(&vs);
		return rc;
	}
	/* After the states (watermark.h); without them, no watermark. */
	holds_ok = apid_wm_holds_load(c, NULL, &holds, err, sizeof(err)) == 0;
	for (i = 0; i < vs.n; i++) {
		v = &vs.v[i];
		if (v->paused)
			npaused++;
		metrics_watermarks(s, v, holds_ok ? &holds : NULL);
		metrics_escape(v->id, src, sizeof(src));
		snprintf(labels, sizeof(labels), "source=\"%s\"", src);
		samples_gauge(s, "auditrelay_source_fetch_interval_seconds",
		    "Configured logFetchInterval.", labels,
		    (double)store_bson_int(v->src, "logFetchInterval", 0));
		samples_gauge(s, "auditrelay_source_paused",
		    "1 if the source is paused.", labels, v->paused ? 1 : 0);
		if (v->fetch != NULL) {
			samples_gauge(s,
			    "auditrelay_source_credentials_invalid",
			    "1 if Google refuses the source's credentials.",
			    labels, v->creds_invalid ? 1 : 0);
			if (v->last_fetch_ms > 0)
				samples_gauge(s,
				    "auditrelay_source_last_fetch_timestamp_seconds",
				    "Time of the last successful fetch.",
				    labels, (double)v->last_fetch_ms / 1000.0);
		}
		if (v->deliver != NULL) {
			samples_gauge(s, "auditrelay_source_callback_failing",
			    "1 if deliveries to the callback fail.", labels,
			    v->deliver_failing ? 1 : 0);
			samples_gauge(s,
			    "auditrelay_source_consecutive_delivery_failures",
			    "Failed POSTs since the last success.", labels,
			    (double)store_bson_int(v->deliver,
				"consecutiveFailures", 0));
			if (v->last_delivery_ms > 0)
				samples_gauge(s,
				    "auditrelay_source_last_delivery_timestamp_seconds",
				    "Time of the last successful delivery.",
				    labels,
				    (double)v->last_delivery_ms / 1000.0);
		}
		for (j = 0; j < VIEW_NSTATUS; j++) {
			snprintf(labels, sizeof(labels),
			    "source=\"%s\",status=\"%s\"", src,
			    view_statuses[j]);
			samples_gauge(s, "auditrelay_source_status",
			    "1 for the source's current status (as the API "
			    "reports it), 0 for the others.",
			    labels, v->status == view_statuses[j] ? 1 : 0);
		}
	}
	samples_gauge(s, "auditrelay_sources", "Sources configured.", "",
	    (double)vs.n);
	samples_gauge(s, "auditrelay_sources_paused", "Sources paused.", "",
	    (double)npaused);
	views_clear(&vs);
	wm_holds_free(&holds);
	return 0;
}

/*
 * Backfill requests by state, and each one's progress (labelled by its
 * id: a source has at most BACKFILL_MAX, and a finished one goes with its
 * DELETE).
 */
static int
metrics_backfills(struct samples *s)
{
	static const char *const states[] = { "queued", "running", "done" };
	static const char *const families[BACKFILL_NCOUNTERS] = {
		"auditrelay_backfill_windows_total",
		"auditrelay_backfill_pages_total",
		"auditrelay_backfill_events_fetched_total",
		"auditrelay_backfill_events_stored_total",
		"auditrelay_backfill_duplicates_total",
	};
	static const char *const helps[BACKFILL_NCOUNTERS] = {
		"Windows of the backfill read and stored.",
		"Pages of the backfill read.",
		"Events the backfill read from Google.",
		"Events the backfill stored (new to this source).",
		"Events the backfill read that were already stored.",
	};
	struct bf_list	   l;
	struct bf_progress p;
	double		   count[nitems(states)] = { 0 };
	char		   src[80], app[80], bid[80], labels[300], err[256];
	size_t		   i, j;

	if (backfill_load(NULL, &l, err, sizeof(err)) != 0) {
		log_warn("metrics: backfills: %s", err);
		return -EIO;
	}
	for (i = 0; i < l.n; i++) {
		backfill_progress(l.reqs[i], l.progs[i], &p);
		for (j = 0; j < nitems(states); j++)
			if (strcmp(p.state, states[j]) == 0)
				count[j]++;
		metrics_escape(store_bson_str(l.reqs[i], "sourceId"), src,
		    sizeof(src));
		metrics_escape(store_bson_str(l.reqs[i], "application"), app,
		    sizeof(app));
		metrics_escape(store_bson_str(l.reqs[i], "_id"), bid,
		    sizeof(bid));
		snprintf(labels, sizeof(labels),
		    "source=\"%s\",app=\"%s\",backfill=\"%s\"", src, app, bid);
		samples_gauge(s, "auditrelay_backfill_progress_ratio",
		    "Share of the backfill's time range read and stored (1: "
		    "done).",
		    labels, p.ratio);
		if (l.progs[i] != NULL)
			samples_gauge(s,
			    "auditrelay_backfill_read_through_timestamp_seconds",
			    "Every event of the backfill's range before this "
			    "time is read and stored.",
			    labels, (double)p.next / 1000.0);
		if (p.eta_s >= 0)
			samples_gauge(s, "auditrelay_backfill_eta_seconds",
			    "Estimated time until the backfill is done.",
			    labels, (double)p.eta_s);
		for (j = 0; j < BACKFILL_NCOUNTERS; j++)
			samples_counter(s, families[j], helps[j], labels,
			    (double)p.counters[j]);
	}
	for (j = 0; j < nitems(states); j++) {
		snprintf(labels, sizeof(labels), "state=\"%s\"", states[j]);
		samples_gauge(s, "auditrelay_backfills",
		    "Backfill requests by state.", labels, count[j]);
	}
	backfill_list_free(&l);
	return 0;
}

/* Daemons (from the supervisor's Health) and the API's own counters. */
static void
metrics_process(struct samples *s)
{
	static const char *const classes[] = { "", "1xx", "2xx", "3xx", "4xx",
		"5xx" };
	static const char *const checks[] = { "ok", "refused", "unreachable" };
	Ar__Health		*h = apid.health;
	char			 labels[128];
	size_t			 i;

	samples_gauge(s, "auditrelay_up", "1 while the API answers.", "", 1);
	snprintf(labels, sizeof(labels), "version=\"%s\"", AR_VERSION);
	samples_gauge(s, "auditrelay_build_info", "auditrelay's version.",
	    labels, 1);
	samples_gauge(s, "auditrelay_api_start_timestamp_seconds",
	    "When this instance's API started.", "",
	    (double)apid.started_ms / 1000.0);
	samples_gauge(s, "auditrelay_store_up",
	    "1 if the API reaches the store.", "",
	    store_healthy(child_store()) ? 1 : 0);
	samples_gauge(s, "auditrelay_api_store_work_pending",
	    "API requests waiting for or running store work.", "",
	    (double)http_work_pending());
	samples_counter(s, "auditrelay_api_busy_total",
	    "API requests refused (503) because too many were waiting for "
	    "the store.",
	    "", (double)apid.work_refused);
	for (i = 0; h != NULL && i < h->n_children; i++) {
		Ar__ChildHealth *c = h->children[i];

		snprintf(labels, sizeof(labels), "daemon=\"%s\"",
		    ipc_daemon_name(c->daemon));
		samples_counter(s, "auditrelay_daemon_restarts_total",
		    "Restarts of the daemon by auditrelayd.", labels,
		    c->restarts);
		samples_gauge(s, "auditrelay_daemon_up",
		    "1 if the daemon is ready.", labels, c->ready ? 1 : 0);
		samples_gauge(s, "auditrelay_daemon_crash_loop",
		    "1 while auditrelayd holds the daemon in a crash loop "
		    "(more than 5 deaths in 60 s; restarted every 60 s).",
		    labels, c->crash_loop ? 1 : 0);
		samples_gauge(s, "auditrelay_daemon_store_ok",
		    "1 if the daemon reaches the store.", labels,
		    c->store_ok ? 1 : 0);
		samples_counter(s, "auditrelay_daemon_ipc_messages_total",
		    "IPC frames auditrelayd exchanged with the daemon since "
		    "its last start.",
		    labels, (double)c->ipc_messages);
		samples_counter(s, "auditrelay_daemon_store_errors_total",
		    "Failed store calls of the daemon since its last start.",
		    labels, (double)c->store_errors);
	}
	for (i = 1; i < nitems(classes); i++) {
		snprintf(labels, sizeof(labels), "code=\"%s\"", classes[i]);
		samples_counter(s, "auditrelay_api_responses_total",
		    "API responses by status class.", labels,
		    (double)apid.responses[i]);
	}
	for (i = 0; i < nitems(checks); i++) {
		snprintf(labels, sizeof(labels), "result=\"%s\"", checks[i]);
		samples_counter(s, "auditrelay_api_credential_checks_total",
		    "Credential checks with Google by result.", labels,
		    (double)apid.google_checks[i]);
	}
}

static void
metrics_value(struct evbuffer *b, double v)
{
	if (isnan(v))
		evbuffer_add_printf(b, "NaN\n");
	else if (isinf(v))
		evbuffer_add_printf(b, "%s\n", v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 9007199254740992.0)
		evbuffer_add_printf(b, "%.0f\n", v);
	else
		evbuffer_add_printf(b, "%.15g\n", v);
}

/*
 * Store work of GET /metrics (on a worker thread): the sources and stats
 * samples added to those of the loop (a->arg), all rendered.
 */
static void
metrics_work(struct areq *a)
{
	static const char *const tnames[] = { "gauge", "counter", "summary" };
	struct samples		*s = a->arg;
	struct evbuffer		*b;
	mongoc_client_t		*c;
	const char		*last = "";
	size_t			 i;
	bool			 ok = true;

	if (store_healthy(child_store())) {
		c = store_pop(child_store());
		if (metrics_sources(s, c) != 0 || metrics_stats(s, c) != 0)
			ok = false;
		store_push(child_store(), c);
		if (ok && metrics_backfills(s) != 0)
			ok = false;
		http_store_result(a, ok, ok ? NULL : "metrics queries failed");
	}
	qsort(s->v, s->n, sizeof(*s->v), sample_cmp);
	if ((b = evbuffer_new()) == NULL)
		fatal("out of memory");
	for (i = 0; i < s->n; i++) {
		struct sample *x = &s->v[i];

		if (strcmp(last, x->family) != 0) {
			evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n",
			    x->family, x->help, x->family, tnames[x->type]);
			last = x->family;
		}
		if (x->labels[0] != '\0')
			evbuffer_add_printf(b, "%s{%s} ", x->name, x->labels);
		else
			evbuffer_add_printf(b, "%s ", x->name);
		metrics_value(b, x->value);
	}
	http_reply_typed(a, 200, "text/plain; version=0.0.4; charset=utf-8",
	    (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
	evbuffer_free(b);
	free(s->v);
	free(s);
	a->arg = NULL;
}

/*
 * GET /metrics: the process samples on the loop (the supervisor's
 * snapshot, the counters), the store's on a worker.
 */
void
metrics_get(struct areq *a)
{
	struct samples *s = util_xcalloc(1, sizeof(*s));

	metrics_process(s);
	a->arg = s;
	if (http_work(a, metrics_work) != 0) {
		free(s->v);
		free(s);
	}
}
