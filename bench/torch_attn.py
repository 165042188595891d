#!/usr/bin/env python3
"""PyTorch baseline for bench-attn: torch.nn.functional.scaled_dot_product_attention in fp16 on the
GPU at the shapes bench/bench_attn.c uses (Phi-4: 40 query heads over 10 KV heads, head_dim 128).

  prefill T = 512, 2048, 8192 (causal, q = k = v length T): TFLOP/s = 4 * n_q * hd * T^2 / 2
  decode  ctx = 512, 4096, 16384 (one query row, no mask needed): GB/s of K and V read,
          2 * n_kv * ctx * hd * 2 bytes

GQA through enable_gqa=True where torch has it (2.5+), else K/V repeated to 40 heads before timing
(which then reads 4x the bytes: the line says so). Times are CUDA-event medians of 20 calls after
warm-up. One line per shape:  <kind> <shape> <ms> ms <TFLOP/s> TFLOP/s [<GB/s> GB/s]
Run on the GPU host: python3 bench/torch_attn.py"""
import inspect
import sys

import torch
import torch.nn.functional as F

NQ, NKV, HD = 40, 10, 128


def gqa_supported():
    try:
        return "enable_gqa" in inspect.signature(F.scaled_dot_product_attention).parameters
    except (TypeError, ValueError):
        return False


def time_ms(fn, reps=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def main():
    if not torch.cuda.is_available():
        print("torch_attn.py: no CUDA device", file=sys.stderr)
        return 1
    dev = torch.device("cuda")
    gqa = gqa_supported()
    print(f"# torch {torch.__version__}, {torch.cuda.get_device_name(0)}, GQA via "
          f"{'enable_gqa' if gqa else 'repeat_interleave (K/V read 4x)'}")
    scale = HD ** -0.5

    def kv(t):
        k = torch.randn(1, NKV, t, HD, device=dev, dtype=torch.float16)
        v = torch.randn(1, NKV, t, HD, device=dev, dtype=torch.float16)
        if not gqa:
            k, v = k.repeat_interleave(NQ // NKV, dim=1), v.repeat_interleave(NQ // NKV, dim=1)
        return k, v

    extra = {"enable_gqa": True} if gqa else {}
    for t in (512, 2048, 8192):
        q = torch.randn(1, NQ, t, HD, device=dev, dtype=torch.float16)
        k, v = kv(t)
        ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, **extra))
        flops = 4 * NQ * HD * t * t / 2
        print(f"prefill T={t} {ms:.4f} ms {flops / ms / 1e9:.2f} TFLOP/s")
    for ctx in (512, 4096, 16384):
        q = torch.randn(1, NQ, 1, HD, device=dev, dtype=torch.float16)
        k, v = kv(ctx)
        ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, scale=scale, **extra), reps=50)
        flops = 4 * NQ * HD * ctx
        bytes_ = 2 * NKV * ctx * HD * 2
        print(f"decode ctx={ctx} {ms:.4f} ms {flops / ms / 1e9:.3f} TFLOP/s {bytes_ / ms / 1e6:.1f} GB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
