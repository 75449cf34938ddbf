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
[ ${#failed[@]} = 0 ] || { echo "failing: ${failed[*]}"; exit 1; }
