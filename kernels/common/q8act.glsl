// 8-bit activations: the prologue P (none / RMSNorm / SwiGLU) and the per-32 quantization Q8 that
// matvec_q8.comp (in its per-workgroup prologue) and quant_q8.comp (once, into a global buffer) share,
// so the two paths give the same codes. Q8 is vkllm_ref_quantize_q8_act (host/ref/matvec_q8.c):
// amax = max|x'| over the block, d = amax / 127, id = 1 / d (0 when amax == 0),
// q = round-half-away-from-zero(x' * id) clamped to [-127, 127], all in float32.
// A block's 32 elements are 8 consecutive lanes of one subgroup holding 4 elements each (lane k of the
// block has elements 4k..4k+3): the callers keep those 8 lanes together and active.
#ifndef VKLLM_Q8ACT_GLSL
#define VKLLM_Q8ACT_GLSL
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require

// round half away from zero, as C's roundf (GLSL round() leaves .5 to the implementation)
float rnd(float v)
{
    const float t = trunc(v);
    return abs(v - t) >= 0.5 ? t + sign(v) : t;
}

// P: RMSNorm's scale from the sum of squares of the whole vector (n elements)
float q8_rms_scale(float ss, uint n, float eps) { return inversesqrt(ss / float(n) + eps); }
vec4 q8_rms(vec4 x, float scale, vec4 g) { return x * scale * g; }
// P: SwiGLU silu(gate) * up
vec4 q8_swiglu(vec4 a, vec4 u) { return a / (1.0 + exp(-a)) * u; }

// Q8 of this lane's 4 elements a: word = the 4 codes as bytes (element 4k in the low byte),
// d = the block's scale, s = sum of q over this lane's 16-element half of the block, so = over the other half
struct q8_quad { uint word; float d; int s, so; };
q8_quad q8_quant4(vec4 a)
{
    float amax = max(max(abs(a.x), abs(a.y)), max(abs(a.z), abs(a.w)));
    amax = max(amax, subgroupShuffleXor(amax, 1u));
    amax = max(amax, subgroupShuffleXor(amax, 2u));
    amax = max(amax, subgroupShuffleXor(amax, 4u));
    q8_quad r;
    r.d = amax / 127.0;
    const float id = amax != 0.0 ? 1.0 / r.d : 0.0;
    const vec4 qf = clamp(vec4(rnd(a.x * id), rnd(a.y * id), rnd(a.z * id), rnd(a.w * id)), -127.0, 127.0);
    const ivec4 q = ivec4(qf);
    int s = (q.x + q.y) + (q.z + q.w);
    s += subgroupShuffleXor(s, 1u);
    s += subgroupShuffleXor(s, 2u);
    r.s = s;
    r.so = subgroupShuffleXor(s, 4u);
    r.word = uint(q.x & 255) | (uint(q.y & 255) << 8) | (uint(q.z & 255) << 16) | (uint(q.w & 255) << 24);
    return r;
}
// the per-block data for lane 0 of the block (its s is the low half's): (d, d * sum(q)) and the two
// 16-element sums of q as int16 (low half in the low 16 bits; Q6_K's offsets need them)
vec2 q8_ds(q8_quad r) { return vec2(r.d, r.d * float(r.s + r.so)); }
int q8_h(q8_quad r) { return (r.s & 0xffff) | (r.so << 16); }
#endif
