# plan.sh: the plan checks every value against the model before any stage runs.
#
# A value the model cannot take stops `make` in the plan, in seconds, with one
# line naming the make variable as the user typed it and the tensor as the
# checkpoint spells it, and nothing is built; the defaults convert the bundled
# stories260K (its MLP's 172 channels take LUT group 4, not 8).
. "$SRC/tests/cli/lib.sh"
STORIES=$SRC/tests/models/stories260K
pipe() { make -C "$SRC" --no-print-directory PIPE_BIN="$BIN" "$@"; }

# refused NAME REGEX MAKEARGS...: make stops in the plan with a stderr line
# matching REGEX (after the plan's notes, if any), within 60 s, and writes no package
refused() {
	local name=$1 re=$2
	shift 2
	rm -rf "$SCRATCH/r"
	local t0=$SECONDS
	run pipe OUT="$SCRATCH/r" "$@"
	if [ "$rc" = 0 ]; then fail "$name" "make succeeded"
	elif ! printf '%s\n' "$err" | grep -v 'does not divide.*: using' | head -n 1 | grep -Eq -- "$re"; then
		fail "$name" "stderr '$err' does not match /$re/"
	elif [ -n "$(ls "$SCRATCH/r" 2>/dev/null | grep mlpackage)" ]; then fail "$name" "built: $(ls "$SCRATCH/r")"
	elif [ $((SECONDS - t0)) -gt 60 ]; then fail "$name" "took $((SECONDS - t0)) s"
	else ok "$name"; fi
}

refused lut2_group_8 '^anemake: LUT2=4,8: model\.layers\.0\.mlp\.gate_proj\.weight has 172 output channels; groups that divide it: 1, 2, 4; try LUT2=4,4$' \
	MODEL="$STORIES" LUT2=4,8
refused lut2_group_7 '^anemake: LUT2=6,7: model\.layers\.0\.self_attn\.q_proj\.weight has 64 output channels; groups that divide it: 1, 2, 4; try LUT2=6,4$' \
	MODEL="$STORIES" LUT2=6,7
refused lut3_bits_5 "^anemake: LUT3: bad LUT spec '5': unsupported bit width" MODEL="$STORIES" LUT3=5
refused lut1_group_3 '^anemake: LUT1=6,3: model\.embed_tokens\.weight has 512 output channels; groups that divide it: 1, 2; try LUT1=6,2$' \
	MODEL="$STORIES" LUT1=6,3
refused lut3_group_3 '^anemake: LUT3=6,3: model\.embed_tokens\.weight rows 0-63 \(LM-head split 1 of 8\) has 64 output channels; groups that divide it: 1, 2; try LUT3=6,2$' \
	MODEL="$STORIES" LUT3=6,3
refused mono_lut_embed '^anemake: LUT_EMBED=4,3: model\.embed_tokens\.weight has 512 output channels; groups that divide it: 1, 2; try LUT_EMBED=4,2$' \
	MODEL="$STORIES" MONOLITHIC=1 LUT_EMBED=4,3
# The values of the later steps (smoketest, compile, dist) are checked by the plan too.
refused steps_not_number '^anemake: STEPS=x is not a positive whole number$' MODEL="$STORIES" STEPS=x
refused min_agreement_not_number '^anemake: MIN_AGREEMENT=abc is not a non-negative number$' MODEL="$STORIES" MIN_AGREEMENT=abc
refused min_agreement_over_100 '^anemake: MIN_AGREEMENT=150 is a percentage: 0 to 100$' MODEL="$STORIES" MIN_AGREEMENT=150
refused max_kl_negative '^anemake: MAX_KL=-1 is not a non-negative number$' MODEL="$STORIES" MAX_KL=-1
refused max_weight_not_number '^anemake: MAX_WEIGHT_MB=1e is not a non-negative number$' MODEL="$STORIES" MAX_WEIGHT_MB=1e
refused prompt_ids_not_ids '^anemake: PROMPT_IDS=1,a is not token ids \(1,2,3\)$' MODEL="$STORIES" PROMPT_IDS=1,a
refused org_not_hub_name "^anemake: ORG=a/b is not a Hugging Face name" MODEL="$STORIES" ORG=a/b
refused batch_above_context '^anemake: BATCH=64 exceeds CONTEXT=32: a prefill batch must fit in the context$' MODEL="$STORIES" CONTEXT=32
refused chunks_above_layers '^anemake: CHUNK=9: .*stories260K/config\.json has only 5 layers \(num_hidden_layers\)$' MODEL="$STORIES" CHUNK=9
# Values the stages' option parser refuses, in the make variable the user typed.
refused chunk_zero '^anemake: CHUNK=0 is not a chunk count \(1-1024\) or auto$' MODEL="$STORIES" CHUNK=0
refused batch_zero '^anemake: BATCH=0 is out of range \[1, 4096\]$' MODEL="$STORIES" BATCH=0
refused prefix_with_slash "^anemake: PREFIX=a/b is not a file-name prefix \\(a letter or digit, then letters, digits, '.', '_', '-'\\)$" \
	MODEL="$STORIES" PREFIX=a/b
refused context_above_max_position '^anemake: CONTEXT=1024 exceeds the model.s max_position_embeddings 512 ' MODEL="$STORIES" CONTEXT=1024

"$TESTBIN/mkfixture" --arch gemma3_text --out g3w --layers 2 --layer-types s,f --sliding-window 32 --seed 3 >/dev/null
refused gemma_window_batch '^anemake: BATCH=24 does not divide the sliding window 32 of .*g3w/config\.json while CONTEXT=64 exceeds it' \
	MODEL="$SCRATCH/g3w" CONTEXT=64 BATCH=24

# GPTQ=1 collects layers x width^2 doubles: a model too wide for them is refused by the
# plan, naming GPTQ, not after the calibration run.
"$TESTBIN/mkfixture" --arch llama --out wide --layers 2 --intermediate 12288 --seed 3 >/dev/null
refused gptq_too_wide '^anemake: GPTQ=1: second moments \(GPTQ\) of every linear layer.s input would take 2\.4 GB \(at most 1\.1\): this model is too large for them$' \
	MODEL="$SCRATCH/wide" CALIB="$SRC/tests/data/calib-stories.txt" GPTQ=1

# A first plan that fails leaves nothing behind: not the OUT it made (with its parents),
# not even .anemake in an OUT that was there.
rm -rf fresh kept && mkdir kept
run pipe OUT="$SCRATCH/fresh/deep/out" MODEL="$STORIES" LUT2=5
[ "$rc" != 0 ] && [ ! -e fresh ] && ok failed_plan_leaves_no_out ||
	fail failed_plan_leaves_no_out "exit $rc; left: $(find fresh 2>/dev/null | head -n 5)"
run pipe OUT="$SCRATCH/kept" MODEL="$STORIES" LUT2=5
[ "$rc" != 0 ] && [ -d kept ] && [ -z "$(ls -A kept)" ] && ok failed_plan_keeps_out ||
	fail failed_plan_keeps_out "exit $rc; kept holds: $(ls -A kept 2>&1)"

# A model whose config disagrees with its checkpoint or tokenizer.
bad_copy() { rm -rf "$1" && cp -r "$STORIES" "$1"; }
bad_copy bos && sed -i.orig 's/"bos_token_id": 1,/"bos_token_id": 600,/' bos/config.json
refused bos_beyond_vocab '^anemake: .*bos/config\.json: bos_token_id 600 is not below vocab_size 512$' MODEL="$SCRATCH/bos"
bad_copy fewer && sed -i.orig 's/"num_hidden_layers": 5,/"num_hidden_layers": 4,/' fewer/config.json
refused layers_dropped '^anemake: .*fewer/config\.json: num_hidden_layers is 4, but .* holds layers up to model\.layers\.4: they would be dropped$' \
	MODEL="$SCRATCH/fewer"
bad_copy untied && sed -i.orig 's/"tie_word_embeddings": true,/"tie_word_embeddings": false,/' untied/config.json
refused untied_without_head '^anemake: .*untied/config\.json: tie_word_embeddings is false, but .* has no lm_head\.weight$' MODEL="$SCRATCH/untied"
bad_copy trunc && head -c 3000 "$STORIES/tokenizer.json" >trunc/tokenizer.json
refused truncated_tokenizer '^anemake: .*trunc/tokenizer\.json' MODEL="$SCRATCH/trunc"
# make eval's text: checked before anything is converted, naming EVAL.
: >empty.txt && printf 'Once upon a time.\n' >short.txt && bad_copy other
refused eval_missing_text '^anemake: EVAL=.*/nope\.txt: no such file$' MODEL="$STORIES" EVAL="$SCRATCH/nope.txt" eval
refused eval_text_is_a_dir '^anemake: EVAL=.*/other: not a file$' MODEL="$STORIES" EVAL="$SCRATCH/other" eval
refused eval_empty_text '^anemake: EVAL=.*/empty\.txt: empty$' MODEL="$STORIES" EVAL="$SCRATCH/empty.txt" eval
refused eval_too_few_tokens '^anemake: EVAL=.*/short\.txt: 6 tokens, an evaluation needs at least 16$' MODEL="$STORIES" \
	EVAL="$SCRATCH/short.txt" eval
refused eval_needs_text '^anemake: make eval needs EVAL=<a text file> to measure the model on$' MODEL="$SCRATCH/other" eval

# The defaults: the plan says which group it took, every stage that
# palettizes agrees, and the result names it.
run pipe MODEL="$STORIES" OUT="$SCRATCH/d" embed lmhead ffn prefill
printf '%s\n' "$err" >d.log
if [ "$rc" = 0 ]; then ok defaults_convert; else fail defaults_convert "exit $rc: $(tail -n 3 d.log)"; fi
[ "$(grep -c '^anemake: LUT2=4: group 8 does not divide model\.layers\.0\.mlp\.gate_proj\.weight (172 output channels): using LUT2=4,4$' d.log)" = 1 ] &&
	ok defaults_group_said_once || fail defaults_group_said_once "$(grep -i group d.log)"
grep -q '"group":[[:space:]]*4,' d/.anemake/build/llama_FFN_lut4_chunk_01of02.quality.json && grep -q '"group":[[:space:]]*4,' d/.anemake/build/llama_prefill_lut4_chunk_02of02.quality.json &&
	! grep -q '"group":[[:space:]]*8' d/.anemake/build/llama_FFN_lut4_chunk_0*.quality.json && ok defaults_group_4 || fail defaults_group_4 "$(ls d)"
# ST and BUILD on the command line (BUILD=debug out of habit) do not move anything out of OUT.
run pipe MODEL="$STORIES" OUT="$SCRATCH/o" ST="$SCRATCH/st" BUILD="$SCRATCH/bd" lmhead
[ "$rc" = 0 ] && [ ! -e "$SCRATCH/st" ] && [ ! -e "$SCRATCH/bd" ] && [ -f "$SCRATCH/o/.anemake/build/llama_lm_head_lut6.quality.json" ] &&
	ok internal_vars_stay || fail internal_vars_stay "exit $rc, $(ls -A "$SCRATCH") $(ls -A "$SCRATCH/o/.anemake/build")"
# make plan shows the whole plan, its note once and as anemake's, on a fresh OUT and again.
for n in fresh again; do
	[ $n = fresh ] && rm -rf "$SCRATCH/p"
	run pipe MODEL="$STORIES" OUT="$SCRATCH/p" plan
	all=$(printf '%s\n%s\n' "$out" "$err")
	notes=$(printf '%s\n' "$all" | grep -c 'group 8 does not divide')
	[ "$rc" = 0 ] && [ "$notes" = 1 ] && ! printf '%s\n' "$all" | grep -q '^ffn: ' && printf '%s\n' "$all" | grep -q '^plan: 2 chunk' &&
		ok plan_note_once_$n || fail plan_note_once_$n "exit $rc, $notes notes: $all"
done
grep -q '"group":[[:space:]]*8,' d/.anemake/build/llama_lm_head_lut6.quality.json && ok defaults_head_keeps_8 || fail defaults_head_keeps_8 "$(head -c 200 d/.anemake/build/llama_lm_head_lut6.quality.json)"
finish
