"""``archlab calibrate``: a model of the machine, from micro-benchmarks, for the roofline prediction.

What is measured (each the median of timed repetitions, after a warm-up), on the device, in the
dtype, with the thread count asked:

* **peak compute**: a large matrix multiply (GFLOP/s, FLOPs = 2 x MACs);
* **memory bandwidth**: a copy of a tensor far larger than the caches (bytes read + written per s);
* **per-op overhead**: a tiny element-wise op called from Python (what every op pays at least),
  and what calling an ``nn.Module`` adds to it (charged once per module call);
* **convolution floor**: a tiny convolution (LeNet-sized), the least any convolution takes;
* **convolutions by kind**, achieved GFLOP/s on a few typical layer shapes each: pointwise 1x1 at
  strides 1 and 2, dense k x k, depthwise 3x3 and 5x5 at strides 1 and 2, grouped;
* **memory-bound kinds**, achieved bytes per second (traffic as ``archlab.analysis.traffic``
  counts it): a linear layer at batch 1 (its weights), batch norm, activation, element-wise add,
  concatenation (data), reduction (mean), softmax;
* **pooling**, window elements per second: max, average, adaptive average.

Each benchmark cycles through enough independent copies of its tensors (16 MB and more) that its
operands are not in the per-core caches, as a model's weights and inputs mostly are not.

The result is cached per machine (CPU or GPU name), device, thread count, dtype, torch version
and the benchmark's own version, in archlab's cache folder (``archlab.cache``): a later
``latency --predict`` reuses it; ``archlab calibrate`` measures afresh and replaces it.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from archlab.errors import UserError
from archlab.units import SCHEMA_VERSION

VERSION = 2  # of the benchmarks below: a change invalidates cached calibrations
CACHE_FILE = "archlab-calibration.json"
TIME_PER_BENCHMARK = 0.12  # seconds of timed repetitions per micro-benchmark (a whole calibration: ~5-8 s)

# convolution kinds: (name, [(input shape N,C,H,W, out channels, kernel, stride, groups)])
CONV_BENCHMARKS: dict[str, list[tuple[tuple[int, int, int, int], int, int, int, int]]] = {
    "pointwise 1x1": [((1, 64, 56, 56), 256, 1, 1, 1), ((1, 512, 14, 14), 512, 1, 1, 1),
                      ((1, 160, 7, 7), 960, 1, 1, 1)],
    "pointwise 1x1 s2": [((1, 256, 56, 56), 512, 1, 2, 1), ((1, 1024, 14, 14), 512, 1, 2, 1)],
    "dense kxk": [((1, 64, 56, 56), 64, 3, 1, 1), ((1, 256, 14, 14), 256, 3, 1, 1),
                  ((1, 48, 28, 28), 64, 5, 1, 1)],
    "depthwise 3x3 s1": [((1, 144, 56, 56), 144, 3, 1, 144), ((1, 576, 14, 14), 576, 3, 1, 576)],
    "depthwise 3x3 s2": [((1, 96, 112, 112), 96, 3, 2, 96), ((1, 576, 14, 14), 576, 3, 2, 576)],
    "depthwise 5x5 s1": [((1, 240, 28, 28), 240, 5, 1, 240), ((1, 672, 14, 14), 672, 5, 1, 672)],
    "depthwise 5x5 s2": [((1, 144, 56, 56), 144, 5, 2, 144), ((1, 672, 14, 14), 672, 5, 2, 672)],
    "grouped": [((1, 128, 56, 56), 128, 3, 1, 32), ((1, 512, 14, 14), 512, 3, 1, 32)],
}
MEMORY_KINDS = ("linear", "normalization", "activation", "elementwise", "data", "reduction", "softmax")
POOL_KINDS = ("max", "avg", "adaptive")


@dataclass(frozen=True)
class Machine:
    """The calibrated machine: what ``predict`` charges each op."""

    key: dict[str, Any]  # machine, device, threads, dtype, torch, version
    peak_gflops: float  # large matmul, 1e9 FLOP/s (FLOPs = 2 x MACs)
    bandwidth_gbs: float  # large copy, 1e9 bytes read + written per second
    op_overhead_us: float  # a tiny element-wise op from Python
    module_overhead_us: float  # what calling an nn.Module adds to the op it runs (its __call__'s Python)
    conv_floor_us: float  # a tiny convolution
    conv_gflops: dict[str, float]  # achieved by convolution kind
    memory_gbs: dict[str, float]  # achieved bytes/s of the memory-bound kinds (traffic counted per op)
    pool_rate: dict[str, float]  # window elements per second (1e9), by pooling type
    seconds: float = 0.0  # how long the calibration took
    measured_at: str = ""
    cached: bool = False  # this result was read from the cache
    notes: tuple[str, ...] = field(default=())

    def efficiency(self, kind: str) -> float:
        """A convolution kind's achieved speed as a fraction of the matmul peak."""
        return self.conv_gflops[kind] / self.peak_gflops

    @property
    def ridge(self) -> float:
        """FLOPs per byte where the compute roof meets the bandwidth slope."""
        return self.peak_gflops / self.bandwidth_gbs

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = list(self.notes)
        d["ridge_flops_per_byte"] = self.ridge
        d["conv_efficiency"] = {k: self.efficiency(k) for k in self.conv_gflops}
        return {"schema_version": SCHEMA_VERSION, **d, "units": {
            "peak_gflops": "1e9 FLOP/s of a large matmul (FLOPs = 2 x MACs)",
            "bandwidth_gbs": "1e9 bytes/s of a large copy (read + written)",
            "op_overhead_us": "microseconds a tiny element-wise op takes, called from Python",
            "module_overhead_us": "microseconds calling an nn.Module adds to the op it runs (charged per module call)",
            "conv_floor_us": "microseconds a tiny convolution takes: the least any convolution is charged",
            "conv_gflops": "1e9 FLOP/s achieved by each convolution kind on typical layer shapes",
            "conv_efficiency": "conv_gflops / peak_gflops",
            "memory_gbs": "1e9 bytes/s achieved by each memory-bound kind (bytes as archlab counts traffic)",
            "pool_rate": "1e9 window elements per second",
            "ridge_flops_per_byte": "peak_gflops / bandwidth_gbs"}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Machine":
        names = {f for f in cls.__dataclass_fields__}
        kept = {k: v for k, v in d.items() if k in names}
        kept["notes"] = tuple(kept.get("notes", ()))
        return cls(**kept)


# --- the key and the cache ---------------------------------------------------------------


def machine_key(device: str, threads: int, dtype: str) -> dict[str, Any]:
    import torch

    from archlab.measure.latency import device_name

    return {"machine": device_name(device), "cpus": os.cpu_count() or 1, "device": device, "threads": threads,
            "dtype": dtype, "torch": torch.__version__, "version": VERSION}


def _cache_path() -> Path | None:
    from archlab.cache import directory

    folder = directory()
    return None if folder is None else folder / CACHE_FILE


def _read_cache() -> dict[str, Any]:
    path = _cache_path()
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _key_text(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True)


def cached(device: str = "cpu", threads: int = 1, dtype: str = "fp32") -> Machine | None:
    """The calibration cached for this machine, device, threads, dtype and torch, or None."""
    entry = _read_cache().get(_key_text(machine_key(device, threads, dtype)))
    if not isinstance(entry, dict):
        return None
    try:
        m = Machine.from_dict(entry)
    except (TypeError, ValueError):
        return None
    return Machine(**{**m.__dict__, "cached": True})


def _store(m: Machine) -> None:
    path = _cache_path()
    if path is None:
        return
    data = _read_cache()
    data[_key_text(m.key)] = {k: v for k, v in asdict(m).items() if k != "cached"}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written is not an error


def machine(device: str = "cpu", threads: int | None = None, dtype: str = "fp32", *, fresh: bool = False,
            progress: Callable[[float, float, str], Any] | None = None) -> Machine:
    """The machine model: the cached calibration for this setting, else (or with ``fresh``) a new one."""
    import torch

    from archlab.measure.latency import check_options

    check_options(device, dtype, threads, 1.0)
    n_threads = threads or torch.get_num_threads()
    if not fresh:
        hit = cached(device, n_threads, dtype)
        if hit is not None:
            return hit
    m = calibrate(device, n_threads, dtype, progress=progress)
    _store(m)
    return m


# --- the micro-benchmarks ----------------------------------------------------------------


def _timer(device: str) -> Callable[[], float]:
    from archlab.measure.devices import is_cuda, synchronize

    if is_cuda(device):
        def clock() -> float:
            synchronize(device)
            return time.perf_counter()
        return clock
    return time.perf_counter


COLD_BYTES = 16 << 20  # the copies a benchmark cycles through hold at least this much: past the per-core caches


def _cycled(build: Callable[[], Callable[[], Any]], nbytes: int, most: int = 32) -> Callable[[], Any]:
    """A call that runs the next of several independent copies of a benchmark (``build()`` makes
    one, on fresh tensors of ``nbytes``): each call finds its operands out of the per-core caches,
    as an op of a model finds its weights and, mostly, its input."""
    copies = [build() for _ in range(max(1, min(most, -(-COLD_BYTES // max(nbytes, 1)))))]
    state = {"i": 0}

    def call() -> Any:
        i = state["i"]
        state["i"] = (i + 1) % len(copies)
        return copies[i]()

    return call


def _median_time(fn: Callable[[], Any], clock: Callable[[], float], budget: float = TIME_PER_BENCHMARK,
                 inner: int = 1) -> float:
    """Seconds per call of ``fn``: the median over timed repetitions of ``inner`` calls each."""
    fn()
    fn()
    times = []
    start = clock()
    while len(times) < 5 or (clock() - start < budget and len(times) < 1000):
        t = clock()
        for _ in range(inner):
            fn()
        times.append((clock() - t) / inner)
    return statistics.median(times)


def calibrate(device: str = "cpu", threads: int = 1, dtype: str = "fp32",
              progress: Callable[[float, float, str], Any] | None = None) -> Machine:
    """Run the micro-benchmarks now (about 5-8 s on a CPU) and return the machine model."""
    import torch
    import torch.nn.functional as F

    from archlab.measure.devices import on_device
    from archlab.measure.latency import allocator_fixed

    tdtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    report = progress or (lambda done, total, what: None)
    steps = 4 + len(CONV_BENCHMARKS) + len(MEMORY_KINDS) + len(POOL_KINDS)
    done = 0

    def step(what: str) -> None:
        nonlocal done
        report(done, steps, what)
        done += 1

    clock = _timer(device)
    gen = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(device=device, dtype=tdtype)

    previous = torch.get_num_threads()
    began = time.perf_counter()
    try:
        torch.set_num_threads(threads)
        with on_device(device), torch.inference_mode(), allocator_fixed():
            step("peak compute (matmul)")
            n = 1024
            a, b = rand(n, n), rand(n, n)
            peak = 2 * n ** 3 / _median_time(lambda: torch.mm(a, b), clock) / 1e9
            del a, b

            step("memory bandwidth (copy)")
            big = 1 << 24  # 16 M elements: 64 MB in fp32, past the caches
            src, dst = rand(big), rand(big)
            bw = 2 * big * src.element_size() / _median_time(lambda: dst.copy_(src), clock) / 1e9
            del src, dst

            step("per-op overhead")
            tiny = rand(1)
            overhead = _median_time(lambda: torch.add(tiny, tiny), clock, inner=100) * 1e6

            relu = torch.nn.ReLU()
            module = _median_time(lambda: relu(tiny), clock, inner=100) * 1e6
            module_overhead = max(module - _median_time(lambda: torch.relu(tiny), clock, inner=100) * 1e6, 0.0)

            step("convolution floor")
            tx, tw = rand(1, 3, 14, 14), rand(1, 3, 5, 5)
            floor = _median_time(lambda: F.conv2d(tx, tw), clock, inner=10) * 1e6

            item = torch.empty((), dtype=tdtype).element_size()
            conv = {}
            for kind, shapes in CONV_BENCHMARKS.items():
                step(f"convolution: {kind}")
                flops = seconds = 0.0
                for (shape, cout, k, s, g) in shapes:
                    def build(shape=shape, cout=cout, k=k, s=s, g=g):
                        x, w = rand(*shape), rand(cout, shape[1] // g, k, k)
                        return lambda: F.conv2d(x, w, None, s, k // 2, 1, g)

                    nbytes = (math.prod(shape) + cout * (shape[1] // g) * k * k) * item
                    t = _median_time(_cycled(build, nbytes), clock)
                    ho = (shape[2] + 2 * (k // 2) - k) // s + 1
                    wo = (shape[3] + 2 * (k // 2) - k) // s + 1
                    flops += 2 * shape[0] * cout * ho * wo * (shape[1] // g) * k * k
                    seconds += t
                conv[kind] = flops / seconds / 1e9

            mem = {}
            for kind in MEMORY_KINDS:
                step(f"memory-bound: {kind}")
                _, traffic = _memory_benchmark(kind, rand, item)
                fn = _cycled(lambda kind=kind: _memory_benchmark(kind, rand, item)[0], traffic)
                mem[kind] = traffic / _median_time(fn, clock) / 1e9

            pool = {}
            for kind in POOL_KINDS:
                step(f"pooling: {kind}")
                _, windows, nbytes = _pool_benchmark(kind, rand, item)
                fn = _cycled(lambda kind=kind: _pool_benchmark(kind, rand, item)[0], nbytes)
                pool[kind] = windows / _median_time(fn, clock) / 1e9
    except RuntimeError as e:
        from archlab.measure.devices import run_failed

        raise run_failed("calibrating", device, dtype, e) from None
    finally:
        torch.set_num_threads(previous)
    report(steps, steps, "done")
    return Machine(key=machine_key(device, threads, dtype), peak_gflops=peak, bandwidth_gbs=bw,
                   op_overhead_us=overhead, module_overhead_us=module_overhead, conv_floor_us=floor,
                   conv_gflops=conv, memory_gbs=mem, pool_rate=pool,
                   seconds=time.perf_counter() - began,
                   measured_at=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime()))


def _memory_benchmark(kind: str, rand: Callable[..., Any], item: int) -> tuple[Callable[[], Any], int]:
    """A typical op of a memory-bound kind and the bytes it moves (as ``analysis.traffic`` counts)."""
    import torch
    import torch.nn.functional as F

    if kind == "linear":  # batch 1: every weight read once
        x, w, b = rand(1, 4096), rand(4096, 4096), rand(4096)
        return (lambda: F.linear(x, w, b)), (x.numel() + w.numel() + b.numel() + 4096) * item
    if kind == "normalization":
        x = rand(1, 64, 112, 112)
        mean, var, wt, bias = rand(64), rand(64).abs(), rand(64), rand(64)
        return (lambda: F.batch_norm(x, mean, var, wt, bias, False)), (2 * x.numel() + 4 * 64) * item
    if kind == "activation":  # in place, as the models' ReLU(inplace=True)
        x = rand(1, 64, 112, 112)
        return (lambda: torch.relu_(x)), 2 * x.numel() * item
    if kind == "elementwise":
        x, y = rand(1, 256, 56, 56), rand(1, 256, 56, 56)
        return (lambda: torch.add(x, y)), 3 * x.numel() * item
    if kind == "data":
        x, y = rand(1, 128, 56, 56), rand(1, 128, 56, 56)
        return (lambda: torch.cat([x, y], 1)), 4 * x.numel() * item
    if kind == "reduction":
        x = rand(1, 1280, 28, 28)
        return (lambda: x.mean((2, 3), keepdim=True)), (x.numel() + 1280) * item
    if kind == "softmax":
        x = rand(16, 1024, 197)
        return (lambda: torch.softmax(x, -1)), 2 * x.numel() * item
    raise ValueError(kind)


def _pool_benchmark(kind: str, rand: Callable[..., Any], item: int) -> tuple[Callable[[], Any], int, int]:
    """A typical pooling op, its window elements (archlab's ``pooling`` count) and its input's bytes."""
    import torch.nn.functional as F

    if kind == "max":  # ResNet's stem pooling
        x = rand(1, 64, 112, 112)
        return (lambda: F.max_pool2d(x, 3, 2, 1)), 64 * 56 * 56 * 9, x.numel() * item
    if kind == "avg":  # Inception's 3x3 stride-1 branch pooling
        x = rand(1, 192, 28, 28)
        return (lambda: F.avg_pool2d(x, 3, 1, 1)), 192 * 28 * 28 * 9, x.numel() * item
    if kind == "adaptive":  # global average pooling: one per input element
        x = rand(1, 2048, 7, 7)
        return (lambda: F.adaptive_avg_pool2d(x, 1)), x.numel(), x.numel() * item
    raise ValueError(kind)
