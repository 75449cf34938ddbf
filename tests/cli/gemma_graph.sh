# gemma_graph.sh: Gemma 3 parts as a user writes them: the split KV cache
# (local + global states in every chunk), the rotate variants, the LUT
# threshold, --fp16-scale and --clamp, and their refusals.
#
# Against the real ANEMLL 0.3.5 output for the tiny reference Gemma 3
# (skipped without ../shared): ANEMLL's flags give the same description
# (functions, inputs, outputs, states, shapes) and metadata keys for every
# per-part package; our rotate functions keep the local cache as a ring
# (written at current_pos mod W) with prefill_rotate's mask computed from
# current_pos. On random fixtures (layer_types given, HF's every-6th
# rule, the nested gemma3 layout; 1, 2 and 3 chunks; window < context and
# window >= context): file names and state shapes.
. "$SRC/tests/cli/lib.sh"
REF=$SHARED/reference/anemll-gemma3-tiny

# state NAME LISTING: the shape of a state in an mldump listing, e.g. "10,1,64,32"
state() { grep -m1 "^  state  \"$1\"" "$2" | sed 's/.*float16\[//; s/\].*//'; }

# --- the reference tiny Gemma 3: same interface as ANEMLL's packages ----------
if have_shared; then
	common=(--model "$REF/model" --output ref --context-length 128 --prefix gemma3)
	expect_ok ref_embed "$BIN/embed" "${common[@]}" --batch-size 32
	expect_ok ref_lmhead "$BIN/lmhead" "${common[@]}" --lut 6
	for stage in ffn prefill; do
		expect_ok "ref_$stage" "$BIN/$stage" "${common[@]}" --batch-size 32 --lut 6 --chunk 2
		expect_ok "ref_${stage}_rotate" "$BIN/$stage" "${common[@]}" --batch-size 32 --lut 6 --chunk 2 --rotate
		[ "$(printf '%s' "$err" | grep -c 'smallest state is 256')" = 1 ] && ok "ref_${stage}_small_state_warning" ||
			fail "ref_${stage}_small_state_warning" "$err"
	done
	for name in gemma3_embeddings gemma3_lm_head_lut6 \
		gemma3_{FFN,FFN_rotate,prefill,prefill_rotate}_lut6_chunk_0{1,2}of02; do
		if [ ! -d "ref/$name.mlpackage" ]; then fail "ref_$name" "not written"; continue; fi
		"$BIN/mldump" "ref/$name.mlpackage" >"$name.txt" 2>&1
		d=$(diff <(desc "$REF/listings/$name.txt") <(desc "$name.txt"))
		[ -z "$d" ] && ok "ref_${name}_description" || fail "ref_${name}_description" "$(echo "$d" | head -n 6 | tr '\n' ' ')"
		# our LM head also records vocab_size and lm_head_chunk_sizes (as the llama one)
		d=$(diff <(metakeys "$REF/listings/$name.txt") <(metakeys "$name.txt" | grep -v -e vocab_size -e lm_head_chunk_sizes))
		[ -z "$d" ] && ok "ref_${name}_metadata_keys" || fail "ref_${name}_metadata_keys" "$(echo "$d" | tr '\n' ' ')"
	done
	protoc_ok ref_rotate_protoc ref/gemma3_prefill_rotate_lut6_chunk_01of02.mlpackage
	# Gemma 3's LUT threshold is 8192 elements: q/o (exactly 8192) and k/v stay fp16, the MLP is LUT6.
	l=gemma3_FFN_lut6_chunk_01of02.txt
	grep -q 'float16\[128,64,1,1\] model_model_layers_0_self_attn_q_proj_weight = const()' $l &&
		grep -q 'model_model_layers_0_mlp_gate_proj_weight_palettized = constexpr_lut_to_dense(indices=uint6\[256,64,1,1\]@blob([0-9]*), lut=float16\[32,1,1,1,64,1\]' $l &&
		! grep -q 'o_proj_weight_palettized' $l && ok ref_lut_threshold || fail ref_lut_threshold "$(grep -m3 -e constexpr -e q_proj_weight $l)"
	for op in gelu softmax layer_norm slice_update concat read_state write_state; do
		grep -q " = $op(" gemma3_FFN_rotate_lut6_chunk_02of02.txt || fail ref_rotate_ops "no $op"
	done
	# the local cache is a ring: both rotate functions write at slot current_pos mod W (no shift), and
	# prefill_rotate's exact window is a [1,1,B,W+B] mask computed from current_pos
	bad=
	for f in gemma3_{FFN,prefill}_rotate_lut6_chunk_01of02.txt; do
		grep -q 'int32\[1\] local_ring_begin = mod(x=current_pos, y=local_window)' $f &&
			grep -q 'layers_0_k_store_begin = concat(.*local_ring_begin' $f || bad="$bad $f"
	done
	[ -z "$bad" ] && ok ref_rotate_ring || fail ref_rotate_ring "no write at current_pos mod W in:$bad"
	grep -q 'float16\[1,1,32,96\] local_window_mask = concat(' gemma3_prefill_rotate_lut6_chunk_01of02.txt &&
		grep -q 'bool\[1,1,32,64\] local_old_visible = greater_equal(' gemma3_prefill_rotate_lut6_chunk_01of02.txt &&
		ok ref_prefill_rotate_window_mask || fail ref_prefill_rotate_window_mask "no computed [1,1,32,96] mask"
else
	skip reference "needs ../shared"
fi

# --- fixtures: layer types, chunks, window vs context -------------------------------
fx=(--hidden 64 --intermediate 128 --heads 4 --kv-heads 2 --head-dim 16 --sliding-window 16)
"$TESTBIN/mkfixture" --arch gemma3_text --out fx_lt --layers 5 --layer-types s,f,s,s,f --seed 3 "${fx[@]}" >/dev/null
"$TESTBIN/mkfixture" --arch gemma3_text --out fx_six --layers 7 --seed 4 "${fx[@]}" >/dev/null
sed -i '/"layer_types"/d' fx_six/config.json # HF's rule: every 6th layer global (layer 5)
"$TESTBIN/mkfixture" --arch gemma3 --out fx_mm --layers 7 --seed 5 "${fx[@]}" >/dev/null
# model:local:global state shapes at context 64
for m in fx_lt:6,2,16,16:4,2,64,16 fx_six:12,2,16,16:2,2,64,16 fx_mm:12,2,16,16:2,2,64,16; do
	IFS=: read -r dir lo gl <<<"$m"
	for n in 1 2 3; do
		for v in ffn: ffn:--rotate prefill: prefill:--rotate; do
			stage=${v%%:*} flag=${v#*:}
			t="${dir}_${stage}${flag:+_rotate}_${n}chunks"
			expect_ok "$t" "$BIN/$stage" --model "$dir" --output "o_$dir" --context-length 64 --batch-size 8 --chunk $n $flag
			part=$([ $stage = ffn ] && echo FFN || echo prefill)${flag:+_rotate}
			exp=$(for i in $(seq 1 $n); do printf 'o_%s/gemma3_%s_chunk_%02dof%02d.mlpackage\n' "$dir" "$part" "$i" "$n"; done)
			[ "$out" = "$exp" ] && ok "${t}_paths" || fail "${t}_paths" "stdout: $out"
			bad=
			for i in $(seq 1 $n); do
				"$BIN/mldump" "$(sed -n "${i}p" <<<"$exp")" >l.txt 2>&1 || bad="$bad mldump-$i"
				[ "$(state model_model_kv_cache_local l.txt)" = "$lo" ] || bad="$bad local-$i:$(state model_model_kv_cache_local l.txt)"
				[ "$(state model_model_kv_cache_global l.txt)" = "$gl" ] || bad="$bad global-$i"
				[ "$(grep -c '^  state ' l.txt)" = 2 ] || bad="$bad nstates-$i"
				if [ -n "$flag" ]; then grep -q com.anemll.chunk_no l.txt && bad="$bad chunk_no-$i"
				else grep -q "com.anemll.chunk_no\" = \"$i\"" l.txt || bad="$bad chunk_no-$i"; fi
			done
			[ -z "$bad" ] && ok "${t}_states" || fail "${t}_states" "$bad"
		done
	done
done

# Window >= context: the local cache is the context long, there is nothing to rotate.
expect_ok small_context "$BIN/ffn" --model fx_lt --output small --context-length 12
"$BIN/mldump" small/gemma3_FFN_chunk_01of01.mlpackage >small.txt 2>&1
[ "$(state model_model_kv_cache_local small.txt)" = 6,2,12,16 ] && ok small_context_local_len ||
	fail small_context_local_len "$(state model_model_kv_cache_local small.txt)"
expect_fail small_context_no_rotate 1 "^ffn: --rotate: --context-length 16 is not beyond the sliding window 16" \
	"$BIN/ffn" --model fx_lt --output bad --context-length 16 --rotate
no_artifacts small_context_no_rotate_nothing_left bad

# Determinism: the same flags give the same bytes.
"$BIN/prefill" --model fx_lt --output d1 --context-length 64 --batch-size 8 --chunk 2 --rotate --lut 4 --threads 1 >/dev/null 2>&1
"$BIN/prefill" --model fx_lt --output d2 --context-length 64 --batch-size 8 --chunk 2 --rotate --lut 4 --threads 2 >/dev/null 2>&1
[ -n "$(ls d1)" ] && diff -r -x .anemake d1 d2 >/dev/null && ok rotate_deterministic || fail rotate_deterministic "differ"

# --- --clamp and --fp16-scale -------------------------------------------------------
expect_ok clamp "$BIN/ffn" --model fx_lt --output cl --context-length 64 --chunk 2 --clamp 30000
"$BIN/mldump" cl/gemma3_FFN_chunk_01of02.mlpackage >cl.txt 2>&1
[ "$(grep -c ' = clip(' cl.txt)" = 6 ] && ok clamp_ops || fail clamp_ops "$(grep -c ' = clip(' cl.txt) clip ops, expected 6"
expect_ok fp16_scale_ffn "$BIN/ffn" --model fx_lt --output sc --context-length 64 --fp16-scale 0.5
expect_ok fp16_scale_embed "$BIN/embed" --model fx_lt --output sc --fp16-scale 0.5 --lut 6 --clamp 100
printf '%s' "$err" | grep -q 'not palettized because --fp16-scale' && [ -d sc/gemma3_embeddings_lut6.mlpackage ] &&
	! "$BIN/mldump" sc/gemma3_embeddings_lut6.mlpackage | grep -q constexpr_lut_to_dense &&
	ok fp16_scale_embed_no_lut || fail fp16_scale_embed_no_lut "$err"
expect_ok fp16_scale_lmhead_ignored "$BIN/lmhead" --model fx_lt --output sc --fp16-scale 0.5 --clamp 100
ln -sfn fx_lt gemma-3-270m-it
expect_ok fp16_scale_auto "$BIN/prefill" --model gemma-3-270m-it --output auto --context-length 64 --batch-size 8 --fp16-scale auto

# --- refusals --------------------------------------------------------------------
"$TESTBIN/mkfixture" --arch llama --out fx_llama >/dev/null
mkdir -p bad
for v in 0 2 abc -0.5; do
	expect_fail "fp16_scale_bad_$v" 2 "^ffn: --fp16-scale: '$v' is not auto or a number in \(0,1\]" \
		"$BIN/ffn" --model fx_lt --output bad --fp16-scale "$v"
done
expect_fail fp16_scale_auto_unknown 2 "^embed: --fp16-scale auto: no entry for model 'fx_lt'.*give a number" \
	"$BIN/embed" --model fx_lt --output bad --fp16-scale auto
expect_fail fp16_scale_llama 1 "^prefill: --fp16-scale: .*llama, which has no post-attention/post-feedforward norms" \
	"$BIN/prefill" --model fx_llama --output bad --fp16-scale 0.5
expect_fail fp16_scale_llama_embed 1 "^embed: --fp16-scale: .*llama" "$BIN/embed" --model fx_llama --output bad --fp16-scale 0.5
expect_fail clamp_bad 2 "^ffn: --clamp: 'x' is not a number" "$BIN/ffn" --model fx_lt --output bad --clamp x
expect_fail clamp_negative 2 "^prefill: --clamp: '-5' is not a number" "$BIN/prefill" --model fx_lt --output bad --clamp -5
expect_fail rotate_llama 1 "^ffn: --rotate: .*no sliding-window cache to rotate \(llama; families with one: gemma3, mistral, phi3\)" \
	"$BIN/ffn" --model fx_llama --output bad --rotate
expect_fail rotate_batch_straddles 1 "^prefill: --batch-size 6 does not divide the sliding window 16 .*\[12, 18\)" \
	"$BIN/prefill" --model fx_lt --output bad --context-length 64 --batch-size 6 --rotate
expect_fail fill_batch_straddles 1 "^prefill: --batch-size 6 does not divide the sliding window 16 .*straddle" \
	"$BIN/prefill" --model fx_lt --output bad --context-length 64 --batch-size 6
"$TESTBIN/mkfixture" --arch gemma3_text --out fx_alls --layers 2 --layer-types s,s >/dev/null
expect_fail no_global_layer 1 "^ffn: .*no full_attention layer" "$BIN/ffn" --model fx_alls --output bad
no_artifacts nothing_left bad
finish
