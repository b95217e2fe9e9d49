"""The roofline prediction: each traced op's time on the calibrated machine, summed per layer and model.

Each op of the meta trace (``archlab.analysis.trace``), with its MACs and other operations
(``archlab.analysis.costs``) and the bytes it reads and writes (``archlab.analysis.traffic``),
costs its kind's **fixed cost** (what the kind takes at its smallest, calibrated) plus the
**slower of its compute time and its memory time** -- the roofline:

* a **convolution**: compute = FLOPs / the GFLOP/s its kind achieves (pointwise 1x1 at stride 1
  or 2, dense k x k, depthwise 3x3/5x5 at stride 1/2, grouped, the stem: 4 input channels or
  fewer), memory = traffic / the copy bandwidth;
* a **linear layer or matmul**: compute = FLOPs / the matmul peak, memory = traffic / the
  bandwidth a batch-1 linear layer achieves;
* **pooling**: its window elements / the pooling type's rate, or its traffic / the bandwidth;
* a **memory-bound op** (normalization, activation -- those built on exp, SiLU, sigmoid, GELU,
  apart --, element-wise, data movement, reduction, softmax): its traffic / the bandwidth its kind
  achieves;
* an op without a cost rule: its traffic at the element-wise bandwidth, plus the per-op overhead;
* a view or allocation: nothing (no data moves; its dispatch is not charged);
* and each module call the Python its ``__call__`` adds (``module calls``: not an op, so never
  in the per-op measurement, but in the measured forward).

The ``bound`` of an op says which term is largest: ``compute``, ``memory`` or ``overhead`` (the
fixed cost). Each op is taken alone: no overlap with the next, no cache reuse between ops.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

from archlab.analysis.costs import FREE_KIND, MAC_KINDS, OpCosts
from archlab.analysis.ops import EXP_ACTIVATIONS, ConvShape, has
from archlab.trace.graph import Op, Trace
from archlab.analysis.traffic import OpTraffic
from archlab.measure.calibrate import Machine

# cost kind -> the memory_gbs entry its bandwidth comes from
_MEMORY_RATE = {"normalization": "normalization", "activation": "activation", "elementwise": "elementwise",
                "bias": "elementwise", "data": "data", "upsampling": "data", "reduction": "reduction",
                "softmax": "softmax"}


def conv_kind(op: Op, trace: Trace) -> str:
    """The kind of a ``convolution`` op, from its recorded geometry: the calibrated kinds, and
    "depthwise 1x1" (a per-channel scale, LeNet-5's subsampling), charged as depthwise 3x3 s1.
    Depthwise kernels up to 3 are charged as 3x3, larger ones as 5x5 (``ConvShape``: a transposed
    per-channel convolution is grouped here)."""
    c = ConvShape.of_op(op, trace)
    if c.per_channel and not c.transposed:
        s = "s2" if c.strided else "s1"
        if c.pointwise:
            return "depthwise 1x1"
        return f"depthwise {'3x3' if max(c.kernel) <= 3 else '5x5'} {s}"
    if c.groups > 1:
        return "grouped"
    if c.cin <= 4:
        return "stem"
    if c.pointwise and not c.transposed:
        return "pointwise 1x1 s2" if c.strided else "pointwise 1x1"
    return "dense kxk"


CONV_RATE = {"depthwise 1x1": "depthwise 3x3 s1"}  # a kind charged at another calibrated kind's fixed cost and rate


def pool_kind(op: Op) -> str:
    """max, avg or adaptive: the pooling type whose calibrated rate an op is charged at."""
    name = op.name
    if "adaptive" in name:
        return "adaptive"
    return "max" if "max" in name else "avg"


def roofline_kind(op: Op, trace: Trace, cost_kind: str) -> str:
    """What the roofline calls an op, for the prediction and for the measured time by kind alike."""
    if cost_kind == FREE_KIND:
        return "views"
    if cost_kind == "conv" and op.name == "convolution":
        return conv_kind(op, trace)
    if cost_kind in MAC_KINDS:  # linear, matmul, bmm (and a convolution backward: as a matmul)
        return "linear/matmul"
    if cost_kind == "pooling":
        return f"{pool_kind(op)} pooling"
    if cost_kind == "activation" and has(EXP_ACTIVATIONS, op):
        return "activation (exp)"
    return cost_kind if cost_kind in _MEMORY_RATE else "other (no cost rule)"


@dataclass(frozen=True)
class OpPrediction:
    index: int
    kind: str  # what the roofline calls it: "depthwise 3x3 s2", "linear", "normalization", ...
    flops: int  # 2 x MACs
    traffic: int  # bytes read + written
    compute_s: float
    memory_s: float
    overhead_s: float
    seconds: float
    bound: str  # compute, memory or overhead


def predict_op(op: Op, trace: Trace, cost_kind: str, macs: int, other: int, traffic: int, m: Machine) -> OpPrediction:
    flops = 2 * macs
    bandwidth = m.bandwidth_gbs * 1e9
    kind = roofline_kind(op, trace, cost_kind)
    if kind == "views":  # no work; a fill (zeros, arange) writes its output
        return OpPrediction(op.index, kind, 0, traffic, 0.0, traffic / bandwidth, 0.0, traffic / bandwidth,
                            "memory" if traffic else "-")
    if cost_kind == "conv" and op.name == "convolution":
        rate = CONV_RATE.get(kind, kind)
        compute, memory = flops / (m.conv_gflops[rate] * 1e9), traffic / bandwidth
        fixed = m.fixed_us[rate] / 1e6
    elif kind == "linear/matmul":
        compute, memory = flops / (m.peak_gflops * 1e9), traffic / (m.memory_gbs["linear"] * 1e9)
        fixed = m.fixed_us["linear"] / 1e6
    elif cost_kind == "pooling":
        pool = pool_kind(op)
        kernel = op.attrs.get("kernel")
        # window elements (the calibrated unit): output elements x window where the window is known;
        # else (adaptive) the count's one per input element
        windows = sum(trace.values[v].numel for v in op.outputs[:1]) * math.prod(kernel) if kernel else other
        compute, memory = windows / (m.pool_rate[pool] * 1e9), traffic / bandwidth
        fixed = m.fixed_us[kind] / 1e6
    else:
        rate = kind if kind in m.memory_gbs else _MEMORY_RATE.get(cost_kind)
        compute, memory = 0.0, traffic / (m.memory_gbs[rate or "elementwise"] * 1e9)
        fixed = m.fixed_us[rate] / 1e6 if rate is not None else m.op_overhead_us / 1e6
    return OpPrediction(op.index, kind, flops, traffic, compute, memory, fixed, fixed + max(compute, memory),
                        _bound(compute, memory, fixed))


def _bound(compute: float, memory: float, overhead: float) -> str:
    top = max(compute, memory, overhead)
    return "compute" if top == compute else "memory" if top == memory else "overhead"


@dataclass(frozen=True)
class Prediction:
    """The roofline prediction of one forward: its ops, and the Python of its module calls."""

    ops: tuple[OpPrediction, ...]
    machine: Machine
    module_calls: int = 0  # each charged the machine's module overhead

    @property
    def modules_s(self) -> float:
        return self.module_calls * self.machine.module_overhead_us / 1e6

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.ops) + self.modules_s

    @property
    def ms(self) -> float:
        return self.seconds * 1e3

    @property
    def predicted_ms(self) -> float:
        """``ms`` under the name ``LatencyResult.predicted_ms`` gives the same number."""
        return self.ms

    def by_kind(self, measured: Sequence[float] | None = None) -> list[dict[str, Any]]:
        """Rows by roofline kind (the most predicted time first): ops, FLOPs, traffic, predicted
        time and share, how many of its ops each bound set; with ``measured`` (seconds per op, by
        op index) the measured time and share too."""
        rows: dict[str, dict[str, Any]] = {}
        total = self.seconds or 1.0
        measured_total = sum(measured) if measured else 0.0
        for p in self.ops:
            r = rows.setdefault(p.kind, {"kind": p.kind, "ops": 0, "flops": 0, "traffic_bytes": 0,
                                         "predicted_ms": 0.0, "bound": defaultdict(float),
                                         **({"measured_ms": 0.0} if measured else {})})
            r["ops"] += 1
            r["flops"] += p.flops
            r["traffic_bytes"] += p.traffic
            r["predicted_ms"] += p.seconds * 1e3
            r["bound"][p.bound] += p.seconds
            if measured:
                r["measured_ms"] += measured[p.index] * 1e3
        if self.module_calls:
            rows["module calls"] = {"kind": "module calls", "ops": self.module_calls, "flops": 0, "traffic_bytes": 0,
                                    "predicted_ms": self.modules_s * 1e3, "bound": {"overhead": self.modules_s},
                                    **({"measured_ms": 0.0} if measured else {})}
        out = []
        for r in rows.values():
            if r["kind"] == "views" and not r["traffic_bytes"] and not (measured and r["measured_ms"]):
                continue
            bound = r.pop("bound")
            r["bound"] = max(bound, key=bound.get) if bound else "-"
            r["predicted_share"] = r["predicted_ms"] / 1e3 / total
            r["arithmetic_intensity"] = r["flops"] / r["traffic_bytes"] if r["traffic_bytes"] else None
            if measured:
                r["measured_share"] = r["measured_ms"] / 1e3 / measured_total if measured_total else 0.0
            out.append(r)
        return sorted(out, key=lambda r: -max(r.get("measured_ms", 0.0), r["predicted_ms"]))


def predict_trace(trace: Trace, m: Machine, costs: OpCosts | None = None) -> Prediction:
    """Predict every op of ``trace`` on the machine ``m`` (its dtype: fp32 floats scaled)."""
    costs = costs or OpCosts(trace)
    # the trace's fp32 tensors at the timed dtype's size (indices and other dtypes at their own)
    float_bytes = {"fp32": 4, "fp16": 2, "bf16": 2}.get(m.key.get("dtype", "fp32"), 4)
    traffic = OpTraffic.of(trace, costs, float_bytes)
    ops = tuple(predict_op(op, trace, costs.kinds[op.index], costs.macs[op.index], costs.other[op.index],
                           traffic.read[op.index] + traffic.written[op.index], m)
                for op in trace.ops)
    return Prediction(ops, m, len(trace.calls))


def predict(model_or_spec: Any, *, device: str = "cpu", threads: int | None = None, dtype: str = "fp32",
            machine: Machine | None = None, **sizes: Any) -> Prediction:
    """Predict one forward's time from the meta trace and the (cached or new) calibration."""
    from archlab.trace.run import trace_model
    from archlab.measure.calibrate import machine as calibrated

    tr, _ = trace_model(model_or_spec, **sizes)
    return predict_trace(tr, machine or calibrated(device, threads, dtype))


FAR = 3.0  # a prediction over 3x, or under 1/3, of the measured median: the calibration, not the model, is off
# (the roofline is a model: within 2x on a quiet machine; 17.75x was a calibration made on a loaded one)


def prediction_warning(label: str, ratio: float | None) -> str | None:
    """The warning for a prediction ``ratio`` times the measured median, when it is far from 1."""
    if ratio is None or 1 / FAR <= ratio <= FAR:
        return None
    return (f"archlab: warning: {label}: the roofline prediction is {ratio:.2f} x the measured median (over "
            f"{FAR:g}x off): the calibration may be bad; measure it again with `archlab calibrate` on a quiet machine")
