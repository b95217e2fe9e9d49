"""Per layer: each module's own time, summed from the per-op timing (``archlab.measure.per_op``),
beside its share of MACs, which shows the layers whose time their operation count does not
predict (depthwise convolutions, normalization, activations).
``archlab.measure.latency.measure_all(per_layer=True)`` times the ops of the model it has just
timed, then calls ``layers_from_op_times``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

from archlab.analysis.ops import ConvShape



@dataclass(frozen=True)
class LayerTime:
    """One module's own time: the operations it runs itself, its children's excluded."""

    name: str  # qualified module name ("" for the model itself)
    type: str
    kind: str  # type, with convolutions told apart: depthwise, pointwise 1x1, kxk, grouped
    calls: int  # calls per forward
    time_ms: float  # in one forward: the sum of its ops' medians over the timed forwards
    time_share: float  # fraction of the ops' total
    macs: int  # MACs of the operations the module runs itself
    mac_share: float  # fraction of the model's MACs

    @property
    def time_per_mac_share(self) -> float | None:
        """>1: the module takes more of the time than of the MACs."""
        return self.time_share / self.mac_share if self.mac_share else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "time_share_over_mac_share": self.time_per_mac_share}


def timing_kind(type_name: str, attrs: dict[str, Any]) -> str:
    """Tell convolutions apart by geometry (``ConvShape``): their time per MAC differs widely."""
    c = ConvShape.of_module(attrs)
    if c is None or "groups" not in attrs:
        return type_name
    if c.per_channel:
        return f"depthwise conv {c.size}"
    if c.groups > 1:
        return f"grouped conv {c.size}"
    if c.pointwise:
        return "pointwise conv 1x1"
    return f"conv {c.size}"


def layers_from_op_times(tr: Any, op_times: Any) -> tuple[tuple[LayerTime, ...], float, int, str]:
    """The per-layer rows from the per-op times (``archlab.measure.per_op.OpTimes``: each op of the
    real forward with the module that ran it) and the trace's MACs: each module's own ops (its
    children's excluded) summed; "(model)" holds the ops the model's own forward runs outside
    every submodule. The real ops need not line up with the trace's one for one."""
    from archlab.analysis.costs import OpCosts

    own_us: dict[str, float] = {}
    for name, seconds in zip(op_times.modules, op_times.seconds):
        own_us[name] = own_us.get(name, 0.0) + seconds * 1e6
    own_macs: dict[str, int] = {}
    op_macs = OpCosts(tr).macs
    for op in tr.ops:
        name = tr.calls[op.call].name if op.call >= 0 else ""
        own_macs[name] = own_macs.get(name, 0) + op_macs[op.index]
    total_us = sum(own_us.values())
    total_macs = sum(own_macs.values())
    parents = {tr.calls[c.parent].name for c in tr.calls if c.parent >= 0}
    first: dict[str, Any] = {}
    calls: dict[str, int] = {}
    for c in tr.calls:
        first.setdefault(c.name, c)
        calls[c.name] = calls.get(c.name, 0) + 1
    rows = []
    for name, c in first.items():
        if name not in own_us and not own_macs.get(name):
            continue  # a container that runs no op of its own
        us = own_us.get(name, 0.0)
        kind = timing_kind(c.type, c.attrs) if name not in parents else f"{c.type} (own operations)"
        rows.append(LayerTime(name, c.type, kind, calls[name], us / 1e3, _share(us, total_us),
                              own_macs.get(name, 0), _share(own_macs.get(name, 0), total_macs)))
    return tuple(rows), total_us / 1e3, op_times.runs, op_times.method


def _share(part: float, total: float) -> float:
    return part / total if total else 0.0


def by_kind(layers: Sequence[LayerTime]) -> list[dict[str, Any]]:
    """Rows summed by kind, the kinds with the most time first."""
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        row = out.setdefault(layer.kind, {"kind": layer.kind, "calls": 0, "time_ms": 0.0, "time_share": 0.0,
                                          "macs": 0, "mac_share": 0.0})
        row["calls"] += layer.calls
        row["time_ms"] += layer.time_ms
        row["time_share"] += layer.time_share
        row["macs"] += layer.macs
        row["mac_share"] += layer.mac_share
    for row in out.values():
        row["time_share_over_mac_share"] = row["time_share"] / row["mac_share"] if row["mac_share"] else None
    return sorted(out.values(), key=lambda r: -r["time_share"])
