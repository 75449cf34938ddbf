/* prefill: write the prefill chunks of a model's transformer layers, ANEMLL's part 2_prefill.
 *
 * Input: a HuggingFace checkpoint (directory or org/name in the local HF
 * cache; Llama, Qwen 2.5, Qwen 3 or Gemma 3). Output, for each chunk i of N
 * (or only --chunk-no): <output>/<prefix>_prefill[_lut<b>]_chunk_<ii>of<NN>.mlpackage
 * with one function, main, that runs B = --batch-size prompt tokens through
 * the chunk's layers and fills their KV-cache slots:
 *   input  hidden_states        fp16  [1,B,H]
 *   input  position_ids         int32 [B]        (RoPE positions)
 *   input  causal_mask          fp16  [1,1,B,C]
 *   input  current_pos          int32 [1]        (first KV slot written)
 *   output output_hidden_states fp16  [1,B,H]; [1,1,H] in the last chunk,
 *                                                whose output runtimes ignore
 *   state  model_model_kv_cache_0 fp16 [2L,kv_heads,C,head_dim], or Gemma 3's
 *          local/global pair (graph.h)
 * --rotate (Gemma 3, C > sliding window W, B dividing W):
 * <prefix>_prefill_rotate[_lut<b>]_chunk_*, ANEMLL's prefill_rotate for
 * batches at positions >= W: the batch goes to ring slots [p mod W, +B) of
 * the local cache (ANEMLL shifts it); unlike ANEMLL's, every row sees exactly
 * its own window (graph.h).
 * Gemma 3 with C > W refuses a batch that does not divide W, rotate or not:
 * chat.py's batch [kB, kB+B) would straddle the window.
 * --monolithic: <prefix>_monolithic_prefill[_rotate][_lut<b>].mlpackage,
 * input_ids [1,B] through the whole model (outputs as ANEMLL: logits of row
 * 0, or Gemma 3's output_hidden_states [1,1,H]; runtimes ignore them).
 * --fp16-scale ALPHA|auto (Gemma 3) and --clamp V: FP16 safety (graph.h).
 * Weights are those of the ffn chunk (the model's last MLP is left out: its
 * output is never used), so sizes match ffn's. Package paths are printed on
 * stdout, one per line.
 */
#include "convert/stage.h"

int main(int argc, char **argv) { return chunk_stage_main(argc, argv, GRAPH_PREFILL); }
