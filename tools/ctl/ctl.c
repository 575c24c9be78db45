/*
 * auditrelayctl: global options, token and URL discovery, the blocking
 * libcurl request, error reporting and the table printer. See ctl.h.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include "lib/base/json.h"
#include "lib/base/util.h"
#include "tools/ctl/cmd.h"
#include "tools/ctl/ctl.h"

#define CTL_BODY_MAX  (64u * 1024 * 1024)
#define CTL_FILE_MAX  (1024u * 1024)
#define CTL_TOKEN_MAX 4096

struct ctl_opts ctl_opts = {
	.config = CTL_DEFAULT_CONFIG,
	.timeout = 60,
};

static char *ctl_token;

bool ctl_line_open;

void
ctl_warnx(const char *fmt, ...)
{
	va_list ap;

	if (ctl_line_open) {
		fputc('\n', stdout);
		fflush(stdout);
		ctl_line_open = false;
	}
	fputs("auditrelayctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void
ctl_usage_global(FILE *f)
{
	fprintf(f,
	    "\nGlobal options (before or after the subcommand):\n"
	    "  --url URL          API root (default: api_listen of the\n"
	    "                     configuration file, else %s)\n"
	    "  --token-file FILE  read the bearer token from FILE (default:\n"
	    "                     $AUDITRELAY_API_TOKEN, else %s)\n"
	    "  --config FILE      configuration file to read api_listen and\n"
	    "                     api_token_file from (default %s)\n"
	    "  --json             print the API's JSON instead of tables\n"
	    "  --timeout SECONDS  give up on a request after this long (60)\n"
	    "  --help             help\n",
	    CTL_DEFAULT_URL, CTL_DEFAULT_TOKEN_FILE, CTL_DEFAULT_CONFIG);
}

int
ctl_opt_global(int ch, const char *arg)
{
	int64_t v;

	switch (ch) {
	case 'U':
		ctl_opts.url = arg;
		return 1;
	case 'T':
		ctl_opts.token_file = arg;
		return 1;
	case 'C':
		ctl_opts.config = arg;
		return 1;
	case 'J':
		ctl_opts.json = true;
		return 1;
	case 'W':
		if (util_parse_int64(arg, 1, 3600, &v) != 0) {
			ctl_warnx("--timeout: \"%s\" is not a number of "
				  "seconds (1..3600)",
			    arg);
			return -1;
		}
		ctl_opts.timeout = (long)v;
		return 1;
	}
	return 0;
}

int
ctl_read_file(const char *path, char **out, size_t *len)
{
	FILE  *f;
	char  *buf;
	size_t n;

	if ((f = fopen(path, "re")) == NULL)
		return -errno;
	if ((buf = malloc(CTL_FILE_MAX + 1)) == NULL) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(buf, 1, CTL_FILE_MAX + 1, f);
	if (ferror(f) || n > CTL_FILE_MAX) {
		fclose(f);
		explicit_bzero(buf, CTL_FILE_MAX + 1);
		free(buf);
		return n > CTL_FILE_MAX ? -EFBIG : -EIO;
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	if (len != NULL)
		*len = n;
	return 0;
}

/* Trim whitespace (and a pair of double quotes) around s, in place. */
static char *
ctl_trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	if (e - s >= 2 && *s == '"' && e[-1] == '"') {
		e[-1] = '\0';
		s++;
	}
	return s;
}

/*
 * Look up one key in the configuration file (key = value lines, # comments)
 * into out. Only api_listen and api_token_file are read: the file is not
 * validated here, auditrelayd -n does that. 0 when found.
 */
static int
ctl_config_get(const char *key, char *out, size_t outlen)
{
	FILE *f;
	char  line[4096], *p, *eq;
	int   rc = -ENOENT;

	if ((f = fopen(ctl_opts.config, "re")) == NULL)
		return -errno;
	while (fgets(line, sizeof(line), f) != NULL) {
		p = ctl_trim(line);
		if (*p == '#' || (eq = strchr(p, '=')) == NULL)
			continue;
		*eq = '\0';
		if (strcmp(ctl_trim(p), key) != 0)
			continue;
		util_strlcpy(out, ctl_trim(eq + 1), outlen);
		rc = 0;
	}
	fclose(f);
	return rc;
}

/*
 * The API root: --url, else AUDITRELAY_API_LISTEN, else api_listen of the
 * configuration file, else the default. A wildcard listen address becomes
 * the loopback address of its family.
 */
static void
ctl_base_url(char *out, size_t outlen)
{
	char	    listen[512], host[256];
	const char *env;
	uint16_t    port;
	size_t	    n;

	if (ctl_opts.url != NULL) {
		util_strlcpy(out, ctl_opts.url, outlen);
		goto strip;
	}
	if ((env = getenv("AUDITRELAY_API_LISTEN")) != NULL && *env != '\0')
		util_strlcpy(listen, env, sizeof(listen));
	else if (ctl_config_get("api_listen", listen, sizeof(listen)) != 0) {
		util_strlcpy(out, CTL_DEFAULT_URL, outlen);
		return;
	}
	if (util_split_hostport(listen, host, sizeof(host), &port) != 0) {
		util_strlcpy(out, CTL_DEFAULT_URL, outlen);
		return;
	}
	if (strcmp(host, "0.0.0.0") == 0 || host[0] == '\0')
		util_strlcpy(host, "127.0.0.1", sizeof(host));
	else if (strcmp(host, "::") == 0)
		util_strlcpy(host, "::1", sizeof(host));
	if (strchr(host, ':') != NULL)
		snprintf(out, outlen, "http://[%s]:%u", host, port);
	else
		snprintf(out, outlen, "http://%s:%u", host, port);
strip:
	n = strlen(out);
	while (n > 0 && out[n - 1] == '/')
		out[--n] = '\0';
}

/* True while a token is only tried (status): no warning when none. */
static bool ctl_token_quiet;

/* Read a token file: first line, trailing newline dropped. */
static int
ctl_token_read(const char *path)
{
	char  *buf, *nl;
	size_t len;
	int    rc;

	if ((rc = ctl_read_file(path, &buf, &len)) != 0) {
		if (ctl_token_quiet)
			return CTL_EXIT_AUTH;
		ctl_warnx("cannot read the API token from %s: %s%s", path,
		    strerror(-rc),
		    rc == -EACCES ?
			" (run as root, join the "
			"auditrelay group, or set AUDITRELAY_API_TOKEN)" :
			"");
		return CTL_EXIT_AUTH;
	}
	if ((nl = strpbrk(buf, "\r\n")) != NULL)
		*nl = '\0';
	if (*buf == '\0' || strlen(buf) > CTL_TOKEN_MAX) {
		ctl_warnx("%s: no usable token in the file", path);
		explicit_bzero(buf, len);
		free(buf);
		return CTL_EXIT_AUTH;
	}
	ctl_token = buf;
	return 0;
}

/*
 * Find the bearer token: --token-file, else $AUDITRELAY_API_TOKEN, else
 * $AUDITRELAY_API_TOKEN_FILE, else api_token_file of the configuration,
 * else the package's token file.
 */
static int
ctl_token_load(void)
{
	char	    path[1024];
	const char *env;

	if (ctl_token != NULL)
		return 0;
	if (ctl_opts.token_file != NULL)
		return ctl_token_read(ctl_opts.token_file);
	if ((env = getenv("AUDITRELAY_API_TOKEN")) != NULL && *env != '\0') {
		if (strlen(env) > CTL_TOKEN_MAX ||
		    strpbrk(env, "\r\n") != NULL) {
			ctl_warnx("AUDITRELAY_API_TOKEN is not a usable token");
			return CTL_EXIT_AUTH;
		}
		ctl_token = util_xstrdup(env);
		return 0;
	}
	if ((env = getenv("AUDITRELAY_API_TOKEN_FILE")) != NULL && *env != '\0')
		return ctl_token_read(env);
	if (ctl_config_get("api_token_file", path, sizeof(path)) == 0 &&
	    path[0] != '\0')
		return ctl_token_read(path);
	return ctl_token_read(CTL_DEFAULT_TOKEN_FILE);
}

/* libcurl write callback: append to a growing buffer, bounded. */
static size_t
ctl_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct ctl_resp *r = arg;
	size_t		 n = size * nmemb;
	char		*nb;

	if (r->len + n > CTL_BODY_MAX)
		return 0;
	if ((nb = realloc(r->body, r->len + n + 1)) == NULL)
		return 0;
	r->body = nb;
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

int
ctl_request(const char *method, const char *path, const char *body,
    struct ctl_resp *r)
{
	CURL		  *c = NULL;
	struct curl_slist *hdrs = NULL, *h;
	char		   url[2048], errbuf[CURL_ERROR_SIZE];
	char		  *auth = NULL, jerr[256];
	CURLcode	   cc;
	size_t		   alen = 0;
	int		   rc;

	memset(r, 0, sizeof(*r));
	if (ctl_opts.token_optional && ctl_token == NULL) {
		/* Send a token when there is one (more details), else none. */
		ctl_token_quiet = true;
		ctl_opts.anonymous = ctl_token_load() != 0;
		ctl_token_quiet = false;
	}
	if (!ctl_opts.anonymous && ctl_token == NULL &&
	    (rc = ctl_token_load()) != 0)
		return rc;
	ctl_base_url(url, sizeof(url));
	if (strlen(url) + strlen(path) + 1 > sizeof(url)) {
		ctl_warnx("URL too long");
		return CTL_EXIT_USAGE;
	}
	strcat(url, path);
	rc = CTL_EXIT_CONNECT;
	if ((c = curl_easy_init()) == NULL)
		goto fail;
	if (!ctl_opts.anonymous) {
		alen = strlen(ctl_token) + 32;
		if ((auth = malloc(alen)) == NULL)
			goto fail;
		snprintf(auth, alen, "Authorization: Bearer %s", ctl_token);
		if ((h = curl_slist_append(hdrs, auth)) == NULL)
			goto fail;
		hdrs = h;
	}
	if ((h = curl_slist_append(hdrs, "Accept: application/json")) == NULL)
		goto fail;
	hdrs = h;
	if (body != NULL) {
		if ((h = curl_slist_append(hdrs,
			 "Content-Type: application/json")) == NULL)
			goto fail;
		hdrs = h;
		if ((h = curl_slist_append(hdrs, "Expect:")) == NULL)
			goto fail;
		hdrs = h;
	}
	errbuf[0] = '\0';
	if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ctl_write_cb) !=
		CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEDATA, r) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_TIMEOUT, ctl_opts.timeout) !=
		CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_USERAGENT,
		"auditrelayctl/" AR_VERSION) != CURLE_OK) {
		ctl_warnx("libcurl refused an option");
		goto fail;
	}
	if (body != NULL &&
	    (curl_easy_setopt(c, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)strlen(body)) != CURLE_OK)) {
		ctl_warnx("libcurl refused the request body");
		goto fail;
	}
	if (strcmp(method, "HEAD") == 0)
		(void)curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if ((cc = curl_easy_perform(c)) != CURLE_OK) {
		ctl_warnx("%s %s: %s (is auditrelay running? try "
			  "\"systemctl status auditrelay\" or --url)",
		    method, url,
		    errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
		goto fail;
	}
	if (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status) !=
	    CURLE_OK)
		goto fail;
	if (r->len > 0 &&
	    json_parse(r->body, r->len, JSON_DEPTH_DEFAULT, &r->json, jerr,
		sizeof(jerr)) != 0)
		r->json = NULL;
	rc = 0;
fail:
	if (auth != NULL) {
		explicit_bzero(auth, alen);
		free(auth);
	}
	curl_slist_free_all(hdrs);
	if (c != NULL)
		curl_easy_cleanup(c);
	return rc;
}

int
ctl_check(const struct ctl_resp *r)
{
	yajl_val    e;
	const char *msg = NULL, *field = NULL, *code = NULL;

	if (r->status >= 200 && r->status < 300)
		return CTL_EXIT_OK;
	if ((e = json_get(r->json, "error")) != NULL) {
		msg = json_get_string(e, "message");
		field = json_get_string(e, "field");
		code = json_get_string(e, "code");
	}
	if (msg == NULL)
		msg = r->status == 401 ? "the API token was refused" :
					 "the API answered with an error";
	if (field != NULL)
		ctl_warnx("%s (field %s; HTTP %ld%s%s)", msg, field, r->status,
		    code != NULL ? ", " : "", code != NULL ? code : "");
	else
		ctl_warnx("%s (HTTP %ld%s%s)", msg, r->status,
		    code != NULL ? ", " : "", code != NULL ? code : "");
	if (r->status == 401)
		ctl_warnx(
		    "check the token: $AUDITRELAY_API_TOKEN, --token-file "
		    "or %s",
		    CTL_DEFAULT_TOKEN_FILE);
	if (ctl_opts.json && r->json != NULL)
		ctl_print_raw(r);
	return r->status == 401 || r->status == 403 ? CTL_EXIT_AUTH :
						      CTL_EXIT_API;
}

void
ctl_resp_clear(struct ctl_resp *r)
{
	if (r->json != NULL)
		yajl_tree_free(r->json);
	if (r->body != NULL) {
		explicit_bzero(r->body, r->len);
		free(r->body);
	}
	memset(r, 0, sizeof(*r));
}

void
ctl_print_raw(const struct ctl_resp *r)
{
	if (r->body != NULL && r->len > 0) {
		fwrite(r->body, 1, r->len, stdout);
		if (r->body[r->len - 1] != '\n')
			fputc('\n', stdout);
	}
}

char *
ctl_escape(const char *s)
{
	char *e, *out;

	if ((e = curl_easy_escape(NULL, s, 0)) == NULL)
		return NULL;
	out = strdup(e);
	curl_free(e);
	return out;
}

const char *
ctl_cell(yajl_val v, char *buf, size_t len)
{
	size_t	i, off = 0;
	int64_t n;
	char	t[32], sub[512];

	if (v == NULL || YAJL_IS_NULL(v)) {
		util_strlcpy(buf, "-", len);
		return buf;
	}
	if (YAJL_IS_STRING(v))
		util_strlcpy(buf, YAJL_GET_STRING(v), len);
	else if (YAJL_IS_TRUE(v))
		util_strlcpy(buf, "yes", len);
	else if (YAJL_IS_FALSE(v))
		util_strlcpy(buf, "no", len);
	else if (YAJL_IS_INTEGER(v)) {
		n = YAJL_GET_INTEGER(v);
		/* Epoch milliseconds between 2001 and 2286. */
		if (n > 1000000000000LL && n < 10000000000000LL) {
			time_format_rfc3339_ms(n, t);
			util_strlcpy(buf, t, len);
		} else
			util_strlcpy(buf, YAJL_GET_NUMBER(v), len);
	} else if (YAJL_IS_NUMBER(v))
		util_strlcpy(buf, YAJL_GET_NUMBER(v), len);
	else if (YAJL_IS_ARRAY(v)) {
		buf[0] = '\0';
		for (i = 0; i < YAJL_GET_ARRAY(v)->len && off + 1 < len; i++) {
			ctl_cell(YAJL_GET_ARRAY(v)->values[i], sub,
			    sizeof(sub));
			off += (size_t)snprintf(buf + off, len - off, "%s%s",
			    i > 0 ? "," : "", sub);
		}
		if (i == 0)
			util_strlcpy(buf, "-", len);
	} else
		util_strlcpy(buf, "{...}", len);
	/* Keep a cell on one line. */
	for (i = 0; buf[i] != '\0'; i++)
		if (buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t')
			buf[i] = ' ';
	return buf;
}

struct ctl_table {
	size_t ncols, nrows, cap;
	char **cells; /* nrows * ncols, row 0 the header */
};

struct ctl_table *
ctl_table_new(size_t ncols, const char *const *head)
{
	struct ctl_table *t = util_xcalloc(1, sizeof(*t));

	t->ncols = ncols;
	ctl_table_add(t, head);
	return t;
}

void
ctl_table_add(struct ctl_table *t, const char *const *cells)
{
	size_t i;

	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cells = realloc(t->cells,
		    t->cap * t->ncols * sizeof(*t->cells));
		if (t->cells == NULL) {
			ctl_warnx("out of memory");
			exit(CTL_EXIT_API);
		}
	}
	for (i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = util_xstrdup(
		    cells[i] != NULL ? cells[i] : "-");
	t->nrows++;
}

void
ctl_table_print(struct ctl_table *t, FILE *f)
{
	size_t r, i, *w;
	char  *c;

	w = util_xcalloc(t->ncols, sizeof(*w));
	for (r = 0; r < t->nrows; r++)
		for (i = 0; i < t->ncols; i++)
			if (strlen(t->cells[r * t->ncols + i]) > w[i])
				w[i] = strlen(t->cells[r * t->ncols + i]);
	for (r = 0; r < t->nrows; r++) {
		for (i = 0; i < t->ncols; i++) {
			c = t->cells[r * t->ncols + i];
			if (i + 1 == t->ncols)
				fprintf(f, "%s\n", c);
			else
				fprintf(f, "%-*s  ", (int)w[i], c);
		}
	}
	free(w);
}

void
ctl_table_free(struct ctl_table *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

static void
ctl_usage(FILE *f)
{
	fprintf(f,
	    "usage: auditrelayctl [global options] COMMAND [ARGS]\n"
	    "\n"
	    "Manage the sources of a running auditrelay through its REST "
	    "API.\n\nCommands:\n");
	cmd_list_usage(f);
	ctl_usage_global(f);
	fprintf(f,
	    "\n\"auditrelayctl COMMAND --help\" describes a command. Exit "
	    "status: 0 done,\n1 the API refused (or status degraded), 2 "
	    "usage, 3 API unreachable,\n4 no token or token refused. See "
	    "auditrelayctl(1).\n");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		CTL_GLOBAL_LONGOPTS,
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const struct cmd *cmd;
	int		  ch, rc;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		ctl_warnx("libcurl initialisation failed");
		return CTL_EXIT_CONNECT;
	}
	while ((ch = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		if ((rc = ctl_opt_global(ch, optarg)) == 1)
			continue;
		if (rc < 0)
			return CTL_EXIT_USAGE;
		switch (ch) {
		case 'h':
			ctl_usage(stdout);
			return CTL_EXIT_OK;
		case 'V':
			printf("auditrelayctl %s\n", AR_VERSION);
			return CTL_EXIT_OK;
		default:
			ctl_usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		ctl_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (strcmp(argv[optind], "help") == 0) {
		if (optind + 1 < argc &&
		    (cmd = cmd_find(argv[optind + 1])) != NULL) {
			char *hargv[] = { argv[optind + 1], "--help", NULL };

			optind = 0;
			return cmd->run(2, hargv);
		}
		ctl_usage(stdout);
		return CTL_EXIT_OK;
	}
	if ((cmd = cmd_find(argv[optind])) == NULL) {
		ctl_warnx("unknown command \"%s\"; \"auditrelayctl --help\" "
			  "lists them",
		    argv[optind]);
		return CTL_EXIT_USAGE;
	}
	argc -= optind;
	argv += optind;
	optind = 0;
	rc = cmd->run(argc, argv);
	if (ctl_token != NULL) {
		explicit_bzero(ctl_token, strlen(ctl_token));
		free(ctl_token);
	}
	curl_global_cleanup();
	return rc;
}
