/* combine: merge single-function packages into ANEMLL's multifunction
 * packages, as ANEMLL's combine_models.py.
 *
 * Chunked (default), in --input DIR, for each chunk i of N:
 *   <p>_FFN[_lut<b>]_chunk_<ii>of<NN>.mlpackage      function main -> infer
 *   <p>_prefill[_lut<b>]_chunk_<ii>of<NN>.mlpackage  function main -> prefill
 *   and, when both exist (Gemma 3), <p>_FFN_rotate... -> infer_rotate and
 *   <p>_prefill_rotate... -> prefill_rotate
 * give <p>_FFN_PF[_lut<b>]_chunk_<ii>of<NN>.mlpackage with functions
 * infer[, infer_rotate], prefill[, prefill_rotate], default infer.
 * --split-rotate (ANEMLL's, for models too large for 4 functions in one
 * file) writes two files per chunk instead: the FFN_PF one with infer and
 * prefill, and <...>_chunk_<ii>of<NN>_rot.mlpackage with infer_rotate and
 * prefill_rotate, default infer_rotate (its first function, as ANEMLL's
 * save_multifunction call makes it).
 * --monolithic: <p>_monolithic[_lut<b>] -> infer, <p>_monolithic_prefill
 * -> prefill (+ <p>_monolithic_rotate -> infer_rotate and
 * <p>_monolithic_prefill_rotate -> prefill_rotate when present) give
 * <p>_monolithic_full[_lut<b>].mlpackage, default infer.
 *
 * Every output has one shared state declaration and ANEMLL's combined
 * metadata. Its weight.bin stores each distinct blob once (common/combine.h),
 * so it is about the size of one source alone (up to ~1 GB per chunk). The
 * sources are kept: make treats them as cached intermediates. Written
 * package paths go to stdout, the bytes saved to stderr.
 */
#include "coreml/combine.h"
#include "anemll/anemll.h"
#include "base/cli.h"
#include "base/fsutil.h"
#include "base/util.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct options {
	const char *input, *output, *prefix, *lut;
	int chunks, chunk_no, keep_sources, split_rotate, monolithic;
} options;

static void parse_args(int argc, char **argv, options *o)
{
	*o = (options){0};
	const cli_opt opts[] = {
		{"input", "DIR", CLI_STRING, &o->input, 1, 0, 0, "directory holding the packages to combine"},
		{"output", "DIR", CLI_STRING, &o->output, 0, 0, 0, "directory for the combined packages (default: --input; created if missing)"},
		{"prefix", "NAME", CLI_STRING, &o->prefix, 0, 0, 0, "file-name prefix (default: the only one in --input)"},
		{"lut", "BITS", CLI_STRING, &o->lut, 0, 0, 0, "LUT bits in the file names, BITS[,GROUP] or none (default: the only variant present)"},
		{"chunk", "N", CLI_INT, &o->chunks, 0, 1, 1024, "number of chunks (default: from the file names)"},
		{"chunk-no", "K", CLI_INT, &o->chunk_no, 0, 1, 1024, "combine only chunk K (1-based; default: every chunk)"},
		{"split-rotate", NULL, CLI_FLAG, &o->split_rotate, 0, 0, 0, "two files per chunk: FFN_PF (infer, prefill) and FFN_PF..._rot (infer_rotate, prefill_rotate)"},
		{"monolithic", NULL, CLI_FLAG, &o->monolithic, 0, 0, 0, "combine <prefix>_monolithic[_prefill][_rotate] into <prefix>_monolithic_full[_lut<b>]"},
		{"keep-sources", NULL, CLI_FLAG, &o->keep_sources, 0, 0, 0, "keep the source packages (always done; accepted for scripts)"},
	};
	const cli_spec spec = {
		.usage = "combine --input DIR [options]",
		.summary = "Merge <prefix>_FFN and <prefix>_prefill chunk packages (+ the _rotate ones of Gemma 3) into\n"
			   "<prefix>_FFN_PF[_lut<b>]_chunk_<ii>of<NN>.mlpackage, or the monolithic parts into\n"
			   "<prefix>_monolithic_full[_lut<b>].mlpackage (identical weights stored once), as ANEMLL's\n"
			   "combine_models.py.",
		.opts = opts,
		.nopts = (int)(sizeof opts / sizeof opts[0]),
	};
	cli_parse(&spec, argc, argv, NULL, NULL);
	if (o->chunks && o->chunk_no > o->chunks)
		die_usage("--chunk-no %d is beyond --chunk %d", o->chunk_no, o->chunks);
	if (o->monolithic && (o->chunks || o->chunk_no))
		die_usage("--monolithic: a monolithic model has no chunks (--chunk/--chunk-no)");
	if (o->monolithic && o->split_rotate)
		die_usage("--split-rotate applies to chunked models only, not with --monolithic");
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
/* Finding the source packages                                         */

/* What the first source of every output is called: it names the prefix,
 * the LUT and the chunk count. */
typedef struct layout {
	const char *marker;  /* "_FFN" or "_monolithic" */
	int chunked;
	const char *pattern; /* for messages: "_FFN%s_chunk_<ii>of<NN>" */
} layout;

static const layout CHUNKED = {"_FFN", 1, "_FFN%s_chunk_<ii>of<NN>"};
static const layout MONOLITHIC = {"_monolithic", 0, "_monolithic%s"};

typedef struct src_file {
	char *prefix;
	int lut, nchunks;
} src_file;

typedef struct src_list {
	src_file *v;
	size_t n, cap;
} src_list;

/* "<prefix><marker>[_lut<b>][_chunk_<ii>of<NN>].mlpackage" -> prefix, lut, NN. */
static int parse_name(const layout *lay, const char *file, src_file *f)
{
	size_t mlen = strlen(lay->marker);
	for (const char *at = strstr(file, lay->marker); at; at = strstr(at + 1, lay->marker)) {
		const char *rest = at + mlen;
		int lut = 0, chunk, n = 0, used = 0;
		if (sscanf(rest, "_lut%d%n", &lut, &used) == 1)
			rest += used;
		used = 0;
		if (lay->chunked && sscanf(rest, "_chunk_%dof%d%n", &chunk, &n, &used) != 2)
			continue;
		if (at == file || !streq(rest + used, ".mlpackage"))
			continue;
		*f = (src_file){xstrndup(file, (size_t)(at - file)), lut, n};
		return 1;
	}
	return 0;
}

static void list_sources(const char *dir, const layout *lay, src_list *l)
{
	DIR *d = opendir(dir);
	if (!d)
		die("cannot open directory '%s':", dir);
	for (struct dirent *e; (e = readdir(d));) {
		src_file f;
		if (!parse_name(lay, e->d_name, &f))
			continue;
		GROW(l->v, l->cap, l->n + 1);
		l->v[l->n++] = f;
	}
	closedir(d);
}

static void die_none(const options *o, const layout *lay, const char *prefix, const char *lut_part)
{
	char *what = xasprintf(lay->pattern, lut_part);
	die("'%s': no %s%s.mlpackage to combine", o->input, prefix, what);
}

/* The only prefix among the source files. */
static const char *only_prefix(const options *o, const layout *lay, const src_list *l)
{
	const char *seen = NULL, *kind = lay->chunked ? "FFN chunks" : "monolithic parts";
	for (size_t i = 0; i < l->n; i++) {
		if (seen && !streq(seen, l->v[i].prefix))
			die("'%s' holds %s of prefixes '%s' and '%s': say which with --prefix", o->input, kind, seen,
			    l->v[i].prefix);
		seen = l->v[i].prefix;
	}
	if (!seen)
		die_none(o, lay, "<prefix>", "[_lut<b>]");
	return seen;
}

/* Which prefix, LUT and chunk count to combine: the options, else the only
 * value present among the source files. */
static void choose(const options *o, const layout *lay, const src_list *l, const char **prefix, int *lut, int *nchunks)
{
	*prefix = o->prefix ? o->prefix : only_prefix(o, lay, l);
	const char *kind = lay->chunked ? "FFN chunks" : "monolithic parts";
	int want = o->lut ? parse_lut_bits(o->lut) : -1, lut_seen = -1, n_seen = 0, found = 0;
	for (size_t i = 0; i < l->n; i++) {
		const src_file *f = &l->v[i];
		if (!streq(f->prefix, *prefix) || (want >= 0 && f->lut != want) || (o->chunks && f->nchunks != o->chunks))
			continue;
		if (want < 0 && lut_seen >= 0 && f->lut != lut_seen)
			die("'%s' holds %s with LUT %d and %d: say which with --lut", o->input, kind, lut_seen, f->lut);
		if (!o->chunks && found && f->nchunks != n_seen)
			die("'%s' holds FFN chunks for %d and %d chunks: say which with --chunk", o->input, n_seen, f->nchunks);
		lut_seen = f->lut, n_seen = f->nchunks, found = 1;
	}
	/* With --lut (and --chunk) given, a missing file is named later, by plan_*. */
	if (!found && (want < 0 || (lay->chunked && !o->chunks))) {
		char lut_part[16] = "[_lut<b>]";
		if (want >= 0)
			snprintf(lut_part, sizeof lut_part, want ? "_lut%d" : "%.0d", want);
		die_none(o, lay, *prefix, lut_part);
	}
	*lut = want >= 0 ? want : lut_seen;
	*nchunks = o->chunks ? o->chunks : n_seen;
}

/* ------------------------------------------------------------------ */
/* What to write                                                       */

typedef struct job {
	char *out;                 /* the combined package */
	char *pkg[4];              /* sources, in function order */
	combine_source src[4];
	size_t n;
} job;

typedef struct job_list {
	job *v;
	size_t n, cap;
} job_list;

static char *package_path(const char *dir, const char *prefix, const char *part, int lut, int k, int nchunks,
			  const char *suffix)
{
	char *base = anemll_part_name(prefix, part, lut, k, nchunks);
	char *file = xasprintf("%s%s.mlpackage", base, suffix), *path = path_join(dir, file);
	free(base), free(file);
	return path;
}

static job *job_new(job_list *l, char *out)
{
	GROW(l->v, l->cap, l->n + 1);
	job *j = &l->v[l->n++];
	*j = (job){.out = out};
	return j;
}

static void job_add(job *j, char *path, const char *target)
{
	j->pkg[j->n] = path;
	j->src[j->n] = (combine_source){path, NULL, target};
	j->n++;
}

/* Gemma 3 parts (context > sliding window) come with a rotate pair. */
static int has_rotate(const char *a, const char *b)
{
	return path_exists(a) || path_exists(b);
}

/* The output(s) of chunk k. */
static void plan_chunk(const options *o, const char *prefix, int lut, int k, int nchunks, job_list *jobs)
{
	char *ffn = package_path(o->input, prefix, "FFN", lut, k, nchunks, "");
	char *pre = package_path(o->input, prefix, "prefill", lut, k, nchunks, "");
	char *rot_ffn = package_path(o->input, prefix, "FFN_rotate", lut, k, nchunks, "");
	char *rot_pre = package_path(o->input, prefix, "prefill_rotate", lut, k, nchunks, "");
	job *j = job_new(jobs, package_path(o->output, prefix, "FFN_PF", lut, k, nchunks, ""));
	job_add(j, ffn, "infer");
	if (o->split_rotate) {
		job_add(j, pre, "prefill");
		j = job_new(jobs, package_path(o->output, prefix, "FFN_PF", lut, k, nchunks, "_rot"));
		job_add(j, rot_ffn, "infer_rotate");
		job_add(j, rot_pre, "prefill_rotate");
	} else if (has_rotate(rot_ffn, rot_pre)) {
		job_add(j, rot_ffn, "infer_rotate");
		job_add(j, pre, "prefill");
		job_add(j, rot_pre, "prefill_rotate");
	} else {
		job_add(j, pre, "prefill");
		free(rot_ffn), free(rot_pre);
	}
}

static void plan_monolithic(const options *o, const char *prefix, int lut, job_list *jobs)
{
	char *rot = package_path(o->input, prefix, "monolithic_rotate", lut, 0, 0, "");
	char *rot_pre = package_path(o->input, prefix, "monolithic_prefill_rotate", lut, 0, 0, "");
	job *j = job_new(jobs, package_path(o->output, prefix, "monolithic_full", lut, 0, 0, ""));
	job_add(j, package_path(o->input, prefix, "monolithic", lut, 0, 0, ""), "infer");
	int rotate = has_rotate(rot, rot_pre);
	if (rotate)
		job_add(j, rot, "infer_rotate");
	job_add(j, package_path(o->input, prefix, "monolithic_prefill", lut, 0, 0, ""), "prefill");
	if (rotate)
		job_add(j, rot_pre, "prefill_rotate");
	else
		free(rot), free(rot_pre);
}

/* Every source must be there before anything is written. */
static void check_sources(const job_list *jobs)
{
	for (size_t i = 0; i < jobs->n; i++)
		for (size_t s = 0; s < jobs->v[i].n; s++)
			if (!is_dir(jobs->v[i].pkg[s]))
				die("missing source package '%s'", jobs->v[i].pkg[s]);
}

static void run_job(job *j)
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

static void plan_all(const options *o, job_list *jobs)
{
	const layout *lay = o->monolithic ? &MONOLITHIC : &CHUNKED;
	src_list l = {0};
	list_sources(o->input, lay, &l);
	const char *prefix;
	int lut, nchunks;
	choose(o, lay, &l, &prefix, &lut, &nchunks);
	if (o->monolithic) {
		plan_monolithic(o, prefix, lut, jobs);
	} else {
		if (o->chunk_no > nchunks)
			die("--chunk-no %d is beyond the %d chunks of '%s'", o->chunk_no, nchunks, o->input);
		int first = o->chunk_no ? o->chunk_no : 1, last = o->chunk_no ? o->chunk_no : nchunks;
		for (int k = first; k <= last; k++)
			plan_chunk(o, prefix, lut, k, nchunks, jobs);
	}
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i].prefix);
	free(l.v);
}

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	options o;
	parse_args(argc, argv, &o);
	job_list jobs = {0};
	plan_all(&o, &jobs);
	check_sources(&jobs);
	if (mkdir_p(o.output) != 0)
		die_err();
	for (size_t i = 0; i < jobs.n; i++)
		run_job(&jobs.v[i]);
	if (stdout_close_checked() != 0)
		die_err();
	free(jobs.v);
	return 0;
}
