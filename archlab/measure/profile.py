"""Per layer: each module's own time under PyTorch's profiler beside its share of MACs, which
shows the layers whose time their operation count does not predict (depthwise convolutions,
normalization, activations). ``archlab.measure.latency.measure_all(per_layer=True)`` calls
``record_layers`` on the model it has just timed, then ``layers_from_events``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

from archlab.measure.devices import is_cuda
from archlab.user_code import user_code

RANGE_PREFIX = "archlab.module::"


@dataclass(frozen=True)
class LayerTime:
    """One module's own time: the operations it runs itself, its children's excluded."""

    name: str  # qualified module name ("" for the model itself)
    type: str
    kind: str  # type, with convolutions told apart: depthwise, pointwise 1x1, kxk, grouped
    calls: int  # calls per forward (the containers row: how many container calls)
    time_ms: float  # in one forward: the median over the profiled forwards
    time_share: float  # fraction of the profiled forward
    macs: int  # MACs of the operations the module runs itself
    mac_share: float  # fraction of the model's MACs

    @property
    def time_per_mac_share(self) -> float | None:
        """>1: the module takes more of the time than of the MACs."""
        return self.time_share / self.mac_share if self.mac_share else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "time_share_over_mac_share": self.time_per_mac_share}


def _conv_kind(type_name: str, attrs: dict[str, Any]) -> str:
    """Tell convolutions apart by geometry: their time per MAC differs widely."""
    if not {"kernel_size", "groups", "in_channels"} <= attrs.keys():
        return type_name
    k = attrs["kernel_size"]
    k = k if isinstance(k, tuple) else (k,)
    size = "x".join(map(str, k))
    groups, cin = attrs["groups"], attrs["in_channels"]
    if groups > 1 and groups == cin:
        return f"depthwise conv {size}"
    if groups > 1:
        return f"grouped conv {size}"
    if all(v == 1 for v in k):
        return "pointwise conv 1x1"
    return f"conv {size}"


def record_layers(model: Any, xs: tuple[Any, ...], device: str, runs: int) -> Any:
    """The profiler's events of ``runs`` forwards, each module's forward in a range of its own.
    The only part of the per-layer profile that runs the model (the user's code)."""
    from torch.profiler import ProfilerActivity, profile

    from archlab.analysis.trace import module_ranges
    from archlab.measure.devices import synchronize
    from archlab.measure.devices import quiet_stderr as _quiet_stderr

    cuda = is_cuda(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    kwargs = getattr(xs, "kwargs", {})  # keyword inputs and the forward's options (latency's ForwardInputs)
    with module_ranges(model, RANGE_PREFIX), user_code():
        model(*xs, **kwargs)  # one forward with the ranges before the profiler starts
        with _quiet_stderr(), profile(activities=activities, record_shapes=False) as prof:
            for _ in range(runs):
                model(*xs, **kwargs)
            synchronize(device)  # the current GPU is ``device`` (latency.measure_all enters it)
    return prof.events()


def layers_from_events(events: list[Any], tr: Any, device: str, runs: int) -> tuple[tuple[LayerTime, ...], float, int, str]:
    """The per-layer rows from ``record_layers``' events and the trace's MACs."""
    from archlab.analysis.costs import OpCosts

    cuda = is_cuda(device)
    own_us = _own_time_per_forward(events, cuda)
    total_us = sum(own_us.values())

    own_macs: dict[str, int] = {}
    has_ops: set[str] = set()
    op_macs = OpCosts(tr).macs
    for op in tr.ops:
        name = tr.calls[op.call].name if op.call >= 0 else ""
        own_macs[name] = own_macs.get(name, 0) + op_macs[op.index]
        has_ops.add(name)
    total_macs = sum(own_macs.values())
    parents = {tr.calls[c.parent].name for c in tr.calls if c.parent >= 0}
    first: dict[str, Any] = {}
    calls: dict[str, int] = {}
    for c in tr.calls:
        first.setdefault(c.name, c)
        calls[c.name] = calls.get(c.name, 0) + 1

    rows = []
    listed_us = 0.0
    listed_macs = 0
    for name, c in first.items():
        if name in parents and name not in has_ops:
            continue  # a container: its Python time goes into the last row
        us = own_us.get(name, 0.0)
        listed_us += us
        listed_macs += own_macs.get(name, 0)
        kind = _conv_kind(c.type, c.attrs) if name not in parents else f"{c.type} (own operations)"
        rows.append(LayerTime(name, c.type, kind, calls[name], us / 1e3, _share(us, total_us),
                              own_macs.get(name, 0), _share(own_macs.get(name, 0), total_macs)))
    rest_us = total_us - listed_us
    rest_macs = total_macs - listed_macs
    rest_calls = sum(calls[n] for n in first if n in parents and n not in has_ops)
    rows.append(LayerTime("(containers)", "-", "container overhead", rest_calls, rest_us / 1e3,
                          _share(rest_us, total_us), rest_macs, _share(rest_macs, total_macs)))
    method = ("CUDA kernel time per module (torch.profiler)" if cuda
              else "CPU time per module (torch.profiler), its overhead included: the container row "
                   "also holds the Python of the timing hooks")
    return tuple(rows), total_us / 1e3, runs, method


def _own_time_per_forward(events, cuda: bool) -> dict[str, float]:
    """Module name -> its own time in one forward, in µs: the median over the profiled forwards
    (a burst of another process's work on a shared machine hits one forward, not the median).

    Each operation's own time goes to the innermost module range around it: its self CPU time
    on CPU, the GPU kernels it launched on CUDA (a range's own kernel list is skipped: profilers
    have attached GPU-side copies of the range itself there). On CPU a range's own self time,
    the Python of that module's forward between its operations, is the module's too. The
    outermost range (the model's) tells the forwards apart."""
    import statistics

    import torch

    per_forward: dict[int, dict[str, float]] = {}
    cpu = torch.autograd.DeviceType.CPU
    for e in events:
        if e.device_type != cpu or e.is_async:
            continue
        if e.name.startswith(RANGE_PREFIX):
            owner, us = e, (0.0 if cuda else e.self_cpu_time_total)
        else:
            owner = e.cpu_parent
            while owner is not None and not owner.name.startswith(RANGE_PREFIX):
                owner = owner.cpu_parent
            if owner is None:
                continue  # outside the model (the final synchronize)
            us = sum(k.duration for k in e.kernels) if cuda else e.self_cpu_time_total
        top = owner
        while top.cpu_parent is not None:
            top = top.cpu_parent
        times = per_forward.setdefault(id(top), {})
        name = owner.name[len(RANGE_PREFIX):]
        times[name] = times.get(name, 0.0) + us
    names = {name for times in per_forward.values() for name in times}
    return {name: statistics.median(times.get(name, 0.0) for times in per_forward.values()) for name in names}


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
