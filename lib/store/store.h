/*
 * MongoDB access shared by the daemons, on libmongoc's client pool. Works
 * on MongoDB and FerretDB 1.24 alike: no transactions, no change streams,
 * no TTL indexes; the only atomic primitive used for coordination is the
 * unique-index insert (duplicate key, E11000).
 *
 * Calls block for at most the URI's timeouts (short defaults are applied
 * when the URI sets none), so a daemon's loop stalls briefly, never hangs,
 * when the store is down.
 */
#ifndef AR_LIB_STORE_H
#define AR_LIB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

/* Collection names: the whole schema, in one place. */
#define STORE_SOURCES	   "sources"	  /* apid: one doc per source */
#define STORE_SOURCE_STATE "source_state" /* <id>:fetch / <id>:deliver */
#define STORE_CURSORS	   "cursors"	  /* fetcherd: <source>:<app> */
#define STORE_LOGS	   "logs"	  /* fetcherd inserts */
#define STORE_BATCHES	   "batches"	  /* metadata; fetcherd seals */
#define STORE_BODIES	   "bodies"	  /* bodies of older versions */
#define STORE_BODIES_DEAD  "bodies_dead"  /* bodies of dead letters */
#define STORE_INTENTS	   "intents"	  /* fetcherd: pages being stored */
#define STORE_ALERTS	   "alerts"	  /* alerts pending delivery */
#define STORE_LEASES	   "leases"	  /* <resource>:<epoch> */
#define STORE_STATS	   "stats"	  /* per source/app counters */
#define STORE_SCHEMA_NAMES "schema_names" /* fetcherd inserts: drift */
#define STORE_BACKFILLS	   "backfills"	  /* apid: backfill requests */
#define STORE_QUOTAS	   "quotas" /* fetcherd: rate limits, per project */

#define STORE_DUPLICATE_KEY 11000

/*
 * Batch bodies live in time partitions, "bodies_YYYYMMDDHHMM": one per
 * STORE_BODY_SPAN_MS of the time fetcherd stored them (UTC, the span's
 * start), only inserted into and dropped whole once no pending batch and
 * no intent names them (docs/STORE.md, "bodies_*"). The name of a
 * batch's partition is in its metadata (bodyColl) and its intent.
 */
#define STORE_BODY_SPAN_MS  (60LL * 1000)
#define STORE_BODY_COLL_MAX 24
/*
 * fetcherd writes no body into a partition later than STORE_BODY_LATE_MS
 * after its span ended (the group fails and is stored again, into a newer
 * one); deliverd drops none sooner than STORE_BODY_DROP_MS after it, so a
 * write in flight always finds its partition (deliverd/prune.c says why;
 * the difference is room for the clocks of two hosts to disagree).
 * Delivered bodies so stay on disk for about the span plus the drop time:
 * 4 minutes of the volume.
 */
#define STORE_BODY_LATE_MS (60LL * 1000)
#define STORE_BODY_DROP_MS (3LL * 60 * 1000)
/* The partition of bodies stored at ms. */
void store_body_coll(int64_t ms, char out[STORE_BODY_COLL_MAX]);
/* When name's span ends (ms), or -1 when name is no body partition. */
int64_t store_body_coll_end(const char *name);

/*
 * The `cursors` document of a backfill's progress (fetcherd writes it,
 * apid reads it): "<source>:<app>:bf:<backfill id>".
 */
void store_backfill_key(char *out, size_t outlen, const char *sid,
    const char *app, const char *bid);

struct store;

int	    store_open(const char *uri, const char *dbname, const char *appname,
	    struct store **out, char *err, size_t errlen);
void	    store_free(struct store *s);
const char *store_dbname(const struct store *s);

/* Borrow a client from the pool; give it back with store_push. */
mongoc_client_t *store_pop(struct store *s);
void		 store_push(struct store *s, mongoc_client_t *c);
/* A collection handle on a borrowed client; destroy it after use. */
mongoc_collection_t *store_coll(struct store *s, mongoc_client_t *c,
    const char *name);

/*
 * Round trip to the server on the fast-failing probe client. 0 or -EIO
 * with err[]. Daemons hold store work while store_healthy() is false, so
 * that only this probe waits on a dead store.
 */
int store_ping(struct store *s, char *err, size_t errlen);
/*
 * Create indexes idempotently with the createIndexes command (libmongoc
 * 1.23 has no index model). indexes: a BSON array document
 * {"0": {key: {...}, name: "...", unique: true}, ...}.
 */
int store_create_indexes(struct store *s, const char *coll,
    const bson_t *indexes, char *err, size_t errlen);
/*
 * Insert one document. 0, -EEXIST on a duplicate key, -EIO otherwise.
 */
int store_insert_one(struct store *s, const char *coll, const bson_t *doc,
    char *err, size_t errlen);
/*
 * Unordered insert of n documents; duplicates of the unique key count as
 * already stored. 0 when every document is now stored (inserted or dup),
 * -EIO otherwise (some other error: nothing may be assumed stored).
 * dup (optional, n entries) tells which documents were already there.
 */
int store_insert_many(struct store *s, const char *coll, const bson_t **docs,
    size_t n, size_t *inserted, size_t *dups, bool *dup, char *err,
    size_t errlen);
/*
 * Replace or upsert the document with _id id (single writer documents
 * only). 0 or -EIO.
 */
int store_upsert(struct store *s, const char *coll, const char *id,
    const bson_t *doc, char *err, size_t errlen);
/* $set fields on the documents matching selector. 0 or -EIO. */
int store_update_set(struct store *s, const char *coll, const bson_t *selector,
    const bson_t *set, bool many, int64_t *matched, char *err, size_t errlen);
/* Delete matching documents. 0 or -EIO. */
int store_delete(struct store *s, const char *coll, const bson_t *selector,
    bool many, int64_t *deleted, char *err, size_t errlen);
/*
 * Find one document by selector into *out (bson_destroy it). 1 found,
 * 0 not found, -EIO.
 */
int store_find_one(struct store *s, const char *coll, const bson_t *selector,
    const bson_t *opts, bson_t *out, char *err, size_t errlen);
/*
 * Call fn(doc, arg) for every document of coll matching filter (opts as
 * for a find: projection, sort, limit), in order, on a client borrowed
 * from the pool; doc lives only during the call. Stops at the first
 * non-zero value fn returns and returns it (fn returns 1 for "enough",
 * or -errno with its own err[]); 0 once every document was seen; -EIO
 * with err[] ("find <coll>: ...") when the store fails.
 */
typedef int (*store_each_fn)(const bson_t *doc, void *arg);
int store_each(struct store *s, const char *coll, const bson_t *filter,
    const bson_t *opts, store_each_fn fn, void *arg, char *err, size_t errlen);
/* The same on a collection handle the caller holds (its client). */
int store_each_in(mongoc_collection_t *col, const bson_t *filter,
    const bson_t *opts, store_each_fn fn, void *arg, char *err, size_t errlen);
/*
 * Copies of every document of coll matching filter into a malloc'd
 * array *docs of *n (store_docs_free() them). 0, -ENOMEM or -EIO with
 * err[]; nothing is returned on an error.
 */
int  store_find_all(struct store *s, const char *coll, const bson_t *filter,
     const bson_t *opts, bson_t ***docs, size_t *n, char *err, size_t errlen);
void store_docs_free(bson_t **docs, size_t n);
/*
 * The documents of coll whose _id is ids[i], each copied into docs[i]
 * (left NULL where there is none; bson_destroy the others), in one
 * find. 0, or -EIO with err[].
 */
int store_find_ids(struct store *s, const char *coll, char *const *ids,
    size_t n, bson_t **docs, char *err, size_t errlen);
/*
 * The names of the collections starting with prefix, sorted, into a
 * malloc'd array of malloc'd strings. 0 or -EIO.
 */
int store_list_collections(struct store *s, const char *prefix, char ***names,
    size_t *n, char *err, size_t errlen);
/* Drop a whole collection (cheap at any size); absent is fine. 0/-EIO. */
int store_drop(struct store *s, const char *coll, char *err, size_t errlen);
/* Count documents matching selector. >= 0 or -EIO. */
int64_t store_count(struct store *s, const char *coll, const bson_t *selector,
    char *err, size_t errlen);
/*
 * Count the documents matching selector by the string value of field, in
 * one aggregation ($match, $group): fn(value, count, arg) once per value
 * found (documents without it are not counted). One scan whatever the
 * number of values, where a store_count per value is one scan each on
 * FerretDB. 0, fn's non-zero value, or -EIO with err[].
 */
typedef int (*store_count_fn)(const char *value, int64_t n, void *arg);
int store_count_by(struct store *s, const char *coll, const bson_t *selector,
    const char *field, store_count_fn fn, void *arg, char *err, size_t errlen);

/*
 * Record the outcome of a store call; true when the healthy/unhealthy
 * state flipped (the daemon then logs the outage or the recovery, once).
 */
bool store_note(struct store *s, bool ok);
/* The last state noted; safe to read from any thread (a worker's). */
bool store_healthy(const struct store *s);
/* Milliseconds since the outage began (0 when healthy); any thread. */
int64_t store_outage_ms(const struct store *s);

/* Route libmongoc's own log lines to our debug level. */
void store_log_init(void);

/*
 * The selector {_id: {$in: [ids[0], ..., ids[n-1]]}}, where ids[i] is at
 * base + i * stride (an array of pointers, or of fixed-size strings).
 * bson_destroy it.
 */
bson_t *store_sel_ids(const void *base, size_t stride, size_t n, bool pointers);
/* The same on another field: {field: {$in: [...]}}. */
bson_t *store_sel_in(const char *field, const void *base, size_t stride,
    size_t n, bool pointers);

/*
 * A periodic re-read of a whole collection (the daemons' rescans of
 * `sources`) waits every_ms, or STORE_RESCAN_SPACING times what the last
 * one took if longer: on FerretDB 1.24 a read of 10 000 sources takes
 * about 3 s, and at every 5 s two daemons would keep the store busy with
 * them alone. Hints still re-read at once.
 */
#define STORE_RESCAN_SPACING 10
int64_t store_rescan_delay(int64_t every_ms, int64_t took_ms);

/* BSON helpers. */
const char *store_bson_str(const bson_t *doc, const char *dotkey);
int64_t	    store_bson_int(const bson_t *doc, const char *dotkey, int64_t def);
bool	    store_bson_bool(const bson_t *doc, const char *dotkey, bool def);
/* The subdocument at dotkey as a read-only view into doc, or false. */
bool store_bson_sub(const bson_t *doc, const char *dotkey, bson_t *out);

#endif
