#!/usr/bin/env bash
# Installs the build (first argument; second: the C compiler) into a temporary prefix and builds a
# consumer against that tree alone, two ways: pkg-config (shared) and find_package(vkllm)
# (vkllm::vkllm and vkllm::vkllm_static, plus docs/examples/generate.c), then runs each on the
# device under the validation layer. Also checks that the shared library exports only vkllm_*.
set -euo pipefail
build=$1
cc=${2:-cc}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
export TMPDIR=$tmp

step() { echo "== $*"; }

step "cmake --install"
cmake --install "$build" --prefix "$prefix" > "$tmp/install.log"
for f in include/vkllm/vkllm.h include/vkllm/version.h bin/vkllm; do
  [ -e "$prefix/$f" ] || { echo "FAIL: $f not installed"; cat "$tmp/install.log"; exit 1; }
done
so=$(find "$prefix" -name 'libvkllm.so' | head -1)
libdir=$(dirname "${so:-/nonexistent/x}")
if [ -z "$so" ] || [ ! -f "$libdir/libvkllm.a" ] || [ ! -f "$libdir/pkgconfig/vkllm.pc" ]; then
  echo "FAIL: libvkllm.so/.a or vkllm.pc missing"; find "$prefix"; exit 1
fi

step "exported symbols"
others=$(nm -D --defined-only "$libdir/libvkllm.so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | grep -v '^vkllm_' || true)
if [ -n "$others" ]; then echo "FAIL: libvkllm.so exports symbols outside the API:"; echo "$others" | head -20; exit 1; fi
for internal in vkllm_fail vkllm_xfer_begin vkllm_ref_model_create vkllm_fixture_open; do
  if nm -D --defined-only "$libdir/libvkllm.so" | grep -qw "$internal"; then echo "FAIL: internal $internal is exported"; exit 1; fi
done
echo "$(nm -D --defined-only "$libdir/libvkllm.so" | grep -c ' T vkllm_') functions exported"

step "the built-in tiny model, and the installed vkllm tool on it"
model=$tmp/tiny.gguf
"$cc" -x c - -o "$tmp/mk" -I"$prefix/include" -L"$libdir" -Wl,-rpath,"$libdir" -lvkllm <<'C'
#include <stdio.h>
#include <vkllm/vkllm.h>
int main(int argc, char **argv) { char e[512]; if (argc < 2 || vkllm_write_tiny_model(argv[1], e, sizeof e)) { fprintf(stderr, "%s\n", e); return 1; } return 0; }
C
"$tmp/mk" "$model"
out=$("$prefix/bin/vkllm" run -m "$model" -n 4 --temp 0 --tokens 3,4,5 2> "$tmp/run.err") || { cat "$tmp/run.err"; exit 1; }
[ "$(wc -w <<<"$out")" -eq 4 ] || { echo "FAIL: installed vkllm run printed '$out'"; exit 1; }

step "pkg-config"
export PKG_CONFIG_PATH=$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
pkg-config --exists vkllm
[ "$(pkg-config --modversion vkllm)" = "$(sed -n 's/^#define VKLLM_VERSION_STRING "\(.*\)"/\1/p' "$prefix/include/vkllm/version.h")" ] \
  || { echo "FAIL: pkg-config version differs from the header's"; exit 1; }
# shellcheck disable=SC2046
"$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror "$here/consumer/consumer.c" -o "$tmp/consumer_pc" \
  $(pkg-config --cflags --libs vkllm) -Wl,-rpath,"$libdir"
"$tmp/consumer_pc" "$model"
# the static archive through pkg-config --static
# shellcheck disable=SC2046
"$cc" -std=c11 "$here/consumer/consumer.c" -o "$tmp/consumer_pc_static" $(pkg-config --cflags vkllm) \
  "$libdir/libvkllm.a" $(pkg-config --static --libs vkllm | sed 's/-lvkllm//')
if ldd "$tmp/consumer_pc_static" | grep -q libvkllm; then echo "FAIL: static consumer loads libvkllm.so"; exit 1; fi
"$tmp/consumer_pc_static" "$model"

step "find_package(vkllm)"
cmake -S "$here/consumer" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
  -DVKLLM_EXAMPLE="$src/docs/examples/generate.c" > "$tmp/consumer.log" 2>&1 || { cat "$tmp/consumer.log"; exit 1; }
cmake --build "$tmp/consumer" > "$tmp/consumer-build.log" 2>&1 || { cat "$tmp/consumer-build.log"; exit 1; }
"$tmp/consumer/consumer_shared" "$model"
"$tmp/consumer/consumer_static" "$model"
if ldd "$tmp/consumer/consumer_static" | grep -q libvkllm; then echo "FAIL: vkllm::vkllm_static links libvkllm.so"; exit 1; fi
"$tmp/consumer/generate" "$model" "Hello" 2> "$tmp/gen.err" || { cat "$tmp/gen.err"; exit 1; }
if grep -q "validation error" "$tmp/gen.err"; then cat "$tmp/gen.err"; echo "FAIL: validation errors"; exit 1; fi
echo "test_install: ok"
