/*
 * Logging for the daemons: one line per event, the process name on every
 * line. Under journald ($JOURNAL_STREAM matches stderr) each line is a
 * journal entry of its own (sd_journal_sendv: MESSAGE, PRIORITY,
 * SYSLOG_IDENTIFIER and the line's ids as SOURCE_ID, APPLICATION, BATCH_ID
 * and WINDOW), or, when that fails, a stderr line with a "<N>" priority
 * prefix; elsewhere a stderr line with a timestamp.
 * lib/ code never logs above debug (STYLE.md); daemons log once, where they
 * decide: a sentence, then the ids as key=value (source=, app=, batch=,
 * window=, partition=, instance=, pid=...; auditrelayd(8), LOGS).
 */
#ifndef AR_LIB_LOG_H
#define AR_LIB_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level {
	LOG_LEVEL_ERR = 3,
	LOG_LEVEL_WARNING = 4,
	LOG_LEVEL_NOTICE = 5,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

void	    log_init(const char *name, int verbose);
void	    log_set_verbose(int verbose);
const char *log_name(void);
bool	    log_debug_enabled(void);
/* True when stderr is connected to journald ($JOURNAL_STREAM). */
bool log_is_journal(void);

void log_msg(enum log_level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#define log_err(...)	log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                         \
	do {                                                   \
		if (log_debug_enabled())                       \
			log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); \
	} while (0)

/* Log at err level and exit(1). For startup, OOM and broken invariants. */
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
/* Same, exiting with a given status (e.g. 78 for EX_CONFIG). */
void fatal_status(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/*
 * Redaction: register a secret (API token, webhook secret...) so that any
 * log line containing it prints "[REDACTED]" instead. Belt and braces:
 * code must not log secrets in the first place.
 */
void log_redact_add(const char *secret);
void log_redact_clear(void);
/* Redact registered secrets and PEM blocks in buf, in place. */
void log_redact(char *buf, size_t size);

/*
 * The ids of a line that become journal fields: source= (SOURCE_ID), app=
 * (APPLICATION), batch= (BATCH_ID), window= (WINDOW).
 */
enum log_field {
	LOG_FIELD_SOURCE,
	LOG_FIELD_APP,
	LOG_FIELD_BATCH,
	LOG_FIELD_WINDOW,
	LOG_FIELD_COUNT
};
#define LOG_FIELD_MAX 128 /* bytes of a value, with its NUL */

struct log_fields {
	char v[LOG_FIELD_COUNT][LOG_FIELD_MAX]; /* "" when absent */
};

/*
 * Find the key=value pairs of enum log_field in the len bytes of line (a
 * NUL ends it early). A key counts at the start of the line or after a
 * space, '(' or ','; its value runs to a blank, control byte, ';', ',',
 * '(', ')' or '"', without a trailing ':' or '.'; the first pair of a key
 * wins; an empty value or one of LOG_FIELD_MAX bytes or more is no value.
 * No allocation. Returns the number of fields found.
 */
int log_fields_parse(const char *line, size_t len, struct log_fields *);
/* "SOURCE_ID", "APPLICATION", ...: the journal field name of a key. */
const char *log_field_journal_name(enum log_field);

#endif
