#!/usr/bin/env bash
# key.sh: content keys and output records of the pipeline's steps.
#
# A library, sourced by plan.sh and step.sh (they set ST and OUT), and, run
# directly, `key.sh why ST STEP...`: why each step would run (make why).
#
# ST/NAME.args lists what step NAME depends on, one item a line:
#   param NAME=VALUE   a make variable
#   program PATH       the stage program
#   input PATH         a file of the model
#   step NAME          an upstream step (the hash of its outputs, ST/NAME.out)
# ST/NAME.key holds the same lines with SHA-256s, rewritten only when it
# changes, so make sees an unchanged key as old; ST/NAME.done is the key of
# the step's last success. After a success the step's record is:
#   NAME.outputs  what it wrote, relative to OUT (so a copy of OUT never
#                 names the original's files)
#   NAME.out      SHA-256 over the outputs' names and contents
#   NAME.sig      size, mtime, ctime and inode of every output file, so a
#                 run sees a damaged output without rereading them all
# Files are hashed once and cached in ST/statcache by path, size, mtime,
# ctime (which no user can set: an edit that restores the mtime is seen) and
# inode. Bash 4: the cache lives in an associative array while a script runs.

declare -A cache=() statof=()
cache_new=
# A file this large (MB) is named while it is hashed (ANEMAKE_HASH_NOTE_MB: tests set 0).
HASH_NOTE_MB=${ANEMAKE_HASH_NOTE_MB:-256}
if command -v sha256sum >/dev/null 2>&1; then SHA=(sha256sum); else SHA=(shasum -a 256); fi
# Files this large (MB) go through openssl when it is there: its SHA-256 uses
# the CPU's SHA instructions, 3-5 times coreutils' speed (gigabytes per
# conversion); small ones keep sha256sum, which starts faster.
BIG_SHA_MB=16
BIG_SHA=()
if command -v openssl >/dev/null 2>&1; then BIG_SHA=(openssl dgst -sha256 -r); fi
if stat -c %s / >/dev/null 2>&1; then STATFMT=(-c $'%n\t%s %.9Y %.9Z %i'); else STATFMT=(-f $'%N\t%z %Fm %Fc %i'); fi

# write_file FILE CONTENT: atomically (a temporary of this process, then a
# rename); write_direct FILE CONTENT: in place, for what every plan rewrites
# anyway when it differs (args, keys: no process started). A failure ends the
# script with one line naming the file and the cause.
write_file() {
	{ printf '%s' "$2" >"$1.tmp.$$"; } 2>/dev/null && mv -f "$1.tmp.$$" "$1" 2>/dev/null || cant_write "$1" "$1.tmp.$$" "$2"
}
write_direct() { { printf '%s' "$2" >"$1"; } 2>/dev/null || cant_write "$1" "$1" "$2"; }
# cant_write FILE TEMP CONTENT: once more, to learn why (a full disk may have room again)
cant_write() {
	local err
	if err=$({ printf '%s' "$3" >"$2"; } 2>&1) && { [ "$1" = "$2" ] || err=$(mv -f "$2" "$1" 2>&1); }; then return 0; fi
	rm -f "$2" 2>/dev/null || true
	echo "anemake: cannot write $1: ${err##*: }" >&2
	exit 1
}

# read_file FILE: REPLY = its content ("" when absent)
read_file() { REPLY=; [ ! -f "$1" ] || IFS= read -r -d '' REPLY <"$1" || true; }

# write_if_changed FILE CONTENT [write_direct]: write only when the bytes
# differ (the mtime is what make compares)
write_if_changed() {
	read_file "$1"
	[ -f "$1" ] && [ "$REPLY" = "$2" ] || "${3:-write_file}" "$1" "$2"
}

cache_load() {
	local p s h
	[ -f "$ST/statcache" ] || return 0
	while IFS=$'\t' read -r p s h; do
		# a line torn by two steps appending at once is just not used
		[[ $h =~ ^[0-9a-f]{64}$ ]] || continue
		cache[$p]=$s$'\t'$h
	done <"$ST/statcache"
}
# cache_save: append what this process hashed (steps of one make -j run append at once)
cache_save() {
	[ -z "$cache_new" ] || printf '%s' "$cache_new" >>"$ST/statcache" 2>/dev/null || true
	cache_new=
}
# cache_compact: rewrite the cache with one line per file that still exists
# (plan.sh, when no step runs)
cache_compact() {
	local p all=
	for p in "${!cache[@]}"; do [ ! -e "$p" ] || all+=$p$'\t'${cache[$p]}$'\n'; done
	cache_new=
	write_if_changed "$ST/statcache" "$all"
}

# stat_files FILE...: statof[FILE] = "size mtime ctime inode" for those not known yet
stat_files() {
	local f line todo=()
	for f; do [ -n "${statof[$f]:-}" ] || todo+=("$f"); done
	[ ${#todo[@]} -gt 0 ] || return 0
	while IFS= read -r line; do statof[${line%%$'\t'*}]=${line#*$'\t'}; done \
		< <(stat "${STATFMT[@]}" -- "${todo[@]}" 2>/dev/null || true)
}

# files_under DIR: FILES = its files, sorted, temporaries left out
# (from the tree preload_out read when DIR is a top-level entry of OUT)
declare -A tree=()
tree_loaded=
files_under() {
	local d=$1 rel=${1#"$OUT/"}
	if [ -n "$tree_loaded" ] && { [ "${d%/*}" = "$OUT" ] || [ "${d%/*}" = "$OUT/.anemake/build" ]; }; then
		FILES=()
		[ -z "${tree[$rel]:-}" ] || mapfile -t FILES <<<"${tree[$rel]%$'\n'}"
	else
		mapfile -t FILES < <(find "$d" -type f ! -name '*.tmp.*' | LC_ALL=C sort)
	fi
}
# preload_out: every file of OUT (but .anemake, except its build folder)
# listed and stat'ed at once, for checking every step's outputs with two
# processes instead of two each; tree[ENTRY]: the files of each entry that a
# step may record (out_name)
preload_out() {
	local f top all=()
	mapfile -t all < <({
		find "$OUT" -mindepth 1 \( -path "$ST" -o -name '*.tmp.*' \) -prune -o -type f -print
		[ ! -d "$ST/build" ] || find "$ST/build" -mindepth 1 -name '*.tmp.*' -prune -o -type f -print
	} | LC_ALL=C sort)
	for f in "${all[@]}"; do
		top=${f#"$OUT/"}
		case $top in
		.anemake/build/*) top=${top#.anemake/build/} top=.anemake/build/${top%%/*} ;;
		*) top=${top%%/*} ;;
		esac
		tree[$top]+=$f$'\n'
	done
	stat_files "${all[@]}"
	tree_loaded=1
}

# hash_file FILE: REPLY = its SHA-256, through the cache
hash_file() {
	local f=$1 st e mb
	[ -n "${statof[$f]:-}" ] || stat_files "$f"
	st=${statof[$f]:-}
	e=${cache[$f]:-}
	if [ -n "$st" ] && [ "${e%$'\t'*}" = "$st" ]; then REPLY=${e##*$'\t'}; return; fi
	[ -n "$st" ] || { REPLY=missing; return; }
	if linked_hash "$f" "$st"; then
		cache[$f]=$st$'\t'$REPLY
		cache_new+=$f$'\t'$st$'\t'$REPLY$'\n'
		return
	fi
	mb=$((${st%% *} / 1048576))
	[ "$mb" -lt "$HASH_NOTE_MB" ] || echo "anemake: hashing $f ($mb MB; once, then cached by size, mtime, ctime)" >&2
	REPLY=
	# (an openssl that fails or prints something else falls back to sha256sum)
	if [ "$mb" -ge "$BIG_SHA_MB" ] && [ ${#BIG_SHA[@]} -gt 0 ]; then REPLY=$("${BIG_SHA[@]}" <"$f" 2>/dev/null) || REPLY=; fi
	REPLY=${REPLY%% *}
	if ! [[ $REPLY =~ ^[0-9a-f]{64}$ ]]; then
		REPLY=$("${SHA[@]}" <"$f") || { echo "anemake: cannot read $f" >&2; exit 1; }
		REPLY=${REPLY%% *}
	fi
	cache[$f]=$st$'\t'$REPLY
	cache_new+=$f$'\t'$st$'\t'$REPLY$'\n'
}

# An output may be a hard link of an upstream output (compile's weight.bin is
# the package's): the same bytes, known without reading them. upstream_before
# records, before a stage runs, the stat line of every upstream output file
# (origin_st) by size and inode (origin); linked_hash FILE STAT then finds the
# file FILE shares an inode with. Its hash stands when that file was as hashed
# when the stage began and kept its size and mtime (the link changed only its
# ctime: stages never write their inputs). Every cached name of that inode
# takes the new stat line, so the upstream steps' records stay valid without
# reading them again.
declare -A origin=() origin_st=()
upstream_before() {
	local kind rest r f all=()
	while read -r kind rest; do
		[ "$kind" = step ] && read_outputs "$rest" || continue
		for r in "${RELS[@]}"; do
			if [ -d "$OUT/$r" ]; then files_under "$OUT/$r"; all+=("${FILES[@]}"); elif [ -f "$OUT/$r" ]; then all+=("$OUT/$r"); fi
		done
	done <"$ST/$1.args"
	stat_files "${all[@]}"
	for f in "${all[@]}"; do
		r=${statof[$f]:-}
		[ -z "$r" ] || origin["${r%% *} ${r##* }"]=$f origin_st[$f]=$r
	done
}
linked_hash() {
	local f=$1 st=$2 q was e p
	q=${origin["${st%% *} ${st##* }"]:-}
	[ -n "$q" ] && [ "$q" != "$f" ] && [ "$f" -ef "$q" ] || return 1
	was=${origin_st[$q]} e=${cache[$q]:-}
	# size, mtime and inode as before; the ctime may differ
	[ "${e%$'\t'*}" = "$was" ] && [ "${was% * *}" = "${st% * *}" ] && [ "${was##* }" = "${st##* }" ] || return 1
	REPLY=${e##*$'\t'}
	for p in "${!cache[@]}"; do
		e=${cache[$p]}
		[ "${e%$'\t'*}" = "$was" ] && [ "$p" -ef "$f" ] || continue
		cache[$p]=$st$'\t'$REPLY
		cache_new+=$p$'\t'$st$'\t'$REPLY$'\n'
	done
}

# hash_path PATH: REPLY = a file's hash, a directory's (the hash of its
# sorted "./relative-path hash" lines; FILES is left as its files), or "missing"
hash_path() {
	local p=$1 f list=
	if [ -d "$p" ]; then
		files_under "$p"
		stat_files "${FILES[@]}"
		for f in "${FILES[@]}"; do
			hash_file "$f"
			list+=.${f#"$p"}" $REPLY"$'\n'
		done
		REPLY=$(printf '%s' "$list" | "${SHA[@]}")
		REPLY=${REPLY%% *}
	elif [ -e "$p" ]; then
		FILES=("$p")
		hash_file "$p"
	else
		FILES=()
		REPLY=missing
	fi
}

# key_refresh NAME: ST/NAME.key from ST/NAME.args as the inputs are now
key_refresh() {
	local kind rest key= h
	while read -r kind rest; do
		case $kind in
		param) key+="param $rest"$'\n' ;;
		program | input) hash_path "$rest"; key+="$kind $rest $REPLY"$'\n' ;;
		step)
			h=missing
			[ ! -f "$ST/$rest.out" ] || read -r h <"$ST/$rest.out"
			key+="step $rest $h"$'\n' ;;
		esac
	done <"$ST/$1.args"
	write_if_changed "$ST/$1.key" "$key" write_direct
}

# out_name REL: true when REL is what a step may record and remove: one
# entry directly inside OUT (no "/", not "..", not .anemake), or one inside
# OUT's intermediates folder, .anemake/build
out_name() {
	local n=${1#.anemake/build/}
	[[ -n $n && $n != */* && $n != . && $n != .. && $1 != .anemake ]]
}

# read_outputs NAME: RELS = the step's recorded outputs, each inside OUT.
# A record of an older anemake (NAME.paths, paths as the stage printed them)
# is kept only for the entries that are in this OUT: a record copied along
# with OUT names the original's files, which are never this run's to remove.
read_outputs() {
	local p d real
	RELS=()
	if [ -f "$ST/$1.outputs" ]; then
		while IFS= read -r p; do ! out_name "$p" || RELS+=("$p"); done <"$ST/$1.outputs"
	elif [ -f "$ST/$1.paths" ]; then
		real=$(cd "$OUT" && pwd -P)
		while IFS= read -r p; do
			d=$(cd "$(dirname -- "$p")" 2>/dev/null && pwd -P) || continue
			[ "$d" != "$real" ] || ! out_name "${p##*/}" || RELS+=("${p##*/}")
		done <"$ST/$1.paths"
	else
		return 1
	fi
}

# remove_output REL: an output that no step writes any more, with its quality
# report: beside it, or for a part in OUT, in .anemake/build (unless that
# report belongs to a package of the same name there: an earlier layout's part)
remove_output() {
	out_name "$1" || return 0
	local base=${1%.mlpackage}
	rm -rf -- "${OUT:?}/$1" "$OUT/$base.quality.json"
	[[ $1 == */* || -e $OUT/.anemake/build/$1 ]] || rm -f -- "$OUT/.anemake/build/$base.quality.json"
}

# outputs_state REL...: OUT_HASH over the outputs, OUT_SIG their files' stat lines
outputs_state() {
	local rel f list= sig=
	for rel; do
		hash_path "$OUT/$rel"
		list+="$rel $REPLY"$'\n'
		[ ${#FILES[@]} -gt 0 ] || sig+="$rel missing"$'\n'
		for f in "${FILES[@]}"; do sig+=${f#"$OUT/"}$'\t'${statof[$f]:-missing}$'\n'; done
	done
	OUT_HASH=$(printf '%s' "$list" | "${SHA[@]}")
	OUT_HASH=${OUT_HASH%% *}
	OUT_SIG=$sig
}

# outputs_sig REL...: OUT_SIG alone, from stat (nothing read)
outputs_sig() {
	local rel f sig=
	for rel; do
		if [ -d "$OUT/$rel" ]; then files_under "$OUT/$rel"; else FILES=(); [ ! -e "$OUT/$rel" ] || FILES=("$OUT/$rel"); fi
		stat_files "${FILES[@]}"
		[ ${#FILES[@]} -gt 0 ] || sig+="$rel missing"$'\n'
		for f in "${FILES[@]}"; do sig+=${f#"$OUT/"}$'\t'${statof[$f]:-missing}$'\n'; done
	done
	OUT_SIG=$sig
}

# record_outputs NAME REL...: the step's record after a success
record_outputs() {
	local name=$1
	shift
	outputs_state "$@"
	write_file "$ST/$name.outputs" "$(printf '%s\n' "$@")"$'\n'
	rm -f "$ST/$name.paths"
	write_if_changed "$ST/$name.out" "$OUT_HASH"$'\n'
	write_file "$ST/$name.sig" "$OUT_SIG"
}

# outputs_intact NAME: true when the step's outputs are what it wrote. The
# stat lines decide when they are equal; when not, the contents do. Else
# DAMAGED names the first output file that differs (empty: no record).
outputs_intact() {
	local name=$1 want line
	DAMAGED=
	read_outputs "$name" && [ ${#RELS[@]} -gt 0 ] && [ -f "$ST/$name.sig" ] && [ -f "$ST/$name.out" ] || return 1
	outputs_sig "${RELS[@]}"
	read_file "$ST/$name.sig"
	want=$REPLY
	[ "$OUT_SIG" != "$want" ] || return 0
	outputs_state "${RELS[@]}"
	read_file "$ST/$name.out"
	if [ "$OUT_HASH"$'\n' = "$REPLY" ]; then
		write_file "$ST/$name.sig" "$OUT_SIG"
		return 0
	fi
	DAMAGED=${RELS[0]}
	while IFS= read -r line; do
		[[ $'\n'$OUT_SIG == *$'\n'$line$'\n'* ]] || { DAMAGED=${line%%$'\t'*}; DAMAGED=${DAMAGED% missing}; break; }
	done <<<"${want%$'\n'}"
	# a whole output gone is named as such, not by its first file
	[ -e "$OUT/${DAMAGED%%/*}" ] || DAMAGED=${DAMAGED%%/*}
	DAMAGED=$OUT/$DAMAGED
	return 1
}

# --- make why ------------------------------------------------------------------------

# key_items FILE ARRAY: ARRAY["kind name"] = value of each key line
key_items() {
	local -n items=$2
	local kind rest
	items=()
	[ -f "$1" ] || return 0
	while read -r kind rest; do
		case $kind in
		param) items["param ${rest%%=*}"]=${rest#*=} ;;
		*) items["$kind ${rest% *}"]=${rest##* } ;;
		esac
	done <"$1"
}

# changes NAME: REASONS = what differs between the last success and now, in words
changes() {
	local -A was now seen=()
	local k kind item regrouped= ups=
	key_items "$ST/$1.done" was
	key_items "$ST/$1.key" now
	REASONS=()
	# another set of upstream steps (another chunk count): said once, in this plan's names
	for k in "${!now[@]}" "${!was[@]}"; do
		[[ $k == step\ * ]] || continue
		[ -n "${now[$k]+x}" ] && [ -n "${was[$k]+x}" ] || regrouped=1
	done
	if [ -n "$regrouped" ]; then
		while read -r kind item; do [ "$kind" != step ] || ups+=" ${item% *}"; done <"$ST/$1.key"
		REASONS+=("its upstream steps are now$ups")
		for k in "${!now[@]}" "${!was[@]}"; do [[ $k != step\ * ]] || seen[$k]=1; done
	fi
	for k in "${!now[@]}" "${!was[@]}"; do
		[ -z "${seen[$k]:-}" ] && [ "${was[$k]-unset}" != "${now[$k]-unset}" ] || continue
		seen[$k]=1
		kind=${k%% *} item=${k#* }
		case $kind in
		param) REASONS+=("$item was '${was[$k]-}', now '${now[$k]-}'") ;;
		program) REASONS+=("the program $item changed") ;;
		input)
			if [ "${was[$k]:-missing}" = missing ]; then REASONS+=("the file $item is new")
			elif [ "${now[$k]:-missing}" = missing ]; then REASONS+=("the file $item is gone")
			else REASONS+=("the file $item changed"); fi ;;
		step) REASONS+=("the outputs of $item changed") ;;
		esac
	done
}

# why STEP...: one line per step of the plan, in its order
why() {
	local -A pending=()
	local name kind rest ups
	for name; do
		if [ ! -f "$ST/$name.done" ]; then
			echo "$name: not run yet"
			pending[$name]=1
			continue
		fi
		changes "$name"
		if [ ${#REASONS[@]} -gt 0 ]; then
			printf '%s: runs again: %s' "$name" "${REASONS[0]}"
			[ ${#REASONS[@]} = 1 ] || printf '; %s' "${REASONS[@]:1}"
			echo
			pending[$name]=1
			continue
		fi
		if [ ! -f "$ST/$name.stamp" ]; then
			if outputs_intact "$name"; then echo "$name: runs again (its stamp is gone; its outputs are intact, so nothing is redone)"
			else echo "$name: runs again: ${DAMAGED:-its outputs} changed or went missing since the step wrote it"; fi
			pending[$name]=1
			continue
		fi
		ups=
		while read -r kind rest; do [ "$kind" != step ] || [ -z "${pending[$rest]:-}" ] || ups+=" $rest"; done <"$ST/$name.args"
		if [ -n "$ups" ]; then
			echo "$name: runs after${ups} (is redone only when their outputs change)"
			pending[$name]=1
		else
			echo "$name: up to date"
		fi
	done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	[ "${1:-}" = why ] && [ $# -ge 2 ] || { echo "usage: key.sh why ST STEP..." >&2; exit 2; }
	ST=$2 OUT=${2%/.anemake}
	shift 2
	cache_load
	why "$@"
fi
