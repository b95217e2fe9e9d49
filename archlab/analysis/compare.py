"""``archlab compare`` of several models: one row each, side by side (params, MACs, receptive
field, memory, and measured latency on request). The one-model comparison of a width or
resolution multiplier with its law is ``archlab.analysis.laws.compare_scaling``."""

from __future__ import annotations

from dataclasses import dataclass, replace

from archlab.analysis.costs import count_status
from archlab.analysis.count import count_trace, count_training
from archlab.analysis.memory import inference_peak
from archlab.analysis.receptive_field import extent, headline, receptive_fields
from archlab.analysis.training_memory import bill
from archlab.trace.graph import Trace, TrainingTrace
from archlab.units import DTYPE_BYTES


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
    batch: int = 1  # the batch the model was counted (and timed) at: its spec's batch= or --batch
    latency_noisy: bool = False  # the timed run's IQR exceeds NOISY_IQR of its median (as `archlab latency`)
    dtype: str = "fp32"  # the model's own floating dtype: its memory columns are at it

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def status(self) -> str:
        """'partial' when the MACs leave out ops archlab has no cost rule for, else 'complete'."""
        return count_status(self.unsupported_ops)


def compare_row(trace: Trace, label: str, latency_ms: float | None = None, latency_noisy: bool = False) -> CompareRow:
    """One model's row: params, MACs, receptive field and memory, from its forward trace (its batch:
    the first dimension of its input)."""
    c = count_trace(trace, label, depth=0)
    h = headline(trace, receptive_fields(trace))
    f = h.field if h is not None else None
    return CompareRow(label, c.params, c.macs, int(max(extent(f)[1])) if f else None, trace.stored_params_bytes,
                      inference_peak(trace, DTYPE_BYTES[trace.float_dtype]).bytes, latency_ms, c.unsupported_ops,
                      batch=trace.input_shape[0] if trace.input_shape else 1, latency_noisy=latency_noisy,
                      dtype=trace.float_dtype)


def with_training(row: CompareRow, tt: TrainingTrace | None, optimizer: str, amp: str | None = None) -> CompareRow:
    """``row`` with the training step's MACs (forward + backward) and predicted peak under
    ``optimizer`` (``tt``: the step's trace; None when it fails, e.g. batch norm at batch 1)."""
    if tt is None:
        return replace(row, optimizer=optimizer)
    return replace(row, training_macs=count_training(tt, row.model, depth=0).training_macs,
                   training_peak_bytes=bill(tt, row.model, optimizer, amp).training_peak_bytes, optimizer=optimizer)
