"""``--engine real``: the model built on a device and its forward run on real tensors, recorded by the
same dispatch-level trace as the meta one (``archlab.trace.run``), for builders and forwards that
read values (detection's proposals, a RegNet's widths).

The run is guarded: the meta trace's estimate of it (parameters and every activation, all kept:
the trace holds every tensor), when there is one, must fit the device's free memory before
anything is built; without one (the meta trace fails), the weights are checked once built and
the forward is stopped, in one line, once the tensors it made pass the budget."""

from __future__ import annotations

from typing import Any

from archlab.analysis.memory import run_bytes
from archlab.measure.devices import check_device
from archlab.measure.guard import memory_budget
from archlab.spec import Inputs
from archlab.trace.graph import Trace
from archlab.trace.run import Built, build, trace_built


def real_traced(model_or_spec: Any, inputs: Inputs, *, device: str = "cpu", force: bool = False,
                estimate: Trace | None = None, seed: int = 0, **settings: Any) -> tuple[Built, Trace]:
    """(built, trace) of one real forward on ``device``; ``estimate``: the meta trace of the same
    model and inputs, when it could be made; ``seed``: the weights' initialisation, the inputs' values
    and the forward's random draws (``archlab.trace.run.build``), the same seed the same count;
    ``settings``: res, batch, alpha, options."""
    check_device(device)
    budget = memory_budget(device, force)
    if budget is not None and estimate is not None:
        needed = max(sum(v.numel * v.itemsize for v in estimate.values), run_bytes(estimate))
        if needed > budget.limit:
            raise budget.refuse(needed, "--engine real (a real forward, every tensor kept)")
    built = build(model_or_spec, inputs, real=True, device=device, budget=budget, seed=seed, **settings)
    return built, trace_built(built, real=True, budget=budget, seed=seed)


def real_trace(model_or_spec: Any, inputs: Inputs, *, device: str = "cpu", force: bool = False,
               estimate: Trace | None = None, seed: int = 0, **settings: Any) -> tuple[Trace, str]:
    """(trace, label) of one real forward on ``device`` (``real_traced``)."""
    built, trace = real_traced(model_or_spec, inputs, device=device, force=force, estimate=estimate, seed=seed,
                               **settings)
    return trace, built.label
