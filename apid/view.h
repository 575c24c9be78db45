/*
 * One view of the sources, as the API reports them: each source document
 * joined with its fetch and deliver states (source_state), and its status
 * derived once (docs/STORE.md). GET /sources, GET /sources/:id, /metrics
 * and the Elasticsearch export all read the sources through here.
 *
 * A load reads each collection once: a page of sources (or all of them)
 * in one find on sources, their states in one find on source_state. One
 * source already read has its two states read by _id.
 */
#ifndef AR_APID_VIEW_H
#define AR_APID_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>
#include <mongoc/mongoc.h>

struct jsonw;

/* The statuses the API reports, in the order /metrics lists them. */
#define VIEW_NSTATUS 5
extern const char *const view_statuses[VIEW_NSTATUS];

/* A source and its states. */
struct view {
	bson_t	   *src;	/* the source, secrets left out */
	bson_t	   *fetch;	/* "<id>:fetch" state, or NULL */
	bson_t	   *deliver;	/* "<id>:deliver" state, or NULL */
	const char *id;		/* in src */
	const char *status;	/* one of view_statuses */
	const char *last_error; /* in fetch or deliver, or NULL */
	bool	    paused;
	bool	    watermarks;	      /* watermark messages sent */
	bool	    creds_invalid;    /* fetcherd: Google refuses them */
	bool	    deliver_failing;  /* deliverd: status not "ok" */
	int64_t	    last_fetch_ms;    /* 0: never */
	int64_t	    last_delivery_ms; /* 0: never */
};

/* Views loaded together. */
struct views {
	struct view  *v; /* in the order read */
	size_t	      n;
	struct view **byid; /* v sorted by id */
	bool	      more; /* a page: more sources follow */
};

/*
 * Load the sources matching q (NULL: every one) and their states into *vs
 * (views_clear it, also after a failure). limit > 0 reads a page: at most
 * limit sources, oldest first (createdAt, then id), vs->more telling
 * whether more follow, and only the page's states; limit 0 reads every
 * source unsorted and every state. 0, or -EIO with err[].
 */
int views_load(mongoc_client_t *c, const bson_t *q, int64_t limit,
    struct views *vs, char *err, size_t errlen);
/*
 * The view of source document src (copied), its two states read by _id.
 * 0, or -EIO with err[] (the view then shows what was read). view_clear
 * it.
 */
int view_of_doc(const bson_t *src, struct view *v, char *err, size_t errlen);
/* The view of source id in vs (id: idlen bytes), or NULL. */
const struct view *views_find(const struct views *vs, const char *id,
    size_t idlen);
/* The members of v's public JSON view (never a secret). */
void view_json(struct jsonw *w, const struct view *v);
/* Member key: the ms time field of doc as RFC 3339, null when absent/0. */
void view_json_time(struct jsonw *w, const char *key, const bson_t *doc,
    const char *field);
void view_clear(struct view *v);
void views_clear(struct views *vs);

#endif
