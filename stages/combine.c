/* combine: merge each chunk's FFN and prefill packages into one
 * multifunction package, ANEMLL's combine_models.py (chunked mode).
 *
 * Input, in --input DIR, for each chunk i of N:
 *   <p>_FFN[_lut<b>]_chunk_<ii>of<NN>.mlpackage      function main -> infer
 *   <p>_prefill[_lut<b>]_chunk_<ii>of<NN>.mlpackage  function main -> prefill
 *   and, when both exist (Gemma 3), <p>_FFN_rotate... -> infer_rotate and
 *   <p>_prefill_rotate... -> prefill_rotate
 * Output, in --output DIR: <p>_FFN_PF[_lut<b>]_chunk_<ii>of<NN>.mlpackage
 * with functions infer[, infer_rotate], prefill[, prefill_rotate], default
 * infer, one shared state declaration and ANEMLL's combined metadata. Its
 * weight.bin stores each distinct blob once (common/combine.h), so it is
 * about the size of the FFN one alone (up to ~1 GB per chunk). The sources
 * are kept: make treats them as cached intermediates. Written package paths
 * go to stdout, the bytes saved to stderr.
 */
#include "anemll.h"
#include "cli.h"
#include "combine.h"
#include "fsutil.h"
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct options {
	const char *input, *output, *prefix, *lut;
	int chunks, chunk_no, keep_sources;
} options;

static void parse_args(int argc, char **argv, options *o)
{
	*o = (options){0};
	const cli_opt opts[] = {
		{"input", "DIR", CLI_STRING, &o->input, 1, 0, 0, "directory holding the FFN and prefill chunk packages"},
		{"output", "DIR", CLI_STRING, &o->output, 0, 0, 0, "directory for the combined packages (default: --input; created if missing)"},
		{"prefix", "NAME", CLI_STRING, &o->prefix, 0, 0, 0, "file-name prefix (default: the only one in --input)"},
		{"lut", "BITS", CLI_STRING, &o->lut, 0, 0, 0, "LUT bits in the file names, BITS[,GROUP] or none (default: the only variant present)"},
		{"chunk", "N", CLI_INT, &o->chunks, 0, 1, 1024, "number of chunks (default: from the file names)"},
		{"chunk-no", "K", CLI_INT, &o->chunk_no, 0, 1, 1024, "combine only chunk K (1-based; default: every chunk)"},
		{"keep-sources", NULL, CLI_FLAG, &o->keep_sources, 0, 0, 0, "keep the FFN and prefill packages (always done; accepted for scripts)"},
	};
	const cli_spec spec = {
		.usage = "combine --input DIR [options]",
		.summary = "Merge <prefix>_FFN and <prefix>_prefill chunk packages into <prefix>_FFN_PF[_lut<b>]_chunk_<ii>of<NN>"
			   ".mlpackage (functions infer and prefill, identical weights stored once), as ANEMLL's combine_models.py.",
		.opts = opts,
		.nopts = (int)(sizeof opts / sizeof opts[0]),
	};
	cli_parse(&spec, argc, argv, NULL, NULL);
	if (o->chunks && o->chunk_no > o->chunks)
		die_usage("--chunk-no %d is beyond --chunk %d", o->chunk_no, o->chunks);
	if (!o->output)
		o->output = o->input;
}

/* --lut SPEC: only the bits matter for names; "none" (or 0) is no LUT. */
static int parse_lut_bits(const char *s)
{
	if (!*s || streq(s, "none") || streq(s, "no") || streq(s, "false") || streq(s, "0"))
		return 0;
	char *end;
	long b = strtol(s, &end, 10);
	if (!isdigit((unsigned char)*s) || (*end && *end != ',') || b < 1 || b > 8)
		die_usage("--lut: '%s' is not BITS[,GROUP] with BITS 1..8, or none", s);
	return (int)b;
}

/* ------------------------------------------------------------------ */
/* Finding the chunk packages                                          */

typedef struct ffn_file {
	char *prefix;
	int lut, nchunks;
} ffn_file;

typedef struct ffn_list {
	ffn_file *v;
	size_t n, cap;
} ffn_list;

/* "<prefix>_FFN[_lut<b>]_chunk_<ii>of<NN>.mlpackage" -> prefix, lut, NN. */
static int parse_ffn_name(const char *file, ffn_file *f)
{
	for (const char *at = strstr(file, "_FFN"); at; at = strstr(at + 1, "_FFN")) {
		const char *rest = at + 4;
		int lut = 0, chunk, n, used = 0;
		if (sscanf(rest, "_lut%d%n", &lut, &used) == 1)
			rest += used;
		used = 0;
		if (at == file || sscanf(rest, "_chunk_%dof%d%n", &chunk, &n, &used) != 2 || !streq(rest + used, ".mlpackage"))
			continue;
		*f = (ffn_file){xstrndup(file, (size_t)(at - file)), lut, n};
		return 1;
	}
	return 0;
}

static void list_ffn(const char *dir, ffn_list *l)
{
	DIR *d = opendir(dir);
	if (!d)
		die("cannot open directory '%s':", dir);
	for (struct dirent *e; (e = readdir(d));) {
		ffn_file f;
		if (!parse_ffn_name(e->d_name, &f))
			continue;
		GROW(l->v, l->cap, l->n + 1);
		l->v[l->n++] = f;
	}
	closedir(d);
}

/* The only prefix among the FFN chunk files. */
static const char *only_prefix(const options *o, const ffn_list *l)
{
	const char *seen = NULL;
	for (size_t i = 0; i < l->n; i++) {
		if (seen && !streq(seen, l->v[i].prefix))
			die("'%s' holds FFN chunks of prefixes '%s' and '%s': say which with --prefix", o->input, seen,
			    l->v[i].prefix);
		seen = l->v[i].prefix;
	}
	if (!seen)
		die("'%s': no <prefix>_FFN[_lut<b>]_chunk_<ii>of<NN>.mlpackage to combine", o->input);
	return seen;
}

/* Which prefix, LUT and chunk count to combine: the options, else the only
 * value present among the FFN chunk files. */
static void choose(const options *o, const ffn_list *l, const char **prefix, int *lut, int *nchunks)
{
	*prefix = o->prefix ? o->prefix : only_prefix(o, l);
	int want = o->lut ? parse_lut_bits(o->lut) : -1, lut_seen = -1, n_seen = 0;
	for (size_t i = 0; i < l->n; i++) {
		const ffn_file *f = &l->v[i];
		if (!streq(f->prefix, *prefix) || (want >= 0 && f->lut != want) || (o->chunks && f->nchunks != o->chunks))
			continue;
		if (want < 0 && lut_seen >= 0 && f->lut != lut_seen)
			die("'%s' holds FFN chunks with LUT %d and %d: say which with --lut", o->input, lut_seen, f->lut);
		if (!o->chunks && n_seen && f->nchunks != n_seen)
			die("'%s' holds FFN chunks for %d and %d chunks: say which with --chunk", o->input, n_seen, f->nchunks);
		lut_seen = f->lut, n_seen = f->nchunks;
	}
	/* With --lut and --chunk given, a missing file is named later, by plan_chunk. */
	if (!n_seen && (want < 0 || !o->chunks)) {
		char lut_part[16] = "[_lut<b>]";
		if (want >= 0)
			snprintf(lut_part, sizeof lut_part, want ? "_lut%d" : "%.0d", want);
		die("'%s': no %s_FFN%s_chunk_<ii>of<NN>.mlpackage to combine", o->input, *prefix, lut_part);
	}
	*lut = want >= 0 ? want : lut_seen;
	*nchunks = o->chunks ? o->chunks : n_seen;
}

/* ------------------------------------------------------------------ */
/* One chunk                                                           */

typedef struct chunk_job {
	char *out;                 /* the combined package */
	char *pkg[4];              /* sources, in function order */
	combine_source src[4];
	size_t n;
} chunk_job;

static char *package_path(const char *dir, const char *prefix, const char *part, int lut, int k, int nchunks)
{
	char *base = anemll_part_name(prefix, part, lut, k, nchunks);
	char *file = xasprintf("%s.mlpackage", base), *path = path_join(dir, file);
	free(base), free(file);
	return path;
}

static void job_add(chunk_job *j, char *path, const char *target)
{
	j->pkg[j->n] = path;
	j->src[j->n] = (combine_source){path, NULL, target};
	j->n++;
}

/* The sources of chunk k, checked to exist before anything is written. */
static void plan_chunk(const options *o, const char *prefix, int lut, int k, int nchunks, chunk_job *j)
{
	*j = (chunk_job){.out = package_path(o->output, prefix, "FFN_PF", lut, k, nchunks)};
	char *rot_ffn = package_path(o->input, prefix, "FFN_rotate", lut, k, nchunks);
	char *rot_pre = package_path(o->input, prefix, "prefill_rotate", lut, k, nchunks);
	int rotate = path_exists(rot_ffn) || path_exists(rot_pre);
	job_add(j, package_path(o->input, prefix, "FFN", lut, k, nchunks), "infer");
	if (rotate)
		job_add(j, rot_ffn, "infer_rotate");
	job_add(j, package_path(o->input, prefix, "prefill", lut, k, nchunks), "prefill");
	if (rotate)
		job_add(j, rot_pre, "prefill_rotate");
	else
		free(rot_ffn), free(rot_pre);
	for (size_t i = 0; i < j->n; i++)
		if (!is_dir(j->pkg[i]))
			die("missing source package '%s'", j->pkg[i]);
}

static void run_chunk(chunk_job *j)
{
	combine_stats st;
	if (combine_packages(j->out, j->src, j->n, &st) != 0)
		die_err();
	long long saved = (long long)st.source_bytes - (long long)st.combined_bytes;
	info(1, "%s: %zu functions, weight.bin %llu bytes (%u distinct blobs of %u references); sources %llu bytes: "
		"saved %lld bytes (%.1f%%)",
	     j->out, j->n, (unsigned long long)st.combined_bytes, st.blobs_written, st.blob_refs,
	     (unsigned long long)st.source_bytes, saved, st.source_bytes ? 100.0 * (double)saved / (double)st.source_bytes : 0.0);
	printf("%s\n", j->out);
	free(j->out);
	for (size_t i = 0; i < j->n; i++)
		free(j->pkg[i]);
}

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	options o;
	parse_args(argc, argv, &o);
	ffn_list l = {0};
	list_ffn(o.input, &l);
	const char *prefix;
	int lut, nchunks;
	choose(&o, &l, &prefix, &lut, &nchunks);
	if (o.chunk_no > nchunks)
		die("--chunk-no %d is beyond the %d chunks of '%s'", o.chunk_no, nchunks, o.input);
	if (mkdir_p(o.output) != 0)
		die_err();
	chunk_job *jobs = xcalloc((size_t)nchunks, sizeof *jobs);
	int first = o.chunk_no ? o.chunk_no : 1, last = o.chunk_no ? o.chunk_no : nchunks;
	for (int k = first; k <= last; k++)
		plan_chunk(&o, prefix, lut, k, nchunks, &jobs[k - 1]);
	for (int k = first; k <= last; k++)
		run_chunk(&jobs[k - 1]);
	if (stdout_close_checked() != 0)
		die_err();
	free(jobs);
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i].prefix);
	free(l.v);
	return 0;
}
