#!/usr/bin/env bash
# step.sh: run one pipeline step and record it.
#
#   step.sh ST NAME LABEL [-o OUTPUT] -- COMMAND...
# Refreshes NAME.key from NAME.args (its parameters and inputs as they are
# now, upstream outputs included). When that key equals the key of the
# step's last success (NAME.done) and its outputs are still there, the work
# is skipped: an upstream step re-ran but wrote the same bytes (early cutoff).
# Otherwise COMMAND runs (a stage program; it prints the paths it wrote on
# stdout, or, with -o, writes OUTPUT and its stdout goes to the terminal).
# On success: NAME.out (hash of the outputs), NAME.done, then NAME.stamp,
# last. A step that fails or is interrupted leaves no stamp, so the next make
# runs it again.
set -euo pipefail
st=$1 name=$2 label=$3 output=
shift 3
if [ "$1" = -o ]; then output=$2; shift 2; fi
shift
here=$(cd "$(dirname "$0")" && pwd)
outs=$st/$name.paths
# Interrupted or failed, leave no temporaries (the stage removes its own).
trap 'rm -f "$outs.tmp.$$" "$st/$name.stamp.tmp.$$"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
stamp() { : >"$st/$name.stamp.tmp.$$" && mv -f "$st/$name.stamp.tmp.$$" "$st/$name.stamp"; }

"$here/key.sh" key "$st/$name.key" "$st/$name.args"
old=()
[ -f "$outs" ] && mapfile -t old <"$outs"
if [ -f "$st/$name.done" ] && cmp -s "$st/$name.key" "$st/$name.done" && [ ${#old[@]} -gt 0 ]; then
	present=1
	for f in "${old[@]}"; do [ -e "$f" ] || present=0; done
	if [ $present = 1 ]; then
		echo "anemake: $label unchanged" >&2
		stamp
		exit 0
	fi
fi

start=$(date +%s)
echo "anemake: $label ..." >&2
rm -f "$st/$name.done"
if [ -n "$output" ]; then
	"$@" || { rc=$?; echo "anemake: $label failed" >&2; exit $rc; }
	echo "$output" >"$outs"
else
	"$@" >"$outs.tmp.$$" || { rc=$?; rm -f "$outs.tmp.$$"; echo "anemake: $label failed" >&2; exit $rc; }
	mv -f "$outs.tmp.$$" "$outs"
fi
mapfile -t paths <"$outs"
# What this step wrote last time and not now (another LUT, another chunk
# count) is stale: remove it so no runtime picks it up by mistake.
for f in "${old[@]}"; do
	keep=0
	for p in "${paths[@]}"; do [ "$p" = "$f" ] && keep=1; done
	[ $keep = 1 ] || rm -rf -- "$f" "${f%.mlpackage}.quality.json"
done
"$here/key.sh" out "$st/$name.out" "${paths[@]}"
cp -f "$st/$name.key" "$st/$name.done"
stamp
echo "anemake: $label done ($(( $(date +%s) - start ))s)" >&2
