/* Kernel operations of the attn family (see ops.h for the pattern). */
#ifndef VKLLM_OPS_ATTN_H
#define VKLLM_OPS_ATTN_H
#include "vkllm/ops.h"
#endif
