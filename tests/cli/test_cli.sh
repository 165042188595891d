#!/usr/bin/env bash
# The vkllm tool end to end on the built-in tiny model: generation is deterministic per seed,
# a fixture written by mkfixtures validates, and bad input of every kind gives one clear line and a
# non-zero exit (never a crash). Needs VKLLM_BIN (the build's bin directory).
set -u
bin=${VKLLM_BIN:?set VKLLM_BIN to the build bin directory}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export XDG_CACHE_HOME="$tmp/cache"
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect <exit code> <pattern in stderr> -- command...
expect() {
  local code=$1 pat=$2; shift 3
  local out rc
  out=$("$@" 2>&1 >/dev/null); rc=$?
  if [ "$rc" -ne "$code" ]; then bad "$* -> exit $rc, wanted $code; output: $out"; return; fi
  if [ "$rc" -ge 128 ]; then bad "$* crashed (signal $((rc - 128)))"; return; fi
  if ! grep -qiE -- "$pat" <<<"$out"; then bad "$* -> message does not match '$pat': $out"; return; fi
  ok
}

# generation: greedy and seeded runs are reproducible
a=$("$bin/vkllm" run -n 12 --temp 0 --tokens 3,4,5 2>/dev/null) || bad "greedy run failed"
b=$("$bin/vkllm" run -n 12 --temp 0 --tokens 3,4,5 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "greedy runs differ: '$a' vs '$b'"
[ "$(wc -w <<<"$a")" -eq 12 ] && ok || bad "wanted 12 tokens, got '$a'"
a=$("$bin/vkllm" run -n 12 --seed 7 --tokens 3 2>/dev/null); b=$("$bin/vkllm" run -n 12 --seed 7 --tokens 3 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "seeded runs differ: '$a' vs '$b'"
out=$("$bin/vkllm" run -n 4 --tokens 1 2>&1 >/dev/null)
grep -q "tokens/s" <<<"$out" && grep -q "time to first token" <<<"$out" && ok || bad "no speed summary: $out"
# the end of the context stops generation with a message
out=$("$bin/vkllm" run -n 50 --ctx 20 --tokens 1,2,3 2>&1 >/dev/null)
grep -q "context is full" <<<"$out" && ok || bad "no context-full message: $out"

# text in, text out: -p is tokenized with the model's vocabulary (special tokens too), the reply is
# text, reproducible per seed; chat keeps going across turns and /reset, and exits 0 at end of input
a=$("$bin/vkllm" run -n 12 --temp 0 -p "The river" 2>/dev/null) || bad "run -p failed"
b=$("$bin/vkllm" run -n 12 --temp 0 -p "The river" 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "greedy text runs differ or are empty: '$a' vs '$b'"
grep -qE '^[0-9 ]+$' <<<"$a" && bad "run -p printed token ids: '$a'" || ok
out=$("$bin/vkllm" run -n 4 --temp 0 -p "<|im_start|><|im_sep|><|im_end|>" 2>&1 >/dev/null)
grep -q "prompt: 3 tokens" <<<"$out" && ok || bad "special tokens in -p not matched whole (want 3 prompt tokens): $out"
out=$(printf 'hello\n/reset\nhi\n' | "$bin/vkllm" chat -n 8 --seed 3 2>"$tmp/chat.err"); rc=$?
[ "$rc" -eq 0 ] && ok || bad "chat exited $rc: $(tail -3 "$tmp/chat.err")"
[ "$(wc -l <<<"$out")" -ge 2 ] && ok || bad "chat printed fewer than 2 replies: '$out'"
grep -q "cleared" "$tmp/chat.err" && ok || bad "chat /reset said nothing: $(cat "$tmp/chat.err")"

# fixtures: the CPU reference's checkpoints validate on the GPU
model="$XDG_CACHE_HOME/vkllm/tiny-q4_k_m-v1.gguf"
"$bin/mkfixtures" -m "$model" --random 12 --seed 5 -o "$tmp/ref.h5" >/dev/null 2>&1 || bad "mkfixtures failed"
"$bin/vkllm" validate -m "$model" --fixture "$tmp/ref.h5" >"$tmp/val.txt" 2>&1 && ok || bad "validate failed: $(tail -5 "$tmp/val.txt")"
grep -q " 0 failed" "$tmp/val.txt" && ok || bad "validate summary: $(tail -2 "$tmp/val.txt")"
# the 8-bit one-token path (what run takes where the int dot is accelerated) against the same float fixture
"$bin/vkllm" validate -m "$model" --fixture "$tmp/ref.h5" --act-q8 on >"$tmp/val8.txt" 2>&1 && ok || bad "validate --act-q8 on failed: $(tail -5 "$tmp/val8.txt")"
grep -q "8-bit activations" "$tmp/val8.txt" && grep -q " 0 failed" "$tmp/val8.txt" && ok || bad "validate --act-q8 on summary: $(head -1 "$tmp/val8.txt"; tail -2 "$tmp/val8.txt")"
"$bin/vkllm" validate -m "$model" --fixture "$tmp/ref.h5" --act-q8 off >"$tmp/val0.txt" 2>&1 && grep -q "float32 activations" "$tmp/val0.txt" && ok || bad "validate --act-q8 off: $(tail -3 "$tmp/val0.txt")"

# profile: a per-kernel table, step totals, a Chrome trace that parses as JSON with a GPU dispatch and a
# host slice per step, and an SVG chart that parses as XML. By default sampled: each step times the
# dispatches of one layer group in K, the prefill runs until every dispatch was timed, every dispatch
# lies inside its step's slice, and the decode steps together time every dispatch.
"$bin/vkllm" profile -p 16 -n 4 --trace "$tmp/t.json" >"$tmp/prof.txt" 2>&1 && ok || bad "profile failed: $(tail -5 "$tmp/prof.txt")"
grep -q "| attn_qkv" "$tmp/prof.txt" && grep -q "gaps between dispatches" "$tmp/prof.txt" && grep -q "prepare+submit" "$tmp/prof.txt" \
  && grep -q "sampled: each step stamps" "$tmp/prof.txt" && ok || bad "profile tables incomplete: $(head -20 "$tmp/prof.txt")"
python3 -m json.tool "$tmp/t.json" >/dev/null && ok || bad "profile trace is not valid JSON"
python3 - "$tmp/t.json" <<'PY' && ok || bad "profile trace lacks dispatch or host slices"
import json, sys
j = json.load(open(sys.argv[1]))
x = [e for e in j["traceEvents"] if e["ph"] == "X"]
runs = j["otherData"]["prefill_runs"]
assert any(e["name"].startswith("L00.attn_qkv") for e in x)
assert runs >= 1 and sum(e["cat"] == "step" for e in x) == runs + 4 and sum(e["cat"] == "host" for e in x) == 2 * (runs + 4)
steps = [e for e in x if e["cat"] == "step"]
for e in x:
    if e["cat"] == "dispatch":
        assert any(s["ts"] - 2e-3 <= e["ts"] and e["ts"] + e["dur"] <= s["ts"] + s["dur"] + 2e-3 for s in steps), e
dec = [s for s in steps if s["name"].startswith("decode")]
assert sum(s["args"].get("timed", s["args"]["dispatches"]) for s in dec) >= dec[0]["args"]["dispatches"]
pre = [s for s in steps if s["name"].startswith("prefill")]
assert sum(s["args"].get("timed", s["args"]["dispatches"]) for s in pre) == pre[0]["args"]["dispatches"]
PY
# every dispatch in every step (--sample 1), one stamp per dispatch: the old trace, a step per run
"$bin/vkllm" profile -p 4 -n 2 --stamps end --sample 1 --trace "$tmp/t4.json" >"$tmp/prof4.txt" 2>&1 && ! grep -q "sampled" "$tmp/prof4.txt" \
  && grep -q "previous one's end" "$tmp/prof4.txt" && ok || bad "profile --sample 1: $(tail -3 "$tmp/prof4.txt")"
python3 - "$tmp/t4.json" <<'PY' && ok || bad "profile --sample 1 trace"
import json, sys
j = json.load(open(sys.argv[1]))
x = [e for e in j["traceEvents"] if e["ph"] == "X"]
steps = [e for e in x if e["cat"] == "step"]
assert j["otherData"]["prefill_runs"] == 1 and len(steps) == 3 and all("timed" not in s["args"] for s in steps)
assert sum(e["cat"] == "dispatch" for e in x) == sum(s["args"]["dispatches"] for s in steps)
PY
expect 2 "--sample needs" -- "$bin/vkllm" profile --sample 0
python3 -c "import sys, xml.dom.minidom as m; m.parse(sys.argv[1])" "$tmp/t.svg" && ok || bad "profile chart is not valid SVG/XML"
# start stamps at the top of the pipe: the same tables, and the trace says which stamps it has
"$bin/vkllm" profile -p 4 -n 2 --stamps top --trace "$tmp/t3.json" >"$tmp/prof3.txt" 2>&1 && grep -q "top of the pipe" "$tmp/prof3.txt" \
  && grep -q '"start_stamps": "top of pipe"' "$tmp/t3.json" && ok || bad "profile --stamps top: $(tail -3 "$tmp/prof3.txt")"
expect 2 "--stamps needs" -- "$bin/vkllm" profile --stamps bottom
expect 2 "--sample needs" -- "$bin/vkllm" profile --sample 17
# without calibrated timestamps the trace still places each step's GPU slices at its submit, and says so
VKLLM_DISABLE=calibrated "$bin/vkllm" profile -p 4 -n 2 --trace "$tmp/t2.json" >"$tmp/prof2.txt" 2>&1 || bad "profile failed: $(tail -3 "$tmp/prof2.txt")"
python3 - "$tmp/t.json" "$tmp/t2.json" <<'PY' && ok || bad "trace clock not reported as calibrated / approximate"
import json, sys
a, b = (json.load(open(p))["otherData"]["clock"] for p in sys.argv[1:3])
assert b.startswith("approximate"), b
PY
# benchmark reports: report.py assembles bench JSON and vkllm bench rows; compare.py flags a kernel that
# got slower beyond its spread (exit 1) and passes an unchanged run (exit 0)
src=$(cd "$(dirname "$0")/../.." && pwd)
for run in a b; do
  mkdir -p "$tmp/bench-$run"
  slow=$([ "$run" = b ] && echo 150.0 || echo 100.0)
  printf '{"bench": "bench-x", "device": "dev", "driver": "drv", "date": "today", "quick": 0, "results": [
    {"kernel": "k1", "shape": "s", "bytes": 1000, "flops": 0, "median_us": %s, "min_us": 99.0, "gbs": 10, "fraction_of_ceiling": 0.5, "tflops": 0},
    {"kernel": "k2", "shape": "s", "bytes": 1000, "flops": 0, "median_us": 50.0, "min_us": 49.5, "gbs": 20, "fraction_of_ceiling": 0.9, "tflops": 0}
  ], "read_ceiling_gbs": 22.0}\n' "$slow" >"$tmp/bench-$run/bench-x.json"
  printf '| m | 1.00 GiB | dev | pp512 | 1000.00 ± 5.00 |\n| m | 1.00 GiB | dev | tg128 | 50.00 ± 0.10 |\n' >"$tmp/bench-$run/e2e.md"
  python3 "$src/bench/report.py" --dir "$tmp/bench-$run" --commit "$run" >/dev/null || bad "report.py failed on run $run"
done
python3 -m json.tool "$tmp/bench-a/report.json" >/dev/null && grep -q "| pp512 | 1000.00" "$tmp/bench-a/report.md" && ok \
  || bad "report.py output incomplete: $(cat "$tmp/bench-a/report.md")"
out=$(python3 "$src/bench/compare.py" "$tmp/bench-a/report.json" "$tmp/bench-b/report.json"); rc=$?
[ "$rc" -eq 1 ] && grep -q "k1 s .*REGRESSION" <<<"$out" && ! grep -q "k2 s" <<<"$out" && ok || bad "compare.py (rc $rc): $out"
python3 "$src/bench/compare.py" "$tmp/bench-a/report.json" "$tmp/bench-a/report.json" >/dev/null && ok || bad "compare.py flags an unchanged run"
expect 1 "cannot write the trace" -- "$bin/vkllm" profile -p 4 -n 1 --trace "$tmp/no/such/dir/t.json"
expect 2 "--overhead needs" -- "$bin/vkllm" profile --overhead 0

# bad input: one clear line, non-zero exit
printf 'not a gguf file' >"$tmp/junk.gguf"
mkdir -p "$tmp/dir.gguf"
expect 2 "unknown command" -- "$bin/vkllm" frobnicate
expect 2 "unknown option" -- "$bin/vkllm" run --frob 1
expect 2 "-n needs an integer" -- "$bin/vkllm" run -n abc
expect 2 "-n needs an integer" -- "$bin/vkllm" run -n -5
expect 2 "--temp needs a number" -- "$bin/vkllm" run --temp nan
expect 2 "--top-p needs a number" -- "$bin/vkllm" run --top-p 2
expect 2 "--tokens needs" -- "$bin/vkllm" run --tokens 1,x,3
expect 2 "not both" -- "$bin/vkllm" run -p hi --tokens 1
expect 2 "unknown option" -- "$bin/vkllm" chat --frob 1
expect 2 "-n needs an integer" -- "$bin/vkllm" chat -n 0
expect 2 "--ctx needs" -- "$bin/vkllm" run --ctx 0
expect 2 "missing value" -- "$bin/vkllm" run -m
expect 1 "No such file|cannot open|not found" -- "$bin/vkllm" run -m "$tmp/missing.gguf"
expect 1 "directory|cannot|not a regular" -- "$bin/vkllm" run -m "$tmp/dir.gguf"
expect 1 "magic|GGUF|too small|truncat" -- "$bin/vkllm" run -m "$tmp/junk.gguf"
expect 1 "outside the vocabulary" -- "$bin/vkllm" run --tokens 99999999
expect 1 "larger than the model" -- "$bin/vkllm" run --ctx 100000
expect 2 "needs -m" -- "$bin/vkllm" validate --fixture x.h5
expect 2 "auto, on or off" -- "$bin/vkllm" validate -m "$model" --fixture x.h5 --act-q8 maybe
expect 1 "h5|HDF5|fixture|open" -- "$bin/vkllm" validate -m "$model" --fixture "$tmp/junk.gguf"
expect 1 "no Vulkan device name contains" -- "$bin/vkllm" info --device no-such-device-xyz
expect 2 "do not fit" -- "$bin/vkllm" bench -p 512 -n 128 --ctx 100

# ---- hardening (issue 8): the bad-input table and signals -------------------------------------
# Every flag of every command with a wrong type or an out-of-range value (exit 2), and every file
# argument missing, a directory, empty, junk, truncated, of another architecture or unreadable
# (exit 1): one clear line, never a crash (expect() fails on an exit by signal). Then SIGINT during
# generation stops cleanly with exit 0 and a message, and injected device faults exit 1 naming the
# chain that was running.
hardening_cases() {
  local f cmd
  # flags: wrong type / out of range (exit 2, "<flag> needs ...")
  while read -r cmd f v; do
    [ -n "$cmd" ] || continue
    expect 2 "$f needs" -- "$bin/vkllm" "$cmd" "$f" "$v" </dev/null
  done <<'EOF_FLAGS'
run -n x
run -n 99999999999
run --temp abc
run --temp -1
run --temp inf
run --top-k x
run --top-k -1
run --top-p 0
run --min-p 2
run --repeat-penalty 0
run --seed -1
run --seed 1x
run --ctx abc
run --ctx 99999999999
run --batch 0
run --batch 9000
run --tokens -1
run --act-q8 maybe
chat -n x
chat --temp x
chat --ctx 0
chat --batch 0
chat --seed x
bench -p x
bench -n -1
bench -r 0
bench -r 1001
bench --ctx x
bench --batch 0
bench --act-q8 1
profile -p x
profile -n x
profile --depth x
profile --overhead 0
profile --overhead 33
EOF_FLAGS
  expect 2 "needs a non-negative integer" -- "$bin/vkllm" info --seed x
  for cmd in run chat bench profile validate; do
    expect 2 "missing value|needs|usage" -- "$bin/vkllm" "$cmd" -m
  done

  # files (exit 1)
  local model="$XDG_CACHE_HOME/vkllm/tiny-q4_k_m-v1.gguf"
  : >"$tmp/empty.gguf"
  head -c 100000 "$model" >"$tmp/short.gguf"
  # a well-formed GGUF v3 of another architecture: general.architecture = "llama", no tensors
  printf 'GGUF\003\000\000\000\000\000\000\000\000\000\000\000\001\000\000\000\000\000\000\000' >"$tmp/llama.gguf"
  printf '\024\000\000\000\000\000\000\000general.architecture\010\000\000\000' >>"$tmp/llama.gguf"
  printf '\005\000\000\000\000\000\000\000llama' >>"$tmp/llama.gguf"
  cp "$model" "$tmp/noread.gguf"; chmod 000 "$tmp/noread.gguf"
  for cmd in run chat bench profile; do
    expect 1 "No such file|cannot open" -- "$bin/vkllm" "$cmd" -m "$tmp/missing.gguf"
    expect 1 "not a regular file|directory" -- "$bin/vkllm" "$cmd" -m "$tmp/dir.gguf"
    expect 1 "too small|truncat|empty|magic|end of" -- "$bin/vkllm" "$cmd" -m "$tmp/empty.gguf"
    expect 1 "magic|GGUF" -- "$bin/vkllm" "$cmd" -m "$tmp/junk.gguf"
    expect 1 "truncat|beyond|past the end|end of|outside|exceeds" -- "$bin/vkllm" "$cmd" -m "$tmp/short.gguf"
    expect 1 "runs only 'phi3'" -- "$bin/vkllm" "$cmd" -m "$tmp/llama.gguf"
    if [ "$(id -u)" -ne 0 ]; then # root reads anything
      expect 1 "Permission denied|cannot open" -- "$bin/vkllm" "$cmd" -m "$tmp/noread.gguf"
    fi
  done
  expect 1 "runs only 'phi3'" -- "$bin/vkllm" validate -m "$tmp/llama.gguf" --fixture "$tmp/ref.h5"
  expect 1 "h5|HDF5|fixture|open|exist" -- "$bin/vkllm" validate -m "$model" --fixture "$tmp/missing.h5"
  expect 1 "h5|HDF5|fixture|open|directory" -- "$bin/vkllm" validate -m "$model" --fixture "$tmp/dir.gguf"
  expect 1 "h5|HDF5|fixture|open" -- "$bin/vkllm" validate -m "$model" --fixture "$tmp/empty.gguf"
  expect 1 "larger than the model" -- "$bin/vkllm" chat --ctx 100000

  # injected device faults: one line naming the chain, exit 1, no crash
  expect 1 "first '.*VK_ERROR_DEVICE_LOST" -- env VKLLM_FAULT=submit_device_lost:3 "$bin/vkllm" run -n 8 --tokens 1
  expect 1 "VK_ERROR_OUT_OF_DEVICE_MEMORY" -- env VKLLM_FAULT=submit_oom "$bin/vkllm" run -n 8 --tokens 1
  expect 1 "refused by fault injection" -- env VKLLM_FAULT=alloc:2 "$bin/vkllm" run -n 8 --tokens 1
  expect 1 "unknown fault" -- env VKLLM_FAULT=bogus "$bin/vkllm" run -n 8 --tokens 1

  # SIGINT during generation: stops at the next token, exit 0, says so
  local pid rc out
  "$bin/vkllm" run -n 100000 --ctx 4096 --tokens 1 >"$tmp/int.out" 2>"$tmp/int.err" &
  pid=$!
  for _ in $(seq 1 300); do [ -s "$tmp/int.out" ] && break; sleep 0.1; done
  sleep 0.5
  kill -INT "$pid"
  wait "$pid"; rc=$?
  out=$(cat "$tmp/int.err")
  [ "$rc" -eq 0 ] && ok || bad "SIGINT during generation: exit $rc: $(tail -3 "$tmp/int.err")"
  grep -q "stopped: interrupted" <<<"$out" && ok || bad "SIGINT during generation: no 'stopped: interrupted' in: $(tail -3 "$tmp/int.err")"
  grep -q "tokens/s" <<<"$out" && ok || bad "SIGINT during generation: no summary after it"
}
hardening_cases

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
