"""How fast is `archlab report resnet152`? Target: under 3 s beyond `import torch`.

    python benchmarks/bench_report.py [--repeat 3] [--model resnet152]

Prints the median of --repeat whole-process runs of `python -c "import torch"` (the floor every
torch tool pays) and of `archlab report MODEL -o TMP.html`, the time beyond the floor, its ratio
to the 3 s target (<= 1 meets it), and the page's size (target < 2 MB).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

TARGET_S = 3.0


def _median_run(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default="resnet152")
    args = parser.parse_args()
    floor = _median_run([sys.executable, "-c", "import torch"], args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        page = os.path.join(tmp, "page.html")
        total = _median_run([sys.executable, "-m", "archlab", "report", args.model, "-o", page], args.repeat)
        size = os.path.getsize(page)
    beyond = total - floor
    print(f"import torch:                 {floor:.2f} s")
    print(f"archlab report {args.model}: {total:.2f} s")
    print(f"beyond import torch:          {beyond:.2f} s (target < {TARGET_S:g} s; ratio {beyond / TARGET_S:.2f})")
    print(f"page size:                    {size:,} bytes (target < {2 * 1024 * 1024:,})")


if __name__ == "__main__":
    main()
