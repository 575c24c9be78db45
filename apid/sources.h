/*
 * Handlers of the sources endpoints: add, remove, list, get, rotate
 * credentials, rotate the webhook secret, patch, dead letters.
 */
#ifndef AR_APID_SOURCES_H
#define AR_APID_SOURCES_H

struct areq;

void sources_add(struct areq *a);
void sources_remove(struct areq *a);
void sources_list(struct areq *a);
void sources_get(struct areq *a);
void sources_patch(struct areq *a);
void sources_put_credentials(struct areq *a);
void sources_rotate_secret(struct areq *a);
void sources_dead_letters(struct areq *a);
void sources_replay(struct areq *a);

#endif
