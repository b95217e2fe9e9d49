"""``archlab.analyze``: every analysis of a model in one report object, for notebooks and scripts.

    report = archlab.analyze("mobilenet_v2", analyses=("count", "rf", "memory"))
    report.to_dict()        # what the CLI's --format json commands print, by analysis
    report.to_pandas()      # {"summary": DataFrame, "layers": DataFrame, "rf": DataFrame, "memory": DataFrame}
    report                  # in Jupyter: rendered through _repr_markdown_ / _repr_html_
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from archlab.api.model import Model
from archlab.errors import UserError
from archlab.spec import InputSize, Inputs, check_depth

ANALYSES = ("count", "rf", "memory", "trace", "training")
MEMORY_KEYS = ("dtype", "act_dtype", "fuse", "workspace")
COUNT_KEYS = ("engine", "device", "force", "training", "freeze", "seed")
TRAINING_KEYS = ("optimizer", "amp", "freeze", "measure", "device", "budget")
SHAPE_KEYS = ("res", "batch", "alpha", "options", "forward_kw")
OPTION_KEYS = {*MEMORY_KEYS, "measure", "device", "force", *COUNT_KEYS, *SHAPE_KEYS, *TRAINING_KEYS}


@dataclass(frozen=True)
class Report:
    model: str
    input_shape: tuple[int, ...]
    count: Any = None  # archlab.analysis.count.CountResult
    rf: Any = None  # archlab.analysis.receptive_field.RFResult
    memory: Any = None  # archlab.analysis.memory.MemoryResult
    trace: Any = None  # archlab.analysis.per_layer.TraceResult
    training: Any = None  # archlab.analysis.training_memory.TrainingMemoryResult (the step's memory bill)
    timeline: Any = None  # with memory: archlab.analysis.page.TimelinePoint per op (live activation bytes)

    def _present(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ANALYSES if getattr(self, name) is not None}

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "input_shape": list(self.input_shape),
                **{name: result.to_dict() for name, result in self._present().items()}}

    def to_pandas(self) -> dict[str, Any]:
        """One DataFrame per table."""
        import pandas as pd

        frames: dict[str, Any] = {}
        if self.count is not None:
            c = self.count
            frames["summary"] = pd.DataFrame([{"model": c.model, "params": c.params,
                                               "trainable_params": c.trainable_params, "macs": c.macs,
                                               "flops": c.flops, **{f"other_{k}": v for k, v in c.other_ops.items()}}])
            frames["layers"] = pd.DataFrame([layer.to_dict() for layer in c.layers])
        if self.rf is not None:
            frames["rf"] = pd.DataFrame(list(self.rf.layers))
        if self.memory is not None:
            d = self.memory.to_dict()
            frames["memory"] = pd.DataFrame([{k: v for k, v in d.items() if not isinstance(v, (dict, list))}])
        if self.trace is not None:
            frames["trace"] = pd.DataFrame(list(self.trace.layers))
        if self.training is not None:
            d = self.training.to_dict()
            frames["training"] = pd.DataFrame([{k: v for k, v in d.items() if not isinstance(v, (dict, list))}])
        return frames

    def _repr_markdown_(self) -> str:
        from archlab.report import count as count_report
        from archlab.report import memory as memory_report
        from archlab.report import per_layer as per_layer_report
        from archlab.report import receptive_field as rf_report

        parts = []
        if self.count is not None:
            parts.append(count_report.render(self.count, "md"))
        if self.rf is not None:
            parts.append(rf_report.render_rf(self.rf, "md"))
        if self.memory is not None:
            parts.append(memory_report.render([self.memory], "md"))
        if self.trace is not None:
            parts.append(per_layer_report.render_trace(self.trace, "md"))
        if self.training is not None:
            from archlab.report import training_memory as training_report

            parts.append(training_report.render([self.training], "md"))
        return "\n\n".join(parts)

    def to_html(self) -> str:
        """The self-contained report page (as ``archlab report`` writes it) of the analyses present:
        summary, figures inline as SVG, per-layer table."""
        from archlab.report import page

        return page.render_html(self.model, self.input_shape, self.count, self.rf, self.memory, self.timeline)

    def _repr_html_(self) -> str:
        """In a notebook: the report page's content (figures and tables), then every table."""
        import html

        from archlab.report import page

        parts = [page.body(self.model, self.input_shape, self.count, self.rf, self.memory, self.timeline),
                 f"<h3>{html.escape(self.model)}: input {'x'.join(map(str, self.input_shape))}</h3>"]
        for name, frame in self.to_pandas().items():
            parts.append(f"<h4>{html.escape(name)}</h4>")
            parts.append(frame.to_html(index=False, max_rows=60))
        return "\n".join(parts)


def analyze(model_or_spec: Any, input_size: InputSize = None, analyses: Sequence[str] = ("count", "rf", "memory"), *,
            depth: int = 2, **options: Any) -> Report:
    """Run the named analyses on a registered model (name or spec), an external spec
    (``torchvision:resnet50``, ``file.py:factory``) or an ``nn.Module`` (give ``input_size``): one
    ``archlab.Model``, traced once, answers all of them. ``options`` go to every analysis: ``res``,
    ``batch``, ``alpha``, ``options`` (builder options), ``forward_kw``; and to the analyses that take
    them: ``engine``, ``seed`` and ``device`` (count), ``dtype``/``act_dtype``/``fuse``/``workspace``/``measure``/
    ``device`` (memory), ``force`` (count and memory). ``analyses`` is one name or a sequence of names.

    The training view: ``training=True`` makes ``count`` a training step's (forward, input- and
    weight-gradient MACs per layer; ``freeze`` globs freeze modules); the analysis ``"training"`` is
    the step's memory bill (``optimizer``, ``amp``, ``freeze``, ``measure``, ``device``, ``budget``)."""
    if isinstance(analyses, str):
        analyses = (analyses,)
    if analyses is None or not isinstance(analyses, (tuple, list, set, frozenset)) or not analyses:
        raise UserError(f"analyses must name one or more of {', '.join(ANALYSES)}, got {analyses!r}")
    unknown = [a for a in analyses if a not in ANALYSES]
    if unknown:
        raise UserError(f"unknown analysis '{unknown[0]}' (choose from {', '.join(ANALYSES)})")
    stray = [k for k in options if k not in OPTION_KEYS]
    if stray:
        raise UserError(f"analyze() takes no option '{stray[0]}' (its options: {', '.join(sorted(OPTION_KEYS))})")
    check_depth(depth)
    from archlab.api.count import count
    from archlab.api.memory import memory, training_memory

    inputs = Inputs.of(input_size, options.get("forward_kw"))
    model = Model(model_or_spec, inputs, **{k: options.get(k) for k in ("res", "batch", "alpha", "options")})
    results: dict[str, Any] = {}
    if "count" in analyses:
        results["count"] = count(model, depth=depth, **{k: v for k, v in options.items()
                                                        if k in COUNT_KEYS and (k != "freeze" or options.get("training"))})
    if "rf" in analyses:
        results["rf"] = model.receptive_field(depth)
    if "memory" in analyses:
        results["memory"] = memory(model, **{k: v for k, v in options.items()
                                             if k in (*MEMORY_KEYS, "measure", "device", "force")})
        results["timeline"] = model.timeline(results["memory"].act_dtype)
    if "trace" in analyses:
        results["trace"] = model.layers(depth)
    if "training" in analyses:
        kw = {k: v for k, v in options.items() if k in TRAINING_KEYS}
        kw["freeze"] = tuple(kw.get("freeze") or ())
        results["training"] = training_memory(model, **kw)
    first = next(v for k, v in results.items() if k != "timeline")
    return Report(first.model, tuple(first.input_shape), **results)
