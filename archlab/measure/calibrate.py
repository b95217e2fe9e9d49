"""``archlab calibrate``: a model of the machine, from micro-benchmarks, for the roofline prediction.

What is measured (each the median of timed repetitions, after a warm-up), on the device, in the
dtype, with the thread count asked:

* **peak compute**: a large matrix multiply (GFLOP/s, FLOPs = 2 x MACs);
* **memory bandwidth**: a copy of a tensor far larger than the caches (bytes read + written per s);
* **per-op overhead**: a tiny element-wise op called from Python (what every op pays at least),
  and what calling an ``nn.Module`` adds to it (charged once per module call);
* **convolutions by kind** (pointwise 1x1 at strides 1 and 2, dense k x k, depthwise 3x3 and 5x5
  at strides 1 and 2, grouped, and the stem: a dense convolution of 4 input channels or fewer,
  which vectorizes poorly), each timed on typical layer shapes of the course's networks, from
  112x112 maps with few channels to 7x7 maps with many, and on a small map (96 channels of
  15x15): time = **fixed cost** + FLOPs / **rate**, solved for the kind's
  fixed cost per call and its GFLOP/s beyond it;
* **memory-bound kinds**, the same in bytes (traffic as ``archlab.analysis.traffic`` counts it)
  on typical maps: a linear layer at batch 1 (its weights), batch norm, activation (ReLU; and
  SiLU for those built on exp), element-wise add, concatenation (data), reduction (mean),
  softmax;
* **pooling** (max, average, adaptive average): the same in window elements.

Each benchmark cycles through enough independent copies of its tensors (32 MB and more) that its
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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from archlab import status
from archlab.errors import UserError
from archlab.units import SCHEMA_VERSION

VERSION = 9  # of the benchmarks below: a change invalidates cached calibrations
CACHE_FILE = "archlab-calibration.json"
TIME_PER_BENCHMARK = 0.12  # seconds of timed repetitions per micro-benchmark (a whole calibration: 10-15 s)

# convolution kinds: (name, [(input shape N,C,H,W, out channels, kernel, stride, groups)]): shapes the
# course's networks have, early (large maps, few channels) to late (7x7 maps, many channels)
CONV_BENCHMARKS: dict[str, list[tuple[tuple[int, int, int, int], int, int, int, int]]] = {
    "pointwise 1x1": [((1, 16, 112, 112), 96, 1, 1, 1), ((1, 64, 56, 56), 256, 1, 1, 1),
                      ((1, 256, 28, 28), 128, 1, 1, 1), ((1, 512, 14, 14), 512, 1, 1, 1),
                      ((1, 160, 7, 7), 960, 1, 1, 1), ((1, 2048, 7, 7), 512, 1, 1, 1)],
    "pointwise 1x1 s2": [((1, 256, 56, 56), 512, 1, 2, 1), ((1, 512, 28, 28), 256, 1, 2, 1),
                         ((1, 1024, 14, 14), 512, 1, 2, 1)],
    "dense kxk": [((1, 64, 56, 56), 64, 3, 1, 1), ((1, 128, 28, 28), 128, 3, 1, 1), ((1, 256, 14, 14), 256, 3, 1, 1),
                  ((1, 512, 7, 7), 512, 3, 1, 1), ((1, 48, 28, 28), 64, 5, 1, 1), ((1, 64, 56, 56), 192, 3, 1, 1)],
    "stem": [((1, 3, 224, 224), 64, 7, 2, 1), ((1, 3, 224, 224), 32, 3, 2, 1), ((1, 3, 300, 300), 40, 3, 2, 1),
             ((1, 3, 224, 224), 64, 3, 1, 1)],
    "depthwise 3x3 s1": [((1, 32, 112, 112), 32, 3, 1, 32), ((1, 144, 56, 56), 144, 3, 1, 144),
                         ((1, 192, 28, 28), 192, 3, 1, 192), ((1, 576, 14, 14), 576, 3, 1, 576),
                         ((1, 960, 7, 7), 960, 3, 1, 960)],
    "depthwise 3x3 s2": [((1, 96, 112, 112), 96, 3, 2, 96), ((1, 144, 56, 56), 144, 3, 2, 144),
                         ((1, 384, 28, 28), 384, 3, 2, 384), ((1, 576, 14, 14), 576, 3, 2, 576)],
    "depthwise 5x5 s1": [((1, 240, 28, 28), 240, 5, 1, 240), ((1, 672, 14, 14), 672, 5, 1, 672),
                         ((1, 1152, 7, 7), 1152, 5, 1, 1152)],
    "depthwise 5x5 s2": [((1, 144, 56, 56), 144, 5, 2, 144), ((1, 240, 28, 28), 240, 5, 2, 240),
                         ((1, 672, 14, 14), 672, 5, 2, 672)],
    "grouped": [((1, 128, 56, 56), 128, 3, 1, 32), ((1, 256, 28, 28), 256, 3, 1, 32), ((1, 512, 14, 14), 512, 3, 1, 32),
                ((1, 1024, 7, 7), 1024, 3, 1, 32)],
}
# each kind on a small map, but with as many elements as a real layer's (PyTorch's CPU convolution
# takes another path below about 20,000 input elements): with the typical shapes, its fixed cost
CONV_SMALL = {
    "pointwise 1x1": ((1, 96, 15, 15), 24, 1, 1, 1), "pointwise 1x1 s2": ((1, 96, 16, 16), 24, 1, 2, 1),
    "dense kxk": ((1, 96, 15, 15), 8, 3, 1, 1), "stem": ((1, 3, 88, 88), 8, 3, 2, 1),
    "depthwise 3x3 s1": ((1, 96, 15, 15), 96, 3, 1, 96), "depthwise 3x3 s2": ((1, 96, 16, 16), 96, 3, 2, 96),
    "depthwise 5x5 s1": ((1, 96, 15, 15), 96, 5, 1, 96), "depthwise 5x5 s2": ((1, 96, 16, 16), 96, 5, 2, 96),
    "grouped": ((1, 96, 15, 15), 96, 3, 1, 32),
}
SMALL_MAP = (1, 96, 15, 15)
# memory-bound kinds: the maps (N,C,H,W) each is benchmarked on
MEMORY_MAPS = ((1, 32, 112, 112), (1, 144, 56, 56), (1, 256, 28, 28), (1, 576, 14, 14), (1, 1280, 7, 7))
MEMORY_KINDS = ("linear", "normalization", "activation", "activation (exp)", "elementwise", "data", "reduction",
                "softmax")
POOL_KINDS = ("max", "avg", "adaptive")


@dataclass(frozen=True)
class Machine:
    """The calibrated machine: what ``predict`` charges each op."""

    key: dict[str, Any]  # machine, device, threads, dtype, torch, version
    peak_gflops: float  # large matmul, 1e9 FLOP/s (FLOPs = 2 x MACs)
    bandwidth_gbs: float  # large copy, 1e9 bytes read + written per second
    op_overhead_us: float  # a tiny element-wise op from Python
    module_overhead_us: float  # what calling an nn.Module adds to the op it runs (its __call__'s Python)
    fixed_us: dict[str, float]  # each kind (conv kinds, memory-bound kinds, "max pooling", ...) at its smallest
    conv_gflops: dict[str, float]  # achieved by convolution kind, beyond its fixed cost
    memory_gbs: dict[str, float]  # achieved bytes/s of the memory-bound kinds beyond their fixed cost
    pool_rate: dict[str, float]  # window elements per second (1e9) beyond the fixed cost, by pooling type
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
            "fixed_us": "microseconds each kind costs per call beyond its work (from the kind on a small map "
                        "beside typical ones): charged once per op",
            "conv_gflops": "1e9 FLOP/s achieved by each convolution kind on typical layer shapes, beyond its fixed "
                           "cost",
            "conv_efficiency": "conv_gflops / peak_gflops",
            "memory_gbs": "1e9 bytes/s achieved by each memory-bound kind beyond its fixed cost (bytes as archlab "
                          "counts traffic)",
            "pool_rate": "1e9 window elements per second beyond the fixed cost",
            "ridge_flops_per_byte": "peak_gflops / bandwidth_gbs"}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Machine":
        names = {f for f in cls.__dataclass_fields__}
        kept = {k: v for k, v in d.items() if k in names}
        kept["notes"] = tuple(kept.get("notes", ()))
        return cls(**kept)


def mean_machine(machines: "list[Machine]") -> Machine:
    """The geometric mean, quantity by quantity, of several calibrations of one setting: taken
    before and after a measurement, they bracket the machine it ran on (a shared machine's speed
    drifts by tens of percent over minutes)."""
    if not machines:
        raise ValueError("no calibration to average")
    keys = {json.dumps(m.key, sort_keys=True) for m in machines}
    if len(keys) > 1:
        raise ValueError("calibrations of different settings cannot be averaged")

    def geo(values: list[float]) -> float:
        if any(v <= 0 for v in values):
            return statistics.fmean(values)
        return math.exp(sum(math.log(v) for v in values) / len(values))

    def each(name: str) -> Any:
        first = getattr(machines[0], name)
        if isinstance(first, dict):
            return {k: geo([getattr(m, name)[k] for m in machines]) for k in first}
        return geo([getattr(m, name) for m in machines])

    numbers = ("peak_gflops", "bandwidth_gbs", "op_overhead_us", "module_overhead_us", "fixed_us", "conv_gflops",
               "memory_gbs", "pool_rate")
    return Machine(key=machines[0].key, **{n: each(n) for n in numbers}, seconds=sum(m.seconds for m in machines),
                   measured_at=" and ".join(m.measured_at for m in machines),
                   notes=(f"the geometric mean of {len(machines)} calibrations",))


# --- the key and the cache ---------------------------------------------------------------


def machine_key(device: str, threads: int, dtype: str) -> dict[str, Any]:
    import torch

    from archlab.measure.devices import is_cpu, is_cuda

    if is_cpu(device):
        device = "cpu"  # cpu:0 is the CPU
    elif is_cuda(device) and ":" not in device and torch.cuda.is_available():
        device = f"cuda:{torch.cuda.current_device()}"  # the current GPU, by its index
    from archlab.measure.setting import device_name

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
    return Machine(**{**m.__dict__, "cached": True}) if _complete(m) else None


def _complete(m: Machine) -> bool:
    """Whether a cached machine has every quantity this version predicts with, each a finite
    number, rates above 0 (an edited or damaged cache entry is measured again, not trusted)."""
    def numbers(values: Any, positive: bool) -> bool:
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   and (v > 0 if positive else v >= 0) for v in values)

    try:
        return (set(m.conv_gflops) == set(CONV_BENCHMARKS) and set(m.memory_gbs) == set(MEMORY_KINDS)
                and set(m.pool_rate) == set(POOL_KINDS)
                and set(m.fixed_us) == {*CONV_BENCHMARKS, *MEMORY_KINDS, *(f"{k} pooling" for k in POOL_KINDS)}
                and numbers((m.peak_gflops, m.bandwidth_gbs, *m.conv_gflops.values(), *m.memory_gbs.values(),
                             *m.pool_rate.values()), True)
                and numbers((m.op_overhead_us, m.module_overhead_us, *m.fixed_us.values()), False))
    except (TypeError, AttributeError):
        return False


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

    from archlab.measure.setting import check_options

    check_options(device, dtype, threads, 1.0)
    n_threads = threads or torch.get_num_threads()
    if not fresh:
        hit = cached(device, n_threads, dtype)
        if hit is not None:
            return hit
    before = cpu_seconds()
    m, reason = _checked(device, n_threads, dtype, progress)
    if reason is not None:  # measured once more: a burst of other work may have passed
        before = cpu_seconds()
        m, reason = _checked(device, n_threads, dtype, progress)
    if reason is not None:  # refused, and not cached: a later prediction would use it without a word
        raise UserError(f"calibration refused and not cached, measured twice: {reason}; the machine was busy "
                        f"or noisy: calibrate on a quieter machine, or with --threads 1")
    busy = busy_note(before, cpu_seconds(), n_threads)
    if busy is not None:  # plausible, so kept, but never silently: the note travels with it, cached too
        m = replace(m, notes=(*m.notes, busy))
    _store(m)
    return m


BUSY_MARGIN = 0.5  # CPUs: other processes' use beyond the CPUs a calibration leaves free, before it is noted
BUSY_MIN_SECONDS = 1.0  # a shorter calibration (a test's stand-in benchmarks) says nothing about the load


def cpu_seconds() -> tuple[float, float, float] | None:
    """(wall clock, CPU seconds busy on every CPU of the machine, this process's CPU seconds), from
    Linux's /proc/stat; None where it cannot be read."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 8:
        return None
    user, nice, system, idle, iowait, irq, softirq = (int(x) for x in fields[1:8])
    steal = int(fields[8]) if len(fields) > 8 else 0
    own = os.times()
    return time.monotonic(), (user + nice + system + irq + softirq + steal) / ticks, own.user + own.system


def busy_note(before: Any, after: Any, threads: int) -> str | None:
    """A note when, over a calibration, other processes kept more CPUs busy than it left free
    (``threads`` of ``os.cpu_count()``) by ``BUSY_MARGIN``: they competed with its benchmarks, whose
    rates may then be low. None on a quiet machine, or where the load cannot be read."""
    if before is None or after is None:
        return None
    wall = after[0] - before[0]
    if wall < BUSY_MIN_SECONDS:
        return None
    others = max((after[1] - before[1]) - (after[2] - before[2]), 0.0) / wall  # CPUs' worth
    free = max((os.cpu_count() or 1) - threads, 0)
    if others <= free + BUSY_MARGIN:
        return None
    return (f"measured while other processes kept {others:.1f} CPUs busy, beyond the {free} this calibration "
            f"left free: its rates may be low; calibrate again on a quieter machine")


def _checked(device: str, threads: int, dtype: str, progress: Any) -> tuple[Machine, str | None]:
    """A calibration, and why it cannot be trusted (implausible values, or too many unstable
    micro-benchmarks), or None."""
    UNSTABLE.clear()
    TIMED[0] = 0
    status.doing(f"calibrating {device} ({threads} thread(s), {dtype}): timing its micro-benchmarks")
    m = calibrate(device, threads, dtype, progress=progress)
    reason = None  # unstable first: it is the cause of the implausible values a loaded machine gives
    if len(UNSTABLE) > MAX_UNSTABLE * max(TIMED[0], 1):
        reason = (f"{len(UNSTABLE)} of {TIMED[0]} micro-benchmarks stayed unstable (IQR up to "
                  f"{100 * max(UNSTABLE):.0f}% of the median, over {100 * UNSTABLE_IQR:.0f}%, each timed twice)")
    reason = reason or implausible(m)
    return m, reason


# The checks of a calibration (issue 24: a loaded 2-core machine gave fixed costs of 5-32 ms an op,
# 0.2 GB/s for activations beside a 19.3 GB/s copy, a dense efficiency of 1.19; predictions then
# were 18x the measured time). Each threshold is far from any value a quiet machine gives:
MAX_EFFICIENCY = 1.1  # a convolution's rate over the matmul peak: the peak is the ceiling (10% for noise)
MAX_FIXED_US = 1000.0  # a kind's fixed cost an op: µs on a quiet CPU (launch, packing); 1 ms is none's
MIN_MEMORY_SHARE = 1 / 50  # a memory-bound kind's rate over the copy bandwidth: a few times lower at most


def implausible(m: Machine) -> str | None:
    """Why a calibration cannot be right (the first reason found), or None."""
    for kind, rate in m.conv_gflops.items():
        if rate > MAX_EFFICIENCY * m.peak_gflops:
            return (f"{kind} convolution at {rate / m.peak_gflops:.2f} of the matmul peak (efficiency over "
                    f"{MAX_EFFICIENCY})")
    for kind, us in m.fixed_us.items():
        if us > MAX_FIXED_US:
            return f"a fixed cost of {us / 1e3:,.2f} ms an op for {kind} (over {MAX_FIXED_US / 1e3:g} ms)"
    for kind, gbs in m.memory_gbs.items():
        if gbs < MIN_MEMORY_SHARE * m.bandwidth_gbs:
            return (f"{kind} at {gbs:.3g} GB/s, under 1/{round(1 / MIN_MEMORY_SHARE)} of the copy bandwidth "
                    f"{m.bandwidth_gbs:.3g} GB/s")
    return None


# --- the micro-benchmarks ----------------------------------------------------------------


def _timer(device: str) -> Callable[[], float]:
    from archlab.measure.devices import is_cuda, synchronize

    if is_cuda(device):
        def clock() -> float:
            synchronize(device)
            return time.perf_counter()
        return clock
    return time.perf_counter


MATMUL_N = 1024  # the peak: an N x N x N matmul
COPY_ELEMENTS = 1 << 24  # the bandwidth: a copy of 16 M elements (64 MB in fp32), past the caches
COLD_BYTES = 32 << 20  # the copies a benchmark cycles through hold at least this much: past the per-core caches
POOL_ELEMENTS = 24 << 20  # the random numbers the copies are cut from (96 MB in fp32): drawn once


def _cycled(build: Callable[[], Callable[[], Any]], nbytes: int, most: int = 64) -> Callable[[], Any]:
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


def _fixed_and_rate(small: tuple[Callable[[], Any], int], cases: list[tuple[Callable[[], Any], int]],
                    clock: Callable[[], float]) -> tuple[float, float]:
    """(fixed cost in µs, work per second in 1e9) of a kind: ``small`` is the kind on a small map
    (a call, its work), ``cases`` the typical shapes. time = fixed + work /
    rate, solved for both: the fixed cost is the small call's time less its work at the rate, the
    rate the cases' work over their time less a fixed cost each (two passes)."""
    t_small = _median_time(small[0], clock, inner=10)
    times = [(float(amount), _median_time(fn, clock)) for fn, amount in cases]
    work, seconds = sum(w for w, _ in times), sum(t for _, t in times)
    rate, fixed = work / seconds, 0.0
    for _ in range(2):
        fixed = max(t_small - small[1] / rate, 0.0)
        rate = work / max(seconds - len(times) * fixed, seconds / 10)
    return fixed * 1e6, rate / 1e9


def _median_time(fn: Callable[[], Any], clock: Callable[[], float], budget: float = TIME_PER_BENCHMARK,
                 inner: int = 1) -> float:
    """Seconds per call of ``fn``: the median over timed repetitions of ``inner`` calls each."""
    TIMED[0] += 1
    fn()
    fn()
    for attempt in range(2):  # repeated once when unstable; still unstable: flagged (see ``implausible``)
        times = []
        start = clock()
        while len(times) < 5 or (clock() - start < budget and len(times) < 1000):
            t = clock()
            for _ in range(inner):
                fn()
            times.append((clock() - t) / inner)
        median = statistics.median(times)
        q1, _, q3 = statistics.quantiles(times, n=4)
        if median <= 0 or (q3 - q1) / median <= UNSTABLE_IQR:
            return median
    UNSTABLE.append((q3 - q1) / median)
    return median


UNSTABLE_IQR = 0.5  # a micro-benchmark whose IQR is over half its median (twice) is unstable: others' work
TIMED = [0]  # the micro-benchmarks timed by the calibration running
UNSTABLE: list[float] = []  # the IQR fractions of the unstable micro-benchmarks of the calibration running
MAX_UNSTABLE = 0.25  # more than a quarter of a calibration's micro-benchmarks unstable: refused (a loaded machine)


def calibrate(device: str = "cpu", threads: int = 1, dtype: str = "fp32",
              progress: Callable[[float, float, str], Any] | None = None) -> Machine:
    """Run the micro-benchmarks now (10-15 s on a CPU) and return the machine model."""
    import torch
    import torch.nn.functional as F

    from archlab.measure.devices import on_device
    from archlab.measure.setting import allocator_fixed

    tdtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    report = progress or (lambda done, total, what: None)
    steps = 3 + len(CONV_BENCHMARKS) + len(MEMORY_KINDS) + len(POOL_KINDS)
    done = 0

    def step(what: str) -> None:
        nonlocal done
        report(done, steps, what)
        done += 1

    clock = _timer(device)
    gen = torch.Generator().manual_seed(0)
    numbers = torch.randn(POOL_ELEMENTS, generator=gen).to(device=device, dtype=tdtype)
    cursor = [0]

    def rand(*shape: int) -> torch.Tensor:
        """Random numbers of ``shape``, the next ones of the pool (each call a region of its own
        until the pool wraps around): copies are cut, not drawn, so a calibration stays quick."""
        n = math.prod(shape)
        if n > POOL_ELEMENTS // 2:
            return torch.randn(*shape, generator=gen).to(device=device, dtype=tdtype)
        start = cursor[0] if cursor[0] + n <= POOL_ELEMENTS else 0
        cursor[0] = start + n + 16  # a gap: no two copies share a cache line
        return numbers[start:start + n].view(shape)

    previous = torch.get_num_threads()
    began = time.perf_counter()
    try:
        torch.set_num_threads(threads)
        with on_device(device), torch.inference_mode(), allocator_fixed():
            step("peak compute (matmul)")
            n = MATMUL_N
            a, b = rand(n, n), rand(n, n)
            peak = 2 * n ** 3 / _median_time(lambda: torch.mm(a, b), clock) / 1e9

            step("memory bandwidth (copy)")
            big = COPY_ELEMENTS
            src, dst = rand(big), rand(big)
            bw = 2 * big * src.element_size() / _median_time(lambda: dst.copy_(src), clock) / 1e9
            src = dst = None  # 128 MB given back before the next benchmarks

            step("per-op overhead")
            tiny = rand(1)
            overhead = _median_time(lambda: torch.add(tiny, tiny), clock, inner=100) * 1e6

            relu = torch.nn.ReLU()
            module = _median_time(lambda: relu(tiny), clock, inner=100) * 1e6
            module_overhead = max(module - _median_time(lambda: torch.relu(tiny), clock, inner=100) * 1e6, 0.0)

            item = torch.empty((), dtype=tdtype).element_size()
            fixed: dict[str, float] = {}
            conv = {}
            for kind, shapes in CONV_BENCHMARKS.items():
                step(f"convolution: {kind}")

                def conv_case(case: tuple) -> tuple[Callable[[], Any], int]:
                    shape, cout, k, s, g = case

                    def build():
                        x, w = rand(*shape), rand(cout, shape[1] // g, k, k)
                        return lambda: F.conv2d(x, w, None, s, k // 2, 1, g)

                    nbytes = (math.prod(shape) + cout * (shape[1] // g) * k * k) * item
                    ho = (shape[2] + 2 * (k // 2) - k) // s + 1
                    wo = (shape[3] + 2 * (k // 2) - k) // s + 1
                    return _cycled(build, nbytes), 2 * shape[0] * cout * ho * wo * (shape[1] // g) * k * k

                fixed[kind], conv[kind] = _fixed_and_rate(conv_case(CONV_SMALL[kind]), [conv_case(c) for c in shapes],
                                                          clock)

            mem = {}
            for kind in MEMORY_KINDS:
                step(f"memory-bound: {kind}")

                def mem_case(shape: tuple, kind: str = kind) -> tuple[Callable[[], Any], int]:
                    _, traffic = _memory_benchmark(kind, rand, item, shape)
                    return _cycled(lambda: _memory_benchmark(kind, rand, item, shape)[0], traffic), traffic

                shapes = ((4096, 4096), (1280, 1000), (2048, 1000), (512, 10)) if kind == "linear" else MEMORY_MAPS
                small = mem_case((96, 16) if kind == "linear" else SMALL_MAP)
                fixed[kind], mem[kind] = _fixed_and_rate(small, [mem_case(shape) for shape in shapes], clock)

            pool = {}
            for kind in POOL_KINDS:
                step(f"pooling: {kind}")

                def pool_case(case: tuple, kind: str = kind) -> tuple[Callable[[], Any], int]:
                    _, windows, nbytes = _pool_benchmark(kind, rand, item, case)
                    return _cycled(lambda: _pool_benchmark(kind, rand, item, case)[0], nbytes), windows

                small = pool_case((SMALL_MAP, 1, 1, 0) if kind == "adaptive" else (SMALL_MAP, 2, 2, 0))
                fixed[f"{kind} pooling"], pool[kind] = _fixed_and_rate(
                    small, [pool_case(case) for case in POOL_BENCHMARKS[kind]], clock)
    except RuntimeError as e:
        from archlab.measure.devices import run_failed

        raise run_failed("calibrating", device, dtype, e) from None
    finally:
        torch.set_num_threads(previous)
    report(steps, steps, "done")
    return Machine(key=machine_key(device, threads, dtype), peak_gflops=peak, bandwidth_gbs=bw,
                   op_overhead_us=overhead, module_overhead_us=module_overhead, fixed_us=fixed,
                   conv_gflops=conv, memory_gbs=mem, pool_rate=pool,
                   seconds=time.perf_counter() - began,
                   measured_at=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime()))


def _memory_benchmark(kind: str, rand: Callable[..., Any], item: int, shape: tuple[int, ...]
                      ) -> tuple[Callable[[], Any], int]:
    """A memory-bound op of ``kind`` on a map of ``shape`` (a linear layer: its in x out features)
    and the bytes it moves, as ``analysis.traffic`` counts them."""
    import torch
    import torch.nn.functional as F

    if kind == "linear":  # batch 1: every weight read once
        fin, fout = shape
        x, w, b = rand(1, fin), rand(fout, fin), rand(fout)
        return (lambda: F.linear(x, w, b)), (fin + fin * fout + 2 * fout) * item
    n, c = shape[0], shape[1]
    numel = math.prod(shape)
    if kind == "normalization":  # a BatchNorm2d module in eval mode, as the models call it (its Python too)
        x = rand(*shape)
        bn = torch.nn.BatchNorm2d(c).eval()
        with torch.no_grad():
            for t in (bn.weight, bn.bias, bn.running_mean):
                t.copy_(rand(c))
        bn = bn.to(device=x.device, dtype=x.dtype)
        return (lambda: bn(x)), (2 * numel + 4 * c) * item
    if kind == "activation":  # in place, as the models' ReLU(inplace=True)
        x = rand(*shape)
        return (lambda: torch.relu_(x)), 2 * numel * item
    if kind == "activation (exp)":  # an activation built on exp: SiLU (EfficientNet's swish), sigmoid, GELU
        x = rand(*shape)
        return (lambda: F.silu(x)), 2 * numel * item
    if kind == "elementwise":  # a residual addition
        x, y = rand(*shape), rand(*shape)
        return (lambda: torch.add(x, y)), 3 * numel * item
    if kind == "data":  # a concatenation of two branches
        x, y = rand(*shape), rand(*shape)
        return (lambda: torch.cat([x, y], 1)), 4 * numel * item
    if kind == "reduction":  # global average pooling as a mean
        x = rand(*shape)
        return (lambda: x.mean((2, 3), keepdim=True)), (numel + n * c) * item
    if kind == "softmax":
        x = rand(n * c, math.prod(shape[2:]))
        return (lambda: torch.softmax(x, -1)), 2 * numel * item
    raise ValueError(kind)


# pooling: (input shape, kernel, stride, padding) -- ResNet's stem, GoogLeNet's, VGG's, Inception's
# branch pooling, DenseNet's transitions; the global average of a last map
POOL_BENCHMARKS = {
    "max": [((1, 64, 112, 112), 3, 2, 1), ((1, 192, 56, 56), 3, 2, 1), ((1, 480, 28, 28), 3, 1, 1),
            ((1, 64, 224, 224), 2, 2, 0)],
    "avg": [((1, 192, 35, 35), 3, 1, 1), ((1, 128, 56, 56), 2, 2, 0), ((1, 512, 14, 14), 3, 1, 1)],
    "adaptive": [((1, 2048, 7, 7), 1, 1, 0), ((1, 1280, 7, 7), 1, 1, 0), ((1, 256, 7, 7), 1, 1, 0)],
}


def _pool_benchmark(kind: str, rand: Callable[..., Any], item: int, case: tuple
                    ) -> tuple[Callable[[], Any], int, int]:
    """A pooling op, its window elements (archlab's ``pooling`` count) and its input's bytes."""
    import torch.nn.functional as F

    shape, k, s, p = case
    x = rand(*shape)
    n, c, h, w = shape
    if kind == "adaptive":  # global average pooling: one per input element
        return (lambda: F.adaptive_avg_pool2d(x, 1)), x.numel(), x.numel() * item
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    op = F.max_pool2d if kind == "max" else F.avg_pool2d
    return (lambda: op(x, k, s, p)), n * c * ho * wo * k * k, x.numel() * item
