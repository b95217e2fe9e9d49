"""``archlab.memory`` and ``archlab.training_memory``: the memory of one model from its meta trace (or,
``engine="real"``, the trace of one real forward), joined with a measured run on request (``measure=True``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from archlab.api.model import as_model, memory_of_built, saved_or_why
from archlab.errors import UserError
from archlab.spec import InputSize, Inputs
from archlab.units import DTYPE_BYTES


def memory(model_or_spec: Any, *, dtype: str | None = None, act_dtype: str | None = None,
           fuse: Sequence[str] | None = None, workspace: str = "none", measure: bool = False, device: str = "cpu",
           force: bool = False, input_size: InputSize = None, res: int | None = None, batch: int | None = None,
           alpha: float | None = None, options: dict[str, Any] | None = None, forward_kw: Any = None,
           engine: str = "archlab", seed: int = 0) -> Any:
    """Memory of a model (``MemoryResult``): parameters, the inference peak, training activations, M(G).
    ``engine``: "archlab" (the meta trace: nothing runs) or "real" (the trace of one real forward on
    ``device``, for builders and forwards that read values, as ``count --engine real``; ``seed``: its weights',
    inputs' and random draws' seed).
    ``dtype``/``act_dtype``: the parameters'/activations' dtype (not given: the model's own, its
    parameters' floating dtype). ``fuse``: module type names treated as single ops in M(G) (default:
    MobileNetV2's inverted residual blocks, where present; ``()`` for none). ``measure``: also run one
    real forward on ``device`` and record its peak (refused when it looks too big for the free memory,
    unless ``force``)."""
    from archlab.analysis.memory import check_memory_options, inference_peak, run_bytes
    from archlab.measure.devices import check_device

    check_memory_options(dtype, act_dtype, workspace)  # before anything is built
    check_device(device)  # also without --measure: a bad --device is an error wherever it is given
    if engine not in ENGINES:
        raise UserError(f"unknown engine '{engine}' (choose {' or '.join(ENGINES)})")
    settings = {"res": res, "batch": batch, "alpha": alpha, "options": options}
    if engine == "real":
        built, trace, shapes, options = _real(model_or_spec, input_size, forward_kw, settings, device, force, seed)
        result = memory_of_built(built, trace, lambda: _saved_seeded(built, trace, seed), dtype, act_dtype, fuse,
                                 workspace)
        source = built.resolved or built.module
    else:
        model = as_model(model_or_spec, input_size, forward_kw, **settings)
        result = model.memory(dtype, act_dtype, fuse, workspace)
        trace = model.trace
        shapes, options = model.forward_inputs  # every input of the forward, with its dtype and keyword
        source = model.built.resolved or model.source  # the spec resolved once: built again, for real
    if not measure:
        return result
    from archlab.measure.guard import check_fits
    from archlab.measure.memory_peak import measure_peak

    check_fits(run_bytes(trace), device, force, what="--measure (a real forward)")
    measured, method = measure_peak(source, shapes, options=options, device=device)
    # the real forward runs in the model's own dtype, whatever --act-dtype the bill was drawn at
    predicted = inference_peak(trace, DTYPE_BYTES[trace.float_dtype], held=True).bytes
    return replace(result, measured_peak_bytes=measured, measured_method=method, predicted_for_measure_bytes=predicted,
                   measured_dtype=trace.float_dtype)


def _saved_seeded(built: Any, trace: Any, seed: int) -> Any:
    """``saved_or_why`` of a real run: its training-mode pass (a dropout's draws) seeded as the run itself, the
    caller's RNG state kept."""
    import torch

    from archlab.trace.inputs import seeded

    device = str(next(iter(built.module.parameters()), torch.empty(0)).device)
    with seeded(seed, device):
        return saved_or_why(built, trace, real=True)


ENGINES = ("archlab", "real")  # where the trace comes from: meta tensors, or one real forward


def _real(model_or_spec: Any, input_size: InputSize, forward_kw: Any, settings: dict[str, Any], device: str,
          force: bool, seed: int = 0) -> tuple[Any, Any, Any, Any]:
    """(built, trace, input shapes, forward options) of one real forward on ``device``, guarded by the
    meta trace's estimate where there is one (as ``count --engine real``)."""
    from archlab.api.model import Model, forward_inputs
    from archlab.measure.real import real_traced

    if isinstance(model_or_spec, Model):
        model_or_spec, inputs, settings = model_or_spec.source, model_or_spec.inputs, model_or_spec.settings
    else:
        inputs = Inputs.of(input_size, forward_kw)
    estimate = None
    if not force:
        try:
            estimate = Model(model_or_spec, inputs, **settings).trace
        except UserError:  # the builder or the forward reads values: the real run is guarded as it runs
            estimate = None
    built, trace = real_traced(model_or_spec, inputs, device=device, force=force, estimate=estimate, seed=seed,
                               **settings)
    return (built, trace, *forward_inputs(built, inputs, settings["batch"]))


def training_memory(model_or_spec: Any, *, optimizer: str = "sgd", amp: str | None = None,
                    freeze: Sequence[str] = (), measure: bool = False, device: str = "cpu", force: bool = False,
                    budget: Any = None, input_size: InputSize = None, res: int | None = None, batch: int | None = None,
                    alpha: float | None = None, options: dict[str, Any] | None = None,
                    forward_kw: Any = None, world_size: int | None = None, shard: str | None = None,
                    offload: str | None = None, fsdp_unit: Sequence[str] = (),
                    checkpoint: Sequence[str] | str | None = None, checkpoint_depth: int | None = None) -> Any:
    """The memory bill of one training step (``TrainingMemoryResult``); ``measure`` also runs a real
    step on ``device`` and records its peak (refused when the predicted peak looks too big for the free
    memory, unless ``force``); ``budget`` (bytes or "8GiB") finds the largest batch whose
    predicted peak fits.

    With ``world_size`` or ``shard`` (none, zero1, zero2, zero3, fsdp; ``offload``: optimizer or params;
    ``fsdp_unit``: module-name globs of the FSDP units), one rank's bill instead (``PerRankBill``,
    ``archlab.analysis.sharding``): ``batch`` is then the global batch, divided among the ranks (not given:
    one sample per rank); ``budget`` finds the largest global batch whose per-rank peak fits (and, with
    ``checkpoint="auto"``, is the per-rank budget the plan fits).

    ``checkpoint``: module-name globs (a list, or one comma-separated text) whose
    modules are checkpointed (``torch.utils.checkpoint``: recomputed in the backward), or "auto": the plan
    of least recompute that fits ``budget``, over the modules at ``checkpoint_depth`` (default 2)."""
    from archlab.analysis.checkpointing import checkpoint_patterns, plan_bill
    from archlab.analysis.training_memory import check_step_options, largest_batch, parse_bytes

    check_step_options(optimizer, amp)
    patterns = checkpoint_patterns(checkpoint)
    auto = "auto" in patterns
    if auto and len(patterns) > 1:
        raise UserError("--checkpoint auto plans which modules to checkpoint: give it alone, not with module globs")
    if auto and budget is None:
        raise UserError("--checkpoint auto plans to a memory budget: add --budget (such as --budget 8GiB)")
    if checkpoint_depth is not None and not auto:
        raise UserError("--checkpoint-depth says where --checkpoint auto looks for modules: add --checkpoint auto")
    depth = 2 if checkpoint_depth is None else checkpoint_depth
    if depth < 1:
        raise UserError(f"--checkpoint-depth must be 1 or more, got {depth}")
    limit = None if budget is None else parse_bytes(budget)  # before anything is traced
    if world_size is not None or shard is not None or offload is not None or fsdp_unit:
        return _per_rank(model_or_spec, optimizer=optimizer, amp=amp, freeze=freeze, measure=measure, budget=budget,
                         input_size=input_size, res=res, batch=batch, alpha=alpha, options=options,
                         forward_kw=forward_kw, world_size=1 if world_size is None else world_size,
                         shard=shard or "none", offload=offload,
                         fsdp_unit=(fsdp_unit,) if isinstance(fsdp_unit, str) else tuple(fsdp_unit or ()),
                         checkpoint=patterns, depth=depth)
    model = as_model(model_or_spec, input_size, forward_kw, res=res, batch=batch, alpha=alpha, options=options)
    if auto:
        result = plan_bill(model.training(freeze), model.label, optimizer, amp, limit, depth, str(budget))

        def at(b: int) -> Any:
            return model.training_memory(optimizer, amp, freeze, batch=b, modules=result.checkpointed)
    else:
        result = model.training_memory(optimizer, amp, freeze, checkpoint=patterns)

        def at(b: int) -> Any:
            return model.training_memory(optimizer, amp, freeze, batch=b, checkpoint=patterns)
    if budget is not None:
        best = largest_batch(at, limit)
        result = replace(result, budget_bytes=limit, max_batch=best[0] if best else 0,
                         max_batch_peak_bytes=best[1] if best else None)
    if measure:
        from archlab.measure.guard import check_fits
        from archlab.measure.training_peak import measure_training_peak

        check_fits(result.training_peak_bytes, device, force, what="--measure --training (a real training step)")

        source = model.built.resolved or model.source
        shapes, options = model.forward_inputs
        measured, method = measure_training_peak(source, shapes, options=options, optimizer=optimizer, amp=amp,
                                                 frozen=model.training(freeze).frozen, device=device,
                                                 checkpoint=result.checkpointed)
        result = replace(result, measured_training_peak_bytes=measured, measured_method=method)
    return result


def _per_rank(model_or_spec: Any, *, optimizer: str, amp: str | None, freeze: Sequence[str], measure: bool,
              budget: Any, input_size: InputSize, res: int | None, batch: int | None, alpha: float | None,
              options: dict[str, Any] | None, forward_kw: Any, world_size: int, shard: str, offload: str | None,
              fsdp_unit: tuple[str, ...], checkpoint: tuple[str, ...] = (), depth: int = 2) -> Any:
    """One rank's bill (``training_memory`` with ``world_size``/``shard``); ``checkpoint``: the globs, or
    ("auto",): the plan to the per-rank ``budget`` over the modules at ``depth``."""
    from archlab.analysis.checkpointing import by_names, select
    from archlab.analysis.sharding import check_sharding, per_rank_bill, per_rank_plan
    from archlab.analysis.training_memory import largest_batch, parse_bytes

    check_sharding(world_size, shard, offload, batch, fsdp_unit)
    if measure:
        raise UserError("--measure with --world-size/--shard (a real torch.distributed step per rank) is not "
                        "available yet: the per-rank bill is a prediction")
    model = as_model(model_or_spec, input_size, forward_kw, res=res, batch=batch, alpha=alpha, options=options)
    global_batch = model.settings["batch"]
    check_sharding(world_size, shard, offload, global_batch)
    per_rank = None if global_batch is None else global_batch // world_size
    if global_batch is None:
        global_batch = world_size

    planned: tuple[str, ...] | None = None  # the plan's modules, once made (at the asked batch)

    def at(b: int | None) -> Any:
        rank = model.with_batch(b)
        try:
            rank.training(freeze)
        except UserError as e:
            if "needs --batch 2 or more" not in str(e):
                raise
            raise UserError(f"{str(e).replace(' needs --batch 2 or more', ' needs 2 or more samples per rank')}: "
                            f"--batch is the global batch, each rank takes --batch / --world-size: give --batch "
                            f"{2 * world_size} or more") from None
        tt = rank.training(freeze)
        how = dict(world_size=world_size, shard=shard, optimizer=optimizer, amp=amp, offload=offload,
                   fsdp_unit=fsdp_unit, label=model.label, global_batch=(b or 1) * world_size)
        if planned is not None:  # the plan, at another batch (the largest in the budget)
            return per_rank_bill(tt, **how, checkpointed=by_names(tt, planned), checkpoint=("auto",),
                                 plan_method=result.plan_method)
        if checkpoint == ("auto",):
            return per_rank_plan(tt, **how, budget=parse_bytes(budget), depth=depth, budget_text=str(budget))
        return per_rank_bill(tt, **how, checkpointed=select(tt, checkpoint) if checkpoint else (),
                             checkpoint=checkpoint)

    result = at(per_rank)
    if checkpoint == ("auto",):
        planned = result.checkpointed
    if budget is not None:
        limit = parse_bytes(budget)
        best = largest_batch(at, limit)
        result = replace(result, budget_bytes=limit, max_batch=best[0] * world_size if best else 0,
                         max_batch_peak_bytes=best[1] if best else None)
    return result
