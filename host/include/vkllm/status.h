/* vkllm status codes: one enum for the whole project, numbered in ranges by area.
 *
 * Every function that can fail returns a vkllm_status (0 = VKLLM_OK) and leaves a human message
 * (what failed, with which value, what to do) on the object it was called on, or in a caller-given
 * buffer where no object exists yet. vkllm_strerror() names the code; the message says the details. */
#ifndef VKLLM_STATUS_H
#define VKLLM_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vkllm_status {
    VKLLM_OK = 0,

    /* 1000: general */
    VKLLM_ERROR_INTERNAL = 1000,      /* a bug in vkllm: please report it */
    VKLLM_ERROR_INVALID_ARGUMENT = 1001,
    VKLLM_ERROR_IO = 1002,            /* open/read/write/mmap of a file failed */
    VKLLM_ERROR_CANCELLED = 1003,
    VKLLM_ERROR_OUT_OF_RANGE = 1004,  /* e.g. context full */

    /* 2000: bad input data (files, fixtures, handles) */
    VKLLM_ERROR_BAD_FILE = 2000,      /* malformed or hostile file */
    VKLLM_ERROR_BAD_MODEL = 2001,     /* well-formed file that is not a model we can run */
    VKLLM_ERROR_BAD_HANDLE = 2002,
    VKLLM_ERROR_MISMATCH = 2003,      /* results disagree with the reference */

    /* 3000: configuration */
    VKLLM_ERROR_CONFIG = 3000,        /* bad option, environment variable or flag value */
    VKLLM_ERROR_NO_DEVICE = 3001,     /* no Vulkan device, or none matching VKLLM_DEVICE */

    /* 4000: unsupported */
    VKLLM_ERROR_UNSUPPORTED = 4000,   /* the device or build lacks a needed feature */
    VKLLM_ERROR_UNSUPPORTED_TYPE = 4001,

    /* 5000: allocation */
    VKLLM_ERROR_OUT_OF_HOST_MEMORY = 5000,
    VKLLM_ERROR_OUT_OF_DEVICE_MEMORY = 5001,
    VKLLM_ERROR_TOO_LARGE = 5002,     /* a size exceeds a device or format limit */

    /* 6000: Vulkan */
    VKLLM_ERROR_VULKAN = 6000,        /* a Vulkan call failed; the message names it */
    VKLLM_ERROR_DEVICE_LOST = 6001,
    VKLLM_ERROR_VALIDATION = 6002,    /* the validation layer reported errors */
    VKLLM_ERROR_TIMEOUT = 6003
} vkllm_status;

/* Short, static, never-NULL name and one-line meaning of a status code. */
const char *vkllm_strerror(vkllm_status s);

#ifdef __cplusplus
}
#endif
#endif
