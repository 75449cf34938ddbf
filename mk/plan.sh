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
#              CLAMP MONOLITHIC LUT LUT_EMBED LUT_LMHEAD MIN_AGREEMENT MAX_KL ORG DIST NAME
#              EVAL EVAL_LABEL EVAL_GOAL (non-empty: make eval was asked for)
#              LUT_OVERRIDE CALIB GPTQ
#              PLAN_NEW (the folder make made for a first plan)
#              IGNORED (the variables
#              given on the command line that MONOLITHIC=1 does not use)
#
# Before anything else it takes OUT's lock (one run per OUT; ST/lock holds
# the make's pid and start time, so a lock whose run is gone is taken over)
# and removes temporaries of runs that were killed. After the keys it
# checks every finished step's outputs against its record and removes the
# stamp of a step whose outputs are damaged or missing, so make runs it
# again. A failed plan exits non-zero with its reason, and make stops there
# (plan.mk is included, not -included): never a run with an older plan.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/key.sh"
# A first plan that fails (or is interrupted) leaves nothing make made for it:
# PLAN_NEW is the topmost folder of ST that did not exist before this make.
# Only once OUT's lock is ours: a run refused by the lock leaves another's OUT alone.
locked=
on_exit() {
	local rc=$?
	rm -rf "$ST"/*.tmp.$$ "$ST/lock/owner.tmp.$$" 2>/dev/null || true
	if [ "$rc" != 0 ] && [ -n "$locked" ] && [ -n "${PLAN_NEW:-}" ] && [[ $ST == "$PLAN_NEW" || $ST == "$PLAN_NEW"/* ]]; then
		rm -rf -- "$PLAN_NEW"
	fi
}
trap on_exit EXIT
trap 'echo "anemake: planning interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

die() { echo "anemake: $*" >&2; exit 1; }

# started PID: REPLY = when the process started (a pid can be reused), "" when it is not running
started() {
	local s
	REPLY=
	if [ -r "/proc/$1/stat" ]; then
		read -r s <"/proc/$1/stat" 2>/dev/null || return 0
		set -- ${s##*) }
		REPLY=${20}
	else
		s=$(ps -o lstart= -p "$1" 2>/dev/null) || s=
		set -- $s
		REPLY="$*"
	fi
}
alive() { kill -0 "$1" 2>/dev/null || ps -p "$1" >/dev/null 2>&1; }

# lock_out: ST/lock (mkdir is atomic everywhere; flock(1) is not on macOS),
# its owner file "pid start" of the make that holds it. The make that ran
# last leaves it behind; a lock whose make is no longer running is taken over.
lock_out() {
	local lock=$ST/lock owner me err tries=0
	started "$MAKE_PID"
	me="$MAKE_PID $REPLY"
	until err=$(mkdir "$lock" 2>&1); do
		[ -d "$lock" ] || die "cannot write in $ST: ${err##*: }"
		owner=
		read -r owner <"$lock/owner" 2>/dev/null || true
		if [ -z "$owner" ]; then # just created by another run, or its run died right then
			if ((++tries < 40)); then sleep 0.05; continue; fi
		elif [ "$owner" = "$me" ]; then
			return 0 # this make, restarted after the plan changed
		else
			started "${owner%% *}"
			[ -z "$REPLY" ] || [ "$REPLY" != "${owner#* }" ] || die "another run is using $OUT (pid ${owner%% *})"
		fi
		# (a rename, so two runs taking over at once do not both succeed)
		if err=$(mv "$lock" "$lock.stale.$$" 2>&1); then rm -rf "$lock.stale.$$"
		elif [ -d "$lock" ]; then die "cannot write in $ST: ${err##*: }"; fi
	done
	write_file "$lock/owner" "$me"$'\n'
}

# remove_dead_temporaries: NAME.tmp.PID files and folders in OUT of a
# process that is gone (a kill -9 leaves them; a live one's are its own)
remove_dead_temporaries() {
	local t pid n=0
	while IFS= read -r -d '' t; do
		pid=${t##*.tmp.}
		[[ $pid =~ ^[0-9]+$ ]] && ! alive "$pid" || continue
		rm -rf -- "$t"
		n=$((n + 1))
	done < <(find "$OUT" -name '*.tmp.*' -prune -print0 2>/dev/null)
	[ $n = 0 ] || echo "anemake: removed $n temporaries of runs that were killed" >&2
}

# to_make_vars: a stage's message about the flags plan.sh gave it, in the
# make variables the user typed: "--lut 4,8:" -> "LUT2=4,8:", "--chunk: '0' is"
# and "--batch-size: 0 is" -> "CHUNK=0 is", "BATCH=0 is"; the stage's
# "(see ffn --help)" is not where a make user looks. Most of ffn --plan's
# messages name make's variables already (--make-names); its option parser's
# do not.
to_make_vars() {
	local lut=LUT2 lut1=LUT1 lut3=LUT3 prog= f v
	[ -z "$MONOLITHIC" ] || lut=LUT lut1=LUT_EMBED lut3=LUT_LMHEAD
	for f in lut-embeddings=$lut1 lut-lmhead=$lut3 lut=$lut context-length=CONTEXT batch-size=BATCH \
		max-chunk-mb=MAX_CHUNK_MB chunk=CHUNK prefix=PREFIX model=MODEL; do
		v=${f#*=} f=--${f%%=*}
		prog+="s/$f: '\\([^']*\\)' is /$v=\\1 is /g; s/$f: \\([^ ']*\\) is /$v=\\1 is /g; "
		prog+="s/$f \\([^ :(-][^ :]*\\)/$v=\\1/g; s/$f\\([^-a-z]\\)/$v\\1/g; s/$f\$/$v/; "
	done
	sed -e "$prog" -e 's/ (see [a-z]* --help)$//'
}

MAKE_PID=${MAKE_PID:-$PPID}
err=$(mkdir -p "$ST" 2>&1) || die "cannot create $ST: ${err##*: }"
lock_out
locked=1
# make records and checks what each step writes inside OUT only (and never
# removes anything outside it), so dist's folder is one of OUT's.
abs_path() {
	case $1 in /*) REPLY=$1 ;; *) REPLY=$PWD/$1 ;; esac
	REPLY=$REPLY/ # OUT=. and DIST=./hf_dist: "." segments and doubled slashes are nothing
	while [[ $REPLY == *//* || $REPLY == */./* ]]; do REPLY=${REPLY//\/\//\/} REPLY=${REPLY//\/.\//\/}; done
	REPLY=${REPLY%/}
}
if [ -n "${DIST:-}" ]; then
	abs_path "$OUT"; out_abs=$REPLY
	abs_path "$DIST"
	[[ $REPLY == "$out_abs"/* && /$REPLY/ != */../* && /$REPLY/ != */./* ]] ||
		die "DIST=$DIST is not inside OUT=$OUT: give a folder in it (the default is OUT/hf_dist) and copy it from there"
fi
remove_dead_temporaries
[[ $CONTEXT =~ ^[0-9]+$ ]] || die "CONTEXT=$CONTEXT is not a number"
# LUT overrides reach the stages inside single quotes and plan.mk: no quote, '#' or '$' in them.
LUT_OVERRIDE=${LUT_OVERRIDE:-} CALIB=${CALIB:-} GPTQ=${GPTQ:-}
[[ $LUT_OVERRIDE != *[\'\#\$]* ]] || die "LUT_OVERRIDE='$LUT_OVERRIDE' has a quote, '#' or '\$' (entries are PATTERN=SPEC;...)"
# Its @FILE entries are inputs of the steps that read them.
override_files=()
IFS=';' read -r -a ov_entries <<<"$LUT_OVERRIDE"
for e in "${ov_entries[@]}"; do
	e=${e#"${e%%[![:space:]]*}"}
	[[ $e != @* ]] && continue
	[ -r "${e#@}" ] || die "LUT_OVERRIDE: '$e': cannot read ${e#@}"
	override_files+=("input ${e#@}")
done
if [ -n "$CALIB" ]; then
	[[ $CALIB != *\'* ]] || die "CALIB=$CALIB has a quote: rename the file"
	[ -f "$CALIB" ] && [ -r "$CALIB" ] || die "CALIB=$CALIB: no such readable file (a calibration text)"
fi
# GPTQ=1: the calibration also records E[x x^T] and the palettizer compensates errors with it.
[[ $GPTQ == "" || $GPTQ == 1 ]] || die "GPTQ=$GPTQ: give GPTQ=1 or nothing"
[[ -z $GPTQ || -n $CALIB ]] || die "GPTQ=1 compensates errors on a calibration text's statistics: give CALIB=<text file>"
# LUT2=auto:BITS[,GROUP]: per-tensor widths chosen to a budget of BITS per weight (lutauto);
# the parts are named, and the plan checked, with the largest width not above BITS.
lut2_auto= lut2_base=
if [[ $LUT2 == auto* ]]; then
	[[ $LUT2 =~ ^auto:([0-9]+\.?[0-9]*)(,([0-9]+|t|tensor))?$ ]] ||
		die "LUT2=$LUT2 is not auto:BITS[,GROUP] (BITS per weight, e.g. auto:4 or auto:4.5,4)"
	bits=${BASH_REMATCH[1]} group=${BASH_REMATCH[3]}
	awk -v b="$bits" 'BEGIN { exit !(b >= 2 && b <= 16) }' || die "LUT2=$LUT2: BITS per weight must be 2 to 16"
	[ -n "$CALIB" ] || die "LUT2=$LUT2 measures each tensor on a calibration text: give CALIB=<text file>"
	[ -z "$MONOLITHIC" ] || die "LUT2=$LUT2: auto applies to chunked conversions (LUT2), not MONOLITHIC=1"
	for w in 8 6 4 3 2; do awk -v b="$bits" -v w=$w 'BEGIN { exit !(w <= b) }' && break; done
	lut2_auto=$LUT2 lut2_base=$w${group:+,$group}
	LUT2=$lut2_base
fi
if [ -n "$MONOLITHIC" ]; then
	[ -z "$SPLIT_ROTATE" ] || die "SPLIT_ROTATE=1 applies to chunked conversions, not with MONOLITHIC=1"
	for v in $IGNORED; do echo "anemake: MONOLITHIC=1 ignores $v (one package; LUT, LUT_EMBED, LUT_LMHEAD set its LUTs)" >&2; done
	part_args=(--monolithic ${LUT:+--lut "$LUT"} ${LUT_EMBED:+--lut-embeddings "$LUT_EMBED"}
		${LUT_LMHEAD:+--lut-lmhead "$LUT_LMHEAD"} ${LUT_OVERRIDE:+--lut-override "$LUT_OVERRIDE"})
else
	part_args=(--chunk "$CHUNK" --max-chunk-mb "$MAX_CHUNK_MB" ${LUT2:+--lut "$LUT2"} --lut-embeddings "${LUT1:-none}"
		--lut-lmhead "${LUT3:-none}" ${LUT_OVERRIDE:+--lut-override "$LUT_OVERRIDE"})
fi
# `ffn --plan` checks every value against the model (naming make's variables)
# before any stage runs; its notes and its refusal are shown as anemake's.
[[ $BATCH =~ ^[0-9]+$ ]] || die "BATCH=$BATCH is not a number"
# The later steps' values, checked now rather than after the conversion.
[[ $STEPS =~ ^[1-9][0-9]*$ ]] || die "STEPS=$STEPS is not a positive whole number"
number='^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$'
for v in MIN_AGREEMENT MAX_KL MAX_WEIGHT_MB; do
	[ -z "${!v:-}" ] || [[ ${!v} =~ $number ]] || die "$v=${!v} is not a non-negative number"
done
[ -z "${MIN_AGREEMENT:-}" ] || awk -v a="$MIN_AGREEMENT" 'BEGIN { exit !(a <= 100) }' ||
	die "MIN_AGREEMENT=$MIN_AGREEMENT is a percentage: 0 to 100"
[ -z "$PROMPT_IDS" ] || [[ $PROMPT_IDS =~ ^[0-9]+(,[0-9]+)*$ ]] || die "PROMPT_IDS=$PROMPT_IDS is not token ids (1,2,3)"
for v in ORG NAME; do # Hugging Face's user, organisation and repository names
	[ -z "${!v:-}" ] || [[ ${!v} =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] ||
		die "$v=${!v} is not a Hugging Face name (letters, digits, '.', '_', '-')"
done
# make eval's text: a file with enough tokens to measure (eval --check tokenizes it).
for v in EVAL EVAL_LABEL; do [[ ${!v:-} != *"'"* ]] || die "$v=${!v} has a quote; choose one without"; done
[ -z "${EVAL_GOAL:-}" ] || [ -n "${EVAL:-}" ] || die "make eval needs EVAL=<a text file> to measure the model on"
plan=$("$BIN/ffn" --plan --make-names --model "$MODEL" --context-length "$CONTEXT" --batch-size "$BATCH" \
	"${part_args[@]}" ${PREFIX:+--prefix "$PREFIX"} ${FP16_SCALE:+--fp16-scale "$FP16_SCALE"} \
	2>"$ST/plan.txt") || { sed 's/^ffn: /anemake: /' "$ST/plan.txt" | to_make_vars >&2; exit 1; }
# Its notes (a LUT group it chose) once, not again on make's restart.
sed -n 's/^ffn: /anemake: /p' "$ST/plan.txt" >"$ST/plan.notes.tmp.$$"
# (`make plan` alone shows them with the whole plan)
[ -n "${PLAN_GOAL_ONLY:-}" ] || cmp -s "$ST/plan.notes.tmp.$$" "$ST/plan.notes" || cat "$ST/plan.notes.tmp.$$" >&2
mv -f "$ST/plan.notes.tmp.$$" "$ST/plan.notes"
model_dir=$(sed -n 's/^model_dir=//p' <<<"$plan")
prefix=$(sed -n 's/^prefix=//p' <<<"$plan")
nchunk=$(sed -n 's/^chunks=//p' <<<"$plan")
[ -z "$MONOLITHIC" ] || nchunk=0
nn=$(printf '%02d' "$nchunk")
# GPTQ's statistics grow with the square of the layer widths: a model too wide for them
# is refused now, not after the calibration run.
if [ -n "$GPTQ" ]; then
	err=$("$BIN/calib" --check --xtx --model "$model_dir" 2>&1 >/dev/null) || die "GPTQ=1: ${err#calib: }"
fi
if [ -n "${EVAL_GOAL:-}" ]; then
	[ -f "$EVAL" ] || die "EVAL=$EVAL: $([ -e "$EVAL" ] && echo 'not a file' || echo 'no such file')"
	err=$("$BIN/eval" --check --model "$model_dir" --text-file "$EVAL" 2>&1 >/dev/null) || {
		err=${err#*--text-file: } err=${err#"'$EVAL': "}
		die "EVAL=$EVAL: $err"
	}
fi

# Rotate parts belong to the families with a ring cache (Gemma 3, Mistral,
# Phi3: arch.h ring_cache): `ffn --plan` states their sliding window (Gemma
# 3's from text_config, 512 when absent, as convert_model.sh) and rotate=1
# when CONTEXT exceeds it.
window=$(sed -n 's/^sliding_window=//p' <<<"$plan")
rotate=$(sed -n 's/^rotate=1$/1/p' <<<"$plan")
if [ -n "$SPLIT_ROTATE" ] && [ -z "$rotate" ]; then
	die "SPLIT_ROTATE=1 needs rotate parts: a model with a ring cache (Gemma 3, Mistral, Phi3) and CONTEXT above its sliding window${window:+ ($window)}"
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
minputs=$(model_inputs) tinputs=$(tokenizer_inputs)
planned=()
# args NAME LINES...: ST/NAME.args (key.sh), rewritten only when it changes
args() {
	local name=$1 IFS=$'\n'
	shift
	write_if_changed "$ST/$name.args" "$*"$'\n' write_direct
	planned+=("$name")
}

# FP16_SCALE scales weights of the embeddings and the layers (the LM head's
# input is normalized: scale-invariant); CLAMP is applied in every part.
common=("param CONTEXT=$CONTEXT" "param PREFIX=$prefix")
# Every part with palettized weights: the overrides (and the files they read); the
# calibration statistics and the mixed-precision plan where they apply.
# (only when given, so the keys of a conversion without them stay what they were)
ov=(${LUT_OVERRIDE:+"param LUT_OVERRIDE=$LUT_OVERRIDE"} "${override_files[@]}")
calib_param=(${CALIB:+"param CALIB=$CALIB"})
calib=() layers_plan=()
if [ -n "$CALIB" ]; then
	args calib "param CALIB_CONTEXT=256" ${GPTQ:+"param GPTQ=$GPTQ"} "program $BIN/calib" "input $CALIB" "$minputs" "$tinputs"
	calib=("step calib")
fi
if [ -n "$lut2_auto" ]; then
	args lutplan "param LUT2=$lut2_auto" "program $BIN/lutauto" "step calib" "input $CALIB" "$minputs" "$tinputs"
	layers_plan=("step lutplan")
fi
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
		args "$p" "${mono[@]}" "${argmax[@]}" "${ov[@]}" "${calib[@]}" "program $BIN/$prog" "$minputs"
		combine_in+=("step $p")
	done
	args combine "param LUT=$LUT" "program $BIN/combine" "${combine_in[@]}"
	args compile "param MAX_WEIGHT_MB=$MAX_WEIGHT_MB" "program $BIN/compile" "step combine"
	meta_params=("param LUT=$LUT" "param LUT_EMBED=$LUT_EMBED" "param LUT_LMHEAD=$LUT_LMHEAD" "${ov[@]}"
		"${calib_param[@]}")
else
	args embed "${common[@]}" "${scaled[@]}" "param BATCH=$BATCH" "param LUT1=$LUT1" "${ov[@]}" "program $BIN/embed" \
		"$minputs"
	args lmhead "${common[@]}" "param CLAMP=$CLAMP" "param LUT3=$LUT3" "param ARGMAX=$ARGMAX" "${ov[@]}" "${calib[@]}" \
		"program $BIN/lmhead" "$minputs"
	stages=(ffn prefill)
	[ -z "$rotate" ] || stages+=(ffn_rotate prefill_rotate)
	combined=()
	for ((c = 1; c <= nchunk; c++)); do
		id=$(printf '%02dof%s' "$c" "$nn")
		combine_in=()
		for stage in "${stages[@]}"; do
			args "$stage-$id" "${common[@]}" "${scaled[@]}" "param BATCH=$BATCH" "param LUT2=${lut2_auto:-$LUT2}" \
				"param CHUNK=$c/$nchunk" "${ov[@]}" "${calib[@]}" "${layers_plan[@]}" "program $BIN/${stage%_rotate}" \
				"$minputs"
			combine_in+=("step $stage-$id")
		done
		args "combine-$id" "param SPLIT_ROTATE=$SPLIT_ROTATE" "program $BIN/combine" "${combine_in[@]}"
		combined+=("step combine-$id")
	done
	args compile "param MAX_WEIGHT_MB=$MAX_WEIGHT_MB" "program $BIN/compile" "step embed" "step lmhead" \
		"${combined[@]}"
	meta_params=("param SPLIT_ROTATE=$SPLIT_ROTATE" "${ov[@]}" "${calib_param[@]}" "${layers_plan[@]}")
fi
# meta.yaml records FP16_SCALE and CLAMP in its comments.
args meta "${meta_params[@]}" "${scaled[@]}" "program $BIN/metagen" "step compile" \
	"input $model_dir/config.json" "$tinputs"
args test "param STEPS=$STEPS" "param PROMPT=$PROMPT" "param PROMPT_IDS=$PROMPT_IDS" \
	"param MIN_AGREEMENT=${MIN_AGREEMENT:-}" "param MAX_KL=${MAX_KL:-}" "${scaled[@]}" "program $BIN/smoketest" \
	"step meta" "$minputs" "$tinputs"
args eval "param EVAL=${EVAL:-}" "param EVAL_LABEL=${EVAL_LABEL:-}" "program $BIN/eval" "step meta" "$minputs" \
	"$tinputs" ${EVAL:+"input $EVAL"}
args preflight "param PROMPT=$PROMPT" "param PROMPT_IDS=$PROMPT_IDS" "${scaled[@]}" "program $BIN/preflight" "$minputs" "$tinputs"
# dist ships what compile, meta and test wrote, with the source's card (license, base_model)
# and the preflight's report when there is one.
args dist "param ORG=${ORG:-}" "param DIST=${DIST:-}" "param NAME=${NAME:-}" "param MAX_WEIGHT_MB=$MAX_WEIGHT_MB" \
	"program $BIN/dist" "step compile" "step meta" "step test" "input $OUT/preflight.json" "input $OUT/eval.json" \
	"input $model_dir/README.md" "input $model_dir/config.json" "$tinputs"

# Every input stat'ed at once, then every key from the cache: planning reads
# no file twice and starts no process per step.
cache_load
declare -A inputs=()
for step in "${planned[@]}"; do
	while read -r kind rest; do [[ $kind != program && $kind != input ]] || inputs[$rest]=1; done <"$ST/$step.args"
done
stat_files "${!inputs[@]}"
# A step that never ran (no record, no stamp) runs whatever its key says: step.sh
# computes that key beside its stage, so a fresh OUT's plan hashes no checkpoint
# (gigabytes) while no stage runs. Under make -j, steps starting at once would
# each hash it: the plan does, once.
[[ " ${MAKEFLAGS:-} " == *" -j"* ]] && parallel=1 || parallel=
for step in "${planned[@]}"; do
	if [ -z "$parallel" ] && [ ! -e "$ST/$step.done" ] && [ ! -e "$ST/$step.stamp" ]; then
		write_if_changed "$ST/$step.key" "not run yet"$'\n' write_direct
	else
		key_refresh "$step"
	fi
done

# Steps of an earlier plan that this one has not (another chunk count,
# another mode, CONTEXT now below the window): their outputs are stale, and
# so is all they recorded.
declare -A gone=()
for f in "$ST"/*.args "$ST"/*.key "$ST"/*.done "$ST"/*.outputs "$ST"/*.paths "$ST"/*.stamp; do
	[ -e "$f" ] || continue
	step=${f##*/}
	gone[${step%.*}]=1
done
for step in "${planned[@]}"; do unset "gone[$step]"; done
for step in "${!gone[@]}"; do
	if read_outputs "$step"; then for f in "${RELS[@]}"; do remove_output "$f"; done; fi
	rm -f "$ST/$step".{args,key,key.prev,done,out,sig,outputs,paths,stamp}
done

# A finished step whose outputs were damaged or deleted since: its stamp goes, so make runs it.
preload_out
for step in "${planned[@]}"; do
	[ -f "$ST/$step.stamp" ] && ! outputs_intact "$step" || continue
	rm -f "$ST/$step.stamp"
done
cache_compact

write_if_changed "$ST/plan.mk" "$(
	echo "# written by mk/plan.sh; do not edit"
	echo "MODEL_DIR := $model_dir"
	echo "PREFIX_EFF := $prefix"
	echo "NCHUNK := $nchunk"
	echo "ROTATE := $rotate"
	echo "LUT2_AUTO := $lut2_auto"
	echo "LUT2_BASE := $lut2_base"
	printf 'CHUNK_IDS :='; for ((c = 1; c <= nchunk; c++)); do printf ' %02dof%s' "$c" "$nn"; done; echo
	echo "PLAN_STEPS := ${planned[*]}"
)"$'\n'
