"""One trace of a model, read by every analysis.

The trace runs the model's forward once on *meta* tensors under a
``TorchDispatchMode``: every ATen operation is recorded (so functional calls
inside ``forward`` -- ``F.relu``, ``x + y``, ``torch.cat``, ``F.interpolate`` --
are seen as well as modules), attributed to the innermost module call it
happened in, and linked to the operations that produced its inputs (the data
flow that the receptive-field and memory analyses follow through branches and
merges).

No convolution runs and no activation is allocated: meta tensors carry shapes
only. Parameters may live on any device; each operation sees meta copies of
its arguments (``Tensor.to("meta")`` copies no data), so the user's model is
never moved or modified. This is the only module that installs hooks, and it
removes them in ``finally``.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from archlab.analysis.rules import OpRules
from archlab.analysis.shapes import SHAPE_RULES, Vanished
from archlab.errors import UserError, first_line
from archlab.models.resolve import reads_the_model, resolve
from archlab.spec import ForwardOption, InputShape, ModelSpec, input_dtype, parse_input_size, with_forward_kw
from archlab.units import pair as _pair
from archlab.user_code import user_code

# Producers of values that no traced operation made.
INPUT = -1  # an input of the model
PARAM = -2  # a parameter or buffer of the model
CONST = -3  # any other tensor the forward found (a constant, a captured tensor)


@dataclass
class Value:
    """A tensor as it flows through the trace."""

    id: int
    shape: tuple[int, ...]
    dtype: torch.dtype
    producer: int  # op index, or INPUT / PARAM / CONST
    alias_of: int | None = None  # the value whose storage this one shares (views, in-place results)
    name: str = ""  # parameter name for PARAM values

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize


@dataclass
class Op:
    """One ATen operation."""

    index: int
    target: str  # e.g. "aten.convolution.default"
    name: str  # overload packet, e.g. "convolution"
    call: int  # innermost module call, -1 when outside every module
    inputs: list[int]  # value ids, in argument order (tensors only)
    outputs: list[int]
    attrs: dict[str, Any] = field(default_factory=dict)  # geometry of conv/pool ops


@dataclass
class Call:
    """One call of a module's ``forward``."""

    index: int
    name: str  # qualified name in the model ("" for the model itself)
    type: str  # class name
    parent: int  # -1 for the root call
    depth: int
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    first_op: int = 0
    end_op: int = 0  # one past the last op inside this call
    params: int = 0  # parameters of the module, its children included
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Uncalled:
    """A registered module that the (eval-mode) forward did not call, nor any module inside it
    (GoogLeNet's auxiliary heads run only in training); only the outermost such module is kept."""

    name: str
    type: str
    depth: int  # the depth a call would have had: its nearest called ancestor's plus one
    params: int  # its parameters that no called module also holds


@dataclass
class Trace:
    input_shape: tuple[int, ...]
    values: list[Value]
    ops: list[Op]
    calls: list[Call]
    inputs: list[int]
    outputs: list[int]
    params: int
    trainable_params: int
    uncalled: list[Uncalled] = field(default_factory=list)


# --- geometry recorded for the analyses ----------------------------------------


# op -> fn(name, meta args) -> the attributes recorded on the traced op
OP_ATTRS: OpRules[Callable[[str, tuple], dict[str, Any]]] = OpRules("recorded-attributes rule")


@OP_ATTRS.rule("convolution")
def _conv_attrs(name: str, args: tuple) -> dict[str, Any]:
    _i, w, _b, stride, padding, dilation, transposed, output_padding, groups = args[:9]
    return {
        "kernel": tuple(w.shape[2:]),
        "stride": tuple(stride),
        "padding": tuple(padding),
        "dilation": tuple(dilation),
        "transposed": bool(transposed),
        "output_padding": tuple(output_padding),
        "groups": int(groups),
    }


@OP_ATTRS.rule("avg_pool3d", "max_pool3d_with_indices")
def _pool3d_attrs(name: str, args: tuple) -> dict[str, Any]:
    kernel = _pair(args[1], 3)
    stride = _pair(args[2], 3) if len(args) > 2 and args[2] else kernel
    padding = _pair(args[3], 3) if len(args) > 3 else (0, 0, 0)
    return {"kernel": kernel, "stride": stride, "padding": padding, "dilation": (1, 1, 1)}


@OP_ATTRS.rule("slice")
def _slice_attrs(name: str, args: tuple) -> dict[str, Any]:
    dim = args[1] if len(args) > 1 else 0
    start = args[2] if len(args) > 2 and args[2] is not None else 0
    step = args[4] if len(args) > 4 else 1
    size = args[0].shape[dim]
    start = max(start + size, 0) if start < 0 else min(start, size)
    return {"slice": (dim, start, step)}


@OP_ATTRS.rule("constant_pad_nd", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d",
               "replication_pad1d", "replication_pad2d", "replication_pad3d")
def _pad_attrs(name: str, args: tuple) -> dict[str, Any]:
    return {"pad": tuple(args[1])}


@OP_ATTRS.rule("max_pool2d_with_indices", "max_pool2d", "avg_pool2d")
def _pool2d_attrs(name: str, args: tuple) -> dict[str, Any]:
    kernel = _pair(args[1])
    stride = _pair(args[2]) if len(args) > 2 and args[2] else kernel
    padding = _pair(args[3]) if len(args) > 3 else (0, 0)
    if name == "avg_pool2d":  # avg_pool2d(input, kernel, stride, padding, ceil_mode, ...)
        dilation, ceil_mode = (1, 1), bool(args[4]) if len(args) > 4 else False
    else:  # max_pool2d(input, kernel, stride, padding, dilation, ceil_mode)
        dilation = _pair(args[4]) if len(args) > 4 else (1, 1)
        ceil_mode = bool(args[5]) if len(args) > 5 else False
    return {"kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation, "ceil_mode": ceil_mode}


def _op_attrs(func: Any, name: str, args: tuple) -> dict[str, Any]:
    rule = OP_ATTRS.get(func)
    return rule(name, args) if rule is not None else {}


def _module_attrs(module: nn.Module) -> dict[str, Any]:
    out: dict[str, Any] = {}
    attrs = module.__dict__  # plain attributes only: nn.Module.__getattr__ on a miss is slow
    for key in ("kernel_size", "stride", "padding", "dilation", "groups", "in_channels", "out_channels",
                "in_features", "out_features"):
        v = attrs.get(key)
        if isinstance(v, (int, tuple)) and not isinstance(v, bool):
            out[key] = v
    return out


# --- the tracer -----------------------------------------------------------------


class _Recorder(TorchDispatchMode):
    """Records every ATen op; runs it on meta tensors."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # The base class wraps __torch_dispatch__ in torch._disable_dynamo, whose
        # first call imports torch._dynamo (1.5 s). The trace is never compiled.
        return False

    def __init__(self, tracer: "_Tracer") -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        return self.tracer.on_op(func, args, kwargs)


class _Tracer:
    def __init__(self, model: nn.Module) -> None:
        self.values: list[Value] = []
        self.ops: list[Op] = []
        self.calls: list[Call] = []
        self.stack: list[int] = []
        self.failed_call: int | None = None  # the module call in which an op failed
        self.vid_of: dict[int, int] = {}  # id(tensor) -> value id
        self.keep: list[torch.Tensor] = []  # keeps traced tensors alive so their ids stay unique
        self.names: dict[int, str] = {}
        for n, m in model.named_modules(remove_duplicate=False):
            self.names.setdefault(id(m), n)  # a shared module goes by its first name (self.c, not its alias)
        self.unregistered = 0
        self.real = False  # --engine real: ops run on the real tensors (values read, memory used)
        # --engine real: what the run may allocate (a MemoryBudget: .limit, .refuse), and the bytes of the
        # tensors it has made so far (every one is kept); None: unguarded (--force)
        self.budget: Any = None
        self.allocated = 0
        self.stopped: UserError | None = None  # the budget's error, should the forward have caught it
        self.mkldnn_saved: list[bool | None] = []  # oneDNN's flag as it was, per recurrent layer entered
        self.param_counts: dict[int, int] = {}
        # a parameter held by several modules (tied weights: GPT-2's head and its embedding) is owned
        # by the first that registers it, in the model's own order, as model.parameters() counts it
        # once: the other modules' rows do not count it again
        self.param_owner: dict[int, int] = {}
        for m in model.modules():
            for p in m._parameters.values():
                if p is not None:
                    self.param_owner.setdefault(id(p), id(m))
        for n, p in list(model.named_parameters(remove_duplicate=True)) + list(model.named_buffers()):
            self._new_value(p, PARAM, name=n)

    # values
    def _new_value(self, t: torch.Tensor, producer: int, alias_of: int | None = None, name: str = "") -> int:
        vid = len(self.values)
        self.values.append(Value(vid, tuple(t.shape), t.dtype, producer, alias_of, name))
        self.vid_of[id(t)] = vid
        self.keep.append(t)
        return vid

    def value_of(self, t: torch.Tensor) -> int:
        vid = self.vid_of.get(id(t))
        if vid is None:
            vid = self._new_value(t, CONST)
        return vid

    # ops
    def on_op(self, func, args, kwargs):
        name = func._overloadpacket.__name__
        flat_in = _tensors(args) + (_tensors(tuple(kwargs.values())) if kwargs else [])
        in_ids = [self.value_of(t) for t in flat_in]
        margs, mkwargs = (args, kwargs) if self.real else _on_meta(args, kwargs, flat_in)
        try:
            out = func(*margs, **mkwargs) if self.real else _run_on_meta(func, margs, mkwargs)
        except Exception as e:
            if self.failed_call is None:
                self.failed_call = self.stack[-1] if self.stack else -1
            if not isinstance(e, Vanished):
                raise
            call = self.calls[self.stack[-1]] if self.stack else None
            where = f"layer '{call.name}' ({call.type})" if call else f"op {name}"
            raise UserError(
                f"the input is too small: the feature map vanishes at {where} "
                f"(a {'x'.join(map(str, e.spatial))} map under a {'x'.join(map(str, e.kernel))} kernel)"
            ) from None
        index = len(self.ops)
        op = Op(index, str(func), name, self.stack[-1] if self.stack else -1, in_ids, [], _op_attrs(func, name, margs))
        self.ops.append(op)
        flat_out = _tensors(out if isinstance(out, (tuple, list)) else (out,), keep_none=True)
        schema_aliases = _output_aliases(func)
        for pos, t in enumerate(flat_out):
            if not isinstance(t, torch.Tensor):
                continue
            alias = None
            arg_pos = schema_aliases.get(pos)
            if arg_pos is not None and arg_pos < len(args) and isinstance(args[arg_pos], torch.Tensor):
                alias = self.value_of(args[arg_pos])
            op.outputs.append(self._new_value(t, index, alias))
            if self.budget is not None and alias is None and not t.is_meta:
                self._allocated(t.numel() * t.element_size())
        return out

    def _allocated(self, nbytes: int) -> None:
        """Count the bytes of a tensor the real run made; past the budget, stop the run (each later
        op raises again, should the forward catch the first error)."""
        self.allocated += nbytes
        if self.allocated > self.budget.limit:
            self.stopped = self.budget.refuse(self.allocated, "--engine real (a real forward, every tensor kept)",
                                              so_far=True)
            raise self.stopped

    # recurrent layers on the CPU: PyTorch runs an LSTM with real weights as one oneDNN op per layer
    # (mkldnn_rnn_layer), which hides the gates' element-wise work (and which FlopCounterMode does not
    # count at all); with oneDNN off inside the layer, at::lstm runs the same decomposition as on meta
    # (addmm per step, sigmoid/tanh/mul/add of the gates), counted op by op: the same MACs and other
    # operations as the meta trace
    def _rnn_enter(self) -> None:
        get = getattr(torch._C, "_get_mkldnn_enabled", None)
        self.mkldnn_saved.append(get() if get is not None else None)
        if get is not None:
            torch._C._set_mkldnn_enabled(False)

    def _rnn_leave(self) -> None:
        if self.mkldnn_saved:
            saved = self.mkldnn_saved.pop()
            if saved is not None:
                torch._C._set_mkldnn_enabled(saved)

    def restore_backends(self) -> None:
        """oneDNN back as it was, whatever a forward that raised inside a recurrent layer left."""
        while self.mkldnn_saved:
            self._rnn_leave()

    # module calls
    def pre_hook(self, module, args):
        if self.real and isinstance(module, nn.RNNBase):
            self._rnn_enter()
        parent = self.stack[-1] if self.stack else -1
        depth = self.calls[parent].depth + 1 if parent >= 0 else 0
        key = id(module)
        if key not in self.param_counts:
            self.param_counts[key] = _count_params(module, self.param_counts, self.param_owner)
        if key not in self.names:  # called by the forward, but not a submodule (kept in a plain list?)
            self.unregistered += 1
            self.names[key] = f"(unregistered {type(module).__name__} #{self.unregistered})"
        call = Call(
            index=len(self.calls),
            name=self.names[key],
            type=type(module).__name__,
            parent=parent,
            depth=depth,
            inputs=[self.value_of(t) for t in _nested_tensors(args)],
            first_op=len(self.ops),
            params=self.param_counts[key],
            attrs=_module_attrs(module),
        )
        self.calls.append(call)
        self.stack.append(call.index)

    def post_hook(self, module, args, output):
        if self.real and isinstance(module, nn.RNNBase):
            self._rnn_leave()
        if not self.stack:
            return
        call = self.calls[self.stack.pop()]
        call.end_op = len(self.ops)
        call.outputs = [self.value_of(t) for t in _nested_tensors(output)]


def _tensors(items, keep_none: bool = False) -> list:
    """The tensors among an ATen op's arguments (or outputs): flat, or in one level of lists."""
    out = []
    for x in items:
        if isinstance(x, torch.Tensor):
            out.append(x)
        elif isinstance(x, (list, tuple)):
            out.extend(t for t in x if isinstance(t, torch.Tensor))
        elif keep_none and x is None:
            out.append(None)
    return out


def _nested_tensors(obj) -> list:
    """The tensors in a module's inputs or outputs, however nested (tuples, lists, dicts)."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for x in obj for t in _nested_tensors(x)]
    if isinstance(obj, dict):
        return [t for x in obj.values() for t in _nested_tensors(x)]
    return []


def _to_meta_args(args):
    return tuple([_to_meta(t) for t in x] if isinstance(x, list) else _to_meta(x) for x in args)


def _on_meta(args: tuple, kwargs: dict, tensors: list | None = None) -> tuple[tuple, dict]:
    """An op's arguments with every tensor on the meta device (meta copies: no data is copied);
    ``tensors``: the tensors among them, when the caller has them already."""
    if tensors is None:
        tensors = _tensors(args) + (_tensors(tuple(kwargs.values())) if kwargs else [])
    if all(t.device.type == "meta" for t in tensors):
        return args, kwargs
    return _to_meta_args(args), {k: _to_meta_args((v,))[0] for k, v in kwargs.items()}


def _run_on_meta(func: Any, args: tuple, kwargs: dict) -> Any:
    """Run an op on meta arguments: by its shape rule when it has one (see ``shapes``), else by
    PyTorch's meta kernel."""
    rule = SHAPE_RULES.get(func)
    return rule(args, kwargs) if rule is not None else func(*args, **kwargs)


@contextlib.contextmanager
def _modes_restored(model: nn.Module) -> Iterator[None]:
    """Every module's ``training`` flag is put back as it was after the body, even when it raises."""
    modes = {m: m.training for m in model.modules()}
    try:
        yield
    finally:
        for m, mode in modes.items():
            m.training = mode


def _count_params(module: nn.Module, memo: dict[int, int], owner: dict[int, int]) -> int:
    """Parameters of a module and its children (memoized over the module tree). A parameter that
    ``owner`` gives to another module (a tied weight registered there first) is that module's;
    one no registered module holds (a module the model does not register) is its holder's."""
    mine = id(module)
    total = sum(p.numel() for p in module._parameters.values()
                if p is not None and owner.get(id(p), mine) == mine)
    for child in module._modules.values():
        if child is None:
            continue
        key = id(child)
        if key not in memo:
            memo[key] = _count_params(child, memo, owner)
        total += memo[key]
    return total


def _to_meta(x):
    if isinstance(x, torch.Tensor) and x.device.type != "meta":
        return x.to("meta")
    return x


_ALIAS_CACHE: dict[Any, dict[int, int]] = {}


def _output_aliases(func) -> dict[int, int]:
    """Which outputs share storage with which argument (views and in-place ops)."""
    cached = _ALIAS_CACHE.get(func)
    if cached is not None:
        return cached
    schema = func._schema
    arg_sets = {}
    for i, a in enumerate(schema.arguments):
        if a.alias_info is not None:
            for s in a.alias_info.before_set:
                arg_sets.setdefault(s, i)
    result = {}
    for j, r in enumerate(schema.returns):
        if r.alias_info is not None:
            for s in r.alias_info.before_set:
                if s in arg_sets:
                    result[j] = arg_sets[s]
    _ALIAS_CACHE[func] = result
    return result


_MISSING = object()
_INNER = ("_parameters", "_buffers", "_modules", "_non_persistent_buffers_set")


def _put_back(live, saved) -> None:
    """Make the dict (or set) ``live`` hold again exactly what ``saved`` held, touching only
    what differs."""
    if isinstance(live, set):
        live.intersection_update(saved)
        live.update(saved)
        return
    for key in [k for k in live if k not in saved]:
        del live[key]
    for key, value in saved.items():
        if live.get(key, _MISSING) is not value:
            live[key] = value


@contextlib.contextmanager
def _left_as_found(model: nn.Module):
    """Whatever a forward does to the modules' attributes (``self.counter = self.counter + 1``
    replaces a buffer with the meta result; ``self.cache = y`` keeps a meta tensor; a lazy
    module materializes) is undone afterwards: every module's attributes, parameters, buffers
    and children are put back as they were, the same objects."""
    grads = [(p, p.requires_grad) for p in model.parameters()]
    saved = []
    for m in model.modules():
        inner = {k: (m.__dict__[k], set(m.__dict__[k]) if isinstance(m.__dict__[k], set) else dict(m.__dict__[k]))
                 for k in _INNER if k in m.__dict__}
        saved.append((m, dict(m.__dict__), inner))
    try:
        yield
    finally:
        for m, attrs, inner in saved:
            for live, content in inner.values():
                _put_back(live, content)
            _put_back(m.__dict__, attrs)
        for p, flag in grads:  # a forward that calls requires_grad_ (freezing a layer)
            if p.requires_grad != flag:
                p.requires_grad_(flag)


@contextlib.contextmanager
def no_mha_fastpath() -> Iterator[None]:
    """nn.MultiheadAttention and nn.TransformerEncoder without their inference fast path (fused
    kernels on nested tensors, which have no meta kernels and no plain shapes): the standard
    path's ops, the same attention, are traced instead. Restored after."""
    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    saved = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(saved)


def described_shape(shape: tuple[int, ...], dtype: torch.dtype, name: str = "") -> tuple[int, ...]:
    """An input's shape as reports show it: with its dtype where it is not floating point (token
    ids: ``int64:1x128``) and the keyword that passed it (``input_ids=...``)."""
    shown = None if dtype.is_floating_point else str(dtype).removeprefix("torch.")
    return InputShape(shape, shown, name or None) if shown or name else tuple(shape)


def _check_keywords(model: nn.Module, names: list[str]) -> list[str]:
    """Every keyword input must be a parameter of the model's forward; returns those that only a
    ``**kwargs`` takes (the trace then checks that the forward used them)."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # a builtin or scripted forward: the call itself will say
        return []
    taken = [n for n, p in params.items() if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                         inspect.Parameter.KEYWORD_ONLY)]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return [n for n in names if n not in taken]
    for name in names:
        if name not in taken:
            raise UserError(f"the forward of {type(model).__name__} takes no keyword '{name}' "
                            f"(it takes: {', '.join(taken) or 'no keywords'})")
    return []


def trace(model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...],
          kwargs: dict[str, Any] | None = None, real: bool = False, budget: Any = None,
          allocated: int = 0) -> Trace:
    """Trace ``model`` on ``inputs`` (shapes only; any device, converted to meta), and on the
    keyword arguments ``kwargs`` (tensors, traced as inputs too, and other options of the forward).

    The model is put in eval mode for the trace and its mode restored after;
    no hook is left behind, even when the forward raises. ``real``: run every op on the real
    tensors given (``--engine real``: builders and forwards that read values), recorded by the
    same dispatch-level trace; ``budget`` (a ``measure.guard.MemoryBudget``) stops that run with one
    line once the tensors it makes, added to the ``allocated`` bytes (its weights), exceed the budget.
    """
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    kwargs = dict(kwargs or {})
    only_by_kwargs = _check_keywords(model, list(kwargs))
    lazy = [name for name, m in model.named_modules() if isinstance(m, nn.modules.lazy.LazyModuleMixin)
            and m.has_uninitialized_params()]
    if lazy:
        raise UserError(f"'{lazy[0] or type(model).__name__}' is a lazy module whose shapes are not known yet: "
                        "run one forward on a real input first, then analyse the model")
    scripted = [name for name, m in model.named_modules() if isinstance(m, torch.jit.ScriptModule)]
    if scripted:
        raise UserError(f"'{scripted[0] or type(model).__name__}' is a torch.jit.script module: TorchScript runs "
                        "its own interpreter, which archlab's trace cannot follow; count the nn.Module before "
                        "scripting it")
    uninitialized = [name for name, t in (*model.named_parameters(), *model.named_buffers())
                     if isinstance(t, nn.parameter.UninitializedTensorMixin)]
    if uninitialized:
        raise UserError(f"'{uninitialized[0]}' is an uninitialized parameter (its shape is not known yet): "
                        "initialize it (or run one forward on a real input) first, then analyse the model")
    meta_inputs = inputs if real else tuple(_to_meta(t) for t in inputs)
    meta_kwargs = kwargs if real else {k: _to_meta(v) for k, v in kwargs.items()}
    tracer = _Tracer(model)
    tracer.real = real
    if real and budget is not None:
        tracer.budget = budget
        tracer._allocated(allocated + sum(t.numel() * t.element_size() for t in
                                          (*meta_inputs, *meta_kwargs.values()) if isinstance(t, torch.Tensor)))
    in_ids = [tracer._new_value(t, INPUT) for t in meta_inputs]
    in_ids += [tracer._new_value(t, INPUT, name=k) for k, t in meta_kwargs.items() if isinstance(t, torch.Tensor)]
    first = next(iter([*meta_inputs, *(t for t in meta_kwargs.values() if isinstance(t, torch.Tensor))]), None)
    from torch.nn.modules import module as module_mod

    h_pre = module_mod.register_module_forward_pre_hook(tracer.pre_hook)
    h_post = module_mod.register_module_forward_hook(tracer.post_hook, always_call=True)
    try:
        with _modes_restored(model), _left_as_found(model), torch.no_grad(), no_mha_fastpath(), \
                _Recorder(tracer), user_code():
            model.eval()
            out = model(*meta_inputs, **meta_kwargs)
            # counted before the model is put back: a lazy layer has its shapes only now
            params = list({id(p): p for p in model.parameters()}.values())
            counts = (sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad))
    except UserError:
        raise
    except SystemExit as e:  # the user's forward must not end archlab without a word
        raise UserError(f"the forward pass called sys.exit({e.code!r})") from None
    except Exception as e:  # noqa: BLE001 - the user's forward raised (an assert, a KeyError, ...)
        failed = tracer.failed_call if tracer.failed_call is not None else (tracer.stack[-1] if tracer.stack else -1)
        call = tracer.calls[failed] if failed >= 0 else None
        where = f" at layer '{call.name}' ({call.type})" if call and call.name else ""
        shape = "x".join(map(str, first.shape[1:])) if first is not None else "-"
        msg = first_line(e, "")
        if not isinstance(e, RuntimeError):  # PyTorch's errors speak for themselves; a KeyError('x') does not
            msg = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
        if "meta tensor" in msg or "data-independent" in msg or "register_meta" in msg:
            msg = _without_torch_config_advice(msg)
            msg += (" (the forward reads tensor values (.item(), .tolist(), nonzero, a branch on a value): "
                    "archlab counts on meta tensors, which hold shapes but no values; --engine real runs it "
                    "on real tensors and counts that input)")
        elif "scalar type" in msg or "scalar types" in msg or ("dtype" in msg and "expected" in msg.lower()):
            msg += (" (give each input's dtype in --input-size / input_size: int64:128 is a 128-long int64 "
                    "input, token ids)")
        elif "same device" in msg and any(p.device.type != "meta" for p in model.parameters()):
            # an op that checks devices before PyTorch splits it into the ops archlab sees (nn.LSTM)
            msg += (" (archlab runs the forward on meta tensors, and this layer checks that its weights are "
                    "there too: build the model under 'with torch.device(\"meta\"):' to count it, or count it "
                    "with --engine real)")
        raise UserError(f"the forward pass failed{where} for input {shape}: {msg}") from None
    finally:
        h_pre.remove()
        h_post.remove()
        tracer.restore_backends()
    if tracer.stopped is not None:  # the forward caught the guard's error and went on: stopped all the same
        raise tracer.stopped
    out_ids = [tracer.value_of(t) for t in _nested_tensors(out)]
    used = {v for op in tracer.ops for v in op.inputs} | set(out_ids)
    for vid in in_ids:  # a keyword only **kwargs took, and nothing read: a misspelt or unknown input
        value = tracer.values[vid]
        if value.name in only_by_kwargs and vid not in used:
            raise UserError(f"the forward of {type(model).__name__} did not use the input '{value.name}' "
                            f"(its **kwargs took it): not an input of this model?")
    head = tracer.values[in_ids[0]] if in_ids else None
    return Trace(
        input_shape=described_shape(head.shape, head.dtype, head.name) if head else (),
        values=tracer.values,
        ops=tracer.ops,
        calls=tracer.calls,
        inputs=in_ids,
        outputs=out_ids,
        params=counts[0],
        trainable_params=counts[1],
        uncalled=_uncalled(model, tracer.calls),
    )


def _uncalled(model: nn.Module, calls: list[Call]) -> list[Uncalled]:
    """The outermost registered modules that neither ran nor hold a module that ran."""
    depth_of = {c.name: c.depth for c in calls}
    modules = dict(model.named_modules())
    ran = set()  # the modules called and their ancestors (containers such as nn.ModuleList are never called)
    for name in depth_of:
        parts = name.split(".") if name else []
        ran.update(".".join(parts[:i]) for i in range(len(parts) + 1))
    held = {id(p) for name in depth_of if name and name in modules for p in modules[name].parameters()}
    out: list[Uncalled] = []
    for name, m in modules.items():
        if name in ran or any(name.startswith(u.name + ".") for u in out):
            continue
        parent = name.rpartition(".")[0]
        while parent and parent not in depth_of:
            parent = parent.rpartition(".")[0]
        params = sum(p.numel() for p in {id(p): p for p in m.parameters()}.values() if id(p) not in held)
        out.append(Uncalled(name, type(m).__name__, depth_of.get(parent, 0) + 1, params))
    return out


class _MetaMode(TorchDispatchMode):
    """Runs every op on meta copies of its arguments (for models whose weights are real)."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _run_on_meta(func, *_on_meta(args, kwargs or {}))


def _without_torch_config_advice(msg: str) -> str:
    """PyTorch's message without its sentences that advise setting one of its private flags
    (``torch.fx.experimental._config.meta_nonzero_assume_all_nonzero``), and the sentence about
    what the flag would do: archlab's own explanation follows, and the flag is no advice for a
    user of archlab."""
    sentences = re.split(r"(?<=\.)\s+", msg)
    kept = [s for s in sentences if "_config." not in s and "returns a fake value" not in s]
    return " ".join(kept) if kept else msg


def saved_for_backward(model: nn.Module, inputs: torch.Tensor) -> list[torch.Tensor]:
    """The activations autograd keeps for the backward pass of one training step.

    Runs the forward once in training mode on meta tensors (nothing is computed or
    allocated) under ``saved_tensors_hooks`` and returns the distinct saved tensors that
    are not parameters or buffers. The model's modes are restored afterwards.
    """
    params = {id(p) for p in model.parameters()} | {id(b) for b in model.buffers()}
    saved: dict[int, torch.Tensor] = {}

    def pack(t: torch.Tensor):
        base = t._base if t._base is not None else t
        if id(t) not in params and id(base) not in params:
            saved.setdefault(id(base), base)
        return t

    try:
        with _modes_restored(model), _left_as_found(model), torch.enable_grad(), \
                torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), _MetaMode(), user_code():
            model.train()
            model(_to_meta(inputs))
    except SystemExit as e:
        raise UserError(f"the training-mode forward called sys.exit({e.code!r})") from None
    except Exception as e:  # noqa: BLE001 - the user's forward raised
        msg = first_line(e)
        raise UserError(f"the training-mode forward failed: {msg}") from None
    return list(saved.values())


# --- building and tracing a model -----------------------------------------------


def _checked_sizes(input_size: Any, batch: Any) -> tuple[Any, int | None]:
    """The API's input_size ("3,224,224", (3, 224, 224), or several: [(3, 16, 16), (10,)]) and batch,
    checked as the CLI checks them."""
    if isinstance(input_size, str):
        input_size = parse_input_size(input_size)
    if input_size is not None:
        several = isinstance(input_size, (tuple, list)) and bool(input_size) \
            and all(isinstance(s, (tuple, list, ForwardOption)) for s in input_size)
        shapes = [s for s in input_size if not isinstance(s, ForwardOption)] if several else [input_size]
        for shape in shapes:
            if not isinstance(shape, (tuple, list)) or not shape or not all(
                    isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
                raise UserError(f"input_size must be positive whole numbers (C,H,W), or a list of such, "
                                f"got {input_size!r}")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise UserError(f"batch must be a whole number of at least 1, got {batch!r}")
    return input_size, batch


def _built(resolved: Any, device: str) -> nn.Module:
    """The resolved model built on ``device``; a builder that reads tensor values fails on meta:
    the one-line error names --engine real."""
    try:
        return resolved.build(device=device)
    except UserError as e:
        if device == "meta" and ("meta tensor" in str(e) or "data-independent" in str(e)):
            raise UserError(f"{e} (the builder reads tensor values, which meta tensors do not hold: "
                            f"--engine real builds it on the CPU and counts it)") from None
        raise


def _model_inputs(shapes: Any, options: Any, empty: Callable[..., torch.Tensor],
                  dtype: torch.dtype) -> tuple[tuple[torch.Tensor, ...], dict[str, Any]]:
    """The positional and keyword arguments of the forward: a meta tensor per input (batch first),
    of its own dtype where one is given (token ids: int64, id 0), else ``dtype``; the keyword ones
    and the forward's options by name."""
    args: list[torch.Tensor] = []
    kwargs: dict[str, Any] = {}
    for s in shapes:
        t = empty(tuple(s), input_dtype(getattr(s, "dtype", None)) or dtype)
        if getattr(s, "name", None):
            kwargs[s.name] = t
        else:
            args.append(t)
    for o in options:
        kwargs[o.name] = o.value
    return tuple(args), kwargs


def module_inputs(model: nn.Module, input_size: Any, batch: int | None,
                  empty: Callable[..., torch.Tensor]) -> tuple[tuple[torch.Tensor, ...], dict[str, Any]]:
    """The forward's arguments for an ``nn.Module`` given as such (``input_size`` checked by
    ``_checked_sizes``): float inputs take the model's floating dtype (an fp16 or bf16 model gets
    fp16 or bf16 inputs), the batch goes first."""
    several = isinstance(input_size, list) or isinstance(input_size[0], (tuple, list, ForwardOption))
    items = list(input_size) if several else [input_size]
    if not any(not isinstance(s, ForwardOption) for s in items):
        raise UserError("input_size (C,H,W) is required for a model that is not registered (forward options "
                        "alone do not say its inputs)")
    dtype = next((t.dtype for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()), torch.float32)
    shapes = [s.batched(batch or 1) if isinstance(s, InputShape) else (batch or 1, *s)
              for s in items if not isinstance(s, ForwardOption)]
    return _model_inputs(shapes, [s for s in items if isinstance(s, ForwardOption)], empty, dtype)


def check_depth(depth: Any) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise UserError(f"depth must be a whole number of at least 0, got {depth!r}")
    return depth


def trace_model(model_or_spec: Any, *, input_size: Any = None, res: int | None = None, batch: int | None = None,
                alpha: float | None = None, options: dict[str, Any] | None = None, real: bool = False,
                device: str = "cpu", forward_kw: Any = None, budget: Any = None) -> tuple[Trace, str]:
    """Build (on the meta device, for a registered model) and trace. Returns (trace, label).

    ``real``: build the model on ``device`` and run it on real inputs there (floats: normal noise,
    seeded; integers: zeros) under the same trace, for builders and forwards that read values.
    ``forward_kw``: non-tensor keyword options of the forward (``{"use_cache": True}``, or
    ``--forward-kw`` texts), beside ``input_size``'s. ``budget`` (with ``real``; a
    ``measure.guard.MemoryBudget``, taken before the build): the built model's parameters and buffers
    must fit it, then the run's tensors with them (see ``trace``)."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    input_size = with_forward_kw(input_size, forward_kw)

    def empty(shape, dtype=torch.float32):
        try:
            if not real:
                return torch.empty(shape, device="meta", dtype=dtype)
            if dtype.is_floating_point or dtype.is_complex:
                return torch.randn(shape, dtype=dtype, generator=generator).to(device)
            return torch.zeros(shape, dtype=dtype, device=device)
        except (RuntimeError, TypeError, OverflowError):  # a size or an element count beyond int64
            raise UserError(f"input {'x'.join(map(str, shape))} is too large to describe") from None

    input_size, batch = _checked_sizes(input_size, batch)
    if res is not None and (isinstance(res, bool) or not isinstance(res, int)):
        raise UserError(f"res must be a whole number of pixels, got {res!r}")
    if isinstance(model_or_spec, torch.nn.Module):
        if input_size is None:
            raise UserError("input_size (C,H,W) is required for a model that is not registered")
        ignored = [k for k, v in (("res", res), ("alpha", alpha), ("options", options)) if v]
        if ignored:
            verb = "apply" if len(ignored) > 1 else "applies"
            raise UserError(f"{', '.join(ignored)} {verb} to registered models; an nn.Module is analysed as built, "
                            "on input_size")
        if real:  # the inputs go where the model's weights are
            device = str(next(iter(model_or_spec.parameters()), torch.empty(0)).device)
        args, kwargs = module_inputs(model_or_spec, input_size, batch, empty)
        # the model was built before the budget was taken: its weights are not the run's to allocate
        return trace(model_or_spec, args, kwargs, real=real, budget=budget), type(model_or_spec).__name__
    if not isinstance(model_or_spec, (str, ModelSpec)):
        raise UserError(f"a model is a registered name or spec (a string) or an nn.Module, "
                        f"not {type(model_or_spec).__name__}")
    resolved = resolve(model_or_spec, res=res, input_size=input_size, batch=batch, alpha=alpha, options=options)
    model = _built(resolved, device if real else "meta")
    weights = 0
    if real and budget is not None:
        weights = sum(t.numel() * t.element_size() for t in
                      {id(t): t for t in (*model.parameters(), *model.buffers())}.values()
                      if not isinstance(t, nn.parameter.UninitializedTensorMixin))  # trace() refuses those
        if weights > budget.limit:
            raise budget.refuse(weights, f"--engine real: the weights of {resolved.label}")
    try:
        args, kwargs = _model_inputs(resolved.input_shapes, resolved.forward_options, empty, torch.float32)
        return trace(model, args, kwargs, real=real, budget=budget, allocated=weights), resolved.label
    except UserError as e:
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
