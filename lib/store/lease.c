/*
 * Leases with fencing epochs, built only on unique-index inserts so that
 * they hold on FerretDB 1.24 (whose update/findAndModify are not atomic).
 * See lease.h and docs/STORE.md.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/base/util.h"
#include "lib/store/lease.h"
#include "lib/store/store.h"

/*
 * Stop work this long before the lease's end as seen locally, so that a
 * holder that cannot renew has stopped before anyone may take over (also
 * covers a little clock skew between hosts).
 */
#define LEASE_SAFETY_MS(ttl) ((ttl) / 3)

#define INSTANCES_COLL "instances"

/* Newest lease document of resource into *out. 1 found, 0 none, -EIO. */
static int
lease_newest(struct store *s, const char *resource, bson_t *out, char *err,
    size_t errlen)
{
	bson_t *sel = BCON_NEW("resource", BCON_UTF8(resource));
	bson_t *opts = BCON_NEW("sort", "{", "epoch", BCON_INT32(-1), "}");
	int	rc;

	rc = store_find_one(s, STORE_LEASES, sel, opts, out, err, errlen);
	bson_destroy(sel);
	bson_destroy(opts);
	return rc;
}

int
lease_take(struct store *s, const char *resource, const char *holder,
    int64_t ttl_ms, struct lease *l, char *err, size_t errlen)
{
	bson_t	cur, *doc;
	int64_t now = util_now_ms(), mono = util_mono_ms(), epoch = 1;
	char	id[200];
	int	rc;

	memset(l, 0, sizeof(*l));
	rc = lease_newest(s, resource, &cur, err, errlen);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		int64_t exp = store_bson_int(&cur, "expiresAt", 0);
		bool	released = store_bson_bool(&cur, "released", false);

		epoch = store_bson_int(&cur, "epoch", 0) + 1;
		bson_destroy(&cur);
		if (!released && exp > now)
			return 0;
	}
	snprintf(id, sizeof(id), "%s#%lld", resource, (long long)epoch);
	doc = BCON_NEW("_id", BCON_UTF8(id), "resource", BCON_UTF8(resource),
	    "epoch", BCON_INT64(epoch), "holder", BCON_UTF8(holder), "takenAt",
	    BCON_INT64(now), "expiresAt", BCON_INT64(now + ttl_ms), "released",
	    BCON_BOOL(false));
	rc = store_insert_one(s, STORE_LEASES, doc, err, errlen);
	bson_destroy(doc);
	if (rc == -EEXIST)
		return 0;
	if (rc != 0)
		return rc;
	util_strlcpy(l->resource, resource, sizeof(l->resource));
	l->epoch = epoch;
	l->deadline_mono = mono + ttl_ms - LEASE_SAFETY_MS(ttl_ms);
	l->held = true;
	/* Prune epochs older than the previous one. */
	{
		bson_t *sel = BCON_NEW("resource", BCON_UTF8(resource), "epoch",
		    "{", "$lt", BCON_INT64(epoch - 1), "}");
		char	e2[128];

		(void)store_delete(s, STORE_LEASES, sel, true, NULL, e2,
		    sizeof(e2));
		bson_destroy(sel);
	}
	return 1;
}

int
lease_check(struct store *s, const struct lease *l, char *err, size_t errlen)
{
	bson_t *sel;
	int64_t n;

	sel = BCON_NEW("resource", BCON_UTF8(l->resource), "epoch", "{", "$gt",
	    BCON_INT64(l->epoch), "}");
	n = store_count(s, STORE_LEASES, sel, err, errlen);
	bson_destroy(sel);
	if (n < 0)
		return -EIO;
	return n > 0 ? -ESTALE : 0;
}

int
lease_renew(struct store *s, struct lease *l, const char *holder,
    int64_t ttl_ms, char *err, size_t errlen)
{
	bson_t *sel, *set;
	int64_t now = util_now_ms(), mono = util_mono_ms(), matched = 0;
	char	id[200];
	int	rc;

	if (!l->held)
		return -ESTALE;
	/* Check before: a newer epoch means we lost already. */
	if ((rc = lease_check(s, l, err, errlen)) != 0)
		goto out;
	snprintf(id, sizeof(id), "%s#%lld", l->resource, (long long)l->epoch);
	sel = BCON_NEW("_id", BCON_UTF8(id), "holder", BCON_UTF8(holder));
	set = BCON_NEW("expiresAt", BCON_INT64(now + ttl_ms));
	rc = store_update_set(s, STORE_LEASES, sel, set, false, &matched, err,
	    errlen);
	bson_destroy(sel);
	bson_destroy(set);
	if (rc != 0)
		goto out;
	if (matched == 0) {
		rc = -ESTALE;
		goto out;
	}
	/* Check after: a contender may have inserted meanwhile. */
	if ((rc = lease_check(s, l, err, errlen)) != 0)
		goto out;
	l->deadline_mono = mono + ttl_ms - LEASE_SAFETY_MS(ttl_ms);
	return 0;
out:
	if (rc == -ESTALE)
		l->held = false;
	return rc;
}

int
lease_release(struct store *s, struct lease *l, char *err, size_t errlen)
{
	bson_t *sel, *set;
	char	id[200];
	int	rc;

	if (!l->held)
		return 0;
	l->held = false;
	snprintf(id, sizeof(id), "%s#%lld", l->resource, (long long)l->epoch);
	sel = BCON_NEW("_id", BCON_UTF8(id));
	set = BCON_NEW("released", BCON_BOOL(true));
	rc = store_update_set(s, STORE_LEASES, sel, set, false, NULL, err,
	    errlen);
	bson_destroy(sel);
	bson_destroy(set);
	return rc;
}

bool
lease_valid(const struct lease *l)
{
	return l->held && util_mono_ms() < l->deadline_mono;
}

int
lease_heartbeat(struct store *s, const char *instance, char *err, size_t errlen)
{
	bson_t *doc;
	int	rc;

	doc = BCON_NEW("_id", BCON_UTF8(instance), "seenAt",
	    BCON_INT64(util_now_ms()));
	rc = store_upsert(s, INSTANCES_COLL, instance, doc, err, errlen);
	/*
	 * The daemons of one instance share its document; on FerretDB 1.24
	 * two first upserts race (both insert, one gets E11000): the second
	 * try finds the document and updates it.
	 */
	if (rc != 0)
		rc = store_upsert(s, INSTANCES_COLL, instance, doc, err,
		    errlen);
	bson_destroy(doc);
	return rc;
}

int
lease_live_instances(struct store *s, int64_t ttl_ms, char *err, size_t errlen)
{
	bson_t *sel;
	int64_t n;

	sel = BCON_NEW("seenAt", "{", "$gt", BCON_INT64(util_now_ms() - ttl_ms),
	    "}");
	n = store_count(s, INSTANCES_COLL, sel, err, errlen);
	bson_destroy(sel);
	if (n < 0)
		return -EIO;
	return n > 0 ? (int)n : 1;
}

int
lease_fair_share(int n, int live)
{
	if (live < 1)
		live = 1;
	return (n + live - 1) / live;
}

int
lease_setup_indexes(struct store *s, char *err, size_t errlen)
{
	bson_t *idx;
	int	rc;

	idx = BCON_NEW("0", "{", "key", "{", "resource", BCON_INT32(1), "epoch",
	    BCON_INT32(-1), "}", "name", BCON_UTF8("resource_epoch"), "}");
	rc = store_create_indexes(s, STORE_LEASES, idx, err, errlen);
	bson_destroy(idx);
	return rc;
}
