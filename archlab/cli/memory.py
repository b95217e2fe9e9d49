"""``archlab memory``: parameter memory, inference peak, training activations and M(G)."""

from __future__ import annotations

from typing import List, Optional

import typer

from archlab.cli.options import (ALPHA, BATCH, FORMAT, FORWARD_KW, INPUT_SIZE, OUTPUT, RES, SET, device_option, DType,
                                 emit, force_option, Format, parse_common, settle)
from archlab.errors import UserError

def memory_cmd(
    models: List[str] = typer.Argument(..., help="One or more model names or specs (several: side by side)."),
    res: Optional[int] = RES,
    input_size: Optional[str] = INPUT_SIZE,
    forward_kw: Optional[List[str]] = FORWARD_KW,
    batch: Optional[int] = BATCH,
    alpha: Optional[float] = ALPHA,
    sets: Optional[List[str]] = SET,
    dtype: DType = typer.Option(DType.fp32, "--dtype", help="Parameter dtype."),
    act_dtype: DType = typer.Option(DType.fp32, "--act-dtype", help="Activation dtype."),
    fuse: Optional[List[str]] = typer.Option(
        None, "--fuse", help="Module type to treat as one op in M(G) (repeatable); default InvertedResidual."),
    no_fuse: bool = typer.Option(False, "--no-fuse", help="Fuse nothing."),
    workspace: str = typer.Option("none", "--workspace", help="|op| of M(G): none or im2col."),
    measure: bool = typer.Option(False, "--measure", help="Also run a real forward and measure its peak."),
    device: str = device_option("cpu or cuda, for --measure."),
    force: bool = force_option("Run --measure even if it looks too big for memory."),
    training: bool = typer.Option(False, "--training", help="The memory bill of one training step: parameters, "
                                  "gradients, optimizer state, saved activations, peak over the step."),
    optimizer: str = typer.Option("sgd", "--optimizer", help="With --training: sgd, momentum, adam or adamw."),
    amp: Optional[str] = typer.Option(None, "--amp", help="With --training: mixed precision, bf16 or fp16 "
                                      "(fp32 master weights)."),
    freeze: Optional[List[str]] = typer.Option(None, "--freeze", help="With --training: module-name glob whose "
                                               "parameters get no gradient (repeatable)."),
    budget: Optional[str] = typer.Option(None, "--budget", help="With --training: a memory size (8GiB): report the "
                                         "largest batch whose predicted training peak fits."),
    fmt: Format = FORMAT,
    output: Optional[str] = OUTPUT,
) -> None:
    """Parameter memory, inference peak, training activations and M(G) (the MobileNetV2 paper's model)."""
    from archlab.api.memory import memory
    from archlab.report import memory as memory_report

    settle()
    size, options = parse_common(input_size, sets, forward_kw)
    given = [flag for flag, on in (("--optimizer", optimizer != "sgd"), ("--amp", amp is not None),
                                   ("--freeze", bool(freeze)), ("--budget", budget is not None)) if on]
    if given and not training:
        raise UserError(f"{given[0]} applies to the training-step bill: add --training")
    if training:
        from archlab.api.memory import training_memory
        from archlab.report import training_memory as training_report

        changed = [flag for flag, on in (("--dtype", dtype.value != "fp32"), ("--act-dtype", act_dtype.value != "fp32"),
                                         ("--fuse", bool(fuse)), ("--no-fuse", no_fuse),
                                         ("--workspace", workspace != "none")) if on]
        if changed:
            raise UserError(f"{changed[0]} is an option of the inference view; with --training use --amp for "
                            "mixed precision")
        results = [training_memory(m, optimizer=optimizer, amp=amp, freeze=tuple(freeze or ()), measure=measure,
                                   device=device, budget=budget, res=res, input_size=size, batch=batch, alpha=alpha,
                                   options=options) for m in models]
        emit(training_report.render(results, fmt.value), output)
        return
    if no_fuse and fuse:
        raise UserError("give either --fuse or --no-fuse, not both")
    fuse_types = () if no_fuse else (tuple(fuse) if fuse else None)
    results = [memory(m, dtype=dtype.value, act_dtype=act_dtype.value, fuse=fuse_types, workspace=workspace,
                      measure=measure, device=device, force=force, res=res, input_size=size, batch=batch, alpha=alpha,
                      options=options) for m in models]
    emit(memory_report.render(results, fmt.value), output)
