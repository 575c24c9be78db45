/*
 * Unit tests for lib/normalize against every fixture in AR_SAMPLES_DIR
 * (tests/data/google/samples: Google-shaped activities.list pages and
 * one-activity-per-line logs written for this project) and against
 * hand-made malformed activities and pages.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "lib/base/json.h"
#include "lib/google/normalize.h"

#define MAX_SAMPLES 64

static const char *
samples_dir(void)
{
	const char *d = getenv("AR_SAMPLES_DIR");

	return d != NULL ? d : "tests/data/google/samples";
}

/* Read a whole file; malloc'd, NUL-terminated. */
static char *
file_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long  n;

	if (f == NULL)
		fail_msg("cannot open %s", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static char *
sample_read(const char *name, size_t *len)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", samples_dir(), name);
	return file_read(path, len);
}

/* Sorted names of the samples ending in suffix; returns the count. */
static size_t
samples_list(const char *suffix, char names[MAX_SAMPLES][256])
{
	DIR	      *d = opendir(samples_dir());
	struct dirent *de;
	size_t	       n = 0, sl = strlen(suffix), i, j;
	char	       tmp[256];

	if (d == NULL)
		fail_msg("cannot open samples dir %s", samples_dir());
	while ((de = readdir(d)) != NULL && n < MAX_SAMPLES) {
		size_t l = strlen(de->d_name);

		if (l > sl && l < 256 &&
		    strcmp(de->d_name + l - sl, suffix) == 0)
			snprintf(names[n++], 256, "%s", de->d_name);
	}
	closedir(d);
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			memcpy(tmp, names[j], 256);
			memcpy(names[j], names[j - 1], 256);
			memcpy(names[j - 1], tmp, 256);
		}
	return n;
}

/* Parse a log's JSON (it must be valid). */
static yajl_val
log_tree(const struct norm_log *l)
{
	yajl_val v = NULL;
	char	 err[128];

	if (json_parse(l->json, l->json_len, 64, &v, err, sizeof(err)) != 0)
		fail_msg("log is not JSON: %s: %s", err, l->json);
	assert_int_equal(strlen(l->json), l->json_len);
	return v;
}

/* details[name] of a log tree. */
static yajl_val
detail(yajl_val log, const char *name)
{
	return json_get(json_get(log, "details"), name);
}

/*
 * Check the contract shape of a (non-error) log against its activity:
 * keys, id, timestamp, application, actor, event type/name, raw.
 */
static void
log_check_shape(const struct norm_log *l, yajl_val act, yajl_val ev)
{
	yajl_val    v = log_tree(l), actor, id = json_get(act, "id"), raw;
	const char *app = json_get_string(id, "applicationName");
	char	    ts[32];
	int64_t	    ms;

	assert_false(l->error);
	assert_null(json_get(v, "error"));
	assert_int_equal(strlen(l->id), NORM_ID_LEN);
	assert_int_equal(strspn(l->id, "0123456789abcdef"), NORM_ID_LEN);
	assert_string_equal(json_get_string(v, "id"), l->id);
	assert_int_equal(
	    json_time_parse_rfc3339(json_get_string(id, "time"), &ms), 0);
	assert_true(l->time_ms == ms);
	time_format_rfc3339_ms(ms, ts);
	assert_string_equal(json_get_string(v, "timestamp"), ts);
	assert_int_equal(strlen(ts), 24);
	assert_string_equal(json_get_string(v, "application"), app);
	assert_string_equal(l->app, app);
	actor = json_get(v, "actor");
	assert_true(YAJL_IS_OBJECT(actor));
	assert_non_null(json_get(actor, "email"));
	assert_non_null(json_get(actor, "ipAddress"));
	assert_non_null(json_get(actor, "profileId"));
	if (json_get_string(act, "ipAddress") != NULL)
		assert_string_equal(json_get_string(actor, "ipAddress"),
		    json_get_string(act, "ipAddress"));
	if (json_get_string(json_get(act, "actor"), "email") != NULL)
		assert_string_equal(json_get_string(actor, "email"),
		    json_get_string(json_get(act, "actor"), "email"));
	assert_true(YAJL_IS_STRING(json_get(actor, "profileId")));
	if (json_get(ev, "type") != NULL)
		assert_string_equal(json_get_string(v, "eventType"),
		    json_get_string(ev, "type"));
	else
		assert_true(YAJL_IS_NULL(json_get(v, "eventType")));
	assert_string_equal(json_get_string(v, "eventName"),
	    json_get_string(ev, "name"));
	assert_true(YAJL_IS_OBJECT(json_get(v, "details")));
	/* Every parameter is in details by name. */
	{
		yajl_val ps = json_get(ev, "parameters");
		size_t	 i;

		assert_int_equal(json_get(v, "details")->u.object.len,
		    ps != NULL ? ps->u.array.len : 0);
		for (i = 0; ps != NULL && i < ps->u.array.len; i++)
			assert_non_null(detail(v,
			    json_get_string(ps->u.array.values[i], "name")));
	}
	raw = json_get(v, "raw");
	assert_true(YAJL_IS_OBJECT(raw));
	assert_string_equal(json_get_string(json_get(raw, "id"), "time"),
	    json_get_string(id, "time"));
	assert_int_equal(raw->u.object.len, act->u.object.len);
	yajl_tree_free(v);
}

/* Every page sample: one log per event, contract shape, stable ids. */
static void
test_samples_pages(void **state)
{
	char   names[MAX_SAMPLES][256];
	size_t n = samples_list(".json", names), f, i, j, k, total = 0;

	assert_true(n >= 6);
	for (f = 0; f < n; f++) {
		struct norm_log *l1 = NULL, *l2 = NULL;
		size_t		 n1 = 0, n2 = 0, len, events = 0;
		char	*body = sample_read(names[f], &len), *tok1, *tok2;
		char	 err[256];
		yajl_val page = NULL, items;

		assert_int_equal(
		    json_parse(body, len, 64, &page, err, sizeof(err)), 0);
		items = json_get(page, "items");
		assert_int_equal(normalize_page(body, len, "fallback", &l1, &n1,
				     &tok1, err, sizeof(err)),
		    0);
		assert_int_equal(normalize_page(body, len, "fallback", &l2, &n2,
				     &tok2, err, sizeof(err)),
		    0);
		assert_int_equal(n1, n2);
		if (json_get_string(page, "nextPageToken") != NULL) {
			assert_non_null(tok1);
			assert_string_equal(tok1,
			    json_get_string(page, "nextPageToken"));
		} else
			assert_null(tok1);
		k = 0;
		for (i = 0; i < items->u.array.len; i++) {
			yajl_val act = items->u.array.values[i];
			yajl_val evs = json_get(act, "events");

			events += evs->u.array.len;
			for (j = 0; j < evs->u.array.len; j++, k++) {
				assert_true(k < n1);
				log_check_shape(&l1[k], act,
				    evs->u.array.values[j]);
			}
		}
		assert_int_equal(n1, events);
		for (i = 0; i < n1; i++) {
			/* Same input twice: same ids and same bytes. */
			assert_string_equal(l1[i].id, l2[i].id);
			assert_string_equal(l1[i].json, l2[i].json);
			for (j = 0; j < i; j++)
				assert_string_not_equal(l1[i].id, l1[j].id);
		}
		total += n1;
		norm_logs_free(l1, n1);
		norm_logs_free(l2, n2);
		free(tok1);
		free(tok2);
		yajl_tree_free(page);
		free(body);
	}
	assert_int_equal(total, 1 + 1 + 1 + 2 + 1 + 5);
}

/*
 * The line fixtures: one activity per line with events as an object (as
 * log shippers split them).
 * Each line is one log; ids follow Google's identity plus the event name.
 */
static void
test_samples_lines(void **state)
{
	char   names[MAX_SAMPLES][256];
	size_t n = samples_list(".log", names), f, i, j, len, lines = 0;
	struct norm_log *all = NULL, *again = NULL;
	size_t		 nall = 0, nagain = 0;
	char		*keys[64];

	assert_true(n >= 2);
	for (f = 0; f < n; f++) {
		char *body = sample_read(names[f], &len), *line, *save = NULL;

		for (line = strtok_r(body, "\n", &save); line != NULL;
		     line = strtok_r(NULL, "\n", &save)) {
			yajl_val act = NULL;
			char	 err[256];
			size_t	 before = nall;

			if (line[0] == '\0')
				continue;
			assert_int_equal(json_parse(line, strlen(line), 64,
					     &act, err, sizeof(err)),
			    0);
			assert_true(YAJL_IS_OBJECT(json_get(act, "events")));
			assert_int_equal(normalize_activity(act, NULL, &all,
					     &nall, err, sizeof(err)),
			    0);
			assert_int_equal(nall, before + 1);
			assert_int_equal(normalize_activity(act, NULL, &again,
					     &nagain, err, sizeof(err)),
			    0);
			log_check_shape(&all[before], act,
			    json_get(act, "events"));
			assert_true(lines < 64);
			/* Identity key as the id should see it. */
			{
				yajl_val id = json_get(act, "id"), uq;
				int64_t	 ms;
				char	 ts[32];

				uq = json_get(id, "uniqueQualifier");
				json_time_parse_rfc3339(
				    json_get_string(id, "time"), &ms);
				time_format_rfc3339_ms(ms, ts);
				assert_true(
				    asprintf(&keys[lines], "%s|%s|%s|%s|%s",
					json_get_string(id, "customerId"),
					json_get_string(id, "applicationName"),
					ts,
					YAJL_IS_STRING(uq) ? uq->u.string :
							     uq->u.number.r,
					json_get_string(json_get(act, "events"),
					    "name")) > 0);
			}
			lines++;
			yajl_tree_free(act);
		}
		free(body);
	}
	assert_int_equal(lines, nall);
	assert_int_equal(nall, 11);
	for (i = 0; i < nall; i++) {
		assert_string_equal(all[i].id, again[i].id);
		for (j = 0; j < i; j++) {
			if (strcmp(keys[i], keys[j]) == 0)
				assert_string_equal(all[i].id, all[j].id);
			else
				assert_string_not_equal(all[i].id, all[j].id);
		}
	}
	for (i = 0; i < lines; i++)
		free(keys[i]);
	norm_logs_free(all, nall);
	norm_logs_free(again, nagain);
}

/* Normalize a sample page; the caller frees. */
static struct norm_log *
page_logs(const char *name, size_t *n)
{
	struct norm_log *l = NULL;
	char		*body, *tok = NULL, err[256];
	size_t		 len;

	body = sample_read(name, &len);
	assert_int_equal(
	    normalize_page(body, len, NULL, &l, n, &tok, err, sizeof(err)), 0);
	free(tok);
	free(body);
	return l;
}

static void
test_token_intvalue(void **state)
{
	struct norm_log *l;
	yajl_val	 v, d;
	size_t		 n;

	l = page_logs("page-token-activity.json", &n);
	assert_int_equal(n, 1);
	v = log_tree(&l[0]);
	d = detail(v, "num_response_bytes");
	assert_true(YAJL_IS_INTEGER(d));
	assert_int_equal(YAJL_GET_INTEGER(d), 4096);
	assert_non_null(strstr(l[0].json, "\"num_response_bytes\":4096"));
	assert_string_equal(detail(v, "api_name")->u.string, "admin");
	assert_string_equal(json_get_string(v, "application"), "token");
	assert_string_equal(json_get_string(v, "eventType"), "auth");
	assert_string_equal(json_get_string(v, "eventName"), "activity");
	assert_null(json_get(json_get(v, "actor"), "callerType"));
	assert_string_equal(json_get_string(json_get(v, "actor"), "profileId"),
	    "117700224466880011335");
	assert_string_equal(json_get_string(v, "timestamp"),
	    "2026-01-02T00:00:00.456Z");
	yajl_tree_free(v);
	norm_logs_free(l, n);
}

static void
test_groups_two_events(void **state)
{
	struct norm_log *l;
	yajl_val	 v0, v1;
	size_t		 n;
	char		 want[NORM_ID_LEN + 1];

	l = page_logs("page-groups-two-events.json", &n);
	assert_int_equal(n, 2);
	assert_string_not_equal(l[0].id, l[1].id);
	/* The canonical id string, pinned (computed independently). */
	assert_string_equal(l[0].id, "c5d4bc15ede6e5c908f183180d640b30");
	assert_int_equal(normalize_log_id("C0DDBA11", "admin", l[0].time_ms,
			     "-5566778899001122334", 0, "ADD_GROUP_MEMBER",
			     want),
	    0);
	assert_string_equal(l[0].id, want);
	assert_int_equal(normalize_log_id("C0DDBA11", "admin", l[0].time_ms,
			     "-5566778899001122334", 1, "REMOVE_GROUP_MEMBER",
			     want),
	    0);
	assert_string_equal(l[1].id, want);
	v0 = log_tree(&l[0]);
	v1 = log_tree(&l[1]);
	assert_string_equal(json_get_string(v0, "eventName"),
	    "ADD_GROUP_MEMBER");
	assert_string_equal(json_get_string(v1, "eventName"),
	    "REMOVE_GROUP_MEMBER");
	assert_string_equal(detail(v0, "USER_EMAIL")->u.string,
	    "joiner@groups.example");
	assert_string_equal(detail(v1, "USER_EMAIL")->u.string,
	    "leaver@groups.example");
	assert_string_equal(
	    json_get_string(json_get(v0, "actor"), "callerType"), "USER");
	/* Negative uniqueQualifier kept as given in raw. */
	assert_string_equal(json_get_string(json_get(json_get(v1, "raw"), "id"),
				"uniqueQualifier"),
	    "-5566778899001122334");
	yajl_tree_free(v0);
	yajl_tree_free(v1);
	norm_logs_free(l, n);
}

static void
test_drive_bools(void **state)
{
	struct norm_log *l;
	yajl_val	 v;
	size_t		 n, i;

	l = page_logs("page-drive-five-events.json", &n);
	assert_int_equal(n, 5);
	v = log_tree(&l[0]);
	assert_string_equal(json_get_string(v, "eventName"), "create");
	assert_true(YAJL_IS_TRUE(detail(v, "primary_event")));
	assert_true(YAJL_IS_FALSE(detail(v, "owner_is_shared_drive")));
	assert_string_equal(detail(v, "owner")->u.string,
	    "writer@drive.example");
	/* "originating_app_id" is a value, so it stays a string. */
	assert_true(YAJL_IS_STRING(detail(v, "originating_app_id")));
	yajl_tree_free(v);
	for (i = 1; i < n; i++)
		assert_string_not_equal(l[0].id, l[i].id);
	norm_logs_free(l, n);
}

static void
test_token_line_multi(void **state)
{
	struct norm_log *l = NULL;
	yajl_val	 act = NULL, v, sd, first;
	char		*body, err[256];
	size_t		 len, n = 0;

	body = sample_read("token-line.log", &len);
	assert_int_equal(json_parse(body, len, 64, &act, err, sizeof(err)), 0);
	assert_int_equal(
	    normalize_activity(act, NULL, &l, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	v = log_tree(&l[0]);
	assert_string_equal(json_get_string(v, "eventName"), "authorize");
	assert_true(YAJL_IS_NULL(json_get(v, "eventType")));
	sd = detail(v, "scope_data");
	assert_true(YAJL_IS_ARRAY(sd));
	assert_int_equal(sd->u.array.len, 5);
	first = sd->u.array.values[0];
	assert_true(YAJL_IS_OBJECT(first));
	assert_string_equal(json_get_string(first, "scope_name"),
	    "https://www.googleapis.com/auth/calendar.readonly");
	assert_true(YAJL_IS_ARRAY(json_get(first, "product_bucket")));
	assert_string_equal(
	    json_get(first, "product_bucket")->u.array.values[0]->u.string,
	    "CALENDAR");
	assert_true(YAJL_IS_ARRAY(detail(v, "scope")));
	/* A number where a string was expected is kept as given. */
	assert_true(YAJL_IS_INTEGER(detail(v, "num_response_bytes")));
	/* Numeric profileId becomes its text. */
	assert_string_equal(json_get_string(json_get(v, "actor"), "profileId"),
	    "1");
	assert_string_equal(json_get_string(v, "application"), "token");
	yajl_tree_free(v);
	norm_logs_free(l, n);
	yajl_tree_free(act);
	free(body);
}

static void
test_login_line_last(void **state)
{
	struct norm_log *l = NULL;
	yajl_val	 act = NULL, v, m;
	char		*body, *last, err[256];
	size_t		 len, n = 0;

	body = sample_read("login-lines.log", &len);
	while (len > 0 && body[len - 1] == '\n')
		body[--len] = '\0';
	last = strrchr(body, '\n');
	assert_non_null(last);
	last++;
	assert_int_equal(
	    json_parse(last, strlen(last), 64, &act, err, sizeof(err)), 0);
	assert_int_equal(
	    normalize_activity(act, NULL, &l, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	v = log_tree(&l[0]);
	assert_string_equal(json_get_string(v, "eventName"),
	    "login_verification");
	assert_string_equal(json_get_string(v, "eventType"), "login");
	m = detail(v, "login_challenge_method");
	assert_true(YAJL_IS_ARRAY(m));
	assert_int_equal(m->u.array.len, 1);
	assert_string_equal(m->u.array.values[0]->u.string, "security_key");
	assert_true(YAJL_IS_TRUE(detail(v, "is_second_factor")));
	assert_string_equal(detail(v, "login_type")->u.string,
	    "google_password");
	assert_string_equal(json_get_string(v, "timestamp"),
	    "2025-06-02T07:08:09.321Z");
	yajl_tree_free(v);
	norm_logs_free(l, n);
	yajl_tree_free(act);
	free(body);
}

/* Normalize one activity given as text; the caller frees. */
static struct norm_log *
act_logs(const char *text, const char *fallback, size_t *n)
{
	struct norm_log *l = NULL;
	yajl_val	 act = NULL;
	char		 err[256];

	*n = 0;
	if (json_parse(text, strlen(text), 64, &act, err, sizeof(err)) != 0)
		fail_msg("bad test JSON: %s", err);
	assert_int_equal(
	    normalize_activity(act, fallback, &l, n, err, sizeof(err)), 0);
	yajl_tree_free(act);
	return l;
}

/* Every parameter type, by hand. */
static void
test_param_types(void **state)
{
	const char *t =
	    "{\"id\": {\"time\": \"2024-03-10T12:00:00Z\", "
	    "\"uniqueQualifier\": \"5\", \"customerId\": \"C1\"}, "
	    "\"actor\": {\"email\": \"a@b.c\", \"profileId\": \"9\", "
	    "\"callerType\": \"KEY\", \"key\": \"SYSTEM\"}, "
	    "\"events\": [{\"type\": \"t\", \"name\": \"n\", \"parameters\": ["
	    "{\"name\": \"s\", \"value\": \"v\"},"
	    "{\"name\": \"i\", \"intValue\": \"-42\"},"
	    "{\"name\": \"big\", \"intValue\": \"99999999999999999999\"},"
	    "{\"name\": \"b\", \"boolValue\": false},"
	    "{\"name\": \"mv\", \"multiValue\": [\"x\", \"y\"]},"
	    "{\"name\": \"mi\", \"multiIntValue\": [\"1\", \"-2\", \"x\"]},"
	    "{\"name\": \"mb\", \"multiBoolValue\": [true, false]},"
	    "{\"name\": \"msg\", \"messageValue\": {\"parameter\": ["
	    "  {\"name\": \"k\", \"intValue\": \"7\"}]}},"
	    "{\"name\": \"mm\", \"multiMessageValue\": ["
	    "  {\"parameter\": [{\"name\": \"a\", \"value\": \"1\"}]},"
	    "  {\"parameter\": [{\"name\": \"a\", \"value\": \"2\"}]}]},"
	    "{\"name\": \"empty\"},"
	    "{\"name\": \"s\", \"value\": \"dup\"}],"
	    "\"sensitiveParameters\": [{\"name\": \"sec\", \"value\": \"z\"}]"
	    "}]}";
	struct norm_log *l;
	yajl_val	 v, d;
	size_t		 n;

	l = act_logs(t, "fb", &n);
	assert_int_equal(n, 1);
	assert_false(l[0].error);
	assert_string_equal(l[0].app, "fb");
	v = log_tree(&l[0]);
	assert_string_equal(json_get_string(v, "application"), "fb");
	assert_string_equal(json_get_string(v, "timestamp"),
	    "2024-03-10T12:00:00.000Z");
	assert_true(YAJL_IS_NULL(json_get(json_get(v, "actor"), "ipAddress")));
	assert_string_equal(json_get_string(json_get(v, "actor"), "key"),
	    "SYSTEM");
	assert_string_equal(json_get_string(json_get(v, "actor"), "callerType"),
	    "KEY");
	assert_string_equal(detail(v, "s")->u.string, "v");
	assert_string_equal(detail(v, "s#2")->u.string, "dup");
	assert_int_equal(YAJL_GET_INTEGER(detail(v, "i")), -42);
	assert_true(YAJL_IS_STRING(detail(v, "big")));
	assert_string_equal(detail(v, "big")->u.string, "99999999999999999999");
	assert_true(YAJL_IS_FALSE(detail(v, "b")));
	assert_int_equal(detail(v, "mv")->u.array.len, 2);
	d = detail(v, "mi");
	assert_int_equal(d->u.array.len, 3);
	assert_int_equal(YAJL_GET_INTEGER(d->u.array.values[0]), 1);
	assert_int_equal(YAJL_GET_INTEGER(d->u.array.values[1]), -2);
	assert_string_equal(d->u.array.values[2]->u.string, "x");
	assert_true(YAJL_IS_TRUE(detail(v, "mb")->u.array.values[0]));
	assert_int_equal(YAJL_GET_INTEGER(json_get(detail(v, "msg"), "k")), 7);
	d = detail(v, "mm");
	assert_int_equal(d->u.array.len, 2);
	assert_string_equal(json_get_string(d->u.array.values[1], "a"), "2");
	assert_true(YAJL_IS_NULL(detail(v, "empty")));
	assert_string_equal(detail(v, "sec")->u.string, "z");
	yajl_tree_free(v);
	norm_logs_free(l, n);
}

/*
 * The names schema-drift detection reads: the event's name, and each
 * parameter name once (sensitive ones too, nested messages' not); an
 * activity-level error log has none.
 */
static void
test_log_names(void **state)
{
	const char
			 *t = "{\"id\": {\"time\": \"2024-03-10T12:00:00Z\", "
			      "\"uniqueQualifier\": \"5\"}, \"events\": ["
			      "{\"name\": \"NEW_EV\", \"parameters\": ["
			      "{\"name\": \"s\", \"value\": \"v\"},"
			      "{\"value\": \"unnamed\"},"
			      "{\"name\": \"msg\", \"messageValue\": {\"parameter\": ["
			      "  {\"name\": \"inner\", \"intValue\": \"7\"}]}},"
			      "{\"name\": \"s\", \"value\": \"dup\"}],"
			      "\"sensitiveParameters\": [{\"name\": \"sec\", \"value\": "
			      "\"z\"}]},"
			      "{\"type\": \"x\"}, 7]}";
	static const char want[] = "s\0msg\0sec\0";
	struct norm_log	 *l;
	size_t		  n;

	l = act_logs(t, "login", &n);
	assert_int_equal(n, 3);
	assert_string_equal(l[0].event_name, "NEW_EV");
	assert_int_equal(l[0].param_names_len, sizeof(want) - 1);
	assert_memory_equal(l[0].param_names, want, sizeof(want) - 1);
	/* No name, no parameters; not an object: nothing. */
	assert_null(l[1].event_name);
	assert_null(l[1].param_names);
	assert_int_equal(l[1].param_names_len, 0);
	assert_null(l[2].event_name);
	assert_null(l[2].param_names);
	norm_log_clear(&l[0]);
	assert_null(l[0].event_name);
	assert_null(l[0].param_names);
	assert_int_equal(l[0].param_names_len, 0);
	norm_logs_free(l, n);

	l = act_logs("{\"id\": 5}", "login", &n);
	assert_int_equal(n, 1);
	assert_null(l[0].event_name);
	assert_null(l[0].param_names);
	norm_logs_free(l, n);
}

/* Check an activity-level error log. */
static void
check_error_log(const struct norm_log *l, const char *errpart)
{
	yajl_val v = log_tree(l);

	assert_true(l->error);
	assert_int_equal(strlen(l->id), NORM_ID_LEN);
	assert_string_equal(json_get_string(v, "id"), l->id);
	assert_string_equal(json_get_string(v, "eventType"), "unparsed");
	assert_non_null(json_get(v, "raw"));
	assert_false(YAJL_IS_NULL(json_get(v, "raw")));
	assert_non_null(json_get_string(v, "error"));
	if (strstr(json_get_string(v, "error"), errpart) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"",
		    json_get_string(v, "error"), errpart);
	assert_true(YAJL_IS_OBJECT(json_get(v, "details")));
	yajl_tree_free(v);
}

/* Malformed activities become error logs, never drops. */
static void
test_unparseable_activity(void **state)
{
	static const struct {
		const char *text;
		const char *err;
	} cases[] = {
		{ "{\"id\": {\"uniqueQualifier\": \"1\"}, \"events\": []}",
		    "id.time" },
		{ "{\"id\": {\"time\": \"yesterday\", \"uniqueQualifier\": "
		  "\"1\"}, \"events\": [{\"name\": \"x\"}]}",
		    "RFC 3339" },
		{ "{\"id\": {\"time\": \"2024-03-10T12:00:00Z\"}, "
		  "\"events\": [{\"name\": \"x\"}]}",
		    "uniqueQualifier" },
		{ "{\"id\": {\"time\": \"2024-03-10T12:00:00Z\", "
		  "\"uniqueQualifier\": \"1\"}, \"events\": \"oops\"}",
		    "not an array" },
		{ "{\"id\": {\"time\": \"2024-03-10T12:00:00Z\", "
		  "\"uniqueQualifier\": \"1\"}}",
		    "no events" },
		{ "{\"id\": {\"time\": \"2024-03-10T12:00:00Z\", "
		  "\"uniqueQualifier\": \"1\"}, \"events\": []}",
		    "empty" },
		{ "{\"id\": 5}", "no id" },
		{ "[1, 2]", "not a JSON object" },
		{ "\"text\"", "not a JSON object" },
	};
	struct norm_log *l, *l2;
	size_t		 i, n, n2;
	char first[sizeof(cases) / sizeof(cases[0])][NORM_ID_LEN + 1];

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		l = act_logs(cases[i].text, "login", &n);
		assert_int_equal(n, 1);
		check_error_log(&l[0], cases[i].err);
		assert_string_equal(l[0].app, "login");
		/* Stable across runs, distinct across activities. */
		l2 = act_logs(cases[i].text, "login", &n2);
		assert_string_equal(l[0].id, l2[0].id);
		memcpy(first[i], l[0].id, NORM_ID_LEN + 1);
		for (n2 = 0; n2 < i; n2++)
			assert_string_not_equal(first[n2], l[0].id);
		norm_logs_free(l2, 1);
		norm_logs_free(l, n);
	}
}

/* Event-level problems: the log is kept, flagged, with what was read. */
static void
test_bad_events(void **state)
{
	const char *t =
	    "{\"id\": {\"time\": \"2024-03-10T12:00:00.123Z\", "
	    "\"uniqueQualifier\": \"7\", \"applicationName\": \"drive\", "
	    "\"customerId\": \"C\"}, \"events\": [{\"type\": \"a\", \"name\": "
	    "\"ok\", \"parameters\": [{\"name\": \"p\", \"value\": \"1\"}]}, "
	    "42, {\"type\": \"a\", \"name\": \"noname\", \"parameters\": "
	    "[{\"value\": \"lost?\"}, {\"name\": \"q\", \"boolValue\": true}]},"
	    " {\"type\": \"a\", \"name\": \"ok\"}, {\"type\": \"a\"}]}";
	struct norm_log *l;
	yajl_val	 v;
	size_t		 n, i, j;

	l = act_logs(t, NULL, &n);
	assert_int_equal(n, 5);
	assert_false(l[0].error);
	assert_true(l[1].error);
	check_error_log(&l[1], "not an object");
	assert_true(l[2].error);
	v = log_tree(&l[2]);
	assert_string_equal(json_get_string(v, "eventName"), "noname");
	assert_true(YAJL_IS_TRUE(detail(v, "q")));
	assert_non_null(strstr(json_get_string(v, "error"), "without a name"));
	/* The unnamed parameter survives in raw. */
	assert_non_null(strstr(l[2].json, "lost?"));
	yajl_tree_free(v);
	assert_false(l[3].error);
	assert_true(l[4].error);
	/* Same name at another index: another id. */
	for (i = 0; i < n; i++)
		for (j = 0; j < i; j++)
			assert_string_not_equal(l[i].id, l[j].id);
	for (i = 0; i < n; i++)
		assert_true(l[i].time_ms == 1710072000123LL);
	norm_logs_free(l, n);
}

/* A page whose items include junk keeps every item. */
static void
test_page_with_junk_items(void **state)
{
	const char *t =
	    "{\"kind\": \"admin#reports#activities\", \"items\": ["
	    "{\"id\": {\"time\": \"2024-03-10T12:00:00Z\", \"uniqueQualifier\":"
	    " \"1\", \"applicationName\": \"login\"}, \"events\": [{\"name\":"
	    " \"login_success\", \"type\": \"login\"}]}, null, 3, {}], "
	    "\"nextPageToken\": \"\"}";
	struct norm_log *l = NULL;
	char		*tok = (char *)"x", err[256];
	size_t		 n = 0;

	assert_int_equal(normalize_page(t, strlen(t), "login", &l, &n, &tok,
			     err, sizeof(err)),
	    0);
	assert_int_equal(n, 4);
	assert_null(tok);
	assert_false(l[0].error);
	assert_true(l[1].error);
	assert_true(l[2].error);
	assert_true(l[3].error);
	assert_string_not_equal(l[1].id, l[2].id);
	assert_string_not_equal(l[2].id, l[3].id);
	norm_logs_free(l, n);
}

/* Truncated, non-JSON and wrongly shaped pages are errors, not crashes. */
static void
test_bad_pages(void **state)
{
	static const char *bad[] = {
		"",
		"<html><body>502 Bad Gateway</body></html>",
		"[]",
		"null",
		"{\"items\": {}}",
		"{\"items\": [], \"nextPageToken\": 5}",
		"{\"error\": {\"code\": 403, \"message\": \"denied\"}}",
		"{\"items\": [] } trailing",
		"{\"items\": [\"\xff\"]}",
	};
	struct norm_log *l = NULL;
	char		*tok = NULL, *body, err[256];
	size_t		 n = 0, len, i, end;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(normalize_page(bad[i], strlen(bad[i]), NULL,
				     &l, &n, &tok, err, sizeof(err)),
		    -EINVAL);
		assert_null(l);
		assert_int_equal(n, 0);
		assert_null(tok);
		assert_true(err[0] != '\0');
	}
	/* Every truncation of a real page is an error. */
	body = sample_read("page-drive-five-events.json", &len);
	end = len;
	while (end > 0 && body[end - 1] != '}')
		end--;
	for (i = 0; i < end; i++) {
		assert_int_equal(normalize_page(body, i, NULL, &l, &n, &tok,
				     err, sizeof(err)),
		    -EINVAL);
		assert_null(l);
		assert_null(tok);
	}
	assert_non_null(strstr(err, "byte"));
	assert_int_equal(
	    normalize_page(body, end, NULL, &l, &n, &tok, err, sizeof(err)), 0);
	assert_int_equal(n, 5);
	norm_logs_free(l, n);
	free(body);

	/* An empty page (no items) is fine. */
	assert_int_equal(normalize_page("{\"kind\": \"x\"}", 13, NULL, &l, &n,
			     &tok, err, sizeof(err)),
	    0);
	assert_int_equal(n, 0);
	assert_null(tok);
	norm_logs_free(l, n);
}

/* A growable string for the hostile pages below. */
struct sbuf {
	char  *p;
	size_t len, cap;
};

static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		assert_non_null(b->p = realloc(b->p, b->cap));
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

/*
 * Time bounds of the hostile cases. Under AddressSanitizer every realloc
 * copies (yajl_tree grows arrays one element at a time), so allow more.
 */
#if defined(__SANITIZE_ADDRESS__)
#define HOSTILE_SLACK 20.0
#else
#define HOSTILE_SLACK 1.0
#endif

static double
mono_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

#define HOSTILE_ACT_HEAD                                                     \
	"{\"items\":[{\"kind\":\"admin#reports#activity\","                  \
	"\"id\":{\"time\":\"2026-01-01T00:00:00.000Z\",\"uniqueQualifier\":" \
	"\"42\",\"applicationName\":\"login\",\"customerId\":\"C01\"},"      \
	"\"actor\":{\"email\":\"a@example.com\"},\"events\":["

/*
 * Issue 13 row 5: one event of 30 000 parameters of one name was
 * quadratic (10 000: 0.94 s; 30 000: fetcherd killed). Now linear: the
 * keys are p, p#2 ... p#30000, in well under a second.
 */
static void
hostile_params(size_t count, double *secs, struct norm_log **l, size_t *n)
{
	struct sbuf b = { 0 };
	size_t	    i;
	char	   *next = NULL, err[256];
	double	    t0;

	sb_str(&b, HOSTILE_ACT_HEAD "{\"name\":\"e\",\"parameters\":[");
	for (i = 0; i < count; i++)
		sb_str(&b,
		    i > 0 ? ",{\"name\":\"p\",\"value\":\"x\"}" :
			    "{\"name\":\"p\",\"value\":\"x\"}");
	sb_str(&b, "]}]}]}");
	t0 = mono_s();
	assert_int_equal(
	    normalize_page(b.p, b.len, "login", l, n, &next, err, sizeof(err)),
	    0);
	*secs = mono_s() - t0;
	assert_int_equal(*n, 1);
	free(b.p);
}

static void
test_hostile_many_params(void **state)
{
	struct norm_log *l = NULL;
	size_t		 n = 0;
	double		 secs;
	yajl_val	 v, d;

	/* 30 000: fast (and over the log cap: delivered truncated). */
	hostile_params(30000, &secs, &l, &n);
	if (secs > 1.0 * HOSTILE_SLACK)
		fail_msg("30000 parameters took %.2f s", secs);
	assert_true(l[0].truncated);
	norm_logs_free(l, n);
	/* 10 000 fit: every key distinct. */
	l = NULL;
	n = 0;
	hostile_params(10000, &secs, &l, &n);
	if (secs > 0.5 * HOSTILE_SLACK)
		fail_msg("10000 parameters took %.2f s", secs);
	assert_false(l[0].truncated);
	v = log_tree(&l[0]);
	d = json_get(v, "details");
	assert_int_equal(d->u.object.len, 10000);
	assert_non_null(json_get(d, "p"));
	assert_non_null(json_get(d, "p#2"));
	assert_non_null(json_get(d, "p#10000"));
	yajl_tree_free(v);
	norm_logs_free(l, n);
}

/*
 * Issue 13 row 6: each log's raw held all k events (k^2 bytes). Now the
 * activity envelope and its own event only.
 */
static void
test_hostile_raw_own_event(void **state)
{
	struct sbuf	 b = { 0 };
	struct norm_log *l = NULL;
	size_t		 n = 0, i, total = 0;
	char		*next = NULL, err[256], ev[64];
	yajl_val	 v, raw, evs;

	sb_str(&b, HOSTILE_ACT_HEAD);
	for (i = 0; i < 500; i++) {
		snprintf(ev, sizeof(ev), "%s{\"name\":\"ev%zu\"}",
		    i > 0 ? "," : "", i);
		sb_str(&b, ev);
	}
	sb_str(&b, "]}]}");
	assert_int_equal(normalize_page(b.p, b.len, "login", &l, &n, &next, err,
			     sizeof(err)),
	    0);
	assert_int_equal(n, 500);
	for (i = 0; i < n; i++) {
		total += l[i].json_len;
		v = log_tree(&l[i]);
		raw = json_get(v, "raw");
		evs = json_get(raw, "events");
		assert_true(YAJL_IS_ARRAY(evs));
		assert_int_equal(evs->u.array.len, 1);
		snprintf(ev, sizeof(ev), "ev%zu", i);
		assert_string_equal(
		    json_get_string(evs->u.array.values[0], "name"), ev);
		assert_non_null(json_get(raw, "actor"));
		assert_non_null(json_get(raw, "kind"));
		yajl_tree_free(v);
	}
	/* Linear: a few hundred bytes a log, not 500 events each. */
	assert_true(total < 500 * 1024);
	norm_logs_free(l, n);
	free(b.p);
}

/*
 * A log over NORM_LOG_MAX is delivered truncated and flagged, with the
 * same id, instead of being too big to store (its window retried
 * forever).
 */
static void
test_hostile_huge_log(void **state)
{
	struct sbuf	 b = { 0 };
	struct norm_log *l = NULL;
	size_t		 n = 0;
	char		*next = NULL, err[256], *big, id[NORM_ID_LEN + 1];
	yajl_val	 v;

	big = malloc(2 * NORM_LOG_MAX);
	assert_non_null(big);
	memset(big, 'a', 2 * NORM_LOG_MAX - 1);
	big[2 * NORM_LOG_MAX - 1] = '\0';
	sb_str(&b,
	    HOSTILE_ACT_HEAD "{\"name\":\"e\",\"parameters\":[{\"name\":"
			     "\"p\",\"value\":\"");
	sb_str(&b, big);
	sb_str(&b, "\"}]},{\"name\":\"small\"}]}]}");
	assert_int_equal(normalize_page(b.p, b.len, "login", &l, &n, &next, err,
			     sizeof(err)),
	    0);
	assert_int_equal(n, 2);
	assert_true(l[0].truncated);
	assert_false(l[1].truncated);
	assert_true(l[0].json_len < NORM_LOG_MAX);
	assert_int_equal(
	    normalize_log_id("C01", "login", l[0].time_ms, "42", 0, "e", id),
	    0);
	assert_string_equal(l[0].id, id);
	v = log_tree(&l[0]);
	assert_true(YAJL_IS_TRUE(json_get(v, "truncated")));
	assert_true(
	    json_get(v, "originalBytes")->u.number.i > 2 * NORM_LOG_MAX);
	assert_int_equal(json_get(v, "details")->u.object.len, 0);
	assert_true(YAJL_IS_NULL(json_get(v, "raw")));
	assert_string_equal(json_get_string(v, "eventName"), "e");
	yajl_tree_free(v);
	norm_logs_free(l, n);
	free(big);
	free(b.p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_samples_pages),
		cmocka_unit_test(test_samples_lines),
		cmocka_unit_test(test_token_intvalue),
		cmocka_unit_test(test_groups_two_events),
		cmocka_unit_test(test_drive_bools),
		cmocka_unit_test(test_token_line_multi),
		cmocka_unit_test(test_login_line_last),
		cmocka_unit_test(test_param_types),
		cmocka_unit_test(test_log_names),
		cmocka_unit_test(test_unparseable_activity),
		cmocka_unit_test(test_bad_events),
		cmocka_unit_test(test_page_with_junk_items),
		cmocka_unit_test(test_bad_pages),
		cmocka_unit_test(test_hostile_many_params),
		cmocka_unit_test(test_hostile_raw_own_event),
		cmocka_unit_test(test_hostile_huge_log),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
