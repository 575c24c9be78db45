/*
 * Handlers of the sources endpoints: add, remove, list, get, rotate
 * credentials, rotate the webhook secret, patch, dead letters.
 */
#ifndef AR_APID_SOURCES_H
#define AR_APID_SOURCES_H

#include <bson/bson.h>

struct areq;
struct jsonw;

void sources_add(struct areq *a);
void sources_remove(struct areq *a);
void sources_list(struct areq *a);
void sources_get(struct areq *a);
void sources_patch(struct areq *a);
void sources_put_credentials(struct areq *a);
void sources_rotate_secret(struct areq *a);
void sources_dead_letters(struct areq *a);
void sources_replay(struct areq *a);

/*
 * Load source id into *out (bson_destroy it): 1 found, 0 not found (404
 * sent), -1 (503 sent).
 */
int sources_load(struct areq *a, const char *id, bson_t *out);
/* Record a store failure and reply 503. */
void sources_store_failed(struct areq *a, const char *err);
/* Reply code with w's JSON (500 naming what when it cannot render). */
void sources_reply_jsonw(struct areq *a, int code, struct jsonw *w,
    const char *what);

#endif
