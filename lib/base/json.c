/*
 * JSON helpers over yajl: strict parsing, typed getters, a writer and
 * RFC 3339 times. See json.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "lib/base/json.h"
#include "lib/base/util.h"

#define JSONW_MAX_DEPTH 128 /* yajl_gen's own limit */

enum jsonw_ctx {
	JSONW_TOP = 0,
	JSONW_OBJ_KEY, /* in an object, a key comes next */
	JSONW_OBJ_VAL, /* in an object, a value comes next */
	JSONW_ARR
};

struct jsonw {
	yajl_gen      gen;
	int	      error;
	unsigned      depth;
	bool	      done; /* a top-level value was completed */
	unsigned char stack[JSONW_MAX_DEPTH + 1];
};

/* State of the depth-checking pre-parse. */
struct json_scan {
	yajl_handle h;
	unsigned    depth;
	unsigned    max_depth;
	bool	    too_deep;
	size_t	    off;
};

/*
 * Strict UTF-8 check: rejects stray continuation bytes, truncated
 * sequences, overlong forms, UTF-16 surrogates (U+D800..U+DFFF) and code
 * points above U+10FFFF. Also rejects NUL, which JSON never needs raw.
 */
static int
json_utf8_scan(const char *buf, size_t len, bool allow_nul, size_t *bad_off)
{
	const unsigned char *s = (const unsigned char *)buf;
	size_t		     i = 0, n, k;
	uint32_t	     cp, min;

	while (i < len) {
		unsigned char c = s[i];

		if (c == 0 && !allow_nul)
			goto bad;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
			min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
			min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
			min = 0x10000;
		} else
			goto bad; /* 0x80..0xc1 (stray/overlong), 0xf5.. */
		if (len - i <= n)
			goto bad;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				goto bad;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			goto bad;
		i += n + 1;
	}
	return 0;
bad:
	if (bad_off != NULL)
		*bad_off = i;
	return -EINVAL;
}

/* Strict UTF-8 check of a JSON text (NUL refused). */
int
json_utf8_check(const char *buf, size_t len, size_t *bad_off)
{
	return json_utf8_scan(buf, len, false, bad_off);
}

/* Pre-parse callback: an object or array opens. */
static int
json_scan_open_cb(void *ctx)
{
	struct json_scan *sc = ctx;

	if (++sc->depth > sc->max_depth) {
		sc->too_deep = true;
		sc->off = yajl_get_bytes_consumed(sc->h);
		return 0;
	}
	return 1;
}

/* Pre-parse callback: an object or array closes. */
static int
json_scan_close_cb(void *ctx)
{
	struct json_scan *sc = ctx;

	sc->depth--;
	return 1;
}

/* json_find_nul(): where the scan is (one frame per open object/array). */
#define JSON_NUL_DEPTH 64

struct json_nul_frame {
	bool array;
	long index;   /* arrays: of the current element */
	char key[65]; /* objects: the current key */
};

struct json_nul {
	struct json_nul_frame f[JSON_NUL_DEPTH];
	int		      depth; /* frames in use */
	bool		      found;
	char		     *path;
	size_t		      pathlen;
};

/* Write the path of the current position ("a.b[2].c") into n->path. */
static void
json_nul_path(struct json_nul *n)
{
	size_t o = 0;
	int    i;

	n->path[0] = '\0';
	for (i = 0; i < n->depth && o < n->pathlen; i++) {
		if (n->f[i].array)
			o += (size_t)snprintf(n->path + o, n->pathlen - o,
			    "[%ld]", n->f[i].index);
		else
			o += (size_t)snprintf(n->path + o, n->pathlen - o,
			    "%s%s", i > 0 ? "." : "", n->f[i].key);
	}
}

/* A value starts: in an array it is the next element. */
static void
json_nul_value(struct json_nul *n)
{
	if (n->depth > 0 && n->f[n->depth - 1].array)
		n->f[n->depth - 1].index++;
}

static int
json_nul_scalar_cb(void *ctx)
{
	json_nul_value(ctx);
	return 1;
}

static int
json_nul_bool_cb(void *ctx, int b)
{
	json_nul_value(ctx);
	return 1;
}

static int
json_nul_number_cb(void *ctx, const char *s, size_t len)
{
	json_nul_value(ctx);
	return 1;
}

static int
json_nul_string_cb(void *ctx, const unsigned char *s, size_t len)
{
	struct json_nul *n = ctx;

	json_nul_value(n);
	if (memchr(s, '\0', len) != NULL) {
		n->found = true;
		json_nul_path(n);
		return 0;
	}
	return 1;
}

static int
json_nul_key_cb(void *ctx, const unsigned char *s, size_t len)
{
	struct json_nul	      *n = ctx;
	struct json_nul_frame *f = &n->f[n->depth - 1];

	snprintf(f->key, sizeof(f->key), "%.*s", (int)(len < 64 ? len : 64),
	    (const char *)s);
	if (memchr(s, '\0', len) != NULL) {
		n->found = true;
		json_nul_path(n);
		return 0;
	}
	return 1;
}

static int
json_nul_open(struct json_nul *n, bool array)
{
	json_nul_value(n);
	if (n->depth == JSON_NUL_DEPTH)
		return 0;
	memset(&n->f[n->depth], 0, sizeof(n->f[n->depth]));
	n->f[n->depth].array = array;
	n->f[n->depth].index = -1;
	n->depth++;
	return 1;
}

static int
json_nul_map_cb(void *ctx)
{
	return json_nul_open(ctx, false);
}

static int
json_nul_array_cb(void *ctx)
{
	return json_nul_open(ctx, true);
}

static int
json_nul_close_cb(void *ctx)
{
	struct json_nul *n = ctx;

	if (n->depth > 0)
		n->depth--;
	return 1;
}

/*
 * Find the first string or key holding U+0000 (written "\u0000" in the
 * text) in buf[0..len); see json.h. 1 with its path, 0 when none.
 */
int
json_find_nul(const char *buf, size_t len, char *path, size_t pathlen)
{
	static const yajl_callbacks cbs = {
		.yajl_null = json_nul_scalar_cb,
		.yajl_boolean = json_nul_bool_cb,
		.yajl_number = json_nul_number_cb,
		.yajl_string = json_nul_string_cb,
		.yajl_start_map = json_nul_map_cb,
		.yajl_map_key = json_nul_key_cb,
		.yajl_end_map = json_nul_close_cb,
		.yajl_start_array = json_nul_array_cb,
		.yajl_end_array = json_nul_close_cb,
	};
	struct json_nul *n;
	yajl_handle	 h;
	int		 found;

	if (pathlen == 0 || buf == NULL ||
	    memmem(buf, len, "\\u0000", 6) == NULL)
		return 0;
	if ((n = calloc(1, sizeof(*n))) == NULL)
		return 0;
	n->path = path;
	n->pathlen = pathlen;
	if ((h = yajl_alloc(&cbs, NULL, n)) != NULL) {
		(void)yajl_parse(h, (const unsigned char *)buf, len);
		yajl_free(h);
	}
	found = n->found;
	free(n);
	return found ? 1 : 0;
}

/*
 * Strict parse; see json.h. A first pass with yajl's event parser checks
 * syntax and depth (and gives offsets), then yajl_tree builds the tree.
 */
int
json_parse(const char *buf, size_t len, unsigned max_depth, yajl_val *out,
    char *err, size_t errlen)
{
	static const yajl_callbacks cbs = {
		.yajl_start_map = json_scan_open_cb,
		.yajl_end_map = json_scan_close_cb,
		.yajl_start_array = json_scan_open_cb,
		.yajl_end_array = json_scan_close_cb,
	};
	struct json_scan sc;
	yajl_status	 st;
	char		*copy = NULL, ebuf[256];
	size_t		 off;
	bool		 at_end = false;
	int		 rc = -EINVAL;

	*out = NULL;
	if (buf == NULL) {
		util_errf(err, errlen, "no JSON text");
		return -EINVAL;
	}
	if (json_utf8_check(buf, len, &off) != 0) {
		util_errf(err, errlen, "invalid UTF-8 at byte %zu", off);
		return -EINVAL;
	}

	memset(&sc, 0, sizeof(sc));
	sc.max_depth = max_depth;
	if ((sc.h = yajl_alloc(&cbs, NULL, &sc)) == NULL) {
		util_errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	st = yajl_parse(sc.h, (const unsigned char *)buf, len);
	if (st == yajl_status_ok) {
		/* Failing here means the text ended early: offset is len. */
		at_end = true;
		st = yajl_complete_parse(sc.h);
	}
	if (st != yajl_status_ok) {
		if (sc.too_deep) {
			util_errf(err, errlen,
			    "JSON nested deeper than %u at byte %zu", max_depth,
			    sc.off > 0 ? sc.off - 1 : 0);
		} else {
			unsigned char *m = yajl_get_error(sc.h, 0, NULL, 0);
			const char    *msg = "syntax error";
			size_t	       at = at_end ? len :
						     yajl_get_bytes_consumed(sc.h);
			size_t	       ml;

			if (m != NULL) {
				/* "parse error: premature EOF\n" -> the reason. */
				msg = (const char *)m;
				if (strncmp(msg, "parse error: ", 13) == 0)
					msg += 13;
				ml = strlen(msg);
				while (ml > 0 &&
				    (msg[ml - 1] == '\n' || msg[ml - 1] == ' '))
					m[(msg - (const char *)m) +
					    --ml] = '\0';
			}
			util_errf(err, errlen, "invalid JSON at byte %zu: %s",
			    at, msg);
			if (m != NULL)
				yajl_free_error(sc.h, m);
		}
		goto fail;
	}

	/* yajl_tree wants a NUL-terminated text. */
	if ((copy = malloc(len + 1)) == NULL) {
		util_errf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	memcpy(copy, buf, len);
	copy[len] = '\0';
	ebuf[0] = '\0';
	if ((*out = yajl_tree_parse(copy, ebuf, sizeof(ebuf))) == NULL) {
		if (strstr(ebuf, "memory") != NULL) {
			rc = -ENOMEM;
			util_errf(err, errlen, "out of memory");
		} else
			util_errf(err, errlen, "invalid JSON: %s",
			    ebuf[0] != '\0' ? ebuf : "parse error");
		goto fail;
	}
	rc = 0;
fail:
	/* The text may hold a private key: wipe the copy. */
	if (copy != NULL)
		explicit_bzero(copy, len);
	free(copy);
	yajl_free(sc.h);
	return rc;
}

/* Member key of object obj, or NULL. */
yajl_val
json_get(yajl_val obj, const char *key)
{
	size_t i;

	if (!YAJL_IS_OBJECT(obj) || key == NULL)
		return NULL;
	for (i = 0; i < obj->u.object.len; i++)
		if (strcmp(obj->u.object.keys[i], key) == 0)
			return obj->u.object.values[i];
	return NULL;
}

/* String member key of obj, or NULL. */
const char *
json_get_string(yajl_val obj, const char *key)
{
	yajl_val v = json_get(obj, key);

	return YAJL_IS_STRING(v) ? v->u.string : NULL;
}

/* Decimal int64 text to *out: optional '-', then digits only. */
bool
json_str_to_int64(const char *s, int64_t *out)
{
	uint64_t    acc = 0, lim;
	bool	    neg = false;
	const char *p = s;

	if (s == NULL)
		return false;
	if (*p == '-') {
		neg = true;
		p++;
	}
	if (*p == '\0')
		return false;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; *p != '\0'; p++) {
		unsigned d;

		if (*p < '0' || *p > '9')
			return false;
		d = (unsigned)(*p - '0');
		if (acc > (lim - d) / 10)
			return false;
		acc = acc * 10 + d;
	}
	if (neg)
		*out = acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN :
							-(int64_t)acc;
	else
		*out = (int64_t)acc;
	return true;
}

/* Integer member; only JSON integers that fit int64. */
bool
json_get_int64(yajl_val obj, const char *key, int64_t *out)
{
	yajl_val v = json_get(obj, key);

	if (!YAJL_IS_NUMBER(v) || v->u.number.r == NULL)
		return false;
	return json_str_to_int64(v->u.number.r, out);
}

/* Boolean member. */
bool
json_get_bool(yajl_val obj, const char *key, bool *out)
{
	yajl_val v = json_get(obj, key);

	if (YAJL_IS_TRUE(v)) {
		*out = true;
		return true;
	}
	if (YAJL_IS_FALSE(v)) {
		*out = false;
		return true;
	}
	return false;
}

/*
 * Writer.
 */

struct jsonw *
jsonw_new(void)
{
	struct jsonw *w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	if ((w->gen = yajl_gen_alloc(NULL)) == NULL) {
		free(w);
		return NULL;
	}
	yajl_gen_config(w->gen, yajl_gen_validate_utf8, 1);
	yajl_gen_config(w->gen, yajl_gen_beautify, 0);
	w->stack[0] = JSONW_TOP;
	return w;
}

void
jsonw_free(struct jsonw *w)
{
	const unsigned char *buf;
	size_t		     len;

	if (w == NULL)
		return;
	/* What was written may be a secret (a webhook secret, a key). */
	if (yajl_gen_get_buf(w->gen, &buf, &len) == yajl_gen_status_ok &&
	    len > 0)
		explicit_bzero((void *)(uintptr_t)buf, len);
	yajl_gen_free(w->gen);
	free(w);
}

int
jsonw_error(const struct jsonw *w)
{
	return w->error;
}

/* Record the first error; returns the sticky error. */
static int
jsonw_fail(struct jsonw *w, int rc)
{
	if (w->error == 0)
		w->error = rc;
	return w->error;
}

/* Map a yajl_gen status to 0 / -errno, recording failures. */
static int
jsonw_status(struct jsonw *w, yajl_gen_status st)
{
	if (st == yajl_gen_status_ok)
		return 0;
	return jsonw_fail(w, -EINVAL);
}

/*
 * Check that a value may be written now (not in key position, not after a
 * completed top-level value). 0 or the sticky error.
 */
static int
jsonw_value_check(struct jsonw *w)
{
	if (w->error != 0)
		return w->error;
	if (w->stack[w->depth] == JSONW_OBJ_KEY || (w->depth == 0 && w->done))
		return jsonw_fail(w, -EINVAL);
	return 0;
}

/* A scalar value was written: advance the enclosing context. */
static void
jsonw_value_done(struct jsonw *w)
{
	if (w->stack[w->depth] == JSONW_OBJ_VAL)
		w->stack[w->depth] = JSONW_OBJ_KEY;
	else if (w->depth == 0)
		w->done = true;
}

/* Open an object (obj) or array. */
static int
jsonw_open(struct jsonw *w, bool obj)
{
	int rc;

	if ((rc = jsonw_value_check(w)) != 0)
		return rc;
	if (w->depth >= JSONW_MAX_DEPTH)
		return jsonw_fail(w, -EINVAL);
	rc = jsonw_status(w,
	    obj ? yajl_gen_map_open(w->gen) : yajl_gen_array_open(w->gen));
	if (rc != 0)
		return rc;
	w->stack[++w->depth] = obj ? JSONW_OBJ_KEY : JSONW_ARR;
	return 0;
}

/* Close the innermost object (obj) or array. */
static int
jsonw_close(struct jsonw *w, bool obj)
{
	int rc;

	if (w->error != 0)
		return w->error;
	if (w->depth == 0 || (obj && w->stack[w->depth] != JSONW_OBJ_KEY) ||
	    (!obj && w->stack[w->depth] != JSONW_ARR))
		return jsonw_fail(w, -EINVAL);
	rc = jsonw_status(w,
	    obj ? yajl_gen_map_close(w->gen) : yajl_gen_array_close(w->gen));
	if (rc != 0)
		return rc;
	w->depth--;
	jsonw_value_done(w);
	return 0;
}

int
jsonw_obj_open(struct jsonw *w)
{
	return jsonw_open(w, true);
}

int
jsonw_obj_close(struct jsonw *w)
{
	return jsonw_close(w, true);
}

int
jsonw_arr_open(struct jsonw *w)
{
	return jsonw_open(w, false);
}

int
jsonw_arr_close(struct jsonw *w)
{
	return jsonw_close(w, false);
}

/* An object key (must be in key position). */
int
jsonw_key(struct jsonw *w, const char *key)
{
	int rc;

	if (w->error != 0)
		return w->error;
	if (key == NULL || w->stack[w->depth] != JSONW_OBJ_KEY ||
	    json_utf8_check(key, strlen(key), NULL) != 0)
		return jsonw_fail(w, -EINVAL);
	rc = jsonw_status(w,
	    yajl_gen_string(w->gen, (const unsigned char *)key, strlen(key)));
	if (rc != 0)
		return rc;
	w->stack[w->depth] = JSONW_OBJ_VAL;
	return 0;
}

int
jsonw_strn(struct jsonw *w, const char *s, size_t len)
{
	int rc;

	if (s == NULL)
		return jsonw_null(w);
	if ((rc = jsonw_value_check(w)) != 0)
		return rc;
	/* yajl_gen's own check lets overlongs through; be strict. */
	if (json_utf8_scan(s, len, true, NULL) != 0)
		return jsonw_fail(w, -EINVAL);
	rc = jsonw_status(w,
	    yajl_gen_string(w->gen, (const unsigned char *)s, len));
	if (rc == 0)
		jsonw_value_done(w);
	return rc;
}

int
jsonw_str(struct jsonw *w, const char *s)
{
	return jsonw_strn(w, s, s != NULL ? strlen(s) : 0);
}

int
jsonw_int(struct jsonw *w, int64_t v)
{
	int rc;

	if ((rc = jsonw_value_check(w)) != 0)
		return rc;
	rc = jsonw_status(w, yajl_gen_integer(w->gen, (long long)v));
	if (rc == 0)
		jsonw_value_done(w);
	return rc;
}

/* Emit number text verbatim (already known to be a valid JSON number). */
static int
jsonw_number_text(struct jsonw *w, const char *s, size_t len)
{
	int rc;

	if ((rc = jsonw_value_check(w)) != 0)
		return rc;
	rc = jsonw_status(w, yajl_gen_number(w->gen, s, len));
	if (rc == 0)
		jsonw_value_done(w);
	return rc;
}

int
jsonw_double(struct jsonw *w, double v)
{
	char buf[40];
	int  n;

	if (!isfinite(v))
		return jsonw_null(w);
	n = snprintf(buf, sizeof(buf), "%.17g", v);
	if (n <= 0 || (size_t)n >= sizeof(buf))
		return jsonw_fail(w, -EINVAL);
	return jsonw_number_text(w, buf, (size_t)n);
}

int
jsonw_bool(struct jsonw *w, bool v)
{
	int rc;

	if ((rc = jsonw_value_check(w)) != 0)
		return rc;
	rc = jsonw_status(w, yajl_gen_bool(w->gen, v ? 1 : 0));
	if (rc == 0)
		jsonw_value_done(w);
	return rc;
}

int
jsonw_null(struct jsonw *w)
{
	int rc;

	if ((rc = jsonw_value_check(w)) != 0)
		return rc;
	rc = jsonw_status(w, yajl_gen_null(w->gen));
	if (rc == 0)
		jsonw_value_done(w);
	return rc;
}

int
jsonw_kv_str(struct jsonw *w, const char *key, const char *val)
{
	int rc;

	if ((rc = jsonw_key(w, key)) != 0)
		return rc;
	return jsonw_str(w, val);
}

int
jsonw_kv_int(struct jsonw *w, const char *key, int64_t v)
{
	int rc;

	if ((rc = jsonw_key(w, key)) != 0)
		return rc;
	return jsonw_int(w, v);
}

int
jsonw_kv_bool(struct jsonw *w, const char *key, bool v)
{
	int rc;

	if ((rc = jsonw_key(w, key)) != 0)
		return rc;
	return jsonw_bool(w, v);
}

/*
 * Re-emit a tree value. Numbers are written as their original text, which
 * yajl's parser validated; depth is bounded by the writer's stack.
 */
int
jsonw_val(struct jsonw *w, yajl_val v)
{
	size_t i;
	int    rc;

	if (v == NULL)
		return jsonw_null(w);
	switch (v->type) {
	case yajl_t_string:
		return jsonw_str(w, v->u.string);
	case yajl_t_number:
		if (v->u.number.r == NULL)
			return jsonw_fail(w, -EINVAL);
		return jsonw_number_text(w, v->u.number.r,
		    strlen(v->u.number.r));
	case yajl_t_object:
		if ((rc = jsonw_obj_open(w)) != 0)
			return rc;
		for (i = 0; i < v->u.object.len; i++) {
			if ((rc = jsonw_key(w, v->u.object.keys[i])) != 0 ||
			    (rc = jsonw_val(w, v->u.object.values[i])) != 0)
				return rc;
		}
		return jsonw_obj_close(w);
	case yajl_t_array:
		if ((rc = jsonw_arr_open(w)) != 0)
			return rc;
		for (i = 0; i < v->u.array.len; i++)
			if ((rc = jsonw_val(w, v->u.array.values[i])) != 0)
				return rc;
		return jsonw_arr_close(w);
	case yajl_t_true:
		return jsonw_bool(w, true);
	case yajl_t_false:
		return jsonw_bool(w, false);
	case yajl_t_null:
		return jsonw_null(w);
	default:
		return jsonw_fail(w, -EINVAL);
	}
}

/* Insert serialized JSON by parsing and re-emitting it. */
int
jsonw_raw(struct jsonw *w, const char *json, size_t len)
{
	yajl_val v = NULL;
	int	 rc;

	if (w->error != 0)
		return w->error;
	if ((rc = json_parse(json, len, JSON_DEPTH_DEFAULT, &v, NULL, 0)) != 0)
		return jsonw_fail(w, rc);
	rc = jsonw_val(w, v);
	yajl_tree_free(v);
	return rc;
}

const char *
jsonw_buf(struct jsonw *w, size_t *len)
{
	const unsigned char *b;
	size_t		     l;

	if (w->error != 0)
		return NULL;
	if (yajl_gen_get_buf(w->gen, &b, &l) != yajl_gen_status_ok)
		return NULL;
	if (len != NULL)
		*len = l;
	return (const char *)b;
}

char *
jsonw_steal(struct jsonw *w, size_t *len)
{
	const char *b;
	size_t	    l;
	char	   *p;

	if ((b = jsonw_buf(w, &l)) == NULL)
		return NULL;
	if ((p = malloc(l + 1)) == NULL)
		return NULL;
	memcpy(p, b, l);
	p[l] = '\0';
	if (len != NULL)
		*len = l;
	return p;
}

/*
 * Times.
 */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t
json_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* Parse exactly n digits at *p into *out, advancing *p. */
static bool
json_digits(const char **p, int n, int *out)
{
	int v = 0;

	while (n-- > 0) {
		if (**p < '0' || **p > '9')
			return false;
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	*out = v;
	return true;
}

static bool
json_leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* RFC 3339 date-time to ms since the epoch. */
int
json_time_parse_rfc3339(const char *s, int64_t *ms)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
		30, 31 };
	const char	*p = s;
	int y, mo, d, h, mi, sec, frac = 0, fdigits = 0, oh = 0, om = 0, dim;
	int sign = 0;
	int64_t t;

	if (s == NULL)
		return -EINVAL;
	if (!json_digits(&p, 4, &y) || *p++ != '-' ||
	    !json_digits(&p, 2, &mo) || *p++ != '-' ||
	    !json_digits(&p, 2, &d) || (*p != 'T' && *p != 't'))
		return -EINVAL;
	p++;
	if (!json_digits(&p, 2, &h) || *p++ != ':' ||
	    !json_digits(&p, 2, &mi) || *p++ != ':' ||
	    !json_digits(&p, 2, &sec))
		return -EINVAL;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		while (*p >= '0' && *p <= '9') {
			if (fdigits < 3) {
				frac = frac * 10 + (*p - '0');
				fdigits++;
			} else if (fdigits++ > 64)
				return -EINVAL;
			p++;
		}
		for (; fdigits < 3; fdigits++)
			frac *= 10;
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-') {
		sign = *p++ == '+' ? 1 : -1;
		if (!json_digits(&p, 2, &oh) || *p++ != ':' ||
		    !json_digits(&p, 2, &om) || oh > 23 || om > 59)
			return -EINVAL;
	} else
		return -EINVAL;
	if (*p != '\0')
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	dim = mdays[mo - 1] + (mo == 2 && json_leap_year(y));
	if (d > dim)
		return -EINVAL;
	t = json_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
	    h * 3600 + mi * 60 + sec;
	t -= (int64_t)sign * (oh * 3600 + om * 60);
	*ms = t * 1000 + frac;
	return 0;
}

/*
 * ms since the epoch to "YYYY-MM-DDTHH:MM:SS.mmmZ"; clamped to years
 * 0000..9999.
 */
void
time_format_rfc3339_ms(int64_t ms, char out[32])
{
	const int64_t lo = -62167219200000LL; /* 0000-01-01T00:00:00Z */
	const int64_t hi = 253402300799999LL; /* 9999-12-31T23:59:59.999Z */
	int64_t	      secs, days, rem, z, era, doe, yoe, y, doy, mp, d, m;
	char	      buf[64] = { 0 };
	int	      msec;

	if (ms < lo)
		ms = lo;
	if (ms > hi)
		ms = hi;
	secs = ms / 1000;
	msec = (int)(ms % 1000);
	if (msec < 0) {
		msec += 1000;
		secs--;
	}
	days = secs / 86400;
	rem = secs % 86400;
	if (rem < 0) {
		rem += 86400;
		days--;
	}
	z = days + 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    (int)y, (int)m, (int)d, (int)(rem / 3600), (int)(rem % 3600 / 60),
	    (int)(rem % 60), msec);
	memcpy(out, buf, 31);
	out[31] = '\0';
}
