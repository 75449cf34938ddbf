# pipeline_gemma.sh: make MODEL=<Gemma 3> end to end, as a user runs it.
#
# A tiny gemma3_text fixture (3 layers: local, local, global; window 32)
# converted at CONTEXT 64 > window for CHUNK=1, 2 and 3: per chunk ffn,
# prefill, ffn_rotate and prefill_rotate steps feed combine; OUT holds
# what ships of ANEMLL's files (the chunks before combine in .anemake/build), every FFN_PF chunk has the four functions and both
# KV states, meta.yaml has the reference's key set (../shared), the
# smoketest passes with decoding past the window, make -q is 0 afterwards.
# ANEMLL's own tiny Gemma 3 with its flags gives its package names and
# interfaces and, but for paths, its meta.yaml byte for byte.
# FP16_SCALE reruns the scaled steps only (not the LM head) and generates
# the same tokens; SPLIT_ROTATE=1 writes the _rot files and meta's pf /
# split_rotate; CONTEXT <= window has no rotate steps and removes the old
# rotate parts; make preflight writes its JSON, fails on a fixture that
# overflows fp16 (mkfixture --post-norm-gain) and passes with the
# FP16_SCALE it recommends. Needs ffn --rotate: skipped with a reason
# otherwise.
. "$SRC/tests/cli/lib.sh"
REF=$SHARED/reference/anemll-gemma3-tiny
pipe() { make -C "$SRC" --no-print-directory PIPE_BIN="$BIN" "$@"; }
steps_run() { sed -n 's/^anemake: \(.*\) \.\.\.$/\1/p' "$1" | sort; }
# A prompt inside the window (prefill, then infer), and decoding well past it (infer_rotate).
G=(CONTEXT=64 BATCH=8 LUT1= LUT2= LUT3= STEPS=36 PROMPT_IDS=2,17,33,49,65,81,97,113,129,145)

if ! "$BIN/ffn" --help | grep -q -- '--rotate'; then
	skip gemma_pipeline "ffn has no --rotate yet"
	finish
fi
"$TESTBIN/mkfixture" --arch gemma3_text --out g3 --layers 3 --layer-types s,s,f --sliding-window 32 --seed 4 >/dev/null

# files N: what ships of the files ANEMLL's convert_model.sh leaves for N chunks (no LUT)
files() {
	local c
	printf '%s\n' meta.yaml config.json tokenizer_config.json smoketest.json \
		gemma3_embeddings.mlpackage gemma3_embeddings.mlmodelc gemma3_lm_head.mlpackage gemma3_lm_head.mlmodelc
	for ((c = 1; c <= $1; c++)); do printf 'gemma3_FFN_PF_chunk_%02dof%02d.%s\n' "$c" "$1" mlpackage "$c" "$1" mlmodelc; done
}
# built N: the intermediates, the four parts of each chunk before combine
built() {
	local c p
	for ((c = 1; c <= $1; c++)); do
		for p in FFN prefill FFN_rotate prefill_rotate; do printf 'gemma3_%s_chunk_%02dof%02d.mlpackage\n' "$p" "$c" "$1"; done
	done
}

for n in 1 2 3; do
	o=o$n
	run pipe MODEL="$SCRATCH/g3" OUT="$SCRATCH/$o" CHUNK=$n "${G[@]}"
	printf '%s\n' "$err" >$o.log
	if [ "$rc" = 0 ]; then ok "chunk${n}_converts"; else fail "chunk${n}_converts" "exit $rc: $(grep -v '^anemake' $o.log | tail -n 4)"; continue; fi
	d=$(diff <(files $n | sort) <(ls $o | sort))
	d+=$(diff <(built $n | sort) <(ls $o/.anemake/build | sort))
	[ -z "$d" ] && ok "chunk${n}_anemll_files" || fail "chunk${n}_anemll_files" "$(echo "$d" | tr '\n' ' ')"
	bad=
	for f in $o/gemma3_FFN_PF_chunk_*.mlpackage; do
		"$BIN/mldump" "$f" >pf.txt
		[ "$(grep -E '^(function|default)' pf.txt | tr '\n' ' ')" = 'function "infer" function "infer_rotate" function "prefill" function "prefill_rotate" default "infer" ' ] ||
			bad="$bad $(basename "$f"):functions"
		[ "$(grep -c '^  state  "model_model_kv_cache_\(local\|global\)"' pf.txt)" = 8 ] || bad="$bad $(basename "$f"):states"
	done
	[ -z "$bad" ] && ok "chunk${n}_four_functions_two_states" || fail "chunk${n}_four_functions_two_states" "$bad"
	protoc_ok "chunk${n}_protoc" $o/gemma3_FFN_PF_chunk_01of0$n.mlpackage
	grep -qx "    num_chunks: $n" $o/meta.yaml && grep -qx '    sliding_window: 32' $o/meta.yaml &&
		grep -qx '    ffn: gemma3_FFN_PF_chunk_01of0'$n'.mlmodelc' $o/meta.yaml && ok "chunk${n}_meta" || fail "chunk${n}_meta" "$(sed -n '/parameters/,/^$/p' $o/meta.yaml | tr '\n' ' ')"
	same_meta_keys "chunk${n}_meta_keys_as_anemll" "$REF/meta.yaml" $o/meta.yaml
	grep -qE '"passed":[[:space:]]*true' $o/smoketest.json && ok "chunk${n}_smoketest_passes" || fail "chunk${n}_smoketest_passes" "$(grep -v '^anemake' $o.log | tail -n 3)"
	pipe -q MODEL="$SCRATCH/g3" OUT="$SCRATCH/$o" CHUNK=$n "${G[@]}" 2>/dev/null
	[ $? = 0 ] && ok "chunk${n}_make_q" || fail "chunk${n}_make_q" "make -q says out of date"
done
labels=$(steps_run o2.log | tr '\n' ',')
[[ $labels == *"FFN rotate chunk 02of02"*"prefill rotate chunk 01of02"* ]] && ok rotate_steps || fail rotate_steps "$labels"
# Prefill past the window goes through prefill_rotate: a measurement for the README, not a threshold.
"$BIN/smoketest" --model g3 --meta o2/meta.yaml --steps 8 --prompt "$(seq -s, 10 49)" --min-agreement 0 --max-kl 1 2>/dev/null |
	sed -n 's/^top-1 agreement/# prefill past the window (40-token prompt, window 32): top-1 agreement/p'

# --- ANEMLL's own tiny Gemma 3, with its flags: its file names, interfaces and meta.yaml ------
if have_shared; then
	run pipe MODEL="$REF/model" OUT="$SCRATCH/ref" CONTEXT=128 BATCH=32 LUT1= LUT2=6 LUT3=6 CHUNK=2 meta
	[ "$rc" = 0 ] && ok ref_converts || fail ref_converts "exit $rc: $(printf '%s\n' "$err" | grep -v '^anemake' | tail -n 3)"
	d=$(diff <(ls "$REF/listings" | sed 's/\.txt$//' | sort) <(ls ref ref/.anemake/build | sed -n 's/\.mlpackage$//p' | sort))
	[ -z "$d" ] && ok ref_package_names || fail ref_package_names "$(echo "$d" | tr '\n' ' ')"
	bad=
	for n in gemma3_FFN_PF_lut6_chunk_01of02 gemma3_FFN_PF_lut6_chunk_02of02 gemma3_embeddings gemma3_lm_head_lut6; do
		"$BIN/mldump" ref/$n.mlpackage >x.txt
		[ "$(desc "$REF/listings/$n.txt")" = "$(desc x.txt)" ] || bad="$bad $n:interface"
		[[ $n != *FFN_PF* ]] || [ "$(metakeys "$REF/listings/$n.txt")" = "$(metakeys x.txt)" ] || bad="$bad $n:metadata"
	done
	[ -z "$bad" ] && ok ref_interfaces || fail ref_interfaces "$bad"
	d=$(diff <(as_runtimes_read "$REF/meta.yaml") <(as_runtimes_read ref/meta.yaml))
	[ -z "$d" ] && ok ref_meta_yaml_as_anemll || fail ref_meta_yaml_as_anemll "$(echo "$d" | head -n 6 | tr '\n' ' ')"
else
	skip ref_gemma3 "needs ../shared"
fi

# --- FP16_SCALE: only the scaled parts rerun; the same tokens ------------------------------
gen() { tr -d ' \n\t' <"$1" | grep -o '"top1":[0-9]*' | tr '\n' ' '; }
gen o2/smoketest.json >unscaled.txt
run pipe MODEL="$SCRATCH/g3" OUT="$SCRATCH/o2" CHUNK=2 FP16_SCALE=0.5 "${G[@]}"
printf '%s\n' "$err" >s.log
[ "$rc" = 0 ] && ok fp16_scale_converts || fail fp16_scale_converts "exit $rc: $(grep -v '^anemake' s.log | tail -n 3)"
ran=$(steps_run s.log | tr '\n' ',')
[[ $ran != *"LM head"* && $ran == *embeddings* && $ran == *"FFN rotate chunk 01of02"* ]] && ok fp16_scale_reruns_scaled_steps ||
	fail fp16_scale_reruns_scaled_steps "$ran"
[ "$(gen o2/smoketest.json)" = "$(cat unscaled.txt)" ] && ok fp16_scale_same_tokens || fail fp16_scale_same_tokens "$(gen o2/smoketest.json) vs $(cat unscaled.txt)"
grep -qx '# fp16_scale: 0.5' o2/meta.yaml && ok fp16_scale_in_meta || fail fp16_scale_in_meta "$(grep '^# ' o2/meta.yaml | tr '\n' ' ')"
run pipe MODEL="$SCRATCH/g3" OUT="$SCRATCH/o2" CHUNK=2 FP16_SCALE=0.5 CLAMP=30000 "${G[@]}"
printf '%s\n' "$err" >cl.log
ran=$(steps_run cl.log | tr '\n' ',')
[ "$rc" = 0 ] && [[ $ran == *"LM head"* ]] && grep -qx '# clamp: 30000' o2/meta.yaml && ok clamp_reruns_every_part ||
	fail clamp_reruns_every_part "exit $rc, ran $ran"

# --- SPLIT_ROTATE=1: FFN_PF + FFN_PF..._rot per chunk, meta pf and split_rotate -------------
run pipe MODEL="$SCRATCH/g3" OUT="$SCRATCH/o2" CHUNK=2 SPLIT_ROTATE=1 "${G[@]}" meta
[ "$rc" = 0 ] && ok split_rotate_converts || fail split_rotate_converts "exit $rc: $(printf '%s\n' "$err" | grep -v '^anemake' | tail -n 3)"
for c in 01 02; do
	for x in mlpackage mlmodelc; do [ -e o2/gemma3_FFN_PF_chunk_${c}of02_rot.$x ] || fail split_rotate_files "no _rot.$x for chunk $c"; done
done
"$BIN/mldump" o2/gemma3_FFN_PF_chunk_02of02_rot.mlpackage >rot.txt
"$BIN/mldump" o2/gemma3_FFN_PF_chunk_02of02.mlpackage >main.txt
[ "$(grep -E '^(function|default)' rot.txt | tr '\n' ' ')" = 'function "infer_rotate" function "prefill_rotate" default "infer_rotate" ' ] &&
	[ "$(grep -E '^(function|default)' main.txt | tr '\n' ' ')" = 'function "infer" function "prefill" default "infer" ' ] &&
	ok split_rotate_functions || fail split_rotate_functions "$(grep -E '^(function|default)' rot.txt main.txt | tr '\n' ' ')"
grep -qx '    pf: gemma3_FFN_PF_chunk_01of02_rot.mlmodelc' o2/meta.yaml && grep -qx '    split_rotate: true' o2/meta.yaml &&
	grep -qx '# split_rotate: true' o2/meta.yaml && ok split_rotate_meta || fail split_rotate_meta "$(grep -E 'pf:|split_rotate' o2/meta.yaml | tr '\n' ' ')"
run "$BIN/smoketest" --model g3 --meta o2/meta.yaml --steps 36 --prompt 2,17,33,49,65,81,97,113,129,145
[ "$rc" = 0 ] && ok split_rotate_smoketest || fail split_rotate_smoketest "exit $rc: $(printf '%s' "$err" | tail -n 2)"
protoc_ok split_rotate_rot_protoc o2/gemma3_FFN_PF_chunk_02of02_rot.mlpackage
protoc_ok split_rotate_main_protoc o2/gemma3_FFN_PF_chunk_02of02.mlpackage
run pipe MODEL="$SCRATCH/g3" OUT="$SCRATCH/o2" CHUNK=2 "${G[@]}" meta
[ "$rc" = 0 ] && [ -z "$(ls o2 | grep '_rot\.')" ] && ! grep -q 'pf:' o2/meta.yaml && ok split_rotate_off_removes_rot ||
	fail split_rotate_off_removes_rot "exit $rc: $(ls o2 | grep '_rot\.' | tr '\n' ' ')"
run pipe MODEL="$SCRATCH/g3" OUT="$SCRATCH/bad" CHUNK=1 SPLIT_ROTATE=1 "${G[@]}" CONTEXT=32
[ "$rc" != 0 ] && printf '%s\n' "$err" | grep -q '^anemake: SPLIT_ROTATE=1 needs rotate parts' && ok split_rotate_needs_rotate ||
	fail split_rotate_needs_rotate "exit $rc: $err"

run pipe MODEL="$SCRATCH/g3" OUT="$SCRATCH/bad" CHUNK=1 "${G[@]}" BATCH=12 meta
[ "$rc" != 0 ] && printf '%s\n' "$err" | grep -q '^anemake: BATCH=12 does not divide the sliding window 32 .* while CONTEXT=[0-9]* exceeds it' &&
	[ -z "$(ls bad | grep -E 'prefill|FFN_PF|\.tmp\.')" ] && ok batch_must_divide_window || fail batch_must_divide_window "exit $rc: $(printf '%s\n' "$err" | tail -n 2)"

# --- CONTEXT <= window: no rotate steps, old rotate parts removed -------------------------
run pipe MODEL="$SCRATCH/g3" OUT="$SCRATCH/o1" CHUNK=1 "${G[@]}" CONTEXT=32 STEPS=8 PROMPT_IDS=2,17,33
printf '%s\n' "$err" >w.log
[ "$rc" = 0 ] && ok window_context_converts || fail window_context_converts "exit $rc: $(grep -v '^anemake' w.log | tail -n 3)"
[ -z "$(steps_run w.log | grep rotate)" ] && [ -z "$(ls o1 o1/.anemake/build | grep rotate)" ] && ok window_context_no_rotate ||
	fail window_context_no_rotate "$(steps_run w.log | tr '\n' ',') / $(ls o1 | grep rotate | tr '\n' ' ')"
"$BIN/mldump" o1/gemma3_FFN_PF_chunk_01of01.mlpackage | grep -E '^function' | tr '\n' ' ' >fn.txt
[ "$(cat fn.txt)" = 'function "infer" function "prefill" ' ] && ok window_context_two_functions || fail window_context_two_functions "$(cat fn.txt)"

# --- make preflight ---------------------------------------------------------------------------
if [ -x "$BIN/preflight" ]; then
	run pipe MODEL="$SCRATCH/g3" OUT="$SCRATCH/o2" CHUNK=2 "${G[@]}" preflight
	[ "$rc" = 0 ] && grep -q '"ane_compatible":[[:space:]]*true' o2/preflight.json && ok preflight_json ||
		fail preflight_json "exit $rc: $(printf '%s\n' "$err" | tail -n 2)"
	run pipe -q MODEL="$SCRATCH/g3" OUT="$SCRATCH/o2" CHUNK=2 "${G[@]}" preflight
	[ "$rc" = 0 ] && ok preflight_make_q || fail preflight_make_q "make -q says out of date"
	if "$TESTBIN/mkfixture" --help 2>&1 | grep -q -- '--post-norm-gain'; then
		# a post-feedforward norm gain of 1+30000 makes the residual stream overflow fp16
		"$TESTBIN/mkfixture" --arch gemma3_text --out g3big --layers 3 --layer-types s,s,f --sliding-window 32 \
			--post-norm-gain 30000 >/dev/null
		run pipe MODEL="$SCRATCH/g3big" OUT="$SCRATCH/big" "${G[@]}" preflight
		[ "$rc" != 0 ] && [ -s big/preflight.json ] && grep -q '"ane_compatible":[[:space:]]*false' big/preflight.json &&
			[ ! -e big/.anemake/preflight.stamp ] && ok preflight_overflow_fails || fail preflight_overflow_fails "exit $rc: $(printf '%s\n' "$err" | tail -n 2)"
		# the alpha it recommends, given back as FP16_SCALE, makes the same check pass
		alpha=$(tr -d ' \n\t' <big/preflight.json | grep -o '"recommended_fp16_scale":[0-9.e-]*' | cut -d: -f2)
		run pipe MODEL="$SCRATCH/g3big" OUT="$SCRATCH/big" "${G[@]}" FP16_SCALE="$alpha" preflight
		[ "$rc" = 0 ] && grep -q '"ane_compatible":[[:space:]]*true' big/preflight.json && ok preflight_recommended_scale_passes ||
			fail preflight_recommended_scale_passes "FP16_SCALE=$alpha: exit $rc: $(printf '%s\n' "$err" | tail -n 2)"
	else
		skip preflight_overflow_fails "mkfixture cannot write an fp16-overflowing fixture yet"
	fi
else
	skip preflight "no preflight program yet"
fi
finish
