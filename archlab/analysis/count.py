"""``archlab count``: parameters, MACs (FLOPs = 2 x MACs) and the other operations of a model, per
module call and by kind, from one meta trace (``count``), or from a trace already made
(``count_trace``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

from archlab.analysis.costs import OTHER_KIND_MEANING, OpCosts, count_status, unsupported_json
from archlab.analysis.trace import Trace, check_depth, trace_model
from archlab.errors import UserError
from archlab.units import SCHEMA_VERSION



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
    # registered modules the eval forward did not call (GoogLeNet's aux heads), down to the depth
    # asked: their parameters are in ``params``, they cost no MACs here (``output_shape`` None)
    not_called: tuple[LayerCost, ...] = ()
    # the model's paper calls multiply-adds "FLOPs" (ResNet, EfficientNet): which paper, an example
    # (``archlab.models.paper_flops``); None for other models
    paper_flops: dict[str, str] | None = None

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def status(self) -> str:
        return count_status(self.unsupported_ops)

    def outside_submodules(self) -> tuple[int, int]:
        """Params and MACs no top-level module accounts for (see ``outside_submodules``)."""
        top = [layer for layer in self.layers + self.not_called if layer.depth == 1]
        return outside_submodules(self.params, self.macs, ((layer.name, layer.params, layer.macs) for layer in top))

    def to_dict(self) -> dict[str, Any]:

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
            "unsupported_ops": unsupported_json(self.unsupported_ops),
            "status": self.status,
            "layers": [layer.to_dict() for layer in self.layers],
            "not_called": [{"name": m.name, "type": m.type, "depth": m.depth, "params": m.params}
                           for m in self.not_called],
            "engine": self.engine,
            "paper_flops": self.paper_flops,
        }
        if self.fvcore is not None:
            d["fvcore"] = self.fvcore
        return d


def outside_submodules(params: int, macs: int, top: Iterable[tuple[str, int, int]]) -> tuple[int, int]:
    """Params and MACs that no top-level submodule accounts for: parameters registered on the
    model itself, and functional calls in its own ``forward`` (``x @ w``, ``F.linear``), given
    the model's totals and its depth-1 rows as (name, params, MACs). The rows plus this remainder
    add up to the totals; the params go negative when the forward calls modules the model does
    not register."""
    once: dict[str, int] = {}
    top_macs = 0
    for name, layer_params, layer_macs in top:
        once[name] = layer_params  # a module called twice owns its parameters once
        top_macs += layer_macs
    return params - sum(once.values()), macs - top_macs


def _module_costs(trace: Trace, costs: OpCosts, depth: int) -> tuple[LayerCost, ...]:
    """Per module call down to ``depth`` (1 = the model's children)."""
    rows = []
    for call in trace.calls:
        if call.depth == 0 or call.depth > depth:
            continue
        shape = trace.values[call.outputs[0]].shape if call.outputs else None
        rows.append(LayerCost(call.name, call.type, call.depth, shape, call.params, costs.by_call(call)))
    return tuple(rows)


def count_trace(trace: Trace, label: str, depth: int = 2, engine: str = "archlab") -> CountResult:
    """The ``CountResult`` of a trace already made."""
    costs = OpCosts(trace)
    return CountResult(
        model=label,
        input_shape=trace.input_shape,
        output_shapes=tuple(trace.values[v].shape for v in trace.outputs),
        params=trace.params,
        trainable_params=trace.trainable_params,
        macs=sum(costs.by_kind.values()),
        macs_by_kind=costs.by_kind,
        other_ops=costs.other_by_kind,
        unsupported_ops=costs.unsupported,
        layers=_module_costs(trace, costs, depth),
        engine=engine,
        input_shapes=tuple(trace.values[v].shape for v in trace.inputs),
        not_called=tuple(LayerCost(m.name, m.type, m.depth, None, m.params, 0) for m in trace.uncalled
                         if 0 < m.depth <= depth),
    )


def count(
    model_or_spec: Any,
    *,
    input_size: tuple[int, ...] | None = None,
    res: int | None = None,
    batch: int | None = None,
    alpha: float | None = None,
    options: dict[str, Any] | None = None,
    depth: int = 2,
    engine: str = "archlab",
    device: str = "cpu",
    force: bool = False,
    progress: Callable[[float, float | None, str], None] | None = None,
) -> CountResult:
    """Count parameters, MACs (FLOPs = 2 x MACs) and other operations of a model.

    ``model_or_spec`` is a registered name or spec (``"mobilenet@alpha=0.5"``) or
    an ``nn.Module`` (then ``input_size`` = (C, H, W) is required). The default
    engine never runs a convolution (meta tensors); ``engine="fvcore"`` also runs
    fvcore's FlopCountAnalysis on real tensors on ``device`` and reconciles it (refused when it
    looks too big for the device's free memory, unless ``force``). ``progress(done, total, what)``
    is told when fvcore's real forward starts (it can take a minute; the trace before it is quick)
    and when the count is done.
    """
    if engine not in ("archlab", "fvcore"):
        raise UserError(f"unknown engine '{engine}' (choose archlab or fvcore)")
    check_depth(depth)
    stages = 2 if engine == "fvcore" else 1  # the trace (quick), fvcore's real forward
    tr, label = trace_model(model_or_spec, input_size=input_size, res=res, batch=batch, alpha=alpha,
                            options=options)
    result = count_trace(tr, label, depth=depth, engine=engine)
    from archlab.models.paper_flops import paper_flops

    paper = paper_flops(model_or_spec)
    if paper is not None:
        result = CountResult(**{**result.__dict__, "paper_flops": paper})
    if engine == "fvcore":
        from archlab.measure.devices import check_device
        from archlab.measure.fvcore import fvcore_count
        from archlab.measure.guard import check_fits
        from archlab.analysis.memory import run_bytes

        check_device(device)
        check_fits(run_bytes(tr), device, force, what="--engine fvcore (a real forward)")
        if progress is not None:
            progress(1, stages, f"fvcore: running the model on real tensors ({device})")

        report = fvcore_count(model_or_spec, tuple(tr.values[v].shape for v in tr.inputs), device=device,
                              alpha=alpha, options=options, archlab_macs=result.macs)
        result = CountResult(**{**result.__dict__, "fvcore": report})
    if progress is not None:
        progress(stages, stages, "done")
    return result
