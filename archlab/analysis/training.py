"""What one training step costs: the forward *and* the backward pass, traced on meta tensors.

``trace_training`` runs the model's training-mode forward (batch norm on batch statistics,
dropout on), ``loss = sum of every floating tensor output .sum()``, and ``loss.backward()``,
all under the same ``TorchDispatchMode`` as the forward trace: autograd runs the backward
through the dispatcher, so every ATen op of the backward is recorded too (what is counted is
what autograd runs: a frozen parameter gets no weight gradient, and a layer whose input needs no
gradient -- the first layer -- computes none for its input).

The model is never modified: it runs through ``torch.func.functional_call`` on fresh meta leaf
tensors standing in for its parameters and buffers (each requiring a gradient as the parameter
does, unless ``freeze`` names its module), so no ``.grad`` is written to the user's model.

Attribution of backward ops to layers is exact, not by shape: while the forward runs, each
output's ``grad_fn`` (the autograd node the op created) is mapped to the module call the op ran
in; during the backward, ``torch._C._current_autograd_node()`` says which node is running, and
so which module's forward it differentiates. Ops of no module's node (the loss's seed gradient,
the accumulation into ``.grad``) count for the model as a whole.

The split of backward MACs: ``convolution_backward`` computes the gradient of its input
(the transposed convolution of the output gradient; counted only when ``output_mask[0]``) and of
its weight (``output_mask[1]``): its parts are the input-gradient and weight-gradient MACs. A
matrix multiply of the backward (``mm``, ``bmm``) is a weight-gradient op when its result
reaches a parameter's ``.grad`` through views, copies and additions only; otherwise it computes
the gradient of an activation (an input gradient).
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from archlab.analysis.costs import MAC_KINDS, OpCosts, op_view
from archlab.analysis.trace import (
    INPUT, PARAM, OP_ATTRS, Trace, _check_keywords, _checked_sizes, _left_as_found, _model_inputs, _modes_restored,
    _nested_tensors, _Recorder, _tensors, _to_meta, _Tracer, described_shape, module_inputs)
from archlab.errors import UserError, first_line
from archlab.models.resolve import resolve
from archlab.spec import with_forward_kw


@OP_ATTRS.rule("convolution_backward")
def _conv_backward_attrs(name: str, args: tuple) -> dict[str, Any]:
    # convolution_backward(grad_output, input, weight, bias_sizes, stride, padding, dilation,
    #                      transposed, output_padding, groups, output_mask)
    w = args[2]
    return {
        "kernel": tuple(w.shape[2:]),
        "stride": tuple(args[4]),
        "padding": tuple(args[5]),
        "dilation": tuple(args[6]),
        "transposed": bool(args[7]),
        "groups": int(args[9]),
        "output_mask": tuple(bool(m) for m in args[10]),
    }


def conv_backward_parts(grad_output: Sequence[int], input: Sequence[int], weight: Sequence[int],
                        transposed: bool, output_mask: Sequence[bool]) -> tuple[int, int]:
    """(input-gradient MACs, weight-gradient MACs) of one ``convolution_backward``.

    Both parts are the forward convolution's MACs, grouped and depthwise convolutions included:
    the input gradient is the transposed convolution of the output gradient with the weight
    (each product of the forward, ``x[i] * w[j]`` feeding ``y[k]``, is one product
    ``g[k] * w[j]`` feeding ``dx[i]``), and the weight gradient pairs the same ``x[i]`` with
    ``g[k]`` for ``dw[j]``. A forward convolution (N, Cout, H', W') from weight
    (Cout, Cin/groups, kh, kw) has N*Cout*H'*W'*Cin/groups*kh*kw of them; a transposed one,
    N*H*W (its input's positions) * Cin*Cout/groups*kh*kw."""
    if transposed:  # the forward's input is `input`, its weight (Cin, Cout/groups, k...)
        forward = input[0] * math.prod(weight) * math.prod(input[2:])
    else:
        forward = math.prod(grad_output) * math.prod(weight[1:])
    return (forward if output_mask[0] else 0), (forward if output_mask[1] else 0)


@dataclass
class TrainingTrace:
    """A trace of one training step: ``trace.ops[:backward_start]`` are the forward (and the
    loss), the rest the backward; a backward op's ``call`` is the module call whose forward it
    differentiates (-1: none)."""

    trace: Trace
    backward_start: int
    param_grads: list[int]  # value ids of the parameters' gradients, as autograd left them
    frozen: tuple[str, ...]  # parameter names that got no gradient because --freeze named their module
    freeze: tuple[str, ...] = ()  # the --freeze patterns
    frozen_params: int = 0  # parameters (elements) that --freeze left without a gradient


class _TrainingTracer(_Tracer):
    """The forward tracer, which also records the autograd node each forward op creates and,
    during the backward, attributes each op to the module call of the node being run."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.backward_start: int | None = None
        self.node_call: dict[Any, int] = {}
        self.pending: list[tuple[torch.Tensor, int]] = []

    def resolve_nodes(self) -> None:
        for t, call in self.pending:
            node = t.grad_fn
            if node is not None and node not in self.node_call:
                self.node_call[node] = call
        self.pending = []

    def on_op(self, func, args, kwargs):
        if self.backward_start is None:
            self.resolve_nodes()  # the previous op's outputs have their grad_fn by now
            out = super().on_op(func, args, kwargs)
            call = self.stack[-1] if self.stack else -1
            flat = out if isinstance(out, (tuple, list)) else (out,)
            self.pending.extend((t, call) for t in _tensors(flat))
            return out
        node = torch._C._current_autograd_node()
        call = self.node_call.get(node, -1) if node is not None else -1
        saved, self.stack = self.stack, ([call] if call >= 0 else [])
        try:
            out = super().on_op(func, args, kwargs)
        finally:
            self.stack = saved
        if node is not None and type(node).__name__ == "AccumulateGrad":
            # The tracer holds a reference to every tensor, so AccumulateGrad copies each gradient
            # into .grad; an eager step, where nothing else holds it, takes the gradient as it is.
            self.ops[-1].attrs["accumulate_grad"] = True
        return out


def _frozen_names(model: nn.Module, freeze: Sequence[str]) -> set[str]:
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


def trace_training(model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...],
                   freeze: Sequence[str] = (), kwargs: dict[str, Any] | None = None) -> TrainingTrace:
    """Trace one training step of ``model`` on ``inputs`` and the keyword arguments ``kwargs``
    (default: ``inputs.kwargs`` of a ``TrainingInputs``; tensors, shapes only, on meta, and options
    of the forward): the training-mode forward, ``loss = sum of every output's .sum()``, and
    ``loss.backward()``."""
    if kwargs is None:
        kwargs = getattr(inputs, "kwargs", None)
    inputs = tuple(inputs) if isinstance(inputs, tuple) else (inputs,)
    meta_inputs = tuple(_to_meta(t) for t in inputs)
    meta_kwargs = {k: _to_meta(v) for k, v in (kwargs or {}).items()}
    _check_keywords(model, list(meta_kwargs))
    frozen = _frozen_names(model, freeze)
    state: dict[str, torch.Tensor] = {}
    stand_in: dict[int, torch.Tensor] = {}  # a parameter registered twice stays one tensor
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) not in stand_in:
            stand_in[id(p)] = torch.empty(p.shape, dtype=p.dtype, device="meta").requires_grad_(
                p.requires_grad and name not in frozen)
        state[name] = stand_in[id(p)]
    for name, b in model.named_buffers(remove_duplicate=False):
        state[name] = torch.empty(b.shape, dtype=b.dtype, device="meta")
    tracer = _TrainingTracer(model)
    for name, t in state.items():
        tracer._new_value(t, PARAM, name=name)
    in_ids = [tracer._new_value(t, INPUT) for t in meta_inputs]
    in_ids += [tracer._new_value(t, INPUT, name=k) for k, t in meta_kwargs.items() if isinstance(t, torch.Tensor)]
    from torch.nn.modules import module as module_mod

    h_pre = module_mod.register_module_forward_pre_hook(tracer.pre_hook)
    h_post = module_mod.register_module_forward_hook(tracer.post_hook, always_call=True)
    try:
        with _modes_restored(model), _left_as_found(model), torch.enable_grad(), _Recorder(tracer):
            model.train()
            out = torch.func.functional_call(model, state, meta_inputs, meta_kwargs, tie_weights=True, strict=False)
            outs = [t for t in _nested_tensors(out) if t.is_floating_point()]
            h_pre.remove()
            h_post.remove()
            needs = [t for t in outs if t.requires_grad]
            loss = None
            for t in needs:
                loss = t.sum() if loss is None else loss + t.sum()
            tracer.resolve_nodes()
            tracer.backward_start = len(tracer.ops)
            if loss is not None:
                loss.backward()  # its seed, ones_like, has a shape rule: PyTorch's imports sympy (1 s)
    except UserError:
        raise
    except SystemExit as e:
        raise UserError(f"the training step called sys.exit({e.code!r})") from None
    except Exception as e:  # noqa: BLE001 - the user's forward raised
        failed = tracer.failed_call if tracer.failed_call is not None else (tracer.stack[-1] if tracer.stack else -1)
        call = tracer.calls[failed] if 0 <= failed < len(tracer.calls) else None
        where = f" at layer '{call.name}' ({call.type})" if call and call.name else ""
        msg = first_line(e, "")
        if "more than 1 value per channel" in msg and meta_inputs and meta_inputs[0].shape[0] == 1:
            msg += " (training batch norm needs --batch 2 or more)"
        raise UserError(f"the training step failed{where}: {msg}") from None
    finally:
        h_pre.remove()
        h_post.remove()
    if tracer.backward_start is None:
        tracer.backward_start = len(tracer.ops)
    grads = []
    seen: set[int] = set()
    for t in state.values():
        if t.requires_grad and id(t) not in seen and t.grad is not None:
            seen.add(id(t))
            grads.append(tracer.value_of(t.grad))
    model_params = list({id(p): p for p in model.parameters()}.values())
    head = tracer.values[in_ids[0]] if in_ids else None
    trace = Trace(
        input_shape=described_shape(head.shape, head.dtype, head.name) if head else (),
        values=tracer.values,
        ops=tracer.ops,
        calls=tracer.calls,
        inputs=in_ids,
        outputs=[tracer.value_of(t) for t in _nested_tensors(out)],
        params=sum(p.numel() for p in model_params),
        trainable_params=sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and n not in frozen),
    )
    frozen_params = sum(p.numel() for n, p in dict(model.named_parameters()).items() if n in frozen and p.requires_grad)
    return TrainingTrace(trace, tracer.backward_start, grads, tuple(sorted(frozen)), tuple(freeze), frozen_params)


# --- the split of backward MACs -------------------------------------------------------

# ops a gradient passes through on its way into .grad unchanged in value (views, copies, sums of
# the contributions of a parameter used more than once)
_PASS = {"add", "add_", "clone", "_to_copy", "copy_", "copy", "contiguous", "detach", "view", "_unsafe_view",
         "reshape", "t", "transpose", "permute", "expand", "squeeze", "unsqueeze", "alias", "as_strided",
         "_reshape_alias", "view_as", "flatten"}


def weight_grad_ops(tt: TrainingTrace) -> set[int]:
    """Backward ops whose result reaches a parameter's gradient through _PASS ops only."""
    tr = tt.trace
    found: set[int] = set()
    todo = list(tt.param_grads)
    seen: set[int] = set()
    while todo:
        vid = todo.pop()
        if vid in seen:
            continue
        seen.add(vid)
        v = tr.values[vid]
        if v.alias_of is not None:
            todo.append(v.alias_of)
        if v.producer < tt.backward_start:
            continue
        op = tr.ops[v.producer]
        if op.name in _PASS:
            todo.extend(op.inputs)
        else:
            found.add(op.index)
    return found


@dataclass(frozen=True)
class BackwardSplit:
    """Per op of the backward: (input-gradient MACs, weight-gradient MACs)."""

    input_grad: list[int]  # per op, 0 for forward ops
    weight_grad: list[int]


def split_backward(tt: TrainingTrace, costs: OpCosts) -> BackwardSplit:
    tr = tt.trace
    n = len(tr.ops)
    ig, wg = [0] * n, [0] * n
    weight_ops = weight_grad_ops(tt)
    for op in tr.ops[tt.backward_start:]:
        macs = costs.macs[op.index]
        if not macs or costs.kinds[op.index] not in MAC_KINDS:
            continue
        if op.name == "convolution_backward":
            view = op_view(op, tr)
            a, b = conv_backward_parts(view.input_shapes[0], view.input_shapes[1], view.input_shapes[2],
                                       op.attrs["transposed"], op.attrs["output_mask"])
            ig[op.index], wg[op.index] = a, b
        elif op.index in weight_ops:
            wg[op.index] = macs
        else:
            ig[op.index] = macs
    return BackwardSplit(ig, wg)


class TrainingInputs(tuple):
    """The positional inputs of a training step (a tuple of meta tensors), with ``kwargs``: its
    keyword inputs (token ids by name) and the forward's non-tensor options (``use_cache=false``)."""

    kwargs: dict[str, Any]

    def __new__(cls, args: Sequence[torch.Tensor], kwargs: dict[str, Any] | None = None) -> TrainingInputs:
        self = super().__new__(cls, tuple(args))
        self.kwargs = dict(kwargs or {})
        return self


def _meta_empty(shape: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    try:
        return torch.empty(tuple(shape), device="meta", dtype=dtype)
    except (RuntimeError, TypeError, OverflowError):  # a size or an element count beyond int64
        raise UserError(f"input {'x'.join(map(str, shape))} is too large to describe") from None


def build_for_training(model_or_spec: Any, *, input_size: Any = None, res: int | None = None,
                       batch: int | None = None, alpha: float | None = None,
                       options: dict[str, Any] | None = None,
                       forward_kw: Any = None) -> tuple[nn.Module, TrainingInputs, str]:
    """(model, meta inputs, label) for a registered model (built on meta) or an ``nn.Module``; the
    inputs have their dtypes (token ids: int64) and keywords (``inputs.kwargs``) as given."""
    input_size, batch = _checked_sizes(with_forward_kw(input_size, forward_kw), batch)
    if isinstance(model_or_spec, nn.Module):
        if input_size is None:
            raise UserError("input_size (C,H,W) is required for a model that is not registered")
        args, kwargs = module_inputs(model_or_spec, input_size, batch, _meta_empty)
        return model_or_spec, TrainingInputs(args, kwargs), type(model_or_spec).__name__
    resolved = resolve(model_or_spec, res=res, input_size=input_size, batch=batch, alpha=alpha, options=options)
    model = resolved.build(device="meta")
    args, kwargs = _model_inputs(resolved.input_shapes, resolved.forward_options, _meta_empty, torch.float32)
    return model, TrainingInputs(args, kwargs), resolved.label


# --- output shapes of the backward ops ------------------------------------------------
# PyTorch's meta kernels of most *_backward ops are Python decompositions whose first call
# imports torch._dynamo (about 1.5 s, more than the whole count); their shapes are simple.

def _like(t: torch.Tensor | None, shape: Any = None) -> torch.Tensor:
    return torch.empty(tuple(t.shape) if shape is None else tuple(shape), dtype=t.dtype, device="meta")


def _first_like(args: tuple, kwargs: dict) -> torch.Tensor:
    return _like(args[0])


def _second_like(args: tuple, kwargs: dict) -> torch.Tensor:
    return _like(args[1])


def _like_factory(args: tuple, kwargs: dict) -> torch.Tensor:
    # empty_like / zeros_like / ones_like / full_like: contiguous, on meta, in the asked dtype
    t = args[0]
    return torch.empty(tuple(t.shape), dtype=kwargs.get("dtype") or t.dtype, device="meta")


def _conv_backward_shapes(args: tuple, kwargs: dict) -> tuple:
    grad, inp, weight, bias_sizes = args[:4]
    mask = args[10]
    bias = _like(grad, tuple(bias_sizes) if bias_sizes else (weight.shape[0],)) if mask[2] else None
    return (_like(inp) if mask[0] else None, _like(weight) if mask[1] else None, bias)


def _batch_norm_backward_shapes(args: tuple, kwargs: dict) -> tuple:
    inp, weight = args[1], args[2]
    mask = args[-1]
    c = (inp.shape[1],)
    return (_like(inp) if mask[0] else None, _like(inp, c) if mask[1] else None,
            _like(inp, c) if mask[2] else None)


def _upsample_backward_shape(args: tuple, kwargs: dict) -> torch.Tensor:
    return _like(args[0], args[2])


def _sizes_backward_shape(args: tuple, kwargs: dict) -> torch.Tensor:
    # slice_backward / select_backward(grad, input_sizes, ...): the gradient of the whole input
    return _like(args[0], args[1])


def _register_backward_shapes() -> None:
    from archlab.analysis.shapes import SHAPE_RULES

    aten = torch.ops.aten
    same = ("threshold_backward", "hardtanh_backward", "sigmoid_backward", "tanh_backward", "silu_backward",
            "gelu_backward", "hardswish_backward", "hardsigmoid_backward", "leaky_relu_backward", "elu_backward",
            "softplus_backward", "mish_backward", "native_dropout_backward", "_softmax_backward_data",
            "_log_softmax_backward_data")
    rules: list[tuple[Any, Any]] = [(getattr(aten, n).default, _first_like) for n in same if hasattr(aten, n)]
    rules += [(getattr(aten, n).default, _like_factory) for n in ("empty_like", "zeros_like", "ones_like", "full_like")]
    rules += [(aten.max_pool2d_with_indices_backward.default, _second_like),
              (aten.avg_pool2d_backward.default, _second_like),
              (aten.avg_pool3d_backward.default, _second_like),
              (aten.max_pool3d_with_indices_backward.default, _second_like),
              (aten.index_add.default, _first_like),
              (aten.slice_backward.default, _sizes_backward_shape),
              (aten.select_backward.default, _sizes_backward_shape),
              (aten._adaptive_avg_pool2d_backward.default, _second_like),
              (aten.adaptive_max_pool2d_backward.default, _second_like),
              (aten.convolution_backward.default, _conv_backward_shapes),
              (aten.native_batch_norm_backward.default, _batch_norm_backward_shapes),
              (aten.upsample_nearest2d_backward.default, _upsample_backward_shape),
              (aten.upsample_bilinear2d_backward.default, _upsample_backward_shape)]
    for op, rule in rules:
        if op not in SHAPE_RULES:
            SHAPE_RULES.register(op, rule)


_register_backward_shapes()
