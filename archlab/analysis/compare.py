"""``archlab compare`` of several models: one row each, side by side (params, MACs, receptive
field, memory, and measured latency on request). The one-model comparison of a width or
resolution multiplier with its law is ``archlab.analysis.laws.compare_scaling``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archlab.analysis.costs import count_status
from archlab.analysis.count import count_trace
from archlab.analysis.memory import inference_peak
from archlab.analysis.receptive_field import extent, headline, receptive_fields
from archlab.analysis.trace import trace_model
from archlab.measure.latency import measure_all


@dataclass(frozen=True)
class CompareRow:
    model: str
    params: int
    macs: int
    rf: int | None
    params_bytes: int
    activation_peak_bytes: int
    latency_ms: float | None = None
    unsupported_ops: tuple[tuple[str, int], ...] = ()  # ops archlab has no cost rule for: (op, calls)
    training_macs: int | None = None  # with training=True: forward + backward MACs of one step
    training_peak_bytes: int | None = None  # with training=True: the step's predicted peak (None: it fails)
    optimizer: str | None = None

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def status(self) -> str:
        """'partial' when the MACs leave out ops archlab has no cost rule for, else 'complete'."""
        return count_status(self.unsupported_ops)


def compare_models(specs: list[str], latency: bool = False, training: bool = False, optimizer: str = "sgd",
                   **latency_options: Any) -> list[CompareRow]:
    """One row per spec: params, MACs, receptive field, memory (and latency), in the given order; with
    ``training``, also the training step's MACs (forward + backward) and its predicted memory peak
    under ``optimizer``, batch 1."""
    timings: list[float | None] = [None] * len(specs)
    if latency:
        # the models' timed blocks take turns, so the machine's load falls on all alike
        timings = [r.median_ms for r in measure_all(specs, **latency_options)]
    rows = []
    for spec, lat in zip(specs, timings):
        trace, label = trace_model(spec)
        c = count_trace(trace, label, depth=0)
        rf = receptive_fields(trace)
        h = headline(trace, rf)
        f = h.field if h is not None else None
        row = CompareRow(label, c.params, c.macs, int(max(extent(f)[1])) if f else None, 4 * c.params,
                         inference_peak(trace, 4).bytes, lat, c.unsupported_ops)
        if training:
            row = _with_training(row, spec, optimizer)
        rows.append(row)
    return rows


def _with_training(row: CompareRow, spec: str, optimizer: str) -> CompareRow:
    from dataclasses import replace

    from archlab.analysis.count import count_training
    from archlab.analysis.training import build_for_training, trace_training
    from archlab.analysis.training_memory import bill
    from archlab.errors import UserError

    model, inputs, label = build_for_training(spec)
    try:
        tt = trace_training(model, inputs)
    except UserError:  # e.g. batch norm over one value per channel at batch 1
        return replace(row, optimizer=optimizer)
    return replace(row, training_macs=count_training(tt, label, depth=0).training_macs,
                   training_peak_bytes=bill(tt, label, optimizer, None).training_peak_bytes, optimizer=optimizer)
