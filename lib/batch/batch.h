/*
 * The bodies deliverd POSTs, exactly as DESIGN.md's webhook contract
 * shapes them: a log batch (the stored log JSON, byte for byte, in store
 * order) and an alert. Pure functions.
 */
#ifndef AR_LIB_BATCH_H
#define AR_LIB_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct batch_body {
	char  *buf;
	size_t len, cap;
	size_t nlogs;
	int    err; /* first error, -ENOMEM */
};

/* Start {"type":"logs","sourceId":...,"batchId":...,"logs":[. 0/-errno. */
int batch_body_begin(struct batch_body *b, const char *source_id,
    const char *batch_id);
/*
 * True when a log of loglen bytes may join without the finished body
 * exceeding max_bytes (the first log always fits).
 */
bool batch_body_fits(const struct batch_body *b, size_t loglen,
    size_t max_bytes);
/* Append one stored log JSON verbatim. 0 or -errno. */
int batch_body_add(struct batch_body *b, const char *json, size_t len);
/* Close the array and object; b->buf is then the NUL-terminated body. */
int  batch_body_end(struct batch_body *b);
void batch_body_clear(struct batch_body *b);

/*
 * {"type":"alert","sourceId":...,"alert":...,"message":...,"at":RFC3339}.
 * malloc'd, *len its length; NULL on error.
 */
char *batch_alert_body(const char *source_id, const char *alert,
    const char *message, int64_t at_ms, size_t *len);

/*
 * {"type":"watermark","sourceId":...,"application":...,"through":RFC3339
 * with milliseconds}: every event of the application with id.time <=
 * through is delivered (docs/WATERMARK.md). malloc'd, *len its length;
 * NULL on error.
 */
char *batch_watermark_body(const char *source_id, const char *app,
    int64_t through_ms, size_t *len);

/* The webhook-id of a batch: "msg_" + its uuid without dashes. */
void batch_webhook_id(const char *batch_id, char out[48]);

#endif
