/* eval: how well a conversion predicts a text, against the fp32 reference.
 *
 * Reads a plain-text file, tokenizes it with the model's tokenizer.json (as
 * is: no chat template), and runs it in windows of the context length
 * through the converted parts (CPU runtime, one position at a time through
 * infer and the LM head, as chat.py decodes) and through the fp32
 * reference forward pass of the source checkpoint, on the same tokens
 * (verify/evaluate.h). Reports the perplexity of each, the mean KL
 * divergence of the reference's next-token distribution to the parts', and
 * their top-1 agreement, as a table and optionally a JSON report whose
 * bytes depend only on the inputs (no times, no paths of this machine).
 * --table prints several such reports (variants of one conversion measured
 * on the same text) in one table; --check only checks the text (make's
 * plan runs it before converting).
 */
#include "anemll/metayaml.h"
#include "base/cli.h"
#include "base/fsutil.h"
#include "base/hash.h"
#include "base/util.h"
#include "checkpoint/hfmodel.h"
#include "tokenizer/tokenizer.h"
#include "verify/evaluate.h"
#include "verify/reference.h"
#include "verify/smoke.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct options {
	const char *model, *meta, *dir, *prefix, *text, *json, *label;
	int compiled, threads, check, table;
	char **reports;
	int nreports;
} options;

static void parse_args(int argc, char **argv, options *o)
{
	*o = (options){0};
	const cli_opt opts[] = {
		{"model", "DIR|ORG/NAME", CLI_STRING, &o->model, 0, 0, 0, "the source checkpoint (its tokenizer and the fp32 reference)"},
		{"text-file", "FILE", CLI_STRING, &o->text, 0, 0, 0, "the evaluation text (UTF-8 plain text)"},
		{"meta", "FILE", CLI_STRING, &o->meta, 0, 0, 0, "meta.yaml of a conversion: find the parts as ANEMLL's runtimes do"},
		{"compiled", NULL, CLI_FLAG, &o->compiled, 0, 0, 0, "with --meta: run the .mlmodelc folders it names, not the .mlpackage beside each"},
		{"dir", "DIR", CLI_STRING, &o->dir, 0, 0, 0, "or: directory holding the converted .mlpackage parts"},
		{"prefix", "NAME", CLI_STRING, &o->prefix, 0, 0, 0, "with --dir: file-name prefix of the parts (default: the only one there)"},
		{"json", "FILE", CLI_STRING, &o->json, 0, 0, 0, "write the JSON report"},
		{"label", "NAME", CLI_STRING, &o->label, 0, 0, 0, "the variant's name in tables (default: the folder of the parts)"},
		{"threads", "N", CLI_INT, &o->threads, 0, 0, 1024, "threads for the reference (default 0: all cores)"},
		{"check", NULL, CLI_FLAG, &o->check, 0, 0, 0, "only check that the text is one to evaluate on (readable, enough tokens)"},
		{"table", NULL, CLI_FLAG, &o->table, 0, 0, 0, "print the reports given as arguments (eval.json files) in one table"},
	};
	const cli_spec spec = {
		.usage = "eval --model DIR --text-file FILE (--meta meta.yaml | --dir PARTS) [options]\n"
			 "       eval --model DIR --text-file FILE --check\n"
			 "       eval --table REPORT...",
		.summary = "Run a text through the converted parts on CPU and through the fp32 reference forward pass of\n"
			   "the source model, in windows of the context length, and report both perplexities, the mean\n"
			   "KL divergence of the reference to the parts and their top-1 agreement.",
		.opts = opts,
		.nopts = (int)(sizeof opts / sizeof opts[0]),
	};
	cli_parse(&spec, argc, argv, &o->reports, &o->nreports);
	if (o->table) {
		if (!o->nreports)
			die_usage("--table needs the reports to print");
		return;
	}
	if (o->nreports)
		die_usage("unexpected argument '%s' (reports go with --table)", o->reports[0]);
	if (!o->model || !o->text)
		die_usage("give --model and --text-file");
	if (!o->check && !o->meta == !o->dir)
		die_usage("give --meta or --dir (one of them)");
	if (o->compiled && !o->meta)
		die_usage("--compiled goes with --meta");
	if (o->prefix && !o->dir)
		die_usage("--prefix goes with --dir");
}

/* ------------------------------------------------------------------ */
/* The text                                                            */

typedef struct text_ids {
	int32_t *ids; /* without BOS */
	size_t n;
	char sha[65]; /* of the file's bytes */
} text_ids;

/* Read and tokenize the text: refused when it is not text or has too few tokens to measure. */
static int read_text(const char *path, const tokenizer *tok, int has_bos, text_ids *t)
{
	char *text;
	size_t len;
	if (read_file(path, FS_MAX_TEXT, &text, &len) != 0)
		return errf("--text-file: %s", errmsg());
	uint8_t digest[32];
	sha256(text, len, digest);
	sha256_hex(digest, t->sha);
	const char *nul = memchr(text, 0, len);
	int rc = 0;
	if (len == 0)
		rc = errf("--text-file: '%s': empty", path);
	else if (nul)
		rc = errf("--text-file: '%s': not plain text (a NUL byte at offset %zu)", path, (size_t)(nul - text));
	else if (tokenizer_encode(tok, text, len, TOK_NO_ADD_SPECIAL | TOK_SPLIT_SPECIAL, &t->ids, &t->n) != 0)
		rc = errf("--text-file: '%s': %s", path, errmsg());
	else if (eval_scored_tokens(t->n, has_bos) < EVAL_MIN_TOKENS)
		rc = errf("--text-file: '%s': %zu token%s, an evaluation needs at least %d", path, t->n,
			  t->n == 1 ? "" : "s", EVAL_MIN_TOKENS + !has_bos);
	free(text);
	return rc;
}

/* The BOS id each window starts with, or -1: config.json's, else the tokenizer's. */
static int32_t bos_id(const hf_config *cfg, const tokenizer *tok)
{
	if (cfg->bos_token_id >= 0 && cfg->bos_token_id < cfg->vocab_size)
		return cfg->bos_token_id;
	int32_t b = tokenizer_bos_id(tok);
	return b >= 0 && b < cfg->vocab_size ? b : -1;
}

/* ------------------------------------------------------------------ */
/* Reports                                                             */

/* Six significant digits: what a measurement over a few thousand tokens can
 * tell, and bytes that last digits of libm's exp/log do not change. */
static void add_measure(cJSON *r, const char *key, double v)
{
	char buf[32];
	snprintf(buf, sizeof buf, "%.6g", v);
	cJSON_AddNumberToObject(r, key, strtod(buf, NULL));
}

static cJSON *report(const options *o, const hf_model *hf, const smoke_parts *p, const text_ids *t,
		     const eval_stats *s)
{
	cJSON *r = cJSON_CreateObject();
	char *label = o->label ? xstrdup(o->label) : NULL;
	if (!label) { /* the folder's name, not its path: reports are shared */
		char *d = o->meta ? metayaml_dir(o->meta) : xstrdup(o->dir), *abs = realpath(d, NULL);
		label = path_basename(abs ? abs : d);
		free(d), free(abs);
	}
	char *id = hf_model_identity(hf->dir), *model = id ? id : path_basename(hf->dir);
	char *text = path_basename(o->text), *embed = path_basename(p->embed_path), *head = path_basename(p->lmhead_path);
	cJSON_AddStringToObject(r, "label", label);
	cJSON_AddStringToObject(r, "model", model);
	cJSON_AddStringToObject(r, "text", text);
	cJSON_AddStringToObject(r, "text_sha256", t->sha);
	cJSON_AddStringToObject(r, "embeddings", embed);
	cJSON_AddStringToObject(r, "lm_head", head);
	cJSON_AddNumberToObject(r, "chunks", p->nchunks);
	cJSON_AddNumberToObject(r, "lut_ffn", p->lut_bits);
	cJSON_AddNumberToObject(r, "weight_bytes", (double)p->weight_bytes);
	if (o->meta) { /* which conversion was measured: dist leaves out a report of an older one */
		uint8_t digest[32];
		char hex[65];
		if (sha256_file(o->meta, digest) != 0)
			die_err();
		sha256_hex(digest, hex);
		cJSON_AddStringToObject(r, "meta_sha256", hex);
	}
	cJSON_AddNumberToObject(r, "context", s->context);
	cJSON_AddNumberToObject(r, "windows", (double)s->windows);
	cJSON_AddNumberToObject(r, "tokens", (double)s->tokens);
	add_measure(r, "perplexity", eval_perplexity(s->nll, s->tokens));
	add_measure(r, "reference_perplexity", eval_perplexity(s->ref_nll, s->tokens));
	add_measure(r, "kl_mean", s->tokens ? s->kl / (double)s->tokens : NAN);
	add_measure(r, "kl_max", s->kl_max);
	add_measure(r, "top1_agreement", s->tokens ? (double)s->agree / (double)s->tokens : NAN);
	free(label), free(model), free(text), free(embed), free(head);
	return r;
}

static const char *report_keys[] = {"label", "text", "text_sha256", "model", "weight_bytes", "context", "windows",
				    "tokens", "perplexity", "reference_perplexity", "kl_mean", "top1_agreement"};

static cJSON *read_report(const char *path)
{
	char *text;
	size_t n;
	if (read_file(path, FS_MAX_TEXT, &text, &n) != 0)
		die("%s: evaluate that conversion first (make ... OUT=<its folder> EVAL=<text> eval)", errmsg());
	cJSON *r = cJSON_ParseWithLength(text, n);
	free(text);
	for (size_t i = 0; cJSON_IsObject(r) && i < sizeof report_keys / sizeof *report_keys; i++)
		if (!cJSON_GetObjectItemCaseSensitive(r, report_keys[i]))
			die("'%s' has no %s: not an eval report", path, report_keys[i]);
	if (!cJSON_IsObject(r))
		die("'%s' is not an eval report (a JSON object)", path);
	return r;
}

static double num(const cJSON *r, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, key);
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *str(const cJSON *r, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, key);
	return cJSON_IsString(v) ? v->valuestring : "?";
}

/* Rows of one text and one model only: other numbers would not compare. */
static void check_comparable(cJSON **r, char **paths, int n)
{
	for (int i = 1; i < n; i++) {
		if (strcmp(str(r[i], "text_sha256"), str(r[0], "text_sha256")) != 0)
			die("'%s' measured another text than '%s' (%s, not %s): evaluate both on the same EVAL", paths[i],
			    paths[0], str(r[i], "text"), str(r[0], "text"));
		if (strcmp(str(r[i], "model"), str(r[0], "model")) != 0 || num(r[i], "context") != num(r[0], "context"))
			die("'%s' measured %s at context %g, '%s' %s at context %g: not comparable", paths[i], str(r[i], "model"),
			    num(r[i], "context"), paths[0], str(r[0], "model"), num(r[0], "context"));
	}
}

static void print_table(cJSON **r, int n)
{
	printf("%s: %.0f tokens in %.0f window%s of %.0f, %s\n", str(r[0], "text"), num(r[0], "tokens"),
	       num(r[0], "windows"), num(r[0], "windows") == 1 ? "" : "s", num(r[0], "context"), str(r[0], "model"));
	int w = 7;
	for (int i = 0; i < n; i++)
		w = (int)strlen(str(r[i], "label")) > w ? (int)strlen(str(r[i], "label")) : w;
	printf("%-*s  %12s  %9s  %9s  %9s  %7s\n", w, "variant", "weight bytes", "PPL", "fp32 PPL", "KL mean", "top-1");
	for (int i = 0; i < n; i++)
		printf("%-*s  %12.0f  %9.4f  %9.4f  %9.3g  %6.2f%%\n", w, str(r[i], "label"), num(r[i], "weight_bytes"),
		       num(r[i], "perplexity"), num(r[i], "reference_perplexity"), num(r[i], "kl_mean"),
		       100 * num(r[i], "top1_agreement"));
}

static void print_reports(char **paths, int n)
{
	cJSON **r = xcalloc((size_t)n, sizeof *r);
	for (int i = 0; i < n; i++)
		r[i] = read_report(paths[i]);
	check_comparable(r, paths, n);
	print_table(r, n);
	for (int i = 0; i < n; i++)
		cJSON_Delete(r[i]);
	free(r);
	if (stdout_close_checked() != 0)
		die_err();
}

/* ------------------------------------------------------------------ */

static void open_parts(const options *o, const hf_config *cfg, smoke_parts *p)
{
	const smoke_where where = {.meta = o->meta, .dir = o->dir, .prefix = o->prefix, .compiled = o->compiled,
				   .lut_embed = -1, .lut_ffn = -1, .lut_lmhead = -1};
	if (smoke_parts_open_where(p, &where, cfg->vocab_size) != 0)
		die_err();
	if (p->argmax_in_model)
		die("%s: the LM head gives argmax tokens, not logits: evaluate a conversion without ARGMAX", p->lmhead_path);
}

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	options o;
	parse_args(argc, argv, &o);
	if (o.table) {
		print_reports(o.reports, o.nreports);
		free(o.reports);
		return 0;
	}
	char *dir;
	hf_model hf;
	tokenizer *tok;
	if (hf_model_resolve(o.model, &dir) != 0 || hf_model_open(&hf, dir) != 0)
		die_err();
	char *tok_path = path_join(dir, "tokenizer.json");
	if (!path_exists(tok_path))
		die("--text-file: '%s' has no tokenizer.json to read the text with", dir);
	if (tokenizer_load_dir(dir, &tok) != 0)
		die_err();
	int32_t bos = bos_id(&hf.cfg, tok);
	text_ids t = {0};
	if (read_text(o.text, tok, bos >= 0, &t) != 0)
		die_err();
	if (!o.check) {
		smoke_parts parts;
		open_parts(&o, &hf.cfg, &parts);
		ref_options ropt = {.context = parts.context, .threads = o.threads};
		ref_model *ref = ref_open(&hf, &ropt);
		eval_stats s;
		if (!ref || eval_text(&parts, ref, t.ids, t.n, bos, &s) != 0)
			die_err();
		cJSON *r = report(&o, &hf, &parts, &t, &s);
		if (g_verbosity > 0)
			print_table(&r, 1);
		if (o.json ? write_json_atomic(o.json, r) != 0 : (cJSON_Delete(r), 0))
			die_err();
		ref_close(ref);
		smoke_parts_close(&parts);
	}
	if (stdout_close_checked() != 0)
		die_err();
	free(t.ids), free(tok_path), free(dir), free(o.reports);
	hf_model_close(&hf);
	tokenizer_free(tok);
	return 0;
}
