"""``archlab roofline``: the calibrated machine's roofline and each layer of a model on it.

The roofline is ``min(peak, bandwidth x intensity)``: the machine's compute roof (a large matmul)
and its bandwidth slope (a large copy), from ``archlab calibrate``. Each layer -- each op with
MACs (a convolution, a linear layer, a matmul) -- is a point at its arithmetic intensity (FLOPs
per byte it moves, ``archlab.analysis.traffic``) and at the GFLOP/s the roofline prediction
gives it (``archlab.measure.predict``); with ``measure`` also at the GFLOP/s it achieved, its
FLOPs over its time measured op by op (``archlab.measure.per_op``). The points under the
slope are memory-bound; those far under the roof at high intensity are slow for their kind
(depthwise convolutions: few FLOPs per weight, kernels that do not reach the peak).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archlab.errors import UserError
from archlab.units import SCHEMA_VERSION
from archlab.spec import InputSize


@dataclass(frozen=True)
class RooflinePoint:
    name: str  # the module the op ran in
    kind: str  # predict's kind: "depthwise 3x3 s1", "pointwise 1x1", ...
    flops: int
    traffic_bytes: int
    predicted_ms: float
    bound: str
    measured_ms: float | None = None

    @property
    def intensity(self) -> float | None:
        """FLOPs per byte moved; None when the op moves nothing (then it is not plotted)."""
        return self.flops / self.traffic_bytes if self.traffic_bytes else None

    @property
    def predicted_gflops(self) -> float:
        return self.flops / (self.predicted_ms / 1e3) / 1e9 if self.predicted_ms else 0.0

    @property
    def measured_gflops(self) -> float | None:
        if self.measured_ms is None or not self.measured_ms:
            return None
        return self.flops / (self.measured_ms / 1e3) / 1e9

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "flops": self.flops, "traffic_bytes": self.traffic_bytes,
                "arithmetic_intensity": self.intensity, "predicted_ms": self.predicted_ms,
                "predicted_gflops": self.predicted_gflops, "bound": self.bound, "measured_ms": self.measured_ms,
                "measured_gflops": self.measured_gflops}


@dataclass(frozen=True)
class RooflineResult:
    model: str
    input_shape: tuple[int, ...]
    machine: Any  # archlab.measure.calibrate.Machine
    points: tuple[RooflinePoint, ...]
    predicted_ms: float  # the whole forward's prediction (every op, not only the points)
    measured_ms: float | None = None  # the sum of every op's measured time
    method: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "model": self.model, "input_shape": list(self.input_shape),
                "machine": self.machine.to_dict(), "predicted_ms": self.predicted_ms,
                "measured_ms": self.measured_ms, "method": self.method,
                "units": {"arithmetic_intensity": "FLOPs (2 x MACs) per byte the op reads and writes",
                          "predicted_gflops": "flops / predicted time, 1e9 per second",
                          "measured_gflops": "flops / time measured op by op, 1e9 per second"},
                "points": [p.to_dict() for p in self.points]}


def roofline(model_or_spec: Any, *, device: str = "cpu", threads: int | None = None, dtype: str = "fp32",
             measure: bool = False, force: bool = False, input_size: InputSize = None, res: int | None = None,
             batch: int | None = None, alpha: float | None = None, options: dict[str, Any] | None = None,
             progress: Any = None, engine: str = "archlab", seed: int = 0) -> RooflineResult:
    """The roofline of the calibrated machine and a model's layers on it (predicted; with
    ``measure``, also measured op by op, which builds and runs the model). ``engine="real"``: the
    layers from one real forward's trace on the CPU (a forward that reads values), as ``count --engine real``
    (``seed``: its weights', inputs' and random draws' seed)."""
    from archlab.measure.calibrate import machine as calibrated
    from archlab.measure.setting import check_options
    from archlab.measure.predict import predict_trace

    check_options(device, dtype, threads, 1.0)
    if engine not in ("archlab", "real"):
        raise UserError(f"unknown engine '{engine}' (choose archlab or real)")
    if measure:
        from archlab.measure.latency import measure_all

        r = measure_all([model_or_spec], device=device, dtype=dtype, threads=threads, min_time=0.5, predict=True,
                        force=force, input_size=input_size, res=res, batch=batch, alpha=alpha, options=options,
                        progress=progress, engine=engine, seed=seed)[0]
        trace, prediction, label = r.trace, r.prediction, r.model
        measured = r.op_times.seconds
        method = r.op_times.method
    elif engine == "real":
        from archlab.measure.real import real_trace
        from archlab.spec import Inputs

        trace, label = real_trace(model_or_spec, Inputs.of(input_size), device="cpu", force=force, res=res,
                                  batch=batch, alpha=alpha, options=options, seed=seed)
        prediction = predict_trace(trace, calibrated(device, threads, dtype, progress=progress))
        measured, method = None, ""
    else:
        from archlab.trace.run import trace_model

        trace, label = trace_model(model_or_spec, input_size=input_size, res=res, batch=batch, alpha=alpha,
                                   options=options)
        prediction = predict_trace(trace, calibrated(device, threads, dtype, progress=progress))
        measured, method = None, ""
    points = []
    for p in prediction.ops:
        if not p.flops:
            continue
        op = trace.ops[p.index]
        name = trace.calls[op.call].name if op.call >= 0 else "(model)"
        points.append(RooflinePoint(name, p.kind, p.flops, p.traffic, p.seconds * 1e3, p.bound,
                                    None if measured is None else measured[p.index] * 1e3))
    return RooflineResult(label, tuple(trace.input_shape), prediction.machine, tuple(points), prediction.ms,
                          None if measured is None else sum(measured) * 1e3, method)
