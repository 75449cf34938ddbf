/* mldump: print a readable listing of Core ML packages.
 *
 * Input: one or more .mlpackage directories (ours or coremltools'), compiled
 * .mlmodelc folders (description from coremldata.bin, program from
 * model.mil) or bare model.mlmodel files. Output on stdout, per model: spec version, functions
 * with their inputs, outputs and states, metadata, then every program
 * function's ops with their bindings and an op histogram (the format of the
 * ANEMLL reference listings, see common/mldump.h), so two packages can be
 * compared with diff.
 */
#include "coreml/mldump.h"
#include "base/cli.h"
#include "base/fsutil.h"
#include "base/util.h"
#include "coreml/mlmodel.h"
#include "coreml/mlmodelc.h"
#include "coreml/mlpackage.h"

#include <stdio.h>
#include <stdlib.h>

static ml_model *load_model(const char *path)
{
	ml_model *m = NULL;
	if (!is_dir(path)) {
		if (ml_model_read(path, &m) != 0)
			die_err();
		return m;
	}
	char *mil = path_join(path, "model.mil");
	int compiled = path_exists(mil);
	free(mil);
	if (compiled) {
		if (mlmodelc_read(path, &m) != 0)
			die_err();
		return m;
	}
	mlpackage pkg;
	if (mlpackage_open(path, &pkg) != 0)
		die_err();
	if (ml_model_decode(pkg.model, pkg.model_size, &m) != 0)
		die("%s: %s", path, errmsg());
	mlpackage_close(&pkg);
	return m;
}

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	static const cli_spec spec = {
		.usage = "mldump PACKAGE.mlpackage|MODEL.mlmodelc|model.mlmodel...",
		.summary = "Print the description, metadata and MIL program of each Core ML model:\n"
			   "functions, inputs, outputs, states, then every op with its bindings.",
		.opts = NULL,
		.nopts = 0,
	};
	char **paths;
	int npaths;
	cli_parse(&spec, argc, argv, &paths, &npaths);
	if (npaths == 0)
		die_usage("no package given");
	for (int i = 0; i < npaths; i++) {
		ml_model *m = load_model(paths[i]);
		if (npaths > 1)
			printf("== %s\n", paths[i]);
		if (mldump_listing(stdout, m) != 0)
			die("%s: %s", paths[i], errmsg());
		ml_model_free(m);
	}
	free(paths);
	if (stdout_close_checked() != 0)
		die_err();
	return 0;
}
