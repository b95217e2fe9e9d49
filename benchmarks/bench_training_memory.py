"""Predicted vs measured training-step peak: `archlab memory --training --measure` on the CPU.

    python benchmarks/bench_training_memory.py [--batch 8]

For ResNet-18 (64x64), MobileNetV2 (64x64) and U-Net (188x188, its smallest valid input), batch 8,
SGD and Adam: archlab's predicted peak of one training step (parameters + optimizer state + the
largest live total of activations and gradients over forward, backward and step, from the meta
trace) beside the peak of a real step on the CPU (PyTorch profiler's allocations of the second
step, plus the parameters and optimizer state as allocated). Prints a markdown table: the whole
peak, and the part the step allocates itself (the peak less parameters and optimizer state, whose
sizes are exact), each with the prediction's error.
"""

from __future__ import annotations

import argparse
import sys

from archlab.api.memory import training_memory

CASES = (("resnet18", 64), ("mobilenet_v2", 64), ("unet", 188))


def mib(n: int) -> str:
    return f"{n / 2**20:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    print("| model | input | optimizer | predicted peak (MiB) | measured peak (MiB) | error | "
          "step's own, predicted (MiB) | measured (MiB) | error |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    worst = 0.0
    for name, res in CASES:
        for optimizer in ("sgd", "adam"):
            r = training_memory(name, res=res, batch=args.batch, optimizer=optimizer, measure=True)
            persistent = r.params_bytes + r.optimizer_state_bytes
            own_p = r.training_peak_bytes - persistent
            own_m = r.measured_training_peak_bytes - persistent
            own_err = 100.0 * (own_p - own_m) / own_m
            worst = max(worst, abs(r.measured_diff_percent), abs(own_err))
            shape = "x".join(map(str, r.input_shape))
            print(f"| {name} | {shape} | {optimizer} | {mib(r.training_peak_bytes)} | "
                  f"{mib(r.measured_training_peak_bytes)} | {r.measured_diff_percent:+.1f}% | {mib(own_p)} | "
                  f"{mib(own_m)} | {own_err:+.1f}% |")
    print(f"\nlargest error: {worst:.1f}% (target: within 15%)")
    return 0 if worst <= 15 else 1


if __name__ == "__main__":
    sys.exit(main())
