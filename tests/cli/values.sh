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

# --- messages that name the right thing ----------------------------------------
# A disk error is a disk error, not a "--lut none:" one (the file-size limit stands in for a full disk).
limited() { (trap '' XFSZ; ulimit -f 16; "$@"); }
mkdir -p full
expect_fail disk_error_not_lut 1 "^embed: cannot write '.*weight\.bin': File too large$" \
	limited "$BIN/embed" --model "$STORIES" --output full --lut-cache none
no_artifacts disk_error_nothing_written full
finish
