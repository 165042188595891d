#!/usr/bin/env python3
"""Assembles the outputs of bench/run_all.sh into one markdown report (for docs/BENCHMARKS.md) and
the same numbers as JSON (for bench/compare.py). Standard library only.

Reads from --dir: bench-*.json (the microbenchmarks' --json files), profile.md (`vkllm profile`:
read ceiling, matrix rate, profiling overhead), e2e.md (`vkllm bench`: pp/tg rows). Writes
report.md and report.json there and prints the markdown."""
import argparse
import glob
import json
import os
import re
import sys

E2E_ROW = re.compile(r"^\|\s*(?P<model>[^|]+)\|\s*(?P<size>[^|]+)\|\s*(?P<dev>[^|]+)\|\s*(?P<test>(?:pp|tg)\d+[^|]*)\|\s*"
                     r"(?P<tps>[0-9.]+)\s*±\s*(?P<sd>[0-9.]+)\s*\|")
CEIL = re.compile(r"read ceiling ([0-9.e+]+) GB/s.*matrix rate ([0-9.e+]+) TFLOP/s \(([^,]+, [^,]+)")
OVER = re.compile(r"^\|\s*(prefill of \d+ tokens|decode step)\s*\|\s*([0-9.]+) ms\s*\|\s*([0-9.]+) ms\s*\|\s*([-+0-9.]+)%"
                  r"(?:\s*\|\s*([0-9.]+) ms\s*\|\s*([-+0-9.]+)%)?")


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def collect(d):
    rep = {"device": None, "driver": None, "date": None, "read_ceiling_gbs": None, "kernels": [], "e2e": [],
           "matrix": None, "overhead": []}
    ceilings = []
    for path in sorted(glob.glob(os.path.join(d, "bench-*.json"))):
        try:
            with open(path, encoding="utf-8") as f:
                j = json.load(f)
        except (OSError, ValueError) as e:
            print(f"report.py: skipping {path}: {e}", file=sys.stderr)
            continue
        rep["device"] = rep["device"] or j.get("device")
        rep["driver"] = rep["driver"] or j.get("driver")
        rep["date"] = rep["date"] or j.get("date")
        if j.get("read_ceiling_gbs"):
            ceilings.append(j["read_ceiling_gbs"])
        for r in j.get("results", []):
            r = dict(r)
            r["bench"] = j.get("bench", os.path.basename(path))
            rep["kernels"].append(r)
    if ceilings:
        rep["read_ceiling_gbs"] = max(ceilings)
        rep["read_ceiling_spread"] = (max(ceilings) - min(ceilings)) / max(ceilings) if len(ceilings) > 1 else 0.0
    prof = read(os.path.join(d, "profile.md"))
    m = CEIL.search(prof)
    if m:
        rep["matrix"] = {"tflops": float(m.group(2)), "how": m.group(3).strip(), "profile_read_ceiling_gbs": float(m.group(1))}
    modes = []  # the overhead table's "on" columns, named by its header (compute, top, end, sampled ...)
    for line in prof.splitlines():
        if line.startswith("| step | profiling off |"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            modes = [c for c in cells[2:] if c != "change"]
        m = OVER.match(line)
        if m:
            o = {"step": m.group(1), "off_ms": float(m.group(2)), "on_ms": float(m.group(3)), "change_pct": float(m.group(4))}
            if m.group(5):  # start stamps at the top of the pipe
                o.update(on_top_ms=float(m.group(5)), change_top_pct=float(m.group(6)))
            cells = [c.strip() for c in line.strip().strip("|").split("|")][2:]
            o["modes"] = [{"mode": modes[i // 2] if i // 2 < len(modes) else f"mode {i // 2 + 1}",
                           "on_ms": float(cells[i].split()[0]), "change_pct": float(cells[i + 1].rstrip("%"))}
                          for i in range(0, len(cells) - 1, 2)]
            rep["overhead"].append(o)
    def tflops(r):
        return r.get("flops", 0) / (r["median_us"] * 1e6) if r.get("median_us", 0) > 0 else 0
    gemm = [r for r in rep["kernels"] if tflops(r) > 0 and "gemm" in r.get("kernel", "")]
    if gemm:
        best = max(gemm, key=tflops)
        rep["best_gemm"] = {"tflops": tflops(best), "kernel": best["kernel"], "shape": best["shape"]}
    for line in read(os.path.join(d, "e2e.md")).splitlines():
        m = E2E_ROW.match(line)
        if m:
            rep["e2e"].append({"test": m.group("test").strip(), "tps": float(m.group("tps")), "sd": float(m.group("sd")),
                               "model": m.group("model").strip(), "size": m.group("size").strip()})
            rep["device"] = rep["device"] or m.group("dev").strip()
    return rep


def markdown(rep):
    out = []
    w = out.append
    w(f"{rep['device'] or '?'}, driver {rep['driver'] or '?'}, commit {rep['commit']}, {rep['date'] or '?'}, "
      f"`bench/run_all.sh`{' --quick (smoke run: the numbers mean nothing)' if rep['quick'] else ''}")
    if rep.get("failed"):
        w(f"\n**Failed or missing parts:** {', '.join(rep['failed'])}")
    w("\n| ceiling | value | how |\n|---|---:|---|")
    if rep["read_ceiling_gbs"]:
        sp = rep.get("read_ceiling_spread", 0)
        w(f"| streaming read | {rep['read_ceiling_gbs']:.1f} GB/s | stream_read over a buffer far larger than L2, best of "
          f"the benchmarks' own measurements (spread between them {100 * sp:.1f}%) |")
    if rep["matrix"]:
        w(f"| matrix rate | {rep['matrix']['tflops']:.4g} TFLOP/s | {rep['matrix']['how']}, best of 8 (`vkllm profile`) |")
    if rep.get("best_gemm"):
        b = rep["best_gemm"]
        w(f"| best GEMM of bench-gemm | {b['tflops']:.4g} TFLOP/s | {b['kernel']} {b['shape']} |")
    if rep["e2e"]:
        w(f"\nEnd to end, `vkllm bench`, model {rep['model']} ({rep['e2e'][0]['size']}):\n")
        w("| test | tokens/s |\n|---|---:|")
        for e in rep["e2e"]:
            w(f"| {e['test']} | {e['tps']:.2f} ± {e['sd']:.2f} |")
    if rep["overhead"]:
        w("\nProfiling overhead (`vkllm profile --overhead`: wall time with timestamp queries off and on, interleaved "
          "rounds, medians; each mode the profile measured: stamp pairs at the compute stage or the top of the pipe, "
          "end stamps only, and the sampled modes, of which sampled compute is vkllm profile's default):\n")
        names = [x["mode"] for x in rep["overhead"][0].get("modes", [])] or ["on, compute", "on, top"]
        w("| step | off | " + " | ".join(f"{n} | change" for n in names) + " |\n|---|---:|" + "---:|---:|" * len(names))
        for o in rep["overhead"]:
            cols = o.get("modes") or [{"on_ms": o["on_ms"], "change_pct": o["change_pct"]}] + (
                [{"on_ms": o["on_top_ms"], "change_pct": o["change_top_pct"]}] if "on_top_ms" in o else [])
            w(f"| {o['step']} | {o['off_ms']:.3f} ms | " + " | ".join(f"{c['on_ms']:.3f} ms | {c['change_pct']:+.2f}%" for c in cols) + " |")
    if rep["kernels"]:
        w("\nKernels at their shapes (median of many dispatches; % of the streaming-read ceiling measured in the same "
          "process; TFLOP/s against the matrix rate above):\n")
        mr = rep["matrix"]["tflops"] if rep["matrix"] else 0
        # the matrix rate bounds only kernels with enough FLOPs per byte to reach it: above a quarter
        # of the device's ridge point (matrix rate / read ceiling); below, the read ceiling is the bound
        ridge = mr * 1e3 / rep["read_ceiling_gbs"] if mr and rep["read_ceiling_gbs"] else 0
        w("| bench | kernel | shape | median us | min us | GB/s | of read ceiling | TFLOP/s | of matrix rate |")
        w("|---|---|---|---:|---:|---:|---:|---:|---:|")
        for r in rep["kernels"]:
            # from the FLOPs and the time, not the JSON's rounded TFLOP/s (tiny on a CPU device)
            tf = r.get("flops", 0) / (r["median_us"] * 1e6) if r.get("median_us", 0) > 0 else 0
            w(f"| {r['bench']} | {r['kernel']} | {r['shape']} | {r['median_us']:.2f} | {r['min_us']:.2f} | "
              f"{(r.get('bytes', 0) / (r['median_us'] * 1e3) if r.get('median_us', 0) > 0 else 0):.4g} | "
              f"{100 * r.get('fraction_of_ceiling', 0):.1f}% | {tf:.4g} | "
              f"{(f'{100 * tf / mr:.1f}%' if tf and mr and r.get('flops', 0) > ridge / 4 * r.get('bytes', 0) else '-')} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--model", default="")
    ap.add_argument("--quick", type=int, default=0)
    ap.add_argument("--failed", default="")
    a = ap.parse_args()
    rep = collect(a.dir)
    rep.update(commit=a.commit, model=a.model, quick=bool(a.quick), failed=a.failed.split())
    if not rep["kernels"] and not rep["e2e"]:
        print(f"report.py: nothing to report in {a.dir} (no bench-*.json, no e2e.md rows)", file=sys.stderr)
        return 1
    md = markdown(rep)
    with open(os.path.join(a.dir, "report.md"), "w", encoding="utf-8") as f:
        f.write(md)
    with open(os.path.join(a.dir, "report.json"), "w", encoding="utf-8") as f:
        json.dump(rep, f, indent=1)
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
