/*
 * The batches delivered here, each from its 2xx until DELIVERED_KEEP_MS
 * after its record was written: a hash by id, and a list in delivery
 * order for the expiry.
 *
 * deliverd records 2xx in groups on the worker (queue.c), and a load
 * reads a source's pending batches on the worker too: a load that read
 * before a batch's record was written finds it still pending, however
 * long the records wait (a slow store holds thousands back), and must not
 * queue it again. A fixed ring of the last 1 024 ids did this before; it
 * forgot ids while their records still waited, and under flow (50
 * sources x 10 events/s) 267 to 6 983 batches a run were sent twice, each
 * after a read of its body's whole partition, which slowed the records
 * further. Ids not recorded yet are bounded by the records queued; the
 * others by the keep (a few MB at thousands of batches a minute).
 *
 * Pure: the loop's only; no store, no clock (the callers give the time).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "deliverd/delivered.h"
#include "lib/base/util.h"

struct dlv {
	TAILQ_ENTRY(dlv) order;
	struct dlv *next;	 /* in its bucket */
	int64_t	    recorded_at; /* wall ms; 0: not yet */
	char	    id[40];
};

static TAILQ_HEAD(, dlv) dlv_order = TAILQ_HEAD_INITIALIZER(dlv_order);
static struct dlv **dlv_tab;
static size_t	    dlv_nb, dlv_n; /* buckets (a power of 2), entries */

/* Where id is, or would go, in its bucket. */
static struct dlv **
dlv_slot(const char *id)
{
	struct dlv **pp;
	uint32_t     h = 2166136261u; /* FNV-1a */
	const char  *c;

	for (c = id; *c != '\0'; c++)
		h = (h ^ (uint8_t)*c) * 16777619u;
	for (pp = &dlv_tab[h & (dlv_nb - 1)]; *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->id, id) == 0)
			break;
	return pp;
}

static void
dlv_grow(void)
{
	struct dlv *d, **old = dlv_tab;
	size_t	    i, n = dlv_nb;

	dlv_nb = dlv_nb != 0 ? dlv_nb * 2 : 1024;
	dlv_tab = util_xcalloc(dlv_nb, sizeof(*dlv_tab));
	for (i = 0; i < n; i++)
		while ((d = old[i]) != NULL) {
			old[i] = d->next;
			d->next = NULL;
			*dlv_slot(d->id) = d;
		}
	free(old);
}

static void
dlv_del(struct dlv **pp)
{
	struct dlv *d = *pp;

	*pp = d->next;
	TAILQ_REMOVE(&dlv_order, d, order);
	free(d);
	dlv_n--;
}

static struct dlv *
dlv_find(const char *id)
{
	return dlv_tab != NULL ? *dlv_slot(id) : NULL;
}

/*
 * The oldest recorded past their keep go. One not recorded yet holds
 * those after it back: they are younger, and its record comes soon.
 */
static void
dlv_expire(int64_t now)
{
	struct dlv *d;

	while ((d = TAILQ_FIRST(&dlv_order)) != NULL && d->recorded_at != 0 &&
	    d->recorded_at + DELIVERED_KEEP_MS < now)
		dlv_del(dlv_slot(d->id));
}

void
delivered_add(const char *batch_id, int64_t now)
{
	struct dlv **pp, *d;

	dlv_expire(now);
	if (dlv_n >= dlv_nb)
		dlv_grow();
	if (*(pp = dlv_slot(batch_id)) != NULL)
		dlv_del(pp); /* again, after its record failed */
	d = util_xcalloc(1, sizeof(*d));
	util_strlcpy(d->id, batch_id, sizeof(d->id));
	TAILQ_INSERT_TAIL(&dlv_order, d, order);
	*dlv_slot(batch_id) = d;
	dlv_n++;
}

void
delivered_recorded(const char *batch_id, int64_t now)
{
	struct dlv *d;

	if ((d = dlv_find(batch_id)) != NULL)
		d->recorded_at = now > 0 ? now : 1;
}

void
delivered_forget(const char *batch_id)
{
	struct dlv **pp;

	if (dlv_tab != NULL && *(pp = dlv_slot(batch_id)) != NULL)
		dlv_del(pp);
}

bool
delivered_hides(const char *batch_id, int64_t read_at)
{
	struct dlv *d;

	if ((d = dlv_find(batch_id)) == NULL)
		return false;
	return d->recorded_at == 0 || d->recorded_at >= read_at;
}

size_t
delivered_count(void)
{
	return dlv_n;
}

void
delivered_clear(void)
{
	while (!TAILQ_EMPTY(&dlv_order))
		dlv_del(dlv_slot(TAILQ_FIRST(&dlv_order)->id));
	free(dlv_tab);
	dlv_tab = NULL;
	dlv_nb = 0;
}
