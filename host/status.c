#include "vkllm/status.h"

const char *vkllm_strerror(vkllm_status s)
{
    switch (s) {
    case VKLLM_OK: return "ok";
    case VKLLM_ERROR_INTERNAL: return "internal error (a bug in vkllm)";
    case VKLLM_ERROR_INVALID_ARGUMENT: return "invalid argument";
    case VKLLM_ERROR_IO: return "input/output error";
    case VKLLM_ERROR_CANCELLED: return "cancelled";
    case VKLLM_ERROR_OUT_OF_RANGE: return "out of range";
    case VKLLM_ERROR_BAD_FILE: return "malformed file";
    case VKLLM_ERROR_BAD_MODEL: return "unsupported or inconsistent model";
    case VKLLM_ERROR_BAD_HANDLE: return "bad handle";
    case VKLLM_ERROR_MISMATCH: return "result differs from the reference";
    case VKLLM_ERROR_CONFIG: return "bad configuration";
    case VKLLM_ERROR_NO_DEVICE: return "no suitable Vulkan device";
    case VKLLM_ERROR_UNSUPPORTED: return "unsupported by this device or build";
    case VKLLM_ERROR_UNSUPPORTED_TYPE: return "unsupported data type";
    case VKLLM_ERROR_OUT_OF_HOST_MEMORY: return "out of host memory";
    case VKLLM_ERROR_OUT_OF_DEVICE_MEMORY: return "out of device memory";
    case VKLLM_ERROR_TOO_LARGE: return "size exceeds a limit";
    case VKLLM_ERROR_VULKAN: return "Vulkan call failed";
    case VKLLM_ERROR_DEVICE_LOST: return "Vulkan device lost";
    case VKLLM_ERROR_VALIDATION: return "Vulkan validation errors";
    case VKLLM_ERROR_TIMEOUT: return "timed out";
    }
    return "unknown status code";
}
