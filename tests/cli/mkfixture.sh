# mkfixture.sh: the fixture generator writes complete, deterministic HF checkpoints.
#
# Runs $TESTBIN/mkfixture in the scratch directory (cwd) and checks, with
# plain shell tools only (no python, no jq): every architecture's file set
# and tensor names, byte-identical output for one seed, sharding with an
# index that maps every tensor exactly once, the safetensors header framing,
# the gemma3 multimodal layout, tied/untied, --omit, --quantized, stale-shard
# cleanup, the fp16-overflow options (--post-norm-gain, --residual-boost:
# one tensor changes), and one-line errors with exit 2 (usage) or 1 (I/O).
# Prints "ok NAME" / "FAIL NAME: why"; exits 1 if any case failed.
set -u
MK=$TESTBIN/mkfixture
failed=0
ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }
check() { # NAME WHY CMD...: ok when CMD succeeds
	local name=$1 why=$2
	shift 2
	if "$@"; then ok "$name"; else fail "$name" "$why"; fi
}

[ -x "$MK" ] || { fail setup "no $MK"; exit 1; }

# --- safetensors inspection -------------------------------------------------

# hlen FILE: the u64 little-endian header length
hlen() { od -An -t u8 -N8 "$1" | tr -d ' '; }

# header FILE: the JSON header (one line)
header() { head -c $((8 + $(hlen "$1"))) "$1" | tail -c "$(hlen "$1")"; }

# names FILE...: tensor names in the headers, one per line
names() {
	local f
	for f in "$@"; do header "$f" | grep -o '"[^"]*":{"dtype"' | sed 's/^"//; s/":{"dtype"$//'; done
}

# framing_ok FILE: length 8-aligned, header is a JSON object padded with
# spaces, and the largest data_offsets end equals the data size
framing_ok() {
	local f=$1 n size end
	n=$(hlen "$f")
	size=$(wc -c <"$f")
	[ "$n" -gt 0 ] && [ $((n % 8)) = 0 ] && [ $((8 + n)) -le "$size" ] || return 1
	header "$f" | grep -q '^{"__metadata__":{"format":"pt"}' || return 1
	header "$f" | grep -Eq '} *$' || return 1
	end=$(header "$f" | grep -o '"data_offsets":\[[0-9]*,[0-9]*\]' | sed 's/.*,//; s/]//' | sort -n | tail -n 1)
	[ "$end" = $((size - 8 - n)) ]
}

# cfg DIR KEY: the value of a top-level scalar in config.json (first match)
cfg() { grep -m1 "\"$2\":" "$1/config.json" | sed 's/.*":[[:space:]]*//; s/,$//; s/"//g'; }

# --- each architecture --------------------------------------------------------

expect_names() { # DIR: a sorted list of what each arch must (not) contain
	local d=$1 arch=$2 list
	list=$(names "$d/model.safetensors")
	[ "$(printf '%s\n' "$list" | sort)" = "$list" ] || { echo "names not sorted"; return 1; }
	case $arch in
	llama) want=20; has='self_attn.q_proj.weight'; hasnt='q_proj.bias|q_norm|feedforward' ;;
	qwen2) want=26; has='self_attn.q_proj.bias'; hasnt='q_norm|feedforward' ;;
	qwen3) want=24; has='self_attn.q_norm.weight'; hasnt='bias|feedforward' ;;
	gemma3_text) want=80; has='pre_feedforward_layernorm.weight'; hasnt='bias|lm_head' ;;
	gemma3) want=84; has='language_model.model.layers.5.post_feedforward_layernorm.weight'; hasnt='^model\.|^lm_head' ;;
	mistral | granite) want=20; has='self_attn.q_proj.weight'; hasnt='bias|q_norm|feedforward' ;;
	olmo2) want=24; has='post_feedforward_layernorm.weight'; hasnt='input_layernorm|bias|pre_feedforward' ;;
	smollm3) want=38; has='layers.3.self_attn.q_proj.weight'; hasnt='bias|q_norm|feedforward' ;;
	phi3) want=14; has='self_attn.qkv_proj.weight'; hasnt='self_attn.q_proj|mlp.gate_proj|mlp.up_proj|bias' ;;
	esac
	local n
	n=$(printf '%s\n' "$list" | grep -c .)
	[ "$n" = "$want" ] || { echo "$n tensors, expected $want"; return 1; }
	printf '%s\n' "$list" | grep -q -- "$has" || { echo "no $has"; return 1; }
	! printf '%s\n' "$list" | grep -Eq -- "$hasnt" || { echo "unexpected /$hasnt/"; return 1; }
	printf '%s\n' "$list" | grep -q 'embed_tokens.weight$' || { echo "no embed_tokens"; return 1; }
	printf '%s\n' "$list" | grep -q 'model.norm.weight$' || { echo "no model.norm"; return 1; }
}

for arch in llama qwen2 qwen3 gemma3_text gemma3 mistral granite olmo2 smollm3 phi3; do
	d=a_$arch
	if ! "$MK" --arch "$arch" --out "$d" 2>err; then fail "arch_$arch" "exit $?: $(cat err)"; continue; fi
	if [ ! -s "$d/config.json" ] || [ ! -s "$d/model.safetensors" ] || [ ! -s "$d/tokenizer_config.json" ]; then
		fail "arch_$arch" "missing files: $(ls "$d" | tr '\n' ' ')"
	elif [ "$(cfg "$d" model_type)" != "$arch" ]; then
		fail "arch_$arch" "model_type is $(cfg "$d" model_type)"
	elif ! why=$(expect_names "$d" "$arch"); then
		fail "arch_$arch" "$why"
	elif ! framing_ok "$d/model.safetensors"; then
		fail "arch_$arch" "bad safetensors framing (header length $(hlen "$d/model.safetensors"))"
	elif ls "$d" | grep -q 'tmp'; then
		fail "arch_$arch" "temporary file left: $(ls "$d")"
	else ok "arch_$arch"; fi
done

check bf16_default "tensors not BF16" \
	bash -c "! grep -aq '\"dtype\":\"F' a_llama/model.safetensors && grep -q '\"torch_dtype\":.*\"bfloat16\"' a_llama/config.json"
check llama_config "llama config fields" \
	bash -c "grep -q '\"hidden_size\":.64,' a_llama/config.json && grep -q '\"num_key_value_heads\":.2,' a_llama/config.json \
		&& grep -q '\"head_dim\":.16,' a_llama/config.json && grep -q '\"rope_scaling\":.null' a_llama/config.json \
		&& grep -q '\"LlamaForCausalLM\"' a_llama/config.json && grep -q '\"hidden_act\":.\"silu\"' a_llama/config.json"
check qwen2_config "qwen2 config fields" \
	bash -c "grep -q '\"use_sliding_window\":.false' a_qwen2/config.json && grep -q '\"sliding_window\":.2048' a_qwen2/config.json"
check gemma3_text_config "gemma3_text config fields" \
	bash -c "grep -q '\"query_pre_attn_scalar\":' a_gemma3_text/config.json && grep -q '\"rope_local_base_freq\":' a_gemma3_text/config.json \
		&& grep -q '\"final_logit_softcapping\":.null' a_gemma3_text/config.json \
		&& [ \$(grep -o '\"sliding_attention\"' a_gemma3_text/config.json | wc -l) = 5 ] \
		&& [ \$(grep -o '\"full_attention\"' a_gemma3_text/config.json | wc -l) = 1 ]"

# --- determinism ----------------------------------------------------------------

"$MK" --arch qwen2 --out s1a --seed 7 2>/dev/null
"$MK" --arch qwen2 --out s1b --seed 7 2>/dev/null
"$MK" --arch qwen2 --out s2 --seed 8 2>/dev/null
check same_seed_same_bytes "two runs with --seed 7 differ" cmp -s s1a/model.safetensors s1b/model.safetensors
check same_seed_same_tree "directories differ" diff -r s1a s1b
check other_seed_other_values "--seed 8 gave the same weights" bash -c "! cmp -s s1a/model.safetensors s2/model.safetensors"
check other_seed_same_config "--seed changed config.json" cmp -s s1a/config.json s2/config.json
"$MK" --arch gemma3_text --out g_txt --seed 3 2>/dev/null
"$MK" --arch gemma3 --out g_mm --seed 3 2>/dev/null
# language tensors sort first and in the same order in both layouts, so the
# text model's data section is a prefix of the multimodal one's
data() { tail -c +$((9 + $(hlen "$1"))) "$1"; }
data g_txt/model.safetensors >txt.bin
data g_mm/model.safetensors | head -c "$(wc -c <txt.bin)" >mm.bin
check mm_same_weights "gemma3 and gemma3_text weights differ for one seed" cmp -s txt.bin mm.bin

# --- shards ---------------------------------------------------------------------

"$MK" --arch llama --out sh --shards 3 --untied 2>/dev/null
shard_files=$(cd sh && ls model-*.safetensors 2>/dev/null | tr '\n' ' ')
check shards_three_files "got: $shard_files" \
	test "$shard_files" = "model-00001-of-00003.safetensors model-00002-of-00003.safetensors model-00003-of-00003.safetensors "
check shards_no_single_file "model.safetensors written too" test ! -e sh/model.safetensors
check shards_framing "a shard has a bad header" bash -c "
	$(declare -f hlen header framing_ok)
	for f in sh/model-*.safetensors; do framing_ok \$f || exit 1; done"

# index entries "name": "file", one per line in cJSON's formatted output
grep -o '"[^"]*":[[:space:]]*"model-[0-9]*-of-[0-9]*\.safetensors"' sh/model.safetensors.index.json |
	sed 's/[[:space:]]//g; s/"//g; s/:/ /' | sort >idx.txt
: >hdr.txt
for f in sh/model-*.safetensors; do names "$f" | sed "s|\$| ${f#sh/}|" >>hdr.txt; done
sort -o hdr.txt hdr.txt
check index_maps_each_tensor_once "weight_map and shard headers disagree: $(diff idx.txt hdr.txt | head -n 3 | tr '\n' ' ')" \
	cmp -s idx.txt hdr.txt
check index_no_duplicates "a tensor is listed twice" test "$(cut -d' ' -f1 idx.txt | sort | uniq -d)" = ""
check index_complete "index lists $(wc -l <idx.txt) tensors, expected 21" test "$(wc -l <idx.txt)" = 21
check index_every_shard_used "a shard holds no tensor" test "$(cut -d' ' -f2 idx.txt | sort -u | wc -l)" = 3
total=0
for f in sh/model-*.safetensors; do total=$((total + $(wc -c <"$f") - 8 - $(hlen "$f"))); done
check index_total_size "total_size is not $total" grep -q "\"total_size\":[[:space:]]*$total\$" sh/model.safetensors.index.json

# regenerating with one shard must drop the old shards and index
"$MK" --arch llama --out sh 2>/dev/null
check stale_shards_removed "left: $(ls sh | tr '\n' ' ')" \
	test "$(ls sh | tr '\n' ' ')" = "config.json model.safetensors tokenizer_config.json "

# --- header length field --------------------------------------------------------

n=$(hlen a_llama/model.safetensors)
check header_length_sane "header length $n" bash -c "[ $n -ge 64 ] && [ $n -lt 65536 ] && [ \$(( $n % 8 )) = 0 ]"

# --- gemma3 multimodal layout ---------------------------------------------------

check mm_text_config "no nested text_config" \
	bash -c "grep -q '\"text_config\":[[:space:]]*{' a_gemma3/config.json && grep -q '\"model_type\":[[:space:]]*\"gemma3_text\"' a_gemma3/config.json"
check mm_architectures "architectures is not Gemma3ForConditionalGeneration" \
	grep -q '"Gemma3ForConditionalGeneration"' a_gemma3/config.json
check mm_prefixed "language tensors not under language_model.model." bash -c "
	$(declare -f hlen header names)
	names a_gemma3/model.safetensors | grep -v '^vision_tower\.\|^multi_modal_projector\.' | grep -vq '^language_model\.model\.' && exit 1
	names a_gemma3/model.safetensors | grep -q '^language_model\.model\.embed_tokens\.weight$'"
"$MK" --arch gemma3 --untied --out mm_untied 2>/dev/null
check mm_untied_lm_head "no language_model.lm_head.weight" \
	bash -c "$(declare -f hlen header names); names mm_untied/model.safetensors | grep -qx 'language_model.lm_head.weight'"

# --- tied / untied --------------------------------------------------------------

"$MK" --arch qwen3 --untied --out untied 2>/dev/null
"$MK" --arch qwen3 --tied --out tied 2>/dev/null
check untied_has_lm_head "no lm_head.weight" bash -c "$(declare -f hlen header names); names untied/model.safetensors | grep -qx lm_head.weight"
check untied_config "tie_word_embeddings not false" grep -q '"tie_word_embeddings":[[:space:]]*false' untied/config.json
check tied_no_lm_head "lm_head.weight present" bash -c "$(declare -f hlen header names); ! names tied/model.safetensors | grep -q lm_head"
check tied_config "tie_word_embeddings not true" grep -q '"tie_word_embeddings":[[:space:]]*true' tied/config.json

# --- omit, quantized, dtype, rope, layer types ---------------------------------

"$MK" --arch llama --out om --omit model.layers.1.mlp.up_proj.weight 2>/dev/null
names a_llama/model.safetensors | grep -vx model.layers.1.mlp.up_proj.weight >want_om.txt
names om/model.safetensors >got_om.txt
check omit_drops_one "names differ: $(diff want_om.txt got_om.txt | head -n 3 | tr '\n' ' ')" cmp -s want_om.txt got_om.txt
check omit_keeps_values "other tensors changed" bash -c "
	[ \$(wc -c <om/model.safetensors) -lt \$(wc -c <a_llama/model.safetensors) ] &&
	tail -c 128 om/model.safetensors | cmp -s - <(tail -c 128 a_llama/model.safetensors)"

"$MK" --arch qwen3 --quantized --out q 2>/dev/null
check quantized_config "no quantization_config" \
	bash -c "grep -q '\"quantization_config\":[[:space:]]*{' q/config.json && grep -q '\"quant_method\":[[:space:]]*\"fp8\"' q/config.json"
check not_quantized_by_default "quantization_config without --quantized" bash -c "! grep -q quantization_config a_qwen3/config.json"

"$MK" --arch llama --dtype f32 --out f32 2>/dev/null
"$MK" --arch llama --dtype f16 --out f16 2>/dev/null
check dtype_f32 "F32 header or size wrong" bash -c "
	$(declare -f hlen header)
	header f32/model.safetensors | grep -q '\"dtype\":\"F32\"' && ! header f32/model.safetensors | grep -q BF16 &&
	[ \$(( \$(wc -c <f32/model.safetensors) - 8 - \$(hlen f32/model.safetensors) )) = \$(( 2 * (\$(wc -c <a_llama/model.safetensors) - 8 - \$(hlen a_llama/model.safetensors)) )) ]"
check dtype_f16 "F16 header or torch_dtype wrong" bash -c "
	$(declare -f hlen header)
	header f16/model.safetensors | grep -q '\"dtype\":\"F16\"' && grep -q '\"float16\"' f16/config.json"

"$MK" --arch llama --rope-scaling llama3 --out r3 2>/dev/null
"$MK" --arch gemma3_text --rope-scaling linear --rope-factor 4 --out rl 2>/dev/null
check rope_llama3 "rope_scaling llama3 fields" bash -c "grep -q '\"rope_type\":[[:space:]]*\"llama3\"' r3/config.json \
	&& grep -q '\"factor\":[[:space:]]*32,' r3/config.json && grep -q original_max_position_embeddings r3/config.json"
check rope_linear "rope_scaling linear factor 4" bash -c "grep -q '\"rope_type\":[[:space:]]*\"linear\"' rl/config.json \
	&& grep -q '\"factor\":[[:space:]]*4,' rl/config.json"

"$MK" --arch gemma3_text --layers 3 --layer-types s,f,sliding_attention --sliding-window 32 --out lt 2>/dev/null
check layer_types "layer_types or sliding_window not as given" bash -c "
	[ \$(grep -o '\"sliding_attention\"' lt/config.json | wc -l) = 2 ] && [ \$(grep -o '\"full_attention\"' lt/config.json | wc -l) = 1 ] &&
	grep -q '\"sliding_window\":[[:space:]]*32,' lt/config.json"

"$MK" --arch qwen3 --hidden 32 --heads 2 --kv-heads 1 --head-dim 32 --intermediate 48 --vocab 64 --layers 1 --out dims 2>/dev/null
check custom_dims "q_proj shape or head_dim wrong" bash -c "
	$(declare -f hlen header)
	header dims/model.safetensors | grep -q '\"model.layers.0.self_attn.q_proj.weight\":{\"dtype\":\"BF16\",\"shape\":\[64,32\]' &&
	header dims/model.safetensors | grep -q '\"model.layers.0.mlp.down_proj.weight\":{\"dtype\":\"BF16\",\"shape\":\[32,48\]' &&
	grep -q '\"head_dim\":[[:space:]]*32,' dims/config.json"

# --- fixtures that overflow fp16 -----------------------------------------------

# changed_bytes A B: how many bytes differ (same length)
changed_bytes() { cmp -l "$1" "$2" | wc -l; }
"$MK" --arch gemma3_text --out pg --post-norm-gain 30000 2>/dev/null
"$MK" --arch llama --out rb --residual-boost 1000 --boost-layer 0 2>/dev/null
check post_norm_gain_one_tensor "not just layer 3's post-FF norm (64 bf16 = 128 bytes) changed" bash -c "
	$(declare -f hlen header changed_bytes)
	[ \"\$(header pg/model.safetensors)\" = \"\$(header a_gemma3_text/model.safetensors)\" ] &&
	n=\$(changed_bytes pg/model.safetensors a_gemma3_text/model.safetensors) && [ \$n -gt 0 ] && [ \$n -le 128 ]"
# bf16 30000 is 0x46EA: every element of layer 3's tensor holds it
off=$(header pg/model.safetensors | grep -o '"model.layers.3.post_feedforward_layernorm.weight":{[^}]*}' | sed 's/.*"data_offsets":\[\([0-9]*\),.*/\1/')
vals=$(tail -c +$((9 + $(hlen pg/model.safetensors) + off)) pg/model.safetensors | head -c 128 | od -An -tx2 -v | tr -s ' ' '\n' | grep . | sort -u)
check post_norm_gain_value "layer 3's post-FF norm holds $vals, not 46ea (bf16 30000) only" test "$vals" = 46ea
check residual_boost_one_tensor "not just layer 0's down_proj (8192 bf16) changed" bash -c "
	$(declare -f hlen header changed_bytes)
	[ \"\$(header rb/model.safetensors)\" = \"\$(header a_llama/model.safetensors)\" ] &&
	n=\$(changed_bytes rb/model.safetensors a_llama/model.safetensors) && [ \$n -gt 8192 ] && [ \$n -le 16384 ]"
"$MK" --arch llama --out rb2 --residual-boost 1000 --boost-layer 0 2>/dev/null
check boost_deterministic "two runs differ" cmp -s rb/model.safetensors rb2/model.safetensors

# --- errors ----------------------------------------------------------------------

expect_fail() { # NAME STATUS ARGS...: exit STATUS with exactly one stderr line
	local name=$1 want=$2 rc lines
	shift 2
	"$MK" "$@" >/dev/null 2>err
	rc=$?
	lines=$(grep -c '' err)
	if [ "$rc" != "$want" ]; then fail "$name" "exit $rc, expected $want: $(cat err)"
	elif [ "$lines" != 1 ]; then fail "$name" "$lines stderr lines: $(head -c 300 err)"
	else ok "$name"; fi
}
expect_fail err_unknown_flag 2 --arch llama --out e --bogus
expect_fail err_unknown_arch 2 --arch mixtral --out e
expect_fail err_no_arch 2 --out e
expect_fail err_no_out 2 --arch llama
expect_fail err_missing_value 2 --arch llama --out
expect_fail err_bad_int 2 --arch llama --out e --hidden 12x
expect_fail err_negative 2 --arch llama --out e --layers -1
expect_fail err_kv_divides 2 --arch llama --out e --kv-heads 3
expect_fail err_odd_head_dim 2 --arch qwen3 --out e --head-dim 15
expect_fail err_bad_dtype 2 --arch llama --out e --dtype int8
expect_fail err_bad_rope 2 --arch llama --out e --rope-scaling yarn
expect_fail err_layer_types_count 2 --arch gemma3_text --out e --layer-types s,f
expect_fail err_layer_types_arch 2 --arch llama --out e --layers 1 --layer-types s
expect_fail err_omit_unknown 2 --arch llama --out e --omit lm_head.weight
expect_fail err_too_many_shards 2 --arch llama --out e --shards 100
expect_fail err_extra_arg 2 --arch llama --out e extra
expect_fail err_post_norm_gain_llama 2 --arch llama --out e --post-norm-gain 100
expect_fail err_boost_layer_range 2 --arch llama --out e --residual-boost 10 --boost-layer 2
expect_fail err_residual_boost_zero 2 --arch llama --out e --residual-boost 0
check err_wrote_nothing "a usage error created the output" test ! -e e
touch afile
expect_fail err_io_out_is_file 1 --arch llama --out afile/sub
grep -q 'afile' err || fail err_io_names_path "message does not name the path: $(cat err)"
mkdir ro && chmod 555 ro
if [ -w ro ]; then echo "skip err_io_readonly: running as root, permissions not enforced"; else expect_fail err_io_readonly 1 --arch llama --out ro; fi
chmod 755 ro

if "$MK" --help >help.txt 2>&1; then ok help_exit_0; else fail help_exit_0 "status $?"; fi
missing=
for flag in --arch --out --seed --hidden --intermediate --layers --heads --kv-heads --head-dim --vocab \
	--context --tied --untied --dtype --shards --rope-scaling --rope-factor --sliding-window \
	--layer-types --quantized --omit --post-norm-gain --residual-boost --boost-layer; do
	grep -q -- "  $flag " help.txt || missing="$missing $flag"
done
check help_documents_flags "--help lacks$missing" test -z "$missing"

exit $failed
