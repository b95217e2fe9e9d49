"""A measured memory peak of one real inference forward, to check archlab's prediction against:
the PyTorch profiler's allocations on the CPU, the CUDA allocator's peak on a GPU."""

from __future__ import annotations

from typing import Any

from archlab import status
from archlab.errors import UserError
from archlab.measure.devices import FORWARD_ERRORS, check_device, is_cuda, on_device, quiet_stderr, run_failed, synchronize
from archlab.models.resolve import Resolved, resolve
from archlab.spec import InputShape
from archlab.user_code import user_code


def forward_shapes(input_shape: Any) -> tuple[tuple[int, ...], ...]:
    """One shape (batch included) or a sequence of shapes, one per input of the forward."""
    if len(input_shape) and all(isinstance(s, (tuple, list)) for s in input_shape):
        return tuple(s if isinstance(s, InputShape) else tuple(s) for s in input_shape)
    return (input_shape if isinstance(input_shape, InputShape) else tuple(input_shape),)


def measure_peak(model_or_spec: Any, input_shape: Any, *, options: Any = (), device: str = "cpu",
                 **kw: Any) -> tuple[int, str]:
    """Peak of memory allocated during one real inference forward in the model's own dtype (the
    inputs included, the parameters not). ``input_shape``: the shape of the input (batch included), or a
    sequence of shapes for a forward of several inputs (an ``InputShape`` keeps its dtype and
    keyword); ``options``: the forward's options. Float inputs take the model's floating dtype
    (an fp16 or bf16 model runs in fp16 or bf16); a user's model is copied first: it stays on its
    device and in its mode."""
    import copy

    import torch

    from archlab.trace.inputs import floating_dtype, real_inputs
    from archlab.units import dtype_name

    check_device(device)
    shapes = forward_shapes(input_shape)
    if isinstance(model_or_spec, torch.nn.Module):
        model = copy.deepcopy(model_or_spec)
        label = type(model_or_spec).__name__
    else:  # a spec, or a spec resolved already (archlab.Model's)
        resolved = model_or_spec if isinstance(model_or_spec, Resolved) else resolve(model_or_spec, **kw)
        model, label = resolved.build(), resolved.label
    what = f"the measured forward of {label}"
    status.doing(f"measuring {what}")
    dtype = floating_dtype(model)
    try:
        with on_device(device), torch.inference_mode(), user_code():
            model = model.to(device).eval()

            def inputs():
                return real_inputs(shapes, options, device, dtype)

            args, kwargs = inputs()
            model(*args, **kwargs)
            del args, kwargs  # warm-up: one-off allocations are not the model's
            if not is_cuda(device):
                return _cpu_peak(model, inputs), "PyTorch profiler (profile_memory), CPU allocations"
            synchronize(device)
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            args, kwargs = inputs()
            model(*args, **kwargs)
            synchronize(device)
            return (torch.cuda.max_memory_allocated() - base,
                    "CUDA allocator: max_memory_allocated (includes cuDNN/cuBLAS workspace)")
    except UserError:
        raise
    except FORWARD_ERRORS as e:  # out of memory, a CUDA error, the user's forward raised or called sys.exit()
        raise run_failed(what, device, dtype_name(dtype), e) from None


def _cpu_peak(model, inputs) -> int:
    """``inputs()``: the forward's arguments, made inside the profiled region."""
    import logging

    from torch.profiler import ProfilerActivity, profile

    logging.getLogger("torch.profiler").setLevel(logging.ERROR)
    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        args, kwargs = inputs()
        model(*args, **kwargs)
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
