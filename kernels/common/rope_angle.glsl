// RoPE angle of position ps for one pair, shared by rope.comp, kv_write.comp and the QKV mat-vec's
// fused epilogue (matvec_q8.comp, ROPE = 1), so the three rotate by the same cos/sin.
// f: the pair's inverse frequency as a (hi, lo) float pair from vkllm_rope_table (hi + lo is the
// double value). FP64 = 1: the angle ps * (hi + lo) is formed and reduced mod 2*pi in double, so a
// position of 10^5 still gives float32-accurate cos/sin; FP64 = 0 (devices without shaderFloat64):
// formed in float from hi alone.
// Returns (cos(theta), sin(theta)).
#ifndef FP64
#define FP64 1
#endif
vec2 rope_cs(int ps, vec2 f)
{
#if FP64
    const double TWO_PI = 6.283185307179586476925286766559LF;
    double th = double(ps) * (double(f.x) + double(f.y));
    th -= TWO_PI * floor(th / TWO_PI + 0.5LF);
    const float theta = float(th);
#else
    const float theta = float(ps) * f.x;
#endif
    return vec2(cos(theta), sin(theta));
}
