"""How much does `archlab count MODEL --training` cost beyond `archlab count MODEL`?

    python benchmarks/bench_count_training.py [--repeat 7] [--model resnet50]

Times, each the median of --repeat whole-process runs taking turns: the floor `python -c "import
torch"` (exiting without the interpreter's teardown, as archlab's console script does), `archlab
count MODEL`, and `archlab count MODEL --training`; then the ratio of the two counts beyond the
floor (target: --training <= 1.5x), in wall time and in CPU time (user + system of the process).
These machines are shared: other jobs' load lands in the wall times (a count can come out
faster than the bare `import torch`), so the verdict (exit code) is taken on the CPU times.
Also the in-process analysis step of each, warm, for reference.
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
    """(median wall time, median CPU time: user + system) of each command. On a shared machine the
    wall time carries the other jobs' load; the CPU time the process itself spent much less so."""
    import resource

    times: dict[str, list[float]] = {k: [] for k in cmds}
    cpu: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(repeat):
        for key, cmd in cmds.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[key].append(time.perf_counter() - t)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[key].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return ({k: statistics.median(v) for k, v in times.items()}, {k: statistics.median(v) for k, v in cpu.items()})


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
    t, cpu = walls({"floor": [PY, "-c", "import torch, os; os._exit(0)"], "count": cmd,
                    "training": cmd + ["--training"]}, args.repeat)
    ratios = {}
    for label, m in (("wall", t), ("cpu", cpu)):
        count_beyond = m["count"] - m["floor"]
        training_beyond = m["training"] - m["floor"]
        ratios[label] = training_beyond / max(count_beyond, 1e-3)
        floor_label = 'python -c "import torch" (the floor, fast exit)'
        print(f"{label} time, median of {args.repeat}:")
        print(f"  {floor_label:52s} {m['floor']:6.2f} s")
        print(f"  {'archlab count ' + args.model:52s} {m['count']:6.2f} s  ({count_beyond:.2f} s beyond the floor)")
        print(f"  {'archlab count ' + args.model + ' --training':52s} {m['training']:6.2f} s  "
              f"({training_beyond:.2f} s beyond the floor)")
        print(f"  ratio beyond import torch: {ratios[label]:.2f}x (target <= 1.5x)")
    ratio = ratios["cpu"]
    print(f"in-process analysis step, warm: count {step(args.model, False):.3f} s, "
          f"--training {step(args.model, True):.3f} s")
    return 0 if ratio <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
