/*
 * auditrelayctl: the command-line client of the auditrelay REST API.
 * ctl.c holds the global options, the token and URL discovery, one blocking
 * libcurl request helper, error reporting and a small table printer;
 * cmd.c holds the subcommands.
 */
#ifndef AR_CTL_CTL_H
#define AR_CTL_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <yajl/yajl_tree.h>

/* Exit statuses (documented in auditrelayctl(1)). */
#define CTL_EXIT_OK	 0 /* done */
#define CTL_EXIT_API	 1 /* the API refused, or status degraded */
#define CTL_EXIT_USAGE	 2 /* bad command line or input file */
#define CTL_EXIT_CONNECT 3 /* the API could not be reached */
#define CTL_EXIT_AUTH	 4 /* no token, or the token was refused */

#define CTL_DEFAULT_CONFIG     AR_SYSCONFDIR "/auditrelay/auditrelay.conf"
#define CTL_DEFAULT_TOKEN_FILE AR_SYSCONFDIR "/auditrelay/api-token"
#define CTL_DEFAULT_URL	       "http://127.0.0.1:8080"

struct ctl_opts {
	const char *url;	    /* --url */
	const char *token_file;	    /* --token-file */
	const char *config;	    /* --config */
	bool	    json;	    /* --json */
	long	    timeout;	    /* --timeout, seconds */
	bool	    anonymous;	    /* send no token (/healthz) */
	bool	    token_optional; /* send one if there is one */
};

/* A response: HTTP status, body, and its parsed JSON when it is JSON. */
struct ctl_resp {
	long	 status;
	char	*body;
	size_t	 len;
	yajl_val json;
};

extern struct ctl_opts ctl_opts;

/* Long options every subcommand accepts (see ctl_opt_global()). */
#define CTL_GLOBAL_LONGOPTS                                 \
	{ "url", required_argument, NULL, 'U' },            \
	    { "token-file", required_argument, NULL, 'T' }, \
	    { "config", required_argument, NULL, 'C' },     \
	    { "json", no_argument, NULL, 'J' },             \
	    { "timeout", required_argument, NULL, 'W' },    \
	{                                                   \
		"help", no_argument, NULL, 'h'              \
	}

/*
 * Handle a global option returned by getopt_long (ch, optarg). Returns 1
 * when it was one, 0 when not, -1 when its argument is bad (reported).
 */
int ctl_opt_global(int ch, const char *arg);
/* The text describing the global options, for every --help. */
void ctl_usage_global(FILE *f);

/*
 * True while stdout holds a line without its newline (a progress bar
 * redrawn in place): ctl_warnx() ends that line first.
 */
extern bool ctl_line_open;

/* "auditrelayctl: ..." on stderr. */
void ctl_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Send one request to the API: method, path (already escaped), optional
 * JSON body. On a response (any status) fills r and returns 0; on a
 * transport failure prints why and returns CTL_EXIT_CONNECT; without a
 * token returns CTL_EXIT_AUTH.
 */
int ctl_request(const char *method, const char *path, const char *body,
    struct ctl_resp *r);
/*
 * Turn a response into an exit status: 2xx is CTL_EXIT_OK; otherwise the
 * API's error.message (and error.field) is printed and CTL_EXIT_API (or
 * CTL_EXIT_AUTH for 401/403) returned.
 */
int  ctl_check(const struct ctl_resp *r);
void ctl_resp_clear(struct ctl_resp *r);
/* Print the body as received (for --json), with a final newline. */
void ctl_print_raw(const struct ctl_resp *r);

/* Escape s for use as one URL path segment; malloc'd, NULL on error. */
char *ctl_escape(const char *s);
/* Read a whole file (at most 1 MiB) into a malloc'd NUL-terminated buffer. */
int ctl_read_file(const char *path, char **out, size_t *len);

/*
 * Format a JSON value for a table cell into buf: strings as is, numbers
 * as written (large integers that look like epoch milliseconds as RFC 3339),
 * booleans, arrays joined with commas, null and absent as "-".
 */
const char *ctl_cell(yajl_val v, char *buf, size_t len);

/* A text table: add rows of ncols cells, print with aligned columns. */
struct ctl_table;

struct ctl_table *ctl_table_new(size_t ncols, const char *const *head);
void		  ctl_table_add(struct ctl_table *t, const char *const *cells);
void		  ctl_table_print(struct ctl_table *t, FILE *f);
void		  ctl_table_free(struct ctl_table *t);

#endif
