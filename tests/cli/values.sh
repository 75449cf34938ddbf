# values.sh: hostile values in a checkpoint's files are refused with one line.
#
# NaN or infinite weights stop every stage that reads weights (they were
# clamped or passed into the package); config.json values out of range are
# named as such.
. "$SRC/tests/cli/lib.sh"
STORIES=$SRC/tests/models/stories260K

# --- NaN weights ------------------------------------------------------------------
# Every byte of the tensor data 0xff: every value is a NaN, in any float format.
rm -rf nan && cp -r "$STORIES" nan
hdr=$(od -An -t u8 -N8 nan/model.safetensors | tr -d ' ')
size=$(wc -c <nan/model.safetensors)
head -c $((size - 8 - hdr)) /dev/zero | tr '\0' '\377' |
	dd of=nan/model.safetensors bs=1 seek=$((8 + hdr)) conv=notrunc status=none
nan_re="model\\.safetensors: tensor 'model\\.[a-z_.0-9]+' has [0-9]+ NaN and 0 infinite values \\(of [0-9]+\\): anemake converts finite weights only$"
mkdir -p o
expect_fail nan_embed 1 "^embed: .*$nan_re" "$BIN/embed" --model nan --output o
expect_fail nan_ffn 1 "^ffn: .*$nan_re" "$BIN/ffn" --model nan --output o
expect_fail nan_prefill 1 "^prefill: .*$nan_re" "$BIN/prefill" --model nan --output o --batch-size 8
expect_fail nan_lmhead 1 "^lmhead: .*$nan_re" "$BIN/lmhead" --model nan --output o --lut 6
expect_fail nan_monolithic 1 "^ffn: .*$nan_re" "$BIN/ffn" --monolithic --model nan --output o
expect_fail nan_preflight 1 "^preflight: .*$nan_re" "$BIN/preflight" --model nan --prompt 1,2
no_artifacts nan_nothing_written o

# --- unbounded reads ----------------------------------------------------------------
# A file that is a symlink to /dev/zero, or far larger than its kind can be, is
# refused at once with one line naming it (it was read until memory ran out).
T="timeout 30"
for f in config.json tokenizer.json tokenizer_config.json generation_config.json; do
	rm -rf z && cp -r "$STORIES" z && ln -sf /dev/zero "z/$f"
	expect_fail "zero_$f" 1 "^ffn: 'z/$f' is not a regular file$" $T "$BIN/ffn" --plan --model z
	rm -rf h && cp -r "$STORIES" h && truncate -s 2000M "h/$f"
	expect_fail "huge_$f" 1 "^ffn: 'h/$f' is 2097152000 bytes, more than the [0-9]+ MB a file of its kind may have$" \
		$T "$BIN/ffn" --plan --model h
done
rm -rf sh && cp -r "$STORIES" sh && ln -sf /dev/zero sh/model.safetensors.index.json
expect_fail zero_shard_index 1 "^ffn: 'sh/model\.safetensors\.index\.json' is not a regular file$" $T "$BIN/ffn" --plan --model sh
# A LUT cache entry that is a symlink to /dev/zero is recomputed (and replaced).
"$BIN/lmhead" --model "$STORIES" --output lc --lut 6 -q >/dev/null && cp -r lc/llama_lm_head_lut6.mlpackage lc_first.mlpackage
n=0
for e in $(find lc/.anemake/lutcache -type f); do ln -sf /dev/zero "$e"; n=$((n + 1)); done
run $T "$BIN/lmhead" --model "$STORIES" --output lc --lut 6
[ "$rc" = 0 ] && [ "$n" -gt 0 ] && printf '%s\n' "$err" | grep -q "^lmhead: lut cache entry: '.*' is not a regular file: recomputing it$" &&
	diff -r lc_first.mlpackage lc/llama_lm_head_lut6.mlpackage >/dev/null && [ -z "$(find lc/.anemake/lutcache -type l)" ] &&
	ok lut_cache_zero_recomputed || fail lut_cache_zero_recomputed "exit $rc, $n entries: $(printf '%s' "$err" | head -n 3)"

# --- messages that name the right thing ----------------------------------------
# A disk error is a disk error, not a "--lut none:" one (the file-size limit stands in for a full disk).
limited() { (trap '' XFSZ; ulimit -f 16; "$@"); }
mkdir -p full
expect_fail disk_error_not_lut 1 "^embed: cannot write '.*weight\.bin': File too large$" \
	limited "$BIN/embed" --model "$STORIES" --output full --lut-cache none
no_artifacts disk_error_nothing_written full
finish
