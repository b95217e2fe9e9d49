"""What ``archlab report`` shows of one model: its ``Model``'s page data, joined with measured
per-layer latency on request."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from archlab.api.model import Model
from archlab.errors import UserError

SHAPE_KEYS = ("res", "batch", "alpha", "options", "input_size", "forward_kw")


def page_data(model_or_spec: Any, *, depth: int = 2, latency: bool = False, min_time: float = 1.0,
              effective: bool = False, samples: int | None = None, progress: Any = None, training: bool = False,
              world_size: int | None = None, shard: str | None = None, optimizer: str = "sgd", **kw: Any) -> Any:
    """Everything the report page of a model shows (``PageData``). ``kw``: ``res``, ``batch``,
    ``alpha``, ``options``, ``input_size``, ``forward_kw`` (as ``archlab.analyze``). ``latency``: also
    time the model on the CPU (``min_time`` seconds of timed forwards, then each op of a forward
    timed and attributed to its module), for the figure of time per layer kind beside its share of
    MACs; a registered model or spec only. ``effective``: also measure the effective receptive field
    of the layers at ``depth`` (``Model.effective_receptive_field``, its defaults: real forwards and
    backwards on ``samples`` random inputs, on the CPU; ``progress``: its progress callback), for the
    page's heatmaps and its figure against depth; off by default, as the rest of the page runs nothing.
    ``training``: also one rank's training-step memory under every scheme (none, zero1, zero2, zero3, fsdp) at
    ``world_size`` ranks (default 1), ``shard`` the one marked as chosen (default none), ``optimizer``'s state;
    ``batch`` is then the global batch (``archlab.api.memory.training_bills``: counted, nothing runs)."""
    stray = [k for k in kw if k not in SHAPE_KEYS]
    if stray:
        raise UserError(f"the report takes no option '{stray[0]}'")
    if samples is not None and not effective:
        raise UserError("--samples is the number of random inputs of --effective; add --effective")
    given = [flag for flag, on in (("--world-size", world_size is not None), ("--shard", shard is not None),
                                   ("--optimizer", optimizer != "sgd")) if on]
    if given and not training:
        raise UserError(f"{given[0]} applies to the page's training-memory section: add --training")
    if training:
        from archlab.analysis.sharding import check_sharding
        from archlab.analysis.training_memory import check_step_options

        check_step_options(optimizer, None)
        world_size = 1 if world_size is None else world_size
        shard = "none" if shard is None else shard
        check_sharding(world_size, shard, None, kw.get("batch"))  # before anything is traced
    model = Model(model_or_spec, kw.pop("input_size", None), forward_kw=kw.pop("forward_kw", None), **kw)
    data = model.page(depth)
    if training:
        from archlab.api.memory import training_bills

        data = replace(data, training=tuple(training_bills(model, "all", world_size=world_size, optimizer=optimizer)),
                       shard=shard)
    if effective:
        data = replace(data, erf=model.effective_receptive_field(depth=depth, samples=samples, progress=progress))
    if not latency:
        return data
    if not isinstance(model_or_spec, str):
        raise UserError("--latency times a registered model or spec (a name), not an nn.Module")
    from archlab.measure.latency import measure_all

    measured = measure_all([model_or_spec], per_layer=True, min_time=min_time, input_size=model.inputs,
                           traced=[(model.built, model.trace)], **kw)[0]
    return replace(data, latency=measured)
