#!/usr/bin/env bash
# claim-out.sh OUT: make OUT a conversion folder, or say why it cannot be one.
#
# make runs this while it reads the makefiles, before the plan: OUT is written
# into (config.json, meta.yaml, the parts), swept for killed runs' temporaries
# and removed by clean-model, so it must be a folder anemake made (one with
# .anemake in it), an empty folder or a new one; never the model's folder, a
# home or /. A new or empty one gets .anemake/unplanned ("out": OUT was made
# here, "st": only .anemake), which the first plan that succeeds removes and
# one that fails reads to leave nothing behind (mk/plan.sh). Prints the
# refusal (one line, for make's $(error)) or nothing; always exits 0.
out=${1%/}
out=${out:-/}
st=$out/.anemake
say() { echo "anemake: OUT=$1"; exit 0; }
if [ -d "$st" ]; then
	: >>"$st/plan.mk" 2>/dev/null
	exit 0
fi
if [ -e "$out" ] || [ -L "$out" ]; then
	[ -d "$out" ] || say "$1 is not a folder"
	[ -z "$(ls -A "$out" 2>/dev/null)" ] ||
		say "$1 holds other files and no earlier conversion (no .anemake in it): give a new or empty folder"
	made=st
else
	made=out
fi
err=$(mkdir -p "$st" 2>&1) || say "$1: cannot create it: ${err##*: }"
echo "$made" >"$st/unplanned" && : >>"$st/plan.mk"
