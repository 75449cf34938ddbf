# ffn.sh: the ffn (decode) and prefill stages as a user runs them.
#
# Against the real ANEMLL 0.3.5 output for the tiny reference Llama (skipped
# without ../shared): same flags give the same description (functions,
# inputs, outputs, states) and the same metadata keys. On random fixtures
# (llama, qwen2, qwen3; 5 layers; context 64): file names, the layer split of
# 1, 2 and 3 chunks, state shape, last-chunk outputs, final norm placement,
# --chunk-no, LUT runs and errors, determinism, refusals, golden listings.
. "$SRC/tests/cli/lib.sh"
REF=$SHARED/reference/anemll-llama-tiny

# layers LISTING: the layer numbers whose q_proj weight the listing holds, e.g. "0 1 2"
layers() { grep -o 'model_model_layers_[0-9]*_self_attn_q_proj_weight = ' "$1" | sed 's/model_model_layers_//; s/_.*//' | tr '\n' ' ' | sed 's/ $//'; }

# --- the reference tiny Llama: same interface as ANEMLL's packages ------------
if have_shared; then
	for s in ffn:FFN prefill:prefill; do
		stage=${s%%:*} part=${s#*:}
		name=llama_${part}_lut6_chunk_01of01
		expect_ok "ref_$stage" "$BIN/$stage" --model "$REF/model" --output ref --context-length 512 --batch-size 64 --lut 6 --chunk 1
		[ "$out" = "ref/$name.mlpackage" ] && ok "ref_${stage}_path" || fail "ref_${stage}_path" "stdout: $out"
		"$BIN/mldump" "ref/$name.mlpackage" >"ref_$stage.txt" 2>&1
		d=$(diff <(desc "$REF/listings/$name.txt") <(desc "ref_$stage.txt"))
		[ -z "$d" ] && ok "ref_${stage}_description" || fail "ref_${stage}_description" "$(echo "$d" | head -n 6 | tr '\n' ' ')"
		d=$(diff <(metakeys "$REF/listings/$name.txt") <(metakeys "ref_$stage.txt"))
		[ -z "$d" ] && ok "ref_${stage}_metadata_keys" || fail "ref_${stage}_metadata_keys" "$(echo "$d" | tr '\n' ' ')"
		grep -F "$(grep shortDescription "$REF/listings/$name.txt")" "ref_$stage.txt" >/dev/null &&
			ok "ref_${stage}_short_description" || fail "ref_${stage}_short_description" "$(grep shortDescription "ref_$stage.txt")"
		protoc_ok "ref_${stage}_protoc" "ref/$name.mlpackage"
	done
	# The same kinds of ops as ANEMLL's decode function, and its LUT shapes.
	for op in conv linear layer_norm matmul slice_update write_state read_state tile gather silu exp reduce_max real_div; do
		grep -q " = $op(" ref_ffn.txt || fail ref_ffn_ops "no $op"
	done
	grep -q 'constexpr_lut_to_dense(indices=uint6\[64,64,1,1\]@blob([0-9]*), lut=float16\[8,1,1,1,64,1\]' ref_ffn.txt &&
		grep -q 'constexpr_lut_to_dense(indices=uint6\[64,64\]@blob([0-9]*), lut=float16\[8,1,64,1\]' ref_ffn.txt &&
		ok ref_ffn_lut_shapes || fail ref_ffn_lut_shapes "$(grep -m2 constexpr ref_ffn.txt)"
	# k/v projections (32 x 64 = 2048 weights) stay fp16, as coremltools leaves them
	grep -q 'float16\[32,64,1,1\] model_model_layers_0_self_attn_k_proj_weight = const()' ref_ffn.txt &&
		ok ref_ffn_small_weights_dense || fail ref_ffn_small_weights_dense "k_proj palettized"
else
	skip reference "needs ../shared"
fi

# --- fixtures: names, layer splits, shapes -------------------------------------
for arch in llama:llama qwen2:qwen25 qwen3:qwen; do
	a=${arch%%:*} prefix=${arch#*:}
	"$TESTBIN/mkfixture" --arch "$a" --out "fx_$a" --layers 5 --seed 7 >/dev/null
	for n in 1 2 3; do
		case $n in 1) want=("0 1 2 3 4") ;; 2) want=("0 1 2" "3 4") ;; 3) want=("0 1" "2 3" "4") ;; esac
		for stage in ffn prefill; do
			part=$([ $stage = ffn ] && echo FFN || echo prefill)
			t="${a}_${stage}_${n}chunks"
			expect_ok "$t" "$BIN/$stage" --model "fx_$a" --output "o_${a}_$n" --context-length 64 --batch-size 8 --chunk $n
			exp=$(for i in $(seq 1 $n); do printf 'o_%s_%d/%s_%s_chunk_%02dof%02d.mlpackage\n' "$a" $n "$prefix" "$part" "$i" "$n"; done)
			[ "$out" = "$exp" ] && ok "${t}_paths" || fail "${t}_paths" "stdout: $out"
			bad=
			for i in $(seq 1 $n); do
				pkg=$(printf 'o_%s_%d/%s_%s_chunk_%02dof%02d.mlpackage' "$a" $n "$prefix" "$part" "$i" "$n")
				"$BIN/mldump" "$pkg" >l.txt 2>&1 || bad="$bad mldump-$i"
				[ "$(layers l.txt)" = "${want[$((i - 1))]}" ] || bad="$bad chunk$i-layers($(layers l.txt))"
				grep -q '^  state  "model_model_kv_cache_0" state float16\[10,2,64,16\]$' l.txt || bad="$bad chunk$i-state"
				S=$([ $stage = ffn ] && echo 1 || echo 8)
				[ $i = $n ] && [ $stage = prefill ] && S=1
				grep -q "^  output \"output_hidden_states\" float16\[1,$S,64\]$" l.txt || bad="$bad chunk$i-output"
				norm=$(grep -c 'model_model_norm_weight = ' l.txt)
				[ $i = $n ] && [ $stage = ffn ] && { [ "$norm" = 1 ] || bad="$bad chunk$i-no-final-norm"; } ||
					{ [ "$norm" = 0 ] || bad="$bad chunk$i-final-norm"; }
				grep -q "\"com.anemll.chunk_no\" = \"$i\"" l.txt && grep -q "\"com.anemll.num_chunks\" = \"$n\"" l.txt ||
					bad="$bad chunk$i-meta"
				if [ $stage = prefill ]; then grep -q '"com.anemll.batch_size" = "8"' l.txt || bad="$bad chunk$i-batch-meta"
				else ! grep -q 'com.anemll.batch_size' l.txt || bad="$bad chunk$i-batch-meta"; fi
			done
			[ -z "$bad" ] && ok "${t}_contents" || fail "${t}_contents" "$bad"
		done
	done
	protoc_ok "${a}_protoc" "o_${a}_2/${prefix}_prefill_chunk_02of02.mlpackage"
done
# architecture traits visible in the ops
"$BIN/mldump" o_qwen2_1/qwen25_FFN_chunk_01of01.mlpackage >q2.txt
"$BIN/mldump" o_qwen3_1/qwen_FFN_chunk_01of01.mlpackage >q3.txt
"$BIN/mldump" o_llama_1/llama_FFN_chunk_01of01.mlpackage >ll.txt
grep -q 'model_model_layers_0_self_attn_q_proj_bias' q2.txt && grep -q ' = cast(' q2.txt && ! grep -q ' = linear(' q2.txt &&
	ok qwen2_bias_fp32 || fail qwen2_bias_fp32 "no bias or fp32 attention"
grep -q 'model_model_layers_0_self_attn_q_norm_weight' q3.txt && grep -q 'model_model_layers_0_self_attn_k_norm_weight' q3.txt &&
	! grep -q ' = cast(' q3.txt && ok qwen3_qk_norm || fail qwen3_qk_norm "no q/k norm"
[ "$(grep -c ' = linear(' ll.txt)" = 5 ] && ! grep -q '_proj_bias = ' ll.txt && ok llama_o_proj_linear || fail llama_o_proj_linear "linear count"

# --chunk-no: one package only
expect_ok chunk_no "$BIN/ffn" --model fx_llama --output only --context-length 64 --chunk 3 --chunk-no 2
[ "$out" = only/llama_FFN_chunk_02of03.mlpackage ] && [ "$(ls only | grep -c mlpackage)" = 1 ] &&
	ok chunk_no_writes_one || fail chunk_no_writes_one "$(ls only)"
expect_ok prefill_chunk_no "$BIN/prefill" --model fx_qwen3 --output only --context-length 64 --batch-size 8 --chunk 3 --chunk-no 3
[ "$out" = only/qwen_prefill_chunk_03of03.mlpackage ] && ok prefill_chunk_no_path || fail prefill_chunk_no_path "$out"

# --- LUT ----------------------------------------------------------------------
for b in 4 6; do
	expect_ok "lut$b" "$BIN/ffn" --model fx_qwen3 --output "lut$b" --context-length 64 --lut $b --chunk 2
	"$BIN/mldump" "lut$b/qwen_FFN_lut${b}_chunk_01of02.mlpackage" >lut.txt
	grep -q "constexpr_lut_to_dense(indices=uint$b\[128,64,1,1\]" lut.txt && grep -q "\"com.anemll.lut_bits\" = \"$b\"" lut.txt &&
		ok "lut${b}_palettized" || fail "lut${b}_palettized" "$(grep -m1 constexpr lut.txt)"
	[ -f "lut$b/qwen_FFN_lut${b}_chunk_01of02.quality.json" ] && ok "lut${b}_quality" || fail "lut${b}_quality" "$(ls lut$b)"
done
expect_ok prefill_lut4 "$BIN/prefill" --model fx_llama --output lut4 --context-length 64 --batch-size 8 --lut 4,16
[ -d lut4/llama_prefill_lut4_chunk_01of01.mlpackage ] && ok prefill_lut4_name || fail prefill_lut4_name "$(ls lut4)"
mkdir -p badlut
for stage in ffn prefill; do
	expect_fail "${stage}_lut_bits_7" 1 "^$stage: --lut: .*'7'" "$BIN/$stage" --model fx_llama --output badlut --lut 7
	expect_fail "${stage}_lut_abc" 1 "^$stage: --lut: .*'abc'" "$BIN/$stage" --model fx_llama --output badlut --lut abc
	expect_fail "${stage}_lut_negative_group" 1 "^$stage: --lut: .*'4,-1'" "$BIN/$stage" --model fx_llama --output badlut --lut 4,-1
	expect_fail "${stage}_lut_group_not_dividing" 1 "^$stage: --lut 6,3: model\.layers\.0\.self_attn\.q_proj\.weight has 64 output channels; groups that divide it: 1, 2; try --lut 6,2$" \
		"$BIN/$stage" --model fx_llama --output badlut --context-length 64 --batch-size 8 --lut 6,3
done
no_artifacts lut_errors_leave_nothing badlut

# --- determinism: same bytes twice, any thread count ------------------------------
for stage in ffn prefill; do
	"$BIN/$stage" --model fx_qwen2 --output "d1_$stage" --context-length 64 --batch-size 8 --chunk 2 --lut 4 --threads 1 -q >/dev/null
	"$BIN/$stage" --model fx_qwen2 --output "d2_$stage" --context-length 64 --batch-size 8 --chunk 2 --lut 4 --threads 2 -q >/dev/null
	[ -n "$(ls "d1_$stage")" ] && diff -r "d1_$stage" "d2_$stage" >/dev/null && ok "${stage}_deterministic" ||
		fail "${stage}_deterministic" "threads 1 vs 2 differ"
done

# --- refusals and usage ------------------------------------------------------------------
mkdir -p bad
"$TESTBIN/mkfixture" --arch llama --out fx_yarn --rope-scaling linear >/dev/null
sed -i 's/"linear"/"yarn"/' fx_yarn/config.json
expect_fail unknown_rope_type 1 "^ffn: .*config.json: rope_scaling type 'yarn' is not supported" "$BIN/ffn" --model fx_yarn --output bad
expect_fail prefill_unknown_rope_type 1 "^prefill: .*'yarn'" "$BIN/prefill" --model fx_yarn --output bad
"$TESTBIN/mkfixture" --arch gemma3_text --out fx_gemma --layers 2 --layer-types f,f >/dev/null
expect_fail gemma3_no_local_layer 1 "^ffn: .*config.json: layer_types has no sliding_attention layer" "$BIN/ffn" --model fx_gemma --output bad
"$TESTBIN/mkfixture" --arch qwen2 --out fx_swa --sliding-window 32 >/dev/null
sed -i 's/"use_sliding_window":[[:space:]]*false/"use_sliding_window": true/' fx_swa/config.json
sed -i 's/"max_window_layers":[[:space:]]*[0-9]*/"max_window_layers": 1/' fx_swa/config.json
# a window below the context: the sliding layer (only) masks outside it (numbers: archs.sh)
expect_ok sliding_window_band "$BIN/ffn" --model fx_swa --output swa_band --context-length 64
"$BIN/mldump" swa_band/qwen25_FFN_chunk_01of01.mlpackage >band.txt
grep -q ' layers_1_scores_masked = add(x=layers_1_scores_scaled, y=band_mask_fp32)' band.txt &&
	grep -q ' layers_0_scores_masked = add(x=layers_0_scores_scaled, y=causal_mask_fp32)' band.txt && ok sliding_window_band_layers ||
	fail sliding_window_band_layers "$(grep scores_masked band.txt | head -n 2)"
expect_ok sliding_window_covers_context "$BIN/ffn" --model fx_swa --output swa --context-length 32
expect_fail too_many_chunks 1 "^ffn: --chunk 6: fx_llama/config.json has only 5 layers \(num_hidden_layers\)$" "$BIN/ffn" --model fx_llama --output bad --chunk 6
expect_fail chunk_no_beyond 2 "^ffn: --chunk-no 4 is beyond --chunk 3" "$BIN/ffn" --model fx_llama --output bad --chunk 3 --chunk-no 4
expect_fail batch_beyond_context 2 "^prefill: --batch-size 128 exceeds --context-length 64" \
	"$BIN/prefill" --model fx_llama --output bad --context-length 64 --batch-size 128
expect_fail no_model 2 "^prefill: --model is required" "$BIN/prefill" --output bad
expect_fail missing_model 1 "^ffn: .*nowhere" "$BIN/ffn" --model ./nowhere --output bad
no_artifacts refusals_leave_nothing bad
for stage in ffn prefill; do
	"$BIN/$stage" --help >help.txt
	for f in --model --output --prefix --context-length --batch-size --chunk --chunk-no --lut --threads; do
		grep -q -- "$f" help.txt || fail "${stage}_help" "no $f"
	done
done

# --- golden listings -------------------------------------------------------------------
"$TESTBIN/mkfixture" --arch qwen2 --out g_qwen2 --seed 11 >/dev/null
"$BIN/ffn" --model g_qwen2 --output g --context-length 64 --chunk 2 --chunk-no 2 -q >/dev/null
"$BIN/mldump" g/qwen25_FFN_chunk_02of02.mlpackage >g1.txt
golden golden_ffn_qwen2 g1.txt ffn_qwen2_chunk02of02.txt
"$TESTBIN/mkfixture" --arch qwen3 --out g_qwen3 --seed 11 >/dev/null
"$BIN/prefill" --model g_qwen3 --output g --context-length 64 --batch-size 8 --lut 4 -q >/dev/null
"$BIN/mldump" g/qwen_prefill_lut4_chunk_01of01.mlpackage >g2.txt
golden golden_prefill_qwen3 g2.txt prefill_qwen3_lut4.txt
# --verbose prints every tensor as it is written (its LUT and error, or fp16); the default does not.
run "$BIN/ffn" --model fx_qwen3 --output verb --context-length 64 --lut 6 --chunk 2 --verbose
[ "$rc" = 0 ] && grep -Eq '^ffn: model_model_layers_0_mlp_gate_proj_weight: LUT6 group [0-9]+, relative RMS error ' <<<"$err" &&
	grep -Eq '^ffn: .*: fp16, [0-9]+ values$' <<<"$err" && ok verbose_prints_tensors || fail verbose_prints_tensors "exit $rc: $(head -n 3 <<<"$err")"
run "$BIN/ffn" --model fx_qwen3 --output quiet_default --context-length 64 --lut 6 --chunk 2
[ "$rc" = 0 ] && ! grep -q 'group [0-9]*, relative RMS error' <<<"$err" && ok default_not_verbose || fail default_not_verbose "$err"
finish
