"""``archlab trace``: one row per module call of one trace (the same trace as ``count``): shapes,
geometry, params, MACs, receptive field (from ``archlab.analysis.receptive_field``) and the
output activation's size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archlab.analysis.costs import OpCosts, count_status, unsupported_json
from archlab.analysis.ops import ConvShape
from archlab.analysis.count import outside_submodules, traffic_keys
from archlab.analysis.traffic import TRAFFIC_UNITS, OpTraffic
from archlab.analysis.receptive_field import RFAnalysis, describe, receptive_fields
from archlab.spec import check_depth
from archlab.trace.graph import Trace
from archlab.units import SCHEMA_VERSION, pair


def is_depthwise(attrs: dict[str, Any]) -> bool:
    """A depthwise convolution in the course's (MobileNet Table 1's) sense: one filter per input
    map, as many output maps as input maps (``ConvShape.depthwise``)."""
    c = ConvShape.of_module(attrs)
    return c is not None and c.depthwise


def filter_shape(attrs: dict[str, Any]) -> str:
    """The course's 'filter shape' of a layer from its module attributes (MobileNet's Table 1
    notation): kh x kw x Cin x Cout, kh x kw x C dw for a depthwise convolution, a ' g<groups>'
    suffix for another grouped one; in x out for a linear layer; '' for anything else."""
    c = ConvShape.of_module(attrs)
    if c is None:
        return f"{attrs['in_features']}x{attrs['out_features']}" if "in_features" in attrs else ""
    k = attrs["kernel_size"]
    ks = "x".join(map(str, k if isinstance(k, tuple) else (k, k)))
    if c.depthwise:
        return f"{ks}x{c.cin} dw"
    return f"{ks}x{c.cin // c.groups}x{c.cout}" + (f" g{c.groups}" if c.groups > 1 else "")


@dataclass(frozen=True)
class TraceResult:
    model: str
    input_shape: tuple[int, ...]
    layers: tuple[dict[str, Any], ...]
    unsupported_ops: tuple[tuple[str, int], ...] = ()  # ATen ops without a cost rule: not in the MACs
    params: int = 0  # the whole model's
    macs: int = 0  # the whole forward's
    # registered modules the eval forward did not call (name, type, depth, params), down to the depth
    # asked: see ``archlab.analysis.count.CountResult.not_called``
    not_called: tuple[dict[str, Any], ...] = ()

    def outside_submodules(self) -> tuple[int, int]:
        """Params and MACs no top-level module accounts for (the model's own parameters and
        functional calls in its own forward): the depth-1 rows plus these make the totals."""
        top = [(r["name"], r["params"], r["macs"]) for r in self.layers if r["depth"] == 1]
        top += [(m["name"], m["params"], 0) for m in self.not_called if m["depth"] == 1]
        return outside_submodules(self.params, self.macs, top)

    @property
    def status(self) -> str:
        return count_status(self.unsupported_ops)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "model": self.model, "input_shape": list(self.input_shape),
                "units": {"macs": "multiply-accumulates", "output_bytes": "bytes of the output activation",
                          **TRAFFIC_UNITS},
                "params": self.params, "macs": self.macs, "status": self.status,
                "unsupported_ops": unsupported_json(self.unsupported_ops),
                "layers": list(self.layers), "not_called": list(self.not_called)}


def layers_of(trace: Trace, label: str, depth: int = 3, costs: OpCosts | None = None,
              traffic: OpTraffic | None = None, rf: RFAnalysis | None = None) -> TraceResult:
    """One row per module call of ``trace``: shapes, geometry, params, MACs, receptive field,
    activation size (``costs``, ``traffic`` and ``rf``: the trace's, when already computed).

    ``depth`` defaults to 3 as ``archlab trace`` does, one deeper than ``count`` and
    ``receptive_field`` (2): the geometry is the layers' inside the blocks."""
    check_depth(depth)
    rf = rf or receptive_fields(trace)
    costs = costs or OpCosts(trace)
    traffic = traffic or OpTraffic.of(trace, costs)
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
            "filter": filter_shape(call.attrs),
            "params": call.params,
            "macs": costs.by_call(call),
            "rf": describe(f)["rf"] if f else None,
            "output_elements": sum(v.numel for v in outs),
            "output_bytes": sum(v.numel * v.itemsize for v in outs),
            **traffic_keys(costs.by_call(call), *traffic.by_call(call)),
        })
    not_called = tuple({"name": m.name, "type": m.type, "depth": m.depth, "params": m.params}
                       for m in trace.uncalled if 0 < m.depth <= depth)
    return TraceResult(label, trace.input_shape, tuple(rows), costs.unsupported, params=trace.params,
                       macs=costs.total_macs, not_called=not_called)


def _pair(v, type_name: str = "") -> tuple:
    """A layer's size argument for each spatial dimension: 1 for the 1d layers, 3 for the 3d ones."""
    return pair(v, 1 if type_name.endswith("1d") else 3 if type_name.endswith("3d") else 2)

