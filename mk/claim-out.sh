#!/usr/bin/env bash
# claim-out.sh OUT: make OUT a conversion folder, or say why it cannot be one.
#
# make runs this while it reads the makefiles, before the plan: OUT is written
# into (config.json, meta.yaml, the parts), swept for killed runs' temporaries
# and removed by clean-model, so it must be a folder anemake made (one with
# .anemake in it), an empty folder or a new one; never the model's folder, a
# home or /. Prints the refusal, one line starting "anemake:" (for make's
# $(error)), or else the topmost folder it created for OUT/.anemake (empty
# when there was one): a first plan that fails removes it (mk/plan.sh).
# Always exits 0.
out=${1%/}
out=${out:-/}
st=$1/.anemake # as make's ST spells it, for plan.sh's comparison
say() { echo "anemake: OUT=$1"; exit 0; }
if [ -d "$st" ]; then
	: >>"$st/plan.mk" 2>/dev/null
	exit 0
fi
if [ -e "$out" ] || [ -L "$out" ]; then
	[ -d "$out" ] || say "$1 is not a folder"
	[ -z "$(ls -A "$out" 2>/dev/null)" ] ||
		say "$1 holds other files and no earlier conversion (no .anemake in it): give a new or empty folder"
fi
top=$st
d=$st
while [ ! -e "$d" ]; do top=$d d=$(dirname "$d"); done
err=$(mkdir -p "$st" 2>&1) || say "$1: cannot create it: ${err##*: }"
: >>"$st/plan.mk"
printf '%s' "$top"
