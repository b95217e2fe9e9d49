"""Predicted vs measured per-rank peak of a real torch.distributed training step on the CPU (gloo, 2 ranks).

    python benchmarks/bench_distributed_memory.py [--runs 3]

For ResNet-18 (112x112, global batch 16, SGD) and a 2-layer ``nn.TransformerEncoder`` (d_model 64, 4 heads, 64
tokens, global batch 4, Adam), each scheme archlab can run for real (``none``: DDP; ``zero1``: DDP +
ZeroRedundancyOptimizer; ``fsdp``: FSDP2 ``fully_shard`` per top-level block), with and without every top-level
block checkpointed: archlab's per-rank bill (``memory --training --world-size 2 --shard S``) beside each
rank's measured peak (``--measure``: 2 spawned gloo ranks, every thread's CPU allocations). ``--runs``: how many
times each is measured (the measured FSDP peak differs between runs by a buffer that gloo's thread frees early
or late). Prints a markdown table and the largest error.
"""

from __future__ import annotations

import argparse
import sys
import time

from torch import nn

from archlab.api.memory import training_memory


def transformer() -> nn.Module:
    return nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4, 128, batch_first=True), 2,
                                 enable_nested_tensor=False)


CASES = (("ResNet-18, 3x112x112, global batch 16, sgd",
          lambda **kw: training_memory("resnet18", res=112, batch=16, optimizer="sgd", **kw), "layer*.*"),
         ("TransformerEncoder, 64 tokens, global batch 4, adam",
          lambda **kw: training_memory(transformer(), input_size=(64, 64), batch=4, optimizer="adam", **kw),
          "layers.*"))


def mib(n: int) -> str:
    return f"{n / 2**20:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-checkpoint", action="store_true", help="only the steps without checkpointing")
    args = parser.parse_args()
    print("| model | scheme | checkpointed | predicted per rank (MiB) | measured, largest rank (MiB), each run | "
          "error, each run | seconds per run |")
    print("|---|---|---|---:|---|---|---:|")
    worst = 0.0
    for label, bill, blocks in CASES:
        for shard in ("none", "zero1", "fsdp"):
            for checkpoint in (None,) if args.no_checkpoint else (None, blocks):
                kw = dict(world_size=2, shard=shard, measure=True)
                if checkpoint:
                    kw["checkpoint"] = checkpoint
                measured, errors, seconds = [], [], 0.0
                for _ in range(args.runs):
                    t = time.perf_counter()
                    r = bill(**kw)
                    seconds += time.perf_counter() - t
                    measured.append(mib(r.measured_training_peak_bytes))
                    errors.append(f"{r.measured_diff_percent:+.1f}%")
                    worst = max(worst, abs(r.measured_diff_percent))
                print(f"| {label} | {shard} | {checkpoint or 'none'} | {mib(r.training_peak_bytes)} | "
                      f"{', '.join(measured)} | {', '.join(errors)} | {seconds / args.runs:.1f} |", flush=True)
    print(f"\nlargest |error|: {worst:.1f}% (predicted - measured, of measured)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
