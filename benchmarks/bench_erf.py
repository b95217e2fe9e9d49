"""How long does `archlab rf resnet50 --effective` take with the default samples, and what dominates?

    python benchmarks/bench_erf.py [--model resnet50] [--repeat 1]

The target (issue 26): under 30 s on a 2-core machine, the whole command (import, trace, the real runs,
the metrics). Each round runs the command in its own process (wall time, beside `import torch` in a
process of its own, the floor every torch tool pays); then one run in this process is timed phase by
phase (``ERFResult.timings``): the meta trace, the builds (``init`` builds the model four times, one per
seed), the forwards (one per batch of 8, every tap hooked), the backwards (one per measured layer and
batch, the parameters getting no gradient) summed per top-level stage, and the metrics (the Gaussian fits,
ERF95). The plan: one forward per batch, one backward per tap; the backwards of the deep layers dominate,
each running back through nearly the whole network.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

TARGET_S = 30.0


def _run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    import torch

    command = [sys.executable, "-m", "archlab", "rf", args.model, "--effective"]
    floor = statistics.median(_run([sys.executable, "-c", "import torch"]) for _ in range(max(args.repeat, 1)))
    whole = [_run(command) for _ in range(args.repeat)]
    total = statistics.median(whole)
    verdict = "meets" if total < TARGET_S else "misses"
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"import torch: {floor:.2f} s")
    print(f"archlab rf {args.model} --effective (default samples): {total:.1f} s, median of {args.repeat} "
          f"({verdict} the target < {TARGET_S:g} s)")

    import archlab

    result = archlab.effective_receptive_field(args.model)
    t = result.timings
    stages: dict[str, float] = {}
    for key, seconds in t.items():
        if key.startswith("backward "):
            stage = key.split(" ", 1)[1].split(".")[0]
            stages[stage] = stages.get(stage, 0.0) + seconds
    backward = sum(stages.values())
    phases = {"trace (meta)": t.get("trace", 0.0), "builds": t.get("build", 0.0), "forwards": t.get("forward", 0.0),
              "backwards": backward, "metrics": t.get("metrics", 0.0)}
    inside = sum(phases.values())
    print(f"in process: {inside:.1f} s for {result.samples} samples, {len(result.layers)} layers, "
          f"{len(result.seeds)} builds")
    for name, seconds in sorted(phases.items(), key=lambda kv: -kv[1]):
        print(f"  {name:14} {seconds:6.1f} s  {100 * seconds / inside:5.1f}%")
    print("backwards per stage (each backward runs from the layer's centre unit back to the input):")
    for name, seconds in sorted(stages.items(), key=lambda kv: -kv[1]):
        print(f"  {name:14} {seconds:6.1f} s  {100 * seconds / max(backward, 1e-9):5.1f}% of the backwards")
    print(f"stable: {result.stable} (ERF95 from half the samples within 5% (or 2 pixels) of all)")


if __name__ == "__main__":
    main()
