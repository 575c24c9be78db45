/*
 * Normalization of Google Reports API activities into webhook logs (see
 * DESIGN.md "Webhook contract"): one log per event, with a stable id.
 * Library code: returns 0 or -errno, never logs, fills err[].
 */
#ifndef AR_LIB_NORMALIZE_H
#define AR_LIB_NORMALIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#define NORM_ID_LEN	    32		       /* hex chars of the log id */
#define NORM_PAGE_MAX_DEPTH 64		       /* nesting limit for a page */
#define NORM_LOG_MAX	    (1024 * 1024)      /* bytes of one log's JSON */
#define NORM_PAGE_OUT_MAX   (64 * 1024 * 1024) /* bytes of a page's logs */

/*
 * One normalized log. json is the complete log object
 * {"id","timestamp","application","actor":{...},"eventType","eventName",
 * "details":{...},"raw":{...}} (plus "error" when error is true), compact,
 * NUL-terminated. An activity that could not be understood gives a log
 * with error true, eventType "unparsed" and the activity kept in "raw".
 * "raw" is the activity with "events" holding only this log's event. A
 * log over NORM_LOG_MAX bytes (or once a page's logs pass
 * NORM_PAGE_OUT_MAX) is delivered truncated: details {}, raw null,
 * "truncated": true, "originalBytes": its size; truncated is set.
 * event_name and param_names say what the event was called and which
 * parameters it had (schema-drift detection): a copy of the event's
 * "name" (NULL when it has none), and the distinct names of its
 * "parameters" and "sensitiveParameters" (top level, in order), each
 * NUL-terminated, one after the other in param_names (param_names_len
 * bytes in all, NULL and 0 when there are none). Both stay NULL for an
 * activity-level error log.
 */
struct norm_log {
	char	id[NORM_ID_LEN + 1];
	char   *app;	 /* application name, never NULL */
	int64_t time_ms; /* id.time; 0 when unknown */
	char   *json;
	size_t	json_len;
	bool	error;
	bool	truncated;	 /* over a size cap, see above */
	char   *event_name;	 /* may be NULL */
	char   *param_names;	 /* "a\0b\0", may be NULL */
	size_t	param_names_len; /* bytes of param_names */
};

/*
 * Stable log id: the first 32 lowercase hex chars of SHA-256 of
 * "v1" US customerId US applicationName US time US uniqueQualifier US
 * event_index US event_name (US = 0x1f; time as "...SS.mmmZ" from
 * time_ms; NULL strings count as empty). Writes out[33]. 0 or -ENOMEM.
 */
int normalize_log_id(const char *customer_id, const char *app, int64_t time_ms,
    const char *unique_qualifier, size_t event_index, const char *event_name,
    char out[NORM_ID_LEN + 1]);

/*
 * Normalize one activity (an item of activities.list) into *nlogs logs
 * (one per event; events given as a single object count as one event).
 * app_fallback names the application when id.applicationName is missing.
 * A malformed activity (not an object, no id.time / id.uniqueQualifier,
 * events missing, empty or not an array) is never dropped: it yields one
 * error log whose id hashes the activity's text. An event that is not an
 * object, has no name, or has unnamed parameters gives a log with error
 * set (and "error" saying why) but keeps what could be read. Logs are
 * appended to *logs (realloc'd; start with *logs NULL, *nlogs 0), so a
 * caller may accumulate a page. Returns 0, -EINVAL (activity NULL) or
 * -ENOMEM; on failure *logs and *nlogs are left as they were.
 */
int normalize_activity(yajl_val activity, const char *app_fallback,
    struct norm_log **logs, size_t *nlogs, char *err, size_t errlen);

/*
 * Parse an activities.list page ({kind, etag, items[], nextPageToken})
 * and normalize every item. *next_page_token receives a malloc'd copy of
 * nextPageToken or NULL on the last page. A body that is not JSON, is
 * truncated, or is not shaped like a page is -EINVAL with err[] set and
 * nothing returned (the caller retries the page). A page without "items"
 * is an empty page. Returns 0, -EINVAL or -ENOMEM; *logs and *nlogs are
 * output only (set to NULL/0 on failure).
 */
int normalize_page(const char *body, size_t len, const char *app_fallback,
    struct norm_log **logs, size_t *nlogs, char **next_page_token, char *err,
    size_t errlen);

/* Free an array of logs as returned above (NULL is a no-op). */
void norm_logs_free(struct norm_log *logs, size_t nlogs);
/* Free what one log holds (the log itself is not freed). */
void norm_log_clear(struct norm_log *l);

#endif
