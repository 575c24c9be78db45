/*
 * Unit tests for lib/json: strict parsing, getters, writer, times.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/base/json.h"

/* Nested arrays depth n: "[[[...]]]". Caller frees. */
static char *
nest(unsigned n)
{
	char	*s = malloc(2 * n + 1);
	unsigned i;

	assert_non_null(s);
	for (i = 0; i < n; i++) {
		s[i] = '[';
		s[2 * n - 1 - i] = ']';
	}
	s[2 * n] = '\0';
	return s;
}

static void
test_parse_good(void **state)
{
	const char *t =
	    "{\"a\": [1, 2.5, \"x\\u00e9\"], \"b\": true, "
	    "\"c\": null, \"d\": {\"e\": \"caf\xc3\xa9 \xf0\x9f\x98\x80\"}}";
	yajl_val v = NULL, a;
	char	 err[128];

	assert_int_equal(json_parse(t, strlen(t), 32, &v, err, sizeof(err)), 0);
	assert_true(YAJL_IS_OBJECT(v));
	a = json_get(v, "a");
	assert_true(YAJL_IS_ARRAY(a));
	assert_int_equal(a->u.array.len, 3);
	assert_string_equal(json_get_string(json_get(v, "d"), "e"),
	    "caf\xc3\xa9 \xf0\x9f\x98\x80");
	assert_null(json_get(v, "zz"));
	assert_null(json_get_string(v, "b"));
	yajl_tree_free(v);

	/* Not NUL-terminated: only len bytes count. */
	assert_int_equal(json_parse("[1]garbage", 3, 4, &v, err, sizeof(err)),
	    0);
	yajl_tree_free(v);
}

static void
test_parse_depth(void **state)
{
	yajl_val v = NULL;
	char	 err[128], *s;

	s = nest(32);
	assert_int_equal(json_parse(s, strlen(s), 32, &v, err, sizeof(err)), 0);
	yajl_tree_free(v);
	free(s);

	s = nest(33);
	v = NULL;
	assert_int_equal(json_parse(s, strlen(s), 32, &v, err, sizeof(err)),
	    -EINVAL);
	assert_null(v);
	assert_non_null(strstr(err, "deeper than 32"));
	assert_non_null(strstr(err, "byte 32"));
	free(s);

	/* Brackets inside strings do not count. */
	s = strdup("[\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"]");
	assert_int_equal(json_parse(s, strlen(s), 2, &v, err, sizeof(err)), 0);
	yajl_tree_free(v);
	free(s);

	/* Objects count too. */
	s = strdup("{\"a\":{\"b\":{\"c\":1}}}");
	assert_int_equal(json_parse(s, strlen(s), 2, &v, err, sizeof(err)),
	    -EINVAL);
	assert_int_equal(json_parse(s, strlen(s), 3, &v, err, sizeof(err)), 0);
	yajl_tree_free(v);
	free(s);
}

static void
test_parse_utf8(void **state)
{
	static const struct {
		const char *t;
		size_t	    off;
	} bad[] = {
		{ "[\"\xc0\xaf\"]", 2 },	 /* overlong '/' */
		{ "[\"\xe0\x80\xaf\"]", 2 },	 /* overlong 3-byte */
		{ "[\"\xf0\x80\x80\xaf\"]", 2 }, /* overlong 4-byte */
		{ "[\"\xed\xa0\x80\"]", 2 },	 /* surrogate D800 */
		{ "[\"\xed\xbf\xbf\"]", 2 },	 /* surrogate DFFF */
		{ "[\"\xf4\x90\x80\x80\"]", 2 }, /* > U+10FFFF */
		{ "[\"ab\x80\"]", 4 },		 /* stray continuation */
		{ "[\"\xc3\"]", 2 },		 /* truncated */
		{ "[\"\xff\"]", 2 },
	};
	yajl_val v = NULL;
	char	 err[128], want[32];
	size_t	 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(json_parse(bad[i].t, strlen(bad[i].t), 8, &v,
				     err, sizeof(err)),
		    -EINVAL);
		assert_null(v);
		assert_non_null(strstr(err, "UTF-8"));
		snprintf(want, sizeof(want), "byte %zu", bad[i].off);
		assert_non_null(strstr(err, want));
	}
	/* Edge code points that are fine. */
	assert_int_equal(json_parse("[\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\"]", 11, 8,
			     &v, err, sizeof(err)),
	    0);
	yajl_tree_free(v);
	/* Raw NUL refused. */
	assert_int_equal(json_parse("[1,\0 2]", 7, 8, &v, err, sizeof(err)),
	    -EINVAL);
}

static void
test_parse_syntax(void **state)
{
	static const char *bad[] = {
		"",
		"   ",
		"{",
		"{\"a\":1",
		"[1,]",
		"{\"a\" 1}",
		"[1] [2]",
		"[1] x",
		"// c\n[1]",
		"[1 /* c */]",
		"nul",
		"[01]",
		"{'a':1}",
		"{\"items\": [{\"id\": {\"time\": \"2024-01-0",
	};
	yajl_val v = NULL;
	char	 err[128];
	size_t	 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(
		    json_parse(bad[i], strlen(bad[i]), 8, &v, err, sizeof(err)),
		    -EINVAL);
		assert_null(v);
		assert_non_null(strstr(err, "byte"));
	}
	assert_int_equal(json_parse(NULL, 0, 8, &v, err, sizeof(err)), -EINVAL);
	/* Scalars and whitespace around are fine. */
	assert_int_equal(json_parse(" 42 \n", 5, 8, &v, NULL, 0), 0);
	assert_true(YAJL_IS_NUMBER(v));
	yajl_tree_free(v);
}

static void
test_getters(void **state)
{
	const char
		*t = "{\"i\": 42, \"neg\": -9223372036854775808, "
		     "\"max\": 9223372036854775807, \"over\": 9223372036854775808, "
		     "\"under\": -9223372036854775809, \"f\": 1.5, \"e\": 1e3, "
		     "\"s\": \"42\", \"t\": true, \"fa\": false, \"n\": null}";
	yajl_val v = NULL;
	int64_t	 i = 7;
	bool	 b;

	assert_int_equal(json_parse(t, strlen(t), 4, &v, NULL, 0), 0);
	assert_true(json_get_int64(v, "i", &i));
	assert_int_equal(i, 42);
	assert_true(json_get_int64(v, "neg", &i));
	assert_true(i == INT64_MIN);
	assert_true(json_get_int64(v, "max", &i));
	assert_true(i == INT64_MAX);
	i = 7;
	assert_false(json_get_int64(v, "over", &i));
	assert_false(json_get_int64(v, "under", &i));
	assert_false(json_get_int64(v, "f", &i));
	assert_false(json_get_int64(v, "e", &i));
	assert_false(json_get_int64(v, "s", &i));
	assert_false(json_get_int64(v, "t", &i));
	assert_false(json_get_int64(v, "missing", &i));
	assert_int_equal(i, 7);
	assert_true(json_get_bool(v, "t", &b));
	assert_true(b);
	assert_true(json_get_bool(v, "fa", &b));
	assert_false(b);
	assert_false(json_get_bool(v, "n", &b));
	assert_false(json_get_bool(v, "i", &b));
	assert_string_equal(json_get_string(v, "s"), "42");
	assert_null(json_get_string(NULL, "s"));
	assert_null(json_get(json_get(v, "i"), "x"));
	yajl_tree_free(v);

	assert_true(json_str_to_int64("670", &i));
	assert_int_equal(i, 670);
	assert_true(json_str_to_int64("-2132132132132132132", &i));
	assert_true(i == -2132132132132132132LL);
	assert_false(json_str_to_int64("", &i));
	assert_false(json_str_to_int64("-", &i));
	assert_false(json_str_to_int64("12a", &i));
	assert_false(json_str_to_int64(" 1", &i));
	assert_false(json_str_to_int64("+1", &i));
	assert_false(json_str_to_int64("99999999999999999999", &i));
}

static void
test_writer_roundtrip(void **state)
{
	struct jsonw *w;
	yajl_val      v = NULL, arr;
	const char   *buf, *raw;
	char	     *s;
	size_t	      len;

	assert_non_null(w = jsonw_new());
	assert_int_equal(jsonw_obj_open(w), 0);
	assert_int_equal(jsonw_kv_str(w, "s",
			     "caf\xc3\xa9 \xe2\x82\xac "
			     "\xf0\x9f\x98\x80 \"q\" \\ \n\t\x01"),
	    0);
	assert_int_equal(jsonw_kv_str(w, "nul", NULL), 0);
	assert_int_equal(jsonw_kv_int(w, "min", INT64_MIN), 0);
	assert_int_equal(jsonw_kv_bool(w, "b", true), 0);
	assert_int_equal(jsonw_key(w, "d"), 0);
	assert_int_equal(jsonw_double(w, 0.1), 0);
	assert_int_equal(jsonw_key(w, "inf"), 0);
	assert_int_equal(jsonw_double(w, 1.0 / 0.0), 0);
	assert_int_equal(jsonw_key(w, "a"), 0);
	assert_int_equal(jsonw_arr_open(w), 0);
	assert_int_equal(jsonw_strn(w, "abcdef", 3), 0);
	assert_int_equal(jsonw_null(w), 0);
	assert_int_equal(jsonw_bool(w, false), 0);
	raw = "{\"big\": 123456789012345678901234567890, \"x\": [1.50, "
	      "\"\\u00e9\"]}";
	assert_int_equal(jsonw_raw(w, raw, strlen(raw)), 0);
	assert_int_equal(jsonw_arr_close(w), 0);
	assert_int_equal(jsonw_obj_close(w), 0);
	assert_int_equal(jsonw_error(w), 0);

	assert_non_null(buf = jsonw_buf(w, &len));
	assert_int_equal(json_parse(buf, len, 8, &v, NULL, 0), 0);
	assert_string_equal(json_get_string(v, "s"),
	    "caf\xc3\xa9 \xe2\x82\xac "
	    "\xf0\x9f\x98\x80 \"q\" \\ \n\t\x01");
	assert_true(YAJL_IS_NULL(json_get(v, "nul")));
	assert_true(YAJL_IS_NULL(json_get(v, "inf")));
	assert_true(YAJL_IS_NUMBER(json_get(v, "d")));
	assert_true(YAJL_GET_DOUBLE(json_get(v, "d")) == 0.1);
	arr = json_get(v, "a");
	assert_int_equal(arr->u.array.len, 4);
	assert_string_equal(arr->u.array.values[0]->u.string, "abc");
	/* Numbers re-emitted with their original text. */
	assert_non_null(strstr(buf, "\"big\":123456789012345678901234567890"));
	assert_non_null(strstr(buf, "[1.50,"));
	assert_non_null(strstr(buf, "\"min\":-9223372036854775808"));

	/* jsonw_val round trip gives identical text. */
	{
		struct jsonw *w2 = jsonw_new();
		size_t	      l2;

		assert_int_equal(jsonw_val(w2, v), 0);
		s = jsonw_steal(w2, &l2);
		assert_non_null(s);
		assert_int_equal(l2, len);
		assert_memory_equal(s, buf, len);
		assert_int_equal(s[l2], '\0');
		free(s);
		jsonw_free(w2);
	}
	yajl_tree_free(v);
	jsonw_free(w);
	jsonw_free(NULL);
}

static void
test_writer_misuse(void **state)
{
	struct jsonw *w;

	/* Key outside an object. */
	w = jsonw_new();
	assert_int_equal(jsonw_arr_open(w), 0);
	assert_int_equal(jsonw_key(w, "k"), -EINVAL);
	assert_int_equal(jsonw_int(w, 1), -EINVAL); /* sticky */
	assert_null(jsonw_buf(w, NULL));
	assert_null(jsonw_steal(w, NULL));
	jsonw_free(w);

	/* Value where a key is expected; wrong close. */
	w = jsonw_new();
	assert_int_equal(jsonw_obj_open(w), 0);
	assert_int_equal(jsonw_str(w, "v"), -EINVAL);
	jsonw_free(w);
	w = jsonw_new();
	assert_int_equal(jsonw_obj_open(w), 0);
	assert_int_equal(jsonw_arr_close(w), -EINVAL);
	jsonw_free(w);
	w = jsonw_new();
	assert_int_equal(jsonw_obj_open(w), 0);
	assert_int_equal(jsonw_key(w, "k"), 0);
	assert_int_equal(jsonw_obj_close(w), -EINVAL);
	jsonw_free(w);

	/* Invalid UTF-8 (overlong) and invalid raw JSON. */
	w = jsonw_new();
	assert_int_equal(jsonw_arr_open(w), 0);
	assert_int_equal(jsonw_str(w, "\xc0\xaf"), -EINVAL);
	jsonw_free(w);
	w = jsonw_new();
	assert_int_equal(jsonw_arr_open(w), 0);
	assert_int_equal(jsonw_raw(w, "[1,", 3), -EINVAL);
	jsonw_free(w);

	/* An embedded NUL is escaped, not a truncation. */
	w = jsonw_new();
	assert_int_equal(jsonw_strn(w, "a\0b", 3), 0);
	assert_string_equal(jsonw_buf(w, NULL), "\"a\\u0000b\"");
	jsonw_free(w);

	/* Two top-level values. */
	w = jsonw_new();
	assert_int_equal(jsonw_int(w, 1), 0);
	assert_int_equal(jsonw_int(w, 2), -EINVAL);
	jsonw_free(w);
}

static void
test_time(void **state)
{
	static const struct {
		const char *in;
		int64_t	    ms;
		const char *out;
	} good[] = {
		{ "1970-01-01T00:00:00Z", 0, "1970-01-01T00:00:00.000Z" },
		{ "2024-03-10T12:00:00Z", 1710072000000LL,
		    "2024-03-10T12:00:00.000Z" },
		{ "2022-09-18T16:42:31.789Z", 1663519351789LL,
		    "2022-09-18T16:42:31.789Z" },
		{ "2022-09-18T16:42:31.789550Z", 1663519351789LL,
		    "2022-09-18T16:42:31.789Z" },
		{ "2022-09-18T16:42:31.7Z", 1663519351700LL,
		    "2022-09-18T16:42:31.700Z" },
		{ "2024-03-10T14:00:00+02:00", 1710072000000LL,
		    "2024-03-10T12:00:00.000Z" },
		{ "2024-03-10t10:30:00.5-01:30z", 0, NULL }, /* bad */
		{ "2024-02-29T23:59:59.999Z", 1709251199999LL,
		    "2024-02-29T23:59:59.999Z" },
		{ "1969-12-31T23:59:59.999Z", -1, "1969-12-31T23:59:59.999Z" },
	};
	static const char *bad[] = {
		"",
		"2024-03-10",
		"2024-03-10T12:00:00",
		"2024-13-01T00:00:00Z",
		"2023-02-29T00:00:00Z",
		"2024-03-10T24:00:00Z",
		"2024-03-10T12:00:00.Z",
		"2024-03-10T12:00:00Zx",
		"2024-03-10 12:00:00Z",
		"24-03-10T12:00:00Z",
		"2024-03-10T12:00:00+2:00",
	};
	char	out[32];
	int64_t ms;
	size_t	i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (good[i].out == NULL) {
			assert_int_equal(
			    json_time_parse_rfc3339(good[i].in, &ms), -EINVAL);
			continue;
		}
		assert_int_equal(json_time_parse_rfc3339(good[i].in, &ms), 0);
		assert_true(ms == good[i].ms);
		time_format_rfc3339_ms(ms, out);
		assert_string_equal(out, good[i].out);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(json_time_parse_rfc3339(bad[i], &ms), -EINVAL);
	assert_int_equal(json_time_parse_rfc3339(NULL, &ms), -EINVAL);
}

/* Issue 13 row 8: "\u0000" is found, with the path of its field. */
static void
test_find_nul(void **state)
{
	char path[128];

	assert_int_equal(json_find_nul("{\"a\":\"x\"}", 9, path, sizeof(path)),
	    0);
#define NUL_AT(j, want)                                                  \
	do {                                                             \
		assert_int_equal(                                        \
		    json_find_nul(j, strlen(j), path, sizeof(path)), 1); \
		assert_string_equal(path, want);                         \
	} while (0)
	NUL_AT("{\"subject\":\"adm\\u0000in\"}", "subject");
	NUL_AT("{\"credentials\":{\"clientEmail\":\"a\",\"subject\":"
	       "\"x\\u0000\"}}",
	    "credentials.subject");
	NUL_AT("{\"applications\":[\"login\",true,3,null,\"a\\u0000\"]}",
	    "applications[4]");
	NUL_AT("{\"a\":[{\"b\":[1,{\"c\":\"\\u0000\"}]}]}", "a[0].b[1].c");
	NUL_AT("{\"k\\u0000\":1}", "k");
#undef NUL_AT
	/* An escaped backslash before u0000 is no NUL. */
	assert_int_equal(
	    json_find_nul("{\"a\":\"\\\\u0000\"}", 13, path, sizeof(path)), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_find_nul),
		cmocka_unit_test(test_parse_depth),
		cmocka_unit_test(test_parse_utf8),
		cmocka_unit_test(test_parse_syntax),
		cmocka_unit_test(test_getters),
		cmocka_unit_test(test_writer_roundtrip),
		cmocka_unit_test(test_writer_misuse),
		cmocka_unit_test(test_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
