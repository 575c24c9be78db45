/*
 * Normalization of Google Reports API activities into webhook logs.
 *
 * One log per event, shaped as DESIGN.md's webhook contract. The id is a
 * stable hash of the activity's identity plus the event's index and name,
 * so the same event fetched twice gets the same id. Nothing is dropped:
 * what cannot be understood becomes a log with "error" set and the
 * activity kept whole in "raw".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gcrypt.h>

#include "lib/base/json.h"
#include "lib/base/util.h"
#include "lib/google/normalize.h"

#define NORM_MSG_DEPTH 8 /* messageValue nesting we unfold */

/* What an activity's header says, gathered once for all its events. */
struct norm_act {
	yajl_val    act;
	const char *customer; /* may be NULL */
	const char *app;      /* never NULL */
	const char *uq;	      /* may be NULL */
	int64_t	    time_ms;
	bool	    have_time;
	size_t	   *budget; /* bytes the page may still use */
};

/* A string's text or a number's original text; NULL for anything else. */
static const char *
norm_scalar_text(yajl_val v)
{
	if (YAJL_IS_STRING(v))
		return v->u.string;
	if (YAJL_IS_NUMBER(v))
		return v->u.number.r;
	return NULL;
}

/* Lowercase hex of the first NORM_ID_LEN / 2 bytes of SHA-256(buf). */
static void
norm_hash_hex(const void *buf, size_t len, char out[NORM_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char	  md[32];
	size_t		  i;

	if (!gcry_control(GCRYCTL_ANY_INITIALIZATION_P))
		gcry_check_version(NULL);
	gcry_md_hash_buffer(GCRY_MD_SHA256, md, buf, len);
	for (i = 0; i < NORM_ID_LEN / 2; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[NORM_ID_LEN] = '\0';
}

/*
 * Hash a sequence of NULL-terminated parts joined by 0x1f. Returns 0 or
 * -ENOMEM.
 */
static int
norm_hash_parts(const char *const *parts, size_t nparts,
    char out[NORM_ID_LEN + 1])
{
	size_t i, len = 0, off = 0;
	char  *buf;

	for (i = 0; i < nparts; i++)
		len += strlen(parts[i] != NULL ? parts[i] : "") + 1;
	if ((buf = malloc(len + 1)) == NULL)
		return -ENOMEM;
	for (i = 0; i < nparts; i++) {
		const char *p = parts[i] != NULL ? parts[i] : "";
		size_t	    l = strlen(p);

		if (i > 0)
			buf[off++] = '\x1f';
		memcpy(buf + off, p, l);
		off += l;
	}
	norm_hash_hex(buf, off, out);
	free(buf);
	return 0;
}

/* The stable id of one event; see normalize.h. */
int
normalize_log_id(const char *customer_id, const char *app, int64_t time_ms,
    const char *unique_qualifier, size_t event_index, const char *event_name,
    char out[NORM_ID_LEN + 1])
{
	char	    ts[32], idx[24];
	const char *parts[7];

	time_format_rfc3339_ms(time_ms, ts);
	snprintf(idx, sizeof(idx), "%zu", event_index);
	parts[0] = "v1";
	parts[1] = customer_id;
	parts[2] = app;
	parts[3] = ts;
	parts[4] = unique_qualifier;
	parts[5] = idx;
	parts[6] = event_name;
	return norm_hash_parts(parts, 7, out);
}

/*
 * Emit one parameter's value: see the mapping in DESIGN.md (intValue as a
 * number when it fits int64, nested messages unfolded into objects).
 */
static int norm_params_write(struct jsonw *w, yajl_val *lists, size_t nlists,
    unsigned depth, const char **perr);

/* An int64 carried as a string (or number): a number when it fits. */
static int
norm_int_write(struct jsonw *w, yajl_val v)
{
	int64_t n;

	if (YAJL_IS_STRING(v) && json_str_to_int64(v->u.string, &n))
		return jsonw_int(w, n);
	return jsonw_val(w, v);
}

/* A message ({"parameter": [...]}) as an object of its parameters. */
static int
norm_message_write(struct jsonw *w, yajl_val msg, unsigned depth,
    const char **perr)
{
	yajl_val list = json_get(msg, "parameter");

	if (depth >= NORM_MSG_DEPTH || !YAJL_IS_ARRAY(list)) {
		if (!YAJL_IS_OBJECT(msg))
			*perr = "messageValue is not an object";
		return jsonw_val(w, msg);
	}
	return norm_params_write(w, &list, 1, depth + 1, perr);
}

static int
norm_param_value_write(struct jsonw *w, yajl_val p, unsigned depth,
    const char **perr)
{
	yajl_val v;
	size_t	 i;
	int	 rc;

	if ((v = json_get(p, "value")) != NULL)
		return jsonw_val(w, v);
	if ((v = json_get(p, "intValue")) != NULL)
		return norm_int_write(w, v);
	if ((v = json_get(p, "boolValue")) != NULL)
		return jsonw_val(w, v);
	if ((v = json_get(p, "multiValue")) != NULL)
		return jsonw_val(w, v);
	if ((v = json_get(p, "multiIntValue")) != NULL) {
		if (!YAJL_IS_ARRAY(v))
			return jsonw_val(w, v);
		if ((rc = jsonw_arr_open(w)) != 0)
			return rc;
		for (i = 0; i < v->u.array.len; i++)
			if ((rc = norm_int_write(w, v->u.array.values[i])) != 0)
				return rc;
		return jsonw_arr_close(w);
	}
	if ((v = json_get(p, "multiBoolValue")) != NULL)
		return jsonw_val(w, v);
	if ((v = json_get(p, "messageValue")) != NULL)
		return norm_message_write(w, v, depth, perr);
	if ((v = json_get(p, "multiMessageValue")) != NULL) {
		if (!YAJL_IS_ARRAY(v))
			return jsonw_val(w, v);
		if ((rc = jsonw_arr_open(w)) != 0)
			return rc;
		for (i = 0; i < v->u.array.len; i++)
			if ((rc = norm_message_write(w, v->u.array.values[i],
				 depth, perr)) != 0)
				return rc;
		return jsonw_arr_close(w);
	}
	/* Google omits every value field of an empty parameter. */
	return jsonw_null(w);
}

/* Name of parameter p when it has one. */
static const char *
norm_param_name(yajl_val p)
{
	return json_get_string(p, "name");
}

/*
 * Occurrences of parameter names so far, in an open-addressing table:
 * a repeated name gets a distinct key ("name#2") in linear time however
 * many parameters of one name Google sends (it was quadratic).
 */
struct norm_names {
	const char **name;
	size_t	    *count;
	size_t	     cap; /* a power of two */
};

static uint64_t
norm_name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* Room for n names. 0 or -ENOMEM. */
static int
norm_names_init(struct norm_names *t, size_t n)
{
	t->cap = 16;
	while (t->cap < 2 * n)
		t->cap *= 2;
	t->name = calloc(t->cap, sizeof(*t->name));
	t->count = calloc(t->cap, sizeof(*t->count));
	if (t->name == NULL || t->count == NULL) {
		free(t->name);
		free(t->count);
		return -ENOMEM;
	}
	return 0;
}

static void
norm_names_clear(struct norm_names *t)
{
	free(t->name);
	free(t->count);
}

/* How many times name was seen before; counts this one. */
static size_t
norm_names_seen(struct norm_names *t, const char *name)
{
	size_t i = (size_t)norm_name_hash(name) & (t->cap - 1);

	while (t->name[i] != NULL && strcmp(t->name[i], name) != 0)
		i = (i + 1) & (t->cap - 1);
	if (t->name[i] == NULL)
		t->name[i] = name;
	return t->count[i]++;
}

/*
 * Write an object holding every parameter of the given arrays by name.
 * A parameter that is not an object or has no name is skipped and noted
 * in *perr (the log is then flagged as an error; raw still has it).
 */
static int
norm_params_write(struct jsonw *w, yajl_val *lists, size_t nlists,
    unsigned depth, const char **perr)
{
	struct norm_names names;
	size_t		  l, i, seen, total = 0;
	char		 *dupkey;
	int		  rc;

	for (l = 0; l < nlists; l++)
		total += lists[l]->u.array.len;
	if ((rc = norm_names_init(&names, total)) != 0)
		return rc;
	if ((rc = jsonw_obj_open(w)) != 0)
		goto out;
	for (l = 0; l < nlists; l++) {
		for (i = 0; i < lists[l]->u.array.len; i++) {
			yajl_val    p = lists[l]->u.array.values[i];
			const char *name = norm_param_name(p);

			if (name == NULL) {
				*perr = "event parameter without a name";
				continue;
			}
			seen = norm_names_seen(&names, name);
			if (seen == 0)
				rc = jsonw_key(w, name);
			else {
				size_t kl = strlen(name) + 24;

				if ((dupkey = malloc(kl)) == NULL) {
					rc = -ENOMEM;
					goto out;
				}
				snprintf(dupkey, kl, "%s#%zu", name, seen + 1);
				rc = jsonw_key(w, dupkey);
				free(dupkey);
			}
			if (rc != 0 ||
			    (rc = norm_param_value_write(w, p, depth, perr)) !=
				0)
				goto out;
		}
	}
	rc = jsonw_obj_close(w);
out:
	norm_names_clear(&names);
	return rc;
}

/* The "actor" object: email, ipAddress, profileId, then extras. */
static int
norm_actor_write(struct jsonw *w, yajl_val act)
{
	yajl_val actor = json_get(act, "actor"), v;
	int	 rc;

	if ((rc = jsonw_key(w, "actor")) != 0 ||
	    (rc = jsonw_obj_open(w)) != 0 ||
	    (rc = jsonw_kv_str(w, "email", json_get_string(actor, "email"))) !=
		0 ||
	    (rc = jsonw_kv_str(w, "ipAddress",
		 json_get_string(act, "ipAddress"))) != 0 ||
	    (rc = jsonw_kv_str(w, "profileId",
		 norm_scalar_text(json_get(actor, "profileId")))) != 0)
		return rc;
	if ((v = json_get(actor, "callerType")) != NULL &&
	    ((rc = jsonw_key(w, "callerType")) != 0 ||
		(rc = jsonw_val(w, v)) != 0))
		return rc;
	if ((v = json_get(actor, "key")) != NULL &&
	    ((rc = jsonw_key(w, "key")) != 0 || (rc = jsonw_val(w, v)) != 0))
		return rc;
	if ((v = json_get(actor, "applicationInfo")) != NULL &&
	    ((rc = jsonw_key(w, "applicationInfo")) != 0 ||
		(rc = jsonw_val(w, v)) != 0))
		return rc;
	return jsonw_obj_close(w);
}

/*
 * "raw": the activity as Google sent it, but with "events" holding only
 * this log's own event (an activity of k events is not stored k times).
 * For an activity-level error (event NULL) the whole activity.
 */
static int
norm_raw_write(struct jsonw *w, yajl_val act, yajl_val event)
{
	size_t i;
	int    rc;

	if (event == NULL || !YAJL_IS_OBJECT(act))
		return jsonw_val(w, act);
	if ((rc = jsonw_obj_open(w)) != 0)
		return rc;
	for (i = 0; i < act->u.object.len; i++) {
		if ((rc = jsonw_key(w, act->u.object.keys[i])) != 0)
			return rc;
		if (strcmp(act->u.object.keys[i], "events") == 0)
			rc = jsonw_arr_open(w) != 0  ? -EINVAL :
			    jsonw_val(w, event) != 0 ? -EINVAL :
						       jsonw_arr_close(w);
		else
			rc = jsonw_val(w, act->u.object.values[i]);
		if (rc != 0)
			return rc;
	}
	return jsonw_obj_close(w);
}

/*
 * Build one log into out. event is the event object (NULL for an
 * activity-level error), errmsg non-NULL makes it an error log. With
 * with_raw false, "raw" is null (used when the activity itself cannot be
 * re-serialized). Returns 0, -EINVAL or -ENOMEM.
 */
static int
norm_log_build_one(struct norm_log *out, const struct norm_act *a,
    yajl_val event, const char *errmsg, bool with_raw, size_t trunc)
{
	struct jsonw *w;
	yajl_val      lists[2];
	size_t	      nlists = 0;
	const char   *perr = NULL;
	char	      ts[32];
	int	      rc = -ENOMEM;

	if ((w = jsonw_new()) == NULL)
		return -ENOMEM;
	if ((rc = jsonw_obj_open(w)) != 0 ||
	    (rc = jsonw_kv_str(w, "id", out->id)) != 0)
		goto fail;
	if (a->have_time) {
		time_format_rfc3339_ms(a->time_ms, ts);
		rc = jsonw_kv_str(w, "timestamp", ts);
	} else
		rc = jsonw_kv_str(w, "timestamp", NULL);
	if (rc != 0 || (rc = jsonw_kv_str(w, "application", a->app)) != 0 ||
	    (rc = norm_actor_write(w, a->act)) != 0)
		goto fail;

	if (errmsg != NULL) {
		if ((rc = jsonw_kv_str(w, "eventType", "unparsed")) != 0 ||
		    (rc = jsonw_kv_str(w, "eventName",
			 json_get_string(event, "name"))) != 0 ||
		    (rc = jsonw_key(w, "details")) != 0 ||
		    (rc = jsonw_obj_open(w)) != 0 ||
		    (rc = jsonw_obj_close(w)) != 0)
			goto fail;
	} else {
		yajl_val p = json_get(event, "parameters");
		yajl_val sp = json_get(event, "sensitiveParameters");

		if ((rc = jsonw_kv_str(w, "eventType",
			 norm_scalar_text(json_get(event, "type")))) != 0 ||
		    (rc = jsonw_kv_str(w, "eventName",
			 json_get_string(event, "name"))) != 0)
			goto fail;
		if (json_get_string(event, "name") == NULL)
			perr = "event without a name";
		if (YAJL_IS_ARRAY(p))
			lists[nlists++] = p;
		else if (p != NULL)
			perr = "event parameters is not an array";
		if (YAJL_IS_ARRAY(sp))
			lists[nlists++] = sp;
		else if (sp != NULL)
			perr = "event sensitiveParameters is not an array";
		if ((rc = jsonw_key(w, "details")) != 0)
			goto fail;
		if (trunc)
			rc = jsonw_obj_open(w) != 0 ? -EINVAL :
						      jsonw_obj_close(w);
		else
			rc = norm_params_write(w, lists, nlists, 0, &perr);
		if (rc != 0)
			goto fail;
		errmsg = perr;
	}
	if ((rc = jsonw_key(w, "raw")) != 0 ||
	    (rc = with_raw && !trunc ? norm_raw_write(w, a->act, event) :
				       jsonw_null(w)) != 0)
		goto fail;
	if (errmsg != NULL && (rc = jsonw_kv_str(w, "error", errmsg)) != 0)
		goto fail;
	if (trunc &&
	    ((rc = jsonw_kv_bool(w, "truncated", true)) != 0 ||
		(rc = jsonw_kv_int(w, "originalBytes", (int64_t)trunc)) != 0))
		goto fail;
	if ((rc = jsonw_obj_close(w)) != 0)
		goto fail;

	rc = -ENOMEM;
	if ((out->json = jsonw_steal(w, &out->json_len)) == NULL ||
	    (out->app = strdup(a->app)) == NULL)
		goto fail;
	out->time_ms = a->have_time ? a->time_ms : 0;
	out->error = errmsg != NULL;
	out->truncated = trunc != 0;
	jsonw_free(w);
	return 0;
fail:
	free(out->json);
	out->json = NULL;
	free(out->app);
	out->app = NULL;
	if (rc == 0)
		rc = -ENOMEM;
	jsonw_free(w);
	return rc;
}

/*
 * norm_log_build_one(), then, for a log over NORM_LOG_MAX bytes (or any
 * log once the page is over its budget), the same log again with empty
 * details, raw null, "truncated": true and its original size: delivered,
 * flagged, never too big to store.
 */
static int
norm_log_build(struct norm_log *out, const struct norm_act *a, yajl_val event,
    const char *errmsg, bool with_raw)
{
	size_t len;
	int    rc;

	if ((rc = norm_log_build_one(out, a, event, errmsg, with_raw, 0)) != 0)
		return rc;
	if (out->json_len <= NORM_LOG_MAX &&
	    (a->budget == NULL || *a->budget >= out->json_len)) {
		if (a->budget != NULL)
			*a->budget -= out->json_len;
		return 0;
	}
	len = out->json_len;
	free(out->json);
	out->json = NULL;
	free(out->app);
	out->app = NULL;
	rc = norm_log_build_one(out, a, event, errmsg, with_raw, len);
	if (rc == 0 && a->budget != NULL)
		*a->budget = *a->budget > out->json_len ?
		    *a->budget - out->json_len :
		    0;
	return rc;
}

/*
 * Id of an activity-level error log: the hash of the compact activity
 * text (stable for the same activity fetched again). 0 or -errno.
 */
static int
norm_raw_id(yajl_val act, char out[NORM_ID_LEN + 1])
{
	struct jsonw *w;
	const char   *parts[2];
	char	     *text = NULL;
	int	      rc;

	if ((w = jsonw_new()) == NULL)
		return -ENOMEM;
	if ((rc = jsonw_val(w, act)) == 0) {
		if ((text = jsonw_steal(w, NULL)) == NULL)
			rc = -ENOMEM;
	}
	jsonw_free(w);
	if (rc != 0)
		return rc;
	parts[0] = "v1raw";
	parts[1] = text;
	rc = norm_hash_parts(parts, 2, out);
	free(text);
	return rc;
}

/*
 * An activity-level error log. If the activity cannot even be
 * re-serialized, its identity fields are hashed and "raw" is null.
 */
static int
norm_error_log(struct norm_log *out, const struct norm_act *a,
    const char *errmsg)
{
	int rc;

	rc = norm_raw_id(a->act, out->id);
	if (rc == -EINVAL) {
		if ((rc = normalize_log_id(a->customer, a->app, a->time_ms,
			 a->uq, 0, "\x1eunserializable", out->id)) != 0)
			return rc;
		return norm_log_build(out, a, NULL,
		    "activity is not serializable JSON", false);
	}
	if (rc != 0)
		return rc;
	return norm_log_build(out, a, NULL, errmsg, true);
}

void
norm_log_clear(struct norm_log *l)
{
	free(l->app);
	free(l->json);
	free(l->event_name);
	free(l->param_names);
	l->app = l->json = l->event_name = l->param_names = NULL;
	l->json_len = l->param_names_len = 0;
}

/*
 * The event's name and the distinct names of its parameters into l (see
 * normalize.h): what schema-drift detection compares with the names it
 * knows. Unnamed parameters and non-string names are skipped (the log
 * already says so). 0 or -ENOMEM.
 */
static int
norm_log_names(struct norm_log *l, yajl_val event)
{
	struct norm_names names;
	yajl_val	  lists[2];
	const char	 *name;
	size_t		  nlists = 0, li, i, total = 0, cnt = 0, off = 0, len;
	int		  rc;

	if (!YAJL_IS_OBJECT(event))
		return 0;
	if ((name = json_get_string(event, "name")) != NULL &&
	    (l->event_name = strdup(name)) == NULL)
		return -ENOMEM;
	lists[0] = json_get(event, "parameters");
	lists[1] = json_get(event, "sensitiveParameters");
	for (li = 0; li < 2; li++)
		if (YAJL_IS_ARRAY(lists[li])) {
			lists[nlists] = lists[li];
			for (i = 0; i < lists[nlists]->u.array.len; i++)
				if ((name = norm_param_name(
					 lists[nlists]->u.array.values[i])) !=
				    NULL) {
					total += strlen(name) + 1;
					cnt++;
				}
			nlists++;
		}
	if (total == 0)
		return 0;
	if ((l->param_names = malloc(total)) == NULL)
		return -ENOMEM;
	if ((rc = norm_names_init(&names, cnt)) != 0)
		return rc;
	for (li = 0; li < nlists; li++)
		for (i = 0; i < lists[li]->u.array.len; i++) {
			name = norm_param_name(lists[li]->u.array.values[i]);
			if (name == NULL || norm_names_seen(&names, name) > 0)
				continue;
			len = strlen(name) + 1;
			memcpy(l->param_names + off, name, len);
			off += len;
		}
	norm_names_clear(&names);
	l->param_names_len = off;
	return 0;
}

void
norm_logs_free(struct norm_log *logs, size_t nlogs)
{
	size_t i;

	if (logs == NULL)
		return;
	for (i = 0; i < nlogs; i++)
		norm_log_clear(&logs[i]);
	free(logs);
}

/*
 * normalize_activity() within a page's byte budget (NULL: none): logs
 * beyond it are truncated (see norm_log_build()).
 */
static int
normalize_activity_budget(yajl_val activity, const char *app_fallback,
    struct norm_log **logs, size_t *nlogs, size_t *budget, char *err,
    size_t errlen)
{
	struct norm_act	 a;
	struct norm_log *nl = NULL, *grown;
	yajl_val	 id, events, ev;
	const char	*errmsg = NULL, *tstr;
	size_t		 n = 0, cnt, i;
	int		 rc = -ENOMEM;

	if (activity == NULL || logs == NULL || nlogs == NULL) {
		util_errf(err, errlen, "no activity");
		return -EINVAL;
	}
	memset(&a, 0, sizeof(a));
	a.act = activity;
	a.budget = budget;
	id = json_get(activity, "id");
	a.customer = norm_scalar_text(json_get(id, "customerId"));
	a.uq = norm_scalar_text(json_get(id, "uniqueQualifier"));
	a.app = json_get_string(id, "applicationName");
	if (a.app == NULL || a.app[0] == '\0')
		a.app = app_fallback != NULL ? app_fallback : "unknown";
	tstr = json_get_string(id, "time");
	if (tstr != NULL && json_time_parse_rfc3339(tstr, &a.time_ms) == 0)
		a.have_time = true;

	events = json_get(activity, "events");
	if (!YAJL_IS_OBJECT(activity))
		errmsg = "activity is not a JSON object";
	else if (!YAJL_IS_OBJECT(id))
		errmsg = "activity has no id object";
	else if (tstr == NULL)
		errmsg = "activity has no id.time";
	else if (!a.have_time)
		errmsg = "activity id.time is not an RFC 3339 time";
	else if (a.uq == NULL)
		errmsg = "activity has no id.uniqueQualifier";
	else if (events == NULL)
		errmsg = "activity has no events";
	else if (!YAJL_IS_ARRAY(events) && !YAJL_IS_OBJECT(events))
		errmsg = "activity events is not an array";
	else if (YAJL_IS_ARRAY(events) && events->u.array.len == 0)
		errmsg = "activity events is empty";

	cnt = errmsg != NULL	  ? 1 :
	    YAJL_IS_ARRAY(events) ? events->u.array.len :
				    1;
	if ((nl = calloc(cnt, sizeof(*nl))) == NULL)
		goto fail;
	if (errmsg != NULL) {
		if ((rc = norm_error_log(&nl[0], &a, errmsg)) != 0)
			goto fail;
		n = 1;
	} else {
		for (i = 0; i < cnt; i++) {
			ev = YAJL_IS_ARRAY(events) ? events->u.array.values[i] :
						     events;
			if ((rc = normalize_log_id(a.customer, a.app, a.time_ms,
				 a.uq, i, json_get_string(ev, "name"),
				 nl[i].id)) != 0)
				goto fail;
			rc = norm_log_build(&nl[i], &a, ev,
			    YAJL_IS_OBJECT(ev) ?
				NULL :
				"activity event is not an object",
			    true);
			if (rc == -EINVAL)
				rc = norm_log_build(&nl[i], &a, ev,
				    "activity is not serializable JSON", false);
			if (rc != 0)
				goto fail;
			n++;
			if ((rc = norm_log_names(&nl[i], ev)) != 0)
				goto fail;
		}
	}

	rc = -ENOMEM;
	if ((grown = reallocarray(*logs, *nlogs + n, sizeof(*grown))) == NULL)
		goto fail;
	memcpy(grown + *nlogs, nl, n * sizeof(*nl));
	*logs = grown;
	*nlogs += n;
	free(nl);
	return 0;
fail:
	if (rc == -ENOMEM)
		util_errf(err, errlen, "out of memory");
	else
		util_errf(err, errlen, "cannot serialize activity");
	norm_logs_free(nl, n);
	return rc;
}

/* Normalize one activity, appending to *logs; see normalize.h. */
int
normalize_activity(yajl_val activity, const char *app_fallback,
    struct norm_log **logs, size_t *nlogs, char *err, size_t errlen)
{
	return normalize_activity_budget(activity, app_fallback, logs, nlogs,
	    NULL, err, errlen);
}

/* Parse and normalize an activities.list page; see normalize.h. */
int
normalize_page(const char *body, size_t len, const char *app_fallback,
    struct norm_log **logs, size_t *nlogs, char **next_page_token, char *err,
    size_t errlen)
{
	yajl_val	 page = NULL, items, tok;
	struct norm_log *out = NULL;
	size_t		 nout = 0, i, budget = NORM_PAGE_OUT_MAX;
	char		 perr[200];
	int		 rc = -EINVAL;

	*logs = NULL;
	*nlogs = 0;
	*next_page_token = NULL;
	if ((rc = json_parse(body, len, NORM_PAGE_MAX_DEPTH, &page, perr,
		 sizeof(perr))) != 0) {
		util_errf(err, errlen, "activities page: %s", perr);
		return rc;
	}
	rc = -EINVAL;
	if (!YAJL_IS_OBJECT(page)) {
		util_errf(err, errlen, "activities page is not a JSON object");
		goto fail;
	}
	if (json_get(page, "error") != NULL &&
	    json_get(page, "items") == NULL) {
		util_errf(err, errlen, "activities page is an error response");
		goto fail;
	}
	items = json_get(page, "items");
	if (items != NULL && !YAJL_IS_ARRAY(items)) {
		util_errf(err, errlen, "activities page items is not an array");
		goto fail;
	}
	tok = json_get(page, "nextPageToken");
	if (tok != NULL && !YAJL_IS_STRING(tok) && !YAJL_IS_NULL(tok)) {
		util_errf(err, errlen,
		    "activities page nextPageToken is not a string");
		goto fail;
	}
	for (i = 0; items != NULL && i < items->u.array.len; i++)
		if ((rc = normalize_activity_budget(items->u.array.values[i],
			 app_fallback, &out, &nout, &budget, err, errlen)) != 0)
			goto fail;
	if (YAJL_IS_STRING(tok) && tok->u.string[0] != '\0' &&
	    (*next_page_token = strdup(tok->u.string)) == NULL) {
		rc = -ENOMEM;
		util_errf(err, errlen, "out of memory");
		goto fail;
	}
	*logs = out;
	*nlogs = nout;
	yajl_tree_free(page);
	return 0;
fail:
	norm_logs_free(out, nout);
	yajl_tree_free(page);
	return rc;
}
