/*
 * deliverd's janitor: every minute on the worker thread, deletes what
 * removed sources left behind (batches, bodies, alerts, states, stats,
 * fetcherd's cursors, intents and schema names) and delivered alerts past
 * the retention.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliverd/deliverd.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/store.h"
#include "lib/store/worker.h"
#include "runtime/child.h"

#define JANITOR_FIRST_MS 10000
#define JANITOR_EVERY_MS 60000

static struct event *janitor_ev, *janitor2_ev;

static void deliverd_janitor_first_cb(evutil_socket_t, short, void *);

/*
 * Run a distinct on coll.sourceId; calls fn for each value. 0 or -EIO.
 */
static int
deliverd_distinct_sources(const char *coll, char ***out, size_t *nout,
    char *err, size_t errlen)
{
	mongoc_client_t	  *c;
	mongoc_database_t *db;
	bson_t		  *cmd, reply;
	bson_iter_t	   it, ch;
	bson_error_t	   berr;
	char		 **v = NULL, **nv;
	size_t		   n = 0;
	int		   rc = 0;

	cmd = BCON_NEW("distinct", BCON_UTF8(coll), "key",
	    BCON_UTF8("sourceId"));
	c = store_pop(child_store());
	db = mongoc_client_get_database(c, store_dbname(child_store()));
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
	store_push(child_store(), c);
	bson_destroy(cmd);
	*out = v;
	*nout = n;
	return rc;
}

struct janitor {
	int	rc;
	char	err[512];
	char	msgs[2048];
	size_t	off;
	int64_t retention_ms;
};

static bool janitor_running;

static void janitor_note(struct janitor *jt, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
janitor_note(struct janitor *jt, const char *fmt, ...)
{
	va_list ap;
	int	n;

	if (jt->off >= sizeof(jt->msgs) - 2)
		return;
	va_start(ap, fmt);
	n = vsnprintf(jt->msgs + jt->off, sizeof(jt->msgs) - jt->off, fmt, ap);
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
	char		       **ids = NULL, sid[96];
	size_t			 n = 0, i, k;
	bson_t			*sel, out;
	int64_t			 deleted;
	int			 rc;

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
			rc = store_find_one(child_store(), STORE_SOURCES, sel,
			    NULL, &out, jt->err, sizeof(jt->err));
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
			jt->rc = store_delete(child_store(), colls[k], sel,
			    true, &deleted, jt->err, sizeof(jt->err));
			bson_destroy(sel);
			janitor_note(jt, "source=%s removed: deleted %lld %s",
			    ids[i], (long long)deleted, colls[k]);
			if (k == 0) {
				snprintf(sid, sizeof(sid), "%s:deliver",
				    ids[i]);
				sel = BCON_NEW("_id", BCON_UTF8(sid));
				(void)store_delete(child_store(),
				    STORE_SOURCE_STATE, sel, false, NULL,
				    jt->err, sizeof(jt->err));
				(void)store_delete(child_store(), STORE_STATS,
				    sel, false, NULL, jt->err, sizeof(jt->err));
				bson_destroy(sel);
				/*
				 * Bodies, fetcherd's cursors, stats and
				 * schema names.
				 */
				sel = BCON_NEW("sourceId", BCON_UTF8(ids[i]));
				(void)store_delete(child_store(), STORE_BODIES,
				    sel, true, NULL, jt->err, sizeof(jt->err));
				(void)store_delete(child_store(),
				    STORE_BODIES_DEAD, sel, true, NULL, jt->err,
				    sizeof(jt->err));
				(void)store_delete(child_store(), STORE_INTENTS,
				    sel, true, NULL, jt->err, sizeof(jt->err));
				(void)store_delete(child_store(), STORE_CURSORS,
				    sel, true, NULL, jt->err, sizeof(jt->err));
				(void)store_delete(child_store(), STORE_STATS,
				    sel, true, NULL, jt->err, sizeof(jt->err));
				(void)store_delete(child_store(),
				    STORE_SCHEMA_NAMES, sel, true, NULL,
				    jt->err, sizeof(jt->err));
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
	bson_t *filter;

	filter = BCON_NEW("state", BCON_UTF8("batched"), "at", "{", "$lt",
	    BCON_INT64(util_now_ms() - jt->retention_ms), "}");
	jt->rc = store_delete(child_store(), STORE_ALERTS, filter, true, NULL,
	    jt->err, sizeof(jt->err));
	bson_destroy(filter);
}

static void
janitor_work(void *arg)
{
	struct janitor *jt = arg;

	janitor_removed(jt);
	if (jt->rc == 0)
		janitor_prune(jt);
}

static void
janitor_done(void *arg)
{
	struct janitor *jt = arg;
	char	       *line, *save = NULL;

	janitor_running = false;
	(void)child_store_result(jt->rc >= 0, jt->err);
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
	struct janitor *jt;

	if (janitor_running || child_stopping() || !child_store_ready() ||
	    !store_healthy(child_store()))
		return;
	jt = util_xcalloc(1, sizeof(*jt));
	jt->retention_ms = deliverd_conf()->retention_ms;
	if (worker_submit(janitor_work, janitor_done, jt) != 0) {
		free(jt);
		return;
	}
	janitor_running = true;
}

/* Start the janitor: a first run soon, then every minute. */
void
deliverd_janitor_start(void)
{
	deliverd_timer_start(&janitor_ev, deliverd_janitor_first_cb,
	    JANITOR_FIRST_MS, false);
}

/* Janitor timer: first run, then every minute. */
static void
deliverd_janitor_first_cb(evutil_socket_t fd, short what, void *arg)
{
	deliverd_janitor_cb(fd, what, arg);
	deliverd_timer_start(&janitor2_ev, deliverd_janitor_cb,
	    JANITOR_EVERY_MS, true);
}
