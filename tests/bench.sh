#!/usr/bin/env bash
# bench.sh: run every benchmark program and print what it reports.
#
# A benchmark is any executable $TESTBIN/bench_* (built from
# tests/tools/bench_*.c); adding one needs no change here. Each runs from
# the repository root with BIN, TESTBIN and SHARED set (make bench sets
# them) and prints its own figures. Benchmarks time things; tests never do.
# BENCH=regex runs only the benchmarks whose names match.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export SRC=$(cd "$here/.." && pwd)
export BIN=${BIN:?} TESTBIN=${TESTBIN:?} SHARED=${SHARED:-$SRC/../shared}
echo "bench: $(uname -sm), $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') cores"
failed=()
for b in "$TESTBIN"/bench_*; do
	[ -x "$b" ] || continue
	n=$(basename "$b")
	[[ "$n" =~ ${BENCH:-.} ]] || continue
	echo "== $n"
	(cd "$SRC" && "$b") || { echo "$n: failed with status $?"; failed+=("$n"); }
done

# End to end: the bundled stories260K through all eight stages (release
# programs), wall time per step and in all. BENCH_MODEL=<dir> converts
# another checkpoint instead (e.g. a Llama-3.2-1B-shaped fixture).
if [[ "e2e" =~ ${BENCH:-.} ]]; then
	echo "== e2e: make MODEL=${BENCH_MODEL:-tests/models/stories260K} LUT2=6,4 LUT3=6 CHUNK=2"
	out=$(mktemp -d)
	start=$(date +%s.%N)
	(cd "$SRC" && make --no-print-directory PIPE_BIN="$BIN" MODEL="${BENCH_MODEL:-tests/models/stories260K}" \
		OUT="$out" LUT2=6,4 LUT3=6 CHUNK=2 STEPS=8 2>&1) | grep -E '^anemake: .* done|agreement' ||
		{ echo "e2e: failed"; failed+=(e2e); }
	echo "e2e: $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s in all; output $(du -sh "$out" | cut -f1)"
	# The runtime's and the reference's tokens/s on what was just converted.
	[ -f "$out/meta.yaml" ] && (cd "$SRC" && "$TESTBIN/bench_runtime" "$out/meta.yaml" "${BENCH_MODEL:-tests/models/stories260K}") ||
		{ echo "e2e runtime: failed"; failed+=(e2e-runtime); }
	rm -rf "$out"
fi
# Quality of each palettization on stories260K, side by side (tests/tools/bench_quality.sh).
if [[ "quality" =~ ${BENCH:-.} ]]; then
	echo "== quality"
	"$here/tools/bench_quality.sh" || failed+=(quality)
fi
[ ${#failed[@]} = 0 ] || { echo "failing: ${failed[*]}"; exit 1; }
