#!/usr/bin/env bash
# run.sh FUZZER: run one fuzz target over its seed corpus (tests/fuzz/corpus/<name>/)
# and print "ok <name> (...)" or "FAIL <name>".
#
# FUZZ_SECONDS=N: one run of N seconds (make check: 4).
# FUZZ_PLATEAU=1 (make fuzz): rounds of FUZZ_ROUND seconds (default 30) over a
# corpus that keeps what each round found, until a round adds no coverage
# (libFuzzer's "cov:" count stays the same) or FUZZ_MAX_SECONDS (default 600)
# have passed; the report says which. Without libFuzzer (no clang) the
# stand-in driver has no coverage count: one run of FUZZ_SECONDS (default 60).
set -uo pipefail
f=$1 n=$(basename "$1")
here=$(cd "$(dirname "$0")" && pwd)
seeds=$here/corpus/${n#fuzz_}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
[ -d "$seeds" ] && cp -r "$seeds"/. "$work/corpus"/ 2>/dev/null

crashed() {
	echo "FAIL $n: crashed (status $1)"; tail -n 30 "$work/log"
	exit 1
}

# (no pipe into grep -q: under pipefail the fuzzer's SIGPIPE would read as "not libFuzzer")
help=$("$f" -help=1 2>&1 || true)
if [[ $help != *libFuzzer* ]]; then
	FUZZ_SECONDS=${FUZZ_SECONDS:-60} "$f" "$work/corpus" >"$work/log" 2>&1 || crashed $?
	echo "ok $n ($(grep -Eo '[0-9]+ runs' "$work/log" | tail -n1))"
	exit 0
fi

# one_round SECONDS: fuzz into the work corpus; sets cov and runs from the log
one_round() {
	"$f" -max_total_time="$1" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$work/" \
		"$work/corpus" >"$work/log" 2>&1 || crashed $?
	cov=$(grep -Eo 'cov: [0-9]+' "$work/log" | tail -n1 | grep -Eo '[0-9]+')
	runs=$(grep -Eo 'Done [0-9]+ runs' "$work/log" | tail -n1 | grep -Eo '[0-9]+')
	total_runs=$((total_runs + ${runs:-0}))
}

total_runs=0
if [ -z "${FUZZ_PLATEAU:-}" ]; then
	one_round "${FUZZ_SECONDS:-4}"
	echo "ok $n ($total_runs runs, cov $cov)"
	exit 0
fi
round=${FUZZ_ROUND:-30} max=${FUZZ_MAX_SECONDS:-600} spent=0 prev=-1
while :; do
	one_round "$round"
	spent=$((spent + round))
	if [ "${cov:-0}" -le "$prev" ]; then why="coverage stopped growing"; break; fi
	if [ "$spent" -ge "$max" ]; then why="time limit, coverage still growing"; break; fi
	prev=${cov:-0}
done
echo "ok $n ($total_runs runs in ${spent}s, cov $cov: $why)"
