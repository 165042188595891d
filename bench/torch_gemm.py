#!/usr/bin/env python3
"""fp16 torch.matmul at the shapes of bench-gemm, on the GPU host: the baseline for the ratio
TFLOP/s(vkllm gemm) / TFLOP/s(torch).

X[M, K] @ W[K, N] in float16 (cuBLAS, fp32 accumulation by default), timed with CUDA events:
5 warm-up calls, then 20 timed calls, the median reported. One line per shape:
  torch_fp16 M=512 K=5120 N=7680 ms=0.123 TFLOP/s=456.7
TFLOP/s = 2*M*N*K / time. Usage: python3 bench/torch_gemm.py [--m 16,512,2048]
"""
import argparse
import statistics

import torch

SHAPES = [(5120, 7680), (5120, 5120), (5120, 35840), (17920, 5120), (5120, 100352)]  # Phi-4 (K, N)


def time_matmul(m, k, n, reps=20, warmup=5):
    x = torch.randn(m, k, device="cuda", dtype=torch.float16)
    w = torch.randn(k, n, device="cuda", dtype=torch.float16) * 0.05
    out = torch.empty(m, n, device="cuda", dtype=torch.float16)
    for _ in range(warmup):
        torch.matmul(x, w, out=out)
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.matmul(x, w, out=out)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))  # ms
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--m", default="16,512,2048", help="comma-separated token counts")
    args = ap.parse_args()
    print(f"# {torch.cuda.get_device_name(0)}, torch {torch.__version__}, fp16 matmul, median of 20")
    for m in [int(v) for v in args.m.split(",")]:
        for k, n in SHAPES:
            ms = time_matmul(m, k, n)
            print(f"torch_fp16 M={m} K={k} N={n} ms={ms:.4f} TFLOP/s={2.0 * m * n * k / (ms * 1e-3) / 1e12:.1f}", flush=True)


if __name__ == "__main__":
    main()
