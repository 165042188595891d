#!/usr/bin/env python3
"""Compares two bench/run_all.sh reports (report.json): for every kernel row and end-to-end test found
in both, the ratio new/old, flagged where the change exceeds the run-to-run spread.

usage: python3 bench/compare.py OLD/report.json NEW/report.json [--min-change 0.03]

Spread, per row (the larger of):
  --min-change (default 3%), what two runs of an unchanged build differ by on a quiet GPU;
  kernels: each run's (median - min) / median of that row, and each run's spread of the read ceiling
           between its benchmark processes (how much the device itself moved during the run);
  end to end: twice the combined relative standard deviation of the two means (vkllm bench's ±).
Kernel rows compare time (ratio > 1 is slower); end-to-end rows compare tokens/s (ratio < 1 is slower).
Exit status: 0, or 1 when any row regressed beyond its spread (2 on bad input)."""
import argparse
import json
import math
import sys


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"compare.py: cannot read {path}: {e}", file=sys.stderr)
        sys.exit(2)


def kernel_rows(rep):
    return {(r.get("bench", ""), r.get("kernel", ""), r.get("shape", "")): r for r in rep.get("kernels", [])}


def rel_spread(r):
    med, mn = r.get("median_us", 0), r.get("min_us", 0)
    return (med - mn) / med if med > 0 and mn > 0 else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--min-change", type=float, default=0.03)
    ap.add_argument("--all", action="store_true", help="print unchanged rows too")
    a = ap.parse_args()
    old, new = load(a.old), load(a.new)
    print(f"old: {old.get('device')} | {old.get('driver')} | commit {old.get('commit')} | {old.get('date')}")
    print(f"new: {new.get('device')} | {new.get('driver')} | commit {new.get('commit')} | {new.get('date')}")
    if old.get("device") != new.get("device"):
        print("WARNING: different devices; the ratios compare hardware, not code")
    if old.get("quick") or new.get("quick"):
        print("WARNING: a --quick run; its numbers mean nothing")
    regressions = improvements = compared = 0

    def verdict(ratio, tol, higher_is_better):
        worse = ratio < 1 - tol if higher_is_better else ratio > 1 + tol
        better = ratio > 1 + tol if higher_is_better else ratio < 1 - tol
        return "REGRESSION" if worse else "faster" if better else ""

    print("\n| what | old | new | new/old | spread | verdict |\n|---|---:|---:|---:|---:|---|")
    for key, unit, hib in (("read_ceiling_gbs", "GB/s", True),):
        if old.get(key) and new.get(key):
            r = new[key] / old[key]
            tol = max(a.min_change, old.get("read_ceiling_spread", 0), new.get("read_ceiling_spread", 0))
            print(f"| read ceiling | {old[key]:.1f} {unit} | {new[key]:.1f} {unit} | {r:.3f} | {100 * tol:.1f}% | "
                  f"{verdict(r, tol, hib) and 'device changed'} |")
    if old.get("matrix") and new.get("matrix") and old["matrix"]["tflops"] > 0:
        r = new["matrix"]["tflops"] / old["matrix"]["tflops"]
        print(f"| matrix rate | {old['matrix']['tflops']:.4g} TFLOP/s | {new['matrix']['tflops']:.4g} TFLOP/s | {r:.3f} | "
              f"{100 * a.min_change:.1f}% | {verdict(r, a.min_change, True) and 'changed'} |")

    oe = {e["test"]: e for e in old.get("e2e", [])}
    for e in new.get("e2e", []):
        o = oe.get(e["test"])
        if not o or o["tps"] <= 0 or e["tps"] <= 0:
            continue
        compared += 1
        r = e["tps"] / o["tps"]
        tol = max(a.min_change, 2 * math.hypot(o["sd"] / o["tps"], e["sd"] / e["tps"]))
        v = verdict(r, tol, True)
        regressions += v == "REGRESSION"
        improvements += v == "faster"
        if v or a.all:
            print(f"| e2e {e['test']} | {o['tps']:.2f} t/s | {e['tps']:.2f} t/s | {r:.3f} | {100 * tol:.1f}% | {v} |")

    ok = kernel_rows(old)
    sp_dev = max(old.get("read_ceiling_spread", 0), new.get("read_ceiling_spread", 0))
    missing = []
    for key, n in kernel_rows(new).items():
        o = ok.pop(key, None)
        if not o:
            missing.append(("new only", key))
            continue
        if o.get("median_us", 0) <= 0 or n.get("median_us", 0) <= 0:
            continue
        compared += 1
        r = n["median_us"] / o["median_us"]
        tol = max(a.min_change, sp_dev, rel_spread(o), rel_spread(n))
        v = verdict(r, tol, False)
        regressions += v == "REGRESSION"
        improvements += v == "faster"
        if v or a.all:
            print(f"| {key[0]} {key[1]} {key[2]} | {o['median_us']:.2f} us | {n['median_us']:.2f} us | {r:.3f} | "
                  f"{100 * tol:.1f}% | {v} |")
    missing += [("old only", k) for k in ok]
    for where, k in missing:
        print(f"| {k[0]} {k[1]} {k[2]} | | | | | {where} |")
    for o in new.get("overhead", []):
        # every mode the profile measured; the 5% target is the default mode's (vkllm profile without
        # --stamps/--sample: sampled compute stamps), the full modes are listed for reference
        modes = o.get("modes") or [{"mode": "on, compute", "on_ms": o["on_ms"], "change_pct": o["change_pct"]}] + (
            [{"mode": "on, top", "on_ms": o["on_top_ms"], "change_pct": o["change_top_pct"]}] if "on_top_ms" in o else [])
        for md in modes:
            default = md["mode"].startswith("sampled") and md["mode"].endswith("compute")
            flag = ("over 5% (the default mode)" if default else "over 5%") if abs(md["change_pct"]) > 5 else ""
            print(f"| profiling overhead, {o['step']}, {md['mode']} (new run) | {o['off_ms']:.3f} ms off | "
                  f"{md['on_ms']:.3f} ms on | {1 + md['change_pct'] / 100:.3f} | | {flag} |")
    print(f"\n{compared} rows compared: {regressions} regressions, {improvements} faster, "
          f"{compared - regressions - improvements} within their spread"
          f"{'' if a.all else ' (not listed; --all lists them)'}")
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
