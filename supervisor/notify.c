/*
 * sd_notify(3) wrappers. See notify.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "lib/base/util.h"
#include "supervisor/notify.h"

static char notify_last_status[1400];

void
notify_ready(const char *status)
{
	if (status == NULL) {
		sd_notify(0, "READY=1");
		return;
	}
	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
	util_strlcpy(notify_last_status, status, sizeof(notify_last_status));
}

void
notify_status(const char *fmt, ...)
{
	char	buf[1400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (strcmp(buf, notify_last_status) == 0)
		return;
	util_strlcpy(notify_last_status, buf, sizeof(notify_last_status));
	sd_notifyf(0, "STATUS=%s", buf);
}

void
notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

void
notify_reloading(void)
{
	/* MONOTONIC_USEC is wanted by systemd >= 253 for Type=notify-reload. */
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%lld\nSTATUS=reloading",
	    (long long)util_mono_ms() * 1000);
	util_strlcpy(notify_last_status, "reloading",
	    sizeof(notify_last_status));
}

void
notify_watchdog(void)
{
	sd_notify(0, "WATCHDOG=1");
}

uint64_t
notify_watchdog_ms(void)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec / 1000;
}
