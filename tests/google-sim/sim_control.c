/*
 * The control API of the simulator, under /_sim/: tenants, service
 * accounts (with generated RSA keys and Google-style key files), admins,
 * generators and lag, injection, token revocation, faults, ground truth
 * and statistics. JSON in, JSON out; {"error": "..."} on a bad request.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/queue.h>

#include <event2/keyvalq_struct.h>

#include "sim.h"
#include "sim_jwt.h"
#include "sim_page.h"
#include "tests/support/testkey.h"

#define EP_STAT_CONTROL 2

/* {"error": msg} with code. */
static void
ctl_error(struct evhttp_request *req, int code, const char *msg)
{
	yajl_gen g = sim_gen_new();

	if (g == NULL)
		fatal("out of memory");
	yajl_gen_map_open(g);
	yg_kv(g, "error", msg);
	yajl_gen_map_close(g);
	sim_reply_json(req, code, g, EP_STAT_CONTROL);
	yajl_gen_free(g);
}

/* Parse the JSON body; NULL (answered) on error. An empty body is {}. */
static yajl_val
ctl_body(struct evhttp_request *req)
{
	char	*s, err[256];
	yajl_val v;
	size_t	 len;

	if ((s = sim_req_body(req, &len)) == NULL)
		fatal("out of memory");
	v = yajl_tree_parse(len ? s : "{}", err, sizeof(err));
	free(s);
	if (v == NULL) {
		char msg[300];

		snprintf(msg, sizeof(msg), "invalid JSON: %s", err);
		ctl_error(req, 400, msg);
	}
	return v;
}

static const char *
j_str(yajl_val o, const char *key)
{
	const char *p[2] = { key, NULL };
	yajl_val    v = yajl_tree_get(o, p, yajl_t_string);

	return v ? (v)->u.string : NULL;
}

static bool
j_num(yajl_val o, const char *key, double *out)
{
	const char *p[2] = { key, NULL };
	yajl_val    v = yajl_tree_get(o, p, yajl_t_number);

	if (v == NULL)
		return false;
	*out = YAJL_IS_INTEGER(v) ? (double)YAJL_GET_INTEGER(v) :
				    YAJL_GET_DOUBLE(v);
	return true;
}

static bool
j_bool(yajl_val o, const char *key, bool *out)
{
	const char *p[2] = { key, NULL };
	yajl_val    v = yajl_tree_get(o, p, yajl_t_any);

	if (v == NULL || (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)))
		return false;
	*out = YAJL_IS_TRUE(v);
	return true;
}

void
sim_keyfile_gen(yajl_gen g, const struct sim_sa *sa, int k)
{
	char *pem = rsa_key_to_pem(sa->keys[k].key);
	char *enc = evhttp_uriencode(sa->email, -1, 0);
	char  buf[512];

	if (pem == NULL || enc == NULL)
		fatal("out of memory");
	yajl_gen_map_open(g);
	yg_kv(g, "type", "service_account");
	yg_kv(g, "project_id", sa->project);
	yg_kv(g, "private_key_id", sa->keys[k].id);
	yg_kv(g, "private_key", pem);
	yg_kv(g, "client_email", sa->email);
	yg_kv(g, "client_id", sa->client_id);
	yg_kv(g, "auth_uri", "https://accounts.google.com/o/oauth2/auth");
	yg_kv(g, "token_uri", sim.token_url);
	yg_kv(g, "auth_provider_x509_cert_url",
	    "https://www.googleapis.com/oauth2/v1/certs");
	snprintf(buf, sizeof(buf),
	    "https://www.googleapis.com/robot/v1/metadata/x509/%s", enc);
	yg_kv(g, "client_x509_cert_url", buf);
	yg_kv(g, "universe_domain", "googleapis.com");
	yajl_gen_map_close(g);
	crypto_free_secret(pem, strlen(pem));
	free(enc);
}

/* Add a key to sa: given PEM, or a fresh RSA 2048 one. Index or -errno. */
static int
ctl_key_add(struct sim_sa *sa, const char *pem, char *err, size_t errlen)
{
	struct sim_key *k;
	unsigned char	raw[20];
	int		i, rc;

	if (sa->nkeys >= SIM_MAX_KEYS) {
		snprintf(err, errlen, "too many keys");
		return -ENOSPC;
	}
	k = &sa->keys[sa->nkeys];
	if (pem != NULL)
		rc = rsa_key_from_pem(pem, strlen(pem), &k->key, err, errlen);
	else {
		rc = rsa_key_generate(2048, &k->key);
		if (rc < 0)
			snprintf(err, errlen, "key generation failed");
	}
	if (rc < 0)
		return rc;
	crypto_random(raw, sizeof(raw));
	for (i = 0; i < 20; i++)
		snprintf(k->id + 2 * i, 3, "%02x", raw[i]);
	k->deleted = false;
	return sa->nkeys++;
}

static void
ctl_tenant_gen(yajl_gen g, const struct sim_tenant *t)
{
	int i, j;

	yajl_gen_map_open(g);
	yg_kv(g, "customerId", t->cid);
	yg_kv(g, "domain", t->domain);
	yg_kb(g, "paused", t->paused);
	yg_str(g, "serviceAccounts");
	yajl_gen_array_open(g);
	for (i = 0; i < t->nsas; i++) {
		const struct sim_sa *sa = t->sas[i];

		yajl_gen_map_open(g);
		yg_kv(g, "clientEmail", sa->email);
		yg_kb(g, "delegation", sa->delegation);
		yg_kv(g, "delegatedScopes", sa->scopes);
		yg_kb(g, "adminRole", sa->admin_role);
		yg_str(g, "keys");
		yajl_gen_array_open(g);
		for (j = 0; j < sa->nkeys; j++) {
			yajl_gen_map_open(g);
			yg_kv(g, "privateKeyId", sa->keys[j].id);
			yg_kb(g, "deleted", sa->keys[j].deleted);
			yajl_gen_map_close(g);
		}
		yajl_gen_array_close(g);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	yg_str(g, "admins");
	yajl_gen_array_open(g);
	for (i = 0; i < t->nadmins; i++) {
		yajl_gen_map_open(g);
		yg_kv(g, "email", t->admins[i].email);
		yg_kb(g, "privileged", t->admins[i].privileged);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	yg_str(g, "applications");
	yajl_gen_map_open(g);
	for (i = 0; i < SIM_NAPPS; i++) {
		const struct sim_app *a = &t->apps[i];

		if (a->n == 0 && a->rate <= 0)
			continue;
		yg_str(g, sim_app_names[i]);
		yajl_gen_map_open(g);
		yg_str(g, "rate");
		yajl_gen_double(g, a->rate);
		yg_kb(g, "paused", a->paused);
		yg_ki(g, "activities", (long long)a->n);
		yg_ki(g, "events", (long long)a->nevents);
		yg_str(g, "lag");
		yajl_gen_map_open(g);
		yg_str(g, "minSeconds");
		yajl_gen_double(g, a->lag.min_s);
		yg_str(g, "meanSeconds");
		yajl_gen_double(g, a->lag.mean_s);
		yg_str(g, "tailProbability");
		yajl_gen_double(g, a->lag.tail_p);
		yg_str(g, "tailMaxSeconds");
		yajl_gen_double(g, a->lag.tail_max_s);
		yajl_gen_map_close(g);
		yajl_gen_map_close(g);
	}
	yajl_gen_map_close(g);
	yajl_gen_map_close(g);
}

/* Reply with the JSON built in g (200 or code) and free g. */
static void
ctl_reply(struct evhttp_request *req, int code, yajl_gen g)
{
	sim_reply_json(req, code, g, EP_STAT_CONTROL);
	yajl_gen_free(g);
}

static yajl_gen
ctl_gen(void)
{
	yajl_gen g = sim_gen_new();

	if (g == NULL)
		fatal("out of memory");
	return g;
}

static void
ctl_ok(struct evhttp_request *req)
{
	yajl_gen g = ctl_gen();

	yajl_gen_map_open(g);
	yg_kb(g, "ok", true);
	yajl_gen_map_close(g);
	ctl_reply(req, 200, g);
}

static void
ctl_tenants_post(struct evhttp_request *req, yajl_val b)
{
	const char	  *cid = j_str(b, "customerId");
	const char	  *dom = j_str(b, "domain");
	struct sim_tenant *t;
	yajl_gen	   g;

	if (cid == NULL || cid[0] != 'C' || strlen(cid) < 2 ||
	    strlen(cid) > 60 || strchr(cid, '/') != NULL) {
		ctl_error(req, 400, "customerId must match C.+");
		return;
	}
	if (dom == NULL || strlen(dom) > 120 || strchr(dom, '/') != NULL) {
		ctl_error(req, 400, "domain required");
		return;
	}
	if (sim_tenant_find(cid) != NULL) {
		ctl_error(req, 409, "tenant exists");
		return;
	}
	if ((t = sim_tenant_new(cid, dom)) == NULL) {
		ctl_error(req, 507, "too many tenants");
		return;
	}
	log_info("tenant created customerId=%s domain=%s", cid, dom);
	g = ctl_gen();
	ctl_tenant_gen(g, t);
	ctl_reply(req, 201, g);
}

static void
ctl_sa_post(struct evhttp_request *req, struct sim_tenant *t, yajl_val b)
{
	const char    *name = j_str(b, "name");
	const char    *proj = j_str(b, "projectId");
	const char    *pem = j_str(b, "privateKey");
	struct sim_sa *sa;
	char	       err[256], email[256];
	uint64_t       r;
	yajl_gen       g;
	int	       k;

	if (t->nsas >= SIM_MAX_SAS) {
		ctl_error(req, 507, "too many service accounts");
		return;
	}
	if (proj == NULL)
		proj = "sim-project";
	if (name == NULL)
		name = "auditrelay";
	if (strlen(name) > 60 || strlen(proj) > 60) {
		ctl_error(req, 400, "name or projectId too long");
		return;
	}
	snprintf(email, sizeof(email), "%s@%s.iam.gserviceaccount.com", name,
	    proj);
	if (sim_sa_find(email) != NULL) {
		ctl_error(req, 409, "service account exists");
		return;
	}
	if ((sa = calloc(1, sizeof(*sa))) == NULL)
		fatal("out of memory");
	snprintf(sa->email, sizeof(sa->email), "%s", email);
	snprintf(sa->project, sizeof(sa->project), "%s", proj);
	r = sim_mix64(sim_hash_str(email, 0));
	snprintf(sa->client_id, sizeof(sa->client_id), "10%019" PRIu64,
	    (uint64_t)(r % 10000000000000000000ULL));
	sa->delegation = true;
	snprintf(sa->scopes, sizeof(sa->scopes), "%s", SIM_JWT_REPORTS_SCOPE);
	(void)j_bool(b, "delegation", &sa->delegation);
	(void)j_bool(b, "adminRole", &sa->admin_role);
	sa->tenant = t;
	if ((k = ctl_key_add(sa, pem, err, sizeof(err))) < 0) {
		free(sa);
		ctl_error(req, 400, err);
		return;
	}
	t->sas[t->nsas++] = sa;
	log_info("service account created tenant=%s client=%s key=%s "
		 "delegation=%d adminRole=%d",
	    t->cid, sa->email, sa->keys[k].id, sa->delegation, sa->admin_role);
	g = ctl_gen();
	sim_keyfile_gen(g, sa, k);
	ctl_reply(req, 201, g);
}

/* POST tenants/{cid}/service-accounts/{email}[/keys] */
static void
ctl_sa_update(struct evhttp_request *req, struct sim_tenant *t,
    const char *rest, yajl_val b)
{
	char	       email[256], err[256];
	const char    *s;
	struct sim_sa *sa;
	bool	       bv;
	int	       i, k;
	size_t	       n = strcspn(rest, "/");
	yajl_gen       g;

	if (n >= sizeof(email)) {
		ctl_error(req, 404, "no such service account");
		return;
	}
	memcpy(email, rest, n);
	email[n] = '\0';
	sa = sim_sa_find(email);
	if (sa == NULL || sa->tenant != t) {
		ctl_error(req, 404, "no such service account");
		return;
	}
	if (strcmp(rest + n, "/keys") == 0) {
		if ((k = ctl_key_add(sa, j_str(b, "privateKey"), err,
			 sizeof(err))) < 0) {
			ctl_error(req, 400, err);
			return;
		}
		g = ctl_gen();
		sim_keyfile_gen(g, sa, k);
		ctl_reply(req, 201, g);
		return;
	}
	if (rest[n] != '\0') {
		ctl_error(req, 404, "not found");
		return;
	}
	if (j_bool(b, "delegation", &bv)) {
		sa->delegation = bv;
		log_info("delegation %s client=%s", bv ? "granted" : "removed",
		    sa->email);
	}
	if ((s = j_str(b, "delegatedScopes")) != NULL)
		snprintf(sa->scopes, sizeof(sa->scopes), "%s", s);
	if (j_bool(b, "adminRole", &bv)) {
		sa->admin_role = bv;
		log_info("admin role with the Reports privilege %s client=%s",
		    bv ? "assigned to" : "removed from", sa->email);
	}
	if (j_bool(b, "revokeKeys", &bv) && bv) {
		for (i = 0; i < sa->nkeys; i++)
			sa->keys[i].deleted = true;
		log_info("keys deleted client=%s", sa->email);
	}
	if ((s = j_str(b, "revokeKey")) != NULL)
		for (i = 0; i < sa->nkeys; i++)
			if (strcmp(sa->keys[i].id, s) == 0)
				sa->keys[i].deleted = true;
	if (j_bool(b, "restoreKeys", &bv) && bv)
		for (i = 0; i < sa->nkeys; i++)
			sa->keys[i].deleted = false;
	g = ctl_gen();
	ctl_tenant_gen(g, t);
	ctl_reply(req, 200, g);
}

static void
ctl_admin_post(struct evhttp_request *req, struct sim_tenant *t, yajl_val b)
{
	const char *email = j_str(b, "email");
	bool	    priv = true;
	int	    i;

	if (email == NULL || strchr(email, '@') == NULL ||
	    strlen(email) > 250) {
		ctl_error(req, 400, "email required");
		return;
	}
	(void)j_bool(b, "privileged", &priv);
	i = sim_admin_find(t, email);
	if (i < 0) {
		if (t->nadmins >= SIM_MAX_ADMINS) {
			ctl_error(req, 507, "too many admins");
			return;
		}
		i = t->nadmins++;
		snprintf(t->admins[i].email, sizeof(t->admins[i].email), "%s",
		    email);
	}
	t->admins[i].privileged = priv;
	log_info("admin tenant=%s email=%s privileged=%d", t->cid, email,
	    (int)priv);
	ctl_ok(req);
}

static void
ctl_app_post(struct evhttp_request *req, struct sim_tenant *t, const char *name,
    yajl_val b)
{
	const char     *p_lag[] = { "lag", NULL };
	int		app = sim_app_index(name);
	struct sim_app *a;
	yajl_val	lag;
	double		d;
	bool		bv;

	if (app < 0) {
		ctl_error(req, 404, "unknown applicationName");
		return;
	}
	a = &t->apps[app];
	if (j_num(b, "rate", &d)) {
		if (d < 0 || d > 1e6) {
			ctl_error(req, 400, "rate out of range");
			return;
		}
		a->rate = d;
	}
	if (j_bool(b, "paused", &bv))
		a->paused = bv;
	if ((lag = yajl_tree_get(b, p_lag, yajl_t_object)) != NULL) {
		if (j_num(lag, "minSeconds", &d) && d >= 0)
			a->lag.min_s = d;
		if (j_num(lag, "meanSeconds", &d) && d >= 0)
			a->lag.mean_s = d;
		if (j_num(lag, "tailProbability", &d) && d >= 0 && d <= 1)
			a->lag.tail_p = d;
		if (j_num(lag, "tailMaxSeconds", &d) && d >= 0)
			a->lag.tail_max_s = d;
	}
	log_info("application tenant=%s app=%s rate=%g paused=%d lag=%g+%g",
	    t->cid, name, a->rate, (int)a->paused, a->lag.min_s, a->lag.mean_s);
	ctl_ok(req);
}

static void
ctl_inject(struct evhttp_request *req, struct sim_tenant *t, yajl_val b)
{
	const char *p_acts[] = { "activities", NULL };
	const char *app_s = j_str(b, "application");
	yajl_val    list = YAJL_IS_ARRAY(b) ?
	       b :
	       yajl_tree_get(b, p_acts, yajl_t_array);
	double	    vis = 0;
	bool	    use_lag = false;
	char	    err[256];
	int	    app, n;
	yajl_gen    g;

	if (list == NULL) {
		ctl_error(req, 400, "activities[] required");
		return;
	}
	if (app_s == NULL && list->u.array.len > 0) {
		const char *p[] = { "id", "applicationName", NULL };
		yajl_val    v = yajl_tree_get(list->u.array.values[0], p,
		       yajl_t_string);

		app_s = v ? (v)->u.string : NULL;
	}
	if ((app = sim_app_index(app_s)) < 0) {
		ctl_error(req, 400, "application required (discovery enum)");
		return;
	}
	(void)j_num(b, "visibleAfterSeconds", &vis);
	if (j_bool(b, "useLag", &use_lag) && use_lag)
		vis = -1;
	n = sim_inject(t, app, list, vis, err, sizeof(err));
	if (n < 0) {
		ctl_error(req, 400, err);
		return;
	}
	log_info("injected tenant=%s app=%s activities=%d", t->cid, app_s, n);
	g = ctl_gen();
	yajl_gen_map_open(g);
	yg_ki(g, "injected", n);
	yajl_gen_map_close(g);
	ctl_reply(req, 200, g);
}

static void
ctl_faults_gen(yajl_gen g)
{
	int i;

	yajl_gen_map_open(g);
	yg_str(g, "faults");
	yajl_gen_array_open(g);
	for (i = 0; i < sim.nfaults; i++) {
		const struct sim_fault *f = &sim.faults[i];

		yajl_gen_map_open(g);
		yg_ki(g, "id", f->id);
		yg_kv(g, "tenant", f->tenant[0] ? f->tenant : NULL);
		yg_kv(g, "application",
		    f->app >= 0 ? sim_app_names[f->app] : NULL);
		yg_kv(g, "kind", sim_fault_names[f->kind]);
		yg_kv(g, "endpoint",
		    f->ep == EP_TOKEN	? "token" :
			f->ep == EP_ANY ? "any" :
					  "activities");
		yg_str(g, "probability");
		yajl_gen_double(g, f->probability);
		yg_ki(g, "count", f->count);
		yg_ki(g, "retryAfter", f->retry_after);
		yg_ki(g, "fired", (long long)f->fired);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
}

static void
ctl_faults_post(struct evhttp_request *req, yajl_val b)
{
	const char	 *kind = j_str(b, "kind");
	const char	 *tn = j_str(b, "tenant");
	const char	 *app = j_str(b, "application");
	const char	 *ep = j_str(b, "endpoint");
	struct sim_fault *f;
	double		  d;
	int		  k;
	yajl_gen	  g;

	for (k = 0; k < FAULT_NKINDS && kind != NULL; k++)
		if (strcmp(sim_fault_names[k], kind) == 0)
			break;
	if (kind == NULL || k == FAULT_NKINDS) {
		ctl_error(req, 400,
		    "kind must be one of rate_limit "
		    "user_rate_limit 429 503 500 slow reset repeat_token "
		    "bad_json truncated_json revoked_key no_delegation");
		return;
	}
	if (sim.nfaults >= SIM_MAX_FAULTS) {
		ctl_error(req, 507, "too many faults");
		return;
	}
	if (app != NULL && sim_app_index(app) < 0) {
		ctl_error(req, 400, "unknown application");
		return;
	}
	f = &sim.faults[sim.nfaults];
	memset(f, 0, sizeof(*f));
	f->kind = (enum sim_fault_kind)k;
	snprintf(f->tenant, sizeof(f->tenant), "%s", tn ? tn : "");
	f->app = app ? sim_app_index(app) : -1;
	f->ep = (f->kind == FAULT_REVOKED_KEY ||
		    f->kind == FAULT_NO_DELEGATION) ?
	    EP_TOKEN :
	    EP_ACTIVITIES;
	if (ep != NULL && strcmp(ep, "token") == 0)
		f->ep = EP_TOKEN;
	else if (ep != NULL && strcmp(ep, "any") == 0)
		f->ep = EP_ANY;
	f->probability = 1.0;
	if (j_num(b, "probability", &d))
		f->probability = d;
	f->count = -1;
	if (j_num(b, "count", &d))
		f->count = (long)d;
	if (j_num(b, "durationSeconds", &d) && d > 0)
		f->until_us = sim_now_us() + (int64_t)(d * 1e6);
	if (j_num(b, "retryAfter", &d))
		f->retry_after = (int)d;
	if (j_num(b, "delayMs", &d))
		f->delay_ms = (int)d;
	f->id = ++sim.fault_seq;
	sim.nfaults++;
	log_info("fault set id=%d kind=%s tenant=%s app=%s p=%g count=%ld",
	    f->id, kind, tn ? tn : "*", app ? app : "*", f->probability,
	    f->count);
	g = ctl_gen();
	yajl_gen_map_open(g);
	yg_ki(g, "id", f->id);
	yajl_gen_map_close(g);
	ctl_reply(req, 201, g);
}

static void
ctl_faults_delete(struct evhttp_request *req, struct evkeyvalq *q)
{
	const char *id = evhttp_find_header(q, "id");
	int	    i, j = 0;

	for (i = 0; i < sim.nfaults; i++)
		if (id != NULL && sim.faults[i].id != atoi(id))
			sim.faults[j++] = sim.faults[i];
	sim.nfaults = j;
	log_info("faults cleared %s", id ? id : "all");
	ctl_ok(req);
}

/* Move what g holds into b. */
static void
ctl_flush(yajl_gen g, struct evbuffer *b)
{
	const unsigned char *out;
	size_t		     len;

	if (yajl_gen_get_buf(g, &out, &len) == yajl_gen_status_ok) {
		evbuffer_add(b, out, len);
		yajl_gen_clear(g);
	}
}

/* GET events: the ground truth, one entry per event. */
static void
ctl_events(struct evhttp_request *req, struct evkeyvalq *q)
{
	const char	*tn = evhttp_find_header(q, "tenant");
	const char	*an = evhttp_find_header(q, "application");
	const char	*vf = evhttp_find_header(q, "visible");
	int		 app_f = an ? sim_app_index(an) : -1;
	int64_t		 now = sim_now_us();
	struct evbuffer *b = evbuffer_new();
	yajl_gen	 g = ctl_gen();
	char		 tb[32], vb[32], ub[32];
	uint64_t	 nout = 0;
	int		 i, app, k;
	size_t		 j;

	if (b == NULL)
		fatal("out of memory");
	if (an != NULL && app_f < 0) {
		evbuffer_free(b);
		yajl_gen_free(g);
		ctl_error(req, 400, "unknown application");
		return;
	}
	yajl_gen_map_open(g);
	yg_kv(g, "now", sim_time_format(now, tb));
	yg_str(g, "events");
	yajl_gen_array_open(g);
	for (i = 0; i < sim.ntenants; i++) {
		struct sim_tenant *t = sim.tenants[i];

		if (tn != NULL && strcmp(tn, t->cid) != 0)
			continue;
		for (app = 0; app < SIM_NAPPS; app++) {
			struct sim_app *a = &t->apps[app];

			if (app_f >= 0 && app != app_f)
				continue;
			for (j = 0; j < a->n; j++) {
				const struct sim_act *x = &a->acts[j];
				bool vis = x->visible_us <= now;

				if (vf != NULL && (atoi(vf) != 0) != vis)
					continue;
				snprintf(ub, sizeof(ub), "%" PRId64, x->uq);
				sim_time_format(x->time_us, tb);
				sim_time_format(x->visible_us, vb);
				for (k = 0; k < sim_act_nevents(x); k++) {
					yajl_gen_map_open(g);
					yg_kv(g, "customerId", t->cid);
					yg_kv(g, "applicationName",
					    sim_app_names[app]);
					yg_kv(g, "time", tb);
					yg_kv(g, "uniqueQualifier", ub);
					yg_ki(g, "eventIndex", k);
					yg_kv(g, "eventName",
					    sim_act_event_name(x, app, k));
					yg_kv(g, "visibleAt", vb);
					yg_kb(g, "visible", vis);
					yajl_gen_map_close(g);
					if ((++nout & 255) == 0)
						ctl_flush(g, b);
				}
			}
		}
	}
	yajl_gen_array_close(g);
	yg_ki(g, "count", (long long)nout);
	yajl_gen_map_close(g);
	ctl_flush(g, b);
	yajl_gen_free(g);
	sim_reply_buf(req, 200, b, EP_STAT_CONTROL);
	evbuffer_free(b);
}

static void
ctl_stats(struct evhttp_request *req)
{
	static const char *const eps[] = { "token", "activities", "control",
		"other" };
	yajl_gen		 g = ctl_gen();
	char			 buf[16], tb[32];
	int			 i, j, app;
	int64_t			 now = sim_now_us();
	double			 up = (double)(now - sim.started_us) / 1e6;

	yajl_gen_map_open(g);
	yg_kv(g, "now", sim_time_format(now, tb));
	yg_ki(g, "uptimeSeconds", (long long)up);
	yg_str(g, "requests");
	yajl_gen_map_open(g);
	for (i = 0; i < 4; i++) {
		yg_str(g, eps[i]);
		yajl_gen_map_open(g);
		for (j = 0; j < SIM_STAT_CODES && sim.stats[i].code[j]; j++) {
			snprintf(buf, sizeof(buf), "%d", sim.stats[i].code[j]);
			if (sim.stats[i].code[j] == 1)
				snprintf(buf, sizeof(buf), "reset");
			yg_ki(g, buf, (long long)sim.stats[i].count[j]);
		}
		yajl_gen_map_close(g);
	}
	yajl_gen_map_close(g);
	yg_ki(g, "pagesServed", (long long)sim.pages_served);
	yg_ki(g, "activitiesServed", (long long)sim.activities_served);
	yg_ki(g, "eventsServed", (long long)sim.events_served);
	yg_ki(g, "bytesServed", (long long)sim.bytes_served);
	yg_str(g, "stored");
	yajl_gen_array_open(g);
	for (i = 0; i < sim.ntenants; i++) {
		struct sim_tenant *t = sim.tenants[i];

		for (app = 0; app < SIM_NAPPS; app++) {
			struct sim_app *a = &t->apps[app];
			size_t		k, vis = 0;

			if (a->n == 0)
				continue;
			for (k = 0; k < a->n; k++)
				if (a->acts[k].visible_us <= now)
					vis++;
			yajl_gen_map_open(g);
			yg_kv(g, "tenant", t->cid);
			yg_kv(g, "application", sim_app_names[app]);
			yg_ki(g, "activities", (long long)a->n);
			yg_ki(g, "events", (long long)a->nevents);
			yg_ki(g, "visibleActivities", (long long)vis);
			yajl_gen_map_close(g);
		}
	}
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
	ctl_reply(req, 200, g);
}

static void
ctl_settings(struct evhttp_request *req, yajl_val b)
{
	const char *s;
	double	    d;
	bool	    bv;
	yajl_gen    g;

	if (b != NULL) {
		if ((s = j_str(b, "tokenUrl")) != NULL)
			snprintf(sim.token_url, sizeof(sim.token_url), "%s", s);
		if (j_num(b, "quotaPerMinute", &d) && d >= 0)
			sim.quota_per_minute = (unsigned)d;
		if (j_num(b, "tokenTtlSeconds", &d) && d >= 1)
			sim.token_ttl = (int)d;
		if (j_num(b, "timeScale", &d) && d > 0)
			sim.time_scale = d;
		if (j_bool(b, "noLag", &bv))
			sim.no_lag = bv;
	}
	g = ctl_gen();
	yajl_gen_map_open(g);
	yg_kv(g, "listen", sim.listen);
	yg_kv(g, "tokenUrl", sim.token_url);
	yg_ki(g, "quotaPerMinute", sim.quota_per_minute);
	yg_ki(g, "tokenTtlSeconds", sim.token_ttl);
	yg_str(g, "timeScale");
	yajl_gen_double(g, sim.time_scale);
	yg_kb(g, "noLag", sim.no_lag);
	yg_ki(g, "seed", (long long)sim.seed);
	yajl_gen_map_close(g);
	ctl_reply(req, 200, g);
}

static void
ctl_tokens_revoke(struct evhttp_request *req, yajl_val b)
{
	const char *tn = j_str(b, "tenant");
	const char *cl = j_str(b, "clientEmail");
	size_t	    i, n = 0;
	yajl_gen    g;

	for (i = 0; i < sim.ntokens; i++) {
		struct sim_token *t = &sim.tokens[i];

		if (tn != NULL && strcmp(t->sa->tenant->cid, tn) != 0)
			continue;
		if (cl != NULL && strcmp(t->sa->email, cl) != 0)
			continue;
		if (!t->revoked)
			n++;
		t->revoked = true;
	}
	log_info("tokens revoked count=%zu", n);
	g = ctl_gen();
	yajl_gen_map_open(g);
	yg_ki(g, "revoked", (long long)n);
	yajl_gen_map_close(g);
	ctl_reply(req, 200, g);
}

/* Test helper: sign a JWT with a service account's key. */
static void
ctl_sign_jwt(struct evhttp_request *req, yajl_val b)
{
	const char	    *p_claims[] = { "claims", NULL };
	const char	    *email = j_str(b, "clientEmail");
	const char	    *sub = j_str(b, "subject");
	struct sim_sa	    *sa = email ? sim_sa_find(email) : NULL;
	yajl_val	     claims = yajl_tree_get(b, p_claims, yajl_t_object);
	yajl_gen	     g, cg;
	const unsigned char *out;
	size_t		     len;
	char		    *cj = NULL, *jwt;
	int64_t		     now = sim_now_us() / 1000000;

	if (sa == NULL || sa->nkeys == 0) {
		ctl_error(req, 404, "no such service account");
		return;
	}
	cg = ctl_gen();
	if (claims != NULL)
		sim_tree_gen(cg, claims);
	else {
		yajl_gen_map_open(cg);
		yg_kv(cg, "iss", sa->email);
		if (sub != NULL)
			yg_kv(cg, "sub", sub);
		yg_kv(cg, "scope", SIM_JWT_REPORTS_SCOPE);
		yg_kv(cg, "aud", sim.token_url);
		yg_ki(cg, "iat", now);
		yg_ki(cg, "exp", now + 3600);
		yajl_gen_map_close(cg);
	}
	if (yajl_gen_get_buf(cg, &out, &len) != yajl_gen_status_ok ||
	    (cj = strndup((const char *)out, len)) == NULL)
		fatal("out of memory");
	yajl_gen_free(cg);
	jwt = jwt_sign_rs256(sa->keys[0].key, sa->keys[0].id, cj);
	free(cj);
	if (jwt == NULL) {
		ctl_error(req, 500, "signing failed");
		return;
	}
	g = ctl_gen();
	yajl_gen_map_open(g);
	yg_kv(g, "assertion", jwt);
	yajl_gen_map_close(g);
	free(jwt);
	ctl_reply(req, 200, g);
}

/* Routes under tenants/{cid}/... */
static void
ctl_tenant_route(struct evhttp_request *req, enum evhttp_cmd_type cmd,
    const char *rest, yajl_val b)
{
	char		   cid[64];
	size_t		   n = strcspn(rest, "/");
	struct sim_tenant *t;
	const char	  *sub;
	yajl_gen	   g;

	if (n == 0 || n >= sizeof(cid)) {
		ctl_error(req, 404, "no such tenant");
		return;
	}
	memcpy(cid, rest, n);
	cid[n] = '\0';
	if ((t = sim_tenant_find(cid)) == NULL) {
		ctl_error(req, 404, "no such tenant");
		return;
	}
	sub = rest + n;
	if (*sub == '\0' && cmd == EVHTTP_REQ_GET) {
		g = ctl_gen();
		ctl_tenant_gen(g, t);
		ctl_reply(req, 200, g);
		return;
	}
	if (cmd != EVHTTP_REQ_POST) {
		ctl_error(req, 405, "POST expected");
		return;
	}
	if (strcmp(sub, "/service-accounts") == 0)
		ctl_sa_post(req, t, b);
	else if (strncmp(sub, "/service-accounts/", 18) == 0)
		ctl_sa_update(req, t, sub + 18, b);
	else if (strcmp(sub, "/admins") == 0)
		ctl_admin_post(req, t, b);
	else if (strncmp(sub, "/applications/", 14) == 0)
		ctl_app_post(req, t, sub + 14, b);
	else if (strcmp(sub, "/inject") == 0)
		ctl_inject(req, t, b);
	else if (strcmp(sub, "/pause") == 0 || strcmp(sub, "/resume") == 0) {
		t->paused = strcmp(sub, "/pause") == 0;
		log_info("tenant=%s generation %s", t->cid,
		    t->paused ? "paused" : "resumed");
		ctl_ok(req);
	} else
		ctl_error(req, 404, "not found");
}

void
sim_control(struct evhttp_request *req, const char *path)
{
	enum evhttp_cmd_type	 cmd = evhttp_request_get_command(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char		*qs = evhttp_uri_get_query(uri);
	struct evkeyvalq	 q;
	yajl_val		 b = NULL;
	char			*dpath;
	yajl_gen		 g;
	int			 i;

	TAILQ_INIT(&q);
	if ((dpath = evhttp_uridecode(path, 0, NULL)) == NULL)
		fatal("out of memory");
	if (qs != NULL && evhttp_parse_query_str(qs, &q) < 0) {
		ctl_error(req, 400, "bad query string");
		goto done;
	}
	if (cmd == EVHTTP_REQ_POST && (b = ctl_body(req)) == NULL)
		goto done;
	if (strcmp(dpath, "health") == 0)
		ctl_ok(req);
	else if (strcmp(dpath, "stats") == 0)
		ctl_stats(req);
	else if (strcmp(dpath, "settings") == 0)
		ctl_settings(req, b);
	else if (strcmp(dpath, "events") == 0)
		ctl_events(req, &q);
	else if (strcmp(dpath, "faults") == 0) {
		if (cmd == EVHTTP_REQ_POST)
			ctl_faults_post(req, b);
		else if (cmd == EVHTTP_REQ_DELETE)
			ctl_faults_delete(req, &q);
		else {
			g = ctl_gen();
			ctl_faults_gen(g);
			ctl_reply(req, 200, g);
		}
	} else if (strcmp(dpath, "tokens/revoke") == 0 &&
	    cmd == EVHTTP_REQ_POST)
		ctl_tokens_revoke(req, b);
	else if (strcmp(dpath, "sign-jwt") == 0 && cmd == EVHTTP_REQ_POST)
		ctl_sign_jwt(req, b);
	else if (strcmp(dpath, "tenants") == 0) {
		if (cmd == EVHTTP_REQ_POST)
			ctl_tenants_post(req, b);
		else {
			g = ctl_gen();
			yajl_gen_map_open(g);
			yg_str(g, "tenants");
			yajl_gen_array_open(g);
			for (i = 0; i < sim.ntenants; i++)
				ctl_tenant_gen(g, sim.tenants[i]);
			yajl_gen_array_close(g);
			yajl_gen_map_close(g);
			ctl_reply(req, 200, g);
		}
	} else if (strncmp(dpath, "tenants/", 8) == 0)
		ctl_tenant_route(req, cmd, dpath + 8, b);
	else
		ctl_error(req, 404, "not found");
done:
	yajl_tree_free(b);
	evhttp_clear_headers(&q);
	free(dpath);
}
