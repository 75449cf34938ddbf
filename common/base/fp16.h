/* fp16.h: IEEE half and bfloat16 conversions.
 *
 * Core ML stores weights and activations as IEEE binary16. Checkpoints come
 * as F32, F16 or BF16; every narrowing conversion rounds to nearest, ties to
 * even, and a finite value too large for fp16 is clamped to +-65504 and
 * counted, never turned into inf (the caller reports the count).
 */
#ifndef ANEMAKE_FP16_H
#define ANEMAKE_FP16_H

#include <stddef.h>
#include <stdint.h>

#define FP16_MAX 65504.0f

float fp16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t b);
uint16_t f32_to_bf16(float f); /* round to nearest even */

/* Round to nearest even; sets *overflow (if non-NULL) when |f| rounds past
 * 65504 or is infinite, in which case the result is clamped to +-65504.
 * NaN stays NaN (and counts as overflow: it cannot be represented honestly). */
uint16_t f32_to_fp16(float f, int *overflow);

/* Bulk conversions; return the number of clamped values. */
size_t f32_array_to_fp16(const float *src, uint16_t *dst, size_t n);
size_t bf16_array_to_fp16(const uint16_t *src, uint16_t *dst, size_t n);
void fp16_array_to_f32(const uint16_t *src, float *dst, size_t n);

#endif
