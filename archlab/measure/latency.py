"""``archlab latency``: measured forward time beside the predicted cost (MACs).

One model: median latency, interquartile range, throughput and achieved GFLOP/s
(2 x MACs / median). Several: which ranks of MACs hold as ranks of time (Spearman), and
each model's latency and MACs as ratios to the first one. ``per_layer``: each module's own
time, summed from every ATen op of a forward timed one by one and attributed to its module
(``archlab.measure.per_op``), beside its share of MACs, which shows the layers whose time
their operation count does not predict (depthwise convolutions, normalization, activations).

Timing: real weights, eval mode, ``torch.inference_mode()``, a few warm-up forwards, then
blocks of forwards timed by ``torch.utils.benchmark``'s clock (which synchronizes CUDA) until
the minimum time has passed and at least ``MIN_BLOCKS`` blocks were timed; the median and IQR are
``torch.utils.benchmark.Measurement``'s. Several models take turns block by block. MACs come
from the meta trace of the same model, so they are exact.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from archlab import status
from archlab.analysis.count import count_trace
from archlab.errors import UserError
from archlab.measure.devices import FORWARD_ERRORS, is_cpu, is_cuda, on_device, run_failed
from archlab.measure.per_op import time_ops
from archlab.measure.profile import LayerTime, layers_from_op_times
from archlab.measure.setting import allocator_fixed, check_options, device_name, page_faults
from archlab.spec import InputSize, Inputs
from archlab.trace.run import build, trace_built
from archlab.units import SCHEMA_VERSION
from archlab.user_code import user_code


NOISY_IQR = 0.10  # a run whose IQR exceeds this fraction of the median is flagged noisy
WARMUP_RUNS = 3
MIN_BLOCKS = 7  # the fewest timed blocks: a median and an IQR need a few samples (odd: the median is one)
PROFILE_RUNS = (5, 30)  # forwards timed op by op for per_layer, per_op and predict: at least, at most


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
    models_interleaved: int = 1  # models whose timed blocks took turns with this one's
    layers: tuple[LayerTime, ...] | None = None
    profiled_forward_ms: float | None = None  # the sum of the layers' time_ms
    profiled_runs: int | None = None
    layer_time_method: str | None = None
    notes: tuple[str, ...] = ()  # what the setting means for the numbers (TF32, fp16 on the CPU)
    macs_not_counted: int = 0  # op calls the MACs leave out (no cost rule): the count is partial if > 0
    page_faults_per_forward: float | None = None  # minor page faults of the process per timed forward
    allocator_steady: bool = False  # the C allocator was held steady while timing (glibc, on the CPU)
    op_times: Any = None  # per_op / predict: each op's measured time (``archlab.measure.per_op.OpTimes``)
    prediction: Any = None  # predict: the roofline prediction (``archlab.measure.predict.Prediction``)
    trace: Any = None  # per_op / predict: the meta trace the ops are lined up with

    @property
    def predicted_ms(self) -> float | None:
        return None if self.prediction is None else self.prediction.ms

    @property
    def predicted_over_measured(self) -> float | None:
        return None if self.prediction is None else self.prediction.ms / self.median_ms

    @property
    def lined_up(self) -> bool:
        """Whether the measured ops are the trace's, one for one (see ``archlab.measure.per_op``)."""
        return self.op_times is not None and self.op_times.aligned

    def by_kind(self) -> list[dict[str, Any]]:
        """Time by roofline kind: predicted (with ``predict``) and measured op by op (with either);
        when the real ops are not the trace's, the measured time by op name, apart."""
        if self.prediction is not None:
            return self.prediction.by_kind(self.op_times.seconds if self.lined_up else None)
        return by_op_kind(self.trace, self.op_times) if self.op_times is not None else []

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
        from archlab.analysis.costs import count_status

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
                "page_faults_per_forward": "minor page faults of the process per timed forward (0: the "
                                           "allocator reused memory; thousands: pages faulted in each forward)",
            },
            "models_interleaved": self.models_interleaved,
            "page_faults_per_forward": self.page_faults_per_forward,
            "notes": list(self.notes),
            "macs_status": count_status(self.macs_not_counted),
            "method": "blocks of forwards timed by torch.utils.benchmark's clock (CUDA synchronized), "
                      "statistics by torch.utils.benchmark.Measurement; eval mode, torch.inference_mode(), "
                      f"after {WARMUP_RUNS} warm-up forwards; several models: their blocks take turns"
                      + ("; the C allocator held steady (glibc: activations from the heap, freed memory kept), so "
                         "a model's time does not depend on the models timed before it" if self.allocator_steady
                         else ""),
        }
        if self.op_times is not None:
            d["per_op_ms"] = self.op_times.total * 1e3
            d["per_op_method"] = self.op_times.method
            d["ops_lined_up_with_trace"] = self.op_times.aligned
            if not self.op_times.aligned:
                d["measured_by_op_name"] = by_op_kind(self.trace, self.op_times)
                d["measured_ops"] = self.measured_op_rows()
        if self.prediction is not None:
            d["predicted_ms"] = self.predicted_ms
            d["predicted_over_measured"] = self.predicted_over_measured
            d["machine"] = self.prediction.machine.to_dict()
            d["units"]["predicted_ms"] = ("roofline prediction: per op its kind's fixed cost plus the slower of "
                                          "compute (FLOPs / the calibrated rate of its kind) and memory (traffic / "
                                          "bandwidth), summed, plus each module call's Python")
        if self.op_times is not None or self.prediction is not None:
            d["by_kind"] = self.by_kind()
            d["ops"] = self.op_rows()
        if self.layers is not None:
            d["profiled_forward_ms"] = self.profiled_forward_ms
            d["profiled_runs"] = self.profiled_runs
            d["layer_time_method"] = self.layer_time_method
            d["layers"] = [layer.to_dict() for layer in self.layers]
        return d

    def measured_op_rows(self) -> list[dict[str, Any]]:
        """One row per op of the real forward, as the per-op clock saw it: op, module, measured time."""
        t = self.op_times
        return [{"index": i, "op": op, "module": module, "measured_ms": seconds * 1e3}
                for i, (op, module, seconds) in enumerate(zip(t.targets, t.modules, t.seconds))]

    def op_rows(self) -> list[dict[str, Any]]:
        """One row per traced op: its module, kind, FLOPs, traffic, and measured and predicted time.
        When the real ops are not the trace's, the rows carry no measured time (with a prediction)
        or are the real forward's ops (without one): ``measured_op_rows``."""
        tr = self.trace
        pred = self.prediction.ops if self.prediction is not None else None
        if pred is None and self.op_times is not None and not self.lined_up:
            return self.measured_op_rows()
        rows = []
        for op in tr.ops:
            row: dict[str, Any] = {"index": op.index, "op": op.target,
                                   "module": tr.calls[op.call].name if op.call >= 0 else ""}
            if pred is not None:
                p = pred[op.index]
                row.update(kind=p.kind, flops=p.flops, traffic_bytes=p.traffic, predicted_ms=p.seconds * 1e3,
                           bound=p.bound)
            if self.lined_up:
                row["measured_ms"] = self.op_times.seconds[op.index] * 1e3
            rows.append(row)
        return rows


def by_op_kind(trace: Any, op_times: Any) -> list[dict[str, Any]]:
    """Measured time by roofline kind (``archlab.measure.predict.roofline_kind``) when the ops line
    up with the trace, else by op name; without a prediction."""
    from archlab.analysis.costs import OpCosts
    from archlab.measure.predict import roofline_kind

    if op_times.aligned:
        costs = OpCosts(trace)
        kinds = [roofline_kind(op, trace, costs.kinds[op.index]) for op in trace.ops]
    else:
        kinds = [t.removeprefix("aten.").split(".")[0] for t in op_times.targets]
    rows: dict[str, dict[str, Any]] = {}
    total = op_times.total or 1.0
    for kind, seconds in zip(kinds, op_times.seconds):
        r = rows.setdefault(kind, {"kind": kind, "ops": 0, "measured_ms": 0.0})
        r["ops"] += 1
        r["measured_ms"] += seconds * 1e3
    for r in rows.values():
        r["measured_share"] = r["measured_ms"] / 1e3 / total
    return sorted(rows.values(), key=lambda r: -r["measured_ms"])


# --- measurement ----------------------------------------------------------------


def latency(model_or_spec: Any, **kw: Any) -> LatencyResult:
    """Measure the forward latency of one registered model (name or spec) or ``nn.Module``
    (then ``input_size`` = (C, H, W) is required; it is measured on a copy and left as it was).
    The keywords are ``measure_all``'s."""
    return measure_all([model_or_spec], **kw)[0]


def measure_all(
    specs: Sequence[Any],
    *,
    device: str = "cpu",
    dtype: str = "fp32",
    channels_last: bool = False,
    threads: int | None = None,
    min_time: float = 1.0,
    per_layer: bool = False,
    per_op: bool = False,
    predict: bool = False,
    machine: Any = None,
    force: bool = False,
    input_size: InputSize = None,
    res: int | None = None,
    batch: int | None = None,
    alpha: float | None = None,
    options: dict[str, Any] | None = None,
    progress: Callable[[float, float, str], Any] | None = None,
    forward_kw: Any = None,
    traced: Sequence[tuple[Any, Any]] | None = None,
    engine: str = "archlab",
    seed: int = 0,
) -> list[LatencyResult]:
    """Measure several models with the same settings, their timed blocks taking turns.

    Interleaving matters on a shared machine: a burst of another process's work lands on
    every model alike instead of on whichever model was being timed, so ratios between the
    models hold far better than with one model timed after the other.

    ``threads``: torch's intra-op threads for the measurement (default: torch's current
    setting), restored afterwards. ``min_time``: seconds of timed forwards per model, at
    least. Runs that look too big for the device's free memory together are refused unless
    ``force``. ``progress(done, total, what)`` is called as the work advances.

    ``per_layer``: each module's own time, summed from its ops timed one by one
    (``archlab.measure.per_op``); ``per_op``: those op times, lined up with the trace;
    ``engine``: "archlab" (the MACs and memory need from the meta trace) or "real" (from a trace of
    one real forward on the CPU, for builders and forwards that read values, as ``count --engine real``;
    ``seed``: its weights', inputs' and random draws' seed).
    ``traced``: each spec's model built on meta and traced already (``archlab.Model``'s ``built`` and
    ``trace``), so that neither is made again; ``predict``: the roofline prediction (``archlab.measure.predict``) on ``machine`` (default:
    the cached calibration for this device, thread count and dtype, else a new one).

    The C allocator is held steady while measuring (``allocator_fixed``), so that a model's
    time does not depend on which models were timed before it in the process.
    """
    import torch

    from archlab.measure.guard import check_fits

    check_options(device, dtype, threads, min_time)
    device = "cpu" if is_cpu(device) else device  # cpu:0 is the CPU
    inputs = Inputs.of(input_size, forward_kw)
    settings = {"res": res, "batch": batch, "alpha": alpha, "options": options}
    if engine not in ENGINES:
        raise UserError(f"unknown engine '{engine}' (choose {' or '.join(ENGINES)})")
    if traced is None and engine == "real":
        traced = [_real_traced(spec, inputs, settings, force, seed) for spec in specs]
    elif traced is None:
        from functools import partial

        from archlab.measure.guard import memory_budget

        cpu_budget = partial(memory_budget, "cpu", force)  # a builder that reads values: built on the CPU
        traced = [(b, trace_built(b)) for b in (build(spec, inputs, **settings, cpu_budget=cpu_budget)
                                                  for spec in specs)]
    plans = [_plan(built, trace, dtype, inputs) for built, trace in traced]
    labels = ", ".join(p.label for p in plans)
    check_fits(sum(p.bytes_needed for p in plans), device, force, what=f"timing {labels}")
    op_timing = per_layer or per_op or predict  # the prediction is shown beside each op's measured time
    total = len(plans) * (3 if op_timing else 2) + (1 if predict else 0)
    report = progress or (lambda done, total, what: None)

    previous_threads = torch.get_num_threads()
    n_threads = threads or previous_threads
    runs: list[_Run] = []
    step = _Step()
    try:
        torch.set_num_threads(n_threads)
        # the named GPU is the current one: the timer's and the per-op clock's synchronization wait for it
        with on_device(device), torch.inference_mode(), allocator_fixed() as steady:
            for i, plan in enumerate(plans):
                # building copies a user's module or runs a user file's constructor: the user's code too
                report(i, total, step.now(f"building {plan.label}"))
                runs.append(_Run(plan, *_build(plan, spec=specs[i], device=device, dtype=dtype,
                                               channels_last=channels_last)))
                step.now(f"the forward pass of {plan.label}")
                runs[-1].warm_up(min_time)
            step.now(f"timing {labels}")
            _interleave(runs, min_time, lambda done: report(len(plans) + done, total, "timing"), step)
            op_times = {}
            if op_timing:
                for i, run in enumerate(runs):
                    report(2 * len(plans) + i, total, step.now(f"timing each op of {run.plan.label}"))
                    median = run.measurement(n_threads).median
                    n = min(max(math.ceil(min_time / median), PROFILE_RUNS[0]), PROFILE_RUNS[1])
                    with torch.inference_mode(False):  # the ops the trace records: no_grad's, not inference's
                        op_times[i] = time_ops(run.model, run.inputs.outside_inference(), run.plan.trace, device, n)
                    step.forward = False
        if predict and machine is None:
            from archlab.measure.calibrate import machine as calibrated

            step.now("calibrating", forward=False)
            report(total - 1, total, "calibrating the machine (cached after the first time)")
            machine = calibrated(device, n_threads, dtype, progress=progress)
    except UserError:
        raise
    except RuntimeError as e:  # out of memory, an operator without a kernel for this dtype, a CUDA error
        raise run_failed(step.what, device, dtype, e) from None
    except FORWARD_ERRORS as e:  # the user's forward raised (an assert, a KeyError, ...) or called sys.exit()
        if not step.forward:
            raise  # archlab's own code: a bug, reported as one
        raise run_failed(step.what, device, dtype, e) from None
    finally:
        torch.set_num_threads(previous_threads)
    notes = setting_notes(device, dtype) + (() if steady or not is_cpu(device) else (
        "the C allocator was not held steady (not glibc, a threshold of the user's set, or refused): times may "
        "include page faults and depend on what ran before",))
    report(total, total, "done")
    setting = {"device": device, "dtype": dtype, "channels_last": channels_last, "threads": n_threads,
               "min_time": min_time, "notes": notes, "steady": bool(steady)}
    return [_result(run, len(runs), op_times.get(i), setting, per_layer, per_op, machine if predict else None)
            for i, run in enumerate(runs)]


class _Step:
    """What a measurement is doing now, for the error message; ``forward``: the user's code is
    running (a forward, or a constructor), and any exception or sys.exit() from it is the user's,
    reported in one line."""

    def __init__(self) -> None:
        self.what, self.forward = "", False

    def now(self, what: str, forward: bool = True) -> str:
        self.what, self.forward = what, forward
        status.doing(what)
        return what


def _result(run: _Run, interleaved: int, op_times: Any, setting: dict[str, Any], per_layer: bool, per_op: bool,
            machine: Any) -> LatencyResult:
    """One model's ``LatencyResult``: its timed blocks, and its per-layer times, op times and
    prediction where they were asked for (``machine``: the calibration to predict on, or None)."""
    m = run.measurement(setting["threads"])
    layers = layers_from_op_times(run.plan.trace, op_times) if per_layer and op_times is not None else None
    notes = setting["notes"]
    if op_times is not None and not op_times.aligned:
        notes = notes + ("the real forward ran other ops than the meta trace (a channels_last layout, or a "
                         "device's own kernels such as fused attention): its ops' times add up per module "
                         "and by op name, but are not lined up with the prediction op by op",)
    prediction = None
    if machine is not None:
        from archlab.measure.predict import predict_trace

        prediction = predict_trace(run.plan.trace, machine)
    keep_ops = per_op or machine is not None
    return LatencyResult(
        model=run.plan.label, input_shape=tuple(run.plan.trace.input_shape), device=setting["device"],
        device_name=device_name(setting["device"]), dtype=setting["dtype"], channels_last=setting["channels_last"],
        threads=setting["threads"], median_ms=m.median * 1e3, iqr_ms=m.iqr * 1e3, samples=len(m.raw_times),
        runs_per_sample=m.number_per_run, min_time_s=setting["min_time"], params=run.plan.trace.params,
        macs=run.plan.macs, models_interleaved=interleaved,
        layers=layers[0] if layers else None, profiled_forward_ms=layers[1] if layers else None,
        profiled_runs=layers[2] if layers else None, layer_time_method=layers[3] if layers else None, notes=notes,
        macs_not_counted=run.plan.not_counted,
        page_faults_per_forward=run.faults / run.forwards if run.forwards else None,
        op_times=op_times if keep_ops else None, prediction=prediction,
        trace=run.plan.trace if keep_ops else None, allocator_steady=setting["steady"],
    )


@dataclass(frozen=True)
class _Plan:
    """What the meta trace says before anything is built."""

    label: str
    trace: Any
    forward_options: tuple  # the forward's non-tensor keyword options (--forward-kw, use_cache=true)
    macs: int
    bytes_needed: int  # fp32 parameters (built in fp32, then cast) + the eager activation peak
    not_counted: int  # calls of ATen ops without a cost rule: the MACs leave them out
    resolved: Any = None  # the spec resolved (archlab.models.resolve.Resolved), built again for real; None: a module


ENGINES = ("archlab", "real")  # where the MACs beside the time come from: the meta trace, or a real forward's


def _real_traced(spec: Any, inputs: Inputs, settings: dict[str, Any], force: bool, seed: int) -> tuple[Any, Any]:
    """(built, trace) of one real forward on the CPU (``--engine real``), within the memory budget
    (the run keeps every tensor, as ``count --engine real``)."""
    from archlab.measure.guard import memory_budget

    budget = memory_budget("cpu", force)
    built = build(spec, inputs, real=True, device="cpu", budget=budget, seed=seed, **settings)
    return built, trace_built(built, real=True, budget=budget, seed=seed)


def _plan(built: Any, tr: Any, dtype: str, inputs: Inputs) -> _Plan:
    """What the meta trace of a model built on meta (a ``trace.run.Built``) says: its label, MACs,
    memory need."""
    from archlab.analysis.memory import run_bytes

    counted = count_trace(tr, built.label, depth=0)
    options = built.resolved.forward_options if built.resolved is not None else inputs.options
    return _Plan(built.label, tr, tuple(options), counted.macs, run_bytes(tr, 4 if dtype == "fp32" else 2),
                 sum(n for _, n in counted.unsupported_ops), built.resolved)


def _build(plan: _Plan, *, spec: Any, device: str, dtype: str, channels_last: bool):
    """The model with real weights, in eval mode, cast and placed, and its inputs."""
    import torch

    if plan.resolved is None:
        model = copy.deepcopy(spec)  # the user's model stays as it was: mode, dtype, device
    else:
        model = plan.resolved.build()
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.eval().to(device=device, dtype=torch_dtype)
    if channels_last:
        model = model.to(memory_format=layout)
    generator = torch.Generator().manual_seed(0)
    inputs = []
    kwargs: dict[str, Any] = {o.name: o.value for o in plan.forward_options}
    for v in plan.trace.inputs:
        value = plan.trace.values[v]
        if value.dtype.is_floating_point:
            x = torch.randn(value.shape, generator=generator).to(device=device, dtype=torch_dtype)
            x = x.contiguous(memory_format=layout) if x.dim() == 4 else x
        else:  # token ids and other integer inputs: zeros, as --engine real gives them
            x = torch.zeros(value.shape, dtype=value.dtype, device=device)
        if value.name:
            kwargs[value.name] = x
        else:
            inputs.append(x)
    return model, ForwardInputs(inputs, kwargs)


class ForwardInputs(tuple):
    """The positional inputs of a timed forward, with ``kwargs``: its keyword inputs and options."""

    kwargs: dict[str, Any]

    def __new__(cls, args: Sequence[Any], kwargs: dict[str, Any]) -> "ForwardInputs":
        self = super().__new__(cls, tuple(args))
        self.kwargs = kwargs
        return self

    def outside_inference(self) -> "ForwardInputs":
        """The same inputs as ordinary tensors (copies), for forwards outside ``torch.inference_mode``
        (an in-place op on an inference tensor is refused there)."""
        def plain(x: Any) -> Any:
            return x.clone() if hasattr(x, "clone") and hasattr(x, "is_inference") else x

        return ForwardInputs([plain(x) for x in self], {k: plain(v) for k, v in self.kwargs.items()})


class _Run:
    """One model being timed: blocks of ``number`` forwards, each block timed by
    ``torch.utils.benchmark``'s clock, which synchronizes CUDA before it reads the time."""

    BLOCK_OVERHEAD = 1000  # a block lasts at least this many clock overheads (overhead <= 0.1%)

    def __init__(self, plan: _Plan, model, inputs) -> None:
        self.plan, self.model, self.inputs = plan, model, inputs
        self.number = 1
        self.raw_times: list[float] = []
        self.faults = 0  # page faults during the timed blocks
        self.forwards = 0

    def block(self, number: int) -> float:
        from torch.utils.benchmark import timer

        model, inputs, kwargs = self.model, self.inputs, getattr(self.inputs, "kwargs", {})
        with user_code():  # the user's prints go to stderr (outside the timed part)
            faults = page_faults()
            start = timer()
            for _ in range(number):
                model(*inputs, **kwargs)
            elapsed = timer() - start
            self.faults += page_faults() - faults
            self.forwards += number
            return elapsed

    def warm_up(self, min_time: float) -> None:
        """A few forwards, then the block size: the smallest power of ten whose block lasts
        BLOCK_OVERHEAD clock overheads and min_time/1000 (torch.utils.benchmark.Timer's rule),
        or a MIN_BLOCKS-th of min_time."""
        import statistics

        from torch.utils.benchmark import timer

        self.block(WARMUP_RUNS)
        overhead = statistics.median(_clock_overhead(timer) for _ in range(5))
        while True:
            t = self.block(self.number)
            if (t >= self.BLOCK_OVERHEAD * overhead and t >= min_time / 1000) or t >= min_time / MIN_BLOCKS \
                    or self.number >= 10**6:
                break
            self.number *= 10
        self.faults = self.forwards = 0  # the warm-up's faults (first touches) are not the timed ones

    def done(self, min_time: float) -> bool:
        return len(self.raw_times) >= MIN_BLOCKS and sum(self.raw_times) >= min_time

    def measurement(self, threads: int):
        from torch.utils.benchmark import Measurement, TaskSpec

        spec = TaskSpec(stmt="model(*inputs)", setup="pass", label=self.plan.label, num_threads=threads)
        return Measurement(number_per_run=self.number, raw_times=list(self.raw_times), task_spec=spec)


def _clock_overhead(timer) -> float:
    start = timer()
    return timer() - start


def _interleave(runs: list[_Run], min_time: float, progress: Callable[[float], Any],
                step: _Step | None = None) -> None:
    """Round robin: one block of each model that still needs time, until each has min_time
    and MIN_BLOCKS blocks. The garbage collector is off meanwhile, as timeit does.
    ``step.what`` names the model being timed (for an error message)."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        if len(runs) > 1:  # one untimed round in turn: the heap settles to the interleaved pattern
            for run in runs:
                run.block(run.number)
                run.faults = run.forwards = 0
        pending = list(runs)
        while pending:
            for run in pending:
                if step is not None and len(runs) > 1:
                    step.what = f"timing {run.plan.label}"
                run.raw_times.append(run.block(run.number))
            pending = [run for run in pending if not run.done(min_time)]
            progress(sum(min(1.0, len(r.raw_times) / MIN_BLOCKS, sum(r.raw_times) / min_time) for r in runs))
    finally:
        if enabled:
            gc.enable()


def setting_notes(device: str, dtype: str) -> tuple[str, ...]:
    """What the device and dtype mean for the numbers, said beside them."""
    import torch

    notes = []
    if is_cuda(device) and dtype == "fp32":
        conv, mm = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        if conv or mm:
            notes.append(f"fp32 on CUDA with TF32 allowed (cuDNN convolutions {conv}, matmul {mm}): tensor cores "
                         "may multiply in TF32, a 10-bit mantissa; torch.backends.cudnn.allow_tf32 = False "
                         "times true fp32")
    if is_cpu(device) and dtype == "fp16":
        notes.append("fp16 on the CPU: most kernels convert to fp32 and back, usually slower than fp32; "
                     "these times do not show what fp16 gains on hardware built for it")
    return tuple(notes)
