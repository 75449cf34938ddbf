#!/usr/bin/env bash
# bench_quality.sh: what each palettization costs in quality, side by side
# (a benchmark, never a test: it prints numbers and judges none).
#
# Converts the bundled stories260K once per variant, each a string of make
# flags on top of BASE, runs `make eval` on each over the same text, and
# prints one table (eval --table): variant, weight bytes (every weight.bin
# the runtimes load), perplexity of the conversion and of the fp32
# reference, mean KL(fp32 || converted) per token, top-1 agreement.
# Another variant is one more line in VARIANTS (flags separated by spaces,
# no quotes: make gets them as words), or QUALITY_VARIANTS=<one per line>.
# Environment: BIN (the programs), SRC (the repository; default: here).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SRC=${SRC:-$(cd "$here/../.." && pwd)}
BIN=${BIN:-$SRC/bin}
BASE="MODEL=tests/models/stories260K CONTEXT=256 BATCH=32 CHUNK=2 LUT3=6"
EVAL=tests/data/eval-en.txt
CALIB=tests/data/calib-stories.txt
# Plain k-means, activation-aware (CALIB), GPTQ's error compensation (GPTQ=1) and
# mixed precision (LUT2=auto) at the bytes of plain LUT6 and LUT4 with group 4: 9.33
# and 4.832 bits per weight with the tables (README: LUT2=auto counts bytes written);
# auto:4.83,4 keeps every weight.bin byte within plain LUT4's (their 64-byte alignment
# adds a few bytes to another mix of sizes).
VARIANTS=(
	"LUT2= LUT3="
	"LUT2=6,4"
	"LUT2=6,4 CALIB=$CALIB"
	"LUT2=6,4 CALIB=$CALIB GPTQ=1"
	"LUT2=auto:9.33,4 CALIB=$CALIB"
	"LUT2=auto:9.33,4 CALIB=$CALIB GPTQ=1"
	"LUT2=4,4"
	"LUT2=4,4 CALIB=$CALIB"
	"LUT2=4,4 CALIB=$CALIB GPTQ=1"
	"LUT2=auto:4.83,4 CALIB=$CALIB"
	"LUT2=auto:4.83,4 CALIB=$CALIB GPTQ=1"
)
if [ -n "${QUALITY_VARIANTS:-}" ]; then mapfile -t VARIANTS <<<"$QUALITY_VARIANTS"; fi

echo "quality: make $BASE <variant> eval, EVAL=$EVAL"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
reports=() failed=0
for i in "${!VARIANTS[@]}"; do
	v=${VARIANTS[$i]} out=$tmp/v$i
	# shellcheck disable=SC2086 # the flags are words on purpose
	if (cd "$SRC" && make --no-print-directory -s PIPE_BIN="$BIN" $BASE $v OUT="$out" EVAL="$EVAL" \
		EVAL_LABEL="${v:-(BASE)}" eval >"$tmp/v$i.log" 2>&1); then
		reports+=("$out/eval.json")
	else
		echo "quality: '$v' failed: $(tail -n 3 "$tmp/v$i.log")"
		failed=1
	fi
done
[ ${#reports[@]} = 0 ] || "$BIN/eval" --table "${reports[@]}" || failed=1
exit $failed
