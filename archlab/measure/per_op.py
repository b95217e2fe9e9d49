"""Per-op timing: each ATen op of a real forward timed on its own, lined up with the meta trace.

The forward runs on real tensors under a ``TorchDispatchMode`` that reads the clock around each
op (on CUDA: a pair of CUDA events around each op, read after the forward), under
``torch.no_grad()`` in eval mode, as the trace runs it, so the ops are the trace's, one for one
(the same op names in the same order: checked). Each op's time is its median over several
forwards. Only the op itself is inside the clock: the Python of the modules between ops is not,
so the ops' sum is a little below the forward's wall time; the dispatch mode's own work is
outside the clock too. This is the measurement a roofline prediction is compared with, op by op.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode

from archlab.errors import UserError
from archlab.measure.devices import is_cuda
from archlab.user_code import user_code

PER_OP_RUNS = (5, 30)  # timed forwards: at least, at most


class _OpClock(TorchDispatchMode):
    """Reads the clock around every op it sees."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # as the trace's recorder: never compiled, and torch._dynamo stays unimported

    def __init__(self, cuda: bool) -> None:
        super().__init__()
        self.cuda = cuda
        self.names: list[str] = []
        self.times: list[Any] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.cuda:
            import torch

            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = func(*args, **kwargs)
            end.record()
            self.times.append((start, end))
        else:
            t = time.perf_counter_ns()
            out = func(*args, **kwargs)
            self.times.append(time.perf_counter_ns() - t)
        self.names.append(str(func))
        return out

    def seconds(self) -> list[float]:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            return [s.elapsed_time(e) / 1e3 for s, e in self.times]
        return [t / 1e9 for t in self.times]


@dataclass(frozen=True)
class OpTimes:
    """Median seconds of each traced op (by op index), over ``runs`` timed forwards."""

    seconds: tuple[float, ...]
    runs: int
    method: str

    @property
    def total(self) -> float:
        return sum(self.seconds)


def time_ops(model: Any, inputs: tuple[Any, ...], trace: Any, device: str, runs: int) -> OpTimes:
    """Time every op of ``runs`` forwards of ``model`` (real weights, on ``device``) and line
    them up with ``trace``'s ops. Raises a one-line error when the forward ran other ops than
    the trace holds (a forward that depends on values)."""
    import torch

    from archlab.analysis.trace import no_mha_fastpath

    cuda = is_cuda(device)
    kwargs = getattr(inputs, "kwargs", {})  # keyword inputs and the forward's options (latency's ForwardInputs)
    wanted = [op.target for op in trace.ops]
    per_run: list[list[float]] = []
    with torch.no_grad(), no_mha_fastpath(), user_code():
        model(*inputs, **kwargs)  # warm: the first forward under the mode allocates
        for _ in range(runs):
            clock = _OpClock(cuda)
            with clock:
                model(*inputs, **kwargs)
            if clock.names != wanted:
                first = next((i for i, (a, b) in enumerate(zip(clock.names, wanted)) if a != b),
                             min(len(clock.names), len(wanted)))
                got = clock.names[first] if first < len(clock.names) else "the end of the forward"
                exp = wanted[first] if first < len(wanted) else "the end of the forward"
                raise UserError(f"the real forward ran other ops than the trace at op {first} ({got}, traced: {exp}): "
                                "a forward that depends on its input's values cannot be timed per op")
            per_run.append(clock.seconds())
    seconds = tuple(statistics.median(run[i] for run in per_run) for i in range(len(wanted)))
    method = ("each ATen op timed by a pair of CUDA events on real tensors" if cuda else
              "each ATen op timed by the clock around it on real tensors") + \
        f" (a dispatch mode, torch.no_grad(), eval mode), median of {runs} forwards"
    return OpTimes(seconds, runs, method)
