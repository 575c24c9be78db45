/*
 * GET /metrics: Prometheus text exposition of the sources' state, the
 * fetch and delivery counters of the stats collection, the daemons'
 * restarts and the API's own counters.
 */
#ifndef AR_APID_METRICS_H
#define AR_APID_METRICS_H

struct areq;

void	metrics_get(struct areq *a);

#endif
