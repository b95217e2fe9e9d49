"""Per-op timing: each ATen op of a real forward timed on its own, lined up with the meta trace.

The forward runs on real tensors under a ``TorchDispatchMode`` that reads the clock around each
op (on CUDA: a pair of CUDA events around each op, read after the forward), under
``torch.no_grad()`` in eval mode, as the trace runs it, so the ops are the trace's, one for one
(the same op names in the same order: checked, ``OpTimes.aligned``). Each op's time is its median
over several forwards, and each op is attributed to the innermost module whose forward ran it.
Only the op itself is inside the clock: the Python of the modules between ops is not; but calling
an op from Python through the dispatch mode costs a few microseconds more than a plain forward's
call, which is inside. This is the measurement a roofline prediction is compared with, op by op.

The real forward can run other ops than the meta trace without reading any value: a
``channels_last`` layout makes a ``view`` a ``clone``; a CPU or GPU runs fused attention kernels
where the meta device decomposes them. Then the ops are not lined up with the trace
(``aligned`` False): their times still add up per module (``--per-layer``) and by op name, but not
op by op beside the prediction. A forward that runs different ops on different calls is refused.
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

class _OpClock(TorchDispatchMode):
    """Reads the clock around every op it sees."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # as the trace's recorder: never compiled, and torch._dynamo stays unimported

    def __init__(self, cuda: bool, stack: list[str]) -> None:
        super().__init__()
        self.cuda = cuda
        self.stack = stack  # the module calls open now, innermost last
        self.names: list[str] = []
        self.modules: list[str] = []
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
        self.modules.append(self.stack[-1] if self.stack else "")
        return out

    def seconds(self) -> list[float]:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            return [s.elapsed_time(e) / 1e3 for s, e in self.times]
        return [t / 1e9 for t in self.times]


@dataclass(frozen=True)
class OpTimes:
    """Median seconds of each op of the real forward, over ``runs`` timed forwards, with its name and
    the module that ran it; ``aligned``: the ops are the trace's, one for one (``seconds[i]`` is
    ``trace.ops[i]``'s)."""

    seconds: tuple[float, ...]
    runs: int
    method: str
    targets: tuple[str, ...] = ()  # the ops, e.g. "aten.convolution.default"
    modules: tuple[str, ...] = ()  # the innermost module that ran each op ("" outside every module)
    aligned: bool = True

    @property
    def total(self) -> float:
        return sum(self.seconds)


def time_ops(model: Any, inputs: tuple[Any, ...], trace: Any, device: str, runs: int) -> OpTimes:
    """Time every op of ``runs`` forwards of ``model`` (real weights, on ``device``), each op
    attributed to the innermost module that ran it, and say whether they line up with ``trace``'s
    ops. Raises a one-line error when the forward ran different ops on different calls."""
    import torch
    from torch.nn.modules import module as module_mod

    from archlab.trace.guards import no_mha_fastpath

    cuda = is_cuda(device)
    kwargs = getattr(inputs, "kwargs", {})  # keyword inputs and the forward's options (latency's ForwardInputs)
    names = {}
    for name, m in model.named_modules(remove_duplicate=False):
        names.setdefault(id(m), name)
    stack: list[str] = []
    clock: _OpClock | None = None

    def enter(module: Any, args: Any) -> None:
        stack.append(names.get(id(module), type(module).__name__))

    def leave(module: Any, args: Any, output: Any) -> None:
        if stack:
            stack.pop()

    per_run: list[list[float]] = []
    first: tuple[list[str], list[str]] | None = None
    h_pre = module_mod.register_module_forward_pre_hook(enter)
    h_post = module_mod.register_module_forward_hook(leave, always_call=True)
    try:
        with torch.no_grad(), no_mha_fastpath(), user_code():
            model(*inputs, **kwargs)  # warm: the first forward under the hooks allocates
            for _ in range(runs):
                stack.clear()
                clock = _OpClock(cuda, stack)
                with clock:
                    model(*inputs, **kwargs)
                if first is None:
                    first = (clock.names, clock.modules)
                elif clock.names != first[0]:
                    raise UserError("the forward ran different ops on different calls (it depends on its input's "
                                    "values or on state it changes): its ops cannot be timed one by one")
                per_run.append(clock.seconds())
    finally:
        h_pre.remove()
        h_post.remove()
    targets, modules = first
    seconds = tuple(statistics.median(run[i] for run in per_run) for i in range(len(targets)))
    method = ("each ATen op timed by a pair of CUDA events on real tensors" if cuda else
              "each ATen op timed by the clock around it on real tensors") + \
        f" (a dispatch mode, torch.no_grad(), eval mode), median of {runs} forwards"
    aligned = list(targets) == [op.target for op in trace.ops]
    return OpTimes(seconds, runs, method, tuple(targets), tuple(modules), aligned)
