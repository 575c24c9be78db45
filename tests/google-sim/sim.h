/*
 * auditrelay-google-sim: a Google Workspace simulator (OAuth token
 * endpoint, Admin SDK Reports API activities.list, control API under
 * /_sim/). Shared state of its files: sim_main.c (options, loop),
 * sim_http.c (Google endpoints, faults), sim_control.c (control API),
 * sim_gen.c (tenants, generator, storage, rendering).
 */
#ifndef AR_TESTS_GOOGLE_SIM_SIM_H
#define AR_TESTS_GOOGLE_SIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "lib/base/log.h"
#include "lib/crypto/crypto.h"
#include "lib/google/google.h"

#define SIM_NAPPS	 GOOGLE_NAPPS
#define SIM_MAX_KEYS	 8
#define SIM_MAX_SAS	 16
#define SIM_MAX_ADMINS	 32
#define SIM_MAX_TENANTS	 64
#define SIM_MAX_FAULTS	 64
#define SIM_USERS	 200 /* synthetic users per tenant */
#define SIM_RETENTION_US (180LL * 86400 * 1000000)

struct sim_key {
	char		id[41]; /* private_key_id, 40 hex */
	struct rsa_key *key;
	bool		deleted;
};

struct sim_tenant;

struct sim_sa {
	char		   email[256];
	char		   project[64];
	char		   client_id[32];
	struct sim_key	   keys[SIM_MAX_KEYS];
	int		   nkeys;
	bool		   delegation;	 /* domain-wide delegation */
	char		   scopes[1024]; /* delegated scopes */
	bool		   admin_role;	 /* an admin role with the Reports
						   privilege assigned to the
						   account itself */
	struct sim_tenant *tenant;
	int64_t		   quota_minute;
	unsigned	   quota_used;
};

struct sim_admin {
	char email[256];
	bool privileged;
};

/* An injected activity: its Google JSON, as given (id normalised). */
struct sim_inj {
	char  *json;
	size_t len;
	char  *actor_email;
	char  *ip;
	char **names; /* event names */
	int    nnames;
};

/* One stored activity: 40 bytes; its JSON is rendered on the fly. */
struct sim_act {
	int64_t		time_us;
	int64_t		uq;
	int64_t		visible_us; /* real (wall) time it becomes visible */
	uint32_t	seed;
	uint16_t	actor;
	uint8_t		tmpl;
	uint8_t		nevents;
	struct sim_inj *inj; /* NULL for generated ones */
};

/* Ingestion lag of an application, in sim seconds. */
struct sim_lag {
	double min_s;
	double mean_s;	   /* exponential part above min */
	double tail_p;	   /* probability of a long tail draw */
	double tail_max_s; /* tail: uniform in [min, tail_max] */
};

struct sim_app {
	struct sim_act *acts; /* sorted by (time_us, uq) ascending */
	size_t		n, cap;
	double		rate; /* activities per second */
	bool		paused;
	uint64_t	rng;
	int64_t		gen_last_us;
	double		gen_carry;
	struct sim_lag	lag;
	uint64_t	nevents;
};

struct sim_tenant {
	char		 cid[64];
	char		 domain[128];
	uint64_t	 hash;
	struct sim_app	 apps[SIM_NAPPS];
	struct sim_sa	*sas[SIM_MAX_SAS];
	int		 nsas;
	struct sim_admin admins[SIM_MAX_ADMINS];
	int		 nadmins;
	bool		 paused;
};

struct sim_token {
	char	       tok[128];
	struct sim_sa *sa;
	int	       admin; /* index in tenant admins, -1 none */
	int64_t	       exp_us;
	bool	       reports_scope;
	bool	       revoked;
};

enum sim_fault_kind {
	FAULT_RATE_LIMIT,
	FAULT_USER_RATE_LIMIT,
	FAULT_429,
	FAULT_503,
	FAULT_500,
	FAULT_SLOW,
	FAULT_RESET,
	FAULT_REPEAT_TOKEN,
	FAULT_BAD_JSON,
	FAULT_TRUNCATED_JSON,
	FAULT_REVOKED_KEY,
	FAULT_NO_DELEGATION,
	FAULT_NKINDS
};

enum sim_endpoint {
	EP_ACTIVITIES,
	EP_TOKEN,
	EP_ANY
};

struct sim_fault {
	int		    id;
	char		    tenant[64]; /* "" any */
	int		    app;	/* -1 any */
	enum sim_fault_kind kind;
	enum sim_endpoint   ep;
	double		    probability;
	long		    count;	 /* remaining; -1 unlimited */
	int64_t		    until_us;	 /* 0: no time window */
	int		    retry_after; /* seconds; 0 none */
	int		    delay_ms;	 /* slow */
	uint64_t	    fired;
};

#define SIM_STAT_CODES 16
struct sim_stat_ep {
	int	 code[SIM_STAT_CODES];
	uint64_t count[SIM_STAT_CODES];
};

struct sim {
	struct event_base *base;
	struct evhttp	  *http;
	char		   listen[128];
	char		   token_url[256];
	uint64_t	   seed;
	double		   time_scale;
	double		   default_rate;
	int		   token_ttl; /* seconds */
	unsigned	   quota_per_minute;
	bool		   no_lag;
	uint64_t	   fault_rng;

	struct sim_tenant *tenants[SIM_MAX_TENANTS];
	int		   ntenants;
	struct sim_token  *tokens;
	size_t		   ntokens, captokens;
	struct sim_fault   faults[SIM_MAX_FAULTS];
	int		   nfaults;
	int		   fault_seq;

	struct sim_stat_ep stats[4]; /* token, activities, control, other */
	uint64_t	   pages_served;
	uint64_t	   activities_served;
	uint64_t	   events_served;
	uint64_t	   bytes_served;
	int64_t		   started_us;
};

extern struct sim sim;
/* The applications, in the discovery document's order (lib/google). */
#define sim_app_names google_app_names
extern const char *const sim_fault_names[FAULT_NKINDS];

/* sim_gen.c */
int64_t		   sim_now_us(void);
int		   sim_app_index(const char *name);
struct sim_tenant *sim_tenant_find(const char *cid);
struct sim_tenant *sim_tenant_new(const char *cid, const char *domain);
struct sim_sa	  *sim_sa_find(const char *email);
int  sim_admin_find(const struct sim_tenant *t, const char *email);
void sim_gen_tick(void);
/* Insert an activity keeping the order; 0 or -ENOMEM. */
int sim_app_insert(struct sim_app *a, const struct sim_act *act);
/* Event name of event i of an activity (generated or injected). */
const char *sim_act_event_name(const struct sim_act *act, int app, int i);
int	    sim_act_nevents(const struct sim_act *act);
/* Actor email into buf (for filters); returns buf. */
const char *sim_act_actor(const struct sim_tenant *t, const struct sim_act *act,
    int app, char *buf, size_t len);
const char *sim_act_ip(const struct sim_act *act, char *buf, size_t len);
/* Render one activity as JSON into g. */
void sim_act_render(yajl_gen g, const struct sim_tenant *t, int app,
    const struct sim_act *act);
/* Draw a lag (real microseconds) for application a. */
int64_t sim_lag_draw(struct sim_app *a);
/* Inject activities (a JSON array) for application app. */
int sim_inject(struct sim_tenant *t, int app, yajl_val list,
    double visible_after_s, char *err, size_t errlen);
/* Emit a yajl tree into g. */
void sim_tree_gen(yajl_gen g, yajl_val v);
/* Etag-looking string "\"<43>/<27>\"" from two hashes into out[80]. */
void sim_etag(uint64_t a, uint64_t b, char out[80]);

/* sim_http.c */
void sim_http_cb(struct evhttp_request *req, void *arg);
void sim_reply_json(struct evhttp_request *req, int code, yajl_gen g, int ep);
void sim_reply_buf(struct evhttp_request *req, int code, struct evbuffer *b,
    int ep);
void sim_stat(int ep, int code);
void sim_api_error(struct evhttp_request *req, int code, const char *message,
    const char *domain, const char *reason, const char *status,
    const char *location, const char *location_type, int retry_after, int ep);
yajl_gen sim_gen_new(void);
void	 yg_str(yajl_gen g, const char *s);
void	 yg_kv(yajl_gen g, const char *k, const char *v);
void	 yg_ki(yajl_gen g, const char *k, long long v);
void	 yg_kb(yajl_gen g, const char *k, bool v);
/* Body of a request as a NUL-terminated malloc'd string. */
char *sim_req_body(struct evhttp_request *req, size_t *len);

/* sim_control.c */
void sim_control(struct evhttp_request *req, const char *path);
/* Write a Google service-account key file for key k of sa into g. */
void sim_keyfile_gen(yajl_gen g, const struct sim_sa *sa, int k);

#endif
