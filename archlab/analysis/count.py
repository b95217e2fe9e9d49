"""``archlab count``: parameters, MACs (FLOPs = 2 x MACs) and the other operations of a model, per
module call and by kind, from its forward trace (``count_trace``) or its training-step trace
(``count_training``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from archlab.analysis.costs import OTHER_KIND_MEANING, OpCosts, count_status, other_kind, unsupported_json
from archlab.analysis.traffic import TRAFFIC_UNITS, OpTraffic, intensity
from archlab.analysis.training import split_backward
from archlab.spec import check_depth
from archlab.trace.graph import Trace, TrainingTrace
from archlab.trace.inputs import described_shape
from archlab.units import SCHEMA_VERSION



class _Traffic:
    """``traffic_bytes`` of a row or result that has ``read_bytes`` and ``written_bytes`` (None: not counted)."""

    read_bytes: int | None
    written_bytes: int | None

    @property
    def traffic_bytes(self) -> int | None:
        return None if self.read_bytes is None else self.read_bytes + (self.written_bytes or 0)


@dataclass(frozen=True)
class LayerCost(_Traffic):
    name: str
    type: str
    depth: int
    output_shape: tuple[int, ...] | None
    params: int
    macs: int
    # with count(..., training=True): the backward MACs of this layer's gradients (else None)
    input_grad_macs: int | None = None
    weight_grad_macs: int | None = None
    # memory traffic of the forward's ops (``archlab.analysis.traffic``); None in the training view
    read_bytes: int | None = None
    written_bytes: int | None = None

    @property
    def backward_macs(self) -> int | None:
        return None if self.input_grad_macs is None else self.input_grad_macs + (self.weight_grad_macs or 0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["output_shape"] = list(self.output_shape) if self.output_shape else None
        d.pop("input_grad_macs")
        d.pop("weight_grad_macs")
        if self.input_grad_macs is not None:
            d.update(training_keys(self.macs, self.input_grad_macs, self.weight_grad_macs or 0))
        d.pop("read_bytes")
        d.pop("written_bytes")
        if self.read_bytes is not None:
            d.update(traffic_keys(self.macs, self.read_bytes, self.written_bytes or 0))
        return d


def traffic_keys(macs: int, read: int, written: int) -> dict[str, Any]:
    """The JSON keys of memory traffic, in their order (top level and each layer row)."""
    return {"read_bytes": read, "written_bytes": written, "traffic_bytes": read + written,
            "arithmetic_intensity": intensity(macs, read + written)}


def training_keys(forward: int, input_grad: int, weight_grad: int) -> dict[str, int]:
    """The JSON keys of the training view, in their order (top level and each layer row)."""
    return {"forward_macs": forward, "backward_macs": input_grad + weight_grad, "input_grad_macs": input_grad,
            "weight_grad_macs": weight_grad, "training_macs": forward + input_grad + weight_grad}


@dataclass(frozen=True)
class TrainingTotals:
    """The backward pass of one training step (``count(..., training=True)``)."""

    input_grad_macs: int  # MACs computing gradients of activations (and of the model's inputs, if they need one)
    weight_grad_macs: int  # MACs computing gradients of parameters
    other_ops: dict[str, int]  # the backward's other operations, by kind
    frozen: tuple[str, ...] = ()  # the --freeze patterns
    frozen_params: int = 0  # parameters that got no gradient because of them
    # with --checkpoint: the modules recomputed in the backward, and their forward MACs, run again
    checkpoint: tuple[str, ...] = ()  # the --checkpoint globs
    checkpointed: tuple[str, ...] = ()
    recompute_macs: int = 0

    @property
    def backward_macs(self) -> int:
        return self.input_grad_macs + self.weight_grad_macs


@dataclass(frozen=True)
class CountResult(_Traffic):
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
    training: TrainingTotals | None = None  # with training=True: the backward pass (macs is the forward's)
    # memory traffic of the forward's ops, each op alone (``archlab.analysis.traffic``); None when training
    read_bytes: int | None = None
    written_bytes: int | None = None
    seed: int | None = None  # engine "real": the seed of its weights, inputs and random draws
    built_on_cpu: bool = False  # its builder reads tensor values: built on the CPU, traced on meta

    @property
    def arithmetic_intensity(self) -> float | None:
        """FLOPs (2 x MACs) per byte of traffic."""
        return None if self.read_bytes is None else intensity(self.macs, self.traffic_bytes)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def forward_macs(self) -> int | None:
        """With training=True: the forward's MACs (``macs``), as ``to_dict()["forward_macs"]``; else None."""
        return None if self.training is None else self.macs

    @property
    def backward_macs(self) -> int | None:
        """With training=True: the backward's MACs (input + weight gradients); else None."""
        return None if self.training is None else self.training.backward_macs

    @property
    def input_grad_macs(self) -> int | None:
        return None if self.training is None else self.training.input_grad_macs

    @property
    def weight_grad_macs(self) -> int | None:
        return None if self.training is None else self.training.weight_grad_macs

    @property
    def training_macs(self) -> int | None:
        """Forward + backward MACs of one training step (None without training=True)."""
        return None if self.training is None else self.macs + self.training.backward_macs

    @property
    def training_ratio(self) -> float | None:
        return None if self.training is None or not self.macs else self.training_macs / self.macs

    def training_reasons(self) -> list[str]:
        """Why training / forward is not exactly 3, from this model's numbers: one clause per reason."""
        t = self.training
        if t is None:
            return []
        no_input = self.macs - t.input_grad_macs
        no_weight = self.macs - t.weight_grad_macs
        parts = []
        if no_input > 0:
            where = "the first layer and the frozen layers before the first trainable one" if t.frozen \
                else "the first layer's input needs none"
            parts.append(f"{no_input:,} forward MACs get no input gradient ({where})")
        elif no_input < 0:  # a product of two activations (attention's q @ k^T) has a gradient for each
            parts.append(f"{-no_input:,} more input-gradient MACs than forward MACs (a product of two activations, "
                         f"attention's q @ k^T, has a gradient for each operand; a fused attention backward "
                         f"also recomputes the scores)")
        if no_weight:
            why = "frozen, or products of two activations" if t.frozen else "products of two activations"
            parts.append(f"{no_weight:,} forward MACs get no weight gradient ({why})")
        return parts

    def training_note(self) -> str:
        """Why training / forward is not exactly 3, in one sentence."""
        if self.training is None:
            return ""
        parts = self.training_reasons()
        if not self.macs:
            return "no ratio: the forward has no MACs"
        if parts and self.training_macs == 3 * self.macs:
            return "exactly 3, but not each the forward's size: " + "; ".join(parts)
        if not parts:
            return "every forward MAC is paid twice more in the backward, for the input and the weight gradient"
        return "3 = forward + input gradient + weight gradient, each the forward's size; but " + "; ".join(parts)

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
                **(TRAFFIC_UNITS if self.read_bytes is not None else {}),
            },
            **(traffic_keys(self.macs, self.read_bytes, self.written_bytes or 0)
               if self.read_bytes is not None else {}),
            "macs_by_kind": dict(self.macs_by_kind),
            "other_ops": dict(self.other_ops),
            "unsupported_ops": unsupported_json(self.unsupported_ops),
            "status": self.status,
            "layers": [layer.to_dict() for layer in self.layers],
            "not_called": [{"name": m.name, "type": m.type, "depth": m.depth, "params": m.params}
                           for m in self.not_called],
            "engine": self.engine,
            **({"seed": self.seed} if self.seed is not None else {}),
            **({"built_on": "cpu"} if self.built_on_cpu else {}),
            "paper_flops": self.paper_flops,
        }
        if self.fvcore is not None:
            d["fvcore"] = self.fvcore
        if self.training is not None:
            t = self.training
            d.update(training_keys(self.macs, t.input_grad_macs, t.weight_grad_macs))
            d["training"] = {
                "loss": "sum of every floating-point output; autograd's backward traced on meta",
                "ratio_training_to_forward": self.training_ratio,
                "why_not_3": self.training_note(),
                "frozen": list(t.frozen),
                "frozen_params": t.frozen_params,
                "backward_other_ops": dict(t.other_ops),
            }
            if t.checkpoint:
                d["recompute_macs"] = t.recompute_macs
                d["checkpointed_training_macs"] = self.training_macs + t.recompute_macs
                d["training"].update(checkpoint=list(t.checkpoint), checkpointed=list(t.checkpointed))
                d["units"]["recompute_macs"] = "forward MACs of the checkpointed modules, run again in the backward"
            d["units"]["input_grad_macs"] = "backward MACs computing gradients of activations (conv: transposed conv)"
            d["units"]["weight_grad_macs"] = "backward MACs computing gradients of parameters"
        return d


def outside_submodules(params: int, macs: int, top: Iterable[tuple[str, int, int]]) -> tuple[int, int]:
    """Params and MACs that no top-level submodule accounts for: parameters registered on the
    model itself, and functional calls in its own ``forward`` (``x @ w``, ``F.linear``), given
    the model's totals and its depth-1 rows as (name, params, MACs). The rows plus this remainder
    add up to the totals (a module called twice, or shared under two names, shows its parameters
    at its first call only); the params go negative when the forward calls modules the model does
    not register."""
    top_params = top_macs = 0
    for _name, layer_params, layer_macs in top:
        top_params += layer_params
        top_macs += layer_macs
    return params - top_params, macs - top_macs


def _module_costs(trace: Trace, costs: OpCosts, traffic: OpTraffic, depth: int) -> tuple[LayerCost, ...]:
    """Per module call down to ``depth`` (1 = the model's children)."""
    rows = []
    for call in trace.calls:
        if call.depth == 0 or call.depth > depth:
            continue
        shape = trace.values[call.outputs[0]].shape if call.outputs else None
        read, written = traffic.by_call(call)
        rows.append(LayerCost(call.name, call.type, call.depth, shape, call.params, costs.by_call(call),
                              read_bytes=read, written_bytes=written))
    return tuple(rows)


def count_trace(trace: Trace, label: str, depth: int = 2, engine: str = "archlab", costs: OpCosts | None = None,
                traffic: OpTraffic | None = None) -> CountResult:
    """The ``CountResult`` of a trace already made (``costs``, ``traffic``: its own, when computed)."""
    check_depth(depth)
    costs = costs or OpCosts(trace)
    traffic = traffic or OpTraffic.of(trace, costs)
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
        layers=_module_costs(trace, costs, traffic, depth),
        engine=engine,
        input_shapes=tuple(described_shape(trace.values[v].shape, trace.values[v].dtype, trace.values[v].name)
                           for v in trace.inputs),
        not_called=tuple(LayerCost(m.name, m.type, m.depth, None, m.params, 0) for m in trace.uncalled
                         if 0 < m.depth <= depth),
        read_bytes=traffic.total_read,
        written_bytes=traffic.total_written,
    )


def count_training(tt: TrainingTrace, label: str, depth: int = 3) -> CountResult:
    """The ``CountResult`` of a training step traced by ``archlab.trace.run.trace_training``:
    ``macs`` and the layers' ``macs`` are the forward's; ``training`` and the layers'
    ``input_grad_macs``/``weight_grad_macs`` the backward's, attributed to the module whose
    forward each backward op differentiates."""
    check_depth(depth)
    tr = tt.trace
    costs = OpCosts(tr)
    split = split_backward(tt, costs)
    start = tt.backward_start
    forward_kind = {k: 0 for k in costs.by_kind}
    forward_other: dict[str, int] = {k: 0 for k in costs.other_by_kind}
    backward_other: dict[str, int] = {k: 0 for k in costs.other_by_kind}
    for i, kind in enumerate(costs.kinds):
        if i < start and costs.macs[i]:
            forward_kind[kind] += costs.macs[i]
        if costs.other[i] and not tr.ops[i].attrs.get("accumulate_grad"):
            bucket = forward_other if i < start else backward_other
            bucket[other_kind(kind)] += costs.other[i]
    ig = [0] * len(tr.calls)
    wg = [0] * len(tr.calls)
    for op in tr.ops[start:]:
        a, b = split.input_grad[op.index], split.weight_grad[op.index]
        c = op.call
        while (a or b) and c >= 0:
            ig[c] += a
            wg[c] += b
            c = tr.calls[c].parent
    rows = []
    for call in tr.calls:
        if call.depth == 0 or call.depth > depth:
            continue
        shape = tr.values[call.outputs[0]].shape if call.outputs else None
        rows.append(LayerCost(call.name, call.type, call.depth, shape, call.params, costs.by_call(call),
                              ig[call.index], wg[call.index]))
    return CountResult(
        model=label,
        input_shape=tr.input_shape,
        output_shapes=tuple(tr.values[v].shape for v in tr.outputs),
        params=tr.params,
        trainable_params=tr.trainable_params,
        macs=sum(forward_kind.values()),
        macs_by_kind=forward_kind,
        other_ops=forward_other,
        unsupported_ops=costs.unsupported,
        layers=tuple(rows),
        engine="archlab",
        input_shapes=tuple(described_shape(tr.values[v].shape, tr.values[v].dtype, tr.values[v].name)
                           for v in tr.inputs),
        training=TrainingTotals(sum(split.input_grad), sum(split.weight_grad), backward_other,
                                tuple(tt.freeze), tt.frozen_params),
    )


def count_model(model_or_spec: Any, depth: int = 0, **sizes: Any) -> CountResult:
    """The count of a model traced here (``archlab.trace.run.trace_model``; ``sizes``: its
    ``input_size``, ``res`` ...): for analyses that count models they build themselves (a layer of
    ``dwsc``, the networks of a scaling study)."""
    from archlab.trace.run import trace_model

    trace, label = trace_model(model_or_spec, **sizes)
    return count_trace(trace, label, depth)
