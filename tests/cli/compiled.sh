# compiled.sh: the compiled models (.mlmodelc) run, and run exactly like their packages.
#
# For every architecture and mode we convert (llama and qwen fixtures chunked
# with LUT 6/4/8 and none, an argmax head, monolithic with and without
# argmax, Gemma 3 decoding past its window with rotate functions and with
# SPLIT_ROTATE=1), the smoketest on the .mlmodelc folders meta.yaml names
# and the smoketest on the .mlpackage beside each give bit-identical logits
# (logits_sha256 of the report; the generated tokens for an argmax head),
# and those logits are the ones the runtime gave before it kept palettized
# weights palettized (golden compiled_logits.txt, recorded with the runtime
# that dequantized every weight at load): the LUT kernels change memory and
# speed, never a bit.
# make's own smoketest runs the compiled folders; mldump lists one.
. "$SRC/tests/cli/lib.sh"
pipe() { make -C "$SRC" --no-print-directory PIPE_BIN="$BIN" "$@"; }
field() { grep -o "\"$1\":[[:space:]]*[^,]*" "$2" | sed 's/^[^:]*:[[:space:]]*//'; }
generated() { tr -d ' \t\n' <"$1" | grep -o '"generated":\[[0-9,]*\]'; }

"$TESTBIN/mkfixture" --arch llama --out ll --layers 2 --seed 1 >/dev/null
"$TESTBIN/mkfixture" --arch qwen3 --out q3 --layers 2 --seed 3 >/dev/null
"$TESTBIN/mkfixture" --arch qwen2 --out q2 --layers 2 --seed 2 >/dev/null
"$TESTBIN/mkfixture" --arch gemma3_text --out g3 --layers 3 --layer-types s,s,f --sliding-window 32 --seed 4 >/dev/null
P=(CONTEXT=64 BATCH=8 STEPS=8)
G=(CONTEXT=64 BATCH=8 LUT1= LUT2= LUT3= STEPS=36 PROMPT_IDS=2,17,33,49,65,81,97,113,129,145)

# same NAME MODEL OUT PROMPT STEPS: compiled and package smoketests agree bit for bit
same() {
	local name=$1 model=$2 o=$3 prompt=$4 steps=$5
	"$BIN/smoketest" --model "$model" --meta "$o/meta.yaml" --compiled --prompt "$prompt" --steps "$steps" \
		--json "$o.c.json" >"$o.c.out" 2>&1
	local rc_c=$?
	"$BIN/smoketest" --model "$model" --meta "$o/meta.yaml" --prompt "$prompt" --steps "$steps" \
		--json "$o.p.json" >"$o.p.out" 2>&1
	local rc_p=$? hc hp
	hc=$(field logits_sha256 "$o.c.json") hp=$(field logits_sha256 "$o.p.json")
	if [ ! -s "$o.c.json" ] || [ ! -s "$o.p.json" ]; then
		fail "$name" "no report (compiled exit $rc_c: $(tail -n 2 "$o.c.out"); package exit $rc_p)"
	elif [ "$rc_c" != "$rc_p" ] || [ "$hc" != "$hp" ] || [ "$(generated "$o.c.json")" != "$(generated "$o.p.json")" ]; then
		fail "$name" "compiled ($rc_c, $hc) and package ($rc_p, $hp) differ"
	elif ! grep -q 'mlmodelc"' "$o.c.json" || grep -q 'mlmodelc"' "$o.p.json"; then
		fail "$name" "the compiled run did not load .mlmodelc folders: $(head -c 200 "$o.c.json")"
	else
		ok "$name"
	fi
	echo "$name $hc $(generated "$o.c.json")" >>logits.txt
}

# --- make ends with the smoketest on the compiled folders ---------------------------
run pipe MODEL="$SCRATCH/ll" OUT="$SCRATCH/l6" LUT2=6 LUT3=6 CHUNK=2 "${P[@]}"
[ "$rc" = 0 ] && grep -q '"embeddings":[[:space:]]*"llama_embeddings.mlmodelc"' l6/smoketest.json &&
	grep -q '"lm_head":[[:space:]]*"llama_lm_head_lut6.mlmodelc"' l6/smoketest.json &&
	! grep -q "$SCRATCH" l6/smoketest.json &&
	grep -q '"passed":[[:space:]]*true' l6/smoketest.json && ok make_smoketest_runs_compiled ||
	fail make_smoketest_runs_compiled "exit $rc: $(printf '%s' "$err" | tail -n 3) $(head -c 300 l6/smoketest.json)"
same llama_lut6_chunked "$SCRATCH/ll" l6 1,5,9 8
"$BIN/mldump" l6/llama_FFN_PF_lut6_chunk_01of02.mlmodelc >dump.txt 2>&1 && grep -q '^program function "prefill"' dump.txt &&
	grep -q '^program function "infer"' dump.txt && ok mldump_lists_compiled || fail mldump_lists_compiled "$(head -n 3 dump.txt)"

# --- other architectures, LUTs and heads ----------------------------------------------
run pipe MODEL="$SCRATCH/q3" OUT="$SCRATCH/q3n" LUT2= LUT3= CHUNK=1 "${P[@]}" meta
same qwen3_no_lut "$SCRATCH/q3" q3n 1,5,9 8
run pipe MODEL="$SCRATCH/q2" OUT="$SCRATCH/q24" LUT2=4 LUT3=4 CHUNK=2 "${P[@]}" meta
same qwen2_lut4 "$SCRATCH/q2" q24 1,5,9 8
run pipe MODEL="$SCRATCH/ll" OUT="$SCRATCH/l8am" LUT2=8 LUT3=8 CHUNK=1 ARGMAX=1 "${P[@]}" meta
same llama_lut8_argmax "$SCRATCH/ll" l8am 1,5,9 8

# --- monolithic ---------------------------------------------------------------------
if "$BIN/ffn" --help | grep -q -- '--monolithic'; then
	run pipe MODEL="$SCRATCH/ll" OUT="$SCRATCH/m6" MONOLITHIC=1 LUT=6 "${P[@]}" meta
	same monolithic_lut6 "$SCRATCH/ll" m6 1,5,9 8
	run pipe MODEL="$SCRATCH/q3" OUT="$SCRATCH/mam" MONOLITHIC=1 LUT=none ARGMAX=1 "${P[@]}" meta
	same monolithic_argmax "$SCRATCH/q3" mam 1,5,9 8
else
	skip monolithic "ffn has no --monolithic yet"
fi

# --- Gemma 3 past its window: rotate functions, then split rotate files -------------
if "$BIN/ffn" --help | grep -q -- '--rotate'; then
	run pipe MODEL="$SCRATCH/g3" OUT="$SCRATCH/gr" CHUNK=2 "${G[@]}" meta
	same gemma3_rotate "$SCRATCH/g3" gr 2,17,33,49,65,81,97,113,129,145 36
	run pipe MODEL="$SCRATCH/g3" OUT="$SCRATCH/gs" CHUNK=2 SPLIT_ROTATE=1 "${G[@]}" meta
	grep -q '^    pf: ' gs/meta.yaml && ok gemma3_split_rotate_meta || fail gemma3_split_rotate_meta "no pf in meta.yaml"
	same gemma3_split_rotate "$SCRATCH/g3" gs 2,17,33,49,65,81,97,113,129,145 36
else
	skip gemma3 "ffn has no --rotate yet"
fi

golden logits_unchanged logits.txt compiled_logits.txt

# --- a damaged model.mil fails with the file and line:column -------------------------
cp -r l6/llama_embeddings.mlmodelc bad.mlmodelc
printf 'program(1.3)\n{\n    func main<ios99>() {\n' >bad.mlmodelc/model.mil
expect_fail compiled_needs_meta 2 "--compiled goes with --meta" "$BIN/smoketest" --model ll --dir l6 --compiled
expect_fail damaged_model_mil 1 "bad.mlmodelc/model.mil: line 3:15: expected an opset" "$BIN/mldump" bad.mlmodelc
finish
