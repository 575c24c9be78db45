/*
 * JSON helpers over yajl: a strict parser (UTF-8 and nesting depth checked
 * before yajl_tree sees the text), typed getters on parsed trees, a writer
 * around yajl_gen, and RFC 3339 time parsing/formatting. Library code:
 * returns 0 or -errno, never logs, fills err[] for a person to read.
 */
#ifndef AR_LIB_JSON_H
#define AR_LIB_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#define JSON_DEPTH_DEFAULT 64

/*
 * Parse buf[0..len) strictly: valid UTF-8 (no overlongs, surrogates or
 * code points above U+10FFFF), nesting depth (objects + arrays) at most
 * max_depth, one JSON value and nothing but whitespace after it.
 * On success *out is the tree (free with yajl_tree_free()).
 * Returns 0, -EINVAL (err[] names the problem and the byte offset) or
 * -ENOMEM.
 */
int json_parse(const char *buf, size_t len, unsigned max_depth, yajl_val *out,
    char *err, size_t errlen);

/*
 * The first string or member name of the JSON text buf[0..len) that holds
 * U+0000 ("\u0000"), which a C string would silently cut: 1 with its
 * path ("credentials.subject", "applications[2]") in path[], 0 when none.
 */
int json_find_nul(const char *buf, size_t len, char *path, size_t pathlen);

/*
 * Check that buf[0..len) is valid UTF-8 (strict, as above). Returns 0, or
 * -EINVAL with *bad_off (when non-NULL) the offset of the first bad byte.
 */
int json_utf8_check(const char *buf, size_t len, size_t *bad_off);

/* Member key of object obj; NULL when obj is not an object or key absent. */
yajl_val json_get(yajl_val obj, const char *key);
/* String member key of obj; NULL when absent or not a string. */
const char *json_get_string(yajl_val obj, const char *key);
/*
 * Integer member key of obj into *out. Accepts only a JSON integer that
 * fits int64 (floats, strings, overflow rejected). true on success.
 */
bool json_get_int64(yajl_val obj, const char *key, int64_t *out);
/* Boolean member key of obj into *out. true on success. */
bool json_get_bool(yajl_val obj, const char *key, bool *out);
/*
 * Parse s as a decimal int64 (optional '-', digits only, no overflow).
 * true on success. Used for Google's int64-as-string fields.
 */
bool json_str_to_int64(const char *s, int64_t *out);

/*
 * Writer. Every call returns 0 or -EINVAL (misuse: key outside an object,
 * value where a key is expected, invalid UTF-8 string, ...) / -ENOMEM; the
 * first error sticks and is returned by every later call and by
 * jsonw_error(). Output is compact and valid UTF-8.
 */
struct jsonw;

struct jsonw *jsonw_new(void);
void	      jsonw_free(struct jsonw *w);
/* First error met by w (0 when none). */
int jsonw_error(const struct jsonw *w);
int jsonw_obj_open(struct jsonw *w);
int jsonw_obj_close(struct jsonw *w);
int jsonw_arr_open(struct jsonw *w);
int jsonw_arr_close(struct jsonw *w);
int jsonw_key(struct jsonw *w, const char *key);
/* A string value; s NULL emits null. */
int jsonw_str(struct jsonw *w, const char *s);
int jsonw_strn(struct jsonw *w, const char *s, size_t len);
int jsonw_int(struct jsonw *w, int64_t v);
/* A double; NaN and infinities emit null. */
int jsonw_double(struct jsonw *w, double v);
int jsonw_bool(struct jsonw *w, bool v);
int jsonw_null(struct jsonw *w);
/* Key + string value (val NULL emits null). */
int jsonw_kv_str(struct jsonw *w, const char *key, const char *val);
int jsonw_kv_int(struct jsonw *w, const char *key, int64_t v);
int jsonw_kv_bool(struct jsonw *w, const char *key, bool v);
/*
 * Re-emit a parsed tree value (numbers keep their original text; a NULL
 * v emits null).
 */
int jsonw_val(struct jsonw *w, yajl_val v);
/*
 * Insert already-serialized JSON json[0..len) as one value. It is parsed
 * (strictly, JSON_DEPTH_DEFAULT) and re-emitted, so invalid input is
 * refused with -EINVAL instead of corrupting the output.
 */
int jsonw_raw(struct jsonw *w, const char *json, size_t len);
/* The bytes so far (not NUL-terminated necessarily); NULL on error. */
const char *jsonw_buf(struct jsonw *w, size_t *len);
/*
 * A malloc'd NUL-terminated copy of the output (*len, when non-NULL, its
 * length); NULL on error or out of memory. w stays usable.
 */
char *jsonw_steal(struct jsonw *w, size_t *len);

/*
 * RFC 3339 date-time ("2024-03-10T12:00:00Z", "...00.123456Z",
 * "...00+02:00") to milliseconds since the epoch (UTC; fractional digits
 * beyond milliseconds are truncated). 0 or -EINVAL.
 */
int json_time_parse_rfc3339(const char *s, int64_t *ms);
/* Format ms since the epoch as "2024-03-10T12:00:00.000Z" into out. */
void time_format_rfc3339_ms(int64_t ms, char out[32]);

#endif
