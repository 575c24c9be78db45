/*
 * The asynchronous part of POST /add-source, PUT /sources/:id/credentials
 * and PATCH /sources/:id, after validation: resolve the callback host and
 * check that it is public, ask Google whether the credentials work, then
 * hand over to the endpoint's commit (seal, store, reply). One state
 * machine, driven by pipe_step() in pipeline.c (its diagram is there).
 */
#ifndef AR_APID_PIPELINE_H
#define AR_APID_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "apid/validate.h"
#include "lib/google/google.h"

struct areq;

enum pipe_kind {
	PIPE_ADD,   /* a new source */
	PIPE_CREDS, /* new credentials for a source */
	PIPE_PATCH, /* settings: no Google check */
};

enum pipe_state {
	PIPE_START,	/* resolve the callback host if a name */
	PIPE_RESOLVING, /* waiting for the resolver */
	PIPE_ADDRESSES, /* the host's addresses must be public */
	PIPE_GOOGLE,	/* ask Google about the credentials */
	PIPE_CHECKING,	/* waiting for Google */
	PIPE_VERDICT,	/* Google answered: ok, refused, unreachable */
	PIPE_COMMIT,	/* the endpoint seals, stores and replies */
	PIPE_STORING,	/* its store work runs on a worker */
	PIPE_DONE,	/* answered, or the client left: freed */
};

struct pipe;
/*
 * Seal, store and reply to p->a, the store work on a worker thread
 * (http_work_always), then call pipe_committed(p) (which frees p).
 */
typedef void (*pipe_commit_fn)(struct pipe *p);

/* One request going through the pipeline. */
struct pipe {
	enum pipe_kind	 kind;
	enum pipe_state	 state;
	struct areq	*a;
	pipe_commit_fn	 commit;
	struct src_input in;	       /* owned: cleared when freed */
	char		 id[37];       /* the source (not yet for ADD) */
	int64_t		 cred_version; /* CREDS: the current one */
	int64_t		 t0;	       /* started, monotonic ms */
	/* The resolver's answer (PIPE_RESOLVING). */
	bool resolved; /* asked the async resolver */
	bool dns_done;
	int  dns_result; /* EVUTIL_EAI_* or 0 */
	bool dns_public; /* every address public */
	int  naddrs;
	/* Google's answer (PIPE_CHECKING). */
	bool			 g_done;
	enum google_check_result g_result;
	char			 g_reason[64];
	char			 g_diag[GOOGLE_DIAG_MAX];
};

/*
 * A pipe for request a, its commit, or NULL after replying 503 when
 * APID_ASYNC_MAX are running already. Fill in in, id, cred_version, then
 * pipe_start().
 */
struct pipe *pipe_new(struct areq *a, enum pipe_kind kind,
    pipe_commit_fn commit);
/* Run p: it answers a itself (at worst through the commit) and frees p. */
void pipe_start(struct pipe *p);
/* The commit of p is over (p->a answered or gone): p is freed. */
void pipe_committed(struct pipe *p);

#endif
