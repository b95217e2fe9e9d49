"""How fast are `archlab count` and `archlab report` of resnet152, against `import torch`?

    python benchmarks/bench_report.py [--repeat 5] [--model resnet152]

Every torch tool pays `import torch` (the floor); what archlab adds is the time beyond it. Each
round runs, in separate processes and in turn, `python -c "import torch"`, `archlab count MODEL`
and `archlab report MODEL -o TMP.html`, so the machine's load falls on all three alike; the
medians over --repeat rounds are printed as ratios to the floor (the targets of issue 22: report
<= 1.5 x import torch, count <= 1.0 x), with the time beyond the floor, and the page's size (target
< 2 MB). `archlab` skips the interpreter's teardown after a finished command, which the floor pays:
so count can take less than the floor. archlab's modules are compiled to bytecode first, as an
installed package's are (a checkout run with PYTHONDONTWRITEBYTECODE=1 would otherwise compile
all 45 of them in every process, 0.13 s, which no installed archlab pays).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

TARGETS = {"count": 1.0, "report": 1.5}  # whole-process time, as a multiple of `import torch`


def _run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--model", default="resnet152")
    args = parser.parse_args()
    import compileall

    import archlab

    compileall.compile_dir(os.path.dirname(archlab.__file__), quiet=1)
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
        ratio = total / floor
        verdict = "meets" if ratio <= TARGETS[what] else "misses"
        print(f"archlab {what} {args.model}: {total:.2f} s = {ratio:.2f} x import torch ({verdict} the target "
              f"<= {TARGETS[what]:g}); {total - floor:+.2f} s beyond it")
    print(f"page size:             {size:,} bytes (target < {2 * 1024 * 1024:,})")


if __name__ == "__main__":
    main()
