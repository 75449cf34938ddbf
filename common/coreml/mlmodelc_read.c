/* mlmodelc_read.c: a compiled model (.mlmodelc folder) back into memory:
 * the description from coremldata.bin, the program from model.mil (see
 * mlmodelc.h). Both files are small (KB to a few MB); weights/weight.bin
 * stays on disk for the caller to map.
 */
#include "base/fsutil.h"
#include "base/util.h"
#include "coreml/miltext.h"
#include "coreml/mlmodelc.h"

#include <stdlib.h>

int mlmodelc_read(const char *dir, ml_model **out)
{
	char *cpath = path_join(dir, "coremldata.bin"), *mpath = path_join(dir, "model.mil"), *data = NULL, *text = NULL;
	size_t n, tn;
	*out = NULL;
	int rc = read_file(cpath, FS_MAX_MODEL, &data, &n);
	if (rc == 0 && mlmodelc_read_coremldata(data, n, out) != 0)
		rc = errf("%s: %s", cpath, errmsg());
	if (rc == 0)
		rc = read_file(mpath, FS_MAX_MODEL, &text, &tn);
	if (rc == 0 && miltext_parse((*out)->arena, text, tn, &(*out)->program, NULL) != 0)
		rc = errf("%s: %s", mpath, errmsg());
	if (rc != 0)
		ml_model_free(*out), *out = NULL;
	free(data), free(text), free(cpath), free(mpath);
	return rc;
}
