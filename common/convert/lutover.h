/* lutover.h: LUT overrides, a LUT spec per tensor pattern.
 *
 * On top of a part's spec (--lut, LUT1/LUT2/LUT3), `--lut-override` (make's
 * LUT_OVERRIDE) gives some tensors another one:
 *     layers.0-1=8;layers.*.mlp.down_proj=6,4;layers.4=none;lm_head=8
 * Entries are PATTERN=SPEC separated by ';' (or newlines); SPEC is what
 * --lut takes (lut_spec_parse). An entry "@FILE" reads more entries from
 * FILE (the mixed-precision plan, lutauto.h, is such a file); '#' starts a
 * comment there. The last entry matching a tensor wins.
 *
 * A pattern is dot-separated components; it matches a tensor when it
 * matches a run of consecutive components of the checkpoint's name
 * ("model.layers.3.mlp.down_proj.weight"). A component is a literal (with
 * '*' and '?' globs inside it), '*' (any one component), or a range of
 * numbers A-B (both included). The LM head also answers to "lm_head" when
 * it is the (tied) embedding matrix.
 *
 * Only tensors that a LUT could palettize count (rank > 1, above the
 * architecture's size threshold): a pattern that matches none of the
 * model's is an error (lutcheck.h), as is a group that does not divide a
 * matched tensor's output channels; a spec without a group takes the
 * largest group <= 8 dividing every tensor it applies to.
 */
#ifndef ANEMAKE_LUTOVER_H
#define ANEMAKE_LUTOVER_H

#include "convert/lut.h"

#include <stddef.h>

typedef struct lut_override {
	char *pattern;  /* as given, trimmed */
	char *text;     /* "PATTERN=SPEC" as given: how messages name it */
	lut_spec spec;  /* group resolved in place by lutcheck */
	size_t matched; /* check-only builds: palettizable tensors it won */
} lut_override;

typedef struct lut_overrides {
	lut_override *v;
	size_t n, cap;
	const char *flag; /* "--lut-override" or "LUT_OVERRIDE", for messages */
} lut_overrides;

/* Parse s (entries and @FILE includes) into o, appending. 0, or -1 with one
 * errf() line naming flag, the entry and what is wrong. */
int lut_overrides_parse(const char *s, const char *flag, lut_overrides *o);
void lut_overrides_release(lut_overrides *o);

/* The winning override for a tensor named `name` (its alias, e.g. "lm_head",
 * may be NULL), or NULL. */
lut_override *lut_overrides_find(const lut_overrides *o, const char *name, const char *alias);

/* 1 when pattern matches name as described above. */
int lut_pattern_match(const char *pattern, const char *name);

/* "layers.0-1=8,8;..." with every group as resolved: the canonical text
 * recorded in metadata. Caller frees; "" when there are none. */
char *lut_overrides_format(const lut_overrides *o);

#endif
