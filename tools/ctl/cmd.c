/*
 * The subcommands of auditrelayctl. See cmd.h; the REST contract is in
 * DESIGN.md and the OpenAPI document served at /openapi.json.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "lib/base/json.h"
#include "lib/base/util.h"
#include "tools/ctl/cmd.h"
#include "tools/ctl/ctl.h"

#define CMD_APPS_MAX 64
#define CMD_IDS_MAX  1024
#define CMD_CELL     1024

/* Credentials given on the command line, for add and rotate-credentials. */
struct cmd_creds {
	const char *key_file;
	const char *client_email;
	const char *private_key_file;
	const char *subject;
	const char *scopes[8];
	size_t	    nscopes;
};

/* Print "usage: auditrelayctl <synopsis>", the text, the global options. */
static int
cmd_usage(FILE *f, const char *synopsis, const char *text)
{
	fprintf(f, "usage: auditrelayctl %s\n\n%s", synopsis, text);
	ctl_usage_global(f);
	return f == stdout ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}

/*
 * Shared option loop. opts is the subcommand's own options (NULL-ended
 * table without the global ones); on_opt handles them. Returns -1 to go
 * on, or an exit status (help printed, usage error).
 */
typedef int (*cmd_opt_fn)(int ch, const char *arg, void *ctx);

static int
cmd_getopt(int argc, char **argv, const struct option *own, cmd_opt_fn on_opt,
    void *ctx, const char *synopsis, const char *text)
{
	static const struct option global[] = { CTL_GLOBAL_LONGOPTS };
	struct option		   all[32];
	size_t			   n = 0, i;
	int			   ch, rc;

	for (i = 0; i < nitems(global); i++)
		all[n++] = global[i];
	for (i = 0; own != NULL && own[i].name != NULL && n + 1 < nitems(all);
	     i++)
		all[n++] = own[i];
	memset(&all[n], 0, sizeof(all[n]));
	while ((ch = getopt_long(argc, argv, "h", all, NULL)) != -1) {
		if ((rc = ctl_opt_global(ch, optarg)) == 1)
			continue;
		if (rc < 0)
			return CTL_EXIT_USAGE;
		if (ch == 'h')
			return cmd_usage(stdout, synopsis, text);
		if (ch == '?' || on_opt == NULL ||
		    (rc = on_opt(ch, optarg, ctx)) == CTL_EXIT_USAGE) {
			if (ch == '?')
				fprintf(stderr,
				    "\"auditrelayctl %s --help\" "
				    "describes the options\n",
				    argv[0]);
			return CTL_EXIT_USAGE;
		}
	}
	return -1;
}

/* Exactly want positional arguments remain; else say so. */
static bool
cmd_positional(int argc, char **argv, int want, const char *what)
{
	if (argc - optind == want)
		return true;
	if (argc - optind < want)
		ctl_warnx("%s: missing %s; see \"auditrelayctl %s --help\"",
		    argv[0], what, argv[0]);
	else
		ctl_warnx("%s: unexpected argument \"%s\"", argv[0],
		    argv[optind + want]);
	return false;
}

/* "/sources/<escaped id><suffix>" into out. */
static int
cmd_source_path(const char *prefix, const char *id, const char *suffix,
    char *out, size_t outlen)
{
	char *e;

	if (*id == '\0' || (e = ctl_escape(id)) == NULL) {
		ctl_warnx("bad source id \"%s\"", id);
		return CTL_EXIT_USAGE;
	}
	snprintf(out, outlen, "%s%s%s", prefix, e, suffix);
	free(e);
	return 0;
}

/*
 * The source ID, first of want positional arguments, as
 * "<prefix><escaped id><suffix>" into path; else the usage error, said.
 */
static int
cmd_source_arg(int argc, char **argv, int want, const char *prefix,
    const char *suffix, char *path, size_t len)
{
	if (!cmd_positional(argc, argv, want, "the source ID"))
		return CTL_EXIT_USAGE;
	return cmd_source_path(prefix, argv[optind], suffix, path, len);
}

/*
 * GET path into *r and check it; with --json, print its body. Returns -1
 * to go on printing r, else the exit status (r cleared).
 */
static int
cmd_get(const char *path, struct ctl_resp *r)
{
	int rc;

	if ((rc = ctl_request("GET", path, NULL, r)) != 0)
		return rc;
	if ((rc = ctl_check(r)) == CTL_EXIT_OK && !ctl_opts.json)
		return -1;
	if (rc == CTL_EXIT_OK)
		ctl_print_raw(r);
	ctl_resp_clear(r);
	return rc;
}

/* The cells of obj's members keys[0..n) into c, pointed to by row. */
static void
cmd_cells(yajl_val obj, const char *const *keys, size_t n, char (*c)[CMD_CELL],
    const char **row)
{
	size_t i;

	for (i = 0; i < n; i++)
		row[i] = ctl_cell(json_get(obj, keys[i]), c[i], CMD_CELL);
}

/* The object describing a source in a response ({"source": {...}} or flat). */
static yajl_val
cmd_source_obj(yajl_val v)
{
	yajl_val s = json_get(v, "source");

	return YAJL_IS_OBJECT(s) ? s : v;
}

/* The first array in v: v itself, or the first array-valued member. */
static yajl_val
cmd_first_array(yajl_val v)
{
	size_t i;

	if (YAJL_IS_ARRAY(v))
		return v;
	if (!YAJL_IS_OBJECT(v))
		return NULL;
	for (i = 0; i < YAJL_GET_OBJECT(v)->len; i++)
		if (YAJL_IS_ARRAY(YAJL_GET_OBJECT(v)->values[i]))
			return YAJL_GET_OBJECT(v)->values[i];
	return NULL;
}

/* The first present member among keys (NULL-ended). */
static yajl_val
cmd_get_any(yajl_val obj, const char *const *keys)
{
	yajl_val v;

	for (; *keys != NULL; keys++)
		if ((v = json_get(obj, *keys)) != NULL)
			return v;
	return NULL;
}

/* Print every member of obj as "key: value", one level of nesting flat. */
static void
cmd_print_object(yajl_val obj, const char *prefix, int depth)
{
	char	    cell[CMD_CELL], key[256];
	const char *k;
	yajl_val    v;
	size_t	    i;

	if (!YAJL_IS_OBJECT(obj))
		return;
	for (i = 0; i < YAJL_GET_OBJECT(obj)->len; i++) {
		k = YAJL_GET_OBJECT(obj)->keys[i];
		v = YAJL_GET_OBJECT(obj)->values[i];
		snprintf(key, sizeof(key), "%s%s", prefix, k);
		if (YAJL_IS_OBJECT(v) && depth < 2) {
			char sub[300];

			snprintf(sub, sizeof(sub), "%s.", key);
			cmd_print_object(v, sub, depth + 1);
			continue;
		}
		printf("%-22s %s\n", key, ctl_cell(v, cell, sizeof(cell)));
	}
}

/* Read a service-account key file's client_email and private_key. */
static int
cmd_key_file(const char *path, yajl_val *tree, const char **email,
    const char **pem, const char **kid)
{
	char	   *buf, err[256];
	size_t	    len;
	const char *type;
	int	    rc;

	if ((rc = ctl_read_file(path, &buf, &len)) != 0) {
		ctl_warnx("%s: %s", path, strerror(-rc));
		return CTL_EXIT_USAGE;
	}
	rc = json_parse(buf, len, JSON_DEPTH_DEFAULT, tree, err, sizeof(err));
	explicit_bzero(buf, len);
	free(buf);
	if (rc != 0) {
		ctl_warnx("%s: not a JSON service-account key file (%s)", path,
		    err);
		return CTL_EXIT_USAGE;
	}
	type = json_get_string(*tree, "type");
	*email = json_get_string(*tree, "client_email");
	*pem = json_get_string(*tree, "private_key");
	*kid = json_get_string(*tree, "private_key_id");
	if (type == NULL || strcmp(type, "service_account") != 0 ||
	    *email == NULL || *pem == NULL) {
		ctl_warnx("%s: not a service-account key file (expected "
			  "\"type\": \"service_account\", \"client_email\" and "
			  "\"private_key\"; download one from the Google Cloud "
			  "console, IAM > Service accounts > Keys)",
		    path);
		return CTL_EXIT_USAGE;
	}
	return 0;
}

/*
 * Write the members of a credentials object (clientEmail, privateKey,
 * subject, scopes) from c. Without a subject the service account acts as
 * itself (an admin role assigned to it); with one, domain-wide delegation.
 */
static int
cmd_write_creds(struct jsonw *w, const struct cmd_creds *c)
{
	yajl_val    tree = NULL;
	const char *email = NULL, *pem = NULL, *kid = NULL;
	char	   *pembuf = NULL;
	size_t	    i, pemlen = 0;
	int	    rc = CTL_EXIT_USAGE, e;

	if (c->key_file != NULL &&
	    (c->client_email != NULL || c->private_key_file != NULL)) {
		ctl_warnx("give either --key-file or --client-email with "
			  "--private-key-file, not both");
		goto fail;
	}
	if (c->key_file != NULL) {
		if ((rc = cmd_key_file(c->key_file, &tree, &email, &pem,
			 &kid)) != 0)
			goto fail;
		rc = CTL_EXIT_USAGE;
	} else if (c->client_email != NULL && c->private_key_file != NULL) {
		if ((e = ctl_read_file(c->private_key_file, &pembuf,
			 &pemlen)) != 0) {
			ctl_warnx("%s: %s", c->private_key_file, strerror(-e));
			goto fail;
		}
		email = c->client_email;
		pem = pembuf;
	} else {
		ctl_warnx(
		    "credentials missing: give --key-file FILE (a "
		    "downloaded service-account key) or --client-email and "
		    "--private-key-file");
		goto fail;
	}
	jsonw_kv_str(w, "clientEmail", email);
	jsonw_kv_str(w, "privateKey", pem);
	if (kid != NULL)
		jsonw_kv_str(w, "privateKeyId", kid);
	if (c->subject != NULL)
		jsonw_kv_str(w, "subject", c->subject);
	if (c->nscopes > 0) {
		jsonw_key(w, "scopes");
		jsonw_arr_open(w);
		for (i = 0; i < c->nscopes; i++)
			jsonw_str(w, c->scopes[i]);
		jsonw_arr_close(w);
	}
	rc = jsonw_error(w) == 0 ? 0 : CTL_EXIT_USAGE;
	if (rc != 0)
		ctl_warnx("the credentials are not valid UTF-8 text");
fail:
	if (tree != NULL)
		yajl_tree_free(tree);
	if (pembuf != NULL) {
		explicit_bzero(pembuf, pemlen);
		free(pembuf);
	}
	return rc;
}

/* Take the JSON text out of w, wiping w's copy (it holds a private key). */
static char *
cmd_body(struct jsonw *w)
{
	char  *body;
	size_t len;

	body = jsonw_steal(w, &len);
	if (body == NULL)
		ctl_warnx("cannot build the request body");
	jsonw_free(w);
	return body;
}

static void
cmd_body_free(char *body)
{
	if (body != NULL) {
		explicit_bzero(body, strlen(body));
		free(body);
	}
}

/*
 * Close the object w holds and send it as the body of method path (wiped
 * after); *r is the answer, to clear. The request's or ctl_check()'s exit
 * status.
 */
static int
cmd_send(const char *method, const char *path, struct jsonw *w,
    struct ctl_resp *r)
{
	char *body;
	int   rc;

	memset(r, 0, sizeof(*r));
	jsonw_obj_close(w);
	if ((body = cmd_body(w)) == NULL)
		return CTL_EXIT_USAGE;
	rc = ctl_request(method, path, body, r);
	cmd_body_free(body);
	if (rc != 0)
		return rc;
	return ctl_check(r);
}

/* "key": [strs...] when n > 0, else nothing. */
static void
cmd_write_strs(struct jsonw *w, const char *key, const char *const *strs,
    size_t n)
{
	size_t i;

	if (n == 0)
		return;
	jsonw_key(w, key);
	jsonw_arr_open(w);
	for (i = 0; i < n; i++)
		jsonw_str(w, strs[i]);
	jsonw_arr_close(w);
}

/* Print the webhook secret of a response, if any, with its warning. */
static void
cmd_print_secret(yajl_val v)
{
	static const char *const keys[] = { "webhookSecret", "secret",
		"signingSecret", NULL };
	yajl_val		 s = cmd_get_any(v, keys);

	if (s == NULL)
		s = cmd_get_any(cmd_source_obj(v), keys);
	if (YAJL_IS_STRING(s))
		printf("\nWebhook signing secret (shown once, store it with "
		       "the receiver now):\n  %s\n",
		    YAJL_GET_STRING(s));
}

/* --- add ----------------------------------------------------------- */

struct cmd_add {
	struct cmd_creds creds;
	const char	*apps[CMD_APPS_MAX];
	size_t		 napps;
	const char	*callback;
	int64_t		 interval;
	int64_t		 lookback;
	const char	*id;
	bool		 watermarks;
};

static const char cmd_add_help[] =
    "Add a Google Workspace source. Its credentials are checked with Google\n"
    "before anything is stored; the answer shows the webhook signing secret\n"
    "once.\n"
    "\n"
    "  --key-file FILE          a downloaded service-account key (JSON)\n"
    "  --client-email EMAIL     or: the service account's e-mail ...\n"
    "  --private-key-file FILE  ... and its PEM PKCS#8 private key\n"
    "  --subject EMAIL          a Workspace admin to impersonate through\n"
    "                           domain-wide delegation; without it the\n"
    "                           service account acts as itself (it needs\n"
    "                           an admin role with the Reports privilege)\n"
    "  --app NAME               an application to read (repeat; default:\n"
    "                           the API's default set), e.g. login, admin\n"
    "  --interval SECONDS       logFetchInterval (default: the API's)\n"
    "  --lookback SECONDS       initialLookback: how far back the first\n"
    "                           fetch starts (up to 15552000, 180 days)\n"
    "  --id UUID                the source's id (default: one is assigned;\n"
    "                           the same command again answers the same\n"
    "                           source)\n"
    "  --callback URL           where batches are POSTed (required)\n"
    "  --scope SCOPE            OAuth scope (repeat; default: the reports\n"
    "                           audit read-only scope)\n"
    "  --watermarks             also send a signed watermark message per\n"
    "                           application when everything up to a time\n"
    "                           is delivered (docs/WATERMARK.md)\n"
    "\nExample:\n"
    "  auditrelayctl add --key-file sa.json --subject admin@example.com \\\n"
    "      --app login --app admin --interval 300 \\\n"
    "      --callback https://siem.example.com/hook\n";

/* Options of add and rotate-credentials. */
static int
cmd_creds_opt(struct cmd_creds *c, int ch, const char *arg)
{
	switch (ch) {
	case 'k':
		c->key_file = arg;
		return 0;
	case 'e':
		c->client_email = arg;
		return 0;
	case 'p':
		c->private_key_file = arg;
		return 0;
	case 's':
		c->subject = arg;
		return 0;
	case 'o':
		if (c->nscopes == nitems(c->scopes)) {
			ctl_warnx("too many --scope options");
			return CTL_EXIT_USAGE;
		}
		c->scopes[c->nscopes++] = arg;
		return 0;
	}
	return CTL_EXIT_USAGE;
}

#define CMD_CREDS_LONGOPTS                                        \
	{ "key-file", required_argument, NULL, 'k' },             \
	    { "client-email", required_argument, NULL, 'e' },     \
	    { "private-key-file", required_argument, NULL, 'p' }, \
	    { "subject", required_argument, NULL, 's' },          \
	{                                                         \
		"scope", required_argument, NULL, 'o'             \
	}

/* The argument of opt, seconds in 1..max, into *v; bound says the range. */
static int
cmd_opt_seconds(const char *opt, const char *arg, int64_t max,
    const char *bound, int64_t *v)
{
	if (util_parse_int64(arg, 1, max, v) == 0)
		return 0;
	ctl_warnx("%s: \"%s\" is not a number of seconds (%s)", opt, arg,
	    bound);
	return CTL_EXIT_USAGE;
}

static int
cmd_add_opt(int ch, const char *arg, void *ctx)
{
	struct cmd_add *a = ctx;

	switch (ch) {
	case 'a':
		if (a->napps == CMD_APPS_MAX) {
			ctl_warnx("too many --app options");
			return CTL_EXIT_USAGE;
		}
		a->apps[a->napps++] = arg;
		return 0;
	case 'c':
		a->callback = arg;
		return 0;
	case 'i':
		return cmd_opt_seconds("--interval", arg, 86400, "up to 86400",
		    &a->interval);
	case 'l':
		return cmd_opt_seconds("--lookback", arg, 15552000,
		    "up to 15552000, 180 days", &a->lookback);
	case 'u':
		a->id = arg;
		return 0;
	case 'W':
		a->watermarks = true;
		return 0;
	}
	return cmd_creds_opt(&a->creds, ch, arg);
}

static int
cmd_add(int argc, char **argv)
{
	static const struct option lo[] = {
		CMD_CREDS_LONGOPTS,
		{ "app", required_argument, NULL, 'a' },
		{ "callback", required_argument, NULL, 'c' },
		{ "interval", required_argument, NULL, 'i' },
		{ "lookback", required_argument, NULL, 'l' },
		{ "id", required_argument, NULL, 'u' },
		{ "watermarks", no_argument, NULL, 'W' },
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_add	a;
	struct ctl_resp r;
	struct jsonw   *w;
	int		rc;

	memset(&a, 0, sizeof(a));
	if ((rc = cmd_getopt(argc, argv, lo, cmd_add_opt, &a,
		 "add --key-file FILE [--subject EMAIL] --callback URL [options]",
		 cmd_add_help)) >= 0)
		return rc;
	if (!cmd_positional(argc, argv, 0, ""))
		return CTL_EXIT_USAGE;
	if (a.callback == NULL) {
		ctl_warnx("--callback URL is required");
		return CTL_EXIT_USAGE;
	}
	if ((w = jsonw_new()) == NULL)
		return CTL_EXIT_USAGE;
	jsonw_obj_open(w);
	if (a.id != NULL)
		jsonw_kv_str(w, "id", a.id);
	jsonw_kv_str(w, "sourceType", "google_workspace");
	jsonw_key(w, "credentials");
	jsonw_obj_open(w);
	if ((rc = cmd_write_creds(w, &a.creds)) != 0) {
		jsonw_free(w);
		return rc;
	}
	jsonw_obj_close(w);
	cmd_write_strs(w, "applications", a.apps, a.napps);
	if (a.interval > 0)
		jsonw_kv_int(w, "logFetchInterval", a.interval);
	if (a.lookback > 0)
		jsonw_kv_int(w, "initialLookback", a.lookback);
	jsonw_kv_str(w, "callbackUrl", a.callback);
	if (a.watermarks)
		jsonw_kv_bool(w, "watermarks", true);
	if ((rc = cmd_send("POST", "/add-source", w, &r)) == CTL_EXIT_OK) {
		if (ctl_opts.json)
			ctl_print_raw(&r);
		else {
			char	 cell[CMD_CELL];
			yajl_val s = cmd_source_obj(r.json);

			printf(r.status == 200 ? "Source %s exists already "
						 "with the same settings.\n" :
						 "Source %s added.\n",
			    ctl_cell(json_get(s, "id"), cell, sizeof(cell)));
			cmd_print_secret(r.json);
		}
	}
	ctl_resp_clear(&r);
	return rc;
}

/* --- list ---------------------------------------------------------- */

#define CMD_LIST_PAGES_MAX 100000

static int
cmd_list(int argc, char **argv)
{
	static const char *const head[] = { "ID", "STATUS", "SUBJECT",
		"APPLICATIONS", "INTERVAL", "LAST FETCH", "CALLBACK" };
	static const char *const keys[] = { "id", "status", "subject",
		"applications", "logFetchInterval", "lastFetchAt",
		"callbackUrl" };
	struct ctl_table	*t;
	struct ctl_resp		 r;
	yajl_val		 arr, s;
	char			 cells[nitems(head)][CMD_CELL];
	const char		*row[nitems(head)], *next;
	char			 path[128];
	size_t			 i, total = 0;
	int			 rc, page;

	if ((rc = cmd_getopt(argc, argv, NULL, NULL, NULL, "list",
		 "List the sources: id, status, subject, applications, interval,\n"
		 "last fetch and callback. Errors are in \"show ID\".\n")) >= 0)
		return rc;
	if (!cmd_positional(argc, argv, 0, ""))
		return CTL_EXIT_USAGE;
	/* --json: the first page as it is ("nextAfter" says if more follow). */
	if ((rc = cmd_get("/sources", &r)) >= 0)
		return rc;
	rc = CTL_EXIT_OK;
	t = ctl_table_new(nitems(head), head);
	/* Every page: GET /sources answers 1000 at a time. */
	for (page = 0; page < CMD_LIST_PAGES_MAX; page++) {
		if ((arr = cmd_first_array(r.json)) == NULL) {
			ctl_warnx("unexpected answer from GET /sources");
			rc = CTL_EXIT_API;
			break;
		}
		for (i = 0; i < YAJL_GET_ARRAY(arr)->len; i++) {
			s = YAJL_GET_ARRAY(arr)->values[i];
			cmd_cells(s, keys, nitems(keys), cells, row);
			ctl_table_add(t, row);
			total++;
		}
		if ((next = json_get_string(r.json, "nextAfter")) == NULL)
			break;
		snprintf(path, sizeof(path), "/sources?after=%.40s", next);
		ctl_resp_clear(&r);
		if ((rc = ctl_request("GET", path, NULL, &r)) != 0 ||
		    (rc = ctl_check(&r)) != CTL_EXIT_OK)
			break;
	}
	if (rc == CTL_EXIT_OK) {
		if (total == 0)
			printf("No sources. Add one with \"auditrelayctl "
			       "add\".\n");
		else
			ctl_table_print(t, stdout);
	}
	ctl_table_free(t);
	ctl_resp_clear(&r);
	return rc;
}

/* --- show, remove, rotate-secret, pause, resume -------------------- */

/*
 * The shape of the commands that take one source id: method and path
 * suffix, optional body, what to print on success.
 */
struct cmd_simple {
	const char *name;
	const char *method;
	const char *prefix;
	const char *suffix;
	const char *body;
	const char *help;
	const char *done; /* "removed": "Source ID removed." */
};

static const struct cmd_simple cmd_simples[] = {
	{ "show", "GET", "/sources/", "", NULL,
	    "Show one source: its settings, status, last fetch and last "
	    "error.\n",
	    NULL },
	{ "remove", "DELETE", "/remove-source/", "", NULL,
	    "Remove a source. Its schedule stops at once; its stored logs "
	    "and pending\ndeliveries are dropped.\n",
	    "removed" },
	{ "rotate-secret", "POST", "/sources/", "/webhook-secret", NULL,
	    "Generate a new webhook signing secret. The old one stays valid "
	    "for 24 hours\n(both signatures are sent meanwhile), so the "
	    "receiver can switch over.\n",
	    NULL },
	{ "pause", "PATCH", "/sources/", "", "{\"paused\":true}",
	    "Pause a source: no fetch and no delivery until it is resumed. "
	    "Cursors and\npending logs are kept.\n",
	    "paused" },
	{ "resume", "PATCH", "/sources/", "", "{\"paused\":false}",
	    "Resume a paused source.\n", "resumed" },
};

static int
cmd_simple_run(int argc, char **argv)
{
	const struct cmd_simple *c = NULL;
	struct ctl_resp		 r;
	char			 path[1024], syn[128];
	size_t			 i;
	int			 rc;

	for (i = 0; i < nitems(cmd_simples); i++)
		if (strcmp(cmd_simples[i].name, argv[0]) == 0)
			c = &cmd_simples[i];
	if (c == NULL)
		return CTL_EXIT_USAGE;
	snprintf(syn, sizeof(syn), "%s ID", c->name);
	if ((rc = cmd_getopt(argc, argv, NULL, NULL, NULL, syn, c->help)) >= 0)
		return rc;
	if ((rc = cmd_source_arg(argc, argv, 1, c->prefix, c->suffix, path,
		 sizeof(path))) != 0)
		return rc;
	if ((rc = ctl_request(c->method, path, c->body, &r)) != 0)
		return rc;
	if ((rc = ctl_check(&r)) != CTL_EXIT_OK)
		goto done;
	if (ctl_opts.json) {
		if (r.len > 0)
			ctl_print_raw(&r);
		else
			printf("{}\n");
	} else if (c->done != NULL)
		printf("Source %s %s.\n", argv[optind], c->done);
	else if (strcmp(c->name, "rotate-secret") == 0) {
		printf("New webhook signing secret for source %s.\n",
		    argv[optind]);
		cmd_print_secret(r.json);
		printf("The previous secret stays valid for 24 hours.\n");
	} else
		cmd_print_object(cmd_source_obj(r.json), "", 0);
done:
	ctl_resp_clear(&r);
	return rc;
}

/* --- rotate-credentials -------------------------------------------- */

static int
cmd_rotate_opt(int ch, const char *arg, void *ctx)
{
	return cmd_creds_opt(ctx, ch, arg);
}

static int
cmd_rotate_credentials(int argc, char **argv)
{
	static const struct option lo[] = {
		CMD_CREDS_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_creds c;
	struct ctl_resp	 r;
	struct jsonw	*w;
	const char	*cur;
	char		 path[1024], path_src[1024];
	char		 subject[320] = "";
	int		 rc;

	memset(&c, 0, sizeof(c));
	if ((rc = cmd_getopt(argc, argv, lo, cmd_rotate_opt, &c,
		 "rotate-credentials ID --key-file FILE [--subject EMAIL]",
		 "Replace a source's service-account credentials in place. The new "
		 "ones are\nchecked with Google first; the source keeps its "
		 "cursors, de-duplication\nstate and pending deliveries.\n"
		 "\n"
		 "  --key-file FILE          a downloaded service-account key (JSON)\n"
		 "  --client-email EMAIL     or: the service account's e-mail ...\n"
		 "  --private-key-file FILE  ... and its PEM PKCS#8 private key\n"
		 "  --subject EMAIL          a new admin to impersonate (default: "
		 "keep)\n"
		 "  --scope SCOPE            OAuth scope (repeat)\n")) >= 0)
		return rc;
	if ((rc = cmd_source_arg(argc, argv, 1, "/sources/", "/credentials",
		 path, sizeof(path))) != 0 ||
	    (rc = cmd_source_path("/sources/", argv[optind], "", path_src,
		 sizeof(path_src))) != 0)
		return rc;
	if (c.subject == NULL) {
		/*
		 * Keep the current subject (the PUT replaces the whole
		 * credentials); a source without one stays without.
		 */
		if ((rc = ctl_request("GET", path_src, NULL, &r)) != 0)
			return rc;
		if ((rc = ctl_check(&r)) != CTL_EXIT_OK) {
			ctl_resp_clear(&r);
			return rc;
		}
		if ((cur = json_get_string(cmd_source_obj(r.json),
			 "subject")) != NULL)
			util_strlcpy(subject, cur, sizeof(subject));
		ctl_resp_clear(&r);
		if (subject[0] != '\0')
			c.subject = subject;
	}
	if ((w = jsonw_new()) == NULL)
		return CTL_EXIT_USAGE;
	jsonw_obj_open(w);
	if ((rc = cmd_write_creds(w, &c)) != 0) {
		jsonw_free(w);
		return rc;
	}
	if ((rc = cmd_send("PUT", path, w, &r)) == CTL_EXIT_OK) {
		if (ctl_opts.json)
			ctl_print_raw(&r);
		else
			printf(
			    "Credentials of source %s replaced (checked with "
			    "Google).\n",
			    argv[optind]);
	}
	ctl_resp_clear(&r);
	return rc;
}

/* --- dead-letters, replay ------------------------------------------ */

/*
 * "HTTP 503: error text" (or the parts present) of an attempt object
 * {at, status, error} into buf. An error that already starts with its
 * "HTTP <status>" (deliverd writes "HTTP 400: <body>") is shown as it is,
 * not as "HTTP 400: HTTP 400: ...".
 */
static yajl_val
cmd_last_attempt(yajl_val att, char *buf, size_t len)
{
	const char *err = json_get_string(att, "error");
	int64_t	    st = 0;
	char	    pfx[32];

	(void)json_get_int64(att, "status", &st);
	snprintf(pfx, sizeof(pfx), "HTTP %lld", (long long)st);
	if (st > 0 && err != NULL && strncmp(err, pfx, strlen(pfx)) == 0 &&
	    (err[strlen(pfx)] == '\0' || err[strlen(pfx)] == ':' ||
		err[strlen(pfx)] == ' '))
		snprintf(buf, len, "%s", err);
	else if (st > 0 && err != NULL)
		snprintf(buf, len, "HTTP %lld: %s", (long long)st, err);
	else if (st > 0)
		snprintf(buf, len, "HTTP %lld", (long long)st);
	else if (err != NULL)
		snprintf(buf, len, "%s", err);
	else
		snprintf(buf, len, "-");
	return att;
}

static int
cmd_dead_letters(int argc, char **argv)
{
	static const char *const head[] = { "BATCH", "KIND", "CREATED",
		"ATTEMPTS", "LAST ATTEMPT", "LOGS" };
	static const char *const k_id[] = { "batchId", "id", "_id", NULL };
	static const char *const k_created[] = { "createdAt", "deadAt", NULL };
	static const char *const k_n[] = { "nAttempts", "attemptCount",
		"attempts", NULL };
	static const char *const k_err[] = { "lastError", "error", NULL };
	static const char *const k_logs[] = { "logCount", "nLogs", "logIds",
		NULL };
	struct ctl_table	*t;
	struct ctl_resp		 r;
	yajl_val		 arr, b, v, at;
	char			 path[1024], c[6][CMD_CELL], num[32];
	const char		*row[6];
	size_t			 i;
	int			 rc;

	if ((rc = cmd_getopt(argc, argv, NULL, NULL, NULL, "dead-letters ID",
		 "List a source's dead letters: batches that kept failing and are "
		 "kept,\nwith their attempts. \"replay\" sends them again.\n")) >=
	    0)
		return rc;
	if ((rc = cmd_source_arg(argc, argv, 1, "/sources/", "/dead-letters",
		 path, sizeof(path))) != 0)
		return rc;
	if ((rc = cmd_get(path, &r)) >= 0)
		return rc;
	rc = CTL_EXIT_OK;
	if ((arr = cmd_first_array(r.json)) == NULL) {
		ctl_warnx("unexpected answer from GET %s", path);
		rc = CTL_EXIT_API;
		goto done;
	}
	t = ctl_table_new(nitems(head), head);
	for (i = 0; i < YAJL_GET_ARRAY(arr)->len; i++) {
		b = YAJL_GET_ARRAY(arr)->values[i];
		row[0] = ctl_cell(cmd_get_any(b, k_id), c[0], CMD_CELL);
		row[1] = ctl_cell(json_get(b, "kind"), c[1], CMD_CELL);
		row[2] = ctl_cell(cmd_get_any(b, k_created), c[2], CMD_CELL);
		at = json_get(b, "attempts");
		if (((v = cmd_get_any(b, k_n)) == NULL || YAJL_IS_ARRAY(v)) &&
		    YAJL_IS_ARRAY(at)) {
			snprintf(num, sizeof(num), "%zu",
			    YAJL_GET_ARRAY(at)->len);
			row[3] = num;
		} else
			row[3] = ctl_cell(v, c[3], CMD_CELL);
		if ((v = cmd_get_any(b, k_err)) == NULL) {
			yajl_val last = json_get(b, "lastAttempt");

			if (YAJL_IS_ARRAY(at) && YAJL_GET_ARRAY(at)->len > 0)
				last = YAJL_GET_ARRAY(at)
					   ->values[YAJL_GET_ARRAY(at)->len -
					       1];
			v = cmd_last_attempt(last, c[4], CMD_CELL);
			row[4] = c[4];
		} else
			row[4] = ctl_cell(v, c[4], CMD_CELL);
		v = cmd_get_any(b, k_logs);
		if (YAJL_IS_ARRAY(v)) {
			snprintf(c[5], CMD_CELL, "%zu", YAJL_GET_ARRAY(v)->len);
			row[5] = c[5];
		} else
			row[5] = ctl_cell(v, c[5], CMD_CELL);
		ctl_table_add(t, row);
	}
	if (YAJL_GET_ARRAY(arr)->len == 0)
		printf("No dead letters for source %s.\n", argv[optind]);
	else
		ctl_table_print(t, stdout);
	ctl_table_free(t);
done:
	ctl_resp_clear(&r);
	return rc;
}

struct cmd_replay {
	const char *ids[CMD_IDS_MAX];
	size_t	    n;
};

static int
cmd_replay_opt(int ch, const char *arg, void *ctx)
{
	struct cmd_replay *p = ctx;

	if (ch != 'b')
		return CTL_EXIT_USAGE;
	if (p->n == CMD_IDS_MAX) {
		ctl_warnx("too many --batch options");
		return CTL_EXIT_USAGE;
	}
	p->ids[p->n++] = arg;
	return 0;
}

static int
cmd_replay(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "batch", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const k_n[] = { "replayed", "count", "n", NULL };
	struct cmd_replay	 p;
	struct ctl_resp		 r;
	struct jsonw		*w;
	char			 path[1024], cell[64];
	int			 rc;

	memset(&p, 0, sizeof(p));
	if ((rc = cmd_getopt(argc, argv, lo, cmd_replay_opt, &p,
		 "replay ID [--batch BATCH]...",
		 "Send a source's dead letters again, with their original batch "
		 "and webhook\nids so the receiver can de-duplicate.\n"
		 "\n"
		 "  --batch BATCH  replay only this batch (repeat); default: all\n")) >=
	    0)
		return rc;
	if ((rc = cmd_source_arg(argc, argv, 1, "/sources/",
		 "/dead-letters/replay", path, sizeof(path))) != 0)
		return rc;
	if ((w = jsonw_new()) == NULL)
		return CTL_EXIT_USAGE;
	jsonw_obj_open(w);
	cmd_write_strs(w, "ids", p.ids, p.n);
	if ((rc = cmd_send("POST", path, w, &r)) == CTL_EXIT_OK) {
		if (ctl_opts.json)
			ctl_print_raw(&r);
		else if (cmd_get_any(r.json, k_n) != NULL)
			printf("%s dead letter(s) of source %s queued for "
			       "delivery.\n",
			    ctl_cell(cmd_get_any(r.json, k_n), cell,
				sizeof(cell)),
			    argv[optind]);
		else
			printf("Dead letters of source %s queued for "
			       "delivery.\n",
			    argv[optind]);
	}
	ctl_resp_clear(&r);
	return rc;
}

/* --- status -------------------------------------------------------- */

static int
cmd_status(int argc, char **argv)
{
	static const char *const head[] = { "DAEMON", "PID", "STATE", "STORE",
		"RESTARTS" };
	static const char *const keys[] = { "name", "pid", "state", "storeOk",
		"restarts" };
	struct ctl_table	*t;
	struct ctl_resp		 r;
	yajl_val		 ch, st, s;
	const char		*status, *row[nitems(head)];
	char			 c[nitems(head)][CMD_CELL];
	size_t			 i;
	int			 rc;

	if ((rc = cmd_getopt(argc, argv, NULL, NULL, NULL, "status",
		 "Show the health of the service (GET /healthz): the store and "
		 "every daemon\n(the daemons only with a token). Exit status 1 when "
		 "degraded.\n")) >= 0)
		return rc;
	if (!cmd_positional(argc, argv, 0, ""))
		return CTL_EXIT_USAGE;
	/* /healthz needs no token; with one it names every daemon. */
	ctl_opts.token_optional = true;
	if ((rc = ctl_request("GET", "/healthz", NULL, &r)) != 0)
		return rc;
	if (r.json == NULL ||
	    (status = json_get_string(r.json, "status")) == NULL) {
		rc = ctl_check(&r);
		if (rc == CTL_EXIT_OK) {
			ctl_warnx("unexpected answer from GET /healthz");
			rc = CTL_EXIT_API;
		}
		goto done;
	}
	rc = r.status == 200 && strcmp(status, "ok") == 0 ? CTL_EXIT_OK :
							    CTL_EXIT_API;
	if (ctl_opts.json) {
		ctl_print_raw(&r);
		goto done;
	}
	printf("status: %s\n", status);
	if ((st = json_get(r.json, "store")) != NULL) {
		bool	ok = false;
		int64_t outage = 0;

		(void)json_get_bool(st, "ok", &ok);
		(void)json_get_int64(st, "outageSeconds", &outage);
		if (ok)
			printf("store:  ok\n");
		else
			printf("store:  unreachable for %llds\n",
			    (long long)outage);
	}
	if (YAJL_IS_ARRAY(ch = json_get(r.json, "children"))) {
		printf("\n");
		t = ctl_table_new(nitems(head), head);
		for (i = 0; i < YAJL_GET_ARRAY(ch)->len; i++) {
			s = YAJL_GET_ARRAY(ch)->values[i];
			cmd_cells(s, keys, nitems(keys), c, row);
			if (strcmp(row[3], "yes") == 0)
				row[3] = "ok";
			else if (strcmp(row[3], "no") == 0)
				row[3] = "down";
			ctl_table_add(t, row);
		}
		ctl_table_print(t, stdout);
		ctl_table_free(t);
	}
done:
	ctl_resp_clear(&r);
	return rc;
}

/* --- backfill ------------------------------------------------------ */

struct cmd_bf {
	const char *app, *from, *to, *only;
	bool	    list, cancel, no_wait;
};

static const char cmd_bf_help[] =
    "Read a past range of one application of a source (at most 180 days "
    "back),\nbeside its live polls; only what is not stored yet is "
    "delivered. Waits and\nshows the progress (a bar on a terminal, a line "
    "every 5 s otherwise) unless\n--no-wait; Ctrl-C stops waiting, not the "
    "backfill. With --json, prints the\nbackfill once it is done.\n"
    "\n"
    "  --app APP    the application (one the source reads)\n"
    "  --from TIME  RFC 3339, e.g. 2026-10-01T00:00:00Z\n"
    "  --to TIME    RFC 3339, not in the future; default now\n"
    "  --no-wait    print the backfill's id and return\n"
    "  --list       the source's backfills and their progress\n"
    "  --cancel     cancel the source's backfills, or only BACKFILL (an id\n"
    "               from --list; also --backfill BACKFILL)\n"
    "\nExample:\n"
    "  auditrelayctl backfill ID --app drive --from 2026-10-01T00:00:00Z\n";

static int
cmd_bf_opt(int ch, const char *arg, void *ctx)
{
	struct cmd_bf *b = ctx;

	switch (ch) {
	case 'a':
		b->app = arg;
		return 0;
	case 'f':
		b->from = arg;
		return 0;
	case 't':
		b->to = arg;
		return 0;
	case 'l':
		b->list = true;
		return 0;
	case 'c':
		b->cancel = true;
		return 0;
	case 'b':
		b->only = arg;
		return 0;
	case 'n':
		b->no_wait = true;
		return 0;
	}
	return CTL_EXIT_USAGE;
}

static volatile sig_atomic_t cmd_bf_interrupted;

static void
cmd_bf_sigint(int sig)
{
	(void)sig;
	cmd_bf_interrupted = 1;
}

/* The backfill id of list (GET .../backfill), or NULL. */
static yajl_val
cmd_bf_find(yajl_val list, const char *id)
{
	yajl_val arr = json_get(list, "backfills");
	size_t	 i;

	for (i = 0; YAJL_IS_ARRAY(arr) && i < YAJL_GET_ARRAY(arr)->len; i++) {
		yajl_val    b = YAJL_GET_ARRAY(arr)->values[i];
		const char *bid = json_get_string(b, "id");

		if (bid != NULL && strcmp(bid, id) == 0)
			return b;
	}
	return NULL;
}

/* The progress of backfill b, 0..1. */
static double
cmd_bf_progress(yajl_val b)
{
	yajl_val p = json_get(b, "progress");
	double	 pr = YAJL_IS_NUMBER(p) ? YAJL_GET_DOUBLE(p) : 0;

	return pr < 0 ? 0 : pr > 1 ? 1 : pr;
}

/* The time backfill b has left, "1h02m", "5m07s", "40s"; NULL if unknown. */
static const char *
cmd_bf_eta(yajl_val b, char *out, size_t len)
{
	int64_t s;

	if (!json_get_int64(b, "etaSeconds", &s) || s < 0)
		return NULL; /* null: not known yet, or done */
	if (s >= 3600)
		snprintf(out, len, "%lldh%02lldm", (long long)(s / 3600),
		    (long long)(s % 3600 / 60));
	else if (s >= 60)
		snprintf(out, len, "%lldm%02llds", (long long)(s / 60),
		    (long long)(s % 60));
	else
		snprintf(out, len, "%llds", (long long)s);
	return out;
}

/*
 * "running  42.0%  1200 new, 30 already stored, 12 windows, ETA 1m40s"
 * into out; without the windows when brief (a bar's line).
 */
static void
cmd_bf_line(yajl_val b, bool brief, char *out, size_t len)
{
	int64_t	    stored = 0, dups = 0, win = 0;
	const char *st = json_get_string(b, "state");
	char	    w[32] = "", eta[32], e[48] = "";

	(void)json_get_int64(b, "eventsStored", &stored);
	(void)json_get_int64(b, "duplicates", &dups);
	if (!brief && json_get_int64(b, "windows", &win))
		snprintf(w, sizeof(w), ", %lld windows", (long long)win);
	if (cmd_bf_eta(b, eta, sizeof(eta)) != NULL)
		snprintf(e, sizeof(e), ", ETA %s", eta);
	snprintf(out, len, "%-7s %5.1f%%  %lld new, %lld already stored%s%s",
	    st != NULL ? st : "?", cmd_bf_progress(b) * 100, (long long)stored,
	    (long long)dups, w, e);
}

/* Print v as JSON text on a line of its own. */
static void
cmd_print_json(yajl_val v)
{
	struct jsonw *w;
	const char   *j;
	size_t	      len;

	if ((w = jsonw_new()) == NULL)
		return;
	if (jsonw_val(w, v) == 0 && (j = jsonw_buf(w, &len)) != NULL)
		printf("%.*s\n", (int)len, j);
	jsonw_free(w);
}

/* The width of a typical bar line's text ("running  42.0%  ..."). */
#define CMD_BF_TEXT 56

/* How cmd_bf_wait shows the progress. */
struct cmd_bf_show {
	bool   tty;	   /* a bar redrawn in place, else plain lines */
	size_t drawn;	   /* the length of the bar's line on the screen */
	char   shown[256]; /* the last plain line printed */
	time_t last;	   /* when */
};

/* The width of the terminal on stdout (80 when it does not say). */
static size_t
cmd_tty_cols(void)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

/*
 * Show backfill b: on a terminal, redraw the bar's line (within the
 * width: a line that wraps cannot be redrawn with \r); else print a plain
 * line when it changed, at most every 5 s but for the last one.
 */
static void
cmd_bf_show(struct cmd_bf_show *s, yajl_val b, bool done)
{
	char   line[256], bar[31], out[300];
	size_t avail, w, full, k, n;

	cmd_bf_line(b, s->tty, line, sizeof(line));
	if (!s->tty) {
		if (strcmp(line, s->shown) != 0 &&
		    (done || time(NULL) - s->last >= 5)) {
			printf("%s\n", line);
			fflush(stdout);
			util_strlcpy(s->shown, line, sizeof(s->shown));
			s->last = time(NULL);
		}
		return;
	}
	/*
	 * Not the last column (it would wrap); the bar as wide as leaves
	 * room for a typical line, the same width every time.
	 */
	avail = cmd_tty_cols() - 1;
	w = avail > CMD_BF_TEXT + 3 ? avail - CMD_BF_TEXT - 3 : 0;
	w = w > 30 ? 30 : w < 10 ? 10 : w;
	full = (size_t)(cmd_bf_progress(b) * (double)w);
	for (k = 0; k < w; k++)
		bar[k] = k < full ? '#' : '.';
	bar[w] = '\0';
	snprintf(out, sizeof(out), "[%s] %s", bar, line);
	if (strlen(out) > avail)
		out[avail] = '\0';
	/* Blanks over what is left of a longer previous line. */
	n = strlen(out) < s->drawn ? s->drawn : strlen(out);
	printf("\r%-*s", (int)(n < avail ? n : avail), out);
	fflush(stdout);
	s->drawn = strlen(out);
	ctl_line_open = true;
}

/*
 * Poll backfill id of source sid (at path) every second until it is done.
 * Ctrl-C stops waiting, not the backfill, and then ends the process by
 * SIGINT as a shell expects of an interrupted command.
 */
static int
cmd_bf_wait(const char *path, const char *sid, const char *id)
{
	struct cmd_bf_show s;
	struct sigaction   sa, old;
	struct ctl_resp	   r, seen;
	yajl_val	   b = NULL;
	const char	  *st;
	bool		   done = false;
	int		   rc;

	memset(&s, 0, sizeof(s));
	memset(&seen, 0, sizeof(seen));
	s.tty = isatty(STDOUT_FILENO);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = cmd_bf_sigint;
	sigemptyset(&sa.sa_mask);
	/* Not where SIGINT is ignored (started in the background). */
	if (sigaction(SIGINT, NULL, &old) == 0 && old.sa_handler != SIG_IGN)
		sigaction(SIGINT, &sa, NULL);
	for (;;) {
		if ((rc = ctl_request("GET", path, NULL, &r)) != 0)
			break;
		if ((rc = ctl_check(&r)) != CTL_EXIT_OK) {
			ctl_resp_clear(&r);
			break;
		}
		ctl_resp_clear(&seen);
		seen = r;
		if ((b = cmd_bf_find(seen.json, id)) == NULL) {
			ctl_warnx("backfill %s was cancelled (it is no longer "
				  "listed for source %s)",
			    id, sid);
			rc = CTL_EXIT_API;
			break;
		}
		st = json_get_string(b, "state");
		done = st != NULL && strcmp(st, "done") == 0;
		if (!ctl_opts.json)
			cmd_bf_show(&s, b, done);
		if (done || cmd_bf_interrupted || sleep(1) != 0 ||
		    cmd_bf_interrupted)
			break;
	}
	sigaction(SIGINT, &old, NULL);
	if (ctl_line_open) {
		printf("\n");
		ctl_line_open = false;
	}
	if (rc == CTL_EXIT_OK && ctl_opts.json)
		cmd_print_json(b); /* the backfill as last seen */
	else if (rc == CTL_EXIT_OK && done)
		printf("Backfill %s done.\n", id);
	ctl_resp_clear(&seen);
	if (rc != CTL_EXIT_OK || done)
		return rc;
	ctl_warnx("stopped waiting; backfill %s goes on (\"auditrelayctl "
		  "backfill %s --list\" shows it, --cancel stops it)",
	    id, sid);
	fflush(stdout);
	raise(SIGINT);
	return 128 + SIGINT; /* SIGINT is not fatal here */
}

static int
cmd_bf_list(const char *path, const char *sid)
{
	static const char *const head[] = { "BACKFILL", "APP", "STATE",
		"PROGRESS", "FROM", "TO", "NEW", "ABSORBED", "ETA" };
	static const char *const keys[] = { "id", "application", "state",
		"progress", "from", "to", "eventsStored", "duplicates",
		"etaSeconds" };
	struct ctl_table	*t;
	struct ctl_resp		 r;
	yajl_val		 arr, b;
	const char		*row[nitems(head)];
	char			 c[nitems(head)][CMD_CELL];
	size_t			 i;
	int			 rc;

	if ((rc = cmd_get(path, &r)) >= 0)
		return rc;
	rc = CTL_EXIT_OK;
	arr = json_get(r.json, "backfills");
	if (!YAJL_IS_ARRAY(arr)) {
		ctl_warnx("unexpected answer from GET %s", path);
		rc = CTL_EXIT_API;
	} else if (YAJL_GET_ARRAY(arr)->len == 0)
		printf("No backfills for source %s.\n", sid);
	else {
		t = ctl_table_new(nitems(head), head);
		for (i = 0; i < YAJL_GET_ARRAY(arr)->len; i++) {
			b = YAJL_GET_ARRAY(arr)->values[i];
			cmd_cells(b, keys, nitems(keys), c, row);
			snprintf(c[3], CMD_CELL, "%.1f%%",
			    cmd_bf_progress(b) * 100);
			row[3] = c[3];
			if (cmd_bf_eta(b, c[8], CMD_CELL) != NULL)
				row[8] = c[8];
			ctl_table_add(t, row);
		}
		ctl_table_print(t, stdout);
		ctl_table_free(t);
	}
	ctl_resp_clear(&r);
	return rc;
}

/* DELETE the backfills of source sid at path: all, or only (an id). */
static int
cmd_bf_cancel(const char *path, const char *sid, const char *only)
{
	struct ctl_resp r;
	char		q[1200], cell[64], *e = NULL;
	int		rc;

	if (only != NULL && (*only == '\0' || (e = ctl_escape(only)) == NULL)) {
		ctl_warnx("bad backfill id \"%s\"", only);
		return CTL_EXIT_USAGE;
	}
	snprintf(q, sizeof(q), "%s%s%s", path, e != NULL ? "?id=" : "",
	    e != NULL ? e : "");
	free(e);
	if ((rc = ctl_request("DELETE", q, NULL, &r)) != 0)
		return rc;
	if ((rc = ctl_check(&r)) == CTL_EXIT_OK) {
		if (ctl_opts.json)
			ctl_print_raw(&r);
		else
			printf("%s backfill(s) of source %s cancelled.\n",
			    ctl_cell(json_get(r.json, "cancelled"), cell,
				sizeof(cell)),
			    sid);
	}
	ctl_resp_clear(&r);
	return rc;
}

static int
cmd_backfill(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "app", required_argument, NULL, 'a' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "no-wait", no_argument, NULL, 'n' },
		{ "list", no_argument, NULL, 'l' },
		{ "cancel", no_argument, NULL, 'c' },
		{ "backfill", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_bf	b;
	struct ctl_resp r;
	struct jsonw   *w;
	char		path[1024], id[128];
	const char     *sid, *s;
	bool		two;
	int		rc;

	memset(&b, 0, sizeof(b));
	if ((rc = cmd_getopt(argc, argv, lo, cmd_bf_opt, &b,
		 "backfill ID --app APP --from TIME [--to TIME] [--no-wait]\n"
		 "       auditrelayctl backfill ID --list\n"
		 "       auditrelayctl backfill ID --cancel [BACKFILL]",
		 cmd_bf_help)) >= 0)
		return rc;
	/* --cancel BACKFILL: the backfill after the source ID. */
	two = b.cancel && argc - optind == 2;
	if ((rc = cmd_source_arg(argc, argv, two ? 2 : 1, "/sources/",
		 "/backfill", path, sizeof(path))) != 0)
		return rc;
	sid = argv[optind];
	if (two && b.only != NULL) {
		ctl_warnx("backfill: give BACKFILL or --backfill, not both");
		return CTL_EXIT_USAGE;
	}
	if (two)
		b.only = argv[optind + 1];
	if ((b.list && b.cancel) ||
	    ((b.list || b.cancel) &&
		(b.app != NULL || b.from != NULL || b.to != NULL ||
		    b.no_wait))) {
		ctl_warnx("backfill: --list, --cancel and a new backfill "
			  "(--app, --from) go alone");
		return CTL_EXIT_USAGE;
	}
	if (b.only != NULL && !b.cancel) {
		ctl_warnx("backfill: --backfill goes with --cancel");
		return CTL_EXIT_USAGE;
	}
	if (b.list)
		return cmd_bf_list(path, sid);
	if (b.cancel)
		return cmd_bf_cancel(path, sid, b.only);
	if (b.app == NULL || b.from == NULL) {
		ctl_warnx("backfill: --app and --from are required; see "
			  "\"auditrelayctl backfill --help\"");
		return CTL_EXIT_USAGE;
	}
	if ((w = jsonw_new()) == NULL)
		return CTL_EXIT_USAGE;
	jsonw_obj_open(w);
	jsonw_kv_str(w, "application", b.app);
	jsonw_kv_str(w, "from", b.from);
	if (b.to != NULL)
		jsonw_kv_str(w, "to", b.to);
	if ((rc = cmd_send("POST", path, w, &r)) != CTL_EXIT_OK) {
		ctl_resp_clear(&r);
		return rc;
	}
	if ((s = json_get_string(r.json, "id")) == NULL) {
		ctl_warnx("unexpected answer from POST %s", path);
		ctl_resp_clear(&r);
		return CTL_EXIT_API;
	}
	util_strlcpy(id, s, sizeof(id));
	if (ctl_opts.json && b.no_wait)
		ctl_print_raw(&r);
	else if (!ctl_opts.json)
		printf("Backfill %s of source %s queued.\n", id, sid);
	fflush(stdout);
	ctl_resp_clear(&r);
	if (b.no_wait)
		return CTL_EXIT_OK;
	return cmd_bf_wait(path, sid, id);
}

static const struct cmd cmd_table[] = {
	{ "add", "add a source (checks its credentials with Google)", cmd_add },
	{ "list", "list the sources and their status", cmd_list },
	{ "show", "show one source", cmd_simple_run },
	{ "remove", "remove a source", cmd_simple_run },
	{ "rotate-credentials", "replace a source's service-account key",
	    cmd_rotate_credentials },
	{ "rotate-secret", "new webhook signing secret (old one valid 24 h)",
	    cmd_simple_run },
	{ "pause", "stop fetching and delivering a source", cmd_simple_run },
	{ "resume", "resume a paused source", cmd_simple_run },
	{ "dead-letters", "list a source's dead letters", cmd_dead_letters },
	{ "replay", "send dead letters again", cmd_replay },
	{ "backfill", "read a past range of an application (progress, cancel)",
	    cmd_backfill },
	{ "status", "health of the store and the daemons", cmd_status },
};

const struct cmd *
cmd_find(const char *name)
{
	size_t i;

	for (i = 0; i < nitems(cmd_table); i++)
		if (strcmp(cmd_table[i].name, name) == 0)
			return &cmd_table[i];
	return NULL;
}

void
cmd_list_usage(FILE *f)
{
	size_t i;

	for (i = 0; i < nitems(cmd_table); i++)
		fprintf(f, "  %-20s %s\n", cmd_table[i].name,
		    cmd_table[i].summary);
}
