#!/usr/bin/env bash
# Runs docs/examples/generate (path in $1) on the built-in tiny model under the validation layer:
# it must exit 0, print the prompt and something after it, and the layer must report nothing.
set -euo pipefail
exe=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TMPDIR=$tmp
if ! "$exe" > "$tmp/out" 2> "$tmp/err"; then
  echo "generate failed:"; cat "$tmp/err"; exit 1
fi
cat "$tmp/err" "$tmp/out"
if grep -q "validation error" "$tmp/err"; then echo "FAIL: validation errors"; exit 1; fi
out=$(cat "$tmp/out")
case "$out" in
  "The quick brown fox"?*) ;;
  *) echo "FAIL: expected the prompt followed by generated text, got '$out'"; exit 1 ;;
esac
echo "example_generate: ok"
