#!/usr/bin/env bash
# layers.sh: every #include in common/ goes downwards, as common/README.md's
# table says (that table is the one source: this test reads it), and every
# folder of common/ has a row there.
. "$SRC/tests/cli/lib.sh"

readme=$SRC/common/README.md
declare -A allowed
while IFS='|' read -r _ folder _ may _; do
	folder=$(sed 's/[` /]//g' <<<"$folder")
	[ -n "$folder" ] || continue
	may=$(sed 's/nothing//; s/,/ /g' <<<"$may")
	allowed[$folder]=" $folder $may "
done < <(grep -E '^\| `[a-z]+/` \|' "$readme")

if [ ${#allowed[@]} -lt 2 ]; then fail table "no folder rows read from common/README.md"; finish; fi
ok table

for dir in "$SRC"/common/*/; do
	d=$(basename "$dir")
	if [ -z "${allowed[$d]:-}" ]; then fail "row-$d" "common/$d/ has no row in common/README.md"; continue; fi
	bad=()
	for f in "$dir"*.[ch]; do
		while read -r inc; do
			[[ ${allowed[$d]} == *" $inc "* ]] || bad+=("$(basename "$f") includes $inc/")
		done < <(sed -n 's|^#include "\([a-z_]*\)/.*|\1|p' "$f")
		if grep -Eq '^#include "[^/"]+"' "$f"; then bad+=("$(basename "$f") has an include without its folder"); fi
	done
	if [ ${#bad[@]} = 0 ]; then ok "down-$d"; else fail "down-$d" "${bad[*]}"; fi
done
# No source file left loose in common/ itself.
loose=$(find "$SRC/common" -maxdepth 1 -name '*.[ch]' | head -n 3)
if [ -z "$loose" ]; then ok no-loose-files; else fail no-loose-files "$loose"; fi
finish
