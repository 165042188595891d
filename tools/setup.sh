#!/usr/bin/env bash
# Installs what vkllm needs to build, test and fuzz on a fresh Debian 12 (bookworm) machine.
# Idempotent: a second run only checks. See docs/DEVELOPERS.md.
# shellcheck disable=SC2016  # ${Package} etc. are dpkg format fields, not shell expansions
set -Eeuo pipefail

PREFIX=/opt/vkllm-toolchain           # private glslang/SPIRV-Tools >= 15 (CMake looks here first)
# Debian packages, each with a path that shows where it landed (printed in the summary).
PKGS=(
  gcc=/usr/bin/gcc  clang=/usr/bin/clang  cmake=/usr/bin/cmake  make=/usr/bin/make
  # clang-14 only *recommends* the libFuzzer/ASan/UBSan runtimes; with --no-install-recommends
  # -fsanitize=fuzzer fails to link without this package.
  libclang-rt-14-dev=/usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a
  pkg-config=/usr/bin/pkg-config  libvulkan-dev=/usr/include/vulkan
  mesa-vulkan-drivers=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json      # lavapipe: CPU Vulkan for tests
  vulkan-validationlayers=/usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json
  vulkan-tools=/usr/bin/vulkaninfo  spirv-tools=/usr/bin/spirv-val  glslang-tools=/usr/bin/glslangValidator
  libcmocka-dev=/usr/include/cmocka.h  libhdf5-dev=/usr/include/hdf5/serial  hdf5-tools=/usr/bin/h5dump
  libpcre2-dev=/usr/include/pcre2.h  python3=/usr/bin/python3
)
# From Debian 13 (trixie), unpacked privately: its glslang-tools and spirv-tools are linked statically
# against libglslang/libSPIRV-Tools and need only trixie's libc6, libstdc++6 and libgcc-s1.
TRIXIE_PKGS=(glslang-tools spirv-tools libc6 libstdc++6 libgcc-s1)
WRAPPED=(glslangValidator glslang spirv-val spirv-opt spirv-dis spirv-as spirv-link)

usage() { cat <<EOF
Usage: tools/setup.sh [--check | --help]
Installs (as root, or through sudo) the Debian packages vkllm needs, and glslang/SPIRV-Tools >= 15
from Debian 13 into the private prefix $PREFIX (the system's libc and packages are not touched).
  --check   only report; exit 1 if something is missing
Environment: VKLLM_DEBIAN_MIRROR=<URI> overrides the mirror taken from the apt sources.
EOF
}
say() { printf 'setup.sh: %s\n' "$*"; }
die() { printf 'setup.sh: ERROR: %s\n' "$*" >&2; exit 1; }
trap 'printf "setup.sh: ERROR: command failed (exit %s, line %s): %s\n" "$?" "$LINENO" "$BASH_COMMAND" >&2' ERR

CHECK=0
[ $# -le 1 ] || { usage >&2; exit 2; }
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  --check) CHECK=1 ;;
  "") ;;
  *) usage >&2; exit 2 ;;
esac
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
command -v dpkg-query >/dev/null || die "dpkg-query not found: this script is for Debian 12 (bookworm)"
if [ "$CHECK" = 0 ] && [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "installing needs root and sudo is not available: run this script as root"
  say "not root: re-running through sudo"
  exec sudo ${CI:+-n} -- bash "$(readlink -f "${BASH_SOURCE[0]}")" "$@"
fi

TMP="" STAGE="" UPDATED=""
cleanup() { rm -rf "$TMP" "$STAGE"; }   # temporary apt dirs and a half-built prefix
trap cleanup EXIT

installed() { dpkg-query -W -f='${db:Status-Status}\n' "$1" 2>/dev/null | grep -qx installed; }
missing_pkgs() { local e; for e in "${PKGS[@]}"; do installed "${e%%=*}" || echo "${e%%=*}"; done; }

# The build takes glslangValidator/spirv-val from $PREFIX/bin first, then PATH; so does this check.
pick() { if [ -x "$PREFIX/bin/$1" ]; then echo "$PREFIX/bin/$1"; else command -v "$1" || true; fi; }
glslang_version() { { "$1" --version 2>/dev/null || true; } | sed -n 's/.*glslang Khronos\. \([0-9.]*\).*/\1/p' | sed -n 1p; }
glslang_major() { local v; v=$(glslang_version "$1"); echo "${v%%.*}"; }

# The kernels need both cooperative-matrix extensions; compile one shader with each and validate it.
shaders_ok() {  # $1 = glslangValidator, $2 = spirv-val
  local d rc=0; d=$(mktemp -d)
  local ext='#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require'
  local decl='layout(local_size_x = 32) in; layout(binding = 0) readonly buffer A { float16_t a[]; };
layout(binding = 1) buffer C { float c[]; };'
  cat >"$d/khr.comp" <<EOF
#version 450
$ext
$decl
#define ACC coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>
void main() {
  coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> ma;
  coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> mb;
  coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> mc = ACC(0.0);
  coopMatLoad(ma, a, 0, 16, gl_CooperativeMatrixLayoutRowMajor);
  coopMatLoad(mb, a, 256, 16, gl_CooperativeMatrixLayoutRowMajor);
  mc = coopMatMulAdd(ma, mb, mc);
  coopMatStore(mc, c, 0, 16, gl_CooperativeMatrixLayoutRowMajor);
}
EOF
  cat >"$d/nv2.comp" <<EOF
#version 450
$ext
#extension GL_NV_cooperative_matrix2 : require
$decl
void main() {
  tensorLayoutNV<2> t = setTensorLayoutDimensionNV(createTensorLayoutNV(2), 64, 64);
  coopmat<float16_t, gl_ScopeWorkgroup, 16, 16, gl_MatrixUseAccumulator> m;
  coopMatLoadTensorNV(m, a, 0, sliceTensorLayoutNV(t, 16, 16, 0, 16));
  coopMatStoreTensorNV(coopmat<float, gl_ScopeWorkgroup, 16, 16, gl_MatrixUseAccumulator>(m), c, 0,
                       sliceTensorLayoutNV(t, 0, 16, 0, 16));
}
EOF
  for s in khr nv2; do
    { "$1" -V --target-env vulkan1.3 "$d/$s.comp" -o "$d/$s.spv" && "$2" --target-env vulkan1.3 "$d/$s.spv"; } \
      >"$d/log" 2>&1 || { rc=1; echo "  $s.comp:" >&2; grep -i -m 4 error "$d/log" | sed 's/^/    | /' >&2; }
  done
  rm -rf "$d"; return $rc
}
glslang_ok() {  # glslang >= 15 and a spirv-val that accepts its output
  local g v; g=$(pick glslangValidator); v=$(pick spirv-val)
  [ -n "$g" ] && [ -n "$v" ] && [ "$(glslang_major "$g")" -ge 15 ] 2>/dev/null && shaders_ok "$g" "$v"
}
fuzz_ok() {  # clang can build and run a libFuzzer target with ASan+UBSan
  local d rc=0; d=$(mktemp -d)
  printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
    'int LLVMFuzzerTestOneInput(const uint8_t *p, size_t n) { return (n && p[0] == 1) ? 0 : 0; }' >"$d/f.c"
  { clang -fsanitize=fuzzer,address,undefined "$d/f.c" -o "$d/f" && "$d/f" -runs=16; } >"$d/log" 2>&1 \
    || { rc=1; sed 's/^/    | /' "$d/log" | tail -n 6 >&2; }
  rm -rf "$d"; return $rc
}

# First Debian (not -security) URI in the system's apt sources: sources.list, then sources.list.d
# (one-line "deb [opts] URI suite ..." and deb822 "URIs:" formats).
debian_mirror() {
  [ -z "${VKLLM_DEBIAN_MIRROR:-}" ] || { echo "$VKLLM_DEBIAN_MIRROR"; return; }
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    case "$f" in
      *.sources) sed -n 's/^[[:space:]]*URIs:[[:space:]]*//p' "$f" | tr -s '[:space:]' '\n' ;;
      *) sed -n 's/^[[:space:]]*deb[[:space:]]\+\(\[[^]]*\][[:space:]]*\)\?\([^[:space:]]\+\).*/\2/p' "$f" ;;
    esac
  done | grep -E '^(https?|ftp)://[^[:space:]]+/debian/?$' | sed -n 1p || true
}

install_private_glslang() {
  [ "$(dpkg --print-architecture)" = amd64 ] || die "the private glslang prefix is only set up for amd64"
  local mirror; mirror=$(debian_mirror)
  [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list{,.d}; set VKLLM_DEBIAN_MIRROR"
  TMP=$(mktemp -d /tmp/vkllm-setup.XXXXXX)
  mkdir -p "$TMP/lists/partial" "$TMP/archives/partial" "$TMP/cache" "$TMP/debs" "$TMP/keyring"
  chmod 755 "$TMP"; ! id _apt >/dev/null 2>&1 || chown -R _apt:root "$TMP"  # apt downloads as _apt
  # bookworm's debian-archive-keyring >= 2023.3+deb12u2 holds the trixie signing keys. With an older one
  # the system package is left alone: its current bookworm version (verified by apt) is used privately.
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  if [ ! -e /usr/share/keyrings/debian-archive-trixie-stable.gpg ]; then
    say "system keyring lacks the Debian 13 keys: using bookworm's current debian-archive-keyring privately"
    [ -n "$UPDATED" ] || { apt-get update -q </dev/null; UPDATED=1; }
    cd "$TMP/keyring"; apt-get download -q debian-archive-keyring </dev/null; cd /
    dpkg -x "$TMP"/keyring/debian-archive-keyring_*.deb "$TMP/keyring"
    keyring="$TMP/keyring/usr/share/keyrings/debian-archive-keyring.gpg"
  fi
  echo "deb [signed-by=$keyring] $mirror trixie main" >"$TMP/sources.list"
  local o=(-q -o Dir::Etc::SourceList="$TMP/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o Dir::State::Lists="$TMP/lists" -o Dir::Cache="$TMP/cache" -o Dir::Cache::Archives="$TMP/archives"
    -o Dir::State::status=/dev/null -o APT::Architectures=amd64 -o Acquire::Languages=none)
  say "fetching Debian 13 packages into $PREFIX: ${TRIXIE_PKGS[*]}"
  # --error-on=any: a failed fetch or a bad signature must stop here, not surface as "Unable to locate".
  apt-get "${o[@]}" --error-on=any update </dev/null >"$TMP/update.log" 2>&1 \
    || { sed 's/^/    | /' "$TMP/update.log" >&2; die "apt-get update for trixie ($mirror) failed"; }
  cd "$TMP/debs"; apt-get "${o[@]}" download "${TRIXIE_PKGS[@]}" </dev/null >/dev/null; cd /
  # Build next to the final place, then swap it in: an interrupted run never leaves a broken prefix.
  mkdir -p "$(dirname "$PREFIX")"; STAGE="$PREFIX.new"; rm -rf "$STAGE"; mkdir -p "$STAGE/bin"
  local f b
  for f in "$TMP"/debs/*.deb; do
    dpkg -x "$f" "$STAGE"; dpkg-deb -W --showformat='${Package} ${Version}\n' "$f" >>"$STAGE/PACKAGES"
  done
  for b in "${WRAPPED[@]}"; do  # trixie's own loader + libs, so the system libc is never replaced
    cat >"$STAGE/bin/$b" <<EOF
#!/bin/sh
# Written by vkllm tools/setup.sh: runs Debian 13's $b with Debian 13's loader and libraries.
P=\$(dirname "\$(dirname "\$(readlink -f "\$0")")")
L="\$P/usr/lib/x86_64-linux-gnu"
exec "\$L/ld-linux-x86-64.so.2" --library-path "\$L" "\$P/usr/bin/$b" "\$@"
EOF
    chmod 755 "$STAGE/bin/$b"
    "$STAGE/bin/$b" --version >/dev/null 2>&1 || die "$STAGE/bin/$b does not start"
  done
  [ "$(glslang_major "$STAGE/bin/glslangValidator")" -ge 15 ] 2>/dev/null || die "trixie glslang is not >= 15"
  shaders_ok "$STAGE/bin/glslangValidator" "$STAGE/bin/spirv-val" || die "trixie glslang fails the shader checks"
  rm -rf "$PREFIX.old"; [ ! -e "$PREFIX" ] || mv "$PREFIX" "$PREFIX.old"
  mv "$STAGE" "$PREFIX"; STAGE=""; rm -rf "$PREFIX.old"
}

summary() {
  local e p w g v
  for e in "${PKGS[@]}"; do
    p=${e%%=*}; w=$(compgen -G "${e#*=}" | sed -n 1p || true)
    printf '  %-24s %-30s %s\n' "$p" "$(dpkg-query -W -f='${Version}\n' "$p" 2>/dev/null | sed -n 1p || echo MISSING)" "${w:-?}"
  done
  g=$(pick glslangValidator); v=$(pick spirv-val)
  printf '  %-24s %-30s %s\n' glslangValidator "$(glslang_version "$g")" "${g:-MISSING}" \
    spirv-val "$({ "$v" --version 2>/dev/null || true; } | sed -n 1p | cut -d' ' -f2)" "${v:-MISSING}"
  [ ! -r "$PREFIX/PACKAGES" ] || printf '  %-24s %s\n' "(trixie in $PREFIX)" "$(paste -sd, "$PREFIX/PACKAGES" | sed 's/,/, /g')"
}

mapfile -t MISSING < <(missing_pkgs)
if [ "$CHECK" = 1 ]; then
  bad=0
  [ ${#MISSING[@]} = 0 ] || { say "missing packages: ${MISSING[*]}"; bad=1; }
  if installed clang && ! fuzz_ok; then say "clang cannot build a -fsanitize=fuzzer,address,undefined target"; bad=1; fi
  glslang_ok || { say "no glslangValidator >= 15 (+ spirv-val) that compiles the cooperative-matrix shaders"; bad=1; }
  summary
  if [ $bad = 0 ]; then say "all present"; else say "something is missing: run tools/setup.sh"; fi
  exit $bad
fi

if [ ${#MISSING[@]} -gt 0 ]; then
  say "installing: ${MISSING[*]}"
  apt-get update -q </dev/null; UPDATED=1
  apt-get install -y -q --no-install-recommends "${MISSING[@]}" </dev/null
fi
fuzz_ok || die "clang cannot build a -fsanitize=fuzzer,address,undefined target (see above)"
if ! glslang_ok 2>/dev/null; then
  install_private_glslang
  glslang_ok || die "the private glslang in $PREFIX fails the cooperative-matrix shader checks (see above)"
fi
summary
say "done"
