/*
 * Logging for the daemons: one line per event on stderr, the process name
 * on every line, a "<N>" sd-daemon priority prefix when stderr is journald
 * ($JOURNAL_STREAM matches), a timestamp when stderr is a terminal.
 * lib/ code never logs above debug (STYLE.md); daemons log once, where they
 * decide, with ids as key=value.
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

void	log_init(const char *name, int verbose);
void	log_set_verbose(int verbose);
const char *log_name(void);
bool	log_debug_enabled(void);
/* True when stderr is connected to journald ($JOURNAL_STREAM). */
bool	log_is_journal(void);

void	log_msg(enum log_level, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	log_vmsg(enum log_level, const char *fmt, va_list ap)
	    __attribute__((format(printf, 2, 0)));

#define log_err(...)	log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_notice(...)	log_msg(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)	do { if (log_debug_enabled()) \
	log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); } while (0)

/* Log at err level and exit(1). For startup, OOM and broken invariants. */
void	fatal(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
/* Same, exiting with a given status (e.g. 78 for EX_CONFIG). */
void	fatal_status(int status, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3), noreturn));

/*
 * Redaction: register a secret (API token, webhook secret...) so that any
 * log line containing it prints "[REDACTED]" instead. Belt and braces:
 * code must not log secrets in the first place.
 */
void	log_redact_add(const char *secret);
void	log_redact_clear(void);
/* Redact registered secrets and PEM blocks in buf, in place. */
void	log_redact(char *buf, size_t size);

#endif
