/*
 * The store side of fetching: what fetcherd writes for a page of logs and
 * for a finished window, done on the store worker thread (lib/store/worker.h)
 * so that the event loop never waits on the store.
 *
 * A page's new logs reach deliverd as batches that fetcherd cuts itself,
 * one document per batch, never one per log. The page is cut into chunks
 * (at most delivery_batch_max_logs logs and _max_bytes), each with a
 * batch id B, then in five store calls:
 *
 *  1. the intents {_id: B, sourceId, app, days} go into `intents`;
 *  2. every log id goes into seen_YYYYMMDD (the UTC day of the event's
 *     id.time) as {_id: "<source>:<logId>", b: B, a: app}: a duplicate
 *     key means the log is already in some batch (the de-duplication);
 *  3. the bodies of the chunks that hold new logs go into the bodies_*
 *     partition of the time of the group (named in 1 and 4, dropped whole
 *     by deliverd once nothing pending names it);
 *  4. their metadata {_id: B, state: "pending", ...} into `batches`:
 *     this insert commits a batch (deliverd sends what it finds there);
 *  5. the intents are deleted.
 *
 * Pages that wait while the worker threads are busy are stored as a
 * group, each of those calls carrying all of them (handoff.c, "Pages are
 * stored in groups").
 *
 * A crash (or a store error) before 5 leaves intents. Before the next
 * page of that (source, application) is stored, recovery looks at each:
 * committed (its metadata exists), it just goes; else its seen ids and
 * body are deleted first, so the window, read again because its cursor
 * did not move, finds those logs new. Every call but the deletion of the
 * intents in flight is an insert: seen_* partitions are dropped whole
 * when they leave the de-duplication horizon, `batches` holds what is
 * pending (deliverd deletes a batch's metadata at its 2xx, but keeps it,
 * marked "delivered", as long as its intent exists: deliverd/queue.c and
 * deliverd/prune.c).
 */
#ifndef AR_FETCHERD_HANDOFF_H
#define AR_FETCHERD_HANDOFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "lib/google/normalize.h"
#include "lib/store/lease.h"
#include "lib/store/store.h"

enum handoff_kind {
	HANDOFF_PAGE,	/* store the logs of one page */
	HANDOFF_SAVE,	/* write a window's cursor and stats */
	HANDOFF_PRUNE,	/* drop seen_* partitions past the horizon */
	HANDOFF_COUNT,	/* pending batches of every source, one scan */
	HANDOFF_UPSERT, /* replace doc under _id id in coll */
	HANDOFF_INSERT, /* insert doc into coll (duplicate: fine) */
	HANDOFF_NAMES,	/* insert docs into coll, then alerts of new ones */
	HANDOFF_LOAD	/* read a job's cursor and stats */
};

struct handoff;
typedef void (*handoff_done_fn)(struct handoff *h);

/* HANDOFF_COUNT: a source with pending batches, and how many. */
struct handoff_count {
	char	sid[64];
	int64_t n;
};

/* A batch sealed by a page job, for deliverd's hint. */
struct handoff_batch {
	char	 id[37];
	char	 webhook_id[48];
	uint32_t nlogs;
	int64_t	 created_at;
	char	*body; /* owned */
	size_t	 len;
};

struct handoff {
	enum handoff_kind kind;
	char		  sid[64];
	char		  app[64];
	int64_t		  epoch;	 /* fencing token written */
	int64_t		  deadline_mono; /* no write after this */
	bool		  recover;	 /* clean open intents first */
	bool		  backfill;	 /* HANDOFF_PAGE of a backfill job */
	uint64_t	  gen;		 /* failure generation seen */
	/* HANDOFF_PAGE */
	struct norm_log *logs; /* owned */
	size_t		 n;
	int64_t		 max_logs, max_bytes;
	char	 body_coll[STORE_BODY_COLL_MAX]; /* out: bodies_* partition */
	bool	*dup;		       /* out: n flags (HANDOFF_NAMES: ndocs) */
	size_t	 nnew;		       /* out */
	unsigned nbatches;	       /* out */
	struct handoff_batch *batches; /* out: nbatches sealed */
	unsigned	      nrecovered; /* out: open intents cleaned */
	int64_t		      ms_intent, ms_seen, ms_seal; /* out: costs */
	/*
	 * HANDOFF_SAVE: cursor and stats documents ("<source>:<app>") to
	 * write; HANDOFF_LOAD: those read (NULL: none yet). key set: the
	 * cursors document of that id only (a backfill job's).
	 */
	char	      key[200];
	bson_t	     *cursor_doc;
	bson_t	     *stats_doc;
	struct lease *lease; /* copy, for lease_check */
	/*
	 * HANDOFF_PRUNE; bf_ids: every backfill request of the last rescan
	 * (owned), the others' documents are deleted.
	 */
	int64_t	 keep_after_ms; /* drop days ending before */
	int64_t	 overlap_ms;
	unsigned ndropped; /* out */
	char   **bf_ids;
	size_t	 nbf_ids;
	bool	 bf_known;    /* false: no rescan yet, every one is kept */
	unsigned nbf_dropped; /* out */
	/*
	 * HANDOFF_UPSERT, HANDOFF_INSERT, HANDOFF_NAMES; an upsert with a
	 * lease is checked against newer epochs first (part: the
	 * partition whose fetch state it is, for its done).
	 */
	char	coll[48];
	int	part;
	int64_t submitted_mono; /* for the caller's own timing */
	char	id[160];
	bson_t *doc;
	/*
	 * HANDOFF_NAMES: docs go into coll (dup[i]: it was there); then
	 * alerts[i] (NULL: none) of the first alert_quota docs that were
	 * new go into `alerts` in one insert (alerted[i]; alerts_rc 0 or
	 * -EIO), so that a name recorded new has its alert stored by the
	 * same job.
	 */
	bson_t **docs; /* owned */
	size_t	 ndocs;
	bson_t **alerts; /* owned, ndocs entries */
	unsigned alert_quota;
	bool	*alerted; /* out: ndocs flags */
	int	 alerts_rc;
	/* HANDOFF_COUNT: sources absent have none */
	struct handoff_count *counts; /* out, owned */
	size_t		      ncounts, capcounts;
	/* Result, read by done on the loop. */
	int		rc; /* 0, -ESTALE, -EIO */
	char		err[512];
	handoff_done_fn done;
	void	       *arg; /* NULL once the job is gone */
};

/* A new job of kind for source sid (app may be NULL). */
struct handoff *handoff_new(enum handoff_kind kind, const char *sid,
    const char *app);
/* Run it on the worker; h->done(h) follows on the loop. 0 or -errno. */
int handoff_submit(struct handoff *h);
/* Free a finished job (its logs, documents and flags too). */
void handoff_free(struct handoff *h);

/* "seen_YYYYMMDD" of the UTC day holding time_ms. */
void handoff_seen_coll(int64_t time_ms, char out[24]);

#endif
