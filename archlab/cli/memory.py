"""``archlab memory``: parameter memory, inference peak, training activations and M(G)."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from archlab.cli.options import (Alpha, Batch, DType, Device, Fmt, Force, Format, ForwardKw, Freeze, InputSize,
                                 Measure, Optimizer, Output, Res, Seed, Sets, StoredDType, Training, emit,
                                 parse_common, seed_of, settle)
from archlab.errors import UserError

def memory_cmd(
    models: Annotated[List[str], typer.Argument(help="One or more model names or specs (several: side by side).")],
    res: Res = None,
    input_size: InputSize = None,
    forward_kw: ForwardKw = None,
    batch: Batch = None,
    alpha: Alpha = None,
    sets: Sets = None,
    dtype: StoredDType = None,
    act_dtype: Annotated[Optional[DType], typer.Option("--act-dtype", help="Activation dtype (default: the "
                                                        "model's own).")] = None,
    fuse: Annotated[Optional[List[str]], typer.Option("--fuse", help="Module type to treat as one op in M(G) (repeatable); default InvertedResidual.")] = None,
    no_fuse: Annotated[bool, typer.Option("--no-fuse", help="Fuse nothing.")] = False,
    workspace: Annotated[str, typer.Option("--workspace", help="|op| of M(G): none or im2col.")] = "none",
    measure: Measure = False,
    engine: Annotated[str, typer.Option("--engine", help="archlab (meta trace, nothing runs) or real (the trace of "
                                        "one real forward on --device, for builders and forwards that read values)."
                                        )] = "archlab",
    device: Device = "cpu",
    seed: Seed = None,
    force: Force = False,
    training: Training = False,
    optimizer: Optimizer = "sgd",
    amp: Annotated[Optional[str], typer.Option("--amp", help="With --training: mixed precision, bf16 or fp16 "
                                      "(fp32 master weights).")] = None,
    freeze: Freeze = None,
    budget: Annotated[Optional[str], typer.Option("--budget", help="With --training: a memory size (8GiB): report the "
                                         "largest batch whose predicted training peak fits.")] = None,
    world_size: Annotated[Optional[int], typer.Option("--world-size", help="With --training: the bill of one of N "
                                              "data-parallel ranks; --batch is then the global batch.")] = None,
    shard: Annotated[Optional[str], typer.Option("--shard", help="With --training: how the ranks divide the model: "
                                    "none (DDP), zero1, zero2, zero3 or fsdp (FSDP2, as zero3).")] = None,
    offload: Annotated[Optional[str], typer.Option("--offload", help="With --shard: optimizer (state and step on "
                                      "the host) or params (zero3/fsdp: sharded parameters, gradients, state).")] = None,
    fsdp_unit: Annotated[Optional[List[str]], typer.Option("--fsdp-unit", help="With --shard zero2/zero3/fsdp: a "
                                           "module-name glob of the FSDP units (repeatable; default: each top-level "
                                           "block).")] = None,
    fmt: Fmt = Format.table,
    output: Output = None,
) -> None:
    """Parameter memory, inference peak, training activations and M(G) (the MobileNetV2 paper's model)."""
    from archlab.api.memory import memory
    from archlab.report import memory as memory_report

    settle()
    size, options = parse_common(input_size, sets, forward_kw)
    seed = seed_of(seed, engine)
    given = [flag for flag, on in (("--optimizer", optimizer != "sgd"), ("--amp", amp is not None),
                                   ("--freeze", bool(freeze)), ("--budget", budget is not None),
                                   ("--world-size", world_size is not None), ("--shard", shard is not None),
                                   ("--offload", offload is not None), ("--fsdp-unit", bool(fsdp_unit))) if on]
    if given and not training:
        raise UserError(f"{given[0]} applies to the training-step bill: add --training")
    if training:
        if engine != "archlab":
            raise UserError("--training is billed from archlab's trace of the step on meta tensors: --engine real "
                            "applies to the inference view")
        from archlab.api.memory import training_memory
        from archlab.report import training_memory as training_report

        changed = [flag for flag, on in (("--dtype", dtype is not None), ("--act-dtype", act_dtype is not None),
                                         ("--fuse", bool(fuse)), ("--no-fuse", no_fuse),
                                         ("--workspace", workspace != "none")) if on]
        if changed:
            raise UserError(f"{changed[0]} is an option of the inference view; with --training use --amp for "
                            "mixed precision")
        results = [training_memory(m, optimizer=optimizer, amp=amp, freeze=tuple(freeze or ()), measure=measure,
                                   device=device, force=force, budget=budget, res=res, input_size=size, batch=batch, alpha=alpha,
                                   options=options, world_size=world_size, shard=shard, offload=offload,
                                   fsdp_unit=tuple(fsdp_unit or ())) for m in models]
        emit(training_report.render(results, fmt.value), output)
        return
    if no_fuse and fuse:
        raise UserError("give either --fuse or --no-fuse, not both")
    fuse_types = () if no_fuse else (tuple(fuse) if fuse else None)
    results = [memory(m, dtype=dtype and dtype.value, act_dtype=act_dtype and act_dtype.value, fuse=fuse_types,
                      workspace=workspace, measure=measure, device=device, force=force, res=res, input_size=size,
                      batch=batch, alpha=alpha, options=options, engine=engine, seed=seed) for m in models]
    emit(memory_report.render(results, fmt.value), output)
