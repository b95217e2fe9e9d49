"""Receptive field, effective stride (jump) and first-unit centre, on the real data-flow graph.

For every traced value with spatial extent (the last two dimensions of a tensor of four or
more dimensions) the analysis keeps, per spatial axis:

* ``rf``: how many input pixels one unit sees;
* ``jump``: the distance in input pixels between neighbouring units (the effective stride);
* ``start``: the input coordinate of the centre of the first unit (input pixel i has centre i).

A layer with kernel k, stride s, padding p and dilation d (k_eff = d(k - 1) + 1) maps
(rf, jump, start) to (rf + (k_eff - 1)·jump, jump·s, start + ((k_eff - 1)/2 - p)·jump).
Transposed convolution and upsampling divide the jump. At a merge (a residual add, a
concatenation, a skip) the output sees the union of its inputs' fields (the largest of them
when their centres coincide), and inputs whose grids differ (jump or centre) are reported.

Ops are followed in the order of the data flow, not of execution: a branch's field depends
only on the values it reads. A tensor with no spatial extent left (global pooling, flatten)
ends the field; when such a tensor is broadcast back over a feature map (a squeeze-and-
excitation gate), the output is flagged ``global_context``: every unit then depends on the
whole input, although its local field is what the convolutions give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from archlab.analysis.trace import Trace


@dataclass(frozen=True)
class Field:
    rf: tuple[float, float]  # (H, W)
    jump: tuple[float, float]
    start: tuple[float, float]
    global_context: bool = False

    def bounds(self, axis: int) -> tuple[float, float]:
        half = (self.rf[axis] - 1) / 2
        return self.start[axis] - half, self.start[axis] + half


@dataclass(frozen=True)
class Misalignment:
    op: str
    module: str
    jumps: tuple[tuple[float, float], ...]
    starts: tuple[tuple[float, float], ...]


@dataclass
class RFAnalysis:
    fields: dict[int, Field]  # value id -> field
    misaligned: list[Misalignment] = field(default_factory=list)
    unsupported: dict[str, int] = field(default_factory=dict)  # ops whose spatial mapping is unknown

    def of(self, vid: int) -> Field | None:
        return self.fields.get(vid)


def _spatial(shape: tuple[int, ...]) -> tuple[int, int] | None:
    return (shape[-2], shape[-1]) if len(shape) >= 4 else None


def _geom(f: Field, kernel, stride, padding, dilation) -> Field:
    rf, jump, start = [], [], []
    for a in range(2):
        k_eff = dilation[a] * (kernel[a] - 1) + 1
        rf.append(f.rf[a] + (k_eff - 1) * f.jump[a])
        start.append(f.start[a] + ((k_eff - 1) / 2 - padding[a]) * f.jump[a])
        jump.append(f.jump[a] * stride[a])
    return Field(tuple(rf), tuple(jump), tuple(start), f.global_context)


def _transposed(f: Field, kernel, stride, padding, dilation) -> Field:
    rf, jump, start = [], [], []
    for a in range(2):
        k_eff = dilation[a] * (kernel[a] - 1) + 1
        # one output unit gathers from at most ceil(k_eff / s) input units
        rf.append(f.rf[a] + (math.ceil(k_eff / stride[a]) - 1) * f.jump[a])
        start.append(f.start[a] + (padding[a] - (k_eff - 1) / 2) / stride[a] * f.jump[a])
        jump.append(f.jump[a] / stride[a])
    return Field(tuple(rf), tuple(jump), tuple(start), f.global_context)


def _union(fields: list[Field]) -> Field:
    rf, start = [], []
    for a in range(2):
        lo = min(f.bounds(a)[0] for f in fields)
        hi = max(f.bounds(a)[1] for f in fields)
        rf.append(hi - lo + 1)
        start.append((lo + hi) / 2)
    jump = tuple(min(f.jump[a] for f in fields) for a in range(2))
    return Field(tuple(rf), jump, tuple(start), any(f.global_context for f in fields))


def _last2(seq) -> tuple:
    seq = tuple(seq)
    return seq[-2:] if len(seq) >= 2 else seq * 2


class _Walker:
    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.fields: dict[int, Field] = {}
        self.global_values: set[int] = set()  # values computed from the whole input (global pooling)
        self.result = RFAnalysis(self.fields)
        for vid in trace.inputs:
            if _spatial(trace.values[vid].shape):
                self.fields[vid] = Field((1, 1), (1, 1), (0.0, 0.0))

    def shape(self, vid: int) -> tuple[int, ...]:
        return self.trace.values[vid].shape

    def run(self) -> RFAnalysis:
        for op in self.trace.ops:
            self.visit(op)
        return self.result

    def visit(self, op) -> None:
        ins = [v for v in op.inputs if v in self.fields]
        is_global = any(v in self.global_values for v in op.inputs)
        if not op.outputs:
            return
        out = op.outputs[0]
        out_sp = _spatial(self.shape(out))
        if not ins:
            if is_global:
                self.global_values.update(op.outputs)
            return
        name = op.name
        first = self.fields[ins[0]]
        if name == "convolution":
            a = op.attrs
            fn = _transposed if a["transposed"] else _geom
            k, s = _last2(a["kernel"]), _last2(a["stride"])
            p, d = _last2(a["padding"]), _last2(a["dilation"])
            self._set(op, fn(first, k, s, p, d) if out_sp else None)
        elif name in ("max_pool2d_with_indices", "max_pool2d", "avg_pool2d", "avg_pool3d",
                      "max_pool3d_with_indices"):
            kernel, stride, padding, dilation = self._pool_args(op)
            self._set(op, _geom(first, kernel, stride, padding, dilation))
        elif name in ("_adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_avg_pool2d"):
            in_sp = _spatial(self.shape(ins[0]))
            if out_sp and out_sp == in_sp:
                self._set(op, first)
            elif out_sp and out_sp != (1, 1):
                # adaptive windows: about ceil(in/out) wide, floor(in/out) apart
                kernel = tuple(math.ceil(i / o) for i, o in zip(in_sp, out_sp))
                stride = tuple(i // o for i, o in zip(in_sp, out_sp))
                self._set(op, _geom(first, kernel, stride, (0, 0), (1, 1)))
            else:
                self._end_global(op)
        elif name.startswith("upsample") or name == "_upsample_nearest_exact2d":
            in_sp = _spatial(self.shape(ins[0]))
            scale = tuple(o / i for o, i in zip(out_sp, in_sp))
            extra = 1 if "linear" in name or "bicubic" in name else 0  # interpolation reads 2 (or 4) neighbours
            extra = 3 if "bicubic" in name else extra
            rf = tuple(first.rf[a] + extra * first.jump[a] for a in range(2))
            jump = tuple(first.jump[a] / scale[a] for a in range(2))
            start = tuple(first.start[a] + (0.5 / scale[a] - 0.5) * first.jump[a] for a in range(2))
            self._set(op, Field(rf, jump, start, first.global_context))
        elif name in ("mean", "sum", "amax", "amin", "max", "var_mean", "var", "std"):
            if out_sp and out_sp == _spatial(self.shape(ins[0])):
                self._merge(op, ins)
            else:
                self._end_global(op)
        elif name == "slice":
            self._slice(op, first)
        elif name == "constant_pad_nd":
            pad = list(op.attrs.get("pad", ()))
            left = (pad[2] if len(pad) > 2 else 0, pad[0] if pad else 0)  # (H, W)
            start = tuple(first.start[a] - left[a] * first.jump[a] for a in range(2))
            self._set(op, Field(first.rf, first.jump, start, first.global_context))
        else:
            self._generic(op, ins, out_sp, is_global)

    # helpers
    def _pool_args(self, op):
        a = op.attrs
        return (_last2(a["kernel"]), _last2(a["stride"]), _last2(a["padding"]), _last2(a.get("dilation", (1, 1))))

    def _set(self, op, f: Field | None) -> None:
        if f is None:
            return
        for vid in op.outputs:
            if _spatial(self.shape(vid)) is not None:
                self.fields[vid] = f

    def _end_global(self, op) -> None:
        self.global_values.update(op.outputs)

    def _slice(self, op, first: Field) -> None:
        in_shape = self.shape(op.inputs[0])
        dim, start, step = op.attrs.get("slice", (0, 0, 1))
        dim %= len(in_shape)
        axis = dim - (len(in_shape) - 2)
        if axis < 0:
            self._set(op, first)
            return
        starts, jumps = list(first.start), list(first.jump)
        starts[axis] += start * first.jump[axis]
        jumps[axis] *= step
        self._set(op, Field(first.rf, tuple(jumps), tuple(starts), first.global_context))

    def _merge(self, op, ins) -> None:
        fields = [self.fields[v] for v in ins]
        if len({(f.jump, f.start) for f in fields}) > 1:
            call = self.trace.calls[op.call].name if op.call >= 0 else ""
            self.result.misaligned.append(Misalignment(op.target, call, tuple(f.jump for f in fields),
                                                       tuple(f.start for f in fields)))
        self._set(op, _union(fields))

    def _generic(self, op, ins, out_sp, is_global) -> None:
        """Ops that keep the grid (element-wise, normalization, cat, views): the output sees the
        union of the inputs that share its grid; a broadcast global input adds global context."""
        if out_sp is None:
            return  # flatten, linear: no spatial extent left
        same = [v for v in ins if _spatial(self.shape(v)) == out_sp]
        if not same:
            self.result.unsupported[op.target] = self.result.unsupported.get(op.target, 0) + 1
            return
        self._merge(op, same)
        gate = is_global or any(_spatial(self.shape(v)) == (1, 1) and v in self.fields for v in op.inputs
                                if v not in same)
        if gate:
            for vid in op.outputs:
                f = self.fields.get(vid)
                if f is not None and not f.global_context:
                    self.fields[vid] = Field(f.rf, f.jump, f.start, True)


def receptive_fields(trace: Trace) -> RFAnalysis:
    return _Walker(trace).run()


def describe(f: Field) -> dict[str, Any]:
    def num(x):
        return int(x) if float(x).is_integer() else round(x, 4)

    return {
        "rf": num(max(f.rf)),
        "rf_hw": [num(f.rf[0]), num(f.rf[1])],
        "jump": num(max(f.jump)),
        "jump_hw": [num(f.jump[0]), num(f.jump[1])],
        "start": num(f.start[0]) if f.start[0] == f.start[1] else [num(f.start[0]), num(f.start[1])],
        "start_hw": [num(f.start[0]), num(f.start[1])],
        "global_context": f.global_context,
    }

