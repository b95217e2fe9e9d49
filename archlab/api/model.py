"""``archlab.Model``: one model, resolved, built and traced once, and every answer read from that
one trace.

    m = archlab.Model("resnet50", res=160)
    m.count().macs              # the forward's MACs (count_trace of m.trace)
    m.receptive_field(depth=1)  # the same trace, another analysis
    m.memory().mg_bytes
    m.training_memory(optimizer="adam").training_peak_bytes   # the training step, traced once, on first use
    m                           # in Jupyter: the report page's figures and tables

It is made from a registered name or spec (``"mobilenet@alpha=0.5"``), an external spec
(``torchvision:resnet50``, ``file.py:factory``) or an ``nn.Module`` with its inputs (``input_size``,
in any form ``archlab.spec.Inputs`` takes). The model is resolved and built (on the meta device for
a spec) when the ``Model`` is made; the forward is traced on first use and kept; the training step
likewise, once per ``freeze``. Each analysis is a function of the trace (``archlab.analysis``), so
a trace made any other way can be analysed the same way; the ``Model`` only makes each thing once.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Callable, Sequence

from archlab.errors import UserError
from archlab.spec import InputShape, InputSize, Inputs, check_batch
from archlab.trace.graph import Trace, TrainingTrace
from archlab.trace.run import Built, build, saved_for_backward, trace_built, trace_training


class Model:
    """A model and its one trace (see the module's docstring)."""

    def __init__(self, model_or_spec: Any, input_size: InputSize = None, *, res: int | None = None,
                 batch: int | None = None, alpha: float | None = None, options: dict[str, Any] | None = None,
                 forward_kw: Any = None) -> None:
        self.source = model_or_spec
        self.inputs = Inputs.of(input_size, forward_kw)
        self.settings = {"res": res, "batch": check_batch(batch), "alpha": alpha, "options": options}
        self.built: Built = build(model_or_spec, self.inputs, **self.settings, cpu_budget=cpu_build_budget)
        self._training: dict[tuple[str, ...], TrainingTrace] = {}

    # --- what was made once ------------------------------------------------------------------

    @property
    def label(self) -> str:
        """The model as reports name it: the spec with every setting that differs from its defaults."""
        return self.built.label

    @property
    def module(self) -> Any:
        """The ``nn.Module`` (built on the meta device for a spec; the user's own module as given)."""
        return self.built.module

    @property
    def forward_inputs(self) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """(the inputs' shapes, batch first, each with its dtype and keyword where given; the forward's
        options): what a real run makes its arguments from (``archlab.trace.inputs.real_inputs``)."""
        return forward_inputs(self.built, self.inputs, self.settings["batch"])

    @cached_property
    def trace(self) -> Trace:
        """The forward's trace, made on first use and kept."""
        return trace_built(self.built)

    @cached_property
    def costs(self) -> Any:
        """Each op's MACs and other operations (``archlab.analysis.costs.OpCosts``)."""
        from archlab.analysis.costs import OpCosts

        return OpCosts(self.trace)

    @cached_property
    def traffic(self) -> Any:
        """Each op's bytes read and written (``archlab.analysis.traffic.OpTraffic``)."""
        from archlab.analysis.traffic import OpTraffic

        return OpTraffic.of(self.trace, self.costs)

    @cached_property
    def fields(self) -> Any:
        """The receptive field of every value (``archlab.analysis.receptive_field.RFAnalysis``)."""
        from archlab.analysis.receptive_field import receptive_fields

        return receptive_fields(self.trace)

    def training(self, freeze: Sequence[str] = ()) -> TrainingTrace:
        """The training step's trace (forward, loss, backward), made once per ``freeze``."""
        key = (freeze,) if isinstance(freeze, str) else tuple(freeze)
        if key not in self._training:
            self._training[key] = trace_training(self.built.module, self.built.args, key, self.built.kwargs)
        return self._training[key]

    def with_batch(self, batch: int | None) -> Model:
        """The same model and inputs at another batch size (``self`` when it is the same)."""
        if batch == self.settings["batch"]:
            return self
        return Model(self.source, self.inputs, **{**self.settings, "batch": batch})

    # --- the analyses, each a function of the trace -------------------------------------------

    def count(self, depth: int = 2) -> Any:
        """Parameters, MACs and other operations, per module call to ``depth`` (``CountResult``)."""
        from archlab.analysis.count import count_trace
        from archlab.models.paper_flops import paper_flops

        result = count_trace(self.trace, self.label, depth, costs=self.costs, traffic=self.traffic)
        paper = paper_flops(self.source)
        if paper is not None:
            result = type(result)(**{**result.__dict__, "paper_flops": paper})
        if self.built.built_on_cpu:
            result = type(result)(**{**result.__dict__, "built_on_cpu": True})
        return result

    def count_training(self, depth: int = 2, freeze: Sequence[str] = (), checkpoint: Sequence[str] = ()) -> Any:
        """One training step's count: the forward's MACs, and the backward's input- and weight-gradient
        MACs per layer (``CountResult`` with ``training``); ``checkpoint``: module-name globs recomputed in the
        backward (their forward MACs in ``training.recompute_macs``)."""
        from dataclasses import replace

        from archlab.analysis.checkpointing import names_of, recompute_macs, select
        from archlab.analysis.costs import OpCosts
        from archlab.analysis.count import count_training

        tt = self.training(freeze)
        result = count_training(tt, self.label, depth=depth)
        if not checkpoint:
            return result
        calls = select(tt, checkpoint)
        return replace(result, training=replace(result.training, checkpoint=tuple(checkpoint),
                                                checkpointed=names_of(tt, calls),
                                                recompute_macs=recompute_macs(tt, calls, OpCosts(tt.trace))))

    def layers(self, depth: int = 3) -> Any:
        """One row per module call: shapes, geometry, params, MACs, receptive field (``TraceResult``)."""
        from archlab.analysis.per_layer import layers_of

        return layers_of(self.trace, self.label, depth, costs=self.costs, traffic=self.traffic, rf=self.fields)

    def receptive_field(self, depth: int = 2) -> Any:
        """Receptive field, jump and start per layer (``RFResult``)."""
        from archlab.analysis.receptive_field import rf_of

        return rf_of(self.trace, self.label, depth, rf=self.fields)

    def effective_receptive_field(self, depth: int = 2, layer: str | None = None, samples: int | None = None,
                                  weights: str = "init", seed: int = 0, device: str | None = None,
                                  force: bool = False,
                                  progress: Callable[[float, float | None, str], None] | None = None) -> Any:
        """The effective receptive field (Luo et al. 2016) of each layer to ``depth`` (or of ``layer``) beside
        its exact field: real forwards and backwards on ``samples`` random inputs (``ERFResult``)."""
        from archlab.measure.erf import effective_of

        return effective_of(self, depth=depth, layer=layer, samples=samples, weights=weights, seed=seed,
                            device=device, force=force, progress=progress)

    def memory(self, dtype: str | None = None, act_dtype: str | None = None, fuse: Sequence[str] | None = None,
               workspace: str = "none") -> Any:
        """Parameters, the inference peak, training activations and M(G) (``MemoryResult``); ``dtype``
        and ``act_dtype`` not given: the model's own (its parameters' floating dtype)."""
        return memory_of_built(self.built, self.trace, lambda: self.saved, dtype, act_dtype, fuse, workspace)

    @cached_property
    def saved(self) -> tuple[Any, str | None]:
        """The tensors a training step keeps for its backward (memory's training activations), made
        once; (None, why) when the training-mode forward fails (batch norm over one value per
        channel): the rest of the memory analysis stands."""
        return saved_or_why(self.built, self.trace)

    def timeline(self, act_dtype: str | None = None) -> Any:
        """Live activation bytes after each op of the forward (``TimelinePoint`` per op), floating
        tensors at ``act_dtype`` (not given: the model's own)."""
        from archlab.analysis.memory import check_dtype
        from archlab.analysis.page import live_timeline

        return live_timeline(self.trace, check_dtype(act_dtype or self.trace.float_dtype, "--act-dtype"))

    def training_memory(self, optimizer: str = "sgd", amp: str | None = None, freeze: Sequence[str] = (),
                        batch: int | None = None, checkpoint: Sequence[str] = (),
                        modules: Sequence[str] | None = None) -> Any:
        """The memory bill of one training step (``TrainingMemoryResult``); ``batch``: at another batch
        size than the model's (traced anew at that size); ``checkpoint``: module-name globs checkpointed
        (recomputed in the backward); ``modules``: the exact names checkpointed instead (a plan's)."""
        from archlab.analysis.checkpointing import by_names, checkpointed_bill, select
        from archlab.analysis.training_memory import bill, check_step_options

        check_step_options(optimizer, amp)
        model = self if batch is None else self.with_batch(check_batch(batch))
        tt = model.training(freeze)
        if modules is not None:
            return checkpointed_bill(tt, model.label, optimizer, amp, by_names(tt, modules), checkpoint or ("auto",))
        if checkpoint:
            return checkpointed_bill(tt, model.label, optimizer, amp, select(tt, checkpoint), checkpoint)
        return bill(tt, model.label, optimizer, amp)

    def diagram(self, depth: int = 1, block: str | None = None, expand: bool = False) -> Any:
        """The block diagram at ``depth`` (of the module ``block``, if given) (``Diagram``), repeated blocks
        collapsed into one box each unless ``expand``."""
        from archlab.analysis.diagram import diagram_of_trace

        try:
            trace = self.trace
        except UserError as e:  # the forward failed: the diagram up to the failing op goes with the error
            partial = getattr(e, "partial", None)
            if partial is not None:
                try:
                    e.diagram = diagram_of_trace(partial.trace, self.label, depth, block,  # type: ignore[attr-defined]
                                                 expand=expand, error=str(e), failed=partial)
                except UserError:  # the block asked for is not in what was traced
                    pass
            raise
        return diagram_of_trace(trace, self.label, depth, block, expand=expand)

    def diagram_tree(self) -> Any:
        """The whole model as nested boxes down to single ops, for the interactive diagram (``Tree``)."""
        from archlab.analysis.diagram import tree_of_trace

        return tree_of_trace(self.trace, self.label, self.costs, self.traffic, self.fields)

    def cached_prediction(self) -> Any:
        """The predicted time per op from this machine's cached CPU calibration (all threads, fp32), or
        None where it has none (nothing is measured here)."""
        import torch

        from archlab.measure.calibrate import cached

        machine = cached("cpu", torch.get_num_threads(), "fp32")
        return None if machine is None else self.predict(machine)

    def predict(self, machine: Any = None, *, device: str = "cpu", threads: int | None = None,
                dtype: str = "fp32") -> Any:
        """One forward's time predicted from the trace and a calibration (``Prediction``): ``machine``,
        or the cached (or a new) calibration of ``device``/``threads``/``dtype``."""
        from archlab.measure.predict import predict_trace

        if machine is None:
            from archlab.measure.calibrate import machine as calibrated

            machine = calibrated(device, threads, dtype)
        return predict_trace(self.trace, machine, self.costs)

    def page(self, depth: int = 2, latency: Any = None) -> Any:
        """What the report page shows (``PageData``); ``latency``: a measured ``LatencyResult`` with
        per-layer times, for the figure of time per layer kind."""
        from archlab.analysis.page import PageData

        count = self.count(depth)
        memory = self.memory()
        return PageData(count.model, tuple(count.input_shape), count, self.receptive_field(depth), memory,
                        self.timeline(memory.act_dtype), depth, self.diagram_tree(), latency)

    def report(self, depth: int = 2, format: str = "html", effective: bool = False) -> str:
        """The self-contained report page (``archlab report``): html, or md; ``effective``: with the
        effective receptive field's figures (``archlab report --effective``: real runs of the model)."""
        from dataclasses import replace

        from archlab.report import page

        if format not in ("html", "md"):
            raise UserError(f"unknown report format '{format}' (choose html or md)")
        d = self.page(depth)
        if effective:
            d = replace(d, erf=self.effective_receptive_field(depth=depth))
        if format == "md":
            return page.render_md(d.model, d.input_shape, d.count, d.rf, d.memory, d.timeline, d.latency, d.erf)
        return page.render_html(d.model, d.input_shape, d.count, d.rf, d.memory, d.timeline, d.diagram, d.latency,
                                d.erf)

    def to_dict(self, depth: int = 2) -> dict[str, Any]:
        """The count, receptive field and memory, as ``archlab.analyze(...).to_dict()`` gives them."""
        return {"model": self.label, "input_shape": list(self.trace.input_shape),
                "count": self.count(depth).to_dict(), "rf": self.receptive_field(depth).to_dict(),
                "memory": self.memory().to_dict()}

    def __repr__(self) -> str:
        traced = "traced" if "trace" in self.__dict__ else "not traced yet"
        return f"archlab.Model({self.label!r}, {traced})"

    def _repr_html_(self) -> str:
        """In a notebook: the report page's figures and tables."""
        from archlab.report import page

        d = self.page()
        return page.body(d.model, d.input_shape, d.count, d.rf, d.memory, d.timeline)


def as_model(model_or_spec: Any, input_size: InputSize = None, forward_kw: Any = None, **settings: Any) -> Model:
    """``model_or_spec`` as a ``Model``: itself when it is one already (then nothing else may be given:
    its inputs and settings are made), else a new one."""
    if isinstance(model_or_spec, Model):
        given = [k for k, v in (("input_size", input_size), ("forward_kw", forward_kw), *settings.items())
                 if v is not None]
        if given:
            raise UserError(f"{given[0]} is set when an archlab.Model is made, not when it is analysed")
        return model_or_spec
    return Model(model_or_spec, input_size, forward_kw=forward_kw, **settings)


def forward_inputs(built: Built, inputs: Inputs, batch: int | None) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(the inputs' shapes, batch first, each with its dtype and keyword where given; the forward's
    options) of a built model: a spec's from its resolution, a module's from ``inputs`` at ``batch``."""
    resolved = built.resolved
    if resolved is not None:
        return tuple(resolved.input_shapes), tuple(resolved.forward_options)
    b = batch or 1
    return (tuple(s.batched(b) if isinstance(s, InputShape) else (b, *s) for s in inputs.shapes),
            tuple(inputs.options))


def saved_or_why(built: Built, trace: Trace, real: bool = False) -> tuple[Any, str | None]:
    """The tensors a training step of ``built`` keeps for its backward, or (None, why) when its
    training-mode forward fails: the rest of the memory analysis stands. ``real``: the forward runs
    on ``built``'s real arguments (``--engine real``), not on meta tensors."""
    try:
        return saved_for_backward(built.module, built.args, built.kwargs, real=real), None
    except UserError as e:
        note = str(e)
        if trace.input_shape and trace.input_shape[0] == 1 and "more than 1 value per channel" in note:
            note += " (training batch norm needs --batch 2 or more)"
        return None, note


def memory_of_built(built: Built, trace: Trace, saved: Callable[[], tuple[Any, str | None]],
                    dtype: str | None = None, act_dtype: str | None = None, fuse: Sequence[str] | None = None,
                    workspace: str = "none") -> Any:
    """The memory analysis (``MemoryResult``) of a built model and its trace, meta or real; ``saved()``:
    its training step's saved tensors, or (None, why) (``saved_or_why``), made after the options are checked."""
    from archlab.analysis.memory import check_memory_options, memory_of

    check_memory_options(dtype, act_dtype, workspace)  # before the training-mode pass
    saved, note = saved()
    buffers = sum(b.numel() * b.element_size() for b in built.module.buffers())
    return memory_of(trace, built.label, dtype=dtype, act_dtype=act_dtype, fuse=fuse, workspace=workspace,
                     saved=saved, training_note=note, buffers_bytes=buffers)


def cpu_build_budget() -> Any:
    """What a CPU build of a builder that reads tensor values may hold (``trace.run.build``'s
    ``cpu_budget``): 90% of the free memory (``measure.guard``)."""
    from archlab.measure.guard import memory_budget

    return memory_budget("cpu", False)
