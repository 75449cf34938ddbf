/* compile: turn .mlpackage parts into compiled .mlmodelc directories, as
 * ANEMLL's compile_models.py does with `xcrun coremlcompiler compile`.
 *
 * Input: one or more <name>.mlpackage (--input PKG [PKG...]). First, for
 * every one, a hard check: a weight.bin over --max-weight-mb (1024 MB, the
 * iOS limit; 2048 with --target macos) is an error naming the part, its size
 * and a chunk count that would fit; nothing is compiled then. Output:
 * <output or the package's directory>/<name>.mlmodelc, same size as the
 * package (weights/weight.bin is the package's: a hard link, or a copy on
 * another file system), replaced atomically. With Apple's
 * compiler (`xcrun --find coremlcompiler` succeeds, i.e. on a Mac) it does
 * the work; elsewhere anemake writes the layout itself (common/coreml/mlmodelc.h)
 * and says so in one short stderr line per run (details: --help). The
 * .mlpackage stays the primary artifact. Written paths go to stdout.
 */
#include "base/cli.h"
#include "base/fsutil.h"
#include "base/progress.h"
#include "base/util.h"
#include "coreml/mlmodelc.h"
#include "coreml/mlpackage.h"

#include <math.h>
#include <spawn.h>    /* posix_spawnp: xcrun without a shell */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>

extern char **environ;

typedef struct options {
	const char *input, *output, *max_mb, *target;
	char **inputs; /* --input and the paths after it */
	uint64_t *bytes; /* weight.bin of each, once checked */
	int ninputs;
	double limit_mb;
} options;

static void parse_args(int argc, char **argv, options *o)
{
	*o = (options){.target = "ios"};
	const cli_opt opts[] = {
		{"input", "PKG...", CLI_STRING, &o->input, 1, 0, 0, "the .mlpackage(s) to compile (more paths may follow)"},
		{"output", "DIR", CLI_STRING, &o->output, 0, 0, 0, "directory for the .mlmodelc (default: beside each package)"},
		{"max-weight-mb", "MB", CLI_STRING, &o->max_mb, 0, 0, 0, "refuse a weight.bin above MB megabytes, decimals allowed (default 1024; 2048 with --target macos)"},
		{"target", "ios|macos", CLI_STRING, &o->target, 0, 0, 0, "device family, for the default weight limit (default ios)"},
	};
	const cli_spec spec = {
		.usage = "compile --input PKG.mlpackage [PKG.mlpackage...] [options]",
		.summary = "Compile each package to <name>.mlmodelc, refusing parts whose weight.bin is over the device limit.",
		.opts = opts,
		.nopts = (int)(sizeof opts / sizeof opts[0]),
		.epilog = "Uses `xcrun coremlcompiler compile` when present. Elsewhere anemake writes the layout itself: "
			  "coremldata.bin, metadata.json and analytics/coremldata.bin as Apple's compiler writes them in the "
			  "real compiled files of ../shared/reference/mlmodelc-real (tests compare against them). "
			  MLMODELC_SILENT " The .mlpackage stays the primary artifact: a device can always compile it.",
	};
	char **rest;
	int nrest;
	cli_parse(&spec, argc, argv, &rest, &nrest);
	if (!streq(o->target, "ios") && !streq(o->target, "macos"))
		die_usage("--target: '%s' is not ios or macos", o->target);
	o->limit_mb = streq(o->target, "macos") ? 2048 : 1024;
	char *end;
	if (o->max_mb && ((o->limit_mb = strtod(o->max_mb, &end)), end == o->max_mb || *end || !isfinite(o->limit_mb) ||
			  o->limit_mb < 0))
		die_usage("--max-weight-mb: '%s' is not a number of megabytes", o->max_mb);
	o->inputs = xcalloc((size_t)nrest + 2, sizeof *o->inputs);
	o->inputs[o->ninputs++] = (char *)o->input;
	for (int i = 0; i < nrest; i++)
		o->inputs[o->ninputs++] = rest[i];
	free(rest);
}

/* ------------------------------------------------------------------ */
/* The size check, before anything is written                          */

/* weight.bin's size of a valid package (dies naming it otherwise). */
static uint64_t weight_bytes(const char *path)
{
	mlpackage pkg;
	if (!has_suffix(path, ".mlpackage") && !has_suffix(path, ".mlpackage/"))
		die("'%s' is not a .mlpackage", path);
	if (mlpackage_open(path, &pkg) != 0)
		die_err();
	struct stat st;
	char *bin = pkg.weights_item ? xasprintf("%s/Data/%s/weight.bin", pkg.path, pkg.weights_item->path) : NULL;
	uint64_t n = bin && stat(bin, &st) == 0 ? (uint64_t)st.st_size : 0;
	free(bin);
	mlpackage_close(&pkg);
	return n;
}

/* One line: the part, its size, the limit, and what to do about it. */
static void report_too_big(const char *path, uint64_t bytes, const options *o)
{
	char *name = path_basename(path);
	double mb = (double)bytes / (1024.0 * 1024.0);
	const char *c = strstr(name, "_chunk_");
	int k, nchunks;
	/* a chunk (its _rot file too) splits further; a monolithic model cannot */
	char *fix = c && sscanf(c, "_chunk_%dof%d", &k, &nchunks) == 2 && nchunks > 0
			    ? xasprintf("convert with --chunk %d or more", (int)ceil(mb / o->limit_mb * nchunks))
		    : strstr(name, "_monolithic")
			    ? xstrdup("palettize it with a smaller --lut, or convert it chunked (not monolithic)")
			    : xstrdup("palettize it with a smaller --lut");
	fprintf(stderr, "%s: '%s': weight.bin is %llu bytes (%.2f MB), over the %g MB limit for %s: %s\n", progname(),
		name, (unsigned long long)bytes, mb, o->limit_mb, o->max_mb ? "--max-weight-mb" : o->target, fix);
	free(fix), free(name);
}

/* Every part's weight.bin size into o->bytes; their sum. */
static uint64_t check_sizes(options *o)
{
	int bad = 0;
	uint64_t total = 0;
	o->bytes = xcalloc((size_t)o->ninputs, sizeof *o->bytes);
	for (int i = 0; i < o->ninputs; i++) {
		uint64_t n = o->bytes[i] = weight_bytes(o->inputs[i]);
		if ((double)n > o->limit_mb * 1024.0 * 1024.0)
			report_too_big(o->inputs[i], n, o), bad++;
		total += n;
	}
	if (bad)
		exit(EXIT_DATA);
	return total;
}

/* ------------------------------------------------------------------ */
/* Apple's compiler                                                    */

/* Run argv with stdout sent to our stderr (our stdout lists outputs);
 * quiet: stderr to /dev/null too. Returns the exit status, -1 if it could
 * not run. */
static int run(char *const argv[], int quiet)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	if (quiet) {
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	} else {
		posix_spawn_file_actions_adddup2(&fa, 2, 1);
	}
	pid_t pid;
	int st, rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int have_coremlcompiler(void)
{
	char *argv[] = {"xcrun", "--find", "coremlcompiler", NULL};
	return run(argv, 1) == 0;
}

/* xcrun coremlcompiler compile X.mlpackage TMP, then TMP/X.mlmodelc -> out. */
static int compile_xcrun(const char *pkg, const char *out)
{
	char *tmp;
	if (tmpdir_create(out, &tmp) != 0)
		return -1;
	char *argv[] = {"xcrun", "coremlcompiler", "compile", (char *)pkg, tmp, NULL};
	char *name = path_basename(out), *made = path_join(tmp, name);
	int st = run(argv, 0), rc = 0;
	if (st != 0)
		rc = errf("xcrun coremlcompiler compile '%s' failed (exit %d)", pkg, st);
	else if (!is_dir(made))
		rc = errf("xcrun coremlcompiler compile '%s' did not write '%s'", pkg, made);
	else
		rc = tmpdir_commit(made, out);
	tmpdir_abort(tmp);
	free(tmp), free(name), free(made);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Each package                                                        */

static char *output_path(const options *o, const char *pkg)
{
	char *base = path_basename(pkg), *dir = o->output ? xstrdup(o->output) : xstrdup(pkg);
	base[strlen(base) - strlen(".mlpackage")] = 0;
	if (!o->output) { /* beside the package: its directory */
		char *end = dir + strlen(dir);
		while (end > dir && end[-1] == '/')
			*--end = 0;
		char *slash = strrchr(dir, '/');
		if (slash)
			slash[slash == dir] = 0;
		else
			strcpy(dir, ".");
	}
	char *file = xasprintf("%s.mlmodelc", base), *out = path_join(dir, file);
	free(base), free(dir), free(file);
	return out;
}

/* One short line per run; what is verified and what is not is in --help and the README. */
static void notice_own_layout(void)
{
	info(1, "notice: no Apple compiler here: the .mlmodelc layout is anemake's (what is verified: compile --help); "
		"the .mlpackage stays the primary artifact");
}

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	options o;
	parse_args(argc, argv, &o);
	uint64_t total = check_sizes(&o);
	int xcrun = have_coremlcompiler();
	if (!xcrun)
		notice_own_layout();
	if (o.output && mkdir_p(o.output) != 0)
		die_err();
	progress_begin("compile", "part", (uint64_t)o.ninputs, total);
	for (int i = 0; i < o.ninputs; i++) {
		char *out = output_path(&o, o.inputs[i]);
		if ((xcrun ? compile_xcrun(o.inputs[i], out) : mlmodelc_write(o.inputs[i], out)) != 0)
			die_err();
		printf("%s\n", out);
		free(out);
		progress_add(1, o.bytes[i]);
	}
	progress_end();
	if (stdout_close_checked() != 0)
		die_err();
	free(o.inputs), free(o.bytes);
	return 0;
}
