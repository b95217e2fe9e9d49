"""A measured memory peak of one real training step (forward, ``loss = sum of the outputs``,
backward, optimizer step), to check ``archlab memory --training`` against.

The step measured is the second: the first creates the optimizer's state, then the gradients are
set to None (``zero_grad``), as in a training loop. On the CPU the PyTorch profiler's allocation
events give the peak of what the step allocates (the batch, activations, gradients, the step's
temporaries); the parameters and the optimizer state, allocated before, are added at their real
sizes, read from the tensors. On a GPU it is the CUDA allocator's ``max_memory_allocated``.

With ``checkpoint`` (module names), each of those modules runs under ``torch.utils.checkpoint.checkpoint``
(``use_reentrant=False``, early stop off: the whole module's forward recomputed, as the bill counts it)."""

from __future__ import annotations

from typing import Any, Iterable

from archlab import status
from archlab.errors import UserError
from archlab.measure.devices import FORWARD_ERRORS, check_device, is_cuda, on_device, quiet_stderr, run_failed, synchronize
from archlab.models.resolve import Resolved, resolve


def make_optimizer(name: str, params: list) -> Any:
    import torch

    if name == "sgd":
        return torch.optim.SGD(params, lr=0.01)
    if name == "momentum":
        return torch.optim.SGD(params, lr=0.01, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-3)
    raise UserError(f"unknown optimizer '{name}'")


def _tensors_bytes(tensors: Iterable[Any]) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def measure_training_peak(model_or_spec: Any, input_shape: Any, *, options: Any = (), optimizer: str = "sgd",
                          amp: str | None = None, frozen: Iterable[str] = (), device: str = "cpu",
                          checkpoint: Iterable[str] = (), **kw: Any) -> tuple[int, str]:
    """Peak bytes of one real training step on ``device``: parameters + optimizer state + the step's
    own allocations at their peak. ``input_shape``: one shape (batch first) or one per input of the
    forward (an ``InputShape`` keeps its dtype and keyword); ``options``: the forward's options;
    ``frozen``: names of parameters that get no gradient. The step runs in the model's own dtype
    (a user's model is copied first: it is left as it was found)."""
    import copy

    import torch
    import torch.utils.checkpoint

    from archlab.trace.inputs import floating_dtype
    from archlab.units import dtype_name

    check_device(device)
    if isinstance(model_or_spec, torch.nn.Module):
        model, label = copy.deepcopy(model_or_spec), type(model_or_spec).__name__
    else:  # a spec, or a spec resolved already (archlab.Model's)
        resolved = model_or_spec if isinstance(model_or_spec, Resolved) else resolve(model_or_spec, **kw)
        model, label = resolved.build(), resolved.label
    frozen = set(frozen)
    what = f"the measured training step of {label}"
    status.doing(f"measuring {what}")
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "")
    dtype = floating_dtype(model)  # the step runs in the model's own dtype, its float inputs too
    try:
        for name, p in model.named_parameters():
            if name in frozen:
                p.requires_grad_(False)
        checkpointed(model, checkpoint)
        with on_device(device), torch.utils.checkpoint.set_checkpoint_early_stop(False):
            model = model.to(device).train()
            opt = make_optimizer(optimizer, [p for p in model.parameters() if p.requires_grad])

            step = training_step(model, opt, input_shape, options, device, dtype, autocast_dtype)

            step()  # the optimizer's state is created here
            opt.zero_grad(set_to_none=True)
            persistent = _tensors_bytes(model.parameters()) + _tensors_bytes(
                t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor))
            if is_cuda(device):
                synchronize(device)
                torch.cuda.reset_peak_memory_stats()
                step()
                synchronize(device)
                return (torch.cuda.max_memory_allocated(),
                        "CUDA allocator: max_memory_allocated over the second step (includes cuDNN/cuBLAS workspace)")
            return persistent + _cpu_step_peak(step), ("PyTorch profiler (profile_memory), CPU allocations of the "
                                                       "second step, plus parameters and optimizer state as allocated")
    except UserError:
        raise
    except FORWARD_ERRORS as e:
        raise run_failed(what, device, amp or dtype_name(dtype), e) from None


def training_step(model: Any, opt: Any, input_shape: Any, options: Any, device: str, dtype: Any,
                  autocast_dtype: Any = None) -> Any:
    """The step measured, as a function: fresh inputs of ``input_shape`` (``forward_shapes``'), the forward (under
    autocast to ``autocast_dtype`` if given), ``loss = sum of the floating outputs``, backward, ``opt.step()``;
    nothing of it is kept after it returns."""
    import torch

    from archlab.measure.memory_peak import forward_shapes
    from archlab.trace.inputs import real_inputs

    device_type = "cuda" if is_cuda(device) else "cpu"

    def step() -> None:
        args, kwargs = real_inputs(forward_shapes(input_shape), options, device, dtype)
        with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            out = model(*args, **kwargs)
        outs = [out] if isinstance(out, torch.Tensor) else list(out.values() if isinstance(out, dict) else out)
        loss = sum(o.float().sum() for o in outs if isinstance(o, torch.Tensor) and o.is_floating_point())
        loss.backward()
        del args, kwargs, out, outs, loss
        opt.step()

    return step


def checkpointed(model: Any, names: Iterable[str]) -> None:
    """Run each named module of ``model`` under ``torch.utils.checkpoint.checkpoint`` (non-reentrant): its
    forward is replaced on the instance by one that checkpoints the original."""
    import functools

    from torch.utils.checkpoint import checkpoint

    modules = dict(model.named_modules())
    for name in names:
        if name not in modules:
            raise UserError(f"--checkpoint: the model has no module '{name}'")
        module = modules[name]
        module.forward = functools.partial(_checkpointed_forward, module.forward, checkpoint)


def _checkpointed_forward(forward: Any, checkpoint: Any, *args: Any, **kwargs: Any) -> Any:
    return checkpoint(forward, *args, use_reentrant=False, **kwargs)


def _cpu_step_peak(step: Any) -> int:
    """Peak of the running total of CPU allocations while ``step()`` runs, from the profiler's raw
    allocation records (one per allocation or free, each with its own time). The per-op totals of
    ``prof.events()`` will not do here: a free inside a ``record_function`` range (the optimizer's
    ``Optimizer.step#Adam.step``) is booked at the start of the range, before the allocations it frees."""
    import logging

    from torch.profiler import ProfilerActivity, profile

    logging.getLogger("torch.profiler").setLevel(logging.ERROR)
    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    records = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
               and str(e.device_type()).rsplit(".", 1)[-1] == "CPU"]
    records.sort(key=lambda e: e.start_ns())  # stable: records of one time keep their order
    current = peak = 0
    for e in records:
        current += e.nbytes()
        peak = max(peak, current)
    return peak
