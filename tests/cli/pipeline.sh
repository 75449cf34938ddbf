# pipeline.sh: make MODEL=... end to end, as a user runs it.
#
# The conversion of stories260K and of llama/qwen2/qwen3 fixtures through all
# eight stages ends in ANEMLL's layout and a passing smoketest; a run
# interrupted by Ctrl-C resumes with exactly the steps it had not finished;
# touching the checkpoint reruns nothing and changing LUT3 reruns only what
# depends on the LM head; two clean runs give identical trees; bad input
# stops with a clear line and leaves nothing half-written.
. "$SRC/tests/cli/lib.sh"
STORIES=$SRC/tests/models/stories260K
pipe() { make -C "$SRC" --no-print-directory PIPE_BIN="$BIN" "$@"; }
# steps_run LOG: the steps a make run started, one per line
steps_run() { sed -n 's/^anemake: \(.*\) \.\.\.$/\1/p' "$1" | sort; }

# layout NAME OUT PREFIX LUT2SUFFIX N LUT3SUFFIX: ANEMLL's file layout after a conversion
layout() {
	local name=$1 out=$2 p=$3 lut=$4 n=$5 c missing=
	local head=${p}_lm_head$6.mlmodelc
	for f in meta.yaml tokenizer_config.json ${p}_embeddings.mlmodelc $head; do
		[ -e "$out/$f" ] || missing="$missing $f"
	done
	for ((c = 1; c <= n; c++)); do
		f=$(printf '%s_FFN_PF%s_chunk_%02dof%02d.mlmodelc' "$p" "$lut" "$c" "$n")
		[ -e "$out/$f" ] || missing="$missing $f"
	done
	grep -q "^    num_chunks: $n\$" "$out/meta.yaml" || missing="$missing num_chunks:$n"
	if [ -z "$missing" ]; then ok "$name"; else fail "$name" "missing:$missing ($(ls "$out" | tr '\n' ' '))"; fi
}

# --- stories260K, 2 chunks, LUT 6 -------------------------------------------------
run pipe MODEL="$STORIES" OUT="$SCRATCH/s" LUT2=6,4 LUT3=6 CHUNK=2 CONTEXT=128 BATCH=16 STEPS=24 PROMPT="Once upon a time"
printf '%s\n' "$err" >s.log
if [ "$rc" = 0 ]; then ok stories_converts; else fail stories_converts "exit $rc: $(tail -n 5 s.log)"; fi
layout stories_layout s llama _lut6 2 _lut6
grep -qE '"passed":[[:space:]]*true' s/smoketest.json && ok stories_smoketest_passes || fail stories_smoketest_passes "$(head -c 300 s/smoketest.json)"
printf '%s\n' "$out" | grep -q '^text: *Once upon a time, there was' && ok stories_tells_a_story || fail stories_tells_a_story "$out"
grep -qxF "    python3 tests/chat.py --meta $SCRATCH/s/meta.yaml --prompt 'Once upon a time'" <<<"$out" &&
	grep -q '^    swift run -c release anemllcli --meta ' <<<"$out" && grep -qE '^    24 generated tokens, .*: passed' <<<"$out" &&
	grep -q '^  pack it for Hugging Face .*: the same make command with the target dist$' <<<"$out" &&
	ok stories_says_what_next || fail stories_says_what_next "$out"
"$BIN/mldump" s/llama_FFN_PF_lut6_chunk_01of02.mlpackage | grep -q '^function "prefill"' && ok stories_combined || fail stories_combined "no prefill function"

# what ships is OUT but .anemake; the chunks before combine and the quality reports are intermediates
ships="config.json generation_config.json llama_FFN_PF_lut6_chunk_01of02.mlmodelc llama_FFN_PF_lut6_chunk_01of02.mlpackage"
ships+=" llama_FFN_PF_lut6_chunk_02of02.mlmodelc llama_FFN_PF_lut6_chunk_02of02.mlpackage llama_embeddings.mlmodelc"
ships+=" llama_embeddings.mlpackage llama_lm_head_lut6.mlmodelc llama_lm_head_lut6.mlpackage meta.yaml smoketest.json"
ships+=" tokenizer.json tokenizer_config.json"
[ "$(ls s | tr '\n' ' ')" = "$ships " ] && ok stories_out_holds_what_ships || fail stories_out_holds_what_ships "$(ls s | tr '\n' ' ')"
built=$(cd s/.anemake/build && ls | LC_ALL=C sort | tr '\n' ' ')
want_built=$(for k in FFN_lut6 prefill_lut6; do for c in 01 02; do printf 'llama_%s_chunk_%sof02.%s\n' $k $c mlpackage $k $c quality.json; done; done
	echo llama_lm_head_lut6.quality.json)
[ "$built" = "$(LC_ALL=C sort <<<"$want_built" | tr '\n' ' ')" ] && ok stories_intermediates_apart || fail stories_intermediates_apart "$built"

# an OUT of the earlier layout (chunks and reports beside the parts): once its steps
# rerun, the chunks and reports move into .anemake/build and nothing stale stays
cp -a s old
for f in old/.anemake/build/*; do mv "$f" old/; done
for f in old/.anemake/*.outputs; do sed -i 's|^\.anemake/build/||' "$f"; done
for f in old/.anemake/*.done; do echo stale >"$f"; done # another anemake version: every key differs
rm old/.anemake/*.stamp
run pipe MODEL="$STORIES" OUT="$SCRATCH/old" LUT2=6,4 LUT3=6 CHUNK=2 CONTEXT=128 BATCH=16 STEPS=24 PROMPT="Once upon a time"
[ "$rc" = 0 ] && [ "$(ls old | tr '\n' ' ')" = "$ships " ] && [ "$(cd old/.anemake/build && ls | tr '\n' ' ')" = "$(cd s/.anemake/build && ls | tr '\n' ' ')" ] &&
	ok old_layout_moves_apart || fail old_layout_moves_apart "exit $rc: $(ls old | tr '\n' ' ')"

# a second make does nothing, and says so to make -q
run pipe MODEL="$STORIES" OUT="$SCRATCH/s" LUT2=6,4 LUT3=6 CHUNK=2 CONTEXT=128 BATCH=16 STEPS=24 PROMPT="Once upon a time"
printf '%s\n' "$err" >s2.log
[ "$rc" = 0 ] && [ -z "$(steps_run s2.log)" ] && ok second_run_does_nothing || fail second_run_does_nothing "$(steps_run s2.log | tr '\n' ',')"
pipe -q MODEL="$STORIES" OUT="$SCRATCH/s" LUT2=6,4 LUT3=6 CHUNK=2 CONTEXT=128 BATCH=16 STEPS=24 PROMPT="Once upon a time" 2>/dev/null
[ $? = 0 ] && ok make_q_up_to_date || fail make_q_up_to_date "make -q says out of date"

# early cutoff: same bytes, new mtime -> nothing; another LUT3 -> only what follows the LM head
cp -r "$STORIES" stories_copy
touch stories_copy/*
run pipe MODEL="$SCRATCH/stories_copy" OUT="$SCRATCH/c" LUT2=6,4 LUT3=6 CHUNK=2 CONTEXT=128 BATCH=16 STEPS=8
touch stories_copy/model.safetensors stories_copy/config.json
run pipe MODEL="$SCRATCH/stories_copy" OUT="$SCRATCH/c" LUT2=6,4 LUT3=6 CHUNK=2 CONTEXT=128 BATCH=16 STEPS=8
printf '%s\n' "$err" >c2.log
[ -z "$(steps_run c2.log)" ] && ok touch_reruns_nothing || fail touch_reruns_nothing "$(steps_run c2.log | tr '\n' ',')"
run pipe MODEL="$SCRATCH/stories_copy" OUT="$SCRATCH/c" LUT2=6,4 LUT3=4 CHUNK=2 CONTEXT=128 BATCH=16 STEPS=8
printf '%s\n' "$err" >c3.log
want=$(printf '%s\n' "LM head" compile meta.yaml smoketest | sort) # everything else: not even looked at
[ "$(steps_run c3.log)" = "$want" ] && ok lut3_reruns_head_and_after || fail lut3_reruns_head_and_after "$(steps_run c3.log | tr '\n' ',')"
[ ! -e c/llama_lm_head_lut6.mlpackage ] && [ -e c/llama_lm_head_lut4.mlpackage ] && [ ! -e c/.anemake/build/llama_lm_head_lut6.quality.json ] &&
	[ -e c/.anemake/build/llama_lm_head_lut4.quality.json ] && ok stale_head_removed || fail stale_head_removed "$(ls c c/.anemake/build)"

# the smoketest's thresholds are make variables: only the smoketest reruns, judged by them
run pipe MODEL="$SCRATCH/stories_copy" OUT="$SCRATCH/c" LUT2=6,4 LUT3=4 CHUNK=2 CONTEXT=128 BATCH=16 STEPS=8 MIN_AGREEMENT=100 MAX_KL=0
printf '%s\n' "$err" >c4.log
[ "$rc" != 0 ] && [ "$(steps_run c4.log)" = smoketest ] && grep -q '^FAIL (thresholds: agreement >= 100%, KL mean <= 0)' <<<"$out" &&
	ok min_agreement_variable || fail min_agreement_variable "exit $rc: $(steps_run c4.log | tr '\n' ,) $out"
run pipe MODEL="$SCRATCH/stories_copy" OUT="$SCRATCH/c" LUT2=6,4 LUT3=4 CHUNK=2 CONTEXT=128 BATCH=16 STEPS=8 MIN_AGREEMENT=0 MAX_KL=1e9
[ "$rc" = 0 ] && grep -q '^PASS (thresholds: agreement >= 0%, KL mean <= 1e+09)' <<<"$out" &&
	ok max_kl_variable || fail max_kl_variable "exit $rc: $out"

# determinism: a clean rerun gives the same tree
cp -r s first
pipe MODEL="$STORIES" OUT="$SCRATCH/s" clean-model >/dev/null 2>&1
pipe MODEL="$STORIES" OUT="$SCRATCH/s" LUT2=6,4 LUT3=6 CHUNK=2 CONTEXT=128 BATCH=16 STEPS=24 PROMPT="Once upon a time" >/dev/null 2>&1
if diff -r -x .anemake -x smoketest.json first s >/dev/null; then ok clean_runs_identical
else fail clean_runs_identical "$(diff -r -x .anemake -x smoketest.json first s | head -n 3)"; fi

# --- Ctrl-C in the middle, then resume ---------------------------------------------
"$TESTBIN/mkfixture" --arch llama --out big --hidden 256 --intermediate 1024 --layers 4 --vocab 1024 >/dev/null
# A background job of a non-interactive shell starts with SIGINT ignored; a
# terminal's Ctrl-C does not, so restore the default before make starts.
setsid perl -e '$SIG{INT} = "DEFAULT"; exec @ARGV or die' make -C "$SRC" --no-print-directory PIPE_BIN="$BIN" \
	MODEL="$SCRATCH/big" OUT="$SCRATCH/k" LUT2=6 CHUNK=2 CONTEXT=64 BATCH=8 STEPS=4 >k1.out 2>k1.log &
pid=$!
for ((i = 0; i < 600; i++)); do grep -q '^anemake: FFN chunk' k1.log 2>/dev/null && break; sleep 0.05; done
kill -INT -- -"$pid" 2>/dev/null
wait "$pid"
left=$(find k -name '*.tmp.*' | head -n 3)
[ -z "$left" ] && ok interrupt_leaves_no_temporaries || fail interrupt_leaves_no_temporaries "$left"
missing=$(for s in embed lmhead ffn-01of02 prefill-01of02 ffn-02of02 prefill-02of02 combine-01of02 combine-02of02 compile meta test; do
	[ -e "k/.anemake/$s.stamp" ] || echo "$s"; done)
[ -n "$missing" ] && ok interrupted_before_the_end || fail interrupted_before_the_end "everything finished before the kill"
run make -C "$SRC" --no-print-directory PIPE_BIN="$BIN" MODEL="$SCRATCH/big" OUT="$SCRATCH/k" LUT2=6 CHUNK=2 CONTEXT=64 BATCH=8 STEPS=4
printf '%s\n' "$err" >k2.log
label() { case $1 in embed) echo embeddings;; lmhead) echo "LM head";; ffn-*) echo "FFN chunk ${1#ffn-}";;
	prefill-*) echo "prefill chunk ${1#prefill-}";; combine-*) echo "combine chunk ${1#combine-}";;
	meta) echo meta.yaml;; test) echo smoketest;; *) echo "$1";; esac; }
want=$(for s in $missing; do label "$s"; done | sort)
[ "$rc" = 0 ] && [ "$(steps_run k2.log)" = "$want" ] && ok resume_runs_only_what_was_missing ||
	fail resume_runs_only_what_was_missing "ran: $(steps_run k2.log | tr '\n' ','); missing were: $(echo $want | tr '\n' ',')"

# --- fixtures of each architecture, CHUNK=1 / auto ---------------------------------
"$TESTBIN/mkfixture" --arch qwen3 --out q3 --layers 3 >/dev/null
# random weights have nearly flat logits: without LUT the comparison is exact
expect_ok qwen3_chunk1 pipe MODEL="$SCRATCH/q3" OUT="$SCRATCH/q3o" LUT2= LUT3= CHUNK=1 CONTEXT=64 BATCH=8 STEPS=8
layout qwen3_layout q3o qwen "" 1 ""
"$TESTBIN/mkfixture" --arch qwen2 --out q2 --layers 3 >/dev/null
expect_ok qwen2_chunk_auto pipe MODEL="$SCRATCH/q2" OUT="$SCRATCH/q2o" LUT2= LUT3= CHUNK=auto MAX_CHUNK_MB=0.03 CONTEXT=64 BATCH=8 STEPS=8
n=$(sed -n 's/^    num_chunks: //p' q2o/meta.yaml)
[ "${n:-0}" -gt 1 ] && ok auto_plans_chunks || fail auto_plans_chunks "num_chunks $n"
layout qwen2_layout q2o qwen25 "" "${n:-0}" ""
run pipe MODEL="$SCRATCH/q2" OUT="$SCRATCH/q2o" LUT2= LUT3= CHUNK=auto MAX_CHUNK_MB=0.03 plan
printf '%s\n' "$out" | grep -q '^recommended' && ok make_plan || fail make_plan "$out"

# --- a prefill part comes after its FFN part (make -j too) and reads the LUT cache -------
run pipe MODEL="$STORIES" OUT="$SCRATCH/pj" LUT2=6,4 CHUNK=2 CONTEXT=64 BATCH=8 prefill-01
printf '%s\n' "$err" >pj.log
[ "$rc" = 0 ] && [ "$(steps_run pj.log | tr '\n' ',')" = "$(printf '%s\n' 'FFN chunk 01of02' 'prefill chunk 01of02' | sort | tr '\n' ',')" ] &&
	grep -q '^prefill: .* \([0-9][0-9]*\) tensors palettized (\1 from cache' pj.log &&
	ok prefill_after_ffn || fail prefill_after_ffn "exit $rc: $(grep -v '^anemake: hashing' pj.log | head -n 8)"

# --- bad input ------------------------------------------------------------------------
run pipe MODEL="$SCRATCH/nowhere" OUT="$SCRATCH/bad1"
[ "$rc" != 0 ] && printf '%s\n' "$err" | grep -q "^anemake: .*nowhere" && ok unknown_model || fail unknown_model "exit $rc: $err"
"$TESTBIN/mkfixture" --arch llama --out mist >/dev/null
sed -i 's/"llama"/"mixtral"/; s/LlamaForCausalLM/MixtralForCausalLM/' mist/config.json
run pipe MODEL="$SCRATCH/mist" OUT="$SCRATCH/bad2"
[ "$rc" != 0 ] && printf '%s\n' "$err" | grep -q "mixtral" && ok unsupported_architecture || fail unsupported_architecture "exit $rc: $err"
run pipe MODEL="$STORIES" OUT="$SCRATCH/bad3" LUT2=7
[ "$rc" != 0 ] && printf '%s\n' "$err" | grep -q "^anemake: LUT2: .*'7'" && ok bad_lut_spec || fail bad_lut_spec "exit $rc: $err"
run pipe MODEL="$STORIES" OUT="$SCRATCH/bad4" LUT2=6,4 CHUNK=1 CONTEXT=64 BATCH=8 MAX_WEIGHT_MB=0.01
[ "$rc" != 0 ] && printf '%s\n' "$err" | grep -q "^compile: .*chunk" && [ -z "$(ls -d bad4/*.mlmodelc 2>/dev/null)" ] &&
	printf '%s\n' "$err" | grep -qx "anemake: compile failed (with MAX_WEIGHT_MB=0.01)" &&
	ok weight_over_limit || fail weight_over_limit "exit $rc: $(printf '%s\n' "$err" | grep -v '^anemake' | head -n 3)"
finish
