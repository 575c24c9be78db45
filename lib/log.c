/*
 * Logging to stderr, journald-aware. See log.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"

#define LOG_REDACT_MAX	16
#define LOG_LINE_MAX	4096

static char	 log_procname[64] = "auditrelay";
static int	 log_verbose;
static bool	 log_journal;
static bool	 log_tty;
static char	*log_secrets[LOG_REDACT_MAX];

/*
 * Decide whether stderr is the journal: $JOURNAL_STREAM is "dev:ino" of the
 * stream systemd connected, compare it with fd 2.
 */
static bool
log_stderr_is_journal(void)
{
	const char	*js = getenv("JOURNAL_STREAM");
	unsigned long	 dev, ino;
	struct stat	 st;

	if (js == NULL || sscanf(js, "%lu:%lu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) == -1)
		return false;
	return st.st_dev == dev && st.st_ino == ino;
}

void
log_init(const char *name, int verbose)
{
	snprintf(log_procname, sizeof(log_procname), "%s", name);
	log_verbose = verbose;
	log_journal = log_stderr_is_journal();
	log_tty = isatty(STDERR_FILENO);
}

void
log_set_verbose(int verbose)
{
	log_verbose = verbose;
}

const char *
log_name(void)
{
	return log_procname;
}

bool
log_is_journal(void)
{
	return log_journal;
}

bool
log_debug_enabled(void)
{
	return log_verbose > 0;
}

void
log_redact_add(const char *secret)
{
	int	i;

	if (secret == NULL || strlen(secret) < 4)
		return;
	for (i = 0; i < LOG_REDACT_MAX; i++) {
		if (log_secrets[i] != NULL && strcmp(log_secrets[i], secret) == 0)
			return;
		if (log_secrets[i] == NULL) {
			log_secrets[i] = strdup(secret);
			return;
		}
	}
}

void
log_redact_clear(void)
{
	int	i;

	for (i = 0; i < LOG_REDACT_MAX; i++) {
		free(log_secrets[i]);
		log_secrets[i] = NULL;
	}
}

/* Replace every occurrence of needle in buf by "[REDACTED]". */
static void
log_redact_one(char *buf, size_t size, const char *needle)
{
	static const char	 mask[] = "[REDACTED]";
	size_t			 nlen = strlen(needle), mlen = sizeof(mask) - 1;
	char			*p;

	while ((p = strstr(buf, needle)) != NULL) {
		size_t	tail = strlen(p + nlen);

		if (mlen > nlen && (size_t)(p - buf) + mlen + tail + 1 > size)
			tail = size - (size_t)(p - buf) - mlen - 1;
		memmove(p + mlen, p + nlen, tail);
		memcpy(p, mask, mlen);
		p[mlen + tail] = '\0';
	}
}

void
log_redact(char *buf, size_t size)
{
	char	*p, *e;
	int	 i;

	for (i = 0; i < LOG_REDACT_MAX; i++)
		if (log_secrets[i] != NULL)
			log_redact_one(buf, size, log_secrets[i]);
	/* Any PEM private key body, whoever put it there. */
	while ((p = strstr(buf, "-----BEGIN")) != NULL &&
	    strstr(p, "PRIVATE KEY") != NULL) {
		e = strstr(p + 10, "-----END");
		if (e == NULL)
			e = p + strlen(p);
		else if ((e = strstr(e + 8, "-----")) != NULL)
			e += 5;
		else
			e = p + strlen(p);
		memmove(p + 10, e, strlen(e) + 1);
		memcpy(p, "[REDACTED]", 10);
	}
	/* Bearer tokens. */
	if ((p = strstr(buf, "Bearer ")) != NULL) {
		p += 7;
		e = p;
		while (*e != '\0' && *e != ' ' && *e != '"' && *e != '\n')
			e++;
		if (e > p) {
			memmove(p + 10, e, strlen(e) + 1);
			memcpy(p, "[REDACTED]", 10);
		}
	}
}

void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char		 line[LOG_LINE_MAX], ts[40];
	struct timespec	 now;
	struct tm	 tm;
	int		 saved = errno;
	size_t		 i;

	if (level == LOG_LEVEL_DEBUG && log_verbose <= 0)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	log_redact(line, sizeof(line));
	for (i = 0; line[i] != '\0'; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	if (log_journal) {
		fprintf(stderr, "<%d>%s: %s\n", (int)level, log_procname, line);
	} else if (log_tty) {
		clock_gettime(CLOCK_REALTIME, &now);
		localtime_r(&now.tv_sec, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ld %s: %s\n", ts, now.tv_nsec / 1000000,
		    log_procname, line);
	} else {
		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ %s[%d]: %s\n", ts,
		    now.tv_nsec / 1000000, log_procname, (int)getpid(), line);
	}
	fflush(stderr);
	errno = saved;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERR, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatal_status(int status, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERR, fmt, ap);
	va_end(ap);
	exit(status);
}
