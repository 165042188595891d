/* Kernel operations of the matvec family (see ops.h for the pattern). */
#ifndef VKLLM_OPS_MATVEC_H
#define VKLLM_OPS_MATVEC_H
#include "vkllm/ops.h"
#endif
