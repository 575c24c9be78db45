/*
 * Logging to stderr, journald-aware. See log.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
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

/* Append n bytes of s to out (of size) at *o, never past size - 1. */
static void
log_put(char *out, size_t size, size_t *o, const char *s, size_t n)
{
	if (*o + 1 >= size)
		return;
	if (n > size - 1 - *o)
		n = size - 1 - *o;
	memcpy(out + *o, s, n);
	*o += n;
}

/*
 * Rewrite buf (a NUL-terminated line in size bytes) with every registered
 * secret, every PEM private key block and every Bearer token replaced by
 * "[REDACTED]". One pass over a copy into buf: the result is cut at size
 * - 1 bytes, never written past it, whatever the line holds.
 */
void
log_redact(char *buf, size_t size)
{
	static const char	 mask[] = "[REDACTED]";
	const size_t		 mlen = sizeof(mask) - 1;
	char			*src;
	size_t			 len, i, o = 0, n;
	int			 k;
	bool			 pem;

	if (buf == NULL || size == 0)
		return;
	len = strnlen(buf, size - 1);
	if ((src = strndup(buf, len)) == NULL) {
		buf[0] = '\0';
		return;
	}
	pem = strstr(src, "-----BEGIN") != NULL &&
	    strstr(src, "PRIVATE KEY") != NULL;
	for (i = 0; i < len && o + 1 < size;) {
		for (k = 0; k < LOG_REDACT_MAX; k++) {
			if (log_secrets[k] == NULL)
				continue;
			n = strlen(log_secrets[k]);
			if (n > 0 && n <= len - i &&
			    memcmp(src + i, log_secrets[k], n) == 0)
				break;
		}
		if (k < LOG_REDACT_MAX) {
			log_put(buf, size, &o, mask, mlen);
			i += strlen(log_secrets[k]);
			continue;
		}
		if (pem && len - i >= 10 && memcmp(src + i, "-----BEGIN",
		    10) == 0) {
			/* To the end of the -----END ...----- line, or all. */
			char	*e = strstr(src + i + 10, "-----END");

			if (e != NULL && (e = strstr(e + 8, "-----")) != NULL)
				n = (size_t)(e + 5 - src);
			else
				n = len;
			log_put(buf, size, &o, mask, mlen);
			i = n;
			continue;
		}
		if (len - i >= 7 && memcmp(src + i, "Bearer ", 7) == 0) {
			log_put(buf, size, &o, src + i, 7);
			i += 7;
			for (n = i; n < len && src[n] != ' ' && src[n] != '"' &&
			    src[n] != '\n'; n++)
				;
			if (n > i)
				log_put(buf, size, &o, mask, mlen);
			i = n;
			continue;
		}
		buf[o++] = src[i++];
	}
	buf[o] = '\0';
	explicit_bzero(src, len);
	free(src);
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
