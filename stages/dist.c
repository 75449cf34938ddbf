/* dist: a conversion ready for Hugging Face, as ANEMLL's prepare_hf.sh
 * makes it, with a model card that shows what was measured.
 *
 * Input: a conversion directory (--input OUT: meta.yaml, the .mlmodelc it
 * names, the tokenizer files; smoketest.json, preflight.json and eval.json when
 * there) and, for the card's license and base_model, the source model
 * (--model). Output: DIST/standard (parts as <name>.mlmodelc.zip, for
 * `hf upload`) and DIST/ios (parts unzipped), each with meta.yaml, the
 * tokenizer files, config.json and README.md (common/dist/dist.h,
 * common/dist/card.h). Everything is checked before anything appears under
 * its final name: the parts meta.yaml names, the weight limit, every
 * archive read back. The two written paths go to stdout, the upload command
 * to stderr. The network is never touched.
 */
#include "base/cli.h"
#include "base/fsutil.h"
#include "base/util.h"
#include "checkpoint/hfmodel.h"
#include "dist/card.h"
#include "dist/dist.h"
#include "dist/zipdir.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct options {
	const char *input, *output, *org, *name, *model, *smoketest, *preflight, *eval, *max_mb;
	double limit_mb;
} options;

/* ORG and NAME as one hub id; the other half a placeholder, to name the flag at fault. */
static void check_repo(const char *org, const char *name, const char *flag, const char *value)
{
	char *id = xasprintf("%s/%s", org, name);
	if (!hf_is_repo_id(id))
		die_usage("--%s: '%s' is not a Hugging Face name (letters, digits, . _ -)", flag, value);
	free(id);
}

static void parse_args(int argc, char **argv, options *o)
{
	*o = (options){.org = "anemll"};
	const cli_opt opts[] = {
		{"input", "DIR", CLI_STRING, &o->input, 1, 0, 0, "the conversion: meta.yaml and the .mlmodelc it names"},
		{"output", "DIR", CLI_STRING, &o->output, 0, 0, 0, "where standard/ and ios/ go (default: <input>/hf_dist)"},
		{"org", "ORG", CLI_STRING, &o->org, 0, 0, 0, "Hugging Face user or organization (default anemll)"},
		{"name", "NAME", CLI_STRING, &o->name, 0, 0, 0, "repository name (default: meta.yaml's name_version, as ANEMLL's)"},
		{"model", "DIR|ORG/NAME", CLI_STRING, &o->model, 0, 0, 0, "the source model: license and base_model for the card"},
		{"smoketest", "FILE", CLI_STRING, &o->smoketest, 0, 0, 0, "smoketest report (default: <input>/smoketest.json when there)"},
		{"preflight", "FILE", CLI_STRING, &o->preflight, 0, 0, 0, "FP16 preflight report (default: <input>/preflight.json when there)"},
		{"eval", "FILE", CLI_STRING, &o->eval, 0, 0, 0, "make eval's report (default: <input>/eval.json when there)"},
		{"max-weight-mb", "MB", CLI_STRING, &o->max_mb, 0, 0, 0, "refuse a weight.bin above MB megabytes (default 1024, the iOS limit)"},
	};
	const cli_spec spec = {
		.usage = "dist --input DIR [--output DIR] [--org ORG] [--name NAME] [--model DIR] [options]",
		.summary = "Lay out a conversion for Hugging Face as ANEMLL's prepare_hf.sh does (standard/ with "
			   "zipped parts, ios/ unzipped) with a model card of its measured quality.",
		.opts = opts,
		.nopts = (int)(sizeof opts / sizeof opts[0]),
		.epilog = "Zips are reproducible: entries sorted, dated SOURCE_DATE_EPOCH (default 1980-01-01), "
			  "mode 0644/0755; weight.bin stored, the rest deflated. Upload: hf upload ORG/NAME DIR/standard",
	};
	cli_parse(&spec, argc, argv, NULL, NULL);
	char *end;
	o->limit_mb = 1024;
	if (o->max_mb && ((o->limit_mb = strtod(o->max_mb, &end)), end == o->max_mb || *end || !isfinite(o->limit_mb) ||
			  o->limit_mb <= 0))
		die_usage("--max-weight-mb: '%s' is not a number of megabytes", o->max_mb);
	check_repo(o->org, "x", "org", o->org);
	if (o->name)
		check_repo("x", o->name, "name", o->name);
}

/* A report given by flag must exist; a default one is used when there. */
static char *report(const char *flag_value, const char *input, const char *file)
{
	if (flag_value) {
		if (!path_exists(flag_value))
			die("'%s' does not exist", flag_value);
		return xstrdup(flag_value);
	}
	char *path = path_join(input, file);
	if (!path_exists(path))
		free(path), path = NULL;
	return path;
}

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	options o;
	parse_args(argc, argv, &o);
	time_t mtime;
	if (zipdir_epoch(&mtime) != 0)
		die_err();
	char *out = o.output ? xstrdup(o.output) : path_join(o.input, "hf_dist");
	char *model_dir = NULL;
	if (o.model && hf_model_resolve(o.model, &model_dir) != 0)
		die_err();
	char *smoke = report(o.smoketest, o.input, "smoketest.json");
	char *pf = report(o.preflight, o.input, "preflight.json");
	char *ev = report(o.eval, o.input, "eval.json");

	dist_plan plan;
	card_input ci = {.plan = &plan, .model_dir = model_dir};
	if (dist_plan_open(&plan, o.input, o.org, o.name, o.limit_mb) != 0 || card_reports(&ci, smoke, pf, ev) != 0)
		die_err();
	if (!smoke)
		warn("no smoketest report in '%s': the model card claims no measured quality (make test writes it)", o.input);
	dist_out dout;
	char *card = NULL;
	if (dist_stage(&plan, out, mtime, &dout) != 0 || (dist_card(&ci, &card), dist_commit(&dout, card)) != 0) {
		dist_out_release(&dout);
		die_err();
	}
	printf("%s\n%s\n", dout.standard, dout.ios);
	if (stdout_close_checked() != 0)
		die_err();
	fprintf(stderr, "%s: upload with: hf upload %s/%s %s\n", progname(), plan.org, plan.name, dout.standard);

	dist_out_release(&dout);
	card_input_release(&ci);
	dist_plan_close(&plan);
	free(card), free(out), free(model_dir), free(smoke), free(pf), free(ev);
	return 0;
}
