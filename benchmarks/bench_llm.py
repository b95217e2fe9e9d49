"""How long and how much memory does counting a 7B language model take?

    python benchmarks/bench_llm.py [--repeat 3] [--tokens 512]

Runs `archlab count examples/language_models.py:llama_7b --input-size input_ids=int64:TOKENS;use_cache=true`
in its own process --repeat times and prints the median wall time and the largest peak resident
memory (the process's ru_maxrss) of those runs, with the targets (under 10 s and 1 GB) next to
them; then `python -c "import torch, transformers"` for the floor every such tool pays. The model
is built on the meta device: its 6.7 G parameters take no memory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measured(cmd: list[str]) -> tuple[float, int]:
    probe = ("import resource, subprocess, sys, time\n"
             "t = time.perf_counter()\n"
             "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
             "t = time.perf_counter() - t\n"
             "sys.stderr.write(p.stderr)\n"
             "print(t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, p.returncode, "
             "p.stdout.splitlines()[0] if p.stdout else '')\n")
    proc = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": ROOT})
    seconds, peak, code, first = proc.stdout.split(" ", 3)
    if int(code) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr}")
    return float(seconds), int(peak)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=512)
    a = ap.parse_args()
    count = [sys.executable, "-m", "archlab", "count", "examples/language_models.py:llama_7b", "--input-size",
             f"input_ids=int64:{a.tokens};use_cache=true", "--depth", "0"]
    runs = [measured(count) for _ in range(a.repeat)]
    floor = [measured([sys.executable, "-c", "import torch, transformers"]) for _ in range(a.repeat)]
    t = statistics.median(s for s, _ in runs)
    peak = max(p for _, p in runs)
    print(f"archlab count llama_7b ({a.tokens} tokens): median {t:.2f} s of {a.repeat} runs "
          f"(target < 10 s): {'ok' if t < 10 else 'SLOW'}")
    print(f"  peak resident memory {peak / 2**20:,.0f} MiB (target < 1 GB = 954 MiB): "
          f"{'ok' if peak < 10**9 else 'TOO MUCH'}")
    print(f"python -c 'import torch, transformers': median {statistics.median(s for s, _ in floor):.2f} s, "
          f"peak {max(p for _, p in floor) / 2**20:,.0f} MiB (the floor)")


if __name__ == "__main__":
    main()
