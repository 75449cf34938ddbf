#!/usr/bin/env bash
# step.sh: run one pipeline step and record it.
#
#   step.sh ST NAME LABEL [-o OUTPUT] -- COMMAND...
# Refreshes NAME.key from NAME.args (its parameters and inputs as they are
# now, upstream outputs included). When that key equals the key of the
# step's last success (NAME.done) and its outputs are still what it wrote
# (key.sh: outputs_intact), the work is skipped: an upstream step re-ran but
# wrote the same bytes (early cutoff). Otherwise COMMAND runs (a stage
# program; it prints the paths it wrote on stdout, or, with -o, writes
# OUTPUT and its stdout goes to the terminal; a step never done refreshes
# its key beside COMMAND, as nothing is compared with it). On success: the record
# (NAME.outputs, .out, .sig), NAME.done, then NAME.stamp, last. A step that
# fails or is interrupted leaves no stamp, so the next make runs it again.
# Its last line says what the step cost: "anemake: LABEL done (12.3 s, CPU
# 20.1 s, peak RSS 812 MB, anonymous 95 MB)".
# What the step wrote last time and not now is removed, only inside OUT.
set -euo pipefail
ST=$1 name=$2 label=$3 output=
OUT=${ST%/.anemake}
shift 3
if [ "$1" = -o ]; then output=$2; shift 2; fi
shift
. "$(dirname "$0")/key.sh"
# Interrupted or failed, leave no temporaries (the stage removes its own).
trap 'rm -f "$ST/$name".*.tmp.$$; [ -z "${keyjob:-}" ] || kill "$keyjob" 2>/dev/null || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
stamp() { write_file "$ST/$name.stamp" ""; }

# failed STATUS: say so with the make variables the step ran with
failed() {
	local kind rest vars=
	while read -r kind rest; do
		if [ "$kind" = param ] && [ -n "${rest#*=}" ] && [[ $rest != CHUNK=* ]]; then vars+=" $rest"; fi
	done <"$ST/$name.args"
	echo "anemake: $label failed${vars:+ (with$vars)}" >&2
	exit "$1"
}

cache_load
keyjob=
if [ -f "$ST/$name.done" ]; then
	key_refresh "$name"
	read_file "$ST/$name.key"
	key=$REPLY
	read_file "$ST/$name.done"
	if [ "$REPLY" = "$key" ]; then
		if outputs_intact "$name"; then
			echo "anemake: $label unchanged" >&2
			stamp
			cache_save
			exit 0
		fi
		[ -z "$DAMAGED" ] || echo "anemake: $label: $DAMAGED changed or went missing since it was written; writing it again" >&2
	fi
else
	# Never done: no key to compare with, so the key (inputs not hashed yet,
	# a checkpoint of gigabytes) is computed beside the stage, on the core it
	# leaves free, and recorded after it.
	{ key_refresh "$name"; cache_save; } &
	keyjob=$!
fi
read_outputs "$name" || true
old=("${RELS[@]}")

# cost: the step's wall time, CPU time and peak memory, as the stage reported
# them at exit (base/runstats.h; peak anonymous memory on Linux only), or
# the wall time alone from a program that does not report.
cost() {
	local kv w= c= r= a= f=()
	[ -s "$stats" ] && read -r -a f <"$stats"
	for kv in "${f[@]}"; do
		case $kv in
		wall_s=*) w=${kv#*=} ;; cpu_s=*) c=${kv#*=} ;; rss_mb=*) r=${kv#*=} ;; anon_mb=*) a=${kv#*=} ;;
		esac
	done
	if [ -z "$w" ] || [ -z "$c" ] || [ -z "$r" ]; then
		echo "$((SECONDS - start))s"
		return
	fi
	printf '%.1f s, CPU %.1f s, peak RSS %.0f MB' "$w" "$c" "$r"
	[ -z "$a" ] || printf ', anonymous %.0f MB' "$a"
}

upstream_before "$name"
start=$SECONDS
stats=$ST/$name.stats.tmp.$$
echo "anemake: $label ..." >&2
rm -f "$ST/$name.done"
if [ -n "$output" ]; then
	ANEMAKE_STATS=$stats "$@" || failed $?
	printed=("$output")
else
	ANEMAKE_STATS=$stats "$@" >"$ST/$name.printed.tmp.$$" || failed $?
	mapfile -t printed <"$ST/$name.printed.tmp.$$"
fi
if [ -n "$keyjob" ]; then
	wait "$keyjob" || exit 1
	keyjob=
	read_file "$ST/$name.key"
	key=$REPLY
fi

# What the stage wrote, relative to OUT: every output is an entry of OUT or
# of its intermediates folder (.anemake/build), or inside an entry of OUT
# (dist's DIST/standard: the entry is DIST's folder in OUT).
real=
rels=()
for p in "${printed[@]}"; do
	r=${p##*/}
	if [ "$p" = "$ST/build/$r" ]; then
		r=.anemake/build/$r
	elif [ "$p" != "$OUT/$r" ]; then
		real=${real:-$(cd "$OUT" && pwd -P)}
		d=$(cd "$(dirname -- "$p")" 2>/dev/null && pwd -P) ||
			{ echo "anemake: BUG: $label wrote $p, which is not there" >&2; exit 1; }
		case $d/ in
		"$real"/) ;;
		"$real"/.anemake/build/) r=.anemake/build/$r ;;
		"$real"/.anemake/*) echo "anemake: BUG: $label wrote $p, inside $ST" >&2; exit 1 ;;
		"$real"/*) r=${d#"$real"/} r=${r%%/*} ;;
		*) echo "anemake: BUG: $label wrote $p, outside $OUT" >&2; exit 1 ;;
		esac
	fi
	out_name "$r" || { echo "anemake: BUG: $label wrote $p, not an entry of $OUT" >&2; exit 1; }
	[[ " ${rels[*]} " == *" $r "* ]] || rels+=("$r")
done
# What this step wrote last time and not now (another LUT, another chunk
# count) is stale: remove it so no runtime picks it up by mistake.
for f in "${old[@]}"; do
	[[ " ${rels[*]} " == *" $f "* ]] || remove_output "$f"
done
# An OUT of an earlier layout kept each part's quality report beside it: it is in .anemake/build now.
for r in "${rels[@]}"; do
	q=${r%.mlpackage}.quality.json
	if [[ $r != */* && $r == *.mlpackage && -f $ST/build/$q ]]; then rm -f "$OUT/$q"; fi
done
statof=() # the stage rewrote them
record_outputs "$name" "${rels[@]}"
write_file "$ST/$name.done" "$key"
stamp
cache_save
echo "anemake: $label done ($(cost))" >&2
