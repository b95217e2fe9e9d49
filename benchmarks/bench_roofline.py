"""Does the calibrated roofline predict measured latency? (issue 16's targets, in one run)

    python benchmarks/bench_roofline.py [--min-time 2] [--threads 1] [--models ...]

One run, in ``--rounds`` rounds (3): each round calibrates the machine afresh (``archlab
calibrate``), times the 12 models with ``archlab.latency``'s protocol (their timed blocks taking
turns, the allocator held steady), each op timed on its own too, calibrates again, and predicts
each model's forward on the geometric mean of the two calibrations
(``archlab.measure.calibrate.mean_machine``). A shared machine's speed drifts by tens of percent
over minutes; calibrations taken just before and after the timing they predict bracket the same
machine, and the rounds show the drift. Per model: the median over the rounds of the measured median and of the
prediction, and their ratio; then the targets:

* predicted within +-25% of the measured median for at least 10 of the 12;
* the geometric mean of predicted / measured over the models other than LeNet-5 in [0.85, 1.18],
  and LeNet-5 (all fixed cost) within a factor of 2;
* Spearman's rank correlation of predicted vs measured at least 0.95;
* MobileNetV2's depthwise share of time predicted within 10 points of its share measured per op.

CPU, fp32, batch 1. Times are noisy on a shared machine: the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MODELS = ("lenet5", "alexnet_owt", "vgg11", "googlenet", "inception_v3", "resnet18", "resnet50", "densenet121",
          "mobilenet", "mobilenet_v2", "efficientnet_b0", "efficientnet_b3")


def depthwise_share(r) -> tuple[float, float]:
    """(predicted, measured) share of the forward in depthwise convolutions."""
    rows = r.by_kind()
    pred = sum(k["predicted_share"] for k in rows if k["kind"].startswith("depthwise"))
    meas = sum(k["measured_share"] for k in rows if k["kind"].startswith("depthwise"))
    return pred, meas


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds of timed forwards per model and round")
    ap.add_argument("--rounds", type=int, default=3, help="calibrate-and-measure rounds")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    args = ap.parse_args()

    from dataclasses import replace

    from archlab.measure.calibrate import machine, mean_machine
    from archlab.measure.latency import device_name, measure_all
    from archlab.measure.predict import predict_trace
    from archlab.measure.ranking import spearman

    began = time.perf_counter()
    load = os.getloadavg()
    print(f"machine: {device_name('cpu')}, {os.cpu_count()} CPUs, {args.threads} thread(s), fp32, batch 1; "
          f"load average before {load[0]:.2f}")
    rounds = []
    for i in range(args.rounds):
        before = machine("cpu", args.threads, "fp32", fresh=True)
        results = measure_all(args.models, threads=args.threads, min_time=args.min_time, per_op=True)
        after = machine("cpu", args.threads, "fp32", fresh=True)
        m = mean_machine([before, after])
        results = [replace(r, prediction=predict_trace(r.trace, m)) for r in results]
        print(f"round {i + 1}: peak {before.peak_gflops:.0f}/{after.peak_gflops:.0f} GFLOP/s, bandwidth "
              f"{before.bandwidth_gbs:.1f}/{after.bandwidth_gbs:.1f} GB/s (before/after); predicted/measured: "
              + ", ".join(f"{r.model} {r.predicted_ms / r.median_ms:.2f}" for r in results), flush=True)
        rounds.append({r.model: r for r in results})
    names = list(rounds[0])
    measured = {n: statistics.median(rd[n].median_ms for rd in rounds) for n in names}
    predicted = {n: statistics.median(rd[n].predicted_ms for rd in rounds) for n in names}
    print(f"\n{'model':16s} {'measured ms':>12s} {'spread':>7s} {'predicted ms':>13s} {'pred/meas':>10s}  within 25%")
    ratios = {}
    for n in names:
        ratio = predicted[n] / measured[n]
        ratios[n] = ratio
        spread = (max(rd[n].median_ms for rd in rounds) - min(rd[n].median_ms for rd in rounds)) / measured[n]
        print(f"{n:16s} {measured[n]:12.2f} {100 * spread:6.1f}% {predicted[n]:13.2f} {ratio:10.2f}"
              f"  {'yes' if abs(ratio - 1) <= 0.25 else 'NO'}")
    print("(spread: the largest minus the smallest of the rounds' medians, over their median)")
    within = sum(abs(v - 1) <= 0.25 for v in ratios.values())
    others = [v for k, v in ratios.items() if k != "lenet5"]
    geo = math.exp(sum(math.log(v) for v in others) / len(others)) if others else float("nan")
    rho = spearman([predicted[n] for n in names], [measured[n] for n in names])
    checks = [(f"within +-25%: {within} of {len(ratios)}", within >= min(10, len(ratios) - 2)),
              (f"geometric mean of predicted/measured without LeNet-5: {geo:.3f} (0.85 to 1.18)", 0.85 <= geo <= 1.18)]
    if "lenet5" in ratios:
        checks.append((f"LeNet-5 predicted/measured {ratios['lenet5']:.2f} (within a factor of 2)",
                       0.5 <= ratios["lenet5"] <= 2.0))
    checks.append((f"Spearman's rank correlation of predicted vs measured: "
                   f"{'undefined' if rho is None else format(rho, '+.3f')} (at least 0.95)",
                   rho is not None and rho >= 0.95))
    if "mobilenet_v2" in names:
        shares = [depthwise_share(rd["mobilenet_v2"]) for rd in rounds]
        p, q = statistics.median(x[0] for x in shares), statistics.median(x[1] for x in shares)
        checks.append((f"MobileNetV2 depthwise share: predicted {100 * p:.1f}%, measured per op {100 * q:.1f}% "
                       f"({100 * abs(p - q):.1f} points; within 10)", abs(p - q) <= 0.10))
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    load = os.getloadavg()
    print(f"\nload average after {load[0]:.2f}; {time.perf_counter() - began:.0f} s in all")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
