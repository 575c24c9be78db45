/*
 * ar-lease-race: N processes race for the same lease epochs, many rounds,
 * against a real store; prints one line per process with the rounds it won.
 * Used by tests/system/test_lease.py to prove one winner per epoch.
 *
 * usage: ar-lease-race URI DB PROCS ROUNDS
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/store/lease.h"
#include "lib/store/store.h"

int
main(int argc, char **argv)
{
	struct store *s;
	struct lease  l;
	char	      err[512], res[64], holder[32];
	int	      procs, rounds, i, r, rc, pipes[2];

	if (argc != 5) {
		fprintf(stderr, "usage: %s URI DB PROCS ROUNDS\n", argv[0]);
		return 64;
	}
	procs = atoi(argv[3]);
	rounds = atoi(argv[4]);
	if (pipe(pipes) != 0)
		return 1;
	for (i = 0; i < procs; i++) {
		if (fork() != 0)
			continue;
		/* Child: wait for the start signal, then race. */
		close(pipes[1]);
		store_log_init();
		if (store_open(argv[1], argv[2], "lease-race", &s, err,
			sizeof(err)) != 0) {
			fprintf(stderr, "store_open: %s\n", err);
			_exit(1);
		}
		snprintf(holder, sizeof(holder), "p%d", i);
		(void)!read(pipes[0], &rc, 1);
		printf("%s", holder);
		for (r = 0; r < rounds; r++) {
			snprintf(res, sizeof(res), "race:%d", r);
			rc = lease_take(s, res, holder, 60000, &l, err,
			    sizeof(err));
			if (rc < 0) {
				fprintf(stderr, "lease_take: %s\n", err);
				_exit(1);
			}
			if (rc == 1)
				printf(" %d", r);
		}
		printf("\n");
		fflush(stdout);
		store_free(s);
		_exit(0);
	}
	close(pipes[0]);
	sleep(1);
	close(pipes[1]); /* EOF releases every child at once */
	rc = 0;
	for (i = 0; i < procs; i++) {
		int st;

		wait(&st);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			rc = 1;
	}
	return rc;
}
