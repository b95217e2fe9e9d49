"""What ``archlab report`` shows of one model: its ``Model``'s page data, joined with measured
per-layer latency on request."""

from __future__ import annotations

from typing import Any

from archlab.api.model import Model
from archlab.errors import UserError

SHAPE_KEYS = ("res", "batch", "alpha", "options", "input_size", "forward_kw")


def page_data(model_or_spec: Any, *, depth: int = 2, latency: bool = False, min_time: float = 1.0,
              effective: bool = False, samples: int | None = None, progress: Any = None, **kw: Any) -> Any:
    """Everything the report page of a model shows (``PageData``). ``kw``: ``res``, ``batch``,
    ``alpha``, ``options``, ``input_size``, ``forward_kw`` (as ``archlab.analyze``). ``latency``: also
    time the model on the CPU (``min_time`` seconds of timed forwards, then each op of a forward
    timed and attributed to its module), for the figure of time per layer kind beside its share of
    MACs; a registered model or spec only. ``effective``: also measure the effective receptive field
    of the layers at ``depth`` (``Model.effective_receptive_field``, its defaults: real forwards and
    backwards on ``samples`` random inputs, on the CPU; ``progress``: its progress callback), for the
    page's heatmaps and its figure against depth; off by default, as the rest of the page runs nothing."""
    stray = [k for k in kw if k not in SHAPE_KEYS]
    if stray:
        raise UserError(f"the report takes no option '{stray[0]}'")
    if samples is not None and not effective:
        raise UserError("--samples is the number of random inputs of --effective; add --effective")
    model = Model(model_or_spec, kw.pop("input_size", None), forward_kw=kw.pop("forward_kw", None), **kw)
    data = model.page(depth)
    if effective:
        from dataclasses import replace

        data = replace(data, erf=model.effective_receptive_field(depth=depth, samples=samples, progress=progress))
    if not latency:
        return data
    if not isinstance(model_or_spec, str):
        raise UserError("--latency times a registered model or spec (a name), not an nn.Module")
    from dataclasses import replace

    from archlab.measure.latency import measure_all

    measured = measure_all([model_or_spec], per_layer=True, min_time=min_time, input_size=model.inputs,
                           traced=[(model.built, model.trace)], **kw)[0]
    return replace(data, latency=measured)
