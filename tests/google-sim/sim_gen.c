/*
 * Tenants, the deterministic activity generator, the compact activity
 * store and the rendering of activities as Google's JSON.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "sim.h"
#include "sim_page.h"

enum ev_kind {
	K_LOGIN_SUCCESS,
	K_LOGIN_FAILURE,
	K_LOGOUT,
	K_LOGIN_CHALLENGE,
	K_LOGIN_VERIFICATION,
	K_ADMIN_PASSWORD,
	K_ADMIN_GROUP_ADD,
	K_ADMIN_GROUP_REMOVE,
	K_ADMIN_CREATE_USER,
	K_ADMIN_CHROME,
	K_ADMIN_ALERT,
	K_DRIVE_VIEW,
	K_DRIVE_EDIT,
	K_DRIVE_DOWNLOAD,
	K_DRIVE_UPLOAD,
	K_DRIVE_ACL,
	K_TOKEN_AUTHORIZE,
	K_TOKEN_ACTIVITY,
	K_TOKEN_REVOKE,
	K_GEN_CREATE,
	K_GEN_CHANGE,
	K_GEN_DELETE,
};

struct ev_tmpl {
	const char *type; /* NULL: the application's name */
	const char *name;
};

static const struct ev_tmpl ev_tmpls[] = {
	[K_LOGIN_SUCCESS] = { "login", "login_success" },
	[K_LOGIN_FAILURE] = { "login", "login_failure" },
	[K_LOGOUT] = { "login", "logout" },
	[K_LOGIN_CHALLENGE] = { "login", "login_challenge" },
	[K_LOGIN_VERIFICATION] = { "login", "login_verification" },
	[K_ADMIN_PASSWORD] = { "USER_SETTINGS", "CHANGE_PASSWORD" },
	[K_ADMIN_GROUP_ADD] = { "GROUP_SETTINGS", "ADD_GROUP_MEMBER" },
	[K_ADMIN_GROUP_REMOVE] = { "GROUP_SETTINGS", "REMOVE_GROUP_MEMBER" },
	[K_ADMIN_CREATE_USER] = { "USER_SETTINGS", "CREATE_USER" },
	[K_ADMIN_CHROME] = { "CHROME_OS_SETTINGS",
	    "CHANGE_CHROME_OS_USER_SETTING" },
	[K_ADMIN_ALERT] = { "ALERT_CENTER", "ALERT_CENTER_VIEW" },
	[K_DRIVE_VIEW] = { "access", "view" },
	[K_DRIVE_EDIT] = { "access", "edit" },
	[K_DRIVE_DOWNLOAD] = { "access", "download" },
	[K_DRIVE_UPLOAD] = { "access", "upload" },
	[K_DRIVE_ACL] = { "acl_change", "change_user_access" },
	[K_TOKEN_AUTHORIZE] = { "auth", "authorize" },
	[K_TOKEN_ACTIVITY] = { "auth", "activity" },
	[K_TOKEN_REVOKE] = { "auth", "revoke" },
	[K_GEN_CREATE] = { NULL, "create_item" },
	[K_GEN_CHANGE] = { NULL, "change_item" },
	[K_GEN_DELETE] = { NULL, "delete_item" },
};

/* An activity template: one to three events. */
struct act_tmpl {
	int nev;
	int ev[3];
};

static const struct act_tmpl login_tmpls[] = {
	{ 1, { K_LOGIN_SUCCESS } },
	{ 1, { K_LOGIN_SUCCESS } },
	{ 1, { K_LOGIN_SUCCESS } },
	{ 1, { K_LOGIN_FAILURE } },
	{ 1, { K_LOGOUT } },
	{ 2, { K_LOGIN_CHALLENGE, K_LOGIN_VERIFICATION } },
	{ 1, { K_LOGIN_VERIFICATION } },
};
static const struct act_tmpl admin_tmpls[] = {
	{ 1, { K_ADMIN_PASSWORD } },
	{ 2, { K_ADMIN_GROUP_ADD, K_ADMIN_GROUP_REMOVE } },
	{ 1, { K_ADMIN_CREATE_USER } },
	{ 1, { K_ADMIN_CHROME } },
	{ 1, { K_ADMIN_ALERT } },
	{ 3, { K_ADMIN_CREATE_USER, K_ADMIN_GROUP_ADD, K_ADMIN_PASSWORD } },
};
static const struct act_tmpl drive_tmpls[] = {
	{ 1, { K_DRIVE_VIEW } },
	{ 1, { K_DRIVE_VIEW } },
	{ 1, { K_DRIVE_EDIT } },
	{ 1, { K_DRIVE_DOWNLOAD } },
	{ 2, { K_DRIVE_UPLOAD, K_DRIVE_EDIT } },
	{ 1, { K_DRIVE_ACL } },
};
static const struct act_tmpl token_tmpls[] = {
	{ 1, { K_TOKEN_AUTHORIZE } },
	{ 1, { K_TOKEN_ACTIVITY } },
	{ 1, { K_TOKEN_ACTIVITY } },
	{ 1, { K_TOKEN_REVOKE } },
};
static const struct act_tmpl gen_tmpls[] = {
	{ 1, { K_GEN_CREATE } },
	{ 1, { K_GEN_CHANGE } },
	{ 1, { K_GEN_DELETE } },
	{ 3, { K_GEN_CREATE, K_GEN_CHANGE, K_GEN_DELETE } },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The template set of application app; *n receives its size. */
static const struct act_tmpl *
gen_tmpl_set(int app, size_t *n)
{
	const char *name = sim_app_names[app];

	if (strcmp(name, "login") == 0) {
		*n = NELEM(login_tmpls);
		return login_tmpls;
	}
	if (strcmp(name, "admin") == 0) {
		*n = NELEM(admin_tmpls);
		return admin_tmpls;
	}
	if (strcmp(name, "drive") == 0) {
		*n = NELEM(drive_tmpls);
		return drive_tmpls;
	}
	if (strcmp(name, "token") == 0) {
		*n = NELEM(token_tmpls);
		return token_tmpls;
	}
	*n = NELEM(gen_tmpls);
	return gen_tmpls;
}

int64_t
sim_now_us(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* splitmix64 step. */
static uint64_t
rng_next(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ULL;
	return sim_mix64(*s);
}

/* Uniform double in [0, 1). */
static double
rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

int
sim_app_index(const char *name)
{
	int i;

	if (name == NULL)
		return -1;
	for (i = 0; i < SIM_NAPPS; i++)
		if (strcmp(sim_app_names[i], name) == 0)
			return i;
	return -1;
}

struct sim_tenant *
sim_tenant_find(const char *cid)
{
	int i;

	for (i = 0; i < sim.ntenants; i++)
		if (strcmp(sim.tenants[i]->cid, cid) == 0)
			return sim.tenants[i];
	return NULL;
}

/* Default lag of an application (sim seconds). */
static void
gen_lag_default(int app, struct sim_lag *l)
{
	const char *n = sim_app_names[app];

	if (strcmp(n, "login") == 0)
		*l = (struct sim_lag){ 1, 8, 0.01, 600 };
	else if (strcmp(n, "admin") == 0)
		*l = (struct sim_lag){ 2, 20, 0.01, 1800 };
	else if (strcmp(n, "drive") == 0)
		*l = (struct sim_lag){ 30, 240, 0.05, 10800 };
	else if (strcmp(n, "token") == 0)
		*l = (struct sim_lag){ 5, 60, 0.02, 3600 };
	else
		*l = (struct sim_lag){ 10, 120, 0.02, 7200 };
}

struct sim_tenant *
sim_tenant_new(const char *cid, const char *domain)
{
	struct sim_tenant *t;
	int		   i;

	if (sim.ntenants >= SIM_MAX_TENANTS)
		return NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	snprintf(t->cid, sizeof(t->cid), "%s", cid);
	snprintf(t->domain, sizeof(t->domain), "%s", domain);
	t->hash = sim_hash_str(cid, 0);
	for (i = 0; i < SIM_NAPPS; i++) {
		struct sim_app *a = &t->apps[i];

		a->rng = sim_mix64(sim.seed ^ t->hash ^
		    ((uint64_t)(i + 1) * 0x2545f4914f6cdd1dULL));
		a->gen_last_us = sim_now_us();
		gen_lag_default(i, &a->lag);
		if (sim.default_rate > 0 &&
		    (strcmp(sim_app_names[i], "login") == 0 ||
			strcmp(sim_app_names[i], "admin") == 0 ||
			strcmp(sim_app_names[i], "drive") == 0 ||
			strcmp(sim_app_names[i], "token") == 0))
			a->rate = sim.default_rate;
	}
	sim.tenants[sim.ntenants++] = t;
	return t;
}

struct sim_sa *
sim_sa_find(const char *email)
{
	int i, j;

	for (i = 0; i < sim.ntenants; i++)
		for (j = 0; j < sim.tenants[i]->nsas; j++)
			if (strcmp(sim.tenants[i]->sas[j]->email, email) == 0)
				return sim.tenants[i]->sas[j];
	return NULL;
}

int
sim_admin_find(const struct sim_tenant *t, const char *email)
{
	int i;

	for (i = 0; i < t->nadmins; i++)
		if (strcasecmp(t->admins[i].email, email) == 0)
			return i;
	return -1;
}

int64_t
sim_lag_draw(struct sim_app *a)
{
	double s, u;

	u = rng_unit(&a->rng);
	if (u < a->lag.tail_p && a->lag.tail_max_s > a->lag.min_s)
		s = a->lag.min_s +
		    rng_unit(&a->rng) * (a->lag.tail_max_s - a->lag.min_s);
	else
		s = a->lag.min_s - a->lag.mean_s * log(1.0 - rng_unit(&a->rng));
	if (sim.no_lag || s <= 0)
		return 0;
	return (int64_t)(s * 1e6 / sim.time_scale);
}

/* Compare two activities by (time_us, uq). */
static int
act_cmp(const struct sim_act *x, const struct sim_act *y)
{
	if (x->time_us != y->time_us)
		return x->time_us < y->time_us ? -1 : 1;
	if (x->uq != y->uq)
		return x->uq < y->uq ? -1 : 1;
	return 0;
}

int
sim_app_insert(struct sim_app *a, const struct sim_act *act)
{
	size_t lo, hi;

	if (a->n == a->cap) {
		size_t		ncap = a->cap ? a->cap * 2 : 1024;
		struct sim_act *na;

		na = realloc(a->acts, ncap * sizeof(*na));
		if (na == NULL)
			return -ENOMEM;
		a->acts = na;
		a->cap = ncap;
	}
	if (a->n == 0 || act_cmp(&a->acts[a->n - 1], act) <= 0) {
		a->acts[a->n++] = *act;
		goto done;
	}
	lo = 0;
	hi = a->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (act_cmp(&a->acts[mid], act) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(&a->acts[lo + 1], &a->acts[lo], (a->n - lo) * sizeof(*act));
	a->acts[lo] = *act;
	a->n++;
done:
	a->nevents += (uint64_t)sim_act_nevents(act);
	return 0;
}

/* Generate one activity of application app at time t_us. */
static void
gen_one(struct sim_tenant *t, int app, int64_t t_us)
{
	struct sim_app	      *a = &t->apps[app];
	const struct act_tmpl *set;
	struct sim_act	       act;
	size_t		       n;
	uint64_t	       r;

	set = gen_tmpl_set(app, &n);
	memset(&act, 0, sizeof(act));
	r = rng_next(&a->rng);
	act.seed = (uint32_t)r;
	act.tmpl = (uint8_t)((r >> 32) % n);
	act.nevents = (uint8_t)set[act.tmpl].nev;
	act.actor = (uint16_t)((r >> 48) % SIM_USERS);
	if (strcmp(sim_app_names[app], "admin") == 0 && t->nadmins > 0)
		act.actor = (uint16_t)(60000 +
		    (r >> 40) % (unsigned)t->nadmins);
	act.uq = (int64_t)rng_next(&a->rng);
	act.time_us = t_us - t_us % 1000;
	act.visible_us = t_us + sim_lag_draw(a);
	if (sim_app_insert(a, &act) < 0)
		fatal("out of memory storing activities");
}

void
sim_gen_tick(void)
{
	int64_t now = sim_now_us();
	int	i, app;

	for (i = 0; i < sim.ntenants; i++) {
		struct sim_tenant *t = sim.tenants[i];

		for (app = 0; app < SIM_NAPPS; app++) {
			struct sim_app *a = &t->apps[app];
			double		want;
			long		k, j;
			int64_t		dt = now - a->gen_last_us;

			if (a->rate <= 0 || a->paused || t->paused || dt <= 0) {
				a->gen_last_us = now;
				continue;
			}
			want = (double)dt * a->rate / 1e6 + a->gen_carry;
			k = (long)want;
			if (k > 200000)
				k = 200000;
			a->gen_carry = want - (double)k;
			if (a->gen_carry > 1.0)
				a->gen_carry = 0;
			for (j = 0; j < k; j++)
				gen_one(t, app,
				    a->gen_last_us + dt * (j + 1) / k);
			a->gen_last_us = now;
		}
	}
}

int
sim_act_nevents(const struct sim_act *act)
{
	return act->inj != NULL ? act->inj->nnames : act->nevents;
}

const char *
sim_act_event_name(const struct sim_act *act, int app, int i)
{
	const struct act_tmpl *set;
	size_t		       n;

	if (act->inj != NULL)
		return i < act->inj->nnames ? act->inj->names[i] : "";
	set = gen_tmpl_set(app, &n);
	if (act->tmpl >= n || i >= set[act->tmpl].nev)
		return "";
	return ev_tmpls[set[act->tmpl].ev[i]].name;
}

const char *
sim_act_actor(const struct sim_tenant *t, const struct sim_act *act, int app,
    char *buf, size_t len)
{
	if (act->inj != NULL)
		return act->inj->actor_email ? act->inj->actor_email : "";
	if (act->actor >= 60000 && act->actor - 60000 < t->nadmins)
		return t->admins[act->actor - 60000].email;
	snprintf(buf, len, "user%03u@%s", (unsigned)act->actor, t->domain);
	return buf;
}

const char *
sim_act_ip(const struct sim_act *act, char *buf, size_t len)
{
	uint64_t h;

	if (act->inj != NULL)
		return act->inj->ip ? act->inj->ip : "";
	h = sim_mix64(act->seed ^ 0x1234567ULL);
	if (h % 10 == 0)
		snprintf(buf, len, "2001:db8:%x:%x::%x",
		    (unsigned)((h >> 8) & 0xffff),
		    (unsigned)((h >> 24) & 0xffff),
		    (unsigned)((h >> 40) & 0xffff));
	else
		snprintf(buf, len, "%u.%u.%u.%u",
		    (unsigned)(1 + (h >> 8) % 222),
		    (unsigned)((h >> 16) & 0xff), (unsigned)((h >> 24) & 0xff),
		    (unsigned)(1 + (h >> 32) % 254));
	return buf;
}

void
sim_etag(uint64_t a, uint64_t b, char out[80])
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				 "abcdefghijklmnopqrstuvwxyz0123456789-_";
	uint64_t	  s = a;
	int		  i, o = 0;

	out[o++] = '"';
	for (i = 0; i < 43; i++) {
		if (i % 10 == 0)
			s = sim_mix64(s + (uint64_t)i);
		out[o++] = al[(s >> (6 * (i % 10))) & 63];
	}
	out[o++] = '/';
	s = b;
	for (i = 0; i < 27; i++) {
		if (i % 10 == 0)
			s = sim_mix64(s + (uint64_t)i + 77);
		out[o++] = al[(s >> (6 * (i % 10))) & 63];
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* Parameter helpers. */
static void
p_str(yajl_gen g, const char *name, const char *v)
{
	yajl_gen_map_open(g);
	yg_kv(g, "name", name);
	yg_kv(g, "value", v);
	yajl_gen_map_close(g);
}

static void
p_int(yajl_gen g, const char *name, long long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%lld", v);
	yajl_gen_map_open(g);
	yg_kv(g, "name", name);
	yg_kv(g, "intValue", buf);
	yajl_gen_map_close(g);
}

static void
p_bool(yajl_gen g, const char *name, bool v)
{
	yajl_gen_map_open(g);
	yg_kv(g, "name", name);
	yg_kb(g, "boolValue", v);
	yajl_gen_map_close(g);
}

static void
p_multi(yajl_gen g, const char *name, const char *const *v, int n)
{
	int i;

	yajl_gen_map_open(g);
	yg_kv(g, "name", name);
	yg_str(g, "multiValue");
	yajl_gen_array_open(g);
	for (i = 0; i < n; i++)
		yg_str(g, v[i]);
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
}

static const char *const login_types[] = { "google_password", "saml",
	"exchange", "reauth" };
static const char *const challenge_methods[] = { "password",
	"google_authenticator", "security_key", "idv_any_phone",
	"internal_two_factor" };
static const char *const doc_types[] = { "document", "spreadsheet",
	"presentation", "pdf", "folder", "unknown" };
static const char *const visibilities[] = { "private", "people_with_link",
	"shared_internally", "shared_externally" };
static const char *const scopes[] = {
	"https://www.googleapis.com/auth/gmail.readonly",
	"https://www.googleapis.com/auth/calendar",
	"https://www.googleapis.com/auth/drive.file",
	"https://www.googleapis.com/auth/userinfo.email",
};
static const char *const buckets[] = { "GMAIL", "CALENDAR", "DRIVE", "IDENTITY",
	"OTHER" };

/* Parameters of event kind k, drawn from r. */
static void
gen_params(yajl_gen g, const struct sim_tenant *t, int k, uint64_t r)
{
	char	    buf[160], buf2[64];
	const char *mv[4];
	int	    i, n;
	uint64_t    s = r;

	switch (k) {
	case K_LOGIN_SUCCESS:
	case K_LOGIN_FAILURE:
	case K_LOGOUT:
		p_str(g, "login_type", login_types[rng_next(&s) % 4]);
		if (k == K_LOGOUT)
			break;
		if (k == K_LOGIN_FAILURE)
			p_str(g, "login_failure_type",
			    "login_failure_invalid_password");
		mv[0] = challenge_methods[rng_next(&s) % 5];
		p_multi(g, "login_challenge_method", mv, 1);
		p_bool(g, "is_suspicious", rng_next(&s) % 20 == 0);
		break;
	case K_LOGIN_CHALLENGE:
	case K_LOGIN_VERIFICATION:
		p_str(g, "login_type", "google_password");
		n = 1 + (int)(rng_next(&s) % 2);
		for (i = 0; i < n; i++)
			mv[i] = challenge_methods[(rng_next(&s) + i) % 5];
		p_multi(g, "login_challenge_method", mv, n);
		p_str(g, "login_challenge_status",
		    rng_next(&s) % 8 ? "passed" : "failed");
		p_bool(g, "is_second_factor", rng_next(&s) % 2);
		break;
	case K_ADMIN_PASSWORD:
	case K_ADMIN_CREATE_USER:
		snprintf(buf, sizeof(buf), "user%03u@%s",
		    (unsigned)(rng_next(&s) % SIM_USERS), t->domain);
		p_str(g, "USER_EMAIL", buf);
		break;
	case K_ADMIN_GROUP_ADD:
	case K_ADMIN_GROUP_REMOVE:
		snprintf(buf, sizeof(buf), "user%03u@%s",
		    (unsigned)(rng_next(&s) % SIM_USERS), t->domain);
		p_str(g, "USER_EMAIL", buf);
		snprintf(buf, sizeof(buf), "team%02u@%s",
		    (unsigned)(rng_next(&s) % 40), t->domain);
		p_str(g, "GROUP_EMAIL", buf);
		break;
	case K_ADMIN_CHROME:
		p_str(g, "SETTING_NAME", "IncognitoModeAvailability");
		p_str(g, "OLD_VALUE", "0");
		p_str(g, "NEW_VALUE", rng_next(&s) % 2 ? "1" : "2");
		p_str(g, "ORG_UNIT_NAME", "/Engineering");
		break;
	case K_ADMIN_ALERT:
		snprintf(buf, sizeof(buf),
		    "%08" PRIx64 "-%04x-4%03x-a%03x-"
		    "%012" PRIx64,
		    rng_next(&s) >> 32, (unsigned)(rng_next(&s) & 0xffff),
		    (unsigned)(rng_next(&s) & 0xfff),
		    (unsigned)(rng_next(&s) & 0xfff), rng_next(&s) >> 16);
		p_str(g, "ALERT_ID", buf);
		break;
	case K_DRIVE_VIEW:
	case K_DRIVE_EDIT:
	case K_DRIVE_DOWNLOAD:
	case K_DRIVE_UPLOAD:
	case K_DRIVE_ACL:
		p_bool(g, "primary_event",
		    k != K_DRIVE_EDIT || rng_next(&s) % 2);
		p_bool(g, "billable", true);
		p_bool(g, "owner_is_shared_drive", rng_next(&s) % 5 == 0);
		snprintf(buf, sizeof(buf), "user%03u@%s",
		    (unsigned)(rng_next(&s) % SIM_USERS), t->domain);
		p_str(g, "owner", buf);
		snprintf(buf2, sizeof(buf2), "1%016" PRIx64 "Xq", rng_next(&s));
		p_str(g, "doc_id", buf2);
		snprintf(buf, sizeof(buf), "Report %u",
		    (unsigned)(rng_next(&s) % 10000));
		p_str(g, "doc_title", buf);
		p_str(g, "doc_type", doc_types[rng_next(&s) % 6]);
		p_str(g, "visibility", visibilities[rng_next(&s) % 4]);
		if (k == K_DRIVE_ACL) {
			mv[0] = "none";
			p_multi(g, "old_value", mv, 1);
			mv[0] = rng_next(&s) % 2 ? "can_view" : "can_edit";
			p_multi(g, "new_value", mv, 1);
			snprintf(buf, sizeof(buf), "user%03u@%s",
			    (unsigned)(rng_next(&s) % SIM_USERS), t->domain);
			p_str(g, "target_user", buf);
		}
		break;
	case K_TOKEN_AUTHORIZE:
	case K_TOKEN_REVOKE:
		snprintf(buf, sizeof(buf),
		    "%" PRIu64 "-sim.apps.googleusercontent.com",
		    rng_next(&s) % 1000000000);
		p_str(g, "client_id", buf);
		p_str(g, "app_name", "Sim Mail Add-on");
		p_str(g, "client_type", "WEB");
		n = 1 + (int)(rng_next(&s) % 4);
		for (i = 0; i < n; i++)
			mv[i] = scopes[i];
		p_multi(g, "scope", mv, n);
		if (k == K_TOKEN_REVOKE)
			break;
		yajl_gen_map_open(g);
		yg_kv(g, "name", "scope_data");
		yg_str(g, "multiMessageValue");
		yajl_gen_array_open(g);
		for (i = 0; i < n; i++) {
			yajl_gen_map_open(g);
			yg_str(g, "parameter");
			yajl_gen_array_open(g);
			p_str(g, "scope_name", scopes[i]);
			mv[0] = buckets[i];
			p_multi(g, "product_bucket", mv, 1);
			yajl_gen_array_close(g);
			yajl_gen_map_close(g);
		}
		yajl_gen_array_close(g);
		yajl_gen_map_close(g);
		break;
	case K_TOKEN_ACTIVITY:
		p_str(g, "api_name", "admin");
		p_str(g, "method_name", "reports.activities.list");
		p_str(g, "client_id", "423.apps.googleusercontent.com");
		p_int(g, "num_response_bytes",
		    (long long)(rng_next(&s) % 100000));
		p_str(g, "product_bucket", "GSUITE_ADMIN");
		p_str(g, "app_name", "Sim Reports Client");
		p_str(g, "client_type", "WEB");
		break;
	default:
		snprintf(buf2, sizeof(buf2), "res-%016" PRIx64, rng_next(&s));
		p_str(g, "resource_id", buf2);
		p_int(g, "item_count", (long long)(rng_next(&s) % 5000) - 100);
		/* multiIntValue */
		yajl_gen_map_open(g);
		yg_kv(g, "name", "size_bytes");
		yg_str(g, "multiIntValue");
		yajl_gen_array_open(g);
		n = 1 + (int)(rng_next(&s) % 3);
		for (i = 0; i < n; i++) {
			snprintf(buf, sizeof(buf), "%" PRIu64,
			    rng_next(&s) % 100000000);
			yg_str(g, buf);
		}
		yajl_gen_array_close(g);
		yajl_gen_map_close(g);
		p_bool(g, "is_external", rng_next(&s) % 3 == 0);
		mv[0] = "alpha";
		mv[1] = "beta";
		p_multi(g, "labels", mv, 1 + (int)(rng_next(&s) % 2));
		/* messageValue */
		yajl_gen_map_open(g);
		yg_kv(g, "name", "details");
		yg_str(g, "messageValue");
		yajl_gen_map_open(g);
		yg_str(g, "parameter");
		yajl_gen_array_open(g);
		p_str(g, "field", "title");
		p_int(g, "revision", (long long)(rng_next(&s) % 100));
		p_bool(g, "shared", rng_next(&s) % 2);
		yajl_gen_array_close(g);
		yajl_gen_map_close(g);
		yajl_gen_map_close(g);
		break;
	}
}

void
sim_act_render(yajl_gen g, const struct sim_tenant *t, int app,
    const struct sim_act *act)
{
	const struct act_tmpl *set;
	char		       buf[256], tb[32], etag[80];
	size_t		       n;
	int		       i;
	uint64_t	       h;

	if (act->inj != NULL) {
		/* Raw, already valid JSON: yajl_gen_number copies verbatim. */
		yajl_gen_number(g, act->inj->json, act->inj->len);
		return;
	}
	set = gen_tmpl_set(app, &n);
	yajl_gen_map_open(g);
	yg_kv(g, "kind", "admin#reports#activity");
	yg_str(g, "id");
	yajl_gen_map_open(g);
	yg_kv(g, "time", sim_time_format(act->time_us, tb));
	snprintf(buf, sizeof(buf), "%" PRId64, act->uq);
	yg_kv(g, "uniqueQualifier", buf);
	yg_kv(g, "applicationName", sim_app_names[app]);
	yg_kv(g, "customerId", t->cid);
	yajl_gen_map_close(g);
	sim_etag(t->hash, (uint64_t)act->uq ^ act->seed, etag);
	yg_kv(g, "etag", etag);
	yg_str(g, "actor");
	yajl_gen_map_open(g);
	if (strcmp(sim_app_names[app], "token") != 0 || act->seed % 3 != 0)
		yg_kv(g, "callerType", "USER");
	yg_kv(g, "email", sim_act_actor(t, act, app, buf, sizeof(buf)));
	h = sim_mix64(t->hash ^ act->actor);
	snprintf(buf, sizeof(buf), "11%019" PRIu64,
	    (uint64_t)(h % 10000000000000000000ULL));
	yg_kv(g, "profileId", buf);
	yajl_gen_map_close(g);
	yg_kv(g, "ipAddress", sim_act_ip(act, buf, sizeof(buf)));
	yg_str(g, "events");
	yajl_gen_array_open(g);
	for (i = 0; act->tmpl < n && i < set[act->tmpl].nev; i++) {
		const struct ev_tmpl *e = &ev_tmpls[set[act->tmpl].ev[i]];

		yajl_gen_map_open(g);
		yg_kv(g, "type", e->type ? e->type : sim_app_names[app]);
		yg_kv(g, "name", e->name);
		yg_str(g, "parameters");
		yajl_gen_array_open(g);
		gen_params(g, t, set[act->tmpl].ev[i],
		    sim_mix64(act->seed + (uint64_t)i * 7919));
		yajl_gen_array_close(g);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
}

void
sim_tree_gen(yajl_gen g, yajl_val v)
{
	size_t i;

	if (v == NULL || YAJL_IS_NULL(v))
		yajl_gen_null(g);
	else if (YAJL_IS_STRING(v))
		yg_str(g, (v)->u.string);
	else if (YAJL_IS_NUMBER(v))
		yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
	else if (YAJL_IS_TRUE(v))
		yajl_gen_bool(g, 1);
	else if (YAJL_IS_FALSE(v))
		yajl_gen_bool(g, 0);
	else if (YAJL_IS_ARRAY(v)) {
		yajl_gen_array_open(g);
		for (i = 0; i < v->u.array.len; i++)
			sim_tree_gen(g, v->u.array.values[i]);
		yajl_gen_array_close(g);
	} else if (YAJL_IS_OBJECT(v)) {
		yajl_gen_map_open(g);
		for (i = 0; i < v->u.object.len; i++) {
			yg_str(g, v->u.object.keys[i]);
			sim_tree_gen(g, v->u.object.values[i]);
		}
		yajl_gen_map_close(g);
	}
}

/* Free an injected activity. */
static void
inj_free(struct sim_inj *in)
{
	int i;

	if (in == NULL)
		return;
	free(in->json);
	free(in->actor_email);
	free(in->ip);
	for (i = 0; i < in->nnames; i++)
		free(in->names[i]);
	free(in->names);
	free(in);
}

/* Build one injected activity from object o. 0 or -EINVAL/-ENOMEM. */
static int
inj_one(struct sim_tenant *t, int app, yajl_val o, double vis_s, char *err,
    size_t errlen)
{
	const char	    *p_id[] = { "id", NULL };
	const char	    *p_time[] = { "id", "time", NULL };
	const char	    *p_uq[] = { "id", "uniqueQualifier", NULL };
	const char	    *p_email[] = { "actor", "email", NULL };
	const char	    *p_ip[] = { "ipAddress", NULL };
	const char	    *p_events[] = { "events", NULL };
	struct sim_app	    *a = &t->apps[app];
	struct sim_inj	    *in = NULL;
	struct sim_act	     act;
	yajl_val	     v, evs;
	yajl_gen	     g = NULL;
	const unsigned char *out;
	size_t		     outlen, i;
	char		     tb[32], ub[32], *end;
	int		     rc = -EINVAL;

	memset(&act, 0, sizeof(act));
	if (!YAJL_IS_OBJECT(o)) {
		snprintf(err, errlen, "activity is not an object");
		return -EINVAL;
	}
	if ((v = yajl_tree_get(o, p_time, yajl_t_string)) != NULL) {
		if (sim_time_parse((v)->u.string, &act.time_us) < 0) {
			snprintf(err, errlen, "bad id.time");
			return -EINVAL;
		}
	} else
		act.time_us = sim_now_us() / 1000 * 1000;
	v = yajl_tree_get(o, p_uq, yajl_t_any);
	if (v != NULL && YAJL_IS_STRING(v)) {
		errno = 0;
		act.uq = strtoll((v)->u.string, &end, 10);
		if (errno != 0 || *end != '\0' || end == (v)->u.string) {
			snprintf(err, errlen, "bad id.uniqueQualifier");
			return -EINVAL;
		}
	} else if (v != NULL && YAJL_IS_INTEGER(v))
		act.uq = YAJL_GET_INTEGER(v);
	else
		act.uq = (int64_t)rng_next(&a->rng);
	if ((in = calloc(1, sizeof(*in))) == NULL)
		return -ENOMEM;
	rc = -ENOMEM;
	if ((v = yajl_tree_get(o, p_email, yajl_t_string)) != NULL &&
	    (in->actor_email = strdup((v)->u.string)) == NULL)
		goto fail;
	if ((v = yajl_tree_get(o, p_ip, yajl_t_string)) != NULL &&
	    (in->ip = strdup((v)->u.string)) == NULL)
		goto fail;
	evs = yajl_tree_get(o, p_events, yajl_t_array);
	if (evs == NULL || evs->u.array.len == 0) {
		snprintf(err, errlen, "activity without events[]");
		rc = -EINVAL;
		goto fail;
	}
	in->names = calloc(evs->u.array.len, sizeof(char *));
	if (in->names == NULL)
		goto fail;
	for (i = 0; i < evs->u.array.len; i++) {
		const char *p_name[] = { "name", NULL };

		v = yajl_tree_get(evs->u.array.values[i], p_name,
		    yajl_t_string);
		in->names[i] = strdup(v ? (v)->u.string : "");
		if (in->names[i] == NULL)
			goto fail;
		in->nnames++;
	}
	if ((g = sim_gen_new()) == NULL)
		goto fail;
	yajl_gen_map_open(g);
	yg_kv(g, "kind", "admin#reports#activity");
	yg_str(g, "id");
	yajl_gen_map_open(g);
	/* Keep the given precision when it had one; Google's is ms. */
	v = yajl_tree_get(o, p_time, yajl_t_string);
	yg_kv(g, "time", v ? (v)->u.string : sim_time_format(act.time_us, tb));
	snprintf(ub, sizeof(ub), "%" PRId64, act.uq);
	yg_kv(g, "uniqueQualifier", ub);
	yg_kv(g, "applicationName", sim_app_names[app]);
	yg_kv(g, "customerId", t->cid);
	yajl_gen_map_close(g);
	for (i = 0; i < o->u.object.len; i++) {
		const char *k = o->u.object.keys[i];

		if (strcmp(k, "kind") == 0 || strcmp(k, "id") == 0)
			continue;
		yg_str(g, k);
		sim_tree_gen(g, o->u.object.values[i]);
	}
	yajl_gen_map_close(g);
	(void)p_id;
	if (yajl_gen_get_buf(g, &out, &outlen) != yajl_gen_status_ok)
		goto fail;
	if ((in->json = malloc(outlen + 1)) == NULL)
		goto fail;
	memcpy(in->json, out, outlen);
	in->json[outlen] = '\0';
	in->len = outlen;
	act.inj = in;
	act.nevents = (uint8_t)(in->nnames > 255 ? 255 : in->nnames);
	act.seed = (uint32_t)act.uq;
	act.visible_us = sim_now_us() +
	    (vis_s > 0 ? (int64_t)(vis_s * 1e6 / sim.time_scale) : 0);
	if (vis_s < 0)
		act.visible_us = sim_now_us() + sim_lag_draw(a);
	if (sim_app_insert(a, &act) < 0)
		goto fail;
	yajl_gen_free(g);
	return 0;
fail:
	if (g != NULL)
		yajl_gen_free(g);
	inj_free(in);
	return rc;
}

int
sim_inject(struct sim_tenant *t, int app, yajl_val list, double vis_s,
    char *err, size_t errlen)
{
	size_t i;
	int    rc;

	if (!YAJL_IS_ARRAY(list)) {
		snprintf(err, errlen, "activities must be an array");
		return -EINVAL;
	}
	for (i = 0; i < list->u.array.len; i++) {
		rc = inj_one(t, app, list->u.array.values[i], vis_s, err,
		    errlen);
		if (rc < 0)
			return rc;
	}
	return (int)list->u.array.len;
}
