/* anemll.c: ANEMLL part names and metadata (see anemll.h). */
#include "anemll/anemll.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *anemll_part_name(const char *prefix, const char *part, int lut_bits, int chunk, int nchunks)
{
	char lut[16] = "", ch[32] = "";
	if (lut_bits > 0)
		snprintf(lut, sizeof lut, "_lut%d", lut_bits);
	if (nchunks > 0)
		snprintf(ch, sizeof ch, "_chunk_%02dof%02d", chunk, nchunks);
	return xasprintf("%s_%s%s%s", prefix, part, lut, ch);
}

static void set_int(ml_model *m, const char *key, int v)
{
	if (v <= 0)
		return;
	char buf[32];
	snprintf(buf, sizeof buf, "%d", v);
	ml_model_set_user_meta(m, key, buf);
}

static void set_sizes(ml_model *m, const int *sizes, int n)
{
	if (n <= 0)
		return;
	size_t cap = (size_t)n * 12 + 1, len = 0;
	char *s = xmalloc(cap);
	s[0] = 0;
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len, "%s%d", i ? "," : "", sizes[i]);
	ml_model_set_user_meta(m, "com.anemll.lm_head_chunk_sizes", s);
	free(s);
}

void anemll_set_metadata(ml_model *m, const anemll_meta *meta)
{
	char *desc = meta->functions    ? xasprintf("Anemll Model: Multifunction %s", meta->part_title)
		     : meta->part_title ? xasprintf("Anemll Model (%s) converted to CoreML", meta->part_title)
					: xasprintf("Anemll Model Part %s converted to CoreML", meta->part);
	char *info = xasprintf("Converted with anemake v%s (ANEMLL %s interface)", ANEMAKE_VERSION, ANEMLL_VERSION);
	ml_model_set_metadata(m, desc, ANEMLL_VERSION, info, NULL);
	ml_model_set_user_meta(m, "com.anemll.info", info);
	set_int(m, "com.anemll.context_length", meta->context_length);
	set_int(m, "com.anemll.batch_size", meta->batch_size);
	set_int(m, "com.anemll.num_chunks", meta->num_chunks);
	set_int(m, "com.anemll.chunk_no", meta->chunk_no);
	set_int(m, "com.anemll.lut_bits", meta->lut_bits);
	if (meta->argmax_in_model)
		ml_model_set_user_meta(m, "com.anemll.argmax_in_model", "true");
	set_int(m, "com.anemll.vocab_size", meta->vocab_size);
	set_sizes(m, meta->lm_head_chunk_sizes, meta->n_lm_head_chunks);
	if (meta->functions)
		ml_model_set_user_meta(m, "com.anemll.functions", meta->functions);
	if (meta->lut_override)
		ml_model_set_user_meta(m, "com.anemake.lut_override", meta->lut_override);
	if (meta->calibration)
		ml_model_set_user_meta(m, "com.anemake.calibration_sha256", meta->calibration);
	free(desc);
	free(info);
}
