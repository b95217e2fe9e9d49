"""The Python API: ``list_models``, ``build``, ``count``. The CLI is a thin layer over it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from archlab.errors import UserError
from archlab.registry import ModelInfo, get_model_info, list_models  # noqa: F401  (re-exported)
from archlab.spec import ModelSpec, coerce, literal, parse_input_size, parse_positive_int, parse_spec

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Resolved:
    """A model spec resolved against the registry: what to build and what to feed it."""

    info: ModelInfo
    options: dict[str, Any]  # typed builder options (only those given)
    input_shape: tuple[int, ...]  # N, C, H, W (of the first input)
    label: str  # the spec as the user should read it
    extra_inputs: tuple[tuple[int, ...], ...] = ()  # further inputs, batch first, for multi-input models

    @property
    def input_shapes(self) -> tuple[tuple[int, ...], ...]:
        return (self.input_shape, *self.extra_inputs)

    def build(self, device: str | None = None):
        import torch

        if device is None:
            return self.info.build(**self.options)
        with torch.device(device):
            return self.info.build(**self.options)


def resolve(
    spec: str | ModelSpec,
    *,
    res: int | None = None,
    input_size: tuple[int, ...] | None = None,
    batch: int | None = None,
    alpha: float | None = None,
    options: dict[str, Any] | Iterable[tuple[str, Any]] | None = None,
) -> Resolved:
    """Resolve a model name or spec and command-line style overrides.

    Explicit arguments override the spec's own ``@key=value`` settings.
    """
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    info = get_model_info(spec.name)
    known = info.options
    raw: dict[str, Any] = dict(spec.options)
    extra_options = dict(options or {})
    # --set res=/batch=/input= set the input, as they do in a spec; an explicit argument still wins
    if "res" in extra_options:
        value = extra_options.pop("res")
        res = res if res is not None else (parse_positive_int(value, "res") if isinstance(value, str) else value)
    if "batch" in extra_options:
        value = extra_options.pop("batch")
        batch = batch if batch is not None else (parse_positive_int(value, "batch") if isinstance(value, str)
                                                 else value)
    if "input" in extra_options:
        value = extra_options.pop("input")
        input_size = input_size if input_size is not None else (parse_input_size(value) if isinstance(value, str)
                                                                else value)
    raw.update(extra_options)
    if alpha is not None:
        if "alpha" not in known:
            raise UserError(f"model '{info.name}' has no width multiplier (--alpha)")
        raw["alpha"] = alpha
    typed: dict[str, Any] = {}
    open_options = info.external and info.open_options is None
    for key, value in raw.items():
        if key not in known and not open_options:
            choices = ", ".join(sorted(known)) or "none"
            raise UserError(f"model '{info.name}' has no option '{key}' (its options: {choices})")
        typed[key] = coerce(key, value, known[key]) if key in known else literal(value)
    if "alpha" in typed and not (isinstance(typed["alpha"], (int, float)) and typed["alpha"] > 0):
        raise UserError(f"alpha must be greater than 0, got {typed['alpha']}")
    res = res if res is not None else spec.res
    input_size = input_size if input_size is not None else spec.input_size
    batch = batch if batch is not None else (spec.batch or 1)
    if batch < 1:
        raise UserError(f"batch must be at least 1, got {batch}")
    if res is not None and input_size is not None:
        raise UserError("give either a resolution (--res, res=) or an input size (--input-size, input=), not both")
    extra: tuple[tuple[int, ...], ...] = ()
    if input_size is not None and input_size and isinstance(input_size[0], (tuple, list)):
        input_size, *rest = [tuple(s) for s in input_size]
        extra = tuple((batch, *s) for s in rest)
    parts = [f"{k}={v}" for k, v in typed.items()]
    if input_size is not None:
        shape = tuple(input_size)
        try:
            default = tuple(info.input_shape(**typed))
        except UserError:
            default = None
        if shape != default:
            parts.append("input=" + ";".join("x".join(map(str, s)) for s in (shape, *[e[1:] for e in extra])))
    else:
        shape = tuple(info.input_shape(**typed))
        if res is not None:
            if res < 1:
                raise UserError(f"resolution must be at least 1, got {res}")
            if len(shape) != 3:
                raise UserError(f"--res sets H = W of a C,H,W input; '{info.name}' takes {len(shape)}-d inputs")
            if res != shape[1] or res != shape[2]:
                parts.append(f"res={res}")
            shape = (shape[0], res, res)
    label = info.name + ("@" + ",".join(parts) if parts else "")
    return Resolved(info, typed, (batch, *shape), label, extra)


def build(name: str, **options: Any):
    """Build a registered model (a real ``nn.Module`` with initialised weights)."""
    spec = parse_spec(name)
    return resolve(spec, options=options).build()


# --- count --------------------------------------------------------------------


@dataclass(frozen=True)
class LayerCost:
    name: str
    type: str
    depth: int
    output_shape: tuple[int, ...] | None
    params: int
    macs: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["output_shape"] = list(self.output_shape) if self.output_shape else None
        return d


@dataclass(frozen=True)
class CountResult:
    """What a model costs: the JSON of ``archlab count --format json`` is ``to_dict()``."""

    model: str
    input_shape: tuple[int, ...]
    output_shapes: tuple[tuple[int, ...], ...]
    params: int
    trainable_params: int
    macs: int
    macs_by_kind: dict[str, int]
    other_ops: dict[str, int]
    unsupported_ops: tuple[tuple[str, int], ...]
    layers: tuple[LayerCost, ...]
    engine: str
    fvcore: dict[str, Any] | None = field(default=None)
    input_shapes: tuple[tuple[int, ...], ...] = ()  # every input, for models that take several

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def status(self) -> str:
        from archlab.analysis.counting import count_status

        return count_status(self.unsupported_ops)

    def to_dict(self) -> dict[str, Any]:
        from archlab.analysis.counting import OTHER_KIND_MEANING

        d: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "input_shape": list(self.input_shape),
            **({"input_shapes": [list(s) for s in self.input_shapes]} if len(self.input_shapes) > 1 else {}),
            "output_shapes": [list(s) for s in self.output_shapes],
            "params": self.params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "flops": self.flops,
            "units": {
                "macs": "multiply-accumulates of conv (incl. transposed), linear and matmul ops, whole batch",
                "flops": "2 x macs",
                "other_ops": {kind: f"{meaning}; not in macs or flops" for kind, meaning in OTHER_KIND_MEANING.items()},
            },
            "macs_by_kind": dict(self.macs_by_kind),
            "other_ops": dict(self.other_ops),
            "unsupported_ops": [{"op": op, "count": n} for op, n in self.unsupported_ops],
            "status": self.status,
            "layers": [layer.to_dict() for layer in self.layers],
            "engine": self.engine,
        }
        if self.fvcore is not None:
            d["fvcore"] = self.fvcore
        return d


def _module_costs(trace, op_macs: list[int], depth: int) -> tuple[LayerCost, ...]:
    """Per module call down to ``depth`` (1 = the model's children)."""
    # cumulative sums make each call's MACs an O(1) range query
    prefix = [0]
    for m in op_macs:
        prefix.append(prefix[-1] + m)
    rows = []
    for call in trace.calls:
        if call.depth == 0 or call.depth > depth:
            continue
        shape = trace.values[call.outputs[0]].shape if call.outputs else None
        rows.append(LayerCost(call.name, call.type, call.depth, shape, call.params,
                              prefix[call.end_op] - prefix[call.first_op]))
    return tuple(rows)


def count_trace(trace, label: str, depth: int = 3, engine: str = "archlab") -> CountResult:
    from archlab.analysis.counting import MAC_KINDS, OTHER_KINDS, op_cost, other_kind, unsupported

    macs_by_kind = {k: 0 for k in MAC_KINDS}
    other = {k: 0 for k in OTHER_KINDS}
    op_macs = []
    for op in trace.ops:
        kind, macs, extra = op_cost(op, trace)
        op_macs.append(macs)
        if macs:
            macs_by_kind[kind] += macs
        if extra:
            other[other_kind(kind)] += extra
    unknown = unsupported(trace)
    return CountResult(
        model=label,
        input_shape=trace.input_shape,
        output_shapes=tuple(trace.values[v].shape for v in trace.outputs),
        params=trace.params,
        trainable_params=trace.trainable_params,
        macs=sum(macs_by_kind.values()),
        macs_by_kind=macs_by_kind,
        other_ops=other,
        unsupported_ops=tuple(sorted(unknown.items())),
        layers=_module_costs(trace, op_macs, depth),
        engine=engine,
        input_shapes=tuple(trace.values[v].shape for v in trace.inputs),
    )


def _checked_sizes(input_size, batch):
    """The API's input_size ("3,224,224", (3, 224, 224), or several: [(3, 16, 16), (10,)]) and batch,
    checked as the CLI checks them."""
    if isinstance(input_size, str):
        input_size = parse_input_size(input_size)
    if input_size is not None:
        several = isinstance(input_size, (tuple, list)) and bool(input_size) \
            and all(isinstance(s, (tuple, list)) for s in input_size)
        shapes = input_size if several else [input_size]
        for shape in shapes:
            if not isinstance(shape, (tuple, list)) or not shape or not all(
                    isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
                raise UserError(f"input_size must be positive whole numbers (C,H,W), or a list of such, "
                                f"got {input_size!r}")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise UserError(f"batch must be a whole number of at least 1, got {batch!r}")
    return input_size, batch


def _checked_depth(depth) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise UserError(f"depth must be a whole number of at least 0, got {depth!r}")
    return depth


def trace_model(model_or_spec: Any, *, input_size=None, res=None, batch=None, alpha=None, options=None):
    """Build (on the meta device, for a registered model) and trace. Returns (trace, label)."""
    import torch

    from archlab.analysis.trace import trace

    def empty(shape, dtype=torch.float32):
        try:
            return torch.empty(shape, device="meta", dtype=dtype)
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
        shapes = [tuple(s) for s in input_size] if isinstance(input_size[0], (tuple, list)) else [tuple(input_size)]
        # the inputs take the model's floating dtype: an fp16 or bf16 model gets fp16 or bf16 inputs
        dtype = next((t.dtype for t in (*model_or_spec.parameters(), *model_or_spec.buffers())
                      if t.is_floating_point()), torch.float32)
        inputs = tuple(empty((batch or 1, *s), dtype) for s in shapes)
        return trace(model_or_spec, inputs), type(model_or_spec).__name__
    if not isinstance(model_or_spec, (str, ModelSpec)):
        raise UserError(f"a model is a registered name or spec (a string) or an nn.Module, "
                        f"not {type(model_or_spec).__name__}")
    resolved = resolve(model_or_spec, res=res, input_size=input_size, batch=batch, alpha=alpha, options=options)
    model = resolved.build(device="meta")
    try:
        inputs = tuple(empty(s) for s in resolved.input_shapes)
        return trace(model, inputs), resolved.label
    except UserError as e:
        try:
            default = tuple(resolved.info.input_shape(**resolved.options))
        except UserError:  # a model without a default input: the forward's own error is the message
            raise e from None
        if tuple(resolved.input_shape[1:]) != default:
            raise UserError(f"{e} (the model's default input is {'x'.join(map(str, default))})") from None
        raise


def count(
    model_or_spec: Any,
    *,
    input_size: tuple[int, ...] | None = None,
    res: int | None = None,
    batch: int | None = None,
    alpha: float | None = None,
    options: dict[str, Any] | None = None,
    depth: int = 3,
    engine: str = "archlab",
    device: str = "cpu",
    force: bool = False,
) -> CountResult:
    """Count parameters, MACs (FLOPs = 2 x MACs) and other operations of a model.

    ``model_or_spec`` is a registered name or spec (``"mobilenet@alpha=0.5"``) or
    an ``nn.Module`` (then ``input_size`` = (C, H, W) is required). The default
    engine never runs a convolution (meta tensors); ``engine="fvcore"`` also runs
    fvcore's FlopCountAnalysis on real tensors on ``device`` and reconciles it (refused when it
    looks too big for the device's free memory, unless ``force``).
    """
    if engine not in ("archlab", "fvcore"):
        raise UserError(f"unknown engine '{engine}' (choose archlab or fvcore)")
    _checked_depth(depth)
    tr, label = trace_model(model_or_spec, input_size=input_size, res=res, batch=batch, alpha=alpha,
                            options=options)
    result = count_trace(tr, label, depth=depth, engine=engine)
    if engine == "fvcore":
        from archlab.devices import check_device
        from archlab.engines.fvcore_engine import fvcore_count
        from archlab.guard import check_fits, run_bytes

        check_device(device)
        check_fits(run_bytes(tr), device, force, what="--engine fvcore (a real forward)")

        report = fvcore_count(model_or_spec, tuple(tr.values[v].shape for v in tr.inputs), device=device,
                              alpha=alpha, options=options, archlab_macs=result.macs)
        result = CountResult(**{**result.__dict__, "fvcore": report})
    return result
