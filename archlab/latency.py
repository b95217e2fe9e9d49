"""``archlab latency``: measured forward time beside the predicted cost (MACs).

One model: median latency, interquartile range, throughput and achieved GFLOP/s
(2 x MACs / median). Several: which ranks of MACs hold as ranks of time (Spearman), and
each model's latency and MACs as ratios to the first one. ``per_layer``: each module's own
time under PyTorch's profiler beside its share of MACs, which shows the layers whose time
their operation count does not predict (depthwise convolutions, normalization, activations).

Timing: real weights, eval mode, ``torch.inference_mode()``, a few warm-up forwards, then
``torch.utils.benchmark.Timer`` (which synchronizes CUDA around each block of runs) until
the minimum time has passed and at least four blocks were timed. MACs come from the meta
trace of the same model, so they are exact.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from archlab.api import SCHEMA_VERSION, count_trace, resolve, trace_model
from archlab.errors import UserError

DTYPES = ("fp32", "fp16", "bf16")
NOISY_IQR = 0.10  # a run whose IQR exceeds this fraction of the median is flagged noisy
WARMUP_RUNS = 3
MIN_BLOCKS = 4  # the fewest timed blocks: an IQR needs a few samples
PROFILE_RUNS = (3, 50)  # forwards under the profiler for per_layer: at least, at most
RANGE_PREFIX = "archlab.module::"

# Reference data, not ours: the paper's measurement, shown as ratios beside measured ones.
PAPER_CPU_SOURCE = ("Sandler et al. 2018 (MobileNetV2), Table 4: CPU time of one large core of a "
                    "Google Pixel 1 phone, TF-Lite, batch 1, 224x224")
PAPER_CPU_MS = {  # keyed by archlab's resolved label of the same network
    "mobilenet": 113.0,  # "MobileNetV1"
    "mobilenet_v2": 75.0,  # "MobileNetV2"
    "mobilenet_v2@alpha=1.4": 143.0,  # "MobileNetV2 (1.4)"
}


@dataclass(frozen=True)
class LayerTime:
    """One module's own time: the operations it runs itself, its children's excluded."""

    name: str  # qualified module name ("" for the model itself)
    type: str
    kind: str  # type, with convolutions told apart: depthwise, pointwise 1x1, kxk, grouped
    calls: int
    time_ms: float  # per forward, averaged over the profiled forwards
    time_share: float  # fraction of the profiled forward
    macs: int  # MACs of the operations the module runs itself
    mac_share: float  # fraction of the model's MACs

    @property
    def time_per_mac_share(self) -> float | None:
        """>1: the module takes more of the time than of the MACs."""
        return self.time_share / self.mac_share if self.mac_share else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "time_share_over_mac_share": self.time_per_mac_share}


@dataclass(frozen=True)
class LatencyResult:
    model: str
    input_shape: tuple[int, ...]
    device: str
    device_name: str
    dtype: str
    channels_last: bool
    threads: int
    median_ms: float
    iqr_ms: float
    samples: int  # timed blocks
    runs_per_sample: int  # forwards in each block
    min_time_s: float
    params: int
    macs: int  # whole batch
    layers: tuple[LayerTime, ...] | None = None
    profiled_forward_ms: float | None = None
    profiled_runs: int | None = None
    layer_time_method: str | None = None

    @property
    def batch(self) -> int:
        return self.input_shape[0]

    @property
    def throughput(self) -> float:
        """Images per second: batch / median."""
        return self.batch / (self.median_ms / 1e3)

    @property
    def achieved_gflops(self) -> float:
        """2 x MACs / median, in 1e9 per second."""
        return 2 * self.macs / (self.median_ms / 1e3) / 1e9

    @property
    def iqr_fraction(self) -> float:
        return self.iqr_ms / self.median_ms

    @property
    def noisy(self) -> bool:
        return self.iqr_fraction > NOISY_IQR

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "input_shape": list(self.input_shape),
            "device": self.device,
            "device_name": self.device_name,
            "dtype": self.dtype,
            "channels_last": self.channels_last,
            "threads": self.threads,
            "batch": self.batch,
            "median_ms": self.median_ms,
            "iqr_ms": self.iqr_ms,
            "noisy": self.noisy,
            "samples": self.samples,
            "runs_per_sample": self.runs_per_sample,
            "min_time_s": self.min_time_s,
            "throughput": self.throughput,
            "params": self.params,
            "macs": self.macs,
            "achieved_gflops": self.achieved_gflops,
            "units": {
                "median_ms": "milliseconds per forward of the whole batch (median over timed blocks)",
                "iqr_ms": "interquartile range of the per-forward times of the blocks, milliseconds",
                "throughput": "images per second = batch / median",
                "macs": "multiply-accumulates of conv, linear and matmul, whole batch (meta trace)",
                "achieved_gflops": "2 x macs / median, in 1e9 per second",
            },
            "method": "torch.utils.benchmark.Timer under torch.inference_mode(), eval mode, "
                      f"after {WARMUP_RUNS} warm-up forwards",
        }
        if self.layers is not None:
            d["profiled_forward_ms"] = self.profiled_forward_ms
            d["profiled_runs"] = self.profiled_runs
            d["layer_time_method"] = self.layer_time_method
            d["layers"] = [layer.to_dict() for layer in self.layers]
        return d


# --- measurement ----------------------------------------------------------------


def latency(
    model_or_spec: Any,
    *,
    device: str = "cpu",
    dtype: str = "fp32",
    channels_last: bool = False,
    threads: int | None = None,
    min_time: float = 1.0,
    per_layer: bool = False,
    input_size: tuple[int, ...] | None = None,
    res: int | None = None,
    batch: int | None = None,
    alpha: float | None = None,
    options: dict[str, Any] | None = None,
) -> LatencyResult:
    """Measure the forward latency of a registered model (name or spec) or an ``nn.Module``
    (then ``input_size`` = (C, H, W) is required; it is measured on a copy and left as it was).

    ``threads``: torch's intra-op threads for the measurement (default: torch's current
    setting), restored afterwards. ``min_time``: seconds of timed forwards, at least.
    """
    import torch

    check_options(device, dtype, threads, min_time)
    tr, label = trace_model(model_or_spec, input_size=input_size, res=res, batch=batch, alpha=alpha,
                            options=options)
    macs = count_trace(tr, label, depth=0).macs
    if isinstance(model_or_spec, torch.nn.Module):
        model = copy.deepcopy(model_or_spec)
    else:
        model = resolve(model_or_spec, res=res, input_size=input_size, batch=batch, alpha=alpha,
                        options=options).build()
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.eval().to(device=device, dtype=torch_dtype)
    if channels_last:
        model = model.to(memory_format=memory_format)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(tr.input_shape, generator=generator).to(device=device, dtype=torch_dtype)
    x = x.contiguous(memory_format=memory_format)

    previous_threads = torch.get_num_threads()
    n_threads = threads or previous_threads
    where = f"{label} on {device} at {dtype}"
    try:
        torch.set_num_threads(n_threads)
        with torch.inference_mode():
            _warm_up(model, x, where)
            measurement = _time(model, x, n_threads, min_time, label)
            layers = None
            if per_layer:
                runs = min(max(math.ceil(min_time / measurement.median), PROFILE_RUNS[0]), PROFILE_RUNS[1])
                layers = profile_layers(model, x, tr, device, runs)
    finally:
        torch.set_num_threads(previous_threads)
    return LatencyResult(
        model=label, input_shape=tuple(tr.input_shape), device=device, device_name=device_name(device),
        dtype=dtype, channels_last=channels_last, threads=n_threads,
        median_ms=measurement.median * 1e3, iqr_ms=measurement.iqr * 1e3, samples=len(measurement.raw_times),
        runs_per_sample=measurement.number_per_run, min_time_s=min_time, params=tr.params, macs=macs,
        layers=layers[0] if layers else None, profiled_forward_ms=layers[1] if layers else None,
        profiled_runs=layers[2] if layers else None, layer_time_method=layers[3] if layers else None,
    )


def check_options(device: str, dtype: str, threads: int | None, min_time: float) -> None:
    """The errors a measurement can meet before it starts, raised before any model is built."""
    from archlab.engines.fvcore_engine import check_device

    check_device(device)
    if dtype not in DTYPES:
        raise UserError(f"unknown --dtype '{dtype}' (choose {', '.join(DTYPES)})")
    if threads is not None and threads < 1:
        raise UserError(f"threads must be at least 1, got {threads}")
    if not (min_time > 0 and math.isfinite(min_time)):
        raise UserError(f"--min-time must be a positive number of seconds, got {min_time}")


def _forward_failed(where: str, e: Exception) -> UserError:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    hint = ""
    if "Half" in msg and "cpu" in where:
        hint = " (an operator has no fp16 kernel on CPU; try --dtype bf16 or --device cuda)"
    return UserError(f"the forward pass of {where} failed: {msg}{hint}")


def _warm_up(model, x, where: str) -> None:
    try:
        for _ in range(WARMUP_RUNS):
            model(x)
    except RuntimeError as e:
        raise _forward_failed(where, e) from None


def _time(model, x, threads: int, min_time: float, label: str):
    from torch.utils.benchmark import Timer

    timer = Timer("model(x)", globals={"model": model, "x": x}, num_threads=threads, label=label)
    # adaptive_autorange with an infinite threshold is blocked_autorange that also insists on
    # more than three blocks: it stops once min_time has passed and MIN_BLOCKS were timed.
    return timer.adaptive_autorange(threshold=math.inf, min_run_time=min_time, max_run_time=None)


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "cpu"


# --- per layer --------------------------------------------------------------------


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


def profile_layers(model, x, tr, device: str, runs: int) -> tuple[tuple[LayerTime, ...], float, int, str]:
    """Each module's own time under ``torch.profiler`` and its own MACs from the trace.

    Every module's forward is wrapped in a profiler range (``record_function``) by hooks that
    live for this call only; a module's own time is its range minus its children's ranges.
    On CUDA the time is the GPU kernels' time, on CPU the CPU time. Modules with neither
    operations of their own nor children listed (containers: only Python between their
    children) are summed in one row. Returns (rows, profiled ms per forward, runs, method).
    """
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from archlab.analysis.counting import op_cost
    from archlab.memory import _quiet_stderr

    cuda = device.startswith("cuda")
    names = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}
    open_ranges: list = []

    def enter(module, args):
        r = record_function(RANGE_PREFIX + names[id(module)])
        r.__enter__()
        open_ranges.append(r)

    def leave(module, args, output):
        if open_ranges:
            open_ranges.pop().__exit__(None, None, None)

    handles = []
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    try:
        for m in model.modules():
            handles.append(m.register_forward_pre_hook(enter))
            handles.append(m.register_forward_hook(leave, always_call=True))
        model(x)  # one forward with the hooks before the profiler starts
        with _quiet_stderr(), profile(activities=activities, record_shapes=False) as prof:
            for _ in range(runs):
                model(x)
            if cuda:
                torch.cuda.synchronize()
    finally:
        for h in handles:
            h.remove()
        while open_ranges:
            open_ranges.pop().__exit__(None, None, None)

    own_us: dict[str, float] = {}
    for e in prof.events():
        if not e.name.startswith(RANGE_PREFIX) or e.device_type != torch.autograd.DeviceType.CPU:
            continue
        inclusive = _device_time(e) if cuda else e.cpu_time_total
        name = e.name[len(RANGE_PREFIX):]
        own_us[name] = own_us.get(name, 0.0) + inclusive
        parent = e.cpu_parent
        while parent is not None and not parent.name.startswith(RANGE_PREFIX):
            parent = parent.cpu_parent
        if parent is not None:
            pname = parent.name[len(RANGE_PREFIX):]
            own_us[pname] = own_us.get(pname, 0.0) - inclusive
    total_us = sum(own_us.values())

    own_macs: dict[str, int] = {}
    has_ops: set[str] = set()
    for op in tr.ops:
        name = tr.calls[op.call].name if op.call >= 0 else ""
        own_macs[name] = own_macs.get(name, 0) + op_cost(op, tr)[1]
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
        rows.append(LayerTime(name, c.type, kind, calls[name], us / runs / 1e3, _share(us, total_us),
                              own_macs.get(name, 0), _share(own_macs.get(name, 0), total_macs)))
    rest_us = total_us - listed_us
    rest_macs = total_macs - listed_macs
    rows.append(LayerTime("(containers)", "-", "container overhead", 0, rest_us / runs / 1e3,
                          _share(rest_us, total_us), rest_macs, _share(rest_macs, total_macs)))
    method = ("CUDA kernel time per module (torch.profiler)" if cuda
              else "CPU time per module (torch.profiler), profiler overhead included")
    return tuple(rows), total_us / runs / 1e3, runs, method


def _device_time(event) -> float:
    value = getattr(event, "device_time_total", None)
    return value if value is not None else event.cuda_time_total  # torch < 2.4


def _share(part: float, total: float) -> float:
    return part / total if total else 0.0


def by_kind(layers: Sequence[LayerTime]) -> list[dict[str, Any]]:
    """Rows summed by kind, the kinds with the most time first."""
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        row = out.setdefault(layer.kind, {"kind": layer.kind, "modules": 0, "time_ms": 0.0, "time_share": 0.0,
                                          "macs": 0, "mac_share": 0.0})
        row["modules"] += 1
        row["time_ms"] += layer.time_ms
        row["time_share"] += layer.time_share
        row["macs"] += layer.macs
        row["mac_share"] += layer.mac_share
    for row in out.values():
        row["time_share_over_mac_share"] = row["time_share"] / row["mac_share"] if row["mac_share"] else None
    return sorted(out.values(), key=lambda r: -r["time_share"])


# --- several models -------------------------------------------------------------------


def _ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties given the average of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation: the Pearson correlation of the (tie-averaged) ranks.
    None for fewer than two pairs or when either side has no variance."""
    if len(x) != len(y):
        raise ValueError(f"spearman needs pairs, got {len(x)} and {len(y)} values")
    if len(x) < 2:
        return None
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


@dataclass(frozen=True)
class CompareRow:
    result: LatencyResult
    latency_ratio: float  # median / the first model's median
    macs_ratio: float | None  # MACs / the first model's MACs (None when the first has none)
    paper_ms: float | None  # the paper's measurement of this network, where it has one
    paper_ratio: float | None  # paper_ms / the paper's time of the first model


@dataclass(frozen=True)
class Comparison:
    """Several measurements: ratios to the first model given, rows sorted by latency."""

    baseline: str
    rows: tuple[CompareRow, ...]  # sorted by measured latency
    spearman: float | None  # between MACs and median latency
    paper_source: str | None  # set when paper ratios are shown

    def to_dicts(self, order: Sequence[LatencyResult]) -> list[dict[str, Any]]:
        """One JSON object per result, in ``order``, each with its comparison."""
        rank = {id(r.result): i + 1 for i, r in enumerate(self.rows)}
        by_id = {id(r.result): r for r in self.rows}
        out = []
        for res in order:
            row = by_id[id(res)]
            comp: dict[str, Any] = {
                "baseline": self.baseline,
                "latency_rank": rank[id(res)],
                "latency_ratio": row.latency_ratio,
                "macs_ratio": row.macs_ratio,
                "spearman_macs_latency": self.spearman,
                "models": len(self.rows),
            }
            if row.paper_ms is not None:
                comp["paper"] = {"cpu_ms": row.paper_ms, "ratio": row.paper_ratio, "source": self.paper_source,
                                 "note": "the paper's measurement, not archlab's"}
            out.append({**res.to_dict(), "comparison": comp})
        return out


def compare(results: Sequence[LatencyResult]) -> Comparison:
    """Ratios to the first result, Spearman's rho of MACs vs latency, and the MobileNetV2
    paper's CPU times as ratios where the first model and a row are both in its table
    (batch 1 only: the paper's setting)."""
    if not results:
        raise ValueError("compare needs at least one result")
    base = results[0]
    paper_base = PAPER_CPU_MS.get(base.model) if base.batch == 1 else None
    rows = []
    for r in results:
        paper = PAPER_CPU_MS.get(r.model) if paper_base is not None and r.batch == 1 else None
        rows.append(CompareRow(
            result=r,
            latency_ratio=r.median_ms / base.median_ms,
            macs_ratio=r.macs / base.macs if base.macs else None,
            paper_ms=paper,
            paper_ratio=paper / paper_base if paper is not None else None,
        ))
    shown = sum(row.paper_ms is not None for row in rows) >= 2
    if not shown:
        rows = [CompareRow(row.result, row.latency_ratio, row.macs_ratio, None, None) for row in rows]
    rho = spearman([r.macs for r in results], [r.median_ms for r in results])
    return Comparison(base.model, tuple(sorted(rows, key=lambda row: row.result.median_ms)), rho,
                      PAPER_CPU_SOURCE if shown else None)


def measure_all(specs: Sequence[Any], progress: Callable[[int, int, str], Any] | None = None,
                **kw: Any) -> list[LatencyResult]:
    """Measure several models with the same settings (``latency``'s keywords). Every spec is
    resolved first, so a typo in the last one fails before anything is timed;
    ``progress(done, total, label)`` is called before each measurement and once at the end."""
    check_options(kw.get("device", "cpu"), kw.get("dtype", "fp32"), kw.get("threads"), kw.get("min_time", 1.0))
    shape_kw = {k: kw.get(k) for k in ("res", "input_size", "batch", "alpha", "options")}
    labels = [resolve(s, **shape_kw).label if isinstance(s, str) else type(s).__name__ for s in specs]
    results = []
    for i, (spec, label) in enumerate(zip(specs, labels)):
        if progress is not None:
            progress(i, len(specs), label)
        results.append(latency(spec, **kw))
    if progress is not None:
        progress(len(specs), len(specs), "")
    return results
