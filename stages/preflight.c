/* preflight: will this model overflow fp16 on the Neural Engine?
 *
 * ANEMLL's FP16 preflight (anemll-interface.md 9) on the fp32 reference
 * instead of PyTorch: checks the weights, runs the prompt and a greedy
 * continuation in fp32 and again with fp16 activations (as converted: with
 * --fp16-scale and --clamp), reports the per-layer peak |x| of the residual
 * stream, the layers that exceed 65504 and the alpha that would fix them
 * (50000 / peak, as ANEMLL), and optionally sweeps clamp values. Exit 0 when
 * the model is fp16 compatible as converted, 1 when it would overflow (or on
 * bad input), 2 on a usage error. The logic is common/preflight.c, which the
 * smoketest runs too.
 */
#include "verify/preflight.h"
#include "base/cli.h"
#include "base/fsutil.h"
#include "base/util.h"
#include "convert/stage.h"
#include "tokenizer/tokenizer.h"
#include "verify/prompt.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TEXT "Explain quantum computing in simple terms." /* ANEMLL's --prompt */

typedef struct options {
	stage_opts st; /* --model, --fp16-scale, --clamp, --threads */
	prompt_spec prompt;
	const char *json;
	int tokens, context, sweep;
} options;

static void parse_args(int argc, char **argv, options *o)
{
	*o = (options){.tokens = 30};
	stage_opts_init(&o->st);
	const cli_opt opts[] = {
		STAGE_OPT_MODEL(&o->st),
		{"text", "PROMPT", CLI_STRING, &o->prompt.text, 0, 0, 0, "the prompt, in the model's chat template (default \"" DEFAULT_TEXT "\")"},
		{"prompt", "IDS", CLI_STRING, &o->prompt.ids, 0, 0, 0, "or: comma-separated token ids (a model without tokenizer.json)"},
		{"template", "NAME", CLI_STRING, &o->prompt.template, 0, 0, 0, "chat template for --text: a family (llama3, qwen3, gemma3, mistral-v3, phi3, granite3.1, tulu, smollm3, ...: a wrong name lists them) or none (default: the model's)"},
		{"no-template", NULL, CLI_FLAG, &o->prompt.no_template, 0, 0, 0, "tokenize --text as is (with BOS), no chat template"},
		{"tokens", "N", CLI_INT, &o->tokens, 0, 1, 100000, "greedy tokens generated after the prompt (default 30, ANEMLL's --max-tokens)"},
		STAGE_OPT_FP16_SCALE(&o->st, "check the model as converted with this scaling"),
		STAGE_OPT_CLAMP(&o->st, "check the model as converted with the residual clamped at +-V, V in (0, 65504]"),
		{"sweep", NULL, CLI_FLAG, &o->sweep, 0, 0, 0, "also run ANEMLL's clamp sweep: clamps 65000..20000 (step 5000), each scored by its token match rate"},
		{"context", "N", CLI_INT, &o->context, 0, 1, 1 << 20, "KV-cache length of the reference (default: prompt + tokens)"},
		{"json", "PATH", CLI_STRING, &o->json, 0, 0, 0, "write the report (ANEMLL's fp16_preflight keys) to PATH"},
		{"threads", "N", CLI_INT, &o->st.threads, 0, 0, 1024, "threads for the reference (default 0: all cores); results do not depend on it"},
	};
	const cli_spec spec = {
		.usage = "preflight --model DIR|ORG/NAME [options]",
		.summary = "Check that a model stays within fp16 range as the Neural Engine runs it: run a prompt\n"
			   "through the fp32 reference and through an fp16 emulation, report the per-layer peak\n"
			   "|activation| of the residual stream, the layers over 65504 and the --fp16-scale alpha\n"
			   "that would fix them (50000 / peak), like ANEMLL's fp16_preflight.sh.",
		.opts = opts,
		.nopts = (int)(sizeof opts / sizeof opts[0]),
		.epilog = "Exit status: 0 fp16 compatible as converted (with --fp16-scale/--clamp), 1 the fp16 model\n"
			  "would overflow, or bad input (one line), 2 usage error. stdout: the per-layer table;\n"
			  "stderr: a summary (peak layer, first overflow, recommended alpha).",
	};
	cli_parse(&spec, argc, argv, NULL, NULL);
	if (o->prompt.text && o->prompt.ids)
		die_usage("give --text or --prompt, not both");
	if (prompt_check_template(o->prompt.template) != 0)
		die_usage("%s", errmsg());
}

/* The prompt: --prompt ids, else --text (default ANEMLL's) with the tokenizer. */
static int32_t *load_prompt(options *o, const hf_model *hf, tokenizer **tok, int *n)
{
	char *path = path_join(hf->dir, "tokenizer.json");
	if (path_exists(path) && tokenizer_load_dir(hf->dir, tok) != 0)
		die_err();
	free(path);
	if (!o->prompt.ids && !o->prompt.text) {
		if (!*tok)
			die("'%s' has no tokenizer.json: give the prompt as --prompt IDS", hf->dir);
		o->prompt.text = DEFAULT_TEXT;
	}
	if (o->prompt.text && !*tok)
		die("--text: '%s' has no tokenizer.json", hf->dir);
	int32_t *ids;
	if (prompt_tokens(&o->prompt, *tok, &hf->cfg, &ids, n) != 0)
		die_err();
	return ids;
}

/* ANEMLL stops at the tokenizer's eos_token_id. */
static int32_t eos_id(const tokenizer *tok, const hf_config *cfg)
{
	if (tok)
		return tokenizer_eos_id(tok);
	return cfg->n_eos ? cfg->eos_token_ids[0] : -1;
}

static char *decode(const void *ctx, const int32_t *ids, int n)
{
	char *text;
	if (tokenizer_decode(ctx, ids, (size_t)n, TOK_SKIP_SPECIAL, &text, NULL) != 0)
		return NULL;
	return text;
}

static void write_report(const char *path, const pf_report *r, const tokenizer *tok)
{
	if (write_json_atomic(path, pf_report_json(r, tok ? decode : NULL, tok)) != 0)
		die_err();
}

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	options o;
	parse_args(argc, argv, &o);
	stage_open(&o.st); /* the model, --fp16-scale (auto: by name), --clamp */
	tokenizer *tok = NULL;
	int nprompt;
	int32_t *prompt = load_prompt(&o, &o.st.hf, &tok, &nprompt);
	pf_options po = {.tokens = o.tokens, .fp16_scale = o.st.fp16_scale, .clamp = o.st.clamp,
			 .context = o.context, .threads = o.st.threads, .eos = eos_id(tok, &o.st.hf.cfg)};
	pf_report r;
	pf_report_init(&r, &o.st.hf, o.st.model, &po);
	if (pf_run(&r, &o.st.hf, prompt, nprompt, &po, o.sweep) != 0)
		die_err();
	if (g_verbosity >= 1)
		pf_print_table(&r, stdout);
	if (stdout_close_checked() != 0)
		die_err();
	if (g_verbosity >= 1)
		pf_print_summary(&r, stderr, progname());
	if (o.json)
		write_report(o.json, &r, tok);
	int ok = r.ane_compatible;
	if (ok) {
		info(1, "PASS: fp16 compatible as converted (score %.1f)", r.score);
	} else {
		char *line = pf_verdict_line(&r);
		fprintf(stderr, "%s: %s\n", progname(), line);
		free(line);
	}
	pf_report_release(&r);
	free(prompt);
	tokenizer_free(tok);
	stage_close(&o.st);
	return ok ? 0 : 1;
}
