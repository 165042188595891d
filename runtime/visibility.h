/* Force-included (-include) into every source file of libvkllm (cmake/Library.cmake), which is
 * compiled with -fvisibility=hidden: the declarations of the public API, read here first under
 * default visibility, make exactly those functions exported; everything else stays internal to the
 * library (internal helpers such as vkllm_fail, the kernels' SPIR-V arrays, host/ref and fixture code). */
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC visibility push(default)
#endif
#include "vkllm/vkllm.h"
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC visibility pop
#endif
