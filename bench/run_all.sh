#!/usr/bin/env bash
# The whole benchmark suite in one go, for docs/BENCHMARKS.md: every kernel microbenchmark (each
# measures the streaming-read ceiling in the same process), the matrix rate and the profiling overhead
# (`vkllm profile`), and end-to-end prompt and generation speed at depth 0 and 4096 (`vkllm bench`).
# Writes OUT/report.md (printed too) and OUT/report.json; compare two runs with
#   python3 bench/compare.py old/report.json new/report.json
#
# usage: bench/run_all.sh [-m model.gguf] [-o OUT] [-B build/bin] [--device D] [--quick]
#   -m      the model for the end-to-end rows and the profile (default: the built-in tiny model,
#           whose speeds only show that the path works)
#   --quick small sizes and few repetitions everywhere: a smoke run whose numbers mean nothing
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin="$root/build/bin" out="bench-out" model="" device="" quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    -m) model=$2; shift 2 ;;
    -o) out=$2; shift 2 ;;
    -B) bin=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_all.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$bin/vkllm" ] || { echo "run_all.sh: no $bin/vkllm: build first (cmake --build build) or pass -B <bin dir>" >&2; exit 1; }
command -v python3 >/dev/null || { echo "run_all.sh: python3 is needed for the report" >&2; exit 1; }
mkdir -p "$out" || exit 1

common=()
[ "$quick" = 1 ] && common+=(--quick)
[ -n "$device" ] && common+=(--device "$device")
dev=()
[ -n "$device" ] && dev+=(--device "$device")
mdl=()
[ -n "$model" ] && mdl+=(-m "$model")

failed=()
run() { # name, command...: stdout to OUT/name.md, stderr to OUT/name.err
  local name=$1; shift
  echo "run_all.sh: $name ..." >&2
  local t0=$SECONDS
  if "$@" >"$out/$name.md" 2>"$out/$name.err"; then
    echo "run_all.sh: $name done in $((SECONDS - t0)) s" >&2
  else
    echo "run_all.sh: $name FAILED (exit $?): $(tail -2 "$out/$name.err")" >&2
    failed+=("$name")
  fi
}

for b in bench-kernels bench-matvec bench-gemm bench-attn bench-misc; do
  if [ -x "$bin/$b" ]; then run "$b" "$bin/$b" --json "$out/$b.json" "${common[@]}"
  else echo "run_all.sh: $b not built, skipped" >&2; fi
done

if [ "$quick" = 1 ]; then
  pe=(-p 16 -n 4 --overhead 2) be=(-p 16 -n 8 -r 2 --depth 0,64)
else
  pe=(-p 512 -n 64 --overhead 5) be=(-p 512 -n 128 -r 5 --depth 0,4096)
fi
run profile "$bin/vkllm" profile "${mdl[@]}" "${dev[@]}" "${pe[@]}" --trace "$out/profile.json"
run e2e "$bin/vkllm" bench "${mdl[@]}" "${dev[@]}" "${be[@]}"

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit+dirty"
python3 "$here/report.py" --dir "$out" --commit "$commit" --model "${model:-built-in tiny model}" --quick "$quick" \
  --failed "${failed[*]:-}" || exit 1
[ ${#failed[@]} -eq 0 ]
