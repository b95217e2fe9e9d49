"""Does the checkpointing plan fit its budget when the step runs for real? `memory --training --checkpoint auto`.

    python benchmarks/bench_checkpoint_plan.py [--model resnet50] [--res 224] [--batch 64] [--optimizer sgd]

The issue's case: ResNet-50, 64x3x224x224, SGD. archlab's predicted training peak of the step without
checkpointing, U (meta trace, nothing runs), sets the budget B = U / 1.3 (the unplanned step exceeds it by
30%); `checkpoint="auto"` plans the modules to checkpoint (the least recompute MACs whose predicted peak fits
B). Then both steps run for real on the CPU (`measure=True`: the second of two steps, its allocations from
the PyTorch profiler plus the parameters and optimizer state; the planned one with the plan's modules under
torch.utils.checkpoint, non-reentrant, early stop off) and their peaks are printed beside the predictions:
the plan's measured peak against B (the verdict, exit code 0 when it fits), and measured / predicted for
both. Wall times: the plan alone (meta), and each measured call (trace, plan, two real steps). Heavy: 6 GiB
of resident memory and about two minutes on 2 cores for the default case; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

from archlab.api.memory import training_memory
from archlab.units import human_bytes


def _bytes(n: int) -> str:
    return f"{human_bytes(n):>10} ({n:,} bytes)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--res", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--optimizer", default="sgd")
    args = parser.parse_args()
    import torch

    case = dict(res=args.res, batch=args.batch, optimizer=args.optimizer)
    t0 = time.perf_counter()
    unplanned = training_memory(args.model, **case)
    budget = int(unplanned.training_peak_bytes / 1.3)
    planned = training_memory(args.model, checkpoint="auto", budget=budget, **case)
    t_plan = time.perf_counter() - t0
    t = time.perf_counter()
    unplanned_m = training_memory(args.model, measure=True, **case)
    t_unplanned = time.perf_counter() - t
    t = time.perf_counter()
    planned_m = training_memory(args.model, checkpoint="auto", budget=budget, measure=True, **case)
    t_planned = time.perf_counter() - t
    assert planned_m.checkpointed == planned.checkpointed  # the same plan, measured

    shape = "x".join(map(str, unplanned.input_shape))
    cpu = platform.processor() or platform.machine()
    print(f"{args.model}  input {shape} fp32, optimizer {args.optimizer}, CPU ({cpu}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print("bytes: KiB/MiB/GiB = 1024/1024^2/1024^3; each peak: parameters + optimizer state + the step's own")
    print(f"unplanned step, predicted (U)     {_bytes(unplanned.training_peak_bytes)}")
    print(f"budget B = U / 1.3                {_bytes(budget)}")
    print(f"plan                              {len(planned.checkpointed)} modules: {', '.join(planned.checkpointed)}")
    gmacs = planned.recompute_macs / 1e9
    print(f"plan's recompute                  {planned.recompute_macs:,} MACs ({gmacs:.2f} GMACs), "
          f"{planned.plan_method}")
    print(f"planned step, predicted           {_bytes(planned.training_peak_bytes)}  "
          f"{planned.training_peak_bytes / budget:.4f} x B")
    um, pm = unplanned_m.measured_training_peak_bytes, planned_m.measured_training_peak_bytes
    print(f"unplanned step, measured          {_bytes(um)}  measured / predicted "
          f"{um / unplanned.training_peak_bytes:.4f}, {um / budget:.4f} x B")
    fits = pm < budget
    print(f"planned step, measured            {_bytes(pm)}  measured / predicted "
          f"{pm / planned.training_peak_bytes:.4f}, {pm / budget:.4f} x B "
          f"({'fits' if fits else 'DOES NOT FIT'} the budget)")
    print(f"measured saving                   {human_bytes(um - pm)} (predicted "
          f"{human_bytes(unplanned.training_peak_bytes - planned.training_peak_bytes)})")
    print(f"wall time: plan (meta) {t_plan:.1f} s; measured unplanned {t_unplanned:.1f} s; "
          f"measured planned {t_planned:.1f} s (each: trace, plan, two real steps)")
    return 0 if fits else 1


if __name__ == "__main__":
    sys.exit(main())
