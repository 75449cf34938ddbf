/* card.c: see card.h. */
#include "dist/card.h"

#include "base/fsutil.h"
#include "base/hash.h"
#include "base/util.h"
#include "checkpoint/hfmodel.h"
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* What the source model says about itself (each NULL when not found). */
typedef struct source_info {
	char *license, *license_name, *license_link;
	char **base_model;
	size_t nbase;
} source_info;

/* ------------------------------------------------------------------ */
/* The source model's card and config                                  */

static const char *scalar(yaml_document_t *d, yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static void add_base(source_info *s, const char *id)
{
	if (!id || !*id)
		return;
	s->base_model = xrealloc(s->base_model, (s->nbase + 1) * sizeof *s->base_model);
	s->base_model[s->nbase++] = xstrdup(id);
}

static void take_key(source_info *s, yaml_document_t *d, const char *key, yaml_node_t *v)
{
	char **dst = streq(key, "license") ? &s->license : streq(key, "license_name") ? &s->license_name
						    : streq(key, "license_link") ? &s->license_link : NULL;
	if (dst && scalar(d, v) && !*dst)
		*dst = xstrdup(scalar(d, v));
	if (!streq(key, "base_model") || s->nbase)
		return;
	if (scalar(d, v))
		add_base(s, scalar(d, v));
	else if (v && v->type == YAML_SEQUENCE_NODE)
		for (yaml_node_item_t *i = v->data.sequence.items.start; i < v->data.sequence.items.top; i++)
			add_base(s, scalar(d, yaml_document_get_node(d, *i)));
}

/* The YAML between the text's first two "---" lines: -1 when it is not
 * valid YAML (no front matter at all is fine: nothing to carry). */
static int parse_front_matter(source_info *s, const char *text, size_t n)
{
	if (n < 4 || memcmp(text, "---\n", 4) != 0)
		return 0;
	const char *end = NULL;
	for (size_t i = 3; !end && i + 4 <= n; i++)
		if (memcmp(text + i, "\n---", 4) == 0)
			end = text + i;
	if (!end)
		return 0;
	yaml_parser_t p;
	yaml_document_t d;
	if (!yaml_parser_initialize(&p))
		BUG("yaml_parser_initialize");
	yaml_parser_set_input_string(&p, (const unsigned char *)text + 4, (size_t)(end - text - 3));
	int rc = yaml_parser_load(&p, &d) ? 0 : -1;
	if (rc == 0) {
		yaml_node_t *root = yaml_document_get_root_node(&d);
		for (yaml_node_pair_t *kv = root && root->type == YAML_MAPPING_NODE ? root->data.mapping.pairs.start : NULL;
		     kv && kv < root->data.mapping.pairs.top; kv++) {
			const char *key = scalar(&d, yaml_document_get_node(&d, kv->key));
			if (key)
				take_key(s, &d, key, yaml_document_get_node(&d, kv->value));
		}
		yaml_document_delete(&d);
	}
	yaml_parser_delete(&p);
	return rc;
}

static void read_front_matter(source_info *s, const char *readme)
{
	char *text;
	size_t n;
	if (!path_exists(readme) || read_file(readme, FS_MAX_TEXT, &text, &n) != 0)
		return;
	if (parse_front_matter(s, text, n) != 0)
		warn("'%s': its front matter is not valid YAML: license and base_model not carried", readme);
	free(text);
}

static void read_source(source_info *s, const char *dir)
{
	*s = (source_info){0};
	if (!dir)
		return;
	char *readme = path_join(dir, "README.md"), *hub = hf_model_hub_id(dir);
	read_front_matter(s, readme);
	if (hub && hf_is_repo_id(hub)) { /* this conversion's own base, ahead of what the source derives from */
		for (size_t i = 0; i < s->nbase; i++)
			free(s->base_model[i]);
		s->nbase = 0;
		add_base(s, hub);
	} else if (!s->nbase) {
		char *id = hf_model_identity(dir);
		add_base(s, id);
		free(id);
	}
	free(readme), free(hub);
}

static void free_source(source_info *s)
{
	for (size_t i = 0; i < s->nbase; i++)
		free(s->base_model[i]);
	free(s->base_model), free(s->license), free(s->license_name), free(s->license_link);
}

/* ------------------------------------------------------------------ */
/* Reports                                                             */

static int read_json(const char *path, const char *what, cJSON **out)
{
	char *text;
	size_t n;
	*out = NULL;
	if (!path)
		return 0;
	if (read_file(path, FS_MAX_TEXT, &text, &n) != 0)
		return -1;
	*out = cJSON_ParseWithLength(text, n);
	free(text);
	if (!cJSON_IsObject(*out)) {
		cJSON_Delete(*out);
		return errf("'%s' is not a %s report (a JSON object)", path, what);
	}
	return 0;
}

static const cJSON *item(const cJSON *o, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* A number the report states, or NaN (absent or null: not measured). */
static double number(const cJSON *o, const char *key)
{
	const cJSON *v = item(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* 1 when the report's LM head (a file name) is one meta.yaml names. */
static int names_head(const cJSON *head, const dist_plan *p)
{
	const char *base = strrchr(head->valuestring, '/');
	base = base ? base + 1 : head->valuestring;
	for (size_t i = 0; i < p->nparts; i++) {
		size_t n = strlen(p->parts[i].file) - strlen(".mlmodelc");
		if (strncmp(base, p->parts[i].file, n) == 0 && (streq(base + n, ".mlmodelc") || streq(base + n, ".mlpackage")))
			return 1;
	}
	return 0;
}

static int check_smoketest(const cJSON *r, const char *path, const dist_plan *p)
{
	const cJSON *passed = item(r, "passed"), *head = item(r, "lm_head"), *gen = item(r, "generated");
	if (!cJSON_IsBool(passed) || !cJSON_IsString(head) || !cJSON_IsArray(gen) || !cJSON_IsArray(item(r, "prompt")) ||
	    !cJSON_IsNumber(item(r, "top1_agreement")))
		return errf("'%s' lacks passed, lm_head, prompt, generated or top1_agreement: not a smoketest report", path);
	if (names_head(head, p))
		return 0;
	const char *base = strrchr(head->valuestring, '/');
	base = base ? base + 1 : head->valuestring;
	return errf("'%s' tested '%s', which meta.yaml does not name: rerun the smoketest (make test)", path, base);
}

/* An eval report of these parts: -1 with errf() when it is none; one of an
 * earlier conversion in the same folder says nothing of this one, and the
 * report is optional: *r becomes NULL, with a warning. */
static int check_eval(cJSON **r, const char *path, const dist_plan *p)
{
	static const char *keys[] = {"lm_head", "text", "tokens", "windows", "context", "perplexity",
				     "reference_perplexity", "kl_mean", "top1_agreement"};
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
		if (!item(*r, keys[i]))
			return errf("'%s' lacks %s: not an eval report", path, keys[i]);
	const cJSON *head = item(*r, "lm_head"), *meta = item(*r, "meta_sha256");
	uint8_t digest[32];
	char hex[65] = "", *meta_path = path_join(p->input, "meta.yaml");
	if (sha256_file(meta_path, digest) == 0)
		sha256_hex(digest, hex);
	free(meta_path);
	if (cJSON_IsString(head) && names_head(head, p) && (!cJSON_IsString(meta) || streq(meta->valuestring, hex)))
		return 0;
	warn("'%s' measured an earlier conversion (meta.yaml changed since): the model card leaves it out; rerun make eval",
	     path);
	cJSON_Delete(*r);
	*r = NULL;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */

static void size_text(char *buf, size_t n, uint64_t bytes)
{
	double b = (double)bytes;
	if (b < 1024.0 * 1024.0)
		snprintf(buf, n, "%.1f KiB", b / 1024.0);
	else if (b < 1024.0 * 1024.0 * 1024.0)
		snprintf(buf, n, "%.1f MiB", b / (1024.0 * 1024.0));
	else
		snprintf(buf, n, "%.2f GiB", b / (1024.0 * 1024.0 * 1024.0));
}

/* ANEMLL's LUT spec: bits, bits,group (0: one LUT per tensor), or none. */
static void lut_text(char *buf, size_t n, int bits, int group)
{
	if (bits == META_ABSENT || bits == META_LUT_NONE)
		snprintf(buf, n, "none");
	else if (group == META_ABSENT)
		snprintf(buf, n, "%d", bits);
	else
		snprintf(buf, n, "%d,%d", bits, group);
}

static void lut_words(char *buf, size_t n, int bits, int group)
{
	if (bits == META_ABSENT || bits == META_LUT_NONE)
		snprintf(buf, n, "none (fp16)");
	else if (group == META_ABSENT)
		snprintf(buf, n, "%d-bit", bits);
	else if (group == 0)
		snprintf(buf, n, "%d-bit, one LUT per tensor", bits);
	else
		snprintf(buf, n, "%d-bit, one LUT per %d output channels", bits, group);
}

/* Length of the UTF-8 sequence at s and its code point (s is valid UTF-8:
 * libyaml checked it). */
static int utf8_next(const unsigned char *s, unsigned *cp)
{
	int n = s[0] < 0x80 ? 1 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
	*cp = n == 1 ? s[0] : s[0] & (0x3fu >> (n - 1));
	for (int i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) { /* not UTF-8 after all: one byte, escaped as \xNN */
			*cp = 0x80;
			return 1;
		}
		*cp = *cp << 6 | (s[i] & 0x3fu);
	}
	return n;
}

/* A YAML double-quoted scalar (the values come from another card): every
 * character YAML does not allow raw (controls, C1, BOM, U+FFFE/F) or would
 * fold as a line break (NEL, LS, PS) is escaped. */
static void yaml_quoted(FILE *f, const char *str)
{
	fputc('"', f);
	for (const unsigned char *s = (const unsigned char *)str; *s;) {
		unsigned cp;
		int n = utf8_next(s, &cp);
		if (cp == '"' || cp == '\\')
			fprintf(f, "\\%c", (int)cp);
		else if (cp == 0x85 || cp == 0x2028 || cp == 0x2029)
			fputs(cp == 0x85 ? "\\N" : cp == 0x2028 ? "\\L" : "\\P", f);
		else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			fprintf(f, "\\x%02x", n == 1 ? s[0] : cp);
		else if (cp == 0xfeff || cp == 0xfffe || cp == 0xffff)
			fprintf(f, "\\u%04x", cp);
		else
			fwrite(s, 1, (size_t)n, f);
		s += n;
	}
	fputc('"', f);
}

static void front_matter(FILE *f, const source_info *s, const metayaml *m)
{
	fputs("---\n", f);
	const char *keys[] = {"license", "license_name", "license_link"};
	const char *vals[] = {s->license, s->license_name, s->license_link};
	for (int i = 0; i < 3; i++)
		if (vals[i]) {
			fprintf(f, "%s: ", keys[i]);
			yaml_quoted(f, vals[i]);
			fputc('\n', f);
		}
	if (s->nbase) {
		fputs("base_model:\n", f);
		for (size_t i = 0; i < s->nbase; i++) {
			fputs("- ", f);
			yaml_quoted(f, s->base_model[i]);
			fputc('\n', f);
		}
	}
	fputs("library_name: coreml\npipeline_tag: text-generation\ntags:\n- coreml\n- anemll\n- ane\n"
	      "- apple-neural-engine\n", f);
	if (m->architecture) {
		fputs("- ", f);
		yaml_quoted(f, m->architecture);
		fputc('\n', f);
	}
	fputs("---\n", f);
}

static void row(FILE *f, const char *k, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void row(FILE *f, const char *k, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(f, "| %s | ", k);
	vfprintf(f, fmt, ap);
	fputs(" |\n", f);
	va_end(ap);
}

/* The make command that redoes this conversion (from meta.yaml's facts). */
static void make_flags(FILE *f, const metayaml *m)
{
	char a[32], b[32], c[32];
	fprintf(f, "    make MODEL=<the source model> CONTEXT=%d BATCH=%d", m->context_length, m->batch_size);
	if (metayaml_is_monolithic(m)) {
		lut_text(a, sizeof a, m->lut_bits, m->lut_per_channel);
		fprintf(f, " MONOLITHIC=1 LUT=%s", a);
		if (m->lut_embeddings != META_ABSENT)
			lut_text(b, sizeof b, m->lut_embeddings, m->lut_embeddings_per_channel), fprintf(f, " LUT_EMBED=%s", b);
		if (m->lut_lmhead != META_ABSENT)
			lut_text(c, sizeof c, m->lut_lmhead, m->lut_lmhead_per_channel), fprintf(f, " LUT_LMHEAD=%s", c);
	} else {
		lut_text(a, sizeof a, m->lut_embeddings, m->lut_embeddings_per_channel);
		lut_text(b, sizeof b, m->lut_ffn, m->lut_ffn_per_channel);
		lut_text(c, sizeof c, m->lut_lmhead, m->lut_lmhead_per_channel);
		fprintf(f, " LUT1=%s LUT2=%s LUT3=%s CHUNK=%d", streq(a, "none") ? "" : a, streq(b, "none") ? "" : b,
			streq(c, "none") ? "" : c, m->num_chunks);
		if (m->split_rotate == 1)
			fputs(" SPLIT_ROTATE=1", f);
	}
	if (m->argmax_in_model == 1)
		fputs(" ARGMAX=1", f);
	const char *scale = metayaml_comment(m, "fp16_scale"), *clamp = metayaml_comment(m, "clamp");
	if (scale)
		fprintf(f, " FP16_SCALE=%s", scale);
	if (clamp)
		fprintf(f, " CLAMP=%s", clamp);
	fputs("\n\n", f);
}

static void conversion(FILE *f, const dist_plan *p, const source_info *s)
{
	const metayaml *m = &p->meta;
	const char *converter = metayaml_comment(m, "converter");
	fprintf(f, "\n## Conversion\n\n| | |\n|---|---|\n");
	if (s->nbase)
		row(f, "source model", "[%s](https://huggingface.co/%s)", s->base_model[0], s->base_model[0]);
	row(f, "architecture", "%s", m->architecture ? m->architecture : "not recorded");
	if (metayaml_is_monolithic(m))
		row(f, "layout", "monolithic: one model with %zu functions", m->n_functions);
	else
		row(f, "layout", "%d FFN chunk%s%s", m->num_chunks, m->num_chunks == 1 ? "" : "s",
		    m->pf ? ", each in two files (split rotate)" : "");
	row(f, "context length", "%d", m->context_length);
	row(f, "prefill batch", "%d", m->batch_size);
	if (m->argmax_in_model == 1)
		row(f, "LM head", "argmax in the model (%d partial argmaxes)", m->split_lm_head);
	else if (m->split_lm_head != META_ABSENT)
		row(f, "LM head", "logits in %d parts", m->split_lm_head);
	if (m->vocab_size != META_ABSENT)
		row(f, "vocabulary", "%d", m->vocab_size);
	if (m->sliding_window != META_ABSENT)
		row(f, "sliding window", "%d", m->sliding_window);
	if (metayaml_comment(m, "fp16_scale"))
		row(f, "FP16 scale (alpha)", "%s", metayaml_comment(m, "fp16_scale"));
	if (metayaml_comment(m, "clamp"))
		row(f, "clamp", "%s", metayaml_comment(m, "clamp"));
	row(f, "converter", "%s, ANEMLL %s layout", converter ? converter : "not recorded", m->version ? m->version : "?");
	fputs("\nRedo it with anemake:\n\n", f);
	make_flags(f, m);
}

static void parts(FILE *f, const dist_plan *p)
{
	fputs("## Files\n\n| file | part | LUT | size | zipped (standard layout) |\n|---|---|---|---|---|\n", f);
	uint64_t total = 0, ztotal = 0;
	for (size_t i = 0; i < p->nparts; i++) {
		const dist_part *d = &p->parts[i];
		char lut[64], size[32], zsize[32], role[64];
		lut_words(lut, sizeof lut, d->lut, d->lut_group);
		size_text(size, sizeof size, d->bytes);
		size_text(zsize, sizeof zsize, d->zip_bytes);
		if (d->chunk)
			snprintf(role, sizeof role, "%s %d", d->role, d->chunk);
		else
			snprintf(role, sizeof role, "%s", d->role);
		fprintf(f, "| `%s` | %s | %s | %s | %s |\n", d->file, role, lut, size, zsize);
		total += d->bytes, ztotal += d->zip_bytes;
	}
	char size[32], zsize[32];
	size_text(size, sizeof size, total);
	size_text(zsize, sizeof zsize, ztotal);
	fprintf(f, "| total | | | %s | %s |\n\nAlso: `meta.yaml` (what the runtimes open)", size, zsize);
	for (size_t i = 0; i < p->nfiles; i++)
		fprintf(f, ", `%s`", p->files[i]);
	fputs(", `config.json` (for the iOS tokenizer).\n", f);
}

static void ids(FILE *f, const cJSON *a)
{
	const cJSON *v;
	int first = 1;
	cJSON_ArrayForEach(v, a) {
		fprintf(f, "%s%d", first ? "" : ", ", cJSON_IsNumber(v) ? v->valueint : -1);
		first = 0;
	}
}

/* A fence longer than any run of backticks in the text. */
static void fenced(FILE *f, const char *text)
{
	int run = 0, longest = 0;
	for (const char *c = text; *c; c++)
		run = *c == '`' ? run + 1 : 0, longest = run > longest ? run : longest;
	int n = longest < 3 ? 3 : longest + 1;
	for (int i = 0; i < n; i++)
		fputc('`', f);
	fprintf(f, "text\n%s\n", text);
	for (int i = 0; i < n; i++)
		fputc('`', f);
	fputc('\n', f);
}

/* The prompt and what the converted model generated, as text. */
static void decoded(FILE *f, const dist_plan *p, const cJSON *r)
{
	char *path = path_join(p->input, "tokenizer.json");
	tokenizer *tok = NULL;
	if (path_exists(path) && tokenizer_load_dir(p->input, &tok) == 0) {
		const cJSON *a[2] = {item(r, "prompt"), item(r, "generated")};
		size_t n = (size_t)cJSON_GetArraySize(a[0]) + (size_t)cJSON_GetArraySize(a[1]), k = 0;
		int32_t *t = xcalloc(n + 1, sizeof *t);
		for (int j = 0; j < 2; j++) {
			const cJSON *v;
			cJSON_ArrayForEach(v, a[j]) t[k++] = cJSON_IsNumber(v) ? v->valueint : -1;
		}
		char *text;
		if (tokenizer_decode(tok, t, n, TOK_SKIP_SPECIAL, &text, NULL) == 0) {
			fputs("\nThe prompt and the converted model's continuation, decoded:\n\n", f);
			fenced(f, text);
			free(text);
		}
		free(t);
	}
	tokenizer_free(tok);
	free(path);
}

static void quality(FILE *f, const dist_plan *p, const cJSON *r)
{
	fputs("\n## Measured quality\n\n", f);
	if (!r) {
		fputs("Not measured: no smoketest report came with this conversion, so nothing is claimed about its "
		      "output.\n", f);
		return;
	}
	int passed = cJSON_IsTrue(item(r, "passed")), steps = cJSON_GetArraySize(item(r, "generated"));
	double agree = number(r, "top1_agreement"), klm = number(r, "kl_mean"), klx = number(r, "kl_max");
	double diff = number(r, "max_abs_logit_diff");
	fputs("anemake's smoketest ran these parts as ANEMLL's `chat.py` calls them (prefill in full batches, then "
	      "greedy decoding), interpreted on CPU by anemake's runtime (not on the Neural Engine), and the "
	      "source checkpoint's fp32 forward pass on the same tokens, and compared them step by step:\n\n"
	      "| | |\n|---|---|\n", f);
	row(f, "result", "**%s**", passed ? "PASS" : "FAIL");
	fprintf(f, "| prompt | %d token%s: ", cJSON_GetArraySize(item(r, "prompt")),
		cJSON_GetArraySize(item(r, "prompt")) == 1 ? "" : "s");
	ids(f, item(r, "prompt"));
	fputs(" |\n", f);
	row(f, "decode steps", "%d", steps);
	row(f, "top-1 agreement with fp32", "%.1f%% (%.0f of %d steps)", 100 * agree, agree * steps, steps);
	if (isnan(klm))
		row(f, "KL divergence", "not measured: %s", p->meta.argmax_in_model == 1
			? "the LM head returns argmax tokens, not logits" : "the report states none");
	else
		row(f, "KL divergence (fp32 to converted)", "mean %.3g, max %.3g", klm, klx);
	if (!isnan(diff))
		row(f, "max \\|logit difference\\|", "%.4g", diff);
	decoded(f, p, r);
}

/* make eval's measurements over a whole text (perplexity needs logits: never an argmax head). */
static void evaluation(FILE *f, const cJSON *r)
{
	if (!r)
		return;
	double tokens = number(r, "tokens"), windows = number(r, "windows");
	fprintf(f, "\n## Perplexity\n\nanemake's eval ran the text `%s` (%.0f tokens, %.0f window%s of %.0f positions) "
		   "through these parts (CPU runtime, one token at a time through `infer` and the LM head) and through "
		   "the source checkpoint's fp32 forward pass, on the same tokens:\n\n"
		   "| | converted | fp32 reference |\n|---|---|---|\n",
		item(r, "text")->valuestring ? item(r, "text")->valuestring : "?", tokens, windows, windows == 1 ? "" : "s",
		number(r, "context"));
	fprintf(f, "| perplexity | %.4f | %.4f |\n", number(r, "perplexity"), number(r, "reference_perplexity"));
	fprintf(f, "| KL divergence (fp32 to converted), mean per token | %.3g | |\n", number(r, "kl_mean"));
	fprintf(f, "| top-1 agreement with fp32 | %.2f%% | |\n", 100 * number(r, "top1_agreement"));
}

static const char *yes_no(const cJSON *v)
{
	return cJSON_IsTrue(v) ? "yes" : cJSON_IsFalse(v) ? "no" : "not stated";
}

static void preflight(FILE *f, const cJSON *pf, const cJSON *smoke)
{
	const cJSON *brief = smoke ? item(smoke, "preflight") : NULL;
	if (!pf && !cJSON_IsObject(brief))
		return;
	fputs("\n## FP16 range\n\n", f);
	if (pf) {
		fputs("anemake's preflight (ANEMLL's fp16_preflight) of the source model:\n\n| | |\n|---|---|\n", f);
		row(f, "ANE compatible", "%s (score %.2g)", yes_no(item(pf, "ane_compatible")), number(pf, "compatibility_score"));
		row(f, "fp16 works", "%s", yes_no(item(pf, "fp16_works")));
		row(f, "fp16 weights with fp32 compute work", "%s", yes_no(item(pf, "fp16_to_fp32_works")));
		if (!isnan(number(pf, "recommended_fp16_scale")))
			row(f, "recommended FP16 scale", "%.6g", number(pf, "recommended_fp16_scale"));
		if (cJSON_IsString(item(pf, "fp16_first_nan_layer")))
			row(f, "first layer with NaN in fp16", "`%s`", item(pf, "fp16_first_nan_layer")->valuestring);
	}
	if (cJSON_IsObject(brief)) {
		int over = cJSON_GetArraySize(item(brief, "fp16_overflow_layers"));
		fprintf(f, "%sOn the smoketest's prompt, an fp16 emulation of the source model with this conversion's "
			"scale and clamp %s (%d layer%s beyond the fp16 range).\n", pf ? "\n" : "",
			cJSON_IsTrue(item(brief, "fp16_works")) ? "stays finite" : "overflows", over, over == 1 ? "" : "s");
	}
}

static void how_to_run(FILE *f, const dist_plan *p)
{
	const char *org = p->org, *name = p->name;
	fprintf(f, "\n## How to run\n\n"
		   "Download it and unzip the parts beside `meta.yaml`:\n\n"
		   "    hf download %s/%s --local-dir %s\n"
		   "    cd %s && for z in *.mlmodelc.zip; do unzip -q -o \"$z\"; done\n\n"
		   "With ANEMLL's `chat.py` (macOS 15 or later, Python with coremltools 9 and transformers; "
		   "`tests/chat.py` of https://github.com/Anemll/Anemll):\n\n"
		   "    python chat.py --meta ./meta.yaml\n\n"
		   "With ANEMLL's Swift CLI (`anemll-swift-cli` in the same repository):\n\n"
		   "    swift run -c release anemllcli --meta <this folder>/meta.yaml --prompt \"Hello\"\n\n"
		   "In the ANEMLL Chat app (iOS, macOS): add the model by its URL, https://huggingface.co/%s/%s. "
		   "iOS loads the parts unzipped: the `ios` layout of this distribution has them so, with `config.json` "
		   "for the offline tokenizer.\n",
		org, name, name, name, org, name);
	if (p->meta.pf)
		fputs("\nThis conversion keeps each chunk's rotate functions in a second `_rot` file (split rotate), "
		      "which ANEMLL 0.3.5's Swift runtime (the CLI and the app) does not load: use `chat.py`.\n", f);
}

char *card_front_matter(const char *readme, size_t n, const char *architecture)
{
	source_info src = {0};
	metayaml m;
	metayaml_init(&m);
	m.architecture = (char *)architecture;
	if (parse_front_matter(&src, readme, n) != 0) {
		free_source(&src);
		src = (source_info){0};
	}
	char *text;
	size_t len;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		die("open_memstream:");
	front_matter(f, &src, &m);
	if (fclose(f) != 0)
		die("writing the front matter:");
	free_source(&src);
	return text;
}

int card_reports(card_input *in, const char *smoketest, const char *preflight, const char *eval)
{
	in->smoketest = in->preflight = in->eval = NULL;
	if (read_json(smoketest, "smoketest", &in->smoketest) != 0 || read_json(preflight, "preflight", &in->preflight) != 0 ||
	    (in->smoketest && check_smoketest(in->smoketest, smoketest, in->plan) != 0) ||
	    read_json(eval, "eval", &in->eval) != 0 ||
	    (in->eval && check_eval(&in->eval, eval, in->plan) != 0)) {
		card_input_release(in);
		return -1;
	}
	return 0;
}

void card_input_release(card_input *in)
{
	cJSON_Delete(in->smoketest), cJSON_Delete(in->preflight), cJSON_Delete(in->eval);
	in->smoketest = in->preflight = in->eval = NULL;
}

void dist_card(const card_input *in, char **text)
{
	const dist_plan *p = in->plan;
	source_info s;
	read_source(&s, in->model_dir);
	size_t len;
	FILE *f = open_memstream(text, &len);
	if (!f)
		die("open_memstream:");
	front_matter(f, &s, &p->meta);
	fprintf(f, "# %s\n\n%s converted for the Apple Neural Engine in ANEMLL's layout: the files ANEMLL's "
		   "`chat.py`, its Swift CLI and the ANEMLL Chat app load, found through `meta.yaml`.\n",
		p->name, s.nbase ? s.base_model[0] : p->meta.name ? p->meta.name : "A model");
	conversion(f, p, &s);
	parts(f, p);
	quality(f, p, in->smoketest);
	evaluation(f, in->eval);
	preflight(f, in->preflight, in->smoketest);
	how_to_run(f, p);
	if (fclose(f) != 0)
		die("writing the model card:");
	free_source(&s);
}
