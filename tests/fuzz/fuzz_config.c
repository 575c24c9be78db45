/*
 * libFuzzer target for the configuration file parser: any bytes as the
 * file (through a memfd), then the cross-key checks. Built and run by
 * scripts/fuzz.sh.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/ipc/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c;
	char	      path[64], err[512];
	int	      fd;

	if ((fd = memfd_create("fuzzconf", 0)) < 0)
		abort();
	if (size > 0 && write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	config_init(&c);
	if (config_load(&c, path, false, err, sizeof(err)) == 0)
		(void)config_check(&c, err, sizeof(err));
	config_clear(&c);
	close(fd);
	return 0;
}
