/*
 * libFuzzer target for the callback URL checker (CURLU): any string.
 * A URL accepted must parse again with libcurl to the host that was
 * checked. Built and run by scripts/fuzz.sh.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "apid/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct yajl_val_s v;
	struct src_input  in;
	struct verr	  e;
	char		 *s, *host = NULL;
	CURLU		 *u;

	if (size == 0 || size > 4096)
		return 0;
	if ((s = malloc(size)) == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	memset(&v, 0, sizeof(v));
	v.type = yajl_t_string;
	v.u.string = s;
	memset(&in, 0, sizeof(in));
	memset(&e, 0, sizeof(e));
	if (validate_callback_url(&v, "callbackUrl", data[0] & 1, &in, &e) ==
	    0) {
		if ((u = curl_url()) == NULL)
			abort();
		if (curl_url_set(u, CURLUPART_URL, in.callback_url, 0) !=
			CURLUE_OK ||
		    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
			abort();
		/* The host checked is the host libcurl connects to. */
		if (strstr(host, in.cb_host) == NULL)
			abort();
		curl_free(host);
		curl_url_cleanup(u);
	}
	src_input_clear(&in);
	free(s);
	return 0;
}
