/* cli.h: one table-driven option parser for every stage program.
 *
 * A stage declares its options as a table (name, value placeholder, help,
 * kind, destination); cli_parse() fills the destinations, prints --help from
 * the same table (so the help text and the parser never disagree), and turns
 * every usage mistake into one line and exit status 2:
 *   unknown flag, missing value, bad integer, missing required flag.
 * Accepted forms: --name value, --name=value, and --flag for booleans.
 * Every stage also gets --help, --quiet (errors only) and --verbose.
 */
#ifndef ANEMAKE_CLI_H
#define ANEMAKE_CLI_H

typedef enum cli_kind {
	CLI_STRING, /* dst: const char ** */
	CLI_INT,    /* dst: int *, decimal, range checked by min/max */
	CLI_FLAG,   /* dst: int *, set to 1 */
} cli_kind;

typedef struct cli_opt {
	const char *name;   /* without the leading "--" */
	const char *metavar;/* shown in help, e.g. "DIR"; NULL for flags */
	cli_kind kind;
	void *dst;
	int required;
	long min, max;      /* CLI_INT bounds (inclusive) */
	const char *help;
} cli_opt;

typedef struct cli_spec {
	const char *usage;       /* e.g. "embed --model DIR --output DIR [options]" */
	const char *summary;     /* one paragraph: what the program does */
	const cli_opt *opts;
	int nopts;
	const char *epilog;      /* optional text after the options */
} cli_spec;

/* Parse argv; exits 0 after --help, 2 on a usage error. Non-option
 * arguments are collected into *positional (may be NULL when none are allowed). */
void cli_parse(const cli_spec *spec, int argc, char **argv, char ***positional, int *npositional);
void cli_print_help(const cli_spec *spec);

#endif
