#!/usr/bin/env bash
# next.sh: after a conversion, say how to use it.
#
#   next.sh OUT [PROMPT [DIST_COMMAND]]
# Prints the commands that run OUT/meta.yaml with ANEMLL's runtimes (chat.py
# and the Swift CLI, anemll-interface.md 7.2, 7.3) and what the smoketest
# checked, from OUT/smoketest.json. Paths are absolute: the commands run
# from ANEMLL's checkout.
set -euo pipefail
out=${1:?usage: next.sh OUT [PROMPT [DIST_COMMAND]]} prompt=${2:-} dist_cmd=${3:-}
meta=$(cd "$out" && pwd)/meta.yaml
[ -f "$meta" ] || { echo "next.sh: no $meta: convert first" >&2; exit 1; }
[ -n "$prompt" ] || prompt="Who are you?"
# q WORD: WORD as a shell reads it back (single-quoted unless plain)
q() {
	case $1 in
	*[!A-Za-z0-9_./:=@%+-]* | '') printf "'%s'" "${1//\'/\'\\\'\'}" ;;
	*) printf '%s' "$1" ;;
	esac
}

# A top-level value of the smoketest's report (cJSON_Print: one tab, key, tab, value).
json() { sed -n "s/^\t\"$1\":\t\(.*\)\$/\1/p" "$out/smoketest.json" | sed 's/,$//'; }

checked() {
	[ -f "$out/smoketest.json" ] || { echo "no smoketest report ($out/smoketest.json)"; return; }
	local n agree kl verdict
	n=$(json generated | tr -d '[] ' | tr ',' '\n' | grep -c .) || true
	agree=$(json top1_agreement) kl=$(json kl_mean)
	agree=$(awk -v a="$agree" 'BEGIN { printf "%.1f%%", 100 * a }')
	if [ "$kl" = null ]; then kl="not judged (argmax head)"; else kl=$(awk -v k="$kl" 'BEGIN { printf "%.3g", k }'); fi
	[ "$(json passed)" = true ] && verdict=passed || verdict=FAILED
	echo "the parts, run on CPU as chat.py runs them, against the fp32 reference of the source model:"
	echo "    $n generated tokens, top-1 agreement $agree, mean KL $kl: $verdict ($out/smoketest.json)"
}

echo
echo "anemake: $out holds the conversion in ANEMLL's layout (meta.yaml and the parts it names)."
echo "  chat with it (in a checkout of ANEMLL, github.com/Anemll/Anemll):"
echo "    python3 tests/chat.py --meta $(q "$meta") --prompt $(q "$prompt")"
if grep -q '^    pf: ' "$meta"; then
	echo "  (ANEMLL's Swift CLI does not load split-rotate _rot files: convert without SPLIT_ROTATE for it)"
else
	echo "  or with ANEMLL's Swift CLI (macOS, in its anemll-swift-cli/ folder):"
	echo "    swift run -c release anemllcli --meta $(q "$meta") --prompt $(q "$prompt")"
fi
if [ -n "$dist_cmd" ]; then
	echo "  pack it for Hugging Face as ANEMLL's prepare_hf.sh does:"
	echo "    $dist_cmd"
else
	echo "  pack it for Hugging Face as ANEMLL's prepare_hf.sh does: the same make command with the target dist"
fi
echo "    (writes $(q "$out/hf_dist")/standard and ios, with a model card of what was measured; prints the hf upload command)"
echo "  checked here: $(checked)"
