/*
 * sd_notify(3) wrappers: harmless when not run by systemd.
 */
#ifndef AR_SUPERVISOR_NOTIFY_H
#define AR_SUPERVISOR_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* READY=1, with STATUS=status unless NULL. */
void notify_ready(const char *status);
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void notify_stopping(void);
void notify_reloading(void);
void notify_watchdog(void);
/* Watchdog interval in ms wanted by systemd, 0 when none. */
uint64_t notify_watchdog_ms(void);

#endif
