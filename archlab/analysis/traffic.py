"""Memory traffic: the bytes each traced op reads and writes, and arithmetic intensity.

Each op is taken on its own, as if no cache held anything between ops: it **reads** every tensor
argument once (its inputs, weights and bias; a tensor passed twice is read once) and **writes**
every output, at the tensors' own dtype. This is the traffic a roofline model charges against
memory bandwidth; real caches make it an upper bound for ops whose operands fit in cache.

* Views, reshapes and allocations (``view``, ``permute``, ``expand``, ``empty``, ...) move
  nothing. Ops that fill new memory (``zeros``, ``ones``, ``full``, ``arange``, ``randn``)
  write their output and read nothing.
* An argument that is a broadcast view (``expand``: stride 0) is read at the size of the
  storage it views, not of its broadcast shape: a bias of shape (C, 1, 1) added to a
  (N, C, H, W) map reads C elements.
* Look-ups (``embedding``, ``index_select``, ``gather``, ``index``) read the rows they gather
  (their output's size) and the indices, not the whole table.
* An in-place op (``relu_``) reads and writes its tensor; ``copy_``, ``fill_`` and ``zero_``
  overwrite theirs without reading it (``copy_`` reads its source).

**Arithmetic intensity** = FLOPs / traffic bytes, FLOPs = 2 x MACs (the unit archlab uses
everywhere): an op without MACs (batch norm, activations, pooling) has intensity 0 in this
unit; its element-wise work is its ``other_ops``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from archlab.analysis.costs import FREE_KIND, OpCosts
from archlab.analysis.ops import FILLS, GATHERS, OVERWRITES, has
from archlab.trace.graph import Call, Op, Trace

def _itemsize(v: Any, float_bytes: int | None) -> int:
    """A value's bytes per element; ``float_bytes``: fp32 values taken at another float's size
    (a model traced in fp32, timed in fp16 or bf16)."""
    if float_bytes is not None and v.dtype == torch.float32:
        return float_bytes
    return v.itemsize


def value_bytes(trace: Trace, vid: int, float_bytes: int | None = None) -> int:
    """The bytes of one value as an operand: its elements, but no more than the storage it views
    (a broadcast view reads its storage once)."""
    v = trace.values[vid]
    numel = v.numel
    root = v
    seen = 0
    while root.alias_of is not None and seen < 64:  # the storage a chain of views and in-place results shares
        root = trace.values[root.alias_of]
        seen += 1
    return min(numel, root.numel) * _itemsize(v, float_bytes)


def op_traffic(op: Op, trace: Trace, kind: str, float_bytes: int | None = None) -> tuple[int, int]:
    """(bytes read, bytes written) of one op taken alone; ``kind`` is its cost kind; ``float_bytes``:
    fp32 tensors counted at this size instead (their other tensors, indices, at their own)."""
    if kind == FREE_KIND and not has(FILLS, op):
        return 0, 0
    written = sum(math.prod(trace.values[v].shape) * _itemsize(trace.values[v], float_bytes) for v in op.outputs)
    if kind == FREE_KIND:
        return 0, written
    inputs = list(dict.fromkeys(op.inputs))  # a tensor passed twice (x * x) is read once
    if has(OVERWRITES, op):
        inputs = [v for v in dict.fromkeys(op.inputs[1:]) if v != op.inputs[0]] if op.inputs else []
    if has(GATHERS, op) and inputs:  # the table is the first argument of each (embedding's weight)
        return written + sum(value_bytes(trace, v, float_bytes) for v in inputs[1:]), written
    return sum(value_bytes(trace, v, float_bytes) for v in inputs), written


@dataclass
class OpTraffic:
    """Every op's traffic in a trace, computed once; by module call as an O(1) range query."""

    read: list[int]
    written: list[int]
    _prefix_read: list[int]
    _prefix_written: list[int]

    @classmethod
    def of(cls, trace: Trace, costs: OpCosts | None = None, float_bytes: int | None = None) -> "OpTraffic":
        costs = costs or OpCosts(trace)
        read, written = [], []
        pr, pw = [0], [0]
        for op in trace.ops:
            r, w = op_traffic(op, trace, costs.kinds[op.index], float_bytes)
            read.append(r)
            written.append(w)
            pr.append(pr[-1] + r)
            pw.append(pw[-1] + w)
        return cls(read, written, pr, pw)

    @property
    def total_read(self) -> int:
        return self._prefix_read[-1]

    @property
    def total_written(self) -> int:
        return self._prefix_written[-1]

    def by_call(self, call: Call) -> tuple[int, int]:
        """(bytes read, bytes written) by the ops inside one module call, its children's included."""
        return (self._prefix_read[call.end_op] - self._prefix_read[call.first_op],
                self._prefix_written[call.end_op] - self._prefix_written[call.first_op])


def intensity(macs: int, traffic_bytes: int) -> float | None:
    """Arithmetic intensity, FLOPs (2 x MACs) per byte of traffic; None when nothing moves."""
    return 2 * macs / traffic_bytes if traffic_bytes else None


TRAFFIC_UNITS = {
    "read_bytes": "bytes the ops read (inputs, weights, bias), each op alone: no cache reuse between ops",
    "written_bytes": "bytes the ops write (their outputs), each op alone",
    "traffic_bytes": "read_bytes + written_bytes",
    "arithmetic_intensity": "flops / traffic_bytes (FLOPs = 2 x MACs per byte moved)",
}
