"""``archlab.count``: the count of one model, from its meta trace, or joined with a real run
(``engine="fvcore"``: fvcore's count on real tensors, reconciled; ``engine="real"``: the trace
itself run on real tensors)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from archlab.api.model import Model, as_model
from archlab.errors import UserError
from archlab.spec import InputSize, Inputs, check_depth

ENGINES = ("archlab", "fvcore", "real")


def count(
    model_or_spec: Any,
    *,
    input_size: InputSize = None,
    res: int | None = None,
    batch: int | None = None,
    alpha: float | None = None,
    options: dict[str, Any] | None = None,
    depth: int = 2,
    engine: str = "archlab",
    device: str = "cpu",
    force: bool = False,
    progress: Callable[[float, float | None, str], None] | None = None,
    training: bool = False,
    freeze: Sequence[str] = (),
    forward_kw: Any = None,
    seed: int = 0,
    checkpoint: Sequence[str] | str | None = None,
) -> Any:
    """Count parameters, MACs (FLOPs = 2 x MACs) and other operations of a model (``CountResult``).

    ``model_or_spec`` is a registered name or spec (``"mobilenet@alpha=0.5"``), an external spec, or
    an ``nn.Module`` (then ``input_size`` = (C, H, W) is required). The default engine never runs a
    convolution (meta tensors); ``engine="fvcore"`` also runs fvcore's FlopCountAnalysis on real
    tensors on ``device`` and reconciles it; ``engine="real"`` runs the trace itself on real tensors
    (both refused when they look too big for the device's free memory, unless ``force``).
    ``progress(done, total, what)`` is told when fvcore's real forward starts and when the count is done.

    ``training=True`` counts one training step: the training-mode forward and autograd's real
    backward of ``loss = sum of the outputs``, traced on meta; the backward MACs are split into
    input-gradient and weight-gradient MACs, per layer. ``freeze``: module-name globs whose
    parameters get no gradient (fine-tuning). ``checkpoint``: module-name globs (a list, or one
    comma-separated text) checkpointed in that step: their forward MACs, run again in the backward, are
    ``training.recompute_macs``.

    ``forward_kw``: non-tensor keyword options of the forward (``{"use_cache": True}``, or the
    ``--forward-kw`` texts ``"use_cache=true"``), beside those ``input_size`` gives.

    ``seed`` (``engine="real"``): the weights' initialisation, the inputs' values and the forward's random
    draws (the caller's RNG state is kept): the same seed, the same count (``CountResult.seed``).
    """
    if engine not in ENGINES:
        raise UserError(f"unknown engine '{engine}' (choose archlab, fvcore or real)")
    check_depth(depth)
    freeze = (freeze,) if isinstance(freeze, str) else tuple(freeze)
    if freeze and not training:
        raise UserError("--freeze says which modules get no gradient in training: add --training")
    from archlab.analysis.checkpointing import checkpoint_patterns

    patterns = checkpoint_patterns(checkpoint)
    if patterns and not training:
        raise UserError("--checkpoint says which modules a training step recomputes: add --training")
    if "auto" in patterns:
        raise UserError("--checkpoint auto plans to a memory budget: use archlab memory --training --checkpoint auto "
                        "--budget SIZE, then count --training --checkpoint with the modules it names")
    if training and engine != "archlab":
        raise UserError("--training is counted by archlab's own engine on meta tensors (fvcore and real count "
                        "the forward only)")
    settings = {"res": res, "batch": batch, "alpha": alpha, "options": options}
    if engine == "real":
        if isinstance(model_or_spec, Model):
            return _real(model_or_spec.source, model_or_spec.inputs, device, force, depth, model_or_spec.settings,
                         progress, model_or_spec, seed)
        return _real(model_or_spec, Inputs.of(input_size, forward_kw), device, force, depth, settings, progress,
                     seed=seed)
    model = as_model(model_or_spec, input_size, forward_kw, **settings)
    if training:
        return model.count_training(depth, freeze, patterns)
    result = model.count(depth)
    stages = 1
    if engine == "fvcore":
        result, stages = _with_fvcore(model, result, device, force, progress), 2  # the trace, fvcore's real run
    if progress is not None:
        progress(stages, stages, "done")
    return result


def _real(model_or_spec: Any, inputs: Inputs, device: str, force: bool, depth: int, settings: dict[str, Any],
          progress: Callable[[float, float | None, str], None] | None, model: Model | None = None,
          seed: int = 0) -> Any:
    """The count of one real forward, guarded by the meta trace's estimate where there is one
    (``model``: the meta ``Model`` of the same spec, when made already)."""
    from archlab.analysis.count import count_trace
    from archlab.measure.devices import check_device
    from archlab.measure.real import real_trace
    from archlab.models.paper_flops import paper_flops

    check_device(device)
    estimate = None
    if not force:
        try:
            estimate = (model or Model(model_or_spec, inputs, **settings)).trace
        except UserError:  # the builder or the forward reads values: the real run is guarded as it runs
            estimate = None
    trace, label = real_trace(model_or_spec, inputs, device=device, force=force, estimate=estimate, seed=seed,
                              **settings)
    result = count_trace(trace, label, depth, engine="real")
    result = type(result)(**{**result.__dict__, "paper_flops": paper_flops(model_or_spec), "seed": seed})
    if progress is not None:
        progress(1, 1, "done")
    return result


def _with_fvcore(model: Model, result: Any, device: str, force: bool,
                 progress: Callable[[float, float | None, str], None] | None) -> Any:
    """``result`` with fvcore's count of the same model on real tensors, reconciled."""
    from archlab.analysis.memory import run_bytes
    from archlab.measure.devices import check_device
    from archlab.measure.fvcore import fvcore_count
    from archlab.measure.guard import check_fits

    check_device(device)
    trace = model.trace
    check_fits(run_bytes(trace), device, force, what="--engine fvcore (a real forward)")
    if progress is not None:
        progress(1, 2, f"fvcore: running the model on real tensors ({device})")
    shapes, forward_options = model.forward_inputs  # every input, with its dtype and keyword
    report = fvcore_count(model.source, shapes, forward_options=forward_options, device=device,
                          alpha=model.settings["alpha"], options=model.settings["options"], archlab_macs=result.macs)
    return type(result)(**{**result.__dict__, "fvcore": report, "engine": "fvcore"})
