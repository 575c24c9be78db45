/*
 * Batch and alert bodies. See batch.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/json.h"
#include "lib/base/util.h"
#include "lib/batch/batch.h"

/* Append n bytes, growing the buffer geometrically. */
static int
batch_body_put(struct batch_body *b, const char *s, size_t n)
{
	size_t ncap;
	char  *nb;

	if (b->err != 0)
		return b->err;
	if (b->len + n + 1 > b->cap) {
		ncap = b->cap > 0 ? b->cap : 4096;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		if ((nb = realloc(b->buf, ncap)) == NULL) {
			b->err = -ENOMEM;
			return b->err;
		}
		b->buf = nb;
		b->cap = ncap;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = '\0';
	return 0;
}

int
batch_body_begin(struct batch_body *b, const char *source_id,
    const char *batch_id)
{
	struct jsonw *w;
	const char   *s;
	size_t	      n;
	int	      rc;

	memset(b, 0, sizeof(*b));
	if ((w = jsonw_new()) == NULL)
		return -ENOMEM;
	jsonw_obj_open(w);
	jsonw_kv_str(w, "type", "logs");
	jsonw_kv_str(w, "sourceId", source_id);
	jsonw_kv_str(w, "batchId", batch_id);
	jsonw_key(w, "logs");
	if ((rc = jsonw_error(w)) != 0 || (s = jsonw_buf(w, &n)) == NULL) {
		jsonw_free(w);
		return rc != 0 ? rc : -ENOMEM;
	}
	rc = batch_body_put(b, s, n);
	jsonw_free(w);
	/* The writer emits the key's colon with its value: add both. */
	if (rc == 0)
		rc = b->len > 0 && b->buf[b->len - 1] == ':' ?
		    batch_body_put(b, "[", 1) :
		    batch_body_put(b, ":[", 2);
	return rc;
}

bool
batch_body_fits(const struct batch_body *b, size_t loglen, size_t max_bytes)
{
	if (b->nlogs == 0)
		return true;
	/* The comma, the log, then "]}". */
	return b->len + 1 + loglen + 2 <= max_bytes;
}

int
batch_body_add(struct batch_body *b, const char *json, size_t len)
{
	if (b->nlogs > 0 && batch_body_put(b, ",", 1) != 0)
		return b->err;
	if (batch_body_put(b, json, len) != 0)
		return b->err;
	b->nlogs++;
	return 0;
}

int
batch_body_end(struct batch_body *b)
{
	return batch_body_put(b, "]}", 2);
}

void
batch_body_clear(struct batch_body *b)
{
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

char *
batch_alert_body(const char *source_id, const char *alert, const char *message,
    int64_t at_ms, size_t *len)
{
	struct jsonw *w;
	char	      at[32], *out = NULL;

	if ((w = jsonw_new()) == NULL)
		return NULL;
	/* DESIGN.md's example has whole seconds: "2026-11-23T12:00:00Z". */
	time_format_rfc3339_ms(at_ms - at_ms % 1000, at);
	if (strlen(at) == 24 && strcmp(at + 19, ".000Z") == 0) {
		at[19] = 'Z';
		at[20] = '\0';
	}
	jsonw_obj_open(w);
	jsonw_kv_str(w, "type", "alert");
	jsonw_kv_str(w, "sourceId", source_id);
	jsonw_kv_str(w, "alert", alert);
	jsonw_kv_str(w, "message", message);
	jsonw_kv_str(w, "at", at);
	jsonw_obj_close(w);
	if (jsonw_error(w) == 0)
		out = jsonw_steal(w, len);
	jsonw_free(w);
	return out;
}

char *
batch_watermark_body(const char *source_id, const char *app, int64_t through_ms,
    size_t *len)
{
	struct jsonw *w;
	char	      through[32], *out = NULL;

	if ((w = jsonw_new()) == NULL)
		return NULL;
	time_format_rfc3339_ms(through_ms, through);
	jsonw_obj_open(w);
	jsonw_kv_str(w, "type", "watermark");
	jsonw_kv_str(w, "sourceId", source_id);
	jsonw_kv_str(w, "application", app);
	jsonw_kv_str(w, "through", through);
	jsonw_obj_close(w);
	if (jsonw_error(w) == 0)
		out = jsonw_steal(w, len);
	jsonw_free(w);
	return out;
}

void
batch_webhook_id(const char *batch_id, char out[48])
{
	size_t i, o = 0;

	memcpy(out, "msg_", 4);
	o = 4;
	for (i = 0; batch_id[i] != '\0' && o < 47; i++)
		if (batch_id[i] != '-')
			out[o++] = batch_id[i];
	out[o] = '\0';
}
