# Compiling kernels/**/*.comp to SPIR-V at build time and embedding it in the library.
#
#   vkllm_add_kernel(<name> SOURCE <file.comp> [DEFINES A=1 B] [REQUIRES coopmat|coopmat2|intdot|bf16])
#       One SPIR-V module named <name> (symbol kern_<name>) from <file.comp> with -D defines.
#       Kernels whose REQUIRES feature the found glslang cannot compile are skipped, and the
#       registry records why, so the runtime can say it instead of failing obscurely.
#   vkllm_finish_kernels(<target>)
#       Creates the static library <target> with every kernel and the name -> SPIR-V registry.
#
# glslangValidator writes a depfile (-MD style), so editing an included .glsl rebuilds every kernel
# that includes it; spirv-val checks every module before it is embedded.
include_guard()

find_program(VKLLM_GLSLANG NAMES glslangValidator HINTS /opt/vkllm-toolchain/bin NO_DEFAULT_PATH)
find_program(VKLLM_GLSLANG NAMES glslangValidator)
find_program(VKLLM_SPIRV_VAL NAMES spirv-val HINTS /opt/vkllm-toolchain/bin NO_DEFAULT_PATH)
find_program(VKLLM_SPIRV_VAL NAMES spirv-val)
if(NOT VKLLM_GLSLANG)
  message(FATAL_ERROR "glslangValidator not found: run tools/setup.sh (or set -DVKLLM_GLSLANG=/path)")
endif()
if(NOT VKLLM_SPIRV_VAL)
  message(FATAL_ERROR "spirv-val not found: run tools/setup.sh (or set -DVKLLM_SPIRV_VAL=/path)")
endif()
execute_process(COMMAND ${VKLLM_GLSLANG} --version OUTPUT_VARIABLE _gv ERROR_QUIET)
string(REGEX MATCH "Glslang Version: [0-9]+:([0-9.]+)" _m "${_gv}")
set(VKLLM_GLSLANG_VERSION "${CMAKE_MATCH_1}")
message(STATUS "vkllm: glslang ${VKLLM_GLSLANG_VERSION} at ${VKLLM_GLSLANG}")

set(VKLLM_SPIRV_DIR ${CMAKE_BINARY_DIR}/spirv)
set(VKLLM_PROBE_DIR ${CMAKE_BINARY_DIR}/spirv-probes)
file(MAKE_DIRECTORY ${VKLLM_SPIRV_DIR} ${VKLLM_PROBE_DIR})

# Configure-time probes: can this glslang compile (and spirv-val accept) each optional feature?
function(_vkllm_probe feature body)
  set(src ${VKLLM_PROBE_DIR}/${feature}.comp)
  file(WRITE ${src} "${body}")
  execute_process(COMMAND ${VKLLM_GLSLANG} --target-env vulkan1.3 -V ${src} -o ${VKLLM_PROBE_DIR}/${feature}.spv
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc EQUAL 0)
    execute_process(COMMAND ${VKLLM_SPIRV_VAL} --target-env vulkan1.3 ${VKLLM_PROBE_DIR}/${feature}.spv
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  endif()
  if(rc EQUAL 0)
    set(VKLLM_GLSL_HAS_${feature} ON PARENT_SCOPE)
  else()
    set(VKLLM_GLSL_HAS_${feature} OFF PARENT_SCOPE)
  endif()
endfunction()

_vkllm_probe(coopmat [=[
#version 450
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
layout(local_size_x = 32) in;
layout(binding = 0) buffer B { float16_t a[]; };
layout(binding = 1) buffer C { float c[]; };
void main() {
  coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> ma;
  coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> mb;
  coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> mc = coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(0.0);
  coopMatLoad(ma, a, 0, 16, gl_CooperativeMatrixLayoutRowMajor);
  coopMatLoad(mb, a, 256, 16, gl_CooperativeMatrixLayoutRowMajor);
  mc = coopMatMulAdd(ma, mb, mc);
  coopMatStore(mc, c, 0, 16, gl_CooperativeMatrixLayoutRowMajor);
}
]=])
_vkllm_probe(coopmat2 [=[
#version 450
#extension GL_KHR_cooperative_matrix : require
#extension GL_NV_cooperative_matrix2 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
layout(local_size_x = 128) in;
layout(binding = 0) buffer B { float16_t a[]; };
void main() {
  tensorLayoutNV<2> t = createTensorLayoutNV(2);
  t = setTensorLayoutDimensionNV(t, 64, 64);
  coopmat<float16_t, gl_ScopeWorkgroup, 64, 64, gl_MatrixUseA> ma;
  coopMatLoadTensorNV(ma, a, 0, sliceTensorLayoutNV(t, 0, 64, 0, 64));
  coopMatStoreTensorNV(ma, a, 0, sliceTensorLayoutNV(t, 0, 64, 0, 64));
}
]=])
_vkllm_probe(intdot [=[
#version 450
#extension GL_EXT_integer_dot_product : require
layout(local_size_x = 32) in;
layout(binding = 0) buffer B { int a[]; };
void main() { a[gl_GlobalInvocationID.x] = dotPacked4x8AccSatEXT(a[0], a[1], a[2]); }
]=])
_vkllm_probe(bf16 [=[
#version 450
#extension GL_EXT_bfloat16 : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
layout(local_size_x = 32) in;
layout(binding = 0) buffer B { bfloat16_t a[]; };
layout(binding = 1) buffer C { float c[]; };
void main() { c[gl_GlobalInvocationID.x] = float(a[gl_GlobalInvocationID.x]); }
]=])
foreach(f coopmat coopmat2 intdot bf16)
  if(VKLLM_GLSL_HAS_${f})
    list(APPEND _yes ${f})
  else()
    list(APPEND _no ${f})
  endif()
endforeach()
message(STATUS "vkllm: glslang can compile: ${_yes}")
if(_no)
  message(STATUS "vkllm: glslang cannot compile: ${_no} (those kernel families are not built; run tools/setup.sh for glslang >= 15)")
endif()

set_property(GLOBAL PROPERTY VKLLM_KERNELS "")
set_property(GLOBAL PROPERTY VKLLM_KERNELS_SKIPPED "")

function(vkllm_add_kernel name)
  cmake_parse_arguments(K "" "SOURCE;REQUIRES" "DEFINES" ${ARGN})
  if(NOT K_SOURCE)
    message(FATAL_ERROR "vkllm_add_kernel(${name}): SOURCE is required")
  endif()
  if(K_REQUIRES AND NOT VKLLM_GLSL_HAS_${K_REQUIRES})
    set_property(GLOBAL APPEND PROPERTY VKLLM_KERNELS_SKIPPED "${name}:${K_REQUIRES}")
    return()
  endif()
  get_filename_component(src ${K_SOURCE} ABSOLUTE)
  set(spv ${VKLLM_SPIRV_DIR}/${name}.spv)
  set(dep ${VKLLM_SPIRV_DIR}/${name}.d)
  set(csrc ${VKLLM_SPIRV_DIR}/kern_${name}.c)
  set(defs "")
  foreach(d ${K_DEFINES})
    list(APPEND defs "-D${d}")
  endforeach()
  add_custom_command(
    OUTPUT ${spv}
    COMMAND ${VKLLM_GLSLANG} --target-env vulkan1.3 -V --quiet -I${PROJECT_SOURCE_DIR}/kernels ${defs}
            ${src} -o ${spv} --depfile ${dep}
    COMMAND ${VKLLM_SPIRV_VAL} --target-env vulkan1.3 ${spv}
    DEPENDS ${src}
    DEPFILE ${dep}
    COMMENT "SPIR-V ${name} (${K_SOURCE} ${K_DEFINES})"
    VERBATIM)
  add_custom_command(
    OUTPUT ${csrc}
    COMMAND ${CMAKE_COMMAND} -DIN=${spv} -DOUT=${csrc} -DNAME=${name} -P ${PROJECT_SOURCE_DIR}/cmake/EmbedSpirv.cmake
    DEPENDS ${spv} ${PROJECT_SOURCE_DIR}/cmake/EmbedSpirv.cmake
    VERBATIM)
  set_property(GLOBAL APPEND PROPERTY VKLLM_KERNELS "${name}")
endfunction()

function(vkllm_finish_kernels target)
  get_property(kernels GLOBAL PROPERTY VKLLM_KERNELS)
  get_property(skipped GLOBAL PROPERTY VKLLM_KERNELS_SKIPPED)
  set(decls "")
  set(rows "")
  set(srcs "")
  foreach(k ${kernels})
    string(APPEND decls "extern const uint32_t kern_${k}[];\nextern const size_t kern_${k}_size;\n")
    string(APPEND rows "    { \"${k}\", kern_${k}, &kern_${k}_size },\n")
    list(APPEND srcs ${VKLLM_SPIRV_DIR}/kern_${k}.c)
  endforeach()
  set(skiprows "")
  foreach(s ${skipped})
    string(REPLACE ":" ";" parts "${s}")
    list(GET parts 0 kname)
    list(GET parts 1 kfeat)
    string(APPEND skiprows "    { \"${kname}\", \"${kfeat}\" },\n")
  endforeach()
  set(reg ${VKLLM_SPIRV_DIR}/kernel_registry.c)
  file(GENERATE OUTPUT ${reg} CONTENT
"/* Generated by cmake/Shaders.cmake: the embedded SPIR-V kernels of this build. */
#include <stddef.h>
#include <stdint.h>
#include \"kernel_registry.h\"
${decls}
const vkllm_kernel_blob vkllm_kernel_table[] = {
${rows}    { NULL, NULL, NULL }
};
const vkllm_kernel_skip vkllm_kernel_skipped[] = {
${skiprows}    { NULL, NULL }
};
const char vkllm_glslang_version[] = \"${VKLLM_GLSLANG_VERSION}\";
")
  add_library(${target} STATIC ${srcs} ${reg})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}/kernels/include)
  message(STATUS "vkllm: kernels built: ${kernels}")
  if(skipped)
    message(STATUS "vkllm: kernels skipped (glslang lacks the feature): ${skipped}")
  endif()
endfunction()
