/* ffn: write the decode chunks of a model's transformer layers, ANEMLL's part 2.
 *
 * Input: a HuggingFace checkpoint (directory or org/name in the local HF
 * cache; Llama, Qwen 2.5 or Qwen 3). Output, for each chunk i of N (or only
 * --chunk-no): <output>/<prefix>_FFN[_lut<b>]_chunk_<ii>of<NN>.mlpackage with
 * one function, main, that runs one token through the chunk's layers:
 *   input  hidden_states        fp16  [1,1,H]
 *   input  position_ids         int32 [1]        (declared, unused, as ANEMLL)
 *   input  causal_mask          fp16  [1,1,1,C]
 *   input  current_pos          int32 [1]
 *   output output_hidden_states fp16  [1,1,H]    (final-normed in the last chunk)
 *   state  model_model_kv_cache_0 fp16 [2L,kv_heads,C,head_dim]
 * A chunk's weight.bin holds its layers' weights: ~2 bytes per parameter,
 * bits/16 of that with --lut (e.g. ~110 MB per layer of an 8B model at 4
 * bits). Package paths are printed on stdout, one per line. The program is
 * chunk_stage_main() (common/stage.c), shared with prefill; --plan prints the
 * chunk plan (--chunk auto: ANEMLL's calc_chunk_split rule) without writing.
 */
#include "stage.h"

int main(int argc, char **argv) { return chunk_stage_main(argc, argv, GRAPH_DECODE); }
