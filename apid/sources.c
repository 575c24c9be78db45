/*
 * The sources endpoints. Validation is synchronous (validate.c); adding a
 * source, rotating its credentials or patching it then goes through the
 * pipeline (pipeline.c: the callback host resolved and checked, Google
 * asked, both asynchronously on the event loop), whose last step is the
 * commit here: seal, store, reply. What a source reports (status, last
 * times) comes from view.c.
 *
 * Every handler here is store work (http.h, http_work): it runs on a
 * worker thread, never on the event loop, and records its reply, store
 * outcome, source change and log line for the loop to apply. It reads
 * the request's copy of the configuration (a->conf), never child_config(),
 * and checks store_healthy() before its first store call (503 at once
 * while the store is known to be down; such work may then run on the
 * loop). What needs the loop (the pipeline: resolver, Google) follows
 * through http_then().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "apid/apid.h"
#include "apid/http.h"
#include "apid/pipeline.h"
#include "apid/sources.h"
#include "apid/validate.h"
#include "apid/view.h"
#include "apid/watermark.h"
#include "lib/base/json.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/crypto/crypto.h"
#include "lib/google/google.h"
#include "lib/store/store.h"
#include "runtime/child.h"

#define SECRET_OVERLAP_MS  (24LL * 3600 * 1000)
#define LIST_LIMIT_DEFAULT 1000
#define LIST_LIMIT_MAX	   1000
#define DEAD_LIMIT_DEFAULT 100
#define DEAD_LIMIT_MAX	   1000
#define REPLAY_IDS_MAX	   1000

/* Reply 503 when the store is down; true when it may be used. */
static bool
src_store_up(struct areq *a)
{
	if (store_healthy(child_store()))
		return true;
	http_error(a, 503, "store_unavailable", NULL,
	    "the store is "
	    "unreachable (down for %llds); nothing was changed, retry later",
	    (long long)store_outage_ms(child_store()) / 1000);
	return false;
}

/*
 * Reply code with w's JSON, or 500 naming what could not be rendered; then
 * zero the buffer, since some bodies carry a webhook secret.
 */
static void
src_reply_jsonw(struct areq *a, int code, struct jsonw *w, const char *what)
{
	const char *out;
	size_t	    len;

	if ((out = jsonw_buf(w, &len)) == NULL) {
		http_error(a, 500, "internal", NULL, "%s", what);
		return;
	}
	http_reply(a, code, out, len);
	memset((char *)out, 0, len);
}

/* Record a store failure and reply 503. */
static void
src_store_failed(struct areq *a, const char *err)
{
	http_store_result(a, false, err);
	http_error(a, 503, "store_unavailable", NULL,
	    "the store did not answer; retry later");
}

/*
 * Load source id into *out without answering when it is absent: 1 found,
 * 0 not found, -1 (503 sent).
 */
static int
src_load_quiet(struct areq *a, const char *id, bson_t *out)
{
	bson_t sel = BSON_INITIALIZER;
	char   err[256];
	int    rc;

	BSON_APPEND_UTF8(&sel, "_id", id);
	rc = store_find_one(child_store(), STORE_SOURCES, &sel, NULL, out, err,
	    sizeof(err));
	bson_destroy(&sel);
	if (rc < 0) {
		src_store_failed(a, err);
		return -1;
	}
	http_store_result(a, true, NULL);
	return rc;
}

/* Load source id into *out: 1 found, 0 not found (404 sent), -1 (503). */
static int
src_load(struct areq *a, const char *id, bson_t *out)
{
	int rc;

	if (!validate_uuid_lower(id)) {
		http_error(a, 404, "not_found", "id", "no such source");
		return 0;
	}
	if (!src_store_up(a))
		return -1;
	if ((rc = src_load_quiet(a, id, out)) == 0)
		http_error(a, 404, "not_found", "id", "no such source");
	return rc;
}

/*
 * Append field: {keyId, nonce, ct} sealing pt with the master key, bound
 * by creds_seal() to the source id, the field and version. 0 or -errno.
 */
static int
src_seal(bson_t *parent, const char *field, const char *id, int64_t version,
    const void *pt, size_t len)
{
	uint8_t	       nonce[CRYPTO_NONCE_LEN];
	unsigned char *ct = NULL;
	size_t	       ctlen;
	bson_t	       child;
	int	       rc;

	if ((rc = creds_seal(apid.mkey, id, field, version, pt, len, nonce, &ct,
		 &ctlen)) != 0)
		return rc;
	BSON_APPEND_DOCUMENT_BEGIN(parent, field, &child);
	BSON_APPEND_UTF8(&child, "keyId", apid.keyid);
	BSON_APPEND_BINARY(&child, "nonce", BSON_SUBTYPE_BINARY, nonce,
	    sizeof(nonce));
	BSON_APPEND_BINARY(&child, "ct", BSON_SUBTYPE_BINARY, ct,
	    (uint32_t)ctlen);
	bson_append_document_end(parent, &child);
	free(ct);
	return 0;
}

/* Seal the credentials {"privateKey","privateKeyId"} of version. */
static int
src_seal_creds(bson_t *parent, const char *id, int64_t version,
    const struct src_creds *c)
{
	struct jsonw *w = jsonw_new();
	char	     *pt;
	size_t	      len;
	int	      rc;

	if (w == NULL)
		return -ENOMEM;
	jsonw_obj_open(w);
	jsonw_kv_str(w, "privateKey", c->private_key);
	if (c->private_key_id != NULL)
		jsonw_kv_str(w, "privateKeyId", c->private_key_id);
	jsonw_obj_close(w);
	if ((pt = jsonw_steal(w, &len)) == NULL) {
		jsonw_free(w);
		return -ENOMEM;
	}
	jsonw_free(w);
	rc = src_seal(parent, "credentials", id, version, pt, len);
	crypto_free_secret(pt, len + 1);
	return rc;
}

/* Append an array of strings. */
static void
src_append_strv(bson_t *doc, const char *key, char *const *v, size_t n)
{
	bson_t arr;
	char   idx[24];
	size_t i;

	BSON_APPEND_ARRAY_BEGIN(doc, key, &arr);
	for (i = 0; i < n; i++) {
		snprintf(idx, sizeof(idx), "%zu", i);
		BSON_APPEND_UTF8(&arr, idx, v[i]);
	}
	bson_append_array_end(doc, &arr);
}

/* Reply code with the view of source doc (its states read here). */
static void
src_reply_view(struct areq *a, int code, const bson_t *doc, const char *secret)
{
	struct jsonw   *w = jsonw_new();
	struct view	v;
	struct wm_holds holds;
	char		err[256];
	bool		ok;

	if (w == NULL)
		fatal("out of memory");
	if (view_of_doc(doc, &v, err, sizeof(err)) != 0)
		http_store_result(a, false, err);
	/* After the states (watermark.h); without the holds, none. */
	memset(&holds, 0, sizeof(holds));
	ok = v.id != NULL &&
	    apid_wm_holds_load(NULL, v.id, &holds, err, sizeof(err)) == 0;
	if (v.id != NULL && !ok)
		http_store_result(a, false, err);
	jsonw_obj_open(w);
	view_json(w, &v);
	wm_json(w, &v, ok ? &holds : NULL);
	wm_rereads_json(w, &v);
	wm_holds_free(&holds);
	if (secret != NULL)
		jsonw_kv_str(w, "webhookSecret", secret);
	jsonw_obj_close(w);
	src_reply_jsonw(a, code, w, "cannot render the source");
	jsonw_free(w);
	view_clear(&v);
}

/* What a log line shows for the subject (none: the account itself). */
static const char *
src_subject_str(const char *subject)
{
	return subject != NULL ? subject :
				 "(none: the service account "
				 "itself)";
}

/*
 * A keyed digest of everything an add-source body decides (credentials
 * included), as 64 hex digits: HMAC-SHA256 under the master key, so the
 * stored value says nothing about the private key. Two bodies that give
 * the same source have the same digest.
 */
static void
src_input_digest(const struct src_input *in, char out[65])
{
	struct jsonw *w = jsonw_new();
	const char   *buf;
	uint8_t	      mac[32];
	size_t	      len, i;

	if (w == NULL)
		fatal("out of memory");
	jsonw_obj_open(w);
	jsonw_kv_str(w, "clientEmail", in->creds.client_email);
	jsonw_kv_str(w, "privateKey", in->creds.private_key);
	jsonw_kv_str(w, "privateKeyId", in->creds.private_key_id);
	jsonw_kv_str(w, "subject", in->creds.subject);
	jsonw_key(w, "applications");
	jsonw_arr_open(w);
	for (i = 0; i < in->napps; i++)
		jsonw_str(w, in->apps[i]);
	jsonw_arr_close(w);
	jsonw_kv_int(w, "logFetchInterval", in->interval);
	jsonw_kv_int(w, "initialLookback",
	    in->has_lookback ? in->lookback : -1);
	jsonw_kv_str(w, "callbackUrl", in->callback_url);
	if (in->has_watermarks && in->watermarks)
		jsonw_kv_bool(w, "watermarks", true); /* old digests hold */
	jsonw_obj_close(w);
	if ((buf = jsonw_buf(w, &len)) == NULL)
		fatal("cannot render the request digest");
	crypto_hmac_sha256(apid.mkey, sizeof(apid.mkey), buf, len, mac);
	memset((char *)buf, 0, len);
	jsonw_free(w);
	for (i = 0; i < sizeof(mac); i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

/*
 * A client-supplied id that is already taken: the same body again is a
 * retry (200 with the source as stored, without its webhook secret); a
 * different body is a conflict (409).
 */
static void
src_reply_existing(struct areq *a, const struct src_input *in,
    const bson_t *doc)
{
	const char *have = store_bson_str(doc, "requestDigest");
	char	    want[65];

	src_input_digest(in, want);
	if (have != NULL && strlen(have) == 64 &&
	    crypto_ct_equal(have, 64, want, 64)) {
		http_note(a,
		    "source=%s add-source repeated with the same "
		    "body; answering with the existing source",
		    in->id);
		src_reply_view(a, 200, doc, NULL);
		return;
	}
	http_error(a, 409, "id_conflict", "id",
	    "a source with id %s already "
	    "exists with a different body (credentials or settings); post "
	    "the same body to get it back, choose another id (or none) for "
	    "a new source, or change it with PATCH /sources/%s",
	    in->id, in->id);
}

/* The pipeline's commit is over: the pipe goes. */
static void
src_committed(struct areq *a, void *arg)
{
	if (a != NULL)
		http_error(a, 500, "internal", NULL, "not answered");
	pipe_committed(arg);
}

/* Run the store work of op's commit on a worker; then the pipe ends. */
static void
src_commit_on_worker(struct pipe *op, http_handler work)
{
	op->a->arg = op;
	http_then(op->a, src_committed, op);
	if (http_work_always(op->a, work) != 0)
		pipe_committed(op);
}

/*
 * Store work of an add's commit: insert the new source; 201 with it and
 * its secret.
 */
static void
src_commit_add_work(struct areq *a)
{
	struct pipe *op = a->arg;
	bson_t	     doc = BSON_INITIALIZER, scopes;
	char	    *secret = NULL, err[256], digest[65];
	int64_t	     now = util_now_ms();
	int	     rc;

	if (!src_store_up(a)) {
		bson_destroy(&doc);
		return;
	}
	if (op->in.has_id)
		util_strlcpy(op->id, op->in.id, sizeof(op->id));
	else
		util_uuid_v4(op->id);
	util_strlcpy(op->in.id, op->id, sizeof(op->in.id));
	src_input_digest(&op->in, digest);
	if ((secret = webhook_secret_new()) == NULL)
		fatal("out of memory");
	BSON_APPEND_UTF8(&doc, "_id", op->id);
	BSON_APPEND_UTF8(&doc, "sourceType", "google_workspace");
	BSON_APPEND_UTF8(&doc, "clientEmail", op->in.creds.client_email);
	if (op->in.creds.subject != NULL)
		BSON_APPEND_UTF8(&doc, "subject", op->in.creds.subject);
	else
		BSON_APPEND_NULL(&doc, "subject");
	BSON_APPEND_ARRAY_BEGIN(&doc, "scopes", &scopes);
	BSON_APPEND_UTF8(&scopes, "0", GOOGLE_SCOPE_REPORTS);
	bson_append_array_end(&doc, &scopes);
	src_append_strv(&doc, "applications", op->in.apps, op->in.napps);
	BSON_APPEND_INT32(&doc, "logFetchInterval", (int32_t)op->in.interval);
	BSON_APPEND_UTF8(&doc, "callbackUrl", op->in.callback_url);
	BSON_APPEND_BOOL(&doc, "paused", false);
	BSON_APPEND_BOOL(&doc, "watermarks",
	    op->in.has_watermarks && op->in.watermarks);
	BSON_APPEND_INT32(&doc, "initialLookback",
	    (int32_t)(op->in.has_lookback ? op->in.lookback :
					    a->conf.initial_lookback));
	BSON_APPEND_UTF8(&doc, "requestDigest", digest);
	if (src_seal_creds(&doc, op->id, 1, &op->in.creds) != 0 ||
	    src_seal(&doc, "webhookSecret", op->id, 1, secret,
		strlen(secret)) != 0) {
		http_error(a, 500, "internal", NULL,
		    "cannot encrypt the credentials");
		goto done;
	}
	BSON_APPEND_INT64(&doc, "credentialsVersion", 1);
	BSON_APPEND_INT64(&doc, "webhookSecretVersion", 1);
	BSON_APPEND_INT64(&doc, "createdAt", now);
	BSON_APPEND_INT64(&doc, "updatedAt", now);
	rc = store_insert_one(child_store(), STORE_SOURCES, &doc, err,
	    sizeof(err));
	if (rc == -EEXIST && op->in.has_id) {
		bson_t old;

		/* The same id was added meanwhile: a retry or a conflict. */
		http_store_result(a, true, NULL);
		if (src_load(a, op->id, &old) == 1) {
			src_reply_existing(a, &op->in, &old);
			bson_destroy(&old);
		}
		goto done;
	}
	if (rc != 0) {
		src_store_failed(a, err);
		goto done;
	}
	http_store_result(a, true, NULL);
	http_changed(a, op->id, false);
	http_note(a,
	    "source=%s added: client=%s subject=%s applications=%zu "
	    "interval=%llds callback host=%s (checked with Google in %lldms)",
	    op->id, op->in.creds.client_email,
	    src_subject_str(op->in.creds.subject), op->in.napps,
	    (long long)op->in.interval, op->in.cb_host,
	    (long long)(util_mono_ms() - op->t0));
	src_reply_view(a, 201, &doc, secret);
done:
	crypto_free_secret(secret, strlen(secret) + 1);
	bson_destroy(&doc);
}

static void
src_commit_add(struct pipe *op)
{
	src_commit_on_worker(op, src_commit_add_work);
}

/* Reload the source and reply 200 with its view (after an update). */
static void
src_reply_reloaded(struct areq *a, const char *id)
{
	bson_t doc;

	if (src_load(a, id, &doc) == 1) {
		src_reply_view(a, 200, &doc, NULL);
		bson_destroy(&doc);
	}
}

/* $set fields on source id; 404 when it vanished meanwhile. */
static bool
src_update(struct areq *a, const char *id, const bson_t *set)
{
	bson_t	sel = BSON_INITIALIZER;
	int64_t matched = 0;
	char	err[256];
	int	rc;

	BSON_APPEND_UTF8(&sel, "_id", id);
	rc = store_update_set(child_store(), STORE_SOURCES, &sel, set, false,
	    &matched, err, sizeof(err));
	bson_destroy(&sel);
	if (rc != 0) {
		src_store_failed(a, err);
		return false;
	}
	http_store_result(a, true, NULL);
	if (matched == 0) {
		http_error(a, 404, "not_found", "id", "no such source");
		return false;
	}
	return true;
}

/* Store work of PUT credentials: seal them at the next version; 200. */
static void
src_commit_creds_work(struct areq *a)
{
	struct pipe *op = a->arg;
	bson_t	     set = BSON_INITIALIZER, scopes;

	BSON_APPEND_UTF8(&set, "clientEmail", op->in.creds.client_email);
	if (op->in.creds.subject != NULL)
		BSON_APPEND_UTF8(&set, "subject", op->in.creds.subject);
	else
		BSON_APPEND_NULL(&set, "subject");
	BSON_APPEND_ARRAY_BEGIN(&set, "scopes", &scopes);
	BSON_APPEND_UTF8(&scopes, "0", GOOGLE_SCOPE_REPORTS);
	bson_append_array_end(&set, &scopes);
	if (src_seal_creds(&set, op->id, op->cred_version + 1, &op->in.creds) !=
	    0) {
		http_error(a, 500, "internal", NULL,
		    "cannot encrypt the credentials");
		goto done;
	}
	BSON_APPEND_INT64(&set, "credentialsVersion", op->cred_version + 1);
	BSON_APPEND_INT64(&set, "updatedAt", util_now_ms());
	if (!src_store_up(a) || !src_update(a, op->id, &set))
		goto done;
	http_changed(a, op->id, false);
	http_note(a,
	    "source=%s credentials rotated: client=%s subject=%s "
	    "version=%lld",
	    op->id, op->in.creds.client_email,
	    src_subject_str(op->in.creds.subject),
	    (long long)op->cred_version + 1);
	src_reply_reloaded(a, op->id);
done:
	bson_destroy(&set);
}

static void
src_commit_creds(struct pipe *op)
{
	src_commit_on_worker(op, src_commit_creds_work);
}

/* Store work of PATCH: $set what the body gave; 200 with the source. */
static void
src_commit_patch_work(struct areq *a)
{
	struct pipe *op = a->arg;
	bson_t	     set = BSON_INITIALIZER;

	if (op->in.has_apps)
		src_append_strv(&set, "applications", op->in.apps,
		    op->in.napps);
	if (op->in.has_interval)
		BSON_APPEND_INT32(&set, "logFetchInterval",
		    (int32_t)op->in.interval);
	if (op->in.has_callback)
		BSON_APPEND_UTF8(&set, "callbackUrl", op->in.callback_url);
	if (op->in.has_paused)
		BSON_APPEND_BOOL(&set, "paused", op->in.paused);
	if (op->in.has_lookback)
		BSON_APPEND_INT32(&set, "initialLookback",
		    (int32_t)op->in.lookback);
	if (op->in.has_watermarks)
		BSON_APPEND_BOOL(&set, "watermarks", op->in.watermarks);
	BSON_APPEND_INT64(&set, "updatedAt", util_now_ms());
	if (!src_store_up(a) || !src_update(a, op->id, &set))
		goto done;
	http_changed(a, op->id, false);
	http_note(a, "source=%s changed:%s%s%s%s%s%s", op->id,
	    op->in.has_apps ? " applications" : "",
	    op->in.has_interval ? " logFetchInterval" : "",
	    op->in.has_lookback ? " initialLookback" : "",
	    op->in.has_callback ? " callbackUrl" : "",
	    op->in.has_paused ? (op->in.paused ? " paused" : " resumed") : "",
	    op->in.has_watermarks ?
		(op->in.watermarks ? " watermarks on" : " watermarks off") :
		"");
	src_reply_reloaded(a, op->id);
done:
	bson_destroy(&set);
}

static void
src_commit_patch(struct pipe *op)
{
	src_commit_on_worker(op, src_commit_patch_work);
}

/*
 * What the store work of an add, a credentials rotation or a patch hands
 * to the pipeline on the loop (http_then).
 */
struct src_next {
	enum pipe_kind	 kind;
	pipe_commit_fn	 commit;
	struct src_input in;
	int64_t		 cred_version;
};

/* Loop: start the pipeline of a with n (freed). */
static void
src_pipe_then(struct areq *a, void *arg)
{
	struct src_next *n = arg;
	struct pipe	*op;

	if (a == NULL || http_gone(a)) {
		if (a != NULL)
			http_done(a);
	} else if ((op = pipe_new(a, n->kind, n->commit)) != NULL) {
		op->in = n->in;
		memset(&n->in, 0, sizeof(n->in));
		if (n->kind != PIPE_ADD)
			util_strlcpy(op->id, a->id, sizeof(op->id));
		op->cred_version = n->cred_version;
		pipe_start(op);
	}
	src_input_clear(&n->in);
	free(n);
}

/* In store work: the pipeline of kind follows on the loop with in. */
static void
src_pipe_next(struct areq *a, enum pipe_kind kind, pipe_commit_fn commit,
    const struct src_input *in, int64_t cred_version)
{
	struct src_next *n = util_xcalloc(1, sizeof(*n));

	n->kind = kind;
	n->commit = commit;
	n->in = *in;
	n->cred_version = cred_version;
	http_then(a, src_pipe_then, n);
}

/*
 * True (after replying 507) when the store holds api_max_sources sources
 * already. The count is the store's estimate (no scan); a failure to
 * count does not refuse.
 */
static bool
src_full(struct areq *a)
{
	mongoc_client_t	    *c;
	mongoc_collection_t *col;
	bson_error_t	     be;
	int64_t		     n, max;

	max = a->conf.max_sources;
	c = store_pop(child_store());
	col = store_coll(child_store(), c, STORE_SOURCES);
	n = mongoc_collection_estimated_document_count(col, NULL, NULL, NULL,
	    &be);
	mongoc_collection_destroy(col);
	store_push(child_store(), c);
	if (n < max)
		return false;
	http_error(a, 507, "too_many_sources", NULL,
	    "this instance already "
	    "holds %lld sources, its maximum (api_max_sources): remove "
	    "sources or raise the setting",
	    (long long)n);
	return true;
}

void
sources_add(struct areq *a)
{
	struct src_input in;
	struct verr	 e;

	memset(&e, 0, sizeof(e));
	if (validate_add_source(a->body, a->conf.min_interval,
		a->conf.allow_private, &in, &e) != 0) {
		http_verr(a, &e);
		return;
	}
	if (!src_store_up(a)) {
		src_input_clear(&in);
		return;
	}
	if (in.has_id) {
		bson_t old;
		int    rc = src_load_quiet(a, in.id, &old);

		if (rc != 0) {
			if (rc == 1) {
				src_reply_existing(a, &in, &old);
				bson_destroy(&old);
			}
			src_input_clear(&in);
			return;
		}
	}
	if (src_full(a)) {
		src_input_clear(&in);
		return;
	}
	src_pipe_next(a, PIPE_ADD, src_commit_add, &in, 0);
}

void
sources_put_credentials(struct areq *a)
{
	struct src_input in;
	struct verr	 e;
	bson_t		 doc;
	bson_iter_t	 it, sub;

	memset(&in, 0, sizeof(in));
	memset(&e, 0, sizeof(e));
	if (src_load(a, a->id, &doc) != 1)
		return;
	if (validate_credentials(a->body, "", &in.creds, &e) != 0) {
		bson_destroy(&doc);
		http_verr(a, &e);
		return;
	}
	in.has_creds = true;
	if (bson_iter_init_find(&it, &doc, "applications") &&
	    BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &sub))
		while (bson_iter_next(&sub) && in.napps < VALIDATE_APPS_MAX)
			if (BSON_ITER_HOLDS_UTF8(&sub))
				in.apps[in.napps++] = util_xstrdup(
				    bson_iter_utf8(&sub, NULL));
	src_pipe_next(a, PIPE_CREDS, src_commit_creds, &in,
	    store_bson_int(&doc, "credentialsVersion", 1));
	bson_destroy(&doc);
}

void
sources_patch(struct areq *a)
{
	struct src_input in;
	struct verr	 e;
	bson_t		 doc;
	bool		 paused;

	memset(&e, 0, sizeof(e));
	if (src_load(a, a->id, &doc) != 1)
		return;
	paused = store_bson_bool(&doc, "paused", false);
	bson_destroy(&doc);
	if (validate_patch(a->body, a->conf.min_interval, a->conf.allow_private,
		&in, &e) != 0) {
		http_verr(a, &e);
		return;
	}
	if (in.has_lookback && !paused && !(in.has_paused && in.paused)) {
		http_error(a, 409, "not_paused", "initialLookback",
		    "initialLookback can be changed only while the source is "
		    "paused: send {\"paused\": true} first (or with it), then "
		    "resume with {\"paused\": false}; it sets how far back an "
		    "application with no fetch progress yet starts");
		src_input_clear(&in);
		return;
	}
	src_pipe_next(a, PIPE_PATCH, src_commit_patch, &in, 0);
}

void
sources_remove(struct areq *a)
{
	bson_t	sel = BSON_INITIALIZER;
	int64_t deleted = 0;
	char	err[256];
	int	rc;

	if (!validate_uuid_lower(a->id)) {
		http_error(a, 404, "not_found", "id", "no such source");
		goto done;
	}
	if (!src_store_up(a))
		goto done;
	BSON_APPEND_UTF8(&sel, "_id", a->id);
	rc = store_delete(child_store(), STORE_SOURCES, &sel, false, &deleted,
	    err, sizeof(err));
	if (rc != 0) {
		src_store_failed(a, err);
		goto done;
	}
	http_store_result(a, true, NULL);
	if (deleted == 0) {
		http_error(a, 404, "not_found", "id", "no such source");
		goto done;
	}
	http_changed(a, a->id, true);
	http_note(a, "source=%s removed; its fetches and deliveries stop",
	    a->id);
	http_reply(a, 204, NULL, 0);
done:
	bson_destroy(&sel);
}

void
sources_get(struct areq *a)
{
	bson_t doc;

	if (src_load(a, a->id, &doc) != 1)
		return;
	src_reply_view(a, 200, &doc, NULL);
	bson_destroy(&doc);
}

/*
 * ?limit=N (1..max, def when absent) of a listing into *limit and, when
 * after is not NULL, &after=ID into after[] (empty: from the start); false
 * after replying 400.
 */
static bool
src_query(struct areq *a, int64_t def, int max, int64_t *limit, char *after,
    size_t alen)
{
	struct evkeyvalq q;
	struct evkeyval *kv;
	bool		 ok = true;

	*limit = def;
	if (after != NULL)
		after[0] = '\0';
	if (!http_query_parse(a, &q))
		return false;
	TAILQ_FOREACH (kv, &q, next) {
		if (strcmp(kv->key, "limit") == 0) {
			if (util_parse_int64(kv->value, 1, max, limit) != 0) {
				http_error(a, 400, "out_of_range", "limit",
				    "limit must be an integer from 1 to %d",
				    max);
				ok = false;
				break;
			}
		} else if (after != NULL && strcmp(kv->key, "after") == 0) {
			if (!validate_uuid_lower(kv->value)) {
				http_error(a, 400, "invalid_parameter", "after",
				    "after must be a source id (the "
				    "nextAfter of the previous page)");
				ok = false;
				break;
			}
			util_strlcpy(after, kv->value, alen);
		} else {
			http_error(a, 400, "unknown_parameter", "query",
			    "unknown query parameter (%s)",
			    after != NULL ? "limit, after" : "only limit");
			ok = false;
			break;
		}
	}
	evhttp_clear_headers(&q);
	return ok;
}

/*
 * GET /sources: a page of at most limit sources, oldest first (createdAt,
 * then id), from after the source "after"; "nextAfter" names the last one
 * when more follow. Only the page's states are read.
 */
void
sources_list(struct areq *a)
{
	mongoc_client_t *c;
	bson_t		 q = BSON_INITIALIZER, prev, or, o1, o2, gt;
	struct views	 vs;
	struct jsonw	*w = NULL;
	int64_t		 limit, created = 0;
	char		 after[64], err[256];
	size_t		 i;
	int		 rc;

	memset(&vs, 0, sizeof(vs));
	if (!src_query(a, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, &limit, after,
		sizeof(after)))
		goto done;
	if (!src_store_up(a))
		goto done;
	if (after[0] != '\0') {
		if ((rc = src_load_quiet(a, after, &prev)) < 0)
			goto done;
		if (rc == 0) {
			http_error(a, 404, "not_found", "after",
			    "no source %s (removed since the previous page? "
			    "list again from the start)",
			    after);
			goto done;
		}
		created = store_bson_int(&prev, "createdAt", 0);
		bson_destroy(&prev);
		/* (createdAt, _id) > (created, after) */
		BSON_APPEND_ARRAY_BEGIN(&q, "$or", & or);
		BSON_APPEND_DOCUMENT_BEGIN(& or, "0", &o1);
		BSON_APPEND_DOCUMENT_BEGIN(&o1, "createdAt", &gt);
		BSON_APPEND_INT64(&gt, "$gt", created);
		bson_append_document_end(&o1, &gt);
		bson_append_document_end(& or, &o1);
		BSON_APPEND_DOCUMENT_BEGIN(& or, "1", &o2);
		BSON_APPEND_INT64(&o2, "createdAt", created);
		BSON_APPEND_DOCUMENT_BEGIN(&o2, "_id", &gt);
		BSON_APPEND_UTF8(&gt, "$gt", after);
		bson_append_document_end(&o2, &gt);
		bson_append_document_end(& or, &o2);
		bson_append_array_end(&q, & or);
	}
	c = store_pop(child_store());
	rc = views_load(c, &q, limit, &vs, err, sizeof(err));
	store_push(child_store(), c);
	if (rc != 0) {
		src_store_failed(a, err);
		goto done;
	}
	if ((w = jsonw_new()) == NULL)
		fatal("out of memory");
	jsonw_obj_open(w);
	jsonw_key(w, "sources");
	jsonw_arr_open(w);
	for (i = 0; i < vs.n; i++) {
		jsonw_obj_open(w);
		view_json(w, &vs.v[i]);
		jsonw_obj_close(w);
	}
	jsonw_arr_close(w);
	if (vs.more)
		jsonw_kv_str(w, "nextAfter", vs.v[vs.n - 1].id);
	jsonw_obj_close(w);
	http_store_result(a, true, NULL);
	src_reply_jsonw(a, 200, w, "cannot render sources");
done:
	views_clear(&vs);
	jsonw_free(w);
	bson_destroy(&q);
}

void
sources_rotate_secret(struct areq *a)
{
	bson_t	      doc, set = BSON_INITIALIZER, prev;
	bson_iter_t   it, sub;
	struct verr   e;
	struct jsonw *w = NULL;
	char	     *secret = NULL, when[32];
	int64_t	      until = util_now_ms() + SECRET_OVERLAP_MS, ver;

	memset(&e, 0, sizeof(e));
	if (a->body != NULL && validate_empty_object(a->body, &e) != 0) {
		http_verr(a, &e);
		goto done;
	}
	if (src_load(a, a->id, &doc) != 1)
		goto done;
	if ((secret = webhook_secret_new()) == NULL)
		fatal("out of memory");
	/*
	 * The blob moves as it is: sealed for webhookSecret at version ver,
	 * it opens as the previous secret while webhookSecretVersion is
	 * ver + 1 (the credentials version is not involved).
	 */
	ver = store_bson_int(&doc, "webhookSecretVersion", 1);
	if (bson_iter_init_find(&it, &doc, "webhookSecret") &&
	    BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &sub)) {
		BSON_APPEND_DOCUMENT_BEGIN(&set, "previousWebhookSecret",
		    &prev);
		while (bson_iter_next(&sub))
			if (strcmp(bson_iter_key(&sub), "until") != 0)
				bson_append_iter(&prev, NULL, 0, &sub);
		BSON_APPEND_INT64(&prev, "until", until);
		bson_append_document_end(&set, &prev);
	}
	bson_destroy(&doc);
	if (src_seal(&set, "webhookSecret", a->id, ver + 1, secret,
		strlen(secret)) != 0) {
		http_error(a, 500, "internal", NULL, "cannot encrypt");
		goto done;
	}
	BSON_APPEND_INT64(&set, "webhookSecretVersion", ver + 1);
	BSON_APPEND_INT64(&set, "updatedAt", util_now_ms());
	if (!src_update(a, a->id, &set))
		goto done;
	http_changed(a, a->id, false);
	time_format_rfc3339_ms(until, when);
	http_note(a,
	    "source=%s webhook secret rotated; the previous one stays "
	    "valid until %s",
	    a->id, when);
	if ((w = jsonw_new()) == NULL)
		fatal("out of memory");
	jsonw_obj_open(w);
	jsonw_kv_str(w, "id", a->id);
	jsonw_kv_str(w, "webhookSecret", secret);
	jsonw_kv_str(w, "previousWebhookSecretValidUntil", when);
	jsonw_obj_close(w);
	src_reply_jsonw(a, 200, w, "cannot render");
done:
	if (secret != NULL)
		crypto_free_secret(secret, strlen(secret) + 1);
	jsonw_free(w);
	bson_destroy(&set);
}

/* Length of an array member of doc (0 when absent). */
static int64_t
src_array_len(const bson_t *doc, const char *key)
{
	bson_iter_t it, sub;
	int64_t	    n = 0;

	if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_ARRAY(&it) &&
	    bson_iter_recurse(&it, &sub))
		while (bson_iter_next(&sub))
			n++;
	return n;
}

/* The last element of the attempts array as {at, status, error}. */
static void
src_json_last_attempt(struct jsonw *w, const bson_t *doc)
{
	bson_iter_t    it, sub, last;
	bool	       have = false;
	const uint8_t *data;
	uint32_t       len;
	bson_t	       att;

	jsonw_key(w, "lastAttempt");
	if (bson_iter_init_find(&it, doc, "attempts") &&
	    BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &sub))
		while (bson_iter_next(&sub))
			if (BSON_ITER_HOLDS_DOCUMENT(&sub)) {
				last = sub;
				have = true;
			}
	if (!have) {
		jsonw_null(w);
		return;
	}
	bson_iter_document(&last, &len, &data);
	if (!bson_init_static(&att, data, len)) {
		jsonw_null(w);
		return;
	}
	jsonw_obj_open(w);
	view_json_time(w, "at", &att, "at");
	jsonw_kv_int(w, "status", store_bson_int(&att, "status", 0));
	jsonw_kv_str(w, "error", store_bson_str(&att, "error"));
	jsonw_obj_close(w);
}

/* A dead letter listed: its JSON object into the reply. */
struct src_dead {
	struct jsonw *w;
	int64_t	      n;
};

static int
src_dead_one(const bson_t *d, void *arg)
{
	struct src_dead *sd = arg;
	struct jsonw	*w = sd->w;

	jsonw_obj_open(w);
	jsonw_kv_str(w, "id", store_bson_str(d, "_id"));
	jsonw_kv_str(w, "kind", store_bson_str(d, "kind"));
	jsonw_kv_str(w, "webhookId", store_bson_str(d, "webhookId"));
	view_json_time(w, "createdAt", d, "createdAt");
	jsonw_kv_int(w, "attempts", store_bson_int(d, "nAttempts", 0));
	jsonw_kv_int(w, "logCount", store_bson_int(d, "nLogs", 0));
	jsonw_kv_int(w, "alertCount", src_array_len(d, "alertIds"));
	src_json_last_attempt(w, d);
	jsonw_obj_close(w);
	sd->n++;
	return 0;
}

void
sources_dead_letters(struct areq *a)
{
	bson_t		q = BSON_INITIALIZER, opts = BSON_INITIALIZER;
	bson_t		sort, proj, doc;
	struct src_dead sd = { NULL, 0 };
	char		err[512];
	int64_t		limit;
	int		rc;

	if (src_load(a, a->id, &doc) != 1)
		goto done;
	bson_destroy(&doc);
	if (!src_query(a, DEAD_LIMIT_DEFAULT, DEAD_LIMIT_MAX, &limit, NULL, 0))
		goto done;
	BSON_APPEND_UTF8(&q, "sourceId", a->id);
	BSON_APPEND_UTF8(&q, "state", "dead");
	BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
	BSON_APPEND_INT32(&sort, "createdAt", 1);
	bson_append_document_end(&opts, &sort);
	BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
	BSON_APPEND_INT32(&proj, "body", 0);
	bson_append_document_end(&opts, &proj);
	BSON_APPEND_INT64(&opts, "limit", limit);
	if ((sd.w = jsonw_new()) == NULL)
		fatal("out of memory");
	jsonw_obj_open(sd.w);
	jsonw_key(sd.w, "deadLetters");
	jsonw_arr_open(sd.w);
	rc = store_each(child_store(), STORE_BATCHES, &q, &opts, src_dead_one,
	    &sd, err, sizeof(err));
	jsonw_arr_close(sd.w);
	jsonw_kv_int(sd.w, "count", sd.n);
	jsonw_obj_close(sd.w);
	if (rc != 0) {
		src_store_failed(a, err);
		goto done;
	}
	http_store_result(a, true, NULL);
	src_reply_jsonw(a, 200, sd.w, "cannot render");
done:
	jsonw_free(sd.w);
	bson_destroy(&q);
	bson_destroy(&opts);
}

void
sources_replay(struct areq *a)
{
	static const char *const allowed[] = { "ids" };
	bson_t			 sel = BSON_INITIALIZER, set = BSON_INITIALIZER;
	bson_t			 in, arr, doc;
	yajl_val		 ids = NULL;
	int64_t			 matched = 0;
	char			 err[256], f[32], out[128], idx[24];
	size_t			 i, j;
	int			 rc;

	if (a->body != NULL) {
		for (i = 0; i < a->body->u.object.len; i++) {
			for (j = 0; j < nitems(allowed); j++)
				if (strcmp(a->body->u.object.keys[i],
					allowed[j]) == 0)
					break;
			if (j == nitems(allowed)) {
				http_error(a, 400, "unknown_field",
				    a->body->u.object.keys[i],
				    "unknown field (only ids)");
				goto done;
			}
		}
		ids = json_get(a->body, "ids");
		if (ids != NULL &&
		    (!YAJL_IS_ARRAY(ids) || ids->u.array.len == 0 ||
			ids->u.array.len > REPLAY_IDS_MAX)) {
			http_error(a, 400, "invalid_field", "ids",
			    "ids must be "
			    "a non-empty array of at most %d batch ids",
			    REPLAY_IDS_MAX);
			goto done;
		}
		for (i = 0; ids != NULL && i < ids->u.array.len; i++) {
			yajl_val v = ids->u.array.values[i];

			snprintf(f, sizeof(f), "ids[%zu]", i);
			if (!YAJL_IS_STRING(v) ||
			    !validate_uuid_lower(v->u.string)) {
				http_error(a, 400, "invalid_field", f,
				    "%s is not a batch id", f);
				goto done;
			}
		}
	}
	if (src_load(a, a->id, &doc) != 1)
		goto done;
	bson_destroy(&doc);
	BSON_APPEND_UTF8(&sel, "sourceId", a->id);
	BSON_APPEND_UTF8(&sel, "state", "dead");
	if (ids != NULL) {
		BSON_APPEND_DOCUMENT_BEGIN(&sel, "_id", &in);
		BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
		for (i = 0; i < ids->u.array.len; i++) {
			snprintf(idx, sizeof(idx), "%zu", i);
			BSON_APPEND_UTF8(&arr, idx,
			    ids->u.array.values[i]->u.string);
		}
		bson_append_array_end(&in, &arr);
		bson_append_document_end(&sel, &in);
	}
	BSON_APPEND_UTF8(&set, "state", "pending");
	BSON_APPEND_INT64(&set, "nextAttemptAt", util_now_ms());
	rc = store_update_set(child_store(), STORE_BATCHES, &sel, &set, true,
	    &matched, err, sizeof(err));
	if (rc != 0) {
		src_store_failed(a, err);
		goto done;
	}
	http_store_result(a, true, NULL);
	if (matched > 0) {
		http_changed(a, a->id, false);
		http_note(a, "source=%s %lld dead letter(s) replayed", a->id,
		    (long long)matched);
	}
	snprintf(out, sizeof(out), "{\"replayed\":%lld}", (long long)matched);
	http_reply(a, 200, out, strlen(out));
done:
	bson_destroy(&sel);
	bson_destroy(&set);
}

/* For the other handlers of a source's paths (backfill.c). */
int
sources_load(struct areq *a, const char *id, bson_t *out)
{
	return src_load(a, id, out);
}

void
sources_store_failed(struct areq *a, const char *err)
{
	src_store_failed(a, err);
}

void
sources_reply_jsonw(struct areq *a, int code, struct jsonw *w, const char *what)
{
	src_reply_jsonw(a, code, w, what);
}
