/*
 * GET /metrics: Prometheus text exposition of the sources' state, the
 * fetch and delivery counters of the stats collection, the daemons'
 * restarts and the API's own counters.
 */
#ifndef AR_APID_METRICS_H
#define AR_APID_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include <bson/bson.h>

struct areq;

void metrics_get(struct areq *a);
/*
 * p50 and p99 of the lag (seconds) of a fetch stats document, estimated
 * from its histogram; false when nothing was observed.
 */
bool metrics_lag(const bson_t *d, double *p50, double *p99);
/* Sum of the numbers of the array at dotkey (0 when absent). */
int64_t metrics_array_sum(const bson_t *d, const char *dotkey);

#endif
