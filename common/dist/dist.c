/* dist.c: see dist.h. */
#include "dist/dist.h"

#include "base/fsutil.h"
#include "base/progress.h"
#include "base/util.h"
#include "checkpoint/arch.h"
#include "dist/zipdir.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* prepare_hf.sh's prepare_common_files, in its order (tokenizer_config.json
 * is the one it copies unconditionally besides meta.yaml and tokenizer.json;
 * a SentencePiece-only checkpoint has tokenizer.model instead). */
static const char *const SUPPORT_FILES[] = {
	"tokenizer.json", "tokenizer_config.json", "tokenizer.model", "added_tokens.json", "special_tokens_map.json",
	"tokenizer_config_search.json", "generation_config.json", "preprocessor_config.json", "vocab.json",
	"merges.txt", "chat_template.jinja",
};

/* ------------------------------------------------------------------ */
/* The plan                                                            */

static int add_part(dist_plan *p, const char *file, const char *role, int chunk, int lut, int group,
		    double max_weight_mb)
{
	if (strchr(file, '/') || !has_suffix(file, ".mlmodelc") || streq(file, ".mlmodelc"))
		return errf("'%s/meta.yaml' names '%s', not a compiled <name>.mlmodelc beside it: compile the parts "
			    "(make compile) and regenerate meta.yaml", p->input, file);
	dist_part d = {.file = xstrdup(file), .path = path_join(p->input, file), .role = role, .chunk = chunk,
		       .lut = lut, .lut_group = group};
	p->parts = xrealloc(p->parts, (p->nparts + 1) * sizeof *p->parts);
	p->parts[p->nparts++] = d;
	if (!is_dir(d.path))
		return errf("'%s' is missing: meta.yaml names it (%s)", d.path, role);
	if (zipdir_size(d.path, &p->parts[p->nparts - 1].bytes) != 0)
		return -1;
	char *bin = path_join(d.path, "weights/weight.bin");
	struct stat st;
	uint64_t wb = stat(bin, &st) == 0 ? (uint64_t)st.st_size : 0;
	p->parts[p->nparts - 1].weight_bytes = wb;
	int rc = 0;
	if ((double)wb > max_weight_mb * 1024.0 * 1024.0)
		rc = errf("'%s': %llu bytes (%.2f MB), over the %g MB platform limit: the device cannot load it; "
			  "convert with more chunks or a smaller LUT", bin, (unsigned long long)wb,
			  (double)wb / (1024.0 * 1024.0), max_weight_mb);
	free(bin);
	return rc;
}

/* Chunk c's file from meta's chunk-1 name, as the runtimes derive it. */
static int add_chunk(dist_plan *p, const char *first, const char *role, int c, double max_mb)
{
	char *name = metayaml_chunk_name(first, c);
	if (!name)
		return errf("'%s/meta.yaml': %s", p->input, errmsg());
	int rc = add_part(p, name, role, c, p->meta.lut_ffn, p->meta.lut_ffn_per_channel, max_mb);
	free(name);
	return rc;
}

static int need(const dist_plan *p, const char *value, const char *key)
{
	return value ? 0 : errf("'%s/meta.yaml' has no parameters.%s: regenerate it with metagen", p->input, key);
}

static int plan_chunked(dist_plan *p, double max_mb)
{
	const metayaml *m = &p->meta;
	if (need(p, m->embeddings, "embeddings") || need(p, m->lm_head, "lm_head") || need(p, m->ffn, "ffn"))
		return -1;
	if (m->split_rotate == 1 && need(p, m->pf, "pf"))
		return -1;
	if (add_part(p, m->embeddings, "embeddings", 0, m->lut_embeddings, m->lut_embeddings_per_channel, max_mb))
		return -1;
	for (int c = 1; c <= m->num_chunks; c++) {
		if (add_chunk(p, m->ffn, "FFN chunk", c, max_mb) != 0)
			return -1;
		if (m->pf && add_chunk(p, m->pf, "rotate functions of FFN chunk", c, max_mb) != 0)
			return -1;
	}
	return add_part(p, m->lm_head, "LM head", 0, m->lut_lmhead, m->lut_lmhead_per_channel, max_mb);
}

static void find_files(dist_plan *p)
{
	size_t n = sizeof SUPPORT_FILES / sizeof SUPPORT_FILES[0];
	p->files = xcalloc(n, sizeof *p->files);
	for (size_t i = 0; i < n; i++) {
		char *path = path_join(p->input, SUPPORT_FILES[i]);
		if (path_exists(path))
			p->files[p->nfiles++] = xstrdup(SUPPORT_FILES[i]);
		free(path);
	}
}

int dist_plan_open(dist_plan *p, const char *input, const char *org, const char *name, double max_weight_mb)
{
	*p = (dist_plan){.input = xstrdup(input), .org = xstrdup(org)};
	metayaml_init(&p->meta);
	char *meta = path_join(input, "meta.yaml");
	int rc = !path_exists(meta) ? errf("'%s' has no meta.yaml: convert into it first (make meta)", input)
				    : metayaml_read(meta, &p->meta);
	free(meta);
	if (rc != 0)
		return -1;
	const metayaml *m = &p->meta;
	if (!name && (!m->name || !m->version))
		return errf("'%s/meta.yaml' has no model_info name and version to name the repository: give --name", input);
	p->name = name ? xstrdup(name) : xasprintf("%s_%s", m->name, m->version);
	if (metayaml_is_monolithic(m))
		rc = need(p, m->monolithic_model, "monolithic_model") ||
		     add_part(p, m->monolithic_model, "monolithic", 0, m->lut_bits, m->lut_per_channel, max_weight_mb);
	else
		rc = plan_chunked(p, max_weight_mb);
	if (rc != 0)
		return -1;
	find_files(p);
	char *tc = path_join(input, "tokenizer_config.json");
	if (!path_exists(tc))
		rc = errf("'%s' is missing: ANEMLL's runtimes load the tokenizer from it (metagen copies it from the model)",
			  tc);
	free(tc);
	return rc;
}

void dist_plan_close(dist_plan *p)
{
	for (size_t i = 0; i < p->nparts; i++)
		free(p->parts[i].file), free(p->parts[i].path);
	for (size_t i = 0; i < p->nfiles; i++)
		free(p->files[i]);
	free(p->parts), free(p->files), free(p->input), free(p->name), free(p->org);
	metayaml_release(&p->meta);
	*p = (dist_plan){0};
}

char *dist_config_json(const metayaml *m)
{
	const arch_info *a = m->architecture ? arch_by_name(m->architecture) : NULL;
	if (a && !a->anemll) {
		char *text = arch_tokenizer_config(a);
		text[strlen(text) - 1] = 0; /* json.dump's: no final newline */
		return text;
	}
	if (m->architecture && strncmp(m->architecture, "gemma", 5) == 0)
		return xstrdup("{\n  \"tokenizer_class\": \"GemmaTokenizer\",\n  \"model_type\": \"gemma\"\n}");
	return xstrdup("{\n  \"tokenizer_class\": \"LlamaTokenizer\",\n  \"model_type\": \"llama\"\n}");
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */

static int copy_into(const char *from_dir, const char *name, const char *to_dir)
{
	char *from = path_join(from_dir, name), *to = path_join(to_dir, name);
	int rc = file_copy(from, to);
	free(from), free(to);
	return rc;
}

static int write_in(const char *dir, const char *name, const char *text)
{
	char *path = path_join(dir, name);
	int rc = write_file_atomic(path, text, strlen(text));
	free(path);
	return rc;
}

/* ios/: the .mlmodelc as it is. A hard link when DIST is on the same file
 * system (no second copy of a multi-GB model; every writer of anemake
 * replaces files by rename, so the link never sees a later conversion). */
static int copy_tree(const char *from, const char *to)
{
	DIR *d = opendir(from);
	if (!d)
		return errf("cannot read directory '%s':", from);
	int rc = mkdir(to, 0755) != 0 ? errf("cannot create '%s':", to) : 0;
	struct dirent *de;
	while (rc == 0 && (errno = 0, de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		char *f = path_join(from, de->d_name), *t = path_join(to, de->d_name);
		struct stat st;
		if (lstat(f, &st) != 0)
			rc = errf("cannot stat '%s':", f);
		else if (S_ISDIR(st.st_mode))
			rc = copy_tree(f, t);
		else if (!S_ISREG(st.st_mode))
			rc = errf("'%s' is neither a regular file nor a directory: a compiled model holds only those", f);
		else
			rc = file_link_or_copy(f, t);
		free(f), free(t);
	}
	if (rc == 0 && errno != 0)
		rc = errf("cannot read directory '%s':", from);
	closedir(d);
	return rc;
}

/* meta.yaml, the support files and config.json into one layout. */
static int write_common(const dist_plan *p, const char *dir)
{
	int rc = copy_into(p->input, "meta.yaml", dir);
	for (size_t i = 0; rc == 0 && i < p->nfiles; i++)
		rc = copy_into(p->input, p->files[i], dir);
	char *config = dist_config_json(&p->meta);
	if (rc == 0)
		rc = write_in(dir, "config.json", config);
	free(config);
	return rc;
}

static int stage_parts(dist_plan *p, const dist_out *o, time_t mtime)
{
	uint64_t bytes = 0;
	for (size_t i = 0; i < p->nparts; i++)
		bytes += p->parts[i].bytes;
	progress_begin("packing", "part", p->nparts, bytes);
	int rc = 0;
	for (size_t i = 0; i < p->nparts && rc == 0; i++) {
		dist_part *d = &p->parts[i];
		char *zip = xasprintf("%s/%s.zip", o->standard_tmp, d->file), *dir = path_join(o->ios_tmp, d->file);
		info(1, "packing %s (%.1f MB)", d->file, (double)d->bytes / (1024.0 * 1024.0));
		rc = zipdir_write(d->path, zip, mtime, &d->zip_bytes);
		if (rc == 0)
			rc = copy_tree(d->path, dir);
		free(zip), free(dir);
		progress_add(1, d->bytes);
	}
	progress_end();
	return rc;
}

int dist_stage(dist_plan *p, const char *dist, time_t mtime, dist_out *o)
{
	*o = (dist_out){.standard = path_join(dist, "standard"), .ios = path_join(dist, "ios")};
	if (mkdir_p(dist) != 0)
		return -1;
	if (tmpdir_create(o->standard, &o->standard_tmp) != 0 || tmpdir_create(o->ios, &o->ios_tmp) != 0)
		return -1;
	if (write_common(p, o->standard_tmp) != 0 || write_common(p, o->ios_tmp) != 0 || stage_parts(p, o, mtime) != 0)
		return -1;
	return 0;
}

int dist_commit(dist_out *o, const char *card)
{
	if (write_in(o->standard_tmp, "README.md", card) != 0 || write_in(o->ios_tmp, "README.md", card) != 0)
		return -1;
	if (tmpdir_commit(o->standard_tmp, o->standard) != 0)
		return -1;
	free(o->standard_tmp), o->standard_tmp = NULL;
	if (tmpdir_commit(o->ios_tmp, o->ios) != 0)
		return -1;
	free(o->ios_tmp), o->ios_tmp = NULL;
	return 0;
}

void dist_out_release(dist_out *o)
{
	if (o->standard_tmp)
		tmpdir_abort(o->standard_tmp);
	if (o->ios_tmp)
		tmpdir_abort(o->ios_tmp);
	free(o->standard_tmp), free(o->ios_tmp), free(o->standard), free(o->ios);
	*o = (dist_out){0};
}
