/*
 * libFuzzer target for the IPC frame decoder: arbitrary bytes, fed in
 * arbitrary splits, must never crash; every decoded envelope is freed.
 */
#include <stddef.h>
#include <stdint.h>

#include "lib/ipc/ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evbuffer *b = evbuffer_new();
	Ar__Envelope	*env;
	size_t		 off = 0, step;
	int		 rc;

	if (b == NULL)
		return 0;
	/* The first byte chooses the split size. */
	step = size > 0 ? (size_t)data[0] % 17 + 1 : 1;
	while (off < size) {
		size_t n = size - off < step ? size - off : step;

		evbuffer_add(b, data + off, n);
		off += n;
		while ((rc = ipc_frame_decode(b, &env)) == 1)
			ar__envelope__free_unpacked(env, NULL);
		if (rc < 0)
			break;
	}
	evbuffer_free(b);
	return 0;
}
