/*
 * MongoDB access on libmongoc. See store.h.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/store.h"

/* The probe's socket timeout: a ping answers in milliseconds. */
#define STORE_PROBE_TIMEOUT_MS 1500

struct store {
	mongoc_client_pool_t *pool;
	mongoc_uri_t	     *uri;
	mongoc_client_t	     *probe; /* single-threaded, fails fast */
	char		     *dbname;
	/* Read from any thread (store_healthy), written by the daemon's loop. */
	atomic_bool	healthy;
	_Atomic int64_t outage_since;
};

static void
store_mongoc_log_cb(mongoc_log_level_t level, const char *domain,
    const char *message, void *arg)
{
	log_debug("mongoc %s: %s", domain, message);
}

void
store_log_init(void)
{
	mongoc_init();
	mongoc_log_set_handler(store_mongoc_log_cb, NULL);
}

int
store_open(const char *uristr, const char *dbname, const char *appname,
    struct store **out, char *err, size_t errlen)
{
	struct store *s;
	mongoc_uri_t *probe_uri;
	bson_error_t  berr;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->uri = mongoc_uri_new_with_error(uristr, &berr);
	if (s->uri == NULL) {
		/* berr may quote the URI, which may hold a password. */
		snprintf(err, errlen, "invalid MongoDB URI");
		free(s);
		return -EINVAL;
	}
	if (!mongoc_uri_has_option(s->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
		mongoc_uri_set_option_as_int32(s->uri,
		    MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 1000);
	if (!mongoc_uri_has_option(s->uri, MONGOC_URI_CONNECTTIMEOUTMS))
		mongoc_uri_set_option_as_int32(s->uri,
		    MONGOC_URI_CONNECTTIMEOUTMS, 1000);
	if (!mongoc_uri_has_option(s->uri, MONGOC_URI_SOCKETTIMEOUTMS))
		mongoc_uri_set_option_as_int32(s->uri,
		    MONGOC_URI_SOCKETTIMEOUTMS, 20000);
	if (!mongoc_uri_has_option(s->uri, MONGOC_URI_HEARTBEATFREQUENCYMS))
		mongoc_uri_set_option_as_int32(s->uri,
		    MONGOC_URI_HEARTBEATFREQUENCYMS, 2000);
	if (appname != NULL)
		mongoc_uri_set_appname(s->uri, appname);
	s->pool = mongoc_client_pool_new(s->uri);
	if (s->pool == NULL) {
		snprintf(err, errlen, "cannot create a MongoDB client pool");
		mongoc_uri_destroy(s->uri);
		free(s);
		return -EINVAL;
	}
	mongoc_client_pool_set_error_api(s->pool, MONGOC_ERROR_API_VERSION_2);
	/*
	 * The health probe is a single-threaded client: with
	 * serverSelectionTryOnce it answers within connectTimeoutMS instead
	 * of waiting out server selection, so a daemon's loop is not held
	 * while the store is down. Its socket timeout is short too: a store
	 * that accepts connections but does not answer (stopped, swapping,
	 * a stalled disk) would otherwise hold the loop for socketTimeoutMS
	 * on a connection made before the stall, and the supervisor would
	 * take the missed pings for a hung daemon.
	 */
	probe_uri = mongoc_uri_copy(s->uri);
	mongoc_uri_set_option_as_int32(probe_uri, MONGOC_URI_SOCKETTIMEOUTMS,
	    STORE_PROBE_TIMEOUT_MS);
	s->probe = mongoc_client_new_from_uri(probe_uri);
	mongoc_uri_destroy(probe_uri);
	if (s->probe != NULL)
		mongoc_client_set_error_api(s->probe,
		    MONGOC_ERROR_API_VERSION_2);
	s->dbname = util_xstrdup(dbname);
	s->healthy = true;
	*out = s;
	return 0;
}

void
store_free(struct store *s)
{
	if (s == NULL)
		return;
	if (s->probe != NULL)
		mongoc_client_destroy(s->probe);
	mongoc_client_pool_destroy(s->pool);
	mongoc_uri_destroy(s->uri);
	free(s->dbname);
	free(s);
}

const char *
store_dbname(const struct store *s)
{
	return s->dbname;
}

mongoc_client_t *
store_pop(struct store *s)
{
	return mongoc_client_pool_pop(s->pool);
}

void
store_push(struct store *s, mongoc_client_t *c)
{
	mongoc_client_pool_push(s->pool, c);
}

mongoc_collection_t *
store_coll(struct store *s, mongoc_client_t *c, const char *name)
{
	return mongoc_client_get_collection(c, s->dbname, name);
}

/* Copy a libmongoc error message into err[]. */
static void
store_err(char *err, size_t errlen, const char *what, const bson_error_t *e)
{
	snprintf(err, errlen, "%s: %s", what, e->message);
}

bool
store_note(struct store *s, bool ok)
{
	if (ok == atomic_load(&s->healthy))
		return false;
	atomic_store(&s->outage_since, ok ? 0 : util_mono_ms());
	atomic_store(&s->healthy, ok);
	return true;
}

bool
store_healthy(const struct store *s)
{
	return atomic_load(&s->healthy);
}

int64_t
store_outage_ms(const struct store *s)
{
	int64_t since = atomic_load(&s->outage_since);

	return atomic_load(&s->healthy) || since == 0 ? 0 :
							util_mono_ms() - since;
}

int
store_ping(struct store *s, char *err, size_t errlen)
{
	bson_t	    *cmd = BCON_NEW("ping", BCON_INT32(1));
	bson_error_t e;
	bool	     ok;

	ok = mongoc_client_command_simple(s->probe, "admin", cmd, NULL, NULL,
	    &e);
	if (!ok)
		store_err(err, errlen, "ping", &e);
	bson_destroy(cmd);
	return ok ? 0 : -EIO;
}

int
store_create_indexes(struct store *s, const char *coll, const bson_t *indexes,
    char *err, size_t errlen)
{
	mongoc_client_t	  *c = store_pop(s);
	mongoc_database_t *db = mongoc_client_get_database(c, s->dbname);
	bson_iter_t	   it;
	bson_error_t	   e;
	bool		   ok = true;

	/*
	 * One command per index: FerretDB 1.24 drops the connection (a
	 * panic, "slice bounds out of range") on a createIndexes of two or
	 * more indexes that all exist already, i.e. at every restart.
	 */
	if (!bson_iter_init(&it, indexes)) {
		snprintf(err, errlen, "%s: malformed index list", coll);
		ok = false;
	}
	while (ok && bson_iter_next(&it)) {
		bson_t	       cmd = BSON_INITIALIZER, arr, one;
		const uint8_t *data;
		uint32_t       len;

		if (!BSON_ITER_HOLDS_DOCUMENT(&it))
			continue;
		bson_iter_document(&it, &len, &data);
		if (!bson_init_static(&one, data, len)) {
			bson_destroy(&cmd);
			continue;
		}
		BSON_APPEND_UTF8(&cmd, "createIndexes", coll);
		BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &arr);
		BSON_APPEND_DOCUMENT(&arr, "0", &one);
		bson_append_array_end(&cmd, &arr);
		ok = mongoc_database_write_command_with_opts(db, &cmd, NULL,
		    NULL, &e);
		if (!ok)
			store_err(err, errlen, coll, &e);
		bson_destroy(&cmd);
	}
	mongoc_database_destroy(db);
	store_push(s, c);
	return ok ? 0 : -EIO;
}

int
store_insert_one(struct store *s, const char *coll, const bson_t *doc,
    char *err, size_t errlen)
{
	mongoc_client_t	    *c = store_pop(s);
	mongoc_collection_t *col = store_coll(s, c, coll);
	bson_error_t	     e;
	int		     rc = 0;

	if (!mongoc_collection_insert_one(col, doc, NULL, NULL, &e)) {
		if (e.code == STORE_DUPLICATE_KEY)
			rc = -EEXIST;
		else {
			store_err(err, errlen, coll, &e);
			rc = -EIO;
		}
	}
	mongoc_collection_destroy(col);
	store_push(s, c);
	return rc;
}

int
store_insert_many(struct store *s, const char *coll, const bson_t **docs,
    size_t n, size_t *inserted, size_t *dups, bool *dup, char *err,
    size_t errlen)
{
	mongoc_client_t	    *c;
	mongoc_collection_t *col;
	bson_t		     reply, opts = BSON_INITIALIZER;
	bson_iter_t	     it, arr, one;
	bson_error_t	     e;
	size_t		     ndup = 0, nother = 0, i;
	int		     rc = 0;

	*inserted = *dups = 0;
	for (i = 0; dup != NULL && i < n; i++)
		dup[i] = false;
	if (n == 0)
		return 0;
	c = store_pop(s);
	col = store_coll(s, c, coll);
	BSON_APPEND_BOOL(&opts, "ordered", false);
	if (!mongoc_collection_insert_many(col, docs, n, &opts, &reply, &e)) {
		/* Duplicates among writeErrors are "already stored". */
		if (bson_iter_init_find(&it, &reply, "writeErrors") &&
		    BSON_ITER_HOLDS_ARRAY(&it) &&
		    bson_iter_recurse(&it, &arr)) {
			while (bson_iter_next(&arr)) {
				int64_t idx = -1, code = 0;

				if (!bson_iter_recurse(&arr, &one)) {
					nother++;
					continue;
				}
				while (bson_iter_next(&one)) {
					if (strcmp(bson_iter_key(&one),
						"index") == 0)
						idx = bson_iter_as_int64(&one);
					else if (strcmp(bson_iter_key(&one),
						     "code") == 0)
						code = bson_iter_as_int64(&one);
				}
				if (code == STORE_DUPLICATE_KEY && idx >= 0 &&
				    (size_t)idx < n) {
					ndup++;
					if (dup != NULL)
						dup[idx] = true;
				} else
					nother++;
			}
		} else
			nother++;
		if (bson_iter_init_find(&it, &reply, "writeConcernErrors") &&
		    BSON_ITER_HOLDS_ARRAY(&it) &&
		    bson_iter_recurse(&it, &arr) && bson_iter_next(&arr))
			nother++;
		if (nother > 0) {
			store_err(err, errlen, coll, &e);
			rc = -EIO;
		}
	}
	if (rc == 0) {
		*dups = ndup;
		*inserted = n - ndup;
	}
	bson_destroy(&reply);
	bson_destroy(&opts);
	mongoc_collection_destroy(col);
	store_push(s, c);
	return rc;
}

int
store_upsert(struct store *s, const char *coll, const char *id,
    const bson_t *doc, char *err, size_t errlen)
{
	mongoc_client_t	    *c = store_pop(s);
	mongoc_collection_t *col = store_coll(s, c, coll);
	bson_t		    *sel = BCON_NEW("_id", BCON_UTF8(id));
	bson_t		    *opts = BCON_NEW("upsert", BCON_BOOL(true));
	bson_error_t	     e;
	bool		     ok;

	ok = mongoc_collection_replace_one(col, sel, doc, opts, NULL, &e);
	if (!ok)
		store_err(err, errlen, coll, &e);
	bson_destroy(sel);
	bson_destroy(opts);
	mongoc_collection_destroy(col);
	store_push(s, c);
	return ok ? 0 : -EIO;
}

int
store_update_set(struct store *s, const char *coll, const bson_t *selector,
    const bson_t *set, bool many, int64_t *matched, char *err, size_t errlen)
{
	mongoc_client_t	    *c = store_pop(s);
	mongoc_collection_t *col = store_coll(s, c, coll);
	bson_t		     upd = BSON_INITIALIZER, reply;
	bson_iter_t	     it;
	bson_error_t	     e;
	bool		     ok;

	BSON_APPEND_DOCUMENT(&upd, "$set", set);
	if (many)
		ok = mongoc_collection_update_many(col, selector, &upd, NULL,
		    &reply, &e);
	else
		ok = mongoc_collection_update_one(col, selector, &upd, NULL,
		    &reply, &e);
	if (!ok)
		store_err(err, errlen, coll, &e);
	else if (matched != NULL) {
		*matched = 0;
		if (bson_iter_init_find(&it, &reply, "matchedCount"))
			*matched = bson_iter_as_int64(&it);
	}
	bson_destroy(&reply);
	bson_destroy(&upd);
	mongoc_collection_destroy(col);
	store_push(s, c);
	return ok ? 0 : -EIO;
}

int
store_delete(struct store *s, const char *coll, const bson_t *selector,
    bool many, int64_t *deleted, char *err, size_t errlen)
{
	mongoc_client_t	    *c = store_pop(s);
	mongoc_collection_t *col = store_coll(s, c, coll);
	bson_t		     reply;
	bson_iter_t	     it;
	bson_error_t	     e;
	bool		     ok;

	if (many)
		ok = mongoc_collection_delete_many(col, selector, NULL, &reply,
		    &e);
	else
		ok = mongoc_collection_delete_one(col, selector, NULL, &reply,
		    &e);
	if (!ok)
		store_err(err, errlen, coll, &e);
	else if (deleted != NULL) {
		*deleted = 0;
		if (bson_iter_init_find(&it, &reply, "deletedCount"))
			*deleted = bson_iter_as_int64(&it);
	}
	bson_destroy(&reply);
	mongoc_collection_destroy(col);
	store_push(s, c);
	return ok ? 0 : -EIO;
}

int
store_find_one(struct store *s, const char *coll, const bson_t *selector,
    const bson_t *opts, bson_t *out, char *err, size_t errlen)
{
	mongoc_client_t	    *c = store_pop(s);
	mongoc_collection_t *col = store_coll(s, c, coll);
	mongoc_cursor_t	    *cur;
	const bson_t	    *doc;
	bson_t		     o = BSON_INITIALIZER;
	bson_error_t	     e;
	int		     rc = 0;

	if (opts != NULL)
		bson_concat(&o, opts);
	BSON_APPEND_INT64(&o, "limit", 1);
	cur = mongoc_collection_find_with_opts(col, selector, &o, NULL);
	if (mongoc_cursor_next(cur, &doc)) {
		bson_copy_to(doc, out);
		rc = 1;
	} else if (mongoc_cursor_error(cur, &e)) {
		store_err(err, errlen, coll, &e);
		rc = -EIO;
	}
	mongoc_cursor_destroy(cur);
	bson_destroy(&o);
	mongoc_collection_destroy(col);
	store_push(s, c);
	return rc;
}

int
store_each_in(mongoc_collection_t *col, const bson_t *filter,
    const bson_t *opts, store_each_fn fn, void *arg, char *err, size_t errlen)
{
	mongoc_cursor_t *cur;
	const bson_t	*doc;
	bson_error_t	 e;
	char		 what[128];
	int		 rc = 0;

	cur = mongoc_collection_find_with_opts(col, filter, opts, NULL);
	while (rc == 0 && mongoc_cursor_next(cur, &doc))
		rc = fn(doc, arg);
	if (rc == 0 && mongoc_cursor_error(cur, &e)) {
		snprintf(what, sizeof(what), "find %s",
		    mongoc_collection_get_name(col));
		store_err(err, errlen, what, &e);
		rc = -EIO;
	}
	mongoc_cursor_destroy(cur);
	return rc;
}

int
store_each(struct store *s, const char *coll, const bson_t *filter,
    const bson_t *opts, store_each_fn fn, void *arg, char *err, size_t errlen)
{
	mongoc_client_t	    *c = store_pop(s);
	mongoc_collection_t *col = store_coll(s, c, coll);
	int		     rc;

	rc = store_each_in(col, filter, opts, fn, arg, err, errlen);
	mongoc_collection_destroy(col);
	store_push(s, c);
	return rc;
}

struct store_all {
	bson_t **docs;
	size_t	 n, cap;
};

static int
store_all_add(const bson_t *doc, void *arg)
{
	struct store_all *a = arg;
	bson_t		**nd;

	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 64;
		if ((nd = realloc(a->docs, a->cap * sizeof(*nd))) == NULL)
			return -ENOMEM;
		a->docs = nd;
	}
	if ((a->docs[a->n] = bson_copy(doc)) == NULL)
		return -ENOMEM;
	a->n++;
	return 0;
}

int
store_find_all(struct store *s, const char *coll, const bson_t *filter,
    const bson_t *opts, bson_t ***docs, size_t *n, char *err, size_t errlen)
{
	struct store_all a = { NULL, 0, 0 };
	int		 rc;

	*docs = NULL;
	*n = 0;
	rc = store_each(s, coll, filter, opts, store_all_add, &a, err, errlen);
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory reading %s", coll);
	if (rc != 0) {
		store_docs_free(a.docs, a.n);
		return rc < 0 ? rc : -EIO;
	}
	*docs = a.docs;
	*n = a.n;
	return 0;
}

void
store_docs_free(bson_t **docs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		bson_destroy(docs[i]);
	free(docs);
}

struct store_ids {
	char *const *ids;
	size_t	     n;
	bson_t	   **docs;
};

static int
store_ids_match(const bson_t *doc, void *arg)
{
	struct store_ids *m = arg;
	const char	 *id = store_bson_str(doc, "_id");
	size_t		  i;

	if (id == NULL)
		return 0;
	for (i = 0; i < m->n; i++)
		if (m->docs[i] == NULL && strcmp(m->ids[i], id) == 0) {
			if ((m->docs[i] = bson_copy(doc)) == NULL)
				return -ENOMEM;
			break;
		}
	return 0;
}

int
store_find_ids(struct store *s, const char *coll, char *const *ids, size_t n,
    bson_t **docs, char *err, size_t errlen)
{
	struct store_ids m = { ids, n, docs };
	bson_t		*sel;
	int		 rc;

	sel = store_sel_ids(ids, sizeof(*ids), n, true);
	rc = store_each(s, coll, sel, NULL, store_ids_match, &m, err, errlen);
	bson_destroy(sel);
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory reading %s", coll);
	return rc < 0 ? rc : 0;
}

int64_t
store_count(struct store *s, const char *coll, const bson_t *selector,
    char *err, size_t errlen)
{
	mongoc_client_t	    *c = store_pop(s);
	mongoc_collection_t *col = store_coll(s, c, coll);
	bson_error_t	     e;
	int64_t		     n;

	n = mongoc_collection_count_documents(col, selector, NULL, NULL, NULL,
	    &e);
	if (n < 0) {
		store_err(err, errlen, coll, &e);
		n = -EIO;
	}
	mongoc_collection_destroy(col);
	store_push(s, c);
	return n;
}

int
store_count_by(struct store *s, const char *coll, const bson_t *selector,
    const char *field, store_count_fn fn, void *arg, char *err, size_t errlen)
{
	mongoc_client_t	    *c = store_pop(s);
	mongoc_collection_t *col = store_coll(s, c, coll);
	mongoc_cursor_t	    *cur;
	const bson_t	    *doc;
	const char	    *v;
	bson_error_t	     e;
	bson_t		    *pipe;
	char		     key[128], what[160];
	int		     rc = 0;

	snprintf(key, sizeof(key), "$%s", field);
	pipe = BCON_NEW("pipeline", "[", "{", "$match", BCON_DOCUMENT(selector),
	    "}", "{", "$group", "{", "_id", BCON_UTF8(key), "n", "{", "$sum",
	    BCON_INT32(1), "}", "}", "}", "]");
	cur = mongoc_collection_aggregate(col, MONGOC_QUERY_NONE, pipe, NULL,
	    NULL);
	while (rc == 0 && mongoc_cursor_next(cur, &doc))
		if ((v = store_bson_str(doc, "_id")) != NULL)
			rc = fn(v, store_bson_int(doc, "n", 0), arg);
	if (rc == 0 && mongoc_cursor_error(cur, &e)) {
		snprintf(what, sizeof(what), "aggregate %s", coll);
		store_err(err, errlen, what, &e);
		rc = -EIO;
	}
	mongoc_cursor_destroy(cur);
	bson_destroy(pipe);
	mongoc_collection_destroy(col);
	store_push(s, c);
	return rc;
}

const char *
store_bson_str(const bson_t *doc, const char *dotkey)
{
	bson_iter_t it, f;

	if (bson_iter_init(&it, doc) &&
	    bson_iter_find_descendant(&it, dotkey, &f) &&
	    BSON_ITER_HOLDS_UTF8(&f))
		return bson_iter_utf8(&f, NULL);
	return NULL;
}

int64_t
store_bson_int(const bson_t *doc, const char *dotkey, int64_t def)
{
	bson_iter_t it, f;

	if (bson_iter_init(&it, doc) &&
	    bson_iter_find_descendant(&it, dotkey, &f) &&
	    (BSON_ITER_HOLDS_INT32(&f) || BSON_ITER_HOLDS_INT64(&f) ||
		BSON_ITER_HOLDS_DOUBLE(&f) || BSON_ITER_HOLDS_DATE_TIME(&f)))
		return BSON_ITER_HOLDS_DATE_TIME(&f) ? bson_iter_date_time(&f) :
						       bson_iter_as_int64(&f);
	return def;
}

bool
store_bson_bool(const bson_t *doc, const char *dotkey, bool def)
{
	bson_iter_t it, f;

	if (bson_iter_init(&it, doc) &&
	    bson_iter_find_descendant(&it, dotkey, &f) &&
	    BSON_ITER_HOLDS_BOOL(&f))
		return bson_iter_bool(&f);
	return def;
}

int
store_list_collections(struct store *s, const char *prefix, char ***names,
    size_t *n, char *err, size_t errlen)
{
	mongoc_client_t	  *c = store_pop(s);
	mongoc_database_t *db = mongoc_client_get_database(c, store_dbname(s));
	bson_error_t	   e;
	char		 **all, **out = NULL;
	size_t		   i, k = 0, plen = strlen(prefix);
	int		   rc = 0;

	all = mongoc_database_get_collection_names_with_opts(db, NULL, &e);
	if (all == NULL) {
		store_err(err, errlen, "listCollections", &e);
		rc = -EIO;
		goto out;
	}
	for (i = 0; all[i] != NULL; i++)
		;
	if ((out = calloc(i + 1, sizeof(*out))) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; all[i] != NULL; i++)
		if (strncmp(all[i], prefix, plen) == 0 &&
		    (out[k] = strdup(all[i])) != NULL)
			k++;
	qsort(out, k, sizeof(*out), util_strp_cmp);
out:
	if (all != NULL)
		bson_strfreev(all);
	mongoc_database_destroy(db);
	store_push(s, c);
	*names = out;
	*n = k;
	return rc;
}

int
store_drop(struct store *s, const char *coll, char *err, size_t errlen)
{
	mongoc_client_t	    *c = store_pop(s);
	mongoc_collection_t *col = store_coll(s, c, coll);
	bson_error_t	     e;
	int		     rc = 0;

	/* 26 NamespaceNotFound: already gone. */
	if (!mongoc_collection_drop(col, &e) && e.code != 26) {
		store_err(err, errlen, coll, &e);
		rc = -EIO;
	}
	mongoc_collection_destroy(col);
	store_push(s, c);
	return rc;
}

bson_t *
store_sel_ids(const void *base, size_t stride, size_t n, bool pointers)
{
	return store_sel_in("_id", base, stride, n, pointers);
}

bson_t *
store_sel_in(const char *field, const void *base, size_t stride, size_t n,
    bool pointers)
{
	bson_t	   *sel = bson_new(), in, arr;
	const char *p = base, *id, *kp;
	char	    k[16];
	size_t	    i;

	bson_append_document_begin(sel, field, -1, &in);
	bson_append_array_begin(&in, "$in", -1, &arr);
	for (i = 0; i < n; i++) {
		id = pointers ? *(const char *const *)(p + i * stride) :
				p + i * stride;
		bson_uint32_to_string((uint32_t)i, &kp, k, sizeof(k));
		bson_append_utf8(&arr, kp, -1, id, -1);
	}
	bson_append_array_end(&in, &arr);
	bson_append_document_end(sel, &in);
	return sel;
}

void
store_body_coll(int64_t ms, char out[STORE_BODY_COLL_MAX])
{
	struct tm tm;
	time_t	  t;

	t = (time_t)((ms - ms % STORE_BODY_SPAN_MS) / 1000);
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, STORE_BODY_COLL_MAX, "bodies_%Y%m%d%H%M", &tm) == 0)
		snprintf(out, STORE_BODY_COLL_MAX, "bodies_000000000000");
}

void
store_backfill_key(char *out, size_t outlen, const char *sid, const char *app,
    const char *bid)
{
	snprintf(out, outlen, "%s:%s:bf:%s", sid, app, bid);
}

int64_t
store_body_coll_end(const char *name)
{
	struct tm   tm;
	const char *p, *end;
	size_t	    i;

	if (strncmp(name, "bodies_", 7) != 0)
		return -1;
	p = name + 7;
	for (i = 0; p[i] != '\0'; i++)
		if (p[i] < '0' || p[i] > '9')
			return -1;
	if (i != 12)
		return -1;
	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(p, "%Y%m%d%H%M", &tm)) == NULL || *end != '\0')
		return -1;
	return (int64_t)timegm(&tm) * 1000 + STORE_BODY_SPAN_MS;
}

bool
store_bson_sub(const bson_t *doc, const char *dotkey, bson_t *out)
{
	bson_iter_t    it, sub;
	const uint8_t *data;
	uint32_t       len;

	if (!bson_iter_init(&it, doc) ||
	    !bson_iter_find_descendant(&it, dotkey, &sub) ||
	    !BSON_ITER_HOLDS_DOCUMENT(&sub))
		return false;
	bson_iter_document(&sub, &len, &data);
	return bson_init_static(out, data, len);
}

int64_t
store_rescan_delay(int64_t every_ms, int64_t took_ms)
{
	int64_t d = took_ms * STORE_RESCAN_SPACING;

	return d > every_ms ? d : every_ms;
}
