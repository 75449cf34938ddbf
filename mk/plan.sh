#!/usr/bin/env bash
# plan.sh: the conversion plan and every step's inputs, refreshed on each make.
#
# Run by make as the recipe of $(ST)/plan.mk (an included makefile, so it runs
# even under make -q and make -n). It asks `ffn --plan` for the resolved model
# directory, the file prefix and the chunk count (CHUNK=auto: ANEMLL's
# calc_chunk_split rule), writes one NAME.args file per step (parameters and
# input files), refreshes NAME.key from it (replaced only when it changes),
# and writes plan.mk (replaced only when it changes, so make restarts only
# when the plan itself changed).
# Environment: BIN MODEL OUT ST CONTEXT BATCH LUT1 LUT2 LUT3 CHUNK MAX_CHUNK_MB
#              PREFIX ARGMAX MAX_WEIGHT_MB STEPS PROMPT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$ST"
trap 'rm -f "$ST"/*.args.tmp "$ST/plan.mk.tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

plan=$("$BIN/ffn" --plan --model "$MODEL" --chunk "$CHUNK" --max-chunk-mb "$MAX_CHUNK_MB" \
	${LUT2:+--lut "$LUT2"} ${PREFIX:+--prefix "$PREFIX"} 2>"$ST/plan.txt") || { cat "$ST/plan.txt" >&2; exit 1; }
model_dir=$(sed -n 's/^model_dir=//p' <<<"$plan")
prefix=$(sed -n 's/^prefix=//p' <<<"$plan")
nchunk=$(sed -n 's/^chunks=//p' <<<"$plan")
nn=$(printf '%02d' "$nchunk")

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
# args NAME LINES...: write ST/NAME.args and refresh ST/NAME.key
args() {
	local name=$1
	shift
	printf '%s\n' "$@" >"$ST/$name.args.tmp"
	mv -f "$ST/$name.args.tmp" "$ST/$name.args"
	"$here/key.sh" key "$ST/$name.key" "$ST/$name.args"
}

common=("param CONTEXT=$CONTEXT" "param PREFIX=$prefix")
args embed "${common[@]}" "param BATCH=$BATCH" "param LUT1=$LUT1" "input $BIN/embed" "$(model_inputs)"
args lmhead "${common[@]}" "param LUT3=$LUT3" "param ARGMAX=$ARGMAX" "input $BIN/lmhead" "$(model_inputs)"
combined=()
for ((c = 1; c <= nchunk; c++)); do
	id=$(printf '%02dof%s' "$c" "$nn")
	for stage in ffn prefill; do
		args "$stage-$id" "${common[@]}" "param BATCH=$BATCH" "param LUT2=$LUT2" "param CHUNK=$c/$nchunk" \
			"input $BIN/$stage" "$(model_inputs)"
	done
	args "combine-$id" "input $BIN/combine" "input $ST/ffn-$id.out" "input $ST/prefill-$id.out"
	combined+=("input $ST/combine-$id.out")
done
args compile "param MAX_WEIGHT_MB=$MAX_WEIGHT_MB" "input $BIN/compile" "input $ST/embed.out" "input $ST/lmhead.out" \
	"${combined[@]}"
args meta "input $BIN/metagen" "input $ST/compile.out" "input $model_dir/config.json" "$(tokenizer_inputs)"
args test "param STEPS=$STEPS" "param PROMPT=$PROMPT" "input $BIN/smoketest" "input $ST/meta.out" "$(model_inputs)" \
	"$(tokenizer_inputs)"

# Chunk steps of an earlier plan (another chunk count): their outputs are stale.
for paths in "$ST"/ffn-*.paths "$ST"/prefill-*.paths "$ST"/combine-*.paths; do
	[ -e "$paths" ] || continue
	step=$(basename "$paths" .paths)
	[ -e "$ST/$step.args" ] && grep -q "of$nn\$" <<<"$step" && continue
	while read -r f; do rm -rf -- "$f" "${f%.mlpackage}.quality.json"; done <"$paths"
	rm -f "$ST/$step".*
done

{
	echo "# written by mk/plan.sh; do not edit"
	echo "MODEL_DIR := $model_dir"
	echo "PREFIX_EFF := $prefix"
	echo "NCHUNK := $nchunk"
	printf 'CHUNK_IDS :='; for ((c = 1; c <= nchunk; c++)); do printf ' %02dof%s' "$c" "$nn"; done; echo
} >"$ST/plan.mk.tmp"
if cmp -s "$ST/plan.mk.tmp" "$ST/plan.mk"; then rm -f "$ST/plan.mk.tmp"; else mv -f "$ST/plan.mk.tmp" "$ST/plan.mk"; fi
