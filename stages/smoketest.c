/* smoketest: prove a conversion by running it.
 *
 * Loads the converted parts from a directory (embeddings, FFN/prefill chunks
 * or combined FFN_PF chunks, LM head) into the CPU runtime, runs a prompt of
 * token ids exactly as ANEMLL's chat.py does (full BATCH-sized prefill
 * blocks, the rest one token at a time through infer, then greedy decoding
 * whose first step runs the last prompt token again; past a Gemma 3 sliding
 * window the rotate functions: ours keep the local cache as a ring, so the
 * re-run is exact; ANEMLL's shift it twice and drift; smoke.h), feeds the
 * same tokens through the fp32 reference forward pass of the
 * source checkpoint, and compares them step by step: top-1 agreement, KL
 * divergence of the softmaxes, max |logit difference|. Exits 1 when the
 * comparison is worse than the thresholds (defaults: without LUT 100% top-1
 * agreement and mean KL < 0.01; with LUT ANEMLL's health gates, > 85% and
 * KL < 0.3). Optionally writes a JSON report, which includes the FP16
 * preflight (common/preflight.c) of the source model on the same prompt.
 */
#include "base/cli.h"
#include "base/fsutil.h"
#include "base/hash.h"
#include "base/progress.h"
#include "base/util.h"
#include "checkpoint/hfmodel.h"
#include "convert/stage.h"
#include "tokenizer/tokenizer.h"
#include "verify/preflight.h"
#include "verify/prompt.h"
#include "verify/reference.h"
#include "verify/smoke.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct options {
	const char *model, *dir, *meta, *prefix, *prompt, *text, *template, *json, *min_agree_s, *max_kl_s;
	const char *fp16_scale_arg, *clamp_arg;
	double fp16_scale, clamp;
	int steps, no_prefill, no_template, threads, lut_embed, lut_ffn, lut_lmhead, anemll_rope, compiled;
} options;

static void parse_args(int argc, char **argv, options *o)
{
	*o = (options){.steps = 8, .lut_embed = -1, .lut_ffn = -1, .lut_lmhead = -1};
	const cli_opt opts[] = {
		{"model", "DIR|ORG/NAME", CLI_STRING, &o->model, 1, 0, 0, "the source checkpoint (for the fp32 reference)"},
		{"meta", "FILE", CLI_STRING, &o->meta, 0, 0, 0, "meta.yaml of a conversion: find the parts as ANEMLL's runtimes do"},
		{"compiled", NULL, CLI_FLAG, &o->compiled, 0, 0, 0, "with --meta: run the .mlmodelc folders it names (what ANEMLL's Swift runtime loads), not the .mlpackage beside each"},
		{"dir", "DIR", CLI_STRING, &o->dir, 0, 0, 0, "or: directory holding the converted .mlpackage parts (before combine)"},
		{"prefix", "NAME", CLI_STRING, &o->prefix, 0, 0, 0, "file-name prefix of the parts (default: the only one there)"},
		{"lut-embeddings", "BITS", CLI_INT, &o->lut_embed, 0, 0, 8, "use the embeddings part with this LUT (0: none; default: the only one)"},
		{"lut-ffn", "BITS", CLI_INT, &o->lut_ffn, 0, 0, 8, "use the FFN chunks with this LUT (0: none)"},
		{"lut-lmhead", "BITS", CLI_INT, &o->lut_lmhead, 0, 0, 8, "use the LM head with this LUT (0: none)"},
		{"prompt", "IDS", CLI_STRING, &o->prompt, 0, 0, 0, "comma-separated token ids (default: the BOS token)"},
		{"text", "PROMPT", CLI_STRING, &o->text, 0, 0, 0, "a text prompt, tokenized with the model's tokenizer.json and chat template"},
		{"template", "NAME", CLI_STRING, &o->template, 0, 0, 0, "chat template for --text: a family (llama3, qwen3, gemma3, mistral-v3, phi3, granite3.1, tulu, smollm3, ...: a wrong name lists them) or none (default: the model's)"},
		{"no-template", NULL, CLI_FLAG, &o->no_template, 0, 0, 0, "tokenize --text as is (with BOS), no chat template"},
		{"steps", "N", CLI_INT, &o->steps, 0, 1, 100000, "tokens to generate (default 8)"},
		{"no-prefill", NULL, CLI_FLAG, &o->no_prefill, 0, 0, 0, "send the whole prompt through infer, one token at a time"},
		{"min-agreement", "PCT", CLI_STRING, &o->min_agree_s, 0, 0, 0, "fail below this top-1 agreement in percent (default 100, with LUT 85)"},
		{"max-kl", "X", CLI_STRING, &o->max_kl_s, 0, 0, 0, "fail above this mean KL divergence (default 0.01, with LUT 0.3)"},
		{"anemll-rope", NULL, CLI_FLAG, &o->anemll_rope, 0, 0, 0, "reference RoPE as ANEMLL 0.3.5 computes it (rope_theta x factor), to check packages ANEMLL wrote"},
		{"json", "FILE", CLI_STRING, &o->json, 0, 0, 0, "write a JSON report"},
		{"threads", "N", CLI_INT, &o->threads, 0, 0, 1024, "threads for the reference (default 0: all cores)"},
		{"fp16-scale", "ALPHA|auto", CLI_STRING, &o->fp16_scale_arg, 0, 0, 0, "the conversion's --fp16-scale, for the report's FP16 preflight section"},
		{"clamp", "V", CLI_STRING, &o->clamp_arg, 0, 0, 0, "the conversion's --clamp, for the report's FP16 preflight section"},
	};
	const cli_spec spec = {
		.usage = "smoketest --model DIR (--meta meta.yaml | --dir PARTS) [options]",
		.summary = "Run the converted parts on CPU as ANEMLL's chat.py does, beside the fp32 reference\n"
			   "forward pass of the source model, and compare them token by token.",
		.opts = opts,
		.nopts = (int)(sizeof opts / sizeof opts[0]),
	};
	cli_parse(&spec, argc, argv, NULL, NULL);
	if (!o->meta == !o->dir)
		die_usage("give --meta or --dir (one of them)");
	if (o->compiled && !o->meta)
		die_usage("--compiled goes with --meta");
	if (prompt_check_template(o->template) != 0)
		die_usage("%s", errmsg());
	if ((o->fp16_scale_arg && stage_fp16_scale(o->model, o->fp16_scale_arg, &o->fp16_scale) != 0) ||
	    (o->clamp_arg && stage_clamp(o->clamp_arg, &o->clamp) != 0))
		die_usage("%s", errmsg());
}

static double parse_number(const char *flag, const char *s, double def)
{
	if (!s)
		return def;
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || !isfinite(v) || v < 0)
		die_usage("--%s: '%s' is not a non-negative number", flag, s);
	return v;
}

static void print_text(const char *label, const tokenizer *tok, const int32_t *ids, int n)
{
	char *text;
	size_t len;
	if (!tok || tokenizer_decode(tok, ids, (size_t)n, TOK_SKIP_SPECIAL, &text, &len) != 0)
		return;
	printf("%s%.*s\n", label, (int)len, text);
	free(text);
}

static void print_ids(const char *label, const int32_t *ids, int n)
{
	printf("%s", label);
	for (int i = 0; i < n; i++)
		printf("%s%d", i ? "," : "", ids[i]);
	printf("\n");
}

/* The FP16 preflight on the prompt and step count of this run (its fp32
 * and fp16-emulated reference runs; no weight scan, no sweep): per-layer
 * peaks, overflowing layers, the alpha, whether fp16 works. */
static cJSON *preflight_section(const options *o, const hf_model *hf, const smoke_run *run)
{
	/* judged as converted: the same alpha and clamp as the conversion */
	pf_options po = {.tokens = o->steps, .threads = o->threads, .eos = -1, .fp16_scale = o->fp16_scale,
			 .clamp = o->clamp};
	pf_report r;
	pf_report_init(&r, hf, o->model, &po);
	if (pf_reference_fp16(&r, hf, run->tokens, run->nprompt, &po) != 0)
		die_err();
	pf_judge(&r);
	cJSON *j = pf_report_json_brief(&r);
	pf_report_release(&r);
	return j;
}

/* An argmax head gives tokens, not logits: only top-1 agreement can be
 * judged; KL and logit differences are NaN (null in the report). */
static void compare_tokens(const float *ref, const smoke_run *run, int vocab, smoke_metrics *m)
{
	*m = (smoke_metrics){.steps = run->nsteps, .first_disagreement = -1, .kl_mean = NAN, .kl_max = NAN,
			     .max_abs_diff = NAN};
	for (int s = 0; s < run->nsteps; s++) {
		if (smoke_argmax(ref + (size_t)s * (size_t)vocab, vocab) == run->tokens[run->nprompt + s])
			m->agree++;
		else if (m->first_disagreement < 0)
			m->first_disagreement = s;
	}
}

static void write_report(const char *path, const smoke_parts *p, const smoke_run *run, const float *ref,
			 const float *ref_hidden, const smoke_metrics *m, int passed, cJSON *preflight)
{
	cJSON *root = cJSON_CreateObject(), *steps = cJSON_AddArrayToObject(root, "steps");
	/* Names, not paths: the parts lie beside meta.yaml, and a report that
	 * users share should not carry where a folder was on this machine. */
	char *embed = path_basename(p->embed_path), *lmhead = path_basename(p->lmhead_path);
	cJSON_AddStringToObject(root, "embeddings", embed);
	cJSON_AddStringToObject(root, "lm_head", lmhead);
	free(embed), free(lmhead);
	cJSON_AddNumberToObject(root, "chunks", p->nchunks);
	cJSON_AddItemToObject(root, "prompt", cJSON_CreateIntArray(run->tokens, run->nprompt));
	cJSON_AddItemToObject(root, "generated", cJSON_CreateIntArray(run->tokens + run->nprompt, run->nsteps));
	for (int s = 0; run->logits && s < run->nsteps; s++) {
		const float *r = ref + (size_t)s * (size_t)p->vocab, *g = run->logits + (size_t)s * (size_t)p->vocab;
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "reference_top1", smoke_argmax(r, p->vocab));
		cJSON_AddNumberToObject(o, "top1", smoke_argmax(g, p->vocab));
		cJSON_AddNumberToObject(o, "kl", smoke_kl(r, g, p->vocab));
		double d = 0;
		for (int i = 0; i < p->vocab; i++)
			d = fmax(d, fabs((double)r[i] - (double)g[i]));
		cJSON_AddNumberToObject(o, "max_abs_logit_diff", d);
		if (p->hidden > 0) /* a monolithic model has no hidden-state output */
			cJSON_AddNumberToObject(o, "hidden_cosine",
						smoke_cosine(ref_hidden + (size_t)s * (size_t)p->hidden,
							     run->hidden + (size_t)s * (size_t)p->hidden, p->hidden));
		cJSON_AddItemToArray(steps, o);
	}
	if (run->logits) { /* the parts' logits, bit for bit: equal digests, identical runs */
		uint8_t digest[32];
		char hex[65];
		sha256(run->logits, sizeof(float) * (size_t)run->nsteps * (size_t)p->vocab, digest);
		sha256_hex(digest, hex);
		cJSON_AddStringToObject(root, "logits_sha256", hex);
	}
	cJSON_AddNumberToObject(root, "top1_agreement", m->steps ? (double)m->agree / m->steps : 0);
	cJSON_AddNumberToObject(root, "kl_mean", m->kl_mean);
	cJSON_AddNumberToObject(root, "kl_max", m->kl_max);
	cJSON_AddNumberToObject(root, "max_abs_logit_diff", m->max_abs_diff);
	int last = run->nsteps - 1;
	if (p->hidden > 0)
		cJSON_AddNumberToObject(root, "last_hidden_cosine",
					last < 0 ? 0 : smoke_cosine(ref_hidden + (size_t)last * (size_t)p->hidden,
								    run->hidden + (size_t)last * (size_t)p->hidden, p->hidden));
	cJSON_AddNumberToObject(root, "tokens_per_second", run->seconds > 0 ? run->nsteps / run->seconds : 0);
	cJSON_AddBoolToObject(root, "passed", passed);
	cJSON_AddItemToObject(root, "preflight", preflight);
	if (write_json_atomic(path, root) != 0)
		die_err();
}

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	options o;
	parse_args(argc, argv, &o);
	char *dir;
	hf_model hf;
	if (hf_model_resolve(o.model, &dir) != 0 || hf_model_open(&hf, dir) != 0)
		die_err();
	tokenizer *tok = NULL;
	char *tok_path = path_join(dir, "tokenizer.json");
	if (path_exists(tok_path) && tokenizer_load_dir(dir, &tok) != 0)
		die_err();
	free(tok_path);
	if (o.text && o.prompt)
		die_usage("give --text or --prompt, not both");
	if (o.text && !tok)
		die("--text: '%s' has no tokenizer.json", dir);
	int nprompt;
	int32_t *prompt;
	const prompt_spec ps = {.ids = o.prompt, .text = o.text, .template = o.template, .no_template = o.no_template};
	if (prompt_tokens(&ps, tok, &hf.cfg, &prompt, &nprompt) != 0)
		die_err();
	smoke_parts parts;
	const smoke_where where = {.meta = o.meta, .dir = o.dir, .prefix = o.prefix, .compiled = o.compiled,
				   .lut_embed = o.lut_embed, .lut_ffn = o.lut_ffn, .lut_lmhead = o.lut_lmhead};
	if (smoke_parts_open_where(&parts, &where, hf.cfg.vocab_size) != 0)
		die_err();
	int lut = parts.lut_bits > 0;
	double min_agree = parse_number("min-agreement", o.min_agree_s, lut ? 85 : 100);
	double max_kl = parse_number("max-kl", o.max_kl_s, lut ? 0.3 : 0.01);
	/* progress: each decode step of the parts and each position of the reference */
	progress_begin("runtime and reference", "token", (uint64_t)o.steps + (uint64_t)(nprompt + o.steps - 1), 0);
	ref_options ropt = {.context = parts.context, .threads = o.threads, .rope_anemll_compat = o.anemll_rope};
	ref_model *ref = ref_open(&hf, &ropt);
	if (!ref)
		die_err();
	float *ref_logits = xmalloc(sizeof(float) * (size_t)o.steps * (size_t)parts.vocab);
	float *ref_hidden = xmalloc(sizeof(float) * (size_t)o.steps * (size_t)parts.hidden);
	smoke_run run;
	if (smoke_generate_checked(&parts, prompt, nprompt, o.steps, !o.no_prefill, ref, ref_logits, parts.hidden,
				   ref_hidden, &run) != 0)
		die_err();
	progress_end();
	smoke_metrics m;
	if (parts.argmax_in_model)
		compare_tokens(ref_logits, &run, parts.vocab, &m);
	else
		smoke_compare(ref_logits, run.logits, run.nsteps, parts.vocab, &m);
	double agree = 100.0 * m.agree / m.steps;
	int passed = agree >= min_agree && (parts.argmax_in_model || m.kl_mean <= max_kl);
	print_ids("prompt:    ", run.tokens, run.nprompt);
	print_ids("generated: ", run.tokens + run.nprompt, run.nsteps);
	print_text("text:      ", tok, run.tokens, run.nprompt + run.nsteps);
	printf("parts: %s, context %d, batch %d%s\n", parts.chunk_desc, parts.context, parts.batch,
	       o.no_prefill ? ", prefill off" : "");
	char first[32] = "none";
	if (m.first_disagreement >= 0)
		snprintf(first, sizeof first, "step %d", m.first_disagreement);
	printf("top-1 agreement %.1f%% (%d/%d, first disagreement: %s), KL mean %.3g max %.3g, "
	       "max |logit diff| %.4g, %.1f tokens/s\n",
	       agree, m.agree, m.steps, first, m.kl_mean, m.kl_max, m.max_abs_diff,
	       run.seconds > 0 ? run.nsteps / run.seconds : 0.0);
	if (parts.argmax_in_model)
		printf("%s (threshold: agreement >= %g%%; an argmax head gives no logits: KL not judged)\n",
		       passed ? "PASS" : "FAIL", min_agree);
	else
		printf("%s (thresholds: agreement >= %g%%, KL mean <= %g)\n", passed ? "PASS" : "FAIL", min_agree,
		       max_kl);
	if (o.json)
		write_report(o.json, &parts, &run, ref_logits, ref_hidden, &m, passed, preflight_section(&o, &hf, &run));
	if (stdout_close_checked() != 0)
		die_err();
	free(ref_logits), free(ref_hidden), free(prompt), free(dir);
	ref_close(ref);
	smoke_run_release(&run);
	smoke_parts_close(&parts);
	hf_model_close(&hf);
	tokenizer_free(tok);
	return passed ? 0 : 1;
}
