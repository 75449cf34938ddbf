#!/usr/bin/env bash
# step.sh: run one pipeline step and record it.
#
#   step.sh ST NAME LABEL [-o OUTPUT] -- COMMAND...
# Runs COMMAND (a stage program; it prints the paths it wrote on stdout, or,
# with -o, writes OUTPUT and its stdout goes to the terminal),
# shows progress and time, then: refreshes NAME.key from NAME.args (the
# inputs as they are now), writes NAME.out (hash of the outputs, replaced only
# when it changed) and finally NAME.stamp. A step that fails or is
# interrupted leaves no stamp, so the next make runs it again.
set -euo pipefail
st=$1 name=$2 label=$3 output=
shift 3
if [ "$1" = -o ]; then output=$2; shift 2; fi
shift
here=$(cd "$(dirname "$0")" && pwd)
start=$(date +%s)
echo "anemake: $label ..." >&2
outs=$st/$name.paths
old=()
[ -f "$outs" ] && mapfile -t old <"$outs"
if [ -n "$output" ]; then
	"$@" || { rc=$?; echo "anemake: $label failed" >&2; exit $rc; }
	echo "$output" >"$outs"
else
	"$@" >"$outs.tmp.$$" || { rc=$?; rm -f "$outs.tmp.$$"; echo "anemake: $label failed" >&2; exit $rc; }
	mv -f "$outs.tmp.$$" "$outs"
fi
"$here/key.sh" key "$st/$name.key" "$st/$name.args"
mapfile -t paths <"$outs"
# What this step wrote last time and not now (another LUT, another chunk
# count) is stale: remove it so no runtime picks it up by mistake.
for f in "${old[@]}"; do
	keep=0
	for p in "${paths[@]}"; do [ "$p" = "$f" ] && keep=1; done
	[ $keep = 1 ] || rm -rf -- "$f" "${f%.mlpackage}.quality.json"
done
"$here/key.sh" out "$st/$name.out" "${paths[@]}"
: >"$st/$name.stamp.tmp.$$" && mv -f "$st/$name.stamp.tmp.$$" "$st/$name.stamp"
echo "anemake: $label done ($(( $(date +%s) - start ))s)" >&2
