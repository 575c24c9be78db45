/*
 * The subcommands of auditrelayctl: each parses its own arguments (and the
 * global options, wherever they appear), calls the API and prints a table,
 * key/value lines, or the raw JSON with --json.
 */
#ifndef AR_CTL_CMD_H
#define AR_CTL_CMD_H

#include <stdio.h>

struct cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv); /* argv[0] = name */
};

/* The subcommand called name, or NULL. */
const struct cmd *cmd_find(const char *name);
/* One line per subcommand: name and summary. */
void cmd_list_usage(FILE *f);

#endif
