/* Token sampling on the host from a candidate list (the GPU's top-k, or the full logits):
 * repetition penalty, temperature, top-k, top-p, min-p, then a draw from a seeded generator, so the
 * same seed gives the same tokens every run. Greedy (temperature 0) is the argmax. */
#ifndef VKLLM_SAMPLER_H
#define VKLLM_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "vkllm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vkllm_sampler_params {
    float temperature;        /* 0 = greedy */
    uint32_t top_k;           /* 0 = no limit */
    float top_p;              /* 1 = off */
    float min_p;              /* 0 = off; keeps tokens with p >= min_p * p_max */
    float repeat_penalty;     /* 1 = off; logits of recent tokens: divided if > 0, multiplied if < 0 */
    uint32_t repeat_last_n;   /* how many recent tokens the penalty looks at */
    uint64_t seed;
} vkllm_sampler_params;

/* Defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no repetition penalty, seed 0. */
vkllm_sampler_params vkllm_sampler_defaults(void);
/* Checks ranges (temperature >= 0 and finite, top_p in (0, 1], min_p in [0, 1], repeat_penalty > 0);
 * writes the reason into err. */
vkllm_status vkllm_sampler_check(const vkllm_sampler_params *p, char *err, size_t err_len);

typedef struct vkllm_candidate {
    float logit;
    int32_t id;
} vkllm_candidate;

typedef struct vkllm_sampler vkllm_sampler;

/* A sampler with params p (checked as vkllm_sampler_check does: VKLLM_ERROR_INVALID_ARGUMENT) and its own
 * generator seeded from p->seed; VKLLM_ERROR_OUT_OF_HOST_MEMORY. Free with vkllm_sampler_destroy.
 * One thread at a time per sampler. */
vkllm_status vkllm_sampler_create(const vkllm_sampler_params *p, vkllm_sampler **out);
void vkllm_sampler_destroy(vkllm_sampler *s); /* accepts NULL */
/* Remembers a token (prompt or generated) for the repetition penalty. */
void vkllm_sampler_accept(vkllm_sampler *s, int32_t id);
void vkllm_sampler_reset(vkllm_sampler *s);
/* 1 if sampling needs the full logits (the repetition penalty can move any token), 0 if the top
 * vkllm_sampler_top_k() candidates are enough. */
int vkllm_sampler_needs_full_logits(const vkllm_sampler *s);
/* How many top candidates are enough when full logits are not needed (>= 1). */
uint32_t vkllm_sampler_top_k(const vkllm_sampler *s);
/* Picks a token from n candidates (any order; modified in place). Non-finite logits never win;
 * if every logit is non-finite the result is the first candidate's id and the status says so. */
vkllm_status vkllm_sampler_sample(vkllm_sampler *s, vkllm_candidate *cand, size_t n, int32_t *out);

#ifdef __cplusplus
}
#endif
#endif
