#include "vkllm/sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY 4096u

struct vkllm_sampler {
    vkllm_sampler_params p;
    uint64_t rng;
    int32_t hist[HISTORY];
    uint32_t n_hist; /* total accepted; ring index = n % HISTORY */
};

vkllm_sampler_params vkllm_sampler_defaults(void)
{
    vkllm_sampler_params p = { 0.8f, 40, 0.95f, 0.05f, 1.0f, 64, 0 };
    return p;
}

vkllm_status vkllm_sampler_check(const vkllm_sampler_params *p, char *err, size_t err_len)
{
    const char *why = NULL;
    char buf[128];
    if (!(p->temperature >= 0 && isfinite(p->temperature))) why = "temperature must be a finite number >= 0";
    else if (!(p->top_p > 0 && p->top_p <= 1)) why = "top-p must be in (0, 1]";
    else if (!(p->min_p >= 0 && p->min_p <= 1)) why = "min-p must be in [0, 1]";
    else if (!(p->repeat_penalty > 0 && isfinite(p->repeat_penalty))) why = "repeat penalty must be a finite number > 0";
    else if (p->repeat_last_n > HISTORY) {
        snprintf(buf, sizeof buf, "repeat-last-n must be at most %u", HISTORY);
        why = buf;
    }
    if (!why) return VKLLM_OK;
    if (err && err_len) snprintf(err, err_len, "%s", why);
    return VKLLM_ERROR_INVALID_ARGUMENT;
}

vkllm_status vkllm_sampler_create(const vkllm_sampler_params *p, vkllm_sampler **out)
{
    *out = NULL;
    if (vkllm_sampler_check(p, NULL, 0)) return VKLLM_ERROR_INVALID_ARGUMENT;
    vkllm_sampler *s = calloc(1, sizeof *s);
    if (!s) return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    s->p = *p;
    vkllm_sampler_reset(s);
    *out = s;
    return VKLLM_OK;
}

void vkllm_sampler_destroy(vkllm_sampler *s) { free(s); }

void vkllm_sampler_reset(vkllm_sampler *s)
{
    s->n_hist = 0;
    s->rng = s->p.seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
}

void vkllm_sampler_accept(vkllm_sampler *s, int32_t id) { s->hist[s->n_hist++ % HISTORY] = id; }

int vkllm_sampler_needs_full_logits(const vkllm_sampler *s)
{
    return s->p.temperature > 0 && s->p.repeat_penalty != 1.0f && s->p.repeat_last_n > 0;
}

uint32_t vkllm_sampler_top_k(const vkllm_sampler *s)
{
    if (s->p.temperature <= 0) return 1;
    return s->p.top_k ? s->p.top_k : 0;
}

static double uniform01(vkllm_sampler *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* Descending by logit, ties by lower id: a total order, so results never depend on qsort. */
static int by_logit_desc(const void *a, const void *b)
{
    const vkllm_candidate *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

vkllm_status vkllm_sampler_sample(vkllm_sampler *s, vkllm_candidate *c, size_t n, int32_t *out)
{
    if (!s || !c || !n || !out) return VKLLM_ERROR_INVALID_ARGUMENT;
    /* non-finite logits never win */
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(c[i].logit)) c[m++] = c[i];
    if (m == 0) {
        *out = c[0].id;
        return VKLLM_ERROR_OUT_OF_RANGE;
    }
    n = m;
    if (s->p.temperature > 0 && s->p.repeat_penalty != 1.0f) {
        uint32_t last = s->p.repeat_last_n < s->n_hist ? s->p.repeat_last_n : s->n_hist;
        for (size_t i = 0; i < n; i++)
            for (uint32_t j = 0; j < last; j++)
                if (s->hist[(s->n_hist - 1 - j) % HISTORY] == c[i].id) {
                    c[i].logit = c[i].logit > 0 ? c[i].logit / s->p.repeat_penalty : c[i].logit * s->p.repeat_penalty;
                    break;
                }
    }
    if (s->p.temperature <= 0) {
        size_t best = 0;
        for (size_t i = 1; i < n; i++)
            if (c[i].logit > c[best].logit || (c[i].logit == c[best].logit && c[i].id < c[best].id)) best = i;
        *out = c[best].id;
        return VKLLM_OK;
    }
    qsort(c, n, sizeof *c, by_logit_desc);
    if (s->p.top_k && s->p.top_k < n) n = s->p.top_k;
    /* softmax at temperature, in double */
    double *p = malloc(n * sizeof *p);
    if (!p) return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    double sum = 0, t = s->p.temperature;
    for (size_t i = 0; i < n; i++) sum += p[i] = exp(((double)c[i].logit - c[0].logit) / t);
    for (size_t i = 0; i < n; i++) p[i] /= sum;
    /* min-p against the most likely, then top-p over what remains (both keep at least one) */
    size_t keep = n;
    if (s->p.min_p > 0)
        for (size_t i = 1; i < keep; i++)
            if (p[i] < s->p.min_p * p[0]) { keep = i; break; }
    if (s->p.top_p < 1) {
        double cum = 0;
        for (size_t i = 0; i < keep; i++) {
            cum += p[i];
            if (cum >= s->p.top_p) { keep = i + 1; break; }
        }
    }
    double total = 0;
    for (size_t i = 0; i < keep; i++) total += p[i];
    double r = uniform01(s) * total, acc = 0;
    size_t pick = keep - 1;
    for (size_t i = 0; i < keep; i++) {
        acc += p[i];
        if (r < acc) { pick = i; break; }
    }
    free(p);
    *out = c[pick].id;
    return VKLLM_OK;
}
