/*
 * libFuzzer target for normalize_page() and json_parse()/jsonw_raw() (not
 * built by default). Build by hand, e.g.:
 *
 *   clang -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -I. tests/fuzz/fuzz_normalize.c lib/base/json.c \
 *       lib/google/normalize.c \
 *       -lyajl -lgcrypt -lm -o fuzz_normalize
 *   ./fuzz_normalize -max_total_time=60 tests/data/google/samples
 *
 * Invariants checked: no crash or leak; every log produced is valid JSON
 * of at most a bounded depth; error logs carry "error"; the page either
 * parses (0) or is refused with -EINVAL and nothing returned.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/json.h"
#include "lib/google/normalize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct norm_log *logs = NULL;
	struct jsonw	*w;
	yajl_val	 v = NULL;
	char		*tok = NULL, err[256];
	size_t		 n = 0, i;
	int		 rc;

	rc = normalize_page((const char *)data, size, "fuzz", &logs, &n, &tok,
	    err, sizeof(err));
	if (rc != 0 && (logs != NULL || n != 0 || tok != NULL))
		abort();
	for (i = 0; i < n; i++) {
		if (json_parse(logs[i].json, logs[i].json_len, 256, &v, NULL,
			0) != 0)
			abort();
		if (logs[i].error != (json_get(v, "error") != NULL))
			abort();
		if (strcmp(json_get_string(v, "id"), logs[i].id) != 0)
			abort();
		yajl_tree_free(v);
		v = NULL;
	}
	norm_logs_free(logs, n);
	free(tok);

	/* Re-emitting any accepted text must give identical-meaning JSON. */
	if ((w = jsonw_new()) != NULL) {
		if (jsonw_raw(w, (const char *)data, size) == 0) {
			size_t	    len;
			const char *b = jsonw_buf(w, &len);

			if (b == NULL ||
			    json_parse(b, len, 256, &v, NULL, 0) != 0)
				abort();
			yajl_tree_free(v);
		}
		jsonw_free(w);
	}
	return 0;
}

#ifdef FUZZ_STANDALONE
/*
 * Without libFuzzer (gcc): -DFUZZ_STANDALONE gives a main() that runs the
 * target on each file given and on N random mutations of them:
 *   fuzz_normalize ITERATIONS FILE...
 */
#include <stdio.h>

int
main(int argc, char **argv)
{
	static uint8_t buf[1 << 16], mut[1 << 16];
	unsigned long  iters, it;
	size_t	       len, mlen, k;
	int	       f;

	if (argc < 3)
		return 2;
	iters = strtoul(argv[1], NULL, 10);
	srandom(12345);
	for (f = 2; f < argc; f++) {
		FILE *fp = fopen(argv[f], "rb");

		if (fp == NULL)
			return 1;
		len = fread(buf, 1, sizeof(buf), fp);
		fclose(fp);
		LLVMFuzzerTestOneInput(buf, len);
		for (it = 0; it < iters; it++) {
			memcpy(mut, buf, len);
			mlen = len;
			for (k = 0; k < 1 + (size_t)(random() % 4); k++) {
				size_t at = mlen ? (size_t)random() % mlen : 0;

				switch (random() % 4) {
				case 0:
					mut[at] = (uint8_t)random();
					break;
				case 1:
					mlen = at;
					break;
				case 2:
					if (mlen > 0) {
						memmove(mut + at, mut + at + 1,
						    mlen - at - 1);
						mlen--;
					}
					break;
				default:
					mut[at] = "{}[]\",:0-e.\\"[random() %
					    12];
					break;
				}
			}
			LLVMFuzzerTestOneInput(mut, mlen);
		}
	}
	return 0;
}
#endif
