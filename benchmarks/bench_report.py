"""How fast are `archlab count` and `archlab report` of resnet152, against `import torch`?

    python benchmarks/bench_report.py [--repeat 5] [--model resnet152]

Every torch tool pays `import torch` (the floor); what archlab adds is the time beyond it. Each
round runs, in separate processes and in turn, `python -c "import torch"`, `archlab count MODEL`
and `archlab report MODEL -o TMP.html`, so the machine's load falls on all three alike; the
medians over --repeat rounds are printed with the time beyond the floor as a ratio to the floor
(the targets of issue 22: report <= 1.5, count <= 1.0), and the page's size (target < 2 MB).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

TARGETS = {"count": 1.0, "report": 1.5}  # time beyond `import torch`, as a multiple of it


def _run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--model", default="resnet152")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"import torch": [], "count": [], "report": []}
    with tempfile.TemporaryDirectory() as tmp:
        page = os.path.join(tmp, "page.html")
        commands = {"import torch": [sys.executable, "-c", "import torch"],
                    "count": [sys.executable, "-m", "archlab", "count", args.model],
                    "report": [sys.executable, "-m", "archlab", "report", args.model, "-o", page]}
        _run(commands["import torch"])  # the first run warms the file cache for every later one
        for _ in range(args.repeat):
            for what, cmd in commands.items():
                times[what].append(_run(cmd))
        size = os.path.getsize(page)
    floor = statistics.median(times["import torch"])
    print(f"import torch:          {floor:.2f} s (median of {args.repeat})")
    for what in ("count", "report"):
        total = statistics.median(times[what])
        ratio = (total - floor) / floor
        verdict = "meets" if ratio <= TARGETS[what] else "misses"
        print(f"archlab {what} {args.model}: {total:.2f} s; beyond import torch {total - floor:.2f} s = "
              f"{ratio:.2f} x import torch ({verdict} the target <= {TARGETS[what]:g})")
    print(f"page size:             {size:,} bytes (target < {2 * 1024 * 1024:,})")


if __name__ == "__main__":
    main()
