"""Does the calibrated roofline predict measured latency? (issue 16's targets, in one run)

    python benchmarks/bench_roofline.py [--min-time 2] [--threads 1] [--models ...]

One run: calibrates the machine afresh (``archlab calibrate``), then times the 12 models with
``archlab.latency``'s protocol (their timed blocks taking turns, the allocator held steady), each
op timed on its own too, and predicts each model's forward on the calibrated machine. Prints,
per model, the measured median, the prediction and their ratio, then the targets:

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
    ap.add_argument("--min-time", type=float, default=2.0, help="seconds of timed forwards per model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    args = ap.parse_args()

    from archlab.measure.calibrate import machine
    from archlab.measure.latency import device_name, measure_all
    from archlab.measure.ranking import spearman

    began = time.perf_counter()
    load = os.getloadavg()
    m = machine("cpu", args.threads, "fp32", fresh=True)
    print(f"machine: {device_name('cpu')}, {os.cpu_count()} CPUs, {args.threads} thread(s), fp32, batch 1; "
          f"load average before {load[0]:.2f}")
    print(f"calibrated in {m.seconds:.1f} s: peak {m.peak_gflops:.1f} GFLOP/s, bandwidth {m.bandwidth_gbs:.1f} GB/s, "
          f"op overhead {m.op_overhead_us:.2f} us, conv floor {m.conv_floor_us:.1f} us")
    results = measure_all(args.models, threads=args.threads, min_time=args.min_time, predict=True, machine=m)
    print(f"\n{'model':16s} {'measured ms':>12s} {'IQR':>6s} {'predicted ms':>13s} {'pred/meas':>10s}  within 25%")
    ratios = {}
    for r in results:
        ratio = r.predicted_ms / r.median_ms
        ratios[r.model] = ratio
        print(f"{r.model:16s} {r.median_ms:12.2f} {100 * r.iqr_fraction:5.1f}% {r.predicted_ms:13.2f} {ratio:10.2f}"
              f"  {'yes' if abs(ratio - 1) <= 0.25 else 'NO'}")
    within = sum(abs(v - 1) <= 0.25 for v in ratios.values())
    others = [v for k, v in ratios.items() if k != "lenet5"]
    geo = math.exp(sum(math.log(v) for v in others) / len(others)) if others else float("nan")
    rho = spearman([r.predicted_ms for r in results], [r.median_ms for r in results])
    checks = [(f"within +-25%: {within} of {len(ratios)}", within >= min(10, len(ratios) - 2)),
              (f"geometric mean of predicted/measured without LeNet-5: {geo:.3f} (0.85 to 1.18)", 0.85 <= geo <= 1.18)]
    if "lenet5" in ratios:
        checks.append((f"LeNet-5 predicted/measured {ratios['lenet5']:.2f} (within a factor of 2)",
                       0.5 <= ratios["lenet5"] <= 2.0))
    checks.append((f"Spearman's rank correlation of predicted vs measured: {rho:+.3f} (at least 0.95)",
                   rho is not None and rho >= 0.95))
    v2 = next((r for r in results if r.model == "mobilenet_v2"), None)
    if v2 is not None:
        p, q = depthwise_share(v2)
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
