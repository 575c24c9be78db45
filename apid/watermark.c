/*
 * Watermarks per (source, application). See watermark.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apid/watermark.h"
#include "lib/base/json.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/store/store.h"
#include "runtime/child.h"

struct wm
wm_of(const struct view *v, const char *app, const struct wm_holds *h)
{
	return wm_compute(v->fetch, v->id, app, h);
}

void
wm_json(struct jsonw *w, const struct view *v, const struct wm_holds *h)
{
	bson_iter_t it, sub;
	int64_t	    now = util_now_ms();
	char	    buf[32];

	jsonw_key(w, "completeThrough");
	jsonw_obj_open(w);
	if (v->src != NULL &&
	    bson_iter_init_find(&it, v->src, "applications") &&
	    BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &sub)) {
		while (bson_iter_next(&sub)) {
			const char *app;
			struct wm   m;

			if (!BSON_ITER_HOLDS_UTF8(&sub))
				continue;
			app = bson_iter_utf8(&sub, NULL);
			m = wm_of(v, app, h);
			jsonw_key(w, app);
			jsonw_obj_open(w);
			if (m.through_ms > 0) {
				time_format_rfc3339_ms(m.through_ms, buf);
				jsonw_kv_str(w, "through", buf);
				jsonw_key(w, "behindSeconds");
				jsonw_double(w,
				    (double)(now - m.through_ms) / 1000.0);
			} else {
				jsonw_key(w, "through");
				jsonw_null(w);
				jsonw_key(w, "behindSeconds");
				jsonw_null(w);
			}
			jsonw_kv_str(w, "heldBy", m.held_by);
			jsonw_obj_close(w);
		}
	}
	jsonw_obj_close(w);
}

/* Write int array member key of doc as JSON member name (absent: []). */
static void
wm_json_ints(struct jsonw *w, const char *name, const bson_t *doc,
    const char *key)
{
	bson_iter_t it, a;

	jsonw_key(w, name);
	jsonw_arr_open(w);
	if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_ARRAY(&it) &&
	    bson_iter_recurse(&it, &a))
		while (bson_iter_next(&a))
			if (BSON_ITER_HOLDS_NUMBER(&a))
				jsonw_int(w, bson_iter_as_int64(&a));
	jsonw_arr_close(w);
}

void
wm_rereads_json(struct jsonw *w, const struct view *v)
{
	bson_iter_t it, apps;

	jsonw_key(w, "rereads");
	jsonw_obj_open(w);
	if (v->fetch != NULL && bson_iter_init_find(&it, v->fetch, "rereads") &&
	    BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &apps)) {
		while (bson_iter_next(&apps)) {
			const uint8_t *data;
			uint32_t       len;
			bson_t	       d;

			if (!BSON_ITER_HOLDS_DOCUMENT(&apps))
				continue;
			bson_iter_document(&apps, &len, &data);
			if (!bson_init_static(&d, data, len))
				continue;
			jsonw_key(w, bson_iter_key(&apps));
			jsonw_obj_open(w);
			jsonw_kv_str(w, "mode",
			    store_bson_bool(&d, "tuned", false) ? "tuned" :
								  "fixed");
			wm_json_ints(w, "agesSeconds", &d, "agesS");
			wm_json_ints(w, "lateFoundByAge", &d, "lateByAge");
			wm_json_ints(w, "rereadsByAge", &d, "doneByAge");
			jsonw_kv_int(w, "lagP999Seconds",
			    store_bson_int(&d, "lagP999S", 0));
			jsonw_kv_int(w, "eventsSeen",
			    store_bson_int(&d, "events", 0));
			jsonw_obj_close(w);
		}
	}
	jsonw_obj_close(w);
}
