/* Kernel operations of the gemm family (see ops.h for the pattern). */
#ifndef VKLLM_OPS_GEMM_H
#define VKLLM_OPS_GEMM_H
#include "vkllm/ops.h"
#endif
