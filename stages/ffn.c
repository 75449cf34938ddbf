/* ffn: write the decode chunks of a model's transformer layers, ANEMLL's part 2.
 *
 * Input: a HuggingFace checkpoint (directory or org/name in the local HF
 * cache; Llama, Qwen 2.5, Qwen 3 or Gemma 3). Output, for each chunk i of N
 * (or only --chunk-no): <output>/<prefix>_FFN[_lut<b>]_chunk_<ii>of<NN>.mlpackage
 * with one function, main, that runs one token through the chunk's layers:
 *   input  hidden_states        fp16  [1,1,H]
 *   input  position_ids         int32 [1]        (declared, unused, as ANEMLL)
 *   input  causal_mask          fp16  [1,1,1,C]
 *   input  current_pos          int32 [1]
 *   output output_hidden_states fp16  [1,1,H]    (final-normed in the last chunk)
 *   state  model_model_kv_cache_0 fp16 [2L,kv_heads,C,head_dim], or for Gemma 3
 *          model_model_kv_cache_local [2 n_local,kv,min(W,C),d] and
 *          model_model_kv_cache_global [2 n_global,kv,C,d] (graph.h)
 * --rotate (Gemma 3, C > sliding window W): <prefix>_FFN_rotate[_lut<b>]_chunk_*,
 * ANEMLL's infer_rotate for positions >= W: the local cache is a ring, the
 * token goes to slot pos mod W (ANEMLL shifts the cache instead, which
 * chat.py's re-run of the last prompt token breaks); no chunk_no/num_chunks
 * metadata.
 * --monolithic: <prefix>_monolithic[_rotate][_lut<b>].mlpackage, the whole
 * model (input_ids -> logits1..K, or argmax_idx/argmax_val with --argmax);
 * --lut-embeddings / --lut-lmhead override --lut for the table and the head.
 * --fp16-scale ALPHA|auto (Gemma 3) and --clamp V: FP16 safety (graph.h).
 * A chunk's weight.bin holds its layers' weights: ~2 bytes per parameter,
 * bits/16 of that with --lut (e.g. ~110 MB per layer of an 8B model at 4
 * bits). Package paths are printed on stdout, one per line. The program is
 * chunk_stage_main() (common/stage.c), shared with prefill; --plan prints the
 * chunk plan (--chunk auto: ANEMLL's calc_chunk_split rule) without writing.
 */
#include "convert/stage.h"

int main(int argc, char **argv) { return chunk_stage_main(argc, argv, GRAPH_DECODE); }
