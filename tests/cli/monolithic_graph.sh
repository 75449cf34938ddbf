# monolithic_graph.sh: ffn --monolithic / prefill --monolithic as a user runs them.
#
# Against ANEMLL 0.3.5's monolithic output for the tiny reference Llama
# (skipped without ../shared): convert_monolith.sh's flags give the same
# description (inputs, outputs, state, shapes) and metadata keys, the
# embedding table palettized along vocab rows, the 2048-element LM-head
# splits left fp16. On fixtures: names with --rotate (Gemma 3), --argmax,
# the per-part LUT overrides, and the refusals.
. "$SRC/tests/cli/lib.sh"
REF=$SHARED/reference/anemll-llama-tiny-monolithic

if have_shared; then
	model=$SHARED/reference/anemll-llama-tiny/model
	common=(--model "$model" --output ref --context-length 512 --batch-size 64 --prefix llama --lut 6)
	expect_ok ref_infer "$BIN/ffn" --monolithic "${common[@]}"
	[ "$out" = ref/llama_monolithic_lut6.mlpackage ] && ok ref_infer_path || fail ref_infer_path "stdout: $out"
	expect_ok ref_prefill "$BIN/prefill" --monolithic "${common[@]}"
	[ "$out" = ref/llama_monolithic_prefill_lut6.mlpackage ] && ok ref_prefill_path || fail ref_prefill_path "stdout: $out"
	for name in llama_monolithic_lut6 llama_monolithic_prefill_lut6; do
		"$BIN/mldump" "ref/$name.mlpackage" >"$name.txt" 2>&1
		d=$(diff <(desc "$REF/listings/$name.txt") <(desc "$name.txt"))
		[ -z "$d" ] && ok "ref_${name}_description" || fail "ref_${name}_description" "$(echo "$d" | head -n 6 | tr '\n' ' ')"
		d=$(diff <(metakeys "$REF/listings/$name.txt") <(metakeys "$name.txt"))
		[ -z "$d" ] && ok "ref_${name}_metadata_keys" || fail "ref_${name}_metadata_keys" "$(echo "$d" | tr '\n' ' ')"
		# as many palettized tensors as ANEMLL's (embeddings, q/o/gate/up/down; not k/v nor the 2048-element head splits)
		n_ref=$(grep -c ' = constexpr_lut_to_dense(' "$REF/listings/$name.txt")
		n=$(grep -c ' = constexpr_lut_to_dense(' "$name.txt")
		[ "$n" = "$n_ref" ] && ok "ref_${name}_palettized" || fail "ref_${name}_palettized" "$n, ANEMLL $n_ref"
	done
	protoc_ok ref_infer_protoc ref/llama_monolithic_lut6.mlpackage
	grep -q 'model_model_embed_tokens_weight_palettized = constexpr_lut_to_dense(indices=uint6\[256,64\]@blob([0-9]*), lut=float16\[32,1,64,1\]' \
		llama_monolithic_lut6.txt && grep -q ' = gather(.*x=model_model_embed_tokens_weight_palettized)' llama_monolithic_lut6.txt &&
		ok ref_embeddings_palettized_rows || fail ref_embeddings_palettized_rows "$(grep -m1 embed_tokens llama_monolithic_lut6.txt)"
else
	skip reference "needs ../shared"
fi

# --- fixtures --------------------------------------------------------------------
"$TESTBIN/mkfixture" --arch qwen3 --out fx_qwen3 --layers 3 --seed 2 --intermediate 256 --vocab 1024 >/dev/null
expect_ok qwen3_argmax "$BIN/ffn" --monolithic --model fx_qwen3 --output q --context-length 64 --argmax --lut 4 \
	--lut-embeddings none --lut-lmhead 6
[ "$out" = q/qwen_monolithic_lut4.mlpackage ] && ok qwen3_argmax_path || fail qwen3_argmax_path "stdout: $out"
"$BIN/mldump" q/qwen_monolithic_lut4.mlpackage >q.txt 2>&1
grep -q '^  output "argmax_idx" int32\[16\]' q.txt && grep -q '^  output "argmax_val" float16\[16\]' q.txt &&
	grep -q 'com.anemll.argmax_in_model' q.txt && ok qwen3_argmax_outputs || fail qwen3_argmax_outputs "$(grep output q.txt)"
grep -q 'embed_tokens_weight = const()' q.txt && grep -q 'lm_head_weight_1_palettized = constexpr_lut_to_dense(indices=uint6' q.txt &&
	grep -q 'mlp_up_proj_weight_palettized = constexpr_lut_to_dense(indices=uint4' q.txt &&
	ok qwen3_lut_overrides || fail qwen3_lut_overrides "$(grep -m3 constexpr q.txt)"
expect_ok qwen3_prefill "$BIN/prefill" --monolithic --model fx_qwen3 --output q --context-length 64 --batch-size 16
"$BIN/mldump" q/qwen_monolithic_prefill.mlpackage >qp.txt 2>&1
grep -q '^  input  "input_ids" int32\[1,16\]$' qp.txt && grep -q '^  output "logits16" float16\[1,1,64\]' qp.txt &&
	ok qwen3_prefill_interface || fail qwen3_prefill_interface "$(grep -e input -e output qp.txt | head -n 4)"

fx=(--hidden 64 --intermediate 128 --heads 4 --kv-heads 2 --head-dim 16 --sliding-window 16)
"$TESTBIN/mkfixture" --arch gemma3_text --out fx_gemma --layers 5 --layer-types s,f,s,s,f --seed 3 "${fx[@]}" >/dev/null
for v in ffn: ffn:--rotate prefill: prefill:--rotate; do
	stage=${v%%:*} flag=${v#*:}
	part=monolithic$([ $stage = prefill ] && echo _prefill)${flag:+_rotate}
	expect_ok "gemma_$part" "$BIN/$stage" --monolithic $flag --model fx_gemma --output g --context-length 64 --batch-size 8 --lut 6
	[ "$out" = "g/gemma3_${part}_lut6.mlpackage" ] && ok "gemma_${part}_path" || fail "gemma_${part}_path" "stdout: $out"
	"$BIN/mldump" "g/gemma3_${part}_lut6.mlpackage" >g.txt 2>&1
	[ "$(grep -c '^  state ' g.txt)" = 2 ] && grep -q '^  input  "input_ids" int32\[1,' g.txt || fail "gemma_${part}_states" "$(grep state g.txt)"
	if [ $stage = prefill ]; then grep -q '^  output "output_hidden_states" float16\[1,1,64\]' g.txt
	else grep -q '^  output "logits16" ' g.txt; fi && ok "gemma_${part}_outputs" || fail "gemma_${part}_outputs" "$(grep output g.txt)"
done

# --- refusals ----------------------------------------------------------------------
mkdir -p bad
expect_fail argmax_prefill 2 "^prefill: --argmax: only the monolithic infer part" \
	"$BIN/prefill" --monolithic --argmax --model fx_qwen3 --output bad
expect_fail argmax_without_monolithic 2 "^ffn: --argmax applies to --monolithic only" "$BIN/ffn" --argmax --model fx_qwen3 --output bad
expect_fail lut_embeddings_without_monolithic 2 "^prefill: --lut-embeddings applies to --monolithic or --plan only" \
	"$BIN/prefill" --lut-embeddings 4 --model fx_qwen3 --output bad
expect_fail monolithic_chunk 2 "^ffn: --monolithic writes the whole model as one part" \
	"$BIN/ffn" --monolithic --chunk 2 --model fx_qwen3 --output bad
expect_fail bad_lut_lmhead 1 "^ffn: --lut-lmhead: " "$BIN/ffn" --monolithic --lut-lmhead 5 --model fx_qwen3 --output bad
expect_fail bad_lut_embeddings_group 1 "^ffn: --lut-embeddings 4,7: model\.embed_tokens\.weight has 1024 output channels; groups that divide it: 1, 2, 4; try --lut-embeddings 4,4$" \
	"$BIN/ffn" --monolithic --lut-embeddings 4,7 --model fx_qwen3 --output bad
expect_fail monolithic_rotate_llama 1 "^ffn: --rotate: .*no sliding-window cache to rotate \(qwen3;" "$BIN/ffn" --monolithic --rotate --model fx_qwen3 --output bad
no_artifacts nothing_left bad
finish
