/* Kernel operations of the misc family (see ops.h for the pattern). */
#ifndef VKLLM_OPS_MISC_H
#define VKLLM_OPS_MISC_H
#include "vkllm/ops.h"
#endif
