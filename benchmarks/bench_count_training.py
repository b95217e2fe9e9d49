"""How much does `archlab count MODEL --training` cost beyond `archlab count MODEL`?

    python benchmarks/bench_count_training.py [--repeat 7] [--model resnet50]

Times, each the median of --repeat whole-process runs taking turns (these machines are shared
and noisy): the floor `python -c "import torch"` (exiting without the interpreter's teardown, as
archlab's console script does), `archlab count MODEL`, and `archlab count MODEL --training`;
then the ratio of the two counts beyond the floor (target: --training <= 1.5x). Also the
in-process analysis step of each, for reference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

PY = sys.executable


def walls(cmds: dict[str, list[str]], repeat: int) -> tuple[dict[str, float], dict[str, float]]:
    """(median, minimum) wall time of each command."""
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(repeat):
        for key, cmd in cmds.items():
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[key].append(time.perf_counter() - t)
    return ({k: statistics.median(v) for k, v in times.items()}, {k: min(v) for k, v in times.items()})


def step(model: str, training: bool) -> float:
    code = ("import time, archlab\n"
            f"archlab.count({model!r}, training={training})\n"  # one-off costs (first meta kernels) paid here
            "t = time.perf_counter()\n"
            f"archlab.count({model!r}, training={training})\n"
            "print(time.perf_counter() - t)\n")
    out = subprocess.run([PY, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--model", default="resnet50")
    args = parser.parse_args()
    import archlab

    subprocess.run([PY, "-m", "compileall", "-q", os.path.dirname(archlab.__file__)], check=True)
    cmd = [PY, "-m", "archlab", "count", args.model]
    t, fastest = walls({"floor": [PY, "-c", "import torch, os; os._exit(0)"], "count": cmd,
                        "training": cmd + ["--training"]}, args.repeat)
    count_beyond = t["count"] - t["floor"]
    training_beyond = t["training"] - t["floor"]
    ratio = training_beyond / max(count_beyond, 1e-3)
    floor_label = 'python -c "import torch" (the floor, fast exit)'
    print(f"{floor_label:52s} {t['floor']:6.2f} s")
    print(f"{'archlab count ' + args.model:52s} {t['count']:6.2f} s  ({count_beyond:.2f} s beyond the floor)")
    print(f"{'archlab count ' + args.model + ' --training':52s} {t['training']:6.2f} s  "
          f"({training_beyond:.2f} s beyond the floor)")
    print(f"ratio beyond import torch, medians: {ratio:.2f}x (target <= 1.5x)")
    fast = (fastest["training"] - fastest["floor"]) / max(fastest["count"] - fastest["floor"], 1e-3)
    print(f"the same from the fastest run of each: {fast:.2f}x "
          f"(floor {fastest['floor']:.2f} s, count {fastest['count']:.2f} s, --training {fastest['training']:.2f} s)")
    print(f"in-process analysis step, warm: count {step(args.model, False):.3f} s, "
          f"--training {step(args.model, True):.3f} s")
    return 0 if ratio <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
