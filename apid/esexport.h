/*
 * Optional export of metrics and alerts to Elasticsearch's _bulk API
 * (ECS-shaped documents), every 30 s while elasticsearch_url is set.
 */
#ifndef AR_APID_ESEXPORT_H
#define AR_APID_ESEXPORT_H

/* Start the export timer (reads the configuration at every tick). */
void esexport_start(void);

#endif
