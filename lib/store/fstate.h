/*
 * The fetch state of the sources (status, lastError, lastFetchAt, the
 * fetch half of the watermark, and each application's cursor and
 * counters), kept by partition: the holder of the lease "fetch:p<N>"
 * writes one document for all the sources of partition N, in a
 * collection of its own,
 *
 *	fetch_state_<count>_<N>	{_id: "<count>:<N>", count, part, epoch,
 *				 updatedAt, sources: {<source id>: entry}}
 *
 * and entry is what older versions kept in three collections, one
 * document per source or per (source, application):
 *
 *	{status, lastError, lastFetchAt, fetchedThrough: {app: ms},
 *	 coveredFrom: {app: ms}, rereads: {app: {...}}, credentialsVersion,
 *	 epoch, updatedAt, cursors: {app: cursor}, stats: {app: counters}}
 *
 * On FerretDB 1.24 every read or update scans its whole collection: a
 * collection per partition keeps each write and each read to the sources
 * of one partition, whatever the number of sources, and 10 000 sources
 * cost 64 writes per round rather than 30 000. <count> is in the name so
 * that a new partition_count starts from documents of its own, and reads
 * the state of the old count (and of versions that kept a document per
 * source) where it has none yet.
 */
#ifndef AR_LIB_FSTATE_H
#define AR_LIB_FSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "lib/store/store.h"

#define FSTATE_PREFIX	"fetch_state_"
#define DSTATE_PREFIX	"deliver_state_"
#define FSTATE_COLL_MAX 48
#define FSTATE_ID_MAX	32

struct store;

/* "fetch_state_<count>_<part>" and "<count>:<part>". */
void fstate_coll(int count, int part, char out[FSTATE_COLL_MAX]);
void fstate_doc_id(int count, int part, char out[FSTATE_ID_MAX]);

/* Do not read the per-source documents of older versions. */
#define FSTATE_NO_LEGACY 0x1

/*
 * The entries of ids[0..n-1], all of partition part (of count): each
 * entries[i] a copy (bson_destroy it) or NULL where there is none. When
 * the partition has no document yet, the newest entry found in the
 * documents of other counts and (unless FSTATE_NO_LEGACY) in the
 * per-source documents of older versions. *found (may be NULL): the
 * partition's own document exists. *sources (may be NULL): where it
 * does, a copy of its whole "sources" (every source's entry, those not
 * asked for too; bson_destroy it), else NULL. 0, or -EIO with err[].
 */
int fstate_load(struct store *st, int count, int part, const char *const *ids,
    size_t n, bson_t **entries, unsigned flags, bool *found, bson_t **sources,
    char *err, size_t errlen);

/*
 * The same for sources of any partitions (grouped by partition, a read
 * per partition). A source absent from its partition's document is looked
 * for in the documents of other counts too (a partition_count changed
 * but not yet in effect in fetcherd). 0, or -EIO with err[].
 */
int fstate_find(struct store *st, int count, const char *const *ids, size_t n,
    bson_t **entries, char *err, size_t errlen);

/*
 * fn(source id, entry, arg) for the newest entry of every source in every
 * fetch_state_ collection, in no particular order; stops at fn's first
 * non-zero value and returns it. 0, or -EIO with err[].
 */
typedef int (*fstate_each_fn)(const char *sid, const bson_t *entry, void *arg);
int fstate_each(struct store *st, fstate_each_fn fn, void *arg, char *err,
    size_t errlen);

/*
 * fn(doc, arg) for every application's counters of every source, each
 * as the stats document "<source>:<app>" older versions kept (what
 * /metrics and the Elasticsearch export read). As fstate_each.
 */
int fstate_each_stats(struct store *st, store_each_fn fn, void *arg, char *err,
    size_t errlen);
/*
 * The delivery state, kept the same way by the holder of the lease
 * "deliver:p<N>" (deliverd/state.c):
 *
 *	deliver_state_<count>_<N>	{_id: "<count>:<N>", count, part, epoch,
 *					 updatedAt, sources: {<source id>: entry}}
 *	entry	{status, lastDeliveryAt, lastError, consecutiveFailures,
 *		 goneUrl, epoch, updatedAt, stats: {deliveredLogs,
 *		 deliveredBatches, failedAttempts, deadBatches}}
 *
 * where older versions kept source_state and stats "<id>:deliver", read
 * (as their fetch state is) for a partition that has no document yet.
 */
void dstate_coll(int count, int part, char out[FSTATE_COLL_MAX]);
int  dstate_load(struct store *st, int count, int part, const char *const *ids,
     size_t n, bson_t **entries, bool *found, bson_t **sources, char *err,
     size_t errlen);
int  dstate_find(struct store *st, int count, const char *const *ids, size_t n,
     bson_t **entries, char *err, size_t errlen);
int  dstate_each(struct store *st, fstate_each_fn fn, void *arg, char *err,
     size_t errlen);
/* Each source's counters as the stats document "<source>:deliver". */
int dstate_each_stats(struct store *st, store_each_fn fn, void *arg, char *err,
    size_t errlen);

/*
 * Whether the store holds fetch state of a version older than this one
 * (a cursors document of no backfill). 1, 0, or -EIO with err[].
 */
int fstate_legacy_probe(struct store *st, char *err, size_t errlen);

#endif
