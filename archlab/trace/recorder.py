"""The recorder: a ``TorchDispatchMode`` that sees every ATen op of a forward (and of autograd's
backward), runs it on meta tensors (or, for ``--engine real``, on the real ones), and a ``Tracer``
that turns what it sees into the graph of ``archlab.trace.graph``.

A ``Tracer``'s hooks, for a user's own tracer (a subclass):

* ``on_op(func, args, kwargs)``: every ATen op, under the dispatch mode; returns its result;
* ``pre_hook(module, args)`` / ``post_hook(module, args, output)``: every module call, as
  PyTorch's global module hooks;
* ``new_value(tensor, producer, alias_of, name)`` / ``value_of(tensor)``: the value of a tensor.

A ``TrainingTracer`` also attributes the backward: while the forward runs, each output's
``grad_fn`` (the autograd node the op created) is mapped to the module call the op ran in; during
the backward, ``torch._C._current_autograd_node()`` says which node is running, and so which
module's forward it differentiates. Ops of no module's node (the loss's seed gradient, the
accumulation into ``.grad``) count for the model as a whole.

The runner (``archlab.trace.run``) installs the hooks and the mode around a forward and removes
them in ``finally``; nothing here installs anything by itself.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from archlab.errors import UserError
from archlab.trace.graph import CONST, PARAM, Call, Op, Value
from archlab.trace.rules import OpRules
from archlab.trace.shapes import SHAPE_RULES, Vanished
from archlab.units import pair as _pair


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


# --- the tracer -----------------------------------------------------------------


class Recorder(TorchDispatchMode):
    """Records every ATen op; runs it on meta tensors."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # The base class wraps __torch_dispatch__ in torch._disable_dynamo, whose
        # first call imports torch._dynamo (1.5 s). The trace is never compiled.
        return False

    def __init__(self, tracer: "Tracer") -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        return self.tracer.on_op(func, args, kwargs)


class Tracer:
    def __init__(self, model: nn.Module) -> None:
        self.values: list[Value] = []
        self.ops: list[Op] = []
        self.calls: list[Call] = []
        self.stack: list[int] = []
        self.failed_call: int | None = None  # the module call in which an op failed
        self.failed_op: tuple[str, list[int]] | None = None  # that op: its name and the values it was given
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
        # a parameter held by several modules (tied weights: GPT-2's head and its embedding; a module
        # called twice; T5's shared embedding) is shown by the first call at each depth (``_claim``)
        self.claimed: dict[int, set[int]] = {}  # per call depth, the parameters a row already shows
        self.call_modules: list[nn.Module] = []  # per call, the module called
        # the meta trace's known values: a small CPU tensor holding what a meta tensor would hold, for
        # the inputs whose values are known (a mask given as ones: attend everywhere) and what is computed
        # from them and from small constants (arange, ones); a value read (.item(), .all(), nonzero) of one
        # of these is answered instead of stopping the trace (``known_values``)
        self.known: dict[int, torch.Tensor] = {}
        for n, p in list(model.named_parameters(remove_duplicate=True)) + list(model.named_buffers()):
            if not isinstance(p, nn.parameter.UninitializedTensorMixin):  # a real forward may make it (--engine real)
                self.new_value(p, PARAM, name=n)

    # values
    def new_value(self, t: torch.Tensor, producer: int, alias_of: int | None = None, name: str = "") -> int:
        vid = len(self.values)
        self.values.append(Value(vid, tuple(t.shape), t.dtype, producer, alias_of, name))
        self.vid_of[id(t)] = vid
        self.keep.append(t)
        return vid

    def value_of(self, t: torch.Tensor) -> int:
        vid = self.vid_of.get(id(t))
        if vid is None:
            vid = self.new_value(t, CONST)
        return vid

    # ops
    def on_op(self, func: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
        name = func._overloadpacket.__name__
        flat_in = flat_tensors(args) + (flat_tensors(tuple(kwargs.values())) if kwargs else [])
        in_ids = [self.value_of(t) for t in flat_in]
        margs, mkwargs = (args, kwargs) if self.real else on_meta(args, kwargs, flat_in)
        try:
            known = None
            if self.real:
                out = func(*margs, **mkwargs)
            else:
                try:
                    out = run_on_meta(func, margs, mkwargs)
                except Exception:  # noqa: BLE001 - a value read: answered from the known values, if any
                    known = self._known_result(func, args, kwargs, flat_in, True)
                    if known is None:
                        raise
                    out = _meta_like(known)
                else:  # known values are carried along where a known input is read (or a small constant made)
                    if self.known or not flat_in:
                        known = self._known_result(func, args, kwargs, flat_in, made=out)
        except Exception as e:
            if self.failed_call is None:
                self.failed_call = self.stack[-1] if self.stack else -1
                self.failed_op = (name, in_ids)
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
        flat_out = flat_tensors(out if isinstance(out, (tuple, list)) else (out,), keep_none=True)
        schema_aliases = output_aliases(func)
        for pos, t in enumerate(flat_out):
            if not isinstance(t, torch.Tensor):
                continue
            alias = None
            arg_pos = schema_aliases.get(pos)
            if arg_pos is not None and arg_pos < len(args) and isinstance(args[arg_pos], torch.Tensor):
                alias = self.value_of(args[arg_pos])
            op.outputs.append(self.new_value(t, index, alias))
            if self.budget is not None and alias is None and not t.is_meta:
                self.add_allocated(t.numel() * t.element_size())
        if known is not None:
            flat_known = flat_tensors(known if isinstance(known, (tuple, list)) else (known,), keep_none=True)
            for t, k in zip(flat_out, flat_known):
                if isinstance(t, torch.Tensor) and isinstance(k, torch.Tensor):
                    self.known[id(t)] = k
        return out

    def _known_result(self, func: Any, args: tuple, kwargs: dict, flat_in: list, failed: bool = False,
                      made: Any = None) -> Any:
        """The op computed on the CPU on the known values of its tensor arguments, when every one is
        known and small (a tensor not on meta, made by the forward on the CPU, is its own known value),
        or when it makes a small tensor from nothing (arange, ones; ``made``: what the meta run made);
        else None. After a meta run that did not fail (``failed`` False), only where a known input is
        read, so a trace without one computes nothing."""
        if flat_in:
            held = [self.known.get(id(t), t if t.device.type != "meta" else None) for t in flat_in]
            if (any(k is None for k in held) or sum(k.numel() for k in held) > KNOWN_MAX
                    or not (failed or any(id(t) in self.known or t.device.type != "meta" for t in flat_in))):
                return None
            swap = {id(t): k for t, k in zip(flat_in, held)}
        else:  # a factory: run it on the CPU where its result is small (on meta, or on the CPU where the
            # forward asked for it there: layer drop's torch.rand([]))
            if not isinstance(made, torch.Tensor) or made.numel() > KNOWN_MAX or func in _UNDEFINED:
                return None
            swap = {}

        def put(x: Any) -> Any:
            if isinstance(x, torch.Tensor):
                return swap.get(id(x), x)
            if isinstance(x, (list, tuple)):
                return type(x)(put(y) for y in x)
            if isinstance(x, torch.device) and x.type == "meta":
                return torch.device("cpu")
            return x

        kw = {k: ("cpu" if k == "device" else put(v)) for k, v in kwargs.items()}
        if not flat_in:
            kw["device"] = "cpu"
        try:
            if func in _RANDOM:  # a draw (layer drop's torch.rand([])): seeded, the same every trace
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(0)
                    return func(*put(args), **kw)
            return func(*put(args), **kw)
        except Exception:  # noqa: BLE001 - not computable here (a dtype the CPU lacks): no known value
            return None

    def add_allocated(self, nbytes: int) -> None:
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
    def _call_name(self, module: nn.Module, parent: int) -> str:
        """The path the module was called by: its calling module's name and the attribute it has
        there (T5's shared embedding, called as ``encoder.embed_tokens`` and ``decoder.embed_tokens``),
        else its registered name."""
        if parent >= 0:
            attr = next((a for a, c in self.call_modules[parent]._modules.items() if c is module), None)
            if attr is not None:
                above = self.calls[parent].name
                return f"{above}.{attr}" if above else attr
        return self.names[id(module)]

    def _claim(self, module: nn.Module, depth: int) -> int:
        """The parameters a call shows: those of its module (and children) that no earlier call at
        the same depth showed. A module called twice, or a shared one called under two names, shows
        its parameters at its first call, so the rows of one depth add up to the total."""
        claimed = self.claimed.setdefault(depth, set())
        mine = {id(p): p.numel() for p in module.parameters()  # one its forward has yet to make has no size
                if not isinstance(p, nn.parameter.UninitializedTensorMixin)}
        params = sum(n for k, n in mine.items() if k not in claimed)
        claimed.update(mine)
        return params

    def pre_hook(self, module: nn.Module, args: tuple) -> None:
        if self.real and isinstance(module, nn.RNNBase):
            self._rnn_enter()
        parent = self.stack[-1] if self.stack else -1
        depth = self.calls[parent].depth + 1 if parent >= 0 else 0
        key = id(module)
        if key not in self.names:  # called by the forward, but not a submodule (kept in a plain list?)
            self.unregistered += 1
            self.names[key] = f"(unregistered {type(module).__name__} #{self.unregistered})"
        call = Call(
            index=len(self.calls),
            name=self._call_name(module, parent),
            type=type(module).__name__,
            parent=parent,
            depth=depth,
            inputs=[self.value_of(t) for t in nested_tensors(args)],
            first_op=len(self.ops),
            params=self._claim(module, depth),
            attrs=_module_attrs(module),
        )
        self.calls.append(call)
        self.call_modules.append(module)
        self.stack.append(call.index)

    def post_hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        if self.real and isinstance(module, nn.RNNBase):
            self._rnn_leave()
        if not self.stack:
            return
        call = self.calls[self.stack.pop()]
        call.end_op = len(self.ops)
        call.outputs = [self.value_of(t) for t in nested_tensors(output)]


def flat_tensors(items: Any, keep_none: bool = False) -> list:
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


def nested_tensors(obj: Any) -> list:
    """The tensors in a module's inputs or outputs, however nested (tuples, lists, dicts)."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for x in obj for t in nested_tensors(x)]
    if isinstance(obj, dict):
        return [t for x in obj.values() for t in nested_tensors(x)]
    return []


def to_meta_args(args: tuple) -> tuple:
    return tuple([to_meta(t) for t in x] if isinstance(x, list) else to_meta(x) for x in args)


KNOWN_MAX = 1 << 16  # elements: the known values kept beside the meta trace stay small (masks, positions)
# factories whose values are undefined (batch norm's reserve buffer): nothing to know
_UNDEFINED = frozenset((torch.ops.aten.empty.memory_format, torch.ops.aten.empty_strided.default,
                        torch.ops.aten.empty_like.default, torch.ops.aten.new_empty.default))
_RANDOM = frozenset(getattr(getattr(torch.ops.aten, n), o) for n, o in (("rand", "default"), ("randn", "default"),
                                                                      ("randint", "low"), ("randperm", "default"))
                    if hasattr(getattr(torch.ops.aten, n, None), o))


def _meta_like(x: Any) -> Any:
    """A result computed on known values, as the meta trace holds it: tensors as meta tensors of the
    same shape, strides and dtype; anything else (a Python number from .item()) as it is."""
    if isinstance(x, torch.Tensor):
        return torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device="meta")
    if isinstance(x, (list, tuple)):
        return type(x)(_meta_like(y) for y in x)
    return x


def on_meta(args: tuple, kwargs: dict, tensors: list | None = None) -> tuple[tuple, dict]:
    """An op's arguments with every tensor on the meta device (meta copies: no data is copied);
    ``tensors``: the tensors among them, when the caller has them already."""
    if tensors is None:
        tensors = flat_tensors(args) + (flat_tensors(tuple(kwargs.values())) if kwargs else [])
    if all(t.device.type == "meta" for t in tensors):
        return args, kwargs
    return to_meta_args(args), {k: to_meta_args((v,))[0] for k, v in kwargs.items()}


_aten = torch.ops.aten
# the ops whose real kernels take tensors of one dtype only (conv, linear, matmul), though their meta
# kernels take any mix
ONE_DTYPE_OPS = frozenset(op.default for op in (_aten.convolution, _aten.mm, _aten.addmm, _aten.bmm, _aten.baddbmm,
                                               _aten.addbmm, _aten.mv, _aten.addmv, _aten.dot))


def check_one_dtype(func: Any, args: tuple) -> None:
    """Refuse, as the real run would, a conv/linear/matmul whose tensors differ in dtype (an fp16,
    integer, bool or complex input into an fp32 layer)."""
    dtypes = {t.dtype for t in flat_tensors(args)}
    if len(dtypes) > 1:
        names = " and ".join(sorted(str(d).removeprefix("torch.") for d in dtypes))
        raise UserError(f"{func.__name__.split('.')[0]} mixes {names} tensors, which a real run refuses: give "
                        f"inputs of the layer's dtype (--input-size DTYPE:SHAPE) or cast the model")


def run_on_meta(func: Any, args: tuple, kwargs: dict) -> Any:
    """Run an op on meta arguments: by its shape rule when it has one (see ``shapes``), else by
    PyTorch's meta kernel (for a conv/linear/matmul, once its dtypes are checked: the meta kernel
    does not)."""
    if func in ONE_DTYPE_OPS:
        check_one_dtype(func, args)
    rule = SHAPE_RULES.get(func)
    return rule(args, kwargs) if rule is not None else func(*args, **kwargs)


def to_meta(x: Any) -> Any:
    if isinstance(x, torch.Tensor) and x.device.type != "meta":
        return x.to("meta")
    return x


_ALIAS_CACHE: dict[Any, dict[int, int]] = {}


def output_aliases(func: Any) -> dict[int, int]:
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


class MetaMode(TorchDispatchMode):
    """Runs every op on meta copies of its arguments (for models whose weights are real)."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        return run_on_meta(func, *on_meta(args, kwargs or {}))


class TrainingTracer(Tracer):
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

    def on_op(self, func: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
        if self.backward_start is None:
            self.resolve_nodes()  # the previous op's outputs have their grad_fn by now
            out = super().on_op(func, args, kwargs)
            call = self.stack[-1] if self.stack else -1
            flat = out if isinstance(out, (tuple, list)) else (out,)
            self.pending.extend((t, call) for t in flat_tensors(flat))
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
