/* cli.c: the option parser shared by the stage programs (see cli.h). */
#include "base/cli.h"
#include "base/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_print_help(const cli_spec *spec)
{
	printf("usage: %s\n\n%s\n\noptions:\n", spec->usage, spec->summary);
	for (int i = 0; i < spec->nopts; i++) {
		const cli_opt *o = &spec->opts[i];
		char left[64];
		snprintf(left, sizeof left, "--%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
		printf("  %-26s %s%s\n", left, o->help, o->required ? " (required)" : "");
	}
	printf("  %-26s %s\n", "--quiet", "print errors only");
	printf("  %-26s %s\n", "--verbose", "also print each tensor as it is written: its LUT and error, or fp16");
	printf("  %-26s %s\n", "--help", "show this help and exit");
	if (spec->epilog)
		printf("\n%s\n", spec->epilog);
	printf("\nexit status: 0 success, 1 bad input or failure, 2 usage error\n");
}

static const cli_opt *find_opt(const cli_spec *spec, const char *name, size_t len)
{
	for (int i = 0; i < spec->nopts; i++)
		if (strlen(spec->opts[i].name) == len && strncmp(spec->opts[i].name, name, len) == 0)
			return &spec->opts[i];
	return NULL;
}

static void set_int(const cli_opt *o, const char *val)
{
	char *end;
	errno = 0;
	long v = strtol(val, &end, 10);
	if (errno || end == val || *end)
		die_usage("--%s: '%s' is not an integer", o->name, val);
	if (v < o->min || v > o->max)
		die_usage("--%s: %ld is out of range [%ld, %ld]", o->name, v, o->min, o->max);
	*(int *)o->dst = (int)v;
}

static int handle_builtin(const cli_spec *spec, const char *arg)
{
	if (streq(arg, "--help") || streq(arg, "-h")) {
		cli_print_help(spec);
		exit(0);
	}
	if (streq(arg, "--quiet") || streq(arg, "-q"))
		return g_verbosity = 0, 1;
	if (streq(arg, "--verbose") || streq(arg, "-v"))
		return g_verbosity = 2, 1;
	return 0;
}

void cli_parse(const cli_spec *spec, int argc, char **argv, char ***positional, int *npositional)
{
	char *seen = xcalloc((size_t)spec->nopts + 1, 1);
	if (positional)
		*positional = xcalloc((size_t)argc + 1, sizeof(char *)), *npositional = 0;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (handle_builtin(spec, arg))
			continue;
		if (strncmp(arg, "--", 2) != 0) {
			if (!positional)
				die_usage("unexpected argument '%s'", arg);
			(*positional)[(*npositional)++] = argv[i];
			continue;
		}
		const char *name = arg + 2, *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const cli_opt *o = find_opt(spec, name, len);
		if (!o)
			die_usage("unknown option '--%.*s'", (int)len, name);
		seen[o - spec->opts] = 1;
		if (o->kind == CLI_FLAG) {
			if (eq)
				die_usage("--%s takes no value", o->name);
			*(int *)o->dst = 1;
			continue;
		}
		const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
		if (!val)
			die_usage("--%s needs a value (%s)", o->name, o->metavar ? o->metavar : "value");
		if (o->kind == CLI_INT)
			set_int(o, val);
		else
			*(const char **)o->dst = val;
	}
	for (int i = 0; i < spec->nopts; i++)
		if (spec->opts[i].required && !seen[i])
			die_usage("--%s is required", spec->opts[i].name);
	free(seen);
}
