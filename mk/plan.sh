#!/usr/bin/env bash
# plan.sh: the conversion plan and every step's inputs, refreshed on each make.
#
# Run by make as the recipe of $(ST)/plan.mk (an included makefile, so it runs
# even under make -q and make -n). It asks `ffn --plan` for the resolved model
# directory, the file prefix and the chunk count (CHUNK=auto: ANEMLL's
# calc_chunk_split rule), decides which steps the conversion has (chunked:
# embed, lmhead, ffn/prefill per chunk, and for Gemma 3 with CONTEXT above the
# sliding window ffn_rotate/prefill_rotate per chunk, combine per chunk;
# MONOLITHIC=1: monolithic, monolithic_prefill (+ the rotate pair), one
# combine; then compile, meta, test; preflight always), writes one NAME.args
# file per step (parameters and input files), refreshes NAME.key from it
# (replaced only when it changes), removes the outputs of steps an earlier
# plan had and this one has not, and writes plan.mk (replaced only when it
# changes, so make restarts only when the plan itself changed).
# Environment: BIN MODEL OUT ST CONTEXT BATCH LUT1 LUT2 LUT3 CHUNK MAX_CHUNK_MB
#              PREFIX ARGMAX MAX_WEIGHT_MB STEPS PROMPT PROMPT_IDS SPLIT_ROTATE FP16_SCALE
#              CLAMP MONOLITHIC LUT LUT_EMBED LUT_LMHEAD ORG DIST NAME IGNORED (the variables
#              given on the command line that MONOLITHIC=1 does not use)
#
# A failed plan (its one-line reason already printed) still writes plan.mk,
# with PLAN_ERROR set and a fresh token so make always restarts on it; the
# restarted make stops there (pipeline.mk), instead of going on with the
# plan of an earlier run, which -include would silently allow.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$ST"
if [ -z "${PLAN_INNER:-}" ]; then
	trap 'exit 130' INT
	trap 'exit 143' TERM
	PLAN_INNER=1 "$0" && exit 0
	rc=$?
	[ $rc -lt 128 ] || exit $rc
	printf '# written by mk/plan.sh after a failure (%s.%s)\nPLAN_ERROR := the plan failed (see above)\n' \
		"$(date +%s)" "$$" >"$ST/plan.mk.tmp.$$"
	mv -f "$ST/plan.mk.tmp.$$" "$ST/plan.mk"
	exit 0
fi
trap 'rm -f "$ST"/*.args.tmp "$ST/plan.mk.tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

die() { echo "anemake: $*" >&2; exit 1; }
[[ $CONTEXT =~ ^[0-9]+$ ]] || die "CONTEXT=$CONTEXT is not a number"
if [ -n "$MONOLITHIC" ]; then
	[ -z "$SPLIT_ROTATE" ] || die "SPLIT_ROTATE=1 applies to chunked conversions, not with MONOLITHIC=1"
	for v in $IGNORED; do echo "anemake: MONOLITHIC=1 ignores $v (one package; LUT, LUT_EMBED, LUT_LMHEAD set its LUTs)" >&2; done
	chunk_arg=1 lut_arg=$LUT
else
	chunk_arg=$CHUNK lut_arg=$LUT2
fi
plan=$("$BIN/ffn" --plan --model "$MODEL" --chunk "$chunk_arg" --max-chunk-mb "$MAX_CHUNK_MB" \
	${lut_arg:+--lut "$lut_arg"} ${PREFIX:+--prefix "$PREFIX"} 2>"$ST/plan.txt") || { cat "$ST/plan.txt" >&2; exit 1; }
model_dir=$(sed -n 's/^model_dir=//p' <<<"$plan")
prefix=$(sed -n 's/^prefix=//p' <<<"$plan")
nchunk=$(sed -n 's/^chunks=//p' <<<"$plan")
[ -z "$MONOLITHIC" ] || nchunk=0
nn=$(printf '%02d' "$nchunk")

# Rotate parts are Gemma 3's (every model_type gemma3*), as in
# convert_model.sh: its window is config.json's sliding_window (text_config's
# for the multimodal one; `ffn --plan` states it as sliding_window= when it
# knows it), 512 when absent, and they exist when CONTEXT exceeds it.
window= rotate=
if grep -Eq '"model_type"[[:space:]]*:[[:space:]]*"gemma3' "$model_dir/config.json"; then
	window=$(sed -n 's/^sliding_window=//p' <<<"$plan")
	[ -n "$window" ] || window=$(grep -Eo '"sliding_window"[[:space:]]*:[[:space:]]*[0-9]+' "$model_dir/config.json" |
		head -n 1 | grep -Eo '[0-9]+$' || true)
	window=${window:-512}
	[ "$CONTEXT" -le "$window" ] || rotate=1
fi
if [ -n "$SPLIT_ROTATE" ] && [ -z "$rotate" ]; then
	die "SPLIT_ROTATE=1 needs rotate parts: a Gemma 3 model with CONTEXT above its sliding window${window:+ ($window)}"
fi

model_inputs() {
	local f
	for f in "$model_dir"/config.json "$model_dir"/*.safetensors "$model_dir"/*.safetensors.index.json; do
		[ -e "$f" ] && echo "input $f"
	done
	return 0
}
tokenizer_inputs() {
	local f
	for f in tokenizer.json tokenizer_config.json tokenizer.model chat_template.jinja generation_config.json \
		special_tokens_map.json added_tokens.json vocab.json merges.txt; do
		[ -e "$model_dir/$f" ] && echo "input $model_dir/$f"
	done
	return 0
}
planned=" "
# args NAME LINES...: write ST/NAME.args and refresh ST/NAME.key
args() {
	local name=$1
	shift
	printf '%s\n' "$@" >"$ST/$name.args.tmp"
	mv -f "$ST/$name.args.tmp" "$ST/$name.args"
	"$here/key.sh" key "$ST/$name.key" "$ST/$name.args"
	planned+="$name "
}

# FP16_SCALE scales weights of the embeddings and the layers (the LM head's
# input is normalized: scale-invariant); CLAMP is applied in every part.
common=("param CONTEXT=$CONTEXT" "param PREFIX=$prefix")
scaled=("param FP16_SCALE=$FP16_SCALE" "param CLAMP=$CLAMP")
if [ -n "$MONOLITHIC" ]; then
	mono=("${common[@]}" "${scaled[@]}" "param BATCH=$BATCH" "param LUT=$LUT" "param LUT_EMBED=$LUT_EMBED"
		"param LUT_LMHEAD=$LUT_LMHEAD")
	parts=(monolithic monolithic_prefill)
	[ -z "$rotate" ] || parts+=(monolithic_rotate monolithic_prefill_rotate)
	combine_in=()
	for p in "${parts[@]}"; do
		prog=ffn argmax=("param ARGMAX=$ARGMAX") # the argmax is the infer parts' only
		[[ $p == *prefill* ]] && prog=prefill argmax=()
		args "$p" "${mono[@]}" "${argmax[@]}" "input $BIN/$prog" "$(model_inputs)"
		combine_in+=("input $ST/$p.out")
	done
	args combine "param LUT=$LUT" "input $BIN/combine" "${combine_in[@]}"
	args compile "param MAX_WEIGHT_MB=$MAX_WEIGHT_MB" "input $BIN/compile" "input $ST/combine.out"
	meta_params=("param LUT=$LUT" "param LUT_EMBED=$LUT_EMBED" "param LUT_LMHEAD=$LUT_LMHEAD")
else
	args embed "${common[@]}" "${scaled[@]}" "param BATCH=$BATCH" "param LUT1=$LUT1" "input $BIN/embed" "$(model_inputs)"
	args lmhead "${common[@]}" "param CLAMP=$CLAMP" "param LUT3=$LUT3" "param ARGMAX=$ARGMAX" "input $BIN/lmhead" \
		"$(model_inputs)"
	stages=(ffn prefill)
	[ -z "$rotate" ] || stages+=(ffn_rotate prefill_rotate)
	combined=()
	for ((c = 1; c <= nchunk; c++)); do
		id=$(printf '%02dof%s' "$c" "$nn")
		combine_in=()
		for stage in "${stages[@]}"; do
			args "$stage-$id" "${common[@]}" "${scaled[@]}" "param BATCH=$BATCH" "param LUT2=$LUT2" \
				"param CHUNK=$c/$nchunk" "input $BIN/${stage%_rotate}" "$(model_inputs)"
			combine_in+=("input $ST/$stage-$id.out")
		done
		args "combine-$id" "param SPLIT_ROTATE=$SPLIT_ROTATE" "input $BIN/combine" "${combine_in[@]}"
		combined+=("input $ST/combine-$id.out")
	done
	args compile "param MAX_WEIGHT_MB=$MAX_WEIGHT_MB" "input $BIN/compile" "input $ST/embed.out" "input $ST/lmhead.out" \
		"${combined[@]}"
	meta_params=("param SPLIT_ROTATE=$SPLIT_ROTATE")
fi
# meta.yaml records FP16_SCALE and CLAMP in its comments.
args meta "${meta_params[@]}" "${scaled[@]}" "input $BIN/metagen" "input $ST/compile.out" \
	"input $model_dir/config.json" "$(tokenizer_inputs)"
args test "param STEPS=$STEPS" "param PROMPT=$PROMPT" "param PROMPT_IDS=$PROMPT_IDS" "${scaled[@]}" "input $BIN/smoketest" "input $ST/meta.out" "$(model_inputs)" \
	"$(tokenizer_inputs)"
args preflight "param PROMPT=$PROMPT" "param PROMPT_IDS=$PROMPT_IDS" "${scaled[@]}" "input $BIN/preflight" "$(model_inputs)" "$(tokenizer_inputs)"
# dist ships what compile, meta and test wrote, with the source's card (license, base_model).
args dist "param ORG=${ORG:-}" "param DIST=${DIST:-}" "param NAME=${NAME:-}" "param MAX_WEIGHT_MB=$MAX_WEIGHT_MB" \
	"input $BIN/dist" "input $ST/compile.out" "input $ST/meta.out" "input $ST/test.out" "input $OUT/preflight.json" \
	"input $model_dir/README.md" "input $model_dir/config.json" "$(tokenizer_inputs)"

# Steps of an earlier plan that this one has not (another chunk count,
# another mode, CONTEXT now below the window): their outputs are stale.
for paths in "$ST"/*.paths; do
	[ -e "$paths" ] || continue
	step=$(basename "$paths" .paths)
	[[ $planned == *" $step "* ]] && continue
	while read -r f; do rm -rf -- "$f" "${f%.mlpackage}.quality.json"; done <"$paths"
	rm -f "$ST/$step".*
done

{
	echo "# written by mk/plan.sh; do not edit"
	echo "MODEL_DIR := $model_dir"
	echo "PREFIX_EFF := $prefix"
	echo "NCHUNK := $nchunk"
	echo "ROTATE := $rotate"
	printf 'CHUNK_IDS :='; for ((c = 1; c <= nchunk; c++)); do printf ' %02dof%s' "$c" "$nn"; done; echo
} >"$ST/plan.mk.tmp"
if cmp -s "$ST/plan.mk.tmp" "$ST/plan.mk"; then rm -f "$ST/plan.mk.tmp"; else mv -f "$ST/plan.mk.tmp" "$ST/plan.mk"; fi
