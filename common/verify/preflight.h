/* preflight.h: will the model overflow fp16 on the Neural Engine?
 *
 * ANEMLL's FP16 preflight (anemll-interface.md 9, fp16_compatibility_check.py)
 * on our fp32 reference instead of PyTorch. The steps, each a function so
 * the smoketest can run the ones it needs on its own prompt:
 *
 *  1. pf_weights: stream every tensor of the language model once (mmapped,
 *     a block of rows at a time): parameter count, max |w| and its tensor,
 *     how many tensors hold a value fp16 cannot (|w| > 65504, inf, NaN).
 *  2. the fp32 reference with the weight-only --fp16-scale
 *     applied (what the converted weights compute), greedy generation after
 *     the prompt: per-layer peak |x| of the residual stream, whether the
 *     logits stay finite (ANEMLL's "bf16_works"), the baseline tokens.
 *  3. the same run with every activation rounded to fp16 and the
 *     residual clamped at --clamp, as the converted model runs: does any
 *     layer overflow (inf), are the logits finite ("fp16_works")?
 *     pf_reference_fp16 runs 2 and 3 side by side.
 *  4. pf_sweep (optional): step 3 with clamps 65000..20000 (step 5000),
 *     each scored by its token match rate against the baseline.
 *  5. pf_judge: ANEMLL's verdict: compatibility score 1.0 (fp16 works), 0.7
 *     (fails, but a clamp of the sweep keeps > 50% of the tokens), 0.5
 *     (fails; weights are fine, so fp16 weights with fp32 compute would
 *     work), 0.0 (neither); its issues and recommendations, plus the alpha
 *     ANEMLL recommends, 50000 / peak (relative to the unscaled checkpoint).
 * pf_report_json writes the report with ANEMLL's keys.
 */
#ifndef ANEMAKE_PREFLIGHT_H
#define ANEMAKE_PREFLIGHT_H

#include "checkpoint/hfmodel.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>

#define PF_FP16_MAX 65504.0
#define PF_TARGET_MAX 50000.0 /* ANEMLL's peak after scaling: 23% headroom */
#define PF_SWEEP_MAX 10       /* clamps 65000, 60000, ... 20000 */
#define PF_SWEEP_TOKENS 20    /* ANEMLL sweeps with min(--max-tokens, 20) */

typedef struct pf_options {
	int tokens;        /* greedy tokens after the prompt (ANEMLL: 30) */
	double fp16_scale; /* alpha of the weight-only scaling, 0: none */
	double clamp;      /* residual clamp of the fp16 run, 0: none */
	int context;       /* KV-cache length; 0: prompt + tokens */
	int threads;       /* reference mat-vec threads (0: all cores) */
	int32_t eos;       /* generation stops after this token; -1: never */
} pf_options;

typedef struct pf_sweep_result {
	int clamp;
	int success;       /* finite logits at every step */
	double match_rate; /* tokens equal to the baseline's, over the shorter run; 0 on failure */
	int32_t *tokens;
	int ntokens;
} pf_sweep_result;

typedef struct pf_report {
	/* what was checked */
	char *model_id;
	char *layer_prefix;     /* "model.layers." (HF module names) */
	int nlayers;
	int scalable;           /* the architecture has the post norms --fp16-scale needs */
	double fp16_scale, clamp;
	/* 1. weights */
	int weights_checked;
	uint64_t total_params;
	double weight_max_abs;
	char *weight_max_layer;
	int weights_exceed_fp16;
	/* 2. fp32 reference */
	int bf16_works;         /* finite logits at every step */
	float *peaks;           /* [nlayers] */
	int32_t *baseline;      /* greedy tokens */
	int nbaseline;
	/* 3. fp16 emulation */
	int fp16_ran, fp16_finite;
	float *fp16_peaks;      /* [nlayers] */
	int fp16_first_nonfinite; /* layer, -1: none */
	double fp16_match_rate;
	/* 4. clamp sweep */
	pf_sweep_result sweep[PF_SWEEP_MAX];
	int nsweep;
	/* 5. verdict (pf_judge) */
	int fp16_works, fp16_to_fp32_works;
	unsigned char *overflow;/* [nlayers]: over fp16 range as converted */
	int peak_layer;         /* of peaks; -1 before pf_reference_fp16 */
	int first_overflow;     /* first layer whose fp32 peak exceeds 65504, -1: none */
	double recommended_fp16_scale; /* 0: no peak to scale */
	int ane_compatible;
	double score;
	char **issues, **recommendations;
	int nissues, nrecommendations;
} pf_report;

/* Start a report for the model (hf stays open while the steps run).
 * model_id is what the report calls it (the --model argument). */
void pf_report_init(pf_report *r, const hf_model *hf, const char *model_id, const pf_options *o);
void pf_report_release(pf_report *r);

/* The steps (see the top of this file). 0, or -1 with one errf() line
 * (the reference refused the model or the options, the prompt does not
 * fit the context, a tensor does not convert). */
int pf_weights(pf_report *r, const hf_model *hf);
/* Steps 2 and 3 side by side, each on its own thread with half the cores:
 * the results of running them in turn. */
int pf_reference_fp16(pf_report *r, const hf_model *hf, const int32_t *prompt, int nprompt, const pf_options *o);
int pf_sweep(pf_report *r, const hf_model *hf, const int32_t *prompt, int nprompt, const pf_options *o);
/* All of them: weights, reference, fp16, the sweep when asked, judge. */
int pf_run(pf_report *r, const hf_model *hf, const int32_t *prompt, int nprompt, const pf_options *o, int sweep);

/* The verdict from the fields the steps filled (no model needed). */
void pf_judge(pf_report *r);

/* "<layer_prefix><l>", e.g. "model.layers.3" (caller frees). */
char *pf_layer_name(const pf_report *r, int layer);

/* The report as ANEMLL's fp16_preflight JSON (spec 9 keys) plus ours:
 * layer_peaks, recommended_fp16_scale, fp16_scale, clamp, fp16_match_rate.
 * decode (may be NULL) turns sweep tokens into the "output" text. */
typedef char *(*pf_decode_fn)(const void *ctx, const int32_t *ids, int n);
cJSON *pf_report_json(const pf_report *r, pf_decode_fn decode, const void *ctx);
/* The smaller section the smoketest adds to its report. */
cJSON *pf_report_json_brief(const pf_report *r);

/* Human summary, one line per fact (peak layer, first overflow, alpha). */
void pf_print_summary(const pf_report *r, FILE *f, const char *prefix);
/* The per-layer table (and the sweep's, if run). */
void pf_print_table(const pf_report *r, FILE *f);
/* One line for a failing verdict: where it overflows and what would fix it. */
char *pf_verdict_line(const pf_report *r);

#endif
