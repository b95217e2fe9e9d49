"""The runner: one function runs the user's forward under the recorder, for a forward trace
(eval mode, no gradients) or a training step (training mode, ``loss.backward()``), with every
guard of ``archlab.trace.guards`` applied to both by construction; and the one place a model is
built for a trace (``build``).

No convolution runs and no activation is allocated: meta tensors carry shapes only. Parameters
may live on any device; each operation sees meta copies of its arguments (``Tensor.to("meta")``
copies no data), so the user's model is never moved or modified. The hooks are removed in
``finally``. ``--engine real`` (``real=True``) runs the same trace on real tensors.
"""

from __future__ import annotations

import fnmatch
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from archlab import status
from archlab.errors import UserError, first_line
from archlab.models.resolve import Resolved, reads_the_model, resolve
from archlab.spec import InputSize, Inputs, ModelSpec, check_batch
from archlab.trace.graph import INPUT, PARAM, Call, Param, Trace, TrainingTrace, Uncalled
from archlab.trace.guards import check_keywords, check_options_read, check_traceable, guarded, without_torch_config_advice
from archlab.trace.inputs import (described_shape, floating_dtype, model_inputs, module_inputs, seeded, tensor_maker,
                                  vocabulary)
from archlab.trace.recorder import KNOWN_MAX, MetaMode, Recorder, Tracer, TrainingTracer, nested_tensors, to_meta
from archlab.units import dtype_name, human_bytes

def trace(model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...],
          kwargs: dict[str, Any] | None = None, real: bool = False, budget: Any = None,
          allocated: int = 0) -> Trace:
    """Trace ``model``'s forward on ``inputs`` (shapes only; any device, converted to meta), and on
    the keyword arguments ``kwargs`` (tensors, traced as inputs too, and other options of the forward).

    The model is put in eval mode for the trace and its mode restored after; no hook is left
    behind, even when the forward raises. ``real``: run every op on the real tensors given
    (``--engine real``: builders and forwards that read values), recorded by the same dispatch-level
    trace; ``budget`` (a ``measure.guard.MemoryBudget``) stops that run with one line once the
    tensors it makes, added to the ``allocated`` bytes (its weights), exceed the budget."""
    return _run(model, inputs, kwargs, training=False, real=real, budget=budget, allocated=allocated)


def trace_training(model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...],
                   freeze: Sequence[str] = (), kwargs: dict[str, Any] | None = None) -> TrainingTrace:
    """Trace one training step of ``model`` on ``inputs`` and the keyword arguments ``kwargs``
    (tensors, shapes only, on meta, and options of the forward): the training-mode forward,
    ``loss = sum of every floating output's .sum()``, and ``loss.backward()``.

    The model is never modified: it runs through ``torch.func.functional_call`` on fresh meta leaf
    tensors standing in for its parameters and buffers (each requiring a gradient as the parameter
    does, unless ``freeze`` names its module), so no ``.grad`` is written to the user's model."""
    return _run(model, inputs, kwargs, training=True, freeze=tuple(freeze))


def _run(model: nn.Module, inputs: Any, kwargs: dict[str, Any] | None, *, training: bool,
         freeze: tuple[str, ...] = (), real: bool = False, budget: Any = None, allocated: int = 0) -> Any:
    inputs = tuple(inputs) if isinstance(inputs, tuple) else (inputs,)
    kwargs = dict(kwargs or {})
    model = uncompiled(model)
    status.doing(f"tracing {'the training step' if training else 'the forward'} of {type(model).__name__}"
                 + (" on real tensors" if real else ""))
    if not real:
        model = _materialized(model, inputs, kwargs)
    only_by_kwargs = check_keywords(model, list(kwargs))
    check_options_read(model, [k for k in only_by_kwargs if not isinstance(kwargs[k], torch.Tensor)])
    check_traceable(model, real)
    frozen = frozen_names(model, freeze) if training else set()
    args = inputs if real else tuple(to_meta(t) for t in inputs)
    kw = kwargs if real else {k: to_meta(v) for k, v in kwargs.items()}
    tracer, state = _tracer(model, training, frozen, real, budget,
                            allocated + sum(t.numel() * t.element_size() for t in (*args, *kw.values())
                                            if isinstance(t, torch.Tensor)))
    in_ids = [tracer.new_value(t, INPUT) for t in args]
    in_ids += [tracer.new_value(t, INPUT, name=k) for k, t in kw.items() if isinstance(t, torch.Tensor)]
    if not real:  # a mask's values are known: ones, attend everywhere (as --engine real gives it)
        tracer.known.update({id(t): torch.ones(t.shape, dtype=t.dtype) for k, t in kw.items()
                             if isinstance(t, torch.Tensor) and k.lower().endswith("mask") and not t.is_floating_point()
                             and t.numel() <= KNOWN_MAX})
    first = next(iter([*args, *(t for t in kw.values() if isinstance(t, torch.Tensor))]), None)
    from torch.nn.modules import module as module_mod

    h_pre = module_mod.register_module_forward_pre_hook(tracer.pre_hook)
    h_post = module_mod.register_module_forward_hook(tracer.post_hook, always_call=True)
    try:
        # a draw the forward makes on the CPU (layer drop) leaves the caller's random state as found
        with guarded(model), torch.random.fork_rng(devices=[], enabled=not real), \
                (torch.enable_grad() if training else torch.no_grad()), Recorder(tracer):
            if training:
                out = _step(model, state, args, kw, tracer, (h_pre, h_post))
            else:
                set_mode(model, False)
                out = model(*args, **kw)
            # counted before the model is put back: a lazy layer has its shapes only now
            params = list({id(p): p for p in model.parameters()}.values())
            counts = (sum(p.numel() for p in params), sum(p.numel() for n, p in model.named_parameters()
                                                          if p.requires_grad and n not in frozen))
            params_bytes = sum(p.numel() * p.element_size() for p in params)
            float_dtype = dtype_name(floating_dtype(model))
    except UserError:
        raise
    except SystemExit as e:  # the user's forward must not end archlab without a word
        raise UserError(f"the {'training step' if training else 'forward pass'} called sys.exit({e.code!r})") from None
    except Exception as e:  # noqa: BLE001 - the user's forward raised (an assert, a KeyError, ...)
        raise _failure(e, model, tracer, first, training, kwargs) from None
    finally:
        h_pre.remove()
        h_post.remove()
        tracer.restore_backends()
    if tracer.stopped is not None:  # the forward caught the guard's error and went on: stopped all the same
        raise tracer.stopped
    out_ids = [tracer.value_of(t) for t in nested_tensors(out)]
    if not training:
        used = {v for op in tracer.ops for v in op.inputs} | set(out_ids)
        for vid in in_ids:  # a keyword only **kwargs took, and nothing read: a misspelt or unknown input
            value = tracer.values[vid]
            if value.name in only_by_kwargs and vid not in used:
                raise UserError(f"the forward of {type(model).__name__} did not use the input '{value.name}' "
                                f"(its **kwargs took it): not an input of this model?")
    head = tracer.values[in_ids[0]] if in_ids else None
    result = Trace(
        input_shape=described_shape(head.shape, head.dtype, head.name) if head else (),
        values=tracer.values,
        ops=tracer.ops,
        calls=tracer.calls,
        inputs=in_ids,
        outputs=out_ids,
        params=counts[0],
        trainable_params=counts[1],
        params_bytes=params_bytes,
        float_dtype=float_dtype,
        uncalled=[] if training else uncalled(model, tracer.calls, {id(m) for m in tracer.call_modules}),
    )
    if not training:
        return result
    assert isinstance(tracer, TrainingTracer)
    return _training_trace(model, result, tracer, state, frozen, freeze)


def uncompiled(model: nn.Module) -> nn.Module:
    """The module a ``torch.compile``d model wraps (``OptimizedModule._orig_mod``): compiling changes
    how it runs, not what it computes, and calling the wrapper would run TorchDynamo (and warn that
    archlab's global hooks fire twice)."""
    inner = getattr(model, "_orig_mod", None)
    return inner if type(model).__name__ == "OptimizedModule" and isinstance(inner, nn.Module) else model


def set_mode(model: nn.Module, training: bool) -> None:
    """``model.train(training)``; a ``torch.export``ed module refuses it (its graph was traced in one
    mode, the one it keeps: dropout and batch norm run as they were exported)."""
    try:
        model.train(training)
    except NotImplementedError:
        pass


def _materialized(model: nn.Module, inputs: tuple, kwargs: dict[str, Any]) -> nn.Module:
    """A model with lazy modules not yet run (``nn.LazyLinear``): a copy of it whose lazy parameters
    take their shapes from one eval forward on meta tensors (as PyTorch's first forward would,
    without running anything for real); the user's model stays lazy. Any other model: itself."""
    lazy = [t for t in (*model.parameters(), *model.buffers()) if isinstance(t, nn.parameter.UninitializedTensorMixin)]
    if not any(isinstance(m, nn.modules.lazy.LazyModuleMixin) for m in model.modules()) or not lazy:
        return model
    import copy

    memo: dict[int, Any] = {}
    for t in lazy:
        kind = nn.UninitializedParameter if isinstance(t, nn.Parameter) else nn.UninitializedBuffer
        memo[id(t)] = kind(t.requires_grad, device="meta", dtype=t.dtype)
    twin = copy.deepcopy(model, memo)
    try:
        with torch.no_grad(), guarded(twin):
            set_mode(twin, False)
            twin(*(to_meta(t) for t in inputs), **{k: to_meta(v) for k, v in kwargs.items()})
    except Exception as e:  # noqa: BLE001 - the input does not fit the model
        raise UserError(f"the lazy modules of {type(model).__name__} could not take their shapes from the input: "
                        f"{first_line(e, type(e).__name__)}") from None
    return twin


def _training_trace(model: nn.Module, trace: Trace, tracer: TrainingTracer, state: dict[str, torch.Tensor],
                    frozen: set[str], freeze: tuple[str, ...]) -> TrainingTrace:
    """The step's trace with where its backward starts and the parameters' gradients."""
    if tracer.backward_start is None:
        tracer.backward_start = len(tracer.ops)
    grads = []
    seen: set[int] = set()
    grad_of: dict[int, int] = {}  # id of a stand-in -> its gradient's value id
    for t in state.values():
        if t.requires_grad and id(t) not in seen and t.grad is not None:
            seen.add(id(t))
            grads.append(tracer.value_of(t.grad))
            grad_of[id(t)] = grads[-1]
    frozen_params = sum(p.numel() for n, p in dict(model.named_parameters()).items() if n in frozen and p.requires_grad)
    parameters = tuple(Param(n, tuple(p.shape), p.element_size(), id(state[n]) in grad_of, grad_of.get(id(state[n])))
                       for n, p in model.named_parameters() if n in state)
    modules = tuple((n, type(m).__name__) for n, m in model.named_modules())
    return TrainingTrace(trace, tracer.backward_start, grads, tuple(sorted(frozen)), tuple(freeze), frozen_params,
                         parameters, modules)


def _tracer(model: nn.Module, training: bool, frozen: set[str], real: bool, budget: Any,
            allocated: int) -> tuple[Tracer, dict[str, torch.Tensor]]:
    """The tracer of a run, and for a training step the stand-ins of the parameters and buffers
    (recorded as its PARAM values); a real run under a budget starts with its ``allocated`` bytes."""
    if training:
        tracer: Tracer = TrainingTracer(model)
        state = _stand_ins(model, frozen)
        for name, t in state.items():
            tracer.new_value(t, PARAM, name=name)
        return tracer, state
    tracer = Tracer(model)
    tracer.real = real
    if real and budget is not None:
        tracer.budget = budget
        tracer.add_allocated(allocated)
    return tracer, {}


def _stand_ins(model: nn.Module, frozen: set[str]) -> dict[str, torch.Tensor]:
    """Fresh meta leaves for the parameters (requiring a gradient as each parameter does, unless
    frozen) and buffers, by name; a parameter registered twice stays one tensor."""
    state: dict[str, torch.Tensor] = {}
    stand_in: dict[int, torch.Tensor] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) not in stand_in:
            stand_in[id(p)] = torch.empty(p.shape, dtype=p.dtype, device="meta").requires_grad_(
                p.requires_grad and name not in frozen)
        state[name] = stand_in[id(p)]
    for name, b in model.named_buffers(remove_duplicate=False):
        state[name] = torch.empty(b.shape, dtype=b.dtype, device="meta")
    return state


def _step(model: nn.Module, state: dict[str, torch.Tensor], args: tuple, kwargs: dict,
          tracer: TrainingTracer, hooks: tuple[Any, Any]) -> Any:
    """The training step under the recorder: the training-mode forward on the stand-ins, the loss,
    its backward (the module hooks are off by then: no module is called in the backward)."""
    set_mode(model, True)
    out = torch.func.functional_call(model, state, args, kwargs, tie_weights=True, strict=False)
    outs = [t for t in nested_tensors(out) if t.is_floating_point()]
    for hook in hooks:
        hook.remove()
    loss = None
    for t in outs:
        if t.requires_grad:
            loss = t.sum() if loss is None else loss + t.sum()
    if loss is None:  # loss.backward() would raise: no step to count
        why = "every parameter is frozen (--freeze)" if any(p.requires_grad for p in model.parameters()) \
            and not any(t.requires_grad for t in state.values()) else \
            "no floating-point output depends on a trainable parameter"
        raise UserError(f"--training: nothing to back-propagate in {type(model).__name__}: {why}, "
                        f"so PyTorch's loss.backward() would raise")
    tracer.resolve_nodes()
    tracer.backward_start = len(tracer.ops)
    if loss is not None:
        loss.backward()  # its seed, ones_like, has a shape rule: PyTorch's imports sympy (1 s)
    return out


def _failure(e: Exception, model: nn.Module, tracer: Tracer, first: Any, training: bool,
             kwargs: dict[str, Any] | None = None) -> UserError:
    """The one line for a forward (or training step) that raised: where, and what to do about it."""
    failed = tracer.failed_call if tracer.failed_call is not None else (tracer.stack[-1] if tracer.stack else -1)
    call = tracer.calls[failed] if 0 <= failed < len(tracer.calls) else None
    where = f" at layer '{call.name}' ({call.type})" if call and call.name else ""
    msg = first_line(e, "")
    if not isinstance(e, RuntimeError):  # PyTorch's errors speak for themselves; a KeyError('x') does not
        msg = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
    if "meta tensor" in msg or "data-independent" in msg or "register_meta" in msg:
        msg = without_torch_config_advice(msg)
        msg += (" (the forward reads tensor values (.item(), .tolist(), nonzero, a branch on a value): "
                "archlab counts on meta tensors, which hold shapes but no values; --engine real runs it "
                "on real tensors and counts that input" + use_cache_hint(model, kwargs) + ")")
    elif "scalar type" in msg or "scalar types" in msg or ("dtype" in msg and "expected" in msg.lower()):
        given = [t for t in (first, *(kwargs or {}).values()) if isinstance(t, torch.Tensor)]
        if any(t.is_floating_point() for t in given):
            msg += (" (give each input's dtype in --input-size / input_size: int64:128 is a 128-long int64 "
                    "input, token ids)")
        else:  # the inputs are integer already (token ids): the dtypes the op refuses are the model's
            inputs = ", ".join(sorted({str(t.dtype).removeprefix("torch.") for t in given}))
            msg += (f" (the inputs are {inputs} as given: the dtypes this op refuses are the model's own (its "
                    f"parameters are {dtype_name(floating_dtype(model))}, or its forward casts); cast the model, "
                    "or the layer, to a dtype the op takes)")
    elif "same device" in msg and any(p.device.type != "meta" for p in model.parameters()):
        # an op that checks devices before PyTorch splits it into the ops archlab sees (nn.LSTM)
        msg += (" (archlab runs the forward on meta tensors, and this layer checks that its weights are "
                "there too: build the model under 'with torch.device(\"meta\"):' to count it, or count it "
                "with --engine real)")
    elif training and "more than 1 value per channel" in msg and first is not None and first.shape[0] == 1:
        msg += " (training batch norm needs --batch 2 or more)"
    if training:
        return UserError(f"the training step failed{where}: {msg}")
    shape = "x".join(map(str, first.shape[1:])) if first is not None else "-"
    return UserError(f"the forward pass failed{where} for input {shape}: {msg}")


def use_cache_hint(model: nn.Module, kwargs: dict[str, Any] | None) -> str:
    """For a Hugging Face model given ``use_cache=False``: without a cache, transformers builds its
    causal mask from the values of the positions (a data-dependent check), where with one it does
    not, so ``use_cache=true`` traces on meta."""
    config = getattr(model, "config", None)
    if (kwargs or {}).get("use_cache") is False and getattr(config, "use_cache", None) is not None:
        return "; a Hugging Face decoder given use_cache=true traces on meta"
    return ""


def uncalled(model: nn.Module, calls: list[Call], called: set[int] = frozenset()) -> list[Uncalled]:
    """The outermost registered modules that neither ran nor hold a module that ran (``called``:
    the ids of the modules called, under whatever name: a shared module ran under every name)."""
    depth_of = {c.name: c.depth for c in calls}
    modules = dict(model.named_modules())
    ran = set()  # the modules called and their ancestors (containers such as nn.ModuleList are never called)
    names = list(depth_of) + [n for n, m in model.named_modules(remove_duplicate=False) if id(m) in called]
    for name in names:
        parts = name.split(".") if name else []
        ran.update(".".join(parts[:i]) for i in range(len(parts) + 1))
    held = {id(p) for name in depth_of if name and name in modules for p in modules[name].parameters()}
    out: list[Uncalled] = []
    # inside a TorchScript module no Python hook runs: whether its submodules ran is not known
    scripted = [n for n, m in modules.items() if isinstance(m, torch.jit.ScriptModule)]
    for name, m in modules.items():
        if name in ran or any(name.startswith(u.name + ".") for u in out):
            continue
        if any(s == "" or name == s or name.startswith(s + ".") for s in scripted):
            continue
        parent = name.rpartition(".")[0]
        while parent and parent not in depth_of:
            parent = parent.rpartition(".")[0]
        params = sum(p.numel() for p in {id(p): p for p in m.parameters()}.values() if id(p) not in held)
        out.append(Uncalled(name, type(m).__name__, depth_of.get(parent, 0) + 1, params))
    return out


def frozen_names(model: nn.Module, freeze: Sequence[str]) -> set[str]:
    """Names of the parameters whose module (or a module above it) matches a ``freeze`` glob."""
    if not freeze:
        return set()
    modules = [n for n, _ in model.named_modules() if n]
    frozen: set[str] = set()
    for pattern in freeze:
        if not isinstance(pattern, str) or not pattern:
            raise UserError(f"--freeze takes a module-name glob such as 'layer*' or 'features.*', got {pattern!r}")
        hits = [n for n in modules if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            shown = ", ".join(n for n in modules if "." not in n)
            raise UserError(f"--freeze {pattern}: no module of the model matches (its top-level modules: {shown})")
        for name, _ in model.named_parameters():
            parts = name.split(".")[:-1]
            if any(fnmatch.fnmatchcase(".".join(parts[:i]), pattern) for i in range(1, len(parts) + 1)):
                frozen.add(name)
    return frozen


def saved_for_backward(model: nn.Module, args: torch.Tensor | tuple[torch.Tensor, ...],
                       kwargs: dict[str, Any] | None = None, real: bool = False) -> list[torch.Tensor]:
    """The activations autograd keeps for the backward pass of one training step.

    Runs the forward once in training mode on meta tensors (nothing is computed or allocated;
    ``real``: on the real arguments as given, for a model built for ``--engine real``) under
    ``saved_tensors_hooks`` and returns the distinct saved tensors that are not parameters or
    buffers. The model's modes and attributes are put back afterwards, as every trace does."""
    params = {id(p) for p in model.parameters()} | {id(b) for b in model.buffers()}
    saved: dict[int, torch.Tensor] = {}

    def pack(t: torch.Tensor):
        base = t._base if t._base is not None else t
        if id(t) not in params and id(base) not in params:
            saved.setdefault(id(base), base)
        return t

    try:
        place = (lambda t: t) if real else to_meta
        with guarded(model), torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                (nullcontext() if real else MetaMode()):
            set_mode(model, True)
            model(*(place(t) for t in (args if isinstance(args, tuple) else (args,))),
                  **{k: place(v) for k, v in (kwargs or {}).items()})
    except SystemExit as e:
        raise UserError(f"the training-mode forward called sys.exit({e.code!r})") from None
    except Exception as e:  # noqa: BLE001 - the user's forward raised
        raise UserError(f"the training-mode forward failed: {first_line(e)}") from None
    return list(saved.values())


# --- building a model for a trace -----------------------------------------------------


@dataclass
class Built:
    """A model built for a trace, with the forward's arguments: ``resolved`` is None for an
    ``nn.Module`` given as such; ``weights``: the bytes of its real weights (``--engine real``
    under a memory budget), which the run's budget counts first."""

    module: nn.Module
    args: tuple[torch.Tensor, ...]
    kwargs: dict[str, Any]
    label: str
    resolved: Resolved | None = None
    weights: int = 0
    built_on_cpu: bool = False  # its builder reads tensor values: built on the CPU, then moved to meta


def build(model_or_spec: Any, inputs: Inputs, *, res: int | None = None, batch: int | None = None,
          alpha: float | None = None, options: dict[str, Any] | None = None, real: bool = False,
          device: str = "cpu", budget: Any = None, seed: int = 0, cpu_budget: Any = None) -> Built:
    """Resolve and build a registered model (on the meta device; with ``real``, on ``device``) or
    take an ``nn.Module`` as it is, and make the forward's arguments from ``inputs``.

    ``real``: the model's weights are initialised with the global RNG seeded with ``seed`` (the caller's
    RNG state is kept) and the inputs hold values drawn from ``seed`` (``tensor_maker``: floats, normal
    noise; integer masks, ones; token ids, random ids in the model's vocabulary), for builders and
    forwards that read them. ``budget`` (with ``real``; a ``measure.guard.MemoryBudget``, taken
    before the build): the built model's parameters and buffers must fit it. ``cpu_budget`` (without
    ``real``): a function giving the budget of a CPU build (a ``MemoryBudget``, or None for no limit):
    a builder that reads tensor values (a RegNet's widths) is then built on the CPU, seeded, its
    weights checked against that budget, and moved to meta for the trace, so no forward runs; without
    it, such a builder is refused in one line naming --engine real."""
    check_batch(batch)
    if res is not None and (isinstance(res, bool) or not isinstance(res, int)):
        raise UserError(f"res must be a whole number of pixels, got {res!r}")
    if isinstance(model_or_spec, nn.Module):
        model_or_spec = uncompiled(model_or_spec)
        if not inputs.given:
            raise UserError("input_size (C,H,W) is required for a model that is not registered")
        ignored = [k for k, v in (("res", res), ("alpha", alpha), ("options", options)) if v]
        if ignored:
            verb = "apply" if len(ignored) > 1 else "applies"
            raise UserError(f"{', '.join(ignored)} {verb} to registered models; an nn.Module is analysed as built, "
                            "on input_size")
        if real:  # the inputs go where the model's weights are
            device = str(next(iter(model_or_spec.parameters()), torch.empty(0)).device)
        empty = tensor_maker(real, device, seed, vocabulary(model_or_spec) if real else None)
        args, kwargs = module_inputs(model_or_spec, inputs, batch, empty)
        # the model was built before the budget was taken: its weights are not the run's to allocate
        return Built(model_or_spec, args, kwargs, type(model_or_spec).__name__)
    if not isinstance(model_or_spec, (str, ModelSpec)):
        raise UserError(f"a model is a registered name or spec (a string) or an nn.Module, "
                        f"not {type(model_or_spec).__name__}")
    resolved = resolve(model_or_spec, res=res, inputs=inputs, batch=batch, alpha=alpha, options=options)
    if real:
        with seeded(seed, device):
            model = _built(resolved, device)
    else:
        model = _built(resolved, "meta", cpu_budget is not None)
    on_cpu = model is None
    if on_cpu:  # the builder reads values: built on the CPU, then moved to meta for the trace
        budget = cpu_budget()
        with seeded(seed, "cpu"):
            model = _built(resolved, "cpu")
        held = _weight_bytes(model)
        if budget is not None and held > budget.limit:  # --engine real --force builds it all the same
            raise UserError(f"building {resolved.label} on the CPU (its builder reads tensor values) takes "
                            f"{human_bytes(held)} of weights, over 90% of the {human_bytes(budget.free)} free; "
                            "--engine real --force builds (and runs) it anyway")
        model = model.to("meta")
    weights = 0
    if real and budget is not None:
        weights = _weight_bytes(model)
        if weights > budget.limit:
            raise budget.refuse(weights, f"--engine real: the weights of {resolved.label}")
    # float inputs at the built model's dtype (a factory returning a .half() model gets fp16 inputs)
    empty = tensor_maker(real, device, seed, vocabulary(model) if real else None)
    args, kwargs = model_inputs(resolved.input_shapes, resolved.forward_options, empty, floating_dtype(model))
    return Built(model, args, kwargs, resolved.label, resolved, weights, on_cpu)


def _weight_bytes(model: nn.Module) -> int:
    """The bytes of a built model's parameters and buffers (an uninitialized one, which trace()
    refuses, has none yet)."""
    return sum(t.numel() * t.element_size() for t in {id(t): t for t in (*model.parameters(), *model.buffers())}.values()
               if not isinstance(t, nn.parameter.UninitializedTensorMixin))


def _built(resolved: Resolved, device: str, cpu_instead: bool = False) -> nn.Module | None:
    """The resolved model built on ``device``; a builder that reads tensor values fails on meta:
    None where ``cpu_instead`` (the caller builds it on the CPU), else the one-line error names
    --engine real."""
    try:
        return resolved.build(device=device)
    except UserError as e:
        if device == "meta" and ("meta tensor" in str(e) or "data-independent" in str(e)):
            if cpu_instead:
                return None
            raise UserError(f"{e} (the builder reads tensor values, which meta tensors do not hold: "
                            f"--engine real builds it on the CPU and counts it)") from None
        raise


def trace_built(built: Built, *, real: bool = False, budget: Any = None, seed: int = 0) -> Trace:
    """The forward trace of a built model; a registered model's failure names its default input
    where the input given differs from it. ``real``: the forward runs with the global RNG seeded with
    ``seed`` (a forward that draws random numbers draws the same ones), the caller's state kept."""
    if real:
        device = str(next(iter(built.module.parameters()), torch.empty(0)).device)
        with seeded(seed, device):
            return _trace_built(built, real, budget)
    return _trace_built(built, real, budget)


def _trace_built(built: Built, real: bool, budget: Any) -> Trace:
    if built.resolved is None:
        return trace(built.module, built.args, built.kwargs, real=real, budget=budget)
    try:
        return trace(built.module, built.args, built.kwargs, real=real, budget=budget, allocated=built.weights)
    except UserError as e:
        resolved = built.resolved
        try:
            if reads_the_model(resolved.info):
                raise e from None
            default = tuple(resolved.info.input_shape(**resolved.options))
        except UserError:  # a model without a default input: the forward's own error is the message
            raise e from None
        if not all(isinstance(d, int) for d in default):  # several inputs, declared by the model
            raise e from None
        if tuple(resolved.input_shape[1:]) != default:
            raise UserError(f"{e} (the model's default input is {'x'.join(map(str, default))})") from None
        raise


def trace_model(model_or_spec: Any, *, input_size: InputSize = None, res: int | None = None, batch: int | None = None,
                alpha: float | None = None, options: dict[str, Any] | None = None, real: bool = False,
                device: str = "cpu", forward_kw: Any = None, budget: Any = None, seed: int = 0) -> tuple[Trace, str]:
    """Build and trace in one call (``build`` then ``trace_built``). Returns (trace, label)."""
    built = build(model_or_spec, Inputs.of(input_size, forward_kw), res=res, batch=batch, alpha=alpha,
                  options=options, real=real, device=device, budget=budget, seed=seed)
    return trace_built(built, real=real, budget=budget, seed=seed), built.label
