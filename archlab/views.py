"""Per-layer views of one trace: ``archlab trace`` and ``archlab rf``.

Both read the same trace as ``count``; the receptive field comes from the data-flow
analysis in ``archlab.analysis.receptive_field``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archlab.analysis.receptive_field import RFAnalysis, describe, headline, receptive_fields
from archlab.api import SCHEMA_VERSION, _checked_depth, trace_model


def _filter_shape(call) -> str:
    """The course's 'filter shape' column: kh x kw x Cin x Cout, or kh x kw x C dw."""
    a = call.attrs
    if "kernel_size" not in a or "in_channels" not in a:
        if "in_features" in a:
            return f"{a['in_features']}x{a['out_features']}"
        return ""
    k = a["kernel_size"] if isinstance(a["kernel_size"], tuple) else (a["kernel_size"],) * 2
    cin, cout, groups = a["in_channels"], a["out_channels"], a.get("groups", 1)
    ks = "x".join(map(str, k))
    if groups == cin and groups > 1 and cout == cin:
        return f"{ks}x{cin} dw"
    return f"{ks}x{cin // groups}x{cout}" + (f" g{groups}" if groups > 1 else "")


def _last_spatial_call(trace, rf: RFAnalysis):
    """The last layer (in data-flow order) whose output still has spatial extent (its field: use
    ``receptive_field.headline``, which also covers ops in the model's own forward)."""
    h = headline(trace, rf)
    return h.call if h is not None else None


def _op_macs(trace) -> list[int]:
    from archlab.analysis.counting import op_cost

    prefix = [0]
    for op in trace.ops:
        prefix.append(prefix[-1] + op_cost(op, trace)[1])
    return prefix


@dataclass(frozen=True)
class RFResult:
    model: str
    input_shape: tuple[int, ...]
    layers: tuple[dict[str, Any], ...]
    rf: dict[str, Any] | None
    misaligned: tuple[dict[str, Any], ...]
    unsupported_ops: dict[str, int]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "input_shape": list(self.input_shape),
            "units": "rf and start in input pixels; jump = input pixels between neighbouring units",
            "rf": self.rf["rf"] if self.rf else None,
            "rf_layer": self.rf,
            "misaligned": list(self.misaligned),
            "unsupported_ops": self.unsupported_ops,
            "notes": list(self.notes),
            "layers": list(self.layers),
        }


def _rf_row(trace, call, rf: RFAnalysis, input_hw) -> dict[str, Any] | None:
    if not call.outputs:
        return None
    f = rf.of(call.outputs[0])
    row = {"name": call.name, "type": call.type, "depth": call.depth,
           "output_shape": list(trace.values[call.outputs[0]].shape)}
    if f is None:
        row.update(rf=None, jump=None, start=None, exceeds_input=None)
    else:
        row.update(describe(f))
        row["exceeds_input"] = any(f.rf[a] > input_hw[a] for a in range(2))
    return row


def receptive_field(model_or_spec: Any, *, depth: int = 2, **kw) -> RFResult:
    """Receptive field, jump and first-unit centre per layer, on the data-flow graph."""
    _checked_depth(depth)
    trace, label = trace_model(model_or_spec, **kw)
    rf = receptive_fields(trace)
    input_hw = trace.input_shape[-2:]
    rows = tuple(r for c in trace.calls if 0 < c.depth <= depth
                 for r in [_rf_row(trace, c, rf, input_hw)] if r is not None)
    h = headline(trace, rf)
    top = None
    if h is not None:
        top = {"name": h.name, "type": h.call.type if h.call.depth > 0 else h.op, "depth": h.call.depth,
               "output_shape": list(trace.values[h.value].shape)}
        if h.field is None:
            top.update(rf=None, jump=None, start=None, exceeds_input=None, unknown_since=h.unknown_since)
        else:
            top.update(describe(h.field))
            top["exceeds_input"] = any(h.field.rf[a] > input_hw[a] for a in range(2))
    mis = tuple({"op": m.op, "module": m.module, "jumps": [list(j) for j in m.jumps],
                 "starts": [list(s) for s in m.starts]} for m in rf.misaligned)
    return RFResult(label, trace.input_shape, rows, top, mis, dict(rf.unsupported), tuple(rf.notes))


@dataclass(frozen=True)
class TraceResult:
    model: str
    input_shape: tuple[int, ...]
    layers: tuple[dict[str, Any], ...]
    unsupported_ops: tuple[tuple[str, int], ...] = ()  # ATen ops without a cost rule: not in the MACs
    params: int = 0  # the whole model's
    macs: int = 0  # the whole forward's

    def outside_submodules(self) -> tuple[int, int]:
        """Params and MACs no top-level module accounts for (the model's own parameters and
        functional calls in its own forward): the depth-1 rows plus these make the totals."""
        top = [r for r in self.layers if r["depth"] == 1]
        once = {r["name"]: r["params"] for r in top}  # a module called twice owns its parameters once
        return self.params - sum(once.values()), self.macs - sum(r["macs"] for r in top)

    @property
    def status(self) -> str:
        from archlab.analysis.counting import count_status

        return count_status(self.unsupported_ops)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "model": self.model, "input_shape": list(self.input_shape),
                "units": {"macs": "multiply-accumulates", "output_bytes": "bytes of the output activation"},
                "params": self.params, "macs": self.macs, "status": self.status,
                "unsupported_ops": [{"op": op, "count": n} for op, n in self.unsupported_ops],
                "layers": list(self.layers)}


def trace_layers(model_or_spec: Any, *, depth: int = 2, **kw) -> TraceResult:
    """One row per module call: shapes, geometry, params, MACs, receptive field, activation size."""
    _checked_depth(depth)
    trace, label = trace_model(model_or_spec, **kw)
    rf = receptive_fields(trace)
    prefix = _op_macs(trace)
    rows = []
    for call in trace.calls:
        if not 0 < call.depth <= depth:
            continue
        outs = [trace.values[v] for v in call.outputs]
        a = call.attrs
        f = rf.of(call.outputs[0]) if call.outputs else None
        rows.append({
            "name": call.name,
            "type": call.type,
            "depth": call.depth,
            "input_shapes": [list(trace.values[v].shape) for v in call.inputs],
            "output_shapes": [list(v.shape) for v in outs],
            "kernel": list(_pair(a["kernel_size"], call.type)) if "kernel_size" in a else None,
            "stride": list(_pair(a["stride"], call.type)) if "stride" in a else None,
            "padding": list(_pair(a["padding"], call.type)) if isinstance(a.get("padding"), (int, tuple)) else None,
            "dilation": list(_pair(a["dilation"], call.type)) if "dilation" in a else None,
            "groups": a.get("groups"),
            "filter": _filter_shape(call),
            "params": call.params,
            "macs": prefix[call.end_op] - prefix[call.first_op],
            "rf": describe(f)["rf"] if f else None,
            "output_elements": sum(v.numel for v in outs),
            "output_bytes": sum(v.numel * v.itemsize for v in outs),
        })
    from archlab.analysis.counting import unsupported

    return TraceResult(label, trace.input_shape, tuple(rows), tuple(sorted(unsupported(trace).items())),
                       params=trace.params, macs=prefix[-1])


def _pair(v, type_name: str = "") -> tuple:
    """A layer's size argument for each spatial dimension: 1 for the 1d layers, 3 for the 3d ones."""
    if isinstance(v, tuple):
        return v
    n = 1 if type_name.endswith("1d") else 3 if type_name.endswith("3d") else 2
    return (v,) * n

