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
                         shard=shard or "none", offload=offload, force=force, device=device,
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
              fsdp_unit: tuple[str, ...], checkpoint: tuple[str, ...] = (), depth: int = 2, force: bool = False,
              device: str = "cpu") -> Any:
    """One rank's bill (``training_memory`` with ``world_size``/``shard``); ``checkpoint``: the globs, or
    ("auto",): the plan to the per-rank ``budget`` over the modules at ``depth``."""
    from archlab.analysis.checkpointing import by_names, select
    from archlab.analysis.sharding import check_sharding, per_rank_bill, per_rank_plan
    from archlab.analysis.training_memory import largest_batch, parse_bytes

    check_sharding(world_size, shard, offload, batch, fsdp_unit)
    if measure and shard not in MEASURED_SCHEMES:
        raise UserError(f"--measure with --shard {shard}: PyTorch has no engine of this scheme to run (ZeRO-2 is "
                        f"DeepSpeed's); measure --shard {', '.join(MEASURED_SCHEMES)}")
    if measure and device != "cpu":
        raise UserError(f"--measure with --world-size/--shard runs its ranks on the CPU (torch.distributed on gloo), "
                        f"not on {device}: leave out --device")
    if measure and (offload or fsdp_unit or amp or freeze):
        raise UserError("--measure with --world-size/--shard runs the default step only: "
                        "leave out --offload, --fsdp-unit, --amp and --freeze")
    model = as_model(model_or_spec, input_size, forward_kw, res=res, batch=batch, alpha=alpha, options=options)
    global_batch = model.settings["batch"]
    check_sharding(world_size, shard, offload, global_batch)
    per_rank = None if global_batch is None else global_batch // world_size
    if global_batch is None:
        global_batch = world_size

    planned: tuple[str, ...] | None = None  # the plan's modules, once made (at the asked batch)

    def at(b: int | None) -> Any:
        tt = _rank_step(model, b, world_size, freeze)
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
    if measure:
        result = _measure_ranks(model.with_batch(per_rank), result, shard, world_size, optimizer, force)
    return result


MEASURED_SCHEMES = {"none": "ddp", "zero1": "zero1", "zero3": "fsdp", "fsdp": "fsdp"}  # zero3 is FSDP2


def _measure_ranks(rank_model: Any, result: Any, shard: str, world_size: int, optimizer: str, force: bool) -> Any:
    """Each rank's measured peak of a real gloo step (``archlab.measure.distributed_peak``) joined to the bill:
    the largest rank's peak is compared, every rank's is named in the method."""
    from archlab.measure.distributed_peak import measure_distributed_peak
    from archlab.measure.guard import check_fits
    from archlab.models.resolve import Resolved
    from archlab.units import human_bytes

    check_fits(world_size * result.training_peak_bytes, "cpu", force,
               what=f"--measure --world-size {world_size} (a real training step on each of {world_size} ranks)")
    source = rank_model.built.resolved or rank_model.source
    module = source.build() if isinstance(source, Resolved) else source
    shapes, options = rank_model.forward_inputs
    scheme = MEASURED_SCHEMES[shard]
    checkpointed = tuple(getattr(result, "checkpointed", ()) or ())  # the bill's checkpointed modules, run so
    ranks = measure_distributed_peak(module, shapes, scheme=scheme, world_size=world_size, optimizer=optimizer,
                                     options=options, checkpoint=checkpointed)
    engine = {"ddp": "DistributedDataParallel", "zero1": "ZeroRedundancyOptimizer",
              "fsdp": "FSDP2 fully_shard per top-level block, then the root"}[scheme]
    each = ", ".join(f"rank {r.rank} {human_bytes(r.peak_bytes)}" for r in ranks)
    if checkpointed:
        engine += f"; {len(checkpointed)} modules under torch.utils.checkpoint"
    method = (f"torch.distributed on gloo, {world_size} spawned ranks ({engine}): the second step's peak of the "
              f"rank's CPU allocations on every thread (c10's allocation total in the profiler's records); {each}")
    return replace(result, measured_training_peak_bytes=max(r.peak_bytes for r in ranks), measured_method=method)


def _rank_step(model: Any, per_rank: int | None, world_size: int, freeze: Sequence[str]) -> Any:
    """The training step's trace of one rank (``model`` at ``per_rank`` samples), or one line saying the global
    batch gives a rank too few samples."""
    rank = model.with_batch(per_rank)
    try:
        return rank.training(freeze)
    except UserError as e:
        if "needs --batch 2 or more" not in str(e):
            raise
        raise UserError(f"{str(e).replace(' needs --batch 2 or more', ' needs 2 or more samples per rank')}: "
                        f"--batch is the global batch, each rank takes --batch / --world-size: give --batch "
                        f"{2 * world_size} or more") from None


def training_bills(model_or_spec: Any, shards: Sequence[str] | str = "all", *, world_size: int = 1,
                   optimizer: str = "sgd", amp: str | None = None, freeze: Sequence[str] = (),
                   input_size: InputSize = None, res: int | None = None, batch: int | None = None,
                   alpha: float | None = None, options: dict[str, Any] | None = None,
                   forward_kw: Any = None) -> list[Any]:
    """One rank's bill (``PerRankBill``) under each scheme of ``shards`` (names of
    ``archlab.analysis.sharding.SCHEMES``, a comma-separated text, or "all"), at ``world_size`` ranks:
    ``training_memory(..., world_size=, shard=)`` for each, from one trace of the step at the per-rank batch
    (``batch`` is the global batch; not given: one sample per rank). Nothing runs."""
    from archlab.analysis.sharding import check_sharding, per_rank_bill
    from archlab.analysis.training_memory import check_step_options

    check_step_options(optimizer, amp)
    names = shard_names(shards)
    for name in names:
        check_sharding(world_size, name, None, batch)
    model = as_model(model_or_spec, input_size, forward_kw, res=res, batch=batch, alpha=alpha, options=options)
    global_batch = model.settings["batch"]
    check_sharding(world_size, names[0], None, global_batch)
    per_rank = None if global_batch is None else global_batch // world_size
    step = _rank_step(model, per_rank, world_size, tuple(freeze))
    return [per_rank_bill(step, world_size=world_size, shard=name, optimizer=optimizer, amp=amp, label=model.label,
                          global_batch=(per_rank or 1) * world_size) for name in names]


def shard_names(shards: Sequence[str] | str) -> tuple[str, ...]:
    """The schemes ``shards`` names ("all", "zero1,zero3", or a list), each once in the order given, or one
    line saying which is unknown."""
    from archlab.analysis.sharding import SCHEMES

    words = shards.split(",") if isinstance(shards, str) else list(shards)
    words = [w.strip() for w in words]
    if not words or any(not w for w in words):
        raise UserError(f"--shard takes scheme names separated by commas ({', '.join(SCHEMES)}) or all, "
                        f"got {','.join(words)!r}")
    if "all" in words:
        if len(words) > 1:
            raise UserError("--shard all is every scheme: give it alone, not with scheme names")
        return SCHEMES
    unknown = [w for w in words if w not in SCHEMES]
    if unknown:
        raise UserError(f"unknown --shard '{unknown[0]}' (choose {', '.join(SCHEMES)}, or all)")
    return tuple(dict.fromkeys(words))
