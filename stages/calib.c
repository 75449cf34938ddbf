/* calib: calibration statistics for activation-aware palettization.
 *
 * Tokenizes a calibration text with the model's tokenizer, runs the fp32
 * reference over it (windows of --context-length tokens) and writes, for
 * every linear layer, E[x^2] of each channel of its input (calstats.h),
 * with --xtx also E[x x^T] (GPTQ's second moments, lutgptq.h).
 * The converting stages read the file with --calib-stats; the pipeline runs
 * this once per text and checkpoint (make CALIB=<text file>).
 */
#include "base/calstats.h"
#include "base/cli.h"
#include "base/fsutil.h"
#include "base/util.h"
#include "convert/stage.h"
#include "verify/calib.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct options {
	stage_opts st; /* --model, --threads, --context-length */
	const char *text, *stats;
	int xtx, check;
} options;

static void parse_args(int argc, char **argv, options *o)
{
	stage_opts_init(&o->st);
	o->st.context = 256;
	const cli_opt opts[] = {
		STAGE_OPT_MODEL(&o->st),
		{"text", "FILE", CLI_STRING, &o->text, 0, 0, 0, "calibration text (UTF-8), tokenized with the model's tokenizer.json (required)"},
		{"output", "FILE", CLI_STRING, &o->stats, 0, 0, 0, "statistics file to write (atomically) (required)"},
		{"context-length", "N", CLI_INT, &o->st.context, 0, 1, 1 << 20, "tokens per window: the reference's cache starts afresh every N tokens (default 256)"},
		{"xtx", NULL, CLI_FLAG, &o->xtx, 0, 0, 0, "also E[x x^T] of every input, for GPTQ (refused beyond 1 GiB of them: small models)"},
		{"check", NULL, CLI_FLAG, &o->check, 0, 0, 0, "only check that the model takes the statistics asked for (--xtx: at most 1 GiB) and exit; needs no --text or --output"},
		STAGE_OPT_THREADS(&o->st),
	};
	const cli_spec spec = {
		.usage = "calib --model DIR --text FILE --output FILE [options]\n"
			 "       calib --model DIR --check [--xtx]",
		.summary = "Run the fp32 reference over a calibration text and write, for every linear layer, E[x^2] of each "
			   "channel of its input: what ffn, prefill and lmhead --calib-stats weight palettization with.",
		.opts = opts,
		.nopts = (int)(sizeof opts / sizeof opts[0]),
	};
	cli_parse(&spec, argc, argv, NULL, NULL);
	if (!o->check && (!o->text || !o->stats))
		die_usage("--%s is required", o->text ? "output" : "text");
}

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	options o = {0};
	parse_args(argc, argv, &o);
	stage_open(&o.st);
	if (o.check) {
		if (o.xtx && calib_xtx_fits(&o.st.hf.cfg) != 0)
			die_err();
		stage_close(&o.st);
		return 0;
	}
	int32_t *ids;
	size_t n;
	if (calib_tokens(o.text, &o.st.hf, 0, &ids, &n) != 0)
		die_err();
	calstats cs = {0};
	if (calib_collect(&o.st.hf, ids, n, o.st.context, o.st.threads, o.xtx, &cs) != 0 || calstats_write(o.stats, &cs) != 0)
		die_err();
	info(1, "%s: E[x^2]%s of %zu layer inputs over %zu tokens", o.stats, o.xtx ? " and E[x x^T]" : "",
	     o.xtx ? cs.n / 2 : cs.n, n);
	printf("%s\n", o.stats);
	if (stdout_close_checked() != 0)
		die_err();
	calstats_release(&cs);
	free(ids);
	stage_close(&o.st);
	return 0;
}
