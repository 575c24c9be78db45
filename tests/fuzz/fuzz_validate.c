/*
 * libFuzzer target for the REST request validator: whole bodies, as
 * apid sees them (json_parse at its depth, the U+0000 finder), then
 * validate_add_source() and validate_patch() with private networks
 * allowed or not, and validate_backfill(). Built and run by scripts/fuzz.sh.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apid/validate.h"
#include "lib/base/json.h"
#include "lib/crypto/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct src_input in;
	struct verr	 e;
	yajl_val	 root = NULL;
	char		 err[256], path[256];
	bool		 priv;

	if (crypto_init() != 0)
		abort();
	if (size == 0)
		return 0;
	priv = data[0] & 1;
	data++;
	size--;
	(void)json_find_nul((const char *)data, size, path, sizeof(path));
	if (json_parse((const char *)data, size, 32, &root, err, sizeof(err)) !=
	    0)
		return 0;
	memset(&in, 0, sizeof(in));
	memset(&e, 0, sizeof(e));
	if (validate_add_source(root, 60, priv, &in, &e) == 0 &&
	    (!in.has_callback || in.callback_url == NULL))
		abort();
	src_input_clear(&in);
	memset(&in, 0, sizeof(in));
	(void)validate_patch(root, 60, priv, &in, &e);
	src_input_clear(&in);
	{
		static char	login[] = "login", drive[] = "drive";
		char *const	apps[] = { login, drive };
		struct bf_input bf;

		/* 2026-12-01T00:00:00Z */
		if (validate_backfill(root, 1796083200000LL, apps, 2, &bf,
			&e) == 0 &&
		    (bf.from >= bf.to || bf.to > 1796083200000LL ||
			bf.from < 1796083200000LL - 180LL * 86400000))
			abort();
	}
	validate_wipe_tree(root);
	yajl_tree_free(root);
	return 0;
}
