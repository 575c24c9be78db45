/*
 * Logging to journald or stderr. See log.h.
 */
#include <sys/uio.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "lib/base/log.h"

#define LOG_REDACT_MAX 16
#define LOG_LINE_MAX   4096

static char  log_procname[64] = "auditrelay";
static int   log_verbose;
static bool  log_journal;
static bool  log_tty;
static char *log_secrets[LOG_REDACT_MAX];

/*
 * Decide whether stderr is the journal: $JOURNAL_STREAM is "dev:ino" of the
 * stream systemd connected, compare it with fd 2.
 */
static bool
log_stderr_is_journal(void)
{
	const char   *js = getenv("JOURNAL_STREAM");
	unsigned long dev, ino;
	struct stat   st;

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
	int i;

	if (secret == NULL || strlen(secret) < 4)
		return;
	for (i = 0; i < LOG_REDACT_MAX; i++) {
		if (log_secrets[i] != NULL &&
		    strcmp(log_secrets[i], secret) == 0)
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
	int i;

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
	static const char mask[] = "[REDACTED]";
	const size_t	  mlen = sizeof(mask) - 1;
	char		  copy[LOG_LINE_MAX], *src = copy;
	size_t		  len, i, o = 0, n;
	int		  k;
	bool		  pem;

	if (buf == NULL || size == 0)
		return;
	len = strnlen(buf, size - 1);
	/* A log line fits the stack copy; only a longer buffer allocates. */
	if (len < sizeof(copy)) {
		memcpy(copy, buf, len);
		copy[len] = '\0';
	} else if ((src = strndup(buf, len)) == NULL) {
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
		if (pem && len - i >= 10 &&
		    memcmp(src + i, "-----BEGIN", 10) == 0) {
			/* To the end of the -----END ...----- line, or all. */
			char *e = strstr(src + i + 10, "-----END");

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
			     src[n] != '\n';
			     n++)
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
	if (src != copy)
		free(src);
}

static const struct {
	const char *key; /* with its '=' */
	size_t	    keylen;
	const char *journal;
} log_field_keys[LOG_FIELD_COUNT] = {
	[LOG_FIELD_SOURCE] = { "source=", 7, "SOURCE_ID" },
	[LOG_FIELD_APP] = { "app=", 4, "APPLICATION" },
	[LOG_FIELD_BATCH] = { "batch=", 6, "BATCH_ID" },
	[LOG_FIELD_WINDOW] = { "window=", 7, "WINDOW" },
};

const char *
log_field_journal_name(enum log_field f)
{
	return (unsigned)f < LOG_FIELD_COUNT ? log_field_keys[f].journal : NULL;
}

/* True when c ends a value: a blank, a control byte or a delimiter. */
static bool
log_field_end(unsigned char c)
{
	return c <= ' ' || c == 0x7f || c == ';' || c == ',' || c == '(' ||
	    c == ')' || c == '"';
}

int
log_fields_parse(const char *line, size_t len, struct log_fields *f)
{
	size_t i, e, n;
	int    k, found = 0;

	memset(f->v, 0, sizeof(f->v));
	if (line == NULL)
		return 0;
	len = strnlen(line, len);
	for (i = 0; i < len && found < LOG_FIELD_COUNT; i++) {
		if (i > 0 && line[i - 1] != ' ' && line[i - 1] != '(' &&
		    line[i - 1] != ',')
			continue;
		for (k = 0; k < LOG_FIELD_COUNT; k++) {
			n = log_field_keys[k].keylen;
			if (n <= len - i &&
			    memcmp(line + i, log_field_keys[k].key, n) == 0)
				break;
		}
		if (k == LOG_FIELD_COUNT)
			continue;
		i += log_field_keys[k].keylen;
		for (e = i; e < len && !log_field_end((unsigned char)line[e]);
		     e++)
			if (e - i >= LOG_FIELD_MAX) /* too long: no value */
				break;
		n = e - i;
		if (e < len && !log_field_end((unsigned char)line[e]))
			n = 0;
		while (
		    n > 0 && (line[i + n - 1] == ':' || line[i + n - 1] == '.'))
			n--;
		if (n > 0 && n < LOG_FIELD_MAX && f->v[k][0] == '\0') {
			memcpy(f->v[k], line + i, n);
			f->v[k][n] = '\0';
			found++;
		}
		i = e > i ? e - 1 : i - 1;
	}
	return found;
}

/*
 * The line as one journal entry: the message as the stream carried it
 * ("NAME: line"), its priority, the identifier and the ids of the line.
 * Every field comes from the redacted line and is redacted once more on
 * its own. Returns 0, or -errno when journald did not take it.
 */
static int
log_journal_send(enum log_level level, const char *line)
{
	static const char ids[] = "SYSLOG_IDENTIFIER=";
	struct log_fields f;
	struct iovec	  iov[3 + LOG_FIELD_COUNT];
	char msg[sizeof("MESSAGE=") + sizeof(log_procname) + 2 + LOG_LINE_MAX];
	char pri[sizeof("PRIORITY=") + 4];
	char ident[sizeof(ids) + sizeof(log_procname)];
	char fv[LOG_FIELD_COUNT][16 + LOG_FIELD_MAX];
	int  n = 0, k;

	snprintf(msg, sizeof(msg), "MESSAGE=%s: %s", log_procname, line);
	snprintf(pri, sizeof(pri), "PRIORITY=%d", (int)level);
	snprintf(ident, sizeof(ident), "%s%s", ids, log_procname);
	iov[n].iov_base = msg;
	iov[n++].iov_len = strlen(msg);
	iov[n].iov_base = pri;
	iov[n++].iov_len = strlen(pri);
	iov[n].iov_base = ident;
	iov[n++].iov_len = strlen(ident);
	log_fields_parse(line, LOG_LINE_MAX, &f);
	for (k = 0; k < LOG_FIELD_COUNT; k++) {
		if (f.v[k][0] == '\0')
			continue;
		log_redact(f.v[k], sizeof(f.v[k]));
		snprintf(fv[k], sizeof(fv[k]), "%s=%s",
		    log_field_keys[k].journal, f.v[k]);
		iov[n].iov_base = fv[k];
		iov[n++].iov_len = strlen(fv[k]);
	}
	return sd_journal_sendv(iov, n);
}

void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char		line[LOG_LINE_MAX], ts[40];
	struct timespec now;
	struct tm	tm;
	int		saved = errno;
	size_t		i;

	if (level == LOG_LEVEL_DEBUG && log_verbose <= 0)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	log_redact(line, sizeof(line));
	for (i = 0; line[i] != '\0'; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	if (log_journal) {
		if (log_journal_send(level, line) == 0) {
			errno = saved;
			return;
		}
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
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERR, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatal_status(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERR, fmt, ap);
	va_end(ap);
	exit(status);
}
