"""``archlab memory``: parameter memory, inference peak, training activations, M(G), and a
measured peak to check the prediction against."""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from archlab.analysis.memory import DEFAULT_FUSE, DTYPE_BYTES, inference_peak, m_of_g, training_bytes
from archlab.api import SCHEMA_VERSION, resolve, trace_model
from archlab.devices import check_device
from archlab.errors import UserError


@dataclass(frozen=True)
class MemoryResult:
    model: str
    input_shape: tuple[int, ...]
    dtype: str
    act_dtype: str
    params: int
    params_bytes: int
    buffers_bytes: int
    activation_peak_bytes: int
    activation_peak_at: str
    activation_peak_held_bytes: int
    activation_peak_held_at: str
    training_activation_bytes: int | None  # None: the training-mode forward fails (see training_note)
    mg_bytes: int
    mg_op: str
    max_tensor_bytes: int
    fused_types: tuple[str, ...]
    mg_fused_bytes: int | None
    mg_fused_op: str | None
    max_tensor_fused_bytes: int | None
    workspace: str
    measured_peak_bytes: int | None = None
    measured_method: str | None = None
    predicted_for_measure_bytes: int | None = None
    training_note: str | None = None  # why training_activation_bytes is None

    @property
    def measured_diff_percent(self) -> float | None:
        if self.measured_peak_bytes is None or not self.measured_peak_bytes:
            return None
        return 100.0 * (self.predicted_for_measure_bytes - self.measured_peak_bytes) / self.measured_peak_bytes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["fused_types"] = list(self.fused_types)
        d["measured_diff_percent"] = self.measured_diff_percent
        if not self.fused_types:
            for k in ("mg_fused_bytes", "mg_fused_op", "max_tensor_fused_bytes"):
                d.pop(k)
        if self.training_note is None:
            d.pop("training_note")
        if self.measured_peak_bytes is None:
            for k in ("measured_peak_bytes", "measured_method", "predicted_for_measure_bytes",
                      "measured_diff_percent"):
                d.pop(k)
        return {"schema_version": SCHEMA_VERSION,
                "units": {"bytes": "bytes, whole batch", "activations": f"floating-point tensors at {self.act_dtype}"},
                **d}


def _check_dtype(value: str, flag: str) -> int:
    if value not in DTYPE_BYTES:
        raise UserError(f"unknown {flag} '{value}' (choose {', '.join(DTYPE_BYTES)})")
    return DTYPE_BYTES[value]


def memory(
    model_or_spec: Any,
    *,
    dtype: str = "fp32",
    act_dtype: str = "fp32",
    fuse: Sequence[str] | None = None,
    workspace: str = "none",
    measure: bool = False,
    device: str = "cpu",
    force: bool = False,
    **kw: Any,
) -> MemoryResult:
    """Memory of a model. ``fuse``: module type names treated as single ops in M(G)
    (default: MobileNetV2's inverted residual blocks, where present; ``()`` for none)."""
    import torch

    from archlab.analysis.trace import saved_for_backward

    param_bytes = _check_dtype(dtype, "--dtype")
    act_bytes = _check_dtype(act_dtype, "--act-dtype")
    if workspace not in ("none", "im2col"):
        raise UserError(f"unknown --workspace '{workspace}' (choose none or im2col)")
    check_device(device)  # also without --measure: a bad --device is an error wherever it is given
    trace, label = trace_model(model_or_spec, **kw)
    present = {c.type for c in trace.calls}
    if fuse is None:
        fuse_types = tuple(t for t in DEFAULT_FUSE if t in present)
    else:
        fuse_types = tuple(fuse)
        missing = [t for t in fuse_types if t not in present]
        if missing:
            types = ", ".join(sorted(present - {"Sequential"}))
            raise UserError(f"--fuse {missing[0]}: no module of that type in {label} (its types: {types})")
    peak = inference_peak(trace, act_bytes)
    held = inference_peak(trace, act_bytes, held=True)
    mg, biggest = m_of_g(trace, act_bytes, (), workspace)
    fused = m_of_g(trace, act_bytes, fuse_types, workspace) if fuse_types else None
    if isinstance(model_or_spec, torch.nn.Module):
        model = model_or_spec
    else:
        model = resolve(model_or_spec, **{k: v for k, v in kw.items() if k != "input_size"},
                        input_size=kw.get("input_size")).build(device="meta")
    training_note = None
    try:
        # every input of the forward, in the trace's dtypes (the model's own floating dtype)
        meta_inputs = [torch.empty(trace.values[v].shape, dtype=trace.values[v].dtype, device="meta")
                       for v in trace.inputs]
        runner = model if len(meta_inputs) == 1 else _WithInputs(model, meta_inputs[1:])
        saved = saved_for_backward(runner, meta_inputs[0])
    except UserError as e:  # e.g. batch norm over one value per channel: the rest of the report stands
        saved, training_note = None, str(e)
        if trace.input_shape[0] == 1 and "more than 1 value per channel" in training_note:
            training_note += " (training batch norm needs --batch 2 or more)"
    measured = method = predicted_measure = None
    if measure:
        from archlab.guard import check_fits, run_bytes

        check_fits(run_bytes(trace), device, force, what="--measure (a real forward)")
        shapes = tuple(tuple(trace.values[v].shape) for v in trace.inputs)  # every input of the forward
        measured, method = measure_peak(model_or_spec, shapes if len(shapes) > 1 else shapes[0], device=device, **kw)
        predicted_measure = (inference_peak(trace, 4, held=True) if act_bytes != 4 else held).bytes
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return MemoryResult(
        model=label, input_shape=trace.input_shape, dtype=dtype, act_dtype=act_dtype,
        params=trace.params, params_bytes=trace.params * param_bytes, buffers_bytes=buffers,
        activation_peak_bytes=peak.bytes, activation_peak_at=peak.where,
        activation_peak_held_bytes=held.bytes, activation_peak_held_at=held.where,
        training_activation_bytes=None if saved is None else training_bytes(saved, act_bytes),
        training_note=training_note,
        mg_bytes=mg.bytes, mg_op=mg.where, max_tensor_bytes=biggest.bytes,
        fused_types=fuse_types,
        mg_fused_bytes=fused[0].bytes if fused else None, mg_fused_op=fused[0].where if fused else None,
        max_tensor_fused_bytes=fused[1].bytes if fused else None, workspace=workspace,
        measured_peak_bytes=measured, measured_method=method, predicted_for_measure_bytes=predicted_measure,
    )


def _with_inputs_class():
    import torch

    class WithInputs(torch.nn.Module):
        """``model(x, *rest)`` as a one-input module, for ``saved_for_backward`` (which calls
        its model with one input): a forward of several inputs gets all of them."""

        def __init__(self, model, rest) -> None:
            super().__init__()
            self.model = model
            self._rest = tuple(rest)

        def forward(self, x):
            return self.model(x, *self._rest)

    return WithInputs


def _WithInputs(model, rest):  # noqa: N802 - a class made on first use (torch is imported lazily)
    return _with_inputs_class()(model, rest)


def _shapes(input_shape: Any) -> tuple[tuple[int, ...], ...]:
    """One shape (batch included) or a sequence of shapes, one per input of the forward."""
    if len(input_shape) and all(isinstance(s, (tuple, list)) for s in input_shape):
        return tuple(tuple(s) for s in input_shape)
    return (tuple(input_shape),)


def measure_peak(model_or_spec: Any, input_shape: Any, *, device: str = "cpu",
                 **kw: Any) -> tuple[int, str]:
    """Peak of memory allocated during one real fp32 inference forward (the inputs included,
    the parameters not). ``input_shape``: the shape of the input (batch included), or a
    sequence of shapes for a forward of several inputs. The model is cast to fp32 (a user's
    model is copied first: it stays on its device, in its mode and dtype)."""
    import copy

    import torch

    from archlab.devices import FORWARD_ERRORS, on_device, run_failed, synchronize

    check_device(device)
    shapes = _shapes(input_shape)
    if isinstance(model_or_spec, torch.nn.Module):
        model = copy.deepcopy(model_or_spec)
        label = type(model_or_spec).__name__
    else:
        resolved = resolve(model_or_spec, **{k: v for k, v in kw.items() if k != "input_size"},
                           input_size=kw.get("input_size"))
        model, label = resolved.build(), resolved.label
    what = f"the measured forward of {label}"
    try:
        model = model.float()  # a file's model may be built in fp16 or bf16: the inputs are fp32
        with on_device(device), torch.inference_mode():
            model = model.to(device).eval()

            def inputs():
                return tuple(torch.zeros(s, device=device) for s in shapes)

            model(*inputs())  # warm-up: one-off allocations are not the model's
            if not device.startswith("cuda"):
                return _cpu_peak(model, inputs), "PyTorch profiler (profile_memory), CPU allocations"
            synchronize(device)
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            model(*inputs())
            synchronize(device)
            return (torch.cuda.max_memory_allocated() - base,
                    "CUDA allocator: max_memory_allocated (includes cuDNN/cuBLAS workspace)")
    except UserError:
        raise
    except FORWARD_ERRORS as e:  # out of memory, a CUDA error, the user's forward raised or called sys.exit()
        raise run_failed(what, device, "fp32", e) from None


@contextlib.contextmanager
def _quiet_stderr():
    """The profiler's C++ side prints start/stop lines on file descriptor 2; hide them."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _cpu_peak(model, inputs) -> int:
    """``inputs()``: the forward's arguments, made inside the profiled region."""
    import logging

    from torch.profiler import ProfilerActivity, profile

    logging.getLogger("torch.profiler").setLevel(logging.ERROR)
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(*inputs())
    # An op event carries what it allocated and freed itself; a "[memory]" event is a free
    # (or allocation) outside any op. In time order, their running sum is the allocated total.
    timeline = []
    for e in prof.events():
        if e.name == "[memory]":
            timeline.append((e.time_range.start, e.cpu_memory_usage))
        elif e.self_cpu_memory_usage:
            timeline.append((e.time_range.start, e.self_cpu_memory_usage))
    timeline.sort()
    current = peak = 0
    for _, delta in timeline:
        current += delta
        peak = max(peak, current)
    return peak
