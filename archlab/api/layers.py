"""The per-layer views of one model by name, spec or ``nn.Module``: ``archlab.trace_layers``,
``archlab.receptive_field`` and the block diagram, each from one ``Model``."""

from __future__ import annotations

from typing import Any, Callable

from archlab.api.model import Model, as_model
from archlab.spec import check_depth


def _model(model_or_spec: Any, kw: dict[str, Any]) -> Model:
    return Model(model_or_spec, kw.pop("input_size", None), forward_kw=kw.pop("forward_kw", None), **kw)


def trace_layers(model_or_spec: Any, *, depth: int = 3, **kw: Any) -> Any:
    """One row per module call (``TraceResult``): shapes, geometry, params, MACs, receptive field,
    activation size. ``kw``: ``input_size``, ``res``, ``batch``, ``alpha``, ``options``, ``forward_kw``."""
    check_depth(depth)
    return _model(model_or_spec, kw).layers(depth)


def receptive_field(model_or_spec: Any, *, depth: int = 2, **kw: Any) -> Any:
    """Receptive field, jump and first-unit centre per layer, on the data-flow graph (``RFResult``)."""
    check_depth(depth)
    return _model(model_or_spec, kw).receptive_field(depth)


def diagram(model_or_spec: Any, *, depth: int = 1, block: str | None = None, expand: bool = False, **kw: Any) -> Any:
    """The block diagram of a model (or of its module ``block``) at ``depth`` below it (``Diagram``);
    repeated blocks are one box each ("Bottleneck × 6") unless ``expand``."""
    return _model(model_or_spec, kw).diagram(depth, block, expand)


def diagram_html(model_or_spec: Any, *, depth: int = 1, color: str = "macs", **kw: Any) -> str:
    """The interactive diagram as a self-contained page (``archlab diagram --format html``): open at
    ``depth``, boxes coloured by their share of ``color``; predicted times where this machine is calibrated."""
    from archlab.report import diagram as diagram_report

    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        from archlab.errors import UserError

        raise UserError(f"--depth must be 1 or more, got {depth!r}")
    m = _model(model_or_spec, kw)
    prediction = m.cached_prediction()
    return diagram_report.to_html(m.diagram_tree(), depth, color, prediction)


def effective_receptive_field(model_or_spec: Any, *, depth: int = 2, layer: str | None = None,
                              samples: int | None = None, weights: str = "init", seed: int = 0,
                              device: str | None = None, force: bool = False,
                              progress: Callable[[float, float | None, str], None] | None = None, **kw: Any) -> Any:
    """The effective receptive field (Luo et al., NIPS 2016) of each layer to ``depth`` (or of the module
    ``layer``) beside its exact field: |d(centre unit, summed over channels)/d input| averaged over
    ``samples`` random inputs (default ``archlab.measure.erf.DEFAULT_SAMPLES``) under ``weights``
    ('init': the model's own initialization averaged over seeded builds; 'uniform': every conv/linear weight
    equal; 'given': the weights as built), on ``device`` (default the CPU). ``kw``: ``input_size``, ``res``, ``alpha``,
    ``options``, ``forward_kw``, as for ``archlab.receptive_field``."""
    from archlab.measure.erf import check_erf_options

    check_depth(depth)
    check_erf_options(samples, weights, seed)
    model = as_model(model_or_spec, kw.pop("input_size", None), kw.pop("forward_kw", None), **kw)
    return model.effective_receptive_field(depth, layer, samples, weights, seed, device, force, progress)
